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
