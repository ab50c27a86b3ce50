"""``cert-sidecar``: parse settings, then run one of the modes.

Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table): 0 done (or healthy, for
``check``), 1 no usable certificate / gave up, 2 bad settings. ``check`` never imports boto3: it
is an exec probe and must stay fast and light.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from cacore import exitcodes
from cacore.edge import cli, jsonlog
from cacore.edge.cli import Terminated, sigterm_raises
from cacore.text import printable
from sidecar.settings import Settings, SettingsError, label, load

if TYPE_CHECKING:
    from sidecar.loop import AttemptFailed, RenewalLoop

log = logging.getLogger("sidecar")
EXIT_OK, EXIT_NOT_READY, EXIT_USAGE = exitcodes.OK, exitcodes.FAILED, exitcodes.USAGE
STOP_GRACE_SECONDS = 0.5  # SIGTERM must end the process within a second
ONCE_GRACE_SECONDS = 1.0  # past CERT_SIDECAR_ONCE_TIMEOUT, for the loop to report its last failure
INTERNAL_ERROR = "InternalError"
# wait mode: a look costs about a millisecond; quick while the first issuance is normally due
# (the kubelet starts the app when the hook returns), then calmer while the CA is slow or down.
WAIT_POLL_SECONDS, WAIT_POLL_QUICK_SECONDS, WAIT_QUICK_FOR_SECONDS = 0.25, 0.02, 3.0


def check(settings: Settings) -> int:
    problem, summary = _inspect(settings)
    if problem:
        say(f"not ready: {problem} ({settings.output_dir})")
        return EXIT_NOT_READY
    print(summary)
    return EXIT_OK


def wait(settings: Settings) -> int:
    """Until ``check`` passes, for a native sidecar's postStart hook: the kubelet starts the app
    the moment this returns, instead of at the next tick of a startup probe."""
    started = time.monotonic()
    deadline = started + settings.once_timeout
    while True:
        problem, summary = _inspect(settings)
        if problem is None:
            print(summary)
            return EXIT_OK
        if time.monotonic() >= deadline:
            say(
                f"not ready after {settings.once_timeout:g} s (CERT_SIDECAR_ONCE_TIMEOUT): "
                f"{problem} ({settings.output_dir})"
            )
            return EXIT_NOT_READY
        quick = time.monotonic() - started < WAIT_QUICK_FOR_SECONDS
        time.sleep(WAIT_POLL_QUICK_SECONDS if quick else WAIT_POLL_SECONDS)


def _inspect(settings: Settings) -> tuple[str | None, str]:
    """(what keeps the set from being ready, or None; the one-line summary of a ready set)."""
    from cacore.edge.files import UnreadableSet, read_credential_set
    from sidecar.observe import observe, unreadable
    from sidecar.policy import readiness_problem, subject_mismatch

    try:
        observed = observe(read_credential_set(settings.output_dir), settings.names)
    except UnreadableSet as error:
        observed = unreadable(str(error))
    problem = readiness_problem(observed, datetime.now(UTC))
    if problem is None and settings.request is not None:
        assert observed.certificate is not None  # a ready set has a certificate
        problem = subject_mismatch(observed.certificate, settings.request)
    if problem:
        return f"{problem.reason}: {problem.message}", ""
    cert = observed.certificate
    assert cert is not None
    summary = (
        f"ok: {cert.subject.rfc4514_string()} valid until {cert.not_valid_after_utc.isoformat()}"
    )
    return None, printable(summary, 2000)


def say(message: str) -> None:
    """One line on stderr, made safe for a terminal (it may quote a certificate or the CA)."""
    print(f"cert-sidecar: {printable(message, 2000)}", file=sys.stderr, flush=True)


def preflight(settings: Settings) -> str | None:
    """Settings that cannot work with this process's powers, refused before anything is asked
    of the CA: files it could not give away or could not read back would be issued once and
    never renewed."""
    from cacore.credentials import ownership_problem
    from cacore.edge.process import current_process

    command = settings.reload.command
    if command and shutil.which(command[0]) is None:
        # It runs in this container: a program that is not here would fail after every renewal.
        return (
            f"{label('reload_command')}: {command[0]!r} is not an executable program in this "
            "container (checked on PATH); give its full path, or a command the image has"
        )
    found = ownership_problem(settings.ownership, current_process())
    if found is None:
        return None
    setting, message = found
    related = {"uid": "uid", "gid": "gid", "key_mode": "key_mode", "file_mode": "file_mode"}
    return f"{label(related.get(setting, setting))}: {message}"


def _make_loop(settings: Settings) -> RenewalLoop:
    from sidecar.loop import IssueWithNewKey, RenewalLoop  # noqa: F811 - at run time: check stays light
    from sidecar.notify import notify

    issuer: IssueWithNewKey
    if settings.kube is not None:  # CERT_SIDECAR_ISSUER=kubernetes: no AWS, no boto3
        from sidecar.kubeissuer import kubernetes_issuer

        issuer = kubernetes_issuer(settings.kube)
    else:
        from cacore.edge.client import ca_client

        issuer = ca_client(settings.ca).issue_with_new_key
    return RenewalLoop(settings, issuer=issuer, notifier=partial(notify, settings.reload))


def once(settings: Settings) -> int:
    """Issue if needed and exit. The loop runs on a worker thread while this one waits, so
    ``CERT_SIDECAR_ONCE_TIMEOUT`` holds even while a CA call hangs, and Ctrl-C or SIGTERM end
    the process at once with one log line (130, 143)."""
    loop = _make_loop(settings)
    stop = threading.Event()
    result: list[tuple[bool, str]] = []

    def body() -> None:
        try:
            result.append(loop.once(settings.once_timeout, stop))
        except Exception as error:  # reported by the waiting thread
            result.append((False, f"{INTERNAL_ERROR}: {type(error).__name__}: {error}"))

    worker = threading.Thread(target=body, name="once", daemon=True)
    try:
        with sigterm_raises():
            worker.start()
            worker.join(settings.once_timeout + ONCE_GRACE_SECONDS)
    except (KeyboardInterrupt, Terminated) as stopped:
        stop.set()
        signum = stopped.signum if isinstance(stopped, Terminated) else signal.SIGINT
        name = signal.Signals(signum).name
        log.error("stopped", extra={"fields": {"signal": name, "in_place": False}})
        say(f"stopped by {name} before a certificate was in place")
        return exitcodes.for_signal(signum)
    if not result:
        stop.set()
        busy = loop.state.busy_since is not None
        message = _timed_out(settings, busy=busy, last=loop.last_failure)
    else:
        ok, message = result[0]
        if ok:
            return EXIT_OK
    log.error("no certificate in place", extra={"fields": {"error": message}})
    say(message)
    failure = loop.last_failure
    return EXIT_USAGE if result and failure is not None and failure.usage else EXIT_NOT_READY


def _timed_out(settings: Settings, busy: bool, last: AttemptFailed | None) -> str:
    """The deadline passed mid-attempt: say what was awaited and relay the attempt before,
    which often holds the fix (a CSR pending approval says who may approve it)."""
    if not busy:
        waiting = "the work to end"
    elif settings.kube is not None:
        waiting = f"the signer {settings.kube.signer_name} to answer"
    else:
        waiting = f"the CA to answer (function {settings.ca.function})"
    message = (
        f"gave up after {settings.once_timeout:g} s (CERT_SIDECAR_ONCE_TIMEOUT): "
        f"still waiting for {waiting}"
    )
    return f"{message}; the attempt before: {last.reason}: {last.message}" if last else message


def run(settings: Settings) -> int:
    from sidecar.health import HealthServer
    from sidecar.loop import HEARTBEAT_SECONDS

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    loop = _make_loop(settings)
    server = None
    if settings.listen:
        try:
            server = HealthServer(
                settings.listen,
                loop.state,
                max_silence=3 * HEARTBEAT_SECONDS,
                max_busy=settings.ca.read_timeout + settings.ca.connect_timeout + 60,
            )
        except (OSError, OverflowError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            say(
                f"{label('listen')}: cannot listen on {settings.listen[0]}:{settings.listen[1]}: "
                f"{reason}; choose a free port or off"
            )
            return EXIT_USAGE
        server.start()
    host, port = server.address if server else ("", 0)
    log.info(
        "starting",
        extra={
            "fields": {
                "mode": "run",
                "issuer": settings.issuer,
                **(
                    {"signer": settings.kube.signer_name, "api": settings.kube.api_url}
                    if settings.kube
                    else {
                        "function": settings.ca.function,
                        "endpoint_url": settings.ca.endpoint_url,
                    }
                ),
                "output_dir": str(settings.output_dir),
                "common_name": loop.request.common_name,
                "listen": f"{host}:{port}" if server else "off",
            }
        },
    )
    crashed: list[BaseException] = []

    def body() -> None:
        try:
            loop.run(stop)
        except BaseException as error:  # reported below; the orchestrator restarts us
            crashed.append(error)
            log.exception("renewal loop crashed")
        finally:
            loop.state.loop_done = True
            stop.set()

    worker = threading.Thread(target=body, name="renewal-loop", daemon=True)
    worker.start()
    # The main thread only waits, so a signal is handled at once even while the worker is in
    # the middle of a call to the CA (which may take minutes).
    while not stop.wait(3600):
        pass
    # A write in progress is let finish (it is quick, and atomic anyway); a CA call is not
    # waited for: its answer would be for a key nobody keeps.
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while loop.state.writing and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.join(0.05 if loop.state.busy_since is not None else STOP_GRACE_SECONDS)
    return EXIT_NOT_READY if crashed else EXIT_OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started = time.monotonic()
    try:
        settings = load(
            sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ
        )
    except SettingsError as error:
        say(str(error))
        return EXIT_USAGE
    if settings.mode == "check":
        return cli.run("cert-sidecar", lambda: check(settings))
    if settings.mode == "wait":
        return cli.run("cert-sidecar", lambda: wait(settings))
    jsonlog.configure(settings.log_level)
    problem = preflight(settings)
    if problem:
        log.error("unusable settings", extra={"fields": {"error": problem}})
        say(problem)
        return EXIT_USAGE
    log.debug("settings loaded", extra={"fields": {"seconds": time.monotonic() - started}})
    if settings.mode == "once":
        code = cli.run("cert-sidecar", lambda: once(settings))
    else:
        code = run(settings)
    # Stop now: a worker blocked in a CA call (or the interpreter tearing down boto3) must not
    # hold up a stop the orchestrator asked for, nor write to stderr while the interpreter
    # finalises it. Logs and output are flushed first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
