/*
 * rd_dec.c — the rd codec's decoder (docs/FORMAT.md "Codec 5"; layout in rd_internal.h).
 *
 * A record is opened once (parameters, side, the factor stream decoded into the dequantized
 * factors, the table of residual units), then rebuilt unit by unit: the unit's symbols are
 * rANS-decoded in the coding order of ddct_rd_unit_symbols (contexts computed in place, not
 * through a list), and ddct_rd_unit_rebuild adds the low-rank rows and the dequantized residual.
 * Version 2 streams: units go to the caller's ddct_delta_out slice by slice (a few units per
 * thread in memory), times the stored rescale factor. Versions 0 and 1, whose rescale factor
 * needs the whole rebuild first, are rebuilt whole into a scratch buffer, as before.
 *
 * Units of >= RD_X4_MIN symbols are four-state rANS blobs in version 2 (symbol i on state
 * i mod 4) and word blobs in version 3 (32 states, i mod 32, decoded in SIMD lanes): a unit
 * whose contexts are all one decodes in one run (ddct_rans_dec_run_x4 / _w), a DCT unit with band
 * contexts tile by tile with the tile's context map known in advance (ddct_rans_dec_ctx_x4 / _w),
 * and neighbour contexts symbol by symbol.
 * Untrusted input: every length and parameter is checked before use; a corrupt unit gives
 * DDCT_ERR_FORMAT, never a read outside the record.
 */
#include <math.h>
#include <string.h>

#include "codec_rd.h"
#include "entropy/rans.h"
#include "lowrank.h"
#include "rd_internal.h"

typedef struct {
    rd_layout L;
    const uint8_t **ub;
    size_t *ul;
    float *uc, *vc;
    ddct_xform *xf;
    uint8_t bandmap[DDCT_MAX_PATCH * DDCT_MAX_PATCH];
} rd_dec;

static void dec_free(rd_dec *D)
{
    free(D->ub);
    free(D->ul);
    free(D->uc);
    free(D->vc);
    ddct_xform_free(D->xf);
}

/* Parse and check the record; decode the factor stream into D->uc, D->vc. */
static int dec_open(rd_dec *D, const ddct_record *rec, uint64_t n, const ddct_rd_observer *ob, ddct_err *e)
{
    memset(D, 0, sizeof *D);
    rd_layout *L = &D->L;
    FORWARD_IF_ERROR(ddct_rd_parse_params(rec, n, L, e));
    RETURN_ERROR_IF(rec->side_len != 4 * L->r, e, DDCT_ERR_FORMAT, "rd codec: side is %zu bytes, expected %llu",
                    rec->side_len, (unsigned long long)(4 * L->r));
    size_t rows = (size_t)L->rows, cols = (size_t)L->cols, rr = (size_t)L->r;
    for (size_t i = 0; i < rr; i++)
        RETURN_ERROR_IF(!rd_bf16_ok(ddct_le16(rec->side + 4 * i)) || rec->side[4 * i + 2] >= RD_FCTX ||
                            rec->side[4 * i + 3] >= RD_FCTX,
                        e, DDCT_ERR_FORMAT, "rd codec: bad triplet %zu", i);
    ddct_rd r;
    ddct_rd_init(&r, rec->data, rec->data_len);
    const uint8_t *fblob = NULL;
    size_t flen = 0;
    if (rr) {
        flen = (size_t)ddct_rd_len(&r, 1);
        fblob = ddct_rd_bytes(&r, flen);
        RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "rd codec: factor stream truncated");
    }
    size_t nu = (size_t)L->nunits;
    /* every unit costs at least 6 bytes (length, nctx byte, one table byte, 4 state bytes) */
    RETURN_ERROR_IF(nu > ddct_rd_left(&r) / 6 + 1, e, DDCT_ERR_FORMAT, "rd codec: data too short for %zu units", nu);
    D->ub = malloc(nu * sizeof *D->ub);
    D->ul = malloc(nu * sizeof *D->ul);
    int rc = 0;
    if (!D->ub || !D->ul) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory");
        goto fail;
    }
    for (size_t k = 0; k < nu; k++) {
        D->ul[k] = (size_t)ddct_rd_len(&r, 1);
        D->ub[k] = ddct_rd_bytes(&r, D->ul[k]);
    }
    if (r.failed || r.pos != r.len) {
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "rd codec: data stream lengths do not add up");
        goto fail;
    }
    rc = ddct_xform_create(&D->xf, DDCT_TRANSFORM_DCT, L->p, DDCT_WAVELET_HAAR, 1, e);
    if (rc) goto fail;
    if (L->dct) ddct_rd_bandmap(L->p, D->bandmap);
    if (!rr) return 0;
    D->uc = malloc(rows * rr * sizeof *D->uc);
    D->vc = malloc(cols * rr * sizeof *D->vc);
    uint16_t *sy = malloc((rows > cols ? rows : cols) * sizeof *sy);
    if (!D->uc || !D->vc || !sy) {
        free(sy);
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory (rank %zu)", rr);
        goto fail;
    }
    /* version 0: one rANS state; 1 and 2: one or four (taken in turn), as the blob's header says */
    int x4 = L->ver && flen && (fblob[0] >> 6) == 2;
    ddct_rans_dec d;
    rc = (x4 ? ddct_rans_dec_init_x4 : ddct_rans_dec_init)(&d, fblob, flen, e);
    if (rc) {
        free(sy);
        goto fail;
    }
    void (*run)(ddct_rans_dec *, int, uint16_t *, size_t) = x4 ? ddct_rans_dec_run_x4 : ddct_rans_dec_run;
    for (size_t i = 0; i < rr && !d.failed; i++) {
        float fst = ddct_bf16_to_f32(ddct_le16(rec->side + 4 * i));
        for (int w = 0; w < 2; w++) {
            size_t len = w ? cols : rows;
            float *dst = w ? D->vc + i * cols : D->uc + i * rows;
            run(&d, rec->side[4 * i + 2 + (size_t)w], sy, len);
            for (size_t j = 0; j < len; j++) dst[j] = (float)rd_unzigzag(sy[j]) * fst;
            if (ob && ob->factor_vector) ob->factor_vector(ob->opaque, sy, len);
        }
    }
    free(sy);
    if (ob && ob->factor_stream) ob->factor_stream(ob->opaque, rr, (uint64_t)flen);
    rc = ddct_rans_dec_finish(&d, e);
    ddct_rans_dec_free(&d);
    if (rc) goto fail;
    return 0;
fail:
    dec_free(D);
    memset(D, 0, sizeof *D);
    return rc;
}

static void unzigzag_to(const uint16_t *s, int16_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) q[i] = (int16_t)rd_unzigzag(s[i]);
}

/* The next symbol in context ctx, of a one-state, four-state or word decoder. */
static inline uint16_t dec_get(ddct_rans_dec *d, int ctx)
{
    return d->lanes == DDCT_RANS_WLANES ? ddct_rans_dec_get_w(d, ctx)
           : d->lanes == DDCT_RANS_LANES ? ddct_rans_dec_get_x4(d, ctx)
                                         : ddct_rans_dec_get(d, ctx);
}

/* Decode unit k's symbols into q (the unit's plane) in the coding order of ddct_rd_unit_symbols.
 * tmp: p * p symbols. */
static void unit_decode(const rd_layout *L, uint64_t k, const uint8_t *bandmap, ddct_rans_dec *d, int16_t *q,
                        uint16_t *tmp)
{
    uint64_t r0 = k * L->unit_rows, r1 = rd_min(L->rows_pad, r0 + L->unit_rows);
    size_t W = (size_t)L->cols_pad, m = (size_t)(r1 - r0) * W, p = L->dct ? (size_t)L->p : 1;
    int x4 = d->lanes == DDCT_RANS_LANES, w = d->lanes == DDCT_RANS_WLANES, nbr = (L->cmode & 2) != 0;
    void (*run)(ddct_rans_dec *, int, uint16_t *, size_t) = w    ? ddct_rans_dec_run_w
                                                            : x4 ? ddct_rans_dec_run_x4
                                                                 : ddct_rans_dec_run;
    if (rd_ctx_count(L) == 1) {
        /* one context: whole runs (the plane's rows without DCT, else tile by tile) */
        if (!L->dct) {
            uint16_t *s = (uint16_t *)q; /* the unsigned twin of int16_t: converted in place */
            run(d, 0, s, m);
            unzigzag_to(s, q, m);
            return;
        }
        for (size_t sr = 0; sr < m / W && !d->failed; sr += p)
            for (size_t tc = 0; tc < W; tc += p) {
                run(d, 0, tmp, p * p);
                for (size_t u = 0; u < p; u++) unzigzag_to(tmp + u * p, q + (sr + u) * W + tc, p);
            }
        return;
    }
    if (L->dct && !nbr && (x4 || w)) {
        /* band contexts, known in advance: a tile at a time, the states side by side */
        void (*ctxrun)(ddct_rans_dec *, const uint8_t *, uint16_t *, size_t) = w ? ddct_rans_dec_ctx_w
                                                                                 : ddct_rans_dec_ctx_x4;
        uint8_t cx[DDCT_MAX_PATCH * DDCT_MAX_PATCH];
        memcpy(cx, bandmap, p * p);
        for (size_t sr = 0; sr < m / W && !d->failed; sr += p)
            for (size_t tc = 0; tc < W; tc += p) {
                ctxrun(d, cx, tmp, p * p);
                for (size_t u = 0; u < p; u++) unzigzag_to(tmp + u * p, q + (sr + u) * W + tc, p);
            }
        return;
    }
    ddct_rans_dec dl = *d, *dd = &dl; /* a local copy keeps the coder state in registers */
    static const uint8_t cls[5] = {0, 1, 2, 2, 3}; /* rd_nbr_class of min(a, 4) */
    int bmul = (L->cmode & 1) ? (nbr ? RD_NCLS : 1) : 0;
#define RD_NBR_CTX(a, pos, hasl, hasu)                                                                                 \
    (nbr ? cls[rd_min(4, (uint64_t)((hasl) ? abs((a)[(pos) - 1]) : 0) + (uint64_t)((hasu) ? abs((a)[(pos) - W]) : 0))] \
         : 0)
    if (!L->dct) {
        for (size_t r = 0; r < (size_t)(r1 - r0) && !dd->failed; r++) {
            int16_t *row = q + r * W;
            /* positions from q: row + (c - W) would wrap the unsigned index (undefined) */
            for (size_t c = 0; c < W; c++)
                row[c] = (int16_t)rd_unzigzag(dec_get(dd, RD_NBR_CTX(q, r * W + c, c > 0, r > 0)));
        }
        *d = dl;
        return;
    }
    uint8_t base[DDCT_MAX_PATCH * DDCT_MAX_PATCH];
    for (size_t i = 0; i < p * p; i++) base[i] = (uint8_t)(bandmap[i] * bmul);
    for (size_t sr = 0; sr < m / W && !dd->failed; sr += p)
        for (size_t tc = 0; tc < W; tc += p) {
            int16_t *t = q + sr * W + tc;
            for (size_t u = 0; u < p; u++)
                for (size_t v = 0; v < p; v++) {
                    size_t pos = u * W + v;
                    t[pos] = (int16_t)rd_unzigzag(dec_get(dd, base[u * p + v] + RD_NBR_CTX(t, pos, v > 0, u > 0)));
                }
        }
    *d = dl;
#undef RD_NBR_CTX
}

/* Per-thread work buffers of a unit. */
typedef struct {
    int16_t *q;
    uint16_t *tmp;
    float *tile, *buf;
} unit_bufs;

static int bufs_get(unit_bufs *b, const rd_dec *D)
{
    const rd_layout *L = &D->L;
    size_t cap = (size_t)(L->unit_rows * L->cols_pad), p2 = (size_t)(L->p * L->p);
    b->q = malloc(cap * sizeof *b->q);
    b->tmp = malloc(p2 * sizeof *b->tmp);
    b->tile = malloc((p2 + ddct_xform_scratch_floats(D->xf)) * sizeof *b->tile);
    b->buf = malloc((size_t)(L->unit_rows * L->cols) * sizeof *b->buf);
    return b->q && b->tmp && b->tile && b->buf;
}

static void bufs_free(unit_bufs *b)
{
    free(b->q);
    free(b->tmp);
    free(b->tile);
    free(b->buf);
}

/* Decode unit k into b->buf (returns its value count, or 0 with *bad set on a corrupt unit); ob
 * (may be NULL) is shown the unit's quantized plane. */
static uint64_t unit_get(const rd_dec *D, uint64_t k, unit_bufs *b, const ddct_rd_observer *ob, int *bad)
{
    const rd_layout *L = &D->L;
    ddct_rans_dec d;
    ddct_err e2;
    ddct_err_clear(&e2);
    /* a unit of >= RD_X4_MIN symbols may be a four-state blob (version 2) or a word blob (version
     * 3): its header says; a kind the record's version does not have fails as corrupt */
    int kind = D->ul[k] ? D->ub[k][0] >> 6 : 0, x4 = L->ver >= 2 && kind == 2, w = L->ver >= 3 && kind == 3;
    if ((w ? ddct_rans_dec_init_w : x4 ? ddct_rans_dec_init_x4 : ddct_rans_dec_init)(&d, D->ub[k], D->ul[k], &e2)) {
        *bad = 1;
        return 0;
    }
    int fail = d.nctx > rd_ctx_count(L);
    if (!fail) unit_decode(L, k, D->bandmap, &d, b->q, b->tmp);
    if (fail || ddct_rans_dec_finish(&d, &e2)) fail = 1;
    ddct_rans_dec_free(&d);
    if (fail) {
        *bad = 1; /* q is not all written: nothing to rebuild */
        return 0;
    }
    if (ob && ob->unit) {
        size_t m = (size_t)(rd_min(L->rows_pad, (k + 1) * L->unit_rows) - k * L->unit_rows) * L->cols_pad;
        ob->unit(ob->opaque, k, b->q, m, (uint64_t)D->ul[k]);
    }
    return ddct_rd_unit_rebuild(L, D->xf, k, b->q, D->bandmap, D->uc, D->vc, NULL, b->buf, b->tile);
}

/* Units [u0, u1) decoded and rebuilt on `threads` threads, each handed to sink(opaque, k, values,
 * count) from its thread. 0, 1 (out of memory) or 2 (a corrupt unit). */
typedef void (*unit_sink)(void *opaque, uint64_t k, const float *v, uint64_t cnt);
static int decode_units(const rd_dec *D, uint64_t u0, uint64_t u1, int threads, const ddct_rd_observer *ob,
                        unit_sink sink, void *opaque)
{
    int failed = 0;
#pragma omp parallel num_threads(threads) if (u1 - u0 > 1)
    {
        unit_bufs b;
        int ok = bufs_get(&b, D);
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (uint64_t k = u0; k < u1; k++) {
            if (!ok || failed) continue;
            int bad = 0;
            uint64_t cnt = unit_get(D, k, &b, ob, &bad);
            if (bad) {
#pragma omp atomic write
                failed = 2;
                continue;
            }
            if (cnt) sink(opaque, k, b.buf, cnt);
        }
        bufs_free(&b);
    }
    return failed;
}

typedef struct {
    float *out;
    uint64_t per_unit;
} whole_sink;

static void to_array(void *opaque, uint64_t k, const float *v, uint64_t cnt)
{
    const whole_sink *w = opaque;
    memcpy(w->out + k * w->per_unit, v, (size_t)cnt * sizeof *v);
}

/* The whole rebuild into out (n floats), with the rescale as asked (-1: as stored); ob (may be
 * NULL, then decoding is serial) is shown the factor vectors and units. */
static int decode_whole(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out,
                        const ddct_rd_observer *ob, ddct_err *e)
{
    threads = ob ? 1 : rd_threads(threads);
    rd_dec D;
    FORWARD_IF_ERROR(dec_open(&D, rec, n, ob, e));
    const rd_layout *L = &D.L;
    if (ob && ob->layout) ob->layout(ob->opaque, L->r, L->dct);
    whole_sink ws = {out, L->unit_rows * L->cols};
    int rc = 0, prev = ddct_blas_serial_begin();
    int failed = decode_units(&D, 0, L->nunits, threads, ob, to_array, &ws);
    ddct_blas_serial_end(prev);
    if (failed) {
        rc = failed == 1 ? ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory")
                         : ddct_seterr(e, DDCT_ERR_FORMAT, "rd codec: corrupt residual stream");
    } else if (rescale < 0 ? L->rescale : rescale) {
        if (L->has_scale) {
            float s = L->scale;
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 1 << 18)
            for (uint64_t i = 0; i < n; i++) out[i] *= s;
        } else {
            ddct_rescale_to(out, n, L->mean_abs, threads);
        }
    }
    dec_free(&D);
    return rc;
}

int ddct_rd_decode(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out, ddct_err *e)
{
    return decode_whole(rec, n, threads, rescale, out, NULL, e);
}

int ddct_rd_record_factors(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_lr_factors *F,
                           ddct_err *e)
{
    memset(F, 0, sizeof *F);
    threads = rd_threads(threads);
    rd_dec D;
    FORWARD_IF_ERROR(dec_open(&D, rec, n, NULL, e));
    const rd_layout *L = &D.L;
    int rc = 0;
    F->scale = 1.0f;
    if (n && L->r && (rescale < 0 ? L->rescale : rescale)) {
        if (L->has_scale) {
            F->scale = L->scale;
        } else { /* versions 0 and 1: the factor of the whole rebuild */
            float *buf = malloc((size_t)n * sizeof *buf);
            rc = buf ? decode_whole(rec, n, threads, 0, buf, NULL, e)
                     : ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory (%llu values)", (unsigned long long)n);
            if (!rc) F->scale = ddct_rescale_factor(L->mean_abs, ddct_mean_abs(buf, n, threads));
            free(buf);
        }
    }
    if (!rc) {
        F->rows = (size_t)L->rows, F->cols = (size_t)L->cols, F->r = (size_t)L->r;
        F->uc = D.uc, F->vc = D.vc;
        D.uc = D.vc = NULL;
    }
    dec_free(&D);
    return rc;
}

int ddct_rd_decode_observed(const ddct_record *rec, uint64_t n, float *out, const ddct_rd_observer *ob, ddct_err *e)
{
    return decode_whole(rec, n, 1, 0, out, ob, e);
}

#define RD_SLICE ((uint64_t)4 << 20) /* values per output slice (about) */

typedef struct {
    const ddct_delta_out *out;
    uint64_t per_unit, first;
    float s;
} stream_sink;

static void to_out(void *opaque, uint64_t k, const float *v, uint64_t cnt)
{
    const stream_sink *t = opaque;
    t->out->put(t->out->opaque, k * t->per_unit, k * t->per_unit - t->first, v, cnt, t->s);
}

int ddct_rd_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scr,
                          const ddct_delta_out *out, ddct_err *e)
{
    threads = rd_threads(threads);
    rd_layout L;
    FORWARD_IF_ERROR(ddct_rd_parse_params(rec, n, &L, e));
    if (!L.has_scale && (rescale < 0 ? L.rescale : rescale)) { /* the factor needs the whole rebuild first */
        float *buf = ddct_scratch_get(scr, (size_t)n * sizeof(float));
        RETURN_ERROR_IF(!buf, e, DDCT_ERR_NOMEM, "out of memory (%llu values)", (unsigned long long)n);
        FORWARD_IF_ERROR(decode_whole(rec, n, threads, rescale, buf, NULL, e));
        return ddct_delta_out_array(out, buf, n, 1.0f, threads, e);
    }
    rd_dec D;
    FORWARD_IF_ERROR(dec_open(&D, rec, n, NULL, e));
    const rd_layout *Lp = &D.L;
    float s = (rescale < 0 ? Lp->rescale : rescale) ? Lp->scale : 1.0f;
    uint64_t per_unit = Lp->unit_rows * Lp->cols, ups = RD_SLICE / per_unit ? RD_SLICE / per_unit : 1;
    uint64_t nu = Lp->nunits;
    int rc = 0, failed = 0;
    int prev = ddct_blas_serial_begin();
    for (uint64_t u0 = 0; u0 < nu && !rc; u0 += ups) {
        uint64_t u1 = rd_min(nu, u0 + ups), first = u0 * per_unit;
        if (first >= n) break; /* padding units of a DCT plane hold no values */
        uint64_t m = rd_min(n, u1 * per_unit) - first;
        rc = out->begin(out->opaque, first, m, e);
        if (rc) break;
        stream_sink ss = {out, per_unit, first, s};
        failed = decode_units(&D, u0, u1, threads, NULL, to_out, &ss);
        if (failed) break;
        rc = out->end(out->opaque, first, m, e);
    }
    ddct_blas_serial_end(prev);
    if (!rc && failed)
        rc = failed == 1 ? ddct_seterr(e, DDCT_ERR_NOMEM, "rd codec: out of memory")
                         : ddct_seterr(e, DDCT_ERR_FORMAT, "rd codec: corrupt residual stream");
    dec_free(&D);
    return rc;
}
