/*
 * quant.h — bit packing, uniform quantization and rank-based bit allocation.
 *
 * Bit packing (bitpack.c): values of width 0..16 bits, LSB-first into little-endian bytes,
 * continuous across calls (no per-call byte alignment). A 2-bit value costs 2 bits.
 * Each fast kernel has a scalar _ref twin that the tests compare against.
 *
 * Uniform quantizer (quant.c): b bits over [lo, hi]: levels L = 2^b - 1,
 *   q = clamp(round((x - lo) / (hi - lo) * L), 0, L),  x^ = lo + q * (hi - lo) / L.
 * With hi == lo every q is 0 and x^ = lo. |x - x^| <= (hi - lo) / (2 L) for x in [lo, hi].
 *
 * Allocation (alloc.c): patches ranked by score (descending; ties broken by lower index
 * first), the first count[0] get bits[0], the next count[1] bits[1], ... Counts come from
 * the fractions by largest remainder: floor(frac * n), then the leftover units go to the
 * classes with the largest fractional parts (ties: earlier class first). Counts sum to n.
 * Classes keep the strategy's order (class 0 = the highest-scoring patches). With
 * "2:0.5,0:0.5" and n odd the extra patch goes to class 0. Fractions are normalised by
 * their sum first (see alloc.c), NaN scores rank last.
 *
 * Edge cases (no asserts; void functions define a result instead):
 *   - pack/put: values are masked to `bits`; bits outside 0..16 (put: 0..24) write nothing.
 *   - get/unpack: a value not wholly inside `len` reads as 0 and latches `failed`; after
 *     that every value is 0. bitpos advances by `bits` per value either way.
 *   - quantizer: exact float expressions in quant.c; b outside 1..16 or !(hi > lo) gives
 *     q = 0 and x^ = lo; NaN x gives q = 0; q > L is read as L by the dequantizer.
 *   - ddct_bitw_finish ends the stream (pads the last byte with zero bits).
 */
#ifndef DDCT_QUANT_H
#define DDCT_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "deltadct.h"
#include "common/error_private.h"

/* ------------------------------------------------------------ bit writer / reader */
typedef struct {
    uint8_t *out;      /* destination, must hold ddct_bitpack_bytes(total bits) */
    uint64_t acc;
    int nacc;          /* bits in acc */
    size_t pos;        /* bytes written */
} ddct_bitw;

void ddct_bitw_init(ddct_bitw *w, uint8_t *out);
void ddct_bitw_put(ddct_bitw *w, uint32_t v, int bits);  /* bits 0..24 */
/* Pack n values of `bits` width (0..16). */
void ddct_bitw_pack(ddct_bitw *w, const uint16_t *v, size_t n, int bits);
void ddct_bitw_pack_ref(ddct_bitw *w, const uint16_t *v, size_t n, int bits);
/* The fast kernel without its run-time-selected SIMD paths (tests compare it too). */
void ddct_bitw_pack_nosimd(ddct_bitw *w, const uint16_t *v, size_t n, int bits);
size_t ddct_bitw_finish(ddct_bitw *w); /* flush partial byte; returns bytes written */

typedef struct {
    const uint8_t *in;
    size_t len;        /* bytes available */
    uint64_t bitpos;   /* next bit to read */
    int failed;        /* set when a read goes past len (values read as 0) */
} ddct_bitr;

void ddct_bitr_init(ddct_bitr *r, const uint8_t *in, size_t len);
uint32_t ddct_bitr_get(ddct_bitr *r, int bits); /* bits 0..24 */
void ddct_bitr_unpack(ddct_bitr *r, uint16_t *v, size_t n, int bits);
void ddct_bitr_unpack_ref(ddct_bitr *r, uint16_t *v, size_t n, int bits);
void ddct_bitr_unpack_nosimd(ddct_bitr *r, uint16_t *v, size_t n, int bits);

static inline size_t ddct_bitpack_bytes(uint64_t total_bits) { return (size_t)((total_bits + 7) / 8); }

/* ------------------------------------------------------------ uniform quantizer */
void ddct_quant_uniform(const float *x, size_t n, int bits, float lo, float hi, uint16_t *q);
void ddct_dequant_uniform(const uint16_t *q, size_t n, int bits, float lo, float hi, float *x);
void ddct_quant_uniform_ref(const float *x, size_t n, int bits, float lo, float hi, uint16_t *q);
void ddct_dequant_uniform_ref(const uint16_t *q, size_t n, int bits, float lo, float hi, float *x);

/* ------------------------------------------------------------ allocation */
/* counts[s->n] from n patches (see above). */
void ddct_alloc_counts(const ddct_strategy *s, uint64_t n, uint64_t *counts);
/* widths[i] for each of n patches from scores[i]. Returns DDCT_ERR_NOMEM on failure,
 * DDCT_ERR_PARAM for a strategy with no classes / more than 16 / a width outside 0..16. */
int ddct_alloc_by_rank(const ddct_strategy *s, const float *scores, size_t n, uint8_t *widths, ddct_err *e);
int ddct_alloc_by_rank_ref(const ddct_strategy *s, const float *scores, size_t n, uint8_t *widths, ddct_err *e);

#endif
