"""Running the real ``cert-sidecar`` as a subprocess against a real local CA, for tests and the
benchmark: start it, read its JSON logs, wait for files, probe its HTTP endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sidecar_env(ca: Any, **settings: Any) -> dict[str, str]:
    """The CA's AWS environment plus CERT_SIDECAR_<NAME> for each keyword."""
    env = dict(ca.env)
    env["PYTHONPATH"] = str(ROOT)
    env.update({"CERT_SIDECAR_LISTEN": "off", "CERT_SIDECAR_LOG_LEVEL": "debug"})
    env.update({f"CERT_SIDECAR_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def run_mode(
    mode: str, ca: Any, timeout: float = 60, **settings: Any
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", mode],
        env=sidecar_env(ca, **settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class Sidecar:
    """A ``cert-sidecar run`` process; stderr (the JSON log) goes to a file we can poll."""

    def __init__(self, ca: Any, log_path: Path, **settings: Any) -> None:
        self.log_path = log_path
        self.env = sidecar_env(ca, **settings)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sidecar:
        self.started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "run"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
            )
        return self

    def logs(self) -> list[dict]:
        return log_lines(self.log_path.read_text(errors="replace"))

    def wait_for_log(self, predicate: Any, timeout: float = 30, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [entry for entry in self.logs() if predicate(entry)]
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"sidecar exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count} log lines: {self.tail()}")
            time.sleep(0.05)

    def issued(self, count: int = 1, timeout: float = 30) -> list[dict]:
        return self.wait_for_log(lambda e: e["message"] == "certificate issued", timeout, count)

    @property
    def port(self) -> int:
        start = self.wait_for_log(lambda e: e["message"] == "starting")[0]
        return int(start["listen"].rsplit(":", 1)[1])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with _no_proxy.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def terminate(self, timeout: float = 5) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def mode_of(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
