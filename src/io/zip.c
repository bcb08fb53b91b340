/*
 * zip.c — ZIP directory reader and stored-entry streaming writer (see zip.h).
 */
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define LOCAL_FIXED 30u
#define CENTRAL_FIXED 46u
#define END_FIXED 22u
#define END64_FIXED 56u
#define LOC64_FIXED 20u
#define U32_MAX_FIELD 0xFFFFFFFFu
#define U16_MAX_FIELD 0xFFFFu

int ddct_zip_sniff(const uint8_t *p, uint64_t size) { return size >= 4 && ddct_le32(p) == SIG_LOCAL; }

void ddct_zip_free(ddct_zip *z)
{
    free(z->e);
    free(z->names);
    memset(z, 0, sizeof *z);
}

const ddct_zip_entry *ddct_zip_find(const ddct_zip *z, const char *name)
{
    for (size_t i = 0; i < z->n; i++)
        if (!strcmp(z->e[i].name, name)) return &z->e[i];
    return NULL;
}

typedef struct {
    uint64_t cd_off, cd_size, count;
    uint64_t end_at; /* where the central directory must end: the first end record */
} zip_end;

static int find_end(const uint8_t *p, uint64_t size, const char *label, zip_end *z, ddct_err *e)
{
    RETURN_ERROR_IF(size < END_FIXED, e, DDCT_ERR_FORMAT, "%s: %llu bytes, too short for a ZIP file", label,
                    (unsigned long long)size);
    uint64_t lo = size - END_FIXED > 65535 ? size - END_FIXED - 65535 : 0, at = size - END_FIXED + 1;
    int found = 0;
    while (at-- > lo)
        if (ddct_le32(p + at) == SIG_END && at + END_FIXED + ddct_le16(p + at + 20) == size) {
            found = 1;
            break;
        }
    RETURN_ERROR_IF(!found, e, DDCT_ERR_FORMAT, "%s: no ZIP end of central directory record (truncated file?)",
                    label);
    const uint8_t *r = p + at;
    uint16_t disk = ddct_le16(r + 4), cd_disk = ddct_le16(r + 6);
    uint16_t n_disk = ddct_le16(r + 8), n = ddct_le16(r + 10);
    uint32_t cd_size = ddct_le32(r + 12), cd_off = ddct_le32(r + 16);
    z->count = n;
    z->cd_size = cd_size;
    z->cd_off = cd_off;
    z->end_at = at;
    int z64 = n == U16_MAX_FIELD || n_disk == U16_MAX_FIELD || cd_size == U32_MAX_FIELD || cd_off == U32_MAX_FIELD;
    if (at >= LOC64_FIXED && ddct_le32(p + at - LOC64_FIXED) == SIG_LOC64) {
        const uint8_t *l = p + at - LOC64_FIXED;
        uint64_t off = ddct_le64(l + 8);
        RETURN_ERROR_IF(ddct_le32(l + 4) != 0 || ddct_le32(l + 16) > 1, e, DDCT_ERR_FORMAT,
                        "%s: a ZIP file on several disks: not supported", label);
        RETURN_ERROR_IF(off > at - LOC64_FIXED || at - LOC64_FIXED - off < END64_FIXED, e, DDCT_ERR_FORMAT,
                        "%s: ZIP64 end record offset %llu (at byte %llu) is outside the file", label,
                        (unsigned long long)off, (unsigned long long)(at - LOC64_FIXED + 8));
        const uint8_t *q = p + off;
        RETURN_ERROR_IF(ddct_le32(q) != SIG_END64, e, DDCT_ERR_FORMAT, "%s: no ZIP64 end record at byte %llu", label,
                        (unsigned long long)off);
        RETURN_ERROR_IF(ddct_le32(q + 16) != 0 || ddct_le32(q + 20) != 0 || ddct_le64(q + 24) != ddct_le64(q + 32), e,
                        DDCT_ERR_FORMAT, "%s: a ZIP file on several disks: not supported", label);
        z->count = ddct_le64(q + 32);
        z->cd_size = ddct_le64(q + 40);
        z->cd_off = ddct_le64(q + 48);
        z->end_at = off;
    } else {
        RETURN_ERROR_IF(z64, e, DDCT_ERR_FORMAT, "%s: ZIP end record needs ZIP64 values but has no ZIP64 locator",
                        label);
        RETURN_ERROR_IF(disk != 0 || cd_disk != 0 || n_disk != n, e, DDCT_ERR_FORMAT,
                        "%s: a ZIP file on several disks: not supported", label);
    }
    RETURN_ERROR_IF(z->cd_off > z->end_at || z->cd_size != z->end_at - z->cd_off, e, DDCT_ERR_FORMAT,
                    "%s: ZIP central directory [%llu, +%llu) does not end where its end record starts (byte %llu)",
                    label, (unsigned long long)z->cd_off, (unsigned long long)z->cd_size,
                    (unsigned long long)z->end_at);
    RETURN_ERROR_IF(z->count > z->cd_size / CENTRAL_FIXED, e, DDCT_ERR_FORMAT,
                    "%s: ZIP end record claims %llu entries; its %llu-byte central directory holds at most %llu",
                    label, (unsigned long long)z->count, (unsigned long long)z->cd_size,
                    (unsigned long long)(z->cd_size / CENTRAL_FIXED));
    return 0;
}

/* The ZIP64 extra field's values for the fields that are saturated in the header. */
static int zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize, uint64_t *lho)
{
    while (xlen >= 4) {
        uint16_t id = ddct_le16(x), len = ddct_le16(x + 2);
        if ((size_t)len + 4 > xlen) return -1;
        if (id == 1) {
            const uint8_t *v = x + 4;
            size_t left = len;
            uint64_t *want[3] = {usize, csize, lho};
            for (int k = 0; k < 3; k++) {
                if (*want[k] != U32_MAX_FIELD) continue;
                if (left < 8) return -1;
                *want[k] = ddct_le64(v);
                v += 8;
                left -= 8;
            }
            return 0;
        }
        x += 4 + len;
        xlen -= 4 + (size_t)len;
    }
    return *usize == U32_MAX_FIELD || *csize == U32_MAX_FIELD || *lho == U32_MAX_FIELD ? -1 : 0;
}

static int cmp_data(const void *a, const void *b)
{
    const ddct_zip_entry *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const ddct_zip_entry *const *)a)->name, (*(const ddct_zip_entry *const *)b)->name);
}

static int check_unique(const ddct_zip *z, const char *label, ddct_err *e)
{
    const ddct_zip_entry **s = malloc((z->n + 1) * sizeof *s);
    RETURN_ERROR_IF(!s, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < z->n; i++) s[i] = &z->e[i];
    qsort(s, z->n, sizeof *s, cmp_name);
    int rc = 0;
    for (size_t i = 1; i < z->n && !rc; i++)
        if (!strcmp(s[i]->name, s[i - 1]->name))
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: ZIP entry '%s' appears twice", label, s[i]->name);
    free(s);
    return rc;
}

int ddct_zip_read(ddct_zip *z, const ddct_map *m, const char *label, ddct_err *e)
{
    const uint8_t *p = m->p;
    uint64_t size = m->size;
    memset(z, 0, sizeof *z);
    zip_end end = {0, 0, 0, 0};
    FORWARD_IF_ERROR(find_end(p, size, label, &end, e));
    /* names: at most the directory's size in all */
    z->e = calloc((size_t)end.count + 1, sizeof *z->e);
    z->names = malloc((size_t)end.cd_size + 1);
    RETURN_ERROR_IF(!z->e || !z->names, e, DDCT_ERR_NOMEM, "out of memory");
    uint64_t at = end.cd_off, names_len = 0;
    char esc[DDCT_ESC_NAME];
    for (uint64_t i = 0; i < end.count; i++) {
        RETURN_ERROR_IF(end.end_at - at < CENTRAL_FIXED || ddct_le32(p + at) != SIG_CENTRAL, e, DDCT_ERR_FORMAT,
                        "%s: ZIP central directory entry %llu at byte %llu: bad signature or truncated", label,
                        (unsigned long long)i, (unsigned long long)at);
        const uint8_t *c = p + at;
        uint16_t flags = ddct_le16(c + 8), method = ddct_le16(c + 10);
        uint64_t csize = ddct_le32(c + 20), usize = ddct_le32(c + 24), lho = ddct_le32(c + 42);
        uint32_t crc = ddct_le32(c + 16);
        size_t nlen = ddct_le16(c + 28), xlen = ddct_le16(c + 30), clen = ddct_le16(c + 32);
        RETURN_ERROR_IF(end.end_at - at - CENTRAL_FIXED < (uint64_t)nlen + xlen + clen, e, DDCT_ERR_FORMAT,
                        "%s: ZIP central directory entry %llu at byte %llu runs past the directory", label,
                        (unsigned long long)i, (unsigned long long)at);
        const char *nm = (const char *)c + CENTRAL_FIXED;
        RETURN_ERROR_IF(nlen == 0 || memchr(nm, 0, nlen), e, DDCT_ERR_FORMAT,
                        "%s: ZIP entry %llu at byte %llu has an empty name or one with a NUL byte", label,
                        (unsigned long long)i, (unsigned long long)at);
        ddct_zip_entry *en = &z->e[z->n];
        memcpy(z->names + names_len, nm, nlen);
        z->names[names_len + nlen] = 0;
        en->name = (const char *)(uintptr_t)names_len; /* an offset until the names stop moving */
        names_len += nlen + 1;
        const char *name = z->names + names_len - nlen - 1;
        RETURN_ERROR_IF(zip64_extra(c + CENTRAL_FIXED + nlen, xlen, &usize, &csize, &lho), e, DDCT_ERR_FORMAT,
                        "%s: ZIP entry '%s': bad ZIP64 extra field (at byte %llu)", label,
                        ddct_escape(name, esc, sizeof esc), (unsigned long long)(at + CENTRAL_FIXED + nlen));
        RETURN_ERROR_IF(ddct_le16(c + 34) != 0, e, DDCT_ERR_FORMAT, "%s: ZIP entry '%s' is on another disk", label,
                        ddct_escape(name, esc, sizeof esc));
        /* its local header and data */
        RETURN_ERROR_IF(lho > end.cd_off || end.cd_off - lho < LOCAL_FIXED, e, DDCT_ERR_FORMAT,
                        "%s: ZIP entry '%s': no local header at byte %llu", label, ddct_escape(name, esc, sizeof esc),
                        (unsigned long long)lho);
        /* read, not touched through the mapping: one header before every storage would fault
         * in the pages around it (tens of MB of a large checkpoint) */
        uint8_t lh[LOCAL_FIXED];
        int pr = ddct_map_pread(m, lho, lh, LOCAL_FIXED);
        RETURN_ERROR_IF(pr == DDCT_MAP_CHANGED, e, DDCT_ERR_IO, "input changed while reading: %s", label);
        const uint8_t *h = pr == 0 ? lh : p + lho;
        RETURN_ERROR_IF(ddct_le32(h) != SIG_LOCAL, e, DDCT_ERR_FORMAT, "%s: ZIP entry '%s': no local header at byte %llu",
                        label, ddct_escape(name, esc, sizeof esc), (unsigned long long)lho);
        uint64_t data = lho + LOCAL_FIXED + ddct_le16(h + 26) + ddct_le16(h + 28);
        RETURN_ERROR_IF(data > end.cd_off || end.cd_off - data < csize, e, DDCT_ERR_FORMAT,
                        "%s: ZIP entry '%s': %llu bytes of data at byte %llu run past the central directory (byte "
                        "%llu; truncated file?)",
                        label, ddct_escape(name, esc, sizeof esc), (unsigned long long)csize,
                        (unsigned long long)data, (unsigned long long)end.cd_off);
        RETURN_ERROR_IF(method == 0 && csize != usize, e, DDCT_ERR_FORMAT,
                        "%s: ZIP entry '%s' is stored but its sizes differ (%llu and %llu)", label,
                        ddct_escape(name, esc, sizeof esc), (unsigned long long)csize, (unsigned long long)usize);
        *en = (ddct_zip_entry){.name = en->name, .data = data, .size = usize, .csize = csize, .crc = crc,
                               .method = method, .flags = flags};
        z->n++;
        at += CENTRAL_FIXED + nlen + xlen + clen;
    }
    for (size_t i = 0; i < z->n; i++) z->e[i].name = z->names + (uintptr_t)z->e[i].name;
    /* no two entries' data overlap (a local header sits just before each) */
    ddct_zip_entry *s = malloc((z->n + 1) * sizeof *s);
    RETURN_ERROR_IF(!s, e, DDCT_ERR_NOMEM, "out of memory");
    memcpy(s, z->e, z->n * sizeof *s);
    qsort(s, z->n, sizeof *s, cmp_data);
    int rc = 0;
    for (size_t i = 1; i < z->n && !rc; i++)
        if (s[i].data - s[i - 1].data < s[i - 1].csize + LOCAL_FIXED + 1)
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: ZIP entries '%s' and '%s' overlap (data at bytes %llu and %llu)",
                             label, s[i - 1].name, s[i].name, (unsigned long long)s[i - 1].data,
                             (unsigned long long)s[i].data);
    free(s);
    return rc ? rc : check_unique(z, label, e);
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    uint64_t lho, size;
    uint32_t crc;
    char *name;
} wentry;

struct ddct_zip_writer {
    ddct_ofile *of;
    unsigned align;
    int force64;
    wentry *v;
    size_t n, cap;
    uint64_t left; /* bytes the current entry still takes */
    int open;      /* an entry is being written */
};

int ddct_zipw_open(ddct_zip_writer **out, ddct_ofile *of, unsigned align, int force_zip64, ddct_err *e)
{
    *out = NULL;
    ddct_zip_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "out of memory");
    w->of = of;
    w->align = align ? align : 1;
    w->force64 = force_zip64;
    *out = w;
    return 0;
}

void ddct_zipw_free(ddct_zip_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->v[i].name);
    free(w->v);
    free(w);
}

static int end_entry(ddct_zip_writer *w, ddct_err *e)
{
    if (!w->open) return 0;
    wentry *c = &w->v[w->n - 1];
    RETURN_ERROR_IF(w->left, e, DDCT_ERR_INTERNAL, "ZIP entry '%s': %llu bytes missing", c->name,
                    (unsigned long long)w->left);
    w->open = 0;
    return 0;
}

static void put16(ddct_buf *b, uint32_t v) { ddct_buf_u16(b, (uint16_t)v); }

int ddct_zipw_begin(ddct_zip_writer *w, const char *name, uint64_t size, ddct_err *e)
{
    FORWARD_IF_ERROR(end_entry(w, e));
    if (w->n == w->cap) {
        size_t c = w->cap ? 2 * w->cap : 16;
        wentry *nv = realloc(w->v, c * sizeof *nv);
        RETURN_ERROR_IF(!nv, e, DDCT_ERR_NOMEM, "out of memory");
        w->v = nv;
        w->cap = c;
    }
    size_t nlen = strlen(name);
    RETURN_ERROR_IF(nlen == 0 || nlen > 0xFFFF, e, DDCT_ERR_PARAM, "ZIP entry name of %zu bytes", nlen);
    uint64_t lho = ddct_ofile_tell(w->of);
    int z64 = w->force64 || size >= U32_MAX_FIELD || lho >= U32_MAX_FIELD;
    ddct_buf h;
    ddct_buf_init(&h);
    uint64_t fixed = lho + LOCAL_FIXED + nlen + (z64 ? 20 : 0) + 4;
    unsigned pad = (unsigned)((w->align - fixed % w->align) % w->align);
    ddct_buf_u32(&h, SIG_LOCAL);
    put16(&h, z64 ? 45 : 20);                              /* version needed */
    put16(&h, 0);                                          /* flags */
    put16(&h, 0);                                          /* stored */
    put16(&h, 0);                                          /* time */
    put16(&h, 0x21);                                       /* date: 1980-01-01 */
    ddct_buf_u32(&h, 0);                                   /* CRC-32: written at the end */
    ddct_buf_u32(&h, z64 ? U32_MAX_FIELD : (uint32_t)size); /* compressed */
    ddct_buf_u32(&h, z64 ? U32_MAX_FIELD : (uint32_t)size); /* uncompressed */
    put16(&h, (uint32_t)nlen);
    put16(&h, (z64 ? 20u : 0u) + 4u + pad);
    ddct_buf_put(&h, name, nlen);
    if (z64) {
        put16(&h, 1);
        put16(&h, 16);
        ddct_buf_u64(&h, size);
        ddct_buf_u64(&h, size);
    }
    put16(&h, 0x4246); /* "FB": padding, as torch writes it */
    put16(&h, pad);
    for (unsigned k = 0; k < pad; k++) ddct_buf_u8(&h, 'Z');
    int rc = ddct_buf_check(&h, e);
    if (!rc) rc = ddct_ofile_write(w->of, h.p, h.len, e);
    ddct_buf_free(&h);
    FORWARD_IF_ERROR(rc);
    wentry *c = &w->v[w->n];
    *c = (wentry){.lho = lho, .size = size, .crc = 0, .name = strdup(name)};
    RETURN_ERROR_IF(!c->name, e, DDCT_ERR_NOMEM, "out of memory");
    c->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    w->n++;
    w->left = size;
    w->open = 1;
    return 0;
}

int ddct_zipw_write(ddct_zip_writer *w, const void *p, size_t n, ddct_err *e)
{
    RETURN_ERROR_IF(!w->open || n > w->left, e, DDCT_ERR_INTERNAL, "ZIP entry written past its declared size");
    wentry *c = &w->v[w->n - 1];
    const uint8_t *q = p;
    for (size_t left = n; left;) { /* zlib's crc32 takes a uInt length */
        uInt k = left > (1u << 30) ? (1u << 30) : (uInt)left;
        c->crc = (uint32_t)crc32(c->crc, q, k);
        q += k;
        left -= k;
    }
    w->left -= n;
    return ddct_ofile_write(w->of, p, n, e);
}

int ddct_zipw_finish(ddct_zip_writer *w, ddct_err *e)
{
    int rc = end_entry(w, e);
    /* the CRCs into the local headers, now that the data is written (a pwrite ends an O_DIRECT
     * file's direct mode: only the directory is left to write) */
    for (size_t i = 0; i < w->n && !rc; i++) {
        uint8_t crc[4];
        ddct_st32(crc, w->v[i].crc);
        rc = ddct_ofile_pwrite(w->of, crc, 4, w->v[i].lho + 14, e);
    }
    ddct_buf b;
    ddct_buf_init(&b);
    uint64_t cd_off = ddct_ofile_tell(w->of);
    for (size_t i = 0; i < w->n && !rc; i++) {
        const wentry *c = &w->v[i];
        int big = w->force64 || c->size >= U32_MAX_FIELD, far = w->force64 || c->lho >= U32_MAX_FIELD;
        size_t nlen = strlen(c->name), xlen = big || far ? 4 + (big ? 16 : 0) + (far ? 8 : 0) : 0;
        ddct_buf_u32(&b, SIG_CENTRAL);
        put16(&b, big || far ? 45 : 20); /* made by */
        put16(&b, big || far ? 45 : 20); /* needed */
        put16(&b, 0);
        put16(&b, 0);
        put16(&b, 0);
        put16(&b, 0x21);
        ddct_buf_u32(&b, c->crc);
        ddct_buf_u32(&b, big ? U32_MAX_FIELD : (uint32_t)c->size);
        ddct_buf_u32(&b, big ? U32_MAX_FIELD : (uint32_t)c->size);
        put16(&b, (uint32_t)nlen);
        put16(&b, (uint32_t)xlen);
        put16(&b, 0); /* comment */
        put16(&b, 0); /* disk */
        put16(&b, 0); /* internal attributes */
        ddct_buf_u32(&b, 0);
        ddct_buf_u32(&b, far ? U32_MAX_FIELD : (uint32_t)c->lho);
        ddct_buf_put(&b, c->name, nlen);
        if (xlen) {
            put16(&b, 1);
            put16(&b, (uint32_t)xlen - 4);
            if (big) {
                ddct_buf_u64(&b, c->size);
                ddct_buf_u64(&b, c->size);
            }
            if (far) ddct_buf_u64(&b, c->lho);
        }
    }
    uint64_t cd_size = b.len, end64 = cd_off + cd_size;
    int z64 = w->force64 || w->n >= U16_MAX_FIELD || cd_off >= U32_MAX_FIELD || cd_size >= U32_MAX_FIELD;
    if (z64) {
        ddct_buf_u32(&b, SIG_END64);
        ddct_buf_u64(&b, END64_FIXED - 12);
        put16(&b, 45);
        put16(&b, 45);
        ddct_buf_u32(&b, 0);
        ddct_buf_u32(&b, 0);
        ddct_buf_u64(&b, w->n);
        ddct_buf_u64(&b, w->n);
        ddct_buf_u64(&b, cd_size);
        ddct_buf_u64(&b, cd_off);
        ddct_buf_u32(&b, SIG_LOC64);
        ddct_buf_u32(&b, 0);
        ddct_buf_u64(&b, end64);
        ddct_buf_u32(&b, 1);
    }
    ddct_buf_u32(&b, SIG_END);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, z64 ? U16_MAX_FIELD : (uint32_t)w->n);
    put16(&b, z64 ? U16_MAX_FIELD : (uint32_t)w->n);
    ddct_buf_u32(&b, z64 ? U32_MAX_FIELD : (uint32_t)cd_size);
    ddct_buf_u32(&b, z64 ? U32_MAX_FIELD : (uint32_t)cd_off);
    put16(&b, 0);
    if (!rc) rc = ddct_buf_check(&b, e);
    if (!rc) rc = ddct_ofile_write(w->of, b.p, b.len, e);
    ddct_buf_free(&b);
    ddct_zipw_free(w);
    return rc;
}
