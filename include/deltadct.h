/*
 * deltadct.h — the one public header of libdeltadct.
 *
 * deltadct stores a fine-tuned model as a compressed delta against its base
 * (Delta-DCT, Huang et al. 2025, "Seeing Delta Parameters as JPEG Images"),
 * and rebuilds the fine-tune from the base and that delta.
 *
 * Conventions (those of zstd.h):
 *   - opaque contexts with create/free;
 *   - a params struct with defaults (ddct_params_default());
 *   - every call returns a ddct_ErrorCode (0 = DDCT_OK); ddct_getErrorName() names
 *     it and the context keeps a message naming the file, tensor and offset;
 *   - the library never prints, never exits and never aborts on bad input.
 *
 * The container layout is specified in docs/FORMAT.md.
 */
#ifndef DELTADCT_H
#define DELTADCT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DDCT_API marks the public functions: the only symbols the shared library exports (it is built
 * with -fvisibility=hidden). */
#if defined(_WIN32)
#define DDCT_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#define DDCT_API __attribute__((visibility("default")))
#else
#define DDCT_API
#endif

#define DDCT_VERSION_MAJOR 0
#define DDCT_VERSION_MINOR 3
#define DDCT_VERSION_PATCH 0
#define DDCT_VERSION_STRING "0.3.0"

/* ---------------------------------------------------------------- errors */
typedef enum {
    DDCT_OK = 0,
    DDCT_ERR_IO,             /* open/read/write/rename failed (disk full included) */
    DDCT_ERR_NOMEM,          /* allocation failed */
    DDCT_ERR_FORMAT,         /* input file malformed or truncated */
    DDCT_ERR_CHECKSUM,       /* a checksum in a .ddct file does not match */
    DDCT_ERR_VERSION,        /* .ddct written by an incompatible format version */
    DDCT_ERR_BASE_MISMATCH,  /* the base given is not the one the delta was made against */
    DDCT_ERR_PARAM,          /* invalid option or parameter */
    DDCT_ERR_EXISTS,         /* output exists (and overwrite not allowed) or equals an input */
    DDCT_ERR_UNSUPPORTED,    /* valid but not supported (e.g. unknown codec id) */
    DDCT_ERR_INTERNAL,       /* a bug: please report */
    DDCT_ERR_CANCELLED,      /* a progress callback asked to stop (nothing committed) */
    DDCT_ERR_COUNT
} ddct_ErrorCode;

DDCT_API const char *ddct_getErrorName(ddct_ErrorCode code);
DDCT_API unsigned ddct_versionNumber(void); /* MAJOR*10000 + MINOR*100 + PATCH */
DDCT_API const char *ddct_versionString(void);

/* ---------------------------------------------------------------- params */
typedef enum { DDCT_METHOD_PATCH = 0, DDCT_METHOD_BITDELTA, DDCT_METHOD_SVD, DDCT_METHOD_RD, DDCT_METHOD_COUNT } ddct_method;
typedef enum { DDCT_TRANSFORM_DCT = 0, DDCT_TRANSFORM_DWT, DDCT_TRANSFORM_NONE, DDCT_TRANSFORM_COUNT } ddct_transform;
typedef enum { DDCT_WAVELET_HAAR = 0, DDCT_WAVELET_CDF97, DDCT_WAVELET_COUNT } ddct_wavelet;
typedef enum { DDCT_KEEP_ALL = 0, DDCT_KEEP_LL_LH_HL, DDCT_KEEP_LL_ONLY, DDCT_KEEP_COUNT } ddct_dwt_keep;
typedef enum { DDCT_IMPORTANCE_L2 = 0, DDCT_IMPORTANCE_LOWFREQ, DDCT_IMPORTANCE_COUNT } ddct_importance;
typedef enum { DDCT_QTABLE_FLAT = 0, DDCT_QTABLE_JPEG, DDCT_QTABLE_COUNT } ddct_qtable;
/* rd method: the distortion its allocation across tensors minimises. MSE: squared error summed
 * over every lossy tensor; REL: each tensor's squared error divided by its ||delta||^2. */
typedef enum { DDCT_RD_MEASURE_MSE = 0, DDCT_RD_MEASURE_REL, DDCT_RD_MEASURE_COUNT } ddct_rd_measure;

#define DDCT_MAX_BITS_LEVELS 16
#define DDCT_MAX_BITWIDTH 8

/* A mixed-precision strategy: `n` classes, patches ranked by importance get
 * bits[0] for the first frac[0] of them, bits[1] for the next, ... */
typedef struct {
    int n;
    int bits[DDCT_MAX_BITS_LEVELS];
    double frac[DDCT_MAX_BITS_LEVELS];
} ddct_strategy;

#define DDCT_RESCALE_AUTO 2
#define DDCT_MAX_THREADS 1024
typedef struct {
    ddct_method method;         /* default DDCT_METHOD_RD (at bpp 1.0) */
    ddct_transform transform;   /* default DDCT_TRANSFORM_DCT */
    int patch;                  /* p, 2..128, default 16 */
    ddct_strategy bits;         /* default 2:0.5,0:0.5 */
    ddct_importance importance; /* default L2 */
    int lowfreq_k;              /* default 4 */
    ddct_qtable qtable;         /* default FLAT */
    ddct_wavelet wavelet;       /* default HAAR */
    int dwt_levels;             /* default 1 */
    ddct_dwt_keep dwt_keep;     /* default ALL */
    int rescale;                /* 1: rebuild with per-layer mean |delta|; 0: plain; DDCT_RESCALE_AUTO
                                   (default): for rd per tensor, on where the plain rebuild's mean
                                   |delta^| is within 10 %; for the other methods 1 */
    double bpp;                 /* target bits per lossy parameter (rd, svd; default 1.0); 0 = unset */
    double error;               /* rd method: target relative error per tensor (> 0), 0 = unset (then bpp) */
    ddct_rd_measure rd_measure; /* rd method with a bpp budget: default MSE */
    const char *include_regex;  /* POSIX ERE; NULL = default rule */
    const char *exclude_regex;  /* POSIX ERE; NULL = default exclusions */
    int threads;                /* 0 = all cores, 1..DDCT_MAX_THREADS; others: DDCT_ERR_PARAM */
    int zstd_level;             /* lossless tensors: 1..22 a zstd level (default 1); 0 zstd's fastest
                                   search with Huffman-coded literals (faster, about as small) */
} ddct_params;

DDCT_API void ddct_params_default(ddct_params *p);
/* The parameters as a method reads them (out may be in): the options it ignores at their neutral
 * values (DDCT_RESCALE_AUTO is 1 for methods other than rd; bpp 0 for patch and bitdelta; error
 * and rd_measure for methods other than rd), so files do not depend on unread defaults. */
DDCT_API void ddct_params_effective(const ddct_params *in, ddct_params *out);
/* Parse "2:0.5,0:0.5" into a strategy. Returns DDCT_ERR_PARAM with a message in err (may be NULL). */
DDCT_API ddct_ErrorCode ddct_strategy_parse(const char *spec, ddct_strategy *out, char *err, size_t errlen);
/* Set one parameter from its CLI option name (without "--") and value text, checked as the CLI
 * checks it: "method", "transform", "wavelet", "dwt-keep", "importance", "qtable", "rd-measure",
 * "patch", "lowfreq-k", "dwt-levels", "threads", "zstd-level", "bits", "bpp", "error", "rescale"
 * (auto | on | off). Unknown names and bad values: DDCT_ERR_PARAM with a message in err. */
DDCT_API ddct_ErrorCode ddct_params_set(ddct_params *p, const char *name, const char *value, char *err, size_t errlen);
/* Write a canonical one-line description of p (as stored in the file header). */
DDCT_API void ddct_params_describe(const ddct_params *p, char *out, size_t outlen);

/* 1 if the method of p reads option opt (a ddct_params_set name, without "--"), given the rest
 * of p (--wavelet only with the DWT, --lowfreq-k only with the low-frequency score, ...); options
 * every method reads (zstd-level, include, exclude, rescale, threads) give 1. */
DDCT_API int ddct_params_optionRead(const ddct_params *p, const char *opt);
/* The options given[0..ngiven) (names as above) set on p: DDCT_ERR_PARAM with a message naming
 * the first one p's method does not read ("--bpp does nothing with --method patch ..."), or that
 * cannot go with another given one (--error with --bpp). method_given: the method was chosen,
 * not the default (for the message). The CLI refuses such options as usage errors. */
DDCT_API ddct_ErrorCode ddct_params_checkOptions(const ddct_params *p, const char *const *given, int ngiven,
                                                 int method_given, char *err, size_t errlen);

/* ---------------------------------------------------------------- parameters, zstd style
 * Every numeric and enumerated field of ddct_params by id, with its bounds; a CCtx holds its own
 * parameters (ddct_params_default's when created), each set checked against its bounds, and
 * ddct_CCtx_compress uses them. Values are doubles so that bpp and error fit; the others must be
 * whole numbers (enumerations: their enum values). */
typedef enum {
    DDCT_c_method = 1, /* ddct_method */
    DDCT_c_bpp,        /* bits per lossy parameter (rd, svd): (0, 32]; 0 = unset */
    DDCT_c_error,      /* rd: relative error per tensor: (0, 1); 0 = unset (then bpp) */
    DDCT_c_rdMeasure,  /* ddct_rd_measure */
    DDCT_c_rescale,    /* 0, 1 or DDCT_RESCALE_AUTO */
    DDCT_c_threads,    /* 0 (every core) .. DDCT_MAX_THREADS */
    DDCT_c_zstdLevel,  /* lossless tensors: 0..22 */
    DDCT_c_transform,  /* ddct_transform (patch method) */
    DDCT_c_patch,      /* 2..128 */
    DDCT_c_importance, /* ddct_importance */
    DDCT_c_lowfreqK,   /* 1..128 */
    DDCT_c_qtable,     /* ddct_qtable */
    DDCT_c_wavelet,    /* ddct_wavelet */
    DDCT_c_dwtLevels,  /* 1..6 */
    DDCT_c_dwtKeep     /* ddct_dwt_keep */
} ddct_cParameter;
typedef struct {
    ddct_ErrorCode error;    /* DDCT_ERR_PARAM for an unknown parameter */
    double lowerBound;       /* the smallest value allowed, or the open bound when lowerExclusive */
    double upperBound;       /* the largest, or the open bound when upperExclusive */
    int lowerExclusive, upperExclusive;
    int integer;             /* 1: whole numbers only */
    int zeroUnset;           /* 1: 0 is also allowed, meaning unset */
} ddct_bounds;
DDCT_API ddct_bounds ddct_cParam_getBounds(ddct_cParameter param);
/* The option name of param as the CLI and ddct_params_set spell it ("bpp", "zstd-level"), or NULL. */
DDCT_API const char *ddct_cParam_name(ddct_cParameter param);
/* Set / read one field of p, checked: DDCT_ERR_PARAM (p unchanged) for an unknown id or a value
 * outside the bounds, with a message in err (may be NULL). */
DDCT_API ddct_ErrorCode ddct_params_setParameter(ddct_params *p, ddct_cParameter param, double value, char *err,
                                                 size_t errlen);
DDCT_API ddct_ErrorCode ddct_params_getParameter(const ddct_params *p, ddct_cParameter param, double *value);
/* Every field of p within its bounds (and the strategy well formed): DDCT_OK, or DDCT_ERR_PARAM
 * naming the first one that is not. ddct_compressFiles runs it on the params it is given. */
DDCT_API ddct_ErrorCode ddct_params_check(const ddct_params *p, char *err, size_t errlen);

/* ---------------------------------------------------------------- progress */
/* Called after each tensor. Return non-zero to cancel (the call then fails with DDCT_ERR_CANCELLED). */
typedef int (*ddct_progress_fn)(void *opaque, size_t tensors_done, size_t tensors_total,
                                uint64_t bytes_done, uint64_t bytes_total, const char *tensor_name);

/* ---------------------------------------------------------------- compress */
typedef struct ddct_CCtx_s ddct_CCtx;
DDCT_API ddct_CCtx *ddct_createCCtx(void);
DDCT_API void ddct_freeCCtx(ddct_CCtx *cctx);
DDCT_API void ddct_CCtx_setProgress(ddct_CCtx *cctx, ddct_progress_fn fn, void *opaque);
/* BASE and FINETUNED: each a .safetensors file, a sharded checkpoint (its *.safetensors.index.json)
 * or a model directory holding either (F32/F16/BF16 lossy; other dtypes lossless). Tensors are
 * matched by name across shards; a directory's other files (config, tokenizer, the index) are
 * carried losslessly. Writes OUT atomically (temporary name, renamed when complete).
 * overwrite=0 refuses an existing OUT. */
DDCT_API ddct_ErrorCode ddct_compressFiles(ddct_CCtx *cctx, const char *base_path, const char *ft_path,
                                  const char *out_path, const ddct_params *params, int overwrite);
DDCT_API const char *ddct_CCtx_getErrorMessage(const ddct_CCtx *cctx);
/* The CCtx's own parameters (ddct_params_default's when created): set one, checked (the error
 * message names it); read one; the strategy ("2:0.5,0:0.5") and the tensor selection (POSIX EREs,
 * NULL: the default rule; copied); back to the defaults. ddct_CCtx_compress compresses with them. */
DDCT_API ddct_ErrorCode ddct_CCtx_setParameter(ddct_CCtx *cctx, ddct_cParameter param, double value);
DDCT_API ddct_ErrorCode ddct_CCtx_getParameter(const ddct_CCtx *cctx, ddct_cParameter param, double *value);
DDCT_API ddct_ErrorCode ddct_CCtx_setStrategy(ddct_CCtx *cctx, const char *bits);
DDCT_API ddct_ErrorCode ddct_CCtx_setSelection(ddct_CCtx *cctx, const char *include_regex, const char *exclude_regex);
DDCT_API void ddct_CCtx_resetParameters(ddct_CCtx *cctx);
/* All of them at once from p (checked by ddct_params_check; its regexes copied). */
DDCT_API ddct_ErrorCode ddct_CCtx_setParams(ddct_CCtx *cctx, const ddct_params *p);
DDCT_API ddct_ErrorCode ddct_CCtx_compress(ddct_CCtx *cctx, const char *base_path, const char *ft_path,
                                           const char *out_path, int overwrite);

/* A tensor a program holds: its bytes row-major, little-endian, product(shape) x the dtype's
 * size, read in place (never copied whole) and left unchanged until the call returns. */
typedef struct {
    const char *name;      /* unique, UTF-8 */
    const char *dtype;     /* safetensors dtype name: "F32", "F16", "BF16", "I64", "U8", ... */
    int ndim;              /* 0..8 */
    const uint64_t *shape;
    const void *data;
} ddct_tensor;
/* Compress a fine-tune held in memory (ft[0..nft)) against a base read from base_path (a file,
 * sharded checkpoint or directory) or, with base_path NULL, held in memory too (base[0..nbase)),
 * with the CCtx's parameters, into out_path, as ddct_CCtx_compress does for files: tensors
 * matched by name, the same records byte for byte as for the same tensors in a .safetensors
 * file. The .ddct records one file, model.safetensors, which decompress rebuilds. */
DDCT_API ddct_ErrorCode ddct_CCtx_compressTensors(ddct_CCtx *cctx, const char *base_path, const ddct_tensor *base,
                                                  size_t nbase, const ddct_tensor *ft, size_t nft,
                                                  const char *out_path, int overwrite);
/* Notes from the last compression (e.g. "tensor 'x': holds NaN/Inf, stored losslessly"). */
DDCT_API size_t ddct_CCtx_noteCount(const ddct_CCtx *cctx);
DDCT_API const char *ddct_CCtx_note(const ddct_CCtx *cctx, size_t i);

/* ---------------------------------------------------------------- a base opened once
 * For many fine-tunes of one base (deltadct batch): the base is opened once (its files mapped,
 * its safetensors headers parsed and checked) and each base tensor's fingerprint is computed the
 * first time a call needs it, then kept. ddct_compressWithBase writes exactly the bytes
 * ddct_compressFiles writes for the same base path, fine-tune and params. The base's files must
 * not change while the handle is open (a file that changes size is still detected and refused).
 * A handle is used by one call at a time; free it when done. */
typedef struct ddct_Base_s ddct_Base;
DDCT_API ddct_ErrorCode ddct_openBase(ddct_Base **out, const char *base_path, char *err, size_t errlen);
DDCT_API void ddct_freeBase(ddct_Base *base);
DDCT_API const char *ddct_Base_path(const ddct_Base *base);
/* Fingerprints computed through the handle so far: each base tensor's at most once. */
DDCT_API size_t ddct_Base_fingerprinted(const ddct_Base *base);
/* ddct_compressFiles with the base given by its handle. */
DDCT_API ddct_ErrorCode ddct_compressWithBase(ddct_CCtx *cctx, ddct_Base *base, const char *ft_path,
                                              const char *out_path, const ddct_params *params, int overwrite);
/* ---------------------------------------------------------------- decompress */
typedef struct ddct_DCtx_s ddct_DCtx;
DDCT_API ddct_DCtx *ddct_createDCtx(void);
DDCT_API void ddct_freeDCtx(ddct_DCtx *dctx);
DDCT_API void ddct_DCtx_setProgress(ddct_DCtx *dctx, ddct_progress_fn fn, void *opaque);
/* 0 (default): all cores; 1..DDCT_MAX_THREADS; a value out of range is clamped into 0..DDCT_MAX_THREADS. */
DDCT_API void ddct_DCtx_setThreads(ddct_DCtx *dctx, int threads);
/* Override the rescale flag stored in the file: -1 = as stored (default), 0 = off, 1 = on. */
DDCT_API void ddct_DCtx_setRescale(ddct_DCtx *dctx, int rescale);
/* How rebuilt .safetensors files reach the disk: -1 = auto (default: O_DIRECT, bypassing the
 * page cache, for files of >= 64 MiB; the page cache for smaller ones), 0 = always through the
 * page cache, 1 = O_DIRECT for every file. O_DIRECT is best effort: a filesystem without it
 * gets buffered writes. The bytes written are the same either way. */
DDCT_API void ddct_DCtx_setDirectIO(ddct_DCtx *dctx, int direct);
/* The rebuilt fine-tune's file format: by default (DDCT_FORMAT_AS_INPUT) the one it came in;
 * otherwise every tensor file is written in that format (a single-file fine-tune only: a
 * directory keeps its shards' formats, as its index names them). DDCT_ERR_PARAM if unknown. */
typedef enum {
    DDCT_FORMAT_AS_INPUT = -1,
    DDCT_FORMAT_SAFETENSORS = 0,
    DDCT_FORMAT_PYTORCH = 1,
    DDCT_FORMAT_GGUF = 2
} ddct_Format;
DDCT_API ddct_ErrorCode ddct_DCtx_setFormat(ddct_DCtx *dctx, int format);
/* BASE as for compression. The output is a directory (shards, index and carried files as they
 * came, written into a temporary sibling directory renamed at the end) when out_path ends with
 * '/', is an existing directory, or the fine-tune was a directory and out_path does not end in
 * ".safetensors"; otherwise one .safetensors file with every tensor in the fine-tune's order. */
DDCT_API ddct_ErrorCode ddct_decompressFile(ddct_DCtx *dctx, const char *base_path, const char *ddct_path,
                                   const char *out_path, int overwrite);
/* Test a .ddct as zstd -t does, writing nothing: its structure and every checksum, then every
 * record decoded. With base_path (may be NULL), the base fingerprints are checked and every
 * tensor is rebuilt against the base as decompression would (notes as for decompression);
 * without, each record's streams are decoded as far as they go without the base (delta^ of a
 * lossy record, the zstd frame of a raw one) and their lengths checked. */
DDCT_API ddct_ErrorCode ddct_verifyFile(ddct_DCtx *dctx, const char *ddct_path, const char *base_path);
/* The quick test: structure, every checksum and known codecs (and with base_path the base
 * fingerprints); no record is decoded. */
DDCT_API ddct_ErrorCode ddct_verifyFileChecksums(ddct_DCtx *dctx, const char *ddct_path, const char *base_path);
/* ddct_verifyFileChecksums (quick != 0) or ddct_verifyFile against a base opened once (the
 * fingerprints it already holds are not computed again). */
DDCT_API ddct_ErrorCode ddct_verifyWithBase(ddct_DCtx *dctx, const char *ddct_path, ddct_Base *base, int quick);
DDCT_API const char *ddct_DCtx_getErrorMessage(const ddct_DCtx *dctx);
/* Notes from the last decompress, verify or evaluate, one per tensor concerned: e.g. "tensor 'x':
 * 12 rebuilt values beyond the F16 range saturated to +-65504" (a lossy tensor whose base + delta^
 * overflowed its dtype: such values become the largest finite value, never Inf). */
DDCT_API size_t ddct_DCtx_noteCount(const ddct_DCtx *dctx);
DDCT_API const char *ddct_DCtx_note(const ddct_DCtx *dctx, size_t i);

/* ---------------------------------------------------------------- info */
typedef struct {
    const char *name;
    const char *dtype;       /* safetensors dtype name */
    int ndim;
    const uint64_t *shape;
    uint64_t nparams;
    const char *codec;       /* "same", "raw", "xor", "patch", "bitdelta", "svd", ... */
    int lossy;
    uint64_t record_bytes;   /* whole record on disk */
    uint64_t payload_bytes;  /* coded values */
    uint64_t side_bytes;     /* record_bytes - payload_bytes: headers, ranges, maps, checksums */
} ddct_tensor_info;

typedef struct ddct_Info_s ddct_Info;
DDCT_API ddct_ErrorCode ddct_openInfo(ddct_Info **out, const char *ddct_path, char *err, size_t errlen);
DDCT_API void ddct_freeInfo(ddct_Info *info);
DDCT_API size_t ddct_Info_count(const ddct_Info *info);
DDCT_API const ddct_tensor_info *ddct_Info_tensor(const ddct_Info *info, size_t i);
DDCT_API uint64_t ddct_Info_fileBytes(const ddct_Info *info);
DDCT_API uint64_t ddct_Info_containerBytes(const ddct_Info *info); /* header + index + footer */
DDCT_API const char *ddct_Info_header(const ddct_Info *info);     /* the header's JSON text */
DDCT_API size_t ddct_Info_removedCount(const ddct_Info *info);
DDCT_API const char *ddct_Info_removed(const ddct_Info *info, size_t i);
/* How the fine-tune was laid out (one file, or a directory of shards, index and other files,
 * which the .ddct carries). Files written before format 1.1 read as one file. Carried files'
 * records are not tensors: they are counted in files_record_bytes, not in the tensor list nor
 * in containerBytes. */
typedef struct {
    int directory;                   /* 1: a model directory */
    const char *index_name;          /* e.g. "model.safetensors.index.json", or NULL */
    const char *index_metadata;      /* the index's "metadata" as compact JSON, or NULL */
    size_t nshards;
    const char *const *shard_names;  /* file names, in order */
    const size_t *shard_tensors;     /* tensors per shard */
    size_t nfiles;                   /* carried files (the index included) */
    const char *const *file_names;
    const uint64_t *file_bytes;
    uint64_t files_record_bytes;     /* their records' bytes in the .ddct */
    const char *const *shard_formats; /* "safetensors" or "pytorch", per shard */
} ddct_layout_info;
DDCT_API const ddct_layout_info *ddct_Info_layout(const ddct_Info *info);
/* The index of the tensor called name, or DDCT_NOT_FOUND. */
#define DDCT_NOT_FOUND ((size_t)-1)
DDCT_API size_t ddct_Info_find(const ddct_Info *info, const char *name);
/* Tied names (a PyTorch fine-tune's weights that share one storage, such as an embedding and the
 * LM head): each has no record of its own and decodes as tensor *tensor (ddct_Info_find finds them
 * too). ddct_Info_alias returns NULL when k is out of range. */
DDCT_API size_t ddct_Info_aliasCount(const ddct_Info *info);
DDCT_API const char *ddct_Info_alias(const ddct_Info *info, size_t k, size_t *tensor);

/* ---------------------------------------------------------------- tensors one at a time
 * A .ddct opened against its base once, then any tensor rebuilt into a buffer of the caller's, in
 * the fine-tune's dtype (bytes as in the fine-tune's safetensors file: little-endian, row-major)
 * or as float32; nothing is written to disk. The DCtx's threads and rescale settings apply; each
 * lossy tensor's base is fingerprinted as it is read (a wrong base fails on the first tensor that
 * differs, DDCT_ERR_BASE_MISMATCH, naming it). Memory: the open .ddct is mapped; a decode needs
 * the same working buffers as ddct_decompressFile, plus nothing tensor-sized but dst. */
DDCT_API ddct_ErrorCode ddct_DCtx_open(ddct_DCtx *dctx, const char *ddct_path, const char *base_path);
/* The same from a .ddct in memory (the caller keeps ddct[0..size) unchanged until closed). */
DDCT_API ddct_ErrorCode ddct_DCtx_openBuffer(ddct_DCtx *dctx, const void *ddct, size_t size, const char *base_path);
/* What the open .ddct holds (ddct_Info_count, ddct_Info_tensor, ddct_Info_find, ...); NULL when
 * nothing is open. Valid until the DCtx is closed, reopened or freed. */
DDCT_API const ddct_Info *ddct_DCtx_info(const ddct_DCtx *dctx);
typedef enum {
    DDCT_AS_STORED = 0, /* the fine-tune's dtype */
    DDCT_AS_F32 = 1     /* float32: the same values, converted exactly (F32, F16 and BF16 tensors only) */
} ddct_tensor_format;
/* Bytes tensor i takes in that format; 0 when there is no tensor i or it cannot be given so. */
DDCT_API uint64_t ddct_DCtx_tensorBytes(const ddct_DCtx *dctx, size_t i, ddct_tensor_format fmt);
/* Rebuild tensor i into dst[0..capacity): DDCT_ERR_PARAM (nothing written) when capacity is less
 * than ddct_DCtx_tensorBytes, i is out of range, or the format does not apply. Notes (saturated
 * values) go to ddct_DCtx_note as for decompress. */
DDCT_API ddct_ErrorCode ddct_DCtx_decodeTensor(ddct_DCtx *dctx, size_t i, void *dst, size_t capacity,
                                               ddct_tensor_format fmt);
/* Close what ddct_DCtx_open opened (ddct_freeDCtx does it too). */
DDCT_API void ddct_DCtx_close(ddct_DCtx *dctx);

/* ---------------------------------------------------------------- eval */
typedef struct {
    const char *name;
    int lossy;
    uint64_t nparams;
    double err2;      /* sum (d_hat - d)^2 over the tensor, d = ft - base in float */
    double ref2;      /* sum d^2 */
    double dot;       /* sum d_hat * d */
    double hat2;      /* sum d_hat^2 */
    double max_abs_err;
} ddct_tensor_eval;

/* Rebuild each tensor in memory (nothing written) and compare it with the fine-tune.
 * cb is called once per tensor in file order; it may be NULL. A NaN or infinite value in the
 * fine-tune or base makes that tensor's sums NaN (not a number: the error cannot be measured). */
typedef void (*ddct_eval_fn)(void *opaque, const ddct_tensor_eval *ev);
DDCT_API ddct_ErrorCode ddct_evaluate(ddct_DCtx *dctx, const char *base_path, const char *ft_path,
                             const char *ddct_path, ddct_eval_fn cb, void *opaque);

#ifdef __cplusplus
}
#endif
#endif /* DELTADCT_H */
