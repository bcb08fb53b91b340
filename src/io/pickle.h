/*
 * pickle.h — a restricted unpickler for PyTorch state dicts, and the matching writer.
 *
 * Reference: CPython Lib/pickletools.py (opcodes, protocols 2-5) and torch/_weights_only_unpickler.py
 * (what torch.load(weights_only=True) accepts). The reader is a stack machine that never runs
 * code and never imports anything: it knows the opcodes a state dict uses (PROTO, FRAME, MARK,
 * the int/float/bool/None/str/bytes pushes, tuples, lists, dicts, memo GET/PUT/MEMOIZE,
 * GLOBAL/STACK_GLOBAL, REDUCE, BUILD, BINPERSID, STOP) and, as globals, only
 *   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter
 *   and the typed storages torch.{Double,Float,Half,BFloat16,Long,Int,Short,Char,Byte,Bool,UInt16,UInt32,
 *   UInt64,Float8_e4m3fn,Float8_e5m2}Storage (complex and quantized storages are refused by name).
 * Any other global is refused by name before anything else happens (the weights-only types that
 * deltadct does not read, sparse, quantized or nested tensors, say so); any other opcode is refused
 * with its byte and offset. Limits: every length is checked against the bytes left; the memo
 * index, the number of values and items are bounded by the pickle's length (each takes an opcode
 * byte), so memory is linear in the pickle's size; nesting needs no recursion.
 *
 * The result must be a dict (or OrderedDict) of str -> tensor (a Parameter counts as its tensor):
 * a nested dict ("model", "state_dict", optimizer state) or a non-tensor value is refused naming
 * the key. The dict's BUILD state (torch's `_metadata`: per-module versions) is kept as JSON and
 * written back by the writer.
 */
#ifndef DDCT_PICKLE_H
#define DDCT_PICKLE_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/dtype.h"
#include "common/error_private.h"
#include "io/safetensors.h"

typedef struct {
    const char *name;
    const char *storage;    /* the storage's key (its ZIP entry is data/<key>) */
    ddct_dtype dtype;
    uint64_t storage_numel; /* elements of the storage, as its persistent id says */
    uint64_t offset;        /* storage offset, in elements */
    int ndim;
    uint64_t shape[DDCT_MAX_DIMS];
    int64_t stride[DDCT_MAX_DIMS];
} ddct_pkl_tensor;

typedef struct {
    ddct_pkl_tensor *t;
    size_t n;
    char *state_json; /* the dict's BUILD state as a JSON object (e.g. {"_metadata": {...}}), or NULL */
    char *strings;    /* names and keys */
} ddct_pkl_dict;

int ddct_pkl_read(ddct_pkl_dict *d, const uint8_t *p, size_t n, const char *label, ddct_err *e);
void ddct_pkl_free(ddct_pkl_dict *d);

/* torch's storage type name for a dtype ("FloatStorage"), NULL if torch has none. */
const char *ddct_pkl_storage_name(ddct_dtype t);

/* Pickle (protocol 2) of an OrderedDict of the tensors, in order, each rebuilt with
 * _rebuild_tensor_v2 over its storage's persistent id ('storage', torch.<T>Storage, key, 'cpu',
 * numel), then the BUILD state from state_json (NULL: none). */
int ddct_pkl_write(ddct_buf *b, const ddct_pkl_tensor *t, size_t n, const char *state_json, ddct_err *e);

#endif
