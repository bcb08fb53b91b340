/*
 * ofile.c — atomic output files (see ofile.h).
 *
 * Bytes go through a 1 MiB buffer into "<dir>/.<name>.tmp.XXXXXX" (mkostemp); commit
 * flushes, fsyncs, renames over the final path and fsyncs the directory. Any failure
 * latches the handle; abort (or a failed commit) unlinks the temporary, so a previous
 * file at the final path is never touched.
 *
 * Direct mode (ddct_ofile_set_direct, for rebuilt models of many GB): two 8 MiB buffers aligned
 * to 4 KiB; a full buffer is handed to a writer thread (aw.h) that writes it with O_DIRECT while
 * the other one fills, so the bytes go from the buffer to the disk without a copy into the page
 * cache and the disk is kept busy. Every direct write is a whole buffer at a multiple of 8 MiB,
 * so offsets, lengths and addresses are 4 KiB-aligned. The tail (after the last full buffer:
 * its whole 4 KiB blocks direct, the rest through the page cache) and any pwrite/pread happen
 * after the writer is idle and O_DIRECT is cleared. A filesystem that refuses O_DIRECT (tmpfs:
 * fcntl or a write fails with EINVAL) gets plain writes instead; the bytes are the same.
 * Why: on this project's machines buffered writes of a 3 GB file ran at 0.4-4 GB/s depending on
 * the state of writeback, O_DIRECT at a steady ~2 GB/s, and the closing fsync then has almost
 * nothing left to write (docs/ARCHITECTURE.md).
 */
#include "ofile.h"
#include "aw.h"
#include "buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFILE_BUFSIZE ((size_t)1 << 20)
#define OFILE_DIRECT_BUFSIZE ((size_t)8 << 20)
#define OFILE_DIRECT_ALIGN ((size_t)4096)

struct ddct_ofile {
    int fd;
    int failed;
    int overwrite;
    char *final_path;
    char *tmp_path;
    char *dir;         /* directory of final_path, for the final fsync */
    uint8_t *buf;
    size_t buflen;
    size_t bufcap;     /* OFILE_BUFSIZE, or OFILE_DIRECT_BUFSIZE in direct mode */
    int direct;        /* direct mode: buf is dbuf[cur]; flushed is a multiple of the buffer size */
    uint8_t *dbuf[2];  /* the two aligned buffers of direct mode */
    int cur;
    ddct_aw *aw;       /* direct mode's writer thread (NULL: write synchronously) */
    uint64_t aw_at;    /* the writer thread's file offset (only it touches this) */
    uint64_t flushed;  /* bytes already in the file */
};

/* ---------------------------------------------------------------- checks before opening */

static int inputs_add(ddct_inputs *s, const struct stat *st, const char *path, size_t dlen, const char *name,
                      const char *input, ddct_err *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        ddct_input_id *v = realloc(s->v, cap * sizeof *v);
        RETURN_ERROR_IF(!v, e, DDCT_ERR_NOMEM, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    size_t nl = name ? strlen(name) : 0;
    char *p = malloc(dlen + nl + 2);
    RETURN_ERROR_IF(!p, e, DDCT_ERR_NOMEM, "out of memory");
    memcpy(p, path, dlen);
    if (name) {
        p[dlen] = '/';
        memcpy(p + dlen + 1, name, nl + 1);
    } else {
        p[dlen] = 0;
    }
    s->v[s->n++] = (ddct_input_id){.dev = st->st_dev, .ino = st->st_ino, .path = p, .input = input};
    return 0;
}

/* Every file of directory dir (dlen bytes of it), links followed. */
static int inputs_add_dir(ddct_inputs *s, const char *dir, size_t dlen, const char *input, ddct_err *e)
{
    char *d = dlen ? strndup(dir, dlen) : strdup(".");
    RETURN_ERROR_IF(!d, e, DDCT_ERR_NOMEM, "out of memory");
    DIR *dp = opendir(d);
    free(d);
    if (!dp) return 0; /* unreadable: the model could not be read either */
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(dp))) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (fstatat(dirfd(dp), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            rc = inputs_add(s, &st, dlen ? dir : ".", dlen ? dlen : 1, de->d_name, input, e);
    }
    closedir(dp);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int ddct_inputs_collect(ddct_inputs *s, const char *const *inputs, ddct_err *e)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; inputs && inputs[i]; i++) {
        const char *in = inputs[i];
        struct stat st;
        if (stat(in, &st) != 0) continue; /* nothing there to overwrite */
        size_t n = strlen(in);
        int rc = 0;
        if (S_ISDIR(st.st_mode)) {
            while (n > 1 && in[n - 1] == '/') n--;
            rc = inputs_add_dir(s, in, n, in, e);
        } else {
            rc = inputs_add(s, &st, in, n, NULL, in, e);
            if (!rc && ends_with(in, ".index.json")) { /* a sharded checkpoint: its directory */
                const char *slash = strrchr(in, '/');
                rc = inputs_add_dir(s, in, slash ? (size_t)(slash - in) + (slash == in) : 0, in, e);
            }
        }
        if (rc) {
            ddct_inputs_free(s);
            return rc;
        }
    }
    return 0;
}

const ddct_input_id *ddct_inputs_find(const ddct_inputs *s, const struct stat *st)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].dev == st->st_dev && s->v[i].ino == st->st_ino) return &s->v[i];
    return NULL;
}

void ddct_inputs_free(ddct_inputs *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

void ddct_keep_mode(int fd, const char *path, const struct stat *old)
{
    mode_t bits = old->st_mode & (S_ISDIR(old->st_mode) ? 07777 : 0777);
    struct stat now;
    if ((fd >= 0 ? fstat(fd, &now) : stat(path, &now)) != 0) return;
    if (now.st_uid != old->st_uid || now.st_gid != old->st_gid) { /* best effort: root, or a group of ours */
        if ((fd >= 0 ? fchown(fd, old->st_uid, old->st_gid) : chown(path, old->st_uid, old->st_gid)) != 0)
            (void)(fd >= 0 ? fchown(fd, (uid_t)-1, old->st_gid) : chown(path, (uid_t)-1, old->st_gid));
    }
    (void)(fd >= 0 ? fchmod(fd, bits) : chmod(path, bits)); /* after chown, which clears set-id bits */
}

/* The output at path: refused when it is an input (by identity) or exists without overwrite;
 * *old gets what it replaces (*had_old = 1). */
static int check_target(const char *path, int overwrite, const char *const *inputs, struct stat *old, int *had_old,
                        ddct_err *e)
{
    struct stat st;
    *had_old = 0;
    if (stat(path, &st) != 0) {
        RETURN_ERROR_IF(errno != ENOENT, e, DDCT_ERR_IO, "output '%s': %s", path, strerror(errno));
        return 0;
    }
    ddct_inputs ids;
    FORWARD_IF_ERROR(ddct_inputs_collect(&ids, inputs, e));
    const ddct_input_id *hit = ddct_inputs_find(&ids, &st);
    int rc = 0;
    if (hit && strcmp(hit->path, hit->input))
        rc = ddct_seterr(e, DDCT_ERR_EXISTS, "output '%s' is also an input ('%s', a file of the model '%s'): refused",
                         path, hit->path, hit->input);
    else if (hit)
        rc = ddct_seterr(e, DDCT_ERR_EXISTS, "output '%s' is also an input ('%s'): refused", path, hit->path);
    ddct_inputs_free(&ids);
    FORWARD_IF_ERROR(rc);
    RETURN_ERROR_IF(!overwrite, e, DDCT_ERR_EXISTS, "output '%s' exists (overwrite not allowed)", path);
    RETURN_ERROR_IF(!S_ISREG(st.st_mode), e, DDCT_ERR_IO, "output '%s' exists and is not a regular file", path);
    *old = st;
    *had_old = 1;
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
    ddct_aw_free(f->aw);
    free(f->final_path);
    free(f->tmp_path);
    free(f->dir);
    if (f->dbuf[0]) {
        free(f->dbuf[0]);
        free(f->dbuf[1]);
    } else {
        free(f->buf);
    }
    free(f);
}

int ddct_ofile_open(ddct_ofile **out, const char *final_path, int overwrite, const char *const *inputs,
                    ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!final_path, e, DDCT_ERR_PARAM, "no output path given");
    struct stat old;
    int had_old;
    FORWARD_IF_ERROR(check_target(final_path, overwrite, inputs, &old, &had_old, e));
    ddct_ofile *f = calloc(1, sizeof *f);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "output '%s': out of memory", final_path);
    f->fd = -1;
    f->overwrite = overwrite;
    int rc = make_paths(f, final_path, e);
    f->bufcap = OFILE_BUFSIZE;
    if (!rc && !(f->buf = malloc(OFILE_BUFSIZE)))
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "output '%s': out of memory", final_path);
    if (!rc && (f->fd = mkostemp(f->tmp_path, O_CLOEXEC)) < 0)
        rc = ddct_seterr(e, DDCT_ERR_IO, "output '%s': cannot create temporary file in '%s': %s", final_path,
                         f->dir, strerror(errno));
    if (rc) {
        ofile_free(f);
        return rc;
    }
    if (had_old) ddct_keep_mode(f->fd, f->tmp_path, &old); /* -f never widens who may read the file */
    else (void)fchmod(f->fd, 0666 & ~ddct_umask());
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

/* Clear O_DIRECT on fd: later writes go through the page cache. */
static void clear_direct(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_DIRECT)) (void)fcntl(fd, F_SETFL, fl & ~O_DIRECT);
}

/* Write all n bytes at `at` (pwrite) or at the end (write), retrying short writes and EINTR; a
 * direct write the filesystem refuses (EINVAL) is retried through the page cache. 0 or errno.
 * Touches nothing of f but the descriptor: the direct writer thread calls it too. */
static int write_fd(int fd, const uint8_t *p, size_t n, int positional, uint64_t at, uint64_t *done)
{
    int retried = 0;
    *done = 0;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = positional ? pwrite(fd, p, chunk, (off_t)at) : write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EINVAL && !retried && (fcntl(fd, F_GETFL) & O_DIRECT)) {
            clear_direct(fd);
            retried = 1;
            continue;
        }
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
        at += (uint64_t)w;
        *done += (uint64_t)w;
    }
    return 0;
}

static int write_all(ddct_ofile *f, const uint8_t *p, size_t n, int positional, uint64_t at, ddct_err *e)
{
    uint64_t done;
    int err = write_fd(f->fd, p, n, positional, at, &done);
    return err ? io_fail(f, positional ? "pwrite" : "write", at + done, err, e) : 0;
}

/* The direct writer thread's sink: one whole buffer at the end of the file. */
static int direct_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    ddct_ofile *f = opaque;
    uint64_t done;
    int err = write_fd(f->fd, p, n, 0, f->aw_at, &done);
    f->aw_at += done;
    RETURN_ERROR_IF(err, e, DDCT_ERR_IO, "output '%s': write failed at byte %llu (temporary '%s'): %s", f->final_path,
                    (unsigned long long)f->aw_at, f->tmp_path, strerror(err));
    return 0;
}

/* Wait for the direct writer; its error latches f. */
static int direct_wait(ddct_ofile *f, ddct_err *e)
{
    if (!f->aw || !ddct_aw_wait(f->aw, e)) return 0;
    f->failed = 1;
    return e->code;
}

/* Direct mode, buffer full: hand it to the writer thread (once the previous one is written) and
 * go on filling the other one. */
static int direct_submit(ddct_ofile *f, ddct_err *e)
{
    if (!f->aw) FORWARD_IF_ERROR(write_all(f, f->buf, f->buflen, 0, f->flushed, e));
    else if (ddct_aw_submit(f->aw, f->buf, f->buflen, e)) {
        f->failed = 1;
        return e->code;
    }
    f->flushed += f->buflen;
    f->buflen = 0;
    f->cur ^= 1;
    f->buf = f->dbuf[f->cur];
    return 0;
}

/* Everything buffered into the file. Direct mode ends here: the writer thread is waited for,
 * the whole blocks of the buffer go direct, the rest through the page cache. */
static int flush_buf(ddct_ofile *f, ddct_err *e)
{
    size_t n = f->buflen, whole = 0;
    if (f->direct) {
        FORWARD_IF_ERROR(direct_wait(f, e));
        whole = n - n % OFILE_DIRECT_ALIGN;
        if (whole) FORWARD_IF_ERROR(write_all(f, f->buf, whole, 0, f->flushed, e));
        clear_direct(f->fd);
        f->direct = 0; /* from here on an ordinary buffered file, its buffer dbuf[cur] */
        f->flushed += whole;
        n -= whole;
    }
    f->buflen = 0;
    if (n == 0) return 0;
    FORWARD_IF_ERROR(write_all(f, f->buf + whole, n, 0, f->flushed, e));
    f->flushed += n;
    return 0;
}

int ddct_ofile_set_direct(ddct_ofile *f)
{
    if (!f || f->failed || f->direct || f->flushed != 0 || f->buflen > OFILE_DIRECT_BUFSIZE) return 0;
    void *b0 = NULL, *b1 = NULL;
    if (posix_memalign(&b0, OFILE_DIRECT_ALIGN, OFILE_DIRECT_BUFSIZE) != 0) return 0;
    if (posix_memalign(&b1, OFILE_DIRECT_ALIGN, OFILE_DIRECT_BUFSIZE) != 0) {
        free(b0);
        return 0;
    }
    int fl = fcntl(f->fd, F_GETFL);
    if (fl < 0 || fcntl(f->fd, F_SETFL, fl | O_DIRECT) != 0) {
        free(b0);
        free(b1);
        return 0;
    }
    if (f->buflen) memcpy(b0, f->buf, f->buflen);
    free(f->buf);
    f->dbuf[0] = f->buf = b0;
    f->dbuf[1] = b1;
    f->cur = 0;
    f->bufcap = OFILE_DIRECT_BUFSIZE;
    f->direct = 1;
    f->aw = ddct_aw_create(direct_sink, f); /* NULL: synchronous direct writes */
    return 1;
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
    while (f->direct && n) { /* whole buffers only: every direct write is aligned */
        size_t k = f->bufcap - f->buflen < n ? f->bufcap - f->buflen : n;
        memcpy(f->buf + f->buflen, s, k);
        f->buflen += k;
        s += k;
        n -= k;
        if (f->buflen == f->bufcap) FORWARD_IF_ERROR(direct_submit(f, e));
    }
    if (n >= f->bufcap - f->buflen) {
        FORWARD_IF_ERROR(flush_buf(f, e));
        if (n >= f->bufcap) {
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
    ddct_aw_free(f->aw); /* a direct write in flight ends before the descriptor closes */
    f->aw = NULL;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp_path);
    ofile_free(f);
}
