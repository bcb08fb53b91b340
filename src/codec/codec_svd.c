/*
 * codec_svd.c — mixed-precision low-rank baseline in the style of Delta-CoMe (Ping et al. 2024,
 * "Delta-CoMe: Training-Free Delta-Compression with Mixed-Precision for Large Language
 * Models"), without calibration data (plain round-to-nearest instead of GPTQ).
 *
 * Encode, per tensor:
 *   1. view the delta as rows x cols (2-D: as is; 1-D: 1 x n; other: ddct_view_cols(.., 16),
 *      rows = ceil(n / cols), the tail of the last row zero-padded);
 *   2. choose the rank r: the largest r <= min(rows, cols) whose whole record (params + side +
 *      data, real bytes) is <= bpp * n / 8 bytes (bpp = params->bpp, 1.0 when unset). The cost is
 *      computed exactly for each r and grows with r. r may be 0 (delta^ = 0);
 *   3. thin SVD delta = U S V^T (LAPACK sgesdd on a float copy);
 *   4. triplet i keeps u_i sqrt(s_i) and v_i sqrt(s_i); the triplets, by decreasing s_i, fall in
 *      groups of bit-widths "8:2,3:32,2:rest" (2 at 8 bits, the next 32 at 3 bits, the rest at
 *      2 bits); each vector x gets its own bf16 scale m and every element is quantized with
 *      quant.h's uniform quantizer over [-m, +m] (2^b points, no zero level, values beyond m
 *      clip): m is the clip of max |x| (ratios 1, 0.95, ..., 0.25) with the least squared error;
 *   5. record mean |delta| for the rebuild's rescale.
 * Decode: unpack and dequantize U^ (rows x r) and V^ (cols x r), delta^ = U^ V^T by BLAS sgemm
 * (blocks of 64 rows; the partial last row of a padded view through a one-row sgemm), then
 * rescale if asked (-1 as stored, 0 off, 1 on; mean |delta| is always stored).
 *
 * Streams (all sizes follow from params and are checked exactly, before any allocation):
 *   params: u8 version(0) u8 flags(bit0 rescale) varint rows varint cols varint r f32 mean_abs
 *           u8 ngroups (0..16), ngroups x (u8 bits (1..8), varint count (>= 1)); sum count = r.
 *           Varints are minimal (the length is checked against the canonical encoding).
 *   side:   per triplet i = 0..r-1: u16 bf16 scale of u_i, u16 bf16 scale of v_i (finite, >= 0)
 *   data:   per triplet i: u_i (rows values of b_i bits) then v_i (cols values), each vector
 *           LSB-first and padded with zero bits to a byte boundary.
 *
 * Complexity: the SVD of an m x k matrix (m >= k) costs O(m k^2) time and about
 * (2 m k + 5 k^2) floats of memory besides the input copy: 4096 x 11008 took ~30-45 s (serial
 * sgesdd, one x86 core) and ~850 MB peak. The rank search is O(k), quantization O(r (m + k)) with
 * 16 clip trials per vector, decoding O(rows cols r) in sgemm.
 *
 * Threads and determinism: OpenBLAS's results change with its own thread count (measured for
 * sgesdd and sgemm), and that count defaults to the machine's cores. So the codec runs LAPACK and
 * BLAS on one OpenBLAS thread (openblas_set_num_threads(1), the previous count restored after the
 * call; a process-global setting, see ddct_blas_serial_begin) and does its own parallel work with
 * OpenMP over fixed pieces: whole vectors (quantize/pack, unpack/dequantize, into fixed offsets)
 * and fixed blocks of 64 output rows (one serial sgemm each). Records and rebuilt values are then
 * the same for any `threads` and any OPENBLAS_NUM_THREADS; they may still differ in the last bits
 * across CPU kernels (OpenBLAS picks SIMD kernels at run time: measured, AVX-512 vs AVX2 sgemm
 * round differently) or BLAS/LAPACK builds. The SVD itself runs serially: that is the price of
 * records that do not depend on the core count.
 */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lowrank.h"
#include "common/dtype.h"
#include "quant/quant.h"

/* OpenBLAS's thread control, declared weak so that another BLAS still links (then BLAS threading
 * is whatever that library does). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads

/* Run the following BLAS/LAPACK calls on one OpenBLAS thread: OpenBLAS's results change with its
 * thread count (measured: sgesdd and sgemm), which by default is the machine's core count.
 * Returns the previous count for blas_serial_end. The setting is process-global: while a call
 * of this codec runs, other threads of the process calling OpenBLAS also run serially. */
int ddct_blas_serial_begin(void)
{
    if (!openblas_get_num_threads || !openblas_set_num_threads) return 0;
    int prev = openblas_get_num_threads();
    if (prev != 1) openblas_set_num_threads(1);
    return prev;
}

void ddct_blas_serial_end(int prev)
{
    if (prev > 1 && openblas_set_num_threads) openblas_set_num_threads(prev);
}

#define DECODE_BLOCK_ROWS 64 /* rows of delta^ per sgemm call: fixed, so results do not depend on threads */

#define SVD_VERSION 0
#define SVD_MAX_GROUPS DDCT_MAX_BITS_LEVELS

/* The default group spec: bit-widths and sizes (0 = the rest). */
static const int spec_bits[] = {8, 3, 2};
static const uint64_t spec_count[] = {2, 32, 0};
#define SPEC_N 3

typedef struct {
    int rescale;
    uint64_t n, rows, cols, r;
    float mean_abs;
    int ngroups;
    int bits[SVD_MAX_GROUPS];
    uint64_t count[SVD_MAX_GROUPS];
} svd_layout;

static int nthreads(int t) { return t > 0 ? t : 1; }

static uint64_t varint_len(uint64_t v)
{
    uint64_t n = 1;
    while (v >>= 7) n++;
    return n;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Groups of the default spec for rank r (only non-empty groups). */
static void groups_for_rank(svd_layout *L, uint64_t r)
{
    L->r = r;
    L->ngroups = 0;
    uint64_t left = r;
    for (int g = 0; g < SPEC_N && left; g++) {
        uint64_t c = spec_count[g] ? min_u64(spec_count[g], left) : left;
        L->bits[L->ngroups] = spec_bits[g];
        L->count[L->ngroups] = c;
        L->ngroups++;
        left -= c;
    }
}

static uint64_t params_bytes(const svd_layout *L)
{
    uint64_t b = 1 + 1 + varint_len(L->rows) + varint_len(L->cols) + varint_len(L->r) + 4 + 1;
    for (int g = 0; g < L->ngroups; g++) b += 1 + varint_len(L->count[g]);
    return b;
}

/* Bytes of one byte-aligned vector of len values at b bits; UINT64_MAX on overflow. */
static uint64_t vec_bytes(uint64_t len, int b)
{
    uint64_t bits;
    if (ddct_mul_overflow(len, (uint64_t)b, &bits)) return UINT64_MAX;
    return bits / 8 + (bits % 8 != 0);
}

/* Per-vector bit-widths (by group) and byte offsets in the data (u_i, then v_i) of rank rr. */
static void vector_layout(const svd_layout *L, size_t rr, uint8_t *wid, size_t *off)
{
    size_t i = 0;
    for (int g = 0; g < L->ngroups; g++)
        for (uint64_t c = 0; c < L->count[g]; c++) wid[i++] = (uint8_t)L->bits[g];
    off[0] = 0;
    for (i = 0; i < rr; i++) {
        off[2 * i + 1] = off[2 * i] + (size_t)vec_bytes(L->rows, wid[i]);
        off[2 * i + 2] = off[2 * i + 1] + (size_t)vec_bytes(L->cols, wid[i]);
    }
}

/* Data bytes of the layout; UINT64_MAX on overflow. */
static uint64_t data_bytes(const svd_layout *L)
{
    uint64_t total = 0;
    for (int g = 0; g < L->ngroups; g++) {
        uint64_t a = vec_bytes(L->rows, L->bits[g]), c = vec_bytes(L->cols, L->bits[g]), pair, t;
        if (a == UINT64_MAX || c == UINT64_MAX || ddct_add_overflow(a, c, &pair) ||
            ddct_mul_overflow(pair, L->count[g], &t) || ddct_add_overflow(total, t, &total))
            return UINT64_MAX;
    }
    return total;
}

/* Whole record bytes (encoder side: sizes are those of a real tensor, no overflow). */
/* The whole record as the container writes it (a lossy record always has a base). */
static uint64_t record_bytes(const svd_layout *L)
{
    return ddct_record_size(1, params_bytes(L), 4 * L->r, data_bytes(L));
}

/* The view of an n-element tensor. */
static void view_of(int ndim, const uint64_t *shape, uint64_t n, uint64_t *rows, uint64_t *cols)
{
    uint64_t c = ndim == 2 && shape[1] ? shape[1] : ddct_view_cols(ndim, shape, n, 16);
    if (c == 0) c = 1;
    *cols = c;
    *rows = (n + c - 1) / c;
}

/* ------------------------------------------------------------------ encode */

/* Thin SVD of the row-major rows x cols matrix a (destroyed). LAPACK sees it as the column-major
 * cols x rows matrix A^T = V S U^T, so: vecs_v (cols x k, column-major: v_i contiguous) and
 * ut (k x rows, column-major: u_i is row i, stride k). jobz 'N': the singular values only
 * (vecs_v and ut not used). */
static int svd_run(float *a, uint64_t rows, uint64_t cols, float *s, float *vecs_v, float *ut, char jobz, ddct_err *e)
{
    lapack_int m = (lapack_int)cols, nn = (lapack_int)rows, k = (lapack_int)min_u64(rows, cols);
    lapack_int ldu = jobz == 'N' ? 1 : m, ldvt = jobz == 'N' ? 1 : k;
    float wq = 0;
    lapack_int *iwork = malloc((size_t)8 * (size_t)k * sizeof *iwork);
    RETURN_ERROR_IF(!iwork, e, DDCT_ERR_NOMEM, "svd codec: out of memory");
    int prev = ddct_blas_serial_begin();
    lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, nn, a, m, s, vecs_v, ldu, ut, ldvt, &wq, -1, iwork);
    /* the workspace size comes back as a float; it must fit LAPACK's 32-bit integers */
    if (info != 0 || !(wq >= 1) || wq >= (float)INT_MAX / 2) {
        ddct_blas_serial_end(prev);
        free(iwork);
        RETURN_ERROR(e, DDCT_ERR_UNSUPPORTED, "svd codec: %llu x %llu matrix too large for LAPACK's workspace",
                     (unsigned long long)rows, (unsigned long long)cols);
    }
    lapack_int lwork = (lapack_int)wq + 64;
    float *work = malloc((size_t)lwork * sizeof *work);
    if (!work) {
        ddct_blas_serial_end(prev);
        free(iwork);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "svd codec: out of memory (SVD workspace of %d floats)", (int)lwork);
    }
    info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, nn, a, m, s, vecs_v, ldu, ut, ldvt, work, lwork, iwork);
    ddct_blas_serial_end(prev);
    free(work);
    free(iwork);
    RETURN_ERROR_IF(info != 0, e, DDCT_ERR_INTERNAL, "svd codec: LAPACK sgesdd failed (info %d)", (int)info);
    return 0;
}

int ddct_svd_thin(float *a, uint64_t rows, uint64_t cols, float *s, float *vecs_v, float *ut, ddct_err *e)
{
    return svd_run(a, rows, cols, s, vecs_v, ut, 'S', e);
}

int ddct_svd_values(float *a, uint64_t rows, uint64_t cols, float *s, ddct_err *e)
{
    return svd_run(a, rows, cols, s, NULL, NULL, 'N', e);
}

/* out[0..n) = the row-major rows x cols matrix U V^T (uc: rows x r column-major, u_i contiguous;
 * vc: cols x r likewise), i.e. column-major cols x rows = V U^T: one serial sgemm per block of
 * DECODE_BLOCK_ROWS full rows, blocks spread over threads, and the partial last row of a padded
 * view through a temporary row. Shared with the rd codec (lowrank.h). */
int ddct_lowrank_product_rows(const float *uc, const float *vc, size_t rows, size_t cols, size_t rr, uint64_t n,
                              size_t row0, size_t row1, float *out, int threads, ddct_err *e)
{
    int rc = 0;
    size_t full = (size_t)n / cols, tail = (size_t)n % cols;
    size_t f1 = row1 < full ? row1 : full;
    size_t nblk = f1 > row0 ? (f1 - row0 + DECODE_BLOCK_ROWS - 1) / DECODE_BLOCK_ROWS : 0;
    threads = nthreads(threads);
    int prev = ddct_blas_serial_begin();
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (nblk > 1)
    for (size_t bk = 0; bk < nblk; bk++) {
        size_t r0 = row0 + bk * DECODE_BLOCK_ROWS, nr = f1 - r0 < DECODE_BLOCK_ROWS ? f1 - r0 : DECODE_BLOCK_ROWS;
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)cols, (int)nr, (int)rr, 1.0f, vc, (int)cols,
                    uc + r0, (int)rows, 0.0f, out + (r0 - row0) * cols, (int)cols);
    }
    if (tail && full >= row0 && full < row1) {
        float *row = malloc(cols * sizeof *row);
        if (row) {
            cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)cols, 1, (int)rr, 1.0f, vc, (int)cols,
                        uc + full, (int)rows, 0.0f, row, (int)cols);
            memcpy(out + (full - row0) * cols, row, tail * sizeof *row);
            free(row);
        } else {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "low-rank product: out of memory");
        }
    }
    ddct_blas_serial_end(prev);
    return rc;
}

int ddct_lowrank_product(const float *uc, const float *vc, size_t rows, size_t cols, size_t rr, uint64_t n,
                         float *out, int threads, ddct_err *e)
{
    return ddct_lowrank_product_rows(uc, vc, rows, cols, rr, n, 0, rows, out, threads, e);
}

/* The bf16 scale m of a vector: among the clip ratios f = 1, 0.95, ..., 0.25 of max |x| (f = 1
 * rounded up, so nothing clips; the others rounded to nearest), the one whose quantization over
 * [-m, +m] has the least squared error; ties go to the larger m. q, xh: len scratch values. */
#define CLIP_STEPS 16
static uint16_t best_scale(const float *x, size_t len, int b, uint16_t hmax, float mxabs, uint16_t *q, float *xh)
{
    uint16_t best = hmax, last = 0xffff;
    double best_err = INFINITY;
    for (int c = 0; c < CLIP_STEPS; c++) {
        uint16_t h = c ? ddct_f32_to_bf16(mxabs * (float)(1.0 - c / 20.0)) : hmax;
        if (h == last) continue;
        last = h;
        float m = ddct_bf16_to_f32(h);
        ddct_quant_uniform(x, len, b, -m, m, q);
        ddct_dequant_uniform(q, len, b, -m, m, xh);
        double err = 0;
        for (size_t j = 0; j < len; j++) err += ((double)x[j] - xh[j]) * ((double)x[j] - xh[j]);
        if (err < best_err) {
            best_err = err;
            best = h;
        }
    }
    return best;
}

static int svd_encode_array(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    const ddct_params *P = in->params;
    int threads = nthreads(in->threads);
    svd_layout L;
    memset(&L, 0, sizeof L);
    L.n = in->nelem;
    L.rescale = P && P->rescale ? 1 : 0;
    RETURN_ERROR_IF(L.n && !in->delta, e, DDCT_ERR_INTERNAL, "svd codec: no input");
    view_of(in->ndim, in->shape, L.n, &L.rows, &L.cols);
    L.mean_abs = (float)ddct_mean_abs(in->delta, L.n, threads);
    RETURN_ERROR_IF(!isfinite(L.mean_abs), e, DDCT_ERR_PARAM, "svd codec: mean |delta| is not finite in float");

    /* rank: the largest whose record fits the budget (cost grows with r) */
    double bpp = P && P->bpp > 0 ? P->bpp : 1.0;
    double budget_bits = bpp * (double)L.n;
    uint64_t kmax = min_u64(L.rows, L.cols), r = 0;
    while (r < kmax) {
        groups_for_rank(&L, r + 1);
        if (8.0 * (double)record_bytes(&L) > budget_bits) break;
        r++;
    }
    groups_for_rank(&L, r);
    RETURN_ERROR_IF(r && (L.rows > INT_MAX || L.cols > INT_MAX), e, DDCT_ERR_UNSUPPORTED,
                    "svd codec: %llu x %llu view too large for LAPACK", (unsigned long long)L.rows,
                    (unsigned long long)L.cols);

    /* params */
    ddct_buf *pb = &out->params;
    ddct_buf_u8(pb, SVD_VERSION);
    ddct_buf_u8(pb, (uint8_t)L.rescale);
    ddct_buf_varint(pb, L.rows);
    ddct_buf_varint(pb, L.cols);
    ddct_buf_varint(pb, L.r);
    ddct_buf_f32(pb, L.mean_abs);
    ddct_buf_u8(pb, (uint8_t)L.ngroups);
    for (int g = 0; g < L.ngroups; g++) {
        ddct_buf_u8(pb, (uint8_t)L.bits[g]);
        ddct_buf_varint(pb, L.count[g]);
    }
    if (r == 0) return 0;

    size_t rows = (size_t)L.rows, cols = (size_t)L.cols, k = (size_t)kmax, rr = (size_t)r;
    size_t side_len = 4 * rr, data_len = (size_t)data_bytes(&L);
    float *a = malloc(rows * cols * sizeof *a), *s = malloc(k * sizeof *s);
    float *vv = malloc(cols * k * sizeof *vv), *ut = malloc(k * rows * sizeof *ut);
    uint8_t *wid = malloc(rr);
    size_t *off = malloc((2 * rr + 1) * sizeof *off);
    int rc = 0, failed = 0;
    if (!a || !s || !vv || !ut || !wid || !off || ddct_buf_reserve(&out->side, side_len) ||
        ddct_buf_reserve(&out->data, data_len)) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "svd codec: out of memory (%zu x %zu matrix)", rows, cols);
        goto done;
    }
    memcpy(a, in->delta, (size_t)L.n * sizeof *a);
    memset(a + L.n, 0, (rows * cols - (size_t)L.n) * sizeof *a);
    rc = ddct_svd_thin(a, L.rows, L.cols, s, vv, ut, e);
    if (rc) goto done;
    /* per-vector bit-widths and byte offsets in data (u_i, then v_i) */
    vector_layout(&L, rr, wid, off);
    uint8_t *side = out->side.p, *data = out->data.p;
    memset(data, 0, data_len);
#pragma omp parallel num_threads(threads)
    {
        size_t mx = rows > cols ? rows : cols;
        float *x = malloc(mx * sizeof *x), *xh = malloc(mx * sizeof *xh);
        uint16_t *q = malloc(mx * sizeof *q);
        int ok = x && xh && q;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (size_t i = 0; i < rr; i++) {
            if (!ok) continue;
            float sq = sqrtf(s[i] > 0 ? s[i] : 0);
            for (int which = 0; which < 2; which++) {
                size_t len = which ? cols : rows;
                float mxabs = 0;
                for (size_t j = 0; j < len; j++) {
                    x[j] = (which ? vv[i * cols + j] : ut[j * k + i]) * sq;
                    float ax = fabsf(x[j]);
                    mxabs = ax > mxabs ? ax : mxabs;
                }
                uint16_t h = ddct_bf16_up(mxabs);
                if (!isfinite(ddct_bf16_to_f32(h)) || !isfinite(mxabs)) {
#pragma omp atomic write
                    failed = 2;
                    h = 0;
                } else {
                    h = best_scale(x, len, wid[i], h, mxabs, q, xh);
                }
                float m = ddct_bf16_to_f32(h);
                side[4 * i + 2 * (size_t)which] = (uint8_t)h;
                side[4 * i + 2 * (size_t)which + 1] = (uint8_t)(h >> 8);
                ddct_quant_uniform(x, len, wid[i], -m, m, q);
                ddct_bitw w;
                ddct_bitw_init(&w, data + off[2 * i + (size_t)which]);
                ddct_bitw_pack(&w, q, len, wid[i]);
                ddct_bitw_finish(&w);
            }
        }
        free(x);
        free(xh);
        free(q);
    }
    if (failed) {
        rc = failed == 1 ? ddct_seterr(e, DDCT_ERR_NOMEM, "svd codec: out of memory (vector buffers)")
                         : ddct_seterr(e, DDCT_ERR_UNSUPPORTED, "svd codec: singular vectors overflow bf16 scales");
        goto done;
    }
    out->side.len = side_len;
    out->data.len = data_len;
done:
    free(a);
    free(s);
    free(vv);
    free(ut);
    free(wid);
    free(off);
    return rc;
}

/* ------------------------------------------------------------------ decode */

static int parse_params(const ddct_record *rec, uint64_t n, svd_layout *L, ddct_err *e)
{
    ddct_rd r;
    ddct_rd_init(&r, rec->params, rec->params_len);
    int ver = ddct_rd_u8(&r);
    int flags = ddct_rd_u8(&r);
    L->n = n;
    L->rows = ddct_rd_varint(&r);
    L->cols = ddct_rd_varint(&r);
    L->r = ddct_rd_varint(&r);
    L->mean_abs = ddct_rd_f32(&r);
    L->ngroups = ddct_rd_u8(&r);
    RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "svd codec: parameters truncated");
    RETURN_ERROR_IF(ver != SVD_VERSION, e, DDCT_ERR_UNSUPPORTED, "svd codec: parameter version %d unknown", ver);
    RETURN_ERROR_IF(flags > 1, e, DDCT_ERR_FORMAT, "svd codec: bad flags 0x%02x", flags);
    L->rescale = flags & 1;
    RETURN_ERROR_IF(L->cols == 0 || (n && L->cols > n) || L->rows != (n ? (n - 1) / L->cols + 1 : 0), e,
                    DDCT_ERR_FORMAT, "svd codec: view %llu x %llu does not fit %llu elements",
                    (unsigned long long)L->rows, (unsigned long long)L->cols, (unsigned long long)n);
    RETURN_ERROR_IF(L->r > min_u64(L->rows, L->cols), e, DDCT_ERR_FORMAT, "svd codec: rank %llu exceeds %llu x %llu",
                    (unsigned long long)L->r, (unsigned long long)L->rows, (unsigned long long)L->cols);
    RETURN_ERROR_IF(!isfinite(L->mean_abs) || !(L->mean_abs >= 0), e, DDCT_ERR_FORMAT, "svd codec: bad mean |delta|");
    RETURN_ERROR_IF(L->ngroups > SVD_MAX_GROUPS, e, DDCT_ERR_FORMAT, "svd codec: %d groups", L->ngroups);
    uint64_t sum = 0;
    for (int g = 0; g < L->ngroups; g++) {
        L->bits[g] = ddct_rd_u8(&r);
        L->count[g] = ddct_rd_varint(&r);
        RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "svd codec: parameters truncated");
        RETURN_ERROR_IF(L->bits[g] < 1 || L->bits[g] > DDCT_MAX_BITWIDTH, e, DDCT_ERR_FORMAT,
                        "svd codec: group %d has %d bits", g, L->bits[g]);
        RETURN_ERROR_IF(L->count[g] < 1 || L->count[g] > L->r - sum, e, DDCT_ERR_FORMAT,
                        "svd codec: group sizes do not add up to rank %llu", (unsigned long long)L->r);
        sum += L->count[g];
    }
    RETURN_ERROR_IF(sum != L->r, e, DDCT_ERR_FORMAT, "svd codec: group sizes add up to %llu, rank %llu",
                    (unsigned long long)sum, (unsigned long long)L->r);
    RETURN_ERROR_IF(r.pos != r.len || params_bytes(L) != rec->params_len, e, DDCT_ERR_FORMAT,
                    "svd codec: parameter length mismatch");
    return 0;
}

/* A record's dequantized factors. */
typedef struct {
    svd_layout L;
    size_t rows, cols, rr;
    float *uc, *vc;
} svd_factors;

static void factors_free(svd_factors *F)
{
    free(F->uc);
    free(F->vc);
}

/* Parse the record and dequantize its vectors (memory bounded by the record: every vector element
 * costs at least one data bit). F->rr == 0: delta^ is 0. */
static int factors_open(const ddct_record *rec, uint64_t n, int threads, svd_factors *F, ddct_err *e)
{
    memset(F, 0, sizeof *F);
    svd_layout *Lp = &F->L;
    FORWARD_IF_ERROR(parse_params(rec, n, Lp, e));
    const svd_layout L = *Lp;
    uint64_t dlen = data_bytes(&L);
    RETURN_ERROR_IF(L.r > rec->side_len / 4 || rec->side_len != 4 * L.r || dlen != rec->data_len, e,
                    DDCT_ERR_FORMAT, "svd codec: stream sizes %zu/%zu, expected %llu/%llu", rec->side_len,
                    rec->data_len, (unsigned long long)(L.r <= rec->side_len / 4 ? 4 * L.r : 0),
                    (unsigned long long)dlen);
    if (n == 0 || L.r == 0) return 0;
    /* every vector element costs at least one data bit, so rows * r and cols * r are below
     * 8 * data_len: the allocations below are bounded by the record's real size */
    RETURN_ERROR_IF(L.rows > INT_MAX || L.cols > INT_MAX || L.r > INT_MAX, e, DDCT_ERR_UNSUPPORTED,
                    "svd codec: %llu x %llu view too large for BLAS", (unsigned long long)L.rows,
                    (unsigned long long)L.cols);
    size_t rows = (size_t)L.rows, cols = (size_t)L.cols, rr = (size_t)L.r;
    const uint8_t *side = rec->side, *data = rec->data;
    /* scales: finite and non-negative bf16 */
    for (size_t i = 0; i < 2 * rr; i++) {
        uint16_t h = ddct_le16(side + 2 * i);
        RETURN_ERROR_IF((h & 0x8000) || (h & 0x7f80) == 0x7f80, e, DDCT_ERR_FORMAT,
                        "svd codec: bad scale 0x%04x of vector %zu", h, i);
    }
    float *uc = malloc(rows * rr * sizeof *uc), *vc = malloc(cols * rr * sizeof *vc);
    uint8_t *wid = malloc(rr);
    size_t *off = malloc((2 * rr + 1) * sizeof *off);
    int rc = 0, failed = 0;
    if (!uc || !vc || !wid || !off) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "svd codec: out of memory (rank %zu)", rr);
        goto done;
    }
    vector_layout(&L, rr, wid, off);
    threads = nthreads(threads);
#pragma omp parallel num_threads(threads)
    {
        size_t mx = rows > cols ? rows : cols;
        uint16_t *q = malloc(mx * sizeof *q);
        int ok = q != NULL;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (size_t v = 0; v < 2 * rr; v++) {
            if (!ok) continue;
            size_t i = v / 2, len = v % 2 ? cols : rows;
            int b = wid[i];
            uint64_t bits = (uint64_t)len * (uint64_t)b;
            const uint8_t *src = data + off[v];
            size_t nb = off[v + 1] - off[v];
            if (bits % 8 && (src[nb - 1] >> (bits % 8))) {
#pragma omp atomic write
                failed = 2;
                continue;
            }
            ddct_bitr br;
            ddct_bitr_init(&br, src, nb);
            ddct_bitr_unpack(&br, q, len, b);
            float m = ddct_bf16_to_f32(ddct_le16(side + 2 * v));
            ddct_dequant_uniform(q, len, b, -m, m, v % 2 ? vc + i * cols : uc + i * rows);
        }
        free(q);
    }
    if (failed)
        rc = failed == 1 ? ddct_seterr(e, DDCT_ERR_NOMEM, "svd codec: out of memory (vector buffers)")
                         : ddct_seterr(e, DDCT_ERR_FORMAT, "svd codec: padding bits are not zero");
done:
    free(wid);
    free(off);
    if (rc) {
        free(uc);
        free(vc);
        return rc;
    }
    F->rows = rows, F->cols = cols, F->rr = rr, F->uc = uc, F->vc = vc;
    return 0;
}

void ddct_lr_factors_free(ddct_lr_factors *F)
{
    free(F->uc);
    free(F->vc);
    F->uc = F->vc = NULL;
}

int ddct_svd_record_factors(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_lr_factors *out,
                            ddct_err *e)
{
    svd_factors F;
    memset(out, 0, sizeof *out);
    FORWARD_IF_ERROR(factors_open(rec, n, threads, &F, e));
    out->rows = (size_t)F.L.rows, out->cols = (size_t)F.L.cols, out->r = F.rr, out->uc = F.uc, out->vc = F.vc;
    out->scale = 1.0f;
    if (n && F.rr && (rescale < 0 ? F.L.rescale : rescale)) {
        /* the decoder's factor: the stored mean |delta| over the product's */
        float *buf = malloc((size_t)n * sizeof *buf);
        int rc = buf ? ddct_lowrank_product(F.uc, F.vc, F.rows, F.cols, F.rr, n, buf, threads, e)
                     : ddct_seterr(e, DDCT_ERR_NOMEM, "svd codec: out of memory (%llu values)", (unsigned long long)n);
        if (!rc) out->scale = ddct_rescale_factor(F.L.mean_abs, ddct_mean_abs(buf, n, nthreads(threads)));
        free(buf);
        if (rc) {
            ddct_lr_factors_free(out);
            return rc;
        }
    }
    return 0;
}

static int svd_decode(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out, ddct_err *e)
{
    svd_factors F;
    FORWARD_IF_ERROR(factors_open(rec, n, threads, &F, e));
    int rc = 0;
    if (n && !F.rr) memset(out, 0, (size_t)n * sizeof *out);
    else if (n) rc = ddct_lowrank_product(F.uc, F.vc, F.rows, F.cols, F.rr, n, out, threads, e);
    if (!rc && n && F.rr && (rescale < 0 ? F.L.rescale : rescale)) ddct_rescale_to(out, n, F.L.mean_abs, threads);
    factors_free(&F);
    return rc;
}

static int svd_encode(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    return ddct_encode_whole(svd_encode_array, in, out, e);
}

/* Streamed: delta^ in slices of whole row blocks (about 4 Mi values), so memory is the factors
 * (bounded by the record) and one slice, whatever the tensor's size — a small record of a
 * low-rank tensor can stand for gigabytes of floats. With the rescale, a first pass over the
 * slices sums |delta^| (ddct_absum: the same mean as over the whole tensor) for the factor. */
static int svd_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scr,
                             const ddct_delta_out *out, ddct_err *e)
{
    svd_factors F;
    FORWARD_IF_ERROR(factors_open(rec, n, threads, &F, e));
    int rc = 0;
    size_t cols = F.rr ? F.cols : 1, rows = F.rr ? F.rows : (size_t)n;
    size_t per = (size_t)(((uint64_t)4 << 20) / cols / DECODE_BLOCK_ROWS * DECODE_BLOCK_ROWS);
    if (per < DECODE_BLOCK_ROWS) per = DECODE_BLOCK_ROWS;
    uint64_t most = (uint64_t)per * cols < n ? (uint64_t)per * cols : n;
    float *buf = n ? ddct_scratch_get(scr, (size_t)most * sizeof *buf) : NULL;
    if (n && !buf) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%llu-value slice)", (unsigned long long)most);
    int scaled = F.rr && (rescale < 0 ? F.L.rescale : rescale);
    float s = 1.0f;
    for (int pass = scaled ? 0 : 1; pass < 2 && !rc; pass++) {
        ddct_absum sum = {0};
        for (size_t r0 = 0; r0 < rows && (uint64_t)r0 * cols < n && !rc; r0 += per) {
            uint64_t a = (uint64_t)r0 * cols, m = n - a < (uint64_t)per * cols ? n - a : (uint64_t)per * cols;
            if (!F.rr) memset(buf, 0, (size_t)m * sizeof *buf);
            else rc = ddct_lowrank_product_rows(F.uc, F.vc, F.rows, F.cols, F.rr, n, r0, r0 + per, buf, threads, e);
            if (!rc && pass == 0) ddct_absum_add(&sum, buf, m, threads);
            if (!rc && pass == 1) rc = out->begin(out->opaque, a, m, e);
            if (!rc && pass == 1) {
                const uint64_t CH = (uint64_t)1 << 16;
                (void)threads;
#pragma omp parallel for num_threads(nthreads(threads)) schedule(static) if (m > 4 * CH)
                for (uint64_t c0 = 0; c0 < m; c0 += CH)
                    out->put(out->opaque, a + c0, c0, buf + c0, m - c0 < CH ? m - c0 : CH, s);
                rc = out->end(out->opaque, a, m, e);
            }
        }
        if (pass == 0) s = ddct_rescale_factor(F.L.mean_abs, ddct_absum_mean(&sum));
    }
    factors_free(&F);
    return rc;
}

const ddct_codec_traits ddct_codec_svd = {
    .name = "svd", .id = DDCT_CODEC_SVD, .lossy = 1, .encode_lossy = svd_encode, .decode_lossy = svd_decode,
    .decode_stream = svd_decode_stream};
