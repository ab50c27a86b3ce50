"""Where the operator relies on kopf beyond its handler API: the settings that keep kopf alive
through control-plane faults, and one reach into its internals. Checked with the kopf versions
in ``pyproject.toml`` (1.45.x); ``install`` refuses to start on a kopf that does not fit.

What kopf does by itself, and what is done about it here (docs/operator.md, "kopf versions"):

- **An API outage longer than ~100 s stops the operator.** kopf retries a request 8 times
  (1+1+2+3+5+8+13+21 s) and then escalates; for the peering keep-alive that is fatal: the whole
  operator shuts down. Here requests are retried for as long as the outage lasts
  (``RetryForever``), with the delay capped at a few seconds so recovery is seen quickly.
  Once the shutdown has begun, a failing request is not retried: kopf retries 403 Forbidden
  too, and after ``helm uninstall`` has removed the role its last peering write would otherwise
  hold the exit until the shutdown budget ran out.
- **Its shutdown can hang** (kopf 1.41.0 to at least 1.45.2): a watch request still retrying when
  its stop-future resolves is meant to be cancelled by a done-callback that calls
  ``asyncio.current_task()``, which is None in a callback (AssertionError, "Exception in callback
  stream.<locals>.request_cancel_callback"); with the API unreachable such watchers never finish
  stopping, the liveness endpoint is gone, and a later SIGTERM is ignored because kopf's stop
  future is already resolved. kopf's own last resort fires after 10 minutes. Here it fires after
  the shutdown budget (``ultimate_exiting_timeout``), and ``health.Watchdog`` ends the process on
  its own as well.
- **The peering pause is not visible to handlers.** kopf pauses its watch streams when a peer of
  higher (or equal) priority is alive, and stops daemons; it tells nothing else. This operator has
  no per-object daemons, so it takes kopf's pause state (the ``ToggleSet`` kopf hands to its
  daemon killer) and stops passes and CA calls while it is on.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import kopf

KOPF_DAEMON_KILLER = "kopf._core.engines.daemons.daemon_killer"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # then MAX_RETRY_DELAY for as long as it takes
MAX_RETRY_DELAY = 5.0
KOPF_WORKERS = 100


class RetryForever:
    """kopf's ``error_backoffs``: an iterable without a length is retried without end, and each
    request iterates it afresh. It ends once ``stopping()`` is true: kopf then makes one last
    attempt and gives up."""

    def __init__(self, stopping: Callable[[], bool] = lambda: False) -> None:
        self.stopping = stopping

    def __iter__(self) -> Iterator[float]:
        for delay in itertools.chain(RETRY_DELAYS, itertools.repeat(MAX_RETRY_DELAY)):
            if self.stopping():
                return
            yield delay


def tune(
    settings: kopf.OperatorSettings, shutdown_seconds: float, stopping: Callable[[], bool]
) -> None:
    settings.networking.error_backoffs = RetryForever(stopping)
    settings.process.ultimate_exiting_timeout = shutdown_seconds
    # kopf runs one worker task per object with events, all at once: a restart at 10,000
    # objects was 10,000 tasks (and their bodies) in memory together. A bound keeps the watch
    # stream waiting instead; the handlers here only record, so workers end quickly (and end
    # sooner after their last event than kopf's default 5 s).
    settings.queueing.worker_limit = KOPF_WORKERS
    settings.queueing.idle_timeout = 1.0
    # Probes of kopf's own liveness endpoint (kopf run --liveness) log no access line each.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class PauseState:
    """Whether kopf has paused the operator (peering: a higher or equal priority peer is alive;
    or the peering CRD is missing while peering is on)."""

    def __init__(self) -> None:
        self._toggles: Any = None  # kopf's aiotoggles.ToggleSet

    def paused(self) -> bool:
        return self._toggles is not None and bool(self._toggles.is_on())

    def capture(self, toggles: Any) -> None:
        self._toggles = toggles

    async def next_resume(self) -> None:
        """Until the operator is paused and then resumed (never, without peering)."""
        while self._toggles is None:
            await asyncio.sleep(1)
        await self._toggles.wait_for(True)
        await self._toggles.wait_for(False)


PAUSE = PauseState()
_installed = False


def install() -> None:
    """Take kopf's pause state from where kopf creates its daemon killer. Must run before the
    operator starts (at import of the handlers, which both ``kopf run`` and the CLI do)."""
    global _installed
    if _installed:
        return
    from kopf._core.engines import daemons

    original = daemons.daemon_killer
    parameters = inspect.signature(original).parameters
    if "operator_paused" not in parameters:
        raise RuntimeError(
            f"kopf {getattr(kopf, '__version__', '?')}: {KOPF_DAEMON_KILLER} takes no "
            "operator_paused; install the kopf version pyproject.toml names"
        )

    def daemon_killer(**kwargs: Any) -> Any:
        # Called (not awaited) by kopf's spawn_tasks before any handler runs.
        PAUSE.capture(kwargs["operator_paused"])
        return original(**kwargs)

    daemons.daemon_killer = daemon_killer  # kopf: see the module's docstring
    _installed = True
