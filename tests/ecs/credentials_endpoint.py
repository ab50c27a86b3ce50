"""A container credentials endpoint, as the ECS agent (and the EKS Pod Identity agent) serves one.

On ECS a task's containers get the task role's credentials over HTTP: the SDK reads
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (or the agent's relative URI) and sends the contents of
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` as the ``Authorization`` header. The agent cannot run
here; this serves the same protocol on loopback, and the credentials are real temporary ones:
each request assumes the task role through STS (moto's server), as the agent does.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

CREDENTIALS_PATH = "/v2/credentials/task"


@dataclass
class CredentialsEndpoint:
    sts_url: str
    role_arn: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    served: list[str] = field(default_factory=list)  # access key ids handed out
    refused: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{CREDENTIALS_PATH}"

    def _credentials(self) -> dict[str, str]:
        sts = boto3.client(
            "sts", endpoint_url=self.sts_url, region_name="us-east-1",
            aws_access_key_id="ecs-agent", aws_secret_access_key="ecs-agent",
        )  # fmt: skip
        creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName="ecs-task")["Credentials"]
        self.served.append(creds["AccessKeyId"])
        return {
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"],
            "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": self.role_arn,
        }

    def start(self) -> CredentialsEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                allowed = self.headers.get("Authorization") == endpoint.token
                if self.path != CREDENTIALS_PATH or not allowed:
                    endpoint.refused += 1
                    status, body = 401, {"code": "AccessDenied", "message": "invalid token"}
                else:
                    status, body = 200, endpoint._credentials()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
