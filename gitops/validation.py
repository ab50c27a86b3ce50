"""``validate`` for one environment: every rule over the files as read, with no I/O of its own.

``read_state`` is the only part that touches the disk; ``check_state`` is pure, so ``add`` runs
the very same checks on the tree it is about to write.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509

from cacore import csr as csrs
from cacore.certinfo import load_certificates
from cacore.csr import MAX_CSR_BYTES
from cacore.edge.files import TooLarge, read_limited
from cacore.errors import InvalidRequest
from cacore.keys import public_key_bytes
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS
from gitops import jsontext
from gitops import problems as p
from gitops.layout import CA_BUNDLE, EnvLayout, display
from gitops.schema import Finding, check_entry, check_revoked_entry


@dataclass(frozen=True)
class EnvState:
    """The files of one environment, as bytes and text, keyed by the names shown to users."""

    layout: EnvLayout
    tls_text: str | None
    revoked_texts: dict[Path, str | None] = field(default_factory=dict)
    csrs: dict[str, bytes] = field(default_factory=dict)
    ca_bundle: bytes | None = None
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS  # the CA's MAX_CERT_LIFETIME
    # Files that exist but cannot be used as they are (a folder, unreadable, not UTF-8 text),
    # with where and why; their text above is None.
    unusable: dict[Path, jsontext.SyntaxProblem] = field(default_factory=dict)

    def with_changes(self, tls_text: str, csr_name: str, csr_pem: bytes) -> EnvState:
        return replace(self, tls_text=tls_text, csrs={**self.csrs, csr_name: csr_pem})


@dataclass(frozen=True)
class CheckedEntry:
    """A tls.json entry that passed every check, with its CSR."""

    index: int
    entry: dict
    csr_pem: bytes
    csr: x509.CertificateSigningRequest

    @property
    def common_name(self) -> str:
        return str(self.entry["common_name"])

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.csr.public_key())


@dataclass(frozen=True)
class Result:
    problems: list[Problem]
    entries: list[CheckedEntry]  # only the entries without errors


Problem = p.Problem


# Larger than any real tls.json (100,000 entries are about 20 MB); beyond it, not read at all.
MAX_JSON_BYTES = 256 * 1024 * 1024
MAX_BUNDLE_BYTES = 1024 * 1024


def _read(path: Path, limit: int, unusable: dict[Path, jsontext.SyntaxProblem]) -> bytes | None:
    """The file's bytes, None when it does not exist; a file that exists but cannot be read as
    a file (a folder, no permission, too large) is recorded in ``unusable`` instead."""
    try:
        return read_limited(path, limit)
    except FileNotFoundError:
        if path.is_symlink():
            unusable[path] = jsontext.SyntaxProblem(
                1, 1, f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
            )
        return None
    except IsADirectoryError:
        unusable[path] = jsontext.SyntaxProblem(1, 1, "is a folder, not a file; replace it")
    except TooLarge:
        unusable[path] = jsontext.SyntaxProblem(1, 1, f"is larger than {limit} bytes")
    except OSError as error:
        unusable[path] = jsontext.SyntaxProblem(
            1, 1, f"cannot be read: {error.strerror or error}; check its permissions"
        )
    return None


def _read_text(path: Path, unusable: dict[Path, jsontext.SyntaxProblem]) -> str | None:
    data = _read(path, MAX_JSON_BYTES, unusable)
    if data is None:
        return None
    text = jsontext.decode(data)
    if isinstance(text, jsontext.SyntaxProblem):
        unusable[path] = text
        return None
    return text


def read_state(layout: EnvLayout, max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS) -> EnvState:
    unusable: dict[Path, jsontext.SyntaxProblem] = {}
    csr_files: dict[str, bytes] = {}
    try:
        listing = sorted(layout.csr_dir.iterdir()) if layout.csr_dir.is_dir() else []
    except OSError as error:
        listing = []
        unusable[layout.csr_dir] = jsontext.SyntaxProblem(
            1, 1, f"cannot be listed: {error.strerror or error}; check its permissions"
        )
    if layout.csr_dir.exists() and not layout.csr_dir.is_dir():
        unusable[layout.csr_dir] = jsontext.SyntaxProblem(
            1, 1, "is a file, not the folder of CSRs; move it away and create the folder"
        )
    for entry in listing:
        if entry.name.startswith("."):
            continue
        data = _read(entry, MAX_CSR_BYTES, unusable)
        if data is not None:
            csr_files[entry.name] = data
    bundle = _read(layout.ca_bundle, MAX_BUNDLE_BYTES, unusable)
    return EnvState(
        layout=layout,
        tls_text=_read_text(layout.tls_json, unusable),
        revoked_texts={
            path: _read_text(path, unusable)
            for path in (layout.revoked_json, layout.revoked_root_json)
        },
        csrs=csr_files,
        ca_bundle=bundle,
        max_lifetime_days=max_lifetime_days,
        unusable=unusable,
    )


def _unusable(state: EnvState, path: Path, code: str = p.FILE_UNREADABLE) -> Problem | None:
    found = state.unusable.get(path)
    if found is None:
        return None
    return Problem(display(path), found.message, code, line=found.line, col=found.col)


def _locate(file: str, doc: jsontext.Document, findings: list[Finding]) -> list[Problem]:
    out = []
    for f in findings:
        line, col = doc.position(f.path)
        out.append(
            Problem(
                file=file,
                line=line,
                col=col,
                code=f.code,
                severity=f.severity,
                field=jsontext.format_path(f.path) or None,
                message=f.message,
            )
        )
    return out


def _parse_array(file: str, text: str, what: str) -> tuple[jsontext.Document | None, list[Problem]]:
    parsed = jsontext.parse(text)
    if isinstance(parsed, jsontext.SyntaxProblem):
        problem = Problem(file, parsed.message, p.JSON_SYNTAX, line=parsed.line, col=parsed.col)
        return None, [problem]
    problems = [
        Problem(
            file,
            f"key {path[-1]!r} appears twice in one object; JSON keeps only the last one silently",
            p.DUPLICATE_KEY,
            line=line,
            col=col,
            field=jsontext.format_path(path),
        )
        for path, line, col in parsed.duplicate_keys
    ]
    if not isinstance(parsed.value, list):
        problems.append(
            Problem(
                file, f"{what} must hold a JSON array [...] of entries", p.WRONG_TYPE, line=1, col=1
            )
        )
        return None, problems
    return parsed, problems


def check_state(state: EnvState) -> Result:
    layout = state.layout
    tls_file = display(layout.tls_json)
    problems: list[Problem] = []
    entries: list[CheckedEntry] = []
    unusable_tls = _unusable(state, layout.tls_json)
    if unusable_tls is not None:
        problems.append(unusable_tls)
    elif state.tls_text is None:
        problems.append(
            Problem(
                tls_file,
                f"missing; create the layout with: certs-gitops init --env {layout.env}",
                p.MISSING_KEY,
            )
        )
    else:
        doc, found = _parse_array(tls_file, state.tls_text, "tls.json")
        problems += found
        if doc is not None:
            tls_problems, entries = _check_tls(state, doc)
            problems += tls_problems
    for path, text in state.revoked_texts.items():
        if text is not None:
            problems += _check_revoked(display(path), text)
    for path, code in (
        (layout.revoked_json, p.FILE_UNREADABLE),
        (layout.revoked_root_json, p.FILE_UNREADABLE),
        (layout.csr_dir, p.FILE_UNREADABLE),
        (layout.ca_bundle, p.CA_BUNDLE),
    ):
        unusable = _unusable(state, path, code)
        if unusable is not None:
            problems.append(unusable)
    if state.ca_bundle is not None:
        problems += _check_ca_bundle(display(layout.directory / CA_BUNDLE), state.ca_bundle)
    return Result(problems, entries)


def _check_tls(state: EnvState, doc: jsontext.Document) -> tuple[list[Problem], list[CheckedEntry]]:
    tls_file = display(state.layout.tls_json)
    values = doc.value
    assert isinstance(values, list)  # _parse_array returns no document otherwise
    problems: list[Problem] = []
    candidates: list[CheckedEntry] = []
    for index, entry in enumerate(values):
        entry_problems = _locate(tls_file, doc, check_entry(entry, index, state.max_lifetime_days))
        if isinstance(entry, dict) and isinstance(entry.get("csr_file"), str):
            csr_problems, csr = _check_csr(state, doc, index, entry)
            entry_problems += csr_problems
            if csr is not None and not p.has_errors(entry_problems):
                candidates.append(CheckedEntry(index, entry, state.csrs[entry["csr_file"]], csr))
        problems += entry_problems
    problems += _duplicates(tls_file, doc, values, candidates)
    flagged = {pr.field for pr in problems if pr.is_error and pr.code == p.DUPLICATE}
    entries = [c for c in candidates if f"[{c.index}]" not in flagged]
    referenced = {
        e["csr_file"] for e in values if isinstance(e, dict) and isinstance(e.get("csr_file"), str)
    }
    for name in sorted(set(state.csrs) - referenced):
        problems.append(
            Problem(
                display(state.layout.csr(name)),
                "no tls.json entry uses this CSR; add one (certs-gitops add) or delete the file",
                p.UNREFERENCED_CSR,
                severity=p.WARNING,
                line=1,
                col=1,
            )
        )
    return problems, entries


def _check_csr(
    state: EnvState, doc: jsontext.Document, index: int, entry: dict
) -> tuple[list[Problem], x509.CertificateSigningRequest | None]:
    name = entry["csr_file"]
    tls_file = display(state.layout.tls_json)
    line, col = doc.position((index, "csr_file"))
    unreadable = state.unusable.get(state.layout.csr(name))
    if unreadable is not None:
        message = f"{unreadable.message} (entry [{index}])"
        return [
            Problem(display(state.layout.csr(name)), message, p.CSR_UNREADABLE, field=f"[{index}]")
        ], None
    if name not in state.csrs:
        close = _close_csr_names(name, state.csrs)
        hint = f"; did you mean {close[0]!r}?" if close else f"; add the partner's CSR as {name}"
        message = f"{display(state.layout.csr(name))} does not exist{hint}"
        return [
            Problem(
                tls_file, message, p.CSR_MISSING, line=line, col=col, field=f"[{index}].csr_file"
            )
        ], None
    csr_file = display(state.layout.csr(name))

    def at_csr(message: str, code: str, severity: str = p.ERROR) -> Problem:
        return Problem(csr_file, f"{message} (entry [{index}])", code, severity, 1, 1, f"[{index}]")

    data = state.csrs[name]
    if len(data) > MAX_CSR_BYTES:
        return [
            at_csr(
                f"is larger than {MAX_CSR_BYTES} bytes; a CSR is a few kilobytes", p.CSR_UNREADABLE
            )
        ], None
    try:
        csr = csrs.read_csr(data, name)
    except InvalidRequest as error:
        return [at_csr(error.message.split(": ", 1)[-1], p.CSR_UNREADABLE)], None
    codes = {
        csrs.SIGNATURE: p.CSR_SIGNATURE,
        csrs.KEY: p.KEY_NOT_ALLOWED,
        csrs.NO_COMMON_NAME: p.CSR_NO_COMMON_NAME,
    }
    problems = [at_csr(message, codes[check]) for check, message in csrs.csr_problems(csr)]
    subject = csrs.subject_fields(csr)
    csr_name = subject.get("common_name")
    entry_name = entry.get("common_name")
    if isinstance(entry_name, str) and csr_name and csr_name != entry_name:
        cn_line, cn_col = doc.position((index, "common_name"))
        problems.append(
            Problem(
                tls_file,
                f"common_name {entry_name!r} differs from the CSR's {csr_name!r} ({name}); "
                "the certificate would name what the entry says: make them agree",
                p.COMMON_NAME_MISMATCH,
                line=cn_line,
                col=cn_col,
                field=f"[{index}].common_name",
            )
        )
    if "common_name" not in entry and csr_name:
        problems.append(
            Problem(
                tls_file,
                f'the CSR names {csr_name!r}: add "common_name": "{csr_name}"',
                p.MISSING_KEY,
                line=doc.position((index,))[0],
                col=doc.position((index,))[1],
                field=f"[{index}]",
            )
        )
    requested = csrs.requested_sans(csr)
    if requested and "sans" not in entry:
        names = ", ".join(san.value for san in requested)
        problems.append(
            at_csr(
                f"asks for SANs ({names}) that the CA ignores inside CSRs; copy them into the "
                "entry's sans if the partner needs them",
                p.SAN_DROPPED,
                p.WARNING,
            )
        )
    return problems, csr


# Above this many CSR files a fuzzy "did you mean" per missing file would make validate
# quadratic; a case-insensitive match is still offered.
_FUZZY_SUGGESTIONS_UP_TO = 500


def _close_csr_names(name: str, present: dict[str, bytes]) -> list[str]:
    if not present:
        return []
    if len(present) <= _FUZZY_SUGGESTIONS_UP_TO:
        return difflib.get_close_matches(name, list(present), n=1, cutoff=0.6)
    lowered = name.lower()
    return [other for other in present if other.lower() == lowered][:1]


def _duplicates(
    tls_file: str, doc: jsontext.Document, values: list, candidates: list[CheckedEntry]
) -> list[Problem]:
    problems = []
    first_with_file: dict[str, int] = {}
    for index, entry in enumerate(values):
        if not isinstance(entry, dict) or not isinstance(entry.get("csr_file"), str):
            continue
        name = entry["csr_file"]
        if name in first_with_file:
            line, col = doc.position((index, "csr_file"))
            problems.append(
                Problem(
                    tls_file,
                    f"csr_file {name!r} is already used by entry [{first_with_file[name]}]; "
                    "one CSR gets one certificate: remove one of them",
                    p.DUPLICATE,
                    line=line,
                    col=col,
                    field=f"[{index}]",
                )
            )
        else:
            first_with_file[name] = index
    first_with_key: dict[bytes, CheckedEntry] = {}
    for candidate in candidates:
        earlier = first_with_key.get(candidate.public_key)
        if earlier is None:
            first_with_key[candidate.public_key] = candidate
            continue
        if earlier.entry["csr_file"] == candidate.entry["csr_file"]:
            continue  # already reported above
        line, col = doc.position((candidate.index, "csr_file"))
        problems.append(
            Problem(
                tls_file,
                f"{candidate.entry['csr_file']} holds the same public key as "
                f"{earlier.entry['csr_file']} (entry [{earlier.index}]); every certificate needs "
                "its own key: ask the partner for a CSR with a new key",
                p.DUPLICATE,
                line=line,
                col=col,
                field=f"[{candidate.index}]",
            )
        )
    return problems


def _check_revoked(file: str, text: str) -> list[Problem]:
    doc, problems = _parse_array(file, text, file.rsplit("/", 1)[-1])
    if doc is None:
        return problems
    seen: dict[tuple[str, str], int] = {}
    assert isinstance(doc.value, list)  # _parse_array returns no document otherwise
    for index, entry in enumerate(doc.value):
        found = check_revoked_entry(entry, index)
        problems += _locate(file, doc, found)
        if found or not isinstance(entry, dict):
            continue
        pair = (entry["common_name"], entry["serial_number"])
        if pair in seen:
            line, col = doc.position((index,))
            problems.append(
                Problem(
                    file,
                    f"serial {pair[1]} of {pair[0]!r} is already listed at entry [{seen[pair]}]",
                    p.DUPLICATE,
                    line=line,
                    col=col,
                    field=f"[{index}]",
                )
            )
        else:
            seen[pair] = index
    return problems


def _check_ca_bundle(file: str, data: bytes) -> list[Problem]:
    try:
        certificates = load_certificates(data)
    except ValueError:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            why = "holds no -----BEGIN CERTIFICATE----- block"
        else:  # cryptography only says "Unable to load PEM file" and links its FAQ
            why = "a certificate in it is cut short or damaged"
        message = f"is not a PEM certificate bundle: {why}; use the CA's published bundle"
        return [Problem(file, message, p.CA_BUNDLE, line=1, col=1)]
    for cert in certificates:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            return [
                Problem(
                    file,
                    f"holds {cert.subject.rfc4514_string()}, which is not a CA certificate; "
                    "commit the CA's published <project>-ca-bundle-<env>.pem here",
                    p.CA_BUNDLE,
                    line=1,
                    col=1,
                )
            ]
    return []
