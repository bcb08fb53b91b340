/*
 * genpair.c — writes synthetic base / fine-tune safetensors pairs for the demo, tests and benches.
 *
 *   ddct-genpair OUTDIR [--kind demo|llama] [--params 0.5B|1B|3B|8B] [--dtype F32|F16|BF16] [--seed N]
 *
 * demo:  a small transformer-like model (~1.3 M params) with every case the codec must handle:
 *        2-D projections, embeddings and norms (lossless by default), a 4-D conv kernel, a
 *        depthwise kernel, an odd-shaped matrix, an int64 buffer, a tensor with zero delta,
 *        a tensor only in the fine-tune, a tensor only in the base, and __metadata__.
 * llama: the layer shapes of the Llama-3.2/3.1 family scaled to the requested size.
 * The fine-tune is base + delta, where delta imitates a supervised fine-tune: relative norm
 * 0.3-2% varying by layer, heavy-tailed (Student-t, 3 dof) entries, row/column scales and a
 * low-rank part, so it is neither Gaussian nor trivially compressible.
 * Writes OUTDIR/base.safetensors and OUTDIR/finetuned.safetensors. Deterministic in --seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dtype.h"
#include "io/safetensors.h"

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

/* Values are generated tensor by tensor from (seed, index), so memory stays at one tensor. */
static int write_model(const char *path, spec *v, int n, int which)
{
    ddct_st_entry *ents = calloc((size_t)n, sizeof *ents);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (which ? v[i].in_ft : v[i].in_base)
            ents[m++] = (ddct_st_entry){.name = v[i].name, .dtype = v[i].dtype, .ndim = v[i].ndim, .shape = v[i].shape};
    ddct_err e;
    ddct_err_clear(&e);
    ddct_st_writer *wr;
    int rc = ddct_stw_open(&wr, path, 1, NULL, ents, (size_t)m, "{\"format\":\"pt\",\"generator\":\"ddct-genpair\"}", &e);
    for (int i = 0; i < n && !rc; i++) {
        if (!(which ? v[i].in_ft : v[i].in_base)) continue;
        uint64_t cnt = nelem(&v[i]);
        size_t es = ddct_dtype_size(v[i].dtype);
        uint8_t *buf = malloc(cnt * es + 1);
        float *w = malloc(cnt * sizeof(float) + 1), *f = malloc(cnt * sizeof(float) + 1);
        if (!buf || !w || !f) {
            fprintf(stderr, "ddct-genpair: out of memory\n");
            exit(1);
        }
        rng_state = seed0 * 1000003u + (uint64_t)i;
        gen_values(&v[i], w, f);
        if (ddct_dtype_is_lossy_float(v[i].dtype)) ddct_from_f32(v[i].dtype, which ? f : w, (size_t)cnt, buf);
        else
            for (uint64_t k = 0; k < cnt; k++) {
                int64_t x = (int64_t)k;
                memcpy(buf + k * es, &x, es);
            }
        rc = ddct_stw_write(wr, buf, (size_t)(cnt * es), &e);
        free(buf);
        free(w);
        free(f);
    }
    if (!rc) rc = ddct_stw_commit(wr, &e);
    else ddct_stw_abort(wr);
    free(ents);
    if (rc) fprintf(stderr, "ddct-genpair: %s\n", e.msg);
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
                        "[--dtype F32|F16|BF16] [--seed N]\n");
        return argc < 2 ? 2 : 0;
    }
    const char *dir = argv[1], *kind = "demo";
    ddct_dtype dt = DDCT_DT_F32;
    double params = 1e9;
    seed0 = 42;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--kind")) kind = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype")) dt = ddct_dtype_from_name(argv[i + 1], strlen(argv[i + 1]));
        else if (!strcmp(argv[i], "--seed")) seed0 = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--params")) params = atof(argv[i + 1]) * 1e9;
        else {
            fprintf(stderr, "ddct-genpair: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!ddct_dtype_is_lossy_float(dt)) {
        fprintf(stderr, "ddct-genpair: --dtype must be F32, F16 or BF16\n");
        return 2;
    }
    mkdir(dir, 0755);
    spec *v = calloc(512, sizeof *v);
    int n = !strcmp(kind, "llama") ? build_llama(v, dt, params) : build_demo(v, dt);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += nelem(&v[i]);
    char path[4096];
    snprintf(path, sizeof path, "%s/base.safetensors", dir);
    int rc = write_model(path, v, n, 0);
    snprintf(path, sizeof path, "%s/finetuned.safetensors", dir);
    if (!rc) rc = write_model(path, v, n, 1);
    if (!rc) fprintf(stderr, "ddct-genpair: wrote %s/{base,finetuned}.safetensors (%d tensors, %.3g params)\n", dir, n,
                     (double)total);
    free(v);
    return rc ? 1 : 0;
}
