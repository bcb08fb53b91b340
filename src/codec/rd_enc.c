/*
 * rd_enc.c — the rd codec's encoder: statistics gathered once per tensor, rate and distortion
 * estimated from them in closed form, one final encode (layout: rd_internal.h, docs/FORMAT.md).
 *
 * Analysis of one tensor (rd_model), from its delta read in blocks of rows through the source:
 *   1. low-rank part: the leading triplets of the SVD. Views of up to RD_EXACT_MAX values: an
 *      exact thin SVD (LAPACK sgesdd). Larger ones: a randomized range finder (Halko, Martinsson,
 *      Tropp, "Finding structure with randomness", SIAM Review 53(2), 2011, algorithms 4.1/5.1):
 *      Y = delta Omega (Omega cols x l, Gaussian from a fixed seed), Q = orth(Y), B^T = delta^T Q,
 *      B = U_b S V^T; two passes over the delta with BLAS. The sketch starts at RD_SKETCH0 triplets
 *      and grows (x4, up to the rank limit) only while every triplet found stands above the noise
 *      edge sigma (sqrt(rows) + sqrt(cols)) of the rest (sigma^2 = the energy left per value), i.e.
 *      only where the spectrum says more structure is there;
 *   2. residual statistics: delta minus the rank-r part for a few candidate ranks r, as is and by
 *      16 x 16 DCT tiles, on a fixed sample of tiles (all of them up to RD_STAT_ALL values): per
 *      band a histogram of |x| by its float bits (16 bins per octave), integer counts only, so the
 *      merged histograms do not depend on the thread count;
 *   3. per factor vector the same histogram of |u_i| sqrt(s_i), |v_i| sqrt(s_i).
 * Estimation at a residual step D (rd_choose): per band and quantizer (step multiplier, rounding
 * offset) the zeroth-order entropy of the quantized symbols plus sign bits, and the squared error
 * with the centroid reconstruction offsets, from the histogram bins' centres; per factor vector
 * its rate at step D / sqrt(s_i) and the exact error of the quantized product
 * ||a b^T - a^ b^^T||^2 = s^2 - 2 (a.a^)(b.b^) + |a^|^2 |b^|^2. The rank, the transform and each
 * band's quantizer minimise J = D + lambda R, lambda = RD_LAMBDA D^2 (the high-rate slope).
 * The final encode (rd_encode_at) then quantizes factors and residual once, entropy-codes them
 * (rANS with contexts) and rebuilds each unit as the decoder will, for the stored rescale factor
 * and the exact error. Nothing is trial-encoded except the factor stream's few table variants.
 *
 * Numeric limits: histograms cover every finite float (4096 bins of 1/16 octave); bin centres
 * err by at most 2.2 % in value, so estimates are approximate by design (the pipeline's rate
 * control measures every record's exact bytes). Factor steps and band steps are bf16.
 * Determinism: blocks and units are fixed pieces, sums are combined in their order, histogram
 * counts are integers, BLAS runs serially (ddct_blas_serial_begin): the same records for any
 * thread count.
 */
#include <cblas.h>
#include <lapacke.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "codec_rd.h"
#include "entropy/rans.h"
#include "lowrank.h"
#include "rd_internal.h"

#define RD_EXACT_MAX ((uint64_t)1 << 18) /* views up to this many values: exact SVD */
#define RD_SKETCH0 8                     /* first sketch: triplets */
#define RD_OVERSAMPLE 8
#define RD_EXACT_CHOOSE ((uint64_t)1 << 14) /* views up to this many values: choices from exact statistics */
#define RD_STAT_ALL ((uint64_t)1 << 18)  /* residual statistics on every tile up to this many values */
#define RD_STAT_SAMPLE ((uint64_t)1 << 17) /* else on about this many */
#define RD_NRC 16                        /* candidate ranks at most */
#define RD_HSHIFT 17                     /* histogram bin = float bits >> 17: 64 bins per octave */
#define RD_HBINS (1u << (31 - RD_HSHIFT))
#define RD_HTOP (0x7f800000u >> RD_HSHIFT) /* the bin whose lower edge is +Inf: the bins from RD_HTOP - 1 on have no finite upper edge */
#define RD_HQ 64                         /* symbols counted one by one for the entropy (rest pooled) */
#define RD_BLOCK_VALUES ((uint64_t)1 << 18) /* values per block of rows in the analysis passes */
#define RD_ZGROUPS 4                     /* fixed accumulators of delta^T Q */
#define RD_MAX_NORM2 0x1p200             /* ||delta||^2 at most (larger: not coded) */

static const float mult_set[] = {1.0f, 1.25f, 1.5f};
static const float rho_set[] = {0.5f, 0.38f, 0.27f, 0.18f};
#define NMULT 3
#define NRHO 4
#define NCOMBO (NMULT * NRHO)
#define RD_COMBO0 1 /* multiplier 1, rounding offset 0.38: the quantizer of the rate curves */
static const uint64_t rank_cands[] = {0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128};
#define NRANK (sizeof rank_cands / sizeof rank_cands[0])

/* ------------------------------------------------------------------ histograms */

/* Zeroed memory that is read before it is written (accumulators): malloc + memset rather than
 * calloc, whose fresh pages map the shared zero page on the first read and then fault again, with
 * a TLB flush on every core, on the first write (measured: a tenth of the encoder's time). */
static void *rd_zalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p) memset(p, 0, n);
    return p;
}

/* Counts are gathered in dense arrays (rd_dense), then kept compact (rd_hist: bins [lo, hi)). */
typedef struct {
    uint32_t c[RD_HBINS];
} rd_dense;

/* zc, zm: running sums at every RD_ZB-th bin, so that hist_est takes the bins wholly in the
 * zero cell of a quantizer (most of them: a histogram spans tens of octaves) in one step. */
#define RD_ZB 64
typedef struct {
    uint32_t lo, hi; /* non-empty bins lie in [lo, hi) */
    uint32_t *c;     /* c[k - lo] */
    double *zc, *zm; /* [j]: over bins [lo, lo + RD_ZB j), the count and sum of c (e0^2 + e0 e1 + e1^2) / 3 */
} rd_hist;

static inline uint32_t hbin(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x7fffffffu) >> RD_HSHIFT;
}

static inline void hist_add(rd_dense *h, float x) { h->c[hbin(x)]++; }

/* The lower edge of bin k (a float whose low RD_HSHIFT bits are zero). */
static inline double hedge(uint32_t k)
{
    uint32_t u = k << RD_HSHIFT;
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}

/* h's running sums (rd_hist); 0, or -1 when out of memory. */
static int hist_sums(rd_hist *h)
{
    size_t nz = (h->hi - h->lo) / RD_ZB + 1;
    h->zc = malloc(nz * sizeof *h->zc);
    h->zm = malloc(nz * sizeof *h->zm);
    if (!h->zc || !h->zm) return -1;
    double c = 0, m = 0;
    for (size_t j = 0;; j++) {
        h->zc[j] = c;
        h->zm[j] = m;
        if (j + 1 == nz) break;
        for (uint32_t k = h->lo + (uint32_t)(j * RD_ZB); k < h->lo + (uint32_t)((j + 1) * RD_ZB); k++) {
            double n = h->c[k - h->lo], e0 = hedge(k), e1 = hedge(k + 1);
            c += n;
            m += n * (e0 * e0 + e0 * e1 + e1 * e1) / 3;
        }
    }
    return 0;
}

/* The compact copy of d; 0, or -1 when out of memory. */
static int hist_compact(const rd_dense *d, rd_hist *h)
{
    uint32_t lo = 0, hi = RD_HBINS;
    while (lo < hi && !d->c[lo]) lo++;
    while (hi > lo && !d->c[hi - 1]) hi--;
    h->lo = lo;
    h->hi = hi;
    h->c = malloc((size_t)(hi > lo ? hi - lo : 1) * sizeof *h->c);
    if (!h->c) return -1;
    memcpy(h->c, d->c + lo, (size_t)(hi - lo) * sizeof *h->c);
    return hist_sums(h);
}

static void hist_merge(rd_dense *dst, const rd_dense *src)
{
    for (uint32_t i = 0; i < RD_HBINS; i++) dst->c[i] += src->c[i];
}

static double l2[256]; /* log2(i), for the counts of hist_est's pooled tail */
static pthread_once_t l2_once = PTHREAD_ONCE_INIT;
static void l2_init(void)
{
    for (int i = 1; i < 256; i++) l2[i] = log2((double)i);
}

typedef struct {
    double rate, dist;   /* bits (symbols + signs), squared error */
    double dot, rr;      /* sum |x| |x^|, sum x^2 (factor vectors) */
    uint8_t t1, t2;      /* centroid offsets (x 256) */
    int qmax;
    double tab_bits;     /* the frequency tables of the units (see hist_est) */
} rd_est;

/* Quantize the histogram's values at step st with rounding offset rho (q = floor(|x|/st + rho));
 * centroid: reconstruct at (q - theta) st with theta the mean of q - |x|/st (|q| = 1, |q| >= 2).
 * Values are taken as uniform within their bin, so a bin wider than a quantizer step spreads its
 * count over every q it covers; symbols from RD_HQ on are pooled, each costing the log2 of its
 * share of the density (the entropy of a smooth tail). */
static void hist_est(const rd_hist *h, double wt, double st, double rho, int centroid, double per_unit, rd_est *o)
{
    memset(o, 0, sizeof *o);
    double cq[RD_HQ];
    memset(cq, 0, sizeof cq);
    double tot = 0, d0 = 0, n1 = 0, s1 = 0, ss1 = 0, n2 = 0, s2 = 0, ss2 = 0, pool = 0, pool_a = 0;
    double inv = 1.0 / st, st2 = st * st;
    /* the whole blocks of bins below (1 - rho) st, a bin's margin under it: quantized to 0 */
    uint32_t k0 = h->lo;
    {
        float zt = (float)((1 - rho) * st);
        uint32_t kt = isfinite(zt) ? hbin(zt) : h->hi;
        if (kt > h->lo + 1) {
            size_t j = (size_t)(kt - 1 - h->lo) / RD_ZB, nz = (h->hi - h->lo) / RD_ZB;
            if (j > nz) j = nz;
            k0 = h->lo + (uint32_t)(j * RD_ZB);
            tot = h->zc[j] * wt;
            cq[0] = tot;
            d0 = h->zm[j] * wt;
        }
    }
    uint32_t k = k0;
    for (; k < h->hi; k++) {
        double c = h->c[k - h->lo] * wt;
        if (!c) continue;
        double ulo = hedge(k) * inv;
        if (ulo + rho >= RD_HQ && k + 1 < RD_HTOP) break; /* the tail, below */
        tot += c;
        double uhi = (k + 1 >= RD_HTOP ? hedge(k) * 1.0442737824274138 : hedge(k + 1)) * inv;
        double w = uhi - ulo, per = w > 0 ? c / w : 0;
        double qa = ulo + rho, qb = uhi + rho;
        int q0 = qa < RD_QMAX ? (int)qa : RD_QMAX, q1 = qb < RD_QMAX ? (int)qb : RD_QMAX;
        if (q1 > o->qmax) o->qmax = q1;
        for (int q = q0; q <= q1; q++) {
            double a0 = q == q0 ? ulo : q - rho, a1 = q == q1 ? uhi : q + 1 - rho;
            double share = q0 == q1 ? c : per * (a1 - a0);
            if (!(share > 0)) continue;
            if (q >= RD_HQ) { /* the pooled tail: the rest of this bin at once */
                a1 = uhi;
                share = q0 == q1 ? c : per * (a1 - a0);
                double m = 0.5 - rho, m2 = (rho * rho - rho * (1 - rho) + (1 - rho) * (1 - rho)) / 3;
                n2 += share;
                s2 += share * m;
                ss2 += share * m2;
                pool += share;
                pool_a += share * log2((a1 - a0) / share);
                double qm = 0.5 * (a0 + a1);
                o->dot += share * qm * qm * st2;
                o->rr += share * qm * qm * st2;
                break;
            }
            double e0 = a0 - q, e1 = a1 - q, m = 0.5 * (e0 + e1), m2 = (e0 * e0 + e0 * e1 + e1 * e1) / 3;
            if (q == 0) {
                d0 += share * st2 * (a0 * a0 + a0 * a1 + a1 * a1) / 3;
                cq[0] += share;
                continue;
            }
            cq[q] += share;
            if (q == 1) {
                n1 += share;
                s1 += share * m;
                ss1 += share * m2;
            } else {
                n2 += share;
                s2 += share * m;
                ss2 += share * m2;
            }
            o->dot += share * (0.5 * (a0 + a1)) * q * st2;
            o->rr += share * (double)q * q * st2;
        }
    }
    /* The pooled tail (every value at q >= RD_HQ): as the loop above takes such a bin whole, with
     * its width in a binade 2^(e - 6) exactly (RD_HSHIFT 17: 64 bins an octave), so that
     * log2(width / c) needs no logarithm but of the count (a table below 256). */
    if (k < h->hi) {
        pthread_once(&l2_once, l2_init);
        const double lwt = log2(wt), linv = log2(inv), m = 0.5 - rho,
                     m2 = (rho * rho - rho * (1 - rho) + (1 - rho) * (1 - rho)) / 3;
        double tc = 0, tq = 0, ta = 0, last = 0;
        for (; k < h->hi; k++) {
            uint32_t n = h->c[k - h->lo];
            if (!n) continue;
            double c = n * wt, e0 = hedge(k), e1 = k + 1 >= RD_HTOP ? e0 * 1.0442737824274138 : hedge(k + 1);
            double qm = 0.5 * (e0 + e1) * inv;
            int ex = (int)((k << RD_HSHIFT) >> 23) - 127; /* the binade of e0 */
            double lw = k + 1 >= RD_HTOP ? log2((e1 - e0) * inv) : (double)(ex - (23 - RD_HSHIFT)) + linv;
            tc += c;
            tq += c * qm * qm;
            ta += c * (lw - (n < 256 ? l2[n] : log2((double)n)) - lwt);
            last = e1 * inv;
        }
        tot += tc;
        n2 += tc;
        s2 += tc * m;
        ss2 += tc * m2;
        pool += tc;
        pool_a += ta;
        o->dot += tq * st2;
        o->rr += tq * st2;
        int q1 = last + rho < RD_QMAX ? (int)(last + rho) : RD_QMAX;
        if (q1 > o->qmax) o->qmax = q1;
    }
    if (!(tot > 0)) return;
    double th[2] = {0, 0};
    const double nn[2] = {n1, n2}, s[2] = {s1, s2}, ss[2] = {ss1, ss2};
    double dist = d0;
    for (int g = 0; g < 2; g++) {
        if (!(nn[g] > 0)) continue;
        double t = 0;
        if (centroid) {
            t = -s[g] / nn[g];
            t = floor(t * 256 + 0.5) / 256;
            if (t < 0) t = 0;
            if (t > 255.0 / 256) t = 255.0 / 256;
        }
        th[g] = t;
        dist += st2 * (ss[g] + 2 * t * s[g] + nn[g] * t * t);
    }
    double rate = n1 + n2; /* signs */
    for (int i = 0; i < RD_HQ; i++)
        if (cq[i] > 0) rate += cq[i] * log2(tot / cq[i]);
    if (pool > 0) rate += pool_a + pool * log2(tot);
    /* a unit's table: ~1.5 bytes a symbol present in it (both signs; absent ones come in runs),
     * with per_unit the expected share of these counts in one unit */
    double distinct = 1;
    for (int i = 1; i < RD_HQ; i++) distinct += 2 * fmin(1.0, cq[i] * per_unit);
    if (o->qmax >= RD_HQ) distinct += 2 * fmin(pool * per_unit, (double)(o->qmax - RD_HQ + 1));
    o->tab_bits = 8 * (2 + 1.5 * distinct);
    o->rate = rate;
    o->dist = dist;
    o->t1 = (uint8_t)lrint(th[0] * 256);
    o->t2 = (uint8_t)lrint(th[1] * 256);
}

/* ------------------------------------------------------------------ reading the delta */

/* An input the source could not read (it changed, say): the first such error of a pass. */
typedef struct {
    int set;
    ddct_err e;
} rd_ioerr;

/* Values [first, first + n) of the delta: the array, or the source (into buf, room for
 * DDCT_DELTA_SRC_ROOM * n floats). NULL if a value is not finite, or (io->set) not read. */
static const float *rd_read(const ddct_lossy_in *in, uint64_t first, uint64_t n, float *buf, rd_ioerr *io)
{
    if (in->delta) return in->delta + first;
    ddct_err e;
    ddct_err_clear(&e);
    const float *p = in->src(in->src_opaque, first, n, buf, 1, &e);
    if (!p && e.code) {
#pragma omp critical /* unnamed: a named one is a global symbol of the shared library */
        if (!io->set) {
            io->set = 1;
            io->e = e;
        }
    }
    return p;
}

/* Rows [r0, r0 + nr) of the view into x (nr x cols, zero past the tensor's end); 0 if a value is
 * not finite or could not be read (io->set). x: room for DDCT_DELTA_SRC_ROOM * nr * cols floats
 * (the source's scratch). */
static int read_rows(const ddct_lossy_in *in, uint64_t cols, uint64_t r0, uint64_t nr, float *x, rd_ioerr *io)
{
    uint64_t first = r0 * cols, want = nr * cols, have = first < in->nelem ? rd_min(want, in->nelem - first) : 0;
    if (have) {
        const float *p = rd_read(in, first, have, x, io);
        if (!p) return 0;
        if (p != x) memcpy(x, p, (size_t)have * sizeof *x);
    }
    if (have < want) memset(x + have, 0, (size_t)(want - have) * sizeof *x);
    return 1;
}

/* After a pass: the read error, if any (then the caller returns it), else 0. */
static int io_check(const rd_ioerr *io, ddct_err *e)
{
    if (!io->set) return 0;
    return ddct_seterr(e, io->e.code ? io->e.code : DDCT_ERR_IO, "%s", io->e.msg);
}

/* ------------------------------------------------------------------ the model of a tensor */

typedef struct {
    uint64_t n, rows, cols;
    double energy, mean_abs;
    /* low-rank part: k triplets, u_i at u + i * rows, v_i at v + i * cols (unit norm) */
    uint64_t k;
    float *s, *u, *v;
    rd_hist *fh; /* 2k: |u_i| sqrt(s_i), |v_i| sqrt(s_i) */
    /* residual statistics: candidate ranks, histograms [rank][dct][band] */
    int nr;
    uint64_t rank[RD_NRC];
    rd_hist *rh;
    double scale;    /* sampled values -> whole tensor */
    uint64_t tiles;  /* residual plane values (padded, DCT) */
    double uw;       /* weight of the u-side factor histograms' counts (1; rows / sampled rows) */
    float *delta;    /* views of up to RD_EXACT_CHOOSE values: the delta (rows x cols), else NULL */
    int exact;       /* with delta: choices from exact statistics (1, the default) */
} rd_model;

static rd_hist *rh_at(const rd_model *M, int ri, int dct, int b) { return &M->rh[((size_t)ri * 2 + (size_t)dct) * RD_NB + (size_t)b]; }

static void hists_free(rd_hist *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].c);
        free(h[i].zc);
        free(h[i].zm);
    }
    free(h);
}

static void model_free(rd_model *M)
{
    hists_free(M->fh, (size_t)(2 * M->k));
    hists_free(M->rh, (size_t)M->nr * 2 * RD_NB);
    M->fh = M->rh = NULL;
    free(M->s);
    free(M->u);
    free(M->v);
    free(M->delta);
    memset(M, 0, sizeof *M);
}

/* Gaussian deviate i of stream `seed` (counter-based: the same for any thread count). */
static float gauss_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 0xD1B54A32D192ED03ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double a = ((double)(z >> 40) + 0.5) / 16777216.0, b = (double)(z & 0xffffff) / 16777216.0;
    return (float)(sqrt(-2 * log(a)) * cos(6.283185307179586 * b));
}

/* In-place orthonormal basis of the columns of the row-major m x l matrix a (m >= l). */
static int orth_rows(float *a, uint64_t m, uint64_t l, ddct_err *e)
{
    float *tau = malloc((size_t)l * sizeof *tau);
    RETURN_ERROR_IF(!tau, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    lapack_int info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, a, (lapack_int)l, tau);
    if (!info) info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)l, (lapack_int)l, a, (lapack_int)l, tau);
    free(tau);
    RETURN_ERROR_IF(info != 0, e, DDCT_ERR_INTERNAL, "rd codec: LAPACK QR failed (info %d)", (int)info);
    return 0;
}

typedef struct {
    const ddct_lossy_in *in;
    uint64_t rows, cols, rb, nb; /* rows per block, blocks */
    int threads;
} rd_passer;

/* Y = delta Omega (rows x l, row-major), block by block; also the energy and sum |x|
 * (first pass only: sums != NULL, per block, combined in block order). */
static int pass_sketch(const rd_passer *P, const float *om, uint64_t l, float *y, double *esum, double *asum, int *nonfinite,
                       ddct_err *e)
{
    int failed = 0;
    rd_ioerr io = {0};
    double *be = esum ? calloc((size_t)P->nb, sizeof *be) : NULL, *ba = esum ? calloc((size_t)P->nb, sizeof *ba) : NULL;
    RETURN_ERROR_IF(esum && (!be || !ba), e, DDCT_ERR_NOMEM, "rd codec: out of memory");
#pragma omp parallel num_threads(P->threads) if (P->nb > 1)
    {
        float *x = malloc((size_t)(P->rb * P->cols) * DDCT_DELTA_SRC_ROOM * sizeof *x);
        if (!x) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (uint64_t b = 0; b < P->nb; b++) {
            if (!x || failed) continue;
            uint64_t r0 = b * P->rb, nr = rd_min(P->rb, P->rows - r0);
            if (!read_rows(P->in, P->cols, r0, nr, x, &io)) {
#pragma omp atomic write
                failed = 2;
                continue;
            }
            if (be) {
                double s2 = 0, s1 = 0;
                for (uint64_t i = 0; i < nr * P->cols; i++) {
                    s2 += (double)x[i] * x[i];
                    s1 += fabs((double)x[i]);
                }
                be[b] = s2;
                ba[b] = s1;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)l, (int)P->cols, 1.0f, x,
                        (int)P->cols, om, (int)l, 0.0f, y + r0 * l, (int)l);
        }
        free(x);
    }
    if (be && !failed) {
        *esum = 0;
        *asum = 0;
        for (uint64_t b = 0; b < P->nb; b++) {
            *esum += be[b];
            *asum += ba[b];
        }
    }
    free(be);
    free(ba);
    FORWARD_IF_ERROR(io_check(&io, e));
    if (failed == 2) *nonfinite = 1;
    RETURN_ERROR_IF(failed == 1, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    return 0;
}

/* Z = delta^T Q (cols x l, row-major): RD_ZGROUPS fixed accumulators (block b into b mod G, in
 * block order), then added in group order. */
static int pass_transpose(const rd_passer *P, const float *q, uint64_t l, float *z, int *nonfinite, ddct_err *e)
{
    size_t zl = (size_t)(P->cols * l);
    float *acc = rd_zalloc((size_t)RD_ZGROUPS * zl * sizeof *acc);
    RETURN_ERROR_IF(!acc, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    int failed = 0;
    rd_ioerr io = {0};
#pragma omp parallel num_threads(P->threads) if (P->nb > 1)
    {
        float *x = malloc((size_t)(P->rb * P->cols) * DDCT_DELTA_SRC_ROOM * sizeof *x);
        if (!x) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int g = 0; g < RD_ZGROUPS; g++)
            for (uint64_t b = (uint64_t)g; b < P->nb && x && !failed; b += RD_ZGROUPS) {
                uint64_t r0 = b * P->rb, nr = rd_min(P->rb, P->rows - r0);
                if (!read_rows(P->in, P->cols, r0, nr, x, &io)) {
#pragma omp atomic write
                    failed = 2;
                    break;
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)P->cols, (int)l, (int)nr, 1.0f, x,
                            (int)P->cols, q + r0 * l, (int)l, 1.0f, acc + (size_t)g * zl, (int)l);
            }
        free(x);
    }
    if (!failed) {
        memcpy(z, acc, zl * sizeof *z);
        for (int g = 1; g < RD_ZGROUPS; g++)
            for (size_t i = 0; i < zl; i++) z[i] += acc[(size_t)g * zl + i];
    }
    free(acc);
    FORWARD_IF_ERROR(io_check(&io, e));
    if (failed == 2) *nonfinite = 1;
    RETURN_ERROR_IF(failed == 1, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    return 0;
}

/* Exact thin SVD of the whole view (small tensors). */
static int lowrank_exact(const ddct_lossy_in *in, rd_model *M, int *nonfinite, ddct_err *e)
{
    size_t rows = (size_t)M->rows, cols = (size_t)M->cols, k = (size_t)rd_min(M->rows, M->cols);
    size_t kk = (size_t)ddct_rd_rank_limit(M->rows, M->cols);
    float *a = malloc(rows * cols * DDCT_DELTA_SRC_ROOM * sizeof *a), *s = malloc(k * sizeof *s);
    float *vv = malloc(cols * k * sizeof *vv), *ut = malloc(k * rows * sizeof *ut);
    int rc = 0;
    rd_ioerr io = {0};
    if (!a || !s || !vv || !ut) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory (SVD of %zu x %zu)", rows, cols);
        goto done;
    }
    if (!read_rows(in, M->cols, 0, M->rows, a, &io)) {
        if (!(rc = io_check(&io, e))) *nonfinite = 1;
        goto done;
    }
    double e2 = 0, a1 = 0;
    for (size_t i = 0; i < rows * cols; i++) {
        e2 += (double)a[i] * a[i];
        a1 += fabs((double)a[i]);
    }
    M->energy = e2;
    M->mean_abs = a1 / (double)M->n;
    if (rows * cols <= RD_EXACT_CHOOSE) { /* kept for the exact choices (choose_exact) */
        M->delta = malloc(rows * cols * sizeof *M->delta);
        if (!M->delta) {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
            goto done;
        }
        memcpy(M->delta, a, rows * cols * sizeof *a);
    }
    if (!kk) goto done;
    rc = ddct_svd_thin(a, M->rows, M->cols, s, vv, ut, e);
    if (rc) goto done;
    M->s = malloc(kk * sizeof *M->s);
    M->u = malloc(kk * rows * sizeof *M->u);
    M->v = malloc(kk * cols * sizeof *M->v);
    if (!M->s || !M->u || !M->v) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto done;
    }
    for (size_t i = 0; i < kk; i++) {
        M->s[i] = s[i] > 0 && isfinite(s[i]) ? s[i] : 0;
        for (size_t j = 0; j < rows; j++) M->u[i * rows + j] = ut[j * k + i];
        memcpy(M->v + i * cols, vv + i * cols, cols * sizeof *M->v);
    }
    M->k = kk;
done:
    free(a);
    free(s);
    free(vv);
    free(ut);
    return rc;
}

/* Randomized: sketches of growing size until the spectrum ends below the noise edge. */
static int lowrank_sketch(const ddct_lossy_in *in, rd_model *M, int threads, int *nonfinite, ddct_err *e)
{
    uint64_t rows = M->rows, cols = M->cols, klim = ddct_rd_rank_limit(rows, cols);
    rd_passer P = {.in = in, .rows = rows, .cols = cols, .threads = threads};
    P.rb = RD_BLOCK_VALUES / cols ? RD_BLOCK_VALUES / cols : 1;
    P.nb = rd_cdiv(rows, P.rb);
    uint64_t k = rd_min(klim, RD_SKETCH0);
    int rc = 0, first = 1;
    float *om = NULL, *y = NULL, *z = NULL, *s = NULL, *vl = NULL, *ut = NULL;
    for (;;) {
        uint64_t l = rd_min(k + RD_OVERSAMPLE, rd_min(rows, cols));
        free(om);
        free(y);
        free(z);
        free(s);
        free(vl);
        free(ut);
        om = malloc((size_t)(cols * l) * sizeof *om);
        y = malloc((size_t)(rows * l) * sizeof *y);
        z = malloc((size_t)(cols * l) * sizeof *z);
        s = malloc((size_t)l * sizeof *s);
        vl = malloc((size_t)(l * l) * sizeof *vl);
        ut = malloc((size_t)(l * cols) * sizeof *ut);
        if (!om || !y || !z || !s || !vl || !ut) {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory (sketch of %llu)", (unsigned long long)l);
            break;
        }
        for (uint64_t i = 0; i < cols * l; i++) om[i] = gauss_at(l, i);
        double e2 = 0, a1 = 0;
        rc = pass_sketch(&P, om, l, y, first ? &e2 : NULL, &a1, nonfinite, e);
        if (rc || *nonfinite) break;
        if (first) {
            M->energy = e2;
            M->mean_abs = a1 / (double)M->n;
            first = 0;
        }
        rc = orth_rows(y, rows, l, e);
        if (!rc) rc = pass_transpose(&P, y, l, z, nonfinite, e);
        if (rc || *nonfinite) break;
        /* z = B^T (cols x l) = V S U_b^T: its thin SVD gives V (the "u" side, cols long) and U_b */
        rc = ddct_svd_thin(z, cols, l, s, vl, ut, e);
        if (rc) break;
        /* signal: triplets above the noise edge of what the first k leave */
        double left = M->energy;
        for (uint64_t i = 0; i < k; i++) left -= (double)s[i] * s[i];
        double sigma = left > 0 ? sqrt(left / (double)(rows * cols)) : 0;
        double edge = sigma * (sqrt((double)rows) + sqrt((double)cols));
        uint64_t sig = 0;
        while (sig < k && s[sig] > 1.05 * edge) sig++;
        if (sig == k && k < klim) {
            k = rd_min(klim, 4 * k);
            continue;
        }
        /* u_i = Q U_b[:, i] (rows), v_i = ut row i (cols); keep k */
        M->s = malloc((size_t)k * sizeof *M->s);
        M->u = malloc((size_t)(k * rows) * sizeof *M->u);
        M->v = malloc((size_t)(k * cols) * sizeof *M->v);
        if (!M->s || !M->u || !M->v) {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
            break;
        }
        for (uint64_t i = 0; i < k; i++) {
            M->s[i] = s[i] > 0 && isfinite(s[i]) ? s[i] : 0;
            for (uint64_t j = 0; j < cols; j++) M->v[i * cols + j] = ut[j * l + i];
        }
        /* U (rows x k, column-major) = Q (row-major rows x l) x U_b (l x k, vectors contiguous in vl) */
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)rows, (int)k, (int)l, 1.0f, y, (int)l, vl, (int)l,
                    0.0f, M->u, (int)rows);
        M->k = k;
        break;
    }
    free(om);
    free(y);
    free(z);
    free(s);
    free(vl);
    free(ut);
    return rc;
}

/* Candidate ranks: every listed rank up to k for small tensors; for large ones a few around the
 * number of triplets above the noise edge. */
static void choose_cands(rd_model *M, int small)
{
    M->nr = 0;
    if (small || M->k <= 8) {
        for (size_t i = 0; i < NRANK && rank_cands[i] <= M->k && M->nr < RD_NRC; i++) M->rank[M->nr++] = rank_cands[i];
        return;
    }
    /* above-edge count from the energy left over */
    double left = M->energy;
    for (uint64_t i = 0; i < M->k; i++) left -= (double)M->s[i] * M->s[i];
    double sigma = left > 0 ? sqrt(left / (double)(M->rows * M->cols)) : 0;
    double edge = sigma * (sqrt((double)M->rows) + sqrt((double)M->cols));
    uint64_t sig = 0;
    while (sig < M->k && M->s[sig] > 1.05 * edge) sig++;
    uint64_t want[6] = {0, sig / 4, sig / 2, sig, 2 * sig, M->k};
    for (int w = 0; w < 6; w++) {
        uint64_t r = rd_min(want[w], M->k), best = 0;
        for (size_t i = 0; i < NRANK && rank_cands[i] <= M->k; i++)
            if ((rank_cands[i] > r ? rank_cands[i] - r : r - rank_cands[i]) < (best > r ? best - r : r - best))
                best = rank_cands[i];
        int dup = 0;
        for (int j = 0; j < M->nr; j++) dup |= M->rank[j] == best;
        if (!dup) M->rank[M->nr++] = best;
    }
    /* ascending (the residuals are built incrementally) */
    for (int i = 1; i < M->nr; i++)
        for (int j = i; j > 0 && M->rank[j - 1] > M->rank[j]; j--) {
            uint64_t t = M->rank[j];
            M->rank[j] = M->rank[j - 1];
            M->rank[j - 1] = t;
        }
}

/* Residual statistics on the sampled strips (16 rows of the view each) and tiles. */
static int residual_stats(const ddct_lossy_in *in, rd_model *M, int threads, int *nonfinite, ddct_err *e)
{
    const int p = RD_P;
    uint64_t rows = M->rows, cols = M->cols, W = rd_cdiv(cols, p) * p, nstrips = rd_cdiv(rows, p);
    uint64_t tiles_row = W / p, all = nstrips * tiles_row * p * p;
    M->tiles = all;
    /* strips every sstride-th, tiles within a strip every tstride-th (offset by strip) */
    uint64_t sstride = 1, tstride = 1;
    if (all > RD_STAT_ALL) {
        uint64_t want_tiles = RD_STAT_SAMPLE / (uint64_t)(p * p), tot = nstrips * tiles_row;
        uint64_t f = tot / want_tiles ? tot / want_tiles : 1;
        sstride = (uint64_t)sqrt((double)f);
        if (sstride < 1) sstride = 1;
        if (sstride > nstrips) sstride = nstrips;
        tstride = f / sstride ? f / sstride : 1;
        if (tstride > tiles_row) tstride = tiles_row;
    }
    uint64_t nsamp = rd_cdiv(nstrips, sstride);
    size_t nh = (size_t)M->nr * 2 * RD_NB;
    ddct_xform *xf = NULL;
    FORWARD_IF_ERROR(ddct_xform_create(&xf, DDCT_TRANSFORM_DCT, p, DDCT_WAVELET_HAAR, 1, e));
    uint8_t bm[RD_P * RD_P];
    ddct_rd_bandmap(p, bm);
    uint64_t sampled = 0;
    int failed = 0;
    rd_ioerr io = {0};
    int nthr = rd_threads(threads);
    rd_dense **part = calloc((size_t)nthr, sizeof *part);
    if (!part) failed = 1;
#pragma omp parallel num_threads(nthr) if (nsamp > 1 && !failed)
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        rd_dense *H = rd_zalloc(nh * sizeof *H);
        float *x = malloc((size_t)(p * cols) * DDCT_DELTA_SRC_ROOM * sizeof *x);
        float *t = malloc(((size_t)(p * p) * 2 + ddct_xform_scratch_floats(xf)) * sizeof *t);
        if (!H || !x || !t) {
#pragma omp atomic write
            failed = 1;
        }
        part[me] = H;
        uint64_t my = 0;
#pragma omp for schedule(dynamic)
        for (uint64_t si = 0; si < nsamp; si++) {
            if (!H || !x || !t || failed) continue;
            uint64_t sidx = si * sstride, r0 = sidx * (uint64_t)p, nr = rd_min((uint64_t)p, rows - r0);
            if (!read_rows(in, cols, r0, nr, x, &io)) {
#pragma omp atomic write
                failed = 2;
                continue;
            }
            for (uint64_t tc = sidx % tstride; tc < tiles_row; tc += tstride) {
                float *sp = t, *co = t + p * p;
                for (int u = 0; u < p; u++)
                    for (int v = 0; v < p; v++) {
                        uint64_t c = tc * (uint64_t)p + (uint64_t)v;
                        sp[u * p + v] = (uint64_t)u < nr && c < cols ? x[(uint64_t)u * cols + c] : 0.0f;
                    }
                uint64_t done = 0;
                for (int ri = 0; ri < M->nr; ri++) {
                    /* subtract triplets [done, rank) */
                    for (uint64_t i = done; i < M->rank[ri]; i++) {
                        const float *ui = M->u + i * rows + r0, *vi = M->v + i * cols + tc * (uint64_t)p;
                        float si_ = M->s[i];
                        for (int u = 0; u < p && (uint64_t)u < nr; u++) {
                            float a = ui[u] * si_;
                            for (int v = 0; v < p && tc * (uint64_t)p + (uint64_t)v < cols; v++) sp[u * p + v] -= a * vi[v];
                        }
                    }
                    done = M->rank[ri];
                    rd_dense *h0 = &H[((size_t)ri * 2) * RD_NB];
                    for (int i = 0; i < p * p; i++) hist_add(h0, sp[i]);
                    ddct_xform_forward(xf, sp, co, co + p * p);
                    rd_dense *h1 = &H[((size_t)ri * 2 + 1) * RD_NB];
                    for (int i = 0; i < p * p; i++) hist_add(&h1[bm[i]], co[i]);
                }
                my += (uint64_t)(p * p);
            }
        }
#pragma omp atomic
        sampled += my;
        free(x);
        free(t);
    }
    if (!failed) { /* the merged counts (integers: any partition gives the same), kept compact */
        M->rh = calloc(nh, sizeof *M->rh);
        if (!M->rh) failed = 1;
        for (int th = 1; th < nthr && !failed; th++)
            for (size_t i = 0; i < nh && part[th]; i++) hist_merge(&part[0][i], &part[th][i]);
        for (size_t i = 0; i < nh && !failed; i++)
            if (hist_compact(&part[0][i], &M->rh[i])) failed = 1;
    }
    for (int th = 0; part && th < nthr; th++) free(part[th]);
    free(part);
    ddct_xform_free(xf);
    if (io.set) failed = failed == 1 ? 1 : 0;
    FORWARD_IF_ERROR(io_check(&io, e));
    if (failed == 2) *nonfinite = 1;
    RETURN_ERROR_IF(failed == 1, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    M->scale = sampled ? (double)all / (double)sampled : 1.0;
    return 0;
}

static int factor_stats(rd_model *M, ddct_err *e)
{
    if (!M->k) return 0;
    M->fh = calloc((size_t)(2 * M->k), sizeof *M->fh);
    rd_dense *d = malloc(sizeof *d);
    int failed = !M->fh || !d;
    for (uint64_t i = 0; i < M->k && !failed; i++) {
        float sq = sqrtf(M->s[i]);
        for (int w = 0; w < 2 && !failed; w++) {
            uint64_t len = w ? M->cols : M->rows;
            const float *x = w ? M->v + i * M->cols : M->u + i * M->rows;
            memset(d, 0, sizeof *d);
            for (uint64_t j = 0; j < len; j++) hist_add(d, x[j] * sq);
            failed = hist_compact(d, &M->fh[2 * i + (uint64_t)w]) != 0;
        }
    }
    free(d);
    RETURN_ERROR_IF(failed, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    return 0;
}

/* The whole analysis; *nonfinite = 1 (nothing analysed) when the source saw a non-finite value. */
static int model_build(const ddct_lossy_in *in, rd_model *M, int *nonfinite, ddct_err *e)
{
    memset(M, 0, sizeof *M);
    *nonfinite = 0;
    M->uw = 1;
    M->exact = 1;
    M->n = in->nelem;
    ddct_rd_view(in->ndim, in->shape, in->nelem, &M->rows, &M->cols);
    int threads = rd_threads(in->threads), rc;
    int small = M->rows * M->cols <= RD_EXACT_MAX;
    int prev = ddct_blas_serial_begin();
    if (ddct_rd_rank_limit(M->rows, M->cols) == 0 || M->rows > INT_MAX || M->cols > INT_MAX)
        rc = lowrank_exact(in, M, nonfinite, e); /* (k = 0: only the sums) */
    else
        rc = small ? lowrank_exact(in, M, nonfinite, e) : lowrank_sketch(in, M, threads, nonfinite, e);
    ddct_blas_serial_end(prev);
    /* ||delta|| beyond 2^100: DCT coefficients, low-rank sums and reconstructions may overflow
     * float (NaN and Inf from finite values): such a tensor is not coded, as if not finite */
    if (!rc && !*nonfinite && !(M->energy <= RD_MAX_NORM2)) *nonfinite = 1;
    if (!rc && !*nonfinite) {
        choose_cands(M, small);
        rc = residual_stats(in, M, threads, nonfinite, e);
    }
    if (!rc && !*nonfinite) rc = factor_stats(M, e);
    if (rc || *nonfinite) model_free(M);
    return rc;
}

/* ------------------------------------------------------------------ a row sample (rate plans) */

/* Every f-th block of RD_SUB_ROWS whole rows of the view, read as a tensor of its own. */
#define RD_SUB_ROWS 16
#define RD_PLAN_VALUES ((uint64_t)1 << 20) /* a plan's model of a large tensor: about this many values, */
#define RD_PLAN_ROWS 512                   /* and at least this many rows */
typedef struct {
    const ddct_lossy_in *in;
    uint64_t cols, f;
} sub_src_t;

static const float *sub_read(void *opaque, uint64_t first, uint64_t n, float *buf, int threads, ddct_err *e)
{
    (void)threads;
    const sub_src_t *S = opaque;
    uint64_t bl = RD_SUB_ROWS * S->cols;
    for (uint64_t done = 0; done < n;) {
        uint64_t v = first + done, off = v % bl, m = rd_min(n - done, bl - off);
        const float *p = S->in->delta ? S->in->delta + (v / bl) * S->f * bl + off
                                      : S->in->src(S->in->src_opaque, (v / bl) * S->f * bl + off, m, buf + done, 1, e);
        if (!p) return NULL;
        if (p != buf + done) memcpy(buf + done, p, (size_t)m * sizeof *buf);
        done += m;
    }
    return buf;
}

/* The model of a row sample of in, scaled to stand for the whole tensor: singular values by
 * sqrt(rows / sampled rows), u vectors by the inverse (their counts weighted by the ratio),
 * residual counts by the ratio of values. */
static int model_build_sampled(const ddct_lossy_in *in, rd_model *M, int *nonfinite, ddct_err *e)
{
    uint64_t rows, cols;
    ddct_rd_view(in->ndim, in->shape, in->nelem, &rows, &cols);
    /* about RD_PLAN_VALUES values, and at least RD_PLAN_ROWS rows */
    uint64_t want = rd_min(rows, RD_PLAN_VALUES / cols > RD_PLAN_ROWS ? RD_PLAN_VALUES / cols : RD_PLAN_ROWS);
    uint64_t f = want ? rows / want : 0, full = in->nelem / cols / RD_SUB_ROWS; /* blocks of whole rows */
    if (f < 2 || full < 2 * f) return model_build(in, M, nonfinite, e);
    sub_src_t S = {in, cols, f};
    uint64_t nb = rd_cdiv(full, f), shape[2] = {nb * RD_SUB_ROWS, cols};
    ddct_lossy_in sub = *in;
    sub.delta = NULL;
    sub.src = sub_read;
    sub.src_opaque = &S;
    sub.ndim = 2;
    sub.shape = shape;
    sub.nelem = shape[0] * cols;
    FORWARD_IF_ERROR(model_build(&sub, M, nonfinite, e));
    if (*nonfinite) return 0;
    double ratio = (double)rows / (double)shape[0];
    for (uint64_t i = 0; i < M->k; i++) {
        M->s[i] *= (float)sqrt(ratio);
        float us = (float)(1 / sqrt(ratio));
        for (uint64_t j = 0; j < M->rows; j++) M->u[i * M->rows + j] *= us;
    }
    hists_free(M->fh, (size_t)(2 * M->k));
    M->fh = NULL;
    int rc = factor_stats(M, e);
    if (rc) {
        model_free(M);
        return rc;
    }
    M->uw = ratio;
    double vr = (double)in->nelem / (double)sub.nelem;
    M->energy *= vr;
    M->scale *= vr;
    M->rows = rows;
    M->n = in->nelem;
    M->tiles = rd_cdiv(rows, RD_P) * RD_P * rd_cdiv(cols, RD_P) * RD_P;
    return 0;
}

/* ------------------------------------------------------------------ choices at a step */

typedef struct {
    int ri, dct;
    uint64_t r;
    int combo[RD_NB];
    uint8_t t1[RD_NB], t2[RD_NB];
    double bytes, dist; /* estimated record bytes and squared error */
} rd_choice;

/* A band's step, bf16; kept within [FLT_MIN, the largest finite bf16]: a subnormal step has no
 * finite reciprocal (the quantizers multiply by 1 / step), and inf is not a valid stored step. */
static float band_step(double step, int combo)
{
    uint16_t h = ddct_f32_to_bf16((float)step * mult_set[combo / NRHO]);
    if (!rd_bf16_ok(h)) h = 0x7f7f;
    else if (h < 0x0080) h = 0x0080;
    return ddct_bf16_to_f32(h);
}

/* Bits a value costs, quantized with step st and rounding offset rho, when the values are
 * Gaussian with standard deviation sigma: the entropy of the symbols (both signs). A factor
 * vector's own histogram is a few dozen values on small tensors, whose empirical entropy is far
 * below what the coder's shared tables pay; the Gaussian of the vector's scale is not. */
static double gauss_bits(double sigma, double st, double rho)
{
    if (!(sigma > 0) || !(st > 0)) return 0;
    double z = st / (sigma * sqrt(2.0));
    if (sigma > 64 * st) return log2(sigma / st * 4.132731354122493); /* sqrt(2 pi e) */
    double prev = erf((1 - rho) * z), h = prev > 0 ? -prev * log2(prev) : 0;
    for (int k = 1; k < 4096; k++) {
        double cur = erf((k + 1 - rho) * z), pk = 0.5 * (cur - prev); /* each sign */
        if (pk > 0) h -= 2 * pk * log2(pk);
        prev = cur;
        if (1 - cur < 1e-12) break;
    }
    return h;
}

/* Factor triplet i at step D: its estimated bits and the error of its quantized product. */
static void factor_est(const rd_model *M, uint64_t i, double D, double *bits, double *dist)
{
    float sq = sqrtf(M->s[i]);
    float stf = sq > 0 ? (float)(D / sq) : 0;
    uint16_t h = ddct_f32_to_bf16(stf);
    if (!rd_bf16_ok(h) || !(ddct_bf16_to_f32(h) > 0)) h = 0x7f00;
    double st = ddct_bf16_to_f32(h);
    rd_est a, b;
    hist_est(&M->fh[2 * i], M->uw, st, RD_FRHO, 0, 0, &a);
    hist_est(&M->fh[2 * i + 1], 1.0, st, RD_FRHO, 0, 0, &b);
    double s = M->s[i];
    double d = s * s - 2 * a.dot * b.dot + a.rr * b.rr;
    *dist = d > 0 ? d : 0;
    /* u_i, v_i have unit norm: their values' scale is sqrt(s / length) */
    double ru = (double)M->rows, rv = (double)M->cols;
    *bits = ru * gauss_bits(sqrt(s / ru), st, RD_FRHO) + rv * gauss_bits(sqrt(s / rv), st, RD_FRHO) + 32;
}

/* Candidate (rank index ri, transform dct) at step D with the band quantizers chosen (all_combos
 * = 0: only RD_COMBO0); fbits, fdist: its factors' bits and error. Returns J. */
static double eval_cand(const rd_model *M, int ri, int dct, double D, double fbits, double fdist, int all_combos,
                        rd_choice *c)
{
    double lambda = RD_LAMBDA * D * D, units = (double)rd_cdiv(M->tiles, RD_UNIT), per_unit = M->scale / units;
    memset(c, 0, sizeof *c);
    c->ri = ri;
    c->r = M->rank[ri];
    c->dct = dct;
    int nb = dct ? RD_NB : 1;
    double bits = 0, dist = 0;
    for (int b = 0; b < nb; b++) {
        const rd_hist *h = rh_at(M, ri, dct, b);
        double bj = INFINITY;
        rd_est bo;
        memset(&bo, 0, sizeof bo);
        int bk = RD_COMBO0;
        for (int k = all_combos ? 0 : RD_COMBO0; k < (all_combos ? NCOMBO : RD_COMBO0 + 1); k++) {
            rd_est o;
            hist_est(h, 1.0, band_step(D, k), rho_set[k % NRHO], 1, per_unit, &o);
            double j = o.dist + lambda * o.rate;
            if (j < bj) {
                bj = j;
                bo = o;
                bk = k;
            }
        }
        c->combo[b] = bk;
        c->t1[b] = bo.t1;
        c->t2[b] = bo.t2;
        bits += bo.rate * M->scale + bo.tab_bits * units;
        dist += bo.dist * M->scale;
    }
    /* units: a length and a state each; the parameters */
    bits += fbits + 8.0 * (6 + 16 + 4.0 * nb) + 8.0 * 6 * units;
    dist += fdist;
    c->bytes = bits / 8;
    c->dist = dist;
    return dist + lambda * bits;
}

/* Best rank, transform and band quantizers at step D (all_combos = 0: only RD_COMBO0). Large
 * tensors: every candidate with RD_COMBO0, then every quantizer for the best two only. */
static int choose_exact(const rd_model *M, double D, rd_choice *best);

static void model_choose(const rd_model *M, double D, int all_combos, rd_choice *best)
{
    if (all_combos && M->delta && M->exact && !choose_exact(M, D, best)) return;
    memset(best, 0, sizeof *best);
    double fb[RD_NRC], fd[RD_NRC], J[RD_NRC][2], bestJ = INFINITY;
    double fbits = 0, fdist = 0; /* factor bits and error by rank: cumulative over triplets */
    uint64_t done = 0;
    int prune = all_combos && M->tiles > RD_STAT_ALL;
    for (int ri = 0; ri < M->nr; ri++) {
        for (uint64_t i = done; i < M->rank[ri]; i++) {
            double b, d;
            factor_est(M, i, D, &b, &d);
            fbits += b;
            fdist += d;
        }
        done = M->rank[ri];
        fb[ri] = fbits;
        fd[ri] = fdist;
        for (int dct = 0; dct < 2; dct++) {
            rd_choice c;
            J[ri][dct] = eval_cand(M, ri, dct, D, fbits, fdist, all_combos && !prune, &c);
            if (J[ri][dct] < bestJ) {
                bestJ = J[ri][dct];
                *best = c;
            }
        }
    }
    if (!prune) return;
    /* the two best candidates with every quantizer */
    int b1 = -1, b2 = -1;
    for (int i = 0; i < 2 * M->nr; i++) {
        double j = J[i / 2][i % 2];
        if (b1 < 0 || j < J[b1 / 2][b1 % 2]) {
            b2 = b1;
            b1 = i;
        } else if (b2 < 0 || j < J[b2 / 2][b2 % 2]) {
            b2 = i;
        }
    }
    bestJ = INFINITY;
    for (int t = 0; t < 2; t++) {
        int i = t ? b2 : b1;
        if (i < 0) continue;
        rd_choice c;
        double j = eval_cand(M, i / 2, i % 2, D, fb[i / 2], fd[i / 2], 1, &c);
        if (j < bestJ) {
            bestJ = j;
            *best = c;
        }
    }
}

/* Symbols are clipped at RD_QMAX: at a step finer than the largest value seen over RD_QMAX a
 * choice's error grows with every finer step (a constant delta: all of it clipped), while its
 * bytes do not. The finest step at which choice c clips none of the values its statistics saw
 * (residual bands; factor vectors), with a margin for the bf16 rounding of the steps. */
static double clip_floor(const rd_model *M, const rd_choice *c)
{
    double f = 0, lim = RD_QMAX - 1;
    for (int b = 0; b < (c->dct ? RD_NB : 1); b++) {
        const rd_hist *h = rh_at(M, c->ri, c->dct, b);
        if (h->hi <= h->lo) continue;
        double mx = fmin(hedge(h->hi), FLT_MAX);
        f = fmax(f, mx / (mult_set[c->combo[b] / NRHO] * lim));
    }
    for (uint64_t i = 0; i < c->r && M->fh; i++) {
        double sq = sqrt((double)M->s[i]);
        for (int w = 0; w < 2; w++) {
            const rd_hist *h = &M->fh[2 * i + (uint64_t)w];
            if (h->hi > h->lo) f = fmax(f, fmin(hedge(h->hi), FLT_MAX) * sq / lim);
        }
    }
    return f * 1.02;
}

/* model_choose at step D, or at the coarser step where its choice clips nothing; returns the step. */
static double choose_unclipped(const rd_model *M, double D, int all_combos, rd_choice *best)
{
    model_choose(M, D, all_combos, best);
    for (int it = 0; it < 4; it++) {
        double f = clip_floor(M, best);
        if (!(f > D) || !isfinite(f)) break;
        D = f;
        model_choose(M, D, all_combos, best);
    }
    return D;
}

/* ------------------------------------------------------------------ the final encode */

typedef struct {
    uint64_t r;
    int16_t *fq;     /* (rows + cols) * r quantized factor values: per triplet a_i then b_i */
    uint16_t *fstep; /* bf16 step per triplet */
    uint8_t *fcls;   /* class per vector (2 per triplet) */
    float *uc, *vc;  /* dequantized factors */
} rd_factors;

static void factors_free(rd_factors *F)
{
    free(F->fq);
    free(F->fstep);
    free(F->fcls);
    free(F->uc);
    free(F->vc);
}

/* Quantize the first r triplets at step D. */
static int quant_factors(const rd_model *M, uint64_t r, double D, rd_factors *F, ddct_err *e)
{
    memset(F, 0, sizeof *F);
    F->r = r;
    if (!r) return 0;
    size_t rows = (size_t)M->rows, cols = (size_t)M->cols;
    F->fq = malloc((rows + cols) * (size_t)r * sizeof *F->fq);
    F->fstep = malloc((size_t)r * sizeof *F->fstep);
    F->fcls = malloc(2 * (size_t)r);
    F->uc = malloc(rows * (size_t)r * sizeof *F->uc);
    F->vc = malloc(cols * (size_t)r * sizeof *F->vc);
    if (!F->fq || !F->fstep || !F->fcls || !F->uc || !F->vc) {
        factors_free(F);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "rd codec: out of memory (rank %llu)", (unsigned long long)r);
    }
    size_t off = 0;
    for (size_t i = 0; i < (size_t)r; i++) {
        float sq = sqrtf(M->s[i]);
        float stf = sq > 0 ? (float)(D / sq) : 0;
        uint16_t h = ddct_f32_to_bf16(stf);
        if (!rd_bf16_ok(h) || !(ddct_bf16_to_f32(h) > 0)) h = 0x7f00; /* huge: everything rounds to 0 */
        F->fstep[i] = h;
        float st = ddct_bf16_to_f32(h);
        for (int which = 0; which < 2; which++) {
            size_t len = which ? cols : rows;
            const float *src = which ? M->v + i * cols : M->u + i * rows;
            float *dst = which ? F->vc + i * cols : F->uc + i * rows;
            int16_t *qq = F->fq + off;
            uint64_t sum = 0;
            for (size_t j = 0; j < len; j++) {
                float x = src[j] * sq / st;
                int q = (int)(fabsf(x) + RD_FRHO);
                if (q > RD_QMAX) q = RD_QMAX;
                if (x < 0) q = -q;
                qq[j] = (int16_t)q;
                dst[j] = (float)q * st;
                sum += (uint64_t)abs(q);
            }
            uint64_t v = 2 * sum / len;
            int c = 0;
            while (v && c < RD_FCTX - 1) {
                c++;
                v >>= 1;
            }
            F->fcls[2 * i + (size_t)which] = (uint8_t)c;
            off += len;
        }
    }
    return 0;
}

/* The factor stream. A vector's class only names its context (the decoder does not interpret
 * it), so classes are merged (c >> shift) when fewer tables cost less: the merge and the
 * precision with the fewest bytes are kept, and F->fcls is rewritten to the labels stored. */
static int encode_factors(const rd_model *M, rd_factors *F, ddct_buf *data, ddct_err *e)
{
    if (!F->r) return 0;
    size_t rows = (size_t)M->rows, cols = (size_t)M->cols, tot = (rows + cols) * (size_t)F->r;
    uint16_t *sym = malloc(tot * sizeof *sym);
    uint8_t *ctx = malloc(tot);
    ddct_buf blob, best;
    ddct_buf_init(&blob);
    ddct_buf_init(&best);
    int rc = 0, bshift = 0, have = 0;
    if (!sym || !ctx) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto done;
    }
    for (size_t j = 0; j < tot; j++) sym[j] = rd_zigzag(F->fq[j]);
    static const int shifts[] = {0, 1, 2, 4}, pbs[] = {15, 12};
    for (size_t si = 0; si < 4 && !rc; si++)
        for (size_t pi = 0; pi < 2 && !rc; pi++) {
            size_t off = 0;
            for (size_t i = 0; i < (size_t)F->r; i++)
                for (int w = 0; w < 2; w++) {
                    size_t len = w ? cols : rows;
                    memset(ctx + off, F->fcls[2 * i + (size_t)w] >> shifts[si], len);
                    off += len;
                }
            blob.len = 0;
            rc = (tot >= RD_X4_MIN ? ddct_rans_encode_x4 : ddct_rans_encode)(sym, ctx, tot, RD_FCTX >> shifts[si],
                                                                           pbs[pi], &blob, e);
            if (!rc && (!have || blob.len < best.len)) {
                have = 1;
                ddct_buf t = best;
                best = blob;
                blob = t;
                bshift = shifts[si];
            }
        }
    if (!rc) {
        for (size_t i = 0; i < 2 * (size_t)F->r; i++) F->fcls[i] = (uint8_t)(F->fcls[i] >> bshift);
        ddct_buf_varint(data, best.len);
        ddct_buf_put(data, best.p, best.len);
    }
done:
    ddct_buf_free(&blob);
    ddct_buf_free(&best);
    free(sym);
    free(ctx);
    return rc;
}

static inline int quant_one(float c, float inv, float rho)
{
    float a = fabsf(c) * inv + rho;
    int q = a < (float)RD_QMAX ? (int)a : RD_QMAX;
    return c < 0 ? -q : q;
}

/* The best quantizer (combo) for the n coefficients v of one band at step D, by J from their
 * exact statistics (zeroth-order entropy plus signs; centroid offsets); o: its numbers. hq:
 * RD_QMAX + 1 counters of scratch, all zero (and left so). */
static int band_exact(const float *v, size_t n, double D, double lambda, int all_combos, uint64_t *hq, rd_est *o)
{
    /* One pass per step multiplier: each value falls in a bin (floor(a), the rounding offsets its
     * fraction reaches), whose sums give every offset's statistics at once (values with
     * a >= RD_XK - 1 one by one). */
#define RD_XK 64
    double bestJ = INFINITY;
    int best = RD_COMBO0;
    memset(o, 0, sizeof *o);
    if (!n) return best;
    float thr[NRHO]; /* ascending: rho_set is descending */
    for (int ri = 0; ri < NRHO; ri++) thr[ri] = 1.0f - rho_set[ri];
    static const int nb5 = NRHO + 1;
    double bn[RD_XK][NRHO + 1], bsa[RD_XK][NRHO + 1], bsaa[RD_XK][NRHO + 1], bsxx[NRHO + 1];
    float *big = malloc(2 * n * sizeof *big); /* a and |x| of the large ones */
    if (!big) return best;
    for (int mi = 0; mi < (all_combos ? NMULT : 1); mi++) {
        float st = band_step(D, mi * NRHO), inv = 1.0f / st;
        memset(bn, 0, sizeof bn);
        memset(bsa, 0, sizeof bsa);
        memset(bsaa, 0, sizeof bsaa);
        memset(bsxx, 0, sizeof bsxx);
        size_t nbig = 0;
        for (size_t i = 0; i < n; i++) {
            float x = fabsf(v[i]), a = x * inv;
            if (!(a < (float)(RD_XK - 1))) {
                big[2 * nbig] = a;
                big[2 * nbig++ + 1] = x;
                continue;
            }
            int k = (int)a;
            float f = a - (float)k;
            int jj = (f >= thr[0]) + (f >= thr[1]) + (f >= thr[2]) + (f >= thr[3]);
            bn[k][jj]++;
            bsa[k][jj] += a;
            bsaa[k][jj] += (double)a * a;
            if (!k) bsxx[jj] += (double)x * x;
        }
        for (int ri = all_combos ? 0 : RD_COMBO0 % NRHO; ri < (all_combos ? NRHO : RD_COMBO0 % NRHO + 1); ri++) {
            double d0 = 0, n1 = 0, s1 = 0, ss1 = 0, n2 = 0, s2 = 0, ss2 = 0;
            int qmax = 0;
            for (int k = 0; k < RD_XK; k++)
                for (int jj = 0; jj < nb5; jj++) {
                    double c = bn[k][jj];
                    if (!c) continue;
                    int q = k + (jj > ri);
                    hq[q] += (uint64_t)c;
                    qmax = q > qmax ? q : qmax;
                    if (!q) {
                        d0 += bsxx[jj];
                        continue;
                    }
                    double e1 = bsa[k][jj] - q * c, e2 = bsaa[k][jj] - 2.0 * q * bsa[k][jj] + (double)q * q * c;
                    if (q == 1) {
                        n1 += c;
                        s1 += e1;
                        ss1 += e2;
                    } else {
                        n2 += c;
                        s2 += e1;
                        ss2 += e2;
                    }
                }
            for (size_t b = 0; b < nbig; b++) {
                float a = big[2 * b];
                float ar = a + rho_set[ri];
                int q = ar < (float)RD_QMAX ? (int)ar : RD_QMAX; /* also inf and NaN (a step of 0) */
                hq[q]++;
                qmax = q > qmax ? q : qmax;
                double ev = (double)a - q;
                n2++;
                s2 += ev;
                ss2 += ev * ev;
            }
            double th[2] = {0, 0}, dist = d0;
            const double nn[2] = {n1, n2}, ss_[2] = {s1, s2}, sq[2] = {ss1, ss2};
            for (int g = 0; g < 2; g++) {
                if (!nn[g]) continue;
                double t = floor(-ss_[g] / nn[g] * 256 + 0.5) / 256;
                t = t < 0 ? 0 : t > 255.0 / 256 ? 255.0 / 256 : t;
                th[g] = t;
                dist += (double)st * st * (sq[g] + 2 * t * ss_[g] + nn[g] * t * t);
            }
            double rate = n1 + n2, tot = (double)n, distinct = 0;
            for (int q = 0; q <= qmax; q++)
                if (hq[q]) {
                    rate += (double)hq[q] * log2(tot / (double)hq[q]);
                    distinct += q ? 2 : 1;
                    hq[q] = 0;
                }
            double J = dist + lambda * rate;
            if (J < bestJ) {
                bestJ = J;
                best = mi * NRHO + ri;
                o->rate = rate;
                o->dist = dist;
                o->t1 = (uint8_t)lrint(th[0] * 256);
                o->t2 = (uint8_t)lrint(th[1] * 256);
                o->qmax = qmax;
                o->tab_bits = 8 * (2 + 1.5 * distinct);
            }
        }
    }
    free(big);
    return best;
#undef RD_XK
}

/* The coefficients of the plane of x (rows x cols, row-major), by band: vals[off[b] ..
 * off[b] + cnt[b]) for band b. vals: rows_pad * cols_pad floats; tile: 3 p^2 + scratch floats. */
static void plane_bands(const float *x, uint64_t rows, uint64_t cols, int dct, const ddct_xform *xf, const uint8_t *bm,
                        float *vals, size_t *off, size_t *cnt, float *tile)
{
    int p = RD_P;
    size_t W = dct ? (size_t)rd_cdiv(cols, p) * p : cols, H = dct ? (size_t)rd_cdiv(rows, p) * p : rows;
    size_t fill[RD_NB] = {0};
    memset(cnt, 0, RD_NB * sizeof *cnt);
    memset(off, 0, RD_NB * sizeof *off);
    if (!dct) {
        cnt[0] = H * W;
        memcpy(vals, x, H * W * sizeof *vals);
        return;
    }
    for (int i = 0; i < p * p; i++) cnt[bm[i]] += (H / (size_t)p) * (W / (size_t)p);
    for (int b = 1; b < RD_NB; b++) off[b] = off[b - 1] + cnt[b - 1];
    for (size_t sr = 0; sr < H; sr += (size_t)p)
        for (size_t tc = 0; tc < W; tc += (size_t)p) {
            for (int u = 0; u < p; u++)
                for (int v = 0; v < p; v++) {
                    size_t row = sr + (size_t)u, col = tc + (size_t)v;
                    tile[u * p + v] = row < rows && col < cols ? x[row * cols + col] : 0.0f;
                }
            ddct_xform_forward(xf, tile, tile + p * p, tile + 2 * p * p);
            for (int i = 0; i < p * p; i++) vals[off[bm[i]] + fill[bm[i]]++] = tile[p * p + i];
        }
}

/* Tiny tensors (the model keeps their delta): the choices from exact statistics. */
typedef struct {
    float *res, *lr, *vals, *tile;
    uint64_t *hq;
    ddct_xform *xf;
    uint8_t bm[RD_P * RD_P];
} exact_ws;

/* The residual of rank index ri at step D (factors quantized) into w->res; *fbits: the factors'
 * bits (zeroth-order entropy of their symbols in each class, 16 bits a table, 32 bits a
 * triplet's side). 0, or -1 when out of memory. */
static int exact_residual(const rd_model *M, int ri, double D, exact_ws *w, double *fbits)
{
    uint64_t rows = M->rows, cols = M->cols;
    rd_factors F;
    ddct_err e;
    if (quant_factors(M, M->rank[ri], D, &F, &e)) return -1;
    double fb = 32.0 * (double)F.r;
    if (F.r) {
        uint64_t hist[RD_FCTX][65];
        memset(hist, 0, sizeof hist);
        size_t off = 0;
        for (size_t i = 0; i < (size_t)F.r; i++)
            for (int wv = 0; wv < 2; wv++) {
                size_t len = (size_t)(wv ? cols : rows);
                uint8_t c = F.fcls[2 * i + (size_t)wv];
                for (size_t j = 0; j < len; j++) {
                    uint16_t z = rd_zigzag(F.fq[off + j]);
                    hist[c][z < 64 ? z : 64]++;
                    if (z >= 64) fb += 14;
                }
                off += len;
            }
        for (int c = 0; c < RD_FCTX; c++) {
            uint64_t tot = 0;
            for (int z = 0; z <= 64; z++) tot += hist[c][z];
            if (!tot) continue;
            fb += 16;
            for (int z = 0; z <= 64; z++)
                if (hist[c][z]) fb += (double)hist[c][z] * log2((double)tot / (double)hist[c][z]);
        }
    }
    ddct_rd_lowrank_rows(F.uc, F.vc, rows, cols, F.r, 0, rows, w->lr);
    for (uint64_t i = 0; i < rows * cols; i++) w->res[i] = M->delta[i] - w->lr[i];
    factors_free(&F);
    *fbits = fb;
    return 0;
}

/* J of the residual in w->res coded with or without the DCT (all_combos: every quantizer). */
static double exact_domain(const rd_model *M, int ri, int dct, double D, double fbits, int all_combos, exact_ws *w,
                           rd_choice *c)
{
    double lambda = RD_LAMBDA * D * D;
    size_t off[RD_NB], cnt[RD_NB];
    plane_bands(w->res, M->rows, M->cols, dct, w->xf, w->bm, w->vals, off, cnt, w->tile);
    memset(c, 0, sizeof *c);
    c->ri = ri;
    c->r = M->rank[ri];
    c->dct = dct;
    int nb = dct ? RD_NB : 1;
    double bits = fbits + 8.0 * (6 + 16 + 4.0 * nb + 6), dist = 0;
    for (int b = 0; b < nb; b++) {
        rd_est o;
        c->combo[b] = band_exact(w->vals + off[b], cnt[b], D, lambda, all_combos, w->hq, &o);
        c->t1[b] = o.t1;
        c->t2[b] = o.t2;
        bits += o.rate;
        dist += o.dist;
    }
    c->bytes = bits / 8;
    c->dist = dist;
    return dist + lambda * bits;
}

/* Ranks up, both transforms, every quantizer (stopping after two ranks worse than the best so
 * far). 0, or -1 (out of memory: the estimates decide). */
static int choose_exact(const rd_model *M, double D, rd_choice *best)
{
    uint64_t n = M->rows * M->cols;
    size_t pn = (size_t)(rd_cdiv(M->rows, RD_P) * RD_P * rd_cdiv(M->cols, RD_P) * RD_P);
    exact_ws w;
    memset(&w, 0, sizeof w);
    ddct_err e;
    w.res = malloc((size_t)n * sizeof *w.res);
    w.lr = malloc((size_t)n * sizeof *w.lr);
    w.vals = malloc(pn * sizeof *w.vals);
    w.hq = calloc(RD_QMAX + 1, sizeof *w.hq);
    int rc = !w.res || !w.lr || !w.vals || !w.hq || ddct_xform_create(&w.xf, DDCT_TRANSFORM_DCT, RD_P, DDCT_WAVELET_HAAR, 1, &e);
    if (!rc) rc = !(w.tile = malloc(((size_t)(3 * RD_P * RD_P) + ddct_xform_scratch_floats(w.xf)) * sizeof *w.tile));
    ddct_rd_bandmap(RD_P, w.bm);
    double bestJ = INFINITY, prevJ = INFINITY, fbits = 0;
    int worse = 0;
    for (int ri = 0; ri < M->nr && !rc && worse < 2; ri++) {
        if (exact_residual(M, ri, D, &w, &fbits)) {
            rc = -1;
            break;
        }
        double rankJ = INFINITY;
        for (int dct = 0; dct < 2; dct++) {
            rd_choice c;
            double J = exact_domain(M, ri, dct, D, fbits, 1, &w, &c);
            rankJ = fmin(rankJ, J);
            if (J < bestJ) {
                bestJ = J;
                *best = c;
            }
        }
        worse = rankJ >= prevJ ? worse + 1 : 0;
        prevJ = fmin(prevJ, rankJ);
    }
    free(w.res);
    free(w.lr);
    free(w.vals);
    free(w.hq);
    free(w.tile);
    ddct_xform_free(w.xf);
    return rc ? -1 : 0;
}

/* Per unit of the final encode: its quantized plane (kept for small tensors, whose context mode
 * is chosen by exact size), coded blob, and sums for the rescale factor and the error. */
typedef struct {
    int16_t *q;
    ddct_buf blob;
    double abs_hat, dd, dh, hh; /* sum |d^|, sum d d^, sum d d, sum d^ d^ */
} unit_out;

/* The coder writes a blob backwards from the end of a worst-case reservation and then moves it
 * down; coding into a reused per-thread buffer and keeping an exact copy (keep_unit) holds a
 * record's units in their own size, so memory does not grow with the tensor. */
static int keep_unit(const ddct_buf *scratch, ddct_buf *blob)
{
    ddct_buf_init(blob);
    ddct_buf_put(blob, scratch->p, scratch->len);
    return blob->failed;
}

static int code_unit(const rd_layout *L, const uint8_t *bm, const int16_t *q, uint64_t k, uint16_t *sym, uint8_t *ctx,
                     ddct_buf *blob, ddct_err *e)
{
    size_t m = ddct_rd_unit_symbols(L, k, bm, q, sym, ctx);
    blob->len = 0;
    int nctx = rd_ctx_count(L);
    int word = L->ver >= 3 && L->n >= RD_WORD_MIN;
    return (m < RD_X4_MIN ? ddct_rans_encode : word ? ddct_rans_encode_w : ddct_rans_encode_x4)(
        sym, nctx > 1 ? ctx : NULL, m, nctx, L->prob_bits, blob, e);
}

/* Small planes: each band's quantizer (step multiplier, rounding offset, centroid offsets)
 * chosen from the exact residual (the delta less the quantized low-rank part), as the estimates
 * are least exact on few values. Sets L's steps and offsets and combo[]. */
static int exact_quantizers(const ddct_lossy_in *in, rd_layout *L, const rd_factors *F, const ddct_xform *xf,
                            const uint8_t *bm, double D, int *combo, int *nonfinite, ddct_err *e)
{
    size_t W = (size_t)L->cols_pad, H = (size_t)L->rows_pad, cols = (size_t)L->cols, rows = (size_t)L->rows;
    size_t cnt[RD_NB] = {0};
    int p = L->p;
    float *x = malloc(rows * cols * DDCT_DELTA_SRC_ROOM * sizeof *x), *lr = malloc(rows * cols * sizeof *lr);
    float *vals = malloc(H * W * sizeof *vals), *tile = malloc(((size_t)(p * p) * 3 + ddct_xform_scratch_floats(xf)) * sizeof *tile);
    int rc = 0;
    rd_ioerr io = {0};
    if (!x || !lr || !vals || !tile) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto done;
    }
    if (!read_rows(in, cols, 0, rows, x, &io)) {
        if (!(rc = io_check(&io, e))) *nonfinite = 1;
        goto done;
    }
    ddct_rd_lowrank_rows(F->uc, F->vc, rows, cols, L->r, 0, rows, lr);
    for (size_t i = 0; i < rows * cols; i++) x[i] -= lr[i];
    size_t off[RD_NB];
    plane_bands(x, rows, cols, L->dct, xf, bm, vals, off, cnt, tile);
    double lambda = RD_LAMBDA * D * D;
    uint64_t *hq = calloc(RD_QMAX + 1, sizeof *hq);
    if (!hq) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto done;
    }
    for (int b = 0; b < L->nb; b++) {
        rd_est o;
        combo[b] = band_exact(vals + off[b], cnt[b], D, lambda, 1, hq, &o);
        L->step_h[b] = ddct_f32_to_bf16(band_step(D, combo[b]));
        L->th1[b] = o.t1;
        L->th2[b] = o.t2;
    }
    free(hq);
done:
    free(x);
    free(lr);
    free(vals);
    free(tile);
    return rc;
}

/* Encode at step D with choice C: out may be NULL (bytes and err2 only). */
static int encode_final(const ddct_lossy_in *in, const rd_model *M, const rd_choice *C, double D, ddct_enc_out *out,
                        uint64_t *bytes, double *err2, int *nonfinite, ddct_err *e)
{
    const ddct_params *P = in->params;
    int threads = rd_threads(in->threads);
    rd_layout L;
    memset(&L, 0, sizeof L);
    L.ver = RD_VERSION;
    L.n = M->n;
    L.cols = M->cols;
    L.p = RD_P;
    L.dct = C->dct;
    L.r = C->r;
    L.mean_abs = (float)M->mean_abs;
    ddct_rd_layout_derive(&L);
    int combo[RD_NB];
    for (int b = 0; b < L.nb; b++) {
        combo[b] = C->combo[b];
        L.step_h[b] = ddct_f32_to_bf16(band_step(D, C->combo[b]));
        L.th1[b] = C->t1[b];
        L.th2[b] = C->t2[b];
    }
    /* small planes: the context mode with the fewest bytes (exact); large: band contexts */
    static const int modes[][2] = {{3, 15}, {3, 12}, {1, 12}, {2, 12}, {0, 12}};
    int small = L.nunits <= 4;
    L.cmode = small ? 3 : 1;
    L.prob_bits = 15;
    uint8_t bm[RD_P * RD_P];
    ddct_rd_bandmap(RD_P, bm);
    rd_factors F;
    FORWARD_IF_ERROR(quant_factors(M, L.r, D, &F, e));
    ddct_xform *xf = NULL;
    size_t nu = (size_t)L.nunits, cap = (size_t)(L.unit_rows * L.cols_pad);
    unit_out *U = calloc(nu, sizeof *U);
    ddct_buf fb, pb, sb, db;
    ddct_buf_init(&fb);
    ddct_buf_init(&pb);
    ddct_buf_init(&sb);
    ddct_buf_init(&db);
    int rc = U ? ddct_xform_create(&xf, DDCT_TRANSFORM_DCT, RD_P, DDCT_WAVELET_HAAR, 1, e)
               : ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    if (!rc) rc = encode_factors(M, &F, &fb, e);
    if (!rc && small) rc = exact_quantizers(in, &L, &F, xf, bm, D, combo, nonfinite, e);
    if (rc || *nonfinite) goto done;
    int failed = 0;
    rd_ioerr io = {0};
    int prev = ddct_blas_serial_begin();
#pragma omp parallel num_threads(threads) if (nu > 1)
    {
        size_t urc = (size_t)(L.unit_rows * L.cols);
        float *x = malloc(urc * DDCT_DELTA_SRC_ROOM * sizeof *x), *lr = malloc(urc * sizeof *lr);
        float *pl = malloc(cap * sizeof *pl), *rb = malloc(urc * sizeof *rb);
        float *tile = malloc(((size_t)(RD_P * RD_P) + ddct_xform_scratch_floats(xf)) * sizeof *tile);
        int16_t *qb = small ? NULL : malloc(cap * sizeof *qb);
        uint16_t *sym = malloc(cap * sizeof *sym);
        uint8_t *ctx = malloc(cap);
        ddct_buf ub;
        ddct_buf_init(&ub);
        int ok = x && lr && pl && rb && tile && (small || qb) && sym && ctx;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (size_t k = 0; k < nu; k++) {
            if (!ok || failed) continue;
            unit_out *uo = &U[k];
            ddct_buf_init(&uo->blob);
            int16_t *q = qb;
            if (small && !(q = uo->q = malloc(cap * sizeof *q))) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            uint64_t r0 = (uint64_t)k * L.unit_rows, nr = r0 < L.rows ? rd_min(L.unit_rows, L.rows - r0) : 0;
            if (!read_rows(in, L.cols, r0, nr, x, &io)) {
#pragma omp atomic write
                failed = 2;
                continue;
            }
            ddct_rd_lowrank_rows(F.uc, F.vc, L.rows, L.cols, L.r, r0, nr, lr);
            size_t W = (size_t)L.cols_pad, cols = (size_t)L.cols;
            /* residual plane of the unit: as is, or DCT tiles */
            size_t nv = (size_t)(nr * L.cols);
            uint64_t first = r0 * L.cols, cnt = first < L.n ? rd_min(nv, L.n - first) : 0;
            if (!L.dct) {
                /* quantize, rebuild as ddct_rd_unit_rebuild does and sum, in one pass */
                const float inv = 1.0f / ddct_bf16_to_f32(L.step_h[0]), rho = rho_set[combo[0] % NRHO];
                const float s0 = ddct_bf16_to_f32(L.step_h[0]);
                ddct_rd_qparams qp = {inv, rho, s0, (1.0f - (float)L.th1[0] * (1.0f / 256)) * s0,
                                      (float)L.th2[0] * (1.0f / 256) * s0};
                double sums[4] = {0, 0, 0, 0};
                ddct_rd_quant_rebuild(x, lr, (size_t)cnt, &qp, q, sums);
                uo->abs_hat = sums[0];
                uo->dd = sums[1];
                uo->dh = sums[2];
                uo->hh = sums[3];
                for (size_t i = (size_t)cnt; i < nv; i++) q[i] = (int16_t)quant_one(x[i] - lr[i], inv, rho);
                memset(q + nv, 0, ((size_t)(L.unit_rows * L.cols) - nv) * sizeof *q);
            } else {
                for (size_t i = 0; i < nv; i++) rb[i] = x[i] - lr[i];
                int p = L.p;
                float inv[RD_NB], rho[RD_NB];
                for (int b = 0; b < L.nb; b++) {
                    inv[b] = 1.0f / ddct_bf16_to_f32(L.step_h[b]);
                    rho[b] = rho_set[combo[b] % NRHO];
                }
                for (size_t sr = 0; sr < (size_t)L.unit_rows; sr += (size_t)p)
                    for (size_t tc = 0; tc < W; tc += (size_t)p) {
                        for (int u = 0; u < p; u++)
                            for (int v = 0; v < p; v++) {
                                size_t row = sr + (size_t)u, col = tc + (size_t)v;
                                tile[u * p + v] = row < (size_t)nr && col < cols ? rb[row * cols + col] : 0.0f;
                            }
                        ddct_xform_forward(xf, tile, pl, tile + p * p);
                        for (int u = 0; u < p; u++)
                            for (int v = 0; v < p; v++) {
                                int b = bm[u * p + v];
                                q[(sr + (size_t)u) * W + tc + (size_t)v] = (int16_t)quant_one(pl[u * p + v], inv[b], rho[b]);
                            }
                    }
            }
            ddct_err e2;
            ddct_err_clear(&e2);
            if (!small && (code_unit(&L, bm, q, k, sym, ctx, &ub, &e2) || keep_unit(&ub, &uo->blob))) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            if (L.dct) {
                /* the rebuild as the decoder does it */
                ddct_rd_unit_rebuild(&L, xf, k, q, bm, F.uc, F.vc, lr, rb, tile);
                for (uint64_t i = 0; i < cnt; i++) {
                    double a = x[i], h = rb[i];
                    uo->abs_hat += fabs(h);
                    uo->dd += a * a;
                    uo->dh += a * h;
                    uo->hh += h * h;
                }
            }
        }
        free(x);
        free(lr);
        free(pl);
        free(rb);
        free(tile);
        free(qb);
        free(sym);
        free(ctx);
        ddct_buf_free(&ub);
    }
    ddct_blas_serial_end(prev);
    if ((rc = io_check(&io, e))) goto done;
    if (failed == 2) {
        *nonfinite = 1;
        goto done;
    }
    if (failed) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto done;
    }
    if (small) {
        /* every context mode, exactly; the smallest wins */
        uint16_t *sym = malloc(cap * sizeof *sym);
        uint8_t *ctx = malloc(cap);
        ddct_buf *blobs = calloc(nu, sizeof *blobs);
        size_t bestlen = SIZE_MAX;
        int bm_ = 0;
        if (!sym || !ctx || !blobs) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        for (size_t mi = 0; mi < sizeof modes / sizeof modes[0] && !rc; mi++) {
            L.cmode = modes[mi][0];
            L.prob_bits = modes[mi][1];
            size_t len = 0;
            for (size_t k = 0; k < nu && !rc; k++) {
                rc = code_unit(&L, bm, U[k].q, k, sym, ctx, &blobs[k], e);
                len += blobs[k].len + 3;
            }
            if (!rc && len < bestlen) {
                bestlen = len;
                bm_ = (int)mi;
                for (size_t k = 0; k < nu; k++) {
                    ddct_buf t = U[k].blob;
                    U[k].blob = blobs[k];
                    blobs[k] = t;
                }
            }
        }
        L.cmode = modes[bm_][0];
        L.prob_bits = modes[bm_][1];
        for (size_t k = 0; blobs && k < nu; k++) ddct_buf_free(&blobs[k]);
        free(blobs);
        free(sym);
        free(ctx);
        if (rc) goto done;
    }
    /* the rescale: factor and (auto) whether to use it */
    double sa = 0, dd = 0, dh = 0, hh = 0;
    for (size_t k = 0; k < nu; k++) {
        sa += U[k].abs_hat;
        dd += U[k].dd;
        dh += U[k].dh;
        hh += U[k].hh;
    }
    double mean_hat = sa / (double)L.n;
    float f = ddct_rescale_factor(L.mean_abs, mean_hat);
    if (!isfinite(f) || !(f > 0)) f = 1.0f;
    L.scale = f;
    if (P && P->rescale == DDCT_RESCALE_AUTO) {
        double g = mean_hat > 0 ? L.mean_abs / mean_hat : 0;
        L.rescale = g >= 1.0 / 1.1 && g <= 1.1; /* see codec_rd.h: RD_RESCALE_BAND */
    } else {
        L.rescale = P && P->rescale ? 1 : 0;
    }
    if (err2) {
        double s = L.rescale ? (double)f : 1.0;
        double v = dd - 2 * s * dh + s * s * hh;
        *err2 = v > 0 ? v : 0;
    }
    ddct_rd_write_params(&L, &pb);
    for (size_t i = 0; i < (size_t)L.r; i++) {
        ddct_buf_u16(&sb, F.fstep[i]);
        ddct_buf_u8(&sb, F.fcls[2 * i]);
        ddct_buf_u8(&sb, F.fcls[2 * i + 1]);
    }
    /* the data in its exact size, each unit freed once copied */
    size_t dlen = fb.len;
    for (size_t k = 0; k < nu; k++) dlen += 10 + U[k].blob.len;
    ddct_buf_reserve(&db, dlen);
    ddct_buf_put(&db, fb.p, fb.len);
    for (size_t k = 0; k < nu; k++) {
        ddct_buf_varint(&db, U[k].blob.len);
        ddct_buf_put(&db, U[k].blob.p, U[k].blob.len);
        ddct_buf_free(&U[k].blob);
    }
    rc = ddct_buf_check(&pb, e);
    if (!rc) rc = ddct_buf_check(&sb, e);
    if (!rc) rc = ddct_buf_check(&db, e);
    if (rc) goto done;
    if (bytes) *bytes = ddct_record_size(1, pb.len, sb.len, db.len);
    if (out) {
        ddct_enc_out_free(out);
        out->params = pb;
        out->side = sb;
        out->data = db;
        ddct_buf_init(&pb);
        ddct_buf_init(&sb);
        ddct_buf_init(&db);
    }
done:
    for (size_t k = 0; U && k < nu; k++) {
        ddct_buf_free(&U[k].blob);
        free(U[k].q);
    }
    free(U);
    ddct_buf_free(&fb);
    ddct_buf_free(&pb);
    ddct_buf_free(&sb);
    ddct_buf_free(&db);
    ddct_xform_free(xf);
    factors_free(&F);
    return rc;
}

/* ------------------------------------------------------------------ entry points */

struct ddct_rd_model {
    rd_model m;
};

int ddct_rd_model_build(const ddct_lossy_in *in, int sampled, ddct_rd_model **out, int *nonfinite, ddct_err *e)
{
    *out = NULL;
    ddct_rd_model *M = calloc(1, sizeof *M);
    RETURN_ERROR_IF(!M, e, DDCT_ERR_NOMEM, "rd codec: out of memory");
    int rc = (sampled ? model_build_sampled : model_build)(in, &M->m, nonfinite, e);
    if (rc || *nonfinite) {
        free(M);
        return rc;
    }
    *out = M;
    return 0;
}

void ddct_rd_model_free(ddct_rd_model *M)
{
    if (!M) return;
    model_free(&M->m);
    free(M);
}

double ddct_rd_model_rms(const ddct_rd_model *M) { return sqrt(M->m.energy / (double)(M->m.n ? M->m.n : 1)); }
double ddct_rd_model_energy(const ddct_rd_model *M) { return M->m.energy; }
void ddct_rd_model_set_exact(ddct_rd_model *M, int exact) { M->m.exact = exact; }

double ddct_rd_model_step(const ddct_rd_model *M, double step)
{
    rd_choice c;
    return choose_unclipped(&M->m, step, 1, &c);
}

double ddct_rd_model_estimate(const ddct_rd_model *M, double step, int quick, double *bytes, double *dist)
{
    rd_choice c;
    double used = choose_unclipped(&M->m, step, !quick, &c);
    if (bytes) *bytes = c.bytes;
    if (dist) *dist = c.dist;
    return used;
}

int ddct_rd_encode_model(const ddct_lossy_in *in, const ddct_rd_model *M, double step, ddct_enc_out *out,
                         uint64_t *bytes, double *err2, int *nonfinite, ddct_err *e)
{
    RETURN_ERROR_IF(!(step > 0) || !isfinite(step), e, DDCT_ERR_PARAM, "rd codec: bad step");
    rd_choice c;
    step = choose_unclipped(&M->m, step, 1, &c);
    *nonfinite = 0;
    return encode_final(in, &M->m, &c, step, out, bytes, err2, nonfinite, e);
}
