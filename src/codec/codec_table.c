/* codec_table.c — id -> codec traits. */
#include "codec.h"

#include <stdlib.h>

const ddct_codec_traits *ddct_codec_get(unsigned id)
{
    static const ddct_codec_traits *const table[DDCT_CODEC_MAX] = {
        [DDCT_CODEC_SAME] = &ddct_codec_same,
        [DDCT_CODEC_RAW] = &ddct_codec_raw,
        [DDCT_CODEC_PATCH] = &ddct_codec_patch,
        [DDCT_CODEC_BITDELTA] = &ddct_codec_bitdelta,
        [DDCT_CODEC_SVD] = &ddct_codec_svd,
        [DDCT_CODEC_RD] = &ddct_codec_rd,
    };
    return id < DDCT_CODEC_MAX ? table[id] : NULL;
}

const ddct_codec_traits *ddct_codec_for_method(ddct_method m)
{
    static const ddct_codec_traits *const table[DDCT_METHOD_COUNT] = {
        [DDCT_METHOD_PATCH] = &ddct_codec_patch,
        [DDCT_METHOD_BITDELTA] = &ddct_codec_bitdelta,
        [DDCT_METHOD_SVD] = &ddct_codec_svd,
        [DDCT_METHOD_RD] = &ddct_codec_rd,
    };
    return (unsigned)m < DDCT_METHOD_COUNT ? table[m] : NULL;
}

void ddct_enc_out_init(ddct_enc_out *o)
{
    ddct_buf_init(&o->params);
    ddct_buf_init(&o->side);
    ddct_buf_init(&o->data);
}

void ddct_enc_out_free(ddct_enc_out *o)
{
    ddct_buf_free(&o->params);
    ddct_buf_free(&o->side);
    ddct_buf_free(&o->data);
}

int ddct_enc_out_check(const ddct_enc_out *o, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_buf_check(&o->params, e));
    FORWARD_IF_ERROR(ddct_buf_check(&o->side, e));
    return ddct_buf_check(&o->data, e);
}
