"""What to ask the CA for: typed requests, local validation, and the Lambda event they become."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cacore.errors import InvalidRequest
from cacore.names import SAN_CHECKS
from cacore.text import unsafe_character

PURPOSES = ("client_auth", "server_auth")
# The names the CA maps to OIDs; anything else must be a dotted OID.
EXTENDED_KEY_USAGES = (
    "TLS_WEB_CLIENT_AUTHENTICATION",
    "TLS_WEB_SERVER_AUTHENTICATION",
    "CODE_SIGNING",
    "EMAIL_PROTECTION",
    "TIME_STAMPING",
    "OCSP_SIGNING",
    "ANY_EXTENDED_KEY_USAGE",
    "SMARTCARD_LOGON",
    "KERBEROS_PKINIT_KDC",
    "IPSEC_IKE",
    "CERTIFICATE_TRANSPARENCY",
)
SAN_TYPES = tuple(SAN_CHECKS)
MIN_LIFETIME_DAYS = 1
# The CA's MAX_CERT_LIFETIME: a deployment setting, 365 days unless the CA is configured higher.
# Above it the CA silently caps the lifetime, so the tools refuse more unless told the CA's cap.
DEFAULT_MAX_LIFETIME_DAYS = 365
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

# Subject attribute -> (event key, longest value X.509 allows).
SUBJECT_FIELDS = {
    "common_name": 64,
    "organization": 64,
    "organizational_unit": 64,
    "locality": 128,
    "state": 128,
    "country": 2,
    "email_address": 255,
}


@dataclass(frozen=True)
class Subject:
    common_name: str
    organization: str | None = None
    organizational_unit: str | None = None
    locality: str | None = None
    state: str | None = None
    country: str | None = None
    email_address: str | None = None

    def fields(self) -> dict[str, str]:
        """The set attributes, keyed by their event name."""
        return {name: getattr(self, name) for name in SUBJECT_FIELDS if getattr(self, name)}


@dataclass(frozen=True)
class San:
    type: str
    value: str


@dataclass(frozen=True)
class CertificateRequest:
    subject: Subject
    sans: tuple[San, ...] = ()
    lifetime_days: int = 30
    purposes: tuple[str, ...] = ("client_auth",)
    extended_key_usages: tuple[str, ...] = ()
    force_issue: bool = False
    cert_bundle: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def common_name(self) -> str:
        return self.subject.common_name


def parse_sans(value: object, field_name: str = "sans") -> tuple[San, ...]:
    """Read SANs in any of the contract's forms: a string, a list of strings or entries, a map.

    A plain string is a comma-separated list of DNS names, which is how a SAN list travels in an
    environment variable; a typed string entry ``IP_ADDRESS:10.0.0.1`` is accepted too.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(
            _san_from_text(part.strip(), field_name)
            for part in split_san_list(value)
            if part.strip()
        )
    if isinstance(value, Mapping):
        sans: list[San] = []
        for san_type, values in value.items():
            items = [values] if isinstance(values, str) else values
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise InvalidRequest(
                    f"{field_name}.{san_type}", "must be a string or a list of strings"
                )
            sans.extend(San(str(san_type), v) for v in items)
        return tuple(sans)
    if isinstance(value, list | tuple):
        sans = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                sans.append(_san_from_text(item, f"{field_name}[{index}]"))
            elif isinstance(item, Mapping) and set(item) == {"type", "value"}:
                sans.append(San(str(item["type"]), str(item["value"])))
            else:
                raise InvalidRequest(
                    f"{field_name}[{index}]",
                    'must be a DNS name or an object {"type": ..., "value": ...}',
                )
        return tuple(sans)
    raise InvalidRequest(field_name, "must be a string, a list or a map of SAN type to values")


def split_san_list(text: str) -> list[str]:
    """A comma list of SANs, CSV-style: an entry holding commas (a ``DN:`` SAN such as
    ``DN:CN=app,O=Example``) is written in double quotes, ``"DN:CN=app,O=Example"``; a double
    quote inside quotes is doubled. Anything else splits at every comma."""
    if any(char in text for char in "\r\n\0"):
        # csv would stop at them with its own error; a SAN never holds one
        raise InvalidRequest(
            "sans", "holds a line break or a NUL character; write the SANs on one line"
        )
    import csv  # only for a SAN list: the sidecar runs in every pod, and most set none

    return next(csv.reader([text], skipinitialspace=True), [])


def _san_from_text(text: str, field_name: str) -> San:
    prefix, sep, rest = text.partition(":")
    if sep and prefix in SAN_TYPES:
        return San(prefix, rest)
    if sep and prefix.upper() in {"IP", "EMAIL", "URI", "DNS"}:
        mapped = {"IP": "IP_ADDRESS", "EMAIL": "EMAIL_ADDRESS", "URI": "URL", "DNS": "DNS_NAME"}
        return San(mapped[prefix.upper()], rest)
    return San("DNS_NAME", text)


def validate(
    request: CertificateRequest, max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS
) -> CertificateRequest:
    """Refuse locally what the CA would refuse, crash on, or silently change; return the request.
    ``max_lifetime_days`` is the CA's own cap (its MAX_CERT_LIFETIME)."""
    subject = request.subject
    if not subject.common_name or not subject.common_name.strip():
        raise InvalidRequest("common_name", "is required; set the name the certificate is for")
    for name, limit in SUBJECT_FIELDS.items():
        value = getattr(subject, name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(name, f"must be text, got {type(value).__name__}")
        if len(value) > limit:
            raise InvalidRequest(name, f"is {len(value)} characters; the limit is {limit}")
        bad = unsafe_character(value)
        if bad:
            raise InvalidRequest(name, f"contains the control character {bad}; remove it")
    if subject.country is not None and not re.fullmatch(r"[A-Z]{2}", subject.country):
        raise InvalidRequest("country", "must be a two-letter upper-case ISO 3166 code such as GB")
    lifetime = request.lifetime_days
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise InvalidRequest("lifetime", f"must be a whole number of days, got {lifetime!r}")
    if not MIN_LIFETIME_DAYS <= lifetime <= max_lifetime_days:
        above = (
            " (the CA's maximum; if the CA allows more, say so with its max lifetime setting)"
            if lifetime > max_lifetime_days
            else ""
        )
        raise InvalidRequest(
            "lifetime",
            f"is {lifetime} days; choose {MIN_LIFETIME_DAYS} to {max_lifetime_days}{above}",
        )
    if not request.purposes:
        raise InvalidRequest("purposes", f"must name at least one of {', '.join(PURPOSES)}")
    for purpose in request.purposes:
        if purpose not in PURPOSES:
            raise InvalidRequest("purposes", f"{purpose!r} is unknown; use {' or '.join(PURPOSES)}")
    for usage in request.extended_key_usages:
        if usage not in EXTENDED_KEY_USAGES and not _OID.match(usage):
            raise InvalidRequest(
                "extended_key_usages",
                f"{usage!r} is neither a known name (e.g. CODE_SIGNING) nor a dotted OID",
            )
    for index, san in enumerate(request.sans):
        bad = unsafe_character(san.value)
        if bad:
            raise InvalidRequest(
                f"sans[{index}]", f"{san.value!r} contains the control character {bad}; remove it"
            )
        check = SAN_CHECKS.get(san.type)
        if check is None:
            raise InvalidRequest(
                f"sans[{index}].type", f"{san.type!r} is not one of {', '.join(SAN_TYPES)}"
            )
        is_valid, expected = check
        if not is_valid(san.value):
            raise InvalidRequest(
                f"sans[{index}]", f"{san.value!r} is not a valid {san.type}: use {expected}"
            )
    return request


def with_subject_defaults(request: CertificateRequest, **fields: str | None) -> CertificateRequest:
    """Fill subject attributes the request leaves empty (e.g. from a CSR)."""
    current = request.subject
    merged: dict[str, Any] = {
        k: getattr(current, k) or v for k, v in fields.items() if k in SUBJECT_FIELDS
    }
    return replace(request, subject=replace(current, **merged))


def sans_to_event(sans: Iterable[San]) -> list[dict[str, str]]:
    return [{"type": san.type, "value": san.value} for san in sans]


def to_event(request: CertificateRequest, csr_pem: bytes) -> dict[str, object]:
    """The Lambda event for ``request`` with the CSR attached (the CA wants base64 of PEM)."""
    if not csr_pem.lstrip().startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise InvalidRequest("csr", "must be a PEM certificate request (DER is not accepted)")
    event: dict[str, object] = dict(request.extra)
    event.update(request.subject.fields())
    event["lifetime"] = request.lifetime_days
    event["purposes"] = list(request.purposes)
    if request.extended_key_usages:
        event["extended_key_usages"] = list(request.extended_key_usages)
    if request.sans:
        event["sans"] = sans_to_event(request.sans)
    if request.force_issue:
        event["force_issue"] = True
    if request.cert_bundle:
        event["cert_bundle"] = True
    event["base64_csr_data"] = base64.b64encode(csr_pem).decode("ascii")
    return event
