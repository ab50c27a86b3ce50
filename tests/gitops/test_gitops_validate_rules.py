"""Every validate rule, one sentence per row, over real files in a certs/ tree."""

from __future__ import annotations

import json

import pytest
from gitops_helpers import (
    DOCUMENTED_EXAMPLE,
    Tree,
    der_csr,
    ed25519_csr,
    good_entry,
    private_key_pem,
    rsa_1024_csr,
    tampered_csr,
)
from support.localca_fixtures import csr_pem
from support.pki import MiniCA, _pem

from gitops.layout import EnvLayout
from gitops.validation import check_state, read_state


def check(tree: Tree):
    return check_state(read_state(EnvLayout(tree.root, tree.env)))


def only_entry(**overrides):
    def setup(tree: Tree) -> None:
        tree.csr("partner.csr")
        tree.tls([good_entry(**overrides)])

    return setup


def with_entry(entry: dict):
    def setup(tree: Tree) -> None:
        tree.csr("partner.csr")
        tree.tls([entry])

    return setup


def with_csr(data_factory, **overrides):
    def setup(tree: Tree) -> None:
        tree.csr("partner.csr", data_factory())
        tree.tls([good_entry(**overrides)])

    return setup


def raw_tls(text: str, csr_name: str = "partner.csr"):
    def setup(tree: Tree) -> None:
        tree.csr(csr_name, csr_pem("server.example.com"))
        tree.tls(text)

    return setup


def two_entries_same_file(tree: Tree) -> None:
    tree.csr("partner.csr")
    tree.tls([good_entry(), good_entry()])


def two_files_same_key(tree: Tree) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    tree.csr("a.csr", csr_pem("partner.example.com", key))
    tree.csr("b.csr", csr_pem("partner.example.com", key))
    tree.tls([good_entry(csr_file="a.csr"), good_entry(csr_file="b.csr")])


def revoked(value):
    def setup(tree: Tree) -> None:
        tree.csr("partner.csr")
        tree.tls([good_entry()])
        tree.revoked(value)

    return setup


def leaf_as_bundle(tree: Tree) -> None:
    ca = MiniCA.create()
    from cryptography.hazmat.primitives.asymmetric import ec

    leaf = ca.sign(ec.generate_private_key(ec.SECP256R1()).public_key(), "leaf.example.com")
    tree.csr("partner.csr")
    tree.tls([good_entry()])
    tree.ca_bundle(_pem(ca.issuing) + _pem(leaf))


# (sentence id, setup, file the finding is in, code, fragment of the message, (line, col) or None)
ERROR_ROWS = [
    (
        "the documented example's missing comma is a syntax error at the next key",
        raw_tls(DOCUMENTED_EXAMPLE),
        "tls.json",
        "JsonSyntax",
        "a comma is missing after the value that ends at line 4, column 57",
        (5, 5),
    ),
    (
        "a trailing comma is a syntax error that says to remove it",
        raw_tls('[\n  {"common_name": "a.example.com", "csr_file": "partner.csr",}\n]\n'),
        "tls.json",
        "JsonSyntax",
        "remove the trailing comma",
        (2, 62),
    ),
    (
        "single quotes are a syntax error that asks for double quotes",
        raw_tls("[\n  {'common_name': 'a.example.com'}\n]\n"),
        "tls.json",
        "JsonSyntax",
        "double quotes",
        (2, 4),
    ),
    (
        "a comment is a syntax error that says JSON has none",
        raw_tls('[\n  // partner\n  {"common_name": "a"}\n]\n'),
        "tls.json",
        "JsonSyntax",
        "JSON has no comments",
        (2, 3),
    ),
    (
        "an object instead of an array is a wrong type",
        raw_tls('{"common_name": "a.example.com"}\n'),
        "tls.json",
        "WrongType",
        "must hold a JSON array",
        (1, 1),
    ),
    (
        "an entry that is not an object is a wrong type",
        raw_tls('["server.example.com"]\n'),
        "tls.json",
        "WrongType",
        "must be an object",
        (1, 2),
    ),
    (
        "a misspelt key is unknown with a did-you-mean hint",
        with_entry({**good_entry(), "common_nme": "x"}),
        "tls.json",
        "UnknownKey",
        "'common_nme' is not a tls.json key and would be ignored silently; "
        "did you mean 'common_name'?",
        None,
    ),
    (
        "a familiar alias such as san points to sans",
        with_entry({**good_entry(), "san": ["a.example.com"]}),
        "tls.json",
        "UnknownKey",
        "did you mean 'sans'?",
        None,
    ),
    (
        "a key in the wrong case points to the real one",
        with_entry({**good_entry(), "Lifetime": 30}),
        "tls.json",
        "UnknownKey",
        "did you mean 'lifetime'?",
        None,
    ),
    (
        "a key unlike any real one is unknown without a hint",
        with_entry({**good_entry(), "colour": "blue"}),
        "tls.json",
        "UnknownKey",
        "would be ignored silently",
        None,
    ),
    (
        "base64_csr_data is refused in favour of csr_file",
        with_entry({**good_entry(), "base64_csr_data": "AAAA"}),
        "tls.json",
        "InvalidValue",
        "use csr_file",
        None,
    ),
    (
        "ca_chain_only is refused because nothing would be issued",
        with_entry({**good_entry(), "ca_chain_only": True}),
        "tls.json",
        "InvalidValue",
        "instead of issuing",
        None,
    ),
    (
        "a lifetime of zero days is below the minimum",
        only_entry(lifetime=0),
        "tls.json",
        "InvalidValue",
        "choose 1 to 365",
        None,
    ),
    (
        "a lifetime above 365 days would be capped silently",
        only_entry(lifetime=400),
        "tls.json",
        "InvalidValue",
        "is 400 days; choose 1 to 365",
        None,
    ),
    (
        "a lifetime in quotes is a wrong type",
        only_entry(lifetime="365"),
        "tls.json",
        "WrongType",
        "without quotes",
        None,
    ),
    (
        "a lifetime of true is a wrong type",
        only_entry(lifetime=True),
        "tls.json",
        "WrongType",
        "whole number of days",
        None,
    ),
    (
        "an unknown purpose is refused",
        only_entry(purposes=["email"]),
        "tls.json",
        "InvalidValue",
        "'email' is unknown",
        None,
    ),
    (
        "an empty purposes list would silently become client_auth",
        only_entry(purposes=[]),
        "tls.json",
        "InvalidValue",
        "silently turns into",
        None,
    ),
    (
        "purposes as a string is a wrong type",
        only_entry(purposes="client_auth"),
        "tls.json",
        "WrongType",
        "must be a list of strings",
        None,
    ),
    (
        "an unknown extended key usage is refused",
        only_entry(extended_key_usages=["WEB_CLIENT"]),
        "tls.json",
        "InvalidValue",
        "neither a known name",
        None,
    ),
    (
        "a wildcard over a top-level domain would be dropped",
        only_entry(sans=["*.com"]),
        "tls.json",
        "SanDropped",
        "would drop this SAN silently",
        None,
    ),
    (
        "an invalid DNS name would be dropped",
        only_entry(sans=["bad_name!.example.com"]),
        "tls.json",
        "SanDropped",
        "not a valid DNS_NAME",
        None,
    ),
    (
        "a comma-separated string is one name the CA drops",
        only_entry(sans="a.example.com,b.example.com"),
        "tls.json",
        "SanDropped",
        "write a list",
        None,
    ),
    (
        "an invalid IP address SAN would be dropped",
        only_entry(sans=[{"type": "IP_ADDRESS", "value": "999.1.1.1"}]),
        "tls.json",
        "SanDropped",
        "not a valid IP_ADDRESS",
        None,
    ),
    (
        "an unknown SAN type is refused",
        only_entry(sans=[{"type": "SRV", "value": "x"}]),
        "tls.json",
        "InvalidValue",
        "SAN type 'SRV' is not one of",
        None,
    ),
    (
        "a bad name in the map form would be dropped",
        only_entry(sans={"DNS_NAME": ["*.com"]}),
        "tls.json",
        "SanDropped",
        "would drop",
        None,
    ),
    (
        "a country that is not a two-letter code is refused",
        only_entry(country="gb"),
        "tls.json",
        "InvalidValue",
        "two-letter upper-case",
        None,
    ),
    (
        "an empty organization is a wrong type",
        only_entry(organization=""),
        "tls.json",
        "WrongType",
        "non-empty string",
        None,
    ),
    (
        "a missing common name is reported because the CA would crash",
        only_entry(common_name=None),
        "tls.json",
        "MissingKey",
        "the CA crashes without it",
        None,
    ),
    (
        "a missing csr_file is reported",
        only_entry(csr_file=None),
        "tls.json",
        "MissingKey",
        "csr_file is missing",
        None,
    ),
    (
        "a csr_file with a folder is refused",
        only_entry(csr_file="../partner.csr"),
        "tls.json",
        "InvalidValue",
        "plain file name",
        None,
    ),
    (
        "a csr_file naming no file suggests the close one",
        only_entry(csr_file="partnr.csr"),
        "tls.json",
        "CsrMissing",
        "does not exist; did you mean 'partner.csr'?",
        None,
    ),
    (
        "force_issue as a string is a wrong type",
        only_entry(force_issue="yes"),
        "tls.json",
        "WrongType",
        "true or false",
        None,
    ),
    (
        "an extension with a bad OID is refused",
        only_entry(extensions=[{"oid": "abc", "value_b64": "AAA=", "critical": False}]),
        "tls.json",
        "InvalidValue",
        "dotted OID",
        None,
    ),
    (
        "an extension value that is not base64 is refused",
        only_entry(extensions=[{"oid": "1.2.3.4", "value_b64": "%%%"}]),
        "tls.json",
        "InvalidValue",
        "base64",
        None,
    ),
    (
        "a DER CSR is refused with the command to convert it",
        with_csr(der_csr),
        "partner.csr",
        "CsrUnreadable",
        "openssl req -inform DER",
        None,
    ),
    (
        "a private key in csrs/ is refused as not a CSR",
        with_csr(private_key_pem),
        "partner.csr",
        "CsrUnreadable",
        "is a PRIVATE KEY",
        None,
    ),
    (
        "a PEM that does not parse is unreadable",
        with_csr(
            lambda: (
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            )
        ),
        "partner.csr",
        "CsrUnreadable",
        "does not parse",
        None,
    ),
    (
        "a CSR whose signature does not verify fails proof of possession",
        with_csr(tampered_csr),
        "partner.csr",
        "CsrSignatureInvalid",
        "signature does not verify",
        None,
    ),
    (
        "an RSA-1024 key is not allowed",
        with_csr(rsa_1024_csr),
        "partner.csr",
        "KeyNotAllowed",
        "rsa-1024 is not allowed",
        None,
    ),
    (
        "an Ed25519 key is not allowed",
        with_csr(ed25519_csr),
        "partner.csr",
        "KeyNotAllowed",
        "Ed25519PublicKey is not allowed",
        None,
    ),
    (
        "a common name unlike the CSR's is a mismatch",
        with_csr(lambda: csr_pem("other.example.com")),
        "tls.json",
        "CommonNameMismatch",
        "differs from the CSR's 'other.example.com'",
        None,
    ),
    (
        "a missing common name names the CSR's one to add",
        with_csr(lambda: csr_pem("partner.example.com"), common_name=None),
        "tls.json",
        "MissingKey",
        'add "common_name": "partner.example.com"',
        None,
    ),
    (
        "two entries with one CSR file are duplicates",
        two_entries_same_file,
        "tls.json",
        "Duplicate",
        "already used by entry [0]",
        None,
    ),
    (
        "two CSR files with one key are duplicates",
        two_files_same_key,
        "tls.json",
        "Duplicate",
        "holds the same public key as a.csr",
        None,
    ),
    (
        "a key twice in one object is reported because JSON keeps only the last",
        raw_tls(
            '[\n  {"common_name": "a.example.com", "lifetime": 30, "lifetime": 60,\n'
            '   "csr_file": "partner.csr"}\n]\n'
        ),
        "tls.json",
        "DuplicateKey",
        "'lifetime' appears twice",
        (2, 52),
    ),
    (
        "a revoked serial written as a number is a wrong type",
        revoked([{"common_name": "a.example.com", "serial_number": 12345}]),
        "revoked.json",
        "WrongType",
        'write "12345"',
        None,
    ),
    (
        "a revoked serial in hex is refused",
        revoked([{"common_name": "a.example.com", "serial_number": "3a:5f"}]),
        "revoked.json",
        "InvalidValue",
        "decimal digits",
        None,
    ),
    (
        "a misspelt revoked.json key is unknown with a hint",
        revoked([{"common_name": "a.example.com", "serial": "1"}]),
        "revoked.json",
        "UnknownKey",
        "did you mean 'serial_number'?",
        None,
    ),
    (
        "a revoked.json entry without a serial is missing a key",
        revoked([{"common_name": "a.example.com"}]),
        "revoked.json",
        "MissingKey",
        "serial_number is missing",
        None,
    ),
    (
        "the same revocation twice is a duplicate",
        revoked([{"common_name": "a.example.com", "serial_number": "1"}] * 2),
        "revoked.json",
        "Duplicate",
        "already listed at entry [0]",
        None,
    ),
    (
        "a revoked.json with a syntax error is reported with its position",
        revoked('[\n  {"common_name": "a.example.com" "serial_number": "1"}\n]\n'),
        "revoked.json",
        "JsonSyntax",
        "comma is missing",
        (2, 35),
    ),
    (
        "a CA bundle holding a leaf certificate is refused",
        leaf_as_bundle,
        "ca-bundle.pem",
        "CaBundleInvalid",
        "not a CA certificate",
        None,
    ),
]


@pytest.mark.parametrize(
    "setup, file, code, fragment, position",
    [row[1:] for row in ERROR_ROWS],
    ids=[row[0] for row in ERROR_ROWS],
)
def test_validate_reports(tmp_path, setup, file, code, fragment, position):
    tree = Tree(tmp_path)
    setup(tree)

    errors = [p for p in check(tree).problems if p.is_error]

    matching = [p for p in errors if p.code == code and fragment in p.message]
    assert matching, f"no {code} containing {fragment!r} in {errors}"
    assert matching[0].file.endswith(file)
    if position is not None:
        assert (matching[0].line, matching[0].col) == position


WARNING_ROWS = [
    (
        "a CSR no entry uses is a warning",
        lambda tree: (tree.csr("partner.csr"), tree.csr("stray.csr"), tree.tls([good_entry()])),
        "UnreferencedCsr",
        "no tls.json entry uses this CSR",
    ),
    (
        "SANs inside the CSR without sans in the entry are a warning",
        lambda tree: (
            tree.csr(
                "partner.csr", csr_pem("partner.example.com", dns_sans=["partner.example.com"])
            ),
            tree.tls([good_entry()]),
        ),
        "SanDropped",
        "the CA ignores inside CSRs",
    ),
]


@pytest.mark.parametrize(
    "setup, code, fragment", [row[1:] for row in WARNING_ROWS], ids=[row[0] for row in WARNING_ROWS]
)
def test_validate_warns_without_failing(tmp_path, setup, code, fragment):
    tree = Tree(tmp_path)
    setup(tree)

    problems = check(tree).problems

    assert [p.severity for p in problems] == ["warning"]
    assert problems[0].code == code and fragment in problems[0].message


def test_the_documented_example_passes_once_the_comma_is_added(tmp_path):
    tree = Tree(tmp_path)
    tree.csr("server-example-com.csr", csr_pem("server.example.com"))
    tree.tls(DOCUMENTED_EXAMPLE.replace('"]\n', '"],\n', 1))

    result = check(tree)

    assert result.problems == []
    assert [e.common_name for e in result.entries] == ["server.example.com"]


def test_one_entry_reports_every_problem_at_its_own_line(tmp_path):
    tree = Tree(tmp_path)
    tree.csr("partner.csr")
    entry = good_entry(lifetime=0, purposes=["mail"], sans=["*.com"], colour="red")
    tree.tls([entry])
    lines = (tree.dir / "tls.json").read_text().splitlines()

    found = {(p.code, p.field): p.line for p in check(tree).problems}

    def line_of(key):
        return next(i for i, text in enumerate(lines, 1) if f'"{key}"' in text)

    assert found == {
        ("InvalidValue", "[0].lifetime"): line_of("lifetime"),
        ("InvalidValue", "[0].purposes[0]"): line_of("purposes") + 1,
        ("SanDropped", "[0].sans[0]"): line_of("sans") + 1,
        ("UnknownKey", "[0].colour"): line_of("colour"),
    }


def test_entries_with_errors_are_not_handed_to_issue(tmp_path):
    tree = Tree(tmp_path)
    tree.csr("partner.csr")
    tree.csr("other.csr", csr_pem("other.example.com"))
    tree.tls(
        [good_entry(lifetime=0), good_entry(common_name="other.example.com", csr_file="other.csr")]
    )

    result = check(tree)

    assert [e.index for e in result.entries] == [1]
    assert json.loads((tree.dir / "tls.json").read_text())[1]["csr_file"] == "other.csr"


def test_every_finding_is_placed_from_one_index_of_the_file_not_a_rescan(monkeypatch, tmp_path):
    """validate stays linear: 300 findings cost one pass over tls.json to build the line index,
    not one scan of the file each (that was 2.4 s for 4,000 entries, past a minute for 100,000;
    bench/gitops_validate.py measures it). Counted, not timed."""
    from gitops import jsontext

    scans = {"index": 0, "rescan": 0}
    build, rescan = jsontext.Lines.__init__, jsontext.line_col

    def counted_build(self, text):
        scans["index"] += 1
        build(self, text)

    def counted_rescan(text, index):
        scans["rescan"] += 1
        return rescan(text, index)

    monkeypatch.setattr(jsontext.Lines, "__init__", counted_build)
    monkeypatch.setattr(jsontext, "line_col", counted_rescan)
    tree = Tree(tmp_path)
    tree.tls(
        [good_entry(common_name=f"p{i}.example.com", csr_file=f"p{i}.csr") for i in range(300)]
    )
    result = check(tree)
    missing = [pr for pr in result.problems if pr.code == "CsrMissing"]
    assert len(missing) == 300
    assert len({pr.line for pr in missing}) == 300  # each placed at its own entry
    assert scans == {"index": 1, "rescan": 0}, scans
