"""The demo: start the local CA, issue a client and a server certificate with ``ca-cert``, then
prove mutual TLS with them: one handshake accepted, one refused for lack of a client certificate.

Every step runs the real command a user would type, through boto3 and the Lambda Invoke API.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from cacli.tls import MutualTLSServer, handshake

BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m" if sys.stdout.isatty() else f"\n{text}", flush=True)


def run(args: list[str], env: dict[str, str]) -> None:
    print("$ " + " ".join(shlex.quote(a) for a in args), flush=True)
    result = subprocess.run(args, env=env, text=True, capture_output=True)
    print(result.stdout.rstrip())
    if result.returncode != 0:
        print(result.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"demo failed: {args[0]} exited {result.returncode}")


def start_local_ca(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    ca = subprocess.Popen(
        [str(BIN / "local-ca"), "serve", "--state-dir", str(state), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert ca.stdout is not None
    info = json.loads(ca.stdout.readline())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=info["access_key_id"],
        AWS_SECRET_ACCESS_KEY="local-ca-example-secret",
        AWS_REGION=info["region"],
        AWS_ENDPOINT_URL_LAMBDA=info["endpoint_url"],
        AWS_EC2_METADATA_DISABLED="true",
        CA_FUNCTION=info["function_name"],
    )
    print(f"local CA listening on {info['endpoint_url']} as function {info['function_name']}")
    return ca, env


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ca-demo-") as tmp:
        work = Path(tmp)
        say("1. Start the local CA (the serverless CA's Lambda contract on 127.0.0.1)")
        ca, env = start_local_ca(work / "ca-state")
        try:
            client_dir, server_dir = work / "client", work / "server"
            say("2. Issue a client certificate (the key is made here and never sent)")
            run(
                [
                    str(BIN / "ca-cert"),
                    "issue",
                    "--common-name",
                    "payments-client",
                    "--organization",
                    "Demo",
                    "--out",
                    str(client_dir),
                ],
                env,
            )
            say("3. Issue a server certificate for 127.0.0.1")
            run(
                [
                    str(BIN / "ca-cert"),
                    "issue",
                    "--common-name",
                    "demo-server.example.com",
                    "--san",
                    "demo-server.example.com",
                    "--san",
                    "IP:127.0.0.1",
                    "--purpose",
                    "server_auth",
                    "--out",
                    str(server_dir),
                ],
                env,
            )
            say("4. A mutual-TLS server that requires a client certificate from this CA")
            server = MutualTLSServer(("127.0.0.1", 0), server_dir)
            server.serve_in_thread()
            port = server.server_address[1]
            print(f"listening on 127.0.0.1:{port}")
            say("5. Handshake with the client certificate")
            accepted = handshake("127.0.0.1", port, client_dir)
            print(("ok: " if accepted.ok else "failed: ") + accepted.message)
            print(f"server said: {accepted.greeting}")
            say("6. Handshake without a client certificate")
            refused = handshake("127.0.0.1", port, client_dir, send_client_cert=False)
            print(("accepted?! " if refused.ok else "refused, as it should be: ") + refused.message)
            server.shutdown()
            if not accepted.ok or refused.ok:
                raise SystemExit("demo failed: mutual TLS did not behave as expected")
        finally:
            say("7. Stop the local CA")
            ca.terminate()
            ca.wait(timeout=5)
            print("stopped")
    say("Demo complete: issued two certificates and proved mutual TLS with them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
