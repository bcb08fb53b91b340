/*
 * base.c — a base model opened once for many fine-tunes (ddct_openBase, deltadct.h).
 *
 * Compressing N fine-tunes of one base with ddct_compressFiles opens the base N times (every
 * shard's safetensors header parsed and checked, the directory resolved) and fingerprints each of
 * its tensors N times: a full read of the base per fine-tune. A ddct_Base keeps the opened model
 * and each tensor's fingerprint from the first call that needs it, so the base is read once per
 * process; compress (ddct_compressWithBase) and the quick verify (ddct_verifyWithBase) take it.
 * The bytes written are those of ddct_compressFiles: the fingerprints are the same numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

ddct_ErrorCode ddct_openBase(ddct_Base **out, const char *base_path, char *err, size_t errlen)
{
    ddct_err e;
    ddct_err_clear(&e);
    int rc = 0;
    ddct_Base *b = NULL;
    if (!out) rc = ddct_seterr(&e, DDCT_ERR_PARAM, "no handle given");
    else *out = NULL;
    if (!rc && !base_path) rc = ddct_seterr(&e, DDCT_ERR_PARAM, "no base path given");
    if (!rc && !(b = calloc(1, sizeof *b))) rc = ddct_seterr(&e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) rc = ddct_model_open(&b->m, base_path, &e);
    if (!rc) {
        b->n = ddct_model_count(b->m);
        b->path = strdup(base_path);
        b->fp = calloc(b->n ? b->n : 1, sizeof *b->fp);
        b->have = calloc(b->n ? b->n : 1, 1);
        if (!b->path || !b->fp || !b->have) rc = ddct_seterr(&e, DDCT_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        ddct_freeBase(b);
        if (err && errlen) snprintf(err, errlen, "%s", e.msg);
        return (ddct_ErrorCode)rc;
    }
    *out = b;
    return DDCT_OK;
}

void ddct_freeBase(ddct_Base *b)
{
    if (!b) return;
    ddct_model_close(b->m);
    free(b->path);
    free(b->fp);
    free(b->have);
    free(b);
}

const char *ddct_Base_path(const ddct_Base *b) { return b ? b->path : NULL; }

size_t ddct_Base_fingerprinted(const ddct_Base *b) { return b ? __atomic_load_n(&b->computed, __ATOMIC_RELAXED) : 0; }

uint64_t ddct_base_fp_cached(ddct_Base *b, size_t bi)
{
    if (__atomic_load_n(&b->have[bi], __ATOMIC_ACQUIRE)) return __atomic_load_n(&b->fp[bi], __ATOMIC_RELAXED);
    uint64_t fp = ddct_base_fingerprint(b->m, bi);
    __atomic_add_fetch(&b->computed, 1, __ATOMIC_RELAXED);
    /* 0: the file changed size and was not read (the caller reports it); not kept */
    if (fp == 0 && ddct_model_check(b->m, bi, NULL)) return 0;
    __atomic_store_n(&b->fp[bi], fp, __ATOMIC_RELAXED);
    __atomic_store_n(&b->have[bi], 1, __ATOMIC_RELEASE);
    return fp;
}
