#!/usr/bin/env bash
# Prepares everything the QEMU test boots, under build/qemu/ (nothing of it is committed):
#   1. host packages, with apt-get, only when missing: qemu-system-x86 (QEMU 7.2 on Debian 12, with
#      vhost-user-gpio-pci and qboot), busybox-static, gpiod (libgpiod 1.6 tools), kmod, cpio,
#      linux-source-6.1, linux-headers-6.1.0-NN-amd64 + linux-kbuild-6.1, a C toolchain;
#   2. the guest kernel: `apt-get download linux-image-6.1.0-NN-amd64`, unpacked with dpkg-deb -x
#      (never installed on this machine), NN = the ABI that linux-headers-amd64 points at, so the
#      headers the module is built against match the image;
#   3. gpio-virtio.ko built out of tree from linux-source's drivers/gpio/gpio-virtio.c: Debian's
#      kernels leave CONFIG_GPIO_VIRTIO unset (see the image's /boot/config-*), while GPIOLIB and
#      GPIO_CDEV (v1 and v2 uAPI) are built in;
#   4. the static guest helpers rr-gpio-loop (tests/qemu/rr-gpio-loop.c) and rr-blk-io
#      (tests/qemu/rr-blk-io.c; the block test also runs it on the host, on the image files);
#   5. the initramfs: busybox, the virtio-pci, gpio-virtio and virtio_blk modules with what
#      modules.dep says they need, the gpiod tools with their shared libraries, the helpers,
#      tests/qemu/init (the GPIO test's /init) and tests/qemu/init-blk (the block test's, started
#      with rdinit=/init-blk).
#
# Each step is skipped when its output is already there (the kernel and the module are keyed by
# the ABI), so a second run takes a few seconds. Prints the paths of the kernel and initramfs.
# Usage: tests/qemu/prepare.sh            RR_QEMU_KABI=6.1.0-57-amd64 pins the guest kernel.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/qemu"
out="$root/build/qemu"
mkdir -p "$out"
sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
log() { echo "   qemu prepare: $*"; }

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
apt_install() {
  local need=() p
  for p in "$@"; do have "$p" || need+=("$p"); done
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# --- 1. host packages ------------------------------------------------------------------------
apt_install qemu-system-x86 qemu-system-data busybox-static gpiod kmod cpio xz-utils \
  gcc make libc6-dev bc flex bison libelf-dev linux-source-6.1

# The ABI: pinned by the environment, else the one already prepared, else the one the
# linux-headers-amd64 metapackage depends on (Debian's current 6.1 kernel).
kabi=${RR_QEMU_KABI:-}
[[ -n $kabi || ! -s $out/kabi ]] || kabi=$(cat "$out/kabi")
if [[ -z $kabi ]]; then
  apt-cache show linux-headers-amd64 >/dev/null 2>&1 || $sudo apt-get update -qq
  kabi=$(apt-cache depends linux-headers-amd64 | grep -oE 'linux-headers-6\.1\.[0-9]+-[0-9]+-amd64' | head -1)
  kabi=${kabi#linux-headers-}
  [[ -n $kabi ]] || { echo "error: cannot tell the 6.1 kernel ABI from linux-headers-amd64" >&2; exit 1; }
fi
apt_install "linux-headers-$kabi" linux-kbuild-6.1
echo "$kabi" >"$out/kabi"
# The module is built from linux-source-6.1; say so when its version is not the image's.
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
hdrver=$(dpkg-query -W -f='${Version}' "linux-headers-$kabi")
[[ $srcver == "$hdrver" ]] || log "note: linux-source-6.1 is $srcver, linux-headers-$kabi is $hdrver"

# --- 2. the guest kernel (downloaded and unpacked, never installed) ----------------------------
kdir="$out/kernel-$kabi"
if [[ ! -s $kdir/boot/vmlinuz-$kabi ]]; then
  log "downloading linux-image-$kabi"
  rm -rf "$kdir" "$out/deb"
  mkdir -p "$out/deb"
  # apt-get download writes into the current directory; as root it warns that the _apt user
  # cannot write there, which is harmless.
  (cd "$out/deb" && apt-get download -q "linux-image-$kabi" 2>&1 | grep -v 'unsandboxed as root' || true)
  deb=$(ls "$out/deb"/linux-image-"$kabi"_*.deb)
  dpkg-deb -x "$deb" "$kdir.tmp"
  mv "$kdir.tmp" "$kdir"
  rm -rf "$out/deb"
fi
kver=$kabi
modroot="$kdir/lib/modules/$kver"
grep -q '^CONFIG_GPIO_CDEV_V1=y' "$kdir/boot/config-$kver" \
  || { echo "error: the guest kernel lacks GPIO_CDEV_V1, which libgpiod 1.6 uses" >&2; exit 1; }

# --- 3. gpio-virtio.ko, out of tree ----------------------------------------------------------
mdir="$out/module-$kabi"
if [[ ! -s $mdir/gpio-virtio.ko ]]; then
  log "building gpio-virtio.ko against linux-headers-$kabi"
  rm -rf "$mdir"; mkdir -p "$mdir"
  tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$mdir" --strip-components=3 \
    linux-source-6.1/drivers/gpio/gpio-virtio.c
  echo 'obj-m := gpio-virtio.o' >"$mdir/Kbuild"
  make -s -C "/usr/src/linux-headers-$kabi" M="$mdir" modules >"$mdir/build.log" 2>&1 \
    || { cat "$mdir/build.log" >&2; echo "error: the gpio-virtio module did not build" >&2; exit 1; }
fi
# The module goes beside the image's own (extra/ as `make modules_install` would put it), and
# depmod gives the modules.dep the initramfs is resolved from.
if [[ ! -s $modroot/extra/gpio-virtio.ko || $mdir/gpio-virtio.ko -nt $modroot/modules.dep ]]; then
  mkdir -p "$modroot/extra"
  cp "$mdir/gpio-virtio.ko" "$modroot/extra/"
  depmod -b "$kdir" "$kver"
fi

# --- 4. the guest helpers ---------------------------------------------------------------------
helper="$out/rr-gpio-loop"
if [[ ! -x $helper || $here/rr-gpio-loop.c -nt $helper ]]; then
  gcc -O2 -Wall -Wextra -Werror -static -o "$helper" "$here/rr-gpio-loop.c"
fi
blkhelper="$out/rr-blk-io"
if [[ ! -x $blkhelper || $here/rr-blk-io.c -nt $blkhelper ]]; then
  gcc -O2 -Wall -Wextra -Werror -static -o "$blkhelper" "$here/rr-blk-io.c"
fi

# --- 5. the initramfs ------------------------------------------------------------------------
build_initramfs() { # $1: the image to write
  local stage="$out/initramfs" app m rel t lib
  rm -rf "$stage"
  mkdir -p "$stage"/{bin,dev,proc,sys,tmp,lib/modules/"$kver"}
  cp /bin/busybox "$stage/bin/busybox"
  for app in $("$stage/bin/busybox" --list); do
    [[ -e $stage/bin/$app ]] || ln -s busybox "$stage/bin/$app"
  done
  # The modules: virtio_pci (the transport), gpio-virtio and virtio_blk, with what modules.dep
  # says they need;
  # depmod then writes the initramfs's own modules.dep for busybox modprobe.
  declare -A seen=()
  add_module() { # $1: a path relative to the modules directory, as modules.dep writes it
    [[ -z ${seen[$1]:-} ]] || return 0
    seen[$1]=1
    local d
    for d in $(awk -F': *' -v m="$1" '$1 == m { print $2; exit }' "$modroot/modules.dep"); do
      add_module "$d"
    done
    mkdir -p "$stage/lib/modules/$kver/$(dirname "$1")"
    cp "$modroot/$1" "$stage/lib/modules/$kver/$1"
  }
  for m in virtio_pci gpio-virtio virtio_blk; do
    rel=$(grep -oE "^[^:]*/${m}\.ko" "$modroot/modules.dep" | head -1)
    [[ -n $rel ]] || { echo "error: $m is not in $modroot/modules.dep" >&2; exit 1; }
    add_module "$rel"
  done
  cp "$modroot"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$kver/"
  depmod -b "$stage" "$kver"
  # The gpiod tools and the shared objects they load (ldd's "=> path" and the loader).
  for t in gpiodetect gpioinfo gpioget gpioset gpiomon gpiofind; do
    cp "$(command -v $t)" "$stage/bin/"
    for lib in $(ldd "$(command -v $t)" | grep -oE '/[^ ]+'); do
      mkdir -p "$stage$(dirname "$lib")"
      cp -L "$lib" "$stage$lib"
    done
  done
  cp "$helper" "$blkhelper" "$stage/bin/"
  install -m 0755 "$here/init" "$stage/init"
  install -m 0755 "$here/init-blk" "$stage/init-blk"
  (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -6) >"$1.tmp"
  mv "$1.tmp" "$1"
}
img="$out/initramfs-$kabi.cpio.gz"
for f in "$here/init" "$here/init-blk" "$helper" "$blkhelper" "$here/prepare.sh" "$modroot/modules.dep"; do
  if [[ ! -s $img || $f -nt $img ]]; then build_initramfs "$img"; break; fi
done
ln -sf "kernel-$kabi/boot/vmlinuz-$kver" "$out/vmlinuz"
ln -sf "initramfs-$kabi.cpio.gz" "$out/initramfs.cpio.gz"
log "kernel $out/vmlinuz ($kver), initramfs $out/initramfs.cpio.gz ($(du -kL "$out/initramfs.cpio.gz" | cut -f1) KiB)"
