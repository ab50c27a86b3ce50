"""`clientcert-operator` refuses bad settings in one line naming the flag's variable, before
kopf starts (so a crash-looping pod says exactly what to fix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("clientcert-operator")


@pytest.mark.parametrize(
    "args, named",
    [
        (["--metrics-port", "70000"], "CLIENTCERT_METRICS_PORT"),
        (["--max-concurrent-issuances", "0"], "CLIENTCERT_MAX_CONCURRENT_ISSUANCES"),
        (["--ca-function", "not a function"], "CLIENTCERT_CA_FUNCTION"),
        (["--ca-function", "f", "--ca-endpoint-url", "ftp://x"], "CLIENTCERT_CA_ENDPOINT_URL"),
        (["--renewal-jitter", "0.9"], "CLIENTCERT_RENEWAL_JITTER"),
        (["--log-level", "LOUD"], "--log-level"),
    ],
    ids=[
        "a port above 65535 is refused",
        "zero concurrent issuances is refused",
        "a function name with spaces is refused",
        "a non-http endpoint is refused",
        "jitter above one half is refused",
        "an unknown log level is refused",
    ],
)
def test_bad_settings_stop_the_operator_with_one_line(args, named):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
