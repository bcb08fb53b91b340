/* test_rans.c — static rANS coder (src/entropy/rans.c). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/cpu.h"
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

/* ------------------------------------------------------------ four-state decoders */
enum { D_GET, D_CTX, D_CTX_REF, D_RUN, D_RUN_REF, D_MIX, D_METHODS };
static const char *dname[D_METHODS] = {"get_x4", "ctx_x4", "ctx_x4_ref", "run_x4", "run_x4_ref", "mixture"};

/* What a decode ended with: comparable across methods. */
typedef struct {
    int init_rc, failed, finish_rc, lane;
    uint32_t xs[4];
    size_t pos; /* bytes consumed */
} x4_end;

/* Symbols [a, b) with method m (not D_MIX); run methods split the range into runs of one context. */
static void x4_chunk(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t a, size_t b, int m)
{
    switch (m) {
    case D_GET:
        for (size_t i = a; i < b; i++) out[i] = ddct_rans_dec_get_x4(d, ctx[i]);
        break;
    case D_CTX: ddct_rans_dec_ctx_x4(d, ctx + a, out + a, b - a); break;
    case D_CTX_REF: ddct_rans_dec_ctx_x4_ref(d, ctx + a, out + a, b - a); break;
    default:
        for (size_t i = a; i < b;) {
            size_t j = i + 1;
            while (j < b && ctx[j] == ctx[i]) j++;
            (m == D_RUN ? ddct_rans_dec_run_x4 : ddct_rans_dec_run_x4_ref)(d, ctx[i], out + i, j - i);
            i = j;
        }
    }
}

/* Decode n symbols of the four-state blob in[0..len) in contexts ctx with method m (D_MIX: chunks
 * of random lengths, each with a random method). */
static x4_end x4_decode(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *out, int m)
{
    x4_end r;
    memset(&r, 0, sizeof r);
    ddct_rans_dec d;
    ddct_err e;
    r.init_rc = ddct_rans_dec_init_x4(&d, in, len, &e);
    if (r.init_rc) return r;
    if (m != D_MIX) {
        x4_chunk(&d, ctx, out, 0, n, m);
    } else {
        for (size_t i = 0; i < n;) {
            size_t k = rnd(4) == 0 ? rnd(1000) : rnd(9);
            if (k > n - i) k = n - i;
            x4_chunk(&d, ctx, out, i, i + k, (int)rnd(D_MIX));
            i += k;
        }
    }
    r.failed = d.failed;
    r.finish_rc = ddct_rans_dec_finish(&d, &e);
    r.lane = d.lane;
    memcpy(r.xs, d.xs, sizeof r.xs);
    r.pos = (size_t)(d.p - in);
    ddct_rans_dec_free(&d);
    return r;
}

/* Every method on one blob: the same end (and symbols, where nothing failed) as get_x4. good: the
 * blob is intact, so nothing may fail and the symbols must be sym. Returns 1 if get_x4 failed. */
static int x4_all(const char *what, const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, const uint16_t *sym,
                  int good)
{
    uint16_t *o0 = malloc((n ? n : 1) * sizeof *o0), *o1 = malloc((n ? n : 1) * sizeof *o1);
    x4_end r0 = x4_decode(in, len, ctx, n, o0, D_GET);
    int bad = 0;
    if (good) {
        bad |= r0.init_rc || r0.failed || r0.finish_rc || (n && memcmp(o0, sym, n * sizeof *o0));
        CHECK(!bad, "%s: get_x4 decode (init %d failed %d finish %d)", what, r0.init_rc, r0.failed, r0.finish_rc);
    }
    for (int m = D_CTX; m < D_METHODS; m++) {
        x4_end r1 = x4_decode(in, len, ctx, n, o1, m);
        int same = r1.init_rc == r0.init_rc && r1.failed == r0.failed && r1.finish_rc == r0.finish_rc;
        if (same && !r0.init_rc && !r0.failed)
            same = r1.lane == r0.lane && r1.pos == r0.pos && !memcmp(r1.xs, r0.xs, sizeof r1.xs) &&
                   (!n || !memcmp(o0, o1, n * sizeof *o0));
        if (!same) {
            CHECK(same, "%s: %s differs from get_x4 (failed %d/%d finish %d/%d)", what, dname[m], r1.failed, r0.failed,
                  r1.finish_rc, r0.finish_rc);
            bad = 1;
        }
    }
    free(o0);
    free(o1);
    (void)bad;
    return r0.init_rc || r0.failed;
}

/* Encode with the fast coder and its reference: byte-identical blobs (one and four states). */
static void enc_both(const char *what, const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int pb,
                     ddct_buf *b4)
{
    ddct_buf b1, r1, r4;
    ddct_buf_init(&b1);
    ddct_buf_init(&r1);
    ddct_buf_init(&r4);
    ddct_err e;
    int rc = ddct_rans_encode_x4(sym, ctx, n, nctx, pb, b4, &e);
    rc |= ddct_rans_encode_x4_ref(sym, ctx, n, nctx, pb, &r4, &e);
    rc |= ddct_rans_encode(sym, ctx, n, nctx, pb, &b1, &e);
    rc |= ddct_rans_encode_ref(sym, ctx, n, nctx, pb, &r1, &e);
    CHECK(rc == 0, "%s: encode: %s", what, e.msg);
    CHECK(b4->len == r4.len && !memcmp(b4->p, r4.p, r4.len), "%s: encode_x4 differs from encode_x4_ref", what);
    CHECK(b1.len == r1.len && !memcmp(b1.p, r1.p, r1.len), "%s: encode differs from encode_ref", what);
    ddct_buf_free(&b1);
    ddct_buf_free(&r1);
    ddct_buf_free(&r4);
}

/* Random streams: alphabets 1..4096 (per context: zero-heavy, wide, single-symbol or unused),
 * 1..64 contexts (random, in runs, a tile's band map), lengths 0..200000, every precision. */
static void gen_stream(uint16_t *sym, uint8_t *ctx, size_t n, int nctx, int A, int pattern)
{
    int kind[DDCT_RANS_MAX_CONTEXTS];
    double q[DDCT_RANS_MAX_CONTEXTS];
    uint16_t one[DDCT_RANS_MAX_CONTEXTS];
    for (int c = 0; c < nctx; c++) {
        kind[c] = (int)rnd(4); /* 0 zero-heavy, 1 wide, 2 single, 3 geometric */
        q[c] = 0.05 + 0.9 * tu_unif();
        one[c] = (uint16_t)rnd((unsigned)A);
    }
    uint8_t c = 0;
    for (size_t i = 0; i < n; i++) {
        switch (pattern) {
        case 0: c = (uint8_t)rnd((unsigned)nctx); break;
        case 1:
            if (rnd(40) == 0) c = (uint8_t)rnd((unsigned)nctx);
            break;
        case 2: {
            int u = (int)(i % 256) / 16, v = (int)(i % 16), s = u + v;
            c = (uint8_t)((s == 0 ? 0 : s <= 2 ? 1 : s <= 5 ? 2 : s <= 10 ? 3 : s <= 18 ? 4 : 5) % nctx);
            break;
        }
        default: c = 0;
        }
        ctx[i] = c;
        switch (kind[c]) {
        case 0: sym[i] = rnd(100) < 90 ? 0 : (uint16_t)rnd((unsigned)A); break;
        case 1: sym[i] = (uint16_t)rnd((unsigned)A); break;
        case 2: sym[i] = one[c]; break;
        default: sym[i] = geo(q[c], (unsigned)A);
        }
    }
}

/* One stream through an encoder pair (fast == _ref) and every decoder of its kind, from an
 * exact-size copy of the blob (ASan sees any read past its end); 1 if a decoder failed. */
typedef void (*enc_pair_fn)(const char *, const uint16_t *, const uint8_t *, size_t, int, int, ddct_buf *);
typedef int (*dec_all_fn)(const char *, const uint8_t *, size_t, const uint8_t *, size_t, const uint16_t *, int);
static int stream_trial(const char *what, enc_pair_fn enc, dec_all_fn all, const uint16_t *sym, const uint8_t *ctx,
                        size_t n, int nctx, int pb)
{
    ddct_buf b;
    ddct_buf_init(&b);
    enc(what, sym, ctx, n, nctx, pb, &b);
    uint8_t *cp = malloc(b.len);
    memcpy(cp, b.p, b.len);
    int f = all(what, cp, b.len, ctx, n, sym, 1);
    free(cp);
    ddct_buf_free(&b);
    return f;
}

static void test_x4_decoders(void)
{
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 17, 31, 64, 255, 256, 257, 1023, 4097, 9999,
                                  65536, 65539, 131073, 200000};
    const size_t NL = sizeof lens / sizeof *lens;
    size_t nmax = 200000;
    uint16_t *sym = malloc(nmax * sizeof *sym);
    uint8_t *ctx = malloc(nmax);
    int trials = 0, fails = 0;
    for (int t = 0; t < 60; t++) {
        size_t n = t < (int)NL ? lens[t] : rnd(t % 3 ? 5000 : 100000);
        int nctx = t % 5 == 0 ? 1 : 1 + (int)rnd(64), pattern = (int)rnd(4);
        int A = t % 7 == 0 ? 1 : 1 + (int)rnd(t % 2 ? 4096 : 20);
        int pb = t % 5 == 0 ? 0 : 12 + (int)rnd(4);
        gen_stream(sym, ctx, n, nctx, A, pattern);
        char what[96];
        snprintf(what, sizeof what, "x4 n=%zu nctx=%d A=%d pb=%d pattern=%d", n, nctx, A, pb, pattern);
        fails += stream_trial(what, enc_both, x4_all, sym, ctx, n, nctx, pb);
        trials++;
    }
    CHECK(fails == 0, "four-state decoders: %d of %d streams failed", fails, trials);
    printf("  four-state decoders: %d streams, every method and mixture agree\n", trials);
    free(sym);
    free(ctx);
}

/* Truncated, corrupted and random four-state blobs, bad contexts: every method fails or succeeds
 * like get_x4 (and ends in the same state), never a crash or a read outside the blob (ASan). */
static void test_x4_corrupt(void)
{
    size_t n = 3000;
    uint16_t *sym = malloc(n * sizeof *sym);
    uint8_t *ctx = malloc(n), *bctx = malloc(n);
    int rejected = 0, trials = 0;
    for (int k = 0; k < 4; k++) {
        gen_stream(sym, ctx, n, k == 3 ? 1 : 6, k == 0 ? 16 : 300, k % 3);
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_err e;
        CHECK(ddct_rans_encode_x4(sym, ctx, n, k == 3 ? 1 : 6, k == 1 ? 12 : 0, &b, &e) == 0, "x4 corrupt: encode");
        /* truncations: every one through the tables and states, then a sample */
        for (size_t t = 0; t < b.len; t += t < 96 ? 1 : 1 + rnd(9)) {
            uint8_t *cp = malloc(t ? t : 1);
            memcpy(cp, b.p, t);
            rejected += x4_all("x4 truncated", t ? cp : NULL, t, ctx, n, sym, 0);
            trials++;
            free(cp);
        }
        /* flips and overwrites */
        uint8_t *cp = malloc(b.len);
        for (int rep = 0; rep < 150; rep++) {
            memcpy(cp, b.p, b.len);
            for (int j = 1 + (int)rnd(3); j-- > 0;) {
                size_t at = rnd((unsigned)b.len);
                if (rep % 2) cp[at] ^= (uint8_t)(1u << rnd(8));
                else cp[at] = (uint8_t)tu_next();
            }
            rejected += x4_all("x4 corrupted", cp, b.len, ctx, n, sym, 0);
            trials++;
        }
        /* the intact blob with bad contexts: out of range, empty tables (unused contexts) */
        memcpy(cp, b.p, b.len);
        for (int rep = 0; rep < 20; rep++) {
            memcpy(bctx, ctx, n);
            for (int j = 1 + (int)rnd(4); j-- > 0;) bctx[rnd((unsigned)n)] = (uint8_t)rnd(rep % 2 ? 256 : 8);
            rejected += x4_all("x4 bad contexts", cp, b.len, bctx, n, sym, 0);
            trials++;
        }
        free(cp);
        ddct_buf_free(&b);
    }
    /* random blobs */
    for (int rep = 0; rep < 300; rep++) {
        size_t len = rnd(200);
        uint8_t *rb = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) rb[i] = (uint8_t)tu_next();
        if (len > 0) rb[0] = (uint8_t)(0x80 | (rb[0] & (rep % 2 ? 63 : 1)));
        for (size_t i = 0; i < 64; i++) bctx[i] = (uint8_t)rnd(rep % 3 ? 2 : 70);
        rejected += x4_all("x4 random", len ? rb : NULL, len, bctx, 64, sym, 0);
        trials++;
        free(rb);
    }
    printf("  four-state, damaged blobs / bad contexts: %d of %d rejected, every method the same\n", rejected, trials);
    /* a decoder of the other kind fails cleanly */
    for (size_t i = 0; i < 64; i++) ctx[i] = 0, sym[i] = (uint16_t)(i % 3);
    ddct_buf b1, b4;
    ddct_buf_init(&b1);
    ddct_buf_init(&b4);
    ddct_err e;
    ddct_rans_encode(sym, ctx, 64, 1, 0, &b1, &e);
    ddct_rans_encode_x4(sym, ctx, 64, 1, 0, &b4, &e);
    ddct_rans_dec d;
    uint16_t o[64];
    for (int m = 0; m < 4; m++) {
        CHECK(ddct_rans_dec_init(&d, b1.p, b1.len, &e) == 0, "one-state init");
        if (m == 0) (void)ddct_rans_dec_get_x4(&d, 0);
        if (m == 1) ddct_rans_dec_ctx_x4(&d, ctx, o, 8);
        if (m == 2) ddct_rans_dec_run_x4(&d, 0, o, 8);
        if (m == 3) ddct_rans_dec_ctx_x4_ref(&d, ctx, o, 8);
        CHECK(d.failed, "four-state decoding (%d) of a one-state decoder fails", m);
        ddct_rans_dec_free(&d);
    }
    CHECK(ddct_rans_dec_init_x4(&d, b4.p, b4.len, &e) == 0, "four-state init");
    (void)ddct_rans_dec_get(&d, 0);
    CHECK(d.failed, "ddct_rans_dec_get on a four-state decoder fails");
    ddct_rans_dec_free(&d);
    ddct_buf_free(&b1);
    ddct_buf_free(&b4);
    free(sym);
    free(ctx);
    free(bctx);
}

/* ------------------------------------------------------------ word blobs */
enum { W_GET, W_CTX, W_CTX_REF, W_RUN, W_RUN_REF, W_MIX, W_METHODS };
static const char *wname[W_METHODS] = {"get_w", "ctx_w", "ctx_w_ref", "run_w", "run_w_ref", "mixture"};

typedef struct {
    int init_rc, failed, finish_rc, lane, ctx_ok; /* ctx_ok: every context decodable */
    uint32_t xw[DDCT_RANS_WLANES];
    size_t pos;
} w_end;

static void w_chunk(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t a, size_t b, int m)
{
    switch (m) {
    case W_GET:
        for (size_t i = a; i < b; i++) out[i] = ddct_rans_dec_get_w(d, ctx[i]);
        break;
    case W_CTX: ddct_rans_dec_ctx_w(d, ctx + a, out + a, b - a); break;
    case W_CTX_REF: ddct_rans_dec_ctx_w_ref(d, ctx + a, out + a, b - a); break;
    default:
        for (size_t i = a; i < b;) {
            size_t j = i + 1;
            while (j < b && ctx[j] == ctx[i]) j++;
            (m == W_RUN ? ddct_rans_dec_run_w : ddct_rans_dec_run_w_ref)(d, ctx[i], out + i, j - i);
            i = j;
        }
    }
}

/* Decode n symbols of the word blob in[0..len) in contexts ctx with method m and kernel level k
 * (W_MIX: chunks of random lengths, each with a random method). */
static w_end w_decode(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *out, int m, int k)
{
    w_end r;
    memset(&r, 0, sizeof r);
    ddct_rans_dec d;
    ddct_err e;
    r.init_rc = ddct_rans_dec_init_w(&d, in, len, &e);
    if (r.init_rc) return r;
    CHECK(d.wk == (int)ddct_simd_best(), "word decoder: kernel %d, best %d", d.wk, (int)ddct_simd_best());
    d.wk = k;
    r.ctx_ok = 1;
    for (size_t i = 0; i < n; i++) r.ctx_ok &= ctx[i] < d.nwx && d.fx[ctx[i]].pb;
    memset(out, 0xAA, n * sizeof *out);
    if (m != W_MIX) {
        w_chunk(&d, ctx, out, 0, n, m);
    } else {
        for (size_t i = 0; i < n;) {
            size_t c = rnd(4) == 0 ? rnd(1000) : rnd(40);
            if (c > n - i) c = n - i;
            w_chunk(&d, ctx, out, i, i + c, (int)rnd(W_MIX));
            i += c;
        }
    }
    r.failed = d.failed;
    r.finish_rc = ddct_rans_dec_finish(&d, &e);
    r.lane = d.lane;
    memcpy(r.xw, d.xw, sizeof r.xw);
    r.pos = (size_t)(d.p - in);
    ddct_rans_dec_free(&d);
    return r;
}

/* Every method and every kernel this machine runs on one word blob: the same end as get_w (the
 * failed flag, the finish result, the states, lane, position and symbols, zeros from a failure on),
 * except that where a context is bad ddct_rans_dec_ctx_w fails before decoding (then only the flags
 * are compared). good: intact blob. Returns 1 if get_w failed. */
static int w_all(const char *what, const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, const uint16_t *sym,
                 int good)
{
    uint16_t *o0 = malloc((n ? n : 1) * sizeof *o0), *o1 = malloc((n ? n : 1) * sizeof *o1);
    w_end r0 = w_decode(in, len, ctx, n, o0, W_GET, DDCT_SIMD_REF);
    if (good) {
        int bad = r0.init_rc || r0.failed || r0.finish_rc || (n && memcmp(o0, sym, n * sizeof *o0));
        CHECK(!bad, "%s: get_w decode (init %d failed %d finish %d)", what, r0.init_rc, r0.failed, r0.finish_rc);
    }
    for (int k = DDCT_SIMD_REF; k < DDCT_SIMD_COUNT; k++) {
        if (!ddct_simd_supported((ddct_simd)k)) continue;
        for (int m = W_CTX; m < W_METHODS; m++) {
            w_end r1 = w_decode(in, len, ctx, n, o1, m, k);
            int same = r1.init_rc == r0.init_rc && r1.failed == r0.failed && r1.finish_rc == r0.finish_rc;
            if (same && !r0.init_rc && (!r0.failed || r0.ctx_ok))
                same = r1.lane == r0.lane && r1.pos == r0.pos && !memcmp(r1.xw, r0.xw, sizeof r1.xw) &&
                       (!n || !memcmp(o0, o1, n * sizeof *o0));
            CHECK(same, "%s: %s (%s) differs from get_w (failed %d/%d finish %d/%d)", what, wname[m],
                  ddct_simd_name((ddct_simd)k), r1.failed, r0.failed, r1.finish_rc, r0.finish_rc);
        }
    }
    free(o0);
    free(o1);
    return r0.init_rc || r0.failed;
}

static void enc_w_both(const char *what, const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int pb,
                       ddct_buf *b)
{
    ddct_buf r;
    ddct_buf_init(&r);
    ddct_err e;
    int rc = ddct_rans_encode_w(sym, ctx, n, nctx, pb, b, &e);
    rc |= ddct_rans_encode_w_ref(sym, ctx, n, nctx, pb, &r, &e);
    CHECK(rc == 0, "%s: encode_w: %s", what, e.msg);
    CHECK(b->len == r.len && !memcmp(b->p, r.p, r.len), "%s: encode_w differs from encode_w_ref", what);
    ddct_buf_free(&r);
}

static void test_w_decoders(void)
{
    static const size_t lens[] = {0,  1,  2,  3,  7,   8,   9,   15,   16,   17,    31,    32,    33,    47,
                                  63, 64, 65, 100, 200, 255, 256, 257, 1023, 4097, 9999, 65536, 65539, 200000};
    const size_t NL = sizeof lens / sizeof *lens;
    size_t nmax = 200000;
    uint16_t *sym = malloc(nmax * sizeof *sym);
    uint8_t *ctx = malloc(nmax);
    int trials = 0, fails = 0;
    for (int t = 0; t < 70; t++) {
        size_t n = t < (int)NL ? lens[t] : t % 4 == 0 ? rnd(201) : rnd(t % 3 ? 5000 : 100000);
        int nctx = t % 5 == 0 ? 1 : t % 11 == 0 ? 64 : 1 + (int)rnd(64), pattern = (int)rnd(4);
        int A = t % 7 == 0 ? 1 : t % 13 == 0 ? 4096 : 1 + (int)rnd(t % 2 ? 4096 : 20);
        int pb = t % 5 == 0 ? 0 : 12 + (int)rnd(4);
        gen_stream(sym, ctx, n, nctx, A, pattern);
        if (t % 13 == 0)
            for (size_t i = 0; i < n; i++) sym[i] = (uint16_t)rnd(4096); /* the widest alphabet */
        char what[96];
        snprintf(what, sizeof what, "word n=%zu nctx=%d A=%d pb=%d pattern=%d", n, nctx, A, pb, pattern);
        fails += stream_trial(what, enc_w_both, w_all, sym, ctx, n, nctx, pb);
        trials++;
    }
    CHECK(fails == 0, "word decoders: %d of %d streams failed", fails, trials);
    printf("  word decoders: %d streams, every method, kernel and mixture agree\n", trials);
    free(sym);
    free(ctx);
}

/* Truncated, corrupted and random word blobs, bad contexts: every method and kernel fails or
 * succeeds like get_w (and ends in the same state), never a crash or a read outside the blob (ASan);
 * word blobs and the other kinds refuse each other's decoders. */
static void test_w_corrupt(void)
{
    size_t n = 3000;
    uint16_t *sym = malloc(n * sizeof *sym);
    uint8_t *ctx = malloc(n), *bctx = malloc(n);
    int rejected = 0, trials = 0;
    for (int k = 0; k < 5; k++) {
        const int nctx = k == 3 ? 1 : 6;
        gen_stream(sym, ctx, n, nctx, k == 0 ? 16 : 300, k % 3);
        if (k == 4) /* a sparse stream (about 0.1 bits per symbol): the last bytes cover many rounds */
            for (size_t i = 0; i < n; i++) sym[i] = rnd(100) == 0 ? (uint16_t)(1 + rnd(5)) : 0;
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_err e;
        CHECK(ddct_rans_encode_w(sym, ctx, n, nctx, k == 1 ? 12 : 0, &b, &e) == 0, "word corrupt: encode");
        /* truncations: every one through the tables and states and near the end, then a sample */
        for (size_t t = 0; t < b.len; t += t < 160 || t + 80 > b.len ? 1 : 1 + rnd(9)) {
            uint8_t *cp = malloc(t ? t : 1);
            memcpy(cp, b.p, t);
            rejected += w_all("word truncated", t ? cp : NULL, t, ctx, n, sym, 0);
            trials++;
            free(cp);
        }
        /* flips and overwrites */
        uint8_t *cp = malloc(b.len);
        for (int rep = 0; rep < 100; rep++) {
            memcpy(cp, b.p, b.len);
            for (int j = 1 + (int)rnd(3); j-- > 0;) {
                size_t at = rep % 4 == 0 ? b.len - 1 - rnd(40 < b.len ? 40 : (unsigned)b.len) : rnd((unsigned)b.len);
                if (rep % 2) cp[at] ^= (uint8_t)(1u << rnd(8));
                else cp[at] = (uint8_t)tu_next();
            }
            rejected += w_all("word corrupted", cp, b.len, ctx, n, sym, 0);
            trials++;
        }
        /* the intact blob with bad contexts: out of range, empty tables (unused contexts) */
        memcpy(cp, b.p, b.len);
        for (int rep = 0; rep < 20; rep++) {
            memcpy(bctx, ctx, n);
            for (int j = 1 + (int)rnd(4); j-- > 0;) bctx[rnd((unsigned)n)] = (uint8_t)rnd(rep % 2 ? 256 : 8);
            rejected += w_all("word bad contexts", cp, b.len, bctx, n, sym, 0);
            trials++;
        }
        /* decoding fewer or more symbols than the blob holds */
        rejected += w_all("word short", cp, b.len, ctx, n - 1 - rnd(40), sym, 0);
        memcpy(bctx, ctx, n);
        trials++;
        free(cp);
        /* a byte more at the end: never decodes */
        cp = malloc(b.len + 1);
        memcpy(cp, b.p, b.len);
        cp[b.len] = 0;
        w_all("word + 1 byte", cp, b.len + 1, ctx, n, sym, 0);
        ddct_rans_dec d;
        CHECK(ddct_rans_dec_init_w(&d, cp, b.len + 1, &e) == 0, "word + 1 byte: init");
        uint16_t *o = malloc(n * sizeof *o);
        ddct_rans_dec_ctx_w(&d, ctx, o, n);
        CHECK(ddct_rans_dec_finish(&d, &e) != 0, "word + 1 byte: finish must fail");
        ddct_rans_dec_free(&d);
        free(o);
        free(cp);
        ddct_buf_free(&b);
    }
    /* random blobs */
    for (int rep = 0; rep < 300; rep++) {
        size_t len = rnd(300);
        uint8_t *rb = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) rb[i] = (uint8_t)tu_next();
        if (len > 0) rb[0] = (uint8_t)(0xC0 | (rb[0] & (rep % 2 ? 63 : 1)));
        for (size_t i = 0; i < 200; i++) bctx[i] = (uint8_t)rnd(rep % 3 ? 2 : 70);
        rejected += w_all("word random", len ? rb : NULL, len, bctx, 200, sym, 0);
        trials++;
        free(rb);
    }
    printf("  word, damaged blobs / bad contexts: %d of %d rejected, every method and kernel the same\n", rejected,
           trials);
    /* kind confusion, both ways */
    for (size_t i = 0; i < 64; i++) ctx[i] = 0, sym[i] = (uint16_t)(i % 3);
    ddct_buf b1, b4, bw;
    ddct_buf_init(&b1);
    ddct_buf_init(&b4);
    ddct_buf_init(&bw);
    ddct_err e;
    ddct_rans_encode(sym, ctx, 64, 1, 0, &b1, &e);
    ddct_rans_encode_x4(sym, ctx, 64, 1, 0, &b4, &e);
    ddct_rans_encode_w(sym, ctx, 64, 1, 0, &bw, &e);
    CHECK(bw.len > 0 && (bw.p[0] >> 6) == 3, "word blob header");
    ddct_rans_dec d;
    CHECK(ddct_rans_dec_init(&d, bw.p, bw.len, &e) != 0, "one-state init refuses a word blob");
    CHECK(ddct_rans_dec_init_x4(&d, bw.p, bw.len, &e) != 0, "four-state init refuses a word blob");
    CHECK(ddct_rans_dec_init_w(&d, b1.p, b1.len, &e) != 0, "word init refuses a one-state blob");
    CHECK(ddct_rans_dec_init_w(&d, b4.p, b4.len, &e) != 0, "word init refuses a four-state blob");
    uint16_t o[64];
    for (int m = 0; m < 8; m++) {
        const ddct_buf *b = m < 4 ? &b1 : &b4;
        CHECK((m < 4 ? ddct_rans_dec_init : ddct_rans_dec_init_x4)(&d, b->p, b->len, &e) == 0, "init");
        if (m % 4 == 0) (void)ddct_rans_dec_get_w(&d, 0);
        if (m % 4 == 1) ddct_rans_dec_ctx_w(&d, ctx, o, 40);
        if (m % 4 == 2) ddct_rans_dec_run_w(&d, 0, o, 40);
        if (m % 4 == 3) ddct_rans_dec_ctx_w_ref(&d, ctx, o, 8);
        CHECK(d.failed, "word decoding (%d) of a one- or four-state decoder fails", m);
        ddct_rans_dec_free(&d);
    }
    for (int m = 0; m < 5; m++) {
        CHECK(ddct_rans_dec_init_w(&d, bw.p, bw.len, &e) == 0, "word init");
        if (m == 0) (void)ddct_rans_dec_get(&d, 0);
        if (m == 1) (void)ddct_rans_dec_get_x4(&d, 0);
        if (m == 2) ddct_rans_dec_ctx_x4(&d, ctx, o, 40);
        if (m == 3) ddct_rans_dec_run_x4(&d, 0, o, 40);
        if (m == 4) ddct_rans_dec_run(&d, 0, o, 40);
        CHECK(d.failed, "one- or four-state decoding (%d) of a word decoder fails", m);
        ddct_rans_dec_free(&d);
    }
    /* a larger prob_bits is lowered to DDCT_RANS_W_PROB_BITS_MAX (the table says so) */
    for (int pb = 12; pb <= 15; pb++) {
        ddct_buf_free(&bw);
        ddct_buf_init(&bw);
        CHECK(ddct_rans_encode_w(sym, ctx, 64, 1, pb, &bw, &e) == 0, "encode_w pb %d", pb);
        int want = pb < DDCT_RANS_W_PROB_BITS_MAX ? pb : DDCT_RANS_W_PROB_BITS_MAX;
        CHECK(bw.len > 1 && 12 + ((bw.p[1] >> 2) & 3) == want, "encode_w pb %d: table pb %d", pb,
              12 + ((bw.p[1] >> 2) & 3));
    }
    ddct_buf_free(&b1);
    ddct_buf_free(&b4);
    ddct_buf_free(&bw);
    free(sym);
    free(ctx);
    free(bctx);
}

/* An independent word-blob encoder (rans.h's layout, plain division), with a precision per context
 * (pbs[c], 12..15): what ddct_rans_encode_w writes where every pbs[c] is its precision, and blobs it
 * never writes (other or mixed precisions) for the decoders. */
static void w_encode_any(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, const int *pbs, ddct_buf *out)
{
    ddct_rans_table *tab = malloc((size_t)nctx * sizeof *tab);
    uint64_t *cnt = calloc((size_t)nctx * DDCT_RANS_MAX_SYMBOLS, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[(size_t)ctx[i] * DDCT_RANS_MAX_SYMBOLS + sym[i]]++;
    ddct_buf_u8(out, (uint8_t)(0xC0 | (nctx - 1)));
    for (int c = 0; c < nctx; c++) {
        ddct_rans_table_build(&tab[c], cnt + (size_t)c * DDCT_RANS_MAX_SYMBOLS, DDCT_RANS_MAX_SYMBOLS, pbs[c], NULL);
        ddct_rans_table_write(&tab[c], out);
    }
    uint8_t *buf = malloc(2 * n + 4 * DDCT_RANS_WLANES), *p = buf + 2 * n + 4 * DDCT_RANS_WLANES;
    uint32_t x[DDCT_RANS_WLANES];
    for (int l = 0; l < DDCT_RANS_WLANES; l++) x[l] = 1u << 16;
    for (size_t i = n; i-- > 0;) {
        const ddct_rans_table *t = &tab[ctx[i]];
        uint32_t *xl = &x[i % DDCT_RANS_WLANES], f = t->freq[sym[i]], st = t->cum[sym[i]];
        if (t->kind == DDCT_RANS_SINGLE) continue;
        if ((uint64_t)*xl >= ((uint64_t)f << (32 - t->prob_bits))) {
            p -= 2;
            p[0] = (uint8_t)*xl;
            p[1] = (uint8_t)(*xl >> 8);
            *xl >>= 16;
        }
        *xl = (*xl / f << t->prob_bits) + *xl % f + st;
    }
    for (int l = DDCT_RANS_WLANES; l-- > 0;) {
        p -= 4;
        for (int k = 0; k < 4; k++) p[k] = (uint8_t)(x[l] >> (8 * k));
    }
    ddct_buf_put(out, p, (size_t)(buf + 2 * n + 4 * DDCT_RANS_WLANES - p));
    free(buf);
    free(cnt);
    free(tab);
}

/* Word blobs of every precision 12..15, one for all contexts or one per context (not what
 * ddct_rans_encode_w writes above 12 bits, but valid): every method and kernel decodes them alike;
 * at 12 bits the independent encoder writes ddct_rans_encode_w's bytes. */
static void test_w_precisions(void)
{
    size_t nmax = 30000;
    uint16_t *sym = malloc(nmax * sizeof *sym);
    uint8_t *ctx = malloc(nmax);
    int fails = 0, trials = 0;
    for (int t = 0; t < 24; t++) {
        size_t n = t < 4 ? (size_t)(t * 37) : 1 + rnd(t % 2 ? 30000 : 3000);
        int nctx = 1 + (int)rnd(t % 3 ? 8 : 64), A = 1 + (int)rnd(t % 4 ? 40 : 4096), pbs[DDCT_RANS_MAX_CONTEXTS];
        gen_stream(sym, ctx, n, nctx, A, (int)rnd(4));
        for (int c = 0; c < nctx; c++) pbs[c] = t % 2 ? 12 + t / 2 % 4 : 12 + (int)rnd(4);
        ddct_buf b;
        ddct_buf_init(&b);
        w_encode_any(sym, ctx, n, nctx, pbs, &b);
        char what[96];
        snprintf(what, sizeof what, "word precisions n=%zu nctx=%d A=%d pb=%d%s", n, nctx, A, pbs[0],
                 t % 2 ? "" : " (mixed)");
        if (t % 8 == 1) { /* all 12: the library's bytes */
            ddct_buf lb;
            ddct_buf_init(&lb);
            ddct_err e;
            CHECK(ddct_rans_encode_w(sym, ctx, n, nctx, 12, &lb, &e) == 0, "%s: encode_w", what);
            CHECK(lb.len == b.len && !memcmp(lb.p, b.p, b.len), "%s: encode_w differs from the plain encoder", what);
            ddct_buf_free(&lb);
        }
        uint8_t *cp = malloc(b.len);
        memcpy(cp, b.p, b.len);
        fails += w_all(what, cp, b.len, ctx, n, sym, 1);
        trials++;
        free(cp);
        ddct_buf_free(&b);
    }
    CHECK(fails == 0, "word precisions: %d of %d failed", fails, trials);
    printf("  word blobs at every precision, mixed too: %d streams, every method and kernel agree\n", trials);
    free(sym);
    free(ctx);
}

int main(void)
{
    test_w_decoders();
    test_w_corrupt();
    test_w_precisions();
    test_x4_decoders();
    test_x4_corrupt();
    test_dec_run();
    test_malformed_tables();
    test_small();
    test_tables();
    test_skewed();
    test_contexts();
    test_corrupt();
    return TEST_SUMMARY();
}
