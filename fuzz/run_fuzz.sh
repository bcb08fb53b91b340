#!/usr/bin/env bash
# run_fuzz.sh — runs every libFuzzer target for SECONDS each, JOBS at a time (fuzz/README.md).
#
#   fuzz/run_fuzz.sh [SECONDS] [JOBS] [TARGET...]   (defaults: 120 s, 2 at a time, all targets)
#
# Needs the clang build:  CC=clang cmake -S . -B build-fuzz -DDDCT_FUZZ=ON -DDDCT_WERROR=ON \
#                             -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-fuzz -j
# Working corpora go to fuzz/out/<target>/ (git-ignored; the seeds in fuzz/corpus/<target>/ are
# only read), crashes to fuzz/out/<target>-crash-*, logs to fuzz/out/<target>.log; the last
# lines of each log (executions, coverage, findings) are printed at the end.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:-120}
JOBS=${2:-2}
BIN=${FUZZ_BUILD:-$HERE/../build-fuzz}/fuzz
OUT=$HERE/out
TARGETS="fuzz_safetensors fuzz_container fuzz_codecs fuzz_bitreader fuzz_params fuzz_rd_roundtrip fuzz_gguf"
[ $# -gt 2 ] && TARGETS="${*:3}"
mkdir -p "$OUT"
run_one() {
  local t=$1 dict=()
  [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
  mkdir -p "$OUT/$t"
  "$BIN/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    "${dict[@]}" -artifact_prefix="$OUT/$t-" "$OUT/$t" "$HERE/corpus/$t" >>"$OUT/$t.log" 2>&1
  echo "$t: exit $?"
}
running=0
for t in $TARGETS; do
  [ -x "$BIN/$t" ] || { echo "$BIN/$t not built" >&2; exit 1; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
for t in $TARGETS; do
  echo "== $t"
  grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|property violated" \
    "$OUT/$t.log" | head -8
  ls "$OUT" | grep -E "^$t-(crash|leak|timeout|oom)-" || echo "no findings"
done
