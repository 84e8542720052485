# Shared by the QEMU guest tests (tests/qemu/run.sh, tests/qemu/run-blk.sh): the accelerator
# choice, CPU time of a process, reading the guest's console with a hang guard, and the verdict on
# how the guest ended. Sourced, not run.

# qemu_accel: RR_QEMU_ACCEL, else kvm only where a normal one works (a nested kvm_pvm module
# hangs a stock kernel, so its /dev/kvm does not count), else tcg.
qemu_accel() {
  if [[ -n ${RR_QEMU_ACCEL:-} ]]; then
    echo "$RR_QEMU_ACCEL"
  elif [[ -r /dev/kvm && -w /dev/kvm && ! -d /sys/module/kvm_pvm ]] \
    && [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then
    echo kvm
  else
    echo tcg
  fi
}

# cpu_ticks PID: /proc/<pid>/stat fields 14 and 15 (utime, stime; proc(5)), in clock ticks, all
# threads including those that have exited; -1 when the process is gone.
cpu_ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
  s=${s##*) }
  set -- $s
  echo $((${12} + ${13}))
}

# console_line LOG: reads the next console line from stdin into $line, appending it to LOG.
# False at the end of the output. A console silent for $silence_s seconds means a hang (QEMU stuck
# in realize on a back-end that never answers, or the guest stuck): QEMU ($qemu_pidfile) is
# stopped rather than waited for until the overall timeout. Callers set heard=$SECONDS,
# partial="" and silent="" before the first call.
console_line() {
  local rc
  while true; do
    IFS= read -r -t 5 line
    rc=$?
    if ((rc == 0)); then
      line=$partial${line%$'\r'} partial="" heard=$SECONDS
      printf '%s\n' "$line" >>"$1"
      return 0
    fi
    ((rc > 128)) || return 1 # end of output
    partial+=$line
    if ((SECONDS - heard > silence_s)) && [[ -z $silent ]]; then
      silent=1
      echo "   host: no console output for ${silence_s} s; stopping QEMU"
      [[ -s $qemu_pidfile ]] && kill "$(cat "$qemu_pidfile")" 2>/dev/null
    fi
  done
}

# console_mark PREFIX: counts and prints the guest's PASS/FAIL/SKIP lines and INFO lines ($line)
# under PREFIX ("qemu", "blk"); false for any other line. "RRQ INFO booted" sets $booted (seconds
# since $t0).
console_mark() {
  case "$line" in
    "RRQ PASS "*) passed=$((passed + 1)); echo "PASS $1/${line#RRQ PASS }" ;;
    "RRQ FAIL "*) failed=$((failed + 1)); echo "FAIL $1/${line#RRQ FAIL }" ;;
    "RRQ SKIP "*) skipped=$((skipped + 1)); echo "SKIP $1/${line#RRQ SKIP }" ;;
    "RRQ INFO booted"*) booted=$((SECONDS - t0)); echo "   guest: ${line#RRQ INFO } (host: ${booted} s after QEMU started)" ;;
    "RRQ INFO "*) echo "   guest: ${line#RRQ INFO }" ;;
    *) return 1 ;;
  esac
}

# last_lines LOG N: the console's last N lines (without the exit marker), for a failure message.
last_lines() {
  local l
  l=$(grep -v '^RRQ QEMU-EXIT' "$1" | tail -"$2" | tr '\n' '|')
  echo "${l:-(none: QEMU never started the guest)}"
}

# guest_verdict LOG: once QEMU's output has ended, reports "guest-finished" through the caller's
# pass/fail from the "RRQ QEMU-EXIT" line of LOG, $silent (console_line), $done (the guest's
# "done" mark), $timeout_s, $silence_s, $booted and the start time $t0.
guest_verdict() {
  local qrc total=$((SECONDS - t0))
  qrc=$(sed -nE 's/^RRQ QEMU-EXIT ([0-9]+)$/\1/p' "$1" | tail -1)
  if [[ -n $silent ]]; then
    fail guest-finished "stopped after ${silence_s} s without console output; last console lines: $(last_lines "$1" 3)"
  elif [[ -n $done && $qrc == 0 ]]; then
    pass guest-finished "the guest ran every check and powered off; QEMU exited 0 after ${total} s (boot to /init ${booted:-?} s)"
  elif [[ $qrc == 124 || $qrc == 137 ]]; then
    fail guest-finished "timed out after ${timeout_s} s; last console lines: $(last_lines "$1" 3)"
  else
    fail guest-finished "QEMU exited $qrc, finished=${done:-no}; last console lines: $(last_lines "$1" 5)"
  fi
}
