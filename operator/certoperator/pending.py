"""Certificates the CA issued whose Secret is not written yet: kept, never thrown away.

An issuance costs a CA invocation; if the Secret write then fails (the API server or etcd is
down), the certificate and its key wait here and the next pass writes them instead of invoking
the CA again. In memory always; with a stash directory also on disk, so a restarted process
(the container restarted by its liveness probe, say) still has them.

Where the stash lives matters, because it holds private keys: the chart mounts an ``emptyDir``
with ``medium: Memory`` (tmpfs: RAM only, never the node's disk, gone with the Pod, readable
only inside it), and the files are 0600 in a 0700 directory of their own, owned by the
operator's user. An entry is written there when the CA answers, before the Secret is written
(so a SIGKILLed process loses no issued certificate), and removed as soon as a write succeeds,
the object is gone, or the certificate expired: a key stays in the stash for the length of one
Secret write, or while the API is unreachable. Without a stash directory nothing touches the
disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cacore.edge.files import write_file_atomic

log = logging.getLogger("certoperator")
Key = tuple[str, str]


@dataclass(frozen=True)
class PendingSecret:
    namespace: str
    name: str  # the ClientCertificate
    uid: str  # of the ClientCertificate it was issued for: a re-created one gets its own
    spec_hash: str
    trigger: str  # why it was issued (a reason of cacore.renewal)
    issuer: str
    secret: dict[str, Any]  # the Secret to write, data included
    serial: int
    not_before: datetime
    not_after: datetime
    issued_at: datetime

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def usable_for(self, uid: str, spec_hash: str, now: datetime) -> bool:
        return self.uid == uid and self.spec_hash == spec_hash and now < self.not_after

    def to_json(self) -> bytes:
        fields = asdict(self)
        for name in ("not_before", "not_after", "issued_at"):
            fields[name] = fields[name].isoformat()
        fields["serial"] = str(self.serial)
        return json.dumps(fields).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PendingSecret:
        fields = json.loads(raw)
        for name in ("not_before", "not_after", "issued_at"):
            fields[name] = datetime.fromisoformat(fields[name])
        fields["serial"] = int(fields["serial"])
        return cls(**fields)


class PendingSecrets:
    def __init__(self, stash_dir: Path | None = None) -> None:
        self._entries: dict[Key, PendingSecret] = {}
        # A directory of our own inside the volume: an emptyDir's root is world-writable.
        self._stash = stash_dir / "pending" if stash_dir is not None else None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> PendingSecret | None:
        return self._entries.get(key)

    def keep(self, entry: PendingSecret) -> None:
        """Hold ``entry`` and write it to the stash (if there is one): it is kept from the CA's
        answer until its Secret is written, so a process killed in between loses nothing."""
        self._entries[entry.key] = entry
        if self._stash is not None:
            try:
                self._stash.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_file_atomic(self._path(entry.key), entry.to_json(), mode=0o600)
            except OSError as error:
                log.warning(
                    "cannot stash an issued certificate; it is kept in memory only",
                    extra={"fields": {"namespace": entry.namespace, "name": entry.name,
                                      "error": str(error)}},
                )  # fmt: skip

    def stash_all(self) -> None:
        """At shutdown: write every entry again, a second chance for a stash write that failed
        (a full tmpfs)."""
        for entry in list(self._entries.values()):
            self.keep(entry)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)
        if self._stash is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def load(self, now: datetime) -> int:
        """Read the stash a previous process left; expired or unreadable entries are removed."""
        if self._stash is None or not self._stash.is_dir():
            return 0
        for path in self._stash.glob("*.json"):
            try:
                entry = PendingSecret.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError) as error:
                log.warning("removing an unreadable stash entry",
                            extra={"fields": {"file": path.name, "error": str(error)}})  # fmt: skip
                path.unlink(missing_ok=True)
                continue
            if now >= entry.not_after or path != self._path(entry.key):
                path.unlink(missing_ok=True)
                continue
            self._entries[entry.key] = entry
        return len(self._entries)

    def _path(self, key: Key) -> Path:
        assert self._stash is not None
        digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).hexdigest()[:32]
        return self._stash / f"{digest}.json"
