"""Judging certificate requests made elsewhere (a partner's CSR) before anyone asks the CA to sign
them (``CAClient.issue_csr`` does that). ``load_csr`` is the strict loader used right before
issuing; ``read_csr`` loads without judging the signature and explains what non-CSR bytes are,
so a linter can report every problem of a file separately."""

from __future__ import annotations

import functools

from cryptography import x509

from cacore import certinfo
from cacore.certinfo import sans_of
from cacore.errors import InvalidRequest
from cacore.keys import KEY_ALGORITHMS, key_spec_of
from cacore.request import San

PEM_CSR_BEGIN = b"-----BEGIN CERTIFICATE REQUEST-----"
# A CSR is a few kilobytes; anything much larger is not one (and is not read past this).
MAX_CSR_BYTES = 64 * 1024
# Older OpenSSL releases and some HSM tools still write this header.
_NEW_PEM_CSR_BEGIN = b"-----BEGIN NEW CERTIFICATE REQUEST-----"


def read_csr(data: bytes, field: str = "csr") -> x509.CertificateSigningRequest:
    """A PEM CSR (signature not yet judged: see ``signature_valid``), or ``InvalidRequest``
    saying what the bytes are instead (DER, a private key, an old header, junk)."""
    if len(data) > MAX_CSR_BYTES:
        raise InvalidRequest(
            field, f"is larger than {MAX_CSR_BYTES} bytes; a CSR is a few kilobytes"
        )
    stripped = data.lstrip()
    if stripped.startswith(_NEW_PEM_CSR_BEGIN):
        raise InvalidRequest(
            field,
            "has the old 'NEW CERTIFICATE REQUEST' PEM header, which the CA cannot read; "
            "rewrite it with: openssl req -in FILE -out FILE.csr",
        )
    if not stripped.startswith(PEM_CSR_BEGIN):
        if stripped.startswith(b"-----BEGIN") and b"PRIVATE KEY" in stripped[:64]:
            raise InvalidRequest(
                field, "is a PRIVATE KEY, not a CSR: delete it and ask for the CSR only"
            )
        if stripped[:1] == b"\x30":
            raise InvalidRequest(
                field,
                "is DER, but the CA takes PEM only; convert it with: "
                "openssl req -inform DER -in FILE -out FILE.csr",
            )
        raise InvalidRequest(
            field, "is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)"
        )
    try:
        csr = x509.load_pem_x509_csr(data)
        csr.subject  # noqa: B018 - some malformed subjects fail only when first read
    except (ValueError, x509.InvalidVersion) as error:
        raise InvalidRequest(field, f"PEM does not parse as a CSR: {error}") from error
    return csr


def load_csr(data: bytes, field: str = "csr") -> x509.CertificateSigningRequest:
    """The strict loader used right before issuing: ``read_csr`` plus proof of possession. The
    answer for the same bytes is remembered, so a CSR judged once (the operator's signer at
    approval) is neither parsed nor checked again by the next step (the signing, the CA client)."""
    csr = _proven(bytes(data))
    if csr is None:
        read_csr(data, field)  # raises what the bytes are instead of a CSR, naming ``field``
        raise InvalidRequest(field, SIGNATURE_MESSAGE)
    return csr


@functools.lru_cache(maxsize=256)
def _proven(data: bytes) -> x509.CertificateSigningRequest | None:
    """The CSR in ``data`` when it parses and its signature verifies, else None (a pure
    function of the bytes, so remembered; CSR objects are immutable)."""
    try:
        csr = read_csr(data)
    except InvalidRequest:
        return None
    return csr if signature_valid(csr) else None


# The checks every tool runs on a CSR made elsewhere, one identity each (the GitOps tool maps
# them to its finding codes; ca-cert --csr refuses the first).
SIGNATURE, KEY, NO_COMMON_NAME = "signature", "key", "no-common-name"
SIGNATURE_MESSAGE = (
    "signature does not verify: the CSR was altered or not signed with its own key; "
    "ask for a fresh CSR"
)


def csr_problems(csr: x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    """Everything that makes ``csr`` unfit to send to the CA, as (check, message) pairs: no
    proof of possession, a key type or size the project does not allow (RSA-1024...), no
    common name (the CA refuses it, whatever the request says)."""
    problems = []
    if not signature_valid(csr):
        problems.append((SIGNATURE, SIGNATURE_MESSAGE))
    problem = key_problem(csr)
    if problem:
        problems.append((KEY, problem))
    if not common_name_of(csr):
        problems.append(
            (
                NO_COMMON_NAME,
                "has no common name (CN) in its subject; the CA refuses such CSRs ('CSR must "
                "include a Common Name') whatever the request says: ask for a CSR with a CN",
            )
        )
    return problems


def common_name_of(csr: x509.CertificateSigningRequest) -> str | None:
    """The CSR's first non-blank common name, or None."""
    value = subject_fields(csr).get("common_name")
    return value if value and value.strip() else None


def check_csr(
    csr: x509.CertificateSigningRequest, field: str, common_name: str | None = None
) -> x509.CertificateSigningRequest:
    """``csr`` if it passes every check of ``csr_problems`` and, given the ``common_name`` the
    request will carry, names the same subject; else ``InvalidRequest`` for ``field``."""
    for _check, message in csr_problems(csr):
        raise InvalidRequest(field, message)
    own = common_name_of(csr)
    if common_name and own and own != common_name:
        raise InvalidRequest(
            field,
            f"names {own!r} but the request says {common_name!r}; the certificate would name "
            "what the request says: make them agree",
        )
    return csr


def key_problem(csr: x509.CertificateSigningRequest) -> str | None:
    """Why the CSR's key is not acceptable, or None: only the project's key algorithms pass."""
    try:
        public_key = csr.public_key()
    except Exception as error:  # unsupported algorithm OIDs fail only when the key is loaded
        return f"its public key cannot be read ({error})"
    spec = key_spec_of(public_key)
    allowed = ", ".join(KEY_ALGORITHMS)
    if spec is None:
        return f"its key type {type(public_key).__name__} is not allowed; use one of {allowed}"
    if str(spec) not in KEY_ALGORITHMS:
        return f"its key {spec} is not allowed; use one of {allowed}"
    return None


def signature_valid(csr: x509.CertificateSigningRequest) -> bool:
    """Proof of possession: the requester signed the CSR with the key it asks to certify (the
    serverless CA itself never checks this)."""
    try:
        return csr.is_signature_valid
    except Exception:  # unsupported signature algorithms raise instead of answering
        return False


def subject_fields(csr: x509.CertificateSigningRequest) -> dict[str, str]:
    """The CSR's subject as event keys (first value of each attribute)."""
    return certinfo.subject_fields(csr.subject)


def requested_sans(csr: x509.CertificateSigningRequest) -> tuple[San, ...]:
    """SANs the requester put in the CSR. The CA ignores them: callers copy them into the request
    explicitly when the requester expects them."""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return sans_of(ext)
