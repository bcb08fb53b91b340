/*
 * compress.c — BASE + FINETUNED safetensors -> .ddct.
 *
 * Per fine-tune tensor, in file order:
 *   equal to the base tensor (dtype, shape, bytes)          -> SAME (no payload)
 *   lossy-eligible (see is_lossy) and all values finite     -> the chosen lossy codec on
 *                                                              delta = ft - base in float32
 *   otherwise                                               -> RAW (zstd, xor with base if it helps)
 * Tensors only in the base are listed in the header ("base_only").
 */
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/dtype.h"
#include "pipeline.h"

/* Default exclusions: embeddings, LM heads, classifiers, poolers, norms. */
#define DEFAULT_EXCLUDE "embed|(^|[._])(wte|wpe|lm_head|classifier|pooler|score)([._]|$)|norm|(^|[._])ln(_?[0-9a-z]*)?([._]|$)"

int ddct_resolve_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_num_procs();
#endif
    return threads > 0 ? threads : 1;
}

ddct_CCtx *ddct_createCCtx(void) { return calloc(1, sizeof(ddct_CCtx)); }

static void clear_notes(ddct_CCtx *c)
{
    for (size_t i = 0; i < c->nnotes; i++) free(c->notes[i]);
    free(c->notes);
    c->notes = NULL;
    c->nnotes = 0;
}

void ddct_freeCCtx(ddct_CCtx *c)
{
    if (!c) return;
    clear_notes(c);
    free(c);
}

void ddct_CCtx_setProgress(ddct_CCtx *c, ddct_progress_fn fn, void *opaque)
{
    c->progress = fn;
    c->progress_opaque = opaque;
}

const char *ddct_CCtx_getErrorMessage(const ddct_CCtx *c) { return c->err.msg; }
size_t ddct_CCtx_noteCount(const ddct_CCtx *c) { return c->nnotes; }
const char *ddct_CCtx_note(const ddct_CCtx *c, size_t i) { return i < c->nnotes ? c->notes[i] : NULL; }

static void add_note(ddct_CCtx *c, const char *name, const char *what)
{
    char **n = realloc(c->notes, (c->nnotes + 1) * sizeof *n);
    if (!n) return;
    c->notes = n;
    size_t len = strlen(name) + strlen(what) + 16;
    char *s = malloc(len);
    if (!s) return;
    snprintf(s, len, "tensor '%s': %s", name, what);
    c->notes[c->nnotes++] = s;
}

typedef struct {
    regex_t inc, exc;
    int has_inc;
} selector;

static int selector_init(selector *s, const ddct_params *p, ddct_err *e)
{
    memset(s, 0, sizeof *s);
    const char *ex = p->exclude_regex ? p->exclude_regex : DEFAULT_EXCLUDE;
    RETURN_ERROR_IF(regcomp(&s->exc, ex, REG_EXTENDED | REG_NOSUB | REG_ICASE), e, DDCT_ERR_PARAM,
                    "invalid --exclude regular expression '%s'", ex);
    if (p->include_regex) {
        if (regcomp(&s->inc, p->include_regex, REG_EXTENDED | REG_NOSUB | REG_ICASE)) {
            regfree(&s->exc);
            RETURN_ERROR(e, DDCT_ERR_PARAM, "invalid --include regular expression '%s'", p->include_regex);
        }
        s->has_inc = 1;
    }
    return 0;
}

static void selector_free(selector *s)
{
    regfree(&s->exc);
    if (s->has_inc) regfree(&s->inc);
}

static int same_shape(const ddct_st_tensor *a, const ddct_st_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* Lossy: float ft and base of the same shape, >= 2 dims, >= p^2 elements, name selected. */
static int is_lossy(const selector *s, const ddct_params *p, const ddct_st_tensor *t, const ddct_st_tensor *b)
{
    if (!b || !same_shape(t, b)) return 0;
    if (!ddct_dtype_is_lossy_float(t->dtype) || !ddct_dtype_is_lossy_float(b->dtype)) return 0;
    if (t->ndim < 2 || t->nelem < (uint64_t)p->patch * (uint64_t)p->patch) return 0;
    if (s->has_inc && regexec(&s->inc, t->name, 0, NULL, 0) == 0) return 1;
    return regexec(&s->exc, t->name, 0, NULL, 0) != 0;
}

/* delta = ft - base in float32; returns 0 if any value (input or delta) is not finite. */
static int make_delta(const ddct_st_tensor *t, const ddct_st_tensor *b, float *d, float *tmp, int threads)
{
    const uint64_t CH = 1 << 16;
    int finite = 1;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(&& : finite)
    for (uint64_t c0 = 0; c0 < t->nelem; c0 += CH) {
        uint64_t n = t->nelem - c0 < CH ? t->nelem - c0 : CH;
        ddct_to_f32(t->dtype, t->data + c0 * ddct_dtype_size(t->dtype), (size_t)n, d + c0);
        ddct_to_f32(b->dtype, b->data + c0 * ddct_dtype_size(b->dtype), (size_t)n, tmp + c0);
        int ok = 1;
        for (uint64_t i = c0; i < c0 + n; i++) {
            float x = d[i] - tmp[i];
            ok &= isfinite(d[i]) && isfinite(tmp[i]) && isfinite(x);
            d[i] = x;
        }
        finite = finite && ok;
    }
    return finite;
}

static const ddct_codec_traits *lossy_codec(const ddct_params *p)
{
    switch (p->method) {
    case DDCT_METHOD_BITDELTA: return &ddct_codec_bitdelta;
    case DDCT_METHOD_SVD: return &ddct_codec_svd;
    default: return &ddct_codec_patch;
    }
}

static char *header_json(const ddct_params *p, const ddct_st_file *base, const ddct_st_file *ft)
{
    char desc[1024];
    ddct_params_describe(p, desc, sizeof desc);
    json_t *h = json_object();
    json_t *removed = json_array();
    for (size_t i = 0; i < ddct_st_count(base); i++) {
        const ddct_st_tensor *b = ddct_st_get(base, i);
        if (!ddct_st_find(ft, b->name)) json_array_append_new(removed, json_string(b->name));
    }
    const char *meta = ddct_st_metadata_json(ft);
    json_object_set_new(h, "format", json_string("ddct"));
    json_object_set_new(h, "tool", json_string("deltadct " DDCT_VERSION_STRING));
    json_object_set_new(h, "options", json_string(desc));
    json_object_set_new(h, "metadata", meta ? json_string(meta) : json_null());
    json_object_set_new(h, "base_only", removed);
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return s;
}

typedef struct {
    ddct_CCtx *c;
    const ddct_params *p;
    const selector *sel;
    int threads;
    ddct_ctr_writer *w;
    float *d, *tmp; /* sized for the largest tensor */
} cjob;

static int encode_tensor(cjob *j, const ddct_st_tensor *t, const ddct_st_tensor *b, ddct_err *e)
{
    ddct_enc_out out;
    ddct_enc_out_init(&out);
    ddct_record rec;
    memset(&rec, 0, sizeof rec);
    ddct_ctr_entry en;
    memset(&en, 0, sizeof en);
    en.name = t->name;
    en.dtype = t->dtype;
    en.ndim = t->ndim;
    memcpy(en.shape, t->shape, sizeof en.shape);
    int rc = 0;
    if (b) {
        rec.flags = DDCT_REC_HAS_BASE;
        rec.base_fp = ddct_tensor_fingerprint(b->dtype, b->ndim, b->shape, b->data, b->nbytes);
    }
    if (b && b->dtype == t->dtype && same_shape(t, b) && !memcmp(t->data, b->data, (size_t)t->nbytes)) {
        rec.codec = DDCT_CODEC_SAME;
    } else if (is_lossy(j->sel, j->p, t, b) && make_delta(t, b, j->d, j->tmp, j->threads)) {
        const ddct_codec_traits *ct = lossy_codec(j->p);
        ddct_lossy_in in = {.delta = j->d, .ndim = t->ndim, .shape = t->shape, .nelem = t->nelem,
                            .params = j->p, .threads = j->threads};
        rec.codec = ct->id;
        rc = ct->encode_lossy(&in, &out, e);
    } else {
        if (is_lossy(j->sel, j->p, t, b)) add_note(j->c, t->name, "holds NaN or Inf: stored losslessly");
        int against = b && b->nbytes == t->nbytes && b->dtype == t->dtype;
        ddct_lossless_in in = {.ft = t->data, .base = against ? b->data : NULL, .nbytes = t->nbytes,
                               .elsize = ddct_dtype_size(t->dtype), .level = j->p->zstd_level,
                               .threads = j->threads};
        rec.codec = DDCT_CODEC_RAW;
        rc = ddct_codec_raw.encode_lossless(&in, &out, e);
    }
    if (!rc) rc = ddct_enc_out_check(&out, e);
    if (!rc) {
        rec.params = out.params.p;
        rec.params_len = out.params.len;
        rec.side = out.side.p;
        rec.side_len = out.side.len;
        rec.data = out.data.p;
        rec.data_len = out.data.len;
        rc = ddct_ctrw_add(j->w, &en, &rec, e);
    }
    ddct_enc_out_free(&out);
    if (rc) ddct_err_prefix(e, "tensor '%s': ", t->name);
    return rc;
}

static int check_params(const ddct_params *p, ddct_err *e)
{
    RETURN_ERROR_IF(p->patch < 2 || p->patch > 128, e, DDCT_ERR_PARAM, "--patch must be 2..128 (got %d)", p->patch);
    RETURN_ERROR_IF(p->bits.n < 1 || p->bits.n > DDCT_MAX_BITS_LEVELS, e, DDCT_ERR_PARAM, "empty --bits strategy");
    double sum = 0;
    for (int i = 0; i < p->bits.n; i++) {
        RETURN_ERROR_IF(p->bits.bits[i] < 0 || p->bits.bits[i] > DDCT_MAX_BITWIDTH, e, DDCT_ERR_PARAM,
                        "--bits widths must be 0..8");
        sum += p->bits.frac[i];
    }
    RETURN_ERROR_IF(fabs(sum - 1) > 1e-3, e, DDCT_ERR_PARAM, "--bits fractions must sum to 1");
    RETURN_ERROR_IF((unsigned)p->method >= DDCT_METHOD_COUNT || (unsigned)p->transform >= DDCT_TRANSFORM_COUNT ||
                        (unsigned)p->wavelet >= DDCT_WAVELET_COUNT || (unsigned)p->dwt_keep >= DDCT_KEEP_COUNT ||
                        (unsigned)p->importance >= DDCT_IMPORTANCE_COUNT || (unsigned)p->qtable >= DDCT_QTABLE_COUNT,
                    e, DDCT_ERR_PARAM, "invalid enumerated parameter");
    RETURN_ERROR_IF(p->dwt_levels < 1 || p->dwt_levels > 6, e, DDCT_ERR_PARAM, "--dwt-levels must be 1..6");
    RETURN_ERROR_IF(p->zstd_level < 1 || p->zstd_level > 22, e, DDCT_ERR_PARAM, "--zstd-level must be 1..22");
    return 0;
}

static int compress(ddct_CCtx *c, const char *base_path, const char *ft_path, const char *out_path,
                    const ddct_params *p, int overwrite, ddct_st_file *base, ddct_st_file *ft)
{
    ddct_err *e = &c->err;
    FORWARD_IF_ERROR(check_params(p, e));
    FORWARD_IF_ERROR(ddct_st_open(&base, base_path, e));
    int rc = ddct_st_open(&ft, ft_path, e);
    if (rc) {
        ddct_st_close(base);
        return rc;
    }
    selector sel;
    rc = selector_init(&sel, p, e);
    if (rc) {
        ddct_st_close(base);
        ddct_st_close(ft);
        return rc;
    }
    cjob j = {.c = c, .p = p, .sel = &sel, .threads = ddct_resolve_threads(p->threads)};
    uint64_t maxn = 1, total = 0, done_bytes = 0;
    size_t n = ddct_st_count(ft);
    for (size_t i = 0; i < n; i++) {
        const ddct_st_tensor *t = ddct_st_get(ft, i);
        if (t->nelem > maxn) maxn = t->nelem;
        total += t->nbytes;
    }
    char *hj = header_json(p, base, ft);
    j.d = malloc((size_t)maxn * sizeof(float));
    j.tmp = malloc((size_t)maxn * sizeof(float));
    if (!hj || !j.d || !j.tmp) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%llu-element tensor)",
                                                (unsigned long long)maxn);
    const char *inputs[] = {base_path, ft_path, NULL};
    if (!rc) rc = ddct_ctrw_open(&j.w, out_path, overwrite, inputs, hj, e);
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_st_tensor *t = ddct_st_get(ft, i);
        rc = encode_tensor(&j, t, ddct_st_find(base, t->name), e);
        done_bytes += t->nbytes;
        if (!rc && c->progress && c->progress(c->progress_opaque, i + 1, n, done_bytes, total, t->name))
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "cancelled");
    }
    if (!rc) {
        rc = ddct_ctrw_commit(j.w, e);
        j.w = NULL;
    }
    ddct_ctrw_abort(j.w);
    free(hj);
    free(j.d);
    free(j.tmp);
    selector_free(&sel);
    ddct_st_close(base);
    ddct_st_close(ft);
    return rc;
}

ddct_ErrorCode ddct_compressFiles(ddct_CCtx *c, const char *base_path, const char *ft_path, const char *out_path,
                                  const ddct_params *p, int overwrite)
{
    ddct_err_clear(&c->err);
    clear_notes(c);
    ddct_params def;
    if (!p) {
        ddct_params_default(&def);
        p = &def;
    }
    return (ddct_ErrorCode)compress(c, base_path, ft_path, out_path, p, overwrite, NULL, NULL);
}
