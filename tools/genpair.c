/*
 * genpair.c — writes synthetic base / fine-tune safetensors pairs for the demo, tests and benches.
 *
 *   ddct-genpair OUTDIR [--kind demo|llama] [--params 0.5B|1B|3B|8B] [--dtype F32|F16|BF16] [--seed N]
 *                [--shards N]
 *
 * demo:  a small transformer-like model (~1.3 M params) with every case the codec must handle:
 *        2-D projections, embeddings and norms (lossless by default), a 4-D conv kernel, a
 *        depthwise kernel, an odd-shaped matrix, an int64 buffer, a tensor with zero delta,
 *        a tensor only in the fine-tune, a tensor only in the base, and __metadata__.
 * llama: the layer shapes of the Llama-3.2/3.1 family scaled to the requested size.
 * The fine-tune is base + delta, where delta imitates a supervised fine-tune: relative norm
 * 0.3-2% varying by layer, heavy-tailed (Student-t, 3 dof) entries, row/column scales and a
 * low-rank part, so it is neither Gaussian nor trivially compressible.
 * Writes OUTDIR/base.safetensors and OUTDIR/finetuned.safetensors; with --shards N > 1, two
 * Hugging Face style directories OUTDIR/base/ and OUTDIR/finetuned/, each with
 * model-0000k-of-0000N.safetensors (tensors split into runs of about equal bytes),
 * model.safetensors.index.json (metadata.total_size, weight_map), config.json and tokenizer.json.
 * Deterministic in --seed (and independent of the thread count).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dtype.h"
#include "io/safetensors.h"
#include <jansson.h>

typedef struct {
    char name[96];
    ddct_dtype dtype;
    int ndim;
    uint64_t shape[4];
    int in_base, in_ft;
    int zero_delta;
    double rel; /* relative delta norm */
} spec;

static uint64_t rng_state;
static uint64_t rnext(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double runif(void) { return ((rnext() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double rnorm(void) { return sqrt(-2 * log(runif())) * cos(6.283185307179586 * runif()); }
static double rstudent3(void)
{
    double z = rnorm(), a = rnorm(), b = rnorm(), d = rnorm();
    double c = a * a + b * b + d * d; /* chi-square, 3 dof */
    return z / sqrt(c / 3 + 1e-12) / sqrt(3.0); /* unit-ish variance */
}

static uint64_t nelem(const spec *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

static void add(spec *v, int *n, const char *name, ddct_dtype dt, int ndim, uint64_t a, uint64_t b, uint64_t c,
                uint64_t d, double rel)
{
    spec *s = &v[(*n)++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dtype = dt;
    s->ndim = ndim;
    uint64_t sh[4] = {a, b, c, d};
    memcpy(s->shape, sh, sizeof sh);
    s->in_base = s->in_ft = 1;
    s->rel = rel;
}

/* Fill base and fine-tune values (float) for one tensor. */
static void gen_values(const spec *s, float *w, float *f)
{
    uint64_t n = nelem(s);
    uint64_t cols = s->ndim >= 2 ? n / s->shape[0] : n, rows = n / (cols ? cols : 1);
    int is_norm = strstr(s->name, "norm") != NULL;
    for (uint64_t i = 0; i < n; i++) w[i] = is_norm ? (float)(1.0 + 0.05 * rnorm()) : (float)(0.02 * rnorm());
    if (s->zero_delta || !s->in_ft) {
        memcpy(f, w, n * sizeof *f);
        return;
    }
    /* delta = row scale * col scale * t3 noise + rank-2 part */
    double *rs = malloc(rows * sizeof *rs), *cs = malloc(cols * sizeof *cs);
    double *u = malloc(2 * rows * sizeof *u), *vv = malloc(2 * cols * sizeof *vv);
    for (uint64_t r = 0; r < rows; r++) rs[r] = exp(0.5 * rnorm());
    for (uint64_t c = 0; c < cols; c++) cs[c] = exp(0.3 * rnorm());
    for (uint64_t k = 0; k < 2 * rows; k++) u[k] = rnorm();
    for (uint64_t k = 0; k < 2 * cols; k++) vv[k] = rnorm();
    double wn = 0, dn = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = i / cols, c = i % cols;
        double lr = (u[r] * vv[c] + 0.5 * u[rows + r] * vv[cols + c]) * 0.7;
        f[i] = (float)(rs[r] * cs[c] * rstudent3() + lr);
        wn += (double)w[i] * w[i];
        dn += (double)f[i] * f[i];
    }
    double scale = dn > 0 ? s->rel * sqrt(wn / dn) : 0;
    for (uint64_t i = 0; i < n; i++) f[i] = (float)(w[i] + f[i] * scale);
    free(rs);
    free(cs);
    free(u);
    free(vv);
}

static uint64_t seed0;

/* ---------------------------------------------------------------- fast generation (llama)
 * Normal and Student-t (3 dof) deviates from tabulated inverse CDFs (one 64-bit draw each,
 * linear interpolation between 2^14 quantiles), per-row random streams seeded from (seed,
 * tensor, row), so rows are generated in parallel and the output does not depend on the
 * thread count. Used for the Llama shapes, whose billions of values the exact path would
 * take minutes to draw; the demo keeps the exact path. */
#define QT (1 << 14)
static float q_norm[QT + 1], q_t3[QT + 1];

static double cdf_norm(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double cdf_t3(double x)
{
    return 0.5 + (x / (sqrt(3.0) * (1 + x * x / 3)) + atan(x / sqrt(3.0))) / 3.141592653589793;
}
static double inv_cdf(double (*cdf)(double), double p)
{
    double lo = -1e3, hi = 1e3;
    for (int k = 0; k < 100; k++) {
        double mid = 0.5 * (lo + hi);
        if (cdf(mid) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}
static void init_tables(void)
{
    for (int i = 0; i <= QT; i++) {
        double p = (i + 0.5) / (QT + 1);
        q_norm[i] = (float)inv_cdf(cdf_norm, p);
        q_t3[i] = (float)(inv_cdf(cdf_t3, p) / sqrt(3.0)); /* unit variance */
    }
}
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float tdraw(uint64_t *st, const float *q)
{
    uint64_t u = mix64(*st += 0x9E3779B97F4A7C15ull);
    uint32_t i = (uint32_t)(u >> 50);
    float fr = (float)((u >> 26) & 0xFFFFFF) * (1.0f / 16777216.0f);
    return q[i] + fr * (q[i + 1] - q[i]);
}

static void gen_values_fast(const spec *s, uint64_t idx, float *w, float *f)
{
    uint64_t n = nelem(s);
    uint64_t cols = s->ndim >= 2 ? n / s->shape[0] : n, rows = n / (cols ? cols : 1);
    int is_norm = strstr(s->name, "norm") != NULL, delta = !(s->zero_delta || !s->in_ft);
    uint64_t st = mix64(seed0 * 1000003u + idx);
    float *rs = malloc(rows * sizeof *rs), *cs = malloc(cols * sizeof *cs);
    float *u = malloc(2 * rows * sizeof *u), *vv = malloc(2 * cols * sizeof *vv);
    double *wn = calloc(rows, sizeof *wn), *dn = calloc(rows, sizeof *dn);
    if (!rs || !cs || !u || !vv || !wn || !dn) {
        fprintf(stderr, "ddct-genpair: out of memory\n");
        exit(1);
    }
    for (uint64_t r = 0; r < rows; r++) rs[r] = expf(0.5f * tdraw(&st, q_norm));
    for (uint64_t c = 0; c < cols; c++) cs[c] = expf(0.3f * tdraw(&st, q_norm));
    for (uint64_t k = 0; k < 2 * rows; k++) u[k] = tdraw(&st, q_norm);
    for (uint64_t k = 0; k < 2 * cols; k++) vv[k] = tdraw(&st, q_norm);
#pragma omp parallel for schedule(static)
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t rst = mix64(st ^ mix64(r + 1));
        double a = 0, b = 0;
        for (uint64_t c = 0; c < cols; c++) {
            uint64_t i = r * cols + c;
            float x = tdraw(&rst, q_norm);
            w[i] = is_norm ? 1.0f + 0.05f * x : 0.02f * x;
            float lr = (u[r] * vv[c] + 0.5f * u[rows + r] * vv[cols + c]) * 0.7f;
            f[i] = delta ? rs[r] * cs[c] * tdraw(&rst, q_t3) + lr : 0;
            a += (double)w[i] * w[i];
            b += (double)f[i] * f[i];
        }
        wn[r] = a;
        dn[r] = b;
    }
    double wt = 0, dt = 0;
    for (uint64_t r = 0; r < rows; r++) {
        wt += wn[r];
        dt += dn[r];
    }
    float scale = dt > 0 ? (float)(s->rel * sqrt(wt / dt)) : 0;
#pragma omp parallel for schedule(static)
    for (uint64_t i = 0; i < n; i++) f[i] = w[i] + f[i] * scale;
    free(rs);
    free(cs);
    free(u);
    free(vv);
    free(wn);
    free(dn);
}

/* ---------------------------------------------------------------- writing */

static int fast_gen;

typedef struct {
    const char *dir; /* where the files go */
    int which;       /* 0 base, 1 fine-tune */
    int shards;
    int cur;         /* shard being written, -1 before the first */
    int *first;      /* first tensor index of each shard (spec indices), shards + 1 entries */
    ddct_st_writer *w;
    json_t *weight_map;
    uint64_t total_bytes;
} model_out;

static int in_model(const spec *s, int which) { return which ? s->in_ft : s->in_base; }

static void shard_name(char *buf, size_t n, const model_out *m, int k)
{
    if (m->shards == 1) snprintf(buf, n, "%s/%s.safetensors", m->dir, m->which ? "finetuned" : "base");
    else snprintf(buf, n, "%s/model-%05d-of-%05d.safetensors", m->dir, k + 1, m->shards);
}

/* Split the model's tensors into `shards` runs of about equal bytes (as HF's max_shard_size does). */
static int plan_shards(model_out *m, spec *v, int n)
{
    uint64_t total = 0, acc = 0;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (in_model(&v[i], m->which)) {
            total += nelem(&v[i]) * ddct_dtype_size(v[i].dtype);
            count++;
        }
    if (m->shards > count) m->shards = count > 0 ? count : 1;
    m->first = calloc((size_t)m->shards + 1, sizeof *m->first);
    if (!m->first) return 1;
    int k = 1;
    for (int i = 0; i < n; i++) {
        if (!in_model(&v[i], m->which)) continue;
        if (k < m->shards && acc >= total / (uint64_t)m->shards * (uint64_t)k) m->first[k++] = i;
        acc += nelem(&v[i]) * ddct_dtype_size(v[i].dtype);
    }
    while (k < m->shards) m->first[k++] = n; /* cannot happen with count >= shards */
    m->first[m->shards] = n;
    m->total_bytes = total;
    m->cur = -1;
    return 0;
}

/* Open shard k: its entries are the model's tensors in [first[k], first[k+1]). */
static int open_shard(model_out *m, spec *v, int k, ddct_err *e)
{
    int lo = m->first[k], hi = m->first[k + 1], cnt = 0;
    ddct_st_entry *ents = calloc((size_t)(hi - lo) + 1, sizeof *ents);
    if (!ents) return ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    char path[4096], *base;
    shard_name(path, sizeof path, m, k);
    base = strrchr(path, '/') + 1;
    for (int i = lo; i < hi; i++)
        if (in_model(&v[i], m->which)) {
            ents[cnt++] = (ddct_st_entry){.name = v[i].name, .dtype = v[i].dtype, .ndim = v[i].ndim, .shape = v[i].shape};
            if (m->weight_map) json_object_set_new(m->weight_map, v[i].name, json_string(base));
        }
    int rc = ddct_stw_open(&m->w, path, 1, NULL, ents, (size_t)cnt, "{\"format\":\"pt\",\"generator\":\"ddct-genpair\"}", e);
    free(ents);
    m->cur = k;
    return rc;
}

/* Write tensor i's bytes to m, switching shards when i starts the next one. */
static int put_tensor(model_out *m, spec *v, int i, const uint8_t *bytes, size_t nb, ddct_err *e)
{
    if (!in_model(&v[i], m->which)) return 0;
    while (m->cur < 0 || i >= m->first[m->cur + 1]) {
        if (m->cur >= 0) FORWARD_IF_ERROR(ddct_stw_commit(m->w, e));
        m->w = NULL;
        FORWARD_IF_ERROR(open_shard(m, v, m->cur + 1, e));
    }
    return ddct_stw_write(m->w, bytes, nb, e);
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp) return 1;
    int bad = fputs(text, fp) < 0;
    return fclose(fp) != 0 || bad;
}

/* HF's index (json.dumps(indent=2, sort_keys=True) + "\n"), config.json and tokenizer.json. */
static int write_extras(model_out *m, const char *config)
{
    json_t *idx = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)m->total_bytes, "weight_map",
                            m->weight_map);
    char *t = idx ? json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(idx);
    if (!t) return 1;
    size_t len = strlen(t);
    char *t2 = malloc(len + 2);
    int rc = !t2;
    if (t2) {
        memcpy(t2, t, len);
        memcpy(t2 + len, "\n", 2);
        rc = write_text(m->dir, "model.safetensors.index.json", t2);
    }
    free(t);
    free(t2);
    if (!rc) rc = write_text(m->dir, "config.json", config);
    if (!rc)
        rc = write_text(m->dir, "tokenizer.json",
                        "{\n  \"version\": \"1.0\",\n  \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, "
                        "\"</s>\": 1, \"h\\u00e9llo\": 2}, \"merges\": []}\n}\n");
    return rc;
}

/* Base and fine-tune in one pass: each tensor's values are drawn once, its bytes streamed to
 * both outputs, so memory stays at one tensor (as float32, twice) and time at one draw. */
static int write_pair(const char *outdir, spec *v, int n, int shards, const char *arch)
{
    model_out m[2];
    char dirs[2][4096];
    memset(m, 0, sizeof m);
    for (int k = 0; k < 2; k++) {
        snprintf(dirs[k], sizeof dirs[k], "%s/%s", outdir, k ? "finetuned" : "base");
        if (shards > 1) mkdir(dirs[k], 0755);
        m[k] = (model_out){.dir = shards > 1 ? dirs[k] : outdir, .which = k, .shards = shards,
                           .weight_map = shards > 1 ? json_object() : NULL};
        if (plan_shards(&m[k], v, n)) return 1;
    }
    ddct_err e;
    ddct_err_clear(&e);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        uint64_t cnt = nelem(&v[i]);
        size_t es = ddct_dtype_size(v[i].dtype);
        uint8_t *buf = malloc(cnt * es + 1);
        float *w = malloc(cnt * sizeof(float) + 1), *f = malloc(cnt * sizeof(float) + 1);
        if (!buf || !w || !f) {
            fprintf(stderr, "ddct-genpair: out of memory\n");
            exit(1);
        }
        if (fast_gen) {
            gen_values_fast(&v[i], (uint64_t)i, w, f);
        } else {
            rng_state = seed0 * 1000003u + (uint64_t)i;
            gen_values(&v[i], w, f);
        }
        for (int k = 0; k < 2 && !rc; k++) {
            if (ddct_dtype_is_lossy_float(v[i].dtype)) ddct_from_f32(v[i].dtype, k ? f : w, (size_t)cnt, buf);
            else
                for (uint64_t q = 0; q < cnt; q++) {
                    int64_t x = (int64_t)q;
                    memcpy(buf + q * es, &x, es);
                }
            rc = put_tensor(&m[k], v, i, buf, (size_t)(cnt * es), &e);
        }
        free(buf);
        free(w);
        free(f);
    }
    for (int k = 0; k < 2; k++) {
        if (!rc && m[k].w) rc = ddct_stw_commit(m[k].w, &e);
        else ddct_stw_abort(m[k].w);
        m[k].w = NULL;
    }
    if (rc) fprintf(stderr, "ddct-genpair: %s\n", e.msg);
    for (int k = 0; k < 2 && !rc && shards > 1; k++) {
        char cfg[512];
        snprintf(cfg, sizeof cfg,
                 "{\n  \"architectures\": [\"%s\"],\n  \"_name_or_path\": \"%s\",\n  \"torch_dtype\": \"%s\",\n"
                 "  \"num_tensors\": %d\n}\n",
                 arch, k ? "ddct-genpair/finetuned" : "ddct-genpair/base", ddct_dtype_name(v[0].dtype), n);
        if (write_extras(&m[k], cfg)) {
            fprintf(stderr, "ddct-genpair: cannot write the index or config in %s\n", m[k].dir);
            rc = 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        json_decref(m[k].weight_map);
        free(m[k].first);
    }
    return rc;
}

static int build_demo(spec *v, ddct_dtype dt)
{
    int n = 0;
    add(v, &n, "model.embed_tokens.weight", dt, 2, 512, 128, 0, 0, 0.01);
    for (int l = 0; l < 3; l++) {
        char nm[96];
        const char *proj[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"};
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, proj[k]);
            add(v, &n, nm, dt, 2, 128, 128, 0, 0, 0.004 * (l + 1));
        }
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", l);
        add(v, &n, nm, dt, 2, 344, 128, 0, 0, 0.006);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l);
        add(v, &n, nm, dt, 2, 128, 344, 0, 0, 0.006);
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        add(v, &n, nm, dt, 1, 128, 0, 0, 0, 0.01);
    }
    add(v, &n, "vision.conv1.weight", dt, 4, 32, 16, 3, 3, 0.01);
    add(v, &n, "vision.dwconv.weight", dt, 4, 64, 1, 3, 3, 0.01);
    add(v, &n, "mixer.conv1d.weight", dt, 3, 48, 24, 5, 0, 0.01);
    add(v, &n, "adapter.odd.weight", dt, 2, 37, 53, 0, 0, 0.02);
    add(v, &n, "adapter.frozen.weight", dt, 2, 64, 64, 0, 0, 0);
    v[n - 1].zero_delta = 1;
    add(v, &n, "position_ids", DDCT_DT_I64, 2, 1, 128, 0, 0, 0);
    add(v, &n, "classifier.extra.weight", dt, 2, 10, 128, 0, 0, 0);
    v[n - 1].in_base = 0;
    add(v, &n, "old_head.weight", dt, 2, 10, 128, 0, 0, 0);
    v[n - 1].in_ft = 0;
    add(v, &n, "model.norm.weight", dt, 1, 128, 0, 0, 0, 0.01);
    add(v, &n, "lm_head.weight", dt, 2, 512, 128, 0, 0, 0.01);
    return n;
}

/* Llama-3.2/3.1 family shapes: (hidden, intermediate, layers, kv_heads*head_dim, vocab). */
static int build_llama(spec *v, ddct_dtype dt, double params)
{
    uint64_t d = 2048, ff = 8192, kv = 512, vocab = 128256;
    int layers = 16; /* Llama-3.2-1B */
    if (params >= 2.5e9) { d = 3072; ff = 8192; kv = 1024; layers = 28; }   /* Llama-3.2-3B */
    if (params >= 6e9) { d = 4096; ff = 14336; kv = 1024; layers = 32; }    /* Llama-3.1-8B */
    if (params < 0.8e9) { layers = 6; vocab = 32000; }                     /* ~0.5B: 1B shapes, fewer layers */
    int n = 0;
    add(v, &n, "model.embed_tokens.weight", dt, 2, vocab, d, 0, 0, 0.002);
    for (int l = 0; l < layers; l++) {
        char nm[96];
        double rel = 0.003 + 0.012 * (double)l / layers;
#define L(fmt, r, c)                                                                                                   \
    snprintf(nm, sizeof nm, "model.layers.%d." fmt, l);                                                              \
    add(v, &n, nm, dt, 2, r, c, 0, 0, rel)
        L("self_attn.q_proj.weight", d, d);
        L("self_attn.k_proj.weight", kv, d);
        L("self_attn.v_proj.weight", kv, d);
        L("self_attn.o_proj.weight", d, d);
        L("mlp.gate_proj.weight", ff, d);
        L("mlp.up_proj.weight", ff, d);
        L("mlp.down_proj.weight", d, ff);
        L("input_layernorm.weight", d, 1);
        v[n - 1].ndim = 1;
        L("post_attention_layernorm.weight", d, 1);
        v[n - 1].ndim = 1;
#undef L
    }
    add(v, &n, "model.norm.weight", dt, 1, d, 0, 0, 0, 0.002);
    add(v, &n, "lm_head.weight", dt, 2, vocab, d, 0, 0, 0.002);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: ddct-genpair OUTDIR [--kind demo|llama] [--params 0.5B|1B|3B|8B] "
                        "[--dtype F32|F16|BF16] [--seed N] [--shards N]\n");
        return argc < 2 ? 2 : 0;
    }
    const char *dir = argv[1], *kind = "demo";
    ddct_dtype dt = DDCT_DT_F32;
    double params = 1e9;
    int shards = 1;
    seed0 = 42;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--kind")) kind = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype")) dt = ddct_dtype_from_name(argv[i + 1], strlen(argv[i + 1]));
        else if (!strcmp(argv[i], "--seed")) seed0 = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--params")) params = atof(argv[i + 1]) * 1e9;
        else if (!strcmp(argv[i], "--shards")) shards = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "ddct-genpair: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!ddct_dtype_is_lossy_float(dt)) {
        fprintf(stderr, "ddct-genpair: --dtype must be F32, F16 or BF16\n");
        return 2;
    }
    if (shards < 1 || shards > 99999) {
        fprintf(stderr, "ddct-genpair: --shards must be 1..99999\n");
        return 2;
    }
    mkdir(dir, 0755);
    spec *v = calloc(512, sizeof *v);
    int llama = !strcmp(kind, "llama");
    int n = llama ? build_llama(v, dt, params) : build_demo(v, dt);
    fast_gen = llama;
    if (fast_gen) init_tables();
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += nelem(&v[i]);
    int rc = write_pair(dir, v, n, shards, llama ? "LlamaForCausalLM" : "DemoModel");
    if (!rc && shards > 1)
        fprintf(stderr, "ddct-genpair: wrote %s/{base,finetuned}/ (%d shards each, %d tensors, %.3g params)\n", dir,
                shards, n, (double)total);
    else if (!rc)
        fprintf(stderr, "ddct-genpair: wrote %s/{base,finetuned}.safetensors (%d tensors, %.3g params)\n", dir, n,
                (double)total);
    free(v);
    return rc ? 1 : 0;
}
