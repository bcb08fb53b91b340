/*
 * fuzz_params.c — option parsing: ddct_strategy_parse and ddct_params_set on arbitrary strings.
 *
 * Input: "NAME\0VALUE" (split at the first NUL byte), or a bare VALUE when there is no NUL.
 * Per input: ddct_strategy_parse(VALUE) with a large, a tiny (1 and 7 bytes) and no error
 * buffer; ddct_params_set(p, NAME, VALUE) when a NAME is given; and ddct_params_set with VALUE
 * for every option name the CLI knows; ddct_params_describe of every resulting params.
 * Properties:
 *   - success and failure agree across error buffers, and a failure's message is a
 *     NUL-terminated string (non-empty when the buffer allows it) that fits its buffer;
 *   - a parsed strategy has 1..16 classes, distinct widths 0..8, fractions in [0, 1] summing
 *     to 1 within 1e-3; a failed parse leaves its output untouched;
 *   - params after a successful set still pass the checks compress applies (ranges, enums);
 *     after a failed set they are unchanged.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deltadct.h"
#include "fuzz.h"

static const char *const OPTION_NAMES[] = {"method",    "transform", "patch",    "bits",       "importance",
                                           "lowfreq-k", "qtable",    "wavelet",  "dwt-levels", "dwt-keep",
                                           "bpp",       "error",     "zstd-level", "threads", NULL};

static void check_msg(const char *err, size_t errlen, const char *what)
{
    FUZZ_ASSERT(memchr(err, 0, errlen) != NULL, "%s: message not terminated within %zu bytes", what, errlen);
    if (errlen > 1) FUZZ_ASSERT(err[0] != 0, "%s: empty message", what);
}

static void check_strategy(const ddct_strategy *s, const char *value)
{
    FUZZ_ASSERT(s->n >= 1 && s->n <= DDCT_MAX_BITS_LEVELS, "'%s': %d classes", value, s->n);
    double sum = 0;
    for (int i = 0; i < s->n; i++) {
        FUZZ_ASSERT(s->bits[i] >= 0 && s->bits[i] <= DDCT_MAX_BITWIDTH, "'%s': width %d", value, s->bits[i]);
        FUZZ_ASSERT(s->frac[i] >= 0 && s->frac[i] <= 1, "'%s': fraction %g", value, s->frac[i]);
        for (int j = 0; j < i; j++) FUZZ_ASSERT(s->bits[i] != s->bits[j], "'%s': width %d twice", value, s->bits[i]);
        sum += s->frac[i];
    }
    FUZZ_ASSERT(fabs(sum - 1) <= 1e-3, "'%s': fractions sum to %.17g", value, sum);
}

static void check_params(const ddct_params *p, const char *what)
{
    FUZZ_ASSERT(p->patch >= 2 && p->patch <= 128, "%s: patch %d", what, p->patch);
    FUZZ_ASSERT((unsigned)p->method < DDCT_METHOD_COUNT && (unsigned)p->transform < DDCT_TRANSFORM_COUNT &&
                    (unsigned)p->wavelet < DDCT_WAVELET_COUNT && (unsigned)p->dwt_keep < DDCT_KEEP_COUNT &&
                    (unsigned)p->importance < DDCT_IMPORTANCE_COUNT && (unsigned)p->qtable < DDCT_QTABLE_COUNT,
                "%s: enum out of range", what);
    FUZZ_ASSERT(p->lowfreq_k >= 1 && p->lowfreq_k <= 128, "%s: lowfreq-k %d", what, p->lowfreq_k);
    FUZZ_ASSERT(p->dwt_levels >= 1 && p->dwt_levels <= 6, "%s: dwt-levels %d", what, p->dwt_levels);
    FUZZ_ASSERT(p->threads >= 0 && p->threads <= 1024, "%s: threads %d", what, p->threads);
    FUZZ_ASSERT(p->zstd_level >= 0 && p->zstd_level <= 22, "%s: zstd-level %d", what, p->zstd_level);
    FUZZ_ASSERT(p->bpp == 0 || (isfinite(p->bpp) && p->bpp > 0 && p->bpp <= 32), "%s: bpp %g", what, p->bpp);
    FUZZ_ASSERT(p->error == 0 || (isfinite(p->error) && p->error > 0 && p->error < 1), "%s: error %g", what, p->error);
    check_strategy(&p->bits, what);
    char desc[1024];
    ddct_params_describe(p, desc, sizeof desc);
    FUZZ_ASSERT(memchr(desc, 0, sizeof desc) != NULL, "%s: description not terminated", what);
    char tiny[5];
    ddct_params_describe(p, tiny, sizeof tiny);
    FUZZ_ASSERT(memchr(tiny, 0, sizeof tiny) != NULL, "%s: short description not terminated", what);
}

static void try_set(const char *name, const char *value)
{
    ddct_params p, before;
    ddct_params_default(&p);
    memcpy(&before, &p, sizeof p); /* padding included */
    char err[512];
    memset(err, 'x', sizeof err);
    ddct_ErrorCode rc = ddct_params_set(&p, name, value, err, sizeof err);
    char small[3];
    memset(small, 'x', sizeof small);
    ddct_params q;
    ddct_params_default(&q);
    ddct_ErrorCode rc2 = ddct_params_set(&q, name, value, small, sizeof small);
    ddct_params r;
    ddct_params_default(&r);
    ddct_ErrorCode rc3 = ddct_params_set(&r, name, value, NULL, 0);
    FUZZ_ASSERT(rc == rc2 && rc == rc3, "set %s: results differ by error buffer (%d %d %d)", name, rc, rc2, rc3);
    if (rc) {
        FUZZ_ASSERT(rc == DDCT_ERR_PARAM, "set %s: code %d", name, rc);
        check_msg(err, sizeof err, name);
        check_msg(small, sizeof small, name);
        FUZZ_ASSERT(!memcmp(&p, &before, sizeof p), "set %s failed but changed the params", name);
    } else {
        check_params(&p, name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = 0;
    const uint8_t *nul = memchr(data, 0, size);
    const char *name = nul ? buf : NULL;
    const char *value = nul ? buf + (nul - data) + 1 : buf;

    ddct_strategy s, s2, s3, untouched;
    memset(&s, 0x5a, sizeof s);
    memset(&untouched, 0x5a, sizeof untouched);
    char err[512], e1[1], e7[7];
    ddct_ErrorCode rc = ddct_strategy_parse(value, &s, err, sizeof err);
    ddct_ErrorCode rc1 = ddct_strategy_parse(value, &s2, e1, sizeof e1);
    ddct_ErrorCode rc7 = ddct_strategy_parse(value, &s3, e7, sizeof e7);
    ddct_ErrorCode rcn = ddct_strategy_parse(value, &s3, NULL, 0);
    FUZZ_ASSERT(rc == rc1 && rc == rc7 && rc == rcn, "strategy: results differ by error buffer");
    if (rc) {
        FUZZ_ASSERT(rc == DDCT_ERR_PARAM, "strategy: code %d", rc);
        check_msg(err, sizeof err, "strategy");
        check_msg(e1, sizeof e1, "strategy");
        check_msg(e7, sizeof e7, "strategy");
        FUZZ_ASSERT(!memcmp(&s, &untouched, sizeof s), "strategy: failed parse wrote its output");
    } else {
        check_strategy(&s, value);
    }
    if (name) try_set(name, value);
    for (int k = 0; OPTION_NAMES[k]; k++) try_set(OPTION_NAMES[k], value);
    free(buf);
    return 0;
}
