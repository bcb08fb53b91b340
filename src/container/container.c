/*
 * container.c — .ddct writer and validating reader (layout in container.h and docs/FORMAT.md).
 */
#include "container.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/mapfile.h"
#include "common/nameset.h"
#include "common/ofile.h"

static const uint8_t MAGIC[8] = {0x89, 'D', 'D', 'C', 'T', '\r', '\n', 0x1a};
static const uint8_t MAGIC_END[8] = {'D', 'D', 'C', 'T', 'E', 'N', 'D', 0};
#define HEADER_FIXED 20 /* magic + major + minor + flags + json_len */

int ddct_ctr_has_magic(const void *p, size_t n) { return n >= 8 && !memcmp(p, MAGIC, 8); }
#define MAX_HEADER_JSON (64u << 20)

uint64_t ddct_tensor_fingerprint(ddct_dtype dt, int ndim, const uint64_t *shape, const void *data, uint64_t nbytes)
{
    return ddct_tensor_fingerprint_cb(dt, ndim, shape, data, nbytes, NULL, NULL);
}

/* The state is an XXH3 state, fed the head (dtype, ndim, shape as u64 LE) then the bytes. */
ddct_fp *ddct_fp_start(ddct_dtype dt, int ndim, const uint64_t *shape)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) return NULL;
    XXH3_64bits_reset(s);
    uint8_t head[2 + 8 * DDCT_MAX_DIMS];
    head[0] = (uint8_t)dt;
    head[1] = (uint8_t)ndim;
    for (int i = 0; i < ndim && i < DDCT_MAX_DIMS; i++) ddct_st64(head + 2 + 8 * i, shape[i]);
    XXH3_64bits_update(s, head, 2 + 8 * (size_t)ndim);
    return (ddct_fp *)s;
}

void ddct_fp_add(ddct_fp *f, const void *p, size_t n)
{
    if (f && n) XXH3_64bits_update((XXH3_state_t *)f, p, n);
}

uint64_t ddct_fp_finish(ddct_fp *f)
{
    uint64_t h = f ? XXH3_64bits_digest((XXH3_state_t *)f) : 0;
    ddct_fp_free(f);
    return h;
}

void ddct_fp_free(ddct_fp *f) { XXH3_freeState((XXH3_state_t *)f); }

/* Add data[0..n) to s in 4 MiB pieces, telling done (may be NULL) after each how far it got (so
 * a caller can drop the pages hashed); returns the digest and frees s. */
static uint64_t hash_pieces(XXH3_state_t *s, const void *data, uint64_t n, void (*done)(void *opaque, uint64_t upto),
                            void *opaque)
{
    const uint64_t piece = (uint64_t)4 << 20;
    for (uint64_t a = 0; a < n; a += piece) {
        XXH3_64bits_update(s, (const uint8_t *)data + a, (size_t)(n - a < piece ? n - a : piece));
        if (done) done(opaque, n - a < piece ? n : a + piece);
    }
    uint64_t h = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return h;
}

uint64_t ddct_tensor_fingerprint_cb(ddct_dtype dt, int ndim, const uint64_t *shape, const void *data, uint64_t nbytes,
                                    void (*done)(void *opaque, uint64_t upto), void *opaque)
{
    ddct_fp *f = ddct_fp_start(dt, ndim, shape);
    return f ? hash_pieces((XXH3_state_t *)f, data, nbytes, done, opaque) : 0;
}

int ddct_tensor_fingerprint_read(ddct_dtype dt, int ndim, const uint64_t *shape, uint64_t nbytes,
                                 int (*read)(void *opaque, uint64_t off, void *buf, size_t n), void *opaque,
                                 uint64_t *fp)
{
    const size_t piece = (size_t)256 << 10; /* stays in L2 between the copy and the hash */
    ddct_fp *f = ddct_fp_start(dt, ndim, shape);
    uint8_t *buf = malloc(piece);
    int rc = f && buf ? 0 : -1;
    for (uint64_t a = 0; !rc && a < nbytes; a += piece) {
        size_t m = (size_t)(nbytes - a < piece ? nbytes - a : piece);
        rc = read(opaque, a, buf, m);
        if (!rc) ddct_fp_add(f, buf, m);
    }
    if (!rc) *fp = ddct_fp_finish(f);
    else ddct_fp_free(f);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ writer */

struct ddct_ctr_writer {
    ddct_ofile *f;
    ddct_buf index;
    uint64_t count;
    ddct_buf rec;
    /* streamed record in progress */
    int streaming;
    uint64_t st_start, st_len_at, st_data_at, st_width;
};

int ddct_ctrw_open(ddct_ctr_writer **out, const char *path, int overwrite, const char *const *inputs,
                   const char *header_json, ddct_err *e)
{
    *out = NULL;
    size_t jl = strlen(header_json);
    RETURN_ERROR_IF(jl > MAX_HEADER_JSON, e, DDCT_ERR_PARAM, "%s: header too large", path);
    ddct_ctr_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "out of memory");
    ddct_buf_init(&w->index);
    ddct_buf_init(&w->rec);
    int rc = ddct_ofile_open(&w->f, path, overwrite, inputs, e);
    if (rc) {
        free(w);
        return rc;
    }
    ddct_buf h;
    ddct_buf_init(&h);
    ddct_buf_put(&h, MAGIC, 8);
    ddct_buf_u16(&h, DDCT_FORMAT_MAJOR);
    ddct_buf_u16(&h, DDCT_FORMAT_MINOR);
    ddct_buf_u32(&h, 0);
    ddct_buf_u32(&h, (uint32_t)jl);
    ddct_buf_put(&h, header_json, jl);
    ddct_buf_u64(&h, h.failed ? 0 : XXH3_64bits(h.p, h.len));
    rc = ddct_buf_check(&h, e);
    if (!rc) rc = ddct_ofile_write(w->f, h.p, h.len, e);
    ddct_buf_free(&h);
    if (rc) {
        ddct_ctrw_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

static uint64_t varint_size(uint64_t v)
{
    uint64_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint64_t ddct_record_size(int has_base, uint64_t params_len, uint64_t side_len, uint64_t data_len)
{
    return 2 + (has_base ? 8 : 0) + varint_size(params_len) + params_len + varint_size(side_len) + side_len +
           varint_size(data_len) + data_len + 8;
}

/* A record's head into b: codec, flags, base fingerprint, params; side only when with_side
 * (ddct_ctrw_add writes the side from the codec's buffer itself). */
static void record_head(const ddct_record *rec, int with_side, ddct_buf *b)
{
    ddct_buf_u8(b, rec->codec);
    ddct_buf_u8(b, rec->flags);
    if (rec->flags & DDCT_REC_HAS_BASE) ddct_buf_u64(b, rec->base_fp);
    ddct_buf_str(b, (const char *)rec->params, rec->params_len);
    if (with_side) ddct_buf_str(b, (const char *)rec->side, rec->side_len);
}

static void index_entry(ddct_ctr_writer *w, const ddct_ctr_entry *entry, uint64_t off, uint64_t len)
{
    ddct_buf_str(&w->index, entry->name, strlen(entry->name));
    ddct_buf_u8(&w->index, (uint8_t)entry->dtype);
    ddct_buf_u8(&w->index, (uint8_t)entry->ndim);
    for (int i = 0; i < entry->ndim; i++) ddct_buf_varint(&w->index, entry->shape[i]);
    ddct_buf_varint(&w->index, off);
    ddct_buf_varint(&w->index, len);
    w->count++;
}

/* Write n bytes to the output and add them to the record's hash. */
static int put_hashed(ddct_ctr_writer *w, XXH3_state_t *h, const void *p, size_t n, ddct_err *e)
{
    XXH3_64bits_update(h, p, n);
    return ddct_ofile_write(w->f, p, n, e);
}

/* The record (docs/FORMAT.md) written piece by piece: no copy of it is made, the side and the
 * payload go from the codec's buffers to the file, hashed on the way. */
int ddct_ctrw_add(ddct_ctr_writer *w, const ddct_ctr_entry *entry, const ddct_record *rec, ddct_err *e)
{
    RETURN_ERROR_IF(w->streaming, e, DDCT_ERR_INTERNAL, "container: a streamed record is still open");
    XXH3_state_t *h = XXH3_createState();
    RETURN_ERROR_IF(!h, e, DDCT_ERR_NOMEM, "out of memory");
    XXH3_64bits_reset(h);
    uint64_t off = ddct_ofile_tell(w->f);
    w->rec.len = 0;
    record_head(rec, 0, &w->rec);
    ddct_buf_varint(&w->rec, rec->side_len);
    int rc = ddct_buf_check(&w->rec, e);
    if (!rc) rc = put_hashed(w, h, w->rec.p, w->rec.len, e);
    if (!rc) rc = put_hashed(w, h, rec->side, rec->side_len, e);
    if (!rc) {
        w->rec.len = 0;
        ddct_buf_varint(&w->rec, rec->data_len);
        rc = ddct_buf_check(&w->rec, e);
    }
    if (!rc) rc = put_hashed(w, h, w->rec.p, w->rec.len, e);
    if (!rc) rc = put_hashed(w, h, rec->data, rec->data_len, e);
    if (!rc) {
        uint8_t sum[8];
        ddct_st64(sum, XXH3_64bits_digest(h));
        rc = ddct_ofile_write(w->f, sum, 8, e);
    }
    XXH3_freeState(h);
    FORWARD_IF_ERROR(rc);
    index_entry(w, entry, off, ddct_ofile_tell(w->f) - off);
    return ddct_buf_check(&w->index, e);
}

/* v as a LEB128 varint of exactly width bytes (zero groups with the continuation bit). */
static void padded_varint(uint8_t *out, uint64_t v, uint64_t width)
{
    for (uint64_t i = 0; i + 1 < width; i++) {
        out[i] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out[width - 1] = (uint8_t)(v & 0x7f);
}

int ddct_ctrw_begin(ddct_ctr_writer *w, const ddct_ctr_entry *entry, const ddct_record *head, uint64_t data_bound,
                    ddct_err *e)
{
    RETURN_ERROR_IF(w->streaming, e, DDCT_ERR_INTERNAL, "container: a streamed record is already open");
    w->rec.len = 0;
    record_head(head, 1, &w->rec);
    FORWARD_IF_ERROR(ddct_buf_check(&w->rec, e));
    w->st_start = ddct_ofile_tell(w->f);
    w->st_len_at = w->st_start + w->rec.len;
    w->st_width = varint_size(data_bound);
    uint8_t pad[10];
    padded_varint(pad, 0, w->st_width);
    ddct_buf_put(&w->rec, pad, (size_t)w->st_width);
    FORWARD_IF_ERROR(ddct_buf_check(&w->rec, e));
    FORWARD_IF_ERROR(ddct_ofile_write(w->f, w->rec.p, w->rec.len, e));
    w->st_data_at = ddct_ofile_tell(w->f);
    index_entry(w, entry, w->st_start, 0); /* length patched by ddct_ctrw_end */
    w->streaming = 1;
    return ddct_buf_check(&w->index, e);
}

int ddct_ctrw_data(ddct_ctr_writer *w, const void *p, size_t n, ddct_err *e)
{
    RETURN_ERROR_IF(!w->streaming, e, DDCT_ERR_INTERNAL, "container: no streamed record open");
    return ddct_ofile_write(w->f, p, n, e);
}

int ddct_ctrw_end(ddct_ctr_writer *w, ddct_err *e)
{
    RETURN_ERROR_IF(!w->streaming, e, DDCT_ERR_INTERNAL, "container: no streamed record open");
    w->streaming = 0;
    uint64_t end = ddct_ofile_tell(w->f), dlen = end - w->st_data_at;
    RETURN_ERROR_IF(varint_size(dlen) > w->st_width, e, DDCT_ERR_INTERNAL,
                    "container: streamed data of %llu bytes exceeds its bound", (unsigned long long)dlen);
    uint8_t pad[10];
    padded_varint(pad, dlen, w->st_width);
    FORWARD_IF_ERROR(ddct_ofile_pwrite(w->f, pad, (size_t)w->st_width, w->st_len_at, e));
    XXH3_state_t *s = XXH3_createState();
    uint8_t *buf = malloc(1u << 20);
    int rc = (!s || !buf) ? ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory") : 0;
    if (!rc) XXH3_64bits_reset(s);
    for (uint64_t at = w->st_start; !rc && at < end; at += 1u << 20) {
        size_t m = (size_t)(end - at < (1u << 20) ? end - at : (1u << 20));
        rc = ddct_ofile_pread(w->f, buf, m, at, e);
        if (!rc) XXH3_64bits_update(s, buf, m);
    }
    uint8_t h[8];
    if (!rc) {
        ddct_st64(h, XXH3_64bits_digest(s));
        rc = ddct_ofile_write(w->f, h, 8, e);
    }
    XXH3_freeState(s);
    free(buf);
    FORWARD_IF_ERROR(rc);
    /* the index entry's length was written as the 1-byte varint 0: rewrite the entry's tail */
    uint64_t len = end + 8 - w->st_start;
    w->index.len -= 1;
    ddct_buf_varint(&w->index, len);
    return ddct_buf_check(&w->index, e);
}

int ddct_ctrw_commit(ddct_ctr_writer *w, ddct_err *e)
{
    if (w->streaming) {
        ddct_ctrw_abort(w);
        RETURN_ERROR(e, DDCT_ERR_INTERNAL, "container: a streamed record is still open");
    }
    ddct_buf idx;
    ddct_buf_init(&idx);
    ddct_buf_varint(&idx, w->count);
    ddct_buf_put(&idx, w->index.p, w->index.len);
    int rc = ddct_buf_check(&idx, e);
    uint64_t ioff = ddct_ofile_tell(w->f);
    if (!rc) rc = ddct_ofile_write(w->f, idx.p, idx.len, e);
    if (!rc) {
        uint8_t f[DDCT_FOOTER_SIZE];
        ddct_st64(f, ioff);
        ddct_st64(f + 8, idx.len);
        ddct_st64(f + 16, XXH3_64bits(idx.p, idx.len));
        ddct_st64(f + 24, w->count);
        ddct_st64(f + 32, XXH3_64bits(f, 32));
        memcpy(f + 40, MAGIC_END, 8);
        rc = ddct_ofile_write(w->f, f, sizeof f, e);
    }
    ddct_buf_free(&idx);
    if (!rc) {
        rc = ddct_ofile_commit(w->f, e);
        w->f = NULL;
    }
    ddct_ctrw_abort(w);
    return rc;
}

void ddct_ctrw_abort(ddct_ctr_writer *w)
{
    if (!w) return;
    ddct_ofile_abort(w->f);
    ddct_buf_free(&w->index);
    ddct_buf_free(&w->rec);
    free(w);
}

/* ------------------------------------------------------------------ reader */

struct ddct_ctr_reader {
    ddct_map map;
    int owns_map;
    char *path;
    char *header_json;
    uint64_t header_size, index_off, index_len;
    size_t count;
    ddct_ctr_entry *entries;
    char *names; /* every entry's name, NUL-terminated, back to back */
};

void ddct_ctr_close(ddct_ctr_reader *r)
{
    if (!r) return;
    free(r->names);
    free(r->entries);
    free(r->header_json);
    if (r->owns_map) ddct_map_close(&r->map);
    free(r->path);
    free(r);
}

static int parse_header(ddct_ctr_reader *r, ddct_err *e)
{
    const uint8_t *p = r->map.p;
    const char *path = r->path;
    uint64_t size = r->map.size;
    RETURN_ERROR_IF(size < HEADER_FIXED + 8 + DDCT_FOOTER_SIZE, e, DDCT_ERR_FORMAT,
                    "%s: not a .ddct file (only %llu bytes)", path, (unsigned long long)size);
    RETURN_ERROR_IF(memcmp(p, MAGIC, 8), e, DDCT_ERR_FORMAT, "%s: not a .ddct file (bad magic at offset 0)", path);
    unsigned major = ddct_le16(p + 8), minor = ddct_le16(p + 10);
    uint32_t jl = ddct_le32(p + 16);
    RETURN_ERROR_IF((uint64_t)jl > size - HEADER_FIXED - 8 - DDCT_FOOTER_SIZE, e, DDCT_ERR_FORMAT,
                    "%s: header length %u at offset 16 exceeds the file size %llu", path, jl,
                    (unsigned long long)size);
    r->header_size = HEADER_FIXED + (uint64_t)jl + 8;
    uint64_t want = ddct_le64(p + HEADER_FIXED + jl);
    RETURN_ERROR_IF(XXH3_64bits(p, HEADER_FIXED + (size_t)jl) != want, e, DDCT_ERR_CHECKSUM,
                    "%s: header checksum mismatch (offset 0..%llu): file corrupt", path,
                    (unsigned long long)r->header_size);
    RETURN_ERROR_IF(major != DDCT_FORMAT_MAJOR, e, DDCT_ERR_VERSION,
                    "%s: format version %u.%u is not supported (this build reads %u.x)", path, major, minor,
                    DDCT_FORMAT_MAJOR);
    r->header_json = malloc((size_t)jl + 1);
    RETURN_ERROR_IF(!r->header_json, e, DDCT_ERR_NOMEM, "out of memory");
    memcpy(r->header_json, p + HEADER_FIXED, jl);
    r->header_json[jl] = 0;
    return 0;
}

static int parse_footer(ddct_ctr_reader *r, uint64_t *count, ddct_err *e)
{
    const uint8_t *f = r->map.p + r->map.size - DDCT_FOOTER_SIZE;
    const char *path = r->path;
    unsigned long long foff = (unsigned long long)(r->map.size - DDCT_FOOTER_SIZE);
    RETURN_ERROR_IF(memcmp(f + 40, MAGIC_END, 8), e, DDCT_ERR_FORMAT,
                    "%s: bad end marker at offset %llu: file truncated or corrupt", path, foff + 40);
    RETURN_ERROR_IF(XXH3_64bits(f, 32) != ddct_le64(f + 32), e, DDCT_ERR_CHECKSUM,
                    "%s: footer checksum mismatch at offset %llu: file corrupt", path, foff);
    r->index_off = ddct_le64(f);
    r->index_len = ddct_le64(f + 8);
    *count = ddct_le64(f + 24);
    uint64_t end;
    RETURN_ERROR_IF(r->index_off < r->header_size || ddct_add_overflow(r->index_off, r->index_len, &end) ||
                        end != r->map.size - DDCT_FOOTER_SIZE,
                    e, DDCT_ERR_FORMAT, "%s: index at offset %llu length %llu does not fit the file", path,
                    (unsigned long long)r->index_off, (unsigned long long)r->index_len);
    RETURN_ERROR_IF(XXH3_64bits(r->map.p + r->index_off, (size_t)r->index_len) != ddct_le64(f + 16), e,
                    DDCT_ERR_CHECKSUM, "%s: index checksum mismatch (offset %llu): file corrupt", path,
                    (unsigned long long)r->index_off);
    return 0;
}

static const char *entry_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_ctr_reader *r = ctx;
    *len = strlen(r->entries[id].name);
    return r->entries[id].name;
}

/* Every record names a different tensor (or carried file): a name twice would be rebuilt twice
 * (two entries of one safetensors file) or decide which base tensor a record meant. A hash set:
 * linear in the count. */
static int check_unique(const ddct_ctr_reader *r, ddct_err *e)
{
    ddct_nameset s;
    RETURN_ERROR_IF(ddct_nameset_init(&s, r->count, entry_name, r), e, DDCT_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < r->count && !rc; i++) {
        size_t dup = ddct_nameset_add(&s, i);
        if (dup == DDCT_NAMESET_NOMEM) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        else if (dup != DDCT_NAMESET_NONE)
            rc = ddct_seterr(e, DDCT_ERR_FORMAT,
                             "%s: tensor '%s' is named twice in the index (records %zu and %zu, at offsets %llu and "
                             "%llu): file malformed",
                             r->path, r->entries[i].name, dup, i, (unsigned long long)r->entries[dup].offset,
                             (unsigned long long)r->entries[i].offset);
    }
    ddct_nameset_free(&s);
    return rc;
}

static int parse_index(ddct_ctr_reader *r, uint64_t count, ddct_err *e)
{
    const char *path = r->path;
    ddct_rd rd;
    ddct_rd_init(&rd, r->map.p + r->index_off, (size_t)r->index_len);
    uint64_t n = ddct_rd_varint(&rd);
    RETURN_ERROR_IF(rd.failed || n != count || n > r->index_len, e, DDCT_ERR_FORMAT,
                    "%s: index count %llu disagrees with the footer (%llu)", path, (unsigned long long)n,
                    (unsigned long long)count);
    r->entries = calloc(n ? (size_t)n : 1, sizeof *r->entries);
    r->names = malloc((size_t)r->index_len + 1); /* names and their NULs fit in the index */
    RETURN_ERROR_IF(!r->entries || !r->names, e, DDCT_ERR_NOMEM, "out of memory");
    size_t names_len = 0;
    uint64_t expect_off = r->header_size;
    for (uint64_t i = 0; i < n; i++) {
        ddct_ctr_entry *en = &r->entries[i];
        size_t nl;
        uint64_t at = r->index_off + rd.pos;
        const char *name = ddct_rd_str(&rd, &nl);
        RETURN_ERROR_IF(!name || nl == 0 || memchr(name, 0, nl), e, DDCT_ERR_FORMAT,
                        "%s: index entry %llu at offset %llu: bad tensor name", path, (unsigned long long)i,
                        (unsigned long long)at);
        en->name = r->names + names_len;
        memcpy(en->name, name, nl);
        en->name[nl] = 0;
        names_len += nl + 1;
        r->count = (size_t)i + 1;
        en->dtype = (ddct_dtype)ddct_rd_u8(&rd);
        en->ndim = ddct_rd_u8(&rd);
        RETURN_ERROR_IF(ddct_dtype_size(en->dtype) == 0 || en->ndim > DDCT_MAX_DIMS, e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': bad dtype %d or rank %d in the index", path, en->name, (int)en->dtype,
                        en->ndim);
        en->nelem = 1;
        for (int d = 0; d < en->ndim; d++) {
            en->shape[d] = ddct_rd_varint(&rd);
            RETURN_ERROR_IF(ddct_mul_overflow(en->nelem, en->shape[d], &en->nelem), e, DDCT_ERR_FORMAT,
                            "%s: tensor '%s': shape overflows", path, en->name);
        }
        uint64_t bytes;
        RETURN_ERROR_IF(ddct_mul_overflow(en->nelem, ddct_dtype_size(en->dtype), &bytes), e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': size overflows", path, en->name);
        en->offset = ddct_rd_varint(&rd);
        en->length = ddct_rd_varint(&rd);
        RETURN_ERROR_IF(rd.failed, e, DDCT_ERR_FORMAT, "%s: index truncated in entry %llu ('%s')", path,
                        (unsigned long long)i, en->name);
        RETURN_ERROR_IF(en->offset != expect_off || en->length > r->index_off - en->offset, e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': record at offset %llu length %llu does not follow the previous one "
                        "(expected offset %llu)",
                        path, en->name, (unsigned long long)en->offset, (unsigned long long)en->length,
                        (unsigned long long)expect_off);
        expect_off += en->length;
    }
    RETURN_ERROR_IF(rd.pos != rd.len, e, DDCT_ERR_FORMAT, "%s: %llu stray bytes at the end of the index", path,
                    (unsigned long long)(rd.len - rd.pos));
    RETURN_ERROR_IF(expect_off != r->index_off, e, DDCT_ERR_FORMAT,
                    "%s: records end at offset %llu but the index starts at %llu", path,
                    (unsigned long long)expect_off, (unsigned long long)r->index_off);
    return check_unique(r, e);
}

static int open_common(ddct_ctr_reader *r, ddct_err *e)
{
    uint64_t count = 0;
    FORWARD_IF_ERROR(parse_header(r, e));
    FORWARD_IF_ERROR(parse_footer(r, &count, e));
    return parse_index(r, count, e);
}

static int open_with(ddct_ctr_reader **out, ddct_ctr_reader *r, ddct_err *e)
{
    int rc = open_common(r, e);
    if (rc) {
        ddct_ctr_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int ddct_ctr_open(ddct_ctr_reader **out, const char *path, ddct_err *e)
{
    *out = NULL;
    ddct_ctr_reader *r = calloc(1, sizeof *r);
    RETURN_ERROR_IF(!r, e, DDCT_ERR_NOMEM, "out of memory");
    r->path = strdup(path);
    int rc = r->path ? ddct_map_open(&r->map, path, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (rc) {
        free(r->path);
        free(r);
        return rc;
    }
    r->owns_map = 1;
    return open_with(out, r, e);
}

int ddct_ctr_open_mem(ddct_ctr_reader **out, const void *p, size_t len, const char *name, ddct_err *e)
{
    *out = NULL;
    ddct_ctr_reader *r = calloc(1, sizeof *r);
    RETURN_ERROR_IF(!r, e, DDCT_ERR_NOMEM, "out of memory");
    r->path = strdup(name);
    if (!r->path) {
        free(r);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "out of memory");
    }
    r->map.p = p;
    r->map.size = len;
    return open_with(out, r, e);
}

void ddct_ctr_release(const ddct_ctr_reader *r, size_t i)
{
    if (r && i < r->count && r->owns_map) ddct_map_dontneed(&r->map, r->entries[i].offset, r->entries[i].length);
}

void ddct_ctr_release_ptr(const ddct_ctr_reader *r, const void *p, uint64_t len)
{
    const uint8_t *q = p;
    if (!r || !r->owns_map || q < r->map.p || q > r->map.p + r->map.size) return;
    uint64_t off = (uint64_t)(q - r->map.p);
    ddct_map_dontneed(&r->map, off, len < r->map.size - off ? len : r->map.size - off);
}

const char *ddct_ctr_path(const ddct_ctr_reader *r) { return r->path; }
uint64_t ddct_ctr_file_size(const ddct_ctr_reader *r) { return r->map.size; }
uint64_t ddct_ctr_header_size(const ddct_ctr_reader *r) { return r->header_size; }
uint64_t ddct_ctr_index_size(const ddct_ctr_reader *r) { return r->index_len; }
const char *ddct_ctr_header_json(const ddct_ctr_reader *r) { return r->header_json; }
size_t ddct_ctr_count(const ddct_ctr_reader *r) { return r->count; }
const ddct_ctr_entry *ddct_ctr_entry_at(const ddct_ctr_reader *r, size_t i)
{
    return i < r->count ? &r->entries[i] : NULL;
}

typedef struct {
    const ddct_ctr_reader *r;
    const uint8_t *p;
} record_pages;

static void release_record(void *opaque, uint64_t upto)
{
    const record_pages *x = opaque;
    ddct_ctr_release_ptr(x->r, x->p, upto);
}

/* XXH3 of a record's n bytes at p; the pages of a large record are dropped as they are hashed
 * (the decoder maps them again piece by piece), so verifying never makes it resident whole. */
static uint64_t record_hash(const ddct_ctr_reader *r, const uint8_t *p, size_t n)
{
    XXH3_state_t *s = n > ((size_t)4 << 20) ? XXH3_createState() : NULL;
    if (!s) return XXH3_64bits(p, n);
    XXH3_64bits_reset(s);
    record_pages x = {r, p};
    return hash_pieces(s, p, n, release_record, &x);
}

int ddct_ctr_record(const ddct_ctr_reader *r, size_t i, int verify, ddct_record *rec, ddct_err *e)
{
    memset(rec, 0, sizeof *rec);
    RETURN_ERROR_IF(i >= r->count, e, DDCT_ERR_INTERNAL, "record %zu out of range", i);
    const ddct_ctr_entry *en = &r->entries[i];
    const uint8_t *p = r->map.p + en->offset;
    unsigned long long off = (unsigned long long)en->offset;
    RETURN_ERROR_IF(en->length < 8 + 5, e, DDCT_ERR_FORMAT, "%s: tensor '%s': record at offset %llu too short",
                    r->path, en->name, off);
    uint64_t now;
    RETURN_ERROR_IF(ddct_map_check(&r->map, &now), e, DDCT_ERR_IO,
                    "input changed while reading: %s (%llu bytes now, %llu when opened; tensor '%s')", r->path,
                    (unsigned long long)now, (unsigned long long)r->map.size, en->name);
    size_t body = (size_t)en->length - 8;
    if (verify)
        RETURN_ERROR_IF(record_hash(r, p, body) != ddct_le64(p + body), e, DDCT_ERR_CHECKSUM,
                        "%s: tensor '%s': record checksum mismatch (offset %llu, %llu bytes): file corrupt",
                        r->path, en->name, off, (unsigned long long)en->length);
    ddct_rd rd;
    ddct_rd_init(&rd, p, body);
    rec->codec = ddct_rd_u8(&rd);
    rec->flags = ddct_rd_u8(&rd);
    if (rec->flags & DDCT_REC_HAS_BASE) rec->base_fp = ddct_rd_u64(&rd);
    rec->params = (const uint8_t *)ddct_rd_str(&rd, &rec->params_len);
    rec->side = (const uint8_t *)ddct_rd_str(&rd, &rec->side_len);
    rec->data = (const uint8_t *)ddct_rd_str(&rd, &rec->data_len);
    RETURN_ERROR_IF(rd.failed || rd.pos != body, e, DDCT_ERR_FORMAT,
                    "%s: tensor '%s': record at offset %llu: lengths disagree with the record size", r->path,
                    en->name, off);
    RETURN_ERROR_IF(rec->flags & ~DDCT_REC_HAS_BASE, e, DDCT_ERR_FORMAT,
                    "%s: tensor '%s': unknown record flags 0x%x at offset %llu", r->path, en->name, rec->flags, off);
    return 0;
}
