#!/usr/bin/env bash
# pytorch_bench.sh — a PyTorch (.bin) pair against the same pair in safetensors, in one run.
#
#   bench/pytorch_bench.sh [SIZE]            (default 0.5B)
#
# Takes the cached BF16 Llama-shaped bench pair of SIZE (bench/lib.sh: generated once with
# build/ddct-genpair under bench/out/), writes the same weights with torch.save (Debian's
# /usr/bin/python3 with python3-torch; once, cached beside the pair), then measures with default
# options, -T $THREADS, the fastest of REPEAT runs: compress safetensors -> .ddct and .bin ->
# .ddct, decompress to .safetensors and to .bin; time, parameters/s and peak RSS (/usr/bin/time's
# %M). It checks (REPORTED as PASS/FAIL, never asserted) that .bin is within 25 % of safetensors
# in time and in peak RSS, and that both .ddct hold the same records. Prints a Markdown table,
# also written to bench/out/pytorch_bench.md.
# Environment: THREADS (default: all cores), BUILD (default build), OUT (default bench/out), REPEAT (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
source bench/lib.sh
SIZE=${1:-0.5B}
for t in "$DDCT" "$GEN" "$TIME" bc; do
  command -v "$t" >/dev/null || { echo "pytorch_bench: $t not found (make; ./scripts/setup.sh --bench)" >&2; exit 1; }
done
$PY -c 'import torch, numpy' 2>/dev/null || { echo "pytorch_bench: $PY lacks torch (python3-torch)" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$OUT/work
mkdir -p "$WORK"

d=$(pair_dir "$SIZE")
[ -e "$d/base.safetensors" ] || { echo "pytorch_bench: $d is sharded; use a single-file size (0.5B, 1B)" >&2; exit 1; }
# the same weights with torch.save (BF16 storages; the safetensors read through a memory map)
for m in base finetuned; do
  if [ ! -e "$d/$m.bin" ]; then
    echo "pytorch_bench: writing $d/$m.bin with torch.save (once; cached)" >&2
    $PY - "$d/$m.safetensors" "$d/$m.bin.tmp" <<'EOF'
import collections, json, struct, sys
import numpy as np, torch
src, dst = sys.argv[1:]
DT = {"BF16": (np.int16, torch.bfloat16), "F16": (np.float16, None), "F32": (np.float32, None),
      "I64": (np.int64, None), "I32": (np.int32, None)}
with open(src, "rb") as f:
    (hl,) = struct.unpack("<Q", f.read(8))
    h = json.loads(f.read(hl))
raw = np.memmap(src, dtype=np.uint8, mode="r")
sd = collections.OrderedDict()
for k, v in h.items():
    if k == "__metadata__":
        continue
    a, b = v["data_offsets"]
    npdt, view = DT[v["dtype"]]
    arr = np.frombuffer(raw[8 + hl + a:8 + hl + b], dtype=npdt).reshape(v["shape"])
    t = torch.from_numpy(arr.copy())
    sd[k] = t.view(view) if view is not None else t
torch.save(sd, dst)
EOF
    mv "$d/$m.bin.tmp" "$d/$m.bin"
  fi
done
w=$WORK/pytorch
mkdir -p "$w"
params=$($PY - "$d/finetuned.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    (hl,) = struct.unpack("<Q", f.read(8))
    h = json.loads(f.read(hl))
n = 0
for k, v in h.items():
    if k != "__metadata__":
        m = 1
        for s in v["shape"]:
            m *= s
        n += m
print(n)
EOF
)
cat "$d"/base.* "$d"/finetuned.* >/dev/null # warm page cache for every input
timed cs "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$w/st.ddct" -f -q -T "$THREADS"
timed cb "$DDCT" compress "$d/base.bin" "$d/finetuned.bin" -o "$w/bin.ddct" -f -q -T "$THREADS"
PRE="rm -f $w/r.safetensors" timed ds "$DDCT" decompress "$d/base.safetensors" "$w/st.ddct" -o "$w/r.safetensors" -f -q -T "$THREADS"
PRE="rm -f $w/r.bin" timed db "$DDCT" decompress "$d/base.bin" "$w/bin.ddct" -o "$w/r.bin" -f -q -T "$THREADS"
recs() { "$DDCT" info "$1" --json | $PY -c "import json,sys; print([(t['name'], t['bytes']) for t in json.load(sys.stdin)['tensors']])"; }
same=FAIL; [ "$(recs "$w/st.ddct")" = "$(recs "$w/bin.ddct")" ] && same=PASS
loads=FAIL
$PY -c "import torch,sys; sd=torch.load(sys.argv[1], weights_only=True); print(len(sd))" "$w/r.bin" >/dev/null 2>&1 && loads=PASS
row() {  # LABEL st bin
  local l=$1 a=$2 b=$3
  local ta=T_$a tb=T_$b ma=M_$a mb=M_$b
  local rt rm
  rt=$(ratio "${!tb}" "${!ta}"); rm=$(ratio "${!mb}" "${!ma}")
  printf '| %s | %s s (%s M/s) | %s s (%s M/s) | %s | %s / %s MiB | %s | %s |\n' "$l" "$(fmt "${!ta}")" \
    "$(fmt "$(mps "$params" "${!ta}")")" "$(fmt "${!tb}")" "$(fmt "$(mps "$params" "${!tb}")")" "$(fmt "$rt")" \
    "$(fmt "$(mib "${!ma}")")" "$(fmt "$(mib "${!mb}")")" "$(fmt "$rm")" \
    "$(pf "$rt <= 1.25 && $rm <= 1.25")"
}
{
  echo "PyTorch .bin vs safetensors, $SIZE BF16 pair ($params parameters), -T $THREADS, fastest of $REPEAT"
  echo
  echo "| step | safetensors | .bin | time .bin/st | peak RSS st / .bin | RSS .bin/st | within 25 % |"
  echo "|---|---|---|---|---|---|---|"
  row compress cs cb
  row decompress ds db
  echo
  echo "same records from both formats: $same; rebuilt .bin read by torch.load(weights_only=True): $loads"
} | tee "$OUT/pytorch_bench.md"
rm -f "$w"/r.* "$w"/*.ddct
