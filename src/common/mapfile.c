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
        close(fd);
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
    if (m->mapped) munmap((void *)m->p, (size_t)m->size);
    else if (m->size) free((void *)m->p);
    memset(m, 0, sizeof *m);
}

void ddct_map_dontneed(const ddct_map *m, uint64_t off, uint64_t len)
{
    if (!m->mapped || len == 0) return;
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t a = (off + (uint64_t)pg - 1) / (uint64_t)pg * (uint64_t)pg;
    uint64_t b = (off + len) / (uint64_t)pg * (uint64_t)pg;
    if (b > a) madvise((void *)(m->p + a), (size_t)(b - a), MADV_DONTNEED);
}
