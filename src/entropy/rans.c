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
static int encode_lanes(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, int lanes,
                        ddct_buf *out, ddct_err *e)
{
    if (prob_bits == 0) prob_bits = DDCT_RANS_PROB_BITS_DEFAULT;
    RETURN_ERROR_IF(nctx < 1 || nctx > DDCT_RANS_MAX_CONTEXTS, e, DDCT_ERR_PARAM, "rANS: %d contexts (1..%d)", nctx,
                    DDCT_RANS_MAX_CONTEXTS);
    RETURN_ERROR_IF(prob_bits < DDCT_RANS_PROB_BITS_MIN || prob_bits > DDCT_RANS_PROB_BITS_MAX, e, DDCT_ERR_PARAM,
                    "rANS: probability precision %d bits (12..15)", prob_bits);
    RETURN_ERROR_IF(n > 0 && !sym, e, DDCT_ERR_PARAM, "rANS: NULL symbols");
    RETURN_ERROR_IF(n > (SIZE_MAX - 64) / 2, e, DDCT_ERR_PARAM, "rANS: %zu symbols is too many", n);
    int rc = DDCT_OK;
    uint64_t *counts = NULL;
    ddct_rans_table *tab = NULL;
    /* pass 0: check, and the alphabet actually used (counts then take nctx * A, not 4096) */
    unsigned smax = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = ctx ? ctx[i] : 0u, s = sym[i];
        if (c >= (unsigned)nctx || s >= DDCT_RANS_MAX_SYMBOLS)
            return ddct_seterr(e, DDCT_ERR_PARAM, "rANS: symbol %zu: %s %u out of range", i,
                               c >= (unsigned)nctx ? "context" : "value", c >= (unsigned)nctx ? c : s);
        smax = s > smax ? s : smax;
    }
    const size_t A = (size_t)smax + 1;
    counts = calloc((size_t)nctx * A, sizeof *counts);
    tab = malloc((size_t)nctx * sizeof *tab);
    if (!counts || !tab) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rANS: out of memory (tables)");
        goto done;
    }
    /* pass 1: counts */
    for (size_t i = 0; i < n; i++) counts[(size_t)(ctx ? ctx[i] : 0u) * A + sym[i]]++;
    ddct_buf_u8(out, (uint8_t)((nctx - 1) | (lanes == DDCT_RANS_LANES ? 0x80 : 0)));
    for (int c = 0; c < nctx; c++) {
        rc = ddct_rans_table_build(&tab[c], counts + (size_t)c * A, (int)A, prob_bits, e);
        if (rc) goto done;
        ddct_rans_table_write(&tab[c], out);
    }
    /* pass 2: code backwards into the reserved tail, then move it down */
    size_t bound = 4 * (size_t)lanes + 2 * n; /* <= 2 bytes per symbol: x < 2^31 and x_max >= 2^16 */
    if (ddct_buf_reserve(out, bound)) {
        rc = ddct_buf_check(out, e);
        goto done;
    }
    uint8_t *base = out->p + out->len, *p = base + bound;
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
    size_t len = (size_t)(base + bound - p);
    memmove(base, p, len);
    out->len += len;
    rc = ddct_buf_check(out, e);
done:
    free(counts);
    free(tab);
    return rc;
}

int ddct_rans_encode(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                     ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, 1, out, e);
}

int ddct_rans_encode_x4(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                        ddct_err *e)
{
    return encode_lanes(sym, ctx, n, nctx, prob_bits, DDCT_RANS_LANES, out, e);
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
    memset(d, 0, sizeof *d);
}

static int dec_init(ddct_rans_dec *d, const uint8_t *in, size_t len, int lanes, ddct_err *e)
{
    memset(d, 0, sizeof *d);
    ddct_rd r;
    ddct_rd_init(&r, in, in ? len : 0);
    uint8_t h = ddct_rd_u8(&r);
    RETURN_ERROR_IF(r.failed || (h >> 6) != (lanes == DDCT_RANS_LANES ? 2 : 0), e, DDCT_ERR_FORMAT,
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
    const uint8_t *st = ddct_rd_bytes(&r, 4 * (size_t)lanes);
    if (!st) {
        ddct_rans_dec_free(d);
        RETURN_ERROR(e, DDCT_ERR_FORMAT, "rANS: truncated stream (no state)");
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

/* Checks of a run: 0 (failed latched) for a failed decoder, a bad or empty context; 1 for a
 * single-symbol context (out[] filled, the four-state lane moved on by n); 2 for a general one. */
static int run_start(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (d->failed || (unsigned)ctx >= (unsigned)d->nctx || d->cx[ctx].kind == DDCT_RANS_EMPTY) {
        d->failed = 1;
        return 0;
    }
    if (d->cx[ctx].kind == DDCT_RANS_SINGLE) {
        for (size_t i = 0; i < n; i++) out[i] = d->cx[ctx].single;
        if (d->lanes == DDCT_RANS_LANES) d->lane = (int)(((size_t)d->lane + n) % DDCT_RANS_LANES);
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

void ddct_rans_dec_run_x4_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (!n || run_start(d, ctx, out, n) != 2) return;
    const ddct_rans_cx *c = &d->cx[ctx];
    for (size_t i = 0; i < n; i++) {
        uint32_t x = d->xs[d->lane];
        uint16_t s;
        RANS_STEP(x, s, c->slot, c->fc, c->mask, c->pb);
        if (!renorm(&x, &d->p, d->end)) {
            d->failed = 1;
            return;
        }
        d->xs[d->lane] = x;
        d->lane = (d->lane + 1) % DDCT_RANS_LANES;
        out[i] = s;
    }
}

void ddct_rans_dec_run_x4(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n)
{
    if (!n || run_start(d, ctx, out, n) != 2) return;
    const ddct_rans_cx *c = &d->cx[ctx];
    const uint16_t *slot = c->slot;
    const uint32_t *fc = c->fc;
    const uint32_t mask = c->mask;
    const int pb = c->pb, l0 = d->lane;
    /* the states in the order this run uses them */
    uint32_t x0 = d->xs[l0], x1 = d->xs[(l0 + 1) % 4], x2 = d->xs[(l0 + 2) % 4], x3 = d->xs[(l0 + 3) % 4];
    const uint8_t *p = d->p, *end = d->end;
    size_t i = 0;
    /* four independent states: their steps overlap; the bytes are read in symbol order */
    for (; i + 4 <= n && end - p >= 8; i += 4) {
        uint16_t s0, s1, s2, s3;
        RANS_STEP(x0, s0, slot, fc, mask, pb);
        RANS_STEP(x1, s1, slot, fc, mask, pb);
        RANS_STEP(x2, s2, slot, fc, mask, pb);
        RANS_STEP(x3, s3, slot, fc, mask, pb);
        RANS_RENORM2(x0, p);
        RANS_RENORM2(x1, p);
        RANS_RENORM2(x2, p);
        RANS_RENORM2(x3, p);
        out[i] = s0;
        out[i + 1] = s1;
        out[i + 2] = s2;
        out[i + 3] = s3;
    }
    uint32_t xs[4] = {x0, x1, x2, x3};
    for (; i < n; i++) {
        uint32_t *x = &xs[i % 4];
        RANS_STEP(*x, out[i], slot, fc, mask, pb);
        if (!renorm(x, &p, end)) {
            d->failed = 1;
            return;
        }
    }
    for (int l = 0; l < 4; l++) d->xs[(l0 + l) % 4] = xs[l];
    d->lane = (int)(((size_t)l0 + n) % DDCT_RANS_LANES);
    d->p = p;
}

int ddct_rans_dec_finish(const ddct_rans_dec *d, ddct_err *e)
{
    RETURN_ERROR_IF(d->failed, e, DDCT_ERR_FORMAT, "rANS: corrupt stream or context out of range");
    int ended = d->lanes == DDCT_RANS_LANES
                    ? d->xs[0] == RANS_L && d->xs[1] == RANS_L && d->xs[2] == RANS_L && d->xs[3] == RANS_L
                    : d->x == RANS_L;
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
