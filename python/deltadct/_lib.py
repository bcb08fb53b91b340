"""ctypes binding of libdeltadct: finding the library, the structs and the prototypes of include/deltadct.h.

Loading order: $DDCT_LIBRARY if set, the copy installed inside this package, then
ctypes.util.find_library("deltadct"). Nothing here is public; deltadct/__init__.py is the API.
"""
import ctypes
import ctypes.util
import glob
import os
import warnings
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_int, c_size_t, c_uint,
                    c_uint64, c_void_p)

# ---------------------------------------------------------------- structs (deltadct.h)
MAX_BITS_LEVELS = 16
RESCALE_AUTO = 2
NOT_FOUND = ctypes.c_size_t(-1).value
AS_STORED = 0
AS_F32 = 1


class Strategy(Structure):
    _fields_ = [("n", c_int), ("bits", c_int * MAX_BITS_LEVELS), ("frac", c_double * MAX_BITS_LEVELS)]


class Params(Structure):
    _fields_ = [
        ("method", c_int),
        ("transform", c_int),
        ("patch", c_int),
        ("bits", Strategy),
        ("importance", c_int),
        ("lowfreq_k", c_int),
        ("qtable", c_int),
        ("wavelet", c_int),
        ("dwt_levels", c_int),
        ("dwt_keep", c_int),
        ("rescale", c_int),
        ("bpp", c_double),
        ("error", c_double),
        ("rd_measure", c_int),
        ("include_regex", c_char_p),
        ("exclude_regex", c_char_p),
        ("threads", c_int),
        ("zstd_level", c_int),
    ]


class Tensor(Structure):
    """ddct_tensor: a tensor a program holds (compress_state_dict)."""
    _fields_ = [
        ("name", c_char_p),
        ("dtype", c_char_p),
        ("ndim", c_int),
        ("shape", POINTER(c_uint64)),
        ("data", c_void_p),
    ]


class ParamsBuf(Structure):
    """ddct_params with slack behind it: a library whose struct grew cannot write past our memory."""
    _fields_ = [("p", Params), ("_slack", c_char * 1024)]


class TensorInfo(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("dtype", c_char_p),
        ("ndim", c_int),
        ("shape", POINTER(c_uint64)),
        ("nparams", c_uint64),
        ("codec", c_char_p),
        ("lossy", c_int),
        ("record_bytes", c_uint64),
        ("payload_bytes", c_uint64),
        ("side_bytes", c_uint64),
    ]


class LayoutInfo(Structure):
    _fields_ = [
        ("directory", c_int),
        ("index_name", c_char_p),
        ("index_metadata", c_char_p),
        ("nshards", c_size_t),
        ("shard_names", POINTER(c_char_p)),
        ("shard_tensors", POINTER(c_size_t)),
        ("nfiles", c_size_t),
        ("file_names", POINTER(c_char_p)),
        ("file_bytes", POINTER(c_uint64)),
        ("files_record_bytes", c_uint64),
        ("shard_formats", POINTER(c_char_p)),
    ]


class TensorEval(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("lossy", c_int),
        ("nparams", c_uint64),
        ("err2", c_double),
        ("ref2", c_double),
        ("dot", c_double),
        ("hat2", c_double),
        ("max_abs_err", c_double),
    ]


# int (*)(void *opaque, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total, const char *name)
PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_size_t, c_size_t, c_uint64, c_uint64, c_char_p)
# void (*)(void *opaque, const ddct_tensor_eval *ev)
EVAL_FN = CFUNCTYPE(None, c_void_p, POINTER(TensorEval))

_ERR = c_int
_CHARBUF = ctypes.c_char_p  # a char * the library writes into (we pass a create_string_buffer)

# name: (restype, argtypes)
PROTOTYPES = {
    "ddct_getErrorName": (c_char_p, [_ERR]),
    "ddct_versionNumber": (c_uint, []),
    "ddct_versionString": (c_char_p, []),
    "ddct_params_default": (None, [POINTER(Params)]),
    "ddct_params_set": (_ERR, [POINTER(Params), c_char_p, c_char_p, c_void_p, c_size_t]),
    "ddct_params_describe": (None, [POINTER(Params), c_void_p, c_size_t]),
    "ddct_params_checkOptions": (_ERR, [POINTER(Params), POINTER(c_char_p), c_int, c_int, c_void_p, c_size_t]),
    "ddct_params_effective": (None, [POINTER(Params), POINTER(Params)]),
    "ddct_openBase": (_ERR, [POINTER(c_void_p), c_char_p, c_void_p, c_size_t]),
    "ddct_freeBase": (None, [c_void_p]),
    "ddct_Base_fingerprinted": (c_size_t, [c_void_p]),
    "ddct_compressWithBase": (_ERR, [c_void_p, c_void_p, c_char_p, c_char_p, POINTER(Params), c_int]),
    "ddct_verifyWithBase": (_ERR, [c_void_p, c_char_p, c_void_p, c_int]),
    "ddct_createCCtx": (c_void_p, []),
    "ddct_freeCCtx": (None, [c_void_p]),
    "ddct_CCtx_setProgress": (None, [c_void_p, PROGRESS_FN, c_void_p]),
    "ddct_compressFiles": (_ERR, [c_void_p, c_char_p, c_char_p, c_char_p, POINTER(Params), c_int]),
    "ddct_CCtx_setParams": (_ERR, [c_void_p, POINTER(Params)]),
    "ddct_CCtx_compressTensors": (_ERR, [c_void_p, c_char_p, POINTER(Tensor), c_size_t, POINTER(Tensor), c_size_t,
                                         c_char_p, c_int]),
    "ddct_CCtx_getErrorMessage": (c_char_p, [c_void_p]),
    "ddct_CCtx_noteCount": (c_size_t, [c_void_p]),
    "ddct_CCtx_note": (c_char_p, [c_void_p, c_size_t]),
    "ddct_createDCtx": (c_void_p, []),
    "ddct_freeDCtx": (None, [c_void_p]),
    "ddct_DCtx_setProgress": (None, [c_void_p, PROGRESS_FN, c_void_p]),
    "ddct_DCtx_setThreads": (None, [c_void_p, c_int]),
    "ddct_DCtx_setRescale": (None, [c_void_p, c_int]),
    "ddct_decompressFile": (_ERR, [c_void_p, c_char_p, c_char_p, c_char_p, c_int]),
    "ddct_verifyFile": (_ERR, [c_void_p, c_char_p, c_char_p]),
    "ddct_verifyFileChecksums": (_ERR, [c_void_p, c_char_p, c_char_p]),
    "ddct_DCtx_getErrorMessage": (c_char_p, [c_void_p]),
    "ddct_DCtx_noteCount": (c_size_t, [c_void_p]),
    "ddct_DCtx_note": (c_char_p, [c_void_p, c_size_t]),
    "ddct_openInfo": (_ERR, [POINTER(c_void_p), c_char_p, c_void_p, c_size_t]),
    "ddct_freeInfo": (None, [c_void_p]),
    "ddct_Info_count": (c_size_t, [c_void_p]),
    "ddct_Info_tensor": (POINTER(TensorInfo), [c_void_p, c_size_t]),
    "ddct_Info_fileBytes": (c_uint64, [c_void_p]),
    "ddct_Info_containerBytes": (c_uint64, [c_void_p]),
    "ddct_Info_header": (c_char_p, [c_void_p]),
    "ddct_Info_removedCount": (c_size_t, [c_void_p]),
    "ddct_Info_removed": (c_char_p, [c_void_p, c_size_t]),
    "ddct_Info_layout": (POINTER(LayoutInfo), [c_void_p]),
    "ddct_Info_find": (c_size_t, [c_void_p, c_char_p]),
    "ddct_Info_aliasCount": (c_size_t, [c_void_p]),
    "ddct_Info_alias": (c_char_p, [c_void_p, c_size_t, POINTER(c_size_t)]),
    "ddct_DCtx_open": (_ERR, [c_void_p, c_char_p, c_char_p]),
    "ddct_DCtx_openBuffer": (_ERR, [c_void_p, c_void_p, c_size_t, c_char_p]),
    "ddct_DCtx_info": (c_void_p, [c_void_p]),
    "ddct_DCtx_tensorBytes": (c_uint64, [c_void_p, c_size_t, c_int]),
    "ddct_DCtx_decodeTensor": (_ERR, [c_void_p, c_size_t, c_void_p, c_size_t, c_int]),
    "ddct_DCtx_close": (None, [c_void_p]),
    "ddct_evaluate": (_ERR, [c_void_p, c_char_p, c_char_p, c_char_p, EVAL_FN, c_void_p]),
}


def _bind(cdll):
    missing = [n for n in PROTOTYPES if not hasattr(cdll, n)]
    if missing:
        raise OSError("missing symbols (an older libdeltadct?): " + ", ".join(missing))
    for name, (res, args) in PROTOTYPES.items():
        f = getattr(cdll, name)
        f.restype = res
        f.argtypes = args
    return cdll


def _candidates():
    """(description, path) in loading order."""
    out = []
    env = os.environ.get("DDCT_LIBRARY")
    if env:
        out.append(("$DDCT_LIBRARY", env))
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = sorted(glob.glob(os.path.join(here, "libdeltadct.so*")), key=len)
    out.append(("the copy in the package", bundled[0] if bundled else os.path.join(here, "libdeltadct.so")))
    found = ctypes.util.find_library("deltadct")
    out.append(('ctypes.util.find_library("deltadct")', found))
    return out


def load():
    """Returns (CDLL, path). Raises ImportError naming every place tried and why each failed."""
    tried = []
    for what, path in _candidates():
        if not path:
            tried.append(f"{what}: not found")
            continue
        try:
            if os.sep in path and not os.path.exists(path):
                raise OSError("no such file")
            lib = _bind(ctypes.CDLL(path))
        except OSError as e:
            tried.append(f"{what}: {path}: {e}")
            if what == "$DDCT_LIBRARY":
                warnings.warn(f"deltadct: $DDCT_LIBRARY={path} cannot be loaded ({e}); trying the others",
                              RuntimeWarning, stacklevel=2)
            continue
        return lib, path
    raise ImportError("deltadct: cannot load libdeltadct; tried, in order:\n  " + "\n  ".join(tried) +
                      "\nBuild it (make) and reinstall the package (DDCT_BUILD=DIR names the build directory),"
                      " or set DDCT_LIBRARY to the path of libdeltadct.so.")


def _gomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp" in line for line in f)
    except OSError:
        return True  # cannot tell: leave the environment alone


def passive_omp_wait():
    """As the CLI does (cli/util.c): OpenMP threads that wait sleep rather than spin
    (OMP_WAIT_POLICY=passive), unless the user chose a policy. libgomp reads it once, when it is
    loaded, so this only acts when nothing in the process (torch, ...) has loaded it yet. On 2 busy
    cores it halves the rd encoder's time; the files written are the same."""
    if any(os.environ.get(v) for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return False
    if _gomp_loaded():
        return False
    os.environ["OMP_WAIT_POLICY"] = "passive"
    return True


passive_omp_wait()
lib, library_path = load()
