#!/usr/bin/env bash
# Builds a C program with only `pkg-config --cflags --libs refruntime` (both modes) and runs it.
# Usage: pkgconfig_consumer.sh <dist prefix> <source.c> <work dir>
set -euo pipefail
prefix=$1 src=$2 work=$3
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs refruntime)
for mode in "" "-DRR_INLINE"; do
  out="$work/pkgconfig_consumer${mode:+_inline}"
  # shellcheck disable=SC2086
  cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 $mode "$src" $flags -o "$out"
  LD_LIBRARY_PATH="$prefix/lib" "$out" >"$out.log"
  grep -q 'frees: 1 (expected 1)' "$out.log"
done
echo "PASS pkgconfig_consumer: built and ran with pkg-config flags, export and inline"
