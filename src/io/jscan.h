/*
 * jscan.h — a JSON scanner for untrusted headers that never builds a document tree, so memory
 * stays at what the caller keeps (jansson's tree of a 100 MB safetensors header took 1.9 GB).
 *
 * It accepts what jansson's json_loadb accepts with JSON_REJECT_DUPLICATES for the values the
 * callers read (RFC 8259; strings valid UTF-8 without NUL, "\u0000" included; integers within
 * int64; reals that do not overflow; nesting at most 2048 deep), except that duplicate keys are
 * found by the callers in the objects they read (safetensors header, entries, __metadata__), not
 * inside values they skip. Errors: a short reason and the byte offset in the text.
 */
#ifndef DDCT_JSCAN_H
#define DDCT_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum { DDCT_JT_NONE = 0, DDCT_JT_STR, DDCT_JT_INT, DDCT_JT_REAL, DDCT_JT_ARR, DDCT_JT_OBJ, DDCT_JT_TRUE,
       DDCT_JT_FALSE, DDCT_JT_NULL };

typedef struct {
    int type;   /* DDCT_JT_* */
    int64_t iv; /* DDCT_JT_INT: the value */
} ddct_jscalar;

/* What a value was, for the callers' checks: its type; an array's length and its first
 * DDCT_JSUM_KEEP elements; the start of a string (up to DDCT_JSUM_STR - 1 bytes, NUL-terminated;
 * slen: its whole length). */
#define DDCT_JSUM_KEEP 9
#define DDCT_JSUM_STR 64
typedef struct {
    ddct_jscalar v;
    size_t count;
    ddct_jscalar el[DDCT_JSUM_KEEP];
    char str[DDCT_JSUM_STR];
    size_t slen;
} ddct_jsum;

typedef struct {
    const unsigned char *p;
    size_t n, pos;
    const char *why; /* the first error, or NULL */
    size_t at;       /* its offset */
    char *s;         /* the last string read with keep (NUL-terminated; slen bytes) */
    size_t slen, scap;
    int depth;
} ddct_jscan;

void ddct_jscan_init(ddct_jscan *j, const void *text, size_t n);
void ddct_jscan_free(ddct_jscan *j);
/* Record an error at the current position (the first one stays); returns -1. */
int ddct_jscan_fail(ddct_jscan *j, const char *why);
void ddct_jscan_ws(ddct_jscan *j);
/* At '"': read a string, decoded into j->s when keep. 0 or -1. */
int ddct_jscan_string(ddct_jscan *j, int keep);
/* Read any value (sum, sc: may be NULL). 0 or -1. */
int ddct_jscan_value(ddct_jscan *j, ddct_jsum *sum, ddct_jscalar *sc);
/* Expect byte c (after white space). 0 or -1. */
int ddct_jscan_expect(ddct_jscan *j, unsigned char c);
/* After a member or element: `close` ends the object or array (1), ',' goes on to the next (0),
 * anything else fails (-1, j->why set). */
int ddct_jscan_next(ddct_jscan *j, unsigned char close);

/* s[0..n) as a JSON string literal, escaped as jansson's json_dumps does (", \, \b \f \n \r \t,
 * other control characters as \u00XX; UTF-8 kept). */
void ddct_json_put_string(ddct_buf *b, const char *s, size_t n);

/* A JSON object of string values in text[0..n) (white space around allowed), checked: distinct
 * keys, valid JSON. *compact: its compact form as jansson prints it with JSON_COMPACT |
 * JSON_PRESERVE_ORDER (malloc, NUL-terminated). Returns 0; 1 when text is valid JSON but not an
 * object of string values; 2 when it is not valid JSON or has a duplicate key (why, at: the
 * reason and offset); -1 when out of memory. */
int ddct_json_string_object(const char *text, size_t n, char **compact, const char **why, size_t *at);

#endif
