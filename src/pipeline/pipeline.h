/*
 * pipeline.h — internals shared by compress.c, decompress.c and info.c.
 */
#ifndef DDCT_PIPELINE_H
#define DDCT_PIPELINE_H

#include "codec/codec.h"
#include "common/aw.h"
#include "container/container.h"
#include "io/model.h"
#include "io/safetensors.h"
#include <regex.h>

/* Notes of the last call of a context (ddct_CCtx_note, ddct_DCtx_note). */
typedef struct {
    char **v;
    size_t n;
} ddct_notes;
void ddct_notes_clear(ddct_notes *n);
const char *ddct_notes_at(const ddct_notes *n, size_t i);
/* Takes s (NULL: out of memory, the note is lost, as it is when the list cannot grow). */
void ddct_notes_take(ddct_notes *n, char *s);
/* Adds "tensor 'NAME': WHAT". */
void ddct_notes_tensor(ddct_notes *n, const char *name, const char *what);

struct ddct_CCtx_s {
    ddct_err err;
    ddct_progress_fn progress;
    void *progress_opaque;
    ddct_notes notes;
    ddct_params params;            /* ddct_CCtx_setParameter's, for ddct_CCtx_compress */
    char *include_re, *exclude_re; /* owned copies (ddct_CCtx_setSelection) */
};

/* compress's rule of which tensors are lossy, by name (POSIX EREs, case-insensitive): selected
 * when include_regex matches, else when exclude_regex (NULL: the default exclusions of
 * embeddings, heads, classifiers, poolers and norms) does not. */
typedef struct {
    regex_t inc, exc;
    int has_inc;
} ddct_selector;
int ddct_selector_init(ddct_selector *s, const char *include_regex, const char *exclude_regex, ddct_err *e);
void ddct_selector_free(ddct_selector *s);
int ddct_selector_selects(const ddct_selector *s, const char *name);

/* An Info over reader r (owned from here on, closed on failure too); r of an Info. */
int ddct_info_from_reader(ddct_Info **out, ddct_ctr_reader *r, ddct_err *e);
const ddct_ctr_reader *ddct_info_reader(const ddct_Info *info);

/* threads <= 0: every processor. */
int ddct_resolve_threads(int threads);

/* A base opened once (ddct_openBase): the model and its tensors' fingerprints, computed on first
 * use (have[i] set once fp[i] holds it; both accessed atomically). */
struct ddct_Base_s {
    ddct_model *m;
    char *path;
    size_t n;
    uint64_t *fp;
    unsigned char *have;
    size_t computed; /* fingerprints computed (ddct_Base_fingerprinted) */
};
/* The fingerprint of base tensor bi (ddct_base_fingerprint), computed once. */
uint64_t ddct_base_fp_cached(ddct_Base *b, size_t bi);

/* A base tensor (bi of base; DDCT_MODEL_NONE: none) and a record's data (may be NULL) read by a
 * streamed pass, their pages dropped as it goes through them, so even a tensor larger than memory
 * costs a few chunks of resident memory; sink/opaque: where the pass's bytes go. */
typedef struct {
    const ddct_model *base;
    size_t bi;
    const ddct_ctr_reader *r;
    const uint8_t *data;
    ddct_sink_fn sink;
    void *opaque;
    ddct_fp *fp;       /* may be NULL: the base's fingerprint, fed what a decode reads of it */
    uint64_t fp_bytes; /* bytes fed so far */
} ddct_piece;
void ddct_piece_release_base(void *opaque, uint64_t upto);
void ddct_piece_release_both(void *opaque, uint64_t base_upto, uint64_t data_upto);
/* The base's bytes by pread (ddct_base_read_fn): -1 to read the mapping (the file still has its
 * size), DDCT_ERR_IO when it changed. */
int ddct_piece_read_base(void *opaque, uint64_t off, void *buf, size_t n, ddct_err *e);
int ddct_piece_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e);
/* ddct_lossless_base.seen: p[0..n) into fp. */
void ddct_piece_seen(void *opaque, const uint8_t *p, size_t n);

/* ddct_DCtx_setDirectIO's auto mode: rebuilt files with at least this many data bytes are
 * written with O_DIRECT. */
#define DDCT_DIRECT_MIN_BYTES ((uint64_t)64 << 20)

/* The fingerprint of base tensor bi (ddct_tensor_fingerprint_cb), its pages dropped as hashed. */
uint64_t ddct_base_fingerprint(const ddct_model *base, size_t bi);
/* Check base against the records of r (the first failure in record order is reported): every
 * base tensor a record needs is there, with the shape and a float dtype for a lossy record, and
 * (all, or a lossless record whose base tensor has another size than its own) its fingerprint
 * matches, hashed on `threads` threads. The others' fingerprints ddct_decode_stream checks as it
 * reads them. */
int ddct_check_base(const ddct_ctr_reader *r, const ddct_model *base, int threads, int all, ddct_err *e);
/* The same with the fingerprints of a base opened once (cache->m is base; may be NULL). */
int ddct_check_base_cached(const ddct_ctr_reader *r, const ddct_model *base, ddct_Base *cache, int threads, int all,
                           ddct_err *e);


/* State for decoding lossy tensors, reused from one tensor to the next (zero-initialise). With
 * aw, output slices alternate between the two out buffers and are written by aw while the next
 * slice is decoded; the sink given to ddct_decode_stream must then be aw's. */
typedef struct {
    ddct_scratch delta, out[2], braw[2];
    int flip;
    ddct_aw *aw;
} ddct_dec_scratch;

struct ddct_DCtx_s {
    ddct_err err;
    ddct_progress_fn progress;
    void *progress_opaque;
    int threads;
    int rescale;
    int direct; /* ddct_DCtx_setDirectIO */
    int format; /* ddct_DCtx_setFormat */
    ddct_notes notes; /* ddct_DCtx_note: from the last decompress, verify or evaluate */
    ddct_Info *open;   /* ddct_DCtx_open: the .ddct (its reader inside) */
    ddct_model *base;  /* and its base */
    ddct_dec_scratch scratch;
};
void ddct_dec_scratch_free(ddct_dec_scratch *s);
/* Decode record i into out (the tensor's bytes in its dtype; with as_f32, float32). base may be
 * NULL if unused; scratch may be NULL. saturated (may be NULL): how many values of a lossy tensor
 * were saturated (ddct_add_cast). */
int ddct_decode_tensor(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       ddct_dec_scratch *scratch, int as_f32, uint8_t *out, uint64_t *saturated, ddct_err *e);
/* The same, streamed: the tensor's bytes go to sink in order. Memory: one float32 strip per
 * thread and a slice of about 4 Mi output values of a patch record (version 1; older records and
 * other lossy codecs: a float32 copy of the whole tensor); lossless records stream in DDCT_RAW_CHUNK pieces.
 * The base tensor's pages are dropped as they are used, the record's afterwards. scratch may be
 * NULL (buffers for this call only). as_f32: the values as float32 instead of the tensor's dtype
 * (a float tensor's only). */
int ddct_decode_stream(const ddct_ctr_reader *r, size_t i, const ddct_model *base, int threads, int rescale,
                       ddct_dec_scratch *scratch, int as_f32, ddct_sink_fn sink, void *opaque, uint64_t *saturated,
                       ddct_err *e);
/* The note for a lossy tensor rebuilt with n saturated values (ddct_add_cast), or NULL when out
 * of memory: "tensor 'NAME': N rebuilt values beyond the F16 range saturated to +-65504". */
char *ddct_saturation_note(const char *name, ddct_dtype dt, uint64_t n);

#endif
