/*
 * zip.h — the ZIP container as PyTorch's torch.save (>= 1.6) writes it: stored (uncompressed)
 * entries, ZIP64 where an offset or size passes 4 GiB.
 *
 * Reference: PKWARE APPNOTE.TXT 6.3.x (4.3.7 local header, 4.3.12 central directory header,
 * 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field).
 *
 * Reader (over bytes already in memory or mapped): finds the end of central directory record
 * in the last 65,557 bytes, follows the ZIP64 locator when present, and checks before use:
 * one disk only; the central directory lies inside the file before its end record; the entry
 * count is what the directory's size can hold (46 bytes an entry at least), so memory is bounded
 * by the file; every header's signature; names not empty, without NUL; an entry's local header
 * and data lie inside the file, before the central directory, and no two entries' data overlap.
 * Compressed or encrypted entries are listed (method kept) but their data offset is only valid
 * for method 0 (stored); callers refuse the others by name. Errors name the file, the entry and
 * the byte offset.
 *
 * Writer: stored entries only, each entry's data aligned to `align` bytes by padding the local
 * header's extra field (as torch does, id 0x4246 "FB"); the CRC-32 (zlib) of each entry is
 * computed while streaming and written into its local header at the end (pwrite), so entries
 * need no data descriptor and the data can go out with O_DIRECT. Entry sizes are declared up front. ZIP64 records are written
 * for any size or offset >= 0xFFFFFFFF (or always, with force_zip64, for tests).
 */
#ifndef DDCT_ZIP_H
#define DDCT_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include "common/error_private.h"
#include "common/mapfile.h"
#include "common/ofile.h"

typedef struct {
    const char *name;    /* NUL-terminated copy */
    uint64_t data;       /* file offset of the entry's data (stored entries) */
    uint64_t size;       /* uncompressed size */
    uint64_t csize;      /* compressed size (== size for stored) */
    uint32_t crc;
    uint16_t method;     /* 0 stored, 8 deflate, ... */
    uint16_t flags;      /* general purpose bits (bit 0: encrypted) */
} ddct_zip_entry;

typedef struct {
    ddct_zip_entry *e;
    size_t n;
    char *names;
} ddct_zip;

/* 1 if the bytes start like a ZIP file (local header signature). */
int ddct_zip_sniff(const uint8_t *p, uint64_t size);
/* Read the directory of the bytes m holds (local headers by pread when m is a file's mapping);
 * label names the file in errors. */
int ddct_zip_read(ddct_zip *z, const ddct_map *m, const char *label, ddct_err *e);
void ddct_zip_free(ddct_zip *z);
/* The entry of that name, or NULL (linear: directories of torch files are small). */
const ddct_zip_entry *ddct_zip_find(const ddct_zip *z, const char *name);

typedef struct ddct_zip_writer ddct_zip_writer;
int ddct_zipw_open(ddct_zip_writer **out, ddct_ofile *of, unsigned align, int force_zip64, ddct_err *e);
/* Start an entry of `size` bytes; its data follows with ddct_zipw_write. */
int ddct_zipw_begin(ddct_zip_writer *w, const char *name, uint64_t size, ddct_err *e);
int ddct_zipw_write(ddct_zip_writer *w, const void *p, size_t n, ddct_err *e);
/* Write the central directory and end records; the ofile stays the caller's. Frees w. */
int ddct_zipw_finish(ddct_zip_writer *w, ddct_err *e);
void ddct_zipw_free(ddct_zip_writer *w);

#endif
