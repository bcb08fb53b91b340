/*
 * test_base.c — a base opened once for many fine-tunes (ddct_openBase, deltadct.h).
 *
 * Two fine-tunes of one base (lossy BF16 and F32 matrices, a lossless norm and an I64 tensor),
 * compressed through one ddct_Base with the default method and with the patch method: each file
 * byte-identical to ddct_compressFiles's, and every base tensor fingerprinted once over both
 * compressions and the verifications that follow (ddct_verifyWithBase, quick and full). A base
 * with one value changed fails the verification naming the tensor; a missing base, no handle and
 * an output that is the base's file are refused with messages.
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

#define NT 4
static const char *const names[NT] = {"model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.weight",
                                      "model.norm.weight", "position_ids"};
static const ddct_dtype dts[NT] = {DDCT_DT_BF16, DDCT_DT_F32, DDCT_DT_BF16, DDCT_DT_I64};
static uint64_t shapes[NT][2] = {{96, 160}, {64, 128}, {160, 1}, {64, 1}};
static const int ndims[NT] = {2, 2, 1, 1};

/* kind 0: the base; 1, 2: two fine-tunes of it; 3: the base with one value changed */
static int write_model(const char *path, int kind)
{
    ddct_st_entry ents[NT];
    for (int t = 0; t < NT; t++) ents[t] = (ddct_st_entry){names[t], dts[t], ndims[t], shapes[t]};
    ddct_st_writer *w;
    ddct_err e;
    if (ddct_stw_open(&w, path, 1, NULL, ents, NT, NULL, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
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
            tu_rng = 1000003ull * (uint64_t)t + k; /* the base's value, then the fine-tune's delta */
            double x = 0.02 * tu_normal();
            if (kind == 1 || kind == 2) {
                tu_rng = 7919ull * (uint64_t)kind + 1000003ull * (uint64_t)t + k + (1ull << 40);
                x += 0.002 * tu_normal();
            }
            float f = (float)x;
            ddct_from_f32(dts[t], &f, 1, v + k * es);
        }
        if (kind == 3 && t == 1) v[5] ^= 1;
        int rc = ddct_stw_write(w, v, n * es, &e);
        free(v);
        if (rc) return ddct_stw_abort(w), -1;
    }
    return ddct_stw_commit(w, &e) ? -1 : 0;
}

int main(void)
{
    char dir[256], base[300], wrong[300], ft[3][300], want[3][2][300], got[300];
    if (tu_tmpdir(dir, sizeof dir, "base")) return 1;
    snprintf(base, sizeof base, "%s/base.safetensors", dir);
    snprintf(wrong, sizeof wrong, "%s/wrong.safetensors", dir);
    snprintf(got, sizeof got, "%s/got.ddct", dir);
    int bad = write_model(base, 0) || write_model(wrong, 3);
    for (int k = 1; k <= 2; k++) {
        snprintf(ft[k], sizeof ft[k], "%s/ft%d.safetensors", dir, k);
        bad |= write_model(ft[k], k);
    }
    CHECK(!bad, "models written");
    if (bad) return TEST_SUMMARY();
    ddct_params par[2];
    ddct_params_default(&par[0]);
    ddct_params_default(&par[1]);
    par[1].method = DDCT_METHOD_PATCH;
    for (int k = 1; k <= 2; k++)
        for (int m = 0; m < 2; m++) {
            snprintf(want[k][m], sizeof want[k][m], "%s/want%d_%d.ddct", dir, k, m);
            ddct_CCtx *c = ddct_createCCtx();
            CHECK(ddct_compressFiles(c, base, ft[k], want[k][m], &par[m], 0) == DDCT_OK, "compressFiles: %s",
                  ddct_CCtx_getErrorMessage(c));
            ddct_freeCCtx(c);
        }

    ddct_Base *b = NULL;
    char err[512];
    CHECK(ddct_openBase(&b, base, err, sizeof err) == DDCT_OK && b, "openBase: %s", err);
    if (!b) return TEST_SUMMARY();
    CHECK(!strcmp(ddct_Base_path(b), base) && ddct_Base_fingerprinted(b) == 0, "nothing fingerprinted when opened");
    ddct_CCtx *c = ddct_createCCtx();
    ddct_DCtx *d = ddct_createDCtx();
    for (int k = 1; k <= 2; k++)
        for (int m = 0; m < 2; m++) {
            par[m].threads = 2;
            CHECK(ddct_compressWithBase(c, b, ft[k], got, &par[m], 1) == DDCT_OK, "compressWithBase: %s",
                  ddct_CCtx_getErrorMessage(c));
            CHECK(tu_same_file(got, want[k][m]), "ft%d method %d: the bytes of compressFiles", k, m);
            CHECK(ddct_Base_fingerprinted(b) == NT, "every base tensor fingerprinted once: %zu",
                  ddct_Base_fingerprinted(b));
            CHECK(ddct_verifyWithBase(d, want[k][m], b, 1) == DDCT_OK, "quick verify: %s", ddct_DCtx_getErrorMessage(d));
            CHECK(ddct_verifyWithBase(d, want[k][m], b, 0) == DDCT_OK, "full verify: %s", ddct_DCtx_getErrorMessage(d));
        }
    CHECK(ddct_Base_fingerprinted(b) == NT, "still once each after 4 compressions and 8 verifications: %zu",
          ddct_Base_fingerprinted(b));

    /* refusals */
    CHECK(ddct_compressWithBase(c, b, ft[1], base, NULL, 1) == DDCT_ERR_EXISTS, "output = the base's file: %s",
          ddct_CCtx_getErrorMessage(c));
    CHECK(ddct_compressWithBase(c, NULL, ft[1], got, NULL, 1) == DDCT_ERR_PARAM, "no base handle");
    CHECK(ddct_verifyWithBase(d, got, NULL, 1) == DDCT_ERR_PARAM, "no base handle (verify)");
    ddct_Base *w = NULL;
    CHECK(ddct_openBase(&w, wrong, err, sizeof err) == DDCT_OK, "open the wrong base: %s", err);
    CHECK(w && ddct_verifyWithBase(d, want[1][0], w, 1) == DDCT_ERR_BASE_MISMATCH &&
              strstr(ddct_DCtx_getErrorMessage(d), names[1]),
          "the wrong base, named: %s", ddct_DCtx_getErrorMessage(d));
    ddct_freeBase(w);
    char missing[320];
    snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
    w = (ddct_Base *)1;
    CHECK(ddct_openBase(&w, missing, err, sizeof err) == DDCT_ERR_IO && !w && strstr(err, "missing.safetensors"),
          "a missing base: %s", err);
    ddct_freeBase(NULL);
    ddct_freeCCtx(c);
    ddct_freeDCtx(d);
    ddct_freeBase(b);

    unlink(base);
    unlink(wrong);
    unlink(got);
    for (int k = 1; k <= 2; k++) {
        unlink(ft[k]);
        for (int m = 0; m < 2; m++) unlink(want[k][m]);
    }
    rmdir(dir);
    return TEST_SUMMARY();
}
