/*
 * tensors.c — a .ddct opened against its base once, then tensors rebuilt one at a time into a
 * caller's buffer (deltadct.h, "tensors one at a time"): the in-memory side of decompress.
 *
 * Opening validates the container (as every reader does) and looks up every base tensor a record
 * needs (present; of the record's shape and a float dtype for a lossy record); base fingerprints
 * are checked as each tensor is decoded (ddct_decode_stream), those of base tensors no decode
 * reads when opened (ddct_check_base). A decode is ddct_decode_stream into the caller's buffer,
 * with the DCtx's threads and rescale and its reused working buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "pipeline.h"

void ddct_DCtx_close(ddct_DCtx *d)
{
    if (!d) return;
    ddct_freeInfo(d->open);
    ddct_model_close(d->base);
    ddct_dec_scratch_free(&d->scratch);
    d->open = NULL;
    d->base = NULL;
}

/* r (owned) against the base at base_path. */
static ddct_ErrorCode open_reader(ddct_DCtx *d, ddct_ctr_reader *r, const char *base_path)
{
    ddct_err *e = &d->err;
    int rc = ddct_info_from_reader(&d->open, r, e);
    if (!rc && (!base_path || !*base_path)) rc = ddct_seterr(e, DDCT_ERR_PARAM, "no base model given");
    if (!rc) rc = ddct_model_open(&d->base, base_path, e);
    if (!rc) rc = ddct_check_base(ddct_info_reader(d->open), d->base, ddct_resolve_threads(d->threads), 0, e);
    if (rc) ddct_DCtx_close(d);
    return (ddct_ErrorCode)rc;
}

ddct_ErrorCode ddct_DCtx_open(ddct_DCtx *d, const char *ddct_path, const char *base_path)
{
    ddct_DCtx_close(d);
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    RETURN_ERROR_IF(!ddct_path || !*ddct_path, &d->err, DDCT_ERR_PARAM, "no .ddct path given");
    ddct_ctr_reader *r = NULL;
    int rc = ddct_ctr_open(&r, ddct_path, &d->err);
    return rc ? (ddct_ErrorCode)rc : open_reader(d, r, base_path);
}

ddct_ErrorCode ddct_DCtx_openBuffer(ddct_DCtx *d, const void *ddct, size_t size, const char *base_path)
{
    ddct_DCtx_close(d);
    ddct_err_clear(&d->err);
    ddct_notes_clear(&d->notes);
    RETURN_ERROR_IF(!ddct && size, &d->err, DDCT_ERR_PARAM, "no buffer given");
    ddct_ctr_reader *r = NULL;
    int rc = ddct_ctr_open_mem(&r, ddct ? ddct : "", size, "(.ddct in memory)", &d->err);
    return rc ? (ddct_ErrorCode)rc : open_reader(d, r, base_path);
}

const ddct_Info *ddct_DCtx_info(const ddct_DCtx *d) { return d ? d->open : NULL; }

uint64_t ddct_DCtx_tensorBytes(const ddct_DCtx *d, size_t i, ddct_tensor_format fmt)
{
    const ddct_ctr_entry *en = d && d->open ? ddct_ctr_entry_at(ddct_info_reader(d->open), i) : NULL;
    if (!en || i >= ddct_Info_count(d->open)) return 0; /* carried files' records are not tensors */
    if (fmt == DDCT_AS_STORED) return en->nelem * ddct_dtype_size(en->dtype);
    if (fmt == DDCT_AS_F32 && ddct_dtype_is_lossy_float(en->dtype)) return en->nelem * sizeof(float);
    return 0;
}

ddct_ErrorCode ddct_DCtx_decodeTensor(ddct_DCtx *d, size_t i, void *dst, size_t capacity, ddct_tensor_format fmt)
{
    ddct_err *e = &d->err;
    ddct_err_clear(e);
    ddct_notes_clear(&d->notes);
    RETURN_ERROR_IF(!d->open, e, DDCT_ERR_PARAM, "no .ddct open (ddct_DCtx_open)");
    const ddct_Info *info = d->open;
    RETURN_ERROR_IF(i >= ddct_Info_count(info), e, DDCT_ERR_PARAM, "tensor %zu of %zu: no such tensor", i,
                    ddct_Info_count(info));
    const ddct_ctr_reader *r = ddct_info_reader(info);
    const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
    RETURN_ERROR_IF(fmt != DDCT_AS_STORED && fmt != DDCT_AS_F32, e, DDCT_ERR_PARAM, "tensor '%s': unknown format %d",
                    en->name, (int)fmt);
    uint64_t need = ddct_DCtx_tensorBytes(d, i, fmt);
    RETURN_ERROR_IF(fmt == DDCT_AS_F32 && !need && en->nelem, e, DDCT_ERR_PARAM,
                    "tensor '%s' is %s, not a float tensor: it has no float32 form", en->name,
                    ddct_dtype_name(en->dtype));
    RETURN_ERROR_IF(capacity < need, e, DDCT_ERR_PARAM,
                    "tensor '%s' takes %llu bytes as %s; the buffer holds %zu", en->name, (unsigned long long)need,
                    fmt == DDCT_AS_F32 ? "F32" : ddct_dtype_name(en->dtype), capacity);
    RETURN_ERROR_IF(!dst && need, e, DDCT_ERR_PARAM, "tensor '%s': no buffer given", en->name);
    uint64_t sat = 0;
    int rc = ddct_decode_tensor(r, i, d->base, ddct_resolve_threads(d->threads), d->rescale, &d->scratch,
                                fmt == DDCT_AS_F32, dst, &sat, e);
    if (!rc && sat)
        ddct_notes_take(&d->notes, ddct_saturation_note(en->name, en->dtype, sat));
    return (ddct_ErrorCode)rc;
}
