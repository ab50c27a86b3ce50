#!/usr/bin/env bash
# Make sure the local node's Pod sandbox ("pause") image exists in the Docker engine; print its
# tag. No image can be pulled here, so it is built: scripts/kube/pause/main.go compiled into a
# static binary (CGO off) in an image FROM scratch (about 1.5 MB). The tag carries a hash of the
# sources, so a changed recipe never reuses a stale image. Idempotent and quiet when present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/pause"
hash="$(cat "$src/main.go" "$src/go.mod" "$src/Dockerfile" | sha256sum | cut -c1-12)"
tag="lcc-pause:$hash"

die() { echo "pause-image.sh: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker not found; run scripts/docker/engine.sh first"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "'go' not found on PATH; install Go >= 1.22 to build the pause image"

cache="${LCC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-client-certs}"
mkdir -p "$cache/kube"
exec 9>"$cache/kube/pause.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src/main.go" "$src/go.mod" "$src/Dockerfile" "$work/"
export GOCACHE="$cache/go/build" GOPATH="$cache/go/path" GOMODCACHE="$cache/go/mod"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
(cd "$work" && go build -trimpath -ldflags "-s -w" -o pause .) || die "go build of $src failed"
docker build --quiet --tag "$tag" "$work" >"$work/build.log" 2>&1 \
  || die "docker build of the pause image failed: $(tail -3 "$work/build.log")"
echo "pause-image.sh: built $tag" >&2
echo "$tag"
