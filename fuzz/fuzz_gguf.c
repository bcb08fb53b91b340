/*
 * fuzz_gguf.c — the GGUF reader (ddct_gguf_open_mem) on arbitrary bytes, and the writer on what
 * it accepts.
 *
 * Input: the bytes of a GGUF file, as they are. Properties checked besides "no crash, no
 * sanitizer report":
 *   - failure: a known error code and a message naming the input;
 *   - success: version 2 or 3, alignment a power of two, data_start = header_end aligned up; the
 *     KV section starts at byte 24 and ends at the first tensor info; every KV found by its key
 *     and its value inside the header; every tensor found by its name, 1..4 dims (0 for a
 *     scalar), ne[0] a multiple of its type's block, nbytes = nelem / block * type size, offset
 *     aligned, bytes inside the input, data pointing at them, no two overlapping (zero-byte
 *     tensors aside); the row-major shape is ne reversed; the metadata JSON parses (jansson) to
 *     an object with one member a key; the same bytes give the same view twice;
 *   - rebuild: when every gap byte is zero (and the input is under 1 MiB), the writer rebuilds
 *     the file byte for byte from its layout and tensor bytes (in a temporary directory).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "fuzz.h"
#include "io/gguf.h"

#define LABEL "fuzz.gguf"

static char g_dir[64], g_out[128];

static void remove_dir(void) { rmdir(g_dir); }

/* out.gguf in a directory of its own, created once and removed at exit */
static const char *out_path(void)
{
    if (g_out[0]) return g_out;
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_gguf.XXXXXX");
    if (!mkdtemp(g_dir)) return NULL;
    atexit(remove_dir);
    snprintf(g_out, sizeof g_out, "%s/out.gguf", g_dir);
    return g_out;
}

static int cmp_idx(const void *a, const void *b, void *ctx)
{
    const ddct_gguf *f = ctx;
    const ddct_gguf_tensor *x = ddct_gguf_get(f, *(const size_t *)a), *y = ddct_gguf_get(f, *(const size_t *)b);
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

static void check_open(const ddct_gguf *f, const uint8_t *data, size_t size)
{
    uint32_t v = ddct_gguf_version(f), a = ddct_gguf_alignment(f);
    FUZZ_ASSERT(v == 2 || v == 3, "version %u", v);
    FUZZ_ASSERT(a && !(a & (a - 1)), "alignment %u", a);
    uint64_t he = ddct_gguf_header_end(f), ds = ddct_gguf_data_start(f);
    FUZZ_ASSERT(he <= size && ds >= he && ds - he < a && ds % a == 0, "header end %llu, data start %llu",
                (unsigned long long)he, (unsigned long long)ds);
    FUZZ_ASSERT(ddct_gguf_size(f) == size, "size");
    uint64_t off, len, cnt;
    const uint8_t *kvs = ddct_gguf_kv_section(f, &off, &len, &cnt);
    FUZZ_ASSERT(off == 24 && kvs == data + 24 && off + len <= he && cnt == ddct_gguf_kv_count(f), "kv section");
    for (size_t i = 0; i < ddct_gguf_kv_count(f); i++) {
        const ddct_gguf_kv *kv = ddct_gguf_kv_get(f, i);
        FUZZ_ASSERT(kv && kv->key && *kv->key && ddct_gguf_kv_find(f, kv->key) == kv, "kv %zu not found by key", i);
        FUZZ_ASSERT(kv->value >= data + 24 && kv->value + kv->value_len <= data + off + len, "kv %zu value outside", i);
        FUZZ_ASSERT(kv->type < DDCT_GGUF_VT_COUNT, "kv %zu type %u", i, kv->type);
    }
    size_t n = ddct_gguf_count(f);
    for (size_t i = 0; i < n; i++) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
        FUZZ_ASSERT(t && t->name && *t->name && ddct_gguf_find(f, t->name) == t, "tensor %zu not found by name", i);
        FUZZ_ASSERT(t->n_dims >= 0 && t->n_dims <= DDCT_GGUF_MAX_DIMS, "'%s': n_dims %d", t->name, t->n_dims);
        uint32_t blk, tsz;
        FUZZ_ASSERT(ddct_gguf_type_info(t->type, &blk, &tsz) == 0, "'%s': type %u", t->name, t->type);
        uint64_t ne = 1;
        for (int d = 0; d < DDCT_GGUF_MAX_DIMS; d++) {
            FUZZ_ASSERT(d < t->n_dims || t->ne[d] == 1, "'%s': ne[%d] past n_dims", t->name, d);
            FUZZ_ASSERT(!ddct_mul_overflow(ne, t->ne[d], &ne), "'%s': nelem overflows", t->name);
        }
        FUZZ_ASSERT(ne == t->nelem && t->ne[0] % blk == 0 && t->nbytes == ne / blk * tsz, "'%s': sizes", t->name);
        FUZZ_ASSERT(t->rel_offset % a == 0 && t->offset == ds + t->rel_offset, "'%s': offset", t->name);
        FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset && t->data == data + t->offset,
                    "'%s': bytes outside the input", t->name);
        uint64_t sh[DDCT_GGUF_MAX_DIMS];
        int nd = ddct_gguf_shape(t, sh);
        for (int d = 0; d < nd; d++) FUZZ_ASSERT(sh[d] == t->ne[nd - 1 - d], "'%s': shape", t->name);
    }
    size_t *o = malloc((n ? n : 1) * sizeof *o);
    FUZZ_ASSERT(o != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) o[i] = i;
    qsort_r(o, n, sizeof *o, cmp_idx, (void *)f);
    uint64_t end = 0;
    for (size_t k = 0; k < n; k++) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, o[k]);
        if (!t->nbytes) continue;
        FUZZ_ASSERT(t->offset >= end, "'%s' overlaps", t->name);
        end = t->offset + t->nbytes;
    }
    free(o);
    char *js = ddct_gguf_metadata_json(f, 16);
    FUZZ_ASSERT(js != NULL, "metadata JSON: out of memory");
    json_error_t je;
    json_t *m = json_loads(js, JSON_DECODE_INT_AS_REAL, &je);
    FUZZ_ASSERT(m && json_is_object(m) && json_object_size(m) <= ddct_gguf_kv_count(f),
                "metadata JSON invalid (%s): %.200s", je.text, js);
    json_decref(m);
    free(js);
}

static void check_rebuild(const ddct_gguf *f, const uint8_t *data, size_t size)
{
    const char *out = out_path();
    if (!out) return;
    ddct_gguf_layout l;
    ddct_gguf_layout_of(f, &l);
    ddct_gguf_writer *w;
    ddct_err e = {0};
    int rc = ddct_ggw_open(&w, out, 1, NULL, &l, &e);
    FUZZ_ASSERT(rc == 0, "writer refuses the layout of a file the reader accepted: %s", e.msg);
    for (size_t i; (i = ddct_ggw_next(w)) != (size_t)-1;) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
        rc = ddct_ggw_write(w, t->data, (size_t)t->nbytes, &e);
        FUZZ_ASSERT(rc == 0, "write: %s", e.msg);
    }
    rc = ddct_ggw_commit(w, &e);
    FUZZ_ASSERT(rc == 0, "commit: %s", e.msg);
    FILE *fp = fopen(out, "rb");
    uint8_t *back = malloc(size + 1);
    size_t got = fp && back ? fread(back, 1, size + 1, fp) : 0;
    if (fp) fclose(fp);
    FUZZ_ASSERT(got == size && memcmp(back, data, size) == 0, "rebuilt file differs (%zu bytes, input %zu)", got, size);
    free(back);
    unlink(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: a read past the end is a sanitizer report */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) abort();
    if (size) memcpy(p, data, size);
    ddct_gguf *f = NULL;
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ddct_gguf_open_mem(&f, LABEL, p, size, &e);
    if (rc) {
        FUZZ_ASSERT(f == NULL, "failed open returned a handle");
        FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT && rc == e.code, "error code %d (e.code %d)", rc, e.code);
        FUZZ_ASSERT(strstr(e.msg, LABEL) != NULL, "message does not name the input: %s", e.msg);
        free(p);
        return 0;
    }
    check_open(f, p, size);
    ddct_gguf *g = NULL;
    FUZZ_ASSERT(ddct_gguf_open_mem(&g, LABEL, p, size, &e) == 0 && ddct_gguf_count(g) == ddct_gguf_count(f) &&
                    ddct_gguf_kv_count(g) == ddct_gguf_kv_count(f) && ddct_gguf_data_start(g) == ddct_gguf_data_start(f),
                "a second open differs");
    ddct_gguf_close(g);
    if (ddct_gguf_gaps_zero(f, NULL) && size < (1u << 20)) check_rebuild(f, p, size);
    ddct_gguf_close(f);
    free(p);
    return 0;
}
