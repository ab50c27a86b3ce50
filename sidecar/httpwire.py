"""HTTP/1.1 over one TLS connection, as much as the kubernetes issuer's three calls need: send a
request, read the response head, read the body as pieces (``Content-Length``, chunked, or up to
the close). One request per connection (``Connection: close``).

Over ``socket`` and ``ssl`` rather than ``http.client``, which imports the ``email`` parser;
together with ``http.server`` in the health endpoints that was about 1 MB of the sidecar's RSS
(docs/sidecar.md). Every read is bounded: a line, the number of headers, a body, and the socket
timeout for each wait, so a broken or hostile peer cannot grow memory or hang the loop.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024  # a CSR object is a few KB; one watch event is one CSR


class ProtocolError(OSError):
    """The peer did not speak HTTP/1.1 as expected (or broke off mid-response)."""


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    stream: BinaryIO
    sock: socket.socket

    def pieces(self) -> Iterator[bytes]:
        """The body as it arrives, decoded from chunked transfer coding."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            yield from _chunks(self.stream)
        elif "content-length" in self.headers:
            length = _int(self.headers["content-length"], 10, "Content-Length")
            if length > MAX_BODY:
                raise ProtocolError(f"a body of {length} bytes is more than {MAX_BODY}")
            data = self.stream.read(length)
            if len(data) < length:
                raise ProtocolError("the connection closed inside the body")
            yield data
        else:
            while data := self.stream.read(65536):
                yield data

    def read(self) -> bytes:
        """The whole body, at most ``MAX_BODY`` bytes."""
        body = bytearray()
        for piece in self.pieces():
            body += piece
            if len(body) > MAX_BODY:
                raise ProtocolError(f"a body of more than {MAX_BODY} bytes")
        return bytes(body)

    def lines(self) -> Iterator[bytes]:
        """The body's lines (a watch sends one JSON event per line), each at most ``MAX_BODY``."""
        pending = bytearray()
        for piece in self.pieces():
            pending += piece
            while (end := pending.find(b"\n")) >= 0:
                yield bytes(pending[: end + 1])
                del pending[: end + 1]
            if len(pending) > MAX_BODY:
                raise ProtocolError(f"a line of more than {MAX_BODY} bytes")
        if pending:
            yield bytes(pending)

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def request(
    context: ssl.SSLContext,
    host: str,
    port: int,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
) -> Response:
    """Connect, send one request and read the response head. Raises ``OSError`` (``ssl`` and
    ``ProtocolError`` included) when the server cannot be reached or does not answer HTTP."""
    # An ASCII name as bytes: getaddrinfo and ssl would otherwise load the idna codec (and
    # stringprep) for a name that needs no encoding.
    name: str | bytes = host.encode() if host.isascii() else host
    raw = socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]
    try:
        sock = context.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise
    try:
        authority = f"[{host}]" if ":" in host else host
        lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        lines += ["Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode("latin-1") + (body or b""))
        stream = sock.makefile("rb")
        status, head = _head(stream)
        return Response(status, head, stream, sock)
    except BaseException:
        sock.close()
        raise


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a response line longer than {MAX_LINE} bytes")
    if not line:
        raise ProtocolError("the connection closed before the response was complete")
    return line


def _head(stream: BinaryIO) -> tuple[int, dict[str, str]]:
    parts = _line(stream).decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.1 response: {' '.join(parts)[:100]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(stream).decode("latin-1").strip()
        if not line:
            return int(parts[1]), headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ProtocolError(f"more than {MAX_HEADERS} response headers")


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        size = _int(_line(stream).split(b";", 1)[0].strip(), 16, "chunk size")
        if size == 0:
            while _line(stream).strip():  # trailers, up to the blank line
                pass
            return
        if size > MAX_BODY:
            raise ProtocolError(f"a chunk of {size} bytes is more than {MAX_BODY}")
        data = stream.read(size)
        if len(data) < size or stream.read(2) != b"\r\n":
            raise ProtocolError("the connection closed inside a chunk")
        yield data


def _int(text: str | bytes, base: int, what: str) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise ProtocolError(f"{what} {text!r} is not a number") from None
    if value < 0:
        raise ProtocolError(f"{what} {text!r} is negative")
    return value
