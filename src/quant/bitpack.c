/*
 * bitpack.c — LSB-first bit writer / reader and bulk pack / unpack kernels (widths 0..16).
 *
 * Stream layout: value k of width w occupies stream bits [off_k, off_k + w), bit j of the
 * stream being bit (j % 8) of byte j / 8; a value's least significant bit comes first.
 * Values are masked to their width before packing, so stray high bits never leak into
 * neighbouring values. Unused high bits of the final byte are zero.
 *
 * Writer invariant between calls: w->nacc < 8 (only the bits of the partial last byte are
 * held in w->acc), so bulk calls may start mid-byte and every store is of complete stream
 * bytes only: the writer never touches a byte beyond ddct_bitpack_bytes(total bits).
 *
 * Reader: a value whose bits are not all inside the first `len` bytes reads as 0 and
 * latches `failed`; once failed, every later value reads as 0. bitpos always advances by
 * the width read, failed or not. Fast unpack paths only take 8/9-byte loads when they lie
 * entirely inside [in, in + len); everything near the end goes through the checked path.
 *
 * Fast kernels: widths 1, 2, 4, 8, 16 work on 64-bit stream words (64 / w values each),
 * merged into the stream at any bit offset with one 8-byte store; widths 3, 5, 6, 7 work
 * on groups of 8 values = w whole bytes; other widths use a 64-bit accumulator with
 * 32-bit stores. On x86 with AVX2 (checked at run time), widths 1 and 2 build / expand the
 * 64-bit words with AVX2. Every path produces exactly the bytes / values of the _ref
 * kernels, which are plain loops over ddct_bitw_put / ddct_bitr_get.
 */
#include "common/cpu.h"
#include "quant/quant.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DDCT_BITPACK_X86 1
#include <immintrin.h>
#else
#define DDCT_BITPACK_X86 0
#endif

/* ------------------------------------------------------------ little-endian raw access */
static inline uint64_t ld64le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void st64le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline void st32le(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

/* Store the low nb (constant after inlining) bytes of v. */
static inline void stnle(uint8_t *p, uint64_t v, int nb)
{
    uint8_t t[8];
    st64le(t, v);
    memcpy(p, t, (size_t)nb);
}

/* Bits available in the reader (len * 8 without overflow). */
static inline uint64_t bitr_avail(const ddct_bitr *r)
{
    return r->len > (UINT64_MAX >> 3) ? UINT64_MAX : (uint64_t)r->len * 8u;
}

/* ------------------------------------------------------------ writer */
void ddct_bitw_init(ddct_bitw *w, uint8_t *out)
{
    w->out = out;
    w->acc = 0;
    w->nacc = 0;
    w->pos = 0;
}

void ddct_bitw_put(ddct_bitw *w, uint32_t v, int bits)
{
    if (bits <= 0 || bits > 24) return;
    w->acc |= (uint64_t)(v & ((1u << bits) - 1u)) << w->nacc;
    w->nacc += bits;
    while (w->nacc >= 8) {
        w->out[w->pos++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->nacc -= 8;
    }
}

size_t ddct_bitw_finish(ddct_bitw *w)
{
    if (w->nacc > 0) w->out[w->pos++] = (uint8_t)w->acc;
    w->acc = 0;
    w->nacc = 0;
    return w->pos;
}

void ddct_bitw_pack_ref(ddct_bitw *w, const uint16_t *v, size_t n, int bits)
{
    if (bits <= 0 || bits > 16) return;
    for (size_t i = 0; i < n; i++) ddct_bitw_put(w, v[i], bits);
}

/* Accumulator state of the fast writer: acc holds k < 8 pending bits, o the next byte. */
typedef struct {
    uint64_t acc;
    int k;
    uint8_t *o;
} wstate;

/* Merge one full 64-bit stream word (k unchanged). */
static inline void w_word64(wstate *s, uint64_t word)
{
    st64le(s->o, s->acc | (word << s->k));
    s->o += 8;
    s->acc = (word >> 1) >> (63 - s->k); /* word >> (64 - k), 0 when k == 0 */
}

/* Scalar tail / general path: 64-bit accumulator, 32-bit stores, then whole bytes. */
static void w_general(wstate *s, const uint16_t *v, size_t n, int bits)
{
    const uint32_t mask = (1u << bits) - 1u;
    uint64_t acc = s->acc;
    int k = s->k;
    uint8_t *o = s->o;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint64_t)(v[i] & mask) << k; /* k <= 31 here, so at most 47 bits */
        k += bits;
        if (k >= 32) {
            st32le(o, (uint32_t)acc);
            o += 4;
            acc >>= 32;
            k -= 32;
        }
    }
    while (k >= 8) {
        *o++ = (uint8_t)acc;
        acc >>= 8;
        k -= 8;
    }
    s->acc = acc;
    s->k = k;
    s->o = o;
}

/* 64 / W values -> one 64-bit word, for W in {1, 2, 4, 8, 16}. */
static inline uint64_t word_scalar(const uint16_t *v, int W)
{
    const int per = 64 / W;
    const uint64_t mask = (1u << W) - 1u;
    uint64_t word = 0;
    for (int i = 0; i < per; i++) word |= ((uint64_t)v[i] & mask) << (i * W);
    return word;
}

static inline size_t w_words_scalar(wstate *s, const uint16_t *v, size_t n, int W)
{
    const size_t per = (size_t)(64 / W);
    size_t i = 0;
    for (; n - i >= per; i += per) w_word64(s, word_scalar(v + i, W));
    return i;
}

/* Groups of 8 values = W bytes, for W in 3, 5, 6, 7 (8 * W + 7 <= 63 bits). */
static inline size_t w_groups8(wstate *s, const uint16_t *v, size_t n, int W)
{
    const uint64_t mask = (1u << W) - 1u;
    uint64_t acc = s->acc;
    const int k = s->k;
    uint8_t *o = s->o;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t g = 0;
        for (int j = 0; j < 8; j++) g |= ((uint64_t)v[i + j] & mask) << (j * W);
        uint64_t t = acc | (g << k);
        stnle(o, t, W);
        o += W;
        acc = t >> (8 * W);
    }
    s->acc = acc;
    s->o = o;
    return i;
}

#if DDCT_BITPACK_X86
/* AVX2: 64 one-bit values -> word. Each value's bit 0 is moved to bit 7 of a byte and
 * collected with movemask. */
__attribute__((target("avx2"))) static size_t w_words1_avx2(wstate *s, const uint16_t *v, size_t n)
{
    const __m256i one = _mm256_set1_epi16(1);
    size_t i = 0;
    for (; n - i >= 64; i += 64) {
        const __m256i *p = (const __m256i *)(const void *)(v + i);
        __m256i a = _mm256_and_si256(_mm256_loadu_si256(p + 0), one);
        __m256i b = _mm256_and_si256(_mm256_loadu_si256(p + 1), one);
        __m256i c = _mm256_and_si256(_mm256_loadu_si256(p + 2), one);
        __m256i d = _mm256_and_si256(_mm256_loadu_si256(p + 3), one);
        __m256i ab = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
        __m256i cd = _mm256_permute4x64_epi64(_mm256_packus_epi16(c, d), 0xD8);
        uint32_t lo = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(ab, 7));
        uint32_t hi = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(cd, 7));
        w_word64(s, (uint64_t)lo | ((uint64_t)hi << 32));
    }
    return i;
}

/* AVX2: 32 two-bit values -> word. Bytes v0..v31 (0..3) are combined pairwise
 * (v0 + 4 v1), then into bytes (.. + 16 (v2 + 4 v3)), then gathered. */
__attribute__((target("avx2"))) static size_t w_words2_avx2(wstate *s, const uint16_t *v, size_t n)
{
    const __m256i three = _mm256_set1_epi16(3);
    const __m256i m14 = _mm256_set1_epi16(0x0401);   /* bytes 1, 4 */
    const __m256i m116 = _mm256_set1_epi32(0x00100001); /* words 1, 16 */
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    size_t i = 0;
    for (; n - i >= 64; i += 64) {
        const __m256i *p = (const __m256i *)(const void *)(v + i);
        __m256i a = _mm256_and_si256(_mm256_loadu_si256(p + 0), three);
        __m256i b = _mm256_and_si256(_mm256_loadu_si256(p + 1), three);
        __m256i c = _mm256_and_si256(_mm256_loadu_si256(p + 2), three);
        __m256i d = _mm256_and_si256(_mm256_loadu_si256(p + 3), three);
        __m256i ab = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
        __m256i cd = _mm256_permute4x64_epi64(_mm256_packus_epi16(c, d), 0xD8);
        ab = _mm256_madd_epi16(_mm256_maddubs_epi16(ab, m14), m116);
        cd = _mm256_madd_epi16(_mm256_maddubs_epi16(cd, m14), m116);
        ab = _mm256_shuffle_epi8(ab, gather);
        cd = _mm256_shuffle_epi8(cd, gather);
        uint64_t w0 = (uint32_t)_mm256_extract_epi32(ab, 0) | ((uint64_t)(uint32_t)_mm256_extract_epi32(ab, 4) << 32);
        uint64_t w1 = (uint32_t)_mm256_extract_epi32(cd, 0) | ((uint64_t)(uint32_t)_mm256_extract_epi32(cd, 4) << 32);
        w_word64(s, w0);
        w_word64(s, w1);
    }
    return i;
}

static int have_avx2(void)
{
    return ddct_simd_supported(DDCT_SIMD_AVX2);
}
#endif

static void pack_impl(ddct_bitw *w, const uint16_t *v, size_t n, int bits, int simd)
{
    if (bits <= 0 || bits > 16 || n == 0) return;
    wstate s = {w->acc, w->nacc, w->out + w->pos};
    size_t i = 0;
    (void)simd;
    switch (bits) {
    case 1:
#if DDCT_BITPACK_X86
        if (simd) i = w_words1_avx2(&s, v, n);
#endif
        i += w_words_scalar(&s, v + i, n - i, 1);
        break;
    case 2:
#if DDCT_BITPACK_X86
        if (simd) i = w_words2_avx2(&s, v, n);
#endif
        i += w_words_scalar(&s, v + i, n - i, 2);
        break;
    case 4: i = w_words_scalar(&s, v, n, 4); break;
    case 8: i = w_words_scalar(&s, v, n, 8); break;
    case 16: i = w_words_scalar(&s, v, n, 16); break;
    case 3: i = w_groups8(&s, v, n, 3); break;
    case 5: i = w_groups8(&s, v, n, 5); break;
    case 6: i = w_groups8(&s, v, n, 6); break;
    case 7: i = w_groups8(&s, v, n, 7); break;
    default: break;
    }
    w_general(&s, v + i, n - i, bits);
    w->acc = s.acc;
    w->nacc = s.k;
    w->pos = (size_t)(s.o - w->out);
}

void ddct_bitw_pack(ddct_bitw *w, const uint16_t *v, size_t n, int bits)
{
#if DDCT_BITPACK_X86
    pack_impl(w, v, n, bits, (bits == 1 || bits == 2) && n >= 64 && have_avx2());
#else
    pack_impl(w, v, n, bits, 0);
#endif
}

void ddct_bitw_pack_nosimd(ddct_bitw *w, const uint16_t *v, size_t n, int bits)
{
    pack_impl(w, v, n, bits, 0);
}

/* ------------------------------------------------------------ reader */
void ddct_bitr_init(ddct_bitr *r, const uint8_t *in, size_t len)
{
    r->in = in;
    r->len = in ? len : 0;
    r->bitpos = 0;
    r->failed = 0;
}

uint32_t ddct_bitr_get(ddct_bitr *r, int bits)
{
    if (bits <= 0 || bits > 24) return 0;
    uint64_t end = r->bitpos + (uint64_t)bits;
    if (r->failed || end > bitr_avail(r)) {
        r->failed = 1;
        r->bitpos = end;
        return 0;
    }
    size_t p = (size_t)(r->bitpos >> 3);
    int s = (int)(r->bitpos & 7);
    int nb = (s + bits + 7) >> 3; /* <= 4, all inside len (checked above) */
    uint32_t x = 0;
    for (int i = 0; i < nb; i++) x |= (uint32_t)r->in[p + (size_t)i] << (8 * i);
    r->bitpos = end;
    return (x >> s) & ((1u << bits) - 1u);
}

void ddct_bitr_unpack_ref(ddct_bitr *r, uint16_t *v, size_t n, int bits)
{
    if (bits < 0 || bits > 16) return;
    for (size_t i = 0; i < n; i++) v[i] = (uint16_t)ddct_bitr_get(r, bits);
}

/* Stream word at bit position pos: needs bytes [pos/8, pos/8 + 9) inside the buffer. */
static inline uint64_t r_word64(const uint8_t *in, uint64_t pos)
{
    const uint8_t *p = in + (size_t)(pos >> 3);
    int s = (int)(pos & 7);
    return (ld64le(p) >> s) | (((uint64_t)p[8] << 1) << (63 - s));
}

/* Number of whole 64-bit stream words readable with 9-byte loads from bitpos. */
static inline uint64_t r_safe_words(const ddct_bitr *r)
{
    uint64_t byte = r->bitpos >> 3;
    if ((uint64_t)r->len < byte + 9) return 0;
    return ((uint64_t)r->len - byte - 9) / 8 + 1;
}

static inline size_t r_words_scalar(ddct_bitr *r, uint16_t *v, size_t n, int W)
{
    const size_t per = (size_t)(64 / W);
    const uint64_t mask = (1u << W) - 1u;
    uint64_t nw = r_safe_words(r);
    size_t i = 0;
    uint64_t pos = r->bitpos;
    for (; nw > 0 && n - i >= per; nw--, i += per, pos += 64) {
        uint64_t word = r_word64(r->in, pos);
        for (size_t j = 0; j < per; j++) v[i + j] = (uint16_t)((word >> (j * (size_t)W)) & mask);
    }
    r->bitpos = pos;
    return i;
}

/* Groups of 8 values = W bytes (W 3, 5, 6, 7): one 8-byte load gives >= 57 valid bits. */
static inline size_t r_groups8(ddct_bitr *r, uint16_t *v, size_t n, int W)
{
    const uint64_t mask = (1u << W) - 1u;
    size_t i = 0;
    uint64_t pos = r->bitpos;
    const int s = (int)(pos & 7);
    size_t byte = (size_t)(pos >> 3);
    for (; n - i >= 8 && byte + 8 <= r->len; i += 8, byte += (size_t)W) {
        uint64_t g = ld64le(r->in + byte) >> s;
        for (int j = 0; j < 8; j++) v[i + (size_t)j] = (uint16_t)((g >> (j * W)) & mask);
    }
    r->bitpos = pos + (uint64_t)i * (uint64_t)W;
    return i;
}

/* General widths: one 8-byte load gives >= 57 bits = floor(56 / W) whole values. */
static size_t r_general(ddct_bitr *r, uint16_t *v, size_t n, int W)
{
    const size_t per = (size_t)(56 / W);
    const uint64_t mask = (1u << W) - 1u;
    size_t i = 0;
    uint64_t pos = r->bitpos;
    for (; n - i >= per && (pos >> 3) + 8 <= (uint64_t)r->len; i += per, pos += per * (size_t)W) {
        uint64_t g = ld64le(r->in + (size_t)(pos >> 3)) >> (pos & 7);
        for (size_t j = 0; j < per; j++) v[i + j] = (uint16_t)((g >> (j * (size_t)W)) & mask);
    }
    r->bitpos = pos;
    return i;
}

#if DDCT_BITPACK_X86
/* AVX2: one stream word -> 64 one-bit values. Byte j/8 is broadcast to lane j, masked
 * with 1 << (j % 8), and min(x, 1) turns it into 0 / 1. */
__attribute__((target("avx2"))) static size_t r_words1_avx2(ddct_bitr *r, uint16_t *v, size_t n)
{
    const __m256i sel0 = _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1,
                                          1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    const __m256i two = _mm256_set1_epi16(2); /* +2 on the index bytes, high (-1) bytes kept */
    const __m256i bitm = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i one = _mm256_set1_epi16(1);
    uint64_t nw = r_safe_words(r);
    size_t i = 0;
    uint64_t pos = r->bitpos;
    for (; nw > 0 && n - i >= 64; nw--, i += 64, pos += 64) {
        __m256i x = _mm256_set1_epi64x((long long)r_word64(r->in, pos));
        __m256i sel = sel0;
        __m256i *o = (__m256i *)(void *)(v + i);
        for (int k = 0; k < 4; k++) {
            __m256i t = _mm256_and_si256(_mm256_shuffle_epi8(x, sel), bitm);
            _mm256_storeu_si256(o + k, _mm256_min_epu16(t, one));
            sel = _mm256_add_epi8(sel, two);
        }
    }
    r->bitpos = pos;
    return i;
}

/* AVX2: one stream word -> 32 two-bit values. Byte j/4 goes to lane j, is masked with
 * 3 << 2(j % 4) and multiplied by 2^(6 - 2(j % 4)), which puts the value in bits 6..7. */
__attribute__((target("avx2"))) static size_t r_words2_avx2(ddct_bitr *r, uint16_t *v, size_t n)
{
    const __m256i sel0 = _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1, -1,
                                          2, -1, 2, -1, 2, -1, 2, -1, 3, -1, 3, -1, 3, -1, 3, -1);
    const __m256i sel1 = _mm256_setr_epi8(4, -1, 4, -1, 4, -1, 4, -1, 5, -1, 5, -1, 5, -1, 5, -1,
                                          6, -1, 6, -1, 6, -1, 6, -1, 7, -1, 7, -1, 7, -1, 7, -1);
    const __m256i bitm = _mm256_setr_epi16(3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192, 3, 12, 48, 192);
    const __m256i mul = _mm256_setr_epi16(64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1);
    uint64_t nw = r_safe_words(r);
    size_t i = 0;
    uint64_t pos = r->bitpos;
    for (; nw > 0 && n - i >= 32; nw--, i += 32, pos += 64) {
        __m256i x = _mm256_set1_epi64x((long long)r_word64(r->in, pos));
        __m256i a = _mm256_and_si256(_mm256_shuffle_epi8(x, sel0), bitm);
        __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(x, sel1), bitm);
        a = _mm256_srli_epi16(_mm256_mullo_epi16(a, mul), 6);
        b = _mm256_srli_epi16(_mm256_mullo_epi16(b, mul), 6);
        __m256i *o = (__m256i *)(void *)(v + i);
        _mm256_storeu_si256(o, a);
        _mm256_storeu_si256(o + 1, b);
    }
    r->bitpos = pos;
    return i;
}
#endif

static void unpack_impl(ddct_bitr *r, uint16_t *v, size_t n, int bits, int simd)
{
    if (bits < 0 || bits > 16 || n == 0) return;
    if (bits == 0) {
        memset(v, 0, n * sizeof *v);
        return;
    }
    if (r->failed) {
        memset(v, 0, n * sizeof *v);
        r->bitpos += (uint64_t)n * (uint64_t)bits;
        return;
    }
    size_t i = 0;
    (void)simd;
    switch (bits) {
    case 1:
#if DDCT_BITPACK_X86
        if (simd) i = r_words1_avx2(r, v, n);
#endif
        i += r_words_scalar(r, v + i, n - i, 1);
        break;
    case 2:
#if DDCT_BITPACK_X86
        if (simd) i = r_words2_avx2(r, v, n);
#endif
        i += r_words_scalar(r, v + i, n - i, 2);
        break;
    case 4: i = r_words_scalar(r, v, n, 4); break;
    case 8: i = r_words_scalar(r, v, n, 8); break;
    case 16: i = r_words_scalar(r, v, n, 16); break;
    case 3: i = r_groups8(r, v, n, 3); break;
    case 5: i = r_groups8(r, v, n, 5); break;
    case 6: i = r_groups8(r, v, n, 6); break;
    case 7: i = r_groups8(r, v, n, 7); break;
    default: i = r_general(r, v, n, bits); break;
    }
    for (; i < n; i++) v[i] = (uint16_t)ddct_bitr_get(r, bits);
}

void ddct_bitr_unpack(ddct_bitr *r, uint16_t *v, size_t n, int bits)
{
#if DDCT_BITPACK_X86
    unpack_impl(r, v, n, bits, (bits == 1 || bits == 2) && n >= 32 && have_avx2());
#else
    unpack_impl(r, v, n, bits, 0);
#endif
}

void ddct_bitr_unpack_nosimd(ddct_bitr *r, uint16_t *v, size_t n, int bits)
{
    unpack_impl(r, v, n, bits, 0);
}
