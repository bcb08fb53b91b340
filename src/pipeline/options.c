/*
 * options.c — which compression options each method reads, and the check that refuses the
 * others (ddct_params_optionRead, ddct_params_checkOptions). An option the chosen method ignores
 * is an error naming it, not silence (`--patch 8` with rd, `--bpp 2` with the patch codec), so a
 * program or script that thinks it set something learns that it did not. The method is the
 * effective one, after defaults: an option that the default method ignores is refused when no
 * method was given. The CLI and the Python package check through it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "deltadct.h"

static const char *const METHOD_NAME[DDCT_METHOD_COUNT] = {"patch", "bitdelta", "svd", "rd"};

#define BY(m) (1u << DDCT_METHOD_##m)

static int dwt(const ddct_params *p) { return p->transform == DDCT_TRANSFORM_DWT; }
static int lowfreq(const ddct_params *p) { return p->importance == DDCT_IMPORTANCE_LOWFREQ; }

/* From the codecs: codec_patch.c reads the patch options (the wavelet ones only for the DWT,
 * lowfreq-k only for the low-frequency score); codec_bitdelta.c reads none (sign and one
 * scale); codec_svd.c only bpp (the rank); rd reads bpp (the budget, split across tensors by
 * rd-measure in ddct_rd_plan) or error (a per-tensor target, which replaces the budget and so
 * the plan). --patch also sets the size below which a tensor stays lossless (nelem < p * p),
 * for every method; outside the patch codec that is a side effect, not an option: compress
 * keeps the default 16 for the other methods (sweep gives them its first --patch value, as its
 * help says). Options every method reads (--zstd-level, --include,
 * --exclude, --rescale) are not listed. */
static const struct {
    const char *opt;                   /* without "--" */
    unsigned methods;                  /* the methods that read it */
    int (*also)(const ddct_params *p); /* and then only when this holds (NULL: always) */
    const char *also_text;             /* what also() asks for, for the message */
    const char *excludes;              /* an option it cannot be given with (NULL: none) */
    const char *excludes_why;
} OPTION_USE[] = {
    {"transform", BY(PATCH), NULL, NULL, NULL, NULL},
    {"patch", BY(PATCH), NULL, NULL, NULL, NULL},
    {"bits", BY(PATCH), NULL, NULL, NULL, NULL},
    {"importance", BY(PATCH), NULL, NULL, NULL, NULL},
    {"qtable", BY(PATCH), NULL, NULL, NULL, NULL},
    {"lowfreq-k", BY(PATCH), lowfreq, "--importance lowfreq", NULL, NULL},
    {"wavelet", BY(PATCH), dwt, "--transform dwt", NULL, NULL},
    {"dwt-levels", BY(PATCH), dwt, "--transform dwt", NULL, NULL},
    {"dwt-keep", BY(PATCH), dwt, "--transform dwt", NULL, NULL},
    {"bpp", BY(SVD) | BY(RD), NULL, NULL, NULL, NULL},
    {"error", BY(RD), NULL, NULL, "bpp", "rd codes to a size budget (--bpp) or to an error target (--error)"},
    {"rd-measure", BY(RD), NULL, NULL, "error", "it shares a --bpp budget across tensors; --error has none"},
};

static int row_of(const char *opt)
{
    for (size_t k = 0; k < sizeof OPTION_USE / sizeof *OPTION_USE; k++)
        if (!strcmp(OPTION_USE[k].opt, opt)) return (int)k;
    return -1;
}

int ddct_params_optionRead(const ddct_params *p, const char *opt)
{
    int k = row_of(opt);
    if (k < 0) return 1; /* not in the table: every method reads it */
    if ((unsigned)p->method >= DDCT_METHOD_COUNT || !(OPTION_USE[k].methods >> p->method & 1)) return 0;
    return !OPTION_USE[k].also || OPTION_USE[k].also(p);
}

static int given_has(const char *const *given, int ngiven, const char *opt)
{
    for (int i = 0; i < ngiven; i++)
        if (!strcmp(given[i], opt)) return 1;
    return 0;
}

static ddct_ErrorCode fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static ddct_ErrorCode fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return DDCT_ERR_PARAM;
}

ddct_ErrorCode ddct_params_checkOptions(const ddct_params *p, const char *const *given, int ngiven, int method_given,
                                        char *err, size_t errlen)
{
    const char *m = (unsigned)p->method < DDCT_METHOD_COUNT ? METHOD_NAME[p->method] : "?";
    for (int i = 0; i < ngiven; i++) {
        int k = row_of(given[i]);
        if (k < 0) continue;
        if (OPTION_USE[k].excludes && given_has(given, ngiven, OPTION_USE[k].excludes))
            return fail(err, errlen, "--%s cannot be combined with --%s: %s", given[i], OPTION_USE[k].excludes,
                        OPTION_USE[k].excludes_why);
        if (ddct_params_optionRead(p, given[i])) continue;
        if (!(OPTION_USE[k].methods >> p->method & 1)) {
            char readers[64] = "";
            for (int j = 0; j < DDCT_METHOD_COUNT; j++)
                if (OPTION_USE[k].methods >> j & 1)
                    snprintf(readers + strlen(readers), sizeof readers - strlen(readers), "%s%s",
                             readers[0] ? ", " : "", METHOD_NAME[j]);
            return fail(err, errlen, "--%s does nothing with --method %s%s (it is read by --method %s)", given[i], m,
                        method_given ? "" : " (the default)", readers);
        }
        return fail(err, errlen, "--%s does nothing without %s", given[i], OPTION_USE[k].also_text);
    }
    return DDCT_OK;
}
