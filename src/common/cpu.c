/*
 * cpu.c — CPU feature checks (cpu.h), read once.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"

/* The highest level allowed: DDCT_SIMD_MAX=ref|avx2|avx512, else all. Read once (first callers
 * racing store the same value, atomically). */
static ddct_simd level_cap(void)
{
    static _Atomic int cap = -1;
    int c = atomic_load_explicit(&cap, memory_order_relaxed);
    if (c < 0) {
        const char *v = getenv("DDCT_SIMD_MAX");
        c = DDCT_SIMD_COUNT - 1;
        if (v && !strcmp(v, "ref")) c = DDCT_SIMD_REF;
        else if (v && !strcmp(v, "avx2")) c = DDCT_SIMD_AVX2;
        atomic_store_explicit(&cap, c, memory_order_relaxed);
    }
    return (ddct_simd)c;
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

const char *ddct_cpu_blas_coretype(void)
{
#if DDCT_HAVE_X86_SIMD
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
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
