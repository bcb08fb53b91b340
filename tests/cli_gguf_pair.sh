#!/usr/bin/env bash
# A GGUF base/fine-tune pair through deltadct (tests/gguf_tool.py writes it: F32, F16, BF16 and
# ggml-quantized Q8_0 tensors, metadata of every value type, the fine-tune's metadata differing in
# one string): compress, decompress, and the rebuilt GGUF equal to the fine-tune byte for byte
# outside its lossy tensors (header, metadata, tensor infos, padding, every quantized tensor
# bit-exact), its lossy tensors close, the same metadata and tensor infos for the Python reader
# and, with npm, for @huggingface/gguf; thread counts alike; what cannot be done refused by name
# (GGUF into another format, non-zero padding in a fine-tune, a truncated file).
# Skips (exit 0) when /usr/bin/python3 lacks numpy.
# usage: cli_gguf_pair.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
GEN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || { echo "$PY with numpy not found (Debian: python3-numpy): skipped"; exit 0; }
source "$HERE/tools/harness.sh"
BUILD=$(dirname "$DDCT")
TOOL=$HERE/gguf_tool.py
cd "$T"
check "a GGUF pair" "$PY" "$TOOL" pair p --seed 5
check "compress" "$DDCT" compress p/base.gguf p/finetuned.gguf -o ft.ddct -q
check "decompress (default name: IN without .ddct, .gguf)" "$DDCT" decompress p/base.gguf ft.ddct -q
check "... is ft.gguf" test -f ft.gguf
"$DDCT" info ft.ddct --json >info.json
check "the key/value section is a record" grep -q '"name": *"__gguf_kv_section__"' info.json
# bytes: equal outside the lossy records' tensors; quantized tensors bit-exact; values close
check "rebuilt = fine-tune outside the lossy tensors" "$PY" - p/finetuned.gguf ft.gguf info.json "$TOOL" <<'EOF'
import json, sys, importlib.util
ft, rb, info, tool = sys.argv[1:]
spec = importlib.util.spec_from_file_location("gguf_tool", tool)
g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
a, b = open(ft, "rb").read(), open(rb, "rb").read()
assert len(a) == len(b), (len(a), len(b))
recs = {t["name"]: t for t in json.load(open(info))["tensors"]}
f = g.read_gguf(ft)
lossy, quant = [], 0
mask = bytearray(len(a))
for t in f["tensors"]:
    r = recs[t["name"]]
    at = f["data_start"] + t["offset"]
    if r["lossy"]:
        lossy.append(t["name"])
        mask[at:at + t["nbytes"]] = b"\x01" * t["nbytes"]
    elif t["type"] not in ("F32", "F16", "BF16"):
        quant += 1
diff = [i for i in range(len(a)) if a[i] != b[i] and not mask[i]]
assert not diff, f"{len(diff)} bytes differ outside the lossy tensors, first at {diff[0]}"
assert lossy and quant, (lossy, quant)
import numpy as np
for n in lossy:
    x, y = g.tensor_values(ft, n), g.tensor_values(rb, n)
    err = float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12))
    assert err < 0.6, (n, err)
print(f"{len(lossy)} lossy tensors close, {quant} quantized tensors bit-exact, the rest byte for byte")
EOF
check "Python reader: same metadata and tensor infos" sh -c "'$PY' '$TOOL' dump p/finetuned.gguf > a.json && '$PY' '$TOOL' dump ft.gguf > b.json && cmp a.json b.json"
check "-T 1 and -T 3: the same .ddct" sh -c "'$DDCT' compress p/base.gguf p/finetuned.gguf -o t1.ddct -T 1 -q && '$DDCT' compress p/base.gguf p/finetuned.gguf -o t3.ddct -T 3 -q && cmp t1.ddct t3.ddct"
check "verify against the GGUF base" "$DDCT" verify ft.ddct --base p/base.gguf
check "eval" "$DDCT" eval p/base.gguf p/finetuned.gguf ft.ddct
check "lossless: the fine-tune byte for byte" sh -c "'$DDCT' compress p/base.gguf p/finetuned.gguf -o ll.ddct --exclude . -q && '$DDCT' decompress p/base.gguf ll.ddct -o ll.gguf -q && cmp ll.gguf p/finetuned.gguf"
# @huggingface/gguf reads the rebuilt file as it reads the fine-tune
NPMDIR=$BUILD/npm-cache
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "npm or node not found (scripts/setup.sh installs npm): @huggingface/gguf comparison skipped"
elif [ ! -f "$NPMDIR/node_modules/@huggingface/gguf/package.json" ] &&
     ! timeout 300 npm install --prefix "$NPMDIR" --no-audit --no-fund --no-save @huggingface/gguf >npm.log 2>&1; then
  echo "npm install @huggingface/gguf failed (no registry?): comparison skipped"; tail -n 5 npm.log
else
  check "@huggingface/gguf reads the rebuilt file" sh -c "node '$HERE/gguf_check.mjs' '$NPMDIR/node_modules' ft.gguf > rb.npm.json"
  check "... and the fine-tune" sh -c "node '$HERE/gguf_check.mjs' '$NPMDIR/node_modules' p/finetuned.gguf > ft.npm.json"
  check "... the same metadata and tensor infos" cmp ft.npm.json rb.npm.json
  check "... as the Python reader's" "$PY" "$TOOL" compare ft.gguf --npm rb.npm.json
fi
# refused, by name, nothing written
reject() {  # WHAT PATTERN OUTPUT CMD...
  local what=$1 pat=$2 out=$3; shift 3
  "$@" >so 2>se; local rc=$?
  if [ $rc -eq 1 ] && grep -q "^deltadct: .*$pat" se && [ ! -e "$out" ]; then ok; else bad "$what: rc=$rc $(cat se)"; fi
}
reject "GGUF into safetensors" "GGUF files are rebuilt as GGUF" x.safetensors "$DDCT" decompress p/base.gguf ft.ddct -o x.safetensors
reject "GGUF into PyTorch" "GGUF files are rebuilt as GGUF" x.bin "$DDCT" decompress p/base.gguf ft.ddct -o x.bin --format pytorch
"$GEN" st >/dev/null && "$DDCT" compress st/base.safetensors st/finetuned.safetensors -o st.ddct -q
reject "a safetensors fine-tune as GGUF" "GGUF files are rebuilt as GGUF" y.gguf "$DDCT" decompress st/base.safetensors st.ddct -o y.gguf
cp p/finetuned.gguf pad.gguf
"$PY" - pad.gguf "$TOOL" <<'EOF'
import sys, importlib.util
spec = importlib.util.spec_from_file_location("gguf_tool", sys.argv[2])
g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
f = g.read_gguf(sys.argv[1])
b = bytearray(open(sys.argv[1], "rb").read())
b[f["data_start"] - 1] = 7  # the header's padding
open(sys.argv[1], "wb").write(b)
EOF
reject "non-zero padding in a fine-tune" "is not zero" pad.ddct "$DDCT" compress p/base.gguf pad.gguf -o pad.ddct
check "non-zero padding in a base is fine" "$DDCT" compress pad.gguf p/finetuned.gguf -o padbase.ddct -q
head -c 2000 p/finetuned.gguf >cut.gguf
reject "truncated fine-tune" "cut.gguf" cut.ddct "$DDCT" compress p/base.gguf cut.gguf -o cut.ddct
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
