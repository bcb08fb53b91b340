/*
 * codec_patch.c — the Delta-DCT family (Huang et al. 2025, "Seeing Delta Parameters as JPEG
 * Images"), with the DWT, JPEG-table and importance variants.
 *
 * Encode, per tensor (viewed as rows x cols, see ddct_view_cols):
 *   1. cut the view into p x p patches (edges zero-padded), score each (L2 norm of the patch,
 *      or energy of the k x k lowest-frequency coefficients after the transform);
 *   2. give bit-widths by rank from the strategy (quant/alloc.c);
 *   3. 0-bit patch: store the mean of its real elements (bf16). b-bit patch: transform,
 *      store the range [lo, hi] of the kept coefficients (bf16, rounded outward) and
 *      round-quantize every kept value to b bits (paper); with a quantization table, a
 *      mid-tread quantizer whose step at frequency i is step * w[i] (see step_mode);
 *   4. record mean |delta| and the rescale factor mean |delta| / mean |delta^| (version 1).
 * Decode reverses it and, if rescale is on, scales the tensor so mean |delta^| = mean |delta|.
 *
 * Streaming (version 1): no float copy of a whole tensor is ever held. The encoder reads the delta
 * strip by strip (p rows) through a source, twice: pass 1 scores the patches and sums |delta|,
 * pass 2 transforms, quantizes, packs and rebuilds each patch as the decoder will, to sum
 * |delta^| for the stored rescale factor. The decoder rebuilds strips into per-thread buffers and
 * hands each, with the factor, to the caller (which casts it into its output), in slices of whole
 * strips of about PATCH_SLICE values that the caller writes out in turn. Version 0 records (no
 * stored factor) are decoded twice, slice by slice: once for the mean |delta^| the factor needs,
 * once for the values.
 *
 * Streams (all sizes follow from params + map, and are checked exactly):
 *   params: u8 version(0|1) u8 transform u8 p u8 wavelet u8 levels u8 keep u8 qtable u8 flags(bit0 rescale)
 *           varint cols  f32 mean_abs  [f32 scale if version 1]  u8 nclasses  u8 width[nclasses]
 *   side:   class map (ceil(log2 nclasses) bits per patch, LSB-first, padded to a byte), then per
 *           patch in raster order: b > 0: u16 lo_bf16, u16 hi_bf16 (with a quantization table and
 *           b >= 2: u16 step_bf16 only, see step_mode); b = 0: u16 mean_bf16
 *   data:   per strip of p rows of patches, byte-aligned: per patch in order, nkept values of b bits.
 * Strips are independent: threads encode and decode them in parallel, byte-identically.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "codec.h"
#include "common/dtype.h"
#include "quant/quant.h"
#include "transform/transform.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DDCT_PATCH_X86 1
#include <immintrin.h>
#else
#define DDCT_PATCH_X86 0
#endif

/* Below this many values a tensor is coded on the calling thread: a parallel region costs
 * more than the work (and, on a loaded machine, waits for a second thread to be scheduled). */
#define PATCH_MIN_PARALLEL ((uint64_t)1 << 18)
/* Values per slice (whole strips, at least one): the working set of a streamed pass. */
#define PATCH_SLICE ((uint64_t)4 << 20)
/* The parameter version the encoder writes (1: streamed, with the rescale factor). */
#define PATCH_VERSION 1

typedef struct {
    int version, transform, p, wavelet, levels, keep, qtable, rescale;
    uint64_t n, cols, rows, prow, pcol, npatch;
    uint64_t full_prow, full_pcol; /* patches (pr, pc) with pr < full_prow, pc < full_pcol are all real */
    int identity;                  /* every coefficient kept and flat weights: vals == coefficients */
    float mean_abs;
    float scale; /* version 1: mean_abs / mean |delta^| (1 when either is 0 or not finite) */
    int nclasses;
    int widths[DDCT_MAX_BITS_LEVELS];
    int mapbits;
    ddct_xform *xf;
    float *qw;       /* p*p quantization weights (1 = flat) */
    uint32_t *kept;  /* indices of kept coefficients */
    size_t nkept;
} layout;

static void layout_free(layout *L)
{
    ddct_xform_free(L->xf);
    free(L->qw);
    free(L->kept);
}

static int ceil_log2(int n)
{
    int b = 0;
    while ((1 << b) < n) b++;
    return b;
}

/* Derive everything from the stored parameters (shared by encoder and decoder). */
static int layout_init(layout *L, uint64_t n, ddct_err *e)
{
    int p = L->p;
    RETURN_ERROR_IF(p < 2 || p > DDCT_MAX_PATCH, e, DDCT_ERR_FORMAT, "patch size %d out of range", p);
    RETURN_ERROR_IF(L->cols == 0 || (n && L->cols > n), e, DDCT_ERR_FORMAT, "bad 2-D view width %llu",
                    (unsigned long long)L->cols);
    /* so that strip offsets (s * p * cols, s <= rows / p + 1) never overflow */
    RETURN_ERROR_IF(n > ((uint64_t)1 << 52), e, DDCT_ERR_FORMAT, "tensor of %llu values too large",
                    (unsigned long long)n);
    L->n = n;
    L->rows = n ? (n + L->cols - 1) / L->cols : 0;
    L->prow = (L->rows + (uint64_t)p - 1) / (uint64_t)p;
    L->pcol = (L->cols + (uint64_t)p - 1) / (uint64_t)p;
    L->npatch = L->prow * L->pcol;
    L->full_prow = n / L->cols / (uint64_t)p; /* complete rows only (a flat view may end mid-row) */
    L->full_pcol = L->cols / (uint64_t)p;
    L->mapbits = ceil_log2(L->nclasses);
    FORWARD_IF_ERROR(ddct_xform_create(&L->xf, (ddct_transform)L->transform, p, (ddct_wavelet)L->wavelet,
                                       L->levels, e));
    size_t pp = (size_t)p * (size_t)p;
    L->qw = malloc(pp * sizeof *L->qw);
    L->kept = malloc(pp * sizeof *L->kept);
    RETURN_ERROR_IF(!L->qw || !L->kept, e, DDCT_ERR_NOMEM, "out of memory");
    if (L->qtable == DDCT_QTABLE_JPEG) ddct_qtable_jpeg(p, L->qw);
    else
        for (size_t i = 0; i < pp; i++) L->qw[i] = 1.0f;
    L->nkept = 0;
    for (size_t i = 0; i < pp; i++)
        if (ddct_xform_kept(L->xf, (ddct_dwt_keep)L->keep, i)) L->kept[L->nkept++] = (uint32_t)i;
    /* w / 1.0f == w and the gather is the identity: the fast paths skip both (same values) */
    L->identity = L->nkept == pp && L->qtable == DDCT_QTABLE_FLAT;
    return 0;
}

/* Patch addressing: x holds the view's values [x0, x0 + slice) (x0 = the first value of a strip),
 * so value k of the tensor is x[k - x0]. */

/* Real values of row r of patch (pr, pc) (0 past the view's end, fewer at its right edge). */
static uint64_t row_count(const layout *L, uint64_t pr, uint64_t pc, int r)
{
    uint64_t row = pr * (uint64_t)L->p + (uint64_t)r, c0 = pc * (uint64_t)L->p;
    if (row >= L->rows) return 0;
    uint64_t start = row * L->cols + c0;
    if (start >= L->n) return 0;
    uint64_t lim = L->cols - c0 < (uint64_t)L->p ? L->cols - c0 : (uint64_t)L->p;
    return L->n - start < lim ? L->n - start : lim;
}

static uint64_t row_start(const layout *L, uint64_t x0, uint64_t pr, uint64_t pc, int r)
{
    return (pr * (uint64_t)L->p + (uint64_t)r) * L->cols + pc * (uint64_t)L->p - x0;
}

/* Copy patch (pr, pc) of the view into buf (p*p, zero-padded); returns the real element count. */
static uint64_t load_patch(const layout *L, const float *x, uint64_t x0, uint64_t pr, uint64_t pc, float *buf)
{
    int p = L->p;
    uint64_t real = 0;
    for (int r = 0; r < p; r++) {
        float *dst = buf + (size_t)r * (size_t)p;
        uint64_t cnt = row_count(L, pr, pc, r);
        if (cnt > 0) memcpy(dst, x + row_start(L, x0, pr, pc, r), (size_t)cnt * sizeof *dst);
        memset(dst + cnt, 0, (size_t)((uint64_t)p - cnt) * sizeof *dst);
        real += cnt;
    }
    return real;
}

/* Write the real region of patch (pr, pc) from buf into x. */
static void store_patch(const layout *L, float *x, uint64_t x0, uint64_t pr, uint64_t pc, const float *buf)
{
    for (int r = 0; r < L->p; r++) {
        uint64_t cnt = row_count(L, pr, pc, r);
        if (cnt) memcpy(x + row_start(L, x0, pr, pc, r), buf + (size_t)r * (size_t)L->p, (size_t)cnt * sizeof *x);
    }
}

/* Zero the values of buf (patch (pr, pc)) that lie outside the view. */
static void mask_patch(const layout *L, uint64_t pr, uint64_t pc, float *buf)
{
    for (int r = 0; r < L->p; r++) {
        uint64_t cnt = row_count(L, pr, pc, r);
        memset(buf + (size_t)r * (size_t)L->p + cnt, 0, (size_t)((uint64_t)L->p - cnt) * sizeof *buf);
    }
}

static int patch_full(const layout *L, uint64_t pr, uint64_t pc) { return pr < L->full_prow && pc < L->full_pcol; }

/* Offset in x of the top-left value of patch (pr, pc). */
static uint64_t patch_at(const layout *L, uint64_t x0, uint64_t pr, uint64_t pc)
{
    return pr * (uint64_t)L->p * L->cols + pc * (uint64_t)L->p - x0;
}

/* load_patch / store_patch for a patch with every element real. */
static void load_full(const layout *L, const float *x, uint64_t x0, uint64_t pr, uint64_t pc, float *buf)
{
    const size_t p = (size_t)L->p;
    const float *src = x + patch_at(L, x0, pr, pc);
    for (size_t r = 0; r < p; r++, src += L->cols)
        for (size_t k = 0; k < p; k++) buf[r * p + k] = src[k];
}

static void store_full(const layout *L, float *x, uint64_t x0, uint64_t pr, uint64_t pc, const float *buf)
{
    const size_t p = (size_t)L->p;
    float *dst = x + patch_at(L, x0, pr, pc);
    for (size_t r = 0; r < p; r++, dst += L->cols)
        for (size_t k = 0; k < p; k++) dst[k] = buf[r * p + k];
}

/* Patch (pr, pc) of x = the constant v over its real elements (a 0-bit patch: no transform). */
static void fill_patch(const layout *L, float *x, uint64_t x0, uint64_t pr, uint64_t pc, float v, float *buf)
{
    const size_t p = (size_t)L->p;
    if (!patch_full(L, pr, pc)) {
        for (size_t k = 0; k < p * p; k++) buf[k] = v;
        store_patch(L, x, x0, pr, pc, buf);
        return;
    }
    float *dst = x + patch_at(L, x0, pr, pc);
    for (size_t r = 0; r < p; r++, dst += L->cols)
        for (size_t k = 0; k < p; k++) dst[k] = v;
}

typedef struct {
    float *a, *b, *scratch, *vals;
    float *strip; /* one strip of the view (and the source's scratch: DDCT_DELTA_SRC_ROOM strips) */
    uint16_t *q;
} work;

static int work_alloc(work *w, const layout *L)
{
    size_t pp = (size_t)L->p * (size_t)L->p;
    uint64_t sv = (uint64_t)L->p * L->cols;
    w->strip = malloc((size_t)(sv < L->n ? sv : L->n) * DDCT_DELTA_SRC_ROOM * sizeof(float) + sizeof(float));
    w->a = malloc(pp * sizeof(float));
    w->b = malloc(pp * sizeof(float));
    w->vals = malloc(pp * sizeof(float));
    w->scratch = malloc((ddct_xform_scratch_floats(L->xf) + 1) * sizeof(float));
    w->q = malloc(pp * sizeof(uint16_t));
    return w->strip && w->a && w->b && w->vals && w->scratch && w->q ? 0 : -1;
}

static void work_free(work *w)
{
    free(w->strip);
    free(w->a);
    free(w->b);
    free(w->vals);
    free(w->scratch);
    free(w->q);
}

static uint64_t patch_bits(const layout *L, int width) { return (uint64_t)L->nkept * (uint64_t)width; }

/* Byte offsets of each strip's data, from the per-patch widths. off has prow+1 entries. */
static int strip_offsets(const layout *L, const uint8_t *wid, uint64_t *off)
{
    off[0] = 0;
    for (uint64_t s = 0; s < L->prow; s++) {
        uint64_t bits = 0;
        for (uint64_t c = 0; c < L->pcol; c++) bits += patch_bits(L, wid[s * L->pcol + c]);
        off[s + 1] = off[s] + ddct_bitpack_bytes(bits);
    }
    return 0;
}

/* Byte offsets of each patch's side record (after the map). off has npatch+1 entries. */
/* With a quantization table, patches of >= 2 bits use a mid-tread quantizer with steps
 * s * w[i]: q = clamp(round(c / (s w)), -L, L) + L, L = 2^(b-1) - 1, s = max |c / w| / L
 * (stored as one bf16, rounded up). Small high-frequency coefficients go to exactly 0 instead
 * of being pushed to a min/max level and amplified by w. */
static int step_mode(const layout *L, int b) { return L->qtable != DDCT_QTABLE_FLAT && b >= 2; }

static uint64_t side_offsets(const layout *L, const uint8_t *wid, uint64_t *off)
{
    uint64_t o = ddct_bitpack_bytes((uint64_t)L->mapbits * L->npatch);
    for (uint64_t i = 0; i < L->npatch; i++) {
        off[i] = o;
        o += wid[i] && !step_mode(L, wid[i]) ? 4 : 2;
    }
    off[L->npatch] = o;
    return o;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Everything the strip workers share; each strip writes only its own patches' bytes. */
typedef struct job {
    const layout *L;
    ddct_delta_src src;    /* encode: the delta, strip by strip */
    void *opaque;
    int *nonfinite;        /* encode: set when the source reports a value that is not finite */
    ddct_err *srcerr;      /* encode: the source's first error (when *srcfail) */
    int *srcfail;
    double *ssum;          /* encode: per strip, sum of |delta| (pass 1) or of |delta^| (pass 2) */
    uint64_t x0;           /* decode: out holds the view's values from x0 on */
    float *out;            /* decode: delta^ (version 0: the whole tensor), or NULL: to put */
    const ddct_delta_out *put; /* decode: receives each strip's delta^ */
    uint64_t slice0;       /* decode: first value of the current slice */
    float scale;           /* decode: the factor for put */
    float *score, *mean;   /* encode pass 1 */
    const uint8_t *lowmask; /* encode pass 1: low-frequency importance, or NULL for L2 */
    const uint8_t *wid;
    const uint64_t *soff, *doff;
    uint8_t *side, *data;              /* encode */
    const uint8_t *cside, *cdata;      /* decode */
} job;

typedef void (*strip_fn)(const job *j, work *w, uint64_t s);

/* Run fn over strips [s0, s1) on `threads` threads, each with its own work buffers. */
static int for_each_strip(const job *j, uint64_t s0, uint64_t s1, int threads, strip_fn fn, ddct_err *e)
{
    int failed = 0;
    uint64_t p = (uint64_t)j->L->p;
    if ((s1 - s0) * p * j->L->cols < PATCH_MIN_PARALLEL || s1 - s0 < 2) threads = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        work w;
        int ok = work_alloc(&w, j->L) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (uint64_t s = s0; s < s1; s++)
            if (ok) fn(j, &w, s);
        work_free(&w);
    }
    RETURN_ERROR_IF(failed, e, DDCT_ERR_NOMEM, "out of memory (patch buffers)");
    if (j->srcfail && *j->srcfail) {
        *e = *j->srcerr;
        return e->code;
    }
    return 0;
}

/* Slices (decode): strips per slice; strip s starts at value strip_first(s). */
static uint64_t slice_strips(const layout *L)
{
    uint64_t per = (uint64_t)L->p * L->cols, k = PATCH_SLICE / per;
    return k ? k : 1;
}

static uint64_t strip_first(const layout *L, uint64_t s)
{
    uint64_t v = s * (uint64_t)L->p * L->cols;
    return v < L->n ? v : L->n;
}

#if DDCT_PATCH_X86
/* Sums, sums of |x| and sums of squares (double, element by element in raster order, exactly as
 * the scalar loop of strip_score) of the 8 full patches (s, c..c+7), p a multiple of 4. Lane k of the
 * accumulators is patch c + k (4 patches per vector); 4 x 4 tiles are transposed so that one
 * vector holds the same element of 4 patches. */
__attribute__((target("avx2"))) static void sums8_avx2(const layout *L, const float *x, uint64_t x0, uint64_t s,
                                                       uint64_t c, double *sum, double *ab, double *sq)
{
    const size_t p = (size_t)L->p;
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
    __m256d a0s = _mm256_setzero_pd(), a1s = _mm256_setzero_pd();
    const float *row = x + patch_at(L, x0, s, c);
    for (size_t r = 0; r < p; r++, row += L->cols)
        for (size_t k = 0; k < p; k += 4) {
            __m128 a0 = _mm_loadu_ps(row + 0 * p + k), a1 = _mm_loadu_ps(row + 1 * p + k);
            __m128 a2 = _mm_loadu_ps(row + 2 * p + k), a3 = _mm_loadu_ps(row + 3 * p + k);
            __m128 b0 = _mm_loadu_ps(row + 4 * p + k), b1 = _mm_loadu_ps(row + 5 * p + k);
            __m128 b2 = _mm_loadu_ps(row + 6 * p + k), b3 = _mm_loadu_ps(row + 7 * p + k);
            _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
            _MM_TRANSPOSE4_PS(b0, b1, b2, b3);
            const __m128 av[4] = {a0, a1, a2, a3}, bv[4] = {b0, b1, b2, b3};
            for (int t = 0; t < 4; t++) {
                __m256d u = _mm256_cvtps_pd(av[t]), v = _mm256_cvtps_pd(bv[t]);
                s0 = _mm256_add_pd(s0, u);
                a0s = _mm256_add_pd(a0s, _mm256_andnot_pd(sign, u));
                q0 = _mm256_add_pd(q0, _mm256_mul_pd(u, u));
                s1 = _mm256_add_pd(s1, v);
                a1s = _mm256_add_pd(a1s, _mm256_andnot_pd(sign, v));
                q1 = _mm256_add_pd(q1, _mm256_mul_pd(v, v));
            }
        }
    _mm256_storeu_pd(sum, s0);
    _mm256_storeu_pd(sum + 4, s1);
    _mm256_storeu_pd(ab, a0s);
    _mm256_storeu_pd(ab + 4, a1s);
    _mm256_storeu_pd(sq, q0);
    _mm256_storeu_pd(sq + 4, q1);
}
#endif

/* The strip's delta from the source into w->strip (addressed from j->x0 = its first value), or
 * NULL: j->nonfinite set when a value is not finite, the source's first error kept when it
 * failed. */
static const float *read_strip(const job *j, work *w, uint64_t s, uint64_t *x0)
{
    *x0 = strip_first(j->L, s);
    ddct_err le;
    ddct_err_clear(&le);
    const float *x = j->src(j->opaque, *x0, strip_first(j->L, s + 1) - *x0, w->strip, 1, &le);
    if (!x && le.code) {
#pragma omp critical /* unnamed: a named one is a global symbol of the shared library */
        {
            if (!*j->srcfail) {
                *j->srcerr = le;
                *j->srcfail = 1;
            }
        }
    } else if (!x) {
#pragma omp atomic write
        *j->nonfinite = 1;
    }
    return x;
}

/* Pass 1: per patch, importance score and mean of its real elements; the strip's sum of |delta|
 * (per patch in raster order, patches in order). */
static void strip_score(const job *j, work *w, uint64_t s)
{
    const layout *L = j->L;
    size_t pp = (size_t)L->p * (size_t)L->p;
    uint64_t c = 0, x0;
    const float *x = read_strip(j, w, s, &x0);
    double total = 0;
    if (!x) return;
#if DDCT_PATCH_X86
    /* L2 importance over full patches: 8 at a time (padding zeros would add +0.0: no-ops) */
    if (!j->lowmask && L->p % 4 == 0 && s < L->full_prow && ddct_simd_supported(DDCT_SIMD_AVX2)) {
        double sum[8], ab[8], sq[8];
        for (; c + 8 <= L->full_pcol; c += 8) {
            sums8_avx2(L, x, x0, s, c, sum, ab, sq);
            for (int k = 0; k < 8; k++) {
                j->score[s * L->pcol + c + (uint64_t)k] = (float)sqrt(sq[k]);
                j->mean[s * L->pcol + c + (uint64_t)k] = (float)(sum[k] / (double)pp);
                total += ab[k];
            }
        }
    }
#endif
    for (; c < L->pcol; c++) {
        uint64_t real = load_patch(L, x, x0, s, c, w->a);
        double sum = 0, ab = 0, sq = 0;
        for (size_t i = 0; i < pp; i++) {
            sum += w->a[i];
            ab += fabs((double)w->a[i]);
            sq += (double)w->a[i] * w->a[i];
        }
        if (j->lowmask) {
            ddct_xform_forward(L->xf, w->a, w->b, w->scratch);
            sq = 0;
            for (size_t i = 0; i < pp; i++)
                if (j->lowmask[i]) sq += (double)w->b[i] * w->b[i];
        }
        j->score[s * L->pcol + c] = (float)sqrt(sq);
        j->mean[s * L->pcol + c] = real ? (float)(sum / (double)real) : 0.0f;
        total += ab;
    }
    j->ssum[s] = total;
}

/* lo = min, hi = max of v[0..n) as the sequential loop below finds them: NaN skipped, and among
 * equal values the first (which matters only for -0 vs +0). */
static void minmax_ref(const float *v, size_t n, float *plo, float *phi)
{
    float lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        lo = v[k] < lo ? v[k] : lo;
        hi = v[k] > hi ? v[k] : hi;
    }
    *plo = lo;
    *phi = hi;
}

#if DDCT_PATCH_X86
/* Lane-wise min/max (minps(v, acc) = v < acc ? v : acc: NaN v skipped, as in the scalar loop)
 * then across lanes. The value is the same as the sequential loop's; only the sign of a zero
 * could differ, so a zero result is recomputed by minmax_ref. */
__attribute__((target("avx2"))) static void minmax_avx2(const float *v, size_t n, float *plo, float *phi)
{
    __m256 lo = _mm256_set1_ps(INFINITY), hi = _mm256_set1_ps(-INFINITY);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 x = _mm256_loadu_ps(v + k);
        lo = _mm256_min_ps(x, lo);
        hi = _mm256_max_ps(x, hi);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    float a = INFINITY, b = -INFINITY;
    for (int t = 0; t < 8; t++) {
        a = l[t] < a ? l[t] : a;
        b = h[t] > b ? h[t] : b;
    }
    for (; k < n; k++) {
        a = v[k] < a ? v[k] : a;
        b = v[k] > b ? v[k] : b;
    }
    if (a == 0.0f || b == 0.0f) minmax_ref(v, n, &a, &b);
    *plo = a;
    *phi = b;
}
#endif

static void minmax(const float *v, size_t n, float *lo, float *hi)
{
#if DDCT_PATCH_X86
    if (n >= 16 && ddct_simd_supported(DDCT_SIMD_AVX2)) {
        minmax_avx2(v, n, lo, hi);
        return;
    }
#endif
    minmax_ref(v, n, lo, hi);
}

/* Quantize vals (nkept values) to b bits into w->q, writing the patch's side record. */
static void quantize_patch(const layout *L, work *w, const float *vals, int b, uint8_t *sp)
{
    float lo, hi;
    minmax(vals, L->nkept, &lo, &hi);
    if (!(lo <= hi)) lo = hi = 0;
    if (step_mode(L, b)) {
        int lv = (1 << (b - 1)) - 1;
        float m = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
        uint16_t sb = ddct_bf16_up(m / (float)lv);
        put16(sp, sb);
        float st = ddct_bf16_to_f32(sb);
        for (size_t k = 0; k < L->nkept; k++) {
            float q = st > 0 ? floorf(vals[k] / st + 0.5f) : 0;
            q = q < (float)-lv ? (float)-lv : (q > (float)lv ? (float)lv : q);
            w->q[k] = (uint16_t)((int)q + lv);
        }
    } else {
        uint16_t lb = ddct_bf16_down(lo), hb = ddct_bf16_up(hi);
        put16(sp, lb);
        put16(sp + 2, hb);
        ddct_quant_uniform(vals, L->nkept, b, ddct_bf16_to_f32(lb), ddct_bf16_to_f32(hb), w->q);
    }
}

/* Inverse of quantize_patch: w->q -> vals. */
static void dequantize_patch(const layout *L, work *w, float *vals, int b, const uint8_t *sp)
{
    if (step_mode(L, b)) {
        int lv = (1 << (b - 1)) - 1;
        float st = ddct_bf16_to_f32(ddct_le16(sp));
        if (!isfinite(st)) st = 0;
        for (size_t k = 0; k < L->nkept; k++) {
            int q = (int)w->q[k] - lv;
            vals[k] = (float)(q > lv ? lv : q) * st; /* code 2^b - 1 is unused: clamp */
        }
    } else {
        float lo = ddct_bf16_to_f32(ddct_le16(sp)), hi = ddct_bf16_to_f32(ddct_le16(sp + 2));
        if (!isfinite(lo) || !isfinite(hi)) lo = hi = 0;
        ddct_dequant_uniform(w->q, L->nkept, b, lo, hi, vals);
    }
}

/* The rebuilt values of a b-bit patch (codes in w->q, side record sp) into w->b, exactly as
 * the decoder computes them. */
static void rebuild_patch(const layout *L, work *w, int b, const uint8_t *sp)
{
    if (L->identity) { /* v * 1.0f == v, every coefficient kept */
        dequantize_patch(L, w, w->a, b, sp);
    } else {
        dequantize_patch(L, w, w->vals, b, sp);
        memset(w->a, 0, (size_t)L->p * (size_t)L->p * sizeof(float));
        for (size_t k = 0; k < L->nkept; k++) w->a[L->kept[k]] = w->vals[k] * L->qw[L->kept[k]];
    }
    ddct_xform_inverse(L->xf, w->a, w->b, w->scratch);
}

/* A 0-bit patch's value: its stored mean. */
static float const_value(const uint8_t *sp)
{
    float m = ddct_bf16_to_f32(ddct_le16(sp));
    return isfinite(m) ? m : 0;
}

/* Write the rebuilt patch (pr, pc): a b-bit patch from w->b, a 0-bit patch as its constant. */
static void put_patch(const layout *L, float *x, uint64_t x0, uint64_t pr, uint64_t pc, int b, const uint8_t *sp,
                      work *w)
{
    if (b == 0) fill_patch(L, x, x0, pr, pc, const_value(sp), w->b);
    else if (patch_full(L, pr, pc)) store_full(L, x, x0, pr, pc, w->b);
    else store_patch(L, x, x0, pr, pc, w->b);
}

/* Pass 2: transform, quantize and pack every patch of strip s; the strip's sum of |delta^| as
 * the decoder will rebuild it (per patch: ddct_abs_sum8 over its real values, patches in order). */
static void strip_encode(const job *j, work *w, uint64_t s)
{
    const layout *L = j->L;
    const size_t pp = (size_t)L->p * (size_t)L->p;
    uint64_t x0;
    const float *x = read_strip(j, w, s, &x0);
    if (!x) return;
    double total = 0;
    ddct_bitw bw;
    ddct_bitw_init(&bw, j->data + j->doff[s]);
    for (uint64_t c = 0; c < L->pcol; c++) {
        uint64_t i = s * L->pcol + c;
        int b = j->wid[i];
        uint8_t *sp = j->side + j->soff[i];
        if (b == 0) {
            put16(sp, ddct_f32_to_bf16(j->mean[i]));
            float m = const_value(sp);
            for (size_t k = 0; k < pp; k++) w->b[k] = m;
        } else {
            if (patch_full(L, s, c)) load_full(L, x, x0, s, c, w->a);
            else load_patch(L, x, x0, s, c, w->a);
            ddct_xform_forward(L->xf, w->a, w->b, w->scratch);
            const float *vals = w->b;
            if (!L->identity) {
                for (size_t k = 0; k < L->nkept; k++) w->vals[k] = w->b[L->kept[k]] / L->qw[L->kept[k]];
                vals = w->vals;
            }
            quantize_patch(L, w, vals, b, sp);
            ddct_bitw_pack(&bw, w->q, L->nkept, b);
            rebuild_patch(L, w, b, sp);
        }
        if (!patch_full(L, s, c)) mask_patch(L, s, c, w->b);
        total += ddct_abs_sum8(w->b, pp);
    }
    ddct_bitw_finish(&bw);
    j->ssum[s] = total;
}

/* Decode every patch of strip s: into j->out, or into the work's strip and on to j->put. */
static void strip_decode(const job *j, work *w, uint64_t s)
{
    const layout *L = j->L;
    uint64_t first = strip_first(L, s);
    float *out = j->out ? j->out : w->strip;
    uint64_t x0 = j->out ? j->x0 : first;
    ddct_bitr br;
    ddct_bitr_init(&br, j->cdata + j->doff[s], (size_t)(j->doff[s + 1] - j->doff[s]));
    for (uint64_t c = 0; c < L->pcol; c++) {
        uint64_t i = s * L->pcol + c;
        int b = j->wid[i];
        const uint8_t *sp = j->cside + j->soff[i];
        if (b) {
            ddct_bitr_unpack(&br, w->q, L->nkept, b);
            rebuild_patch(L, w, b, sp);
        }
        put_patch(L, out, x0, s, c, b, sp, w);
    }
    if (!j->out) j->put->put(j->put->opaque, first, first - j->slice0, w->strip, strip_first(L, s + 1) - first, j->scale);
}

/* ------------------------------------------------------------------ encode */

static void put_params(const layout *L, ddct_buf *pb)
{
    ddct_buf_u8(pb, (uint8_t)L->version);
    ddct_buf_u8(pb, (uint8_t)L->transform);
    ddct_buf_u8(pb, (uint8_t)L->p);
    ddct_buf_u8(pb, (uint8_t)L->wavelet);
    ddct_buf_u8(pb, (uint8_t)L->levels);
    ddct_buf_u8(pb, (uint8_t)L->keep);
    ddct_buf_u8(pb, (uint8_t)L->qtable);
    ddct_buf_u8(pb, (uint8_t)L->rescale);
    ddct_buf_varint(pb, L->cols);
    ddct_buf_f32(pb, L->mean_abs);
    if (L->version >= 1) ddct_buf_f32(pb, L->scale);
    ddct_buf_u8(pb, (uint8_t)L->nclasses);
    for (int k = 0; k < L->nclasses; k++) ddct_buf_u8(pb, (uint8_t)L->widths[k]);
}

/* Mean |.| from the strips' sums, added in strip order. */
static double strip_mean(const layout *L, const double *ssum)
{
    double t = 0;
    for (uint64_t s = 0; s < L->prow; s++) t += ssum[s];
    return L->n ? t / (double)L->n : 0;
}

int ddct_patch_encode_stream(const ddct_patch_src *in, ddct_enc_out *out, int *nonfinite, ddct_err *e)
{
    const ddct_params *P = in->params;
    layout L;
    memset(&L, 0, sizeof L);
    L.version = PATCH_VERSION;
    L.transform = P->transform;
    L.p = P->patch;
    L.wavelet = P->wavelet;
    L.levels = P->transform == DDCT_TRANSFORM_DWT ? P->dwt_levels : 1;
    L.keep = P->transform == DDCT_TRANSFORM_DWT ? P->dwt_keep : DDCT_KEEP_ALL;
    L.qtable = P->qtable;
    L.rescale = P->rescale ? 1 : 0;
    L.cols = ddct_view_cols(in->ndim, in->shape, in->nelem, P->patch);
    L.nclasses = P->bits.n;
    for (int i = 0; i < P->bits.n; i++) L.widths[i] = P->bits.bits[i];
    *nonfinite = 0;
    int rc = layout_init(&L, in->nelem, e);
    float *score = NULL, *mean = NULL;
    uint8_t *wid = NULL, *cls = NULL;
    uint64_t *soff = NULL, *doff = NULL;
    uint8_t *lowmask = NULL;
    double *ssum = NULL;
    if (rc) goto done;
    size_t np = (size_t)L.npatch;
    ssum = malloc((size_t)(L.prow + 1) * sizeof *ssum);
    score = malloc((np + 1) * sizeof *score);
    mean = malloc((np + 1) * sizeof *mean);
    wid = malloc(np + 1);
    cls = malloc(np + 1);
    soff = malloc((np + 1) * sizeof *soff);
    doff = malloc((L.prow + 1) * sizeof *doff);
    lowmask = malloc((size_t)L.p * (size_t)L.p);
    if (!ssum || !score || !mean || !wid || !cls || !soff || !doff || !lowmask) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%zu patches)", np);
        goto done;
    }
    int lowfreq = P->importance == DDCT_IMPORTANCE_LOWFREQ;
    if (lowfreq) ddct_xform_lowfreq_mask(L.xf, P->lowfreq_k, lowmask);
    ddct_err srcerr;
    int srcfail = 0;
    ddct_err_clear(&srcerr);
    job j = {.L = &L, .src = in->src, .opaque = in->opaque, .nonfinite = nonfinite, .srcerr = &srcerr,
             .srcfail = &srcfail, .ssum = ssum, .score = score, .mean = mean, .lowmask = lowfreq ? lowmask : NULL};
    /* pass 1: importance, patch means, mean |delta| */
    rc = for_each_strip(&j, 0, L.prow, in->threads, strip_score, e);
    if (*nonfinite) goto done;
    if (rc) goto done;
    L.mean_abs = (float)strip_mean(&L, ssum);
    /* allocation */
    rc = ddct_alloc_by_rank(&P->bits, score, np, wid, e);
    if (rc) goto done;
    for (size_t i = 0; i < np; i++)
        for (int k = 0; k < L.nclasses; k++)
            if (L.widths[k] == wid[i]) {
                cls[i] = (uint8_t)k;
                break;
            }
    /* side + data layout */
    uint64_t side_len = side_offsets(&L, wid, soff);
    strip_offsets(&L, wid, doff);
    if (ddct_buf_reserve(&out->side, (size_t)side_len) || ddct_buf_reserve(&out->data, (size_t)doff[L.prow])) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint8_t *side = out->side.p, *data = out->data.p;
    memset(side, 0, (size_t)side_len);
    ddct_bitw mw;
    ddct_bitw_init(&mw, side);
    for (size_t i = 0; i < np; i++) ddct_bitw_put(&mw, cls[i], L.mapbits);
    ddct_bitw_finish(&mw);
    /* pass 2: transform + quantize, and mean |delta^| of the rebuild */
    j.wid = wid;
    j.soff = soff;
    j.doff = doff;
    j.side = side;
    j.data = data;
    rc = for_each_strip(&j, 0, L.prow, in->threads, strip_encode, e);
    if (!rc && *nonfinite) rc = ddct_seterr(e, DDCT_ERR_IO, "the tensor changed while it was being compressed");
    if (rc) goto done;
    L.scale = ddct_rescale_factor(L.mean_abs, strip_mean(&L, ssum));
    put_params(&L, &out->params);
    out->side.len = (size_t)side_len;
    out->data.len = (size_t)doff[L.prow];
done:
    free(score);
    free(mean);
    free(wid);
    free(cls);
    free(soff);
    free(doff);
    free(lowmask);
    free(ssum);
    layout_free(&L);
    return rc;
}

static const float *array_src(void *opaque, uint64_t first, uint64_t n, float *buf, int threads, ddct_err *e)
{
    (void)n;
    (void)buf;
    (void)threads;
    (void)e;
    return (const float *)opaque + first;
}

static int patch_encode(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    ddct_patch_src src = {.ndim = in->ndim, .shape = in->shape, .nelem = in->nelem, .params = in->params,
                          .threads = in->threads, .src = in->delta ? array_src : in->src,
                          .opaque = in->delta ? (void *)in->delta : in->src_opaque};
    int nonfinite = 0;
    FORWARD_IF_ERROR(ddct_patch_encode_stream(&src, out, &nonfinite, e));
    if (nonfinite && in->nonfinite) *in->nonfinite = 1;
    RETURN_ERROR_IF(nonfinite && !in->nonfinite, e, DDCT_ERR_PARAM, "patch codec: the delta holds NaN or Inf");
    return 0;
}

/* ------------------------------------------------------------------ decode */

static int parse_params(const ddct_record *rec, layout *L, ddct_err *e)
{
    ddct_rd r;
    ddct_rd_init(&r, rec->params, rec->params_len);
    L->version = ddct_rd_u8(&r);
    L->transform = ddct_rd_u8(&r);
    L->p = ddct_rd_u8(&r);
    L->wavelet = ddct_rd_u8(&r);
    L->levels = ddct_rd_u8(&r);
    L->keep = ddct_rd_u8(&r);
    L->qtable = ddct_rd_u8(&r);
    int flags = ddct_rd_u8(&r);
    L->cols = ddct_rd_varint(&r);
    L->mean_abs = ddct_rd_f32(&r);
    L->scale = L->version == 1 ? ddct_rd_f32(&r) : 1.0f;
    L->nclasses = ddct_rd_u8(&r);
    RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "patch codec: parameters truncated");
    RETURN_ERROR_IF(L->version > 1, e, DDCT_ERR_UNSUPPORTED, "patch codec: parameter version %d unknown",
                    L->version);
    RETURN_ERROR_IF(L->transform >= DDCT_TRANSFORM_COUNT || L->wavelet >= DDCT_WAVELET_COUNT ||
                        L->keep >= DDCT_KEEP_COUNT || L->qtable >= DDCT_QTABLE_COUNT || flags > 1,
                    e, DDCT_ERR_FORMAT, "patch codec: bad transform/wavelet/keep/qtable/flags");
    RETURN_ERROR_IF(L->nclasses < 1 || L->nclasses > DDCT_MAX_BITS_LEVELS, e, DDCT_ERR_FORMAT,
                    "patch codec: %d classes", L->nclasses);
    RETURN_ERROR_IF(!isfinite(L->mean_abs) || L->mean_abs < 0, e, DDCT_ERR_FORMAT, "patch codec: bad mean |delta|");
    RETURN_ERROR_IF(!(L->scale > 0), e, DDCT_ERR_FORMAT, "patch codec: bad rescale factor");
    for (int k = 0; k < L->nclasses; k++) {
        L->widths[k] = ddct_rd_u8(&r);
        RETURN_ERROR_IF(L->widths[k] > DDCT_MAX_BITWIDTH, e, DDCT_ERR_FORMAT, "patch codec: width %d",
                        L->widths[k]);
    }
    RETURN_ERROR_IF(r.failed || r.pos != r.len, e, DDCT_ERR_FORMAT, "patch codec: parameter length mismatch");
    L->rescale = flags & 1;
    return 0;
}

/* A record ready to decode: its layout, widths and stream offsets, all checked. */
typedef struct {
    layout L;
    uint8_t *wid;
    uint64_t *soff, *doff;
} dec;

static void dec_free(dec *D)
{
    free(D->wid);
    free(D->soff);
    free(D->doff);
    layout_free(&D->L);
}

static int dec_open(dec *D, const ddct_record *rec, uint64_t n, ddct_err *e)
{
    memset(D, 0, sizeof *D);
    layout *L = &D->L;
    int rc = parse_params(rec, L, e);
    if (!rc) rc = layout_init(L, n, e);
    if (rc == DDCT_ERR_PARAM) rc = e->code = DDCT_ERR_FORMAT; /* bad stored parameters: a corrupt file */
    FORWARD_IF_ERROR(rc);
    size_t np = (size_t)L->npatch;
    /* every patch costs at least 2 side bytes: bounds allocations by the record's real size */
    RETURN_ERROR_IF(L->npatch > rec->side_len / 2, e, DDCT_ERR_FORMAT,
                    "patch codec: %llu patches cannot fit a %zu-byte side stream", (unsigned long long)L->npatch,
                    rec->side_len);
    uint64_t mapbytes = ddct_bitpack_bytes((uint64_t)L->mapbits * L->npatch);
    RETURN_ERROR_IF(rec->side_len < mapbytes, e, DDCT_ERR_FORMAT, "patch codec: side stream too short for the map");
    D->wid = malloc(np + 1);
    D->soff = malloc((np + 1) * sizeof *D->soff);
    D->doff = malloc((L->prow + 1) * sizeof *D->doff);
    RETURN_ERROR_IF(!D->wid || !D->soff || !D->doff, e, DDCT_ERR_NOMEM, "out of memory (%zu patches)", np);
    ddct_bitr mr;
    ddct_bitr_init(&mr, rec->side, (size_t)mapbytes);
    for (size_t i = 0; i < np; i++) {
        uint32_t k = ddct_bitr_get(&mr, L->mapbits);
        RETURN_ERROR_IF(k >= (uint32_t)L->nclasses, e, DDCT_ERR_FORMAT,
                        "patch codec: class %u of patch %zu out of range", k, i);
        D->wid[i] = (uint8_t)L->widths[k];
    }
    uint64_t side_len = side_offsets(L, D->wid, D->soff);
    strip_offsets(L, D->wid, D->doff);
    RETURN_ERROR_IF(side_len != rec->side_len || D->doff[L->prow] != rec->data_len, e, DDCT_ERR_FORMAT,
                    "patch codec: stream sizes %zu/%zu, expected %llu/%llu", rec->side_len, rec->data_len,
                    (unsigned long long)side_len, (unsigned long long)D->doff[L->prow]);
    return 0;
}

/* Decode strips [s0, s1) into out (holding the view's values from strip s0 on). */
static int dec_strips(const dec *D, const ddct_record *rec, uint64_t s0, uint64_t s1, float *out, int threads,
                      ddct_err *e)
{
    job j = {.L = &D->L, .x0 = strip_first(&D->L, s0), .out = out, .wid = D->wid, .soff = D->soff,
             .doff = D->doff, .cside = rec->side, .cdata = rec->data};
    return for_each_strip(&j, s0, s1, threads, strip_decode, e);
}

/* Whether to rescale: -1 as stored. */
static int want_rescale(const layout *L, int rescale) { return rescale < 0 ? L->rescale : rescale; }

static int patch_decode(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out, ddct_err *e)
{
    dec D;
    int rc = dec_open(&D, rec, n, e);
    if (!rc) rc = dec_strips(&D, rec, 0, D.L.prow, out, threads, e);
    if (!rc && want_rescale(&D.L, rescale)) {
        if (D.L.version == 0) {
            ddct_rescale_to(out, n, D.L.mean_abs, threads);
        } else {
            float s = D.L.scale;
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 1000000)
            for (uint64_t i = 0; i < n; i++) out[i] *= s;
        }
    }
    dec_free(&D);
    return rc;
}

/* Values [a, a + m) of delta^ in d to out as one slice, times s. */
static int delta_out_slice(const ddct_delta_out *out, const float *d, uint64_t a, uint64_t m, float s, int threads,
                           ddct_err *e)
{
    const uint64_t CH = (uint64_t)1 << 16;
    FORWARD_IF_ERROR(out->begin(out->opaque, a, m, e));
    (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static) if (m > 4 * CH)
    for (uint64_t c0 = 0; c0 < m; c0 += CH) out->put(out->opaque, a + c0, c0, d + c0, m - c0 < CH ? m - c0 : CH, s);
    return out->end(out->opaque, a, m, e);
}

int ddct_patch_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scr,
                             const ddct_delta_out *out, ddct_err *e)
{
    dec D;
    int rc = dec_open(&D, rec, n, e);
    const layout *L = &D.L;
    if (!rc && L->version == 0) {
        /* the rescale factor needs the mean |delta^| of the whole tensor: a first pass over the
         * slices sums it (ddct_absum: the same mean as over the whole tensor), the second one
         * hands the values out; one slice of memory, not a float copy of the tensor */
        uint64_t per = slice_strips(L), most = strip_first(L, per < L->prow ? per : L->prow);
        float *buf = ddct_scratch_get(scr, (size_t)(most ? most : 1) * sizeof(float));
        if (!buf) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%llu values)", (unsigned long long)most);
        int scaled = want_rescale(L, rescale);
        float s = 1.0f;
        for (int pass = scaled ? 0 : 1; pass < 2 && !rc; pass++) {
            ddct_absum sum = {0};
            for (uint64_t s0 = 0; s0 < L->prow && !rc; s0 += per) {
                uint64_t s1 = L->prow - s0 < per ? L->prow : s0 + per, a = strip_first(L, s0);
                uint64_t m = strip_first(L, s1) - a;
                rc = dec_strips(&D, rec, s0, s1, buf, threads, e);
                if (!rc && pass == 0) ddct_absum_add(&sum, buf, m, threads);
                if (!rc && pass == 1) rc = delta_out_slice(out, buf, a, m, s, threads, e);
            }
            if (pass == 0) s = ddct_rescale_factor(L->mean_abs, ddct_absum_mean(&sum));
        }
    } else if (!rc) { /* slice by slice: each strip goes from its worker's buffer to out->put */
        uint64_t per = slice_strips(L);
        job j = {.L = L, .put = out, .scale = want_rescale(L, rescale) ? L->scale : 1.0f, .wid = D.wid,
                 .soff = D.soff, .doff = D.doff, .cside = rec->side, .cdata = rec->data};
        for (uint64_t s0 = 0; s0 < L->prow && !rc; s0 += per) {
            uint64_t s1 = L->prow - s0 < per ? L->prow : s0 + per;
            j.slice0 = strip_first(L, s0);
            uint64_t m = strip_first(L, s1) - j.slice0;
            rc = out->begin(out->opaque, j.slice0, m, e);
            if (!rc) rc = for_each_strip(&j, s0, s1, threads, strip_decode, e);
            if (!rc) rc = out->end(out->opaque, j.slice0, m, e);
        }
    }
    dec_free(&D);
    return rc;
}

const ddct_codec_traits ddct_codec_patch = {.name = "patch",
                                            .id = DDCT_CODEC_PATCH,
                                            .lossy = 1,
                                            .encode_lossy = patch_encode,
                                            .decode_lossy = patch_decode,
                                            .decode_stream = ddct_patch_decode_stream};
