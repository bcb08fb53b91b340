/*
 * cpu.h — the one place where CPU features are checked (ggml's habit). Every fast kernel has a
 * portable _ref twin giving bitwise-identical results; the fast one runs where ddct_simd_supported
 * says this build and this CPU can run it. DDCT_SIMD_MAX in the environment caps the level
 * ("ref", "avx2"), so tests and users can run the portable kernels on any machine.
 */
#ifndef DDCT_CPU_H
#define DDCT_CPU_H

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define DDCT_HAVE_X86_SIMD 1
#else
#define DDCT_HAVE_X86_SIMD 0
#endif

typedef enum { DDCT_SIMD_REF = 0, DDCT_SIMD_AVX2, DDCT_SIMD_AVX512, DDCT_SIMD_COUNT } ddct_simd;
int ddct_simd_supported(ddct_simd s); /* 1 if this build and CPU can run level s */
ddct_simd ddct_simd_best(void);
const char *ddct_simd_name(ddct_simd s); /* "ref", "avx2", "avx512" */
/* The OpenBLAS kernel family this CPU runs ("SkylakeX": AVX-512 F/BW/DQ/VL; "Haswell": AVX2 and
 * FMA), or NULL: for OPENBLAS_CORETYPE where OpenBLAS does not know the CPU's model (as in some
 * virtual machines) and falls back to its generic "Prescott" kernels, several times slower. */
const char *ddct_cpu_blas_coretype(void);

#endif
