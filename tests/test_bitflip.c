/*
 * test_bitflip.c — every single-bit corruption of a .ddct is detected.
 *
 * Writes a tiny base / fine-tune pair (ddct_stw_open), compresses it with ddct_compressFiles
 * with several methods (a file of ~1-3 KB each), then for every bit of the file in turn:
 * flip it and require that ddct_ctr_open_mem fails or some record read with verify=1 fails;
 * the records that still parse with verify=0 also go through their decoder, which must not
 * crash. Also: every truncation of the file is rejected by ddct_ctr_open_mem, and the
 * unmodified file opens and verifies; a file of another format version (header checksum made
 * valid again) is rejected as DDCT_ERR_VERSION; a .ddct of a model directory whose layout names
 * a shard or a carried file with "../" or an absolute path (header checksum made valid again) is
 * refused by verify and decompress, and nothing is written outside the output directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "codec/codec.h"
#include "common/dtype.h"
#include "container/container.h"
#include "deltadct.h"
#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[256];

typedef struct {
    const char *name;
    ddct_dtype dt;
    int ndim;
    uint64_t shape[2];
} tdesc;

static const tdesc TENSORS[] = {
    {"layers.0.attn.q_proj.weight", DDCT_DT_F32, 2, {32, 32}},
    {"layers.0.mlp.up_proj.weight", DDCT_DT_BF16, 2, {16, 32}},
    {"layers.0.input_layernorm.weight", DDCT_DT_F32, 1, {8}},
    {"position_ids", DDCT_DT_I64, 2, {1, 4}},
};
#define NT (sizeof TENSORS / sizeof *TENSORS)

static int write_model(const char *path, int finetuned)
{
    ddct_st_entry ents[NT];
    for (size_t i = 0; i < NT; i++)
        ents[i] = (ddct_st_entry){TENSORS[i].name, TENSORS[i].dt, TENSORS[i].ndim, TENSORS[i].shape};
    ddct_st_writer *w;
    ddct_err e;
    if (ddct_stw_open(&w, path, 1, NULL, ents, NT, "{\"format\":\"pt\"}", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    tu_rng = 12345; /* same base values in both files */
    for (size_t i = 0; i < NT; i++) {
        uint64_t n = TENSORS[i].shape[0] * (TENSORS[i].ndim > 1 ? TENSORS[i].shape[1] : 1);
        size_t es = ddct_dtype_size(TENSORS[i].dt);
        uint8_t buf[1024 * 8];
        float v[1024];
        for (uint64_t k = 0; k < n; k++) {
            double base = 0.02 * tu_normal();
            double d = 0.003 * tu_normal();
            v[k] = (float)(base + (finetuned ? d : 0));
        }
        if (TENSORS[i].dt == DDCT_DT_I64)
            for (uint64_t k = 0; k < n; k++) ddct_st64(buf + 8 * k, k);
        else
            ddct_from_f32(TENSORS[i].dt, v, (size_t)n, buf);
        if (ddct_stw_write(w, buf, (size_t)(n * es), &e)) {
            ddct_stw_abort(w);
            return -1;
        }
    }
    return ddct_stw_commit(w, &e) ? -1 : 0;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    *n = 0;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = len > 0 ? malloc((size_t)len) : NULL;
    if (p && fread(p, 1, (size_t)len, fp) == (size_t)len) *n = (size_t)len;
    fclose(fp);
    return p;
}

/* Decode every record that parses with verify=0 (no checksum): must not crash. */
static void decode_all(const ddct_ctr_reader *r)
{
    for (size_t i = 0; i < ddct_ctr_count(r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        ddct_record rec;
        ddct_err e;
        if (ddct_ctr_record(r, i, 0, &rec, &e)) continue;
        const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
        size_t es = ddct_dtype_size(en->dtype);
        if (!ct || en->nelem > 4096 || es == 0) continue;
        uint64_t nbytes = en->nelem * es;
        if (ct->decode_lossy) {
            float *out = malloc((size_t)en->nelem * sizeof(float) + 1);
            if (out) (void)ct->decode_lossy(&rec, en->nelem, 1, -1, out, &e);
            free(out);
        } else {
            uint8_t *base = calloc((size_t)nbytes + 1, 1), *out = malloc((size_t)nbytes + 1);
            if (base && out) (void)ct->decode_lossless(&rec, base, nbytes, es, out, &e);
            free(base);
            free(out);
        }
    }
}

/* 0 if p[0..n) opens and every record verifies. */
static int accepts(const uint8_t *p, size_t n, int decode)
{
    ddct_ctr_reader *r;
    ddct_err e;
    if (ddct_ctr_open_mem(&r, p, n, "bitflip.ddct", &e)) return -1;
    int bad = 0;
    for (size_t i = 0; i < ddct_ctr_count(r) && !bad; i++) {
        ddct_record rec;
        bad = ddct_ctr_record(r, i, 1, &rec, &e) != 0;
    }
    if (decode) decode_all(r);
    ddct_ctr_close(r);
    return bad ? -1 : 0;
}

/* A file of another format version with a valid header checksum: DDCT_ERR_VERSION, by
 * ddct_ctr_open_mem and by ddct_verifyFile, with a message naming the file and the version. */
static void other_version(const char *path)
{
    size_t n;
    uint8_t *p = read_file(path, &n);
    CHECK(p && n > 24, "cannot read %s", path);
    if (!p || n <= 24) {
        free(p);
        return;
    }
    static const unsigned majors[] = {0, 2, 255, 65535};
    for (size_t k = 0; k < sizeof majors / sizeof *majors; k++) {
        uint32_t jl = ddct_le32(p + 16);
        CHECK(20 + (uint64_t)jl + 8 <= n, "header length");
        if (20 + (uint64_t)jl + 8 > n) break;
        p[8] = (uint8_t)majors[k];
        p[9] = (uint8_t)(majors[k] >> 8);
        ddct_st64(p + 20 + jl, XXH3_64bits(p, 20 + (size_t)jl));
        ddct_ctr_reader *r = NULL;
        ddct_err e;
        int rc = ddct_ctr_open_mem(&r, p, n, "version.ddct", &e);
        CHECK(rc == DDCT_ERR_VERSION && !r, "major %u: open gives %d (%s)", majors[k], rc, rc ? e.msg : "ok");
        ddct_ctr_close(r);
        char vpath[600];
        snprintf(vpath, sizeof vpath, "%s/version.ddct", g_dir);
        FILE *fp = fopen(vpath, "wb");
        CHECK(fp && fwrite(p, 1, n, fp) == n, "write %s", vpath);
        if (fp) fclose(fp);
        ddct_DCtx *d = ddct_createDCtx();
        ddct_ErrorCode vr = d ? ddct_verifyFile(d, vpath, NULL) : DDCT_ERR_NOMEM;
        const char *msg = d ? ddct_DCtx_getErrorMessage(d) : "";
        char want[32];
        snprintf(want, sizeof want, "%u.", majors[k]);
        CHECK(vr == DDCT_ERR_VERSION && strstr(msg, vpath) && strstr(msg, want), "major %u: verify gives %d: %s",
              majors[k], vr, msg);
        ddct_freeDCtx(d);
        unlink(vpath);
    }
    free(p);
}

/* ------------------------------------------------------------------ hostile layout names */

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    int ok = fp && fputs(text, fp) >= 0;
    if (fp && fclose(fp) != 0) ok = 0;
    return ok ? 0 : -1;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* A model directory: two shards of the fine-tune's tensors, an index, a config.json. */
static int write_model_dir(const char *dir, const char *ft_path)
{
    if (mkdir(dir, 0755) != 0) return -1;
    ddct_st_file *f;
    ddct_err e;
    if (ddct_st_open(&f, ft_path, &e)) return -1;
    int rc = 0;
    char path[700], index[4096];
    size_t o = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int k = 0; k < 2 && !rc; k++) {
        size_t first = k ? 2 : 0, last = k ? ddct_st_count(f) : 2;
        ddct_st_entry ents[NT];
        for (size_t i = first; i < last; i++) {
            const ddct_st_tensor *t = ddct_st_get(f, i);
            ents[i - first] = (ddct_st_entry){t->name, t->dtype, t->ndim, t->shape};
            o += (size_t)snprintf(index + o, sizeof index - o, "%s\"%s\": \"model-%05d-of-00002.safetensors\"",
                                  i ? ", " : "", t->name, k + 1);
        }
        snprintf(path, sizeof path, "%s/model-%05d-of-00002.safetensors", dir, k + 1);
        ddct_st_writer *w;
        rc = ddct_stw_open(&w, path, 1, NULL, ents, last - first, NULL, &e);
        for (size_t i = first; i < last && !rc; i++)
            rc = ddct_stw_write(w, ddct_st_get(f, i)->data, (size_t)ddct_st_get(f, i)->nbytes, &e);
        if (!rc) rc = ddct_stw_commit(w, &e);
        else ddct_stw_abort(w);
    }
    ddct_st_close(f);
    snprintf(index + o, sizeof index - o, "}}\n");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!rc) rc = write_text(path, index);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = write_text(path, "{\"model_type\": \"tiny\"}\n");
    return rc;
}

/* Replace the first `from` in the header JSON of p by `to` (same length), fix the header checksum. */
static int patch_header(uint8_t *p, size_t n, const char *from, const char *to)
{
    size_t fl = strlen(from);
    if (n < 28 || strlen(to) != fl) return -1;
    uint32_t jl = ddct_le32(p + 16);
    if (20 + (uint64_t)jl + 8 > n) return -1;
    for (size_t i = 20; i + fl <= 20 + (size_t)jl; i++)
        if (!memcmp(p + i, from, fl)) {
            memcpy(p + i, to, fl);
            ddct_st64(p + 20 + jl, XXH3_64bits(p, 20 + (size_t)jl));
            return 0;
        }
    return -1;
}

static void hostile_layout(const char *base, const char *ft)
{
    char dir[600], ddct[600], out[600], path[700];
    snprintf(dir, sizeof dir, "%s/dm", g_dir);
    snprintf(ddct, sizeof ddct, "%s/dm.ddct", g_dir);
    CHECK(write_model_dir(dir, ft) == 0, "cannot write the model directory %s", dir);
    ddct_params p;
    ddct_params_default(&p);
    p.threads = 1;
    ddct_CCtx *c = ddct_createCCtx();
    ddct_ErrorCode rc = c ? ddct_compressFiles(c, base, dir, ddct, &p, 1) : DDCT_ERR_NOMEM;
    CHECK(rc == DDCT_OK, "compress a model directory: %s", c ? ddct_CCtx_getErrorMessage(c) : "no context");
    ddct_freeCCtx(c);
    size_t n;
    uint8_t *orig = rc ? NULL : read_file(ddct, &n);
    static const struct {
        const char *from, *to, *escapes; /* escapes: the file it would create, relative to g_dir */
    } cases[] = {
        {"model-00002-of-00002.safetensors", "../el-00002-of-00002.safetensors", "el-00002-of-00002.safetensors"},
        {"model-00002-of-00002.safetensors", "/tmp/ddct-escape.safetensors.xyz", NULL},
        {"config.json", "../fig.json", "fig.json"},
        {"config.json", ".config.jsn", NULL},
        {"model.safetensors.index.json", "../el.safetensors.index.json", "el.safetensors.index.json"},
    };
    for (size_t k = 0; orig && k < sizeof cases / sizeof *cases; k++) {
        uint8_t *q = malloc(n);
        if (!q) break;
        memcpy(q, orig, n);
        int patched = patch_header(q, n, cases[k].from, cases[k].to) == 0;
        CHECK(patched, "'%s' not found in the header", cases[k].from);
        snprintf(path, sizeof path, "%s/evil.ddct", g_dir);
        FILE *fp = patched ? fopen(path, "wb") : NULL;
        int wrote = fp && fwrite(q, 1, n, fp) == n;
        if (fp && fclose(fp) != 0) wrote = 0;
        free(q);
        if (!wrote) continue;
        ddct_DCtx *d = ddct_createDCtx();
        if (!d) break;
        ddct_ErrorCode vr = ddct_verifyFile(d, path, base);
        CHECK(vr != DDCT_OK, "layout name '%s': verify accepts it", cases[k].to);
        snprintf(out, sizeof out, "%s/rebuilt/", g_dir);
        ddct_ErrorCode dr = ddct_decompressFile(d, base, path, out, 0);
        CHECK(dr != DDCT_OK, "layout name '%s': decompress accepts it", cases[k].to);
        CHECK(!exists(out), "layout name '%s': output directory left behind", cases[k].to);
        if (cases[k].escapes) {
            char esc[900];
            snprintf(esc, sizeof esc, "%s/%s", g_dir, cases[k].escapes);
            CHECK(!exists(esc), "layout name '%s': wrote %s", cases[k].to, esc);
            unlink(esc);
        }
        CHECK(!exists("/tmp/ddct-escape.safetensors.xyz"), "layout name '%s': wrote outside", cases[k].to);
        ddct_freeDCtx(d);
        unlink(path);
    }
    /* the untouched file still rebuilds, into the directory only */
    if (orig) {
        ddct_DCtx *d = ddct_createDCtx();
        snprintf(out, sizeof out, "%s/rebuilt/", g_dir);
        ddct_ErrorCode dr = d ? ddct_decompressFile(d, base, ddct, out, 0) : DDCT_ERR_NOMEM;
        CHECK(dr == DDCT_OK, "untouched directory .ddct: %s", d ? ddct_DCtx_getErrorMessage(d) : "no context");
        snprintf(path, sizeof path, "%s/rebuilt/config.json", g_dir);
        CHECK(exists(path), "rebuilt directory lacks config.json");
        ddct_freeDCtx(d);
    }
    free(orig);
    /* clean up */
    static const char *const names[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                        "model.safetensors.index.json", "config.json", NULL};
    for (int k = 0; names[k]; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        unlink(path);
        snprintf(path, sizeof path, "%s/rebuilt/%s", g_dir, names[k]);
        unlink(path);
    }
    rmdir(dir);
    snprintf(path, sizeof path, "%s/rebuilt", g_dir);
    rmdir(path);
    unlink(ddct);
}

static void flip_all(const char *label, const char *path)
{
    size_t n;
    uint8_t *p = read_file(path, &n);
    CHECK(p && n > 0, "%s: cannot read %s", label, path);
    if (!p) return;
    CHECK(accepts(p, n, 1) == 0, "%s: the unmodified file does not verify", label);
    /* a copy of exactly n bytes per trial, so reads past the end are ASan reports */
    uint8_t *q = malloc(n);
    size_t missed = 0;
    for (size_t bit = 0; q && bit < n * 8; bit++) {
        memcpy(q, p, n);
        q[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (accepts(q, n, 1) == 0) {
            if (missed < 5) fprintf(stderr, "%s: flip of bit %zu (byte %zu) not detected\n", label, bit % 8, bit / 8);
            missed++;
        }
    }
    CHECK(missed == 0, "%s: %zu of %zu bit flips not detected", label, missed, n * 8);
    size_t trunc_missed = 0;
    for (size_t len = 0; q && len < n; len++) {
        uint8_t *t = malloc(len ? len : 1);
        if (!t) break;
        memcpy(t, p, len);
        if (accepts(t, len, 0) == 0) trunc_missed++;
        free(t);
    }
    CHECK(trunc_missed == 0, "%s: %zu of %zu truncations accepted", label, trunc_missed, n);
    printf("%s: %zu bytes, %zu bit flips and %zu truncations checked\n", label, n, n * 8, n);
    free(q);
    free(p);
}

int main(void)
{
    if (tu_tmpdir(g_dir, sizeof g_dir, "bitflip")) return 1;
    char base[512], ft[512], out[512];
    snprintf(base, sizeof base, "%s/base.safetensors", g_dir);
    snprintf(ft, sizeof ft, "%s/finetuned.safetensors", g_dir);
    CHECK(write_model(base, 0) == 0, "write %s", base);
    CHECK(write_model(ft, 1) == 0, "write %s", ft);
    static const struct {
        const char *label, *opt, *val;
    } methods[] = {
        {"default", NULL, NULL}, {"bitdelta", "method", "bitdelta"}, {"svd", "method", "svd"},
        {"dwt", "transform", "dwt"}, {"jpeg", "qtable", "jpeg"}, {"rd", "method", "rd"},
    };
    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
        ddct_params p;
        ddct_params_default(&p);
        p.threads = 1;
        if (methods[m].opt) CHECK(ddct_params_set(&p, methods[m].opt, methods[m].val, NULL, 0) == DDCT_OK, "param");
        snprintf(out, sizeof out, "%s/%s.ddct", g_dir, methods[m].label);
        ddct_CCtx *c = ddct_createCCtx();
        ddct_ErrorCode rc = c ? ddct_compressFiles(c, base, ft, out, &p, 1) : DDCT_ERR_NOMEM;
        CHECK(rc == DDCT_OK, "%s: compress: %s", methods[m].label, c ? ddct_CCtx_getErrorMessage(c) : "no context");
        ddct_freeCCtx(c);
        if (rc == DDCT_OK) flip_all(methods[m].label, out);
        if (rc == DDCT_OK && m == 0) other_version(out);
        unlink(out);
    }
    hostile_layout(base, ft);
    unlink(base);
    unlink(ft);
    if (rmdir(g_dir) != 0) fprintf(stderr, "note: %s not empty, left in place\n", g_dir);
    return TEST_SUMMARY();
}
