"""Fixtures for the local CA: a real `python -m localca serve` process reached over HTTP.

- `local_ca` (session): the suite's shared CA. Prefer `ca`, which returns the same handle and
  clears injected faults after the test.
- `local_ca_factory` (per test): private instances with their own options and state dir.
- `dynamodb_server` (session): moto's standalone server on loopback; returns its endpoint URL.

The `LocalCA` handle gives what a test or a subprocess needs: `endpoint_url`, `env`,
`lambda_client()`, `inject(kind, count=1, **params)`, `clear_faults()`, `stats()`, and
`stop()` / `start()` to take the CA down and bring it back on the same port and state dir.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelocal.procs import dies_with_this_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FUNCTION_NAME = "serverless-tls-cert-dev"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCESS_KEY_ID = "LOCALCAEXAMPLEKEY000"
DEFAULT_SECRET_ACCESS_KEY = "local-ca-example-secret"
READY_TIMEOUT = 30.0

__all__ = [
    "LocalCA",
    "ca",
    "csr_pem",
    "dynamodb_server",
    "free_port",
    "invoke",
    "issue_event",
    "local_ca",
    "local_ca_factory",
]

# Loopback requests must never go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def csr_pem(
    common_name: str | None = "svc.example.com",
    key: Any = None,
    *,
    extra_subject: dict[str, str] | None = None,
    dns_sans: list[str] | None = None,
) -> bytes:
    """A PEM CSR for `key` (a fresh P-256 key when None); no CN when common_name is None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = key or ec.generate_private_key(ec.SECP256R1())
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    }
    attributes = [x509.NameAttribute(oids[k], v) for k, v in (extra_subject or {}).items()]
    if common_name is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if dns_sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_sans]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def issue_event(common_name: str = "svc.example.com", key: Any = None, **fields: Any) -> dict:
    """A TLS Lambda event with a fresh CSR (or one for `key`) for `common_name`."""
    import base64

    pem = csr_pem(common_name, key)
    return {"common_name": common_name, "base64_csr_data": base64.b64encode(pem).decode(), **fields}


def invoke(client: Any, event: Any, function_name: str = DEFAULT_FUNCTION_NAME) -> tuple[dict, Any]:
    """Invoke synchronously; returns (the invoke response, the decoded payload)."""
    payload = event if isinstance(event, bytes) else json.dumps(event).encode()
    response = client.invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=payload
    )
    return response, json.loads(response["Payload"].read())


class LocalCA:
    """A local CA process and the credentials to reach it."""

    def __init__(
        self,
        state_dir: Path,
        *,
        function_name: str = DEFAULT_FUNCTION_NAME,
        region: str = DEFAULT_REGION,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        extra_args: list[str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.function_name = function_name
        self.region = region
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.extra_args = list(extra_args or [])
        self.port = 0
        self.endpoint_url = ""
        self.log_path = state_dir.parent / f"{state_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should reach this CA with stock AWS SDKs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL_LAMBDA": self.endpoint_url,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "localca",
            "serve",
            "--state-dir",
            str(self.state_dir),
            "--port",
            str(self.port),
            "--function-name",
            self.function_name,
            "--region",
            self.region,
            "--access-key-id",
            self.access_key_id,
            "--secret-access-key",
            self.secret_access_key,
            *self.extra_args,
        ]

    def start(self) -> LocalCA:
        """Start the process (again on the same port and state dir after `stop()`)."""
        if self._proc is not None:
            return self
        log = self.log_path.open("ab")
        proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=log, env=_child_env(), cwd=ROOT,
            preexec_fn=dies_with_this_process(),  # a killed test run or bench leaves none behind
        )  # fmt: skip
        log.close()
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(READY_TIMEOUT)
        selector.close()
        line = proc.stdout.readline() if ready else b""
        if not line:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"local CA did not start (exit {proc.returncode}); log:\n"
                + self.log_path.read_text(errors="replace")[-3000:]
            )
        info = json.loads(line)
        self.endpoint_url = info["endpoint_url"]
        self.port = int(self.endpoint_url.rsplit(":", 1)[1])
        self._proc = proc
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _admin(self, method: str, route: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint_url}/_localca/{route}", data=data, method=method
        )
        with _opener.open(request, timeout=10) as response:
            return json.loads(response.read())

    def inject(self, kind: str, count: int = 1, **params: Any) -> list[dict[str, Any]]:
        """Make the next `count` invocations fail as `kind` (-1: until cleared)."""
        return self._admin("POST", "faults", {"kind": kind, "count": count, **params})["pending"]

    def clear_faults(self) -> None:
        """Drop queued faults and cut short the delays being slept now."""
        self._admin("DELETE", "faults")

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Wait for invocations still running (a client gave up on them, the CA did not): one
        answering during the next test would be counted there."""
        wait_for(lambda: self.stats()["running"] == 0, timeout, 0.02,
                 "the local CA's running invocations to end", ignore=())  # fmt: skip

    def stats(self) -> dict[str, int]:
        return self._admin("GET", "stats")

    def lambda_client(self, **overrides: Any) -> Any:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": Config(read_timeout=300, retries={"max_attempts": 0}),
        }
        kwargs.update(overrides)
        return boto3.client("lambda", **kwargs)


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCA]:
    handle = LocalCA(tmp_path_factory.mktemp("local-ca") / "state").start()
    yield handle
    handle.stop()


@pytest.fixture
def ca(local_ca: LocalCA) -> Iterator[LocalCA]:
    """The shared local CA, with injected faults cleared after the test."""
    if not local_ca.running:
        local_ca.start()
    yield local_ca
    if not local_ca.running:
        local_ca.start()
    local_ca.clear_faults()
    local_ca.wait_until_idle()


@pytest.fixture
def local_ca_factory(tmp_path: Path) -> Iterator[Callable[..., LocalCA]]:
    """`local_ca_factory(*cli_args, **handle_kwargs)` starts a private CA, stopped after."""
    started: list[LocalCA] = []

    def make(*extra_args: str, state_dir: Path | None = None, **kwargs: Any) -> LocalCA:
        directory = state_dir or tmp_path / f"local-ca-{len(started)}"
        handle = LocalCA(directory, extra_args=list(extra_args), **kwargs)
        started.append(handle)
        return handle.start()

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def dynamodb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone server on a loopback port; yields its endpoint URL."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    for _attempt in range(3):
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=log,
                env=_child_env(),
                preexec_fn=dies_with_this_process(),
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        ready = False
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                with _opener.open(f"{url}/moto-api/", timeout=1):
                    ready = True
            except OSError:
                time.sleep(0.1)
        if not ready:
            proc.kill()
            proc.wait()
        else:
            yield url
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return
    raise RuntimeError("moto server did not start; log:\n" + log_path.read_text()[-3000:])
