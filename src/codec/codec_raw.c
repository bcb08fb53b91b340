/*
 * codec_raw.c — lossless tensors.
 *
 * SAME: the tensor equals the base tensor (checked by fingerprint at decode); no payload.
 * RAW:  params = u8 flags (bit 0: bytes xor-ed with the base's, bit 1: byte-shuffled, i.e.
 *       byte k of every element stored together, as blosc/HDF5 do, bit 2: chunked) and, when
 *       chunked, varint chunk: the xor/shuffle apply to each chunk of `chunk` bytes on its own.
 *       data = one zstd frame of the transformed bytes. The encoder tries the variants on a
 *       sample (at level 1 above SAMPLE_BYTES, to bound the time) and keeps the smallest.
 * Files written since format 1.1 are always chunked: encoding and decoding then stream, with
 * memory of a few chunks plus zstd's windows whatever the tensor size (bit 2 clear: format 1.0,
 * the shuffle spans the whole tensor and decoding it needs one tensor-sized buffer).
 * Bit 3, framed (with bit 2, on tensors of more than one chunk, written since the decoder became
 * parallel): the data is one zstd frame per chunk instead of one frame in all, so chunks are
 * compressed and decompressed on every thread, a batch of one chunk per thread at a time, and
 * reach the sink in order. Each frame depends on its chunk alone: output is identical for any
 * --threads. At levels up to 3 zstd's window (at most 1 MiB) is smaller than a chunk, so
 * cutting frames costs a few header bytes per 4 MiB. Unframed records (bit 3 clear) are one
 * frame, decoded on one thread; encoding those ran zstd with nbWorkers >= 1 above MT_BYTES,
 * whose frames did not depend on the worker count either.
 * Level 0 (--zstd-level 0; the default is 1) is a fast "tensor" setting: zstd's fastest match
 * search (level RAW_FAST_LEVEL) with its literals still Huffman-coded
 * (ZSTD_c_literalCompressionMode, which negative levels otherwise switch off): the xor-ed,
 * shuffled bytes of float tensors have few repeats worth a match, their gain is in the skewed
 * byte statistics. On the embedding of the 0.5B bench pair (zstd -b, one thread): level 1 5.12x
 * at 517 MB/s, this 5.18x at 646 MB/s; but on the shared fixtures' files 1-2.5 % larger (F32
 * tensors, whose matches level 1 does use), so it is not the default.
 */
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_literalCompressionMode (stable in libzstd since 1.5.1) */
#include <zstd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codec.h"
#include "common/buf.h"

#define RAW_XOR 1u
#define RAW_SHUFFLE 2u
#define RAW_CHUNKED 4u
#define RAW_FRAMES 8u
#define RAW_FLAGS_ALL 15u
#define MAX_BATCH 16 /* chunks in flight at most (one per thread): memory of a few chunks each */
#define BATCH_BYTES ((uint64_t)64 << 20) /* and at most this many bytes of chunks per buffer kind */
#define SAMPLE_BYTES (4u << 20)
#define MT_BYTES (8u << 20)
#define MAX_CHUNK ((uint64_t)64 << 20) /* refuse larger chunks from a file: they set our memory */
#define RAW_FAST_LEVEL (-20)

static void shuffle(const uint8_t *in, uint64_t n, size_t es, uint8_t *out)
{
    uint64_t ne = n / es;
    for (size_t k = 0; k < es; k++)
        for (uint64_t i = 0; i < ne; i++) out[k * ne + i] = in[i * es + k];
    memcpy(out + ne * es, in + ne * es, (size_t)(n - ne * es));
}

/* Bytes [a, a + m) of the unshuffled n-byte buffer whose shuffled form is in (a multiple of es). */
static void unshuffle_range(const uint8_t *in, uint64_t n, size_t es, uint64_t a, uint64_t m, uint8_t *out)
{
    uint64_t ne = n / es, body = ne * es;
    uint64_t end = a + m < body ? a + m : body;
    for (uint64_t i = a / es; i * es < end; i++)
        for (size_t k = 0; k < es; k++) out[i * es + k - a] = in[k * ne + i];
    for (uint64_t j = end > a ? end : a; j < a + m; j++) out[j - a] = in[j];
}

void ddct_unshuffle_xor_ref(const uint8_t *in, uint64_t m, size_t es, const uint8_t *base, uint8_t *out)
{
    unshuffle_range(in, m, es, 0, m, out);
    if (base)
        for (uint64_t i = 0; i < m; i++) out[i] ^= base[i];
}

#if defined(__SSE2__)
static inline __m128i xor_base(__m128i v, const uint8_t *base, uint64_t at)
{
    return base ? _mm_xor_si128(v, _mm_loadu_si128((const __m128i *)(base + at))) : v;
}

/* 2- and 4-byte elements, 16 at a time: byte planes interleaved with unpack, then the xor. */
static uint64_t unshuffle_xor_sse2(const uint8_t *in, uint64_t ne, size_t es, const uint8_t *base, uint8_t *out)
{
    uint64_t i = 0;
    if (es == 2) {
        for (; i + 16 <= ne; i += 16) {
            __m128i lo = _mm_loadu_si128((const __m128i *)(in + i)), hi = _mm_loadu_si128((const __m128i *)(in + ne + i));
            _mm_storeu_si128((__m128i *)(out + 2 * i), xor_base(_mm_unpacklo_epi8(lo, hi), base, 2 * i));
            _mm_storeu_si128((__m128i *)(out + 2 * i + 16), xor_base(_mm_unpackhi_epi8(lo, hi), base, 2 * i + 16));
        }
    } else if (es == 4) {
        for (; i + 16 <= ne; i += 16) {
            __m128i p0 = _mm_loadu_si128((const __m128i *)(in + i)), p1 = _mm_loadu_si128((const __m128i *)(in + ne + i));
            __m128i p2 = _mm_loadu_si128((const __m128i *)(in + 2 * ne + i));
            __m128i p3 = _mm_loadu_si128((const __m128i *)(in + 3 * ne + i));
            __m128i t0 = _mm_unpacklo_epi8(p0, p1), t1 = _mm_unpackhi_epi8(p0, p1);
            __m128i t2 = _mm_unpacklo_epi8(p2, p3), t3 = _mm_unpackhi_epi8(p2, p3);
            const __m128i o[4] = {_mm_unpacklo_epi16(t0, t2), _mm_unpackhi_epi16(t0, t2), _mm_unpacklo_epi16(t1, t3),
                                  _mm_unpackhi_epi16(t1, t3)};
            for (int k = 0; k < 4; k++)
                _mm_storeu_si128((__m128i *)(out + 4 * i + 16 * k), xor_base(o[k], base, 4 * i + 16 * (uint64_t)k));
        }
    } else if (es == 1) {
        for (; i + 16 <= ne; i += 16)
            _mm_storeu_si128((__m128i *)(out + i), xor_base(_mm_loadu_si128((const __m128i *)(in + i)), base, i));
    }
    return i;
}
#endif

/* out = the m-byte chunk in unshuffled (es-byte elements; es = 1: as is), xor base when not NULL. */
void ddct_unshuffle_xor(const uint8_t *in, uint64_t m, size_t es, const uint8_t *base, uint8_t *out)
{
    uint64_t ne = m / es, i = 0;
#if defined(__SSE2__)
    i = unshuffle_xor_sse2(in, ne, es, base, out);
#endif
    for (; i < ne; i++)
        for (size_t k = 0; k < es; k++) out[i * es + k] = (uint8_t)(in[k * ne + i] ^ (base ? base[i * es + k] : 0));
    for (uint64_t j = ne * es; j < m; j++) out[j] = (uint8_t)(in[j] ^ (base ? base[j] : 0));
}

void ddct_xor_shuffle_ref(const uint8_t *in, const uint8_t *base, uint64_t m, size_t es, uint8_t *tmp,
                          uint8_t *out)
{
    const uint8_t *src = in;
    if (base) {
        for (uint64_t i = 0; i < m; i++) tmp[i] = in[i] ^ base[i];
        src = tmp;
    }
    if (es > 1) shuffle(src, m, es, out);
    else memcpy(out, src, (size_t)m);
}

/* out = the chunk xor-ed with base (when not NULL), then shuffled (es > 1): one pass, with SSE2
 * for 2-byte elements (even bytes to one plane, odd to the other); tmp unused there. */
void ddct_xor_shuffle(const uint8_t *in, const uint8_t *base, uint64_t m, size_t es, uint8_t *tmp, uint8_t *out)
{
#if defined(__SSE2__)
    if (es == 2) {
        uint64_t ne = m / 2, i = 0;
        const __m128i lo8 = _mm_set1_epi16(0x00ff);
        for (; i + 16 <= ne; i += 16) {
            __m128i a = xor_base(_mm_loadu_si128((const __m128i *)(in + 2 * i)), base, 2 * i);
            __m128i b = xor_base(_mm_loadu_si128((const __m128i *)(in + 2 * i + 16)), base, 2 * i + 16);
            _mm_storeu_si128((__m128i *)(out + i), _mm_packus_epi16(_mm_and_si128(a, lo8), _mm_and_si128(b, lo8)));
            _mm_storeu_si128((__m128i *)(out + ne + i), _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
        }
        for (; i < ne; i++)
            for (size_t k = 0; k < 2; k++) out[k * ne + i] = (uint8_t)(in[2 * i + k] ^ (base ? base[2 * i + k] : 0));
        if (m & 1) out[m - 1] = (uint8_t)(in[m - 1] ^ (base ? base[m - 1] : 0));
        return;
    }
#endif
    ddct_xor_shuffle_ref(in, base, m, es, tmp, out);
}

/* Transform n bytes of ft (and base) by flags into tmp (tmp2: scratch for the xor). */
static void prepare(const uint8_t *ft, const uint8_t *base, uint64_t n, size_t es, unsigned flags, uint8_t *tmp,
                    uint8_t *tmp2)
{
    ddct_xor_shuffle(ft, flags & RAW_XOR ? base : NULL, n, flags & RAW_SHUFFLE ? es : 1, tmp2, tmp);
}

/* Level (0: the tensor setting, see the head comment) and no checksum. */
static size_t zset(ZSTD_CCtx *z, int level)
{
    size_t r = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level > 0 ? level : RAW_FAST_LEVEL);
    if (!ZSTD_isError(r) && level <= 0) r = ZSTD_CCtx_setParameter(z, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0);
    return r;
}

/* One-shot compression of a (small) sample into out (appended), for choosing the variant. */
static int zcompress(const uint8_t *src, uint64_t n, int level, ddct_buf *out, size_t *csize, ddct_err *e)
{
    size_t bound = ZSTD_compressBound((size_t)n);
    RETURN_ERROR_IF(ddct_buf_reserve(out, bound), e, DDCT_ERR_NOMEM, "out of memory (%zu bytes)", bound);
    ZSTD_CCtx *z = ZSTD_createCCtx();
    RETURN_ERROR_IF(!z, e, DDCT_ERR_NOMEM, "out of memory (zstd)");
    size_t r = zset(z, level);
    if (!ZSTD_isError(r)) r = ZSTD_compress2(z, out->p + out->len, bound, src, (size_t)n);
    ZSTD_freeCCtx(z);
    RETURN_ERROR_IF(ZSTD_isError(r), e, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    *csize = r;
    return 0;
}

uint64_t ddct_raw_data_bound(uint64_t nbytes)
{
    /* ZSTD_compressBound's formula in 64 bits, plus room for the multithreaded frame's blocks */
    return nbytes + (nbytes >> 8) + ((nbytes >> 17) + 1) * 16 + 1024;
}

/* Bytes [off, off + n) of the fine-tune (which = 0) or the base (1): read into buf by the
 * caller's reader when there is one (and buf), else (or when it says so) where they are mapped;
 * NULL and *rc set when the reader fails (an input changed: its mapping must not be read). */
static const uint8_t *in_bytes(const ddct_lossless_in *in, int which, uint64_t off, size_t n, uint8_t *buf, int *rc,
                               ddct_err *e)
{
    if (in->read && buf) {
        int r = in->read(in->read_opaque, which, off, buf, n, e);
        if (r == 0) return buf;
        if (r > 0) {
            *rc = r;
            return NULL;
        }
    }
    return (which ? in->base : in->ft) + off;
}

int ddct_raw_params(const ddct_lossless_in *in, ddct_buf *params, ddct_err *e)
{
    uint64_t n = in->nbytes;
    uint64_t sample = n > SAMPLE_BYTES ? SAMPLE_BYTES / in->elsize * in->elsize : n;
    int slevel = n > SAMPLE_BYTES && in->level > 1 ? 1 : in->level;
    size_t sb = sample ? (size_t)sample : 1;
    uint8_t *tmp = malloc(sb), *tmp2 = in->base ? malloc(sb) : NULL;
    uint8_t *rb[2] = {in->read ? malloc(sb) : NULL, in->read && in->base ? malloc(sb) : NULL};
    int rc = (!tmp || (in->base && !tmp2) || (in->read && (!rb[0] || (in->base && !rb[1]))))
                 ? ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory")
                 : 0;
    const uint8_t *f = rc ? NULL : in_bytes(in, 0, 0, (size_t)sample, rb[0], &rc, e);
    const uint8_t *b = rc || !in->base ? NULL : in_bytes(in, 1, 0, (size_t)sample, rb[1], &rc, e);
    unsigned best = 0;
    size_t best_size = SIZE_MAX;
    ddct_buf scratch;
    ddct_buf_init(&scratch);
    for (unsigned flags = 0; flags < 4 && !rc; flags++) {
        if ((flags & RAW_XOR) && !in->base) continue;
        if ((flags & RAW_SHUFFLE) && in->elsize < 2) continue;
        prepare(f, b, sample, in->elsize, flags, tmp, tmp2);
        size_t cs = 0;
        scratch.len = 0;
        rc = zcompress(tmp, sample, slevel, &scratch, &cs, e);
        if (!rc && cs < best_size) {
            best_size = cs;
            best = flags;
        }
    }
    ddct_buf_free(&scratch);
    free(tmp);
    free(tmp2);
    free(rb[0]);
    free(rb[1]);
    FORWARD_IF_ERROR(rc);
    uint64_t chunk = DDCT_RAW_CHUNK / in->elsize * in->elsize;
    ddct_buf_u8(params, (uint8_t)(best | RAW_CHUNKED | (n > chunk ? RAW_FRAMES : 0)));
    ddct_buf_varint(params, chunk);
    return ddct_buf_check(params, e);
}

/* flags and chunk size of a record's params (chunk = 0: not chunked). */
static int parse_params(const uint8_t *p, size_t len, size_t elsize, unsigned *flags, uint64_t *chunk, ddct_err *e)
{
    ddct_rd rd;
    ddct_rd_init(&rd, p, len);
    *flags = ddct_rd_u8(&rd);
    *chunk = (*flags & RAW_CHUNKED) ? ddct_rd_varint(&rd) : 0;
    RETURN_ERROR_IF(rd.failed || rd.pos != len, e, DDCT_ERR_FORMAT, "raw codec: bad parameters (%zu bytes)", len);
    RETURN_ERROR_IF(*flags > RAW_FLAGS_ALL, e, DDCT_ERR_FORMAT, "raw codec: unknown flags 0x%x", *flags);
    RETURN_ERROR_IF((*flags & RAW_FRAMES) && !(*flags & RAW_CHUNKED), e, DDCT_ERR_FORMAT,
                    "raw codec: frames without chunks (flags 0x%x)", *flags);
    RETURN_ERROR_IF((*flags & RAW_CHUNKED) && (*chunk == 0 || *chunk > MAX_CHUNK || *chunk % elsize), e,
                    DDCT_ERR_FORMAT, "raw codec: chunk of %llu bytes (must be 1..%llu and a multiple of %zu)",
                    (unsigned long long)*chunk, (unsigned long long)MAX_CHUNK, elsize);
    return 0;
}

typedef struct {
    ZSTD_CCtx *z;
    ZSTD_outBuffer out;
    ddct_sink_fn sink;
    void *opaque;
} zstream;

/* Feed src (end: last piece) and pass every compressed byte to the sink. */
static int zfeed(zstream *s, const uint8_t *src, size_t n, int end, ddct_err *e)
{
    ZSTD_inBuffer in = {src, n, 0};
    size_t left;
    do {
        left = ZSTD_compressStream2(s->z, &s->out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        RETURN_ERROR_IF(ZSTD_isError(left), e, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(left));
        if (s->out.pos) FORWARD_IF_ERROR(s->sink(s->opaque, s->out.dst, s->out.pos, e));
        s->out.pos = 0;
    } while (in.pos < in.size || (end && left));
    return 0;
}

/* Chunks in a batch (one per thread) of nch chunks of cb bytes: 1..MAX_BATCH, no more than there
 * are, and no more than BATCH_BYTES of them, whatever chunk a file declares. */
static int batch_of(int threads, uint64_t nch, uint64_t cb)
{
    uint64_t b = threads < 1 ? 1 : threads > MAX_BATCH ? MAX_BATCH : (uint64_t)threads;
    if (b > nch) b = nch;
    if (b * cb > BATCH_BYTES) b = BATCH_BYTES / cb;
    return b ? (int)b : 1;
}

/* Framed (bit 3): each chunk its own frame, a batch of chunks compressed side by side, each with
 * its own buffers and context (no thread touches another's), then handed to the sink in order. */
typedef struct {
    ZSTD_CCtx *z;
    uint8_t *rb[2], *tmp, *tmp2, *dst;
    size_t dcap, csize;
    int rc;
    ddct_err err;
} enc_slot;

static int raw_stream_frames(const ddct_lossless_in *in, unsigned flags, uint64_t chunk, ddct_sink_fn sink,
                             void *opaque, ddct_err *e)
{
    uint64_t n = in->nbytes, nch = (n + chunk - 1) / chunk;
    int B = batch_of(in->threads, nch, chunk);
    enc_slot sl[MAX_BATCH];
    memset(sl, 0, sizeof sl);
    int rc = 0;
    for (int k = 0; k < B && !rc; k++) {
        enc_slot *t = &sl[k];
        t->z = ZSTD_createCCtx();
        t->dcap = ZSTD_compressBound((size_t)chunk);
        t->dst = malloc(t->dcap);
        t->tmp = malloc((size_t)chunk);
        t->tmp2 = (flags & RAW_XOR) ? malloc((size_t)chunk) : NULL;
        t->rb[0] = in->read ? malloc((size_t)chunk) : NULL;
        t->rb[1] = in->read && (flags & RAW_XOR) ? malloc((size_t)chunk) : NULL;
        if (!t->z || !t->dst || !t->tmp || ((flags & RAW_XOR) && !t->tmp2) || (in->read && !t->rb[0]) ||
            (in->read && (flags & RAW_XOR) && !t->rb[1]))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (zstd stream)");
        size_t r = rc ? 0 : zset(t->z, in->level);
        if (!rc && ZSTD_isError(r)) rc = ddct_seterr(e, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    }
    for (uint64_t c0 = 0; c0 < nch && !rc; c0 += (uint64_t)B) {
        int nb = (int)(nch - c0 < (uint64_t)B ? nch - c0 : (uint64_t)B);
#pragma omp parallel for num_threads(B) schedule(static, 1) if (nb > 1)
        for (int k = 0; k < nb; k++) {
            enc_slot *t = &sl[k];
            uint64_t a = (c0 + (uint64_t)k) * chunk;
            size_t m = (size_t)(n - a < chunk ? n - a : chunk);
            ddct_err_clear(&t->err);
            t->rc = 0;
            const uint8_t *f = in_bytes(in, 0, a, m, t->rb[0], &t->rc, &t->err);
            const uint8_t *b = !t->rc && (flags & RAW_XOR) ? in_bytes(in, 1, a, m, t->rb[1], &t->rc, &t->err) : NULL;
            if (t->rc) continue;
            prepare(f, b, m, in->elsize, flags, t->tmp, t->tmp2);
            size_t r = ZSTD_CCtx_setPledgedSrcSize(t->z, m);
            if (!ZSTD_isError(r)) r = ZSTD_compress2(t->z, t->dst, t->dcap, t->tmp, m);
            if (ZSTD_isError(r)) t->rc = ddct_seterr(&t->err, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
            t->csize = r;
        }
        for (int k = 0; k < nb && !rc; k++) {
            if (sl[k].rc) rc = (*e = sl[k].err).code;
            else rc = sink(opaque, sl[k].dst, sl[k].csize, e);
        }
        if (!rc && in->consumed) {
            uint64_t upto = (c0 + (uint64_t)nb) * chunk;
            in->consumed(in->consumed_opaque, upto < n ? upto : n);
        }
    }
    for (int k = 0; k < B; k++) {
        ZSTD_freeCCtx(sl[k].z);
        free(sl[k].dst);
        free(sl[k].tmp);
        free(sl[k].tmp2);
        free(sl[k].rb[0]);
        free(sl[k].rb[1]);
    }
    return rc;
}

int ddct_raw_stream(const ddct_lossless_in *in, const uint8_t *params, size_t params_len, ddct_sink_fn sink,
                    void *opaque, ddct_err *e)
{
    unsigned flags;
    uint64_t chunk, n = in->nbytes;
    FORWARD_IF_ERROR(parse_params(params, params_len, in->elsize, &flags, &chunk, e));
    RETURN_ERROR_IF(!chunk || ((flags & RAW_XOR) && !in->base), e, DDCT_ERR_INTERNAL, "raw codec: bad parameters");
    if ((flags & RAW_FRAMES) && n > 0) return raw_stream_frames(in, flags, chunk, sink, opaque, e);
    size_t cb = (size_t)(chunk < n ? chunk : (n ? n : 1)), ob = ZSTD_CStreamOutSize();
    zstream s = {.z = ZSTD_createCCtx(), .out = {malloc(ob), ob, 0}, .sink = sink, .opaque = opaque};
    uint8_t *tmp = malloc(cb), *tmp2 = (flags & RAW_XOR) ? malloc(cb) : NULL;
    uint8_t *rb[2] = {in->read ? malloc(cb) : NULL, in->read && (flags & RAW_XOR) ? malloc(cb) : NULL};
    int rc = 0;
    if (!s.z || !s.out.dst || !tmp || ((flags & RAW_XOR) && !tmp2) || (in->read && !rb[0]) ||
        (in->read && (flags & RAW_XOR) && !rb[1]))
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (zstd stream)");
    if (!rc) {
        size_t r = zset(s.z, in->level);
        if (!ZSTD_isError(r) && n > MT_BYTES)
            r = ZSTD_CCtx_setParameter(s.z, ZSTD_c_nbWorkers, in->threads > 1 ? in->threads : 1);
        if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(s.z, n);
        if (ZSTD_isError(r)) rc = ddct_seterr(e, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    }
    for (uint64_t a = 0; !rc && (a < n || a == 0); a += chunk) {
        size_t m = (size_t)(n - a < chunk ? n - a : chunk);
        const uint8_t *f = in_bytes(in, 0, a, m, rb[0], &rc, e);
        const uint8_t *b = !rc && (flags & RAW_XOR) ? in_bytes(in, 1, a, m, rb[1], &rc, e) : NULL;
        if (rc) break;
        prepare(f, b, m, in->elsize, flags, tmp, tmp2);
        rc = zfeed(&s, tmp, m, a + m >= n, e);
        if (in->consumed) in->consumed(in->consumed_opaque, a + m);
        if (n == 0) break;
    }
    ZSTD_freeCCtx(s.z);
    free(s.out.dst);
    free(tmp);
    free(tmp2);
    free(rb[0]);
    free(rb[1]);
    return rc;
}

/* ---------------------------------------------------------------- in-memory interface */

static int buf_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    ddct_buf *b = opaque;
    ddct_buf_put(b, p, n);
    return ddct_buf_check(b, e);
}

static int raw_encode(const ddct_lossless_in *in, ddct_enc_out *out, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_raw_params(in, &out->params, e));
    return ddct_raw_stream(in, out->params.p, out->params.len, buf_sink, &out->data, e);
}

int ddct_mem_sink_write(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    ddct_mem_sink *s = opaque;
    RETURN_ERROR_IF(n > s->n - s->pos, e, DDCT_ERR_FORMAT, "decoded stream longer than the tensor");
    memcpy(s->out + s->pos, p, n);
    s->pos += n;
    return 0;
}

static int raw_decode(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                      ddct_err *e)
{
    ddct_mem_sink s = {out, nbytes, 0};
    ddct_lossless_base b = {.data = base};
    FORWARD_IF_ERROR(ddct_lossless_decode_stream(rec, &b, nbytes, elsize, 1, ddct_mem_sink_write, &s, NULL, e));
    RETURN_ERROR_IF(s.pos != nbytes, e, DDCT_ERR_INTERNAL, "decoded stream shorter than the tensor");
    return 0;
}

/* ---------------------------------------------------------------- streamed decoding */

/* The base of a lossless decode: mapped bytes, the caller's reader and watcher (see
 * ddct_lossless_base), and a chunk buffer. */
typedef struct {
    const uint8_t *p;
    ddct_base_read_fn read;
    void (*seen)(void *opaque, const uint8_t *p, size_t n);
    void *opaque;
    uint8_t *buf;
    int skip_xor; /* checking only (ddct_lossless_check_stream): no base, the xor is left out */
} base_in;

/* The base's bytes [a, a + m): read into b->buf by the reader when there is one, else (or when
 * it says so) where they are mapped; NULL and *rc set when the reader fails. */
static const uint8_t *base_at(const base_in *b, uint64_t a, size_t m, int *rc, ddct_err *e)
{
    if (b->read && b->buf) {
        int r = b->read(b->opaque, a, b->buf, m, e);
        if (r == 0) return b->buf;
        if (r > 0) {
            *rc = r;
            return NULL;
        }
    }
    return b->p + a;
}

/* Undo xor/shuffle on a chunk of m bytes held in z (transformed; xor with the chunk's base bytes
 * bp), then hand it to the sink. */
static int emit(const uint8_t *z, size_t m, size_t es, unsigned flags, const uint8_t *bp, uint8_t *tmp,
                ddct_sink_fn sink, void *opaque, ddct_err *e)
{
    const uint8_t *p = z;
    if (flags & (RAW_SHUFFLE | RAW_XOR)) {
        ddct_unshuffle_xor(z, m, flags & RAW_SHUFFLE ? es : 1, flags & RAW_XOR ? bp : NULL, tmp);
        p = tmp;
    }
    return sink(opaque, p, m, e);
}

/* Fill dst (m bytes) from the frame. */
static int zfill(ZSTD_DCtx *z, ZSTD_inBuffer *in, uint8_t *dst, size_t m, size_t *last, ddct_err *e)
{
    ZSTD_outBuffer out = {dst, m, 0};
    while (out.pos < m) {
        size_t before_in = in->pos, before_out = out.pos;
        size_t r = ZSTD_decompressStream(z, &out, in);
        RETURN_ERROR_IF(ZSTD_isError(r), e, DDCT_ERR_FORMAT, "raw codec: zstd frame corrupt: %s",
                        ZSTD_getErrorName(r));
        *last = r;
        RETURN_ERROR_IF(out.pos < m && (r == 0 || (in->pos == before_in && out.pos == before_out)), e,
                        DDCT_ERR_FORMAT, "raw codec: zstd frame ends early (short output)");
    }
    return 0;
}

/* The frame must end exactly after what was read: no more content, no trailing bytes. */
static int frame_end(ZSTD_DCtx *z, ZSTD_inBuffer *in, size_t last, ddct_err *e)
{
    while (last != 0) {
        uint8_t extra;
        ZSTD_outBuffer out = {&extra, 1, 0};
        size_t before = in->pos;
        last = ZSTD_decompressStream(z, &out, in);
        RETURN_ERROR_IF(ZSTD_isError(last), e, DDCT_ERR_FORMAT, "raw codec: zstd frame corrupt: %s",
                        ZSTD_getErrorName(last));
        RETURN_ERROR_IF(out.pos, e, DDCT_ERR_FORMAT, "raw codec: frame holds more than the tensor's bytes");
        RETURN_ERROR_IF(last && in->pos == before, e, DDCT_ERR_FORMAT, "raw codec: zstd frame truncated");
    }
    RETURN_ERROR_IF(in->pos != in->size, e, DDCT_ERR_FORMAT, "raw codec: %zu stray bytes after the zstd frame",
                    in->size - in->pos);
    return 0;
}

/* Format 1.0 record with a whole-tensor shuffle, streamed. The frame holds byte 0 of every
 * element, then byte 1 of every element, ..., then the tail of nbytes % es bytes; es decoders run
 * through it side by side, decoder k first decoding and dropping the k planes before its own, so
 * each output chunk takes one piece of every plane. Memory: es zstd windows and a few chunks,
 * whatever the tensor's size (a 36 KB record declaring 1 GB of content allocated 1 GB for a
 * tensor-sized buffer); work: (es + 1) / 2 times one pass over the frame. */
static int decode_whole_shuffle(const ddct_record *rec, base_in *base, uint64_t nbytes, size_t es,
                                unsigned flags, ddct_sink_fn sink, void *opaque, ddct_err *e)
{
    uint64_t ne = nbytes / es, tail = nbytes - ne * es;
    const size_t E = DDCT_RAW_CHUNK / es; /* elements per output chunk */
    ZSTD_DCtx *z[8] = {0};
    ZSTD_inBuffer in[8];
    size_t last[8];
    uint8_t *planes = malloc(DDCT_RAW_CHUNK), *out = malloc(DDCT_RAW_CHUNK);
    base->buf = base->read && (flags & RAW_XOR) ? malloc(DDCT_RAW_CHUNK) : NULL;
    int rc = es > 8 || !planes || !out || (base->read && (flags & RAW_XOR) && !base->buf)
                 ? ddct_seterr(e, es > 8 ? DDCT_ERR_FORMAT : DDCT_ERR_NOMEM, "raw codec: %s",
                               es > 8 ? "element size above 8 bytes" : "out of memory")
                 : 0;
    for (size_t k = 0; k < es && !rc; k++) {
        in[k] = (ZSTD_inBuffer){rec->data, rec->data_len, 0};
        last[k] = 1;
        if (!(z[k] = ZSTD_createDCtx())) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (zstd stream)");
        for (uint64_t skip = (uint64_t)k * ne; !rc && skip > 0;) { /* to plane k */
            size_t m = (size_t)(skip < DDCT_RAW_CHUNK ? skip : DDCT_RAW_CHUNK);
            rc = zfill(z[k], &in[k], out, m, &last[k], e);
            skip -= m;
        }
    }
    for (uint64_t e0 = 0; !rc && e0 < ne; e0 += E) {
        size_t m = (size_t)(ne - e0 < E ? ne - e0 : E);
        for (size_t k = 0; k < es && !rc; k++) rc = zfill(z[k], &in[k], planes + k * m, m, &last[k], e);
        const uint8_t *bp = !rc && (flags & RAW_XOR) ? base_at(base, e0 * es, m * es, &rc, e) : NULL;
        if (bp && base->seen) base->seen(base->opaque, bp, m * es);
        if (!rc) {
            ddct_unshuffle_xor(planes, (uint64_t)m * es, es, bp, out);
            rc = sink(opaque, out, m * es, e);
        }
    }
    if (!rc && tail) { /* after the last plane, in the last decoder's stream */
        rc = zfill(z[es - 1], &in[es - 1], planes, (size_t)tail, &last[es - 1], e);
        const uint8_t *bp = !rc && (flags & RAW_XOR) ? base_at(base, ne * es, (size_t)tail, &rc, e) : NULL;
        if (bp && base->seen) base->seen(base->opaque, bp, (size_t)tail);
        for (size_t i = 0; !rc && bp && i < tail; i++) planes[i] ^= bp[i];
        if (!rc) rc = sink(opaque, planes, (size_t)tail, e);
    }
    if (!rc && es) rc = frame_end(z[es - 1], &in[es - 1], last[es - 1], e);
    for (size_t k = 0; k < 8; k++) ZSTD_freeDCtx(z[k]);
    free(planes);
    free(out);
    free(base->buf);
    return rc;
}

/* Framed (bit 3): the frames of a batch of chunks located (their compressed sizes, serially:
 * a walk over block headers), decompressed, unshuffled and xor-ed on their own threads, each with
 * its own buffers, then handed to the sink in order (batch_of bounds the batch's buffers). */
typedef struct {
    ZSTD_DCtx *z;
    uint8_t *zb, *tmp, *bb;
    const uint8_t *src, *outp, *bp;
    size_t slen;
    int rc;
    ddct_err err;
} dec_slot;

static int raw_decode_frames(const ddct_record *rec, const base_in *base, uint64_t nbytes, size_t es, unsigned flags,
                             uint64_t chunk, int threads, ddct_sink_fn sink, void *opaque, ddct_consumed_fn consumed,
                             ddct_err *e)
{
    uint64_t nch = (nbytes + chunk - 1) / chunk, cb = chunk < nbytes ? chunk : nbytes;
    int B = batch_of(threads, nch, cb);
    int xf = (flags & (RAW_SHUFFLE | RAW_XOR)) != 0, rd = base->read && (flags & RAW_XOR);
    dec_slot sl[MAX_BATCH];
    memset(sl, 0, sizeof sl);
    int rc = 0;
    for (int k = 0; k < B && !rc; k++) {
        dec_slot *t = &sl[k];
        t->z = ZSTD_createDCtx();
        t->zb = malloc((size_t)cb);
        t->tmp = xf ? malloc((size_t)cb) : NULL;
        t->bb = rd ? malloc((size_t)cb) : NULL;
        if (!t->z || !t->zb || (xf && !t->tmp) || (rd && !t->bb))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (zstd stream)");
    }
    size_t pos = 0;
    for (uint64_t c0 = 0; c0 < nch && !rc; c0 += (uint64_t)B) {
        int nb = (int)(nch - c0 < (uint64_t)B ? nch - c0 : (uint64_t)B);
        for (int k = 0; k < nb && !rc; k++) {
            size_t fs = ZSTD_findFrameCompressedSize(rec->data + pos, rec->data_len - pos);
            if (ZSTD_isError(fs))
                rc = ddct_seterr(e, DDCT_ERR_FORMAT, "raw codec: zstd frame %llu of %llu (at byte %zu) corrupt: %s",
                                 (unsigned long long)(c0 + (uint64_t)k + 1), (unsigned long long)nch, pos,
                                 ZSTD_getErrorName(fs));
            sl[k].src = rec->data + pos;
            sl[k].slen = ZSTD_isError(fs) ? 0 : fs;
            pos += sl[k].slen;
        }
        if (rc) break;
#pragma omp parallel for num_threads(B) schedule(static, 1) if (nb > 1)
        for (int k = 0; k < nb; k++) {
            dec_slot *t = &sl[k];
            uint64_t a = (c0 + (uint64_t)k) * chunk;
            size_t m = (size_t)(nbytes - a < chunk ? nbytes - a : chunk);
            ddct_err_clear(&t->err);
            t->rc = 0;
            size_t r = ZSTD_decompressDCtx(t->z, t->zb, m, t->src, t->slen);
            if (ZSTD_isError(r) || r != m) {
                t->rc = ZSTD_isError(r) ? ddct_seterr(&t->err, DDCT_ERR_FORMAT, "raw codec: zstd frame %llu corrupt: %s",
                                                      (unsigned long long)(c0 + (uint64_t)k + 1), ZSTD_getErrorName(r))
                                        : ddct_seterr(&t->err, DDCT_ERR_FORMAT,
                                                      "raw codec: zstd frame %llu holds %zu bytes, its chunk %zu",
                                                      (unsigned long long)(c0 + (uint64_t)k + 1), r, m);
                continue;
            }
            base_in b = *base;
            b.buf = t->bb;
            t->bp = (flags & RAW_XOR) ? base_at(&b, a, m, &t->rc, &t->err) : NULL;
            if (t->rc) continue;
            t->outp = t->zb;
            if (xf) {
                ddct_unshuffle_xor(t->zb, m, flags & RAW_SHUFFLE ? es : 1, t->bp, t->tmp);
                t->outp = t->tmp;
            }
        }
        for (int k = 0; k < nb && !rc; k++) {
            uint64_t a = (c0 + (uint64_t)k) * chunk;
            size_t m = (size_t)(nbytes - a < chunk ? nbytes - a : chunk);
            if (sl[k].rc) {
                rc = (*e = sl[k].err).code;
                break;
            }
            if (sl[k].bp && base->seen) base->seen(base->opaque, sl[k].bp, m);
            rc = sink(opaque, sl[k].outp, m, e);
        }
        if (!rc && consumed) {
            uint64_t upto = (c0 + (uint64_t)nb) * chunk;
            consumed(opaque, upto < nbytes ? upto : nbytes, pos);
        }
    }
    if (!rc && pos != rec->data_len)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "raw codec: %zu stray bytes after the last zstd frame",
                         rec->data_len - pos);
    for (int k = 0; k < B; k++) {
        ZSTD_freeDCtx(sl[k].z);
        free(sl[k].zb);
        free(sl[k].tmp);
        free(sl[k].bb);
    }
    return rc;
}

static int raw_decode_stream(const ddct_record *rec, base_in *base, uint64_t nbytes, size_t es, int threads,
                             ddct_sink_fn sink, void *opaque, ddct_consumed_fn consumed, ddct_err *e)
{
    unsigned flags;
    uint64_t chunk;
    RETURN_ERROR_IF(rec->side_len != 0 || es == 0, e, DDCT_ERR_FORMAT, "raw codec: bad parameters");
    FORWARD_IF_ERROR(parse_params(rec->params, rec->params_len, es, &flags, &chunk, e));
    RETURN_ERROR_IF((flags & RAW_XOR) && !base->p && !base->skip_xor, e, DDCT_ERR_FORMAT,
                    "raw codec: xor with a base that is absent");
    if (base->skip_xor) flags &= ~RAW_XOR;
    if ((flags & RAW_FRAMES) && nbytes > 0)
        return raw_decode_frames(rec, base, nbytes, es, flags, chunk, threads, sink, opaque, consumed, e);
    unsigned long long fcs = ZSTD_getFrameContentSize(rec->data, rec->data_len);
    RETURN_ERROR_IF(fcs != nbytes, e, DDCT_ERR_FORMAT, "raw codec: frame holds %llu bytes, the tensor needs %llu",
                    fcs, (unsigned long long)nbytes);
    if (!chunk && (flags & RAW_SHUFFLE)) return decode_whole_shuffle(rec, base, nbytes, es, flags, sink, opaque, e);
    if (!chunk) chunk = DDCT_RAW_CHUNK / es * es; /* no shuffle: any cut works */
    size_t cb = (size_t)(chunk < nbytes ? chunk : (nbytes ? nbytes : 1));
    ZSTD_DCtx *z = ZSTD_createDCtx();
    uint8_t *zb = malloc(cb), *tmp = (flags & (RAW_SHUFFLE | RAW_XOR)) ? malloc(cb) : NULL;
    base->buf = base->read && (flags & RAW_XOR) ? malloc(cb) : NULL;
    int rc = (!z || !zb || ((flags & (RAW_SHUFFLE | RAW_XOR)) && !tmp) || (base->read && (flags & RAW_XOR) && !base->buf))
                 ? ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (zstd stream)")
                 : 0;
    ZSTD_inBuffer in = {rec->data, rec->data_len, 0};
    size_t last = 1;
    for (uint64_t a = 0; !rc && a < nbytes; a += chunk) {
        size_t m = (size_t)(nbytes - a < chunk ? nbytes - a : chunk);
        rc = zfill(z, &in, zb, m, &last, e);
        const uint8_t *bp = !rc && (flags & RAW_XOR) ? base_at(base, a, m, &rc, e) : NULL;
        if (bp && base->seen) base->seen(base->opaque, bp, m);
        if (!rc) rc = emit(zb, m, es, flags, bp, tmp, sink, opaque, e);
        if (!rc && consumed) consumed(opaque, a + m, in.pos);
    }
    /* the frame must end exactly here: no more content, no trailing bytes */
    if (!rc) rc = frame_end(z, &in, last, e);
    ZSTD_freeDCtx(z);
    free(zb);
    free(tmp);
    free(base->buf);
    return rc;
}

static int same_check(const ddct_record *rec, const uint8_t *base, ddct_err *e)
{
    RETURN_ERROR_IF(rec->params_len || rec->side_len || rec->data_len, e, DDCT_ERR_FORMAT,
                    "same codec: unexpected payload");
    RETURN_ERROR_IF(!base, e, DDCT_ERR_FORMAT, "same codec: record has no base");
    return 0;
}

int ddct_lossless_decode_stream(const ddct_record *rec, const ddct_lossless_base *base, uint64_t nbytes, size_t elsize,
                                int threads, ddct_sink_fn sink, void *opaque, ddct_consumed_fn consumed, ddct_err *e)
{
    base_in b = {0};
    if (base && base->data)
        b = (base_in){.p = base->data, .read = base->read, .seen = base->seen, .opaque = base->opaque};
    if (rec->codec == DDCT_CODEC_RAW)
        return raw_decode_stream(rec, &b, nbytes, elsize, threads, sink, opaque, consumed, e);
    RETURN_ERROR_IF(rec->codec != DDCT_CODEC_SAME, e, DDCT_ERR_INTERNAL, "codec %u is not lossless", rec->codec);
    FORWARD_IF_ERROR(same_check(rec, b.p, e));
    b.buf = b.read && nbytes ? malloc(nbytes < DDCT_RAW_CHUNK ? (size_t)nbytes : DDCT_RAW_CHUNK) : NULL;
    RETURN_ERROR_IF(b.read && nbytes && !b.buf, e, DDCT_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (uint64_t a = 0; !rc && a < nbytes; a += DDCT_RAW_CHUNK) {
        uint64_t m = nbytes - a < DDCT_RAW_CHUNK ? nbytes - a : DDCT_RAW_CHUNK;
        const uint8_t *bp = base_at(&b, a, (size_t)m, &rc, e);
        if (!rc && b.seen) b.seen(b.opaque, bp, (size_t)m);
        if (!rc) rc = sink(opaque, bp, (size_t)m, e);
        if (!rc && consumed) consumed(opaque, a + m, 0);
    }
    free(b.buf);
    return rc;
}

int ddct_lossless_check_stream(const ddct_record *rec, uint64_t nbytes, size_t elsize, int threads, ddct_sink_fn sink,
                               void *opaque, ddct_err *e)
{
    if (rec->codec == DDCT_CODEC_SAME) {
        RETURN_ERROR_IF(rec->params_len || rec->side_len || rec->data_len, e, DDCT_ERR_FORMAT,
                        "same codec: unexpected payload");
        RETURN_ERROR_IF(!(rec->flags & DDCT_REC_HAS_BASE), e, DDCT_ERR_FORMAT, "same codec: record has no base");
        return 0;
    }
    RETURN_ERROR_IF(rec->codec != DDCT_CODEC_RAW, e, DDCT_ERR_INTERNAL, "codec %u is not lossless", rec->codec);
    base_in b = {.skip_xor = 1};
    return raw_decode_stream(rec, &b, nbytes, elsize, threads, sink, opaque, NULL, e);
}

static int same_decode(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                       ddct_err *e)
{
    (void)elsize;
    FORWARD_IF_ERROR(same_check(rec, base, e));
    memcpy(out, base, (size_t)nbytes);
    return 0;
}

const ddct_codec_traits ddct_codec_same = {
    .name = "same", .id = DDCT_CODEC_SAME, .lossy = 0, .decode_lossless = same_decode};
const ddct_codec_traits ddct_codec_raw = {
    .name = "raw", .id = DDCT_CODEC_RAW, .lossy = 0, .encode_lossless = raw_encode, .decode_lossless = raw_decode};
