#!/usr/bin/env python3
"""stcompare.py A.safetensors B.safetensors [--lossless NAME ...] [--all-identical]

Checks that B has exactly A's tensor names (in order), dtypes, shapes and __metadata__, and
that the listed tensors (or all, with --all-identical) are byte-identical. Standard library only.
Exit 0 when all checks hold; prints the first difference otherwise."""
import json, struct, sys


def load(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    return h, meta, b[8 + n:]


def main():
    a, b = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    all_id = "--all-identical" in rest
    names = [x for x in rest if not x.startswith("--")]
    ha, ma, da = load(a)
    hb, mb, db = load(b)
    if list(ha) != list(hb):
        sys.exit(f"tensor names/order differ: {list(ha)[:5]} vs {list(hb)[:5]}")
    if ma != mb:
        sys.exit(f"__metadata__ differs: {ma} vs {mb}")
    for k in ha:
        if ha[k]["dtype"] != hb[k]["dtype"] or ha[k]["shape"] != hb[k]["shape"]:
            sys.exit(f"{k}: dtype/shape differ")
        if all_id or k in names:
            s, e = ha[k]["data_offsets"]
            s2, e2 = hb[k]["data_offsets"]
            if da[s:e] != db[s2:e2]:
                sys.exit(f"{k}: bytes differ")
    print("ok")


main()
