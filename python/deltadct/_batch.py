"""compress_many: the lines of a `deltadct batch` manifest, in this process or mapped over a Dask
distributed client. Re-exported by deltadct/__init__.py; the manifest format is the CLI's
(README.md, "Many fine-tunes")."""
import collections
import ctypes
import json
import os
import threading
import time

from . import _lib
from ._lib import lib as _L

# compress's options by their CLI names, as manifest keys (cli/copts.c), and rescale (true/false)
OPTION_KEYS = frozenset(["method", "transform", "patch", "bits", "importance", "lowfreq-k", "qtable", "wavelet",
                         "dwt-levels", "dwt-keep", "bpp", "error", "rd-measure", "zstd-level", "include", "exclude",
                         "rescale"])
PATH_KEYS = ("base", "finetune", "output")


def _pkg():
    """The package (its Error, _make_params, info, ...): imported when first called, as it imports
    this module."""
    import deltadct
    return deltadct


def read_manifest(manifest):
    """[(line number, entry dict with base/finetune/output resolved and "options")]: the lines of a
    JSON Lines file (paths relative to its directory) or an iterable of dicts (paths relative to the
    current directory). Every line is checked first, as the CLI does: Error names the first bad one."""
    dd = _pkg()
    if isinstance(manifest, (str, bytes, os.PathLike)):
        path = os.fsdecode(manifest)
        where = os.path.dirname(path)
        with open(path, encoding="utf-8") as f:
            raw = []
            for n, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    raw.append((n, json.loads(text, object_pairs_hook=_no_duplicates)))
                except ValueError as e:
                    raise dd.Error(f"{path}:{n}: not JSON: {e}", dd.ErrorCode.PARAM) from None
    else:
        path, where = "manifest", ""
        raw = [(n, obj) for n, obj in enumerate(manifest, 1)]
    out, outputs = [], {}
    for n, obj in raw:
        try:
            out.append((n, _entry(obj, where)))
        except dd.Error as e:
            raise dd.Error(f"{path}:{n}: {e}", e.code) from None
        o = out[-1][1]["output"]
        if o in outputs:
            raise dd.Error(f"{path}:{n}: output '{o}' is also line {outputs[o]}'s", dd.ErrorCode.PARAM)
        outputs[o] = n
    return out


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise ValueError(f"duplicate key {sorted(dup)[0]!r}")
    return dict(pairs)


def _entry(obj, where):
    dd = _pkg()
    if not isinstance(obj, dict):
        raise dd.Error("not a JSON object", dd.ErrorCode.PARAM)
    for k in obj:
        if k not in PATH_KEYS and k not in OPTION_KEYS:
            raise dd.Error(f'unknown key "{k}" (base, finetune, output, rescale or a compress option)',
                           dd.ErrorCode.PARAM)
    e = {}
    for k in PATH_KEYS:
        if k not in obj:
            raise dd.Error(f'missing "{k}"', dd.ErrorCode.PARAM)
        v = obj[k]
        if not isinstance(v, str) or not v:
            raise dd.Error(f'"{k}": needs a path (a non-empty string)', dd.ErrorCode.PARAM)
        if "\0" in v:
            raise dd.Error(f'"{k}": holds a NUL character', dd.ErrorCode.PARAM)
        e[k] = v if os.path.isabs(v) or not where else os.path.join(where, v)
    opts = {k: v for k, v in obj.items() if k in OPTION_KEYS}
    for k, v in opts.items():
        if isinstance(v, bool) and k != "rescale":
            raise dd.Error(f'"{k}": needs a string or a number', dd.ErrorCode.PARAM)
        if not isinstance(v, (str, int, float)):
            raise dd.Error(f'"{k}": needs a string{", true or false" if k == "rescale" else " or a number"}',
                           dd.ErrorCode.PARAM)
        if isinstance(v, str) and "\0" in v:
            raise dd.Error(f'"{k}": holds a NUL character', dd.ErrorCode.PARAM)
    dd._make_params(opts, None)  # the checks compress's keywords get: unknown values, refused options
    e["options"] = opts
    return e


# ---------------------------------------------------------------- bases opened once per process
_BASES = collections.OrderedDict()  # real path -> [handle, lock, path given]
_BASES_LOCK = threading.Lock()
_BASES_MAX = 8


def _base(path):
    """(handle, lock) of the base at path, opened once per process (at most _BASES_MAX kept; the
    least recently used is closed when another is opened). Hold the lock while using the handle."""
    dd = _pkg()
    key = os.path.realpath(path)
    with _BASES_LOCK:
        if key in _BASES:
            _BASES.move_to_end(key)
            return _BASES[key][0], _BASES[key][1]
        h = ctypes.c_void_p()
        err = ctypes.create_string_buffer(1024)
        rc = _L.ddct_openBase(ctypes.byref(h), os.fsencode(path), err, len(err))
        if rc:
            raise dd.Error(dd._s(err.value) or dd.error_name(rc), rc)
        _BASES[key] = [h, threading.Lock(), path]
        while len(_BASES) > _BASES_MAX:
            _, (oh, olock, _p) = _BASES.popitem(last=False)
            with olock:
                _L.ddct_freeBase(oh)
        return h, _BASES[key][1]


def base_stats():
    """{base path: fingerprints computed} of the bases this process holds open (each base
    tensor's fingerprint is computed at most once per process)."""
    with _BASES_LOCK:
        return {v[2]: int(_L.ddct_Base_fingerprinted(v[0])) for v in _BASES.values()}


def close_bases():
    """Close the bases this process holds open."""
    with _BASES_LOCK:
        while _BASES:
            _, (h, lock, _p) = _BASES.popitem()
            with lock:
                _L.ddct_freeBase(h)


def _options_match(out, params):
    """1 when the .ddct at out was written with params (its header's options)."""
    dd = _pkg()
    eff = _lib.ParamsBuf()
    _L.ddct_params_effective(ctypes.byref(params), ctypes.byref(eff.p))
    want = ctypes.create_string_buffer(1024)
    _L.ddct_params_describe(ctypes.byref(eff.p), want, len(want))
    try:
        header = dd.info(out)["header"]
    except dd.Error:
        return False
    return isinstance(header, dict) and header.get("options") == dd._s(want.value)


def _sizes(out):
    dd = _pkg()
    i = dd.info(out)
    return i["file_bytes"], (8.0 * i["lossy_bytes"] / i["lossy_params"] if i["lossy_params"] else 0.0)


def run_line(line, entry, threads=0, overwrite=False):
    """One manifest line, as `deltadct batch` does it: the result dict (line, base, finetune, output,
    status ok | skipped | failed, bytes, bpp, seconds, error)."""
    dd = _pkg()
    t0 = time.monotonic()
    r = {"line": line, "base": entry["base"], "finetune": entry["finetune"], "output": entry["output"],
         "status": "failed", "bytes": None, "bpp": None, "seconds": 0.0, "error": None}
    out = entry["output"]
    try:
        buf, keep = dd._make_params(entry["options"], threads)  # keep: the regexes buf.p points at
        h, lock = _base(entry["base"])
        with lock:
            write = True
            if os.path.lexists(out):
                d = _L.ddct_createDCtx()
                try:
                    _L.ddct_DCtx_setThreads(d, threads)
                    bad = None
                    if not os.path.isfile(out) or os.path.islink(out):
                        bad = "is not a regular file"
                    elif _L.ddct_verifyWithBase(d, os.fsencode(out), h, 1):
                        bad = dd._s(_L.ddct_DCtx_getErrorMessage(d))
                    elif not _options_match(out, buf.p):
                        bad = "was made with other options"
                finally:
                    _L.ddct_freeDCtx(d)
                if bad is None:
                    write = False
                    r["status"] = "skipped"
                elif not overwrite or bad == "is not a regular file":
                    raise dd.Error(f"output '{out}' exists and {bad}" + (" (overwrite=True rewrites it)"
                                   if bad != "is not a regular file" else ""), dd.ErrorCode.EXISTS)
            if write:
                dd._run_cctx(out, None, lambda cc: _L.ddct_compressWithBase(
                    cc, h, os.fsencode(entry["finetune"]), os.fsencode(out), ctypes.byref(buf.p),
                    1 if overwrite else 0))
                r["status"] = "ok"
        del keep
        r["bytes"], r["bpp"] = _sizes(out)
    except (dd.Error, OSError) as e:
        r["status"], r["error"] = "failed", str(e)
    r["seconds"] = round(time.monotonic() - t0, 3)
    return r


def _run_one(item, threads, overwrite):
    return run_line(item[0], item[1], threads, overwrite)


def compress_many(manifest, client=None, *, shard=None, log=None, threads=0, overwrite=False):
    """Compress every line of a `deltadct batch` manifest: a JSON Lines file (relative paths are
    relative to its directory) or an iterable of dicts with "base", "finetune", "output" and
    compress's options by their CLI names ("bpp": 0.5, "zstd-level": 3, "rescale": false). The
    whole manifest is checked first (Error naming the line). shard=(i, n): only the i-th of n
    contiguous runs of lines, as `batch --shard i/n`. An output that exists, verifies against its
    base (checksums and fingerprints) and was made with the line's options is skipped; one that
    does not fails its line (overwrite=True rewrites it). A failed line does not stop the others.

    client: a dask.distributed Client: one task per line, mapped over its workers; each worker
    process opens a base, and fingerprints it, once (base_stats() there says so), and runs one
    line of a base at a time (use one thread per worker: LocalCluster(threads_per_worker=1)).
    None: the lines run here, in this process. threads: per compression (0: all cores; with
    several workers on a machine, give each its share). log: a path to append one JSON object
    per line to, as `batch --log` does.

    Returns the results in manifest order: dicts of line, base, finetune, output, status (ok,
    skipped, failed), bytes, bpp (bits per lossy parameter), seconds, error (None or the message)."""
    entries = read_manifest(manifest)
    if shard is not None:
        i, n = shard
        if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
            raise _pkg().Error(f"shard needs (i, n) with 0 <= i < n, got {shard!r}", _pkg().ErrorCode.PARAM)
        entries = entries[i * len(entries) // n:(i + 1) * len(entries) // n]
    if client is None:  # grouped by base (manifest order within), as batch does
        order = sorted(entries, key=lambda ne: (os.path.realpath(ne[1]["base"]), ne[0]))
        results = [_run_one(item, threads, overwrite) for item in order]
    else:
        futures = client.map(_run_one, entries, threads=threads, overwrite=overwrite, pure=False)
        results = client.gather(futures)
    results = sorted(results, key=lambda r: r["line"])
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            for r in results:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return results
