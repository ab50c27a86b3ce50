"""Mutual TLS with the issued files: a handshake that explains its failures, and a small server."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

# OpenSSL alert names the server sends, and what they mean to someone holding a client certificate.
_ALERTS = {
    "CERTIFICATE_REQUIRED": "the server requires a client certificate and none was sent",
    "HANDSHAKE_FAILURE": "server ended the handshake (no client certificate, or no shared cipher)",
    "UNKNOWN_CA": "the server does not trust the CA that issued the client certificate",
    "BAD_CERTIFICATE": "the server refused the client certificate",
    "CERTIFICATE_EXPIRED": "the server says the client certificate has expired",
    "UNSUPPORTED_CERTIFICATE": "the server refused the client certificate's purpose "
    "(it needs the client_auth extended key usage)",
    "CERTIFICATE_REVOKED": "the server says the client certificate is revoked",
    "DECRYPT_ERROR": "the client certificate and key do not match",
}


@dataclass(frozen=True)
class HandshakeResult:
    ok: bool
    message: str
    peer_subject: str = ""
    greeting: str = ""


def _files(certs: Path) -> tuple[Path, Path, Path]:
    crt, key, ca = certs / "tls.crt", certs / "tls.key", certs / "ca.crt"
    for path in (crt, key, ca):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run `ca-cert issue --out {certs}` first")
    return crt, key, ca


def explain(error: BaseException, host: str, port: int) -> str:
    if isinstance(error, ConnectionRefusedError):
        return f"nothing is listening on {host}:{port}"
    if isinstance(error, TimeoutError):
        return f"{host}:{port} did not answer in time"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host}: {error.strerror}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted with ca.crt: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        text = f"{error.reason or ''} {error}".upper()
        for alert, meaning in _ALERTS.items():
            if alert in text:
                return f"{meaning} (TLS alert {alert.lower()})"
        if "KEY_VALUES_MISMATCH" in text:
            return "tls.key does not belong to tls.crt"
        if "WRONG_VERSION_NUMBER" in text or "PACKET_LENGTH_TOO_LONG" in text:
            return f"{host}:{port} does not speak TLS (plain HTTP?); check the port"
        return f"TLS error: {error.reason or error}"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "the server closed the connection during the handshake (client certificate refused?)"
    return f"{type(error).__name__}: {error}"


def handshake(
    host: str,
    port: int,
    certs: Path,
    server_name: str | None = None,
    send_client_cert: bool = True,
    timeout: float = 5.0,
) -> HandshakeResult:
    """Connect, present our certificate, verify the server against ``ca.crt``, then read once:
    with TLS 1.3 a server's refusal of our certificate arrives only after the handshake."""
    crt, key, ca = _files(certs)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        if send_client_cert:
            context.load_cert_chain(str(crt), str(key))
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name or host) as tls,
        ):
            peer = tls.getpeercert() or {}
            subject = ", ".join("=".join(pair) for rdn in peer.get("subject", ()) for pair in rdn)
            tls.settimeout(min(timeout, 2.0))
            try:
                greeting = tls.recv(4096).decode(errors="replace").strip()
            except TimeoutError:
                greeting = ""  # a server that waits for us to speak first accepted the handshake
            version = tls.version()
    except (OSError, ssl.SSLError, ValueError) as error:  # ValueError: a bad --server-name
        return HandshakeResult(False, explain(error, host, port))
    return HandshakeResult(
        True, f"mutual TLS handshake with {host}:{port} succeeded ({version})", subject, greeting
    )


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        tls: ssl.SSLSocket = self.request
        tls.do_handshake()  # here, in the connection's thread, so one slow client blocks no other
        peer = tls.getpeercert() or {}
        names = [
            str(pair[1])
            for rdn in peer.get("subject", ())
            for pair in rdn
            if isinstance(pair, tuple) and pair[0] == "commonName"
        ]
        tls.sendall(
            f"hello {names[0] if names else 'unknown'}, your certificate was accepted\n".encode()
        )


class MutualTLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Requires a client certificate issued under ``ca.crt``; greets the client by common name."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], certs: Path) -> None:
        crt, key, ca = _files(certs)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(str(crt), str(key))
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        sock.settimeout(5)
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a refused client is the expected outcome of half the demo, not a server error

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread
