/* test_baselines.c — the baseline lossy codecs: BitDelta-Initial and mixed-precision SVD. */
#include <math.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/lowrank.h"
#include "common/dtype.h"
#include "testutil.h"

/* OpenBLAS thread control (weak: the test still links against another BLAS, and then skips). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads

/* ------------------------------------------------------------------ helpers */

typedef struct {
    ddct_buf params, side, data;
} enc;

static void enc_free(enc *x)
{
    ddct_buf_free(&x->params);
    ddct_buf_free(&x->side);
    ddct_buf_free(&x->data);
}

static size_t enc_bytes(const enc *x) { return x->params.len + x->side.len + x->data.len; }

static int encode(const ddct_codec_traits *ct, const float *d, int ndim, const uint64_t *shape, uint64_t n,
                  const ddct_params *p, int threads, enc *x)
{
    ddct_enc_out o;
    ddct_buf_init(&o.params);
    ddct_buf_init(&o.side);
    ddct_buf_init(&o.data);
    ddct_lossy_in in = {.delta = d, .ndim = ndim, .shape = shape, .nelem = n, .params = p, .threads = threads};
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ct->encode_lossy(&in, &o, &e);
    if (!rc) rc = ddct_buf_check(&o.params, &e);
    if (!rc) rc = ddct_buf_check(&o.side, &e);
    if (!rc) rc = ddct_buf_check(&o.data, &e);
    if (rc) fprintf(stderr, "encode: %s\n", e.msg);
    x->params = o.params;
    x->side = o.side;
    x->data = o.data;
    return rc;
}

static ddct_record rec_of(const ddct_codec_traits *ct, const uint8_t *pp, size_t pl, const uint8_t *sp, size_t sl,
                          const uint8_t *dp, size_t dl)
{
    ddct_record r;
    memset(&r, 0, sizeof r);
    r.codec = ct->id;
    r.params = pp;
    r.params_len = pl;
    r.side = sp;
    r.side_len = sl;
    r.data = dp;
    r.data_len = dl;
    return r;
}

static int decode(const ddct_codec_traits *ct, const enc *x, uint64_t n, int threads, int rescale, float *out)
{
    ddct_record r = rec_of(ct, x->params.p, x->params.len, x->side.p, x->side.len, x->data.p, x->data.len);
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ct->decode_lossy(&r, n, threads, rescale, out, &e);
    if (rc) fprintf(stderr, "decode: %s\n", e.msg);
    return rc;
}

/* A delta_out that gathers the slices into an array (values times s), checking their order. */
typedef struct {
    float *out;
    uint64_t next;
    int bad;
} gather;
static int gather_begin(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    gather *g = opaque;
    (void)n, (void)e;
    g->bad += first != g->next;
    return 0;
}
static void gather_put(void *opaque, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    gather *g = opaque;
    (void)rel;
    for (uint64_t i = 0; i < n; i++) g->out[first + i] = d[i] * s;
}
static int gather_end(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    gather *g = opaque;
    (void)e;
    g->next = first + n;
    return 0;
}

/* decode_stream gives decode_lossy's values bit for bit (the svd codec streams row slices). */
static int stream_equals_whole(const ddct_codec_traits *ct, const enc *x, uint64_t n, int threads, int rescale)
{
    ddct_record r = rec_of(ct, x->params.p, x->params.len, x->side.p, x->side.len, x->data.p, x->data.len);
    float *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
    ddct_err e;
    memset(&e, 0, sizeof e);
    ddct_scratch scr = {0};
    gather g = {b, 0, 0};
    ddct_delta_out to = {gather_begin, gather_put, gather_end, &g};
    int ok = ct->decode_lossy(&r, n, threads, rescale, a, &e) == 0 &&
             ct->decode_stream(&r, n, threads, rescale, &scr, &to, &e) == 0 && !g.bad && g.next == n &&
             (!n || !memcmp(a, b, (size_t)n * sizeof *a));
    if (!ok) fprintf(stderr, "stream vs whole: %s\n", e.msg);
    ddct_scratch_free(&scr);
    free(a);
    free(b);
    return ok;
}

/* Decode a record from heap copies of exactly the given lengths (so ASan sees every overread). */
static int decode_copy(const ddct_codec_traits *ct, const uint8_t *pp, size_t pl, const uint8_t *sp, size_t sl,
                       const uint8_t *dp, size_t dl, uint64_t n, float *out)
{
    uint8_t *a = malloc(pl + 1), *b = malloc(sl + 1), *c = malloc(dl + 1);
    if (pl) memcpy(a, pp, pl);
    if (sl) memcpy(b, sp, sl);
    if (dl) memcpy(c, dp, dl);
    ddct_record r = rec_of(ct, pl ? a : NULL, pl, sl ? b : NULL, sl, dl ? c : NULL, dl);
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ct->decode_lossy(&r, n, 2, -1, out, &e);
    if (rc && !e.msg[0]) rc = -1000; /* errors must carry a message */
    free(a);
    free(b);
    free(c);
    return rc;
}

static int same_enc(const enc *a, const enc *b)
{
    return a->params.len == b->params.len && a->side.len == b->side.len && a->data.len == b->data.len &&
           !memcmp(a->params.p, b->params.p, a->params.len) && (!a->side.len || !memcmp(a->side.p, b->side.p, a->side.len)) &&
           (!a->data.len || !memcmp(a->data.p, b->data.p, a->data.len));
}

static double rel_err(const float *d, const float *h, uint64_t n)
{
    double e2 = 0, r2 = 0;
    for (uint64_t i = 0; i < n; i++) {
        e2 += ((double)h[i] - d[i]) * ((double)h[i] - d[i]);
        r2 += (double)d[i] * d[i];
    }
    return r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
}

static double mean_abs(const float *x, uint64_t n)
{
    double s = 0;
    for (uint64_t i = 0; i < n; i++) s += fabs(x[i]);
    return n ? s / (double)n : 0;
}

static float *gauss(uint64_t n, double sd)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (uint64_t i = 0; i < n; i++) x[i] = (float)(tu_normal() * sd);
    return x;
}

/* rank-k (entries ~ N(0, 1) * scale) plus N(0, noise^2). */
static float *lowrank(uint64_t rows, uint64_t cols, int k, double scale, double noise)
{
    float *g = gauss(rows * (uint64_t)k, 1), *h = gauss(cols * (uint64_t)k, 1);
    float *x = malloc(rows * cols * sizeof *x);
    for (uint64_t i = 0; i < rows; i++)
        for (uint64_t j = 0; j < cols; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += (double)g[i * (uint64_t)k + (uint64_t)t] * h[j * (uint64_t)k + (uint64_t)t];
            x[i * cols + j] = (float)(s / sqrt((double)k) * scale + tu_normal() * noise);
        }
    free(g);
    free(h);
    return x;
}

static ddct_params params_with(double bpp, int rescale)
{
    ddct_params p;
    memset(&p, 0, sizeof p);
    p.bpp = bpp;
    p.rescale = rescale;
    p.threads = 1;
    return p;
}

/* rank r stored in svd params: u8 ver, u8 flags, varint rows, varint cols, varint r */
static uint64_t svd_rank(const enc *x)
{
    ddct_rd r;
    ddct_rd_init(&r, x->params.p, x->params.len);
    ddct_rd_u8(&r);
    ddct_rd_u8(&r);
    ddct_rd_varint(&r);
    ddct_rd_varint(&r);
    return ddct_rd_varint(&r);
}

/* ------------------------------------------------------------------ traits */

static void test_traits(void)
{
    const ddct_codec_traits *b = ddct_codec_get(DDCT_CODEC_BITDELTA), *s = ddct_codec_get(DDCT_CODEC_SVD);
    CHECK(b == &ddct_codec_bitdelta && s == &ddct_codec_svd, "table lookup");
    CHECK(b && b->id == DDCT_CODEC_BITDELTA && b->lossy && !strcmp(b->name, "bitdelta") && b->encode_lossy &&
              b->decode_lossy,
          "bitdelta traits");
    CHECK(s && s->id == DDCT_CODEC_SVD && s->lossy && !strcmp(s->name, "svd") && s->encode_lossy && s->decode_lossy,
          "svd traits");
}

/* ------------------------------------------------------------------ bitdelta */

static void bitdelta_case(int ndim, const uint64_t *shape, uint64_t n, int threads)
{
    const ddct_codec_traits *ct = ddct_codec_get(DDCT_CODEC_BITDELTA);
    float *d = gauss(n, 0.01);
    if (n > 3) {
        d[0] = 0.0f;
        d[1] = -0.0f;
        d[2] = -1e-30f;
    }
    ddct_params p = params_with(0, 1);
    enc x;
    int rc = encode(ct, d, ndim, shape, n, &p, threads, &x);
    CHECK(rc == 0, "bitdelta encode n=%llu", (unsigned long long)n);
    if (rc) {
        free(d);
        return;
    }
    CHECK(x.params.len == 5 && x.side.len == 0 && x.data.len == (n + 7) / 8, "bitdelta sizes n=%llu: %zu/%zu/%zu",
          (unsigned long long)n, x.params.len, x.side.len, x.data.len);
    float alpha;
    memcpy(&alpha, x.params.p + 1, 4);
    CHECK(x.params.p[0] == 0 && fabs(alpha - mean_abs(d, n)) <= 1e-6 * mean_abs(d, n) + 1e-30, "alpha %g vs %g",
          alpha, mean_abs(d, n));
    float *o = malloc((n ? n : 1) * sizeof *o);
    int bad = 0;
    for (int rs = -1; rs <= 1; rs++) {
        rc = decode(ct, &x, n, threads, rs, o);
        CHECK(rc == 0, "bitdelta decode");
        for (uint64_t i = 0; i < n; i++)
            if (o[i] != (d[i] < 0 ? -alpha : alpha)) bad++;
    }
    CHECK(bad == 0, "bitdelta: %d values not sign(d) * alpha", bad);
    if (n > 3) CHECK(o[0] == alpha && o[1] == alpha && o[2] == -alpha, "sign(0) = sign(-0) = +");
    /* threads: identical bytes and values */
    enc y;
    rc = encode(ct, d, ndim, shape, n, &p, threads == 1 ? 4 : 1, &y);
    CHECK(rc == 0 && same_enc(&x, &y), "bitdelta: encode depends on threads");
    float *o2 = malloc((n ? n : 1) * sizeof *o2);
    rc = decode(ct, &x, n, threads == 1 ? 4 : 1, -1, o2);
    CHECK(rc == 0 && (!n || !memcmp(o, o2, (size_t)n * sizeof *o)), "bitdelta: decode depends on threads");
    enc_free(&y);
    free(o2);
    free(o);
    free(d);
    enc_free(&x);
}

static void test_bitdelta(void)
{
    uint64_t s2[2] = {37, 53};
    bitdelta_case(2, s2, 37 * 53, 1);
    uint64_t s3[3] = {3, 5, 7};
    bitdelta_case(3, s3, 105, 2);
    uint64_t s1[1];
    uint64_t sizes[] = {0, 1, 7, 8, 9, 64, 65, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        s1[0] = sizes[i];
        bitdelta_case(1, s1, sizes[i], 2);
    }
    uint64_t big[2] = {1024, 777}; /* > 65536 bytes: the parallel path */
    bitdelta_case(2, big, 1024 * 777, 3);

    /* all zero: alpha 0, every sign + */
    {
        const ddct_codec_traits *ct = &ddct_codec_bitdelta;
        float z[10] = {0};
        uint64_t sh[1] = {10};
        ddct_params p = params_with(0, 1);
        enc x;
        float o[10];
        CHECK(encode(ct, z, 1, sh, 10, &p, 1, &x) == 0 && decode(ct, &x, 10, 1, -1, o) == 0, "zero delta");
        int nz = 0;
        for (int i = 0; i < 10; i++) nz += o[i] != 0 || signbit(o[i]);
        CHECK(nz == 0 && x.data.p[0] == 0 && x.data.p[1] == 0, "zero delta decodes to +0");
        enc_free(&x);
    }

    /* corrupt records */
    {
        const ddct_codec_traits *ct = &ddct_codec_bitdelta;
        uint64_t n = 13, sh[1] = {13};
        float *d = gauss(n, 1), o[13];
        ddct_params p = params_with(0, 1);
        enc x;
        CHECK(encode(ct, d, 1, sh, n, &p, 1, &x) == 0, "encode");
        const uint8_t *P = x.params.p, *D = x.data.p;
        for (size_t l = 0; l < 5; l++)
            CHECK(decode_copy(ct, P, l, NULL, 0, D, 2, n, o) == DDCT_ERR_FORMAT, "params truncated to %zu", l);
        uint8_t pp[6];
        memcpy(pp, P, 5);
        pp[5] = 0;
        CHECK(decode_copy(ct, pp, 6, NULL, 0, D, 2, n, o) == DDCT_ERR_FORMAT, "params too long");
        pp[0] = 1;
        CHECK(decode_copy(ct, pp, 5, NULL, 0, D, 2, n, o) == DDCT_ERR_UNSUPPORTED, "version 1");
        pp[0] = 0;
        const float badf[] = {NAN, INFINITY, -1.0f, -INFINITY};
        for (int i = 0; i < 4; i++) {
            memcpy(pp + 1, &badf[i], 4);
            CHECK(decode_copy(ct, pp, 5, NULL, 0, D, 2, n, o) == DDCT_ERR_FORMAT, "alpha %g", badf[i]);
        }
        CHECK(decode_copy(ct, P, 5, NULL, 0, D, 1, n, o) == DDCT_ERR_FORMAT, "data short");
        CHECK(decode_copy(ct, P, 5, NULL, 0, D, 3, n, o) == DDCT_ERR_FORMAT, "data long");
        CHECK(decode_copy(ct, P, 5, D, 1, D, 2, n, o) == DDCT_ERR_FORMAT, "side not empty");
        CHECK(decode_copy(ct, P, 5, NULL, 0, D, 2, 17, o) == DDCT_ERR_FORMAT, "wrong nelem");
        uint8_t dd[2] = {D[0], (uint8_t)(D[1] | 0x80)};
        CHECK(decode_copy(ct, P, 5, NULL, 0, dd, 2, n, o) == DDCT_ERR_FORMAT, "padding bits set");
        CHECK(decode_copy(ct, P, 5, NULL, 0, D, 2, n, o) == 0, "the original still decodes");
        enc_free(&x);
        free(d);
    }
}

/* ------------------------------------------------------------------ svd */

static void test_svd_rank2(void)
{
    const ddct_codec_traits *ct = &ddct_codec_svd;
    uint64_t rows = 64, cols = 48, n = rows * cols, sh[2] = {64, 48};
    float *d = lowrank(rows, cols, 2, 0.01, 0);
    float *o = malloc(n * sizeof *o);
    for (int rs = 0; rs <= 1; rs++) {
        ddct_params p = params_with(32, rs);
        enc x;
        int rc = encode(ct, d, 2, sh, n, &p, 2, &x);
        CHECK(rc == 0, "svd encode rank 2");
        if (rc) break;
        CHECK(svd_rank(&x) == 48, "rank %llu at 32 bpp", (unsigned long long)svd_rank(&x));
        CHECK(decode(ct, &x, n, 2, -1, o) == 0, "svd decode rank 2");
        double re = rel_err(d, o, n);
        CHECK(re < 0.02, "rank-2 relative error %g (rescale %d)", re, rs);
        if (rs) {
            double m = mean_abs(o, n), t = mean_abs(d, n);
            CHECK(fabs(m - t) <= 1e-4 * t, "rescaled mean |delta^| %g vs %g", m, t);
        }
        enc_free(&x);
    }
    /* a rank-2 matrix needs only the two 8-bit triplets: enough budget for them alone */
    ddct_params p = params_with(0, 0);
    uint64_t sh2[2] = {256, 256};
    float *d2 = lowrank(256, 256, 2, 0.01, 0), *o2 = malloc(65536 * sizeof *o2);
    p.bpp = 0.25;
    enc x;
    CHECK(encode(ct, d2, 2, sh2, 65536, &p, 1, &x) == 0 && decode(ct, &x, 65536, 1, -1, o2) == 0, "rank 2 at 0.25");
    double re = rel_err(d2, o2, 65536);
    CHECK(svd_rank(&x) >= 2 && re < 0.02, "rank 2 at 0.25 bpp: r %llu, error %g", (unsigned long long)svd_rank(&x),
          re);
    enc_free(&x);
    free(d2);
    free(o2);
    free(d);
    free(o);
}

static void svd_shape_case(int ndim, const uint64_t *shape, uint64_t n, double bpp, int lowr, double max_err)
{
    const ddct_codec_traits *ct = &ddct_codec_svd;
    float *d;
    if (lowr) {
        uint64_t cols = ndim >= 2 ? shape[ndim - 1] : n;
        d = lowrank(n / cols, cols, lowr, 0.01, 0.001);
    } else {
        d = gauss(n, 0.01);
    }
    ddct_params p = params_with(bpp, 1);
    enc x, y;
    int rc = encode(ct, d, ndim, shape, n, &p, 1, &x);
    CHECK(rc == 0, "svd encode ndim %d n %llu", ndim, (unsigned long long)n);
    if (rc) {
        free(d);
        return;
    }
    double b = bpp > 0 ? bpp : 1.0;
    CHECK(8.0 * (double)enc_bytes(&x) <= b * (double)n || svd_rank(&x) == 0, "record %zu bytes > %g bpp of %llu",
          enc_bytes(&x), b, (unsigned long long)n);
    float *o = malloc((n ? n : 1) * sizeof *o), *o2 = malloc((n ? n : 1) * sizeof *o2);
    CHECK(decode(ct, &x, n, 1, -1, o) == 0, "svd decode");
    double re = rel_err(d, o, n);
    CHECK(re <= max_err, "ndim %d n %llu bpp %g: rank %llu, error %g > %g", ndim, (unsigned long long)n, bpp,
          (unsigned long long)svd_rank(&x), re, max_err);
    /* determinism: encode with 3 threads, decode with 3 threads */
    rc = encode(ct, d, ndim, shape, n, &p, 3, &y);
    CHECK(rc == 0 && same_enc(&x, &y), "svd encode depends on threads");
    CHECK(decode(ct, &x, n, 3, -1, o2) == 0 && (!n || !memcmp(o, o2, (size_t)n * sizeof *o)),
          "svd decode depends on threads");
    for (int rs = -1; rs <= 1; rs++)
        CHECK(stream_equals_whole(ct, &x, n, 2, rs), "svd streamed decode differs (n %llu, rescale %d)",
              (unsigned long long)n, rs);
    enc_free(&y);
    free(o);
    free(o2);
    free(d);
    enc_free(&x);
}

static void test_svd_shapes(void)
{
    uint64_t a[2] = {37, 53};
    svd_shape_case(2, a, 37 * 53, 4, 0, 0.9);
    svd_shape_case(2, a, 37 * 53, 8, 3, 0.3);
    uint64_t b[3] = {6, 10, 24};
    svd_shape_case(3, b, 6 * 10 * 24, 4, 0, 0.95);
    uint64_t b2[3] = {4, 9, 13}; /* a flat view with a partial last row may win */
    svd_shape_case(3, b2, 4 * 9 * 13, 6, 0, 0.95);
    uint64_t c[1] = {300};
    svd_shape_case(1, c, 300, 10, 0, 0.05);
    svd_shape_case(1, c, 300, 2, 0, 1.0); /* rank 1 at 8 bits does not fit: r = 0 */
    uint64_t e[2] = {0, 5};
    svd_shape_case(2, e, 0, 1, 0, 0);
    uint64_t f[2] = {1, 1};
    svd_shape_case(2, f, 1, 1000, 0, 0.01);
    uint64_t g[2] = {200, 3};
    svd_shape_case(2, g, 600, 0, 0, 1.0); /* default budget */
    uint64_t h[2] = {96, 80};
    svd_shape_case(2, h, 96 * 80, 0, 4, 0.3);
}

static void test_svd_budgets(void)
{
    const ddct_codec_traits *ct = &ddct_codec_svd;
    uint64_t sh[2] = {256, 256}, n = 65536;
    tu_rng = 12345;
    float *d = lowrank(256, 256, 8, 0.01, 0.001), *o = malloc(n * sizeof *o);
    float *g = gauss(n, 0.01);
    const double bpps[] = {0.1, 0.25, 0.5, 1, 2, 4, 8};
    double prev = 2;
    printf("256x256 rank-8 + noise (noise energy ~1%%) / Gaussian: relative error vs bpp\n");
    for (size_t i = 0; i < sizeof bpps / sizeof *bpps; i++) {
        ddct_params p = params_with(bpps[i], 1);
        enc x;
        int rc = encode(ct, d, 2, sh, n, &p, 2, &x);
        CHECK(rc == 0, "encode");
        if (rc) continue;
        CHECK(8.0 * (double)enc_bytes(&x) <= bpps[i] * (double)n, "record %zu bytes over %g bpp", enc_bytes(&x),
              bpps[i]);
        CHECK(decode(ct, &x, n, 2, -1, o) == 0, "decode");
        double re = rel_err(d, o, n);
        CHECK(re <= prev + 1e-9, "error grows with the budget: %g after %g", re, prev);
        prev = re;
        double re0;
        CHECK(decode(ct, &x, n, 2, 0, o) == 0, "decode");
        re0 = rel_err(d, o, n);
        enc xg;
        double reg = -1;
        if (encode(ct, g, 2, sh, n, &p, 2, &xg) == 0 && decode(ct, &xg, n, 2, -1, o) == 0) reg = rel_err(g, o, n);
        printf("  bpp %-5g  rank %-4llu  bytes %-6zu (%.3f bpp)  rel.err %.4f (no rescale %.4f)  gaussian %.4f\n",
               bpps[i], (unsigned long long)svd_rank(&x), enc_bytes(&x), 8.0 * (double)enc_bytes(&x) / (double)n, re,
               re0, reg);
        enc_free(&xg);
        enc_free(&x);
    }
    /* 6 of the 8 equal singular triplets are at 3 bits: ~0.3 error floor */
    CHECK(prev < 0.35, "error at 8 bpp %g", prev);
    /* a decaying spectrum (sigma_t = 1 / (t + 1), 64 terms), closer to real deltas */
    {
        float *gg = gauss(256 * 64, 1), *hh = gauss(256 * 64, 1), *dd = malloc(n * sizeof *dd);
        for (uint64_t i = 0; i < 256; i++)
            for (uint64_t j = 0; j < 256; j++) {
                double acc = 0;
                for (int t = 0; t < 64; t++) acc += (double)gg[i * 64 + (uint64_t)t] * hh[j * 64 + (uint64_t)t] / (t + 1);
                dd[i * 256 + j] = (float)(acc * 0.001 + tu_normal() * 0.0002);
            }
        printf("256x256 decaying spectrum (1/(t+1), 64 terms) + noise:\n");
        for (size_t i = 0; i < sizeof bpps / sizeof *bpps; i++) {
            ddct_params p = params_with(bpps[i], 0);
            enc x;
            if (encode(ct, dd, 2, sh, n, &p, 2, &x) == 0 && decode(ct, &x, n, 2, -1, o) == 0)
                printf("  bpp %-5g  rank %-4llu  %.3f bpp  rel.err %.4f (no rescale)\n", bpps[i],
                       (unsigned long long)svd_rank(&x), 8.0 * (double)enc_bytes(&x) / (double)n, rel_err(dd, o, n));
            enc_free(&x);
        }
        ddct_params p = params_with(0, 1);
        enc x;
        if (encode(&ddct_codec_bitdelta, dd, 2, sh, n, &p, 1, &x) == 0 &&
            decode(&ddct_codec_bitdelta, &x, n, 1, -1, o) == 0)
            printf("  bitdelta: %.3f bpp, rel.err %.4f\n", 8.0 * (double)enc_bytes(&x) / (double)n, rel_err(dd, o, n));
        enc_free(&x);
        free(gg);
        free(hh);
        free(dd);
    }
    /* bitdelta on the same matrix, for comparison */
    ddct_params p = params_with(0, 1);
    enc x;
    if (encode(&ddct_codec_bitdelta, d, 2, sh, n, &p, 1, &x) == 0 && decode(&ddct_codec_bitdelta, &x, n, 1, -1, o) == 0)
        printf("  bitdelta on the rank-8 matrix: %.3f bpp, rel.err %.4f\n", 8.0 * (double)enc_bytes(&x) / (double)n,
               rel_err(d, o, n));
    enc_free(&x);
    /* encode twice: identical bytes */
    ddct_params p1 = params_with(1, 1);
    enc a, b;
    CHECK(encode(ct, d, 2, sh, n, &p1, 1, &a) == 0 && encode(ct, d, 2, sh, n, &p1, 2, &b) == 0 && same_enc(&a, &b),
          "svd encode not reproducible");
    float *o2 = malloc(n * sizeof *o2);
    CHECK(decode(ct, &a, n, 1, -1, o) == 0 && decode(ct, &a, n, 2, -1, o2) == 0 && !memcmp(o, o2, n * sizeof *o),
          "svd decode not reproducible");
    /* rescale override: stored on = -1 */
    CHECK(decode(ct, &a, n, 1, 1, o2) == 0 && !memcmp(o, o2, n * sizeof *o), "rescale 1 != stored");
    enc_free(&a);
    enc_free(&b);
    ddct_params p0 = params_with(1, 0);
    CHECK(encode(ct, d, 2, sh, n, &p0, 1, &a) == 0, "encode");
    CHECK(decode(ct, &a, n, 1, 1, o2) == 0 && !memcmp(o, o2, n * sizeof *o), "rescale override on");
    CHECK(decode(ct, &a, n, 1, -1, o2) == 0 && memcmp(o, o2, n * sizeof *o), "rescale stored off");
    enc_free(&a);
    free(o2);
    free(o);
    free(d);
    free(g);
}

static void put_varint(uint8_t *p, size_t *len, uint64_t v)
{
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        p[(*len)++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}

/* params built by hand: ver flags rows cols r mean ngroups groups */
static size_t mk_params(uint8_t *p, int ver, int flags, uint64_t rows, uint64_t cols, uint64_t r, float mean, int ng,
                        const int *bits, const uint64_t *cnt)
{
    size_t l = 0;
    p[l++] = (uint8_t)ver;
    p[l++] = (uint8_t)flags;
    put_varint(p, &l, rows);
    put_varint(p, &l, cols);
    put_varint(p, &l, r);
    memcpy(p + l, &mean, 4);
    l += 4;
    p[l++] = (uint8_t)ng;
    for (int g = 0; g < ng; g++) {
        p[l++] = (uint8_t)bits[g];
        put_varint(p, &l, cnt[g]);
    }
    return l;
}

static void test_svd_corrupt(void)
{
    const ddct_codec_traits *ct = &ddct_codec_svd;
    uint64_t rows = 40, cols = 30, n = rows * cols, sh[2] = {40, 30};
    float *d = lowrank(rows, cols, 6, 0.01, 0.001), *o = malloc(n * sizeof *o);
    ddct_params p = params_with(8, 1);
    enc x;
    CHECK(encode(ct, d, 2, sh, n, &p, 1, &x) == 0, "encode");
    uint64_t r = svd_rank(&x);
    CHECK(r >= 3, "rank %llu", (unsigned long long)r);
    const uint8_t *P = x.params.p, *S = x.side.p, *D = x.data.p;
    size_t pl = x.params.len, sl = x.side.len, dl = x.data.len;
    CHECK(decode_copy(ct, P, pl, S, sl, D, dl, n, o) == 0, "original decodes");
    /* truncations and extensions of each stream */
    for (size_t l = 0; l < pl; l++)
        CHECK(decode_copy(ct, P, l, S, sl, D, dl, n, o) == DDCT_ERR_FORMAT, "params truncated to %zu", l);
    for (size_t l = 0; l < sl; l++)
        CHECK(decode_copy(ct, P, pl, S, l, D, dl, n, o) == DDCT_ERR_FORMAT, "side truncated to %zu", l);
    int ok = 1;
    for (size_t l = 0; l < dl; l++) ok &= decode_copy(ct, P, pl, S, sl, D, l, n, o) == DDCT_ERR_FORMAT;
    CHECK(ok, "data truncations accepted");
    uint8_t *big = calloc(dl + sl + pl + 16, 1);
    memcpy(big, P, pl);
    CHECK(decode_copy(ct, big, pl + 1, S, sl, D, dl, n, o) == DDCT_ERR_FORMAT, "params long");
    memcpy(big, S, sl);
    CHECK(decode_copy(ct, P, pl, big, sl + 4, D, dl, n, o) == DDCT_ERR_FORMAT, "side long");
    memcpy(big, D, dl);
    CHECK(decode_copy(ct, P, pl, S, sl, big, dl + 1, n, o) == DDCT_ERR_FORMAT, "data long");
    CHECK(decode_copy(ct, P, pl, S, sl, D, dl, n + 1, o) == DDCT_ERR_FORMAT, "wrong nelem");
    CHECK(decode_copy(ct, P, pl, S, sl, D, dl, n - 30, o) == DDCT_ERR_FORMAT, "wrong nelem");
    /* n - 1 fits the same 40 x 30 view (a partial last row, as flat views of >2-D tensors have) */
    CHECK(decode_copy(ct, P, pl, S, sl, D, dl, n - 1, o) == 0, "partial last row");
    /* every byte of params replaced by several values: error or success, never a crash */
    uint8_t *pp = malloc(pl);
    const uint8_t vals[] = {0, 1, 2, 0x7f, 0x80, 0xff, 9, 31};
    int crashes = 0;
    for (size_t i = 0; i < pl; i++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(pp, P, pl);
            if (pp[i] == vals[v]) continue;
            pp[i] = vals[v];
            int rc = decode_copy(ct, pp, pl, S, sl, D, dl, n, o);
            crashes += rc != 0 && rc != DDCT_ERR_FORMAT && rc != DDCT_ERR_UNSUPPORTED;
        }
    CHECK(crashes == 0, "%d unexpected error codes", crashes);
    pp[0] = 0;
    memcpy(pp, P, pl);
    pp[0] = 1;
    CHECK(decode_copy(ct, pp, pl, S, sl, D, dl, n, o) == DDCT_ERR_UNSUPPORTED, "version 1");
    /* hand-made params */
    uint8_t q[64];
    int bits[4] = {8, 3, 2, 2};
    uint64_t cnt[4] = {2, 1, 0, 0};
    size_t ql;
    /* valid: rank 3 = 2 + 1, matching streams needed: side 12, data 2*(40+30) + (15+12) */
    uint8_t side[12] = {0}, dat[200] = {0};
    size_t want_d = 2 * (40 + 30) + 15 + 12;
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == 0, "hand-made record");
    ql = mk_params(q, 0, 2, 40, 30, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "flags");
    ql = mk_params(q, 0, 1, 41, 30, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "rows");
    ql = mk_params(q, 0, 1, 40, 0, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "cols 0");
    ql = mk_params(q, 0, 1, 1, 1200, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "rank > min(rows, cols)");
    ql = mk_params(q, 0, 1, 40, 30, 31, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "rank > cols");
    ql = mk_params(q, 0, 1, 40, 30, 4, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "groups < rank");
    ql = mk_params(q, 0, 1, 40, 30, 2, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "groups > rank");
    cnt[2] = 0;
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 3, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "empty group");
    cnt[1] = UINT64_MAX;
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "huge group");
    cnt[1] = 1;
    int b0[2] = {0, 3}, b9[2] = {9, 3};
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, b0, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "0 bits");
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, b9, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "9 bits");
    ql = mk_params(q, 0, 1, 40, 30, 3, NAN, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "mean NaN");
    ql = mk_params(q, 0, 1, 40, 30, 3, -1.0f, 2, bits, cnt);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "mean < 0");
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, bits, cnt);
    q[9] = 17; /* the ngroups byte (rows, cols, r are one-byte varints) */
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "17 groups");
    /* non-minimal varint for rows: 40 as 0xa8 0x00 */
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, bits, cnt);
    memmove(q + 4, q + 3, ql - 3);
    q[2] = 0xa8;
    q[3] = 0x00;
    CHECK(decode_copy(ct, q, ql + 1, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "overlong varint");
    /* huge view and rank: must be refused from the stream sizes, without allocating */
    uint64_t hb = (uint64_t)1 << 31;
    uint64_t hc[1] = {hb};
    int hbits[1] = {1};
    ql = mk_params(q, 0, 0, hb, hb, hb, 0.01f, 1, hbits, hc);
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, hb * hb, o) == DDCT_ERR_FORMAT, "huge rank");
    /* bad scales */
    ql = mk_params(q, 0, 1, 40, 30, 3, 0.01f, 2, bits, cnt);
    const uint16_t bad_scales[] = {0x7f80, 0xff80, 0x7fc0, 0x8000, 0xbf80};
    for (size_t i = 0; i < sizeof bad_scales / sizeof *bad_scales; i++) {
        uint8_t s2[12] = {0};
        s2[10] = (uint8_t)bad_scales[i];
        s2[11] = (uint8_t)(bad_scales[i] >> 8);
        CHECK(decode_copy(ct, q, ql, s2, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "scale 0x%04x", bad_scales[i]);
    }
    /* padding bits: the 3-bit u vector of triplet 2 has 120 bits: no padding; v has 90 bits: 6 padding bits */
    dat[2 * 70 + 15 + 11] = 0x80;
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == DDCT_ERR_FORMAT, "padding bit");
    dat[2 * 70 + 15 + 11] = 0x03;
    CHECK(decode_copy(ct, q, ql, side, 12, dat, want_d, n, o) == 0, "last value bits");
    /* random corruption of real records */
    tu_rng = 777;
    int unexpected = 0;
    for (int it = 0; it < 300; it++) {
        uint8_t *a = malloc(pl), *b = malloc(sl), *c = malloc(dl);
        memcpy(a, P, pl);
        memcpy(b, S, sl);
        memcpy(c, D, dl);
        int k = (int)(tu_next() % 3);
        uint8_t *t = k == 0 ? a : k == 1 ? b : c;
        size_t tl = k == 0 ? pl : k == 1 ? sl : dl;
        for (int f = 0; f < 3; f++) t[tu_next() % tl] ^= (uint8_t)(1u << (tu_next() % 8));
        int rc = decode_copy(ct, a, pl, b, sl, c, dl, n, o);
        unexpected += rc != 0 && rc != DDCT_ERR_FORMAT && rc != DDCT_ERR_UNSUPPORTED;
        free(a);
        free(b);
        free(c);
    }
    CHECK(unexpected == 0, "%d unexpected error codes under random corruption", unexpected);
    free(pp);
    free(big);
    enc_free(&x);
    free(d);
    free(o);
}

/* Records and rebuilt values must not depend on OpenBLAS's thread count (whose default is the
 * machine's core count), and the codec must leave that count as it found it. */
static void test_svd_blas_threads(void)
{
    if (!openblas_set_num_threads || !openblas_get_num_threads) {
        printf("not OpenBLAS: BLAS thread test skipped\n");
        return;
    }
    const ddct_codec_traits *ct = &ddct_codec_svd;
    uint64_t rows = 300, cols = 420, n = rows * cols, sh[2] = {300, 420};
    float *d = lowrank(rows, cols, 12, 0.01, 0.002), *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
    ddct_params p = params_with(2, 1);
    int saved = openblas_get_num_threads();
    enc a, b;
    openblas_set_num_threads(1);
    int rc = encode(ct, d, 2, sh, n, &p, 2, &a) | decode(ct, &a, n, 2, -1, o1);
    CHECK(openblas_get_num_threads() == 1, "OpenBLAS thread count not restored (1)");
    openblas_set_num_threads(4);
    int t4 = openblas_get_num_threads();
    rc |= encode(ct, d, 2, sh, n, &p, 2, &b) | decode(ct, &a, n, 2, -1, o2);
    CHECK(openblas_get_num_threads() == t4, "OpenBLAS thread count not restored (%d)", t4);
    CHECK(rc == 0 && same_enc(&a, &b), "svd record depends on OpenBLAS threads (1 vs %d)", t4);
    CHECK(rc == 0 && !memcmp(o1, o2, n * sizeof *o1), "svd decode depends on OpenBLAS threads (1 vs %d)", t4);
    openblas_set_num_threads(saved);
    enc_free(&a);
    enc_free(&b);
    free(d);
    free(o1);
    free(o2);
}

/* Any range of rows starting on a 64-row block gives the whole product's values bit for bit. */
static void test_product_rows(void)
{
    const size_t rows = 300, cols = 37, r = 5;
    const uint64_t n = rows * cols - 11; /* a partial last row */
    float *uc = gauss(rows * r, 1), *vc = gauss(cols * r, 1), *whole = malloc(n * sizeof *whole),
          *part = malloc(n * sizeof *part);
    ddct_err e;
    memset(&e, 0, sizeof e);
    CHECK(ddct_lowrank_product(uc, vc, rows, cols, r, n, whole, 2, &e) == 0, "product: %s", e.msg);
    const size_t cuts[] = {0, 64, 192, 256, 300};
    int rc = 0;
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof *cuts; k++)
        rc |= ddct_lowrank_product_rows(uc, vc, rows, cols, r, n, cuts[k], cuts[k + 1], part + cuts[k] * cols, 3, &e);
    CHECK(rc == 0 && !memcmp(whole, part, n * sizeof *whole), "row ranges differ from the whole product");
    free(uc);
    free(vc);
    free(whole);
    free(part);
}

int main(void)
{
    test_traits();
    test_product_rows();
    test_bitdelta();
    test_svd_rank2();
    test_svd_shapes();
    test_svd_budgets();
    test_svd_corrupt();
    test_svd_blas_threads();
    return TEST_SUMMARY();
}
