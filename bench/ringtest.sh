#!/usr/bin/env bash
# The Linux kernel's split virtqueue as a peer of the C ring table (bench/c/vq_bench.c): the
# ring benchmark of the Linux source tree, tools/virtio/ringtest, taken from Debian's
# linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz) and built under build/ringtest at run time
# (extracted and built once, then reused; nothing of it is in this repository).
#
# What runs: virtio_ring_0_9, ringtest's model of the split ring, written to follow roughly how
# drivers/virtio/virtio_ring.c drives it (struct vring from <linux/virtio_ring.h>: descriptor
# table, avail ring, used ring, event index), 256 entries like vq_bench's queue, a guest thread
# adding buffers and a host thread returning them, both polling (no --sleep: no kicks, no calls,
# no eventfd), pinned to two CPUs.
# (ringtest's `ring` is not the split ring but an experimental descriptor ring, a forerunner of
# the packed ring; --impls "virtio_ring_0_9 ring" adds it as a row of its own.)
# ringtest prints nothing; each run is timed by the wall clock over --buffers buffers, less the
# median time of a run of one buffer (process start, ring allocation, thread creation).
#
# Batch sizes: the same as vq_bench's table (1 2 4 8 16 32). In ringtest's polling mode --batch
# only spaces the kicks, and there are none: the guest publishes the avail index after every
# buffer and the host the used index after every buffer, whatever the batch. The rows therefore
# measure the same loop, and their spread is the noise of the run; ringtest has no batched
# publish to compare with vq_bench's batches.
#
# Prints a table (with the one-way cross-CPU latency between the two CPUs before and after, from
# bench/c/one_way.c) and writes DIR/c-ringtest.csv:
#   impl,batch,ns_per_buffer_median,runs,buffers,ns_per_buffer_min,ns_per_buffer_max,host_cpu,guest_cpu,latency_ns
# Usage: bench/ringtest.sh [--out DIR] [--runs N] [--buffers N] [--cpus HOST,GUEST] [--impls 'NAME...']
#   --out DIR     where c-ringtest.csv goes (default: build/ringtest/results)
#   --runs N      timed runs per batch size; the median is the figure (default 3)
#   --buffers N   buffers per run (default 1048576, vq_bench's count)
#   --cpus H,G    the CPUs of the host and the guest thread (default 0,1)
#   --impls LIST  ringtest programs to run (default virtio_ring_0_9)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
out="$root/build/ringtest/results" runs=3 buffers=1048576 cpus=0,1 impls="virtio_ring_0_9"
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --out|--runs|--buffers|--cpus|--impls)
      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --out) out=$2 ;; --runs) runs=$2 ;; --buffers) buffers=$2 ;; --cpus) cpus=$2 ;; --impls) impls=$2 ;;
      esac
      shift ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "error: --runs needs a positive number" >&2; exit 2; }
[[ $buffers =~ ^[1-9][0-9]*$ && $buffers -lt 2147483647 ]] || { echo "error: --buffers needs a positive number below 2^31" >&2; exit 2; }
[[ $cpus =~ ^[0-9]+,[0-9]+$ ]] || { echo "error: --cpus needs HOST,GUEST (two CPU numbers)" >&2; exit 2; }
host_cpu=${cpus%,*} guest_cpu=${cpus#*,}
[[ $host_cpu != "$guest_cpu" ]] || { echo "error: --cpus needs two different CPUs" >&2; exit 2; }
for c in "$host_cpu" "$guest_cpu"; do
  taskset -c "$c" true 2>/dev/null || { echo "error: cannot run on CPU $c (online: $(cat /sys/devices/system/cpu/online))" >&2; exit 1; }
done
batches=(1 2 4 8 16 32) # vq_bench's k_batches

# ---- extract and build (cached) ----
tarball=/usr/src/linux-source-6.1.tar.xz
[[ -f $tarball ]] || { echo "error: $tarball is missing: scripts/ensure-deps.sh bench installs it (Debian linux-source-6.1)" >&2; exit 1; }
base="$root/build/ringtest"
src="$base/linux-source-6.1/tools/virtio/ringtest"
stamp="$base/.extracted"
want_stamp="$(stat -c '%s %Y' "$tarball") $tarball"
if [[ ! -f $src/main.c || "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]]; then
  echo "==> extracting tools/virtio/ringtest from $tarball (about 15 s)" >&2
  rm -rf "$base/linux-source-6.1" "$stamp"
  mkdir -p "$base"
  tar -xJf "$tarball" -C "$base" --wildcards '*/tools/virtio/ringtest/*'
  [[ -f $src/main.c ]] || { echo "error: $tarball has no linux-source-6.1/tools/virtio/ringtest" >&2; exit 1; }
  echo "$want_stamp" > "$stamp"
fi
# shellcheck disable=SC2086
make -s -C "$src" $impls >&2
make -s -C bench/c OUT="$root/build/bench-c" "$root/build/bench-c/one_way" >&2
one_way() { taskset -c "$host_cpu,$guest_cpu" "$root/build/bench-c/one_way"; }

# ---- measure ----
now_ns() { date +%s%N; }
# run_ns PROG BATCH CYCLES -> wall-clock ns of one run (a run that fails or passes 10 minutes is an error)
run_ns() {
  local t0 t1
  t0=$(now_ns)
  if ! timeout 600 "$src/$1" --host-affinity "$host_cpu" --guest-affinity "$guest_cpu" --batch "$2" --run-cycles "$3"; then
    echo "error: $1 --batch $2 --run-cycles $3 failed or timed out" >&2
    exit 1
  fi
  t1=$(now_ns)
  echo $((t1 - t0))
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

lat0=$(one_way)
rows=()
for impl in $impls; do
  # The fixed cost of a run: process start, ring allocation, the two threads (one buffer).
  fixed=$(for _ in 1 2 3 4 5; do run_ns "$impl" 1 1; done | median)
  run_ns "$impl" 1 "$buffers" >/dev/null # warm-up
  for b in "${batches[@]}"; do
    [[ -t 2 ]] && printf '\r  measuring... %s batch %d\033[K' "$impl" "$b" >&2
    per=$(for ((r = 0; r < runs; r++)); do
      awk -v t="$(run_ns "$impl" "$b" "$buffers")" -v f="$fixed" -v n="$buffers" 'BEGIN { printf "%.3f\n", (t - f) / n }'
    done | sort -g)
    rows+=("$impl $b $(median <<<"$per") $(head -1 <<<"$per") $(tail -1 <<<"$per")")
  done
done
[[ -t 2 ]] && printf '\r\033[K' >&2
lat1=$(one_way)
lat=$(awk -v a="$lat0" -v b="$lat1" 'BEGIN { printf "%.1f", (a + b) / 2 }')

echo "Linux split ring (tools/virtio/ringtest of linux-source-6.1), 2 threads polling, host on CPU $host_cpu, guest on CPU $guest_cpu"
echo "  per buffer: wall clock of a run of $buffers buffers, less a one-buffer run; median of $runs runs"
echo "  virtio_ring_0_9 = struct vring (desc, avail, used; event index), modelled on drivers/virtio/virtio_ring.c, 256 entries"
echo "  batch: --batch only spaces kicks, and polling has none; every buffer publishes its index (rows differ by noise)"
echo "  runs: slowest/fastest run of the row"
printf '%-16s %5s %10s %6s\n' impl batch "ns/buffer" runs
for r in "${rows[@]}"; do
  read -r impl b med lo hi <<<"$r"
  awk -v i="$impl" -v b="$b" -v m="$med" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%-16s %5d %10.1f %5.1fx\n", i, b, m, (lo > 0 ? hi / lo : 0) }'
done
echo "cross-CPU one-way latency (CPUs $host_cpu,$guest_cpu) $lat0 ns before, $lat1 ns after"

mkdir -p "$out"
{
  echo "impl,batch,ns_per_buffer_median,runs,buffers,ns_per_buffer_min,ns_per_buffer_max,host_cpu,guest_cpu,latency_ns"
  for r in "${rows[@]}"; do
    read -r impl b med lo hi <<<"$r"
    echo "$impl,$b,$med,$runs,$buffers,$lo,$hi,$host_cpu,$guest_cpu,$lat"
  done
} > "$out/c-ringtest.csv"
