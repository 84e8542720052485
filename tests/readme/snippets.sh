#!/usr/bin/env bash
# README.md's code, kept honest: every ```c and ```csharp block of README.md must appear verbatim
# (leading and trailing whitespace of each line aside) in a complete program:
#   ```c       in examples/readme/*.c          (each file a C program with main)
#   ```csharp  in examples/ReadmeSnippets/*.cs (one console project, one method per snippet)
# A file may declare, before a snippet, what the snippet uses and does not show. Then the C files
# are built against the installed SDK in dist/ exactly as the README says (pkg-config, -rpath),
# with the exported functions and with -DRR_INLINE (once when the file defines RR_INLINE itself),
# run without LD_LIBRARY_PATH, and the console project is run; each must exit 0 and print every
# line its sources announce with "EXPECT: <text>" (a substring of one output line).
# Other fences (```sh, plain ```) are not checked. Prints one PASS/FAIL line per check; an
# unmatched block is named by its README line, its first line, and where the closest file differs.
# A new block: paste it into a method of examples/ReadmeSnippets (declaring what it uses before it)
# called from Program.cs, or into a program in examples/readme/, with an EXPECT line for what it prints.
# Usage: tests/readme/snippets.sh WORKDIR    (after ./build.sh: dist/ holds the SDK)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$1
rm -rf "$work" && mkdir -p "$work"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
status=0
fail() { echo "FAIL readme_$1"; status=1; }

# The lines a program must print, from the "EXPECT: text" notes in its sources.
expected() { grep -ho 'EXPECT: .*' "$@" | sed -E 's/^EXPECT: //; s/[[:space:]]*\*\/[[:space:]]*$//; s/[[:space:]]+$//'; }

# check NAME LOG SOURCES...: every expected line is in the log.
check_output() {
  local name=$1 log=$2 missing=""
  shift 2
  while IFS= read -r want; do
    grep -qF -- "$want" "$log" || missing+="'$want' "
  done < <(expected "$@")
  [[ -z $missing ]] || { fail "$name: missing output $missing(see $log)"; return 1; }
}

# --- (a) every README block is in a file --------------------------------------------------------
c_files=("$root"/examples/readme/*.c)
cs_files=("$root"/examples/ReadmeSnippets/*.cs)
awk -v readme="$root/README.md" -v root="$root/" '
  function norm(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
  function rel(f) { return substr(f, 1, length(root)) == root ? substr(f, length(root) + 1) : f }
  FNR == 1 { nf++; fname[nf] = FILENAME; fkind[nf] = (FILENAME ~ /\.c$/) ? "c" : "csharp" }
  FILENAME == readme {
    if (!inblock && $0 ~ /^[ \t]*```/) {
      tag = norm($0); sub(/^```/, "", tag)
      if (tag == "c" || tag == "csharp" || tag == "cs") {
        inblock = 1; nb++; bkind[nb] = (tag == "c") ? "c" : "csharp"; btag[nb] = tag; bstart[nb] = FNR; blen[nb] = 0
      } else if (tag != "") {
        skipped[tag]++; inother = !inother
      } else {
        inother = !inother
      }
      next
    }
    if (inblock && $0 ~ /^[ \t]*```[ \t]*$/) { inblock = 0; next }
    if (inblock) { blen[nb]++; bline[nb, blen[nb]] = norm($0) }
    next
  }
  { flen[nf]++; fline[nf, flen[nf]] = norm($0) }
  END {
    for (b = 1; b <= nb; b++) {
      found = 0; best = -1
      for (f = 1; f <= nf && !found; f++) {
        if (fkind[f] != bkind[b] || fname[f] == readme) continue
        for (i = 1; i <= flen[f]; i++) {
          k = 0
          while (k < blen[b] && i + k <= flen[f] && fline[f, i + k] == bline[b, k + 1]) k++
          if (k == blen[b]) { found = f; at = i; break }
          if (k > best) { best = k; bf = f; bi = i }
        }
      }
      where = (bkind[b] == "c") ? "examples/readme/*.c" : "examples/ReadmeSnippets/*.cs"
      if (found) {
        printf "PASS readme_block: README.md:%d ```%s (%d lines) is %s:%d\n", bstart[b], btag[b], blen[b], rel(fname[found]), at
      } else {
        printf "FAIL readme_block: README.md:%d ```%s block starting \"%s\" is in no file of %s", bstart[b], btag[b], bline[b, 1], where
        if (best > 0)
          printf "; closest: %s:%d matches %d of its %d lines, then README has \"%s\" where the file has %s", rel(fname[bf]), bi, best, blen[b], bline[b, best + 1], (bi + best <= flen[bf]) ? "\"" fline[bf, bi + best] "\"" : "its end"
        printf "\n"
      }
    }
    for (t in skipped) printf "note: %d ```%s block(s) not checked\n", skipped[t], t
  }
' "$root/README.md" "${c_files[@]}" "${cs_files[@]}" >"$work/blocks.log"
cat "$work/blocks.log"
grep -q '^FAIL ' "$work/blocks.log" && status=1
grep -q '^PASS ' "$work/blocks.log" || fail "block: no README block was checked (is README.md there?)"

# --- (b) the C programs, against the installed SDK --------------------------------------------
export PKG_CONFIG_PATH="$root/dist/lib/pkgconfig"
if ! pkg-config --exists refruntime; then
  fail "c: no SDK in dist/ (run ./build.sh first)"
else
  for src in "${c_files[@]}"; do
    modes=("" "-DRR_INLINE")
    grep -q '^[[:space:]]*#define RR_INLINE' "$src" && modes=("")
    for mode in "${modes[@]}"; do
      name="c $(basename "$src")${mode:+ $mode}"
      bin="$work/$(basename "$src" .c)${mode:+_inline}"
      # The README's line (plus the warnings that keep the snippets clean, and the mode).
      # shellcheck disable=SC2046
      if ! cc -std=c11 -Wall -Wextra -Werror -pedantic -O2 $mode "$src" $(pkg-config --cflags --libs refruntime) \
           -Wl,-rpath,"$(pkg-config --variable=libdir refruntime)" -o "$bin" >"$bin.build.log" 2>&1; then
        fail "$name: does not build: $(head -5 "$bin.build.log" | tr '\n' ' ')"
        continue
      fi
      if ! env -u LD_LIBRARY_PATH "$bin" >"$bin.log" 2>&1; then
        fail "$name: exited $? (see $bin.log)"
        continue
      fi
      check_output "$name" "$bin.log" "$src" && echo "PASS readme_$name: built against dist/, ran, printed what it announces"
    done
  done
fi

# --- (c) the C# snippets ------------------------------------------------------------------------
log="$work/ReadmeSnippets.log"
if ! dotnet run --project "$root/examples/ReadmeSnippets" -c Release >"$log" 2>&1; then
  fail "csharp: examples/ReadmeSnippets did not build or exited non-zero (see $log): $(tail -3 "$log" | tr '\n' ' ')"
else
  check_output "csharp" "$log" "${cs_files[@]}" && echo "PASS readme_csharp: examples/ReadmeSnippets built, ran, printed what it announces"
fi
exit $status
