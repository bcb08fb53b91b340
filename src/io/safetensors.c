/*
 * safetensors.c — safetensors reader and streaming writer (see safetensors.h).
 *
 * Reader: maps the file (common/mapfile), checks the header length, reads the JSON header in
 * one pass with the scanner of io/jscan.h (no document tree: memory is the tensors' own;
 * duplicate names found by a hash set, key order kept), validates every entry, checks that the
 * tensors tile the data buffer exactly. Nothing from the file is used before it is checked.
 * Writer: builds the header from the entries (metadata first, data offsets assigned
 * contiguously), pads it with spaces so the data starts at a multiple of 8 bytes, and
 * streams the data through an atomic ddct_ofile.
 */
#include "io/safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mapfile.h"
#include "common/nameset.h"
#include "common/ofile.h"
#include "io/jscan.h"


#define ST_MAX_HEADER 100000000ull
#define ST_METADATA_KEY "__metadata__"

struct ddct_st_file {
    char *path;
    ddct_map map;
    uint64_t data_start; /* file offset of the data buffer: 8 + header length */
    uint64_t data_len;
    size_t n, cap;
    ddct_st_tensor *t;
    char *names;     /* every name, NUL-terminated, back to back */
    size_t names_len, names_cap;
    uint64_t *dims;  /* every shape, back to back */
    size_t dims_len, dims_cap;
    ddct_nameset by_name; /* ddct_st_find, and duplicate names */
    char *metadata;
    int kind;
    void *ext;
    void (*ext_free)(void *);
    char **alias;       /* other names of tensors */
    size_t *alias_to;
    size_t nalias;
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

/* The tensor being parsed: checked as the old tree-based reader did, in the same order. */
static int check_dtype(const ddct_st_file *f, const char *name, const ddct_jsum *v, ddct_st_tensor *t, ddct_err *e)
{
    if (v->v.type != DDCT_JT_STR) return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"dtype\" missing or not a string");
    t->dtype = v->slen < DDCT_JSUM_STR ? ddct_dtype_from_name(v->str, v->slen) : DDCT_DT_INVALID;
    if (t->dtype == DDCT_DT_INVALID) {
        char esc[4 * DDCT_JSUM_STR + 8];
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "unknown dtype \"%s%s\"", ddct_escape(v->str, esc, sizeof esc),
                       v->slen < DDCT_JSUM_STR ? "" : "...");
    }
    return 0;
}

static int check_shape(const ddct_st_file *f, const char *name, const ddct_jsum *v, ddct_st_tensor *t,
                       uint64_t *shape, ddct_err *e)
{
    if (v->v.type != DDCT_JT_ARR) return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"shape\" missing or not an array");
    if (v->count > DDCT_MAX_DIMS)
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "%zu dimensions (at most %d supported)", v->count, DDCT_MAX_DIMS);
    for (size_t i = 0; i < v->count; i++) {
        if (v->el[i].type != DDCT_JT_INT || v->el[i].iv < 0)
            return st_fail(f, name, e, DDCT_ERR_FORMAT, "shape[%zu] is not a non-negative integer", i);
        shape[i] = (uint64_t)v->el[i].iv;
    }
    t->ndim = (int)v->count;
    if (shape_size(t->dtype, t->ndim, shape, &t->nelem, &t->nbytes))
        return st_fail(f, name, e, DDCT_ERR_FORMAT, "shape's element or byte count overflows 64 bits");
    return 0;
}

static int check_offsets(const ddct_st_file *f, const char *name, const ddct_jsum *v, ddct_st_tensor *t, ddct_err *e)
{
    int ok = v->v.type == DDCT_JT_ARR && v->count == 2 && v->el[0].type == DDCT_JT_INT && v->el[0].iv >= 0 &&
             v->el[1].type == DDCT_JT_INT && v->el[1].iv >= 0;
    if (!ok) return st_fail(f, name, e, DDCT_ERR_FORMAT, "\"data_offsets\" missing or not 2 non-negative integers");
    uint64_t begin = (uint64_t)v->el[0].iv, end = (uint64_t)v->el[1].iv;
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
    return 0;
}

static const char *tensor_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_st_file *f = ctx;
    const char *s = f->names + (uintptr_t)f->t[id].name; /* an offset until the header is read */
    *len = strlen(s);
    return s;
}

/* Room for one more item of size sz in *p (cap items, growing by half). */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap + *cap / 2 : 64;
    if (c < need) c = need;
    void *q = realloc(*p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* A tensor entry: the value of key `name` (j->s) at the scanner's position. The first error
 * found by the checks goes to *sem (the JSON keeps being read: an invalid JSON text is reported
 * as such whatever else is wrong, as when the header was parsed whole first). */
static int parse_entry(ddct_st_file *f, ddct_jscan *j, int *sem, ddct_err *e)
{
    char nm[DDCT_ERRMSG_MAX / 2];
    snprintf(nm, sizeof nm, "%s", j->s);
    int empty = j->slen == 0;
    /* the name, and a slot, kept before anything else */
    if (grow((void **)&f->t, &f->cap, f->n + 1, sizeof *f->t) ||
        grow((void **)&f->names, &f->names_cap, f->names_len + j->slen + 1, 1))
        return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory for %zu tensors", f->n + 1);
    ddct_st_tensor *t = &f->t[f->n];
    memset(t, 0, sizeof *t);
    t->name = (const char *)(uintptr_t)f->names_len;
    memcpy(f->names + f->names_len, j->s, j->slen + 1);
    f->names_len += j->slen + 1;
    size_t dup = ddct_nameset_add(&f->by_name, f->n);
    if (dup == DDCT_NAMESET_NOMEM) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    if (dup != DDCT_NAMESET_NONE) return ddct_jscan_fail(j, "duplicate object key"); /* just after it */
    f->n++;
    /* the value: an object whose "dtype", "shape" and "data_offsets" are kept */
    ddct_jscan_ws(j);
    ddct_jsum v[3];
    int seen[3] = {0, 0, 0};
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    int isobj = j->pos < j->n && j->p[j->pos] == '{';
    if (!isobj) {
        if (ddct_jscan_value(j, NULL, NULL)) return -1;
    } else {
        if (++j->depth > 2048) return ddct_jscan_fail(j, "maximum parsing depth reached");
        j->pos++;
        ddct_jscan_ws(j);
        if (j->pos < j->n && j->p[j->pos] == '}') j->pos++;
        else
            for (;;) {
                ddct_jscan_ws(j);
                if (j->pos >= j->n || j->p[j->pos] != '"') return ddct_jscan_fail(j, "string expected as a key");
                size_t kat = j->pos;
                if (ddct_jscan_string(j, 1)) return -1;
                int k = 0;
                while (k < 3 && strcmp(j->s, keys[k])) k++;
                if (k < 3 && seen[k]) {
                    j->pos = kat;
                    return ddct_jscan_fail(j, "duplicate object key");
                }
                if (ddct_jscan_expect(j, ':')) return -1;
                if (k < 3) {
                    seen[k] = 1;
                    if (ddct_jscan_value(j, &v[k], NULL)) return -1;
                } else if (ddct_jscan_value(j, NULL, NULL)) {
                    return -1;
                }
                int end = ddct_jscan_next(j, '}');
                if (end < 0) return -1;
                if (end) break;
            }
        j->depth--;
    }
    if (*sem) return 0; /* an earlier tensor failed: only the JSON is still read */
    for (int k = 0; k < 3; k++)
        if (!seen[k]) v[k].v.type = DDCT_JT_NONE;
    uint64_t shape[DDCT_MAX_DIMS];
    int rc = empty ? st_fail(f, NULL, e, DDCT_ERR_FORMAT, "a tensor has an empty name")
             : !isobj ? st_fail(f, nm, e, DDCT_ERR_FORMAT, "entry is not a JSON object")
                      : 0;
    if (!rc) rc = check_dtype(f, nm, &v[0], t, e);
    if (!rc) rc = check_shape(f, nm, &v[1], t, shape, e);
    if (!rc) rc = check_offsets(f, nm, &v[2], t, e);
    if (!rc && grow((void **)&f->dims, &f->dims_cap, f->dims_len + (size_t)t->ndim, sizeof *f->dims))
        rc = st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    if (rc) {
        *sem = rc;
        return 0;
    }
    if (t->ndim) memcpy(f->dims + f->dims_len, shape, (size_t)t->ndim * sizeof *shape);
    t->shape = (const uint64_t *)(uintptr_t)f->dims_len;
    f->dims_len += (size_t)t->ndim;
    return 0;
}

/* The header: one JSON object, read in one pass without a document tree, so memory is the
 * tensors' own (ddct_st_tensor, names and dimensions) and time linear in the header's size. */
static int parse_header(ddct_st_file *f, ddct_err *e)
{
    ddct_jscan j;
    ddct_jscan_init(&j, f->map.p + 8, (size_t)(f->data_start - 8));
    /* a size guess from the header's length: an entry takes 50 bytes at least */
    if (ddct_nameset_init(&f->by_name, (size_t)((f->data_start - 8) / 256), tensor_name, f))
        return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    int rc = 0, sem = 0, meta_seen = 0;
    size_t meta_at = 0, meta_end = 0;
    ddct_jscan_ws(&j);
    if (j.pos < j.n && j.p[j.pos] == '[') {
        if (!ddct_jscan_value(&j, NULL, NULL)) {
            ddct_jscan_ws(&j);
            if (j.pos == j.n) return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header (at byte 8) is not a JSON object");
            ddct_jscan_fail(&j, "end of file expected");
        }
    } else if (j.pos >= j.n || j.p[j.pos] != '{') {
        ddct_jscan_fail(&j, "'[' or '{' expected");
    } else {
        j.pos++;
        ddct_jscan_ws(&j);
        if (j.pos < j.n && j.p[j.pos] == '}') j.pos++;
        else
            while (!rc) {
                ddct_jscan_ws(&j);
                if (j.pos >= j.n || j.p[j.pos] != '"') {
                    ddct_jscan_fail(&j, "string expected as a key");
                    break;
                }
                size_t kat = j.pos;
                if (ddct_jscan_string(&j, 1) || ddct_jscan_expect(&j, ':')) break;
                if (!strcmp(j.s, ST_METADATA_KEY)) {
                    if (meta_seen) {
                        j.pos = kat;
                        ddct_jscan_fail(&j, "duplicate object key");
                        break;
                    }
                    meta_seen = 1;
                    ddct_jscan_ws(&j);
                    meta_at = j.pos;
                    if (ddct_jscan_value(&j, NULL, NULL)) break;
                    meta_end = j.pos;
                } else {
                    rc = parse_entry(f, &j, &sem, e);
                    if (rc < 0) rc = 0; /* a JSON error: j.why */
                    if (rc || j.why) break;
                }
                if (ddct_jscan_next(&j, '}')) break;
            }
        if (!rc && !j.why) {
            ddct_jscan_ws(&j);
            if (j.pos != j.n) ddct_jscan_fail(&j, "end of file expected");
        }
    }
    ddct_jscan_free(&j);
    if (rc) return rc;
    if (j.why && !strcmp(j.why, "out of memory")) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory");
    if (j.why)
        return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header JSON invalid at byte %llu: %s",
                       8ull + (unsigned long long)j.at, j.why);
    /* __metadata__, in its place among the tensors as far as errors go: before any tensor error
     * only when it came first (the tree-based reader checked members in order) */
    if (meta_seen) {
        const char *why;
        size_t at;
        int m = ddct_json_string_object((const char *)j.p + meta_at, meta_end - meta_at, &f->metadata, &why, &at);
        if (m == -1) return st_fail(f, NULL, e, DDCT_ERR_NOMEM, "out of memory copying \"%s\"", ST_METADATA_KEY);
        if (m == 2)
            return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "header JSON invalid at byte %llu: %s",
                           8ull + (unsigned long long)(meta_at + at), why);
        if (m == 1)
            return st_fail(f, NULL, e, DDCT_ERR_FORMAT, "\"%s\" is not an object of string values", ST_METADATA_KEY);
    }
    if (sem) return sem;
    /* offsets into pointers, now that the arrays no longer move */
    for (size_t i = 0; i < f->n; i++) {
        ddct_st_tensor *t = &f->t[i];
        t->name = f->names + (uintptr_t)t->name;
        t->shape = f->dims + (uintptr_t)t->shape;
        t->data = f->map.p + t->offset;
        t->file = f;
    }
    f->by_name.name = NULL; /* names are pointers now: see ddct_st_find */
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

static int st_load(ddct_st_file *f, ddct_err *e)
{
    FORWARD_IF_ERROR(read_header_len(f, e));
    FORWARD_IF_ERROR(parse_header(f, e));
    return check_tiling(f, e);
}

int ddct_st_open_map(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e)
{
    *out = NULL;
    ddct_st_file *f = calloc(1, sizeof *f);
    if (!f) ddct_map_close(map);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    f->map = *map;
    memset(map, 0, sizeof *map);
    map->fd = -1;
    f->path = strdup(path);
    int rc = f->path ? st_load(f, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "%s: out of memory", path);
    if (rc) {
        ddct_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int ddct_st_open(ddct_st_file **out, const char *path, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path, e, DDCT_ERR_PARAM, "no safetensors path given");
    ddct_map map;
    FORWARD_IF_ERROR(ddct_map_open(&map, path, e));
    return ddct_st_open_map(out, path, &map, e);
}

static const char *opened_name(const void *ctx, size_t id, size_t *len);

/* Tensors from a table (memory, or offsets into f's mapping): checked, copied. */
static int from_table(ddct_st_file *f, const char *label, const ddct_st_mem_tensor *src, const uint64_t *offsets,
                      size_t n, ddct_err *e)
{
    size_t names = 0, dims = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_st_mem_tensor *s = &src[i];
        const char *nm = s->name ? s->name : "(null)";
        uint64_t nelem, nbytes;
        if (!s->name || !*s->name || !strcmp(s->name, ST_METADATA_KEY) || !ddct_utf8_valid(s->name))
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor %zu: invalid name (empty, \"%s\" or not UTF-8)", label, i,
                             ST_METADATA_KEY);
        else if (ddct_dtype_size(s->dtype) == 0)
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s': invalid dtype %d", label, nm, (int)s->dtype);
        else if (s->ndim < 0 || s->ndim > DDCT_MAX_DIMS || (s->ndim && !s->shape))
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s': invalid shape (%d dimensions)", label, nm, s->ndim);
        else if (shape_size(s->dtype, s->ndim, s->shape, &nelem, &nbytes) || nbytes > (uint64_t)SIZE_MAX)
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s': byte count overflows", label, nm);
        else if (!offsets && nbytes && !s->data)
            rc = ddct_seterr(e, DDCT_ERR_PARAM, "%s: tensor '%s': no data given", label, nm);
        else if (offsets && (offsets[i] > f->map.size || f->map.size - offsets[i] < nbytes))
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: tensor '%s': %llu bytes at byte %llu run past the end of the "
                             "file (%llu bytes; truncated?)", label, nm, (unsigned long long)nbytes,
                             (unsigned long long)offsets[i], (unsigned long long)f->map.size);
        names += rc ? 0 : strlen(s->name) + 1;
        dims += rc ? 0 : (size_t)s->ndim;
    }
    if (!rc) {
        f->t = calloc(n + 1, sizeof *f->t);
        f->names = malloc(names + 1);
        f->dims = malloc((dims + 1) * sizeof *f->dims);
        if (!f->t || !f->names || !f->dims || ddct_nameset_init(&f->by_name, n, opened_name, f))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory for %zu tensors", n);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const ddct_st_mem_tensor *s = &src[i];
        ddct_st_tensor *t = &f->t[i];
        size_t len = strlen(s->name) + 1;
        memcpy(f->names + f->names_len, s->name, len);
        t->name = f->names + f->names_len;
        f->names_len += len;
        if (s->ndim) memcpy(f->dims + f->dims_len, s->shape, (size_t)s->ndim * sizeof *f->dims);
        t->shape = f->dims + f->dims_len;
        f->dims_len += (size_t)s->ndim;
        t->dtype = s->dtype;
        t->ndim = s->ndim;
        (void)shape_size(s->dtype, s->ndim, s->shape, &t->nelem, &t->nbytes);
        t->data = offsets ? f->map.p + offsets[i] : s->data;
        t->offset = offsets ? offsets[i] : 0;
        t->file = f;
        f->n = i + 1;
        size_t dup = ddct_nameset_add(&f->by_name, i);
        if (dup == DDCT_NAMESET_NOMEM) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        else if (dup != DDCT_NAMESET_NONE)
            rc = ddct_seterr(e, offsets ? DDCT_ERR_FORMAT : DDCT_ERR_PARAM, "%s: tensor '%s' given twice", label,
                             s->name);
    }
    f->by_name.name = NULL; /* names are pointers: see ddct_st_find */
    return rc;
}

int ddct_st_open_mem(ddct_st_file **out, const char *label, const ddct_st_mem_tensor *src, size_t n, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!label || (n && !src), e, DDCT_ERR_PARAM, "no tensors given");
    ddct_st_file *f = calloc(1, sizeof *f);
    RETURN_ERROR_IF(!f, e, DDCT_ERR_NOMEM, "out of memory");
    f->map.fd = -1; /* no file: every read falls back to the tensors' own bytes */
    f->kind = DDCT_ST_MEMORY;
    f->path = strdup(label);
    int rc = f->path ? from_table(f, label, src, NULL, n, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (rc) {
        ddct_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int ddct_st_open_table(ddct_st_file **out, const char *path, ddct_map *map, const ddct_st_mem_tensor *t,
                       const uint64_t *offsets, size_t n, const char *metadata_json, int kind, void *ext,
                       void (*ext_free)(void *), ddct_err *e)
{
    *out = NULL;
    ddct_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        ddct_map_close(map);
        if (ext_free) ext_free(ext);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "out of memory");
    }
    f->map = *map;
    memset(map, 0, sizeof *map);
    map->fd = -1;
    f->kind = kind;
    f->ext = ext;
    f->ext_free = ext_free;
    f->path = strdup(path);
    int rc = f->path ? 0 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc && metadata_json && !(f->metadata = strdup(metadata_json)))
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) rc = from_table(f, path, t, offsets, n, e);
    if (rc) {
        ddct_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int ddct_st_kind(const ddct_st_file *f) { return f->kind; }
void *ddct_st_ext(const ddct_st_file *f) { return f->ext; }
size_t ddct_st_alias_count(const ddct_st_file *f) { return f->nalias; }
const char *ddct_st_alias_name(const ddct_st_file *f, size_t k, size_t *target)
{
    if (k >= f->nalias) return NULL;
    if (target) *target = f->alias_to[k];
    return f->alias[k];
}

int ddct_st_add_alias(ddct_st_file *f, const char *name, size_t target, ddct_err *e)
{
    RETURN_ERROR_IF(ddct_st_find(f, name), e, DDCT_ERR_FORMAT, "%s: tensor '%s' given twice", f->path, name);
    RETURN_ERROR_IF(target >= f->n, e, DDCT_ERR_INTERNAL, "alias target out of range");
    char **a = realloc(f->alias, (f->nalias + 1) * sizeof *a);
    if (a) f->alias = a;
    size_t *to = a ? realloc(f->alias_to, (f->nalias + 1) * sizeof *to) : NULL;
    if (to) f->alias_to = to;
    char *s = to ? strdup(name) : NULL;
    RETURN_ERROR_IF(!s, e, DDCT_ERR_NOMEM, "out of memory");
    f->alias[f->nalias] = s;
    f->alias_to[f->nalias++] = target;
    return 0;
}

void ddct_st_close(ddct_st_file *f)
{
    if (!f) return;
    free(f->t);
    free(f->names);
    free(f->dims);
    ddct_nameset_free(&f->by_name);
    free(f->metadata);
    ddct_map_close(&f->map);
    free(f->path);
    if (f->ext_free) f->ext_free(f->ext);
    for (size_t k = 0; k < f->nalias; k++) free(f->alias[k]);
    free(f->alias);
    free(f->alias_to);
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

static const char *opened_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_st_file *f = ctx;
    *len = strlen(f->t[id].name);
    return f->t[id].name;
}

const ddct_st_tensor *ddct_st_find(const ddct_st_file *f, const char *name)
{
    if (!name || f->n == 0) return NULL;
    ddct_nameset s = f->by_name;
    s.name = opened_name;
    size_t i = ddct_nameset_find(&s, name, strlen(name));
    if (i != DDCT_NAMESET_NONE) return &f->t[i];
    for (size_t k = 0; k < f->nalias; k++)
        if (!strcmp(f->alias[k], name)) return &f->t[f->alias_to[k]];
    return NULL;
}

/* ---------------------------------------------------------------- writer */

struct ddct_st_writer {
    ddct_ofile *of;
    char *path;
    uint64_t total, written;
    size_t n;
    uint64_t *ends;   /* cumulative end offset of each entry, to name tensors in errors */
    size_t *name_off; /* entry i's name: names.p + name_off[i] */
    ddct_buf names;
};

static void writer_free(ddct_st_writer *w)
{
    ddct_buf_free(&w->names);
    free(w->name_off);
    free(w->ends);
    free(w->path);
    free(w);
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

static const char *writer_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_st_writer *w = ctx;
    const char *s = (const char *)w->names.p + w->name_off[id];
    *len = strlen(s);
    return s;
}

static void put_u64(ddct_buf *b, uint64_t v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    ddct_buf_put(b, t, (size_t)k);
}

/* Entry i at data offset w->total: "name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]}. */
static int add_entry(ddct_st_writer *w, ddct_nameset *seen, ddct_buf *h, const ddct_st_entry *en, size_t i,
                     ddct_err *e)
{
    uint64_t nbytes = 0, end = 0;
    FORWARD_IF_ERROR(check_entry(w, en, &nbytes, e));
    RETURN_ERROR_IF(ddct_add_overflow(w->total, nbytes, &end) || end > (uint64_t)INT64_MAX, e, DDCT_ERR_PARAM,
                    "%s: tensor '%s': data offsets overflow", w->path, en->name);
    size_t len = strlen(en->name);
    w->name_off[i] = w->names.len;
    ddct_buf_put(&w->names, en->name, len + 1);
    FORWARD_IF_ERROR(ddct_buf_check(&w->names, e));
    size_t dup = ddct_nameset_add(seen, i);
    RETURN_ERROR_IF(dup == DDCT_NAMESET_NOMEM, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
    RETURN_ERROR_IF(dup != DDCT_NAMESET_NONE, e, DDCT_ERR_PARAM, "%s: tensor '%s': duplicate name", w->path,
                    en->name);
    RETURN_ERROR_IF(!ddct_utf8_valid(en->name), e, DDCT_ERR_PARAM, "%s: tensor '%s': name is not valid UTF-8",
                    w->path, en->name);
    ddct_buf_u8(h, ',');
    ddct_json_put_string(h, en->name, len);
    ddct_buf_put(h, ":{\"dtype\":\"", 11);
    ddct_buf_put(h, ddct_dtype_name(en->dtype), strlen(ddct_dtype_name(en->dtype)));
    ddct_buf_put(h, "\",\"shape\":[", 11);
    for (int d = 0; d < en->ndim; d++) {
        if (d) ddct_buf_u8(h, ',');
        put_u64(h, en->shape[d]);
    }
    ddct_buf_put(h, "],\"data_offsets\":[", 18);
    put_u64(h, w->total);
    ddct_buf_u8(h, ',');
    put_u64(h, end);
    ddct_buf_put(h, "]}", 2);
    w->ends[i] = w->total = end;
    return 0;
}

/* The complete header text, space-padded to a multiple of 8 bytes: compact JSON, the metadata
 * first, then the entries in order, written directly (what jansson's json_dumps with
 * JSON_COMPACT | JSON_PRESERVE_ORDER gave, without a tree of the whole header). */
static int build_header(ddct_st_writer *w, const ddct_st_entry *entries, const char *metadata_json, ddct_buf *hdr,
                        ddct_err *e)
{
    char *compact = NULL;
    if (metadata_json) {
        const char *why;
        size_t at;
        int m = ddct_json_string_object(metadata_json, strlen(metadata_json), &compact, &why, &at);
        RETURN_ERROR_IF(m == -1, e, DDCT_ERR_NOMEM, "%s: out of memory", w->path);
        RETURN_ERROR_IF(m == 2, e, DDCT_ERR_PARAM, "%s: metadata is not valid JSON (byte %zu): %s", w->path, at, why);
        RETURN_ERROR_IF(m == 1, e, DDCT_ERR_PARAM, "%s: metadata must be a JSON object of string values", w->path);
    }
    ddct_buf h;
    ddct_buf_init(&h);
    ddct_buf_u8(&h, '{');
    if (compact) {
        ddct_json_put_string(&h, ST_METADATA_KEY, strlen(ST_METADATA_KEY));
        ddct_buf_u8(&h, ':');
        ddct_buf_put(&h, compact, strlen(compact));
        free(compact);
    }
    ddct_nameset seen;
    int rc = ddct_nameset_init(&seen, w->n, writer_name, w) ? ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory") : 0;
    for (size_t i = 0; i < w->n && !rc; i++) rc = add_entry(w, &seen, &h, &entries[i], i, e);
    ddct_nameset_free(&seen);
    ddct_buf_u8(&h, '}');
    if (!rc && h.len > 1 && h.p[1] == ',') { /* no metadata: drop the first entry's comma */
        memmove(h.p + 1, h.p + 2, h.len - 2);
        h.len--;
    }
    if (!rc) rc = ddct_buf_check(&h, e);
    if (!rc) {
        size_t len = h.len, pad = (8 - len % 8) % 8;
        ddct_buf_u64(hdr, (uint64_t)(len + pad));
        ddct_buf_put(hdr, h.p, len);
        for (size_t i = 0; i < pad; i++) ddct_buf_u8(hdr, ' ');
        rc = ddct_buf_check(hdr, e);
    }
    ddct_buf_free(&h);
    return rc;
}

static int writer_start(ddct_st_writer *w, int overwrite, const char *const *inputs, const ddct_st_entry *entries,
                        const char *metadata_json, ddct_err *e)
{
    RETURN_ERROR_IF(!w->path || !w->ends || !w->name_off, e, DDCT_ERR_NOMEM, "out of memory");
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
    w->name_off = calloc(n ? n : 1, sizeof *w->name_off);
    ddct_buf_init(&w->names);
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
    size_t len;
    for (size_t i = 0; i < w->n; i++)
        if (w->ends[i] > pos) return writer_name(w, i, &len);
    return w->n ? writer_name(w, w->n - 1, &len) : "(none)";
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
