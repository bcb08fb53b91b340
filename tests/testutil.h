/* testutil.h — minimal test harness: CHECK() counts, TEST_MAIN prints "N passed, N failed". */
#ifndef DDCT_TESTUTIL_H
#define DDCT_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>

static int tu_pass, tu_fail;
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (cond) tu_pass++;                                                                 \
        else {                                                                               \
            tu_fail++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)
#define TEST_SUMMARY()                                                                       \
    (printf("%d passed, %d failed\n", tu_pass, tu_fail), tu_fail ? 1 : 0)

/* A new directory "$TMPDIR/ddct_<tag>.XXXXXX" (TMPDIR unset: /tmp) in dir[n]: 0, or -1 with
 * the reason on stderr (mkdtemp: the build defines _GNU_SOURCE). */
static inline int tu_tmpdir(char *dir, size_t n, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, n, "%s/ddct_%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (mkdtemp(dir)) return 0;
    perror(dir);
    return -1;
}

/* dir/name, in one of 8 buffers used in turn (so a few such paths can be live at once). */
static inline const char *tu_path(const char *dir, const char *name)
{
    static char bufs[8][1024];
    static int k;
    char *p = bufs[k++ & 7];
    snprintf(p, sizeof bufs[0], "%s/%s", dir, name);
    return p;
}

/* n bytes into a new file at path: 0, or -1 when it cannot be written. */
static inline int tu_write(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    int ok = fp && fwrite(p, 1, n, fp) == n;
    if (fp && fclose(fp) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* A file's bytes in a new buffer (*n of them; one spare byte after), or NULL when unreadable. */
static inline unsigned char *tu_slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    *n = 0;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)*n + 1)) && fread(p, 1, (size_t)*n, f) != (size_t)*n) {
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    return p;
}

/* 1 when both files can be read and hold the same bytes. */
static inline int tu_same_file(const char *a, const char *b)
{
    long na, nb;
    unsigned char *pa = tu_slurp(a, &na), *pb = tu_slurp(b, &nb);
    int same = pa && pb && na == nb && __builtin_memcmp(pa, pb, (size_t)na) == 0;
    free(pa);
    free(pb);
    return same;
}

/* Deterministic generator (splitmix64) and standard normal via Box-Muller. */
static unsigned long long tu_rng = 0x9E3779B97F4A7C15ull;
static inline unsigned long long tu_next(void)
{
    unsigned long long z = (tu_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double tu_unif(void) { return (tu_next() >> 11) * (1.0 / 9007199254740992.0); }
static inline double tu_normal(void)
{
    double u = tu_unif(), v = tu_unif();
    if (u < 1e-300) u = 1e-300;
    return __builtin_sqrt(-2.0 * __builtin_log(u)) * __builtin_cos(6.283185307179586 * v);
}
/* ||a - b|| / ||b|| (||a - b|| when b is zero). */
static inline double tu_relerr(const float *a, const float *b, unsigned long long n)
{
    double e = 0, r = 0;
    for (unsigned long long i = 0; i < n; i++) {
        e += (double)(a[i] - b[i]) * (a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? __builtin_sqrt(e / r) : __builtin_sqrt(e);
}
#endif
