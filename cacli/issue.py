"""``ca-cert issue``: key, CSR, call, verification, then the files, all or nothing."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cacore.certinfo import subject_fields, summarize
from cacore.credentials import FileNames, Ownership, credential_files
from cacore.csr import MAX_CSR_BYTES, check_csr, load_csr
from cacore.edge.client import CAClient
from cacore.edge.cliopts import bounded
from cacore.edge.files import (
    AtomicDirectoryWriter,
    TooLarge,
    probe_writable,
    read_limited,
    unusable_folder,
)
from cacore.errors import InvalidRequest
from cacore.keys import parse_key_spec, private_key_pem
from cacore.request import (
    DEFAULT_MAX_LIFETIME_DAYS,
    CertificateRequest,
    Subject,
    parse_sans,
    validate,
    with_subject_defaults,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--common-name", "--cn", dest="common_name", default="")
    parser.add_argument(
        "--csr",
        type=Path,
        help="certify this PEM CSR instead of making a key (subject defaults come from it); "
        "- reads it from standard input",
    )
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        help="subject alternative name; repeat it. DNS by default, or IP:, EMAIL:, URI: prefixed",
    )
    for name in ("organization", "organizational-unit", "locality", "state", "country", "email"):
        parser.add_argument(f"--{name}")
    parser.add_argument(
        "--lifetime",
        type=bounded(int, -(10**9), 10**9, "a whole number of days"),
        default=30,
        help="days, 1 to the CA's maximum (--max-lifetime-days, 365 by default); default 30",
    )
    parser.add_argument(
        "--purpose",
        action="append",
        dest="purposes",
        help="client_auth (default) or server_auth; repeat for both",
    )
    parser.add_argument("--extended-key-usage", action="append", dest="ekus", default=[])
    parser.add_argument(
        "--key-algorithm", default="ecdsa-p256", help="ecdsa-p256, ecdsa-p384, rsa-2048..."
    )
    parser.add_argument("--force", action="store_true", help="ask the CA to skip its reuse checks")
    parser.add_argument("--out", type=Path, default=Path("certs-out"), help="output directory")
    parser.add_argument(
        "--serverless-ca-names",
        action="store_true",
        help="also write client-key.pem, client-cert.crt and ca-bundle.pem",
    )


def request_from_args(args: argparse.Namespace, validated: bool = True) -> CertificateRequest:
    subject = Subject(
        common_name=args.common_name,
        organization=args.organization,
        organizational_unit=args.organizational_unit,
        locality=args.locality,
        state=args.state,
        country=args.country,
        email_address=args.email,
    )
    sans = tuple(san for text in args.san for san in parse_sans(text, "--san"))
    request = CertificateRequest(
        subject=subject,
        sans=sans,
        lifetime_days=args.lifetime,
        purposes=tuple(args.purposes or ("client_auth",)),
        extended_key_usages=tuple(args.ekus),
        force_issue=args.force,
    )
    cap = int(getattr(args, "max_lifetime_days", DEFAULT_MAX_LIFETIME_DAYS))
    return validate_as_flags(request, cap) if validated else request


_FLAGS = {
    "common_name": "--common-name",
    "lifetime": "--lifetime",
    "purposes": "--purpose",
    "extended_key_usages": "--extended-key-usage",
    "organizational_unit": "--organizational-unit",
    "email_address": "--email",
}


def validate_as_flags(
    request: CertificateRequest, max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS
) -> CertificateRequest:
    """``validate``, with errors naming the flag the user typed rather than the event field."""
    try:
        return validate(request, max_lifetime_days)
    except InvalidRequest as error:
        field = error.field
        flag = "--san" if field.startswith("sans") else _FLAGS.get(field, f"--{field}")
        raise InvalidRequest(flag, error.message.split(": ", 1)[1]) from error


def read_csr_file(path: Path) -> bytes:
    """The CSR file's bytes (``-``: standard input), or ``InvalidRequest`` for ``--csr`` saying
    why it cannot be read (missing, a folder, a device, too large, no permission)."""
    if str(path) == "-":
        data = sys.stdin.buffer.read(MAX_CSR_BYTES + 1)
        if len(data) > MAX_CSR_BYTES:
            raise InvalidRequest("--csr", f"standard input holds more than {MAX_CSR_BYTES} bytes")
        return data
    try:
        return read_limited(path, MAX_CSR_BYTES)
    except FileNotFoundError as error:
        raise InvalidRequest("--csr", f"{path} does not exist") from error
    except IsADirectoryError as error:
        raise InvalidRequest("--csr", f"{path} is a folder; give the CSR file") from error
    except TooLarge as error:
        raise InvalidRequest(
            "--csr", f"{path} is larger than {MAX_CSR_BYTES} bytes; a CSR is a few kilobytes"
        ) from error
    except OSError as error:
        hint = (
            "; to read a pipe, use --csr - with it on standard input"
            if error.errno == errno.EINVAL
            else ""
        )
        raise InvalidRequest(
            "--csr", f"cannot read {path}: {error.strerror or error}{hint}"
        ) from error


def prepare_output(out: Path) -> bool:
    """Make sure the credential set can be written to ``out`` before anything is asked of the
    CA: a certificate that cannot be saved is lost, and with ``--csr`` the CA would then refuse
    that CSR's key for ever (its key-reuse guard). Returns whether the folder was created."""
    if out.exists() and not out.is_dir():
        raise InvalidRequest("--out", f"{out} is a file, not a folder; choose a folder")
    problem = unusable_folder(out)
    if problem is not None:
        raise InvalidRequest("--out", f"{out} is {problem.strerror}; choose a folder")
    created = not out.exists()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created:
            os.chmod(out, 0o700)
        probe_writable(out)
        return created
    except OSError as error:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise InvalidRequest(
            "--out",
            f"cannot write in {out}: {error.strerror or error}; choose a folder you can write to "
            "(nothing was asked of the CA)",
        ) from error


@contextlib.contextmanager
def _output(out: Path) -> Iterator[None]:
    """``out`` checked before the block; a folder made for it is removed again if the block
    fails, so a failed command leaves nothing behind."""
    created = prepare_output(out)
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


WRITE_ATTEMPTS = 3


def save(out: Path, files: dict[str, bytes], private: set[str]) -> Path:
    """Write the set to ``out``, trying a few times; when that still fails, to a private rescue
    folder, so a certificate the CA issued is never thrown away. Returns where it went."""
    writer = AtomicDirectoryWriter(out, Ownership(dir_mode=0o700))
    for attempt in range(WRITE_ATTEMPTS):
        try:
            writer.write(files, private)
            return out
        except OSError as error:
            failure = error
            time.sleep(0.2 * (attempt + 1))
    try:
        rescue = Path(tempfile.mkdtemp(prefix="ca-cert-rescued-"))  # 0700, in $TMPDIR
        AtomicDirectoryWriter(rescue, Ownership(dir_mode=0o700)).write(files, private)
    except OSError as error:
        raise NotSaved(out, None, failure, error) from error
    raise NotSaved(out, rescue, failure)


class NotSaved(Exception):
    """The CA issued, ``--out`` could not be written even after retries; the set is safe in
    ``rescue`` (None: no rescue folder could be written either)."""

    def __init__(
        self, out: Path, rescue: Path | None, error: OSError, rescue_error: OSError | None = None
    ) -> None:
        where = (
            f"the whole set was saved in {rescue} instead: move it where it belongs"
            if rescue is not None
            else f"no rescue folder in {tempfile.gettempdir()} could be written either "
            f"({rescue_error.strerror if rescue_error else ''}); free some space and run again"
        )
        super().__init__(
            f"the CA issued the certificate, but {out} could not be written "
            f"({error.strerror or error}); {where}"
        )
        self.rescue = rescue


def run(args: argparse.Namespace, make_client: Callable[[], CAClient]) -> list[str]:
    """Check everything, issue, write; returns the summary lines. Nothing is asked of the CA
    until the request, the CSR and the output folder are known to be fine."""
    names = FileNames.with_serverless_ca_names() if args.serverless_ca_names else FileNames()
    out: Path = args.out
    if args.csr:
        csr_pem = read_csr_file(args.csr)
        csr = load_csr(csr_pem, "--csr")
        check_csr(csr, "--csr", args.common_name or None)
        request = with_subject_defaults(
            request_from_args(args, validated=False), **subject_fields(csr.subject)
        )
        request = validate_as_flags(request, int(args.max_lifetime_days))
        with _output(out):
            issued = make_client().issue_csr(request, csr_pem)
        files = credential_files(b"", issued, names)
        files = {name: data for name, data in files.items() if name not in names.private()}
        seconds_text, key_text = "", "your own key"
    else:
        request = request_from_args(args)
        spec = parse_key_spec(args.key_algorithm, "--key-algorithm")
        with _output(out):
            issuance = make_client().issue_with_new_key(request, spec)
        issued = issuance.certificate
        files = credential_files(private_key_pem(issuance.key), issued, names)
        seconds_text, key_text = f" in {issuance.seconds * 1000:.0f} ms", f"{spec} key"
    save(out, files, names.private())
    summary = summarize(issued.certificate)
    return [
        f"issued {summary.common_name}{seconds_text} ({key_text})",
        *summary.lines(),
        f"files:       {', '.join(str(out / name) for name in sorted(files))}",
    ]
