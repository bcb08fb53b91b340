/*
 * error_private.h — internal error handling (after zstd's lib/common/error_private.h).
 *
 * Every internal function that can fail returns an int status (0 = DDCT_OK, else a
 * ddct_ErrorCode) and, on failure, fills a ddct_err with a message naming the file,
 * tensor and offset where known. Nothing here prints or aborts.
 */
#ifndef DDCT_ERROR_PRIVATE_H
#define DDCT_ERROR_PRIVATE_H

#include <stdarg.h>
#include "deltadct.h"

#define DDCT_ERRMSG_MAX 1024

typedef struct ddct_err {
    int code;
    char msg[DDCT_ERRMSG_MAX];
} ddct_err;

/* Set code and message (printf format). Returns code. e may be NULL. */
int ddct_seterr(ddct_err *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefix the current message with context, e.g. "tensor 'x': ". Returns e->code. */
int ddct_err_prefix(ddct_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void ddct_err_clear(ddct_err *e);

/* 1 if s is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
int ddct_utf8_valid(const char *s);
/* s for a message: control bytes, DEL, backslash and bytes that are not part of valid UTF-8 as
 * \xNN (valid multi-byte characters kept), into buf of cap bytes (cut short with "..." when it
 * does not fit). Returns buf. */
const char *ddct_escape(const char *s, char *buf, size_t cap);
/* A copy of s (malloc; NULL when out of memory) with each byte that is not part of valid UTF-8
 * replaced by '_'. */
char *ddct_utf8_fix(const char *s);
/* A buffer size for ddct_escape of a file name (NAME_MAX bytes, each escaped). */
#define DDCT_ESC_NAME (4 * 255 + 8)

#define RETURN_ERROR_IF(cond, e, code, ...)                                                   \
    do {                                                                                      \
        if (cond) return ddct_seterr((e), (code), __VA_ARGS__);                               \
    } while (0)
#define RETURN_ERROR(e, code, ...) return ddct_seterr((e), (code), __VA_ARGS__)
#define FORWARD_IF_ERROR(expr)                                                                \
    do {                                                                                      \
        int ddct_fwd_rc_ = (expr);                                                            \
        if (ddct_fwd_rc_) return ddct_fwd_rc_;                                                \
    } while (0)

#endif
