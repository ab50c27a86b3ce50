"""Who this operator is among its kopf peers, and which peering records are its own dead past.

kopf pauses an operator while the peering object lists another live peer of equal or higher
priority; a peer counts as live until its record's ``lastseen`` plus ``lifetime`` (60 s). A
process that was killed leaves its record behind, so the process that replaces it (the container
restarted in the same Pod, or the operator restarted on the same host) would sit paused behind
its own predecessor for up to a minute. The identity names the host and the process, so the
successor can tell its own predecessor's record from a live peer's and remove it before kopf
looks: same host, and a process that is no longer running there (or has this very pid: a
restarted container usually has the pid its predecessor had). Records of other hosts are never
touched; they expire as kopf decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

PREFIX = "clientcert-operator@"
_IDENTITY = re.compile(rf"^{re.escape(PREFIX)}(?P<host>[^/]+)/\d{{14}}/(?P<pid>\d+)/\w+$")


def identity(host: str, now: datetime, pid: int, suffix: str) -> str:
    """This process's name among peers. kopf's default asks the password database for the user
    name, which has no entry for an arbitrary non-root uid (runAsUser 65532): it crashes."""
    return f"{PREFIX}{host}/{now:%Y%m%d%H%M%S}/{pid}/{suffix}"


def dead_predecessors(
    records: Mapping[str, object], me: str, host: str, pid: int, running: Callable[[int], bool]
) -> list[str]:
    """The identities in a peering object's status that are earlier processes of this operator
    on this host and are certainly gone."""
    dead = []
    for name in records:
        match = _IDENTITY.match(name)
        if name == me or match is None or match["host"] != host:
            continue
        other = int(match["pid"])
        if other == pid or not running(other):
            dead.append(name)
    return sorted(dead)
