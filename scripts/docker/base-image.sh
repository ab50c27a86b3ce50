#!/usr/bin/env bash
# Make sure the local base image exists in the Docker engine and print its tag.
#
# No registry can be pulled from here, so the base is built from Debian's packages:
# debootstrap a minimal bookworm with python3, python3-venv and ca-certificates, trim what a
# runtime image never reads (docs, man pages, locales, apt lists and caches), cache the rootfs
# as a tarball under ~/.cache/lambda-client-certs/ and `docker import` it.
# Idempotent: when the tag exists it only prints the tag.
# Bump BASE_VERSION whenever the recipe below changes, so caches and tags never go stale.
set -euo pipefail

BASE_VERSION=1
SUITE=bookworm
TAG="${LCC_BASE_TAG:-lcc-base:${SUITE}-${BASE_VERSION}}"
CACHE_DIR="${HOME}/.cache/lambda-client-certs/base-image"
TARBALL="${CACHE_DIR}/${SUITE}-minbase-${BASE_VERSION}.tar"
SOURCES=/etc/apt/sources.list.d/debian.sources
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "base-image.sh: $*" >&2; exit 1; }
log() { echo "base-image.sh: $*" >&2; }

"${HERE}/engine.sh"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi

# The first deb822 stanza whose Suites name the plain suite (not -security) is the mirror.
mirror() {
  [ -r "$SOURCES" ] || die "$SOURCES is missing; set LCC_DEBIAN_MIRROR=http://... to the Debian mirror"
  awk -v suite="$SUITE" '
    /^URIs:/   { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
    /^$/       { uri = "" }
  ' "$SOURCES"
}

build_tarball() {
  local url rootfs
  url="${LCC_DEBIAN_MIRROR:-$(mirror)}"
  [ -n "$url" ] || die "no '$SUITE' mirror in $SOURCES; set LCC_DEBIAN_MIRROR=http://..."
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
  fi
  mkdir -p "$CACHE_DIR"
  rootfs="$(mktemp -d "${CACHE_DIR}/rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "rm -rf '$rootfs'" EXIT
  log "debootstrap $SUITE from $url (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$url" >"${CACHE_DIR}/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see ${CACHE_DIR}/debootstrap.log"
  trim "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "${TARBALL}.tmp" .
  mv "${TARBALL}.tmp" "$TARBALL"
  rm -rf "$rootfs"
  trap - EXIT
}

trim() {
  local r="$1"
  # Copyright files stay: they are tiny and the licences ask for them.
  find "$r"/usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
  find "$r"/usr/share/doc -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* \
    "$r"/usr/share/lintian "$r"/usr/share/linda \
    "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/log/* "$r"/tmp/* \
    "$r"/var/cache/ldconfig/aux-cache
  # Locales: the image runs with LANG=C.UTF-8, which glibc carries built in.
  find "$r"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # Later `apt-get install` in derived images keeps the same trim.
  cat >"$r"/etc/dpkg/dpkg.cfg.d/01-lcc-trim <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
  cat >"$r"/etc/apt/apt.conf.d/01-lcc-no-recommends <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CFG
}

mkdir -p "$CACHE_DIR"
# Two test sessions starting at once must not debootstrap or import side by side.
exec 9>"${CACHE_DIR}/build.lock"
flock 9
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi
if [ ! -s "$TARBALL" ]; then
  rm -rf "${CACHE_DIR}"/rootfs.*  # left by an interrupted run; we hold the lock
  build_tarball
fi
log "importing $TARBALL as $TAG"
docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/usr/bin/python3"]' \
  --message "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates, trimmed" \
  "$TARBALL" "$TAG" >/dev/null
echo "$TAG"
