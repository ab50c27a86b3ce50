"""Liveness that means something, and an end to every hang.

A thread of its own (it keeps working when the event loop does not) watches:

- the event loop: a heartbeat task ticks every second; no tick for ``stall_seconds`` means a
  blocked loop (a blocking call, a livelock): nothing will recover by itself;
- the operator's workers and, under the CLI, kopf's root tasks (its watchers and peering among
  them): one that ends while the operator runs means part of it is dead while the rest looks
  alive, so the operator stops;
- shutdown: once it starts (SIGTERM, or a part that died), the process must be gone within
  ``shutdown_seconds``.

From then on the liveness endpoint answers 503 with the reason; a stalled loop or a shutdown
past its budget is logged and ends the process with exit code 1 (``cacore.exitcodes.FAILED``),
so the kubelet or a supervisor starts a fresh one. The endpoint itself is served from
this thread, answers in microseconds and logs nothing per probe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from cacore import exitcodes

log = logging.getLogger("certoperator")
HEARTBEAT_SECONDS = 1.0


class Watchdog:
    def __init__(
        self,
        stall_seconds: float = 30.0,
        shutdown_seconds: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.stall_seconds, self.shutdown_seconds = stall_seconds, shutdown_seconds
        self._clock, self._exit = clock, exit
        self._beat = clock()
        self._watched: list[tuple[str, asyncio.Task[object]]] = []
        self._stopping_at: float | None = None
        self._failure: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None

    # --- fed by the event loop -----------------------------------------------------------------

    async def heartbeat(self) -> None:
        while True:
            self._beat = self._clock()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def watch(self, name: str, tasks: Iterable[asyncio.Task[object]]) -> None:
        """Tasks that must live as long as the operator runs."""
        with self._lock:
            self._watched.extend((name, task) for task in tasks)

    def is_stopping(self) -> bool:
        with self._lock:
            return self._stopping_at is not None

    def stopping(self, why: str) -> None:
        """Shutdown began: from now on the process has ``shutdown_seconds`` to be gone."""
        with self._lock:
            if self._stopping_at is None:
                self._stopping_at = self._clock()
                log.info("operator stopping", extra={"fields": {"why": why,
                         "deadline_seconds": self.shutdown_seconds}})  # fmt: skip

    # --- the judgement, from the watchdog's own thread -----------------------------------------

    def problem(self) -> str | None:
        """Why the process must not be considered alive, or None. A watched task that ended
        while the operator was running starts the shutdown clock: what remains gets the
        shutdown budget to stop in order, then the process ends anyway."""
        now = self._clock()
        with self._lock:
            if self._failure is not None:
                return self._failure
            if self._stopping_at is None:
                dead = next((name for name, task in self._watched if task.done()), None)
                stalled = now - self._beat
                if stalled > self.stall_seconds:
                    return f"the event loop has not run for {stalled:.0f} s"
                if dead is None:
                    return None
                self._stopping_at = now
                log.error("part of the operator ended while it was running; stopping",
                          extra={"fields": {"task": dead}})  # fmt: skip
            if now - self._stopping_at > self.shutdown_seconds:
                return f"did not stop within {self.shutdown_seconds:g} s"
            return "stopping"

    def check(self) -> None:
        """One round: end the process for anything a restart fixes."""
        problem = self.problem()
        if problem is None or problem == "stopping":
            return
        with self._lock:
            self._failure = problem
        log.critical("operator is not alive; exiting so that it is restarted",
                     extra={"fields": {"problem": problem}})  # fmt: skip
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        self._exit(exitcodes.FAILED)

    def start(self, period: float = 1.0) -> None:
        def run() -> None:
            while True:
                time.sleep(period)
                self.check()

        self._thread = threading.Thread(target=run, name="watchdog", daemon=True)
        self._thread.start()

    # --- the liveness endpoint -----------------------------------------------------------------

    def serve(self, url: str) -> None:
        """``http://ADDRESS:PORT/PATH``: 200 while alive, 503 with the reason otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.port is None:
            raise ValueError(f"--liveness: {url!r} is not http://ADDRESS:PORT/PATH")
        watchdog, path = self, parts.path or "/"

        class Probe(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
                if self.path.split("?")[0] != path:
                    self.send_error(404)
                    return
                problem = watchdog.problem()
                body = json.dumps({"status": "ok" if problem is None else problem}).encode()
                self.send_response(200 if problem is None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds: no line each

        server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port), Probe)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="liveness", daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
