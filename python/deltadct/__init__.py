"""deltadct: fine-tuned models stored as compressed deltas against their base (Python binding).

ctypes over libdeltadct (the shared library is carried inside the package; $DDCT_LIBRARY overrides
it). Mirrors include/deltadct.h:

    deltadct.compress(base, finetuned, out, method="rd", bpp=1.0, ...)   # ddct_compressFiles
    deltadct.compress_state_dict(base, state_dict, out, ...)            # ddct_CCtx_compressTensors
    deltadct.decompress(base, ddct, out)                                # ddct_decompressFile
    deltadct.verify(ddct, base=None, quick=False)                       # ddct_verifyFile[Checksums]
    deltadct.info(ddct)                                                 # ddct_openInfo, as `deltadct info --json`
    deltadct.evaluate(base, finetuned, ddct)                            # ddct_evaluate
    deltadct.compress_many("manifest.jsonl", client=dask_client)       # `deltadct batch`, on Dask
    with deltadct.open(ddct, base) as m:                                # ddct_DCtx_open + decodeTensor
        w = m["model.layers.0.mlp.up_proj.weight"]                      # numpy, decoded on access
        m.load_into(torch_module)                                       # one tensor at a time

Every failure raises deltadct.Error (the library's message, its code and the code's name).
"""
import collections
import collections.abc
import ctypes
import json
import os
import threading

import numpy as np

from . import _lib
from ._lib import lib as _L

__all__ = ["Error", "Cancelled", "ErrorCode", "compress", "compress_state_dict", "decompress", "verify", "info",
           "evaluate", "open", "Reader", "IncompatibleKeys", "describe_params", "compress_many", "library_path",
           "__version__"]

__version__ = _L.ddct_versionString().decode()
version_number = _L.ddct_versionNumber()
library_path = _lib.library_path


# ---------------------------------------------------------------- errors
class ErrorCode:
    """The ddct_ErrorCode values (deltadct.h)."""
    OK = 0
    IO = 1
    NOMEM = 2
    FORMAT = 3
    CHECKSUM = 4
    VERSION = 5
    BASE_MISMATCH = 6
    PARAM = 7
    EXISTS = 8
    UNSUPPORTED = 9
    INTERNAL = 10
    CANCELLED = 11


def error_name(code):
    """ddct_getErrorName(code)."""
    s = _L.ddct_getErrorName(int(code))
    return s.decode("utf-8", "replace") if s else f"error {code}"


class Error(Exception):
    """A libdeltadct failure. str(e) is the library's message; e.code the ddct_ErrorCode (int),
    e.code_name its name (ddct_getErrorName), e.message the message alone."""

    def __init__(self, message, code=ErrorCode.INTERNAL):
        self.message = message
        self.code = int(code)
        self.code_name = error_name(code)
        super().__init__(message)

    def __repr__(self):
        return f"deltadct.Error({self.message!r}, code={self.code} ({self.code_name}))"


class Cancelled(Error):
    """The progress callback asked to stop (nothing was written)."""


def _s(b):
    """Library text -> str (names that are not UTF-8 keep their bytes as surrogate escapes)."""
    return None if b is None else b.decode("utf-8", "surrogateescape")


def _path(p):
    return None if p is None else os.fsencode(p)


def _name_bytes(name):
    return name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)


# ---------------------------------------------------------------- progress
class _Progress:
    """Wraps a Python progress callable as a ddct_progress_fn. Keep the object alive while the call
    runs. An exception in the callable cancels the call and is raised again after it. Installed
    even without a callable: Python code then runs after each tensor, so that Ctrl-C (a
    KeyboardInterrupt raised there) cancels the call cleanly, as any exception does."""

    def __init__(self, fn):
        self.fn = fn
        self.cancelled = False
        self.exc = None
        self.cfn = _lib.PROGRESS_FN(self._call)

    def _call(self, _opaque, done, total, bdone, btotal, name):
        if self.exc is not None or self.cancelled:
            return 1
        try:
            if self.fn is None:
                return 0
            stop = self.fn(int(done), int(total), int(bdone), int(btotal), _s(name))
        except BaseException as e:  # noqa: BLE001 - re-raised by check()
            self.exc = e
            return 1
        if stop:
            self.cancelled = True
            return 1
        return 0

    def check(self, rc, message):
        if self.exc is not None:
            raise self.exc
        if rc and self.cancelled:
            raise Cancelled(message or "cancelled", rc)


def _notes(count_fn, note_fn, ctx):
    return [_s(note_fn(ctx, i)) for i in range(count_fn(ctx))]


# ---------------------------------------------------------------- params
_DIRECT = {"include", "exclude"}  # regexes: fields of ddct_params that ddct_params_set does not take


def _make_params(options, threads, check=True):
    buf = _lib.ParamsBuf()
    p = buf.p
    _L.ddct_params_default(ctypes.byref(p))
    keep = []  # the regex strings the struct points at
    err = ctypes.create_string_buffer(512)
    items = list(options.items())
    if threads is not None:
        items.append(("threads", threads))
    for key, value in items:
        if value is None:  # not given
            continue
        name = key.replace("_", "-")
        if name in _DIRECT:
            if value is not None:
                b = str(value).encode()
                keep.append(b)
                setattr(p, name + "_regex", b)
            continue
        if name == "rescale" and isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, bool):
            raise Error(f"option '{key}': {value!r} is not a value for --{name}", ErrorCode.PARAM)
        rc = _L.ddct_params_set(ctypes.byref(p), name.encode(), str(value).encode(), err, len(err))
        if rc:
            raise Error(_s(err.value) or f"invalid option '{key}'", rc)
    if check:  # an option the method does not read is an error, as in the CLI
        given = [k.replace("_", "-").encode() for k, v in options.items() if v is not None]
        arr = (ctypes.c_char_p * max(len(given), 1))(*given)
        rc = _L.ddct_params_checkOptions(ctypes.byref(p), arr, len(given), 1 if options.get("method") else 0, err,
                                         len(err))
        if rc:
            raise Error(_s(err.value), rc)
    return buf, keep


def describe_params(**options):
    """The canonical one-line description (ddct_params_describe, as the file header stores it) of the
    parameters these compress options give."""
    buf, _keep = _make_params(options, None, check=False)
    out = ctypes.create_string_buffer(1024)
    _L.ddct_params_describe(ctypes.byref(buf.p), out, len(out))
    return _s(out.value)


# ---------------------------------------------------------------- compress / decompress / verify
def compress(base, finetuned, out, *, overwrite=False, threads=0, progress=None, **options):
    """Compress FINETUNED against BASE into OUT (ddct_compressFiles). BASE and FINETUNED: a
    .safetensors file, a sharded checkpoint's index or a model directory.

    options are the CLI's compress options as keywords (underscores for hyphens): method="rd",
    bpp=1.0, error=0.1, rd_measure="rel", patch=16, bits="2:0.5,0:0.5", transform="dct",
    wavelet=, dwt_levels=, dwt_keep=, importance=, lowfreq_k=, qtable=, rescale=True/False/"auto",
    zstd_level=, include=REGEX, exclude=REGEX (None: not given). Each goes through ddct_params_set
    (include and exclude, which it does not take, set the struct's regexes): an unknown name or
    a bad value raises Error with the library's message. progress(tensors_done, tensors_total,
    bytes_done, bytes_total, name) is called after each tensor; a true return cancels (Cancelled).

    Returns {"out": path, "bytes": its size, "notes": [library notes]}."""
    buf, keep = _make_params(options, threads)  # keep: the regex strings buf.p points at
    return _run_cctx(out, progress, lambda cc: _L.ddct_compressFiles(
        cc, _path(base), _path(finetuned), _path(out), ctypes.byref(buf.p), 1 if overwrite else 0))


def _run_cctx(out, progress, call):
    """call(cctx) -> error code on a new CCtx with progress: the result dict, or Error raised."""
    cc = _L.ddct_createCCtx()
    if not cc:
        raise Error("cannot create a compression context", ErrorCode.NOMEM)
    pr = _Progress(progress)
    try:
        _L.ddct_CCtx_setProgress(cc, pr.cfn, None)
        rc = call(cc)
        msg = _s(_L.ddct_CCtx_getErrorMessage(cc)) if rc else None
        pr.check(rc, msg)
        if rc:
            raise Error(msg or error_name(rc), rc)
        notes = _notes(_L.ddct_CCtx_noteCount, _L.ddct_CCtx_note, cc)
    finally:
        _L.ddct_freeCCtx(cc)
    return {"out": os.fspath(out), "bytes": os.path.getsize(out), "notes": notes}


# numpy dtype names -> safetensors dtype names (bfloat16: ml_dtypes' or any numpy type of that name)
_FROM_NP = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16",
              "uint8": "U8", "bool": "BOOL"}
_FROM_TORCH = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def _as_bytes_array(name, value):
    """(numpy array whose memory holds the tensor's bytes, little-endian and C-contiguous; its
    safetensors dtype name; its shape). A torch tensor is read in place when it is a contiguous CPU
    tensor (BF16 through an int16 view, so no value is converted)."""
    import numpy as np
    mod = type(value).__module__
    if mod.startswith("torch"):
        t = value.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        dt = str(t.dtype).replace("torch.", "")
        if dt not in _FROM_TORCH:
            raise Error(f"tensor '{name}': torch dtype {t.dtype} has no safetensors equivalent", ErrorCode.PARAM)
        shape = tuple(t.shape)
        import torch
        arr = (t.view(torch.int16) if dt == "bfloat16" else t).reshape(-1).numpy()
        return arr, _FROM_TORCH[dt], shape
    a = np.asarray(value)
    dt = a.dtype.name
    if dt not in _FROM_NP:
        raise Error(f"tensor '{name}': numpy dtype {a.dtype} has no safetensors equivalent", ErrorCode.PARAM)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    return a, _FROM_NP[dt], a.shape


def _tensor_list(sd):
    """A ctypes array of ddct_tensor over a state dict, and what must stay alive while it is used."""
    items = list(sd.items())
    arr = (_lib.Tensor * max(len(items), 1))()
    keep = []
    for k, (name, value) in enumerate(items):
        if not isinstance(name, str):
            raise Error(f"tensor names must be strings, got {name!r}", ErrorCode.PARAM)
        data, dtype, shape = _as_bytes_array(name, value)
        shp = (ctypes.c_uint64 * max(len(shape), 1))(*shape)
        nb, db = name.encode("utf-8", "surrogatepass"), dtype.encode()
        keep += [data, shp, nb, db]
        arr[k].name, arr[k].dtype, arr[k].ndim = nb, db, len(shape)
        arr[k].shape = ctypes.cast(shp, ctypes.POINTER(ctypes.c_uint64))
        arr[k].data = data.ctypes.data if data.size else None
    return arr, len(items), keep


def compress_state_dict(base_sd, finetuned_sd, out, *, overwrite=False, threads=0, progress=None, **options):
    """Compress a fine-tune held in memory against its base into OUT, without writing either out
    (ddct_CCtx_compressTensors): finetuned_sd maps names to numpy arrays or torch tensors (any
    dtype safetensors has; BF16 torch tensors bit for bit); base_sd is such a mapping too, or the
    path of the base (a .safetensors file, sharded checkpoint or directory). The tensors are read
    in place (a contiguous CPU torch tensor or numpy array is not copied). options: as compress.
    The .ddct is the one compress would write for the same tensors in a file model.safetensors.
    Returns {"out": path, "bytes": its size, "notes": [...]}."""
    buf, keep = _make_params(options, threads)
    ft_arr, nft, ft_keep = _tensor_list(finetuned_sd)
    if isinstance(base_sd, (str, bytes, os.PathLike)):
        base_path, b_arr, nb, b_keep = _path(base_sd), None, 0, None
    else:
        base_path = None
        b_arr, nb, b_keep = _tensor_list(base_sd)
    # keep, ft_keep, b_keep: what the structs point at, alive until the call returns
    return _run_cctx(out, progress, lambda cc: _L.ddct_CCtx_setParams(cc, ctypes.byref(buf.p)) or
                     _L.ddct_CCtx_compressTensors(cc, base_path, b_arr, nb, ft_arr, nft, _path(out),
                                                  1 if overwrite else 0))


class _DCtx:
    def __init__(self, threads=0, rescale=None, progress=None):
        self.d = _L.ddct_createDCtx()
        if not self.d:
            raise Error("cannot create a decompression context", ErrorCode.NOMEM)
        _L.ddct_DCtx_setThreads(self.d, int(threads))
        if rescale is not None:
            _L.ddct_DCtx_setRescale(self.d, 1 if rescale else 0)
        self.progress = _Progress(progress)
        _L.ddct_DCtx_setProgress(self.d, self.progress.cfn, None)

    def message(self):
        return _s(_L.ddct_DCtx_getErrorMessage(self.d))

    def check(self, rc):
        msg = self.message() if rc else None
        self.progress.check(rc, msg)
        if rc:
            raise Error(msg or error_name(rc), rc)

    def notes(self):
        return _notes(_L.ddct_DCtx_noteCount, _L.ddct_DCtx_note, self.d)

    def free(self):
        if self.d:
            _L.ddct_freeDCtx(self.d)
            self.d = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.free()


def decompress(base, ddct, out, *, overwrite=False, threads=0, progress=None, rescale=None):
    """Rebuild the fine-tune from BASE and DDCT into OUT (ddct_decompressFile): one .safetensors file,
    or a model directory when OUT ends with '/', is a directory or the fine-tune was one.
    rescale: None as stored, True/False to force it. Returns {"out": path, "notes": [...]}."""
    with _DCtx(threads, rescale, progress) as d:
        d.check(_L.ddct_decompressFile(d.d, _path(base), _path(ddct), _path(out), 1 if overwrite else 0))
        return {"out": os.fspath(out), "notes": d.notes()}


def verify(ddct, base=None, *, quick=False, threads=0, progress=None):
    """Test DDCT as `deltadct verify` does (ddct_verifyFile, or ddct_verifyFileChecksums with
    quick=True); with BASE also the base fingerprints. Returns True or raises Error."""
    with _DCtx(threads, None, progress) as d:
        f = _L.ddct_verifyFileChecksums if quick else _L.ddct_verifyFile
        d.check(f(d.d, _path(ddct), _path(base)))
    return True


def evaluate(base, finetuned, ddct, *, threads=0):
    """Rebuild every tensor in memory and compare it with the fine-tune (ddct_evaluate). Returns one
    dict per tensor: name, lossy, params, err2, ref2, dot, hat2, max_abs_err, rel_error
    (sqrt(err2/ref2)) and cosine (as `deltadct eval` computes them; NaN when not measurable)."""
    rows = []

    def cb(_opaque, ev):
        e = ev.contents
        rows.append(_eval_row(e))

    fn = _lib.EVAL_FN(cb)
    with _DCtx(threads) as d:
        d.check(_L.ddct_evaluate(d.d, _path(base), _path(finetuned), _path(ddct), fn, None))
    return rows


def _eval_row(e):
    import math
    err2, ref2, dot, hat2 = e.err2, e.ref2, e.dot, e.hat2
    if math.isnan(err2) or math.isnan(ref2):
        rel = math.nan
    else:
        rel = math.sqrt(err2 / ref2) if ref2 > 0 else (math.inf if err2 > 0 else 0.0)
    if math.isnan(dot) or math.isnan(ref2) or math.isnan(hat2):
        cos = math.nan
    else:
        cos = dot / math.sqrt(ref2 * hat2) if ref2 > 0 and hat2 > 0 else float(ref2 == hat2)
    return {"name": _s(e.name), "lossy": bool(e.lossy), "params": int(e.nparams), "err2": err2, "ref2": ref2,
            "dot": dot, "hat2": hat2, "max_abs_err": e.max_abs_err, "rel_error": rel, "cosine": cos}


# ---------------------------------------------------------------- info
def _tensor_dict(t):
    return {
        "name": _s(t.name),
        "dtype": _s(t.dtype),
        "shape": [int(t.shape[k]) for k in range(t.ndim)],
        "params": int(t.nparams),
        "codec": _s(t.codec),
        "lossy": bool(t.lossy),
        "record_bytes": int(t.record_bytes),
        "payload_bytes": int(t.payload_bytes),
        "side_bytes": int(t.side_bytes),
    }


def _json_or_text(b):
    if b is None:
        return None
    s = _s(b)
    try:
        return json.loads(s)
    except ValueError:
        return s


def _info_dict(h):
    """The dict of an open ddct_Info (the same fields as `deltadct info --json`, record_bytes for bytes)."""
    tensors = [_tensor_dict(_L.ddct_Info_tensor(h, i).contents) for i in range(_L.ddct_Info_count(h))]
    L = _L.ddct_Info_layout(h).contents
    layout = {
        "directory": bool(L.directory),
        "index": _s(L.index_name),
        "index_metadata": _json_or_text(L.index_metadata),
        "shards": [{"name": _s(L.shard_names[k]), "tensors": int(L.shard_tensors[k]), "format": _s(L.shard_formats[k])}
                   for k in range(L.nshards)],
        "files": [{"name": _s(L.file_names[k]), "bytes": int(L.file_bytes[k])} for k in range(L.nfiles)],
        "files_record_bytes": int(L.files_record_bytes),
    }
    lossy = [t for t in tensors if t["lossy"]]
    lossless = [t for t in tensors if not t["lossy"]]
    return {
        "file_bytes": int(_L.ddct_Info_fileBytes(h)),
        "container_bytes": int(_L.ddct_Info_containerBytes(h)),
        "lossy_params": sum(t["params"] for t in lossy),
        "lossy_bytes": sum(t["record_bytes"] for t in lossy),
        "lossy_payload_bytes": sum(t["payload_bytes"] for t in lossy),
        "lossy_side_bytes": sum(t["record_bytes"] - t["payload_bytes"] for t in lossy),
        "lossless_params": sum(t["params"] for t in lossless),
        "lossless_bytes": sum(t["record_bytes"] for t in lossless),
        "header": _json_or_text(_L.ddct_Info_header(h)),
        "base_only": [_s(_L.ddct_Info_removed(h, i)) for i in range(_L.ddct_Info_removedCount(h))],
        "layout": layout,
        "tensors": tensors,
    }


def info(ddct):
    """What DDCT holds (ddct_openInfo): a dict with file_bytes, container_bytes, the lossy/lossless
    totals, header (the header's JSON, parsed), base_only (tensors dropped), layout (directory,
    index, index_metadata, shards, files, files_record_bytes) and tensors (name, dtype, shape,
    params, codec, lossy, record_bytes, payload_bytes, side_bytes), in file order."""
    h = ctypes.c_void_p()
    err = ctypes.create_string_buffer(1024)
    rc = _L.ddct_openInfo(ctypes.byref(h), _path(ddct), err, len(err))
    if rc:
        raise Error(_s(err.value) or error_name(rc), rc)
    try:
        return _info_dict(h)
    finally:
        _L.ddct_freeInfo(h)


# ---------------------------------------------------------------- tensors one at a time
_NP_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
    "F8_E4M3": "u1", "F8_E5M2": "u1",  # numpy has no 8-bit floats: their raw bytes
}

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _torch_dtype(torch, dtype):
    """The torch dtype of a safetensors dtype (None when this torch has none)."""
    names = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
             "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16",
             "U32": "uint32", "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
    return getattr(torch, names.get(dtype, ""), None)


class Reader(collections.abc.Mapping):
    """A .ddct opened against its base (deltadct.open): a read-only mapping name -> numpy array,
    each tensor rebuilt when it is asked for (nothing cached: ask once and keep the array).

    BF16 tensors come as float32 (the same values, exactly); .get(name, raw=True) gives their raw
    bits as uint16. Other dtypes come in their own numpy dtype (8-bit floats as uint8 bytes),
    shapes as stored. Not for concurrent use from several threads (calls are serialised)."""

    def __init__(self, ddct, base, *, threads=0, rescale=None):
        self._lock = threading.Lock()
        self._d = _DCtx(threads, rescale)
        self._buffer = None
        try:
            if isinstance(ddct, (bytes, bytearray, memoryview)):
                mv = memoryview(ddct).cast("B")
                self._buffer = (ctypes.c_char * len(mv)).from_buffer_copy(mv) if mv.readonly else \
                    (ctypes.c_char * len(mv)).from_buffer(mv)
                rc = _L.ddct_DCtx_openBuffer(self._d.d, ctypes.addressof(self._buffer), len(mv), _path(base))
            else:
                rc = _L.ddct_DCtx_open(self._d.d, _path(ddct), _path(base))
            self._d.check(rc)
            self._info = _L.ddct_DCtx_info(self._d.d)
            self._tensors = [_tensor_dict(_L.ddct_Info_tensor(self._info, i).contents)
                             for i in range(_L.ddct_Info_count(self._info))]
        except BaseException:
            self._d.free()
            self._buffer = None
            raise
        self._index = {t["name"]: i for i, t in enumerate(self._tensors)}
        # tied names (a PyTorch fine-tune's shared storages): found, and in state_dict(), as the
        # tensor they share
        self._aliases = {}
        for k in range(_L.ddct_Info_aliasCount(self._info)):
            to = ctypes.c_size_t()
            name = _s(_L.ddct_Info_alias(self._info, k, ctypes.byref(to)))
            self._aliases[name] = to.value
            self._index[name] = to.value
        self.path = None if self._buffer is not None else os.fspath(ddct)
        self.base = os.fspath(base)

    # -- lifetime
    def close(self):
        with self._lock:
            if self._d is not None:
                self._d.free()
                self._d = None
                self._buffer = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    __eq__ = object.__eq__  # not Mapping's, which would decode every tensor to compare
    __hash__ = object.__hash__

    @property
    def closed(self):
        return self._d is None

    # -- the mapping
    def __len__(self):
        return len(self._tensors)

    def __iter__(self):
        return (t["name"] for t in self._tensors)

    def __contains__(self, name):
        return name in self._index

    def __getitem__(self, name):
        return self._decode(self._find(name), raw=False)

    def get(self, name, default=None, *, raw=False):
        """The tensor called name (raw=True: BF16 as its uint16 bits), or default when there is none."""
        i = self._index.get(name)
        return default if i is None else self._decode(i, raw=raw)

    def names(self):
        """Tensor names, in file order."""
        return [t["name"] for t in self._tensors]

    def info(self, name=None):
        """One tensor's info dict (name, dtype, shape, params, codec, lossy, record_bytes, payload_bytes,
        side_bytes); without a name, the whole file's (as deltadct.info)."""
        if name is None:
            self._check_open()
            return _info_dict(self._info)
        return dict(self._tensors[self._find(name)])

    def notes(self):
        """Notes of the last decode (e.g. values saturated to the dtype's range)."""
        self._check_open()
        return self._d.notes()

    def __repr__(self):
        state = "closed" if self.closed else f"{len(self)} tensors"
        return f"<deltadct.Reader {self.path or '(in memory)'} against {self.base}: {state}>"

    # -- decoding
    def _check_open(self):
        if self._d is None:
            raise ValueError("deltadct.Reader is closed")

    def _find(self, name):
        i = self._index.get(name)
        if i is None:
            raise KeyError(name)
        return i

    def _decode_into(self, i, ptr, capacity, fmt):
        """Rebuild tensor i into memory at ptr (capacity bytes)."""
        with self._lock:
            self._check_open()
            self._d.check(_L.ddct_DCtx_decodeTensor(self._d.d, i, ptr, capacity, fmt))

    def _decode(self, i, raw=False):
        t = self._tensors[i]
        if t["dtype"] == "BF16" and not raw:
            arr = np.empty(t["shape"], dtype=np.float32)
            fmt = _lib.AS_F32
        else:
            if t["dtype"] not in _NP_DTYPES:
                raise Error(f"tensor '{t['name']}': dtype {t['dtype']} has no numpy form", ErrorCode.UNSUPPORTED)
            arr = np.empty(t["shape"], dtype=_NP_DTYPES[t["dtype"]])
            fmt = _lib.AS_STORED
        self._decode_into(i, arr.ctypes.data if arr.nbytes else None, arr.nbytes, fmt)
        return arr

    # -- torch
    def tensor(self, name):
        """The tensor called name as a torch tensor in its own dtype (BF16 as torch.bfloat16, bit for bit)."""
        import torch
        return self._torch_tensor(torch, self._find(name))

    def _torch_tensor(self, torch, i):
        t = self._tensors[i]
        tdt = _torch_dtype(torch, t["dtype"])
        if tdt is None:
            raise TypeError(f"tensor '{t['name']}': this torch has no dtype for {t['dtype']}")
        out = torch.empty(t["shape"], dtype=tdt)
        self._decode_into(i, out.data_ptr() if out.numel() else None, out.numel() * out.element_size(),
                          _lib.AS_STORED)
        return out

    def state_dict(self, torch=True):
        """Every tensor, decoded now: torch tensors in their own dtypes (BF16 as torch.bfloat16, the
        stored bits exactly), or with torch=False numpy arrays as the mapping gives them."""
        if not torch:
            out = {n: self[n] for n in self}
            out.update({a: out[self._tensors[i]["name"]] for a, i in self._aliases.items()})
            return out
        import torch as _torch
        out = {t["name"]: self._torch_tensor(_torch, i) for i, t in enumerate(self._tensors)}
        out.update({a: out[self._tensors[i]["name"]] for a, i in self._aliases.items()})  # one tensor, two names
        return out

    def load_into(self, module, strict=True):
        """Copy the tensors of this file into module's parameters and buffers in place, one tensor at a
        time (never the whole rebuilt model in memory): each of module.state_dict()'s keys that the
        file holds is decoded and copied (straight into the parameter's memory when it is a contiguous
        CPU tensor of the stored dtype or, from F32/F16/BF16, of float32; otherwise through one
        temporary tensor and copy_, which converts dtype and device).

        Shapes are checked for every key first: a mismatch raises RuntimeError before anything is
        copied. strict=True: keys of the module missing from the file, or tensors of the file the
        module does not have, raise RuntimeError (also before anything is copied), as
        torch.nn.Module.load_state_dict would; strict=False loads what matches. Returns
        IncompatibleKeys(missing_keys, unexpected_keys)."""
        import torch
        self._check_open()
        targets = module.state_dict(keep_vars=True)
        missing = [k for k in targets if k not in self._index]
        unexpected = [n for n in self if n not in targets]
        errors = []
        for k, v in targets.items():
            if k in self._index:
                shape = list(self._tensors[self._index[k]]["shape"])
                if list(v.shape) != shape:
                    errors.append(f"size mismatch for {k}: copying a param with shape {torch.Size(shape)} from "
                                  f"the .ddct, the shape in current model is {v.shape}.")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                module.__class__.__name__, "\n\t".join(errors)))
        with torch.no_grad():
            for k, v in targets.items():
                i = self._index.get(k)
                if i is None:
                    continue
                dst = v.data if isinstance(v, torch.nn.Parameter) else v
                fmt = self._direct_format(torch, i, dst)
                if fmt is not None:
                    self._decode_into(i, dst.data_ptr() if dst.numel() else None,
                                      dst.numel() * dst.element_size(), fmt)
                else:
                    dst.copy_(self._torch_tensor(torch, i))
        return IncompatibleKeys(missing, unexpected)

    def _direct_format(self, torch, i, dst):
        """The format to decode tensor i in straight into dst's memory, or None."""
        if dst.device.type != "cpu" or not dst.is_contiguous() or dst.is_sparse or dst.is_quantized:
            return None
        dtype = self._tensors[i]["dtype"]
        if dst.dtype == _torch_dtype(torch, dtype):
            return _lib.AS_STORED
        if dst.dtype == torch.float32 and dtype in ("F32", "F16", "BF16"):
            return _lib.AS_F32
        return None


def open(ddct, base, *, threads=0, rescale=None):  # noqa: A001 - mirrors the library's "open"
    """Open DDCT (a path, or the file's bytes) against BASE for reading tensors one at a time
    (ddct_DCtx_open / ddct_DCtx_openBuffer). Returns a Reader: a mapping name -> numpy array; use it
    as a context manager or close() it. threads: 0 all cores; rescale: None as stored, or force."""
    return Reader(ddct, base, threads=threads, rescale=rescale)


# ---------------------------------------------------------------- many fine-tunes (deltadct batch)
from ._batch import base_stats, close_bases, compress_many  # noqa: E402 - uses the definitions above
