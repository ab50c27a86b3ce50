"""Where things live in a CA repository's ``certs/`` tree, and the names derived from them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gitops.errors import UsageError

TLS_JSON = "tls.json"
REVOKED_JSON = "revoked.json"
REVOKED_ROOT_JSON = "revoked-root-ca.json"
CSR_DIR = "csrs"
# Optional: the CA's published <project>-ca-bundle-<env>.pem, committed so that `fetch` can hand
# partners a bundle without relying on the Lambda's ca_chain_only (broken upstream).
CA_BUNDLE = "ca-bundle.pem"

_ENV = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def check_env_name(env: str) -> str:
    if not _ENV.match(env):
        raise UsageError(
            f"--env: {env!r} is not an environment name; use the CA's Terraform `env` value, "
            "lower case, such as dev or prd"
        )
    return env


def check_project_name(project: str) -> str:
    if not _PROJECT.match(project):
        raise UsageError(
            f"--project: {project!r} is not a project name; use the CA's Terraform `project` "
            "value, lower case, such as serverless"
        )
    return project


def _title(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", text) if part)


def table_name(project: str, env: str) -> str:
    """The CA's DynamoDB table: ``<Project>CA<Env>``, e.g. ServerlessCADev."""
    return f"{_title(project)}CA{_title(env)}"


def function_name(project: str, env: str) -> str:
    """The CA's TLS Lambda: ``<project>-tls-cert-<env>``, e.g. serverless-tls-cert-dev."""
    return f"{project}-tls-cert-{env}"


def csr_file_name(common_name: str) -> str:
    """``Server.Example.com`` -> ``server-example-com.csr``; what ``add`` names a partner's CSR."""
    stem = re.sub(r"[^a-z0-9]+", "-", common_name.lower()).strip("-")
    return f"{stem or 'request'}.csr"


def display(path: Path) -> str:
    """The path as the user would type it from here, for messages and CI annotations."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    # Outside this folder the absolute path reads better than a climb (../../dev/zero).
    return os.path.abspath(path) if relative.split(os.sep, 1)[0] == os.pardir else relative


@dataclass(frozen=True)
class EnvLayout:
    root: Path  # the certs/ folder
    env: str

    @property
    def directory(self) -> Path:
        return self.root / self.env

    @property
    def tls_json(self) -> Path:
        return self.directory / TLS_JSON

    @property
    def revoked_json(self) -> Path:
        return self.directory / REVOKED_JSON

    @property
    def revoked_root_json(self) -> Path:
        return self.directory / REVOKED_ROOT_JSON

    @property
    def csr_dir(self) -> Path:
        return self.directory / CSR_DIR

    @property
    def ca_bundle(self) -> Path:
        return self.directory / CA_BUNDLE

    def csr(self, name: str) -> Path:
        return self.csr_dir / name


def environments(root: Path) -> list[str]:
    """Every folder under ``root`` holding a tls.json, sorted."""
    if not root.is_dir():
        return []
    # Any tls.json counts, even one that is a folder or unreadable: validate reports it rather
    # than skip the environment silently.
    try:
        folders = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return []
    return sorted(d.name for d in folders if os.path.lexists(d / TLS_JSON))
