"""The credential set is published all at once, with the right modes, or not at all."""

import os
import stat
import subprocess
from pathlib import Path

import pytest
from support.pki import MiniCA

from cacore.credentials import FileNames, credential_files
from cacore.edge.files import (
    DATA_LINK,
    AtomicDirectoryWriter,
    Ownership,
    TooLarge,
    UnreadableSet,
    fingerprint,
    probe_writable,
    read_credential_set,
    read_limited,
    visible_name_problems,
    write_file_atomic,
)
from cacore.edge.keygen import generate_key
from cacore.keys import private_key_pem
from cacore.response import parse_issued

CA = MiniCA.create()


def issued_files(names=None):
    names = names or FileNames()
    key = generate_key()
    issued = parse_issued(CA.payload(CA.sign(key.public_key(), "app.example.com")))
    return credential_files(private_key_pem(key), issued, names), names


def test_tls_crt_is_leaf_then_issuing_and_ca_crt_is_issuing_then_root():
    files, _ = issued_files()
    assert set(files) == {"tls.key", "tls.crt", "ca.crt"}
    assert files["tls.crt"].count(b"BEGIN CERTIFICATE") == 2
    assert files["ca.crt"].count(b"BEGIN CERTIFICATE") == 2
    assert files["tls.key"].startswith(b"-----BEGIN PRIVATE KEY-----")


def test_serverless_ca_names_and_a_combined_file_are_optional_extras():
    files, names = issued_files(FileNames.with_serverless_ca_names(combined="combined.pem"))
    assert {"client-key.pem", "client-cert.crt", "ca-bundle.pem", "combined.pem"} <= set(files)
    assert files["combined.pem"] == files["tls.key"] + files["tls.crt"]
    assert names.private() == {"tls.key", "client-key.pem", "combined.pem"}


def test_the_set_is_published_through_one_symlink_with_modes_and_owner(tmp_path):
    files, names = issued_files()
    writer = AtomicDirectoryWriter(tmp_path, Ownership(uid=12345, gid=23456))
    writer.write(files, names.private())
    assert (tmp_path / DATA_LINK).is_symlink()
    for name, content in files.items():
        assert os.readlink(tmp_path / name) == f"{DATA_LINK}/{name}"
        assert (tmp_path / name).read_bytes() == content
        info = (tmp_path / name).stat()
        assert stat.S_IMODE(info.st_mode) == (0o600 if name in names.private() else 0o644)
        assert (info.st_uid, info.st_gid) == (12345, 23456)
    assert read_credential_set(tmp_path) == files


def test_a_rewrite_replaces_the_set_removes_the_old_version_and_reapplies_modes(tmp_path):
    writer = AtomicDirectoryWriter(tmp_path)
    first, names = issued_files()
    writer.write(first, names.private())
    os.chmod(os.path.realpath(tmp_path / "tls.key"), 0o644)  # somebody loosened it
    second, _ = issued_files()
    writer.write(second, names.private())
    assert read_credential_set(tmp_path) == second
    versions = [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith("..") and p.is_dir() and not p.is_symlink()
    ]
    assert len(versions) == 1
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600


def test_names_dropped_from_the_set_disappear(tmp_path):
    writer = AtomicDirectoryWriter(tmp_path)
    files, names = issued_files(FileNames.with_serverless_ca_names())
    writer.write(files, names.private())
    smaller, names = issued_files()
    writer.write(smaller, names.private())
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "ca.crt",
        "tls.crt",
        "tls.key",
    ]


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mounting a tmpfs needs root: {result.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_leaves_the_previous_set_intact(tiny_disk):
    writer = AtomicDirectoryWriter(tiny_disk)
    files, names = issued_files()
    writer.write(files, names.private())
    huge = dict(files, **{"tls.crt": files["tls.crt"] * 200})
    with pytest.raises(OSError) as caught:
        writer.write(huge, names.private())
    assert "No space left" in str(caught.value)
    assert read_credential_set(tiny_disk) == files
    assert len([p for p in tiny_disk.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


def test_single_files_are_replaced_atomically_with_their_mode(tmp_path):
    target = tmp_path / "sub" / "ca-bundle.pem"
    write_file_atomic(target, b"one", 0o640)
    write_file_atomic(target, b"two", 0o640)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["ca-bundle.pem"]


def test_a_replaced_version_stays_readable_for_the_grace_period_then_goes(tmp_path):
    now = [1_000_000_000.0]
    writer = AtomicDirectoryWriter(tmp_path, grace_seconds=5, clock=lambda: now[0])
    first, names = issued_files()
    old_version = writer.write(first, names.private())
    os.utime(old_version, (now[0], now[0]))
    second, _ = issued_files()
    new_version = writer.write(second, names.private())
    os.utime(new_version, (now[0], now[0]))
    now[0] += 4
    assert writer.remove_replaced_versions() == 1
    assert (old_version / "tls.key").read_bytes() == first["tls.key"]
    now[0] += 2
    assert writer.remove_replaced_versions() == 0
    assert not old_version.exists()
    assert read_credential_set(tmp_path) == second


# --- a set that is there but broken: a state to report, never an exception ----------------------


def _published(tmp_path):
    files, names = issued_files()
    AtomicDirectoryWriter(tmp_path).write(files, names.private())
    return files, names


@pytest.mark.parametrize(
    ("break_it", "said"),
    [
        (lambda d: _relink(d, "..2001_01_01_00_00_00.000000.gone"), "which does not exist"),
        (lambda d: _relink(d, DATA_LINK), "not to a version of this set"),
        (lambda d: _relink(d, "/etc"), "not to a version of this set"),
        (lambda d: _relink(d, "../outside"), "not to a version of this set"),
        (lambda d: (d / DATA_LINK).unlink() or (d / DATA_LINK).mkdir(), "is not a symbolic link"),
        (lambda d: _loop(d), "cannot read"),
        (lambda d: _grow(d, "tls.crt"), "is larger than"),
    ],
    ids=[
        "..data dangling",
        "..data to itself",
        "..data to an absolute path",
        "..data out of the directory",
        "..data a folder",
        "..data in a loop of two links",
        "a file of 2 MiB",
    ],
)
def test_a_broken_set_is_unreadable_with_a_reason(tmp_path, break_it, said):
    _published(tmp_path)
    break_it(tmp_path)
    with pytest.raises(UnreadableSet) as caught:
        read_credential_set(tmp_path)
    assert said in str(caught.value)


def _relink(directory, target):
    (directory / DATA_LINK).unlink()
    (directory / DATA_LINK).symlink_to(target)


def _loop(directory):
    (directory / DATA_LINK).unlink()
    (directory / DATA_LINK).symlink_to("..other")
    (directory / "..other").symlink_to(DATA_LINK)


def _grow(directory, name):
    path = directory / DATA_LINK / name
    path.write_bytes(path.read_bytes() * 2000)


def test_a_file_the_reader_may_not_read_is_unreadable_not_an_error():
    """As a non-root reader (root reads anything): a key chmod 000 by hand."""
    import shutil
    import sys
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="lcc-perm-"))  # /tmp, not pytest's 0700 folders
    try:
        directory.chmod(0o755)
        _published(directory)
        (directory / DATA_LINK / "tls.key").chmod(0o000)
        code = (
            "from pathlib import Path\n"
            "from cacore.edge.files import UnreadableSet, read_credential_set\n"
            "try:\n"
            f"    read_credential_set(Path({str(directory)!r}))\n"
            "except UnreadableSet as error:\n"
            "    print('unreadable:', error)\n"
        )
        user = ["setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups"]
        command = [*(user if os.geteuid() == 0 else []), sys.executable, "-c", code]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert done.stdout.startswith("unreadable: cannot read ..") and "Permission denied" in (
            done.stdout
        ), done.stdout + done.stderr
    finally:
        shutil.rmtree(directory)


def test_nothing_published_and_a_missing_directory_are_none(tmp_path):
    assert read_credential_set(tmp_path) is None
    assert read_credential_set(tmp_path / "not-there") is None


def test_the_writer_replaces_a_data_folder_and_folders_at_visible_names(tmp_path):
    files, names = _published(tmp_path)
    (tmp_path / DATA_LINK).unlink()
    (tmp_path / DATA_LINK).mkdir()
    (tmp_path / "tls.crt").unlink()
    (tmp_path / "tls.crt").mkdir()
    second, _ = issued_files()
    AtomicDirectoryWriter(tmp_path).write(second, names.private())
    assert read_credential_set(tmp_path) == second
    assert (tmp_path / "tls.crt").read_bytes() == second["tls.crt"]
    assert visible_name_problems(tmp_path, set(second)) == []


def test_visible_name_problems_and_relink(tmp_path):
    files, names = _published(tmp_path)
    (tmp_path / "tls.key").unlink()
    (tmp_path / "ca.crt").unlink()
    (tmp_path / "ca.crt").symlink_to("elsewhere")
    assert visible_name_problems(tmp_path, set(files)) == [
        "ca.crt points to 'elsewhere', not into ..data",
        "tls.key is missing",
    ]
    AtomicDirectoryWriter(tmp_path).relink(set(files))
    assert visible_name_problems(tmp_path, set(files)) == []


def test_the_fingerprint_moves_when_anything_of_the_set_moves(tmp_path):
    files, _ = _published(tmp_path)
    marks = [fingerprint(tmp_path)]
    (tmp_path / "tls.key").unlink()  # a visible name
    marks.append(fingerprint(tmp_path))
    (tmp_path / DATA_LINK / "ca.crt").write_bytes(b"rewritten in place")  # a file of the set
    marks.append(fingerprint(tmp_path))
    version = tmp_path / os.readlink(tmp_path / DATA_LINK)
    for entry in version.iterdir():
        entry.unlink()
    version.rmdir()  # the version folder
    marks.append(fingerprint(tmp_path))
    assert len(set(marks)) == len(marks)
    assert fingerprint(tmp_path) == marks[-1]  # and stays put when nothing moves


def test_probe_writable_leaves_nothing_and_raises_what_a_write_would_meet(tmp_path):
    probe_writable(tmp_path / "new" / "out")
    assert list((tmp_path / "new" / "out").iterdir()) == []
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError):  # not mkdir's "File exists": it says what is wrong
        probe_writable(tmp_path / "a-file")


@pytest.mark.parametrize("target", ["loop", "missing/folder"])
def test_probe_writable_names_a_symbolic_link_that_leads_nowhere(tmp_path, target):
    (tmp_path / "loop").symlink_to(target)
    with pytest.raises(FileNotFoundError, match="leads nowhere"):
        probe_writable(tmp_path / "loop")


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_output_that_is_a_file_is_unreadable_not_nothing_published(tmp_path, where):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UnreadableSet, match="is not a directory"):
        read_credential_set(tmp_path / where)


@pytest.mark.parametrize(
    ("path", "error"),
    [("folder", IsADirectoryError), ("/dev/zero", OSError), ("big", TooLarge)],
)
def test_read_limited_reads_regular_files_only_and_no_more_than_the_limit(tmp_path, path, error):
    (tmp_path / "folder").mkdir()
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(error):
        read_limited(tmp_path / path, 100)
    (tmp_path / "small").write_bytes(b"x" * 100)
    assert read_limited(tmp_path / "small", 100) == b"x" * 100


def test_only_the_newest_replaced_versions_are_kept_however_fast_the_renewals(tmp_path):
    now = [1_000_000_000.0]
    writer = AtomicDirectoryWriter(tmp_path, grace_seconds=60, max_kept=3, clock=lambda: now[0])
    written = []
    for _ in range(10):
        files, names = issued_files()
        written.append(writer.write(files, names.private()))
        now[0] += 0.001
    kept = sorted(p for p in tmp_path.iterdir() if p.name.startswith("..2"))
    assert kept == sorted(written[-4:])
    assert read_credential_set(tmp_path) == files
