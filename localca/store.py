"""Issued certificates: an append-only JSON-lines file in the state dir, indexed in memory.

The file survives restarts so the key-reuse refusal still fires for keys seen before. Appends
are flushed but not fsynced per request: a lost tail after a machine crash only forgets a few
test certificates, while an fsync per issuance would dominate the latency budget.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from localca.issuance import IssuedCert
from localca.state import StateError

STORE_FILE = "issued.jsonl"
_FIELDS = ("common_name", "serial", "key_id", "issued", "expires", "pem")


class IssuedStore:
    """The (common name, key) pairs on record, for the key-reuse and already-issued checks.

    A last line cut short by a crash mid-write is dropped (and cut from the file, so the next
    record starts on a line of its own); any other unreadable line is a StateError: silently
    forgetting a record would let a key be certified twice.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STORE_FILE
        self.lock = threading.RLock()
        self._keys: set[tuple[str, str]] = set()
        self.count = 0
        for record in _read(self.path):
            self._index(record)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StateError(
                f"state_dir {state_dir}: {STORE_FILE} cannot be opened for writing "
                f"({exc.strerror}): make it a writable file"
            ) from exc
        self._handle = os.fdopen(fd, "a", encoding="utf-8")

    def _index(self, record: IssuedCert) -> None:
        self._keys.add((record.common_name, record.key_id))
        self.count += 1

    def key_used(self, common_name: str, key_id: str) -> bool:
        with self.lock:
            return (common_name, key_id) in self._keys

    def record(self, cert: IssuedCert) -> None:
        line = json.dumps({name: getattr(cert, name) for name in _FIELDS})
        with self.lock:
            self._handle.write(line + "\n")
            self._handle.flush()
            self._index(cert)

    def close(self) -> None:
        with self.lock:
            self._handle.close()


def _parse(line: bytes) -> IssuedCert:
    raw = json.loads(line)
    values = [raw[name] for name in _FIELDS]
    if not all(isinstance(v, str) for v in values):
        raise ValueError("a field is not a string")
    return IssuedCert(*values)


def _read(path: Path) -> list[IssuedCert]:
    fix = "restore it from a backup, or delete that line (the CA then forgets that key)"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(
            f"state_dir {path.parent}: {STORE_FILE} cannot be read ({exc.strerror}): make it a "
            "readable file"
        ) from exc
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete write does
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(_parse(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"state_dir {path.parent}: {STORE_FILE} line {number} is not an issued-certificate "
                f"record: {fix}"
            ) from exc
    if torn:
        try:
            out.append(_parse(torn))
            ending = b"\n"  # a complete record without its newline (an edit by hand)
        except (ValueError, KeyError, TypeError):
            ending = b""  # an interrupted append: its certificate never reached a client
        with path.open("r+b") as handle:
            handle.truncate(len(data) - len(torn) + (len(torn) if ending else 0))
            handle.seek(0, os.SEEK_END)
            handle.write(ending)
    return out


class DynamoRecorder:
    """Mirrors each issued certificate into the contract's DynamoDB table."""

    def __init__(self, endpoint_url: str, table: str, region: str) -> None:
        import boto3  # deferred: boto3 costs ~0.3 s of startup and is only needed here
        from botocore.config import Config as BotoConfig

        self.table = table
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name=region,
            # moto accepts any credentials; a real DynamoDB Local would too.
            aws_access_key_id=os.environ.get("LOCALCA_DYNAMODB_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("LOCALCA_DYNAMODB_SECRET_ACCESS_KEY", "testing"),
            config=BotoConfig(retries={"max_attempts": 2, "mode": "standard"}),
        )
        self._ensure_table()

    def _ensure_table(self) -> None:
        existing = self.client.list_tables().get("TableNames", [])
        if self.table in existing:
            return
        self.client.create_table(
            TableName=self.table,
            AttributeDefinitions=[
                {"AttributeName": "CommonName", "AttributeType": "S"},
                {"AttributeName": "SerialNumber", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "CommonName", "KeyType": "HASH"},
                {"AttributeName": "SerialNumber", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )

    def item(self, cert: IssuedCert) -> dict[str, Any]:
        return {
            "CommonName": {"S": cert.common_name},
            "SerialNumber": {"S": cert.serial},
            "Issued": {"S": cert.issued},
            "Expires": {"S": cert.expires},
            # Binary attribute holding base64 of the PEM text, as the real CA stores it.
            "Certificate": {"B": base64.b64encode(cert.pem.encode())},
        }

    def record(self, cert: IssuedCert) -> None:
        self.client.put_item(TableName=self.table, Item=self.item(cert))
