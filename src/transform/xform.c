/*
 * xform.c — transform plans: validation, precomputed tables, forward/inverse dispatch,
 * per-coefficient band codes, DWT keep masks and the low-frequency mask.
 *
 * A plan holds, for DCT, the float DCT-II matrix C and its transpose (64-byte aligned) and
 * the matrix kernel picked for this CPU (dct.c); for DWT the wavelet and level count (dwt.c);
 * for every kind the p*p band map. Nothing in it changes after create(), so one plan may be
 * used by any number of threads at once, each with its own scratch.
 * forward()/inverse() neither allocate nor fail: the plan was validated at create().
 */
#include <stdlib.h>
#include <string.h>

#include "transform/transform.h"

struct ddct_xform {
    ddct_transform kind;
    int p;
    ddct_wavelet wavelet; /* DWT */
    int levels;           /* DWT */
    ddct_simd simd;
    ddct_matmul_fn mm;    /* DCT */
    float *c, *ct;        /* DCT: C and C^T, p*p each, one aligned block */
    uint8_t *band;        /* p*p */
};

int ddct_xform_create_simd(ddct_xform **out, ddct_transform kind, int p, ddct_wavelet wavelet,
                           int levels, ddct_simd simd, ddct_err *e)
{
    RETURN_ERROR_IF(!out, e, DDCT_ERR_PARAM, "transform: no output plan pointer");
    *out = NULL;
    RETURN_ERROR_IF((int)kind < 0 || kind >= DDCT_TRANSFORM_COUNT, e, DDCT_ERR_PARAM,
                    "transform: unknown transform kind %d", (int)kind);
    RETURN_ERROR_IF(p < 2 || p > DDCT_MAX_PATCH, e, DDCT_ERR_PARAM,
                    "transform: patch size %d outside 2..%d", p, DDCT_MAX_PATCH);
    if (kind == DDCT_TRANSFORM_DWT) {
        RETURN_ERROR_IF((int)wavelet < 0 || wavelet >= DDCT_WAVELET_COUNT, e, DDCT_ERR_PARAM,
                        "transform: unknown wavelet %d", (int)wavelet);
        const int maxlev = ddct_dwt_max_levels(p);
        RETURN_ERROR_IF(levels < 1 || levels > maxlev, e, DDCT_ERR_PARAM,
                        "transform: %d DWT levels invalid for patch %d (allowed 1..%d)", levels, p, maxlev);
    }
    RETURN_ERROR_IF((int)simd < 0 || simd >= DDCT_SIMD_COUNT, e, DDCT_ERR_PARAM,
                    "transform: unknown SIMD level %d", (int)simd);
    RETURN_ERROR_IF(!ddct_simd_supported(simd), e, DDCT_ERR_UNSUPPORTED,
                    "transform: this CPU does not support the %s kernel", ddct_simd_name(simd));

    const size_t pp = (size_t)p * p;
    ddct_xform *x = calloc(1, sizeof *x);
    RETURN_ERROR_IF(!x, e, DDCT_ERR_NOMEM, "transform: out of memory for plan");
    x->kind = kind;
    x->p = p;
    x->wavelet = kind == DDCT_TRANSFORM_DWT ? wavelet : DDCT_WAVELET_HAAR;
    x->levels = kind == DDCT_TRANSFORM_DWT ? levels : 0;
    x->simd = simd;
    x->band = calloc(pp, 1);
    if (!x->band) goto nomem;
    if (kind == DDCT_TRANSFORM_DCT) {
        const size_t bytes = (2 * pp * sizeof(float) + 63) & ~(size_t)63;
        x->c = aligned_alloc(64, bytes);
        if (!x->c) goto nomem;
        x->ct = x->c + pp;
        ddct_dct_matrix(p, x->c, x->ct);
        x->mm = ddct_dct_kernel(simd, p);
        if (!x->mm) {
            ddct_xform_free(x);
            RETURN_ERROR(e, DDCT_ERR_INTERNAL, "transform: no DCT kernel for %s", ddct_simd_name(simd));
        }
    } else if (kind == DDCT_TRANSFORM_DWT) {
        ddct_dwt_bands(p, levels, x->band);
    }
    *out = x;
    return DDCT_OK;
nomem:
    ddct_xform_free(x);
    RETURN_ERROR(e, DDCT_ERR_NOMEM, "transform: out of memory for plan (p=%d)", p);
}

int ddct_xform_create(ddct_xform **out, ddct_transform kind, int p, ddct_wavelet wavelet, int levels,
                      ddct_err *e)
{
    return ddct_xform_create_simd(out, kind, p, wavelet, levels, ddct_simd_best(), e);
}

void ddct_xform_free(ddct_xform *x)
{
    if (!x) return;
    free(x->c);
    free(x->band);
    free(x);
}

int ddct_xform_p(const ddct_xform *x) { return x ? x->p : 0; }

size_t ddct_xform_scratch_floats(const ddct_xform *x) { return x ? (size_t)x->p * x->p : 0; }

void ddct_xform_forward(const ddct_xform *x, const float *in, float *out, float *scratch)
{
    if (!x) return;
    switch (x->kind) {
    case DDCT_TRANSFORM_DCT: ddct_dct_fwd(x->p, x->mm, x->c, x->ct, in, out, scratch); break;
    case DDCT_TRANSFORM_DWT: ddct_dwt_fwd(x->p, x->wavelet, x->levels, in, out, scratch); break;
    default:
        if (in != out) memmove(out, in, (size_t)x->p * x->p * sizeof *out);
        break;
    }
}

void ddct_xform_inverse(const ddct_xform *x, const float *in, float *out, float *scratch)
{
    if (!x) return;
    switch (x->kind) {
    case DDCT_TRANSFORM_DCT: ddct_dct_inv(x->p, x->mm, x->c, x->ct, in, out, scratch); break;
    case DDCT_TRANSFORM_DWT: ddct_dwt_inv(x->p, x->wavelet, x->levels, in, out, scratch); break;
    default:
        if (in != out) memmove(out, in, (size_t)x->p * x->p * sizeof *out);
        break;
    }
}

const uint8_t *ddct_xform_band(const ddct_xform *x) { return x ? x->band : NULL; }

int ddct_xform_kept(const ddct_xform *x, ddct_dwt_keep keep, size_t i)
{
    if (!x || i >= (size_t)x->p * x->p) return 0;
    if (x->kind != DDCT_TRANSFORM_DWT) return 1;
    const int orient = x->band[i] & 3;
    switch (keep) {
    case DDCT_KEEP_LL_LH_HL: return orient != DDCT_BAND_HH;
    case DDCT_KEEP_LL_ONLY: return orient == DDCT_BAND_LL;
    default: return 1;
    }
}

void ddct_xform_lowfreq_mask(const ddct_xform *x, int k, uint8_t *out)
{
    if (!x || !out) return;
    const int p = x->p;
    if (k < 0) k = 0;
    if (k > p) k = p;
    for (int r = 0; r < p; r++)
        for (int c = 0; c < p; c++) out[(size_t)r * p + c] = (uint8_t)(r < k && c < k);
}
