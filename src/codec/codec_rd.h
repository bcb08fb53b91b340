/*
 * codec_rd.h — the rd codec's encoder entry points for the pipeline's rate allocation.
 *
 * The rd codec (codec_rd.c, docs/FORMAT.md "Codec 5") codes one tensor at a residual
 * quantizer step `step`; everything else (rank, transform, per-band steps, dead zones,
 * reconstruction offsets, entropy-coder contexts) is chosen inside by rate-distortion with
 * the slope lambda = RD_LAMBDA * step^2 (squared error per bit). One step per tensor, all
 * derived from one global value (weighted by ||delta|| with --rd-measure rel), is the Lagrangian
 * allocation across tensors: ddct_rd_plan finds that value by a bracketed secant search so the
 * lossy records total <= bpp bits per lossy parameter, then spends what the search left unused
 * on finer steps for single tensors.
 */
#ifndef DDCT_CODEC_RD_H
#define DDCT_CODEC_RD_H

#include "codec.h"

/* Per-tensor analysis kept across encodes at different steps (the SVD's leading triplets). */
typedef struct ddct_rd_svd ddct_rd_svd;
int ddct_rd_svd_compute(const ddct_lossy_in *in, ddct_rd_svd **out, ddct_err *e);
void ddct_rd_svd_free(ddct_rd_svd *s);

/* Encode in->delta at residual step `step` (> 0) with the analysis svd (NULL: computed here).
 * out may be NULL (nothing kept). *bytes (may be NULL): the whole record's size as the
 * container writes it; *err2 (may be NULL): sum of squared reconstruction errors as decoded
 * with the stored rescale flag. Deterministic for any in->threads. */
int ddct_rd_encode_step(const ddct_lossy_in *in, const ddct_rd_svd *svd, double step, ddct_enc_out *out,
                        uint64_t *bytes, double *err2, ddct_err *e);

/* The pipeline's pre-pass. fn(opaque, i, in) fills *in with tensor i's delta and returns 1 if
 * tensor i is coded by rd, 0 if not, < 0 on error (e set by fn). Writes steps[i] (0 for the
 * others) so that the rd records total <= p->bpp (1 when unset) bits per rd parameter when
 * each is encoded with in.rd_step = steps[i]. */
typedef int (*ddct_rd_tensor_fn)(void *opaque, size_t i, ddct_lossy_in *in, ddct_err *e);
int ddct_rd_plan(size_t count, ddct_rd_tensor_fn fn, void *opaque, const ddct_params *p, int threads,
                 double *steps, ddct_err *e);

/* What the entropy coder gains (ddct-rdstat): an rd record decoded (into out, n floats) with,
 * for the factor stream and the residual units, the symbols, their coded bits and the bits a
 * fixed-width packing of the same symbols would take (per factor vector and per coding unit:
 * the width of the largest zigzag symbol for every value, plus a 4-bit width; for the residual
 * also with a width per block of 256 values in plane order, res_block_bits). */
typedef struct {
    uint64_t fac_syms, fac_coded_bits, fac_packed_bits;
    uint64_t res_syms, res_coded_bits, res_packed_bits, res_block_bits;
    uint64_t rank;
    int dct;
} ddct_rd_stats;
int ddct_rd_record_stats(const ddct_record *rec, uint64_t n, float *out, ddct_rd_stats *st, ddct_err *e);

#endif
