/*
 * sweep.c — `deltadct sweep`: compress one base / fine-tune pair under a grid of configurations
 * and report, for each, the file size, bits per lossy parameter, rebuild error and speed:
 * an aligned table on stdout, and optionally CSV, GitHub Markdown and an SVG rate–distortion plot.
 *
 * Every configuration is really written (.ddct), rebuilt to a file (timed, then deleted) and
 * evaluated in memory (cli_eval_run). Reports are written atomically (FILE.tmp, then rename).
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *SWEEP_HELP =
    "usage: deltadct sweep BASE.safetensors FINETUNED.safetensors [grid options] [output options]\n"
    "\n"
    "Compresses FINETUNED against BASE under every configuration of the grid (the cartesian\n"
    "product of the lists given), then rebuilds and evaluates each file. Prints a table: file\n"
    "bytes, bits per lossy parameter (8 x bytes of lossy records / lossy params), relative error\n"
    "||d^-d||/||d|| over lossy tensors, the worst tensor, cosine, compress and decompress seconds.\n"
    "\n"
    "grid (lists are comma-separated, except --bits which is ';'-separated):\n"
    "  --methods LIST        of dct, dwt, none (the patch codec with that transform), bitdelta, svd, rd\n"
    "                        (default: rd,dct,dwt,none,bitdelta,svd)\n"
    "  --patch LIST          patch sizes for dct/dwt/none, e.g. 8,16,32 (default 16)\n"
    "  --bits LIST           strategies, e.g. \"2:0.5,0:0.5;4:0.34,2:0.33,0:0.33\" (default 2:0.5,0:0.5)\n"
    "  --qtable LIST         flat, jpeg (dct/dwt/none; default flat)\n"
    "  --importance LIST     l2, lowfreq (dct/dwt/none; default l2)\n"
    "  --wavelet LIST        haar, cdf97 (dwt only; default haar)\n"
    "  --dwt-keep LIST       all, ll_lh_hl, ll_only (dwt only; default all)\n"
    "  --bpp LIST            target bits per lossy parameter for svd and rd (default 1)\n"
    "  --rescale MODE        on (default), off, or both (evaluate every file both ways: two rows)\n"
    "  bitdelta and svd do not depend on the patch axes; they run once (per --bpp for svd) with the\n"
    "  first --patch value, which only decides which tensors are small enough to stay lossless.\n"
    "  A grid option that no method of --methods reads (--bpp without svd or rd, --wavelet or\n"
    "  --dwt-keep without dwt, the patch axes without dct, dwt or none) is a usage error, as for\n"
    "  compress; --patch items are integers 2..128, --bpp items numbers in (0, 32].\n"
    "\n"
    "output:\n"
    "  --outdir DIR          where the .ddct files go (default: a fresh directory under $TMPDIR or /tmp);\n"
    "                        they are deleted when measured, and a directory made here removed,\n"
    "                        unless --keep-files\n"
    "  --keep-files          keep the .ddct files\n"
    "  --csv FILE            the results as CSV (one header row, one row per configuration)\n"
    "  --md FILE             the results as a GitHub Markdown table\n"
    "  --svg FILE            a rate-distortion plot (bits per lossy parameter vs relative error)\n"
    "  -T, --threads N       threads, 0..1024 (default 0: all cores)\n"
    "  -q, --quiet           no progress lines on stderr\n"
    "\n"
    "Exit status: 0 when every configuration succeeded, 1 when one failed (the others still run\n"
    "and are reported), 2 on a usage error.\n";

/* ------------------------------------------------------------------ methods */

enum { M_DCT, M_DWT, M_NONE, M_BITDELTA, M_SVD, M_RD, M_COUNT };
static const char *const method_name[M_COUNT] = {"dct", "dwt", "none", "bitdelta", "svd", "rd"};
/* Tableau 10: readable on white, distinct for most color vision deficiencies with the marker shapes. */
static const char *const method_color[M_COUNT] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"};

static int method_of(const char *s)
{
    for (int m = 0; m < M_COUNT; m++)
        if (!strcmp(s, method_name[m])) return m;
    return -1;
}

/* ------------------------------------------------------------------ lists */

typedef struct {
    char **v;
    int n;
} strlist;

static void list_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Split s at sep into trimmed, non-empty items (duplicates dropped). Returns 0, or -1 with a message. */
static int list_split(const char *s, char sep, strlist *out, const char *opt)
{
    list_free(out);
    if (!s) return cli_error("%s needs a value", opt), -1;
    const char *c = s;
    for (;;) {
        const char *e = strchr(c, sep);
        size_t len = e ? (size_t)(e - c) : strlen(c);
        while (len && (*c == ' ' || *c == '\t')) c++, len--;
        while (len && (c[len - 1] == ' ' || c[len - 1] == '\t')) len--;
        if (!len) return cli_error("%s: empty item in '%s'", opt, s), -1;
        char *item = malloc(len + 1);
        char **nv = realloc(out->v, (size_t)(out->n + 1) * sizeof *nv);
        if (!item || !nv) {
            free(item);
            if (nv) out->v = nv;
            return cli_error("out of memory"), -1;
        }
        out->v = nv;
        memcpy(item, c, len);
        item[len] = 0;
        int dup = 0;
        for (int i = 0; i < out->n && !dup; i++) dup = !strcmp(out->v[i], item);
        if (dup) free(item);
        else out->v[out->n++] = item;
        if (!e) break;
        c = e + 1;
    }
    return 0;
}

static int list_default(strlist *l, const char *s) { return l->n ? 0 : list_split(s, ',', l, "default"); }

/* ------------------------------------------------------------------ rows */

typedef struct {
    int method;            /* M_* */
    ddct_params p;
    char key[640];         /* method + canonical params: configurations with equal keys are one */
    char bits[128];        /* the strategy as given ("" when it does not apply) */
    char config[320];      /* short human description */
    int file;              /* index of the .ddct this row measures */
    int rescale;           /* evaluation: 1 on, 0 off, -1 does not apply (bitdelta) */
    int ok;
    uint64_t file_bytes, lossy_bytes, lossy_params;
    double bpp, rel, worst, cos, t_comp, t_decomp;
    char worst_name[256];
} sweep_row;

typedef struct {
    sweep_row *r;
    int n, cap, nfiles;
} rowset;

enum { RESCALE_ON, RESCALE_OFF, RESCALE_BOTH };

static int push_row(rowset *rs, const sweep_row *row)
{
    if (rs->n == rs->cap) {
        int cap = rs->cap ? 2 * rs->cap : 32;
        sweep_row *nr = realloc(rs->r, (size_t)cap * sizeof *nr);
        if (!nr) return cli_error("out of memory"), -1;
        rs->r = nr;
        rs->cap = cap;
    }
    rs->r[rs->n++] = *row;
    return 0;
}

/* Add one configuration (one file; one or two rows), unless an equal one is already there. */
static int add_config(rowset *rs, sweep_row *row, int rescale_mode)
{
    char desc[512];
    row->p.rescale = rescale_mode != RESCALE_OFF;
    ddct_params_describe(&row->p, desc, sizeof desc);
    snprintf(row->key, sizeof row->key, "%s %s", method_name[row->method], desc);
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->r[i].key, row->key)) return 0;
    row->file = rs->nfiles++;
    size_t cl = strlen(row->config);
    if (row->method == M_BITDELTA) { /* rescale is the identity for bitdelta: one row */
        row->rescale = -1;
        return push_row(rs, row);
    }
    if (rescale_mode == RESCALE_ON) {
        row->rescale = 1;
        return push_row(rs, row);
    }
    if (rescale_mode == RESCALE_BOTH) {
        row->rescale = 1;
        snprintf(row->config + cl, sizeof row->config - cl, "%srescale=on", cl ? " " : "");
        if (push_row(rs, row)) return -1;
    }
    row->rescale = 0;
    snprintf(row->config + cl, sizeof row->config - cl, "%srescale=off", cl ? " " : "");
    return push_row(rs, row);
}

static void appendf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t n, const char *fmt, ...)
{
    size_t l = strlen(buf);
    if (l + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

typedef struct {
    strlist methods, patch, bits, qtable, importance, wavelet, keep, bpp;
    int rescale_mode, threads;
} grid;

/* Set p's option; values were validated when parsed. */
static int setp(ddct_params *p, const char *name, const char *value)
{
    char err[256];
    if (ddct_params_set(p, name, value, err, sizeof err)) return cli_error("%s", err), -1;
    return 0;
}

static int build_grid(const grid *g, rowset *rs)
{
    for (int mi = 0; mi < g->methods.n; mi++) {
        int m = method_of(g->methods.v[mi]);
        sweep_row row;
        if (m == M_BITDELTA || m == M_SVD || m == M_RD) {
            int nb = m != M_BITDELTA ? g->bpp.n : 1;
            for (int b = 0; b < nb; b++) {
                memset(&row, 0, sizeof row);
                row.method = m;
                ddct_params_default(&row.p);
                row.p.threads = g->threads;
                if (setp(&row.p, "method", method_name[m]) || setp(&row.p, "patch", g->patch.v[0])) return -1;
                if (m != M_BITDELTA) {
                    if (setp(&row.p, "bpp", g->bpp.v[b])) return -1;
                    snprintf(row.config, sizeof row.config, "bpp=%s", g->bpp.v[b]);
                }
                if (add_config(rs, &row, g->rescale_mode)) return -1;
            }
            continue;
        }
        int dwt = m == M_DWT;
        int nw = dwt ? g->wavelet.n : 1, nk = dwt ? g->keep.n : 1;
        for (int pi = 0; pi < g->patch.n; pi++)
            for (int bi = 0; bi < g->bits.n; bi++)
                for (int qi = 0; qi < g->qtable.n; qi++)
                    for (int ii = 0; ii < g->importance.n; ii++)
                        for (int wi = 0; wi < nw; wi++)
                            for (int ki = 0; ki < nk; ki++) {
                                memset(&row, 0, sizeof row);
                                row.method = m;
                                ddct_params_default(&row.p);
                                row.p.threads = g->threads;
                                if (setp(&row.p, "method", "patch") || setp(&row.p, "transform", method_name[m]) ||
                                    setp(&row.p, "patch", g->patch.v[pi]) || setp(&row.p, "bits", g->bits.v[bi]) ||
                                    setp(&row.p, "qtable", g->qtable.v[qi]) ||
                                    setp(&row.p, "importance", g->importance.v[ii]))
                                    return -1;
                                if (dwt && (setp(&row.p, "wavelet", g->wavelet.v[wi]) ||
                                            setp(&row.p, "dwt-keep", g->keep.v[ki])))
                                    return -1;
                                snprintf(row.bits, sizeof row.bits, "%s", g->bits.v[bi]);
                                snprintf(row.config, sizeof row.config, "p=%d bits=%s", row.p.patch, row.bits);
                                if (g->qtable.n > 1 || row.p.qtable != DDCT_QTABLE_FLAT)
                                    appendf(row.config, sizeof row.config, " qtable=%s", g->qtable.v[qi]);
                                if (g->importance.n > 1 || row.p.importance != DDCT_IMPORTANCE_L2)
                                    appendf(row.config, sizeof row.config, " importance=%s", g->importance.v[ii]);
                                if (dwt)
                                    appendf(row.config, sizeof row.config, " wavelet=%s keep=%s", g->wavelet.v[wi],
                                            g->keep.v[ki]);
                                if (add_config(rs, &row, g->rescale_mode)) return -1;
                            }
    }
    return 0;
}

/* ------------------------------------------------------------------ measuring */


/* Bytes and bits per lossy parameter of a written file (the totals of `deltadct info`). */
static int measure_file(const char *path, sweep_row *row)
{
    ddct_Info *info;
    char err[512];
    if (ddct_openInfo(&info, path, err, sizeof err)) return cli_error("%s", err), -1;
    cli_info_totals t;
    cli_info_totals_of(info, &t);
    row->file_bytes = ddct_Info_fileBytes(info);
    row->lossy_bytes = t.lossy_bytes;
    row->lossy_params = t.lossy_params;
    row->bpp = cli_bpp(t.lossy_bytes, t.lossy_params);
    ddct_freeInfo(info);
    return 0;
}

static void file_name(char *out, size_t n, const char *dir, const sweep_row *row)
{
    /* "003-dct-p_8-bits_2_0.5_0_0.5-qtable_jpeg.ddct": method and config, without the rescale setting */
    char tag[128];
    size_t k = (size_t)snprintf(tag, sizeof tag, "%s", method_name[row->method]);
    const char *c = row->config;
    if (*c && k + 1 < sizeof tag) tag[k++] = '-';
    for (; *c && k + 1 < sizeof tag; c++) {
        if (!strncmp(c, "rescale=", 8)) break;
        char ch = *c;
        if (ch == ' ') ch = '-';
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.'))
            ch = '_';
        tag[k++] = ch;
    }
    while (k && tag[k - 1] == '-') k--;
    tag[k] = 0;
    snprintf(out, n, "%s/%03d-%s.ddct", dir, row->file + 1, tag);
}

/* Compress, rebuild, measure and evaluate the rows of one file (rows[0..cnt-1]). Returns 0 or -1. */
static int run_file(const char *base, const char *ft, const char *dir, int threads, int keep, sweep_row *rows,
                    int cnt, const char *path)
{
    ddct_CCtx *cc = ddct_createCCtx();
    if (!cc) return cli_error("out of memory"), -1;
    double t0 = cli_now();
    ddct_ErrorCode rc = ddct_compressFiles(cc, base, ft, path, &rows[0].p, 1);
    double tc = cli_now() - t0;
    if (rc) cli_error("%s", ddct_CCtx_getErrorMessage(cc));
    ddct_freeCCtx(cc);
    if (rc) return -1;

    char rebuilt[4096 + 32];
    snprintf(rebuilt, sizeof rebuilt, "%s/rebuilt.tmp.safetensors", dir);
    ddct_DCtx *d = ddct_createDCtx();
    if (!d) return cli_error("out of memory"), -1;
    ddct_DCtx_setThreads(d, threads);
    t0 = cli_now();
    rc = ddct_decompressFile(d, base, path, rebuilt, 1);
    double td = cli_now() - t0;
    if (rc) cli_error("%s", ddct_DCtx_getErrorMessage(d));
    ddct_freeDCtx(d);
    unlink(rebuilt);
    if (rc) return -1;

    int fail = measure_file(path, &rows[0]);
    for (int i = 0; i < cnt && !fail; i++) {
        sweep_row *r = &rows[i];
        if (i) {
            r->file_bytes = rows[0].file_bytes;
            r->lossy_bytes = rows[0].lossy_bytes;
            r->lossy_params = rows[0].lossy_params;
            r->bpp = rows[0].bpp;
        }
        r->t_comp = tc;
        r->t_decomp = td;
        cli_eval_totals tot;
        if (cli_eval_run(base, ft, path, threads, r->rescale, 0, NULL, &tot)) {
            fail = 1;
            break;
        }
        r->rel = cli_rel(tot.err2, tot.ref2);
        r->cos = cli_cos(tot.dot, tot.ref2, tot.hat2);
        r->worst = tot.worst_rel;
        snprintf(r->worst_name, sizeof r->worst_name, "%s", tot.worst_name ? tot.worst_name : "");
        r->ok = 1;
    }
    if (fail)
        for (int i = 0; i < cnt; i++) rows[i].ok = 0;
    if (!keep) unlink(path);
    return fail ? -1 : 0;
}

/* ------------------------------------------------------------------ reports */

enum { C_METHOD, C_CONFIG, C_BYTES, C_BPP, C_REL, C_WORST, C_COS, C_TC, C_TD, C_COUNT };
static const char *const col_head[C_COUNT] = {"method",  "config",       "file bytes",
                                              "bits/param", "rel err",   "worst rel err (tensor)",
                                              "cosine",  "compress s",   "decompress s"};
static const int col_right[C_COUNT] = {0, 0, 1, 1, 1, 0, 1, 1, 1};
#define CELL 400

static void row_cells(const sweep_row *r, char cells[C_COUNT][CELL])
{
    snprintf(cells[C_METHOD], CELL, "%s", method_name[r->method]);
    snprintf(cells[C_CONFIG], CELL, "%s", r->config[0] ? r->config : "-");
    if (!r->ok) {
        snprintf(cells[C_BYTES], CELL, "FAILED");
        for (int c = C_BPP; c < C_COUNT; c++) snprintf(cells[c], CELL, "-");
        return;
    }
    snprintf(cells[C_BYTES], CELL, "%llu", (unsigned long long)r->file_bytes);
    snprintf(cells[C_TC], CELL, "%.2f", r->t_comp);
    snprintf(cells[C_TD], CELL, "%.2f", r->t_decomp);
    if (!r->lossy_params) { /* nothing lossy: no rate or error to speak of */
        for (int c = C_BPP; c <= C_COS; c++) snprintf(cells[c], CELL, "-");
        snprintf(cells[C_WORST], CELL, "- (no lossy tensor)");
        return;
    }
    snprintf(cells[C_BPP], CELL, "%.3f", r->bpp);
    snprintf(cells[C_REL], CELL, "%.4f", r->rel);
    char nm[CELL - 32];
    snprintf(cells[C_WORST], CELL, "%.4f (%s)", r->worst, r->worst_name[0] ? cli_esc(r->worst_name, nm, sizeof nm) : "-");
    snprintf(cells[C_COS], CELL, "%.4f", r->cos);
}

static void print_table(FILE *f, const rowset *rs)
{
    int w[C_COUNT];
    char cells[C_COUNT][CELL];
    for (int c = 0; c < C_COUNT; c++) w[c] = (int)strlen(col_head[c]);
    for (int i = 0; i < rs->n; i++) {
        row_cells(&rs->r[i], cells);
        for (int c = 0; c < C_COUNT; c++)
            if ((int)strlen(cells[c]) > w[c]) w[c] = (int)strlen(cells[c]);
    }
    for (int c = 0; c < C_COUNT; c++)
        fprintf(f, "%s%*s%s", c ? "  " : "", col_right[c] ? w[c] : -w[c], col_head[c], c == C_COUNT - 1 ? "\n" : "");
    for (int c = 0; c < C_COUNT; c++) {
        fprintf(f, "%s", c ? "  " : "");
        for (int k = 0; k < w[c]; k++) fputc('-', f);
    }
    fputc('\n', f);
    for (int i = 0; i < rs->n; i++) {
        row_cells(&rs->r[i], cells);
        for (int c = 0; c < C_COUNT; c++) {
            /* no trailing blanks on the last column */
            if (c == C_COUNT - 1 && !col_right[c]) fprintf(f, "  %s", cells[c]);
            else fprintf(f, "%s%*s", c ? "  " : "", col_right[c] ? w[c] : -w[c], cells[c]);
        }
        fputc('\n', f);
    }
}

/* Atomic report files: write FILE.tmp, then rename over FILE. */
static FILE *report_open(const char *path, char *tmp, size_t n)
{
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) cli_error("cannot write '%s': %s", tmp, strerror(errno));
    return f;
}

static int report_close(FILE *f, const char *tmp, const char *path)
{
    int bad = ferror(f);
    if (fclose(f)) bad = 1;
    if (bad) {
        cli_error("error writing '%s': %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        cli_error("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *qtable_name(ddct_qtable q) { return q == DDCT_QTABLE_JPEG ? "jpeg" : "flat"; }
static const char *importance_name(ddct_importance i) { return i == DDCT_IMPORTANCE_LOWFREQ ? "lowfreq" : "l2"; }
static const char *wavelet_name(ddct_wavelet w) { return w == DDCT_WAVELET_CDF97 ? "cdf97" : "haar"; }
static const char *keep_name(ddct_dwt_keep k)
{
    return k == DDCT_KEEP_LL_LH_HL ? "ll_lh_hl" : k == DDCT_KEEP_LL_ONLY ? "ll_only" : "all";
}

static int write_csv(const char *path, const rowset *rs)
{
    char tmp[4096];
    FILE *f = report_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    fprintf(f, "method,config,patch,bits,qtable,importance,wavelet,dwt_keep,bpp_target,rescale,file_bytes,"
               "lossy_params,lossy_bytes,bits_per_lossy_param,rel_error,worst_rel_error,worst_tensor,cosine,"
               "compress_s,decompress_s,status\n");
    for (int i = 0; i < rs->n; i++) {
        const sweep_row *r = &rs->r[i];
        int patchm = r->method <= M_NONE;
        fprintf(f, "%s,", method_name[r->method]);
        csv_field(f, r->config);
        if (patchm) {
            fprintf(f, ",%d,", r->p.patch);
            csv_field(f, r->bits);
            fprintf(f, ",%s,%s,", qtable_name(r->p.qtable), importance_name(r->p.importance));
            if (r->method == M_DWT) fprintf(f, "%s,%s,", wavelet_name(r->p.wavelet), keep_name(r->p.dwt_keep));
            else fprintf(f, ",,");
        } else {
            fprintf(f, ",,,,,,,");
        }
        if (r->method == M_SVD || r->method == M_RD) fprintf(f, "%g", r->p.bpp > 0 ? r->p.bpp : 1.0);
        fprintf(f, ",%s,", r->rescale < 0 ? "" : r->rescale ? "on" : "off");
        if (r->ok && !r->lossy_params) {
            fprintf(f, "%llu,0,0,,,,,,%.4f,%.4f,ok\n", (unsigned long long)r->file_bytes, r->t_comp, r->t_decomp);
        } else if (r->ok) {
            fprintf(f, "%llu,%llu,%llu,%.6f,%.6g,%.6g,", (unsigned long long)r->file_bytes,
                    (unsigned long long)r->lossy_params, (unsigned long long)r->lossy_bytes, r->bpp, r->rel, r->worst);
            csv_field(f, r->worst_name);
            fprintf(f, ",%.8f,%.4f,%.4f,ok\n", r->cos, r->t_comp, r->t_decomp);
        } else {
            fprintf(f, ",,,,,,,,,,error\n");
        }
    }
    return report_close(f, tmp, path);
}

static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int write_md(const char *path, const rowset *rs, const char *base, const char *ft)
{
    char tmp[4096], cells[C_COUNT][CELL];
    FILE *f = report_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    fprintf(f, "Sweep of `");
    md_cell(f, base_name(ft));
    fprintf(f, "` against `");
    md_cell(f, base_name(base));
    fprintf(f, "` (deltadct %s). bits/param = 8 × bytes of the lossy records / lossy parameters; "
               "rel err = ‖Δ̂−Δ‖/‖Δ‖ over the lossy tensors.\n\n",
            ddct_versionString());
    fputc('|', f);
    for (int c = 0; c < C_COUNT; c++) fprintf(f, " %s |", col_head[c]);
    fputs("\n|", f);
    for (int c = 0; c < C_COUNT; c++) fputs(col_right[c] ? " ---: |" : " --- |", f);
    fputc('\n', f);
    for (int i = 0; i < rs->n; i++) {
        row_cells(&rs->r[i], cells);
        fputc('|', f);
        for (int c = 0; c < C_COUNT; c++) {
            fputc(' ', f);
            md_cell(f, cells[c]);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    return report_close(f, tmp, path);
}

/* ------------------------------------------------------------------ SVG */

static void xml_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

typedef struct {
    double lo, hi, step;
    int decimals;
} axis;

/* A "nice" axis over [lo, hi]: steps of 1, 2 or 5 x 10^k, about 5 ticks, zero included when near. */
static void nice_axis(double lo, double hi, axis *a)
{
    if (!(hi > lo)) {
        double d = fabs(hi) > 0 ? 0.1 * fabs(hi) : 0.5;
        lo -= d;
        hi += d;
    }
    if (lo >= 0 && lo < 0.4 * hi) lo = 0;
    double pad = 0.04 * (hi - lo);
    if (lo > 0) lo = lo - pad < 0 ? 0 : lo - pad;
    hi += pad;
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), fr = raw / mag;
    double nf = fr <= 1 ? 1 : fr <= 2 ? 2 : fr <= 5 ? 5 : 10;
    a->step = nf * mag;
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
    int k = (int)floor(log10(a->step) + 1e-9);
    a->decimals = k < 0 ? -k : 0;
}

typedef struct {
    double x, y;
    const sweep_row *row;
} pt;

static int pt_cmp(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return p->y < q->y ? -1 : p->y > q->y;
}

/* Marker of method m at (x, y): a distinct shape per method. */
static void svg_marker(FILE *f, int m, double x, double y, const char *fill, const char *stroke)
{
    const double r = 5.0;
    switch (m) {
    case M_DCT: fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"", x, y, r); break;
    case M_DWT: fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"", x - r * 0.85, y - r * 0.85,
                        r * 1.7, r * 1.7);
        break;
    case M_NONE: fprintf(f, "<path d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fZ\"", x, y - r * 1.1, x + r, y + r * 0.75, x - r,
                         y + r * 0.75);
        break;
    case M_BITDELTA: fprintf(f, "<path d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fL%.1f,%.1fZ\"", x, y - r * 1.2, x + r * 1.05,
                             y, x, y + r * 1.2, x - r * 1.05, y);
        break;
    default: fprintf(f, "<path d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fZ\"", x, y + r * 1.1, x + r, y - r * 0.75, x - r,
                     y - r * 0.75);
        break;
    }
    fprintf(f, " fill=\"%s\" stroke=\"%s\" stroke-width=\"1.4\"", fill, stroke);
}

static int write_svg(const char *path, const rowset *rs, const char *base, const char *ft)
{
    char tmp[4096];
    pt *pts = malloc(((size_t)rs->n + 1) * sizeof *pts);
    if (!pts) return cli_error("out of memory"), -1;
    int np = 0, both = 0;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < rs->n; i++) {
        const sweep_row *r = &rs->r[i];
        if (r->rescale == 0 && r->method != M_BITDELTA)
            for (int j = 0; j < rs->n; j++) both |= rs->r[j].rescale == 1;
        if (!r->ok || !r->lossy_params || !isfinite(r->bpp) || !isfinite(r->rel)) continue;
        pts[np++] = (pt){r->bpp, r->rel, r};
        if (r->bpp < xmin) xmin = r->bpp;
        if (r->bpp > xmax) xmax = r->bpp;
        if (r->rel < ymin) ymin = r->rel;
        if (r->rel > ymax) ymax = r->rel;
    }
    if (!np) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    qsort(pts, (size_t)np, sizeof *pts, pt_cmp);
    axis ax, ay;
    nice_axis(xmin, xmax, &ax);
    nice_axis(ymin, ymax, &ay);

    /* plot area [L,R] x [T,B]; the legend to its right, as wide as its longest label */
    const int H = 540, L = 78, R = 690, T = 64, B = 470;
    int W = R + 22 + 40 + (int)(7.5 * (both ? strlen("none (rescale off)") : strlen("bitdelta"))) + 16;
#define SX(v) (L + ((v) - ax.lo) / (ax.hi - ax.lo) * (R - L))
#define SY(v) (B - ((v) - ay.lo) / (ay.hi - ay.lo) * (B - T))
    FILE *f = report_open(path, tmp, sizeof tmp);
    if (!f) return free(pts), -1;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<title>Rate-distortion: ");
    xml_str(f, base_name(ft));
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    /* title */
    fprintf(f, "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\" fill=\"#222\">"
               "Rate–distortion: ",
            (L + R) / 2);
    xml_str(f, base_name(ft));
    fprintf(f, "</text>\n<text x=\"%d\" y=\"47\" text-anchor=\"middle\" font-size=\"12\" fill=\"#666\">delta against ",
            (L + R) / 2);
    xml_str(f, base_name(base));
    fprintf(f, " · %d configuration%s%s · deltadct %s</text>\n", rs->nfiles, rs->nfiles == 1 ? "" : "s",
            both ? ", rescale on and off" : "", ddct_versionString());
    /* grid and ticks */
    fprintf(f, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    int nxt = (int)floor((ax.hi - ax.lo) / ax.step + 0.5), nyt = (int)floor((ay.hi - ay.lo) / ay.step + 0.5);
    for (int i = 0; i <= nxt; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", SX(ax.lo + i * ax.step), T,
                SX(ax.lo + i * ax.step), B);
    for (int i = 0; i <= nyt; i++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", L, SY(ay.lo + i * ay.step), R,
                SY(ay.lo + i * ay.step));
    fprintf(f, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T,
            R - L, B - T);
    fprintf(f, "<g fill=\"#333\" stroke=\"none\">\n");
    for (int i = 0; i <= nxt; i++) {
        double v = ax.lo + i * ax.step, x = SX(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>", x, B, x, B + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*f</text>\n", x, B + 19, ax.decimals,
                fabs(v) < 1e-12 ? 0.0 : v);
    }
    for (int i = 0; i <= nyt; i++) {
        double v = ay.lo + i * ay.step, y = SY(v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>", L - 5, y, L, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", L - 8, y + 4, ay.decimals,
                fabs(v) < 1e-12 ? 0.0 : v);
    }
    fprintf(f, "</g>\n");
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\" fill=\"#222\">"
               "bits per lossy parameter</text>\n",
            (L + R) / 2, B + 42);
    fprintf(f, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\" "
               "fill=\"#222\">relative error ‖Δ̂ − Δ‖ / ‖Δ‖ (lossy tensors)</text>\n",
            22, (T + B) / 2);
    if (!np)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\" fill=\"#999\">no data</text>\n",
                (L + R) / 2, (T + B) / 2);

    /* series: one per method (and per rescale setting with --rescale both), lines sorted by x */
    int legend = 0;
    for (int m = 0; m < M_COUNT; m++)
        for (int rsc = 1; rsc >= 0; rsc--) {
            int cnt = 0;
            for (int i = 0; i < np; i++)
                if (pts[i].row->method == m && (pts[i].row->rescale != 0) == rsc) cnt++;
            if (!cnt) continue;
            const char *col = method_color[m];
            int off = rsc == 0;
            fprintf(f, "<g class=\"series\" data-method=\"%s\"%s>\n<polyline fill=\"none\" stroke=\"%s\" "
                       "stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"%s points=\"",
                    method_name[m], off ? " data-rescale=\"off\"" : "", col, off ? " stroke-dasharray=\"6 4\"" : "");
            /* several configurations at one rate (e.g. qtable or wavelet axes at equal bits): the line
             * goes through the best of them (points are sorted by x, then error), the rest are markers */
            int k = 0;
            double lastx = NAN;
            for (int i = 0; i < np; i++)
                if (pts[i].row->method == m && (pts[i].row->rescale != 0) == rsc && !(pts[i].x == lastx)) {
                    fprintf(f, "%s%.1f,%.1f", k++ ? " " : "", SX(pts[i].x), SY(pts[i].y));
                    lastx = pts[i].x;
                }
            fprintf(f, "\"/>\n");
            for (int i = 0; i < np; i++) {
                const sweep_row *r = pts[i].row;
                if (r->method != m || (r->rescale != 0) != rsc) continue;
                svg_marker(f, m, SX(pts[i].x), SY(pts[i].y), off ? "#ffffff" : col, off ? col : "#ffffff");
                fprintf(f, "><title>");
                xml_str(f, method_name[m]);
                fputc(' ', f);
                xml_str(f, r->config);
                fprintf(f, ": %.3f bits/param, rel err %.4f, cosine %.4f</title></", r->bpp, r->rel, r->cos);
                fprintf(f, "%s>\n", m == M_DCT ? "circle" : m == M_DWT ? "rect" : "path");
            }
            fprintf(f, "</g>\n");
            /* legend entry */
            double lx = R + 22, ly = T + 12 + legend * 24;
            fprintf(f, "<g class=\"legend\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"2\"%s/>",
                    lx, ly, lx + 30, ly, col, off ? " stroke-dasharray=\"6 4\"" : "");
            svg_marker(f, m, lx + 15, ly, off ? "#ffffff" : col, off ? col : "#ffffff");
            fprintf(f, "/><text x=\"%.1f\" y=\"%.1f\" fill=\"#222\" font-size=\"13\">%s%s</text></g>\n", lx + 40,
                    ly + 4.5, method_name[m], both && m != M_BITDELTA ? (off ? " (rescale off)" : " (rescale on)") : "");
            legend++;
        }
    fprintf(f, "</svg>\n");
#undef SX
#undef SY
    free(pts);
    return report_close(f, tmp, path);
}

/* ------------------------------------------------------------------ the command */

/* Check every item of a list: numbers with the CLI's parser (the ranges of compress), the rest
 * with ddct_params_set (name) or the strategy parser. */
static int validate(const strlist *l, const char *name)
{
    ddct_params p;
    char err[512];
    double x;
    for (int i = 0; i < l->n; i++) {
        ddct_params_default(&p);
        if (cli_is_num_option(name) && cli_parse_num(name, l->v[i], &x)) return -1;
        if (ddct_params_set(&p, name, l->v[i], err, sizeof err)) return cli_error("%s", err), -1;
    }
    return 0;
}

/* The parameters a sweep method compresses with, for ddct_params_optionRead (default values otherwise). */
static void method_params(int m, ddct_params *p)
{
    ddct_params_default(p);
    p->method = m == M_BITDELTA ? DDCT_METHOD_BITDELTA : m == M_SVD ? DDCT_METHOD_SVD : m == M_RD ? DDCT_METHOD_RD
                                                                                                   : DDCT_METHOD_PATCH;
    p->transform = m == M_DWT ? DDCT_TRANSFORM_DWT : m == M_NONE ? DDCT_TRANSFORM_NONE : DDCT_TRANSFORM_DCT;
}

/* A grid option given while no method of --methods reads it (the table of ddct_params_checkOptions)
 * would add no row and change none: a usage error, as the same option is for compress. */
static int check_grid_option(const grid *g, const char *opt)
{
    ddct_params p;
    char readers[64] = "", methods[256] = "";
    for (int i = 0; i < g->methods.n; i++)
        snprintf(methods + strlen(methods), sizeof methods - strlen(methods), "%s%s", i ? "," : "", g->methods.v[i]);
    for (int i = 0; i < g->methods.n; i++) {
        method_params(method_of(g->methods.v[i]), &p);
        if (ddct_params_optionRead(&p, opt + 2)) return 0;
    }
    for (int m = 0; m < M_COUNT; m++) {
        method_params(m, &p);
        if (ddct_params_optionRead(&p, opt + 2))
            snprintf(readers + strlen(readers), sizeof readers - strlen(readers), "%s%s", readers[0] ? "," : "",
                     method_name[m]);
    }
    cli_error("%s does nothing with --methods %s (it is read by %s)", opt, methods, readers);
    return -1;
}

static void grid_free(grid *g)
{
    strlist *ls[] = {&g->methods, &g->patch, &g->bits, &g->qtable, &g->importance, &g->wavelet, &g->keep, &g->bpp};
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) list_free(ls[i]);
}

int cmd_sweep(int argc, char **argv)
{
    grid g;
    memset(&g, 0, sizeof g);
    g.rescale_mode = RESCALE_ON;
    const char *pos[2], *outdir = NULL, *csv = NULL, *md = NULL, *svg = NULL;
    int npos = 0, quiet = 0, keep = 0, status = EXIT_USAGE;
    rowset rs = {0};
    char dir[4096] = "";
    int made_dir = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int m;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(SWEEP_HELP, stdout);
            grid_free(&g);
            return 0;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "--keep-files")) {
            keep = 1;
            continue;
        }
        static const struct {
            const char *opt;
            char sep;
            size_t off;
        } lists[] = {
            {"--methods", ',', offsetof(grid, methods)},   {"--patch", ',', offsetof(grid, patch)},
            {"--bits", ';', offsetof(grid, bits)},         {"--qtable", ',', offsetof(grid, qtable)},
            {"--importance", ',', offsetof(grid, importance)}, {"--wavelet", ',', offsetof(grid, wavelet)},
            {"--dwt-keep", ',', offsetof(grid, keep)},     {"--bpp", ',', offsetof(grid, bpp)},
        };
        int done = 0;
        for (size_t k = 0; k < sizeof lists / sizeof *lists && !done; k++) {
            v = cli_optval(argc, argv, &i, lists[k].opt, &m);
            if (!m) continue;
            done = 1;
            if (list_split(v, lists[k].sep, (strlist *)((char *)&g + lists[k].off), lists[k].opt)) goto out;
        }
        if (done) continue;
        const char **strs[] = {&outdir, &csv, &md, &svg};
        const char *snames[] = {"--outdir", "--csv", "--md", "--svg"};
        for (int k = 0; k < 4 && !done; k++) {
            v = cli_optval(argc, argv, &i, snames[k], &m);
            if (!m) continue;
            done = 1;
            if (!v || !*v) {
                cli_error("%s needs a value", snames[k]);
                goto out;
            }
            *strs[k] = v;
        }
        if (done) continue;
        v = cli_optval(argc, argv, &i, "--rescale", &m);
        if (m) {
            if (!v) {
                cli_error("--rescale needs on, off or both");
                goto out;
            }
            if (!strcmp(v, "on")) g.rescale_mode = RESCALE_ON;
            else if (!strcmp(v, "off")) g.rescale_mode = RESCALE_OFF;
            else if (!strcmp(v, "both") || !strcmp(v, "on,off") || !strcmp(v, "off,on")) g.rescale_mode = RESCALE_BOTH;
            else {
                cli_error("--rescale must be on, off or both, got '%s'", v);
                goto out;
            }
            continue;
        }
        m = cli_threads_opt(argc, argv, &i, &g.threads);
        if (m < 0) goto out;
        if (m) continue;
        if (a[0] == '-' && a[1]) {
            cli_error("unknown option '%s' (see 'deltadct sweep --help')", a);
            goto out;
        }
        if (npos == 2) {
            cli_error("too many arguments (see 'deltadct sweep --help')");
            goto out;
        }
        pos[npos++] = a;
    }
    if (npos != 2) {
        cli_error("sweep needs BASE and FINETUNED (see 'deltadct sweep --help')");
        goto out;
    }
    /* the grid options given (before the defaults fill the lists), as compress's table sees them */
    static const struct {
        const char *opt;
        size_t off;
    } checked[] = {{"--patch", offsetof(grid, patch)},       {"--bits", offsetof(grid, bits)},
                   {"--qtable", offsetof(grid, qtable)},     {"--importance", offsetof(grid, importance)},
                   {"--wavelet", offsetof(grid, wavelet)},   {"--dwt-keep", offsetof(grid, keep)},
                   {"--bpp", offsetof(grid, bpp)}};
    int given[sizeof checked / sizeof *checked];
    for (size_t k = 0; k < sizeof checked / sizeof *checked; k++)
        given[k] = ((const strlist *)((const char *)&g + checked[k].off))->n > 0;
    if (list_default(&g.methods, "rd,dct,dwt,none,bitdelta,svd") || list_default(&g.patch, "16") ||
        list_default(&g.qtable, "flat") || list_default(&g.importance, "l2") || list_default(&g.wavelet, "haar") ||
        list_default(&g.keep, "all") || list_default(&g.bpp, "1"))
        goto out;
    if (!g.bits.n && list_split("2:0.5,0:0.5", ';', &g.bits, "--bits")) goto out;
    for (int i = 0; i < g.methods.n; i++)
        if (method_of(g.methods.v[i]) < 0) {
            cli_error("--methods: unknown method '%s' (dct, dwt, none, bitdelta, svd, rd)", g.methods.v[i]);
            goto out;
        }
    if (validate(&g.patch, "patch") || validate(&g.bits, "bits") || validate(&g.qtable, "qtable") ||
        validate(&g.importance, "importance") || validate(&g.wavelet, "wavelet") || validate(&g.keep, "dwt-keep") ||
        validate(&g.bpp, "bpp"))
        goto out;
    for (size_t k = 0; k < sizeof checked / sizeof *checked; k++)
        if (given[k] && check_grid_option(&g, checked[k].opt)) goto out;

    status = 1;
    for (int k = 0; k < 2; k++) {
        FILE *t = fopen(pos[k], "rb");
        if (!t) {
            cli_error("cannot open '%s': %s", pos[k], strerror(errno));
            goto out;
        }
        fclose(t);
    }
    if (build_grid(&g, &rs)) goto out;

    /* the directory for the .ddct files */
    if (outdir) {
        snprintf(dir, sizeof dir, "%s", outdir);
        if (mkdir(dir, 0777) == 0) made_dir = 1;
        else if (errno != EEXIST) {
            cli_error("cannot create '%s': %s", dir, strerror(errno));
            goto out;
        }
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
            cli_error("--outdir '%s' is not a directory", dir);
            goto out;
        }
    } else {
        const char *td = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ddct-sweep-XXXXXX", td && *td ? td : "/tmp");
        if (!mkdtemp(dir)) {
            cli_error("cannot create a directory '%s': %s", dir, strerror(errno));
            dir[0] = 0;
            goto out;
        }
        made_dir = 1;
    }

    int failed = 0;
    for (int i = 0; i < rs.n;) {
        int cnt = 1;
        while (i + cnt < rs.n && rs.r[i + cnt].file == rs.r[i].file) cnt++;
        sweep_row *r = &rs.r[i];
        char path[4096 + 256];
        file_name(path, sizeof path, dir, r);
        /* the progress line names the configuration without the rescale setting */
        char cfg[320];
        snprintf(cfg, sizeof cfg, "%s", r->config);
        char *rp = strstr(cfg, "rescale=");
        if (rp && cnt > 1) *(rp > cfg ? rp - 1 : rp) = 0;
        if (!quiet) {
            fprintf(stderr, "[%d/%d] %s%s%s ... ", r->file + 1, rs.nfiles, method_name[r->method], cfg[0] ? " " : "",
                    cfg);
            fflush(stderr);
        }
        if (run_file(pos[0], pos[1], dir, g.threads, keep, r, cnt, path)) {
            failed++;
            cli_error("configuration %d (%s%s%s) failed", r->file + 1, method_name[r->method], cfg[0] ? " " : "", cfg);
        } else if (!quiet && !r->lossy_params) {
            fprintf(stderr, "no lossy tensor (compress %.2f s, decompress %.2f s)\n", r->t_comp, r->t_decomp);
        } else if (!quiet) {
            fprintf(stderr, "%.2f bpp, err %.4f", r->bpp, r->rel);
            for (int k = 1; k < cnt; k++)
                fprintf(stderr, ", rescale %s: err %.4f", r[k].rescale ? "on" : "off", r[k].rel);
            fprintf(stderr, " (compress %.2f s, decompress %.2f s)\n", r->t_comp, r->t_decomp);
        }
        i += cnt;
    }

    print_table(stdout, &rs);
    fflush(stdout);
    status = failed ? 1 : 0;
    if (csv && write_csv(csv, &rs)) status = 1;
    if (md && write_md(md, &rs, pos[0], pos[1])) status = 1;
    if (svg && write_svg(svg, &rs, pos[0], pos[1])) status = 1;
    if (failed) cli_error("%d of %d configurations failed", failed, rs.nfiles);
    if (keep && !quiet) cli_error(".ddct files kept in %s", dir);

out:
    if (dir[0] && made_dir && !keep) {
        char rebuilt[4200];
        snprintf(rebuilt, sizeof rebuilt, "%s/rebuilt.tmp.safetensors", dir);
        unlink(rebuilt);
        if (rmdir(dir) && !quiet) cli_error("note: could not remove '%s': %s", dir, strerror(errno));
    }
    free(rs.r);
    grid_free(&g);
    return status;
}
