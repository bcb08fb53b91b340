/*
 * rans.c — static rANS coder, see rans.h for the format.
 *
 * Encoder step (symbol with frequency f, start c, precision 2^pb), state x in [L, 256 L),
 * L = 2^23:
 *     while (x >= ((L >> pb) << 8) * f) emit x & 0xff, x >>= 8;
 *     x = (x / f) * 2^pb + x % f + c
 * Decoder step: s = sym(x mod 2^pb); x = f (x >> pb) + (x mod 2^pb) - c;
 *     while (x < L) x = (x << 8) | next byte.
 * Symbols are encoded last to first so they decode first to last. A single-symbol table
 * (f = 2^pb) leaves x unchanged and emits nothing.
 *
 * Word blobs (rans.h): L = 2^16, x in [L, 2^32), one 16-bit word instead of up to two bytes:
 *     if (x >= ((L >> pb) << 16) * f) emit x & 0xffff, x >>= 16;   (then the same step)
 *     decoder: the same step, then if (x < L) x = (x << 16) | next word.
 * Symbol i on state i mod DDCT_RANS_WLANES; the decoders are in rans_w.c. Choices, measured with
 * ddct-rans-bench on residual-like units of 64 Ki symbols in 6 band contexts (x86-64, AVX-512):
 *   - 32 states: a round of 16 symbols is one chain of dependent steps (gather of the table
 *     entries, multiply, renormalisation), so the lanes decoded at once set the speed: 8 states
 *     decode at 2.8-3.2 ns/symbol (AVX2), 16 at 1.3 (AVX-512) to 1.5 (AVX2), 32 at 0.75-0.85
 *     (AVX-512, two chains) to 0.9-1.1 (AVX2). Each state costs about 3 bytes a blob (4 stored
 *     bytes, about one of them information): against 16 states, 8 save 24 bytes a unit (1.4 % at
 *     0.2 bits/symbol, 0.3 % at 1), 32 cost 49 more (3.0 % at 0.2, 0.6 % at 1, 0.3 % at 2), for a
 *     rd decoder that takes 15-25 % less CPU (0.5 B Llama-shaped pair, 0.3 % more error at the
 *     same bytes).
 *   - 12 bits of precision: with L / M = 2 at M = 2^15 the coding step loses little (a word blob
 *     at 15 bits is 0.46 % larger than a four-state one at 15 bits at 1 bit/symbol, at 12 bits
 *     0.44 % larger than one at 12), but the decoder's tables take 2^pb entries per context: a
 *     6-context unit's initialisation costs 7 us at 12 bits, 21 at 13, 43 at 15 (0.1, 0.3 and
 *     0.65 ns per symbol of the unit), the larger tables decode up to 10 % slower, and their bytes
 *     make the 12-bit blobs the smallest of a 64 Ki unit (0.2 to 2 bits/symbol: word blobs at
 *     13, 14, 15 bits are up to 0.2 %, 0.7 %, 1.9 % larger). Only on much longer blobs do
 *     finer frequencies pay (one 4 Mi-symbol blob: 0.3 % larger at 12 than at 15).
 *     ddct_rans_encode_w therefore codes at min(prob_bits, 12).
 *
 * Frequency normalisation (integer only, deterministic):
 *   1. counts are scaled down (c >> k, at least 1) until the largest is <= 2^40, so every
 *      product below fits in 64 bits;
 *   2. symbols whose proportional share c * Mrem / Crem is below 1 get frequency 1 and
 *      leave the pool (Mrem, Crem exclude them); repeat until no more leave;
 *   3. the others get floor(c * Mrem / Crem) and the leftover units go to the largest
 *      remainders (c * Mrem mod Crem), ties to the lower symbol.
 */
#include "entropy/rans.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RANS_L DDCT_RANS_L

/* ------------------------------------------------------------ tables */
typedef struct {
    uint64_t rem;
    int sym;
} rem_item;

static int rem_cmp(const void *a, const void *b)
{
    const rem_item *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return (x->sym > y->sym) - (x->sym < y->sym);
}

static void table_finish(ddct_rans_table *t)
{
    uint32_t c = 0;
    for (int s = 0; s < t->nsym; s++) {
        t->cum[s] = (uint16_t)c;
        c += t->freq[s];
    }
    t->cum[t->nsym] = (uint16_t)c;
}

int ddct_rans_table_build(ddct_rans_table *t, const uint64_t *counts, int nsym, int prob_bits, ddct_err *e)
{
    if (prob_bits == 0) prob_bits = DDCT_RANS_PROB_BITS_DEFAULT;
    RETURN_ERROR_IF(nsym < 0 || nsym > DDCT_RANS_MAX_SYMBOLS, e, DDCT_ERR_PARAM, "rANS: alphabet of %d symbols", nsym);
    RETURN_ERROR_IF(prob_bits < DDCT_RANS_PROB_BITS_MIN || prob_bits > DDCT_RANS_PROB_BITS_MAX, e, DDCT_ERR_PARAM,
                    "rANS: probability precision %d bits (12..15)", prob_bits);
    RETURN_ERROR_IF(nsym > 0 && !counts, e, DDCT_ERR_PARAM, "rANS: NULL counts");
    const uint32_t M = 1u << prob_bits;
    memset(t, 0, sizeof *t);
    t->prob_bits = prob_bits;
    int A = nsym, present = 0;
    while (A > 0 && counts[A - 1] == 0) A--;
    uint64_t cmax = 0;
    for (int s = 0; s < A; s++) {
        if (counts[s]) present++;
        if (counts[s] > cmax) cmax = counts[s];
    }
    t->nsym = A;
    if (present == 0) {
        t->kind = DDCT_RANS_EMPTY;
        return DDCT_OK;
    }
    if (present == 1) {
        t->kind = DDCT_RANS_SINGLE;
        t->freq[A - 1] = (uint16_t)M; /* M <= 2^15 fits */
        table_finish(t);
        return DDCT_OK;
    }
    t->kind = DDCT_RANS_GENERAL;
    /* 1. scale counts to <= 2^40 */
    int k = 0;
    while ((cmax >> k) > ((uint64_t)1 << 40)) k++;
    /* scratch on the heap (about 100 KiB at 4096 symbols: too much for a thread's stack) */
    uint64_t *c = malloc((size_t)A * sizeof *c);
    uint8_t *out_of_pool = malloc((size_t)A);
    rem_item *items = malloc((size_t)A * sizeof *items);
    if (!c || !out_of_pool || !items) {
        free(c);
        free(out_of_pool);
        free(items);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "rANS: out of memory (table build)");
    }
    uint64_t Crem = 0;
    for (int s = 0; s < A; s++) {
        c[s] = counts[s] ? ((counts[s] >> k) ? (counts[s] >> k) : 1) : 0;
        Crem += c[s];
        out_of_pool[s] = 0;
    }
    /* 2. symbols below one unit get 1 and leave the pool */
    uint64_t Mrem = M;
    for (;;) {
        int moved = 0;
        for (int s = 0; s < A; s++)
            if (c[s] && !out_of_pool[s] && c[s] * Mrem < Crem) {
                out_of_pool[s] = 1;
                t->freq[s] = 1;
                moved = 1;
            }
        if (!moved) break;
        Mrem = M;
        Crem = 0;
        for (int s = 0; s < A; s++) {
            if (!c[s]) continue;
            if (out_of_pool[s]) Mrem--;
            else Crem += c[s];
        }
    }
    /* 3. floor shares + largest remainder (the most frequent symbol never leaves the pool,
     * since present <= M, so Crem > 0) */
    int ni = 0;
    uint64_t used = 0;
    for (int s = 0; s < A; s++) {
        if (!c[s] || out_of_pool[s]) continue;
        uint64_t num = c[s] * Mrem;
        uint64_t f = num / Crem;
        t->freq[s] = (uint16_t)f;
        used += f;
        items[ni].rem = num % Crem;
        items[ni].sym = s;
        ni++;
    }
    uint64_t left = Mrem - used; /* < ni */
    qsort(items, (size_t)ni, sizeof *items, rem_cmp);
    for (uint64_t i = 0; i < left && i < (uint64_t)ni; i++) t->freq[items[i].sym]++;
    free(c);
    free(out_of_pool);
    free(items);
    table_finish(t);
    if (t->cum[A] != M) /* cannot happen; keeps a bug from producing a broken stream */
        return ddct_seterr(e, DDCT_ERR_INTERNAL, "rANS: frequencies sum to %u, not %u", t->cum[A], M);
    return DDCT_OK;
}

void ddct_rans_table_write(const ddct_rans_table *t, ddct_buf *b)
{
    uint8_t head = (uint8_t)(t->kind | ((t->prob_bits - DDCT_RANS_PROB_BITS_MIN) << 2));
    if (t->kind == DDCT_RANS_EMPTY) head = 0;
    ddct_buf_u8(b, head);
    if (t->kind == DDCT_RANS_SINGLE) {
        ddct_buf_varint(b, (uint64_t)(t->nsym - 1));
    } else if (t->kind == DDCT_RANS_GENERAL) {
        ddct_buf_varint(b, (uint64_t)(t->nsym - 2));
        int s = 0;
        while (s < t->nsym - 1) {
            if (t->freq[s]) {
                ddct_buf_varint(b, t->freq[s]);
                s++;
                continue;
            }
            int z = 0;
            while (s + 1 + z < t->nsym - 1 && t->freq[s + 1 + z] == 0) z++;
            ddct_buf_varint(b, 0);
            ddct_buf_varint(b, (uint64_t)z);
            s += 1 + z;
        }
    }
}

int ddct_rans_table_read(ddct_rans_table *t, ddct_rd *r, ddct_err *e)
{
    memset(t, 0, sizeof *t);
    uint8_t head = ddct_rd_u8(r);
    int kind = head & 3, pb = DDCT_RANS_PROB_BITS_MIN + ((head >> 2) & 3);
    if (r->failed || (head >> 4) || kind == 3 || (kind == DDCT_RANS_EMPTY && head != 0)) goto bad;
    const uint32_t M = 1u << pb;
    t->kind = kind;
    t->prob_bits = pb;
    if (kind == DDCT_RANS_EMPTY) return DDCT_OK;
    if (kind == DDCT_RANS_SINGLE) {
        uint64_t s = ddct_rd_varint(r);
        if (r->failed || s >= DDCT_RANS_MAX_SYMBOLS) goto bad;
        t->nsym = (int)s + 1;
        t->freq[s] = (uint16_t)M;
        table_finish(t);
        return DDCT_OK;
    }
    uint64_t a = ddct_rd_varint(r);
    if (r->failed || a > DDCT_RANS_MAX_SYMBOLS - 2) goto bad;
    t->nsym = (int)a + 2;
    uint32_t sum = 0;
    int s = 0;
    while (s < t->nsym - 1) {
        uint64_t f = ddct_rd_varint(r);
        if (r->failed) goto bad;
        if (f == 0) {
            uint64_t z = ddct_rd_varint(r);
            if (r->failed || z > (uint64_t)(t->nsym - 2 - s)) goto bad;
            s += 1 + (int)z; /* freq[] already 0 */
            continue;
        }
        if (f >= M - sum) goto bad; /* keeps sum <= M - 1, so the last symbol gets >= 1 */
        t->freq[s++] = (uint16_t)f;
        sum += (uint32_t)f;
    }
    t->freq[t->nsym - 1] = (uint16_t)(M - sum);
    table_finish(t);
    return DDCT_OK;
bad:
    r->failed = 1;
    return ddct_seterr(e, DDCT_ERR_FORMAT, "rANS: malformed frequency table");
}

double ddct_rans_table_cost_bits(const ddct_rans_table *t, const uint64_t *counts, int nsym)
{
    double bits = 0;
    const double M = (double)(1u << t->prob_bits);
    for (int s = 0; s < nsym; s++) {
        if (!counts[s]) continue;
        if (s >= t->nsym || t->freq[s] == 0) return -1;
        bits += (double)counts[s] * -log2((double)t->freq[s] / M);
    }
    return bits;
}

/* ------------------------------------------------------------ encoder */
/* A symbol as the fast encoder codes it (ryg_rans' RansEncSymbol): emit bytes while x >= x_max,
 * then x' = x + bias + q * cmpl with q = floor(x / freq) = (x * rcp / 2^32) >> shift, which is
 * the step x' = (x / freq) 2^pb + x % freq + start without a division. The reciprocal (Alverson)
 * is exact for x < 2^31: rcp = ceil(2^(31 + s) / freq), s = ceil(log2 freq), has the error
 * e = rcp freq - 2^(31 + s) < freq <= 2^s, so x rcp / 2^(31 + s) = x / freq + x e / (freq 2^(31 + s))
 * and the last term is below 1 / freq. freq = 1 takes rcp = 2^32 - 1 (q = x - 1) and the bias
 * start + 2^pb - 1. A single-symbol table (freq = 2^pb) is the identity: x_max = 2^31, cmpl = 0. */
typedef struct {
    uint32_t x_max, rcp, bias;
    uint16_t cmpl, shift;
} enc_sym;

static void enc_sym_init(enc_sym *q, uint32_t start, uint32_t freq, int pb)
{
    q->x_max = ((RANS_L >> pb) << 8) * freq;
    q->cmpl = (uint16_t)((1u << pb) - freq);
    if (freq < 2) {
        q->rcp = ~0u;
        q->shift = 0;
        q->bias = start + (1u << pb) - 1u;
    } else {
        uint32_t sh = 0;
        while (freq > (1u << sh)) sh++;
        q->rcp = (uint32_t)((((uint64_t)1 << (sh + 31)) + freq - 1) / freq);
        q->shift = (uint16_t)(sh - 1);
        q->bias = start;
    }
}

/* One symbol: at most two bytes out (x < 2^31, x_max >= 2^16), written without a branch: both
 * bytes are stored (the second may be overwritten later; p - 2 stays inside the output, above
 * the 4 lanes bytes of the states), p moves by the count. */
#define ENC_PUT(x, q, p)                                                                                               \
    do {                                                                                                               \
        const uint32_t k_ = ((x) >= (q)->x_max) + ((uint64_t)(x) >= (uint64_t)(q)->x_max << 8);                        \
        (p)[-1] = (uint8_t)(x);                                                                                        \
        (p)[-2] = (uint8_t)((x) >> 8);                                                                                 \
        (p) -= k_;                                                                                                     \
        (x) >>= 8 * k_;                                                                                                \
        const uint32_t d_ = (uint32_t)(((uint64_t)(x) * (q)->rcp) >> 32) >> (q)->shift;                               \
        (x) = (x) + (q)->bias + d_ * (q)->cmpl;                                                                        \
    } while (0)

/* The coding pass of the fast encoder: sym[0..n) backwards from p; returns the new p. ctx NULL:
 * context 0 (read as ctx[i & 0] of a zero byte). es: [nctx][A]. */
static uint8_t *encode_pass(const uint16_t *sym, const uint8_t *ctx, size_t n, size_t A, const enc_sym *es,
                            int lanes, uint8_t *p)
{
    static const uint8_t zero = 0;
    const uint8_t *cp = ctx ? ctx : &zero;
    const size_t cm = ctx ? SIZE_MAX : 0;
#define ES(i) (&es[(size_t)cp[(i)&cm] * A + sym[i]])
    size_t i = n;
    uint32_t x0 = RANS_L, x1 = RANS_L, x2 = RANS_L, x3 = RANS_L;
    if (lanes == 1) {
        while (i > 0) {
            i--;
            ENC_PUT(x0, ES(i), p);
        }
    } else {
        /* the last n mod 4 symbols, then four at a time (lanes 3, 2, 1, 0) */
        uint32_t xs[DDCT_RANS_LANES] = {RANS_L, RANS_L, RANS_L, RANS_L};
        while (i % DDCT_RANS_LANES) {
            i--;
            ENC_PUT(xs[i % DDCT_RANS_LANES], ES(i), p);
        }
        x0 = xs[0], x1 = xs[1], x2 = xs[2], x3 = xs[3];
        while (i > 0) {
            i -= 4;
            const enc_sym *q3 = ES(i + 3), *q2 = ES(i + 2), *q1 = ES(i + 1), *q0 = ES(i);
            ENC_PUT(x3, q3, p);
            ENC_PUT(x2, q2, p);
            ENC_PUT(x1, q1, p);
            ENC_PUT(x0, q0, p);
        }
    }
#undef ES
    const uint32_t xs[DDCT_RANS_LANES] = {x0, x1, x2, x3};
    for (int l = lanes; l-- > 0;) {
        p -= 4;
        ddct_st32(p, xs[l]);
    }
    return p;
}

/* The coding pass of the reference encoder: a division per symbol. */
static uint8_t *encode_pass_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, const ddct_rans_table *tab,
                                int lanes, uint8_t *p)
{
    uint32_t xs[DDCT_RANS_LANES] = {RANS_L, RANS_L, RANS_L, RANS_L};
    for (size_t i = n; i-- > 0;) {
        const ddct_rans_table *t = &tab[ctx ? ctx[i] : 0];
        unsigned s = sym[i];
        uint32_t f = t->freq[s], start = t->cum[s], x = xs[i % (size_t)lanes];
        int pb = t->prob_bits;
        if (t->kind == DDCT_RANS_SINGLE) continue;
        uint32_t x_max = ((RANS_L >> pb) << 8) * f;
        while (x >= x_max) {
            *--p = (uint8_t)x;
            x >>= 8;
        }
        xs[i % (size_t)lanes] = ((x / f) << pb) + x % f + start;
    }
    for (int l = lanes; l-- > 0;) {
        p -= 4;
        ddct_st32(p, xs[l]);
    }
    return p;
}

/* ------------------------------------------------------------ word encoder */
/* A symbol as the fast word encoder codes it: emit a word if x > x_hi (= x_max - 1, so that a
 * single-symbol table, x_max = 2^32, never emits), then x' = x + bias + q * cmpl with
 * q = floor(x / freq) = floor(x * rcp / 2^64), rcp = ceil(2^64 / freq): exact for x < 2^32, since
 * rcp = 2^64 / freq + e with e < 1 adds below 2^-32 < 1 / freq to x / freq. freq = 1 takes
 * rcp = 2^64 - 1 (q = x - 1) and the bias start + 2^pb - 1, as enc_sym; freq = 2^pb: the identity. */
typedef struct {
    uint64_t rcp;
    uint32_t x_hi, bias, cmpl;
} enc_sym_w;

static void enc_sym_w_init(enc_sym_w *q, uint32_t start, uint32_t freq, int pb)
{
    q->x_hi = (uint32_t)(((uint64_t)freq << (32 - pb)) - 1u);
    q->cmpl = (1u << pb) - freq;
    if (freq < 2) {
        q->rcp = ~(uint64_t)0;
        q->bias = start + (1u << pb) - 1u;
    } else {
        q->rcp = (~(uint64_t)0) / freq + 1u; /* ceil(2^64 / freq), whether freq divides 2^64 or not */
        q->bias = start;
    }
}

static inline uint32_t mulhi64(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;
    return (uint32_t)(((u128)a * b) >> 64);
#else
    const uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    const uint64_t m = ah * bl + (al * bl >> 32), m2 = al * bh + (uint32_t)m;
    return (uint32_t)(ah * bh + (m >> 32) + (m2 >> 32));
#endif
}

static inline void st16le(uint8_t *p, uint16_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 2);
#else
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
#endif
}

/* One symbol of a word blob: a word out if x > x_hi, stored without a branch (p - 2 stays inside
 * the output, above the states), p moves by its size. */
#define ENC_PUT_W(x, q, p)                                                                                             \
    do {                                                                                                               \
        const uint32_t k_ = (x) > (q)->x_hi;                                                                           \
        st16le((p)-2, (uint16_t)(x));                                                                                  \
        (p) -= 2 * k_;                                                                                                 \
        (x) >>= 16 * k_;                                                                                               \
        (x) = (x) + (q)->bias + mulhi64((x), (q)->rcp) * (q)->cmpl;                                                    \
    } while (0)

static uint8_t *encode_pass_w(const uint16_t *sym, const uint8_t *ctx, size_t n, size_t A, const enc_sym_w *es,
                              uint8_t *p)
{
    static const uint8_t zero = 0;
    const uint8_t *cp = ctx ? ctx : &zero;
    const size_t cm = ctx ? SIZE_MAX : 0;
#define ES(i) (&es[(size_t)cp[(i)&cm] * A + sym[i]])
    uint32_t xs[DDCT_RANS_WLANES];
    for (int l = 0; l < DDCT_RANS_WLANES; l++) xs[l] = DDCT_RANS_WL;
    size_t i = n;
    while (i % DDCT_RANS_WLANES) {
        i--;
        ENC_PUT_W(xs[i % DDCT_RANS_WLANES], ES(i), p);
    }
    while (i > 0) {
        i -= DDCT_RANS_WLANES;
        for (int l = DDCT_RANS_WLANES; l-- > 0;) ENC_PUT_W(xs[l], ES(i + (size_t)l), p);
    }
#undef ES
    for (int l = DDCT_RANS_WLANES; l-- > 0;) {
        p -= 4;
        ddct_st32(p, xs[l]);
    }
    return p;
}

static uint8_t *encode_pass_w_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, const ddct_rans_table *tab,
                                  uint8_t *p)
{
    uint32_t xs[DDCT_RANS_WLANES];
    for (int l = 0; l < DDCT_RANS_WLANES; l++) xs[l] = DDCT_RANS_WL;
    for (size_t i = n; i-- > 0;) {
        const ddct_rans_table *t = &tab[ctx ? ctx[i] : 0];
        unsigned s = sym[i];
        uint32_t f = t->freq[s], start = t->cum[s], x = xs[i % DDCT_RANS_WLANES];
        int pb = t->prob_bits;
        if (t->kind == DDCT_RANS_SINGLE) continue;
        uint64_t x_max = (uint64_t)f << (32 - pb); /* ((L >> pb) << 16) f */
        if (x >= x_max) {
            p -= 2;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)(x >> 8);
            x >>= 16;
        }
        xs[i % DDCT_RANS_WLANES] = ((x / f) << pb) + x % f + start;
    }
    for (int l = DDCT_RANS_WLANES; l-- > 0;) {
        p -= 4;
        ddct_st32(p, xs[l]);
    }
    return p;
}

/* counts[c * A + s] += the number of i < n with ctx[i] = c (0 if ctx is NULL) and sym[i] = s;
 * K = nctx * A counters. Runs of one symbol (mostly 0) make each increment wait for the last
 * one to the same counter: four sets of 32-bit counters, summed at the end, where n is large
 * enough to pay for them (and small enough for 32 bits). */
static void count_symbols(const uint16_t *sym, const uint8_t *ctx, size_t n, size_t K, size_t A, uint64_t *counts)
{
    static const uint8_t zero = 0;
    const uint8_t *cp = ctx ? ctx : &zero;
    const size_t cm = ctx ? SIZE_MAX : 0;
    uint32_t *h = n >= 16 * K && n <= UINT32_MAX ? calloc(4 * K, sizeof *h) : NULL;
    if (!h) {
        for (size_t i = 0; i < n; i++) counts[(size_t)cp[i & cm] * A + sym[i]]++;
        return;
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h[(size_t)cp[i & cm] * A + sym[i]]++;
        h[K + (size_t)cp[(i + 1) & cm] * A + sym[i + 1]]++;
        h[2 * K + (size_t)cp[(i + 2) & cm] * A + sym[i + 2]]++;
        h[3 * K + (size_t)cp[(i + 3) & cm] * A + sym[i + 3]]++;
    }
    for (; i < n; i++) h[(size_t)cp[i & cm] * A + sym[i]]++;
    for (size_t k = 0; k < K; k++) counts[k] += (uint64_t)h[k] + h[K + k] + h[2 * K + k] + h[3 * K + k];
    free(h);
}

/* lanes: 1, DDCT_RANS_LANES, or DDCT_RANS_WLANES for a word blob. */
static int encode_lanes(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, int lanes,
                        int ref, ddct_buf *out, ddct_err *e)
{
    const int word = lanes == DDCT_RANS_WLANES;
    if (prob_bits == 0) prob_bits = DDCT_RANS_PROB_BITS_DEFAULT;
    RETURN_ERROR_IF(nctx < 1 || nctx > DDCT_RANS_MAX_CONTEXTS, e, DDCT_ERR_PARAM, "rANS: %d contexts (1..%d)", nctx,
                    DDCT_RANS_MAX_CONTEXTS);
    RETURN_ERROR_IF(prob_bits < DDCT_RANS_PROB_BITS_MIN || prob_bits > DDCT_RANS_PROB_BITS_MAX, e, DDCT_ERR_PARAM,
                    "rANS: probability precision %d bits (12..15)", prob_bits);
    RETURN_ERROR_IF(n > 0 && !sym, e, DDCT_ERR_PARAM, "rANS: NULL symbols");
    RETURN_ERROR_IF(n > (SIZE_MAX - 256) / 2, e, DDCT_ERR_PARAM, "rANS: %zu symbols is too many", n);
    if (word && prob_bits > DDCT_RANS_W_PROB_BITS_MAX) prob_bits = DDCT_RANS_W_PROB_BITS_MAX;
    int rc = DDCT_OK;
    uint64_t *counts = NULL;
    ddct_rans_table *tab = NULL;
    enc_sym *es = NULL;
    enc_sym_w *esw = NULL;
    /* pass 0: check, and the alphabet actually used (counts then take nctx * A, not 4096); two
     * vectorised maxima, the offender looked for only if there is one */
    unsigned smax = 0, cmax = 0;
    for (size_t i = 0; i < n; i++) smax = sym[i] > smax ? sym[i] : smax;
    if (ctx)
        for (size_t i = 0; i < n; i++) cmax = ctx[i] > cmax ? ctx[i] : cmax;
    if (cmax >= (unsigned)nctx || smax >= DDCT_RANS_MAX_SYMBOLS)
        for (size_t i = 0; i < n; i++) {
            unsigned c = ctx ? ctx[i] : 0u, s = sym[i];
            if (c >= (unsigned)nctx || s >= DDCT_RANS_MAX_SYMBOLS)
                return ddct_seterr(e, DDCT_ERR_PARAM, "rANS: symbol %zu: %s %u out of range", i,
                                   c >= (unsigned)nctx ? "context" : "value", c >= (unsigned)nctx ? c : s);
        }
    const size_t A = (size_t)smax + 1;
    counts = calloc((size_t)nctx * A, sizeof *counts);
    tab = malloc((size_t)nctx * sizeof *tab);
    if (!ref && word) esw = malloc((size_t)nctx * A * sizeof *esw);
    else if (!ref) es = malloc((size_t)nctx * A * sizeof *es);
    if (!counts || !tab || (!ref && !es && !esw)) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rANS: out of memory (tables)");
        goto done;
    }
    /* pass 1: counts */
    count_symbols(sym, ctx, n, nctx * A, A, counts);
    ddct_buf_u8(out, (uint8_t)((nctx - 1) | (word ? 0xC0 : lanes == DDCT_RANS_LANES ? 0x80 : 0)));
    for (int c = 0; c < nctx; c++) {
        const ddct_rans_table *t = &tab[c];
        rc = ddct_rans_table_build(&tab[c], counts + (size_t)c * A, (int)A, prob_bits, e);
        if (rc) goto done;
        ddct_rans_table_write(t, out);
        if (!ref)
            for (int s = 0; s < t->nsym; s++) {
                if (!t->freq[s]) continue;
                if (word) enc_sym_w_init(&esw[(size_t)c * A + (size_t)s], t->cum[s], t->freq[s], t->prob_bits);
                else enc_sym_init(&es[(size_t)c * A + (size_t)s], t->cum[s], t->freq[s], t->prob_bits);
            }
    }
    /* pass 2: code backwards into the reserved tail, then move it down */
    size_t bound = 4 * (size_t)lanes + 2 * n; /* <= 2 bytes per symbol: x < 2^31 and x_max >= 2^16; one
                                                 word for a word blob */
    if (ddct_buf_reserve(out, bound)) {
        rc = ddct_buf_check(out, e);
        goto done;
    }
    uint8_t *base = out->p + out->len, *end = base + bound;
    uint8_t *p = word  ? (ref ? encode_pass_w_ref(sym, ctx, n, tab, end) : encode_pass_w(sym, ctx, n, A, esw, end))
                 : ref ? encode_pass_ref(sym, ctx, n, tab, lanes, end)
                       : encode_pass(sym, ctx, n, A, es, lanes, end);
    size_t len = (size_t)(end - p);
    memmove(base, p, len);
    out->len += len;
    rc = ddct_buf_check(out, e);
done:
    free(counts);
    free(tab);
    free(es);
    free(esw);
    return rc;
}

int ddct_rans_encode(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                     ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, 1, 0, out, e);
}

int ddct_rans_encode_x4(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                        ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, DDCT_RANS_LANES, 0, out, e);
}

int ddct_rans_encode_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                         ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, 1, 1, out, e);
}

int ddct_rans_encode_x4_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits,
                            ddct_buf *out, ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, DDCT_RANS_LANES, 1, out, e);
}

int ddct_rans_encode_w(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                       ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, DDCT_RANS_WLANES, 0, out, e);
}

int ddct_rans_encode_w_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits,
                           ddct_buf *out, ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, DDCT_RANS_WLANES, 1, out, e);
}

/* ------------------------------------------------------------ decoder */
void ddct_rans_dec_free(ddct_rans_dec *d)
{
    for (int c = 0; c < d->nctx; c++) {
        if (d->slot) free(d->slot[c]);
        if (d->fc) free(d->fc[c]);
    }
    free(d->slot);
    free(d->fc);
    free(d->cx);
    free(d->tab);
    free(d->fx);
    free(d->fx_fc);
    free(d->fx_sym);
    free(d->ctx_bad);
    memset(d, 0, sizeof *d);
}

/* The ddct_rans_fx tables of a four-state decoder (see rans.h) from d->tab; -1 if out of memory.
 * Single-symbol tables take the pb of the general ones where these all have the same (the step
 * is the identity at any pb), so that ddct_rans_dec_ctx_x4 can use one pb for every context. */
static int fx_build(ddct_rans_dec *d)
{
    int pbg = 0, uniform = 1;
    for (int c = 0; c < d->nctx; c++) {
        const ddct_rans_table *t = &d->tab[c];
        if (t->kind != DDCT_RANS_GENERAL) continue;
        if (pbg && t->prob_bits != pbg) uniform = 0;
        if (!pbg) pbg = t->prob_bits;
    }
    d->fx_pb = uniform ? (pbg ? pbg : DDCT_RANS_PROB_BITS_DEFAULT) : 0;
    d->fx = calloc((size_t)d->nctx, sizeof *d->fx);
    d->ctx_bad = malloc(256);
    if (!d->fx || !d->ctx_bad) return -1;
    memset(d->ctx_bad, 1, 256);
    size_t tot = 0;
    d->fx_empty0 = d->nctx;
    for (int c = 0; c < d->nctx; c++) {
        const ddct_rans_table *t = &d->tab[c];
        ddct_rans_fx *f = &d->fx[c];
        if (t->kind == DDCT_RANS_EMPTY) {
            if (d->fx_empty0 == d->nctx) d->fx_empty0 = c;
            continue;
        }
        d->ctx_bad[c] = 0;
        f->pb = (uint8_t)(t->kind == DDCT_RANS_SINGLE && d->fx_pb ? d->fx_pb : t->prob_bits);
        const uint32_t M = 1u << f->pb;
        f->g = (uint16_t)(t->kind == DDCT_RANS_SINGLE ? M - 1u : t->freq[0] ? t->freq[0] - 1u : 0u);
        f->off = (uint32_t)tot - f->g; /* mod 2^32; tot <= 64 * 2^15 */
        tot += M - f->g;
    }
    d->fx_fc = malloc((tot ? tot : 1) * sizeof *d->fx_fc);
    d->fx_sym = calloc(tot + 2, sizeof *d->fx_sym); /* + 2: a 32-bit gather of the last one stays inside */
    if (!d->fx_fc || !d->fx_sym) return -1;
    for (int c = 0; c < d->nctx; c++) {
        const ddct_rans_table *t = &d->tab[c];
        const ddct_rans_fx *f = &d->fx[c];
        uint32_t *fc = d->fx_fc + (uint32_t)(f->off + f->g);
        uint16_t *sy = d->fx_sym + (uint32_t)(f->off + f->g); /* entry 0: the slots [0, g] */
        if (t->kind == DDCT_RANS_EMPTY) continue;
        if (t->kind == DDCT_RANS_SINGLE) {
            fc[0] = 1u << f->pb; /* freq 2^pb, cum 0: x' = x */
            sy[0] = (uint16_t)(t->nsym - 1);
            continue;
        }
        /* slot sl >= g has entry sl - g (locals: the stores could alias t's uint16_t arrays) */
        const uint32_t g = f->g;
        for (int s = 0; s < t->nsym; s++) {
            const uint32_t lo = t->cum[s], hi = t->cum[s + 1], v = t->freq[s] | lo << 16;
            const uint16_t sv = (uint16_t)s;
            const uint32_t j1 = hi > g ? hi - g : 0;
            for (uint32_t j = lo > g ? lo - g : 0; j < j1; j++) {
                fc[j] = v;
                sy[j] = sv;
            }
        }
    }
    d->nfx = d->nctx;
    return 0;
}

/* The kernel level of the word decoders (rans_w.c). */
int ddct_rans_w_kernel(void);

static int dec_init(ddct_rans_dec *d, const uint8_t *in, size_t len, int lanes, ddct_err *e)
{
    memset(d, 0, sizeof *d);
    ddct_rd r;
    ddct_rd_init(&r, in, in ? len : 0);
    uint8_t h = ddct_rd_u8(&r);
    const int word = lanes == DDCT_RANS_WLANES, fx = lanes == DDCT_RANS_LANES || word;
    RETURN_ERROR_IF(r.failed || (h >> 6) != (word ? 3 : lanes == DDCT_RANS_LANES ? 2 : 0), e, DDCT_ERR_FORMAT,
                    "rANS: bad header");
    d->lanes = lanes;
    d->nctx = (h & 63) + 1;
    d->tab = malloc((size_t)d->nctx * sizeof *d->tab);
    d->slot = calloc((size_t)d->nctx, sizeof *d->slot);
    d->fc = calloc((size_t)d->nctx, sizeof *d->fc);
    d->cx = calloc((size_t)d->nctx, sizeof *d->cx);
    if (!d->tab || !d->slot || !d->fc || !d->cx) {
        ddct_rans_dec_free(d);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "rANS: out of memory (tables)");
    }
    for (int c = 0; c < d->nctx; c++) {
        int rc = ddct_rans_table_read(&d->tab[c], &r, e);
        if (rc) {
            ddct_rans_dec_free(d);
            return ddct_err_prefix(e, "context %d: ", c);
        }
        const ddct_rans_table *t = &d->tab[c];
        if (fx) continue; /* fx_build below; cx[] stays empty */
        ddct_rans_cx *cx = &d->cx[c];
        cx->kind = t->kind;
        cx->pb = t->prob_bits;
        cx->mask = (1u << t->prob_bits) - 1u;
        cx->single = (uint16_t)(t->kind == DDCT_RANS_SINGLE ? t->nsym - 1 : 0);
        if (t->kind != DDCT_RANS_GENERAL) continue;
        uint16_t *sl = malloc(((size_t)1 << t->prob_bits) * sizeof *sl);
        uint32_t *fc = malloc((size_t)t->nsym * sizeof *fc);
        d->slot[c] = sl;
        d->fc[c] = fc;
        if (!sl || !fc) {
            ddct_rans_dec_free(d);
            RETURN_ERROR(e, DDCT_ERR_NOMEM, "rANS: out of memory (decoding table)");
        }
        for (int s = 0; s < t->nsym; s++) {
            fc[s] = t->freq[s] | (uint32_t)t->cum[s] << 16;
            for (uint32_t j = t->cum[s]; j < t->cum[s + 1]; j++) sl[j] = (uint16_t)s;
        }
        cx->slot = sl;
        cx->fc = fc;
    }
    if (fx && fx_build(d)) {
        ddct_rans_dec_free(d);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "rANS: out of memory (decoding table)");
    }
    const uint8_t *st = ddct_rd_bytes(&r, 4 * (size_t)lanes);
    if (!st) {
        ddct_rans_dec_free(d);
        RETURN_ERROR(e, DDCT_ERR_FORMAT, "rANS: truncated stream (no state)");
    }
    if (word) {
        for (int l = 0; l < lanes; l++) {
            d->xw[l] = ddct_le32(st + 4 * l);
            if (d->xw[l] < DDCT_RANS_WL) {
                ddct_rans_dec_free(d);
                RETURN_ERROR(e, DDCT_ERR_FORMAT, "rANS: bad initial state");
            }
        }
        d->nwx = d->nfx;
        d->nfx = 0; /* the four-state functions fail on it */
        d->wk = ddct_rans_w_kernel();
        d->p = st + 4 * lanes;
        d->end = in + len;
        return DDCT_OK;
    }
    for (int l = 0; l < lanes; l++) {
        d->xs[l] = ddct_le32(st + 4 * l);
        if (d->xs[l] < RANS_L || d->xs[l] >= (RANS_L << 8)) {
            ddct_rans_dec_free(d);
            RETURN_ERROR(e, DDCT_ERR_FORMAT, "rANS: bad initial state");
        }
    }
    d->x = d->xs[0];
    d->p = st + 4 * lanes;
    d->end = in + len;
    return DDCT_OK;
}

int ddct_rans_dec_init(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e)
{
    return dec_init(d, in, len, 1, e);
}

int ddct_rans_dec_init_x4(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e)
{
    return dec_init(d, in, len, DDCT_RANS_LANES, e);
}

int ddct_rans_dec_init_w(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e)
{
    return dec_init(d, in, len, DDCT_RANS_WLANES, e);
}

/* The decoding step of one symbol s = slot[x & mask] (general table): the new state. */
#define RANS_STEP(x, s, slot, fc, mask, pb)                                                                            \
    do {                                                                                                               \
        uint32_t sl_ = (x) & (mask);                                                                                   \
        (s) = (slot)[sl_];                                                                                             \
        uint32_t f_ = (fc)[s];                                                                                         \
        (x) = (f_ & 0xffffu) * ((x) >> (pb)) + sl_ - (f_ >> 16);                                                       \
    } while (0)
/* Branch-free renormalisation (at most two bytes), for when two bytes are left: the count of
 * bytes comes from x alone (x < 2^23: one; x < 2^15: two), so the position p is the only chain
 * from one state's renormalisation to the next, and no branch or select depends on it. */
#define RANS_RENORM2(x, p)                                                                                             \
    do {                                                                                                               \
        uint32_t n_ = ((x) < RANS_L) + ((x) < (RANS_L >> 8));                                                          \
        uint32_t w_ = (uint32_t)(p)[0] << 8 | (p)[1]; /* the next two bytes, the first on top */                     \
        (x) = (x) << (8 * n_) | w_ >> (16 - 8 * n_);  /* n_ = 0: x; 1: x, byte 0; 2: x, bytes 0, 1 */                 \
        (p) += n_;                                                                                                     \
    } while (0)

/* Checks of a one-state run: 0 (failed latched) for a failed decoder, a bad or empty context; 1
 * for a single-symbol context (out[] filled); 2 for a general one. */
static int run_start(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (d->failed || (unsigned)ctx >= (unsigned)d->nctx || d->cx[ctx].kind == DDCT_RANS_EMPTY) {
        d->failed = 1;
        return 0;
    }
    if (d->cx[ctx].kind == DDCT_RANS_SINGLE) {
        for (size_t i = 0; i < n; i++) out[i] = d->cx[ctx].single;
        return 1;
    }
    return 2;
}

void ddct_rans_dec_run_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get(d, ctx);
}

/* The renormalisation of ddct_rans_dec_get: x >= 2^23 and f >= 1 leave x >= 256 after a step,
 * so at most two bytes are read; 0 (and nothing read) where the stream ends first. */
static inline int renorm(uint32_t *x, const uint8_t **p, const uint8_t *end)
{
    while (*x < RANS_L) {
        if (*p >= end) return 0;
        *x = (*x << 8) | *(*p)++;
    }
    return 1;
}

void ddct_rans_dec_run(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (!n || run_start(d, ctx, out, n) != 2) return;
    const ddct_rans_cx *c = &d->cx[ctx];
    const uint16_t *slot = c->slot;
    const uint32_t *fc = c->fc;
    const uint32_t mask = c->mask, f0 = fc[0] & 0xffffu; /* symbol 0: slots [0, f0) */
    const int pb = c->pb;
    uint32_t x = d->x;
    const uint8_t *p = d->p, *end = d->end;
    size_t i = 0;
    if (f0 > (mask >> 1)) {
        /* mostly zeros: a predictable branch skips the table; renormalisation is rare */
        for (; i < n; i++) {
            uint32_t sl = x & mask;
            if (sl < f0) {
                x = f0 * (x >> pb) + sl;
                out[i] = 0;
            } else {
                RANS_STEP(x, out[i], slot, fc, mask, pb);
            }
            if (x < RANS_L && !renorm(&x, &p, end)) goto fail;
        }
    } else {
        /* branch-free renormalisation while two bytes are left (both may be read, neither
         * past the end), then the checked loop */
        for (; i < n && end - p >= 2; i++) {
            RANS_STEP(x, out[i], slot, fc, mask, pb);
            RANS_RENORM2(x, p);
        }
        for (; i < n; i++) {
            RANS_STEP(x, out[i], slot, fc, mask, pb);
            if (!renorm(&x, &p, end)) goto fail;
        }
    }
    d->x = x;
    d->p = p;
    return;
fail:
    d->failed = 1;
}

/* ---------------------------------------------------- four-state decoder (fx tables) */
void ddct_rans_dec_run_x4_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_x4(d, ctx);
}

void ddct_rans_dec_ctx_x4_ref(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_x4(d, ctx[i]);
}

/* The step of ddct_rans_dec_get_x4 on context f (ddct_rans_fx) with precision PB and mask MASK;
 * the symbol into s. */
#define FX_STEP(x, f, PB, MASK, s)                                                                                     \
    do {                                                                                                               \
        const uint32_t sl_ = (x) & (MASK), g_ = (f)->g, j_ = (f)->off + (sl_ > g_ ? sl_ : g_);                         \
        const uint32_t e_ = fc[j_];                                                                                    \
        (x) = (e_ & 0xffffu) * ((x) >> (PB)) + sl_ - (e_ >> 16);                                                       \
        (s) = sym[j_];                                                                                                 \
    } while (0)

/* n symbols of a four-state decoder in contexts ctx[0..n) (checked), or all in context c1 (ctx
 * NULL, checked, general). PB: the pb of every context used (a constant where inlined), or 0 to
 * take each context's own. BR: renormalise behind a branch on x < 2^23 (taken about once in
 * 8 / bits per symbol: cheaper below ~1.3 bits per symbol, where it is well predicted), else
 * always, branch-free; either way the same result. The call leaves d->fx_dense, the choice for
 * the next one, from the bytes per symbol it has read. */
static inline __attribute__((always_inline)) void x4_loop(ddct_rans_dec *d, const uint8_t *ctx, int c1,
                                                          uint16_t *out, size_t n, const int PB, const int BR,
                                                          const int ONE)
{
    const ddct_rans_fx *fx = d->fx;
    const uint32_t *fc = d->fx_fc;
    const uint16_t *sym = d->fx_sym;
    const int l0 = d->lane;
    /* the states in the order this call uses them */
    uint32_t x0 = d->xs[l0], x1 = d->xs[(l0 + 1) & 3], x2 = d->xs[(l0 + 2) & 3], x3 = d->xs[(l0 + 3) & 3];
    const uint8_t *p = d->p, *end = d->end;
    size_t i = 0;
#define X4_F(k) (ONE ? &fx[c1] : &fx[ctx[i + (k)]])
#define X4_STEP(x, f, s) FX_STEP(x, f, PB ? PB : (f)->pb, (1u << (PB ? PB : (f)->pb)) - 1u, s)
    /* four independent states: their steps overlap; the bytes are read in symbol order, at most
     * two per symbol, eight per round */
    for (; i + 4 <= n && end - p >= 8; i += 4) {
        const ddct_rans_fx *f0 = X4_F(0), *f1 = X4_F(1), *f2 = X4_F(2), *f3 = X4_F(3);
        X4_STEP(x0, f0, out[i]);
        X4_STEP(x1, f1, out[i + 1]);
        X4_STEP(x2, f2, out[i + 2]);
        X4_STEP(x3, f3, out[i + 3]);
        if (!BR || x0 < RANS_L) p += ddct_rans_renorm2(&x0, p);
        if (!BR || x1 < RANS_L) p += ddct_rans_renorm2(&x1, p);
        if (!BR || x2 < RANS_L) p += ddct_rans_renorm2(&x2, p);
        if (!BR || x3 < RANS_L) p += ddct_rans_renorm2(&x3, p);
    }
    if (i >= 64) d->fx_dense = (size_t)(p - d->p) * 6 > i; /* over 4/3 bits per symbol */
    uint32_t xs[4] = {x0, x1, x2, x3};
    for (; i < n; i++) {
        const ddct_rans_fx *f = X4_F(0);
        uint32_t *x = &xs[i & 3];
        X4_STEP(*x, f, out[i]);
        if (!renorm(x, &p, end)) {
            d->failed = 1;
            return;
        }
    }
#undef X4_F
#undef X4_STEP
    for (int l = 0; l < 4; l++) d->xs[(l0 + l) & 3] = xs[l];
    d->lane = (int)(((size_t)l0 + n) & 3);
    d->p = p;
}

/* x4_loop in contexts ctx[0..n), with the decoder's common pb as a constant where there is one,
 * and the renormalisation fit for the last call's density. */
static void x4_ctx(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n)
{
    const int br = !d->fx_dense;
    switch (d->fx_pb * 2 + br) {
    case 24: x4_loop(d, ctx, 0, out, n, 12, 0, 0); break;
    case 25: x4_loop(d, ctx, 0, out, n, 12, 1, 0); break;
    case 26: x4_loop(d, ctx, 0, out, n, 13, 0, 0); break;
    case 27: x4_loop(d, ctx, 0, out, n, 13, 1, 0); break;
    case 28: x4_loop(d, ctx, 0, out, n, 14, 0, 0); break;
    case 29: x4_loop(d, ctx, 0, out, n, 14, 1, 0); break;
    case 30: x4_loop(d, ctx, 0, out, n, 15, 0, 0); break;
    case 31: x4_loop(d, ctx, 0, out, n, 15, 1, 0); break;
    case 1: x4_loop(d, ctx, 0, out, n, 0, 1, 0); break;
    default: x4_loop(d, ctx, 0, out, n, 0, 0, 0); break;
    }
}

/* x4_loop in the one context c1 (its pb in a register). */
static void x4_one(ddct_rans_dec *d, int c1, uint16_t *out, size_t n)
{
    if (d->fx_dense) x4_loop(d, NULL, c1, out, n, 0, 0, 1);
    else x4_loop(d, NULL, c1, out, n, 0, 1, 1);
}

void ddct_rans_dec_run_x4(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (!n) return;
    if (d->failed || (unsigned)ctx >= (unsigned)d->nfx || !d->fx[ctx].pb) {
        d->failed = 1;
        return;
    }
    const ddct_rans_fx *f = &d->fx[ctx];
    if (f->g == (1u << f->pb) - 1u) { /* single symbol: the states stay */
        const uint16_t s = d->fx_sym[(uint32_t)(f->off + f->g)];
        for (size_t i = 0; i < n; i++) out[i] = s;
        d->lane = (int)(((size_t)d->lane + n) & 3);
        return;
    }
    x4_one(d, ctx, out, n);
}

/* 1 if every ctx[0..n) is a context of d with a non-empty table. */
static int ctx_check(const ddct_rans_dec *d, const uint8_t *ctx, size_t n)
{
    if (!d->ctx_bad || !d->nfx) return 0; /* a one-state or word decoder */
    uint8_t m = 0;
    for (size_t i = 0; i < n; i++) m = ctx[i] > m ? ctx[i] : m; /* vectorised */
    if (m < d->fx_empty0) return 1; /* every context up to the first empty table (or nctx) is good */
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) bad |= d->ctx_bad[ctx[i]];
    return !bad;
}

void ddct_rans_dec_ctx_x4(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n)
{
    if (!n || d->failed) return;
    if (!ctx_check(d, ctx, n)) {
        d->failed = 1;
        return;
    }
    x4_ctx(d, ctx, out, n);
}

int ddct_rans_dec_finish(const ddct_rans_dec *d, ddct_err *e)
{
    RETURN_ERROR_IF(d->failed, e, DDCT_ERR_FORMAT, "rANS: corrupt stream or context out of range");
    int ended = d->lanes == DDCT_RANS_LANES
                    ? d->xs[0] == RANS_L && d->xs[1] == RANS_L && d->xs[2] == RANS_L && d->xs[3] == RANS_L
                    : d->x == RANS_L;
    if (d->lanes == DDCT_RANS_WLANES) {
        ended = 1;
        for (int l = 0; l < DDCT_RANS_WLANES; l++) ended &= d->xw[l] == DDCT_RANS_WL;
    }
    RETURN_ERROR_IF(!ended || d->p != d->end, e, DDCT_ERR_FORMAT,
                    "rANS: stream does not end where expected (%zu bytes left)", (size_t)(d->end - d->p));
    return DDCT_OK;
}

int ddct_rans_decode(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *sym, ddct_err *e)
{
    RETURN_ERROR_IF(n > 0 && !sym, e, DDCT_ERR_PARAM, "rANS: NULL output");
    ddct_rans_dec d;
    FORWARD_IF_ERROR(ddct_rans_dec_init(&d, in, len, e));
    /* the ddct_rans_dec_get step with the state in locals */
    uint32_t x = d.x;
    const uint8_t *p = d.p, *end = d.end;
    for (size_t i = 0; i < n; i++) {
        unsigned c = ctx ? ctx[i] : 0u;
        if (c >= (unsigned)d.nctx || d.tab[c].kind == DDCT_RANS_EMPTY) {
            d.failed = 1;
            break;
        }
        const ddct_rans_table *t = &d.tab[c];
        if (t->kind == DDCT_RANS_SINGLE) {
            sym[i] = (uint16_t)(t->nsym - 1);
            continue;
        }
        const int pb = t->prob_bits;
        const uint32_t slot = x & ((1u << pb) - 1u);
        const uint16_t s = d.slot[c][slot];
        sym[i] = s;
        x = t->freq[s] * (x >> pb) + slot - t->cum[s];
        if (x < RANS_L) {
            if (end - p < 2 && (p == end || (x << 8 | *p) < RANS_L)) {
                d.failed = 1;
                break;
            }
            x = (x << 8) | *p++;
            if (x < RANS_L) x = (x << 8) | *p++;
        }
    }
    d.x = x;
    d.p = p;
    int rc = ddct_rans_dec_finish(&d, e);
    ddct_rans_dec_free(&d);
    if (rc && n > 0) memset(sym, 0, n * sizeof *sym);
    return rc;
}
