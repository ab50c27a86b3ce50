"""The sidecar's checks: facts on disk + what is wanted + now -> a ``Decision``.

Each check looks at one thing and returns a ``Verdict`` (a reason from ``cacore.renewal``'s
vocabulary and a message) when it finds a problem; a chain returns the first one found. The
readiness chain (is there a usable certificate?) is a prefix of the issuance chain, so ``check``
mode, ``/readyz`` and the loop agree. When to renew is ``cacore.renewal.renew_at``, the same rule
the operator uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cacore import certinfo
from cacore.keys import SUBJECT_OIDS, KeySpec, key_spec_of
from cacore.names import is_domain_name
from cacore.renewal import (
    DEFAULT_POLICY,
    DOES_NOT_EXIST,
    INVALID_CERTIFICATE,
    INVALID_KEY,
    INVALID_KEY_PAIR,
    KEY_ALGORITHM_MISMATCH,
    MISSING_FILE,
    PURPOSES_MISMATCH,
    SANS_MISMATCH,
    SUBJECT_MISMATCH,
    UNREADABLE,
    UP_TO_DATE,
    RenewalPolicy,
    Verdict,
    certificate_renew_at,
    renewal_due,
)
from cacore.renewal import expired as expired_at
from cacore.request import CertificateRequest, San
from sidecar.observe import Observed

Found = Verdict | None


@dataclass(frozen=True)
class Decision:
    reason: str
    message: str
    issue: bool
    renew_at: datetime | None = None  # when UP_TO_DATE: the moment the next renewal is due
    not_after: datetime | None = None

    def seconds_until_due(self, now: datetime) -> float:
        if self.issue or self.renew_at is None:
            return 0.0
        return max(0.0, (self.renew_at - now).total_seconds())


# --- readiness checks: is a usable certificate in place? ---------------------------------


def nothing_published(observed: Observed, now: datetime) -> Found:
    if not observed.published:
        return Verdict(DOES_NOT_EXIST, "no credential set has been published yet")
    return None


def set_unreadable(observed: Observed, now: datetime) -> Found:
    if observed.unreadable:
        return Verdict(UNREADABLE, f"the credential set cannot be read: {observed.unreadable}")
    return None


def file_missing(observed: Observed, now: datetime) -> Found:
    if observed.missing:
        return Verdict(MISSING_FILE, f"the credential set lacks {', '.join(observed.missing)}")
    return None


def key_invalid(observed: Observed, now: datetime) -> Found:
    if observed.key is None:
        return Verdict(INVALID_KEY, observed.key_problem or "no private key")
    return None


def certificate_invalid(observed: Observed, now: datetime) -> Found:
    if observed.certificate is None:
        return Verdict(INVALID_CERTIFICATE, observed.certificate_problem or "no certificate")
    return None


def key_pair_mismatch(observed: Observed, now: datetime) -> Found:
    if not observed.key_matches:
        return Verdict(INVALID_KEY_PAIR, "the certificate's public key is not the private key's")
    return None


def expired(observed: Observed, now: datetime) -> Found:
    assert observed.certificate is not None  # guarded by certificate_invalid earlier
    return expired_at(observed.certificate.not_valid_after_utc, now)


READINESS_CHECKS: tuple[Callable[[Observed, datetime], Found], ...] = (
    nothing_published,
    set_unreadable,
    file_missing,
    key_invalid,
    certificate_invalid,
    key_pair_mismatch,
    expired,
)


def readiness_problem(observed: Observed, now: datetime) -> Found:
    """The first reason the files on disk are not a usable credential set, or None."""
    for check in READINESS_CHECKS:
        problem = check(observed, now)
        if problem:
            return problem
    return None


# --- configuration checks: is it the certificate the settings ask for? --------------------

_PURPOSE_OIDS = {
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
}


# How subject attributes are written for people (RFC 4514), not the core's field names.
_SHORT_NAMES = {
    "country": "C",
    "state": "ST",
    "locality": "L",
    "organization": "O",
    "organizational_unit": "OU",
    "common_name": "CN",
    "email_address": "emailAddress",
}


def subject_mismatch(cert: x509.Certificate, request: CertificateRequest) -> Found:
    # Only the configured attributes are compared: the CA may fill others in from its defaults.
    for name, wanted in request.subject.fields().items():
        found = [str(a.value) for a in cert.subject.get_attributes_for_oid(SUBJECT_OIDS[name])]
        if found != [wanted]:
            short = _SHORT_NAMES[name]
            has = f"{short}={found[0]!r}" if found else f"no {short}"
            want = f"{short}={wanted!r}"
            return Verdict(SUBJECT_MISMATCH, f"the certificate has {has}; the settings want {want}")
    return None


def _normal_san(san_type: str, value: str) -> tuple[str, str]:
    if san_type == "DNS_NAME":
        return san_type, value.lower()
    if san_type == "IP_ADDRESS":
        try:
            return san_type, str(ipaddress.ip_address(value))
        except ValueError:
            return san_type, value
    if san_type == "DN":
        try:
            return san_type, x509.Name.from_rfc4514_string(value).rfc4514_string()
        except ValueError:
            return san_type, value
    return san_type, value


def expected_sans(request: CertificateRequest) -> frozenset[tuple[str, str]]:
    """The SANs the CA will put in: the configured ones, or the common name alone when none are
    configured and it is a domain name (the contract's rule)."""
    sans: tuple[San, ...] = request.sans
    if not sans and is_domain_name(request.common_name):
        sans = (San("DNS_NAME", request.common_name),)
    return frozenset(_normal_san(s.type, s.value) for s in sans)


def certificate_sans(cert: x509.Certificate) -> frozenset[tuple[str, str]]:
    return frozenset(_normal_san(s.type, s.value) for s in certinfo.certificate_sans(cert))


def sans_mismatch(cert: x509.Certificate, request: CertificateRequest) -> Found:
    wanted, found = expected_sans(request), certificate_sans(cert)
    if wanted != found:
        missing = sorted(f"{t}:{v}" for t, v in wanted - found)
        extra = sorted(f"{t}:{v}" for t, v in found - wanted)
        return Verdict(SANS_MISMATCH, f"SANs differ (missing {missing}, unexpected {extra})")
    return None


def purposes_mismatch(cert: x509.Certificate, request: CertificateRequest) -> Found:
    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, ValueError):  # ValueError: malformed or repeated extensions
        usages = set()
    lacking = [p for p in request.purposes if _PURPOSE_OIDS[p] not in usages]
    if lacking:
        return Verdict(PURPOSES_MISMATCH, f"the certificate lacks the purposes {lacking}")
    return None


def key_algorithm_mismatch(observed: Observed, spec: KeySpec) -> Found:
    assert observed.key is not None
    found = key_spec_of(observed.key)
    if found != spec:
        return Verdict(KEY_ALGORITHM_MISMATCH, f"the key is {found}, want {spec}")
    return None


def evaluate(
    observed: Observed,
    request: CertificateRequest,
    spec: KeySpec,
    now: datetime,
    policy: RenewalPolicy = DEFAULT_POLICY,
    last_issued_at: datetime | None = None,
) -> Decision:
    """Issue now (with the first reason found) or wait until the renewal time.

    ``last_issued_at`` is when this process last issued; with ``policy.min_interval`` it keeps a
    renewal point that is always due (a misconfiguration) from hammering the CA. Problems that
    leave no usable certificate are never delayed by it.
    """
    problem = readiness_problem(observed, now)
    if problem:
        return Decision(problem.reason, problem.message, issue=True)
    cert = observed.certificate
    assert cert is not None
    not_after = cert.not_valid_after_utc
    problem = (
        subject_mismatch(cert, request)
        or sans_mismatch(cert, request)
        or purposes_mismatch(cert, request)
        or key_algorithm_mismatch(observed, spec)
    )
    floor = last_issued_at + policy.min_interval if last_issued_at else None
    if problem:
        if floor and now < floor:
            return Decision(
                UP_TO_DATE, problem.message, issue=False, renew_at=floor, not_after=not_after
            )
        return Decision(problem.reason, problem.message, issue=True, not_after=not_after)
    at = certificate_renew_at(cert, policy, last_issued_at)
    due = renewal_due(at, now)
    if due:
        return Decision(due.reason, due.message, issue=True, not_after=not_after)
    return Decision(
        UP_TO_DATE,
        f"valid until {not_after.isoformat()}, renewing at {at.isoformat()}",
        issue=False,
        renew_at=at,
        not_after=not_after,
    )
