/*
 * layout.h — how the fine-tune was laid out on disk, as the .ddct header's "layout" records it
 * (docs/FORMAT.md): one file or a directory, its shards (name, __metadata__, tensors in order),
 * the index and the carried non-weight files.
 *
 * Records are in layout order: the tensors of shard 0, of shard 1, ..., then one record per
 * carried file, named DDCT_FILE_PREFIX + file name (dtype U8, shape [bytes], raw codec, no
 * base). The prefix starts with the byte 0xFF, which never occurs in UTF-8, so no safetensors
 * tensor name can take that form.
 */
#ifndef DDCT_LAYOUT_H
#define DDCT_LAYOUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "container/container.h"
#include "io/model.h"

#define DDCT_FILE_PREFIX "\xff" "file/"

typedef struct {
    char *name;     /* file name */
    char *metadata; /* its __metadata__ as compact JSON, or NULL */
    size_t first, count; /* its tensors: records [first, first + count) */
    int format;     /* DDCT_ST_SAFETENSORS, DDCT_ST_PYTORCH (io/safetensors.h) */
    json_t *fmt;    /* the format's own object ("pytorch": see io/pytorch.h), or NULL */
} ddct_layout_shard;

typedef struct {
    char *name;
    uint64_t bytes;
    size_t record;
} ddct_layout_file;

typedef struct {
    int directory;        /* the fine-tune was a directory */
    char *index_name;     /* its index (carried as one of the files), or NULL */
    char *index_metadata; /* the index's "metadata" as compact JSON, or NULL */
    size_t nshards;
    ddct_layout_shard *shards;
    size_t nfiles;
    ddct_layout_file *files;
    size_t ntensors; /* records [0, ntensors) are tensors */
} ddct_layout;

/* 1 if a record name is a carried file's. */
static inline int ddct_is_file_record(const char *name) { return (unsigned char)name[0] == 0xFF; }

/* The "layout" object for the fine-tune ft (files: sizes as listed). NULL when out of memory. */
json_t *ddct_layout_json(const ddct_model *ft);
/* The format names of shards ("safetensors", "pytorch"); DDCT_ST_* from a name, -1 if unknown. */
const char *ddct_format_name(int format);
int ddct_format_from_name(const char *name);
/* Read and check the layout of an open .ddct against its records. A file without "layout"
 * (format 1.0) is one file "model.safetensors" holding every record. */
int ddct_layout_read(ddct_layout *L, const ddct_ctr_reader *r, ddct_err *e);
void ddct_layout_free(ddct_layout *L);

#endif
