#!/usr/bin/env bash
# Thread scaling, 1..N threads (N = the machine's cores): publishes the NativeAOT scaling binary
# if it is not built yet (needs the .NET SDK), runs it, and writes
# perf-results/<date>_<machine>_<commit>_scaling/{summary.md,scaling.csv,environment.txt,scaling.png}
# (summary.md: the environment and the table as printed, with the chart).
# The published binary needs no .NET: on a machine without the SDK, build it elsewhere
# (bench/scaling.sh --publish-only) and bring build/scaling/ along.
# Usage: bench/scaling.sh [--publish-only] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/build/scaling/refruntime-scaling"
seconds=2 publish_only=""
while (($#)); do
  case "$1" in
    --publish-only) publish_only=1 ;;
    --seconds) seconds=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! -x "$bin" || -n "$publish_only" ]]; then
  dotnet publish bench/RefRuntime.Scaling -c Release -nologo -v q -o "$root/build/scaling"
fi
[[ -n "$publish_only" ]] && exit 0
n=$(nproc)
threads=1; t=2
while ((t <= n)); do threads="$threads,$t"; t=$((t * 2)); done
((n & (n - 1))) && threads="$threads,$n"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
dir="perf-results/$(date -u +%Y-%m-%d)_$(hostname -s 2>/dev/null || echo host)_${commit}_scaling"
mkdir -p "$dir"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "cores: $n"
  echo "threads: $threads, ${seconds}s per point, one thread pinned per CPU"
} > "$dir/environment.txt"
table=$("$bin" --threads "$threads" --seconds "$seconds" --csv "$dir/scaling.csv" | tee /dev/stderr)
{
  echo "# RefRuntime thread scaling: $(basename "$dir")"
  echo
  echo '```'
  cat "$dir/environment.txt"
  echo '```'
  echo
  echo '```'
  echo "$table"
  echo '```'
  echo
  echo "![scaling](scaling.png)"
} > "$dir/summary.md"
if command -v dotnet >/dev/null; then
  dotnet run --project bench/RefRuntime.Charts -c Release -- "$dir"
else
  echo "(no .NET here: draw the chart elsewhere with: dotnet run --project bench/RefRuntime.Charts -c Release -- $dir)"
fi
echo "==> wrote $dir"
