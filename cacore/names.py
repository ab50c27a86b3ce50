"""Which names the CA keeps: it drops invalid SANs silently, so we refuse them up front."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def is_domain_name(name: str) -> bool:
    """A domain the CA accepts: two or more valid labels, the last one alphabetic."""
    if not name or len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    return labels[-1].isalpha()


def is_dns_san(name: str) -> bool:
    """A DNS SAN the CA keeps: a domain name, or ``*.x`` where ``x`` is itself a domain name."""
    if name.startswith("*."):
        return is_domain_name(name[2:])
    return is_domain_name(name)


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_email_address(value: str) -> bool:
    if not _EMAIL.match(value):
        return False
    return is_domain_name(value.rsplit("@", 1)[1])


# The CA's URL validator knows only these schemes: a spiffe:// URI SAN is dropped silently.
URL_SCHEMES = (
    "ftp",
    "ftps",
    "git",
    "http",
    "https",
    "irc",
    "rtmp",
    "rtmps",
    "rtsp",
    "sftp",
    "ssh",
    "telnet",
)
_DN_ATTRIBUTES = ("CN", "O", "OU", "C", "ST", "L", "E", "DC")


def is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme.lower() in URL_SCHEMES and (is_domain_name(host) or is_ip_address(host))


def is_distinguished_name(value: str) -> bool:
    parts = [part.strip() for part in value.split(",")]
    return bool(value.strip()) and all(
        "=" in part and part.split("=", 1)[0].strip().upper() in _DN_ATTRIBUTES for part in parts
    )


SAN_CHECKS = {
    "DNS_NAME": (is_dns_san, "a domain name such as app.example.com (*.x needs x to be a domain)"),
    "IP_ADDRESS": (is_ip_address, "an IPv4 or IPv6 address"),
    "EMAIL_ADDRESS": (is_email_address, "an address such as team@example.com"),
    "URL": (
        is_url,
        f"a URL such as https://app.example.com/id (schemes: {', '.join(URL_SCHEMES)})",
    ),
    "DN": (is_distinguished_name, "a distinguished name such as CN=app,O=Example"),
}
