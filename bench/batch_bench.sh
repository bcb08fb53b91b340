#!/usr/bin/env bash
# batch_bench.sh — many fine-tunes of one base: `deltadct batch` in one process against the same
# fine-tunes compressed by separate `deltadct compress` runs, in one run.
#
#   bench/batch_bench.sh [SIZE] [COUNT]      (default: 0.5B 8)
#
# The BF16 Llama-shaped pair of SIZE (build/ddct-genpair --kind llama; cached under bench/out/,
# git-ignored, as scale_bench.sh does) and COUNT-1 more fine-tunes of its base
# (tests/tools/ft_variant.py: base + s_i * delta per tensor, a different s_i per fine-tune),
# every input read once so the page cache is warm; then, with the default options and
# -T $THREADS:
#   separate   COUNT runs of `deltadct compress BASE FT_k -o OUT_k`: the sum of their wall times,
#              the largest peak RSS (each opens the base and fingerprints all of its tensors)
#   batch      one `deltadct batch MANIFEST` over the same COUNT lines: wall time, peak RSS (the
#              base opened and fingerprinted once)
#   base read  `deltadct verify --quick --base BASE OUT_1`: what opening and fingerprinting the
#              base costs alone (the checksums of one small .ddct besides)
# and checks that every batch output is byte-identical to the separate run's. Prints a Markdown
# table (also bench/out/batch_bench.md). Environment: THREADS (default: all cores), BUILD (default
# build), OUT (default bench/out), REPEAT=N keeps the fastest of N runs of each (default 1).
# Needs: make (build/deltadct, build/ddct-genpair), /usr/bin/time, /usr/bin/python3 with numpy.
# Disk: 2 bytes per parameter for each fine-tune and the base (0.5B, 8 fine-tunes: ~9 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=${1:-0.5B}
COUNT=${2:-8}
BUILD=${BUILD:-build}
OUT=${OUT:-bench/out}
THREADS=${THREADS:-$(nproc)}
REPEAT=${REPEAT:-1}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
DDCT=$BUILD/deltadct
GEN=$BUILD/ddct-genpair
PY=/usr/bin/python3
TIME=/usr/bin/time
for t in "$DDCT" "$GEN" "$TIME" "$PY"; do
  command -v "$t" >/dev/null || { echo "batch_bench: $t not found (make; ./scripts/setup.sh --bench)" >&2; exit 1; }
done
$PY -c 'import numpy' 2>/dev/null || { echo "batch_bench: $PY lacks numpy" >&2; exit 1; }

P=$OUT/llama-$SIZE-bf16
if [ ! -e "$P/finetuned.safetensors" ]; then
  echo "batch_bench: generating $P (once; cached)" >&2
  rm -rf "$P"
  "$GEN" "$P" --kind llama --params "$SIZE" --dtype BF16 >&2
fi
B=$P/base.safetensors
V=$OUT/batch-$SIZE
mkdir -p "$V/sep" "$V/batch"
FT=("$P/finetuned.safetensors")
for ((k = 1; k < COUNT; k++)); do
  f=$V/ft$k.safetensors
  if [ ! -e "$f" ]; then
    echo "batch_bench: fine-tune $k of the base (once; cached)" >&2
    $PY tests/tools/ft_variant.py "$B" "$P/finetuned.safetensors" "$f.part" "$k" && mv "$f.part" "$f"
  fi
  FT+=("$f")
done
: >"$V/manifest.jsonl"
for ((k = 0; k < COUNT; k++)); do
  printf '{"base": "%s", "finetune": "%s", "output": "%s"}\n' "$B" "${FT[$k]}" "$V/batch/$k.ddct" >>"$V/manifest.jsonl"
done
cat "$B" "${FT[@]}" >/dev/null # warm the page cache

# timed OUTFILE CMD...: runs CMD under /usr/bin/time; prints "wall_s rss_kib" (fastest of REPEAT)
timed() {
  local best="" r w m
  for ((r = 0; r < REPEAT; r++)); do
    "$TIME" -f '%e %M' -o "$V/time" "$@" >/dev/null 2>"$V/err" || { cat "$V/err" >&2; exit 1; }
    read -r w m <"$V/time"
    if [ -z "$best" ] || awk -v a="$w" -v b="${best% *}" 'BEGIN { exit !(a < b) }'; then best="$w $m"; fi
  done
  echo "$best"
}

sep_wall=0; sep_rss=0; rows=""
for ((k = 0; k < COUNT; k++)); do
  rm -f "$V/sep/$k.ddct"
  read -r w m < <(timed "$DDCT" compress "$B" "${FT[$k]}" -o "$V/sep/$k.ddct" -f -q -T "$THREADS")
  sep_wall=$(awk -v a="$sep_wall" -v b="$w" 'BEGIN { print a + b }')
  [ "$m" -gt "$sep_rss" ] && sep_rss=$m
  rows+="| compress $k | $w | $((m / 1024)) |"$'\n'
done
rm -f "$V"/batch/*.ddct
read -r bw bm < <(timed "$DDCT" batch "$V/manifest.jsonl" -q -T "$THREADS")
read -r vw vm < <(timed "$DDCT" verify --quick --base "$B" "$V/sep/0.ddct" -q -T "$THREADS")
same=yes
for ((k = 0; k < COUNT; k++)); do cmp -s "$V/sep/$k.ddct" "$V/batch/$k.ddct" || same=no; done

{
  echo "### deltadct batch: $COUNT fine-tunes of the $SIZE BF16 bench base, -T $THREADS"
  echo
  echo "| run | wall s | peak RSS MiB |"
  echo "|---|---|---|"
  printf '%s' "$rows"
  echo "| **$COUNT separate compress runs (sum; largest RSS)** | **$sep_wall** | **$((sep_rss / 1024))** |"
  echo "| **one batch process** | **$bw** | **$((bm / 1024))** |"
  echo "| opening + fingerprinting the base alone (verify --quick --base) | $vw | $((vm / 1024)) |"
  echo
  awk -v s="$sep_wall" -v b="$bw" -v n="$COUNT" -v v="$vw" 'BEGIN {
    printf "batch saves %.1f s of %.1f s (%.1f %%; %.2f s per fine-tune after the first; the base alone: %.2f s)\n",
           s - b, s, 100 * (s - b) / s, (s - b) / (n - 1), v }'
  echo "outputs byte-identical to the separate runs': $same"
} | tee "$OUT/batch_bench.md"
[ "$same" = yes ]
