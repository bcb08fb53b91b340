"""The deltadct package without torch: loading, parameters, compress/decompress/verify/info/evaluate,
tensors one at a time, errors and progress. Files written by the API are checked against the CLI's
and against the rebuilt safetensors read by tests/stfile.py (not by the library)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import deltadct
from conftest import Pair, run
from stfile import SafeTensors

NP_DTYPE = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


# ---------------------------------------------------------------- loading
def test_version(cli):
    assert deltadct.__version__ and deltadct.__version__[0].isdigit()
    major, minor, patch = (int(x) for x in deltadct.__version__.split("."))
    assert deltadct.version_number == major * 10000 + minor * 100 + patch
    out = run(cli, "--version")
    assert deltadct.__version__ in out.stdout + out.stderr


def test_library_is_the_packaged_copy():
    if os.environ.get("DDCT_LIBRARY"):
        pytest.skip("DDCT_LIBRARY is set")
    pkg = os.path.dirname(os.path.abspath(deltadct.__file__))
    assert os.path.dirname(os.path.abspath(deltadct.library_path)) == pkg


def _python(code, env_extra, cwd=None):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def test_library_from_environment():
    real = os.path.realpath(deltadct.library_path)
    p = _python("import deltadct; print(deltadct.library_path)", {"DDCT_LIBRARY": real})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == real
    # a DDCT_LIBRARY that does not load: a warning, then the packaged copy
    p = _python("import deltadct; print(deltadct.library_path)", {"DDCT_LIBRARY": "/nonexistent/libdeltadct.so"})
    assert p.returncode == 0, p.stderr
    assert "/nonexistent/libdeltadct.so" in p.stderr
    assert p.stdout.strip() == deltadct.library_path


def test_no_library_is_a_clear_import_error(tmp_path):
    import ctypes.util
    if ctypes.util.find_library("deltadct"):
        pytest.skip("a libdeltadct is installed system-wide: find_library would find it")
    pkg = tmp_path / "deltadct"
    pkg.mkdir()
    src = os.path.dirname(os.path.abspath(deltadct.__file__))
    for f in ("__init__.py", "_lib.py"):
        shutil.copy(os.path.join(src, f), pkg / f)
    p = _python("import deltadct", {"DDCT_LIBRARY": "/nonexistent/libdeltadct.so", "PYTHONPATH": str(tmp_path)},
                cwd=str(tmp_path))
    assert p.returncode != 0
    assert "ImportError" in p.stderr
    for what in ("$DDCT_LIBRARY", "/nonexistent/libdeltadct.so", "the copy in the package", "find_library"):
        assert what in p.stderr, p.stderr


# ---------------------------------------------------------------- parameters
def test_default_parameters():
    d = deltadct.describe_params()
    assert d.startswith("method=rd transform=dct patch=16 bits=2:0.5,0:0.5 importance=l2 lowfreq-k=4 ")
    assert "rescale=2 bpp=1 zstd-level=1 include=(default) exclude=(default)" in d


def test_every_option_reaches_its_field():
    # one value off the default for every field of ddct_params: the struct's layout as the library's
    d = deltadct.describe_params(method="patch", transform="dwt", patch=8, bits="4:0.25,2:0.25,0:0.5",
                                 importance="lowfreq", lowfreq_k=3, qtable="jpeg", wavelet="cdf97", dwt_levels=2,
                                 dwt_keep="ll_only", rescale=False, bpp=0.75, zstd_level=5, include="^a$",
                                 exclude="^b$")
    assert d == ("method=patch transform=dwt patch=8 bits=4:0.25,2:0.25,0:0.5 importance=lowfreq lowfreq-k=3 "
                 "qtable=jpeg wavelet=cdf97 dwt-levels=2 dwt-keep=ll_only rescale=0 bpp=0.75 zstd-level=5 "
                 "include=^a$ exclude=^b$")
    assert "error=0.25" in deltadct.describe_params(error=0.25)
    assert "rd-measure=rel" in deltadct.describe_params(rd_measure="rel")
    assert "rescale=1" in deltadct.describe_params(rescale="on")
    assert "rescale=2" in deltadct.describe_params(rescale="auto")


@pytest.mark.parametrize("options, words", [
    ({"foo": 1}, "unknown option 'foo'"),
    ({"bpp": 0}, "--bpp"),
    ({"bpp": "nan"}, "--bpp"),
    ({"patch": 1}, "--patch"),
    ({"method": "jpeg"}, "--method"),
    ({"bits": "3:0.5"}, "sum to 1"),
    ({"rescale": "maybe"}, "--rescale"),
    ({"method": "patch", "bpp": 0.5}, "--bpp does nothing with --method patch"),
    ({"patch": 8}, "--patch does nothing with --method rd (the default)"),
    ({"error": 0.2, "bpp": 0.5}, "cannot be combined"),
    ({"method": "patch", "wavelet": "cdf97"}, "--wavelet does nothing without --transform dwt"),
])
def test_bad_option_raises_with_the_library_message(pairs, tmp_path, options, words):
    p = pairs["F32"]
    out = tmp_path / "x.ddct"
    with pytest.raises(deltadct.Error) as ei:
        deltadct.compress(p.base, p.ft, out, **options)
    assert words in str(ei.value)
    assert ei.value.code == deltadct.ErrorCode.PARAM
    assert ei.value.code_name == deltadct.error_name(deltadct.ErrorCode.PARAM)
    assert not out.exists()


def test_options_map_as_the_cli_s(pairs, tmp_path, cli):
    p = pairs["F32"]
    py, cl = tmp_path / "py.ddct", tmp_path / "cli.ddct"
    deltadct.compress(p.base, p.ft, py, method="patch", patch=8, bits="4:0.5,0:0.5", zstd_level=3)
    run(cli, "compress", p.base, p.ft, "-o", cl, "-q", "--method", "patch", "--patch", "8", "--bits", "4:0.5,0:0.5",
        "--zstd-level", "3")
    assert py.read_bytes() == cl.read_bytes()
    i = deltadct.info(py)
    assert "method=patch" in i["header"]["options"] and "patch=8" in i["header"]["options"]
    assert {t["codec"] for t in i["tensors"] if t["lossy"]} == {"patch"}


def test_selection_options_as_the_cli_s(pairs, tmp_path, cli):
    p = pairs["BF16"]
    py, cl = tmp_path / "py.ddct", tmp_path / "cli.ddct"
    deltadct.compress(p.base, p.ft, py, method="patch", exclude="norm", include="^lm_head", error=None)
    run(cli, "compress", p.base, p.ft, "-o", cl, "-q", "--method", "patch", "--exclude", "norm",
        "--include", "^lm_head")
    assert py.read_bytes() == cl.read_bytes()
    lossy = {t["name"]: t["lossy"] for t in deltadct.info(py)["tensors"]}
    assert lossy["model.embed_tokens.weight"] and lossy["lm_head.weight"]
    assert not lossy["model.norm.weight"]
    with pytest.raises(deltadct.Error) as ei:
        deltadct.compress(p.base, p.ft, tmp_path / "x.ddct", exclude="(")
    assert ei.value.code == deltadct.ErrorCode.PARAM and ei.value.message
    assert not (tmp_path / "x.ddct").exists()


def test_bpp_option(pairs, tmp_path):
    p = pairs["F32"]
    out = tmp_path / "half.ddct"
    r = deltadct.compress(p.base, p.ft, out, bpp=0.5, threads=2)
    assert r["out"] == str(out) and r["bytes"] == out.stat().st_size and isinstance(r["notes"], list)
    half = deltadct.info(out)
    full = deltadct.info(p.ddct)
    assert "bpp=0.5" in half["header"]["options"]
    assert 8 * half["lossy_bytes"] <= 0.5 * half["lossy_params"] * 1.001
    assert half["lossy_bytes"] < 0.6 * full["lossy_bytes"]


# ---------------------------------------------------------------- rebuilding
def test_decompress_as_the_cli(pair, tmp_path, cli):
    out = tmp_path / "cli.safetensors"
    run(cli, "decompress", pair.base, pair.ddct, "-o", out, "-q")
    with open(pair.rebuilt, "rb") as f:
        assert f.read() == out.read_bytes()


def test_open_equals_decompress(pair):
    st = SafeTensors(pair.rebuilt)
    with deltadct.open(pair.ddct, pair.base) as m:
        assert m.names() == st.names() == list(m)
        assert len(m) == len(st.names())
        for name in st.names():
            dt = st.dtype(name)
            raw = m.get(name, raw=True)
            assert list(raw.shape) == st.shape(name), name
            assert raw.dtype == NP_DTYPE[dt], name
            assert raw.tobytes() == st.raw(name), name
            a = m[name]
            if dt == "BF16":  # float32, the same values exactly
                assert a.dtype == np.float32
                bits = np.frombuffer(st.raw(name), dtype="<u2").astype(np.uint32) << 16
                assert a.tobytes() == bits.view(np.float32).reshape(st.shape(name)).tobytes(), name
            else:
                assert a.tobytes() == st.raw(name) and a.dtype == raw.dtype, name
            assert m.info(name)["dtype"] == dt


def test_open_from_bytes(pairs):
    p = pairs["BF16"]
    with open(p.ddct, "rb") as f:
        data = f.read()
    with deltadct.open(p.ddct, p.base) as a, deltadct.open(data, p.base) as b:
        for name in a:
            assert a.get(name, raw=True).tobytes() == b.get(name, raw=True).tobytes()


def test_reader_mapping(pairs):
    p = pairs["F32"]
    m = deltadct.open(p.ddct, p.base, threads=1)
    assert "position_ids" in m and "nope" not in m
    assert m.get("nope") is None and m.get("nope", 5) == 5
    with pytest.raises(KeyError):
        m["nope"]
    t = m.info("model.layers.0.self_attn.q_proj.weight")
    assert t["lossy"] and t["shape"] == [128, 128] and t["params"] == 128 * 128
    assert m.info()["tensors"] == deltadct.info(p.ddct)["tensors"]
    assert m["position_ids"].dtype == np.int64
    m.close()
    assert m.closed
    with pytest.raises(ValueError):
        m["position_ids"]
    m.close()  # twice is fine


def test_info_as_the_cli(pair, cli):
    mine = deltadct.info(pair.ddct)
    theirs = json.loads(run(cli, "info", pair.ddct, "--json").stdout)
    for k in ("file_bytes", "container_bytes", "lossy_params", "lossy_bytes", "lossy_payload_bytes",
              "lossy_side_bytes", "lossless_params", "lossless_bytes", "header", "base_only"):
        assert mine[k] == theirs[k], k
    layout = dict(mine["layout"])
    assert layout.pop("index_metadata") is None
    assert layout == theirs["layout"]
    assert len(mine["tensors"]) == len(theirs["tensors"])
    for a, b in zip(mine["tensors"], theirs["tensors"]):
        b = dict(b)
        b["record_bytes"] = b.pop("bytes")
        del b["bits_per_param"]
        assert a == b
    assert mine["file_bytes"] == os.path.getsize(pair.ddct)


def test_evaluate_as_the_cli(pairs, cli):
    p = pairs["F32"]
    mine = deltadct.evaluate(p.base, p.ft, p.ddct)
    theirs = json.loads(run(cli, "eval", p.base, p.ft, p.ddct, "--json").stdout)["tensors"]
    assert [r["name"] for r in mine] == [r["name"] for r in theirs]
    for a, b in zip(mine, theirs):
        assert a["lossy"] == b["lossy"] and a["params"] == b["params"]
        assert a["rel_error"] == pytest.approx(b["rel_error"], rel=1e-5, abs=1e-9), a["name"]


# ---------------------------------------------------------------- verify and errors
def test_verify(pair):
    assert deltadct.verify(pair.ddct) is True
    assert deltadct.verify(pair.ddct, pair.base) is True
    assert deltadct.verify(pair.ddct, quick=True) is True


def test_verify_refuses_a_flipped_byte(pairs, tmp_path):
    p = pairs["F32"]
    data = bytearray(open(p.ddct, "rb").read())
    bad = tmp_path / "bad.ddct"
    for where in (len(data) // 2, 40, len(data) - 10):
        d = bytearray(data)
        d[where] ^= 0x10
        bad.write_bytes(bytes(d))
        for kw in ({}, {"quick": True}):
            with pytest.raises(deltadct.Error) as ei:
                deltadct.verify(bad, **kw)
            assert ei.value.message and str(ei.value) == ei.value.message
            assert ei.value.code != deltadct.ErrorCode.OK and ei.value.code_name


def test_wrong_base(pairs, other_base, tmp_path):
    p = pairs["F32"]
    with pytest.raises(deltadct.Error) as ei:
        deltadct.verify(p.ddct, other_base)
    assert ei.value.code == deltadct.ErrorCode.BASE_MISMATCH
    with pytest.raises(deltadct.Error) as ei:
        deltadct.decompress(other_base, p.ddct, tmp_path / "x.safetensors")
    assert ei.value.code == deltadct.ErrorCode.BASE_MISMATCH
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(deltadct.Error) as ei:
        with deltadct.open(p.ddct, other_base) as m:
            for name in m:
                m[name]
    assert ei.value.code == deltadct.ErrorCode.BASE_MISMATCH


def test_errors_carry_the_message(pairs, tmp_path):
    p = pairs["F32"]
    with pytest.raises(deltadct.Error) as ei:  # an existing output without overwrite
        deltadct.decompress(p.base, p.ddct, p.rebuilt)
    assert ei.value.code == deltadct.ErrorCode.EXISTS
    assert os.path.basename(p.rebuilt) in str(ei.value)
    deltadct.decompress(p.base, p.ddct, p.rebuilt, overwrite=True)
    missing = tmp_path / "missing.ddct"
    for call in (lambda: deltadct.info(missing), lambda: deltadct.verify(missing),
                 lambda: deltadct.open(missing, p.base), lambda: deltadct.decompress(p.base, missing, tmp_path / "o")):
        with pytest.raises(deltadct.Error) as ei:
            call()
        assert "missing.ddct" in str(ei.value)
        assert ei.value.code == deltadct.ErrorCode.IO
        assert ei.value.code_name == deltadct.error_name(deltadct.ErrorCode.IO)
        assert "deltadct.Error" in repr(ei.value) and ei.value.code_name in repr(ei.value)
    with pytest.raises(deltadct.Error) as ei:  # not a .ddct
        deltadct.info(p.base)
    assert ei.value.code in (deltadct.ErrorCode.FORMAT, deltadct.ErrorCode.VERSION)
    assert isinstance(ei.value, Exception)


# ---------------------------------------------------------------- progress
def test_progress_is_called(pairs, tmp_path):
    p = pairs["F32"]
    n = len(deltadct.info(p.ddct)["tensors"])
    for what in ("compress", "decompress", "verify"):
        calls = []

        def cb(*a):
            calls.append(a)
            return None

        if what == "compress":
            deltadct.compress(p.base, p.ft, tmp_path / "c.ddct", method="patch", progress=cb)
        elif what == "decompress":
            deltadct.decompress(p.base, p.ddct, tmp_path / "d.safetensors", progress=cb)
        else:
            deltadct.verify(p.ddct, p.base, progress=cb)
        assert len(calls) >= n, what
        assert calls[-1][0] == calls[-1][1] >= n, what
        assert [c[0] for c in calls] == sorted(c[0] for c in calls), what
        assert all(isinstance(c[4], str) for c in calls), what
        assert all(c[2] <= c[3] or c[3] == 0 for c in calls), what
        assert {c[4] for c in calls} >= set(deltadct.open(p.ddct, p.base).names()), what


def test_cancel(pairs, tmp_path):
    p = pairs["F32"]
    seen = []

    def stop_at_3(done, total, bdone, btotal, name):
        seen.append(done)
        return done >= 3

    for what in ("compress", "decompress", "verify"):
        seen.clear()
        out = tmp_path / f"{what}.out"
        with pytest.raises(deltadct.Cancelled) as ei:
            if what == "compress":
                deltadct.compress(p.base, p.ft, out, method="patch", progress=stop_at_3)
            elif what == "decompress":
                deltadct.decompress(p.base, p.ddct, out, progress=stop_at_3)
            else:
                deltadct.verify(p.ddct, progress=stop_at_3)
        assert isinstance(ei.value, deltadct.Error)
        assert "cancel" in str(ei.value)
        assert max(seen) == 3, what
        assert not out.exists(), what
        assert not [f for f in os.listdir(tmp_path) if f.startswith(what)], what


def test_exception_in_progress_propagates(pairs, tmp_path):
    p = pairs["F32"]

    class Boom(Exception):
        pass

    def boom(*a):
        raise Boom("from the callback")

    out = tmp_path / "o.safetensors"
    with pytest.raises(Boom):
        deltadct.decompress(p.base, p.ddct, out, progress=boom)
    assert not out.exists()


def _numpy_state_dict(path):
    """The tensors of a .safetensors file as numpy arrays (BF16 as their uint16 bits, marked)."""
    import numpy as np
    st = SafeTensors(path)
    np_dt = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
             "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
    sd = {}
    for n in st.names():
        dt = st.dtype(n)
        if dt == "BF16":
            continue  # numpy has no bfloat16: the torch test covers it
        sd[n] = np.frombuffer(st.raw(n), dtype=np_dt[dt]).reshape(st.shape(n))
    return sd


@pytest.mark.parametrize("base_in_memory", [True, False])
def test_compress_state_dict_equals_the_files(tmp_path, genpair, base_in_memory):
    """compress_state_dict from numpy arrays writes the .ddct compress writes for the same tensors
    in a file called model.safetensors, byte for byte; the base in memory or from its path."""
    p = Pair(str(tmp_path), "F16")
    ft_sd = _numpy_state_dict(p.ft)
    base_sd = _numpy_state_dict(p.base)
    # the same tensors as files: the fine-tune without its BF16 tensors, named model.safetensors
    import numpy as np
    d = tmp_path / "files"
    d.mkdir()
    _write_safetensors(d / "model.safetensors", ft_sd)
    _write_safetensors(d / "base.safetensors", base_sd)
    want, got = tmp_path / "files.ddct", tmp_path / "mem.ddct"
    deltadct.compress(d / "base.safetensors", d / "model.safetensors", want, method="patch")
    base_arg = base_sd if base_in_memory else d / "base.safetensors"
    r = deltadct.compress_state_dict(base_arg, ft_sd, got, method="patch")
    assert r["bytes"] == os.path.getsize(want)
    assert open(want, "rb").read() == open(got, "rb").read()
    with deltadct.open(got, d / "base.safetensors") as m:
        assert set(m.names()) == set(ft_sd)
        for n, a in ft_sd.items():
            if a.dtype == np.int64 or a.dtype == np.uint8:
                assert np.array_equal(m[n], a)


def test_compress_state_dict_refuses(tmp_path, pairs):
    import numpy as np
    out = tmp_path / "x.ddct"
    with pytest.raises(deltadct.Error) as ei:
        deltadct.compress_state_dict(pairs["F32"].base, {"a": np.zeros(3, dtype=np.complex64)}, out)
    assert "complex" in str(ei.value) and ei.value.code == deltadct.ErrorCode.PARAM
    with pytest.raises(deltadct.Error):
        deltadct.compress_state_dict(pairs["F32"].base, {"": np.zeros(3, dtype=np.float32)}, out)
    with pytest.raises(deltadct.Error):
        deltadct.compress_state_dict(pairs["F32"].base, {"a": np.zeros(3, dtype=np.float32)}, out, bpp=-1)
    assert not out.exists()


def _write_safetensors(path, sd):
    """A .safetensors file of numpy arrays (standard layout, file order = dict order)."""
    import json
    import struct
    np_names = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32",
                "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
    header, blobs, off = {}, [], 0
    for n, a in sd.items():
        b = a.tobytes()
        header[n] = {"dtype": np_names[a.dtype.name], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
