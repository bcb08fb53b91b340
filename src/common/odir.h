/*
 * odir.h — atomic output directories (the directory twin of ofile.h).
 *
 * Files are written (each through ddct_ofile) into a temporary sibling directory
 * "<parent>/.<name>.tmp.XXXXXX"; ddct_odir_commit() renames it to the final path only after
 * everything succeeded. An existing output directory is refused unless overwrite is set, and
 * even then only replaced at commit (atomically swapped with RENAME_EXCHANGE where the
 * filesystem has it), and only when it holds nothing but regular files: a directory with
 * subdirectories, or one that is or holds an input (also by identity: any file in it that is one
 * of the inputs' files, links followed, see ddct_inputs in ofile.h), is never replaced; the
 * inputs list must stay valid until commit, which checks again. A replaced directory's mode and
 * owner (where permitted), and those of its same-named files, carry over to the new one; a new
 * directory gets 0777 & ~umask. ddct_odir_abort() removes the temporary directory.
 */
#ifndef DDCT_ODIR_H
#define DDCT_ODIR_H

#include "error_private.h"

typedef struct ddct_odir ddct_odir;

int ddct_odir_open(ddct_odir **out, const char *final_path, int overwrite, const char *const *inputs, ddct_err *e);
/* Path of name inside the temporary directory (allocated; NULL when out of memory). */
char *ddct_odir_file(const ddct_odir *d, const char *name);
int ddct_odir_commit(ddct_odir *d, ddct_err *e); /* frees d */
void ddct_odir_abort(ddct_odir *d);              /* frees d; NULL ok */

#endif
