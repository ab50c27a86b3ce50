"""Subject alternative names: the request forms the real CA accepts and how it filters them.

Facts copied from the serverless CA: a string or a list of strings are DNS names; a list of
{"type", "value"} or a map {TYPE: value-or-list}; invalid entries are dropped with a log line;
with no SANs the common name is the only DNS SAN when it is a valid domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509

SAN_TYPES = ("DNS_NAME", "IP_ADDRESS", "EMAIL_ADDRESS", "URL", "DN")

_LABELS = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9][a-z0-9-_]{0,61}[a-z]$", re.IGNORECASE
)
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
# The real CA's URL validator accepts only these schemes (so spiffe:// URIs are dropped).
_URL_SCHEMES = frozenset(
    {"ftp", "ftps", "git", "http", "https", "irc", "rtmp", "rtmps", "rtsp", "sftp", "ssh", "telnet"}
)
_DN_PREFIXES = ("CN=", "O=", "OU=", "C=", "ST=", "L=", "E=", "DC=")


@dataclass(frozen=True)
class San:
    type: str
    value: str


def is_domain(value: object) -> bool:
    """A fully qualified domain name whose top-level label is alphabetic (so not `com`)."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    try:
        ascii_value = value.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(_LABELS.match(ascii_value))


def is_dns_name(value: str) -> bool:
    if value.startswith("*."):
        return is_domain(value[2:])
    return is_domain(value)


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_email_address(value: str) -> bool:
    local, sep, domain = value.rpartition("@")
    return bool(sep and local and _EMAIL_LOCAL.match(local) and is_domain(domain))


def is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme.lower() in _URL_SCHEMES and (is_domain(host) or is_ip_address(host))


def is_dn(value: str) -> bool:
    return bool(value) and "=" in value and any(p in value.upper() for p in _DN_PREFIXES)


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "DNS_NAME": is_dns_name,
    "IP_ADDRESS": is_ip_address,
    "EMAIL_ADDRESS": is_email_address,
    "URL": is_url,
    "DN": is_dn,
}


def _default(common_name: str) -> list[San]:
    return [San("DNS_NAME", common_name)] if is_domain(common_name) else []


def normalize(common_name: str, sans: object) -> list[San]:
    """Every accepted input form as a list of typed entries, before validation."""
    if sans is None:
        return _default(common_name)
    if isinstance(sans, str):
        return [San("DNS_NAME", sans)]
    if isinstance(sans, list):
        if not sans:
            return _default(common_name)
        if all(isinstance(item, str) for item in sans):
            return [San("DNS_NAME", item) for item in sans]
        if all(isinstance(item, dict) for item in sans):
            return [
                San(str(item.get("type", "DNS_NAME")).upper(), item["value"])
                for item in sans
                if item.get("type", "DNS_NAME") and item.get("value")
            ]
        return []
    if isinstance(sans, dict):
        out: list[San] = []
        for san_type, values in sans.items():
            listed = [values] if isinstance(values, str) else values
            if isinstance(listed, list):
                out.extend(San(str(san_type).upper(), value) for value in listed)
        return out
    return []


def select(common_name: str, sans: object, log: Callable[[str], None]) -> list[San]:
    """The SANs the certificate will carry; each dropped entry is reported through `log`."""
    kept: list[San] = []
    for san in normalize(common_name, sans):
        validator = _VALIDATORS.get(san.type)
        if validator is None:
            log(f"Invalid SAN type {san.type} excluded")
        elif not isinstance(san.value, str) or not validator(san.value):
            log(f"Invalid {san.type} value '{san.value}' excluded from SANs")
        else:
            kept.append(san)
    return kept


def to_general_names(sans: list[San], log: Callable[[str], None]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        if san.type == "DNS_NAME":
            names.append(x509.DNSName(san.value.encode("idna").decode("ascii")))
        elif san.type == "IP_ADDRESS":
            names.append(x509.IPAddress(ipaddress.ip_address(san.value)))
        elif san.type == "EMAIL_ADDRESS":
            names.append(x509.RFC822Name(san.value))
        elif san.type == "URL":
            names.append(x509.UniformResourceIdentifier(san.value))
        else:
            try:
                names.append(x509.DirectoryName(x509.Name.from_rfc4514_string(san.value)))
            except ValueError:
                log(f"Invalid DN value '{san.value}' excluded from SANs")
    return names
