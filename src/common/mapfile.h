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
} ddct_map;

int ddct_map_open(ddct_map *m, const char *path, ddct_err *e);
void ddct_map_close(ddct_map *m);
/* Drop [off, off+len) of a read-only mapping from the process (keeps resident memory bounded);
 * rounded outward to 64 KiB windows, so neighbouring pages may have to fault in again. */
void ddct_map_dontneed(const ddct_map *m, uint64_t off, uint64_t len);

#endif
