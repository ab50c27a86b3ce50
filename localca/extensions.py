"""Custom extensions (`extensions`): authorised against the CA's allowlist, or refused.

Facts from upstream `utils/certs/types.py` (validate_custom_extensions) and `utils/certs/crypto.py`
(convert_extensions_to_x509): checked in order, the first problem refuses the whole request;
an extension the CA itself sets is reserved even when allow-listed; `critical` is truthiness.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

# The extensions the CA controls: SKI, KU, SAN, BC, CRL DP, policies, AKI, EKU, AIA.
RESERVED_OIDS = frozenset(
    {
        "2.5.29.14",
        "2.5.29.15",
        "2.5.29.17",
        "2.5.29.19",
        "2.5.29.31",
        "2.5.29.32",
        "2.5.29.35",
        "2.5.29.37",
        "1.3.6.1.5.5.7.1.1",
    }
)

Extension = tuple[x509.UnrecognizedExtension, bool]


def refusal(extensions: list[Any], allowlist: tuple[str, ...]) -> str | None:
    """The refusal for the first unacceptable extension, or None. An entry that is not a map, or
    an `oid` that cannot be hashed, raises (a crash), as upstream."""
    seen: set[Any] = set()
    for extension in extensions:
        oid = extension.get("oid")
        if not oid:
            return "Custom extension is missing required field 'oid'"
        if oid in seen:
            return f"Custom extension OID {oid} is specified more than once"
        seen.add(oid)
        if oid in RESERVED_OIDS:
            return f"Custom extension OID {oid} is reserved and cannot be set by callers"
        if oid not in allowlist:
            return f"Custom extension OID {oid} is not in the configured allowlist"
        try:
            x509.ObjectIdentifier(oid)
        except Exception:  # noqa: BLE001 - upstream turns any failure into this refusal
            return f"Custom extension OID {oid} is not a valid object identifier"
        value_b64 = extension.get("value_b64")
        if value_b64 is None:
            return f"Custom extension OID {oid} is missing required field 'value_b64'"
        try:
            base64.b64decode(value_b64, validate=True)
        except Exception:  # noqa: BLE001 - upstream turns any failure into this refusal
            return f"Custom extension OID {oid} has an invalid base64 value"
    return None


def to_x509(extensions: list[Any]) -> list[Extension]:
    return [
        (
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(item["oid"]), base64.b64decode(item["value_b64"])
            ),
            bool(item.get("critical", False)),
        )
        for item in extensions
    ]
