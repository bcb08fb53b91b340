/*
 * rdstat.h — per rd record, the rANS-coded bits and the bits fixed-width packings of the same
 * symbols take (per factor vector and per residual unit: the width of the largest zigzag symbol
 * for every value, plus a 4-bit width; for the residual also with a width per block of 256
 * values), gathered by observing the decoder (ddct_rd_decode_observed). Used by ddct-rdstat and
 * its tests.
 */
#ifndef DDCT_RDSTAT_H
#define DDCT_RDSTAT_H

#include <stdint.h>
#include <string.h>

#include "codec/codec_rd.h"

/* Coded bits, and the bits fixed-width packings of the same symbols take (see the head). */
typedef struct {
    uint64_t fac_syms, fac_coded_bits, fac_packed_bits;
    uint64_t res_syms, res_coded_bits, res_packed_bits, res_block_bits;
    uint64_t rank;
    int dct;
} ddct_rd_stats;

/* Bits a fixed-width packing of m symbols takes: the width of the largest, plus a 4-bit width. */
static inline uint64_t packed_bits(uint64_t maxsym, uint64_t m)
{
    uint64_t w = 0;
    while (maxsym >> w) w++;
    return 4 + w * m;
}

static inline uint16_t zz(int q) { return (uint16_t)(q >= 0 ? 2 * q : -2 * q - 1); }

static inline void on_layout(void *o, uint64_t rank, int dct)
{
    ddct_rd_stats *st = o;
    st->rank = rank;
    st->dct = dct;
}

static inline void on_factor_vector(void *o, const uint16_t *sym, size_t len)
{
    ddct_rd_stats *st = o;
    uint64_t mx = 0;
    for (size_t j = 0; j < len; j++) mx = sym[j] > mx ? sym[j] : mx;
    st->fac_packed_bits += packed_bits(mx, len);
    st->fac_syms += len;
}

static inline void on_factor_stream(void *o, uint64_t rank, uint64_t bytes)
{
    (void)rank;
    ((ddct_rd_stats *)o)->fac_coded_bits = 8 * bytes;
}

static inline void on_unit(void *o, uint64_t k, const int16_t *q, size_t m, uint64_t bytes)
{
    (void)k;
    ddct_rd_stats *st = o;
    uint64_t mx = 0, bb = 0;
    for (size_t i0 = 0; i0 < m; i0 += 256) {
        uint64_t bmx = 0;
        for (size_t i = i0; i < m && i < i0 + 256; i++) bmx = zz(q[i]) > bmx ? zz(q[i]) : bmx;
        bb += packed_bits(bmx, m - i0 < 256 ? m - i0 : 256);
        mx = bmx > mx ? bmx : mx;
    }
    st->res_packed_bits += packed_bits(mx, m);
    st->res_block_bits += bb;
    st->res_syms += m;
    st->res_coded_bits += 8 * bytes;
}

static inline int rdstat_record(const ddct_record *rec, uint64_t n, float *out, ddct_rd_stats *st, ddct_err *e)
{
    memset(st, 0, sizeof *st);
    ddct_rd_observer ob = {on_layout, on_factor_vector, on_factor_stream, on_unit, st};
    return ddct_rd_decode_observed(rec, n, out, &ob, e);
}

#endif
