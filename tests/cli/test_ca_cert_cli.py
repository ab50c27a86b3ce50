"""`ca-cert` as a developer runs it: real processes, the local CA over HTTP, real TLS."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.localca_fixtures import free_port

from cacli.tls import MutualTLSServer, handshake
from cacore.edge.keygen import build_csr, generate_key
from cacore.request import Subject

BIN = Path(sys.executable).parent


def ca_cert(ca, *args, env_changes=None):
    env = dict(os.environ, **ca.env, CA_FUNCTION=ca.function_name)
    env.update(env_changes or {})
    return subprocess.run(
        [str(BIN / "ca-cert"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def issue(ca, out, *args):
    result = ca_cert(ca, "issue", "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return result


def test_issue_writes_key_certificate_and_bundle_with_safe_permissions_and_a_summary(ca, tmp_path):
    out = tmp_path / "out"
    result = issue(
        ca,
        out,
        "--common-name",
        "laptop.example.com",
        "--san",
        "laptop.example.com",
        "--san",
        "IP:10.9.8.7",
        "--organization",
        "Example",
        "--lifetime",
        "3",
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    assert (out / "tls.crt").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert (out / "ca.crt").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    subject = next(line for line in result.stdout.splitlines() if line.startswith("subject:"))
    assert "CN=laptop.example.com" in subject and "O=Example" in subject
    assert "SANs:        DNS:laptop.example.com, IP:10.9.8.7" in result.stdout
    assert "serial:" in result.stdout and "not after:" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_serverless_ca_file_names_are_written_on_request(ca, tmp_path):
    issue(ca, tmp_path / "out", "--common-name", "compat.example.com", "--serverless-ca-names")
    assert {"client-key.pem", "client-cert.crt", "ca-bundle.pem"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }


def test_a_partner_csr_is_certified_and_no_key_is_written(ca, tmp_path):
    csr = tmp_path / "partner.csr"
    csr.write_bytes(
        build_csr(generate_key(), Subject("partner.example.com", organization="Partner"))
    )
    result = issue(ca, tmp_path / "out", "--csr", str(csr))
    assert "CN=partner.example.com" in result.stdout and "O=Partner" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "ca.crt",
        "tls.crt",
    ]


@pytest.mark.parametrize(
    ("args", "field", "code"),
    [
        pytest.param(["--lifetime", "30"], "--common-name", 2, id="a missing common name"),
        pytest.param(
            ["--common-name", "a.example.com", "--lifetime", "0"], "--lifetime", 2, id="lifetime 0"
        ),
        pytest.param(
            ["--common-name", "a.example.com", "--purpose", "email"],
            "--purpose",
            2,
            id="an unknown purpose",
        ),
        pytest.param(
            ["--common-name", "a.example.com", "--san", "*.com"],
            "--san",
            2,
            id="a SAN the CA would drop",
        ),
        pytest.param(
            ["--common-name", "a.example.com", "--key-algorithm", "dsa"],
            "--key-algorithm",
            2,
            id="an unknown key algorithm",
        ),
        pytest.param(["--csr", "NOTPEM"], "--csr", 2, id="a CSR that is not PEM"),
        pytest.param(
            ["--common-name", "a.example.com", "--endpoint-url", "http://127.0.0.1:PORT"],
            "TransportError",
            1,
            id="an unreachable endpoint",
        ),
        pytest.param(
            ["--common-name", "a.example.com", "--function", "no such function"],
            "function",
            2,
            id="a malformed function name",
        ),
    ],
)
def test_bad_input_is_one_clear_line_a_nonzero_exit_and_no_files(ca, tmp_path, args, field, code):
    (tmp_path / "notpem.csr").write_text("this is not a CSR\n")
    args = [
        a.replace("NOTPEM", str(tmp_path / "notpem.csr")).replace("PORT", str(free_port()))
        for a in args
    ]
    out = tmp_path / "out"
    result = ca_cert(ca, "issue", "--out", str(out), *args)
    assert result.returncode == code
    # one error line (a slow machine may add the notice of what the command is waiting for)
    lines = [line for line in result.stderr.strip().splitlines() if "waiting for" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ca-cert: error: ") and field in lines[0]
    assert not out.exists()


def test_a_refusal_is_reported_with_the_ca_message(ca, tmp_path):
    ca.inject("refuse", message="Private key has already been used for a certificate")
    result = ca_cert(ca, "issue", "--out", str(tmp_path / "out"), "--common-name", "a.example.com")
    assert result.returncode == 1
    assert "Private key has already been used for a certificate" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture
def client_and_server(ca, tmp_path):
    client, server_dir = tmp_path / "client", tmp_path / "server"
    issue(ca, client, "--common-name", "client.example.com")
    issue(
        ca,
        server_dir,
        "--common-name",
        "server.example.com",
        "--san",
        "IP:127.0.0.1",
        "--purpose",
        "server_auth",
    )
    server = MutualTLSServer(("127.0.0.1", 0), server_dir)
    server.serve_in_thread()
    yield client, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_mutual_tls_succeeds_with_the_issued_files(ca, client_and_server):
    client, port = client_and_server
    result = ca_cert(ca, "handshake", f"127.0.0.1:{port}", "--certs", str(client))
    assert result.returncode == 0, result.stdout
    assert "succeeded" in result.stdout
    assert "hello client.example.com" in result.stdout


def test_a_handshake_without_a_client_certificate_is_refused_and_explained(client_and_server):
    client, port = client_and_server
    result = handshake("127.0.0.1", port, client, send_client_cert=False)
    assert not result.ok
    assert "requires a client certificate" in result.message


def test_a_server_under_another_ca_is_not_trusted_and_explained(ca, local_ca_factory, tmp_path):
    other = local_ca_factory()
    server_dir = tmp_path / "other-server"
    env = dict(os.environ, **other.env, CA_FUNCTION=other.function_name)
    done = subprocess.run(
        [
            str(BIN / "ca-cert"),
            "issue",
            "--out",
            str(server_dir),
            "--common-name",
            "s.example.com",
            "--san",
            "IP:127.0.0.1",
            "--purpose",
            "server_auth",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    client = tmp_path / "client"
    issue(ca, client, "--common-name", "client.example.com")
    server = MutualTLSServer(("127.0.0.1", 0), server_dir)
    server.serve_in_thread()
    try:
        result = handshake("127.0.0.1", server.server_address[1], client)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.ok
    assert "not trusted with ca.crt" in result.message


def test_nothing_listening_is_explained(ca, tmp_path):
    issue(ca, tmp_path / "c", "--common-name", "client.example.com")
    port = free_port()
    result = ca_cert(ca, "handshake", f"127.0.0.1:{port}", "--certs", str(tmp_path / "c"))
    assert result.returncode == 1
    assert f"nothing is listening on 127.0.0.1:{port}" in result.stdout


def test_the_demo_runs_end_to_end():
    result = subprocess.run(
        [sys.executable, "-m", "cacli.demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello payments-client, your certificate was accepted" in result.stdout
    assert "refused, as it should be: the server requires a client certificate" in result.stdout


def test_more_than_365_days_is_refused_unless_told_the_cas_cap():
    from cacli.issue import request_from_args
    from cacli.main import parser
    from cacore.errors import InvalidRequest

    args = parser().parse_args(["issue", "--common-name", "a.example.com", "--lifetime", "500"])
    with pytest.raises(InvalidRequest) as caught:
        request_from_args(args)
    assert caught.value.field == "--lifetime"
    args = parser().parse_args(
        ["issue", "--cn", "a.example.com", "--lifetime", "500", "--max-lifetime-days", "730"]
    )
    assert request_from_args(args).lifetime_days == 500
