/* delta_collect.h — a ddct_delta_out that gathers a streamed decode into an array (tests only):
 *   tu_arr a = {buf, n};  ddct_delta_out o = tu_arr_out(&a);
 * Values past n are dropped; each is stored times the rescale factor the decoder hands over. */
#ifndef DDCT_DELTA_COLLECT_H
#define DDCT_DELTA_COLLECT_H
#include "codec/codec.h"

typedef struct {
    float *d;
    uint64_t n;
} tu_arr;
static int tu_arr_begin(void *o, uint64_t first, uint64_t n, ddct_err *e)
{
    (void)o, (void)first, (void)n, (void)e;
    return 0;
}
static void tu_arr_put(void *o, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    (void)rel;
    tu_arr *a = o;
    for (uint64_t i = 0; i < n && first + i < a->n; i++) a->d[first + i] = d[i] * s;
}
static inline ddct_delta_out tu_arr_out(tu_arr *a) { return (ddct_delta_out){tu_arr_begin, tu_arr_put, tu_arr_begin, a}; }
#endif
