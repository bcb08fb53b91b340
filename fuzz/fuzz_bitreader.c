/*
 * fuzz_bitreader.c — the bit reader (ddct_bitr_get / ddct_bitr_unpack and its _ref and _nosimd
 * twins) on arbitrary streams, differentially, plus the writer on what was read.
 *
 * Input layout (8 header bytes, then the stream, copied into an exact-size allocation):
 *   [0]     unpack width: value % 20 (17..19 are out of range: unpack must do nothing)
 *   [1]     width of one get before the unpack: value % 26 (25 is out of range: returns 0)
 *   [2..3]  n values to unpack (u16) % 4097
 *   [4..7]  widths of four gets after the unpack (each % 26)
 * Properties:
 *   - the three unpack kernels give the same values, bit position and failed flag;
 *   - all of them agree with an independent model of the documented semantics (LSB-first;
 *     a value not wholly inside the stream reads 0 and latches failed; once failed every value
 *     is 0; the position advances by the width either way; widths out of range change nothing);
 *   - re-packing the values (pack, pack_ref, pack_nosimd, after a put of the first get's
 *     value so the start is unaligned) gives identical bytes that never go past
 *     ddct_bitpack_bytes(total bits) (exact-size buffers), and unpack back to the values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "quant/quant.h"

#define HDR 8
#define MAXN 4096

typedef struct {
    const uint8_t *in;
    size_t len;
    uint64_t pos;
    int failed;
} model;

static uint32_t model_get(model *m, int bits)
{
    if (bits <= 0 || bits > 24) return 0;
    uint64_t end = m->pos + (uint64_t)bits;
    if (m->failed || end > (uint64_t)m->len * 8) {
        m->failed = 1;
        m->pos = end;
        return 0;
    }
    uint32_t v = 0;
    for (int k = 0; k < bits; k++) {
        uint64_t b = m->pos + (uint64_t)k;
        v |= (uint32_t)((m->in[b >> 3] >> (b & 7)) & 1u) << k;
    }
    m->pos = end;
    return v;
}

typedef void (*unpack_fn)(ddct_bitr *, uint16_t *, size_t, int);
typedef void (*pack_fn)(ddct_bitw *, const uint16_t *, size_t, int);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR) return 0;
    int bits = data[0] % 20, skip = data[1] % 26;
    size_t n = (size_t)(fuzz_le(data + 2, 2, 2) % (MAXN + 1));
    int after[4];
    for (int k = 0; k < 4; k++) after[k] = data[4 + k] % 26;
    size_t len = size - HDR;
    uint8_t *in = malloc(len ? len : 1);
    if (!in) return 0;
    if (len) memcpy(in, data + HDR, len);

    /* model */
    model m = {in, len, 0, 0};
    uint32_t mskip = model_get(&m, skip);
    uint16_t want[MAXN];
    for (size_t i = 0; i < n; i++) want[i] = 0xEEEE;
    if (bits <= 16)
        for (size_t i = 0; i < n; i++) want[i] = (uint16_t)(bits ? model_get(&m, bits) : 0);
    uint32_t mafter[4];
    for (int k = 0; k < 4; k++) mafter[k] = model_get(&m, after[k]);

    static const unpack_fn fns[3] = {ddct_bitr_unpack, ddct_bitr_unpack_ref, ddct_bitr_unpack_nosimd};
    static const char *const names[3] = {"unpack", "unpack_ref", "unpack_nosimd"};
    uint16_t got[MAXN];
    for (int f = 0; f < 3; f++) {
        ddct_bitr r;
        ddct_bitr_init(&r, in, len);
        uint32_t s = ddct_bitr_get(&r, skip);
        FUZZ_ASSERT(s == mskip, "get(%d) = %u, model %u", skip, s, mskip);
        for (size_t i = 0; i < n; i++) got[i] = 0xEEEE;
        fns[f](&r, got, n, bits);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(got[i] == want[i], "%s: width %d, value %zu of %zu: %u, model %u (len %zu, skip %d)",
                        names[f], bits, i, n, got[i], want[i], len, skip);
        for (int k = 0; k < 4; k++) {
            uint32_t v = ddct_bitr_get(&r, after[k]);
            FUZZ_ASSERT(v == mafter[k], "%s: get(%d) after unpack = %u, model %u", names[f], after[k], v, mafter[k]);
        }
        FUZZ_ASSERT(r.bitpos == m.pos && !!r.failed == m.failed, "%s: state %llu/%d, model %llu/%d", names[f],
                    (unsigned long long)r.bitpos, r.failed, (unsigned long long)m.pos, m.failed);
    }

    /* writer round trip of the values read */
    if (bits >= 1 && bits <= 16 && n > 0 && skip <= 24) {
        static const pack_fn pk[3] = {ddct_bitw_pack, ddct_bitw_pack_ref, ddct_bitw_pack_nosimd};
        uint64_t total = (uint64_t)skip + (uint64_t)n * (uint64_t)bits;
        size_t nb = ddct_bitpack_bytes(total);
        uint8_t *outs[3] = {NULL, NULL, NULL};
        for (int f = 0; f < 3; f++) {
            outs[f] = malloc(nb ? nb : 1);
            if (!outs[f]) break;
            memset(outs[f], 0xA5, nb); /* the writer must define every byte it owns */
            ddct_bitw w;
            ddct_bitw_init(&w, outs[f]);
            ddct_bitw_put(&w, mskip, skip);
            pk[f](&w, want, n, bits);
            size_t wrote = ddct_bitw_finish(&w);
            FUZZ_ASSERT(wrote == nb, "pack %d: wrote %zu bytes, expected %zu", f, wrote, nb);
            if (f) FUZZ_ASSERT(!memcmp(outs[0], outs[f], nb), "pack kernels %d and 0 differ", f);
        }
        if (outs[0] && outs[1] && outs[2]) {
            ddct_bitr r;
            ddct_bitr_init(&r, outs[0], nb);
            uint32_t s = ddct_bitr_get(&r, skip);
            FUZZ_ASSERT(s == (skip ? (mskip & ((1u << skip) - 1u)) : 0), "re-read of the first value");
            ddct_bitr_unpack(&r, got, n, bits);
            FUZZ_ASSERT(!r.failed && !memcmp(got, want, n * sizeof *got), "pack/unpack round trip (width %d)", bits);
        }
        for (int f = 0; f < 3; f++) free(outs[f]);
    }
    free(in);
    return 0;
}
