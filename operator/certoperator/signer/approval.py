"""The approval decision, cert-manager approver-policy style: one gathered ``ApprovalInput``,
checks of the form ``(policy, request) -> problem or None``, and a ``Decision`` with a reason from
``names`` and a message that names the policy and the field to change. Deny by default: a CSR is
approved only when a ClientCertificatePolicy for its signer names the requester and allows
everything the CSR asks for. Nothing here calls the API; ``controller`` gathers the labels that
selectors need.

The identity is the API server's record (``spec.username`` and ``spec.extra``); the CSR body is
only ever compared with what the policy's templates give for that identity.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from cacore.csr import key_problem, load_csr, requested_sans, subject_fields
from cacore.errors import InvalidRequest
from cacore.keys import key_spec_of
from cacore.kubecsr import SECONDS_PER_DAY, lifetime_days
from cacore.request import San, validate
from certoperator.signer import templates
from certoperator.signer.csrview import CsrView
from certoperator.signer.identity import Requester
from certoperator.signer.names import (
    APPROVED_BY_POLICY,
    INVALID_CSR,
    MANUAL_APPROVAL_REQUIRED,
    NO_MATCHING_POLICY,
    NOT_A_SERVICE_ACCOUNT,
    POLICY_VIOLATION,
)
from certoperator.signer.policyspec import MANUAL, SUBJECT_FIELDS, Policy, policies_for
from certoperator.signer.signing import ca_request

APPROVE, DENY, PENDING = "Approve", "Deny", "Pending"
_POLICY_KEYS = {event: key for key, event in SUBJECT_FIELDS.items()}
_SAN_PREFIX = {"DNS_NAME": "DNS", "IP_ADDRESS": "IP", "EMAIL_ADDRESS": "EMAIL", "URL": "URI"}


@dataclass(frozen=True)
class ApprovalInput:
    csr: CsrView
    policies: Sequence[Policy]
    default_lifetime_days: int  # the LambdaCA's signer.defaultLifetimeDays
    ca_max_lifetime_days: int  # the LambdaCA's maxLifetimeDays
    namespace_labels: Mapping[str, str] | None = None  # None: not gathered, or no such object
    service_account_labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Decision:
    outcome: str  # APPROVE, DENY or PENDING
    reason: str
    message: str
    policy: str | None = None


@dataclass(frozen=True)
class Request:
    """What the CSR asks for, read once for every policy's checks."""

    csr: CsrView
    parsed: x509.CertificateSigningRequest
    requester: Requester
    subject: Mapping[str, str]
    sans: tuple[San, ...]
    days: int
    default_days: int


Check = Callable[[Policy, Request], str | None]


def requester_matches(policy: Policy, inp: ApprovalInput) -> bool:
    who, r = inp.csr.requester, policy.requesters
    if any(
        ref.namespace == who.namespace and ref.name in (None, who.service_account)
        for ref in r.service_accounts
    ):
        return True
    if not r.uses_selectors:
        return False
    for selector, labels in (
        (r.namespace_selector, inp.namespace_labels),
        (r.service_account_selector, inp.service_account_labels),
    ):
        if selector is not None and (labels is None or not selector.matches(labels)):
            return False
    return True


# --- the checks, each naming the policy field it enforces --------------------------------------


def policy_invalid(policy: Policy, req: Request) -> str | None:
    return f"the policy is invalid and allows nothing: {policy.problem}" if policy.problem else None


def pod_binding(policy: Policy, req: Request) -> str | None:
    if policy.requesters.require_pod and not req.requester.pod_name:
        return (
            "spec.requesters.requirePod: the CSR was not made with a Pod-bound ServiceAccount "
            "token (the API server recorded no Pod); create it from inside the Pod"
        )
    return None


def _needs(field: str, template: str, values: Mapping[str, str]) -> str | None:
    lacking = templates.missing(template, values)
    if lacking:
        return (
            f"{field}: the template {template!r} uses {', '.join('{' + v + '}' for v in lacking)}, "
            "which the request does not carry (only a Pod-bound token records the Pod and node)"
        )
    return None


def subject(policy: Policy, req: Request) -> str | None:
    values = req.requester.variables()
    for event_field, template in policy.subject.items():
        field = f"spec.subject.{_POLICY_KEYS[event_field]}"
        problem = _needs(field, template, values)
        if problem:
            return problem
        wanted = templates.render(template, values)
        found = req.subject.get(event_field)
        if found != wanted:
            asked = f"{found!r}" if found is not None else "nothing"
            return (
                f"{field}: the CSR asks for {asked}; {req.requester.describe()} may only have "
                f"{wanted!r} (template {template!r})"
            )
    extra = sorted(set(req.subject) - set(policy.subject))
    if extra:
        allowed = ", ".join(_POLICY_KEYS[f] for f in policy.subject)
        return (
            f"spec.subject: the CSR's subject sets {', '.join(_POLICY_KEYS[f] for f in extra)}, "
            f"which the policy does not template (it allows {allowed}); leave them out of the CSR"
        )
    return None


def _normal(san: San) -> tuple[str, str]:
    if san.type == "DNS_NAME":
        return san.type, san.value.lower()
    if san.type == "IP_ADDRESS":
        try:
            return san.type, str(ipaddress.ip_address(san.value))
        except ValueError:
            return san.type, san.value
    return san.type, san.value


def _label(san: San) -> str:
    return f"{_SAN_PREFIX.get(san.type, san.type)}:{san.value}"


def sans(policy: Policy, req: Request) -> str | None:
    values = req.requester.variables()
    allowed = [
        San(t.type, templates.render(t.value, values))
        for t in policy.sans
        if not templates.missing(t.value, values)
    ]
    allowed_keys = {_normal(s) for s in allowed}
    outside = [s for s in req.sans if _normal(s) not in allowed_keys]
    if outside:
        may = ", ".join(_label(s) for s in allowed) or "none"
        return (
            f"spec.sans: the CSR asks for {', '.join(_label(s) for s in outside)}, which no "
            f"template gives {req.requester.describe()}; it may ask only for: {may}"
        )
    return None


def usages(policy: Policy, req: Request) -> str | None:
    outside = [u for u in req.csr.usages if u not in policy.usages]
    if outside:
        return (
            f"spec.usages: the CSR asks for {', '.join(repr(u) for u in outside)}; the policy "
            f"allows {', '.join(policy.usages)}"
        )
    return None


def key_algorithm(policy: Policy, req: Request) -> str | None:
    spec = key_spec_of(req.parsed.public_key())
    if str(spec) not in policy.key_algorithms:
        allowed = ", ".join(policy.key_algorithms)
        return f"spec.keyAlgorithms: the CSR's key is {spec}; the policy allows {allowed}"
    return None


def lifetime(policy: Policy, req: Request) -> str | None:
    cap = policy.max_lifetime_days
    if req.days <= cap:
        return None
    limit = f"set spec.expirationSeconds to at most {cap * SECONDS_PER_DAY}"
    if req.csr.expiration_seconds is None:
        return (
            f"spec.maxLifetimeDays: the CSR sets no spec.expirationSeconds, so it would get the "
            f"signer's default of {req.default_days} days; the policy allows at most {cap}: {limit}"
        )
    return (
        f"spec.maxLifetimeDays: the CSR asks for {req.days} days (spec.expirationSeconds "
        f"{req.csr.expiration_seconds}); the policy allows at most {cap}: {limit}"
    )


CHECKS: tuple[Check, ...] = (
    policy_invalid,
    pod_binding,
    subject,
    sans,
    usages,
    key_algorithm,
    lifetime,
)


def violation(policy: Policy, req: Request) -> str | None:
    """The first thing ``policy`` does not allow about ``req``, or None."""
    for check in CHECKS:
        problem = check(policy, req)
        if problem:
            return problem
    return None


# --- the decision ------------------------------------------------------------------------------


def _read(inp: ApprovalInput) -> Request | Decision:
    """The request's facts, or a denial when the CSR itself is unusable."""
    csr = inp.csr
    try:
        parsed = load_csr(csr.request_pem, "spec.request")
    except InvalidRequest as error:
        return Decision(DENY, INVALID_CSR, error.message)
    problem = key_problem(parsed)
    if problem:
        return Decision(DENY, INVALID_CSR, f"spec.request: {problem}")
    days = lifetime_days(csr.expiration_seconds, inp.default_lifetime_days)
    try:
        # What the signer would send must be something the CA issues as asked.
        capped = min(days, inp.ca_max_lifetime_days)  # the signer caps at the CA's maximum
        validate(ca_request(parsed, csr.usages, capped), inp.ca_max_lifetime_days)
    except InvalidRequest as error:
        field = error.field if error.field.startswith("spec.") else "spec.request"
        detail = error.message if error.field.startswith("spec.") else f"{field}: {error.message}"
        return Decision(DENY, INVALID_CSR, detail)
    return Request(
        csr=csr,
        parsed=parsed,
        requester=csr.requester,
        subject=subject_fields(parsed),
        sans=requested_sans(parsed),
        days=days,
        default_days=inp.default_lifetime_days,
    )


def evaluate(inp: ApprovalInput) -> Decision:
    csr = inp.csr
    who = csr.requester
    if not who.is_service_account:
        return Decision(
            DENY,
            NOT_A_SERVICE_ACCOUNT,
            f"the requester is {who.describe()}, not a ServiceAccount: ClientCertificatePolicies "
            "grant certificates to ServiceAccounts only (create the CSR with the workload's "
            "ServiceAccount token, as cert-sidecar does)",
        )
    read = _read(inp)
    if isinstance(read, Decision):
        return read
    candidates = policies_for(csr.signer_name, inp.policies)
    matching = [p for p in candidates if not p.problem and requester_matches(p, inp)]
    if not matching:
        invalid = [f"{p.describe()} is invalid: {p.problem}" for p in candidates if p.problem]
        note = f" ({'; '.join(invalid)})" if invalid else ""
        return Decision(
            DENY,
            NO_MATCHING_POLICY,
            f"no ClientCertificatePolicy for signer {csr.signer_name} names {who.describe()}: "
            f"add it to a policy's spec.requesters{note}",
        )
    problems = []
    for policy in matching:
        problem = violation(policy, read)
        if problem is None:
            summary = _summary(read)
            if policy.approval == MANUAL:
                return Decision(
                    PENDING,
                    MANUAL_APPROVAL_REQUIRED,
                    f"{policy.describe()} allows {summary} for {who.describe()} but sets "
                    f"spec.approval: {MANUAL}: someone allowed to approve for signer "
                    f"{csr.signer_name} must run: kubectl certificate approve {csr.name}",
                    policy.name,
                )
            return Decision(
                APPROVE,
                APPROVED_BY_POLICY,
                f"{policy.describe()} allows {summary} for {who.describe()}",
                policy.name,
            )
        problems.append(f"{policy.describe()}: {problem}")
    return Decision(DENY, POLICY_VIOLATION, "; ".join(problems), matching[0].name)


def _summary(req: Request) -> str:
    names = ", ".join(_label(s) for s in req.sans)
    with_sans = f" with {names}" if names else ""
    return f"CN={req.subject.get('common_name')}{with_sans} for {req.days} day(s)"
