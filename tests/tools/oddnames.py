#!/usr/bin/env python3
"""oddnames.py — inputs for tests/cli_output.sh: models whose tensor names hold what a terminal
acts on, NaN weights, and a .ddct whose names are not UTF-8.

  oddnames.py pair OUTDIR
      OUTDIR/base.safetensors, OUTDIR/finetuned.safetensors: F32 tensors, two of them with odd
      names (ESC sequences, a newline, a C1 CSI, a bidi override; valid UTF-8, so valid JSON);
      OUTDIR/finetuned_nan.safetensors: the fine-tune with a NaN in a lossy-eligible tensor;
      OUTDIR/badheader.safetensors: a header with a raw ESC, a raw newline and bytes that are
      not UTF-8 inside a name (not valid JSON: readers must refuse it);
      OUTDIR/names.json: the odd names, for the checks.
  oddnames.py rename IN.ddct OUT.ddct OLD_NAME_HEX NEW_NAME_HEX
      Rewrite a .ddct with one tensor renamed to arbitrary bytes: the header's "layout" (which
      lists names in JSON, so UTF-8 only) is dropped, as in a format 1.0 file; the index and
      every checksum are rebuilt (XXH3-64 from libxxhash through ctypes; exit 77 without it).
"""
import ctypes
import ctypes.util
import json
import random
import struct
import sys

ESC_NAME = "blocks.0.\x1b[31mred\x1b[0m\nsecond line.weight"
C1_NAME = "blocks.1.\u009b2J\u202eevil.weight"
NAN_NAME = "blocks.2.plain.weight"


def write_st(path, tensors, raw_header=None):
    """tensors: list of (name, shape, values) in F32."""
    header, data = {}, b""
    for name, shape, vals in tensors:
        b = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    return header


def pair(out):
    rng = random.Random(5)
    shapes = [(ESC_NAME, (32, 32)), (C1_NAME, (32, 48)), (NAN_NAME, (32, 32)), ("blocks.3.bias", (32,))]
    base, ft, nan = [], [], []
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        b = [rng.gauss(0, 0.05) for _ in range(n)]
        f = [x + rng.gauss(0, 0.005) for x in b]
        base.append((name, shape, b))
        ft.append((name, shape, f))
        g = list(f)
        if name == NAN_NAME:
            g[17] = float("nan")
        nan.append((name, shape, g))
    write_st(out + "/base.safetensors", base)
    write_st(out + "/finetuned.safetensors", ft)
    write_st(out + "/finetuned_nan.safetensors", nan)
    vals = [0.5] * 4
    raw = b'{"bad.\x1b[2J\nname\xff\xfe.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    write_st(out + "/badheader.safetensors", [("x", (4,), vals)], raw_header=raw)
    with open(out + "/names.json", "w") as f:
        json.dump({"esc": ESC_NAME, "c1": C1_NAME, "nan": NAN_NAME}, f)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf, pos):
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def rename(src, dst, old, new):
    lib = ctypes.util.find_library("xxhash")
    if not lib:
        sys.exit(77)
    xx = ctypes.CDLL(lib)
    xx.XXH3_64bits.restype = ctypes.c_uint64
    xx.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    h = lambda b: struct.pack("<Q", xx.XXH3_64bits(bytes(b), len(b)))
    f = open(src, "rb").read()
    assert f[:8] == b"\x89DDCT\r\n\x1a"
    (j,) = struct.unpack_from("<I", f, 16)
    hdr = json.loads(f[20 : 20 + j])
    hdr.pop("layout", None)
    js = json.dumps(hdr, separators=(",", ":")).encode()
    head = f[:16] + struct.pack("<I", len(js)) + js
    head += h(head)
    shift = len(head) - (20 + j + 8)
    foot = f[-48:]
    ioff, ilen, _, count, _ = struct.unpack_from("<QQQQQ", foot)
    assert foot[40:] == b"DDCTEND\0"
    records = f[20 + j + 8 : ioff]
    idx, pos = f[ioff : ioff + ilen], 0
    n, pos = read_varint(idx, pos)
    out = bytearray(varint(n))
    found = 0
    for _ in range(n):
        nl, pos = read_varint(idx, pos)
        name = idx[pos : pos + nl]
        pos += nl
        dt, nd = idx[pos], idx[pos + 1]
        pos += 2
        dims = []
        for _ in range(nd):
            d, pos = read_varint(idx, pos)
            dims.append(d)
        off, pos = read_varint(idx, pos)
        ln, pos = read_varint(idx, pos)
        if name == old:
            name, found = new, found + 1
        out += varint(len(name)) + name + bytes([dt, nd]) + b"".join(varint(d) for d in dims)
        out += varint(off + shift) + varint(ln)
    assert found == 1, "tensor %r not in the index" % old
    new_ioff = len(head) + len(records)
    foot = struct.pack("<QQQQ", new_ioff, len(out), xx.XXH3_64bits(bytes(out), len(out)), count)
    foot += h(foot) + b"DDCTEND\0"
    with open(dst, "wb") as o:
        o.write(head + records + bytes(out) + foot)


if __name__ == "__main__":
    if sys.argv[1] == "pair":
        pair(sys.argv[2])
    elif sys.argv[1] == "rename":
        rename(sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4]), bytes.fromhex(sys.argv[5]))
    else:
        sys.exit("usage: oddnames.py pair OUTDIR | rename IN OUT OLD_HEX NEW_HEX")
