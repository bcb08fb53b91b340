/*
 * fuzz_codecs.c — every codec decoder fed directly, with no container or checksum in the way.
 *
 * Input layout (FUZZ_CODEC_HDR = 10 bytes, then the streams):
 *   [0]     bits 0-2: codec, value % (K + 1) where K = number of codecs in the traits table:
 *           the value-th known id in increasing order (ids 0..K-1 when contiguous), K = unknown;
 *           bit 3: 2 threads instead of 1; bits 4-5: rescale -1 / 0 / 1 / -1; bit 6: lossless
 *           decode with a base; bit 7: record flag "has base"
 *   [1..4]  nelem, u32 little-endian, taken modulo FUZZ_MAX_NELEM + 1
 *   [5]     element size for lossless decoders: 1 << (value & 3)
 *   [6..7]  params length (u16), clamped to what is left
 *   [8..9]  side length (u16), clamped to what is left
 *   then params, side, and data = everything after them.
 * Each stream is copied into its own allocation of exactly its size, so reading one byte past a
 * stream is an ASan report (in a real file the streams are contiguous and it would go unseen).
 * gen_corpus.c writes seeds in this layout from real encoder output.
 * Properties: failures return a known code with a message; a lossy decoder that succeeds writes
 * all nelem values; a lossless one that succeeds is deterministic (same bytes twice).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "fuzz.h"

#define FUZZ_CODEC_HDR 10
#define FUZZ_MAX_NELEM (1u << 18)
#define SENTINEL 0x7fbadbadu

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_CODEC_HDR) return 0;
    static unsigned ids[DDCT_CODEC_MAX], nids;
    if (!nids)
        for (unsigned i = 0; i < DDCT_CODEC_MAX; i++)
            if (ddct_codec_get(i)) ids[nids++] = i;
    unsigned sel = (data[0] & 7u) % (nids + 1);
    unsigned id = sel < nids ? ids[sel] : DDCT_CODEC_MAX;
    int threads = data[0] & 8 ? 2 : 1;
    static const int rescales[4] = {-1, 0, 1, -1};
    int rescale = rescales[(data[0] >> 4) & 3];
    int with_base = (data[0] >> 6) & 1;
    uint64_t nelem = fuzz_le(data + 1, 4, 4) % (FUZZ_MAX_NELEM + 1);
    size_t elsize = (size_t)1 << (data[5] & 3);
    size_t left = size - FUZZ_CODEC_HDR;
    size_t plen = (size_t)fuzz_le(data + 6, 2, 2), slen = (size_t)fuzz_le(data + 8, 2, 2);
    if (plen > left) plen = left;
    if (slen > left - plen) slen = left - plen;
    size_t dlen = left - plen - slen;
    const uint8_t *p = data + FUZZ_CODEC_HDR;

    const ddct_codec_traits *ct = ddct_codec_get(id);
    if (!ct) return 0;
    ddct_record rec;
    memset(&rec, 0, sizeof rec);
    rec.codec = (uint8_t)(id & 0xff);
    rec.flags = data[0] >> 7;
    rec.params = dup_exact(p, plen);
    rec.params_len = plen;
    rec.side = dup_exact(p + plen, slen);
    rec.side_len = slen;
    rec.data = dup_exact(p + plen + slen, dlen);
    rec.data_len = dlen;
    ddct_err e;
    memset(&e, 0, sizeof e);
    if (rec.params && rec.side && rec.data) {
        if (ct->decode_lossy) {
            float *out = malloc(nelem ? (size_t)nelem * sizeof(float) : 1);
            if (out) {
                const uint32_t s = SENTINEL;
                for (uint64_t i = 0; i < nelem; i++) memcpy(&out[i], &s, 4);
                int rc = ct->decode_lossy(&rec, nelem, threads, rescale, out, &e);
                if (rc) {
                    FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT && e.msg[0], "%s: code %d, message '%s'", ct->name, rc,
                                e.msg);
                } else {
                    for (uint64_t i = 0; i < nelem; i++) {
                        uint32_t v;
                        memcpy(&v, &out[i], 4);
                        FUZZ_ASSERT(v != SENTINEL, "%s: value %llu of %llu unwritten", ct->name, (unsigned long long)i,
                                    (unsigned long long)nelem);
                    }
                }
                free(out);
            }
        }
        if (ct->decode_lossless) {
            uint64_t nbytes = nelem * elsize;
            uint8_t *base = NULL;
            if (with_base) {
                base = malloc(nbytes ? (size_t)nbytes : 1);
                /* a base that is not all zeros, so xor is visible */
                for (uint64_t i = 0; base && i < nbytes; i++) base[i] = (uint8_t)(i * 131u + 7u);
            }
            uint8_t *out = malloc(nbytes ? (size_t)nbytes : 1), *out2 = malloc(nbytes ? (size_t)nbytes : 1);
            if (out && out2 && (base || !with_base)) {
                int rc = ct->decode_lossless(&rec, base, nbytes, elsize, out, &e);
                if (rc) {
                    FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT && e.msg[0], "%s: code %d, message '%s'", ct->name, rc,
                                e.msg);
                } else {
                    int rc2 = ct->decode_lossless(&rec, base, nbytes, elsize, out2, &e);
                    FUZZ_ASSERT(rc2 == 0 && (nbytes == 0 || !memcmp(out, out2, (size_t)nbytes)),
                                "%s: decoding twice differs", ct->name);
                }
            }
            free(base);
            free(out);
            free(out2);
        }
    }
    free((void *)rec.params);
    free((void *)rec.side);
    free((void *)rec.data);
    return 0;
}
