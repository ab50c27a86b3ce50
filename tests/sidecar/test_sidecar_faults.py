"""docs/sidecar.md's fault table, row by row: each fault made real (a tmpfs filled up or remounted
read-only, the process run without CAP_CHOWN, a broken `..data`, the local CA hanging, refusing or
gone, real signals), then the exit code and the quoted text checked against the real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sidecar_process import ROOT, Sidecar, sidecar_env
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
from support.localca_fixtures import free_port

from cacore.edge.files import DATA_LINK, read_credential_set

ROWS = rows("docs/sidecar.md")
NOBODY = 65532  # the image's user


@dataclass
class Ctx:
    ca: object
    tmp: Path

    def env(self, **settings: object) -> dict[str, str]:
        settings.setdefault("common_name", "faults.example.com")
        settings.setdefault("output_dir", self.tmp / "certs")
        return sidecar_env(self.ca, **settings)

    def run(self, mode: str, *args: str, env: dict | None = None, user: list[str] | None = None,
            **settings: object) -> Seen:  # fmt: skip
        done = subprocess.run(
            [*(user or []), sys.executable, "-m", "sidecar", mode, *args],
            env=env or self.env(**settings),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        return Seen(done.returncode, done.stdout + done.stderr)

    def start(self, mode: str, **settings: object) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "sidecar", mode],
            env=self.env(**settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def sidecar(self, **settings: object) -> Sidecar:
        settings.setdefault("common_name", "faults.example.com")
        settings.setdefault("output_dir", self.tmp / "certs")
        settings.setdefault("backoff_base", "200ms")
        settings.setdefault("backoff_cap", "1s")
        return Sidecar(self.ca, self.tmp / "run.log", **settings)


def _as_user(capabilities: str = "") -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root (CI runs as root)")
    caps = ["--inh-caps", f"+{capabilities}", "--ambient-caps", f"+{capabilities}"]
    return [
        "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
        *(caps if capabilities else []),
    ]  # fmt: skip


def _running(sidecar: Sidecar) -> Seen:
    """A long-running process that must still be running: stop it, and say so with code None."""
    assert sidecar.proc is not None and sidecar.proc.poll() is None, sidecar.tail()
    assert sidecar.terminate() == 0
    return Seen(None, sidecar.log_path.read_text(errors="replace"))


def _first_issue(ctx: Ctx, out: Path) -> None:
    seen = ctx.run("once", output_dir=out)
    assert seen.code == 0, seen.output


def s1(ctx: Ctx) -> Seen:
    return ctx.run("once", lifetime_days="abc")


def s2(ctx: Ctx) -> Seen:
    return ctx.run("once", once_timeout="99999999999999d")


def s3(ctx: Ctx) -> Seen:
    seen = ctx.run("once", renewal_point="2/0")
    assert "renew_before" not in seen.output
    return seen


def s4(ctx: Ctx) -> Seen:
    out = ctx.tmp / "shared"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    return ctx.run("once", user=_as_user(), output_dir=out, uid=12345)


def s5(ctx: Ctx) -> Seen:
    out = ctx.tmp / "shared"
    out.mkdir()
    out.chmod(0o777)
    before = ctx.ca.stats()["invocations"]
    seen = ctx.run("once", user=_as_user("chown"), output_dir=out, uid=12345, gid=23456)
    assert ctx.ca.stats()["invocations"] == before, "the CA was asked"
    return seen


def s6(ctx: Ctx) -> Seen:
    return ctx.run("once", key_mode="0000")


def s7(ctx: Ctx) -> Seen:
    (ctx.tmp / "a-file").write_text("not a folder")
    before = ctx.ca.stats()["invocations"]
    seen = ctx.run("once", output_dir=ctx.tmp / "a-file")
    assert ctx.ca.stats()["invocations"] == before
    return seen


def s8(ctx: Ctx) -> Seen:
    before = ctx.ca.stats()["invocations"]
    with tmpfs(ctx.tmp / "ro") as mount:
        remount(mount, "ro")
        seen = ctx.run("once", output_dir=mount)
    assert ctx.ca.stats()["invocations"] == before
    return seen


def s9(ctx: Ctx) -> Seen:
    with tmpfs(ctx.tmp / "full") as mount:
        filler = fill(mount)
        before = ctx.ca.stats()["invocations"]
        sidecar = ctx.sidecar(output_dir=mount).start()
        try:
            sidecar.wait_for_log(lambda e: e.get("reason") == "WriteFailed", count=2)
            assert ctx.ca.stats()["invocations"] == before, "the CA was asked"
            filler.unlink()
            sidecar.issued()
            assert read_credential_set(mount) is not None
            return _running(sidecar)
        finally:
            sidecar.stop()


def s10(ctx: Ctx) -> Seen:
    with tmpfs(ctx.tmp / "vol") as mount:
        ctx.ca.inject("delay", seconds=3)
        before = ctx.ca.stats()["invocations"]
        sidecar = ctx.sidecar(output_dir=mount).start()
        try:
            sidecar.wait_for_log(lambda e: e["message"] == "issuing certificate")
            remount(mount, "ro")  # the output was writable when the CA was asked
            sidecar.wait_for_log(lambda e: e.get("reason") == "WriteFailed", timeout=30, count=2)
            remount(mount, "rw")
            sidecar.issued()
            assert ctx.ca.stats()["invocations"] == before + 1, "the CA was asked again"
            return _running(sidecar)
        finally:
            sidecar.stop()


def _broken(ctx: Ctx, how: str) -> Path:
    out = ctx.tmp / "certs"
    _first_issue(ctx, out)
    link = out / DATA_LINK
    link.unlink()
    if how == "nowhere":
        link.symlink_to("..2001_01_01_00_00_00.000000.gone")
    elif how == "itself":
        link.symlink_to(DATA_LINK)
    else:
        link.mkdir()
    return out


def s11(ctx: Ctx) -> Seen:
    return ctx.run("check", output_dir=_broken(ctx, "nowhere"))


def s12(ctx: Ctx) -> Seen:
    out = _broken(ctx, "nowhere")
    seen = ctx.run("once", output_dir=out)
    assert ctx.run("check", output_dir=out).code == 0
    return seen


def s13(ctx: Ctx) -> Seen:
    out = _broken(ctx, "itself")
    seen = ctx.run("once", output_dir=out)
    assert ctx.run("check", output_dir=out).code == 0
    return seen


def s14(ctx: Ctx) -> Seen:
    out = _broken(ctx, "folder")
    seen = ctx.run("once", output_dir=out)
    assert (out / DATA_LINK).is_symlink() and ctx.run("check", output_dir=out).code == 0
    return seen


def s15(ctx: Ctx) -> Seen:
    out = ctx.tmp / "certs"
    sidecar = ctx.sidecar(output_dir=out).start()
    try:
        sidecar.issued()
        version = out / os.readlink(out / DATA_LINK)
        for entry in version.iterdir():
            entry.unlink()
        version.rmdir()
        sidecar.issued(count=2, timeout=40)  # within a heartbeat or two
        assert read_credential_set(out) is not None
        return _running(sidecar)
    finally:
        sidecar.stop()


def s16(ctx: Ctx) -> Seen:
    out = ctx.tmp / "certs"
    sidecar = ctx.sidecar(output_dir=out).start()
    try:
        sidecar.issued()
        before = ctx.ca.stats()["invocations"]
        (out / "tls.crt").unlink()
        (out / "tls.crt").mkdir()
        sidecar.wait_for_log(lambda e: e["message"] == "visible file names restored", timeout=40)
        assert os.readlink(out / "tls.crt") == f"{DATA_LINK}/tls.crt"
        assert ctx.ca.stats()["invocations"] == before, "the CA was asked"
        return _running(sidecar)
    finally:
        sidecar.stop()


def s17(ctx: Ctx) -> Seen:
    ctx.ca.inject("delay", seconds=30)
    return ctx.run("once", once_timeout="3s")  # "still waiting": given up during the call


def s18(ctx: Ctx) -> Seen:
    ctx.ca.inject("refuse", message="bad \x1b[31mred\x1b[0m thing")
    seen = ctx.run("once")
    assert "\x1b" not in seen.output
    return seen


def s19(ctx: Ctx) -> Seen:
    return ctx.run(
        "once", endpoint_url=f"http://127.0.0.1:{free_port()}", once_timeout="3s",
        backoff_base="200ms", backoff_cap="500ms",
    )  # fmt: skip


def s20(ctx: Ctx) -> Seen:
    env = {
        k: v
        for k, v in ctx.env().items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(ctx.tmp / "none"),
        AWS_CONFIG_FILE=str(ctx.tmp / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return ctx.run("once", env=env)


def _signal_once(ctx: Ctx, signum: int) -> Seen:
    ctx.ca.inject("delay", seconds=30)
    proc = ctx.start("once")
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if "issuing certificate" in line:
            break
    time.sleep(0.3)  # let the invoke reach the CA
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)
    return Seen(proc.returncode, seen + out + err)


def s21(ctx: Ctx) -> Seen:
    return _signal_once(ctx, signal.SIGINT)


def s22(ctx: Ctx) -> Seen:
    return _signal_once(ctx, signal.SIGTERM)


def s23(ctx: Ctx) -> Seen:
    ctx.ca.inject("delay", seconds=30)
    sidecar = ctx.sidecar().start()
    try:
        sidecar.wait_for_log(lambda e: e["message"] == "issuing certificate")
        time.sleep(0.3)
        code = sidecar.terminate(timeout=5)  # far less than the CA's 30 s
        return Seen(code, sidecar.log_path.read_text())
    finally:
        sidecar.stop()


def s24(ctx: Ctx) -> Seen:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        return ctx.run("run", listen=f"127.0.0.1:{taken.getsockname()[1]}")


def s25(ctx: Ctx) -> Seen:
    return ctx.run("once", "--bogus")


def s26(ctx: Ctx) -> Seen:
    return ctx.run("once", sans="a.example.com,\nb.example.com")


def s27(ctx: Ctx) -> Seen:
    (ctx.tmp / "config").write_text("[profile real]\nregion = us-east-1\n")
    env = dict(ctx.env(), AWS_PROFILE="gone", AWS_CONFIG_FILE=str(ctx.tmp / "config"))
    before = ctx.ca.stats()["invocations"]
    seen = ctx.run("once", env=env)
    assert ctx.ca.stats()["invocations"] == before
    return seen


def s28(ctx: Ctx) -> Seen:
    env = dict(ctx.env(), AWS_REGION="eu west")
    env.pop("CERT_SIDECAR_REGION", None)
    return ctx.run("once", env=env)


def s29(ctx: Ctx) -> Seen:
    return ctx.run("once", endpoint_url="http://127.0.0.1:99999")


def s30(ctx: Ctx) -> Seen:
    (ctx.tmp / "a-file").write_text("not a folder")
    return ctx.run("check", output_dir=ctx.tmp / "a-file")


def s31(ctx: Ctx) -> Seen:
    out = ctx.tmp / "certs"
    _first_issue(ctx, out)
    seen = ctx.run("check", output_dir=out, common_name="other.example.com")
    assert "common_name" not in seen.output  # a core field name, not what users set
    return seen


def s32(ctx: Ctx) -> Seen:
    before = ctx.ca.stats()["invocations"]
    seen = ctx.run("once", reload_command="reload-my-app --now")
    assert ctx.ca.stats()["invocations"] == before
    return seen


SCENARIOS = scenarios(globals(), "s")


def test_every_documented_fault_has_a_scenario_and_every_scenario_a_row():
    same_ids(ROWS, SCENARIOS)


@pytest.mark.parametrize("row", ROWS, ids=row_ids(ROWS))
def test_fault_table_row(row, ca, tmp_path):
    check(row, SCENARIOS[row.id](Ctx(ca, tmp_path)))


def test_a_deadline_mid_attempt_relays_the_attempt_before(ca, tmp_path):
    """The first call fails at once, the retry hangs past the deadline: the one line still says
    why the earlier attempt failed, since that is often the fix."""
    ca.inject("throttle")
    ca.inject("delay", seconds=30)
    seen = Ctx(ca, tmp_path).run("once", once_timeout="3s", backoff_base="200ms")
    assert seen.code == 1
    last_line = seen.output.strip().splitlines()[-1]
    assert "gave up after 3 s (CERT_SIDECAR_ONCE_TIMEOUT): still waiting for the CA" in last_line
    assert "the attempt before: Throttled:" in last_line
