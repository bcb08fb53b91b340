/*
 * cmd_lora.c — `deltadct export-lora`: a fine-tune or a .ddct as a PEFT LoRA adapter
 * (src/pipeline/lora.h does the work; this parses options and prints the report).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pipeline/lora.h"

static const char *LORA_HELP =
    "usage: deltadct export-lora BASE FINETUNED -o ADAPTER_DIR [options]\n"
    "       deltadct export-lora BASE IN.ddct -o ADAPTER_DIR [options]\n"
    "\n"
    "Writes the fine-tune's change as a PEFT LoRA adapter: ADAPTER_DIR/adapter_model.safetensors\n"
    "(base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r]) and\n"
    "adapter_config.json (r, lora_alpha, target_modules, rank_pattern, alpha_pattern). Each module's\n"
    "rank is chosen by measurement: B A is the truncated SVD of its delta, lora_alpha = its rank.\n"
    "From a .ddct: svd records give their factors exactly, rd records their low-rank part (at the\n"
    "record's rank), other records a truncated SVD of the rebuilt delta. Prints per module the\n"
    "rank, bytes and share of ||delta||^2 captured, and the changed tensors a LoRA cannot express.\n"
    "\n"
    "  -o, --output DIR      the adapter directory (written under a temporary name, renamed)\n"
    "  -f, --force           replace an existing adapter directory\n"
    "  --rank R              every module rank R (at most min(out, in)), 1..65536\n"
    "  --bpp X               the adapter's bits at most X per adapted weight (r (out + in) x bits\n"
    "                        per factor element, summed over the modules), in (0, 32]; default 0.5\n"
    "  --error E             per module the smallest rank with relative Frobenius error <= E, (0, 1)\n"
    "  --rule R              how --bpp shares the budget: uniform (default: one rank for every\n"
    "                        module, the best measured on task loss) | energy (greedy: the next rank\n"
    "                        where captured ||delta||^2 per bit is largest) | delta-rel (the same\n"
    "                        relative to each module's ||delta||^2) | weight-rel (relative to ||W||^2)\n"
    "  --dtype D             factor dtype: bf16 (default) | f16 | f32\n"
    "  --uniform-rank        write every module at one rank (zero-padded), for servers that need it;\n"
    "                        with --bpp the budget counts the padded size\n"
    "  --target REGEX        modules adapted: tensors whose name matches (POSIX extended,\n"
    "                        case-insensitive); default: the 2-D and conv weights compress codes\n"
    "                        lossily (not embeddings, heads, classifiers, poolers or norms)\n"
    "  --modules-to-save     put the changed tensors a LoRA cannot express (norms, embeddings,\n"
    "                        heads, biases) in the adapter, whole modules, as PEFT's modules_to_save\n"
    "  --fan-in-fan-out      2-D weights are stored [in, out] (GPT-2's Conv1D)\n"
    "  -T, --threads N       threads, 0..1024 (default 0: all cores; output identical for any N)\n"
    "  -q, --quiet           no report\n"
    "  --json                the report as JSON\n";

/* A rank: digits only, 1..65536. */
static int parse_rank(const char *v, int *out)
{
    size_t n = v ? strlen(v) : 0;
    if (!n || n > 5 || strspn(v, "0123456789") != n) return -1;
    long x = strtol(v, NULL, 10);
    if (x < 1 || x > 65536) return -1;
    *out = (int)x;
    return 0;
}

static const char *kind_name(int k)
{
    return k == DDCT_LORA_ADAPTED ? "adapted" : k == DDCT_LORA_RANK0 ? "rank 0" : k == DDCT_LORA_SAVED ? "saved" : "left out";
}

static double share(double a, double b) { return b > 0 ? a / b : (a == 0 ? 1.0 : NAN); }

static void print_text(const ddct_lora_report *r, const char *dir)
{
    printf("%-48s %13s %6s %10s %9s\n", "module", "out x in", "rank", "bytes", "captured");
    for (size_t i = 0; i < r->n; i++) {
        const ddct_lora_module *m = &r->v[i];
        if (m->kind != DDCT_LORA_ADAPTED && m->kind != DDCT_LORA_RANK0) continue;
        char nb[256], dims[48];
        snprintf(dims, sizeof dims, "%llu x %llu", (unsigned long long)m->out, (unsigned long long)m->in);
        printf("%-48s %13s %6llu %10llu %8.2f %%\n", cli_esc(m->name, nb, sizeof nb), dims,
               (unsigned long long)m->rank, (unsigned long long)m->bytes, 100 * share(m->captured, m->energy));
    }
    for (size_t i = 0; i < r->n; i++) {
        const ddct_lora_module *m = &r->v[i];
        if (m->kind != DDCT_LORA_SAVED && m->kind != DDCT_LORA_LEFT) continue;
        char nb[256];
        printf("%s: %s (%s", m->kind == DDCT_LORA_SAVED ? "saved" : "left out", cli_esc(m->name, nb, sizeof nb), m->how);
        if (m->kind == DDCT_LORA_SAVED) printf(", %llu bytes", (unsigned long long)m->bytes);
        printf(")\n");
    }
    size_t na = 0;
    for (size_t i = 0; i < r->n; i++) na += r->v[i].kind == DDCT_LORA_ADAPTED;
    char b1[32];
    printf("total: %zu modules adapted, r %llu, %s of %s factors (%.4f bits per adapted weight), %.2f %% of "
           "||delta||^2 captured",
           na, (unsigned long long)r->r, cli_bytes((double)r->lora_bytes, b1, sizeof b1),
           r->dtype == DDCT_DT_F32 ? "F32" : r->dtype == DDCT_DT_F16 ? "F16" : "BF16",
           r->adapted_weights ? 8.0 * (double)r->lora_bytes / (double)r->adapted_weights : 0.0,
           100 * share(r->captured, r->energy));
    if (r->saved_bytes) printf("; modules_to_save %llu bytes", (unsigned long long)r->saved_bytes);
    printf("\n");
    cli_fputs_esc(stdout, dir);
    printf(": adapter_model.safetensors %llu bytes, adapter_config.json\n", (unsigned long long)r->file_bytes);
}

static void print_json(const ddct_lora_report *r, const char *dir, const ddct_lora_params *p)
{
    int nonfinite = 0;
    printf("{\"adapter\":");
    cli_json_str(stdout, dir);
    printf(",\"from_ddct\":%s,\"dtype\":\"%s\",\"rule\":\"%s\",\"r\":%llu,\"lora_bytes\":%llu,"
           "\"adapted_weights\":%llu,\"bits_per_adapted_weight\":%.6f,\"saved_bytes\":%llu,\"file_bytes\":%llu,",
           r->from_ddct ? "true" : "false", r->dtype == DDCT_DT_F32 ? "F32" : r->dtype == DDCT_DT_F16 ? "F16" : "BF16",
           p->rank > 0 ? "rank" : p->error > 0 ? "error" : ddct_lora_rule_name(p->uniform_rank ? DDCT_LORA_UNIFORM : p->rule),
           (unsigned long long)r->r, (unsigned long long)r->lora_bytes, (unsigned long long)r->adapted_weights,
           r->adapted_weights ? 8.0 * (double)r->lora_bytes / (double)r->adapted_weights : 0.0,
           (unsigned long long)r->saved_bytes, (unsigned long long)r->file_bytes);
    printf("\"energy\":");
    nonfinite |= cli_json_num(stdout, "%.9g", r->energy);
    printf(",\"captured\":");
    nonfinite |= cli_json_num(stdout, "%.9g", r->captured);
    printf(",\"captured_share\":");
    nonfinite |= cli_json_num(stdout, "%.6f", share(r->captured, r->energy));
    printf(",\"modules\":[");
    for (size_t i = 0; i < r->n; i++) {
        const ddct_lora_module *m = &r->v[i];
        printf("%s{\"name\":", i ? "," : "");
        cli_json_str(stdout, m->name);
        printf(",\"status\":\"%s\"", kind_name(m->kind));
        if (m->how) {
            printf(",\"how\":");
            cli_json_str(stdout, m->how);
        }
        printf(",\"bytes\":%llu", (unsigned long long)m->bytes);
        if (m->kind == DDCT_LORA_ADAPTED || m->kind == DDCT_LORA_RANK0) {
            printf(",\"out\":%llu,\"in\":%llu,\"rank\":%llu,\"energy\":", (unsigned long long)m->out,
                   (unsigned long long)m->in, (unsigned long long)m->rank);
            nonfinite |= cli_json_num(stdout, "%.9g", m->energy);
            printf(",\"captured\":");
            nonfinite |= cli_json_num(stdout, "%.9g", m->captured);
            printf(",\"captured_share\":");
            nonfinite |= cli_json_num(stdout, "%.6f", share(m->captured, m->energy));
        }
        printf("}");
    }
    printf("],\"nonfinite\":%s}\n", nonfinite ? "true" : "false");
}

int cmd_export_lora(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(LORA_HELP, stdout), 0;
    ddct_lora_params p;
    ddct_lora_params_default(&p);
    const char *pos[2], *out = NULL;
    int npos = 0, quiet = 0, json = 0, rule_given = 0, m;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        double x;
        int r = cli_threads_opt(argc, argv, &i, &p.threads);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        if (!strcmp(a, "-f") || !strcmp(a, "--force")) p.overwrite = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--uniform-rank")) p.uniform_rank = 1;
        else if (!strcmp(a, "--modules-to-save")) p.modules_to_save = 1;
        else if (!strcmp(a, "--fan-in-fan-out")) p.fan_in_fan_out = 1;
        else if ((v = cli_optval(argc, argv, &i, !strcmp(a, "-o") ? "-o" : "--output", &m)), m) {
            if (!v) return cli_error("--output needs a directory"), EXIT_USAGE;
            out = v;
        } else if ((v = cli_optval(argc, argv, &i, "--rank", &m)), m) {
            if (parse_rank(v, &p.rank)) return cli_error("--rank needs an integer in 1..65536"), EXIT_USAGE;
        } else if ((v = cli_optval(argc, argv, &i, "--bpp", &m)), m) {
            if (cli_parse_num("--bpp", v, &x)) return EXIT_USAGE;
            p.bpp = x;
        } else if ((v = cli_optval(argc, argv, &i, "--error", &m)), m) {
            if (cli_parse_num("--error", v, &x)) return EXIT_USAGE;
            p.error = x;
        } else if ((v = cli_optval(argc, argv, &i, "--rule", &m)), m) {
            int k = v ? ddct_lora_rule_from_name(v) : -1;
            if (k < 0) return cli_error("--rule needs uniform, energy, delta-rel or weight-rel"), EXIT_USAGE;
            p.rule = (ddct_lora_rule)k;
            rule_given = 1;
        } else if ((v = cli_optval(argc, argv, &i, "--dtype", &m)), m) {
            if (v && !strcmp(v, "bf16")) p.dtype = DDCT_DT_BF16;
            else if (v && !strcmp(v, "f16")) p.dtype = DDCT_DT_F16;
            else if (v && !strcmp(v, "f32")) p.dtype = DDCT_DT_F32;
            else return cli_error("--dtype needs bf16, f16 or f32"), EXIT_USAGE;
        } else if ((v = cli_optval(argc, argv, &i, "--target", &m)), m) {
            if (!v) return cli_error("--target needs a regular expression"), EXIT_USAGE;
            p.target = v;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("unknown option '%s' (see 'deltadct export-lora --help')", a), EXIT_USAGE;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return cli_error("too many arguments (see 'deltadct export-lora --help')"), EXIT_USAGE;
        }
    }
    if (npos != 2)
        return cli_error("export-lora needs BASE and FINETUNED or IN.ddct (see 'deltadct export-lora --help')"),
               EXIT_USAGE;
    if (!out) return cli_error("export-lora needs -o ADAPTER_DIR"), EXIT_USAGE;
    if ((p.rank > 0) + (p.bpp > 0) + (p.error > 0) > 1)
        return cli_error("--rank, --bpp and --error exclude each other"), EXIT_USAGE;
    if (rule_given && (p.rank > 0 || p.error > 0))
        return cli_error("--rule applies to --bpp only (--rank and --error set each module's rank)"), EXIT_USAGE;
    if (rule_given && p.uniform_rank && p.rule != DDCT_LORA_UNIFORM)
        return cli_error("--uniform-rank with --bpp shares the budget uniformly: --rule %s does not apply",
                         ddct_lora_rule_name(p.rule)),
               EXIT_USAGE;
    ddct_err e;
    ddct_err_clear(&e);
    ddct_lora_report rep;
    int rc = ddct_lora_export(pos[0], pos[1], out, &p, &rep, &e);
    if (rc) return cli_error("%s", e.msg), 1;
    if (json) print_json(&rep, out, &p);
    else if (!quiet) print_text(&rep, out);
    ddct_lora_report_free(&rep);
    return 0;
}
