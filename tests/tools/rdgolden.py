#!/usr/bin/env python3
"""rdgolden.py BASE.safetensors REBUILT.safetensors HEADER.h... — the rebuild of the old rd records
of tests/golden/make_old.c (tensors rd.v0.a/b/c, rd.v1.a/b) must be what their own decoders gave:
BF16(base + delta), the deltas as stored in the golden headers (g0_out, g1_out, g2_out of
rd_v0_golden.h; g1_0_out, g1_1_out of rd_v1_golden.h), within a few units in the last place
(BLAS may differ in the last bits across CPUs). Standard library only; exit 0 when they agree."""
import re, struct, sys

ARRAYS = {"rd.v0.a": "g0_out", "rd.v0.b": "g1_out", "rd.v0.c": "g2_out", "rd.v1.a": "g1_0_out", "rd.v1.b": "g1_1_out"}


def load(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = __import__("json").loads(b[8:8 + n])
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}


def bf16(raw):
    return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]


def main():
    base, got = load(sys.argv[1]), load(sys.argv[2])
    text = "".join(open(p).read() for p in sys.argv[3:])
    arrays = {m.group(1): [float(x) for x in m.group(2).replace("\n", " ").split(",") if x.strip()]
              for m in re.finditer(r"static const float (\w+)\[\d+\] = \{([^}]*)\}", text)}
    if sorted(got) != sorted(ARRAYS):
        sys.exit("rebuilt tensors %s, expected %s" % (sorted(got), sorted(ARRAYS)))
    for name, arr in ARRAYS.items():
        meta, raw = got[name]
        if meta["dtype"] != "BF16" or meta["shape"] != base[name][0]["shape"]:
            sys.exit("%s: %s %s" % (name, meta["dtype"], meta["shape"]))
        b, r, d = bf16(base[name][1]), bf16(raw), arrays[arr]
        if not len(b) == len(r) == len(d):
            sys.exit("%s: %d base, %d rebuilt, %d golden values" % (name, len(b), len(r), len(d)))
        for i, (x, y, z) in enumerate(zip(b, r, d)):
            want = struct.unpack("<f", struct.pack("<f", x + z))[0]
            if abs(y - want) > 2.0 ** -6 * max(abs(want), 1e-30) + 1e-30:
                sys.exit("%s[%d]: rebuilt %r, golden %r" % (name, i, y, want))
    print("%d old rd tensors as their decoders rebuilt them" % len(ARRAYS))


main()
