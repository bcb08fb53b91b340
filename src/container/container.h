/*
 * container.h — the .ddct container: header, tensor records, index, footer.
 * docs/FORMAT.md is the normative specification; this is its implementation.
 *
 *   file   := header record* index footer
 *   header := magic[8] u16 major u16 minor u32 flags u32 json_len json[json_len] u64 xxh3(header so far)
 *   record := u8 codec u8 flags [u64 base_fp if flags&1]
 *             varint params_len params  varint side_len side  varint data_len data
 *             u64 xxh3(record so far)
 *   index  := varint count, count x entry, where
 *   entry  := varint name_len name u8 dtype u8 ndim varint dim[ndim] varint offset varint length
 *   footer := u64 index_offset u64 index_len u64 xxh3(index) u64 count u64 xxh3(footer so far) magic_end[8]
 *
 * The reader maps the file and checks, before any use: footer magic and checksum, index
 * bounds and checksum, that records tile [end of header, index) exactly in index order,
 * every length against what is left. Record checksums are checked when a record is read.
 */
#ifndef DDCT_CONTAINER_H
#define DDCT_CONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/dtype.h"
#include "common/error_private.h"
#include "io/safetensors.h"

#define DDCT_FORMAT_MAJOR 1
#define DDCT_FORMAT_MINOR 1 /* 1.1: "layout", carried files, chunked raw records */
#define DDCT_FOOTER_SIZE 48
#define DDCT_REC_HAS_BASE 1u

/* Codec ids (stable: stored in files). */
enum {
    DDCT_CODEC_SAME = 0,     /* equal to the base tensor; no payload */
    DDCT_CODEC_RAW = 1,      /* lossless: optional xor with base, optional byte shuffle, zstd */
    DDCT_CODEC_PATCH = 2,    /* Delta-DCT family: patches, transform, mixed-precision quantization */
    DDCT_CODEC_BITDELTA = 3, /* sign(delta) * scale */
    DDCT_CODEC_SVD = 4,      /* quantized truncated SVD */
    DDCT_CODEC_RD = 5,       /* rate-distortion hybrid: low-rank + transform residual, rANS-coded */
    DDCT_CODEC_MAX = 32
};

typedef struct {
    char *name;
    ddct_dtype dtype;
    int ndim;
    uint64_t shape[DDCT_MAX_DIMS];
    uint64_t nelem;
    uint64_t offset, length; /* record position in the file */
} ddct_ctr_entry;

typedef struct {
    uint8_t codec;
    uint8_t flags;
    uint64_t base_fp;
    const uint8_t *params;
    size_t params_len;
    const uint8_t *side;
    size_t side_len;
    const uint8_t *data;
    size_t data_len;
} ddct_record;

/* ------------------------------------------------------------ writer */
typedef struct ddct_ctr_writer ddct_ctr_writer;
int ddct_ctrw_open(ddct_ctr_writer **out, const char *path, int overwrite, const char *const *inputs,
                   const char *header_json, ddct_err *e);
/* Append one record; entry gives name/dtype/shape (offset/length are filled in). */
int ddct_ctrw_add(ddct_ctr_writer *w, const ddct_ctr_entry *entry, const ddct_record *rec, ddct_err *e);
/* Streamed record, for payloads too large to hold in memory: begin writes the record up to its
 * data, with the data length as a varint padded to the width of data_bound (readers accept
 * non-minimal varints); data appends the next bytes; end patches the length in and appends
 * the checksum (read back from the output file). head's data/data_len are ignored. */
int ddct_ctrw_begin(ddct_ctr_writer *w, const ddct_ctr_entry *entry, const ddct_record *head, uint64_t data_bound,
                    ddct_err *e);
int ddct_ctrw_data(ddct_ctr_writer *w, const void *p, size_t n, ddct_err *e);
int ddct_ctrw_end(ddct_ctr_writer *w, ddct_err *e);
int ddct_ctrw_commit(ddct_ctr_writer *w, ddct_err *e); /* writes index + footer, renames; frees w */
void ddct_ctrw_abort(ddct_ctr_writer *w);

/* Bytes of a serialized record with these stream lengths (what `info` counts for a tensor),
 * so codecs can hold a size budget exactly. */
uint64_t ddct_record_size(int has_base, uint64_t params_len, uint64_t side_len, uint64_t data_len);

/* ------------------------------------------------------------ reader */
typedef struct ddct_ctr_reader ddct_ctr_reader;
int ddct_ctr_open(ddct_ctr_reader **out, const char *path, ddct_err *e);
/* Open from memory (not copied; must outlive the reader). name is used in messages. */
int ddct_ctr_open_mem(ddct_ctr_reader **out, const void *p, size_t len, const char *name, ddct_err *e);
void ddct_ctr_close(ddct_ctr_reader *r);
const char *ddct_ctr_path(const ddct_ctr_reader *r);
uint64_t ddct_ctr_file_size(const ddct_ctr_reader *r);
uint64_t ddct_ctr_header_size(const ddct_ctr_reader *r);
uint64_t ddct_ctr_index_size(const ddct_ctr_reader *r);
const char *ddct_ctr_header_json(const ddct_ctr_reader *r); /* NUL-terminated copy */
size_t ddct_ctr_count(const ddct_ctr_reader *r);
const ddct_ctr_entry *ddct_ctr_entry_at(const ddct_ctr_reader *r, size_t i);
/* 1 if p[0..n) starts with the .ddct magic. */
int ddct_ctr_has_magic(const void *p, size_t n);
/* Parse record i. verify=1 checks its checksum first. */
int ddct_ctr_record(const ddct_ctr_reader *r, size_t i, int verify, ddct_record *rec, ddct_err *e);
/* Drop record i's mapped pages (or those of [p, p + len), which must lie in the file) from this
 * process (keeps resident memory bounded). */
void ddct_ctr_release(const ddct_ctr_reader *r, size_t i);
void ddct_ctr_release_ptr(const ddct_ctr_reader *r, const void *p, uint64_t len);

/* Fingerprint of a base tensor: xxh3-64 over dtype, shape and bytes. */
uint64_t ddct_tensor_fingerprint(ddct_dtype dt, int ndim, const uint64_t *shape, const void *data, uint64_t nbytes);
/* The same, hashing in pieces and calling done(opaque, bytes hashed so far) after each one
 * (done may be NULL), so a caller can drop the pages already read. */
uint64_t ddct_tensor_fingerprint_cb(ddct_dtype dt, int ndim, const uint64_t *shape, const void *data, uint64_t nbytes,
                                    void (*done)(void *opaque, uint64_t upto), void *opaque);
/* The same, streamed: start with the tensor's dtype and shape (NULL when out of memory), add its
 * bytes in order, then finish, which returns the fingerprint and frees the state (free alone
 * drops it; both take NULL). */
typedef struct ddct_fp ddct_fp;
ddct_fp *ddct_fp_start(ddct_dtype dt, int ndim, const uint64_t *shape);
void ddct_fp_add(ddct_fp *f, const void *p, size_t n);
uint64_t ddct_fp_finish(ddct_fp *f);
void ddct_fp_free(ddct_fp *f);
/* The same from a reader: read(opaque, off, buf, n) copies bytes [off, off + n) into buf
 * (0, or -1 on failure). 0 and *fp set, or -1 (a read failed or no memory). */
int ddct_tensor_fingerprint_read(ddct_dtype dt, int ndim, const uint64_t *shape, uint64_t nbytes,
                                 int (*read)(void *opaque, uint64_t off, void *buf, size_t n), void *opaque,
                                 uint64_t *fp);

#endif
