"""The shape of ``tls.json`` entries and ``revoked.json`` entries: pure checks on parsed JSON.

The CA ignores unknown keys, drops invalid SANs, caps or replaces out-of-range values, all
silently; every such case is a finding here. Value rules are cacore's (``cacore.request``): each
field is checked on its own through ``validate`` so that one run reports every problem.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cacore.errors import InvalidRequest
from cacore.request import (
    DEFAULT_MAX_LIFETIME_DAYS,
    SUBJECT_FIELDS,
    CertificateRequest,
    San,
    Subject,
    parse_sans,
    validate,
)
from gitops import problems as p
from gitops.jsontext import Path

BOOL_KEYS = ("force_issue", "cert_bundle", "notify_expiry", "notify_issued")
ENTRY_KEYS = (
    *SUBJECT_FIELDS,
    "lifetime",
    "purposes",
    "extended_key_usages",
    "sans",
    "csr_file",
    "extensions",
    *BOOL_KEYS,
)
# Event keys that mean something to the Lambda but nothing sensible in a tls.json entry.
_MISPLACED = {
    "base64_csr_data": "tls.json entries name a CSR file: put the PEM in csrs/ and use csr_file",
    "ca_chain_only": "makes the CA return its own certificates instead of issuing; remove it",
}
# Names people reach for; difflib alone would not find most of them.
_ALIASES = {
    "cn": "common_name",
    "commonname": "common_name",
    "name": "common_name",
    "o": "organization",
    "org": "organization",
    "organisation": "organization",
    "ou": "organizational_unit",
    "organisational_unit": "organizational_unit",
    "l": "locality",
    "city": "locality",
    "st": "state",
    "province": "state",
    "c": "country",
    "email": "email_address",
    "san": "sans",
    "subject_alt_names": "sans",
    "subject_alternative_names": "sans",
    "dns_names": "sans",
    "days": "lifetime",
    "validity": "lifetime",
    "lifetime_days": "lifetime",
    "purpose": "purposes",
    "key_usages": "extended_key_usages",
    "eku": "extended_key_usages",
    "extended_key_usage": "extended_key_usages",
    "csr": "csr_file",
    "csr_filename": "csr_file",
    "force": "force_issue",
}
REVOKED_KEYS = ("common_name", "serial_number")
EXTENSION_KEYS = ("oid", "value_b64", "critical")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_CSR_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Finding:
    """A problem at a JSON path; the caller knows the file and turns paths into lines."""

    path: Path
    code: str
    message: str
    severity: str = p.ERROR


def did_you_mean(key: str, known: tuple[str, ...]) -> str:
    normalised = key.strip().lower().replace("-", "_").replace(" ", "_")
    if normalised in known:
        return f"; did you mean {normalised!r}?"
    if normalised in _ALIASES and _ALIASES[normalised] in known:
        return f"; did you mean {_ALIASES[normalised]!r}?"
    close = difflib.get_close_matches(normalised, known, n=1, cutoff=0.7)
    if not close and len(normalised) >= 4:  # a cut-short key: "serial" for "serial_number"
        close = [k for k in known if k.startswith(normalised)][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key(path: Path, key: str, known: tuple[str, ...], what: str) -> Finding:
    return Finding(
        (*path, key),
        p.UNKNOWN_KEY,
        f"{key!r} is not a {what} key and would be ignored silently{did_you_mean(key, known)}",
    )


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}[
        type(value)
    ]


def _invalid(path: Path, error: InvalidRequest, code: str = p.INVALID_VALUE) -> Finding:
    # cacore's message starts with its own field name; the path already says where.
    return Finding(path, code, error.message.split(": ", 1)[-1])


def _check(
    path: Path,
    request: CertificateRequest,
    code: str = p.INVALID_VALUE,
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
) -> list[Finding]:
    try:
        validate(request, max_lifetime_days)
    except InvalidRequest as error:
        return [_invalid(path, error, code)]
    return []


_PROBE = Subject("probe.example.com")  # a valid subject, so a probe fails only on its own field


def check_entry(
    entry: object, index: int, max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS
) -> list[Finding]:
    """Everything wrong with one ``tls.json`` entry that can be seen without its CSR;
    ``max_lifetime_days`` is the CA's MAX_CERT_LIFETIME."""
    here: Path = (index,)
    if not isinstance(entry, dict):
        return [
            Finding(
                here, p.WRONG_TYPE, f"each entry must be an object {{...}}, not {_type_name(entry)}"
            )
        ]
    findings: list[Finding] = []
    for key in entry:
        if key in _MISPLACED:
            findings.append(Finding((index, key), p.INVALID_VALUE, _MISPLACED[key]))
        elif key not in ENTRY_KEYS:
            findings.append(unknown_key(here, key, ENTRY_KEYS, "tls.json"))

    subject: dict[str, str] = {}
    for name in SUBJECT_FIELDS:
        if name not in entry:
            continue
        value = entry[name]
        if not isinstance(value, str) or not value.strip():
            findings.append(
                Finding(
                    (index, name),
                    p.WRONG_TYPE,
                    f"must be a non-empty string, not {_type_name(value)}",
                )
            )
            continue
        subject[name] = value
    if "common_name" not in entry:
        findings.append(
            Finding(
                here,
                p.MISSING_KEY,
                "common_name is missing: the CA crashes without it; "
                'add "common_name": "<the name the certificate is for>"',
            )
        )
    for name, value in subject.items():
        probe = Subject(**{**{"common_name": _PROBE.common_name}, name: value})
        findings += _check((index, name), CertificateRequest(probe))

    if "lifetime" in entry:
        lifetime = entry["lifetime"]
        if isinstance(lifetime, bool) or not isinstance(lifetime, int):
            findings.append(
                Finding(
                    (index, "lifetime"),
                    p.WRONG_TYPE,
                    f"must be a whole number of days without quotes, e.g. 365, not {lifetime!r}",
                )
            )
        else:
            findings += _check(
                (index, "lifetime"),
                CertificateRequest(_PROBE, lifetime_days=lifetime),
                max_lifetime_days=max_lifetime_days,
            )

    for name in ("purposes", "extended_key_usages"):
        if name in entry:
            findings += _check_list(entry[name], (index, name))
    if isinstance(entry.get("purposes"), list):
        if not entry["purposes"]:
            findings.append(
                Finding(
                    (index, "purposes"),
                    p.INVALID_VALUE,
                    'is empty, which the CA silently turns into ["client_auth"]; name them',
                )
            )
        for i, purpose in enumerate(entry["purposes"]):
            if isinstance(purpose, str):
                findings += _check(
                    (index, "purposes", i), CertificateRequest(_PROBE, purposes=(purpose,))
                )
    if isinstance(entry.get("extended_key_usages"), list):
        for i, usage in enumerate(entry["extended_key_usages"]):
            if isinstance(usage, str):
                request = CertificateRequest(_PROBE, extended_key_usages=(usage,))
                findings += _check((index, "extended_key_usages", i), request)

    if "sans" in entry:
        findings += _check_sans(entry["sans"], (index, "sans"))

    if "csr_file" not in entry:
        findings.append(
            Finding(
                here,
                p.MISSING_KEY,
                'csr_file is missing: add "csr_file": "<name>.csr" naming a file in csrs/',
            )
        )
    else:
        csr_file = entry["csr_file"]
        if not isinstance(csr_file, str):
            findings.append(
                Finding(
                    (index, "csr_file"),
                    p.WRONG_TYPE,
                    f"must be a string, not {_type_name(csr_file)}",
                )
            )
        elif not _CSR_FILE.match(csr_file):
            findings.append(
                Finding(
                    (index, "csr_file"),
                    p.INVALID_VALUE,
                    f"{csr_file!r} must be a plain file name inside csrs/ such as "
                    "partner-example-com.csr (no folders)",
                )
            )

    for name in BOOL_KEYS:
        if name in entry and not isinstance(entry[name], bool):
            findings.append(
                Finding(
                    (index, name),
                    p.WRONG_TYPE,
                    f"must be true or false without quotes, not {entry[name]!r}",
                )
            )
    if "extensions" in entry:
        findings += _check_extensions(entry["extensions"], (index, "extensions"))
    return findings


def _check_list(value: object, path: Path) -> list[Finding]:
    if not isinstance(value, list):
        return [Finding(path, p.WRONG_TYPE, f"must be a list of strings, not {_type_name(value)}")]
    return [
        Finding((*path, i), p.WRONG_TYPE, f"must be a string, not {_type_name(item)}")
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]


def entry_sans(value: object, path: Path = ("sans",)) -> tuple[San, ...]:
    """SANs exactly as the CA reads them: a string or list of strings are DNS names (one string is
    one name: no comma splitting, no ``IP:`` prefixes); objects and maps name their type."""
    if isinstance(value, str):
        return (San("DNS_NAME", value),)
    if isinstance(value, list):
        out: list[San] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(San("DNS_NAME", item))
            else:
                out.extend(parse_sans([item], f"sans[{i}]"))
        return tuple(out)
    return parse_sans(value, "sans")


def _check_sans(value: object, path: Path) -> list[Finding]:
    if isinstance(value, str) and "," in value:
        return [
            Finding(
                path,
                p.SAN_DROPPED,
                f"{value!r} is one DNS name to the CA, which drops it; "
                'write a list: ["a.example.com", "b.example.com"]',
            )
        ]
    if isinstance(value, list):
        findings: list[Finding] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping) and not isinstance(item.get("value"), str):
                findings.append(Finding((*path, i), p.WRONG_TYPE, 'needs a string "value"'))
                continue
            try:
                (san,) = entry_sans([item])
            except InvalidRequest:
                findings.append(
                    Finding(
                        (*path, i),
                        p.WRONG_TYPE,
                        'must be a DNS name or an object {"type": ..., "value": ...}',
                    )
                )
                continue
            findings += _check_san(san, (*path, i))
        return findings
    try:
        sans = entry_sans(value)
    except InvalidRequest as error:
        return [Finding(path, p.WRONG_TYPE, error.message.split(": ", 1)[-1])]
    findings = []
    for san in sans:
        where = (*path, san.type) if isinstance(value, Mapping) else path
        findings += _check_san(san, where)
    return findings


def _check_san(san: San, path: Path) -> list[Finding]:
    try:
        validate(CertificateRequest(_PROBE, sans=(san,)))
    except InvalidRequest as error:
        message = error.message.split(": ", 1)[-1]
        if error.field.endswith(".type"):
            return [Finding(path, p.INVALID_VALUE, f"SAN type {message}")]
        return [Finding(path, p.SAN_DROPPED, f"the CA would drop this SAN silently: {message}")]
    return []


def _check_extensions(value: object, path: Path) -> list[Finding]:
    if not isinstance(value, list):
        return [Finding(path, p.WRONG_TYPE, f"must be a list of objects, not {_type_name(value)}")]
    findings: list[Finding] = []
    for i, ext in enumerate(value):
        where = (*path, i)
        if not isinstance(ext, dict):
            findings.append(
                Finding(
                    where,
                    p.WRONG_TYPE,
                    'must be an object {"oid": ..., "value_b64": ..., "critical": false}',
                )
            )
            continue
        findings += [
            unknown_key(where, key, EXTENSION_KEYS, "extension")
            for key in ext
            if key not in EXTENSION_KEYS
        ]
        oid = ext.get("oid")
        if not isinstance(oid, str) or not _OID.match(oid):
            findings.append(
                Finding(
                    (*where, "oid"),
                    p.INVALID_VALUE,
                    "must be a dotted OID such as 1.3.6.1.4.1.99999.1",
                )
            )
        encoded = ext.get("value_b64")
        try:
            if not isinstance(encoded, str):
                raise ValueError
            base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            findings.append(
                Finding(
                    (*where, "value_b64"),
                    p.INVALID_VALUE,
                    "must be the base64 of the DER-encoded extension value",
                )
            )
        if "critical" in ext and not isinstance(ext["critical"], bool):
            findings.append(Finding((*where, "critical"), p.WRONG_TYPE, "must be true or false"))
    return findings


def _whole(value: object) -> int:
    """A checked entry's lifetime (``check_entry`` refused anything but a whole number)."""
    assert isinstance(value, int)
    return value


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def to_request(entry: Mapping[str, object]) -> CertificateRequest:
    """The request a checked entry stands for; keys cacore does not model travel in ``extra``."""
    subject = Subject(**{name: str(entry[name]) for name in SUBJECT_FIELDS if name in entry})
    extra = {
        key: entry[key] for key in ("extensions", "notify_expiry", "notify_issued") if key in entry
    }
    # The CA's own pipeline notifies before a GitOps certificate expires unless the entry says
    # otherwise; issuing here leaves the CA's records the same way.
    extra.setdefault("notify_expiry", True)
    return CertificateRequest(
        subject=subject,
        sans=entry_sans(entry["sans"]) if "sans" in entry else (),
        lifetime_days=_whole(entry.get("lifetime", 30)),
        purposes=_strings(entry.get("purposes")) or ("client_auth",),
        extended_key_usages=_strings(entry.get("extended_key_usages")),
        force_issue=bool(entry.get("force_issue", False)),
        cert_bundle=bool(entry.get("cert_bundle", False)),
        extra=extra,
    )


def check_revoked_entry(entry: object, index: int) -> list[Finding]:
    here: Path = (index,)
    if not isinstance(entry, dict):
        return [
            Finding(
                here,
                p.WRONG_TYPE,
                'each entry must be {"common_name": ..., "serial_number": "<decimal>"}',
            )
        ]
    findings = [
        unknown_key(here, key, REVOKED_KEYS, "revoked.json")
        for key in entry
        if key not in REVOKED_KEYS
    ]
    name = entry.get("common_name")
    if "common_name" not in entry:
        findings.append(Finding(here, p.MISSING_KEY, "common_name is missing"))
    elif not isinstance(name, str) or not name.strip():
        findings.append(Finding((index, "common_name"), p.WRONG_TYPE, "must be a non-empty string"))
    serial = entry.get("serial_number")
    if "serial_number" not in entry:
        findings.append(
            Finding(
                here, p.MISSING_KEY, 'serial_number is missing: add "serial_number": "<decimal>"'
            )
        )
    elif isinstance(serial, int) and not isinstance(serial, bool):
        findings.append(
            Finding(
                (index, "serial_number"),
                p.WRONG_TYPE,
                f'must be a string: JSON numbers lose digits beyond 2^53; write "{serial}"',
            )
        )
    elif not isinstance(serial, str) or not serial.isdigit():
        findings.append(
            Finding(
                (index, "serial_number"),
                p.INVALID_VALUE,
                f"{serial!r} must be the serial in decimal digits, as in the CA's DynamoDB "
                "table (certs-gitops revoke converts hex for you)",
            )
        )
    return findings
