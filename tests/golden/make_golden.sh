#!/usr/bin/env bash
# make_golden.sh DELTADCT MAKE_OLD OUT — writes into OUT the golden files tests/cli_golden.sh
# decodes (it runs this first, in its work directory): deterministic inputs (a seeded generator),
# the files today's encoders write of them, and the older formats make_old writes
# (tests/golden/make_old.c, built as ddct-make-old). golden.txt, committed, records what their
# rebuilds must be. Needs python3.
#
#   base.safetensors     the base of every golden file (small, committed): the tensors of the
#                        fine-tune made here (F32, BF16, F16 matrices, a norm, integer tensors)
#                        and the rd.v0.* / rd.v1.* tensors of the old rd records
#   f11_patch.ddct       format 1.1, today's CLI: patch records (parameter version 1), raw
#                        (chunked, with and without xor) and same records
#   f11_dir.ddct         format 1.1 of a model directory: two shards, index, config.json carried
#   f11_bitdelta.ddct, f11_svd.ddct, f11_rd.ddct (rd parameter version 2)
#   f11_rd_v0v1.ddct     rd records of parameter versions 0 (tests/rd_v0_golden.h) and 1
#                        (tests/rd_v1_golden.h, its two smaller records), in a container written
#                        by make_old.c
#   f10_patch_v0.ddct    format 1.0 (no layout, minor 0): patch records of parameter version 0,
#                        unchunked raw records, same records (make_old.c, from f11_patch.ddct)
#   ft.safetensors       the fine-tune (for the error bounds of golden.txt)
set -euo pipefail
DDCT=$1; MAKE_OLD=$2; G=$3
mkdir -p "$G"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=1

python3 - "$G" "$W" <<'PY'
import json, os, random, struct, sys
g, w = sys.argv[1], sys.argv[2]
def enc(dt, v):
    if dt == "F32": return struct.pack("<%df" % len(v), *v)
    if dt == "F16": return struct.pack("<%de" % len(v), *v)
    if dt == "BF16": return b"".join(struct.pack("<f", x)[2:] for x in v)
    if dt == "I64": return struct.pack("<%dq" % len(v), *v)
    if dt == "I32": return struct.pack("<%di" % len(v), *v)
def st(path, tensors, meta=None):
    hdr, data, off = {}, b"", 0
    if meta is not None: hdr["__metadata__"] = meta
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b); data += b
    h = json.dumps(hdr, separators=(",", ":")).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f: f.write(struct.pack("<Q", len(h)) + h + data)
r = random.Random(20261204)
def mat(n, sd): return [r.gauss(0, sd) for _ in range(n)]
base = [("model.layers.0.self_attn.q_proj.weight", "F32", [16, 32], mat(512, 0.02)),
        ("model.layers.0.mlp.up_proj.weight", "BF16", [32, 32], mat(1024, 0.02)),
        ("model.layers.0.mlp.down_proj.weight", "F16", [16, 32], mat(512, 0.02)),
        ("model.layers.0.input_layernorm.weight", "F32", [32], [1 + r.gauss(0, 0.05) for _ in range(32)]),
        ("model.position_ids", "I64", [1, 16], list(range(16))),
        ("model.layers.0.counts", "I32", [8], [r.randrange(-1000, 1000) for _ in range(8)])]
ft = []
for name, dt, shape, v in base:
    if dt in ("F32", "BF16", "F16") and len(shape) == 2:
        # a low-rank change plus noise: something for every codec to find
        rows, cols = shape
        u, vv = mat(rows, 1.0), mat(cols, 1.0)
        v = [x + 0.004 * u[i // cols] * vv[i % cols] + r.gauss(0, 0.001) for i, x in enumerate(v)]
    elif dt == "F32":
        v = [x + r.gauss(0, 0.01) for x in v]
    elif dt == "I32":
        v = [x + (i % 3) for i, x in enumerate(v)]
    ft.append((name, dt, shape, v))
extra = [("rd.v0.a", [16, 32]), ("rd.v0.b", [32, 32]), ("rd.v0.c", [40, 20]), ("rd.v1.a", [24, 40]),
         ("rd.v1.b", [48, 64])]
st(os.path.join(g, "base.safetensors"),
   [(n, dt, s, enc(dt, v)) for n, dt, s, v in base] +
   [(n, "BF16", s, enc("BF16", mat(s[0] * s[1], 0.02))) for n, s in extra], {"format": "pt"})
ftt = [(n, dt, s, enc(dt, v)) for n, dt, s, v in ft]
st(os.path.join(g, "ft.safetensors"), ftt, {"format": "pt"})
d = os.path.join(w, "ftdir"); os.makedirs(d)
st(os.path.join(d, "model-00001-of-00002.safetensors"), ftt[:3], {"format": "pt"})
st(os.path.join(d, "model-00002-of-00002.safetensors"), ftt[3:], {"format": "pt"})
wm = {n: "model-0000%d-of-00002.safetensors" % (1 if i < 3 else 2) for i, (n, _, _, _) in enumerate(ftt)}
with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
with open(os.path.join(d, "config.json"), "w") as f:
    json.dump({"model_type": "golden", "hidden_size": 32}, f, indent=2)
PY

B=$G/base.safetensors
"$DDCT" compress "$B" "$G/ft.safetensors" -o "$G/f11_patch.ddct" -q -f -T 1 --method patch
"$DDCT" compress "$B" "$W/ftdir" -o "$G/f11_dir.ddct" -q -f -T 1 --method patch
"$DDCT" compress "$B" "$G/ft.safetensors" -o "$G/f11_bitdelta.ddct" -q -f -T 1 --method bitdelta
"$DDCT" compress "$B" "$G/ft.safetensors" -o "$G/f11_svd.ddct" -q -f -T 1 --method svd --bpp 4
"$DDCT" compress "$B" "$G/ft.safetensors" -o "$G/f11_rd.ddct" -q -f -T 1 --method rd --bpp 2
"$MAKE_OLD" rd "$B" "$G/f11_rd_v0v1.ddct"
"$MAKE_OLD" f10 "$B" "$G/ft.safetensors" "$G/f11_patch.ddct" "$G/f10_patch_v0.ddct"
