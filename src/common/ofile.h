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
#include <sys/types.h>
#include "error_private.h"

typedef struct ddct_ofile ddct_ofile;

/* overwrite=0: DDCT_ERR_EXISTS if final_path exists. The inputs (NULL-terminated list,
 * may be NULL) are compared by device/inode: writing over an input is DDCT_ERR_EXISTS. */
int ddct_ofile_open(ddct_ofile **out, const char *final_path, int overwrite, const char *const *inputs,
                    ddct_err *e);
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
