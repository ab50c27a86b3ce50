#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs the project, a Docker engine, a local
# base image, the Kubernetes control-plane and node binaries, kubectl and helm (cached under
# ~/.cache/lambda-client-certs), what a kubelet node needs (containerd, runc, CNI plugins),
# checks style, import contracts and types, then runs every test. Extra arguments go to pytest
# (-m 'not node' leaves out the tests that run Pods).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

step "python environment"
scripts/venv.sh test
export PATH="$ROOT/.venv/bin:$PATH"

step "kubernetes binaries (cached after the first build)"
scripts/kube/build.sh
scripts/kube/tools.sh

step "docker engine and local base image"
scripts/docker/engine.sh
scripts/docker/base-image.sh

step "node packages (containerd, runc, CNI plugins)"
if [ "$(id -u)" = 0 ]; then
  scripts/kube/node-packages.sh
else
  echo "not root: the node's packages are not installed; the Pod tests (marker node) need root"
fi

step "lint: style, import contracts, types"
ruff check .
lint-imports --no-cache   # the layers in pyproject.toml [tool.importlinter]
mypy                      # every package, as configured in pyproject.toml [tool.mypy]

step "tests"
exec python -m pytest "$@"
