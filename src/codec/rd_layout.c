/*
 * rd_layout.c — the rd codec's record layout, shared by its encoder and decoder: parameters
 * (docs/FORMAT.md "Codec 5"), the residual's coding units and coding order, and the rebuild of
 * one unit (low-rank rows by one serial sgemm + the dequantized, inverse-transformed residual).
 * Everything here is per unit, so the result does not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "rd_internal.h"

void ddct_rd_layout_derive(rd_layout *L)
{
    L->rows = rd_cdiv(L->n, L->cols);
    L->nb = L->dct ? RD_NB : 1;
    if (L->dct) {
        uint64_t p = (uint64_t)L->p;
        L->rows_pad = rd_cdiv(L->rows, p) * p;
        L->cols_pad = rd_cdiv(L->cols, p) * p;
        uint64_t k = rd_cdiv(RD_UNIT, p * L->cols_pad);
        L->unit_rows = p * (k ? k : 1);
    } else {
        L->rows_pad = L->rows;
        L->cols_pad = L->cols;
        uint64_t k = rd_cdiv(RD_UNIT, L->cols);
        L->unit_rows = k ? k : 1;
    }
    L->nunits = rd_cdiv(L->rows_pad, L->unit_rows);
}

void ddct_rd_bandmap(int p, uint8_t *bm)
{
    for (int u = 0; u < p; u++)
        for (int v = 0; v < p; v++) bm[u * p + v] = (uint8_t)rd_band_of_s(u + v);
}

void ddct_rd_view(int ndim, const uint64_t *shape, uint64_t n, uint64_t *rows, uint64_t *cols)
{
    uint64_t c = ndim == 2 && shape[1] ? shape[1] : ddct_view_cols(ndim, shape, n, RD_P);
    if (c == 0 || c > n) c = n ? n : 1;
    *cols = c;
    *rows = rd_cdiv(n, c);
}

uint64_t ddct_rd_rank_limit(uint64_t rows, uint64_t cols)
{
    uint64_t k = rd_min(rows, cols);
    uint64_t lim = rows * cols / (rows + cols);
    return rd_min(rd_min(k, lim), RD_RMAX);
}

void ddct_rd_write_params(const rd_layout *L, ddct_buf *b)
{
    ddct_buf_u8(b, (uint8_t)L->ver);
    ddct_buf_u8(b, (uint8_t)(L->rescale | (L->dct << 1)));
    ddct_buf_varint(b, L->cols);
    ddct_buf_f32(b, L->mean_abs);
    if (L->ver >= 2 && L->rescale) ddct_buf_f32(b, L->scale);
    ddct_buf_varint(b, L->r);
    ddct_buf_u8(b, (uint8_t)(L->cmode | ((L->prob_bits - 12) << 2)));
    if (L->dct) ddct_buf_u8(b, (uint8_t)L->p);
    for (int i = 0; i < L->nb; i++) {
        ddct_buf_u16(b, L->step_h[i]);
        ddct_buf_u8(b, L->th1[i]);
        ddct_buf_u8(b, L->th2[i]);
    }
}

int ddct_rd_parse_params(const ddct_record *rec, uint64_t n, rd_layout *L, ddct_err *e)
{
    ddct_rd r;
    ddct_rd_init(&r, rec->params, rec->params_len);
    memset(L, 0, sizeof *L);
    int ver = ddct_rd_u8(&r), flags = ddct_rd_u8(&r);
    L->n = n;
    L->cols = ddct_rd_varint(&r);
    L->mean_abs = ddct_rd_f32(&r);
    L->has_scale = ver >= 2 && (flags & 1);
    L->scale = L->has_scale ? ddct_rd_f32(&r) : 1.0f;
    L->r = ddct_rd_varint(&r);
    int cm = ddct_rd_u8(&r);
    RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "rd codec: parameters truncated");
    RETURN_ERROR_IF(ver > RD_VERSION, e, DDCT_ERR_UNSUPPORTED, "rd codec: parameter version %d unknown", ver);
    RETURN_ERROR_IF(flags > 3 || cm > 15, e, DDCT_ERR_FORMAT, "rd codec: bad flags");
    L->ver = ver;
    L->rescale = flags & 1;
    L->dct = (flags >> 1) & 1;
    L->cmode = cm & 3;
    L->prob_bits = 12 + (cm >> 2);
    RETURN_ERROR_IF(n == 0 || L->cols == 0 || L->cols > n, e, DDCT_ERR_FORMAT,
                    "rd codec: view width %llu does not fit %llu elements", (unsigned long long)L->cols,
                    (unsigned long long)n);
    RETURN_ERROR_IF(!isfinite(L->mean_abs) || !(L->mean_abs >= 0), e, DDCT_ERR_FORMAT, "rd codec: bad mean |delta|");
    RETURN_ERROR_IF(!isfinite(L->scale) || !(L->scale > 0), e, DDCT_ERR_FORMAT, "rd codec: bad rescale factor");
    L->p = L->dct ? ddct_rd_u8(&r) : RD_P;
    RETURN_ERROR_IF(L->p < 2 || L->p > DDCT_MAX_PATCH, e, DDCT_ERR_FORMAT, "rd codec: patch size %d", L->p);
    ddct_rd_layout_derive(L);
    /* the factors never outnumber the matrix's values, so their memory is bounded by the output's */
    RETURN_ERROR_IF(L->r > rd_min(L->rows, L->cols) || (L->r && L->r > L->rows * L->cols / (L->rows + L->cols)), e,
                    DDCT_ERR_FORMAT, "rd codec: rank %llu too large for %llu x %llu", (unsigned long long)L->r,
                    (unsigned long long)L->rows, (unsigned long long)L->cols);
    for (int i = 0; i < L->nb; i++) {
        L->step_h[i] = ddct_rd_u16(&r);
        L->th1[i] = ddct_rd_u8(&r);
        L->th2[i] = ddct_rd_u8(&r);
        RETURN_ERROR_IF(!r.failed && !rd_bf16_ok(L->step_h[i]), e, DDCT_ERR_FORMAT, "rd codec: bad band step");
    }
    RETURN_ERROR_IF(r.failed || r.pos != r.len, e, DDCT_ERR_FORMAT, "rd codec: parameter length mismatch");
    return 0;
}

size_t ddct_rd_unit_symbols(const rd_layout *L, uint64_t k, const uint8_t *bandmap, const int16_t *q, uint16_t *sym,
                            uint8_t *ctx)
{
    uint64_t r0 = k * L->unit_rows, r1 = rd_min(L->rows_pad, r0 + L->unit_rows);
    size_t W = (size_t)L->cols_pad, m = 0;
    int nbr = (L->cmode & 2) != 0, bmul = (L->cmode & 1) ? (nbr ? RD_NCLS : 1) : 0;
    if (L->dct) {
        size_t p = (size_t)L->p;
        for (size_t sr = 0; sr < (size_t)(r1 - r0); sr += p)
            for (size_t tc = 0; tc < W; tc += p) {
                const int16_t *t = q + sr * W + tc;
                for (size_t u = 0; u < p; u++)
                    for (size_t v = 0; v < p; v++) {
                        size_t pos = u * W + v;
                        int a = 0;
                        if (nbr) a = (v ? abs(t[pos - 1]) : 0) + (u ? abs(t[pos - W]) : 0);
                        sym[m] = rd_zigzag(t[pos]);
                        ctx[m++] = (uint8_t)(bandmap[u * p + v] * bmul + (nbr ? rd_nbr_class(a) : 0));
                    }
            }
    } else {
        for (size_t r = 0; r < (size_t)(r1 - r0); r++)
            for (size_t c = 0; c < W; c++) {
                size_t pos = r * W + c;
                int a = 0;
                if (nbr) a = (c ? abs(q[pos - 1]) : 0) + (r ? abs(q[pos - W]) : 0);
                sym[m] = rd_zigzag(q[pos]);
                ctx[m++] = (uint8_t)(nbr ? rd_nbr_class(a) : 0);
            }
    }
    return m;
}

uint64_t ddct_rd_unit_rebuild(const rd_layout *L, const ddct_xform *xf, uint64_t k, const int16_t *q,
                              const uint8_t *bandmap, const float *uc, const float *vc, const float *lr, float *out,
                              float *tile)
{
    uint64_t r0 = k * L->unit_rows;
    if (r0 >= L->rows) return 0;
    uint64_t nr = rd_min(L->rows, r0 + L->unit_rows) - r0, cols = L->cols, W = L->cols_pad;
    uint64_t first = r0 * cols, cnt = rd_min(L->n - first, nr * cols);
    if (lr) memcpy(out, lr, (size_t)(nr * cols) * sizeof *out);
    else ddct_rd_lowrank_rows(uc, vc, L->rows, cols, L->r, r0, nr, out);
    float st[RD_NB], t1[RD_NB], t2[RD_NB];
    for (int b = 0; b < L->nb; b++) {
        st[b] = ddct_bf16_to_f32(L->step_h[b]);
        t1[b] = (float)L->th1[b] * (1.0f / 256);
        t2[b] = (float)L->th2[b] * (1.0f / 256);
    }
    if (!L->dct) {
        /* cols_pad == cols without DCT */
        ddct_rd_qparams qp = {0, 0, st[0], (1.0f - t1[0]) * st[0], t2[0] * st[0]};
        ddct_rd_dequant_add(q, (size_t)cnt, &qp, out);
        return cnt;
    }
    int p = L->p;
    for (uint64_t sr = 0; sr < nr; sr += (uint64_t)p)
        for (uint64_t tc = 0; tc < W; tc += (uint64_t)p) {
            int any = 0;
            for (int u = 0; u < p; u++) {
                const int16_t *qr = q + (sr + (uint64_t)u) * W + tc;
                for (int v = 0; v < p; v++) {
                    int b = bandmap[u * p + v];
                    any |= qr[v];
                    tile[u * p + v] = rd_recon(qr[v], st[b], t1[b], t2[b]);
                }
            }
            if (!any) continue;
            ddct_xform_inverse(xf, tile, tile, tile + p * p);
            for (int u = 0; u < p && sr + (uint64_t)u < nr; u++) {
                uint64_t row = sr + (uint64_t)u;
                for (int v = 0; v < p; v++) {
                    uint64_t col = tc + (uint64_t)v, idx = row * cols + col;
                    if (col >= cols || idx >= cnt) break;
                    out[idx] += tile[u * p + v];
                }
            }
        }
    return cnt;
}
