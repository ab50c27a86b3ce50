"""HTTP health and metrics: /healthz (the loop is alive), /readyz (a valid certificate is on
disk), /metrics (Prometheus text). A stdlib server on a daemon thread: nothing else to load."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sidecar.state import State, render_metrics

log = logging.getLogger("sidecar.health")


class HealthServer:
    def __init__(
        self, address: tuple[str, int], state: State, max_silence: float, max_busy: float
    ) -> None:
        self.state = state
        self.max_silence = max_silence
        self.max_busy = max_busy
        owner = self

        class Handler(BaseHTTPRequestHandler):
            # A client that opens a connection and says nothing must not hold a thread for ever.
            timeout = 10

            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                status, body, kind = owner.respond(self.path.split("?", 1)[0])
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # probes every few seconds would drown the logs

        self.server = ThreadingHTTPServer(address, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 3600},
            daemon=True,
            name="health",
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def respond(self, path: str) -> tuple[int, str, str]:
        text = "text/plain; charset=utf-8"
        if path == "/healthz":
            if self.state.alive(time.monotonic(), self.max_silence, self.max_busy):
                return 200, "ok\n", text
            return 503, "renewal loop stalled or stopped\n", text
        if path == "/readyz":
            with self.state.lock:
                ready = self.state.ready and (
                    self.state.not_after is None or datetime.now(UTC) < self.state.not_after
                )
                reason = self.state.ready_reason
            return (200, "ok\n", text) if ready else (503, f"not ready: {reason}\n", text)
        if path == "/metrics":
            return 200, render_metrics(self.state), "text/plain; version=0.0.4; charset=utf-8"
        return 404, "not found: try /healthz, /readyz or /metrics\n", text
