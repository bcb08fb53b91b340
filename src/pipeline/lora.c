/*
 * lora.c — `deltadct export-lora`: a fine-tune or a .ddct as a PEFT LoRA adapter (lora.h).
 *
 * Stages:
 *   1. classify every tensor of the source (the fine-tune's, or the .ddct's records) against the
 *      base: unchanged; adapted (a targeted 2-D weight, or a 3- to 5-D convolution weight, whose
 *      name ends in ".weight"); or a changed tensor a LoRA cannot express (1-D, not a target,
 *      new, reshaped), which with modules_to_save goes in the adapter with the rest of its module;
 *   2. with bpp and a rule other than uniform, pass A: each adapted module's singular values
 *      (LAPACK sgesdd without vectors) and norms;
 *   3. ranks (lora.h);
 *   4. pass B: each module's factors at its rank (a thin SVD, or a record's own factors), rounded
 *      to the factor dtype, and what they capture, measured against the delta with the rounded
 *      factors;
 *   5. the adapter written: adapter_model.safetensors and adapter_config.json, in a temporary
 *      directory renamed when complete (odir.h).
 * Modules are processed in parallel (one SVD per thread, each on one BLAS thread: results do not
 * depend on the thread count) from a fine-tune; from a .ddct one at a time, decoders threaded.
 * Memory: per thread a module's delta and its SVD (about 4 out x in floats), plus every factor.
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec/lowrank.h"
#include "common/odir.h"
#include "common/ofile.h"
#include "lora.h"
#include "pipeline.h"

static const char *const RULE_NAMES[] = {"uniform", "energy", "delta-rel", "weight-rel"};

int ddct_lora_rule_from_name(const char *s)
{
    for (int k = 0; k < 4; k++)
        if (!strcmp(s, RULE_NAMES[k])) return k;
    return -1;
}

const char *ddct_lora_rule_name(ddct_lora_rule r) { return (unsigned)r < 4 ? RULE_NAMES[r] : "?"; }

void ddct_lora_params_default(ddct_lora_params *p)
{
    memset(p, 0, sizeof *p);
    p->rule = DDCT_LORA_RULE_DEFAULT;
    p->dtype = DDCT_DT_BF16;
    p->rescale = -1;
}

void ddct_lora_report_free(ddct_lora_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->v[i].name);
    free(r->v);
    memset(r, 0, sizeof *r);
}

typedef struct {
    const char *name;
    ddct_dtype dtype;
    int ndim;
    const uint64_t *shape;
    uint64_t nelem;
    size_t si, bi;          /* source and base index (bi: DDCT_MODEL_NONE when absent) */
    int codec;              /* .ddct: the record's codec id; -1 from a fine-tune */
    int kind;               /* DDCT_LORA_*, or -1: unchanged and not saved */
    const char *how;
    char *module;           /* the name without its last component (NULL: none) */
    uint64_t out, in, k;    /* adapted: the matrix and min(out, in) */
    int fixed;              /* the rank is the record's (svd, rd) */
    int nosave;             /* left out, and not to be saved either */
    float *sv;              /* pass A: singular values (k) */
    double energy, wnorm2, captured;
    int nonfinite;
    uint64_t rank;
    float *bu, *av;         /* pass B: rank vectors of out values (B's columns), of in values (A's rows) */
    int rc;
    char *msg;              /* the failure's message */
} item;

typedef struct {
    const ddct_lora_params *p;
    ddct_model *base, *ft;
    ddct_Info *info; /* from a .ddct: its reader inside */
    const ddct_ctr_reader *r;
    item *it;
    size_t n;
    int threads;
    size_t esize; /* bytes per factor element */
} job;

static void items_free(job *J)
{
    for (size_t i = 0; J->it && i < J->n; i++) {
        free(J->it[i].module);
        free(J->it[i].sv);
        free(J->it[i].bu);
        free(J->it[i].av);
        free(J->it[i].msg);
    }
    free(J->it);
}

/* ------------------------------------------------------------------ classify */

static int same_shape(int na, const uint64_t *a, int nb, const uint64_t *b)
{
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

static int ends_with(const char *s, const char *t)
{
    size_t n = strlen(s), m = strlen(t);
    return n > m && !memcmp(s + n - m, t, m);
}

/* Whether tensor t (changed, base b of its shape) is adapted; else *why. */
static int adaptable(const job *J, const ddct_selector *sel, item *t, const ddct_st_tensor *b, const char **why)
{
    if (!ddct_dtype_is_lossy_float(t->dtype) || !ddct_dtype_is_lossy_float(b->dtype))
        return *why = "not a float tensor", 0;
    if (t->ndim < 2) return *why = "1-D: no LoRA form", 0;
    if (t->nelem < 256) return *why = "fewer than 256 values", 0;
    if (!ddct_selector_selects(sel, t->name)) return *why = "not a target (see --target)", 0;
    if (!ends_with(t->name, ".weight")) return *why = "not a module's .weight", 0;
    if (t->ndim > 5) return *why = "more than 5 dimensions", 0;
    if (t->ndim > 2 && t->shape[1] == 1) return *why = "convolution with one input channel (grouped?)", 0;
    uint64_t in = 1;
    for (int d = 1; d < t->ndim; d++) in *= t->shape[d];
    t->out = t->shape[0], t->in = in;
    if (J->p->fan_in_fan_out && t->ndim == 2) t->out = t->shape[1], t->in = t->shape[0];
    t->k = t->out < t->in ? t->out : t->in;
    if (t->out > INT_MAX || t->in > INT_MAX) return *why = "too large for LAPACK", 0;
    if (J->r && (t->codec == DDCT_CODEC_SVD || t->codec == DDCT_CODEC_RD)) {
        /* the record's view (the svd and rd codecs' rule): its factors are the module's when it is
         * out x in as stored */
        uint64_t cols = t->ndim == 2 ? t->shape[1] : ddct_view_cols(t->ndim, t->shape, t->nelem, 16);
        t->fixed = cols == (t->ndim == 2 ? t->shape[1] : in);
    }
    return 1;
}

static int source_changed(const job *J, item *t, const ddct_st_tensor *b, int *changed, ddct_err *e)
{
    if (J->r) {
        *changed = t->codec != DDCT_CODEC_SAME;
        return 0;
    }
    const ddct_st_tensor *f = ddct_model_get(J->ft, t->si);
    if (!b || b->dtype != f->dtype || !same_shape(b->ndim, b->shape, f->ndim, f->shape)) {
        *changed = 1;
        return 0;
    }
    FORWARD_IF_ERROR(ddct_model_check(J->ft, t->si, e));
    FORWARD_IF_ERROR(ddct_model_check(J->base, t->bi, e));
    *changed = f->nbytes && memcmp(f->data, b->data, (size_t)f->nbytes) != 0;
    return 0;
}

static int classify(job *J, ddct_err *e)
{
    ddct_selector sel;
    regex_t re;
    if (J->p->target) {
        RETURN_ERROR_IF(regcomp(&re, J->p->target, REG_EXTENDED | REG_NOSUB | REG_ICASE), e, DDCT_ERR_PARAM,
                        "invalid --target regular expression '%s'", J->p->target);
        regfree(&re);
    }
    /* --target RE: RE alone (an exclusion that matches every name) */
    FORWARD_IF_ERROR(ddct_selector_init(&sel, J->p->target, J->p->target ? ".*" : NULL, e));
    int rc = 0;
    for (size_t i = 0; i < J->n && !rc; i++) {
        item *t = &J->it[i];
        t->si = i;
        t->codec = -1;
        if (J->r) {
            const ddct_ctr_entry *en = ddct_ctr_entry_at(J->r, i);
            ddct_record rec;
            rc = ddct_ctr_record(J->r, i, 1, &rec, e);
            if (rc) break;
            t->name = en->name, t->dtype = en->dtype, t->ndim = en->ndim, t->shape = en->shape;
            t->nelem = en->nelem, t->codec = rec.codec;
            ddct_ctr_release(J->r, i);
        } else {
            const ddct_st_tensor *f = ddct_model_get(J->ft, i);
            t->name = f->name, t->dtype = f->dtype, t->ndim = f->ndim, t->shape = f->shape, t->nelem = f->nelem;
        }
        const char *dot = strrchr(t->name, '.');
        if (dot && dot != t->name && !(t->module = strndup(t->name, (size_t)(dot - t->name)))) {
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
            break;
        }
        t->bi = ddct_model_lookup(J->base, t->name);
        const ddct_st_tensor *b = t->bi == DDCT_MODEL_NONE ? NULL : ddct_model_get(J->base, t->bi);
        int changed;
        rc = source_changed(J, t, b, &changed, e);
        if (rc) break;
        const char *why = NULL;
        if (!changed) t->kind = -1;
        else if (!b) t->kind = DDCT_LORA_LEFT, t->how = "not in the base", t->nosave = 1;
        else if (!same_shape(t->ndim, t->shape, b->ndim, b->shape))
            t->kind = DDCT_LORA_LEFT, t->how = "shape differs from the base", t->nosave = 1;
        else if (!ddct_utf8_valid(t->name)) /* a PEFT config is JSON */
            t->kind = DDCT_LORA_LEFT, t->how = "name is not UTF-8", t->nosave = 1;
        else if (adaptable(J, &sel, t, b, &why)) t->kind = DDCT_LORA_ADAPTED;
        else t->kind = DDCT_LORA_LEFT, t->how = why;
    }
    ddct_selector_free(&sel);
    return rc;
}

static int module_adapted(const job *J, const char *module)
{
    for (size_t j = 0; j < J->n; j++) {
        const item *a = &J->it[j];
        if (a->kind == DDCT_LORA_ADAPTED && a->module && !strcmp(a->module, module)) return 1;
    }
    return 0;
}

/* modules_to_save: the modules of changed tensors left out (no LoRA form or not a target), all
 * their tensors, unless LoRA adapts the module itself. */
static void choose_saved(job *J)
{
    char *mark = calloc(J->n ? J->n : 1, 1);
    for (size_t i = 0; i < J->n; i++) {
        item *t = &J->it[i];
        if (t->kind != DDCT_LORA_LEFT || t->nosave) continue;
        if (!t->module) t->how = "no module to save";
        else if (module_adapted(J, t->module)) t->how = "its module is adapted by LoRA";
        else if (mark) mark[i] = 1;
    }
    for (size_t i = 0; mark && i < J->n; i++) {
        item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED || !t->module || t->nosave || t->bi == DDCT_MODEL_NONE ||
            t->kind == DDCT_LORA_SAVED || !ddct_utf8_valid(t->name))
            continue;
        for (size_t j = 0; j < J->n; j++)
            if (mark[j] && !strcmp(J->it[j].module, t->module)) {
                t->kind = DDCT_LORA_SAVED;
                t->how = mark[i] ? "changed, no LoRA form" : "unchanged, of a saved module";
                break;
            }
    }
    free(mark);
}

/* ------------------------------------------------------------------ deltas */

/* base tensor bi as float32 into x (n values) */
static int base_f32(const job *J, size_t bi, float *x, ddct_err *e)
{
    const ddct_st_tensor *b = ddct_model_get(J->base, bi);
    FORWARD_IF_ERROR(ddct_model_check(J->base, bi, e));
    ddct_to_f32(b->dtype, b->data, (size_t)b->nelem, x);
    return 0;
}

/* The module's delta as the out x in matrix M (tmp: nelem floats of scratch); *nonfinite when a
 * value is not finite. From a .ddct: the lossy record's delta^ as its codec decodes it, or the
 * lossless record's tensor minus the base. */
static int item_delta(const job *J, const item *t, float *M, float *tmp, int threads, int *nonfinite, ddct_err *e)
{
    size_t n = (size_t)t->nelem;
    int tr = J->p->fan_in_fan_out && t->ndim == 2;
    float *d = tr ? tmp : M;
    *nonfinite = 0;
    if (!J->r) {
        const ddct_st_tensor *f = ddct_model_get(J->ft, t->si), *b = ddct_model_get(J->base, t->bi);
        FORWARD_IF_ERROR(ddct_model_check(J->ft, t->si, e));
        FORWARD_IF_ERROR(ddct_model_check(J->base, t->bi, e));
        *nonfinite = !ddct_sub_to_f32(f->dtype, f->data, b->dtype, b->data, n, d);
    } else {
        ddct_record rec;
        FORWARD_IF_ERROR(ddct_ctr_record(J->r, t->si, 1, &rec, e));
        const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
        RETURN_ERROR_IF(!ct, e, DDCT_ERR_UNSUPPORTED, "%s: tensor '%s': unknown codec id %u", ddct_ctr_path(J->r),
                        t->name, rec.codec);
        int rc;
        if (ct->lossy) {
            rc = ct->decode_lossy(&rec, t->nelem, threads, J->p->rescale, d, e);
        } else {
            rc = ddct_decode_tensor(J->r, t->si, J->base, threads, J->p->rescale, NULL, 1, (uint8_t *)d, NULL, e);
            float *w = tr ? M : tmp;
            if (!rc) rc = base_f32(J, t->bi, w, e);
            for (size_t i = 0; !rc && i < n; i++) d[i] -= w[i];
        }
        ddct_ctr_release(J->r, t->si);
        if (rc) return ddct_err_prefix(e, "%s: tensor '%s': ", ddct_ctr_path(J->r), t->name);
        for (size_t i = 0; i < n && !*nonfinite; i++) *nonfinite = !isfinite(d[i]);
    }
    if (tr) /* stored [in, out] */
        for (size_t i = 0; i < (size_t)t->in; i++)
            for (size_t o = 0; o < (size_t)t->out; o++) M[o * t->in + i] = d[i * t->out + o];
    return 0;
}

static double sumsq(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

/* Pass A: singular values and norms. */
static int pass_a(const job *J, item *t, int threads, ddct_err *e)
{
    size_t n = (size_t)t->nelem;
    float *M = malloc(n * sizeof *M), *tmp = malloc(n * sizeof *tmp);
    t->sv = malloc((size_t)t->k * sizeof *t->sv);
    int rc = 0, nf = 0;
    if (!M || !tmp || !t->sv) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (tensor '%s')", t->name);
    if (!rc) rc = item_delta(J, t, M, tmp, threads, &nf, e);
    if (!rc && nf) t->nonfinite = 1;
    if (!rc && !nf) {
        t->energy = sumsq(M, n);
        if (J->p->rule == DDCT_LORA_WEIGHT_REL) {
            rc = base_f32(J, t->bi, tmp, e);
            t->wnorm2 = sumsq(tmp, n);
        }
        if (!rc) rc = ddct_svd_values(M, t->out, t->in, t->sv, e);
    }
    free(M);
    free(tmp);
    return rc;
}

/* x rounded to dtype dt, in place */
static void round_to(ddct_dtype dt, float *x, size_t n)
{
    uint8_t buf[4 * 1024];
    size_t per = sizeof buf / 4;
    for (size_t a = 0; a < n; a += per) {
        size_t m = n - a < per ? n - a : per;
        ddct_from_f32(dt, x + a, m, buf);
        ddct_to_f32(dt, buf, m, x + a);
    }
}

/* The rank whose truncation leaves at most error^2 of the energy of s[0..k). */
static uint64_t rank_for_error(const float *s, uint64_t k, double error)
{
    double total = 0, tail;
    for (uint64_t i = 0; i < k; i++) total += (double)s[i] * s[i];
    tail = total;
    uint64_t r = 0;
    while (r < k && tail > error * error * total) {
        tail -= (double)s[r] * s[r];
        r++;
    }
    return r;
}

/* Pass B: the factors at the module's rank, rounded, and what they capture. */
static int pass_b(const job *J, item *t, int threads, ddct_err *e)
{
    size_t n = (size_t)t->nelem, out = (size_t)t->out, in = (size_t)t->in, k = (size_t)t->k;
    float *M = malloc(n * sizeof *M), *tmp = malloc(n * sizeof *tmp);
    int rc = 0, nf = 0;
    if (!M || !tmp) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (tensor '%s')", t->name);
    if (!rc) rc = item_delta(J, t, M, tmp, threads, &nf, e);
    if (!rc && nf) t->nonfinite = 1;
    if (rc || nf) goto done;
    t->energy = sumsq(M, n);
    if (t->fixed) {
        ddct_lr_factors F;
        ddct_record rec;
        rc = ddct_ctr_record(J->r, t->si, 1, &rec, e);
        if (!rc)
            rc = (t->codec == DDCT_CODEC_SVD ? ddct_svd_record_factors : ddct_rd_record_factors)(
                &rec, t->nelem, threads, J->p->rescale, &F, e);
        ddct_ctr_release(J->r, t->si);
        if (rc) {
            ddct_err_prefix(e, "%s: tensor '%s': ", ddct_ctr_path(J->r), t->name);
            goto done;
        }
        int tr = J->p->fan_in_fan_out && t->ndim == 2;
        t->rank = F.r;
        t->bu = tr ? F.vc : F.uc;
        t->av = tr ? F.uc : F.vc;
        float sq = sqrtf(F.scale);
        for (size_t i = 0; i < F.r * out; i++) t->bu[i] *= sq;
        for (size_t i = 0; i < F.r * in; i++) t->av[i] *= sq;
    } else {
        float *s = malloc(k * sizeof *s), *vv = malloc(in * k * sizeof *vv), *ut = malloc(k * out * sizeof *ut);
        if (!s || !vv || !ut) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (SVD of '%s')", t->name);
        if (!rc) {
            memcpy(tmp, M, n * sizeof *tmp);
            rc = ddct_svd_thin(tmp, out, in, s, vv, ut, e);
        }
        if (!rc) {
            if (J->p->rank > 0) t->rank = (uint64_t)J->p->rank < k ? (uint64_t)J->p->rank : k;
            else if (J->p->error > 0) t->rank = rank_for_error(s, k, J->p->error);
            size_t r = (size_t)t->rank;
            t->bu = malloc((r ? r : 1) * out * sizeof *t->bu);
            t->av = malloc((r ? r : 1) * in * sizeof *t->av);
            if (!t->bu || !t->av) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (factors of '%s')", t->name);
            for (size_t j = 0; !rc && j < r; j++) {
                float sq = sqrtf(s[j] > 0 ? s[j] : 0);
                for (size_t o = 0; o < out; o++) t->bu[j * out + o] = ut[o * k + j] * sq;
                for (size_t i = 0; i < in; i++) t->av[j * in + i] = vv[j * in + i] * sq;
            }
        }
        free(s);
        free(vv);
        free(ut);
        if (rc) goto done;
    }
    if (t->rank) {
        round_to(J->p->dtype, t->bu, (size_t)t->rank * out);
        round_to(J->p->dtype, t->av, (size_t)t->rank * in);
        rc = ddct_lowrank_product(t->bu, t->av, out, in, (size_t)t->rank, n, tmp, 1, e);
        if (rc) goto done;
        double err2 = 0;
        for (size_t i = 0; i < n; i++) err2 += ((double)M[i] - tmp[i]) * ((double)M[i] - tmp[i]);
        t->captured = t->energy - err2;
    }
done:
    free(M);
    free(tmp);
    return rc;
}

/* Pass A or B over the adapted modules; the first failure in tensor order is reported. */
static int run_pass(job *J, int pass, ddct_err *e)
{
    int par = J->r ? 1 : J->threads, inner = J->r ? J->threads : 1;
    int prev = ddct_blas_serial_begin(); /* one BLAS thread for every SVD, whichever thread runs it */
#pragma omp parallel for num_threads(par) schedule(dynamic, 1) if (par > 1)
    for (size_t i = 0; i < J->n; i++) {
        item *t = &J->it[i];
        if (t->kind != DDCT_LORA_ADAPTED || (pass == 0 && t->fixed)) continue;
        ddct_err le;
        ddct_err_clear(&le);
        int rc = pass == 0 ? pass_a(J, t, inner, &le) : pass_b(J, t, inner, &le);
        if (rc) {
            t->rc = rc;
            t->msg = strdup(le.msg);
        }
    }
    ddct_blas_serial_end(prev);
    for (size_t i = 0; i < J->n; i++) {
        item *t = &J->it[i];
        if (t->rc) return ddct_seterr(e, t->rc, "%s", t->msg ? t->msg : "out of memory");
        if (t->kind == DDCT_LORA_ADAPTED && t->nonfinite) t->kind = DDCT_LORA_LEFT, t->how = "NaN or Inf in the delta";
    }
    return 0;
}

/* ------------------------------------------------------------------ ranks under a budget */

static void allocate(job *J)
{
    const ddct_lora_params *p = J->p;
    double bits = 8.0 * (double)J->esize, budget = 0;
    for (size_t i = 0; i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED && !t->fixed) budget += (double)t->out * (double)t->in;
    }
    budget *= p->bpp;
    if (p->rule == DDCT_LORA_UNIFORM || p->uniform_rank) {
        /* the largest R with sum min(R, k) (or R, padded) (out + in) bits <= budget */
        uint64_t kmax = 0, R = 0;
        for (size_t i = 0; i < J->n; i++)
            if (J->it[i].kind == DDCT_LORA_ADAPTED && !J->it[i].fixed && J->it[i].k > kmax) kmax = J->it[i].k;
        for (;;) {
            if (R + 1 > kmax) break;
            double cost = 0;
            for (size_t i = 0; i < J->n; i++) {
                const item *t = &J->it[i];
                if (t->kind != DDCT_LORA_ADAPTED || t->fixed) continue;
                uint64_t r = p->uniform_rank || R + 1 < t->k ? R + 1 : t->k;
                cost += (double)r * (double)(t->out + t->in) * bits;
            }
            if (cost > budget) break;
            R++;
        }
        for (size_t i = 0; i < J->n; i++) {
            item *t = &J->it[i];
            if (t->kind == DDCT_LORA_ADAPTED && !t->fixed) t->rank = R < t->k ? R : t->k;
        }
        return;
    }
    /* greedy on the singular values: the next rank where w * s^2 per bit is largest (ties: the
     * first module), w by the rule; a module whose next rank no longer fits is passed over */
    double left = budget;
    for (;;) {
        size_t best = (size_t)-1;
        double bg = -1;
        for (size_t i = 0; i < J->n; i++) {
            const item *t = &J->it[i];
            if (t->kind != DDCT_LORA_ADAPTED || t->fixed || t->rank >= t->k) continue;
            double cost = (double)(t->out + t->in) * bits;
            if (cost > left) continue;
            double w = 1;
            if (p->rule == DDCT_LORA_DELTA_REL) w = t->energy > 0 ? 1 / t->energy : 0;
            else if (p->rule == DDCT_LORA_WEIGHT_REL)
                w = t->wnorm2 > 0 ? 1 / t->wnorm2 : t->energy > 0 ? 1 / t->energy : 0;
            double s = t->sv[t->rank], g = w * s * s / cost;
            if (g > bg) bg = g, best = i;
        }
        if (best == (size_t)-1) break;
        item *t = &J->it[best];
        left -= (double)(t->out + t->in) * bits;
        t->rank++;
    }
}

/* ------------------------------------------------------------------ writing */

static char *peft_name(const char *prefix_name, const char *suffix)
{
    size_t n = strlen("base_model.model.") + strlen(prefix_name) + strlen(suffix) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "base_model.model.%s%s", prefix_name, suffix);
    return s;
}

/* base_model_name_or_path: the base directory's config.json "_name_or_path", else the directory;
 * NULL for a base that is a file. */
static json_t *base_name_json(const ddct_model *base)
{
    if (!ddct_model_is_dir(base)) return json_null();
    for (size_t k = 0; k < ddct_model_file_count(base); k++) {
        if (strcmp(ddct_model_file_name(base, k), "config.json")) continue;
        ddct_map m;
        ddct_err e2;
        if (ddct_model_file_map(base, k, &m, &e2)) break;
        json_t *c = json_loadb((const char *)m.p, (size_t)m.size, 0, NULL);
        ddct_map_close(&m);
        json_t *v = c ? json_object_get(c, "_name_or_path") : NULL;
        json_t *r = json_is_string(v) && json_string_length(v) ? json_string(json_string_value(v)) : NULL;
        json_decref(c);
        if (r) return r;
        break;
    }
    char *u = ddct_utf8_fix(ddct_model_path(base));
    json_t *r = u ? json_string(u) : json_null();
    free(u);
    return r;
}

static char *config_text(const job *J, uint64_t R)
{
    const ddct_lora_params *p = J->p;
    json_t *c = json_object(), *targets = json_array(), *rp = json_object(), *ap = json_object(),
           *saved = json_array();
    for (size_t i = 0; i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) {
            json_array_append_new(targets, json_string(t->module));
            uint64_t r = p->uniform_rank ? R : t->rank;
            if (r != R) {
                json_object_set_new(rp, t->module, json_integer((json_int_t)r));
                json_object_set_new(ap, t->module, json_integer((json_int_t)r));
            }
        } else if (t->kind == DDCT_LORA_SAVED) {
            int seen = 0;
            for (size_t j = 0; j < json_array_size(saved) && !seen; j++)
                seen = !strcmp(json_string_value(json_array_get(saved, j)), t->module);
            if (!seen) json_array_append_new(saved, json_string(t->module));
        }
    }
    json_object_set_new(c, "peft_type", json_string("LORA"));
    json_object_set_new(c, "task_type", json_null());
    json_object_set_new(c, "base_model_name_or_path", base_name_json(J->base));
    json_object_set_new(c, "revision", json_null());
    json_object_set_new(c, "inference_mode", json_true());
    json_object_set_new(c, "r", json_integer((json_int_t)R));
    json_object_set_new(c, "lora_alpha", json_integer((json_int_t)R));
    json_object_set_new(c, "lora_dropout", json_real(0.0));
    json_object_set_new(c, "fan_in_fan_out", json_boolean(p->fan_in_fan_out));
    json_object_set_new(c, "bias", json_string("none"));
    json_object_set_new(c, "target_modules", targets);
    json_object_set_new(c, "rank_pattern", rp);
    json_object_set_new(c, "alpha_pattern", ap);
    if (json_array_size(saved)) json_object_set_new(c, "modules_to_save", saved);
    else {
        json_decref(saved);
        json_object_set_new(c, "modules_to_save", json_null());
    }
    json_object_set_new(c, "init_lora_weights", json_true());
    json_object_set_new(c, "use_rslora", json_false());
    json_object_set_new(c, "use_dora", json_false());
    json_object_set_new(c, "layers_to_transform", json_null());
    json_object_set_new(c, "layers_pattern", json_null());
    char *s = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(c);
    return s;
}

static int stw_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e) { return ddct_stw_write(opaque, p, n, e); }

/* The rows of one factor: count vectors of len values (v), zero rows up to width, as dt. */
static int write_a(ddct_st_writer *w, const float *v, size_t rank, size_t width, size_t len, ddct_dtype dt,
                   uint8_t *buf, ddct_err *e)
{
    size_t es = ddct_dtype_size(dt);
    for (size_t j = 0; j < width; j++) {
        if (j < rank) ddct_from_f32(dt, v + j * len, len, buf);
        else memset(buf, 0, len * es);
        FORWARD_IF_ERROR(ddct_stw_write(w, buf, len * es, e));
    }
    return 0;
}

/* B [out, width]: row o holds bu[j * out + o], j < rank, then zeros. */
static int write_b(ddct_st_writer *w, const float *bu, size_t rank, size_t width, size_t out, ddct_dtype dt,
                   uint8_t *buf, float *row, ddct_err *e)
{
    size_t es = ddct_dtype_size(dt);
    for (size_t o = 0; o < out; o++) {
        for (size_t j = 0; j < width; j++) row[j] = j < rank ? bu[j * out + o] : 0.0f;
        ddct_from_f32(dt, row, width, buf);
        FORWARD_IF_ERROR(ddct_stw_write(w, buf, width * es, e));
    }
    return 0;
}

static int write_saved(const job *J, ddct_st_writer *w, const item *t, ddct_err *e)
{
    if (J->r) return ddct_decode_stream(J->r, t->si, J->base, J->threads, J->p->rescale, NULL, 0, stw_sink, w, NULL, e);
    const ddct_st_tensor *f = ddct_model_get(J->ft, t->si);
    FORWARD_IF_ERROR(ddct_model_check(J->ft, t->si, e));
    return ddct_stw_write(w, f->data, (size_t)f->nbytes, e);
}

static int write_adapter(job *J, const char *out_dir, const char *const *inputs, uint64_t R, ddct_lora_report *rep,
                         ddct_err *e)
{
    const ddct_lora_params *p = J->p;
    size_t ne = 0, nn = 0, maxlen = 1;
    for (size_t i = 0; i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) ne += 2;
        else if (t->kind == DDCT_LORA_SAVED) ne++;
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) {
            size_t m = (size_t)(t->out > t->in ? t->out : t->in);
            maxlen = m > maxlen ? m : maxlen;
        }
    }
    ddct_st_entry *en = calloc(ne ? ne : 1, sizeof *en);
    char **names = calloc(ne ? ne : 1, sizeof *names);
    uint64_t *shapes = calloc((ne ? ne : 1) * DDCT_MAX_DIMS, sizeof *shapes);
    size_t wmax = (size_t)(R > maxlen ? R : maxlen);
    uint8_t *buf = malloc(wmax * 4);
    float *row = malloc((size_t)(R ? R : 1) * sizeof *row);
    int rc = 0;
    if (!en || !names || !shapes || !buf || !row) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) {
            uint64_t width = p->uniform_rank ? R : t->rank;
            uint64_t *sa = shapes + nn * DDCT_MAX_DIMS, *sb = sa + DDCT_MAX_DIMS;
            int tr = p->fan_in_fan_out && t->ndim == 2;
            sa[0] = width;
            for (int d = 1; d < t->ndim; d++) sa[d] = tr ? t->in : t->shape[d];
            sb[0] = t->out, sb[1] = width;
            for (int d = 2; d < t->ndim; d++) sb[d] = 1;
            names[nn] = peft_name(t->module, ".lora_A.weight");
            names[nn + 1] = peft_name(t->module, ".lora_B.weight");
            en[nn] = (ddct_st_entry){names[nn], p->dtype, t->ndim, sa};
            en[nn + 1] = (ddct_st_entry){names[nn + 1], p->dtype, t->ndim, sb};
            if (!names[nn] || !names[nn + 1]) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
            nn += 2;
        } else if (t->kind == DDCT_LORA_SAVED) {
            names[nn] = peft_name(t->name, "");
            en[nn] = (ddct_st_entry){names[nn], t->dtype, t->ndim, t->shape};
            if (!names[nn]) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
            nn++;
        }
    }
    char *cfg = rc ? NULL : config_text(J, R);
    if (!rc && !cfg) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (adapter_config.json)");
    ddct_odir *od = NULL;
    ddct_st_writer *w = NULL;
    ddct_ofile *of = NULL;
    char *ap = NULL, *cp = NULL;
    if (!rc) rc = ddct_odir_open(&od, out_dir, p->overwrite, inputs, e);
    if (!rc) {
        ap = ddct_odir_file(od, "adapter_model.safetensors");
        cp = ddct_odir_file(od, "adapter_config.json");
        if (!ap || !cp) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    if (!rc) rc = ddct_stw_open(&w, ap, 0, NULL, en, nn, "{\"format\":\"pt\"}", e);
    for (size_t i = 0; !rc && i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) {
            size_t width = (size_t)(p->uniform_rank ? R : t->rank);
            rc = write_a(w, t->av, (size_t)t->rank, width, (size_t)t->in, p->dtype, buf, e);
            if (!rc) rc = write_b(w, t->bu, (size_t)t->rank, width, (size_t)t->out, p->dtype, buf, row, e);
        } else if (t->kind == DDCT_LORA_SAVED) {
            rc = write_saved(J, w, t, e);
        }
    }
    if (!rc) rc = ddct_stw_commit(w, e);
    else ddct_stw_abort(w);
    if (!rc) rc = ddct_ofile_open(&of, cp, 0, NULL, e);
    if (!rc) rc = ddct_ofile_write(of, cfg, strlen(cfg), e);
    if (!rc) rc = ddct_ofile_write(of, "\n", 1, e);
    if (!rc) rc = ddct_ofile_commit(of, e);
    else ddct_ofile_abort(of);
    struct stat st;
    if (!rc && rep && stat(ap, &st) == 0) rep->file_bytes = (uint64_t)st.st_size;
    if (!rc) rc = ddct_odir_commit(od, e);
    else ddct_odir_abort(od);
    free(ap);
    free(cp);
    free(cfg);
    for (size_t k = 0; names && k < ne; k++) free(names[k]);
    free(names);
    free(en);
    free(shapes);
    free(buf);
    free(row);
    return rc;
}

/* ------------------------------------------------------------------ the export */

static int source_is_ddct(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char m[8];
    size_t got = fread(m, 1, 8, f);
    fclose(f);
    return ddct_ctr_has_magic(m, got);
}

static int fill_report(const job *J, uint64_t R, ddct_lora_report *rep, ddct_err *e)
{
    size_t cnt = 0;
    for (size_t i = 0; i < J->n; i++) cnt += J->it[i].kind >= 0;
    uint64_t fb = rep->file_bytes;
    memset(rep, 0, sizeof *rep);
    rep->file_bytes = fb;
    rep->v = calloc(cnt ? cnt : 1, sizeof *rep->v);
    RETURN_ERROR_IF(!rep->v, e, DDCT_ERR_NOMEM, "out of memory");
    rep->r = R, rep->from_ddct = J->r != NULL, rep->dtype = J->p->dtype;
    for (size_t i = 0; i < J->n; i++) {
        const item *t = &J->it[i];
        if (t->kind < 0) continue;
        ddct_lora_module *m = &rep->v[rep->n++];
        m->name = strdup(t->name);
        if (!m->name) return ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        m->kind = t->kind == DDCT_LORA_ADAPTED && !t->rank ? DDCT_LORA_RANK0 : t->kind;
        m->how = t->how, m->out = t->out, m->in = t->in, m->rank = t->rank, m->nonfinite = t->nonfinite;
        if (t->kind == DDCT_LORA_ADAPTED) {
            uint64_t width = t->rank ? (J->p->uniform_rank ? R : t->rank) : 0;
            m->bytes = width * (t->out + t->in) * J->esize;
            m->energy = t->energy, m->captured = t->captured;
            rep->lora_bytes += m->bytes;
            rep->adapted_weights += t->out * t->in;
            rep->energy += t->energy, rep->captured += t->captured;
        } else if (t->kind == DDCT_LORA_SAVED) {
            m->bytes = t->nelem * ddct_dtype_size(t->dtype);
            rep->saved_bytes += m->bytes;
        }
    }
    return 0;
}

int ddct_lora_export(const char *base_path, const char *src_path, const char *out_dir, const ddct_lora_params *p,
                     ddct_lora_report *rep, ddct_err *e)
{
    ddct_lora_params q = *p;
    if (!q.dtype) q.dtype = DDCT_DT_BF16;
    RETURN_ERROR_IF(q.dtype != DDCT_DT_BF16 && q.dtype != DDCT_DT_F16 && q.dtype != DDCT_DT_F32, e, DDCT_ERR_PARAM,
                    "factor dtype must be BF16, F16 or F32");
    RETURN_ERROR_IF((q.rank > 0) + (q.bpp > 0) + (q.error > 0) > 1, e, DDCT_ERR_PARAM,
                    "give one of rank, bpp and error");
    RETURN_ERROR_IF(q.rank < 0 || q.bpp < 0 || q.bpp > 32 || q.error < 0 || q.error >= 1 || (unsigned)q.rule > 3, e,
                    DDCT_ERR_PARAM, "rank, bpp, error or rule out of range");
    if (q.rank <= 0 && q.bpp <= 0 && q.error <= 0) q.bpp = 0.5;
    if (rep) memset(rep, 0, sizeof *rep);
    job J;
    memset(&J, 0, sizeof J);
    J.p = &q;
    J.threads = ddct_resolve_threads(q.threads);
    J.esize = ddct_dtype_size(q.dtype);
    int rc = ddct_model_open(&J.base, base_path, e);
    if (!rc && source_is_ddct(src_path)) {
        ddct_ctr_reader *r = NULL;
        rc = ddct_ctr_open(&r, src_path, e);
        if (!rc) rc = ddct_info_from_reader(&J.info, r, e);
        if (!rc) {
            J.r = ddct_info_reader(J.info);
            J.n = ddct_Info_count(J.info);
            rc = ddct_check_base(J.r, J.base, J.threads, 1, e);
        }
    } else if (!rc) {
        rc = ddct_model_open(&J.ft, src_path, e);
        if (!rc) J.n = ddct_model_count(J.ft);
    }
    if (!rc && !(J.it = calloc(J.n ? J.n : 1, sizeof *J.it))) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) rc = classify(&J, e);
    if (!rc && q.modules_to_save) choose_saved(&J);
    int need_a = q.bpp > 0 && q.rule != DDCT_LORA_UNIFORM && !q.uniform_rank;
    if (!rc && need_a) rc = run_pass(&J, 0, e);
    if (!rc && q.bpp > 0) allocate(&J);
    if (!rc) rc = run_pass(&J, 1, e);
    uint64_t R = 0;
    size_t nad = 0, nsaved = 0;
    for (size_t i = 0; !rc && i < J.n; i++) {
        const item *t = &J.it[i];
        if (t->kind == DDCT_LORA_ADAPTED && t->rank) nad++, R = t->rank > R ? t->rank : R;
        nsaved += t->kind == DDCT_LORA_SAVED;
    }
    if (!rc && !nad && !nsaved)
        rc = ddct_seterr(e, DDCT_ERR_PARAM, "nothing to write: no changed tensor %s",
                         J.n ? "is adapted at a rank above 0 (see --target, --rank, --bpp)" : "in the source");
    const char *inputs[] = {base_path, src_path, NULL};
    ddct_lora_report tmp;
    memset(&tmp, 0, sizeof tmp);
    if (!rc) rc = write_adapter(&J, out_dir, inputs, R, &tmp, e);
    if (!rc && rep) {
        rep->file_bytes = tmp.file_bytes;
        rc = fill_report(&J, R, rep, e);
        if (rc) ddct_lora_report_free(rep);
    }
    items_free(&J);
    if (J.info) ddct_freeInfo(J.info);
    ddct_model_close(J.ft);
    ddct_model_close(J.base);
    return rc;
}
