#!/usr/bin/env bash
# Measures the README's fixture table: bits per lossy parameter and relative error
# ||d^-d||/||d|| with and without rescale, for the default and --transform none.
# usage: bench/fixtures_table.sh [SHARED_DIR] [extra compress options...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}; shift || true
DDCT=build/deltadct
F=$SHARED/fixtures
[ -d "$F" ] || { echo "skip: no fixtures at $F" >&2; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pairs="chargpt:$F/chargpt/base.safetensors:$F/chargpt/finetuned.safetensors
gpt-prose:$F/gpt-prose/base.safetensors:$F/gpt-prose/finetuned.safetensors
gpt-prose-gentle (BF16):$F/gpt-prose/base.bf16.safetensors:$F/gpt-prose/finetuned_gentle.bf16.safetensors"
for t in heat poisson stokes wave; do pairs="$pairs
pinn-$t:$F/pinn/${t}_base.safetensors:$F/pinn/${t}_finetuned.safetensors"; done
j() { python3 -c "import json,sys; print('%.4f' % json.load(sys.stdin)['$1'])"; }
echo "| pair | transform | bits / lossy param | rel. error, rescale | rel. error, no rescale |"
echo "|---|---|---|---|---|"
while IFS=: read -r name b f; do
  for tr in dct none; do
    $DDCT compress "$b" "$f" -o "$T/m.ddct" -q -f --method patch --transform $tr "$@"
    bpp=$($DDCT info "$T/m.ddct" --json | j bits_per_lossy_param)
    er=$($DDCT eval "$b" "$f" "$T/m.ddct" --json | j rel_error)
    en=$($DDCT eval "$b" "$f" "$T/m.ddct" --json --no-rescale | j rel_error)
    echo "| $name | $tr | $bpp | $er | $en |"
  done
done <<< "$pairs"
