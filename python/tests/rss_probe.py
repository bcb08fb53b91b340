"""Peak memory of Reader.load_into, measured in a process of its own (run by test_torch.py):

    python rss_probe.py MODEL.ddct BASE.safetensors GPT_EVAL.py

Builds the GPT of GPT_EVAL.py in the shape the .ddct holds, then resets the peak resident set
(VmHWM, by writing 5 to /proc/self/clear_refs), reads VmRSS, opens the .ddct and loads it into the
model, and prints one JSON line: rss_before, peak (VmHWM after the call), model_bytes (the
model's parameters and buffers), largest (its largest tensor), reset (whether the reset worked)."""
import importlib.util
import json
import resource
import sys

import torch

import deltadct


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main():
    ddct, base, tool = sys.argv[1:4]
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("gpt_eval", tool)
    ge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ge)
    torch.set_num_threads(2)
    inf = deltadct.info(ddct)
    shapes = {t["name"]: t["shape"] for t in inf["tensors"]}
    meta = json.loads(inf["header"].get("metadata") or "{}")
    n_layer = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("model.layers."))
    vocab, d = shapes["model.embed_tokens.weight"]
    model = ge.GPT(vocab=vocab, ctx=shapes["model.embed_positions.weight"][0], d=d, n_layer=n_layer,
                   n_head=int(meta.get("n_head", 8)),
                   mlp_mult=shapes["model.layers.0.mlp.up_proj.weight"][0] // d)
    sizes = [v.numel() * v.element_size() for v in model.state_dict().values()]
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = status("VmRSS")
    with deltadct.open(ddct, base) as m:
        m.load_into(model)
    peak = status("VmHWM")
    print(json.dumps({"rss_before": before, "peak": peak, "model_bytes": sum(sizes), "largest": max(sizes),
                      "reset": reset, "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


main()
