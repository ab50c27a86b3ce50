#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock.
#
# Idempotent: prints nothing and exits 0 at once when the engine already answers.
# Otherwise installs Debian's docker.io (no image can be pulled here, but the engine and
# the classic builder work) and starts dockerd in the background, logging under the cache.
set -euo pipefail

SOCK=/var/run/docker.sock
CACHE_DIR="${HOME}/.cache/lambda-client-certs/docker"
LOG="${CACHE_DIR}/dockerd.log"
WAIT_SECONDS="${LCC_DOCKERD_WAIT_SECONDS:-60}"

die() { echo "engine.sh: $*" >&2; exit 1; }

answers() { [ -S "$SOCK" ] && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

answers && exit 0

[ "$(id -u)" = 0 ] || die "needs root to install and start dockerd; run it as root or start dockerd yourself"

if ! command -v dockerd >/dev/null 2>&1; then
  echo "engine.sh: installing docker.io with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi
# Debian's docker.io ships the client too; an already present client (e.g. /usr/local/bin) wins.
command -v docker >/dev/null 2>&1 || die "docker client missing after installing docker.io"

mkdir -p "$CACHE_DIR"
# A second caller racing us may already be starting it: only start one daemon.
exec 9>"${CACHE_DIR}/engine.lock"
flock 9
if ! answers; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "engine.sh: starting dockerd (log: $LOG)" >&2
    # setsid: the daemon must outlive the test session or shell that started it.
    setsid dockerd >>"$LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 "$((WAIT_SECONDS * 4))"); do
    answers && break
    sleep 0.25
  done
fi
answers || die "dockerd did not answer on $SOCK within ${WAIT_SECONDS}s; see $LOG"
