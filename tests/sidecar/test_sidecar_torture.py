"""The credential set under stress: readers racing hundreds of renewals, and a disk that fills
up or turns read-only under the sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sidecar_process import Sidecar, run_mode
from support.fault_tables import fill

from cacore.edge.files import AtomicDirectoryWriter, read_credential_set

# Every certificate is due at once (86690 s before expiry of a 86700 s validity), no floor.
ALWAYS_DUE = {
    "lifetime_days": 1,
    "renewal_point": "86690s",
    "jitter": 0,
    "min_renewal_interval": "0",
}
RENEWALS = 200

# A reader as an application following docs/sidecar.md would write it. Three ways of reading:
#  - "set": resolve ..data once, then read key and certificate from that version;
#  - "combined": the key + chain file, one open;
#  - "names": tls.key then tls.crt through the visible names (a key/cert mismatch is possible
#    there if a swap falls between the two opens, so it only counts missing files).
READER = r"""
import json, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
directory, stop = sys.argv[1], sys.argv[2]

def pub(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)

def matches(key_pem, cert_pem):
    key = serialization.load_pem_private_key(key_pem, password=None)
    return pub(key) == pub(x509.load_pem_x509_certificate(cert_pem))

def read(path):
    with open(path, "rb") as handle:
        return handle.read()

counts = {"reads": 0, "mismatches": 0, "missing": 0, "names_mismatches": 0, "versions": set()}
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        version = os.readlink(os.path.join(directory, "..data"))
    except FileNotFoundError:
        continue  # nothing published yet
    counts["versions"].add(version)
    try:
        key = read(os.path.join(directory, version, "tls.key"))
        cert = read(os.path.join(directory, version, "tls.crt"))
        combined = read(os.path.join(directory, "combined.pem"))
        names_key = read(os.path.join(directory, "tls.key"))
        names_cert = read(os.path.join(directory, "tls.crt"))
    except FileNotFoundError:
        counts["missing"] += 1
        continue
    counts["reads"] += 1
    counts["mismatches"] += not matches(key, cert)
    counts["mismatches"] += not matches(combined, combined)
    counts["names_mismatches"] += not matches(names_key, names_cert)
counts["versions"] = len(counts["versions"])
print(json.dumps(counts), flush=True)
"""


def test_readers_never_see_a_torn_or_missing_set_across_200_renewals(ca, tmp_path):
    out = tmp_path / "certs"
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(out), str(stop)], stdout=subprocess.PIPE, text=True
    )
    reader.stdout.readline()
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        common_name="torture.example.com",
        output_dir=out,
        combined_file="combined.pem",
        log_level="info",
        **ALWAYS_DUE,
    ).start()
    try:
        sidecar.issued(count=RENEWALS + 1, timeout=150)
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()
        stop.touch()
    counts = json.loads(reader.communicate(timeout=30)[0])
    print("reader:", counts)
    assert counts["mismatches"] == 0
    assert counts["missing"] == 0
    assert counts["reads"] > RENEWALS
    assert counts["versions"] > RENEWALS / 4, "the reader must have raced many swaps"
    # Replaced versions are kept for slow readers, but only the newest few.
    versions = [p for p in out.iterdir() if p.name.startswith("..2")]
    assert len(versions) <= AtomicDirectoryWriter(out).max_kept + 1


@pytest.fixture
def small_mount(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "certs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_an_unwritable_directory_keeps_the_old_set_and_says_why(ca, tmp_path, small_mount, fault):
    settings = {"common_name": "full.example.com", "output_dir": small_mount, "lifetime_days": 1}
    assert run_mode("once", ca, **settings).returncode == 0
    before = read_credential_set(small_mount)
    if fault == "disk full":
        undo_path = fill(small_mount)
        expected = "No space left on device"
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
        undo_path = None
        expected = "Read-only file system"
    sidecar = Sidecar(
        ca,
        tmp_path / "run.log",
        backoff_base="200ms",
        backoff_cap="500ms",
        renewal_point="86690s",
        jitter=0,
        **settings,
    ).start()
    try:
        failed = sidecar.wait_for_log(lambda e: e["message"] == "issuance failed", count=2)
        assert all(e["reason"] == "WriteFailed" for e in failed)
        assert expected in failed[0]["error"] and str(small_mount) in failed[0]["error"]
        assert "previous set is unchanged" in failed[0]["error"]
        assert read_credential_set(small_mount) == before
        check = run_mode("check", ca, output_dir=small_mount)
        assert check.returncode == 0, check.stderr
        if undo_path is not None:
            undo_path.unlink()
        else:
            subprocess.run(["mount", "-o", "remount,rw", str(small_mount)], check=True)
        sidecar.issued()
        assert read_credential_set(small_mount) != before
        assert sidecar.terminate() == 0
    finally:
        sidecar.stop()
