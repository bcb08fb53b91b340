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

typedef struct {
    const float *delta;
    int ndim;
    const uint64_t *shape;
    uint64_t nelem;
    const ddct_params *params;
    int threads;
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
} ddct_lossless_in;

typedef struct {
    const char *name;
    uint8_t id;
    int lossy;
    int (*encode_lossy)(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e);
    /* rescale: -1 as stored, 0 off, 1 on. out: nelem floats. */
    int (*decode_lossy)(const ddct_record *rec, uint64_t nelem, int threads, int rescale, float *out, ddct_err *e);
    int (*encode_lossless)(const ddct_lossless_in *in, ddct_enc_out *out, ddct_err *e);
    /* base may be NULL when the record has no base; out: nbytes. */
    int (*decode_lossless)(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                           ddct_err *e);
} ddct_codec_traits;

/* NULL for an unknown id. */
const ddct_codec_traits *ddct_codec_get(unsigned id);

void ddct_enc_out_init(ddct_enc_out *o);
void ddct_enc_out_free(ddct_enc_out *o);
int ddct_enc_out_check(const ddct_enc_out *o, ddct_err *e);

/* Shared helpers for lossy codecs (codec_common.c). */
/* mean |x| over n values, summed in fixed blocks so the result does not depend on threads. */
double ddct_mean_abs(const float *x, uint64_t n, int threads);
/* Scale x so mean |x| == target (no-op when either is 0 or not finite). */
void ddct_rescale_to(float *x, uint64_t n, double target, int threads);
/* bf16 with directed rounding (for ranges that must contain their values). */
uint16_t ddct_bf16_down(float f);
uint16_t ddct_bf16_up(float f);
/* 2-D view of an n-element tensor as rows x cols for patch size p (see docs/FORMAT.md). */
uint64_t ddct_view_cols(int ndim, const uint64_t *shape, uint64_t nelem, int p);

/* The individual codecs. */
extern const ddct_codec_traits ddct_codec_same, ddct_codec_raw, ddct_codec_patch, ddct_codec_bitdelta,
    ddct_codec_svd;

#endif
