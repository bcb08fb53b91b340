/*
 * test_safetensors.c — safetensors reader/writer and atomic ofile: round trips, every
 * hostile header we can think of, truncation at every byte, random corruption, output
 * safety (exists / overwrite / abort / output == input / write failure under RLIMIT_FSIZE),
 * and the real fixture files when present.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/ofile.h"
#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[512];

/* ---------------------------------------------------------------- file helpers */

static const char *tpath(const char *name) { return tu_path(g_dir, name); }

static void write_bytes(const char *path, const void *p, size_t n)
{
    CHECK(tu_write(path, p, n) == 0, "cannot write %s", path);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    *n = 0;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, fp) == (size_t)len) *n = (size_t)len;
    fclose(fp);
    return p;
}

static int file_equals(const char *path, const void *want, size_t n)
{
    size_t got;
    uint8_t *p = read_bytes(path, &got);
    int ok = p && got == n && memcmp(p, want, n) == 0;
    free(p);
    return ok;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Entries of g_dir whose name contains ".tmp." (left-over temporaries). */
static int count_temps(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) n += strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void remove_dir(void)
{
    DIR *d = opendir(g_dir);
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) unlink(tpath(de->d_name));
    if (d) closedir(d);
    CHECK(rmdir(g_dir) == 0, "rmdir %s: %s", g_dir, strerror(errno));
}

/* Raw safetensors bytes: u64 header length (hlen, or strlen(json) if hlen is UINT64_MAX),
 * the JSON text, then datalen bytes of data. */
static void raw_file(const char *path, uint64_t hlen, const char *json, size_t datalen)
{
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_buf_u64(&b, hlen == UINT64_MAX ? strlen(json) : hlen);
    ddct_buf_put(&b, json, strlen(json));
    for (size_t i = 0; i < datalen; i++) ddct_buf_u8(&b, (uint8_t)i);
    write_bytes(path, b.p, b.len);
    ddct_buf_free(&b);
}

/* Opening path fails with code, *out NULL, and a message naming the file and containing needle. */
static void expect_open_fails(const char *path, int code, const char *needle, const char *what)
{
    ddct_st_file *f = (ddct_st_file *)&f; /* must be reset to NULL */
    ddct_err e = {0};
    int rc = ddct_st_open(&f, path, &e);
    CHECK(rc == code && f == NULL, "%s: rc %d, want %d (%s)", what, rc, code, e.msg);
    CHECK(e.code == rc && strstr(e.msg, path), "%s: message does not name the file: %s", what, e.msg);
    CHECK(!needle || strstr(e.msg, needle), "%s: message '%s' lacks '%s'", what, e.msg, needle);
    if (rc == 0) ddct_st_close(f);
}

static void expect_bad_json(const char *json, size_t datalen, const char *needle, const char *what)
{
    const char *p = tpath("hostile.safetensors");
    raw_file(p, UINT64_MAX, json, datalen);
    expect_open_fails(p, DDCT_ERR_FORMAT, needle, what);
}

static ddct_st_file *open_ok(const char *path, const char *what)
{
    ddct_st_file *f = NULL;
    ddct_err e = {0};
    int rc = ddct_st_open(&f, path, &e);
    CHECK(rc == 0 && f, "%s: %s", what, e.msg);
    return rc ? NULL : f;
}

static ddct_st_file *open_json_ok(const char *json, size_t datalen, const char *what)
{
    const char *p = tpath("valid.safetensors");
    raw_file(p, UINT64_MAX, json, datalen);
    return open_ok(p, what);
}

/* ---------------------------------------------------------------- round trip */

static const uint64_t shp_zeta[] = {3, 4}, shp_alpha[] = {5}, shp_mid[] = {2, 3}, shp_ids[] = {4}, shp_bytes[] = {7},
                      shp_mask[] = {3}, shp_empty[] = {0, 5}, shp_last[] = {2};
static const ddct_st_entry rt_entries[] = {
    {"zeta.weight", DDCT_DT_F32, 2, shp_zeta}, {"alpha.f16", DDCT_DT_F16, 1, shp_alpha},
    {"mid.bf16", DDCT_DT_BF16, 2, shp_mid},    {"ids", DDCT_DT_I64, 1, shp_ids},
    {"bytes", DDCT_DT_U8, 1, shp_bytes},       {"mask", DDCT_DT_BOOL, 1, shp_mask},
    {"scalar", DDCT_DT_F32, 0, NULL},          {"empty", DDCT_DT_F32, 2, shp_empty},
    {"last.f64", DDCT_DT_F64, 1, shp_last},
};
#define RT_N (sizeof rt_entries / sizeof rt_entries[0])
static const size_t rt_bytes[RT_N] = {48, 10, 12, 32, 7, 3, 4, 0, 16};
static const char rt_meta[] = "{\"format\":\"pt\",\"z\":\"1\",\"a\":\"h\xc3\xa9llo \\\"q\\\"\"}";

/* Data for the round trip: floats through the dtype converters, other bytes counted. */
static size_t rt_data(uint8_t *out)
{
    size_t pos = 0;
    for (size_t i = 0; i < RT_N; i++) {
        const ddct_st_entry *en = &rt_entries[i];
        size_t n = rt_bytes[i] / ddct_dtype_size(en->dtype);
        if (ddct_dtype_is_lossy_float(en->dtype)) {
            float v[16];
            for (size_t k = 0; k < n; k++) v[k] = (float)(i * 10 + k) - 3.25f;
            ddct_from_f32(en->dtype, v, n, out + pos);
        } else {
            for (size_t k = 0; k < rt_bytes[i]; k++) out[pos + k] = (uint8_t)(i * 37 + k * 11);
        }
        pos += rt_bytes[i];
    }
    return pos;
}

static int write_rt(const char *path, const char *meta, size_t chunk, ddct_err *e)
{
    uint8_t data[256];
    size_t n = rt_data(data);
    ddct_st_writer *w = NULL;
    FORWARD_IF_ERROR(ddct_stw_open(&w, path, 1, NULL, rt_entries, RT_N, meta, e));
    for (size_t pos = 0; pos < n; pos += chunk) {
        int rc = ddct_stw_write(w, data + pos, pos + chunk > n ? n - pos : chunk, e);
        if (rc) {
            ddct_stw_abort(w);
            return rc;
        }
    }
    return ddct_stw_commit(w, e);
}

static void check_rt_file(ddct_st_file *f, const char *meta)
{
    uint8_t data[256];
    rt_data(data);
    CHECK(ddct_st_count(f) == RT_N, "count %zu", ddct_st_count(f));
    const char *m = ddct_st_metadata_json(f);
    CHECK(meta ? m && strcmp(m, meta) == 0 : m == NULL, "metadata '%s'", m ? m : "(null)");
    uint64_t pos = 0, start = ddct_st_get(f, 0)->offset;
    CHECK(start % 8 == 0, "data starts at %llu, not a multiple of 8", (unsigned long long)start);
    for (size_t i = 0; i < RT_N && i < ddct_st_count(f); i++) {
        const ddct_st_tensor *t = ddct_st_get(f, i);
        const ddct_st_entry *en = &rt_entries[i];
        CHECK(strcmp(t->name, en->name) == 0, "order: #%zu is '%s', want '%s'", i, t->name, en->name);
        CHECK(t->dtype == en->dtype && t->ndim == en->ndim, "%s dtype/ndim", en->name);
        CHECK(memcmp(t->shape, en->shape ? en->shape : t->shape, (size_t)en->ndim * 8) == 0, "%s shape", en->name);
        CHECK(t->nbytes == rt_bytes[i] && t->nelem * ddct_dtype_size(t->dtype) == t->nbytes, "%s sizes", en->name);
        CHECK(t->offset == start + pos && t->data == ddct_st_get(f, 0)->data + pos, "%s offset", en->name);
        CHECK(t->nbytes == 0 || memcmp(t->data, data + pos, t->nbytes) == 0, "%s data", en->name);
        CHECK(ddct_st_find(f, en->name) == t, "find %s", en->name);
        pos += t->nbytes;
    }
    CHECK(ddct_st_get(f, RT_N) == NULL, "get out of range");
    CHECK(ddct_st_find(f, "nope") == NULL && ddct_st_find(f, "") == NULL && ddct_st_find(f, "zeta") == NULL,
          "find missing");
    const ddct_st_tensor *s = ddct_st_find(f, "scalar");
    CHECK(s && s->ndim == 0 && s->nelem == 1 && s->nbytes == 4, "0-d scalar");
    const ddct_st_tensor *z = ddct_st_find(f, "empty");
    CHECK(z && z->nelem == 0 && z->nbytes == 0, "zero-size tensor");
    const ddct_st_tensor *h = ddct_st_find(f, "alpha.f16");
    float v[5];
    if (h) ddct_to_f32(h->dtype, h->data, 5, v);
    CHECK(h && v[0] == 10.0f - 3.25f && v[4] == 14.0f - 3.25f, "f16 values");
}

static void test_round_trip(void)
{
    static const size_t chunks[] = {1, 3, 7, 64, 1000};
    const char *p = tpath("rt.safetensors");
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        ddct_err e = {0};
        int rc = write_rt(p, rt_meta, chunks[c], &e);
        CHECK(rc == 0, "write (chunk %zu): %s", chunks[c], e.msg);
        ddct_st_file *f = open_ok(p, "round trip");
        if (f) check_rt_file(f, rt_meta);
        CHECK(f && strcmp(ddct_st_path(f), p) == 0, "path");
        ddct_st_close(f);
    }
    /* the raw layout: metadata first, header padded with spaces to a multiple of 8 */
    size_t n;
    uint8_t *raw = read_bytes(p, &n);
    uint64_t hlen = raw && n >= 8 ? ddct_le64(raw) : 0;
    CHECK(hlen % 8 == 0 && hlen + 8 <= n, "header length %llu", (unsigned long long)hlen);
    CHECK(raw && memcmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0, "metadata first");
    CHECK(raw && (raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}'), "space padding");
    free(raw);
    /* without metadata */
    ddct_err e = {0};
    CHECK(write_rt(p, NULL, 5, &e) == 0, "write without metadata: %s", e.msg);
    ddct_st_file *f = open_ok(p, "no metadata");
    if (f) check_rt_file(f, NULL);
    ddct_st_close(f);
    CHECK(count_temps() == 0, "temporaries left");
}

static void test_valid_edges(void)
{
    ddct_st_file *f = open_json_ok("{}", 0, "empty header");
    CHECK(f && ddct_st_count(f) == 0 && !ddct_st_metadata_json(f) && !ddct_st_find(f, "a"), "empty file");
    ddct_st_close(f);
    f = open_json_ok("{\"__metadata__\":{}}", 0, "empty metadata");
    CHECK(f && ddct_st_count(f) == 0 && strcmp(ddct_st_metadata_json(f), "{}") == 0, "empty metadata");
    ddct_st_close(f);
    f = open_json_ok("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "only a zero-size tensor");
    CHECK(f && ddct_st_count(f) == 1 && ddct_st_get(f, 0)->nbytes == 0, "zero-byte data buffer");
    ddct_st_close(f);
    f = open_json_ok(" \n{ \"b\" : {\"data_offsets\":[4,8], \"shape\":[4], \"dtype\":\"U8\", \"extra\":[1]},\n"
                     "  \"z\": {\"dtype\":\"I32\",\"shape\":[0,3],\"data_offsets\":[4,4]},\n"
                     "  \"a\": {\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]},\n"
                     "  \"y\": {\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[4,4]} }  ",
                     8, "unsorted offsets, whitespace, zero-size tensors between");
    CHECK(f && ddct_st_count(f) == 4 && strcmp(ddct_st_get(f, 0)->name, "b") == 0 &&
              strcmp(ddct_st_get(f, 2)->name, "a") == 0 && ddct_st_find(f, "y") == ddct_st_get(f, 3),
          "header order kept");
    ddct_st_close(f);
}

/* ---------------------------------------------------------------- hostile files */

#define T1(dt, shape, off) "{\"a\":{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" off "}}"
#define E(name, dt, shape, off) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

static void test_hostile_json(void)
{
    expect_bad_json("{\"a\":{\"dtype\":\"F32\"", 0, "JSON", "truncated JSON");
    expect_bad_json("", 0, "JSON", "empty header");
    expect_bad_json("[1,2]", 0, "not a JSON object", "array header");
    expect_bad_json("{" E("a", "F32", "[1]", "[0,4]") "," E("a", "F32", "[1]", "[4,8]") "}", 8, "duplicate",
                    "duplicate names");
    expect_bad_json("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate", "duplicate metadata");
    expect_bad_json(T1("\"F33\"", "[1]", "[0,4]"), 4, "unknown dtype", "unknown dtype");
    expect_bad_json(T1("32", "[1]", "[0,4]"), 4, "dtype", "dtype not a string");
    expect_bad_json("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype", "dtype missing");
    expect_bad_json(T1("\"F32\"", "[-1]", "[0,4]"), 4, "shape[0]", "negative shape");
    expect_bad_json(T1("\"F32\"", "[1,2.0]", "[0,8]"), 8, "shape[1]", "float shape");
    expect_bad_json(T1("\"F32\"", "\"2\"", "[0,8]"), 8, "shape", "shape not an array");
    expect_bad_json("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape", "shape missing");
    expect_bad_json(T1("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "dimensions", "too many dims");
    expect_bad_json(T1("\"U8\"", "[4294967296,4294967296,2]", "[0,0]"), 0, "overflow", "element count overflow");
    expect_bad_json(T1("\"F64\"", "[2305843009213693952]", "[0,0]"), 0, "overflow", "byte count overflow");
    expect_bad_json(T1("\"F32\"", "[3]", "[0,8]"), 8, "hold 8 bytes", "shape disagrees with byte count");
    expect_bad_json(T1("\"F32\"", "[2]", "[0,8]"), 4, "past the data buffer", "offsets out of bounds");
    expect_bad_json(T1("\"F32\"", "[0]", "[8,4]"), 8, "begin after end", "begin > end");
    expect_bad_json(T1("\"F32\"", "[1]", "\"0,4\""), 4, "data_offsets", "data_offsets a string");
    expect_bad_json(T1("\"F32\"", "[1]", "[0,4,4]"), 4, "data_offsets", "data_offsets 3 values");
    expect_bad_json(T1("\"F32\"", "[1]", "[0]"), 4, "data_offsets", "data_offsets 1 value");
    expect_bad_json(T1("\"F32\"", "[0]", "[-4,0]"), 4, "data_offsets", "negative offset");
    expect_bad_json(T1("\"F32\"", "[1]", "[0.0,4]"), 4, "data_offsets", "float offset");
    expect_bad_json(T1("\"F32\"", "[1]", "[0,\"4\"]"), 4, "data_offsets", "string offset");
    expect_bad_json(T1("\"F32\"", "[1]", "[0,18446744073709551615]"), 4, "JSON", "offset beyond int64");
    expect_bad_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets", "data_offsets missing");
    expect_bad_json("{\"a\":5}", 0, "not a JSON object", "entry not an object");
    expect_bad_json("{\"\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "empty name", "empty name");
    expect_bad_json("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "JSON", "name not UTF-8");
    expect_bad_json("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "JSON", "NUL in name");
    expect_bad_json("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "non-string metadata value");
    expect_bad_json("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "__metadata__", "nested metadata");
    expect_bad_json("{\"__metadata__\":\"x\"}", 0, "__metadata__", "metadata not an object");
    expect_bad_json("{} x", 0, "JSON", "trailing garbage in header");
}

static void test_hostile_layout(void)
{
    expect_bad_json("{" E("a", "U8", "[8]", "[0,8]") "," E("b", "U8", "[8]", "[4,12]") "}", 12, "overlap",
                    "overlapping tensors");
    expect_bad_json("{" E("big", "U8", "[8]", "[0,8]") "," E("b", "U8", "[8]", "[4,12]") "}", 12, "'big'",
                    "overlap names the first tensor");
    expect_bad_json("{" E("a", "U8", "[8]", "[0,8]") "," E("z", "U8", "[0]", "[4,4]") "}", 8, "overlap",
                    "zero-size tensor inside another");
    expect_bad_json("{" E("a", "U8", "[8]", "[0,8]") "," E("b", "U8", "[8]", "[0,8]") "}", 8, "overlap",
                    "two tensors on the same bytes");
    expect_bad_json("{" E("a", "U8", "[4]", "[0,4]") "," E("b", "U8", "[4]", "[8,12]") "}", 12, "gap",
                    "gap between tensors");
    expect_bad_json("{" E("a", "U8", "[4]", "[0,4]") "," E("b", "U8", "[4]", "[8,12]") "}", 12, "'b'",
                    "gap names the second tensor");
    expect_bad_json("{" E("a", "U8", "[4]", "[4,8]") "}", 8, "before the first tensor 'a'", "gap at the start");
    expect_bad_json("{" E("a", "U8", "[4]", "[0,4]") "}", 8, "after the last tensor 'a'", "trailing bytes");
    expect_bad_json("{}", 4, "no tensors", "data but no tensors");
}

static void test_hostile_length(void)
{
    const char *p = tpath("len.safetensors");
    raw_file(p, 100, "{}", 0);
    expect_open_fails(p, DDCT_ERR_FORMAT, "past the end", "header length larger than the file");
    raw_file(p, 1ull << 63, "{}", 0);
    expect_open_fails(p, DDCT_ERR_FORMAT, "limit", "header length 2^63");
    raw_file(p, UINT64_MAX - 1, "{}", 0);
    expect_open_fails(p, DDCT_ERR_FORMAT, "limit", "header length 2^64-2");
    raw_file(p, 3, "{}", 0);
    expect_open_fails(p, DDCT_ERR_FORMAT, "past the end", "header length one past the file");
    /* 100,000,001-byte header in a sparse file long enough to hold it */
    raw_file(p, 100000001, "{}", 0);
    CHECK(truncate(p, 8 + 100000001 + 16) == 0, "truncate: %s", strerror(errno));
    expect_open_fails(p, DDCT_ERR_FORMAT, "limit", "header over 100 MB");
    write_bytes(p, "", 0);
    expect_open_fails(p, DDCT_ERR_FORMAT, "too short", "empty file");
    expect_open_fails(tpath("does-not-exist"), DDCT_ERR_IO, "does-not-exist", "missing file");
    expect_open_fails(g_dir, DDCT_ERR_IO, NULL, "a directory");
}

static uint8_t *small_valid_file(size_t *n)
{
    static const uint64_t s2[] = {2}, s3[] = {3};
    const ddct_st_entry en[] = {{"w", DDCT_DT_F32, 1, s2}, {"e", DDCT_DT_U8, 1, (const uint64_t[]){0}},
                                {"b", DDCT_DT_BF16, 1, s3}};
    const uint8_t data[14] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    ddct_st_writer *w = NULL;
    ddct_err e = {0};
    const char *p = tpath("small.safetensors");
    int rc = ddct_stw_open(&w, p, 1, NULL, en, 3, "{\"k\":\"v\"}", &e);
    if (!rc) rc = ddct_stw_write(w, data, sizeof data, &e);
    if (!rc) rc = ddct_stw_commit(w, &e);
    else ddct_stw_abort(w);
    CHECK(rc == 0, "small file: %s", e.msg);
    return read_bytes(p, n);
}

static void test_truncation(void)
{
    size_t n;
    uint8_t *full = small_valid_file(&n);
    const char *p = tpath("trunc.safetensors");
    int bad = 0;
    for (size_t len = 0; full && len < n; len++) {
        write_bytes(p, full, len);
        ddct_st_file *f = NULL;
        ddct_err e = {0};
        int rc = ddct_st_open(&f, p, &e);
        bad += rc != DDCT_ERR_FORMAT || f != NULL || !strstr(e.msg, p);
        ddct_st_close(f);
    }
    CHECK(full && n > 100 && bad == 0, "%d of %zu truncations not rejected cleanly", bad, n);
    write_bytes(p, full, n);
    ddct_st_close(open_ok(p, "untruncated"));
    free(full);
}

/* Random byte corruption: every open either fails with FORMAT or gives consistent tensors. */
static void test_corruption(void)
{
    size_t n;
    uint8_t *full = small_valid_file(&n);
    const char *p = tpath("fuzz.safetensors");
    int bad = 0, accepted = 0;
    for (int it = 0; full && it < 3000; it++) {
        uint8_t *m = malloc(n);
        memcpy(m, full, n);
        for (int k = 0, nk = 1 + (int)(tu_next() % 3); k < nk; k++) m[tu_next() % n] = (uint8_t)tu_next();
        write_bytes(p, m, n);
        ddct_st_file *f = NULL;
        ddct_err e = {0};
        int rc = ddct_st_open(&f, p, &e);
        bad += rc != 0 && rc != DDCT_ERR_FORMAT;
        for (size_t i = 0; f && i < ddct_st_count(f); i++) {
            const ddct_st_tensor *t = ddct_st_get(f, i);
            bad += t->offset + t->nbytes > n || ddct_st_find(f, t->name) != t;
        }
        accepted += f != NULL;
        ddct_st_close(f);
        free(m);
    }
    CHECK(full && bad == 0, "%d corrupted files mishandled (%d accepted)", bad, accepted);
    free(full);
}

/* ---------------------------------------------------------------- writer errors */

static void expect_stw_open_fails(const ddct_st_entry *en, size_t n, const char *meta, int code, const char *what)
{
    const char *p = tpath("bad-writer.safetensors");
    ddct_st_writer *w = (ddct_st_writer *)&w;
    ddct_err e = {0};
    int rc = ddct_stw_open(&w, p, 0, NULL, en, n, meta, &e);
    CHECK(rc == code && w == NULL && e.msg[0], "%s: rc %d (%s)", what, rc, e.msg);
    if (!rc) ddct_stw_abort(w);
    CHECK(!exists(p) && count_temps() == 0, "%s: file left behind", what);
}

static void test_writer_errors(void)
{
    static const uint64_t s1[] = {1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, huge[] = {1ull << 62, 4};
    const ddct_st_entry ok = {"a", DDCT_DT_F32, 1, s1};
    const ddct_st_entry dup[] = {ok, ok};
    const ddct_st_entry bad_name[] = {{"", DDCT_DT_F32, 1, s1}}, meta_name[] = {{"__metadata__", DDCT_DT_F32, 1, s1}},
                        null_name[] = {{NULL, DDCT_DT_F32, 1, s1}}, utf8[] = {{"a\xff", DDCT_DT_F32, 1, s1}},
                        bad_dt[] = {{"a", DDCT_DT_INVALID, 1, s1}}, bad_dt2[] = {{"a", (ddct_dtype)77, 1, s1}},
                        dims[] = {{"a", DDCT_DT_F32, 9, s9}}, neg[] = {{"a", DDCT_DT_F32, -1, s1}},
                        noshape[] = {{"a", DDCT_DT_F32, 1, NULL}}, ovf[] = {{"a", DDCT_DT_F32, 2, huge}};
    expect_stw_open_fails(dup, 2, NULL, DDCT_ERR_PARAM, "duplicate names");
    expect_stw_open_fails(bad_name, 1, NULL, DDCT_ERR_PARAM, "empty name");
    expect_stw_open_fails(meta_name, 1, NULL, DDCT_ERR_PARAM, "__metadata__ as a name");
    expect_stw_open_fails(null_name, 1, NULL, DDCT_ERR_PARAM, "NULL name");
    expect_stw_open_fails(utf8, 1, NULL, DDCT_ERR_PARAM, "name not UTF-8");
    expect_stw_open_fails(bad_dt, 1, NULL, DDCT_ERR_PARAM, "invalid dtype");
    expect_stw_open_fails(bad_dt2, 1, NULL, DDCT_ERR_PARAM, "out-of-range dtype");
    expect_stw_open_fails(dims, 1, NULL, DDCT_ERR_PARAM, "9 dims");
    expect_stw_open_fails(neg, 1, NULL, DDCT_ERR_PARAM, "negative ndim");
    expect_stw_open_fails(noshape, 1, NULL, DDCT_ERR_PARAM, "NULL shape");
    expect_stw_open_fails(ovf, 1, NULL, DDCT_ERR_PARAM, "byte count overflow");
    expect_stw_open_fails(NULL, 1, NULL, DDCT_ERR_PARAM, "NULL entries");
    expect_stw_open_fails(&ok, 1, "not json", DDCT_ERR_PARAM, "metadata not JSON");
    expect_stw_open_fails(&ok, 1, "[\"a\"]", DDCT_ERR_PARAM, "metadata an array");
    expect_stw_open_fails(&ok, 1, "{\"k\":1}", DDCT_ERR_PARAM, "metadata with a number");
    expect_stw_open_fails(&ok, 1, "{\"k\":\"a\",\"k\":\"b\"}", DDCT_ERR_PARAM, "metadata duplicate keys");

    /* more bytes than promised, then fewer */
    const char *p = tpath("w.safetensors");
    ddct_st_writer *w = NULL;
    ddct_err e = {0};
    uint8_t data[8] = {0};
    CHECK(ddct_stw_open(&w, p, 0, NULL, &ok, 1, NULL, &e) == 0, "open: %s", e.msg);
    CHECK(ddct_stw_write(w, data, 3, &e) == 0, "write 3");
    CHECK(ddct_stw_write(w, data, 2, &e) == DDCT_ERR_PARAM && strstr(e.msg, "'a'"), "overlong write: %s", e.msg);
    ddct_stw_abort(w);
    CHECK(!exists(p) && count_temps() == 0, "abort leaves nothing");
    CHECK(ddct_stw_open(&w, p, 0, NULL, &ok, 1, NULL, &e) == 0, "open: %s", e.msg);
    CHECK(ddct_stw_write(w, data, 3, &e) == 0, "write 3");
    CHECK(ddct_stw_commit(w, &e) == DDCT_ERR_PARAM && strstr(e.msg, "3 of 4"), "short commit: %s", e.msg);
    CHECK(!exists(p) && count_temps() == 0, "failed commit leaves nothing");
    ddct_stw_abort(NULL);

    /* zero entries, then an existing output */
    CHECK(ddct_stw_open(&w, p, 0, NULL, NULL, 0, NULL, &e) == 0 && ddct_stw_commit(w, &e) == 0, "empty: %s", e.msg);
    ddct_st_file *f = open_ok(p, "empty writer output");
    CHECK(f && ddct_st_count(f) == 0, "no tensors");
    ddct_st_close(f);
    CHECK(ddct_stw_open(&w, p, 0, NULL, &ok, 1, NULL, &e) == DDCT_ERR_EXISTS && w == NULL, "exists: %s", e.msg);
    const char *inputs[] = {p, NULL};
    CHECK(ddct_stw_open(&w, p, 1, inputs, &ok, 1, NULL, &e) == DDCT_ERR_EXISTS && strstr(e.msg, "also an input"),
          "writer output is an input: %s", e.msg);
    unlink(p);
}

/* ---------------------------------------------------------------- ofile */

static int ofile_write_all(const char *path, int overwrite, const char *const *inputs, const void *p, size_t n,
                           ddct_err *e)
{
    ddct_ofile *f = NULL;
    FORWARD_IF_ERROR(ddct_ofile_open(&f, path, overwrite, inputs, e));
    int rc = ddct_ofile_write(f, p, n, e);
    if (rc) {
        ddct_ofile_abort(f);
        return rc;
    }
    return ddct_ofile_commit(f, e);
}

/* direct: the O_DIRECT mode (two 8 MiB buffers, a writer thread, the tail through the page
 * cache): the same bytes must come out, whatever the write sizes. */
static void test_ofile_basic(int direct)
{
    const char *p = tpath(direct ? "out-direct.bin" : "out.bin");
    const size_t N = direct ? ((size_t)19 << 20) + 777 : (size_t)3 << 20;
    uint8_t *big = malloc(N);
    for (size_t i = 0; i < N; i++) big[i] = (uint8_t)(tu_next() >> 7);
    ddct_ofile *f = NULL;
    ddct_err e = {0};
    mode_t old = umask(022);
    CHECK(ddct_ofile_open(&f, p, 0, NULL, &e) == 0, "open: %s", e.msg);
    if (direct) {
        CHECK(ddct_ofile_write(f, big, 8, &e) == 0, "write before direct: %s", e.msg);
        if (!ddct_ofile_set_direct(f)) printf("  note: no O_DIRECT on this filesystem: buffered path tested\n");
        CHECK(ddct_ofile_set_direct(f) == 0, "direct mode is set once");
    }
    /* mixed small and large writes around the 1 MiB buffer (and the 8 MiB direct ones) */
    size_t pos = direct ? 8 : 0, steps[] = {8, 1, 100000, (1 << 20) - 5, 17, (9 << 20) + 3, 12345};
    int rc = 0;
    for (size_t k = 0; !rc && pos < N; k++) {
        size_t c = steps[k % 7] < N - pos ? steps[k % 7] : N - pos;
        rc = ddct_ofile_write(f, big + pos, c, &e);
        pos += c;
    }
    CHECK(rc == 0 && ddct_ofile_tell(f) == N, "writes: %s", e.msg);
    CHECK(count_temps() == 1 && !exists(p), "temporary only while writing");
    uint8_t patch[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    CHECK(ddct_ofile_pwrite(f, patch, 8, 0, &e) == 0, "pwrite at 0: %s", e.msg);
    CHECK(ddct_ofile_pwrite(f, patch, 8, N - 4, &e) != 0 && strstr(e.msg, "past the end"), "pwrite past end");
    CHECK(ddct_ofile_write(f, patch, 2, &e) == 0 && ddct_ofile_tell(f) == N + 2, "write after pwrite");
    memcpy(big, patch, 8);
    CHECK(ddct_ofile_commit(f, &e) == 0, "commit: %s", e.msg);
    umask(old);
    uint8_t *want = malloc(N + 2);
    memcpy(want, big, N);
    memcpy(want + N, patch, 2);
    CHECK(file_equals(p, want, N + 2), "content after commit");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o follows the umask", st.st_mode & 0777);
    CHECK(count_temps() == 0, "no temporary after commit");
    free(want);
    free(big);
    ddct_ofile_abort(NULL);
}

static void test_ofile_safety(void)
{
    const char *p = tpath("keep.bin"), *hard = tpath("keep-link.bin");
    ddct_err e = {0};
    write_bytes(p, "old", 3);
    CHECK(ofile_write_all(p, 0, NULL, "new", 3, &e) == DDCT_ERR_EXISTS && strstr(e.msg, p), "exists: %s", e.msg);
    CHECK(file_equals(p, "old", 3) && count_temps() == 0, "existing file untouched");

    ddct_ofile *f = NULL;
    CHECK(ddct_ofile_open(&f, p, 1, NULL, &e) == 0 && ddct_ofile_write(f, "partial", 7, &e) == 0, "open: %s", e.msg);
    ddct_ofile_abort(f);
    CHECK(file_equals(p, "old", 3) && count_temps() == 0, "abort leaves the old file and no temporary");
    /* the same with a direct write in flight */
    size_t nz = (size_t)17 << 20;
    uint8_t *z = calloc(nz, 1);
    CHECK(z && ddct_ofile_open(&f, p, 1, NULL, &e) == 0, "open: %s", e.msg);
    (void)ddct_ofile_set_direct(f);
    CHECK(ddct_ofile_write(f, z, nz, &e) == 0, "direct write: %s", e.msg);
    ddct_ofile_abort(f);
    free(z);
    CHECK(file_equals(p, "old", 3) && count_temps() == 0, "abort (direct) leaves the old file and no temporary");

    CHECK(ofile_write_all(p, 1, NULL, "newer", 5, &e) == 0 && file_equals(p, "newer", 5), "overwrite: %s", e.msg);

    /* without overwrite, an output that appears while writing is not replaced */
    const char *late = tpath("late.bin");
    CHECK(ddct_ofile_open(&f, late, 0, NULL, &e) == 0 && ddct_ofile_write(f, "mine", 4, &e) == 0, "open: %s", e.msg);
    write_bytes(late, "theirs", 6);
    CHECK(ddct_ofile_commit(f, &e) == DDCT_ERR_EXISTS && strstr(e.msg, late), "appeared while writing: %s", e.msg);
    CHECK(file_equals(late, "theirs", 6) && count_temps() == 0, "the other file kept, no temporary");

    char dotted[1100];
    snprintf(dotted, sizeof dotted, "%s/./keep.bin", g_dir);
    CHECK(link(p, hard) == 0, "link: %s", strerror(errno));
    const char *same[] = {tpath("missing-input"), p, NULL}, *via_dot[] = {dotted, NULL}, *via_link[] = {hard, NULL};
    CHECK(ofile_write_all(p, 1, same, "x", 1, &e) == DDCT_ERR_EXISTS && strstr(e.msg, "also an input"),
          "output == input: %s", e.msg);
    CHECK(ofile_write_all(p, 1, via_dot, "x", 1, &e) == DDCT_ERR_EXISTS, "output == input via ./: %s", e.msg);
    CHECK(ofile_write_all(p, 1, via_link, "x", 1, &e) == DDCT_ERR_EXISTS, "output == input via a hard link");
    CHECK(ofile_write_all(p, 0, via_link, "x", 1, &e) == DDCT_ERR_EXISTS, "output == input without overwrite");
    CHECK(file_equals(p, "newer", 5) && count_temps() == 0, "inputs untouched");
    const char *others[] = {tpath("missing-input"), NULL};
    CHECK(ofile_write_all(tpath("fresh.bin"), 0, others, "y", 1, &e) == 0, "missing inputs are fine: %s", e.msg);

    char nodir[1100];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.bin", g_dir);
    CHECK(ofile_write_all(nodir, 1, NULL, "x", 1, &e) == DDCT_ERR_IO && strstr(e.msg, nodir), "no dir: %s", e.msg);
    CHECK(ofile_write_all(g_dir, 1, NULL, "x", 1, &e) != 0, "a directory as output: %s", e.msg);
    unlink(hard);
}

/* A write failure (EFBIG under RLIMIT_FSIZE) is DDCT_ERR_IO; abort leaves no temporary
 * and the previous file intact. */
static void test_ofile_write_failure(void)
{
    const char *p = tpath("limited.bin");
    write_bytes(p, "previous", 8);
    enum { CHUNK = 64 << 10, TOTAL = 4 << 20 };
    uint8_t *buf = calloc(1, CHUNK);
    struct rlimit old, lim;
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = 100000;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit: %s", strerror(errno));
    ddct_ofile *f = NULL;
    ddct_err e = {0};
    int rc = ddct_ofile_open(&f, p, 1, NULL, &e);
    for (size_t pos = 0; !rc && pos < TOTAL; pos += CHUNK) rc = ddct_ofile_write(f, buf, CHUNK, &e);
    int wrc = rc;
    if (!rc) rc = ddct_ofile_commit(f, &e); /* not reached while the limit holds */
    else ddct_ofile_abort(f);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    CHECK(wrc == DDCT_ERR_IO && rc == DDCT_ERR_IO, "write under RLIMIT_FSIZE: rc %d (%s)", rc, e.msg);
    CHECK(strstr(e.msg, p) && strstr(e.msg, strerror(EFBIG)), "message names file and error: %s", e.msg);
    CHECK(count_temps() == 0 && file_equals(p, "previous", 8), "no temporary, previous file intact");

    /* the same failure surfacing at commit (data still in the buffer) */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0 && signal(SIGXFSZ, SIG_IGN) != SIG_ERR, "limit again");
    rc = ddct_ofile_open(&f, p, 1, NULL, &e);
    for (int k = 0; !rc && k < 4; k++) rc = ddct_ofile_write(f, buf, 200000 / 4, &e);
    CHECK(rc == 0, "buffered writes succeed: %s", e.msg);
    rc = rc ? rc : ddct_ofile_commit(f, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    CHECK(rc == DDCT_ERR_IO && strstr(e.msg, strerror(EFBIG)), "commit failure: %s", e.msg);
    CHECK(count_temps() == 0 && file_equals(p, "previous", 8), "failed commit: no temporary, previous intact");
    free(buf);
}

/* ---------------------------------------------------------------- real files */

/* Copy every tensor of src through the writer; 0 if the copy is byte-identical. */
static int copy_identical(ddct_st_file *src, const char *dst)
{
    size_t n = ddct_st_count(src);
    ddct_st_entry *en = calloc(n ? n : 1, sizeof *en);
    for (size_t i = 0; i < n; i++) {
        const ddct_st_tensor *t = ddct_st_get(src, i);
        en[i] = (ddct_st_entry){t->name, t->dtype, t->ndim, t->shape};
    }
    ddct_st_writer *w = NULL;
    ddct_err e = {0};
    int rc = ddct_stw_open(&w, dst, 1, NULL, en, n, ddct_st_metadata_json(src), &e);
    for (size_t i = 0; !rc && i < n; i++) rc = ddct_stw_write(w, ddct_st_get(src, i)->data, ddct_st_get(src, i)->nbytes, &e);
    rc = rc ? (ddct_stw_abort(w), rc) : ddct_stw_commit(w, &e);
    free(en);
    CHECK(rc == 0, "copy: %s", e.msg);
    size_t a, b;
    uint8_t *x = read_bytes(ddct_st_path(src), &a), *y = read_bytes(dst, &b);
    int same = x && y && a == b && memcmp(x, y, a) == 0;
    free(x);
    free(y);
    unlink(dst);
    return same ? 0 : 1;
}

static void check_real(const char *shared, const char *rel, size_t want_n, ddct_dtype want_dt)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/fixtures/%s", shared, rel);
    if (!exists(p)) {
        printf("skipping %s: not present\n", p);
        return;
    }
    ddct_st_file *f = open_ok(p, rel);
    if (!f) return;
    uint64_t sum = 0;
    int bad = 0;
    for (size_t i = 0; i < ddct_st_count(f); i++) {
        const ddct_st_tensor *t = ddct_st_get(f, i);
        sum += t->nbytes;
        bad += t->dtype != want_dt || ddct_st_find(f, t->name) != t;
    }
    struct stat st;
    stat(p, &st);
    CHECK(ddct_st_count(f) == want_n, "%s: %zu tensors, want %zu", rel, ddct_st_count(f), want_n);
    CHECK(bad == 0, "%s: %d tensors with another dtype or not found by name", rel, bad);
    CHECK(ddct_st_count(f) && sum == (uint64_t)st.st_size - ddct_st_get(f, 0)->offset, "%s: sizes", rel);
    const ddct_st_tensor *t = ddct_st_get(f, 0);
    float v[4];
    ddct_to_f32(t->dtype, t->data, 4, v);
    CHECK(v[0] == v[0] && v[0] - v[0] == 0 && v[3] == v[3], "%s: finite values", rel);
    CHECK(copy_identical(f, tpath("copy.safetensors")) == 0, "%s: writer copy is not byte-identical", rel);
    ddct_st_close(f);
}

static void test_real_files(void)
{
    const char *shared = getenv("DDCT_SHARED");
    if (!shared || !*shared) shared = "../shared";
    check_real(shared, "chargpt/base.safetensors", 110, DDCT_DT_F32);
    check_real(shared, "gpt-prose/base.bf16.safetensors", 65, DDCT_DT_BF16);
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "test_st")) return 1;
    test_round_trip();
    test_valid_edges();
    test_hostile_json();
    test_hostile_layout();
    test_hostile_length();
    test_truncation();
    test_corruption();
    test_writer_errors();
    test_ofile_basic(0);
    test_ofile_basic(1);
    test_ofile_safety();
    test_ofile_write_failure();
    test_real_files();
    remove_dir();
    return TEST_SUMMARY();
}
