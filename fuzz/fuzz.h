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

#endif
