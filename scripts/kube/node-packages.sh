#!/usr/bin/env bash
# Install what a local kubelet node needs from Debian's packages, when missing: containerd (its
# CRI plugin runs the Pods), runc, the CNI plugins (bridge, host-local in /usr/lib/cni), nft
# (kube-proxy's nftables mode), iptables and iproute2. Idempotent: prints nothing and exits 0
# at once when everything is there. Needs root (apt-get), like scripts/docker/engine.sh.
set -euo pipefail

die() { echo "node-packages.sh: $*" >&2; exit 1; }

# command-or-file, package
needs=(
  "containerd containerd"
  "containerd-shim-runc-v2 containerd"
  "ctr containerd"
  "runc runc"
  "/usr/lib/cni/bridge containernetworking-plugins"
  "/usr/lib/cni/host-local containernetworking-plugins"
  "nft nftables"
  "iptables iptables"
  "ip iproute2"
)

missing=()
for pair in "${needs[@]}"; do
  what="${pair% *}" package="${pair#* }"
  if [[ "$what" == /* ]]; then [[ -x "$what" ]] && continue
  else command -v "$what" >/dev/null 2>&1 && continue; fi
  [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
(( ${#missing[@]} == 0 )) && exit 0

[ "$(id -u)" = 0 ] || die "needs root to install ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
command -v apt-get >/dev/null 2>&1 || die "no apt-get here; install ${missing[*]} with your package manager"

# One installer at a time (apt's own lock would fail the second caller instead of waiting).
lock_dir="${LCC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-client-certs}"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/apt.lock"
flock 9

echo "node-packages.sh: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# The node starts its own containerd; the package's service is never started here (no systemd
# as PID 1), and the Docker engine keeps using its own.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed; run it by hand to see why"
fi
