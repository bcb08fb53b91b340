/* test_quant.c — bit packing, uniform quantizer and rank-based allocation (src/quant). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant/quant.h"
#include "testutil.h"

static unsigned rnd(unsigned m) { return m ? (unsigned)(tu_next() % m) : 0; }

/* ------------------------------------------------------------ bit packing */
typedef void (*pack_fn)(ddct_bitw *, const uint16_t *, size_t, int);
typedef void (*unpack_fn)(ddct_bitr *, uint16_t *, size_t, int);
static const pack_fn packers[3] = {ddct_bitw_pack_ref, ddct_bitw_pack, ddct_bitw_pack_nosimd};
static const unpack_fn unpackers[3] = {ddct_bitr_unpack_ref, ddct_bitr_unpack, ddct_bitr_unpack_nosimd};
static const char *const kname[3] = {"ref", "fast", "nosimd"};

/* Writes: prefix (pre_bits of garbage via put, in pieces), then v[0..n) in `chunks` pack
 * calls, then a 5-bit trailer. Buffer is exactly ddct_bitpack_bytes(total) (ASan checks). */
static uint8_t *write_stream(int kind, const uint32_t *pre, const int *prew, int npre, const uint16_t *v, size_t n,
                             int bits, int chunks, size_t *len)
{
    uint64_t total = 5 + (uint64_t)n * (uint64_t)bits;
    for (int i = 0; i < npre; i++) total += (uint64_t)prew[i];
    size_t nb = ddct_bitpack_bytes(total);
    uint8_t *out = malloc(nb ? nb : 1);
    ddct_bitw w;
    ddct_bitw_init(&w, out);
    for (int i = 0; i < npre; i++) ddct_bitw_put(&w, pre[i], prew[i]);
    size_t done = 0;
    for (int c = 0; c < chunks; c++) {
        size_t m = c == chunks - 1 ? n - done : (size_t)rnd((unsigned)(n - done + 1));
        packers[kind](&w, v + done, m, bits);
        done += m;
    }
    ddct_bitw_put(&w, 0x15, 5);
    *len = ddct_bitw_finish(&w);
    CHECK(*len == nb, "%s bits=%d n=%zu: wrote %zu bytes, expected %zu", kname[kind], bits, n, *len, nb);
    return out;
}

static void test_bitpack_width(int bits, size_t n)
{
    uint16_t *v = malloc((n ? n : 1) * sizeof *v), *got = malloc((n ? n : 1) * sizeof *got);
    for (size_t i = 0; i < n; i++) v[i] = (uint16_t)tu_next(); /* high garbage bits: must be masked */
    const uint16_t mask = (uint16_t)((1u << bits) - 1u);
    uint32_t pre[4];
    int prew[4];
    int npre = (int)rnd(4);
    for (int i = 0; i < npre; i++) {
        pre[i] = (uint32_t)tu_next();
        prew[i] = (int)rnd(25);
    }
    int chunks = 1 + (int)rnd(4);
    size_t len[3];
    uint8_t *buf[3];
    for (int k = 0; k < 3; k++) buf[k] = write_stream(k, pre, prew, npre, v, n, bits, k == 0 ? 1 : chunks, &len[k]);
    for (int k = 1; k < 3; k++)
        CHECK(len[k] == len[0] && !memcmp(buf[k], buf[0], len[0]), "bits=%d n=%zu: %s bytes differ from ref", bits, n,
              kname[k]);
    /* read back with every reader */
    for (int k = 0; k < 3; k++) {
        ddct_bitr r;
        ddct_bitr_init(&r, buf[0], len[0]);
        int ok = 1;
        for (int i = 0; i < npre; i++) ok &= ddct_bitr_get(&r, prew[i]) == (pre[i] & ((1u << prew[i]) - 1u));
        size_t done = 0;
        for (int c = 0; c < chunks; c++) {
            size_t m = c == chunks - 1 ? n - done : (size_t)rnd((unsigned)(n - done + 1));
            unpackers[k](&r, got + done, m, bits);
            done += m;
        }
        for (size_t i = 0; i < n; i++) ok &= got[i] == (v[i] & mask);
        ok &= ddct_bitr_get(&r, 5) == 0x15;
        CHECK(ok && !r.failed, "bits=%d n=%zu: %s round trip failed (failed=%d)", bits, n, kname[k], r.failed);
        CHECK(ddct_bitpack_bytes(r.bitpos) == len[0], "bits=%d n=%zu: %s consumed %llu bits", bits, n, kname[k],
              (unsigned long long)r.bitpos);
    }
    /* truncated copies: every reader agrees, never reads out of bounds, latches failed */
    uint64_t pre_bits = 0;
    for (int i = 0; i < npre; i++) pre_bits += (uint64_t)prew[i];
    size_t step = len[0] > 64 ? len[0] / 16 : 1;
    for (size_t t = 0; t <= len[0]; t = t < 40 ? t + 1 : (t + step < len[0] ? t + step : (t < len[0] ? len[0] : t + 1))) {
        uint8_t *tb = malloc(t ? t : 1);
        memcpy(tb, buf[0], t);
        uint16_t *res[3];
        int failed[3];
        uint64_t pos[3];
        for (int k = 0; k < 3; k++) {
            res[k] = malloc((n ? n : 1) * sizeof *res[k]);
            ddct_bitr r;
            ddct_bitr_init(&r, t ? tb : NULL, t);
            for (int i = 0; i < npre; i++) ddct_bitr_get(&r, prew[i]);
            unpackers[k](&r, res[k], n, bits);
            failed[k] = r.failed;
            pos[k] = r.bitpos;
        }
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            uint64_t end = pre_bits + (uint64_t)(i + 1) * (uint64_t)bits;
            uint16_t want = end <= (uint64_t)t * 8 ? (uint16_t)(v[i] & mask) : 0;
            ok &= res[0][i] == want;
        }
        CHECK(ok, "bits=%d n=%zu trunc=%zu: ref values wrong", bits, n, t);
        int want_failed = pre_bits + (uint64_t)n * (uint64_t)bits > (uint64_t)t * 8;
        CHECK(failed[0] == want_failed, "bits=%d n=%zu trunc=%zu: failed=%d want %d", bits, n, t, failed[0],
              want_failed);
        for (int k = 1; k < 3; k++)
            CHECK(failed[k] == failed[0] && pos[k] == pos[0] && !memcmp(res[k], res[0], n * sizeof(uint16_t)),
                  "bits=%d n=%zu trunc=%zu: %s differs from ref", bits, n, t, kname[k]);
        for (int k = 0; k < 3; k++) free(res[k]);
        free(tb);
    }
    for (int k = 0; k < 3; k++) free(buf[k]);
    free(v);
    free(got);
}

static void test_bitpack(void)
{
    static const size_t sizes[] = {0, 1, 2, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099};
    for (int bits = 0; bits <= 16; bits++) {
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (int rep = 0; rep < 3; rep++) test_bitpack_width(bits, sizes[s]);
        for (int rep = 0; rep < 10; rep++) test_bitpack_width(bits, rnd(700));
    }
    /* cost is exactly n * w bits: packing from offset 0 gives ceil(n w / 8) bytes */
    for (int bits = 0; bits <= 16; bits++) {
        size_t n = 1001;
        uint16_t *v = calloc(n, sizeof *v);
        size_t nb = ddct_bitpack_bytes((uint64_t)n * (uint64_t)bits);
        uint8_t *out = malloc(nb ? nb : 1);
        ddct_bitw w;
        ddct_bitw_init(&w, out);
        ddct_bitw_pack(&w, v, n, bits);
        CHECK(ddct_bitw_finish(&w) == nb, "bits=%d: %zu bytes", bits, nb);
        free(out);
        free(v);
    }
    /* widths outside 0..16 do nothing */
    {
        uint8_t ob[4] = {0, 0, 0, 0};
        uint16_t vv[2] = {1, 2};
        for (int k = 0; k < 3; k++) {
            ddct_bitw w;
            ddct_bitw_init(&w, ob);
            packers[k](&w, vv, 2, 17);
            packers[k](&w, vv, 2, -1);
            CHECK(ddct_bitw_finish(&w) == 0 && ob[0] == 0, "%s: width 17 / -1 must write nothing", kname[k]);
            ddct_bitr r;
            ddct_bitr_init(&r, ob, 4);
            unpackers[k](&r, vv, 2, 17);
            CHECK(vv[0] == 1 && vv[1] == 2 && r.bitpos == 0 && !r.failed, "%s: width 17 must read nothing", kname[k]);
            unpackers[k](&r, NULL, 0, 3);
            CHECK(r.bitpos == 0 && !r.failed, "%s: n = 0", kname[k]);
        }
    }
    /* reader edge cases: NULL buffer, zero-width reads, latching */
    ddct_bitr r;
    ddct_bitr_init(&r, NULL, 0);
    CHECK(ddct_bitr_get(&r, 0) == 0 && !r.failed, "0-bit read of empty must not fail");
    CHECK(ddct_bitr_get(&r, 1) == 0 && r.failed, "1-bit read of empty must fail");
    uint8_t one = 0xFF;
    ddct_bitr_init(&r, &one, 1);
    CHECK(ddct_bitr_get(&r, 7) == 0x7F && !r.failed, "7 bits");
    CHECK(ddct_bitr_get(&r, 2) == 0 && r.failed, "past end");
    CHECK(ddct_bitr_get(&r, 1) == 0 && r.failed, "latched");
    /* known layout: LSB first */
    uint8_t b2[2] = {0, 0};
    ddct_bitw w;
    ddct_bitw_init(&w, b2);
    uint16_t vals[5] = {1, 2, 3, 0, 1};
    ddct_bitw_pack(&w, vals, 5, 2);
    CHECK(ddct_bitw_finish(&w) == 2 && b2[0] == (1 | 2 << 2 | 3 << 4) && b2[1] == 1, "layout %02x %02x", b2[0],
          b2[1]);
}

/* ------------------------------------------------------------ quantizer */
static void test_quant_case(int bits, size_t n, float lo, float hi, int in_range)
{
    float *x = malloc((n ? n : 1) * sizeof *x), *xr = malloc((n ? n : 1) * sizeof *xr),
          *xf = malloc((n ? n : 1) * sizeof *xf);
    uint16_t *qr = malloc((n ? n : 1) * sizeof *qr), *qf = malloc((n ? n : 1) * sizeof *qf);
    for (size_t i = 0; i < n; i++) {
        double u = tu_unif();
        if (in_range) x[i] = lo + (float)u * (hi - lo);
        else x[i] = lo + (float)((u * 3 - 1) * (double)(hi - lo));
        if (x[i] < lo && in_range) x[i] = lo;
        if (x[i] > hi && in_range) x[i] = hi;
    }
    if (n > 0) x[0] = lo;
    if (n > 1) x[n - 1] = hi;
    ddct_quant_uniform_ref(x, n, bits, lo, hi, qr);
    ddct_quant_uniform(x, n, bits, lo, hi, qf);
    CHECK(!memcmp(qr, qf, n * sizeof *qr), "bits=%d n=%zu lo=%g hi=%g: fast q != ref", bits, n, lo, hi);
    ddct_dequant_uniform_ref(qr, n, bits, lo, hi, xr);
    ddct_dequant_uniform(qr, n, bits, lo, hi, xf);
    CHECK(!memcmp(xr, xf, n * sizeof *xr), "bits=%d n=%zu: fast dequant != ref", bits, n);
    unsigned L = (1u << bits) - 1u;
    double bound = (double)(hi - lo) / (2.0 * L);
    double slack = 8.0 * FLT_EPSILON * (fabs((double)lo) + fabs((double)hi));
    int ok_range = 1, ok_err = 1;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        ok_range &= qr[i] <= L;
        if (in_range) {
            double err = fabs((double)x[i] - (double)xr[i]);
            if (err > worst) worst = err;
            ok_err &= err <= bound + slack;
        } else {
            ok_err &= xr[i] >= lo - slack && xr[i] <= hi + slack; /* x^ = lo + q r / L may round an ulp past hi */
        }
    }
    CHECK(ok_range, "bits=%d: q out of range", bits);
    CHECK(ok_err, "bits=%d lo=%g hi=%g: error %g > bound %g", bits, lo, hi, worst, bound);
    if (n > 1 && in_range) CHECK(qr[0] == 0 && qr[n - 1] == L, "bits=%d: endpoints map to 0 and L", bits);
    free(x);
    free(xr);
    free(xf);
    free(qr);
    free(qf);
}

static void test_quant(void)
{
    static const size_t sizes[] = {0, 1, 3, 15, 16, 17, 33, 256, 1001};
    for (int bits = 1; bits <= 16; bits++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (int rep = 0; rep < 4; rep++) {
                float lo = (float)(tu_normal() * 0.01), hi = lo + (float)(tu_unif() * 0.05 + 1e-6);
                if (rep == 1) lo = -1.0f, hi = 1.0f;
                if (rep == 2) lo = 1000.0f, hi = 1000.5f;
                test_quant_case(bits, sizes[s], lo, hi, 1);
                test_quant_case(bits, sizes[s], lo, hi, 0);
            }
    /* degenerate inputs: hi == lo, hi < lo, bad bits, NaN / Inf values */
    float x[20];
    uint16_t qr[20], qf[20];
    float dr[20], df[20];
    for (int i = 0; i < 20; i++) x[i] = (float)i - 5.0f;
    x[3] = NAN;
    x[4] = INFINITY;
    x[5] = -INFINITY;
    x[6] = -NAN;
    static const int badbits[] = {0, -1, 17, 3};
    static const float los[] = {1.0f, 2.0f, 0.0f, -1.0f}, his[] = {1.0f, 1.0f, 1.0f, 1.0f};
    for (int c = 0; c < 4; c++) {
        int b = badbits[c];
        float lo = los[c], hi = his[c];
        memset(qr, 0xAA, sizeof qr);
        memset(qf, 0x55, sizeof qf);
        ddct_quant_uniform_ref(x, 20, b, lo, hi, qr);
        ddct_quant_uniform(x, 20, b, lo, hi, qf);
        CHECK(!memcmp(qr, qf, sizeof qr), "degenerate case %d: fast != ref", c);
        if (c < 3) {
            int z = 1;
            for (int i = 0; i < 20; i++) z &= qr[i] == 0;
            CHECK(z, "degenerate case %d: q must be 0", c);
        } else {
            CHECK(qr[3] == 0 && qr[6] == 0 && qr[4] == 7 && qr[5] == 0, "NaN/Inf clamps: %u %u %u %u", qr[3], qr[6],
                  qr[4], qr[5]);
        }
        uint16_t big[20];
        for (int i = 0; i < 20; i++) big[i] = (uint16_t)(i * 4000);
        ddct_dequant_uniform_ref(big, 20, b, lo, hi, dr);
        ddct_dequant_uniform(big, 20, b, lo, hi, df);
        CHECK(!memcmp(dr, df, sizeof dr), "degenerate dequant %d: fast != ref", c);
        int inr = 1;
        for (int i = 0; i < 20; i++) inr &= (c < 3) ? dr[i] == lo : (dr[i] >= lo && dr[i] <= hi);
        CHECK(inr, "degenerate dequant %d: values", c);
    }
    /* hi == lo: x^ = lo */
    float one = 0.25f, back;
    uint16_t q1 = 9;
    ddct_quant_uniform(&one, 1, 2, 0.25f, 0.25f, &q1);
    ddct_dequant_uniform(&q1, 1, 2, 0.25f, 0.25f, &back);
    CHECK(q1 == 0 && back == 0.25f, "hi == lo");
    /* long random run incl. out-of-range and specials: fast == ref bitwise */
    size_t n = 100003;
    float *xx = malloc(n * sizeof *xx);
    uint16_t *a = malloc(n * 2), *bq = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        xx[i] = (float)(tu_normal() * 2.0);
        if (i % 997 == 0) xx[i] = NAN;
    }
    for (int bits = 1; bits <= 16; bits++) {
        ddct_quant_uniform_ref(xx, n, bits, -1.5f, 2.25f, a);
        ddct_quant_uniform(xx, n, bits, -1.5f, 2.25f, bq);
        CHECK(!memcmp(a, bq, n * 2), "bits=%d long run: fast != ref", bits);
    }
    free(xx);
    free(a);
    free(bq);
}

/* ------------------------------------------------------------ allocation */
static ddct_strategy strat(int n, const int *bits, const double *frac)
{
    ddct_strategy s;
    memset(&s, 0, sizeof s);
    s.n = n;
    for (int i = 0; i < n; i++) {
        s.bits[i] = bits[i];
        s.frac[i] = frac[i];
    }
    return s;
}

static void check_counts_property(const ddct_strategy *s, uint64_t n)
{
    uint64_t c[DDCT_MAX_BITS_LEVELS];
    ddct_alloc_counts(s, n, c);
    uint64_t sum = 0;
    double fsum = 0;
    for (int i = 0; i < s->n; i++) {
        sum += c[i];
        fsum += s->frac[i];
    }
    CHECK(sum == n, "counts sum %llu != n %llu", (unsigned long long)sum, (unsigned long long)n);
    /* largest remainder: each count is floor(quota) or +1, and +1s go to the largest
     * remainders (earlier class on ties) */
    int ok = 1;
    double rem[DDCT_MAX_BITS_LEVELS];
    int up[DDCT_MAX_BITS_LEVELS];
    for (int i = 0; i < s->n; i++) {
        double q = s->frac[i] / (fabs(fsum - 1) <= 1e-12 ? 1.0 : fsum) * (double)n;
        double f = floor(q);
        rem[i] = q - f;
        up[i] = (double)c[i] == f + 1;
        ok &= (double)c[i] == f || up[i];
    }
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->n; j++)
            if (up[j] && !up[i]) ok &= rem[j] > rem[i] || (rem[j] == rem[i] && j < i);
    CHECK(ok, "largest remainder property, n=%llu", (unsigned long long)n);
}

static void test_alloc_counts(void)
{
    uint64_t c[DDCT_MAX_BITS_LEVELS];
    ddct_strategy s = strat(2, (const int[]){2, 0}, (const double[]){0.5, 0.5});
    ddct_alloc_counts(&s, 7, c);
    CHECK(c[0] == 4 && c[1] == 3, "2:0.5,0:0.5 n=7 -> %llu,%llu (extra goes to class 0)", (unsigned long long)c[0],
          (unsigned long long)c[1]);
    ddct_alloc_counts(&s, 1, c);
    CHECK(c[0] == 1 && c[1] == 0, "n=1");
    ddct_alloc_counts(&s, 0, c);
    CHECK(c[0] == 0 && c[1] == 0, "n=0");
    ddct_alloc_counts(&s, 1000001, c);
    CHECK(c[0] == 500001 && c[1] == 500000, "n=1000001");
    s = strat(3, (const int[]){4, 2, 0}, (const double[]){0.34, 0.33, 0.33});
    ddct_alloc_counts(&s, 100, c);
    CHECK(c[0] == 34 && c[1] == 33 && c[2] == 33, "0.34/0.33/0.33 n=100");
    ddct_alloc_counts(&s, 1, c);
    CHECK(c[0] == 1 && c[1] == 0 && c[2] == 0, "0.34/0.33/0.33 n=1");
    ddct_alloc_counts(&s, 2, c);
    CHECK(c[0] == 1 && c[1] == 1 && c[2] == 0, "0.34/0.33/0.33 n=2");
    ddct_alloc_counts(&s, 3, c);
    CHECK(c[0] == 1 && c[1] == 1 && c[2] == 1, "0.34/0.33/0.33 n=3");
    /* unsorted strategy: order kept */
    s = strat(2, (const int[]){0, 8}, (const double[]){0.25, 0.75});
    ddct_alloc_counts(&s, 10, c);
    CHECK(c[0] == 3 && c[1] == 7, "0:0.25,8:0.75 n=10 -> %llu,%llu", (unsigned long long)c[0],
          (unsigned long long)c[1]);
    /* sloppy sum (parser allows 1e-3): normalised, still sums to n */
    s = strat(2, (const int[]){2, 0}, (const double[]){0.5, 0.4995});
    check_counts_property(&s, 1000000);
    s = strat(2, (const int[]){2, 0}, (const double[]){0.5005, 0.5});
    check_counts_property(&s, 999999);
    /* zero fractions */
    s = strat(3, (const int[]){8, 4, 0}, (const double[]){0.0, 1.0, 0.0});
    ddct_alloc_counts(&s, 5, c);
    CHECK(c[0] == 0 && c[1] == 5 && c[2] == 0, "0/1/0");
    s = strat(2, (const int[]){8, 4}, (const double[]){0.0, 0.0});
    ddct_alloc_counts(&s, 5, c);
    CHECK(c[0] == 5 && c[1] == 0, "all-zero fractions: class 0 takes all");
    /* many random strategies and sizes */
    static const uint64_t ns[] = {0, 1, 2, 3, 4, 5, 7, 10, 16, 99, 100, 101, 1023, 65537, 1000003};
    for (int rep = 0; rep < 300; rep++) {
        int k = 1 + (int)rnd(DDCT_MAX_BITS_LEVELS);
        int bits[DDCT_MAX_BITS_LEVELS];
        double frac[DDCT_MAX_BITS_LEVELS], tot = 0;
        for (int i = 0; i < k; i++) {
            bits[i] = (int)rnd(9);
            frac[i] = rep % 3 == 0 ? 1.0 / k : (double)(rnd(100) + (rep % 2));
            tot += frac[i];
        }
        if (tot == 0) frac[0] = tot = 1;
        for (int i = 0; i < k; i++) frac[i] /= tot;
        s = strat(k, bits, frac);
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) check_counts_property(&s, ns[j]);
        check_counts_property(&s, rnd(100000));
    }
}

/* expected width of patch i by brute force: rank = number of patches before it */
static int before(float a, size_t ia, float b, size_t ib) /* is (b, ib) ranked before (a, ia)? */
{
    int na = isnan(a), nb = isnan(b);
    if (na != nb) return na;
    if (!na && a != b) return b > a;
    return ib < ia;
}

static void check_rank(const ddct_strategy *s, const float *sc, size_t n)
{
    uint8_t *w = malloc(n ? n : 1);
    memset(w, 0xEE, n ? n : 1);
    ddct_err e;
    ddct_err_clear(&e);
    int rc = ddct_alloc_by_rank(s, sc, n, w, &e);
    CHECK(rc == 0, "alloc_by_rank rc=%d %s", rc, e.msg);
    uint64_t c[DDCT_MAX_BITS_LEVELS];
    ddct_alloc_counts(s, n, c);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        size_t rank = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i && before(sc[i], i, sc[j], j)) rank++;
        int cls = 0;
        uint64_t acc = c[0];
        while (rank >= acc && cls + 1 < s->n) acc += c[++cls];
        ok &= w[i] == s->bits[cls];
    }
    CHECK(ok, "ranking widths wrong, n=%zu", n);
    free(w);
}

static void test_alloc_rank(void)
{
    ddct_strategy s = strat(2, (const int[]){2, 0}, (const double[]){0.5, 0.5});
    /* ties: equal scores, lower index first */
    float t1[5] = {1, 1, 1, 1, 1};
    check_rank(&s, t1, 5);
    uint8_t w[8];
    ddct_alloc_by_rank(&s, t1, 5, w, NULL);
    CHECK(w[0] == 2 && w[1] == 2 && w[2] == 2 && w[3] == 0 && w[4] == 0, "ties by index");
    float t2[6] = {0.5f, NAN, 3.0f, -0.0f, 0.0f, 3.0f};
    ddct_alloc_by_rank(&s, t2, 6, w, NULL);
    CHECK(w[2] == 2 && w[5] == 2 && w[0] == 2 && w[3] == 0 && w[4] == 0 && w[1] == 0, "scores with NaN/-0");
    check_rank(&s, t2, 6);
    /* -0 == +0: index decides */
    float t3[2] = {-0.0f, 0.0f};
    ddct_alloc_by_rank(&s, t3, 2, w, NULL);
    CHECK(w[0] == 2 && w[1] == 0, "-0 and +0 tie");
    /* unsorted, 3 classes */
    ddct_strategy s3 = strat(3, (const int[]){1, 8, 4}, (const double[]){0.34, 0.33, 0.33});
    for (int rep = 0; rep < 60; rep++) {
        size_t n = rnd(90);
        float sc[90];
        for (size_t i = 0; i < n; i++) {
            sc[i] = (float)rnd(6) - 2.0f; /* many ties */
            if (rnd(10) == 0) sc[i] = NAN;
            if (rnd(10) == 0) sc[i] = rnd(2) ? INFINITY : -INFINITY;
            if (rnd(10) == 0) sc[i] = -0.0f;
        }
        check_rank(rep % 2 ? &s : &s3, sc, n);
    }
    check_rank(&s, t1, 0);
    check_rank(&s, t1, 1);
    check_rank(&s3, t1, 3);
    /* errors */
    ddct_err e;
    ddct_strategy bad = s;
    bad.n = 0;
    CHECK(ddct_alloc_by_rank(&bad, t1, 5, w, &e) == DDCT_ERR_PARAM, "0 classes");
    bad = s;
    bad.bits[1] = 17;
    CHECK(ddct_alloc_by_rank(&bad, t1, 5, w, &e) == DDCT_ERR_PARAM, "width 17");
    CHECK(ddct_alloc_by_rank(&s, NULL, 0, NULL, &e) == DDCT_OK, "n=0 with NULL buffers");
    /* large: 10^6 patches, check ordering consistency */
    size_t n = 1000000;
    float *sc = malloc(n * sizeof *sc);
    uint8_t *ww = malloc(n);
    for (size_t i = 0; i < n; i++) sc[i] = (float)(tu_unif() < 0.1 ? 0.5 : tu_unif());
    CHECK(ddct_alloc_by_rank(&s3, sc, n, ww, &e) == DDCT_OK, "large");
    /* every 1-bit patch scores >= every 8-bit one >= every 4-bit one; counts match */
    float min1 = INFINITY, max8 = -INFINITY, min8 = INFINITY, max4 = -INFINITY;
    size_t cnt[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (ww[i] == 1) { cnt[0]++; min1 = fminf(min1, sc[i]); }
        else if (ww[i] == 8) { cnt[1]++; max8 = fmaxf(max8, sc[i]); min8 = fminf(min8, sc[i]); }
        else if (ww[i] == 4) { cnt[2]++; max4 = fmaxf(max4, sc[i]); }
    }
    uint64_t c[DDCT_MAX_BITS_LEVELS];
    ddct_alloc_counts(&s3, n, c);
    CHECK(cnt[0] == c[0] && cnt[1] == c[1] && cnt[2] == c[2], "large counts");
    CHECK(min1 >= max8 && min8 >= max4, "large ordering");
    free(sc);
    free(ww);
}

/* The radix-sort allocation equals the qsort _ref one: ties, NaN, +-0, +-Inf, every class. */
static void test_alloc_rank_fast(void)
{
    ddct_strategy s2 = strat(2, (const int[]){2, 0}, (const double[]){0.5, 0.5});
    ddct_strategy s3 = strat(3, (const int[]){1, 8, 4}, (const double[]){0.34, 0.33, 0.33});
    ddct_strategy s5 = strat(5, (const int[]){0, 3, 16, 2, 1}, (const double[]){0.1, 0.2, 0.3, 0.25, 0.15});
    const ddct_strategy *ss[3] = {&s2, &s3, &s5};
    size_t sizes[] = {1, 2, 3, 17, 255, 256, 257, 4096, 65536 + 7, 300000};
    ddct_err e;
    int ok = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *sc = malloc(n * sizeof *sc);
        uint8_t *a = malloc(n), *b = malloc(n);
        for (int mode = 0; mode < 4; mode++) {
            for (size_t i = 0; i < n; i++) {
                float v = (float)tu_unif();
                if (mode == 1) v = (float)rnd(7) - 3.0f;             /* many ties, negatives */
                if (mode == 2) v = ldexpf((float)tu_unif(), -(int)rnd(140)); /* subnormals, wide range */
                if (mode == 3) v = 1.0f;                             /* all equal: digits skipped */
                unsigned r = rnd(40);
                if (mode != 3 && r == 0) v = NAN;
                if (mode != 3 && r == 1) v = -0.0f;
                if (mode != 3 && r == 2) v = 0.0f;
                if (mode != 3 && r == 3) v = rnd(2) ? INFINITY : -INFINITY;
                sc[i] = v;
            }
            const ddct_strategy *s = ss[(si + (size_t)mode) % 3];
            ok &= ddct_alloc_by_rank(s, sc, n, a, &e) == 0 && ddct_alloc_by_rank_ref(s, sc, n, b, &e) == 0;
            ok &= memcmp(a, b, n) == 0;
        }
        free(sc);
        free(a);
        free(b);
    }
    CHECK(ok, "radix-sort allocation differs from the qsort _ref");
}

int main(void)
{
    test_bitpack();
    test_quant();
    test_alloc_counts();
    test_alloc_rank();
    test_alloc_rank_fast();
    return TEST_SUMMARY();
}
