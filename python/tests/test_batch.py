"""deltadct.compress_many: a `deltadct batch` manifest (two bases, three fine-tunes each) run in
this process and mapped over a Dask LocalCluster of worker processes; every output byte-identical
to what deltadct.compress writes alone, reruns skipped, each base fingerprinted once per process,
manifest errors naming the line."""
import json
import os
import struct
import subprocess
import sys

import pytest

import deltadct

from conftest import REPO, run

VARIANT = os.path.join(REPO, "tests", "tools", "ft_variant.py")
# (base, fine-tune, output, options): options as manifest keys
LINES = [
    ("a", "finetuned", "a0", {"method": "patch"}),
    ("a", "ft1", "a1", {"method": "bitdelta"}),
    ("a", "ft2", "a2", {"bpp": 0.75, "rescale": False}),
    ("b", "finetuned", "b0", {"method": "patch", "patch": 8, "zstd-level": 3}),
    ("b", "ft1", "b1", {"method": "svd", "bpp": 2}),
    ("b", "ft2", "b2", {"method": "patch", "bits": "4:0.5,0:0.5"}),
]


def tensor_count(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return len([k for k in json.loads(f.read(n)) if k != "__metadata__"])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, genpair):
    """(manifest path, its directory, {output name: the .ddct deltadct.compress writes alone})."""
    root = str(tmp_path_factory.mktemp("batch"))
    for s, seed in (("a", 21), ("b", 22)):
        run(genpair, os.path.join(root, s), "--seed", seed)
        for k in (1, 2):
            d = os.path.join(root, s)
            run(sys.executable, VARIANT, f"{d}/base.safetensors", f"{d}/finetuned.safetensors", f"{d}/ft{k}.safetensors", k)
    alone = {}
    os.makedirs(os.path.join(root, "alone"))
    with open(os.path.join(root, "manifest.jsonl"), "w") as f:
        for s, ft, out, opts in LINES:
            f.write(json.dumps(dict(base=f"{s}/base.safetensors", finetune=f"{s}/{ft}.safetensors",
                                    output=f"out/{out}.ddct", **opts)) + "\n")
            alone[out] = os.path.join(root, "alone", out + ".ddct")
            kw = {k.replace("-", "_"): v for k, v in opts.items()}
            deltadct.compress(f"{root}/{s}/base.safetensors", f"{root}/{s}/{ft}.safetensors", alone[out], threads=1, **kw)
    return os.path.join(root, "manifest.jsonl"), root, alone


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def check_results(res, root, alone, status):
    assert [r["line"] for r in res] == list(range(1, len(LINES) + 1))
    for r, (s, _ft, out, _o) in zip(res, LINES):
        assert r["status"] == status and r["error"] is None, r
        assert r["output"] == os.path.join(root, "out", out + ".ddct")
        assert same_bytes(r["output"], alone[out]), out
        assert r["bytes"] == os.path.getsize(r["output"]) and 0 < r["bpp"] < 16
        deltadct.verify(r["output"], os.path.join(root, s, "base.safetensors"), quick=True)


def test_compress_many_here(manifest, tmp_path):
    path, root, alone = manifest
    out = os.path.join(root, "out")
    if os.path.isdir(out):
        for f in os.listdir(out):
            os.unlink(os.path.join(out, f))
    os.makedirs(out, exist_ok=True)
    deltadct.close_bases()
    log = str(tmp_path / "log.jsonl")
    check_results(deltadct.compress_many(path, threads=1, log=log), root, alone, "ok")
    assert [json.loads(l)["status"] for l in open(log)] == ["ok"] * len(LINES)
    # each base once in this process: at most its tensor count of fingerprints
    stats = deltadct.base_stats()
    assert set(stats) == {os.path.join(root, s, "base.safetensors") for s in "ab"}, stats
    for b, n in stats.items():
        assert 0 < n <= tensor_count(b), (b, n)
    # again: everything skipped, nothing rewritten
    mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)}
    check_results(deltadct.compress_many(path, threads=1), root, alone, "skipped")
    assert mtimes == {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)}
    assert deltadct.base_stats() == stats
    # a shard, as batch --shard 1/4 takes it (lines 2-3 of 6)
    assert [r["line"] for r in deltadct.compress_many(path, shard=(1, 4))] == [2, 3]
    deltadct.close_bases()
    assert deltadct.base_stats() == {}


def test_compress_many_line_failures(manifest, tmp_path):
    path, root, alone = manifest
    lines = [{"base": f"{root}/a/base.safetensors", "finetune": f"{root}/a/missing.safetensors",
              "output": str(tmp_path / "x.ddct"), "method": "patch"},
             {"base": f"{root}/a/base.safetensors", "finetune": f"{root}/a/ft1.safetensors",
              "output": str(tmp_path / "y.ddct"), "method": "patch"},
             {"base": f"{root}/a/base.safetensors", "finetune": f"{root}/a/ft1.safetensors",
              "output": alone["a1"], "method": "patch"}]  # made with bitdelta
    res = deltadct.compress_many(lines, threads=1)
    assert res[0]["status"] == "failed" and "missing.safetensors" in res[0]["error"] and res[0]["bytes"] is None
    assert res[1]["status"] == "ok"
    assert res[2]["status"] == "failed" and "other options" in res[2]["error"]


@pytest.mark.parametrize("bad, message", [
    ('{"base": "a", ', ":2: not JSON"),
    ('["a"]', ":2: not a JSON object"),
    ('{"base": "a", "output": "o"}', ':2: missing "finetune"'),
    ('{"base": "a", "finetune": "f", "output": "o", "bppp": 1}', ':2: unknown key "bppp"'),
    ('{"base": "a", "finetune": "f", "output": "o", "patch": 8}', ":2: --patch does nothing with --method rd"),
    ('{"base": "a", "finetune": "f", "output": "o", "bpp": 1, "error": 0.1}', ":2: --error cannot be combined"),
    ('{"base": "a", "finetune": "f", "output": "o", "base": "b"}', ":2: not JSON"),
    ('{"base": "a", "finetune": "f", "output": "out/z.ddct"}', ":2: output"),
    ('{"base": "a\\u0000b", "finetune": "f", "output": "o"}', ':2: "base": holds a NUL character'),
])
def test_manifest_errors_name_the_line(tmp_path, bad, message):
    m = tmp_path / "m.jsonl"
    m.write_text('{"base": "a", "finetune": "f", "output": "out/z.ddct"}\n' + bad + "\n")
    with pytest.raises(deltadct.Error) as e:
        deltadct.compress_many(str(m))
    assert message in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()


def test_compress_many_on_dask(manifest):
    distributed = pytest.importorskip(
        "distributed", reason="no dask.distributed (Debian: python3-distributed): compress_many on Dask not tested")
    path, root, alone = manifest
    out = os.path.join(root, "out")
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2 and os.getpid() not in pids.values()
        check_results(deltadct.compress_many(path, client=client, threads=1), root, alone, "ok")
        stats = client.run(deltadct.base_stats)  # per worker: each base fingerprinted once there
        assert any(stats.values()), stats
        for worker, st in stats.items():
            for b, n in st.items():
                assert 0 < n <= tensor_count(b), (worker, b, n)
        check_results(deltadct.compress_many(path, client=client, threads=1), root, alone, "skipped")
        again = client.run(deltadct.base_stats)  # a base a worker had open: not fingerprinted again
        for worker, st in stats.items():
            for b, n in st.items():
                assert again[worker][b] == n, (worker, b, n, again[worker][b])
        for worker, st in again.items():
            for b, n in st.items():
                assert 0 < n <= tensor_count(b), (worker, b, n)
