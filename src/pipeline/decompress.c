/*
 * decompress.c — .ddct + BASE -> rebuilt fine-tune; verify; evaluate.
 *
 * Rebuild of a lossy tensor: delta^ from its codec (with the rescale step if stored or
 * forced), then base (as float32) + delta^, cast to the fine-tune's dtype (round to nearest
 * even). Lossless tensors come back byte-identical. Every base tensor a record depends on is
 * fingerprinted before anything is written, so a wrong base fails early, naming the tensor.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "pipeline.h"

ddct_DCtx *ddct_createDCtx(void)
{
    ddct_DCtx *d = calloc(1, sizeof *d);
    if (d) d->rescale = -1;
    return d;
}
void ddct_freeDCtx(ddct_DCtx *d) { free(d); }
void ddct_DCtx_setProgress(ddct_DCtx *d, ddct_progress_fn fn, void *opaque)
{
    d->progress = fn;
    d->progress_opaque = opaque;
}
void ddct_DCtx_setThreads(ddct_DCtx *d, int threads) { d->threads = threads; }
void ddct_DCtx_setRescale(ddct_DCtx *d, int rescale) { d->rescale = rescale < 0 ? -1 : !!rescale; }
const char *ddct_DCtx_getErrorMessage(const ddct_DCtx *d) { return d->err.msg; }

static int same_shape(const ddct_ctr_entry *en, const ddct_st_tensor *b)
{
    if (en->ndim != b->ndim) return 0;
    for (int d = 0; d < en->ndim; d++)
        if (en->shape[d] != b->shape[d]) return 0;
    return 1;
}

int ddct_check_base(const ddct_ctr_reader *r, const ddct_st_file *base, ddct_err *e)
{
    for (size_t i = 0; i < ddct_ctr_count(r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        ddct_record rec;
        FORWARD_IF_ERROR(ddct_ctr_record(r, i, 0, &rec, e));
        if (!(rec.flags & DDCT_REC_HAS_BASE)) continue;
        const ddct_st_tensor *b = ddct_st_find(base, en->name);
        RETURN_ERROR_IF(!b, e, DDCT_ERR_BASE_MISMATCH,
                        "%s: tensor '%s' is missing from the base %s: wrong base model?", ddct_ctr_path(r),
                        en->name, ddct_st_path(base));
        uint64_t fp = ddct_tensor_fingerprint(b->dtype, b->ndim, b->shape, b->data, b->nbytes);
        RETURN_ERROR_IF(fp != rec.base_fp, e, DDCT_ERR_BASE_MISMATCH,
                        "%s: tensor '%s' of the base %s differs from the one this delta was made against "
                        "(fingerprint %016llx, expected %016llx): wrong base model",
                        ddct_ctr_path(r), en->name, ddct_st_path(base), (unsigned long long)fp,
                        (unsigned long long)rec.base_fp);
    }
    return 0;
}

/* base (any float dtype) + delta -> out (dtype dt), in chunks. */
static void add_cast(const ddct_st_tensor *b, const float *delta, uint64_t n, ddct_dtype dt, uint8_t *out,
                     int threads)
{
    const uint64_t CH = 1 << 14;
    size_t bs = ddct_dtype_size(b->dtype), os = ddct_dtype_size(dt);
#pragma omp parallel num_threads(threads)
    {
        float tmp[1 << 14];
#pragma omp for schedule(static)
        for (uint64_t c0 = 0; c0 < n; c0 += CH) {
            uint64_t m = n - c0 < CH ? n - c0 : CH;
            ddct_to_f32(b->dtype, b->data + c0 * bs, (size_t)m, tmp);
            for (uint64_t i = 0; i < m; i++) tmp[i] += delta[c0 + i];
            ddct_from_f32(dt, tmp, (size_t)m, out + c0 * os);
        }
    }
}

int ddct_decode_tensor(const ddct_ctr_reader *r, size_t i, const ddct_st_file *base, int threads, int rescale,
                       uint8_t *out, ddct_err *e)
{
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    ddct_record rec;
    int rc = ddct_ctr_record(r, i, 1, &rec, e);
    if (rc) return rc;
    const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
    RETURN_ERROR_IF(!ct, e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u (written by a newer deltadct?)",
                    ddct_ctr_path(r), en->name, rec.codec);
    const ddct_st_tensor *b = NULL;
    if (rec.flags & DDCT_REC_HAS_BASE) {
        b = base ? ddct_st_find(base, en->name) : NULL;
        RETURN_ERROR_IF(!b, e, DDCT_ERR_BASE_MISMATCH, "%s: tensor '%s' needs its base tensor", ddct_ctr_path(r),
                        en->name);
    }
    uint64_t nbytes = en->nelem * ddct_dtype_size(en->dtype);
    if (ct->lossy) {
        RETURN_ERROR_IF(!b || !same_shape(en, b) || !ddct_dtype_is_lossy_float(b->dtype) ||
                            !ddct_dtype_is_lossy_float(en->dtype),
                        e, DDCT_ERR_FORMAT, "%s: tensor '%s': lossy record without a matching float base tensor",
                        ddct_ctr_path(r), en->name);
        float *d = malloc(en->nelem ? (size_t)en->nelem * sizeof(float) : 1);
        RETURN_ERROR_IF(!d, e, DDCT_ERR_NOMEM, "out of memory (%llu elements)", (unsigned long long)en->nelem);
        rc = ct->decode_lossy(&rec, en->nelem, threads, rescale, d, e);
        if (!rc) add_cast(b, d, en->nelem, en->dtype, out, threads);
        free(d);
    } else {
        int against = b && b->nbytes == nbytes;
        rc = ct->decode_lossless(&rec, against ? b->data : NULL, nbytes, ddct_dtype_size(en->dtype), out, e);
    }
    if (rc) ddct_err_prefix(e, "%s: tensor '%s': ", ddct_ctr_path(r), en->name);
    return rc;
}

/* The fine-tune's __metadata__ JSON text from the header (NULL if none). */
static int header_metadata(const ddct_ctr_reader *r, char **meta, ddct_err *e)
{
    *meta = NULL;
    json_error_t je;
    json_t *h = json_loads(ddct_ctr_header_json(r), JSON_REJECT_DUPLICATES, &je);
    RETURN_ERROR_IF(!h || !json_is_object(h), e, DDCT_ERR_FORMAT, "%s: header JSON invalid: %s", ddct_ctr_path(r),
                    h ? "not an object" : je.text);
    json_t *m = json_object_get(h, "metadata");
    int rc = 0;
    if (m && json_is_string(m)) {
        *meta = strdup(json_string_value(m));
        if (!*meta) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    } else if (m && !json_is_null(m)) {
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: header 'metadata' must be a string", ddct_ctr_path(r));
    }
    json_decref(h);
    return rc;
}

typedef struct {
    ddct_ctr_reader *r;
    ddct_st_file *base;
} opened;

static int open_both(opened *o, const char *ddct_path, const char *base_path, ddct_err *e)
{
    memset(o, 0, sizeof *o);
    FORWARD_IF_ERROR(ddct_ctr_open(&o->r, ddct_path, e));
    if (!base_path) return 0;
    int rc = ddct_st_open(&o->base, base_path, e);
    if (!rc) rc = ddct_check_base(o->r, o->base, e);
    return rc;
}

static void close_both(opened *o)
{
    ddct_ctr_close(o->r);
    ddct_st_close(o->base);
}

static int decompress(ddct_DCtx *d, const char *base_path, const char *ddct_path, const char *out_path, int overwrite)
{
    ddct_err *e = &d->err;
    opened o;
    int rc = open_both(&o, ddct_path, base_path, e);
    size_t n = o.r ? ddct_ctr_count(o.r) : 0;
    ddct_st_entry *ents = calloc(n + 1, sizeof *ents);
    char *meta = NULL;
    uint64_t maxb = 1, total = 0;
    if (!rc && !ents) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) rc = header_metadata(o.r, &meta, e);
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        ents[i] = (ddct_st_entry){.name = en->name, .dtype = en->dtype, .ndim = en->ndim, .shape = en->shape};
        uint64_t nb = en->nelem * ddct_dtype_size(en->dtype);
        if (nb > maxb) maxb = nb;
        total += nb;
    }
    ddct_st_writer *w = NULL;
    const char *inputs[] = {base_path, ddct_path, NULL};
    if (!rc) rc = ddct_stw_open(&w, out_path, overwrite, inputs, ents, n, meta, e);
    uint8_t *buf = rc ? NULL : malloc((size_t)maxb);
    if (!rc && !buf) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%llu bytes)", (unsigned long long)maxb);
    int threads = ddct_resolve_threads(d->threads);
    uint64_t done_bytes = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        uint64_t nb = en->nelem * ddct_dtype_size(en->dtype);
        rc = ddct_decode_tensor(o.r, i, o.base, threads, d->rescale, buf, e);
        if (!rc) rc = ddct_stw_write(w, buf, (size_t)nb, e);
        done_bytes += nb;
        if (!rc && d->progress && d->progress(d->progress_opaque, i + 1, n, done_bytes, total, en->name))
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "cancelled");
    }
    if (!rc) {
        rc = ddct_stw_commit(w, e);
        w = NULL;
    }
    ddct_stw_abort(w);
    free(buf);
    free(meta);
    free(ents);
    close_both(&o);
    return rc;
}

ddct_ErrorCode ddct_decompressFile(ddct_DCtx *d, const char *base_path, const char *ddct_path, const char *out_path,
                                   int overwrite)
{
    ddct_err_clear(&d->err);
    return (ddct_ErrorCode)decompress(d, base_path, ddct_path, out_path, overwrite);
}

ddct_ErrorCode ddct_verifyFile(ddct_DCtx *d, const char *ddct_path, const char *base_path)
{
    ddct_err *e = &d->err;
    ddct_err_clear(e);
    opened o;
    int rc = open_both(&o, ddct_path, base_path, e);
    char *meta = NULL;
    if (!rc) rc = header_metadata(o.r, &meta, e);
    free(meta);
    for (size_t i = 0; !rc && i < ddct_ctr_count(o.r); i++) {
        ddct_record rec;
        rc = ddct_ctr_record(o.r, i, 1, &rec, e);
        if (!rc && !ddct_codec_get(rec.codec))
            rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u", ddct_path,
                             ddct_ctr_entry_at(o.r, i)->name, rec.codec);
    }
    close_both(&o);
    return (ddct_ErrorCode)rc;
}

static void compare(const ddct_st_tensor *ft, const ddct_st_tensor *b, const uint8_t *rebuilt, ddct_tensor_eval *ev)
{
    const size_t CH = 4096;
    float x[4096], y[4096], z[4096];
    for (uint64_t c0 = 0; c0 < ft->nelem; c0 += CH) {
        size_t m = (size_t)(ft->nelem - c0 < CH ? ft->nelem - c0 : CH);
        ddct_to_f32(ft->dtype, ft->data + c0 * ddct_dtype_size(ft->dtype), m, x);
        ddct_to_f32(ft->dtype, rebuilt + c0 * ddct_dtype_size(ft->dtype), m, y);
        if (b) ddct_to_f32(b->dtype, b->data + c0 * ddct_dtype_size(b->dtype), m, z);
        else memset(z, 0, m * sizeof *z);
        for (size_t i = 0; i < m; i++) {
            double dd = (double)x[i] - z[i], dh = (double)y[i] - z[i], err = dh - dd;
            ev->err2 += err * err;
            ev->ref2 += dd * dd;
            ev->dot += dd * dh;
            ev->hat2 += dh * dh;
            if (err < 0) err = -err;
            if (err > ev->max_abs_err) ev->max_abs_err = err;
        }
    }
}

static int evaluate(ddct_DCtx *d, const char *base_path, const char *ft_path, const char *ddct_path, ddct_eval_fn cb,
                    void *opaque)
{
    ddct_err *e = &d->err;
    opened o;
    ddct_st_file *ft = NULL;
    int rc = open_both(&o, ddct_path, base_path, e);
    if (!rc) rc = ddct_st_open(&ft, ft_path, e);
    int threads = ddct_resolve_threads(d->threads);
    for (size_t i = 0; !rc && i < ddct_ctr_count(o.r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        const ddct_st_tensor *t = ddct_st_find(ft, en->name);
        if (!t || t->dtype != en->dtype || t->nelem != en->nelem) {
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s' of the .ddct is not in %s with the same dtype and size",
                             ft_path, en->name, ft_path);
            break;
        }
        uint8_t *buf = malloc(t->nbytes ? (size_t)t->nbytes : 1);
        if (!buf) {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
            break;
        }
        rc = ddct_decode_tensor(o.r, i, o.base, threads, d->rescale, buf, e);
        ddct_record rec;
        if (!rc) rc = ddct_ctr_record(o.r, i, 0, &rec, e);
        if (!rc) {
            const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
            ddct_tensor_eval ev = {.name = en->name, .lossy = ct->lossy, .nparams = en->nelem};
            if (ddct_dtype_is_lossy_float(t->dtype)) {
                const ddct_st_tensor *b = ddct_st_find(o.base, en->name);
                compare(t, b && b->nelem == t->nelem && ddct_dtype_is_lossy_float(b->dtype) ? b : NULL, buf, &ev);
            } else if (memcmp(buf, t->data, (size_t)t->nbytes)) {
                ev.err2 = ev.max_abs_err = 1; /* lossless mismatch: cannot happen unless corrupt */
            }
            if (cb) cb(opaque, &ev);
        }
        free(buf);
    }
    ddct_st_close(ft);
    close_both(&o);
    return rc;
}

ddct_ErrorCode ddct_evaluate(ddct_DCtx *d, const char *base_path, const char *ft_path, const char *ddct_path,
                             ddct_eval_fn cb, void *opaque)
{
    ddct_err_clear(&d->err);
    return (ddct_ErrorCode)evaluate(d, base_path, ft_path, ddct_path, cb, opaque);
}
