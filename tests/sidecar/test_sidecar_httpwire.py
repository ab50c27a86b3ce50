"""The kubernetes issuer's HTTP/1.1 over TLS against a real TLS server on loopback that answers
with exactly the bytes each test gives it: the framings the API server uses (chunked watch
streams whose lines straddle chunks, Content-Length, read to close) and the broken ones a peer
might send, each an ``OSError`` in bounded time and memory. The real API server is in
tests/signer."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sidecar import httpwire


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class CannedServer:
    """Accepts connections and answers each with the given pieces (a pause between them)."""

    def __init__(self, directory: Path) -> None:
        self.cert_file, key_file = _self_signed(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pieces: list[bytes] = []
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as sock:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += sock.recv(65536)
                    self.requests.append(request)
                    for piece in self.pieces:
                        sock.sendall(piece)
                        time.sleep(0.01)
            except OSError:
                pass

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))

    def ask(self, *pieces: bytes, timeout: float = 5, body: bytes | None = None):
        self.pieces = list(pieces)
        return httpwire.request(
            self.client_context(), "127.0.0.1", self.port, "POST" if body else "GET",
            "/apis/x?watch=1", {"Authorization": "Bearer t"}, body, timeout,
        )  # fmt: skip


@pytest.fixture
def server(tmp_path) -> Iterator[CannedServer]:
    canned = CannedServer(tmp_path)
    yield canned
    canned.listener.close()


def test_a_chunked_watch_stream_gives_whole_lines_across_chunk_boundaries(server):
    events = b'{"type":"ADDED","n":1}\n{"type":"MODIFIED","n":2}\n'
    head = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    )
    chunks = [events[:10], events[10:30], events[30:]]
    framed = [b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks]
    response = server.ask(head, *framed, b"0\r\nTrailer: x\r\n\r\n")
    assert response.status == 200
    assert list(response.lines()) == [b'{"type":"ADDED","n":1}\n', b'{"type":"MODIFIED","n":2}\n']
    response.close()


def test_content_length_and_read_to_close_bodies(server):
    response = server.ask(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello")
    assert (response.status, response.read()) == (201, b"hello")
    response.close()
    response = server.ask(b"HTTP/1.0 404 Not Found\r\n\r\n", b"gone ", b"away")
    assert (response.status, response.read()) == (404, b"gone away")
    response.close()


def test_the_request_is_one_http_1_1_request_that_closes(server):
    server.ask(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", body=b"{}").close()
    head, _, _ = server.requests[-1].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /apis/x?watch=1 HTTP/1.1"
    assert {f"Host: 127.0.0.1:{server.port}", "Authorization: Bearer t", "Content-Length: 2",
            "Connection: close"} <= set(lines[1:])  # fmt: skip


@pytest.mark.parametrize(
    "pieces",
    [
        [b"SSH-2.0-OpenSSH\r\n\r\n"],  # not HTTP
        [b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n"],
        [b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"],
        [b"HTTP/1.1 200"],  # closed inside the head
    ],
)
def test_a_broken_response_is_an_oserror(server, pieces):
    with pytest.raises(OSError):
        response = server.ask(*pieces)
        try:
            response.read()
        finally:
            response.close()


def test_a_silent_server_times_out(server):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says a word
        started = time.monotonic()
        with pytest.raises(OSError):
            httpwire.request(
                server.client_context(), "127.0.0.1", silent.getsockname()[1], "GET", "/", {},
                None, 0.5,
            )  # fmt: skip
        assert time.monotonic() - started < 3


def test_a_server_the_ca_bundle_does_not_vouch_for_is_refused(server, tmp_path):
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")
    with pytest.raises(ssl.SSLError):
        httpwire.request(
            ssl.create_default_context(cafile=str(other)), "127.0.0.1", server.port,
            "GET", "/", {}, None, 5,
        )  # fmt: skip
