/*
 * mapfile.h — read-only whole-file mapping (mmap, falling back to read() into memory).
 */
#ifndef DDCT_MAPFILE_H
#define DDCT_MAPFILE_H

#include <stddef.h>
#include <stdint.h>
#include "error_private.h"

typedef struct {
    const uint8_t *p;
    uint64_t size;
    int mapped; /* 1: munmap, 0: free */
    int fd;     /* when mapped: the file, kept open for ddct_map_pread */
} ddct_map;

int ddct_map_open(ddct_map *m, const char *path, ddct_err *e);
void ddct_map_close(ddct_map *m);
/* Drop [off, off+len) of a read-only mapping from the process (keeps resident memory bounded);
 * rounded outward to 2 MiB windows, so neighbouring pages may have to fault in again. */
void ddct_map_dontneed(const ddct_map *m, uint64_t off, uint64_t len);
/* Copy bytes [off, off + len) of the file into buf with pread (from the page cache: no page of
 * the mapping is touched, so nothing is faulted in, dropped or counted in the resident set).
 * 0; DDCT_MAP_FALLBACK (-1: the range is outside the size at open, or the read failed while the
 * file still has that size): m->p may be read instead; DDCT_MAP_CHANGED (-2): the file no
 * longer has the size it had when opened, so reading the mapping could fault (SIGBUS past the
 * end): never touch it, report the input as changed. */
#define DDCT_MAP_FALLBACK (-1)
#define DDCT_MAP_CHANGED (-2)
int ddct_map_pread(const ddct_map *m, uint64_t off, void *buf, size_t len);
/* Every read through a mapping that is not the validation at open goes after this check:
 * 0 when the file still has the size it had when opened (always for a copy in memory), else
 * DDCT_MAP_CHANGED with *now (may be NULL) its size now (0 when it cannot be told). */
int ddct_map_check(const ddct_map *m, uint64_t *now);

#endif
