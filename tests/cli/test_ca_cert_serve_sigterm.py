"""`ca-cert serve` stops on SIGTERM: as a container's PID 1 (the example app's Pod) a signal
without a handler does nothing, and every Pod deletion would wait out its grace period."""

import os
import signal
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_serve_exits_cleanly_on_sigterm(ca, tmp_path):
    env = dict(os.environ, **ca.env, CA_FUNCTION=ca.function_name)
    certs = tmp_path / "server"
    issued = subprocess.run(
        [str(BIN / "ca-cert"), "issue", "--out", str(certs), "--common-name", "srv.example.com",
         "--purpose", "server_auth"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    server = subprocess.Popen(
        [str(BIN / "ca-cert"), "serve", "127.0.0.1:0", "--certs", str(certs)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout.readline().startswith("listening on 127.0.0.1:")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
