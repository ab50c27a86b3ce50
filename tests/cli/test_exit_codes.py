"""One exit-code table for every command-line tool, documented once in the README."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cacore import exitcodes
from cacore.errors import CARefused, ConfigurationError, InvalidRequest, TransportError

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_code_table():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.M)
    assert [(int(code), meaning) for code, meaning in rows] == list(exitcodes.TABLE)


@pytest.mark.parametrize(
    "error, code",
    [
        (InvalidRequest("lifetime", "is 0 days"), exitcodes.USAGE),
        (ConfigurationError("region: none configured"), exitcodes.USAGE),
        (CARefused("Private key has already been used for a certificate"), exitcodes.FAILED),
        (TransportError("connection refused"), exitcodes.FAILED),
    ],
    ids=[
        "a bad request is usage",
        "bad settings are usage",
        "a refusal failed",
        "an outage failed",
    ],
)
def test_errors_map_to_the_table(error, code):
    assert exitcodes.for_error(error) == code


# Each tool, given a bad value, refuses before doing anything and exits with the usage code.
BAD_INPUT = [
    ("ca-cert", ["ca-cert", "issue", "--common-name", "x.example.com", "--lifetime", "0"]),
    ("cert-sidecar", ["cert-sidecar", "once", "--common-name", "x.example.com", "--jitter", "2"]),
    ("certs-gitops", ["certs-gitops", "add", "--env", "Dev", "missing.csr"]),
    ("clientcert-operator", ["clientcert-operator", "--metrics-port", "70000"]),
    ("local-ca", ["local-ca", "serve", "--state-dir", "/dev/null/x"]),
]


@pytest.mark.parametrize("argv", [b[1] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_every_tool_exits_with_the_usage_code_on_bad_input(argv, tmp_path):
    tool = Path(sys.executable).parent / argv[0]
    done = subprocess.run(
        [str(tool), *argv[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == exitcodes.USAGE, done.stderr
    assert done.stderr.strip()
