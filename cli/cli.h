/* cli.h — shared pieces of the deltadct command-line tool (the only code that prints). */
#ifndef DDCT_CLI_H
#define DDCT_CLI_H

#include <stdio.h>
#include "deltadct.h"

#define EXIT_USAGE 2

typedef struct {
    int quiet;
    int force;
    int json;
    int threads;
    int rescale; /* -1 as stored */
    const char *output;
} cli_common;

/* Print "deltadct: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress callback: a one-line status on stderr when it is a terminal. opaque = cli_progress*. */
typedef struct {
    int enabled;
    double t0;
    const char *verb;
} cli_progress;
void cli_progress_init(cli_progress *p, int quiet, const char *verb);
int cli_progress_cb(void *opaque, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total,
                    const char *name);
void cli_progress_end(cli_progress *p);
/* Re-executes the CLI once with OMP_WAIT_POLICY=passive unless the user set a policy (see util.c). */
void cli_passive_omp_wait(char **argv);
double cli_now(void);
/* Human-readable bytes into buf. */
const char *cli_bytes(double b, char *buf, size_t n);
/* Print a JSON string literal (escaped). */
void cli_json_str(FILE *f, const char *s);

/* Option parsing: matches "--name VALUE" or "--name=VALUE"; advances *i. Returns the value or NULL. */
const char *cli_optval(int argc, char **argv, int *i, const char *name, int *matched);

int cmd_compress(int argc, char **argv);
int cmd_decompress(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_sweep(int argc, char **argv);

/* Totals of a .ddct's records (what `info` prints); shared by info, eval, sweep. */
typedef struct {
    uint64_t lossy_params, lossy_bytes, lossy_payload, lossless_params, lossless_bytes;
} cli_info_totals;
struct ddct_Info_s;
void cli_info_totals_of(const struct ddct_Info_s *info, cli_info_totals *t);
double cli_bpp(uint64_t bytes, uint64_t params);   /* 8 * bytes / params, 0 if no params */
double cli_rel(double err2, double ref2);          /* sqrt(err2 / ref2) */
double cli_cos(double dot, double a2, double b2);  /* dot / sqrt(a2 b2) */

/* Shared by eval and sweep: totals over a .ddct's tensors. */
typedef struct {
    double err2, ref2, dot, hat2, worst_rel;
    const char *worst_name;
    char worst_buf[256];
    uint64_t lossy_params;
} cli_eval_totals;
int cli_eval_run(const char *base, const char *ft, const char *ddct, int threads, int rescale, int per_tensor_json,
                 FILE *json_out, cli_eval_totals *tot);
#endif
