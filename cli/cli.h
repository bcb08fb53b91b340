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

/* Print "deltadct: <msg>" to stderr, on one line: the whole message is escaped as cli_esc does
 * (library messages hold tensor and file names as they are in the inputs). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The notes of the last decompress, verify or evaluate (e.g. values saturated to the dtype's range),
 * one "deltadct: note: ..." line each on stderr; nothing when quiet. */
void cli_print_dnotes(const ddct_DCtx *d, int quiet);
/* A name (tensor, file, path) as it may be shown on a terminal: valid UTF-8 stays, control
 * characters become \n, \r, \t or \xHH (ESC: \x1b), DEL \x7f, C1 controls and the Unicode
 * line separators and bidirectional overrides \uHHHH, and bytes that are not UTF-8 \xHH.
 * cli_esc writes it into buf (n bytes, cut before a character that does not fit) and returns buf;
 * cli_fputs_esc writes all of it to f. Every name the CLI prints goes through one of them. */
const char *cli_esc(const char *s, char *buf, size_t n);
void cli_fputs_esc(FILE *f, const char *s);
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
/* Print a JSON string literal: valid JSON for any bytes (see util.c; bytes that are not UTF-8
 * become \ufffd). */
void cli_json_str(FILE *f, const char *s);
/* Print a JSON text that is known to be valid (a .ddct's header: jansson parsed it when the file
 * was opened) on one line, with cli_json_str's escapes inside its strings. */
void cli_json_text(FILE *f, const char *json);
/* Print v with fmt, or null when v is NaN or infinite; returns 1 for null. JSON convention of the
 * CLI: a measure that is not finite is null, and the object holding it has "nonfinite": true. */
int cli_json_num(FILE *f, const char *fmt, double v);

/* Option parsing: matches "--name VALUE" or "--name=VALUE"; advances *i. Returns the value or NULL. */
const char *cli_optval(int argc, char **argv, int *i, const char *name, int *matched);
/* Numeric options (util.c holds the one table of their ranges): 1 if name ("--patch", "patch",
 * "-T", ...) is one. */
int cli_is_num_option(const char *name);
/* Parse v for the numeric option name strictly and check its range: 0 and *out, or -1 after a
 * message naming the option and what it accepts (the caller exits with EXIT_USAGE). */
int cli_parse_num(const char *name, const char *v, double *out);
/* The same with the message in msg (len bytes) instead of printed. */
int cli_parse_num_msg(const char *name, const char *v, double *out, char *msg, size_t len);
/* -T N / --threads N / --threads=N at argv[*i]: 1 consumed (into *threads), 0 not this option,
 * -1 a bad value (message printed). */
int cli_threads_opt(int argc, char **argv, int *i, int *threads);


/* compress's options (copts.c), shared by compress's flags and batch's manifest lines so that
 * names, bounds and refusals are the same: CLI_COPT_NAMES (without "--"); cli_copts_set takes one
 * (value as text, numbers checked by cli_parse_num's rules), cli_copts_check refuses what the
 * method does not read (ddct_params_checkOptions); each -1 with a message in msg. */
#define CLI_COPT_MAX 32
extern const char *const CLI_COPT_NAMES[];
typedef struct {
    ddct_params p;
    const char *given[CLI_COPT_MAX]; /* the options given, once each */
    int ngiven;
} cli_copts;
void cli_copts_init(cli_copts *o);
int cli_copts_is_name(const char *name);
int cli_copts_set(cli_copts *o, const char *name, const char *v, char *msg, size_t len);
int cli_copts_check(const cli_copts *o, char *msg, size_t len);

int cmd_compress(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_decompress(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_export_lora(int argc, char **argv);

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
