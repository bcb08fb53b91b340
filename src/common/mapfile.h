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
 * 0, or -1 (range outside the file, I/O error, file shrunk): then read m->p instead. */
int ddct_map_pread(const ddct_map *m, uint64_t off, void *buf, size_t len);

#endif
