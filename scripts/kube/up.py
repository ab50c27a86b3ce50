#!/usr/bin/env python3
"""Run a local Kubernetes control plane by hand until Ctrl-C (or SIGTERM).

    .venv/bin/python scripts/kube/up.py            # prints `export KUBECONFIG=...` lines
    .venv/bin/python scripts/kube/up.py --env-file /tmp/kube.env
    .venv/bin/python scripts/kube/up.py --node     # with a kubelet node running Pods (root)

Builds or reuses the binaries first (scripts/kube/build.sh, scripts/kube/tools.sh). Needs the
project installed (scripts/venv.sh), which provides the `kubelocal` package.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

from kubelocal import binaries as kube_binaries
from kubelocal.controlplane import ControlPlane
from kubelocal.node import Node, NodeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env-file",
        type=Path,
        help="also write the export lines to this file (for another shell to source)",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="also run a kubelet node (containerd, bridge CNI, kube-proxy; needs root)",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="TAG",
        help="with --node: copy this Docker engine image to the node (repeatable)",
    )
    args = parser.parse_args(argv)

    binaries = kube_binaries.ensure_binaries()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    node = None
    if args.node:
        try:
            node = Node.start(binaries, images=tuple(args.image))
        except NodeError as err:
            print(f"up.py: {err}", file=sys.stderr)
            return 1
        plane = node.plane
    else:
        plane = ControlPlane.start(binaries)
    try:
        lines = [
            f"export KUBECONFIG={shlex.quote(str(plane.kubeconfig))}",
            f'export PATH={shlex.quote(str(binaries.tools_bin))}:"$PATH"',
        ]
        if args.env_file:
            args.env_file.write_text("\n".join(lines) + "\n")
        print(
            f"# control plane ready at {plane.server} in {plane.seconds_to_ready:.1f} s "
            f"(pids {plane.pids}); Ctrl-C stops it",
            file=sys.stderr,
        )
        if node:
            print(
                f"# node {node.name} Ready at {node.address} in {node.seconds_to_ready:.1f} s "
                f"(pids {node.pids}); servers for Pods bind {node.address}",
                file=sys.stderr,
            )
        print("\n".join(lines), flush=True)
        stop.wait()
    finally:
        (node or plane).stop()
        print("# stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
