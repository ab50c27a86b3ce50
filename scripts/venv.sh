#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the project into it.
# Usage: scripts/venv.sh [EXTRAS]   e.g. scripts/venv.sh test
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
SPEC="$ROOT"
[ -n "$EXTRAS" ] && SPEC="$ROOT[$EXTRAS]"
# Skip pip when nothing changed since the last install (pyproject.toml is the only input).
STAMP="$ROOT/.venv/.installed-${EXTRAS:-base}"
HASH="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$HASH" ]; then
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
  echo "$HASH" > "$STAMP"
fi
