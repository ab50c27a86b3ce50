"""State across restarts, the CA going down and coming back, the CLI and the in-process API."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from botocore.exceptions import EndpointConnectionError
from cryptography.hazmat.primitives.asymmetric import ec
from support.localca_fixtures import ROOT, invoke, issue_event

from localca.config import Config, ConfigError
from localca.server import LocalCAServer


def test_restart_keeps_the_ca_and_still_detects_key_reuse(local_ca_factory):
    private = local_ca_factory()
    key = ec.generate_private_key(ec.SECP256R1())
    _, before = invoke(private.lambda_client(), issue_event("restart.example.com", key=key))
    port = private.port

    private.stop()
    private.start()
    _, reused = invoke(private.lambda_client(), issue_event("restart.example.com", key=key))
    _, after = invoke(private.lambda_client(), issue_event("restart.example.com"))

    assert private.port == port
    assert reused == {"error": "Private key has already been used for a certificate"}
    assert after["Base64RootCaCertificate"] == before["Base64RootCaCertificate"]
    assert after["Base64IssuingCaCertificate"] == before["Base64IssuingCaCertificate"]


def test_while_the_ca_is_down_clients_get_connection_errors_then_it_comes_back(ca):
    client = ca.lambda_client()

    ca.stop()
    with pytest.raises(EndpointConnectionError):
        invoke(client, issue_event("down.example.com"))
    ca.start()
    _, payload = invoke(client, issue_event("down.example.com"))

    assert payload["CertificateInfo"]["CommonName"] == "down.example.com"


def test_state_files_are_private(local_ca_factory):
    private = local_ca_factory()
    invoke(private.lambda_client(), issue_event("perms.example.com"))

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in private.state_dir.iterdir()}

    assert stat.S_IMODE(private.state_dir.stat().st_mode) == 0o700
    assert modes == {
        "root-ca.key": 0o600,
        "root-ca.pem": 0o600,
        "issuing-ca.key": 0o600,
        "issuing-ca.pem": 0o600,
        "issued.jsonl": 0o600,
    }


def test_the_in_process_server_serves_boto3(tmp_path):
    import boto3
    from botocore.config import Config as BotoConfig

    with LocalCAServer(Config(state_dir=tmp_path / "state")) as server:
        client = boto3.client(
            "lambda",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="LOCALCAEXAMPLEKEY000",
            aws_secret_access_key="local-ca-example-secret",
            config=BotoConfig(retries={"max_attempts": 0}),
        )
        _, payload = invoke(client, issue_event("inproc.example.com"))
        stats = server.app.stats.snapshot()

    assert payload["CertificateInfo"]["CommonName"] == "inproc.example.com"
    assert stats["issued"] == 1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param({"host": "0.0.0.0"}, "host", id="a non-loopback host is refused"),
        pytest.param({"max_lifetime_days": 0}, "max_lifetime_days", id="a zero cap is refused"),
        pytest.param({"function_name": "a:b"}, "function_name", id="a name with a colon"),
    ],
)
def test_bad_settings_name_the_field(tmp_path, config, field):
    with pytest.raises(ConfigError, match=f"^{field} "):
        LocalCAServer(Config(state_dir=tmp_path, **config))


def _serve(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "localca", "serve", "--state-dir", str(tmp_path / "state"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


def test_cli_refuses_a_non_loopback_host_in_one_line(tmp_path):
    proc = _serve(tmp_path, "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1].startswith("local-ca: host '0.0.0.0'")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_prints_one_ready_line_writes_the_ready_file_and_exits_on_signal(tmp_path, signum):
    ready_file = tmp_path / "ready.json"
    proc = _serve(tmp_path, "--ready-file", str(ready_file))
    line = proc.stdout.readline()

    ready = json.loads(line)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)

    assert set(ready) == {"endpoint_url", "function_name", "region", "access_key_id", "pid"}
    assert ready["endpoint_url"].startswith("http://127.0.0.1:")
    assert ready["access_key_id"] == "LOCALCAEXAMPLEKEY000"
    assert ready["pid"] == proc.pid
    assert json.loads(ready_file.read_text()) == ready
    assert proc.returncode == 0
    assert out == b""
    for log_line in err.decode().splitlines():
        record = json.loads(log_line)
        assert "local-ca-example-secret" not in log_line
        assert {"ts", "level", "event"} <= set(record)


def test_issued_records_never_hold_private_keys(local_ca_factory):
    private = local_ca_factory()
    invoke(private.lambda_client(), issue_event("records.example.com"))

    lines = (private.state_dir / "issued.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])

    assert set(record) == {"common_name", "serial", "key_id", "issued", "expires", "pem"}
    assert "PRIVATE KEY" not in record["pem"]
