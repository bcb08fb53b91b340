/*
 * ofile.c — atomic output files (see ofile.h).
 *
 * Bytes go through a 1 MiB buffer into "<dir>/.<name>.tmp.XXXXXX" (mkostemp); commit
 * flushes, fsyncs, renames over the final path and fsyncs the directory. Any failure
 * latches the handle; abort (or a failed commit) unlinks the temporary, so a previous
 * file at the final path is never touched.
 */
#include "ofile.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFILE_BUFSIZE ((size_t)1 << 20)

struct ddct_ofile {
    int fd;
    int failed;
    int overwrite;
    char *final_path;
    char *tmp_path;
    char *dir;         /* directory of final_path, for the final fsync */
    uint8_t *buf;
    size_t buflen;
    uint64_t flushed;  /* bytes already in the file */
};

/* ---------------------------------------------------------------- checks before opening */

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int check_target(const char *path, int overwrite, const char *const *inputs, ddct_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        RETURN_ERROR_IF(errno != ENOENT, e, DDCT_ERR_IO, "output '%s': %s", path, strerror(errno));
        return 0;
    }
    for (size_t i = 0; inputs && inputs[i]; i++) {
        struct stat in;
        RETURN_ERROR_IF(stat(inputs[i], &in) == 0 && same_file(&st, &in), e, DDCT_ERR_EXISTS,
                        "output '%s' is also an input ('%s')", path, inputs[i]);
    }
    RETURN_ERROR_IF(!overwrite, e, DDCT_ERR_EXISTS, "output '%s' exists (overwrite not allowed)", path);
    RETURN_ERROR_IF(!S_ISREG(st.st_mode), e, DDCT_ERR_IO, "output '%s' exists and is not a regular file", path);
    return 0;
}

/* Split final_path into an allocated directory ("." if none) and the temp path template. */
static int make_paths(ddct_ofile *f, const char *path, ddct_err *e)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    RETURN_ERROR_IF(*base == 0, e, DDCT_ERR_PARAM, "output '%s': not a file name", path);
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    size_t n = strlen(path) + sizeof "/..tmp.XXXXXX" + 1;
    f->final_path = strdup(path);
    f->tmp_path = malloc(n);
    f->dir = malloc(dlen + 2);
    RETURN_ERROR_IF(!f->final_path || !f->tmp_path || !f->dir, e, DDCT_ERR_NOMEM, "output '%s': out of memory", path);
    if (!slash) strcpy(f->dir, ".");
    else if (dlen == 0) strcpy(f->dir, "/");
    else {
        memcpy(f->dir, path, dlen);
        f->dir[dlen] = 0;
    }
    snprintf(f->tmp_path, n, "%.*s%s.%s.tmp.XXXXXX", (int)dlen, path, slash ? "/" : "", base);
    return 0;
}

/* The process umask without changing it (Linux /proc), else the common 022. */
mode_t ddct_umask(void)
{
    unsigned m = 022;
    FILE *fp = fopen("/proc/self/status", "re");
    if (!fp) return (mode_t)m;
    char line[256];
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "Umask: %o", &m) == 1) break;
    fclose(fp);
    return (mode_t)(m & 0777);
}

static void ofile_free(ddct_ofile *f)
{
    free(f->final_path);
    free(f->tmp_path);
    free(f->dir);
    free(f->buf);
    free(f);
}

int ddct_ofile_open(ddct_ofile **out, const char *final_path, int overwrite, const char *const *inputs,
                    ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!final_path, e, DDCT_ERR_PARAM, "no output path given");
    FORWARD_IF_ERROR(check_target(final_path, overwrite, inputs, e));
    ddct_ofile *f = calloc(1, sizeof *f);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "output '%s': out of memory", final_path);
    f->fd = -1;
    f->overwrite = overwrite;
    int rc = make_paths(f, final_path, e);
    if (!rc && !(f->buf = malloc(OFILE_BUFSIZE)))
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "output '%s': out of memory", final_path);
    if (!rc && (f->fd = mkostemp(f->tmp_path, O_CLOEXEC)) < 0)
        rc = ddct_seterr(e, DDCT_ERR_IO, "output '%s': cannot create temporary file in '%s': %s", final_path,
                         f->dir, strerror(errno));
    if (rc) {
        ofile_free(f);
        return rc;
    }
    (void)fchmod(f->fd, 0666 & ~ddct_umask());
    *out = f;
    return 0;
}

/* ---------------------------------------------------------------- writing */

static int io_fail(ddct_ofile *f, const char *what, uint64_t at, int err, ddct_err *e)
{
    f->failed = 1;
    return ddct_seterr(e, DDCT_ERR_IO, "output '%s': %s failed at byte %llu (temporary '%s'): %s", f->final_path,
                       what, (unsigned long long)at, f->tmp_path, strerror(err));
}

/* Write all n bytes at `at` (pwrite) or at the end (write), retrying short writes and EINTR. */
static int write_all(ddct_ofile *f, const uint8_t *p, size_t n, int positional, uint64_t at, ddct_err *e)
{
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = positional ? pwrite(f->fd, p, chunk, (off_t)at) : write(f->fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return io_fail(f, positional ? "pwrite" : "write", at, w < 0 ? errno : EIO, e);
        p += w;
        n -= (size_t)w;
        at += (uint64_t)w;
    }
    return 0;
}

static int flush_buf(ddct_ofile *f, ddct_err *e)
{
    if (f->buflen == 0) return 0;
    FORWARD_IF_ERROR(write_all(f, f->buf, f->buflen, 0, f->flushed, e));
    f->flushed += f->buflen;
    f->buflen = 0;
    return 0;
}

static int check_usable(const ddct_ofile *f, ddct_err *e)
{
    RETURN_ERROR_IF(!f, e, DDCT_ERR_PARAM, "no output file");
    RETURN_ERROR_IF(f->failed, e, DDCT_ERR_IO, "output '%s': an earlier write failed", f->final_path);
    return 0;
}

int ddct_ofile_write(ddct_ofile *f, const void *p, size_t n, ddct_err *e)
{
    FORWARD_IF_ERROR(check_usable(f, e));
    const uint8_t *s = p;
    if (n >= OFILE_BUFSIZE - f->buflen) {
        FORWARD_IF_ERROR(flush_buf(f, e));
        if (n >= OFILE_BUFSIZE) {
            FORWARD_IF_ERROR(write_all(f, s, n, 0, f->flushed, e));
            f->flushed += n;
            return 0;
        }
    }
    if (n) memcpy(f->buf + f->buflen, s, n);
    f->buflen += n;
    return 0;
}

int ddct_ofile_pwrite(ddct_ofile *f, const void *p, size_t n, uint64_t offset, ddct_err *e)
{
    FORWARD_IF_ERROR(check_usable(f, e));
    uint64_t end;
    RETURN_ERROR_IF(ddct_add_overflow(offset, n, &end) || end > ddct_ofile_tell(f), e, DDCT_ERR_INTERNAL,
                    "output '%s': pwrite of %zu bytes at byte %llu is past the end (%llu bytes written)",
                    f->final_path, n, (unsigned long long)offset, (unsigned long long)ddct_ofile_tell(f));
    FORWARD_IF_ERROR(flush_buf(f, e));
    return write_all(f, p, n, 1, offset, e);
}

uint64_t ddct_ofile_tell(const ddct_ofile *f) { return f ? f->flushed + f->buflen : 0; }

int ddct_ofile_pread(ddct_ofile *f, void *p, size_t n, uint64_t offset, ddct_err *e)
{
    FORWARD_IF_ERROR(check_usable(f, e));
    uint64_t end;
    RETURN_ERROR_IF(ddct_add_overflow(offset, n, &end) || end > ddct_ofile_tell(f), e, DDCT_ERR_INTERNAL,
                    "output '%s': reading %zu bytes at byte %llu, past the end (%llu bytes written)", f->final_path, n,
                    (unsigned long long)offset, (unsigned long long)ddct_ofile_tell(f));
    FORWARD_IF_ERROR(flush_buf(f, e));
    uint8_t *q = p;
    while (n > 0) {
        ssize_t r = pread(f->fd, q, n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return io_fail(f, "pread", offset, r < 0 ? errno : EIO, e);
        q += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

/* ---------------------------------------------------------------- finishing */

static int rename_fail(const ddct_ofile *f, int err, ddct_err *e)
{
    return ddct_seterr(e, err == EEXIST ? DDCT_ERR_EXISTS : DDCT_ERR_IO, "output '%s': cannot rename '%s' to it: %s",
                       f->final_path, f->tmp_path, err == EEXIST ? "it appeared while writing (overwrite not allowed)"
                                                                 : strerror(err));
}

static int publish(ddct_ofile *f, ddct_err *e)
{
    if (!f->overwrite) {
        if (renameat2(AT_FDCWD, f->tmp_path, AT_FDCWD, f->final_path, RENAME_NOREPLACE) == 0) return 0;
        if (errno != EINVAL && errno != ENOSYS) return rename_fail(f, errno, e);
        /* filesystem without RENAME_NOREPLACE: check again, then plain rename */
        if (access(f->final_path, F_OK) == 0) return rename_fail(f, EEXIST, e);
    }
    return rename(f->tmp_path, f->final_path) == 0 ? 0 : rename_fail(f, errno, e);
}

void ddct_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd); /* best effort: the rename itself has succeeded */
    close(fd);
}

int ddct_ofile_commit(ddct_ofile *f, ddct_err *e)
{
    int rc = check_usable(f, e);
    if (!rc) rc = flush_buf(f, e);
    if (!rc && fsync(f->fd) != 0) rc = io_fail(f, "fsync", f->flushed, errno, e);
    if (!rc) {
        int fd = f->fd;
        f->fd = -1;
        if (close(fd) != 0) rc = io_fail(f, "close", f->flushed, errno, e);
    }
    if (!rc) rc = publish(f, e);
    if (rc) {
        ddct_ofile_abort(f);
        return rc;
    }
    ddct_sync_dir(f->dir);
    ofile_free(f);
    return 0;
}

void ddct_ofile_abort(ddct_ofile *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp_path);
    ofile_free(f);
}
