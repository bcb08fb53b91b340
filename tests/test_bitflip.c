/*
 * test_bitflip.c — every single-bit corruption of a .ddct is detected.
 *
 * Writes a tiny base / fine-tune pair (ddct_stw_open), compresses it with ddct_compressFiles
 * with several methods (a file of ~1-3 KB each), then for every bit of the file in turn:
 * flip it and require that ddct_ctr_open_mem fails or some record read with verify=1 fails;
 * the records that still parse with verify=0 also go through their decoder, which must not
 * crash. Also: every truncation of the file is rejected by ddct_ctr_open_mem, and the
 * unmodified file opens and verifies; a file of another format version (header checksum made
 * valid again) is rejected as DDCT_ERR_VERSION.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ddct_bitflip.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
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
    unlink(base);
    unlink(ft);
    rmdir(g_dir);
    return TEST_SUMMARY();
}
