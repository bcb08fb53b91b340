/* test_dtype.c — dtype table, exhaustive F16/BF16 round trips, RNE ties, overflow, bulk conversions. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/dtype.h"
#include "testutil.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static int h_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static int b_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

static void test_table(void)
{
    static const struct { const char *name; ddct_dtype t; size_t size; int lossy; } want[] = {
        {"F64", DDCT_DT_F64, 8, 0},   {"F32", DDCT_DT_F32, 4, 1},         {"F16", DDCT_DT_F16, 2, 1},
        {"BF16", DDCT_DT_BF16, 2, 1}, {"I64", DDCT_DT_I64, 8, 0},         {"I32", DDCT_DT_I32, 4, 0},
        {"I16", DDCT_DT_I16, 2, 0},   {"I8", DDCT_DT_I8, 1, 0},           {"U64", DDCT_DT_U64, 8, 0},
        {"U32", DDCT_DT_U32, 4, 0},   {"U16", DDCT_DT_U16, 2, 0},         {"U8", DDCT_DT_U8, 1, 0},
        {"BOOL", DDCT_DT_BOOL, 1, 0}, {"F8_E4M3", DDCT_DT_F8_E4M3, 1, 0}, {"F8_E5M2", DDCT_DT_F8_E5M2, 1, 0},
    };
    CHECK(sizeof want / sizeof want[0] == DDCT_DT_COUNT - 1, "table covers every dtype");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(ddct_dtype_from_name(want[i].name, strlen(want[i].name)) == want[i].t, "%s", want[i].name);
        CHECK(strcmp(ddct_dtype_name(want[i].t), want[i].name) == 0, "%s", want[i].name);
        CHECK(ddct_dtype_size(want[i].t) == want[i].size, "%s size", want[i].name);
        CHECK(ddct_dtype_is_lossy_float(want[i].t) == want[i].lossy, "%s lossy", want[i].name);
    }
    CHECK(ddct_dtype_from_name("F3", 2) == DDCT_DT_INVALID, "prefix");
    CHECK(ddct_dtype_from_name("F32", 2) == DDCT_DT_INVALID, "length honoured");
    CHECK(ddct_dtype_from_name("F32x", 4) == DDCT_DT_INVALID, "suffix");
    CHECK(ddct_dtype_from_name("f32", 3) == DDCT_DT_INVALID, "case");
    CHECK(ddct_dtype_from_name("?", 1) == DDCT_DT_INVALID, "invalid name");
    CHECK(ddct_dtype_from_name("", 0) == DDCT_DT_INVALID, "empty");
    CHECK(ddct_dtype_from_name(NULL, 0) == DDCT_DT_INVALID, "NULL");
    CHECK(strcmp(ddct_dtype_name(DDCT_DT_INVALID), "?") == 0, "invalid name");
    CHECK(strcmp(ddct_dtype_name((ddct_dtype)999), "?") == 0, "out of range name");
    CHECK(ddct_dtype_size(DDCT_DT_INVALID) == 0 && ddct_dtype_size((ddct_dtype)-3) == 0, "invalid size");
    CHECK(!ddct_dtype_is_lossy_float(DDCT_DT_COUNT), "count is not lossy");
}

/* The exact value of a non-NaN f16 bit pattern. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 31 ? INFINITY : e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

static void test_f16_exhaustive(void)
{
    int bad_value = 0, bad_round = 0, bad_nan = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = ddct_f16_to_f32(h);
        uint16_t back = ddct_f32_to_f16(f);
        if (h_is_nan(h)) {
            /* quiet NaN, sign and payload kept */
            bad_nan += !isnan(f) || !(bits(f) & 0x00400000u) || (bits(f) >> 31) != (h >> 15u) ||
                       ((bits(f) >> 13) & 0x1ff) != (h & 0x1ffu) || !h_is_nan(back) || back != (h | 0x200);
            continue;
        }
        bad_value += (double)f != f16_value(h) || !!signbit(f) != !!(h & 0x8000);
        bad_round += back != h;
    }
    CHECK(bad_value == 0, "%d f16 patterns decode wrongly", bad_value);
    CHECK(bad_round == 0, "%d f16 patterns do not round-trip", bad_round);
    CHECK(bad_nan == 0, "%d f16 NaNs not preserved as quiet NaN", bad_nan);
}

static void test_bf16_exhaustive(void)
{
    int bad_value = 0, bad_round = 0, bad_nan = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = ddct_bf16_to_f32(h);
        uint16_t back = ddct_f32_to_bf16(f);
        if (b_is_nan(h)) {
            bad_nan += !isnan(f) || !(bits(f) & 0x00400000u) || (bits(f) >> 16) != (h | 0x40u) || back != (h | 0x40);
            continue;
        }
        bad_value += bits(f) != (i << 16);
        bad_round += back != h;
    }
    CHECK(bad_value == 0, "%d bf16 patterns decode wrongly", bad_value);
    CHECK(bad_round == 0, "%d bf16 patterns do not round-trip", bad_round);
    CHECK(bad_nan == 0, "%d bf16 NaNs not preserved as quiet NaN", bad_nan);
}

/* Every midpoint between neighbouring positive f16 values: the tie goes to the even one,
 * one f32 ulp either side goes to the nearer one. Covers subnormals and the normal range. */
static void test_f16_ties(void)
{
    int bad = 0;
    for (uint16_t h = 0; h < 0x7bff; h++) {
        float lo = ddct_f16_to_f32(h), hi = ddct_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2); /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : h;
        bad += ddct_f32_to_f16(mid) != even;
        bad += ddct_f32_to_f16(nextafterf(mid, 0.0f)) != h;
        bad += ddct_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1;
        bad += ddct_f32_to_f16(-mid) != (even | 0x8000);
    }
    CHECK(bad == 0, "%d f16 RNE tie failures", bad);
    CHECK(ddct_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "1+2^-11 ties to even 1.0");
    CHECK(ddct_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "1+3*2^-11 ties to even");
    CHECK(ddct_f32_to_f16(0x1p-25f) == 0x0000, "2^-25 ties to 0");
    CHECK(ddct_f32_to_f16(nextafterf(0x1p-25f, 1)) == 0x0001, "just above 2^-25 rounds up");
    CHECK(ddct_f32_to_f16(3 * 0x1p-25f) == 0x0002, "3*2^-25 ties to even 2");
    CHECK(ddct_f32_to_f16(0x1p-30f) == 0 && ddct_f32_to_f16(-0x1p-30f) == 0x8000, "underflow keeps sign");
    CHECK(ddct_f32_to_f16(from_bits(1)) == 0, "f32 denormal -> 0");
    CHECK(ddct_f32_to_f16(1023.5f * 0x1p-24f) == 0x0400, "largest subnormal tie rounds up to min normal");
    CHECK(ddct_f32_to_f16(65504.0f) == 0x7bff, "max f16");
    CHECK(ddct_f32_to_f16(65519.99f) == 0x7bff, "below overflow threshold");
    CHECK(ddct_f32_to_f16(65520.0f) == 0x7c00, "65520 ties to Inf");
    CHECK(ddct_f32_to_f16(1e10f) == 0x7c00 && ddct_f32_to_f16(-1e10f) == 0xfc00, "overflow to Inf");
    CHECK(ddct_f32_to_f16(INFINITY) == 0x7c00 && ddct_f32_to_f16(-INFINITY) == 0xfc00, "Inf");
    CHECK(h_is_nan(ddct_f32_to_f16(NAN)) && (ddct_f32_to_f16(NAN) & 0x200), "quiet NaN");
    CHECK(h_is_nan(ddct_f32_to_f16(from_bits(0x7f800001u))), "signalling NaN with low payload stays NaN");
    CHECK(ddct_f32_to_f16(from_bits(0xff800001u)) & 0x8000, "NaN sign kept");
}

/* Reference narrowing through double: the nearest f16, ties to even. */
static double f16_ref(float f)
{
    double a = fabs((double)f);
    if (a >= 65520.0) return copysign(INFINITY, f);
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    double ulp = ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
    return copysign(nearbyint(a / ulp) * ulp, f);
}

static void test_f16_random(void)
{
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)tu_next();
        if (i & 1) u = (u & 0x87ffffffu) | 0x30000000u; /* bias towards the f16 range */
        float f = from_bits(u);
        if (isnan(f)) continue;
        bad += (double)ddct_f16_to_f32(ddct_f32_to_f16(f)) != f16_ref(f);
    }
    CHECK(bad == 0, "%d random f32 -> f16 differ from the reference", bad);
}

static void test_bf16_ties(void)
{
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        if ((h & 0x7fff) >= 0x7f80) continue; /* Inf and NaN have no upper neighbour */
        uint32_t mid = ((uint32_t)h << 16) | 0x8000u;
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : h;
        bad += ddct_f32_to_bf16(from_bits(mid)) != even;
        bad += ddct_f32_to_bf16(from_bits(mid - 1)) != h;
        bad += ddct_f32_to_bf16(from_bits(mid + 1)) != (uint16_t)(h + 1);
    }
    CHECK(bad == 0, "%d bf16 RNE tie failures", bad);
    CHECK(ddct_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "1+2^-8 ties to even 1.0");
    CHECK(ddct_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "1+3*2^-8 ties to even");
    CHECK(ddct_f32_to_bf16(3.4028235e38f) == 0x7f80, "FLT_MAX rounds to Inf");
    CHECK(ddct_f32_to_bf16(-3.4028235e38f) == 0xff80, "-FLT_MAX rounds to -Inf");
    CHECK(ddct_f32_to_bf16(from_bits(0x7f7f7fffu)) == 0x7f7f, "largest below the overflow tie");
    CHECK(ddct_f32_to_bf16(from_bits(0x00008000u)) == 0x0000, "subnormal tie to even 0");
    CHECK(ddct_f32_to_bf16(from_bits(0x00018000u)) == 0x0002, "subnormal tie to even 2");
    CHECK(b_is_nan(ddct_f32_to_bf16(from_bits(0x7f800001u))), "NaN with payload only in low bits stays NaN");
    CHECK(b_is_nan(ddct_f32_to_bf16(from_bits(0xffffffffu))), "all-ones NaN stays NaN");
}

/* Bulk conversions on unaligned little-endian buffers agree with the scalar ones. */
static void test_bulk(void)
{
    enum { N = 1037 };
    static float src[N], out[N];
    static uint8_t raw[4 * N + 1];
    for (int i = 0; i < N; i++) src[i] = (float)(tu_normal() * 100.0);
    src[0] = NAN, src[1] = -0.0f, src[2] = INFINITY, src[3] = 1e-7f, src[4] = 70000.0f;
    const ddct_dtype types[] = {DDCT_DT_F32, DDCT_DT_F16, DDCT_DT_BF16};
    for (int k = 0; k < 3; k++) {
        ddct_dtype t = types[k];
        uint8_t *p = raw + 1; /* deliberately unaligned */
        ddct_from_f32(t, src, N, p);
        int bad_enc = 0, bad_dec = 0;
        for (int i = 0; i < N; i++) {
            uint32_t want = t == DDCT_DT_F32 ? bits(src[i])
                            : t == DDCT_DT_F16 ? ddct_f32_to_f16(src[i]) : ddct_f32_to_bf16(src[i]);
            size_t sz = ddct_dtype_size(t);
            uint32_t got = 0;
            for (size_t b = 0; b < sz; b++) got |= (uint32_t)p[i * sz + b] << (8 * b); /* little-endian */
            bad_enc += got != want;
        }
        ddct_to_f32(t, p, N, out);
        for (int i = 0; i < N; i++) {
            float want = t == DDCT_DT_F32 ? src[i]
                         : t == DDCT_DT_F16 ? ddct_f16_to_f32(ddct_f32_to_f16(src[i]))
                                            : ddct_bf16_to_f32(ddct_f32_to_bf16(src[i]));
            bad_dec += bits(out[i]) != bits(want);
        }
        CHECK(bad_enc == 0, "%s bulk encode: %d wrong", ddct_dtype_name(t), bad_enc);
        CHECK(bad_dec == 0, "%s bulk decode: %d wrong", ddct_dtype_name(t), bad_dec);
    }
    out[0] = 1.0f;
    ddct_to_f32(DDCT_DT_I32, raw, 1, out);
    CHECK(out[0] == 0.0f, "non-float dtype decodes to zeros");
    ddct_to_f32(DDCT_DT_F16, NULL, 0, NULL);
    ddct_from_f32(DDCT_DT_BF16, NULL, 0, NULL);
    CHECK(1, "n = 0 is a no-op");
}

/* scalar twin of ddct_to_f32 for one element */
static float one_to_f32(ddct_dtype t, const uint8_t *p)
{
    if (t == DDCT_DT_F32) {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    return t == DDCT_DT_F16 ? ddct_f16_to_f32(h) : ddct_bf16_to_f32(h);
}

/* ddct_sub_to_f32 and ddct_add_cast (fused, vectorized) equal the element-by-element composition. */
static void test_fused(void)
{
    enum { N = 2053 };
    static uint8_t a[4 * N + 1], b[4 * N + 1], o[4 * N + 1], want[4];
    static float d[N], dd[N];
    const ddct_dtype types[] = {DDCT_DT_F32, DDCT_DT_F16, DDCT_DT_BF16};
    const size_t sizes[] = {0, 1, 7, 31, 32, 33, 1000, N};
    int bad = 0, badflag = 0, badcast = 0;
    for (int special = 0; special < 2; special++)
        for (int ia = 0; ia < 3; ia++)
            for (int ib = 0; ib < 3; ib++) {
                ddct_dtype ta = types[ia], tb = types[ib];
                size_t ea = ddct_dtype_size(ta), eb = ddct_dtype_size(tb);
                for (size_t i = 0; i < N; i++) {
                    float x = (float)tu_normal(), y = x + (float)(tu_normal() * 0.01);
                    ddct_from_f32(ta, &x, 1, a + 1 + i * ea);
                    ddct_from_f32(tb, &y, 1, b + 1 + i * eb);
                    if (special && tu_next() % 50 == 0) /* random bit patterns: NaN, Inf, subnormals */
                        for (size_t k = 0; k < ea; k++) a[1 + i * ea + k] = (uint8_t)tu_next();
                }
                for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                    size_t n = sizes[si];
                    int fin = 1;
                    for (size_t i = 0; i < n; i++) {
                        float x = one_to_f32(ta, a + 1 + i * ea), y = one_to_f32(tb, b + 1 + i * eb);
                        dd[i] = x - y;
                        fin &= isfinite(x) && isfinite(y) && isfinite(dd[i]);
                    }
                    int got = ddct_sub_to_f32(ta, a + 1, tb, b + 1, n, d);
                    badflag += got != fin;
                    for (size_t i = 0; i < n; i++) bad += bits(d[i]) != bits(dd[i]);
                    /* add_cast: base tb + d -> ta */
                    for (size_t i = 0; i < n; i++) d[i] = (float)(tu_normal() * 0.01);
                    float sc = si % 2 ? 1.0f : 1.37f;
                    ddct_add_cast(tb, b + 1, d, sc, n, ta, o + 1);
                    for (size_t i = 0; i < n; i++) {
                        float ds = d[i] * sc, s = one_to_f32(tb, b + 1 + i * eb) + ds;
                        ddct_from_f32(ta, &s, 1, want);
                        badcast += memcmp(want, o + 1 + i * ea, ea) != 0;
                    }
                }
            }
    CHECK(bad == 0, "ddct_sub_to_f32: %d values differ", bad);
    CHECK(badflag == 0, "ddct_sub_to_f32: %d finiteness flags differ", badflag);
    CHECK(badcast == 0, "ddct_add_cast: %d values differ", badcast);
}

/* ddct_add_cast saturates: a finite base never rebuilds to Inf or NaN; AVX2 and _ref agree bit for
 * bit, counts included; values that do not overflow are the plain composition; a non-finite base
 * keeps what the plain cast gives. */
static void test_saturate(void)
{
    enum { N = 3001 };
    static uint8_t b[4 * N + 1], o1[4 * N + 1], o2[4 * N + 1], want[4];
    static float d[N];
    const ddct_dtype types[] = {DDCT_DT_F32, DDCT_DT_F16, DDCT_DT_BF16};
    const float big[] = {3.4028235e38f, 65504.0f, 3.3895314e38f};
    const uint32_t maxbits[] = {0x7f7fffffu, 0x7bffu, 0x7f7fu};
    int bad_twin = 0, bad_count = 0, bad_fin = 0, bad_plain = 0, bad_sat = 0, bad_keep = 0;
    uint64_t total = 0;
    for (int ib = 0; ib < 3; ib++)
        for (int io = 0; io < 3; io++) {
            ddct_dtype tb = types[ib], to = types[io];
            size_t eb = ddct_dtype_size(tb), eo = ddct_dtype_size(to);
            float m = big[io] < big[ib] ? big[io] : big[ib]; /* base values near the smaller max */
            for (size_t i = 0; i < N; i++) {
                float x = (float)(m * (0.9 + 0.1 * tu_unif()) * (tu_next() & 1 ? 1 : -1));
                if (i % 97 == 5) x = (float)tu_normal(); /* ordinary values too */
                ddct_from_f32(tb, &x, 1, b + 1 + i * eb);
                d[i] = (float)(tu_normal() * 0.1 * m);
                if (i % 211 == 7) d[i] = NAN;
                if (i % 223 == 9) d[i] = -INFINITY;
                if (i % 251 == 11) { /* a non-finite base: Inf or NaN */
                    float y = i % 2 ? INFINITY : NAN;
                    ddct_from_f32(tb, &y, 1, b + 1 + i * eb);
                }
            }
            const size_t sizes[] = {0, 1, 31, 32, 33, 1024, 1025, N};
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                size_t n = sizes[si];
                float sc = si % 2 ? 1.0f : 1.5f;
                uint64_t c1 = ddct_add_cast(tb, b + 1, d, sc, n, to, o1 + 1);
                uint64_t c2 = ddct_add_cast_ref(tb, b + 1, d, sc, n, to, o2 + 1);
                bad_twin += memcmp(o1 + 1, o2 + 1, n * eo) != 0;
                bad_count += c1 != c2;
                uint64_t cnt = 0;
                for (size_t i = 0; i < n; i++) {
                    float bv = one_to_f32(tb, b + 1 + i * eb), got = one_to_f32(to, o1 + 1 + i * eo);
                    float plain = bv + d[i] * sc;
                    ddct_from_f32(to, &plain, 1, want);
                    float pv = one_to_f32(to, want);
                    if (!isfinite(bv)) { /* the plain cast, Inf and NaN kept */
                        bad_keep += memcmp(want, o1 + 1 + i * eo, eo) != 0;
                        continue;
                    }
                    bad_fin += !isfinite(got);
                    if (isfinite(pv)) {
                        bad_plain += memcmp(want, o1 + 1 + i * eo, eo) != 0;
                        continue;
                    }
                    cnt++;
                    /* Inf: the largest finite value with its sign; NaN: the base value (cast, saturated) */
                    float ref = isnan(plain) ? bv : plain;
                    uint32_t gb = 0;
                    memcpy(&gb, o1 + 1 + i * eo, eo);
                    if (isnan(plain) && isfinite(one_to_f32(to, (ddct_from_f32(to, &ref, 1, want), want))))
                        bad_sat += memcmp(want, o1 + 1 + i * eo, eo) != 0;
                    else
                        bad_sat += (gb & (eo == 4 ? 0x7fffffffu : 0x7fffu)) != maxbits[io] ||
                                   (signbit(got) != 0) != (signbit(ref) != 0);
                }
                bad_count += cnt != c1;
                total += cnt;
            }
        }
    CHECK(bad_twin == 0, "ddct_add_cast (AVX2) and ddct_add_cast_ref differ in %d runs", bad_twin);
    CHECK(bad_count == 0, "%d saturation counts wrong", bad_count);
    CHECK(bad_fin == 0, "%d finite bases rebuilt to Inf or NaN", bad_fin);
    CHECK(bad_plain == 0, "%d in-range values differ from the plain cast", bad_plain);
    CHECK(bad_sat == 0, "%d saturated values are not the largest finite value (or the base)", bad_sat);
    CHECK(bad_keep == 0, "%d non-finite bases not kept", bad_keep);
    CHECK(total > 1000, "the test saturates values (%llu)", (unsigned long long)total);
    /* exact edges: F16 65504 + 8 rounds to 65504 (no saturation), + 16 would round to Inf */
    uint8_t hb[2], ho[2];
    float h = 65504.0f, dd = 8.0f;
    ddct_from_f32(DDCT_DT_F16, &h, 1, hb);
    CHECK(ddct_add_cast(DDCT_DT_F16, hb, &dd, 1.0f, 1, DDCT_DT_F16, ho) == 0 && (ho[0] | ho[1] << 8) == 0x7bff,
          "65504 + 8 stays 65504 without saturating");
    dd = 16.0f;
    CHECK(ddct_add_cast(DDCT_DT_F16, hb, &dd, 1.0f, 1, DDCT_DT_F16, ho) == 1 && (ho[0] | ho[1] << 8) == 0x7bff,
          "65504 + 16 saturates to 65504");
    dd = -140000.0f;
    CHECK(ddct_add_cast(DDCT_DT_F16, hb, &dd, 1.0f, 1, DDCT_DT_F16, ho) == 1 && (ho[0] | ho[1] << 8) == 0xfbff,
          "65504 - 140000 saturates to -65504");
}

int main(void)
{
    test_table();
    test_f16_exhaustive();
    test_bf16_exhaustive();
    test_f16_ties();
    test_f16_random();
    test_bf16_ties();
    test_bulk();
    test_fused();
    test_saturate();
    return TEST_SUMMARY();
}
