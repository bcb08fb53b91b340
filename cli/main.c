/*
 * main.c — deltadct command-line tool: argument parsing and dispatch.
 * Exit status: 0 success, 1 failure (one-line message on stderr), 2 usage error.
 */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *USAGE =
    "deltadct " DDCT_VERSION_STRING " — store a fine-tuned model as a compressed delta against its base\n"
    "\n"
    "usage:\n"
    "  deltadct compress   BASE FINETUNED -o OUT.ddct [options]\n"
    "  deltadct decompress BASE IN.ddct -o REBUILT [options]\n"
    "  (BASE, FINETUNED: a .safetensors file, a PyTorch checkpoint (.bin/.pt/.pth), a .gguf file, a sharded\n"
    "   checkpoint's index or a model directory)\n"
    "  deltadct info       IN.ddct [--json]\n"
    "  deltadct eval       BASE.safetensors FINETUNED.safetensors IN.ddct [--json]\n"
    "  deltadct verify     IN.ddct [--base BASE.safetensors]\n"
    "  deltadct sweep      BASE.safetensors FINETUNED.safetensors [grid options]\n"
    "  deltadct export-lora BASE FINETUNED|IN.ddct -o ADAPTER_DIR [options]\n"
    "  deltadct batch      MANIFEST.jsonl [--shard I/N] [--log RESULTS.jsonl] [--keep-going]\n"
    "\n"
    "Run 'deltadct COMMAND --help' for a command's options. -V/--version prints the version.\n";

static const char *COMPRESS_HELP =
    "usage: deltadct compress BASE FINETUNED -o OUT.ddct [options]\n"
    "\n"
    "BASE and FINETUNED: each a .safetensors file, a PyTorch checkpoint (torch.save's format:\n"
    ".bin, .pt, .pth; read without running any code), a GGUF file (.gguf: F32/F16/BF16 tensors coded\n"
    "like the others, quantized ones stored bit-exact), a sharded checkpoint (model.safetensors.index.json\n"
    "or pytorch_model.bin.index.json) or a Hugging Face model directory, in any mix; tensors are\n"
    "matched by name across shards and formats, and the\n"
    "directory's other files (config, tokenizer, index) are carried losslessly.\n"
    "Stores FINETUNED as a delta against BASE. Floating tensors of >= 2 dims with >= p*p elements\n"
    "(not embeddings, heads, classifiers, poolers or norms) are coded lossily; all others losslessly.\n"
    "\n"
    "  -o, --output FILE     output file (default: FINETUNED with .ddct)\n"
    "  -f, --force           overwrite an existing output\n"
    "  --method M            rd (default: rate-distortion hybrid, low-rank + transform residual,\n"
    "                        rANS, at --bpp 1 unless --bpp or --error) | patch (the paper's\n"
    "                        Delta-DCT family: the options --transform .. --dwt-keep below are its)\n"
    "                        | bitdelta | svd\n"
    "  --transform T         dct (default) | dwt | none\n"
    "  --patch P             patch size p, 2..128 (default 16)\n"
    "  --bits SPEC           bit-widths by importance rank, e.g. 2:0.5,0:0.5 (default),\n"
    "                        4:0.34,2:0.33,0:0.33; widths 0..8, fractions sum to 1\n"
    "  --importance I        l2 (default: patch L2 norm) | lowfreq (energy of the k x k lowest\n"
    "                        frequencies after the transform)\n"
    "  --lowfreq-k K         k for --importance lowfreq, 1..128 (default 4)\n"
    "  --qtable Q            flat (default) | jpeg (JPEG luminance table as per-frequency steps)\n"
    "  --wavelet W           haar (default) | cdf97, for --transform dwt\n"
    "  --dwt-levels N        wavelet levels, 1..6 (default 1)\n"
    "  --dwt-keep K          all (default) | ll_lh_hl | ll_only: bands kept by --transform dwt\n"
    "  --bpp X               target bits per lossy parameter, in (0, 32] (svd: sets the rank; rd:\n"
    "                        the lossy records total <= X bits per lossy parameter, default 1)\n"
    "  --error E             rd: the smallest file with relative error <= E, in (0, 1), for every\n"
    "                        lossy tensor (instead of --bpp)\n"
    "  --rd-measure M        rd with --bpp: the distortion the allocation across tensors minimises:\n"
    "                        mse (default: squared error summed over the tensors) | rel (each\n"
    "                        tensor's squared error / its ||delta||^2, i.e. per-tensor relative\n"
    "                        error); --rescale adds the energy-preserving rebuild to either\n"
    "  --no-rescale          store without the per-layer mean |delta| rescale (for rd: the\n"
    "                        rebuild closest to the fine-tune, by squared error and by KL)\n"
    "  --rescale             store with the rescale (the default for the other methods; for\n"
    "                        rd on every tensor). rd's default: per tensor, the rescale where the\n"
    "                        plain rebuild's mean |delta| is within 10 % of the original's\n"
    "  --include REGEX       tensors matching REGEX are lossy even if excluded by default\n"
    "  --exclude REGEX       replace the default exclusions (POSIX extended, case-insensitive)\n"
    "  --zstd-level N        zstd level for lossless tensors, 1..22 (default 1); 0: zstd's fastest\n"
    "                        search with Huffman-coded literals (about 25 % faster; within a few\n"
    "                        % of level 1 in size: smaller on some models, larger on others)\n"
    "  -T, --threads N       threads, 0..1024 (default 0: all cores; output is identical for any N)\n"
    "  -q, --quiet           no progress or summary\n"
    "  --json                print the summary as JSON\n"
    "\n"
    "An option the method does not read is a usage error (exit 2), not ignored: --transform, --patch,\n"
    "--bits, --importance, --qtable (and --wavelet, --dwt-levels, --dwt-keep with --transform dwt;\n"
    "--lowfreq-k with --importance lowfreq) are read by patch only; --bpp by svd and rd; --error and\n"
    "--rd-measure by rd only; --error excludes --bpp and --rd-measure. The method is the one in\n"
    "effect: without --method, the default's. Numbers are plain decimals within the ranges above.\n";

static const char *DECOMPRESS_HELP =
    "usage: deltadct decompress BASE IN.ddct -o REBUILT [options]\n"
    "\n"
    "Rebuilds the fine-tune: same tensor names, order, shapes, dtypes and __metadata__. BASE is a\n"
    "file, a sharded checkpoint or a model directory. REBUILT is a directory (the shards, index and\n"
    "other files as they came) when it ends with '/', is an existing directory, or the fine-tune\n"
    "was a directory and REBUILT does not end in .safetensors, .bin, .pt or .pth; else one file.\n"
    "A single file is written in the format --format names, else the one REBUILT's extension\n"
    "names (.safetensors; .bin, .pt, .pth; .gguf), else the one it came in; a directory's shards in the\n"
    "formats they came in. PyTorch files are read by torch.load(weights_only=True), tied weights\n"
    "still sharing their storage.\n"
    "\n"
    "  -o, --output PATH     output (default: IN without .ddct, plus the format's extension or '/')\n"
    "  -f, --force           overwrite an existing output\n"
    "  --format F            safetensors | pytorch | gguf: write a single-file fine-tune in that\n"
    "                        format instead (tied weights written to safetensors are copies; GGUF\n"
    "                        is rebuilt only from GGUF, and only as GGUF)\n"
    "  --no-rescale          rebuild without the rescale step (ablation)\n"
    "  --rescale             force the rescale step on\n"
    "  --direct-io MODE      auto (default: files of >= 64 MiB are written with O_DIRECT, from\n"
    "                        the program's buffer to the disk, without a copy into the page\n"
    "                        cache) | on (every file) | off (all through the page cache)\n"
    "  -T, --threads N       threads, 0..1024 (default 0: all cores)\n"
    "  -q, --quiet           no progress\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    /* A file-size limit (ulimit -f) must give a clean "File too large" error, not a kill. */
    signal(SIGXFSZ, SIG_IGN);
    /* Buffers of 1 MiB and more (per-tensor tables, coded records, strips, slices) come from mmap
     * and go back to the system when freed. glibc's default threshold adapts upward and then
     * keeps freed big buffers in its heaps, so the peak resident set followed the largest tensor
     * seen (bench/scale_bench.sh: compress 0.5 B 40 MiB, 3.6 B 47 MiB; with this 38 / 41 MiB). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    /* Below that, the heaps keep up to 128 MiB free (and grow 16 MiB at a time) rather than give
     * memory back at every free: the per-unit buffers that come and go otherwise cost a fresh page
     * fault each time (0.5 B compress: 2.3 -> 1.4 s of system time, 5.1 -> 4.3 s wall), for a
     * constant ~12 MiB more at every model size. */
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    cli_passive_omp_wait(argv);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("deltadct %s (format %d)\n", ddct_versionString(), 1);
        return 0;
    }
    if (!strcmp(cmd, "compress")) return cmd_compress(argc - 1, argv + 1);
    if (!strcmp(cmd, "decompress")) return cmd_decompress(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify")) return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) return cmd_sweep(argc - 1, argv + 1);
    if (!strcmp(cmd, "export-lora")) return cmd_export_lora(argc - 1, argv + 1);
    if (!strcmp(cmd, "batch")) return cmd_batch(argc - 1, argv + 1);
    cli_error("unknown command '%s' (try 'deltadct --help')", cmd);
    return EXIT_USAGE;
}

static int wants_help(int argc, char **argv, const char *help)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(help, stdout);
            return 1;
        }
    return 0;
}

/* Options common to several commands. Returns 1 if argv[*i] was consumed, -1 on error. */
static int common_opt(int argc, char **argv, int *i, cli_common *c)
{
    const char *a = argv[*i], *v;
    int m, r;
    if (!strcmp(a, "-f") || !strcmp(a, "--force")) return c->force = 1;
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) return c->quiet = 1;
    if (!strcmp(a, "--json")) return c->json = 1;
    if (!strcmp(a, "--no-rescale")) return (c->rescale = 0), 1;
    if (!strcmp(a, "--rescale")) return c->rescale = 1;
    v = cli_optval(argc, argv, i, !strcmp(a, "-o") ? "-o" : "--output", &m);
    if (m) {
        if (!v) return cli_error("--output needs a file name"), -1;
        c->output = v;
        return 1;
    }
    r = cli_threads_opt(argc, argv, i, &c->threads);
    if (r) return r;
    return 0;
}

static char *default_name(const char *in, const char *strip, const char *add)
{
    size_t n = strlen(in), s = strlen(strip);
    if (n > s && !strcmp(in + n - s, strip)) n -= s;
    char *o = malloc(n + strlen(add) + 1);
    if (!o) return NULL;
    memcpy(o, in, n);
    strcpy(o + n, add);
    return o;
}

static void print_notes(const ddct_CCtx *c, int quiet)
{
    if (quiet) return;
    for (size_t i = 0; i < ddct_CCtx_noteCount(c); i++) cli_error("note: %s", ddct_CCtx_note(c, i));
}

/* Summary of a freshly written file (shared with info's totals). */
void cli_info_summary(const char *path, int json);

int cmd_compress(int argc, char **argv)
{
    if (wants_help(argc, argv, COMPRESS_HELP)) return 0;
    cli_common c = {.rescale = -1};
    cli_copts o;
    cli_copts_init(&o);
    const char *pos[2];
    int npos = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        int r = common_opt(argc, argv, &i, &c);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            int done = 0;
            for (int k = 0; CLI_COPT_NAMES[k] && !done; k++) {
                char opt[32];
                snprintf(opt, sizeof opt, "--%s", CLI_COPT_NAMES[k]);
                int m;
                const char *v = cli_optval(argc, argv, &i, opt, &m);
                if (!m) continue;
                done = 1;
                if (!v) return cli_error("%s needs a value", opt), EXIT_USAGE;
                if (cli_copts_set(&o, CLI_COPT_NAMES[k], v, err, sizeof err)) return cli_error("%s", err), EXIT_USAGE;
            }
            if (!done) return cli_error("unknown option '%s' (see 'deltadct compress --help')", a), EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("unknown option '%s' (see 'deltadct compress --help')", a), EXIT_USAGE;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return cli_error("too many arguments (see 'deltadct compress --help')"), EXIT_USAGE;
        }
    }
    if (npos != 2) return cli_error("compress needs BASE and FINETUNED (see 'deltadct compress --help')"), EXIT_USAGE;
    if (cli_copts_check(&o, err, sizeof err)) return cli_error("%s", err), EXIT_USAGE;
    ddct_params p = o.p;
    if (c.rescale >= 0) p.rescale = c.rescale;
    p.threads = c.threads;
    char *trimmed = strdup(pos[1]);
    for (size_t k = trimmed ? strlen(trimmed) : 0; k > 1 && trimmed[k - 1] == '/'; k--) trimmed[k - 1] = 0;
    const char *ext = ".safetensors";
    static const char *const exts[] = {".safetensors", ".bin", ".pt", ".pth"};
    for (size_t k = 0; trimmed && k < sizeof exts / sizeof *exts; k++) {
        size_t n = strlen(trimmed), l = strlen(exts[k]);
        if (n > l && !strcmp(trimmed + n - l, exts[k])) ext = exts[k];
    }
    char *dflt = c.output || !trimmed ? NULL : default_name(trimmed, ext, ".ddct");
    free(trimmed);
    const char *out = c.output ? c.output : dflt;
    ddct_CCtx *cc = ddct_createCCtx();
    if (!cc || !out) return cli_error("out of memory"), 1;
    cli_progress pr;
    cli_progress_init(&pr, c.quiet, "compress");
    ddct_CCtx_setProgress(cc, cli_progress_cb, &pr);
    double t0 = cli_now();
    ddct_ErrorCode rc = ddct_compressFiles(cc, pos[0], pos[1], out, &p, c.force);
    cli_progress_end(&pr);
    if (rc) cli_error("%s", ddct_CCtx_getErrorMessage(cc));
    else {
        print_notes(cc, c.quiet);
        if (!c.quiet || c.json) {
            if (!c.json) {
                cli_fputs_esc(stderr, out);
                fprintf(stderr, ": written in %.2f s\n", cli_now() - t0);
            }
            cli_info_summary(out, c.json);
        }
    }
    ddct_freeCCtx(cc);
    free(dflt);
    return rc ? 1 : 0;
}

/* The default output's ending for the .ddct at path: "/" for a directory layout, else the
 * extension of the format written (format: --format, or -1). */
static const char *default_ending(const char *path, int format)
{
    static char ext[16];
    ddct_Info *info;
    char err[256];
    if (ddct_openInfo(&info, path, err, sizeof err)) return ".safetensors"; /* decompress reports the error */
    const ddct_layout_info *li = ddct_Info_layout(info);
    const char *end = ".safetensors";
    if (li->directory) end = "/";
    else if (format == DDCT_FORMAT_GGUF || (format < 0 && !strcmp(li->shard_formats[0], "gguf"))) end = ".gguf";
    else if (format == DDCT_FORMAT_PYTORCH || (format < 0 && !strcmp(li->shard_formats[0], "pytorch"))) {
        const char *dot = strrchr(li->shard_names[0], '.');
        end = dot && (!strcmp(dot, ".bin") || !strcmp(dot, ".pt") || !strcmp(dot, ".pth")) ? dot : ".bin";
    }
    snprintf(ext, sizeof ext, "%s", end);
    ddct_freeInfo(info);
    return ext;
}

int cmd_decompress(int argc, char **argv)
{
    if (wants_help(argc, argv, DECOMPRESS_HELP)) return 0;
    cli_common c = {.rescale = -1};
    const char *pos[2];
    int npos = 0, direct = -1, format = DDCT_FORMAT_AS_INPUT;
    for (int i = 1; i < argc; i++) {
        int r = common_opt(argc, argv, &i, &c), m;
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        const char *v = cli_optval(argc, argv, &i, "--format", &m);
        if (m) {
            if (v && !strcmp(v, "safetensors")) format = DDCT_FORMAT_SAFETENSORS;
            else if (v && !strcmp(v, "pytorch")) format = DDCT_FORMAT_PYTORCH;
            else if (v && !strcmp(v, "gguf")) format = DDCT_FORMAT_GGUF;
            else return cli_error("--format needs safetensors, pytorch or gguf"), EXIT_USAGE;
            continue;
        }
        v = cli_optval(argc, argv, &i, "--direct-io", &m);
        if (m) {
            if (v && !strcmp(v, "auto")) direct = -1;
            else if (v && !strcmp(v, "on")) direct = 1;
            else if (v && !strcmp(v, "off")) direct = 0;
            else return cli_error("--direct-io needs auto, on or off"), EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return cli_error("unknown option '%s' (see 'deltadct decompress --help')", argv[i]), EXIT_USAGE;
        if (npos == 2) return cli_error("too many arguments"), EXIT_USAGE;
        pos[npos++] = argv[i];
    }
    if (npos != 2) return cli_error("decompress needs BASE and IN.ddct (see 'deltadct decompress --help')"), EXIT_USAGE;
    char *dflt = c.output ? NULL : default_name(pos[1], ".ddct", default_ending(pos[1], format));
    const char *out = c.output ? c.output : dflt;
    ddct_DCtx *d = ddct_createDCtx();
    if (!d || !out) return cli_error("out of memory"), 1;
    ddct_DCtx_setThreads(d, c.threads);
    ddct_DCtx_setRescale(d, c.rescale);
    ddct_DCtx_setDirectIO(d, direct);
    ddct_DCtx_setFormat(d, format);
    cli_progress pr;
    cli_progress_init(&pr, c.quiet, "decompress");
    ddct_DCtx_setProgress(d, cli_progress_cb, &pr);
    double t0 = cli_now();
    ddct_ErrorCode rc = ddct_decompressFile(d, pos[0], pos[1], out, c.force);
    cli_progress_end(&pr);
    if (rc) cli_error("%s", ddct_DCtx_getErrorMessage(d));
    else cli_print_dnotes(d, c.quiet);
    if (!rc && !c.quiet) {
        cli_fputs_esc(stderr, out);
        fprintf(stderr, ": rebuilt in %.2f s\n", cli_now() - t0);
    }
    ddct_freeDCtx(d);
    free(dflt);
    return rc ? 1 : 0;
}

int cmd_verify(int argc, char **argv)
{
    if (wants_help(argc, argv,
                   "usage: deltadct verify IN.ddct [--base BASE] [--quick] [options]\n\n"
                   "Tests IN.ddct as zstd -t does, writing nothing: its structure, every checksum, and every\n"
                   "record decoded. With --base, the base is checked to be the model the delta was made\n"
                   "against and every tensor is rebuilt against it as decompress would; without, each record\n"
                   "is decoded as far as it goes without the base. Exit 0 when everything checks.\n\n"
                   "  --base BASE           the base model (file, sharded checkpoint or directory)\n"
                   "  --quick               checksums only (and the base's fingerprints): no record decoded\n"
                   "  -T, --threads N       threads, 0..1024 (default 0: all cores)\n"
                   "  -q, --quiet           no output on success\n"))
        return 0;
    const char *file = NULL, *base = NULL;
    int quiet = 0, quick = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        const char *v = cli_optval(argc, argv, &i, "--base", &m);
        if (m) {
            if (!v) return cli_error("--base needs a file"), EXIT_USAGE;
            base = v;
            continue;
        }
        int r = cli_threads_opt(argc, argv, &i, &threads);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("unknown option '%s'", argv[i]), EXIT_USAGE;
        } else if (!file) {
            file = argv[i];
        } else {
            return cli_error("too many arguments"), EXIT_USAGE;
        }
    }
    if (!file) return cli_error("verify needs IN.ddct"), EXIT_USAGE;
    ddct_DCtx *d = ddct_createDCtx();
    if (!d) return cli_error("out of memory"), 1;
    ddct_DCtx_setThreads(d, threads);
    ddct_ErrorCode rc = quick ? ddct_verifyFileChecksums(d, file, base) : ddct_verifyFile(d, file, base);
    if (rc) cli_error("%s", ddct_DCtx_getErrorMessage(d));
    else cli_print_dnotes(d, quiet);
    if (!rc && !quiet) {
        cli_fputs_esc(stdout, file);
        printf(": OK%s%s\n", quick ? " (checksums)" : " (every record decoded)", base ? " (base matches)" : "");
    }
    ddct_freeDCtx(d);
    return rc ? 1 : 0;
}
