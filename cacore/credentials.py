"""Which files or Secret keys hold a credential set, with which owner and modes: a pure mapping
from an issuance to bytes."""

from __future__ import annotations

from dataclasses import dataclass

from cacore.response import IssuedCertificate


@dataclass(frozen=True)
class Ownership:
    """Owner and modes of the files of a credential set (``None``: the writer's own)."""

    uid: int | None = None
    gid: int | None = None
    file_mode: int = 0o644
    private_mode: int = 0o600
    dir_mode: int = 0o755


DEFAULT_OWNERSHIP = Ownership()


@dataclass(frozen=True)
class Process:
    """Who the writing process is, for deciding what it may do with files: its effective uid
    and gid, its supplementary groups and its effective capabilities (names without ``CAP_``)."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()
    capabilities: frozenset[str] = frozenset()

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


_READ = {"owner": 0o400, "group": 0o040, "other": 0o004}


def _can_read(process: Process, uid: int, gid: int, mode: int) -> bool:
    if {"DAC_OVERRIDE", "DAC_READ_SEARCH"} & process.capabilities:
        return True
    if uid == process.uid:
        return bool(mode & _READ["owner"])
    if process.in_group(gid):
        return bool(mode & _READ["group"])
    return bool(mode & _READ["other"])


def ownership_problem(owner: Ownership, process: Process) -> tuple[str, str] | None:
    """Why a writer running as ``process`` could not keep a credential set with ``owner``
    working, as (setting, message), or None. Checked at start: a set the writer cannot give away
    or cannot read back would be issued once and then never renewed (it could not tell whether
    its own files are valid)."""
    chown = "CHOWN" in process.capabilities
    if owner.uid is not None and owner.uid != process.uid and not chown:
        return (
            "uid",
            f"the process runs as uid {process.uid} without the CHOWN capability, so it cannot "
            f"give its files to uid {owner.uid}: run it as uid {owner.uid}, add the CHOWN "
            "capability, or leave the uid unset and share a group (gid, key mode 0640)",
        )
    if owner.gid is not None and not process.in_group(owner.gid) and not chown:
        return (
            "gid",
            f"the process (uid {process.uid}) is not in group {owner.gid} and lacks the CHOWN "
            f"capability, so it cannot give its files to group {owner.gid}: add it to that "
            "group (e.g. the pod's fsGroup or supplementalGroups) or add the CHOWN capability",
        )
    for setting, mode, what in (
        ("key_mode", owner.private_mode, "private key"),
        ("file_mode", owner.file_mode, "certificate files"),
    ):
        if not mode & _READ["owner"]:
            return (
                setting,
                f"{mode:04o} does not let even the files' owner read the {what}; use 0600 or "
                "0640 for a key, 0644 for certificates",
            )
        uid = process.uid if owner.uid is None else owner.uid
        gid = process.gid if owner.gid is None else owner.gid
        if not _can_read(process, uid, gid, mode):
            return (
                setting,
                f"{mode:04o} on files owned by {uid}:{gid} leaves this process (uid "
                f"{process.uid}, gid {process.gid}) unable to read its own {what} back, so it "
                "could never check or renew them: give it read access through the group (set "
                "the gid to one of its groups and the mode to 0640), or run it as that uid",
            )
    # The writer owns its version folders; it must list and enter them to read its set back.
    bypass = {"DAC_OVERRIDE", "DAC_READ_SEARCH"} & process.capabilities
    if owner.dir_mode & 0o500 != 0o500 and not bypass:
        return (
            "dir_mode",
            f"{owner.dir_mode:04o} does not let this process (the version folders' owner) list "
            "and enter its own version folders; use 0755, or 0750 with a shared gid",
        )
    return None


@dataclass(frozen=True)
class FileNames:
    """Names of the files written for one credential set; ``None`` leaves a file out."""

    key: str = "tls.key"
    certificate: str = "tls.crt"
    ca_bundle: str = "ca.crt"
    # The names the serverless CA's own client scripts write, for apps already configured for them.
    compat_key: str | None = None
    compat_certificate: str | None = None
    compat_ca_bundle: str | None = None
    combined: str | None = None  # private key followed by the chain, for apps that want one file

    @classmethod
    def with_serverless_ca_names(cls, combined: str | None = None) -> FileNames:
        return cls(
            compat_key="client-key.pem",
            compat_certificate="client-cert.crt",
            compat_ca_bundle="ca-bundle.pem",
            combined=combined,
        )

    def all(self) -> set[str]:
        """Every file name of the set."""
        return {
            n
            for n in (
                self.key,
                self.certificate,
                self.ca_bundle,
                self.compat_key,
                self.compat_certificate,
                self.compat_ca_bundle,
                self.combined,
            )
            if n
        }

    def private(self) -> set[str]:
        """Files that hold the private key and must stay 0600."""
        return {n for n in (self.key, self.compat_key, self.combined) if n}


def credential_files(
    key_pem: bytes, issued: IssuedCertificate, names: FileNames = FileNames()
) -> dict[str, bytes]:
    """File name -> content for one issuance. ``tls.crt`` is leaf then issuing CA; ``ca.crt`` is
    issuing then root, the Kubernetes ``kubernetes.io/tls`` Secret convention."""
    files = {
        names.key: key_pem,
        names.certificate: issued.chain_pem,
        names.ca_bundle: issued.ca_bundle_pem,
    }
    optional = {
        names.compat_key: key_pem,
        names.compat_certificate: issued.chain_pem,
        names.compat_ca_bundle: issued.ca_bundle_pem,
        names.combined: key_pem + issued.chain_pem,
    }
    files.update({name: content for name, content in optional.items() if name})
    return files
