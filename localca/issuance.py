"""The TLS Lambda's decision and signing, as one function of (event, CA, history, now).

Nothing here touches the network, the disk or the clock: the server passes them in. An
exception escaping `handle` is a Lambda crash, which is what the real function does on the
same input (missing common_name, bad base64, bad or DER CSR).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localca import sans as san_rules
from localca.authority import Authority

BACKDATE = timedelta(minutes=5)
DEFAULT_LIFETIME_DAYS = 30
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
POLICY_OID = x509.ObjectIdentifier("2.23.140.1.2.1")

PURPOSE_OIDS = {
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
}
# Names as the real CA accepts them (AWS Private CA's vocabulary); NONE adds nothing.
EKU_NAMES = {
    "TLS_WEB_SERVER_AUTHENTICATION": "1.3.6.1.5.5.7.3.1",
    "TLS_WEB_CLIENT_AUTHENTICATION": "1.3.6.1.5.5.7.3.2",
    "CODE_SIGNING": "1.3.6.1.5.5.7.3.3",
    "EMAIL_PROTECTION": "1.3.6.1.5.5.7.3.4",
    "IPSEC_END_SYSTEM": "1.3.6.1.5.5.7.3.5",
    "IPSEC_TUNNEL": "1.3.6.1.5.5.7.3.6",
    "IPSEC_USER": "1.3.6.1.5.5.7.3.7",
    "TIME_STAMPING": "1.3.6.1.5.5.7.3.8",
    "OCSP_SIGNING": "1.3.6.1.5.5.7.3.9",
    "ANY": "2.5.29.37.0",
    "NONE": None,
}
# Extensions the CA itself controls: never settable through `extensions`, even if allow-listed.
RESERVED_EXTENSION_OIDS = frozenset(
    {
        "2.5.29.14",
        "2.5.29.15",
        "2.5.29.17",
        "2.5.29.19",
        "2.5.29.31",
        "2.5.29.32",
        "2.5.29.35",
        "2.5.29.37",
        "1.3.6.1.5.5.7.1.1",
    }
)

ERR_NO_CN = "CSR must include a Common Name"
ERR_KEY_REUSED = "Private key has already been used for a certificate"
ERR_ALREADY_ISSUED = "Certificate already issued"


class History(Protocol):
    """What the decision needs to know about certificates issued before."""

    def key_used(self, common_name: str, key_id: str) -> bool: ...

    def issued_dates(self, common_name: str, key_id: str) -> list[str]: ...


@dataclass(frozen=True)
class CsrFile:
    data: bytes
    modified: datetime


@dataclass(frozen=True)
class Policy:
    max_lifetime_days: int
    extension_allowlist: tuple[str, ...]
    internal_bucket: str


@dataclass(frozen=True)
class IssuedCert:
    common_name: str
    serial: str
    key_id: str
    issued: str
    expires: str
    pem: str


@dataclass(frozen=True)
class Outcome:
    """The Lambda's return value, plus the certificate to record when one was issued."""

    payload: dict[str, Any]
    issued: IssuedCert | None = None

    @property
    def refused(self) -> bool:
        return "error" in self.payload


Log = Callable[[str], None]
CsrReader = Callable[[str], CsrFile | None]


def key_id(csr: x509.CertificateSigningRequest) -> str:
    spki = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ca_chain(ca: Authority) -> dict[str, str]:
    return {
        "Base64IssuingCaCertificate": _b64(ca.issuing_pem),
        "Base64RootCaCertificate": _b64(ca.root_pem),
        "Base64CaChain": _b64(ca.issuing_pem.strip() + "\n" + ca.root_pem.strip()),
    }


def purposes_of(value: object) -> list[str]:
    kept = [p for p in value if p in PURPOSE_OIDS] if isinstance(value, list) else []
    return kept or ["client_auth"]


def extra_ekus(value: object, log: Log) -> list[x509.ObjectIdentifier]:
    if not isinstance(value, list):
        return []
    oids: list[x509.ObjectIdentifier] = []
    for name in value:
        if isinstance(name, str) and name in EKU_NAMES:
            dotted = EKU_NAMES[name]
            if dotted:
                oids.append(x509.ObjectIdentifier(dotted))
            continue
        if isinstance(name, str) and name.startswith(("1.", "2.")):
            try:
                oids.append(x509.ObjectIdentifier(name))
                continue
            except ValueError:
                pass
        log(f"Invalid extended key usage {name} excluded")
    return oids


def eku_list(event: dict[str, Any], log: Log) -> list[x509.ObjectIdentifier]:
    ordered = [PURPOSE_OIDS[p] for p in purposes_of(event.get("purposes"))]
    ordered += extra_ekus(event.get("extended_key_usages"), log)
    return list(dict.fromkeys(ordered))


def custom_extensions(
    value: object, allowlist: tuple[str, ...]
) -> tuple[list[x509.UnrecognizedExtension], list[bool]] | str:
    """The requested custom extensions, or the refusal message for the first bad one."""
    if not value:
        return [], []
    if not isinstance(value, list):
        return "Custom extensions must be a list of {oid, value_b64, critical} objects"
    seen: set[str] = set()
    exts: list[x509.UnrecognizedExtension] = []
    criticals: list[bool] = []
    for item in value:
        oid = item.get("oid") if isinstance(item, dict) else None
        if not oid:
            return "Custom extension is missing required field 'oid'"
        if oid in seen:
            return f"Custom extension OID {oid} is specified more than once"
        seen.add(oid)
        if oid in RESERVED_EXTENSION_OIDS:
            return f"Custom extension OID {oid} is reserved and cannot be set by callers"
        if oid not in allowlist:
            return f"Custom extension OID {oid} is not in the configured allowlist"
        try:
            object_id = x509.ObjectIdentifier(oid)
        except ValueError:
            return f"Custom extension OID {oid} is not a valid object identifier"
        value_b64 = item.get("value_b64")
        if value_b64 is None:
            return f"Custom extension OID {oid} is missing required field 'value_b64'"
        try:
            raw = base64.b64decode(value_b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return f"Custom extension OID {oid} has an invalid base64 value"
        exts.append(x509.UnrecognizedExtension(object_id, raw))
        criticals.append(bool(item.get("critical", False)))
    return exts, criticals


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    found = name.get_attributes_for_oid(oid)
    value = found[0].value if found else None
    return value if isinstance(value, str) else None


_SUBJECT_ORDER = (
    (NameOID.COMMON_NAME, "common_name"),
    (NameOID.COUNTRY_NAME, "country"),
    (NameOID.EMAIL_ADDRESS, "email_address"),
    (NameOID.LOCALITY_NAME, "locality"),
    (NameOID.ORGANIZATION_NAME, "organization"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational_unit"),
    (NameOID.STATE_OR_PROVINCE_NAME, "state"),
)


def subject_name(event: dict[str, Any], csr_subject: x509.Name) -> x509.Name:
    """Request fields override the CSR's; order as upstream builds it (CN first)."""
    attributes = []
    for oid, key in _SUBJECT_ORDER:
        value = event.get(key) or _attr(csr_subject, oid)
        if value:
            attributes.append(x509.NameAttribute(oid, str(value)))
    return x509.Name(attributes)


def build_certificate(
    event: dict[str, Any],
    csr: x509.CertificateSigningRequest,
    ca: Authority,
    now: datetime,
    lifetime_days: int,
    extensions: tuple[list[x509.UnrecognizedExtension], list[bool]],
    log: Log,
) -> x509.Certificate:
    public = csr.public_key()
    ski = ca.issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name(event, csr.subject))
        .issuer_name(ca.issuing_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=lifetime_days))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku_list(event, log)), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, None)]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    names = san_rules.to_general_names(
        san_rules.select(str(event["common_name"]), event.get("sans"), log), log
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for ext, critical in zip(*extensions, strict=True):
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(ca.issuing_key, hashes.SHA256())


def _load_csr(
    event: dict[str, Any], read_csr_file: CsrReader, bucket: str
) -> tuple[x509.CertificateSigningRequest, CsrFile | None] | str:
    csr_file = event.get("csr_file")
    if csr_file:
        found = read_csr_file(str(csr_file))
        if found is None:
            return f"CSR file '{csr_file}' not found in S3 bucket '{bucket}'"
        return x509.load_pem_x509_csr(found.data), found
    # standard_b64decode(None) raises TypeError and a DER CSR fails to load as PEM: both are
    # crashes in the real Lambda too.
    return x509.load_pem_x509_csr(base64.standard_b64decode(event.get("base64_csr_data"))), None


def handle(
    event: Any,
    ca: Authority,
    history: History,
    now: datetime,
    policy: Policy,
    read_csr_file: CsrReader,
    log: Log,
) -> Outcome:
    """One TLS Lambda invocation: a certificate, a refusal {"error": ...} or an exception."""
    if event.get("ca_chain_only"):
        return Outcome(ca_chain(ca))
    common_name = event["common_name"]
    lifetime = int(event.get("lifetime", DEFAULT_LIFETIME_DAYS))
    loaded = _load_csr(event, read_csr_file, policy.internal_bucket)
    if isinstance(loaded, str):
        return Outcome({"error": loaded})
    csr, csr_file = loaded
    force = bool(event.get("force_issue"))
    kid = key_id(csr)
    if csr_file is not None and not force:
        day = csr_file.modified.astimezone(UTC).strftime("%Y-%m-%d")
        if day in history.issued_dates(str(common_name), kid):
            return Outcome({"error": ERR_ALREADY_ISSUED})
    if not csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        return Outcome({"error": ERR_NO_CN})
    if not force and history.key_used(str(common_name), kid):
        return Outcome({"error": ERR_KEY_REUSED})
    if lifetime < 1:
        return Outcome({"error": f"{lifetime} is too short"})
    extensions = custom_extensions(event.get("extensions"), policy.extension_allowlist)
    if isinstance(extensions, str):
        return Outcome({"error": extensions})
    now = now.astimezone(UTC).replace(microsecond=0)
    cert = build_certificate(
        event, csr, ca, now, min(lifetime, policy.max_lifetime_days), extensions, log
    )
    leaf_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    info = {
        "CommonName": common_name,
        "SerialNumber": str(cert.serial_number),
        "Issued": cert.not_valid_before_utc.strftime(TIME_FORMAT),
        "Expires": cert.not_valid_after_utc.strftime(TIME_FORMAT),
    }
    body = leaf_pem + ca.issuing_pem + ca.root_pem if event.get("cert_bundle") else leaf_pem
    payload = {
        "CertificateInfo": info,
        "Base64Certificate": _b64(body),
        "Subject": cert.subject.rfc4514_string(),
        **ca_chain(ca),
    }
    record = IssuedCert(
        common_name=str(common_name),
        serial=info["SerialNumber"],
        key_id=kid,
        issued=info["Issued"],
        expires=info["Expires"],
        pem=leaf_pem,
    )
    return Outcome(payload, record)
