/*
 * codec_rd.h — the rd codec (id 5): low-rank part + transform-coded residual, rANS-coded, its
 * bits allocated by rate-distortion (rd_internal.h has the layout, docs/FORMAT.md the stream).
 * Stages, one file each: rd_layout.c (record layout, coding order, unit rebuild), rd_enc.c
 * (analysis and the final encode), rd_plan.c (rate allocation: one tensor, a whole model; the
 * codec's traits), rd_dec.c (decoder, streamed and whole).
 */
#ifndef DDCT_CODEC_RD_H
#define DDCT_CODEC_RD_H

#include "codec.h"

/* The analysis of one tensor (rd_enc.c): low-rank triplets and residual statistics, from which
 * the record's bytes and squared error at any step are estimated without encoding. sampled: of
 * a sample of the rows only (large tensors; for rate plans, not for encoding).
 * *nonfinite = 1 (and *out NULL) when the source saw a value that is not finite, or when
 * ||delta|| exceeds 2^100 (float overflow in the codec's arithmetic): such a tensor is not coded. */
typedef struct ddct_rd_model ddct_rd_model;
int ddct_rd_model_build(const ddct_lossy_in *in, int sampled, ddct_rd_model **out, int *nonfinite, ddct_err *e);
void ddct_rd_model_free(ddct_rd_model *M);
double ddct_rd_model_rms(const ddct_rd_model *M);
double ddct_rd_model_energy(const ddct_rd_model *M); /* ||delta||^2 */
/* Tiny tensors' choices from exact statistics (1, the default) or from the estimates (0, faster:
 * for a rate plan's first search). */
void ddct_rd_model_set_exact(ddct_rd_model *M, int exact);
/* Estimated record bytes and squared error at residual step `step` (quick: with one quantizer per
 * band rather than the best of all). */
/* Returns the step the estimate used: step, or coarser where so fine a step would clip values at
 * the largest symbol (then every finer step gives the same estimate). */
double ddct_rd_model_estimate(const ddct_rd_model *M, double step, int quick, double *bytes, double *dist);
/* The step an encode at `step` uses: `step`, or a coarser one where the choices made at `step`
 * would clip symbols at the largest magnitude the record holds (finer steps only add error there).
 * Estimates and encodes at `step` are those at this step. */
double ddct_rd_model_step(const ddct_rd_model *M, double step);
/* Encode at residual step `step` (> 0) with the choices the model makes there. out may be NULL
 * (nothing kept). *bytes (may be NULL): the record's size as the container writes it; *err2 (may
 * be NULL): the squared error of the rebuild as decoded with the stored rescale flag.
 * Deterministic for any in->threads. */
int ddct_rd_encode_model(const ddct_lossy_in *in, const ddct_rd_model *M, double step, ddct_enc_out *out,
                         uint64_t *bytes, double *err2, int *nonfinite, ddct_err *e);

/* Decoders (rd_dec.c): the whole tensor into out (n floats), or slice by slice to out
 * (parameter version 2; older versions through scratch). rescale: -1 as stored, 0 off, 1 on. */
int ddct_rd_decode(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out, ddct_err *e);
int ddct_rd_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scr,
                          const ddct_delta_out *out, ddct_err *e);

/* A record decoded whole (rescale off, one thread) with its parts shown to an observer (any
 * callback may be NULL): the rank and transform, each factor vector's symbols (zigzag, in order,
 * u_i then v_i), the factor stream's size, each residual unit's quantized plane (m values in
 * plane order) with its blob's bytes. For tools/rdstat.c. */
typedef struct {
    void (*layout)(void *opaque, uint64_t rank, int dct);
    void (*factor_vector)(void *opaque, const uint16_t *sym, size_t len);
    void (*factor_stream)(void *opaque, uint64_t rank, uint64_t bytes);
    void (*unit)(void *opaque, uint64_t k, const int16_t *q, size_t m, uint64_t bytes);
    void *opaque;
} ddct_rd_observer;
int ddct_rd_decode_observed(const ddct_record *rec, uint64_t n, float *out, const ddct_rd_observer *ob, ddct_err *e);

#endif
