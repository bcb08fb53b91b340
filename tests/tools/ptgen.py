#!/usr/bin/python3
"""PyTorch checkpoints for tests/cli_pytorch.sh, made with Debian's torch at test time.

  ptgen.py pair DIR      base/ft as .bin (tied weights, several dtypes, _metadata) and the same
                         weights as .safetensors (tied names once, as Hugging Face saves them)
  ptgen.py shards DIR    base/ and ft/: Hugging Face directories of two .bin shards with
                         pytorch_model.bin.index.json and a config.json
  ptgen.py hostile DIR   files deltadct must refuse, one per case (see HOSTILE)
  ptgen.py same A B [--safetensors S]
                         A loads with torch.load(weights_only=True); its tensors equal B's (a .bin
                         or .safetensors) name for name, in order; tied names of A share storage
  ptgen.py close A B     A's names, dtypes, shapes are B's; lossless tensors equal, floats close
  ptgen.py shared F A B  tensors A and B of F share one storage
  ptgen.py zip64 IN OUT  IN rewritten with ZIP64 records (Python's zipfile, force_zip64)
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import torch

ST_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
         torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8", torch.float64: "F64"}
DT_ST = {v: k for k, v in ST_DT.items()}


def write_safetensors(path, tensors):
    """A plain safetensors writer (no safetensors package in Debian)."""
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        b = v.contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b""
        header[k] = {"dtype": ST_DT[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out = collections.OrderedDict()
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]) or bytearray(1), dtype=torch.uint8)[:b - a]
        out[k] = t.view(DT_ST[v["dtype"]]).reshape(v["shape"]) if b > a else torch.zeros(v["shape"], dtype=DT_ST[v["dtype"]])
    return out


def model_state(seed, ft):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(96, 48, generator=g) * 0.05
    sd = collections.OrderedDict()
    sd["embed.weight"] = emb
    for i in range(2):
        sd[f"layers.{i}.attn.weight"] = torch.randn(48, 48, generator=g) * 0.05
        sd[f"layers.{i}.mlp.weight"] = (torch.randn(96, 48, generator=g) * 0.05).to(torch.bfloat16)
        sd[f"layers.{i}.mlp.bias"] = torch.randn(96, generator=g).to(torch.float16)
        sd[f"layers.{i}.norm.weight"] = torch.ones(48)
    sd["counter"] = torch.arange(5, dtype=torch.int64)
    sd["mask"] = torch.tensor([True, False, True])
    sd["head.weight"] = emb  # tied
    if ft:
        g2 = torch.Generator().manual_seed(seed + 100)
        for k, v in list(sd.items()):
            if v.is_floating_point() and k != "head.weight":
                sd[k] = (v.float() + 0.01 * torch.randn(v.shape, generator=g2)).to(v.dtype)
        sd["head.weight"] = sd["embed.weight"]
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("layers.0", {"version": 2})])
    return sd


def untied(sd):
    return collections.OrderedDict((k, v) for k, v in sd.items() if k != "head.weight")


def cmd_pair(d):
    os.makedirs(d, exist_ok=True)
    for name, ft in (("base", False), ("ft", True)):
        sd = model_state(1, ft)
        torch.save(sd, f"{d}/{name}.bin")
        write_safetensors(f"{d}/{name}.safetensors", untied(sd))


def cmd_shards(d):
    for name, ft in (("base", False), ("ft", True)):
        sd = untied(model_state(2, ft))
        out = f"{d}/{name}"
        os.makedirs(out, exist_ok=True)
        keys = list(sd)
        parts = [keys[:len(keys) // 2], keys[len(keys) // 2:]]
        wm = {}
        for i, ks in enumerate(parts):
            fn = f"pytorch_model-{i + 1:05d}-of-00002.bin"
            torch.save(collections.OrderedDict((k, sd[k]) for k in ks), f"{out}/{fn}")
            wm.update({k: fn for k in ks})
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, open(f"{out}/pytorch_model.bin.index.json", "w"))
        json.dump({"model_type": "toy", "hidden_size": 48}, open(f"{out}/config.json", "w"))
        torch.save({"not": "weights"}, f"{out}/training_args.bin")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch EVIL_RAN",))


class Plain:
    def __init__(self):
        self.x = 1


class EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch EVIL_RAN')",))


def replace_pickle(src, dst, payload, compress=zipfile.ZIP_STORED):
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for it in zin.infolist():
            data = zin.read(it.filename)
            if it.filename.endswith("/data.pkl") and payload is not None:
                data = payload
            zout.writestr(it.filename, data, compress_type=compress)


HOSTILE = ["system", "eval", "class", "legacy", "noncontig", "deflated", "torchscript", "nested", "bigendian"]


def cmd_hostile(d):
    os.makedirs(d, exist_ok=True)
    good = f"{d}/good.bin"
    torch.save({"w": torch.randn(4, 4)}, good)
    replace_pickle(good, f"{d}/system.bin", pickle.dumps({"w": Evil()}, protocol=2))
    replace_pickle(good, f"{d}/eval.bin", pickle.dumps({"w": EvalEvil()}, protocol=2))
    mod = types.ModuleType("evilmod")  # an instance of an arbitrary class (copyreg / NEWOBJ)
    mod.Plain = Plain
    Plain.__module__, Plain.__qualname__ = "evilmod", "Plain"
    sys.modules["evilmod"] = mod
    replace_pickle(good, f"{d}/class.bin", pickle.dumps(collections.OrderedDict(w=Plain()), protocol=2))
    torch.save({"w": torch.randn(4, 4)}, f"{d}/legacy.bin", _use_new_zipfile_serialization=False)
    torch.save({"w": torch.randn(4, 6).t()}, f"{d}/noncontig.bin")
    replace_pickle(good, f"{d}/deflated.bin", None, zipfile.ZIP_DEFLATED)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), f"{d}/torchscript.pt")
    torch.save({"model": {"w": torch.randn(2, 2)}}, f"{d}/nested.bin")
    zin = zipfile.ZipFile(good)
    with zipfile.ZipFile(f"{d}/bigendian.bin", "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for it in zin.infolist():
            zout.writestr(it.filename, zin.read(it.filename))
        if f"{root}/byteorder" not in zin.namelist():
            zout.writestr(f"{root}/byteorder", b"big")
    # views: a storage shared by two overlapping slices (fine as a base, refused as a fine-tune)
    x = torch.randn(20)
    torch.save(collections.OrderedDict(a=x[0:10], b=x[5:15]), f"{d}/overlap.bin")
    torch.save(collections.OrderedDict(a=x[0:10] + 0.1, b=x[5:15] - 0.1), f"{d}/overlap_ft.bin")
    # disjoint views of one storage (written back as one storage), and an unused tail
    y = torch.randn(40)
    torch.save(collections.OrderedDict(a=y[0:16].view(4, 4), b=y[16:32].view(4, 4)), f"{d}/views.bin")
    torch.save(collections.OrderedDict(a=y[0:16].view(4, 4), b=y[16:32].view(4, 4) + 1), f"{d}/views_ft.bin")


def cmd_zip64(src, dst):
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zout:
        for it in zin.infolist():
            with zout.open(zipfile.ZipInfo(it.filename), "w", force_zip64=True) as f:
                f.write(zin.read(it.filename))


def load_any(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return torch.load(path, weights_only=True, map_location="cpu")


def cmd_close(a, b):
    """A (rebuilt) holds B's names, dtypes and shapes in order; exact where B is not floating
    point, within a relative error of 0.5 where it is (the lossy codecs)."""
    x, y = load_any(a), load_any(b)
    assert list(x) == list(y), f"names differ: {list(x)} vs {list(y)}"
    for k in x:
        assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
        if y[k].is_floating_point():
            err = float((x[k].float() - y[k].float()).norm() / max(float(y[k].float().norm()), 1e-12))
            assert err < 0.5, f"{k}: relative error {err}"
        else:
            assert torch.equal(x[k], y[k]), f"{k} differs"
    print(f"{a}: {len(x)} tensors close to {b}")


def cmd_shared(path, a, b):
    """Tensors a and b of path share one storage."""
    x = load_any(path)
    assert x[a].storage().data_ptr() == x[b].storage().data_ptr(), f"{a} and {b} do not share a storage"
    print(f"{path}: {a} and {b} share a storage")


def cmd_same(a, b, tied=()):
    x, y = load_any(a), load_any(b)
    ka = [k for k in x if k not in tied]
    kb = [k for k in y if k not in tied]
    assert ka == kb, f"names differ: {ka} vs {kb}"
    for k in ka:
        assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
        assert torch.equal(x[k].view(torch.uint8) if x[k].dtype == torch.bool else x[k],
                           y[k].view(torch.uint8) if y[k].dtype == torch.bool else y[k]), f"{k} differs"
    for t in tied:
        if t in x:
            assert torch.equal(x[t], x["embed.weight"]), t
            if a.endswith((".bin", ".pt", ".pth")):
                assert x[t].data_ptr() == x["embed.weight"].data_ptr(), \
                    f"{t} no longer shares its storage"
    if a.endswith(".bin") and hasattr(y, "_metadata"):
        assert getattr(x, "_metadata", None) == y._metadata, "_metadata lost"
    print(f"{a}: {len(ka)} tensors equal to {b}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "pair":
        cmd_pair(args[0])
    elif cmd == "shards":
        cmd_shards(args[0])
    elif cmd == "hostile":
        cmd_hostile(args[0])
    elif cmd == "zip64":
        cmd_zip64(args[0], args[1])
    elif cmd == "close":
        cmd_close(args[0], args[1])
    elif cmd == "shared":
        cmd_shared(*args[:3])
    elif cmd == "same":
        tied = args[3].split(",") if len(args) > 3 and args[2] == "--tied" else ()
        cmd_same(args[0], args[1], tied)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
