#!/usr/bin/env bash
# The install step as a user meets it: scripts/install-sdk.sh into a scratch prefix (staged with
# DESTDIR, then moved: the .pc and CMake files must not record either path), then
#   * a C program built with exactly the README's pkg-config line runs with no LD_LIBRARY_PATH,
#     in both modes (exports and RR_INLINE), and records the SONAME librefruntime.so.MAJOR;
#   * the symlink chain is librefruntime.so -> .so.MAJOR -> .so.MAJOR.MINOR.PATCH;
#   * the README's static line (pkg-config refruntime-static) links librefruntime.a: the program
#     records no librefruntime.so and runs, in both modes;
#   * find_package(RefRuntime X.Y) accepts only the same 0.MINOR (semver for 0.x).
# Usage: pkgconfig_consumer.sh <unused dist prefix> <source.c> <work dir>
set -euo pipefail
src=$2 work=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")
IFS=. read -r major minor patch <<<"$version"
scratch=$(mktemp -d "$work/install.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
DESTDIR="$scratch/stage" "$root/scripts/install-sdk.sh" "$root/build/native-publish" /opt/rr >/dev/null
mv "$scratch/stage/opt/rr" "$scratch/prefix"
prefix="$scratch/prefix"
fail() { echo "FAIL pkgconfig_consumer: $*"; exit 1; }

[[ $(readlink "$prefix/lib/librefruntime.so") == "librefruntime.so.$major" ]] || fail "dev symlink"
[[ $(readlink "$prefix/lib/librefruntime.so.$major") == "librefruntime.so.$version" ]] || fail "SONAME symlink"
grep -rq "$scratch\|/opt/rr" "$prefix/lib/pkgconfig" "$prefix/lib/cmake" && fail "an installed file records the install path"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
for mode in "" "-DRR_INLINE"; do
  out="$work/pkgconfig_consumer${mode:+_inline}"
  # The README's line, word for word (plus -Werror -pedantic and the mode).
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 $mode "$src" $(pkg-config --cflags --libs refruntime) \
    -Wl,-rpath,"$(pkg-config --variable=libdir refruntime)" -o "$out"
  readelf -d "$out" | grep -q "NEEDED.*\[librefruntime.so.$major\]" || fail "the program does not record librefruntime.so.$major"
  env -u LD_LIBRARY_PATH "$out" >"$out.log" || fail "the program did not run"
  grep -q 'frees: 1 (expected 1)' "$out.log" || fail "unexpected output: $(cat "$out.log")"
done

for mode in "" "-DRR_INLINE"; do
  out="$work/pkgconfig_consumer_static${mode:+_inline}"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 $mode "$src" $(pkg-config --cflags --libs refruntime-static) -o "$out"
  readelf -d "$out" | grep -q "librefruntime" && fail "the static program records librefruntime.so"
  env -u LD_LIBRARY_PATH "$out" >"$out.log" || fail "the static program did not run"
  grep -q 'frees: 1 (expected 1)' "$out.log" || fail "unexpected output (static): $(cat "$out.log")"
done

# find_package version rules, against the relocated prefix.
probe() {
  local want=$1 dir="$scratch/cmake-$1"
  mkdir -p "$dir"
  printf 'cmake_minimum_required(VERSION 3.20)\nproject(p C)\nfind_package(RefRuntime %s REQUIRED)\n' "$want" >"$dir/CMakeLists.txt"
  cmake -S "$dir" -B "$dir/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1
}
probe "$major.$minor" || fail "find_package(RefRuntime $major.$minor) refused $version"
probe "$version" || fail "find_package(RefRuntime $version) refused"
probe "$major.$((minor + 1))" && fail "find_package(RefRuntime $major.$((minor + 1))) accepted $version"
probe "$((major + 1)).0" && fail "find_package(RefRuntime $((major + 1)).0) accepted $version"
if ((major == 0 && minor > 0)); then
  probe "0.$((minor - 1)).5" && fail "find_package(RefRuntime 0.$((minor - 1)).5) accepted $version (0.x minors are not compatible)"
fi
echo "PASS pkgconfig_consumer: relocated install, README pkg-config line runs without LD_LIBRARY_PATH (both modes), SONAME chain, refruntime-static links the archive and runs (both modes), find_package version rules"
