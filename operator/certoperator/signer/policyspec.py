"""A ClientCertificatePolicy as data. The CRD's schema and CEL rules refuse bad policies at
``kubectl apply``; this module reads them again (objects may predate a CRD change) and, instead
of raising, marks a policy it cannot use with the reason, which then appears in every denial that
policy would have decided.

Requesters match when they are listed in ``serviceAccounts`` (a missing name: every
ServiceAccount of the namespace), or when every selector given (``namespaceSelector`` over the
namespace's labels, ``serviceAccountSelector`` over the ServiceAccount's) matches. A policy that
names no requester matches nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cacore.errors import InvalidRequest
from cacore.keys import KEY_ALGORITHMS, parse_key_spec
from cacore.kubecsr import SUPPORTED_USAGES
from cacore.request import San, parse_sans
from certoperator.signer import templates
from certoperator.signer.names import SIGNER_DOMAIN
from certoperator.spec import SUBJECT_KEYS

DEFAULT_USAGES = ("digital signature", "key encipherment", "client auth")
DEFAULT_MAX_LIFETIME_DAYS = 30
AUTOMATIC, MANUAL = "Automatic", "Manual"

# The policy's subject keys -> the CA event's (and cacore Subject's) field names.
SUBJECT_FIELDS = {"commonName": "common_name", **SUBJECT_KEYS}


@dataclass(frozen=True)
class Expression:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclass(frozen=True)
class Selector:
    """A Kubernetes label selector; an empty one matches everything, as in the API."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Expression, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            e.matches(labels) for e in self.match_expressions
        )


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str | None = None  # None: every ServiceAccount of the namespace


@dataclass(frozen=True)
class Requesters:
    service_accounts: tuple[ServiceAccountRef, ...] = ()
    namespace_selector: Selector | None = None
    service_account_selector: Selector | None = None
    require_pod: bool = False

    @property
    def uses_selectors(self) -> bool:
        return self.namespace_selector is not None or self.service_account_selector is not None


@dataclass(frozen=True)
class Policy:
    name: str
    signer_names: tuple[str, ...] = ()
    requesters: Requesters = Requesters()
    subject: Mapping[str, str] = field(default_factory=dict)  # event field -> template
    sans: tuple[San, ...] = ()  # values are templates
    usages: tuple[str, ...] = DEFAULT_USAGES
    key_algorithms: tuple[str, ...] = KEY_ALGORITHMS
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS
    approval: str = AUTOMATIC
    problem: str | None = None  # why the policy cannot be used (a field and the fix)

    def describe(self) -> str:
        return f'ClientCertificatePolicy "{self.name}"'


def _strings(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(path, "must be a list of non-empty strings")
    return tuple(value)


def _selector(value: object, path: str) -> Selector | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            path, "must be a label selector {matchLabels: ..., matchExpressions: ...}"
        )
    labels = value.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidRequest(f"{path}.matchLabels", "must map label names to strings")
    expressions = []
    for index, raw in enumerate(value.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("key"), str):
            raise InvalidRequest(where, "must have a key and an operator")
        operator = raw.get("operator")
        values = _strings(raw.get("values"), f"{where}.values")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise InvalidRequest(f"{where}.operator", "must be In, NotIn, Exists or DoesNotExist")
        if (operator in ("In", "NotIn")) != bool(values):
            raise InvalidRequest(f"{where}.values", "are needed by In and NotIn, and only by them")
        expressions.append(Expression(raw["key"], operator, values))
    return Selector(dict(labels), tuple(expressions))


def _requesters(value: object) -> Requesters:
    if not isinstance(value, Mapping):
        raise InvalidRequest("spec.requesters", "is required: name the ServiceAccounts it allows")
    accounts = []
    for index, raw in enumerate(value.get("serviceAccounts") or []):
        where = f"spec.requesters.serviceAccounts[{index}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("namespace"), str):
            raise InvalidRequest(where, "must be {namespace: NAME, name: NAME} (name optional)")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest(f"{where}.name", "must be a ServiceAccount name")
        accounts.append(ServiceAccountRef(raw["namespace"], name or None))
    return Requesters(
        service_accounts=tuple(accounts),
        namespace_selector=_selector(
            value.get("namespaceSelector"), "spec.requesters.namespaceSelector"
        ),
        service_account_selector=_selector(
            value.get("serviceAccountSelector"), "spec.requesters.serviceAccountSelector"
        ),
        require_pod=bool(value.get("requirePod", False)),
    )


def _template(text: object, path: str) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidRequest(path, "must be a non-empty template")
    try:
        templates.check(text)
    except templates.TemplateError as error:
        raise InvalidRequest(path, str(error)) from None
    return text


def _parse(name: str, spec: Mapping[str, object]) -> Policy:
    signers = _strings(spec.get("signerNames"), "spec.signerNames")
    if not signers:
        raise InvalidRequest(
            "spec.signerNames", f"must name at least one {SIGNER_DOMAIN}/<LambdaCA>"
        )
    for index, signer in enumerate(signers):
        if not signer.startswith(f"{SIGNER_DOMAIN}/"):
            raise InvalidRequest(
                f"spec.signerNames[{index}]", f"{signer!r} is not a {SIGNER_DOMAIN}/<LambdaCA> name"
            )
    raw_subject = spec.get("subject")
    if not isinstance(raw_subject, Mapping) or "commonName" not in raw_subject:
        raise InvalidRequest("spec.subject.commonName", "is required: the template of the name")
    subject = {}
    for key, text in raw_subject.items():
        if key not in SUBJECT_FIELDS:
            raise InvalidRequest(
                f"spec.subject.{key}", f"is not one of {', '.join(SUBJECT_FIELDS)}"
            )
        subject[SUBJECT_FIELDS[key]] = _template(text, f"spec.subject.{key}")
    san_texts = _strings(spec.get("sans"), "spec.sans")
    sans = parse_sans(list(san_texts), "spec.sans")
    for index, san in enumerate(sans):
        _template(san.value, f"spec.sans[{index}]")
    usages = _strings(spec.get("usages"), "spec.usages") or DEFAULT_USAGES
    for index, usage in enumerate(usages):
        if usage not in SUPPORTED_USAGES:
            raise InvalidRequest(
                f"spec.usages[{index}]",
                f"{usage!r} cannot be issued by the CA; use {', '.join(SUPPORTED_USAGES)}",
            )
    keys = _strings(spec.get("keyAlgorithms"), "spec.keyAlgorithms") or KEY_ALGORITHMS
    keys = tuple(str(parse_key_spec(k, "spec.keyAlgorithms")) for k in keys)
    lifetime = spec.get("maxLifetimeDays", DEFAULT_MAX_LIFETIME_DAYS)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
        raise InvalidRequest("spec.maxLifetimeDays", "must be a whole number of days, at least 1")
    approval = spec.get("approval", AUTOMATIC)
    if approval not in (AUTOMATIC, MANUAL):
        raise InvalidRequest("spec.approval", f"must be {AUTOMATIC} or {MANUAL}")
    return Policy(
        name=name,
        signer_names=signers,
        requesters=_requesters(spec.get("requesters")),
        subject=subject,
        sans=sans,
        usages=usages,
        key_algorithms=keys,
        max_lifetime_days=lifetime,
        approval=str(approval),
    )


def parse_policy(name: str, spec: Mapping[str, object]) -> Policy:
    """The policy, or one that allows nothing and says why (``problem``)."""
    try:
        return _parse(name, spec)
    except InvalidRequest as error:
        signers = spec.get("signerNames")
        listed = (
            tuple(s for s in signers if isinstance(s, str)) if isinstance(signers, list) else ()
        )
        return Policy(name=name, signer_names=listed, problem=error.message)


def policies_for(signer: str, policies: Sequence[Policy]) -> tuple[Policy, ...]:
    """The policies that speak for ``signer``, in name order (so decisions are repeatable)."""
    return tuple(sorted((p for p in policies if signer in p.signer_names), key=lambda p: p.name))
