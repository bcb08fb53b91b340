/*
 * codec.h — per-tensor codecs and their traits table (after ggml's type_traits).
 *
 * A lossy codec turns the float delta of one tensor (finetuned - base, nelem values in the
 * tensor's row-major order) into three byte streams — params (small, codec parameters),
 * side (ranges, maps, scales) and data (coded values) — and back. A lossless codec turns
 * the fine-tune's bytes (optionally against the base's bytes) into params + data and back.
 * Decoders take untrusted records: they validate every length and parameter before use.
 */
#ifndef DDCT_CODEC_H
#define DDCT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "container/container.h"
#include "deltadct.h"

/* A source of a lossy tensor's delta, read in pieces (see ddct_lossy_in.src): NULL if a value
 * is not finite, or NULL with e->code set when it could not read them (e.g. an input changed:
 * the encoder fails with that error). e is the calling thread's own, cleared before the call. */
#define DDCT_DELTA_SRC_ROOM 3
typedef const float *(*ddct_delta_src)(void *opaque, uint64_t first, uint64_t n, float *buf, int threads,
                                       ddct_err *e);

/* The input of a lossy encoder: the delta as an array (delta), or from a source (src): the
 * values [first, first + n) in row-major order, asked for in pieces from several threads at
 * once, returned in buf (room for DDCT_DELTA_SRC_ROOM * n floats: the delta goes to buf[0..n),
 * the rest is the source's scratch) or the source's own memory, or NULL if a value is not
 * finite — then the encoder sets *nonfinite (when given) and codes nothing. Codecs that need the
 * whole tensor at once gather it themselves (ddct_lossy_whole); patch and rd stream it. */
typedef struct {
    const float *delta;
    int ndim;
    const uint64_t *shape;
    uint64_t nelem;
    const ddct_params *params;
    int threads;
    double step;       /* codecs with a rate plan: > 0 = the step the plan chose for this tensor */
    uint64_t cap;      /* with step: the record's bytes at most (0: no limit); coarser steps if need be */
    ddct_delta_src src; /* used when delta is NULL */
    void *src_opaque;
    int *nonfinite;    /* may be NULL */
} ddct_lossy_in;

typedef struct {
    ddct_buf params, side, data;
} ddct_enc_out;

typedef struct {
    const uint8_t *ft;   /* fine-tune bytes */
    const uint8_t *base; /* base bytes of the same size, or NULL */
    uint64_t nbytes;
    size_t elsize;
    int level;           /* zstd level */
    int threads;
    /* optional (streamed coding): told after each chunk that bytes [0, upto) of ft and base are
     * no longer needed, so a caller reading mapped files can drop their pages */
    void (*consumed)(void *opaque, uint64_t upto);
    void *consumed_opaque;
    /* optional (streamed coding): copy bytes [off, off + n) of ft (which = 0) or base (1) into
     * buf and return 0, so a caller can read files with pread instead of through a mapping; or
     * -1: then ft / base are read directly (the caller has checked that they still can be); or an
     * error code with e set (an input changed while reading): the coding stops there */
    int (*read)(void *opaque, int which, uint64_t off, void *buf, size_t n, ddct_err *e);
    void *read_opaque;
} ddct_lossless_in;

/* A buffer reused across calls (grown on demand, contents not kept): zero-initialise. */
typedef struct {
    void *p;
    size_t cap;
} ddct_scratch;

/* Where a decoder puts delta^ (declared below). */
typedef struct ddct_delta_out ddct_delta_out;

/* A codec's rate plan over a whole model (rd: one Lagrangian slope for every tensor). fn(opaque,
 * i, in) fills *in with tensor i's input and returns 1 if the codec codes it, 0 if not, or minus
 * an error code. create may leave *out NULL (no plan needed for these parameters). Then, tensor
 * by tensor in order: step(i, &cap) is the step to encode tensor i with (0: none) and the most
 * bytes its record may take (ddct_lossy_in.step, .cap); spent(i, bytes) reports its size. */
typedef struct ddct_plan ddct_plan;
typedef int (*ddct_lossy_fn)(void *opaque, size_t i, ddct_lossy_in *in, ddct_err *e);
typedef struct {
    int (*create)(ddct_plan **out, size_t count, ddct_lossy_fn fn, void *opaque, const ddct_params *p, int threads,
                  ddct_err *e);
    double (*step)(ddct_plan *pl, size_t i, uint64_t *cap);
    void (*spent)(ddct_plan *pl, size_t i, uint64_t bytes);
    void (*free)(ddct_plan *pl);
} ddct_plan_ops;

typedef struct {
    const char *name;
    uint8_t id;
    int lossy;
    int (*encode_lossy)(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e);
    /* rescale: -1 as stored, 0 off, 1 on. out: nelem floats. */
    int (*decode_lossy)(const ddct_record *rec, uint64_t nelem, int threads, int rescale, float *out, ddct_err *e);
    /* The same to out, slice by slice (scratch: for codecs that rebuild the whole tensor first). */
    int (*decode_stream)(const ddct_record *rec, uint64_t nelem, int threads, int rescale, ddct_scratch *scratch,
                         const ddct_delta_out *out, ddct_err *e);
    const ddct_plan_ops *plan; /* NULL: none */
    int (*encode_lossless)(const ddct_lossless_in *in, ddct_enc_out *out, ddct_err *e);
    /* base may be NULL when the record has no base; out: nbytes. */
    int (*decode_lossless)(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                           ddct_err *e);
} ddct_codec_traits;

/* NULL for an unknown id. */
const ddct_codec_traits *ddct_codec_get(unsigned id);
/* The lossy codec of a method (NULL for an unknown one). */
const ddct_codec_traits *ddct_codec_for_method(ddct_method m);

/* Streamed lossless coding (codec_raw.c): memory stays at a few DDCT_RAW_CHUNK-byte chunks plus
 * zstd's windows, whatever the tensor size. A sink receives consecutive pieces of a stream. */
#define DDCT_RAW_CHUNK ((size_t)4 << 20)
typedef int (*ddct_sink_fn)(void *opaque, const uint8_t *p, size_t n, ddct_err *e);
/* Choose the raw variant for in (on a sample) and append the record's params to params. */
int ddct_raw_params(const ddct_lossless_in *in, ddct_buf *params, ddct_err *e);
/* Upper bound of the data stream's length for nbytes of input. */
uint64_t ddct_raw_data_bound(uint64_t nbytes);
/* The data stream (one zstd frame) for those params, in pieces to sink. */
int ddct_raw_stream(const ddct_lossless_in *in, const uint8_t *params, size_t params_len, ddct_sink_fn sink,
                    void *opaque, ddct_err *e);
/* A sink filling a buffer of n bytes (opaque = ddct_mem_sink*); writing past n is an error. */
typedef struct {
    uint8_t *out;
    uint64_t n, pos;
} ddct_mem_sink;
int ddct_mem_sink_write(void *opaque, const uint8_t *p, size_t n, ddct_err *e);
/* Decode a same or raw record: the tensor's nbytes bytes go to sink in order (on the calling
 * thread; a framed raw record's chunks are decoded on up to `threads` threads, read_base called
 * from them). consumed (may be NULL) is told after each chunk, or batch of chunks, how far the
 * base's bytes and the record's data were read. */
typedef void (*ddct_consumed_fn)(void *opaque, uint64_t base_upto, uint64_t data_upto);
/* A base reader copies the base's bytes [off, off + n) into buf and returns 0, so a
 * caller can read the base with pread instead of through its mapping; or -1: base is read
 * directly (the caller has checked it still can be); or an error code with e set (the base
 * changed while reading): decoding stops. */
typedef int (*ddct_base_read_fn)(void *opaque, uint64_t off, void *buf, size_t n, ddct_err *e);
/* The base of a lossless decode. data: its mapped bytes (NULL: no base). read (may be NULL): as
 * above. seen (may be NULL): shown every base byte the decode uses, in order, on the calling
 * thread (a caller fingerprints the base as it is read; a record that does not use its base's
 * bytes, or a raw record not xor-ed with it, shows none). */
typedef struct {
    const uint8_t *data;
    ddct_base_read_fn read;
    void (*seen)(void *opaque, const uint8_t *p, size_t n);
    void *opaque; /* read's and seen's */
} ddct_lossless_base;
int ddct_lossless_decode_stream(const ddct_record *rec, const ddct_lossless_base *base, uint64_t nbytes, size_t elsize,
                                int threads, ddct_sink_fn sink, void *opaque, ddct_consumed_fn consumed, ddct_err *e);

/* The same without the base: every stream decoded and its length checked (the zstd frame of a raw
 * record in full), the xor with the base left out; sink (may not be NULL) gets those bytes. A
 * same record: its emptiness and base flag. For `verify` without a base. */
int ddct_lossless_check_stream(const ddct_record *rec, uint64_t nbytes, size_t elsize, int threads, ddct_sink_fn sink,
                               void *opaque, ddct_err *e);

/* The raw codec's inverse transform of one m-byte chunk: byte planes of es-byte elements (es = 1:
 * no shuffle) interleaved back, then xor-ed with base's bytes when base is not NULL (SSE2 where
 * present for es 1, 2, 4; _ref: the plain loops). */
void ddct_unshuffle_xor(const uint8_t *in, uint64_t m, size_t es, const uint8_t *base, uint8_t *out);
void ddct_unshuffle_xor_ref(const uint8_t *in, uint64_t m, size_t es, const uint8_t *base, uint8_t *out);
/* Its forward transform: out = the m-byte chunk xor-ed with base (when not NULL), then shuffled
 * (es > 1); tmp: m bytes of scratch (SSE2 for es 2; _ref: the plain loops). */
void ddct_xor_shuffle(const uint8_t *in, const uint8_t *base, uint64_t m, size_t es, uint8_t *tmp, uint8_t *out);
void ddct_xor_shuffle_ref(const uint8_t *in, const uint8_t *base, uint64_t m, size_t es, uint8_t *tmp,
                          uint8_t *out);

void ddct_enc_out_init(ddct_enc_out *o);
void ddct_enc_out_free(ddct_enc_out *o);
int ddct_enc_out_check(const ddct_enc_out *o, ddct_err *e);

/* Shared helpers for lossy codecs (codec_common.c). */
/* mean |x| over n values, summed in fixed blocks so the result does not depend on threads. */
double ddct_mean_abs(const float *x, uint64_t n, int threads);
/* The same value computed block by block in one thread, with no SIMD (tests compare the two). */
double ddct_mean_abs_ref(const float *x, uint64_t n);
/* The same mean over values given in consecutive pieces of any size (zero-initialise). */
typedef struct {
    double total, cur; /* sums of the complete blocks; of the current partial block */
    uint64_t n;        /* values so far */
} ddct_absum;
void ddct_absum_add(ddct_absum *a, const float *x, uint64_t n, int threads);
double ddct_absum_mean(const ddct_absum *a);
/* The factor that makes mean |x| == target when mean |x| == cur: 1 when either is 0 or not finite. */
float ddct_rescale_factor(double target, double cur);
/* Scale x so mean |x| == target (no-op when either is 0 or not finite). */
void ddct_rescale_to(float *x, uint64_t n, double target, int threads);
void *ddct_scratch_get(ddct_scratch *s, size_t bytes); /* NULL when out of memory */
void ddct_scratch_free(ddct_scratch *s);
/* bf16 with directed rounding (for ranges that must contain their values). */
uint16_t ddct_bf16_down(float f);
uint16_t ddct_bf16_up(float f);
/* 2-D view of an n-element tensor as rows x cols for patch size p (see docs/FORMAT.md). */
uint64_t ddct_view_cols(int ndim, const uint64_t *shape, uint64_t nelem, int p);

/* Streamed patch codec (codec_patch.c): neither side holds a float copy of the whole tensor.
 * The encoder asks the source for one strip (p rows of the 2-D view) at a time, twice per strip. */
typedef struct {
    int ndim;
    const uint64_t *shape;
    uint64_t nelem;
    const ddct_params *params;
    int threads;
    ddct_delta_src src;
    void *opaque;
} ddct_patch_src;
/* A (version 1) patch record; *nonfinite = 1 and nothing coded when the source returned NULL
 * for a value that is not finite; the source's error when it failed. */
int ddct_patch_encode_stream(const ddct_patch_src *in, ddct_enc_out *out, int *nonfinite, ddct_err *e);
/* Where a decoder puts delta^: in slices [first, first + n) in order; begin and end run on the
 * calling thread around each slice, put on any thread for disjoint consecutive-covering pieces
 * of it (rel = first - the slice's first), with the factor s to multiply them by (the rescale;
 * 1 when off). */
struct ddct_delta_out {
    int (*begin)(void *opaque, uint64_t first, uint64_t n, ddct_err *e);
    void (*put)(void *opaque, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s);
    int (*end)(void *opaque, uint64_t first, uint64_t n, ddct_err *e);
    void *opaque;
};
/* A codec's decode_stream from its decode_lossy: the whole tensor into scratch, then to out. */
int ddct_decode_stream_whole(const ddct_codec_traits *ct, const ddct_record *rec, uint64_t n, int threads, int rescale,
                             ddct_scratch *scratch, const ddct_delta_out *out, ddct_err *e);
/* A codec that needs the whole delta at once (enc takes in->delta): in->delta, or gathered
 * from in->src into a copy first; a non-finite value sets *in->nonfinite and codes nothing. */
int ddct_encode_whole(int (*enc)(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e), const ddct_lossy_in *in,
                      ddct_enc_out *out, ddct_err *e);
/* Hand a whole delta^ d (n values) to out, in slices of about 4 Mi values. */
int ddct_delta_out_array(const ddct_delta_out *out, const float *d, uint64_t n, float s, int threads, ddct_err *e);
/* Decode a patch record to out. Version 1: slice by slice (scratch unused); version 0: the whole
 * tensor at once into scratch (n floats), as before. rescale: -1 as stored, 0 off, 1 on. */
int ddct_patch_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scratch,
                             const ddct_delta_out *out, ddct_err *e);
/* Sum of |v[i]|, i < n, over 8 float lanes (lane k: the i = k mod 8 in order), the lanes then
 * added in double as ((0+1)+(2+3))+((4+5)+(6+7)): the patch codec's sum of a rebuilt patch. */
double ddct_abs_sum8(const float *v, size_t n);
double ddct_abs_sum8_ref(const float *v, size_t n);

/* The individual codecs. */
extern const ddct_codec_traits ddct_codec_same, ddct_codec_raw, ddct_codec_patch, ddct_codec_bitdelta,
    ddct_codec_svd, ddct_codec_rd;

#endif
