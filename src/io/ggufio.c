/*
 * ggufio.c — GGUF files as model shards (see ggufio.h).
 */
#include "io/ggufio.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "io/gguf.h"

#define GG_MAX_KV (256ull << 20) /* a KV section held in memory while the header is rebuilt */

int ddct_ggio_sniff(const uint8_t *p, uint64_t size) { return size >= 4 && !memcmp(p, "GGUF", 4); }

typedef struct {
    ddct_gguf *g;
} gg_ext;

static void ext_free(void *x)
{
    gg_ext *g = x;
    if (!g) return;
    ddct_gguf_close(g->g);
    free(g);
}

typedef struct {
    size_t idx;
    uint64_t off;
} by_off;

static int cmp_off(const void *a, const void *b)
{
    const by_off *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Header indices in data order. */
static size_t *data_order(const ddct_gguf_tensor *(*get)(const void *, size_t), const void *src, size_t n)
{
    by_off *k = malloc((n + 1) * sizeof *k);
    size_t *o = malloc((n + 1) * sizeof *o);
    if (!k || !o) {
        free(k);
        free(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) k[i] = (by_off){.idx = i, .off = get(src, i)->rel_offset};
    qsort(k, n, sizeof *k, cmp_off);
    for (size_t i = 0; i < n; i++) o[i] = k[i].idx;
    free(k);
    return o;
}

static const ddct_gguf_tensor *file_tensor(const void *g, size_t i) { return ddct_gguf_get(g, i); }

/* The dtype and shape a tensor is read as: its element type and row-major shape, or U8 bytes. */
static int as_record(const ddct_gguf_tensor *t, ddct_dtype *dt, uint64_t shape[DDCT_GGUF_MAX_DIMS])
{
    *dt = ddct_gguf_dtype(t->type);
    if (*dt != DDCT_DT_INVALID) return ddct_gguf_shape(t, shape);
    *dt = DDCT_DT_U8;
    shape[0] = t->nbytes;
    return 1;
}

int ddct_ggio_open(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e)
{
    *out = NULL;
    gg_ext *x = calloc(1, sizeof *x);
    int rc = x ? ddct_gguf_open_mem(&x->g, path, map->p, (size_t)map->size, e)
               : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    size_t n = rc ? 0 : ddct_gguf_count(x->g);
    if (!rc && ddct_gguf_find(x->g, DDCT_GGUF_KV_NAME))
        rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED, "%s: a tensor is named '%s', the name deltadct gives the key/value "
                         "section", path, DDCT_GGUF_KV_NAME);
    size_t *order = rc ? NULL : data_order(file_tensor, x->g, n);
    ddct_st_mem_tensor *tab = rc ? NULL : calloc(n + 2, sizeof *tab);
    uint64_t *offs = rc ? NULL : calloc(n + 2, sizeof *offs);
    uint64_t *shapes = rc ? NULL : calloc((n + 2) * DDCT_GGUF_MAX_DIMS, sizeof *shapes);
    if (!rc && (!order || !tab || !offs || !shapes)) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) {
        uint64_t kv_off, kv_len, kv_count;
        ddct_gguf_kv_section(x->g, &kv_off, &kv_len, &kv_count);
        shapes[0] = kv_len;
        tab[0] = (ddct_st_mem_tensor){.name = DDCT_GGUF_KV_NAME, .dtype = DDCT_DT_U8, .ndim = 1, .shape = shapes};
        offs[0] = kv_off;
        for (size_t r = 0; r < n; r++) {
            const ddct_gguf_tensor *t = ddct_gguf_get(x->g, order[r]);
            uint64_t *sh = shapes + (r + 1) * DDCT_GGUF_MAX_DIMS;
            ddct_dtype dt;
            int nd = as_record(t, &dt, sh);
            tab[r + 1] = (ddct_st_mem_tensor){.name = t->name, .dtype = dt, .ndim = nd, .shape = sh};
            offs[r + 1] = t->offset;
        }
    }
    ddct_st_file *f = NULL;
    if (!rc) {
        rc = ddct_st_open_table(&f, path, map, tab, offs, n + 1, NULL, DDCT_ST_GGUF, x, ext_free, e);
        x = NULL; /* owned by f, or freed */
    }
    free(order);
    free(tab);
    free(offs);
    free(shapes);
    ext_free(x);
    if (rc) {
        ddct_map_close(map);
        return rc;
    }
    *out = f;
    return 0;
}

int ddct_ggio_writable(const ddct_st_file *f, ddct_err *e)
{
    const gg_ext *x = ddct_st_ext(f);
    uint64_t at = 0;
    int zero = !x || ddct_gguf_gaps_zero(x->g, &at);
    /* the padding read lies between the tensors: its pages leave the resident set */
    for (size_t i = 0; x && i < ddct_st_count(f); i++) ddct_st_release(f, ddct_st_get(f, i), 0, UINT64_MAX);
    if (zero) return 0;
    RETURN_ERROR(e, DDCT_ERR_UNSUPPORTED,
                 "%s: byte %llu, outside the header and the tensors (alignment padding), is not zero: such a GGUF "
                 "fine-tune would not be rebuilt byte for byte",
                 ddct_st_path(f), (unsigned long long)at);
}

json_t *ddct_ggio_layout(const ddct_st_file *f)
{
    const gg_ext *x = ddct_st_ext(f);
    if (!x) return NULL;
    uint64_t kv_off, kv_len, kv_count;
    ddct_gguf_kv_section(x->g, &kv_off, &kv_len, &kv_count);
    json_t *ts = json_array();
    int bad = !ts;
    for (size_t i = 0; !bad && i < ddct_gguf_count(x->g); i++) {
        const ddct_gguf_tensor *t = ddct_gguf_get(x->g, i);
        json_t *ne = json_array();
        for (int k = 0; ne && k < t->n_dims; k++) bad |= json_array_append_new(ne, json_integer((json_int_t)t->ne[k]));
        bad |= !ne || json_array_append_new(ts, json_pack("{s:s, s:I, s:o, s:I}", "name", t->name, "type",
                                                          (json_int_t)t->type, "ne", ne, "offset",
                                                          (json_int_t)t->rel_offset));
    }
    json_t *L = bad ? NULL
                    : json_pack("{s:I, s:I, s:I, s:o}", "version", (json_int_t)ddct_gguf_version(x->g), "kv_count",
                                (json_int_t)kv_count, "size", (json_int_t)ddct_gguf_size(x->g), "tensors", ts);
    if (!L) json_decref(ts);
    return L;
}

/* ---------------------------------------------------------------- writer */

struct ddct_ggio_writer {
    char *path;
    int overwrite;
    const char *const *inputs;
    ddct_gguf_layout L;
    ddct_gguf_tensor *t;
    char *names;
    uint8_t *kv;
    uint64_t kv_have, total;
    ddct_gguf_writer *w;
};

static int lay_fail(ddct_err *e, const char *path, const char *what)
{
    return ddct_seterr(e, DDCT_ERR_FORMAT, "%s: GGUF layout: %s", path, what);
}

static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static const ddct_gguf_tensor *layout_tensor(const void *w, size_t i) { return &((const ddct_ggio_writer *)w)->t[i]; }

/* The tensors of the layout, and their bytes (from the type's block and type sizes). */
static int read_layout(ddct_ggio_writer *w, const char *path, const json_t *lay, ddct_err *e)
{
    const json_t *ts = json_object_get(lay, "tensors");
    uint64_t version, kv_count, size;
    if (get_u64(json_object_get(lay, "version"), &version) || (version != 2 && version != 3) ||
        get_u64(json_object_get(lay, "kv_count"), &kv_count) || get_u64(json_object_get(lay, "size"), &size) ||
        !json_is_array(ts))
        return lay_fail(e, path, "incomplete");
    size_t n = json_array_size(ts), bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += json_string_length(json_object_get(json_array_get(ts, i), "name")) + 1;
    w->t = calloc(n + 1, sizeof *w->t);
    w->names = malloc(bytes + 1);
    RETURN_ERROR_IF(!w->t || !w->names, e, DDCT_ERR_NOMEM, "out of memory");
    char *at = w->names;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(ts, i), *nm = json_object_get(o, "name"), *ne = json_object_get(o, "ne");
        ddct_gguf_tensor *t = &w->t[i];
        uint64_t type;
        if (!json_is_string(nm) || strlen(json_string_value(nm)) != json_string_length(nm) ||
            get_u64(json_object_get(o, "type"), &type) || type > UINT32_MAX ||
            get_u64(json_object_get(o, "offset"), &t->rel_offset) || !json_is_array(ne) || json_array_size(ne) < 1 ||
            json_array_size(ne) > DDCT_GGUF_MAX_DIMS)
            return lay_fail(e, path, "a tensor without name, type, ne or offset");
        t->type = (uint32_t)type;
        t->n_dims = (int)json_array_size(ne);
        uint32_t block, tsize;
        if (ddct_gguf_type_info(t->type, &block, &tsize)) return lay_fail(e, path, "a tensor of an unknown type");
        uint64_t rows = 1;
        for (int k = 0; k < DDCT_GGUF_MAX_DIMS; k++) {
            t->ne[k] = 1;
            if (k < t->n_dims && get_u64(json_array_get(ne, (size_t)k), &t->ne[k])) return lay_fail(e, path, "bad ne");
            if (k && ddct_mul_overflow(rows, t->ne[k], &rows)) return lay_fail(e, path, "ne overflows");
        }
        if (!block || t->ne[0] % block || ddct_mul_overflow(t->ne[0] / block, tsize, &t->nbytes) ||
            ddct_mul_overflow(t->nbytes, rows, &t->nbytes) || ddct_mul_overflow(t->ne[0], rows, &t->nelem))
            return lay_fail(e, path, "a tensor's size does not fit its type");
        size_t nl = json_string_length(nm);
        memcpy(at, json_string_value(nm), nl + 1);
        t->name = at;
        at += nl + 1;
    }
    w->L = (ddct_gguf_layout){.version = (uint32_t)version, .kv_count = kv_count, .tensors = w->t, .n = n, .size = size};
    return 0;
}

int ddct_ggio_wopen(ddct_ggio_writer **out, const char *path, int overwrite, const char *const *inputs,
                    const json_t *layout, const ddct_st_entry *records, size_t n, ddct_err *e)
{
    *out = NULL;
    ddct_ggio_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "out of memory");
    w->overwrite = overwrite;
    w->inputs = inputs;
    int rc = (w->path = strdup(path)) ? read_layout(w, path, layout, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    /* the records are the KV section, then the layout's tensors in data order */
    if (!rc && (n != w->L.n + 1 || strcmp(records[0].name, DDCT_GGUF_KV_NAME) || records[0].dtype != DDCT_DT_U8 ||
                records[0].ndim != 1 || records[0].shape[0] > GG_MAX_KV || records[0].shape[0] < 1))
        rc = lay_fail(e, path, "the records are not its key/value section and tensors");
    size_t *order = rc ? NULL : data_order(layout_tensor, w, w->L.n);
    if (!rc && !order) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t r = 0; !rc && r < w->L.n; r++) {
        const ddct_gguf_tensor *t = &w->t[order[r]];
        const ddct_st_entry *en = &records[r + 1];
        ddct_dtype dt;
        uint64_t shape[DDCT_GGUF_MAX_DIMS];
        int nd = as_record(t, &dt, shape);
        int same = !strcmp(en->name, t->name) && en->dtype == dt && en->ndim == nd;
        for (int k = 0; same && k < nd; k++) same = en->shape[k] == shape[k];
        if (!same) rc = lay_fail(e, path, "the records are not its key/value section and tensors");
        w->total += t->nbytes;
    }
    free(order);
    if (!rc) {
        w->L.kv_len = records[0].shape[0];
        w->kv = malloc((size_t)w->L.kv_len);
        if (!w->kv) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        ddct_ggio_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

uint64_t ddct_ggio_data_bytes(const ddct_ggio_writer *w) { return w ? w->total : 0; }

int ddct_ggio_write(ddct_ggio_writer *w, const void *p, size_t n, ddct_err *e)
{
    const uint8_t *q = p;
    if (w->kv_have < w->L.kv_len) {
        size_t k = n < w->L.kv_len - w->kv_have ? n : (size_t)(w->L.kv_len - w->kv_have);
        memcpy(w->kv + w->kv_have, q, k);
        w->kv_have += k;
        q += k;
        n -= k;
        if (w->kv_have == w->L.kv_len) { /* the header can be written now */
            w->L.kv = w->kv;
            FORWARD_IF_ERROR(ddct_ggw_open(&w->w, w->path, w->overwrite, w->inputs, &w->L, e));
        }
    }
    return n ? ddct_ggw_write(w->w, q, n, e) : 0;
}

int ddct_ggio_commit(ddct_ggio_writer *w, ddct_err *e)
{
    int rc = w->w ? ddct_ggw_commit(w->w, e) : ddct_seterr(e, DDCT_ERR_INTERNAL, "%s: no key/value section", w->path);
    w->w = NULL;
    ddct_ggio_abort(w);
    return rc;
}

void ddct_ggio_abort(ddct_ggio_writer *w)
{
    if (!w) return;
    ddct_ggw_abort(w->w);
    free(w->path);
    free(w->t);
    free(w->names);
    free(w->kv);
    free(w);
}
