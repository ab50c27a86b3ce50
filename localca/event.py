"""Reading the event the way the real handler does, before it looks at anything else.

Upstream's first step is `Request.from_dict(event)` (a dataclasses-json class with unknown keys
excluded, in `lambda_code/tls_cert/tls_cert.py`). Facts of that step, for every JSON value:

- an event that is not an object crashes (AttributeError: "'list' object has no attribute
  'items'"), before even `ca_chain_only` is looked at;
- fields are decoded in declaration order; string fields take `str(value)`, booleans
  `bool(value)`, `lifetime` `int(value)` unless already an integer (so "abc", "", 1.5e999, a
  list or a map crash here); `purposes` and `extended_key_usages` must be iterable;
  `extensions` must be iterable and hold only maps or nulls;
- null is kept as null for every field.

The handler then uses the decoded `csr_file`, `base64_csr_data`, `force_issue`, `cert_bundle`
and `ca_chain_only`, and the raw event for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    csr_file: str | None
    base64_csr_data: str | None
    force_issue: bool
    cert_bundle: bool
    ca_chain_only: bool


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _flag(value: Any) -> bool:
    return value is not None and bool(value)


def _check_decodable(event: dict[str, Any]) -> None:
    """Raise exactly where upstream's decoding raises, in its field order."""
    lifetime = event.get("lifetime")
    if lifetime is not None and not isinstance(lifetime, int):
        int(lifetime)
    for name in ("purposes", "extended_key_usages"):
        if event.get(name) is not None:
            iter(event[name])
    extensions = event.get("extensions")
    if extensions is not None:
        for item in extensions:
            if item is not None and not isinstance(item, dict):
                raise AttributeError(f"'{type(item).__name__}' object has no attribute 'keys'")


def read(event: Any) -> Request:
    """The decoded request, or the exception the real handler's first step raises."""
    fields = dict(event.items())
    _check_decodable(fields)
    return Request(
        csr_file=_text(fields.get("csr_file")),
        base64_csr_data=_text(fields.get("base64_csr_data")),
        force_issue=_flag(fields.get("force_issue")),
        cert_bundle=_flag(fields.get("cert_bundle")),
        ca_chain_only=_flag(fields.get("ca_chain_only")),
    )
