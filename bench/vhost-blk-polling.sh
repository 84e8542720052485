#!/usr/bin/env bash
# The polling-window experiment: refruntime-vhost-blk with --poll-us 0 and 50 on each engine
# beside qemu-storage-daemon with aio=io_uring and aio=threads, all driven by RefRuntime's own
# front end (bench/RefRuntime.Benchmarks --vhost-blk-figures), interleaved point by point, at
# queue depth 1 (4 KiB reads and writes, 64 KiB reads) and 4 KiB QD32 reads. Images: 256 MiB of
# random data each in /dev/shm. Writes vhost-blk.csv and vhost-blk-summary.md into OUT.
# Usage: bench/vhost-blk-polling.sh [--rounds N] [--seconds S] [--out DIR]   (after ./build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 seconds=2 out=build/bench-logs/vhost-blk-polling
while (($#)); do
  case "$1" in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
ours_bin=${RR_VHOST_BLK:-dist/bin/refruntime-vhost-blk}
[[ -x $ours_bin ]] || { echo "error: $ours_bin not built (./build.sh)" >&2; exit 1; }
dotnet build bench/RefRuntime.Benchmarks/RefRuntime.Benchmarks.csproj -c Release -v q -nologo >/dev/null
tag="rr-poll-$$" pids=() args=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -f /dev/shm/"$tag"-*.img /tmp/"$tag"-*.sock; }
trap cleanup EXIT
start() { # NAME COMMAND... (the command gets SOCKET IMAGE appended)
  local n=$1; shift
  local img=/dev/shm/$tag-$n.img sock=/tmp/$tag-$n.sock
  fallocate -l 256M "$img"
  head -c 256M /dev/urandom | dd of="$img" bs=1M conv=notrunc status=none
  "$@" "$sock" "$img" & pids+=($!)
  for _ in $(seq 1 500); do [[ -S $sock ]] && break; sleep 0.02; done
  args+=(--backend "$n" "$sock:${pids[-1]}")
}
ours() { local poll=$1 aio=$2; exec "$ours_bin" --aio "$aio" --poll-us "$poll" --socket-path "$3" --file "$4"; }
qsd() { exec qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$3,cache.direct=off,aio=$1" \
  --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$2,writable=on,num-queues=1"; }
start ours-io_uring-poll0 ours 0 io_uring
start ours-io_uring-poll50 ours 50 io_uring
start ours-threads-poll0 ours 0 threads
start ours-threads-poll50 ours 50 threads
start qsd-io_uring qsd io_uring
start qsd-threads qsd threads
mkdir -p "$out"
dotnet bench/RefRuntime.Benchmarks/bin/Release/net10.0/RefRuntime.Benchmarks.dll --vhost-blk-figures "${args[@]}" \
  --point "randread QD1 4K" --point "randwrite QD1 4K" --point "randread QD1 64K" --point "randread QD32 4K" \
  --rounds "$rounds" --seconds "$seconds" --out "$out"
echo "==> $out"
