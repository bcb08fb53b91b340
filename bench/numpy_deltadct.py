#!/usr/bin/python3
"""numpy_deltadct.py — a straightforward vectorized NumPy/SciPy Delta-DCT, the baseline that
bench/scale_bench.sh compares deltadct against ("what a user would write instead").

    numpy_deltadct.py compress   BASE.safetensors FINETUNED.safetensors OUT.npdct
    numpy_deltadct.py decompress BASE.safetensors IN.npdct REBUILT.safetensors

The same method as deltadct's defaults (--patch 16 --bits 2:0.5,0:0.5 --transform dct, rescale):
per lossy tensor (float, 2-D, not an embedding / lm_head / norm, same shape as the base),
delta = ft - base in float32, cut into 16x16 patches (zero-padded), ranked by L2 norm
(argsort); the top half gets an orthonormal 2-D DCT (scipy.fft.dctn, batched) and 2-bit
round-to-nearest quantization over each patch's [min, max] (np.packbits), the rest keep their
mean; the mean |delta| is stored for the rescale. Decompress inverts it (scipy.fft.idctn),
rescales each tensor to the stored mean |delta|, adds the base and casts to the fine-tune's
dtype (BF16 round to nearest even). Other tensors are stored as their raw fine-tune bytes (no
entropy coding: it favours this baseline's speed). The file is its own simple format (a JSON
index at the end), not a .ddct. Only NumPy and SciPy (Debian python3-numpy, python3-scipy).
"""
import json
import re
import struct
import sys

import numpy as np
import scipy.fft

P = 16
EXCLUDE = re.compile(r"embed|(^|[._])(wte|wpe|lm_head|classifier|pooler|score)([._]|$)|norm|"
                     r"(^|[._])ln(_?[0-9a-z]*)?([._]|$)", re.I)
NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64, "I64": np.int64,
             "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.uint8}


# ------------------------------------------------------------------ safetensors
def st_read(path):
    """-> (header dict without __metadata__, metadata or None, data memmap (uint8))"""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(hlen))
    meta = hdr.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + hlen)
    return hdr, meta, data


def st_tensor_bytes(hdr, data, name):
    a, b = hdr[name]["data_offsets"]
    return data[a:b]


def to_f32(dtype, raw):
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return raw.view(NP_DTYPES[dtype]).astype(np.float32)


def from_f32(dtype, x):
    if dtype == "BF16":
        u = x.view(np.uint32)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
        nan = np.isnan(x)
        if nan.any():
            r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
        return r
    return x.astype(NP_DTYPES[dtype])


# ------------------------------------------------------------------ patches
def to_patches(d, rows, cols):
    pr, pc = -(-rows // P), -(-cols // P)
    if pr * P != rows or pc * P != cols:
        d = np.pad(d, ((0, pr * P - rows), (0, pc * P - cols)))
    return d.reshape(pr, P, pc, P).transpose(0, 2, 1, 3).reshape(-1, P, P), pr, pc


def from_patches(pt, pr, pc, rows, cols):
    return pt.reshape(pr, pc, P, P).transpose(0, 2, 1, 3).reshape(pr * P, pc * P)[:rows, :cols]


def is_lossy(name, t, b):
    return (b is not None and t["dtype"] in ("F32", "F16", "BF16") and b["dtype"] in ("F32", "F16", "BF16")
            and len(t["shape"]) == 2 and t["shape"] == b["shape"] and t["shape"][0] * t["shape"][1] >= P * P
            and not EXCLUDE.search(name))


# ------------------------------------------------------------------ compress
def compress(base_path, ft_path, out_path):
    bh, _, bd = st_read(base_path)
    fh, meta, fd = st_read(ft_path)
    index = {"metadata": meta, "tensors": []}
    with open(out_path, "wb") as out:
        pos = 0

        def put(arr):
            nonlocal pos
            b = np.ascontiguousarray(arr).tobytes()
            out.write(b)
            pos += len(b)
            return [pos - len(b), pos]

        for name, t in sorted(fh.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            b = bh.get(name)
            rec = {"name": name, "dtype": t["dtype"], "shape": t["shape"]}
            ftraw = st_tensor_bytes(fh, fd, name)
            if not is_lossy(name, t, b):
                rec["raw"] = put(ftraw)
                index["tensors"].append(rec)
                continue
            rows, cols = t["shape"]
            d = to_f32(t["dtype"], ftraw) - to_f32(b["dtype"], st_tensor_bytes(bh, bd, name))
            d = d.reshape(rows, cols)
            mean_abs = float(np.abs(d).mean(dtype=np.float64))
            pt, pr, pc = to_patches(d, rows, cols)
            score = np.sqrt(np.einsum("kij,kij->k", pt, pt, dtype=np.float64))
            order = np.argsort(-score, kind="stable")
            top = np.zeros(len(pt), dtype=bool)
            top[order[: (len(pt) + 1) // 2]] = True
            real = np.ones((rows, cols), np.float32)
            nreal = to_patches(real, rows, cols)[0].sum(axis=(1, 2))
            means = (pt[~top].sum(axis=(1, 2), dtype=np.float64) / nreal[~top]).astype(np.float32)
            coef = scipy.fft.dctn(pt[top], axes=(1, 2), norm="ortho", workers=-1).reshape(-1, P * P)
            lo, hi = coef.min(axis=1), coef.max(axis=1)
            rng = np.where(hi > lo, hi - lo, 1).astype(np.float32)
            q = np.clip(np.floor((coef - lo[:, None]) / rng[:, None] * 3 + 0.5), 0, 3).astype(np.uint8)
            bits = np.unpackbits(q[..., None], axis=-1, count=2, bitorder="little")
            rec.update(rows=rows, cols=cols, mean_abs=mean_abs, top=put(np.packbits(top, bitorder="little")),
                       lo=put(lo.astype(np.float32)), hi=put(hi.astype(np.float32)), means=put(means),
                       q=put(np.packbits(bits, bitorder="little")))
            index["tensors"].append(rec)
        j = json.dumps(index).encode()
        out.write(j)
        out.write(struct.pack("<Q", len(j)))


# ------------------------------------------------------------------ decompress
def decompress(base_path, in_path, out_path):
    bh, _, bd = st_read(base_path)
    blob = np.memmap(in_path, dtype=np.uint8, mode="r")
    (jl,) = struct.unpack("<Q", blob[-8:].tobytes())
    index = json.loads(blob[-8 - jl: -8].tobytes())

    def get(r, dt):
        return blob[r[0]: r[1]].view(dt)

    hdr, off = {}, 0
    for rec in index["tensors"]:
        n = int(np.prod(rec["shape"])) * (4 if rec["dtype"] in ("F32", "I32", "U32") else
                                          2 if rec["dtype"] in ("F16", "BF16", "I16", "U16") else
                                          8 if rec["dtype"] in ("F64", "I64", "U64") else 1)
        hdr[rec["name"]] = {"dtype": rec["dtype"], "shape": rec["shape"], "data_offsets": [off, off + n]}
        off += n
    if index["metadata"] is not None:
        hdr["__metadata__"] = index["metadata"]
    hj = json.dumps(hdr, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(out_path, "wb") as out:
        out.write(struct.pack("<Q", len(hj)))
        out.write(hj)
        for rec in index["tensors"]:
            if "raw" in rec:
                out.write(blob[rec["raw"][0]: rec["raw"][1]].tobytes())
                continue
            name, rows, cols = rec["name"], rec["rows"], rec["cols"]
            pr, pc = -(-rows // P), -(-cols // P)
            top = np.unpackbits(get(rec["top"], np.uint8), count=pr * pc, bitorder="little").astype(bool)
            ntop = int(top.sum())
            bits = np.unpackbits(get(rec["q"], np.uint8), count=ntop * P * P * 2, bitorder="little")
            q = bits.reshape(-1, 2)[:, 0] | (bits.reshape(-1, 2)[:, 1] << 1)
            lo, hi = get(rec["lo"], np.float32), get(rec["hi"], np.float32)
            coef = lo[:, None] + q.reshape(ntop, P * P).astype(np.float32) * ((hi - lo) / 3)[:, None]
            pt = np.empty((pr * pc, P, P), np.float32)
            pt[top] = scipy.fft.idctn(coef.reshape(-1, P, P), axes=(1, 2), norm="ortho", workers=-1)
            pt[~top] = get(rec["means"], np.float32)[:, None, None]
            d = from_patches(pt, pr, pc, rows, cols)
            cur = float(np.abs(d).mean(dtype=np.float64))
            if cur > 0 and rec["mean_abs"] > 0:
                d = d * np.float32(rec["mean_abs"] / cur)
            b = bh[name]
            x = to_f32(b["dtype"], st_tensor_bytes(bh, bd, name)).reshape(rows, cols) + d
            out.write(from_f32(rec["dtype"], np.ascontiguousarray(x)).tobytes())


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("compress", "decompress"):
        sys.exit(__doc__)
    (compress if sys.argv[1] == "compress" else decompress)(*sys.argv[2:])
