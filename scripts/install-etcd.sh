#!/usr/bin/env bash
# Builds etcd for cluster mode into .cache/etcd/etcd-<version>, only if that
# file is missing, and links .cache/etcd/etcd to it. The tests and
# scripts/local-cluster.sh use that binary (STROM_ETCD overrides it).
#
# Why a build and not Debian's etcd-server: bookworm ships etcd 3.4.23, a
# release line upstream no longer supports (it maintains 3.5 and 3.6). The
# build takes the server module go.etcd.io/etcd/server/v3 at the version pinned
# in scripts/etcd/go.mod from the Go module proxy, checked against
# scripts/etcd/go.sum (~2 min on 2 cores the first time). It needs Go >= 1.24
# (this machine kind has it in /usr/local/go); without one it falls back to
# Debian's etcd-server, which speaks the same v3 API strom uses.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/scripts/etcd"
version="$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 v//p' "$src/go.mod")"
dest="$root/.cache/etcd"
binary="$dest/etcd-$version"
if [ -x "$binary" ]; then
  ln -sfn "etcd-$version" "$dest/etcd"
  exit 0
fi
go_bin="$(command -v go || true)"
if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then go_bin=/usr/local/go/bin/go; fi
go_minor=0
if [ -n "$go_bin" ]; then
  go_minor="$("$go_bin" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
fi
if [ "${go_minor:-0}" -lt 24 ]; then
  echo "no Go >= 1.24 to build etcd $version; installing Debian's etcd-server instead" >&2
  if ! command -v etcd >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  fi
  mkdir -p "$dest"
  ln -sfn "$(command -v etcd)" "$dest/etcd"
  exit 0
fi
echo "building etcd $version from go.etcd.io/etcd/server/v3 (once)"
mkdir -p "$dest"
# A private copy: go build may touch go.mod/go.sum, and the repo's stay as committed.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
(cd "$work" && GOFLAGS=-mod=readonly "$go_bin" build -trimpath -o "$binary.tmp" .)
mv "$binary.tmp" "$binary"
ln -sfn "etcd-$version" "$dest/etcd"
"$dest/etcd" --version | head -1
