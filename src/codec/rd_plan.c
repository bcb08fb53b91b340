/*
 * rd_plan.c — the rd codec's rate allocation: one tensor against a target (bits or error), and a
 * whole model against a budget of bits per lossy parameter.
 *
 * Whole model (Lagrangian allocation on rate curves, as JPEG 2000's PCRD-opt does on its code
 * blocks): each rd tensor is analysed once (rd_enc.c's model) and its estimated record bytes
 * B_t(x) are tabulated at log2 steps x every RD_DX octave; equal slopes across tensors mean one
 * step exp2(x) for every tensor (times w_t = ||delta_t|| / max with --rd-measure rel), so x is the
 * root of sum_t B_t(x + log2 w_t) = budget, found by bisection on the curves. Tensors are then
 * encoded in order, each once; the exact bytes of every record written feed the rate control:
 * before each tensor, x is solved again for the tensors left and the budget left, with the
 * curves scaled by (bytes written / bytes estimated) so far. A record that would leave the rest
 * less than their smallest records is encoded again 1/8 octave coarser (the last tensors, where
 * the estimate's error can no longer be absorbed): the budget holds exactly.
 * Single tensor: the step from its own curve, then the record measured and the step moved by
 * 1/8 octave until it fits (bits) or meets the error (error target).
 */
#include <math.h>
#include <string.h>

#include "codec_rd.h"
#include "rd_internal.h"

#define RD_DX 0.5       /* curve spacing, octaves */
#define RD_CURVE 49     /* points: log2(rms) - 16 .. + 8 */
#define RD_CURVE_LO 16.0
#define RD_MARGIN 0.002 /* aim this far under the budget left */
#define RD_TRIES 48
#define RD_RETRY_DX (1.0 / 32) /* a record over the budget: encoded again this much coarser */
#define RD_EXACT_PLAN_MAX ((uint64_t)1 << 24) /* models up to this many rd parameters: exact plans */
#define RD_QUICK_CURVE ((uint64_t)1 << 20)    /* tensors up to this many values: curves with one quantizer */

/* ------------------------------------------------------------------ curves */

typedef struct {
    double x0;            /* log2 step of point 0 */
    double lb[RD_CURVE];  /* log2 estimated bytes */
    double ld[RD_CURVE];  /* log2 estimated squared error (+ tiny) */
} rd_curve;

/* The curve of M (n values), from the coarsest step to the finest, `threads` points at a time.
 * Once a point's step had to be coarsened so as not to clip (ddct_rd_model_estimate), every finer
 * point is that one. cap > 0: once a point costs cap bits a value, the finer ones (the dearest to
 * estimate, and far beyond any budget that asks cap / 8 of that) follow the high-rate slope
 * instead: half a bit a value more and half the squared error per RD_DX. */
static void curve_build(const ddct_rd_model *M, uint64_t n, rd_curve *c, int quick, int threads, double cap)
{
    double rms = ddct_rd_model_rms(M);
    if (!(rms > 0) || !isfinite(rms)) rms = 1e-30;
    c->x0 = log2(rms) - RD_CURVE_LO;
    int g0 = RD_CURVE; /* points [g0, RD_CURVE) are estimated */
    while (g0 > 0) {
        int k = g0 < threads ? g0 : threads, over = 0, flat = -1;
#pragma omp parallel for num_threads(k) schedule(static) reduction(|| : over) reduction(max : flat)
        for (int i = 0; i < k; i++) {
            int g = g0 - 1 - i;
            double b = 0, d = 0, step = exp2(c->x0 + g * RD_DX);
            double used = ddct_rd_model_estimate(M, step, quick, &b, &d);
            c->lb[g] = log2(b > 1 ? b : 1);
            c->ld[g] = log2(d + 1e-300);
            over = over || (cap > 0 && 8 * b >= cap * (double)n);
            if (used > step) flat = g > flat ? g : flat;
        }
        if (flat >= 0) { /* the coarsest clipped point of the batch holds for the finer ones */
            for (int g = flat - 1; g >= 0; g--) {
                c->lb[g] = c->lb[flat];
                c->ld[g] = c->ld[flat];
            }
            return;
        }
        g0 -= k;
        if (over) break;
    }
    for (int g = g0 - 1; g >= 0; g--) {
        c->lb[g] = log2(exp2(c->lb[g + 1]) + (double)n * RD_DX / 8);
        c->ld[g] = c->ld[g + 1] - 2 * RD_DX;
    }
}

/* Linear interpolation in x of a tabulated log2 value, clamped at the ends. */
static double curve_at(const rd_curve *c, const double *t, double x)
{
    double g = (x - c->x0) / RD_DX;
    if (!(g > 0)) return t[0];
    if (g >= RD_CURVE - 1) return t[RD_CURVE - 1];
    int i = (int)g;
    double f = g - i;
    return t[i] + f * (t[i + 1] - t[i]);
}

/* ------------------------------------------------------------------ one tensor */

static int encode_at(const ddct_lossy_in *in, const ddct_rd_model *M, double x, ddct_enc_out *out, uint64_t *bytes,
                     double *err2, int *nonfinite, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_rd_encode_model(in, M, exp2(x), out, bytes, err2, nonfinite, e));
    if (*nonfinite && in->nonfinite) *in->nonfinite = 1;
    return 0;
}

/* The step for one tensor alone: its own target, bits or relative error. */
static int rd_encode(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    const ddct_params *P = in->params;
    RETURN_ERROR_IF(in->nelem == 0 || (!in->delta && !in->src), e, DDCT_ERR_INTERNAL, "rd codec: no input");
    ddct_rd_model *M = NULL;
    int nonfinite = 0;
    FORWARD_IF_ERROR(ddct_rd_model_build(in, 0, &M, &nonfinite, e));
    if (nonfinite) {
        if (in->nonfinite) *in->nonfinite = 1;
        return 0;
    }
    int rc = 0;
    if (in->step > 0) { /* a plan's step, coarser while over its cap */
        double x = log2(ddct_rd_model_step(M, in->step));
        for (int t = 0; t < RD_TRIES && !rc; t++) {
            uint64_t bytes = 0;
            rc = encode_at(in, M, x, out, &bytes, NULL, &nonfinite, e);
            if (rc || nonfinite || !in->cap || bytes <= in->cap) break;
            x += t ? RD_RETRY_DX : fmax(RD_RETRY_DX, 0.5 * log2((double)bytes / (double)in->cap));
        }
        ddct_rd_model_free(M);
        return rc;
    }
    rd_curve c;
    curve_build(M, in->nelem, &c, in->nelem <= RD_QUICK_CURVE, rd_threads(in->threads), 0);
    double energy = ddct_rd_model_energy(M);
    double target = P && P->error > 0 ? P->error : 0;
    double budget = (P && P->bpp > 0 ? P->bpp : 1.0) * (double)in->nelem / 8.0;
    /* the curve's x for the target: bisection (coarsest that meets an error, finest that fits) */
    double lo = c.x0, hi = c.x0 + RD_DX * (RD_CURVE - 1);
    double want = target > 0 ? log2(target * target * energy + 1e-300) : log2(budget);
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi);
        double v = curve_at(&c, target > 0 ? c.ld : c.lb, mid);
        int ok = v <= want;
        /* bytes fall and the error grows with x */
        if (target > 0 ? ok : !ok) lo = mid;
        else hi = mid;
    }
    double x = log2(ddct_rd_model_step(M, exp2(target > 0 ? lo : hi))); /* coarser steps move it from there */
    /* a budget: 1/8 octave coarser at a time, then (where the bytes hardly fall with the step, far
     * from the estimate) by doubling moves up to 4 octaves, so that the smallest record is reached
     * within RD_TRIES; after a move of more than 1/8 octave, bisection back towards the last step
     * over the budget */
    double dx = 0.125, xover = -INFINITY;
    int fit = 0;
    for (int t = 0; t < RD_TRIES && !rc; t++) {
        uint64_t bytes = 0;
        double err2 = 0;
        rc = encode_at(in, M, x, out, &bytes, &err2, &nonfinite, e);
        if (rc || nonfinite) break;
        int ok = target > 0 ? sqrt(err2 / (energy > 0 ? energy : 1)) <= target : (double)bytes <= budget;
        if ((fit = ok)) break;
        if (target > 0) {
            x -= 0.125;
            continue;
        }
        xover = x;
        if (t >= 8 && dx < 4) dx *= 2;
        x += dx;
    }
    while (fit && !rc && !nonfinite && !(target > 0) && isfinite(xover) && x - xover > 0.2) {
        ddct_enc_out tmp;
        ddct_enc_out_init(&tmp);
        uint64_t bytes = 0;
        double mid = 0.5 * (x + xover);
        rc = encode_at(in, M, mid, &tmp, &bytes, NULL, &nonfinite, e);
        if (!rc && !nonfinite && (double)bytes <= budget) {
            ddct_enc_out t2 = *out;
            *out = tmp;
            tmp = t2;
            x = mid;
        } else {
            xover = mid;
        }
        ddct_enc_out_free(&tmp);
    }
    /* a budget: finer steps while the record still fits (the estimate leaves some unused) */
    for (int t = 0; t < 8 && !rc && !nonfinite && !(target > 0); t++) {
        ddct_enc_out tmp;
        ddct_enc_out_init(&tmp);
        uint64_t bytes = 0;
        x -= 1.0 / 16;
        rc = encode_at(in, M, x, &tmp, &bytes, NULL, &nonfinite, e);
        int fits = !rc && !nonfinite && (double)bytes <= budget;
        if (fits) {
            ddct_enc_out t2 = *out;
            *out = tmp;
            tmp = t2;
        }
        ddct_enc_out_free(&tmp);
        if (!fits) break;
    }
    ddct_rd_model_free(M);
    return rc;
}

/* ------------------------------------------------------------------ the whole model */

typedef struct {
    size_t idx;
    double lw;      /* log2 of the step weight */
    rd_curve c;
    double xused;   /* the log2 step of the current / last encode */
    double est;     /* its estimated bytes */
    uint64_t exact; /* exact plans: the record's bytes at xused (0: none) */
} plan_t;

struct ddct_plan {
    plan_t *T;
    size_t nt, next;  /* tensors; the position of the next one to encode */
    size_t *pos;      /* tensor index -> position in T (SIZE_MAX: not rd) */
    size_t count;
    double budget, spent, est_spent;
};

static double bytes_at(const plan_t *t, double x) { return exp2(curve_at(&t->c, t->c.lb, x + t->lw)); }

/* x such that ratio * sum of B_t(x) over positions [from, nt) = target. */
static double solve(const ddct_plan *pl, size_t from, double ratio, double target)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t t = from; t < pl->nt; t++) {
        lo = fmin(lo, pl->T[t].c.x0 - pl->T[t].lw);
        hi = fmax(hi, pl->T[t].c.x0 + RD_DX * (RD_CURVE - 1) - pl->T[t].lw);
    }
    for (int it = 0; it < 80; it++) {
        double mid = 0.5 * (lo + hi), s = 0;
        for (size_t t = from; t < pl->nt; t++) s += bytes_at(&pl->T[t], mid);
        if (ratio * s > target) lo = mid; /* too many bytes: coarser */
        else hi = mid;
    }
    return hi;
}

/* Record bytes of every tensor at global log2 step x (each at x + lw_t), into b[t]; total in *tot. */
static int exact_bytes(ddct_plan *pl, ddct_rd_model **M, ddct_lossy_fn fn, void *opaque, size_t t, double x,
                       uint64_t *b, ddct_err *e)
{
    ddct_lossy_in in;
    memset(&in, 0, sizeof in);
    int k = fn(opaque, pl->T[t].idx, &in, e);
    if (k <= 0) return k < 0 ? -k : ddct_seterr(e, DDCT_ERR_INTERNAL, "rd plan: tensor set changed");
    int nonfinite = 0;
    *b = 0;
    return ddct_rd_encode_model(&in, M[t], exp2(x), NULL, b, NULL, &nonfinite, e);
}

static int exact_total(ddct_plan *pl, ddct_rd_model **M, ddct_lossy_fn fn, void *opaque, double x, uint64_t *b,
                       double *tot, ddct_err *e)
{
    *tot = 0;
    for (size_t t = 0; t < pl->nt; t++) {
        FORWARD_IF_ERROR(exact_bytes(pl, M, fn, opaque, t, x + pl->T[t].lw, &b[t], e));
        *tot += (double)b[t];
    }
    return 0;
}

/* Small models (where per-record overheads make estimates least exact, and encoding is cheap):
 * the global step from the records' exact bytes (bisection from the curves' solution), then the
 * budget left spent on finer steps for single tensors, in order (each by the largest of 1/4, 1/8,
 * 1/16 octave that still fits). Every tensor is then encoded at its step: the same bytes. */
static int plan_exact(ddct_plan *pl, ddct_lossy_fn fn, void *opaque, ddct_err *e)
{
    ddct_rd_model **M = calloc(pl->nt ? pl->nt : 1, sizeof *M);
    uint64_t *b = malloc((pl->nt ? pl->nt : 1) * sizeof *b), *bb = malloc((pl->nt ? pl->nt : 1) * sizeof *bb);
    int rc = M && b && bb ? 0 : ddct_seterr(e, DDCT_ERR_NOMEM, "rd plan: out of memory");
    for (size_t t = 0; t < pl->nt && !rc; t++) {
        ddct_lossy_in in;
        memset(&in, 0, sizeof in);
        int k = fn(opaque, pl->T[t].idx, &in, e), nonfinite = 0;
        if (k <= 0) rc = k < 0 ? -k : ddct_seterr(e, DDCT_ERR_INTERNAL, "rd plan: tensor set changed");
        else rc = ddct_rd_model_build(&in, 0, &M[t], &nonfinite, e);
        if (!rc && nonfinite) rc = ddct_seterr(e, DDCT_ERR_INTERNAL, "rd plan: tensor changed");
    }
    double good = 0, bad = 0, tot = 0;
    int have_good = 0, have_bad = 0;
    /* twice: the estimates' choices (fast) from the curves' solution, then the exact choices of
     * tiny tensors from there, in a narrow bracket */
    double x = solve(pl, 0, 1.0, pl->budget), dx = 0.25;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (size_t t = 0; t < pl->nt; t++) ddct_rd_model_set_exact(M[t], pass);
        have_good = have_bad = 0;
        /* bracket: finer steps give more bytes */
        for (int it = 0; it < 24 && !rc && !(have_good && have_bad); it++) {
            rc = exact_total(pl, M, fn, opaque, x, b, &tot, e);
            if (rc) break;
            if (tot <= pl->budget) {
                good = x;
                have_good = 1;
                memcpy(bb, b, pl->nt * sizeof *b);
                x -= dx;
            } else {
                bad = x;
                have_bad = 1;
                x += dx;
            }
        }
        for (int it = 0; it < (pass ? 4 : 7) && have_good && have_bad && !rc; it++) {
            double mid = 0.5 * (good + bad);
            rc = exact_total(pl, M, fn, opaque, mid, b, &tot, e);
            if (rc) break;
            if (tot <= pl->budget) {
                good = mid;
                memcpy(bb, b, pl->nt * sizeof *b);
            } else {
                bad = mid;
            }
        }
        x = good;
        dx = 1.0 / 32;
    }
    if (!rc && have_good) {
        double spent = 0;
        for (size_t t = 0; t < pl->nt; t++) {
            pl->T[t].xused = good + pl->T[t].lw;
            spent += (double)bb[t];
        }
        static const double f[] = {0.25, 0.125, 0.0625};
        for (size_t t = 0; t < pl->nt && !rc && spent < 0.999 * pl->budget; t++)
            for (size_t i = 0; i < sizeof f / sizeof f[0] && !rc; i++) {
                uint64_t nb = 0;
                rc = exact_bytes(pl, M, fn, opaque, t, pl->T[t].xused - f[i], &nb, e);
                if (!rc && spent - (double)bb[t] + (double)nb <= pl->budget) {
                    spent += (double)nb - (double)bb[t];
                    bb[t] = nb;
                    pl->T[t].xused -= f[i];
                    break;
                }
            }
        for (size_t t = 0; t < pl->nt; t++) pl->T[t].exact = bb[t];
    }
    for (size_t t = 0; M && t < pl->nt; t++) ddct_rd_model_free(M[t]);
    free(M);
    free(b);
    free(bb);
    return rc;
}

static void plan_free(ddct_plan *pl)
{
    if (!pl) return;
    free(pl->T);
    free(pl->pos);
    free(pl);
}

static int plan_create(ddct_plan **out, size_t count, ddct_lossy_fn fn, void *opaque, const ddct_params *p,
                       int threads, ddct_err *e)
{
    *out = NULL;
    if (p->error > 0) return 0; /* an error target is per tensor: no plan */
    ddct_plan *pl = calloc(1, sizeof *pl);
    RETURN_ERROR_IF(!pl, e, DDCT_ERR_NOMEM, "rd plan: out of memory");
    pl->T = calloc(count ? count : 1, sizeof *pl->T);
    pl->pos = malloc((count ? count : 1) * sizeof *pl->pos);
    pl->count = count;
    if (!pl->T || !pl->pos) {
        plan_free(pl);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "rd plan: out of memory");
    }
    int rc = 0, rel = p->rd_measure == DDCT_RD_MEASURE_REL;
    uint64_t nparams = 0;
    double wmax = 0;
    /* curves estimated up to 12 bits a value, or 8x the budget's */
    const double curve_cap = fmax(12.0, 8.0 * (p->bpp > 0 ? p->bpp : 1.0));
    for (size_t i = 0; i < count && !rc; i++) {
        pl->pos[i] = SIZE_MAX;
        ddct_lossy_in in;
        memset(&in, 0, sizeof in);
        int k = fn(opaque, i, &in, e);
        if (k < 0) rc = -k;
        if (k <= 0) continue;
        ddct_rd_model *M = NULL;
        int nonfinite = 0;
        rc = ddct_rd_model_build(&in, 1, &M, &nonfinite, e);
        if (rc || nonfinite) continue; /* a non-finite tensor is stored losslessly: no budget */
        plan_t *t = &pl->T[pl->nt];
        t->idx = i;
        /* Equal slopes of sum_t D_t / c_t: step_t proportional to sqrt(c_t). Plain squared error
         * (c_t = 1): one step for every tensor; relative error (c_t = ||delta_t||^2): step_t
         * proportional to ||delta_t||. */
        double norm = sqrt(ddct_rd_model_energy(M));
        t->lw = rel && norm > 0 && isfinite(norm) ? log2(norm) : 0;
        if (rel && norm > wmax) wmax = norm;
        curve_build(M, in.nelem, &t->c, in.nelem <= RD_QUICK_CURVE, rd_threads(threads), curve_cap);
        ddct_rd_model_free(M);
        pl->pos[i] = pl->nt++;
        nparams += in.nelem;
    }
    if (rc) {
        plan_free(pl);
        return rc;
    }
    if (rel && wmax > 0)
        for (size_t t = 0; t < pl->nt; t++) pl->T[t].lw -= log2(wmax);
    pl->budget = (p->bpp > 0 ? p->bpp : 1.0) * (double)nparams / 8.0;
    if (nparams <= RD_EXACT_PLAN_MAX) rc = plan_exact(pl, fn, opaque, e);
    if (rc) {
        plan_free(pl);
        return rc;
    }
    *out = pl;
    return 0;
}

static double plan_step(ddct_plan *pl, size_t i, uint64_t *cap)
{
    *cap = 0;
    if (i >= pl->count || pl->pos[i] == SIZE_MAX) return 0;
    size_t at = pl->pos[i];
    plan_t *t = &pl->T[at];
    if (t->exact) { /* an exact plan: its step, and its bytes as the cap */
        *cap = t->exact;
        t->est = (double)t->exact;
        return exp2(t->xused);
    }
    double ratio = pl->est_spent > 0 ? pl->spent / pl->est_spent : 1.0;
    double left = pl->budget - pl->spent;
    double x = solve(pl, at, ratio, left * (1 - RD_MARGIN));
    t->xused = x + t->lw;
    t->est = bytes_at(t, x);
    /* the cap: what the budget leaves once the tensors after this one have their smallest records */
    double rest = 0;
    for (size_t u = at + 1; u < pl->nt; u++) rest += exp2(pl->T[u].c.lb[RD_CURVE - 1]);
    double c = left - rest;
    *cap = c >= 1 ? (uint64_t)c : 1;
    return exp2(t->xused);
}

static void plan_spent(ddct_plan *pl, size_t i, uint64_t bytes)
{
    if (i >= pl->count || pl->pos[i] == SIZE_MAX) return;
    size_t at = pl->pos[i];
    plan_t *t = &pl->T[at];
    pl->spent += (double)bytes;
    pl->est_spent += t->est;
    pl->next = at + 1;
}

static const ddct_plan_ops rd_plan_ops = {
    .create = plan_create, .step = plan_step, .spent = plan_spent, .free = plan_free};

const ddct_codec_traits ddct_codec_rd = {.name = "rd",
                                         .id = DDCT_CODEC_RD,
                                         .lossy = 1,
                                         .encode_lossy = rd_encode,
                                         .decode_lossy = ddct_rd_decode,
                                         .decode_stream = ddct_rd_decode_stream,
                                         .plan = &rd_plan_ops};
