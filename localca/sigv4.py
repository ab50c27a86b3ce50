"""AWS Signature Version 4 verification of one HTTP request, as AWS itself answers it.

Canonical request per the AWS documentation for services other than S3: the URI path is
URI-encoded once more (so `%3A` in a function ARN is signed as `%253A`), query pairs sorted
as sent, signed headers lower-cased with runs of spaces collapsed. Two steps, so the server can
refuse a request on its headers alone before reading any of its body: `check_headers` (key,
scope, date), then `check_signature` over the whole request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)"
    r"\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)

MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


@dataclass(frozen=True)
class SignedRequest:
    method: str
    raw_path: str
    query: str
    headers: Mapping[str, list[str]]  # lower-case name -> values in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class AuthFailure:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    authorised: bool


def _normalize_path(path: str) -> str:
    if not path:
        return "/"
    segments: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if segments:
                segments.pop()
        elif part not in (".", ""):
            segments.append(part)
    out = "/" + "/".join(segments)
    return out + "/" if path.endswith("/") and out != "/" else out


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(req: SignedRequest, signed_headers: list[str], payload_hash: str) -> str:
    headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in req.headers.get(name, []))}\n"
        for name in signed_headers
    )
    return "\n".join(
        [
            req.method,
            quote(_normalize_path(req.raw_path), safe="/~"),
            canonical_query(req.query),
            headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, amz_date: str, scope: str, canonical: str) -> str:
    date, region, service, _ = scope.split("/")
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    return hmac.new(
        signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256
    ).hexdigest()


def access_key_id(req: SignedRequest) -> str | None:
    """The access key id the Authorization header names, if it is well formed."""
    match = _AUTH.match((req.header("authorization") or "").strip())
    return match["cred"].split("/")[0] if match else None


@dataclass(frozen=True)
class Credential:
    """What the headers alone establish: a known key, the right scope, a fresh date."""

    access_key_id: str
    secret: str
    authorised: bool
    scope: str
    amz_date: str
    signed_headers: list[str]
    signature: str


def check_headers(
    req: SignedRequest,
    credentials: Mapping[str, str],
    denied: Mapping[str, str],
    region: str,
    service: str,
    now: datetime,
) -> Credential | AuthFailure:
    """Every check that needs no body, so an unauthenticated request is refused unread."""
    auth = req.header("authorization")
    if not auth:
        return AuthFailure(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    match = _AUTH.match(auth.strip())
    if not match:
        return AuthFailure(
            400,
            "IncompleteSignatureException",
            f"Authorization header requires {ALGORITHM} "
            "with Credential, SignedHeaders and Signature.",
        )
    cred_parts = match["cred"].split("/")
    if len(cred_parts) != 5 or cred_parts[4] != "aws4_request":
        return AuthFailure(400, "IncompleteSignatureException", "Credential is malformed.")
    access_key_id, date, cred_region, cred_service, _ = cred_parts
    secret = credentials.get(access_key_id)
    authorised = secret is not None
    if secret is None:
        secret = denied.get(access_key_id)
    if secret is None:
        return AuthFailure(403, "UnrecognizedClientException", MSG_BAD_TOKEN)
    if cred_region != region:
        return AuthFailure(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{cred_region}'.",
        )
    if cred_service != service:
        return AuthFailure(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    amz_date = req.header("x-amz-date") or ""
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return AuthFailure(400, "IncompleteSignatureException", "X-Amz-Date is missing or invalid.")
    if not amz_date.startswith(date):
        return AuthFailure(
            403,
            "InvalidSignatureException",
            "Date in Credential scope does not "
            "match YYYYMMDD from ISO-8601 version of date from HTTP.",
        )
    if abs(now - signed_at) > MAX_SKEW:
        return AuthFailure(
            403,
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is "
            "now earlier or later than the 15 minutes the service allows.",
        )
    signed_headers = match["signed"].lower().split(";")
    if "host" not in signed_headers:
        return AuthFailure(403, "InvalidSignatureException", "'Host' must be a 'SignedHeader'.")
    return Credential(
        access_key_id=access_key_id,
        secret=secret,
        authorised=authorised,
        scope="/".join(cred_parts[1:]),
        amz_date=amz_date,
        signed_headers=signed_headers,
        signature=match["sig"].lower(),
    )


def check_signature(req: SignedRequest, credential: Credential) -> Identity | AuthFailure:
    """The signature over the whole request, body included."""
    body_hash = hashlib.sha256(req.body).hexdigest()
    declared = req.header("x-amz-content-sha256")
    if declared and declared != "UNSIGNED-PAYLOAD" and declared != body_hash:
        return AuthFailure(403, "InvalidSignatureException", MSG_BAD_SIGNATURE)
    signed = credential.signed_headers
    payload_hash = declared if declared and "x-amz-content-sha256" in signed else body_hash
    canonical = canonical_request(req, signed, payload_hash)
    expected = signature(credential.secret, credential.amz_date, credential.scope, canonical)
    if not hmac.compare_digest(expected, credential.signature):
        return AuthFailure(403, "InvalidSignatureException", MSG_BAD_SIGNATURE)
    return Identity(credential.access_key_id, credential.authorised)
