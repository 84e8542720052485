#!/usr/bin/env bash
# The QEMU test: a Debian 12 guest drives refruntime-vhost-gpio through QEMU 7.2's
# vhost-user-gpio-pci with Linux's own gpio-virtio driver and the libgpiod tools.
#
#   1. tests/qemu/prepare.sh builds the guest (kernel, gpio-virtio.ko, initramfs) under build/qemu;
#   2. the back-end listens on a socket with 8 named lines and loopback pairs 0:1 and 2:3;
#   3. QEMU boots the guest with the device on that socket (TCG unless a working KVM exists);
#      tests/qemu/init runs the checks inside and prints one "RRQ PASS|FAIL" line per check;
#   4. the host acts on the guest's marks: it samples the back-end's CPU time around the timed
#      set/get loop, unplugs the PL061 behind the back-end (SIGUSR1) and checks that the back-end
#      is still alive afterwards; at the end it stops the back-end with SIGTERM.
#
# Prints "PASS|FAIL qemu/<check>: detail" lines (SKIP: a check this QEMU cannot run), the
# guest-measured rates, the back-end's CPU time per request, and ends with "N passed, N failed"
# (test.sh --qemu adds these to its totals).
# Logs: build/qemu/guest.log (the whole console), build/qemu/backend.log.
#
# Usage: tests/qemu/run.sh [--smoke]
#        tests/qemu/run.sh --blk [OPTIONS]   the block test instead (tests/qemu/run-blk.sh OPTIONS)
#   --smoke   boot without the device: checks the guest side alone (modules load, tools run)
# Environment:
#   RR_VHOST_GPIO    the back-end (default dist/bin/refruntime-vhost-gpio)
#   RR_QEMU_BIN      the QEMU (default qemu-system-x86_64: Debian 12's QEMU 7.2)
#   RR_QEMU_ACCEL    tcg or kvm (default: kvm only where a usable one exists)
#   RR_QEMU_TIMEOUT  seconds for the whole boot (default 600)
#   RR_QEMU_SILENCE  seconds without console output taken as a hang (default 120)
#   RR_QEMU_RATE     sets and gets in the guest's timed loop (default 3000 each)
set -uo pipefail
[[ ${1:-} != --blk ]] || exec "$(dirname "$0")/run-blk.sh" "${@:2}"
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/qemu/lib.sh"
out="$root/build/qemu"
smoke=""
[[ ${1:-} == --smoke ]] && smoke=1
backend=${RR_VHOST_GPIO:-$root/dist/bin/refruntime-vhost-gpio}
timeout_s=${RR_QEMU_TIMEOUT:-600}
silence_s=${RR_QEMU_SILENCE:-120} # the guest's own waits are bounded at 30 s
rate=${RR_QEMU_RATE:-3000}
lines=8
names=rr-out0,rr-in1,rr-out2,rr-in3,rr-led4,rr-led5,rr-key6,rr-key7
loopback=0:1,2:3

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "PASS qemu/$1: $2"; }
fail() { failed=$((failed + 1)); echo "FAIL qemu/$1: $2"; }
finish() {
  echo
  ((skipped == 0)) || echo "($skipped skipped: see the SKIP lines)"
  echo "$passed passed, $failed failed"
  ((failed == 0 && passed > 0))
  exit $?
}

be_pid="" qemu_pidfile="$out/qemu.pid" tmp=$(mktemp -d /tmp/rrq.XXXXXX)
cleanup() {
  [[ -s $qemu_pidfile ]] && kill "$(cat "$qemu_pidfile")" 2>/dev/null
  [[ -n $be_pid ]] && kill "$be_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the guest --------------------------------------------------------------------------------
echo "==> QEMU test: preparing the guest (first run: packages, kernel download, module build)"
t=$SECONDS
if ! "$root/tests/qemu/prepare.sh"; then
  fail prepare "tests/qemu/prepare.sh failed"
  finish
fi
echo "   prepared in $((SECONDS - t)) s"

# --- accelerator: KVM only where a normal one works ---------------------------------------------
accel=$(qemu_accel)

# --- the back-end -------------------------------------------------------------------------------
if [[ -z $smoke ]]; then
  if [[ ! -x $backend ]]; then
    fail backend-built "$backend does not exist (./build.sh builds it); booting the guest alone instead"
    smoke=1
  else
    caps=$("$backend" --print-capabilities 2>&1)
    if grep -qE '"type" *: *"gpio"' <<<"$caps"; then pass print-capabilities "$(tr -d '\n' <<<"$caps")"
    else fail print-capabilities "$caps"; fi
    sock="$tmp/gpio.sock"
    "$backend" --socket-path "$sock" --lines "$lines" --names "$names" --loopback "$loopback" \
      >"$out/backend.log" 2>&1 &
    be_pid=$!
    for _ in $(seq 100); do [[ -S $sock ]] || ! kill -0 "$be_pid" 2>/dev/null && break; sleep 0.1; done
    if [[ ! -S $sock ]]; then
      fail backend-listens "no socket at $sock after 10 s; backend.log: $(tail -5 "$out/backend.log")"
      finish
    fi
    pass backend-listens "pid $be_pid on $sock"
  fi
fi

# --- boot -----------------------------------------------------------------------------------------
append="console=ttyS0 panic=-1 rrq.lines=$lines rrq.names=$names rrq.loopback=$loopback rrq.rate=$rate"
qemu=("${RR_QEMU_BIN:-qemu-system-x86_64}" -machine "q35,accel=$accel" -cpu max -m 512M -smp 1
  -kernel "$out/vmlinuz" -initrd "$out/initramfs.cpio.gz"
  -bios /usr/share/qemu/qboot.rom -display none -monitor none -serial stdio -no-reboot
  -pidfile "$qemu_pidfile")
if [[ -n $smoke ]]; then
  qemu+=(-append "$append rrq.mode=smoke")
else
  # The back-end maps guest RAM from a file descriptor, so RAM must be a shared, fd-backed object
  # of the -m size (QEMU docs/system/devices/vhost-user.rst, "Shared memory object"); memfd needs
  # no hugetlbfs mount.
  qemu+=(-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem
    -chardev "socket,id=gpio,path=$sock" -device vhost-user-gpio-pci,chardev=gpio
    -append "$append rrq.mode=full rrq.unplug=1")
fi

# One line per thread: tid, ticks (utime + stime), name (/proc/<pid>/task/<tid>/stat and comm).
threads_ticks() {
  local t s
  for t in /proc/"$1"/task/*; do
    s=$(cat "$t/stat" 2>/dev/null) || continue
    s=${s##*) }
    set -- $s
    echo "${t##*/} $(( ${12} + ${13} )) $(tr ' ' _ <"$t/comm")"
  done
}

echo "==> booting the guest ($accel$([[ -n $smoke ]] && echo ', smoke: no device'); timeout ${timeout_s} s; console in $out/guest.log)"
rm -f "$qemu_pidfile"
: >"$out/guest.log"
t0=$SECONDS booted="" done="" alive="" cpu0="" cpu1="" requests="" partial="" heard=$SECONDS silent=""
while console_line "$out/guest.log"; do
  console_mark qemu && continue
  case "$line" in
    "RRQ RATE "*)
      echo "   guest rate: ${line#RRQ RATE }"
      requests=$(sed -nE 's/.* requests=([0-9]+).*/\1/p' <<<"$line") ;;
    "RRQ MARK rate-begin") [[ -n $be_pid ]] && cpu0=$(cpu_ticks "$be_pid") && threads_ticks "$be_pid" >"$tmp/threads0" ;;
    "RRQ MARK rate-end") [[ -n $be_pid ]] && cpu1=$(cpu_ticks "$be_pid") && threads_ticks "$be_pid" >"$tmp/threads1" ;;
    "RRQ MARK unplug")
      if [[ -n $be_pid ]] && kill -USR1 "$be_pid" 2>/dev/null; then echo "   host: SIGUSR1 sent to the back-end (unplug the PL061)"
      else echo "   host: could not signal the back-end"; fi ;;
    "RRQ MARK alive")
      alive=1
      if [[ -n $be_pid ]] && kill -0 "$be_pid" 2>/dev/null; then pass backend-alive-after-unplug "pid $be_pid still running; the guest too"
      else fail backend-alive-after-unplug "the back-end is gone; backend.log: $(tail -3 "$out/backend.log")"; fi ;;
    "RRQ MARK done") done=1 ;;
  esac
done < <(timeout -k 10 "$timeout_s" "${qemu[@]}" 2>&1 </dev/null; echo "RRQ QEMU-EXIT $?")
rm -f "$qemu_pidfile" # QEMU has exited: its pid may be reused
guest_verdict "$out/guest.log"

if [[ -n $be_pid ]]; then
  # (a guest that did not finish has failed already)
  [[ -n $alive || -z $done ]] || fail backend-alive-after-unplug "the guest never reached the unplug check"
  if [[ -n $cpu0 && -n $cpu1 && -n $requests && $cpu0 -ge 0 && $cpu1 -ge 0 && $requests -gt 0 ]]; then
    hz=$(getconf CLK_TCK)
    us=$(awk -v d=$((cpu1 - cpu0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
    echo "   back-end CPU: $((cpu1 - cpu0)) ticks (1/$hz s) over $requests requests = $us us per request (user + system, all threads, the timed loop's window)"
    # Which threads spent it (ticks in the window, by thread name).
    echo "   back-end threads in that window: $(awk 'NR == FNR { b[$1] = $2; next } { d = $2 - b[$1]; if (d > 0) printf "%s %d, ", $3, d; n++ } END { printf "(%d threads)", n }' "$tmp/threads0" "$tmp/threads1")"
  fi
  # Back-end program conventions (QEMU docs/interop/vhost-user.rst): exit on SIGTERM.
  if kill -0 "$be_pid" 2>/dev/null; then
    kill -TERM "$be_pid"
    for _ in $(seq 50); do kill -0 "$be_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$be_pid" 2>/dev/null; then
      fail backend-sigterm "still running 5 s after SIGTERM"
      kill -KILL "$be_pid"
    else
      wait "$be_pid"; rc=$?
      pass backend-sigterm "exited (status $rc) on SIGTERM after QEMU disconnected"
    fi
  else
    wait "$be_pid"; rc=$?
    echo "   host: the back-end had already exited (status $rc) when QEMU disconnected"
  fi
  be_pid=""
  echo "   back-end log ($out/backend.log, last lines):"
  tail -8 "$out/backend.log" | sed 's/^/     /'
fi
finish
