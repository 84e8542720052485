#!/usr/bin/env bash
# The main job: builds the C SDK into dist/, runs the C demo against it (exported calls and the
# RR_INLINE fast paths), then prints a short side-by-side benchmark of what exists so far.
# Usage: ./run.sh
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
scripts/ensure-deps.sh bench
./build.sh --no-deps

out="$root/build/demo"
mkdir -p "$out"
export PKG_CONFIG_PATH="$root/dist/lib/pkgconfig"
flags=$(pkg-config --cflags --libs refruntime)
echo
echo "==> examples/c/refcount_demo.c (a C host linking librefruntime.so)"
# shellcheck disable=SC2086
cc -std=c11 -O2 -Wall -Wextra examples/c/refcount_demo.c $flags -Wl,-rpath,"$root/dist/lib" -o "$out/refcount_demo"
"$out/refcount_demo"
# shellcheck disable=SC2086
cc -std=c11 -O2 -Wall -Wextra -DRR_INLINE examples/c/refcount_demo.c $flags -Wl,-rpath,"$root/dist/lib" -o "$out/refcount_demo_inline"
echo "(RR_INLINE build: $("$out/refcount_demo_inline" | tail -1))"

echo
echo "==> C host: RefRuntime beside the C baselines (same run)"
make -s -C bench/c DIST="$root/dist" OUT="$root/build/bench-c"
"$root/build/bench-c/rr_bench" - 2000000
echo
"$root/build/bench-c/rcu_bench" - 2000000
echo
echo "Full comparative suite (BenchmarkDotNet + C host, results into perf-results/): bench/run.sh"
