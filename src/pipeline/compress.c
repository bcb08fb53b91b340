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

#include "common/dtype.h"
#include "io/ggufio.h"
#include "io/pytorch.h"
#include "layout.h"
#include "pipeline.h"

/* Default exclusions: embeddings, LM heads, classifiers, poolers, norms. */
#define DEFAULT_EXCLUDE "embed|(^|[._])(wte|wpe|lm_head|classifier|pooler|score)([._]|$)|norm|(^|[._])ln(_?[0-9a-z]*)?([._]|$)"

ddct_CCtx *ddct_createCCtx(void)
{
    ddct_CCtx *c = calloc(1, sizeof(ddct_CCtx));
    if (c) ddct_params_default(&c->params);
    return c;
}

void ddct_freeCCtx(ddct_CCtx *c)
{
    if (!c) return;
    ddct_notes_clear(&c->notes);
    free(c->include_re);
    free(c->exclude_re);
    free(c);
}

/* ---------------------------------------------------------------- the CCtx's parameters */

ddct_ErrorCode ddct_CCtx_setParameter(ddct_CCtx *c, ddct_cParameter param, double value)
{
    ddct_err_clear(&c->err);
    char msg[256];
    RETURN_ERROR_IF(ddct_params_setParameter(&c->params, param, value, msg, sizeof msg), &c->err, DDCT_ERR_PARAM,
                    "%s", msg);
    return DDCT_OK;
}

ddct_ErrorCode ddct_CCtx_getParameter(const ddct_CCtx *c, ddct_cParameter param, double *value)
{
    return ddct_params_getParameter(&c->params, param, value);
}

ddct_ErrorCode ddct_CCtx_setStrategy(ddct_CCtx *c, const char *bits)
{
    ddct_err_clear(&c->err);
    char msg[256];
    ddct_strategy s;
    RETURN_ERROR_IF(!bits || ddct_strategy_parse(bits, &s, msg, sizeof msg), &c->err, DDCT_ERR_PARAM, "--bits: %s",
                    bits ? msg : "no strategy given");
    c->params.bits = s;
    return DDCT_OK;
}

/* A copy of a POSIX ERE that compiles (NULL stays NULL); *bad set when it does not compile. */
static char *regex_copy(const char *re, int *bad)
{
    if (!re) return NULL;
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB)) {
        *bad = 1;
        return NULL;
    }
    regfree(&r);
    char *s = strdup(re);
    if (!s) *bad = 2;
    return s;
}

ddct_ErrorCode ddct_CCtx_setSelection(ddct_CCtx *c, const char *include_regex, const char *exclude_regex)
{
    ddct_err_clear(&c->err);
    int bad = 0;
    char *inc = regex_copy(include_regex, &bad), *exc = bad ? NULL : regex_copy(exclude_regex, &bad);
    if (bad) {
        free(inc);
        free(exc);
        if (bad == 2) RETURN_ERROR(&c->err, DDCT_ERR_NOMEM, "out of memory");
        RETURN_ERROR(&c->err, DDCT_ERR_PARAM, "not a valid regular expression: '%s'",
                     inc || !include_regex ? exclude_regex : include_regex);
    }
    free(c->include_re);
    free(c->exclude_re);
    c->params.include_regex = c->include_re = inc;
    c->params.exclude_regex = c->exclude_re = exc;
    return DDCT_OK;
}

ddct_ErrorCode ddct_CCtx_setParams(ddct_CCtx *c, const ddct_params *p)
{
    ddct_err_clear(&c->err);
    char msg[256];
    RETURN_ERROR_IF(!p, &c->err, DDCT_ERR_PARAM, "no parameters given");
    RETURN_ERROR_IF(ddct_params_check(p, msg, sizeof msg), &c->err, DDCT_ERR_PARAM, "%s", msg);
    FORWARD_IF_ERROR(ddct_CCtx_setSelection(c, p->include_regex, p->exclude_regex));
    const char *inc = c->params.include_regex, *exc = c->params.exclude_regex;
    c->params = *p;
    c->params.include_regex = inc;
    c->params.exclude_regex = exc;
    return DDCT_OK;
}

void ddct_CCtx_resetParameters(ddct_CCtx *c)
{
    free(c->include_re);
    free(c->exclude_re);
    c->include_re = c->exclude_re = NULL;
    ddct_params_default(&c->params);
}

void ddct_CCtx_setProgress(ddct_CCtx *c, ddct_progress_fn fn, void *opaque)
{
    c->progress = fn;
    c->progress_opaque = opaque;
}

const char *ddct_CCtx_getErrorMessage(const ddct_CCtx *c) { return c->err.msg; }
size_t ddct_CCtx_noteCount(const ddct_CCtx *c) { return c->notes.n; }
const char *ddct_CCtx_note(const ddct_CCtx *c, size_t i) { return ddct_notes_at(&c->notes, i); }

int ddct_selector_init(ddct_selector *s, const char *include_regex, const char *exclude_regex, ddct_err *e)
{
    memset(s, 0, sizeof *s);
    const char *ex = exclude_regex ? exclude_regex : DEFAULT_EXCLUDE;
    RETURN_ERROR_IF(regcomp(&s->exc, ex, REG_EXTENDED | REG_NOSUB | REG_ICASE), e, DDCT_ERR_PARAM,
                    "invalid --exclude regular expression '%s'", ex);
    if (include_regex) {
        if (regcomp(&s->inc, include_regex, REG_EXTENDED | REG_NOSUB | REG_ICASE)) {
            regfree(&s->exc);
            RETURN_ERROR(e, DDCT_ERR_PARAM, "invalid --include regular expression '%s'", include_regex);
        }
        s->has_inc = 1;
    }
    return 0;
}

void ddct_selector_free(ddct_selector *s)
{
    regfree(&s->exc);
    if (s->has_inc) regfree(&s->inc);
}

int ddct_selector_selects(const ddct_selector *s, const char *name)
{
    if (s->has_inc && regexec(&s->inc, name, 0, NULL, 0) == 0) return 1;
    return regexec(&s->exc, name, 0, NULL, 0) != 0;
}

static int same_shape(const ddct_st_tensor *a, const ddct_st_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* Lossy: float ft and base of the same shape, >= 2 dims, >= p^2 elements, name selected. */
static int is_lossy(const ddct_selector *s, const ddct_params *p, const ddct_st_tensor *t, const ddct_st_tensor *b)
{
    if (!b || !same_shape(t, b)) return 0;
    if (!ddct_dtype_is_lossy_float(t->dtype) || !ddct_dtype_is_lossy_float(b->dtype)) return 0;
    if (t->ndim < 2 || t->nelem < (uint64_t)p->patch * (uint64_t)p->patch) return 0;
    return ddct_selector_selects(s, t->name);
}

/* delta = ft - base in float32 for values [first, first + n) into d; returns 0 if any value
 * (input or delta) is not finite. */
static int make_delta_range(const ddct_st_tensor *t, const ddct_st_tensor *b, uint64_t first, uint64_t n, float *d,
                            int threads)
{
    const uint64_t CH = 1 << 16;
    size_t ts = ddct_dtype_size(t->dtype), bs = ddct_dtype_size(b->dtype);
    int finite = 1;
    /* a file that changed size is never read through its mapping (SIGBUS past its end): "not
     * finite", then the lossless path reads it with pread and reports the change */
    if (ddct_st_check(t->file, NULL) || ddct_st_check(b->file, NULL)) return 0;
    /* fused: ddct_sub_to_f32 converts, subtracts and checks in one pass */
#pragma omp parallel for num_threads(threads) schedule(static) reduction(&& : finite) if (n > 2 * CH)
    for (uint64_t c0 = 0; c0 < n; c0 += CH) {
        uint64_t m = n - c0 < CH ? n - c0 : CH;
        int ok = ddct_sub_to_f32(t->dtype, t->data + (first + c0) * ts, b->dtype, b->data + (first + c0) * bs,
                                 (size_t)m, d + c0);
        finite = finite && ok;
    }
    return finite;
}


static char *header_json(const ddct_params *p, const ddct_model *base, const ddct_model *ft)
{
    char desc[1024];
    ddct_params_describe(p, desc, sizeof desc);
    json_t *h = json_object();
    json_t *removed = json_array();
    for (size_t i = 0; i < ddct_model_count(base); i++) {
        const ddct_st_tensor *b = ddct_model_get(base, i);
        if (!ddct_model_find(ft, b->name)) json_array_append_new(removed, json_string(b->name));
    }
    const char *meta = ddct_st_metadata_json(ddct_model_shard(ft, 0));
    json_t *layout = ddct_layout_json(ft);
    if (!layout) {
        json_decref(h);
        json_decref(removed);
        return NULL;
    }
    json_object_set_new(h, "format", json_string("ddct"));
    json_object_set_new(h, "tool", json_string("deltadct " DDCT_VERSION_STRING));
    json_object_set_new(h, "options", json_string(desc));
    json_object_set_new(h, "metadata", meta ? json_string(meta) : json_null());
    json_object_set_new(h, "base_only", removed);
    json_object_set_new(h, "layout", layout);
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return s;
}

typedef struct {
    ddct_CCtx *c;
    const ddct_params *p;
    const ddct_selector *sel;
    int threads;
    ddct_ctr_writer *w;
    const ddct_codec_traits *ct; /* the method's lossy codec */
    ddct_plan *plan;  /* its rate plan over the model (NULL: none) */
    uint64_t *base_fp; /* per fine-tune tensor: its base tensor's fingerprint (hashed up front) */
    size_t cur;       /* index of the tensor being encoded */
    const ddct_model *ftm, *basem; /* to drop pages already read (see release_upto) */
} cjob;

/* Drop the pages of bytes [0, upto) of the current fine-tune tensor and its base tensor. */
static void release_upto(void *opaque, uint64_t upto)
{
    const cjob *j = opaque;
    if (!j->ftm) return;
    ddct_model_release_range(j->ftm, j->cur, 0, upto);
    ddct_model_release_range(j->basem, ddct_model_lookup(j->basem, ddct_model_get(j->ftm, j->cur)->name), 0, upto);
}

/* The current tensor's bytes [off, off + n) of the fine-tune (which = 0) or its base (1), by
 * pread (ddct_lossless_in.read): 0; -1 to read the mapping instead; DDCT_ERR_IO (e set) when the
 * input changed while reading. */
static int read_cur(void *opaque, int which, uint64_t off, void *buf, size_t n, ddct_err *e)
{
    const cjob *j = opaque;
    if (!which) return ddct_model_pread(j->ftm, j->cur, off, buf, n, e);
    return ddct_model_pread(j->basem, ddct_model_lookup(j->basem, ddct_model_get(j->ftm, j->cur)->name), off, buf, n,
                            e);
}

/* is_same in 1 MiB pieces read with pread (lossless tensors may be huge; nothing gets mapped),
 * through the mapping (pages dropped as compared) if a read fails. */
static int is_same_release(cjob *j, const ddct_st_tensor *t, const ddct_st_tensor *b)
{
    if (!b || b->dtype != t->dtype || !same_shape(t, b)) return 0;
    const uint64_t piece = (uint64_t)1 << 20;
    uint8_t *pb = malloc(2 * piece);
    int eq = 1;
    for (uint64_t a = 0; a < t->nbytes && eq; a += piece) {
        size_t m = (size_t)(t->nbytes - a < piece ? t->nbytes - a : piece);
        int r = pb ? read_cur(j, 0, a, pb, m, NULL) : -1;
        if (!r) r = read_cur(j, 1, a, pb + piece, m, NULL);
        if (!r) {
            eq = !memcmp(pb, pb + piece, m);
        } else if (r > 0 || ddct_st_check(t->file, NULL) || ddct_st_check(b->file, NULL)) {
            eq = 0; /* an input changed: its mapping is not read (the coding that follows reports it) */
        } else {
            eq = !memcmp(t->data + a, b->data + a, m);
            release_upto(j, a + m);
        }
    }
    free(pb);
    return eq;
}

/* Drop the pages of fine-tune tensor i and its base tensor: resident memory stays at about
 * one tensor of each input whatever the model size. */
static void release_pair(const ddct_model *ft, const ddct_model *base, size_t i)
{
    ddct_model_release(ft, i);
    ddct_model_release(base, ddct_model_lookup(base, ddct_model_get(ft, i)->name));
}

static int ctrw_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e) { return ddct_ctrw_data(opaque, p, n, e); }

/* A lossless record, streamed: the raw codec's output goes straight to the file, so memory
 * stays at a few DDCT_RAW_CHUNK chunks whatever the tensor size. */
static int write_raw(cjob *j, const ddct_ctr_entry *en, ddct_record *rec, const ddct_lossless_in *in, ddct_err *e)
{
    ddct_buf params;
    ddct_buf_init(&params);
    int rc = ddct_raw_params(in, &params, e);
    rec->codec = DDCT_CODEC_RAW;
    rec->params = params.p;
    rec->params_len = params.len;
    if (!rc) rc = ddct_ctrw_begin(j->w, en, rec, ddct_raw_data_bound(in->nbytes), e);
    if (!rc) rc = ddct_raw_stream(in, params.p, params.len, ctrw_sink, j->w, e);
    if (!rc) rc = ddct_ctrw_end(j->w, e);
    ddct_buf_free(&params);
    return rc;
}

static void release_map(void *opaque, uint64_t upto) { ddct_map_dontneed(opaque, 0, upto); }

/* A carried file's bytes by pread (ddct_lossless_in.read): 0; -1 (the mapping may be read: the
 * file still has its size); DDCT_ERR_IO when it changed size (reading the mapping could fault). */
static int read_file(void *opaque, int which, uint64_t off, void *buf, size_t n, ddct_err *e)
{
    const ddct_map *m = opaque;
    (void)which;
    int r = ddct_map_pread(m, off, buf, n);
    if (r == DDCT_MAP_CHANGED || (r != 0 && ddct_map_check(m, NULL)))
        return ddct_seterr(e, DDCT_ERR_IO, "input changed while reading");
    return r ? -1 : 0;
}

/* The directory's other files (config, tokenizer, index), byte for byte, after the tensors. */
static int write_files(cjob *j, const ddct_model *ft, ddct_err *e)
{
    for (size_t k = 0; k < ddct_model_file_count(ft); k++) {
        const char *name = ddct_model_file_name(ft, k);
        size_t len = strlen(DDCT_FILE_PREFIX) + strlen(name) + 1;
        char *rname = malloc(len);
        RETURN_ERROR_IF(!rname, e, DDCT_ERR_NOMEM, "out of memory");
        snprintf(rname, len, "%s%s", DDCT_FILE_PREFIX, name);
        ddct_map map;
        int rc = ddct_model_file_map(ft, k, &map, e);
        if (!rc && map.size != ddct_model_file_size(ft, k))
            rc = ddct_seterr(e, DDCT_ERR_IO, "%s: file '%s' changed size while compressing", ddct_model_path(ft), name);
        if (!rc) {
            ddct_ctr_entry en = {.name = rname, .dtype = DDCT_DT_U8, .ndim = 1, .shape = {map.size}, .nelem = map.size};
            ddct_record rec;
            memset(&rec, 0, sizeof rec);
            /* files (config, tokenizer: text) want real match finding: level 1 for the tensor setting 0 */
            ddct_lossless_in in = {.ft = map.p, .nbytes = map.size, .elsize = 1, .read = read_file, .read_opaque = &map,
                                   .level = j->p->zstd_level ? j->p->zstd_level : 1,
                                   .threads = j->threads, .consumed = release_map, .consumed_opaque = &map};
            rc = write_raw(j, &en, &rec, &in, e);
            ddct_map_close(&map);
            if (rc) ddct_err_prefix(e, "%s: file '%s': ", ddct_model_path(ft), name);
        }
        free(rname);
        FORWARD_IF_ERROR(rc);
    }
    return 0;
}

/* The patch codec's source: the delta of values [first, first + n) of the current tensor (one
 * strip, called from several threads), whose input pages are dropped once read (so resident
 * memory stays at a few strips of each input). */
typedef struct {
    cjob *j;
    const ddct_st_tensor *t, *b;
} delta_src;

static const float *read_delta(void *opaque, uint64_t first, uint64_t n, float *buf, int threads, ddct_err *e)
{
    const delta_src *s = opaque;
    const cjob *j = s->j;
    size_t ts = ddct_dtype_size(s->t->dtype), bs = ddct_dtype_size(s->b->dtype);
    /* Both inputs' bytes are read with pread into buf's scratch (room for 8 bytes a value), so
     * no page of the mapped inputs is touched: reading through the mapping cost a page fault per
     * 64 KiB and a madvise + TLB shootdown per strip to drop them again (a fifth of the CPU time,
     * all in the kernel), and the mapped pages counted in the resident set. */
    uint8_t *raw = (uint8_t *)(buf + n);
    int r = read_cur(s->j, 0, first * ts, raw, (size_t)(n * ts), e);
    if (!r) r = read_cur(s->j, 1, first * bs, raw + n * ts, (size_t)(n * bs), e);
    if (!r) return ddct_sub_to_f32(s->t->dtype, raw, s->b->dtype, raw + n * ts, (size_t)n, buf) ? buf : NULL;
    /* an input changed (e set), or a failed read of files that still have their size: then
     * through the mapping, pages dropped as read */
    if (r > 0 || ddct_st_check(s->t->file, e) || ddct_st_check(s->b->file, e)) return NULL;
    int finite = make_delta_range(s->t, s->b, first, n, buf, threads);
    ddct_model_release_range(j->ftm, j->cur, first * ts, n * ts);
    ddct_model_release_range(j->basem, ddct_model_lookup(j->basem, s->t->name), first * bs, n * bs);
    return finite ? buf : NULL;
}

/* The lossy codec's input for the current tensor j->cur: its delta read strip by strip. */
static ddct_lossy_in lossy_input(cjob *j, const ddct_st_tensor *t, delta_src *ds, int *nonfinite)
{
    ddct_lossy_in in = {.ndim = t->ndim, .shape = t->shape, .nelem = t->nelem, .params = j->p, .threads = j->threads,
                        .src = read_delta, .src_opaque = ds, .nonfinite = nonfinite};
    return in;
}

/* The plan's view of tensor i: its input if encode_tensor would code it lossily. */
typedef struct {
    cjob *j;
    delta_src ds;
    int nonfinite;
} plan_src;

static int plan_tensor(void *opaque, size_t i, ddct_lossy_in *in, ddct_err *e)
{
    plan_src *s = opaque;
    cjob *j = s->j;
    const ddct_st_tensor *t = ddct_model_get(j->ftm, i), *b = ddct_model_find(j->basem, t->name);
    (void)e;
    release_pair(j->ftm, j->basem, i);
    if (!is_lossy(j->sel, j->p, t, b) || is_same_release(j, t, b)) return 0;
    j->cur = i;
    s->ds = (delta_src){j, t, b};
    *in = lossy_input(j, t, &s->ds, &s->nonfinite);
    return 1;
}

/* Lossy coding of t against b into out; *coded = 0 when a value is not finite (then raw). With
 * a rate plan, the plan gives the step and the most bytes the record may take, and is told the
 * bytes it took. */
static int encode_lossy(cjob *j, const ddct_st_tensor *t, const ddct_st_tensor *b, ddct_record *rec,
                        ddct_enc_out *out, int *coded, ddct_err *e)
{
    rec->codec = j->ct->id;
    delta_src ds = {j, t, b};
    int nonfinite = 0;
    ddct_lossy_in in = lossy_input(j, t, &ds, &nonfinite);
    if (j->plan) in.step = j->ct->plan->step(j->plan, j->cur, &in.cap);
    FORWARD_IF_ERROR(j->ct->encode_lossy(&in, out, e));
    *coded = !nonfinite;
    if (j->plan && !nonfinite) {
        FORWARD_IF_ERROR(ddct_enc_out_check(out, e));
        j->ct->plan->spent(j->plan, j->cur, ddct_record_size(b != NULL, out->params.len, out->side.len, out->data.len));
    }
    return 0;
}

static int encode_tensor(cjob *j, const ddct_st_tensor *t, const ddct_st_tensor *b, ddct_err *e)
{
    ddct_enc_out out;
    ddct_enc_out_init(&out);
    ddct_record rec;
    memset(&rec, 0, sizeof rec);
    ddct_ctr_entry en;
    memset(&en, 0, sizeof en);
    en.name = (char *)t->name;
    en.dtype = t->dtype;
    en.ndim = t->ndim;
    memcpy(en.shape, t->shape, (size_t)t->ndim * sizeof *en.shape);
    int rc = 0, coded = 0, lossy = 0;
    if (b) {
        rec.flags = DDCT_REC_HAS_BASE;
        rec.base_fp = j->base_fp[j->cur];
    }
    if (is_same_release(j, t, b)) {
        rec.codec = DDCT_CODEC_SAME;
        coded = 1;
    } else if ((lossy = is_lossy(j->sel, j->p, t, b))) {
        rc = encode_lossy(j, t, b, &rec, &out, &coded, e);
    }
    if (!rc && !coded) {
        if (lossy) ddct_notes_tensor(&j->c->notes, t->name, "holds NaN or Inf: stored losslessly");
        int against = b && b->nbytes == t->nbytes && b->dtype == t->dtype;
        ddct_lossless_in in = {.ft = t->data, .base = against ? b->data : NULL, .nbytes = t->nbytes,
                               .elsize = ddct_dtype_size(t->dtype), .level = j->p->zstd_level,
                               .threads = j->threads, .consumed = release_upto, .consumed_opaque = j,
                               .read = read_cur, .read_opaque = j};
        ddct_enc_out_free(&out);
        rc = write_raw(j, &en, &rec, &in, e);
        if (rc) ddct_err_prefix(e, "tensor '%s': ", t->name);
        return rc;
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
    char msg[256];
    RETURN_ERROR_IF(ddct_params_check(p, msg, sizeof msg), e, DDCT_ERR_PARAM, "%s", msg);
    return 0;
}

/* Memory bound (default patch method): per thread one float32 strip (p rows of the tensor's 2-D
 * view), the per-patch tables of the tensor (~20 bytes a patch) and its coded record, the raw codec's chunks and zstd windows (a few DDCT_RAW_CHUNK per
 * thread), and the mapped input pages of the slice or chunk being coded, dropped as each is
 * read. Peak RSS therefore does not grow with the model or tensor size (README.md, "Scale").
 * The other lossy methods hold one float32 copy of the largest lossy tensor. */
static int compress(ddct_CCtx *c, const char *base_path, const char *ft_path, const char *out_path,
                    const ddct_params *p, int overwrite, ddct_model *base, ddct_model *ft, ddct_Base *bh)
{
    ddct_params eff;
    ddct_params_effective(p, &eff);
    p = &eff;
    ddct_err *e = &c->err;
    /* base and ft: models already open (owned from here on), else opened from their paths; bh: a
     * base opened once (kept open, its fingerprints reused) */
    if (bh) {
        base = bh->m;
        base_path = bh->path;
    }
    ddct_model *own_base = bh ? NULL : base;
    int rc = check_params(p, e);
    if (!rc && !base) rc = ddct_model_open(&base, base_path, e), own_base = base;
    if (!rc && !ft) rc = ddct_model_open(&ft, ft_path, e);
    if (rc) {
        ddct_model_close(own_base);
        ddct_model_close(ft);
        return rc;
    }
    for (size_t k = 0; !rc && k < ddct_model_shard_count(ft); k++) { /* can it be written back? */
        const ddct_st_file *sh = ddct_model_shard(ft, k);
        int kind = ddct_st_kind(sh);
        rc = kind == DDCT_ST_GGUF ? ddct_ggio_writable(sh, e) : kind == DDCT_ST_PYTORCH ? ddct_pt_writable(sh, e) : 0;
    }
    if (rc) {
        ddct_model_close(own_base);
        ddct_model_close(ft);
        return rc;
    }
    ddct_selector sel;
    rc = ddct_selector_init(&sel, p->include_regex, p->exclude_regex, e);
    if (rc) {
        ddct_model_close(own_base);
        ddct_model_close(ft);
        return rc;
    }
    for (size_t k = 0; k < ddct_model_ignored_count(ft); k++)
        ddct_notes_tensor(&c->notes, ddct_model_ignored(ft, k), "a weights file the model does not use (not in its index, or the same weights in another format): left out");
    cjob j = {.c = c, .p = p, .sel = &sel, .threads = ddct_resolve_threads(p->threads), .ftm = ft, .basem = base};
    uint64_t total = 0, done_bytes = 0;
    size_t n = ddct_model_count(ft);
    for (size_t i = 0; i < n; i++) {
        const ddct_st_tensor *t = ddct_model_get(ft, i);
        total += t->nbytes;
    }
    char *hj = header_json(p, base, ft);
    if (!hj) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    j.ct = ddct_codec_for_method(p->method);
    if (!rc && j.ct->plan) { /* e.g. rd: one Lagrangian slope for every tensor of the model */
        plan_src src = {.j = &j};
        rc = j.ct->plan->create(&j.plan, n, plan_tensor, &src, p, j.threads, e);
    }
    /* base fingerprints, tensors hashed in parallel (pages dropped as hashed) */
    j.base_fp = calloc(n ? n : 1, sizeof *j.base_fp);
    if (!rc && !j.base_fp) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
#pragma omp parallel for num_threads(j.threads) schedule(dynamic) if (!rc && n > 1)
    for (size_t i = 0; i < n; i++) {
        if (rc) continue;
        size_t bi = ddct_model_lookup(base, ddct_model_get(ft, i)->name);
        if (bi != DDCT_MODEL_NONE) j.base_fp[i] = bh ? ddct_base_fp_cached(bh, bi) : ddct_base_fingerprint(base, bi);
    }
    const char *inputs[3] = {NULL, NULL, NULL}; /* the files read (not tensors in memory) */
    size_t ni = 0;
    if (base_path) inputs[ni++] = base_path;
    if (ft_path) inputs[ni++] = ft_path;
    if (!rc) rc = ddct_ctrw_open(&j.w, out_path, overwrite, inputs, hj, e);
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_st_tensor *t = ddct_model_get(ft, i);
        j.cur = i;
        rc = encode_tensor(&j, t, ddct_model_find(base, t->name), e);
        release_pair(ft, base, i);
        done_bytes += t->nbytes;
        if (!rc && c->progress && c->progress(c->progress_opaque, i + 1, n, done_bytes, total, t->name))
            rc = ddct_seterr(e, DDCT_ERR_CANCELLED, "cancelled");
    }
    if (!rc) rc = write_files(&j, ft, e);
    if (!rc) {
        rc = ddct_ctrw_commit(j.w, e);
        j.w = NULL;
    }
    ddct_ctrw_abort(j.w);
    free(hj);
    if (j.plan) j.ct->plan->free(j.plan);
    free(j.base_fp);
    ddct_selector_free(&sel);
    ddct_model_close(own_base);
    ddct_model_close(ft);
    return rc;
}

ddct_ErrorCode ddct_compressFiles(ddct_CCtx *c, const char *base_path, const char *ft_path, const char *out_path,
                                  const ddct_params *p, int overwrite)
{
    ddct_err_clear(&c->err);
    ddct_notes_clear(&c->notes);
    ddct_params def;
    if (!p) {
        ddct_params_default(&def);
        p = &def;
    }
    return (ddct_ErrorCode)compress(c, base_path, ft_path, out_path, p, overwrite, NULL, NULL, NULL);
}

ddct_ErrorCode ddct_compressWithBase(ddct_CCtx *c, ddct_Base *base, const char *ft_path, const char *out_path,
                                     const ddct_params *p, int overwrite)
{
    ddct_err_clear(&c->err);
    ddct_notes_clear(&c->notes);
    RETURN_ERROR_IF(!base, &c->err, DDCT_ERR_PARAM, "no base given");
    ddct_params def;
    if (!p) {
        ddct_params_default(&def);
        p = &def;
    }
    return (ddct_ErrorCode)compress(c, NULL, ft_path, out_path, p, overwrite, NULL, NULL, base);
}

/* tensors[0..n) as ddct_st_mem_tensor (dtypes by name), or DDCT_ERR_PARAM naming a bad dtype. */
static int mem_tensors(const ddct_tensor *t, size_t n, ddct_st_mem_tensor **out, ddct_err *e)
{
    *out = calloc(n + 1, sizeof **out);
    RETURN_ERROR_IF(!*out, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        ddct_dtype dt = t[i].dtype ? ddct_dtype_from_name(t[i].dtype, strlen(t[i].dtype)) : DDCT_DT_INVALID;
        RETURN_ERROR_IF(dt == DDCT_DT_INVALID, e, DDCT_ERR_PARAM, "tensor '%s': unknown dtype '%s'",
                        t[i].name ? t[i].name : "(null)", t[i].dtype ? t[i].dtype : "(null)");
        (*out)[i] = (ddct_st_mem_tensor){t[i].name, dt, t[i].ndim, t[i].shape, t[i].data};
    }
    return 0;
}

ddct_ErrorCode ddct_CCtx_compressTensors(ddct_CCtx *c, const char *base_path, const ddct_tensor *base, size_t nbase,
                                         const ddct_tensor *ft, size_t nft, const char *out_path, int overwrite)
{
    ddct_err *e = &c->err;
    ddct_err_clear(e);
    ddct_notes_clear(&c->notes);
    ddct_st_mem_tensor *bt = NULL, *ftt = NULL;
    ddct_model *bm = NULL, *fm = NULL;
    int rc = base_path ? 0 : mem_tensors(base, nbase, &bt, e);
    if (!rc) rc = mem_tensors(ft, nft, &ftt, e);
    if (!rc && !base_path) rc = ddct_model_open_mem(&bm, "base (in memory)", "model.safetensors", bt, nbase, e);
    if (!rc) rc = ddct_model_open_mem(&fm, "fine-tune (in memory)", "model.safetensors", ftt, nft, e);
    free(bt);
    free(ftt);
    if (rc) {
        ddct_model_close(bm);
        ddct_model_close(fm);
        return (ddct_ErrorCode)rc;
    }
    return (ddct_ErrorCode)compress(c, base_path, NULL, out_path, &c->params, overwrite, bm, fm, NULL);
}

ddct_ErrorCode ddct_CCtx_compress(ddct_CCtx *c, const char *base_path, const char *ft_path, const char *out_path,
                                  int overwrite)
{
    return ddct_compressFiles(c, base_path, ft_path, out_path, &c->params, overwrite);
}
