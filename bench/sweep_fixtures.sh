#!/usr/bin/env bash
# The README's sweep results: one rate-distortion sweep per fixture pair, written to docs/results/.
# usage: bench/sweep_fixtures.sh [SHARED_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}; F=$SHARED/fixtures; OUT=docs/results
[ -d "$F" ] || { echo "skip: no fixtures at $F" >&2; exit 0; }
mkdir -p "$OUT"
run() {
  local name=$1 b=$2 f=$3
  build/deltadct sweep "$b" "$f" -T 2 --patch 8,16,32 --bits "2:0.5,0:0.5;2:0.34,1:0.33,0:0.33;4:0.34,2:0.33,0:0.33" \
    --methods dct,dwt,none,bitdelta,svd --dwt-keep all,ll_lh_hl --bpp 0.5,1,2 \
    --csv "$OUT/$name.csv" --md "$OUT/$name.md" --svg "$OUT/$name.svg" > "$OUT/$name.txt"
}
run chargpt "$F/chargpt/base.safetensors" "$F/chargpt/finetuned.safetensors"
run gpt-prose "$F/gpt-prose/base.safetensors" "$F/gpt-prose/finetuned.safetensors"
run pinn-heat "$F/pinn/heat_base.safetensors" "$F/pinn/heat_finetuned.safetensors"
