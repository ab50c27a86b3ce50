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
from collections import defaultdict
from pathlib import Path
from typing import Any

from localca.issuance import IssuedCert

STORE_FILE = "issued.jsonl"


class IssuedStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STORE_FILE
        self.lock = threading.RLock()
        self._dates: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.count = 0
        for record in _read(self.path):
            self._index(record)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")

    def _index(self, record: IssuedCert) -> None:
        self._dates[(record.common_name, record.key_id)].append(record.issued[:10])
        self.count += 1

    def key_used(self, common_name: str, key_id: str) -> bool:
        with self.lock:
            return (common_name, key_id) in self._dates

    def issued_dates(self, common_name: str, key_id: str) -> list[str]:
        with self.lock:
            return list(self._dates.get((common_name, key_id), ()))

    def record(self, cert: IssuedCert) -> None:
        line = json.dumps(
            {
                "common_name": cert.common_name,
                "serial": cert.serial,
                "key_id": cert.key_id,
                "issued": cert.issued,
                "expires": cert.expires,
                "pem": cert.pem,
            }
        )
        with self.lock:
            self._handle.write(line + "\n")
            self._handle.flush()
            self._index(cert)

    def close(self) -> None:
        with self.lock:
            self._handle.close()


def _read(path: Path) -> list[IssuedCert]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
            out.append(
                IssuedCert(
                    common_name=raw["common_name"],
                    serial=raw["serial"],
                    key_id=raw["key_id"],
                    issued=raw["issued"],
                    expires=raw["expires"],
                    pem=raw["pem"],
                )
            )
        except (ValueError, KeyError, TypeError):
            # A torn last line from an interrupted write: the certificate is simply forgotten.
            continue
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
