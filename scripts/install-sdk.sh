#!/usr/bin/env bash
# Installs the C SDK from a NativeAOT publish directory into a prefix (build.sh calls it after
# publishing; the tests call it to install into a scratch prefix):
#   PREFIX/lib/librefruntime.so.X.Y.Z, librefruntime.so.X (the SONAME), librefruntime.so (dev link)
#   PREFIX/lib/librefruntime.a              (self-contained static archive, scripts/make-static-archive.sh)
#   PREFIX/include/refruntime.h             (version macros stamped from Directory.Build.props)
#   PREFIX/lib/pkgconfig/refruntime.pc, refruntime-static.pc   (relocatable)
#   PREFIX/lib/cmake/RefRuntime/            (relocatable; 0.x: same minor version only)
# Usage: scripts/install-sdk.sh PUBLISH_DIR PREFIX      (DESTDIR=/staging is honoured)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pub=$1 prefix=$2
[[ $prefix == /* ]] || { echo "error: the prefix must be an absolute path" >&2; exit 2; }
for f in librefruntime.so librefruntime.a librefruntime.a.libs; do
  [[ -f $pub/$f ]] || { echo "error: no $f in $pub (run ./build.sh)" >&2; exit 1; }
done
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "error: bad <Version> '$version'" >&2; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
step() { printf '==> %s\n' "$*"; }
dest="${DESTDIR:-}$prefix"
step "installing the C SDK into $dest"
lib="librefruntime.so.$major.$minor.$patch"
rm -rf "$dest/include/refruntime.h" "$dest/lib/pkgconfig/refruntime.pc" "$dest/lib/pkgconfig/refruntime-static.pc" \
  "$dest/lib/cmake/RefRuntime" "$dest"/lib/librefruntime.so* "$dest/lib/librefruntime.a"
mkdir -p "$dest/lib/pkgconfig" "$dest/include" "$dest/lib/cmake/RefRuntime"
install -m 0755 "$pub/librefruntime.so" "$dest/lib/$lib"
ln -sf "$lib" "$dest/lib/librefruntime.so.$major"   # the SONAME the dynamic loader looks for
ln -sf "librefruntime.so.$major" "$dest/lib/librefruntime.so"   # what -lrefruntime finds
install -m 0644 "$pub/librefruntime.a" "$dest/lib/librefruntime.a"
# The system libraries the archive needs after it (-ldl -lrt -lm -pthread: NativeAOT's own list).
static_libs=$(tr '\n' ' ' < "$pub/librefruntime.a.libs" | sed 's/ *$//')
static_cmake=$(tr ' ' '\n' <<<"$static_libs" | sed -e 's/^-pthread$/Threads::Threads/' -e 's/^-l//' | tr '\n' ' ' | sed 's/ *$//')
# The header carries the version macros from the same single source.
sed -e "s/^#define RR_VERSION_MAJOR .*/#define RR_VERSION_MAJOR $major/" \
    -e "s/^#define RR_VERSION_MINOR .*/#define RR_VERSION_MINOR $minor/" \
    -e "s/^#define RR_VERSION_PATCH .*/#define RR_VERSION_PATCH $patch/" \
    "$root/src/Native/RefRuntime.Native/include/refruntime.h" > "$dest/include/refruntime.h"
chmod 0644 "$dest/include/refruntime.h"
sed -e "s:@VERSION@:$version:" "$root"/src/Native/RefRuntime.Native/pkg/refruntime.pc.in > "$dest/lib/pkgconfig/refruntime.pc"
sed -e "s:@VERSION@:$version:" -e "s:@LIBS@:$static_libs:" "$root"/src/Native/RefRuntime.Native/pkg/refruntime-static.pc.in \
  > "$dest/lib/pkgconfig/refruntime-static.pc"
sed -e "s:@SONAME@:librefruntime.so.$major:" -e "s/@STATIC_LIBS@/$static_cmake/" \
  "$root"/src/Native/RefRuntime.Native/pkg/RefRuntimeConfig.cmake > "$dest/lib/cmake/RefRuntime/RefRuntimeConfig.cmake"
# 0.x: a minor release may change behaviour (semver), so find_package(RefRuntime 0.1) accepts
# 0.1.z only; from 1.0 on, any newer minor of the same major.
cat > "$dest/lib/cmake/RefRuntime/RefRuntimeConfigVersion.cmake" <<CMK
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "$major" AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  if(NOT "$major" STREQUAL "0" OR PACKAGE_FIND_VERSION_MINOR STREQUAL "$minor")
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
endif()
if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
# A 64-bit library: refuse a 32-bit consumer.
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "$version (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
CMK

step "installed: $dest/lib/$lib ($(du -h "$dest/lib/$lib" | cut -f1)), librefruntime.a ($(du -h "$dest/lib/librefruntime.a" | cut -f1)), header, pkg-config, CMake package"
