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
#   separate   COUNT runs of `deltadct compress BASE FT_k -o OUT_k`: the sums of their wall and
#              CPU (user + system) times, the largest peak RSS (each opens the base and
#              fingerprints all of its tensors)
#   batch      one `deltadct batch MANIFEST` over the same COUNT lines: wall and CPU time, peak
#              RSS (the base opened and fingerprinted once)
#   base read  `deltadct verify --quick --base BASE OUT_1`: what opening and fingerprinting the
#              base costs alone (the checksums of one small .ddct besides)
# each with its wall time, CPU time (user + system), peak RSS and the bytes it read (rchar: from
# the page cache or the disk);
# and checks that every batch output is byte-identical to the separate run's. Prints a Markdown
# table (also bench/out/batch_bench.md). Environment: THREADS (default: all cores), BUILD (default
# build), OUT (default bench/out), REPEAT=N rounds (each: the separate runs, then the batch, so
# both see the same machine), the fastest round of each kept (default 1).
# Needs: make (build/deltadct, build/ddct-genpair), /usr/bin/python3 with numpy.
# Disk: 2 bytes per parameter for each fine-tune and the base (0.5B, 8 fine-tunes: ~9 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SIZE=${1:-0.5B}
COUNT=${2:-8}
for t in "$DDCT" "$GEN" "$PY"; do
  command -v "$t" >/dev/null || { echo "batch_bench: $t not found (make; ./scripts/setup.sh --bench)" >&2; exit 1; }
done
$PY -c 'import numpy' 2>/dev/null || { echo "batch_bench: $PY lacks numpy" >&2; exit 1; }

mkdir -p "$OUT"
P=$(pair_dir "$SIZE")
[ -e "$P/base.safetensors" ] || { echo "batch_bench: $P is sharded; use a single-file size (0.5B, 1B)" >&2; exit 1; }
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

# timed CMD...: runs CMD once; prints "wall_s cpu_s rss_kib read_bytes": wall time, user + system
# time and peak RSS (wait4), and the bytes it read by read/pread (/proc/PID/io's rchar, taken
# while the finished process is a zombie: waitid WNOWAIT)
timed() {
  $PY - "$@" 2>"$V/err" <<'PYEOF' || { cat "$V/err" >&2; exit 1; }
import os, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
wall = time.monotonic() - t0
rchar = next(int(l.split()[1]) for l in open(f"/proc/{p.pid}/io") if l.startswith("rchar:"))
_, status, ru = os.wait4(p.pid, 0)
if status:
    sys.exit(f"{sys.argv[1:]} failed: status {status}")
print(f"{wall:.2f} {ru.ru_utime + ru.ru_stime:.2f} {ru.ru_maxrss} {rchar}")
PYEOF
}
# keep NAME "wall cpu rss": the fastest (by wall time) of the rounds, per NAME
declare -A BEST
keep() { local b=${BEST[$1]:-}; if [ -z "$b" ] || awk -v a="${2%% *}" -v b="${b%% *}" 'BEGIN { exit !(a < b) }'; then BEST[$1]=$2; fi; }

# REPEAT rounds, each: the COUNT separate runs, then the batch (so both see the same machine)
for ((r = 0; r < REPEAT; r++)); do
  for ((k = 0; k < COUNT; k++)); do
    keep "sep$k" "$(timed "$DDCT" compress "$B" "${FT[$k]}" -o "$V/sep/$k.ddct" -f -q -T "$THREADS")"
  done
  rm -f "$V"/batch/*.ddct
  keep batch "$(timed "$DDCT" batch "$V/manifest.jsonl" -q -T "$THREADS")"
  keep base "$(timed "$DDCT" verify --quick --base "$B" "$V/sep/0.ddct" -q -T "$THREADS")"
done
sep_wall=0; sep_cpu=0; sep_rss=0; sep_read=0; rows=""
gib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1073741824 }'; }
for ((k = 0; k < COUNT; k++)); do
  read -r w c m rd <<<"${BEST[sep$k]}"
  sep_wall=$(awk -v a="$sep_wall" -v b="$w" 'BEGIN { print a + b }')
  sep_cpu=$(awk -v a="$sep_cpu" -v b="$c" 'BEGIN { print a + b }')
  sep_read=$((sep_read + rd))
  [ "$m" -gt "$sep_rss" ] && sep_rss=$m
  rows+="| compress $k | $w | $c | $((m / 1024)) | $(gib "$rd") |"$'\n'
done
read -r bw bc bm brd <<<"${BEST[batch]}"
read -r vw vc vm vrd <<<"${BEST[base]}"
same=yes
for ((k = 0; k < COUNT; k++)); do cmp -s "$V/sep/$k.ddct" "$V/batch/$k.ddct" || same=no; done

{
  echo "### deltadct batch: $COUNT fine-tunes of the $SIZE BF16 bench base, -T $THREADS, fastest of $REPEAT round(s)"
  echo
  echo "| run | wall s | CPU s | peak RSS MiB | read GiB |"
  echo "|---|---|---|---|---|"
  printf '%s' "$rows"
  echo "| **$COUNT separate compress runs (sum; largest RSS)** | **$sep_wall** | **$sep_cpu** | **$((sep_rss / 1024))** | **$(gib $sep_read)** |"
  echo "| **one batch process** | **$bw** | **$bc** | **$((bm / 1024))** | **$(gib "$brd")** |"
  echo "| opening + fingerprinting the base alone (verify --quick --base) | $vw | $vc | $((vm / 1024)) | $(gib "$vrd") |"
  echo
  awk -v s="$sep_wall" -v b="$bw" -v sc="$sep_cpu" -v bc="$bc" -v n="$COUNT" -v v="$vw" -v vc="$vc" 'BEGIN {
    printf "batch saves %.1f s of %.1f s wall (%.1f %%) and %.1f s of %.1f s CPU (%.1f %%): %.2f CPU s per fine-tune after the first (the base alone: %.2f s wall, %.2f CPU s)\n",
           s - b, s, 100 * (s - b) / s, sc - bc, sc, 100 * (sc - bc) / sc, (sc - bc) / (n - 1), v, vc }'
  echo "bytes read: $(gib $sep_read) GiB by the separate runs, $(gib "$brd") GiB by batch ($(gib $((sep_read - brd))) GiB less)"
  echo "outputs byte-identical to the separate runs': $same"
} | tee "$OUT/batch_bench.md"
[ "$same" = yes ]
