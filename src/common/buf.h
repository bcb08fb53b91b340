/*
 * buf.h — growable output buffer and bounds-checked little-endian reader.
 *
 * ddct_buf: append-only bytes; on allocation failure it latches `failed` and later
 * appends become no-ops, so callers check once (ddct_buf_check) at the end.
 * ddct_rd: every get checks the remaining length first; on underflow it latches
 * `failed` and returns zeros. Sizes read from files go through ddct_rd_len(),
 * which also checks them against what is left.
 */
#ifndef DDCT_BUF_H
#define DDCT_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "error_private.h"

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int failed;
} ddct_buf;

void ddct_buf_init(ddct_buf *b);
void ddct_buf_free(ddct_buf *b);
int ddct_buf_reserve(ddct_buf *b, size_t extra); /* 0 ok, else latches failed */
void ddct_buf_put(ddct_buf *b, const void *src, size_t n);
void ddct_buf_u8(ddct_buf *b, uint8_t v);
void ddct_buf_u16(ddct_buf *b, uint16_t v);
void ddct_buf_u32(ddct_buf *b, uint32_t v);
void ddct_buf_u64(ddct_buf *b, uint64_t v);
void ddct_buf_f32(ddct_buf *b, float v);
void ddct_buf_f64(ddct_buf *b, double v);
void ddct_buf_varint(ddct_buf *b, uint64_t v);          /* LEB128 */
void ddct_buf_str(ddct_buf *b, const char *s, size_t n); /* varint length + bytes */
/* Returns DDCT_ERR_NOMEM (with message) if any append failed. */
int ddct_buf_check(const ddct_buf *b, ddct_err *e);

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int failed;
} ddct_rd;

void ddct_rd_init(ddct_rd *r, const void *p, size_t len);
uint8_t ddct_rd_u8(ddct_rd *r);
uint16_t ddct_rd_u16(ddct_rd *r);
uint32_t ddct_rd_u32(ddct_rd *r);
uint64_t ddct_rd_u64(ddct_rd *r);
float ddct_rd_f32(ddct_rd *r);
double ddct_rd_f64(ddct_rd *r);
uint64_t ddct_rd_varint(ddct_rd *r);
/* Pointer to the next n bytes (NULL and failed if fewer remain). */
const uint8_t *ddct_rd_bytes(ddct_rd *r, size_t n);
/* A length field: varint, then checked to be <= remaining bytes / unit. */
uint64_t ddct_rd_len(ddct_rd *r, size_t unit);
/* String: varint length + bytes; returns pointer (not NUL-terminated) and length. */
const char *ddct_rd_str(ddct_rd *r, size_t *n);
size_t ddct_rd_left(const ddct_rd *r);

/* little-endian helpers on raw memory */
static inline uint16_t ddct_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ddct_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ddct_le64(const uint8_t *p) { return ddct_le32(p) | ((uint64_t)ddct_le32(p + 4) << 32); }
static inline void ddct_st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void ddct_st64(uint8_t *p, uint64_t v) { ddct_st32(p, (uint32_t)v); ddct_st32(p + 4, (uint32_t)(v >> 32)); }

/* overflow-checked arithmetic: return 1 on overflow */
static inline int ddct_mul_overflow(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline int ddct_add_overflow(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_add_overflow(a, b, r); }

#endif
