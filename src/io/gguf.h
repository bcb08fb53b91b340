/*
 * gguf.h — GGUF reader (memory-mapped, fully validated) and streaming writer.
 *
 * Format (ggml's GGUF, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all
 * little-endian:
 *   "GGUF" | u32 version (3; 2 has the same layout; 1 is refused) | u64 tensor_count | u64 kv_count
 *   kv_count key/values:   string key | u32 value type | value
 *   tensor_count infos:    string name | u32 n_dims (1..4) | u64 ne[n_dims] | u32 ggml type | u64 offset
 *   padding to the alignment (KV "general.alignment", u32, a power of two; 32 when absent)
 *   data section: each tensor at data_start + offset (offset a multiple of the alignment)
 * string = u64 length + bytes (no NUL); value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
 * 6 f32, 7 bool (1 byte), 8 string, 9 array (u32 element type | u64 count | elements, arrays of
 * arrays allowed), 10 u64, 11 i64, 12 f64. ne[0] is the fastest-varying dimension: the row-major
 * shape (safetensors / PyTorch order) is ne reversed (ddct_gguf_shape). A tensor of a quantized
 * type holds ne[0] / block_size blocks a row, each type_size bytes (ddct_gguf_type_info: every
 * ggml type up to NVFP4/Q1_0/Q2_0; the withdrawn 4, 5, 31..33, 36..38 are refused by name).
 *
 * Reader: every count and length is checked against the bytes left before anything is
 * allocated (memory is bounded by what the file can back: a tensor info takes 24 bytes at
 * least, a KV 13, and each costs about 100 and 60 bytes in memory, plus its name), keys and tensor names unique and free of NUL bytes, arrays nested at most
 * DDCT_GGUF_MAX_NEST deep, n_dims 1..4, ne[0] a multiple of the type's block size, element and
 * byte counts overflow-checked, every tensor's offset aligned and its bytes inside the file, no
 * two tensors overlapping (zero-byte tensors overlap nothing). Errors name the file, the tensor
 * or key (escaped) and the byte offset. Time is linear in the header's length plus the padding.
 *
 * Round trip: the writer takes the original's version, the KV section's bytes verbatim
 * (ddct_gguf_kv_section), the tensor infos in their order with their offsets, and the file's
 * length; it writes the header, then the tensors' bytes in offset order, zeros in every gap
 * (header end to data_start, between tensors, after the last one to the end). So the rebuilt
 * file equals the original byte for byte when the original's gaps are all zeros and the tensor
 * bytes are the same; ddct_gguf_gaps_zero says whether they are (a caller refuses such a file, or
 * keeps it whole, when they are not: they would be rebuilt as zeros).
 *
 * Typical use (a rebuild with some tensors' values replaced):
 *     ddct_gguf *f; ddct_gguf_open(&f, in, &e);              // or the base's layout stored elsewhere
 *     ddct_gguf_layout l; ddct_gguf_layout_of(f, &l);        // same metadata, infos, offsets, length
 *     ddct_gguf_writer *w; ddct_ggw_open(&w, out, overwrite, inputs, &l, &e);
 *     for (size_t i; (i = ddct_ggw_next(w)) != (size_t)-1;) {
 *         const ddct_gguf_tensor *t = ddct_gguf_get(f, i);  // ddct_gguf_dtype(t->type): F32/F16/BF16
 *         ... ddct_ggw_write(w, bytes, t->nbytes, &e) ...    // are lossy-capable, others kept as bytes
 *     }                                                      // (shape for the codecs: ddct_gguf_shape)
 *     ddct_ggw_commit(w, &e);
 * Tensors go in file-offset order (ddct_ggw_next), not necessarily header order.
 */
#ifndef DDCT_GGUF_H
#define DDCT_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "common/dtype.h"
#include "common/error_private.h"

#define DDCT_GGUF_MAX_DIMS 4     /* GGML_MAX_DIMS */
#define DDCT_GGUF_MAX_NEST 16    /* arrays of arrays, this deep at most */
#define DDCT_GGUF_DEFAULT_ALIGN 32

/* KV value types */
enum {
    DDCT_GGUF_U8 = 0, DDCT_GGUF_I8, DDCT_GGUF_U16, DDCT_GGUF_I16, DDCT_GGUF_U32, DDCT_GGUF_I32,
    DDCT_GGUF_F32, DDCT_GGUF_BOOL, DDCT_GGUF_STRING, DDCT_GGUF_ARRAY, DDCT_GGUF_U64, DDCT_GGUF_I64,
    DDCT_GGUF_F64, DDCT_GGUF_VT_COUNT
};

/* ggml tensor types (enum ggml_type) */
enum {
    DDCT_GGML_F32 = 0, DDCT_GGML_F16 = 1, DDCT_GGML_Q4_0 = 2, DDCT_GGML_Q4_1 = 3, DDCT_GGML_Q5_0 = 6,
    DDCT_GGML_Q5_1 = 7, DDCT_GGML_Q8_0 = 8, DDCT_GGML_Q8_1 = 9, DDCT_GGML_Q2_K = 10, DDCT_GGML_Q3_K = 11,
    DDCT_GGML_Q4_K = 12, DDCT_GGML_Q5_K = 13, DDCT_GGML_Q6_K = 14, DDCT_GGML_Q8_K = 15,
    DDCT_GGML_IQ2_XXS = 16, DDCT_GGML_IQ2_XS = 17, DDCT_GGML_IQ3_XXS = 18, DDCT_GGML_IQ1_S = 19,
    DDCT_GGML_IQ4_NL = 20, DDCT_GGML_IQ3_S = 21, DDCT_GGML_IQ2_S = 22, DDCT_GGML_IQ4_XS = 23,
    DDCT_GGML_I8 = 24, DDCT_GGML_I16 = 25, DDCT_GGML_I32 = 26, DDCT_GGML_I64 = 27, DDCT_GGML_F64 = 28,
    DDCT_GGML_IQ1_M = 29, DDCT_GGML_BF16 = 30, DDCT_GGML_TQ1_0 = 34, DDCT_GGML_TQ2_0 = 35,
    DDCT_GGML_MXFP4 = 39, DDCT_GGML_NVFP4 = 40, DDCT_GGML_Q1_0 = 41, DDCT_GGML_Q2_0 = 42,
    DDCT_GGML_TYPE_COUNT = 43
};

/* "Q8_0" for a type this reader knows, NULL otherwise (withdrawn or unknown). */
const char *ddct_gguf_type_name(uint32_t type);
/* Block size (elements) and type size (bytes a block): 0, or -1 for a type not known. */
int ddct_gguf_type_info(uint32_t type, uint32_t *block, uint32_t *size);
/* The project's dtype of an element type (F32, F16, BF16, F64, I8, I16, I32, I64), or
 * DDCT_DT_INVALID for a quantized ("opaque": carried as bytes) or unknown type. */
ddct_dtype ddct_gguf_dtype(uint32_t type);
/* "u8", "string", "array", ... ; "?" for an unknown value type. */
const char *ddct_gguf_vtype_name(uint32_t vtype);

typedef struct ddct_gguf ddct_gguf;

typedef struct {
    const char *name;      /* NUL-terminated (names holding NUL are refused) */
    uint32_t type;         /* ggml type */
    int n_dims;            /* 1..4 */
    uint64_t ne[DDCT_GGUF_MAX_DIMS]; /* ne[0] fastest; ne[i] = 1 for i >= n_dims */
    uint64_t rel_offset;   /* as in the file: from data_start */
    uint64_t offset;       /* absolute file offset = data_start + rel_offset */
    uint64_t nelem;
    uint64_t nbytes;
    const uint8_t *data;   /* into the mapping or buffer (read after ddct_gguf_check); NULL in a writer */
} ddct_gguf_tensor;

typedef struct {
    const char *key;       /* NUL-terminated (keys holding NUL are refused) */
    uint32_t type;         /* value type */
    uint32_t elem_type;    /* arrays: the element type */
    uint64_t count;        /* arrays: the element count; strings: the length; else 1 */
    const uint8_t *value;  /* the value's bytes in the file (after the u32 type) */
    uint64_t value_len;
    uint64_t offset;       /* absolute offset of the KV (its key's length field) */
} ddct_gguf_kv;

int ddct_gguf_open(ddct_gguf **out, const char *path, ddct_err *e);
/* The same over bytes in memory (kept by the caller until close, not copied); label names it. */
int ddct_gguf_open_mem(ddct_gguf **out, const char *label, const void *p, size_t size, ddct_err *e);
void ddct_gguf_close(ddct_gguf *f);

const char *ddct_gguf_path(const ddct_gguf *f);
uint32_t ddct_gguf_version(const ddct_gguf *f);
uint64_t ddct_gguf_size(const ddct_gguf *f);       /* file length */
uint32_t ddct_gguf_alignment(const ddct_gguf *f);
uint64_t ddct_gguf_header_end(const ddct_gguf *f); /* end of the last tensor info */
uint64_t ddct_gguf_data_start(const ddct_gguf *f); /* header_end aligned up */
/* The KV section verbatim: bytes [*offset, *offset + *len) of the file (24 and up), and its count. */
const uint8_t *ddct_gguf_kv_section(const ddct_gguf *f, uint64_t *offset, uint64_t *len, uint64_t *count);
/* 1 when every byte outside the header and the tensors is zero; else 0 with *first (may be
 * NULL) the offset of the first other byte. */
int ddct_gguf_gaps_zero(const ddct_gguf *f, uint64_t *first);

size_t ddct_gguf_count(const ddct_gguf *f);
const ddct_gguf_tensor *ddct_gguf_get(const ddct_gguf *f, size_t i);  /* in header order */
const ddct_gguf_tensor *ddct_gguf_find(const ddct_gguf *f, const char *name);
/* The row-major shape (ne reversed) in shape[0 .. n_dims), e.g. a [rows, cols] matrix for a 2-D
 * tensor with ne = {cols, rows}: what safetensors would hold. Returns n_dims. */
int ddct_gguf_shape(const ddct_gguf_tensor *t, uint64_t shape[DDCT_GGUF_MAX_DIMS]);

size_t ddct_gguf_kv_count(const ddct_gguf *f);
const ddct_gguf_kv *ddct_gguf_kv_get(const ddct_gguf *f, size_t i);   /* in file order */
const ddct_gguf_kv *ddct_gguf_kv_find(const ddct_gguf *f, const char *key);
/* An integer KV (any of u8..i64, bool, non-negative): 0 and *v, else -1 (absent or other type). */
int ddct_gguf_kv_uint(const ddct_gguf *f, const char *key, uint64_t *v);
/* A string KV: its bytes (not NUL-terminated) and length, or NULL. */
const char *ddct_gguf_kv_str(const ddct_gguf *f, const char *key, uint64_t *len);
/* The metadata as one JSON object {"key": value, ...} in file order (malloc'ed, NUL-terminated,
 * NULL when out of memory): numbers as numbers (non-finite floats as the strings "nan", "inf",
 * "-inf"), bools, strings (bytes not valid UTF-8 as '_'), arrays of at most max_array elements
 * as arrays, longer ones as {"type": "array", "elem_type": "string", "count": N}. */
char *ddct_gguf_metadata_json(const ddct_gguf *f, size_t max_array);

/* Reading a tensor's bytes, as ddct_st_check / ddct_st_pread / ddct_st_release. */
int ddct_gguf_check(const ddct_gguf *f, ddct_err *e);
int ddct_gguf_pread(const ddct_gguf *f, const ddct_gguf_tensor *t, uint64_t off, void *buf, size_t len, ddct_err *e);
void ddct_gguf_release(const ddct_gguf *f, const ddct_gguf_tensor *t, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------- writer
 * The header is built from the layout and checked as the reader checks a file (KV section
 * parsed, alignment from it, tensor infos valid, offsets aligned, no overlap, everything before
 * `size`), then written; then ddct_ggw_write takes the tensors' bytes in offset order (the order
 * ddct_ggw_next tells), zeros going into the gaps; commit pads to `size`, checks that every
 * tensor byte was written and renames the file into place (common/ofile). */
typedef struct {
    uint32_t version;                /* 2 or 3 */
    const void *kv;                  /* the KV section's bytes, kv_count entries */
    uint64_t kv_len, kv_count;
    const ddct_gguf_tensor *tensors; /* name, type, n_dims, ne, rel_offset used */
    size_t n;
    uint64_t size;                   /* the file's length; 0: the end of the last tensor aligned up */
} ddct_gguf_layout;

/* A layout of f (its version, KV section, tensors and size). */
void ddct_gguf_layout_of(const ddct_gguf *f, ddct_gguf_layout *l);

typedef struct ddct_gguf_writer ddct_gguf_writer;
/* inputs: see ddct_ofile_open. */
int ddct_ggw_open(ddct_gguf_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const ddct_gguf_layout *l, ddct_err *e);
/* The header as parsed back (tensor data pointers NULL): data_start, alignment, tensors. */
const ddct_gguf *ddct_ggw_header(const ddct_gguf_writer *w);
/* The index (in the layout's order) of the tensor the next bytes go to, or (size_t)-1 when all
 * are written. */
size_t ddct_ggw_next(const ddct_gguf_writer *w);
/* Append the next bytes of the tensors in offset order (a write may span tensors; zero-byte
 * tensors are skipped). More bytes than the tensors hold is DDCT_ERR_PARAM. */
int ddct_ggw_write(ddct_gguf_writer *w, const void *p, size_t n, ddct_err *e);
int ddct_ggw_commit(ddct_gguf_writer *w, ddct_err *e); /* frees w */
void ddct_ggw_abort(ddct_gguf_writer *w);               /* frees w; NULL ok */

#endif
