/*
 * pytorch.h — PyTorch checkpoints (torch.save's ZIP format, torch >= 1.6): reader and writer.
 *
 * A checkpoint is a ZIP file (io/zip.h) with one folder ROOT holding ROOT/data.pkl, a pickle
 * of the state dict (io/pickle.h: a restricted unpickler, no code runs), ROOT/data/KEY, one
 * stored entry per storage (raw little-endian elements), and ROOT/byteorder ("little"; absent in
 * older files), ROOT/version. Refused by name: the legacy (pre-1.6) format, TorchScript archives,
 * big-endian files, compressed or encrypted entries, non-contiguous tensors.
 *
 * Reading: each tensor's bytes are its storage entry's data at the storage offset, in the mapped
 * file (no copy; the file is never loaded whole). A tensor that views the same storage, offset,
 * dtype and shape as an earlier one (tied weights) is an alias of it (ddct_st_add_alias): read
 * under both names, stored once. Tensors are listed in the order of their storages' first use,
 * then by offset, which for a plain state dict is its own order.
 *
 * The layout (ddct_pt_layout) records what the writer needs to write the checkpoint back:
 * ROOT, the dict's BUILD state (_metadata), the storages (key, dtype, elements) and every name of
 * the dict in order with its storage, offset, shape and stride. Storages are compacted to the
 * span their views use (an unused head or tail is not kept; torch.load gives the same tensors).
 *
 * Writing: ROOT/data.pkl (the dict in its order, tied names sharing their storage), ROOT/byteorder,
 * ROOT/data/KEY for each storage, ROOT/version, stored, data aligned to 64 bytes, through an
 * atomic output file. The tensors' bytes arrive in record order (the reader's tensor order) and
 * go straight into their storage entries; bytes of a storage no tensor covers are zeros.
 * A layout from a .ddct is untrusted: ddct_ptw_open checks it (keys, dtypes, sizes, that views
 * lie inside their storage and do not overlap, that a storage is not mostly gaps).
 */
#ifndef DDCT_PYTORCH_H
#define DDCT_PYTORCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error_private.h"
#include "common/mapfile.h"
#include "io/safetensors.h"

/* What the first bytes say: 1 a ZIP (torch >= 1.6) file, 2 the legacy pickle format, 0 neither. */
int ddct_pt_sniff(const uint8_t *p, uint64_t size);
/* Open path (map already open on it, taken over). */
int ddct_pt_open(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e);
/* The "pytorch" layout object of an open checkpoint (a new reference), NULL when out of memory. */
json_t *ddct_pt_layout(const ddct_st_file *f);
/* The layout of tensors from another format, one storage each (names, dtypes, shapes of the
 * records, in order). */
json_t *ddct_pt_layout_plain(const ddct_st_entry *t, size_t n);

/* 0, or DDCT_ERR_FORMAT naming why an open checkpoint could not be written back (views of one
 * storage that overlap without being the same, a storage that is mostly gaps): what compress
 * refuses in a fine-tune before anything is written. */
int ddct_pt_writable(const ddct_st_file *f, ddct_err *e);
/* A layout checked as the writer checks it (at compression: what cannot be written back, such
 * as overlapping views of one storage, is refused before anything is written). */
int ddct_pt_layout_check(const json_t *layout, const char *path, ddct_err *e);
/* The layout's tied names (views identical to an earlier one): their names (pointers into
 * layout) and the records (indexes among the layout's records) they repeat; arrays malloc'd. */
int ddct_pt_aliases(const json_t *layout, const char *path, const char ***names, size_t **rec, size_t *n, ddct_err *e);

typedef struct ddct_pt_writer ddct_pt_writer;
/* layout: a "pytorch" object (checked); records: the tensors whose bytes follow, in order (their
 * names must be the layout's non-alias names in storage order). inputs: see ddct_ofile_open. */
int ddct_ptw_open(ddct_pt_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const json_t *layout, const ddct_st_entry *records, size_t n, ddct_err *e);
uint64_t ddct_ptw_data_bytes(const ddct_pt_writer *w);
/* Write through O_DIRECT (ddct_ofile_set_direct); right after open. 1 if on. */
int ddct_ptw_set_direct(ddct_pt_writer *w);
int ddct_ptw_write(ddct_pt_writer *w, const void *p, size_t n, ddct_err *e);
int ddct_ptw_commit(ddct_pt_writer *w, ddct_err *e); /* frees w */
void ddct_ptw_abort(ddct_pt_writer *w);              /* frees w; NULL ok */

#endif
