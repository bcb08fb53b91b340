/*
 * safetensors.c — safetensors reader and streaming writer (see safetensors.h).
 *
 * Reader: maps the file (common/mapfile), checks the header length, parses the JSON
 * header with jansson (duplicate keys rejected, key order kept), validates every entry,
 * checks that the tensors tile the data buffer exactly, and builds a name index for
 * ddct_st_find. Nothing from the file is used before it is checked.
 * Writer: builds the header from the entries (metadata first, data offsets assigned
 * contiguously), pads it with spaces so the data starts at a multiple of 8 bytes, and
 * streams the data through an atomic ddct_ofile.
 */
#include "io/safetensors.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mapfile.h"
#include "common/ofile.h"

#if JANSSON_VERSION_HEX < 0x020800
#error "jansson >= 2.8 is required: tensor order is the JSON object's key order"
#endif

#define ST_MAX_HEADER 100000000ull
#define ST_METADATA_KEY "__metadata__"

struct ddct_st_file {
    char *path;
    ddct_map map;
    uint64_t data_start; /* file offset of the data buffer: 8 + header length */
    uint64_t data_len;
    size_t n;
    ddct_st_tensor *t;
    const ddct_st_tensor **by_name; /* sorted by name, for ddct_st_find */
    char *metadata;
};

/* ---------------------------------------------------------------- shared helpers */

/* nelem and nbytes of a shape; 1 if either overflows uint64. */
static int shape_size(ddct_dtype dt, int ndim, const uint64_t *shape, uint64_t *nelem, uint64_t *nbytes)
{
    uint64_t n = 1;
    *nelem = *nbytes = 0;
    for (int i = 0; i < ndim; i++)
        if (ddct_mul_overflow(n, shape[i], &n)) return 1;
    *nelem = n;
    return ddct_mul_overflow(n, ddct_dtype_size(dt), nbytes);
}

/* 1 if v is an object whose values are all strings. */
static int is_string_object(const json_t *v)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v)) return 0;
    json_object_foreach((json_t *)v, k, x)
        if (!json_is_string(x)) return 0;
    return 1;
}

/* A JSON integer in [0, INT64_MAX], else -1. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    return i < 0 ? -1 : (int64_t)i;
}

static int cmp_by_name(const void *a, const void *b)
{
    const ddct_st_tensor *x = *(const ddct_st_tensor *const *)a, *y = *(const ddct_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* ---------------------------------------------------------------- reader */

/* Error naming the file and, when name is not NULL, the tensor. Returns code. */
static int st_fail(const ddct_st_file *f, const char *name, ddct_err *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int st_fail(const ddct_st_file *f, const char *name, ddct_err *e, int code, const char *fmt, ...)
{
    char msg[DDCT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (name) return ddct_seterr(e, code, "%s: tensor '%s': %s", f->path, name, msg);
    return ddct_seterr(e, code, "%s: %s", f->path, msg);
}

static int read_header_len(ddct_st_file *f, ddct_err *e)
{
    uint64_t size = f->map.size;
    if (size < 8)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "file is %llu bytes, too short for the 8-byte header length",
                       (unsigned long long)size);
    uint64_t n = ddct_le64(f->map.p);
    if (n > ST_MAX_HEADER)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header length %llu (at byte 0) exceeds the limit of %llu bytes",
                       (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT,
                       "header length %llu (at byte 0) runs past the end of the file (%llu bytes)",
                       (unsigned long long)n, (unsigned long long)size);
    f->data_start = 8 + n;
    f->data_len = size - f->data_start;
    return 0;
}

static int load_header(const ddct_st_file *f, json_t **root, ddct_err *e)
{
    json_error_t je;
    *root = json_loadb((const char *)f->map.p + 8, (size_t)(f->data_start - 8), JSON_REJECT_DUPLICATES, &je);
    if (!*root)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header JSON invalid at byte %llu: %s",
                       8ull + (unsigned long long)(je.position > 0 ? je.position : 0), je.text);
    if (!json_is_object(*root))
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header (at byte 8) is not a JSON object");
    return 0;
}

static int parse_metadata(ddct_st_file *f, const json_t *v, ddct_err *e)
{
    if (!is_string_object(v))
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "\"%s\" is not an object of string values", ST_METADATA_KEY);
    f->metadata = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!f->metadata) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory copying \"%s\"", ST_METADATA_KEY);
    return 0;
}

static int parse_dtype(const ddct_st_file *f, const char *name, const json_t *v, ddct_st_tensor *t, ddct_err *e)
{
    if (!json_is_string(v)) return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"dtype\" missing or not a string");
    t->dtype = ddct_dtype_from_name(json_string_value(v), json_string_length(v));
    if (t->dtype == DDCT_DT_INVALID)
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "unknown dtype \"%s\"", json_string_value(v));
    return 0;
}

static int parse_shape(const ddct_st_file *f, const char *name, const json_t *v, ddct_st_tensor *t, ddct_err *e)
{
    if (!json_is_array(v)) return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"shape\" missing or not an array");
    size_t nd = json_array_size(v);
    if (nd > DDCT_MAX_DIMS)
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "%zu dimensions (at most %d supported)", nd, DDCT_MAX_DIMS);
    for (size_t i = 0; i < nd; i++) {
        int64_t d = json_nonneg(json_array_get(v, i));
        if (d < 0) return st_fail(f, name, e, DDCT_ERR_FORMAT, "shape[%zu] is not a non-negative integer", i);
        t->shape[i] = (uint64_t)d;
    }
    t->ndim = (int)nd;
    if (shape_size(t->dtype, t->ndim, t->shape, &t->nelem, &t->nbytes))
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "shape's element or byte count overflows 64 bits");
    return 0;
}

static int parse_offsets(const ddct_st_file *f, const char *name, const json_t *v, ddct_st_tensor *t, ddct_err *e)
{
    int64_t b = json_array_size(v) == 2 ? json_nonneg(json_array_get(v, 0)) : -1;
    int64_t en = json_array_size(v) == 2 ? json_nonneg(json_array_get(v, 1)) : -1;
    if (!json_is_array(v) || b < 0 || en < 0)
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"data_offsets\" missing or not 2 non-negative integers");
    uint64_t begin = (uint64_t)b, end = (uint64_t)en;
    if (begin > end)
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "data_offsets [%llu, %llu): begin after end",
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_len)
        return st_fail(f, name, e, DDCT_ERR_FORMAT,
                       "data_offsets [%llu, %llu) run past the data buffer (%llu bytes from byte %llu; file truncated?)",
                       (unsigned long long)begin, (unsigned long long)end, (unsigned long long)f->data_len,
                       (unsigned long long)f->data_start);
    if (end - begin != t->nbytes)
        return st_fail(f, name, e, DDCT_ERR_FORMAT,
                       "data_offsets [%llu, %llu) hold %llu bytes but %s shape needs %llu (at file byte %llu)",
                       (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                       ddct_dtype_name(t->dtype), (unsigned long long)t->nbytes,
                       (unsigned long long)(f->data_start + begin));
    t->offset = f->data_start + begin;
    t->data = f->map.p + t->offset;
    t->file = f;
    return 0;
}

static int parse_tensor(const ddct_st_file *f, const char *name, const json_t *v, ddct_st_tensor *t, ddct_err *e)
{
    if (!*name) return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "a tensor has an empty name");
    if (!json_is_object(v)) return st_fail(f, name, e, DDCT_ERR_FORMAT, "entry is not a JSON object");
    FORWARD_IF_ERROR(parse_dtype(f, name, json_object_get(v, "dtype"), t, e));
    FORWARD_IF_ERROR(parse_shape(f, name, json_object_get(v, "shape"), t, e));
    FORWARD_IF_ERROR(parse_offsets(f, name, json_object_get(v, "data_offsets"), t, e));
    t->name = strdup(name);
    if (!t->name) return st_fail(f, name, e, DDCT_ERR_NOMEM, "out of memory");
    return 0;
}

static int parse_entries(ddct_st_file *f, json_t *root, ddct_err *e)
{
    size_t cap = json_object_size(root);
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    if (!f->t) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory for %zu tensors", cap);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, ST_METADATA_KEY) == 0) {
            FORWARD_IF_ERROR(parse_metadata(f, v, e));
            continue;
        }
        FORWARD_IF_ERROR(parse_tensor(f, key, v, &f->t[f->n], e));
        f->n++;
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const ddct_st_tensor *x = *(const ddct_st_tensor *const *)a, *y = *(const ddct_st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return x < y ? -1 : x > y; /* header order, for stable messages */
}

/* The tensor at sorted position must start exactly where the previous one ended. */
static int check_next(const ddct_st_file *f, const ddct_st_tensor *prev, const ddct_st_tensor *t, uint64_t pos,
                      ddct_err *e)
{
    unsigned long long b = t->offset - f->data_start, en = b + t->nbytes, at = pos - f->data_start;
    if (t->offset < pos)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT,
                       "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap (data offsets; data starts at byte %llu)",
                       prev->name, (unsigned long long)(prev->offset - f->data_start), at, t->name, b, en,
                       (unsigned long long)f->data_start);
    if (t->offset > pos && prev)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT,
                       "gap of %llu bytes between tensors '%s' (ends at %llu) and '%s' (starts at %llu) "
                       "(data offsets; data starts at byte %llu)",
                       b - at, prev->name, at, t->name, b, (unsigned long long)f->data_start);
    if (t->offset > pos)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT,
                       "%llu unused bytes before the first tensor '%s' (data starts at byte %llu)", b, t->name,
                       (unsigned long long)f->data_start);
    return 0;
}

static int check_tiling(const ddct_st_file *f, ddct_err *e)
{
    const ddct_st_tensor **s = malloc((f->n ? f->n : 1) * sizeof *s);
    if (!s) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < f->n; i++) s[i] = &f->t[i];
    qsort(s, f->n, sizeof *s, cmp_by_offset);
    uint64_t pos = f->data_start, end = f->data_start + f->data_len;
    int rc = 0;
    for (size_t i = 0; i < f->n && !rc; i++) {
        rc = check_next(f, i ? s[i - 1] : NULL, s[i], pos, e);
        pos = s[i]->offset + s[i]->nbytes;
    }
    if (!rc && pos != end && f->n)
        rc = st_fail(f, NULL, e, DDCT_ERR_FORMAT, "%llu unused bytes after the last tensor '%s' (from file byte %llu)",
                     (unsigned long long)(end - pos), s[f->n - 1]->name, (unsigned long long)pos);
    if (!rc && pos != end)
        rc = st_fail(f, NULL, e, DDCT_ERR_FORMAT, "no tensors but a %llu-byte data buffer (from byte %llu)",
                     (unsigned long long)f->data_len, (unsigned long long)f->data_start);
    free(s);
    return rc;
}

static int build_index(ddct_st_file *f, ddct_err *e)
{
    f->by_name = malloc((f->n ? f->n : 1) * sizeof *f->by_name);
    if (!f->by_name) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->t[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_by_name);
    return 0;
}

static int st_load(ddct_st_file *f, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_map_open(&f->map, f->path, e));
    FORWARD_IF_ERROR(read_header_len(f, e));
    json_t *root = NULL;
    int rc = load_header(f, &root, e);
    if (!rc) rc = parse_entries(f, root, e);
    json_decref(root);
    FORWARD_IF_ERROR(rc);
    FORWARD_IF_ERROR(check_tiling(f, e));
    return build_index(f, e);
}

int ddct_st_open(ddct_st_file **out, const char *path, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path, e, DDCT_ERR_PARAM, "no safetensors path given");
    ddct_st_file *f = calloc(1, sizeof *f);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    f->path = strdup(path);
    int rc = f->path ? st_load(f, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    if (rc) {
        ddct_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

void ddct_st_close(ddct_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    free(f->by_name);
    free(f->metadata);
    ddct_map_close(&f->map);
    free(f->path);
    free(f);
}

const char *ddct_st_path(const ddct_st_file *f) { return f->path; }
size_t ddct_st_count(const ddct_st_file *f) { return f->n; }
const ddct_st_tensor *ddct_st_get(const ddct_st_file *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }
const char *ddct_st_metadata_json(const ddct_st_file *f) { return f->metadata; }
void ddct_st_release(const ddct_st_file *f, const ddct_st_tensor *t, uint64_t off, uint64_t len)
{
    if (f && t && off <= t->nbytes) ddct_map_dontneed(&f->map, t->offset + off, len < t->nbytes - off ? len : t->nbytes - off);
}

int ddct_st_check(const ddct_st_file *f, ddct_err *e)
{
    uint64_t now;
    if (!f || !ddct_map_check(&f->map, &now)) return 0;
    RETURN_ERROR(e, DDCT_ERR_IO, "input changed while reading: %s (%llu bytes now, %llu when opened)", f->path,
                 (unsigned long long)now, (unsigned long long)f->map.size);
}

int ddct_st_pread(const ddct_st_file *f, const ddct_st_tensor *t, uint64_t off, void *buf, size_t len, ddct_err *e)
{
    if (!f || !t || off > t->nbytes || len > t->nbytes - off) return DDCT_MAP_FALLBACK;
    int r = ddct_map_pread(&f->map, t->offset + off, buf, len);
    if (r != DDCT_MAP_CHANGED) return r;
    int rc = ddct_st_check(f, e);
    return rc ? rc : ddct_seterr(e, DDCT_ERR_IO, "input changed while reading: %s", f->path);
}

const ddct_st_tensor *ddct_st_find(const ddct_st_file *f, const char *name)
{
    if (!name || f->n == 0) return NULL;
    ddct_st_tensor key = {.name = (char *)name};
    const ddct_st_tensor *kp = &key;
    const ddct_st_tensor *const *hit = bsearch(&kp, f->by_name, f->n, sizeof *f->by_name, cmp_by_name);
    return hit ? *hit : NULL;
}

/* ---------------------------------------------------------------- writer */

struct ddct_st_writer {
    ddct_ofile *of;
    char *path;
    uint64_t total, written;
    size_t n;
    uint64_t *ends; /* cumulative end offset of each entry, to name tensors in errors */
    char **names;
};

static void writer_free(ddct_st_writer *w)
{
    for (size_t i = 0; w->names && i < w->n; i++) free(w->names[i]);
    free(w->names);
    free(w->ends);
    free(w->path);
    free(w);
}

/* Parse metadata_json and add it to root as "__metadata__". */
static int add_metadata(const ddct_st_writer *w, json_t *root, const char *metadata_json, ddct_err *e)
{
    json_error_t je;
    json_t *m = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &je);
    RETURN_ERROR_IF(!m, e, DDCT_ERR_PARAM, "%s: metadata is not valid JSON (byte %d): %s", w->path, je.position, je.text);
    if (!is_string_object(m)) {
        json_decref(m);
        RETURN_ERROR(e, DDCT_ERR_PARAM, "%s: metadata must be a JSON object of string values", w->path);
    }
    RETURN_ERROR_IF(json_object_set_new(root, ST_METADATA_KEY, m), e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    return 0;
}

static json_t *shape_json(const ddct_st_entry *en)
{
    json_t *a = json_array();
    for (int i = 0; a && i < en->ndim; i++)
        if (json_array_append_new(a, json_integer((json_int_t)en->shape[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* {"dtype": .., "shape": [..], "data_offsets": [begin, end]}, or NULL when out of memory. */
static json_t *entry_json(const ddct_st_entry *en, uint64_t begin, uint64_t end)
{
    json_t *shape = shape_json(en);
    if (!shape) return NULL;
    return json_pack("{s:s, s:o, s:[I,I]}", "dtype", ddct_dtype_name(en->dtype), "shape", shape, "data_offsets",
                     (json_int_t)begin, (json_int_t)end);
}

static int check_entry(const ddct_st_writer *w, const ddct_st_entry *en, uint64_t *nbytes, ddct_err *e)
{
    uint64_t nelem;
    const char *nm = en->name ? en->name : "(null)";
    RETURN_ERROR_IF(!en->name || !*en->name || strcmp(en->name, ST_METADATA_KEY) == 0, e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': invalid tensor name", w->path, nm);
    RETURN_ERROR_IF(ddct_dtype_size(en->dtype) == 0, e, DDCT_ERR_PARAM, "%s: tensor '%s': invalid dtype %d", w->path,
                    nm, (int)en->dtype);
    RETURN_ERROR_IF(en->ndim < 0 || en->ndim > DDCT_MAX_DIMS || (en->ndim && !en->shape), e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': invalid shape (%d dimensions)", w->path, nm, en->ndim);
    for (int i = 0; i < en->ndim; i++)
        RETURN_ERROR_IF(en->shape[i] > (uint64_t)INT64_MAX, e, DDCT_ERR_PARAM, "%s: tensor '%s': shape[%d] too large",
                        w->path, nm, i);
    RETURN_ERROR_IF(shape_size(en->dtype, en->ndim, en->shape, &nelem, nbytes), e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': byte count overflows 64 bits", w->path, nm);
    return 0;
}

/* Add entry i at data offset w->total. */
static int add_entry(ddct_st_writer *w, json_t *root, const ddct_st_entry *en, size_t i, ddct_err *e)
{
    uint64_t nbytes = 0, end = 0;
    FORWARD_IF_ERROR(check_entry(w, en, &nbytes, e));
    RETURN_ERROR_IF(ddct_add_overflow(w->total, nbytes, &end) || end > (uint64_t)INT64_MAX, e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': data offsets overflow", w->path, en->name);
    RETURN_ERROR_IF(json_object_get(root, en->name), e, DDCT_ERR_PARAM, "%s: tensor '%s': duplicate name", w->path,
                    en->name);
    json_t *v = entry_json(en, w->total, end);
    RETURN_ERROR_IF(!v, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    RETURN_ERROR_IF(json_object_set_new(root, en->name, v), e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': name is not valid UTF-8", w->path, en->name);
    w->names[i] = strdup(en->name);
    RETURN_ERROR_IF(!w->names[i], e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    w->ends[i] = w->total = end;
    return 0;
}

/* The complete header text, space-padded to a multiple of 8 bytes. */
static int build_header(ddct_st_writer *w, const ddct_st_entry *entries, const char *metadata_json, ddct_buf *hdr,
                        ddct_err *e)
{
    json_t *root = json_object();
    RETURN_ERROR_IF(!root, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    int rc = metadata_json ? add_metadata(w, root, metadata_json, e) : 0;
    for (size_t i = 0; i < w->n && !rc; i++) rc = add_entry(w, root, &entries[i], i, e);
    char *text = rc ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    FORWARD_IF_ERROR(rc);
    RETURN_ERROR_IF(!text, e, DDCT_ERR_NOMEM, "%s: out of memory serializing the header", w->path);
    size_t len = strlen(text), pad = (8 - len % 8) % 8;
    ddct_buf_u64(hdr, (uint64_t)(len + pad));
    ddct_buf_put(hdr, text, len);
    for (size_t i = 0; i < pad; i++) ddct_buf_u8(hdr, ' ');
    free(text);
    return ddct_buf_check(hdr, e);
}

static int writer_start(ddct_st_writer *w, int overwrite, const char *const *inputs, const ddct_st_entry *entries,
                        const char *metadata_json, ddct_err *e)
{
    RETURN_ERROR_IF(!w->path || !w->ends || !w->names, e, DDCT_ERR_NOMEM, "out of memory");
    ddct_buf hdr;
    ddct_buf_init(&hdr);
    int rc = build_header(w, entries, metadata_json, &hdr, e);
    if (!rc) rc = ddct_ofile_open(&w->of, w->path, overwrite, inputs, e);
    if (!rc) rc = ddct_ofile_write(w->of, hdr.p, hdr.len, e);
    ddct_buf_free(&hdr);
    return rc;
}

int ddct_stw_open(ddct_st_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const ddct_st_entry *entries, size_t n, const char *metadata_json, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path || (n && !entries), e, DDCT_ERR_PARAM, "safetensors writer: no path or no entries");
    ddct_st_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    w->n = n;
    w->path = strdup(path);
    w->ends = calloc(n ? n : 1, sizeof *w->ends);
    w->names = calloc(n ? n : 1, sizeof *w->names);
    int rc = writer_start(w, overwrite, inputs, entries, metadata_json, e);
    if (rc) {
        ddct_stw_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

uint64_t ddct_stw_data_bytes(const ddct_st_writer *w) { return w ? w->total : 0; }
int ddct_stw_set_direct(ddct_st_writer *w) { return w ? ddct_ofile_set_direct(w->of) : 0; }

/* Name of the tensor holding data offset pos (the last one if pos is at the end). */
static const char *tensor_at(const ddct_st_writer *w, uint64_t pos)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ends[i] > pos) return w->names[i];
    return w->n ? w->names[w->n - 1] : "(none)";
}

int ddct_stw_write(ddct_st_writer *w, const void *p, size_t n, ddct_err *e)
{
    RETURN_ERROR_IF(!w, e, DDCT_ERR_PARAM, "safetensors writer: not open");
    RETURN_ERROR_IF(n > w->total - w->written, e, DDCT_ERR_PARAM,
                    "%s: writing %zu bytes at data offset %llu exceeds the %llu data bytes the header declares "
                    "(last tensor '%s')",
                    w->path, n, (unsigned long long)w->written, (unsigned long long)w->total, tensor_at(w, w->total));
    FORWARD_IF_ERROR(ddct_ofile_write(w->of, p, n, e));
    w->written += n;
    return 0;
}

int ddct_stw_commit(ddct_st_writer *w, ddct_err *e)
{
    RETURN_ERROR_IF(!w, e, DDCT_ERR_PARAM, "safetensors writer: not open");
    int rc = 0;
    if (w->written != w->total)
        rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: only %llu of %llu data bytes written (tensor '%s' incomplete)",
                         w->path, (unsigned long long)w->written, (unsigned long long)w->total,
                         tensor_at(w, w->written));
    else
        rc = ddct_ofile_commit(w->of, e);
    if (w->written == w->total) w->of = NULL; /* ddct_ofile_commit freed it, success or not */
    ddct_stw_abort(w);
    return rc;
}

void ddct_stw_abort(ddct_st_writer *w)
{
    if (!w) return;
    ddct_ofile_abort(w->of);
    writer_free(w);
}
