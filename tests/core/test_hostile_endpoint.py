"""The CA client against a hostile endpoint: a real HTTP server on loopback that answers the
Lambda Invoke API with what a broken or malicious endpoint could send. boto3 talks to it
unchanged; every answer must end in a typed error (or a certificate), bounded in time and size,
with no control character reaching a message."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cacore.config import CAConfig
from cacore.edge.client import MAX_PAYLOAD_BYTES, CAClient, LambdaTransport
from cacore.errors import (
    AccessDenied,
    CAError,
    CAFunctionError,
    CARefused,
    InvalidResponse,
    Throttled,
    Timeout,
    TransportError,
)
from cacore.request import CertificateRequest, Subject
from cacore.text import unsafe_character

ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "huge": (200, {}, b'{"error": "' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}'),
    "escape": (200, {}, json.dumps({"error": "no \x1b[2J\x1b]0;owned\x07 way"}).encode()),
    "crash": (
        200,
        {"X-Amz-Function-Error": "Unhandled"},
        json.dumps({"errorType": "Boom\x1b[31m", "errorMessage": "\u202e" * 10}).encode(),
    ),
    "throttle": (
        429,
        {"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "soon\x1b"},
        b'{"message": "slow down"}',
    ),
    "denied": (
        403,
        {"x-amzn-ErrorType": "AccessDeniedException"},
        json.dumps({"message": "go away \x1b[5m" + "!" * 9000}).encode(),
    ),
    "html": (200, {}, b"<html><body>502 Bad Gateway</body></html>"),
    "deep": (200, {}, b"[" * 200_000),
    "teapot": (418, {"x-amzn-ErrorType": "\x1b[31mTeapot"}, b"{}"),
}


class _Hostile(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.server.kind  # type: ignore[attr-defined]
        if kind == "trickle":  # headers, then one byte every half second, for ever
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(120):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            return
        status, headers, body = ANSWERS[kind]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _client(server: ThreadingHTTPServer, monkeypatch, **config: object) -> CAClient:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return CAClient(LambdaTransport(CAConfig(region="us-east-1", endpoint_url=url, **config)))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("huge", InvalidResponse),
        ("escape", CARefused),
        ("crash", CAFunctionError),
        ("throttle", Throttled),
        ("denied", AccessDenied),
        ("html", InvalidResponse),
        ("deep", InvalidResponse),
        ("teapot", CAError),
    ],
)
def test_every_hostile_answer_is_a_typed_error_with_a_safe_bounded_message(
    endpoint, monkeypatch, kind, error
):
    endpoint.kind = kind
    client = _client(endpoint, monkeypatch)
    with pytest.raises(error) as caught:
        client.issue_with_new_key(CertificateRequest(Subject("app.example.com")))
    assert unsafe_character(caught.value.message) is None, caught.value.message
    assert len(caught.value.message) <= 1100
    if kind == "throttle":
        assert caught.value.retry_after is None  # a Retry-After that is no number is ignored


def test_an_endpoint_that_trickles_is_cut_at_the_deadline(endpoint, monkeypatch):
    endpoint.kind = "trickle"
    client = _client(endpoint, monkeypatch, read_timeout=2.0)
    with pytest.raises(TransportError) as caught:  # Timeout is a TransportError
        client.issue_with_new_key(CertificateRequest(Subject("app.example.com")))
    # The deadline, not the end of the trickle (60 s later, a cut-short body: no Timeout).
    assert isinstance(caught.value, Timeout) and caught.value.retryable
    assert "did not answer within 2 s" in caught.value.message
