#!/usr/bin/python3
"""Checks of a PEFT LoRA adapter written by `deltadct export-lora` (tests/cli_lora.sh).

  lora_check.py svd BASE FINETUNED ADAPTER_DIR TOL
      the adapter applied with torch (W + (alpha / r) B A, tools/lora_apply.py) gives, for every
      module, base + the truncated SVD of its delta (numpy, float64) at the module's rank, within
      TOL relative to that truncation; modules_to_save tensors equal the fine-tune's
  lora_check.py rebuilt BASE REBUILT ADAPTER_DIR TOL
      base + adapter equals REBUILT (a .ddct's decompressed svd records) within TOL, per module
  lora_check.py lowrank BASE ADAPTER_DIR RANKS.json
      each module's B A has exactly the rank RANKS.json ({tensor name: rank}) gives

Always: the config parses, is a LoRA config, its rank_pattern / alpha_pattern (or r / lora_alpha)
agree with every lora_A / lora_B shape, alpha = rank (scaling 1), r is the largest rank.
"""
import json, os, sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import lora_apply as la  # noqa: E402


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_config(adapter, cfg):
    if cfg.get("peft_type") != "LORA":
        fail("peft_type %r" % cfg.get("peft_type"))
    ranks = la.module_ranks(cfg)
    if not ranks:
        fail("no target module")
    for m, (r, alpha) in ranks.items():
        A, B = adapter[la.PREFIX + m + ".lora_A.weight"], adapter[la.PREFIX + m + ".lora_B.weight"]
        if A.shape[0] != r or B.shape[1] != r:
            fail("%s: rank %d in the config, lora_A %s, lora_B %s" % (m, r, A.shape, B.shape))
        if alpha != r:
            fail("%s: alpha %s for rank %d" % (m, alpha, r))
    if cfg["r"] != max(r for r, _ in ranks.values()):
        fail("r %d is not the largest rank" % cfg["r"])
    return ranks


def rel(a, b):
    n = np.linalg.norm(b)
    return np.linalg.norm(a - b) / (n if n > 0 else 1.0)


def main():
    mode = sys.argv[1]
    if mode == "lowrank":
        base, _ = la.read_safetensors(sys.argv[2])
        adapter, cfg = la.load_adapter(sys.argv[3])
        want = json.load(open(sys.argv[4]))
    else:
        base, _ = la.read_safetensors(sys.argv[2])
        other, _ = la.read_safetensors(sys.argv[3])
        adapter, cfg = la.load_adapter(sys.argv[4])
        tol = float(sys.argv[5])
    ranks = check_config(adapter, cfg)
    merged = la.merge(base, adapter, cfg)
    for m, (r, _) in ranks.items():
        name = m + ".weight"
        # the module's own rank: lora_A's rows that are not zero padding (--uniform-rank)
        A = adapter[la.PREFIX + m + ".lora_A.weight"]
        r = int(np.count_nonzero(np.abs(A.reshape(A.shape[0], -1)).sum(axis=1)))
        got = torch.from_numpy(merged[name]).double() - torch.from_numpy(base[name]).double()
        if mode == "lowrank":
            mat = got.reshape(got.shape[0], -1)
            k = int(torch.linalg.matrix_rank(mat, rtol=1e-5))
            if k != want.get(name) or k != r:
                fail("%s: B A has rank %d, the record %s, the adapter %d" % (name, k, want.get(name), r))
            continue
        d = torch.from_numpy(other[name]).double() - torch.from_numpy(base[name]).double()
        if mode == "svd":
            mat = d.reshape(d.shape[0], -1)
            if cfg.get("fan_in_fan_out"):
                mat = mat.T
            U, S, Vh = torch.linalg.svd(mat, full_matrices=False)
            t = (U[:, :r] * S[:r]) @ Vh[:r]
            if cfg.get("fan_in_fan_out"):
                t = t.T
            want_d = t.reshape(d.shape)
        else:
            want_d = d
        e = rel(got.numpy(), want_d.numpy())
        if not e <= tol:
            fail("%s: relative difference %.3g from the %s at rank %d (tolerance %g)" % (name, e, mode, r, tol))
    if mode == "svd":
        for n, x in adapter.items():
            if ".lora_" in n:
                continue
            n = n[len(la.PREFIX):]
            if not np.array_equal(x, other[n]):
                fail("%s: the saved tensor is not the fine-tune's" % n)
    print("ok: %d modules" % len(ranks))


if __name__ == "__main__":
    main()
