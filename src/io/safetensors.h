/*
 * safetensors.h — safetensors reader (memory-mapped, fully validated) and streaming writer.
 *
 * Layout (https://github.com/huggingface/safetensors): u64 little-endian N, then N bytes of
 * UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"k": "v"}}, then the data buffer; offsets are relative to the buffer.
 *
 * The reader validates before anything is used: N <= file size - 8 and <= 100 MB, JSON valid
 * with no duplicate keys, known dtypes, non-negative shapes whose product * element size
 * neither overflows nor differs from end - begin, offsets within the buffer, tensors
 * covering the buffer contiguously with no overlap and no gap. Errors name the file,
 * the tensor and the byte offset. The header is read in one pass without a JSON tree: memory
 * is 64 bytes a tensor plus its name and dimensions, and a hash set of the names (about
 * 16 bytes a tensor), time linear in the header's length.
 */
#ifndef DDCT_SAFETENSORS_H
#define DDCT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "common/dtype.h"
#include "common/error_private.h"
#include "common/mapfile.h"

#define DDCT_MAX_DIMS 8

typedef struct ddct_st_file ddct_st_file;

typedef struct {
    const char *name;            /* NUL-terminated */
    const uint64_t *shape;       /* ndim dimensions */
    uint64_t nelem;
    uint64_t nbytes;
    uint64_t offset;             /* absolute file offset of the data */
    const uint8_t *data;         /* into the mapping (read it only after ddct_st_check) */
    const ddct_st_file *file;    /* the file holding it */
    ddct_dtype dtype;
    int ndim;
} ddct_st_tensor;

int ddct_st_open(ddct_st_file **out, const char *path, ddct_err *e);
/* The same over a mapping of path already open (taken over: closed with the file, also on failure). */
int ddct_st_open_map(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e);
/* The same over tensors a program holds (names and shapes copied; the bytes referenced, to stay
 * unchanged until closed): checked as a header is (names non-empty, UTF-8, unique, not
 * __metadata__; dtypes; shapes and sizes), no file behind it (reads fall back to the bytes, and
 * a check never finds it changed). label names it in messages. */
typedef struct {
    const char *name;
    ddct_dtype dtype;
    int ndim;
    const uint64_t *shape;
    const void *data;
} ddct_st_mem_tensor;
int ddct_st_open_mem(ddct_st_file **out, const char *label, const ddct_st_mem_tensor *t, size_t n, ddct_err *e);
/* A tensor file another reader parsed (PyTorch, GGUF): the mapping is taken over (closed with the
 * file, also on failure); tensor i's bytes are [offsets[i], + its size) of the file, checked to
 * lie inside it (t[i].data is ignored). Tensors may share bytes (the reader decides what it
 * allows). Checked as ddct_st_open_mem checks; metadata_json: as ddct_st_metadata_json, or NULL.
 * kind: DDCT_ST_PYTORCH, DDCT_ST_GGUF...; ext: the reader's description of the file, freed with
 * ext_free when the file is closed (also on failure). */
enum { DDCT_ST_SAFETENSORS = 0, DDCT_ST_PYTORCH, DDCT_ST_GGUF, DDCT_ST_MEMORY };
int ddct_st_open_table(ddct_st_file **out, const char *path, ddct_map *map, const ddct_st_mem_tensor *t,
                       const uint64_t *offsets, size_t n, const char *metadata_json, int kind, void *ext,
                       void (*ext_free)(void *), ddct_err *e);
int ddct_st_kind(const ddct_st_file *f);
void *ddct_st_ext(const ddct_st_file *f);
/* Other names of tensors (tied weights: one storage under two names): found by ddct_st_find and
 * ddct_st_alias, never listed by ddct_st_get. 0, or DDCT_ERR_NOMEM / DDCT_ERR_FORMAT (a name taken). */
int ddct_st_add_alias(ddct_st_file *f, const char *name, size_t target, ddct_err *e);
size_t ddct_st_alias_count(const ddct_st_file *f);
/* Alias k's name and target (a tensor index). */
const char *ddct_st_alias_name(const ddct_st_file *f, size_t k, size_t *target);
void ddct_st_close(ddct_st_file *f);
const char *ddct_st_path(const ddct_st_file *f);
size_t ddct_st_count(const ddct_st_file *f);
/* Tensors in header order (the JSON object's key order). */
const ddct_st_tensor *ddct_st_get(const ddct_st_file *f, size_t i);
const ddct_st_tensor *ddct_st_find(const ddct_st_file *f, const char *name);
/* The "__metadata__" object serialized as compact JSON, or NULL if absent. */
const char *ddct_st_metadata_json(const ddct_st_file *f);
/* Drop the mapped pages of bytes [off, off + len) of t from this process (MADV_DONTNEED; the
 * page cache keeps them, a later read faults them back), so reading a model piece by piece
 * keeps resident memory at about one piece. */
void ddct_st_release(const ddct_st_file *f, const ddct_st_tensor *t, uint64_t off, uint64_t len);
/* Copy bytes [off, off + len) of t into buf with pread (ddct_map_pread: nothing mapped, faulted
 * or dropped). 0; DDCT_MAP_FALLBACK (-1) when the range is outside t or the read failed while the
 * file still has its size (then use t->data); DDCT_ERR_IO when the file changed size since it was
 * opened (e, may be NULL: "input changed while reading: PATH"): t->data must not be touched. */
int ddct_st_pread(const ddct_st_file *f, const ddct_st_tensor *t, uint64_t off, void *buf, size_t len, ddct_err *e);
/* Before reading a tensor through the mapping: 0 when the file still has the size it had when
 * opened, else DDCT_ERR_IO with that message. */
int ddct_st_check(const ddct_st_file *f, ddct_err *e);

/* Streaming writer: the header is written from the entries first, then each tensor's
 * bytes in entry order. Data offsets are assigned contiguously in entry order. */
typedef struct {
    const char *name;
    ddct_dtype dtype;
    int ndim;
    const uint64_t *shape;
} ddct_st_entry;

typedef struct ddct_st_writer ddct_st_writer;
/* metadata_json: a JSON object text or NULL. inputs: see ddct_ofile_open. */
int ddct_stw_open(ddct_st_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const ddct_st_entry *entries, size_t n, const char *metadata_json, ddct_err *e);
/* The data bytes the header declares. */
uint64_t ddct_stw_data_bytes(const ddct_st_writer *w);
/* Write through O_DIRECT (ddct_ofile_set_direct); call right after open. 1 if on. */
int ddct_stw_set_direct(ddct_st_writer *w);
/* Append the next bytes of the current tensor(s); total must equal the header's sizes. */
int ddct_stw_write(ddct_st_writer *w, const void *p, size_t n, ddct_err *e);
int ddct_stw_commit(ddct_st_writer *w, ddct_err *e); /* checks all bytes written; frees w */
void ddct_stw_abort(ddct_st_writer *w);              /* frees w; NULL ok */

#endif
