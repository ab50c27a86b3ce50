"""What is on disk, as facts: a pure function from the bytes of one credential set to
``Observed``. All parsing happens here, so the checks in ``policy`` never see raw bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from cacore.certinfo import key_matches, load_certificate
from cacore.credentials import FileNames
from cacore.keys import PrivateKey, load_private_key


@dataclass(frozen=True)
class Observed:
    """One snapshot of the output directory (``files`` None: nothing was ever published)."""

    published: bool
    unreadable: str | None = None  # something is published but cannot be read as a set
    missing: tuple[str, ...] = ()
    key: PrivateKey | None = None
    key_problem: str | None = None
    certificate: x509.Certificate | None = None
    certificate_problem: str | None = None
    key_matches: bool = False


NOTHING = Observed(published=False)


def unreadable(problem: str) -> Observed:
    """A set that is there but cannot be read (the reader's message says why)."""
    return Observed(published=True, unreadable=problem)


def observe(files: Mapping[str, bytes] | None, names: FileNames) -> Observed:
    if files is None:
        return NOTHING
    missing = tuple(n for n in (names.key, names.certificate) if n not in files)
    key = certificate = None
    key_problem = certificate_problem = None
    if names.key in files:
        try:
            key = load_private_key(files[names.key])
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            key_problem = f"{names.key} does not hold a usable private key ({error})"
    if names.certificate in files:
        try:
            # The leaf comes first; the issuing CA after it is not needed for these checks.
            certificate = load_certificate(files[names.certificate])
            certificate.not_valid_after_utc  # noqa: B018 - a bad validity fails only when read
        except ValueError as error:
            certificate = None
            certificate_problem = f"{names.certificate} does not hold a certificate ({error})"
    try:
        matches = bool(key and certificate and key_matches(certificate, key))
    except (ValueError, UnsupportedAlgorithm):  # a certificate key type cryptography cannot load
        matches = False
    return Observed(
        published=True,
        missing=missing,
        key=key,
        key_problem=key_problem,
        certificate=certificate,
        certificate_problem=certificate_problem,
        key_matches=matches,
    )
