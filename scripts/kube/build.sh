#!/usr/bin/env bash
# Build the control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) and a
# node (kubelet, kube-proxy) from pinned Go modules into a cache
# outside the checkout, so CI (a fresh clone on this machine) reuses them. Idempotent: quiet
# and instant when the binaries are already there. A cold build takes many minutes on 2 cores.
#
#   scripts/kube/build.sh              build if needed, print nothing when cached
#   scripts/kube/build.sh --print-bin  print the bin directory (after building if needed)
#   scripts/kube/build.sh --measure-node-cost
#       time a cold compile (empty Go build cache; modules already downloaded) of the control
#       plane (kube-apiserver, kube-controller-manager) and then of what the node adds
#       (kube-scheduler, kubelet, kube-proxy); prints one JSON line and keeps it in
#       node-cost.json beside the binaries. Installs nothing. Takes as long as a cold build.
#
# Env: LCC_CACHE_DIR (default ~/.cache/lambda-client-certs), GOPROXY (Go's default if unset).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091  # pins only: plain KEY=VALUE lines
source "$here/versions.env"

cache="${LCC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-client-certs}"
key="kubernetes-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
bin="$cache/kube/$key/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd)

print_bin=0 measure=0
case "${1:-}" in
  --print-bin) print_bin=1 ;;
  --measure-node-cost) measure=1 ;;
  "") ;;
  *) echo "build.sh: unknown argument '$1' (use no argument, --print-bin or --measure-node-cost)" >&2; exit 2 ;;
esac

have_all() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}

finish() {
  if (( print_bin )); then echo "$bin"; fi
  exit 0
}

(( measure )) || ! have_all || finish

command -v go >/dev/null || {
  echo "build.sh: 'go' not found on PATH; install Go >= 1.24 to build the control plane" >&2
  exit 1
}

mkdir -p "$cache/kube"
# One builder at a time: the fixture and scripts/test.sh may both ask for the binaries.
exec 9>"$cache/kube/build.lock"
if ! flock -n 9; then
  echo "build.sh: another build is running; waiting for $cache/kube/build.lock" >&2
  flock 9
fi
(( measure )) || ! have_all || finish

# Go's caches live beside the binaries so a fresh clone reuses the downloaded modules.
export GOPATH="$cache/go/path" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
export GONOSUMDB="${GONOSUMDB:-}" GOSUMDB="${GOSUMDB:-sum.golang.org}"

start=$SECONDS
log() { echo "build.sh [$((SECONDS - start))s]: $*" >&2; }

work="$cache/kube/$key/work"
if (( measure )); then
  # Apart from a real build's work dir and cache: an empty Go build cache of its own.
  work="$(mktemp -d "$cache/kube/measure.XXXXXX")"
  export GOCACHE="$work/gocache"
  flock -u 9  # a real build may run meanwhile
fi
rm -rf "$work" && mkdir -p "$work"
stage="$(mktemp -d "$cache/kube/$key/bin.tmp.XXXXXX")"
trap 'rm -rf "$stage"; if (( measure )); then rm -rf "$work"; fi' EXIT

# One line naming what failed and the fix; $2 is the tool's own error text.
proxy_hint() {
  local detail
  detail="$(grep -v '^[[:space:]]*$' <<<"$2" | sed -n 's/.*"Error": "\(.*\)".*/\1/p;$p' | head -1)"
  echo "build.sh: cannot download $1 from the Go module proxy (GOPROXY=$(go env GOPROXY)):" \
    "${detail:-unknown error}; check access to the proxy or set GOPROXY to a reachable one" >&2
  exit 1
}

log "building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION into $bin (cold: 10-30 min)"

# k8s.io/kubernetes maps its staging modules with local replace lines, which Go ignores in a
# dependency; pin each one the upstream go.mod lists at v0.0.0 to its published v0.X.Y tag.
modjson="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>&1)" \
  || proxy_hint "k8s.io/kubernetes@$KUBE_VERSION" "$modjson"
upstream_mod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$modjson")"
[[ -f "$upstream_mod" ]] || proxy_hint "k8s.io/kubernetes@$KUBE_VERSION" "$modjson"
staging_version="v0.${KUBE_VERSION#v1.}"
mapfile -t staging < <(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$upstream_mod" | sort -u)
(( ${#staging[@]} > 10 )) || { echo "build.sh: found no staging modules in $upstream_mod" >&2; exit 1; }

mkdir -p "$work/kubernetes" "$work/etcd"
{
  echo "module lcc.local/kubebuild"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  for m in "${staging[@]}"; do echo "replace $m => $m $staging_version"; done
} >"$work/kubernetes/go.mod"
cat >"$work/kubernetes/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
printf 'module lcc.local/etcdbuild\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
  "$ETCD_VERSION" >"$work/etcd/go.mod"
cat >"$work/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO

log "resolving modules (${#staging[@]} staging modules pinned to $staging_version)"
(cd "$work/kubernetes" && go mod tidy >"$work/tidy.log" 2>&1) \
  || proxy_hint "the modules of k8s.io/kubernetes@$KUBE_VERSION" "$(tail -1 "$work/tidy.log")"
(cd "$work/etcd" && go mod tidy >"$work/tidy.log" 2>&1) \
  || proxy_hint "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "$(tail -1 "$work/tidy.log")"

# /version must report a real release, as a packaged apiserver would.
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$KUBE_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X $vpkg.gitCommit=lcc-module-build-$KUBE_VERSION"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"

# CPU seconds (user + system) of every child waited for so far: unlike wall time, not inflated
# by whatever else the machine runs meanwhile.
# (cutime + cstime of this shell, fields 16 and 17 of /proc/PID/stat, in clock ticks).
children_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($16 + $17) / hz }' "/proc/$$/stat"
}

if (( measure )); then
  t0=$SECONDS c0=$(children_cpu)
  (cd "$work/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$stage/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
  t1=$SECONDS c1=$(children_cpu)
  (cd "$work/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$stage/" \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
  t2=$SECONDS c2=$(children_cpu)
  result="{\"kubernetes\": \"$KUBE_VERSION\", \"cores\": $(nproc), \"load_average\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
  result+=", \"control_plane_cold_s\": $((t1 - t0)), \"node_extra_cold_s\": $((t2 - t1))"
  result+=", \"control_plane_cpu_s\": $((c1 - c0)), \"node_extra_cpu_s\": $((c2 - c1))}"
  mkdir -p "$(dirname "$bin")"
  echo "$result" >"$(dirname "$bin")/node-cost.json"
  log "cold compile: control plane $((t1 - t0)) s ($((c1 - c0)) CPU s), then the node's binaries $((t2 - t1)) s more ($((c2 - c1)) CPU s)"
  echo "$result"
  exit 0
fi

log "compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy"
(cd "$work/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$stage/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy)
log "compiling etcd"
(cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$stage/etcd" go.etcd.io/etcd/server/v3)

"$stage/kube-apiserver" --version >&2
"$stage/etcd" --version >&2

# Publish them all at once, so a killed build never leaves a half-filled bin directory.
rm -rf "$bin"
mv "$stage" "$bin"
chmod 0755 "$bin" "$bin"/*
rm -rf "$work"
echo "$((SECONDS - start))" >"$cache/kube/$key/build-seconds"
log "done: build took $((SECONDS - start)) s; cache uses $(du -sh "$cache" | cut -f1)"
finish
