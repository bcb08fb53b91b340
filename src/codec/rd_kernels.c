/*
 * rd_kernels.c — the rd codec's per-value loops, each as a portable _ref kernel and an AVX2 one
 * picked at run time (ddct_simd_supported, common/cpu.h: CPU features checked in one place).
 *
 * ddct_rd_quant_rebuild: a plain (not transformed) residual r = x - l quantized with one band's
 * dead-zone quantizer (q = sign(r) min(floor(|r| / D + rho), RD_QMAX)), rebuilt as the decoder
 * does (l + sign(r) (|q| - theta) D, theta per |q| = 1 and |q| >= 2, D and the offsets as the
 * record stores them), and the sums the encoder needs: sum |x^|, sum x x, sum x x^, sum x^ x^.
 * The sums run in blocks of 512 values, each with 8 float lanes (value i on lane i mod 8 of its
 * block, the block's last < 8 values on lanes 0, 1, ... in order), the lanes then added in
 * double in lane order: both kernels do exactly these operations (no FMA: -ffp-contract=off),
 * so the sums, and the rescale factor stored from them, are the same on every machine.
 * ddct_rd_dequant_add: the decoder's side of the same rebuild, out[i] += sign(q) (|q| - theta) D.
 * ddct_rd_lowrank_rows: rows of U V^T; up to RD_LR_OWN triplets every value is the sum over the
 * triplets in order of u_i[row] v_i[col] (one multiply, one add each), the same in both kernels;
 * larger ranks go to BLAS (one serial sgemm, whose kernel OpenBLAS picks per CPU).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "rd_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RD_X86 1
#else
#define RD_X86 0
#endif

static inline void qr1(float xv, float lv, const ddct_rd_qparams *p, int16_t *q, float *sa, float *dd, float *dh,
                       float *hh)
{
    float r = xv - lv, av = fabsf(r) * p->inv + p->rho;
    av = av < (float)RD_QMAX ? av : (float)RD_QMAX;
    int qa = (int)av;
    float m = qa == 1 ? p->a1 : (float)qa * p->st - p->t2s;
    m = qa ? m : 0.0f;
    int neg = r < 0;
    float h = lv + (neg ? -m : m);
    *q = (int16_t)(neg ? -qa : qa);
    *sa += fabsf(h);
    *dd += xv * xv;
    *dh += xv * h;
    *hh += h * h;
}

/* The block's values from i on that are fewer than 8: lanes 0, 1, ... */
static void tail(const float *x, const float *l, size_t i, size_t i1, const ddct_rd_qparams *p, int16_t *q, float *fa,
                 float *fd, float *fdh, float *fh)
{
    for (size_t k = 0; i < i1; i++, k++) qr1(x[i], l[i], p, &q[i], &fa[k], &fd[k], &fdh[k], &fh[k]);
}

static void add_lanes(double *sums, const float *fa, const float *fd, const float *fdh, const float *fh)
{
    for (int k = 0; k < 8; k++) {
        sums[0] += fa[k];
        sums[1] += fd[k];
        sums[2] += fdh[k];
        sums[3] += fh[k];
    }
}

void ddct_rd_quant_rebuild_ref(const float *x, const float *l, size_t n, const ddct_rd_qparams *p, int16_t *q,
                               double *sums)
{
    for (size_t i0 = 0; i0 < n; i0 += 512) {
        size_t i1 = i0 + 512 < n ? i0 + 512 : n, i = i0;
        float fa[8] = {0}, fd[8] = {0}, fdh[8] = {0}, fh[8] = {0};
        for (; i + 8 <= i1; i += 8)
            for (int k = 0; k < 8; k++) qr1(x[i + k], l[i + k], p, &q[i + k], &fa[k], &fd[k], &fdh[k], &fh[k]);
        tail(x, l, i, i1, p, q, fa, fd, fdh, fh);
        add_lanes(sums, fa, fd, fdh, fh);
    }
}

#if RD_X86
__attribute__((target("avx2"))) static void quant_rebuild_avx2(const float *x, const float *l, size_t n,
                                                               const ddct_rd_qparams *p, int16_t *q, double *sums)
{
    const __m256 inv = _mm256_set1_ps(p->inv), rho = _mm256_set1_ps(p->rho), qmax = _mm256_set1_ps((float)RD_QMAX);
    const __m256 st = _mm256_set1_ps(p->st), a1 = _mm256_set1_ps(p->a1), t2s = _mm256_set1_ps(p->t2s);
    const __m256 zero = _mm256_setzero_ps(), absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i one = _mm256_set1_epi32(1), izero = _mm256_setzero_si256();
    for (size_t i0 = 0; i0 < n; i0 += 512) {
        size_t i1 = i0 + 512 < n ? i0 + 512 : n, i = i0;
        __m256 va = zero, vd = zero, vdh = zero, vh = zero;
        for (; i + 8 <= i1; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i), lv = _mm256_loadu_ps(l + i), r = _mm256_sub_ps(xv, lv);
            __m256 av = _mm256_add_ps(_mm256_mul_ps(_mm256_and_ps(r, absm), inv), rho);
            av = _mm256_blendv_ps(qmax, av, _mm256_cmp_ps(av, qmax, _CMP_LT_OQ));
            __m256i qa = _mm256_cvttps_epi32(av);
            __m256 m = _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(qa), st), t2s);
            m = _mm256_blendv_ps(m, a1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(qa, one)));
            m = _mm256_blendv_ps(m, zero, _mm256_castsi256_ps(_mm256_cmpeq_epi32(qa, izero)));
            __m256 neg = _mm256_cmp_ps(r, zero, _CMP_LT_OQ);
            __m256 h = _mm256_add_ps(lv, _mm256_blendv_ps(m, _mm256_sub_ps(zero, m), neg));
            __m256i ni = _mm256_castps_si256(neg), qs = _mm256_sub_epi32(_mm256_xor_si256(qa, ni), ni);
            __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(qs), _mm256_extracti128_si256(qs, 1));
            _mm_storeu_si128((__m128i *)(q + i), packed);
            va = _mm256_add_ps(va, _mm256_and_ps(h, absm));
            vd = _mm256_add_ps(vd, _mm256_mul_ps(xv, xv));
            vdh = _mm256_add_ps(vdh, _mm256_mul_ps(xv, h));
            vh = _mm256_add_ps(vh, _mm256_mul_ps(h, h));
        }
        float fa[8], fd[8], fdh[8], fh[8];
        _mm256_storeu_ps(fa, va);
        _mm256_storeu_ps(fd, vd);
        _mm256_storeu_ps(fdh, vdh);
        _mm256_storeu_ps(fh, vh);
        tail(x, l, i, i1, p, q, fa, fd, fdh, fh);
        add_lanes(sums, fa, fd, fdh, fh);
    }
}
#endif

static inline float deq1(int qq, const ddct_rd_qparams *p)
{
    int a = qq < 0 ? -qq : qq;
    float m = a == 1 ? p->a1 : (float)a * p->st - p->t2s;
    m = a ? m : 0.0f;
    return qq < 0 ? -m : m;
}

void ddct_rd_dequant_add_ref(const int16_t *q, size_t n, const ddct_rd_qparams *p, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] += deq1(q[i], p);
}

#if RD_X86
__attribute__((target("avx2"))) static void dequant_add_avx2(const int16_t *q, size_t n, const ddct_rd_qparams *p,
                                                             float *out)
{
    const __m256 st = _mm256_set1_ps(p->st), a1 = _mm256_set1_ps(p->a1), t2s = _mm256_set1_ps(p->t2s);
    const __m256 zero = _mm256_setzero_ps();
    const __m256i one = _mm256_set1_epi32(1), izero = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i qq = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(q + i)));
        __m256i a = _mm256_abs_epi32(qq);
        __m256 m = _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), st), t2s);
        m = _mm256_blendv_ps(m, a1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, one)));
        m = _mm256_blendv_ps(m, zero, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, izero)));
        __m256 neg = _mm256_castsi256_ps(_mm256_cmpgt_epi32(izero, qq));
        m = _mm256_blendv_ps(m, _mm256_sub_ps(zero, m), neg);
        _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), m));
    }
    for (; i < n; i++) out[i] += deq1(q[i], p);
}
#endif

void ddct_rd_dequant_add(const int16_t *q, size_t n, const ddct_rd_qparams *p, float *out)
{
#if RD_X86
    if (ddct_simd_supported(DDCT_SIMD_AVX2)) {
        dequant_add_avx2(q, n, p, out);
        return;
    }
#endif
    ddct_rd_dequant_add_ref(q, n, p, out);
}

void ddct_rd_quant_rebuild(const float *x, const float *l, size_t n, const ddct_rd_qparams *p, int16_t *q,
                           double *sums)
{
#if RD_X86
    if (ddct_simd_supported(DDCT_SIMD_AVX2)) {
        quant_rebuild_avx2(x, l, n, p, q, sums);
        return;
    }
#endif
    ddct_rd_quant_rebuild_ref(x, l, n, p, q, sums);
}

#define RD_LR_OWN 16

static void lowrank_rows_ref(const float *uc, const float *vc, uint64_t rows, uint64_t cols, uint64_t r, uint64_t r0,
                             uint64_t nr, float *out)
{
    for (uint64_t j = 0; j < nr; j++) {
        float *o = out + j * cols;
        for (uint64_t c = 0; c < cols; c++) {
            float acc = uc[r0 + j] * vc[c];
            for (uint64_t i = 1; i < r; i++) acc += uc[i * rows + r0 + j] * vc[i * cols + c];
            o[c] = acc;
        }
    }
}

#if RD_X86
__attribute__((target("avx2"))) static void lowrank_rows_avx2(const float *uc, const float *vc, uint64_t rows,
                                                              uint64_t cols, uint64_t r, uint64_t r0, uint64_t nr,
                                                              float *out)
{
    for (uint64_t j = 0; j < nr; j++) {
        float *o = out + j * cols;
        float u[RD_LR_OWN];
        for (uint64_t i = 0; i < r; i++) u[i] = uc[i * rows + r0 + j];
        uint64_t c = 0;
        for (; c + 8 <= cols; c += 8) {
            __m256 acc = _mm256_mul_ps(_mm256_set1_ps(u[0]), _mm256_loadu_ps(vc + c));
            for (uint64_t i = 1; i < r; i++)
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(u[i]), _mm256_loadu_ps(vc + i * cols + c)));
            _mm256_storeu_ps(o + c, acc);
        }
        for (; c < cols; c++) {
            float acc = u[0] * vc[c];
            for (uint64_t i = 1; i < r; i++) acc += u[i] * vc[i * cols + c];
            o[c] = acc;
        }
    }
}
#endif

void ddct_rd_lowrank_rows_ref(const float *uc, const float *vc, uint64_t rows, uint64_t cols, uint64_t r, uint64_t r0,
                              uint64_t nr, float *out)
{
    if (!r || !nr) memset(out, 0, (size_t)(nr * cols) * sizeof *out);
    else lowrank_rows_ref(uc, vc, rows, cols, r, r0, nr, out);
}

void ddct_rd_lowrank_rows(const float *uc, const float *vc, uint64_t rows, uint64_t cols, uint64_t r, uint64_t r0,
                          uint64_t nr, float *out)
{
    if (!r || !nr) {
        memset(out, 0, (size_t)(nr * cols) * sizeof *out);
        return;
    }
    if (r > RD_LR_OWN) { /* column-major cols x nr = V U^T of the rows */
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)cols, (int)nr, (int)r, 1.0f, vc, (int)cols, uc + r0,
                    (int)rows, 0.0f, out, (int)cols);
        return;
    }
#if RD_X86
    if (ddct_simd_supported(DDCT_SIMD_AVX2)) {
        lowrank_rows_avx2(uc, vc, rows, cols, r, r0, nr, out);
        return;
    }
#endif
    lowrank_rows_ref(uc, vc, rows, cols, r, r0, nr, out);
}
