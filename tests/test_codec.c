/* test_codec.c — the patch codec (sizes, bounds, every transform/keep mode/p), the lossless
 * codec, and the container written and read back in memory. */
#include <math.h>
#include <string.h>

#include "codec/codec.h"
#include "common/dtype.h"
#include "quant/quant.h"
#include "testutil.h"

static float *gen(uint64_t n, double scale)
{
    float *x = malloc(n * sizeof *x);
    for (uint64_t i = 0; i < n; i++) x[i] = (float)(scale * tu_normal());
    return x;
}

/* Encode + decode; returns relative error, fills record sizes. */
static double roundtrip(const ddct_params *p, const float *d, int ndim, const uint64_t *shape, uint64_t n,
                        int threads, ddct_enc_out *out, int rescale)
{
    ddct_enc_out_init(out);
    ddct_err e;
    ddct_err_clear(&e);
    ddct_lossy_in in = {.delta = d, .ndim = ndim, .shape = shape, .nelem = n, .params = p, .threads = threads};
    int rc = ddct_codec_patch.encode_lossy(&in, out, &e);
    CHECK(rc == 0, "encode: %s", e.msg);
    if (rc) return 1e9;
    ddct_record rec = {.codec = DDCT_CODEC_PATCH, .params = out->params.p, .params_len = out->params.len,
                       .side = out->side.p, .side_len = out->side.len, .data = out->data.p, .data_len = out->data.len};
    float *r = malloc(n * sizeof *r + 4);
    rc = ddct_codec_patch.decode_lossy(&rec, n, threads, rescale, r, &e);
    CHECK(rc == 0, "decode: %s", e.msg);
    double err = rc ? 1e9 : tu_relerr(r, d, n);
    free(r);
    return err;
}

static void test_sizes_and_modes(void)
{
    uint64_t shape[2] = {67, 45};
    uint64_t n = shape[0] * shape[1];
    float *d = gen(n, 0.01);
    for (int p = 2; p <= 64; p += (p < 16 ? 1 : 7)) {
        for (int t = 0; t < DDCT_TRANSFORM_COUNT; t++) {
            for (int keep = 0; keep < (t == DDCT_TRANSFORM_DWT ? DDCT_KEEP_COUNT : 1); keep++) {
                ddct_params P;
                ddct_params_default(&P);
                P.patch = p;
                P.transform = (ddct_transform)t;
                P.dwt_keep = (ddct_dwt_keep)keep;
                P.bits.n = 1;
                P.bits.bits[0] = 8;
                P.bits.frac[0] = 1;
                ddct_enc_out o;
                double err = roundtrip(&P, d, 2, shape, n, 2, &o, 0);
                /* 8 bits everywhere: small error unless bands are dropped */
                if (keep == DDCT_KEEP_ALL) CHECK(err < 0.02, "p=%d t=%d err %.4f", p, t, err);
                else CHECK(err < 1.0, "p=%d keep=%d err %.4f", p, keep, err);
                /* data size: per strip ceil(pcol * nkept * 8 / 8) bytes */
                uint64_t pr = (shape[0] + p - 1) / p, pc = (shape[1] + p - 1) / p;
                if (keep == DDCT_KEEP_ALL)
                    CHECK(o.data.len == pr * pc * (uint64_t)p * p, "p=%d data %zu", p, o.data.len);
                CHECK(o.side.len == pr * pc * 4, "p=%d side %zu", p, o.side.len);
                ddct_enc_out_free(&o);
            }
        }
    }
    free(d);
}

static void test_default_strategy(void)
{
    uint64_t shape[2] = {128, 96};
    uint64_t n = shape[0] * shape[1];
    float *d = gen(n, 0.003);
    ddct_params P;
    ddct_params_default(&P); /* 2:0.5,0:0.5, p = 16 */
    ddct_enc_out o;
    double e0 = roundtrip(&P, d, 2, shape, n, 1, &o, 0);
    /* 48 patches: 24 at 2 bits -> 24 * 256 * 2 bits; map 48 bits; side 24*4 + 24*2 */
    CHECK(o.data.len == 24 * 256 * 2 / 8, "data %zu", o.data.len);
    CHECK(o.side.len == 6 + 24 * 4 + 24 * 2, "side %zu", o.side.len);
    CHECK(e0 > 0.3 && e0 < 1.0, "err %.3f", e0);
    /* determinism: threads 1 vs 3 */
    ddct_enc_out o2;
    roundtrip(&P, d, 2, shape, n, 3, &o2, 0);
    CHECK(o.data.len == o2.data.len && !memcmp(o.data.p, o2.data.p, o.data.len), "data differs by threads");
    CHECK(o.side.len == o2.side.len && !memcmp(o.side.p, o2.side.p, o.side.len), "side differs by threads");
    ddct_enc_out_free(&o);
    ddct_enc_out_free(&o2);
    /* rescale restores mean |delta| */
    ddct_enc_out_init(&o);
    ddct_err e;
    ddct_lossy_in in = {.delta = d, .ndim = 2, .shape = shape, .nelem = n, .params = &P, .threads = 1};
    CHECK(ddct_codec_patch.encode_lossy(&in, &o, &e) == 0, "encode");
    ddct_record rec = {.codec = DDCT_CODEC_PATCH, .params = o.params.p, .params_len = o.params.len, .side = o.side.p,
                       .side_len = o.side.len, .data = o.data.p, .data_len = o.data.len};
    float *r = malloc(n * sizeof *r);
    CHECK(ddct_codec_patch.decode_lossy(&rec, n, 1, 1, r, &e) == 0, "decode");
    double ma = ddct_mean_abs(d, n, 1), mb = ddct_mean_abs(r, n, 1);
    CHECK(fabs(ma - mb) < 1e-4 * ma, "rescale: %g vs %g", ma, mb);
    /* truncated streams are rejected */
    rec.data_len--;
    CHECK(ddct_codec_patch.decode_lossy(&rec, n, 1, 1, r, &e) == DDCT_ERR_FORMAT, "short data accepted");
    rec.data_len++;
    rec.side_len--;
    CHECK(ddct_codec_patch.decode_lossy(&rec, n, 1, 1, r, &e) == DDCT_ERR_FORMAT, "short side accepted");
    rec.side_len++;
    for (size_t cut = 0; cut < o.params.len; cut++) {
        rec.params_len = cut;
        CHECK(ddct_codec_patch.decode_lossy(&rec, n, 1, 1, r, &e) != 0, "params cut at %zu accepted", cut);
    }
    free(r);
    ddct_enc_out_free(&o);
    free(d);
}

static void test_zero_bit_means(void)
{
    /* all patches 0-bit: every patch rebuilds as the mean of its real elements */
    uint64_t shape[2] = {20, 20};
    uint64_t n = 400;
    float *d = gen(n, 1);
    ddct_params P;
    ddct_params_default(&P);
    P.patch = 8;
    P.bits.n = 1;
    P.bits.bits[0] = 0;
    P.bits.frac[0] = 1;
    ddct_enc_out o;
    ddct_enc_out_init(&o);
    ddct_err e;
    ddct_lossy_in in = {.delta = d, .ndim = 2, .shape = shape, .nelem = n, .params = &P, .threads = 1};
    CHECK(ddct_codec_patch.encode_lossy(&in, &o, &e) == 0, "encode");
    CHECK(o.data.len == 0, "0-bit data %zu", o.data.len);
    ddct_record rec = {.codec = DDCT_CODEC_PATCH, .params = o.params.p, .params_len = o.params.len, .side = o.side.p,
                       .side_len = o.side.len};
    float *r = malloc(n * sizeof *r);
    CHECK(ddct_codec_patch.decode_lossy(&rec, n, 1, 0, r, &e) == 0, "decode");
    /* patch (2,2) covers rows 16..19, cols 16..19: 16 real elements */
    double m = 0;
    for (int i = 16; i < 20; i++)
        for (int j = 16; j < 20; j++) m += d[i * 20 + j];
    m /= 16;
    CHECK(fabs(r[19 * 20 + 19] - m) < 0.01 * fabs(m) + 1e-3, "edge mean %g vs %g", r[399], m);
    free(r);
    free(d);
    ddct_enc_out_free(&o);
}

static void test_views(void)
{
    uint64_t conv[4] = {32, 16, 3, 3}, dw[4] = {64, 1, 3, 3}, mat[2] = {37, 53};
    CHECK(ddct_view_cols(4, conv, 4608, 16) == 144, "conv view %llu",
          (unsigned long long)ddct_view_cols(4, conv, 4608, 16));
    uint64_t c = ddct_view_cols(4, dw, 576, 16);
    uint64_t rows = (576 + c - 1) / c;
    uint64_t area = (rows + 15) / 16 * 16 * ((c + 15) / 16 * 16);
    CHECK(area <= 576 * 2, "depthwise view %llu cols, padded area %llu", (unsigned long long)c,
          (unsigned long long)area);
    CHECK(ddct_view_cols(2, mat, 37 * 53, 16) == 53, "2-D view keeps columns");
    /* round trip of a 4-D tensor through the flat view */
    float *d = gen(576, 0.1);
    ddct_params P;
    ddct_params_default(&P);
    P.bits.n = 1;
    P.bits.bits[0] = 8;
    P.bits.frac[0] = 1;
    ddct_enc_out o;
    CHECK(roundtrip(&P, d, 4, dw, 576, 1, &o, 0) < 0.02, "4-D round trip");
    ddct_enc_out_free(&o);
    free(d);
}

static void test_raw(void)
{
    uint64_t n = 10000;
    float *a = gen(n, 1), *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *b);
    for (uint64_t i = 0; i < n; i += 7) b[i] += 1;
    ddct_enc_out o;
    ddct_enc_out_init(&o);
    ddct_err e;
    ddct_lossless_in in = {.ft = (const uint8_t *)b, .base = (const uint8_t *)a, .nbytes = n * 4, .elsize = 4,
                           .level = 3, .threads = 1};
    CHECK(ddct_codec_raw.encode_lossless(&in, &o, &e) == 0, "raw encode");
    CHECK(o.data.len < n * 4 / 2, "xor with base should compress: %zu", o.data.len);
    ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = o.params.p, .params_len = o.params.len, .data = o.data.p,
                       .data_len = o.data.len};
    uint8_t *r = malloc(n * 4);
    CHECK(ddct_codec_raw.decode_lossless(&rec, (const uint8_t *)a, n * 4, 4, r, &e) == 0, "raw decode");
    CHECK(!memcmp(r, b, n * 4), "raw bytes differ");
    CHECK(ddct_codec_raw.decode_lossless(&rec, (const uint8_t *)a, n * 4 - 4, 4, r, &e) != 0, "wrong size accepted");
    free(r);
    free(a);
    free(b);
    ddct_enc_out_free(&o);
}

/* Version 1 patch records (streamed, rescale factor stored) rebuild what version 0 records
 * (rescale computed at decode over the whole tensor) did: the same side and data, params
 * differing only by the version byte and the factor; bit for bit without rescale, and with it up
 * to the last bits of the factor (the encoder sums |delta^| per patch, the v0 decoder per block). */

/* The version 0 params of a version 1 record: version byte 0, no f32 scale after mean_abs. */
static size_t params_v0(const uint8_t *p, size_t len, uint8_t *q)
{
    size_t v = 8;
    while (v < len && (p[v] & 0x80)) v++;
    size_t cut = v + 1 + 4; /* varint cols, f32 mean_abs */
    memcpy(q, p, cut);
    q[0] = 0;
    memcpy(q + cut, p + cut + 4, len - cut - 4);
    return len - 4;
}

typedef struct {
    float *out;
    uint64_t next, slice, slice_n;
    int bad;
} collect;

static int collect_begin(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    collect *c = opaque;
    (void)e;
    c->bad += first != c->next;
    c->slice = first;
    c->slice_n = n;
    return 0;
}

static void collect_put(void *opaque, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    collect *c = opaque;
    if (first - rel != c->slice || rel + n > c->slice_n) {
#pragma omp atomic
        c->bad++;
        return;
    }
    for (uint64_t i = 0; i < n; i++) c->out[first + i] = d[i] * s;
}

static int collect_end(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    collect *c = opaque;
    (void)e;
    c->bad += first != c->slice || n != c->slice_n;
    c->next = first + n;
    return 0;
}

/* A source that copies (as the pipeline's does); with fail = 1, reports a non-finite value at 0;
 * with fail = 2, fails to read there (as when an input changed). */
typedef struct {
    const float *d;
    int fail;
} copy_src_t;

static const float *copy_src(void *opaque, uint64_t first, uint64_t n, float *buf, int threads, ddct_err *e)
{
    const copy_src_t *c = opaque;
    (void)threads;
    if (c->fail == 2 && first == 0) {
        ddct_seterr(e, DDCT_ERR_IO, "input changed while reading: test source");
        return NULL;
    }
    if (c->fail && first == 0) return NULL;
    memcpy(buf, c->d + first, n * sizeof *buf);
    return buf;
}

static int bits_equal(const float *a, const float *b, uint64_t n) { return !memcmp(a, b, n * sizeof *a); }

static void check_versions(const ddct_params *P, int ndim, const uint64_t *shape, uint64_t n, int threads)
{
    float *d = gen(n, 0.003);
    for (uint64_t i = 0; i < n; i += 101) d[i] *= 20; /* heavy tail */
    ddct_enc_out o, o2;
    ddct_enc_out_init(&o);
    ddct_enc_out_init(&o2);
    ddct_err e;
    ddct_lossy_in in = {.delta = d, .ndim = ndim, .shape = shape, .nelem = n, .params = P, .threads = threads};
    CHECK(ddct_codec_patch.encode_lossy(&in, &o, &e) == 0, "encode: %s", e.msg);
    CHECK(o.params.len > 0 && o.params.p[0] == 1, "params version %d", o.params.len ? o.params.p[0] : -1);
    /* the streamed encoder with a copying source, on 1 thread: the same bytes */
    copy_src_t cs = {d, 0};
    ddct_patch_src src = {.ndim = ndim, .shape = shape, .nelem = n, .params = P, .threads = 1, .src = copy_src,
                          .opaque = &cs};
    int nonfinite = 1;
    CHECK(ddct_patch_encode_stream(&src, &o2, &nonfinite, &e) == 0 && !nonfinite, "stream encode: %s", e.msg);
    CHECK(o.params.len == o2.params.len && !memcmp(o.params.p, o2.params.p, o.params.len) &&
              o.side.len == o2.side.len && !memcmp(o.side.p, o2.side.p, o.side.len) && o.data.len == o2.data.len &&
              !memcmp(o.data.p, o2.data.p, o.data.len),
          "streamed encoding differs (n %llu)", (unsigned long long)n);
    /* a source reporting a non-finite value: nothing coded, no error */
    ddct_enc_out o3;
    ddct_enc_out_init(&o3);
    copy_src_t bad = {d, 1};
    src.opaque = &bad;
    CHECK(ddct_patch_encode_stream(&src, &o3, &nonfinite, &e) == 0 && nonfinite == 1, "non-finite source");
    ddct_enc_out_free(&o3);
    /* a source that fails to read: its error, whatever the thread count */
    copy_src_t gone = {d, 2};
    src.opaque = &gone;
    src.threads = threads;
    ddct_enc_out_init(&o3);
    CHECK(ddct_patch_encode_stream(&src, &o3, &nonfinite, &e) == DDCT_ERR_IO && strstr(e.msg, "input changed"),
          "failing source: %d %s", e.code, e.msg);
    ddct_enc_out_free(&o3);
    src.threads = 1;
    uint8_t v0[64];
    size_t v0len = params_v0(o.params.p, o.params.len, v0);
    ddct_record r1 = {.codec = DDCT_CODEC_PATCH, .params = o.params.p, .params_len = o.params.len, .side = o.side.p,
                      .side_len = o.side.len, .data = o.data.p, .data_len = o.data.len};
    ddct_record r0 = r1;
    r0.params = v0;
    r0.params_len = v0len;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    for (int rescale = -1; rescale <= 1; rescale++) {
        CHECK(ddct_codec_patch.decode_lossy(&r1, n, threads, rescale, a, &e) == 0, "decode v1: %s", e.msg);
        CHECK(ddct_codec_patch.decode_lossy(&r0, n, threads, rescale, b, &e) == 0, "decode v0: %s", e.msg);
        int on = rescale < 0 ? P->rescale : rescale;
        if (on) CHECK(tu_relerr(a, b, n) < 1e-6, "v0 and v1 rebuild differently (rescale %d, n %llu): %g", rescale,
                      (unsigned long long)n, tu_relerr(a, b, n));
        else CHECK(bits_equal(a, b, n), "v0 and v1 rebuild differently (rescale %d, n %llu)", rescale,
                   (unsigned long long)n);
        for (int v = 0; v < 2; v++) {
            ddct_scratch scr = {0};
            collect col = {c, 0, 0, 0, 0};
            ddct_delta_out to = {collect_begin, collect_put, collect_end, &col};
            memset(c, 0xff, n * sizeof *c);
            CHECK(ddct_patch_decode_stream(v ? &r1 : &r0, n, threads, rescale, &scr, &to, &e) == 0,
                  "stream decode v%d: %s", v, e.msg);
            CHECK(col.bad == 0 && col.next == n && bits_equal(v ? a : b, c, n),
                  "streamed v%d rebuild differs (rescale %d)", v, rescale);
            ddct_scratch_free(&scr);
        }
    }
    free(a);
    free(b);
    free(c);
    free(d);
    ddct_enc_out_free(&o);
    ddct_enc_out_free(&o2);
}

static void test_versions(void)
{
    ddct_params P;
    ddct_params_default(&P);
    uint64_t small[2] = {67, 45}, flat[3] = {3, 7, 37}, big[2] = {2100, 2100}; /* big: 2 slices */
    check_versions(&P, 2, small, 67 * 45, 1);
    check_versions(&P, 3, flat, 3 * 7 * 37, 2);
    check_versions(&P, 2, big, 2100 * 2100, 2);
    P.transform = DDCT_TRANSFORM_DWT; /* kept bands and a quantization table: the non-identity path */
    P.dwt_keep = DDCT_KEEP_LL_LH_HL;
    P.qtable = DDCT_QTABLE_JPEG;
    P.rescale = 0;
    P.importance = DDCT_IMPORTANCE_LOWFREQ;
    check_versions(&P, 2, small, 67 * 45, 2);
}

/* ddct_mean_abs (8 blocks per AVX2 call, threads) equals the one-block-at-a-time definition. */
static void test_mean_abs(void)
{
    const uint64_t B = 65536;
    const uint64_t sizes[] = {0, 1, 7, B - 1, B, B + 1, 8 * B, 8 * B + 5, 17 * B + 123, 40 * B};
    float *x = gen(40 * B, 0.01);
    for (uint64_t i = 0; i < 40 * B; i += 997) x[i] = -x[i] * 1e6f; /* a wide range of magnitudes */
    int bad = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        for (int t = 1; t <= 4; t += 3) {
            double a = ddct_mean_abs(x, sizes[k], t), b = ddct_mean_abs_ref(x, sizes[k]);
            bad += memcmp(&a, &b, sizeof a) != 0;
        }
    CHECK(bad == 0, "ddct_mean_abs differs from ddct_mean_abs_ref in %d cases", bad);
    /* the same values given in pieces of any size (ddct_absum) */
    const uint64_t pieces[] = {1, 5, B - 3, 3, 9 * B + 7, 100, 2 * B, 17 * B};
    ddct_absum acc = {0, 0, 0};
    uint64_t at = 0;
    for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
        ddct_absum_add(&acc, x + at, pieces[k], 2);
        at += pieces[k];
    }
    double a = ddct_absum_mean(&acc), b = ddct_mean_abs_ref(x, at);
    CHECK(at <= 40 * B && !memcmp(&a, &b, sizeof a), "ddct_absum in pieces: %.17g vs %.17g", a, b);
    /* ddct_abs_sum8 (AVX2 where present) equals its lane-by-lane definition */
    bad = 0;
    for (size_t len = 0; len <= 300; len++) {
        double u = ddct_abs_sum8(x + len, len), v = ddct_abs_sum8_ref(x + len, len);
        bad += memcmp(&u, &v, sizeof u) != 0;
    }
    CHECK(bad == 0, "ddct_abs_sum8 differs from ddct_abs_sum8_ref for %d lengths", bad);
    free(x);
}

int main(void)
{
    test_mean_abs();
    test_sizes_and_modes();
    test_default_strategy();
    test_zero_bit_means();
    test_views();
    test_raw();
    test_versions();
    return TEST_SUMMARY();
}
