#!/bin/sh
# Installs edgelog as a systemd service on a Linux device: picks the binary
# for this machine (uname -m) from the dist directory, checks it against
# SHA256SUMS, creates the edgelog system user, installs
#   /usr/local/bin/edgelog, /etc/systemd/system/edgelog.service,
#   /etc/edgelog/config.yaml (an existing one is kept; the new one is put
#   next to it as config.yaml.new)
# and enables and starts the service.
#
# Usage: install.sh [--dist DIR] [--arch ARCH] [--dry-run] [--no-start]
#   --dist DIR   where edgelog-linux-* and SHA256SUMS are (default: ../dist
#                next to this script, else this script's directory)
#   --arch ARCH  amd64, arm64 or armv7 instead of detecting it
#   --dry-run    print what would be done, change nothing
#   --no-start   install and enable, but do not start the service
# DESTDIR=/some/root installs below that root (for packaging and tests): no
# user is created and systemctl is not run, only the files are written.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dist=
arch=
dry=0
start=1
while [ $# -gt 0 ]; do
  case $1 in
    --dist) dist=$2; shift 2 ;;
    --dist=*) dist=${1#*=}; shift ;;
    --arch) arch=$2; shift 2 ;;
    --arch=*) arch=${1#*=}; shift ;;
    --dry-run) dry=1; shift ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
destdir=${DESTDIR:-}

die() { echo "install.sh: $*" >&2; exit 1; }
run() {
  echo "+ $*"
  [ "$dry" = 1 ] || "$@"
}

if [ -z "$arch" ]; then
  case $(uname -m) in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    # armv8l: a 32-bit system on a 64-bit CPU (e.g. 32-bit Raspberry Pi OS on a Pi 4).
    armv7l | armv7 | armv8l) arch=armv7 ;;
    armv6l) die "ARMv6 (Raspberry Pi 1/Zero) is not supported: build with GOARM=6" ;;
    *) die "no edgelog build for machine $(uname -m)" ;;
  esac
fi
case $arch in
  amd64 | arm64 | armv7) ;;
  *) die "unknown --arch $arch (want amd64, arm64 or armv7)" ;;
esac

if [ -z "$dist" ]; then
  if [ -f "$here/../dist/edgelog-linux-$arch" ]; then dist=$here/../dist; else dist=$here; fi
fi
bin=$dist/edgelog-linux-$arch
[ -f "$bin" ] || die "missing $bin (build it with \`make cross\`)"
if [ -f "$dist/SHA256SUMS" ]; then
  want=$(awk -v f="edgelog-linux-$arch" '$2 == f || $2 == "*"f { print $1 }' "$dist/SHA256SUMS")
  got=$(sha256sum "$bin" | cut -d' ' -f1)
  [ -n "$want" ] || die "$dist/SHA256SUMS has no line for edgelog-linux-$arch"
  [ "$want" = "$got" ] || die "$bin does not match its checksum in SHA256SUMS"
  echo "checksum of edgelog-linux-$arch OK"
else
  echo "warning: no SHA256SUMS in $dist; binary not verified" >&2
fi
for f in edgelog.service config.yaml; do
  [ -f "$here/$f" ] || die "missing $here/$f"
done

if [ -z "$destdir" ] && [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (or with --dry-run, or DESTDIR=...)"
fi

echo "installing edgelog for linux/$arch into ${destdir:-/}"
if [ -z "$destdir" ]; then
  if id edgelog >/dev/null 2>&1; then
    echo "user edgelog exists"
  else
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    run useradd --system --user-group --no-create-home --home-dir /var/lib/edgelog --shell "$nologin" edgelog
  fi
fi
run install -d -m 0755 "$destdir/usr/local/bin" "$destdir/etc/systemd/system" "$destdir/etc/edgelog"
run install -m 0755 "$bin" "$destdir/usr/local/bin/edgelog"
run install -m 0644 "$here/edgelog.service" "$destdir/etc/systemd/system/edgelog.service"
if [ -e "$destdir/etc/edgelog/config.yaml" ]; then
  echo "keeping $destdir/etc/edgelog/config.yaml; the shipped one goes to config.yaml.new"
  run install -m 0644 "$here/config.yaml" "$destdir/etc/edgelog/config.yaml.new"
else
  run install -m 0644 "$here/config.yaml" "$destdir/etc/edgelog/config.yaml"
fi
if [ "$dry" = 0 ]; then
  "$destdir/usr/local/bin/edgelog" config check "$destdir/etc/edgelog/config.yaml" >/dev/null 2>&1 ||
    echo "warning: could not check the config with the installed binary (another architecture?)" >&2
fi

if [ -n "$destdir" ]; then
  echo "DESTDIR set: not creating the user and not running systemctl"
  exit 0
fi
if ! command -v systemctl >/dev/null 2>&1; then
  echo "warning: systemctl not found; start edgelog yourself: edgelog run --config /etc/edgelog/config.yaml" >&2
  exit 0
fi
run systemctl daemon-reload
if [ "$start" = 1 ]; then
  run systemctl enable --now edgelog.service
  if [ "$dry" = 0 ]; then
    systemctl restart edgelog.service # pick up a new binary on upgrade
    systemctl --no-pager --lines=5 status edgelog.service || true
  fi
else
  run systemctl enable edgelog.service
fi
echo "done: journalctl -u edgelog -f to follow its log"
