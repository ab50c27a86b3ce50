"""What import-linter cannot say: the operator's folder never shadows the stdlib's ``operator``.

The import layering itself is declared in ``pyproject.toml`` (``[tool.importlinter]``) and checked
by ``lint-imports`` in ``scripts/test.sh``; ``test_import_contracts_hold`` runs it here too.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    tool = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_operator_folder_is_not_a_package_so_stdlib_operator_is_never_shadowed():
    import operator

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
