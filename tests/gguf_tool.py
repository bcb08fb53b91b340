#!/usr/bin/env python3
"""gguf_tool.py - a small GGUF v3 writer and reader in Python + numpy, independent of deltadct's C
code, for tests.

  gguf_tool.py sample OUT.gguf [--seed N] [--align A] [--version V] [--gap]
        a small model: F32, F16, BF16 and Q8_0 tensors (Q8_0: random data quantized as ggml does),
        metadata of every value type (strings, arrays of strings and numbers, a nested array)
  gguf_tool.py pair DIR [--seed N] [--scale S]
        DIR/base.gguf and DIR/finetuned.gguf: the same tensors, the fine-tune = base + S * noise
        (its Q8_0 tensors quantized from the fine-tuned values), metadata differing in one string
  gguf_tool.py corpus DIR
        the seed corpus of fuzz/fuzz_gguf.c (fuzz/make_corpus.sh)
  gguf_tool.py dump FILE
        JSON: version, alignment, data_start, metadata {key: {"type", "value"[, "elem_type"]}},
        tensors [{"name", "type", "ne", "offset", "nbytes"}] (integers that do not fit a double
        as strings)
  gguf_tool.py compare FILE [--c C.json] [--npm NPM.json]
        FILE read here compared with ddct-ggufdump's JSON of it and gguf_check.mjs's: metadata
        (keys in order, types, values; the C view's f32 values to float32 precision) and tensor
        infos (name, type, ne, offset, byte count), data start. Exit 1 listing the differences.
  gguf_tool.py tensor FILE NAME
        a tensor's values as float32 (Q8_0 dequantized), little-endian bytes to stdout

As a module: write_gguf(path, kvs, tensors, align=32, version=3), read_gguf(path),
quantize_q8_0(x), dequantize_q8_0(raw, n), tensor_values(path, name).
"""
import json
import struct
import sys

import numpy as np

# value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
VT_NAMES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"]
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
        U64: "<Q", I64: "<q", F64: "<d"}

# ggml types: id -> (name, block size, bytes a block), as ggml's type_traits
GGML = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
        7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84),
        11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
        15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
        19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82),
        23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
        28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
        35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
        42: ("Q2_0", 64, 18)}
GGML_ID = {v[0]: k for k, v in GGML.items()}


# ------------------------------------------------------------------ writing

def _str(s):
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vt, v):
    """bytes of a value of type vt; arrays: v = (elem_type, [values])"""
    if vt == STRING:
        return _str(v)
    if vt == ARRAY:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(_value(et, x) for x in items)
    return struct.pack(_FMT[vt], v)


def write_gguf(path, kvs, tensors, align=32, version=3, gap=0):
    """kvs: [(key, vtype, value)] in order (an alignment other than 32 is added as
    general.alignment unless given); tensors: [(name, ggml_type_name, ne, raw_bytes)] in order,
    ne fastest dimension first. Data offsets follow the tensor order, each aligned; gap: that
    many alignment units of zeros before the second tensor."""
    kvs = list(kvs)
    if align != 32 and not any(k == "general.alignment" for k, _, _ in kvs):
        kvs.insert(1, ("general.alignment", U32, align))
    infos, data, pos = b"", [], 0
    for i, (name, tname, ne, raw) in enumerate(tensors):
        t = GGML_ID[tname]
        _, blk, tsz = GGML[t]
        n = int(np.prod(ne, dtype=np.int64)) if ne else 1
        assert (not ne or ne[0] % blk == 0) and len(raw) == n // blk * tsz, (name, len(raw))
        if i == 1:
            pos += gap * align
        infos += _str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", t, pos)
        data.append((pos, raw))
        pos = (pos + len(raw) + align - 1) // align * align
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    head += b"".join(_str(k) + struct.pack("<I", vt) + _value(vt, v) for k, vt, v in kvs) + infos
    start = (len(head) + align - 1) // align * align
    out = bytearray(start + pos)
    out[:len(head)] = head
    for off, raw in data:
        out[start + off:start + off + len(raw)] = raw
    with open(path, "wb") as f:
        f.write(out)


def _roundf(x):
    """C's roundf: halves away from zero (numpy rounds them to even)"""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_q8_0(x):
    """ggml's quantize_row_q8_0_ref: blocks of 32, d = amax / 127 (stored F16), q = round(x / d)"""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = _roundf(x * inv[:, None]).astype(np.int8)
    out = np.empty((x.shape[0], 34), np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(raw, n):
    b = np.frombuffer(raw, np.uint8).reshape(-1, 34)[: n // 32]
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def _bf16(x):
    """float32 -> bfloat16 bits, round to nearest even"""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def encode(tname, x):
    """a row-major float array as the bytes of ggml type tname"""
    if tname == "F32":
        return np.ascontiguousarray(x, "<f4").tobytes()
    if tname == "F16":
        return np.ascontiguousarray(x, "<f2").tobytes()
    if tname == "BF16":
        return _bf16(x).astype("<u2").tobytes()
    if tname == "Q8_0":
        return quantize_q8_0(x)
    raise ValueError(tname)


def sample_model(seed=1, scale=0.0, base_seed=None, small=False):
    """tensors (name, type, row-major float values) of a tiny llama-like model; with scale > 0,
    the fine-tune of the model of base_seed: its values plus scale * noise from seed"""
    spec = [("token_embd.weight", "F16", (16, 64)), ("blk.0.attn_q.weight", "Q8_0", (32, 64)),
            ("blk.0.attn_norm.weight", "F32", (64,)), ("blk.0.ffn_up.weight", "BF16", (48, 64)),
            ("blk.0.ffn_down.weight", "Q8_0", (64, 96)), ("output_norm.weight", "F32", (64,)),
            ("output.weight", "F16", (16, 64))]
    if small:
        spec = [(n, t, (2,) * (len(sh) - 1) + (32,)) for n, t, sh in spec[:4]]
    rng = np.random.default_rng(seed if base_seed is None else base_seed)
    vals = [(n, t, (rng.standard_normal(s) * 0.05).astype(np.float32)) for n, t, s in spec]
    if scale:
        rng = np.random.default_rng(seed)
        vals = [(n, t, (v + scale * rng.standard_normal(v.shape)).astype(np.float32)) for n, t, v in vals]
    return vals


def sample_kvs(name="tiny"):
    return [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, name),
        ("general.file_type", U32, 7),
        ("llama.context_length", U32, 128),
        ("llama.block_count", U32, 1),
        ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("t.u8", U8, 250), ("t.i8", I8, -7), ("t.u16", U16, 65535), ("t.i16", I16, -32768),
        ("t.i32", I32, -123456), ("t.u64", U64, 2**63 + 5), ("t.i64", I64, -(2**40)),
        ("t.f64", F64, 0.1), ("t.bool", BOOL, True),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "caf\u00e9", "\u2581the", ""])),
        ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, -1.5, -2.25, 3.0, 0.5])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [3, 3, 1, 1, 1])),
        ("t.nested", ARRAY, (ARRAY, [(U16, [1, 2, 3]), (U16, []), (STRING, ["x"])])),
    ]


def write_sample(path, seed=1, align=32, version=3, gap=0, scale=0.0, base_seed=None, name="tiny", small=False):
    vals = sample_model(seed, scale, base_seed, small)
    tensors = [(n, t, list(reversed(v.shape)), encode(t, v)) for n, t, v in vals]
    write_gguf(path, sample_kvs(name), tensors, align=align, version=version, gap=gap)


def write_corpus(d):
    """seeds for fuzz/fuzz_gguf.c: small valid files of every kind, and a few broken ones"""
    import os
    os.makedirs(d, exist_ok=True)
    P = lambda n: os.path.join(d, n)  # noqa: E731
    write_sample(P("small-v3"), 1, small=True)
    write_sample(P("small-v2-align64-gap"), 2, align=64, version=2, gap=1, small=True)
    write_sample(P("small-align1"), 3, align=1, small=True)
    write_sample(P("small-align256"), 4, align=256, small=True)
    write_gguf(P("empty"), [], [])
    write_gguf(P("kv-only"), sample_kvs(), [])
    rng = np.random.default_rng(5)
    # one tensor of every ggml type: one block a row, two rows
    ts = [("t.%s" % nm, nm, [blk, 2], rng.integers(0, 256, 2 * tsz, dtype=np.uint8).tobytes())
          for _, (nm, blk, tsz) in sorted(GGML.items())]
    write_gguf(P("every-type"), [("general.architecture", STRING, "x")], ts)
    write_gguf(P("scalar-and-empty"), [], [("s", "F32", [], b"\0\0\x80\x3f"), ("e", "Q8_0", [0, 3], b""),
                                           ("d4", "I8", [1, 2, 1, 3], bytes(range(6)))])
    nest = (ARRAY, [(ARRAY, [(I64, [1, -1]), (F64, [0.5])]), (STRING, ["a", "\u00e9"]), (BOOL, [True, False])])
    write_gguf(P("nested"), [("n", ARRAY, nest), ("s", ARRAY, (STRING, ["t%d" % i for i in range(200)]))],
               [("w", "F16", [4], b"\0\x3c" * 4)])
    with open(P("small-v3"), "rb") as f:
        good = f.read()
    broken = {
        "cut-header": good[:300], "cut-data": good[:-5],
        "version1": good[:4] + struct.pack("<I", 1) + good[8:],
        "big-endian": good[:4] + struct.pack(">I", 3) + good[8:],
        "magic": b"GGUG" + good[4:],
        "huge-counts": good[:8] + struct.pack("<QQ", 2**62, 2**61) + good[24:],
    }
    for n, b in broken.items():
        with open(P("bad-" + n), "wb") as f:
            f.write(b)


# ------------------------------------------------------------------ reading

class _R:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if n > len(self.b) - self.p:
            raise ValueError("truncated at byte %d" % self.p)
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def un(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def str(self):
        return self.take(self.un("<Q")).decode("utf-8", errors="replace")

    def value(self, vt):
        if vt == STRING:
            return self.str()
        if vt == ARRAY:
            et, n = self.un("<I"), self.un("<Q")
            return {"elem_type": VT_NAMES[et], "value": [self.value(et) for _ in range(n)]}
        return self.un(_FMT[vt])


def read_gguf(path):
    with open(path, "rb") as f:
        b = f.read()
    r = _R(b)
    if r.take(4) != b"GGUF":
        raise ValueError("not a GGUF file")
    version, nt, nkv = r.un("<I"), r.un("<Q"), r.un("<Q")
    meta = {}
    for _ in range(nkv):
        k = r.str()
        vt = r.un("<I")
        v = r.value(vt)
        meta[k] = dict(type=VT_NAMES[vt], **v) if vt == ARRAY else {"type": VT_NAMES[vt], "value": v}
    align = meta.get("general.alignment", {"value": 32})["value"]
    tensors = []
    for _ in range(nt):
        name = r.str()
        nd = r.un("<I")
        ne = [r.un("<Q") for _ in range(nd)]
        t, off = r.un("<I"), r.un("<Q")
        nm, blk, tsz = GGML.get(t, ("?%d" % t, 1, 0))
        n = int(np.prod(ne, dtype=np.int64)) if ne else 1
        tensors.append({"name": name, "type": nm, "ne": ne, "offset": off, "nbytes": n // blk * tsz})
    start = (r.p + align - 1) // align * align
    return {"version": version, "alignment": align, "data_start": start, "metadata": meta, "tensors": tensors,
            "_bytes": b}


def tensor_values(path, name):
    g = read_gguf(path)
    t = next(t for t in g["tensors"] if t["name"] == name)
    raw = g["_bytes"][g["data_start"] + t["offset"]:][: t["nbytes"]]
    n = int(np.prod(t["ne"], dtype=np.int64)) if t["ne"] else 1
    shape = tuple(reversed(t["ne"]))
    if t["type"] == "F32":
        v = np.frombuffer(raw, "<f4")
    elif t["type"] == "F16":
        v = np.frombuffer(raw, "<f2").astype(np.float32)
    elif t["type"] == "BF16":
        v = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    elif t["type"] == "Q8_0":
        v = dequantize_q8_0(raw, n)
    else:
        raise ValueError("type %s not decoded here" % t["type"])
    return v.reshape(shape)


def _jsonable(x):
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**53:
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return x


def _plain(v):
    """a read_gguf value without its array type tags"""
    if isinstance(v, dict):
        return [_plain(x) for x in v["value"]]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _same(a, b, f32=False):
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            all(_same(x, y, f32) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, str) or isinstance(b, str):
            return False
        return np.float32(a) == np.float32(b) if f32 else float(a) == float(b)
    return a == b


def compare(path, c_json=None, npm_json=None):
    """differences between this reader's view of path and the C and npm views (a list of lines)"""
    g = read_gguf(path)
    diffs = []
    py_meta = [(k, v["type"], v.get("elem_type"), _plain(v["value"])) for k, v in g["metadata"].items()]
    if c_json is not None:
        c = json.load(open(c_json))
        for f in ("version", "alignment", "data_start"):
            if c[f] != g[f]:
                diffs.append("C %s %r, here %r" % (f, c[f], g[f]))
        if list(c["metadata"]) != [k for k, _, _, _ in py_meta]:
            diffs.append("C metadata keys %r, here %r" % (list(c["metadata"]), [m[0] for m in py_meta]))
        for k, vt, et, v in py_meta:
            cv = c["metadata"].get(k)
            f32 = vt == "f32" or et == "f32"
            if not _same(cv, v, f32):
                diffs.append("C metadata %s = %r, here %r" % (k, cv, v))
        ct = [(t["name"], t["type"], t["ne"], t["offset"], t["nbytes"]) for t in c["tensors"]]
        pt = [(t["name"], t["type"], t["ne"], t["offset"], t["nbytes"]) for t in g["tensors"]]
        if ct != pt:
            diffs.append("C tensors %r, here %r" % (ct, pt))
        for t in c["tensors"]:
            if t["shape"] != list(reversed(t["ne"])):
                diffs.append("C tensor %s: shape %r is not ne %r reversed" % (t["name"], t["shape"], t["ne"]))
    if npm_json is not None:
        n = json.load(open(npm_json))
        for f in ("version", "data_start"):
            if n[f] != g[f]:
                diffs.append("npm %s %r, here %r" % (f, n[f], g[f]))
        if list(n["metadata"]) != [k for k, _, _, _ in py_meta]:
            diffs.append("npm metadata keys %r, here %r" % (list(n["metadata"]), [m[0] for m in py_meta]))
        for k, vt, et, v in py_meta:
            nv = n["metadata"].get(k, {})
            if nv.get("type") != vt or nv.get("elem_type") != et or not _same(nv.get("value"), _jsonable(v)):
                diffs.append("npm metadata %s = %r, here %r" % (k, nv, (vt, et, v)))
        nt = [(t["name"], t["type_id"], t["ne"], t["offset"]) for t in n["tensors"]]
        pt = [(t["name"], GGML_ID.get(t["type"]), t["ne"], t["offset"]) for t in g["tensors"]]
        if nt != pt:
            diffs.append("npm tensors %r, here %r" % (nt, pt))
    return diffs


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("out")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--align", type=int, default=32)
    s.add_argument("--version", type=int, default=3)
    s.add_argument("--gap", action="store_true")
    p = sub.add_parser("pair")
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=0.01)
    k = sub.add_parser("corpus")
    k.add_argument("dir")
    d = sub.add_parser("dump")
    d.add_argument("file")
    c = sub.add_parser("compare")
    c.add_argument("file")
    c.add_argument("--c", dest="c_json")
    c.add_argument("--npm", dest="npm_json")
    t = sub.add_parser("tensor")
    t.add_argument("file")
    t.add_argument("name")
    a = ap.parse_args(argv)
    if a.cmd == "sample":
        write_sample(a.out, a.seed, a.align, a.version, 1 if a.gap else 0)
    elif a.cmd == "pair":
        import os
        os.makedirs(a.dir, exist_ok=True)
        write_sample(os.path.join(a.dir, "base.gguf"), a.seed, name="tiny-base")
        write_sample(os.path.join(a.dir, "finetuned.gguf"), a.seed + 1000, scale=a.scale, base_seed=a.seed,
                     name="tiny-finetuned")
    elif a.cmd == "corpus":
        write_corpus(a.dir)
    elif a.cmd == "dump":
        g = read_gguf(a.file)
        del g["_bytes"]
        json.dump(_jsonable(g), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif a.cmd == "compare":
        diffs = compare(a.file, a.c_json, a.npm_json)
        for d in diffs:
            print(d, file=sys.stderr)
        if diffs:
            sys.exit(1)
        print("%s: same view (%s)" % (a.file, ", ".join(x for x, y in (("C", a.c_json), ("npm", a.npm_json)) if y)))
    elif a.cmd == "tensor":
        sys.stdout.buffer.write(np.ascontiguousarray(tensor_values(a.file, a.name), "<f4").tobytes())


if __name__ == "__main__":
    main(sys.argv[1:])
