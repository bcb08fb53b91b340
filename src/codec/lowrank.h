/*
 * lowrank.h — SVD and low-rank pieces shared by the svd and rd codecs (codec_svd.c).
 *
 * LAPACK/BLAS run on one OpenBLAS thread (ddct_blas_serial_begin/end) so that results never
 * depend on the thread count; see codec_svd.c for why.
 */
#ifndef DDCT_LOWRANK_H
#define DDCT_LOWRANK_H

#include <stddef.h>
#include <stdint.h>
#include "common/error_private.h"
#include "container/container.h"

/* One OpenBLAS thread until ddct_blas_serial_end(previous count). Process-global. */
int ddct_blas_serial_begin(void);
void ddct_blas_serial_end(int prev);

/* Thin SVD of the row-major rows x cols matrix a (destroyed), k = min(rows, cols):
 * s[k] descending, vecs_v (cols x k column-major: v_i contiguous at vecs_v + i * cols),
 * ut (k x rows column-major: element j of u_i at ut[j * k + i]). rows, cols <= INT_MAX. */
int ddct_svd_thin(float *a, uint64_t rows, uint64_t cols, float *s, float *vecs_v, float *ut, ddct_err *e);

/* The singular values only (s[k] descending) of the same matrix (destroyed). */
int ddct_svd_values(float *a, uint64_t rows, uint64_t cols, float *s, ddct_err *e);

/* A record's low-rank part as the decoder sees it: delta^ (or, for rd, its low-rank part) =
 * scale * U V^T over the record's rows x cols view (the svd codec's view_of, rd's ddct_rd_view),
 * uc: rows x r, vc: cols x r, column-major (vectors contiguous); r may be 0 (uc, vc NULL). scale:
 * the rescale the decoder applies with `rescale` (-1 as stored, 0 off, 1 on), else 1. */
typedef struct {
    size_t rows, cols, r;
    float *uc, *vc;
    float scale;
} ddct_lr_factors;
void ddct_lr_factors_free(ddct_lr_factors *F);
int ddct_svd_record_factors(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_lr_factors *F,
                            ddct_err *e);
int ddct_rd_record_factors(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_lr_factors *F,
                           ddct_err *e);

/* out[0..n) = row-major U V^T, uc rows x r and vc cols x r column-major (vectors contiguous),
 * n <= rows * cols; fixed blocks of rows, so the result does not depend on threads. */
int ddct_lowrank_product(const float *uc, const float *vc, size_t rows, size_t cols, size_t r, uint64_t n,
                         float *out, int threads, ddct_err *e);
/* Rows [row0, row1) of the same product into out (holding the values from row0 * cols on, up to
 * n): blocks of 64 rows counted from row 0, so with row0 a multiple of 64 any range gives the
 * values of the whole product bit for bit (the svd decoder streams slices this way). */
int ddct_lowrank_product_rows(const float *uc, const float *vc, size_t rows, size_t cols, size_t r, uint64_t n,
                              size_t row0, size_t row1, float *out, int threads, ddct_err *e);

#endif
