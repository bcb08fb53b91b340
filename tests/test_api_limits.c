/*
 * test_api_limits.c — the API's thread settings out of range, and evaluation of NaN weights.
 *
 * ddct_params.threads outside 0..DDCT_MAX_THREADS is refused by ddct_compressFiles
 * (DDCT_ERR_PARAM, nothing written); ddct_DCtx_setThreads clamps (it returns nothing), so a huge
 * or negative count decompresses, verifies and evaluates like any other (-T 100000 used to reach
 * OpenMP's team setup and crash). ddct_evaluate against a fine-tune holding a NaN reports that
 * tensor's sums as NaN, not as a perfect rebuild. Parameters a program fills in directly are
 * checked as the CLI checks them (rescale, bpp, error, rd measure, lowfreq_k, ...), and
 * ddct_params_set takes every option by name; a progress callback that asks to stop gives
 * DDCT_ERR_CANCELLED and leaves no output. The zstd-style parameters: every id has bounds, a set
 * outside them is refused naming the option, the CCtx's own parameters compress exactly as the
 * same ddct_params given to ddct_compressFiles.
 */
#include <math.h>
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
#define ROWS 32
#define COLS 32
#define NT 4 /* several tensors: the base check and the decoders run parallel loops over them */

/* NT F32 tensors "layers.K.w" (ROWS x COLS): base values, plus a small delta when finetuned;
 * nan_at >= 0 puts a NaN at that index of the last tensor. */
static int write_model(const char *path, int finetuned, int nan_at)
{
    uint64_t shape[2] = {ROWS, COLS};
    static const char *const names[NT] = {"layers.0.w", "layers.1.w", "layers.2.w", "layers.3.w"};
    ddct_st_entry ents[NT];
    for (int t = 0; t < NT; t++) ents[t] = (ddct_st_entry){names[t], DDCT_DT_F32, 2, shape};
    ddct_st_writer *w;
    ddct_err e;
    if (ddct_stw_open(&w, path, 1, NULL, ents, NT, NULL, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    tu_rng = 777;
    for (int t = 0; t < NT; t++) {
        float v[ROWS * COLS];
        for (int k = 0; k < ROWS * COLS; k++) {
            double b = 0.02 * tu_normal(), d = 0.003 * tu_normal();
            v[k] = (float)(b + (finetuned ? d : 0));
        }
        if (nan_at >= 0 && t == NT - 1) v[nan_at] = NAN;
        if (ddct_stw_write(w, v, sizeof v, &e)) return ddct_stw_abort(w), -1;
    }
    return ddct_stw_commit(w, &e) ? -1 : 0;
}

typedef struct {
    int calls;
    ddct_tensor_eval last;
} eval_seen;

static int stop_at_two(void *opaque, size_t done, size_t total, uint64_t bd, uint64_t bt, const char *name)
{
    (void)total, (void)bd, (void)bt, (void)name;
    ++*(int *)opaque;
    return done >= 2;
}

/* ddct_cParameter: bounds, checked sets, and ddct_CCtx_compress = ddct_compressFiles. */
static void zstd_style(const char *base, const char *ft, const char *out, const char *out2)
{
    for (int id = DDCT_c_method; id <= DDCT_c_dwtKeep; id++) {
        ddct_bounds b = ddct_cParam_getBounds((ddct_cParameter)id);
        const char *name = ddct_cParam_name((ddct_cParameter)id);
        CHECK(b.error == DDCT_OK && name && b.lowerBound <= b.upperBound, "bounds of %d", id);
        ddct_params p;
        ddct_params_default(&p);
        double v = -1;
        char err[256] = "";
        CHECK(ddct_params_getParameter(&p, (ddct_cParameter)id, &v) == DDCT_OK, "get %s", name);
        /* the default is within bounds; just past the upper bound is not, nor NaN */
        CHECK(ddct_params_setParameter(&p, (ddct_cParameter)id, v, err, sizeof err) == DDCT_OK, "default %s: %s", name,
              err);
        double past = b.upperBound + (b.integer ? 1 : 0.5);
        CHECK(ddct_params_setParameter(&p, (ddct_cParameter)id, past, err, sizeof err) == DDCT_ERR_PARAM &&
                  strstr(err, name),
              "%s = %g refused: %s", name, past, err);
        CHECK(ddct_params_setParameter(&p, (ddct_cParameter)id, NAN, err, sizeof err) == DDCT_ERR_PARAM, "%s NaN", name);
        if (b.integer)
            CHECK(ddct_params_setParameter(&p, (ddct_cParameter)id, b.lowerBound + 0.5, err, sizeof err) ==
                      DDCT_ERR_PARAM,
                  "%s: a fraction refused", name);
        double got = -1;
        CHECK(ddct_params_getParameter(&p, (ddct_cParameter)id, &got) == DDCT_OK && got == v, "%s unchanged", name);
    }
    CHECK(ddct_cParam_getBounds((ddct_cParameter)999).error == DDCT_ERR_PARAM && !ddct_cParam_name((ddct_cParameter)999),
          "unknown id");
    ddct_CCtx *c = ddct_createCCtx();
    CHECK(ddct_CCtx_setParameter(c, DDCT_c_patch, 1) == DDCT_ERR_PARAM &&
              strstr(ddct_CCtx_getErrorMessage(c), "--patch"),
          "CCtx patch 1: %s", ddct_CCtx_getErrorMessage(c));
    CHECK(ddct_CCtx_setParameter(c, DDCT_c_bpp, 0) == DDCT_OK, "bpp 0 (unset)");
    CHECK(ddct_CCtx_setStrategy(c, "4:0.5") == DDCT_ERR_PARAM, "a strategy not summing to 1");
    CHECK(ddct_CCtx_setSelection(c, "(", NULL) == DDCT_ERR_PARAM, "a bad regex");
    /* the CCtx's parameters compress as the same struct does */
    CHECK(ddct_CCtx_setParameter(c, DDCT_c_method, DDCT_METHOD_PATCH) == DDCT_OK &&
              ddct_CCtx_setParameter(c, DDCT_c_patch, 8) == DDCT_OK && ddct_CCtx_setStrategy(c, "4:0.25,2:0.25,0:0.5") == DDCT_OK &&
              ddct_CCtx_setSelection(c, NULL, "layers\\.3") == DDCT_OK && ddct_CCtx_setParameter(c, DDCT_c_threads, 2) == DDCT_OK,
          "sets: %s", ddct_CCtx_getErrorMessage(c));
    CHECK(ddct_CCtx_compress(c, base, ft, out, 1) == DDCT_OK, "CCtx_compress: %s", ddct_CCtx_getErrorMessage(c));
    ddct_params p;
    ddct_params_default(&p);
    char err[256];
    CHECK(ddct_params_set(&p, "method", "patch", err, sizeof err) == DDCT_OK &&
              ddct_params_set(&p, "patch", "8", err, sizeof err) == DDCT_OK &&
              ddct_params_set(&p, "bits", "4:0.25,2:0.25,0:0.5", err, sizeof err) == DDCT_OK,
          "params_set: %s", err);
    p.bpp = 0;
    p.threads = 2;
    p.exclude_regex = "layers\\.3";
    ddct_CCtx *c2 = ddct_createCCtx();
    CHECK(ddct_compressFiles(c2, base, ft, out2, &p, 1) == DDCT_OK, "compressFiles: %s", ddct_CCtx_getErrorMessage(c2));
    CHECK(tu_same_file(out, out2), "CCtx parameters = the same struct, byte for byte");
    ddct_CCtx_resetParameters(c);
    double m = -1;
    CHECK(ddct_CCtx_getParameter(c, DDCT_c_method, &m) == DDCT_OK && m == DDCT_METHOD_RD, "reset to the defaults");
    ddct_freeCCtx(c);
    ddct_freeCCtx(c2);
    unlink(out2);
}

/* Struct fields out of their ranges, set by a program directly: refused, nothing written. */
static void bad_fields(const char *base, const char *ft, const char *out)
{
    for (int k = 0; k < 9; k++) {
        ddct_params p;
        ddct_params_default(&p);
        switch (k) {
        case 0: p.rescale = 7; break;
        case 1: p.bpp = -1; break;
        case 2: p.bpp = 1e300; break;
        case 3: p.error = 1.5; break;
        case 4: p.error = -0.1; break;
        case 5: p.rd_measure = (ddct_rd_measure)9; break;
        case 6: p.lowfreq_k = 0; break;
        case 7: p.bpp = NAN; break;
        case 8: p.zstd_level = 23; break;
        }
        ddct_CCtx *c = ddct_createCCtx();
        ddct_ErrorCode rc = ddct_compressFiles(c, base, ft, out, &p, 1);
        CHECK(rc == DDCT_ERR_PARAM && access(out, F_OK) != 0, "bad field %d: %s (%s)", k, ddct_getErrorName(rc),
              ddct_CCtx_getErrorMessage(c));
        ddct_freeCCtx(c);
    }
    /* by name: every option, checked */
    static const char *const good[][2] = {{"method", "patch"}, {"rescale", "auto"}, {"rescale", "off"},
                                          {"bpp", "0.5"},      {"error", "0.2"},    {"rd-measure", "rel"},
                                          {"lowfreq-k", "8"},  {"zstd-level", "0"}, {"bits", "4:0.5,0:0.5"}};
    static const char *const bad[][2] = {{"rescale", "maybe"}, {"bpp", "0"},        {"error", "1"},
                                         {"patch", "1"},       {"no-such", "1"},    {"threads", "-1"}};
    ddct_params p;
    ddct_params_default(&p);
    char err[256];
    for (size_t k = 0; k < sizeof good / sizeof *good; k++)
        CHECK(ddct_params_set(&p, good[k][0], good[k][1], err, sizeof err) == DDCT_OK, "set %s=%s: %s", good[k][0],
              good[k][1], err);
    CHECK(p.rescale == 0 && p.bpp == 0.5 && p.rd_measure == DDCT_RD_MEASURE_REL, "values set");
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = 0;
        CHECK(ddct_params_set(&p, bad[k][0], bad[k][1], err, sizeof err) == DDCT_ERR_PARAM && err[0],
              "set %s=%s refused", bad[k][0], bad[k][1]);
    }
}

static void on_eval(void *opaque, const ddct_tensor_eval *ev)
{
    eval_seen *s = opaque;
    s->calls++;
    s->last = *ev;
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "limits")) return 1;
    char base[512], ft[512], ftnan[512], out[512], bad[512], reb[512];
    snprintf(base, sizeof base, "%s/base.safetensors", g_dir);
    snprintf(ft, sizeof ft, "%s/ft.safetensors", g_dir);
    snprintf(ftnan, sizeof ftnan, "%s/ftnan.safetensors", g_dir);
    snprintf(out, sizeof out, "%s/m.ddct", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.ddct", g_dir);
    snprintf(reb, sizeof reb, "%s/r.safetensors", g_dir);
    CHECK(write_model(base, 0, -1) == 0 && write_model(ft, 1, -1) == 0 && write_model(ftnan, 1, 5) == 0, "inputs");

    /* compress: threads out of range refused, nothing written */
    static const int bad_threads[] = {-1, DDCT_MAX_THREADS + 1, 100000, INT32_MIN};
    for (size_t k = 0; k < sizeof bad_threads / sizeof *bad_threads; k++) {
        ddct_params p;
        ddct_params_default(&p);
        p.method = DDCT_METHOD_PATCH;
        p.threads = bad_threads[k];
        ddct_CCtx *c = ddct_createCCtx();
        ddct_ErrorCode rc = ddct_compressFiles(c, base, ft, bad, &p, 1);
        CHECK(rc == DDCT_ERR_PARAM, "threads %d: %s", bad_threads[k], ddct_getErrorName(rc));
        CHECK(access(bad, F_OK) != 0, "threads %d: output written", bad_threads[k]);
        ddct_freeCCtx(c);
    }
    ddct_params p;
    ddct_params_default(&p);
    p.method = DDCT_METHOD_PATCH;
    p.threads = 2;
    ddct_CCtx *c = ddct_createCCtx();
    CHECK(ddct_compressFiles(c, base, ft, out, &p, 1) == DDCT_OK, "compress: %s", ddct_CCtx_getErrorMessage(c));
    ddct_freeCCtx(c);

    /* decompress, verify, evaluate: any thread count, clamped */
    static const int any_threads[] = {-5, 0, 1, 3, DDCT_MAX_THREADS, DDCT_MAX_THREADS + 1, 100000, INT32_MAX};
    for (size_t k = 0; k < sizeof any_threads / sizeof *any_threads; k++) {
        ddct_DCtx *d = ddct_createDCtx();
        ddct_DCtx_setThreads(d, any_threads[k]);
        CHECK(ddct_verifyFile(d, out, base) == DDCT_OK, "verify -T %d: %s", any_threads[k], ddct_DCtx_getErrorMessage(d));
        CHECK(ddct_decompressFile(d, base, out, reb, 1) == DDCT_OK, "decompress -T %d: %s", any_threads[k],
              ddct_DCtx_getErrorMessage(d));
        eval_seen s = {0};
        CHECK(ddct_evaluate(d, base, ft, out, on_eval, &s) == DDCT_OK && s.calls == NT, "evaluate -T %d: %s",
              any_threads[k], ddct_DCtx_getErrorMessage(d));
        CHECK(isfinite(s.last.err2) && s.last.ref2 > 0 && s.last.err2 > 0, "evaluate -T %d: err2 %g ref2 %g",
              any_threads[k], s.last.err2, s.last.ref2);
        ddct_freeDCtx(d);
    }

    bad_fields(base, ft, bad);
    {
        char out2[600];
        snprintf(out2, sizeof out2, "%s.2", out);
        zstd_style(base, ft, bad, out2);
        unlink(bad);
    }
    /* cancelled from the progress callback: its own code, no output */
    {
        int calls = 0;
        ddct_params cp;
        ddct_params_default(&cp);
        ddct_CCtx *cc = ddct_createCCtx();
        ddct_CCtx_setProgress(cc, stop_at_two, &calls);
        ddct_ErrorCode rc = ddct_compressFiles(cc, base, ft, bad, &cp, 1);
        CHECK(rc == DDCT_ERR_CANCELLED && calls == 2 && access(bad, F_OK) != 0, "compress cancelled: %s, %d calls",
              ddct_getErrorName(rc), calls);
        ddct_freeCCtx(cc);
        ddct_DCtx *dc = ddct_createDCtx();
        calls = 0;
        ddct_DCtx_setProgress(dc, stop_at_two, &calls);
        unlink(reb);
        rc = ddct_decompressFile(dc, base, out, reb, 1);
        CHECK(rc == DDCT_ERR_CANCELLED && access(reb, F_OK) != 0, "decompress cancelled: %s", ddct_getErrorName(rc));
        CHECK(ddct_verifyFile(dc, out, base) == DDCT_ERR_CANCELLED, "verify cancelled");
        CHECK(!strcmp(ddct_getErrorName(DDCT_ERR_CANCELLED), "cancelled"), "its name");
        ddct_freeDCtx(dc);
    }
    /* a NaN in the fine-tune: the sums are NaN, and so is the largest error */
    ddct_DCtx *d = ddct_createDCtx();
    eval_seen s = {0};
    CHECK(ddct_evaluate(d, base, ftnan, out, on_eval, &s) == DDCT_OK && s.calls == NT, "evaluate NaN: %s",
          ddct_DCtx_getErrorMessage(d));
    CHECK(isnan(s.last.err2) && isnan(s.last.ref2) && isnan(s.last.max_abs_err), "NaN: err2 %g ref2 %g max %g",
          s.last.err2, s.last.ref2, s.last.max_abs_err);
    ddct_freeDCtx(d);

    unlink(base);
    unlink(ft);
    unlink(ftnan);
    unlink(out);
    unlink(reb);
    if (rmdir(g_dir) != 0) fprintf(stderr, "note: %s not empty, left in place\n", g_dir);
    return TEST_SUMMARY();
}
