/*
 * cpu.c — CPU feature checks (cpu.h), read once.
 */
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"

/* The highest level allowed: DDCT_SIMD_MAX=ref|avx2|avx512, else all. Read once; a race between
 * first callers writes the same value. */
static ddct_simd level_cap(void)
{
    static volatile int cap = -1;
    if (cap < 0) {
        const char *v = getenv("DDCT_SIMD_MAX");
        int c = DDCT_SIMD_COUNT - 1;
        if (v && !strcmp(v, "ref")) c = DDCT_SIMD_REF;
        else if (v && !strcmp(v, "avx2")) c = DDCT_SIMD_AVX2;
        cap = c;
    }
    return (ddct_simd)cap;
}

int ddct_simd_supported(ddct_simd s)
{
    if (s == DDCT_SIMD_REF) return 1;
    if (s > level_cap()) return 0;
    switch (s) {
#if DDCT_HAVE_X86_SIMD
    case DDCT_SIMD_AVX2: return __builtin_cpu_supports("avx2") ? 1 : 0;
    case DDCT_SIMD_AVX512: return __builtin_cpu_supports("avx512f") ? 1 : 0;
#endif
    default: return 0;
    }
}

ddct_simd ddct_simd_best(void)
{
    if (ddct_simd_supported(DDCT_SIMD_AVX512)) return DDCT_SIMD_AVX512;
    if (ddct_simd_supported(DDCT_SIMD_AVX2)) return DDCT_SIMD_AVX2;
    return DDCT_SIMD_REF;
}

const char *ddct_simd_name(ddct_simd s)
{
    switch (s) {
    case DDCT_SIMD_REF: return "ref";
    case DDCT_SIMD_AVX2: return "avx2";
    case DDCT_SIMD_AVX512: return "avx512";
    default: return "unknown";
    }
}
