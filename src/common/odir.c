/* odir.c — atomic output directories, see odir.h. */
#include "odir.h"
#include "ofile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ddct_odir {
    char *final_path; /* without trailing slashes */
    char *tmp_path;
    char *parent;
    int overwrite;
    const char *const *inputs; /* checked again at commit */
};

static void odir_free(ddct_odir *d)
{
    free(d->final_path);
    free(d->tmp_path);
    free(d->parent);
    free(d);
}

/* Remove a directory holding only regular files (what this module writes). Best effort. */
static void remove_flat_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) (void)unlinkat(fd, de->d_name, 0);
    closedir(dir);
    (void)rmdir(path);
}

/* 1 if path holds only regular files (no subdirectories, links or devices). */
static int flat_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return 0;
    }
    int ok = 1;
    struct dirent *de;
    while (ok && (de = readdir(dir))) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        ok = fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    }
    closedir(dir);
    return ok;
}

/* The first file of directory path (links followed) that is one of the inputs, by identity. */
static int holds_input(const char *path, const char *const *inputs, ddct_err *e)
{
    ddct_inputs ids;
    FORWARD_IF_ERROR(ddct_inputs_collect(&ids, inputs, e));
    int rc = 0;
    DIR *dir = ids.n ? opendir(path) : NULL;
    struct dirent *de;
    while (!rc && dir && (de = readdir(dir))) {
        struct stat st;
        const ddct_input_id *hit;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (fstatat(dirfd(dir), de->d_name, &st, 0) != 0 || !(hit = ddct_inputs_find(&ids, &st))) continue;
        if (strcmp(hit->path, hit->input))
            rc = ddct_seterr(e, DDCT_ERR_EXISTS,
                             "output '%s' holds '%s/%s', which is also an input ('%s', a file of the model '%s'): "
                             "not replacing it",
                             path, path, de->d_name, hit->path, hit->input);
        else
            rc = ddct_seterr(e, DDCT_ERR_EXISTS,
                             "output '%s' holds '%s/%s', which is also an input ('%s'): not replacing it", path, path,
                             de->d_name, hit->path);
    }
    if (dir) closedir(dir);
    ddct_inputs_free(&ids);
    return rc;
}

/* The output directory: refused when it is, holds or (by identity, links followed) contains an
 * input, or exists without overwrite, or holds anything but regular files. *old: what it
 * replaces (*had_old = 1). */
static int check_target(const ddct_odir *d, const char *const *inputs, struct stat *old, int *had_old, ddct_err *e)
{
    const char *path = d->final_path;
    struct stat st;
    *had_old = 0;
    if (lstat(path, &st) != 0) {
        RETURN_ERROR_IF(errno != ENOENT, e, DDCT_ERR_IO, "output '%s': %s", path, strerror(errno));
        return 0;
    }
    RETURN_ERROR_IF(!S_ISDIR(st.st_mode), e, DDCT_ERR_EXISTS, "output '%s' exists and is not a directory", path);
    for (size_t i = 0; inputs && inputs[i]; i++) {
        struct stat in;
        char *dir = strdup(inputs[i]), *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) *slash = 0;
        int holds = dir && stat(slash ? (*dir ? dir : "/") : ".", &in) == 0 && in.st_dev == st.st_dev &&
                    in.st_ino == st.st_ino;
        int is = stat(inputs[i], &in) == 0 && in.st_dev == st.st_dev && in.st_ino == st.st_ino;
        free(dir);
        RETURN_ERROR_IF(holds || is, e, DDCT_ERR_EXISTS, "output '%s' is or holds an input ('%s')", path, inputs[i]);
    }
    FORWARD_IF_ERROR(holds_input(path, inputs, e));
    RETURN_ERROR_IF(!d->overwrite, e, DDCT_ERR_EXISTS, "output '%s' exists (overwrite not allowed)", path);
    RETURN_ERROR_IF(!flat_dir(path), e, DDCT_ERR_EXISTS,
                    "output '%s' holds subdirectories or special files: not replacing it", path);
    *old = st;
    *had_old = 1;
    return 0;
}

/* The new directory and its files take the mode (and owner where permitted) of the directory
 * and the same-named files they replace. Best effort. */
static void keep_modes(const ddct_odir *d, const struct stat *old_dir)
{
    ddct_keep_mode(-1, d->tmp_path, old_dir);
    DIR *dir = opendir(d->tmp_path);
    int ofd = open(d->final_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    struct dirent *de;
    while (dir && ofd >= 0 && (de = readdir(dir))) {
        struct stat old, now;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (fstatat(ofd, de->d_name, &old, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(old.st_mode)) continue;
        int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) continue;
        if (fstat(fd, &now) == 0 && S_ISREG(now.st_mode)) ddct_keep_mode(fd, NULL, &old);
        close(fd);
    }
    if (ofd >= 0) close(ofd);
    if (dir) closedir(dir);
}

static int make_paths(ddct_odir *d, const char *final_path, ddct_err *e)
{
    size_t n = strlen(final_path);
    while (n > 1 && final_path[n - 1] == '/') n--;
    d->final_path = strndup(final_path, n);
    RETURN_ERROR_IF(!d->final_path, e, DDCT_ERR_NOMEM, "out of memory");
    const char *slash = strrchr(d->final_path, '/');
    const char *base = slash ? slash + 1 : d->final_path;
    RETURN_ERROR_IF(!*base || !strcmp(base, ".") || !strcmp(base, ".."), e, DDCT_ERR_PARAM,
                    "output '%s': not a directory name", final_path);
    size_t dlen = slash ? (size_t)(slash - d->final_path) : 0;
    d->parent = slash ? strndup(d->final_path, dlen ? dlen : 1) : strdup(".");
    size_t tl = strlen(d->final_path) + sizeof "/..tmp.XXXXXX" + 1;
    d->tmp_path = malloc(tl);
    RETURN_ERROR_IF(!d->parent || !d->tmp_path, e, DDCT_ERR_NOMEM, "out of memory");
    snprintf(d->tmp_path, tl, "%.*s%s.%s.tmp.XXXXXX", (int)dlen, d->final_path, slash ? "/" : "", base);
    return 0;
}

int ddct_odir_open(ddct_odir **out, const char *final_path, int overwrite, const char *const *inputs, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!final_path || !*final_path, e, DDCT_ERR_PARAM, "no output directory given");
    ddct_odir *d = calloc(1, sizeof *d);
    RETURN_ERROR_IF(!d, e, DDCT_ERR_NOMEM, "out of memory");
    d->overwrite = overwrite;
    d->inputs = inputs;
    struct stat old;
    int had_old = 0;
    int rc = make_paths(d, final_path, e);
    if (!rc) rc = check_target(d, inputs, &old, &had_old, e);
    if (!rc && !mkdtemp(d->tmp_path))
        rc = ddct_seterr(e, DDCT_ERR_IO, "output '%s': cannot create a temporary directory in '%s': %s", final_path,
                         d->parent, strerror(errno));
    if (rc) {
        odir_free(d);
        return rc;
    }
    if (had_old) ddct_keep_mode(-1, d->tmp_path, &old); /* -f never widens who may enter it */
    else (void)chmod(d->tmp_path, 0777 & ~ddct_umask());
    *out = d;
    return 0;
}

char *ddct_odir_file(const ddct_odir *d, const char *name)
{
    size_t n = strlen(d->tmp_path) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", d->tmp_path, name);
    return p;
}

static int publish(ddct_odir *d, ddct_err *e)
{
    if (renameat2(AT_FDCWD, d->tmp_path, AT_FDCWD, d->final_path, RENAME_NOREPLACE) == 0) return 0;
    int err = errno;
    if (err == EEXIST && d->overwrite) {
        ddct_err tmp;
        struct stat old;
        int had_old;
        if (check_target(d, d->inputs, &old, &had_old, &tmp)) RETURN_ERROR(e, tmp.code, "%s", tmp.msg);
        if (had_old) keep_modes(d, &old);
        /* swap atomically, then remove the old tree, now at the temporary name */
        if (renameat2(AT_FDCWD, d->tmp_path, AT_FDCWD, d->final_path, RENAME_EXCHANGE) == 0) {
            remove_flat_dir(d->tmp_path);
            return 0;
        }
        err = errno;
        if (err == EINVAL || err == ENOSYS) { /* no RENAME_EXCHANGE: move the old one aside first */
            char *old = strdup(d->tmp_path);
            if (old && strlen(old) > 6) memcpy(old + strlen(old) - 6, "XXXXXX", 6);
            if (old && mkdtemp(old) && rename(d->final_path, old) == 0) {
                if (rename(d->tmp_path, d->final_path) == 0) {
                    remove_flat_dir(old);
                    free(old);
                    return 0;
                }
                err = errno;
                (void)rename(old, d->final_path); /* put the old one back */
            } else {
                err = errno;
                if (old) (void)rmdir(old);
            }
            free(old);
        }
    } else if (err == EINVAL || err == ENOSYS) { /* no RENAME_NOREPLACE */
        if (access(d->final_path, F_OK) != 0 && rename(d->tmp_path, d->final_path) == 0) return 0;
        err = errno ? errno : EEXIST;
    }
    RETURN_ERROR(e, err == EEXIST || err == ENOTEMPTY ? DDCT_ERR_EXISTS : DDCT_ERR_IO,
                 "output '%s': cannot rename '%s' to it: %s", d->final_path, d->tmp_path,
                 err == EEXIST || err == ENOTEMPTY ? "it appeared while writing (overwrite not allowed)"
                                                   : strerror(err));
}

int ddct_odir_commit(ddct_odir *d, ddct_err *e)
{
    RETURN_ERROR_IF(!d, e, DDCT_ERR_PARAM, "no output directory");
    ddct_sync_dir(d->tmp_path);
    int rc = publish(d, e);
    if (rc) {
        ddct_odir_abort(d);
        return rc;
    }
    ddct_sync_dir(d->parent);
    odir_free(d);
    return 0;
}

void ddct_odir_abort(ddct_odir *d)
{
    if (!d) return;
    remove_flat_dir(d->tmp_path);
    odir_free(d);
}
