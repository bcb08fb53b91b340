#!/usr/bin/env bash
# The README's sweep results: one rate-distortion sweep per fixture pair, written to docs/results/.
# Every method at several sizes against the anchors (the paper's patch codec with DCT / DWT / no
# transform, BitDelta, SVD) and the rd hybrid, each file evaluated with and without the rescale step.
# usage: bench/sweep_fixtures.sh [SHARED_DIR] [PAIR ...]     (pairs: chargpt gpt-prose gpt-prose-gentle
#        pinn-heat pinn-poisson pinn-stokes pinn-wave; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}; F=$SHARED/fixtures; OUT=docs/results
[ -d "$F" ] || { echo "skip: no fixtures at $F" >&2; exit 0; }
shift || true
[ $# -gt 0 ] || set -- chargpt gpt-prose gpt-prose-gentle pinn-heat pinn-poisson pinn-stokes pinn-wave
mkdir -p "$OUT"
run() {
  local name=$1 b=$2 f=$3
  echo "sweep_fixtures: $name" >&2
  build/deltadct sweep "$b" "$f" -T 2 -q --patch 8,16,32 --bits "2:0.5,0:0.5;2:0.34,1:0.33,0:0.33;4:0.34,2:0.33,0:0.33" \
    --methods dct,dwt,none,bitdelta,svd,rd --dwt-keep all,ll_lh_hl --bpp 0.25,0.5,0.75,1,1.5,2 --rescale both \
    --csv "$OUT/$name.csv" --md "$OUT/$name.md" --svg "$OUT/$name.svg" > "$OUT/$name.txt"
}
for p in "$@"; do
  case $p in
    chargpt) run chargpt "$F/chargpt/base.safetensors" "$F/chargpt/finetuned.safetensors" ;;
    gpt-prose) run gpt-prose "$F/gpt-prose/base.safetensors" "$F/gpt-prose/finetuned.safetensors" ;;
    gpt-prose-gentle) run gpt-prose-gentle "$F/gpt-prose/base.bf16.safetensors" "$F/gpt-prose/finetuned_gentle.bf16.safetensors" ;;
    pinn-*) t=${p#pinn-}; run "$p" "$F/pinn/${t}_base.safetensors" "$F/pinn/${t}_finetuned.safetensors" ;;
    *) echo "sweep_fixtures: unknown pair $p" >&2; exit 2 ;;
  esac
done
