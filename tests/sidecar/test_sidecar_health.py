"""The health server over real loopback sockets: the three endpoints, what other requests get,
and that hostile clients (silent, slow, huge heads, too many) neither hang it nor grow it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sidecar import health
from sidecar.health import HealthServer
from sidecar.state import State


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, State]]:
    state = State()
    server = HealthServer(("127.0.0.1", 0), state, max_silence=30, max_busy=90, client_seconds=1)
    server.start()
    yield server, state
    server.close()


def test_close_while_the_loop_is_ending_on_its_own(served):
    """close() sets the flag, then wakes the loop; the loop may see the flag first and end. Here
    that order is made certain: the loop has ended, yet close() still sees its thread alive."""
    server, _ = served
    server._closing = True
    # Refused: it has ended already; reset: it ended with this connection still in the backlog.
    with contextlib.suppress(ConnectionRefusedError, ConnectionResetError):
        socket.create_connection(server.address).close()  # one more turn of the loop: it ends
    server.thread.join(5)
    assert not server.thread.is_alive()

    class SeenAliveAMomentAgo:
        def is_alive(self) -> bool:
            return True

        def join(self, timeout: float) -> None:
            pass

    server.thread = SeenAliveAMomentAgo()  # type: ignore[assignment]
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1)


def exchange(server: HealthServer, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def status_and_body(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    return status_and_body(
        exchange(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    )


def test_the_endpoints_follow_the_state(served):
    server, state = served
    assert get(server, "/healthz")[0] == 200
    status, headers, body = get(server, "/readyz")
    assert (status, body) == (503, b"not ready: DoesNotExist\n")
    assert headers["Content-Length"] == str(len(body))
    with state.lock:
        state.ready, state.not_after = True, datetime.now(UTC) + timedelta(days=1)
    assert get(server, "/readyz?verbose")[:3:2] == (200, b"ok\n")
    with state.lock:
        state.not_after = datetime.now(UTC) - timedelta(seconds=1)  # expired on disk
    assert get(server, "/readyz")[0] == 503
    state.loop_done = True
    assert get(server, "/healthz")[::2] == (503, b"renewal loop stalled or stopped\n")
    status, headers, body = get(server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE cert_sidecar_" in body


def test_other_requests_get_404_405_400_and_head_gets_no_body(served):
    server, _ = served
    assert get(server, "/")[0] == 404
    status, headers, _ = get(server, "/healthz", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = get(server, "/healthz", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "3", b"")
    assert status_and_body(exchange(server, b"nonsense\r\n\r\n"))[0] == 400
    assert status_and_body(exchange(server, b"GET /healthz\n\n"))[0] == 400  # no version


def test_a_head_too_large_is_refused_at_once(served):
    server, _ = served
    huge = b"GET /healthz HTTP/1.1\r\nX-A: " + b"b" * 70000 + b"\r\n\r\n"
    assert status_and_body(exchange(server, huge))[0] == 431
    endless = b"GET /healthz HTTP/1.1\r\n" + b"X-B: c\r\n" * 2000  # never ends its head
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(endless)
        assert status_and_body(sock.recv(65536))[0] == 431


def test_a_silent_or_slow_client_is_dropped_at_its_deadline_and_others_are_served(served):
    server, _ = served
    with socket.create_connection(server.address, timeout=5) as silent:
        slow = socket.create_connection(server.address, timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert get(server, "/healthz")[0] == 200  # served meanwhile
        started = time.monotonic()
        for _ in range(3):  # a byte now and then does not extend the deadline
            time.sleep(0.2)
            slow.sendall(b"X: y\r\n")
        assert silent.recv(1) == b""  # closed by the server
        assert time.monotonic() - started < 3
        slow.settimeout(3)
        assert slow.recv(1) == b""
        slow.close()


def test_too_many_clients_drop_the_oldest_and_a_probe_still_gets_through(served):
    server, _ = served
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(health.MAX_CLIENTS)]
    try:
        assert get(server, "/healthz")[0] == 200
        assert idle[0].recv(1) == b""  # the oldest made room
        assert len(server.clients) <= health.MAX_CLIENTS
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_leaves_early_costs_nothing(served):
    server, _ = served
    for _ in range(50):
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(b"GET /heal")
        sock.close()
    assert get(server, "/healthz")[0] == 200
    deadline = time.monotonic() + 5
    while server.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.clients


def test_an_address_in_use_is_an_error_at_construction():
    state = State()
    first = HealthServer(("127.0.0.1", 0), state, 30, 90)
    address = first.address
    try:
        with pytest.raises(OSError):
            HealthServer(address, state, 30, 90)
    finally:
        first.close()  # never started: the port is released all the same
    HealthServer(address, state, 30, 90).close()
