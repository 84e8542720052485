#!/usr/bin/env bash
# The main job: the driver pair end to end (examples/PairDemo: consumer code -> virtio-gpio front
# end -> split virtqueue -> device thread -> PL061 driver -> MMIO -> PL061 model: a line driven,
# an interrupt received across the ring, hot-unplug, then a short table of the same operations
# over the ring, the driver directly and a lock-based queue), then the C SDK in dist/ with the C
# demo against it (exported calls and the RR_INLINE fast paths) and the C-host ring table.
# Usage: ./run.sh [--help]   (a first run builds everything: a few minutes, with progress shown)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "error: unknown option '$1' (see ./run.sh --help)" >&2; exit 2 ;;
esac
scripts/ensure-deps.sh bench
./build.sh --no-deps

echo
echo "==> examples/PairDemo: the virtio-gpio driver pair over the PL061 (the table takes about 10 s, longer on a busy machine)"
dotnet run --no-build -c Release --project examples/PairDemo

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
echo "==> C host: the split virtqueue through the C ABI beside a plain C ring (same run; half a minute, up to two on a busy machine)"
make -s -C bench/c DIST="$root/dist" OUT="$root/build/bench-c"
"$root/build/bench-c/vq_bench" -
echo
echo "Full comparative suite (BenchmarkDotNet + C host, results into perf-results/): bench/run.sh"
