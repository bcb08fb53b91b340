/*
 * codec_bitdelta.c — BitDelta-Initial (Liu et al. 2024, "BitDelta: Your Fine-Tune May Only
 * Be Worth One Bit"), without the scale distillation step:
 *
 *     delta^ = sign(delta) * alpha,   alpha = mean |delta| over the whole tensor,
 *
 * with sign(0) = sign(-0) = +. alpha minimizes ||delta - alpha * sign(delta)||_2 over alpha.
 *
 * Streams (sizes are checked exactly at decode):
 *   params: u8 version(0)  f32 alpha (finite, >= 0)
 *   side:   empty
 *   data:   ceil(n / 8) bytes; value i is bit (i % 8) of byte i / 8 (LSB-first, as quant.h's
 *           bit writer), 1 = negative. The padding bits of the last byte must be 0.
 *
 * Rescale: mean |delta^| = alpha = mean |delta| by construction, so the rebuild's rescale is the
 * identity; no flag is stored and the decoder's rescale argument (-1/0/1) changes nothing.
 *
 * Threads: encode and decode work on whole bytes (chunks of 8 values) in a static OpenMP loop;
 * every byte depends only on its own 8 values and alpha (ddct_mean_abs sums in fixed blocks), so
 * the output is byte-identical for any thread count.
 */
#include <math.h>
#include <string.h>

#include "codec.h"

#define BITDELTA_VERSION 0
#define PAR_MIN_BYTES 65536 /* below this, one thread */

static int nthreads(int t) { return t > 0 ? t : 1; }

static int bitdelta_encode_array(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    uint64_t n = in->nelem;
    int threads = nthreads(in->threads);
    RETURN_ERROR_IF(n && !in->delta, e, DDCT_ERR_INTERNAL, "bitdelta codec: no input");
    double mean = ddct_mean_abs(in->delta, n, threads);
    float alpha = (float)mean;
    RETURN_ERROR_IF(!isfinite(alpha) || alpha < 0, e, DDCT_ERR_PARAM,
                    "bitdelta codec: mean |delta| is not finite in float");
    uint64_t nbytes = (n + 7) / 8;
    ddct_buf_u8(&out->params, BITDELTA_VERSION);
    ddct_buf_f32(&out->params, alpha);
    if (nbytes == 0) return 0;
    RETURN_ERROR_IF(ddct_buf_reserve(&out->data, (size_t)nbytes), e, DDCT_ERR_NOMEM,
                    "bitdelta codec: out of memory (%llu bytes)", (unsigned long long)nbytes);
    uint8_t *dst = out->data.p + out->data.len;
    const float *x = in->delta;
#pragma omp parallel for num_threads(threads) schedule(static) if (nbytes >= PAR_MIN_BYTES)
    for (uint64_t b = 0; b < nbytes; b++) {
        uint64_t i0 = b * 8, cnt = n - i0 < 8 ? n - i0 : 8;
        unsigned byte = 0;
        for (uint64_t k = 0; k < cnt; k++) byte |= (unsigned)(x[i0 + k] < 0.0f) << k;
        dst[b] = (uint8_t)byte;
    }
    out->data.len += (size_t)nbytes;
    return 0;
}

static int bitdelta_decode(const ddct_record *rec, uint64_t n, int threads, int rescale, float *out, ddct_err *e)
{
    (void)rescale; /* identity by construction: see the file comment */
    threads = nthreads(threads);
    ddct_rd r;
    ddct_rd_init(&r, rec->params, rec->params_len);
    int ver = ddct_rd_u8(&r);
    float alpha = ddct_rd_f32(&r);
    RETURN_ERROR_IF(r.failed, e, DDCT_ERR_FORMAT, "bitdelta codec: parameters truncated");
    RETURN_ERROR_IF(ver != BITDELTA_VERSION, e, DDCT_ERR_UNSUPPORTED, "bitdelta codec: parameter version %d unknown",
                    ver);
    RETURN_ERROR_IF(r.pos != r.len, e, DDCT_ERR_FORMAT, "bitdelta codec: parameter length %zu, expected 5",
                    rec->params_len);
    RETURN_ERROR_IF(!isfinite(alpha) || !(alpha >= 0), e, DDCT_ERR_FORMAT, "bitdelta codec: bad scale");
    uint64_t nbytes = (n + 7) / 8;
    RETURN_ERROR_IF(rec->side_len != 0 || (uint64_t)rec->data_len != nbytes, e, DDCT_ERR_FORMAT,
                    "bitdelta codec: stream sizes %zu/%zu, expected 0/%llu", rec->side_len, rec->data_len,
                    (unsigned long long)nbytes);
    if (n % 8)
        RETURN_ERROR_IF(rec->data[nbytes - 1] >> (n % 8), e, DDCT_ERR_FORMAT,
                        "bitdelta codec: padding bits are not zero");
    const uint8_t *src = rec->data;
    float pos = alpha, neg = -alpha;
#pragma omp parallel for num_threads(threads) schedule(static) if (nbytes >= PAR_MIN_BYTES)
    for (uint64_t b = 0; b < nbytes; b++) {
        uint64_t i0 = b * 8, cnt = n - i0 < 8 ? n - i0 : 8;
        unsigned byte = src[b];
        for (uint64_t k = 0; k < cnt; k++) out[i0 + k] = (byte >> k) & 1u ? neg : pos;
    }
    return 0;
}

static int bitdelta_encode(const ddct_lossy_in *in, ddct_enc_out *out, ddct_err *e)
{
    return ddct_encode_whole(bitdelta_encode_array, in, out, e);
}

static int bitdelta_decode_stream(const ddct_record *rec, uint64_t n, int threads, int rescale, ddct_scratch *scr,
                             const ddct_delta_out *out, ddct_err *e)
{
    return ddct_decode_stream_whole(&ddct_codec_bitdelta, rec, n, threads, rescale, scr, out, e);
}

const ddct_codec_traits ddct_codec_bitdelta = {.name = "bitdelta",
                                               .id = DDCT_CODEC_BITDELTA,
                                               .lossy = 1,
                                               .encode_lossy = bitdelta_encode,
                                               .decode_lossy = bitdelta_decode,
    .decode_stream = bitdelta_decode_stream};
