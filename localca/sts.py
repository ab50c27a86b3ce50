"""Temporary credentials from a local STS, so the CA accepts what a role assumption returns.

On AWS the Lambda service accepts the temporary credentials that STS issued for a role
(IRSA's AssumeRoleWithWebIdentity, the ECS task role, AssumeRole). Here STS is moto's server:
``--sts-endpoint`` names it, and an access key id the CA does not know is looked up among the
roles moto has handed out (its ``/moto-api/data.json``). The request must carry the matching
session token, as AWS requires; the signature is then checked with the looked-up secret.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass

# A local STS on loopback must never be reached through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str


def parse_assumed_roles(data: object) -> dict[str, TemporaryCredentials]:
    """access key id -> credentials, from moto's model dump (pure)."""
    roles = data.get("sts", {}).get("AssumedRole", []) if isinstance(data, dict) else []
    found = {}
    for role in roles:
        try:
            creds = TemporaryCredentials(
                role["access_key_id"], role["secret_access_key"], role["session_token"],
                role["role_arn"],
            )  # fmt: skip
        except (KeyError, TypeError):
            continue
        found[creds.access_key_id] = creds
    return found


class StsLookup:
    """Finds the temporary credentials an STS endpoint issued, remembering what it found."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._known: dict[str, TemporaryCredentials] = {}
        self._lock = threading.Lock()

    def find(self, access_key_id: str) -> TemporaryCredentials | None:
        with self._lock:
            if access_key_id not in self._known:
                url = f"{self.endpoint}/moto-api/data.json"
                try:
                    with _opener.open(url, timeout=self.timeout) as response:
                        self._known.update(parse_assumed_roles(json.load(response)))
                except (OSError, ValueError):
                    return None
            return self._known.get(access_key_id)
