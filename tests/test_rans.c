/* test_rans.c — static rANS coder (src/entropy/rans.c). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "entropy/rans.h"
#include "testutil.h"

static unsigned rnd(unsigned m) { return m ? (unsigned)(tu_next() % m) : 0; }

/* geometric-ish symbol: P(s) ~ q^s over [0, A) */
static uint16_t geo(double q, unsigned A)
{
    double u = tu_unif();
    unsigned s = (unsigned)(log(1.0 - u) / log(q));
    return (uint16_t)(s < A ? s : A - 1);
}

/* empirical entropy (bits) of sym under contexts ctx */
static double entropy_bits(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx)
{
    uint64_t *cnt = calloc((size_t)nctx * DDCT_RANS_MAX_SYMBOLS, sizeof *cnt);
    uint64_t tot[DDCT_RANS_MAX_CONTEXTS] = {0};
    for (size_t i = 0; i < n; i++) {
        int c = ctx ? ctx[i] : 0;
        cnt[(size_t)c * DDCT_RANS_MAX_SYMBOLS + sym[i]]++;
        tot[c]++;
    }
    double h = 0;
    for (int c = 0; c < nctx; c++)
        for (int s = 0; s < DDCT_RANS_MAX_SYMBOLS; s++) {
            uint64_t k = cnt[(size_t)c * DDCT_RANS_MAX_SYMBOLS + s];
            if (k) h += (double)k * -log2((double)k / (double)tot[c]);
        }
    free(cnt);
    return h;
}

/* bytes of the header + tables that ddct_rans_encode writes for this input */
static size_t table_bytes(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int pb)
{
    uint64_t *cnt = calloc((size_t)nctx * DDCT_RANS_MAX_SYMBOLS, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[(size_t)(ctx ? ctx[i] : 0) * DDCT_RANS_MAX_SYMBOLS + sym[i]]++;
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_rans_table t;
    for (int c = 0; c < nctx; c++) {
        ddct_rans_table_build(&t, cnt + (size_t)c * DDCT_RANS_MAX_SYMBOLS, DDCT_RANS_MAX_SYMBOLS, pb, NULL);
        ddct_rans_table_write(&t, &b);
    }
    size_t len = 1 + b.len;
    ddct_buf_free(&b);
    free(cnt);
    return len;
}

static void report(const char *what, const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, size_t len)
{
    double h = entropy_bits(sym, ctx, n, nctx) / 8;
    size_t tb = table_bytes(sym, ctx, n, nctx, 15);
    double stream = (double)(len - tb);
    printf("  %-20s n=%zu ctx=%2d  entropy %9.0f B | blob %8zu B (%+.3f%%) = tables %5zu B + stream %8.0f B "
           "(%+.3f%%)\n",
           what, n, nctx, h, len, 100.0 * ((double)len - h) / h, tb, stream, 100.0 * (stream - h) / h);
    CHECK(stream <= h * 1.01 + 8, "%s: stream %.0f bytes vs entropy %.0f", what, stream, h);
}

/* Encode, check determinism, decode from an exact-size copy, compare. Returns blob size. */
static size_t round_trip(const char *what, const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int pb)
{
    ddct_buf b, b2;
    ddct_buf_init(&b);
    ddct_buf_init(&b2);
    ddct_err e;
    ddct_err_clear(&e);
    ddct_buf_u8(&b2, 0xAB); /* appending after existing content must work too */
    int rc = ddct_rans_encode(sym, ctx, n, nctx, pb, &b, &e);
    int rc2 = ddct_rans_encode(sym, ctx, n, nctx, pb, &b2, &e);
    CHECK(rc == 0 && rc2 == 0, "%s: encode rc=%d %s", what, rc, e.msg);
    CHECK(b2.len == b.len + 1 && !memcmp(b.p, b2.p + 1, b.len), "%s: output not deterministic", what);
    uint8_t *copy = malloc(b.len ? b.len : 1);
    memcpy(copy, b.p, b.len);
    uint16_t *out = malloc((n ? n : 1) * sizeof *out);
    rc = ddct_rans_decode(copy, b.len, ctx, n, out, &e);
    CHECK(rc == 0, "%s: decode rc=%d %s", what, rc, e.msg);
    CHECK(!n || !memcmp(out, sym, n * sizeof *out), "%s: decoded symbols differ", what);
    /* asking for one symbol fewer / more must be detected */
    if (n > 0) {
        rc = ddct_rans_decode(copy, b.len, ctx, n - 1, out, &e);
        CHECK(rc == DDCT_ERR_FORMAT || rc == 0, "%s: n-1 rc=%d", what, rc);
    }
    size_t len = b.len;
    free(out);
    free(copy);
    ddct_buf_free(&b);
    ddct_buf_free(&b2);
    return len;
}

static void test_skewed(void)
{
    static const struct {
        double q;
        unsigned A;
    } cases[] = {{0.3, 4}, {0.5, 16}, {0.7, 64}, {0.9, 256}, {0.97, 4096}, {0.05, 8}, {0.999, 4096}};
    size_t n = 400000;
    uint16_t *sym = malloc(n * sizeof *sym);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (size_t i = 0; i < n; i++) sym[i] = geo(cases[k].q, cases[k].A);
        char what[64];
        snprintf(what, sizeof what, "geo q=%.3f A=%u", cases[k].q, cases[k].A);
        size_t len = round_trip(what, sym, NULL, n, 1, 0);
        report(what, sym, NULL, n, 1, len);
        CHECK((double)len <= entropy_bits(sym, NULL, n, 1) / 8 * 1.01, "%s: blob over entropy + 1%%", what);
    }
    free(sym);
}

static void test_contexts(void)
{
    size_t n = 300000;
    uint16_t *sym = malloc(n * sizeof *sym);
    uint8_t *ctx = malloc(n);
    /* 64 contexts, each with its own distribution, context from position */
    for (size_t i = 0; i < n; i++) {
        ctx[i] = (uint8_t)(tu_next() % 64);
        sym[i] = (uint16_t)(geo(0.2 + 0.0125 * ctx[i], 300) + ctx[i] * 5);
    }
    size_t len = round_trip("64 contexts", sym, ctx, n, 64, 0);
    report("64 contexts", sym, ctx, n, 64, len);
    for (size_t i = 0; i < n; i++) sym[i] = (uint16_t)(geo(0.2 + 0.0125 * ctx[i], 16) + ctx[i] * 5);
    len = round_trip("64 ctx, 16 sym", sym, ctx, n, 64, 0);
    report("64 ctx, 16 sym", sym, ctx, n, 64, len);
    /* some contexts unused, one single-symbol */
    for (size_t i = 0; i < n; i++) {
        ctx[i] = (uint8_t)(i % 3 == 0 ? 7 : (i % 3 == 1 ? 20 : 63));
        sym[i] = ctx[i] == 20 ? 4095 : geo(0.6, 40);
    }
    round_trip("sparse contexts", sym, ctx, n, 64, 13);
    /* streaming decoder with contexts from the previous symbol */
    uint8_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        ctx[i] = prev;
        sym[i] = (uint16_t)(prev == 0 ? geo(0.3, 4) : (prev == 1 ? geo(0.8, 4) : rnd(4)));
        prev = (uint8_t)sym[i];
    }
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_err e;
    CHECK(ddct_rans_encode(sym, ctx, n, 4, 14, &b, &e) == 0, "encode prev-ctx");
    ddct_rans_dec d;
    CHECK(ddct_rans_dec_init(&d, b.p, b.len, &e) == 0, "dec_init");
    int ok = 1;
    prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t s = ddct_rans_dec_get(&d, prev);
        ok &= s == sym[i];
        prev = (uint8_t)s;
    }
    CHECK(ok && ddct_rans_dec_finish(&d, &e) == 0, "streaming decode with symbol-dependent contexts");
    ddct_rans_dec_free(&d);
    ddct_buf_free(&b);
    /* every precision */
    for (int pb = 12; pb <= 15; pb++) {
        for (size_t i = 0; i < 50000; i++) {
            ctx[i] = (uint8_t)(i & 1);
            sym[i] = (uint16_t)(i & 1 ? rnd(4096) : geo(0.99, 4096));
        }
        char what[32];
        snprintf(what, sizeof what, "prob_bits=%d", pb);
        round_trip(what, sym, ctx, 50000, 2, pb);
    }
    free(sym);
    free(ctx);
}

static void test_small(void)
{
    /* empty input */
    size_t len = round_trip("empty", NULL, NULL, 0, 1, 0);
    CHECK(len == 1 + 1 + 4, "empty blob is %zu bytes", len);
    len = round_trip("empty 64 ctx", NULL, NULL, 0, 64, 0);
    CHECK(len == 1 + 64 + 4, "empty 64-context blob is %zu bytes", len);
    /* single symbol alphabet: costs nothing per symbol */
    uint16_t one[1000];
    for (int i = 0; i < 1000; i++) one[i] = 3000;
    len = round_trip("single symbol", one, NULL, 1000, 1, 0);
    CHECK(len == 1 + 1 + 2 + 4, "single-symbol blob is %zu bytes", len);
    round_trip("n=1", one, NULL, 1, 1, 0);
    uint16_t two[3] = {0, 4095, 0};
    round_trip("extremes", two, NULL, 3, 1, 12);
    /* table sizes */
    uint64_t cnt[4] = {700, 200, 80, 20};
    ddct_rans_table t, t2;
    ddct_err e;
    CHECK(ddct_rans_table_build(&t, cnt, 4, 15, &e) == 0, "build");
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_rans_table_write(&t, &b);
    printf("  4-symbol table {700,200,80,20} at 15 bits: %zu bytes; ", b.len);
    CHECK(b.len <= 11, "4-symbol table %zu bytes", b.len);
    ddct_rd r;
    ddct_rd_init(&r, b.p, b.len);
    CHECK(ddct_rans_table_read(&t2, &r, &e) == 0 && r.pos == b.len && t2.nsym == 4 &&
              !memcmp(t.freq, t2.freq, sizeof t.freq),
          "table round trip");
    ddct_buf_free(&b);
    ddct_buf_init(&b);
    CHECK(ddct_rans_table_build(&t, cnt, 4, 12, &e) == 0, "build 12");
    ddct_rans_table_write(&t, &b);
    printf("at 12 bits: %zu bytes\n", b.len);
    ddct_buf_free(&b);
}

static void test_tables(void)
{
    static uint64_t cnt[DDCT_RANS_MAX_SYMBOLS];
    ddct_rans_table t, t2;
    ddct_err e;
    for (int rep = 0; rep < 400; rep++) {
        int A = 1 + (int)rnd(rep % 4 == 0 ? DDCT_RANS_MAX_SYMBOLS : 50);
        int pb = 12 + (int)rnd(4);
        memset(cnt, 0, sizeof cnt);
        for (int s = 0; s < A; s++) {
            switch (rep % 5) {
            case 0: cnt[s] = rnd(3) ? 0 : rnd(1000); break;
            case 1: cnt[s] = 1; break;
            case 2: cnt[s] = s == 0 ? (uint64_t)1 << 62 : rnd(2); break; /* huge + tiny */
            case 3: cnt[s] = tu_next(); break;                            /* full 64-bit */
            default: cnt[s] = (uint64_t)(1e6 * pow(0.5, s)); break;
            }
        }
        int rc = ddct_rans_table_build(&t, cnt, A, pb, &e);
        CHECK(rc == 0, "build rep %d: %s", rep, e.msg);
        uint32_t sum = 0;
        int ok = 1, present = 0;
        for (int s = 0; s < t.nsym; s++) {
            sum += t.freq[s];
            ok &= (cnt[s] != 0) == (t.freq[s] != 0);
            present += cnt[s] != 0;
        }
        for (int s = t.nsym; s < A; s++) ok &= cnt[s] == 0;
        CHECK(ok && (present == 0 ? t.kind == DDCT_RANS_EMPTY : sum == (1u << pb)),
              "rep %d: freqs wrong (sum %u, pb %d)", rep, sum, pb);
        /* serialise and read back */
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_rans_table_write(&t, &b);
        ddct_rd r;
        ddct_rd_init(&r, b.p, b.len);
        rc = ddct_rans_table_read(&t2, &r, &e);
        CHECK(rc == 0 && r.pos == b.len && t2.nsym == t.nsym && t2.kind == t.kind &&
                  !memcmp(t.freq, t2.freq, sizeof t.freq),
              "rep %d: table round trip", rep);
        /* normalisation quality: cross-entropy close to entropy for big tables */
        if (rep % 5 == 4) {
            double tot = 0, h = 0;
            for (int s = 0; s < A; s++) tot += (double)cnt[s];
            for (int s = 0; s < A; s++)
                if (cnt[s]) h += (double)cnt[s] * -log2((double)cnt[s] / tot);
            double c = ddct_rans_table_cost_bits(&t, cnt, A);
            CHECK(c >= h - 1e-6 * h && c <= h * 1.01 + 64, "rep %d: cost %.1f vs entropy %.1f", rep, c, h);
        }
        ddct_buf_free(&b);
    }
    /* parameter errors */
    CHECK(ddct_rans_table_build(&t, cnt, 4097, 15, &e) == DDCT_ERR_PARAM, "4097 symbols");
    CHECK(ddct_rans_table_build(&t, cnt, 4, 11, &e) == DDCT_ERR_PARAM, "11 bits");
    CHECK(ddct_rans_table_build(&t, cnt, 4, 16, &e) == DDCT_ERR_PARAM, "16 bits");
    uint16_t s[3] = {1, 4096, 2};
    uint8_t c[3] = {0, 0, 1};
    ddct_buf b;
    ddct_buf_init(&b);
    CHECK(ddct_rans_encode(s, NULL, 3, 1, 0, &b, &e) == DDCT_ERR_PARAM, "symbol 4096");
    s[1] = 5;
    CHECK(ddct_rans_encode(s, c, 3, 1, 0, &b, &e) == DDCT_ERR_PARAM, "context >= nctx");
    CHECK(ddct_rans_encode(s, c, 3, 0, 0, &b, &e) == DDCT_ERR_PARAM, "0 contexts");
    CHECK(ddct_rans_encode(s, c, 3, 65, 0, &b, &e) == DDCT_ERR_PARAM, "65 contexts");
    CHECK(ddct_rans_encode(s, c, 3, 2, 0, &b, &e) == 0, "ok");
    /* decoding with a context that was never used / out of range */
    uint16_t out[3];
    uint8_t c2[3] = {0, 0, 2};
    CHECK(ddct_rans_decode(b.p, b.len, c2, 3, out, &e) == DDCT_ERR_FORMAT, "ctx out of range at decode");
    uint8_t c3[3] = {1, 1, 1};
    int rc = ddct_rans_decode(b.p, b.len, c3, 3, out, &e);
    CHECK(rc == DDCT_ERR_FORMAT || rc == 0, "wrong contexts: rc %d", rc);
    ddct_buf_free(&b);
}

/* The array decoder and the streaming decoder must agree on every input. */
static int decode_both(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *out)
{
    ddct_err e;
    int rc = ddct_rans_decode(in, len, ctx, n, out, &e);
    uint16_t *o2 = malloc((n ? n : 1) * sizeof *o2);
    ddct_rans_dec d;
    int rc2 = ddct_rans_dec_init(&d, in, len, &e);
    if (rc2 == 0) {
        for (size_t i = 0; i < n; i++) o2[i] = ddct_rans_dec_get(&d, ctx ? ctx[i] : 0);
        rc2 = ddct_rans_dec_finish(&d, &e);
        ddct_rans_dec_free(&d);
    }
    CHECK(rc == rc2, "array decoder rc %d, streaming rc %d", rc, rc2);
    if (rc == 0 && rc2 == 0) CHECK(!memcmp(out, o2, n * sizeof *o2), "array and streaming decoders differ");
    free(o2);
    return rc;
}

/* corrupt / truncated / random input: error or garbage, never a crash (ASan) */
static void test_corrupt(void)
{
    size_t n = 2000;
    uint16_t *sym = malloc(n * sizeof *sym), *out = malloc(n * sizeof *out);
    uint8_t *ctx = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ctx[i] = (uint8_t)(i % 5);
        sym[i] = ctx[i] == 4 ? 9 : geo(0.6 + 0.05 * ctx[i], 100 + 900 * ctx[i]);
    }
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_err e;
    CHECK(ddct_rans_encode(sym, ctx, n, 5, 0, &b, &e) == 0, "encode");
    int errors = 0, trials = 0;
    /* every truncation */
    for (size_t t = 0; t < b.len; t++) {
        uint8_t *cp = malloc(t ? t : 1);
        memcpy(cp, b.p, t);
        int rc = decode_both(t ? cp : NULL, t, ctx, n, out);
        CHECK(rc == DDCT_ERR_FORMAT || rc == 0, "truncated rc %d", rc);
        errors += rc != 0;
        trials++;
        free(cp);
    }
    printf("  truncated blobs: %d of %d rejected\n", errors, trials);
    CHECK(errors == trials, "every truncation of this blob should be rejected");
    /* bit flips and byte overwrites */
    errors = trials = 0;
    uint8_t *cp = malloc(b.len);
    for (int rep = 0; rep < 3000; rep++) {
        memcpy(cp, b.p, b.len);
        int k = 1 + (int)rnd(3);
        for (int j = 0; j < k; j++) {
            size_t at = rnd((unsigned)b.len);
            if (rep % 2) cp[at] ^= (uint8_t)(1u << rnd(8));
            else cp[at] = (uint8_t)tu_next();
        }
        int rc = decode_both(cp, b.len, ctx, n, out);
        CHECK(rc == DDCT_ERR_FORMAT || rc == 0, "flipped rc %d", rc);
        errors += rc != 0;
        trials++;
    }
    printf("  corrupted blobs: %d of %d rejected (the rest decode to garbage)\n", errors, trials);
    free(cp);
    /* random blobs of random length, with random contexts and streaming reads */
    const size_t tbl = table_bytes(sym, ctx, n, 5, 15);
    errors = trials = 0;
    for (int rep = 0; rep < 3000; rep++) {
        size_t len = rnd(300) + (rep % 3 == 2 ? tbl : 0);
        uint8_t *rb = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) rb[i] = (uint8_t)tu_next();
        if (len > 0 && rep % 2) rb[0] &= 63; /* valid header more often */
        if (len > 1 && rep % 4 == 1) rb[1] = (uint8_t)(2 | (rnd(4) << 2));
        if (rep % 3 == 2 && len >= tbl) memcpy(rb, b.p, tbl); /* valid tables, random state + stream */
        for (size_t i = 0; i < 50; i++) ctx[i] = (uint8_t)rnd(rep % 3 == 2 ? 5 : 70);
        int rc = decode_both(len ? rb : NULL, len, ctx, 50, out);
        CHECK(rc == DDCT_ERR_FORMAT || rc == 0, "random rc %d", rc);
        errors += rc != 0;
        trials++;
        free(rb);
    }
    printf("  random blobs: %d of %d rejected\n", errors, trials);
    ddct_buf_free(&b);
    free(sym);
    free(out);
    free(ctx);
}

static int read_table(const uint8_t *p, size_t len, ddct_rans_table *t)
{
    uint8_t *cp = malloc(len ? len : 1);
    memcpy(cp, p, len);
    ddct_rd r;
    ddct_rd_init(&r, cp, len);
    ddct_err e;
    int rc = ddct_rans_table_read(t, &r, &e);
    if (rc == 0 && r.pos != len) rc = -1; /* must consume exactly the table */
    free(cp);
    return rc;
}

static void test_malformed_tables(void)
{
    ddct_rans_table t;
    static const struct {
        uint8_t b[12];
        size_t len;
        int ok;
        const char *what;
    } cases[] = {
        {{0x00}, 1, 1, "empty"},
        {{0x04}, 1, 0, "empty with precision bits"},
        {{0x10}, 1, 0, "reserved bits"},
        {{0x03}, 1, 0, "kind 3"},
        {{0x01, 0x05}, 2, 1, "single symbol 5"},
        {{0x01, 0xFF, 0x1F}, 3, 1, "single symbol 4095"},
        {{0x01, 0x80, 0x20}, 3, 0, "single symbol 4096"},
        {{0x01, 0x80}, 2, 0, "truncated varint"},
        {{0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 12, 0, "overlong varint"},
        {{0x02, 0x00, 0x80, 0x10}, 4, 1, "2 symbols, 12-bit: 2048 + 2048"},
        {{0x02, 0x00, 0xFF, 0x1F}, 4, 1, "2 symbols, 12-bit: 4095 + 1"},
        {{0x02, 0x00, 0x80, 0x20}, 4, 0, "2 symbols, 12-bit: 4096 + 0"},
        {{0x0E, 0x00, 0xFF, 0xFF, 0x01}, 5, 1, "2 symbols, 15-bit: 32767 + 1"},
        {{0x0E, 0x00, 0x80, 0x80, 0x02}, 5, 0, "2 symbols, 15-bit: 32768 + 0"},
        {{0x02, 0x01, 0x80, 0x10, 0x80, 0x10}, 6, 0, "3 symbols, sum of two = M"},
        {{0x02, 0x02, 0x00, 0x01, 0x05}, 5, 1, "zero run of 2 then freq"},
        {{0x02, 0x02, 0x00, 0x02}, 4, 1, "zero run up to the last symbol"},
        {{0x02, 0x02, 0x00, 0x03}, 4, 0, "zero run past the alphabet"},
        {{0x02, 0x02, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}, 8, 0, "huge zero run"},
        {{0x02, 0xFE, 0x1F}, 3, 0, "alphabet 4096 truncated"},
        {{0x02, 0xFF, 0x1F}, 3, 0, "alphabet 4097"},
        {{0x02, 0x00}, 2, 0, "general truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = read_table(cases[i].b, cases[i].len, &t);
        CHECK((rc == 0) == cases[i].ok, "table '%s': rc %d", cases[i].what, rc);
        if (rc == 0) {
            uint32_t sum = 0;
            for (int s = 0; s < t.nsym; s++) sum += t.freq[s];
            CHECK(t.kind == DDCT_RANS_EMPTY || (sum == (1u << t.prob_bits) && t.freq[t.nsym - 1] > 0),
                  "table '%s': sum %u", cases[i].what, sum);
        }
    }
    /* initial state outside [2^23, 2^31) */
    static const uint8_t st_lo[] = {0x00, 0x02, 0x00, 0x80, 0x10, 0xFF, 0xFF, 0x7F, 0x00};
    static const uint8_t st_hi[] = {0x00, 0x02, 0x00, 0x80, 0x10, 0x00, 0x00, 0x00, 0x80};
    static const uint8_t st_ok[] = {0x00, 0x02, 0x00, 0x80, 0x10, 0x00, 0x00, 0x80, 0x00};
    uint16_t out[4];
    uint8_t *cp = malloc(sizeof st_lo);
    ddct_err e;
    memcpy(cp, st_lo, sizeof st_lo);
    CHECK(ddct_rans_decode(cp, sizeof st_lo, NULL, 0, out, &e) == DDCT_ERR_FORMAT, "state below 2^23");
    memcpy(cp, st_hi, sizeof st_hi);
    CHECK(ddct_rans_decode(cp, sizeof st_hi, NULL, 0, out, &e) == DDCT_ERR_FORMAT, "state >= 2^31");
    memcpy(cp, st_ok, sizeof st_ok);
    CHECK(ddct_rans_decode(cp, sizeof st_ok, NULL, 0, out, &e) == DDCT_OK, "state 2^23, no symbols");
    cp[0] = 0x40;
    CHECK(ddct_rans_decode(cp, sizeof st_ok, NULL, 0, out, &e) == DDCT_ERR_FORMAT, "reserved header bits");
    free(cp);
}

/* ddct_rans_dec_run (tight loops) against ddct_rans_dec_run_ref (ddct_rans_dec_get per symbol):
 * the same symbols, state, position and failure, on good streams (runs of any length in
 * contexts of every kind: zero-heavy, spread, single-symbol, empty, out of range) and on
 * truncated and corrupted ones. */
static void test_dec_run(void)
{
    enum { N = 20000 };
    uint16_t *sym = malloc(N * sizeof *sym), *o1 = malloc(N * sizeof *o1), *o2 = malloc(N * sizeof *o2);
    uint8_t *ctx = malloc(N);
    size_t *runs = malloc(N * sizeof *runs);
    int bad = 0;
    for (int trial = 0; trial < 24; trial++) { /* 0..11 one state, 12..23 four */
        int pb = trial % 2 ? 12 : 15;
        size_t n = 0, nr = 0;
        while (n < N) {
            size_t len = 1 + rnd(trial % 3 == 0 ? 8 : 700);
            if (len > N - n) len = N - n;
            uint8_t c = (uint8_t)rnd(4); /* 0 zero-heavy, 1 spread, 2 single (always 5), 3 wide */
            for (size_t i = 0; i < len; i++) {
                ctx[n + i] = c;
                sym[n + i] = c == 0 ? (rnd(1000) < 997 ? 0 : (uint16_t)rnd(9)) : c == 1 ? geo(0.7, 40) : c == 2 ? 5
                                                                                                   : (uint16_t)rnd(4096);
            }
            runs[nr++] = len;
            n += len;
        }
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_err e;
        int x4 = trial >= 12;
        CHECK((x4 ? ddct_rans_encode_x4 : ddct_rans_encode)(sym, ctx, n, 5, pb, &b, &e) == 0, "dec_run: encode");
        {
            /* each kind of decoder refuses the other kind of blob */
            ddct_rans_dec d;
            CHECK((x4 ? ddct_rans_dec_init : ddct_rans_dec_init_x4)(&d, b.p, b.len, &e) == DDCT_ERR_FORMAT,
                  "dec_run: %s blob refused by the other decoder", x4 ? "four-state" : "one-state");
        }
        int (*init)(ddct_rans_dec *, const uint8_t *, size_t, ddct_err *) = x4 ? ddct_rans_dec_init_x4
                                                                               : ddct_rans_dec_init;
        void (*run)(ddct_rans_dec *, int, uint16_t *, size_t) = x4 ? ddct_rans_dec_run_x4 : ddct_rans_dec_run;
        void (*ref)(ddct_rans_dec *, int, uint16_t *, size_t) = x4 ? ddct_rans_dec_run_x4_ref : ddct_rans_dec_run_ref;
        for (int mode = 0; mode < 4; mode++) {
            /* 0 intact, 1 truncated, 2 a flipped byte, 3 a context out of range / empty */
            size_t len = mode == 1 ? b.len - 1 - rnd(b.len / 2) : b.len;
            uint8_t *cp = malloc(len);
            memcpy(cp, b.p, len);
            if (mode == 2) cp[len / 2 + rnd((unsigned)(len / 2))] ^= (uint8_t)(1 + rnd(255));
            ddct_rans_dec d1, d2;
            if (init(&d1, cp, len, &e)) {
                free(cp);
                continue;
            }
            init(&d2, cp, len, &e);
            size_t off = 0;
            for (size_t r = 0; r < nr; r++) {
                int c = mode == 3 && r == nr / 2 ? (r & 1 ? 4 : 9) : ctx[off];
                run(&d1, c, o1 + off, runs[r]);
                ref(&d2, c, o2 + off, runs[r]);
                bad |= d1.failed != d2.failed;
                if (!d1.failed) bad |= memcmp(o1 + off, o2 + off, runs[r] * sizeof *o1) != 0;
                off += runs[r];
            }
            bad |= d1.failed != d2.failed ||
                   (!d1.failed && (d1.x != d2.x || d1.p != d2.p || d1.lane != d2.lane ||
                                   memcmp(d1.xs, d2.xs, sizeof d1.xs) != 0));
            if (mode == 0) bad |= d1.failed || memcmp(o1, sym, n * sizeof *o1) != 0 || ddct_rans_dec_finish(&d1, &e);
            if (mode == 3) bad |= !d1.failed;
            ddct_rans_dec_free(&d1);
            ddct_rans_dec_free(&d2);
            free(cp);
        }
        ddct_buf_free(&b);
    }
    CHECK(!bad, "dec_run(_x4) matches dec_run(_x4)_ref (good, truncated, corrupt streams, bad contexts)");
    free(sym);
    free(o1);
    free(o2);
    free(ctx);
    free(runs);
}

int main(void)
{
    test_dec_run();
    test_malformed_tables();
    test_small();
    test_tables();
    test_skewed();
    test_contexts();
    test_corrupt();
    return TEST_SUMMARY();
}
