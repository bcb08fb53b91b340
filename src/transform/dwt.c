/*
 * dwt.c — 2-D discrete wavelet transform of a p x p patch by lifting: Haar and CDF 9/7.
 *
 * Algorithm: the lifting scheme (W. Sweldens, "The lifting scheme: a construction of second
 * generation wavelets", SIAM J. Math. Anal. 29(2), 1998; I. Daubechies & W. Sweldens,
 * "Factoring wavelet transforms into lifting steps", J. Fourier Anal. Appl. 4(3), 1998).
 * A 1-D signal x[0..n-1], n >= 2, is split into evens E[k] = x[2k] (nl = ceil(n/2) of them,
 * the low band) and odds O[k] = x[2k+1] (nh = floor(n/2), the high band).
 *
 *   CDF 9/7 (the JPEG 2000 irreversible 9/7 filter, ITU-T T.800 Annex F.3.8.2):
 *     O[k] += a (E[k]   + E[k+1])      a = -1.586134342
 *     E[k] += b (O[k-1] + O[k])        b = -0.05298011854
 *     O[k] += g (E[k]   + E[k+1])      g =  0.8829110762
 *     E[k] += d (O[k-1] + O[k])        d =  0.4435068522
 *     E[k] *= K,  O[k] /= K            K =  1.149604398
 *   With this scaling the low-pass filter has DC gain sqrt(2) and the transform is nearly
 *   orthonormal (analysis low-pass = sqrt(2) x the familiar 9-tap 0.6029490182, 0.2668641184,
 *   -0.0782232665, -0.0168641184, 0.0267487574). Neighbours outside the signal come from
 *   whole-sample symmetric extension, x[-i] = x[i], x[n-1+i] = x[n-1-i]; on the split signal
 *   that is E[nl] -> E[nl-1] (n even), O[-1] -> O[0], O[nh] -> O[nh-1] (n odd). Any n >= 2
 *   works, odd included.
 *   Inverse: the same steps in reverse order with negated coefficients (E /= K, O *= K first).
 *
 *   Haar: the two lifting steps plus scaling collapse to the orthonormal butterfly
 *     E[k], O[k]  ->  (E[k] + O[k]) / sqrt(2),  (E[k] - O[k]) / sqrt(2)      (k < nh)
 *   i.e. low = (x[2k] + x[2k+1]) / sqrt 2, high = (x[2k] - x[2k+1]) / sqrt 2. For odd n the
 *   last even sample has no partner; it is paired with itself (half-sample symmetric
 *   extension x[n] = x[n-1], the natural one for the even-length Haar filter), giving
 *   low = sqrt(2) x[n-1] and a zero high coefficient that is not stored. So every low
 *   coefficient has the same DC gain sqrt 2 (a constant patch has no detail at any level and
 *   LL alone reconstructs it), and Haar is exactly orthonormal (energy preserving) whenever
 *   every level's length is even (p divisible by 2^levels); an odd length adds the unpaired
 *   sample's energy once more.
 *
 * 2-D: each level transforms every row of the current n x n region (top-left of the patch,
 * row stride p), then every column; the low half lands first, so the region becomes the
 * Mallat quadrants LL | LH over HL | HH of transform.h (LH = high-pass along rows), and the
 * next level recurses into LL (size nl). The inverse undoes columns, then rows, coarsest
 * level first. Rows are transposed into scratch so that every 1-D lifting step runs as a
 * contiguous, vectorisable axpy over whole lines. Scratch: p*p floats.
 *
 * Precision: all arithmetic in float. Lifting is exactly invertible in exact arithmetic;
 * in float the reconstruction error is a few ulp per step: max |x - inv(fwd(x))| is below
 * 1e-6 * max|x| for every p <= 128 and level count (tests require < 1e-5).
 */
#include <math.h>
#include <string.h>

#include "transform/transform.h"

static const float kAlpha = -1.586134342f;
static const float kBeta = -0.05298011854f;
static const float kGamma = 0.8829110762f;
static const float kDelta = 0.4435068522f;
static const float kK = 1.149604398f;
static const float kInvK = (float)(1.0 / 1.149604398);
static const float kRsqrt2 = 0.70710678118654752f;

int ddct_dwt_max_levels(int p)
{
    int lv = 0;
    for (int n = p; n >= 2 && lv < DDCT_MAX_DWT_LEVELS; n = (n + 1) / 2) lv++;
    return lv;
}

void ddct_dwt_bands(int p, int levels, uint8_t *band)
{
    int n = p;
    for (int l = 1; l <= levels; l++) {
        const int nl = (n + 1) / 2;
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++) {
                if (r < nl && c < nl) continue;
                const int orient = (r >= nl ? DDCT_BAND_HL : 0) + (c >= nl ? DDCT_BAND_LH : 0);
                band[(size_t)r * p + c] = (uint8_t)(l * 4 + orient);
            }
        n = nl;
    }
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) band[(size_t)r * p + c] = (uint8_t)(levels * 4 + DDCT_BAND_LL);
}

/* ------------------------------------------------------------ 1-D lifting over lines */
/* The split signal lives in s as n lines of w floats (line k at s + k*w): lines 0..nl-1 are
 * E, lines nl..n-1 are O. Each step is applied to all w columns at once. */

/* o += c (e0 + e1) */
static void axpy2(float *restrict o, const float *restrict e0, const float *restrict e1, float c,
                  int w)
{
    for (int i = 0; i < w; i++) o[i] = o[i] + c * (e0[i] + e1[i]);
}

static void scale(float *restrict v, float c, size_t w)
{
    for (size_t i = 0; i < w; i++) v[i] = v[i] * c;
}

/* O[k] += c (E[k] + E[k+1]) */
static void lift_odd(float *s, int n, int w, float c)
{
    const int nl = (n + 1) / 2, nh = n / 2;
    for (int k = 0; k < nh; k++) {
        const int k1 = k + 1 < nl ? k + 1 : nl - 1;
        axpy2(s + (size_t)(nl + k) * w, s + (size_t)k * w, s + (size_t)k1 * w, c, w);
    }
}

/* E[k] += c (O[k-1] + O[k]) */
static void lift_even(float *s, int n, int w, float c)
{
    const int nl = (n + 1) / 2, nh = n / 2;
    float *o = s + (size_t)nl * w;
    for (int k = 0; k < nl; k++) {
        const int km = k > 0 ? k - 1 : 0;
        const int k0 = k < nh ? k : nh - 1;
        axpy2(s + (size_t)k * w, o + (size_t)km * w, o + (size_t)k0 * w, c, w);
    }
}

static void haar_lines(float *s, int n, int w)
{
    const int nl = (n + 1) / 2, nh = n / 2;
    for (int k = 0; k < nh; k++) {
        float *restrict e = s + (size_t)k * w;
        float *restrict o = s + (size_t)(nl + k) * w;
        for (int i = 0; i < w; i++) {
            const float a = e[i], b = o[i];
            e[i] = (a + b) * kRsqrt2;
            o[i] = (a - b) * kRsqrt2;
        }
    }
}

/* odd n: the unpaired last even line, paired with itself: x -> (x + x) / sqrt 2 */
static void haar_odd_fwd(float *s, int n, int w)
{
    if (!(n & 1)) return;
    float *e = s + (size_t)(n / 2) * w;
    for (int i = 0; i < w; i++) e[i] = (e[i] + e[i]) * kRsqrt2;
}

/* inverse of haar_odd_fwd: the butterfly with a zero high coefficient, x = (l + 0) / sqrt 2 */
static void haar_odd_inv(float *s, int n, int w)
{
    if (!(n & 1)) return;
    float *e = s + (size_t)(n / 2) * w;
    for (int i = 0; i < w; i++) e[i] = e[i] * kRsqrt2;
}

static void lines_fwd(ddct_wavelet wv, float *s, int n, int w)
{
    if (wv == DDCT_WAVELET_HAAR) {
        haar_lines(s, n, w);
        haar_odd_fwd(s, n, w);
        return;
    }
    const int nl = (n + 1) / 2;
    lift_odd(s, n, w, kAlpha);
    lift_even(s, n, w, kBeta);
    lift_odd(s, n, w, kGamma);
    lift_even(s, n, w, kDelta);
    scale(s, kK, (size_t)nl * w);
    scale(s + (size_t)nl * w, kInvK, (size_t)(n - nl) * w);
}

static void lines_inv(ddct_wavelet wv, float *s, int n, int w)
{
    if (wv == DDCT_WAVELET_HAAR) {
        haar_lines(s, n, w); /* the orthonormal butterfly is its own inverse */
        haar_odd_inv(s, n, w);
        return;
    }
    const int nl = (n + 1) / 2;
    scale(s, kInvK, (size_t)nl * w);
    scale(s + (size_t)nl * w, kK, (size_t)(n - nl) * w);
    lift_even(s, n, w, -kDelta);
    lift_odd(s, n, w, -kGamma);
    lift_even(s, n, w, -kBeta);
    lift_odd(s, n, w, -kAlpha);
}

/* line holding sample t of an n-sample signal after the even/odd split */
static inline int split_line(int t, int nl) { return (t & 1) ? nl + (t >> 1) : t >> 1; }

/* ------------------------------------------------------------ 2-D */
void ddct_dwt_fwd(int p, ddct_wavelet wv, int levels, const float *in, float *out, float *scratch)
{
    const size_t sp = (size_t)p;
    if (in != out) memcpy(out, in, sp * sp * sizeof *out);
    int n = p;
    for (int l = 0; l < levels && n >= 2; l++) {
        const int nl = (n + 1) / 2;
        /* rows: transpose column c of the region into scratch line split_line(c) */
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++) scratch[(size_t)split_line(c, nl) * n + r] = out[r * sp + c];
        lines_fwd(wv, scratch, n, n);
        for (int r = 0; r < n; r++)
            for (int j = 0; j < n; j++) out[r * sp + j] = scratch[(size_t)j * n + r];
        /* columns: row r of the region is scratch line split_line(r) */
        for (int r = 0; r < n; r++)
            memcpy(scratch + (size_t)split_line(r, nl) * n, out + r * sp, (size_t)n * sizeof *out);
        lines_fwd(wv, scratch, n, n);
        for (int j = 0; j < n; j++) memcpy(out + j * sp, scratch + (size_t)j * n, (size_t)n * sizeof *out);
        n = nl;
    }
}

void ddct_dwt_inv(int p, ddct_wavelet wv, int levels, const float *in, float *out, float *scratch)
{
    const size_t sp = (size_t)p;
    if (in != out) memcpy(out, in, sp * sp * sizeof *out);
    int sizes[DDCT_MAX_DWT_LEVELS + 1], nlev = 0;
    for (int n = p; nlev < levels && nlev < DDCT_MAX_DWT_LEVELS && n >= 2; n = (n + 1) / 2) sizes[nlev++] = n;
    for (int l = nlev - 1; l >= 0; l--) {
        const int n = sizes[l], nl = (n + 1) / 2;
        /* columns */
        for (int j = 0; j < n; j++) memcpy(scratch + (size_t)j * n, out + j * sp, (size_t)n * sizeof *out);
        lines_inv(wv, scratch, n, n);
        for (int r = 0; r < n; r++)
            memcpy(out + r * sp, scratch + (size_t)split_line(r, nl) * n, (size_t)n * sizeof *out);
        /* rows */
        for (int r = 0; r < n; r++)
            for (int j = 0; j < n; j++) scratch[(size_t)j * n + r] = out[r * sp + j];
        lines_inv(wv, scratch, n, n);
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++) out[r * sp + c] = scratch[(size_t)split_line(c, nl) * n + r];
    }
}
