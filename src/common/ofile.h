/*
 * ofile.h — atomic output files.
 *
 * Output is written to a temporary file in the destination's directory
 * ("<dir>/.<name>.tmp.XXXXXX") and renamed over the final path only by
 * ddct_ofile_commit() after every write (and fsync) succeeded. ddct_ofile_abort()
 * (or any failed write followed by abort) unlinks the temporary: a failure never
 * leaves a half file and never touches a previous file at the final path.
 */
#ifndef DDCT_OFILE_H
#define DDCT_OFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "error_private.h"

typedef struct ddct_ofile ddct_ofile;

/* overwrite=0: DDCT_ERR_EXISTS if final_path exists. The inputs (NULL-terminated list, may be
 * NULL) are compared by real identity (device + inode, links followed, see ddct_inputs):
 * writing over an input is DDCT_ERR_EXISTS, even with overwrite. A file replaced with overwrite
 * keeps its mode (permission bits) and, where permitted, its owner and group; a new file gets
 * 0666 & ~umask. */
int ddct_ofile_open(ddct_ofile **out, const char *final_path, int overwrite, const char *const *inputs,
                    ddct_err *e);
/* The real identities of a list of inputs (the files an output must never replace): each input
 * file (links followed); for an input that is a directory, or a sharded checkpoint's index
 * (*.index.json), also every file of that directory (links followed: a Hugging Face cache's
 * blobs, shards and carried files alike). */
typedef struct {
    dev_t dev;
    ino_t ino;
    char *path;        /* the file, as reached from the input */
    const char *input; /* the input as named */
} ddct_input_id;
typedef struct {
    ddct_input_id *v;
    size_t n, cap;
} ddct_inputs;
int ddct_inputs_collect(ddct_inputs *s, const char *const *inputs, ddct_err *e);
/* The input that st (from stat) is, or NULL. */
const ddct_input_id *ddct_inputs_find(const ddct_inputs *s, const struct stat *st);
void ddct_inputs_free(ddct_inputs *s);
/* Make path (a file or directory just written) take the owner, group (where permitted) and
 * permission bits of old (what it replaces): set-id bits only for a directory. fd >= 0: use it. */
void ddct_keep_mode(int fd, const char *path, const struct stat *old);

int ddct_ofile_write(ddct_ofile *f, const void *p, size_t n, ddct_err *e);
int ddct_ofile_pwrite(ddct_ofile *f, const void *p, size_t n, uint64_t offset, ddct_err *e);
uint64_t ddct_ofile_tell(const ddct_ofile *f);
/* Write the bulk of the file with O_DIRECT from an aligned 8 MiB buffer (see ofile.c), for
 * outputs of many GB. Only before the first flush; best effort: returns 1 if direct mode is
 * on, 0 if the file stays buffered (filesystem without O_DIRECT, no memory, too late). */
int ddct_ofile_set_direct(ddct_ofile *f);
/* Read back n bytes written at offset (buffered bytes are flushed first). */
int ddct_ofile_pread(ddct_ofile *f, void *p, size_t n, uint64_t offset, ddct_err *e);
/* fsync a directory (best effort), e.g. after renaming into it. */
void ddct_sync_dir(const char *dir);
/* The process umask, read without changing it. */
mode_t ddct_umask(void);
int ddct_ofile_commit(ddct_ofile *f, ddct_err *e); /* flush, fsync, rename; frees f */
void ddct_ofile_abort(ddct_ofile *f);              /* unlink temp; frees f; NULL ok */

#endif
