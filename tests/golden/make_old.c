/*
 * make_old.c — writes the golden .ddct files of versions today's encoder no longer writes (built as
 * ddct-make-old; run by tests/golden/make_golden.sh, which tests/cli_golden.sh runs first):
 *
 *   make_old rd BASE OUT      format 1.1: the rd records of parameter versions 0 and 1 kept in
 *                             tests/rd_v0_golden.h and tests/rd_v1_golden.h (tensors rd.v0.a/b/c,
 *                             rd.v1.a/b of BASE, whose fingerprints the records carry)
 *   make_old f10 BASE FT IN OUT
 *                             format 1.0 from IN (a patch .ddct of FT against BASE written by
 *                             today's CLI): header without "layout", minor version 0, patch
 *                             records with version 0 parameters (no stored rescale factor), raw
 *                             records unchunked (one zstd frame of the whole-tensor xor and
 *                             shuffle), same records as they are
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "codec/codec.h"
#include "container/container.h"
#include "io/safetensors.h"
#include "rd_v0_golden.h"
#include "rd_v1_golden.h"

static int die(const char *what, const ddct_err *e)
{
    fprintf(stderr, "make_old: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static uint64_t fp_of(const ddct_st_file *f, const char *name)
{
    const ddct_st_tensor *t = ddct_st_find(f, name);
    if (!t) die(name, NULL);
    return ddct_tensor_fingerprint(t->dtype, t->ndim, t->shape, t->data, t->nbytes);
}

static ddct_ctr_entry entry_of(const ddct_st_file *f, const char *name)
{
    const ddct_st_tensor *t = ddct_st_find(f, name);
    if (!t) die(name, NULL);
    ddct_ctr_entry en;
    memset(&en, 0, sizeof en);
    en.name = (char *)t->name;
    en.dtype = t->dtype;
    en.ndim = t->ndim;
    memcpy(en.shape, t->shape, (size_t)t->ndim * sizeof *en.shape);
    en.nelem = t->nelem;
    return en;
}

/* A header with a one-file layout listing names. */
static char *header_json(const char *const *names, size_t n, int with_layout)
{
    json_t *h = json_pack("{s:s, s:s, s:s, s:n, s:[]}", "format", "ddct", "tool", "deltadct golden", "options",
                          "method=rd (records of older parameter versions)", "metadata", "base_only");
    if (with_layout) {
        json_t *t = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(t, json_string(names[i]));
        json_object_set_new(h, "layout",
                            json_pack("{s:s, s:n, s:[{s:s, s:n, s:o}], s:[]}", "kind", "file", "index", "shards",
                                      "name", "model.safetensors", "metadata", "tensors", t, "files"));
    }
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return s;
}

static int make_rd(const char *base_path, const char *out)
{
    ddct_err e = {0};
    ddct_st_file *b;
    if (ddct_st_open(&b, base_path, &e)) die(base_path, &e);
    struct {
        const char *name;
        const uint8_t *p, *s, *d;
        size_t pl, sl, dl;
    } g[] = {{"rd.v0.a", g0_params, g0_side, g0_data, sizeof g0_params, sizeof g0_side, sizeof g0_data},
             {"rd.v0.b", g1_params, g1_side, g1_data, sizeof g1_params, sizeof g1_side, sizeof g1_data},
             {"rd.v0.c", g2_params, g2_side, g2_data, sizeof g2_params, sizeof g2_side, sizeof g2_data},
             {"rd.v1.a", g1_0_params, g1_0_side, g1_0_data, sizeof g1_0_params, sizeof g1_0_side, sizeof g1_0_data},
             {"rd.v1.b", g1_1_params, g1_1_side, g1_1_data, sizeof g1_1_params, sizeof g1_1_side, sizeof g1_1_data}};
    const size_t n = sizeof g / sizeof *g;
    const char *names[8];
    for (size_t i = 0; i < n; i++) names[i] = g[i].name;
    char *h = header_json(names, n, 1);
    ddct_ctr_writer *w;
    if (ddct_ctrw_open(&w, out, 1, NULL, h, &e)) die(out, &e);
    free(h);
    for (size_t i = 0; i < n; i++) {
        ddct_ctr_entry en = entry_of(b, g[i].name);
        ddct_record rec = {.codec = DDCT_CODEC_RD, .flags = DDCT_REC_HAS_BASE, .base_fp = fp_of(b, g[i].name),
                           .params = g[i].p, .params_len = g[i].pl, .side = g[i].s, .side_len = g[i].sl,
                           .data = g[i].d, .data_len = g[i].dl};
        if (ddct_ctrw_add(w, &en, &rec, &e)) die(g[i].name, &e);
    }
    if (ddct_ctrw_commit(w, &e)) die(out, &e);
    ddct_st_close(b);
    return 0;
}

/* Version 0 patch params from version 1: version byte 0, the f32 scale after mean_abs dropped
 * (u8 version .. u8 flags: 8 bytes, varint cols, f32 mean_abs, f32 scale, classes). */
static size_t patch_params_v0(const uint8_t *p, size_t len, uint8_t *q)
{
    size_t at = 8;
    while (p[at] & 0x80) at++;
    at++;            /* past cols */
    at += 4;         /* past mean_abs */
    memcpy(q, p, at);
    q[0] = 0;
    memcpy(q + at, p + at + 4, len - at - 4);
    return len - 4;
}

/* Format 1.0's header: the minor version 0 and the header checksum made right again. */
static void set_minor0(const char *path)
{
    FILE *f = fopen(path, "r+b");
    uint8_t head[20];
    if (!f || fread(head, 1, 20, f) != 20) die(path, NULL);
    uint32_t jl = ddct_le32(head + 16);
    uint8_t *b = malloc(20 + (size_t)jl);
    fseek(f, 0, SEEK_SET);
    if (fread(b, 1, 20 + (size_t)jl, f) != 20 + (size_t)jl) die(path, NULL);
    b[10] = b[11] = 0;
    uint8_t sum[8];
    ddct_st64(sum, XXH3_64bits(b, 20 + (size_t)jl));
    fseek(f, 0, SEEK_SET);
    fwrite(b, 1, 20 + (size_t)jl, f);
    fwrite(sum, 1, 8, f);
    fclose(f);
    free(b);
}

static int make_f10(const char *base_path, const char *ft_path, const char *in, const char *out)
{
    ddct_err e = {0};
    ddct_st_file *b, *ft;
    ddct_ctr_reader *r;
    if (ddct_st_open(&b, base_path, &e) || ddct_st_open(&ft, ft_path, &e) || ddct_ctr_open(&r, in, &e)) die(in, &e);
    json_t *h = json_loads(ddct_ctr_header_json(r), 0, NULL);
    json_object_del(h, "layout");
    char *hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    ddct_ctr_writer *w;
    if (ddct_ctrw_open(&w, out, 1, NULL, hs, &e)) die(out, &e);
    free(hs);
    for (size_t i = 0; i < ddct_ctr_count(r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        ddct_record rec;
        if (ddct_ctr_record(r, i, 1, &rec, &e)) die(en->name, &e);
        uint8_t pv0[256], flags;
        uint8_t *frame = NULL, *tmp = NULL, *tr = NULL;
        if (rec.codec == DDCT_CODEC_PATCH) {
            if (rec.params_len > sizeof pv0 || rec.params[0] != 1) die(en->name, NULL);
            rec.params_len = patch_params_v0(rec.params, rec.params_len, pv0);
            rec.params = pv0;
        } else if (rec.codec == DDCT_CODEC_RAW) {
            const ddct_st_tensor *t = ddct_st_find(ft, en->name), *bt = ddct_st_find(b, en->name);
            if (!t) die(en->name, NULL);
            flags = rec.params[0] & 3; /* xor, shuffle; no chunk */
            size_t es = ddct_dtype_size(t->dtype), m = (size_t)t->nbytes;
            tmp = malloc(m + 1), tr = malloc(m + 1);
            ddct_xor_shuffle(t->data, (flags & 1) ? bt->data : NULL, m, (flags & 2) ? es : 1, tmp, tr);
            size_t cap = ZSTD_compressBound(m);
            frame = malloc(cap);
            size_t z = ZSTD_compress(frame, cap, tr, m, 3);
            if (ZSTD_isError(z)) die(en->name, NULL);
            rec.params = &flags;
            rec.params_len = 1;
            rec.data = frame;
            rec.data_len = z;
        }
        if (ddct_ctrw_add(w, en, &rec, &e)) die(en->name, &e);
        free(frame);
        free(tmp);
        free(tr);
    }
    if (ddct_ctrw_commit(w, &e)) die(out, &e);
    set_minor0(out);
    ddct_ctr_close(r);
    ddct_st_close(b);
    ddct_st_close(ft);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "rd")) return make_rd(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "f10")) return make_f10(argv[2], argv[3], argv[4], argv[5]);
    fprintf(stderr, "usage: make_old rd BASE OUT | make_old f10 BASE FT IN OUT\n");
    return 2;
}
