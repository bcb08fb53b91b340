/*
 * codec_raw.c — lossless tensors.
 *
 * SAME: the tensor equals the base tensor (checked by fingerprint at decode); no payload.
 * RAW:  params = u8 flags (bit 0: bytes xor-ed with the base's, bit 1: byte-shuffled, i.e.
 *       byte k of every element stored together, as blosc/HDF5 do), data = one zstd frame of
 *       the transformed bytes. The encoder tries the variants and keeps the smallest; above
 *       SAMPLE_BYTES it decides on a sample at level 1 to bound the time.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "codec.h"

#define RAW_XOR 1u
#define RAW_SHUFFLE 2u
#define SAMPLE_BYTES (4u << 20)

static void shuffle(const uint8_t *in, uint64_t n, size_t es, uint8_t *out)
{
    uint64_t ne = n / es;
    for (size_t k = 0; k < es; k++)
        for (uint64_t i = 0; i < ne; i++) out[k * ne + i] = in[i * es + k];
    memcpy(out + ne * es, in + ne * es, (size_t)(n - ne * es));
}

static void unshuffle(const uint8_t *in, uint64_t n, size_t es, uint8_t *out)
{
    uint64_t ne = n / es;
    for (size_t k = 0; k < es; k++)
        for (uint64_t i = 0; i < ne; i++) out[i * es + k] = in[k * ne + i];
    memcpy(out + ne * es, in + ne * es, (size_t)(n - ne * es));
}

/* Transform ft (and base) by flags into tmp. */
static void prepare(const uint8_t *ft, const uint8_t *base, uint64_t n, size_t es, unsigned flags, uint8_t *tmp,
                    uint8_t *tmp2)
{
    const uint8_t *src = ft;
    if (flags & RAW_XOR) {
        for (uint64_t i = 0; i < n; i++) tmp2[i] = ft[i] ^ base[i];
        src = tmp2;
    }
    if (flags & RAW_SHUFFLE) shuffle(src, n, es, tmp);
    else memcpy(tmp, src, (size_t)n);
}

/* Compress src into out (appended). nbWorkers >= 1 keeps the frame identical for any thread count. */
static int zcompress(const uint8_t *src, uint64_t n, int level, int threads, ddct_buf *out, size_t *csize, ddct_err *e)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    RETURN_ERROR_IF(!z, e, DDCT_ERR_NOMEM, "out of memory (zstd)");
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0);
    if (n > (8u << 20)) ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, threads > 1 ? threads : 1);
    size_t bound = ZSTD_compressBound((size_t)n);
    if (ddct_buf_reserve(out, bound)) {
        ZSTD_freeCCtx(z);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "out of memory (%zu bytes)", bound);
    }
    size_t r = ZSTD_compress2(z, out->p + out->len, bound, src, (size_t)n);
    ZSTD_freeCCtx(z);
    RETURN_ERROR_IF(ZSTD_isError(r), e, DDCT_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
    *csize = r;
    return 0;
}

static int raw_encode(const ddct_lossless_in *in, ddct_enc_out *out, ddct_err *e)
{
    uint64_t n = in->nbytes;
    uint8_t *tmp = malloc(n ? (size_t)n : 1), *tmp2 = in->base ? malloc(n ? (size_t)n : 1) : NULL;
    int rc = 0;
    if (!tmp || (in->base && !tmp2)) {
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory (%llu bytes)", (unsigned long long)n);
        goto done;
    }
    /* choose the variant */
    unsigned best = 0;
    size_t best_size = SIZE_MAX;
    uint64_t sample = n > SAMPLE_BYTES ? SAMPLE_BYTES / in->elsize * in->elsize : n;
    int slevel = n > SAMPLE_BYTES ? 1 : in->level;
    ddct_buf scratch;
    ddct_buf_init(&scratch);
    for (unsigned flags = 0; flags < 4 && !rc; flags++) {
        if ((flags & RAW_XOR) && !in->base) continue;
        if ((flags & RAW_SHUFFLE) && in->elsize < 2) continue;
        prepare(in->ft, in->base, sample, in->elsize, flags, tmp, tmp2);
        size_t cs = 0;
        scratch.len = 0;
        rc = zcompress(tmp, sample, slevel, 1, &scratch, &cs, e);
        if (!rc && cs < best_size) {
            best_size = cs;
            best = flags;
        }
    }
    ddct_buf_free(&scratch);
    if (rc) goto done;
    prepare(in->ft, in->base, n, in->elsize, best, tmp, tmp2);
    size_t cs = 0;
    rc = zcompress(tmp, n, in->level, in->threads, &out->data, &cs, e);
    if (!rc) {
        out->data.len += cs;
        ddct_buf_u8(&out->params, (uint8_t)best);
    }
done:
    free(tmp);
    free(tmp2);
    return rc;
}

static int raw_decode(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                      ddct_err *e)
{
    RETURN_ERROR_IF(rec->params_len != 1 || rec->side_len != 0, e, DDCT_ERR_FORMAT, "raw codec: bad parameters");
    unsigned flags = rec->params[0];
    RETURN_ERROR_IF(flags > 3, e, DDCT_ERR_FORMAT, "raw codec: unknown flags 0x%x", flags);
    RETURN_ERROR_IF((flags & RAW_XOR) && !base, e, DDCT_ERR_FORMAT, "raw codec: xor with a base that is absent");
    unsigned long long fcs = ZSTD_getFrameContentSize(rec->data, rec->data_len);
    RETURN_ERROR_IF(fcs != nbytes, e, DDCT_ERR_FORMAT, "raw codec: frame holds %llu bytes, the tensor needs %llu",
                    fcs, (unsigned long long)nbytes);
    uint8_t *tmp = (flags & RAW_SHUFFLE) ? malloc(nbytes ? (size_t)nbytes : 1) : out;
    RETURN_ERROR_IF(!tmp, e, DDCT_ERR_NOMEM, "out of memory");
    size_t r = ZSTD_decompress(tmp, (size_t)nbytes, rec->data, rec->data_len);
    int rc = 0;
    if (ZSTD_isError(r) || r != nbytes) {
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "raw codec: zstd frame corrupt: %s",
                         ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short output");
    } else if (flags & RAW_SHUFFLE) {
        unshuffle(tmp, nbytes, elsize, out);
    }
    if (tmp != out) free(tmp);
    if (!rc && (flags & RAW_XOR))
        for (uint64_t i = 0; i < nbytes; i++) out[i] ^= base[i];
    return rc;
}

static int same_decode(const ddct_record *rec, const uint8_t *base, uint64_t nbytes, size_t elsize, uint8_t *out,
                       ddct_err *e)
{
    (void)elsize;
    RETURN_ERROR_IF(rec->params_len || rec->side_len || rec->data_len, e, DDCT_ERR_FORMAT,
                    "same codec: unexpected payload");
    RETURN_ERROR_IF(!base, e, DDCT_ERR_FORMAT, "same codec: record has no base");
    memcpy(out, base, (size_t)nbytes);
    return 0;
}

const ddct_codec_traits ddct_codec_same = {
    .name = "same", .id = DDCT_CODEC_SAME, .lossy = 0, .decode_lossless = same_decode};
const ddct_codec_traits ddct_codec_raw = {
    .name = "raw", .id = DDCT_CODEC_RAW, .lossy = 0, .encode_lossless = raw_encode, .decode_lossless = raw_decode};
