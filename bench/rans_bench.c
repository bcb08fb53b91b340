/*
 * rans_bench.c — speed of the rANS coder (src/entropy/rans.c) on a synthetic residual stream.
 *
 *   ddct-rans-bench [N_MI] [REPS] [DENSITY] [PROB_BITS]
 *
 * N_MI Mi symbols (default 16) in 16x16 tiles, the context of a symbol its DCT band (six, from
 * u + v as the rd codec's band map), zigzag symbols mostly 0 with per-band spread: about 1 bit
 * per symbol (DENSITY, default 1, scales every band's share of non-zero symbols: 2.5 gives about
 * 2.3 bits per symbol). PROB_BITS (default 0: each encoder's default) for every blob. Prints
 * symbols/s (best of REPS runs, default 5) for encoding (one-state, four-state and word blobs, and
 * the reference loops) and for decoding: ddct_rans_dec_get (one-state blob), ddct_rans_dec_get_x4,
 * ddct_rans_dec_ctx_x4 (one call per tile, the band map as contexts) and its _ref, and the same for
 * word blobs: ddct_rans_dec_get_w, ddct_rans_dec_ctx_w_ref, ddct_rans_dec_ctx_w with each kernel
 * this machine runs (portable, AVX2, AVX-512); then the same decoders on units of 64 Ki symbols, a
 * blob each, init and free included; then units whose symbols are all in one context, one run
 * each (ddct_rans_dec_run_x4 and _ref, ddct_rans_dec_run_w with each kernel). Last, the bytes of
 * four-state and word blobs of 64 Ki-symbol units at about 0.2, 0.5, 1 and 2 bits per symbol.
 * Every decode is checked against the input. Times are the thread's CPU time, so that other work
 * on a shared machine does not count (single-threaded).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/cpu.h"
#include "entropy/rans.h"

#define TILE 16
#define UNIT ((size_t)1 << 16)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static double unif(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int band_of(int s) { return s == 0 ? 0 : s <= 2 ? 1 : s <= 5 ? 2 : s <= 10 ? 3 : s <= 18 ? 4 : 5; }

enum { M_GET, M_GET_X4, M_CTX_X4, M_CTX_X4_REF, M_GET_W, M_CTX_W_REF, M_CTX_W, M_CTX_W_AVX2, M_CTX_W_AVX512, M_COUNT };
static const char *mname[M_COUNT] = {"get (one state)", "get_x4",        "ctx_x4",   "ctx_x4_ref",  "get_w",
                                     "ctx_w_ref",       "ctx_w portable", "ctx_w avx2", "ctx_w avx512"};
/* the kernel level a word method runs (-1: not a word method) */
static int wkern(int m)
{
    return m == M_CTX_W || m == M_GET_W || m == M_CTX_W_REF ? DDCT_SIMD_REF
           : m == M_CTX_W_AVX2                            ? DDCT_SIMD_AVX2
           : m == M_CTX_W_AVX512                          ? DDCT_SIMD_AVX512
                                                          : -1;
}
static int runnable(int m) { return wkern(m) < 0 || ddct_simd_supported((ddct_simd)wkern(m)); }

/* Decode blob in[0..len) of n symbols (n a multiple of a tile) with method m; 0 if it ends right. */
static int decode(int m, const uint8_t *in, size_t len, const uint8_t *bandmap, size_t n, uint16_t *out)
{
    ddct_rans_dec d;
    ddct_err e;
    const int wk = wkern(m);
    if ((m == M_GET ? ddct_rans_dec_init : wk >= 0 ? ddct_rans_dec_init_w : ddct_rans_dec_init_x4)(&d, in, len, &e))
        return -1;
    if (wk >= 0) d.wk = wk;
    const size_t T = TILE * TILE;
    switch (m) {
    case M_GET_W:
        for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_w(&d, bandmap[i % T]);
        break;
    case M_CTX_W_REF:
        for (size_t i = 0; i < n; i += T) ddct_rans_dec_ctx_w_ref(&d, bandmap, out + i, T);
        break;
    case M_CTX_W:
    case M_CTX_W_AVX2:
    case M_CTX_W_AVX512:
        for (size_t i = 0; i < n; i += T) ddct_rans_dec_ctx_w(&d, bandmap, out + i, T);
        break;
    case M_GET:
        for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get(&d, bandmap[i % T]);
        break;
    case M_GET_X4:
        for (size_t i = 0; i < n; i++) out[i] = ddct_rans_dec_get_x4(&d, bandmap[i % T]);
        break;
    case M_CTX_X4:
        for (size_t i = 0; i < n; i += T) ddct_rans_dec_ctx_x4(&d, bandmap, out + i, T);
        break;
    default:
        for (size_t i = 0; i < n; i += T) ddct_rans_dec_ctx_x4_ref(&d, bandmap, out + i, T);
        break;
    }
    int rc = ddct_rans_dec_finish(&d, &e);
    ddct_rans_dec_free(&d);
    return rc;
}

/* The residual-like stream: per band P(nonzero) (times dens, at most 0.95) and the geometric decay
 * of the magnitude, zigzag symbols; the same stream for the same arguments. */
static void gen(uint16_t *sym, uint8_t *ctx, size_t n, const uint8_t *bandmap, double dens)
{
    static const double pnz[6] = {0.9, 0.65, 0.4, 0.22, 0.12, 0.065}, q[6] = {0.8, 0.6, 0.5, 0.45, 0.4, 0.35};
    rng = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < n; i++) {
        int b = bandmap[i % (TILE * TILE)];
        ctx[i] = (uint8_t)b;
        if (unif() >= (pnz[b] * dens < 0.95 ? pnz[b] * dens : 0.95)) {
            sym[i] = 0;
            continue;
        }
        int a = 1 + (int)(log(1.0 - unif()) / log(q[b]));
        if (a > 2000) a = 2000;
        sym[i] = (uint16_t)(unif() < 0.5 ? 2 * a - 1 : 2 * a); /* zigzag of -a / +a */
    }
}

typedef int (*enc_fn)(const uint16_t *, const uint8_t *, size_t, int, int, ddct_buf *, ddct_err *);

/* Bytes of the blobs of units of UNIT symbols of sym[0..n), coded by f at prob_bits pb. */
static size_t unit_bytes(enc_fn f, const uint16_t *sym, const uint8_t *ctx, size_t n, int pb)
{
    ddct_buf b;
    ddct_buf_init(&b);
    ddct_err e;
    size_t tot = 0;
    for (size_t off = 0; off < n; off += UNIT) {
        b.len = 0;
        if (f(sym + off, ctx + off, UNIT, 6, pb, &b, &e)) {
            fprintf(stderr, "encode: %s\n", e.msg);
            exit(1);
        }
        tot += b.len;
    }
    ddct_buf_free(&b);
    return tot;
}

/* Blob sizes of units of 64 Ki symbols at about 0.2, 0.5, 1 and 2 bits per symbol (the density
 * found by bisection on the four-state blobs at 15 bits): four-state blobs at prob_bits 15 (what
 * the rd codec mostly takes) and 12, word blobs (coded at 12 bits), and the word blobs relative
 * to each. */
static void sizes(const uint8_t *bandmap)
{
    const size_t n = 16 * UNIT;
    uint16_t *sym = malloc(n * sizeof *sym);
    uint8_t *ctx = malloc(n);
    if (!sym || !ctx) exit(1);
    static const double target[4] = {0.2, 0.5, 1.0, 2.0};
    printf("  blob bytes, units of %zu symbols, 6 band contexts (%zu units):\n", UNIT, n / UNIT);
    printf("    %-6s %10s %10s %10s %12s %12s\n", "bits", "x4 pb15", "x4 pb12", "word", "word/x4 pb15", "word/x4 pb12");
    for (int t = 0; t < 4; t++) {
        double lo = 0.001, hi = 10;
        for (int it = 0; it < 24; it++) {
            double mid = sqrt(lo * hi);
            gen(sym, ctx, n, bandmap, mid);
            double bits = 8.0 * (double)unit_bytes(ddct_rans_encode_x4, sym, ctx, n, 15) / (double)n;
            if (bits < target[t]) lo = mid;
            else hi = mid;
        }
        gen(sym, ctx, n, bandmap, sqrt(lo * hi));
        size_t x15 = unit_bytes(ddct_rans_encode_x4, sym, ctx, n, 15), x12 = unit_bytes(ddct_rans_encode_x4, sym, ctx, n, 12);
        size_t w = unit_bytes(ddct_rans_encode_w, sym, ctx, n, 0);
        printf("    %-6.3f %10zu %10zu %10zu %+11.3f%% %+11.3f%%\n", 8.0 * (double)x15 / (double)n, x15, x12, w,
               100.0 * ((double)w - (double)x15) / (double)x15, 100.0 * ((double)w - (double)x12) / (double)x12);
    }
    free(sym);
    free(ctx);
}

int main(int argc, char **argv)
{
    size_t n = (size_t)(argc > 1 ? atof(argv[1]) : 16) * ((size_t)1 << 20);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    double dens = argc > 3 ? atof(argv[3]) : 1.0;
    const int pb = argc > 4 ? atoi(argv[4]) : 0;
    n -= n % UNIT;
    if (n == 0 || reps < 1 || !(dens > 0)) {
        fprintf(stderr, "usage: ddct-rans-bench [N_MI >= 0.0625] [REPS] [DENSITY > 0] [PROB_BITS]\n");
        return 2;
    }
    uint8_t bandmap[TILE * TILE];
    for (int u = 0; u < TILE; u++)
        for (int v = 0; v < TILE; v++) bandmap[u * TILE + v] = (uint8_t)band_of(u + v);
    uint16_t *sym = malloc(n * sizeof *sym), *out = malloc(n * sizeof *out);
    uint8_t *ctx = malloc(n);
    if (!sym || !out || !ctx) return 1;
    gen(sym, ctx, n, bandmap, dens);
    ddct_buf b1, b4, bw;
    ddct_buf_init(&b1);
    ddct_buf_init(&b4);
    ddct_buf_init(&bw);
    ddct_err e;
    printf("rans_bench: %zu symbols (%.1f Mi), 6 band contexts in %dx%d tiles, best of %d; word blobs: %d states\n",
           n, (double)n / (1 << 20), TILE, TILE, reps, DDCT_RANS_WLANES);
    /* encoding */
    static const char *ename[5] = {"encode (one state)", "encode_x4", "encode_x4_ref", "encode_w", "encode_w_ref"};
    static const enc_fn efn[5] = {ddct_rans_encode, ddct_rans_encode_x4, ddct_rans_encode_x4_ref, ddct_rans_encode_w,
                                  ddct_rans_encode_w_ref};
    for (int k = 0; k < 5; k++) {
        double best = 1e30;
        ddct_buf *b = k == 0 ? &b1 : k < 3 ? &b4 : &bw;
        for (int r = 0; r < reps; r++) {
            b->len = 0;
            double t = now();
            int rc = efn[k](sym, ctx, n, 6, pb, b, &e);
            t = now() - t;
            if (rc) {
                fprintf(stderr, "encode: %s\n", e.msg);
                return 1;
            }
            best = t < best ? t : best;
        }
        printf("  %-22s %8.1f Msym/s  %6.2f ns/sym  (%.4f bits/sym)\n", ename[k], (double)n / best * 1e-6,
               best * 1e9 / (double)n, 8.0 * (double)b->len / (double)n);
    }
    /* decoding, one blob */
    for (int m = 0; m < M_COUNT; m++) {
        if (!runnable(m)) continue;
        double best = 1e30;
        const ddct_buf *b = m == M_GET ? &b1 : wkern(m) >= 0 ? &bw : &b4;
        for (int r = 0; r < reps; r++) {
            memset(out, 0xff, n * sizeof *out);
            double t = now();
            int rc = decode(m, b->p, b->len, bandmap, n, out);
            t = now() - t;
            if (rc || memcmp(out, sym, n * sizeof *out)) {
                fprintf(stderr, "decode %s: mismatch\n", mname[m]);
                return 1;
            }
            best = t < best ? t : best;
        }
        printf("  decode %-15s %8.1f Msym/s  %6.2f ns/sym\n", mname[m], (double)n / best * 1e-6,
               best * 1e9 / (double)n);
    }
    /* decoding units of 64 Ki symbols, a blob each (init + free included): band contexts tile by
     * tile, then one context (the same symbols) in one run per unit */
    size_t nu = n / UNIT;
    ddct_buf *ub = malloc(5 * nu * sizeof *ub);
    if (!ub) return 1;
    for (size_t u = 0; u < 5 * nu; u++) {
        ddct_buf_init(&ub[u]);
        size_t off = (u % nu) * UNIT;
        int k = (int)(u / nu);
        static const enc_fn uf[5] = {ddct_rans_encode, ddct_rans_encode_x4, ddct_rans_encode_w, ddct_rans_encode_x4,
                                     ddct_rans_encode_w};
        if (uf[k](sym + off, k < 3 ? ctx + off : NULL, UNIT, k < 3 ? 6 : 1, pb, &ub[u], &e)) {
            fprintf(stderr, "encode unit: %s\n", e.msg);
            return 1;
        }
    }
    printf("  units of %zu symbols, band contexts:\n", UNIT);
    for (int m = 0; m < M_COUNT; m++) {
        if (!runnable(m)) continue;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            memset(out, 0xff, n * sizeof *out);
            int bad = 0;
            double t = now();
            for (size_t u = 0; u < nu; u++) {
                const ddct_buf *b = &ub[(m == M_GET ? 0 : wkern(m) >= 0 ? 2 * nu : nu) + u];
                bad |= decode(m, b->p, b->len, bandmap, UNIT, out + u * UNIT);
            }
            t = now() - t;
            if (bad || memcmp(out, sym, n * sizeof *out)) {
                fprintf(stderr, "decode unit %s: mismatch\n", mname[m]);
                return 1;
            }
            best = t < best ? t : best;
        }
        printf("  decode %-15s %8.1f Msym/s  %6.2f ns/sym\n", mname[m], (double)n / best * 1e-6,
               best * 1e9 / (double)n);
    }
    printf("  units of %zu symbols, one context, one run per unit:\n", UNIT);
    static const char *rname[5] = {"run_x4", "run_x4_ref", "run_w portable", "run_w avx2", "run_w avx512"};
    for (int m = 0; m < 5; m++) {
        if (m >= 2 && !ddct_simd_supported((ddct_simd)(m - 2))) continue;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            memset(out, 0xff, n * sizeof *out);
            int bad = 0;
            double t = now();
            for (size_t u = 0; u < nu; u++) {
                const ddct_buf *b = &ub[(m < 2 ? 3 : 4) * nu + u];
                ddct_rans_dec d;
                if ((m < 2 ? ddct_rans_dec_init_x4 : ddct_rans_dec_init_w)(&d, b->p, b->len, &e)) return 1;
                if (m >= 2) d.wk = m - 2;
                (m == 0 ? ddct_rans_dec_run_x4 : m == 1 ? ddct_rans_dec_run_x4_ref : ddct_rans_dec_run_w)(
                    &d, 0, out + u * UNIT, UNIT);
                bad |= ddct_rans_dec_finish(&d, &e);
                ddct_rans_dec_free(&d);
            }
            t = now() - t;
            if (bad || memcmp(out, sym, n * sizeof *out)) {
                fprintf(stderr, "decode unit %s: mismatch\n", rname[m]);
                return 1;
            }
            best = t < best ? t : best;
        }
        printf("  decode %-15s %8.1f Msym/s  %6.2f ns/sym\n", rname[m], (double)n / best * 1e-6,
               best * 1e9 / (double)n);
    }
    for (size_t u = 0; u < 5 * nu; u++) ddct_buf_free(&ub[u]);
    free(ub);
    ddct_buf_free(&b1);
    ddct_buf_free(&b4);
    ddct_buf_free(&bw);
    free(sym);
    free(out);
    free(ctx);
    sizes(bandmap);
    return 0;
}
