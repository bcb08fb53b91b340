/*
 * test_pytorch.c — the PyTorch checkpoint pieces without torch: the ZIP writer and reader (ZIP64
 * forced, as files over 4 GiB have it), the pickle writer read back by the restricted unpickler
 * (tensors, _metadata), a whole checkpoint written by ddct_ptw_* and opened by ddct_pt_open (tied
 * names, views, offsets), and hostile bytes: every truncation of a pickle and of a checkpoint, lying
 * ZIP counts and offsets, memo and stack abuse, refused with an error, never a crash.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/ofile.h"
#include "io/pickle.h"
#include "io/pytorch.h"
#include "io/zip.h"
#include "testutil.h"

static char dir[512];

static int read_zip(const char *path, ddct_zip *z, unsigned char **p, long *n)
{
    *p = tu_slurp(path, n);
    if (!*p) return -1;
    ddct_err e = {0};
    ddct_map m = {.p = *p, .size = (uint64_t)*n, .mapped = 0, .fd = -1};
    return ddct_zip_read(z, &m, path, &e);
}

static void test_zip64(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/z64.zip", dir);
    for (int force = 0; force < 2; force++) {
        ddct_err e = {0};
        ddct_ofile *of = NULL;
        ddct_zip_writer *w = NULL;
        int rc = ddct_ofile_open(&of, path, 1, NULL, &e);
        if (!rc) rc = ddct_zipw_open(&w, of, 64, force, &e);
        const char *names[] = {"a/data.pkl", "a/data/0", "a/version"};
        const char *data[] = {"pickle-bytes", "0123456789abcdef0123456789abcdef", "3\n"};
        for (int i = 0; i < 3 && !rc; i++) {
            rc = ddct_zipw_begin(w, names[i], strlen(data[i]), &e);
            if (!rc) rc = ddct_zipw_write(w, data[i], strlen(data[i]), &e);
        }
        if (!rc) {
            rc = ddct_zipw_finish(w, &e);
            w = NULL;
        }
        if (!rc) rc = ddct_ofile_commit(of, &e);
        else ddct_ofile_abort(of);
        ddct_zipw_free(w);
        CHECK(rc == 0, "write (zip64 %d): %s", force, e.msg);
        ddct_zip z;
        unsigned char *p;
        long n;
        rc = read_zip(path, &z, &p, &n);
        CHECK(rc == 0 && z.n == 3, "read back (zip64 %d)", force);
        for (int i = 0; i < 3 && rc == 0; i++) {
            const ddct_zip_entry *en = ddct_zip_find(&z, names[i]);
            CHECK(en && en->size == strlen(data[i]) && !memcmp(p + en->data, data[i], en->size), "entry %s", names[i]);
            CHECK(en && en->data % 64 == 0, "entry %s aligned", names[i]);
        }
        /* every truncation fails cleanly */
        int clean = 1;
        for (long cut = 0; cut < n; cut++) {
            ddct_zip z2;
            ddct_err e2 = {0};
            ddct_map m = {.p = p, .size = (uint64_t)cut, .mapped = 0, .fd = -1};
            if (ddct_zip_read(&z2, &m, "cut", &e2) == 0) {
                /* a prefix can only parse if the end record is intact: never for a cut file */
                clean = 0;
            }
            ddct_zip_free(&z2);
        }
        CHECK(clean, "truncations refused (zip64 %d)", force);
        /* lying entry count: more entries than the directory can hold */
        if (!force) {
            long end = n - 22;
            p[end + 8] = p[end + 10] = 0xff; /* 255 entries */
            p[end + 9] = p[end + 11] = 0;
            ddct_zip z3;
            ddct_err e3 = {0};
            ddct_map m = {.p = p, .size = (uint64_t)n, .mapped = 0, .fd = -1};
            CHECK(ddct_zip_read(&z3, &m, "lie", &e3) == DDCT_ERR_FORMAT && strstr(e3.msg, "entries"),
                  "lying count: %s", e3.msg);
            ddct_zip_free(&z3);
        }
        ddct_zip_free(&z);
        free(p);
    }
}

static void test_pickle(void)
{
    ddct_pkl_tensor t[3] = {
        {.name = "w", .storage = "0", .dtype = DDCT_DT_F32, .storage_numel = 12, .offset = 0, .ndim = 2,
         .shape = {3, 4}, .stride = {4, 1}},
        {.name = "tied", .storage = "0", .dtype = DDCT_DT_F32, .storage_numel = 12, .offset = 0, .ndim = 2,
         .shape = {3, 4}, .stride = {4, 1}},
        {.name = "big", .storage = "1", .dtype = DDCT_DT_BF16, .storage_numel = 5000000000ull, .offset = 70000,
         .ndim = 1, .shape = {100}, .stride = {1}},
    };
    const char *state = "{\"_metadata\":{\"\":{\"version\":1},\"layer\":{\"version\":2}}}";
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_err e = {0};
    CHECK(ddct_pkl_write(&b, t, 3, state, &e) == 0, "write: %s", e.msg);
    ddct_pkl_dict d;
    int rc = ddct_pkl_read(&d, b.p, b.len, "mem", &e);
    CHECK(rc == 0 && d.n == 3, "read back: %s", e.msg);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        CHECK(!strcmp(d.t[i].name, t[i].name) && !strcmp(d.t[i].storage, t[i].storage) && d.t[i].dtype == t[i].dtype &&
                  d.t[i].storage_numel == t[i].storage_numel && d.t[i].offset == t[i].offset &&
                  d.t[i].ndim == t[i].ndim && d.t[i].shape[0] == t[i].shape[0] && d.t[i].stride[0] == t[i].stride[0],
              "tensor %zu", i);
    }
    CHECK(rc == 0 && d.state_json && !strcmp(d.state_json, state), "state %s", rc ? "" : d.state_json);
    ddct_pkl_free(&d);
    /* every truncation and every single-byte change: an error or a result, never a crash */
    int trunc_ok = 1;
    for (size_t cut = 0; cut < b.len; cut++) {
        ddct_err e2 = {0};
        if (ddct_pkl_read(&d, b.p, cut, "cut", &e2) == 0) trunc_ok = 0;
        ddct_pkl_free(&d);
    }
    CHECK(trunc_ok, "every truncation refused");
    for (size_t i = 0; i < b.len; i++) {
        uint8_t old = b.p[i];
        for (int v = 0; v < 256; v += 37) {
            b.p[i] = (uint8_t)v;
            ddct_err e2 = {0};
            if (ddct_pkl_read(&d, b.p, b.len, "flip", &e2) == 0) ddct_pkl_free(&d);
        }
        b.p[i] = old;
    }
    CHECK(1, "byte changes survived");
    ddct_buf_free(&b);
    /* hand-made abuse */
    static const struct {
        const char *what, *bytes, *want;
        size_t n;
    } bad[] = {
        {"memo get unset", "\x80\x02h\x05.", "never set", 5},
        {"memo put far", "\x80\x02}r\xff\xff\xff\x7f.", "out of range", 9},
        {"pop empty", "\x80\x02" "0.", "underflow", 4},
        {"tuple underflow", "\x80\x02\x87.", "underflow", 4},
        {"setitems no mark", "\x80\x02}u.", "MARK", 5},
        {"reduce non-global", "\x80\x02}}R.", "not a global", 6},
        {"protocol 0", "(dp0\n.", "opcode", 6},
        {"unknown opcode", "\x80\x02\xff.", "opcode 0xff", 4},
        {"string past end", "\x80\x02X\xff\xff\x00\x00ab.", "truncated", 11},
        {"not a dict", "\x80\x02]", "truncated", 3},
        {"list root", "\x80\x02].", "not a dict", 4},
        {"subprocess", "\x80\x02" "csubprocess\nPopen\n.", "subprocess.Popen' refused", 21},
        {"sparse", "\x80\x02" "ctorch._utils\n_rebuild_sparse_tensor\n.", "not supported", 40},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ddct_err e2 = {0};
        rc = ddct_pkl_read(&d, (const uint8_t *)bad[k].bytes, bad[k].n, "bad", &e2);
        CHECK(rc != 0 && strstr(e2.msg, bad[k].want), "%s: rc %d: %s", bad[k].what, rc, e2.msg);
        if (!rc) ddct_pkl_free(&d);
    }
}

/* A checkpoint written by the writer (tied name, two storages, a storage shared by two
 * disjoint views) opens with the reader: names, aliases, bytes. */
static void test_roundtrip(void)
{
    uint64_t s1[2] = {3, 4}, s2[1] = {6};
    ddct_st_entry recs[3] = {{.name = "w", .dtype = DDCT_DT_F32, .ndim = 2, .shape = s1},
                             {.name = "v0", .dtype = DDCT_DT_F16, .ndim = 1, .shape = s2},
                             {.name = "v1", .dtype = DDCT_DT_F16, .ndim = 1, .shape = s2}};
    const char *lay_text =
        "{\"root\":\"archive\",\"state\":null,\"storages\":[{\"key\":\"0\",\"dtype\":\"F32\",\"numel\":12},"
        "{\"key\":\"k1\",\"dtype\":\"F16\",\"numel\":14}],\"tensors\":["
        "{\"name\":\"w\",\"storage\":0,\"offset\":0,\"shape\":[3,4],\"stride\":[4,1]},"
        "{\"name\":\"v0\",\"storage\":1,\"offset\":0,\"shape\":[6],\"stride\":[1]},"
        "{\"name\":\"tied\",\"storage\":0,\"offset\":0,\"shape\":[3,4],\"stride\":[4,1]},"
        "{\"name\":\"v1\",\"storage\":1,\"offset\":8,\"shape\":[6],\"stride\":[1]}]}";
    json_error_t je;
    json_t *lay = json_loads(lay_text, 0, &je);
    char path[600];
    snprintf(path, sizeof path, "%s/rt.bin", dir);
    ddct_err e = {0};
    ddct_pt_writer *w = NULL;
    int rc = ddct_ptw_open(&w, path, 1, NULL, lay, recs, 3, &e);
    CHECK(rc == 0, "open writer: %s", e.msg);
    float wf[12];
    uint16_t h[12];
    for (int i = 0; i < 12; i++) {
        wf[i] = (float)i * 0.5f;
        h[i] = (uint16_t)(0x3c00 + i);
    }
    if (!rc) rc = ddct_ptw_write(w, wf, 20, &e); /* split across calls */
    if (!rc) rc = ddct_ptw_write(w, (char *)wf + 20, 28, &e);
    if (!rc) rc = ddct_ptw_write(w, h, 24, &e);
    if (!rc) rc = ddct_ptw_commit(w, &e);
    else ddct_ptw_abort(w);
    CHECK(rc == 0, "write: %s", e.msg);
    ddct_map map;
    rc = ddct_map_open(&map, path, &e);
    ddct_st_file *f = NULL;
    if (!rc) rc = ddct_pt_open(&f, path, &map, &e);
    CHECK(rc == 0, "reopen: %s", e.msg);
    if (!rc) {
        CHECK(ddct_st_count(f) == 3 && ddct_st_alias_count(f) == 1, "3 tensors and 1 alias");
        const ddct_st_tensor *t = ddct_st_find(f, "tied"), *tw = ddct_st_find(f, "w");
        CHECK(t && t == tw, "tied finds w");
        CHECK(tw && !memcmp(tw->data, wf, 48), "w's bytes");
        const ddct_st_tensor *a = ddct_st_find(f, "v0"), *b = ddct_st_find(f, "v1");
        CHECK(a && b && !memcmp(a->data, h, 12) && !memcmp(b->data, h + 6, 12), "views' bytes");
        CHECK(a && b && b->offset - a->offset == 16, "v1 at element 8 of the storage");
        json_t *back = ddct_pt_layout(f);
        CHECK(back && ddct_pt_layout_check(back, path, &e) == 0, "layout of the file checks: %s", e.msg);
        json_decref(back);
        ddct_st_close(f);
    }
    /* a layout the writer must refuse: overlapping views, a view outside, a key with '/' */
    static const char *const refuse[] = {
        "{\"root\":\"a\",\"storages\":[{\"key\":\"0\",\"dtype\":\"F32\",\"numel\":8}],\"tensors\":["
        "{\"name\":\"x\",\"storage\":0,\"offset\":0,\"shape\":[6],\"stride\":[1]},"
        "{\"name\":\"y\",\"storage\":0,\"offset\":2,\"shape\":[6],\"stride\":[1]}]}",
        "{\"root\":\"a\",\"storages\":[{\"key\":\"0\",\"dtype\":\"F32\",\"numel\":4}],\"tensors\":["
        "{\"name\":\"x\",\"storage\":0,\"offset\":1,\"shape\":[4],\"stride\":[1]}]}",
        "{\"root\":\"a\",\"storages\":[{\"key\":\"../0\",\"dtype\":\"F32\",\"numel\":4}],\"tensors\":[]}",
        "{\"root\":\"a\",\"storages\":[{\"key\":\"0\",\"dtype\":\"F32\",\"numel\":100000000000}],\"tensors\":["
        "{\"name\":\"x\",\"storage\":0,\"offset\":0,\"shape\":[4],\"stride\":[1]}]}",
        "{\"root\":\"a\",\"storages\":[{\"key\":\"0\",\"dtype\":\"F32\",\"numel\":12}],\"tensors\":["
        "{\"name\":\"x\",\"storage\":0,\"offset\":0,\"shape\":[3,4],\"stride\":[1,3]}]}",
    };
    for (size_t k = 0; k < sizeof refuse / sizeof *refuse; k++) {
        json_t *l = json_loads(refuse[k], 0, &je);
        ddct_err e2 = {0};
        CHECK(l && ddct_pt_layout_check(l, "x", &e2) == DDCT_ERR_FORMAT, "layout %zu refused (%s)", k, e2.msg);
        json_decref(l);
    }
    /* every truncation of the checkpoint: refused, never a crash */
    long n;
    unsigned char *p = tu_slurp(path, &n);
    int clean = 1;
    for (long cut = 0; p && cut < n; cut++) {
        uint8_t *buf = malloc((size_t)cut + 1);
        ddct_map m = {.p = buf, .size = (uint64_t)cut, .mapped = 0, .fd = -1};
        memcpy(buf, p, (size_t)cut);
        ddct_st_file *g = NULL;
        ddct_err e2 = {0};
        if (ddct_pt_open(&g, "cut", &m, &e2) == 0) {
            clean = 0;
            ddct_st_close(g);
        }
        if (!cut) free(buf); /* taken over otherwise */
    }
    CHECK(p && clean, "every truncation refused");
    free(p);
    json_decref(lay);
}

int main(void)
{
    if (tu_tmpdir(dir, sizeof dir, "pytorch")) return 1;
    test_zip64();
    test_pickle();
    test_roundtrip();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return TEST_SUMMARY();
}
