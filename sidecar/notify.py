"""Telling the application that new files are in place: a signal to a process found by pid file
or by name, a command, a POST. Each action's failure is reported and never stops the others."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from cacore.edge.files import TooLarge, read_limited
from sidecar.settings import ReloadSettings

log = logging.getLogger("sidecar.notify")
COMMAND_TIMEOUT = 60.0
POST_TIMEOUT = 10.0


def pids_by_name(name: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes whose command name or argv[0] basename is ``name`` (needs a shared process
    namespace in a pod: ``shareProcessNamespace: true``; ECS: ``pidMode: task``)."""
    own = os.getpid()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if name in (comm, os.path.basename(argv0)):
            found.append(int(entry.name))
    return sorted(found)


def pid_from_file(path: Path) -> int:
    # Bounded, and never blocking on a pipe: a renewal must not hang on a strange pid file.
    text = read_limited(path, 64).decode(errors="replace").strip()
    if not text.isdigit():
        raise ValueError(f"{path} holds {text[:40]!r}, not a process id")
    return int(text)


def notify(settings: ReloadSettings, facts: Mapping[str, object]) -> dict[str, str]:
    """Run every configured action; returns action -> "ok" or the error, for logs and tests."""
    results: dict[str, str] = {}
    sig = signal.Signals(settings.signal)
    if settings.pid_file:
        try:
            pid = pid_from_file(settings.pid_file)
            os.kill(pid, sig)
            results["pid_file"] = "ok"
        except (OSError, ValueError, TooLarge) as error:
            results["pid_file"] = str(error)
    if settings.process_name:
        pids = pids_by_name(settings.process_name)
        errors = []
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError as error:
                errors.append(f"{pid}: {error}")
        results["process_name"] = (
            "; ".join(errors) if errors else "ok" if pids else f"no process {settings.process_name}"
        )
    if settings.command:
        import subprocess  # only when configured: every module costs RSS in every pod

        env = dict(os.environ, **{f"CERT_SIDECAR_{k.upper()}": str(v) for k, v in facts.items()})
        try:
            done = subprocess.run(
                settings.command, env=env, timeout=COMMAND_TIMEOUT, capture_output=True, check=False
            )
            results["command"] = (
                "ok"
                if done.returncode == 0
                else f"exit {done.returncode}: "
                + done.stderr.decode(errors="replace").strip()[-300:]
            )
        except (OSError, subprocess.SubprocessError) as error:
            results["command"] = str(error)
    if settings.url:
        import urllib.request

        body = json.dumps({"event": "certificate-renewed", **facts}, default=str).encode()
        request = urllib.request.Request(
            settings.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as response:  # noqa: S310
                results["url"] = "ok" if response.status < 300 else f"HTTP {response.status}"
        except (OSError, ValueError) as error:
            results["url"] = str(error)
    for action, result in results.items():
        if result == "ok":
            log.info("reload action done", extra={"fields": {"action": action}})
        else:
            log.warning(
                "reload action failed", extra={"fields": {"action": action, "error": result}}
            )
    return results
