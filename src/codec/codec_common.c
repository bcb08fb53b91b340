/* codec_common.c — helpers shared by the lossy codecs: rescale, directed bf16, 2-D views. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "codec.h"
#include "common/dtype.h"

#define MEAN_BLOCK 65536
#define MEAN_CHUNK 1024 /* blocks per parallel region (64 Mi values) */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DDCT_MEAN_X86 1
#include <immintrin.h>
#else
#define DDCT_MEAN_X86 0
#endif

/* Sum of |x[i]| over one block, in double, i in order: the definition. */
static double block_sum(const float *x, uint64_t len)
{
    double acc = 0;
    for (uint64_t i = 0; i < len; i++) acc += fabsf(x[i]);
    return acc;
}

#if DDCT_MEAN_X86
/* The sums of 8 consecutive full blocks at once: lane k of acc0/acc1 is block k / k + 4, each
 * accumulated element by element in order exactly as block_sum does (an add chain per block;
 * the 8 chains run in parallel). 4 x 4 tiles of floats are transposed so that one vector
 * holds element i of 4 blocks. */
__attribute__((target("avx2"))) static void block_sums8_avx2(const float *x, double *out)
{
    const size_t B = MEAN_BLOCK;
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (size_t i = 0; i < B; i += 4) {
        __m128 r0 = _mm_loadu_ps(x + 0 * B + i), r1 = _mm_loadu_ps(x + 1 * B + i);
        __m128 r2 = _mm_loadu_ps(x + 2 * B + i), r3 = _mm_loadu_ps(x + 3 * B + i);
        __m128 r4 = _mm_loadu_ps(x + 4 * B + i), r5 = _mm_loadu_ps(x + 5 * B + i);
        __m128 r6 = _mm_loadu_ps(x + 6 * B + i), r7 = _mm_loadu_ps(x + 7 * B + i);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3); /* r_j = element i + j of blocks 0..3 */
        _MM_TRANSPOSE4_PS(r4, r5, r6, r7);
        acc0 = _mm256_add_pd(acc0, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r0)));
        acc1 = _mm256_add_pd(acc1, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r4)));
        acc0 = _mm256_add_pd(acc0, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r1)));
        acc1 = _mm256_add_pd(acc1, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r5)));
        acc0 = _mm256_add_pd(acc0, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r2)));
        acc1 = _mm256_add_pd(acc1, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r6)));
        acc0 = _mm256_add_pd(acc0, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r3)));
        acc1 = _mm256_add_pd(acc1, _mm256_andnot_pd(sign, _mm256_cvtps_pd(r7)));
    }
    _mm256_storeu_pd(out, acc0);
    _mm256_storeu_pd(out + 4, acc1);
}
#endif

/* part[b] = sum of full block b of x, or part[b..b+7] when b is a multiple of 8 and b + 8 <= cnt
 * (x holds cnt full blocks); returns how many were done. */
static uint64_t block_sums(const float *x, uint64_t b, uint64_t cnt, double *part)
{
#if DDCT_MEAN_X86
    if (b % 8 == 0 && b + 8 <= cnt && ddct_simd_supported(DDCT_SIMD_AVX2)) {
        block_sums8_avx2(x + b * MEAN_BLOCK, part + b);
        return 8;
    }
#else
    (void)cnt;
#endif
    part[b] = block_sum(x + b * MEAN_BLOCK, MEAN_BLOCK);
    return 1;
}

/* Full blocks x[0 .. nb * MEAN_BLOCK): each block's sum added to total in block order; blocks
 * go 8 at a time to a thread (one group = one AVX2 call where available). */
static double add_full_blocks(double total, const float *x, uint64_t nb, int threads)
{
    double part[MEAN_CHUNK];
    for (uint64_t b0 = 0; b0 < nb; b0 += MEAN_CHUNK) {
        uint64_t cnt = nb - b0 < MEAN_CHUNK ? nb - b0 : MEAN_CHUNK;
        uint64_t ng = (cnt + 7) / 8;
        const float *xs = x + b0 * MEAN_BLOCK;
        (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static) if (cnt >= 32)
        for (uint64_t g = 0; g < ng; g++)
            for (uint64_t b = 8 * g; b < 8 * g + 8 && b < cnt;) b += block_sums(xs, b, cnt, part);
        for (uint64_t b = 0; b < cnt; b++) total += part[b];
    }
    return total;
}

/* Values in order, in pieces of any size: a partial block is continued element by element
 * (the same add chain as block_sum), full blocks go through add_full_blocks. */
void ddct_absum_add(ddct_absum *a, const float *x, uint64_t n, int threads)
{
    uint64_t i = 0, off = a->n % MEAN_BLOCK;
    if (off && n) {
        uint64_t m = n < MEAN_BLOCK - off ? n : MEAN_BLOCK - off;
        double acc = a->cur;
        for (; i < m; i++) acc += fabsf(x[i]);
        a->cur = acc;
        a->n += m;
        if (a->n % MEAN_BLOCK) return;
        a->total += a->cur;
        a->cur = 0;
    }
    uint64_t nb = (n - i) / MEAN_BLOCK;
    a->total = add_full_blocks(a->total, x + i, nb, threads);
    i += nb * MEAN_BLOCK;
    a->n += nb * MEAN_BLOCK;
    if (i < n) {
        a->cur = block_sum(x + i, n - i);
        a->n += n - i;
    }
}

double ddct_absum_mean(const ddct_absum *a) { return a->n ? (a->total + a->cur) / (double)a->n : 0; }

/* Mean of |x|: per-block (MEAN_BLOCK values) double sums, added in block order: the same
 * result for any thread count, any kernel and any split of x into pieces (ddct_absum). */
double ddct_mean_abs(const float *x, uint64_t n, int threads)
{
    ddct_absum a = {0, 0, 0};
    ddct_absum_add(&a, x, n, threads);
    return ddct_absum_mean(&a);
}

double ddct_mean_abs_ref(const float *x, uint64_t n)
{
    if (n == 0) return 0;
    double total = 0;
    for (uint64_t s = 0; s < n; s += MEAN_BLOCK) total += block_sum(x + s, n - s < MEAN_BLOCK ? n - s : MEAN_BLOCK);
    return total / (double)n;
}

float ddct_rescale_factor(double target, double cur)
{
    if (!(cur > 0) || !(target > 0) || !isfinite(cur) || !isfinite(target)) return 1.0f;
    return (float)(target / cur);
}

void ddct_rescale_to(float *x, uint64_t n, double target, int threads)
{
    float s = ddct_rescale_factor(target, ddct_mean_abs(x, n, threads));
    if (s == 1.0f) return; /* x * 1 == x */
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 1000000)
    for (uint64_t i = 0; i < n; i++) x[i] *= s;
}

/* Lane sums of ddct_abs_sum8, combined in the fixed order. */
static double lanes_total(const float *l)
{
    return (((double)l[0] + (double)l[1]) + ((double)l[2] + (double)l[3])) +
           (((double)l[4] + (double)l[5]) + ((double)l[6] + (double)l[7]));
}

double ddct_abs_sum8_ref(const float *v, size_t n)
{
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) l[i % 8] += fabsf(v[i]);
    return lanes_total(l);
}

#if DDCT_MEAN_X86
__attribute__((target("avx2"))) static double abs_sum8_avx2(const float *v, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i)));
    float l[8];
    _mm256_storeu_ps(l, acc);
    for (; i < n; i++) l[i % 8] += fabsf(v[i]);
    return lanes_total(l);
}
#endif

double ddct_abs_sum8(const float *v, size_t n)
{
#if DDCT_MEAN_X86
    if (n >= 8 && ddct_simd_supported(DDCT_SIMD_AVX2)) return abs_sum8_avx2(v, n);
#endif
    return ddct_abs_sum8_ref(v, n);
}

int ddct_delta_out_array(const ddct_delta_out *out, const float *d, uint64_t n, float s, int threads, ddct_err *e)
{
    const uint64_t SLICE = (uint64_t)4 << 20, CH = (uint64_t)1 << 16;
    for (uint64_t a = 0; a < n; a += SLICE) {
        uint64_t m = n - a < SLICE ? n - a : SLICE;
        FORWARD_IF_ERROR(out->begin(out->opaque, a, m, e));
        (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static) if (m > 4 * CH)
        for (uint64_t c0 = 0; c0 < m; c0 += CH)
            out->put(out->opaque, a + c0, c0, d + a + c0, m - c0 < CH ? m - c0 : CH, s);
        FORWARD_IF_ERROR(out->end(out->opaque, a, m, e));
    }
    return 0;
}

void *ddct_scratch_get(ddct_scratch *s, size_t bytes)
{
    if (bytes > s->cap) {
        free(s->p);
        s->p = malloc(bytes ? bytes : 1);
        s->cap = s->p ? bytes : 0;
    }
    return s->p;
}

void ddct_scratch_free(ddct_scratch *s)
{
    free(s->p);
    s->p = NULL;
    s->cap = 0;
}

static uint16_t bf16_trunc(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* Largest bf16 <= f (f finite). */
uint16_t ddct_bf16_down(float f)
{
    uint16_t h = bf16_trunc(f); /* truncation rounds toward zero */
    if (ddct_bf16_to_f32(h) > f) h = (uint16_t)(h + 1); /* negative: move away from zero */
    return h;
}

/* Smallest bf16 >= f (f finite). */
uint16_t ddct_bf16_up(float f)
{
    uint16_t h = bf16_trunc(f);
    if (ddct_bf16_to_f32(h) < f) {
        if (f > 0) h = (uint16_t)(h + 1);
        else h = (uint16_t)(h - 1); /* negative: toward zero */
    }
    return h;
}

static uint64_t padded(uint64_t x, int p) { return (x + (uint64_t)p - 1) / (uint64_t)p * (uint64_t)p; }

/* Candidates: every split of the dimensions into rows = d0..dk-1, cols = dk..; and
 * flat views of width p * 2^j. The view with the least padded area wins; ties go to the
 * earlier candidate: split k = 1 (rows = d0) first, then k = 2, ..., then flat views. */
uint64_t ddct_view_cols(int ndim, const uint64_t *shape, uint64_t nelem, int p)
{
    uint64_t best_cols = nelem ? nelem : 1, best_area = UINT64_MAX;
    for (int k = 1; k < ndim; k++) {
        uint64_t cols = 1;
        for (int d = k; d < ndim; d++) cols *= shape[d];
        if (cols == 0) continue;
        uint64_t rows = nelem / cols;
        uint64_t area = padded(rows, p) * padded(cols, p);
        if (area < best_area) {
            best_area = area;
            best_cols = cols;
        }
    }
    if (ndim > 2) {
        for (uint64_t cols = (uint64_t)p; cols <= nelem; cols *= 2) {
            uint64_t rows = (nelem + cols - 1) / cols;
            uint64_t area = padded(rows, p) * cols;
            if (area < best_area) {
                best_area = area;
                best_cols = cols;
            }
        }
    }
    return best_cols;
}

int ddct_decode_stream_whole(const ddct_codec_traits *ct, const ddct_record *rec, uint64_t n, int threads, int rescale,
                             ddct_scratch *scratch, const ddct_delta_out *out, ddct_err *e)
{
    float *d = ddct_scratch_get(scratch, (size_t)(n ? n : 1) * sizeof *d);
    RETURN_ERROR_IF(!d, e, DDCT_ERR_NOMEM, "out of memory (%llu-element tensor)", (unsigned long long)n);
    FORWARD_IF_ERROR(ct->decode_lossy(rec, n, threads, rescale, d, e));
    return ddct_delta_out_array(out, d, n, 1.0f, threads, e);
}

int ddct_encode_whole(int (*enc)(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e), const ddct_lossy_in *in,
                      ddct_enc_out *out, ddct_err *e)
{
    if (in->delta || !in->nelem) return enc(in, out, e);
    RETURN_ERROR_IF(!in->src, e, DDCT_ERR_INTERNAL, "lossy codec: no input");
    const uint64_t CH = (uint64_t)1 << 16;
    float *d = malloc((size_t)(in->nelem + 2 * CH) * sizeof *d); /* room for the source's scratch */
    RETURN_ERROR_IF(!d, e, DDCT_ERR_NOMEM, "out of memory (%llu-element tensor)", (unsigned long long)in->nelem);
    int finite = 1, rc = 0;
    for (uint64_t a = 0; a < in->nelem && finite && !rc; a += CH) {
        uint64_t m = in->nelem - a < CH ? in->nelem - a : CH;
        ddct_err le;
        ddct_err_clear(&le);
        const float *p = in->src(in->src_opaque, a, m, d + a, in->threads, &le);
        if (!p && le.code) rc = ddct_seterr(e, le.code, "%s", le.msg);
        else if (!p) finite = 0;
        else if (p != d + a) memcpy(d + a, p, (size_t)m * sizeof *d);
    }
    if (rc) {
    } else if (finite) {
        ddct_lossy_in w = *in;
        w.delta = d;
        rc = enc(&w, out, e);
    } else if (in->nonfinite) {
        *in->nonfinite = 1;
    } else {
        rc = ddct_seterr(e, DDCT_ERR_PARAM, "lossy codec: the delta holds NaN or Inf");
    }
    free(d);
    return rc;
}
