#!/usr/bin/env bash
# A short CLI round trip for the fast tier (make check): the demo pair compressed with the default
# method and with patch, listed, verified (with and without the base, and --quick), rebuilt;
# lossless tensors come back byte for byte, the structure (names, order, shapes, dtypes,
# __metadata__) as it was. The whole CLI suite (make test) covers the rest.
# usage: cli_quick.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
LOSSLESS="model.embed_tokens.weight model.layers.0.input_layernorm.weight position_ids classifier.extra.weight model.norm.weight lm_head.weight adapter.frozen.weight"

check "genpair" "$GEN" "$T/p" --dtype BF16 --seed 5
B=$T/p/base.safetensors; F=$T/p/finetuned.safetensors
for m in default patch; do
  opt=""; [ $m = patch ] && opt="--method patch"
  check "compress $m" "$DDCT" compress "$B" "$F" -o "$T/$m.ddct" -q $opt
  check "info $m" "$DDCT" info "$T/$m.ddct" --json
  check "verify $m" "$DDCT" verify "$T/$m.ddct" -q
  check "verify --base $m" "$DDCT" verify "$T/$m.ddct" --base "$B" -q
  check "verify --quick $m" "$DDCT" verify "$T/$m.ddct" --quick -q
  check "decompress $m" "$DDCT" decompress "$B" "$T/$m.ddct" -o "$T/$m.safetensors" -q
  check "structure and lossless tensors $m" python3 "$HERE/tools/stcompare.py" "$F" "$T/$m.safetensors" $LOSSLESS
done
check_fails "refuse an existing output" "$DDCT" decompress "$B" "$T/patch.ddct" -o "$T/patch.safetensors" -q

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
