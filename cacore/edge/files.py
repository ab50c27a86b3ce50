"""Writing credential sets so that a reader never sees a key from one issuance and a certificate
from another: kubelet's AtomicWriter layout. Files live in a versioned directory, ``..data`` is a
symlink to the current version, and every visible name is a symlink through ``..data``; one
``rename`` of ``..data`` switches the whole set."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cacore.credentials import DEFAULT_OWNERSHIP, Ownership

DATA_LINK = "..data"
_TMP_LINK = "..data_tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chown(path: Path, owner: Ownership) -> None:
    if owner.uid is not None or owner.gid is not None:
        os.chown(
            path,
            -1 if owner.uid is None else owner.uid,
            -1 if owner.gid is None else owner.gid,
            follow_symlinks=False,
        )


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """One file, all or nothing: a temp file created with ``mode`` in the same directory,
    fsynced, renamed over the target, and the directory fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class AtomicDirectoryWriter:
    """Owns one output directory; the only writer of its credential set.

    The swap is atomic without fsync. ``durable`` adds fsyncs so the set also survives a power
    cut; it costs milliseconds per write and buys little for a set that is re-issued on start
    when it is not valid, so, like kubelet, the default is off.

    A replaced version is kept for ``grace_seconds`` after its successor was written: a reader
    that resolved ``..data`` just before the swap can still finish reading a complete set. At
    most ``max_kept`` replaced versions are kept, the newest: renewals in quick succession must
    not fill the volume, and a reader slower than ``max_kept`` swaps re-reads anyway.
    """

    def __init__(
        self,
        directory: Path,
        owner: Ownership = DEFAULT_OWNERSHIP,
        durable: bool = False,
        grace_seconds: float = 0.0,
        max_kept: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.owner = owner
        self.durable = durable
        self.grace_seconds = grace_seconds
        self.max_kept = max_kept
        self.clock = clock

    def write(self, files: Mapping[str, bytes], private: set[str]) -> Path:
        """Publish ``files`` as the new set; ``private`` names get the private mode. On any error
        the previous set stays exactly as it was and the half-written version is removed."""
        for name in files:
            if "/" in name or name.startswith(".."):
                raise ValueError(f"file name {name!r} must be a plain name")
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y_%m_%d_%H_%M_%S.%f")
        version = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=self.directory))
        try:
            for name, content in files.items():
                mode = self.owner.private_mode if name in private else self.owner.file_mode
                self._write_version_file(version / name, content, mode)
            os.chmod(version, self.owner.dir_mode)
            _chown(version, self.owner)
            if self.durable:
                _fsync_dir(version)
            # Visible names first: a reader that finds ..data must also find every name in it.
            self._link_visible_names(set(files))
            tmp_link = self.directory / _TMP_LINK
            with contextlib.suppress(FileNotFoundError):
                tmp_link.unlink()
            tmp_link.symlink_to(version.name)
            os.replace(tmp_link, self.directory / DATA_LINK)
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        self._unlink_dropped_names(set(files))
        if self.durable:
            _fsync_dir(self.directory)
        self.remove_replaced_versions()
        return version

    def _write_version_file(self, path: Path, content: bytes, mode: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(path, mode)  # the umask may have narrowed it
        _chown(path, self.owner)

    def _link_visible_names(self, names: set[str]) -> None:
        for name in names:
            link = self.directory / name
            target = f"{DATA_LINK}/{name}"
            if link.is_symlink() and os.readlink(link) == target:
                continue
            tmp = self.directory / f".{name}.link"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(target)
            os.replace(tmp, link)

    def _unlink_dropped_names(self, names: set[str]) -> None:
        for entry in self.directory.iterdir():
            if entry.is_symlink() and not entry.name.startswith(".") and entry.name not in names:
                target = os.readlink(entry)
                if target.startswith(f"{DATA_LINK}/"):
                    entry.unlink()

    def remove_replaced_versions(self) -> int:
        """Remove versions replaced more than ``grace_seconds`` ago or beyond the newest
        ``max_kept``, and half-written ones left by a crash; returns how many replaced versions
        are still kept. Call it again later (e.g. on a timer) to clean up what the grace period
        kept."""
        try:
            current = os.readlink(self.directory / DATA_LINK)
            # Version names start with their creation time, so sorting orders them in time.
            versions = sorted(
                entry
                for entry in self.directory.iterdir()
                if entry.name.startswith("..") and entry.is_dir() and not entry.is_symlink()
            )
        except OSError:
            return 0
        now, kept = self.clock(), 0
        for index, entry in reversed(list(enumerate(versions))):
            if entry.name == current:
                continue
            successor = versions[index + 1] if index + 1 < len(versions) else entry
            try:
                replaced_at = successor.stat().st_mtime
            except OSError:
                continue
            if now - replaced_at >= self.grace_seconds or kept >= self.max_kept:
                shutil.rmtree(entry, ignore_errors=True)
            else:
                kept += 1
        return kept


def read_credential_set(directory: Path) -> dict[str, bytes] | None:
    """Resolve ``..data`` once and read every file of that version, so all come from one set."""
    link = directory / DATA_LINK
    try:
        version = directory / os.readlink(link)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return {entry.name: entry.read_bytes() for entry in version.iterdir() if entry.is_file()}
    except FileNotFoundError:
        # Replaced and removed between readlink and read: the next read sees the new set.
        return read_credential_set(directory)
