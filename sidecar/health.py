"""HTTP health and metrics: /healthz (the loop is alive), /readyz (a valid certificate is on
disk), /metrics (Prometheus text).

A few lines of HTTP/1.0 over ``selectors`` on one daemon thread rather than ``http.server``:
that module pulls in ``http.client``, ``email`` and ``html`` (about 1 MB of RSS in a process of
35; docs/sidecar.md). One thread serves every client, so hostile clients cost bounded memory:
a request is at most ``MAX_REQUEST_BYTES``, a client gets ``CLIENT_SECONDS`` in all to send it,
and past ``MAX_CLIENTS`` connections the oldest is dropped (a probe is always the newest)."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from datetime import UTC, datetime

from sidecar.state import State, render_metrics

log = logging.getLogger("sidecar.health")

MAX_REQUEST_BYTES = 8192  # request line and headers; kubelet's probe sends about 150
CLIENT_SECONDS = 10.0  # a client that says nothing must not hold a slot for ever
MAX_CLIENTS = 32
TEXT = "text/plain; charset=utf-8"
METRICS = "text/plain; version=0.0.4; charset=utf-8"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _Client:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.request = bytearray()
        self.reply = b""  # set once the request is complete
        self.done = False  # the reply is sent; the connection closes when the client is done


def response(
    status: int, body: str, kind: str = TEXT, head_only: bool = False, extra: str = ""
) -> bytes:
    data = body.encode()
    header = (
        f"HTTP/1.0 {status} {REASONS[status]}\r\nContent-Type: {kind}\r\n{extra}"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return header if head_only else header + data


class HealthServer:
    def __init__(
        self,
        address: tuple[str, int],
        state: State,
        max_silence: float,
        max_busy: float,
        client_seconds: float = CLIENT_SECONDS,
    ) -> None:
        self.state = state
        self.max_silence = max_silence
        self.max_busy = max_busy
        self.client_seconds = client_seconds
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.create_server(address, family=family, backlog=MAX_CLIENTS)
        self.listener.setblocking(False)
        self._wake_read, self._wake_write = socket.socketpair()
        self._closing = False
        self.clients: dict[socket.socket, _Client] = {}
        self.thread = threading.Thread(target=self.serve, daemon=True, name="health")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop serving and release the port (the process exits without it; tests call it)."""
        self._closing = True
        if self.thread.is_alive():
            # The loop may see ``_closing`` and end before this wakes it (its end of the wake
            # pair then closed: a broken pipe); the writing end is only ever closed here.
            with contextlib.suppress(OSError):
                self._wake_write.send(b"x")
            self.thread.join(5)
        else:
            self.listener.close()
            self._wake_read.close()
        self._wake_write.close()

    # --- the loop ----------------------------------------------------------------------------

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while not self._closing:
                deadlines = [c.deadline for c in self.clients.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for key, _events in selector.select(timeout):
                    if key.fileobj is self.listener:
                        self._accept(selector)
                    elif key.fileobj in self.clients:
                        self._serve_client(selector, self.clients[key.fileobj])
                now = time.monotonic()
                for client in [c for c in self.clients.values() if c.deadline <= now]:
                    self._drop(selector, client)
        finally:
            for client in list(self.clients.values()):
                self._drop(selector, client)
            selector.close()
            self.listener.close()
            self._wake_read.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, _peer = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # e.g. out of file descriptors: make room, try later
                log.warning("health: cannot accept", extra={"fields": {"error": str(error)}})
                if self.clients:
                    self._drop(selector, min(self.clients.values(), key=lambda c: c.deadline))
                else:
                    time.sleep(0.1)  # the listener stays readable: do not spin on it
                return
            if len(self.clients) >= MAX_CLIENTS:
                self._drop(selector, min(self.clients.values(), key=lambda c: c.deadline))
            sock.setblocking(False)
            client = _Client(sock, time.monotonic() + self.client_seconds)
            self.clients[sock] = client
            selector.register(sock, selectors.EVENT_READ)

    def _drop(self, selector: selectors.BaseSelector, client: _Client) -> None:
        self.clients.pop(client.sock, None)
        selector.unregister(client.sock)
        client.sock.close()

    def _serve_client(self, selector: selectors.BaseSelector, client: _Client) -> None:
        try:
            if client.done:
                # A lingering close: what the client still sends is read and dropped until it
                # closes (or its deadline), so a reset cannot discard the reply on its way.
                if not client.sock.recv(4096):
                    self._drop(selector, client)
                return
            if not client.reply:
                data = client.sock.recv(4096)
                if not data:
                    self._drop(selector, client)  # gone before finishing its request
                    return
                client.request += data
                reply = self.answer(bytes(client.request))
                if reply is None:
                    return  # more to come
                client.reply, client.request = reply, bytearray()
                selector.modify(client.sock, selectors.EVENT_WRITE)
            sent = client.sock.send(client.reply)
            client.reply = client.reply[sent:]
            if not client.reply:
                client.done = True
                client.sock.shutdown(socket.SHUT_WR)
                selector.modify(client.sock, selectors.EVENT_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(selector, client)

    # --- HTTP ----------------------------------------------------------------------------------

    def answer(self, request: bytes) -> bytes | None:
        """The reply to a request's bytes so far; None while its head is incomplete."""
        end = request.find(b"\r\n\r\n")
        if end < 0:
            end = request.find(b"\n\n")  # bare LF line ends, as http.server accepts
        if end < 0:
            if len(request) > MAX_REQUEST_BYTES:
                return response(431, "request head too large\n")
            return None
        if end > MAX_REQUEST_BYTES:
            return response(431, "request head too large\n")
        line = request[: request.find(b"\n")].rstrip(b"\r").decode("latin-1")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return response(400, f"bad request line: {line[:100]!r}\n")
        method, target, _version = parts
        if method not in ("GET", "HEAD"):
            body = f"method {method[:20]} not allowed: use GET\n"
            return response(405, body, extra="Allow: GET, HEAD\r\n")
        status, body, kind = self.respond(target.split("?", 1)[0])
        return response(status, body, kind, head_only=method == "HEAD")

    def respond(self, path: str) -> tuple[int, str, str]:
        if path == "/healthz":
            if self.state.alive(time.monotonic(), self.max_silence, self.max_busy):
                return 200, "ok\n", TEXT
            return 503, "renewal loop stalled or stopped\n", TEXT
        if path == "/readyz":
            with self.state.lock:
                ready = self.state.ready and (
                    self.state.not_after is None or datetime.now(UTC) < self.state.not_after
                )
                reason = self.state.ready_reason
            return (200, "ok\n", TEXT) if ready else (503, f"not ready: {reason}\n", TEXT)
        if path == "/metrics":
            return 200, render_metrics(self.state), METRICS
        return 404, "not found: try /healthz, /readyz or /metrics\n", TEXT
