"""A ClientCertificate's spec as the core's request: pure mapping, validation and hashing.

Admission (OpenAPI and CEL in the CRD) refuses bad specs first; this module checks again with the
core's validation, because objects can be stored by an older CRD version or with validation
off, and reports the failing field by its spec path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from cacore.errors import InvalidRequest
from cacore.keys import KeySpec, parse_key_spec
from cacore.renewal import RenewalPoint, parse_duration
from cacore.request import CertificateRequest, Subject, parse_sans, sans_to_event, validate

# The core's field names (event keys) -> the spec's, so messages name what users wrote.
_FIELD_NAMES = {
    "common_name": "spec.commonName",
    "lifetime": "spec.lifetimeDays",
    "purposes": "spec.purposes",
    "extended_key_usages": "spec.extendedKeyUsages",
    "organization": "spec.subject.organization",
    "organizational_unit": "spec.subject.organizationalUnit",
    "locality": "spec.subject.locality",
    "state": "spec.subject.state",
    "country": "spec.subject.country",
    "email_address": "spec.subject.emailAddress",
    "key_algorithm": "spec.privateKey",
}
SUBJECT_KEYS = {
    "organization": "organization",
    "organizationalUnit": "organizational_unit",
    "locality": "locality",
    "state": "state",
    "country": "country",
    "emailAddress": "email_address",
}
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
DEFAULT_KEY_SIZES = {"ECDSA": 256, "RSA": 2048}
MAX_LIFETIME_CEILING_DAYS = 36500  # the CRD's bound; each LambdaCA has its own cap below it


@dataclass(frozen=True)
class CertificateSpec:
    """Everything the operator needs from one ClientCertificate spec."""

    request: CertificateRequest
    key: KeySpec
    renewal: RenewalPoint
    secret_name: str
    issuer: str | None  # a LambdaCA name, or None for the operator's default
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def _spec_field(core_field: str) -> str:
    head, sep, rest = core_field.partition("[")
    if head == "sans":
        return f"spec.sans[{rest}" if sep else "spec.sans"
    return _FIELD_NAMES.get(head, f"spec.{core_field}")


def _strings(spec: Mapping, name: str) -> tuple[str, ...]:
    value = spec.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"spec.{name}", "must be a list of strings")
    return tuple(value)


def _string_map(value: object, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest(name, "must be a map of strings to strings")
    return dict(value)


def parse_key(value: object) -> KeySpec:
    """``privateKey: {algorithm: ECDSA|RSA, size: 256|384|2048|3072|4096}``."""
    if value is None:
        return KeySpec("ECDSA", 256)
    if not isinstance(value, Mapping):
        raise InvalidRequest("spec.privateKey", "must be an object with algorithm and size")
    algorithm = str(value.get("algorithm") or "ECDSA").upper()
    if algorithm not in DEFAULT_KEY_SIZES:
        raise InvalidRequest("spec.privateKey.algorithm", f"{algorithm!r} is not ECDSA or RSA")
    size = value.get("size") or DEFAULT_KEY_SIZES[algorithm]
    text = f"ecdsa-p{size}" if algorithm == "ECDSA" else f"rsa-{size}"
    return parse_key_spec(text, "spec.privateKey.size")


def parse_renewal(spec: Mapping) -> RenewalPoint:
    """``renewBefore`` (a duration before expiry) or ``renewBeforePercentage`` (of the lifetime,
    cert-manager's meaning: 30 renews when 70 % of the lifetime has passed); default 2/3."""
    before, percentage = spec.get("renewBefore"), spec.get("renewBeforePercentage")
    if before is not None and percentage is not None:
        raise InvalidRequest(
            "spec.renewBefore", "set renewBefore or renewBeforePercentage, not both"
        )
    if before is not None:
        duration = parse_duration(str(before), "spec.renewBefore")
        if duration <= timedelta(0):
            raise InvalidRequest("spec.renewBefore", "must be a positive duration such as 240h")
        return RenewalPoint(before_expiry=duration)
    if percentage is not None:
        if (
            isinstance(percentage, bool)
            or not isinstance(percentage, int)
            or not 0 < percentage < 100
        ):
            raise InvalidRequest(
                "spec.renewBeforePercentage", "must be a whole number from 1 to 99"
            )
        return RenewalPoint(fraction=1 - percentage / 100)
    return RenewalPoint()


def parse_spec(spec: Mapping) -> CertificateSpec:
    """The typed spec, or ``InvalidRequest`` whose ``field`` is the spec path to fix."""
    subject_spec = spec.get("subject") or {}
    if not isinstance(subject_spec, Mapping):
        raise InvalidRequest("spec.subject", "must be an object")
    unknown = sorted(set(subject_spec) - set(SUBJECT_KEYS))
    if unknown:
        raise InvalidRequest(
            f"spec.subject.{unknown[0]}", f"is not one of {', '.join(SUBJECT_KEYS)}"
        )
    common_name = spec.get("commonName")
    if not isinstance(common_name, str):
        raise InvalidRequest("spec.commonName", "is required; set the name the certificate is for")
    subject = Subject(
        common_name=common_name,
        **{core: subject_spec.get(key) for key, core in SUBJECT_KEYS.items()},
    )
    secret_name = spec.get("secretName")
    if not isinstance(secret_name, str) or not _DNS1123_SUBDOMAIN.match(secret_name):
        raise InvalidRequest(
            "spec.secretName", "must be a Secret name: lower-case letters, digits, '-' and '.'"
        )
    issuer_ref = spec.get("issuerRef") or {}
    issuer = issuer_ref.get("name") if isinstance(issuer_ref, Mapping) else None
    template = spec.get("secretTemplate") or {}
    try:
        request = CertificateRequest(
            subject=subject,
            sans=parse_sans(list(_strings(spec, "sans")), "sans"),
            lifetime_days=spec.get("lifetimeDays", 30),
            purposes=_strings(spec, "purposes") or ("client_auth",),
            extended_key_usages=_strings(spec, "extendedKeyUsages"),
        )
        # The issuer's cap is checked once it is known (issuers.check_lifetime).
        validate(request, max_lifetime_days=MAX_LIFETIME_CEILING_DAYS)
        key = parse_key(spec.get("privateKey"))
    except InvalidRequest as error:
        if error.field.startswith("spec."):
            raise
        message = error.message.partition(": ")[2] or error.message
        raise InvalidRequest(_spec_field(error.field), message) from error
    return CertificateSpec(
        request=request,
        key=key,
        renewal=parse_renewal(spec),
        secret_name=secret_name,
        issuer=str(issuer) if issuer else None,
        labels=_string_map(template.get("labels"), "spec.secretTemplate.labels"),
        annotations=_string_map(template.get("annotations"), "spec.secretTemplate.annotations"),
    )


def spec_hash(cert: CertificateSpec, issuer: str) -> str:
    """A digest of what the certificate is issued for: subject, SANs, lifetime, usages, key type
    and issuer. The renewal point, Secret name and template are left out: changing them must not
    cost a new certificate."""
    request = cert.request
    material = {
        "subject": request.subject.fields(),
        "sans": sans_to_event(request.sans),
        "lifetime": request.lifetime_days,
        "purposes": sorted(request.purposes),
        "extended_key_usages": sorted(request.extended_key_usages),
        "key": str(cert.key),
        "issuer": issuer,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:32]
