"""Whether a ClientCertificate needs a certificate now, and when to look again: pure decisions.

cert-manager's design: the gatherer reads the API and hands over one ``Input``; each check looks
at it and returns the first thing wrong as a ``Verdict`` (a reason from ``cacore.renewal``'s
vocabulary and a message); ``evaluate`` runs the chain. No check reads the API or the clock:
``now`` is in the input. When to renew is ``cacore.renewal``'s, the same rule as the sidecar's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from cacore import renewal
from cacore.backoff import backoff_delay
from cacore.certinfo import chain_problem, key_matches
from cacore.keys import PrivateKey, load_private_key
from cacore.renewal import (
    RenewalPoint,
    RenewalPolicy,
    Verdict,
    certificate_renew_at,
    stable_fraction,
)
from certoperator.api import (
    ANNOTATION_ISSUED_AT,
    ANNOTATION_SPEC_HASH,
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
)
from certoperator.conditions import format_time, parse_time


@dataclass(frozen=True)
class SecretView:
    """The parts of a Secret the checks look at; ``data`` is already base64-decoded."""

    name: str
    controller_uid: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretFacts:
    """What the checks need from one version of a Secret. Parsing the key and verifying the chain
    are the costly part, so they run once when the watch delivers the Secret (``inspect_secret``),
    not on every pass; a summary is also far smaller to keep in memory than the Secret."""

    name: str
    controller_uid: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    data_problem: Verdict | None = None  # MissingData, InvalidKeyPair or InvalidChain
    serial: int | None = None  # the certificate's, when its data is usable
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class Input:
    owner_uid: str
    spec_hash: str
    renewal: RenewalPoint
    secret: SecretFacts | None
    previously_issued: bool  # status records a serial: a missing Secret was deleted
    now: datetime
    jitter: float = 0.0  # renew up to this fraction of the time since issuance early


@dataclass(frozen=True)
class Facts:
    """What the Secret's certificate says, for status and scheduling."""

    serial: int
    not_before: datetime
    not_after: datetime
    renewal_time: datetime


@dataclass(frozen=True)
class Material:
    certificate: x509.Certificate | None
    key: PrivateKey | None
    cas: tuple[x509.Certificate, ...]
    problem: str | None  # why the data cannot be used, if it cannot


def load_material(data: Mapping[str, bytes]) -> Material:
    missing = [name for name in (CERT_FILE, KEY_FILE, CA_FILE) if not data.get(name)]
    if missing:
        return Material(None, None, (), f"the Secret has no {', '.join(missing)}")
    try:
        chain = x509.load_pem_x509_certificates(data[CERT_FILE])
        cas = x509.load_pem_x509_certificates(data[CA_FILE])
    except ValueError as error:
        return Material(None, None, (), f"a certificate in the Secret does not parse: {error}")
    try:
        key = load_private_key(data[KEY_FILE])
    except (ValueError, TypeError) as error:
        return Material(chain[0], None, (), f"{KEY_FILE} does not parse: {error}")
    return Material(chain[0], key, tuple(cas), None)


def data_problem(material: Material) -> Verdict | None:
    """The first thing wrong with the Secret's data, in the order the checks are documented:
    missing or unparsable, then a key that is not the certificate's, then a broken chain."""
    if material.problem is not None:
        return Verdict(renewal.MISSING_DATA, material.problem)
    assert material.certificate is not None and material.key is not None
    if not key_matches(material.certificate, material.key):
        return Verdict(renewal.INVALID_KEY_PAIR, f"{KEY_FILE} is not the key of {CERT_FILE}")
    problem = chain_problem(material.certificate, list(material.cas))
    if problem:
        return Verdict(
            renewal.INVALID_CHAIN, f"{CERT_FILE} does not verify with {CA_FILE}: {problem}"
        )
    return None


def inspect_secret(view: SecretView) -> SecretFacts:
    material = load_material(view.data)
    problem = data_problem(material)
    cert = material.certificate if problem is None else None
    return SecretFacts(
        name=view.name,
        controller_uid=view.controller_uid,
        annotations=dict(view.annotations),
        labels=dict(view.labels),
        data_problem=problem,
        serial=cert.serial_number if cert is not None else None,
        not_before=cert.not_valid_before_utc if cert is not None else None,
        not_after=cert.not_valid_after_utc if cert is not None else None,
    )


def renew_at(
    certificate: x509.Certificate,
    point: RenewalPoint,
    jitter: float,
    issued_at: datetime | None,
) -> datetime:
    """The renewal time of the Secret's certificate; ``issued_at`` is the operator's own issue
    time (the issued-at annotation) when known."""
    return certificate_renew_at(certificate, RenewalPolicy(point, jitter), issued_at)


def facts_of(inp: Input) -> Facts | None:
    secret = inp.secret
    if secret is None or secret.serial is None:
        return None
    assert secret.not_before is not None and secret.not_after is not None
    issued_at = parse_time(secret.annotations.get(ANNOTATION_ISSUED_AT))
    return facts_for(
        secret.serial, secret.not_before, secret.not_after, inp.renewal, inp.jitter, issued_at
    )


def facts_for(
    serial: int,
    not_before: datetime,
    not_after: datetime,
    point: RenewalPoint,
    jitter: float,
    issued_at: datetime | None,
) -> Facts:
    policy = RenewalPolicy(point, jitter)
    return Facts(
        serial=serial,
        not_before=not_before,
        not_after=not_after,
        renewal_time=renewal.renew_at(not_before, not_after, serial, policy, issued_at),
    )


def issued_facts(
    certificate: x509.Certificate, point: RenewalPoint, jitter: float, issued_at: datetime
) -> Facts:
    """Facts of a certificate just issued (and verified by the client)."""
    return Facts(
        serial=certificate.serial_number,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        renewal_time=renew_at(certificate, point, jitter, issued_at),
    )


Check = Callable[[Input], Verdict | None]


def secret_does_not_exist(inp: Input) -> Verdict | None:
    if inp.secret is None and not inp.previously_issued:
        return Verdict(renewal.DOES_NOT_EXIST, "Issuing the first certificate")
    return None


def secret_missing(inp: Input) -> Verdict | None:
    if inp.secret is None:
        return Verdict(renewal.SECRET_MISSING, "The Secret was deleted; issuing a new certificate")
    return None


def secret_not_owned(inp: Input) -> Verdict | None:
    assert inp.secret is not None
    if inp.secret.controller_uid != inp.owner_uid:
        return Verdict(
            renewal.SECRET_NOT_OWNED,
            f"Secret {inp.secret.name} is not controlled by this ClientCertificate; taking it over",
        )
    return None


def unusable_data(inp: Input) -> Verdict | None:
    """MissingData, InvalidKeyPair or InvalidChain, found by ``inspect_secret``."""
    assert inp.secret is not None
    return inp.secret.data_problem


def spec_changed(inp: Input) -> Verdict | None:
    assert inp.secret is not None
    if inp.secret.annotations.get(ANNOTATION_SPEC_HASH) != inp.spec_hash:
        return Verdict(renewal.SPEC_CHANGED, "The spec changed since the certificate was issued")
    return None


def expired(inp: Input) -> Verdict | None:
    assert inp.secret is not None and inp.secret.not_after is not None
    return renewal.expired(inp.secret.not_after, inp.now)


def renewal_due(inp: Input) -> Verdict | None:
    facts = facts_of(inp)
    assert facts is not None
    return renewal.renewal_due(facts.renewal_time, inp.now)


# Order matters: later checks may assume what earlier ones established (a Secret exists, its
# data is usable), which is what the asserts state.
TRIGGER_CHAIN: tuple[Check, ...] = (
    secret_does_not_exist,
    secret_missing,
    secret_not_owned,
    unusable_data,
    spec_changed,
    expired,
    renewal_due,
)


def evaluate(
    inp: Input, chain: tuple[Check, ...] = TRIGGER_CHAIN
) -> tuple[Verdict | None, Facts | None]:
    """The first reason to issue (None if the Secret is good), and the facts of the current
    certificate when it is usable."""
    for check in chain:
        verdict = check(inp)
        if verdict is not None:
            return verdict, None
    return None, facts_of(inp)


def template_drift(
    secret: SecretFacts, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> bool:
    """Whether the Secret lacks a label or annotation of the secretTemplate (fixed by a metadata
    patch, never by a new certificate)."""
    return any(secret.labels.get(k) != v for k, v in labels.items()) or any(
        secret.annotations.get(k) != v for k, v in annotations.items()
    )


# --- after a failure ------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Transient faults back off from ``base`` to ``cap`` seconds; a refusal waits
    ``refused_base`` doubling to ``refused_cap`` unless the spec changes first."""

    base: float = 2.0
    cap: float = 300.0
    refused_base: float = 3600.0
    refused_cap: float = 86400.0


@dataclass(frozen=True)
class FailedAttempts:
    attempts: int
    last_failure: datetime
    reason: str
    message: str
    spec_hash: str
    transient: bool


def retry_at(failure: FailedAttempts, policy: RetryPolicy, rand: float) -> datetime:
    if failure.transient:
        delay = backoff_delay(failure.attempts, rand, policy.base, policy.cap)
    else:
        delay = backoff_delay(failure.attempts, rand, policy.refused_base, policy.refused_cap)
    return failure.last_failure + timedelta(seconds=delay)


def may_issue(
    failure: FailedAttempts | None, spec_hash: str, now: datetime, policy: RetryPolicy, rand: float
) -> datetime | None:
    """None if an issuance may start now, else when it may. A spec change lifts any backoff:
    the user's fix deserves an immediate try."""
    if failure is None or failure.spec_hash != spec_hash:
        return None
    at = retry_at(failure, policy, rand)
    return None if now >= at else at


def retry_rand(failure: FailedAttempts | None) -> float:
    """The jitter of a failure's retry, fixed by the failure itself, so every pass computes the
    same retry time (and a restart as well)."""
    if failure is None:
        return 0.0
    return stable_fraction(failure.attempts, format_time(failure.last_failure))
