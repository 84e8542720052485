#!/usr/bin/env bash
# The header and the library must agree: every function the header declares is exported, and
# every symbol the library exports is declared in the header (or is the one runtime symbol
# listed below). With a third argument (the C ABI sweep test), also checks that every declared
# function is called there. Given the static archive instead, checks its global symbols the same
# way (there the runtime's own symbols, DotNetRuntimeDebugHeader included, must all be local).
# Usage: check_exports.sh <librefruntime.so|librefruntime.a> <refruntime.h> [sweep.c]
set -euo pipefail
lib=$1 header=$2 sweep=${3:-}
# Exported by the NativeAOT runtime itself for debuggers (not part of our API).
allowed_runtime='^DotNetRuntimeDebugHeader$'
if [[ $lib == *.a ]]; then
  allowed_runtime='^$'
  exported=$(nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' | sort -u)
else
  exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {sub(/@.*/, "", $3); print $3}' | sort -u)
fi
# Function declarations: a line starting with a return type and an rr_ name followed by '('
# (static inline helpers defined in the header itself are not exports).
declared=$(grep -v '^static ' "$header" | sed -n 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]\(rr_[a-z0-9_]*\)(.*/\1/p' \
  | grep -v '^rr__' | sort -u)
status=0
for s in $exported; do
  if [[ $s =~ $allowed_runtime ]]; then continue; fi
  if ! grep -qx "$s" <<<"$declared"; then echo "exported but not declared in the header: $s"; status=1; fi
done
for s in $declared; do
  if ! grep -qx "$s" <<<"$exported"; then echo "declared in the header but not exported: $s"; status=1; fi
done
if [[ -n $sweep ]]; then
  for s in $declared; do
    if ! grep -q "\b$s(" "$sweep"; then echo "declared but never called by the ABI sweep ($(basename "$sweep")): $s"; status=1; fi
  done
fi
n=$(wc -w <<<"$declared")
if ((status == 0)); then echo "PASS exports ($(basename "$lib")): $n functions declared and exported, nothing else${sweep:+, every one called by the sweep}"; fi
exit $status
