/*
 * rd_internal.h — what the rd codec's stages share (rd_enc.c, rd_dec.c, rd_plan.c, rd_stats.c):
 * the record layout (docs/FORMAT.md "Codec 5"), its parameters, the residual's coding order and
 * contexts, the dequantizer, and the per-unit rebuild both the encoder and the decoder run.
 *
 * A tensor is seen as rows x cols (its 2-D view), delta ~ L^ + R^:
 *   L^ = sum_i a_i b_i^T, a_i ~ u_i sqrt(s_i), b_i ~ v_i sqrt(s_i), each factor element quantized
 *        with step D / sqrt(s_i) (bf16), so that its error costs what a residual element at step D
 *        costs (equal slopes);
 *   R^ = the residual, as is ("none") or by p x p orthonormal DCT tiles, each coefficient in one
 *        of nb bands (DCT: by u + v, 6 bands) with its own step D_b and dead-zone reconstruction
 *        offsets theta (|q| = 1 and |q| >= 2).
 * Residual symbols (zigzag of q) are coded in units of whole tile rows (>= RD_UNIT values,
 * independent of the thread count), each unit its own rANS blob, so units code and decode in
 * parallel and the rebuild goes unit by unit (memory: a few units per thread).
 *
 * Parameter versions: 0 (one rANS state everywhere), 1 (four-state factor stream when it has
 * >= RD_X4_MIN symbols), 2 (also four-state residual units of >= RD_X4_MIN symbols, and, with the
 * rescale flag, the rescale factor stored, so a decoder streams the rebuild unit by unit), 3
 * (residual units of >= RD_X4_MIN symbols may be word blobs: 32 states decoded in SIMD lanes,
 * entropy/rans.h; the encoder writes them for tensors of >= RD_WORD_MIN values). Versions 0 to 2
 * are still decoded; the encoder writes version 3.
 */
#ifndef DDCT_RD_INTERNAL_H
#define DDCT_RD_INTERNAL_H

#include <stdint.h>
#include <stdlib.h>

#include "codec.h"
#include "common/dtype.h"
#include "transform/transform.h"

#define RD_VERSION 3
#define RD_P 16
#define RD_NB 6          /* DCT bands */
#define RD_QMAX 2047     /* |q| limit: zigzag symbols < 4095 */
#define RD_UNIT 65536    /* residual values per coding unit (at least) */
#define RD_NCLS 4        /* neighbour classes */
#define RD_FCTX 16       /* factor vector classes */
#define RD_RMAX 128      /* largest rank considered */
#define RD_LAMBDA 0.1155 /* lambda = RD_LAMBDA * step^2: the high-rate slope (ln 2 / 6) */
#define RD_FRHO 0.48f    /* factor rounding offset (0.5 = round; see rd_enc.c) */
#define RD_X4_MIN 16384  /* streams of at least this many symbols use four rANS states */
/* Version 3 units of tensors of at least this many values are word blobs: 32 states decoded in
 * SIMD lanes, about three times as fast, for 112 bytes more a unit (0.4 % at 1 bit a value) and
 * 12-bit probabilities; smaller tensors, whose decoding takes no time worth saving, keep four
 * states. */
#define RD_WORD_MIN ((uint64_t)1 << 22)

typedef struct {
    int ver, rescale, dct, p, cmode, prob_bits, nb;
    uint64_t n, rows, cols, r, rows_pad, cols_pad, unit_rows, nunits;
    float mean_abs; /* mean |delta| of the input */
    float scale;    /* version 2 with the rescale flag: the factor (mean_abs / mean |delta^|), 1 if undefined */
    int has_scale;  /* scale is stored (version 2, rescale flag set) */
    uint16_t step_h[RD_NB];
    uint8_t th1[RD_NB], th2[RD_NB];
} rd_layout;

static inline uint64_t rd_min(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t rd_cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
static inline int rd_threads(int t) { return t > 0 ? t : 1; }
static inline int rd_band_of_s(int s) { return s == 0 ? 0 : s <= 2 ? 1 : s <= 5 ? 2 : s <= 10 ? 3 : s <= 18 ? 4 : 5; }
static inline int rd_nbr_class(int a) { return a == 0 ? 0 : a == 1 ? 1 : a <= 3 ? 2 : 3; }
static inline uint16_t rd_zigzag(int q) { return (uint16_t)(q >= 0 ? 2 * q : -2 * q - 1); }
static inline int rd_unzigzag(uint16_t s) { return (int)(s >> 1) ^ -(int)(s & 1); } /* branch-free */
static inline int rd_bf16_ok(uint16_t h) { return !(h & 0x8000) && (h & 0x7f80) != 0x7f80; }
static inline int rd_ctx_count(const rd_layout *L)
{
    return ((L->cmode & 1) ? L->nb : 1) * ((L->cmode & 2) ? RD_NCLS : 1);
}

/* Dequantized coefficient: (|q| - theta) * step, theta per |q| = 1 and |q| >= 2. */
static inline float rd_recon(int q, float st, float t1, float t2)
{
    if (q == 0) return 0.0f;
    int a = q < 0 ? -q : q;
    float m = ((float)a - (a == 1 ? t1 : t2)) * st;
    return q < 0 ? -m : m;
}

/* Derived sizes from n, cols, dct, p (cols in 1..n, p in 2..128 checked by the caller). */
void ddct_rd_layout_derive(rd_layout *L);
/* The band of coefficient (u, v) of a p x p tile, p * p entries. */
void ddct_rd_bandmap(int p, uint8_t *bm);
/* The 2-D view of an n-element tensor (as the svd codec's), rows x cols. */
void ddct_rd_view(int ndim, const uint64_t *shape, uint64_t n, uint64_t *rows, uint64_t *cols);
/* Ranks whose factors do not outnumber the values (the decoder's bound), at most RD_RMAX. */
uint64_t ddct_rd_rank_limit(uint64_t rows, uint64_t cols);

void ddct_rd_write_params(const rd_layout *L, ddct_buf *b);
int ddct_rd_parse_params(const ddct_record *rec, uint64_t n, rd_layout *L, ddct_err *e);

/* The coding order of unit k's sites (plane positions relative to the unit's first row) with
 * their contexts under L's context mode, from the quantized unit plane q: sym[i], ctx[i] for
 * i < the returned count (unit_rows * cols_pad at most). */
size_t ddct_rd_unit_symbols(const rd_layout *L, uint64_t k, const uint8_t *bandmap, const int16_t *q, uint16_t *sym,
                            uint8_t *ctx);

/* The rebuild of unit k (its rows [k * unit_rows, ...) of the view, clipped to n values) into
 * out[0..): the low-rank part (uc: rows x r, vc: cols x r, vectors contiguous; r may be 0; or
 * those rows already computed in lr, when not NULL) plus the dequantized residual q (the unit's
 * plane, unit_rows x cols_pad). out holds unit_rows * cols floats; tile: p * p +
 * ddct_xform_scratch_floats(xf) floats. Returns the number of values written (the unit's share
 * of the n values). */
uint64_t ddct_rd_unit_rebuild(const rd_layout *L, const ddct_xform *xf, uint64_t k, const int16_t *q,
                              const uint8_t *bandmap, const float *uc, const float *vc, const float *lr, float *out,
                              float *tile);

/* Rows [r0, r0 + nr) of the row-major product U V^T into out (nr x cols), uc rows x r and vc cols x r
 * column-major (vectors contiguous); r = 0 writes zeros (rd_kernels.c; _ref: the plain loops, for
 * ranks up to 16). */
void ddct_rd_lowrank_rows(const float *uc, const float *vc, uint64_t rows, uint64_t cols, uint64_t r, uint64_t r0,
                          uint64_t nr, float *out);
void ddct_rd_lowrank_rows_ref(const float *uc, const float *vc, uint64_t rows, uint64_t cols, uint64_t r, uint64_t r0,
                              uint64_t nr, float *out);

/* rd_kernels.c: a plain residual quantized, rebuilt and summed (see there); sums[4] are added to. */
typedef struct {
    float inv, rho;    /* 1 / step, rounding offset */
    float st, a1, t2s; /* step, (1 - theta1) step, theta2 step */
} ddct_rd_qparams;
void ddct_rd_quant_rebuild(const float *x, const float *l, size_t n, const ddct_rd_qparams *p, int16_t *q,
                           double *sums);
void ddct_rd_quant_rebuild_ref(const float *x, const float *l, size_t n, const ddct_rd_qparams *p, int16_t *q,
                               double *sums);
/* out[i] += the dequantized q[i] (the decoder's half of ddct_rd_quant_rebuild). */
void ddct_rd_dequant_add(const int16_t *q, size_t n, const ddct_rd_qparams *p, float *out);
void ddct_rd_dequant_add_ref(const int16_t *q, size_t n, const ddct_rd_qparams *p, float *out);

#endif
