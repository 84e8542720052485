#!/usr/bin/env bash
# The QEMU block test: a Debian 12 guest drives a vhost-user-blk back-end through QEMU 7.2's
# vhost-user-blk-pci with Linux's own virtio_blk driver, busybox (dd, blkdiscard, blockdev, sync)
# and rr-blk-io (tests/qemu/rr-blk-io.c: O_DIRECT native AIO up to QD32, pattern fill/verify).
#
# Test (default):
#   1. tests/qemu/prepare.sh builds the guest under build/qemu (the GPIO test's kernel and
#      initramfs, which also hold virtio_blk, rr-blk-io and tests/qemu/init-blk);
#   2. the host writes two image files under build/qemu/blk: rw.img (128 MiB, a known pattern in
#      its first 16 MiB) and ro.img (64 MiB, a pattern all over), and starts one back-end per image,
#      rw.img with 2 queues, ro.img exported read-only;
#   3. QEMU boots the guest with both disks (vda rw, vdb ro; 2 vCPUs so that both queues of vda are
#      used); tests/qemu/init-blk prints one "RRQ PASS|FAIL" line per check (size, ro flag, queue
#      count, the host's pattern, O_DIRECT/buffered/QD32 write and read-back, dd, discard,
#      write-zeroes, sync and fsync/flush, refused writes on the ro disk);
#   4. after power-off the host stops the back-ends with SIGTERM and checks the image files: every
#      range the guest wrote and acknowledged holds the guest's pattern, the discarded and zeroed
#      ranges hold zeroes, and ro.img is unchanged.
#
# Bench (--bench): one boot with two disks of the same size, vda on the first back-end and vdb
# on the second (default: ours and qemu-storage-daemon); the guest runs interleaved rounds of
# 4 KiB QD1 read/write, 64 KiB QD1 read, 4 KiB QD32 random read/write and 64 KiB QD8 random
# read/write on each disk; the host samples each back-end's CPU time (utime + stime of all its
# threads, /proc/PID/stat) around every run and over the whole bench, and divides by the requests
# the guest's block layer completed on that disk. Writes runs.csv and summary.md (medians over the
# rounds) to --out DIR. Under TCG the guest is the bottleneck, so IOPS and MB/s of the two
# back-ends may look alike; CPU per request is the figure that tells them apart.
#
# Prints "PASS|FAIL blk/<check>: detail" lines and ends with "N passed, N failed" (test.sh --qemu
# adds these to its totals). Logs: build/qemu/blk-guest.log (the console), build/qemu/blk-backend-*.log.
#
# Usage: tests/qemu/run-blk.sh [--blk-backend ours|qsd] [--smoke]
#        tests/qemu/run-blk.sh --bench [--backends ours,qsd] [--rounds 3] [--secs 2] [--out DIR]
#   --blk-backend K  the back-end serving the test's disks: ours (refruntime-vhost-blk; the
#                    default, or RR_BLK_BACKEND) or qsd (qemu-storage-daemon, QEMU's own
#                    vhost-user-blk export)
#   --smoke          boot without disks: checks the guest side alone (modules load)
#   --bench          the benchmark above (tests/qemu/blk-bench.sh is a shorthand for it)
#   --backends A,B   bench: the back-ends of vda and vdb (default ours,qsd)
#   --rounds N       bench: rounds (default 3)      --secs S   bench: seconds per point (default 2)
#   --size MIB       bench: the size of each image (default 128)
#   --out DIR        bench: where runs.csv and summary.md go (default build/qemu/blk-bench)
# Environment:
#   RR_VHOST_BLK     our back-end (default dist/bin/refruntime-vhost-blk), run as
#                    PROGRAM --socket-path SOCK --file IMAGE [--read-only] --num-queues N
#   RR_QSD_BIN       qemu-storage-daemon (default: the one on PATH)
#   RR_QEMU_BIN      the QEMU (default qemu-system-x86_64: Debian 12's QEMU 7.2)
#   RR_QEMU_ACCEL    tcg or kvm (default: kvm only where a usable one exists)
#   RR_QEMU_SMP      QEMU's -smp (default 2 for the test, 1,maxcpus=2 for the bench: see below)
#   RR_BLK_QUEUES    queues of each disk (default 2 for the test's vda, 1 for the bench)
#   RR_QEMU_TIMEOUT  seconds for the whole boot (default 600; the bench adds its own length)
#   RR_QEMU_SILENCE  seconds without console output taken as a hang (default 180)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/qemu/lib.sh"
out="$root/build/qemu"
mode=test kind=${RR_BLK_BACKEND:-ours} bench_kinds=ours,qsd rounds=3 secs=2 size_mib=128 bench_out="$out/blk-bench"
while (($#)); do
  case "$1" in
    --blk-backend) kind=${2:?}; shift ;;
    --smoke) mode=smoke ;;
    --bench) mode=bench ;;
    --backends) bench_kinds=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --secs) secs=${2:?}; shift ;;
    --size) size_mib=${2:?}; shift ;;
    --out) bench_out=${2:?}; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
ours=${RR_VHOST_BLK:-$root/dist/bin/refruntime-vhost-blk}
qsd=${RR_QSD_BIN:-qemu-storage-daemon}
timeout_s=${RR_QEMU_TIMEOUT:-600}
silence_s=${RR_QEMU_SILENCE:-180}
blk="$out/blk"
MiB=1048576

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS blk/$1: $2"; }
fail() { failed=$((failed + 1)); echo "FAIL blk/$1: $2"; }
finish() {
  echo
  ((skipped == 0)) || echo "($skipped skipped: see the SKIP lines)"
  echo "$passed passed, $failed failed"
  ((failed == 0 && passed > 0))
  exit $?
}

be_pids=() qemu_pidfile="$out/blk-qemu.pid" tmp=$(mktemp -d /tmp/rrqb.XXXXXX)
cleanup() {
  [[ -s $qemu_pidfile ]] && kill "$(cat "$qemu_pidfile")" 2>/dev/null
  local p
  for p in "${be_pids[@]}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the guest --------------------------------------------------------------------------------
echo "==> QEMU block test ($mode): preparing the guest"
t=$SECONDS
if ! "$root/tests/qemu/prepare.sh"; then
  fail prepare "tests/qemu/prepare.sh failed"
  finish
fi
echo "   prepared in $((SECONDS - t)) s"
rrio="$out/rr-blk-io" # static: runs on the host as well

accel=$(qemu_accel)

# --- back-ends --------------------------------------------------------------------------------
# start_backend KIND IMAGE SOCK ro|rw QUEUES LOG: starts it, waits for the socket, appends the pid
# to be_pids; false (with a FAIL line) when it does not listen.
start_backend() {
  local k=$1 img=$2 sock=$3 access=$4 nq=$5 log=$6 cmd pid
  case "$k" in
    ours)
      cmd=("$ours" --socket-path "$sock" --file "$img" --num-queues "$nq")
      [[ $access == ro ]] && cmd+=(--read-only) ;;
    qsd)
      local ro="" wr=on
      [[ $access == ro ]] && ro=",read-only=on" wr=off
      cmd=("$qsd" --blockdev "driver=file,node-name=f0,filename=$img,cache.direct=off,aio=threads,discard=unmap$ro"
        --export "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=$sock,writable=$wr,num-queues=$nq") ;;
    *) fail backend "unknown back-end '$k' (ours or qsd)"; return 1 ;;
  esac
  rm -f "$sock"
  echo "$ ${cmd[*]}" >"$log"
  "${cmd[@]}" >>"$log" 2>&1 &
  pid=$!
  be_pids+=("$pid")
  for _ in $(seq 100); do [[ -S $sock ]] || ! kill -0 "$pid" 2>/dev/null && break; sleep 0.1; done
  if [[ ! -S $sock ]]; then
    fail "backend-listens-$(basename "$img" .img)" "$k: no socket at $sock after 10 s; $(tail -3 "$log" | tr '\n' '|')"
    return 1
  fi
  pass "backend-listens-$(basename "$img" .img)" "$k (pid $pid) on $sock, $access, $nq queue(s)"
}

# stop_backends: SIGTERM each (the back-end program conventions: exit on SIGTERM), one check each.
stop_backends() {
  local i p rc
  for i in "${!be_pids[@]}"; do
    p=${be_pids[$i]}
    [[ -n $p ]] || continue
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$p" 2>/dev/null; then
        fail "backend-sigterm-$i" "pid $p still running 10 s after SIGTERM"
        kill -KILL "$p"
      else
        wait "$p"; rc=$?
        pass "backend-sigterm-$i" "pid $p exited (status $rc) on SIGTERM after QEMU disconnected"
      fi
    else
      wait "$p"; rc=$?
      fail "backend-sigterm-$i" "pid $p had already exited (status $rc) before SIGTERM"
    fi
    be_pids[$i]=""
  done
}

# check_ours: the program exists and follows --print-capabilities (QEMU docs/interop/vhost-user.rst,
# "Backend program conventions": {"type": "block"}).
check_ours() {
  if [[ ! -x $ours ]]; then
    fail backend-built "$ours does not exist (RR_VHOST_BLK names another; --blk-backend qsd runs the test on qemu-storage-daemon)"
    return 1
  fi
  local caps
  caps=$(timeout 10 "$ours" --print-capabilities 2>&1)
  if grep -qE '"type" *: *"block"' <<<"$caps"; then pass print-capabilities "$(tr -d '\n' <<<"$caps")"
  else fail print-capabilities "$caps"; fi
}

mkdir -p "$blk"
rm -f "$out"/blk-backend-*.log
append="console=ttyS0 panic=-1 rdinit=/init-blk"
devs=()
if [[ $mode == test ]]; then
  smp=${RR_QEMU_SMP:-2} nq=${RR_BLK_QUEUES:-2}
  if [[ $kind == ours ]] && ! check_ours; then finish; fi
  # The images: rw.img with the host's pattern in its first 16 MiB (seed 11), the rest a hole;
  # ro.img with a pattern all over (seed 41). init-blk holds the same layout.
  rm -f "$blk/rw.img" "$blk/ro.img"
  truncate -s $((128 * MiB)) "$blk/rw.img"
  truncate -s $((64 * MiB)) "$blk/ro.img"
  "$rrio" fill dev="$blk/rw.img" off=0 len=16m seed=11 direct=0 fsync=1 name=host-fill-rw >/dev/null \
    && "$rrio" fill dev="$blk/ro.img" off=0 len=64m seed=41 direct=0 fsync=1 name=host-fill-ro >/dev/null \
    || { fail host-images "rr-blk-io could not write the images"; finish; }
  ro_sum=$(sha256sum <"$blk/ro.img")
  start_backend "$kind" "$blk/rw.img" "$tmp/rw.sock" rw "$nq" "$out/blk-backend-rw.log" || finish
  start_backend "$kind" "$blk/ro.img" "$tmp/ro.sock" ro 1 "$out/blk-backend-ro.log" || finish
  devs=("$tmp/rw.sock:$nq" "$tmp/ro.sock:1")
  append+=" rrq.mode=blk rrq.disks=vda:$((128 * 2048)):rw:$nq,vdb:$((64 * 2048)):ro:1"
elif [[ $mode == bench ]]; then
  # One vCPU, but maxcpus=2: TCG turns the guest's memory barriers into host barriers only when
  # the machine may run more than one vCPU (CF_PARALLEL; accel/tcg). With -smp 1 the guest's
  # virtio_mb() between publishing the avail index and reading the device's avail_event is no
  # barrier on the host, and a back-end in another process can miss the kick for good: the disk
  # stalled under qemu-storage-daemon within a few 4 KiB QD32 runs, and a new request did not
  # wake it (event-idx suppression). The test's 2 vCPUs already have it.
  smp=${RR_QEMU_SMP:-1,maxcpus=2} nq=${RR_BLK_QUEUES:-1}
  IFS=, read -r kind_a kind_b <<<"$bench_kinds"
  [[ -n $kind_a && -n $kind_b ]] || { echo "error: --backends wants two, like ours,qsd" >&2; exit 2; }
  if [[ $kind_a == ours || $kind_b == ours ]] && ! check_ours; then finish; fi
  # Both images fully written (the same pattern, seed 51), so that reads return data, not holes.
  for n in a b; do
    rm -f "$blk/bench-$n.img"
    "$rrio" fill dev="$blk/bench-$n.img" off=0 len=$((size_mib * MiB)) seed=51 direct=0 fsync=1 \
      name=host-fill >/dev/null || { fail host-images "rr-blk-io could not write bench-$n.img"; finish; }
  done
  start_backend "$kind_a" "$blk/bench-a.img" "$tmp/a.sock" rw "$nq" "$out/blk-backend-a.log" || finish
  start_backend "$kind_b" "$blk/bench-b.img" "$tmp/b.sock" rw "$nq" "$out/blk-backend-b.log" || finish
  devs=("$tmp/a.sock:$nq" "$tmp/b.sock:$nq")
  append+=" rrq.mode=bench rrq.rounds=$rounds rrq.secs=$secs rrq.disks=vda:$((size_mib * 2048)):rw:$nq,vdb:$((size_mib * 2048)):rw:$nq"
  # 7 points x 2 disks per round, each the run plus about 2 s of marks and pauses.
  timeout_s=$((timeout_s + rounds * 14 * (secs + 3)))
else
  smp=${RR_QEMU_SMP:-1}
  append+=" rrq.mode=smoke"
fi

# --- boot -----------------------------------------------------------------------------------------
qemu=("${RR_QEMU_BIN:-qemu-system-x86_64}" -machine "q35,accel=$accel" -cpu max -m 512M -smp "$smp"
  -kernel "$out/vmlinuz" -initrd "$out/initramfs.cpio.gz"
  -bios /usr/share/qemu/qboot.rom -display none -monitor none -serial stdio -no-reboot
  -pidfile "$qemu_pidfile")
if ((${#devs[@]})); then
  # The back-end maps guest RAM from a file descriptor: RAM must be a shared, fd-backed object
  # (QEMU docs/system/devices/vhost-user.rst, "Shared memory object").
  qemu+=(-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem)
  for i in "${!devs[@]}"; do
    qemu+=(-chardev "socket,id=blk$i,path=${devs[$i]%:*}" -device "vhost-user-blk-pci,chardev=blk$i,num-queues=${devs[$i]##*:}")
  done
fi
qemu+=(-append "$append")

# Bench bookkeeping: vda is be_pids[0], vdb be_pids[1].
declare -A begin_ticks=() run_cpu=() run_req=()
csv="$tmp/runs.csv"
echo "round,disk,backend,point,op,bs,qd,secs,requests,dev_ios,iops,mbps,stalls,cpu_ticks,cpu_us_per_request" >"$csv"
hz=$(getconf CLK_TCK)
pid_of() { case "$1" in vda) echo "${be_pids[0]:-}" ;; vdb) echo "${be_pids[1]:-}" ;; esac; }
kind_of() { case "$1" in vda) echo "${kind_a:-$kind}" ;; vdb) echo "${kind_b:-$kind}" ;; esac; }
bench_line=""

echo "==> booting the guest ($accel, -smp $smp; timeout ${timeout_s} s; console in $out/blk-guest.log)"
rm -f "$qemu_pidfile"
: >"$out/blk-guest.log"
t0=$SECONDS booted="" done="" partial="" heard=$SECONDS silent="" bench_t0=() bench_t1=()
while console_line "$out/blk-guest.log"; do
  console_mark blk && continue
  case "$line" in
    "RRQ BENCH "*) bench_line=${line#RRQ BENCH } ;;
    "RRQ MARK bench-begin") bench_t0=("$(cpu_ticks "$(pid_of vda)")" "$(cpu_ticks "$(pid_of vdb)")") ;;
    "RRQ MARK bench-end") bench_t1=("$(cpu_ticks "$(pid_of vda)")" "$(cpu_ticks "$(pid_of vdb)")") ;;
    "RRQ MARK run-begin "*) d=${line##* }; begin_ticks[$d]=$(cpu_ticks "$(pid_of "$d")"); bench_line="" ;;
    "RRQ MARK run-end "*)
      d=${line##* }
      c1=$(cpu_ticks "$(pid_of "$d")") c0=${begin_ticks[$d]:--1}
      if [[ -n $bench_line && $c0 -ge 0 && $c1 -ge 0 ]]; then
        declare -A f=()
        for kv in $bench_line; do f[${kv%%=*}]=${kv#*=}; done
        reqs=${f[dev_ios]}
        ((reqs > 0)) || reqs=${f[requests]}
        us=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", d * 1e6 / hz / n; else print "" }')
        echo "${f[round]},$d,$(kind_of "$d"),${f[name]},${f[op]},${f[bs]},${f[qd]},${f[secs]},${f[requests]},${f[dev_ios]},${f[iops]},${f[mbps]},${f[stalls]:-},$((c1 - c0)),$us" >>"$csv"
        printf '   bench round %s %-4s %-5s %-14s %7s IOPS %8s MB/s  %6s requests  back-end CPU %4s ticks = %s us/request%s\n' \
          "${f[round]}" "$d" "$(kind_of "$d")" "${f[name]}" "${f[iops]}" "${f[mbps]}" "$reqs" "$((c1 - c0))" "${us:-?}" \
          "$([[ ${f[stalls]:-0} == 0 ]] || echo "  (${f[stalls]} stall(s): figures not comparable)")"
        run_cpu[$d]=$(( ${run_cpu[$d]:-0} + c1 - c0 )) run_req[$d]=$(( ${run_req[$d]:-0} + reqs ))
        unset f
      else
        echo "   bench: run on $d without a result line or CPU sample"
      fi ;;
    "RRQ MARK done") done=1 ;;
  esac
done < <(timeout -k 10 "$timeout_s" "${qemu[@]}" 2>&1 </dev/null; echo "RRQ QEMU-EXIT $?")
rm -f "$qemu_pidfile"
guest_verdict "$out/blk-guest.log"

# Whole-life CPU of each back-end (realize, boot and the workload), before they are stopped.
life=()
for i in "${!be_pids[@]}"; do life[$i]=$(cpu_ticks "${be_pids[$i]}"); done
stop_backends

# --- the host's checks on the image files ---------------------------------------------------------
if [[ $mode == test ]]; then
  # name off len seed (MiB; seed 0 = zeroes), as in init-blk.
  while read -r name off len seed; do
    r=$("$rrio" verify dev="$blk/rw.img" off=$((off * MiB)) len=$((len * MiB)) seed="$seed" direct=0 name="$name" 2>&1)
    if [[ $r == "RRQ PASS "* ]]; then pass "$name" "rw.img ${off}-$((off + len)) MiB holds $([[ $seed == 0 ]] && echo zeroes || echo "the guest's pattern (seed $seed)")"
    else fail "$name" "${r#RRQ FAIL * }"; fi
  done <<'EOF'
host-image-written-for-host 112 16 31
host-image-direct-writes 16 16 21
host-image-buffered-writes 32 16 22
host-image-qd32-writes 48 16 23
host-image-synced-writes 104 4 27
host-image-fsynced-writes 108 4 28
host-image-discarded-zeroes 80 16 0
host-image-zeroed-zeroes 96 8 0
host-image-host-pattern-kept 0 16 11
EOF
  if [[ $(sha256sum <"$blk/ro.img") == "$ro_sum" ]]; then pass host-image-ro-unchanged "ro.img has the same SHA-256 as before the boot"
  else fail host-image-ro-unchanged "ro.img changed while exported read-only"; fi
fi

if [[ $mode == bench ]]; then
  mkdir -p "$bench_out"
  cp "$csv" "$bench_out/runs.csv"
  md="$bench_out/summary.md"
  median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  {
    echo "# vhost-user-blk: guest-side benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)," \
      "$(nproc) host CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), QEMU $("${RR_QEMU_BIN:-qemu-system-x86_64}" --version | head -1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)" \
      "($accel, -smp $smp), guest $(cat "$out/kabi") virtio_blk, $rounds rounds x $secs s per point, ${size_mib} MiB images, $nq queue(s) each."
    echo "vda: $kind_a$([[ $kind_a == ours ]] && echo " ($ours)"); vdb: $kind_b$([[ $kind_b == ours ]] && echo " ($ours)"). Rounds interleave the disks (odd rounds vda first)."
    echo "Requests: what the guest's block layer completed on the disk in the run (/sys/block/vdX/stat). CPU: the back-end's utime + stime (all threads) over the run, ${hz} Hz ticks."
    echo
    echo "| point | disk | back-end | IOPS (median) | MB/s (median) | CPU us/request (median) | runs | stalls |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
    for p in $(tail -n +2 "$csv" | cut -d, -f4 | awk '!s[$0]++'); do
      for d in vda vdb; do
        rows=$(awk -F, -v p="$p" -v d="$d" '$4 == p && $2 == d' "$csv")
        [[ -n $rows ]] || continue
        echo "| $p | $d | $(kind_of "$d") | $(cut -d, -f11 <<<"$rows" | median) | $(cut -d, -f12 <<<"$rows" | median) | $(cut -d, -f15 <<<"$rows" | median) | $(wc -l <<<"$rows") | $(cut -d, -f13 <<<"$rows" | awk '{ s += $1 } END { print s + 0 }') |"
      done
    done
    echo
    echo "| back-end | disk | requests (all runs) | CPU in the runs | CPU us/request | CPU bench-begin..end | CPU whole life |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for i in 0 1; do
      d=$([[ $i == 0 ]] && echo vda || echo vdb)
      w=""; [[ -n ${bench_t0[$i]:-} && -n ${bench_t1[$i]:-} ]] && w="$(((bench_t1[i] - bench_t0[i]) * 1000 / hz)) ms"
      echo "| $(kind_of $d) | $d | ${run_req[$d]:-0} | $(( ${run_cpu[$d]:-0} * 1000 / hz )) ms | $(awk -v c="${run_cpu[$d]:-0}" -v n="${run_req[$d]:-0}" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / hz / n; else print "-" }') | ${w:--} | $(( ${life[$i]:-0} * 1000 / hz )) ms |"
    done
  } >"$md"
  echo
  cat "$md"
  echo
  echo "   bench results: $bench_out/runs.csv, $md"
  nrows=$(($(wc -l <"$csv") - 1)) want=$((rounds * 14))
  if ((nrows == want)); then pass bench-runs "$nrows runs recorded ($rounds rounds x 7 points x 2 disks)"
  else fail bench-runs "$nrows runs recorded, want $want"; fi
fi
for f in "$out"/blk-backend-*.log; do
  [[ -s $f ]] || continue
  echo "   $(basename "$f") (last lines):"
  tail -4 "$f" | sed 's/^/     /'
done
finish
