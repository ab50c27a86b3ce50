"""``ca-cert issue``: key, CSR, call, verification, then the files, all or nothing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cacore.certinfo import subject_fields, summarize
from cacore.credentials import FileNames, Ownership, credential_files
from cacore.csr import load_csr
from cacore.edge.client import CAClient
from cacore.edge.files import AtomicDirectoryWriter
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
        help="certify this PEM CSR instead of making a key (subject defaults come from it)",
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
        type=int,
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
    cap = getattr(args, "max_lifetime_days", DEFAULT_MAX_LIFETIME_DAYS)
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


def run(args: argparse.Namespace, client: CAClient) -> list[str]:
    """Issue and write; returns the summary lines. Nothing is written unless all succeeded."""
    names = FileNames.with_serverless_ca_names() if args.serverless_ca_names else FileNames()
    if args.csr:
        csr_pem = args.csr.read_bytes()
        request = with_subject_defaults(
            request_from_args(args, validated=False),
            **subject_fields(load_csr(csr_pem, "--csr").subject),
        )
        issued = client.issue_csr(validate_as_flags(request, client.max_lifetime_days), csr_pem)
        files = credential_files(b"", issued, names)
        files = {name: data for name, data in files.items() if name not in names.private()}
        seconds_text, key_text = "", "your own key"
    else:
        request = request_from_args(args)
        spec = parse_key_spec(args.key_algorithm, "--key-algorithm")
        issuance = client.issue_with_new_key(request, spec)
        issued = issuance.certificate
        files = credential_files(private_key_pem(issuance.key), issued, names)
        seconds_text, key_text = f" in {issuance.seconds * 1000:.0f} ms", f"{spec} key"
    out: Path = args.out
    created = not out.exists()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created:
        os.chmod(out, 0o700)
    AtomicDirectoryWriter(out, Ownership(dir_mode=0o700)).write(files, names.private())
    summary = summarize(issued.certificate)
    return [
        f"issued {summary.common_name}{seconds_text} ({key_text})",
        *summary.lines(),
        f"files:       {', '.join(str(out / name) for name in sorted(files))}",
    ]
