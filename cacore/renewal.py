"""The one renewal decision of the project: when a certificate is renewed (renewal time, stable
jitter) and the closed vocabulary of reasons for issuing, shared by the sidecar, the operator and
the GitOps tool. Those only gather their inputs (files on disk, a Secret, a spec) and call this.

Reasons are CamelCase constants used verbatim in logs, metrics, conditions and events. Why a
certificate must be (re-)issued, in the order the checks run (the first one found wins):

- ``DoesNotExist``: nothing was ever issued (no credential set published; no Secret and no
  certificate on record).
- ``SecretMissing`` (operator): the Secret was deleted after a certificate had been issued.
- ``SecretNotOwned`` (operator): a Secret of that name exists but another object controls it.
- ``Unreadable`` (sidecar): something is published but cannot be read as a set (``..data``
  dangling, looping or not a link, a version folder deleted, a file without read permission).
- ``MissingFile`` (sidecar): the published set lacks the key or the certificate.
- ``MissingData`` (operator): the Secret lacks ``tls.crt``, ``tls.key`` or ``ca.crt``, or they
  do not parse.
- ``InvalidKey`` / ``InvalidCertificate`` (sidecar): the key or certificate file does not parse.
- ``InvalidKeyPair``: the certificate is not for the key beside it (tampered or half-written).
- ``InvalidChain`` (operator): ``tls.crt`` does not verify against ``ca.crt``.
- ``SpecChanged`` (operator): the issuance-relevant spec differs from the issued one.
- ``SubjectMismatch`` / ``SANsMismatch`` / ``PurposesMismatch`` / ``KeyAlgorithmMismatch``
  (sidecar): the configured subject, SANs, purposes or key algorithm changed.
- ``Expired``: the certificate's notAfter has passed.
- ``Renewing``: the renewal time (renewal point with jitter) has been reached.
- ``UpToDate`` (sidecar): nothing to do until the renewal time.

Outcomes (operator conditions and events):

- ``Ready``: the Secret holds a valid certificate for the current spec.
- ``Issued`` / ``Renewed`` / ``Reissued``: an issuance succeeded (first one / at the renewal
  point or expiry / for any other trigger).
- ``Refused``: the CA answered with an error; retried after a long backoff or a spec change.
- ``Failed``: the CA could not be reached, throttled or crashed; retried with backoff.
- ``InvalidSpec``: the spec cannot be turned into a request (admission normally stops this).
- ``IssuerNotFound``: ``issuerRef`` names no LambdaCA, or none is named and there is no default.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

DOES_NOT_EXIST = "DoesNotExist"
SECRET_MISSING = "SecretMissing"
SECRET_NOT_OWNED = "SecretNotOwned"
UNREADABLE = "Unreadable"
MISSING_FILE = "MissingFile"
MISSING_DATA = "MissingData"
INVALID_KEY = "InvalidKey"
INVALID_CERTIFICATE = "InvalidCertificate"
INVALID_KEY_PAIR = "InvalidKeyPair"
INVALID_CHAIN = "InvalidChain"
SPEC_CHANGED = "SpecChanged"
SUBJECT_MISMATCH = "SubjectMismatch"
SANS_MISMATCH = "SANsMismatch"
PURPOSES_MISMATCH = "PurposesMismatch"
KEY_ALGORITHM_MISMATCH = "KeyAlgorithmMismatch"
EXPIRED = "Expired"
RENEWING = "Renewing"
UP_TO_DATE = "UpToDate"

READY = "Ready"
ISSUED = "Issued"
RENEWED = "Renewed"
REISSUED = "Reissued"
REFUSED = "Refused"
FAILED = "Failed"
INVALID_SPEC = "InvalidSpec"
ISSUER_NOT_FOUND = "IssuerNotFound"


def success_reason(trigger: str) -> str:
    """The outcome of a successful issuance caused by ``trigger``."""
    if trigger == DOES_NOT_EXIST:
        return ISSUED
    if trigger in (RENEWING, EXPIRED):
        return RENEWED
    return REISSUED


@dataclass(frozen=True)
class Verdict:
    """Why to issue now: a reason from the vocabulary above and a sentence for people."""

    reason: str
    message: str


DEFAULT_RENEW_FRACTION = 2 / 3  # renew when two thirds of the lifetime have passed
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=36525)  # longer is a typo, and beyond what datetimes can add


@dataclass(frozen=True)
class RenewalPoint:
    """Either a duration before expiry or a fraction of the lifetime at which to renew."""

    before_expiry: timedelta | None = None
    fraction: float | None = None


@dataclass(frozen=True)
class RenewalPolicy:
    """When to renew: the renewal point, a jitter (renew up to this fraction of the time since
    issuance earlier, so a fleet issued together renews apart) and the shortest time between two
    issuances (a guard against a renewal point that is always due)."""

    point: RenewalPoint = RenewalPoint()
    jitter: float = 0.0
    min_interval: timedelta = timedelta(0)


DEFAULT_POLICY = RenewalPolicy()


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """Go-style durations (``90m``, ``1h30m``, ``720h``) plus days (``10d``)."""
    from cacore.errors import InvalidRequest

    stripped = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not stripped or pos != len(stripped):
        raise InvalidRequest(field, f"{text!r} is not a duration; write e.g. 720h, 90m or 10d")
    if not total <= MAX_DURATION.total_seconds():  # also inf and nan from 1e400h
        raise InvalidRequest(field, f"{text!r} is longer than 100 years; write e.g. 720h or 10d")
    return timedelta(seconds=total)


def parse_renewal_point(text: str, field: str = "renew_before") -> RenewalPoint:
    """``2/3`` or ``0.66`` or ``66%`` (fraction of lifetime elapsed) or a duration before expiry."""
    from cacore.errors import InvalidRequest

    stripped = text.strip()
    fraction: float | None = None
    try:
        if stripped.endswith("%"):
            fraction = float(stripped[:-1]) / 100
        elif "/" in stripped:
            top, bottom = stripped.split("/", 1)
            fraction = float(top) / float(bottom)
        elif re.fullmatch(r"\d*\.\d+|[01]", stripped):
            fraction = float(stripped)
    except (ValueError, ZeroDivisionError) as error:
        raise InvalidRequest(field, f"{text!r} is not a fraction such as 2/3 or 66%") from error
    if fraction is not None:
        if not 0 < fraction < 1:
            raise InvalidRequest(field, f"{text!r} must be a fraction strictly between 0 and 1")
        return RenewalPoint(fraction=fraction)
    duration = parse_duration(stripped, field)
    if duration <= timedelta(0):
        raise InvalidRequest(field, "must be a positive duration before expiry")
    return RenewalPoint(before_expiry=duration)


def renewal_time(
    not_before: datetime, not_after: datetime, point: RenewalPoint = RenewalPoint()
) -> datetime:
    """When to renew, cert-manager's precedence: a duration before expiry if it fits inside the
    lifetime, else a fraction of the lifetime, else the default two thirds. Truncated to whole
    seconds because status fields store seconds."""
    lifetime = not_after - not_before
    if point.before_expiry is not None and point.before_expiry < lifetime:
        at = not_after - point.before_expiry
    else:
        fraction = point.fraction if point.fraction is not None else DEFAULT_RENEW_FRACTION
        at = not_before + lifetime * fraction
    return at.replace(microsecond=0)


def with_jitter(at: datetime, not_before: datetime, spread: float, rand: float) -> datetime:
    """Move ``at`` earlier by up to ``spread`` of the time since issuance, so a fleet issued
    together renews apart. ``rand`` in [0, 1) is passed in, keeping this function pure."""
    return at - (at - not_before) * spread * rand


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` (e.g. a serial number): jitter that is the same after
    a restart and different across a fleet (serials are random), with nothing stored."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def renew_at(
    not_before: datetime,
    not_after: datetime,
    serial: int,
    policy: RenewalPolicy = DEFAULT_POLICY,
    issued_at: datetime | None = None,
) -> datetime:
    """When to renew this certificate: the renewal point, moved earlier by a stable part of
    ``policy.jitter`` of the time since issuance, in whole seconds.

    ``issued_at`` is when the caller issued it, if known. Jitter is measured from it rather than
    from notBefore, which the CA backdates by 5 minutes (that would let jitter pull a short
    renewal into the past); and with ``policy.min_interval`` no renewal comes sooner after it.
    """
    at = renewal_time(not_before, not_after, policy.point)
    known = issued_at is not None and not_before <= issued_at < at
    start = issued_at if known and issued_at is not None else not_before
    at = with_jitter(at, start, policy.jitter, stable_fraction(serial)).replace(microsecond=0)
    if issued_at is not None and policy.min_interval:
        at = max(at, issued_at + policy.min_interval)
    return at


def is_due(now: datetime, renew_at: datetime) -> bool:
    return now >= renew_at


def certificate_renew_at(
    certificate: x509.Certificate, policy: RenewalPolicy, issued_at: datetime | None = None
) -> datetime:
    """``renew_at`` for a parsed certificate."""
    return renew_at(
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        certificate.serial_number,
        policy,
        issued_at,
    )


def expired(not_after: datetime, now: datetime) -> Verdict | None:
    if now >= not_after:
        return Verdict(EXPIRED, f"The certificate expired at {not_after.isoformat()}")
    return None


def renewal_due(at: datetime, now: datetime) -> Verdict | None:
    if is_due(now, at):
        return Verdict(RENEWING, f"Renewal time {at.isoformat()} reached")
    return None
