#!/usr/bin/python3
"""Apply a PEFT LoRA adapter directory to a base model, as PEFT merges it, with torch.

  lora_apply.py BASE.safetensors ADAPTER_DIR OUT.safetensors

For every module in the adapter: W + (alpha / r) * B @ A (r and alpha from adapter_config.json:
rank_pattern / alpha_pattern for the module, else r / lora_alpha; fan_in_fan_out transposes the
product; a convolution's A [r, in, k...] and B [out, r, 1...] multiply as matrices), and every
modules_to_save tensor (base_model.model.<name>) replaces the base's. Checks that each module's
lora_A / lora_B shapes agree with its rank in the config. Writes F32 (the base's __metadata__
kept). Needs numpy and torch (Debian's python3-numpy, python3-torch). Used by tests/cli_lora.sh
and bench/lora_eval.sh.
"""
import json, os, struct, sys

import numpy as np
import torch

PREFIX = "base_model.model."


def read_safetensors(path):
    """(tensors as float32 numpy arrays (other dtypes as they are), __metadata__ or None)"""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        buf = f.read()
    meta = header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        raw = buf[a:b]
        dt, shape = h["dtype"], h["shape"]
        if dt == "F32":
            x = np.frombuffer(raw, "<f4")
        elif dt == "F16":
            x = np.frombuffer(raw, "<f2").astype(np.float32)
        elif dt == "BF16":
            x = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            x = np.frombuffer(raw, {"I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "u1"}[dt])
        out[name] = x.reshape(shape).copy()
    return out, meta


def write_safetensors(path, tensors, meta):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, x in tensors.items():
        x = np.ascontiguousarray(x)
        dt = {np.float32: "F32", np.int64: "I64", np.int32: "I32", np.uint8: "U8"}[x.dtype.type]
        b = x.tobytes()
        header[name] = {"dtype": dt, "shape": list(x.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def module_ranks(cfg):
    """{module: (rank, alpha)} for every target module"""
    r, alpha = cfg["r"], cfg["lora_alpha"]
    rp, ap = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    return {m: (rp.get(m, r), ap.get(m, alpha)) for m in cfg["target_modules"]}


def merge(base, adapter, cfg):
    """base (name -> array) with the adapter applied; returns a new dict"""
    out = dict(base)
    ranks = module_ranks(cfg)
    seen = set()
    for m, (r, alpha) in ranks.items():
        A = adapter[PREFIX + m + ".lora_A.weight"]
        B = adapter[PREFIX + m + ".lora_B.weight"]
        assert A.shape[0] == r and B.shape[1] == r, f"{m}: rank {r} in the config, tensors {A.shape} {B.shape}"
        assert all(d == 1 for d in B.shape[2:]), f"{m}: lora_B {B.shape}"
        w = base[m + ".weight"]
        d = torch.from_numpy(B.reshape(B.shape[0], r)) @ torch.from_numpy(A.reshape(r, -1))
        d = d * (alpha / r)
        if cfg.get("fan_in_fan_out"):
            d = d.T
        out[m + ".weight"] = (torch.from_numpy(w.astype(np.float32)) + d.reshape(w.shape)).numpy()
        seen.update([PREFIX + m + ".lora_A.weight", PREFIX + m + ".lora_B.weight"])
    saved = cfg.get("modules_to_save") or []
    for name, x in adapter.items():
        if name in seen:
            continue
        assert name.startswith(PREFIX), name
        n = name[len(PREFIX):]
        assert any(n.startswith(s + ".") for s in saved), f"{name}: neither a LoRA factor nor of modules_to_save"
        out[n] = x
    return out


def load_adapter(adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    adapter, _ = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    return adapter, cfg


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    base, meta = read_safetensors(sys.argv[1])
    adapter, cfg = load_adapter(sys.argv[2])
    write_safetensors(sys.argv[3], merge(base, adapter, cfg), meta)


if __name__ == "__main__":
    main()
