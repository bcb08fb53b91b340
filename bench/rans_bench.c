/*
 * rans_bench.c — speed of the rANS coder (src/entropy/rans.c) on a synthetic residual stream.
 *
 *   ddct-rans-bench [N_MI] [REPS] [DENSITY]
 *
 * N_MI Mi symbols (default 16) in 16x16 tiles, the context of a symbol its DCT band (six, from
 * u + v as the rd codec's band map), zigzag symbols mostly 0 with per-band spread: about 1 bit
 * per symbol (DENSITY, default 1, scales every band's share of non-zero symbols: 2.5 gives about
 * 2.3 bits per symbol). Prints symbols/s (best of REPS runs, default 5) for encoding (one-state and
 * four-state blobs, and the reference loop) and for decoding: ddct_rans_dec_get (one-state blob),
 * ddct_rans_dec_get_x4, ddct_rans_dec_ctx_x4 (one call per tile, the band map as contexts) and its
 * _ref; then the same decoders on units of 64 Ki symbols, a blob each, init and free included.
 * Every decode is checked against the input. Times are the thread's CPU time, so that other work
 * on a shared machine does not count (single-threaded).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
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

enum { M_GET, M_GET_X4, M_CTX_X4, M_CTX_X4_REF, M_COUNT };
static const char *mname[M_COUNT] = {"get (one state)", "get_x4", "ctx_x4", "ctx_x4_ref"};

/* Decode blob in[0..len) of n symbols (n a multiple of a tile) with method m; 0 if it ends right. */
static int decode(int m, const uint8_t *in, size_t len, const uint8_t *bandmap, size_t n, uint16_t *out)
{
    ddct_rans_dec d;
    ddct_err e;
    if ((m == M_GET ? ddct_rans_dec_init : ddct_rans_dec_init_x4)(&d, in, len, &e)) return -1;
    const size_t T = TILE * TILE;
    switch (m) {
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

int main(int argc, char **argv)
{
    size_t n = (size_t)(argc > 1 ? atof(argv[1]) : 16) * ((size_t)1 << 20);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    double dens = argc > 3 ? atof(argv[3]) : 1.0;
    n -= n % UNIT;
    if (n == 0 || reps < 1 || !(dens > 0)) {
        fprintf(stderr, "usage: ddct-rans-bench [N_MI >= 0.0625] [REPS] [DENSITY > 0]\n");
        return 2;
    }
    uint8_t bandmap[TILE * TILE];
    for (int u = 0; u < TILE; u++)
        for (int v = 0; v < TILE; v++) bandmap[u * TILE + v] = (uint8_t)band_of(u + v);
    /* per band: P(nonzero) and the geometric decay of the magnitude */
    static const double pnz[6] = {0.9, 0.65, 0.4, 0.22, 0.12, 0.065}, q[6] = {0.8, 0.6, 0.5, 0.45, 0.4, 0.35};
    uint16_t *sym = malloc(n * sizeof *sym), *out = malloc(n * sizeof *out);
    uint8_t *ctx = malloc(n);
    if (!sym || !out || !ctx) return 1;
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
    ddct_buf b1, b4;
    ddct_buf_init(&b1);
    ddct_buf_init(&b4);
    ddct_err e;
    printf("rans_bench: %zu symbols (%.1f Mi), 6 band contexts in %dx%d tiles, best of %d\n", n,
           (double)n / (1 << 20), TILE, TILE, reps);
    /* encoding */
    static const char *ename[3] = {"encode (one state)", "encode_x4", "encode_x4_ref"};
    for (int k = 0; k < 3; k++) {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            ddct_buf *b = k == 0 ? &b1 : &b4;
            b->len = 0;
            double t = now();
            int rc = k == 0   ? ddct_rans_encode(sym, ctx, n, 6, 0, b, &e)
                     : k == 1 ? ddct_rans_encode_x4(sym, ctx, n, 6, 0, b, &e)
                              : ddct_rans_encode_x4_ref(sym, ctx, n, 6, 0, b, &e);
            t = now() - t;
            if (rc) {
                fprintf(stderr, "encode: %s\n", e.msg);
                return 1;
            }
            best = t < best ? t : best;
        }
        printf("  %-22s %8.1f Msym/s  %6.2f ns/sym", ename[k], (double)n / best * 1e-6, best * 1e9 / (double)n);
        if (k < 2) printf("  (%.4f bits/sym)", 8.0 * (double)(k == 0 ? b1.len : b4.len) / (double)n);
        printf("\n");
    }
    /* decoding, one blob */
    for (int m = 0; m < M_COUNT; m++) {
        double best = 1e30;
        const ddct_buf *b = m == M_GET ? &b1 : &b4;
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
    /* decoding units of 64 Ki symbols, a blob each (init + free included) */
    size_t nu = n / UNIT;
    ddct_buf *ub = malloc(2 * nu * sizeof *ub);
    if (!ub) return 1;
    for (size_t u = 0; u < 2 * nu; u++) {
        ddct_buf_init(&ub[u]);
        size_t off = (u % nu) * UNIT;
        if ((u < nu ? ddct_rans_encode : ddct_rans_encode_x4)(sym + off, ctx + off, UNIT, 6, 0, &ub[u], &e)) {
            fprintf(stderr, "encode unit: %s\n", e.msg);
            return 1;
        }
    }
    printf("  units of %zu symbols:\n", UNIT);
    for (int m = 0; m < M_COUNT; m++) {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            memset(out, 0xff, n * sizeof *out);
            int bad = 0;
            double t = now();
            for (size_t u = 0; u < nu; u++) {
                const ddct_buf *b = &ub[(m == M_GET ? 0 : nu) + u];
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
    for (size_t u = 0; u < 2 * nu; u++) ddct_buf_free(&ub[u]);
    free(ub);
    ddct_buf_free(&b1);
    ddct_buf_free(&b4);
    free(sym);
    free(out);
    free(ctx);
    return 0;
}
