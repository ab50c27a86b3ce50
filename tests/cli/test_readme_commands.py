"""The README's two commands are the real entry points, and the first one works as written."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands():
    block = re.search(r"## Two commands\s+```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md lost its 'Two commands' block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_names_the_demo_first_and_the_test_suite_second_and_ci_runs_the_second():
    demo, tests = readme_commands()
    assert (demo, tests) == ("./scripts/demo.sh", "./scripts/test.sh")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test.sh" in ci


def test_the_demo_command_runs_as_the_readme_says():
    demo = readme_commands()[0]
    result = subprocess.run([demo], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ok: mutual TLS handshake" in result.stdout
    assert "refused, as it should be" in result.stdout
    assert "Demo complete" in result.stdout
