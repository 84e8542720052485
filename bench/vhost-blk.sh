#!/usr/bin/env bash
# vhost-user-blk back-ends compared from the host: RefRuntime's refruntime-vhost-blk ("ours") and
# QEMU's qemu-storage-daemon ("qsd"), each with worker threads and with io_uring, all driven by RefRuntime's own front end
# (VhostUserBlkFrontend) in bench/RefRuntime.Benchmarks --vhost-blk-figures. Random reads and
# writes, QD1 and QD32, 4 KiB and 64 KiB, interleaved rounds (each back-end in turn per point);
# requests/s and back-end CPU time per request (/proc/PID/stat). Each back-end serves its own
# preallocated image (fallocate, then filled once with random data) in /dev/shm by default (tmpfs:
# the figures are the back-ends' own overhead, not a disk's). Writes
# perf-results/<date>_<machine>_<commit>_vhost-blk/ (vhost-blk.csv, vhost-blk-summary.md,
# environment.txt, vhost-blk.png and vhost-blk-cpu.png when the charts build).
# Usage: bench/vhost-blk.sh [--rounds N] [--seconds S | --requests N] [--image-mib M] [--image-dir DIR]
#                           [--ref-only] [--engines "threads io_uring"] [--spin] [--out DIR]
#   --rounds N     interleaved rounds (default 5); the summary gives medians over them
#   --seconds S    duration of each point (default 2); --requests N: a fixed count instead
#   --image-mib M  image size (default 256); --image-dir DIR: where the images go (default /dev/shm)
#   --ref-only     qemu-storage-daemon only (a smoke run of the harness without our back-end)
#   --engines "E.." I/O engines, each back-end run with each (default "threads io_uring": ours
#                  --aio E beside qemu-storage-daemon aio=E; ratios per engine, and ours on
#                  io_uring over qemu-storage-daemon's default aio=threads)
#   --spin         the front end spins on the used ring instead of sleeping on the call eventfd
#   --out DIR      write there instead of perf-results/...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
rounds=5 seconds=2 requests="" mib=256 imgdir=/dev/shm refonly="" spin="" out="" engines="threads io_uring"
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --requests) requests=$2; shift ;;
    --image-mib) mib=$2; shift ;;
    --image-dir) imgdir=$2; shift ;;
    --ref-only) refonly=1 ;;
    --engines) engines=$2; shift ;;
    --spin) spin=--spin ;;
    --out) out=$2; shift ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
qsd=${RR_QSD:-/usr/bin/qemu-storage-daemon}
[[ -x $qsd ]] || { echo "error: $qsd not found (Debian: apt-get install qemu-system-common)" >&2; exit 1; }
ours=${RR_VHOST_BLK:-$root/dist/bin/refruntime-vhost-blk}
if [[ -z $refonly && ! -x $ours ]]; then
  ./build.sh
  [[ -x $ours ]] || { echo "error: $ours was not built" >&2; exit 1; }
fi
dotnet build bench/RefRuntime.Benchmarks/RefRuntime.Benchmarks.csproj -c Release -v q -nologo >/dev/null

commit=$(git rev-parse --short HEAD 2>/dev/null || echo nocommit)
machine=$(hostname -s 2>/dev/null || echo host)
dir=${out:-perf-results/$(date -u +%Y-%m-%d)_${machine}_${commit}_vhost-blk}
mkdir -p "$dir"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "machine: $machine"
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "cores: $(nproc)"
  echo "dotnet: $(dotnet --version)"
  echo "kernel: $(uname -r)"
  echo "qemu-storage-daemon: $($qsd --version | head -1)"
  echo "images: ${mib} MiB each in $imgdir ($(stat -f -c %T "$imgdir"))"
  echo "mode: $rounds rounds, ${requests:+$requests requests}${requests:-$seconds s} per point${spin:+, spinning front end}"
} > "$dir/environment.txt"
cat "$dir/environment.txt"

tag="rr-vhost-blk-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$imgdir/$tag"-*.img /tmp/"$tag"-*.sock
}
trap cleanup EXIT
make_image() {
  fallocate -l "${mib}M" "$1"
  # Real data everywhere, so reads do not hit holes.
  head -c "$((mib << 20))" /dev/urandom | dd of="$1" bs=1M conv=notrunc status=none
}
wait_socket() {
  for _ in $(seq 1 500); do [[ -S $1 ]] && return 0; sleep 0.02; done
  echo "error: nothing listens at $1" >&2; exit 1
}
args=()
start_qsd() { # NAME AIO
  make_image "$imgdir/$tag-$1.img"
  "$qsd" --blockdev "driver=file,node-name=file0,filename=$imgdir/$tag-$1.img,cache.direct=off,aio=$2,discard=unmap" \
    --export "type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path=/tmp/$tag-$1.sock,writable=on,num-queues=1" &
  pids+=($!)
  wait_socket "/tmp/$tag-$1.sock"
  args+=(--backend "$1" "/tmp/$tag-$1.sock:${pids[-1]}")
}
start_ours() { # NAME AIO
  make_image "$imgdir/$tag-$1.img"
  "$ours" --socket-path "/tmp/$tag-$1.sock" --file "$imgdir/$tag-$1.img" --num-queues 1 --aio "$2" &
  pids+=($!)
  wait_socket "/tmp/$tag-$1.sock"
  args+=(--backend "$1" "/tmp/$tag-$1.sock:${pids[-1]}")
}
# Each engine beside its like: ours with worker threads against qemu-storage-daemon's aio=threads
# (its default), ours on io_uring against its aio=io_uring.
for aio in ${engines}; do
  [[ -z $refonly ]] && start_ours "ours-$aio" "$aio"
  start_qsd "qsd-$aio" "$aio"
  [[ -z $refonly ]] && args+=(--compare "ours-$aio/qsd-$aio")
done
[[ -z $refonly && $engines == *threads* && $engines == *io_uring* ]] && args+=(--compare "ours-io_uring/qsd-threads")
args+=(--rounds "$rounds" --out "$dir")
if [[ -n $requests ]]; then args+=(--requests "$requests"); else args+=(--seconds "$seconds"); fi
[[ -n $spin ]] && args+=("$spin")
dotnet bench/RefRuntime.Benchmarks/bin/Release/net10.0/RefRuntime.Benchmarks.dll --vhost-blk-figures "${args[@]}"
if dotnet build bench/RefRuntime.Charts/RefRuntime.Charts.csproj -c Release -v q -nologo >/dev/null 2>&1; then
  dotnet bench/RefRuntime.Charts/bin/Release/net10.0/refruntime-charts.dll "$dir" || true
fi
echo "==> $dir"
