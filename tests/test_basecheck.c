/*
 * test_basecheck.c — a wrong base is found wherever it differs, and nothing is committed.
 *
 * A base tensor's fingerprint is checked as the decoder reads it: a lossy record's slice by slice
 * (the hashing of a slice overlapping the next one's decoding), a lossless record's chunk by chunk
 * (a framed raw record decoded on several threads). So the test changes one value of the base
 * (the first or last of a multi-slice lossy tensor, the last of a multi-chunk lossless one) and
 * expects every reader to refuse it, naming the tensor: decompress (no output left), verify with
 * the base, verify --quick (which hashes up front) and evaluate. A base tensor of another shape is
 * refused when the .ddct is opened. The right base rebuilds the same bytes on 1 and 3 threads.
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

static char g_dir[256];
/* a lossy tensor of several 4 Mi-value slices, a lossless one of several 4 MiB chunks, a norm */
#define W_ROWS 2304
#define W_COLS 2048
#define E_ROWS 2200
#define E_COLS 1024
#define N_NORM 1024

/* kind 0: the base; 1: the fine-tune; 2..4: the base with one value changed (2: the lossy
 * tensor's first, 3: its last, 4: the lossless tensor's last); 5: the lossy tensor transposed. */
static int write_model(const char *path, int kind)
{
    uint64_t ws[2] = {W_ROWS, W_COLS}, wt[2] = {W_COLS, W_ROWS}, es[2] = {E_ROWS, E_COLS}, ns[1] = {N_NORM};
    ddct_st_entry ents[3] = {{"model.embed_tokens.weight", DDCT_DT_BF16, 2, es},
                             {"model.layers.0.mlp.up_proj.weight", DDCT_DT_BF16, 2, kind == 5 ? wt : ws},
                             {"model.norm.weight", DDCT_DT_BF16, 1, ns}};
    const uint64_t n[3] = {(uint64_t)E_ROWS * E_COLS, (uint64_t)W_ROWS * W_COLS, N_NORM};
    ddct_st_writer *w;
    ddct_err e;
    if (ddct_stw_open(&w, path, 1, NULL, ents, 3, NULL, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    tu_rng = 4242;
    for (int t = 0; t < 3; t++) {
        uint16_t *v = malloc(n[t] * sizeof *v);
        if (!v) return ddct_stw_abort(w), -1;
        for (uint64_t k = 0; k < n[t]; k++) {
            double b = 0.02 * tu_normal(), d = (t == 0 && k % 97) ? 0 : 0.002 * tu_normal(); /* few embedding rows */
            v[k] = ddct_f32_to_bf16((float)(b + (kind == 1 ? d : 0)));
        }
        if ((kind == 2 && t == 1) || (kind == 3 && t == 1) || (kind == 4 && t == 0)) v[kind == 2 ? 0 : n[t] - 1] ^= 1;
        int rc = ddct_stw_write(w, v, n[t] * sizeof *v, &e);
        free(v);
        if (rc) return ddct_stw_abort(w), -1;
    }
    return ddct_stw_commit(w, &e) ? -1 : 0;
}

static void no_op(void *opaque, const ddct_tensor_eval *ev) { (void)opaque, (void)ev; }

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "basecheck")) return 1;
    enum { BASE, FT, OUT, REB, REB3, WRONG, NPATH };
    static const char *const names[NPATH] = {"base.safetensors", "ft.safetensors", "m.ddct",
                                             "r1.safetensors",   "r3.safetensors", "wrong.safetensors"};
    char path[NPATH][300];
    for (int k = 0; k < NPATH; k++) snprintf(path[k], sizeof path[k], "%s/%s", g_dir, names[k]);
    const char *base = path[BASE], *ft = path[FT], *out = path[OUT], *reb = path[REB], *reb3 = path[REB3],
               *wrong = path[WRONG];
    CHECK(write_model(base, 0) == 0 && write_model(ft, 1) == 0, "inputs");

    ddct_params p;
    ddct_params_default(&p); /* rd at 1 bit per lossy parameter; the embedding and norm lossless */
    p.threads = 2;
    ddct_CCtx *c = ddct_createCCtx();
    CHECK(ddct_compressFiles(c, base, ft, out, &p, 1) == DDCT_OK, "compress: %s", ddct_CCtx_getErrorMessage(c));
    ddct_freeCCtx(c);

    /* the right base: the same bytes on 1 and 3 threads */
    ddct_DCtx *d = ddct_createDCtx();
    ddct_DCtx_setThreads(d, 1);
    CHECK(ddct_decompressFile(d, base, out, reb, 1) == DDCT_OK, "decompress -T 1: %s", ddct_DCtx_getErrorMessage(d));
    ddct_DCtx_setThreads(d, 3);
    CHECK(ddct_decompressFile(d, base, out, reb3, 1) == DDCT_OK, "decompress -T 3: %s", ddct_DCtx_getErrorMessage(d));
    CHECK(ddct_verifyFile(d, out, base) == DDCT_OK, "verify: %s", ddct_DCtx_getErrorMessage(d));
    CHECK(tu_same_file(reb, reb3), "threads 1 and 3 rebuild the same bytes");

    static const struct {
        int kind;
        const char *tensor;
    } cases[] = {{2, "model.layers.0.mlp.up_proj.weight"},
                 {3, "model.layers.0.mlp.up_proj.weight"},
                 {4, "model.embed_tokens.weight"},
                 {5, "model.layers.0.mlp.up_proj.weight"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        CHECK(write_model(wrong, cases[k].kind) == 0, "wrong base %d", cases[k].kind);
        unlink(reb);
        for (int th = 1; th <= 3; th += 2) {
            ddct_DCtx_setThreads(d, th);
            ddct_ErrorCode rc = ddct_decompressFile(d, wrong, out, reb, 1);
            const char *msg = ddct_DCtx_getErrorMessage(d);
            CHECK(rc == DDCT_ERR_BASE_MISMATCH && strstr(msg, cases[k].tensor) && strstr(msg, "wrong base"),
                  "decompress, base %d, -T %d: %s: %s", cases[k].kind, th, ddct_getErrorName(rc), msg);
            CHECK(access(reb, F_OK) != 0, "decompress, base %d: output left", cases[k].kind);
        }
        ddct_ErrorCode rc = ddct_verifyFile(d, out, wrong);
        CHECK(rc == DDCT_ERR_BASE_MISMATCH && strstr(ddct_DCtx_getErrorMessage(d), cases[k].tensor),
              "verify, base %d: %s: %s", cases[k].kind, ddct_getErrorName(rc), ddct_DCtx_getErrorMessage(d));
        rc = ddct_verifyFileChecksums(d, out, wrong);
        CHECK(rc == DDCT_ERR_BASE_MISMATCH && strstr(ddct_DCtx_getErrorMessage(d), cases[k].tensor),
              "verify --quick, base %d: %s: %s", cases[k].kind, ddct_getErrorName(rc), ddct_DCtx_getErrorMessage(d));
        rc = ddct_evaluate(d, wrong, ft, out, no_op, NULL);
        CHECK(rc == DDCT_ERR_BASE_MISMATCH && strstr(ddct_DCtx_getErrorMessage(d), cases[k].tensor),
              "evaluate, base %d: %s: %s", cases[k].kind, ddct_getErrorName(rc), ddct_DCtx_getErrorMessage(d));
    }
    ddct_freeDCtx(d);

    for (int k = 0; k < NPATH; k++) unlink(path[k]);
    if (rmdir(g_dir) != 0) fprintf(stderr, "note: %s not empty, left in place\n", g_dir);
    return TEST_SUMMARY();
}
