#!/usr/bin/env bash
# The comparative benchmark suite. Writes perf-results/<date>_<machine>_<commit>/ with the raw
# BenchmarkDotNet exports, the C-host CSV, the environment, the charts (PNG) and summary.md.
# Usage: bench/run.sh [--quick] [--aot] [--filter 'GLOB [GLOB...]']
#   --quick  short BenchmarkDotNet jobs (3 warm-ups + 5 iterations of 100 ms): the whole suite in
#            under 10 minutes on 2 cores; noisier than the standard job
#   --aot    add a NativeAOT job beside the JIT job (summary.md then compares the two); the
#            NativeAOT build of the benchmark project adds about 5 minutes
#   other options go to BenchmarkDotNet as they are (e.g. --list flat, --iterationCount 5);
#   --list only lists the benchmarks and writes nothing
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
quick="" aot="" filter='*' list="" passthrough=()
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --quick) quick=--quick ;;
    --aot) aot=--aot ;;
    --filter) [[ $# -ge 2 ]] || { echo "error: --filter needs a pattern" >&2; exit 2; }
              filter=$2; shift ;;
    --list) list=1; passthrough+=("$1")
            if [[ $# -ge 2 && $2 != -* ]]; then passthrough+=("$2"); shift; fi ;;
    *) passthrough+=("$1") ;;
  esac
  shift
done
if [[ -n $list ]]; then
  set -f
  # shellcheck disable=SC2086
  (cd bench/RefRuntime.Benchmarks && dotnet run -c Release -- --filter $filter "${passthrough[@]}")
  exit
fi
scripts/ensure-deps.sh bench
./build.sh --no-deps

commit=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
machine=$(hostname -s 2>/dev/null || echo host)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
dir="perf-results/$(date -u +%Y-%m-%d)_${machine}_${commit}"
mkdir -p "$dir"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "machine: $machine"
  echo "cpu: $cpu"
  echo "cores: $(nproc)"
  echo "dotnet: $(dotnet --version)"
  echo "cc: $(cc --version | head -1)"
  echo "kernel: $(uname -r)"
  echo "mode: ${quick:-full}${aot:+ +nativeaot}"
} > "$dir/environment.txt"
cat "$dir/environment.txt"

echo "==> C host benchmarks"
make -s -C bench/c DIST="$root/dist" OUT="$root/build/bench-c"
"$root/build/bench-c/rr_bench" "$dir/c-bench.csv" | tee "$dir/c-bench.txt"
"$root/build/bench-c/rcu_bench" "$dir/c-rcu.csv" | tee "$dir/c-rcu.txt"
"$root/build/bench-c/revoke_bench" "$dir/c-revoke.csv" | tee "$dir/c-revoke.txt"
"$root/build/bench-c/vq_bench" "$dir/c-vq.csv" | tee "$dir/c-vq.txt"

echo "==> BenchmarkDotNet ($filter)"
set -f # the filter patterns go to BenchmarkDotNet, not to the shell
# shellcheck disable=SC2086
(cd bench/RefRuntime.Benchmarks && dotnet run -c Release -- $quick $aot --filter $filter "${passthrough[@]}" \
  --artifacts "$root/$dir/bdn" --exporters csv markdown) | tee "$dir/bdn.log" | grep -E '^\|' || true
set +f
# The HTML reports repeat the CSV and markdown tables: keep one copy of each table.
rm -f "$dir"/bdn/results/*-report.html

echo "==> charts"
dotnet run --project bench/RefRuntime.Charts -c Release -- "$dir"
bench/summarize.sh "$dir" > "$dir/summary.md"
echo "==> wrote $dir/summary.md"
cat "$dir/summary.md"
