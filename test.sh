#!/usr/bin/env bash
# Runs every RefRuntime test on this machine, installing what a fresh Debian machine lacks:
#   the xunit projects (tests/*), the C/C++ tests (tests/c) built with CMake against dist/ (and an
#   install into a relocated prefix), the NuGet package restored into a fresh console project, and
#   README.md's C and C# blocks (found verbatim in examples/, built against dist/ and run).
# Ends with one line: "N passed, N failed".
#
# Usage: ./test.sh              normal suite (stress tests run for a short slice)
#        ./test.sh --stress N   stress tests run N seconds each (RR_STRESS_SECONDS=N)
#        ./test.sh --minutes N  torture: only the stress/fuzz tests (Category=Stress), N minutes
#                               each, printing their counts (operations, grace periods, errors)
#        ./test.sh --memcheck   also run the C tests (except RCU's timed torture) under valgrind
#                               memcheck: any invalid read or write, or a definite leak at exit,
#                               fails them (~10 min on 2 cores)
#        ./test.sh --qemu       also boot a Debian 12 guest in QEMU on refruntime-vhost-gpio and
#                               check it with Linux's gpio-virtio driver and the libgpiod tools
#                               (tests/qemu/run.sh; the first run downloads about 250 MB of packages),
#                               then one on refruntime-vhost-blk with Linux's virtio_blk
#                               (tests/qemu/run-blk.sh; RR_BLK_BACKEND=qsd runs it on
#                               qemu-storage-daemon instead)
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
memcheck=""
torture=""
qemu=""
for arg in "$@"; do [[ $arg == --qemu ]] && qemu=1; done
case "${1:-}" in
  -h|--help)
    sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0 ;;
  ""|--stress|--minutes|--memcheck) ;;
  *) echo "error: unknown option '$1' (see ./test.sh --help)" >&2; exit 2 ;;
esac
case "${1:-}" in
  --stress)
    export RR_STRESS_SECONDS=${2:-60}
    echo "==> stress mode: ${RR_STRESS_SECONDS}s per stress test" ;;
  --minutes)
    export RR_STRESS_SECONDS=$(( ${2:-1} * 60 ))
    torture=1
    echo "==> torture: the stress and fuzz tests only, ${RR_STRESS_SECONDS}s each, with their counts" ;;
  --memcheck) memcheck=1 ;;
esac

passed=0 failed=0
logs="$root/build/test-logs"
mkdir -p "$logs"

finish() {
  echo
  echo "$passed passed, $failed failed"
  ((failed == 0 && passed > 0))
  exit $?
}

if ! scripts/ensure-deps.sh test || ! ./build.sh --no-deps; then
  echo "error: the build failed; no tests could run" >&2
  failed=$((failed + 1))
  finish
fi

# --- xunit projects ------------------------------------------------------------------------
for proj in tests/*/*.csproj; do
  name=$(basename "$proj" .csproj)
  echo "==> dotnet test $name"
  if [[ -n $torture ]]; then
    # Only the stress category, with each test's own report lines (counts) shown.
    dotnet test "$proj" -c Release -nologo --filter "Category=Stress" --logger "console;verbosity=detailed" 2>&1 \
      | tee "$logs/$name.log" | grep -E '^\s+(Passed|Failed) |^ [a-z].*[0-9]|error' || true
  else
    dotnet test "$proj" -c Release -nologo 2>&1 | tee "$logs/$name.log" | grep -E '^(Passed!|Failed!)|^\s+Failed |error' || true
  fi
  line=$(grep -E '^(Passed!|Failed!) +- Failed: +[0-9]+, Passed: +[0-9]+' "$logs/$name.log" | tail -1)
  if [[ -n $torture ]]; then
    # The detailed logger prints one line per test and a "Total tests" block instead.
    if grep -qE '^Total tests: [0-9]+' "$logs/$name.log"; then
      passed=$((passed + $(grep -cE '^\s+Passed RefRuntime' "$logs/$name.log")))
      failed=$((failed + $(grep -cE '^\s+Failed RefRuntime' "$logs/$name.log")))
    elif grep -q 'No test matches' "$logs/$name.log"; then
      echo "   $name: no stress tests"
    else
      echo "   $name: no result (build or host failure); see $logs/$name.log"
      failed=$((failed + 1))
    fi
    continue
  fi
  if [[ -z "$line" ]]; then
    echo "   $name: no result line (build or host failure); see $logs/$name.log"
    failed=$((failed + 1))
    continue
  fi
  f=$(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$line")
  p=$(sed -E 's/.*Passed: +([0-9]+),.*/\1/' <<<"$line")
  if (( f > 0 )); then
    # Why each test failed, and where (the message and the test's own stack frame), so a CI log
    # that keeps only this output still says what broke; the whole log is in $logs.
    awk '/^ +Failed RefRuntime/ {state = 1; print "   " $0; next}
         state == 1 && /^ +Error Message:/ {state = 2; next}
         state == 2 && /^ +Stack Trace:/ {state = 3; next}
         state == 2 {print "      " $0; next}
         state == 3 && /\.cs:line [0-9]+/ {print "      " $0}
         state == 3 && /^ +(Standard Output Messages:|Passed |Failed )/ {state = 0}' "$logs/$name.log" | head -60
  fi
  passed=$((passed + p)) failed=$((failed + f))
done

# --- C and C++ tests against dist/ -----------------------------------------------------------
echo "==> C tests (CMake/CTest against dist/)"
if cmake -S tests/c -B build/tests-c -DCMAKE_PREFIX_PATH="$root/dist" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$logs/c-configure.log" 2>&1 \
  && cmake --build build/tests-c -j"$(nproc)" >"$logs/c-build.log" 2>&1; then
  ctest --test-dir build/tests-c --timeout 600 --output-on-failure -V >"$logs/ctest.log" 2>&1
  # Count the individual C cases (each binary prints PASS/FAIL per case) and the script tests.
  p=$(grep -cE '^[0-9]+: PASS ' "$logs/ctest.log")
  f=$(grep -cE '^[0-9]+: FAIL ' "$logs/ctest.log")
  crashed=$(grep -cE 'Test +#[0-9]+: .*\*\*\*(Failed|Exception|Timeout)|Test +#[0-9]+: .*(SEGFAULT|Child aborted)' "$logs/ctest.log")
  grep -E '^[0-9]+: (FAIL|  .*CHECK)|tests passed|tests failed' "$logs/ctest.log" | sed 's/^[0-9]*: //'
  passed=$((passed + p))
  # A binary that died counts as a failure even if it printed no FAIL line.
  failed=$((failed + (crashed > f ? crashed : f)))
else
  echo "   the C tests did not build; see $logs/c-configure.log and $logs/c-build.log"
  failed=$((failed + 1))
fi

# --- the NuGet package as a user meets it -------------------------------------------------------
echo "==> NuGet package: pack, dotnet add package into a fresh console project, build, run"
if tests/nuget/consumer.sh "$root/build/nuget-consumer" >"$logs/nuget.log" 2>&1; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
grep -E '^(PASS|FAIL) ' "$logs/nuget.log" | sed 's/^/   /' || echo "   no result; see $logs/nuget.log"

# --- README.md's code ---------------------------------------------------------------------------
echo "==> README.md: every C / C# block is in examples/readme or examples/ReadmeSnippets, built and run"
tests/readme/snippets.sh "$root/build/readme" >"$logs/readme.log" 2>&1
readme_rc=$?
p=$(grep -c '^PASS ' "$logs/readme.log")
f=$(grep -c '^FAIL ' "$logs/readme.log")
passed=$((passed + p))
# A script that failed without saying what counts as one failure.
failed=$((failed + (f == 0 && readme_rc != 0 ? 1 : f)))
echo "   $p checks passed"
grep -E '^FAIL ' "$logs/readme.log" | sed 's/^/   /'
((f == 0 && readme_rc != 0)) && echo "   the snippet check failed; see $logs/readme.log"

# --- valgrind memcheck (opt-in) ---------------------------------------------------------------
if [[ -n "$memcheck" ]]; then
  command -v valgrind >/dev/null || { sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo; $sudo apt-get install -y -qq valgrind >/dev/null; }
  echo "==> valgrind memcheck of the C tests (an invalid read or write, or a definite leak at exit, fails)"
  for bin in build/tests-c/{refcount,arc,revoke,io,pl061,virtio,vq_backend,abi_sweep}_{export,inline}; do
    if valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite "$bin" >"$logs/memcheck-$(basename "$bin").log" 2>&1; then
      passed=$((passed + 1)); echo "   memcheck $(basename "$bin"): clean"
    else
      failed=$((failed + 1)); echo "   memcheck $(basename "$bin"): FAILED, see $logs/memcheck-$(basename "$bin").log"
    fi
  done
fi

# --- QEMU guests on the vhost-user back-ends (opt-in) -----------------------------------------
# qemu_suite NAME SCRIPT LOG: runs a guest test, adds its "N passed, N failed" to the totals.
qemu_suite() {
  echo "==> QEMU guest on $1 ($2)"
  "$2" 2>&1 | tee "$logs/$3" | sed '/^[0-9]* passed, [0-9]* failed$/d'
  local line f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/$3" | tail -1)
  if [[ -n "$line" ]]; then
    f=${line#*passed, }
    passed=$((passed + ${line%% passed*})) failed=$((failed + ${f%% failed}))
  else
    echo "   the QEMU test printed no result line; see $logs/$3"
    failed=$((failed + 1))
  fi
}
if [[ -n "$qemu" ]]; then
  qemu_suite refruntime-vhost-gpio tests/qemu/run.sh qemu.log
  qemu_suite "the vhost-user-blk back-end" tests/qemu/run-blk.sh qemu-blk.log
fi

finish
