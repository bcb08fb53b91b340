#!/usr/bin/env python3
"""Another fine-tune of the same base, deterministically: OUT = BASE + s * (FT - BASE) per float
tensor (F32, F16, BF16) that BASE holds with the same dtype and shape, s = 1 + 0.3 * sin(1.7 K + i)
for the tensor's index i; every other tensor, the header and the tensor order as in FT.
usage: ft_variant.py BASE.safetensors FT.safetensors OUT.safetensors K"""
import json
import math
import struct
import sys

import numpy as np


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def to_f32(raw, dt):
    if dt == "F32":
        return np.frombuffer(raw, "<f4").astype(np.float32)
    if dt == "F16":
        return np.frombuffer(raw, "<f2").astype(np.float32)
    return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)


def from_f32(x, dt):
    if dt == "F32":
        return x.astype("<f4").tobytes()
    if dt == "F16":
        return x.astype("<f2").tobytes()
    u = x.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return u.astype("<u2").tobytes()


def main():
    base, ft, out, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    bn, bh = header(base)
    fn, fh = header(ft)
    with open(base, "rb") as bf, open(ft, "rb") as ff, open(out, "wb") as of:
        ff.seek(0)
        of.write(ff.read(8 + fn))
        names = sorted((v["data_offsets"][0], name) for name, v in fh.items() if name != "__metadata__")
        for i, (_, name) in enumerate(names):
            t = fh[name]
            a, b = t["data_offsets"]
            ff.seek(8 + fn + a)
            raw = ff.read(b - a)
            bt = bh.get(name)
            if t["dtype"] in ("F32", "F16", "BF16") and bt and bt["dtype"] == t["dtype"] and bt["shape"] == t["shape"]:
                ba, bb = bt["data_offsets"]
                bf.seek(8 + bn + ba)
                x0 = to_f32(bf.read(bb - ba), t["dtype"])
                s = 1 + 0.3 * math.sin(1.7 * k + i)
                raw = from_f32(x0 + np.float32(s) * (to_f32(raw, t["dtype"]) - x0), t["dtype"])
            of.write(raw)


if __name__ == "__main__":
    main()
