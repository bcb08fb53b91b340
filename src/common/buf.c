#include "buf.h"

#include <stdlib.h>
#include <string.h>

void ddct_buf_init(ddct_buf *b) { memset(b, 0, sizeof *b); }

void ddct_buf_free(ddct_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int ddct_buf_reserve(ddct_buf *b, size_t extra)
{
    if (b->failed) return -1;
    if (extra <= b->cap - b->len) return 0;
    size_t need = b->len + extra;
    if (need < b->len) { b->failed = 1; return -1; }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) { b->failed = 1; return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

void ddct_buf_put(ddct_buf *b, const void *src, size_t n)
{
    if (n == 0 || ddct_buf_reserve(b, n)) return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void ddct_buf_u8(ddct_buf *b, uint8_t v) { ddct_buf_put(b, &v, 1); }
void ddct_buf_u16(ddct_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    ddct_buf_put(b, t, 2);
}
void ddct_buf_u32(ddct_buf *b, uint32_t v)
{
    uint8_t t[4];
    ddct_st32(t, v);
    ddct_buf_put(b, t, 4);
}
void ddct_buf_u64(ddct_buf *b, uint64_t v)
{
    uint8_t t[8];
    ddct_st64(t, v);
    ddct_buf_put(b, t, 8);
}
void ddct_buf_f32(ddct_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    ddct_buf_u32(b, u);
}
void ddct_buf_f64(ddct_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    ddct_buf_u64(b, u);
}
void ddct_buf_varint(ddct_buf *b, uint64_t v)
{
    uint8_t t[10];
    int n = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        t[n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
    ddct_buf_put(b, t, (size_t)n);
}
void ddct_buf_str(ddct_buf *b, const char *s, size_t n)
{
    ddct_buf_varint(b, n);
    ddct_buf_put(b, s, n);
}

int ddct_buf_check(const ddct_buf *b, ddct_err *e)
{
    RETURN_ERROR_IF(b->failed, e, DDCT_ERR_NOMEM, "out of memory growing a buffer of %zu bytes", b->len);
    return 0;
}

void ddct_rd_init(ddct_rd *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->failed = 0;
}

size_t ddct_rd_left(const ddct_rd *r) { return r->failed ? 0 : r->len - r->pos; }

const uint8_t *ddct_rd_bytes(ddct_rd *r, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t ddct_rd_u8(ddct_rd *r)
{
    const uint8_t *p = ddct_rd_bytes(r, 1);
    return p ? p[0] : 0;
}
uint16_t ddct_rd_u16(ddct_rd *r)
{
    const uint8_t *p = ddct_rd_bytes(r, 2);
    return p ? ddct_le16(p) : 0;
}
uint32_t ddct_rd_u32(ddct_rd *r)
{
    const uint8_t *p = ddct_rd_bytes(r, 4);
    return p ? ddct_le32(p) : 0;
}
uint64_t ddct_rd_u64(ddct_rd *r)
{
    const uint8_t *p = ddct_rd_bytes(r, 8);
    return p ? ddct_le64(p) : 0;
}
float ddct_rd_f32(ddct_rd *r)
{
    uint32_t u = ddct_rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
double ddct_rd_f64(ddct_rd *r)
{
    uint64_t u = ddct_rd_u64(r);
    double f;
    memcpy(&f, &u, 8);
    return f;
}
uint64_t ddct_rd_varint(ddct_rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = ddct_rd_bytes(r, 1);
        if (!p) return 0;
        if (shift == 63 && (*p & 0x7e)) break; /* would overflow 64 bits */
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80)) return v;
    }
    r->failed = 1;
    return 0;
}
uint64_t ddct_rd_len(ddct_rd *r, size_t unit)
{
    uint64_t n = ddct_rd_varint(r);
    if (r->failed) return 0;
    if (unit == 0) unit = 1;
    if (n > ddct_rd_left(r) / unit) {
        r->failed = 1;
        return 0;
    }
    return n;
}
const char *ddct_rd_str(ddct_rd *r, size_t *n)
{
    uint64_t len = ddct_rd_len(r, 1);
    const uint8_t *p = ddct_rd_bytes(r, (size_t)len);
    *n = p ? (size_t)len : 0;
    return (const char *)p;
}
