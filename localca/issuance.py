"""The TLS Lambda's decision and signing, as one function of (event, CA, history, now).

Nothing here touches the network, the disk or the clock: the server passes them in. The steps
follow upstream's `lambda_handler` (`lambda_code/tls_cert/tls_cert.py`, v4) in its order, so the
same event gets the same answer: a certificate, a refusal `{"error": ...}`, or an exception
escaping `handle`, which the server turns into the Lambda's crash (FunctionError) as the real
runtime does. Where upstream crashes on an input, this code raises the same exception type.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from localca import event as event_rules
from localca import extensions as extension_rules
from localca import sans as san_rules
from localca import table_keys, usages
from localca.authority import Authority

BACKDATE = timedelta(minutes=5)
DEFAULT_LIFETIME_DAYS = 30
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
POLICY_OID = x509.ObjectIdentifier("2.23.140.1.2.1")

ERR_NO_CN = "CSR must include a Common Name"
ERR_KEY_REUSED = "Private key has already been used for a certificate"
ERR_ALREADY_ISSUED = "Certificate already issued"

# Request fields that override the CSR's subject, in the order upstream builds the name (CN
# first); rfc4514_string() then shows them reversed: ST, OU, O, L, E, C, CN.
SUBJECT_FIELDS = (
    (NameOID.COUNTRY_NAME, "country"),
    (NameOID.EMAIL_ADDRESS, "email_address"),
    (NameOID.LOCALITY_NAME, "locality"),
    (NameOID.ORGANIZATION_NAME, "organization"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational_unit"),
    (NameOID.STATE_OR_PROVINCE_NAME, "state"),
)


class History(Protocol):
    """What the decision needs to know about certificates issued before."""

    def key_used(self, common_name: str, key_id: str) -> bool: ...


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
# The CSR stored as `csrs/<name>` in the internal bucket, or None when there is none.
CsrReader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class RequestInfo:
    """Upstream's CsrInfo: what `create_csr_info` reads from the raw event."""

    common_name: Any
    subject: dict[str, Any]
    lifetime: int
    purposes: list[Any]
    usage_names: list[str]
    extensions: list[Any]
    sans: list[san_rules.San]  # after the first filtering pass


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


def request_info(event: dict[str, Any], log: Log) -> RequestInfo:
    """Upstream's create_csr_info, raising where it raises (lifetime, common_name, SANs, EKUs)."""
    lifetime = int(event.get("lifetime", DEFAULT_LIFETIME_DAYS))
    common_name = event["common_name"]
    subject = {key: event.get(key) for _, key in SUBJECT_FIELDS}
    sans = san_rules.filter_valid(common_name, event.get("sans"), log)
    return RequestInfo(
        common_name=common_name,
        subject=subject,
        lifetime=lifetime,
        purposes=usages.purposes_of(event.get("purposes")),
        usage_names=usages.usage_names(event.get("extended_key_usages"), log),
        extensions=event.get("extensions") or [],
        sans=sans,
    )


def load_csr(
    request: event_rules.Request, read_csr_file: CsrReader, bucket: str
) -> tuple[x509.CertificateSigningRequest, bool] | str:
    """The CSR and whether it came from a file, or the refusal for a missing file. Bad base64,
    no CSR at all, and anything that is not a PEM CSR (DER included) raise, as upstream."""
    if request.csr_file:
        data = read_csr_file(request.csr_file)
        if data is None:
            return f"CSR file '{request.csr_file}' not found in S3 bucket '{bucket}'"
        return x509.load_pem_x509_csr(data), True
    raw = base64.standard_b64decode(request.base64_csr_data)  # type: ignore[arg-type]
    return x509.load_pem_x509_csr(raw), False


def subject_name(info: RequestInfo, csr_subject: x509.Name) -> x509.Name:
    """Request fields over the CSR's (upstream tls_cert_construct_subject_name): a falsy request
    value falls back to the CSR; a non-string or over-long value raises; the CSR must have a CN."""
    csr_cn = csr_subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, info.common_name or csr_cn)]
    for oid, key in SUBJECT_FIELDS:
        found = csr_subject.get_attributes_for_oid(oid)
        value = info.subject[key] or (found[0].value if found else None)
        if value:
            attributes.append(x509.NameAttribute(oid, value))
    return x509.Name(attributes)


def build_certificate(
    info: RequestInfo,
    csr: x509.CertificateSigningRequest,
    ca: Authority,
    now: datetime,
    lifetime_days: int,
    log: Log,
) -> x509.Certificate:
    """Upstream ca_build_cert + ca_kms_sign_tls_certificate_request, extensions in its order."""
    sans = san_rules.filter_again(info.common_name, info.sans, log)
    names = san_rules.to_general_names(sans, log)
    extra = extension_rules.to_x509(info.extensions)
    subject = subject_name(info, csr.subject)
    ekus = usages.eku_oids(info.purposes, info.usage_names)
    public = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
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
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, None)]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.issuing_public_key),
            critical=False,
        )
    )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.issuing_key, hashes.SHA256())


def _checks(
    info: RequestInfo,
    request: event_rules.Request,
    csr: x509.CertificateSigningRequest,
    from_file: bool,
    history: History,
    policy: Policy,
) -> str | None:
    """The refusal, in upstream's order (already issued, no CN, key reuse, lifetime, custom
    extensions), or None. The table lookups raise for an unusable common_name, as upstream's do."""
    if from_file and not request.force_issue:
        table_keys.check(info.common_name, table_keys.QUERY)
        if history.key_used(info.common_name, key_id(csr)):
            return ERR_ALREADY_ISSUED
    # Upstream tests the RFC 4514 text, so "CN=" inside another attribute's value also passes.
    if "CN=" not in csr.subject.rfc4514_string():
        return ERR_NO_CN
    if not request.force_issue:
        table_keys.check(info.common_name, table_keys.QUERY)
        if history.key_used(info.common_name, key_id(csr)):
            return ERR_KEY_REUSED
    if info.lifetime < 1:
        return f"{info.lifetime} is too short"
    return extension_rules.refusal(info.extensions, policy.extension_allowlist)


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
    request = event_rules.read(event)
    if request.ca_chain_only:
        # Upstream returns raw bytes here (a Runtime.MarshalError); the local CA answers what
        # the contract intends. See docs/local-ca.md.
        return Outcome(ca_chain(ca))
    info = request_info(event, log)
    loaded = load_csr(request, read_csr_file, policy.internal_bucket)
    if isinstance(loaded, str):
        return Outcome({"error": loaded})
    csr, from_file = loaded
    refusal = _checks(info, request, csr, from_file, history, policy)
    if refusal is not None:
        return Outcome({"error": refusal})
    now = now.astimezone(UTC).replace(microsecond=0)
    lifetime = min(info.lifetime, policy.max_lifetime_days)
    cert = build_certificate(info, csr, ca, now, lifetime, log)
    table_keys.check(info.common_name, table_keys.PUT_ITEM)
    leaf_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_info = {
        "CommonName": info.common_name,
        "SerialNumber": str(cert.serial_number),
        "Issued": cert.not_valid_before_utc.strftime(TIME_FORMAT),
        "Expires": cert.not_valid_after_utc.strftime(TIME_FORMAT),
    }
    body = leaf_pem + ca.issuing_pem + ca.root_pem if request.cert_bundle else leaf_pem
    payload = {
        "CertificateInfo": cert_info,
        "Base64Certificate": _b64(body),
        "Subject": cert.subject.rfc4514_string(),
        **ca_chain(ca),
    }
    record = IssuedCert(
        common_name=info.common_name,
        serial=cert_info["SerialNumber"],
        key_id=key_id(csr),
        issued=cert_info["Issued"],
        expires=cert_info["Expires"],
        pem=leaf_pem,
    )
    return Outcome(payload, record)
