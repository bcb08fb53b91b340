/*
 * aw.h — a second thread that writes pieces, one at a time and in the order submitted, so that
 * producing piece k + 1 overlaps writing piece k (aw.c). Used for the decoder's output slices
 * and for ofile's O_DIRECT buffers.
 */
#ifndef DDCT_AW_H
#define DDCT_AW_H

#include <stddef.h>
#include <stdint.h>
#include "error_private.h"

typedef int (*ddct_aw_fn)(void *opaque, const uint8_t *p, size_t n, ddct_err *e);
typedef struct ddct_aw ddct_aw;
/* NULL when out of memory or the thread cannot start (then write synchronously). */
ddct_aw *ddct_aw_create(ddct_aw_fn sink, void *opaque);
/* Hand p[0..n) to the writer once the previous piece is written (its error, if any, is returned
 * instead); p must stay valid until the next submit or wait returns. */
int ddct_aw_submit(ddct_aw *w, const uint8_t *p, size_t n, ddct_err *e);
/* Wait until everything submitted is written; the first write error, if any. */
int ddct_aw_wait(ddct_aw *w, ddct_err *e);
void ddct_aw_free(ddct_aw *w); /* waits first */

#endif
