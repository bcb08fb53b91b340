/*
 * model.h — a model as people have it: one .safetensors file, a sharded checkpoint
 * (model.safetensors.index.json + its shards) or a Hugging Face model directory holding either.
 *
 * A model is the ordered list of its tensors across shards (shards in file-name order, each
 * shard's tensors in its header order), each shard's __metadata__, the index's "metadata"
 * object, and the other regular files of the directory (config.json, tokenizer files, ...),
 * which the .ddct carries losslessly.
 *
 * Path opened:
 *   a regular file NAME.safetensors        one shard, no directory;
 *   a file *.safetensors.index.json        the sharded checkpoint of its directory;
 *   a directory                            its model.safetensors.index.json (or its only
 *                                          *.safetensors.index.json) if present, else every
 *                                          *.safetensors file in it (one or many shards).
 * Checks before use (errors name the file, the tensor and what is wrong):
 *   - every file read from a directory is named by a plain file name (no '/', '\', "..", ".",
 *     NUL, not starting with '.'), and its real path (realpath) lies inside the directory's
 *     real path or, for a Hugging Face hub cache snapshot (".../snapshots/REV/"), inside that
 *     repository's "blobs/" folder, which must be a real directory inside the repository (the
 *     parent of "snapshots/"; a "blobs" that is a symlink is not trusted);
 *   - an entry that is a FIFO, socket or device, a dangling symlink, a symlink that cannot be
 *     followed, or a regular file whose name is not UTF-8 (the layout is JSON) is refused,
 *     naming the file (escaped, ddct_escape) and the reason;
 *   - the index's "weight_map" is an object of shard names; every tensor it lists is in its
 *     shard, every tensor of a shard is listed with that shard, no name is in two shards.
 * Subdirectories, dotfiles and, in a directory with an index, *.safetensors files the index
 * does not name are not part of the model (the last are reported by ddct_model_ignored).
 */
#ifndef DDCT_MODEL_H
#define DDCT_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "common/error_private.h"
#include "common/mapfile.h"
#include "io/safetensors.h"

#define DDCT_INDEX_NAME "model.safetensors.index.json"
#define DDCT_INDEX_SUFFIX ".safetensors.index.json"
#define DDCT_PT_INDEX_NAME "pytorch_model.bin.index.json"
#define DDCT_PT_INDEX_SUFFIX ".bin.index.json"
#define DDCT_MODEL_NONE ((size_t)-1)

typedef struct ddct_model ddct_model;

int ddct_model_open(ddct_model **out, const char *path, ddct_err *e);
/* A model of tensors a program holds (ddct_st_open_mem): one shard called shard_name, no files;
 * label names it in messages. */
int ddct_model_open_mem(ddct_model **out, const char *label, const char *shard_name, const ddct_st_mem_tensor *t,
                        size_t n, ddct_err *e);
void ddct_model_close(ddct_model *m);
const char *ddct_model_path(const ddct_model *m);
int ddct_model_is_dir(const ddct_model *m);
/* Index file name and its "metadata" object as compact JSON (key order kept); NULL if none. */
const char *ddct_model_index_name(const ddct_model *m);
const char *ddct_model_index_metadata(const ddct_model *m);

size_t ddct_model_shard_count(const ddct_model *m);
const ddct_st_file *ddct_model_shard(const ddct_model *m, size_t k);
const char *ddct_model_shard_name(const ddct_model *m, size_t k); /* file name, no directory */

/* Tensors across shards, in order. */
size_t ddct_model_count(const ddct_model *m);
const ddct_st_tensor *ddct_model_get(const ddct_model *m, size_t i);
size_t ddct_model_shard_of(const ddct_model *m, size_t i);
size_t ddct_model_lookup(const ddct_model *m, const char *name); /* index or DDCT_MODEL_NONE */
const ddct_st_tensor *ddct_model_find(const ddct_model *m, const char *name);
/* Drop tensor i's mapped pages (all, or bytes [off, off + len)) from this process (ddct_st_release). */
void ddct_model_release(const ddct_model *m, size_t i);
void ddct_model_release_range(const ddct_model *m, size_t i, uint64_t off, uint64_t len);
/* Bytes [off, off + len) of tensor i into buf by pread (ddct_st_pread): 0; DDCT_MAP_FALLBACK (-1):
 * read the mapping instead; DDCT_ERR_IO (e, may be NULL: "input changed while reading: SHARD"):
 * the shard changed size, its mapping must not be touched. */
int ddct_model_pread(const ddct_model *m, size_t i, uint64_t off, void *buf, size_t len, ddct_err *e);
/* Before reading tensor i through the mapping: 0, or DDCT_ERR_IO when its shard changed size. */
int ddct_model_check(const ddct_model *m, size_t i, ddct_err *e);

/* The other regular files of a directory model, in file-name order. */
size_t ddct_model_file_count(const ddct_model *m);
const char *ddct_model_file_name(const ddct_model *m, size_t k);
uint64_t ddct_model_file_size(const ddct_model *m, size_t k); /* when listed */
int ddct_model_file_map(const ddct_model *m, size_t k, ddct_map *map, ddct_err *e);
/* *.safetensors files of an indexed directory that the index does not name. */
size_t ddct_model_ignored_count(const ddct_model *m);
const char *ddct_model_ignored(const ddct_model *m, size_t k);

/* One tensor file, whatever its format: PyTorch (ZIP) or GGUF by its first bytes, else safetensors. */
int ddct_tensor_file_open(ddct_st_file **out, const char *path, ddct_err *e);
/* A weights file's kind by its name: DDCT_ST_SAFETENSORS, DDCT_ST_PYTORCH, DDCT_ST_GGUF, or -1. */
int ddct_weights_kind(const char *name);

/* 1 if name is a plain file name (the rule above). */
int ddct_plain_file_name(const char *name);

#endif
