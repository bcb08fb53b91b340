#!/usr/bin/env bash
# scale_bench.sh — deltadct at real model scale against the bounds and baselines, in one run.
#
#   bench/scale_bench.sh [SIZE ...]          (default: 0.5B 1B 3B; also 8B)
#
# For each SIZE it generates (once; cached under bench/out/, git-ignored) a BF16 Llama-3.2/3.1-shaped
# base / fine-tune pair with build/ddct-genpair (sharded like the originals when ddct-genpair has
# --shards), reads both inputs once so the page cache is warm, then measures in the same run:
#   deltadct compress / decompress   (default options: rd at 1 bit per lossy parameter; and
#                                     --method patch, the paper's; -T $THREADS): time, parameters/s,
#                                     peak RSS, size; BitDelta's size; every file's error (eval)
#   cat FT > /dev/null               the read bound (page cache -> process)
#   cp FT bench/out/...              the copy bound (read + write to the output disk)
#   cp FT ... && sync COPY           the durable copy bound (deltadct fsyncs its output)
#   zstd -1 -T0 FT                   a generic fast compressor on the fine-tune
#   bench/numpy_deltadct.py          the same method in vectorized NumPy/SciPy (/usr/bin/python3)
# Peak RSS is /usr/bin/time's %M. It prints a Markdown table (also written to
# bench/out/scale_bench.md) and checks targets, REPORTED as PASS/FAIL (never asserted): default
#   compress >= 100 M params/s; decompress >= 500 M params/s, <= 1.5x the patch method's time and
#   <= 3x the cp time; >= 5x the NumPy version; peak RSS of 3B within 10% of 0.5B's and < 512 MiB.
#
# Environment: THREADS (default: all cores), BUILD (build directory, default build), OUT (default bench/out),
# NUMPY=0 skips the NumPy baseline, REPEAT=N keeps the fastest of N runs of each timed command
# (default 1; RSS is that run's), KEEP=1 keeps the outputs (.ddct, rebuilt files).
# Needs: make (build/deltadct, build/ddct-genpair), zstd, Debian's time (/usr/bin/time),
# python3-numpy, python3-scipy: ./scripts/setup.sh --bench. Disk: ~4.5 bytes per parameter
# (base + fine-tune + one rebuilt copy at a time, BF16), i.e. ~15 GB for 3B.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
NUMPY=${NUMPY:-1}
KEEP=${KEEP:-0}
[ $# -gt 0 ] || set -- 0.5B 1B 3B
for t in "$DDCT" "$GEN" "$TIME" zstd; do
  command -v "$t" >/dev/null || { echo "scale_bench: $t not found (make; ./scripts/setup.sh --bench)" >&2; exit 1; }
done
if [ "$NUMPY" = 1 ] && ! $PY -c 'import numpy, scipy' 2>/dev/null; then
  echo "scale_bench: /usr/bin/python3 lacks numpy/scipy (./scripts/setup.sh --bench); NUMPY=0 to skip" >&2; exit 1
fi
mkdir -p "$OUT"
WORK=$OUT/work
mkdir -p "$WORK"

# input PAIRDIR base|finetuned -> what to pass to deltadct (a file, or a directory when sharded)
input() { if [ -e "$1/$2.safetensors" ]; then echo "$1/$2.safetensors"; else echo "$1/$2"; fi; }
# files PATH -> the .safetensors files under PATH (one line each)
files() { if [ -d "$1" ]; then find "$1" -name '*.safetensors' | sort; else echo "$1"; fi; }
bytes_of() { local t=0 f; for f in "$@"; do t=$((t + $(stat -c %s "$f"))); done; echo $t; }
nparams() {
  $PY - "$@" <<'EOF'
import json, struct, sys
n = 0
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        for k, v in json.loads(f.read(hl)).items():
            if k != "__metadata__":
                m = 1
                for s in v["shape"]: m *= s
                n += m
print(n)
EOF
}


MD=$OUT/scale_bench.md
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
{
  echo "Machine: $(nproc) cores ($CPU), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; deltadct -T $THREADS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "command: \`bench/scale_bench.sh $*\`; warm page cache; times are wall clock$([ "$REPEAT" -gt 1 ] && echo ", fastest of $REPEAT")."
  echo
  echo "| model | tool | compress s (CPU s) | compress M params/s | comp. peak RSS MiB | output MiB | ratio | decompress s (CPU s) | decompress M params/s | dec. peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$MD.table"
: >"$MD.targets"
: >"$MD.quality"
declare -A RSS_C RSS_D

for s in "$@"; do
  d=$(pair_dir "$s")
  B=$(input "$d" base)
  F=$(input "$d" finetuned)
  mapfile -t FF < <(files "$F")
  mapfile -t BF < <(files "$B")
  N=$(nparams "${FF[@]}")
  FB=$(bytes_of "${FF[@]}")
  echo "scale_bench: $s: $N params, fine-tune $FB bytes in ${#FF[@]} file(s); warming the page cache" >&2
  cat "${FF[@]}" "${BF[@]}" >/dev/null
  w=$WORK/$s
  rm -rf "$w"
  mkdir -p "$w"

  # bounds
  timed cat cat "${FF[@]}"
  mkdir -p "$w/cp"
  PRE="rm -f $w/cp/*" timed cp cp "${FF[@]}" "$w/cp/"
  # deltadct fsyncs its output before the rename (a crash never leaves a torn file): the same
  # guarantee for the copy is cp + sync of the copies
  PRE="rm -f $w/cp/*" timed cps sh -c 'd=$1; shift; cp "$@" "$d/" && sync "$d"/*' sh "$w/cp" "${FF[@]}"
  rm -rf "$w/cp"
  PRE="rm -f $w/ft.zst" timed zstd sh -c 'zstd -1 -T0 -q -c "$@" > '"$w/ft.zst" sh "${FF[@]}"
  ZS=$(stat -c %s "$w/ft.zst")
  rm -f "$w/ft.zst"

  # deltadct: the default (rd at 1 bit per lossy parameter), the paper's method (patch), BitDelta
  if [ -d "$F" ]; then RB=$w/rebuilt; else RB=$w/rebuilt.safetensors; fi
  timed dc "$DDCT" compress "$B" "$F" -o "$w/model.ddct" -f -q -T "$THREADS"
  DS=$(stat -c %s "$w/model.ddct")
  PRE="rm -rf $RB" timed dd "$DDCT" decompress "$B" "$w/model.ddct" -o "$RB" -f -q -T "$THREADS"
  [ "$KEEP" = 1 ] || rm -rf "$RB"
  timed pc "$DDCT" compress "$B" "$F" -o "$w/patch.ddct" -f -q -T "$THREADS" --method patch
  PS=$(stat -c %s "$w/patch.ddct")
  PRE="rm -rf $RB" timed pd "$DDCT" decompress "$B" "$w/patch.ddct" -o "$RB" -f -q -T "$THREADS"
  [ "$KEEP" = 1 ] || rm -rf "$RB"
  timed bc "$DDCT" compress "$B" "$F" -o "$w/bitdelta.ddct" -f -q -T "$THREADS" --method bitdelta
  # quality: bits per lossy parameter and relative error of each
  q_of() { "$DDCT" eval "$B" "$F" "$1" --json -T "$THREADS" | $PY -c 'import json,sys; d=json.load(sys.stdin); print("%.3f %.4f" % (d["bits_per_lossy_param"], d["rel_error"]))'; }
  read -r QB_dc QE_dc < <(q_of "$w/model.ddct")
  read -r QB_pc QE_pc < <(q_of "$w/patch.ddct")
  read -r QB_bc QE_bc < <(q_of "$w/bitdelta.ddct")
  [ "$KEEP" = 1 ] || rm -f "$w/patch.ddct" "$w/bitdelta.ddct"
  RSS_C[$s]=$M_dc
  RSS_D[$s]=$M_dd

  # NumPy / SciPy (single file only: it reads one safetensors)
  HAVE_NP=0
  if [ "$NUMPY" = 1 ] && [ ${#FF[@]} = 1 ] && [ ${#BF[@]} = 1 ]; then
    HAVE_NP=1
    timed nc $PY bench/numpy_deltadct.py compress "${BF[0]}" "${FF[0]}" "$w/model.npdct"
    NS=$(stat -c %s "$w/model.npdct")
    PRE="rm -f $w/np_rebuilt.safetensors" timed nd $PY bench/numpy_deltadct.py decompress "${BF[0]}" "$w/model.npdct" "$w/np_rebuilt.safetensors"
    [ "$KEEP" = 1 ] || rm -f "$w/np_rebuilt.safetensors" "$w/model.npdct"
  fi
  [ "$KEEP" = 1 ] || rm -f "$w/model.ddct"

  P=$(printf '%.2fB' "$(echo "$N / 1000000000" | bc -l)")
  row() { # tool ctime crss csize dtime drss ccpu dcpu
    local c="" cm="" cr="" sz="" rt="" dt="" dm="" dr=""
    [ -z "$2" ] || { c="$(fmt "$2") ($7)"; cm=$(printf '%.0f' "$(mps "$N" "$2")"); }
    [ -z "$3" ] || cr=$(printf '%.0f' "$(mib "$3")")
    [ -z "$4" ] || { sz=$(printf '%.1f' "$(echo "$4 / 1048576" | bc -l)"); rt=$(printf '%.2fx' "$(ratio "$FB" "$4")"); }
    [ -z "$5" ] || { dt="$(fmt "$5") ($8)"; dm=$(printf '%.0f' "$(mps "$N" "$5")"); }
    [ -z "$6" ] || dr=$(printf '%.0f' "$(mib "$6")")
    echo "| $s ($P) | $1 | $c | $cm | $cr | $sz | $rt | $dt | $dm | $dr |"
  }
  {
    row "**deltadct** (default: rd @1.0)" "$T_dc" "$M_dc" "$DS" "$T_dd" "$M_dd" "$C_dc" "$C_dd"
    row "deltadct --method patch" "$T_pc" "$M_pc" "$PS" "$T_pd" "$M_pd" "$C_pc" "$C_pd"
    [ "$HAVE_NP" = 0 ] || row "NumPy/SciPy" "$T_nc" "$M_nc" "$NS" "$T_nd" "$M_nd" "$C_nc" "$C_nd"
    row "zstd -1 -T0" "$T_zstd" "$M_zstd" "$ZS" "" "" "$C_zstd" ""
    row "cat (read bound)" "$T_cat" "$M_cat" "" "" "" "$C_cat" ""
    row "cp (copy bound)" "" "" "" "$T_cp" "$M_cp" "" "$C_cp"
    row "cp + sync (durable copy bound)" "" "" "" "$T_cps" "$M_cps" "" "$C_cps"
  } >>"$MD.table"

  echo "| $s ($P) | default (rd @1.0) | $QB_dc | $QE_dc |" >>"$MD.quality"
  echo "| $s ($P) | --method patch | $QB_pc | $QE_pc |" >>"$MD.quality"
  echo "| $s ($P) | --method bitdelta | $QB_bc | $QE_bc |" >>"$MD.quality"
  CM=$(mps "$N" "$T_dc")
  DM=$(mps "$N" "$T_dd")
  {
    echo "| $s | default compress >= 100 M params/s | $(printf '%.0f' "$CM") | $(pf "$CM >= 100") |"
    echo "| $s | default decompress >= 500 M params/s | $(printf '%.0f' "$DM") | $(pf "$DM >= 500") |"
    echo "| $s | default decompress <= 1.5x patch decompress time | $(printf '%.2fx' "$(ratio "$T_dd" "$T_pd")") | $(pf "$T_dd <= 1.5 * $T_pd") |"
    echo "| $s | patch compress / decompress M params/s | $(printf '%.0f / %.0f' "$(mps "$N" "$T_pc")" "$(mps "$N" "$T_pd")") | (info) |"
    echo "| $s | decompress <= 3x cp time | $(printf '%.2fx' "$(ratio "$T_dd" "$T_cp")") | $(pf "$T_dd <= 3 * $T_cp") |"
    echo "| $s | decompress <= 3x cp + sync time (both durable) | $(printf '%.2fx' "$(ratio "$T_dd" "$T_cps")") | $(pf "$T_dd <= 3 * $T_cps") |"
    if [ "$HAVE_NP" = 1 ]; then
      echo "| $s | compress >= 5x NumPy/SciPy | $(printf '%.1fx' "$(ratio "$T_nc" "$T_dc")") | $(pf "$T_nc >= 5 * $T_dc") |"
      echo "| $s | decompress >= 5x NumPy/SciPy | $(printf '%.1fx' "$(ratio "$T_nd" "$T_dd")") | $(pf "$T_nd >= 5 * $T_dd") |"
    fi
    echo "| $s | compress vs zstd -1 -T0 time | $(printf '%.2fx' "$(ratio "$T_zstd" "$T_dc")") | (info) |"
    echo "| $s | CPU time, deltadct vs NumPy/SciPy (compress / decompress) | $([ "$HAVE_NP" = 1 ] && printf '%.1fx / %.1fx' "$(ratio "$C_nc" "$C_dc")" "$(ratio "$C_nd" "$C_dd")") | (info) |"
  } >>"$MD.targets"
done

# memory: the largest size against the smallest
first=$1
last=${!#}
{
  for k in c d; do
    if [ $k = c ]; then a=${RSS_C[$first]}; b=${RSS_C[$last]}; what=compress; else a=${RSS_D[$first]}; b=${RSS_D[$last]}; what=decompress; fi
    if [ "$first" != "$last" ]; then
      echo "| $last vs $first | $what peak RSS within 10% | $(printf '%.0f / %.0f MiB (%+.1f%%)' "$(mib "$b")" "$(mib "$a")" "$(echo "($b - $a) * 100 / $a" | bc -l)") | $(pf "$b <= 1.1 * $a") |"
    fi
    echo "| $last | $what peak RSS < 512 MiB | $(printf '%.0f MiB' "$(mib "$b")") | $(pf "$b < 512 * 1024") |"
  done
} >>"$MD.targets"

{
  cat "$MD.table"
  echo
  echo "Quality on the same pairs (\`deltadct eval --json\`: bits per lossy parameter, relative error ||delta^ - delta|| / ||delta||):"
  echo
  echo "| model | method | bits / lossy param | rel. error |"
  echo "|---|---|---|---|"
  cat "$MD.quality"
  echo
  echo "Targets (reported, not asserted):"
  echo
  echo "| model | target | measured | |"
  echo "|---|---|---|---|"
  cat "$MD.targets"
} >"$MD"
rm -f "$MD.table" "$MD.targets" "$MD.quality"
cat "$MD"
