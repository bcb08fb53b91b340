/*
 * params.c — compression parameters: defaults, parsing of option values and of
 * mixed-precision strategies ("2:0.5,0:0.5"), and the canonical description that
 * the file header records.
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

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

ddct_ErrorCode ddct_params_set(ddct_params *p, const char *name, const char *value, char *err, size_t errlen)
{
    int e;
    long x;
    if (!value) return perr(err, errlen, "option '%s' needs a value", name);
#define ENUM_OPT(optname, table, field, type)                                                        \
    if (!strcmp(name, optname)) {                                                                    \
        if (!lookup(table, value, &e)) return perr(err, errlen, "invalid value for --" optname ": '%s'", value); \
        p->field = (type)e;                                                                          \
        return DDCT_OK;                                                                              \
    }
    ENUM_OPT("method", method_names, method, ddct_method)
    ENUM_OPT("transform", transform_names, transform, ddct_transform)
    ENUM_OPT("wavelet", wavelet_names, wavelet, ddct_wavelet)
    ENUM_OPT("dwt-keep", keep_names, dwt_keep, ddct_dwt_keep)
    ENUM_OPT("importance", importance_names, importance, ddct_importance)
    ENUM_OPT("qtable", qtable_names, qtable, ddct_qtable)
    ENUM_OPT("rd-measure", measure_names, rd_measure, ddct_rd_measure)
#undef ENUM_OPT
#define INT_OPT(optname, lo, hi, field)                                                              \
    if (!strcmp(name, optname)) {                                                                    \
        if (!parse_int(value, lo, hi, &x))                                                           \
            return perr(err, errlen, "--" optname " must be an integer in " #lo ".." #hi ", got '%s'", value); \
        p->field = (int)x;                                                                           \
        return DDCT_OK;                                                                              \
    }
    INT_OPT("patch", 2, 128, patch)
    INT_OPT("lowfreq-k", 1, 128, lowfreq_k)
    INT_OPT("dwt-levels", 1, 6, dwt_levels)
    INT_OPT("threads", 0, 1024, threads)
    INT_OPT("zstd-level", 0, 22, zstd_level)
#undef INT_OPT
    if (!strcmp(name, "bits")) return ddct_strategy_parse(value, &p->bits, err, errlen);
    if (!strcmp(name, "rescale")) {
        if (!strcmp(value, "auto")) p->rescale = DDCT_RESCALE_AUTO;
        else if (!strcmp(value, "on") || !strcmp(value, "1")) p->rescale = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "0")) p->rescale = 0;
        else return perr(err, errlen, "--rescale must be auto, on or off, got '%s'", value);
        return DDCT_OK;
    }
    if (!strcmp(name, "bpp")) {
        char *end;
        errno = 0;
        double b = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(b) || b <= 0 || b > 32)
            return perr(err, errlen, "--bpp must be a number in (0, 32], got '%s'", value);
        p->bpp = b;
        return DDCT_OK;
    }
    if (!strcmp(name, "error")) {
        char *end;
        errno = 0;
        double x = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(x) || x <= 0 || x >= 1)
            return perr(err, errlen, "--error must be a number in (0, 1), got '%s'", value);
        p->error = x;
        return DDCT_OK;
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
