"""``cert-sidecar``: parse settings, then run one of the modes.

Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table): 0 done (or healthy, for
``check``), 1 no usable certificate / gave up, 2 bad settings. ``check`` never imports boto3: it
is an exec probe and must stay fast and light.
"""

from __future__ import annotations

import logging
import os
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
from cacore.edge import jsonlog
from sidecar.settings import Settings, SettingsError, load

if TYPE_CHECKING:
    from sidecar.loop import RenewalLoop

log = logging.getLogger("sidecar")
EXIT_OK, EXIT_NOT_READY, EXIT_USAGE = exitcodes.OK, exitcodes.FAILED, exitcodes.USAGE
STOP_GRACE_SECONDS = 0.8  # SIGTERM must end the process within a second


def check(settings: Settings) -> int:
    from cacore.edge.files import read_credential_set
    from sidecar.observe import observe
    from sidecar.policy import readiness_problem, subject_mismatch

    observed = observe(read_credential_set(settings.output_dir), settings.names)
    problem = readiness_problem(observed, datetime.now(UTC))
    if problem is None and settings.request is not None:
        assert observed.certificate is not None  # a ready set has a certificate
        problem = subject_mismatch(observed.certificate, settings.request)
    if problem:
        print(
            f"not ready: {problem.reason}: {problem.message} ({settings.output_dir})",
            file=sys.stderr,
        )
        return EXIT_NOT_READY
    cert = observed.certificate
    assert cert is not None
    print(f"ok: {cert.subject.rfc4514_string()} valid until {cert.not_valid_after_utc.isoformat()}")
    return EXIT_OK


def _make_loop(settings: Settings) -> RenewalLoop:
    from cacore.edge.client import ca_client
    from sidecar.loop import RenewalLoop  # noqa: F811 - at run time, keeping check light
    from sidecar.notify import notify

    client = ca_client(settings.ca)
    return RenewalLoop(
        settings,
        issuer=client.issue_with_new_key,
        notifier=partial(notify, settings.reload),
    )


def once(settings: Settings) -> int:
    loop = _make_loop(settings)
    ok, message = loop.once(settings.once_timeout)
    if not ok:
        log.error("no certificate in place", extra={"fields": {"error": message}})
        print(f"cert-sidecar: {message}", file=sys.stderr)
        return EXIT_NOT_READY
    return EXIT_OK


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
        except OSError as error:
            print(
                f"cert-sidecar: CERT_SIDECAR_LISTEN (--listen): cannot listen on "
                f"{settings.listen[0]}:{settings.listen[1]}: {error.strerror}; choose a free "
                "port or off",
                file=sys.stderr,
            )
            return EXIT_USAGE
        server.start()
    host, port = server.address if server else ("", 0)
    log.info(
        "starting",
        extra={
            "fields": {
                "mode": "run",
                "function": settings.ca.function,
                "endpoint_url": settings.ca.endpoint_url,
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
    worker.join(STOP_GRACE_SECONDS)
    return EXIT_NOT_READY if crashed else EXIT_OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started = time.monotonic()
    try:
        settings = load(
            sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ
        )
    except SettingsError as error:
        print(f"cert-sidecar: {error}", file=sys.stderr)
        return EXIT_USAGE
    if settings.mode == "check":
        return check(settings)
    jsonlog.configure(settings.log_level)
    log.debug("settings loaded", extra={"fields": {"seconds": time.monotonic() - started}})
    if settings.mode == "once":
        return once(settings)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
