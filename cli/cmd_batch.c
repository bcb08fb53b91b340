/*
 * cmd_batch.c — deltadct batch: many (base, fine-tune, output) lines of a JSON Lines manifest,
 * as a well-behaved batch job (one shard of N per process, for a scheduler's job array).
 *
 * The whole manifest is read and checked first (JSON, fields, each line's options through the
 * code compress's flags go through, outputs unique), so a mistake stops every shard before any
 * work. Shard I of N takes the entries [I*L/N, (I+1)*L/N) of the manifest's L entries (blank
 * lines are not entries): contiguous, so that a manifest sorted by base gives each shard few
 * bases. Within the shard, entries are grouped by base (manifest order inside a group) and each
 * base is opened once (ddct_openBase: its headers parsed, its fingerprints computed once).
 * An output that exists is verified (checksums and its base's fingerprints, ddct_verifyWithBase
 * quick) and its options compared with the line's: the same, it is skipped; else the line fails
 * (-f rewrites it). Outputs are written atomically by the library, so a killed run leaves no
 * partial output under the final name. SIGTERM, SIGINT and SIGHUP (a scheduler's cancel or
 * time limit) stop the compression in progress at the next tensor, nothing committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *BATCH_HELP =
    "usage: deltadct batch MANIFEST.jsonl [--shard I/N] [--log RESULTS.jsonl] [options]\n"
    "\n"
    "Compresses every line of MANIFEST, a JSON Lines file: one object per line with \"base\",\n"
    "\"finetune\" and \"output\" (paths; relative ones are relative to the manifest's directory)\n"
    "and, optionally, compress's options by their long names, e.g.\n"
    "  {\"base\": \"llama/base\", \"finetune\": \"ft/0001\", \"output\": \"out/0001.ddct\", \"bpp\": 0.5}\n"
    "(\"rescale\": true or false, as compress's flags). Blank lines are skipped. The whole\n"
    "manifest is checked before anything runs: a line that is not such an object, an unknown or\n"
    "refused option or two lines with one output are a usage error naming the line.\n"
    "\n"
    "  --shard I/N           this process does shard I of N (0 <= I < N; default 0/1): the I-th of N\n"
    "                        contiguous runs of the manifest's lines (for a job array: I = its index)\n"
    "  --log FILE            append one JSON object per line done to FILE: line, base, finetune,\n"
    "                        output, status (ok | skipped | failed | cancelled), bytes, bpp (bits per\n"
    "                        lossy parameter), seconds, error (null or the message)\n"
    "  --keep-going          a failed line does not stop the others\n"
    "  -f, --force           rewrite an existing output that does not verify or was made with other\n"
    "                        options (one that verifies and matches is always skipped)\n"
    "  -T, --threads N       threads per compression, 0..1024 (default 0: all cores)\n"
    "  -q, --quiet           no progress or per-line report on stderr\n"
    "  --json                the log's objects on stdout too\n"
    "\n"
    "Each base is opened, and its tensors fingerprinted, once per process. An output that exists\n"
    "is checked as a quick verify against its base does (every checksum, the base's\n"
    "fingerprints) and its options against the line's: when both hold it is skipped, so a rerun\n"
    "of a shard does only what is missing. Outputs are written under a temporary name and\n"
    "renamed when complete. On\n"
    "SIGTERM, SIGINT or SIGHUP the line in progress is cancelled (nothing written) and logged.\n"
    "Exit status: 0 when every line of the shard is ok or skipped, 1 otherwise, 2 usage or manifest\n"
    "error.\n";

typedef struct {
    size_t line;    /* 1-based line number in the manifest */
    char *base, *ft, *out; /* resolved paths (owned) */
    char *base_key; /* the base's real path when it resolves (grouping), else base */
    cli_copts o;    /* the line's options, checked */
    json_t *obj;    /* the parsed line (its strings back o's regexes) */
} entry;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { g_stop = sig; }

static void free_entries(entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].base);
        free(v[i].ft);
        free(v[i].out);
        free(v[i].base_key);
        json_decref(v[i].obj);
    }
    free(v);
}

/* path as given if absolute, else dir/path. */
static char *resolve(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir[0]) return strdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", path);
    return s;
}

/* An option value as compress's flag text: strings as they are, JSON numbers as the shortest
 * decimal that reads back to the same double, true/false only for rescale. */
static int value_text(const char *key, json_t *v, char *buf, size_t n, const char **out, char *msg, size_t len)
{
    if (json_is_string(v)) return *out = json_string_value(v), 0; /* jansson refuses \u0000 */
    if (json_is_integer(v)) return snprintf(buf, n, "%lld", (long long)json_integer_value(v)), *out = buf, 0;
    if (json_is_real(v)) {
        double x = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
        return *out = buf, 0;
    }
    if (json_is_boolean(v) && !strcmp(key, "rescale")) return *out = json_is_true(v) ? "on" : "off", 0;
    return snprintf(msg, len, "\"%s\": needs a string%s", key,
                    !strcmp(key, "rescale") ? ", true or false" : " or a number"), -1;
}

/* One manifest line (text, NUL-terminated) into e: 0, or -1 with a message. */
static int parse_line(const char *text, const char *dir, entry *e, char *msg, size_t len)
{
    json_error_t je;
    e->obj = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!e->obj) return snprintf(msg, len, "not JSON: %s (column %d)", je.text, je.column), -1;
    if (!json_is_object(e->obj)) return snprintf(msg, len, "not a JSON object"), -1;
    cli_copts_init(&e->o);
    const char *paths[3] = {NULL, NULL, NULL};
    static const char *const PATH_KEYS[3] = {"base", "finetune", "output"};
    const char *key;
    json_t *v;
    json_object_foreach(e->obj, key, v) {
        int pk = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(key, PATH_KEYS[k])) pk = k;
        if (pk >= 0) {
            if (!json_is_string(v) || !json_string_value(v)[0])
                return snprintf(msg, len, "\"%s\": needs a path (a non-empty string)", key), -1;
            paths[pk] = json_string_value(v);
            continue;
        }
        if (!strcmp(key, "rescale")) {
            const char *t;
            char buf[64];
            if (value_text(key, v, buf, sizeof buf, &t, msg, len)) return -1;
            if (ddct_params_set(&e->o.p, "rescale", t, msg, len)) return -1;
            continue;
        }
        if (!cli_copts_is_name(key))
            return snprintf(msg, len, "unknown key \"%s\" (base, finetune, output, rescale or a compress option)",
                            key), -1;
        const char *t; /* a string of e->obj (the regexes point into it) or buf (a number, copied) */
        char buf[64];
        if (value_text(key, v, buf, sizeof buf, &t, msg, len)) return -1;
        if (cli_copts_set(&e->o, key, t, msg, len)) return -1;
    }
    for (int k = 0; k < 3; k++)
        if (!paths[k]) return snprintf(msg, len, "missing \"%s\"", PATH_KEYS[k]), -1;
    if (cli_copts_check(&e->o, msg, len)) return -1;
    e->base = resolve(dir, paths[0]);
    e->ft = resolve(dir, paths[1]);
    e->out = resolve(dir, paths[2]);
    char *real = e->base ? realpath(e->base, NULL) : NULL;
    e->base_key = real ? real : (e->base ? strdup(e->base) : NULL);
    if (!e->base || !e->ft || !e->out || !e->base_key) return snprintf(msg, len, "out of memory"), -1;
    return 0;
}

/* By output, then line. */
static int by_output(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    int c = strcmp(x->out, y->out);
    if (c) return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The manifest's entries into *out (*n): 0, or EXIT_USAGE after a message naming the line. */
static int read_manifest(const char *path, entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error("%s: %s", path, strerror(errno)), 1;
    char *dirc = strdup(path), *slash = dirc ? strrchr(dirc, '/') : NULL;
    if (!dirc) return fclose(f), cli_error("out of memory"), 1;
    if (slash) *(slash == dirc ? slash + 1 : slash) = 0;
    else dirc[0] = 0;
    entry *v = NULL;
    size_t cap = 0, lineno = 0;
    char *line = NULL, msg[1024];
    size_t lcap = 0;
    ssize_t got;
    int rc = 0;
    while (!rc && (got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if ((size_t)got != strlen(line)) {
            rc = EXIT_USAGE, cli_error("%s:%zu: holds a NUL byte", path, lineno);
            break;
        }
        size_t k = 0;
        while (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n') k++;
        if (!line[k]) continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            entry *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = 1, cli_error("out of memory");
                break;
            }
            v = nv, cap = nc;
        }
        entry *e = &v[(*n)++];
        memset(e, 0, sizeof *e);
        e->line = lineno;
        if (parse_line(line, dirc, e, msg, sizeof msg)) rc = EXIT_USAGE, cli_error("%s:%zu: %s", path, lineno, msg);
    }
    if (!rc && ferror(f)) rc = 1, cli_error("%s: read error", path);
    free(line);
    fclose(f);
    free(dirc);
    /* one output per line: two shards writing one file would race, and one would be lost */
    entry **byout = rc || !*n ? NULL : malloc(*n * sizeof *byout);
    if (!rc && *n && !byout) rc = 1, cli_error("out of memory");
    for (size_t i = 0; byout && i < *n; i++) byout[i] = &v[i];
    if (byout) qsort(byout, *n, sizeof *byout, by_output);
    for (size_t i = 1; byout && !rc && i < *n; i++)
        if (!strcmp(byout[i]->out, byout[i - 1]->out))
            rc = EXIT_USAGE, cli_error("%s:%zu: output '%s' is also line %zu's", path, byout[i]->line, byout[i]->out,
                                       byout[i - 1]->line);
    free(byout);
    if (rc) {
        free_entries(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ one line's result */

typedef struct {
    const char *status;
    long long bytes; /* -1: none */
    double bpp;      /* < 0: none */
    double seconds;
    const char *error;
} result;

/* The result as one JSON object on one line (no newline inside: names escaped). */
static char *result_json(const entry *e, const result *r, size_t *len)
{
    char *s = NULL;
    FILE *m = open_memstream(&s, len);
    if (!m) return NULL;
    fprintf(m, "{\"line\":%zu,\"base\":", e->line);
    cli_json_str(m, e->base);
    fputs(",\"finetune\":", m);
    cli_json_str(m, e->ft);
    fputs(",\"output\":", m);
    cli_json_str(m, e->out);
    fprintf(m, ",\"status\":\"%s\",\"bytes\":", r->status);
    if (r->bytes >= 0) fprintf(m, "%lld", r->bytes);
    else fputs("null", m);
    fputs(",\"bpp\":", m);
    if (r->bpp >= 0) cli_json_num(m, "%.6f", r->bpp);
    else fputs("null", m);
    fprintf(m, ",\"seconds\":%.3f,\"error\":", r->seconds);
    if (r->error) cli_json_str(m, r->error);
    else fputs("null", m);
    fputs("}\n", m);
    if (fclose(m)) {
        free(s);
        return NULL;
    }
    return s;
}

/* bytes and bits per lossy parameter of a .ddct (as info reports them). */
static void file_sizes(const char *path, result *r)
{
    ddct_Info *info;
    char err[256];
    r->bytes = -1;
    r->bpp = -1;
    if (ddct_openInfo(&info, path, err, sizeof err)) return;
    cli_info_totals t;
    cli_info_totals_of(info, &t);
    r->bytes = (long long)ddct_Info_fileBytes(info);
    r->bpp = cli_bpp(t.lossy_bytes, t.lossy_params);
    ddct_freeInfo(info);
}

/* 1 if the .ddct at path was written with the options p describes (its header's "options"). */
static int same_options(const char *path, const ddct_params *p)
{
    ddct_Info *info;
    char err[256], want[1024];
    if (ddct_openInfo(&info, path, err, sizeof err)) return 0;
    ddct_params eff;
    ddct_params_effective(p, &eff);
    ddct_params_describe(&eff, want, sizeof want);
    json_t *h = json_loads(ddct_Info_header(info), 0, NULL);
    const char *have = json_string_value(json_object_get(h, "options"));
    int same = have && !strcmp(have, want);
    json_decref(h);
    ddct_freeInfo(info);
    return same;
}

static int cancel_cb(void *opaque, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total,
                     const char *name)
{
    if (g_stop) return 1;
    return cli_progress_cb(opaque, done, total, bytes_done, bytes_total, name);
}

typedef struct {
    int force, quiet, json, threads;
    int logfd;
    const char *log_path;
    ddct_CCtx *cc;
    ddct_DCtx *dc;
    size_t done, total;
    size_t n_ok, n_skipped, n_failed;
} batch;

/* An existing output: 1 (skip it), 0 (write it), -1 (fails: msg set). */
static int check_existing(batch *b, ddct_Base *base, const entry *e, char *msg, size_t len)
{
    struct stat st;
    if (lstat(e->out, &st)) return 0;
    const char *why = NULL;
    if (!S_ISREG(st.st_mode)) why = "is not a regular file";
    else if (ddct_verifyWithBase(b->dc, e->out, base, 1)) why = ddct_DCtx_getErrorMessage(b->dc);
    else if (!same_options(e->out, &e->o.p)) why = "was made with other options";
    if (!why) return 1;
    if (b->force && S_ISREG(st.st_mode)) return 0;
    snprintf(msg, len, "output '%s' exists and %s%s", e->out, why, S_ISREG(st.st_mode) ? " (-f rewrites it)" : "");
    return -1;
}

static void report(batch *b, const entry *e, const result *r)
{
    size_t len = 0;
    char *js = result_json(e, r, &len);
    if (!js) {
        cli_error("out of memory");
    } else {
        if (b->logfd >= 0 && write(b->logfd, js, len) != (ssize_t)len)
            cli_error("%s: cannot write the log: %s", b->log_path, strerror(errno));
        if (b->json) fputs(js, stdout), fflush(stdout);
        free(js);
    }
    if (!strcmp(r->status, "ok")) b->n_ok++;
    else if (!strcmp(r->status, "skipped")) b->n_skipped++;
    else b->n_failed++;
    if (b->quiet) return;
    char sz[32] = "";
    fprintf(stderr, "deltadct: [%zu/%zu] ", b->done, b->total);
    cli_fputs_esc(stderr, e->out);
    fprintf(stderr, ": %s", r->status);
    if (r->bytes >= 0) fprintf(stderr, ", %s, %.3f bits per lossy parameter", cli_bytes((double)r->bytes, sz, sizeof sz), r->bpp);
    fprintf(stderr, ", %.2f s", r->seconds);
    if (r->error) {
        fputs(": ", stderr);
        cli_fputs_esc(stderr, r->error);
    }
    fputc('\n', stderr);
}

/* One line against its opened base (NULL: it could not be opened, base_err says why). Returns 0
 * when the line is ok or skipped. */
static int run_line(batch *b, ddct_Base *base, const char *base_err, const entry *e)
{
    double t0 = cli_now();
    result r = {.status = "failed", .bytes = -1, .bpp = -1};
    char msg[1200];
    b->done++;
    if (!base) {
        r.error = base_err;
    } else {
        int ex = check_existing(b, base, e, msg, sizeof msg);
        if (ex < 0) {
            r.error = msg;
        } else if (ex > 0) {
            r.status = "skipped";
            file_sizes(e->out, &r);
        } else {
            ddct_params p = e->o.p;
            p.threads = b->threads;
            cli_progress pr;
            cli_progress_init(&pr, b->quiet, "compress");
            ddct_CCtx_setProgress(b->cc, cancel_cb, &pr);
            ddct_ErrorCode rc = ddct_compressWithBase(b->cc, base, e->ft, e->out, &p, b->force);
            cli_progress_end(&pr);
            if (rc == DDCT_ERR_CANCELLED && g_stop) {
                r.status = "cancelled";
                snprintf(msg, sizeof msg, "stopped by signal %d: nothing written", (int)g_stop);
                r.error = msg;
            } else if (rc) {
                snprintf(msg, sizeof msg, "%s", ddct_CCtx_getErrorMessage(b->cc));
                r.error = msg;
            } else {
                r.status = "ok";
                file_sizes(e->out, &r);
                if (!b->quiet)
                    for (size_t k = 0; k < ddct_CCtx_noteCount(b->cc); k++)
                        cli_error("note: %s", ddct_CCtx_note(b->cc, k));
            }
        }
    }
    r.seconds = cli_now() - t0;
    report(b, e, &r);
    return strcmp(r.status, "ok") && strcmp(r.status, "skipped");
}

static int by_base(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    int c = strcmp(x->base_key, y->base_key);
    if (c) return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* "I/N" with 0 <= I < N: 0, else -1 after a message. */
static int parse_shard(const char *v, size_t *I, size_t *N)
{
    char *end;
    if (!v || !(*v >= '0' && *v <= '9')) goto bad;
    errno = 0;
    unsigned long long i = strtoull(v, &end, 10);
    if (errno || *end != '/' || !(end[1] >= '0' && end[1] <= '9')) goto bad;
    unsigned long long n = strtoull(end + 1, &end, 10);
    if (errno || *end || n == 0 || i >= n || n > (unsigned long long)1 << 32) goto bad;
    *I = (size_t)i;
    *N = (size_t)n;
    return 0;
bad:
    cli_error("--shard needs I/N with 0 <= I < N (e.g. --shard 3/16), got '%s'", v ? v : "");
    return -1;
}

int cmd_batch(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(BATCH_HELP, stdout), 0;
    batch b = {.logfd = -1};
    const char *manifest = NULL;
    size_t shard = 0, nshards = 1;
    int keep_going = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int m, r;
        if (!strcmp(a, "-f") || !strcmp(a, "--force")) b.force = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) b.quiet = 1;
        else if (!strcmp(a, "--json")) b.json = 1;
        else if (!strcmp(a, "--keep-going")) keep_going = 1;
        else if ((r = cli_threads_opt(argc, argv, &i, &b.threads)) != 0) {
            if (r < 0) return EXIT_USAGE;
        } else if ((v = cli_optval(argc, argv, &i, "--shard", &m)), m) {
            if (parse_shard(v, &shard, &nshards)) return EXIT_USAGE;
        } else if ((v = cli_optval(argc, argv, &i, "--log", &m)), m) {
            if (!v || !*v) return cli_error("--log needs a file name"), EXIT_USAGE;
            b.log_path = v;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("unknown option '%s' (see 'deltadct batch --help')", a), EXIT_USAGE;
        } else if (!manifest) {
            manifest = a;
        } else {
            return cli_error("too many arguments (see 'deltadct batch --help')"), EXIT_USAGE;
        }
    }
    if (!manifest) return cli_error("batch needs MANIFEST.jsonl (see 'deltadct batch --help')"), EXIT_USAGE;
    entry *v;
    size_t n;
    int rc = read_manifest(manifest, &v, &n);
    if (rc) return rc;
    size_t lo = (size_t)((unsigned long long)shard * n / nshards), hi = (size_t)((unsigned long long)(shard + 1) * n / nshards);
    entry **mine = malloc((hi - lo ? hi - lo : 1) * sizeof *mine);
    if (!mine) return free_entries(v, n), cli_error("out of memory"), 1;
    for (size_t k = lo; k < hi; k++) mine[k - lo] = &v[k];
    qsort(mine, hi - lo, sizeof *mine, by_base);
    if (b.log_path) {
        b.logfd = open(b.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (b.logfd < 0) {
            cli_error("%s: %s", b.log_path, strerror(errno));
            free(mine);
            free_entries(v, n);
            return 1;
        }
    }
    b.cc = ddct_createCCtx();
    b.dc = ddct_createDCtx();
    if (!b.cc || !b.dc) rc = 1, cli_error("out of memory");
    if (b.dc) ddct_DCtx_setThreads(b.dc, b.threads);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal acts as usual */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    b.total = hi - lo;
    if (!b.quiet)
        fprintf(stderr, "deltadct: shard %zu/%zu: %zu of the manifest's %zu lines\n", shard, nshards, b.total, n);
    int failed = 0;
    for (size_t k = 0; !rc && k < b.total && !(failed && !keep_going) && !g_stop;) {
        /* one group: the lines of one base */
        size_t g = k;
        while (g < b.total && !strcmp(mine[g]->base_key, mine[k]->base_key)) g++;
        ddct_Base *base = NULL;
        char berr[1024];
        if (ddct_openBase(&base, mine[k]->base, berr, sizeof berr)) base = NULL;
        for (; k < g && !(failed && !keep_going) && !g_stop; k++) failed |= run_line(&b, base, berr, mine[k]);
        ddct_freeBase(base);
    }
    if (g_stop) cli_error("stopped by signal %d after %zu of %zu lines", (int)g_stop, b.done, b.total);
    else if (failed && !keep_going && b.done < b.total)
        cli_error("stopped at the first failure (%zu of %zu lines done; --keep-going runs the others)", b.done, b.total);
    if (!b.quiet)
        fprintf(stderr, "deltadct: shard %zu/%zu: %zu ok, %zu skipped, %zu failed, %zu not run\n", shard, nshards,
                b.n_ok, b.n_skipped, b.n_failed, b.total - b.done);
    if (b.logfd >= 0 && close(b.logfd)) rc = 1, cli_error("%s: %s", b.log_path, strerror(errno));
    ddct_freeCCtx(b.cc);
    ddct_freeDCtx(b.dc);
    free(mine);
    free_entries(v, n);
    if (rc) return rc;
    return failed || g_stop || b.done < b.total ? 1 : 0;
}
