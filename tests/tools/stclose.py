#!/usr/bin/env python3
"""stclose.py GOT.safetensors WANT.safetensors — the same tensors (names, order, dtypes, shapes,
__metadata__), integer tensors byte for byte, float tensors within a few units in the last place
of their dtype (lossy rebuilds through BLAS may differ in the last bits across CPUs). Standard
library only; exit 0 when they agree, else the first difference."""
import json, struct, sys

EPS = {"F32": 2.0 ** -20, "F16": 2.0 ** -9, "BF16": 2.0 ** -6}


def load(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h.pop("__metadata__", None), h, b[8 + n:]


def floats(dt, b):
    if dt == "F32": return struct.unpack("<%df" % (len(b) // 4), b)
    if dt == "F16": return struct.unpack("<%de" % (len(b) // 2), b)
    return [struct.unpack("<f", b"\0\0" + b[i:i + 2])[0] for i in range(0, len(b), 2)]


mg, hg, dg = load(sys.argv[1])
mw, hw, dw = load(sys.argv[2])
if mg != mw or list(hg) != list(hw):
    sys.exit("metadata or tensor names differ")
for k, v in hw.items():
    g = hg[k]
    if g["dtype"] != v["dtype"] or g["shape"] != v["shape"]:
        sys.exit("%s: dtype or shape differs" % k)
    bg = dg[g["data_offsets"][0]:g["data_offsets"][1]]
    bw = dw[v["data_offsets"][0]:v["data_offsets"][1]]
    if v["dtype"] not in EPS:
        if bg != bw: sys.exit("%s: bytes differ" % k)
        continue
    a, w = floats(v["dtype"], bg), floats(v["dtype"], bw)
    top = max((abs(x) for x in w), default=0.0)
    for i, (x, y) in enumerate(zip(a, w)):
        if not abs(x - y) <= EPS[v["dtype"]] * (abs(y) + 1e-3 * top):
            sys.exit("%s[%d]: %r, expected %r" % (k, i, x, y))
