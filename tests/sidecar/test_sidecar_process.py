"""The real ``cert-sidecar`` process against the real local CA, over boto3 and HTTP."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sidecar_process import ROOT, Sidecar, log_lines, mode_of, run_mode, sidecar_env, wait_for

from cacore.certinfo import chain_problem, key_matches, split_pem_certificates
from cacore.credentials import Ownership
from cacore.edge.files import AtomicDirectoryWriter, read_credential_set
from cacore.edge.keygen import generate_key
from cacore.keys import load_private_key, private_key_pem

# Renew a few seconds after issuance: lifetime 1 day + the CA's 5-minute backdating = 86700 s.
SOON = {"lifetime_days": 1, "renewal_point": "86697s", "jitter": 0, "min_renewal_interval": "1s"}


def certificate(files: dict[str, bytes], name: str = "tls.crt") -> x509.Certificate:
    return x509.load_pem_x509_certificate(files[name])


def test_once_issues_a_verified_set_with_modes_and_owner(ca, tmp_path):
    out = tmp_path / "certs"
    done = run_mode(
        "once",
        ca,
        common_name="once.example.com",
        sans="once.example.com,IP:127.0.0.1",
        output_dir=out,
        uid=12345,
        gid=23456,
        key_mode="0640",
        serverless_ca_names="true",
        combined_file="combined.pem",
    )
    assert done.returncode == 0, done.stderr
    files = read_credential_set(out)
    leaf_pem, issuing_pem = split_pem_certificates(files["tls.crt"])
    ca_issuing, ca_root = split_pem_certificates(files["ca.crt"])
    assert issuing_pem == ca_issuing
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    assert key_matches(leaf, load_private_key(files["tls.key"]))
    issuers = [x509.load_pem_x509_certificate(p) for p in (ca_issuing, ca_root)]
    assert chain_problem(leaf, issuers) is None
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["once.example.com"]
    assert files["client-key.pem"] == files["tls.key"]
    assert files["client-cert.crt"] == files["tls.crt"]
    assert files["ca-bundle.pem"] == files["ca.crt"]
    assert files["combined.pem"] == files["tls.key"] + files["tls.crt"]
    for name in ("tls.key", "client-key.pem", "combined.pem"):
        assert mode_of(out / name) == 0o640
    for name in ("tls.crt", "ca.crt", "client-cert.crt", "ca-bundle.pem"):
        assert mode_of(out / name) == 0o644
    for name in files:
        st = os.stat(out / name)
        assert (st.st_uid, st.st_gid) == (12345, 23456)
    assert "PRIVATE KEY" not in done.stderr and files["tls.key"].decode() not in done.stderr
    issued = [e for e in log_lines(done.stderr) if e["message"] == "certificate issued"]
    assert issued[0]["serial"] == str(leaf.serial_number)


def test_restart_with_a_valid_certificate_issues_nothing(ca, tmp_path):
    settings = {"common_name": "restart.example.com", "output_dir": tmp_path / "certs"}
    assert run_mode("once", ca, **settings).returncode == 0
    before = read_credential_set(tmp_path / "certs")
    issued = ca.stats()["issued"]
    again = run_mode("once", ca, **settings)
    assert again.returncode == 0, again.stderr
    sidecar = Sidecar(ca, tmp_path / "run.log", **settings).start()
    try:
        sidecar.wait_for_log(lambda e: e["message"] == "certificate up to date")
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()
    assert ca.stats()["issued"] == issued
    assert read_credential_set(tmp_path / "certs") == before


def test_renews_with_a_new_key_and_tells_the_app_every_way(ca, tmp_path):
    # The app: a real child process that records each SIGHUP.
    app_log = tmp_path / "app.log"
    app = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "def hup(*_):\n"
            f"    open({str(app_log)!r}, 'a').write('HUP\\n')\n"
            "signal.signal(signal.SIGHUP, hup)\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(1)\n",
        ],
        stdout=subprocess.PIPE,
    )
    app.stdout.readline()
    (tmp_path / "app.pid").write_text(f"{app.pid}\n")
    posts: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    marker = tmp_path / "command-ran"
    record_serial = (
        f"import os; open('{marker}', 'a').write(os.environ['CERT_SIDECAR_SERIAL'] + ' ')"
    )
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        common_name="renew.example.com",
        output_dir=tmp_path / "certs",
        reload_pid_file=tmp_path / "app.pid",
        reload_command=f'{sys.executable} -c "{record_serial}"',
        reload_url=f"http://127.0.0.1:{hook.server_address[1]}/reload",
        **SOON,
    ).start()
    try:
        first, second = sidecar.issued(count=2)
        assert (first["reason"], second["reason"]) == ("DoesNotExist", "Renewing")
        files = read_credential_set(tmp_path / "certs")
        wait_for(lambda: app_log.exists() and app_log.read_text().count("HUP") >= 2)
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()
        app.kill()
        app.wait()
        hook.shutdown()
    assert certificate(files).serial_number == int(second["serial"]) != int(first["serial"])
    assert marker.read_text().split() == [first["serial"], second["serial"]]
    assert [p["serial"] for p in posts] == [first["serial"], second["serial"]]
    assert all(p["event"] == "certificate-renewed" for p in posts)
    # Every renewal used a new key (the CA would refuse a reused one) and old versions went away.
    versions = [p for p in (tmp_path / "certs").iterdir() if p.name.startswith("..2")]
    assert len(versions) <= 2


def test_reload_signal_by_process_name_reaches_the_app(ca, tmp_path):
    # A uniquely named app process: comm is the basename of the executable.
    app_bin = tmp_path / "fake-app-xyz"
    app_bin.symlink_to("/bin/sleep")
    app = subprocess.Popen([str(app_bin), "60"])
    try:
        done = run_mode(
            "once",
            ca,
            common_name="byname.example.com",
            output_dir=tmp_path / "certs",
            reload_process_name="fake-app-xyz",
            reload_signal="TERM",
        )
        assert done.returncode == 0, done.stderr
        assert app.wait(10) == -15  # died of the SIGTERM the sidecar sent it
    finally:
        app.kill()


def test_backs_off_while_the_ca_is_down_then_recovers(local_ca_factory, tmp_path):
    ca = local_ca_factory()
    ca.stop()
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        common_name="down.example.com",
        output_dir=tmp_path / "certs",
        backoff_base="200ms",
        backoff_cap="1s",
        listen="127.0.0.1:0",
    ).start()
    try:
        failed = sidecar.wait_for_log(lambda e: e["message"] == "issuance failed", count=3)
        assert {e["reason"] for e in failed} == {"TransportError"}
        assert [e["attempt"] for e in failed[:3]] == [1, 2, 3]
        assert failed[2]["retry_in_seconds"] <= 1.0
        assert sidecar.get("/readyz")[0] == 503
        assert sidecar.get("/healthz")[0] == 200
        ca.start()  # same port and state
        sidecar.issued()
        assert wait_for(lambda: sidecar.get("/readyz")[0] == 200)
        status, metrics = sidecar.get("/metrics")
        assert 'cert_sidecar_failures_total{reason="TransportError"}' in metrics
        assert 'cert_sidecar_issuances_total{reason="DoesNotExist"} 1.0' in metrics
        assert "cert_sidecar_next_renewal_timestamp_seconds" in metrics
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()


def test_a_failing_renewal_keeps_the_old_set_until_the_ca_answers_again(ca, tmp_path):
    out = tmp_path / "certs"
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        common_name="keep.example.com",
        output_dir=out,
        backoff_base="200ms",
        backoff_cap="400ms",
        **SOON,
    )
    sidecar.start()
    try:
        first = sidecar.issued()[0]
        ca.inject("unavailable", count=3)
        failed = sidecar.wait_for_log(lambda e: e["message"] == "issuance failed", count=3)
        assert all(e["current_valid_until"] for e in failed)
        assert certificate(read_credential_set(out)).serial_number == int(first["serial"])
        second = sidecar.issued(count=2)[1]
        assert second["serial"] != first["serial"]
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()


def test_a_refusal_is_logged_verbatim_and_once_exits_nonzero(ca, tmp_path):
    message = "Private key has already been used for a certificate"
    ca.inject("refuse", count=1, message=message)
    done = run_mode("once", ca, common_name="refused.example.com", output_dir=tmp_path / "certs")
    assert done.returncode == 1
    assert f"Refused: {message}" in done.stderr.splitlines()[-1]
    failed = [e for e in log_lines(done.stderr) if e["message"] == "issuance failed"]
    assert failed[0]["error"] == message and failed[0]["reason"] == "Refused"
    assert read_credential_set(tmp_path / "certs") is None
    # The run loop does not give up on a refusal: the next attempt gets through.
    ca.inject("refuse", count=1, message=message)
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        common_name="refused.example.com",
        output_dir=tmp_path / "certs",
        backoff_base="100ms",
    ).start()
    try:
        sidecar.issued()
        assert sidecar.wait_for_log(lambda e: e.get("error") == message)
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()


def _self_signed(key, days_valid: float) -> bytes:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + timedelta(days=days_valid))
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def test_check_exit_codes_and_reasons(ca, tmp_path):
    out = tmp_path / "certs"
    missing = run_mode("check", ca, output_dir=out)
    assert missing.returncode == 1 and "DoesNotExist" in missing.stderr
    assert run_mode("once", ca, common_name="check.example.com", output_dir=out).returncode == 0
    ok = run_mode("check", ca, output_dir=out)
    assert ok.returncode == 0 and "CN=check.example.com" in ok.stdout
    wrong_name = run_mode("check", ca, output_dir=out, common_name="other.example.com")
    assert wrong_name.returncode == 1 and "SubjectMismatch" in wrong_name.stderr

    writer = AtomicDirectoryWriter(out, Ownership())
    files = read_credential_set(out)
    writer.write({**files, "tls.key": private_key_pem(generate_key())}, {"tls.key"})
    mismatch = run_mode("check", ca, output_dir=out)
    assert mismatch.returncode == 1 and "InvalidKeyPair" in mismatch.stderr

    key = ec.generate_private_key(ec.SECP256R1())
    writer.write({"tls.key": private_key_pem(key), "tls.crt": _self_signed(key, -1)}, {"tls.key"})
    expired = run_mode("check", ca, output_dir=out)
    assert expired.returncode == 1 and "Expired" in expired.stderr
    assert len(expired.stderr.strip().splitlines()) == 1


def test_wait_returns_once_a_running_sidecar_has_a_valid_set(ca, tmp_path):
    """The native sidecar's postStart hook: wait blocks while nothing is published, returns 0
    once ``run`` has written a valid set, and gives up at the once timeout saying why."""
    out = tmp_path / "certs"
    gave_up = run_mode("wait", ca, output_dir=out, once_timeout="1s")
    assert gave_up.returncode == 1
    assert "not ready after 1 s (CERT_SIDECAR_ONCE_TIMEOUT): DoesNotExist" in gave_up.stderr
    waiter = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "wait"],
        env=sidecar_env(ca, output_dir=out, common_name="wait.example.com", once_timeout="60s"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        time.sleep(1)
        assert waiter.poll() is None, "wait returned before any set was written"
        sidecar = Sidecar(ca, tmp_path / "run.log", common_name="wait.example.com",
                          output_dir=out).start()  # fmt: skip
        try:
            stdout, _ = waiter.communicate(timeout=30)
            assert waiter.returncode == 0 and "CN=wait.example.com" in stdout
            assert read_credential_set(out) is not None
        finally:
            sidecar.stop()
    finally:
        waiter.kill()


def test_check_never_loads_boto3(tmp_path):
    code = (
        "import sys\nfrom sidecar.main import main\n"
        f"rc = main(['check', '--output-dir', {str(tmp_path)!r}], {{}})\n"
        "print(rc, 'boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert done.stdout.split() == ["1", "False", "False"], done.stderr


def test_the_collector_is_off_while_starting_and_back_on_in_the_renewal_loop(ca, tmp_path):
    """cert-sidecar starts with the garbage collector off (a fifth of its start, which a Pod
    waits for); a long-running loop must turn it back on after its first attempt, or a sidecar
    running for months would never collect a cycle."""
    code = (
        "import gc, os, sys\nfrom sidecar.loop import RenewalLoop\nseen = []\n"
        "real = RenewalLoop.step\n"
        "def step(self):\n"
        "    seen.append(gc.isenabled())\n"
        "    if len(seen) == 2:\n"
        "        print(*seen, flush=True)\n"
        "        os._exit(0)\n"
        "    return real(self)\n"
        "RenewalLoop.step = step\n"
        "from sidecar.start import main\nsys.argv = ['cert-sidecar', 'run']\nmain()\n"
    )
    env = sidecar_env(ca, output_dir=tmp_path / "certs", common_name="gc.example.com")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]
    assert read_credential_set(tmp_path / "certs") is not None


def test_sigterm_during_a_slow_ca_call_exits_cleanly(ca, tmp_path):
    ca.inject("delay", count=1, seconds=30)
    sidecar = Sidecar(
        ca, tmp_path / "run.log", common_name="slow.example.com", output_dir=tmp_path / "certs"
    ).start()
    try:
        sidecar.wait_for_log(lambda e: e["message"] == "issuing certificate")
        time.sleep(0.3)  # let the invoke reach the CA
        assert sidecar.terminate(timeout=5) == 0
    finally:
        sidecar.stop()
    assert any(e["message"] == "stopping" for e in sidecar.logs())


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CERT_SIDECAR_LIFETIME_DAYS", "0"),
        ("CERT_SIDECAR_SANS", "not a domain"),
        ("CERT_SIDECAR_RENEWAL_POINT", "later"),
    ],
)
def test_a_bad_setting_stops_the_process_with_exit_2(ca, tmp_path, variable, value):
    env = sidecar_env(ca, common_name="bad.example.com", output_dir=tmp_path)
    env[variable] = value
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "run"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cert-sidecar: {variable} (--")
