"""Subject alternative names: the request forms the real CA accepts and how it filters them.

Facts from upstream `utils/certs/types.py` (normalize_sans_input, filter_and_validate_sans_typed)
and `utils/certs/crypto.py` (convert_sans_to_x509, parse_dn_to_x509_name):

- `sans` may be a string or a list of strings (DNS names), a list of {"type", "value"} maps
  (type defaults to DNS_NAME, upper-cased; entries without a type or value are skipped), or a
  map {TYPE: value or [values]}. A list mixing shapes, or any other JSON value, gives nothing.
- No `sans` (or an empty list) means the common name, when it is a domain, as the only DNS SAN.
- Invalid entries are dropped with a log line. The filter runs TWICE (once when the request is
  read, once when the certificate is built), so when every given entry is dropped the second
  pass sees an empty list and falls back to the common name, exactly as if no `sans` were given.
- Conversion to X.509 skips, with a log line, what cryptography refuses (a non-ASCII name, a
  DN attribute it rejects). A DN keeps its attributes in the order written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from localca import validation

SAN_TYPES = ("DNS_NAME", "IP_ADDRESS", "EMAIL_ADDRESS", "URL", "DN")

_VALIDATORS: dict[str, Callable[[Any], bool]] = {
    "DNS_NAME": validation.is_dns_name,
    "IP_ADDRESS": validation.is_ip_address,
    "EMAIL_ADDRESS": validation.is_email_address,
    "URL": validation.is_url,
    "DN": validation.is_dn,
}

# DN keys upstream maps (case-insensitive); other keys are left out of the name.
DN_ATTRIBUTES = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}

Log = Callable[[str], None]


@dataclass(frozen=True)
class San:
    type: str
    value: Any  # a JSON value: upstream keeps e.g. an integer IP address as given


def _from_common_name(common_name: Any) -> list[San]:
    return [San("DNS_NAME", common_name)] if validation.is_domain(common_name) else []


def normalize(common_name: Any, sans: Any) -> list[San]:
    """Every accepted input form as typed entries, before validation.

    Raises AttributeError for a typed entry whose type is not a string, as upstream does.
    """
    if sans is None:
        return _from_common_name(common_name)
    if isinstance(sans, str):
        return [San("DNS_NAME", sans)]
    if isinstance(sans, list):
        if not sans:
            return _from_common_name(common_name)
        if all(isinstance(item, str) for item in sans):
            return [San("DNS_NAME", item) for item in sans]
        if all(isinstance(item, dict) for item in sans):
            entries = []
            for item in sans:
                kind = item.get("type", "DNS_NAME").upper()
                value = item.get("value")
                if kind and value:
                    entries.append(San(kind, value))
            return entries
        return []
    if isinstance(sans, dict):
        entries = []
        for kind, values in sans.items():
            listed = [values] if isinstance(values, str) else values
            if isinstance(listed, list):
                entries.extend(San(kind.upper(), value) for value in listed)
        return entries
    return []


def filter_valid(common_name: Any, sans: Any, log: Log) -> list[San]:
    """One upstream filtering pass. Raises where a validator does (see localca.validation)."""
    kept: list[San] = []
    for san in normalize(common_name, sans):
        validator = _VALIDATORS.get(san.type)
        if validator is None:
            log(f"Invalid SAN type {san.type} excluded")
        elif validator(san.value):
            kept.append(san)
        else:
            log(f"Invalid {san.type} value '{san.value}' excluded from SANs")
    return kept


def filter_again(common_name: Any, first: list[San], log: Log) -> list[San]:
    """Upstream's second pass, over the first pass's result: [] becomes the common name."""
    return filter_valid(common_name, [{"type": s.type, "value": s.value} for s in first], log)


def select(common_name: Any, sans: Any, log: Log) -> list[San]:
    """The SANs the certificate will carry: the filter run twice, as upstream runs it."""
    return filter_again(common_name, filter_valid(common_name, sans, log), log)


def parse_dn(text: str) -> x509.Name:
    """ "CN=app,O=Example" as a Name in the order written; no escaping (a comma always splits)."""
    attributes = []
    for part in text.split(","):
        part = part.strip()
        if "=" not in part:
            continue
        key, value = part.split("=", 1)
        oid = DN_ATTRIBUTES.get(key.strip().upper())
        if oid is not None:
            attributes.append(x509.NameAttribute(oid, value.strip()))
    return x509.Name(attributes)


def _general_name(san: San) -> x509.GeneralName:
    if san.type == "DNS_NAME":
        return x509.DNSName(san.value)
    if san.type == "IP_ADDRESS":
        return x509.IPAddress(ipaddress.ip_address(san.value))
    if san.type == "EMAIL_ADDRESS":
        return x509.RFC822Name(san.value)
    if san.type == "URL":
        return x509.UniformResourceIdentifier(san.value)
    return x509.DirectoryName(parse_dn(san.value))


def to_general_names(sans: list[San], log: Log) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(_general_name(san))
        except Exception as exc:  # noqa: BLE001 - upstream skips any entry that fails to convert
            log(f"Error converting SAN {san.type}:{san.value} to x509 format: {exc}")
    return names
