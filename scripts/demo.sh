#!/usr/bin/env bash
# The demo: a local CA, a client and a server certificate, a real mutual-TLS handshake.
# Installs what it needs into .venv on first run; needs no AWS account and no network.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/venv.sh"
exec "$ROOT/.venv/bin/python" -m cacli.demo "$@"
