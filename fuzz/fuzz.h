/* fuzz.h — helpers shared by the fuzz targets (fuzz/README.md). */
#ifndef DDCT_FUZZ_H
#define DDCT_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A property every input must keep: a violation is a finding, like a crash. */
#define FUZZ_ASSERT(cond, ...)                                                                \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Little-endian reads from the front of a fuzz input (0 past the end). */
static inline uint64_t fuzz_le(const uint8_t *p, size_t avail, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < avail; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The contexts of a fuzz_rans_w input (fuzz_rans_w.c), shared with gen_corpus so that its seeds
 * are decodable: pattern 0 all k - 1, 1 the band of a 16 x 16 tile position (mod k), 2 and 3
 * pseudo-random from seed (3: in runs). k in 1..64. */
static inline void fuzz_rans_ctx(uint8_t *ctx, size_t n, int pattern, int k, uint32_t seed)
{
    uint64_t z = seed;
    uint8_t c = 0;
    for (size_t i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        const unsigned r = (unsigned)(z >> 33);
        if (pattern == 0) c = (uint8_t)(k - 1);
        else if (pattern == 1) {
            const int s = (int)(i % 256) / 16 + (int)(i % 16);
            c = (uint8_t)((s == 0 ? 0 : s <= 2 ? 1 : s <= 5 ? 2 : s <= 10 ? 3 : s <= 18 ? 4 : 5) % k);
        } else if (pattern == 2 || r % 16 == 0)
            c = (uint8_t)((r >> 4) % (unsigned)k);
        ctx[i] = c;
    }
}

#endif
