/*
 * aw.c — a second thread that writes pieces (aw.h): the decoder's output slices, so that rebuilding
 * slice k + 1 overlaps writing slice k, and ofile's O_DIRECT buffers, so that filling one overlaps
 * the disk's write of the other. One piece in flight at a time; pieces are written in the order
 * submitted; the first error stops all later writes and is returned by the next submit or wait.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aw.h"

struct ddct_aw {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ddct_aw_fn sink;
    void *opaque;
    const uint8_t *p;
    size_t n;
    int busy, quit, rc;
    ddct_err err;
};

static void *aw_main(void *arg)
{
    ddct_aw *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy) break;
        const uint8_t *p = w->p;
        size_t n = w->n;
        int failed = w->rc;
        pthread_mutex_unlock(&w->mu);
        int rc = failed ? failed : w->sink(w->opaque, p, n, &w->err);
        pthread_mutex_lock(&w->mu);
        w->rc = rc;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

ddct_aw *ddct_aw_create(ddct_aw_fn sink, void *opaque)
{
    ddct_aw *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->sink = sink;
    w->opaque = opaque;
    ddct_err_clear(&w->err);
    if (pthread_mutex_init(&w->mu, NULL)) {
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->cv, NULL)) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, aw_main, w)) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

int ddct_aw_wait(ddct_aw *w, ddct_err *e)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->rc;
    pthread_mutex_unlock(&w->mu);
    if (rc) *e = w->err;
    return rc;
}

int ddct_aw_submit(ddct_aw *w, const uint8_t *p, size_t n, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_aw_wait(w, e));
    pthread_mutex_lock(&w->mu);
    w->p = p;
    w->n = n;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void ddct_aw_free(ddct_aw *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
