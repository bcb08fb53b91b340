/*
 * lora.h — a fine-tune (or a .ddct) as a PEFT LoRA adapter (`deltadct export-lora`, lora.c).
 *
 * Each adapted module's delta M (out x in: a 2-D weight as stored, or as [in, out] transposed with
 * fan_in_fan_out; a convolution's [out, in, k...] as out x (in * k...)) becomes lora_B [out, r]
 * times lora_A [r, in], the truncated SVD B = U_r sqrt(S_r), A = sqrt(S_r) V_r^T rounded to the
 * factor dtype, with lora_alpha = r for every module (PEFT's scaling alpha / r = 1), so
 * W + (alpha / r) B A = W + M_r. From a .ddct, svd records give their factors exactly and rd
 * records their low-rank part (both times the rescale the decoder applies), at the record's
 * rank; other records a truncated SVD of their rebuilt delta.
 *
 * Ranks: `rank` (every module that rank, at most min(out, in)), `error` (per module the smallest
 * rank whose truncation has relative Frobenius error <= error) or `bpp` (the adapter's bits,
 * r (out + in) x bits per factor element summed over the modules, at most bpp x the modules'
 * weights; shared by `rule`). Deterministic for any thread count.
 */
#ifndef DDCT_LORA_H
#define DDCT_LORA_H

#include <stddef.h>
#include <stdint.h>
#include "common/dtype.h"
#include "common/error_private.h"

typedef enum {
    DDCT_LORA_UNIFORM = 0,   /* one rank for every module (the largest that fits) */
    DDCT_LORA_ENERGY = 1,    /* greedy: the next rank where captured ||delta||^2 per bit is largest */
    DDCT_LORA_DELTA_REL = 2, /* the same with each module's ||delta||^2 as its unit (equal relative error) */
    DDCT_LORA_WEIGHT_REL = 3 /* the same with each module's ||W||^2 (base weight) as its unit */
} ddct_lora_rule;
#define DDCT_LORA_RULE_DEFAULT DDCT_LORA_UNIFORM /* the best on task loss (docs/results/lora.md) */
/* "uniform", "energy", "delta-rel", "weight-rel"; -1 for another name. */
int ddct_lora_rule_from_name(const char *s);
const char *ddct_lora_rule_name(ddct_lora_rule r);

typedef struct {
    int rank;            /* > 0: every module this rank */
    double bpp;          /* > 0: adapter bits per adapted weight at most */
    double error;        /* > 0: per module relative error at most; none of the three: bpp 0.5 */
    ddct_lora_rule rule; /* with bpp */
    ddct_dtype dtype;    /* factors: DDCT_DT_BF16 (default when 0), DDCT_DT_F16 or DDCT_DT_F32 */
    int uniform_rank;    /* write every module at the largest rank (zero-padded); with bpp the
                          * budget counts the padded size and the rule is uniform */
    const char *target;  /* POSIX ERE (case-insensitive) of adapted tensors; NULL: compress's rule */
    int modules_to_save; /* changed tensors a LoRA cannot express go in the adapter, by module */
    int fan_in_fan_out;  /* 2-D weights stored [in, out] (GPT-2 Conv1D) */
    int threads;         /* 0: every core */
    int rescale;         /* from a .ddct: -1 as stored, 0 off, 1 on */
    int overwrite;
} ddct_lora_params;
void ddct_lora_params_default(ddct_lora_params *p);

/* What became of each changed tensor (and each unchanged one of a saved module). */
enum { DDCT_LORA_ADAPTED = 0, DDCT_LORA_RANK0 = 1, DDCT_LORA_SAVED = 2, DDCT_LORA_LEFT = 3 };
typedef struct {
    char *name;       /* the tensor's name */
    int kind;
    const char *how;  /* adapted: where the factors come from; left: why */
    uint64_t out, in; /* adapted: the matrix */
    uint64_t rank;    /* rank written (before padding) */
    uint64_t bytes;   /* lora_A + lora_B as written (padding included), or the saved tensor */
    double energy;    /* adapted / rank 0: ||delta||^2 (from a .ddct: of the rebuilt delta) */
    double captured;  /* ||delta||^2 - ||delta - B A||^2 with the factors as written */
    int nonfinite;    /* the energy could not be measured */
} ddct_lora_module;
typedef struct {
    ddct_lora_module *v;
    size_t n;
    uint64_t r;               /* config's r (the largest rank) */
    uint64_t lora_bytes;      /* every lora_A / lora_B */
    uint64_t adapted_weights; /* sum out * in over adapted and rank-0 modules */
    uint64_t saved_bytes;     /* modules_to_save tensors */
    uint64_t file_bytes;      /* adapter_model.safetensors */
    double energy, captured;
    int from_ddct;
    ddct_dtype dtype;
} ddct_lora_report;
void ddct_lora_report_free(ddct_lora_report *r);

/* BASE (file, sharded checkpoint or directory) and SRC (the fine-tune as BASE, or a .ddct made
 * against BASE: told by its magic) -> OUT_DIR/adapter_model.safetensors and adapter_config.json,
 * written into a temporary directory renamed when complete. rep (filled on success; may be NULL). */
int ddct_lora_export(const char *base_path, const char *src_path, const char *out_dir, const ddct_lora_params *p,
                     ddct_lora_report *rep, ddct_err *e);

#endif
