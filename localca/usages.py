"""Extended key usages: `purposes` and `extended_key_usages`, as the real handler reads them.

Facts from upstream `utils/certs/types.py` (filter_and_validate_purposes,
filter_and_validate_extended_key_usages) and `utils/certs/ca.py` (ca_build_cert):

- `purposes`: only "client_auth" and "server_auth" are kept, in the order given and with
  repeats; not a list, empty, or nothing valid means ["client_auth"].
- `extended_key_usages`: not a list means none; names from AWS Private CA's vocabulary (NONE
  adds nothing) and anything starting "1." or "2." are kept, others dropped with a log line; a
  non-string entry crashes (AttributeError on `startswith`).
- The EKU extension lists the purposes' OIDs first, then each named or dotted usage not already
  present. A kept dotted string that is not a valid OID crashes when the certificate is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

PURPOSES = ("client_auth", "server_auth")
DEFAULT_PURPOSES = ["client_auth"]

EKU_OIDS = {
    "TLS_WEB_SERVER_AUTHENTICATION": ExtendedKeyUsageOID.SERVER_AUTH,
    "TLS_WEB_CLIENT_AUTHENTICATION": ExtendedKeyUsageOID.CLIENT_AUTH,
    "CODE_SIGNING": ExtendedKeyUsageOID.CODE_SIGNING,
    "EMAIL_PROTECTION": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "TIME_STAMPING": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSP_SIGNING": ExtendedKeyUsageOID.OCSP_SIGNING,
    "IPSEC_END_SYSTEM": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "IPSEC_TUNNEL": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "IPSEC_USER": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "ANY": x509.ObjectIdentifier("2.5.29.37.0"),
}
EKU_NAMES = (*EKU_OIDS, "NONE")


def purposes_of(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return list(DEFAULT_PURPOSES)
    # Membership in a tuple compares with ==, so any JSON value is safe here, as upstream.
    return [p for p in value if p in PURPOSES] or list(DEFAULT_PURPOSES)


def usage_names(value: Any, log: Callable[[str], None]) -> list[str]:
    if not isinstance(value, list):
        return []
    kept = []
    for name in value:
        if name in EKU_NAMES or name.startswith("1.") or name.startswith("2."):
            kept.append(name)
        else:
            log(f"Invalid extended key usage {name} excluded")
    return kept


def eku_oids(purposes: list[Any], names: list[str]) -> list[x509.ObjectIdentifier]:
    oids = [
        ExtendedKeyUsageOID.SERVER_AUTH if p == "server_auth" else ExtendedKeyUsageOID.CLIENT_AUTH
        for p in purposes
    ]
    for name in names:
        if name == "NONE":
            continue
        oid = EKU_OIDS.get(name) or x509.ObjectIdentifier(name)
        if oid not in oids:
            oids.append(oid)
    return oids
