"""Run the TLS Lambda's decision (`localca.issuance.handle`) in-process, for table tests.

Most contract rows are checked this way, without HTTP, against one CA made for the session;
the end-to-end tests (boto3 over HTTP) cover the same rules through the real Invoke API.
"""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from support.localca_fixtures import csr_pem

from localca.authority import Authority
from localca.issuance import Outcome, Policy, handle

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
BUCKET = "serverless-ca-internal-dev"


@dataclass
class Crash:
    """An exception escaping the handler: the Lambda's FunctionError, as errorType/errorMessage."""

    type: str
    message: str


@dataclass
class Memory:
    """An in-memory key-reuse history, recording what the handler issues."""

    keys: set[tuple[str, str]] = field(default_factory=set)

    def key_used(self, common_name: str, key_id: str) -> bool:
        return (common_name, key_id) in self.keys


@dataclass
class Run:
    result: Outcome | Crash
    log: list[str]

    @property
    def payload(self) -> dict[str, Any]:
        assert isinstance(self.result, Outcome), self.result
        return self.result.payload

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(base64.b64decode(self.payload["Base64Certificate"]))


class Lambda:
    """Invocations against one CA; issued keys are remembered as the server's store does."""

    def __init__(self, ca: Authority) -> None:
        self.ca = ca
        self.history = Memory()
        self.csr_files: dict[str, bytes] = {}
        self.allowlist: tuple[str, ...] = ()
        self.max_days = 365

    def __call__(self, event: Any) -> Run:
        log: list[str] = []
        policy = Policy(self.max_days, self.allowlist, BUCKET)
        try:
            outcome = handle(
                event, self.ca, self.history, NOW, policy, self.csr_files.get, log.append
            )
        except Exception as exc:  # noqa: BLE001 - the crash is the observation
            return Run(Crash(type(exc).__name__, str(exc)), log)
        if outcome.issued is not None:
            self.history.keys.add((outcome.issued.common_name, outcome.issued.key_id))
        return Run(outcome, log)


def b64_csr(common_name: str | None = "svc.example.com", key: Any = None, **kw: Any) -> str:
    return base64.b64encode(csr_pem(common_name, key, **kw)).decode()


def event(common_name: Any = "svc.example.com", **fields: Any) -> dict[str, Any]:
    """An event with a fresh CSR whose CN is `common_name` when that is a string."""
    csr_cn = common_name if isinstance(common_name, str) and common_name else "csr.example.com"
    return {"common_name": common_name, "base64_csr_data": b64_csr(csr_cn), **fields}


# Raw HTTP against an in-process local CA, for the fault table and the fuzz tests.
ACCESS_KEY_ID = "LOCALCAEXAMPLEKEY000"
SECRET_ACCESS_KEY = "local-ca-example-secret"
INVOKE_PATH = "/2015-03-31/functions/serverless-tls-cert-dev/invocations"


@dataclass
class RawReply:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after this answer

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        value = self.headers.get("x-amzn-errortype")
        return value.split(":", 1)[0] if value else None


class ReplyStream:
    """HTTP responses read one after another from one socket (pipelining keeps leftovers)."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.data = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.data += chunk
        return bool(chunk)

    def read(self, *, to_head: bool = False) -> RawReply:
        """The next response (skipping a 100 Continue); `to_head`: the answer to a HEAD, which
        has a Content-Length but no body."""
        while True:
            while b"\r\n\r\n" not in self.data:
                if not self._more():
                    return RawReply(None, {}, self.data, True)
            raw_head, _, self.data = self.data.partition(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            if status != 100:
                break
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if to_head else int(headers.get("content-length", "0"))
        while len(self.data) < length and self._more():
            pass
        body, self.data = self.data[:length], self.data[length:]
        closed = headers.get("connection", "").lower() == "close"
        return RawReply(status, headers, body, closed)


def read_reply(sock: socket.socket, timeout: float = 10.0, *, to_head: bool = False) -> RawReply:
    """One HTTP response from `sock` (see ReplyStream.read)."""
    return ReplyStream(sock, timeout).read(to_head=to_head)


def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> RawReply:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_reply(sock, timeout)


def signed_head(
    port: int, body: bytes, path: str = INVOKE_PATH, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """SigV4 headers (botocore's own signer) for a POST of `body` to `path`."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url=f"http://127.0.0.1:{port}{path}", data=body, headers=extra or {}
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "lambda", "us-east-1").add_auth(
        request
    )
    return {k: v for k, v in request.headers.items()}


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
