/*
 * dtype.c — safetensors dtype table and F16/BF16 <-> F32 conversions (see dtype.h).
 *
 * Conversions are branch-free bit manipulation, so the bulk loops vectorize. The only
 * floating-point operations are exact, except F32->F16 subnormals, which rely on the
 * default rounding mode (nearest-even; flush-to-zero modes do not matter). Narrowing
 * rounds to nearest, ties to even; overflow gives Inf; every NaN comes out as a quiet
 * NaN with its sign and top payload bits kept. The rebuild (ddct_add_cast) saturates instead:
 * a value rebuilt from a finite base is always finite.
 */
#include "common/cpu.h"
#include "dtype.h"

#include <string.h>
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

typedef struct {
    const char *name;
    size_t size;
    int lossy;
} dtype_info;

static const dtype_info dtype_table[DDCT_DT_COUNT] = {
    [DDCT_DT_INVALID] = {"?", 0, 0},
    [DDCT_DT_F64] = {"F64", 8, 0},
    [DDCT_DT_F32] = {"F32", 4, 1},
    [DDCT_DT_F16] = {"F16", 2, 1},
    [DDCT_DT_BF16] = {"BF16", 2, 1},
    [DDCT_DT_I64] = {"I64", 8, 0},
    [DDCT_DT_I32] = {"I32", 4, 0},
    [DDCT_DT_I16] = {"I16", 2, 0},
    [DDCT_DT_I8] = {"I8", 1, 0},
    [DDCT_DT_U64] = {"U64", 8, 0},
    [DDCT_DT_U32] = {"U32", 4, 0},
    [DDCT_DT_U16] = {"U16", 2, 0},
    [DDCT_DT_U8] = {"U8", 1, 0},
    [DDCT_DT_BOOL] = {"BOOL", 1, 0},
    [DDCT_DT_F8_E4M3] = {"F8_E4M3", 1, 0},
    [DDCT_DT_F8_E5M2] = {"F8_E5M2", 1, 0},
};

static const dtype_info *info_of(ddct_dtype t)
{
    if ((int)t <= DDCT_DT_INVALID || t >= DDCT_DT_COUNT) return &dtype_table[DDCT_DT_INVALID];
    return &dtype_table[t];
}

ddct_dtype ddct_dtype_from_name(const char *name, size_t len)
{
    if (!name) return DDCT_DT_INVALID;
    for (int t = DDCT_DT_INVALID + 1; t < DDCT_DT_COUNT; t++) {
        const char *n = dtype_table[t].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return (ddct_dtype)t;
    }
    return DDCT_DT_INVALID;
}

const char *ddct_dtype_name(ddct_dtype t) { return info_of(t)->name; }
size_t ddct_dtype_size(ddct_dtype t) { return info_of(t)->size; }
int ddct_dtype_is_lossy_float(ddct_dtype t) { return info_of(t)->lossy; }

/* ---------------------------------------------------------------- scalar kernels */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* all-ones if c, else 0: lets the compiler select without branches (and vectorize) */
static inline uint32_t mask_if(int c) { return (uint32_t)0 - (uint32_t)(c != 0); }

static inline float h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    /* subnormal/zero: man * 2^-24 is exact in f32 and normal (or zero) */
    uint32_t sub = f2u((float)(int32_t)man * 0x1p-24f);
    uint32_t norm = ((exp + 112u) << 23) | (man << 13);
    uint32_t special = 0x7f800000u | (man << 13) | (mask_if(man) & 0x00400000u);
    uint32_t is_sub = mask_if(exp == 0), is_special = mask_if(exp == 31);
    uint32_t r = (sub & is_sub) | (special & is_special) | (norm & ~(is_sub | is_special));
    return u2f(r | sign);
}

static inline uint16_t f2h(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    /* normal f16 range [2^-14, 65520): add the rounding bias then drop 13 bits */
    uint32_t norm = (x + 0xfffu + ((x >> 13) & 1u) - (112u << 23)) >> 13;
    /* subnormal f16 range (0, 2^-14): in 0.5 + |f| the f32 ulp is 2^-24, the f16 subnormal
     * step, so the (exact-or-RNE) addition rounds |f| to it; may round up to 0x400 */
    uint32_t sub = f2u(u2f(x) + 0.5f) - 0x3f000000u;
    uint32_t nan = 0x7e00u | ((x >> 13) & 0x3ffu);
    uint32_t is_nan = mask_if(x > 0x7f800000u), is_inf = mask_if(x >= 0x477ff000u) & ~is_nan;
    uint32_t is_norm = mask_if(x >= 0x38800000u) & ~(is_nan | is_inf);
    uint32_t r = (nan & is_nan) | (0x7c00u & is_inf) | (norm & is_norm) | (sub & ~(is_nan | is_inf | is_norm));
    return (uint16_t)(r | sign);
}

static inline float b2f(uint16_t h)
{
    uint32_t quiet = mask_if((h & 0x7fffu) > 0x7f80u) & 0x00400000u;
    return u2f(((uint32_t)h << 16) | quiet);
}

static inline uint16_t f2b(float f)
{
    uint32_t x = f2u(f);
    uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    uint32_t nan = (x >> 16) | 0x0040u;
    uint32_t is_nan = mask_if((x & 0x7fffffffu) > 0x7f800000u);
    return (uint16_t)((nan & is_nan) | (rounded & ~is_nan));
}

float ddct_f16_to_f32(uint16_t h) { return h2f(h); }
uint16_t ddct_f32_to_f16(float f) { return f2h(f); }
float ddct_bf16_to_f32(uint16_t h) { return b2f(h); }
uint16_t ddct_f32_to_bf16(float f) { return f2b(f); }

/* ---------------------------------------------------------------- bulk, little-endian */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE16(v) __builtin_bswap16(v)
#define LE32(v) __builtin_bswap32(v)
#else
#define LE16(v) (v)
#define LE32(v) (v)
#endif

static inline uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return LE16(v);
}
static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return LE32(v);
}
static inline void st16(uint8_t *p, uint16_t v)
{
    v = LE16(v);
    memcpy(p, &v, 2);
}
static inline void st32(uint8_t *p, uint32_t v)
{
    v = LE32(v);
    memcpy(p, &v, 4);
}

/* ---------------------------------------------------------------- bulk kernels
 * Each body is compiled twice: portable (SSE2 on x86-64) and with AVX2 (picked at run time).
 * They are integer / exact bit manipulation plus single IEEE additions, evaluated element by
 * element in the same way, so both versions give bitwise identical results. */
#define DDCT_DTYPE_ALWAYS_INLINE static inline __attribute__((always_inline))

DDCT_DTYPE_ALWAYS_INLINE void to_f32_body(ddct_dtype t, const uint8_t *restrict s, size_t n, float *restrict dst)
{
    switch (t) {
    case DDCT_DT_F32:
        for (size_t i = 0; i < n; i++) dst[i] = u2f(ld32(s + 4 * i));
        break;
    case DDCT_DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = h2f(ld16(s + 2 * i));
        break;
    case DDCT_DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = b2f(ld16(s + 2 * i));
        break;
    default:
        if (n) memset(dst, 0, n * sizeof *dst);
        break;
    }
}

DDCT_DTYPE_ALWAYS_INLINE void from_f32_body(ddct_dtype t, const float *restrict src, size_t n, uint8_t *restrict d)
{
    switch (t) {
    case DDCT_DT_F32:
        for (size_t i = 0; i < n; i++) st32(d + 4 * i, f2u(src[i]));
        break;
    case DDCT_DT_F16:
        for (size_t i = 0; i < n; i++) st16(d + 2 * i, f2h(src[i]));
        break;
    case DDCT_DT_BF16:
        for (size_t i = 0; i < n; i++) st16(d + 2 * i, f2b(src[i]));
        break;
    default:
        break;
    }
}

static inline uint32_t nonfinite(float f) { return mask_if((f2u(f) & 0x7f800000u) == 0x7f800000u); }

#define SUB_CHUNK 1024
/* d = a - b in float; returns 1 if every a, b and d is finite. */
DDCT_DTYPE_ALWAYS_INLINE int sub_body(ddct_dtype ta, const uint8_t *restrict a, ddct_dtype tb,
                                      const uint8_t *restrict b, size_t n, float *restrict d)
{
    uint32_t bad = 0;
    if (ta == DDCT_DT_BF16 && tb == DDCT_DT_BF16) {
        for (size_t i = 0; i < n; i++) {
            float x = b2f(ld16(a + 2 * i)), y = b2f(ld16(b + 2 * i)), r = x - y;
            bad |= nonfinite(x) | nonfinite(y) | nonfinite(r);
            d[i] = r;
        }
        return bad == 0;
    }
    float tmp[SUB_CHUNK];
    size_t ea = ddct_dtype_size(ta), eb = ddct_dtype_size(tb);
    for (size_t c0 = 0; c0 < n; c0 += SUB_CHUNK) {
        size_t m = n - c0 < SUB_CHUNK ? n - c0 : SUB_CHUNK;
        to_f32_body(ta, a + c0 * ea, m, d + c0);
        to_f32_body(tb, b + c0 * eb, m, tmp);
        for (size_t i = 0; i < m; i++) {
            float x = d[c0 + i], y = tmp[i], r = x - y;
            bad |= nonfinite(x) | nonfinite(y) | nonfinite(r);
            d[c0 + i] = r;
        }
    }
    return bad == 0;
}

/* The largest finite value of each lossy dtype, as its bits; the exponent mask (Inf / NaN). */
#define F32_EXP 0x7f800000u
#define F32_MAXBITS 0x7f7fffffu
#define F16_EXP 0x7c00u
#define F16_MAXBITS 0x7bffu
#define BF16_EXP 0x7f80u
#define BF16_MAXBITS 0x7f7fu

/* x = base + d * s in float, a NaN from a finite base replaced by the base (the delta counts as
 * 0); *fin: all-ones when the base is finite, *rep: all-ones when x was replaced. */
static inline float rebuild1(float base, float d, float s, uint32_t *fin, uint32_t *rep)
{
    float x = base + d * s;
    uint32_t bf = ~nonfinite(base), xn = mask_if((f2u(x) & 0x7fffffffu) > F32_EXP);
    *fin = bf;
    *rep = bf & xn;
    return u2f((f2u(base) & bf & xn) | (f2u(x) & ~(bf & xn)));
}

/* Saturate one output value's bits v: where the base was finite (fin) and v came out Inf (its
 * exponent field all ones), the largest finite value with the same sign. *cnt counts it, and a
 * value replaced before (rep). */
static inline uint32_t sat_bits(uint32_t v, uint32_t fin, uint32_t rep, uint32_t expm, uint32_t maxb, uint32_t signb,
                                uint32_t *cnt)
{
    uint32_t hit = fin & mask_if((v & expm) == expm);
    *cnt += (hit | rep) & 1u;
    return (v & ~hit) | (((v & signb) | maxb) & hit);
}

/* 1 if any of the m values of dtype t at o has its exponent field all ones (Inf or NaN). */
DDCT_DTYPE_ALWAYS_INLINE int any_nonfinite(ddct_dtype t, const uint8_t *restrict o, size_t m)
{
    uint32_t any = 0;
    switch (t) {
    case DDCT_DT_F32:
        for (size_t i = 0; i < m; i++) any |= mask_if((ld32(o + 4 * i) & F32_EXP) == F32_EXP);
        break;
    case DDCT_DT_F16:
        for (size_t i = 0; i < m; i++) any |= mask_if((ld16(o + 2 * i) & F16_EXP) == F16_EXP);
        break;
    case DDCT_DT_BF16:
        for (size_t i = 0; i < m; i++) any |= mask_if((ld16(o + 2 * i) & BF16_EXP) == BF16_EXP);
        break;
    default:
        break;
    }
    return any != 0;
}

/* A chunk of m values again, saturated (the rare path: some value came out Inf or NaN). */
DDCT_DTYPE_ALWAYS_INLINE uint32_t add_cast_sat(ddct_dtype tb, const uint8_t *restrict b, const float *restrict d,
                                               float s, size_t m, ddct_dtype to, uint8_t *restrict o)
{
    float tmp[SUB_CHUNK];
    uint32_t fin[SUB_CHUNK], rep[SUB_CHUNK], cnt = 0;
    to_f32_body(tb, b, m, tmp);
    for (size_t i = 0; i < m; i++) tmp[i] = rebuild1(tmp[i], d[i], s, &fin[i], &rep[i]);
    switch (to) {
    case DDCT_DT_F32:
        for (size_t i = 0; i < m; i++)
            st32(o + 4 * i, sat_bits(f2u(tmp[i]), fin[i], rep[i], F32_EXP, F32_MAXBITS, 0x80000000u, &cnt));
        break;
    case DDCT_DT_F16:
        for (size_t i = 0; i < m; i++)
            st16(o + 2 * i, (uint16_t)sat_bits(f2h(tmp[i]), fin[i], rep[i], F16_EXP, F16_MAXBITS, 0x8000u, &cnt));
        break;
    case DDCT_DT_BF16:
        for (size_t i = 0; i < m; i++)
            st16(o + 2 * i, (uint16_t)sat_bits(f2b(tmp[i]), fin[i], rep[i], BF16_EXP, BF16_MAXBITS, 0x8000u, &cnt));
        break;
    default:
        break;
    }
    return cnt;
}

/* BF16 base + d * s -> BF16 for m values, plainly cast; 1 if one of them needs saturating: |x|
 * from the smallest value that rounds to BF16 Inf, NaN included. */
static inline int add_cast_bf16(const uint8_t *restrict b, const float *restrict d, float s, size_t m,
                                uint8_t *restrict o)
{
    uint32_t a = 0;
    for (size_t i = 0; i < m; i++) {
        float x = b2f(ld16(b + 2 * i)) + d[i] * s;
        a |= mask_if((f2u(x) & 0x7fffffffu) >= 0x7f7f8000u);
        st16(o + 2 * i, f2b(x));
    }
    return a != 0;
}

/* out = cast(base + d * s), saturated: a value rebuilt from a finite base never comes out Inf
 * or NaN (see ddct_add_cast). Each chunk is cast plainly, and cast again with saturation only
 * when one of its values came out Inf or NaN (rare). Returns how many values were saturated. */
DDCT_DTYPE_ALWAYS_INLINE uint64_t add_cast_body(ddct_dtype tb, const uint8_t *restrict b, const float *restrict d,
                                                float s, size_t n, ddct_dtype to, uint8_t *restrict o)
{
    uint64_t sat = 0;
    float tmp[SUB_CHUNK];
    size_t eb = ddct_dtype_size(tb), eo = ddct_dtype_size(to);
    for (size_t c0 = 0; c0 < n; c0 += SUB_CHUNK) {
        size_t m = n - c0 < SUB_CHUNK ? n - c0 : SUB_CHUNK;
        const uint8_t *bc = b + c0 * eb;
        uint8_t *oc = o + c0 * eo;
        int any;
        if (tb == DDCT_DT_BF16 && to == DDCT_DT_BF16) {
            any = add_cast_bf16(bc, d + c0, s, m, oc);
        } else {
            to_f32_body(tb, bc, m, tmp);
            for (size_t i = 0; i < m; i++) tmp[i] = tmp[i] + d[c0 + i] * s;
            from_f32_body(to, tmp, m, oc);
            any = any_nonfinite(to, oc, m);
        }
        if (any) sat += add_cast_sat(tb, bc, d + c0, s, m, to, oc);
    }
    return sat;
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DDCT_DTYPE_X86 1
__attribute__((target("avx2"))) static void to_f32_avx2(ddct_dtype t, const uint8_t *s, size_t n, float *dst)
{
    to_f32_body(t, s, n, dst);
}
__attribute__((target("avx2"))) static void from_f32_avx2(ddct_dtype t, const float *src, size_t n, uint8_t *d)
{
    from_f32_body(t, src, n, d);
}
__attribute__((target("avx2"))) static int sub_avx2(ddct_dtype ta, const uint8_t *a, ddct_dtype tb,
                                                    const uint8_t *b, size_t n, float *d)
{
    return sub_body(ta, a, tb, b, n, d);
}
__attribute__((target("avx2"))) static uint64_t add_cast_avx2(ddct_dtype tb, const uint8_t *b, const float *d,
                                                              float s, size_t n, ddct_dtype to, uint8_t *o)
{
    return add_cast_body(tb, b, d, s, n, to, o);
}
static int use_avx2(size_t n) { return n >= 32 && ddct_simd_supported(DDCT_SIMD_AVX2); }

/* add_cast_bf16 sixteen values at a time with AVX-512F (the rebuild of BF16 models, the common
 * case): the same operations on the same bits (b2f's quieting, a multiply then an add, f2b's
 * rounding and NaN), the last m % 16 values by add_cast_bf16 itself. */
__attribute__((target("avx512f"))) static int add_cast_bf16_avx512(const uint8_t *b, const float *d, float s,
                                                                   size_t m, uint8_t *o)
{
    const __m512 vs = _mm512_set1_ps(s);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i lim = _mm512_set1_epi32(0x7f7f8000), quiet = _mm512_set1_epi32(0x00400000);
    const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet16 = _mm512_set1_epi32(0x40);
    __mmask16 any = 0;
    size_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m512i bu = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + 2 * i))), 16);
        bu = _mm512_mask_or_epi32(bu, _mm512_cmpgt_epu32_mask(_mm512_and_si512(bu, absm), inf), bu, quiet);
        __m512 x = _mm512_add_ps(_mm512_castsi512_ps(bu), _mm512_mul_ps(_mm512_loadu_ps(d + i), vs));
        __m512i xu = _mm512_castps_si512(x), ax = _mm512_and_si512(xu, absm);
        any |= _mm512_cmpge_epu32_mask(ax, lim);
        __m512i r = _mm512_add_epi32(_mm512_add_epi32(xu, half), _mm512_and_si512(_mm512_srli_epi32(xu, 16), one));
        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_or_epi32(r, _mm512_cmpgt_epu32_mask(ax, inf), _mm512_srli_epi32(xu, 16), quiet16);
        _mm256_storeu_si256((__m256i *)(o + 2 * i), _mm512_cvtepi32_epi16(r));
    }
    return (any != 0) | add_cast_bf16(b + 2 * i, d + i, s, m - i, o + 2 * i);
}

__attribute__((target("avx512f"))) static uint64_t add_cast_bf16_fast(const uint8_t *b, const float *d, float s,
                                                                      size_t n, uint8_t *o)
{
    uint64_t sat = 0;
    for (size_t c0 = 0; c0 < n; c0 += SUB_CHUNK) {
        size_t m = n - c0 < SUB_CHUNK ? n - c0 : SUB_CHUNK;
        if (add_cast_bf16_avx512(b + 2 * c0, d + c0, s, m, o + 2 * c0))
            sat += add_cast_sat(DDCT_DT_BF16, b + 2 * c0, d + c0, s, m, DDCT_DT_BF16, o + 2 * c0);
    }
    return sat;
}
#else
#define DDCT_DTYPE_X86 0
#endif

void ddct_to_f32(ddct_dtype t, const void *src, size_t n, float *dst)
{
#if DDCT_DTYPE_X86
    if (use_avx2(n)) {
        to_f32_avx2(t, src, n, dst);
        return;
    }
#endif
    to_f32_body(t, src, n, dst);
}

void ddct_from_f32(ddct_dtype t, const float *src, size_t n, void *dst)
{
#if DDCT_DTYPE_X86
    if (use_avx2(n)) {
        from_f32_avx2(t, src, n, dst);
        return;
    }
#endif
    from_f32_body(t, src, n, dst);
}

int ddct_sub_to_f32(ddct_dtype ta, const void *a, ddct_dtype tb, const void *b, size_t n, float *d)
{
#if DDCT_DTYPE_X86
    if (use_avx2(n)) return sub_avx2(ta, a, tb, b, n, d);
#endif
    return sub_body(ta, a, tb, b, n, d);
}

uint64_t ddct_add_cast(ddct_dtype tb, const void *base, const float *d, float s, size_t n, ddct_dtype to, void *out)
{
#if DDCT_DTYPE_X86
    if (tb == DDCT_DT_BF16 && to == DDCT_DT_BF16 && n >= 32 && ddct_simd_supported(DDCT_SIMD_AVX512))
        return add_cast_bf16_fast(base, d, s, n, out);
    if (use_avx2(n)) return add_cast_avx2(tb, base, d, s, n, to, out);
#endif
    return add_cast_body(tb, base, d, s, n, to, out);
}

uint64_t ddct_add_cast_ref(ddct_dtype tb, const void *base, const float *d, float s, size_t n, ddct_dtype to,
                           void *out)
{
    return add_cast_body(tb, base, d, s, n, to, out);
}
