"""A call that may hang (a CA that never answers, a server that trickles one byte a minute) run
with a deadline the caller controls: the work happens on a daemon thread while the calling thread
waits, so the deadline holds whatever the socket does, and a signal (Ctrl-C, SIGTERM) reaches the
calling thread at once instead of after the call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from cacore.errors import Timeout

T = TypeVar("T")
SLOW_AFTER_SECONDS = 3.0


def call_with_deadline(
    work: Callable[[], T],
    seconds: float,
    what: str,
    on_slow: Callable[[float], None] | None = None,
    slow_after: float = SLOW_AFTER_SECONDS,
) -> T:
    """``work()``'s result or exception, or ``Timeout`` once ``seconds`` have passed; ``what``
    names what was awaited, for the message. ``on_slow(seconds_left)`` runs once if the call takes
    longer than ``slow_after`` (to tell a person what is being waited for)."""
    done = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=body, name="deadline-call", daemon=True).start()
    if on_slow is not None and slow_after < seconds and not done.wait(slow_after):
        on_slow(seconds - (time.monotonic() - started))
    if not done.wait(max(0.0, seconds - (time.monotonic() - started))):
        raise Timeout(f"{what} did not answer within {seconds:g} s")
    if failure:
        raise failure[0]
    return outcome[0]
