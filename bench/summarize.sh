#!/usr/bin/env bash
# Writes summary.md (to stdout) for a results folder made by bench/run.sh: the environment,
# every goal of bench/goals.tsv with its measured ratio (met / not met), then the tables: the C
# host tables as printed (c-*.txt, which bench/run.sh keeps in build/bench-logs/<run>/; in name
# order, so the Linux ring of c-ringtest.txt comes just before vq_bench's c-vq.txt) and each
# BenchmarkDotNet class rendered from its CSV export (the one copy of it the run folder keeps).
# Usage: bench/summarize.sh perf-results/<run> [folder with the c-*.txt tables, default: the run]
set -euo pipefail
dir=$1 tables=${2:-$1}
here=$(cd "$(dirname "$0")" && pwd)

# An awk function shared by the BenchmarkDotNet readers below: splits a CSV line (RFC 4180 quotes).
split_csv='
    function split_csv(line, out,   n, i, c, field, q) {
      n = 0; field = ""; q = 0
      for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (c == "\"") { q = !q; continue }
        if (c == "," && !q) { out[++n] = field; field = ""; continue }
        field = field c
      }
      out[++n] = field
      return n
    }'

# ratio_bdn CLASS METHOD -> the Ratio column of the JIT job row (empty if absent)
ratio_bdn() {
  local csv
  csv=$(ls "$dir"/bdn/results/*."$1"-report.csv 2>/dev/null | head -1) || true
  [[ -n "$csv" ]] || return 0
  awk -v method="$2" "$split_csv"'
    NR == 1 { n = split_csv($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { split_csv($0, f); if (f[col["Method"]] == method && (f[col["Job"]] == "JIT" || !("Job" in col))) { print f[col["Ratio"]]; exit } }
  ' "$csv"
}

# ratio_c FILE BENCH VARIANT THREADS -> ratio_vs_baseline
ratio_c() {
  [[ -f "$dir/$1" ]] || return 0
  awk -F, -v b="$2" -v v="$3" -v t="$4" '$1 == b && $2 == v && $3 == t { print $5; exit }' "$dir/$1"
}

echo "# RefRuntime benchmark run: $(basename "$dir")"
echo
echo '```'
cat "$dir/environment.txt"
echo '```'
echo
echo "## Goals (ratios against the baseline measured in the same run)"
echo
echo "| issue | what | goal | measured | verdict |"
echo "|---|---|---|---|---|"
while IFS=$'\t' read -r kind key max issue what; do
  [[ -z "$kind" || "$kind" == \#* ]] && continue
  case "$kind" in
    bdn) IFS=: read -r cls method <<<"$key"; r=$(ratio_bdn "$cls" "$method") ;;
    c) IFS=: read -r file bench variant threads <<<"$key"; r=$(ratio_c "$file" "$bench" "$variant" "$threads") ;;
  esac
  if [[ -z "${r:-}" ]]; then
    verdict="not run"; shown="-"
  elif [[ "$max" == "-" ]]; then
    verdict="reported"; shown="${r}×"
  elif awk -v r="$r" -v m="$max" 'BEGIN { exit !(r + 0 <= m + 0) }'; then
    verdict="met"; shown="${r}×"
  else
    verdict="**not met**"; shown="${r}×"
  fi
  goal=$([[ "$max" == "-" ]] && echo "-" || echo "≤ ${max}×")
  echo "| $issue | $what | $goal | $shown | $verdict |"
done < "$here/goals.tsv"
echo
# JIT vs NativeAOT (runs made with --aot): each method's mean under both jobs, side by side.
aot_table() {
  awk "$split_csv"'
    function ns(t,   p, v) {
      split(t, p, " "); v = p[1]; gsub(",", "", v)
      if (p[2] == "μs" || p[2] == "us") return v * 1000
      if (p[2] == "ms") return v * 1000000
      return v + 0
    }
    NR == 1 { n = split_csv($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { split_csv($0, f); m = f[col["Method"]]; if (!(m in seen)) { seen[m] = 1; order[++k] = m }
      mean[m, f[col["Job"]]] = f[col["Mean"]] }
    END {
      for (i = 1; i <= k; i++) {
        m = order[i]
        if (((m, "JIT") in mean) && ((m, "NativeAOT") in mean))
          printf "| %s | %s | %s | %.2f× |\n", m, mean[m, "JIT"], mean[m, "NativeAOT"], ns(mean[m, "NativeAOT"]) / ns(mean[m, "JIT"])
      }
    }' "$1"
}
if grep -qs ',NativeAOT,' "$dir"/bdn/results/*-report.csv; then
  echo "## JIT vs NativeAOT"
  echo
  echo "Each benchmark's mean under both jobs of the same run (NativeAOT / JIT < 1: faster ahead of time)."
  for f in "$dir"/bdn/results/*-report.csv; do
    grep -q ',NativeAOT,' "$f" || continue
    echo
    echo "### $(basename "$f" -report.csv | sed 's/.*\.//')"
    echo
    echo "| method | JIT | NativeAOT | NativeAOT / JIT |"
    echo "|---|---|---|---|"
    aot_table "$f"
  done
  echo
fi
if compgen -G "$dir/*.png" >/dev/null; then
  echo "## Charts"
  echo
  for f in "$dir"/*.png; do echo "![$(basename "$f" .png)]($(basename "$f"))"; done
  echo
fi
if compgen -G "$tables/c-*.txt" >/dev/null; then
  echo "## C host"
  for f in "$tables"/c-*.txt; do
    echo
    echo '```'
    cat "$f"
    echo '```'
  done
  echo
fi
# Counters some benchmarks print at cleanup (EVENT_IDX kicks and interrupts per buffer), from the
# BenchmarkDotNet log bench/run.sh keeps beside the C tables.
if grep -qs '^// virtqueue ' "$tables/bdn.log"; then
  echo "## Counters printed by the benchmarks"
  echo
  echo '```'
  grep '^// virtqueue ' "$tables/bdn.log" | sed 's:^// ::' | sort -u
  echo '```'
  echo
fi
# A BenchmarkDotNet CSV as a markdown table: the statistics columns (and Job/Toolchain when the
# run had more than one job), not the ~40 job-characteristic columns the CSV also carries.
bdn_table() {
  awk "$split_csv"'
    NR == 1 { n = split_csv($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { rows[++r] = $0; split_csv($0, f); if ("Job" in col) jobs[f[col["Job"]]] = 1 }
    END {
      k = 0; order[++k] = "Method"
      if (length(jobs) > 1) { order[++k] = "Job"; if ("Toolchain" in col) order[++k] = "Toolchain" }
      split("Mean,Error,StdDev,Median,Ratio,RatioSD,Allocated,Alloc Ratio", extra, ",")
      for (i = 1; i in extra; i++) if (extra[i] in col) order[++k] = extra[i]
      line = "|"; sep = "|"
      for (i = 1; i <= k; i++) { line = line " " order[i] " |"; sep = sep (i == 1 || order[i] == "Job" || order[i] == "Toolchain" ? "---|" : "---:|") }
      print line; print sep
      for (j = 1; j <= r; j++) {
        split_csv(rows[j], f); line = "|"
        for (i = 1; i <= k; i++) line = line " " f[col[order[i]]] " |"
        print line
      }
    }' "$1"
}
if compgen -G "$dir/bdn/results/*-report.csv" >/dev/null; then
  echo "## BenchmarkDotNet"
  for f in "$dir"/bdn/results/*-report.csv; do
    echo
    echo "### $(basename "$f" -report.csv | sed 's/.*\.//')"
    echo
    bdn_table "$f"
  done
fi
