/*
 * fuzz_pytorch.c — the PyTorch checkpoint reader on arbitrary bytes, twice: as a pickle
 * (ddct_pkl_read, the restricted unpickler) and as a whole torch.save ZIP file (ddct_pt_open:
 * ZIP directory, data.pkl, storages, views).
 * Properties besides "no crash, no sanitizer report":
 *   - failure: a known error code and a message;
 *   - a pickle that reads: names non-empty, at most DDCT_MAX_DIMS dimensions; written again by
 *     ddct_pkl_write and read back, the same tensors and BUILD state (the writer and reader agree);
 *   - a checkpoint that opens: every tensor's bytes lie inside the input, nbytes = nelem * size,
 *     every alias finds a listed tensor, and the layout made of it passes the writer's check
 *     unless views overlap.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "fuzz.h"
#include "io/pickle.h"
#include "io/pytorch.h"

static void check_error(int rc, const ddct_err *e)
{
    FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT, "error code %d", rc);
    FUZZ_ASSERT(e->msg[0], "no message for code %d", rc);
}

static void fuzz_pickle(const uint8_t *data, size_t size)
{
    ddct_pkl_dict d;
    ddct_err e = {0};
    int rc = ddct_pkl_read(&d, data, size, "input", &e);
    if (rc) {
        check_error(rc, &e);
        return;
    }
    for (size_t i = 0; i < d.n; i++) {
        FUZZ_ASSERT(d.t[i].name[0] && d.t[i].storage[0], "tensor %zu: empty name or key", i);
        FUZZ_ASSERT(d.t[i].ndim >= 0 && d.t[i].ndim <= DDCT_MAX_DIMS, "tensor %zu: %d dims", i, d.t[i].ndim);
    }
    ddct_buf b;
    ddct_buf_init(&b);
    rc = ddct_pkl_write(&b, d.t, d.n, d.state_json, &e);
    if (!rc) {
        ddct_pkl_dict d2;
        rc = ddct_pkl_read(&d2, b.p, b.len, "rewritten", &e);
        FUZZ_ASSERT(rc == 0, "a rewritten pickle does not read: %s", e.msg);
        FUZZ_ASSERT(d2.n == d.n, "%zu tensors, %zu after rewriting", d.n, d2.n);
        for (size_t i = 0; i < d.n; i++) {
            const ddct_pkl_tensor *x = &d.t[i], *y = &d2.t[i];
            FUZZ_ASSERT(!strcmp(x->name, y->name) && !strcmp(x->storage, y->storage) && x->dtype == y->dtype &&
                            x->storage_numel == y->storage_numel && x->offset == y->offset && x->ndim == y->ndim &&
                            !memcmp(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim) &&
                            !memcmp(x->stride, y->stride, sizeof x->stride[0] * (size_t)x->ndim),
                        "tensor %zu changed by rewriting", i);
        }
        FUZZ_ASSERT(!d.state_json == !d2.state_json, "BUILD state lost or added by rewriting");
        ddct_pkl_free(&d2);
    } else {
        /* only a dtype torch has no storage for, or a state the writer cannot nest */
        FUZZ_ASSERT(rc == DDCT_ERR_UNSUPPORTED || rc == DDCT_ERR_FORMAT, "rewrite failed: %s", e.msg);
    }
    ddct_buf_free(&b);
    ddct_pkl_free(&d);
}

static void fuzz_checkpoint(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return;
    memcpy(copy, data, size);
    ddct_map m = {.p = copy, .size = size, .mapped = 0, .fd = -1};
    ddct_st_file *f = NULL;
    ddct_err e = {0};
    int rc = ddct_pt_open(&f, "input", &m, &e); /* takes the map over */
    if (!size) free(copy);
    if (rc) {
        check_error(rc, &e);
        return;
    }
    for (size_t i = 0; i < ddct_st_count(f); i++) {
        const ddct_st_tensor *t = ddct_st_get(f, i);
        FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset, "tensor '%s' outside the input", t->name);
        FUZZ_ASSERT(t->nbytes == t->nelem * ddct_dtype_size(t->dtype), "tensor '%s': nbytes", t->name);
        FUZZ_ASSERT(ddct_st_find(f, t->name) == t, "tensor '%s' not found by name", t->name);
    }
    for (size_t k = 0; k < ddct_st_alias_count(f); k++) {
        size_t to;
        const char *a = ddct_st_alias_name(f, k, &to);
        FUZZ_ASSERT(to < ddct_st_count(f) && ddct_st_find(f, a) == ddct_st_get(f, to), "alias '%s'", a);
    }
    json_t *lay = ddct_pt_layout(f);
    FUZZ_ASSERT(lay, "no layout");
    rc = ddct_pt_layout_check(lay, "input", &e);
    FUZZ_ASSERT(rc == 0 || strstr(e.msg, "overlap") || strstr(e.msg, "gaps"), "layout refused: %s", e.msg);
    json_decref(lay);
    ddct_st_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_pickle(data, size);
    fuzz_checkpoint(data, size);
    return 0;
}
