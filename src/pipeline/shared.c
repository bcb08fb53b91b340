/*
 * shared.c — what compress.c and decompress.c both use: the thread count, the contexts' notes,
 * base tensors read piece by piece with their pages dropped as used, and base fingerprints.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "pipeline.h"

int ddct_resolve_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_num_procs();
#endif
    return threads > 0 ? threads : 1;
}

/* ---------------------------------------------------------------- notes */

void ddct_notes_clear(ddct_notes *n)
{
    for (size_t i = 0; i < n->n; i++) free(n->v[i]);
    free(n->v);
    n->v = NULL;
    n->n = 0;
}

const char *ddct_notes_at(const ddct_notes *n, size_t i) { return i < n->n ? n->v[i] : NULL; }

void ddct_notes_take(ddct_notes *n, char *s)
{
    char **v = s ? realloc(n->v, (n->n + 1) * sizeof *v) : NULL;
    if (!v) {
        free(s);
        return;
    }
    n->v = v;
    n->v[n->n++] = s;
}

void ddct_notes_tensor(ddct_notes *n, const char *name, const char *what)
{
    size_t len = strlen(name) + strlen(what) + 16;
    char *s = malloc(len);
    if (s) snprintf(s, len, "tensor '%s': %s", name, what);
    ddct_notes_take(n, s);
}

/* ---------------------------------------------------------------- pieces of a base tensor */

void ddct_piece_release_base(void *opaque, uint64_t upto)
{
    const ddct_piece *pr = opaque;
    if (pr->base && pr->bi != DDCT_MODEL_NONE) ddct_model_release_range(pr->base, pr->bi, 0, upto);
}

static int read_base(void *opaque, uint64_t off, void *buf, size_t n)
{
    const ddct_piece *pr = opaque;
    return ddct_model_pread(pr->base, pr->bi, off, buf, n, NULL) ? -1 : 0;
}

int ddct_piece_read_base(void *opaque, uint64_t off, void *buf, size_t n, ddct_err *e)
{
    const ddct_piece *pr = opaque;
    return ddct_model_pread(pr->base, pr->bi, off, buf, n, e);
}

void ddct_piece_release_both(void *opaque, uint64_t base_upto, uint64_t data_upto)
{
    const ddct_piece *pr = opaque;
    ddct_piece_release_base(opaque, base_upto);
    if (pr->r && pr->data) ddct_ctr_release_ptr(pr->r, pr->data, data_upto);
}

int ddct_piece_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    const ddct_piece *pr = opaque;
    return pr->sink(pr->opaque, p, n, e);
}

void ddct_piece_seen(void *opaque, const uint8_t *p, size_t n)
{
    ddct_piece *pr = opaque;
    ddct_fp_add(pr->fp, p, n);
    pr->fp_bytes += n;
}

uint64_t ddct_base_fingerprint(const ddct_model *base, size_t bi)
{
    const ddct_st_tensor *b = ddct_model_get(base, bi);
    ddct_piece pr = {.base = base, .bi = bi};
    uint64_t fp;
    /* by pread (nothing mapped), else through the mapping with its pages dropped as hashed, but
     * never when the file changed size (SIGBUS past its end): 0, which no caller takes for the
     * base's (ddct_check_base reports the change) */
    if (ddct_tensor_fingerprint_read(b->dtype, b->ndim, b->shape, b->nbytes, read_base, &pr, &fp) == 0) return fp;
    if (ddct_model_check(base, bi, NULL)) return 0;
    return ddct_tensor_fingerprint_cb(b->dtype, b->ndim, b->shape, b->data, b->nbytes, ddct_piece_release_base, &pr);
}
