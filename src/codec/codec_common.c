/* codec_common.c — helpers shared by the lossy codecs: rescale, directed bf16, 2-D views. */
#include <math.h>
#include <string.h>

#include "codec.h"
#include "common/dtype.h"

#define MEAN_BLOCK 65536

double ddct_mean_abs(const float *x, uint64_t n, int threads)
{
    if (n == 0) return 0;
    uint64_t nb = (n + MEAN_BLOCK - 1) / MEAN_BLOCK;
    double total = 0;
    /* Per-block sums in parallel, then added in block order: same result for any thread count. */
    double part[64];
    for (uint64_t b0 = 0; b0 < nb; b0 += 64) {
        uint64_t cnt = nb - b0 < 64 ? nb - b0 : 64;
#pragma omp parallel for num_threads(threads) schedule(static) if (cnt > 1)
        for (uint64_t b = 0; b < cnt; b++) {
            uint64_t s = (b0 + b) * MEAN_BLOCK, t = s + MEAN_BLOCK < n ? s + MEAN_BLOCK : n;
            double acc = 0;
            for (uint64_t i = s; i < t; i++) acc += fabsf(x[i]);
            part[b] = acc;
        }
        for (uint64_t b = 0; b < cnt; b++) total += part[b];
    }
    return total / (double)n;
}

void ddct_rescale_to(float *x, uint64_t n, double target, int threads)
{
    double cur = ddct_mean_abs(x, n, threads);
    if (!(cur > 0) || !(target > 0) || !isfinite(cur) || !isfinite(target)) return;
    float s = (float)(target / cur);
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 1000000)
    for (uint64_t i = 0; i < n; i++) x[i] *= s;
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
