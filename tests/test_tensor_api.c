/*
 * test_tensor_api.c — tensors one at a time (ddct_DCtx_open / decodeTensor, deltadct.h).
 *
 * A model of several dtypes (lossy BF16, F16 and F32 matrices; lossless BF16 embedding and norm,
 * an I64 tensor) is compressed with the default method, then every tensor decoded into a buffer
 * must equal the same tensor of `decompress`'s file byte for byte (as stored) and its float32
 * conversion (as F32), on 1 and 4 threads, found by name too, from the file and from memory.
 * Refused with DDCT_ERR_PARAM and nothing written: a buffer one byte short, an integer tensor
 * as F32, an index out of range, no .ddct open. A base whose lossy tensor differs fails on that
 * tensor only (DDCT_ERR_BASE_MISMATCH, named); the others still decode. The other way: the same
 * tensors compressed from memory (ddct_CCtx_compressTensors, base in memory or from its file)
 * give the .ddct of the files byte for byte; duplicate names, unknown dtypes and missing data are
 * refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dtype.h"
#include "deltadct.h"
#include "io/safetensors.h"
#include "testutil.h"

#define NT 6
static const char *const names[NT] = {"model.embed_tokens.weight",         "model.layers.0.mlp.up_proj.weight",
                                      "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
                                      "model.norm.weight",                  "position_ids"};
static const ddct_dtype dts[NT] = {DDCT_DT_BF16, DDCT_DT_BF16, DDCT_DT_F16, DDCT_DT_F32, DDCT_DT_BF16, DDCT_DT_I64};
static uint64_t shapes[NT][2] = {{1000, 64}, {256, 512}, {128, 256}, {300, 200}, {512, 1}, {64, 1}};
static const int ndims[NT] = {2, 2, 2, 2, 1, 1};

/* kind 0: base, 1: fine-tune, 2: the base with the F16 matrix's first value changed */
static int write_model(const char *path, int kind)
{
    ddct_st_entry ents[NT];
    for (int t = 0; t < NT; t++) ents[t] = (ddct_st_entry){names[t], dts[t], ndims[t], shapes[t]};
    ddct_st_writer *w;
    ddct_err e;
    if (ddct_stw_open(&w, path, 1, NULL, ents, NT, NULL, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    tu_rng = 99;
    for (int t = 0; t < NT; t++) {
        uint64_t n = shapes[t][0] * (ndims[t] == 2 ? shapes[t][1] : 1);
        size_t es = ddct_dtype_size(dts[t]);
        uint8_t *v = malloc(n * es);
        if (!v) return ddct_stw_abort(w), -1;
        for (uint64_t k = 0; k < n; k++) {
            if (dts[t] == DDCT_DT_I64) {
                int64_t x = (int64_t)k;
                memcpy(v + k * 8, &x, 8);
                continue;
            }
            float x = (float)(0.02 * tu_normal() + (kind == 1 && (t != 0 || k % 50 == 0) ? 0.002 * tu_normal() : 0));
            ddct_from_f32(dts[t], &x, 1, v + k * es);
        }
        if (kind == 2 && t == 2) v[0] ^= 1;
        int rc = ddct_stw_write(w, v, n * es, &e);
        free(v);
        if (rc) return ddct_stw_abort(w), -1;
    }
    return ddct_stw_commit(w, &e) ? -1 : 0;
}

/* A safetensors file's tensors as ddct_tensor (pointing into its mapping). */
static ddct_tensor *as_tensors(const ddct_st_file *f)
{
    ddct_tensor *t = calloc(ddct_st_count(f) + 1, sizeof *t);
    for (size_t i = 0; t && i < ddct_st_count(f); i++) {
        const ddct_st_tensor *s = ddct_st_get(f, i);
        t[i] = (ddct_tensor){s->name, ddct_dtype_name(s->dtype), s->ndim, s->shape, s->data};
    }
    return t;
}

/* compressTensors = compressFiles, byte for byte; bad tensor lists refused. */
static void from_memory(const char *base, const char *ft, const char *want, const char *out)
{
    ddct_st_file *bf = NULL, *ff = NULL;
    ddct_err e;
    if (ddct_st_open(&bf, base, &e) || ddct_st_open(&ff, ft, &e)) {
        CHECK(0, "open inputs: %s", e.msg);
        return;
    }
    ddct_tensor *bt = as_tensors(bf), *ftt = as_tensors(ff);
    size_t nb = ddct_st_count(bf), nf = ddct_st_count(ff);
    for (int from_file = 0; from_file < 2; from_file++) {
        ddct_CCtx *c = ddct_createCCtx();
        ddct_ErrorCode rc = ddct_CCtx_compressTensors(c, from_file ? base : NULL, bt, nb, ftt, nf, out, 1);
        CHECK(rc == DDCT_OK, "compressTensors (base %s): %s", from_file ? "file" : "memory", ddct_CCtx_getErrorMessage(c));
        CHECK(tu_same_file(want, out), "compressTensors (base %s) = the files' .ddct", from_file ? "file" : "memory");
        ddct_freeCCtx(c);
    }
    /* refused, nothing written */
    unlink(out);
    ddct_CCtx *c = ddct_createCCtx();
    ddct_tensor bad[2] = {ftt[1], ftt[1]};
    CHECK(ddct_CCtx_compressTensors(c, base, NULL, 0, bad, 2, out, 1) == DDCT_ERR_PARAM &&
              strstr(ddct_CCtx_getErrorMessage(c), "twice"),
          "duplicate names: %s", ddct_CCtx_getErrorMessage(c));
    bad[1].name = "other";
    bad[1].dtype = "F31";
    CHECK(ddct_CCtx_compressTensors(c, base, NULL, 0, bad, 2, out, 1) == DDCT_ERR_PARAM &&
              strstr(ddct_CCtx_getErrorMessage(c), "F31"),
          "unknown dtype: %s", ddct_CCtx_getErrorMessage(c));
    bad[1].dtype = "F32";
    bad[1].data = NULL;
    CHECK(ddct_CCtx_compressTensors(c, base, NULL, 0, bad, 2, out, 1) == DDCT_ERR_PARAM &&
              strstr(ddct_CCtx_getErrorMessage(c), "no data"),
          "no data: %s", ddct_CCtx_getErrorMessage(c));
    CHECK(access(out, F_OK) != 0, "nothing written");
    ddct_freeCCtx(c);
    free(bt);
    free(ftt);
    ddct_st_close(bf);
    ddct_st_close(ff);
}

/* Every tensor through the API equals the rebuilt file's, in both formats. */
static void check_all(ddct_DCtx *d, const ddct_st_file *rebuilt, const char *what)
{
    const ddct_Info *info = ddct_DCtx_info(d);
    CHECK(info && ddct_Info_count(info) == NT, "%s: %zu tensors", what, info ? ddct_Info_count(info) : 0);
    if (!info) return;
    for (size_t i = 0; i < ddct_Info_count(info); i++) {
        const ddct_tensor_info *ti = ddct_Info_tensor(info, i);
        const ddct_st_tensor *t = ddct_st_find(rebuilt, ti->name);
        CHECK(t && ddct_Info_find(info, ti->name) == i, "%s: '%s' found", what, ti->name);
        if (!t) continue;
        uint64_t nb = ddct_DCtx_tensorBytes(d, i, DDCT_AS_STORED);
        CHECK(nb == t->nbytes, "%s: '%s' %llu bytes", what, ti->name, (unsigned long long)nb);
        uint8_t *buf = malloc(nb + 1);
        ddct_ErrorCode rc = ddct_DCtx_decodeTensor(d, i, buf, nb, DDCT_AS_STORED);
        CHECK(rc == DDCT_OK && !memcmp(buf, t->data, nb), "%s: '%s' as stored: %s", what, ti->name,
              ddct_DCtx_getErrorMessage(d));
        /* one byte short: refused, nothing written */
        memset(buf, 0xa5, nb + 1);
        rc = ddct_DCtx_decodeTensor(d, i, buf, nb - 1, DDCT_AS_STORED);
        CHECK(rc == DDCT_ERR_PARAM && strstr(ddct_DCtx_getErrorMessage(d), ti->name) && buf[0] == 0xa5 &&
                  buf[nb - 1] == 0xa5,
              "%s: '%s' short buffer: %s", what, ti->name, ddct_DCtx_getErrorMessage(d));
        free(buf);
        uint64_t nf = ddct_DCtx_tensorBytes(d, i, DDCT_AS_F32);
        if (!ddct_dtype_is_lossy_float(t->dtype)) {
            float f;
            CHECK(nf == 0 && ddct_DCtx_decodeTensor(d, i, &f, sizeof f, DDCT_AS_F32) == DDCT_ERR_PARAM &&
                      strstr(ddct_DCtx_getErrorMessage(d), "not a float tensor"),
                  "%s: '%s' (%s) as F32 refused: %s", what, ti->name, ti->dtype, ddct_DCtx_getErrorMessage(d));
            continue;
        }
        CHECK(nf == t->nelem * 4, "%s: '%s' F32 bytes", what, ti->name);
        float *f = malloc(nf), *want = malloc(nf);
        ddct_to_f32(t->dtype, t->data, (size_t)t->nelem, want);
        rc = ddct_DCtx_decodeTensor(d, i, f, nf, DDCT_AS_F32);
        CHECK(rc == DDCT_OK && !memcmp(f, want, nf), "%s: '%s' as F32: %s", what, ti->name,
              ddct_DCtx_getErrorMessage(d));
        free(f);
        free(want);
    }
    float x;
    CHECK(ddct_DCtx_decodeTensor(d, NT, &x, sizeof x, DDCT_AS_STORED) == DDCT_ERR_PARAM, "%s: index out of range",
          what);
    CHECK(ddct_Info_find(info, "no.such.tensor") == DDCT_NOT_FOUND, "%s: unknown name", what);
}

int main(void)
{
    static char dir[256];
    if (tu_tmpdir(dir, sizeof dir, "tensor_api")) return 1;
    enum { BASE, FT, OUT, REB, WRONG, NPATH };
    /* the fine-tune named as compressTensors names it, so both .ddct record the same layout */
    static const char *const pn[NPATH] = {"base.safetensors", "model.safetensors", "m.ddct", "r.safetensors",
                                          "wrong.safetensors"};
    char path[NPATH][300];
    for (int k = 0; k < NPATH; k++) snprintf(path[k], sizeof path[k], "%s/%s", dir, pn[k]);
    CHECK(write_model(path[BASE], 0) == 0 && write_model(path[FT], 1) == 0 && write_model(path[WRONG], 2) == 0,
          "inputs");
    ddct_params p;
    ddct_params_default(&p);
    ddct_CCtx *c = ddct_createCCtx();
    CHECK(ddct_compressFiles(c, path[BASE], path[FT], path[OUT], &p, 1) == DDCT_OK, "compress: %s",
          ddct_CCtx_getErrorMessage(c));
    ddct_freeCCtx(c);
    ddct_DCtx *d = ddct_createDCtx();
    CHECK(ddct_decompressFile(d, path[BASE], path[OUT], path[REB], 1) == DDCT_OK, "decompress: %s",
          ddct_DCtx_getErrorMessage(d));
    ddct_st_file *rebuilt = NULL;
    ddct_err e;
    CHECK(ddct_st_open(&rebuilt, path[REB], &e) == 0, "rebuilt file: %s", e.msg);

    float x;
    CHECK(ddct_DCtx_info(d) == NULL && ddct_DCtx_decodeTensor(d, 0, &x, sizeof x, DDCT_AS_F32) == DDCT_ERR_PARAM,
          "nothing open: refused");
    /* from the file, on 1 and 4 threads */
    for (int th = 1; th <= 4; th += 3) {
        ddct_DCtx_setThreads(d, th);
        CHECK(ddct_DCtx_open(d, path[OUT], path[BASE]) == DDCT_OK, "open: %s", ddct_DCtx_getErrorMessage(d));
        if (rebuilt) check_all(d, rebuilt, th == 1 ? "file, -T 1" : "file, -T 4");
    }
    /* from memory */
    long n = 0;
    uint8_t *mem = tu_slurp(path[OUT], &n);
    if (mem && n > 0) {
        CHECK(ddct_DCtx_openBuffer(d, mem, (size_t)n, path[BASE]) == DDCT_OK, "openBuffer: %s",
              ddct_DCtx_getErrorMessage(d));
        if (rebuilt) check_all(d, rebuilt, "memory");
        CHECK(ddct_DCtx_openBuffer(d, mem, (size_t)n / 2, path[BASE]) != DDCT_OK && ddct_DCtx_info(d) == NULL,
              "half a .ddct in memory refused");
    } else {
        CHECK(0, "reading %s", path[OUT]);
    }
    /* a base whose F16 matrix differs: that tensor fails, named; the others decode */
    CHECK(ddct_DCtx_open(d, path[OUT], path[WRONG]) == DDCT_OK, "open against another base: %s",
          ddct_DCtx_getErrorMessage(d));
    const ddct_Info *info = ddct_DCtx_info(d);
    for (size_t i = 0; info && i < ddct_Info_count(info); i++) {
        const char *name = ddct_Info_tensor(info, i)->name;
        uint64_t nb = ddct_DCtx_tensorBytes(d, i, DDCT_AS_STORED);
        void *buf = malloc(nb);
        ddct_ErrorCode rc = ddct_DCtx_decodeTensor(d, i, buf, nb, DDCT_AS_STORED);
        if (!strcmp(name, names[2]))
            CHECK(rc == DDCT_ERR_BASE_MISMATCH && strstr(ddct_DCtx_getErrorMessage(d), name), "wrong base: %s: %s",
                  ddct_getErrorName(rc), ddct_DCtx_getErrorMessage(d));
        else
            CHECK(rc == DDCT_OK, "wrong base, '%s' (same there): %s", name, ddct_DCtx_getErrorMessage(d));
        free(buf);
    }
    ddct_DCtx_close(d);
    CHECK(ddct_DCtx_info(d) == NULL, "closed");
    char out2[320];
    snprintf(out2, sizeof out2, "%s.mem", path[OUT]);
    from_memory(path[BASE], path[FT], path[OUT], out2);
    unlink(out2);
    ddct_freeDCtx(d);
    ddct_st_close(rebuilt);
    free(mem);
    for (int k = 0; k < NPATH; k++) unlink(path[k]);
    if (rmdir(dir) != 0) fprintf(stderr, "note: %s not empty, left in place\n", dir);
    return TEST_SUMMARY();
}
