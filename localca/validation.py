"""The syntax rules the real TLS Lambda applies to SAN values, restated for the local CA.

Upstream (`utils/certs/types.py`) checks DNS names, emails and URLs with the `validators`
library (pinned 0.35.0 in `lambda_code/tls_cert/requirements.txt`), IP addresses with
`ipaddress`, and DN strings with a substring test. The local CA must not depend on that library,
so its rules are written out here; each function answers the same as upstream for every JSON
value, including where upstream raises (a crash of the real function): those places are noted.
Parameters are `Any` on purpose: a hostile event can put any JSON value here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# A domain is labels of letters, digits and inner hyphens, then a top-level label that may also
# hold `_` and must end in a letter (so `com`, `10.0.0.1` and `localhost` are not domains);
# checked on the IDNA (2003) ASCII form, case-insensitively; no whitespace, no `__` anywhere.
_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9][-a-z0-9_]{0,61}[a-z]", re.IGNORECASE
)
_BLANK_OR_DOUBLE_UNDERSCORE = re.compile(r"\s|__+")

# Email local part: one Latin-1/Latin Extended letter, a dot-atom, or a quoted string. `$`
# (not \Z) and IGNORECASE are part of the rule: a trailing newline passes, as upstream.
_LATIN = "\u00a0-\u024f"
_ATOM = rf"[{_LATIN}0-9a-z!#$%&'*+/=?^_`{{}}|~\-]"
_EMAIL_LOCAL = re.compile(
    rf"(?:[{_LATIN}]|{_ATOM}+(?:\.{_ATOM}+)*|\"(?:[{_LATIN}\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]"
    r"|\\[\t.])*\")$",
    re.IGNORECASE,
)

URL_SCHEMES = frozenset(
    {"ftp", "ftps", "git", "http", "https", "irc", "rtmp", "rtmps", "rtsp", "sftp", "ssh", "telnet"}
)
# URL user-info: starts with a Latin Extended letter (nothing else checked), a dot-atom, or a
# run of quoted-string characters (possibly empty).
_USERINFO_ATOM = r"[-!#$%&'*+/=?^_`{}|~0-9a-z]"
_USERINFO = re.compile(
    rf"[\u0100-\u024f]|{_USERINFO_ATOM}+(?:\.{_USERINFO_ATOM}+)*$"
    r"|(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\t.])*$",
    re.IGNORECASE,
)
_URL_PATH = re.compile(
    r"[/a-z0-9\-._~!$&'()*+,;=:@%\U0001F300-\U0001F5FF\U0001F600-\U0001F64F"
    r"\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef]+$",
    re.IGNORECASE,
)
_URL_FRAGMENT = re.compile(r"[0-9a-z?/:@\-._~%!$&'()*+,;=#]*", re.IGNORECASE)
_PORT = re.compile(
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
    r"|[1-9][0-9]{0,3})$"
)

DN_MARKERS = ("CN=", "O=", "OU=", "C=", "ST=", "L=", "E=", "DC=")


def is_domain(value: Any) -> bool:
    """validators.domain with its defaults; never raises."""
    if not value or not isinstance(value, str) or _BLANK_OR_DOUBLE_UNDERSCORE.search(value):
        return False
    try:
        ascii_form = value.encode("idna").decode("utf-8")
    except UnicodeError:
        return False
    return _DOMAIN.fullmatch(ascii_form) is not None


def is_dns_name(value: Any) -> bool:
    """A domain, or `*.` over a domain. Raises AttributeError for a non-string, as upstream."""
    if value.split(".")[0] == "*" and is_domain(value[2:]):
        return True
    return is_domain(value)


def is_ip_address(value: Any) -> bool:
    """ipaddress.ip_address accepts it (so an integer is an address, as upstream)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_email_address(value: Any) -> bool:
    """validators.email with its defaults. Raises AttributeError where upstream does (a non-string
    value other than a list, or a list holding exactly one "@")."""
    if not value or value.count("@") != 1:
        return False
    local, domain = value.rsplit("@", 1)
    if len(local) > 64 or len(domain) > 253:
        return False
    return _EMAIL_LOCAL.match(local) is not None and is_domain(domain)


def is_url(value: Any) -> bool:
    """validators.url with its defaults; never raises."""
    if not value or not isinstance(value, str) or re.search(r"\s", value):
        return False
    try:
        scheme, netloc, path, query, fragment = urlsplit(value)
        return (
            scheme in URL_SCHEMES
            and _netloc_ok(netloc)
            and (not path or _URL_PATH.match(path) is not None)
            and _query_ok(query)
            and (not fragment or _URL_FRAGMENT.fullmatch(fragment) is not None)
        )
    except (ValueError, TypeError, UnicodeError):  # what validators' decorator turns into False
        return False


def is_dn(value: Any) -> bool:
    """Holds "=" and one of the usual attribute prefixes. Raises TypeError for a number or a
    boolean and AttributeError for a list or map holding "=", as upstream."""
    if not value or "=" not in value:
        return False
    upper = value.upper()
    return any(marker in upper for marker in DN_MARKERS)


def _netloc_ok(netloc: str) -> bool:
    if not netloc or netloc.count("@") > 1:
        return False
    if "@" not in netloc:
        return _host_ok(netloc, netloc)
    userinfo, host = netloc.rsplit("@", 1)
    return _host_ok(host, netloc) and _userinfo_ok(userinfo)


def _host_ok(host: str, netloc: str) -> bool:
    # An IPv6 literal is only considered in brackets; "[...]:port" keeps them for the port split.
    no_ipv6 = host.count(":") < 2 or not host.startswith("[")
    if not (no_ipv6 or "]:" in netloc):
        host = host.lstrip("[").replace("]", "", 1)
    if not host:
        return False
    target = _without_port(host) or host
    return (
        is_domain(target)
        or _parses(ipaddress.IPv4Address, target)
        or (not no_ipv6 and _parses(ipaddress.IPv6Address, target))
    )


def _without_port(host: str) -> str | None:
    if host.count("]:") == 1:
        head, port = host.rsplit(":", 1)
        if _PORT.match(port):
            return head.lstrip("[").rstrip("]")
    if host.count(":") == 1:
        head, port = host.rsplit(":", 1)
        if _PORT.match(port):
            return head
    return None


def _parses(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def _userinfo_ok(userinfo: str) -> bool:
    if not userinfo:
        return True
    colons = userinfo.count(":")
    if colons > 1:
        return _USERINFO.match(unquote(userinfo)) is not None
    if colons < 1:
        return _USERINFO.match(userinfo) is not None
    user, password = userinfo.rsplit(":", 1)
    return _USERINFO.match(user) is not None and not any(c in password for c in "/?#@")


def _query_ok(query: str) -> bool:
    # Strict parsing with either separator must succeed (it raises ValueError otherwise).
    if query:
        parse_qs(query, strict_parsing=True, separator="&")
        parse_qs(query, strict_parsing=True, separator=";")
    return True
