"""The few Kubernetes API calls of the sidecar's ``kubernetes`` issuer, over the standard library:
create a CertificateSigningRequest, read it, watch it. The ServiceAccount token is read from its
file for every call (kubelet rotates projected tokens), and the API server is verified with the
ServiceAccount's CA bundle.

Chosen for memory: the official ``kubernetes`` client costs ~66 MB of RSS in a sidecar that needs
three calls (docs/sidecar.md has the figures). Failures become the core's errors, so the loop's
backoff and ``once``'s exit code treat them like the CA's.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from cacore.errors import AccessDenied, CAError, InvalidRequest, Throttled, TransportError
from sidecar import httpwire

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
RBAC_HINT = (
    "the pod's ServiceAccount needs create, get and watch on certificatesigningrequests "
    "(the cert-sidecar chart's rbac)"
)


class KubeClient:
    def __init__(
        self, api_url: str, token_file: Path, ca_file: Path | None, timeout: float = 30.0
    ) -> None:
        parts = urlsplit(api_url)
        self.api_url = api_url
        self.host = parts.hostname or ""
        self.port = parts.port or 443
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The TLS context, made at the first call so a missing CA file is an attempt's error
        (retried, reported) rather than a crash at start."""
        if self._context is None:
            try:
                cafile = str(self.ca_file) if self.ca_file else None
                self._context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as error:
                raise AccessDenied(
                    f"cannot use the API server's CA bundle {self.ca_file}: {error}; mount the "
                    "ServiceAccount's ca.crt or set CERT_SIDECAR_KUBE_CA_FILE"
                ) from error
        return self._context

    def _token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as error:
            raise AccessDenied(
                f"cannot read the ServiceAccount token {self.token_file}: {error.strerror}; "
                "mount one (automountServiceAccountToken) or set CERT_SIDECAR_KUBE_TOKEN_FILE"
            ) from error

    def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None, timeout: float
    ) -> httpwire.Response:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            return httpwire.request(
                self.context, self.host, self.port, method, path, headers, data, timeout
            )
        except OSError as error:
            raise TransportError(
                f"cannot reach the Kubernetes API at {self.api_url}: {error}"
            ) from error

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """The response's JSON; None for 404."""
        response = self._send(method, path, body, self.timeout)
        try:
            text = response.read()
        except OSError as error:
            raise TransportError(
                f"the Kubernetes API at {self.api_url} broke off: {error}"
            ) from error
        finally:
            response.close()
        if response.status == 404:
            return None
        if response.status >= 400:
            retry_after = response.headers.get("retry-after")
            raise _error(response.status, method, path, text, retry_after)
        return json.loads(text) if text else {}

    def create_csr(self, body: Mapping[str, Any]) -> dict:
        created = self._call("POST", CSRS, body)
        if created is None:
            raise TransportError(f"{self.api_url} does not serve {CSRS}")
        return created

    def get_csr(self, name: str) -> dict | None:
        return self._call("GET", f"{CSRS}/{quote(name)}")

    def watch_csr(self, name: str, resource_version: str, seconds: float) -> Iterator[dict]:
        """The CSR's states after ``resource_version`` for up to ``seconds``; ends early if the
        server ends the watch (the caller reads the CSR again and resumes)."""
        query = urlencode(
            {
                "watch": "1",
                "fieldSelector": f"metadata.name={name}",
                "resourceVersion": resource_version,
                "timeoutSeconds": str(max(1, int(seconds))),
                "allowWatchBookmarks": "false",
            }
        )
        response = self._send("GET", f"{CSRS}?{query}", None, seconds + 10)
        try:
            if response.status >= 400:
                try:
                    text = response.read()
                except OSError:
                    text = b""
                raise _error(response.status, "WATCH", CSRS, text, None)
            lines = response.lines()
            while True:
                try:
                    line = next(lines, b"")
                except OSError:
                    return  # a broken stream: the caller re-reads
                if not line.strip():
                    if not line:
                        return
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    return  # e.g. 410 Gone: the resourceVersion is too old
                if event.get("type") in ("ADDED", "MODIFIED"):
                    yield event["object"]
        finally:
            response.close()


def _error(status: int, method: str, path: str, text: bytes, retry_after: str | None) -> CAError:
    try:
        message = str(json.loads(text).get("message", ""))
    except ValueError:
        message = text.decode(errors="replace")[:300]
    where = f"{method} {path}: HTTP {status}: {message}"
    if status == 401:
        return AccessDenied(f"{where}; the API server did not accept the ServiceAccount token")
    if status == 403:
        return AccessDenied(f"{where}; {RBAC_HINT}")
    if status == 429:
        return Throttled(where, float(retry_after) if retry_after else None)
    if status in (400, 422):
        return InvalidRequest("csr", where)
    if status >= 500:
        return TransportError(where)
    return CAError(where)
