"""deltadct with torch: state_dict bit for bit against the rebuilt file, load_into (strict rules,
dtype conversions, the gpt-prose GPT of ../shared/tools/gpt_eval.py giving the loss the rebuilt
file gives) and load_into's peak memory, measured in a process of its own."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import deltadct
from stfile import SafeTensors

torch = pytest.importorskip("torch")

TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
MiB = 1 << 20


def raw_bytes(t):
    """A CPU tensor's bytes as stored (bfloat16 through its int16 view, numpy has no bfloat16)."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def as_float32(st, name):
    """The rebuilt file's tensor as float32 (exact for F32, F16 and BF16), as a torch tensor."""
    raw, dt, shape = st.raw(name), st.dtype(name), st.shape(name)
    if dt == "BF16":
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        a = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2", "I64": "<i8"}[dt]).astype(np.float32)
    return torch.from_numpy(a.reshape(shape).copy())


def test_state_dict_bit_for_bit(pair):
    st = SafeTensors(pair.rebuilt)
    with deltadct.open(pair.ddct, pair.base) as m:
        sd = m.state_dict()
        assert list(sd) == st.names()
        for name, t in sd.items():
            assert isinstance(t, torch.Tensor)
            assert t.dtype == TORCH_DTYPE[st.dtype(name)], name
            assert list(t.shape) == st.shape(name), name
            assert raw_bytes(t) == st.raw(name), name
        one = m.tensor("model.layers.0.self_attn.q_proj.weight")
        assert torch.equal(one, sd["model.layers.0.self_attn.q_proj.weight"])
        sdn = m.state_dict(torch=False)
        assert all(isinstance(v, np.ndarray) for v in sdn.values())


class Holder(torch.nn.Module):
    pass


def module_like(st, dtype=None, skip=(), extra=()):
    """A module whose state_dict has the rebuilt file's names and shapes: float tensors as parameters
    (in dtype, or the file's own), the others as buffers; random values."""
    root = Holder()
    g = torch.Generator().manual_seed(0)
    for name in list(st.names()) + list(extra):
        if name in skip:
            continue
        shape = st.shape(name) if name in st.header else [3]
        dt = st.dtype(name) if name in st.header else "F32"
        *path, leaf = name.split(".")
        mod = root
        for p in path:
            if not hasattr(mod, p):
                mod.add_module(p, Holder())
            mod = getattr(mod, p)
        if dt in ("F32", "F16", "BF16"):
            t = torch.randn(shape, generator=g).to(dtype or TORCH_DTYPE[dt])
            mod.register_parameter(leaf, torch.nn.Parameter(t))
        else:
            mod.register_buffer(leaf, torch.zeros(shape, dtype=TORCH_DTYPE[dt]))
    return root


@pytest.mark.parametrize("target", [None, torch.float32, torch.float64])
def test_load_into(pair, target):
    """Into the file's own dtypes (decoded straight into the parameters), into float32 (BF16 and F16
    decoded as float32 into them) and into float64 (through a temporary and copy_)."""
    st = SafeTensors(pair.rebuilt)
    module = module_like(st, target)
    with deltadct.open(pair.ddct, pair.base) as m:
        r = m.load_into(module)
    assert r.missing_keys == [] and r.unexpected_keys == []
    assert isinstance(r, deltadct.IncompatibleKeys)
    got = module.state_dict()
    for name in st.names():
        t = got[name]
        if target is None or st.dtype(name) not in ("F32", "F16", "BF16"):
            assert raw_bytes(t) == st.raw(name), name
        else:
            assert t.dtype == target
            assert torch.equal(t, as_float32(st, name).to(target)), name


def test_load_into_strict_and_mismatches(pairs):
    p = pairs["BF16"]
    st = SafeTensors(p.rebuilt)
    gone = "model.layers.1.mlp.up_proj.weight"
    module = module_like(st, skip=(gone,), extra=("adapter.new.weight",))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with deltadct.open(p.ddct, p.base) as m:
        with pytest.raises(RuntimeError) as ei:
            m.load_into(module)
        msg = str(ei.value)
        assert "Missing key(s)" in msg and '"adapter.new.weight"' in msg
        assert "Unexpected key(s)" in msg and f'"{gone}"' in msg
        for k, v in module.state_dict().items():  # nothing copied
            assert torch.equal(v, before[k]), k
        r = m.load_into(module, strict=False)
        assert r.missing_keys == ["adapter.new.weight"] and r.unexpected_keys == [gone]
        name = "model.layers.0.self_attn.q_proj.weight"
        assert raw_bytes(module.state_dict()[name]) == st.raw(name)
        assert torch.equal(module.state_dict()["adapter.new.weight"], before["adapter.new.weight"])
        # a shape that differs is refused before anything is copied, strict or not
        small = module_like(st)
        getattr(small.model.layers, "0").self_attn.k_proj.weight = torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.bfloat16))
        q = small.state_dict()[name].clone()
        with pytest.raises(RuntimeError, match="size mismatch for model.layers.0.self_attn.k_proj.weight"):
            m.load_into(small, strict=False)
        assert torch.equal(small.state_dict()[name], q)


# ---------------------------------------------------------------- the gpt-prose model
def gpt_eval(shared):
    sys.dont_write_bytecode = True  # nothing written into ../shared
    spec = importlib.util.spec_from_file_location("gpt_eval", os.path.join(shared, "tools", "gpt_eval.py"))
    ge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ge)
    return ge


def loss(ge, model, data):
    nll, n = 0.0, 0
    for lp, y in ge.logprobs_iter(model, data):
        nll -= lp.gather(1, y[:, None]).double().sum().item()
        n += y.numel()
    return nll / n


def gpt_like(ge, info):
    """An untrained GPT in the shape the .ddct holds (as gpt_eval.model_from_tensors infers it)."""
    shapes = {t["name"]: t["shape"] for t in info["tensors"]}
    meta = json.loads(info["header"].get("metadata") or "{}")
    n_layer = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("model.layers."))
    vocab, d = shapes["model.embed_tokens.weight"]
    return ge.GPT(vocab=vocab, ctx=shapes["model.embed_positions.weight"][0], d=d, n_layer=n_layer,
                  n_head=int(meta.get("n_head", 8)), mlp_mult=shapes["model.layers.0.mlp.up_proj.weight"][0] // d)


@pytest.fixture(scope="module")
def gpt(shared, tmp_path_factory):
    """The gpt-prose pairs (F32, and the gentle BF16 one) compressed (the paper's method: the fastest;
    the loss equality holds for any) and rebuilt."""
    fx = os.path.join(shared, "fixtures", "gpt-prose")
    out = tmp_path_factory.mktemp("gpt")
    pairs = {}
    for tag, base, ft in (("F32", "base.safetensors", "finetuned.safetensors"),
                          ("BF16", "base.bf16.safetensors", "finetuned_gentle.bf16.safetensors")):
        b, ddct, rebuilt = os.path.join(fx, base), out / f"{tag}.ddct", out / f"{tag}.safetensors"
        deltadct.compress(b, os.path.join(fx, ft), ddct, method="patch")
        deltadct.decompress(b, ddct, rebuilt)
        pairs[tag] = (b, str(ddct), str(rebuilt))
    with open(os.path.join(fx, "prose_eval.txt"), "rb") as f:
        text = f.read()[:1024]  # 8 windows of 128 bytes: enough to compare, quick on 2 cores
    return gpt_eval(shared), pairs, text


@pytest.mark.parametrize("tag", ["F32", "BF16"])
def test_load_into_gpt_same_loss(gpt, tag):
    ge, pairs, text = gpt
    base, ddct, rebuilt = pairs[tag]
    torch.set_num_threads(2)
    reference = ge.load_model(rebuilt)  # the rebuilt file, read by gpt_eval itself
    model = gpt_like(ge, deltadct.info(ddct))
    with deltadct.open(ddct, base) as m:
        r = m.load_into(model)
    assert r == ([], [])
    model.eval()
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    a, b = loss(ge, reference, text), loss(ge, model, text)
    assert a == b
    assert 0 < b < 8


def test_load_into_peak_memory(gpt):
    """load_into's peak resident set: at most the model's size + its largest tensor + 64 MiB above
    the resident set before the call (the .ddct opened within the call)."""
    ge, pairs, _ = gpt
    base, ddct, _ = pairs["F32"]
    probe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rss_probe.py")
    p = subprocess.run([sys.executable, probe, ddct, base, ge.__file__], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if not r["reset"]:
        pytest.skip("cannot reset the peak resident set (/proc/self/clear_refs)")
    limit = r["model_bytes"] + r["largest"] + 64 * MiB
    grew = r["peak"] - r["rss_before"]
    assert grew <= limit, (f"load_into grew the resident set by {grew / MiB:.1f} MiB, more than "
                           f"{limit / MiB:.1f} MiB: {r}")


def _torch_state_dict(path):
    """A .safetensors file's tensors as torch tensors of their own dtype (BF16 from its bits)."""
    st = SafeTensors(path)
    np_dt = {"F32": "<f4", "F16": "<f2", "BF16": "<i2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
    sd = {}
    for n in st.names():
        a = np.frombuffer(st.raw(n), dtype=np_dt[st.dtype(n)]).reshape(st.shape(n)).copy()
        t = torch.from_numpy(a)
        sd[n] = t.view(torch.bfloat16) if st.dtype(n) == "BF16" else t
    return sd


def test_compress_state_dict_from_torch(pairs, tmp_path):
    """A BF16 state dict of torch tensors compresses to the .ddct of the same file named
    model.safetensors, byte for byte, and rebuilds bit for bit as decompress does."""
    p = pairs["BF16"]
    model = tmp_path / "model.safetensors"  # the fine-tune's file without its __metadata__
    raw = open(p.ft, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    h = json.dumps(header, separators=(",", ":")).encode()
    model.write_bytes(len(h).to_bytes(8, "little") + h + raw[8 + n:])
    want, got = tmp_path / "want.ddct", tmp_path / "got.ddct"
    deltadct.compress(p.base, model, want)
    sd = _torch_state_dict(p.ft)
    assert any(t.dtype == torch.bfloat16 for t in sd.values())
    deltadct.compress_state_dict(p.base, sd, got)
    assert want.read_bytes() == got.read_bytes()
    # the base as torch tensors too, one of them non-contiguous (a transposed copy's transpose)
    base_sd = _torch_state_dict(p.base)
    name = next(n for n, t in base_sd.items() if t.dim() == 2 and t.shape[0] != t.shape[1])
    base_sd[name] = base_sd[name].t().contiguous().t()
    assert not base_sd[name].is_contiguous()
    got2 = tmp_path / "got2.ddct"
    deltadct.compress_state_dict(base_sd, sd, got2)
    assert want.read_bytes() == got2.read_bytes()
