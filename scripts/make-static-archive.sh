#!/usr/bin/env bash
# Makes librefruntime.a, one self-contained static archive, from a NativeAOT publish directory
# (build.sh calls it after publishing librefruntime.so). A C host links it with
#   cc app.c PREFIX/lib/librefruntime.a -lm -ldl -lrt -pthread     (pkg-config: refruntime-static)
# and needs no .NET, no libstdc++ and no other archive.
#
# How. NativeAOT's static-library mode (NativeLib=Static) emits only the compiled managed code; a
# host would also have to link the runtime's own static pieces (GC, runtime helpers, System.Native,
# the bootstrapper object, minipal, a C++ shim) in NativeAOT's order. Instead:
#   1. `ld -r` links the object ILC compiled (the same bytes in Shared and Static mode) with those
#      pieces, listed by the ILCompiler package's own targets (librefruntime.static-inputs, written
#      by RefRuntime.Native.csproj), into one relocatable object. Archives contribute only the
#      members the code needs, as in a final link.
#   2. `objcopy` keeps only the rr_* functions global: every runtime symbol (Rh*, SystemNative_*,
#      minipal_*, the shim's operator new/delete, ...) becomes local, so a host that defines any of
#      those names, or links another copy of them, gets no clash; debug sections are dropped (the
#      .so is stripped too).
#   3. `ar` stores that one object: the first rr_* reference pulls the whole runtime in, with its
#      constructor (.init_array) that starts the runtime before main, as the .so's does at load.
# Usage: scripts/make-static-archive.sh PUBLISH_DIR     (writes PUBLISH_DIR/librefruntime.a)
set -euo pipefail
pub=${1:?usage: make-static-archive.sh PUBLISH_DIR}
inputs="$pub/librefruntime.static-inputs"
[[ -f $inputs ]] || { echo "error: no $inputs (publish src/Native/RefRuntime.Native first: ./build.sh)" >&2; exit 1; }
objects=() libraries=() system=()
while read -r kind path; do
  case "$kind" in
    object) objects+=("$path") ;;
    library) libraries+=("$path") ;;
    system) system+=("$path") ;;
    *) echo "error: $inputs: unknown line '$kind $path'" >&2; exit 1 ;;
  esac
done < "$inputs"
((${#objects[@]} == 1)) || { echo "error: $inputs names ${#objects[@]} objects, expected 1" >&2; exit 1; }
for f in "${objects[@]}" "${libraries[@]}"; do
  [[ -f $f ]] || { echo "error: $f (listed in $inputs) is missing" >&2; exit 1; }
done

work=$(mktemp -d "$pub/.static.XXXXXX")
trap 'rm -rf "$work"' EXIT
ld -r -o "$work/merged.o" "${objects[0]}" --start-group "${libraries[@]}" --end-group
# Keep global exactly what the library exports: the rr_* functions.
nm -g --defined-only "$work/merged.o" | awk '$3 ~ /^rr_/ { print $3 }' > "$work/keep"
[[ -s $work/keep ]] || { echo "error: no rr_* symbols in the merged object" >&2; exit 1; }
objcopy --strip-debug --keep-global-symbols="$work/keep" "$work/merged.o" "$work/librefruntime.o"
rm -f "$pub/librefruntime.a"
ar crsD "$pub/librefruntime.a" "$work/librefruntime.o"
# What a host adds after the archive; pkg-config's refruntime-static.pc and the CMake target carry it.
printf '%s\n' "${system[@]}" > "$pub/librefruntime.a.libs"
echo "==> made librefruntime.a ($(du -h "$pub/librefruntime.a" | cut -f1), $(wc -l < "$work/keep") rr_* functions global, the runtime inside and local; link with: ${system[*]})"
