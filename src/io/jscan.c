/*
 * jscan.c — JSON scanner without a document tree (see jscan.h).
 */
#include "io/jscan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nameset.h"

#define JSCAN_MAX_DEPTH 2048

void ddct_jscan_init(ddct_jscan *j, const void *text, size_t n)
{
    memset(j, 0, sizeof *j);
    j->p = text;
    j->n = n;
}

void ddct_jscan_free(ddct_jscan *j)
{
    free(j->s);
    j->s = NULL;
    j->scap = j->slen = 0;
}

int ddct_jscan_fail(ddct_jscan *j, const char *why)
{
    if (!j->why) {
        j->why = why;
        j->at = j->pos;
    }
    return -1;
}

void ddct_jscan_ws(ddct_jscan *j)
{
    while (j->pos < j->n) {
        unsigned char c = j->p[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

int ddct_jscan_next(ddct_jscan *j, unsigned char close)
{
    ddct_jscan_ws(j);
    if (j->pos >= j->n) return ddct_jscan_fail(j, "premature end of input");
    unsigned char c = j->p[j->pos];
    if (c != close && c != ',') return ddct_jscan_fail(j, "',' expected");
    j->pos++;
    return c == close;
}

int ddct_jscan_expect(ddct_jscan *j, unsigned char c)
{
    ddct_jscan_ws(j);
    if (j->pos >= j->n) return ddct_jscan_fail(j, "premature end of input");
    if (j->p[j->pos] != c) return ddct_jscan_fail(j, c == ':' ? "':' expected" : "unexpected character");
    j->pos++;
    return 0;
}

static int sput(ddct_jscan *j, const void *p, size_t k)
{
    if (j->slen + k + 1 > j->scap) {
        size_t cap = j->scap ? j->scap : 64;
        while (cap < j->slen + k + 1) cap *= 2;
        char *s = realloc(j->s, cap);
        if (!s) return ddct_jscan_fail(j, "out of memory");
        j->s = s;
        j->scap = cap;
    }
    memcpy(j->s + j->slen, p, k);
    j->slen += k;
    return 0;
}

/* Length (1..4) of the valid UTF-8 sequence at p (m bytes left), or 0. */
static size_t utf8_at(const unsigned char *p, size_t m)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n > m) return 0;
    for (size_t k = 1; k < n; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))) return 0;
    if (n == 4 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))) return 0;
    return n;
}

static int hex4(const unsigned char *p, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        x = x * 16 + d;
    }
    *v = x;
    return 0;
}

static size_t utf8_put(unsigned cp, char *o)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int ddct_jscan_string(ddct_jscan *j, int keep)
{
    j->slen = 0;
    j->pos++; /* the opening quote */
    for (;;) {
        if (j->pos >= j->n) return ddct_jscan_fail(j, "premature end of input in a string");
        const unsigned char *q = j->p + j->pos;
        size_t left = j->n - j->pos;
        if (q[0] == '"') {
            j->pos++;
            break;
        }
        if (q[0] < 0x20) return ddct_jscan_fail(j, "control character in a string");
        if (q[0] != '\\') {
            /* a run of plain ASCII, or one UTF-8 character */
            size_t k = 0;
            while (k < left && q[k] >= 0x20 && q[k] < 0x80 && q[k] != '"' && q[k] != '\\') k++;
            if (!k && !(k = utf8_at(q, left))) return ddct_jscan_fail(j, "invalid UTF-8 in a string");
            if (keep && sput(j, q, k)) return -1;
            j->pos += k;
            continue;
        }
        if (left < 2) return ddct_jscan_fail(j, "premature end of input in a string");
        char o[4];
        size_t k = 1, adv = 2;
        switch (q[1]) {
        case '"': o[0] = '"'; break;
        case '\\': o[0] = '\\'; break;
        case '/': o[0] = '/'; break;
        case 'b': o[0] = '\b'; break;
        case 'f': o[0] = '\f'; break;
        case 'n': o[0] = '\n'; break;
        case 'r': o[0] = '\r'; break;
        case 't': o[0] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (left < 6 || hex4(q + 2, &cp)) return ddct_jscan_fail(j, "invalid \\u escape");
            adv = 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return ddct_jscan_fail(j, "invalid Unicode (lone low surrogate)");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (left < 12 || q[6] != '\\' || q[7] != 'u' || hex4(q + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return ddct_jscan_fail(j, "invalid Unicode (lone high surrogate)");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                adv = 12;
            }
            if (cp == 0) return ddct_jscan_fail(j, "\\u0000 is not allowed");
            k = utf8_put(cp, o);
            break;
        }
        default:
            return ddct_jscan_fail(j, "invalid escape");
        }
        if (keep && sput(j, o, k)) return -1;
        j->pos += adv;
    }
    if (keep) {
        if (sput(j, "", 1)) return -1;
        j->slen--;
    }
    return 0;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int number(ddct_jscan *j, ddct_jscalar *sc)
{
    size_t a = j->pos, i = a;
    const unsigned char *p = j->p;
    int real = 0;
    if (i < j->n && p[i] == '-') i++;
    if (i >= j->n || !is_digit(p[i])) return ddct_jscan_fail(j, "invalid number");
    if (p[i] == '0') {
        i++;
        if (i < j->n && is_digit(p[i])) return ddct_jscan_fail(j, "invalid number (leading zero)");
    } else {
        while (i < j->n && is_digit(p[i])) i++;
    }
    if (i < j->n && p[i] == '.') {
        real = 1;
        i++;
        if (i >= j->n || !is_digit(p[i])) return ddct_jscan_fail(j, "invalid number");
        while (i < j->n && is_digit(p[i])) i++;
    }
    if (i < j->n && (p[i] == 'e' || p[i] == 'E')) {
        real = 1;
        i++;
        if (i < j->n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= j->n || !is_digit(p[i])) return ddct_jscan_fail(j, "invalid number");
        while (i < j->n && is_digit(p[i])) i++;
    }
    /* a copy, NUL-terminated, for strtoll / strtod */
    char small[64], *t = small;
    size_t len = i - a;
    if (len >= sizeof small && !(t = malloc(len + 1))) return ddct_jscan_fail(j, "out of memory");
    memcpy(t, p + a, len);
    t[len] = 0;
    int bad = 0;
    errno = 0;
    if (real) {
        double v = strtod(t, NULL);
        bad = errno == ERANGE && isinf(v);
        if (sc) *sc = (ddct_jscalar){DDCT_JT_REAL, 0};
    } else {
        long long v = strtoll(t, NULL, 10);
        bad = errno == ERANGE;
        if (sc) *sc = (ddct_jscalar){DDCT_JT_INT, (int64_t)v};
    }
    if (t != small) free(t);
    if (bad) return ddct_jscan_fail(j, real ? "real number overflow" : "too big integer");
    j->pos = i;
    return 0;
}

static int literal(ddct_jscan *j, const char *w, int type, ddct_jscalar *sc)
{
    size_t k = strlen(w);
    if (j->n - j->pos < k || memcmp(j->p + j->pos, w, k)) return ddct_jscan_fail(j, "invalid token");
    j->pos += k;
    if (sc) *sc = (ddct_jscalar){type, 0};
    return 0;
}

int ddct_jscan_value(ddct_jscan *j, ddct_jsum *sum, ddct_jscalar *sc)
{
    ddct_jscalar dummy;
    if (!sc) sc = sum ? &sum->v : &dummy;
    if (sum) {
        sum->count = 0;
        sum->slen = 0;
        sum->str[0] = 0;
    }
    ddct_jscan_ws(j);
    if (j->pos >= j->n) return ddct_jscan_fail(j, "premature end of input");
    unsigned char c = j->p[j->pos];
    if (c == '"') {
        if (ddct_jscan_string(j, sum != NULL)) return -1;
        *sc = (ddct_jscalar){DDCT_JT_STR, 0};
        if (sum) {
            size_t k = j->slen < DDCT_JSUM_STR - 1 ? j->slen : DDCT_JSUM_STR - 1;
            memcpy(sum->str, j->s, k);
            sum->str[k] = 0;
            sum->slen = j->slen;
        }
        return 0;
    }
    if (c == '{' || c == '[') {
        if (++j->depth > JSCAN_MAX_DEPTH) return ddct_jscan_fail(j, "maximum parsing depth reached");
        unsigned char close = c == '{' ? '}' : ']';
        size_t count = 0;
        j->pos++;
        ddct_jscan_ws(j);
        if (j->pos < j->n && j->p[j->pos] == close) {
            j->pos++;
        } else {
            for (;;) {
                if (c == '{') {
                    ddct_jscan_ws(j);
                    if (j->pos >= j->n || j->p[j->pos] != '"') return ddct_jscan_fail(j, "string expected as a key");
                    if (ddct_jscan_string(j, 0) || ddct_jscan_expect(j, ':') || ddct_jscan_value(j, NULL, NULL))
                        return -1;
                } else if (ddct_jscan_value(j, NULL, sum && count < DDCT_JSUM_KEEP ? &sum->el[count] : NULL)) {
                    return -1;
                }
                count++;
                int end = ddct_jscan_next(j, close);
                if (end < 0) return -1;
                if (end) break;
            }
        }
        j->depth--;
        *sc = (ddct_jscalar){c == '{' ? DDCT_JT_OBJ : DDCT_JT_ARR, 0};
        if (sum) sum->count = count;
        return 0;
    }
    if (c == 't') return literal(j, "true", DDCT_JT_TRUE, sc);
    if (c == 'f') return literal(j, "false", DDCT_JT_FALSE, sc);
    if (c == 'n') return literal(j, "null", DDCT_JT_NULL, sc);
    if (c == '-' || is_digit(c)) return number(j, sc);
    return ddct_jscan_fail(j, "invalid token");
}

void ddct_json_put_string(ddct_buf *b, const char *s, size_t n)
{
    ddct_buf_u8(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ddct_buf_put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        const char *t = esc;
        switch (c) {
        case '"': t = "\\\""; break;
        case '\\': t = "\\\\"; break;
        case '\b': t = "\\b"; break;
        case '\f': t = "\\f"; break;
        case '\n': t = "\\n"; break;
        case '\r': t = "\\r"; break;
        case '\t': t = "\\t"; break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc[6] = 0;
        }
        }
        ddct_buf_put(b, t, strlen(t));
    }
    ddct_buf_put(b, s + run, n - run);
    ddct_buf_u8(b, '"');
}

/* Keys of an object being checked: decoded, back to back in a buffer. */
typedef struct {
    ddct_buf text;
    size_t *off; /* key k: text.p + off[k], length off[k + 1] - off[k] - 1 (NUL) */
    size_t n, cap;
} keylist;

static const char *key_name(const void *ctx, size_t id, size_t *len)
{
    const keylist *k = ctx;
    *len = k->off[id + 1] - k->off[id] - 1;
    return (const char *)k->text.p + k->off[id];
}

int ddct_json_string_object(const char *text, size_t n, char **compact, const char **why, size_t *at)
{
    *compact = NULL;
    *why = NULL;
    *at = 0;
    ddct_jscan j;
    ddct_jscan_init(&j, text, n);
    ddct_buf out;
    ddct_buf_init(&out);
    keylist kl = {.off = malloc(16 * sizeof(size_t)), .cap = 16};
    ddct_buf_init(&kl.text);
    ddct_nameset set;
    int rc = kl.off && !ddct_nameset_init(&set, 8, key_name, &kl) ? 0 : -1;
    if (rc) {
        free(kl.off);
        return -1;
    }
    kl.off[0] = 0;
    int strings = 1; /* an object of strings so far */
    ddct_jscan_ws(&j);
    if (j.pos < j.n && j.p[j.pos] != '{') {
        strings = 0;
        if (!ddct_jscan_value(&j, NULL, NULL)) {
            ddct_jscan_ws(&j);
            if (j.pos != j.n) ddct_jscan_fail(&j, "end of input expected");
        }
        rc = j.why ? 2 : 1;
        goto done;
    }
    if (ddct_jscan_expect(&j, '{')) {
        rc = 2;
        goto done;
    }
    ddct_buf_u8(&out, '{');
    ddct_jscan_ws(&j);
    if (j.pos < j.n && j.p[j.pos] == '}') {
        j.pos++;
    } else {
        for (size_t k = 0;; k++) {
            ddct_jscan_ws(&j);
            if (j.pos >= j.n || j.p[j.pos] != '"') {
                ddct_jscan_fail(&j, "string expected as a key");
                break;
            }
            size_t kat = j.pos;
            if (ddct_jscan_string(&j, 1)) break;
            if (k + 2 > kl.cap) {
                size_t *o = realloc(kl.off, 2 * kl.cap * sizeof *o);
                if (!o) {
                    rc = -1;
                    break;
                }
                kl.off = o;
                kl.cap *= 2;
            }
            ddct_buf_put(&kl.text, j.s, j.slen + 1);
            if (kl.text.failed) {
                rc = -1;
                break;
            }
            kl.off[k + 1] = kl.text.len;
            kl.n = k + 1;
            size_t dup = ddct_nameset_add(&set, k);
            if (dup == DDCT_NAMESET_NOMEM) {
                rc = -1;
                break;
            }
            if (dup != DDCT_NAMESET_NONE) {
                j.pos = kat;
                ddct_jscan_fail(&j, "duplicate object key");
                break;
            }
            if (k) ddct_buf_u8(&out, ',');
            ddct_json_put_string(&out, j.s, j.slen);
            ddct_buf_u8(&out, ':');
            if (ddct_jscan_expect(&j, ':')) break;
            ddct_jscan_ws(&j);
            if (j.pos < j.n && j.p[j.pos] == '"') {
                if (ddct_jscan_string(&j, 1)) break;
                ddct_json_put_string(&out, j.s, j.slen);
            } else {
                strings = 0;
                if (ddct_jscan_value(&j, NULL, NULL)) break;
            }
            if (ddct_jscan_next(&j, '}')) break;
        }
    }
    if (!rc && !j.why) {
        ddct_jscan_ws(&j);
        if (j.pos != j.n) ddct_jscan_fail(&j, "end of input expected");
    }
    if (!rc) rc = j.why ? (strcmp(j.why, "out of memory") ? 2 : -1) : !strings ? 1 : 0;
    ddct_buf_u8(&out, '}');
    ddct_buf_u8(&out, 0);
    if (!rc && out.failed) rc = -1;
done:
    if (rc == 2) {
        *why = j.why;
        *at = j.at;
    }
    if (!rc) {
        *compact = (char *)out.p;
        out.p = NULL;
    }
    ddct_buf_free(&out);
    ddct_buf_free(&kl.text);
    free(kl.off);
    ddct_nameset_free(&set);
    ddct_jscan_free(&j);
    return rc;
}
