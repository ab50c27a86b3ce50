"""docs/cli.md's fault table, row by row: each row's fault made real (real files, a real tmpfs,
the local CA with injected faults, real signals), then the exit code and the text the row quotes
checked against the real `ca-cert` process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.fault_tables import (
    Seen,
    check,
    fill,
    remount,
    row_ids,
    rows,
    same_ids,
    scenarios,
    tmpfs,
)
from support.localca_fixtures import csr_pem, free_port

from cacore.certinfo import key_matches
from cacore.keys import load_private_key

BIN = Path(sys.executable).parent
ROWS = rows("docs/cli.md")


@dataclass
class Ctx:
    ca: object
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, **self.ca.env, CA_FUNCTION=self.ca.function_name)
        env["TMPDIR"] = str(self.tmp)
        return env

    def run(self, *args: str, env: dict | None = None, stdin: bytes | None = None) -> Seen:
        done = subprocess.run(
            [str(BIN / "ca-cert"), *args],
            env=env or self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
            cwd=self.tmp,
        )
        text = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        return Seen(done.returncode, text)

    def issue(self, *args: str, out: str = "out", env: dict | None = None) -> Seen:
        return self.run(
            "issue", "--common-name", "partner.example.com", "--out", out, *args, env=env
        )

    def csr_file(self, data: bytes, name: str = "x.csr") -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "ca-cert"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.tmp,
        )

    def server_certs(self) -> Path:
        out = self.tmp / "server"
        seen = self.run("issue", "--common-name", "srv.example.com", "--purpose", "server_auth",
                        "--san", "IP:127.0.0.1", "--out", str(out))  # fmt: skip
        assert seen.code == 0, seen.output
        return out


def _finish(proc: subprocess.Popen, timeout: float = 60) -> Seen:
    out, err = proc.communicate(timeout=timeout)
    return Seen(proc.returncode, out + err)


def _wait_for_line(proc: subprocess.Popen, text: str) -> str:
    """Read stderr until a line holds ``text`` (the process is then past that point)."""
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never came: {seen}")


def _tampered(data: bytes) -> bytes:
    der = x509.load_pem_x509_csr(data).public_bytes(serialization.Encoding.DER)
    changed = der.replace(b"partner.example.com", b"partnet.example.com", 1)
    csr = x509.load_der_x509_csr(changed)
    return csr.public_bytes(serialization.Encoding.PEM)


def c1(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", str(ctx.tmp))


def c2(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", str(ctx.tmp / "none.csr"))


def c3(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", "/dev/zero")


def c4(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", ctx.csr_file(csr_pem() + b"\n" * 70_000))


def c5(ctx: Ctx) -> Seen:
    der = x509.load_pem_x509_csr(csr_pem()).public_bytes(serialization.Encoding.DER)
    return ctx.issue("--csr", ctx.csr_file(der))


def c6(ctx: Ctx) -> Seen:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return ctx.issue("--csr", ctx.csr_file(csr_pem("partner.example.com", weak)))


def c7(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", ctx.csr_file(csr_pem(None, extra_subject={"O": "Partner"})))


def c8(ctx: Ctx) -> Seen:
    return ctx.issue("--csr", ctx.csr_file(_tampered(csr_pem("partner.example.com"))))


def c9(ctx: Ctx) -> Seen:
    path = ctx.csr_file(csr_pem("partner.example.com"))
    return ctx.run("issue", "--csr", path, "--common-name", "other.example.com", "--out", "out")


def c10(ctx: Ctx) -> Seen:
    (ctx.tmp / "a-file").write_text("not a folder")
    return ctx.issue(out=str(ctx.tmp / "a-file"))


def c11(ctx: Ctx) -> Seen:
    before = ctx.ca.stats()["invocations"]
    with tmpfs(ctx.tmp / "ro") as mount:
        remount(mount, "ro")
        seen = ctx.issue(out=str(mount / "out"))
    assert ctx.ca.stats()["invocations"] == before, "the CA was asked"
    return seen


def c12(ctx: Ctx) -> Seen:
    before = ctx.ca.stats()["invocations"]
    with tmpfs(ctx.tmp / "full") as mount:
        (mount / "out").mkdir()
        fill(mount)
        seen = ctx.issue(out=str(mount / "out"))
    assert ctx.ca.stats()["invocations"] == before, "the CA was asked"
    return seen


def c13(ctx: Ctx) -> Seen:
    ctx.ca.inject("delay", seconds=4)
    with tmpfs(ctx.tmp / "vol") as mount:
        proc = ctx.start("issue", "--common-name", "lost.example.com", "--out", str(mount / "out"))
        waited = _wait_for_line(proc, "waiting for the CA function")  # the write test passed
        remount(mount, "ro")
        seen = _finish(proc)
        seen = Seen(seen.code, waited + seen.output)
        assert not (mount / "out" / "tls.crt").exists()
    rescue = Path(re.search(r"saved in (\S+) instead", seen.output).group(1))
    assert rescue.parent == ctx.tmp and (rescue.stat().st_mode & 0o777) == 0o700
    key = load_private_key((rescue / "tls.key").read_bytes())
    assert key_matches(x509.load_pem_x509_certificate((rescue / "tls.crt").read_bytes()), key)
    return seen


def c14(ctx: Ctx) -> Seen:
    ctx.ca.inject("delay", seconds=20)
    return ctx.issue("--timeout", "5")


def c15(ctx: Ctx) -> Seen:
    ctx.ca.inject("refuse", message="bad \x1b[31mred\x1b[0m thing")
    seen = ctx.issue()
    assert "\x1b" not in seen.output, "a raw escape character reached the terminal"
    return seen


def c16(ctx: Ctx) -> Seen:
    ctx.ca.inject("crash")
    return ctx.issue()


def c17(ctx: Ctx) -> Seen:
    ctx.ca.inject("throttle")
    return ctx.issue()


def c18(ctx: Ctx) -> Seen:
    return ctx.issue("--endpoint-url", f"http://127.0.0.1:{free_port()}")


def c19(ctx: Ctx) -> Seen:
    env = {k: v for k, v in ctx.env.items() if not k.startswith("AWS_ACCESS") and "SECRET" not in k}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(ctx.tmp / "none"),
        AWS_CONFIG_FILE=str(ctx.tmp / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return ctx.run("issue", "--common-name", "x.example.com", "--out", "out", env=env)


def c20(ctx: Ctx) -> Seen:
    return ctx.issue("--function", "not a function")


def c21(ctx: Ctx) -> Seen:
    env = dict(ctx.env, CA_MAX_LIFETIME_DAYS="abc")
    return ctx.run("issue", "--common-name", "x.example.com", env=env)


def c22(ctx: Ctx) -> Seen:
    return ctx.issue("--lifetime", "400")


def c23(ctx: Ctx) -> Seen:
    return ctx.issue("--san", "partner.example.com\x1b[2J")


def c24(ctx: Ctx) -> Seen:
    return ctx.issue("--bogus")


def _signal_while_waiting(ctx: Ctx, signum: int) -> Seen:
    ctx.ca.inject("delay", seconds=20)
    proc = ctx.start("issue", "--common-name", "stop.example.com", "--out", "out")
    waited = _wait_for_line(proc, "waiting for the CA function")
    proc.send_signal(signum)
    seen = _finish(proc, timeout=10)
    return Seen(seen.code, waited + seen.output)


def c25(ctx: Ctx) -> Seen:
    return _signal_while_waiting(ctx, signal.SIGINT)


def c26(ctx: Ctx) -> Seen:
    return _signal_while_waiting(ctx, signal.SIGTERM)


def c27(ctx: Ctx) -> Seen:
    certs = ctx.server_certs()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        return ctx.run("serve", f"127.0.0.1:{port}", "--certs", str(certs), "--seconds", "1")


def c28(ctx: Ctx) -> Seen:
    return ctx.run("serve", "127.0.0.1:70000", "--seconds", "1")


def c29(ctx: Ctx) -> Seen:
    (ctx.tmp / "empty").mkdir()
    return ctx.run("handshake", "127.0.0.1:1", "--certs", str(ctx.tmp / "empty"))


def c30(ctx: Ctx) -> Seen:
    junk = ctx.tmp / "junk"
    junk.mkdir()
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (junk / name).write_text("not PEM\n")
    return ctx.run("serve", "127.0.0.1:0", "--certs", str(junk), "--seconds", "1")


def c31(ctx: Ctx) -> Seen:
    certs = ctx.server_certs()
    return ctx.run("handshake", f"127.0.0.1:{free_port()}", "--certs", str(certs))


def c32(ctx: Ctx) -> Seen:
    certs = ctx.server_certs()
    proc = ctx.start("serve", "127.0.0.1:0", "--certs", str(certs))
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    seen = _finish(proc, timeout=10)
    return Seen(seen.code, first + seen.output)


def _untouched(ctx: Ctx, seen: Seen) -> Seen:
    """The CA was not asked, and no --out folder was left behind."""
    assert not (ctx.tmp / "out").exists(), seen.output
    return seen


def c33(ctx: Ctx) -> Seen:
    before = ctx.ca.stats()["invocations"]
    seen = ctx.issue(env=dict(ctx.env, AWS_REGION="eu west"))
    assert ctx.ca.stats()["invocations"] == before
    return _untouched(ctx, seen)


def c34(ctx: Ctx) -> Seen:
    (ctx.tmp / "config").write_text("[profile real]\nregion = us-east-1\n")
    env = dict(ctx.env, AWS_PROFILE="gone", AWS_CONFIG_FILE=str(ctx.tmp / "config"))
    return _untouched(ctx, ctx.issue(env=env))


def c35(ctx: Ctx) -> Seen:
    env = dict(ctx.env, AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:99999")
    return _untouched(ctx, ctx.issue(env=env))


def c36(ctx: Ctx) -> Seen:
    (ctx.tmp / "loop").symlink_to("loop")
    before = ctx.ca.stats()["invocations"]
    seen = ctx.issue(out="loop")
    assert ctx.ca.stats()["invocations"] == before
    return seen


def c37(ctx: Ctx) -> Seen:
    certs = ctx.server_certs()
    plain = ctx.ca.endpoint_url.removeprefix("http://")  # the local CA: HTTP, not TLS
    return ctx.run("handshake", plain, "--certs", str(certs))


SCENARIOS = scenarios(globals(), "c")


def test_every_documented_fault_has_a_scenario_and_every_scenario_a_row():
    same_ids(ROWS, SCENARIOS)


@pytest.mark.parametrize("row", ROWS, ids=row_ids(ROWS))
def test_fault_table_row(row, ca, tmp_path):
    check(row, SCENARIOS[row.id](Ctx(ca, tmp_path)))
