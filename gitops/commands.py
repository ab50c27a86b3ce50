"""One function per subcommand: read, call the pure parts, write. Each returns (exit code, text),
the code from ``cacore.exitcodes``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from cacore import csr as csrs
from cacore import exitcodes
from cacore.certinfo import chain_problem, load_certificate, split_pem_certificates
from cacore.config import check_endpoint_url
from cacore.csr import MAX_CSR_BYTES
from cacore.edge.cliopts import access_from_args, config_from_args
from cacore.edge.files import TooLarge, read_limited, unusable_folder, write_file_atomic
from cacore.errors import CAError, InvalidRequest
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS, parse_sans
from gitops import issuing, jsontext, report
from gitops import problems as p
from gitops.errors import GitopsError, UsageError
from gitops.layout import (
    EnvLayout,
    check_env_name,
    check_project_name,
    csr_file_name,
    display,
    environments,
    function_name,
    table_name,
)
from gitops.records import IssuedRecord, newest, newest_valid, parse_serial
from gitops.validation import EnvState, check_state, read_state

if TYPE_CHECKING:
    from cacore.edge.client import LambdaTransport
    from gitops.ca_table import CATable

_PUBLIC = 0o644  # everything in the tree and every fetched file is public material
MAX_INPUT_BYTES = 1024 * 1024  # a CSR or a CA bundle given on the command line
STDIN = "-"  # add's CSR from standard input


def _layout(root: Path, env: str) -> EnvLayout:
    return EnvLayout(root, check_env_name(env))


def _existing_env(root: Path, env: str) -> EnvLayout:
    layout = _layout(root, env)
    if layout.tls_json.is_dir():
        raise UsageError(
            f"--env: {display(layout.tls_json)} is a folder, not a file; move it away and run "
            f"certs-gitops init --env {env}"
        )
    if not layout.tls_json.is_file():
        raise UsageError(
            f"--env: {display(layout.tls_json)} does not exist; create it with "
            f"certs-gitops init --env {env} (or pass --root)"
        )
    return layout


# --- validate ---------------------------------------------------------------------------------


def validate(
    root: Path,
    envs: list[str] | None,
    fmt: str,
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
) -> tuple[int, str]:
    names = envs or environments(root)
    if not names:
        raise UsageError(
            f"--root: no environment with a tls.json under {display(root)}; run from the CA "
            "repository root, pass --root, or create one with certs-gitops init --env dev"
        )
    problems: list[p.Problem] = []
    for env in names:
        problems += check_state(read_state(_existing_env(root, env), max_lifetime_days)).problems
    return (exitcodes.FAILED if p.has_errors(problems) else exitcodes.OK), report.render(
        problems, fmt, names
    )


# --- init -------------------------------------------------------------------------------------


def init(root: Path, env: str, ca_bundle: Path | None) -> tuple[int, str]:
    layout = _layout(root, env)
    created = []
    for folder in (root, layout.directory, layout.csr_dir):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--root: {display(folder)} is a file, not a folder; move it away")
    layout.csr_dir.mkdir(parents=True, exist_ok=True)
    keep = layout.csr_dir / ".gitkeep"  # git keeps no empty folders
    files = {
        keep: b"",
        layout.tls_json: b"[]\n",
        layout.revoked_json: b"[]\n",
        layout.revoked_root_json: b"[]\n",
    }
    if ca_bundle is not None:
        data = _read_input(ca_bundle, "--ca-bundle")
        found = check_state(EnvState(layout, tls_text="[]", ca_bundle=data)).problems
        if found:
            raise UsageError(f"--ca-bundle: {display(ca_bundle)} {found[0].message}")
        files[layout.ca_bundle] = data
    for path, content in files.items():
        if path.is_dir() and path != keep:
            raise UsageError(
                f"--env: {display(path)} is a folder, not a file; move it away and run init again"
            )
        if os.path.lexists(path):
            continue
        write_file_atomic(path, content, _PUBLIC)
        created.append(display(path))
    if not created:
        return exitcodes.OK, f"{display(layout.directory)} is already set up; nothing changed"
    return exitcodes.OK, "created:\n" + "\n".join(f"  {name}" for name in created)


def _read_input(path: Path, option: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    if str(path) == STDIN:  # a CSR pasted from a partner's mail: `pbpaste | certs-gitops add -`
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise UsageError(f"{option}: standard input is larger than {limit} bytes")
        return data
    try:
        return read_limited(path, limit)
    except TooLarge as error:
        raise UsageError(f"{option}: {display(path)} is larger than {limit} bytes") from error
    except OSError as error:
        raise UsageError(
            f"{option}: cannot read {display(path)}: {error.strerror or error}"
        ) from error


# --- add --------------------------------------------------------------------------------------


def _san_json(sans: tuple) -> list:
    if all(san.type == "DNS_NAME" for san in sans):
        return [san.value for san in sans]
    return [{"type": san.type, "value": san.value} for san in sans]


def new_entry(args: argparse.Namespace, csr: x509.CertificateSigningRequest, name: str) -> dict:
    """The tls.json entry: options win, the CSR fills the rest (explicit, so reviewers see it)."""
    from_csr = csrs.subject_fields(csr)
    entry: dict[str, object] = {}
    common_name = args.common_name or from_csr.get("common_name")
    if not common_name:
        raise UsageError("--common-name: the CSR has no common name (CN); give one")
    entry["common_name"] = common_name
    for field in ("organization", "organizational_unit", "locality", "state", "country"):
        value = getattr(args, field) or from_csr.get(field)
        if value:
            entry[field] = value
    email = args.email_address or from_csr.get("email_address")
    if email:
        entry["email_address"] = email
    if args.san:
        sans = tuple(s for text in args.san for s in parse_sans(text, "--san"))
    else:
        sans = csrs.requested_sans(csr)
    if sans:
        entry["sans"] = _san_json(sans)
    entry["purposes"] = args.purposes or ["client_auth"]
    if args.ekus:
        entry["extended_key_usages"] = args.ekus
    entry["lifetime"] = args.lifetime
    entry["csr_file"] = name
    return entry


def add(args: argparse.Namespace) -> tuple[int, str]:
    layout = _existing_env(args.root, args.env)
    pem = _read_input(args.csr, "csr", MAX_CSR_BYTES)
    try:
        csr = csrs.read_csr(pem, "standard input" if str(args.csr) == STDIN else display(args.csr))
    except InvalidRequest as error:
        raise UsageError(str(error)) from error
    state = read_state(layout, int(args.max_lifetime_days))
    _refuse_unusable(state, layout.tls_json)
    if state.tls_text is None:  # pragma: no cover - _existing_env checked it
        raise UsageError(f"--env: {display(layout.tls_json)} is missing")
    name = args.name or csr_file_name(
        args.common_name or csrs.subject_fields(csr).get("common_name", "")
    )
    if not name.endswith(".csr"):
        raise UsageError(f"--name: {name!r} must end in .csr")
    existing = state.csrs.get(name)
    if existing is not None and existing != pem:
        raise UsageError(
            f"--name: {display(layout.csr(name))} already exists with another CSR; "
            "choose another file name with --name"
        )
    entry = new_entry(args, csr, name)
    try:
        new_text = jsontext.append_to_array(state.tls_text, entry)
    except ValueError as error:
        raise GitopsError(
            f"{display(layout.tls_json)}: {error}; fix it first (validate)"
        ) from error
    before = {pr.identity() for pr in check_state(state).problems}
    after = check_state(state.with_changes(new_text, name, pem)).problems
    introduced = [pr for pr in after if pr.is_error and pr.identity() not in before]
    if introduced:
        lines = [report.human(pr) for pr in introduced]
        lines.append("refused: nothing was written; fix the CSR or the options and run add again")
        return exitcodes.FAILED, "\n".join(lines)
    rendered = json.dumps(entry, indent=2)
    if args.dry_run:
        return exitcodes.OK, f"would add to {display(layout.tls_json)}:\n{rendered}"
    if existing is None:
        write_file_atomic(layout.csr(name), pem, _PUBLIC)
    write_file_atomic(layout.tls_json, new_text.encode(), _PUBLIC)
    return exitcodes.OK, (
        f"added {display(layout.csr(name))} and this entry to {display(layout.tls_json)}:\n"
        f"{rendered}\nnext: commit both on a branch and open a pull request"
    )


# --- table and CA helpers -------------------------------------------------------------------


def _refuse_unusable(state: EnvState, path: Path) -> None:
    """Stop before editing a file of the tree that cannot be read as it is."""
    problem = state.unusable.get(path)
    if problem is not None:
        raise GitopsError(
            f"{display(path)}:{problem.line}:{problem.col}: {problem.message}; fix it first "
            "(certs-gitops validate shows every problem)"
        )


def _table(args: argparse.Namespace, layout: EnvLayout) -> CATable:
    from gitops.ca_table import CATable

    name = args.table or table_name(check_project_name(args.project), layout.env)
    endpoint = check_endpoint_url(args.dynamodb_endpoint_url, "dynamodb_endpoint_url")
    timeout = float(getattr(args, "timeout", 60))  # revoke has no --timeout: the table only
    return CATable(name, access_from_args(args), endpoint, timeout=timeout)


def _invoker(args: argparse.Namespace, layout: EnvLayout) -> LambdaTransport:
    from cacore.edge.client import LambdaTransport

    function = (
        args.function
        or os.environ.get("CA_FUNCTION")
        or function_name(check_project_name(args.project), layout.env)
    )
    return LambdaTransport(
        config_from_args(argparse.Namespace(**{**vars(args), "function": function}))
    )


def _revoked_serials(
    state: EnvState, layout: EnvLayout, common_name: str | None = None
) -> set[str]:
    """Serials listed in revoked.json (for one name, or all); an unreadable file lists none,
    ``validate`` reports it."""
    try:
        values = json.loads(state.revoked_texts.get(layout.revoked_json) or "[]")
    except (ValueError, RecursionError):
        return set()
    if not isinstance(values, list):
        return set()
    return {
        str(v.get("serial_number"))
        for v in values
        if isinstance(v, dict) and common_name in (None, v.get("common_name"))
    }


# --- issue ------------------------------------------------------------------------------------


def issue(args: argparse.Namespace, now: datetime) -> tuple[int, str]:
    layout = _existing_env(args.root, args.env)
    state = read_state(layout, int(args.max_lifetime_days))
    result = check_state(state)
    errors = [pr for pr in result.problems if pr.is_error]
    if errors:
        lines = [report.human(pr) for pr in errors]
        lines.append(f"refused: {len(errors)} error(s); certs-gitops validate must pass first")
        return exitcodes.FAILED, "\n".join(lines)
    table = None if args.no_table else _table(args, layout)
    invoker = None if args.dry_run else _invoker(args, layout)
    outcomes = issuing.run(
        result.entries,
        table.records if table is not None else None,
        invoker,
        now,
        _revoked_serials(state, layout),
        args.dry_run,
        int(args.max_lifetime_days),
    )
    failed = any(o.status == issuing.FAILED for o in outcomes)
    if args.format == "json":
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        body = {"ok": not failed, "dry_run": args.dry_run, "counts": counts}
        body["entries"] = [o.as_dict() for o in outcomes]
        return (exitcodes.FAILED if failed else exitcodes.OK), json.dumps(body, indent=2)
    rows = [
        (
            str(o.index),
            o.common_name,
            o.csr_file,
            o.status,
            o.serial or "-",
            o.not_after or "-",
            o.detail,
        )
        for o in outcomes
    ]
    header = ("#", "common name", "csr file", "status", "serial", "not after", "detail")
    text = report.table(rows, header) if rows else "no entries in tls.json"
    tally = ", ".join(
        f"{sum(1 for o in outcomes if o.status == s)} {s}"
        for s in issuing.STATUSES
        if any(o.status == s for o in outcomes)
    )
    prefix = "dry run: " if args.dry_run else ""
    return (
        exitcodes.FAILED if failed else exitcodes.OK
    ), f"{text}\n{prefix}{tally or 'nothing to do'}"


# --- fetch ------------------------------------------------------------------------------------


def _pick(
    records: list[IssuedRecord], serial: str | None, now: datetime, revoked: set[str], cn: str
) -> IssuedRecord:
    if serial is not None:
        for record in records:
            if record.serial == serial:
                if record.certificate is None:
                    raise GitopsError(f"serial {serial} of {cn!r} is unreadable: {record.problem}")
                return record
        raise GitopsError(
            f"--serial: {serial} is not on record for {cn!r}; {_listing(records, now, revoked)}"
        )
    chosen = newest_valid(records, now, revoked)
    if chosen is None:
        raise GitopsError(
            f"no valid certificate for {cn!r}; {_listing(records, now, revoked)}; "
            "pass --serial to fetch one of them anyway"
        )
    return chosen


def _listing(records: list[IssuedRecord], now: datetime, revoked: set[str]) -> str:
    if not records:
        return "the table has no certificate for that name (check the name, --env and --table)"
    items = [f"{r.serial} ({r.state(now, revoked)}, expires {r.expires})" for r in newest(records)]
    return "on record: " + ", ".join(items)


def _ca_bundle(args: argparse.Namespace, layout: EnvLayout) -> tuple[bytes, str]:
    if args.ca_bundle is not None:
        return _read_input(args.ca_bundle, "--ca-bundle"), display(args.ca_bundle)
    if layout.ca_bundle.is_file():
        return _read_input(layout.ca_bundle, "ca-bundle.pem"), display(layout.ca_bundle)
    from cacore.edge.client import CAClient

    try:
        chain = CAClient(_invoker(args, layout)).ca_chain()
    except CAError as error:
        raise GitopsError(
            f"no CA bundle: {display(layout.ca_bundle)} does not exist and the CA function did "
            f"not return its chain ({error.reason}: {error}); commit the CA's published "
            f"<project>-ca-bundle-{layout.env}.pem as {display(layout.ca_bundle)} "
            "or pass --ca-bundle"
        ) from error
    return chain.issuing_ca_pem + chain.root_ca_pem, "the CA function (ca_chain_only)"


def order_bundle(leaf: x509.Certificate, bundle_pem: bytes) -> list[bytes]:
    """The bundle's certificates from the leaf's issuer up to the root, whatever order the file
    has (the CA publishes root first; a TLS chain and ``ca.crt`` go issuing first)."""
    blocks = split_pem_certificates(bundle_pem)
    by_subject = {load_certificate(b).subject: b for b in blocks}
    ordered: list[bytes] = []
    issuer = leaf.issuer
    while issuer in by_subject and len(ordered) < len(blocks):
        block = by_subject[issuer]
        ordered.append(block)
        cert = load_certificate(block)
        if cert.issuer == cert.subject:
            break
        issuer = cert.issuer
    return ordered


def fetch(args: argparse.Namespace, now: datetime) -> tuple[int, str]:
    layout = _existing_env(args.root, args.env)
    state = read_state(layout)
    serial = None
    if args.serial is not None:
        try:
            serial = parse_serial(args.serial)
        except ValueError as error:
            raise UsageError(f"--serial: {error}") from error
    out = args.out or Path(csr_file_name(args.common_name)[: -len(".csr")])
    unusable = unusable_folder(out)  # before the table is read: say it at once
    if unusable is not None:
        raise UsageError(f"--out: {display(out)} is {unusable.strerror}; choose a folder")
    records = _table(args, layout).records(args.common_name)
    revoked = _revoked_serials(state, layout, args.common_name)
    record = _pick(records, serial, now, revoked, args.common_name)
    leaf_pem = record.certificate_pem or b""
    leaf = load_certificate(leaf_pem)
    bundle_pem, source = _ca_bundle(args, layout)
    try:
        chain = order_bundle(leaf, bundle_pem)
    except ValueError as error:
        raise GitopsError(f"CA bundle from {source} does not parse: {error}") from error
    issuers = [load_certificate(b) for b in chain]
    problem = chain_problem(leaf, issuers) if chain else "its issuer is not in the bundle"
    if problem:
        raise GitopsError(
            f"serial {record.serial} does not chain to the CA bundle from {source}: {problem}; "
            "is the bundle for this environment?"
        )
    files = {
        "certificate.pem": leaf_pem,
        "chain.pem": leaf_pem + chain[0],
        "ca-bundle.pem": b"".join(chain),
    }
    for name, content in files.items():
        write_file_atomic(out / name, content, _PUBLIC)
    state_now = record.state(now, revoked)
    files_written = [display(out / name) for name in files]
    summary: dict[str, object] = {
        "common_name": args.common_name,
        "serial": record.serial,
        "state": state_now,
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "ca_bundle_from": source,
        "files": files_written,
    }
    if args.format == "json":
        return exitcodes.OK, json.dumps(summary, indent=2)
    lines = [
        f"{key.replace('_', ' ')}: {value}" for key, value in summary.items() if key != "files"
    ]
    lines.append("wrote: " + ", ".join(files_written))
    return exitcodes.OK, "\n".join(lines)


# --- revoke -----------------------------------------------------------------------------------


def revoke(args: argparse.Namespace, now: datetime) -> tuple[int, str]:
    layout = _existing_env(args.root, args.env)
    try:
        serial = parse_serial(args.serial)
    except ValueError as error:
        raise UsageError(f"serial: {error}") from error
    state = read_state(layout)
    _refuse_unusable(state, layout.revoked_json)
    text = state.revoked_texts.get(layout.revoked_json)
    if text is None:
        text = "[]\n"
    revoked_file = display(layout.revoked_json)
    found = check_state(EnvState(layout, tls_text="[]", revoked_texts={layout.revoked_json: text}))
    if found.problems:
        raise GitopsError(f"{report.human(found.problems[0])}; fix {revoked_file} first")
    if serial in _revoked_serials(state, layout, args.common_name):
        return (
            0,
            f"serial {serial} of {args.common_name!r} is already in {revoked_file}; "
            "nothing changed",
        )
    table = _table(args, layout)
    record = table.record(args.common_name, serial)
    if record is None:
        records = table.records(args.common_name)
        listing = _listing(records, now, set())
        raise GitopsError(f"serial {serial} was never issued to {args.common_name!r}: {listing}")
    new_text = jsontext.append_to_array(
        text, {"common_name": args.common_name, "serial_number": serial}
    )
    write_file_atomic(layout.revoked_json, new_text.encode(), _PUBLIC)
    return exitcodes.OK, (
        f"added serial {serial} of {args.common_name!r} (expires {record.expires}) to "
        f"{revoked_file}\nnext: commit it and open a pull request; the CA pipeline publishes "
        "the CRL after the merge"
    )
