/*
 * gen_corpus.c — writes the seed corpus of the fuzz targets with deltadct's own code
 * (fuzz/make_corpus.sh drives it; see fuzz/README.md). Deterministic: the same build
 * writes the same bytes.
 *
 *   gen_corpus safetensors DIR      small valid safetensors files (every dtype, metadata,
 *                                   scalars, empty tensors, no tensors, 8 dims) and a few
 *                                   hand-made invalid headers
 *   gen_corpus pair DIR             DIR/base.safetensors + DIR/finetuned.safetensors: a tiny
 *                                   model (F32/BF16/F16 matrices, a 4-D kernel, a norm, an I64
 *                                   buffer equal in both, base-only and fine-tune-only tensors)
 *                                   whose .ddct is a few KB
 *   gen_corpus container DIR        hand-built containers (container writer): no records, an
 *                                   unknown codec id, unknown record flags, a lossy record on an
 *                                   I64 entry
 *   gen_corpus codecs DIR [F.ddct]  fuzz_codecs inputs: every record of the given .ddct files,
 *                                   plus the encoders' output on small deltas for many options
 *   gen_corpus bitreader DIR        fuzz_bitreader inputs: every width, aligned/unaligned,
 *                                   whole and truncated streams
 *   gen_corpus params DIR           fuzz_params inputs: strategies and NAME\0VALUE pairs
 *   gen_corpus rd DIR               fuzz_rd_roundtrip inputs: small deltas (normal, subnormal,
 *                                   zero, constant, rank-one, outliers, extreme floats) in every
 *                                   shape kind, with budgets, error targets and rescale modes
 *   gen_corpus rans DIR             fuzz_rans_w inputs: word blobs of residual-like symbols
 *                                   (every context pattern, 1 to 64 contexts, 0 to 4096 symbols,
 *                                   sparse to dense), a few cut short
 *
 * Files of the codecs/bitreader/params sets are named by a hash of their content (duplicates
 * collapse); the others by what they hold.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/buf.h"
#include "common/dtype.h"
#include "entropy/rans.h"
#include "fuzz.h"
#include "container/container.h"
#include "io/safetensors.h"
#include "quant/quant.h"

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rnext(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double runif(void) { return ((rnext() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double rnorm(void) { return sqrt(-2 * log(runif())) * cos(6.283185307179586 * runif()); }

static int g_fail;
static unsigned g_written;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, msg);
    exit(1);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (n && fwrite(p, 1, n, fp) != n) || fclose(fp) != 0) die(path, strerror(errno));
    g_written++;
}

/* Name by content: 64-bit FNV-1a. */
static void write_hashed(const char *dir, const char *prefix, const void *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    char name[64];
    snprintf(name, sizeof name, "%s-%016llx", prefix, (unsigned long long)h);
    write_file(dir, name, p, n);
}

/* ------------------------------------------------------------------ safetensors */

typedef struct {
    const char *name;
    ddct_dtype dt;
    int ndim;
    uint64_t shape[8];
} tdesc;

static uint64_t tbytes(const tdesc *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n * ddct_dtype_size(t->dt);
}

/* Fill one tensor's bytes: floats from vals (converted), other types from the rng. */
static void fill(const tdesc *t, const float *vals, uint8_t *out)
{
    uint64_t nb = tbytes(t), ne = nb / ddct_dtype_size(t->dt);
    if (ddct_dtype_is_lossy_float(t->dt) && vals) ddct_from_f32(t->dt, vals, (size_t)ne, out);
    else if (t->dt == DDCT_DT_BOOL)
        for (uint64_t i = 0; i < nb; i++) out[i] = (uint8_t)(rnext() & 1);
    else if (t->dt == DDCT_DT_F64)
        for (uint64_t i = 0; i < ne; i++) {
            double d = rnorm();
            memcpy(out + 8 * i, &d, 8);
        }
    else if (t->dt == DDCT_DT_I64)
        for (uint64_t i = 0; i < ne; i++) ddct_st64(out + 8 * i, i);
    else
        for (uint64_t i = 0; i < nb; i++) out[i] = (uint8_t)rnext();
}

/* Write a safetensors file; data[i] holds tensor i's bytes (NULL: random). */
static void write_st(const char *path, const tdesc *t, size_t n, uint8_t *const *data, const char *meta)
{
    ddct_st_entry ents[32];
    memset(ents, 0, sizeof ents);
    ddct_err e;
    if (n > 32) die(path, "too many tensors");
    for (size_t i = 0; i < n; i++) ents[i] = (ddct_st_entry){t[i].name, t[i].dt, t[i].ndim, t[i].shape};
    ddct_st_writer *w;
    if (ddct_stw_open(&w, path, 1, NULL, ents, n, meta, &e)) die(path, e.msg);
    for (size_t i = 0; i < n; i++) {
        uint64_t nb = tbytes(&t[i]);
        uint8_t *buf = NULL;
        if (!data || !data[i]) {
            buf = malloc(nb ? (size_t)nb : 1);
            if (!buf) die(path, "out of memory");
            fill(&t[i], NULL, buf);
            if (ddct_dtype_is_lossy_float(t[i].dt)) {
                uint64_t ne = nb / ddct_dtype_size(t[i].dt);
                float *v = malloc((ne ? ne : 1) * sizeof *v);
                if (!v) die(path, "out of memory");
                for (uint64_t k = 0; k < ne; k++) v[k] = (float)(0.02 * rnorm());
                fill(&t[i], v, buf);
                free(v);
            }
        }
        int rc = ddct_stw_write(w, buf ? buf : data[i], (size_t)nb, &e);
        free(buf);
        if (rc) die(path, e.msg);
    }
    if (ddct_stw_commit(w, &e)) die(path, e.msg);
    g_written++;
}

static void st_file(const char *dir, const char *name, const tdesc *t, size_t n, const char *meta)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_st(path, t, n, NULL, meta);
}

/* A raw file: u64 header length, the header text as given, then `data_len` bytes. */
static void st_raw(const char *dir, const char *name, const char *header, size_t data_len)
{
    size_t hl = strlen(header);
    uint8_t *b = calloc(8 + hl + data_len + 1, 1);
    if (!b) die(name, "out of memory");
    ddct_st64(b, hl);
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)(i * 37u);
    write_file(dir, name, b, 8 + hl + data_len);
    free(b);
}

static void gen_safetensors(const char *dir)
{
    const tdesc one[] = {{"model.layers.0.self_attn.q_proj.weight", DDCT_DT_F32, 2, {4, 8}}};
    st_file(dir, "f32-2d", one, 1, "{\"format\":\"pt\"}");
    const tdesc all[] = {
        {"a.f32", DDCT_DT_F32, 2, {8, 8}},    {"b.f16", DDCT_DT_F16, 2, {4, 4}},   {"c.bf16", DDCT_DT_BF16, 2, {4, 4}},
        {"d.f64", DDCT_DT_F64, 1, {2}},       {"e.i64", DDCT_DT_I64, 1, {3}},      {"f.i32", DDCT_DT_I32, 1, {2}},
        {"g.i16", DDCT_DT_I16, 1, {3}},       {"h.i8", DDCT_DT_I8, 1, {5}},        {"i.u64", DDCT_DT_U64, 1, {1}},
        {"j.u32", DDCT_DT_U32, 1, {2}},       {"k.u16", DDCT_DT_U16, 1, {3}},      {"l.u8", DDCT_DT_U8, 1, {5}},
        {"m.bool", DDCT_DT_BOOL, 1, {3}},     {"n.f8e4m3", DDCT_DT_F8_E4M3, 1, {4}}, {"o.f8e5m2", DDCT_DT_F8_E5M2, 1, {4}},
    };
    st_file(dir, "all-dtypes", all, sizeof all / sizeof *all, "{\"format\":\"pt\",\"note\":\"every dtype\"}");
    const tdesc bf[] = {{"w", DDCT_DT_BF16, 2, {8, 16}}, {"v", DDCT_DT_BF16, 3, {2, 2, 4}}};
    st_file(dir, "bf16", bf, 2, NULL);
    const tdesc hf[] = {{"w", DDCT_DT_F16, 2, {16, 8}}, {"norm.weight", DDCT_DT_F16, 1, {16}}};
    st_file(dir, "f16", hf, 2, NULL);
    const tdesc il[] = {{"position_ids", DDCT_DT_I64, 2, {1, 16}}, {"token_type_ids", DDCT_DT_I64, 1, {4}}};
    st_file(dir, "i64", il, 2, "{}");
    const tdesc odd[] = {{"scalar", DDCT_DT_F32, 0, {0}}, {"empty", DDCT_DT_F32, 2, {0, 4}},
                         {"empty2", DDCT_DT_I64, 1, {0}}, {"x", DDCT_DT_U8, 1, {1}}};
    st_file(dir, "scalar-and-empty", odd, 4, NULL);
    st_file(dir, "no-tensors", NULL, 0, "{\"k\":\"v\"}");
    const tdesc d8[] = {{"eight.dims", DDCT_DT_F32, 8, {1, 2, 1, 2, 1, 2, 1, 2}}};
    st_file(dir, "eight-dims", d8, 1, NULL);
    /* invalid, as starting points for the mutator */
    st_raw(dir, "bad-duplicate",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
           8);
    st_raw(dir, "bad-overlap",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
           8);
    st_raw(dir, "bad-gap",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
           8);
    st_raw(dir, "bad-shape-bytes", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4);
    st_raw(dir, "bad-huge-shape",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
    st_raw(dir, "bad-dtype", "{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    st_raw(dir, "bad-metadata", "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    uint8_t big[16] = {0};
    ddct_st64(big, UINT64_C(1) << 63);
    memcpy(big + 8, "{}      ", 8);
    write_file(dir, "bad-header-length", big, sizeof big);
}

/* ------------------------------------------------------------------ tiny model pair */

static void gen_pair(const char *dir)
{
    const tdesc ft[] = {
        {"model.layers.0.self_attn.q_proj.weight", DDCT_DT_F32, 2, {32, 32}},
        {"model.layers.0.mlp.up_proj.weight", DDCT_DT_BF16, 2, {16, 32}},
        {"model.layers.0.mlp.down_proj.weight", DDCT_DT_F16, 2, {32, 16}},
        {"model.layers.0.conv.weight", DDCT_DT_F32, 4, {4, 4, 4, 4}},
        {"model.layers.0.odd.weight", DDCT_DT_F32, 2, {17, 19}},
        {"model.norm.weight", DDCT_DT_F32, 1, {32}},
        {"position_ids", DDCT_DT_I64, 2, {1, 8}},
        {"model.layers.0.extra.bias", DDCT_DT_F32, 1, {16}},
        {"finetune_only.weight", DDCT_DT_F32, 2, {4, 4}},
    };
    const size_t nft = sizeof ft / sizeof *ft;
    tdesc base[16];
    size_t nb = 0;
    uint8_t *bdata[16], *fdata[16];
    for (size_t i = 0; i < nft; i++) {
        uint64_t bytes = tbytes(&ft[i]), ne = bytes / ddct_dtype_size(ft[i].dt);
        uint8_t *b = malloc((size_t)bytes + 1), *f = malloc((size_t)bytes + 1);
        float *w = malloc((size_t)(ne + 1) * sizeof *w), *d = malloc((size_t)(ne + 1) * sizeof *d);
        if (!b || !f || !w || !d) die(dir, "out of memory");
        int norm = strstr(ft[i].name, "norm") != NULL;
        for (uint64_t k = 0; k < ne; k++) {
            w[k] = norm ? (float)(1 + 0.05 * rnorm()) : (float)(0.02 * rnorm());
            d[k] = w[k] + (float)(0.002 * rnorm() * (1 + (k % 7 == 0)));
        }
        fill(&ft[i], w, b);
        fill(&ft[i], d, f);
        if (ft[i].dt == DDCT_DT_I64) memcpy(f, b, (size_t)bytes); /* equal: the SAME codec */
        fdata[i] = f;
        if (strncmp(ft[i].name, "finetune_only", 13)) {
            base[nb] = ft[i];
            bdata[nb++] = b;
        } else {
            free(b);
        }
        free(w);
        free(d);
    }
    base[nb] = (tdesc){"base_only.weight", DDCT_DT_F32, 2, {2, 4}};
    bdata[nb] = NULL;
    nb++;
    char path[4096];
    snprintf(path, sizeof path, "%s/base.safetensors", dir);
    write_st(path, base, nb, bdata, "{\"format\":\"pt\"}");
    snprintf(path, sizeof path, "%s/finetuned.safetensors", dir);
    write_st(path, ft, nft, fdata, "{\"format\":\"pt\",\"finetuned\":\"yes\"}");
    for (size_t i = 0; i < nb; i++) free(bdata[i]);
    for (size_t i = 0; i < nft; i++) free(fdata[i]);
}

/* ------------------------------------------------------------------ containers */

static void ctr_file(const char *dir, const char *name, const ddct_ctr_entry *en, const ddct_record *rec, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ddct_err e;
    ddct_ctr_writer *w;
    if (ddct_ctrw_open(&w, path, 1, NULL, "{\"format\":\"ddct\",\"metadata\":null,\"base_only\":[]}", &e))
        die(path, e.msg);
    for (size_t i = 0; i < n; i++)
        if (ddct_ctrw_add(w, &en[i], &rec[i], &e)) die(path, e.msg);
    if (ddct_ctrw_commit(w, &e)) die(path, e.msg);
    g_written++;
}

static void gen_container(const char *dir)
{
    ctr_file(dir, "no-records", NULL, NULL, 0);
    static const uint8_t five[5] = {0, 0, 0, 0x80, 0x3f}; /* bitdelta params: version 0, alpha 1.0 */
    static const uint8_t bits[2] = {0x5a, 0x00};
    ddct_ctr_entry en[3];
    memset(en, 0, sizeof en);
    en[0] = (ddct_ctr_entry){.name = "unknown.codec", .dtype = DDCT_DT_F32, .ndim = 2, .shape = {2, 4}};
    en[1] = (ddct_ctr_entry){.name = "unknown.flags", .dtype = DDCT_DT_F32, .ndim = 2, .shape = {2, 4}};
    en[2] = (ddct_ctr_entry){.name = "lossy.on.int", .dtype = DDCT_DT_I64, .ndim = 1, .shape = {8}};
    ddct_record rec[3];
    memset(rec, 0, sizeof rec);
    rec[0] = (ddct_record){.codec = 9, .params = five, .params_len = 5, .data = bits, .data_len = 1};
    rec[1] = (ddct_record){.codec = DDCT_CODEC_BITDELTA, .flags = 2, .params = five, .params_len = 5, .data = bits,
                           .data_len = 1};
    rec[2] = (ddct_record){.codec = DDCT_CODEC_BITDELTA, .flags = DDCT_REC_HAS_BASE, .base_fp = 0x0123456789abcdefull,
                           .params = five, .params_len = 5, .data = bits, .data_len = 1};
    ctr_file(dir, "odd-records", en, rec, 3);
    ctr_file(dir, "bitdelta-one", &en[2], &rec[2], 1);
}

/* ------------------------------------------------------------------ codec inputs */

/* One fuzz_codecs input (layout in fuzz_codecs.c). */
static void codec_input(const char *dir, unsigned id, unsigned flags_bits, uint64_t nelem, unsigned elsize_log2,
                        const ddct_record *rec)
{
    if (rec->params_len > 0xffff || rec->side_len > 0xffff || nelem > (1u << 18)) return; /* does not fit */
    ddct_buf b;
    ddct_buf_init(&b);
    /* byte 0: id (0..4), bit 7 = has base; flags_bits adds threads/rescale/base bits */
    ddct_buf_u8(&b, (uint8_t)(id | flags_bits | (rec->flags & 1 ? 0x80 : 0)));
    ddct_buf_u32(&b, (uint32_t)nelem);
    ddct_buf_u8(&b, (uint8_t)elsize_log2);
    ddct_buf_u16(&b, (uint16_t)rec->params_len);
    ddct_buf_u16(&b, (uint16_t)rec->side_len);
    ddct_buf_put(&b, rec->params, rec->params_len);
    ddct_buf_put(&b, rec->side, rec->side_len);
    ddct_buf_put(&b, rec->data, rec->data_len);
    if (b.failed) die(dir, "out of memory");
    if (b.len <= 64 * 1024) write_hashed(dir, "rec", b.p, b.len);
    ddct_buf_free(&b);
}

static unsigned log2_size(size_t s) { return s == 8 ? 3 : s == 4 ? 2 : s == 2 ? 1 : 0; }

static void codecs_from_file(const char *dir, const char *path)
{
    ddct_ctr_reader *r;
    ddct_err e;
    if (ddct_ctr_open(&r, path, &e)) die(path, e.msg);
    for (size_t i = 0; i < ddct_ctr_count(r); i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        ddct_record rec;
        if (ddct_ctr_record(r, i, 1, &rec, &e)) die(path, e.msg);
        codec_input(dir, rec.codec, 0x40, en->nelem, log2_size(ddct_dtype_size(en->dtype)), &rec);
    }
    ddct_ctr_close(r);
}

static void encode_lossy(const char *dir, const ddct_codec_traits *ct, int ndim, const uint64_t *shape,
                         const ddct_params *p, unsigned flags_bits)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = malloc((size_t)(n + 1) * sizeof *d);
    if (!d) die(dir, "out of memory");
    for (uint64_t i = 0; i < n; i++) d[i] = (float)(0.01 * rnorm() + (i % 5 == 0 ? 0.003 : 0));
    ddct_lossy_in in = {.delta = d, .ndim = ndim, .shape = shape, .nelem = n, .params = p, .threads = 1};
    ddct_enc_out out;
    ddct_enc_out_init(&out);
    ddct_err e;
    if (ct->encode_lossy(&in, &out, &e) || ddct_enc_out_check(&out, &e)) die(ct->name, e.msg);
    ddct_record rec = {.codec = ct->id, .params = out.params.p, .params_len = out.params.len, .side = out.side.p,
                       .side_len = out.side.len, .data = out.data.p, .data_len = out.data.len};
    codec_input(dir, ct->id, flags_bits, n, 2, &rec);
    ddct_enc_out_free(&out);
    free(d);
}

/* rd version 1 with a four-state factor stream (>= 16384 symbols): a 256 x 256 delta of rank 48
 * plus a little noise, so the encoder keeps rank >= 32 (>= 32 * 512 factor symbols). */
static void encode_rd_four_state(const char *dir)
{
    enum { R = 256, C = 256, K = 48 };
    float *d = calloc((size_t)R * C, sizeof *d);
    double *u = malloc(R * sizeof *u), *v = malloc(C * sizeof *v);
    if (!d || !u || !v) die(dir, "out of memory");
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < R; i++) u[i] = rnorm() / (1 + k);
        for (int j = 0; j < C; j++) v[j] = 0.01 * rnorm();
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) d[i * C + j] += (float)(u[i] * v[j]);
    }
    for (int i = 0; i < R * C; i++) d[i] += (float)(5e-4 * rnorm());
    static const uint64_t shape[2] = {R, C};
    ddct_params p;
    ddct_params_default(&p);
    p.method = DDCT_METHOD_RD;
    p.bpp = 3;
    ddct_lossy_in in = {.delta = d, .ndim = 2, .shape = shape, .nelem = (uint64_t)R * C, .params = &p, .threads = 1};
    ddct_enc_out out;
    ddct_enc_out_init(&out);
    ddct_err e;
    if (ddct_codec_rd.encode_lossy(&in, &out, &e) || ddct_enc_out_check(&out, &e)) die("rd", e.msg);
    if (out.side.len / 4 * (R + C) < 16384) die("rd", "four-state seed: the encoder kept a lower rank");
    ddct_record rec = {.codec = DDCT_CODEC_RD, .params = out.params.p, .params_len = out.params.len,
                       .side = out.side.p, .side_len = out.side.len, .data = out.data.p, .data_len = out.data.len};
    codec_input(dir, DDCT_CODEC_RD, 0x08, (uint64_t)R * C, 2, &rec);
    ddct_enc_out_free(&out);
    free(d);
    free(u);
    free(v);
}

static int fill_buf(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    ddct_buf_put(opaque, p, n);
    return ddct_buf_check(opaque, e);
}

/* A raw record of nbytes: the encoder's own choice (chunk 0), or framed (flags bit 3: one zstd
 * frame per chunk) with a small chunk, so that a seed holds several frames. */
static void encode_raw(const char *dir, uint64_t nbytes, size_t elsize, int with_base, uint64_t chunk)
{
    uint8_t *ft = malloc((size_t)nbytes + 1), *base = malloc((size_t)nbytes + 1);
    if (!ft || !base) die(dir, "out of memory");
    for (uint64_t i = 0; i < nbytes; i++) {
        base[i] = (uint8_t)(i * 131u + 7u); /* fuzz_codecs' fake base */
        ft[i] = (uint8_t)(rnext() % 4 == 0 ? rnext() : base[i]);
    }
    ddct_lossless_in in = {.ft = ft, .base = with_base ? base : NULL, .nbytes = nbytes, .elsize = elsize,
                           .level = 3, .threads = 1};
    ddct_enc_out out;
    ddct_enc_out_init(&out);
    ddct_err e;
    int rc;
    if (!chunk) {
        rc = ddct_codec_raw.encode_lossless(&in, &out, &e);
    } else {
        ddct_buf_u8(&out.params, (uint8_t)((with_base ? 1 : 0) | (elsize > 1 ? 2 : 0) | 4 | 8));
        ddct_buf_varint(&out.params, chunk);
        rc = ddct_raw_stream(&in, out.params.p, out.params.len, fill_buf, &out.data, &e);
    }
    if (rc || ddct_enc_out_check(&out, &e)) die("raw", e.msg);
    ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = out.params.p, .params_len = out.params.len,
                       .data = out.data.p, .data_len = out.data.len};
    codec_input(dir, DDCT_CODEC_RAW, with_base ? 0x40 : 0, nbytes / elsize, log2_size(elsize), &rec);
    ddct_enc_out_free(&out);
    free(ft);
    free(base);
}

static void gen_codecs(const char *dir, int nfiles, char **files)
{
    for (int i = 0; i < nfiles; i++) codecs_from_file(dir, files[i]);
    static const uint64_t s2[2] = {24, 40}, s3[3] = {3, 10, 12}, sodd[2] = {13, 7};
    ddct_params p;
    struct {
        const char *name, *value;
    } variants[] = {
        {NULL, NULL},
        {"patch", "8"},
        {"patch", "2"},
        {"patch", "5"},
        {"transform", "none"},
        {"transform", "dwt"},
        {"qtable", "jpeg"},
        {"importance", "lowfreq"},
        {"bits", "4:0.34,2:0.33,0:0.33"},
        {"bits", "8:0.25,1:0.25,3:0.5"},
        {"bits", "1:1"},
        {"bits", "0:1"},
    };
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        ddct_params_default(&p);
        p.patch = 8;
        if (variants[v].name && ddct_params_set(&p, variants[v].name, variants[v].value, NULL, 0))
            die("params", variants[v].value);
        encode_lossy(dir, &ddct_codec_patch, 2, s2, &p, (unsigned)(v % 4) << 3);
        if (v % 3 == 0) encode_lossy(dir, &ddct_codec_patch, 3, s3, &p, 0);
        if (v % 4 == 1) encode_lossy(dir, &ddct_codec_patch, 2, sodd, &p, 0x10);
    }
    /* DWT variants */
    const char *dwt[][2] = {{"wavelet", "cdf97"}, {"dwt-keep", "ll_only"}, {"dwt-keep", "ll_lh_hl"}, {"dwt-levels", "3"}};
    for (size_t v = 0; v < 4; v++) {
        ddct_params_default(&p);
        p.patch = 8;
        p.transform = DDCT_TRANSFORM_DWT;
        if (ddct_params_set(&p, dwt[v][0], dwt[v][1], NULL, 0)) die("params", dwt[v][1]);
        encode_lossy(dir, &ddct_codec_patch, 2, s2, &p, 0);
    }
    ddct_params_default(&p);
    p.rescale = 0;
    p.patch = 4;
    encode_lossy(dir, &ddct_codec_patch, 2, sodd, &p, 0x20);
    /* bitdelta and svd */
    ddct_params_default(&p);
    encode_lossy(dir, &ddct_codec_bitdelta, 2, s2, &p, 0);
    encode_lossy(dir, &ddct_codec_bitdelta, 2, sodd, &p, 0x08);
    const double bpps[] = {0.5, 1, 4, 16};
    for (size_t v = 0; v < 4; v++) {
        ddct_params_default(&p);
        p.method = DDCT_METHOD_SVD;
        p.bpp = bpps[v];
        encode_lossy(dir, &ddct_codec_svd, 2, s2, &p, 0);
        if (v == 2) encode_lossy(dir, &ddct_codec_svd, 3, s3, &p, 0x20);
        if (v == 3) encode_lossy(dir, &ddct_codec_svd, 2, sodd, &p, 0);
    }
    /* rd: budgets and error targets (the codec searches its step), 2-D, 3-D and odd shapes */
    const double rd_bpp[] = {0.5, 2, 6};
    for (size_t v = 0; v < 3; v++) {
        ddct_params_default(&p);
        p.method = DDCT_METHOD_RD;
        p.bpp = rd_bpp[v];
        p.rescale = v != 1;
        encode_lossy(dir, &ddct_codec_rd, 2, s2, &p, (unsigned)v << 4);
        if (v == 1) encode_lossy(dir, &ddct_codec_rd, 3, s3, &p, 0x08);
        if (v == 2) encode_lossy(dir, &ddct_codec_rd, 2, sodd, &p, 0);
    }
    ddct_params_default(&p);
    p.method = DDCT_METHOD_RD;
    p.error = 0.2;
    encode_lossy(dir, &ddct_codec_rd, 2, s2, &p, 0);
    static const uint64_t sbig[2] = {64, 48};
    encode_lossy(dir, &ddct_codec_rd, 2, sbig, &p, 0x08);
    /* lossless */
    encode_raw(dir, 256, 4, 1, 0);
    encode_raw(dir, 256, 4, 0, 0);
    encode_raw(dir, 96, 2, 1, 0);
    encode_raw(dir, 64, 8, 0, 0);
    encode_raw(dir, 33, 1, 1, 0);
    encode_raw(dir, 300, 4, 1, 64);
    encode_raw(dir, 250, 2, 0, 32);
    ddct_record same = {.codec = DDCT_CODEC_SAME, .flags = DDCT_REC_HAS_BASE};
    codec_input(dir, DDCT_CODEC_SAME, 0x40, 16, 2, &same);
    encode_rd_four_state(dir); /* last: the seeds above keep their random streams */
}

/* ------------------------------------------------------------------ bit streams */

static void gen_bitreader(const char *dir)
{
    for (int bits = 0; bits <= 17; bits++) {
        for (int variant = 0; variant < 3; variant++) {
            /* variant 0: aligned, exact stream; 1: unaligned start; 2: stream short by 3 bytes */
            int skip = variant == 1 ? 3 + bits % 5 : 0;
            size_t n = 40 + (size_t)bits * 7 + (size_t)variant * 64;
            size_t len = ddct_bitpack_bytes((uint64_t)skip + (uint64_t)n * (uint64_t)(bits > 16 ? 0 : bits) + 24);
            if (variant == 2) len = len > 3 ? len - 3 : 0;
            uint8_t *b = malloc(8 + len + 1);
            if (!b) die(dir, "out of memory");
            b[0] = (uint8_t)bits;
            b[1] = (uint8_t)skip;
            b[2] = (uint8_t)n;
            b[3] = (uint8_t)(n >> 8);
            b[4] = 1;
            b[5] = 7;
            b[6] = 24;
            b[7] = (uint8_t)(bits + 1);
            for (size_t i = 0; i < len; i++) b[8 + i] = (uint8_t)rnext();
            write_hashed(dir, "bits", b, 8 + len);
            free(b);
        }
    }
}

/* ------------------------------------------------------------------ option strings */

static void gen_params(const char *dir)
{
    static const char *const strategies[] = {
        "2:0.5,0:0.5", "4:0.34,2:0.33,0:0.33", "8:0.1,3:0.3,2:0.6", "1:1", "0:1",
        "8:0.0625,7:0.0625,6:0.0625,5:0.0625,4:0.0625,3:0.0625,2:0.0625,1:0.0625,0:0.5",
        "2:0.5,0:0.5005", "2:.5,0:5e-1", "+2:0.5,0:0.5", " 2:0.5,0:0.5", "2:0x1p-1,0:0.5",
        "3:0.5", "2:0.5,", "2:0.5,2:0.5", "9:1", "-1:1", "2:nan,0:1", "2:inf", "2:1e-400,0:1", "2:0.5 0:0.5",
        "", ":", "2", "2:", "99999999999999999999:1", "2:1,0:0,1:0,3:0,4:0,5:0,6:0,7:0,8:0,0:0,1:0,2:0,3:0,4:0,5:0,6:0,7:0"};
    for (size_t i = 0; i < sizeof strategies / sizeof *strategies; i++)
        write_hashed(dir, "strategy", strategies[i], strlen(strategies[i]));
    static const char *const pairs[][2] = {
        {"bits", "2:0.5,0:0.5"}, {"method", "svd"},        {"method", "rd"},        {"error", "0.1"},
        {"error", "1"},          {"error", "1e-30"},        {"method", "bitdelta"},  {"method", "dct"},
        {"transform", "dwt"},    {"transform", "none"},     {"wavelet", "cdf97"},     {"dwt-keep", "ll_only"},
        {"dwt-keep", "ll_lh_hl"}, {"importance", "lowfreq"}, {"qtable", "jpeg"},       {"qtable", "none"},
        {"patch", "16"},         {"patch", "128"},          {"patch", "1"},           {"patch", "0x10"},
        {"lowfreq-k", "4"},      {"dwt-levels", "6"},       {"dwt-levels", "7"},      {"threads", "1024"},
        {"zstd-level", "22"},    {"zstd-level", "-1"},      {"bpp", "1.5"},           {"bpp", "32"},
        {"bpp", "1e-320"},       {"bpp", "nan"},            {"frobnicate", "1"},      {"", ""},
        {"patch", "9223372036854775808"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char buf[256];
        size_t a = strlen(pairs[i][0]), b = strlen(pairs[i][1]);
        memcpy(buf, pairs[i][0], a);
        buf[a] = 0;
        memcpy(buf + a + 1, pairs[i][1], b);
        write_hashed(dir, "option", buf, a + 1 + b);
    }
}

/* ------------------------------------------------------------------ rd round trips */

/* Value-stream pieces (layout in fuzz_rd_roundtrip.c). */
enum { V_NORMAL, V_SUBNORMAL, V_ZERO, V_REPEAT, V_EXTREME, V_OUTLIERS, V_INTS, V_MIX };

static void rd_values(ddct_buf *b, int kind, unsigned count)
{
    static const float extreme[] = {3.4e38f, -3.0e38f, 1e30f, -1e-30f, 1.17549435e-38f, 1e-45f, -0.0f, 65504.0f,
                                    -65504.0f, 1e20f, 2.5e-39f, 1.0f};
    for (unsigned k = 0; k < count; k++) {
        int kk = kind == V_MIX ? (int)(rnext() % V_MIX) : kind;
        switch (kk) {
        case V_NORMAL:
            ddct_buf_u8(b, 0x80);
            ddct_buf_u8(b, (uint8_t)(128 + (int)lrint(fmax(-127, fmin(127, 24 * rnorm())))));
            break;
        case V_SUBNORMAL: /* int8 * 2^(4e - 150), e in 0..5: subnormal */
            ddct_buf_u8(b, (uint8_t)(0x40 | rnext() % 6));
            ddct_buf_u8(b, (uint8_t)rnext());
            break;
        case V_ZERO:
            ddct_buf_u8(b, 0x00);
            break;
        case V_REPEAT:
            ddct_buf_u8(b, (uint8_t)(0x20 | rnext() % 32));
            break;
        case V_EXTREME: {
            float f = extreme[rnext() % (sizeof extreme / sizeof *extreme)];
            uint32_t u;
            memcpy(&u, &f, 4);
            ddct_buf_u8(b, 0xc0);
            ddct_buf_u32(b, u);
            break;
        }
        case V_OUTLIERS: /* mostly tiny (scale 2^-50 .. ), one in 16 about 1e4 times larger */
            if (rnext() % 16) {
                ddct_buf_u8(b, (uint8_t)(0x40 | 25));
                ddct_buf_u8(b, (uint8_t)(rnext() % 64));
            } else {
                ddct_buf_u8(b, (uint8_t)(0x40 | 29));
                ddct_buf_u8(b, (uint8_t)(rnext() % 2 ? 100 : 156));
            }
            break;
        default: /* V_INTS: small integers times 2^-10 */
            ddct_buf_u8(b, (uint8_t)(0x40 | 35));
            ddct_buf_u8(b, (uint8_t)(rnext() % 9 - 4));
            break;
        }
    }
}

/* One fuzz_rd_roundtrip input: header bytes, then `count` values of `kind`. */
static void rd_seed(const char *dir, unsigned h0, unsigned rows, unsigned cols, unsigned target, unsigned h4, int kind,
                    unsigned count)
{
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_buf_u8(&b, (uint8_t)h0);
    ddct_buf_u8(&b, (uint8_t)(rows - 1));
    ddct_buf_u8(&b, (uint8_t)(cols - 1));
    ddct_buf_u8(&b, (uint8_t)target);
    ddct_buf_u8(&b, (uint8_t)h4);
    ddct_buf_u8(&b, (uint8_t)rnext());
    rd_values(&b, kind, count);
    if (b.failed) die(dir, "out of memory");
    write_hashed(dir, "rd", b.p, b.len);
    ddct_buf_free(&b);
}

static void gen_rd(const char *dir)
{
    /* header byte 0: rescale (bits 0-1), error target (bit 2), threads (bits 3-4), shape (5-7) */
#define H0(rescale, err, thr, shape) ((rescale) | ((err) << 2) | ((thr) << 3) | ((shape) << 5))
    /* target byte: bpp 0.05 * 160^(v / 255): 0.25 at 81, 0.5 at 115, 1 at 150, 2 at 184, 8 at 255 */
    static const unsigned tgt[] = {0, 81, 115, 150, 184, 255};
    /* every shape kind with normal values, at several budgets and rescale modes */
    for (unsigned shape = 0; shape < 8; shape++) {
        static const unsigned dims[8][2] = {{24, 40}, {64, 64}, {3, 5}, {17, 33}, {4, 64}, {8, 16}, {16, 64}, {64, 20}};
        rd_seed(dir, H0(shape % 3, 0, shape % 3, shape), dims[shape][0], dims[shape][1], tgt[shape % 6], 40,
                V_NORMAL, dims[shape][0] * dims[shape][1] < 600 ? dims[shape][0] * dims[shape][1] : 600);
    }
    /* error targets (0.1 at v = 129, 0.5 at v = 221) */
    rd_seed(dir, H0(0, 1, 0, 0), 32, 32, 129, 40, V_NORMAL, 1024);
    rd_seed(dir, H0(1, 1, 1, 4), 8, 64, 221, 40, V_NORMAL, 512);
    rd_seed(dir, H0(2, 1, 2, 6), 2, 64, 129, 40, V_MIX, 128);
    rd_seed(dir, H0(0, 1, 1, 0), 16, 16, 0, 40, V_SUBNORMAL, 256);
    /* subnormal, zero, constant (repeats), extreme floats, outliers, small integers */
    rd_seed(dir, H0(0, 0, 0, 0), 64, 64, 150, 40, V_SUBNORMAL, 400);
    rd_seed(dir, H0(2, 0, 1, 7), 64, 8, 184, 40, V_SUBNORMAL, 64);
    rd_seed(dir, H0(0, 0, 2, 0), 64, 64, 150, 40, V_ZERO, 1);
    rd_seed(dir, H0(1, 0, 0, 0), 1, 1, 184, 40, V_ZERO, 1);
    rd_seed(dir, H0(2, 1, 1, 4), 4, 64, 221, 40, V_ZERO, 0);
    rd_seed(dir, H0(0, 0, 0, 0), 64, 64, 150, 40, V_NORMAL, 1);  /* one value, cycled: constant */
    rd_seed(dir, H0(1, 0, 1, 6), 1, 64, 184, 40, V_NORMAL, 1);
    rd_seed(dir, H0(2, 0, 2, 7), 64, 1, 115, 40, V_NORMAL, 1);
    rd_seed(dir, H0(0, 0, 0, 4), 4, 64, 150, 40, V_NORMAL, 1);
    rd_seed(dir, H0(0, 0, 1, 0), 17, 17, 255, 40, V_REPEAT, 12);
    rd_seed(dir, H0(0, 0, 0, 0), 24, 24, 150, 40, V_EXTREME, 40);
    rd_seed(dir, H0(2, 0, 1, 0), 8, 8, 255, 40, V_EXTREME, 64);
    rd_seed(dir, H0(1, 1, 2, 3), 6, 10, 129, 40, V_EXTREME, 20);
    rd_seed(dir, H0(0, 0, 0, 0), 64, 64, 115, 40, V_OUTLIERS, 4096);
    rd_seed(dir, H0(2, 0, 1, 6), 1, 64, 150, 40, V_OUTLIERS, 64);
    rd_seed(dir, H0(1, 1, 2, 0), 20, 30, 129, 40, V_OUTLIERS, 600);
    rd_seed(dir, H0(0, 0, 0, 0), 32, 48, 150, 40, V_INTS, 1536);
    rd_seed(dir, H0(2, 0, 2, 5), 12, 12, 184, 40, V_MIX, 144);
    rd_seed(dir, H0(0, 0, 1, 0), 48, 48, 81, 40, V_MIX, 300);
    /* tiny shapes */
    static const unsigned tiny[][2] = {{1, 1}, {2, 2}, {3, 5}, {16, 16}, {17, 17}, {1, 2}, {2, 1}};
    for (unsigned t = 0; t < sizeof tiny / sizeof *tiny; t++)
        rd_seed(dir, H0(t % 3, t == 3, t % 3, 0), tiny[t][0], tiny[t][1], tgt[t % 6], 40, V_NORMAL,
                tiny[t][0] * tiny[t][1]);
    /* structure: rank one, rank one + values, repeated rows; normal scales from 2^-40 to 2^23 */
    rd_seed(dir, H0(0, 0, 0, 0), 40, 56, 150, 0x40 | 40, V_NORMAL, 96);
    rd_seed(dir, H0(2, 0, 1, 0), 64, 64, 184, 0x80 | 40, V_NORMAL, 200);
    rd_seed(dir, H0(1, 1, 2, 0), 32, 24, 129, 0xc0 | 40, V_NORMAL, 24);
    rd_seed(dir, H0(0, 0, 0, 0), 16, 48, 150, 0x40 | 0, V_NORMAL, 64);
    rd_seed(dir, H0(2, 0, 1, 0), 16, 48, 150, 63, V_NORMAL, 300);
    rd_seed(dir, H0(0, 0, 2, 4), 8, 40, 255, 0x80 | 63, V_MIX, 200);
#undef H0
}

/* fuzz_rans_w seeds: header (pattern, k, n, seed; fuzz_rans_w.c) + a word blob of n symbols in
 * the contexts fuzz_rans_ctx gives, each context with its own spread; cut: keep that many bytes of
 * the blob (0: all). */
static void rans_seed(const char *dir, int pattern, int k, size_t n, uint32_t seed, double spread, size_t cut)
{
    uint8_t *ctx = malloc(n ? n : 1);
    uint16_t *sym = malloc((n ? n : 1) * sizeof *sym);
    if (!ctx || !sym) die("rans", "out of memory");
    fuzz_rans_ctx(ctx, n, pattern, k, seed);
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        const double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
        const double q = spread / (1.0 + ctx[i]); /* geometric, wider in lower contexts */
        int a = q > 0 ? (int)(log(1.0 - u) / log(q < 0.99 ? q : 0.99)) : 0;
        sym[i] = (uint16_t)(a < 4095 ? a : 4095);
    }
    ddct_buf b;
    ddct_buf_init(&b);
    const uint8_t h[7] = {(uint8_t)(pattern | (k - 1) << 2), (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)seed,
                          (uint8_t)(seed >> 8), (uint8_t)(seed >> 16), (uint8_t)(seed >> 24)};
    ddct_buf_put(&b, h, sizeof h);
    ddct_err e;
    if (ddct_rans_encode_w(sym, ctx, n, k, 0, &b, &e)) die("rans", e.msg);
    char name[96];
    snprintf(name, sizeof name, "w-p%d-k%d-n%zu-s%.2f-%u%s", pattern, k, n, spread, (unsigned)seed, cut ? "-cut" : "");
    write_file(dir, name, b.p, cut && cut + 7 < b.len ? cut + 7 : b.len);
    ddct_buf_free(&b);
    free(ctx);
    free(sym);
}

static void gen_rans(const char *dir)
{
    static const size_t ns[] = {0, 1, 17, 255, 1000, 4096};
    for (int t = 0; t < 16; t++) {
        const int pattern = t % 4, k = t % 5 == 0 ? 1 : t % 7 == 0 ? 64 : 1 + (t * 5) % 12;
        rans_seed(dir, pattern, k, ns[t % 6], 1000u + (uint32_t)t, t % 3 == 0 ? 0.05 : t % 3 == 1 ? 0.5 : 0.9, 0);
    }
    rans_seed(dir, 1, 6, 4096, 7, 0.0, 0);   /* one symbol everywhere: single-symbol tables */
    rans_seed(dir, 1, 6, 4096, 8, 0.97, 0);  /* wide alphabets */
    rans_seed(dir, 3, 9, 3000, 9, 0.6, 40);  /* cut short */
    rans_seed(dir, 2, 3, 2000, 10, 0.3, 300);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_corpus safetensors|pair|container|codecs|bitreader|params|rd|rans DIR [FILE.ddct...]\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2];
    if (!strcmp(mode, "safetensors")) gen_safetensors(dir);
    else if (!strcmp(mode, "pair")) gen_pair(dir);
    else if (!strcmp(mode, "container")) gen_container(dir);
    else if (!strcmp(mode, "codecs")) gen_codecs(dir, argc - 3, argv + 3);
    else if (!strcmp(mode, "bitreader")) gen_bitreader(dir);
    else if (!strcmp(mode, "params")) gen_params(dir);
    else if (!strcmp(mode, "rd")) gen_rd(dir);
    else if (!strcmp(mode, "rans")) gen_rans(dir);
    else {
        fprintf(stderr, "gen_corpus: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("gen_corpus %s: %u files in %s\n", mode, g_written, dir);
    return g_fail;
}
