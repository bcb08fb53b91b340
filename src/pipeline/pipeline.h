/*
 * pipeline.h — internals shared by compress.c, decompress.c and info.c.
 */
#ifndef DDCT_PIPELINE_H
#define DDCT_PIPELINE_H

#include "codec/codec.h"
#include "container/container.h"
#include "io/model.h"
#include "io/safetensors.h"

struct ddct_CCtx_s {
    ddct_err err;
    ddct_progress_fn progress;
    void *progress_opaque;
    char **notes;
    size_t nnotes;
};

struct ddct_DCtx_s {
    ddct_err err;
    ddct_progress_fn progress;
    void *progress_opaque;
    int threads;
    int rescale;
};

int ddct_resolve_threads(int threads);

/* Check the base fingerprints of every record of r against base (first mismatch fails). */
int ddct_check_base(const ddct_ctr_reader *r, const ddct_model *base, ddct_err *e);
/* Decode record i into out (the tensor's bytes in its dtype). base may be NULL if unused. */
int ddct_decode_tensor(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       uint8_t *out, ddct_err *e);
/* Buffers for decoding lossy tensors, reused from one tensor to the next (zero-initialise). */
typedef struct {
    ddct_scratch delta, out;
} ddct_dec_scratch;
void ddct_dec_scratch_free(ddct_dec_scratch *s);
/* The same, streamed: the tensor's bytes go to sink in order. Memory: a slice of about 4 Mi
 * float32 values of a patch record (version 1; older records and other lossy codecs: the whole
 * tensor) plus a 1 Mi-element output piece; lossless records stream in DDCT_RAW_CHUNK pieces.
 * The base tensor's pages are dropped as they are used, the record's afterwards. scratch may be
 * NULL (buffers for this call only). */
int ddct_decode_stream(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       ddct_dec_scratch *scratch, ddct_sink_fn sink, void *opaque, ddct_err *e);

#endif
