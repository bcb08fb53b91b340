/*
 * rans_w.c — decoders of word blobs (rans.h: DDCT_RANS_WLANES states, 16-bit renormalisation).
 *
 * A round decodes DDCT_RANS_WLANES symbols, one per state, all at once: per lane the slot
 * sl = x & (2^pb - 1), the fx entry j = off + max(sl, g) (rans.h), gathers of its freq | cum << 16
 * and its symbol, x' = freq (x >> pb) + sl - cum; then the lanes with x' < 2^16 take the next
 * words in lane order: the words at p are zero-extended to 32 bits and moved to those lanes (AVX2:
 * a permutation from a table indexed by the compare mask, eight lanes per vector; AVX-512: an
 * expand under the mask), p moves by the mask's popcount. A round runs only while its words cannot
 * pass the end of the blob (2 DDCT_RANS_WLANES bytes left); then the last bytes are copied into a
 * buffer padded with zeros and the rounds go on there, and if the last of them took more words
 * than the blob has left, the ones before it are done again and single steps take over, failing
 * where the words run out. Fewer than DDCT_RANS_WLANES symbols and the steps up to lane 0 are
 * single steps (ddct_rans_dec_get_w). Every kernel ends like the single steps: the same symbols,
 * states and position, failures included.
 *
 * The speed is set by one round's chain of dependent operations (table gather, multiply,
 * renormalisation), about 55 cycles, whatever the lanes: DDCT_RANS_WLANES states (32: two AVX-512
 * vectors or four AVX2 ones, two independent chains) decode that many symbols a round (rans.c has
 * the figures).
 */
#include <string.h>

#include "common/cpu.h"
#include "entropy/rans.h"

#if DDCT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

#define WL DDCT_RANS_WLANES

int ddct_rans_w_kernel(void);
int ddct_rans_w_kernel(void) { return (int)ddct_simd_best(); }

void ddct_rans_dec_run_w_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_w(d, ctx);
}

void ddct_rans_dec_ctx_w_ref(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_w(d, ctx[i]);
}

/* Up to nr rounds from lane 0, symbols into out[0..nr WL), contexts ctx[0..nr WL) (ctx NULL: all
 * c1), while 2 WL bytes are left; returns the rounds done. Portable; the SIMD kernels below take
 * one pb for every lane (ctx NULL, or d->fx_pb). */
static size_t rounds_scalar(ddct_rans_dec *d, const uint8_t *ctx, int c1, uint16_t *out, size_t nr)
{
    const ddct_rans_fx *fx = d->fx;
    const uint32_t *fc = d->fx_fc;
    const uint16_t *sym = d->fx_sym;
    const int pb0 = ctx ? d->fx_pb : fx[c1].pb; /* 0: each context's own */
    const uint8_t *p = d->p, *end = d->end;
    uint32_t x[WL];
    memcpy(x, d->xw, sizeof x);
    size_t r = 0;
    for (; r < nr && end - p >= 2 * WL; r++) {
        for (int l = 0; l < WL; l++) {
            const ddct_rans_fx *f = &fx[ctx ? ctx[r * WL + (size_t)l] : c1];
            const int pb = pb0 ? pb0 : f->pb;
            const uint32_t sl = x[l] & ((1u << pb) - 1u), g = f->g, j = f->off + (sl > g ? sl : g), e = fc[j];
            x[l] = (e & 0xffffu) * (x[l] >> pb) + sl - (e >> 16);
            out[r * WL + (size_t)l] = sym[j];
        }
        for (int l = 0; l < WL; l++)
            if (x[l] < DDCT_RANS_WL) {
                x[l] = x[l] << 16 | ddct_le16(p);
                p += 2;
            }
    }
    memcpy(d->xw, x, sizeof x);
    d->p = p;
    return r;
}

#if DDCT_HAVE_X86_SIMD
/* perm8[m][k]: for the lanes k of mask m (bit k: lane k takes a word), the number of lanes below k
 * in m: the index of lane k's word among the eight at p. */
#define PB_(m, b) (((m) >> (b)) & 1)
#define PERM_(m)                                                                                                       \
    {0, PB_(m, 0), PB_(m, 0) + PB_(m, 1), PB_(m, 0) + PB_(m, 1) + PB_(m, 2), PB_(m, 0) + PB_(m, 1) + PB_(m, 2) + PB_(m, 3), \
     PB_(m, 0) + PB_(m, 1) + PB_(m, 2) + PB_(m, 3) + PB_(m, 4),                                                        \
     PB_(m, 0) + PB_(m, 1) + PB_(m, 2) + PB_(m, 3) + PB_(m, 4) + PB_(m, 5),                                            \
     PB_(m, 0) + PB_(m, 1) + PB_(m, 2) + PB_(m, 3) + PB_(m, 4) + PB_(m, 5) + PB_(m, 6)}
#define PERM4_(m) PERM_(m), PERM_((m) + 1), PERM_((m) + 2), PERM_((m) + 3)
#define PERM16_(m) PERM4_(m), PERM4_((m) + 4), PERM4_((m) + 8), PERM4_((m) + 12)
#define PERM64_(m) PERM16_(m), PERM16_((m) + 16), PERM16_((m) + 32), PERM16_((m) + 48)
static const uint32_t perm8[256][8] __attribute__((aligned(32))) = {PERM64_(0), PERM64_(64), PERM64_(128),
                                                                     PERM64_(192)};
#undef PB_
#undef PERM_
#undef PERM4_
#undef PERM16_
#undef PERM64_

#define WV (WL / 8) /* vectors of eight lanes */

__attribute__((target("avx2,popcnt"))) static size_t rounds_avx2(ddct_rans_dec *d, const uint8_t *ctx, int c1,
                                                                 uint16_t *out, size_t nr)
{
    const int *fc = (const int *)d->fx_fc, *sy = (const int *)d->fx_sym; /* sy: two symbols per int, low first */
    const int *fxo = (const int *)&d->fx[0].off, *fxg = (const int *)&d->fx[0].g; /* stride 8 bytes */
    const int pb = ctx ? d->fx_pb : d->fx[c1].pb;
    const __m128i sh = _mm_cvtsi32_si128(pb);
    const __m256i mask = _mm256_set1_epi32((int)((1u << pb) - 1u)), lo16 = _mm256_set1_epi32(0xffff),
                  zero = _mm256_setzero_si256();
    __m256i off = _mm256_set1_epi32((int)d->fx[c1].off), g = _mm256_set1_epi32(d->fx[c1].g);
    /* up to eight contexts: their off and g in registers, picked by a permutation */
    const int few = ctx && d->nwx <= 8;
    __m256i offt = off, gt = g;
    if (few) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32(d->nwx), iota);
        offt = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), fxo, iota, in, 8);
        gt = _mm256_and_si256(_mm256_mask_i32gather_epi32(_mm256_setzero_si256(), fxg, iota, in, 8), lo16);
    }
    __m256i x[WV];
    for (int v = 0; v < WV; v++) x[v] = _mm256_loadu_si256((const __m256i *)(d->xw + 8 * v));
    const uint8_t *p = d->p, *end = d->end;
    size_t r = 0;
    for (; r < nr && end - p >= 2 * WL; r++) {
        __m256i s[WV];
        for (int v = 0; v < WV; v++) {
            if (ctx) {
                const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ctx + r * WL + 8 * v)));
                if (few) {
                    off = _mm256_permutevar8x32_epi32(offt, c);
                    g = _mm256_permutevar8x32_epi32(gt, c);
                } else {
                    off = _mm256_i32gather_epi32(fxo, c, 8);
                    g = _mm256_and_si256(_mm256_i32gather_epi32(fxg, c, 8), lo16);
                }
            }
            const __m256i sl = _mm256_and_si256(x[v], mask);
            const __m256i j = _mm256_add_epi32(off, _mm256_max_epu32(sl, g));
            const __m256i e = _mm256_i32gather_epi32(fc, j, 4);
            s[v] = _mm256_i32gather_epi32(sy, j, 2);
            x[v] = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, lo16), _mm256_srl_epi32(x[v], sh)),
                                    _mm256_sub_epi32(sl, _mm256_srli_epi32(e, 16)));
        }
        for (int v = 0; v < WV; v++) {
            const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(x[v], 16), zero);
            const unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(need));
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
            w = _mm256_permutevar8x32_epi32(w, _mm256_load_si256((const __m256i *)perm8[m]));
            x[v] = _mm256_blendv_epi8(x[v], _mm256_or_si256(_mm256_slli_epi32(x[v], 16), w), need);
            p += 2 * _mm_popcnt_u32(m);
        }
#if WV >= 2
        for (int v = 0; v < WV; v += 2) {
            const __m256i o = _mm256_packus_epi32(_mm256_and_si256(s[v], lo16), _mm256_and_si256(s[v + 1], lo16));
            _mm256_storeu_si256((__m256i *)(out + r * WL + 8 * v), _mm256_permute4x64_epi64(o, 0xD8));
        }
#else
        const __m256i o = _mm256_packus_epi32(_mm256_and_si256(s[0], lo16), zero);
        _mm_storeu_si128((__m128i *)(out + r * WL), _mm256_castsi256_si128(_mm256_permute4x64_epi64(o, 0x08)));
#endif
    }
    for (int v = 0; v < WV; v++) _mm256_storeu_si256((__m256i *)(d->xw + 8 * v), x[v]);
    d->p = p;
    return r;
}

#if WL % 16 == 0
#define WZ (WL / 16) /* vectors of sixteen lanes */
__attribute__((target("avx512f,popcnt"))) static size_t rounds_avx512(ddct_rans_dec *d, const uint8_t *ctx, int c1,
                                                                      uint16_t *out, size_t nr)
{
    const int *fc = (const int *)d->fx_fc, *sy = (const int *)d->fx_sym;
    const int *fxo = (const int *)&d->fx[0].off, *fxg = (const int *)&d->fx[0].g;
    const int pb = ctx ? d->fx_pb : d->fx[c1].pb;
    const __m128i sh = _mm_cvtsi32_si128(pb);
    const __m512i mask = _mm512_set1_epi32((int)((1u << pb) - 1u)), lo16 = _mm512_set1_epi32(0xffff),
                  L = _mm512_set1_epi32((int)DDCT_RANS_WL);
    __m512i off = _mm512_set1_epi32((int)d->fx[c1].off), g = _mm512_set1_epi32(d->fx[c1].g);
    /* up to sixteen contexts: their off and g in registers, picked by a permutation */
    const int few = ctx && d->nwx <= 16;
    __m512i offt = off, gt = g;
    if (few) {
        const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __mmask16 in = (__mmask16)((1u << d->nwx) - 1u);
        offt = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), in, iota, fxo, 8);
        gt = _mm512_and_si512(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), in, iota, fxg, 8), lo16);
    }
    __m512i x[WZ];
    for (int z = 0; z < WZ; z++) x[z] = _mm512_loadu_si512(d->xw + 16 * z);
    const uint8_t *p = d->p, *end = d->end;
    size_t r = 0;
    for (; r < nr && end - p >= 2 * WL; r++) {
        __m512i s[WZ];
        for (int z = 0; z < WZ; z++) {
            if (ctx) {
                const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ctx + r * WL + 16 * z)));
                if (few) {
                    off = _mm512_permutexvar_epi32(c, offt);
                    g = _mm512_permutexvar_epi32(c, gt);
                } else {
                    off = _mm512_i32gather_epi32(c, fxo, 8);
                    g = _mm512_and_si512(_mm512_i32gather_epi32(c, fxg, 8), lo16);
                }
            }
            const __m512i sl = _mm512_and_si512(x[z], mask);
            const __m512i j = _mm512_add_epi32(off, _mm512_max_epu32(sl, g));
            const __m512i e = _mm512_i32gather_epi32(j, fc, 4);
            s[z] = _mm512_i32gather_epi32(j, sy, 2);
            x[z] = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(e, lo16), _mm512_srl_epi32(x[z], sh)),
                                    _mm512_sub_epi32(sl, _mm512_srli_epi32(e, 16)));
        }
        for (int z = 0; z < WZ; z++) {
            const __mmask16 need = _mm512_cmplt_epu32_mask(x[z], L);
            const __m512i w =
                _mm512_maskz_expand_epi32(need, _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)));
            x[z] = _mm512_mask_or_epi32(x[z], need, _mm512_slli_epi32(x[z], 16), w);
            p += 2 * _mm_popcnt_u32(need);
            _mm256_storeu_si256((__m256i *)(out + r * WL + 16 * z), _mm512_cvtepi32_epi16(s[z]));
        }
    }
    for (int z = 0; z < WZ; z++) _mm512_storeu_si512(d->xw + 16 * z, x[z]);
    d->p = p;
    return r;
}
#endif
#endif

static size_t rounds(ddct_rans_dec *d, const uint8_t *ctx, int c1, uint16_t *out, size_t nr)
{
#if DDCT_HAVE_X86_SIMD
    if (!ctx || d->fx_pb) {
#if WL % 16 == 0
        if (d->wk >= DDCT_SIMD_AVX512) return rounds_avx512(d, ctx, c1, out, nr);
#endif
        if (d->wk >= DDCT_SIMD_AVX2) return rounds_avx2(d, ctx, c1, out, nr);
    }
#endif
    return rounds_scalar(d, ctx, c1, out, nr);
}

/* n symbols from the decoder's lane on (checked: ctx[0..n) good, or c1 a good general context).
 * On failure: what n calls of ddct_rans_dec_get_w leave (states, position, zeros from the failing
 * symbol on). */
static void w_decode(ddct_rans_dec *d, const uint8_t *ctx, int c1, uint16_t *out, size_t n)
{
    size_t i = 0;
    for (; i < n && d->lane; i++) {
        out[i] = ddct_rans_dec_get_w(d, ctx ? ctx[i] : c1);
        if (d->failed) goto fail;
    }
    size_t nr = (n - i) / WL;
    if (nr) {
        size_t k = rounds(d, ctx ? ctx + i : NULL, c1, out + i, nr);
        i += k * WL;
        nr -= k;
    }
    if (nr) {
        /* under 2 WL bytes left: the rounds go on in a copy padded with zeros; if the last one
         * took more words than the blob holds, the others are done again and single steps fail
         * where they run out */
        uint8_t buf[4 * WL];
        uint32_t x0[WL];
        const uint8_t *p0 = d->p, *end0 = d->end;
        const size_t avail = (size_t)(end0 - p0); /* < 2 WL */
        memset(buf, 0, sizeof buf);
        memcpy(buf, p0, avail);
        memcpy(x0, d->xw, sizeof x0);
        d->p = buf;
        d->end = buf + avail + 2 * WL;
        size_t k = rounds(d, ctx ? ctx + i : NULL, c1, out + i, nr);
        if ((size_t)(d->p - buf) > avail) {
            memcpy(d->xw, x0, sizeof x0);
            d->p = buf;
            k = rounds(d, ctx ? ctx + i : NULL, c1, out + i, k - 1);
        }
        d->p = p0 + (d->p - buf);
        d->end = end0;
        i += k * WL;
    }
    for (; i < n; i++) {
        out[i] = ddct_rans_dec_get_w(d, ctx ? ctx[i] : c1);
        if (d->failed) goto fail;
    }
    return;
fail:
    memset(out + i, 0, (n - i) * sizeof *out);
}

void ddct_rans_dec_run_w(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (!n) return;
    if (d->failed || (unsigned)ctx >= (unsigned)d->nwx || !d->fx[ctx].pb) {
        d->failed = 1;
        memset(out, 0, n * sizeof *out);
        return;
    }
    const ddct_rans_fx *f = &d->fx[ctx];
    if (f->g == (1u << f->pb) - 1u) { /* single symbol: the states stay */
        const uint16_t s = d->fx_sym[(uint32_t)(f->off + f->g)];
        for (size_t i = 0; i < n; i++) out[i] = s;
        d->lane = (int)(((size_t)d->lane + n) & (WL - 1));
        return;
    }
    w_decode(d, NULL, ctx, out, n);
}

void ddct_rans_dec_ctx_w(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n)
{
    if (!n) return;
    int ok = !d->failed && d->nwx > 0 && d->ctx_bad;
    if (ok) {
        uint8_t m = 0;
        for (size_t i = 0; i < n; i++) m = ctx[i] > m ? ctx[i] : m; /* vectorised */
        if (m >= d->fx_empty0) {
            unsigned bad = 0;
            for (size_t i = 0; i < n; i++) bad |= d->ctx_bad[ctx[i]];
            ok = !bad;
        }
    }
    if (!ok) {
        d->failed = 1;
        memset(out, 0, n * sizeof *out);
        return;
    }
    w_decode(d, ctx, 0, out, n);
}
