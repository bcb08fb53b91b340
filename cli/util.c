/* util.c — CLI helpers: messages, progress, option values, JSON strings. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("deltadct: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
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
    char a[32], b[32], r[32];
    fprintf(stderr, "\r\033[K%s [%zu/%zu] %s / %s, %s/s, ETA %.0fs  %.40s", p->verb, done, total,
            cli_bytes((double)bytes_done, a, sizeof a), cli_bytes((double)bytes_total, b, sizeof b),
            cli_bytes(rate, r, sizeof r), eta, name);
    return 0;
}

void cli_progress_end(cli_progress *p)
{
    if (p->enabled) fputs("\r\033[K", stderr);
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

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
 * 0.085 CPU s). */
void cli_passive_omp_wait(char **argv)
{
#if defined(__linux__)
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("KMP_BLOCKTIME")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    if (!getenv("OPENBLAS_NUM_THREADS")) setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
#else
    (void)argv;
#endif
}
