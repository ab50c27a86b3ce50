"""add -> validate -> issue -> fetch -> revoke through the CLI, as processes, against the local CA
(which records issuances in DynamoDB) and moto's DynamoDB server."""

from __future__ import annotations

import json

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from gitops_helpers import Tree, run_cli, tampered_csr
from support.localca_fixtures import csr_pem

from cacore.certinfo import chain_problem
from cacore.keys import public_key_bytes

PROJECT = "gitopse2e"  # table Gitopse2eCADev, function gitopse2e-tls-cert-dev


@pytest.fixture
def setup(local_ca_factory, dynamodb_server, tmp_path, request):
    # one table per test: the DynamoDB server is shared by the whole session
    table = f"Gitops{abs(hash(request.node.name)) % 10**8}CADev"
    ca = local_ca_factory(
        "--dynamodb-endpoint",
        dynamodb_server,
        "--dynamodb-table",
        table,
        function_name=f"{PROJECT}-tls-cert-dev",
    )
    env = {**ca.env, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server}
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def cli(*args):
        return run_cli(*args, cwd=tmp_path, env=env)

    def issued_serials(cn):
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="CommonName = :cn",
            ExpressionAttributeValues={":cn": {"S": cn}},
        )["Items"]
        return sorted(item["SerialNumber"]["S"] for item in items)

    return ca, cli, table, issued_serials


def test_partner_flow_from_add_to_revoke(setup, tmp_path):
    ca, cli, table, issued_serials = setup
    assert cli("init", "--env", "dev").returncode == 0
    (tmp_path / "server.csr").write_bytes(
        csr_pem("server.example.com", dns_sans=["server.example.com", "api.example.com"])
    )
    (tmp_path / "client.csr").write_bytes(csr_pem("client.partner.io"))

    added = [
        cli("add", "--env", "dev", "server.csr", "--purpose", "server_auth", "--lifetime", "90"),
        cli("add", "--env", "dev", "client.csr"),
    ]
    validated = cli("validate")
    dry = cli(
        "issue",
        "--env",
        "dev",
        "--project",
        PROJECT,
        "--table",
        table,
        "--dry-run",
        "--format",
        "json",
    )
    invocations_before = ca.stats()["invocations"]
    first = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)
    second = cli(
        "issue", "--env", "dev", "--project", PROJECT, "--table", table, "--format", "json"
    )
    invocations_after_rerun = ca.stats()["invocations"]

    assert [a.returncode for a in added] == [0, 0], [a.stdout + a.stderr for a in added]
    entries = json.loads((tmp_path / "certs/dev/tls.json").read_text())
    assert entries[0] == {
        "common_name": "server.example.com",
        "sans": ["server.example.com", "api.example.com"],  # copied: the CA ignores CSR SANs
        "purposes": ["server_auth"],
        "lifetime": 90,
        "csr_file": "server-example-com.csr",
    }
    assert entries[1]["csr_file"] == "client-partner-io.csr"
    assert validated.returncode == 0 and "ok: 0 error(s)" in validated.stdout
    assert dry.returncode == 0
    assert json.loads(dry.stdout)["counts"] == {"would-issue": 2}
    assert invocations_before == 0  # a dry run sends nothing
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 issued" in first.stdout
    assert len(issued_serials("server.example.com")) == 1
    assert json.loads(second.stdout)["counts"] == {"already-issued": 2}
    assert invocations_after_rerun == 2  # the rerun asked the table, not the CA

    fetched = cli(
        "fetch",
        "--env",
        "dev",
        "server.example.com",
        "--project",
        PROJECT,
        "--table",
        table,
        "--out",
        "to-partner",
        "--format",
        "json",
    )
    assert fetched.returncode == 0, fetched.stderr
    summary = json.loads(fetched.stdout)
    out = tmp_path / "to-partner"
    leaf = x509.load_pem_x509_certificate((out / "certificate.pem").read_bytes())
    bundle = x509.load_pem_x509_certificates((out / "ca-bundle.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((out / "chain.pem").read_bytes())
    csr = x509.load_pem_x509_csr((tmp_path / "certs/dev/csrs/server-example-com.csr").read_bytes())
    assert summary["serial"] == issued_serials("server.example.com")[0] == str(leaf.serial_number)
    assert public_key_bytes(leaf) == public_key_bytes(csr.public_key())
    assert chain_problem(leaf, bundle) is None
    assert [c.serial_number for c in chain] == [leaf.serial_number, bundle[0].serial_number]
    assert leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == ["server.example.com", "api.example.com"]

    serial = summary["serial"]
    wrong = cli(
        "revoke",
        "--env",
        "dev",
        "server.example.com",
        "12345",
        "--project",
        PROJECT,
        "--table",
        table,
    )
    revoked = cli(
        "revoke",
        "--env",
        "dev",
        "server.example.com",
        hex(int(serial)),
        "--project",
        PROJECT,
        "--table",
        table,
    )
    again = cli(
        "revoke",
        "--env",
        "dev",
        "server.example.com",
        serial,
        "--project",
        PROJECT,
        "--table",
        table,
    )
    after = cli(
        "fetch", "--env", "dev", "server.example.com", "--project", PROJECT, "--table", table
    )
    by_serial = cli(
        "fetch",
        "--env",
        "dev",
        "server.example.com",
        "--serial",
        serial,
        "--project",
        PROJECT,
        "--table",
        table,
        "--out",
        "old",
    )
    reissue = cli(
        "issue", "--env", "dev", "--project", PROJECT, "--table", table, "--format", "json"
    )

    assert wrong.returncode == 1
    assert (
        f"serial 12345 was never issued to 'server.example.com': on record: {serial}"
        in wrong.stderr
    )
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads((tmp_path / "certs/dev/revoked.json").read_text()) == [
        {"common_name": "server.example.com", "serial_number": serial}
    ]
    assert again.returncode == 0 and "already in" in again.stdout
    assert cli("validate").returncode == 0
    assert after.returncode == 1 and "no valid certificate" in after.stderr
    assert "(revoked," in after.stderr
    assert by_serial.returncode == 0
    statuses = {e["common_name"]: e["status"] for e in json.loads(reissue.stdout)["entries"]}
    assert statuses == {"server.example.com": "revoked", "client.partner.io": "already-issued"}
    assert len(issued_serials("server.example.com")) == 1


def test_without_the_table_the_ca_key_reuse_refusal_keeps_reruns_harmless(setup, tmp_path):
    ca, cli, table, issued_serials = setup
    tree = Tree(tmp_path)
    tree.csr("partner.csr", csr_pem("partner.example.com"))
    tree.tls([{"common_name": "partner.example.com", "csr_file": "partner.csr"}])
    args = ("issue", "--env", "dev", "--project", PROJECT, "--no-table", "--format", "json")

    first, second = cli(*args), cli(*args)

    assert [e["status"] for e in json.loads(first.stdout)["entries"]] == ["issued"]
    rerun = json.loads(second.stdout)["entries"][0]
    assert second.returncode == 0
    assert rerun["status"] == "already-issued"
    assert "Private key has already been used" in rerun["detail"]
    assert len(issued_serials("partner.example.com")) == 1


def test_force_issue_entries_need_the_table_to_stay_idempotent(setup, tmp_path):
    ca, cli, table, _ = setup
    tree = Tree(tmp_path)
    tree.csr("partner.csr", csr_pem("partner.example.com"))
    tree.tls(
        [{"common_name": "partner.example.com", "csr_file": "partner.csr", "force_issue": True}]
    )

    without = cli("issue", "--env", "dev", "--project", PROJECT, "--no-table")
    first = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)
    second = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)

    assert without.returncode == 1 and "without --table every rerun" in without.stdout
    assert "1 issued" in first.stdout
    assert "1 already-issued" in second.stdout
    assert ca.stats()["issued"] == 1


def test_a_failed_entry_fails_the_run_and_the_rerun_issues_it(setup, tmp_path):
    ca, cli, table, issued_serials = setup
    tree = Tree(tmp_path)
    tree.csr("partner.csr", csr_pem("partner.example.com"))
    tree.tls([{"common_name": "partner.example.com", "csr_file": "partner.csr"}])
    ca.inject("throttle", count=1)

    failed = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)
    rerun = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)

    assert failed.returncode == 1
    assert "failed" in failed.stdout and "Throttled" in failed.stdout
    assert rerun.returncode == 0 and "1 issued" in rerun.stdout
    assert len(issued_serials("partner.example.com")) == 1


def test_issue_refuses_a_tree_that_does_not_validate(setup, tmp_path):
    ca, cli, table, _ = setup
    tree = Tree(tmp_path)
    tree.csr("partner.csr", tampered_csr())
    tree.tls([{"common_name": "partner.example.com", "csr_file": "partner.csr"}])

    result = cli("issue", "--env", "dev", "--project", PROJECT, "--table", table)

    assert result.returncode == 1
    assert "CsrSignatureInvalid" in result.stdout and "validate must pass first" in result.stdout
    assert ca.stats()["invocations"] == 0


def test_fetch_takes_the_ca_bundle_from_the_tree_when_the_function_cannot_give_it(setup, tmp_path):
    ca, cli, table, _ = setup
    tree = Tree(tmp_path)
    tree.csr("partner.csr", csr_pem("partner.example.com"))
    tree.tls([{"common_name": "partner.example.com", "csr_file": "partner.csr"}])
    assert cli("issue", "--env", "dev", "--project", PROJECT, "--table", table).returncode == 0
    fetch = (
        "fetch",
        "--env",
        "dev",
        "partner.example.com",
        "--project",
        PROJECT,
        "--table",
        table,
        "--out",
        "out",
    )
    assert cli(*fetch).returncode == 0  # bundle from the local CA's ca_chain_only
    published = (tmp_path / "out/ca-bundle.pem").read_bytes()
    (tmp_path / "out").rename(tmp_path / "first")

    # the real CA's ca_chain_only crashes (Runtime.MarshalError): without a bundle in the tree
    # fetch says what to commit; with one it never asks the function
    ca.inject("crash", count=-1)
    no_bundle = cli(*fetch)
    issuing_first = x509.load_pem_x509_certificates(published)
    tree.ca_bundle(b"".join(c.public_bytes(Encoding.PEM) for c in reversed(issuing_first)))
    with_bundle = cli(*fetch, "--format", "json")
    ca.clear_faults()

    assert no_bundle.returncode == 1
    assert (
        "commit the CA's published <project>-ca-bundle-dev.pem as certs/dev/ca-bundle.pem"
        in no_bundle.stderr
    )
    assert with_bundle.returncode == 0, with_bundle.stderr
    assert json.loads(with_bundle.stdout)["ca_bundle_from"] == "certs/dev/ca-bundle.pem"
    # the tree's bundle is root first, as the CA publishes it; the partner gets issuing first
    assert (tmp_path / "out/ca-bundle.pem").read_bytes() == published
    assert cli("validate").returncode == 0


def test_fetch_refuses_a_ca_bundle_of_another_ca(setup, tmp_path):
    ca, cli, table, _ = setup
    from support.pki import MiniCA, _pem

    tree = Tree(tmp_path)
    tree.csr("partner.csr", csr_pem("partner.example.com"))
    tree.tls([{"common_name": "partner.example.com", "csr_file": "partner.csr"}])
    other = MiniCA.create("Other")
    tree.ca_bundle(_pem(other.root) + _pem(other.issuing))
    assert cli("issue", "--env", "dev", "--project", PROJECT, "--table", table).returncode == 0

    result = cli(
        "fetch", "--env", "dev", "partner.example.com", "--project", PROJECT, "--table", table
    )

    assert result.returncode == 1
    assert "does not chain to the CA bundle from certs/dev/ca-bundle.pem" in result.stderr
    assert not (tmp_path / "partner-example-com").exists()


def test_fetch_and_revoke_name_the_table_when_it_does_not_exist(setup, tmp_path):
    ca, cli, table, _ = setup
    Tree(tmp_path)

    fetch = cli("fetch", "--env", "dev", "a.example.com", "--project", "nosuch")
    revoke = cli("revoke", "--env", "dev", "a.example.com", "1", "--project", "nosuch")

    for result in (fetch, revoke):
        assert result.returncode == 1
        assert "DynamoDB table 'NosuchCADev' does not exist" in result.stderr
