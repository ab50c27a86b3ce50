"""The CLI's outputs and exit codes, run as a process over real trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from gitops_helpers import DOCUMENTED_EXAMPLE, ROOT, Tree, good_entry, run_cli, tampered_csr
from support.localca_fixtures import csr_pem


def test_the_repository_example_tree_validates():
    result = run_cli("validate", cwd=ROOT)

    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("ok: 0 error(s), 0 warning(s) in dev")


def test_the_ci_example_validates_on_pull_requests_and_issues_on_merge():
    import yaml

    workflow = yaml.safe_load((ROOT / "examples/ci/gitops.yml").read_text())
    steps = {
        name: " ".join(str(s.get("run", "")) for s in job["steps"])
        for name, job in workflow["jobs"].items()
    }

    assert "certs-gitops validate --format github" in steps["validate"]
    assert "certs-gitops issue" in steps["issue"]
    assert (ROOT / "examples/ci/gitops.yml").read_text() in (ROOT / "docs/gitops.md").read_text()


def test_the_documented_example_fails_with_a_github_annotation(tmp_path):
    tree = Tree(tmp_path)
    tree.csr("server-example-com.csr", csr_pem("server.example.com"))
    tree.tls(DOCUMENTED_EXAMPLE)

    result = run_cli("validate", "--format", "github", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "::error file=certs/dev/tls.json,line=5,col=5,title=JsonSyntax::JSON syntax error: "
        "Expecting ',' delimiter: a comma is missing after the value that ends at line 4, "
        "column 57; add ',' there"
    )


def test_json_output_lists_every_problem_with_its_place(tmp_path):
    tree = Tree(tmp_path)
    tree.csr("partner.csr", tampered_csr())
    tree.csr("stray.csr")
    tree.tls([good_entry(lifetime=0)])

    result = run_cli("validate", "--format", "json", cwd=tmp_path)

    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert (report["ok"], report["errors"], report["warnings"]) == (False, 2, 1)
    assert {(p["code"], p["file"], p["line"]) for p in report["problems"]} == {
        ("InvalidValue", "certs/dev/tls.json", 7),
        ("CsrSignatureInvalid", "certs/dev/csrs/partner.csr", 1),
        ("UnreferencedCsr", "certs/dev/csrs/stray.csr", 1),
    }


def test_add_refuses_a_csr_validate_would_refuse_and_writes_nothing(tmp_path):
    Tree(tmp_path)
    (tmp_path / "bad.csr").write_bytes(tampered_csr("bad.example.com"))
    (tmp_path / "good.csr").write_bytes(csr_pem("good.example.com"))
    before = (tmp_path / "certs/dev/tls.json").read_text()

    bad = run_cli("add", "--env", "dev", "bad.csr", cwd=tmp_path)
    wildcard = run_cli("add", "--env", "dev", "good.csr", "--san", "*.com", cwd=tmp_path)

    assert bad.returncode == 1 and "CsrSignatureInvalid" in bad.stdout
    assert wildcard.returncode == 1 and "would drop this SAN silently" in wildcard.stdout
    assert "nothing was written" in wildcard.stdout
    assert (tmp_path / "certs/dev/tls.json").read_text() == before
    assert sorted(p.name for p in (tmp_path / "certs/dev/csrs").iterdir()) == []


def test_add_refuses_the_same_csr_twice(tmp_path):
    Tree(tmp_path)
    (tmp_path / "p.csr").write_bytes(csr_pem("p.example.com"))

    first = run_cli("add", "--env", "dev", "p.csr", cwd=tmp_path)
    second = run_cli("add", "--env", "dev", "p.csr", cwd=tmp_path)

    assert first.returncode == 0
    assert second.returncode == 1 and "already used by entry [0]" in second.stdout
    assert len(json.loads((tmp_path / "certs/dev/tls.json").read_text())) == 1


def test_add_reads_the_csr_from_standard_input(tmp_path):
    Tree(tmp_path)
    pem = csr_pem("pasted.example.com")

    done = subprocess.run(
        [sys.executable, "-m", "gitops.main", "add", "--env", "dev", "-"], input=pem, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60,
    )  # fmt: skip
    garbage = subprocess.run(
        [sys.executable, "-m", "gitops.main", "add", "--env", "dev", "-"], input=b"not a CSR",
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "certs/dev/csrs/pasted-example-com.csr").read_bytes() == pem
    (entry,) = json.loads((tmp_path / "certs/dev/tls.json").read_text())
    assert entry["common_name"] == "pasted.example.com"
    assert garbage.returncode != 0 and b"standard input" in garbage.stdout + garbage.stderr


USAGE_ROWS = [
    ("an environment name in capitals", ("validate", "--env", "Dev"), "is not an environment name"),
    (
        "an environment without tls.json",
        ("validate", "--env", "prd"),
        "certs/prd/tls.json does not exist; create it with certs-gitops init --env prd",
    ),
    ("a missing --env for add", ("add", "x.csr"), "the following arguments are required: --env"),
    ("an unknown output format", ("validate", "--format", "xml"), "invalid choice: 'xml'"),
    (
        "a serial that is not a number",
        ("revoke", "--env", "dev", "a.example.com", "zz"),
        "give it in decimal",
    ),
    (
        "a CSR file that does not exist",
        ("add", "--env", "dev", "missing.csr"),
        "csr: cannot read missing.csr",
    ),
]


@pytest.mark.parametrize(
    "args, fragment", [r[1:] for r in USAGE_ROWS], ids=[r[0] for r in USAGE_ROWS]
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, fragment):
    Tree(tmp_path)

    result = run_cli(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # argparse adds its usage line
