"""The credential set is published all at once, with the right modes, or not at all."""

import os
import stat
import subprocess

import pytest
from support.pki import MiniCA

from cacore.credentials import FileNames, credential_files
from cacore.edge.files import (
    DATA_LINK,
    AtomicDirectoryWriter,
    Ownership,
    read_credential_set,
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
