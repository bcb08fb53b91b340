/*
 * nameset.h — a hash set of names (open addressing, XXH3), for uniqueness checks and look-ups in
 * linear time: tensor names of a safetensors header, a model's shards, a .ddct's index and
 * layout. The set stores ids (0 .. 2^32 - 2) with 32 bits of each name's hash, 8 bytes a slot at
 * most half full: the names themselves stay with the caller, who gives them back by id.
 */
#ifndef DDCT_NAMESET_H
#define DDCT_NAMESET_H

#include <stddef.h>
#include <stdint.h>

#define DDCT_NAMESET_NONE ((size_t)-1)
#define DDCT_NAMESET_MAX_IDS ((size_t)0xfffffffe)

/* The name of id (len: its length in bytes; names may hold any byte but are compared by length). */
typedef const char *(*ddct_name_fn)(const void *ctx, size_t id, size_t *len);

typedef struct {
    uint64_t *slot; /* 0 empty, else (hash >> 32) << 32 | (id + 1) */
    size_t mask;    /* slots - 1 */
    size_t count;
    ddct_name_fn name;
    const void *ctx;
} ddct_nameset;

/* An empty set sized for about `expect` names (it grows as needed). 0, or -1 when out of memory. */
int ddct_nameset_init(ddct_nameset *s, size_t expect, ddct_name_fn name, const void *ctx);
void ddct_nameset_free(ddct_nameset *s);
/* Add id (its name from the callback): DDCT_NAMESET_NONE when added, the id already holding that
 * name (nothing added), or DDCT_NAMESET_NONE - 1 when out of memory or id is too large. */
#define DDCT_NAMESET_NOMEM ((size_t)-2)
size_t ddct_nameset_add(ddct_nameset *s, size_t id);
/* The id holding name[0..len), or DDCT_NAMESET_NONE. */
size_t ddct_nameset_find(const ddct_nameset *s, const char *name, size_t len);

#endif
