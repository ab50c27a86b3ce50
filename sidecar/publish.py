"""Publishing credential sets: cacore's kubelet-style writer, with replaced versions kept for a
grace period instead of being deleted at the swap.

Why: a reader that resolved ``..data`` (or is half-way through a path lookup) just before a swap
would otherwise find its files deleted under it, which is a missing-file read. Kept for a few
seconds, every reader that resolves once and reads promptly sees a complete, consistent set.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from cacore.files import DATA_LINK, AtomicDirectoryWriter, Ownership

DEFAULT_GRACE_SECONDS = 5.0


class GraceWriter(AtomicDirectoryWriter):
    def __init__(
        self,
        directory: Path,
        owner: Ownership,
        grace: float = DEFAULT_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(directory, owner)
        self.grace = grace
        self.clock = clock

    def _remove_old_versions(self, keep: str) -> None:
        self.remove_stale(keep)

    def remove_stale(self, keep: str | None = None) -> int:
        """Remove versions replaced more than ``grace`` seconds ago (and abandoned half-written
        ones as old); returns how many remain besides the current one."""
        try:
            current = keep or os.readlink(self.directory / DATA_LINK)
            entries = sorted(
                e
                for e in self.directory.iterdir()
                if e.name.startswith("..") and e.is_dir() and not e.is_symlink()
            )
        except OSError:
            return 0
        now, remaining = self.clock(), 0
        for index, entry in enumerate(entries):
            if entry.name == current:
                continue
            # A version's replacement time is when its successor was written.
            successor = entries[index + 1] if index + 1 < len(entries) else entry
            try:
                replaced_at = successor.stat().st_mtime
            except OSError:
                continue
            if now - replaced_at > self.grace:
                shutil.rmtree(entry, ignore_errors=True)
            else:
                remaining += 1
        return remaining
