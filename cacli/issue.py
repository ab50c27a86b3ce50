"""``ca-cert issue``: key, CSR, call, verification, then the files, all or nothing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cacore.client import CAClient
from cacore.credentials import FileNames, credential_files
from cacore.files import AtomicDirectoryWriter, Ownership
from cacore.inspect import summarize
from cacore.keys import parse_key_spec, private_key_pem
from cacore.request import CertificateRequest, Subject, parse_sans, validate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--common-name", "--cn", dest="common_name", required=True)
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        help="subject alternative name; repeat it. DNS by default, or IP:, EMAIL:, URI: prefixed",
    )
    for name in ("organization", "organizational-unit", "locality", "state", "country", "email"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--lifetime", type=int, default=30, help="days, 1 to 365 (default 30)")
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


def request_from_args(args: argparse.Namespace) -> CertificateRequest:
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
    return validate(
        CertificateRequest(
            subject=subject,
            sans=sans,
            lifetime_days=args.lifetime,
            purposes=tuple(args.purposes or ("client_auth",)),
            extended_key_usages=tuple(args.ekus),
            force_issue=args.force,
        )
    )


def run(args: argparse.Namespace, client: CAClient) -> list[str]:
    """Issue and write; returns the summary lines. Nothing is written unless all succeeded."""
    request = request_from_args(args)
    spec = parse_key_spec(args.key_algorithm, "--key-algorithm")
    issuance = client.issue_with_new_key(request, spec)
    names = FileNames.with_serverless_ca_names() if args.serverless_ca_names else FileNames()
    files = credential_files(private_key_pem(issuance.key), issuance.certificate, names)
    out: Path = args.out
    created = not out.exists()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created:
        os.chmod(out, 0o700)
    AtomicDirectoryWriter(out, Ownership(dir_mode=0o700)).write(files, names.private())
    summary = summarize(issuance.certificate.certificate)
    return [
        f"issued {summary.common_name} in {issuance.seconds * 1000:.0f} ms ({spec} key)",
        *summary.lines(),
        f"files:       {', '.join(str(out / name) for name in sorted(files))}",
    ]
