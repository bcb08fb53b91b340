/*
 * quant.c — uniform scalar quantizer over [lo, hi] with b = 1..16 bits.
 *
 * Exact float arithmetic (the same in the fast and the _ref kernels, and the header's
 * expression order; the build uses -ffp-contract=off so nothing is fused):
 *   L = 2^b - 1, Lf = (float)L, r = hi - lo
 *   quant:   t = (x - lo) / r * Lf;  u = t + 0.5f;
 *            q = 0 if !(u >= 0) (NaN included), L if u >= Lf, else (int)u  (= floorf(u))
 *   dequant: x^ = lo + (float)min(q, L) * r / Lf
 * Degenerate cases: r not > 0 (hi == lo, hi < lo, NaN bounds) -> every q = 0 and x^ = lo;
 * b outside 1..16 -> every q = 0 and x^ = lo. Never UB on NaN / Inf input: the clamps
 * happen in float before any conversion to an integer.
 *
 * The fast kernels are the same expressions written branch-free (which the compiler may
 * vectorize), plus AVX2 intrinsics picked at run time on x86. Division
 * and multiplication by Lf are correctly rounded IEEE operations whether scalar or SIMD,
 * so the results are bitwise equal to the _ref kernels, which the tests check.
 */
#include "common/cpu.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DDCT_QUANT_X86 1
#include <immintrin.h>
#else
#define DDCT_QUANT_X86 0
#endif

static int quant_degenerate(int bits, float lo, float hi)
{
    return bits < 1 || bits > 16 || !(hi - lo > 0.0f);
}

/* ------------------------------------------------------------ reference kernels */
void ddct_quant_uniform_ref(const float *x, size_t n, int bits, float lo, float hi, uint16_t *q)
{
    if (quant_degenerate(bits, lo, hi)) {
        for (size_t i = 0; i < n; i++) q[i] = 0;
        return;
    }
    const unsigned L = (1u << bits) - 1u;
    const float Lf = (float)L;
    const float r = hi - lo;
    for (size_t i = 0; i < n; i++) {
        float t = (x[i] - lo) / r * Lf;
        float u = floorf(t + 0.5f);
        if (!(u >= 0.0f)) q[i] = 0;
        else if (u >= Lf) q[i] = (uint16_t)L;
        else q[i] = (uint16_t)u;
    }
}

void ddct_dequant_uniform_ref(const uint16_t *q, size_t n, int bits, float lo, float hi, float *x)
{
    if (quant_degenerate(bits, lo, hi)) {
        for (size_t i = 0; i < n; i++) x[i] = lo;
        return;
    }
    const unsigned L = (1u << bits) - 1u;
    const float Lf = (float)L;
    const float r = hi - lo;
    for (size_t i = 0; i < n; i++) {
        unsigned k = q[i] > L ? L : q[i];
        x[i] = lo + (float)k * r / Lf;
    }
}

/* ------------------------------------------------------------ fast kernels */
/* Branch-free bodies; `static inline` so each target clone gets its own vectorized copy. */
static inline void quant_body(const float *restrict x, size_t n, float lo, float r, float Lf, uint16_t *restrict q)
{
    for (size_t i = 0; i < n; i++) {
        float t = (x[i] - lo) / r * Lf;
        float u = t + 0.5f;
        u = u >= 0.0f ? u : 0.0f; /* NaN -> 0 */
        u = u < Lf ? u : Lf;
        q[i] = (uint16_t)(int32_t)u; /* u in [0, Lf]: truncation == floorf */
    }
}

static inline void dequant_body(const uint16_t *restrict q, size_t n, float lo, float r, float Lf, unsigned L,
                                float *restrict x)
{
    for (size_t i = 0; i < n; i++) {
        unsigned k = q[i];
        k = k < L ? k : L;
        x[i] = lo + (float)(int32_t)k * r / Lf;
    }
}

static void quant_generic(const float *x, size_t n, float lo, float r, float Lf, uint16_t *q)
{
    quant_body(x, n, lo, r, Lf, q);
}
static void dequant_generic(const uint16_t *q, size_t n, float lo, float r, float Lf, unsigned L, float *x)
{
    dequant_body(q, n, lo, r, Lf, L, x);
}

#if DDCT_QUANT_X86
/* AVX2 intrinsics (not left to the auto-vectorizer, which -O2 may not run): the same
 * operations in the same order; max_ps(u, 0) returns 0 for NaN u like the scalar
 * `u >= 0 ? u : 0`, min_ps(u, Lf) is `u < Lf ? u : Lf`. */
__attribute__((target("avx2"))) static void quant_avx2(const float *x, size_t n, float lo, float r, float Lf,
                                                       uint16_t *q)
{
    const __m256 vlo = _mm256_set1_ps(lo), vr = _mm256_set1_ps(r), vL = _mm256_set1_ps(Lf);
    const __m256 half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; n - i >= 16; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        a = _mm256_add_ps(_mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(a, vlo), vr), vL), half);
        b = _mm256_add_ps(_mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(b, vlo), vr), vL), half);
        a = _mm256_min_ps(_mm256_max_ps(a, zero), vL);
        b = _mm256_min_ps(_mm256_max_ps(b, zero), vL);
        __m256i p = _mm256_packus_epi32(_mm256_cvttps_epi32(a), _mm256_cvttps_epi32(b));
        _mm256_storeu_si256((__m256i *)(void *)(q + i), _mm256_permute4x64_epi64(p, 0xD8));
    }
    quant_body(x + i, n - i, lo, r, Lf, q + i);
}
__attribute__((target("avx2"))) static void dequant_avx2(const uint16_t *q, size_t n, float lo, float r, float Lf,
                                                         unsigned L, float *x)
{
    const __m256 vlo = _mm256_set1_ps(lo), vr = _mm256_set1_ps(r), vL = _mm256_set1_ps(Lf);
    const __m128i vLi = _mm_set1_epi16((short)(uint16_t)L);
    size_t i = 0;
    for (; n - i >= 16; i += 16) {
        __m128i k0 = _mm_min_epu16(_mm_loadu_si128((const __m128i *)(const void *)(q + i)), vLi);
        __m128i k1 = _mm_min_epu16(_mm_loadu_si128((const __m128i *)(const void *)(q + i + 8)), vLi);
        __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(k0));
        __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(k1));
        a = _mm256_add_ps(vlo, _mm256_div_ps(_mm256_mul_ps(a, vr), vL));
        b = _mm256_add_ps(vlo, _mm256_div_ps(_mm256_mul_ps(b, vr), vL));
        _mm256_storeu_ps(x + i, a);
        _mm256_storeu_ps(x + i + 8, b);
    }
    dequant_body(q + i, n - i, lo, r, Lf, L, x + i);
}
static int have_avx2(void)
{
    return ddct_simd_supported(DDCT_SIMD_AVX2);
}
#endif

void ddct_quant_uniform(const float *x, size_t n, int bits, float lo, float hi, uint16_t *q)
{
    if (n == 0) return;
    if (quant_degenerate(bits, lo, hi)) {
        memset(q, 0, n * sizeof *q);
        return;
    }
    const float Lf = (float)((1u << bits) - 1u);
    const float r = hi - lo;
#if DDCT_QUANT_X86
    if (n >= 16 && have_avx2()) {
        quant_avx2(x, n, lo, r, Lf, q);
        return;
    }
#endif
    quant_generic(x, n, lo, r, Lf, q);
}

void ddct_dequant_uniform(const uint16_t *q, size_t n, int bits, float lo, float hi, float *x)
{
    if (n == 0) return;
    if (quant_degenerate(bits, lo, hi)) {
        for (size_t i = 0; i < n; i++) x[i] = lo;
        return;
    }
    const unsigned L = (1u << bits) - 1u;
    const float Lf = (float)L;
    const float r = hi - lo;
#if DDCT_QUANT_X86
    if (n >= 16 && have_avx2()) {
        dequant_avx2(q, n, lo, r, Lf, L, x);
        return;
    }
#endif
    dequant_generic(q, n, lo, r, Lf, L, x);
}
