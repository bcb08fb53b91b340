#!/usr/bin/env bash
# deltadct export-lora: PEFT LoRA adapters from the demo pair (2-D, conv, depthwise, odd, new and
# 1-D tensors) and, when present, the GPT fixture pair. Applied with Debian's torch
# (tests/tools/lora_check.py, tools/lora_apply.py: W + (alpha / r) B A), each adapter must give
# base + the truncated SVD of each module's delta at the module's rank (numpy, float64), its
# config must parse and its rank_pattern agree with the tensors; from a .ddct, svd records must
# give their rebuilt delta and rd records their own rank; --bpp must hold; the output must not
# depend on the thread count; usage errors exit 2, failures 1.
# usage: cli_lora.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2; SHARED=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
CHECK="$HERE/tools/lora_check.py"
RDSTAT=$(dirname "$DDCT")/ddct-rdstat
if ! /usr/bin/python3 -c "import numpy, torch" 2>/dev/null; then
  echo "skip: Debian's python3-numpy and python3-torch are needed (./scripts/setup.sh)"; exit 0
fi
# jq-free JSON field: json FILE EXPR (python expression on j)
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

check "genpair" "$GEN" "$T/p" --seed 11
B=$T/p/base.safetensors; F=$T/p/finetuned.safetensors

# every rank option, f32 factors: base + adapter == base + truncated SVD (float tolerance)
check "export --rank 4" "$DDCT" export-lora "$B" "$F" -o "$T/r4" --rank 4 --dtype f32 --modules-to-save -q
check "rank 4 = truncated SVD, saved modules exact" /usr/bin/python3 "$CHECK" svd "$B" "$F" "$T/r4" 1e-4
check "export --error 0.5" "$DDCT" export-lora "$B" "$F" -o "$T/e" --error 0.5 --dtype f32 --json
cp "$T/out" "$T/e.json"
check "--error: truncated SVD" /usr/bin/python3 "$CHECK" svd "$B" "$F" "$T/e" 1e-4
check "--error 0.5: every module within" json "$T/e.json" \
  "all(m['captured_share'] >= 0.75 - 1e-4 for m in j['modules'] if m['status'] == 'adapted') or sys.exit(1)"
for rule in uniform energy delta-rel weight-rel; do
  check "export --bpp 0.8 --rule $rule" "$DDCT" export-lora "$B" "$F" -o "$T/b-$rule" --bpp 0.8 --rule $rule --json
  cp "$T/out" "$T/b-$rule.json"
  check "--bpp 0.8 $rule holds" json "$T/b-$rule.json" "(0 < j['bits_per_adapted_weight'] <= 0.8) or sys.exit(1)"
  check "--bpp 0.8 $rule: BF16 factors of the truncated SVD" /usr/bin/python3 "$CHECK" svd "$B" "$F" "$T/b-$rule" 1e-2
done
check "rules differ" json "$T/b-energy.json" \
  "[m['rank'] for m in j['modules'] if 'rank' in m] != [m['rank'] for m in json.load(open('$T/b-uniform.json'))['modules'] if 'rank' in m] or sys.exit(1)"
check "uniform rule: one rank" json "$T/b-uniform.json" \
  "len({m['rank'] for m in j['modules'] if m['status'] == 'adapted' and m['out'] >= 8 and m['in'] >= 8}) == 1 or sys.exit(1)"
check "export --uniform-rank" "$DDCT" export-lora "$B" "$F" -o "$T/u" --error 0.5 --uniform-rank --dtype f32 -q
check "--uniform-rank: no rank_pattern, zero padding exact" /usr/bin/python3 -c "
import json,sys; c=json.load(open('$T/u/adapter_config.json')); sys.exit(1 if c['rank_pattern'] or c['alpha_pattern'] else 0)"
check "--uniform-rank: truncated SVD" /usr/bin/python3 "$CHECK" svd "$B" "$F" "$T/u" 1e-4
# what a LoRA cannot express is listed; with --modules-to-save it is in the adapter
check "report lists" "$DDCT" export-lora "$B" "$F" -o "$T/l" --rank 2
grep -q "left out: model.norm.weight (1-D" "$T/out" && grep -q "left out: classifier.extra.weight (not in the base)" "$T/out" &&
  grep -q "left out: vision.dwconv.weight" "$T/out" && grep -q "^vision.conv1.weight  *32 x 144  *2 " "$T/out" && ok ||
  { bad "report lists the tensors left out and the conv module"; cat "$T/out" >&2; }
check "modules_to_save in the config" /usr/bin/python3 -c "
import json,sys; c=json.load(open('$T/r4/adapter_config.json')); s=c['modules_to_save']
sys.exit(0 if 'model.norm' in s and 'lm_head' in s and 'model.embed_tokens' in s and 'classifier.extra' not in s else 1)"
check "conv lora_A [r, in, k, k], lora_B [out, r, 1, 1]" /usr/bin/python3 -c "
import sys; sys.path.insert(0, '$HERE/../tools'); import lora_apply as la
a, _ = la.read_safetensors('$T/l/adapter_model.safetensors')
sys.exit(0 if a['base_model.model.vision.conv1.lora_A.weight'].shape == (2, 16, 3, 3) and a['base_model.model.vision.conv1.lora_B.weight'].shape == (32, 2, 1, 1) else 1)"
check "--target" "$DDCT" export-lora "$B" "$F" -o "$T/t" --rank 3 --target 'q_proj|lm_head' --json
cp "$T/out" "$T/t.json"
check "--target: only those" json "$T/t.json" \
  "sorted(m['name'] for m in j['modules'] if m['status'] == 'adapted') == sorted(['lm_head.weight'] + ['model.layers.%d.self_attn.q_proj.weight' % i for i in range(3)]) or sys.exit(1)"
# GPT-2 Conv1D: weights stored [in, out]
check "--fan-in-fan-out" "$DDCT" export-lora "$B" "$F" -o "$T/fo" --rank 3 --dtype f32 --target 'proj' --fan-in-fan-out -q
check "--fan-in-fan-out: truncated SVD of the transpose" /usr/bin/python3 "$CHECK" svd "$B" "$F" "$T/fo" 1e-4
# the same bytes for any thread count
check "-T 1" "$DDCT" export-lora "$B" "$F" -o "$T/t1" --bpp 0.6 --rule energy -T 1 -q
check "-T 3" "$DDCT" export-lora "$B" "$F" -o "$T/t3" --bpp 0.6 --rule energy -T 3 -q
check "identical for -T 1 and -T 3" cmp "$T/t1/adapter_model.safetensors" "$T/t3/adapter_model.safetensors"
check "identical configs" cmp "$T/t1/adapter_config.json" "$T/t3/adapter_config.json"

# from a .ddct: svd records exactly, rd records their low-rank part at the record's rank
check "compress svd" "$DDCT" compress "$B" "$F" -o "$T/s.ddct" --method svd --bpp 1 -q
check "decompress svd" "$DDCT" decompress "$B" "$T/s.ddct" -o "$T/s.safetensors" -q
check "export from svd .ddct" "$DDCT" export-lora "$B" "$T/s.ddct" -o "$T/fs" --dtype f32 --target 'proj|odd|conv1\.' --json
cp "$T/out" "$T/fs.json"
check "svd records: every module's delta captured" json "$T/fs.json" \
  "all(abs(m['captured_share'] - 1) < 1e-4 for m in j['modules'] if m['status'] == 'adapted') or sys.exit(1)"
check "svd records: base + adapter = decompressed" /usr/bin/python3 "$CHECK" rebuilt "$B" "$T/s.safetensors" "$T/fs" 1e-5
check "compress rd" "$DDCT" compress "$B" "$F" -o "$T/d.ddct" -q
check "export from rd .ddct" "$DDCT" export-lora "$B" "$T/d.ddct" -o "$T/fd" --dtype f32 --target 'proj|odd|conv1\.' -q
if [ -x "$RDSTAT" ]; then
  "$RDSTAT" "$T/d.ddct" | awk 'NR > 1 && $3 > 0 && $1 ~ /proj|odd|conv1\./ {printf "%s\"%s\": %d", n++ ? ", " : "{", $1, $3} END {print "}"}' > "$T/ranks.json"
  check "rd records: B A of the record's rank" /usr/bin/python3 "$CHECK" lowrank "$B" "$T/fd" "$T/ranks.json"
fi
# other records: a truncated SVD of the rebuilt delta, at the ranks the options give
check "compress patch" "$DDCT" compress "$B" "$F" -o "$T/pa.ddct" --method patch -q
check "decompress patch" "$DDCT" decompress "$B" "$T/pa.ddct" -o "$T/pa.safetensors" -q
check "export from patch .ddct" "$DDCT" export-lora "$B" "$T/pa.ddct" -o "$T/fp" --rank 3 --dtype f32 -q
check "patch records: truncated SVD of the rebuilt delta" /usr/bin/python3 "$CHECK" svd "$B" "$T/pa.safetensors" "$T/fp" 1e-3
check_fails "wrong base for the .ddct" "$DDCT" export-lora "$F" "$T/d.ddct" -o "$T/wb" -q
[ ! -e "$T/wb" ] && ok || bad "a failed export left its output"

# names that drive a terminal: escaped in the report, valid in the JSON and the config
mkdir -p "$T/odd"
check "odd names pair" python3 "$HERE/tools/oddnames.py" pair "$T/odd"
check "odd names: export" "$DDCT" export-lora "$T/odd/base.safetensors" "$T/odd/finetuned.safetensors" -o "$T/oa" --rank 2 --target .
if grep -q $'\x1b' "$T/out"; then bad "a raw ESC in the report"; else ok; fi
check "odd names: --json" "$DDCT" export-lora "$T/odd/base.safetensors" "$T/odd/finetuned.safetensors" -o "$T/oa" -f --rank 2 --target . --json
cp "$T/out" "$T/oa.json"
check "odd names: JSON and config valid, names kept" python3 -c "
import json; j = json.load(open('$T/oa.json')); c = json.load(open('$T/oa/adapter_config.json'))
names = json.load(open('$T/odd/names.json'))
assert names['esc'][:-len('.weight')] in c['target_modules'], c['target_modules']"

# usage errors (2) and failures (1)
"$DDCT" export-lora "$B" "$F" --rank 2 -q >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "no -o: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --rank 2 --bpp 1 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--rank with --bpp: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --rank 2 --rule energy >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--rule with --rank: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --rank 0 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--rank 0: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --rank +3 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--rank +3: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --dtype f8 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--dtype f8: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --bpp nan >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "--bpp nan: exit 2"
"$DDCT" export-lora "$B" "$F" -o "$T/r4" --rank 2 -q >/dev/null 2>&1; [ $? -eq 1 ] && ok || bad "existing output without -f: exit 1"
check "-f replaces" "$DDCT" export-lora "$B" "$F" -o "$T/r4" --rank 2 -q -f
"$DDCT" export-lora "$B" "$B" -o "$T/x" -q >/dev/null 2>&1; [ $? -eq 1 ] && ok || bad "nothing changed: exit 1"
"$DDCT" export-lora "$B" "$F" -o "$T/x" --target '(' -q >/dev/null 2>&1; [ $? -eq 1 ] && ok || bad "bad --target: exit 1"
check "--help" "$DDCT" export-lora --help

# the GPT fixture (low-rank deltas): BF16 factors at 0.5 bit per adapted weight
G=$SHARED/fixtures/gpt-prose
if [ -f "$G/base.safetensors" ]; then
  check "gpt-prose --bpp 0.5" "$DDCT" export-lora "$G/base.safetensors" "$G/finetuned.safetensors" -o "$T/g" --bpp 0.5 --modules-to-save -q
  check "gpt-prose: truncated SVD" /usr/bin/python3 "$CHECK" svd "$G/base.safetensors" "$G/finetuned.safetensors" "$T/g" 1e-2
else
  echo "skip: GPT fixture absent under $SHARED/fixtures"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
