/* util.c — CLI helpers: messages, progress, option values and numbers, printable and JSON strings. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/cpu.h"

/* ------------------------------------------------------------------ names on the terminal */

/* Length (1..4) of the well-formed UTF-8 sequence at s, with its code point in *cp; 0 when s does
 * not start one (a stray continuation byte, an overlong form, a surrogate, a truncated sequence:
 * the terminating NUL is not a continuation byte, so nothing is read past it). */
static int utf8_seq(const unsigned char *s, unsigned long *cp)
{
    unsigned c = s[0];
    int n;
    unsigned long v, min;
    if (c < 0x80) return *cp = c, 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

/* Code points a terminal acts on instead of showing: C0 controls (ESC starts escape sequences,
 * newline and CR break a one-line message), DEL, C1 controls (U+009B is a CSI on some
 * terminals), and the line separators and bidirectional overrides that reorder or split what
 * follows them. */
static int unsafe_cp(unsigned long cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The printable form of the next character of s into out (at most 7 bytes, not terminated);
 * *adv: bytes of s it stands for. Returns its length. */
static size_t esc_next(const char *s, char *out, size_t *adv)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned long cp;
    int n = utf8_seq(u, &cp);
    if (!n) { /* not UTF-8: the byte in hex */
        *adv = 1;
        return (size_t)snprintf(out, 8, "\\x%02x", u[0]);
    }
    *adv = (size_t)n;
    if (!unsafe_cp(cp)) {
        memcpy(out, s, (size_t)n);
        return (size_t)n;
    }
    if (cp == '\n') return memcpy(out, "\\n", 2), 2;
    if (cp == '\r') return memcpy(out, "\\r", 2), 2;
    if (cp == '\t') return memcpy(out, "\\t", 2), 2;
    if (cp < 0x80) return (size_t)snprintf(out, 8, "\\x%02lx", cp);
    return (size_t)snprintf(out, 8, "\\u%04lx", cp);
}

const char *cli_esc(const char *s, char *buf, size_t n)
{
    size_t o = 0, adv;
    char one[8];
    if (!n) return "";
    if (!s) s = "(null)";
    while (*s) {
        size_t k = esc_next(s, one, &adv);
        if (o + k >= n) break; /* cut before a character or escape, never inside one */
        memcpy(buf + o, one, k);
        o += k;
        s += adv;
    }
    buf[o] = 0;
    return buf;
}

void cli_fputs_esc(FILE *f, const char *s)
{
    size_t adv;
    char one[8];
    if (!s) s = "(null)";
    while (*s) {
        fwrite(one, 1, esc_next(s, one, &adv), f);
        s += adv;
    }
}

/* Every message goes through here, escaped as a whole: library messages name tensors and files
 * as they are in the inputs (a tensor name may hold ESC or a newline), and an error stays one
 * line on stderr. */
void cli_error(const char *fmt, ...)
{
    char small[1024], *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len >= (int)sizeof small && (msg = malloc((size_t)len + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    if (!msg) msg = small; /* out of memory: the truncated message */
    fputs("deltadct: ", stderr);
    cli_fputs_esc(stderr, len < 0 ? "(message could not be formatted)" : msg);
    fputc('\n', stderr);
    if (msg != small) free(msg);
}

void cli_print_dnotes(const ddct_DCtx *d, int quiet)
{
    if (quiet) return;
    for (size_t i = 0; i < ddct_DCtx_noteCount(d); i++) cli_error("note: %s", ddct_DCtx_note(d, i));
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *cli_bytes(double b, char *buf, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}

void cli_progress_init(cli_progress *p, int quiet, const char *verb)
{
    p->enabled = !quiet && isatty(2);
    p->t0 = cli_now();
    p->verb = verb;
}

int cli_progress_cb(void *opaque, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total,
                    const char *name)
{
    cli_progress *p = opaque;
    if (!p->enabled) return 0;
    double dt = cli_now() - p->t0, rate = dt > 0 ? bytes_done / dt : 0;
    double eta = rate > 0 ? (bytes_total - bytes_done) / rate : 0;
    char a[32], b[32], r[32], nm[41];
    fprintf(stderr, "\r\033[K%s [%zu/%zu] %s / %s, %s/s, ETA %.0fs  %s", p->verb, done, total,
            cli_bytes((double)bytes_done, a, sizeof a), cli_bytes((double)bytes_total, b, sizeof b),
            cli_bytes(rate, r, sizeof r), eta, cli_esc(name, nm, sizeof nm));
    return 0;
}

void cli_progress_end(cli_progress *p)
{
    if (p->enabled) fputs("\r\033[K", stderr);
}

/* ------------------------------------------------------------------ JSON */

/* A JSON string that any JSON parser (jansson, Python's json) loads: '"', '\\' and the code
 * points unsafe_cp() names are \u escapes (so the JSON is also safe to show on a terminal), and
 * each byte that is not part of well-formed UTF-8 (names in a .ddct are bytes) becomes U+FFFD,
 * written \ufffd, as Python's bytes.decode(errors="replace") does for a lone byte. */
void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned long cp;
        int n = utf8_seq(u, &cp);
        if (!n) fputs("\\ufffd", f), n = 1;
        else if (cp == '"' || cp == '\\') fprintf(f, "\\%c", (int)cp);
        else if (unsafe_cp(cp)) fprintf(f, "\\u%04lx", cp);
        else fwrite(u, 1, (size_t)n, f);
        u += n;
    }
    fputc('"', f);
}

void cli_json_text(FILE *f, const char *json)
{
    const unsigned char *u = (const unsigned char *)json;
    while (*u) {
        unsigned long cp;
        int n = utf8_seq(u, &cp);
        if (!n) fputs("\\ufffd", f), n = 1;   /* cannot happen in text jansson accepted */
        else if (cp == '\n' || cp == '\r' || cp == '\t') fputc(' ', f); /* whitespace between tokens */
        else if (unsafe_cp(cp)) fprintf(f, "\\u%04lx", cp); /* inside a string: the same escape */
        else fwrite(u, 1, (size_t)n, f);
        u += n;
    }
}

int cli_json_num(FILE *f, const char *fmt, double v)
{
    if (!isfinite(v)) return fputs("null", f), 1;
    fprintf(f, fmt, v);
    return 0;
}

/* ------------------------------------------------------------------ option values */

const char *cli_optval(int argc, char **argv, int *i, const char *name, int *matched)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    *matched = 0;
    if (strncmp(a, name, n)) return NULL;
    if (a[n] == '=') {
        *matched = 1;
        return a + n + 1;
    }
    if (a[n]) return NULL;
    *matched = 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* Every numeric option of every command, with what it accepts. The library checks the same
 * bounds (ddct_params_set, and compress and decompress for the API's users); the CLI checks
 * first so that each option has one message, naming it and its range, and one syntax: decimal
 * only, no leading blanks or '+', nothing after the number, no NaN or infinity (strtol and
 * strtod alone take " 8", "+8", "0x10", "1e999" as inf, "nan"). */
typedef struct {
    const char *name;
    ddct_cParameter id; /* its bounds: the library's table (ddct_cParam_getBounds) */
    const char *range;
} num_spec;

static const num_spec NUM_SPECS[] = {
    {"--patch", DDCT_c_patch, "an integer in 2..128"},
    {"--lowfreq-k", DDCT_c_lowfreqK, "an integer in 1..128"},
    {"--dwt-levels", DDCT_c_dwtLevels, "an integer in 1..6"},
    {"--zstd-level", DDCT_c_zstdLevel, "an integer in 0..22"},
    {"--threads", DDCT_c_threads, "an integer in 0..1024 (0: all cores)"},
    {"--bpp", DDCT_c_bpp, "a number in (0, 32]"},
    {"--error", DDCT_c_error, "a number in (0, 1)"},
};

static const num_spec *num_spec_of(const char *name)
{
    if (!strcmp(name, "-T")) name = "--threads";
    for (size_t k = 0; k < sizeof NUM_SPECS / sizeof *NUM_SPECS; k++)
        if (!strcmp(NUM_SPECS[k].name, name) || !strcmp(NUM_SPECS[k].name + 2, name)) return &NUM_SPECS[k];
    return NULL;
}

int cli_is_num_option(const char *name) { return num_spec_of(name) != NULL; }

/* 1 if v is a plain decimal number: [-]digits[.digits][(e|E)[+|-]digits] (an integer: [-]digits). */
static int decimal_syntax(const char *v, int integer)
{
    const char *c = v;
    size_t digits = 0;
    if (*c == '-') c++;
    while (*c >= '0' && *c <= '9') c++, digits++;
    if (!integer && *c == '.')
        for (c++; *c >= '0' && *c <= '9'; c++) digits++;
    if (!digits) return 0;
    if (!integer && (*c == 'e' || *c == 'E')) {
        c++;
        if (*c == '+' || *c == '-') c++;
        if (!(*c >= '0' && *c <= '9')) return 0;
        while (*c >= '0' && *c <= '9') c++;
    }
    return *c == 0;
}

int cli_parse_num_msg(const char *name, const char *v, double *out, char *msg, size_t len)
{
    const num_spec *s = num_spec_of(name);
    if (!s) return snprintf(msg, len, "%s: not a numeric option", name), -1; /* a bug in the caller */
    ddct_bounds b = ddct_cParam_getBounds(s->id); /* as an option, 0 is a value, never "unset" */
    if (!v) return snprintf(msg, len, "%s needs a value: %s", s->name, s->range), -1;
    if (!decimal_syntax(v, b.integer)) return snprintf(msg, len, "%s needs %s, got '%s'", s->name, s->range, v), -1;
    errno = 0; /* ERANGE: overflow (strtoll saturates, strtod gives inf) or underflow */
    double x = b.integer ? (double)strtoll(v, NULL, 10) : strtod(v, NULL);
    if (errno == ERANGE || !isfinite(x) || (b.lowerExclusive ? x <= b.lowerBound : x < b.lowerBound) ||
        (b.upperExclusive ? x >= b.upperBound : x > b.upperBound))
        return snprintf(msg, len, "%s: '%s' is out of range: %s", s->name, v, s->range), -1;
    *out = x;
    return 0;
}

int cli_parse_num(const char *name, const char *v, double *out)
{
    char msg[512];
    if (cli_parse_num_msg(name, v, out, msg, sizeof msg)) return cli_error("%s", msg), -1;
    return 0;
}

int cli_threads_opt(int argc, char **argv, int *i, int *threads)
{
    int m;
    const char *v = cli_optval(argc, argv, i, !strcmp(argv[*i], "-T") ? "-T" : "--threads", &m);
    if (!m) return 0;
    double x;
    if (cli_parse_num("--threads", v, &x)) return -1;
    *threads = (int)x;
    return 1;
}

/* OpenMP worker threads busy-wait for a while after every parallel region before they sleep
 * (libgomp: about 300k spins). deltadct's regions are few and large, with one thread working
 * alone between them (hashing, zstd, writing), so on a machine with other work the spinning
 * only takes CPU away from it: measured on a loaded 2-core machine, -T 2 compress of a 0.5B
 * model took 12.7 s wall / 3.5 s user with the default and 9.1 s / 2.3 s with passive waiting.
 * libgomp reads OMP_WAIT_POLICY once, when it loads, so the CLI sets it and re-executes itself
 * once (Linux); a wait policy or spin count the user set is left alone. The same re-execution
 * gives OpenBLAS one thread (OPENBLAS_NUM_THREADS=1, unless the user set it): the library runs
 * every BLAS call serially anyway (lowrank.h), and OpenBLAS's idle pool threads otherwise
 * yield-spin beside the rd and svd decoders (measured: rd decompress of gpt-prose, 0.096 ->
 * 0.085 CPU s). And where OpenBLAS did not recognise the CPU (a virtual machine that hides its
 * model) and took its generic "Prescott" kernels, it is told the kernel family the CPU's features
 * allow (OPENBLAS_CORETYPE, unless the user set it): measured on such a machine, the rd encoder's
 * sketches ran 2-3x faster and a 0.5B compress took 5.7 s instead of 7.3. */
static void blas_coretype_hint(void)
{
    if (getenv("OPENBLAS_CORETYPE")) return;
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    const char *have = corename ? corename() : NULL, *want = ddct_cpu_blas_coretype();
    if (have && want && !strcasecmp(have, "prescott")) setenv("OPENBLAS_CORETYPE", want, 1);
}

void cli_passive_omp_wait(char **argv)
{
#if defined(__linux__)
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("KMP_BLOCKTIME")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    if (!getenv("OPENBLAS_NUM_THREADS")) setenv("OPENBLAS_NUM_THREADS", "1", 1);
    blas_coretype_hint();
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
#else
    (void)argv;
#endif
}
