/*
 * dct.c — orthonormal 2-D DCT-II (forward) / DCT-III (inverse) of a p x p patch, p = 2..128.
 *
 * Algorithm: separable matrix products with the orthonormal DCT-II matrix
 *     C[k][n] = s_k cos(pi (2n + 1) k / (2p)),  s_0 = sqrt(1/p), s_k = sqrt(2/p) (k > 0),
 * (Ahmed, Natarajan & Rao, "Discrete Cosine Transform", IEEE Trans. Computers, 1974;
 * the JPEG FDCT/IDCT of ITU-T T.81 A.3.3 is the p = 8 case with the same normalisation):
 *     forward  Y = C X C^T   computed as  T = C X,   Y = T C^T
 *     inverse  X = C^T Y C   computed as  T = C^T Y, X = T C
 * C is computed in double and stored as float; the products accumulate in float.
 * Each product is O(p^3), so a patch costs 2 p multiply-adds per coefficient.
 *
 * Kernels: every output element o[i][j] = sum_m a[i][m] b[m][j] is summed the same way by
 * every kernel: acc = +0.0f, then acc = acc + (a[i][m] * b[m][j]) for m = 0, 1, ..., p-1,
 * each product and each sum rounded to float (no FMA: the build uses -ffp-contract=off and
 * the SIMD kernels use separate mul/add). The AVX2 / AVX-512 kernels vectorize across the
 * independent output column j (tiles of 8 accumulator vectors, AVX-512 16; masked loads and
 * stores for a partial last vector), so their output is BITWISE IDENTICAL to the scalar _ref
 * kernel on every CPU and for every p; the kernel is chosen at run time with
 * ddct_simd_best (common/cpu.h; AVX-512 plans use the AVX2 kernel for p <= 16, where it is faster).
 * Speed (one core of an AMD EPYC with AVX-512, gcc 12 -O2, forward; inverse the same), in ns
 * per coefficient for p = 8 / 16 / 32 / 64 / 128: _ref 1.2 / 2.4 / 4.6 / 11 / 27,
 * AVX2 0.58 / 0.63 / 1.3 / 3.6 / 5.6, AVX-512 (AVX2 up to p = 16) - / - / 1.15 / 1.7 / 3.2.
 *
 * Precision: the float matrix has entries within 2^-24 relative of the exact cosines and each
 * output sums p products, so for data of unit scale the error against the exact transform is
 * a few 1e-7 * sqrt(p) in typical use and bounded by about 2 p * 2^-24 * max|x| * sqrt(p)
 * (measured: < 2e-6 max abs on unit-normal data for p <= 128). Inverse(forward(x)) returns x
 * to the same accuracy. ddct_dct2_naive / ddct_idct2_naive are the direct O(p^4) double
 * definitions (cosines from a 4p-entry table of cos(pi m / (2p))) used as test references.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "transform/transform.h"

#if DDCT_HAVE_X86_SIMD
#include <immintrin.h>
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ------------------------------------------------------------ matrix */
void ddct_dct_matrix(int p, float *c, float *ct)
{
    const double s0 = sqrt(1.0 / p), s1 = sqrt(2.0 / p);
    for (int k = 0; k < p; k++)
        for (int n = 0; n < p; n++) {
            /* reduce (2n+1)k mod 4p so the angle stays small and exact */
            long m = ((long)(2 * n + 1) * k) % (4L * p);
            float v = (float)((k ? s1 : s0) * cos(M_PI * (double)m / (2.0 * p)));
            c[(size_t)k * p + n] = v;
            ct[(size_t)n * p + k] = v;
        }
}

/* ------------------------------------------------------------ scalar reference kernel */
/* Portable C. Output columns go 8 at a time into local accumulators (which compilers keep
 * in registers and may turn into SSE/NEON lanes: that changes nothing, each lane is still
 * acc = acc + a*b in m order), then the remaining < 8 columns one by one. */
static void mm_ref(int p, const float *restrict a, const float *restrict b, float *restrict o)
{
    const size_t sp = (size_t)p;
    for (int i = 0; i < p; i++) {
        const float *ai = a + (size_t)i * sp;
        float *oi = o + (size_t)i * sp;
        int j = 0;
        for (; j + 8 <= p; j += 8) {
            float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            const float *bp = b + j;
            for (int m = 0; m < p; m++, bp += sp) {
                const float am = ai[m];
                for (int t = 0; t < 8; t++) acc[t] = acc[t] + am * bp[t];
            }
            for (int t = 0; t < 8; t++) oi[j + t] = acc[t];
        }
        for (; j < p; j++) {
            float acc = 0.0f;
            const float *bp = b + j;
            for (int m = 0; m < p; m++, bp += sp) acc = acc + ai[m] * bp[0];
            oi[j] = acc;
        }
    }
}

#if DDCT_HAVE_X86_SIMD
#define DDCT_UNROLL _Pragma("GCC unroll 16")

/* ------------------------------------------------------------ AVX2 kernel */
/* One tile of R rows x NV vectors of 8 floats (R * NV = 8 accumulators: enough independent
 * add chains to hide the add latency). Rows i..i+nr-1 are real (nr <= R; the others
 * recompute the last real row and are not stored); columns j..j+nc-1 (nc <= 8 NV), with a
 * partial last vector loaded and stored under a mask when `masked`. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void
mm_avx2_tile(int p, const float *a, const float *b, float *o, int i, int nr, int j, int nc, const int R,
             const int NV, const int masked)
{
    const size_t sp = (size_t)p;
    const float *ar[8];
    DDCT_UNROLL
    for (int r = 0; r < R; r++) ar[r] = a + (size_t)(i + (r < nr ? r : nr - 1)) * sp;
    __m256i k[2];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    DDCT_UNROLL
    for (int v = 0; v < NV; v++) k[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8 * v), lane);
    __m256 acc[8][2];
    DDCT_UNROLL
    for (int r = 0; r < R; r++) {
        DDCT_UNROLL
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    }
    const float *bp = b + j;
    for (int m = 0; m < p; m++, bp += sp) {
        __m256 bv[2];
        DDCT_UNROLL
        for (int v = 0; v < NV; v++)
            bv[v] = masked ? _mm256_maskload_ps(bp + 8 * v, k[v]) : _mm256_loadu_ps(bp + 8 * v);
        DDCT_UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 x = _mm256_broadcast_ss(ar[r] + m);
            DDCT_UNROLL
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_mul_ps(x, bv[v]));
        }
    }
    DDCT_UNROLL
    for (int r = 0; r < R; r++) {
        if (r >= nr) break;
        float *op = o + (size_t)(i + r) * sp + j;
        DDCT_UNROLL
        for (int v = 0; v < NV; v++) {
            if (masked) _mm256_maskstore_ps(op + 8 * v, k[v], acc[r][v]);
            else _mm256_storeu_ps(op + 8 * v, acc[r][v]);
        }
    }
}

/* Column strips of 16 (4 x 2 tiles), a last strip of <= 8 as 8 x 1 tiles. */
__attribute__((target("avx2"))) static void mm_avx2(int p, const float *a, const float *b, float *o)
{
    for (int j = 0; j < p;) {
        const int nc = p - j < 16 ? p - j : 16;
        if (nc > 8) {
            for (int i = 0; i < p; i += 4) {
                const int nr = p - i < 4 ? p - i : 4;
                if (nc == 16) mm_avx2_tile(p, a, b, o, i, nr, j, nc, 4, 2, 0);
                else mm_avx2_tile(p, a, b, o, i, nr, j, nc, 4, 2, 1);
            }
        } else {
            for (int i = 0; i < p; i += 8) {
                const int nr = p - i < 8 ? p - i : 8;
                if (nc == 8) mm_avx2_tile(p, a, b, o, i, nr, j, nc, 8, 1, 0);
                else mm_avx2_tile(p, a, b, o, i, nr, j, nc, 8, 1, 1);
            }
        }
        j += nc;
    }
}

/* ------------------------------------------------------------ AVX-512 kernel */
/* Same tiling with 16-float vectors and 32 registers: R x NV = 8 x 2 or 8 x 1 accumulators.
 * Masked loads/stores cost the same as plain ones, so they are always used. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
mm_avx512_tile(int p, const float *a, const float *b, float *o, int i, int nr, int j, int nc, const int R,
               const int NV)
{
    const size_t sp = (size_t)p;
    const float *ar[8];
    DDCT_UNROLL
    for (int r = 0; r < R; r++) ar[r] = a + (size_t)(i + (r < nr ? r : nr - 1)) * sp;
    __mmask16 k[2];
    DDCT_UNROLL
    for (int v = 0; v < NV; v++) {
        const int c = nc - 16 * v;
        k[v] = c >= 16 ? (__mmask16)0xFFFF : c > 0 ? (__mmask16)((1u << c) - 1u) : (__mmask16)0;
    }
    __m512 acc[8][2];
    DDCT_UNROLL
    for (int r = 0; r < R; r++) {
        DDCT_UNROLL
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    }
    const float *bp = b + j;
    for (int m = 0; m < p; m++, bp += sp) {
        __m512 bv[2];
        DDCT_UNROLL
        for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(k[v], bp + 16 * v);
        DDCT_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(ar[r][m]);
            DDCT_UNROLL
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_mul_ps(x, bv[v]));
        }
    }
    DDCT_UNROLL
    for (int r = 0; r < R; r++) {
        if (r >= nr) break;
        float *op = o + (size_t)(i + r) * sp + j;
        DDCT_UNROLL
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(op + 16 * v, k[v], acc[r][v]);
    }
}

/* Column strips of 32 (8 x 2 tiles), a last strip of <= 16 as 8 x 1 tiles. */
__attribute__((target("avx512f"))) static void mm_avx512(int p, const float *a, const float *b,
                                                         float *o)
{
    for (int j = 0; j < p;) {
        const int nc = p - j < 32 ? p - j : 32;
        for (int i = 0; i < p; i += 8) {
            const int nr = p - i < 8 ? p - i : 8;
            if (nc > 16) mm_avx512_tile(p, a, b, o, i, nr, j, nc, 8, 2);
            else mm_avx512_tile(p, a, b, o, i, nr, j, nc, 8, 1);
        }
        j += nc;
    }
}
#endif /* DDCT_HAVE_X86_SIMD */

/* ------------------------------------------------------------ dispatch */
ddct_matmul_fn ddct_dct_kernel(ddct_simd s, int p)
{
    (void)p;
    if (!ddct_simd_supported(s)) return NULL;
    switch (s) {
#if DDCT_HAVE_X86_SIMD
    case DDCT_SIMD_AVX2: return mm_avx2;
    /* p <= 16 gives one 16-float vector per strip, so every multiply-add pair needs its
     * own broadcast; the 8-float kernel (two vectors per strip) measured faster there
     * (AMD Zen 4: p=16 0.65 vs 1.05 ns/coefficient), the 16-float one from p = 32 up. */
    case DDCT_SIMD_AVX512: return p <= 16 && ddct_simd_supported(DDCT_SIMD_AVX2) ? mm_avx2 : mm_avx512;
#endif
    default: return mm_ref;
    }
}

void ddct_dct_fwd(int p, ddct_matmul_fn mm, const float *c, const float *ct, const float *in,
                  float *out, float *tmp)
{
    mm(p, c, in, tmp);   /* T = C X */
    mm(p, tmp, ct, out); /* Y = T C^T */
}

void ddct_dct_inv(int p, ddct_matmul_fn mm, const float *c, const float *ct, const float *in,
                  float *out, float *tmp)
{
    mm(p, ct, in, tmp); /* T = C^T Y */
    mm(p, tmp, c, out); /* X = T C */
}

/* ------------------------------------------------------------ naive double references */
/* tab[m] = cos(pi m / (2p)) for m = 0..4p-1 (every cosine the definitions need is one of
 * these); sc[k] = s_k. */
static void naive_table(int p, double *tab, double *sc)
{
    for (int m = 0; m < 4 * p; m++) tab[m] = cos(M_PI * m / (2.0 * p));
    for (int k = 0; k < p; k++) sc[k] = k ? sqrt(2.0 / p) : sqrt(1.0 / p);
}

/* out[u][v] = s_u s_v sum_x sum_y in[x][y] cos(pi (2x+1) u / 2p) cos(pi (2y+1) v / 2p) */
void ddct_dct2_naive(int p, const double *in, double *out)
{
    if (p < 1 || p > DDCT_MAX_PATCH) return;
    double tab[4 * DDCT_MAX_PATCH], sc[DDCT_MAX_PATCH];
    naive_table(p, tab, sc);
    const int per = 4 * p;
    for (int u = 0; u < p; u++)
        for (int v = 0; v < p; v++) {
            double s = 0;
            for (int x = 0; x < p; x++) {
                const double cu = tab[((2 * x + 1) * u) % per];
                for (int y = 0; y < p; y++) s += in[x * p + y] * cu * tab[((2 * y + 1) * v) % per];
            }
            out[u * p + v] = sc[u] * sc[v] * s;
        }
}

/* out[x][y] = sum_u sum_v s_u s_v in[u][v] cos(pi (2x+1) u / 2p) cos(pi (2y+1) v / 2p) */
void ddct_idct2_naive(int p, const double *in, double *out)
{
    if (p < 1 || p > DDCT_MAX_PATCH) return;
    double tab[4 * DDCT_MAX_PATCH], sc[DDCT_MAX_PATCH];
    naive_table(p, tab, sc);
    const int per = 4 * p;
    for (int x = 0; x < p; x++)
        for (int y = 0; y < p; y++) {
            double s = 0;
            for (int u = 0; u < p; u++) {
                const double cu = sc[u] * tab[((2 * x + 1) * u) % per];
                for (int v = 0; v < p; v++) s += in[u * p + v] * cu * sc[v] * tab[((2 * y + 1) * v) % per];
            }
            out[x * p + y] = s;
        }
}
