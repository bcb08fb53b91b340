/*
 * nameset.c — hash set of names by id (see nameset.h).
 */
#include "nameset.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t tag_of(const char *p, size_t len) { return XXH3_64bits(p, len) >> 32 << 32; }

int ddct_nameset_init(ddct_nameset *s, size_t expect, ddct_name_fn name, const void *ctx)
{
    memset(s, 0, sizeof *s);
    size_t n = 16;
    while (n < expect * 2 && n < ((size_t)1 << 40)) n *= 2;
    s->slot = calloc(n, sizeof *s->slot);
    if (!s->slot) return -1;
    s->mask = n - 1;
    s->name = name;
    s->ctx = ctx;
    return 0;
}

void ddct_nameset_free(ddct_nameset *s)
{
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* The slot where (tag, name) is or would go. */
static size_t probe(const ddct_nameset *s, uint64_t tag, const char *p, size_t len)
{
    size_t i = (size_t)(tag >> 32) & s->mask;
    for (;; i = (i + 1) & s->mask) {
        uint64_t v = s->slot[i];
        if (!v) return i;
        if ((v >> 32 << 32) != tag) continue;
        size_t l;
        const char *q = s->name(s->ctx, (size_t)(uint32_t)v - 1, &l);
        if (l == len && !memcmp(p, q, len)) return i;
    }
}

static int grow(ddct_nameset *s)
{
    size_t n = (s->mask + 1) * 2;
    uint64_t *old = s->slot, *nw = calloc(n, sizeof *nw);
    if (!nw) return -1;
    size_t om = s->mask;
    s->slot = nw;
    s->mask = n - 1;
    for (size_t i = 0; i <= om; i++) {
        if (!old[i]) continue;
        size_t j = (size_t)(old[i] >> 32) & s->mask;
        while (nw[j]) j = (j + 1) & s->mask;
        nw[j] = old[i];
    }
    free(old);
    return 0;
}

size_t ddct_nameset_add(ddct_nameset *s, size_t id)
{
    if (id >= DDCT_NAMESET_MAX_IDS || !s->slot) return DDCT_NAMESET_NOMEM;
    if ((s->count + 1) * 2 > s->mask + 1 && grow(s)) return DDCT_NAMESET_NOMEM;
    size_t len;
    const char *p = s->name(s->ctx, id, &len);
    uint64_t tag = tag_of(p, len);
    size_t i = probe(s, tag, p, len);
    if (s->slot[i]) return (size_t)(uint32_t)s->slot[i] - 1;
    s->slot[i] = tag | (uint64_t)(id + 1);
    s->count++;
    return DDCT_NAMESET_NONE;
}

size_t ddct_nameset_find(const ddct_nameset *s, const char *name, size_t len)
{
    if (!s->slot || !name) return DDCT_NAMESET_NONE;
    size_t i = probe(s, tag_of(name, len), name, len);
    return s->slot[i] ? (size_t)(uint32_t)s->slot[i] - 1 : DDCT_NAMESET_NONE;
}
