"""The state directory: created private, locked to one local CA process, and refused when broken.

Every problem is a StateError whose message names the file and the fix; `local-ca serve` prints
it as one line and exits 2.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "lock"
FRESH_START = "or start with an empty --state-dir (a new CA)"


class StateError(Exception):
    """The state directory cannot be used; the message names the file and the fix."""


def prepare(state_dir: Path) -> None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
    except FileExistsError as exc:
        raise StateError(
            f"state_dir {state_dir} is not a directory: give a directory for --state-dir"
        ) from exc
    except OSError as exc:
        raise StateError(
            f"state_dir {state_dir} cannot be created or used ({exc.strerror}): give a writable "
            "directory for --state-dir"
        ) from exc


class DirectoryLock:
    """An exclusive lock on the state dir for this process's lifetime: two local CAs on one
    state dir would each miss the other's issued keys (the key-reuse guard) and interleave
    their records."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(
                f"state_dir {state_dir}: {LOCK_FILE} cannot be opened ({exc.strerror}): remove it"
            ) from exc
        self._handle: IO[str] | None = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._handle.read().strip() or "unknown"
            self.release()
            raise StateError(
                f"state_dir {state_dir} is in use by another local-ca (pid {holder}): stop it "
                "or give another --state-dir"
            ) from exc
        self._handle.truncate(0)
        self._handle.write(f"{os.getpid()}\n")
        self._handle.flush()

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # closing the descriptor drops the flock
