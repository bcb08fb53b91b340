/*
 * test_gguf.c — GGUF reader and writer: a file built here byte by byte (every KV type, nested
 * arrays, F32/F16/BF16/Q8_0/Q4_K tensors, a gap, header order differing from offset order) read
 * back field by field, rebuilt through the writer byte-identical (from a file and from memory),
 * hostile headers (lying counts and lengths, offsets past the end, misaligned and overlapping
 * tensors, n_dims, ne overflow, unknown / withdrawn types, duplicates, versions), truncation at
 * every byte, random corruption, writer misuse, and the real fixtures' *.gguf when present.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/mapfile.h"
#include "io/gguf.h"
#include "testutil.h"

static char g_dir[512];

static const char *tpath(const char *name) { return tu_path(g_dir, name); }

static void write_bytes(const char *path, const void *p, size_t n)
{
    CHECK(tu_write(path, p, n) == 0, "cannot write %s", path);
}

/* ---------------------------------------------------------------- a GGUF built by hand */

typedef struct {
    ddct_buf b;
    /* where fields are, for the hostile tests */
    size_t key0, arr_len, nest_len, align_val, str_val;
    size_t ti[8], ti_ndims[8], ti_ne[8], ti_type[8], ti_off[8];
    size_t nt, header_end, data_start, last_end;
    uint64_t rel[8], nbytes[8];
} gb;

static void put_str(ddct_buf *b, const char *s)
{
    ddct_buf_u64(b, strlen(s));
    ddct_buf_put(b, s, strlen(s));
}

static void kv_head(ddct_buf *b, const char *key, uint32_t vt)
{
    put_str(b, key);
    ddct_buf_u32(b, vt);
}

typedef struct {
    const char *name;
    uint32_t type;
    int nd;
    uint64_t ne[4];
} tspec;

/* The sample file: alignment `align` (0: no general.alignment KV, i.e. 32), a gap of `gap`
 * alignment units before the second tensor in the data section, tensor infos listed in an order
 * different from their offsets. Tensor bytes from the test generator, padding zeros. */
static void build(gb *g, uint32_t align, int gap)
{
    static const tspec ts[] = {
        {"tok_embd.weight", DDCT_GGML_F16, 2, {64, 8, 1, 1}},
        {"blk.0.attn_q.weight", DDCT_GGML_Q8_0, 2, {64, 4, 1, 1}},
        {"output_norm.weight", DDCT_GGML_F32, 1, {64, 1, 1, 1}},
        {"blk.0.ffn_up.weight", DDCT_GGML_BF16, 3, {32, 2, 2, 1}},
        {"blk.0.ffn_down.weight", DDCT_GGML_Q4_K, 2, {256, 2, 1, 1}},
        {"rope_freqs", DDCT_GGML_I32, 4, {3, 1, 1, 1}},
    };
    /* data order: tensor k goes to slot order[k] */
    static const int slot[] = {2, 0, 5, 1, 3, 4};
    memset(g, 0, sizeof *g);
    ddct_buf *b = &g->b;
    ddct_buf_init(b);
    g->nt = sizeof ts / sizeof ts[0];
    uint32_t a = align ? align : 32;
    ddct_buf_put(b, "GGUF", 4);
    ddct_buf_u32(b, 3);
    ddct_buf_u64(b, g->nt);
    ddct_buf_u64(b, align ? 17 : 16);
    g->key0 = b->len;
    kv_head(b, "general.architecture", DDCT_GGUF_STRING);
    g->str_val = b->len;
    put_str(b, "llama");
    if (align) {
        kv_head(b, "general.alignment", DDCT_GGUF_U32);
        g->align_val = b->len;
        ddct_buf_u32(b, align);
    }
    kv_head(b, "t.u8", DDCT_GGUF_U8); ddct_buf_u8(b, 200);
    kv_head(b, "t.i8", DDCT_GGUF_I8); ddct_buf_u8(b, (uint8_t)-5);
    kv_head(b, "t.u16", DDCT_GGUF_U16); ddct_buf_u16(b, 65000);
    kv_head(b, "t.i16", DDCT_GGUF_I16); ddct_buf_u16(b, (uint16_t)-300);
    kv_head(b, "t.u32", DDCT_GGUF_U32); ddct_buf_u32(b, 4000000000u);
    kv_head(b, "t.i32", DDCT_GGUF_I32); ddct_buf_u32(b, (uint32_t)-70000);
    kv_head(b, "t.f32", DDCT_GGUF_F32); ddct_buf_f32(b, 0.5f);
    kv_head(b, "t.bool", DDCT_GGUF_BOOL); ddct_buf_u8(b, 1);
    kv_head(b, "t.u64", DDCT_GGUF_U64); ddct_buf_u64(b, 18000000000000000000ull);
    kv_head(b, "t.i64", DDCT_GGUF_I64); ddct_buf_u64(b, (uint64_t)-5000000000ll);
    kv_head(b, "t.f64", DDCT_GGUF_F64); ddct_buf_f64(b, -2.25);
    kv_head(b, "tokenizer.ggml.tokens", DDCT_GGUF_ARRAY);
    ddct_buf_u32(b, DDCT_GGUF_STRING);
    ddct_buf_u64(b, 3);
    put_str(b, "<s>");
    put_str(b, "caf\xc3\xa9");
    put_str(b, "bad\xff\"q");
    kv_head(b, "t.arr_i32", DDCT_GGUF_ARRAY);
    ddct_buf_u32(b, DDCT_GGUF_I32);
    g->arr_len = b->len;
    ddct_buf_u64(b, 4);
    for (int i = 0; i < 4; i++) ddct_buf_u32(b, (uint32_t)(i * 10 - 10));
    kv_head(b, "t.nested", DDCT_GGUF_ARRAY); /* [[1, 2], []] of u8 */
    ddct_buf_u32(b, DDCT_GGUF_ARRAY);
    g->nest_len = b->len;
    ddct_buf_u64(b, 2);
    ddct_buf_u32(b, DDCT_GGUF_U8);
    ddct_buf_u64(b, 2);
    ddct_buf_u8(b, 1);
    ddct_buf_u8(b, 2);
    ddct_buf_u32(b, DDCT_GGUF_U8);
    ddct_buf_u64(b, 0);
    kv_head(b, "t.empty_str", DDCT_GGUF_STRING);
    put_str(b, "");
    /* data layout: slots in order, each aligned, a gap before slot 1 */
    uint64_t pos = 0;
    for (int s = 0; s < (int)g->nt; s++) {
        int k = 0;
        while (slot[k] != s) k++;
        const tspec *t = &ts[k];
        uint32_t blk, tsz;
        ddct_gguf_type_info(t->type, &blk, &tsz);
        uint64_t ne = 1;
        for (int d = 0; d < t->nd; d++) ne *= t->ne[d];
        if (s == 1) pos += (uint64_t)gap * a;
        g->rel[k] = pos;
        g->nbytes[k] = ne / blk * tsz;
        pos += g->nbytes[k];
        pos = (pos + a - 1) / a * a;
    }
    for (size_t k = 0; k < g->nt; k++) {
        const tspec *t = &ts[k];
        g->ti[k] = b->len;
        put_str(b, t->name);
        g->ti_ndims[k] = b->len;
        ddct_buf_u32(b, (uint32_t)t->nd);
        g->ti_ne[k] = b->len;
        for (int d = 0; d < t->nd; d++) ddct_buf_u64(b, t->ne[d]);
        g->ti_type[k] = b->len;
        ddct_buf_u32(b, t->type);
        g->ti_off[k] = b->len;
        ddct_buf_u64(b, g->rel[k]);
    }
    g->header_end = b->len;
    g->data_start = (b->len + a - 1) / a * a;
    size_t total = g->data_start + (size_t)pos;
    ddct_buf_reserve(b, total - b->len);
    memset(b->p + b->len, 0, total - b->len);
    b->len = total;
    g->last_end = 0;
    for (size_t k = 0; k < g->nt; k++) {
        uint8_t *p = b->p + g->data_start + g->rel[k];
        for (uint64_t i = 0; i < g->nbytes[k]; i++) p[i] = (uint8_t)(tu_next() | 1); /* never zero */
        if (g->data_start + g->rel[k] + g->nbytes[k] > g->last_end) g->last_end = g->data_start + g->rel[k] + g->nbytes[k];
    }
}

/* ---------------------------------------------------------------- valid files */

static void check_sample(const ddct_gguf *f, const gb *g, uint32_t align)
{
    CHECK(ddct_gguf_version(f) == 3, "version");
    CHECK(ddct_gguf_alignment(f) == (align ? align : 32), "alignment %u", ddct_gguf_alignment(f));
    CHECK(ddct_gguf_header_end(f) == g->header_end, "header end %llu", (unsigned long long)ddct_gguf_header_end(f));
    CHECK(ddct_gguf_data_start(f) == g->data_start, "data start");
    CHECK(ddct_gguf_count(f) == g->nt, "count %zu", ddct_gguf_count(f));
    CHECK(ddct_gguf_kv_count(f) == (align ? 17u : 16u), "kv count %zu", ddct_gguf_kv_count(f));
    uint64_t off, len, cnt;
    const uint8_t *kv = ddct_gguf_kv_section(f, &off, &len, &cnt);
    CHECK(off == 24 && off + len == g->ti[0] && cnt == ddct_gguf_kv_count(f) && kv && kv[0] == 20,
          "kv section %llu+%llu", (unsigned long long)off, (unsigned long long)len);
    uint64_t v = 0, sl = 0;
    CHECK(ddct_gguf_kv_uint(f, "t.u64", &v) == 0 && v == 18000000000000000000ull, "u64");
    CHECK(ddct_gguf_kv_uint(f, "t.u16", &v) == 0 && v == 65000, "u16");
    CHECK(ddct_gguf_kv_uint(f, "t.bool", &v) == 0 && v == 1, "bool");
    CHECK(ddct_gguf_kv_uint(f, "t.i64", &v) == -1, "negative i64 is no uint");
    CHECK(ddct_gguf_kv_uint(f, "t.f32", &v) == -1, "f32 is no uint");
    CHECK(ddct_gguf_kv_uint(f, "nope", &v) == -1, "absent");
    const char *s = ddct_gguf_kv_str(f, "general.architecture", &sl);
    CHECK(s && sl == 5 && !memcmp(s, "llama", 5), "architecture");
    CHECK(ddct_gguf_kv_str(f, "t.u8", &sl) == NULL, "u8 is no string");
    const ddct_gguf_kv *a = ddct_gguf_kv_find(f, "tokenizer.ggml.tokens");
    CHECK(a && a->type == DDCT_GGUF_ARRAY && a->elem_type == DDCT_GGUF_STRING && a->count == 3, "tokens kv");
    CHECK(a && ddct_gguf_kv_get(f, 0)->offset == 24, "first kv at 24");
    for (size_t k = 0; k < g->nt; k++) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, k);
        CHECK(t && ddct_gguf_find(f, t->name) == t, "find %zu", k);
        CHECK(t && t->rel_offset == g->rel[k] && t->offset == g->data_start + g->rel[k] && t->nbytes == g->nbytes[k],
              "tensor %zu offsets/sizes", k);
        CHECK(t && (t->data == NULL || t->data == ddct_gguf_get(f, 0)->data - ddct_gguf_get(f, 0)->offset + t->offset),
              "tensor %zu data pointer", k);
    }
    const ddct_gguf_tensor *t = ddct_gguf_find(f, "blk.0.ffn_up.weight");
    uint64_t shape[4];
    CHECK(t && ddct_gguf_shape(t, shape) == 3 && shape[0] == 2 && shape[1] == 2 && shape[2] == 32, "shape reversed");
    CHECK(t && t->nelem == 128 && ddct_gguf_dtype(t->type) == DDCT_DT_BF16, "bf16");
    t = ddct_gguf_find(f, "blk.0.attn_q.weight");
    CHECK(t && t->nbytes == 2 * 34 * 4 && ddct_gguf_dtype(t->type) == DDCT_DT_INVALID, "q8_0 opaque");
    t = ddct_gguf_find(f, "rope_freqs");
    CHECK(t && t->n_dims == 4 && t->ne[3] == 1 && ddct_gguf_dtype(t->type) == DDCT_DT_I32, "4 dims");
    CHECK(ddct_gguf_find(f, "absent") == NULL && ddct_gguf_get(f, g->nt) == NULL, "absent tensor");
    CHECK(!strcmp(ddct_gguf_type_name(DDCT_GGML_Q4_K), "Q4_K") && ddct_gguf_type_name(31) == NULL &&
              ddct_gguf_type_name(1000) == NULL,
          "type names");
}

static void check_json(const ddct_gguf *f)
{
    char *js = ddct_gguf_metadata_json(f, 64);
    json_error_t je;
    json_t *m = js ? json_loads(js, JSON_DECODE_INT_AS_REAL, &je) : NULL;
    CHECK(m && json_is_object(m), "metadata JSON invalid: %s", js ? js : "(null)");
    if (m) {
        CHECK(!strcmp(json_string_value(json_object_get(m, "general.architecture")), "llama"), "arch");
        CHECK(json_number_value(json_object_get(m, "t.i8")) == -5, "i8");
        CHECK(json_number_value(json_object_get(m, "t.u64")) == 18000000000000000000.0, "u64");
        CHECK(json_number_value(json_object_get(m, "t.i64")) == -5000000000.0, "i64");
        CHECK(json_real_value(json_object_get(m, "t.f64")) == -2.25, "f64");
        CHECK(json_is_true(json_object_get(m, "t.bool")), "bool");
        json_t *tok = json_object_get(m, "tokenizer.ggml.tokens");
        CHECK(json_array_size(tok) == 3 && !strcmp(json_string_value(json_array_get(tok, 1)), "caf\xc3\xa9") &&
                  !strcmp(json_string_value(json_array_get(tok, 2)), "bad_\"q"),
              "tokens");
        json_t *n = json_object_get(m, "t.nested");
        CHECK(json_array_size(n) == 2 && json_array_size(json_array_get(n, 0)) == 2 &&
                  json_array_size(json_array_get(n, 1)) == 0,
              "nested");
        CHECK(json_array_size(json_object_get(m, "t.arr_i32")) == 4, "i32 array");
        json_decref(m);
    }
    free(js);
    js = ddct_gguf_metadata_json(f, 2); /* longer arrays summarized */
    m = js ? json_loads(js, JSON_DECODE_INT_AS_REAL, &je) : NULL;
    json_t *tok = m ? json_object_get(m, "tokenizer.ggml.tokens") : NULL;
    CHECK(tok && json_is_object(tok) && json_number_value(json_object_get(tok, "count")) == 3 &&
              !strcmp(json_string_value(json_object_get(tok, "elem_type")), "string"),
          "summary: %s", js ? js : "(null)");
    CHECK(m && json_array_size(json_object_get(m, "t.nested")) == 2, "nested array of 2 shown");
    json_decref(m);
    free(js);
}

/* Rebuild f into out through the writer, the tensors' bytes from f. */
static int rebuild(const ddct_gguf *f, const char *out, ddct_err *e)
{
    ddct_gguf_layout l;
    ddct_gguf_layout_of(f, &l);
    ddct_gguf_writer *w;
    int rc = ddct_ggw_open(&w, out, 1, NULL, &l, e);
    if (rc) return rc;
    for (size_t i; (i = ddct_ggw_next(w)) != (size_t)-1;) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
        /* in two pieces, the second spanning into the next tensor when there is no gap */
        size_t half = (size_t)t->nbytes / 2;
        if ((rc = ddct_ggw_write(w, t->data, half, e)) || (rc = ddct_ggw_write(w, t->data + half, t->nbytes - half, e))) {
            ddct_ggw_abort(w);
            return rc;
        }
    }
    return ddct_ggw_commit(w, e);
}

static void test_valid(uint32_t align, int gap)
{
    gb g;
    build(&g, align, gap);
    const char *in = tpath("in.gguf"), *out = tpath("out.gguf");
    write_bytes(in, g.b.p, g.b.len);
    ddct_err e = {0};
    ddct_gguf *f = NULL;
    int rc = ddct_gguf_open(&f, in, &e);
    CHECK(rc == 0, "open (align %u gap %d): %s", align, gap, e.msg);
    if (!f) goto done;
    check_sample(f, &g, align);
    check_json(f);
    uint64_t first = 0;
    CHECK(ddct_gguf_gaps_zero(f, &first) == 1, "gaps zero");
    const ddct_gguf_tensor *t = ddct_gguf_get(f, 1);
    uint8_t buf[16];
    CHECK(ddct_gguf_check(f, &e) == 0, "check");
    CHECK(ddct_gguf_pread(f, t, 3, buf, 16, &e) == 0 && !memcmp(buf, g.b.p + t->offset + 3, 16), "pread");
    CHECK(ddct_gguf_pread(f, t, t->nbytes - 4, buf, 16, &e) == DDCT_MAP_FALLBACK, "pread past the tensor");
    ddct_gguf_release(f, t, 0, t->nbytes);
    CHECK(t->data[0] == g.b.p[t->offset], "readable after release");
    rc = rebuild(f, out, &e);
    CHECK(rc == 0, "rebuild: %s", e.msg);
    CHECK(tu_same_file(in, out), "rebuilt file differs (align %u gap %d)", align, gap);
    ddct_gguf_close(f);
    /* the same from memory, and a non-zero padding byte reported */
    rc = ddct_gguf_open_mem(&f, "mem", g.b.p, g.b.len, &e);
    CHECK(rc == 0, "open_mem: %s", e.msg);
    if (f) check_sample(f, &g, align);
    ddct_gguf_close(f);
    g.b.p[g.header_end] = 7; /* header padding (there is some: the header is not aligned by chance) */
    if (g.header_end < g.data_start) {
        rc = ddct_gguf_open_mem(&f, "mem", g.b.p, g.b.len, &e);
        CHECK(rc == 0 && ddct_gguf_gaps_zero(f, &first) == 0 && first == g.header_end, "gap byte found");
        ddct_gguf_close(f);
    }
    g.b.p[g.header_end] = 0;
    g.b.p[g.b.len - 1] = 9; /* after the last tensor, or in it */
    rc = ddct_gguf_open_mem(&f, "mem", g.b.p, g.b.len, &e);
    CHECK(rc == 0 && ddct_gguf_gaps_zero(f, &first) == (g.last_end == g.b.len), "trailing byte");
    ddct_gguf_close(f);
done:
    ddct_buf_free(&g.b);
    unlink(in);
    unlink(out);
}

/* No tensors, no KVs; a file of zero-byte tensors. */
static void test_edges(void)
{
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_buf_put(&b, "GGUF", 4);
    ddct_buf_u32(&b, 2);
    ddct_buf_u64(&b, 0);
    ddct_buf_u64(&b, 0);
    ddct_err e = {0};
    ddct_gguf *f = NULL;
    int rc = ddct_gguf_open_mem(&f, "empty", b.p, b.len, &e);
    CHECK(rc == 0 && ddct_gguf_count(f) == 0 && ddct_gguf_kv_count(f) == 0 && ddct_gguf_version(f) == 2,
          "empty v2: %s", e.msg);
    char *js = f ? ddct_gguf_metadata_json(f, 8) : NULL;
    CHECK(js && !strcmp(js, "{}"), "empty JSON");
    free(js);
    if (f) {
        const char *out = tpath("empty.gguf");
        CHECK(rebuild(f, out, &e) == 0, "rebuild empty: %s", e.msg);
        CHECK(tu_same_file(out, out) && access(out, F_OK) == 0, "written");
        long n;
        unsigned char *p = tu_slurp(out, &n);
        CHECK(p && n == (long)b.len && !memcmp(p, b.p, b.len), "empty rebuilt");
        free(p);
        unlink(out);
    }
    ddct_gguf_close(f);
    /* a scalar (n_dims 0) and an empty tensor (ne 0), both at offset 0 */
    b.len = 0;
    ddct_buf_put(&b, "GGUF", 4);
    ddct_buf_u32(&b, 3);
    ddct_buf_u64(&b, 2);
    ddct_buf_u64(&b, 0);
    put_str(&b, "scalar");
    ddct_buf_u32(&b, 0);
    ddct_buf_u32(&b, DDCT_GGML_F32);
    ddct_buf_u64(&b, 0);
    put_str(&b, "empty");
    ddct_buf_u32(&b, 2);
    ddct_buf_u64(&b, 0);
    ddct_buf_u64(&b, 5);
    ddct_buf_u32(&b, DDCT_GGML_Q8_0);
    ddct_buf_u64(&b, 0);
    while (b.len % 32) ddct_buf_u8(&b, 0);
    ddct_buf_f32(&b, 3.0f);
    rc = ddct_gguf_open_mem(&f, "edges", b.p, b.len, &e);
    CHECK(rc == 0, "scalar + empty: %s", e.msg);
    if (f) {
        uint64_t sh[4];
        const ddct_gguf_tensor *t = ddct_gguf_find(f, "scalar");
        CHECK(t && t->nelem == 1 && t->nbytes == 4 && ddct_gguf_shape(t, sh) == 0, "scalar");
        t = ddct_gguf_find(f, "empty");
        CHECK(t && t->nelem == 0 && t->nbytes == 0, "empty tensor");
        const char *out = tpath("edges.gguf");
        CHECK(rebuild(f, out, &e) == 0, "rebuild edges: %s", e.msg);
        long n;
        unsigned char *p = tu_slurp(out, &n);
        CHECK(p && n == (long)b.len && !memcmp(p, b.p, b.len), "edges rebuilt");
        free(p);
        unlink(out);
    }
    ddct_gguf_close(f);
    ddct_buf_free(&b);
}

/* ---------------------------------------------------------------- hostile files */

static void expect_fail(const uint8_t *p, size_t n, int code, const char *want, const char *what)
{
    ddct_gguf *f = NULL;
    ddct_err e = {0};
    int rc = ddct_gguf_open_mem(&f, "hostile.gguf", p, n, &e);
    CHECK(rc == code && f == NULL, "%s: rc %d (want %d): %s", what, rc, code, e.msg);
    CHECK(strstr(e.msg, "hostile.gguf") && strstr(e.msg, want), "%s: message '%s' lacks '%s'", what, e.msg, want);
    ddct_gguf_close(f);
}

static void test_hostile(void)
{
    gb g;
    build(&g, 64, 1);
    uint8_t *p = g.b.p;
    size_t n = g.b.len;
    uint8_t *c = malloc(n + 64);
#define MUT(stmt, code, want, what)                                                                                    \
    do {                                                                                                               \
        memcpy(c, p, n);                                                                                               \
        stmt;                                                                                                          \
        expect_fail(c, n, code, want, what);                                                                           \
    } while (0)
    MUT(c[0] = 'X', DDCT_ERR_FORMAT, "not a GGUF file", "magic");
    MUT(ddct_st32(c + 4, 1), DDCT_ERR_UNSUPPORTED, "version 1", "version 1");
    MUT(ddct_st32(c + 4, 4), DDCT_ERR_UNSUPPORTED, "version 4", "version 4");
    MUT(ddct_st32(c + 4, 0x03000000u), DDCT_ERR_UNSUPPORTED, "big-endian", "big-endian");
    MUT(ddct_st64(c + 8, UINT64_MAX), DDCT_ERR_FORMAT, "tensor_count", "huge tensor_count");
    MUT(ddct_st64(c + 8, g.nt + 1), DDCT_ERR_FORMAT, "", "tensor_count + 1");
    MUT(ddct_st64(c + 16, UINT64_MAX / 2), DDCT_ERR_FORMAT, "kv_count", "huge kv_count");
    MUT(ddct_st64(c + 16, 18), DDCT_ERR_FORMAT, "", "kv_count + 1");
    MUT(ddct_st64(c + 16, 16), DDCT_ERR_FORMAT, "", "kv_count - 1");
    MUT(ddct_st64(c + g.key0, UINT64_MAX), DDCT_ERR_FORMAT, "runs past the end", "key length");
    MUT(ddct_st64(c + g.key0, 1ull << 40), DDCT_ERR_FORMAT, "runs past the end", "key length 2^40");
    MUT(ddct_st64(c + g.key0, 0), DDCT_ERR_FORMAT, "", "empty key");
    MUT(ddct_st64(c + g.str_val, 1ull << 62), DDCT_ERR_FORMAT, "runs past the end", "string value length");
    MUT(ddct_st64(c + g.arr_len, 1ull << 61), DDCT_ERR_FORMAT, "array of", "array length");
    MUT(ddct_st64(c + g.arr_len, UINT64_MAX), DDCT_ERR_FORMAT, "array of", "array length max");
    MUT(ddct_st64(c + g.nest_len, 1ull << 59), DDCT_ERR_FORMAT, "array of", "nested array length");
    MUT(ddct_st32(c + g.nest_len - 4, 77), DDCT_ERR_FORMAT, "unknown value type 77", "nested elem type");
    MUT(ddct_st32(c + g.str_val - 4, 13), DDCT_ERR_FORMAT, "unknown value type 13", "value type");
    MUT(ddct_st32(c + g.align_val, 48), DDCT_ERR_FORMAT, "not a power of two", "alignment 48");
    MUT(ddct_st32(c + g.align_val, 0), DDCT_ERR_FORMAT, "not a power of two", "alignment 0");
    MUT(ddct_st32(c + g.align_val - 4, DDCT_GGUF_I32), DDCT_ERR_FORMAT, "not a u32", "alignment type");
    MUT(memcpy(c + g.key0 + 8, "t.u8", 4); ddct_st64(c + g.key0, 4); memset(c + g.key0 + 12, 0, 0), DDCT_ERR_FORMAT,
        "", "key length changed");
    MUT(c[g.ti[1] + 8 + 2] = 0, DDCT_ERR_FORMAT, "NUL", "NUL in a tensor name");
    MUT(memcpy(c + g.ti[1] + 8, "tok_embd.weight", 15); ddct_st64(c + g.ti[1], 15), DDCT_ERR_FORMAT, "", "dup name len");
    MUT(ddct_st32(c + g.ti_ndims[0], 5), DDCT_ERR_FORMAT, "5 dimensions", "n_dims 5");
    MUT(ddct_st32(c + g.ti_ndims[0], UINT32_MAX), DDCT_ERR_FORMAT, "dimensions", "n_dims huge");
    MUT(ddct_st64(c + g.ti_ne[0], 1ull << 40); ddct_st64(c + g.ti_ne[0] + 8, 1ull << 40), DDCT_ERR_FORMAT, "overflows",
        "ne overflow");
    MUT(ddct_st64(c + g.ti_ne[0], UINT64_MAX), DDCT_ERR_FORMAT, "overflows", "ne negative");
    MUT(ddct_st64(c + g.ti_ne[0], 1ull << 50), DDCT_ERR_FORMAT, "run past the end", "ne big");
    MUT(ddct_st64(c + g.ti_ne[1], 48), DDCT_ERR_FORMAT, "multiple of Q8_0's block", "ne[0] % block");
    MUT(ddct_st32(c + g.ti_type[0], 99), DDCT_ERR_UNSUPPORTED, "unknown ggml type 99", "unknown type");
    MUT(ddct_st32(c + g.ti_type[0], 31), DDCT_ERR_UNSUPPORTED, "Q4_0_4_4", "withdrawn type");
    MUT(ddct_st64(c + g.ti_off[0], g.rel[0] + 32), DDCT_ERR_FORMAT, "not a multiple of the alignment", "misaligned");
    MUT(ddct_st64(c + g.ti_off[0], 1ull << 62), DDCT_ERR_FORMAT, "run past the end", "offset past the end");
    MUT(ddct_st64(c + g.ti_off[0], UINT64_MAX - 63), DDCT_ERR_FORMAT, "run past the end", "offset overflow");
    MUT(ddct_st64(c + g.ti_off[0], g.rel[1]), DDCT_ERR_FORMAT, "overlaps", "overlap");
    /* tensor 1 (Q8_0, 272 bytes in slot 0) grown into the next slot */
    MUT(ddct_st64(c + g.ti_ne[1] + 8, 8), DDCT_ERR_FORMAT, "overlaps", "overlap by size");
    /* a duplicate key: the second KV renamed to the first's name (both 17 bytes or less: pad) */
    {
        gb d;
        build(&d, 0, 0);
        size_t k1 = 24 + 8 + 20 + 4 + 8 + 5; /* second KV: "t.u8" */
        memcpy(d.b.p + k1 + 8, "t.i8", 4);
        expect_fail(d.b.p, d.b.len, DDCT_ERR_FORMAT, "appears twice", "duplicate key");
        ddct_buf_free(&d.b);
    }
    /* arrays nested deeper than allowed */
    {
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_buf_put(&b, "GGUF", 4);
        ddct_buf_u32(&b, 3);
        ddct_buf_u64(&b, 0);
        ddct_buf_u64(&b, 1);
        kv_head(&b, "deep", DDCT_GGUF_ARRAY);
        for (int i = 0; i < 40; i++) {
            ddct_buf_u32(&b, DDCT_GGUF_ARRAY);
            ddct_buf_u64(&b, 1);
        }
        ddct_buf_u32(&b, DDCT_GGUF_U8);
        ddct_buf_u64(&b, 0);
        expect_fail(b.p, b.len, DDCT_ERR_FORMAT, "nested more than", "deep nesting");
        ddct_buf_free(&b);
    }
#undef MUT
    /* truncated at every byte: an error, never a crash; from the last tensor's end on it stays valid */
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        ddct_gguf *f = NULL;
        ddct_err e = {0};
        uint8_t *q = malloc(k ? k : 1); /* exactly k bytes: ASan sees any read past them */
        memcpy(q, p, k);
        int rc = ddct_gguf_open_mem(&f, "cut.gguf", q, k, &e);
        int want_ok = k >= g.last_end;
        if ((rc == 0) != want_ok || (rc && (rc != DDCT_ERR_FORMAT || !strstr(e.msg, "cut.gguf")))) {
            if (bad++ < 5) CHECK(0, "truncated at %zu: rc %d: %s", k, rc, e.msg);
        }
        ddct_gguf_close(f);
        free(q);
    }
    CHECK(bad == 0, "%d truncations misjudged", bad);
    /* random corruption of the header: never a crash, and what opens is consistent */
    for (int it = 0; it < 3000; it++) {
        memcpy(c, p, n);
        int flips = 1 + (int)(tu_next() % 4);
        for (int k = 0; k < flips; k++) c[tu_next() % g.header_end] ^= (uint8_t)(1u << (tu_next() % 8));
        ddct_gguf *f = NULL;
        ddct_err e = {0};
        int rc = ddct_gguf_open_mem(&f, "flip.gguf", c, n, &e);
        if (rc) {
            CHECK(rc > 0 && rc < DDCT_ERR_COUNT && strstr(e.msg, "flip.gguf"), "flip: rc %d %s", rc, e.msg);
            continue;
        }
        for (size_t i = 0; i < ddct_gguf_count(f); i++) {
            const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
            CHECK(t->offset + t->nbytes <= n && t->offset % ddct_gguf_alignment(f) == 0, "flip: tensor bounds");
        }
        char *js = ddct_gguf_metadata_json(f, 4);
        CHECK(js != NULL, "flip: JSON");
        free(js);
        ddct_gguf_close(f);
    }
    free(c);
    ddct_buf_free(&g.b);
}

/* ---------------------------------------------------------------- writer misuse */

static void test_writer_errors(void)
{
    gb g;
    build(&g, 0, 0);
    ddct_err e = {0};
    ddct_gguf *f = NULL;
    CHECK(ddct_gguf_open_mem(&f, "w", g.b.p, g.b.len, &e) == 0, "open: %s", e.msg);
    if (!f) return;
    ddct_gguf_layout l;
    ddct_gguf_layout_of(f, &l);
    const char *out = tpath("w.gguf");
    ddct_gguf_writer *w = NULL;
    /* incomplete: commit refuses, nothing left behind */
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &l, &e) == 0, "open writer: %s", e.msg);
    const ddct_gguf_tensor *t = ddct_gguf_get(f, ddct_ggw_next(w));
    CHECK(ddct_ggw_write(w, t->data, 10, &e) == 0, "write");
    CHECK(ddct_ggw_commit(w, &e) == DDCT_ERR_PARAM && strstr(e.msg, "incomplete"), "incomplete: %s", e.msg);
    CHECK(access(out, F_OK) != 0, "no file after a failed commit");
    /* too many bytes */
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &l, &e) == 0, "open writer");
    uint64_t total = 0;
    for (size_t i = 0; i < ddct_gguf_count(f); i++) total += ddct_gguf_get(f, i)->nbytes;
    uint8_t *z = calloc(1, (size_t)total + 1);
    CHECK(ddct_ggw_write(w, z, (size_t)total + 1, &e) == DDCT_ERR_PARAM && strstr(e.msg, "more than"), "overrun: %s",
          e.msg);
    ddct_ggw_abort(w);
    free(z);
    /* layouts that do not parse */
    ddct_gguf_layout bad = l;
    bad.kv_count = l.kv_count + 1;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) != 0 && !w, "kv_count + 1: %s", e.msg);
    bad = l;
    bad.kv_len = l.kv_len - 1;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) != 0 && !w, "kv_len - 1: %s", e.msg);
    bad = l;
    bad.version = 1;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) == DDCT_ERR_PARAM, "version 1: %s", e.msg);
    bad = l;
    bad.size = g.b.len - 100;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) != 0 && !w, "size short: %s", e.msg);
    ddct_gguf_tensor ts[8];
    memcpy(ts, l.tensors, l.n * sizeof *ts);
    ts[0].rel_offset += 16;
    bad = l;
    bad.tensors = ts;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) == DDCT_ERR_FORMAT && strstr(e.msg, "alignment"), "misaligned: %s",
          e.msg);
    ts[0].rel_offset = ts[1].rel_offset;
    CHECK(ddct_ggw_open(&w, out, 1, NULL, &bad, &e) == DDCT_ERR_FORMAT && strstr(e.msg, "overlaps"), "overlap: %s",
          e.msg);
    /* size 0: the end of the last tensor aligned up, as this file has */
    bad = l;
    bad.size = 0;
    CHECK(rebuild(f, out, &e) == 0, "rebuild");
    CHECK(ddct_ggw_open(&w, tpath("w0.gguf"), 1, NULL, &bad, &e) == 0, "size 0: %s", e.msg);
    for (size_t i; w && (i = ddct_ggw_next(w)) != (size_t)-1;)
        ddct_ggw_write(w, ddct_gguf_get(f, i)->data, ddct_gguf_get(f, i)->nbytes, &e);
    CHECK(w && ddct_ggw_commit(w, &e) == 0, "commit size 0: %s", e.msg);
    CHECK(tu_same_file(out, tpath("w0.gguf")), "size 0 gives the same file");
    /* exists without overwrite; output = input */
    CHECK(ddct_ggw_open(&w, out, 0, NULL, &l, &e) == DDCT_ERR_EXISTS, "exists: %s", e.msg);
    const char *ins[] = {out, NULL};
    CHECK(ddct_ggw_open(&w, out, 1, ins, &l, &e) == DDCT_ERR_EXISTS, "over the input: %s", e.msg);
    unlink(out);
    unlink(tpath("w0.gguf"));
    ddct_gguf_close(f);
    ddct_buf_free(&g.b);
}

/* ---------------------------------------------------------------- real files */

static void test_real_files(void)
{
    const char *shared = getenv("DDCT_SHARED");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures", shared && *shared ? shared : "../shared");
    DIR *d = opendir(dir);
    int seen = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".gguf")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        ddct_gguf *f = NULL;
        ddct_err e = {0};
        CHECK(ddct_gguf_open(&f, path, &e) == 0, "%s", e.msg);
        if (f && ddct_gguf_gaps_zero(f, NULL)) {
            CHECK(rebuild(f, tpath("real.gguf"), &e) == 0, "rebuild %s: %s", path, e.msg);
            CHECK(tu_same_file(path, tpath("real.gguf")), "%s rebuilt differs", path);
            unlink(tpath("real.gguf"));
        }
        ddct_gguf_close(f);
        seen++;
    }
    if (d) closedir(d);
    if (!seen) printf("test_gguf: no *.gguf in %s: real-file round trip skipped\n", dir);
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "test_gguf")) return 1;
    test_valid(0, 0);
    test_valid(64, 1);
    test_valid(128, 3);
    test_edges();
    test_hostile();
    test_writer_errors();
    test_real_files();
    rmdir(g_dir);
    return TEST_SUMMARY();
}
