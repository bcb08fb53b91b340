/*
 * test_jscan.c — the name hash set and the tree-less JSON scanner behind the safetensors reader
 * and writer: names found and duplicates caught at any size; strings escaped as jansson's
 * json_dumps escapes them; __metadata__-style objects checked and printed compactly as jansson
 * prints them; a written safetensors header is byte for byte the one jansson built before; the
 * reader accepts and refuses what jansson did on a set of small texts.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nameset.h"
#include "io/jscan.h"
#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[256];

static const char *names_of(const void *ctx, size_t id, size_t *len)
{
    char *const *v = ctx;
    *len = strlen(v[id]);
    return v[id];
}

static void test_nameset(void)
{
    enum { N = 100000 };
    char **v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N; i++) {
        v[i] = malloc(32);
        snprintf(v[i], 32, "layers.%zu.weight", i);
    }
    ddct_nameset s;
    CHECK(ddct_nameset_init(&s, 1, names_of, v) == 0, "init");
    int bad = 0;
    for (size_t i = 0; i < N; i++) bad += ddct_nameset_add(&s, i) != DDCT_NAMESET_NONE;
    CHECK(bad == 0 && s.count == N, "adding %d distinct names: %d refused", N, bad);
    for (size_t i = 0; i < N; i++) bad += ddct_nameset_find(&s, v[i], strlen(v[i])) != i;
    CHECK(bad == 0, "%d names not found", bad);
    CHECK(ddct_nameset_find(&s, "layers.1.weigh", 14) == DDCT_NAMESET_NONE &&
              ddct_nameset_find(&s, "", 0) == DDCT_NAMESET_NONE,
          "absent names");
    /* a copy of name 777 under a new id is a duplicate of 777 */
    char *extra = strdup(v[777]);
    char **w = realloc(v, (N + 1) * sizeof *w);
    v = w;
    v[N] = extra;
    s.ctx = v;
    CHECK(ddct_nameset_add(&s, N) == 777, "duplicate reports the first id");
    ddct_nameset_free(&s);
    for (size_t i = 0; i <= N; i++) free(v[i]);
    free(v);
}

/* ddct_json_put_string == jansson's json_dumps of a string, for every byte and some UTF-8. */
static void test_escape(void)
{
    char s[300];
    size_t n = 0;
    for (int c = 1; c < 128; c++) s[n++] = (char)c;
    const char *u = "h\xc3\xa9llo \xe2\x80\xa8 \xf0\x9f\x99\x82 / \\ \"";
    memcpy(s + n, u, strlen(u));
    n += strlen(u);
    s[n] = 0;
    json_t *j = json_string(s);
    char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_json_put_string(&b, s, n);
    ddct_buf_u8(&b, 0);
    CHECK(want && !strcmp((const char *)b.p, want), "escaping differs from jansson:\n%s\n%s", (const char *)b.p, want);
    free(want);
    json_decref(j);
    ddct_buf_free(&b);
}

static void test_string_object(void)
{
    static const char *const ok[] = {
        "{}", " { } ", "{\"a\":\"b\"}", "{\"format\":\"pt\",\"z\":\"1\",\"a\":\"h\xc3\xa9llo \\\"q\\\"\"}",
        "{\"k\\u00e9\":\"\\ud83d\\ude42\\n\\t\\/\",\"x\":\"\\u001f\"}", "\n{\"a\" : \"1\" , \"b\":\"2\"}\n"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char *c = NULL;
        const char *why;
        size_t at;
        int rc = ddct_json_string_object(ok[i], strlen(ok[i]), &c, &why, &at);
        json_error_t je;
        json_t *j = json_loads(ok[i], JSON_REJECT_DUPLICATES, &je);
        char *want = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        CHECK(rc == 0 && want && !strcmp(c, want), "'%s': rc %d, '%s' vs jansson '%s'", ok[i], rc, c ? c : "",
              want ? want : "");
        free(c);
        free(want);
        json_decref(j);
    }
    static const struct {
        const char *t;
        int rc;
    } bad[] = {{"{\"a\":1}", 1},         {"{\"a\":{\"b\":\"c\"}}", 1}, {"[\"a\"]", 1},
               {"\"a\"", 1},             {"{\"a\":\"1\",\"a\":\"2\"}", 2}, {"{\"a\":\"1\"", 2},
               {"{\"a\":\"\\u0000\"}", 2}, {"{\"a\":\"\xff\"}", 2},       {"{\"a\":\"1\"} x", 2},
               {"", 2},                  {"{\"a\":\"\\ud800\"}", 2},     {"{\"a\":\"x\ny\"}", 2},
               {"{\"a\\u0061\":\"1\",\"aa\":\"2\"}", 2}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *c = NULL;
        const char *why = NULL;
        size_t at;
        int rc = ddct_json_string_object(bad[i].t, strlen(bad[i].t), &c, &why, &at);
        CHECK(rc == bad[i].rc && !c && (rc != 2 || why), "'%s': rc %d, want %d", bad[i].t, rc, bad[i].rc);
    }
}

static const char *tpath(const char *name) { return tu_path(g_dir, name); }

/* The written header is what jansson's json_dumps (compact, in order) of the same object gave. */
static void test_writer_header(void)
{
    static const uint64_t s1[] = {3, 4}, s2[] = {0}, s3[] = {2};
    const ddct_st_entry en[] = {{"a\"b\\c\x01\x1f\x7f", DDCT_DT_F32, 2, s1},
                                {"h\xc3\xa9/\xe2\x80\xa8", DDCT_DT_BF16, 1, s2},
                                {"scalar", DDCT_DT_I64, 0, NULL},
                                {"z", DDCT_DT_U8, 1, s3}};
    const char *meta = "{\"format\":\"pt\",\"q\":\"\\\"x\\\"\\n\"}";
    for (int withmeta = 0; withmeta < 2; withmeta++) {
        ddct_st_writer *w = NULL;
        ddct_err e = {0};
        const char *p = tpath("hdr.safetensors");
        int rc = ddct_stw_open(&w, p, 1, NULL, en, 4, withmeta ? meta : NULL, &e);
        uint8_t zero[64] = {0};
        if (!rc) rc = ddct_stw_write(w, zero, 48 + 8 + 2, &e);
        if (!rc) rc = ddct_stw_commit(w, &e);
        CHECK(rc == 0, "write: %s", e.msg);
        json_t *root = json_object();
        if (withmeta) json_object_set_new(root, "__metadata__", json_loads(meta, 0, NULL));
        uint64_t off = 0;
        const uint64_t bytes[] = {48, 0, 8, 2};
        for (int i = 0; i < 4; i++) {
            json_t *shape = json_array();
            for (int d = 0; d < en[i].ndim; d++) json_array_append_new(shape, json_integer((json_int_t)en[i].shape[d]));
            json_object_set_new(root, en[i].name,
                                json_pack("{s:s, s:o, s:[I,I]}", "dtype", ddct_dtype_name(en[i].dtype), "shape", shape,
                                          "data_offsets", (json_int_t)off, (json_int_t)(off + bytes[i])));
            off += bytes[i];
        }
        char *want = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        FILE *f = fopen(p, "rb");
        char got[1024] = {0};
        uint64_t hl = 0;
        if (f) {
            if (fread(&hl, 8, 1, f) != 1 || hl >= sizeof got || fread(got, 1, (size_t)hl, f) != hl) hl = 0;
            fclose(f);
        }
        while (hl && got[hl - 1] == ' ') got[--hl] = 0;
        CHECK(want && !strcmp(got, want), "header differs from jansson's:\n%s\n%s", got, want ? want : "");
        free(want);
        /* and it reads back */
        ddct_st_file *sf = NULL;
        CHECK(ddct_st_open(&sf, p, &e) == 0 && ddct_st_count(sf) == 4 && ddct_st_find(sf, en[1].name) &&
                  (!withmeta || strstr(ddct_st_metadata_json(sf), "\\\"x\\\"")),
              "read back: %s", e.msg);
        ddct_st_close(sf);
    }
}

/* Header texts: accepted exactly when jansson (JSON_REJECT_DUPLICATES) parses them into a valid
 * header. */
static void test_reader_texts(void)
{
    static const char *const texts[] = {
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":[1,{\"y\":null},true,false,-0.5e3]}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0] \"b\":1}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,0]}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1e999}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":-}}",
        "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        ("{\"\\u0061\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},\"a\":{\"dtype\":\"U8\",\"shape\":[0],"
         "\"data_offsets\":[0,0]}}"),
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}} \n",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}\x00",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":nul}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":\"\\q\"}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,0]}}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[-9223372036854775808],\"data_offsets\":[0,0]}}",
        "{\"\xf0\x9f\x99\x82\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"__metadata__\":{\"a\":\"1\"},\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        size_t len = strlen(texts[i]) + (i == 9); /* one with a NUL byte */
        json_error_t je;
        json_t *j = json_loadb(texts[i], len, JSON_REJECT_DUPLICATES, &je);
        int want = j != NULL && !(i == 12 || i == 13); /* the shape checks refuse those two */
        json_decref(j);
        const char *p = tpath("t.safetensors");
        FILE *f = fopen(p, "wb");
        uint64_t hl = len;
        if (f) {
            fwrite(&hl, 8, 1, f);
            fwrite(texts[i], 1, len, f);
            fclose(f);
        }
        ddct_st_file *sf = NULL;
        ddct_err e = {0};
        int rc = ddct_st_open(&sf, p, &e);
        CHECK((rc == 0) == want && (rc == 0 || (e.msg[0] && strstr(e.msg, p))), "text %zu: rc %d, jansson %s: %s", i,
              rc, want ? "accepts" : "refuses", e.msg);
        ddct_st_close(sf);
    }
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "jscan")) return 1;
    test_nameset();
    test_escape();
    test_string_object();
    test_writer_header();
    test_reader_texts();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    return TEST_SUMMARY();
}
