/*
 * params.c — compression parameters: defaults, parsing of option values and of
 * mixed-precision strategies ("2:0.5,0:0.5"), the one table of every parameter's bounds (used by
 * the zstd-style setters, by ddct_params_set and by the check before compressing), and the
 * canonical description that the file header records.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deltadct.h"

void ddct_params_default(ddct_params *p)
{
    memset(p, 0, sizeof *p);
    /* the default method: rd at 1 bit per lossy parameter, rescale decided per tensor */
    p->method = DDCT_METHOD_RD;
    p->bpp = 1.0;
    p->transform = DDCT_TRANSFORM_DCT;
    p->patch = 16;
    p->bits.n = 2;
    p->bits.bits[0] = 2;
    p->bits.frac[0] = 0.5;
    p->bits.bits[1] = 0;
    p->bits.frac[1] = 0.5;
    p->importance = DDCT_IMPORTANCE_L2;
    p->lowfreq_k = 4;
    p->qtable = DDCT_QTABLE_FLAT;
    p->wavelet = DDCT_WAVELET_HAAR;
    p->dwt_levels = 1;
    p->dwt_keep = DDCT_KEEP_ALL;
    p->rescale = DDCT_RESCALE_AUTO; /* rd: per tensor; the other methods: on (the paper's) */
    p->threads = 0;
    p->zstd_level = 1; /* on float tensors (xor + byte shuffle) level 1 was both faster and smaller than 3;
                          0 (codec_raw.c's fast tensor setting) is 25 % faster on the Llama bench but
                          1-2.5 % larger on the shared fixtures' files */
}

void ddct_params_effective(const ddct_params *in, ddct_params *out)
{
    *out = *in;
    if (out->method != DDCT_METHOD_RD) {
        if (out->rescale == DDCT_RESCALE_AUTO) out->rescale = 1;
        out->error = 0;
        out->rd_measure = DDCT_RD_MEASURE_MSE;
    }
    if (out->method != DDCT_METHOD_RD && out->method != DDCT_METHOD_SVD) out->bpp = 0;
}

static ddct_ErrorCode perr(char *err, size_t errlen, const char *fmt, const char *a)
{
    if (err && errlen) snprintf(err, errlen, fmt, a);
    return DDCT_ERR_PARAM;
}

ddct_ErrorCode ddct_strategy_parse(const char *spec, ddct_strategy *out, char *err, size_t errlen)
{
    ddct_strategy s;
    memset(&s, 0, sizeof s);
    if (!spec || !*spec) return perr(err, errlen, "empty bit-width strategy%s", "");
    const char *c = spec;
    double sum = 0;
    while (*c) {
        if (s.n == DDCT_MAX_BITS_LEVELS) return perr(err, errlen, "too many classes in strategy '%s' (max 16)", spec);
        char *end;
        errno = 0;
        long b = strtol(c, &end, 10);
        if (end == c || *end != ':' || errno) return perr(err, errlen, "strategy '%s': expected BITS:FRACTION[,...]", spec);
        if (b < 0 || b > DDCT_MAX_BITWIDTH) return perr(err, errlen, "strategy '%s': bit-widths must be 0..8", spec);
        c = end + 1;
        errno = 0;
        double f = strtod(c, &end);
        if (end == c || errno || !isfinite(f) || f < 0 || f > 1)
            return perr(err, errlen, "strategy '%s': fractions must be numbers in [0, 1]", spec);
        for (int i = 0; i < s.n; i++)
            if (s.bits[i] == (int)b) return perr(err, errlen, "strategy '%s': a bit-width appears twice", spec);
        s.bits[s.n] = (int)b;
        s.frac[s.n] = f;
        s.n++;
        sum += f;
        c = end;
        if (*c == ',') {
            c++;
            if (!*c) return perr(err, errlen, "strategy '%s': trailing comma", spec);
        } else if (*c) {
            return perr(err, errlen, "strategy '%s': expected ',' between classes", spec);
        }
    }
    if (fabs(sum - 1.0) > 1e-3) return perr(err, errlen, "strategy '%s': fractions must sum to 1", spec);
    *out = s;
    return DDCT_OK;
}

typedef struct {
    const char *name;
    int value;
} ddct_enum_name;

static const ddct_enum_name method_names[] = {
    {"patch", DDCT_METHOD_PATCH}, {"dct", DDCT_METHOD_PATCH}, {"bitdelta", DDCT_METHOD_BITDELTA},
    {"svd", DDCT_METHOD_SVD}, {"rd", DDCT_METHOD_RD}, {NULL, 0}};
static const ddct_enum_name transform_names[] = {
    {"dct", DDCT_TRANSFORM_DCT}, {"dwt", DDCT_TRANSFORM_DWT}, {"none", DDCT_TRANSFORM_NONE}, {NULL, 0}};
static const ddct_enum_name wavelet_names[] = {{"haar", DDCT_WAVELET_HAAR}, {"cdf97", DDCT_WAVELET_CDF97}, {NULL, 0}};
static const ddct_enum_name keep_names[] = {
    {"all", DDCT_KEEP_ALL}, {"ll_lh_hl", DDCT_KEEP_LL_LH_HL}, {"ll_only", DDCT_KEEP_LL_ONLY}, {NULL, 0}};
static const ddct_enum_name importance_names[] = {
    {"l2", DDCT_IMPORTANCE_L2}, {"lowfreq", DDCT_IMPORTANCE_LOWFREQ}, {NULL, 0}};
static const ddct_enum_name qtable_names[] = {{"flat", DDCT_QTABLE_FLAT}, {"none", DDCT_QTABLE_FLAT},
                                              {"jpeg", DDCT_QTABLE_JPEG}, {NULL, 0}};
static const ddct_enum_name measure_names[] = {{"mse", DDCT_RD_MEASURE_MSE}, {"rel", DDCT_RD_MEASURE_REL}, {NULL, 0}};

static int lookup(const ddct_enum_name *t, const char *v, int *out)
{
    for (; t->name; t++)
        if (!strcmp(t->name, v)) {
            *out = t->value;
            return 1;
        }
    return 0;
}

static const char *name_of(const ddct_enum_name *t, int v)
{
    for (; t->name; t++)
        if (t->value == v) return t->name;
    return "?";
}

/* ---------------------------------------------------------------- bounds */

typedef struct {
    ddct_cParameter id;
    const char *name;          /* the CLI's option name */
    const ddct_enum_name *names; /* enumerations: their value names, else NULL */
    ddct_bounds b;
} param_info;

#define INT_B(lo, hi) {DDCT_OK, lo, hi, 0, 0, 1, 0}
static const param_info params_tab[] = {
    {DDCT_c_method, "method", method_names, INT_B(0, DDCT_METHOD_COUNT - 1)},
    {DDCT_c_bpp, "bpp", NULL, {DDCT_OK, 0, 32, 1, 0, 0, 1}},
    {DDCT_c_error, "error", NULL, {DDCT_OK, 0, 1, 1, 1, 0, 1}},
    {DDCT_c_rdMeasure, "rd-measure", measure_names, INT_B(0, DDCT_RD_MEASURE_COUNT - 1)},
    {DDCT_c_rescale, "rescale", NULL, INT_B(0, DDCT_RESCALE_AUTO)},
    {DDCT_c_threads, "threads", NULL, INT_B(0, DDCT_MAX_THREADS)},
    {DDCT_c_zstdLevel, "zstd-level", NULL, INT_B(0, 22)},
    {DDCT_c_transform, "transform", transform_names, INT_B(0, DDCT_TRANSFORM_COUNT - 1)},
    {DDCT_c_patch, "patch", NULL, INT_B(2, 128)},
    {DDCT_c_importance, "importance", importance_names, INT_B(0, DDCT_IMPORTANCE_COUNT - 1)},
    {DDCT_c_lowfreqK, "lowfreq-k", NULL, INT_B(1, 128)},
    {DDCT_c_qtable, "qtable", qtable_names, INT_B(0, DDCT_QTABLE_COUNT - 1)},
    {DDCT_c_wavelet, "wavelet", wavelet_names, INT_B(0, DDCT_WAVELET_COUNT - 1)},
    {DDCT_c_dwtLevels, "dwt-levels", NULL, INT_B(1, 6)},
    {DDCT_c_dwtKeep, "dwt-keep", keep_names, INT_B(0, DDCT_KEEP_COUNT - 1)},
};
#undef INT_B
#define NPARAMS (sizeof params_tab / sizeof *params_tab)

static const param_info *param_of(ddct_cParameter id)
{
    for (size_t k = 0; k < NPARAMS; k++)
        if (params_tab[k].id == id) return &params_tab[k];
    return NULL;
}

ddct_bounds ddct_cParam_getBounds(ddct_cParameter param)
{
    const param_info *pi = param_of(param);
    if (pi) return pi->b;
    ddct_bounds none = {DDCT_ERR_PARAM, 0, 0, 0, 0, 0, 0};
    return none;
}

const char *ddct_cParam_name(ddct_cParameter param)
{
    const param_info *pi = param_of(param);
    return pi ? pi->name : NULL;
}

static int in_bounds(const ddct_bounds *b, double v)
{
    if (!isfinite(v)) return 0;
    if (b->zeroUnset && v == 0) return 1;
    if (b->integer && v != floor(v)) return 0;
    if (b->lowerExclusive ? !(v > b->lowerBound) : !(v >= b->lowerBound)) return 0;
    return b->upperExclusive ? v < b->upperBound : v <= b->upperBound;
}

/* "an integer in 2..128", "a number in (0, 32]", ... */
static void bounds_text(const ddct_bounds *b, char *out, size_t n)
{
    if (b->integer) snprintf(out, n, "an integer in %g..%g", b->lowerBound, b->upperBound);
    else
        snprintf(out, n, "a number in %c%g, %g%c%s", b->lowerExclusive ? '(' : '[', b->lowerBound, b->upperBound,
                 b->upperExclusive ? ')' : ']', b->zeroUnset ? ", or 0 for unset" : "");
}

static double *dfield(ddct_params *p, ddct_cParameter id)
{
    return id == DDCT_c_bpp ? &p->bpp : id == DDCT_c_error ? &p->error : NULL;
}

static int *ifield(ddct_params *p, ddct_cParameter id)
{
    switch (id) {
    case DDCT_c_method: return (int *)&p->method;
    case DDCT_c_rdMeasure: return (int *)&p->rd_measure;
    case DDCT_c_rescale: return &p->rescale;
    case DDCT_c_threads: return &p->threads;
    case DDCT_c_zstdLevel: return &p->zstd_level;
    case DDCT_c_transform: return (int *)&p->transform;
    case DDCT_c_patch: return &p->patch;
    case DDCT_c_importance: return (int *)&p->importance;
    case DDCT_c_lowfreqK: return &p->lowfreq_k;
    case DDCT_c_qtable: return (int *)&p->qtable;
    case DDCT_c_wavelet: return (int *)&p->wavelet;
    case DDCT_c_dwtLevels: return &p->dwt_levels;
    case DDCT_c_dwtKeep: return (int *)&p->dwt_keep;
    default: return NULL;
    }
}

ddct_ErrorCode ddct_params_getParameter(const ddct_params *p, ddct_cParameter param, double *value)
{
    ddct_params *q = (ddct_params *)p; /* the field pointers are only read here */
    const double *d = dfield(q, param);
    const int *i = ifield(q, param);
    if (!param_of(param) || (!d && !i)) return DDCT_ERR_PARAM;
    *value = d ? *d : (double)*i;
    return DDCT_OK;
}

/* value for param within its bounds: DDCT_OK, else DDCT_ERR_PARAM with the message. */
static ddct_ErrorCode check_value(const param_info *pi, double value, char *err, size_t errlen)
{
    if (in_bounds(&pi->b, value)) return DDCT_OK;
    char range[96];
    bounds_text(&pi->b, range, sizeof range);
    if (err && errlen) snprintf(err, errlen, "--%s must be %s, got %g", pi->name, range, value);
    return DDCT_ERR_PARAM;
}

ddct_ErrorCode ddct_params_setParameter(ddct_params *p, ddct_cParameter param, double value, char *err, size_t errlen)
{
    const param_info *pi = param_of(param);
    if (!pi) {
        if (err && errlen) snprintf(err, errlen, "unknown parameter %d", (int)param);
        return DDCT_ERR_PARAM;
    }
    if (check_value(pi, value, err, errlen)) return DDCT_ERR_PARAM;
    double *d = dfield(p, param);
    if (d) *d = value;
    else *ifield(p, param) = (int)value;
    return DDCT_OK;
}

ddct_ErrorCode ddct_params_check(const ddct_params *p, char *err, size_t errlen)
{
    for (size_t k = 0; k < NPARAMS; k++) {
        double v = 0;
        if (ddct_params_getParameter(p, params_tab[k].id, &v) || check_value(&params_tab[k], v, err, errlen))
            return DDCT_ERR_PARAM;
    }
    if (p->bits.n < 1 || p->bits.n > DDCT_MAX_BITS_LEVELS)
        return perr(err, errlen, "%s", "--bits: a strategy needs 1..16 classes");
    double sum = 0;
    for (int i = 0; i < p->bits.n; i++) {
        if (p->bits.bits[i] < 0 || p->bits.bits[i] > DDCT_MAX_BITWIDTH || !(p->bits.frac[i] >= 0))
            return perr(err, errlen, "%s", "--bits: widths must be 0..8 and fractions >= 0");
        sum += p->bits.frac[i];
    }
    if (!(fabs(sum - 1) <= 1e-3)) return perr(err, errlen, "%s", "--bits: fractions must sum to 1");
    return DDCT_OK;
}

ddct_ErrorCode ddct_params_set(ddct_params *p, const char *name, const char *value, char *err, size_t errlen)
{
    int e;
    if (!value) return perr(err, errlen, "option '%s' needs a value", name);
    for (size_t k = 0; k < NPARAMS; k++) { /* enumerations by their value names */
        const param_info *pi = &params_tab[k];
        if (!pi->names || strcmp(name, pi->name)) continue;
        if (!lookup(pi->names, value, &e)) {
            if (err && errlen) snprintf(err, errlen, "invalid value for --%s: '%s'", pi->name, value);
            return DDCT_ERR_PARAM;
        }
        return ddct_params_setParameter(p, pi->id, e, err, errlen);
    }
    if (!strcmp(name, "bits")) return ddct_strategy_parse(value, &p->bits, err, errlen);
    if (!strcmp(name, "rescale")) {
        if (!strcmp(value, "auto")) p->rescale = DDCT_RESCALE_AUTO;
        else if (!strcmp(value, "on") || !strcmp(value, "1")) p->rescale = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "0")) p->rescale = 0;
        else return perr(err, errlen, "--rescale must be auto, on or off, got '%s'", value);
        return DDCT_OK;
    }
    /* numbers: the table's bounds; as an option, 0 is not "unset" but out of range */
    for (size_t k = 0; k < NPARAMS; k++) {
        const param_info *pi = &params_tab[k];
        if (pi->names || strcmp(name, pi->name)) continue;
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        ddct_bounds b = pi->b;
        b.zeroUnset = 0;
        if (end == value || *end || errno || isspace((unsigned char)*value) || !in_bounds(&b, v)) {
            char range[96];
            bounds_text(&b, range, sizeof range);
            if (err && errlen) snprintf(err, errlen, "--%s must be %s, got '%s'", pi->name, range, value);
            return DDCT_ERR_PARAM;
        }
        return ddct_params_setParameter(p, pi->id, v, err, errlen);
    }
    return perr(err, errlen, "unknown option '%s'", name);
}

void ddct_params_describe(const ddct_params *p, char *out, size_t outlen)
{
    char bits[256], errs[48] = "";
    size_t n = 0;
    if (p->error > 0) snprintf(errs, sizeof errs, " error=%g", p->error);
    else if (p->rd_measure != DDCT_RD_MEASURE_MSE)
        snprintf(errs, sizeof errs, " rd-measure=%s", name_of(measure_names, p->rd_measure));
    bits[0] = 0;
    for (int i = 0; i < p->bits.n && n < sizeof bits; i++)
        n += (size_t)snprintf(bits + n, sizeof bits - n, "%s%d:%g", i ? "," : "", p->bits.bits[i], p->bits.frac[i]);
    snprintf(out, outlen,
             "method=%s transform=%s patch=%d bits=%s importance=%s lowfreq-k=%d qtable=%s wavelet=%s "
             "dwt-levels=%d dwt-keep=%s rescale=%d bpp=%g%s zstd-level=%d include=%s exclude=%s",
             name_of(method_names, p->method), name_of(transform_names, p->transform), p->patch, bits,
             name_of(importance_names, p->importance), p->lowfreq_k, name_of(qtable_names, p->qtable),
             name_of(wavelet_names, p->wavelet), p->dwt_levels, name_of(keep_names, p->dwt_keep), p->rescale,
             p->bpp, errs, p->zstd_level, p->include_regex ? p->include_regex : "(default)",
             p->exclude_regex ? p->exclude_regex : "(default)");
}
