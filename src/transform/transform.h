/*
 * transform.h — separable 2-D transforms of one p x p patch (p = 2..128).
 *
 * A plan (ddct_xform) is built once per (kind, p, wavelet, levels) and is read-only
 * afterwards, so threads share it. Patches are row-major float[p*p]. forward() and
 * inverse() take a caller scratch of ddct_xform_scratch_floats() floats and never
 * allocate. `in` and `out` may be the same buffer (in-place); scratch must not overlap
 * either.
 *
 *   DCT  : orthonormal DCT-II (dct.c); inverse is DCT-III. Coefficient (u,v) at u*p+v,
 *          u = vertical frequency (row index), v = horizontal frequency (column index).
 *          `wavelet` and `levels` are ignored.
 *   DWT  : lifting-scheme wavelet (dwt.c), Haar or CDF 9/7, `levels` levels (1..
 *          ddct_dwt_max_levels(p)). Each level transforms the rows, then the columns, of
 *          the current n x n region; the low band gets ceil(n/2) samples, the high band
 *          floor(n/2). Mallat layout, with nl = ceil(n/2):
 *            rows [0,nl)  x cols [0,nl)   LL  low  vertically, low  horizontally
 *            rows [0,nl)  x cols [nl,n)   LH  low  vertically, high horizontally (top-right)
 *            rows [nl,n)  x cols [0,nl)   HL  high vertically, low  horizontally (bottom-left)
 *            rows [nl,n)  x cols [nl,n)   HH  high in both                      (bottom-right)
 *          (first letter = filter along a column, second = filter along a row); the next
 *          level recurses into LL. Odd n allowed; whole-sample symmetric extension at the
 *          edges (CDF 9/7). A level needs n >= 2, so p = 2 allows 1 level, p = 3..4 two,
 *          p = 5..8 three, ... (at most DDCT_MAX_DWT_LEVELS).
 *   NONE : identity (copy). `wavelet` and `levels` are ignored.
 *
 * ddct_xform_band() gives, per coefficient, a band code used by the DWT keep modes,
 * quantization tables and entropy contexts:
 *   band = level * 4 + orient, orient 0 = LL, 1 = LH, 2 = HL, 3 = HH (level 1 = finest);
 *   only the coarsest level L has an LL band (code L*4); for DCT and NONE every
 *   coefficient is band 0. Codes are < 4 * (DDCT_MAX_DWT_LEVELS + 1) = 28.
 *
 * The DCT's matrix kernel exists as a portable scalar _ref kernel and as AVX2 / AVX-512
 * kernels picked at run time; all give bitwise-identical results (see dct.c).
 */
#ifndef DDCT_TRANSFORM_H
#define DDCT_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>
#include "deltadct.h"
#include "common/cpu.h"
#include "common/error_private.h"

#define DDCT_MAX_PATCH 128
#define DDCT_MAX_DWT_LEVELS 6

typedef struct ddct_xform ddct_xform;

enum { DDCT_BAND_LL = 0, DDCT_BAND_LH = 1, DDCT_BAND_HL = 2, DDCT_BAND_HH = 3 };

/* DDCT_ERR_PARAM for p outside 2..DDCT_MAX_PATCH, an unknown kind or wavelet, or (DWT) levels
 * outside 1..ddct_dwt_max_levels(p); DDCT_ERR_NOMEM. */
int ddct_xform_create(ddct_xform **out, ddct_transform kind, int p, ddct_wavelet wavelet, int levels,
                      ddct_err *e);
void ddct_xform_free(ddct_xform *x);
int ddct_xform_p(const ddct_xform *x);
size_t ddct_xform_scratch_floats(const ddct_xform *x);
void ddct_xform_forward(const ddct_xform *x, const float *in, float *out, float *scratch);
void ddct_xform_inverse(const ddct_xform *x, const float *in, float *out, float *scratch);
/* p*p entries */
const uint8_t *ddct_xform_band(const ddct_xform *x);
/* 1 if coefficient i is kept under `keep` (DWT only; DCT/NONE keep all):
 *   ALL keeps everything, LL_LH_HL drops the HH band of every level, LL_ONLY keeps only the
 *   coarsest LL. i >= p*p gives 0; an unknown keep mode is treated as ALL. */
int ddct_xform_kept(const ddct_xform *x, ddct_dwt_keep keep, size_t i);
/* Mask of the k x k lowest-frequency coefficients (top-left block) — p*p bytes into out
 * (1 inside, 0 outside); k is clamped to 0..p. */
void ddct_xform_lowfreq_mask(const ddct_xform *x, int k, uint8_t *out);

/* Reference kernels for tests: naive O(p^4) orthonormal 2-D DCT-II / inverse (p = 1..128;
 * in and out must not overlap). */
void ddct_dct2_naive(int p, const double *in, double *out);
void ddct_idct2_naive(int p, const double *in, double *out);

/* JPEG luminance quantization table (ITU-T T.81 Annex K, Table K.1) resampled to p x p by
 * bilinear interpolation over the frequency plane (index i of p sits at table position
 * i * 7 / (p - 1)), normalised so the DC weight is 1; p = 8 gives Table K.1 / 16 exactly.
 * p = 1 gives {1}; p < 1 writes nothing. */
void ddct_qtable_jpeg(int p, float *out);

/* ------------------------------------------------------------ SIMD kernel selection */
/* Plans use ddct_simd_best(); tests and benchmarks pin a level with ddct_xform_create_simd()
 * to compare kernels (every level gives bitwise-identical output). */
/* As ddct_xform_create with the DCT kernel pinned to `simd`; DDCT_ERR_UNSUPPORTED if the CPU
 * lacks it. */
int ddct_xform_create_simd(ddct_xform **out, ddct_transform kind, int p, ddct_wavelet wavelet,
                           int levels, ddct_simd simd, ddct_err *e);

/* ------------------------------------------------------------ internal to src/transform */
/* o = a * b for p x p row-major matrices; o must not overlap a or b. */
typedef void (*ddct_matmul_fn)(int p, const float *a, const float *b, float *o);
ddct_matmul_fn ddct_dct_kernel(ddct_simd s, int p); /* NULL if s unsupported */
/* c[k*p+n] = s_k cos(pi (2n+1) k / (2p)), computed in double; ct = transpose of c. */
void ddct_dct_matrix(int p, float *c, float *ct);
void ddct_dct_fwd(int p, ddct_matmul_fn mm, const float *c, const float *ct, const float *in,
                  float *out, float *tmp);
void ddct_dct_inv(int p, ddct_matmul_fn mm, const float *c, const float *ct, const float *in,
                  float *out, float *tmp);

int ddct_dwt_max_levels(int p); /* levels allowed for p (0 if p < 2) */
/* band codes as documented above */
void ddct_dwt_bands(int p, int levels, uint8_t *band);
/* scratch: p*p floats; in may equal out */
void ddct_dwt_fwd(int p, ddct_wavelet w, int levels, const float *in, float *out, float *scratch);
void ddct_dwt_inv(int p, ddct_wavelet w, int levels, const float *in, float *out, float *scratch);

#endif
