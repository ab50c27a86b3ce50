"""Writing credential sets so that a reader never sees a key from one issuance and a certificate
from another: kubelet's AtomicWriter layout. Files live in a versioned directory, ``..data`` is a
symlink to the current version, and every visible name is a symlink through ``..data``; one
``rename`` of ``..data`` switches the whole set."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cacore.credentials import DEFAULT_OWNERSHIP, Ownership

DATA_LINK = "..data"
_TMP_LINK = "..data_tmp"


class TooLarge(Exception):
    """A file is larger than its reader accepts (it is not read past the limit)."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is larger than {limit} bytes")
        self.path, self.limit = path, limit


def read_limited(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` of them (``TooLarge`` beyond). A folder raises
    ``IsADirectoryError``; a pipe or a device raises ``OSError`` (EINVAL) instead of blocking or
    reading without end, as ``/dev/zero`` or a FIFO would."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge(path, limit)
    return b"".join(chunks)


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
            # The version folder keeps the writer as its owner (only its group follows the
            # setting), so the writer can always remove it once replaced, even after giving
            # the files inside to another uid.
            _chown(version, Ownership(gid=self.owner.gid))
            if self.durable:
                _fsync_dir(version)
            # Visible names first: a reader that finds ..data must also find every name in it.
            self._link_visible_names(set(files))
            tmp_link = self.directory / _TMP_LINK
            with contextlib.suppress(FileNotFoundError):
                tmp_link.unlink()
            tmp_link.symlink_to(version.name)
            _clear_non_link(self.directory / DATA_LINK)
            os.replace(tmp_link, self.directory / DATA_LINK)
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        # Published. What follows is housekeeping: its failure must not look like a failed write.
        with contextlib.suppress(OSError):
            self._unlink_dropped_names(set(files))
            if self.durable:
                _fsync_dir(self.directory)
        self.remove_replaced_versions()
        return version

    def relink(self, names: set[str]) -> None:
        """Restore the visible names of the current set (deleted or replaced by hand), without
        touching the set itself."""
        self._link_visible_names(names)

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
            _clear_non_link(link)
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
                # A restrictive CERT_SIDECAR_DIR_MODE must not stop the owner removing files.
                with contextlib.suppress(OSError):
                    os.chmod(entry, 0o700)
                shutil.rmtree(entry, ignore_errors=True)
            else:
                kept += 1
        return kept


def _clear_non_link(path: Path) -> None:
    """Remove what sits at one of the writer's own names (``..data``, a visible name) when it is
    not a symlink, e.g. a folder made by hand: a rename cannot replace a folder, so the writer
    would otherwise fail on every attempt, for ever."""
    if path.is_symlink() or not path.exists():
        return
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


# Largest file of a credential set that is read (a key, a certificate chain: kilobytes).
MAX_SET_FILE_BYTES = 1024 * 1024
_READ_ATTEMPTS = 3  # a set replaced while it is read is read again, a few times at most


class UnreadableSet(Exception):
    """The directory holds something where a credential set should be, but it cannot be read as
    one; ``str()`` says what is wrong, for logs and readiness."""


def current_version(directory: Path) -> str | None:
    """The version folder name ``..data`` points to; None when nothing was published (or the
    directory does not exist). ``UnreadableSet`` when ``..data`` is not a link to a version of
    this directory: not a symlink, a path elsewhere, a loop."""
    try:
        target = os.readlink(directory / DATA_LINK)
    except FileNotFoundError:
        return None
    except NotADirectoryError as error:
        raise UnreadableSet(f"{directory} is not a directory; point the output at one") from error
    except OSError as error:
        if error.errno == errno.EINVAL:
            raise UnreadableSet(f"{DATA_LINK} is not a symbolic link to a version") from error
        raise UnreadableSet(f"{DATA_LINK} cannot be read: {error.strerror}") from error
    if "/" in target or not target.startswith("..") or target in ("..", DATA_LINK, _TMP_LINK):
        raise UnreadableSet(f"{DATA_LINK} points to {target!r}, not to a version of this set")
    return target


def read_credential_set(directory: Path) -> dict[str, bytes] | None:
    """Resolve ``..data`` once and read every file of that version, so all come from one set.
    None: nothing was ever published. ``UnreadableSet``: something is there but is not a
    readable set (``..data`` dangling, looping or not a link, a file that cannot be read)."""
    for _attempt in range(_READ_ATTEMPTS):
        name = current_version(directory)
        if name is None:
            return None
        version = directory / name
        try:
            files = {}
            for entry in sorted(os.listdir(version)):
                path = version / entry
                if stat.S_ISREG(os.lstat(path).st_mode):
                    files[entry] = read_limited(path, MAX_SET_FILE_BYTES)
            return files
        except FileNotFoundError:
            continue  # replaced and removed between readlink and read: read the new set
        except TooLarge as error:
            raise UnreadableSet(
                f"{name}/{error.path.name} is larger than {error.limit} bytes"
            ) from error
        except OSError as error:
            where = f"{name}/{Path(error.filename).name}" if error.filename else name
            raise UnreadableSet(f"cannot read {where}: {error.strerror or error}") from error
    raise UnreadableSet(
        f"{DATA_LINK} points to {name}, which does not exist (the version folder was deleted)"
    )


def visible_name_problems(directory: Path, names: set[str]) -> list[str]:
    """Visible names that do not lead into the current set (deleted, replaced by a file, or
    pointing elsewhere): an application opening ``/certs/tls.crt`` would not find the set."""
    problems = []
    for name in sorted(names):
        path = directory / name
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        except OSError:
            problems.append(f"{name} is not a link into {DATA_LINK}")
            continue
        if target != f"{DATA_LINK}/{name}":
            problems.append(f"{name} points to {target!r}, not into {DATA_LINK}")
    return problems


def fingerprint(directory: Path) -> tuple[object, ...]:
    """What changes whenever the published set changes on disk (a swap, a file deleted,
    replaced or rewritten in place, a visible name removed): cheap ``stat`` calls, so a reader
    can parse the set again only when something moved."""
    parts: list[object] = []
    try:
        target = os.readlink(directory / DATA_LINK)
        parts.append(target)
        version = directory / target
        info = os.stat(version)
        parts.append((info.st_ino, info.st_mtime_ns))
        for entry in sorted(os.listdir(version)):
            info = os.lstat(version / entry)
            parts.append((entry, info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode))
    except OSError as error:
        parts.append(("error", error.errno))
    try:
        for entry in sorted(os.listdir(directory)):
            if not entry.startswith("."):
                info = os.lstat(directory / entry)
                parts.append((entry, info.st_ino, info.st_mode))
    except OSError as error:
        parts.append(("error", error.errno))
    return tuple(parts)


def unusable_folder(path: Path) -> OSError | None:
    """Why ``path`` cannot be a folder to write in, seen without touching it (mkdir would only
    say "File exists", which reads as if the write had met a leftover)."""
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        return FileNotFoundError(
            errno.ENOENT,
            f"a symbolic link to {target!r} that leads nowhere (missing, or a loop)",
            str(path),
        )
    if path.exists() and not path.is_dir():
        return NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    return None


def probe_writable(directory: Path) -> None:
    """Raise the ``OSError`` a write of a credential set into ``directory`` would meet (not a
    folder, no permission, read-only, full), before anyone asks the CA for a certificate that
    could then not be saved. Creates the directory if needed; leaves nothing behind."""
    problem = unusable_folder(directory)
    if problem is not None:
        raise problem
    directory.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix="..probe.", dir=directory))
    try:
        fd = os.open(probe / "probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 8192)  # about the size of a credential set
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
