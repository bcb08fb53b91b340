/*
 * decompress.c — .ddct + BASE -> rebuilt fine-tune; verify; evaluate.
 *
 * Rebuild of a lossy tensor: delta^ from its codec (with the rescale step if stored or
 * forced), then base (as float32) + delta^, cast to the fine-tune's dtype (round to nearest
 * even). Lossless tensors come back byte-identical. Every base tensor a record depends on is
 * fingerprinted from the bytes the decoder reads of it (one read of the base, not two) and
 * checked when the tensor is done, before the output is committed; those a decode does not read
 * (and every one for verify --quick) when the .ddct is opened (ddct_check_base). A base of
 * another shape or dtype, or without a tensor a record needs, fails when opened. Every failure
 * names the tensor; a failed output is never committed.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "common/dtype.h"
#include "common/odir.h"
#include "common/ofile.h"
#include "io/ggufio.h"
#include "io/pytorch.h"
#include "layout.h"
#include "pipeline.h"

ddct_DCtx *ddct_createDCtx(void)
{
    ddct_DCtx *d = calloc(1, sizeof *d);
    if (d) d->rescale = d->direct = d->format = -1;
    return d;
}
void ddct_freeDCtx(ddct_DCtx *d)
{
    if (!d) return;
    ddct_DCtx_close(d);
    ddct_notes_clear(&d->notes);
    free(d);
}

size_t ddct_DCtx_noteCount(const ddct_DCtx *d) { return d->notes.n; }
const char *ddct_DCtx_note(const ddct_DCtx *d, size_t i) { return ddct_notes_at(&d->notes, i); }

char *ddct_saturation_note(const char *name, ddct_dtype dt, uint64_t n)
{
    const char *maxv = dt == DDCT_DT_F16 ? "65504" : dt == DDCT_DT_BF16 ? "3.3895314e38" : "3.4028235e38";
    size_t len = strlen(name) + 160;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "tensor '%s': %llu rebuilt value%s beyond the %s range saturated to +-%s", name,
                 (unsigned long long)n, n == 1 ? "" : "s", ddct_dtype_name(dt), maxv);
    return s;
}

static void note_saturated(ddct_DCtx *d, const ddct_ctr_reader *r, size_t i, uint64_t n)
{
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    if (n) ddct_notes_take(&d->notes, ddct_saturation_note(en->name, en->dtype, n));
}
void ddct_DCtx_setProgress(ddct_DCtx *d, ddct_progress_fn fn, void *opaque)
{
    d->progress = fn;
    d->progress_opaque = opaque;
}
/* Clamped, never refused (the setter returns nothing): below 0 is 0 (all cores), above
 * DDCT_MAX_THREADS is DDCT_MAX_THREADS. Unclamped, -T 100000 reached OpenMP's thread-team
 * setup, which sizes a stack array by the team and crashed. */
void ddct_DCtx_setThreads(ddct_DCtx *d, int threads)
{
    d->threads = threads < 0 ? 0 : threads > DDCT_MAX_THREADS ? DDCT_MAX_THREADS : threads;
}
void ddct_DCtx_setRescale(ddct_DCtx *d, int rescale) { d->rescale = rescale < 0 ? -1 : !!rescale; }
void ddct_DCtx_setDirectIO(ddct_DCtx *d, int direct) { d->direct = direct < 0 ? -1 : !!direct; }
ddct_ErrorCode ddct_DCtx_setFormat(ddct_DCtx *d, int format)
{
    if (format < DDCT_FORMAT_AS_INPUT || format > DDCT_FORMAT_GGUF) {
        ddct_seterr(&d->err, DDCT_ERR_PARAM, "output format %d: not one of as-input, safetensors, pytorch, gguf",
                    format);
        return DDCT_ERR_PARAM;
    }
    d->format = format;
    return DDCT_OK;
}
const char *ddct_DCtx_getErrorMessage(const ddct_DCtx *d) { return d->err.msg; }

static int same_shape(const ddct_ctr_entry *en, const ddct_st_tensor *b)
{
    if (en->ndim != b->ndim) return 0;
    for (int d = 0; d < en->ndim; d++)
        if (en->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* The error for base tensor bi of record i whose fingerprint is got, not want: the base file
 * changed while read (ddct_model_check says so), else a wrong base. */
static int base_differs(const ddct_ctr_reader *r, size_t i, const ddct_model *base, size_t bi, uint64_t got,
                        uint64_t want, ddct_err *e)
{
    const char *name = ddct_ctr_entry_at(r, i)->name;
    if (ddct_model_check(base, bi, e)) return ddct_err_prefix(e, "tensor '%s': ", name);
    return ddct_seterr(e, DDCT_ERR_BASE_MISMATCH,
                       "%s: tensor '%s' of the base %s differs from the one this delta was made against "
                       "(fingerprint %016llx, expected %016llx): wrong base model",
                       ddct_ctr_path(r), name, ddct_model_path(base), (unsigned long long)got,
                       (unsigned long long)want);
}

/* A lossy record's base tensor must have the record's shape and a float dtype (the encoder
 * makes deltas only so): anything else is another model. */
static int lossy_base_fits(const ddct_ctr_entry *en, const ddct_st_tensor *b)
{
    return same_shape(en, b) && ddct_dtype_is_lossy_float(b->dtype);
}

static int base_misfit(const ddct_ctr_reader *r, size_t i, const ddct_model *base, const ddct_st_tensor *b,
                       ddct_err *e)
{
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    return ddct_seterr(e, DDCT_ERR_BASE_MISMATCH,
                       "%s: tensor '%s' of the base %s is a %s tensor of another shape or dtype than the one this "
                       "delta was made against: wrong base model",
                       ddct_ctr_path(r), en->name, ddct_model_path(base), ddct_dtype_name(b->dtype));
}

int ddct_check_base(const ddct_ctr_reader *r, const ddct_model *base, int threads, int all, ddct_err *e)
{
    return ddct_check_base_cached(r, base, NULL, threads, all, e);
}

int ddct_check_base_cached(const ddct_ctr_reader *r, const ddct_model *base, ddct_Base *cache, int threads, int all,
                           ddct_err *e)
{
    size_t n = ddct_ctr_count(r), m = 0; /* records [0, m) read */
    size_t *bi = malloc((n ? n : 1) * sizeof *bi);
    uint64_t *want = malloc((n ? n : 1) * sizeof *want), *got = malloc((n ? n : 1) * sizeof *got);
    char *state = calloc(n ? n : 1, 1); /* 1: missing from the base, 2: of another shape or dtype */
    int rc = bi && want && got && state ? 0 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (rc) n = 0;
    for (; m < n && !rc; m++) {
        ddct_record rec;
        bi[m] = DDCT_MODEL_NONE;
        rc = ddct_ctr_record(r, m, 0, &rec, e); /* an error here comes after any base error before m */
        ddct_ctr_release(r, m); /* only its head was read: keep no page of it resident */
        if (rc || !(rec.flags & DDCT_REC_HAS_BASE)) continue;
        want[m] = rec.base_fp;
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, m);
        size_t k = ddct_model_lookup(base, en->name);
        const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
        if (k == DDCT_MODEL_NONE) state[m] = 1;
        else if (ct && ct->lossy && !lossy_base_fits(en, ddct_model_get(base, k))) state[m] = 2;
        else if (all || !ct || (!ct->lossy && ddct_model_get(base, k)->nbytes != en->nelem * ddct_dtype_size(en->dtype)))
            bi[m] = k; /* hashed here; the others as decoded */
    }
    /* fingerprints in parallel (tensors one to a thread, pages dropped as hashed); the first
     * failure in record order is reported */
    (void)threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (m > 1)
    for (size_t i = 0; i < m; i++) {
        if (bi[i] != DDCT_MODEL_NONE) got[i] = cache ? ddct_base_fp_cached(cache, bi[i]) : ddct_base_fingerprint(base, bi[i]);
    }
    int brc = 0;
    for (size_t i = 0; i < m && !brc; i++) {
        if (state[i] == 1)
            brc = ddct_seterr(e, DDCT_ERR_BASE_MISMATCH, "%s: tensor '%s' is missing from the base %s: wrong base model?",
                              ddct_ctr_path(r), ddct_ctr_entry_at(r, i)->name, ddct_model_path(base));
        else if (state[i] == 2)
            brc = base_misfit(r, i, base, ddct_model_get(base, ddct_model_lookup(base, ddct_ctr_entry_at(r, i)->name)), e);
        else if (bi[i] != DDCT_MODEL_NONE && got[i] != want[i])
            brc = base_differs(r, i, base, bi[i], got[i], want[i], e);
    }
    free(bi);
    free(want);
    free(got);
    free(state);
    return brc ? brc : rc;
}

/* Rebuilds a lossy tensor from delta^ (ddct_delta_out): each slice is cast(base + delta^ * s)
 * into an output buffer, piece by piece on any thread, then goes to the sink; the base's pages
 * are dropped once used. The base's bytes of a slice, read into one of two buffers, are added to
 * its fingerprint by the first piece of the next slice to start (on whichever thread; the others
 * take more of the slice's pieces meanwhile), or at the slice's end when no piece claimed them. */
typedef struct {
    const ddct_st_tensor *b;
    const ddct_model *base;
    size_t bi;
    ddct_dtype dt;
    ddct_dec_scratch *ds;
    uint8_t *out;  /* the current slice, in dt */
    uint8_t *braw; /* the base's bytes of the current slice */
    ddct_fp *fp;   /* the base's fingerprint, fed slice by slice */
    int bflip;     /* braw is ds->braw[bflip] */
    const uint8_t *hash_p; /* the previous slice's base bytes, not yet hashed (hash_n: how many) */
    size_t hash_n;
    int hash_claimed; /* a piece took them */
    int changed;   /* the base file changed size: its mapping was not read (reported by cast_end) */
    uint64_t saturated; /* values saturated by ddct_add_cast */
    ddct_sink_fn sink;
    void *opaque;
} cast_job;

/* The previous slice's base bytes into the fingerprint, unless a piece took them. */
static void cast_hash_pending(cast_job *c)
{
    if (!c->hash_claimed) ddct_fp_add(c->fp, c->hash_p, c->hash_n);
    c->hash_claimed = 1;
}

static int cast_begin(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    cast_job *c = opaque;
    (void)first;
    c->out = ddct_scratch_get(&c->ds->out[c->ds->flip], (size_t)(n ? n : 1) * ddct_dtype_size(c->dt));
    c->braw = ddct_scratch_get(&c->ds->braw[c->bflip], (size_t)(n ? n : 1) * ddct_dtype_size(c->b->dtype));
    RETURN_ERROR_IF(!c->out || !c->braw, e, DDCT_ERR_NOMEM, "out of memory (%llu-value slice)", (unsigned long long)n);
    return 0;
}

static void cast_put(void *opaque, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    cast_job *c = opaque;
    size_t bs = ddct_dtype_size(c->b->dtype);
    int claimed;
#pragma omp atomic capture
    {
        claimed = c->hash_claimed;
        c->hash_claimed = 1;
    }
    if (!claimed) ddct_fp_add(c->fp, c->hash_p, c->hash_n);
    /* the base's bytes by pread into this piece's part of the slice's buffer (no page of the
     * mapping touched: see read_delta in compress.c), else (a failed read of a file that still
     * has its size) from the mapping; a base that changed size is not read at all */
    uint8_t *b = c->braw + rel * bs;
    int r = ddct_model_pread(c->base, c->bi, first * bs, b, (size_t)(n * bs), NULL);
    if (r > 0 || (r < 0 && ddct_model_check(c->base, c->bi, NULL))) {
#pragma omp atomic write
        c->changed = 1;
        return;
    }
    if (r < 0) memcpy(b, c->b->data + first * bs, (size_t)(n * bs)); /* in braw too: it is hashed */
    /* fused convert + scale + add + cast (vectorized, same values), saturated to the dtype's range */
    uint64_t sat = ddct_add_cast(c->b->dtype, b, d, s, (size_t)n, c->dt, c->out + rel * ddct_dtype_size(c->dt));
    if (sat) {
#pragma omp atomic update
        c->saturated += sat;
    }
}

static int cast_end(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    cast_job *c = opaque;
    size_t bs = ddct_dtype_size(c->b->dtype);
    if (c->changed) {
        FORWARD_IF_ERROR(ddct_model_check(c->base, c->bi, e));
        RETURN_ERROR(e, DDCT_ERR_IO, "input changed while reading: %s",
                     ddct_st_path(ddct_model_shard(c->base, ddct_model_shard_of(c->base, c->bi))));
    }
    cast_hash_pending(c);
    c->hash_p = c->braw;
    c->hash_n = (size_t)(n * bs);
    c->hash_claimed = 0;
    c->bflip ^= 1;
    ddct_model_release_range(c->base, c->bi, first * bs, n * bs);
    size_t len = (size_t)(n * ddct_dtype_size(c->dt));
    if (!c->ds->aw) return c->sink(c->opaque, c->out, len, e);
    c->ds->flip ^= 1; /* the writer holds this buffer until the next submit returns */
    return ddct_aw_submit(c->ds->aw, c->out, len, e);
}

void ddct_dec_scratch_free(ddct_dec_scratch *s)
{
    ddct_scratch_free(&s->delta);
    ddct_scratch_free(&s->out[0]);
    ddct_scratch_free(&s->out[1]);
    ddct_scratch_free(&s->braw[0]);
    ddct_scratch_free(&s->braw[1]);
}

/* A lossy record: delta^ from the codec slice by slice (the streaming codecs never hold the
 * whole tensor; the others rebuild it in s->delta first). */
static int decode_lossy(const ddct_codec_traits *ct, const ddct_record *rec, uint64_t n, int threads, int rescale,
                        cast_job *c, ddct_dec_scratch *s, ddct_err *e)
{
    c->ds = s;
    ddct_delta_out out = {cast_begin, cast_put, cast_end, c};
    return ct->decode_stream(rec, n, threads, rescale, &s->delta, &out, e);
}

/* A sink converting a float tensor's bytes (whole elements) to float32 for the next sink. */
typedef struct {
    ddct_dtype dt;
    ddct_sink_fn sink;
    void *opaque;
} f32_sink;

static int to_f32_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    const f32_sink *c = opaque;
    size_t es = ddct_dtype_size(c->dt);
    RETURN_ERROR_IF(n % es, e, DDCT_ERR_INTERNAL, "a piece of %zu bytes is not whole %zu-byte values", n, es);
    float tmp[4096];
    for (size_t a = 0; a < n / es; a += 4096) {
        size_t m = n / es - a < 4096 ? n / es - a : 4096;
        ddct_to_f32(c->dt, p + a * es, m, tmp);
        FORWARD_IF_ERROR(c->sink(c->opaque, (const uint8_t *)tmp, m * sizeof *tmp, e));
    }
    return 0;
}

int ddct_decode_stream(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       ddct_dec_scratch *scratch, int as_f32, ddct_sink_fn sink, void *opaque, uint64_t *saturated,
                       ddct_err *e)
{
    if (saturated) *saturated = 0;
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    ddct_record rec;
    int rc = ddct_ctr_record(r, i, 1, &rec, e);
    if (rc) return rc;
    const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
    RETURN_ERROR_IF(!ct, e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u (written by a newer deltadct?)",
                    ddct_ctr_path(r), en->name, rec.codec);
    size_t bi = DDCT_MODEL_NONE;
    const ddct_st_tensor *b = NULL;
    if (rec.flags & DDCT_REC_HAS_BASE) {
        bi = base ? ddct_model_lookup(base, en->name) : DDCT_MODEL_NONE;
        b = bi == DDCT_MODEL_NONE ? NULL : ddct_model_get(base, bi);
        RETURN_ERROR_IF(!b, e, DDCT_ERR_BASE_MISMATCH, "%s: tensor '%s' needs its base tensor", ddct_ctr_path(r),
                        en->name);
    }
    uint64_t nbytes = en->nelem * ddct_dtype_size(en->dtype), fp = 0;
    int check_fp = 0; /* fp is the base tensor's fingerprint, to be checked */
    RETURN_ERROR_IF(as_f32 && !ddct_dtype_is_lossy_float(en->dtype), e, DDCT_ERR_PARAM,
                    "%s: tensor '%s' is %s, not a float tensor: it has no float32 form", ddct_ctr_path(r), en->name,
                    ddct_dtype_name(en->dtype));
    /* as float32: the values decompress writes, converted (exactly), whatever the codec */
    f32_sink conv = {en->dtype, sink, opaque};
    if (as_f32 && en->dtype != DDCT_DT_F32) {
        sink = to_f32_sink;
        opaque = &conv;
    }
    if (ct->lossy) {
        RETURN_ERROR_IF(!b || !ddct_dtype_is_lossy_float(en->dtype), e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': lossy record of a %s tensor%s", ddct_ctr_path(r), en->name,
                        ddct_dtype_name(en->dtype), b ? "" : " without a base");
        if (!lossy_base_fits(en, b)) return base_misfit(r, i, base, b, e);
        ddct_dec_scratch own = {0};
        cast_job c = {.b = b, .base = base, .bi = bi, .dt = en->dtype, .sink = sink, .opaque = opaque, .hash_claimed = 1};
        c.fp = ddct_fp_start(b->dtype, b->ndim, b->shape);
        RETURN_ERROR_IF(!c.fp, e, DDCT_ERR_NOMEM, "out of memory");
        rc = decode_lossy(ct, &rec, en->nelem, threads, rescale, &c, scratch ? scratch : &own, e);
        cast_hash_pending(&c); /* before own's buffers go */
        ddct_dec_scratch_free(&own);
        fp = ddct_fp_finish(c.fp);
        check_fp = 1;
        if (saturated) *saturated = c.saturated;
    } else {
        /* a base tensor of the record's size is fingerprinted as the decode reads it (all of it,
         * or none: then here, after); one of another size was when the .ddct was opened */
        int against = b && b->nbytes == nbytes;
        ddct_piece pr = {.base = base, .bi = bi, .r = r, .data = rec.data, .sink = sink, .opaque = opaque};
        if (against && !(pr.fp = ddct_fp_start(b->dtype, b->ndim, b->shape)))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        ddct_lossless_base lb = {against ? b->data : NULL, ddct_piece_read_base, ddct_piece_seen, &pr};
        if (!rc && scratch && scratch->aw) rc = ddct_aw_wait(scratch->aw, e); /* its pieces go first */
        if (!rc)
            rc = ddct_lossless_decode_stream(&rec, &lb, nbytes, ddct_dtype_size(en->dtype), threads, ddct_piece_sink,
                                             &pr, ddct_piece_release_both, e);
        fp = ddct_fp_finish(pr.fp);
        if (!rc && against && pr.fp_bytes != b->nbytes) fp = ddct_base_fingerprint(base, bi);
        check_fp = against;
    }
    if (rc) ddct_err_prefix(e, "%s: tensor '%s': ", ddct_ctr_path(r), en->name);
    else if (check_fp && fp != rec.base_fp) rc = base_differs(r, i, base, bi, fp, rec.base_fp, e);
    if (bi != DDCT_MODEL_NONE) ddct_model_release(base, bi);
    ddct_ctr_release(r, i);
    return rc;
}

int ddct_decode_tensor(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       ddct_dec_scratch *scratch, int as_f32, uint8_t *out, uint64_t *saturated, ddct_err *e)
{
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    ddct_mem_sink s = {out, en->nelem * (as_f32 ? sizeof(float) : ddct_dtype_size(en->dtype)), 0};
    FORWARD_IF_ERROR(
        ddct_decode_stream(r, i, base, threads, rescale, scratch, as_f32, ddct_mem_sink_write, &s, saturated, e));
    RETURN_ERROR_IF(s.pos != s.n, e, DDCT_ERR_FORMAT, "%s: tensor '%s': decoded stream shorter than the tensor",
                    ddct_ctr_path(r), en->name);
    return 0;
}

typedef struct {
    ddct_ctr_reader *r;
    ddct_model *base;
    ddct_layout L;
    ddct_Base *bh; /* the base opened once (then base is bh->m, not closed here) */
} opened;

/* all: every base tensor fingerprinted now (else most as they are decoded: ddct_check_base).
 * bh: a base opened once instead of base_path. */
static int open_both(opened *o, const char *ddct_path, const char *base_path, ddct_Base *bh, int threads, int all,
                     ddct_err *e)
{
    memset(o, 0, sizeof *o);
    FORWARD_IF_ERROR(ddct_ctr_open(&o->r, ddct_path, e));
    FORWARD_IF_ERROR(ddct_layout_read(&o->L, o->r, e));
    if (bh) {
        o->bh = bh;
        o->base = bh->m;
        return ddct_check_base_cached(o->r, o->base, bh, threads, all, e);
    }
    if (!base_path) return 0;
    int rc = ddct_model_open(&o->base, base_path, e);
    if (!rc) rc = ddct_check_base(o->r, o->base, threads, all, e);
    return rc;
}

static void close_both(opened *o)
{
    ddct_layout_free(&o->L);
    ddct_ctr_close(o->r);
    if (!o->bh) ddct_model_close(o->base);
}

/* ---------------------------------------------------------------- writing the fine-tune */

typedef struct {
    ddct_DCtx *d;
    opened *o;
    const char *const *inputs;
    int threads;
    size_t done, total;
    uint64_t done_bytes, total_bytes;
    ddct_dec_scratch scratch; /* lossy tensors' buffers, reused */
} wjob;

/* A tensor file being written, in one of the formats (a destination manager: the decoders
 * only see its sink). */
typedef struct {
    int format;
    ddct_st_writer *st;
    ddct_pt_writer *pt;
    ddct_ggio_writer *gg;
} tfile;

static int tfile_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    tfile *t = opaque;
    return t->format == DDCT_ST_PYTORCH ? ddct_ptw_write(t->pt, p, n, e)
           : t->format == DDCT_ST_GGUF  ? ddct_ggio_write(t->gg, p, n, e)
                                        : ddct_stw_write(t->st, p, n, e);
}

static int ofile_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    return ddct_ofile_write(opaque, p, n, e);
}

/* Records that are written again under other names (tied weights into a format that cannot
 * share: a PyTorch fine-tune written as safetensors): names and their records (absolute). */
typedef struct {
    const char **names;
    size_t *rec, n;
} copies;

static int open_tfile(wjob *j, tfile *t, const char *path, const ddct_layout_shard *sh, size_t first, size_t count,
                      int overwrite, copies *cp)
{
    ddct_err *e = &j->d->err;
    ddct_st_entry *ents = calloc(count + 1, sizeof *ents);
    RETURN_ERROR_IF(!ents, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(j->o->r, first + i);
        ents[i] = (ddct_st_entry){.name = en->name, .dtype = en->dtype, .ndim = en->ndim, .shape = en->shape};
    }
    int rc = 0;
    if ((t->format == DDCT_ST_GGUF) != (sh->format == DDCT_ST_GGUF))
        rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED,
                         "%s: shard '%s' is %s: GGUF files are rebuilt as GGUF, and only from GGUF (its metadata and "
                         "tensor types have no place in the other formats)",
                         ddct_ctr_path(j->o->r), sh->name ? sh->name : "", ddct_format_name(sh->format));
    else if (t->format == DDCT_ST_GGUF) {
        rc = sh->fmt ? ddct_ggio_wopen(&t->gg, path, overwrite, j->inputs, sh->fmt, ents, count, e)
                     : ddct_seterr(e, DDCT_ERR_FORMAT, "%s: a GGUF shard without its layout", ddct_ctr_path(j->o->r));
    } else if (t->format == DDCT_ST_PYTORCH) {
        json_t *plain = sh->fmt ? NULL : ddct_pt_layout_plain(ents, count);
        const json_t *lay = sh->fmt ? sh->fmt : plain;
        rc = lay ? ddct_ptw_open(&t->pt, path, overwrite, j->inputs, lay, ents, count, e)
                 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        json_decref(plain);
        if (!rc && (j->d->direct > 0 || (j->d->direct < 0 && ddct_ptw_data_bytes(t->pt) >= DDCT_DIRECT_MIN_BYTES)))
            (void)ddct_ptw_set_direct(t->pt);
    } else {
        size_t na = 0;
        const char **an = NULL;
        size_t *ar = NULL;
        if (sh->fmt) rc = ddct_pt_aliases(sh->fmt, ddct_ctr_path(j->o->r), &an, &ar, &na, e);
        ddct_st_entry *all = rc ? NULL : realloc(ents, (count + na + 1) * sizeof *ents);
        if (!rc && !all) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        if (all) ents = all;
        for (size_t k = 0; !rc && k < na; k++) {
            ents[count + k] = ents[ar[k]];
            ents[count + k].name = an[k];
            ar[k] += first;
        }
        if (!rc) rc = ddct_stw_open(&t->st, path, overwrite, j->inputs, ents, count + na, sh->metadata, e);
        if (!rc && (j->d->direct > 0 || (j->d->direct < 0 && ddct_stw_data_bytes(t->st) >= DDCT_DIRECT_MIN_BYTES)))
            (void)ddct_stw_set_direct(t->st);
        *cp = (copies){.names = an, .rec = ar, .n = na};
        if (rc) {
            free(an);
            free(ar);
            *cp = (copies){0};
        }
    }
    free(ents);
    return rc;
}

static int commit_tfile(tfile *t, ddct_err *e)
{
    int rc = t->format == DDCT_ST_PYTORCH ? ddct_ptw_commit(t->pt, e)
             : t->format == DDCT_ST_GGUF  ? ddct_ggio_commit(t->gg, e)
                                          : ddct_stw_commit(t->st, e);
    t->pt = NULL;
    t->st = NULL;
    t->gg = NULL;
    return rc;
}

static void abort_tfile(tfile *t)
{
    ddct_ptw_abort(t->pt);
    ddct_stw_abort(t->st);
    ddct_ggio_abort(t->gg);
}

/* Record i rebuilt into the sink. */
static int rebuild_record(wjob *j, size_t i, tfile *t, int count)
{
    ddct_err *e = &j->d->err;
    const ddct_ctr_entry *en = ddct_ctr_entry_at(j->o->r, i);
    uint64_t sat = 0;
    int rc = ddct_decode_stream(j->o->r, i, j->o->base, j->threads, j->d->rescale, &j->scratch, 0, tfile_sink, t, &sat,
                                e);
    if (!count) return rc;
    if (!rc) note_saturated(j->d, j->o->r, i, sat);
    j->done_bytes += en->nelem * ddct_dtype_size(en->dtype);
    j->done++;
    if (!rc && j->d->progress &&
        j->d->progress(j->d->progress_opaque, j->done, j->total, j->done_bytes, j->total_bytes, en->name))
        rc = ddct_seterr(e, DDCT_ERR_CANCELLED, "cancelled");
    return rc;
}

/* One tensor file at path holding records [first, first + count) of shard sh, in the format the
 * shard came in unless the DCtx asks for another. */
static int write_tensors(wjob *j, const char *path, const ddct_layout_shard *sh, size_t first, size_t count,
                         int overwrite)
{
    ddct_err *e = &j->d->err;
    tfile t = {.format = j->d->format >= 0 ? j->d->format : sh->format};
    copies cp = {0};
    int rc = open_tfile(j, &t, path, sh, first, count, overwrite, &cp);
    /* with threads, output slices are written on a second thread while the next is rebuilt */
    if (!rc && j->threads > 1) j->scratch.aw = ddct_aw_create(tfile_sink, &t);
    for (size_t i = first; i < first + count && !rc; i++) rc = rebuild_record(j, i, &t, 1);
    for (size_t k = 0; k < cp.n && !rc; k++) rc = rebuild_record(j, cp.rec[k], &t, 0);
    if (j->scratch.aw) {
        ddct_err we;
        int wrc = ddct_aw_wait(j->scratch.aw, &we);
        if (!rc && wrc) rc = (*e = we).code;
        ddct_aw_free(j->scratch.aw);
        j->scratch.aw = NULL;
    }
    free(cp.names);
    free(cp.rec);
    if (!rc) rc = commit_tfile(&t, e);
    else abort_tfile(&t);
    return rc;
}

/* A carried file, byte for byte. */
static int write_file(wjob *j, const ddct_layout_file *f, const char *path)
{
    ddct_err *e = &j->d->err;
    ddct_record rec;
    FORWARD_IF_ERROR(ddct_ctr_record(j->o->r, f->record, 1, &rec, e));
    RETURN_ERROR_IF(rec.codec != DDCT_CODEC_RAW || rec.flags, e, DDCT_ERR_FORMAT,
                    "%s: file '%s': record %zu is not a raw record without base", ddct_ctr_path(j->o->r), f->name,
                    f->record);
    ddct_ofile *of = NULL;
    int rc = ddct_ofile_open(&of, path, 0, j->inputs, e);
    ddct_piece pr = {.bi = DDCT_MODEL_NONE, .r = j->o->r, .data = rec.data, .sink = ofile_sink, .opaque = of};
    if (!rc)
        rc = ddct_lossless_decode_stream(&rec, NULL, f->bytes, 1, j->threads, ddct_piece_sink, &pr,
                                         ddct_piece_release_both, e);
    if (!rc && ddct_ofile_tell(of) != f->bytes)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "decoded %llu bytes, expected %llu",
                         (unsigned long long)ddct_ofile_tell(of), (unsigned long long)f->bytes);
    if (!rc) {
        rc = ddct_ofile_commit(of, e);
        of = NULL;
    }
    ddct_ofile_abort(of);
    ddct_ctr_release(j->o->r, f->record);
    if (rc) ddct_err_prefix(e, "%s: file '%s': ", ddct_ctr_path(j->o->r), f->name);
    return rc;
}

/* The fine-tune as it came: its shards, index and carried files, in a new directory. */
static int write_dir(wjob *j, const char *out_path, int overwrite)
{
    ddct_err *e = &j->d->err;
    const ddct_layout *L = &j->o->L;
    ddct_odir *od = NULL;
    FORWARD_IF_ERROR(ddct_odir_open(&od, out_path, overwrite, j->inputs, e));
    int rc = 0;
    for (size_t k = 0; k < L->nshards + L->nfiles && !rc; k++) {
        const char *name = k < L->nshards ? L->shards[k].name : L->files[k - L->nshards].name;
        char *p = ddct_odir_file(od, name);
        if (!p) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        else if (k < L->nshards)
            rc = write_tensors(j, p, &L->shards[k], L->shards[k].first, L->shards[k].count, 0);
        else
            rc = write_file(j, &L->files[k - L->nshards], p);
        free(p);
    }
    if (rc) {
        ddct_odir_abort(od);
        return rc;
    }
    return ddct_odir_commit(od, e);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int decompress(ddct_DCtx *d, const char *base_path, const char *ddct_path, const char *out_path, int overwrite)
{
    ddct_err *e = &d->err;
    RETURN_ERROR_IF(!out_path || !*out_path, e, DDCT_ERR_PARAM, "no output path given");
    opened o;
    int rc = open_both(&o, ddct_path, base_path, NULL, ddct_resolve_threads(d->threads), 0, e);
    const char *inputs[] = {base_path, ddct_path, NULL};
    wjob j = {.d = d, .o = &o, .inputs = inputs, .threads = ddct_resolve_threads(d->threads)};
    for (size_t i = 0; !rc && i < o.L.ntensors; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        j.total_bytes += en->nelem * ddct_dtype_size(en->dtype);
    }
    j.total = o.L.ntensors;
    int to_dir = ends_with(out_path, "/") || is_dir(out_path) || (o.L.directory && ddct_weights_kind(out_path) < 0);
    for (size_t k = 0; !rc && to_dir && d->format >= 0 && k < o.L.nshards; k++)
        if (o.L.shards[k].format != d->format)
            rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED,
                             "%s: shard '%s' is %s: a directory is rebuilt in its shards' own formats (its index "
                             "names them); another format is for a single file",
                             ddct_path, o.L.shards[k].name, ddct_format_name(o.L.shards[k].format));
    if (!rc && to_dir) rc = write_dir(&j, out_path, overwrite);
    else if (!rc) { /* the whole model as one file: the format asked for, else the output's
                       * extension's, else the fine-tune's (its shards' when they agree) */
        ddct_layout_shard one = o.L.shards[0];
        if (o.L.nshards > 1) one = (ddct_layout_shard){.metadata = o.L.shards[0].metadata, .format = one.format};
        for (size_t k = 1; k < o.L.nshards; k++)
            if (o.L.shards[k].format != one.format) one.format = DDCT_ST_SAFETENSORS;
        int by_name = ddct_weights_kind(out_path);
        int saved = d->format;
        if (d->format < 0 && by_name >= 0) d->format = by_name;
        rc = write_tensors(&j, out_path, &one, 0, o.L.ntensors, overwrite);
        d->format = saved;
    }
    ddct_dec_scratch_free(&j.scratch);
    close_both(&o);
    return rc;
}

ddct_ErrorCode ddct_decompressFile(ddct_DCtx *d, const char *base_path, const char *ddct_path, const char *out_path,
                                   int overwrite)
{
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    return (ddct_ErrorCode)decompress(d, base_path, ddct_path, out_path, overwrite);
}

/* A sink that only counts (verify decodes without writing). */
static int count_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    (void)p, (void)e;
    *(uint64_t *)opaque += n;
    return 0;
}

/* delta^ without a base: values counted, dropped. */
static int drop_begin(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    (void)opaque, (void)first, (void)n, (void)e;
    return 0;
}
static void drop_put(void *opaque, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    (void)opaque, (void)first, (void)rel, (void)d, (void)n, (void)s;
}
static int drop_end(void *opaque, uint64_t first, uint64_t n, ddct_err *e)
{
    (void)e;
    uint64_t *next = opaque;
    RETURN_ERROR_IF(first != *next, e, DDCT_ERR_INTERNAL, "decoder slices out of order");
    *next = first + n;
    return 0;
}

/* Record i decoded as far as it can be without the base: the codec's streams in full (delta^ of a
 * lossy record, the zstd frame of a raw one), lengths checked; nothing is added to a base. */
static int check_record_nobase(const ddct_ctr_reader *r, size_t i, int threads, ddct_scratch *scr, ddct_err *e)
{
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    ddct_record rec;
    FORWARD_IF_ERROR(ddct_ctr_record(r, i, 1, &rec, e));
    const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
    RETURN_ERROR_IF(!ct, e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u (written by a newer deltadct?)",
                    ddct_ctr_path(r), en->name, rec.codec);
    uint64_t nbytes = en->nelem * ddct_dtype_size(en->dtype), got = 0;
    int rc = 0;
    if (ct->lossy) {
        if (!(rec.flags & DDCT_REC_HAS_BASE) || !ddct_dtype_is_lossy_float(en->dtype))
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "lossy record of a %s tensor%s", ddct_dtype_name(en->dtype),
                             rec.flags & DDCT_REC_HAS_BASE ? "" : " without a base");
        ddct_delta_out out = {drop_begin, drop_put, drop_end, &got};
        if (!rc) rc = ct->decode_stream(&rec, en->nelem, threads, -1, scr, &out, e);
        if (!rc && got != en->nelem)
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "decoded %llu values, the tensor has %llu", (unsigned long long)got,
                             (unsigned long long)en->nelem);
    } else {
        rc = ddct_lossless_check_stream(&rec, nbytes, ddct_dtype_size(en->dtype), threads, count_sink, &got, e);
        if (!rc && rec.codec == DDCT_CODEC_SAME) got = nbytes;
        if (!rc && got != nbytes)
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "decoded %llu bytes, the tensor has %llu", (unsigned long long)got,
                             (unsigned long long)nbytes);
    }
    ddct_ctr_release(r, i);
    if (rc) ddct_err_prefix(e, "%s: tensor '%s': ", ddct_ctr_path(r), en->name);
    return rc;
}

/* Every record decoded, nothing written: with the base, rebuilt as decompress does (the base's
 * fingerprints checked as it does); without, as far as the streams go. quick: checksums and the
 * base's fingerprints only. */
static int verify(ddct_DCtx *d, const char *ddct_path, const char *base_path, ddct_Base *bh, int quick)
{
    ddct_err *e = &d->err;
    opened o;
    int threads = ddct_resolve_threads(d->threads);
    int rc = open_both(&o, ddct_path, base_path, bh, threads, quick, e);
    ddct_dec_scratch scratch = {0};
    for (size_t i = 0; !rc && i < ddct_ctr_count(o.r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        if (quick) {
            ddct_record rec;
            rc = ddct_ctr_record(o.r, i, 1, &rec, e);
            if (!rc && !ddct_codec_get(rec.codec))
                rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u", ddct_path, en->name,
                                 rec.codec);
            ddct_ctr_release(o.r, i);
        } else if (o.base) {
            uint64_t got = 0, sat = 0, nbytes = en->nelem * ddct_dtype_size(en->dtype);
            rc = ddct_decode_stream(o.r, i, o.base, threads, d->rescale, &scratch, 0, count_sink, &got, &sat, e);
            if (!rc && got != nbytes)
                rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: tensor '%s': decoded %llu bytes, the tensor has %llu",
                                 ddct_path, en->name, (unsigned long long)got, (unsigned long long)nbytes);
            if (!rc) note_saturated(d, o.r, i, sat);
        } else {
            rc = check_record_nobase(o.r, i, threads, &scratch.delta, e);
        }
        if (!rc && d->progress &&
            d->progress(d->progress_opaque, i + 1, ddct_ctr_count(o.r), 0, 0, en->name))
            rc = ddct_seterr(e, DDCT_ERR_CANCELLED, "cancelled");
    }
    ddct_dec_scratch_free(&scratch);
    close_both(&o);
    return rc;
}

ddct_ErrorCode ddct_verifyFile(ddct_DCtx *d, const char *ddct_path, const char *base_path)
{
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    return (ddct_ErrorCode)verify(d, ddct_path, base_path, NULL, 0);
}

ddct_ErrorCode ddct_verifyFileChecksums(ddct_DCtx *d, const char *ddct_path, const char *base_path)
{
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    return (ddct_ErrorCode)verify(d, ddct_path, base_path, NULL, 1);
}

ddct_ErrorCode ddct_verifyWithBase(ddct_DCtx *d, const char *ddct_path, ddct_Base *base, int quick)
{
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    RETURN_ERROR_IF(!base, &d->err, DDCT_ERR_PARAM, "no base given");
    return (ddct_ErrorCode)verify(d, ddct_path, NULL, base, quick != 0);
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
            /* a NaN (a NaN or infinite weight) sticks: no later comparison is true for it */
            if (err > ev->max_abs_err || isnan(err)) ev->max_abs_err = err;
        }
    }
}

static int evaluate(ddct_DCtx *d, const char *base_path, const char *ft_path, const char *ddct_path, ddct_eval_fn cb,
                    void *opaque)
{
    ddct_err *e = &d->err;
    opened o;
    ddct_model *ft = NULL;
    int rc = open_both(&o, ddct_path, base_path, NULL, ddct_resolve_threads(d->threads), 0, e);
    if (!rc) rc = ddct_model_open(&ft, ft_path, e);
    int threads = ddct_resolve_threads(d->threads);
    for (size_t i = 0; !rc && i < o.L.ntensors; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(o.r, i);
        const ddct_st_tensor *t = ddct_model_find(ft, en->name);
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
        uint64_t sat = 0;
        rc = ddct_decode_tensor(o.r, i, o.base, threads, d->rescale, NULL, 0, buf, &sat, e);
        if (!rc) note_saturated(d, o.r, i, sat);
        ddct_record rec;
        if (!rc) rc = ddct_ctr_record(o.r, i, 0, &rec, e);
        if (!rc) {
            const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
            ddct_tensor_eval ev = {.name = en->name, .lossy = ct->lossy, .nparams = en->nelem};
            if (ddct_dtype_is_lossy_float(t->dtype)) {
                const ddct_st_tensor *b = ddct_model_find(o.base, en->name);
                compare(t, b && b->nelem == t->nelem && ddct_dtype_is_lossy_float(b->dtype) ? b : NULL, buf, &ev);
            } else if (memcmp(buf, t->data, (size_t)t->nbytes)) {
                ev.err2 = ev.max_abs_err = 1; /* lossless mismatch: cannot happen unless corrupt */
            }
            if (cb) cb(opaque, &ev);
        }
        free(buf);
    }
    ddct_model_close(ft);
    close_both(&o);
    return rc;
}

ddct_ErrorCode ddct_evaluate(ddct_DCtx *d, const char *base_path, const char *ft_path, const char *ddct_path,
                             ddct_eval_fn cb, void *opaque)
{
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    return (ddct_ErrorCode)evaluate(d, base_path, ft_path, ddct_path, cb, opaque);
}
