"""The architecture, enforced: a pure core, shells that share it, a local CA that shares nothing."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "request",
    "response",
    "renewal",
    "credentials",
    "certinfo",
    "names",
    "errors",
    "config",
    "keys",
    "csr",
]
EDGE_LIBRARIES = {
    "boto3",
    "botocore",
    "kopf",
    "kubernetes",
    "aiohttp",
    "urllib.request",
    "http",
    "socket",
    "subprocess",
    "time",
}
PACKAGES = {
    "cacore": "cacore",
    "localca": "localca",
    "cacli": "cacli",
    "sidecar": "sidecar",
    "gitops": "gitops",
    "certoperator": "operator/certoperator",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imported_top_levels(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def package_imports(package: str) -> set[str]:
    folder = ROOT / PACKAGES[package]
    return (
        set().union(*(imported_top_levels(p) for p in folder.rglob("*.py")))
        if folder.exists()
        else set()
    )


@pytest.mark.parametrize("module", PURE)
def test_pure_core_modules_touch_no_network_clock_or_orchestrator(module):
    imports = imported_modules(ROOT / "cacore" / f"{module}.py")
    edges = {
        name
        for name in imports
        if any(name == e or name.startswith(e + ".") for e in EDGE_LIBRARIES)
    }
    assert not edges, f"cacore/{module}.py imports {edges}: keep I/O and the clock at the edges"


def test_the_core_depends_on_no_shell():
    assert not package_imports("cacore") & {"sidecar", "certoperator", "gitops", "cacli", "localca"}


def test_the_local_ca_stands_in_for_aws_and_shares_nothing_with_the_client():
    assert "cacore" not in package_imports("localca")


@pytest.mark.parametrize("shell", ["sidecar", "certoperator", "gitops", "cacli"])
def test_shells_do_not_import_each_other(shell):
    others = {"sidecar", "certoperator", "gitops", "cacli", "localca"} - {shell}
    assert not package_imports(shell) & others


def test_the_operator_folder_is_not_a_package_so_stdlib_operator_is_never_shadowed():
    import operator
    import subprocess
    import sys

    assert not (ROOT / "operator" / "__init__.py").exists()
    assert Path(operator.__file__).parent != ROOT / "operator"
    from_root = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not from_root.startswith(str(ROOT))
