/*
 * ggufio.h — GGUF files as model shards: the reader's tensors as a tensor file (io/safetensors.h's
 * ddct_st_file), the layout that writes them back, and that writer as a stream of records.
 *
 * A GGUF file (io/gguf.h) is read as these tensors, in this order:
 *   1. DDCT_GGUF_KV_NAME, dtype U8, shape [bytes]: the key/value section verbatim (everything
 *      between the 24-byte file header and the first tensor info): stored losslessly, and against
 *      the base's own when the base is GGUF too (metadata usually differ little or not at all);
 *   2. the tensors in data order (by offset; ties in header order): F32, F16 and BF16 (and F64,
 *      I8..I64) as those dtypes with the row-major shape (ne reversed), so the lossy codecs see
 *      the matrices safetensors would hold; every quantized type (Q8_0, Q4_K, ...) as U8 of its
 *      byte count: stored losslessly, bit-exact.
 * The layout ("gguf" object of a shard) keeps the version, the KV count, the file's size and
 * the tensor infos in header order (name, ggml type, ne, offset); with the KV record the writer
 * rebuilds the header byte for byte and puts each tensor at its offset, zeros in every gap.
 * A fine-tune whose gaps (alignment padding) are not all zeros is refused: they would not be
 * rebuilt. A GGUF file holding a tensor named DDCT_GGUF_KV_NAME is refused.
 */
#ifndef DDCT_GGUFIO_H
#define DDCT_GGUFIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error_private.h"
#include "common/mapfile.h"
#include "io/safetensors.h"

#define DDCT_GGUF_KV_NAME "__gguf_kv_section__"

/* 1 if the bytes start with the GGUF magic. */
int ddct_ggio_sniff(const uint8_t *p, uint64_t size);
/* Open path (map already open on it, taken over). */
int ddct_ggio_open(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e);
/* The "gguf" layout object of an open file (a new reference), NULL when out of memory. */
json_t *ddct_ggio_layout(const ddct_st_file *f);
/* What cannot be written back (a fine-tune's non-zero padding): 0 or DDCT_ERR_UNSUPPORTED. */
int ddct_ggio_writable(const ddct_st_file *f, ddct_err *e);

typedef struct ddct_ggio_writer ddct_ggio_writer;
/* layout: a "gguf" object (checked); records: the records that follow (the KV section, then the
 * tensors in data order, as the reader lists them). The file is created when the KV section's
 * bytes are in. inputs: see ddct_ofile_open (kept, not copied). */
int ddct_ggio_wopen(ddct_ggio_writer **out, const char *path, int overwrite, const char *const *inputs,
                    const json_t *layout, const ddct_st_entry *records, size_t n, ddct_err *e);
uint64_t ddct_ggio_data_bytes(const ddct_ggio_writer *w);
int ddct_ggio_write(ddct_ggio_writer *w, const void *p, size_t n, ddct_err *e);
int ddct_ggio_commit(ddct_ggio_writer *w, ddct_err *e); /* frees w */
void ddct_ggio_abort(ddct_ggio_writer *w);              /* frees w; NULL ok */

#endif
