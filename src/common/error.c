#include "error_private.h"

#include <stdio.h>
#include <stdlib.h>
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
    [DDCT_ERR_CANCELLED] = "cancelled",
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

/* Length (1..4) of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (size_t k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))) return 0; /* overlong, surrogate */
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))) return 0; /* overlong, > U+10FFFF */
    return n;
}

int ddct_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

char *ddct_utf8_fix(const char *s)
{
    char *o = strdup(s);
    for (unsigned char *p = (unsigned char *)o; p && *p;) {
        size_t n = utf8_len(p);
        if (!n) *p = '_';
        p += n ? n : 1;
    }
    return o;
}

const char *ddct_escape(const char *s, char *buf, size_t cap)
{
    if (!cap) return buf;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    while (*p) {
        size_t n = utf8_len(p);
        char piece[8];
        size_t k;
        if (n == 1 && *p >= 0x20 && *p != 0x7F && *p != '\\') {
            piece[0] = (char)*p;
            k = 1;
        } else if (n > 1) {
            memcpy(piece, p, n);
            k = n;
        } else {
            snprintf(piece, sizeof piece, "\\x%02x", *p);
            k = 4;
            n = 1;
        }
        if (o + k + 4 > cap) { /* keep room for "..." and the NUL (o + 4 <= cap holds here) */
            if (cap >= 4) memcpy(buf + o, "...", 4);
            else buf[0] = 0;
            return buf;
        }
        memcpy(buf + o, piece, k);
        o += k;
        p += n;
    }
    buf[o] = 0;
    return buf;
}
