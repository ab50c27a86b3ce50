"""Who this process is (uid, groups, capabilities), read once from the kernel, for the start-up
checks that refuse settings the process could not carry out."""

from __future__ import annotations

import os
from pathlib import Path

from cacore.credentials import Process

# Bit numbers of the capabilities the credential writer cares about (linux/capability.h).
_CAPABILITIES = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3}


def effective_capabilities(status: str) -> frozenset[str]:
    """The named capabilities set in a ``/proc/<pid>/status`` text's ``CapEff`` line."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            bits = int(line.split(":", 1)[1].strip(), 16)
            return frozenset(name for name, bit in _CAPABILITIES.items() if bits >> bit & 1)
    return frozenset()


def current_process(proc: Path = Path("/proc/self/status")) -> Process:
    uid, gid = os.geteuid(), os.getegid()
    try:
        capabilities = effective_capabilities(proc.read_text())
    except OSError:  # no /proc: assume root has its usual powers, others none
        capabilities = frozenset(_CAPABILITIES) if uid == 0 else frozenset()
    return Process(uid, gid, frozenset(os.getgroups()), capabilities)
