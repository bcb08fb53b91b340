/* copts.c — compress's options, set one by one from text: compress's flags and batch's manifest
 * lines both go through here, so an option has one name, one range and one refusal. */
#include <string.h>

#include "cli.h"

const char *const CLI_COPT_NAMES[] = {"method", "transform", "patch", "bits", "importance", "lowfreq-k", "qtable",
                                      "wavelet", "dwt-levels", "dwt-keep", "bpp", "error", "rd-measure",
                                      "zstd-level", "include", "exclude", NULL};

void cli_copts_init(cli_copts *o)
{
    memset(o, 0, sizeof *o);
    ddct_params_default(&o->p);
}

static int copt_index(const char *name)
{
    for (int k = 0; CLI_COPT_NAMES[k]; k++)
        if (!strcmp(CLI_COPT_NAMES[k], name)) return k;
    return -1;
}

int cli_copts_is_name(const char *name) { return copt_index(name) >= 0; }

int cli_copts_set(cli_copts *o, const char *name, const char *v, char *msg, size_t len)
{
    int k = copt_index(name);
    if (k < 0) return snprintf(msg, len, "unknown option '%s'", name), -1;
    char opt[32];
    snprintf(opt, sizeof opt, "--%s", name);
    double x;
    if (cli_is_num_option(opt) && cli_parse_num_msg(opt, v, &x, msg, len)) return -1;
    if (!strcmp(name, "include")) o->p.include_regex = v;
    else if (!strcmp(name, "exclude")) o->p.exclude_regex = v;
    else if (ddct_params_set(&o->p, name, v, msg, len)) return -1;
    for (int g = 0; g < o->ngiven; g++)
        if (!strcmp(o->given[g], CLI_COPT_NAMES[k])) return 0;
    o->given[o->ngiven++] = CLI_COPT_NAMES[k];
    return 0;
}

int cli_copts_check(const cli_copts *o, char *msg, size_t len)
{
    int method_given = 0;
    for (int g = 0; g < o->ngiven; g++) method_given |= !strcmp(o->given[g], "method");
    return ddct_params_checkOptions(&o->p, o->given, o->ngiven, method_given, msg, len) == DDCT_OK ? 0 : -1;
}
