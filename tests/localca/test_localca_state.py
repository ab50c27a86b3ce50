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
        "lock": 0o600,
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


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 0), (signal.SIGINT, 130)],  # the project's table: 130 is Ctrl-C
    ids=["SIGTERM", "SIGINT"],
)
def test_cli_prints_one_ready_line_writes_the_ready_file_and_exits_on_signal(
    tmp_path, signum, code
):
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
    assert proc.returncode == code
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


# The CLI rows of the fault table in docs/local-ca.md: one line on stderr, the exit code.
def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _encrypted_key() -> bytes:
    from cryptography.hazmat.primitives import serialization

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )


def _rsa_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return _pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _make_ca(state):
    from datetime import UTC, datetime

    from localca.authority import load_or_create

    load_or_create(state, datetime.now(UTC))
    (state / "issued.jsonl").write_text("")


CORRUPTIONS = [
    pytest.param(
        lambda s: (s / "issuing-ca.pem").write_text("garbage"),
        "issuing-ca.pem is not a PEM certificate",
        id="a CA certificate that is garbage",
    ),
    pytest.param(
        lambda s: (s / "root-ca.pem").write_bytes(b"\xff\xfe"),
        "root-ca.pem is not a PEM certificate",
        id="a CA certificate not even text",
    ),
    pytest.param(
        lambda s: (s / "issuing-ca.key").write_bytes(_encrypted_key()),
        "issuing-ca.key is not an unencrypted PEM private key",
        id="an encrypted key",
    ),
    pytest.param(
        lambda s: (s / "issuing-ca.key").write_bytes(_rsa_key()),
        "issuing-ca.key is not an ECDSA key",
        id="an RSA key",
    ),
    pytest.param(
        lambda s: (s / "issuing-ca.key").write_bytes(
            _pem_key(ec.generate_private_key(ec.SECP256R1()))
        ),
        "issuing-ca.key does not match issuing-ca.pem",
        id="another key",
    ),
    pytest.param(
        lambda s: (s / "root-ca.pem").write_bytes((s / "issuing-ca.pem").read_bytes()),
        "issuing-ca.pem is not issued by root-ca.pem",
        id="a root that did not sign",
    ),
    pytest.param(
        lambda s: (s / "root-ca.key").unlink(),
        "holds a partial CA (missing root-ca.key)",
        id="a CA file missing",
    ),
    pytest.param(
        lambda s: (s / "issued.jsonl").write_text('{"common_name": 1}\n{}\n'),
        "issued.jsonl line 1 is not an issued-certificate record",
        id="a bad record",
    ),
    pytest.param(
        lambda s: ((s / "issued.jsonl").unlink(), (s / "issued.jsonl").mkdir()),
        "issued.jsonl cannot be read",
        id="records that are a directory",
    ),
]


@pytest.mark.parametrize(("corrupt", "message"), CORRUPTIONS)
def test_a_corrupt_state_dir_is_one_line_naming_the_file_and_exit_2(tmp_path, corrupt, message):
    state = tmp_path / "state"
    _make_ca(state)
    corrupt(state)

    proc = _serve(tmp_path)
    out, err = proc.communicate(timeout=30)

    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2
    assert out == b""
    assert len(lines) == 1 and lines[0].startswith(f"local-ca: state_dir {state}")
    assert message in lines[0]
    assert "Traceback" not in err.decode()


def test_a_torn_last_record_is_cut_and_the_ca_starts(tmp_path):
    state = tmp_path / "state"
    _make_ca(state)
    record = json.dumps(
        {
            "common_name": "a",
            "serial": "1",
            "key_id": "k",
            "issued": "x",
            "expires": "y",
            "pem": "z",
        }
    )
    (state / "issued.jsonl").write_text(record + "\n" + record[:20])

    proc = _serve(tmp_path)
    ready = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)

    assert ready["pid"] == proc.pid and proc.returncode == 0
    assert (state / "issued.jsonl").read_text() == record + "\n"


def test_a_second_local_ca_on_the_same_state_dir_is_refused(tmp_path):
    first = _serve(tmp_path)
    first.stdout.readline()
    try:
        second = _serve(tmp_path)
        _, err = second.communicate(timeout=30)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=10)

    assert second.returncode == 2
    assert err.decode().strip() == (
        f"local-ca: state_dir {tmp_path / 'state'} is in use by another local-ca "
        f"(pid {first.pid}): stop it or give another --state-dir"
    )


@pytest.mark.parametrize(
    ("args", "start"),
    [
        pytest.param(
            ["--port", "70000"], "local-ca: port 70000 is out of range", id="a port out of range"
        ),
        pytest.param(
            ["--max-lifetime-days", "0"],
            "local-ca: max_lifetime_days 0 is out of range",
            id="a lifetime cap of 0",
        ),
        pytest.param(
            ["--fault", "{bad"],
            "local-ca: --fault '{bad' is not valid",
            id="a fault that is not JSON",
        ),
        pytest.param(
            ["--ready-file", "/nonexistent/ready.json"],
            "local-ca: --ready-file /nonexistent/ready.json: its directory does not exist",
            id="a ready file in a missing directory",
        ),
        pytest.param(
            ["--request-timeout", "0"],
            "local-ca: request_timeout 0.0 is out of range",
            id="a zero request timeout",
        ),
        pytest.param(["--port", "abc"], "usage: local-ca serve", id="a port that is no number"),
        pytest.param(
            ["--dynamodb-endpoint", "http://127.0.0.1:99999"],
            "local-ca: dynamodb_endpoint 'http://127.0.0.1:99999' is not an http(s) URL with a "
            "port from 1 to 65535",
            id="a DynamoDB endpoint with a port out of range",
        ),
        pytest.param(
            ["--sts-endpoint", "http://[::1"],
            "local-ca: sts_endpoint 'http://[::1' is not an http(s) URL",
            id="an STS endpoint that does not parse",
        ),
        pytest.param(
            ["--csr-dir", "/dev/null"],
            "local-ca: csr_dir /dev/null is not a directory",
            id="a CSR folder that is a file",
        ),
        pytest.param(
            ["--region", "eu west"], "local-ca: region 'eu west' is invalid", id="a bad region"
        ),
        pytest.param(
            ["--function-name", "bad name"],
            "local-ca: function_name 'bad name' is invalid",
            id="a function name Lambda would refuse",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, args, start):
    proc = _serve(tmp_path, *args)
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 2
    assert "Traceback" not in err.decode()
    assert any(line.startswith(start) for line in err.decode().splitlines())


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = _serve(tmp_path, "--port", str(port))
        _, err = proc.communicate(timeout=30)

    assert proc.returncode == 2
    assert err.decode().strip() == (
        f"local-ca: port {port} on 127.0.0.1 is in use: stop what holds it, or use --port 0 "
        "for any free port"
    )


def test_a_state_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "state").write_text("not a directory")

    proc = _serve(tmp_path)
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 2
    assert err.decode().strip() == (
        f"local-ca: state_dir {tmp_path / 'state'} is not a directory: give a directory for "
        "--state-dir"
    )


def test_an_unexpected_error_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from localca import __main__ as cli

    def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.LocalCAServer, "start", broken)

    code = cli.main(["serve", "--state-dir", str(tmp_path / "state")])

    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "local-ca: internal error (RuntimeError: boom)"
    )
