#!/usr/bin/env bash
# Build the cert-manager controller, the peer of bench/vs_cert_manager.py, from the pinned
# module on the Go module proxy, into a cache outside the checkout (like scripts/kube/build.sh,
# sharing its Go module and build caches). Only the benchmark needs it; the tests never do.
# Idempotent: quiet and instant when the build for this version and this main.go is cached.
# Cold (empty Go caches: 220 modules, 1.2 GB, plus 1.5 GB of build cache): about 6 min on 2 idle
# cores, 21 min measured on a 2-core machine at load 14; warm Go caches: about 20 s.
#
#   bench/peers/cert-manager/build.sh              build if needed, print nothing when cached
#   bench/peers/cert-manager/build.sh --print-dir  print the directory holding
#                                                  bin/cert-manager-controller and crds/*.yaml
#
# Env: LCC_CACHE_DIR (default ~/.cache/lambda-client-certs), GOPROXY (Go's default if unset).
set -euo pipefail

# v1.19.3's zip is served by the proxy; v1.19.6 resolves but its zip is refused (environment.md).
CERT_MANAGER_VERSION=v1.19.3
module=github.com/cert-manager/cert-manager
# The wrapper lies under the module's path: only then may main.go import its internal/...
wrapper="$module/lccbench"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LCC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-client-certs}"
out="$cache/cert-manager/$CERT_MANAGER_VERSION"
# A changed main.go or build.sh makes a new build; the stamp says which sources built $out.
stamp="$(cat "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)"

print_dir=0
case "${1:-}" in
  --print-dir) print_dir=1 ;;
  "") ;;
  *) echo "build.sh: unknown argument '$1' (use no argument or --print-dir)" >&2; exit 2 ;;
esac

cached() {
  [[ -x "$out/bin/cert-manager-controller" && "$(cat "$out/source-stamp" 2>/dev/null)" == "$stamp" ]]
}
finish() {
  if (( print_dir )); then echo "$out"; fi
  exit 0
}
fail() { echo "build.sh: $*" >&2; exit 1; }

cached && finish

command -v go >/dev/null || fail "'go' not found on PATH; install Go >= 1.25 (cert-manager $CERT_MANAGER_VERSION needs it)"
go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
(( ${go_minor:-0} >= 25 )) || fail "Go $(go env GOVERSION) is too old; cert-manager $CERT_MANAGER_VERSION needs Go >= 1.25"

mkdir -p "$cache/cert-manager"
# One builder at a time; a second caller waits, then finds the published build.
exec 9>"$cache/cert-manager/build.lock"
if ! flock -n 9; then
  echo "build.sh: another cert-manager build is running; waiting for $cache/cert-manager/build.lock" >&2
  flock 9
fi
cached && finish

export GOPATH="$cache/go/path" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
export GONOSUMDB="${GONOSUMDB:-}" GOSUMDB="${GOSUMDB:-sum.golang.org}"

start=$SECONDS
log() { echo "build.sh [$((SECONDS - start))s]: $*" >&2; }

stage="$(mktemp -d "$cache/cert-manager/$CERT_MANAGER_VERSION.tmp.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
work="$stage/work"
mkdir -p "$work" "$stage/bin" "$stage/crds"

# One line naming what failed and the fix; $2 is the tool's own error text.
proxy_fail() {
  local detail
  detail="$(grep -v '^[[:space:]]*$' <<<"$2" | sed -n 's/.*"Error": "\(.*\)".*/\1/p;$p' | head -1)"
  fail "cannot download $1 from the Go module proxy (GOPROXY=$(go env GOPROXY)):" \
    "${detail:-unknown error}; check access to the proxy or set GOPROXY to a reachable one"
}

log "building cert-manager $CERT_MANAGER_VERSION into $out (cold: 6-20 min on 2 cores)"
modjson="$(go mod download -json "$module@$CERT_MANAGER_VERSION" 2>&1)" \
  || proxy_fail "$module@$CERT_MANAGER_VERSION" "$modjson"
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$modjson" | head -1; }
src="$(field Dir)"
commit="$(field Hash)"
[[ -f "$src/go.mod" ]] || proxy_fail "$module@$CERT_MANAGER_VERSION" "$modjson"

# The wrapper module: the pinned requirement, plus the root module's replace lines (Go
# ignores a dependency's replaces, so they must be repeated; v1.19.3 has none today).
{
  echo "module $wrapper"
  echo
  echo "go 1.25.0"
  echo
  echo "require $module $CERT_MANAGER_VERSION"
  awk '/^replace \(/ {block=1; next} block && /^\)/ {block=0; next}
       block {print "replace " $0; next} /^replace / {print}' "$src/go.mod"
} >"$work/go.mod"
cp "$here/main.go" "$work/main.go"

log "resolving modules"
(cd "$work" && go mod tidy >"$work/tidy.log" 2>&1) \
  || proxy_fail "the modules of $module@$CERT_MANAGER_VERSION" "$(tail -1 "$work/tidy.log")"

log "compiling cert-manager-controller"
vpkg="$module/pkg/util"
ldflags="-s -w -X $vpkg.AppVersion=$CERT_MANAGER_VERSION -X $vpkg.AppGitCommit=${commit:-unknown}"
ldflags+=" -X $vpkg.AppGitState=clean"
(cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$stage/bin/cert-manager-controller" .) \
  || fail "compiling cert-manager $CERT_MANAGER_VERSION failed (Go errors above); if main.go was" \
    "changed, fix it against the module's API in $src"
"$stage/bin/cert-manager-controller" --help >/dev/null 2>&1 \
  || fail "the built cert-manager-controller does not start (--help failed); rebuild after" \
    "removing $GOCACHE if the Go build cache is damaged"

# CRDs from the root module; strip Helm template lines in case a release carries them.
shopt -s nullglob
crds=("$src"/deploy/crds/*.io_*.yaml)
(( ${#crds[@]} > 0 )) || fail "no CRDs in $src/deploy/crds; is $CERT_MANAGER_VERSION a cert-manager release?"
for crd in "${crds[@]}"; do
  grep -v '^[[:space:]]*{{.*}}[[:space:]]*$' "$crd" >"$stage/crds/$(basename "$crd")"
  grep -q '^kind: CustomResourceDefinition' "$stage/crds/$(basename "$crd")" \
    || fail "$(basename "$crd") is not a plain CRD after stripping Helm lines; update build.sh"
done

echo "$stamp" >"$stage/source-stamp"
echo "$((SECONDS - start))" >"$stage/build-seconds"
rm -rf "$work"
chmod 0755 "$stage" "$stage/bin" "$stage/bin/cert-manager-controller"

# Publish at once, so a killed build never leaves a half-filled directory behind.
rm -rf "$out"
mv "$stage" "$out"
log "done: build took $((SECONDS - start)) s; $(du -sh "$out" | cut -f1) in $out"
finish
