#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for a given job, with apt-get, only when missing.
#   build: the NativeAOT linker prerequisites (a C toolchain and zlib headers) and binutils
#          (ld -r, objcopy and ar make the static archive)
#   test:  build + cmake/ctest, pkg-config, qemu-system-common (qemu-storage-daemon: the reference
#          vhost-user-blk back-end the cross-process block tests also run against; about 30 shared
#          libraries, no display server, no firmware)
#   bench: test + liburcu (C baselines) + a font for the charts (qemu-storage-daemon is the
#          reference back-end of bench/vhost-blk.sh) + make, xz-utils and linux-source-6.1 (the
#          kernel's tools/virtio/ringtest, which bench/ringtest.sh extracts and builds)
set -euo pipefail
job=${1:-build}
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pkgs=(gcc g++ zlib1g-dev binutils)
case "$job" in
  test)  pkgs+=(cmake pkg-config binutils qemu-system-common) ;;
  bench) pkgs+=(cmake pkg-config binutils qemu-system-common liburcu-dev fonts-dejavu-core make xz-utils linux-source-6.1) ;;
esac
for p in "${pkgs[@]}"; do have "$p" || need+=("$p"); done
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    # Not root: never fight the apt lock or prompt for a password in the middle of a build.
    echo "error: these Debian packages are needed for '$job' and missing: ${need[*]}" >&2
    echo "       install them, then run again:  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "==> installing the missing Debian packages for '$job': ${need[*]} (apt-get, about a minute)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  echo "==> installed: ${need[*]}"
fi
if ! command -v dotnet >/dev/null; then
  echo "error: the .NET 10 SDK (dotnet) is required; see README.md" >&2
  exit 1
fi
