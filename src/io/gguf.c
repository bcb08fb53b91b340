/*
 * gguf.c — GGUF reader and streaming writer (see gguf.h).
 *
 * Reader: one pass over the header with a bounds-checked cursor; every count is compared with
 * the bytes left before its array is allocated; keys and tensor names go into one growing arena
 * (offsets until the parse ends, then pointers), with hash sets for uniqueness and look-ups;
 * tensors are then checked for alignment, bounds and overlap (sorted by offset), and the bytes
 * outside header and tensors are scanned for non-zeros. The writer builds the header from a
 * layout, parses it back with the same code (header-only), then streams the data section.
 */
#include "io/gguf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mapfile.h"
#include "common/nameset.h"
#include "common/ofile.h"
#include "io/jscan.h"

#define GG_MAGIC "GGUF"
#define GG_FIXED 24          /* magic, version, tensor_count, kv_count */
#define GG_MIN_KV 13         /* key length, type, one byte of value */
#define GG_MIN_TI 24         /* name length, n_dims, type, offset */
#define GG_ALIGN_KEY "general.alignment"

/* ---------------------------------------------------------------- type tables */

typedef struct {
    const char *name;
    uint32_t block, size;
} type_traits;

/* ggml's type_traits (ggml.c): block size, bytes a block. Withdrawn ids have no name. */
static const type_traits g_types[DDCT_GGML_TYPE_COUNT] = {
    [DDCT_GGML_F32] = {"F32", 1, 4},          [DDCT_GGML_F16] = {"F16", 1, 2},
    [DDCT_GGML_Q4_0] = {"Q4_0", 32, 18},      [DDCT_GGML_Q4_1] = {"Q4_1", 32, 20},
    [DDCT_GGML_Q5_0] = {"Q5_0", 32, 22},      [DDCT_GGML_Q5_1] = {"Q5_1", 32, 24},
    [DDCT_GGML_Q8_0] = {"Q8_0", 32, 34},      [DDCT_GGML_Q8_1] = {"Q8_1", 32, 36},
    [DDCT_GGML_Q2_K] = {"Q2_K", 256, 84},     [DDCT_GGML_Q3_K] = {"Q3_K", 256, 110},
    [DDCT_GGML_Q4_K] = {"Q4_K", 256, 144},    [DDCT_GGML_Q5_K] = {"Q5_K", 256, 176},
    [DDCT_GGML_Q6_K] = {"Q6_K", 256, 210},    [DDCT_GGML_Q8_K] = {"Q8_K", 256, 292},
    [DDCT_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [DDCT_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [DDCT_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [DDCT_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [DDCT_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},  [DDCT_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [DDCT_GGML_IQ2_S] = {"IQ2_S", 256, 82},   [DDCT_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [DDCT_GGML_I8] = {"I8", 1, 1},            [DDCT_GGML_I16] = {"I16", 1, 2},
    [DDCT_GGML_I32] = {"I32", 1, 4},          [DDCT_GGML_I64] = {"I64", 1, 8},
    [DDCT_GGML_F64] = {"F64", 1, 8},          [DDCT_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [DDCT_GGML_BF16] = {"BF16", 1, 2},        [DDCT_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [DDCT_GGML_TQ2_0] = {"TQ2_0", 256, 66},   [DDCT_GGML_MXFP4] = {"MXFP4", 32, 17},
    [DDCT_GGML_NVFP4] = {"NVFP4", 64, 36},    [DDCT_GGML_Q1_0] = {"Q1_0", 128, 18},
    [DDCT_GGML_Q2_0] = {"Q2_0", 64, 18},
};

/* The withdrawn ids, named in messages. */
static const char *withdrawn(uint32_t type)
{
    switch (type) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 36: return "IQ4_NL_4_4";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return NULL;
    }
}

const char *ddct_gguf_type_name(uint32_t type) { return type < DDCT_GGML_TYPE_COUNT ? g_types[type].name : NULL; }

int ddct_gguf_type_info(uint32_t type, uint32_t *block, uint32_t *size)
{
    if (type >= DDCT_GGML_TYPE_COUNT || !g_types[type].name) return -1;
    if (block) *block = g_types[type].block;
    if (size) *size = g_types[type].size;
    return 0;
}

ddct_dtype ddct_gguf_dtype(uint32_t type)
{
    switch (type) {
    case DDCT_GGML_F32: return DDCT_DT_F32;
    case DDCT_GGML_F16: return DDCT_DT_F16;
    case DDCT_GGML_BF16: return DDCT_DT_BF16;
    case DDCT_GGML_F64: return DDCT_DT_F64;
    case DDCT_GGML_I8: return DDCT_DT_I8;
    case DDCT_GGML_I16: return DDCT_DT_I16;
    case DDCT_GGML_I32: return DDCT_DT_I32;
    case DDCT_GGML_I64: return DDCT_DT_I64;
    default: return DDCT_DT_INVALID;
    }
}

static const char *const g_vtypes[DDCT_GGUF_VT_COUNT] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                                          "bool", "string", "array", "u64", "i64", "f64"};
/* bytes of a fixed-size value; 0 for string and array */
static const uint8_t g_vsize[DDCT_GGUF_VT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *ddct_gguf_vtype_name(uint32_t vtype) { return vtype < DDCT_GGUF_VT_COUNT ? g_vtypes[vtype] : "?"; }

/* ---------------------------------------------------------------- reader */

struct ddct_gguf {
    char *path;
    ddct_map map;
    int own_map;          /* 1: ddct_map_close at close */
    const uint8_t *p;     /* the header's (or whole file's) bytes */
    uint64_t avail;       /* bytes at p */
    uint64_t size;        /* the file's length (tensors must end before it) */
    int header_only;      /* a writer's header: no data section at p */
    uint32_t version, alignment;
    uint64_t kv_off, kv_len, kv_total, header_end, data_start;
    ddct_gguf_kv *kv;
    size_t nkv;
    ddct_gguf_tensor *t;
    size_t n;
    char *names;          /* keys and tensor names, NUL-terminated, back to back */
    size_t names_len, names_cap;
    ddct_nameset by_key, by_name;
    int gaps_zero;
    uint64_t first_nonzero;
};

static int gg_fail(const ddct_gguf *f, ddct_err *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int gg_fail(const ddct_gguf *f, ddct_err *e, int code, const char *fmt, ...)
{
    char msg[DDCT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ddct_seterr(e, code, "%s: %s", f->path, msg);
}

#define ULL(x) ((unsigned long long)(x))

/* bounds-checked cursor over f->p[0 .. f->avail) */
typedef struct {
    const ddct_gguf *f;
    uint64_t pos;
} cur;

static uint64_t left(const cur *c) { return c->f->avail - c->pos; }

/* n bytes at the cursor for `what` (a message fragment), or a truncation error */
static int need(const cur *c, uint64_t n, const char *what, ddct_err *e)
{
    if (n <= left(c)) return 0;
    return gg_fail(c->f, e, DDCT_ERR_FORMAT, "%s at byte %llu needs %llu bytes, %llu left (file truncated?)", what,
                   ULL(c->pos), ULL(n), ULL(left(c)));
}

static int get32(cur *c, uint32_t *v, const char *what, ddct_err *e)
{
    FORWARD_IF_ERROR(need(c, 4, what, e));
    *v = ddct_le32(c->f->p + c->pos);
    c->pos += 4;
    return 0;
}

static int get64(cur *c, uint64_t *v, const char *what, ddct_err *e)
{
    FORWARD_IF_ERROR(need(c, 8, what, e));
    *v = ddct_le64(c->f->p + c->pos);
    c->pos += 8;
    return 0;
}

/* A string: its bytes at *s (in f->p), length *len. */
static int get_str(cur *c, const uint8_t **s, uint64_t *len, const char *what, ddct_err *e)
{
    uint64_t at = c->pos;
    FORWARD_IF_ERROR(get64(c, len, what, e));
    if (*len > left(c))
        return gg_fail(c->f, e, DDCT_ERR_FORMAT, "%s at byte %llu: length %llu runs past the end (%llu bytes left)",
                       what, ULL(at), ULL(*len), ULL(left(c)));
    *s = c->f->p + c->pos;
    c->pos += *len;
    return 0;
}

/* Room for one more item of size sz in *p (cap items, growing by half). */
static int grow(void **p, size_t *cap, size_t need_n, size_t sz)
{
    if (need_n <= *cap) return 0;
    size_t c = *cap ? *cap + *cap / 2 : 64;
    if (c < need_n) c = need_n;
    void *q = realloc(*p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Copy a name (key or tensor) into the arena: its offset in *off. Names holding NUL refused. */
static int put_name(ddct_gguf *f, const uint8_t *s, uint64_t len, size_t *off, const char *what, uint64_t at,
                    ddct_err *e)
{
    if (len == 0) return gg_fail(f, e, DDCT_ERR_FORMAT, "%s at byte %llu is empty", what, ULL(at));
    if (memchr(s, 0, (size_t)len))
        return gg_fail(f, e, DDCT_ERR_FORMAT, "%s at byte %llu holds a NUL byte", what, ULL(at));
    if (grow((void **)&f->names, &f->names_cap, f->names_len + (size_t)len + 1, 1))
        return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory for names");
    memcpy(f->names + f->names_len, s, (size_t)len);
    f->names[f->names_len + len] = 0;
    *off = f->names_len;
    f->names_len += (size_t)len + 1;
    return 0;
}

static const char *key_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_gguf *f = ctx;
    const char *s = f->names + (uintptr_t)f->kv[id].key; /* an offset while parsing */
    *len = strlen(s);
    return s;
}

static const char *tensor_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_gguf *f = ctx;
    const char *s = f->names + (uintptr_t)f->t[id].name;
    *len = strlen(s);
    return s;
}

/* Skip a value of type vt at the cursor, checked (arrays nested depth deep so far). */
static int skip_value(cur *c, uint32_t vt, int depth, const char *key, ddct_err *e)
{
    char esc[256];
    const ddct_gguf *f = c->f;
    if (vt >= DDCT_GGUF_VT_COUNT)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s': unknown value type %u at byte %llu",
                       ddct_escape(key, esc, sizeof esc), vt, ULL(c->pos - 4));
    if (g_vsize[vt]) {
        FORWARD_IF_ERROR(need(c, g_vsize[vt], "a value", e));
        c->pos += g_vsize[vt];
        return 0;
    }
    if (vt == DDCT_GGUF_STRING) {
        const uint8_t *s = NULL;
        uint64_t len = 0;
        return get_str(c, &s, &len, "a string value", e);
    }
    if (depth >= DDCT_GGUF_MAX_NEST)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s': arrays nested more than %d deep at byte %llu",
                       ddct_escape(key, esc, sizeof esc), DDCT_GGUF_MAX_NEST, ULL(c->pos));
    uint32_t et;
    uint64_t count, at = c->pos;
    FORWARD_IF_ERROR(get32(c, &et, "an array's element type", e));
    FORWARD_IF_ERROR(get64(c, &count, "an array's length", e));
    if (et >= DDCT_GGUF_VT_COUNT)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s': array of unknown value type %u at byte %llu",
                       ddct_escape(key, esc, sizeof esc), et, ULL(at));
    /* the least an element takes: its fixed size, a string's length, an array's type and length */
    uint64_t unit = g_vsize[et] ? g_vsize[et] : et == DDCT_GGUF_STRING ? 8 : 12;
    if (count > left(c) / unit)
        return gg_fail(f, e, DDCT_ERR_FORMAT,
                       "key '%s': array of %llu %s at byte %llu needs at least %llu bytes each, %llu left",
                       ddct_escape(key, esc, sizeof esc), ULL(count), g_vtypes[et], ULL(at), ULL(unit), ULL(left(c)));
    if (g_vsize[et]) {
        c->pos += count * unit;
        return 0;
    }
    for (uint64_t i = 0; i < count; i++) FORWARD_IF_ERROR(skip_value(c, et, depth + 1, key, e));
    return 0;
}

static int parse_fixed(ddct_gguf *f, cur *c, uint64_t *ntensors, ddct_err *e)
{
    if (f->avail < GG_FIXED)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "file is %llu bytes, too short for a GGUF header (%d bytes)",
                       ULL(f->avail), GG_FIXED);
    if (memcmp(f->p, GG_MAGIC, 4)) {
        char esc[64], m[5];
        memcpy(m, f->p, 4);
        m[4] = 0;
        return gg_fail(f, e, DDCT_ERR_FORMAT, "not a GGUF file (magic \"%s\" at byte 0, \"GGUF\" expected)",
                       ddct_escape(m, esc, sizeof esc));
    }
    uint32_t v = ddct_le32(f->p + 4);
    if (v == 1)
        return gg_fail(f, e, DDCT_ERR_UNSUPPORTED,
                       "GGUF version 1 (32-bit counts, 2023) is not supported: convert it with a current llama.cpp");
    if (v == 0x02000000u || v == 0x03000000u)
        return gg_fail(f, e, DDCT_ERR_UNSUPPORTED, "big-endian GGUF (version %u byte-swapped) is not supported",
                       v >> 24);
    if (v != 2 && v != 3)
        return gg_fail(f, e, DDCT_ERR_UNSUPPORTED, "GGUF version %u at byte 4 is not supported (2 and 3 are)", v);
    f->version = v;
    *ntensors = ddct_le64(f->p + 8);
    f->kv_total = ddct_le64(f->p + 16);
    c->pos = GG_FIXED;
    if (f->kv_total > left(c) / GG_MIN_KV)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "kv_count %llu (at byte 16) is more than the %llu bytes left can hold",
                       ULL(f->kv_total), ULL(left(c)));
    if (*ntensors > left(c) / GG_MIN_TI)
        return gg_fail(f, e, DDCT_ERR_FORMAT,
                       "tensor_count %llu (at byte 8) is more than the %llu bytes left can hold",
                       ULL(*ntensors), ULL(left(c)));
    return 0;
}

static int parse_kvs(ddct_gguf *f, cur *c, ddct_err *e)
{
    f->kv_off = c->pos;
    f->kv = calloc(f->kv_total ? (size_t)f->kv_total : 1, sizeof *f->kv);
    if (!f->kv || ddct_nameset_init(&f->by_key, (size_t)f->kv_total, key_name, f))
        return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory for %llu key/values", ULL(f->kv_total));
    f->alignment = DDCT_GGUF_DEFAULT_ALIGN;
    char esc[256];
    for (uint64_t i = 0; i < f->kv_total; i++) {
        ddct_gguf_kv *kv = &f->kv[i];
        kv->offset = c->pos;
        const uint8_t *s = NULL;
        uint64_t len = 0;
        size_t off;
        FORWARD_IF_ERROR(get_str(c, &s, &len, "a key", e));
        FORWARD_IF_ERROR(put_name(f, s, len, &off, "a key", kv->offset, e));
        kv->key = (const char *)(uintptr_t)off;
        f->nkv = (size_t)i + 1;
        const char *k = f->names + off;
        size_t dup = ddct_nameset_add(&f->by_key, (size_t)i);
        if (dup == DDCT_NAMESET_NOMEM) return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory");
        if (dup != DDCT_NAMESET_NONE)
            return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s' at byte %llu appears twice",
                           ddct_escape(k, esc, sizeof esc), ULL(kv->offset));
        FORWARD_IF_ERROR(get32(c, &kv->type, "a value type", e));
        uint64_t vat = c->pos;
        kv->count = 1;
        if (kv->type == DDCT_GGUF_ARRAY && left(c) >= 12) {
            kv->elem_type = ddct_le32(f->p + c->pos);
            kv->count = ddct_le64(f->p + c->pos + 4);
        }
        if (kv->type == DDCT_GGUF_STRING && left(c) >= 8) kv->count = ddct_le64(f->p + c->pos);
        FORWARD_IF_ERROR(skip_value(c, kv->type, 0, k, e));
        kv->value = (const uint8_t *)(uintptr_t)vat; /* an offset until the parse ends */
        kv->value_len = c->pos - vat;
        if (!strcmp(k, GG_ALIGN_KEY)) {
            uint32_t a = kv->type == DDCT_GGUF_U32 ? ddct_le32(f->p + vat) : 0;
            if (kv->type != DDCT_GGUF_U32)
                return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s' at byte %llu is a %s, not a u32", GG_ALIGN_KEY,
                               ULL(kv->offset), ddct_gguf_vtype_name(kv->type));
            if (a == 0 || (a & (a - 1)))
                return gg_fail(f, e, DDCT_ERR_FORMAT, "key '%s' at byte %llu is %u, not a power of two",
                               GG_ALIGN_KEY, ULL(kv->offset), a);
            f->alignment = a;
        }
    }
    f->kv_len = c->pos - f->kv_off;
    return 0;
}

static int parse_tensor(ddct_gguf *f, cur *c, ddct_gguf_tensor *t, size_t i, ddct_err *e)
{
    char esc[256];
    uint64_t at = c->pos;
    const uint8_t *s = NULL;
    uint64_t len = 0;
    size_t off;
    FORWARD_IF_ERROR(get_str(c, &s, &len, "a tensor name", e));
    FORWARD_IF_ERROR(put_name(f, s, len, &off, "a tensor name", at, e));
    t->name = (const char *)(uintptr_t)off;
    f->n = i + 1;
    const char *nm = ddct_escape(f->names + off, esc, sizeof esc);
    size_t dup = ddct_nameset_add(&f->by_name, i);
    if (dup == DDCT_NAMESET_NOMEM) return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory");
    if (dup != DDCT_NAMESET_NONE)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s' at byte %llu appears twice", nm, ULL(at));
    uint32_t nd;
    FORWARD_IF_ERROR(get32(c, &nd, "a tensor's n_dims", e));
    if (nd > DDCT_GGUF_MAX_DIMS)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s': %u dimensions at byte %llu (at most %d)", nm, nd,
                       ULL(c->pos - 4), DDCT_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nelem = 1;
    for (int d = 0; d < DDCT_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        FORWARD_IF_ERROR(get64(c, &t->ne[d], "a tensor's dimension", e));
        if (t->ne[d] > (uint64_t)INT64_MAX || ddct_mul_overflow(nelem, t->ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
            return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s': element count overflows at ne[%d] = %llu (byte %llu)",
                           nm, d, ULL(t->ne[d]), ULL(c->pos - 8));
    }
    t->nelem = nelem;
    FORWARD_IF_ERROR(get32(c, &t->type, "a tensor's type", e));
    uint32_t block, size;
    if (ddct_gguf_type_info(t->type, &block, &size)) {
        if (withdrawn(t->type))
            return gg_fail(f, e, DDCT_ERR_UNSUPPORTED, "tensor '%s': ggml type %u (%s, withdrawn from ggml) at byte %llu",
                           nm, t->type, withdrawn(t->type), ULL(c->pos - 4));
        return gg_fail(f, e, DDCT_ERR_UNSUPPORTED, "tensor '%s': unknown ggml type %u at byte %llu", nm, t->type,
                       ULL(c->pos - 4));
    }
    if (t->ne[0] % block)
        return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s': ne[0] = %llu is not a multiple of %s's block of %u", nm,
                       ULL(t->ne[0]), g_types[t->type].name, block);
    if (ddct_mul_overflow(nelem / block, size, &t->nbytes))
        return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s': byte count overflows", nm);
    return get64(c, &t->rel_offset, "a tensor's offset", e);
}

static int cmp_off(const void *a, const void *b, void *ctx)
{
    const ddct_gguf *f = ctx;
    const ddct_gguf_tensor *x = &f->t[*(const size_t *)a], *y = &f->t[*(const size_t *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* The tensors in offset order (ties: shorter first), in *order (malloc'ed), or NULL. */
static size_t *offset_order(const ddct_gguf *f)
{
    size_t *o = malloc((f->n ? f->n : 1) * sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < f->n; i++) o[i] = i;
    qsort_r(o, f->n, sizeof *o, cmp_off, (void *)f);
    return o;
}

/* Bytes [a, b) of the file all zero? Else the first other's offset in *first. */
static int zero_range(const ddct_gguf *f, uint64_t a, uint64_t b, uint64_t *first)
{
    for (uint64_t i = a; i < b; i++)
        if (f->p[i]) {
            *first = i;
            return 0;
        }
    return 1;
}

static int check_tensors(ddct_gguf *f, ddct_err *e)
{
    char esc[256];
    for (size_t i = 0; i < f->n; i++) {
        ddct_gguf_tensor *t = &f->t[i];
        const char *nm = ddct_escape(t->name, esc, sizeof esc);
        if (t->rel_offset % f->alignment)
            return gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %u", nm,
                           ULL(t->rel_offset), f->alignment);
        uint64_t end;
        if (ddct_add_overflow(f->data_start, t->rel_offset, &t->offset) ||
            ddct_add_overflow(t->offset, t->nbytes, &end) || end > f->size)
            return gg_fail(f, e, DDCT_ERR_FORMAT,
                           "tensor '%s': %llu bytes at offset %llu (data from byte %llu) run past the end of the file "
                           "(%llu bytes; truncated?)",
                           nm, ULL(t->nbytes), ULL(t->rel_offset), ULL(f->data_start), ULL(f->size));
        t->data = f->header_only ? NULL : f->p + t->offset;
    }
    size_t *o = offset_order(f);
    if (!o) return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory");
    uint64_t pos = f->header_end;
    f->gaps_zero = 1;
    int rc = 0;
    const ddct_gguf_tensor *prev = NULL;
    for (size_t k = 0; k < f->n && !rc; k++) {
        const ddct_gguf_tensor *t = &f->t[o[k]];
        if (t->nbytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->nbytes) {
            char esc2[256];
            rc = gg_fail(f, e, DDCT_ERR_FORMAT, "tensor '%s' (bytes %llu..%llu) overlaps tensor '%s' (from byte %llu)",
                         ddct_escape(t->name, esc, sizeof esc), ULL(t->offset), ULL(t->offset + t->nbytes),
                         ddct_escape(prev->name, esc2, sizeof esc2), ULL(prev->offset));
            break;
        }
        if (!f->header_only && f->gaps_zero && !zero_range(f, pos, t->offset, &f->first_nonzero)) f->gaps_zero = 0;
        pos = t->offset + t->nbytes;
        prev = t;
    }
    if (!rc && !f->header_only && f->gaps_zero && !zero_range(f, pos, f->size, &f->first_nonzero)) f->gaps_zero = 0;
    free(o);
    return rc;
}

/* Parse f->p[0 .. f->avail) (a whole file, or a writer's header when header_only). */
static int parse(ddct_gguf *f, ddct_err *e)
{
    cur c = {f, 0};
    uint64_t nt = 0;
    FORWARD_IF_ERROR(parse_fixed(f, &c, &nt, e));
    FORWARD_IF_ERROR(parse_kvs(f, &c, e));
    if (nt > left(&c) / GG_MIN_TI)
        return gg_fail(f, e, DDCT_ERR_FORMAT,
                       "tensor_count %llu (at byte 8) is more than the %llu bytes after the key/values can hold",
                       ULL(nt), ULL(left(&c)));
    f->t = calloc(nt ? (size_t)nt : 1, sizeof *f->t);
    if (!f->t || ddct_nameset_init(&f->by_name, (size_t)nt, tensor_name, f))
        return gg_fail(f, e, DDCT_ERR_NOMEM, "out of memory for %llu tensors", ULL(nt));
    for (size_t i = 0; i < (size_t)nt; i++) FORWARD_IF_ERROR(parse_tensor(f, &c, &f->t[i], i, e));
    f->header_end = c.pos;
    uint64_t a = f->alignment;
    if (ddct_add_overflow(f->header_end, a - 1, &f->data_start))
        return gg_fail(f, e, DDCT_ERR_FORMAT, "data start overflows");
    f->data_start -= f->data_start % a;
    /* pointers, now that the arrays no longer move */
    for (size_t i = 0; i < f->nkv; i++) {
        f->kv[i].key = f->names + (uintptr_t)f->kv[i].key;
        f->kv[i].value = f->p + (uintptr_t)f->kv[i].value;
    }
    for (size_t i = 0; i < f->n; i++) f->t[i].name = f->names + (uintptr_t)f->t[i].name;
    f->by_key.name = f->by_name.name = NULL; /* see ddct_gguf_find */
    return check_tensors(f, e);
}

static ddct_gguf *new_file(const char *label)
{
    ddct_gguf *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->map.fd = -1;
    f->path = strdup(label);
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

static int finish_open(ddct_gguf **out, ddct_gguf *f, int rc)
{
    if (rc) {
        ddct_gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int ddct_gguf_open(ddct_gguf **out, const char *path, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path, e, DDCT_ERR_PARAM, "no GGUF path given");
    ddct_gguf *f = new_file(path);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    int rc = ddct_map_open(&f->map, path, e);
    if (!rc) {
        f->own_map = 1;
        f->p = f->map.p;
        f->avail = f->size = f->map.size;
        rc = parse(f, e);
    }
    return finish_open(out, f, rc);
}

int ddct_gguf_open_mem(ddct_gguf **out, const char *label, const void *p, size_t size, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!label || (size && !p), e, DDCT_ERR_PARAM, "no GGUF bytes given");
    ddct_gguf *f = new_file(label);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "%s: out of memory", label);
    f->p = f->map.p = p;
    f->avail = f->size = f->map.size = size;
    return finish_open(out, f, parse(f, e));
}

void ddct_gguf_close(ddct_gguf *f)
{
    if (!f) return;
    free(f->kv);
    free(f->t);
    free(f->names);
    ddct_nameset_free(&f->by_key);
    ddct_nameset_free(&f->by_name);
    if (f->own_map) ddct_map_close(&f->map);
    free(f->path);
    free(f);
}

const char *ddct_gguf_path(const ddct_gguf *f) { return f->path; }
uint32_t ddct_gguf_version(const ddct_gguf *f) { return f->version; }
uint64_t ddct_gguf_size(const ddct_gguf *f) { return f->size; }
uint32_t ddct_gguf_alignment(const ddct_gguf *f) { return f->alignment; }
uint64_t ddct_gguf_header_end(const ddct_gguf *f) { return f->header_end; }
uint64_t ddct_gguf_data_start(const ddct_gguf *f) { return f->data_start; }
size_t ddct_gguf_count(const ddct_gguf *f) { return f->n; }
size_t ddct_gguf_kv_count(const ddct_gguf *f) { return f->nkv; }
const ddct_gguf_tensor *ddct_gguf_get(const ddct_gguf *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }
const ddct_gguf_kv *ddct_gguf_kv_get(const ddct_gguf *f, size_t i) { return i < f->nkv ? &f->kv[i] : NULL; }

const uint8_t *ddct_gguf_kv_section(const ddct_gguf *f, uint64_t *offset, uint64_t *len, uint64_t *count)
{
    if (offset) *offset = f->kv_off;
    if (len) *len = f->kv_len;
    if (count) *count = f->nkv;
    return f->p + f->kv_off;
}

int ddct_gguf_gaps_zero(const ddct_gguf *f, uint64_t *first)
{
    if (!f->gaps_zero && first) *first = f->first_nonzero;
    return f->gaps_zero;
}

int ddct_gguf_shape(const ddct_gguf_tensor *t, uint64_t shape[DDCT_GGUF_MAX_DIMS])
{
    for (int d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d];
    return t->n_dims;
}

static const char *opened_key(const void *ctx, size_t id, size_t *len)
{
    const ddct_gguf *f = ctx;
    *len = strlen(f->kv[id].key);
    return f->kv[id].key;
}

static const char *opened_tensor(const void *ctx, size_t id, size_t *len)
{
    const ddct_gguf *f = ctx;
    *len = strlen(f->t[id].name);
    return f->t[id].name;
}

const ddct_gguf_tensor *ddct_gguf_find(const ddct_gguf *f, const char *name)
{
    if (!name || f->n == 0) return NULL;
    ddct_nameset s = f->by_name;
    s.name = opened_tensor;
    size_t i = ddct_nameset_find(&s, name, strlen(name));
    return i == DDCT_NAMESET_NONE ? NULL : &f->t[i];
}

const ddct_gguf_kv *ddct_gguf_kv_find(const ddct_gguf *f, const char *key)
{
    if (!key || f->nkv == 0) return NULL;
    ddct_nameset s = f->by_key;
    s.name = opened_key;
    size_t i = ddct_nameset_find(&s, key, strlen(key));
    return i == DDCT_NAMESET_NONE ? NULL : &f->kv[i];
}

/* A fixed-size integer value at p as u64 (*neg: a negative signed value). */
static uint64_t int_value(uint32_t vt, const uint8_t *p, int *neg)
{
    *neg = 0;
    switch (vt) {
    case DDCT_GGUF_U8: case DDCT_GGUF_BOOL: return p[0];
    case DDCT_GGUF_I8: *neg = (int8_t)p[0] < 0; return (uint64_t)(int64_t)(int8_t)p[0];
    case DDCT_GGUF_U16: return ddct_le16(p);
    case DDCT_GGUF_I16: *neg = (int16_t)ddct_le16(p) < 0; return (uint64_t)(int64_t)(int16_t)ddct_le16(p);
    case DDCT_GGUF_U32: return ddct_le32(p);
    case DDCT_GGUF_I32: *neg = (int32_t)ddct_le32(p) < 0; return (uint64_t)(int64_t)(int32_t)ddct_le32(p);
    case DDCT_GGUF_U64: return ddct_le64(p);
    case DDCT_GGUF_I64: *neg = (int64_t)ddct_le64(p) < 0; return ddct_le64(p);
    default: return 0;
    }
}

static int is_int(uint32_t vt) { return vt < DDCT_GGUF_VT_COUNT && g_vsize[vt] && vt != DDCT_GGUF_F32 && vt != DDCT_GGUF_F64; }

int ddct_gguf_kv_uint(const ddct_gguf *f, const char *key, uint64_t *v)
{
    const ddct_gguf_kv *kv = ddct_gguf_kv_find(f, key);
    int neg;
    if (!kv || !is_int(kv->type)) return -1;
    uint64_t x = int_value(kv->type, kv->value, &neg);
    if (neg) return -1;
    *v = x;
    return 0;
}

const char *ddct_gguf_kv_str(const ddct_gguf *f, const char *key, uint64_t *len)
{
    const ddct_gguf_kv *kv = ddct_gguf_kv_find(f, key);
    if (!kv || kv->type != DDCT_GGUF_STRING) return NULL;
    *len = ddct_le64(kv->value);
    return (const char *)kv->value + 8;
}

/* ---------------------------------------------------------------- metadata as JSON */

static void json_bytes(ddct_buf *b, const uint8_t *s, uint64_t len)
{
    char *tmp = malloc((size_t)len + 1);
    if (!tmp) {
        b->failed = 1;
        return;
    }
    memcpy(tmp, s, (size_t)len);
    tmp[len] = 0;
    /* NUL bytes (possible in values) as '_' too: ddct_utf8_fix stops at the first */
    for (uint64_t i = 0; i < len; i++)
        if (!tmp[i]) tmp[i] = '_';
    char *fixed = ddct_utf8_fix(tmp);
    free(tmp);
    if (!fixed) {
        b->failed = 1;
        return;
    }
    ddct_json_put_string(b, fixed, strlen(fixed));
    free(fixed);
}

static void json_float(ddct_buf *b, double x, int digits)
{
    char t[40];
    if (isnan(x)) snprintf(t, sizeof t, "\"nan\"");
    else if (isinf(x)) snprintf(t, sizeof t, x > 0 ? "\"inf\"" : "\"-inf\"");
    else snprintf(t, sizeof t, "%.*g", digits, x);
    ddct_buf_put(b, t, strlen(t));
}

/* The value of type vt at *pos (already validated by the parse); *pos moves past it. */
static void json_value(ddct_buf *b, const uint8_t *p, uint64_t *pos, uint32_t vt, size_t max_array)
{
    char t[32];
    if (vt >= DDCT_GGUF_VT_COUNT) return; /* not after a parse */
    if (vt == DDCT_GGUF_F32) {
        float x;
        uint32_t u = ddct_le32(p + *pos);
        memcpy(&x, &u, 4);
        json_float(b, x, 9);
    } else if (vt == DDCT_GGUF_F64) {
        double x;
        uint64_t u = ddct_le64(p + *pos);
        memcpy(&x, &u, 8);
        json_float(b, x, 17);
    } else if (vt == DDCT_GGUF_BOOL) {
        const char *s = p[*pos] ? "true" : "false";
        ddct_buf_put(b, s, strlen(s));
    } else if (is_int(vt)) {
        int neg;
        uint64_t x = int_value(vt, p + *pos, &neg);
        if (neg) snprintf(t, sizeof t, "%lld", (long long)(int64_t)x);
        else snprintf(t, sizeof t, "%llu", ULL(x));
        ddct_buf_put(b, t, strlen(t));
    }
    if (g_vsize[vt]) {
        *pos += g_vsize[vt];
        return;
    }
    if (vt == DDCT_GGUF_STRING) {
        uint64_t len = ddct_le64(p + *pos);
        json_bytes(b, p + *pos + 8, len);
        *pos += 8 + len;
        return;
    }
    uint32_t et = ddct_le32(p + *pos);
    uint64_t count = ddct_le64(p + *pos + 4);
    *pos += 12;
    if (count > max_array) {
        char s[160];
        snprintf(s, sizeof s, "{\"type\":\"array\",\"elem_type\":\"%s\",\"count\":%llu}", g_vtypes[et], ULL(count));
        ddct_buf_put(b, s, strlen(s));
        if (g_vsize[et]) {
            *pos += count * g_vsize[et];
            return;
        }
        ddct_buf skip; /* strings and arrays: walked to find the end, rendered nowhere */
        ddct_buf_init(&skip);
        for (uint64_t i = 0; i < count; i++) {
            skip.len = 0;
            json_value(&skip, p, pos, et, 0);
        }
        ddct_buf_free(&skip);
        return;
    }
    ddct_buf_u8(b, '[');
    for (uint64_t i = 0; i < count; i++) {
        if (i) ddct_buf_u8(b, ',');
        json_value(b, p, pos, et, max_array);
    }
    ddct_buf_u8(b, ']');
}

char *ddct_gguf_metadata_json(const ddct_gguf *f, size_t max_array)
{
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_buf_u8(&b, '{');
    for (size_t i = 0; i < f->nkv; i++) {
        const ddct_gguf_kv *kv = &f->kv[i];
        if (i) ddct_buf_u8(&b, ',');
        json_bytes(&b, (const uint8_t *)kv->key, strlen(kv->key));
        ddct_buf_u8(&b, ':');
        uint64_t pos = (uint64_t)(kv->value - f->p);
        json_value(&b, f->p, &pos, kv->type, max_array);
    }
    ddct_buf_u8(&b, '}');
    ddct_buf_u8(&b, 0);
    if (b.failed) {
        ddct_buf_free(&b);
        return NULL;
    }
    return (char *)b.p;
}

/* ---------------------------------------------------------------- tensor bytes */

int ddct_gguf_check(const ddct_gguf *f, ddct_err *e)
{
    uint64_t now;
    if (!f || !f->own_map || !ddct_map_check(&f->map, &now)) return 0;
    RETURN_ERROR(e, DDCT_ERR_IO, "input changed while reading: %s (%llu bytes now, %llu when opened)", f->path,
                 ULL(now), ULL(f->map.size));
}

int ddct_gguf_pread(const ddct_gguf *f, const ddct_gguf_tensor *t, uint64_t off, void *buf, size_t len, ddct_err *e)
{
    if (!f || !t || f->header_only || off > t->nbytes || len > t->nbytes - off) return DDCT_MAP_FALLBACK;
    int r = ddct_map_pread(&f->map, t->offset + off, buf, len);
    if (r != DDCT_MAP_CHANGED) return r;
    int rc = ddct_gguf_check(f, e);
    return rc ? rc : ddct_seterr(e, DDCT_ERR_IO, "input changed while reading: %s", f->path);
}

void ddct_gguf_release(const ddct_gguf *f, const ddct_gguf_tensor *t, uint64_t off, uint64_t len)
{
    if (f && t && f->own_map && off <= t->nbytes)
        ddct_map_dontneed(&f->map, t->offset + off, len < t->nbytes - off ? len : t->nbytes - off);
}

/* ---------------------------------------------------------------- writer */

void ddct_gguf_layout_of(const ddct_gguf *f, ddct_gguf_layout *l)
{
    memset(l, 0, sizeof *l);
    l->version = f->version;
    l->kv = f->p + f->kv_off;
    l->kv_len = f->kv_len;
    l->kv_count = f->nkv;
    l->tensors = f->t;
    l->n = f->n;
    l->size = f->size;
}

struct ddct_gguf_writer {
    ddct_ofile *of;
    char *path;
    uint8_t *hdr;      /* the header bytes the parsed view points into */
    ddct_gguf *h;      /* the header, parsed back */
    size_t *order;     /* tensors in offset order */
    size_t k;          /* order[k] is the tensor being written */
    uint64_t pos;      /* file offset of the next byte */
};

static void put_str(ddct_buf *b, const char *s)
{
    size_t n = strlen(s);
    ddct_buf_u64(b, (uint64_t)n);
    ddct_buf_put(b, s, n);
}

static int build_header(ddct_gguf_writer *w, const ddct_gguf_layout *l, ddct_buf *b, ddct_err *e)
{
    RETURN_ERROR_IF(l->version != 2 && l->version != 3, e, DDCT_ERR_PARAM, "%s: GGUF version %u (2 or 3 written)",
                    w->path, l->version);
    RETURN_ERROR_IF((l->kv_len && !l->kv) || (l->n && !l->tensors), e, DDCT_ERR_PARAM, "%s: no key/values or tensors",
                    w->path);
    ddct_buf_put(b, GG_MAGIC, 4);
    ddct_buf_u32(b, l->version);
    ddct_buf_u64(b, (uint64_t)l->n);
    ddct_buf_u64(b, l->kv_count);
    if (l->kv_len) {
        RETURN_ERROR_IF(l->kv_len > (uint64_t)SIZE_MAX / 2, e, DDCT_ERR_PARAM, "%s: key/values too long", w->path);
        ddct_buf_put(b, l->kv, (size_t)l->kv_len);
    }
    for (size_t i = 0; i < l->n; i++) {
        const ddct_gguf_tensor *t = &l->tensors[i];
        RETURN_ERROR_IF(!t->name || t->n_dims < 0 || t->n_dims > DDCT_GGUF_MAX_DIMS, e, DDCT_ERR_PARAM,
                        "%s: tensor %zu: no name or %d dimensions", w->path, i, t->n_dims);
        put_str(b, t->name);
        ddct_buf_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) ddct_buf_u64(b, t->ne[d]);
        ddct_buf_u32(b, t->type);
        ddct_buf_u64(b, t->rel_offset);
    }
    return ddct_buf_check(b, e);
}

/* Zeros up to file offset `to`. */
static int pad_to(ddct_gguf_writer *w, uint64_t to, ddct_err *e)
{
    static const uint8_t zeros[4096];
    while (w->pos < to) {
        size_t n = to - w->pos < sizeof zeros ? (size_t)(to - w->pos) : sizeof zeros;
        FORWARD_IF_ERROR(ddct_ofile_write(w->of, zeros, n, e));
        w->pos += n;
    }
    return 0;
}

/* Pad up to the next tensor's start; skip finished (and zero-byte) tensors. */
static int advance(ddct_gguf_writer *w, ddct_err *e)
{
    const ddct_gguf *h = w->h;
    while (w->k < h->n) {
        const ddct_gguf_tensor *t = &h->t[w->order[w->k]];
        FORWARD_IF_ERROR(pad_to(w, t->offset, e));
        if (w->pos < t->offset + t->nbytes) break;
        w->k++;
    }
    return 0;
}

static int writer_start(ddct_gguf_writer *w, int overwrite, const char *const *inputs, const ddct_gguf_layout *l,
                        ddct_err *e)
{
    RETURN_ERROR_IF(!w->path, e, DDCT_ERR_NOMEM, "out of memory");
    ddct_buf b;
    ddct_buf_init(&b);
    int rc = build_header(w, l, &b, e);
    if (rc) {
        ddct_buf_free(&b);
        return rc;
    }
    w->hdr = b.p; /* the parsed view points into it */
    uint64_t hlen = b.len;
    ddct_gguf *h = new_file(w->path);
    RETURN_ERROR_IF(!h, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    w->h = h;
    h->p = w->hdr;
    h->avail = hlen;
    h->size = UINT64_MAX; /* checked below, once data_start is known */
    h->header_only = 1;
    FORWARD_IF_ERROR(parse(h, e));
    RETURN_ERROR_IF(h->nkv != l->kv_count || h->kv_len != l->kv_len, e, DDCT_ERR_PARAM,
                    "%s: the key/value bytes hold %zu entries in %llu bytes, not %llu in %llu", w->path, h->nkv,
                    ULL(h->kv_len), ULL(l->kv_count), ULL(l->kv_len));
    RETURN_ERROR_IF(h->header_end != hlen, e, DDCT_ERR_PARAM, "%s: header parses to %llu bytes, not %llu", w->path,
                    ULL(h->header_end), ULL(hlen));
    uint64_t end = h->n ? h->data_start : h->header_end;
    for (size_t i = 0; i < h->n; i++)
        if (h->t[i].offset + h->t[i].nbytes > end) end = h->t[i].offset + h->t[i].nbytes;
    uint64_t size = l->size;
    if (size == 0) {
        RETURN_ERROR_IF(ddct_add_overflow(end, h->alignment - 1, &size), e, DDCT_ERR_PARAM, "%s: size overflows",
                        w->path);
        size -= size % h->alignment;
    }
    RETURN_ERROR_IF(size < end, e, DDCT_ERR_PARAM, "%s: file length %llu is less than the %llu bytes the header needs",
                    w->path, ULL(size), ULL(end));
    h->size = size;
    w->order = offset_order(h);
    RETURN_ERROR_IF(!w->order, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    FORWARD_IF_ERROR(ddct_ofile_open(&w->of, w->path, overwrite, inputs, e));
    FORWARD_IF_ERROR(ddct_ofile_write(w->of, w->hdr, (size_t)hlen, e));
    w->pos = hlen;
    return advance(w, e);
}

int ddct_ggw_open(ddct_gguf_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const ddct_gguf_layout *l, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path || !l, e, DDCT_ERR_PARAM, "GGUF writer: no path or no layout");
    ddct_gguf_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    w->path = strdup(path);
    int rc = writer_start(w, overwrite, inputs, l, e);
    if (rc) {
        ddct_ggw_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

const ddct_gguf *ddct_ggw_header(const ddct_gguf_writer *w) { return w ? w->h : NULL; }

size_t ddct_ggw_next(const ddct_gguf_writer *w) { return w && w->k < w->h->n ? w->order[w->k] : (size_t)-1; }

int ddct_ggw_write(ddct_gguf_writer *w, const void *p, size_t n, ddct_err *e)
{
    RETURN_ERROR_IF(!w, e, DDCT_ERR_PARAM, "GGUF writer: not open");
    const uint8_t *q = p;
    while (n > 0) {
        RETURN_ERROR_IF(w->k >= w->h->n, e, DDCT_ERR_PARAM, "%s: %zu bytes more than the tensors hold", w->path, n);
        const ddct_gguf_tensor *t = &w->h->t[w->order[w->k]];
        uint64_t room = t->offset + t->nbytes - w->pos;
        size_t m = n < room ? n : (size_t)room;
        FORWARD_IF_ERROR(ddct_ofile_write(w->of, q, m, e));
        w->pos += m;
        q += m;
        n -= m;
        FORWARD_IF_ERROR(advance(w, e));
    }
    return 0;
}

int ddct_ggw_commit(ddct_gguf_writer *w, ddct_err *e)
{
    RETURN_ERROR_IF(!w, e, DDCT_ERR_PARAM, "GGUF writer: not open");
    int rc = 0;
    if (w->k < w->h->n) {
        char esc[256];
        const ddct_gguf_tensor *t = &w->h->t[w->order[w->k]];
        rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s' incomplete (%llu of %llu bytes written)", w->path,
                         ddct_escape(t->name, esc, sizeof esc), ULL(w->pos - t->offset), ULL(t->nbytes));
    }
    if (!rc) rc = pad_to(w, w->h->size, e);
    if (!rc) {
        rc = ddct_ofile_commit(w->of, e);
        w->of = NULL; /* freed, success or not */
    }
    ddct_ggw_abort(w);
    return rc;
}

void ddct_ggw_abort(ddct_gguf_writer *w)
{
    if (!w) return;
    ddct_ofile_abort(w->of);
    ddct_gguf_close(w->h);
    free(w->hdr);
    free(w->order);
    free(w->path);
    free(w);
}
