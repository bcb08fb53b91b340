/* test_transform.c — DCT / DWT / NONE plans, band maps, keep masks, JPEG qtable. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "transform/transform.h"

static void fill_normal(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)tu_normal();
}

static double energy(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m;
}

typedef struct {
    float *in, *co, *re, *scr;
} bufs;

static bufs bufs_new(size_t n)
{
    bufs b = {malloc(n * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float)),
              malloc(n * sizeof(float))};
    if (!b.in || !b.co || !b.re || !b.scr) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return b;
}

static void bufs_free(bufs *b)
{
    free(b->in);
    free(b->co);
    free(b->re);
    free(b->scr);
}

/* ------------------------------------------------------------ DCT */
static void test_dct_p(int p, int naive)
{
    const size_t n = (size_t)p * p;
    ddct_xform *x = NULL;
    ddct_err e = {0};
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DCT, p, DDCT_WAVELET_HAAR, 1, &e) == DDCT_OK, "create dct p=%d: %s", p,
          e.msg);
    if (!x) return;
    CHECK(ddct_xform_p(x) == p, "p");
    CHECK(ddct_xform_scratch_floats(x) >= n, "scratch");
    bufs b = bufs_new(n);
    fill_normal(b.in, n);
    ddct_xform_forward(x, b.in, b.co, b.scr);
    const double ein = energy(b.in, n), eco = energy(b.co, n);
    CHECK(fabs(eco - ein) <= 1e-5 * ein, "dct p=%d energy %.9g vs %.9g", p, eco, ein);
    ddct_xform_inverse(x, b.co, b.re, b.scr);
    double err = max_diff(b.in, b.re, n);
    CHECK(err < 1e-5 * (1 + max_abs(b.in, n)), "dct p=%d inverse(forward) err %g", p, err);

    if (naive) {
        double *din = malloc(n * sizeof *din), *dout = malloc(n * sizeof *dout), *dback = malloc(n * sizeof *dback);
        if (!din || !dout || !dback) exit(2);
        for (size_t i = 0; i < n; i++) din[i] = b.in[i];
        ddct_dct2_naive(p, din, dout);
        double m = 0;
        for (size_t i = 0; i < n; i++) m = fmax(m, fabs(dout[i] - b.co[i]));
        CHECK(m < 1e-4, "dct p=%d vs naive max err %g", p, m);
        ddct_idct2_naive(p, dout, dback);
        double m2 = 0;
        for (size_t i = 0; i < n; i++) m2 = fmax(m2, fabs(dback[i] - din[i]));
        CHECK(m2 < 1e-9, "naive idct(dct) p=%d err %g", p, m2);
        /* inverse plan vs naive inverse on the same coefficients */
        for (size_t i = 0; i < n; i++) b.co[i] = (float)dout[i];
        ddct_xform_inverse(x, b.co, b.re, b.scr);
        double m3 = 0;
        for (size_t i = 0; i < n; i++) m3 = fmax(m3, fabs(b.re[i] - dback[i]));
        CHECK(m3 < 1e-4, "idct p=%d vs naive max err %g", p, m3);
        free(din);
        free(dout);
        free(dback);
    }

    /* in-place */
    memcpy(b.re, b.in, n * sizeof(float));
    ddct_xform_forward(x, b.re, b.re, b.scr);
    ddct_xform_forward(x, b.in, b.co, b.scr);
    CHECK(memcmp(b.re, b.co, n * sizeof(float)) == 0, "dct p=%d in-place forward differs", p);
    ddct_xform_inverse(x, b.re, b.re, b.scr);
    err = max_diff(b.in, b.re, n);
    CHECK(err < 1e-5 * (1 + max_abs(b.in, n)), "dct p=%d in-place roundtrip err %g", p, err);

    /* constant patch: only DC, = p * c */
    for (size_t i = 0; i < n; i++) b.in[i] = 0.5f;
    ddct_xform_forward(x, b.in, b.co, b.scr);
    CHECK(fabs(b.co[0] - 0.5 * p) < 1e-5 * p, "dct p=%d DC %g", p, b.co[0]);
    CHECK(max_abs(b.co + 1, n - 1) < 1e-5, "dct p=%d AC of constant %g", p, max_abs(b.co + 1, n - 1));

    const uint8_t *band = ddct_xform_band(x);
    int allzero = 1, allkept = 1;
    for (size_t i = 0; i < n; i++) {
        allzero &= band[i] == 0;
        for (int k = 0; k < DDCT_KEEP_COUNT; k++) allkept &= ddct_xform_kept(x, (ddct_dwt_keep)k, i);
    }
    CHECK(allzero && allkept, "dct p=%d bands/keep", p);
    bufs_free(&b);
    ddct_xform_free(x);
}

static void test_dct(void)
{
    for (int p = 2; p <= 64; p++) test_dct_p(p, 1);
    static const int spot[] = {65, 71, 96, 100, 127, 128};
    for (size_t i = 0; i < sizeof spot / sizeof *spot; i++) test_dct_p(spot[i], 1);
    for (int p = 65; p <= 128; p++) test_dct_p(p, 0);
}

/* All SIMD kernels give bitwise-identical results to the scalar _ref kernel. */
static void test_simd_bitwise(void)
{
    CHECK(ddct_simd_supported(DDCT_SIMD_REF), "ref always supported");
    CHECK(ddct_simd_supported(ddct_simd_best()), "best supported");
    printf("simd best: %s (avx2 %d, avx512 %d)\n", ddct_simd_name(ddct_simd_best()),
           ddct_simd_supported(DDCT_SIMD_AVX2), ddct_simd_supported(DDCT_SIMD_AVX512));
    int tested = 0;
    for (int s = DDCT_SIMD_AVX2; s < DDCT_SIMD_COUNT; s++) {
        if (!ddct_simd_supported((ddct_simd)s)) {
            ddct_xform *x = NULL;
            CHECK(ddct_xform_create_simd(&x, DDCT_TRANSFORM_DCT, 16, DDCT_WAVELET_HAAR, 1, (ddct_simd)s, NULL) ==
                      DDCT_ERR_UNSUPPORTED && !x,
                  "unsupported %s rejected", ddct_simd_name((ddct_simd)s));
            continue;
        }
        for (int p = 2; p <= DDCT_MAX_PATCH; p++) {
            const size_t n = (size_t)p * p;
            ddct_xform *xr = NULL, *xf = NULL;
            ddct_err e = {0};
            int rc1 = ddct_xform_create_simd(&xr, DDCT_TRANSFORM_DCT, p, DDCT_WAVELET_HAAR, 1, DDCT_SIMD_REF, &e);
            int rc2 = ddct_xform_create_simd(&xf, DDCT_TRANSFORM_DCT, p, DDCT_WAVELET_HAAR, 1, (ddct_simd)s, &e);
            CHECK(rc1 == DDCT_OK && rc2 == DDCT_OK, "create simd p=%d: %s", p, e.msg);
            if (!xr || !xf) {
                ddct_xform_free(xr);
                ddct_xform_free(xf);
                continue;
            }
            /* guard floats after each buffer catch stray stores */
            float *in = malloc((n + 64) * sizeof *in), *a = malloc((n + 64) * sizeof *a),
                  *bb = malloc((n + 64) * sizeof *bb), *scr = malloc((n + 64) * sizeof *scr);
            if (!in || !a || !bb || !scr) exit(2);
            int same = 1, guard = 1;
            for (int trial = 0; trial < 3; trial++) {
                if (trial == 0) fill_normal(in, n);
                else if (trial == 1)
                    for (size_t i = 0; i < n; i++) in[i] = (i % 3) ? 0.0f : -0.0f; /* signed zeros */
                else
                    for (size_t i = 0; i < n; i++) in[i] = (float)(tu_normal() * 1e-3) * (float)(1 + (i % 7));
                for (size_t i = n; i < n + 64; i++) a[i] = bb[i] = scr[i] = 12345.0f;
                ddct_xform_forward(xr, in, a, scr);
                ddct_xform_forward(xf, in, bb, scr);
                same &= memcmp(a, bb, n * sizeof *a) == 0;
                ddct_xform_inverse(xr, a, a, scr);
                ddct_xform_inverse(xf, bb, bb, scr);
                same &= memcmp(a, bb, n * sizeof *a) == 0;
                for (size_t i = n; i < n + 64; i++) guard &= a[i] == 12345.0f && bb[i] == 12345.0f && scr[i] == 12345.0f;
            }
            CHECK(same, "%s vs ref not bitwise identical at p=%d", ddct_simd_name((ddct_simd)s), p);
            CHECK(guard, "%s wrote out of bounds at p=%d", ddct_simd_name((ddct_simd)s), p);
            tested++;
            free(in);
            free(a);
            free(bb);
            free(scr);
            ddct_xform_free(xr);
            ddct_xform_free(xf);
        }
    }
    printf("simd bitwise: %d (kernel, p) pairs compared\n", tested);
}

/* ------------------------------------------------------------ DWT */
static void test_dwt_pr(void)
{
    int cases = 0, haar_energy = 0;
    for (int w = 0; w < DDCT_WAVELET_COUNT; w++)
        for (int p = 2; p <= 64; p++) {
            const int maxlev = ddct_dwt_max_levels(p);
            for (int lv = 1; lv <= maxlev; lv++) {
                const size_t n = (size_t)p * p;
                ddct_xform *x = NULL;
                ddct_err e = {0};
                CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, p, (ddct_wavelet)w, lv, &e) == DDCT_OK,
                      "create dwt w=%d p=%d lv=%d: %s", w, p, lv, e.msg);
                if (!x) continue;
                bufs b = bufs_new(n);
                fill_normal(b.in, n);
                ddct_xform_forward(x, b.in, b.co, b.scr);
                ddct_xform_inverse(x, b.co, b.re, b.scr);
                const double err = max_diff(b.in, b.re, n), scale = max_abs(b.in, n);
                CHECK(err < 1e-5 * scale, "dwt w=%d p=%d lv=%d PR err %g", w, p, lv, err);
                if (w == DDCT_WAVELET_HAAR) {
                    const double ein = energy(b.in, n), eco = energy(b.co, n);
                    if (p % (1 << lv) == 0) {
                        CHECK(fabs(eco - ein) <= 1e-5 * ein, "haar p=%d lv=%d energy %.9g vs %.9g", p, lv, eco, ein);
                        haar_energy++;
                    } else {
                        /* odd lengths: each unpaired sample's energy doubles (per axis, per level) */
                        CHECK(eco >= ein * (1 - 1e-5) && eco <= ein * (1 << (2 * lv)), "haar p=%d lv=%d energy %.9g vs %.9g", p, lv,
                              eco, ein);
                    }
                } else if (p >= 16) {
                    /* near-orthonormal: energy kept within a factor ~1.5 on white noise (tiny
                     * patches are dominated by the symmetric edges and vary more) */
                    const double r = energy(b.co, n) / energy(b.in, n);
                    CHECK(r > 0.6 && r < 1.6, "cdf97 p=%d lv=%d energy ratio %g", p, lv, r);
                }
                /* in place */
                memcpy(b.re, b.in, n * sizeof(float));
                ddct_xform_forward(x, b.re, b.re, b.scr);
                CHECK(memcmp(b.re, b.co, n * sizeof(float)) == 0, "dwt in-place forward differs p=%d", p);
                ddct_xform_inverse(x, b.re, b.re, b.scr);
                CHECK(max_diff(b.in, b.re, n) < 1e-5 * scale, "dwt in-place PR p=%d", p);
                /* a constant patch has no detail at any level */
                for (size_t i = 0; i < n; i++) b.in[i] = 1.0f;
                ddct_xform_forward(x, b.in, b.co, b.scr);
                const uint8_t *band = ddct_xform_band(x);
                double det = 0;
                for (size_t i = 0; i < n; i++)
                    if ((band[i] & 3) != DDCT_BAND_LL) det = fmax(det, fabs(b.co[i]));
                CHECK(det < 1e-5, "dwt w=%d p=%d lv=%d detail of constant %g", w, p, lv, det);
                bufs_free(&b);
                ddct_xform_free(x);
                cases++;
            }
            CHECK(ddct_xform_create(&(ddct_xform *){NULL}, DDCT_TRANSFORM_DWT, p, (ddct_wavelet)w, maxlev + 1, NULL) ==
                      DDCT_ERR_PARAM || maxlev == DDCT_MAX_DWT_LEVELS,
                  "p=%d levels %d should be rejected", p, maxlev + 1);
        }
    /* larger patches, all levels */
    static const int big[] = {65, 99, 127, 128};
    for (int w = 0; w < DDCT_WAVELET_COUNT; w++)
        for (size_t bi = 0; bi < sizeof big / sizeof *big; bi++)
            for (int lv = 1; lv <= ddct_dwt_max_levels(big[bi]); lv++) {
                const int p = big[bi];
                const size_t n = (size_t)p * p;
                ddct_xform *x = NULL;
                CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, p, (ddct_wavelet)w, lv, NULL) == DDCT_OK, "create");
                if (!x) continue;
                bufs b = bufs_new(n);
                fill_normal(b.in, n);
                ddct_xform_forward(x, b.in, b.co, b.scr);
                ddct_xform_inverse(x, b.co, b.re, b.scr);
                CHECK(max_diff(b.in, b.re, n) < 1e-5 * max_abs(b.in, n), "dwt w=%d p=%d lv=%d PR", w, p, lv);
                bufs_free(&b);
                ddct_xform_free(x);
                cases++;
            }
    printf("dwt: %d (wavelet, p, levels) cases, %d exact Haar energy checks\n", cases, haar_energy);
}

static void test_dwt_levels(void)
{
    CHECK(ddct_dwt_max_levels(2) == 1, "p=2 -> 1 level");
    CHECK(ddct_dwt_max_levels(3) == 2, "p=3 -> 2");
    CHECK(ddct_dwt_max_levels(4) == 2, "p=4 -> 2");
    CHECK(ddct_dwt_max_levels(5) == 3, "p=5 -> 3");
    CHECK(ddct_dwt_max_levels(8) == 3, "p=8 -> 3");
    CHECK(ddct_dwt_max_levels(9) == 4, "p=9 -> 4");
    CHECK(ddct_dwt_max_levels(16) == 4, "p=16 -> 4");
    CHECK(ddct_dwt_max_levels(33) == 6, "p=33 -> 6");
    CHECK(ddct_dwt_max_levels(128) == 6, "p=128 -> 6 (cap)");
    ddct_xform *x = NULL;
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 2, DDCT_WAVELET_HAAR, 2, NULL) == DDCT_ERR_PARAM && !x, "p=2 lv=2");
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 16, DDCT_WAVELET_HAAR, 0, NULL) == DDCT_ERR_PARAM, "lv=0");
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 128, DDCT_WAVELET_CDF97, 7, NULL) == DDCT_ERR_PARAM, "lv=7");
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 16, DDCT_WAVELET_CDF97, 5, NULL) == DDCT_ERR_PARAM, "16 lv=5");
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 16, (ddct_wavelet)7, 1, NULL) == DDCT_ERR_PARAM, "bad wavelet");
}

/* CDF 9/7 analysis low-pass = sqrt(2) x the standard 9-tap filter: check it on an impulse. */
static void test_cdf97_filter(void)
{
    static const double h[5] = {0.602949018236, 0.266864118443, -0.078223266529, -0.016864118443,
                                0.026748757411};
    const int p = 32;
    ddct_xform *x = NULL;
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, p, DDCT_WAVELET_CDF97, 1, NULL) == DDCT_OK, "create");
    if (!x) return;
    bufs b = bufs_new((size_t)p * p);
    for (int c0 = 16; c0 <= 17; c0++) {
        /* every row = impulse at column c0: columns are constant, so the column low-pass scales
         * by sqrt 2 and LL[r][k] = 2 h[c0 - 2k] */
        memset(b.in, 0, (size_t)p * p * sizeof(float));
        for (int r = 0; r < p; r++) b.in[r * p + c0] = 1.0f;
        ddct_xform_forward(x, b.in, b.co, b.scr);
        double m = 0;
        for (int k = 0; k < p / 2; k++) {
            const int d = abs(c0 - 2 * k);
            const double want = d <= 4 ? 2 * h[d] : 0.0;
            m = fmax(m, fabs(b.co[5 * p + k] - want));
        }
        CHECK(m < 2e-6, "cdf97 impulse at %d: max err vs filter taps %g", c0, m);
    }
    /* Haar: (a+b)/sqrt2 low, (a-b)/sqrt2 high, per row then column */
    ddct_xform *hx = NULL;
    CHECK(ddct_xform_create(&hx, DDCT_TRANSFORM_DWT, 2, DDCT_WAVELET_HAAR, 1, NULL) == DDCT_OK, "haar2");
    if (hx) {
        float in[4] = {1, 2, 3, 4}, co[4], s[4];
        ddct_xform_forward(hx, in, co, s);
        /* rows: (3,-1)/r2, (7,-1)/r2; cols: LL=(3+7)/2=5, LH=(-1-1)/2=-1, HL=(3-7)/2=-2, HH=0 */
        CHECK(fabsf(co[0] - 5) < 1e-6f && fabsf(co[1] + 1) < 1e-6f && fabsf(co[2] + 2) < 1e-6f &&
                  fabsf(co[3]) < 1e-6f,
              "haar 2x2: %g %g %g %g", co[0], co[1], co[2], co[3]);
        ddct_xform_free(hx);
    }
    bufs_free(&b);
    ddct_xform_free(x);
}

/* ------------------------------------------------------------ bands and masks */
static void band_counts(const ddct_xform *x, int counts[4 * (DDCT_MAX_DWT_LEVELS + 1)])
{
    const int p = ddct_xform_p(x);
    memset(counts, 0, sizeof(int) * 4 * (DDCT_MAX_DWT_LEVELS + 1));
    const uint8_t *band = ddct_xform_band(x);
    for (int i = 0; i < p * p; i++) counts[band[i] < 4 * (DDCT_MAX_DWT_LEVELS + 1) ? band[i] : 0]++;
}

static void test_bands(void)
{
    int cnt[4 * (DDCT_MAX_DWT_LEVELS + 1)];
    ddct_xform *x = NULL;
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 16, DDCT_WAVELET_HAAR, 1, NULL) == DDCT_OK, "create");
    if (x) {
        band_counts(x, cnt);
        CHECK(cnt[4] == 64 && cnt[5] == 64 && cnt[6] == 64 && cnt[7] == 64, "p=16 l=1: %d %d %d %d", cnt[4], cnt[5],
              cnt[6], cnt[7]);
        const uint8_t *b = ddct_xform_band(x);
        CHECK(b[0] == 4 && b[8] == 5 && b[8 * 16] == 6 && b[8 * 16 + 8] == 7 && b[7 * 16 + 7] == 4 && b[15] == 5,
              "p=16 layout");
        ddct_xform_free(x);
    }
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 9, DDCT_WAVELET_CDF97, 1, NULL) == DDCT_OK, "create");
    if (x) {
        band_counts(x, cnt);
        CHECK(cnt[4] == 25 && cnt[5] == 20 && cnt[6] == 20 && cnt[7] == 16, "p=9 l=1: %d %d %d %d", cnt[4], cnt[5],
              cnt[6], cnt[7]);
        const uint8_t *b = ddct_xform_band(x);
        CHECK(b[4] == 4 && b[5] == 5 && b[4 * 9] == 4 && b[5 * 9] == 6 && b[5 * 9 + 5] == 7, "p=9 layout");
        int k1 = 0, k2 = 0, k3 = 0;
        for (size_t i = 0; i < 81; i++) {
            k1 += ddct_xform_kept(x, DDCT_KEEP_ALL, i);
            k2 += ddct_xform_kept(x, DDCT_KEEP_LL_LH_HL, i);
            k3 += ddct_xform_kept(x, DDCT_KEEP_LL_ONLY, i);
        }
        CHECK(k1 == 81 && k2 == 65 && k3 == 25, "p=9 keep %d %d %d", k1, k2, k3);
        CHECK(!ddct_xform_kept(x, DDCT_KEEP_ALL, 81), "out of range not kept");
        ddct_xform_free(x);
    }
    /* p=16, 3 levels: 8x8 -> 4x4 -> 2x2 LL */
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 16, DDCT_WAVELET_HAAR, 3, NULL) == DDCT_OK, "create");
    if (x) {
        band_counts(x, cnt);
        CHECK(cnt[0] == 0 && cnt[4] == 0 && cnt[5] == 64 && cnt[6] == 64 && cnt[7] == 64, "l1");
        CHECK(cnt[8] == 0 && cnt[9] == 16 && cnt[10] == 16 && cnt[11] == 16, "l2");
        CHECK(cnt[12] == 4 && cnt[13] == 4 && cnt[14] == 4 && cnt[15] == 4, "l3");
        int k2 = 0, k3 = 0;
        for (size_t i = 0; i < 256; i++) {
            k2 += ddct_xform_kept(x, DDCT_KEEP_LL_LH_HL, i);
            k3 += ddct_xform_kept(x, DDCT_KEEP_LL_ONLY, i);
            const int bd = ddct_xform_band(x)[i];
            if (ddct_xform_kept(x, DDCT_KEEP_LL_ONLY, i) != (bd == 12)) k3 = -1000;
        }
        CHECK(k2 == 256 - 64 - 16 - 4 && k3 == 4, "p=16 l=3 keep %d %d", k2, k3);
        ddct_xform_free(x);
    }
    /* odd p, several levels: 13 -> 7 -> 4 -> 2 */
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DWT, 13, DDCT_WAVELET_CDF97, 4, NULL) == DDCT_OK, "create");
    if (x) {
        band_counts(x, cnt);
        CHECK(cnt[5] == 7 * 6 && cnt[6] == 6 * 7 && cnt[7] == 36, "13 l1");
        CHECK(cnt[9] == 4 * 3 && cnt[10] == 12 && cnt[11] == 9, "13 l2");
        CHECK(cnt[13] == 2 * 2 && cnt[14] == 4 && cnt[15] == 4, "13 l3");
        CHECK(cnt[16] == 1 && cnt[17] == 1 && cnt[18] == 1 && cnt[19] == 1, "13 l4");
        ddct_xform_free(x);
    }
    /* lowfreq mask */
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DCT, 8, DDCT_WAVELET_HAAR, 1, NULL) == DDCT_OK, "create");
    if (x) {
        uint8_t m[64];
        ddct_xform_lowfreq_mask(x, 3, m);
        int s = 0, ok = 1;
        for (int i = 0; i < 64; i++) {
            s += m[i];
            ok &= m[i] == ((i / 8 < 3 && i % 8 < 3) ? 1 : 0);
        }
        CHECK(s == 9 && ok, "lowfreq k=3");
        ddct_xform_lowfreq_mask(x, 100, m);
        s = 0;
        for (int i = 0; i < 64; i++) s += m[i];
        CHECK(s == 64, "lowfreq k clamped");
        ddct_xform_lowfreq_mask(x, 0, m);
        s = 0;
        for (int i = 0; i < 64; i++) s += m[i];
        CHECK(s == 0, "lowfreq k=0");
        ddct_xform_free(x);
    }
}

static void test_none_and_params(void)
{
    ddct_xform *x = NULL;
    ddct_err e = {0};
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_NONE, 5, DDCT_WAVELET_HAAR, 99, &e) == DDCT_OK, "none ignores levels");
    if (x) {
        float in[25], out[25], s[25];
        fill_normal(in, 25);
        ddct_xform_forward(x, in, out, s);
        CHECK(memcmp(in, out, sizeof in) == 0, "none forward copies");
        ddct_xform_inverse(x, out, out, s);
        CHECK(memcmp(in, out, sizeof in) == 0, "none inverse copies");
        int ok = 1;
        for (size_t i = 0; i < 25; i++) ok &= ddct_xform_band(x)[i] == 0 && ddct_xform_kept(x, DDCT_KEEP_LL_ONLY, i);
        CHECK(ok, "none bands/keep");
        ddct_xform_free(x);
    }
    static const int badp[] = {-1, 0, 1, 129, 1000};
    for (int t = 0; t < DDCT_TRANSFORM_COUNT; t++)
        for (size_t i = 0; i < sizeof badp / sizeof *badp; i++) {
            x = (ddct_xform *)&e; /* must be reset to NULL */
            e.code = 0;
            CHECK(ddct_xform_create(&x, (ddct_transform)t, badp[i], DDCT_WAVELET_HAAR, 1, &e) == DDCT_ERR_PARAM &&
                      e.code == DDCT_ERR_PARAM && x == NULL && e.msg[0],
                  "kind %d p=%d rejected", t, badp[i]);
        }
    CHECK(ddct_xform_create(&x, (ddct_transform)9, 8, DDCT_WAVELET_HAAR, 1, NULL) == DDCT_ERR_PARAM, "bad kind");
    CHECK(ddct_xform_create(NULL, DDCT_TRANSFORM_DCT, 8, DDCT_WAVELET_HAAR, 1, NULL) == DDCT_ERR_PARAM, "null out");
    CHECK(ddct_xform_create(&x, DDCT_TRANSFORM_DCT, 8, DDCT_WAVELET_HAAR, 0, NULL) == DDCT_OK, "dct ignores levels");
    ddct_xform_free(x);
    ddct_xform_free(NULL);
    CHECK(ddct_xform_p(NULL) == 0 && ddct_xform_scratch_floats(NULL) == 0, "NULL plan");
}

/* ------------------------------------------------------------ qtable */
static void test_qtable(void)
{
    static const int k1[64] = {16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
                               14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
                               18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
                               49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
    float q[DDCT_MAX_PATCH * DDCT_MAX_PATCH];
    ddct_qtable_jpeg(8, q);
    int exact = 1;
    for (int i = 0; i < 64; i++) exact &= q[i] == (float)k1[i] / 16.0f;
    CHECK(exact, "qtable p=8 == K.1/16");
    for (int p = 2; p <= DDCT_MAX_PATCH; p++) {
        ddct_qtable_jpeg(p, q);
        int ok = q[0] == 1.0f;
        /* corners are the table's corners; all within the table's range */
        ok &= q[p - 1] == 61.0f / 16 && q[(p - 1) * p] == 72.0f / 16 && q[p * p - 1] == 99.0f / 16;
        for (int i = 0; i < p * p; i++) ok &= q[i] >= 10.0f / 16 - 1e-6f && q[i] <= 121.0f / 16 + 1e-6f;
        CHECK(ok, "qtable p=%d", p);
    }
    ddct_qtable_jpeg(15, q); /* p=15: index 2 sits at 1.0 exactly -> K.1 column 1 */
    CHECK(q[2] == 11.0f / 16 && fabsf(q[1] - 13.5f / 16) < 1e-6f, "qtable p=15 interp %g %g", q[2], q[1]);
    ddct_qtable_jpeg(1, q);
    CHECK(q[0] == 1.0f, "qtable p=1");
}

int main(void)
{
    test_none_and_params();
    test_dct();
    test_simd_bitwise();
    test_dwt_levels();
    test_dwt_pr();
    test_cdf97_filter();
    test_bands();
    test_qtable();
    return TEST_SUMMARY();
}
