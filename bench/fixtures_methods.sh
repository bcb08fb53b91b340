#!/usr/bin/env bash
# The README's summary table: on every shared fixture pair, the default (rd at 1.0 bit per lossy
# parameter), rd at 0.5, the paper's method (--method patch) and BitDelta: bits per lossy
# parameter and relative error ||delta^ - delta|| / ||delta|| of the rebuilt lossy tensors, each
# file rebuilt as stored (deltadct eval --json), and the compress time.
# usage: bench/fixtures_methods.sh [SHARED_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}
DDCT=${DDCT:-build/deltadct}
F=$SHARED/fixtures
[ -d "$F" ] || { echo "skip: no fixtures at $F" >&2; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pairs="chargpt:$F/chargpt/base.safetensors:$F/chargpt/finetuned.safetensors
gpt-prose:$F/gpt-prose/base.safetensors:$F/gpt-prose/finetuned.safetensors
gpt-prose-gentle (BF16):$F/gpt-prose/base.bf16.safetensors:$F/gpt-prose/finetuned_gentle.bf16.safetensors"
for t in heat poisson stokes wave; do pairs="$pairs
pinn-$t:$F/pinn/${t}_base.safetensors:$F/pinn/${t}_finetuned.safetensors"; done
q() { "$DDCT" eval "$1" "$2" "$3" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f / %.4f" % (d["bits_per_lossy_param"], d["rel_error"]))'; }
echo "| pair | default (rd @1.0) | rd @0.5 | --method patch | --method bitdelta |"
echo "|---|---|---|---|---|"
while IFS=: read -r name b f; do
  row="| $name |"
  for opts in "" "--bpp 0.5" "--method patch" "--method bitdelta"; do
    # shellcheck disable=SC2086
    "$DDCT" compress "$b" "$f" -o "$T/m.ddct" -q -f $opts
    row="$row $(q "$b" "$f" "$T/m.ddct") |"
  done
  echo "$row"
done <<< "$pairs"
echo
echo "Each cell: bits per lossy parameter / relative error. Command: \`bench/fixtures_methods.sh\`."
