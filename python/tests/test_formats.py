"""PyTorch checkpoints through the Python package: a torch.save fine-tune with tied weights
(an embedding and an LM head sharing one storage) compressed from .bin files, then opened with
deltadct.open: the tied name is found, state_dict() gives one tensor under both names, as
torch's own state_dict does, and load_into(strict=True) fills a module whose weights are tied."""
import collections
import os

import pytest

import deltadct

torch = pytest.importorskip("torch")


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(64, 32)
        self.proj = torch.nn.Linear(32, 32)
        self.head = torch.nn.Linear(32, 64, bias=False)
        self.head.weight = self.embed.weight


def test_tied_weights_from_bin(tmp_path):
    torch.manual_seed(0)
    base = Tied()
    ft = Tied()
    ft.load_state_dict(base.state_dict())
    with torch.no_grad():
        for p in ft.parameters():
            p.add_(0.01 * torch.randn_like(p))
    b, f, out = (os.path.join(tmp_path, n) for n in ("base.bin", "ft.bin", "ft.ddct"))
    torch.save(base.state_dict(), b)
    torch.save(ft.state_dict(), f)
    deltadct.compress(b, f, out)
    info = deltadct.info(out)
    assert info["layout"]["shards"][0]["format"] == "pytorch"
    assert "head.weight" not in [t["name"] for t in info["tensors"]]  # stored once
    with deltadct.open(out, b) as r:
        assert "head.weight" in r
        sd = r.state_dict()
        assert list(sd) == ["embed.weight", "proj.weight", "proj.bias", "head.weight"]
        assert sd["head.weight"] is sd["embed.weight"]
        m = Tied()
        r.load_into(m, strict=True)
    assert m.head.weight.data_ptr() == m.embed.weight.data_ptr()
    ref = torch.load(f, weights_only=True)
    for k, v in m.state_dict().items():
        err = float((v - ref[k]).norm() / ref[k].norm())
        assert err < 0.5, (k, err)
    # decompress writes the .bin back with the tie, and torch.load reads it
    rebuilt = os.path.join(tmp_path, "rebuilt.bin")
    deltadct.decompress(b, out, rebuilt)
    back = torch.load(rebuilt, weights_only=True)
    assert back["head.weight"].data_ptr() == back["embed.weight"].data_ptr()
    assert isinstance(back, collections.OrderedDict)
    for k in back:
        assert torch.equal(back[k], m.state_dict()[k]), k
