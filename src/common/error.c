#include "error_private.h"

#include <stdio.h>
#include <string.h>

static const char *const ddct_error_names[DDCT_ERR_COUNT] = {
    [DDCT_OK] = "no error",
    [DDCT_ERR_IO] = "I/O error",
    [DDCT_ERR_NOMEM] = "out of memory",
    [DDCT_ERR_FORMAT] = "malformed input",
    [DDCT_ERR_CHECKSUM] = "checksum mismatch",
    [DDCT_ERR_VERSION] = "unsupported format version",
    [DDCT_ERR_BASE_MISMATCH] = "wrong base model",
    [DDCT_ERR_PARAM] = "invalid parameter",
    [DDCT_ERR_EXISTS] = "output exists",
    [DDCT_ERR_UNSUPPORTED] = "unsupported",
    [DDCT_ERR_INTERNAL] = "internal error",
};

const char *ddct_getErrorName(ddct_ErrorCode code)
{
    if ((int)code < 0 || code >= DDCT_ERR_COUNT) return "unknown error";
    return ddct_error_names[code];
}

unsigned ddct_versionNumber(void)
{
    return DDCT_VERSION_MAJOR * 10000u + DDCT_VERSION_MINOR * 100u + DDCT_VERSION_PATCH;
}

const char *ddct_versionString(void) { return DDCT_VERSION_STRING; }

int ddct_seterr(ddct_err *e, int code, const char *fmt, ...)
{
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int ddct_err_prefix(ddct_err *e, const char *fmt, ...)
{
    if (!e) return DDCT_ERR_INTERNAL;
    char pre[DDCT_ERRMSG_MAX], old[DDCT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(pre);
    if (n >= sizeof e->msg) n = sizeof e->msg - 1;
    memcpy(e->msg, pre, n);
    size_t m = strlen(old);
    if (m > sizeof e->msg - 1 - n) m = sizeof e->msg - 1 - n;
    memcpy(e->msg + n, old, m);
    e->msg[n + m] = 0;
    return e->code;
}

void ddct_err_clear(ddct_err *e)
{
    if (!e) return;
    e->code = 0;
    e->msg[0] = 0;
}
