#!/usr/bin/env bash
# The comparative benchmark suite. Writes perf-results/<date>_<machine>_<commit>/ with what we keep
# of a run: summary.md (goals, tables), the CSVs (bdn/results/*-report.csv, c-*.csv),
# environment.txt and the charts (PNG). The console output of every step (BenchmarkDotNet's log,
# the C tables as printed) goes to build/bench-logs/<same name>/, not into perf-results/.
# Usage: bench/run.sh [--quick] [--aot] [--filter 'GLOB [GLOB...]']
#   --quick  short BenchmarkDotNet jobs (3 warm-ups + 5 iterations of 150 ms): the whole suite in
#            about 10 minutes on 2 cores; noisier than the standard job
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
run="$(date -u +%Y-%m-%d)_${machine}_${commit}"
dir="perf-results/$run"
logs="$root/build/bench-logs/$run"
rm -rf "$logs"
mkdir -p "$dir" "$logs"
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

echo "==> C host benchmarks (each table takes a minute or two)"
make -s -C bench/c DIST="$root/dist" OUT="$root/build/bench-c"
# The printed tables go to summary.md (via $logs); the CSVs stay in the run folder.
"$root/build/bench-c/rr_bench" "$dir/c-bench.csv" | tee "$logs/c-bench.txt"
"$root/build/bench-c/rcu_bench" "$dir/c-rcu.csv" | tee "$logs/c-rcu.txt"
"$root/build/bench-c/revoke_bench" "$dir/c-revoke.csv" | tee "$logs/c-revoke.txt"
"$root/build/bench-c/vq_bench" "$dir/c-vq.csv" | tee "$logs/c-vq.txt"
# The ring's CPU work per buffer with no cross-CPU transfer (one thread, both sides).
"$root/build/bench-c/vq_bench" --cost | tee "$logs/c-vq-cost.txt"
# The same two programs linked with the static archive: the export transition and the ring when
# the library's thread-local storage is the executable's (no __tls_get_addr per call).
"$root/build/bench-c/rr_bench_static" "$dir/c-bench-static.csv" | tee "$logs/c-bench-static.txt"
"$root/build/bench-c/vq_bench_static" "$dir/c-vq-static.csv" | tee "$logs/c-vq-static.txt"
# The Linux kernel's split ring (tools/virtio/ringtest, built at run time) beside vq_bench's table.
bench/ringtest.sh --out "$dir" | tee "$logs/c-ringtest.txt"

echo "==> BenchmarkDotNet ($filter; log: $logs/bdn.log)"
set -f # the filter patterns go to BenchmarkDotNet, not to the shell
# Artifacts (per-class logs, and the markdown/HTML copies of each table that BenchmarkDotNet's
# default config also writes) go to build/; the CSV of each class is copied into the run folder.
# Progress: a line per benchmark as it starts, with the count left and the estimated finish,
# then the result tables.
# shellcheck disable=SC2086
(cd bench/RefRuntime.Benchmarks && dotnet run -c Release -- $quick $aot --filter $filter "${passthrough[@]}" \
  --artifacts "$logs/bdn") | tee "$logs/bdn.log" | grep -E '^\||^// Benchmark: |^// \*\* Remained' || true
set +f
mkdir -p "$dir/bdn/results"
if compgen -G "$logs/bdn/results/*-report.csv" >/dev/null; then
  cp "$logs"/bdn/results/*-report.csv "$dir/bdn/results/"
else
  rmdir "$dir/bdn/results" "$dir/bdn" 2>/dev/null || true
fi

echo "==> charts"
dotnet run --project bench/RefRuntime.Charts -c Release -- "$dir"
bench/summarize.sh "$dir" "$logs" > "$dir/summary.md"
echo "==> wrote $dir/summary.md"
cat "$dir/summary.md"
