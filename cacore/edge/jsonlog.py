"""Structured logs: one JSON object per line, shared by every long-running process of the project.

Fields passed as ``extra={"fields": {...}}`` are merged into the object. Nothing here knows about
keys; callers never pass key material, and ``redact`` guards the names that could carry it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_SECRET_NAMES = ("key", "secret", "token", "password", "private")


def redact(fields: dict[str, object]) -> dict[str, object]:
    """Blank the value of any field whose name suggests a secret (e.g. ``tls_key``)."""
    safe: dict[str, object] = {}
    for name, value in fields.items():
        lowered = name.lower()
        secret = any(word in lowered for word in _SECRET_NAMES) and not lowered.endswith(
            ("_id", "_algorithm", "_file", "_path", "key_spec")
        )
        safe[name] = "[redacted]" if secret else value
    return safe


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["error"] = str(record.exc_info[1])
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines (stdout stays for command output)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
