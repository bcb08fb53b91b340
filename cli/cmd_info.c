/* cmd_info.c — `deltadct info` and `deltadct eval`: what a .ddct holds, and how close it rebuilds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_info_totals_of(const ddct_Info *info, cli_info_totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < ddct_Info_count(info); i++) {
        const ddct_tensor_info *ti = ddct_Info_tensor(info, i);
        if (ti->lossy) {
            t->lossy_params += ti->nparams;
            t->lossy_bytes += ti->record_bytes;
            t->lossy_payload += ti->payload_bytes;
        } else {
            t->lossless_params += ti->nparams;
            t->lossless_bytes += ti->record_bytes;
        }
    }
}

double cli_bpp(uint64_t bytes, uint64_t params) { return params ? 8.0 * (double)bytes / (double)params : 0; }
/* NaN in, NaN out: a NaN or infinite weight makes the sums NaN (ddct_evaluate), and that must
 * not read as a perfect rebuild (NaN > 0 is false, so the plain formulas below gave 0 and 0). */
double cli_rel(double err2, double ref2)
{
    if (isnan(err2) || isnan(ref2)) return NAN;
    return ref2 > 0 ? sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0);
}
double cli_cos(double dot, double a2, double b2)
{
    if (isnan(dot) || isnan(a2) || isnan(b2)) return NAN;
    return a2 > 0 && b2 > 0 ? dot / sqrt(a2 * b2) : (a2 == b2);
}

static void shape_str(const ddct_tensor_info *t, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void print_json(const ddct_Info *info, int tensors)
{
    cli_info_totals t;
    cli_info_totals_of(info, &t);
    uint64_t fb = ddct_Info_fileBytes(info);
    printf("{\"file_bytes\":%llu,\"container_bytes\":%llu,\"lossy_params\":%llu,\"lossy_bytes\":%llu,"
           "\"lossy_payload_bytes\":%llu,\"lossy_side_bytes\":%llu,\"bits_per_lossy_param\":%.6f,"
           "\"lossless_params\":%llu,\"lossless_bytes\":%llu,\"bits_per_param\":%.6f,\"header\":",
           (unsigned long long)fb, (unsigned long long)ddct_Info_containerBytes(info),
           (unsigned long long)t.lossy_params, (unsigned long long)t.lossy_bytes, (unsigned long long)t.lossy_payload,
           (unsigned long long)(t.lossy_bytes - t.lossy_payload), cli_bpp(t.lossy_bytes, t.lossy_params),
           (unsigned long long)t.lossless_params, (unsigned long long)t.lossless_bytes,
           cli_bpp(fb, t.lossy_params + t.lossless_params));
    cli_json_text(stdout, ddct_Info_header(info));
    printf(",\"base_only\":[");
    for (size_t i = 0; i < ddct_Info_removedCount(info); i++) {
        if (i) putchar(',');
        cli_json_str(stdout, ddct_Info_removed(info, i));
    }
    printf("]");
    const ddct_layout_info *L = ddct_Info_layout(info);
    printf(",\"layout\":{\"directory\":%s,\"index\":", L->directory ? "true" : "false");
    if (L->index_name) cli_json_str(stdout, L->index_name);
    else printf("null");
    printf(",\"shards\":[");
    for (size_t k = 0; k < L->nshards; k++) {
        printf("%s{\"name\":", k ? "," : "");
        cli_json_str(stdout, L->shard_names[k]);
        printf(",\"tensors\":%zu,\"format\":\"%s\"}", L->shard_tensors[k], L->shard_formats[k]);
    }
    printf("],\"files\":[");
    for (size_t k = 0; k < L->nfiles; k++) {
        printf("%s{\"name\":", k ? "," : "");
        cli_json_str(stdout, L->file_names[k]);
        printf(",\"bytes\":%llu}", (unsigned long long)L->file_bytes[k]);
    }
    printf("],\"files_record_bytes\":%llu}", (unsigned long long)L->files_record_bytes);
    if (tensors) {
        printf(",\"tensors\":[");
        for (size_t i = 0; i < ddct_Info_count(info); i++) {
            const ddct_tensor_info *ti = ddct_Info_tensor(info, i);
            char sh[256];
            shape_str(ti, sh, sizeof sh);
            printf("%s{\"name\":", i ? "," : "");
            cli_json_str(stdout, ti->name);
            printf(",\"dtype\":\"%s\",\"shape\":%s,\"params\":%llu,\"codec\":\"%s\",\"lossy\":%s,\"bytes\":%llu,"
                   "\"payload_bytes\":%llu,\"side_bytes\":%llu,\"bits_per_param\":%.6f}",
                   ti->dtype, sh, (unsigned long long)ti->nparams, ti->codec, ti->lossy ? "true" : "false",
                   (unsigned long long)ti->record_bytes, (unsigned long long)ti->payload_bytes,
                   (unsigned long long)ti->side_bytes, cli_bpp(ti->record_bytes, ti->nparams));
        }
        printf("]");
    }
    printf("}\n");
}

static void print_table(const ddct_Info *info, int tensors)
{
    cli_info_totals t;
    cli_info_totals_of(info, &t);
    uint64_t fb = ddct_Info_fileBytes(info), cb = ddct_Info_containerBytes(info);
    if (tensors) {
        printf("%-48s %-5s %-16s %-8s %12s %12s %10s %8s\n", "tensor", "dtype", "shape", "codec", "params", "payload",
               "side", "bits/p");
        for (size_t i = 0; i < ddct_Info_count(info); i++) {
            const ddct_tensor_info *ti = ddct_Info_tensor(info, i);
            char sh[64], nm[49];
            shape_str(ti, sh, sizeof sh);
            printf("%-48s %-5s %-16.16s %-8s %12llu %12llu %10llu %8.3f\n", cli_esc(ti->name, nm, sizeof nm), ti->dtype,
                   sh, ti->codec,
                   (unsigned long long)ti->nparams, (unsigned long long)ti->payload_bytes,
                   (unsigned long long)ti->side_bytes, cli_bpp(ti->record_bytes, ti->nparams));
        }
        printf("\n");
    }
    printf("lossy tensors:    %llu params, %llu bytes (payload %llu + side %llu) = %.4f bits/param\n",
           (unsigned long long)t.lossy_params, (unsigned long long)t.lossy_bytes, (unsigned long long)t.lossy_payload,
           (unsigned long long)(t.lossy_bytes - t.lossy_payload), cli_bpp(t.lossy_bytes, t.lossy_params));
    printf("lossless tensors: %llu params, %llu bytes = %.4f bits/param\n", (unsigned long long)t.lossless_params,
           (unsigned long long)t.lossless_bytes, cli_bpp(t.lossless_bytes, t.lossless_params));
    const ddct_layout_info *L = ddct_Info_layout(info);
    if (L->nfiles)
        printf("carried files:    %zu, %llu bytes\n", L->nfiles, (unsigned long long)L->files_record_bytes);
    printf("container:        %llu bytes (header, index, footer)\n", (unsigned long long)cb);
    printf("total:            %llu bytes = file size, %.4f bits/param overall\n", (unsigned long long)fb,
           cli_bpp(fb, t.lossy_params + t.lossless_params));
    for (size_t i = 0; i < ddct_Info_removedCount(info); i++) {
        printf("only in base (dropped): ");
        cli_fputs_esc(stdout, ddct_Info_removed(info, i));
        putchar('\n');
    }
    char nm[256];
    if (L->directory) {
        printf("layout:           directory, %zu shard%s%s%s\n", L->nshards, L->nshards == 1 ? "" : "s",
               L->index_name ? ", index " : "", L->index_name ? cli_esc(L->index_name, nm, sizeof nm) : "");
        for (size_t k = 0; k < L->nshards; k++)
            printf("  shard %-40s %zu tensors (%s)\n", cli_esc(L->shard_names[k], nm, sizeof nm), L->shard_tensors[k],
                   L->shard_formats[k]);
        for (size_t k = 0; k < L->nfiles; k++)
            printf("  file  %-40s %llu bytes\n", cli_esc(L->file_names[k], nm, sizeof nm),
                   (unsigned long long)L->file_bytes[k]);
    } else {
        printf("layout:           one file (%s, %s)\n", L->nshards ? cli_esc(L->shard_names[0], nm, sizeof nm) : "?",
               L->nshards ? L->shard_formats[0] : "?");
    }
}

void cli_info_summary(const char *path, int json)
{
    ddct_Info *info;
    char err[512];
    if (ddct_openInfo(&info, path, err, sizeof err)) {
        cli_error("%s", err);
        return;
    }
    if (json) print_json(info, 0);
    else {
        cli_info_totals t;
        cli_info_totals_of(info, &t);
        cli_fputs_esc(stderr, path);
        fprintf(stderr, ": %llu bytes; lossy %.4f bits/param over %llu params\n",
                (unsigned long long)ddct_Info_fileBytes(info), cli_bpp(t.lossy_bytes, t.lossy_params),
                (unsigned long long)t.lossy_params);
    }
    ddct_freeInfo(info);
}

int cmd_info(int argc, char **argv)
{
    const char *file = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: deltadct info IN.ddct [--json]\n\nLists each tensor's codec, bytes (payload and side "
                   "information) and bits per parameter,\nthen totals; the total equals the file size.\n\n"
                   "Names are shown with control characters escaped (\\n, \\x1b, \\u009b; bytes that are not\n"
                   "UTF-8 as \\xHH). --json prints one JSON object; there, bytes of a name that are not UTF-8\n"
                   "become U+FFFD (\\ufffd) and control characters \\u escapes.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_error("unknown option '%s'", argv[i]), EXIT_USAGE;
        else if (!file) file = argv[i];
        else return cli_error("too many arguments"), EXIT_USAGE;
    }
    if (!file) return cli_error("info needs IN.ddct"), EXIT_USAGE;
    ddct_Info *info;
    char err[512];
    if (ddct_openInfo(&info, file, err, sizeof err)) return cli_error("%s", err), 1;
    if (json) print_json(info, 1);
    else print_table(info, 1);
    ddct_freeInfo(info);
    return 0;
}

/* ------------------------------------------------------------------ eval */

typedef struct {
    cli_eval_totals *tot;
    FILE *json;
    int n;
} eval_state;


static void eval_cb(void *opaque, const ddct_tensor_eval *ev)
{
    eval_state *s = opaque;
    if (ev->lossy) {
        cli_eval_totals *t = s->tot;
        t->err2 += ev->err2;
        t->ref2 += ev->ref2;
        t->dot += ev->dot;
        t->hat2 += ev->hat2;
        t->lossy_params += ev->nparams;
        double r = cli_rel(ev->err2, ev->ref2);
        /* a tensor whose error is not a number is the worst: it cannot be measured */
        if (!t->worst_name || (isnan(r) && !isnan(t->worst_rel)) || r > t->worst_rel) {
            t->worst_rel = r;
            snprintf(t->worst_buf, sizeof t->worst_buf, "%s", ev->name);
            t->worst_name = t->worst_buf;
        }
    }
    if (!s->json) return;
    fprintf(s->json, "%s{\"name\":", s->n++ ? "," : "");
    cli_json_str(s->json, ev->name);
    fprintf(s->json, ",\"lossy\":%s,\"params\":%llu,\"rel_error\":", ev->lossy ? "true" : "false",
            (unsigned long long)ev->nparams);
    int nf = cli_json_num(s->json, "%.6g", cli_rel(ev->err2, ev->ref2));
    fputs(",\"cosine\":", s->json);
    nf |= cli_json_num(s->json, "%.8f", cli_cos(ev->dot, ev->ref2, ev->hat2));
    fputs(",\"max_abs_error\":", s->json);
    nf |= cli_json_num(s->json, "%.6g", ev->max_abs_err);
    fprintf(s->json, ",\"nonfinite\":%s}", nf ? "true" : "false");
}

int cli_eval_run(const char *base, const char *ft, const char *ddct, int threads, int rescale, int per_tensor_json,
                 FILE *json_out, cli_eval_totals *tot)
{
    memset(tot, 0, sizeof *tot);
    ddct_DCtx *d = ddct_createDCtx();
    if (!d) return cli_error("out of memory"), 1;
    ddct_DCtx_setThreads(d, threads);
    ddct_DCtx_setRescale(d, rescale);
    eval_state s = {.tot = tot, .json = per_tensor_json ? json_out : NULL};
    ddct_ErrorCode rc = ddct_evaluate(d, base, ft, ddct, eval_cb, &s);
    if (rc) cli_error("%s", ddct_DCtx_getErrorMessage(d));
    else cli_print_dnotes(d, 0);
    ddct_freeDCtx(d);
    return rc ? 1 : 0;
}

int cmd_eval(int argc, char **argv)
{
    const char *pos[3];
    int npos = 0, json = 0, threads = 0, rescale = -1, r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: deltadct eval BASE.safetensors FINETUNED.safetensors IN.ddct [options]\n\n"
                   "Rebuilds in memory and reports, over the lossy tensors, the relative error\n"
                   "||d^ - d|| / ||d|| and cosine of the rebuilt delta d^ against d = FINETUNED - BASE\n"
                   "(per tensor and overall), with bits per lossy parameter.\n\n"
                   "  --json                print JSON: {\"tensors\": [{\"name\", \"lossy\", \"params\", \"rel_error\",\n"
                   "                        \"cosine\", \"max_abs_error\", \"nonfinite\"}, ...], \"file_bytes\", ...,\n"
                   "                        \"rel_error\", \"cosine\", \"worst_rel_error\", \"worst_tensor\", \"nonfinite\"}.\n"
                   "                        A measure that is not a finite number (NaN or infinite\n"
                   "                        weights; a tensor with a zero delta rebuilt nonzero) is null,\n"
                   "                        and the object holding it has \"nonfinite\": true. Bytes of\n"
                   "                        a name that are not UTF-8 become \\ufffd\n"
                   "  --no-rescale          rebuild without the rescale step; --rescale forces it on\n"
                   "  -T, --threads N       threads, 0..1024 (default 0: all cores)\n");
            return 0;
        }
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--no-rescale")) rescale = 0;
        else if (!strcmp(a, "--rescale")) rescale = 1;
        else if ((r = cli_threads_opt(argc, argv, &i, &threads)) != 0) {
            if (r < 0) return EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) return cli_error("unknown option '%s'", a), EXIT_USAGE;
        else if (npos < 3) pos[npos++] = a;
        else return cli_error("too many arguments"), EXIT_USAGE;
    }
    if (npos != 3) return cli_error("eval needs BASE, FINETUNED and IN.ddct"), EXIT_USAGE;
    ddct_Info *info;
    char err[512];
    if (ddct_openInfo(&info, pos[2], err, sizeof err)) return cli_error("%s", err), 1;
    cli_info_totals it;
    cli_info_totals_of(info, &it);
    uint64_t fb = ddct_Info_fileBytes(info);
    ddct_freeInfo(info);
    cli_eval_totals tot;
    if (json) printf("{\"tensors\":[");
    int rc = cli_eval_run(pos[0], pos[1], pos[2], threads, rescale, json, stdout, &tot);
    if (rc) {
        if (json) printf("]}\n");
        return rc;
    }
    double rel = cli_rel(tot.err2, tot.ref2), c = cli_cos(tot.dot, tot.ref2, tot.hat2);
    double b = cli_bpp(it.lossy_bytes, it.lossy_params);
    if (json) {
        printf("],\"file_bytes\":%llu,\"lossy_params\":%llu,\"bits_per_lossy_param\":",
               (unsigned long long)fb, (unsigned long long)it.lossy_params);
        int nf = cli_json_num(stdout, "%.6f", b);
        fputs(",\"rel_error\":", stdout);
        nf |= cli_json_num(stdout, "%.6g", rel);
        fputs(",\"cosine\":", stdout);
        nf |= cli_json_num(stdout, "%.8f", c);
        fputs(",\"worst_rel_error\":", stdout);
        nf |= cli_json_num(stdout, "%.6g", tot.worst_rel);
        fputs(",\"worst_tensor\":", stdout);
        cli_json_str(stdout, tot.worst_name ? tot.worst_name : "");
        printf(",\"nonfinite\":%s}\n", nf ? "true" : "false");
    } else {
        printf("file bytes:             %llu\n", (unsigned long long)fb);
        printf("bits per lossy param:   %.4f (%llu lossy params)\n", b, (unsigned long long)it.lossy_params);
        printf("relative error:         %.4f  (||d^-d||/||d|| over lossy tensors)\n", rel);
        printf("cosine(d^, d):          %.4f\n", c);
        printf("worst tensor:           %.4f  ", tot.worst_rel);
        cli_fputs_esc(stdout, tot.worst_name ? tot.worst_name : "-");
        putchar('\n');
    }
    return 0;
}
