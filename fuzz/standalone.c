/*
 * standalone.c — replays inputs through a libFuzzer target without libFuzzer, so every
 * target also builds with gcc (and under plain ASan/UBSan) and ctest can replay the corpus
 * and the regression inputs.
 *
 *   <target>_replay PATH...
 *
 * Each PATH is a file or a directory (walked recursively, entries in name order). A PATH that
 * does not exist is skipped with a note. Every input is copied into a buffer of exactly its
 * size first, so an over-read by one byte is caught by ASan. Exit 0 when at least one input was
 * replayed (a crash, sanitizer report or trap in the target ends the process instead), 1 when
 * nothing was found or a file could not be read.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long g_inputs, g_errors;
static int g_verbose;

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (!buf || err) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    /* exact-size copy: the byte after the input is outside the allocation */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        fprintf(stderr, "replay: out of memory for %s\n", path);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    if (g_verbose) fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    g_inputs++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (depth == 0) fprintf(stderr, "replay: %s absent, skipped\n", path);
        else g_errors++;
        return;
    }
    if (S_ISREG(st.st_mode)) {
        if (run_file(path)) g_errors++;
        return;
    }
    if (!S_ISDIR(st.st_mode) || depth > 16) return;
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s: %s\n", path, strerror(errno));
        g_errors++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue; /* ., .., hidden files (e.g. .gitkeep) */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) break;
            names = nn;
            cap = nc;
        }
        size_t l = strlen(path) + strlen(de->d_name) + 2;
        names[n] = malloc(l);
        if (!names[n]) break;
        snprintf(names[n], l, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        walk(names[i], depth + 1);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "-v")) {
        g_verbose = 1;
        first = 2;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = first; i < argc; i++) walk(argv[i], 0);
    printf("replay: %lu inputs, %lu unreadable\n", g_inputs, g_errors);
    return g_inputs > 0 && g_errors == 0 ? 0 : 1;
}
