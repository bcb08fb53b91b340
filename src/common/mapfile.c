/* mapfile.c — read-only whole-file mapping, see mapfile.h. */
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_all(int fd, uint8_t *p, uint64_t size)
{
    uint64_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, (size - got) > (1u << 30) ? (1u << 30) : (size_t)(size - got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (uint64_t)r;
    }
    return 0;
}

int ddct_map_open(ddct_map *m, const char *path, ddct_err *e)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    RETURN_ERROR_IF(fd < 0, e, DDCT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        RETURN_ERROR(e, DDCT_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        RETURN_ERROR(e, DDCT_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (uint64_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        m->p = (const uint8_t *)"";
        return 0;
    }
    if (m->size > (uint64_t)SIZE_MAX) {
        close(fd);
        RETURN_ERROR(e, DDCT_ERR_IO, "%s: too large to map", path);
    }
    void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
        m->p = p;
        m->mapped = 1;
        m->fd = fd;
        return 0;
    }
    uint8_t *buf = malloc((size_t)m->size);
    errno = 0;
    if (!buf || read_all(fd, buf, m->size)) {
        int err = errno ? errno : EIO; /* read() returning 0 early: the file shrank */
        free(buf);
        close(fd);
        RETURN_ERROR(e, buf ? DDCT_ERR_IO : DDCT_ERR_NOMEM, "%s: cannot read: %s", path, strerror(err));
    }
    close(fd);
    m->p = buf;
    return 0;
}

void ddct_map_close(ddct_map *m)
{
    if (m->mapped) {
        munmap((void *)m->p, (size_t)m->size);
        close(m->fd);
    } else if (m->size) {
        free((void *)m->p);
    }
    memset(m, 0, sizeof *m);
}

int ddct_map_check(const ddct_map *m, uint64_t *now)
{
    struct stat st;
    if (now) *now = m->size;
    if (!m->mapped) return 0;
    if (fstat(m->fd, &st) == 0 && (uint64_t)st.st_size == m->size) return 0;
    if (now) *now = fstat(m->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return DDCT_MAP_CHANGED;
}

int ddct_map_pread(const ddct_map *m, uint64_t off, void *buf, size_t len)
{
    if (off > m->size || len > m->size - off) return DDCT_MAP_FALLBACK;
    if (!m->mapped) {
        if (len) memcpy(buf, m->p + off, len);
        return 0;
    }
    uint8_t *q = buf;
    while (len > 0) {
        ssize_t r = pread(m->fd, q, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return ddct_map_check(m, NULL) ? DDCT_MAP_CHANGED : DDCT_MAP_FALLBACK; /* 0: end of file */
        q += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* The read-only mapping's pages are dropped from the process in whole 2 MiB windows (aligned in
 * the address space): from the window holding the range's start to the last window the range
 * ends past (to the mapping's end when the range reaches it). A fault maps the pages around the
 * faulting one that the page cache holds — with large folios (Linux 6.x page cache) that reaches
 * well beyond the classic 64 KiB fault-around window (seen: runs of 448 KiB) — so rounding to
 * smaller windows left pages of neighbouring ranges mapped for good (9 MiB after reading the 255
 * record heads of a 3.6 B model's .ddct with 64 KiB windows, none with 2 MiB). The window the
 * range ends in is dropped by a later call whose range ends past it (a caller going through a
 * file in order keeps one window resident): dropping it at every call made each of a million
 * tiny records fault its window back in and unmap it again (34 s for 1.6 M records). */
#define DROP_ALIGN ((uintptr_t)2 << 20)

void ddct_map_dontneed(const ddct_map *m, uint64_t off, uint64_t len)
{
    if (!m->mapped || len == 0 || off >= m->size) return;
    if (len > m->size - off) len = m->size - off;
    uintptr_t base = (uintptr_t)m->p, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t end = base + ((uintptr_t)m->size + pg - 1) / pg * pg; /* the mapping's last page included */
    uintptr_t a = (base + (uintptr_t)off) / DROP_ALIGN * DROP_ALIGN;
    uintptr_t b = (base + (uintptr_t)(off + len)) / DROP_ALIGN * DROP_ALIGN;
    if (a < base) a = base;
    if (b > end || off + len >= m->size) b = end;
    if (b > a) madvise((void *)a, (size_t)(b - a), MADV_DONTNEED);
}
