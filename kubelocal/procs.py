"""Processes of a local cluster: start each in its own session tied to its owner, stop it in
order, and poll for readiness.

Every process is started in its own session (a terminal's Ctrl-C reaches only the owner, which
then stops them in order) with PR_SET_PDEATHSIG=SIGKILL (they die if the owner is killed
outright). What is registered here is stopped from atexit and from SIGTERM/SIGHUP handlers too.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol, TypeVar

T = TypeVar("T")


class KubeError(RuntimeError):
    """The control plane, the node or their tools could not be built, started or used."""


class PortTaken(KubeError):
    """A process could not bind the port picked for it."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    message: str = "condition",
    ignore: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Poll until predicate() returns something truthy and return it; TimeoutError otherwise.

    Exceptions of the `ignore` types count as "not yet" (a poll may fail while the thing
    comes up); any other exception ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignore as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}{detail}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def cmdline(pid: int) -> bytes:
    """The process's command line (NUL-separated), or b"" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(owner_pid: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs in the child between fork and exec; the setting survives exec.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != owner_pid:
            os._exit(1)

    return setup


def dies_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for a child that must not outlive this process (even SIGKILLed)."""
    return _child_setup(os.getpid())


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def spawn(
    name: str, argv: list[str], workdir: Path, env: Mapping[str, str] | None = None
) -> Process:
    """Start argv in its own session, output to workdir/NAME.log, killed if the owner dies."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=None if env is None else dict(env),
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid()),
        )
    return Process(name, popen, log)


def signal_group(proc: Process, signum: int) -> None:
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signum)


def stop_process(proc: Process, grace: float) -> None:
    signal_group(proc, signal.SIGTERM)
    try:
        proc.popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # Only while the leader is unreaped is its pid sure to still name this group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()


def check_alive(procs: list[Process]) -> None:
    """Raise KubeError (PortTaken for a lost port) naming the first process that exited."""
    for proc in procs:
        code = proc.popen.poll()
        if code is not None:
            tail = proc.tail()
            error = PortTaken if "address already in use" in tail else KubeError
            raise error(
                f"{proc.name} exited with code {code} while starting; "
                f"last lines of {proc.log}:\n{tail}"
            )


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Clusters and nodes started by this process, stopped at exit and on SIGTERM/SIGHUP.
_live: list[Stoppable] = []
_handlers_installed = False


def register(thing: Stoppable) -> None:
    _install_handlers()
    _live.append(thing)


def unregister(thing: Stoppable) -> None:
    with contextlib.suppress(ValueError):
        _live.remove(thing)


def is_registered(thing: Stoppable) -> bool:
    return any(t is thing for t in _live)


def _stop_all() -> None:
    # Last started first: a node stops before the control plane it joined.
    for thing in reversed(list(_live)):
        thing.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        # Never replace a handler someone else installed.
        with contextlib.suppress(ValueError):  # not the main thread
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_signal)
