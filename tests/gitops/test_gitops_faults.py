"""docs/gitops.md's fault table, row by row: each fault made real in a certs/ tree (files in the
wrong encoding, folders and pipes where files belong, hostile names), with the local CA and
moto's DynamoDB where a command talks to AWS; then the exit code and the quoted text checked
against the real `certs-gitops` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from gitops_helpers import ROOT, Tree, good_entry, rsa_1024_csr, run_cli
from support.fault_tables import Seen, check, row_ids, rows, same_ids, scenarios
from support.localca_fixtures import csr_pem

ROWS = rows("docs/gitops.md")


@dataclass
class Ctx:
    ca: object
    tmp: Path
    dynamodb: str

    def __post_init__(self) -> None:
        self.tree = Tree(self.tmp)

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.ca.env,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb,
            "CA_FUNCTION": self.ca.function_name,
        }

    def run(self, *args: str, env: dict | None = None) -> Seen:
        done = run_cli(*args, cwd=self.tmp, env=env or self.env)
        return Seen(done.returncode, done.stdout + done.stderr)

    def validate(self) -> Seen:
        return self.run("validate")

    def tls_bytes(self, data: bytes) -> None:
        (self.tree.dir / "tls.json").write_bytes(data)

    def valid_tree(self) -> None:
        self.tree.csr("partner.csr")
        self.tree.tls([good_entry()])


def g1(ctx: Ctx) -> Seen:
    ctx.tls_bytes(json.dumps([good_entry()]).encode("utf-16"))
    return ctx.validate()


def g2(ctx: Ctx) -> Seen:
    ctx.tls_bytes('[{"common_name": "café.example.com"}]'.encode("latin-1"))
    return ctx.validate()


def g3(ctx: Ctx) -> Seen:
    ctx.tls_bytes(Path(sys.executable).resolve().read_bytes()[:4096])
    return ctx.validate()


def g4(ctx: Ctx) -> Seen:
    (ctx.tree.dir / "revoked.json").unlink(missing_ok=True)
    (ctx.tree.dir / "revoked.json").mkdir()
    return ctx.validate()


def g5(ctx: Ctx) -> Seen:
    ctx.tree.tls("[" * 100_000 + "]" * 100_000)
    return ctx.validate()


def g6(ctx: Ctx) -> Seen:
    os.mkfifo(ctx.tree.dir / "csrs" / "partner.csr")
    ctx.tree.tls([good_entry()])
    return ctx.validate()


def g7(ctx: Ctx) -> Seen:
    ctx.tree.csr("partner.csr", csr_pem() + b"\n" * 70_000)
    ctx.tree.tls([good_entry()])
    return ctx.validate()


def g8(ctx: Ctx) -> Seen:
    ctx.tree.csr("partner.csr", csr_pem(None, extra_subject={"O": "Partner"}))
    ctx.tree.tls([good_entry()])
    return ctx.validate()


def g9(ctx: Ctx) -> Seen:
    ctx.tree.csr("partner.csr", rsa_1024_csr())
    ctx.tree.tls([good_entry()])
    return ctx.validate()


def g10(ctx: Ctx) -> Seen:
    ctx.tree.tls([good_entry(csr_file=[])])
    return ctx.validate()


def g11(ctx: Ctx) -> Seen:
    ctx.tree.csr("bad\x1b[31mname.csr")
    seen = ctx.validate()
    assert "\x1b" not in seen.output, "a raw escape character reached the terminal"
    return seen


def g12(ctx: Ctx) -> Seen:
    (ctx.tree.dir / "tls.json").unlink()
    (ctx.tree.dir / "tls.json").mkdir()
    return ctx.run("issue", "--env", "dev", "--dry-run", "--no-table")


def g13(ctx: Ctx) -> Seen:
    ctx.tls_bytes("[]".encode("utf-16"))
    path = ctx.tmp / "partner.csr"
    path.write_bytes(csr_pem("partner.example.com"))
    return ctx.run("add", "--env", "dev", str(path))


def g14(ctx: Ctx) -> Seen:
    (ctx.tree.dir / "revoked.json").unlink(missing_ok=True)
    (ctx.tree.dir / "revoked.json").mkdir()
    return ctx.run("revoke", "--env", "dev", "partner.example.com", "12345")


def g15(ctx: Ctx) -> Seen:
    (ctx.tmp / "a-folder.csr").mkdir()
    return ctx.run("add", "--env", "dev", str(ctx.tmp / "a-folder.csr"))


def _without_credentials(ctx: Ctx) -> dict[str, str]:
    env = {
        k: v for k, v in ctx.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(ctx.tmp / "none"),
        AWS_CONFIG_FILE=str(ctx.tmp / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def g16(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    return ctx.run("issue", "--env", "dev", "--no-table", env=_without_credentials(ctx))


def g17(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    ctx.ca.inject("delay", seconds=20)
    return ctx.run("issue", "--env", "dev", "--no-table", "--timeout", "3")


def g18(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    return ctx.run("issue", "--env", "dev", "--role-arn", "not-a-role")


def g19(ctx: Ctx) -> Seen:
    return ctx.run("validate", env={**ctx.env, "CA_MAX_LIFETIME_DAYS": "abc"})


def g20(ctx: Ctx) -> Seen:
    ctx.tree.tls([good_entry(csr_file=f"missing-{i}.csr") for i in range(3000)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitops.main", "validate"],
        cwd=ctx.tmp,
        env={**ctx.env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    proc.stdout.close()  # as `head -1` does
    errors = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.startswith("certs/dev/tls.json:") and errors == "", errors
    return Seen(proc.returncode, first + errors)


def g21(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    return ctx.run("fetch", "--env", "dev", "partner.example.com", "--table", "NosuchCADev")


def g22(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    env = {**ctx.env, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:99999"}
    return ctx.run("fetch", "--env", "dev", "partner.example.com", env=env)


def g23(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    with socket.socket() as silent:  # connections complete in the backlog; nothing answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = {**ctx.env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
        return ctx.run("fetch", "--env", "dev", "partner.example.com", "--timeout", "2", env=env)


def g24(ctx: Ctx) -> Seen:
    (ctx.tmp / "bundle.pem").write_bytes(csr_pem("partner.example.com"))  # a CSR, not a bundle
    return ctx.run("init", "--root", "fresh", "--env", "dev", "--ca-bundle", "bundle.pem")


def g25(ctx: Ctx) -> Seen:
    (ctx.tmp / "a-file").write_text("not a folder")
    return ctx.run("init", "--root", "a-file", "--env", "dev")


def g26(ctx: Ctx) -> Seen:
    ctx.valid_tree()
    (ctx.tmp / "a-file").write_text("not a folder")
    return ctx.run("fetch", "--env", "dev", "partner.example.com", "--out", "a-file")


SCENARIOS = scenarios(globals(), "g")


def test_every_documented_fault_has_a_scenario_and_every_scenario_a_row():
    same_ids(ROWS, SCENARIOS)


@pytest.mark.parametrize("row", ROWS, ids=row_ids(ROWS))
def test_fault_table_row(row, ca, dynamodb_server, tmp_path):
    check(row, SCENARIOS[row.id](Ctx(ca, tmp_path, dynamodb_server)))
