/*
 * fuzz_rans_w.c — the word-blob rANS decoders (entropy/rans.h: ddct_rans_dec_init_w, get_w,
 * run_w, ctx_w and their _ref twins) on arbitrary blobs, differentially, with every SIMD kernel
 * this machine runs.
 *
 * Input layout (7 header bytes, then the blob, copied into an exact-size allocation):
 *   [0]     bits 0-1: context pattern (fuzz.h fuzz_rans_ctx), bits 2-7: k - 1 (contexts used)
 *   [1..2]  n symbols to decode (u16) % 4097
 *   [3..6]  seed (u32): the contexts (patterns 2, 3) and how the decode is split into calls
 * Properties:
 *   - the one- and four-state init functions refuse a blob whose header byte's top bits are 3,
 *     and ddct_rans_dec_init_w refuses any other;
 *   - for every kernel (portable, AVX2, AVX-512 where they run) and every method (ctx_w, ctx_w_ref,
 *     run_w over runs of one context, run_w_ref, and a mixture of all with get_w in chunks of
 *     seed-chosen lengths), the decoder ends like n calls of ddct_rans_dec_get_w: the same failed
 *     flag and finish result and the same symbols (zeros from a failure on), states, lane and
 *     position, unless a context is bad (ctx_w then fails before decoding: flags only);
 *   - a blob that decodes and finishes: its symbols re-encoded with ddct_rans_encode_w (and _ref,
 *     the same bytes) decode back to them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cpu.h"
#include "entropy/rans.h"
#include "fuzz.h"

#define HDR 7
#define MAXN 4096

typedef struct {
    int failed, finish_rc, lane, ctx_ok; /* ctx_ok: every context decodable */
    uint32_t xw[DDCT_RANS_WLANES];
    size_t pos;
} w_end;

static uint32_t next(uint64_t *z)
{
    *z = *z * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*z >> 33);
}

/* symbols [a, b) with method m: 0 get_w, 1 ctx_w, 2 ctx_w_ref, 3 run_w, 4 run_w_ref */
static void chunk(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t a, size_t b, int m)
{
    if (m == 0)
        for (size_t i = a; i < b; i++) out[i] = ddct_rans_dec_get_w(d, ctx[i]);
    else if (m == 1) ddct_rans_dec_ctx_w(d, ctx + a, out + a, b - a);
    else if (m == 2) ddct_rans_dec_ctx_w_ref(d, ctx + a, out + a, b - a);
    else
        for (size_t i = a; i < b;) {
            size_t j = i + 1;
            while (j < b && ctx[j] == ctx[i]) j++;
            (m == 3 ? ddct_rans_dec_run_w : ddct_rans_dec_run_w_ref)(d, ctx[i], out + i, j - i);
            i = j;
        }
}

/* method 5: the mixture */
static w_end decode(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *out, int m, int k,
                    uint32_t seed)
{
    w_end r;
    memset(&r, 0, sizeof r);
    ddct_rans_dec d;
    ddct_err e;
    FUZZ_ASSERT(ddct_rans_dec_init_w(&d, in, len, &e) == 0, "init_w succeeded once, not now");
    d.wk = k;
    r.ctx_ok = 1;
    for (size_t i = 0; i < n; i++) r.ctx_ok &= ctx[i] < d.nwx && d.fx[ctx[i]].pb;
    memset(out, 0xAA, n * sizeof *out);
    if (m < 5) {
        chunk(&d, ctx, out, 0, n, m);
    } else {
        uint64_t z = seed ^ 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < n;) {
            const uint32_t v = next(&z);
            size_t c = v % 4 == 0 ? (v >> 2) % 300 : (v >> 2) % 40;
            if (c > n - i) c = n - i;
            chunk(&d, ctx, out, i, i + c, (int)(v >> 20) % 5);
            i += c;
        }
    }
    r.failed = d.failed;
    r.finish_rc = ddct_rans_dec_finish(&d, &e);
    r.lane = d.lane;
    memcpy(r.xw, d.xw, sizeof r.xw);
    r.pos = (size_t)(d.p - in);
    ddct_rans_dec_free(&d);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR) return 0;
    const int pattern = data[0] & 3, k = 1 + (data[0] >> 2);
    const size_t n = (size_t)fuzz_le(data + 1, 2, 2) % (MAXN + 1);
    const uint32_t seed = (uint32_t)fuzz_le(data + 3, 4, 4);
    const size_t len = size - HDR;
    uint8_t *in = malloc(len ? len : 1);
    if (!in) return 0;
    memcpy(in, data + HDR, len);
    ddct_rans_dec d;
    ddct_err e;
    const int word = len > 0 && (in[0] >> 6) == 3;
    if (word) {
        FUZZ_ASSERT(ddct_rans_dec_init(&d, in, len, &e) != 0, "one-state init took a word blob");
        FUZZ_ASSERT(ddct_rans_dec_init_x4(&d, in, len, &e) != 0, "four-state init took a word blob");
    }
    if (ddct_rans_dec_init_w(&d, in, len, &e)) {
        free(in);
        return 0;
    }
    ddct_rans_dec_free(&d);
    FUZZ_ASSERT(word, "init_w took a blob of header 0x%02x", in[0]);
    uint8_t *ctx = malloc(n ? n : 1);
    uint16_t *o0 = malloc((n ? n : 1) * sizeof *o0), *o1 = malloc((n ? n : 1) * sizeof *o1);
    if (!ctx || !o0 || !o1) abort();
    fuzz_rans_ctx(ctx, n, pattern, k, seed);
    const w_end r0 = decode(in, len, ctx, n, o0, 0, DDCT_SIMD_REF, seed);
    for (int kl = DDCT_SIMD_REF; kl < DDCT_SIMD_COUNT; kl++) {
        if (!ddct_simd_supported((ddct_simd)kl)) continue;
        for (int m = 1; m <= 5; m++) {
            const w_end r1 = decode(in, len, ctx, n, o1, m, kl, seed);
            FUZZ_ASSERT(r1.failed == r0.failed && r1.finish_rc == r0.finish_rc, "method %d kernel %s: failed %d/%d",
                        m, ddct_simd_name((ddct_simd)kl), r1.failed, r0.failed);
            if (!r0.failed || r0.ctx_ok)
                FUZZ_ASSERT(r1.lane == r0.lane && r1.pos == r0.pos && !memcmp(r1.xw, r0.xw, sizeof r0.xw) &&
                                (!n || !memcmp(o0, o1, n * sizeof *o0)),
                            "method %d kernel %s: another end than get_w", m, ddct_simd_name((ddct_simd)kl));
        }
    }
    if (!r0.failed && r0.finish_rc == 0) {
        int nctx = 1;
        for (size_t i = 0; i < n; i++) nctx = ctx[i] + 1 > nctx ? ctx[i] + 1 : nctx;
        ddct_buf b, br;
        ddct_buf_init(&b);
        ddct_buf_init(&br);
        FUZZ_ASSERT(ddct_rans_encode_w(o0, ctx, n, nctx, 0, &b, &e) == 0, "re-encode: %s", e.msg);
        FUZZ_ASSERT(ddct_rans_encode_w_ref(o0, ctx, n, nctx, 0, &br, &e) == 0, "re-encode (ref): %s", e.msg);
        FUZZ_ASSERT(b.len == br.len && !memcmp(b.p, br.p, b.len), "encode_w and encode_w_ref differ");
        const w_end r2 = decode(b.p, b.len, ctx, n, o1, 5, (int)ddct_simd_best(), seed);
        FUZZ_ASSERT(!r2.failed && r2.finish_rc == 0 && (!n || !memcmp(o0, o1, n * sizeof *o0)),
                    "re-encoded symbols do not decode back");
        ddct_buf_free(&b);
        ddct_buf_free(&br);
    }
    free(ctx);
    free(o0);
    free(o1);
    free(in);
    return 0;
}
