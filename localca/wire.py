"""Reading HTTP requests from a socket within limits: sizes, an idle timeout, a deadline.

Every read goes through `BoundedReader`, so a client that sends slowly (slowloris), sends too
much, or frames its body wrongly gets a typed `HttpError` (or TimeoutError) instead of holding
a thread or memory. The limits are the Lambda service's where it has one (a 6 MB payload).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from email.message import Message

from localca.replies import HttpError

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous Invoke request limit: 6291456
MAX_REQUEST_LINE = 8 * 1024
MAX_HEAD_BYTES = 64 * 1024  # request line, headers, and chunked trailers together
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_DECIMAL = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Limits:
    idle_seconds: float = 60.0  # waiting for the next request on a kept-alive connection
    request_seconds: float = 30.0  # from a request's first byte to its last
    write_seconds: float = 30.0


def too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "RequestEntityTooLargeException",
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
    )


def bad_request(message: str) -> HttpError:
    return HttpError(400, "InvalidRequestContentException", message)


class BoundedReader:
    """File-like reads (`readline`, `read`) over a socket with timeouts and a head budget."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self._sock = sock
        self._limits = limits
        self._buffer = bytearray()
        self._deadline: float | None = None
        self.head_budget = MAX_HEAD_BYTES

    def wait_for_request(self) -> bool:
        """Block (idle timeout) until the next request's first byte; False on a clean close."""
        self._deadline = None
        try:
            if not self._buffer and not self._fill(self._limits.idle_seconds):
                return False
        except TimeoutError:
            return False  # idle too long: close quietly, as any keep-alive server does
        self._deadline = time.monotonic() + self._limits.request_seconds
        self.head_budget = MAX_HEAD_BYTES
        return True

    def _fill(self, idle: float) -> bool:
        timeout = idle
        if self._deadline is not None:
            timeout = min(idle, self._deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("the request was not received within its time limit")
        self._sock.settimeout(timeout)
        chunk = self._sock.recv(65536)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def readline(self, limit: int = -1) -> bytes:
        """A line (with its newline) of at most `limit` bytes, counted against the head budget."""
        cap = min(limit if limit >= 0 else MAX_HEAD_BYTES, self.head_budget + 1)
        while True:
            end = self._buffer.find(b"\n", 0, cap)
            if end >= 0:
                return self._take(end + 1, head=True)
            if len(self._buffer) >= cap or not self._fill(self._limits.idle_seconds):
                return self._take(min(cap, len(self._buffer)), head=True)

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes (fewer only at end of stream). Only bounded reads are served."""
        if size < 0:
            raise ValueError("unbounded reads are not served")
        while len(self._buffer) < size and self._fill(self._limits.idle_seconds):
            pass
        return self._take(min(size, len(self._buffer)), head=False)

    def discard(self, size: int) -> None:
        while size > 0:
            taken = len(self.read(min(size, 65536)))
            if not taken:
                return
            size -= taken

    def _take(self, count: int, head: bool) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        if head:
            self.head_budget -= len(data)
            if self.head_budget < 0:
                raise HttpError(
                    431,
                    "RequestHeaderFieldsTooLargeException",
                    f"Request header fields are larger than {MAX_HEAD_BYTES} bytes",
                )
        return data

    def close(self) -> None:
        self._buffer.clear()


def content_length(headers: Message) -> int | None:
    """The declared body length; None when the body is chunked. HttpError when the framing is
    ambiguous or invalid (a request-smuggling shape is never guessed at)."""
    lengths = headers.get_all("Content-Length") or []
    codings = headers.get_all("Transfer-Encoding") or []
    if codings:
        if lengths:
            raise bad_request("Content-Length and Transfer-Encoding must not both be sent")
        if len(codings) != 1 or codings[0].strip().lower() != "chunked":
            raise HttpError(
                501, "NotImplementedException", "Only the chunked transfer coding is supported"
            )
        return None
    if not lengths:
        return 0
    if len(lengths) != 1 or not _DECIMAL.fullmatch(lengths[0].strip()):
        raise bad_request("Content-Length must be one decimal number of bytes")
    return int(lengths[0])


def read_sized(reader: BoundedReader, length: int) -> bytes:
    body = reader.read(length)
    if len(body) != length:
        raise bad_request("Request body ended before its Content-Length")
    return body


def read_chunked(reader: BoundedReader, limit: int) -> bytes:
    """A chunked body, at most `limit` bytes once decoded (413 beyond)."""
    body = bytearray()
    while True:
        line = reader.readline(MAX_REQUEST_LINE)
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise bad_request("Chunked body has a malformed chunk-size line")
        size = int(match[1], 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise too_large(limit)
        data = reader.read(size)
        if len(data) != size or reader.read(2) != b"\r\n":
            raise bad_request("Chunked body ends before its declared chunk size")
        body += data
    while True:  # trailer fields, then the empty line
        line = reader.readline(MAX_REQUEST_LINE)
        if not line.endswith(b"\n"):
            raise bad_request("Chunked body ends before its trailer section")
        if line in (b"\r\n", b"\n"):
            return bytes(body)
