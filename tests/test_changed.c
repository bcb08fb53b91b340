/*
 * test_changed.c — inputs that change while they are read: a file truncated after it was
 * mapped must give an I/O error "input changed while reading: FILE", never a SIGBUS (reading a
 * mapping past the end of its file). The mapping, the safetensors reader, and compress /
 * decompress through the library, each input truncated from the progress callback after the
 * first tensor (deterministic: the callback runs between two tensors).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mapfile.h"
#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[512];

static const char *tpath(const char *name) { return tu_path(g_dir, name); }

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Nothing but the named files in the test directory (no output, no temporary). */
static int only(const char *const *names)
{
    DIR *d = opendir(g_dir);
    struct dirent *de;
    int ok = d != NULL;
    while (ok && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int known = 0;
        for (size_t i = 0; names[i]; i++) known |= !strcmp(de->d_name, names[i]);
        if (!known) fprintf(stderr, "left behind: %s\n", de->d_name);
        ok = known;
    }
    if (d) closedir(d);
    return ok;
}

/* A model of 6 tensors: 4 lossy-eligible 64 x 64 F32 matrices, a norm and an I64 buffer; seed 0
 * is the base, others fine-tunes (the norm and the buffer equal to the base's: "same" records). */
#define NT 6
static void write_model(const char *path, unsigned seed)
{
    static const char *const names[NT] = {"layers.0.q.weight", "layers.0.k.weight", "model.norm.weight",
                                          "layers.1.q.weight", "layers.1.k.weight", "position_ids"};
    uint64_t mat[2] = {64, 64}, vec[1] = {64}, ids[1] = {16};
    ddct_st_entry ents[NT];
    for (int i = 0; i < NT; i++) {
        int is_vec = i == 2, is_ids = i == 5;
        ents[i] = (ddct_st_entry){.name = names[i], .dtype = is_ids ? DDCT_DT_I64 : DDCT_DT_F32,
                                  .ndim = is_vec || is_ids ? 1 : 2, .shape = is_ids ? ids : is_vec ? vec : mat};
    }
    ddct_err e;
    ddct_st_writer *w = NULL;
    int rc = ddct_stw_open(&w, path, 1, NULL, ents, NT, NULL, &e);
    tu_rng = 1234;
    for (int i = 0; !rc && i < NT; i++) {
        if (i == 5) {
            int64_t v[16];
            for (int k = 0; k < 16; k++) v[k] = k;
            rc = ddct_stw_write(w, v, sizeof v, &e);
            continue;
        }
        size_t n = i == 2 ? 64 : 64 * 64;
        float *x = malloc(n * sizeof *x);
        for (size_t k = 0; k < n; k++) x[k] = (float)(0.02 * tu_normal());
        unsigned long long save = tu_rng;
        tu_rng = seed * 7919ull + (unsigned long long)i;
        for (size_t k = 0; seed && i != 2 && k < n; k++) x[k] += (float)(0.002 * tu_normal());
        tu_rng = save;
        rc = ddct_stw_write(w, x, n * sizeof *x, &e);
        free(x);
    }
    if (!rc) rc = ddct_stw_commit(w, &e);
    else ddct_stw_abort(w);
    CHECK(rc == 0, "write %s: %s", path, e.msg);
}

/* ---------------------------------------------------------------- the reading functions */

static void test_map_and_reader(void)
{
    const char *p = tpath("base.safetensors");
    write_model(p, 0);
    uint64_t size = file_size(p);
    ddct_err e;
    ddct_map m;
    CHECK(ddct_map_open(&m, p, &e) == 0, "map: %s", e.msg);
    uint8_t buf[256];
    CHECK(ddct_map_pread(&m, size - sizeof buf, buf, sizeof buf) == 0, "pread of the intact file");
    CHECK(ddct_map_check(&m, NULL) == 0, "intact file reported as changed");
    ddct_st_file *f = NULL;
    CHECK(ddct_st_open(&f, p, &e) == 0, "open: %s", e.msg);
    const ddct_st_tensor *last = f ? ddct_st_get(f, NT - 2) : NULL;
    CHECK(last && last->file == f, "tensor's file");
    CHECK(truncate(p, (off_t)(size / 2)) == 0, "truncate");
    uint64_t now = 0;
    CHECK(ddct_map_pread(&m, size - sizeof buf, buf, sizeof buf) == DDCT_MAP_CHANGED, "pread past the new end");
    CHECK(ddct_map_pread(&m, 0, buf, 16) == 0, "pread before the new end");
    CHECK(ddct_map_check(&m, &now) == DDCT_MAP_CHANGED && now == size / 2, "check: %llu", (unsigned long long)now);
    if (last) {
        ddct_err_clear(&e);
        int rc = ddct_st_pread(f, last, 0, buf, sizeof buf, &e);
        CHECK(rc == DDCT_ERR_IO && strstr(e.msg, "input changed while reading") && strstr(e.msg, p),
              "st_pread: %d %s", rc, e.msg);
        ddct_err_clear(&e);
        rc = ddct_st_check(f, &e);
        CHECK(rc == DDCT_ERR_IO && strstr(e.msg, "input changed while reading") && strstr(e.msg, p),
              "st_check: %d %s", rc, e.msg);
    }
    ddct_st_close(f);
    ddct_map_close(&m);
    unlink(p);
}

/* ---------------------------------------------------------------- through the pipeline */

typedef struct {
    const char *victim;
    const char *after; /* the tensor after which to cut (NULL: the first) */
    int done;
} truncator;

/* After that tensor: cut the victim to 64 bytes (what is left of any tensor is gone). */
static int truncate_after(void *opaque, size_t done, size_t total, uint64_t db, uint64_t tb, const char *name)
{
    truncator *t = opaque;
    (void)done, (void)total, (void)db, (void)tb;
    if (t->done || (t->after && strcmp(name, t->after))) return 0;
    t->done = 1;
    if (truncate(t->victim, 64) != 0) CHECK(0, "truncate %s", t->victim);
    return 0;
}

static void test_compress(int method, int threads)
{
    const char *b = tpath("base.safetensors"), *f = tpath("ft.safetensors"), *o = tpath("out.ddct");
    write_model(b, 0);
    write_model(f, 1);
    ddct_params p;
    ddct_params_default(&p);
    p.method = (ddct_method)method;
    p.patch = 8;
    p.threads = threads;
    if (method == DDCT_METHOD_SVD) p.bpp = 2;
    ddct_CCtx *c = ddct_createCCtx();
    truncator t = {f, NULL, 0};
    ddct_CCtx_setProgress(c, truncate_after, &t);
    ddct_ErrorCode rc = ddct_compressFiles(c, b, f, o, &p, 0);
    const char *msg = ddct_CCtx_getErrorMessage(c);
    CHECK(rc == DDCT_ERR_IO && strstr(msg, "input changed while reading") && strstr(msg, f),
          "compress (method %d, %d threads), fine-tune truncated: %d %s", method, threads, (int)rc, msg);
    const char *const left[] = {"base.safetensors", "ft.safetensors", NULL};
    CHECK(only(left), "compress left files behind");
    /* the base truncated instead */
    write_model(f, 1);
    t = (truncator){b, NULL, 0};
    rc = ddct_compressFiles(c, b, f, o, &p, 0);
    msg = ddct_CCtx_getErrorMessage(c);
    CHECK(rc == DDCT_ERR_IO && strstr(msg, "input changed while reading") && strstr(msg, b),
          "compress (method %d, %d threads), base truncated: %d %s", method, threads, (int)rc, msg);
    CHECK(only(left), "compress left files behind");
    ddct_freeCCtx(c);
    unlink(b);
    unlink(f);
}

static void test_decompress(int threads)
{
    const char *b = tpath("base.safetensors"), *f = tpath("ft.safetensors"), *d = tpath("m.ddct"),
               *o = tpath("r.safetensors");
    const char *const left[] = {"base.safetensors", "ft.safetensors", "m.ddct", NULL};
    ddct_params p;
    ddct_params_default(&p);
    p.patch = 8;
    /* the base before a lossy tensor, the base before a "same" one, the .ddct */
    for (int victim = 0; victim < 3; victim++) {
        write_model(b, 0);
        write_model(f, 1);
        ddct_CCtx *c = ddct_createCCtx();
        CHECK(ddct_compressFiles(c, b, f, d, &p, 1) == DDCT_OK, "compress: %s", ddct_CCtx_getErrorMessage(c));
        ddct_freeCCtx(c);
        ddct_DCtx *x = ddct_createDCtx();
        ddct_DCtx_setThreads(x, threads);
        truncator t = {victim == 2 ? d : b, victim == 1 ? "layers.0.k.weight" : NULL, 0};
        ddct_DCtx_setProgress(x, truncate_after, &t);
        ddct_ErrorCode rc = ddct_decompressFile(x, b, d, o, 0);
        const char *msg = ddct_DCtx_getErrorMessage(x);
        CHECK(rc == DDCT_ERR_IO && strstr(msg, "input changed while reading") && strstr(msg, t.victim),
              "decompress (%d threads), %s truncated: %d %s", threads, t.victim, (int)rc, msg);
        CHECK(only(left), "decompress left files behind");
        ddct_freeDCtx(x);
    }
    unlink(b);
    unlink(f);
    unlink(d);
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "changed")) return 1;
    test_map_and_reader();
    for (int threads = 1; threads <= 2; threads++) {
        test_compress(DDCT_METHOD_PATCH, threads);
        test_compress(DDCT_METHOD_BITDELTA, threads);
        test_decompress(threads);
    }
    rmdir(g_dir);
    return TEST_SUMMARY();
}
