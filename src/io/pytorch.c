/*
 * pytorch.c — PyTorch checkpoint reader and writer (see pytorch.h).
 */
#include "io/pytorch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/ofile.h"
#include "io/pickle.h"
#include "io/zip.h"

#define PT_MAX_PICKLE (1ull << 30)
#define PT_ALIGN 64
#define PT_MAX_GAP (64ull << 20) /* bytes of a written storage that no tensor covers */

int ddct_pt_sniff(const uint8_t *p, uint64_t size)
{
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (ddct_zip_sniff(p, size)) return 1;
    if (size >= sizeof legacy && !memcmp(p, legacy, sizeof legacy)) return 2;
    return 0;
}

/* ---------------------------------------------------------------- views */

/* Elements of a shape (0 on overflow with *ovf set). */
static uint64_t elems(int nd, const uint64_t *shape, int *ovf)
{
    uint64_t n = 1;
    for (int i = 0; i < nd; i++)
        if (ddct_mul_overflow(n, shape[i], &n)) *ovf = 1;
    return n;
}

/* Row-major contiguous (dimensions of size 1 may have any stride). */
static int contiguous(int nd, const uint64_t *shape, const int64_t *stride)
{
    uint64_t want = 1;
    for (int i = nd - 1; i >= 0; i--) {
        if (shape[i] != 1 && (stride[i] < 0 || (uint64_t)stride[i] != want)) return 0;
        if (ddct_mul_overflow(want, shape[i], &want)) return 0;
    }
    return 1;
}

static void fmt_dims(char *buf, size_t cap, int nd, const uint64_t *u, const int64_t *s)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (int i = 0; i < nd && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ", %lld" : "%lld", u ? (long long)u[i] : (long long)s[i]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
}

typedef struct {
    const char *key;
    ddct_dtype dt;
    uint64_t numel, lo, hi; /* elements, and the span the views use */
    int used;
} pt_storage;

typedef struct {
    const char *name;
    size_t storage;
    uint64_t offset, nelem;
    int ndim;
    const uint64_t *shape;
    const int64_t *stride;
    int alias;   /* 1: the same view as an earlier tensor */
    size_t same; /* that tensor (a view index) */
    size_t rec;  /* its record (the same's, for an alias) */
} pt_view;

/* Views of one file or layout: storages deduplicated, aliases found, records in order. */
typedef struct {
    pt_storage *s;
    size_t ns;
    pt_view *v;
    size_t nv;
    size_t *order; /* records: non-alias views by (storage, offset, position) */
    size_t nrec;
} pt_plan;

static void plan_free(pt_plan *p)
{
    free(p->s);
    free(p->v);
    free(p->order);
    memset(p, 0, sizeof *p);
}

typedef struct {
    size_t storage, idx;
    uint64_t offset;
} sort_key;

static int cmp_view(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    if (x->storage != y->storage) return x->storage < y->storage ? -1 : 1;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int same_view(const pt_view *a, const pt_view *b)
{
    if (a->storage != b->storage || a->offset != b->offset || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* Order the records, find aliases; strict: views of a storage must not overlap unless identical
 * (what the writer can write back). why: the first problem, for the caller's message. */
static int plan_order(pt_plan *p, char *why, size_t cap)
{
    p->order = malloc((p->nv + 1) * sizeof *p->order);
    sort_key *k0 = malloc((p->nv + 1) * sizeof *k0);
    if (!p->order || !k0) {
        free(k0);
        return -1;
    }
    for (size_t i = 0; i < p->nv; i++) k0[i] = (sort_key){.storage = p->v[i].storage, .idx = i, .offset = p->v[i].offset};
    qsort(k0, p->nv, sizeof *k0, cmp_view);
    for (size_t i = 0; i < p->nv; i++) p->order[i] = k0[i].idx;
    free(k0);
    size_t k = 0, prev = (size_t)-1;
    int overlap = 0;
    for (size_t j = 0; j < p->nv; j++) {
        pt_view *v = &p->v[p->order[j]];
        if (prev != (size_t)-1 && same_view(&p->v[prev], v)) {
            v->alias = 1;
            v->same = prev;
            continue;
        }
        if (!overlap && prev != (size_t)-1 && p->v[prev].storage == v->storage && p->v[prev].nelem && v->nelem &&
            p->v[prev].offset + p->v[prev].nelem > v->offset) {
            overlap = 1;
            snprintf(why, cap, "tensors '%s' and '%s' overlap in storage '%s' without being the same view",
                     p->v[prev].name, v->name, p->s[v->storage].key);
        }
        p->order[k++] = p->order[j];
        prev = p->order[j];
    }
    p->nrec = k;
    for (size_t r = 0; r < k; r++) p->v[p->order[r]].rec = r;
    for (size_t i = 0; i < p->nv; i++)
        if (p->v[i].alias) p->v[i].rec = p->v[p->v[i].same].rec;
    return overlap;
}

/* The storage, if any, that holds more than PT_MAX_GAP bytes no view covers (the span its views
 * use, [lo, hi)), said in why: 0, or -1 when out of memory. */
static int gaps_why(const pt_plan *p, char *why, size_t cap)
{
    uint64_t *covered = calloc(p->ns + 1, sizeof *covered);
    if (!covered) return -1;
    for (size_t r = 0; r < p->nrec; r++) covered[p->v[p->order[r]].storage] += p->v[p->order[r]].nelem;
    for (size_t s = 0; s < p->ns; s++) {
        const pt_storage *st = &p->s[s];
        uint64_t span = st->lo == UINT64_MAX ? 0 : st->hi - st->lo;
        if ((span - covered[s]) * ddct_dtype_size(st->dt) > PT_MAX_GAP) {
            snprintf(why, cap, "storage '%s' is mostly gaps", st->key);
            break;
        }
    }
    free(covered);
    return 0;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    ddct_pkl_dict d;
    char *root;
    pt_plan plan;
    char why[512]; /* why it cannot be written back ("": it can) */
} pt_ext;

static void ext_free(void *x)
{
    pt_ext *p = x;
    if (!p) return;
    ddct_pkl_free(&p->d);
    plan_free(&p->plan);
    free(p->root);
    free(p);
}

/* ROOT, from the one ROOT/data.pkl entry. */
static int find_root(const ddct_zip *z, const char *path, char **root, const ddct_zip_entry **pkl, ddct_err *e)
{
    *pkl = NULL;
    int n = 0;
    for (size_t i = 0; i < z->n; i++) {
        const char *nm = z->e[i].name, *sl = strchr(nm, '/');
        if (sl && sl > nm && !strcmp(sl, "/data.pkl")) {
            *pkl = &z->e[i];
            n++;
        }
    }
    for (size_t i = 0; !n && i < z->n; i++) {
        const char *sl = strchr(z->e[i].name, '/');
        RETURN_ERROR_IF(sl && (!strcmp(sl, "/constants.pkl") || !strncmp(sl, "/code/", 6)), e, DDCT_ERR_UNSUPPORTED,
                        "%s: a TorchScript archive (torch.jit.save), not a state dict saved with torch.save", path);
    }
    RETURN_ERROR_IF(n == 0, e, DDCT_ERR_FORMAT, "%s: a ZIP file without a data.pkl: not a PyTorch checkpoint", path);
    RETURN_ERROR_IF(n > 1, e, DDCT_ERR_FORMAT, "%s: %d data.pkl entries in several folders", path, n);
    const char *nm = (*pkl)->name;
    *root = strndup(nm, (size_t)(strchr(nm, '/') - nm));
    RETURN_ERROR_IF(!*root, e, DDCT_ERR_NOMEM, "out of memory");
    char want[4096];
    snprintf(want, sizeof want, "%s/constants.pkl", *root);
    RETURN_ERROR_IF(ddct_zip_find(z, want), e, DDCT_ERR_UNSUPPORTED,
                    "%s: a TorchScript archive (torch.jit.save), not a state dict saved with torch.save", path);
    return 0;
}

static int stored(const ddct_zip_entry *en, const char *path, ddct_err *e)
{
    RETURN_ERROR_IF(en->flags & 1, e, DDCT_ERR_UNSUPPORTED, "%s: ZIP entry '%s' is encrypted", path, en->name);
    RETURN_ERROR_IF(en->method != 0, e, DDCT_ERR_UNSUPPORTED,
                    "%s: ZIP entry '%s' is compressed (method %u); torch.save stores entries uncompressed: "
                    "re-save it with torch.save",
                    path, en->name, en->method);
    return 0;
}

/* Storages and views of the dict, checked against the ZIP entries. */
static int read_views(pt_ext *x, const ddct_zip *z, const char *path, const ddct_zip_entry ***ent, ddct_err *e)
{
    pt_plan *p = &x->plan;
    size_t n = x->d.n;
    p->s = calloc(n + 1, sizeof *p->s);
    p->v = calloc(n + 1, sizeof *p->v);
    *ent = calloc(n + 1, sizeof **ent);
    RETURN_ERROR_IF(!p->s || !p->v || !*ent, e, DDCT_ERR_NOMEM, "out of memory");
    char key[4096], a[256], b[256], esc[DDCT_ESC_NAME];
    for (size_t i = 0; i < n; i++) {
        const ddct_pkl_tensor *t = &x->d.t[i];
        const char *nm = ddct_escape(t->name, esc, sizeof esc);
        size_t s = 0;
        while (s < p->ns && strcmp(p->s[s].key, t->storage)) s++;
        if (s == p->ns) {
            snprintf(key, sizeof key, "%s/data/%s", x->root, t->storage);
            const ddct_zip_entry *en = ddct_zip_find(z, key);
            RETURN_ERROR_IF(!en, e, DDCT_ERR_FORMAT, "%s: tensor '%s': storage '%s' has no entry %s", path, nm,
                            t->storage, key);
            FORWARD_IF_ERROR(stored(en, path, e));
            uint64_t bytes;
            RETURN_ERROR_IF(ddct_mul_overflow(t->storage_numel, ddct_dtype_size(t->dtype), &bytes) || bytes > en->size,
                            e, DDCT_ERR_FORMAT,
                            "%s: tensor '%s': storage '%s' of %llu %s elements is larger than its entry (%llu bytes)",
                            path, nm, t->storage, (unsigned long long)t->storage_numel, ddct_dtype_name(t->dtype),
                            (unsigned long long)en->size);
            p->s[s] = (pt_storage){.key = t->storage, .dt = t->dtype, .numel = t->storage_numel, .lo = UINT64_MAX};
            (*ent)[s] = en;
            p->ns++;
        }
        pt_storage *st = &p->s[s];
        RETURN_ERROR_IF(st->dt != t->dtype || st->numel != t->storage_numel, e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': storage '%s' is given two types or sizes", path, nm, t->storage);
        if (!contiguous(t->ndim, t->shape, t->stride)) {
            fmt_dims(a, sizeof a, t->ndim, t->shape, NULL);
            fmt_dims(b, sizeof b, t->ndim, NULL, t->stride);
            RETURN_ERROR(e, DDCT_ERR_UNSUPPORTED,
                         "%s: tensor '%s' is not contiguous (shape %s, stride %s): not supported; save "
                         "{k: v.contiguous() for k, v in state_dict.items()}",
                         path, nm, a, b);
        }
        int ovf = 0;
        uint64_t ne = elems(t->ndim, t->shape, &ovf), end;
        RETURN_ERROR_IF(ovf || (ne && (ddct_add_overflow(t->offset, ne, &end) || end > st->numel)), e, DDCT_ERR_FORMAT,
                        "%s: tensor '%s': elements [%llu, +%llu) lie outside its storage '%s' (%llu elements)", path,
                        nm, (unsigned long long)t->offset, (unsigned long long)ne, t->storage,
                        (unsigned long long)st->numel);
        p->v[i] = (pt_view){.name = t->name, .storage = s, .offset = ne ? t->offset : 0, .nelem = ne,
                            .ndim = t->ndim, .shape = t->shape, .stride = t->stride};
        if (ne) {
            st->lo = t->offset < st->lo ? t->offset : st->lo;
            st->hi = end > st->hi ? end : st->hi;
        }
        p->nv++;
    }
    return 0;
}

int ddct_pt_open(ddct_st_file **out, const char *path, ddct_map *map, ddct_err *e)
{
    *out = NULL;
    pt_ext *x = calloc(1, sizeof *x);
    ddct_zip z = {0};
    const ddct_zip_entry *pkl = NULL, **ent = NULL;
    ddct_st_mem_tensor *tab = NULL;
    uint64_t *offs = NULL;
    int rc = x ? 0 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    int kind = ddct_pt_sniff(map->p, map->size);
    if (!rc && kind == 2)
        rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED,
                         "%s: PyTorch's legacy (pre-1.6) checkpoint format: not supported; load it and save it again "
                         "with a current torch.save",
                         path);
    if (!rc && kind != 1) rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: not a PyTorch checkpoint (no ZIP header)", path);
    if (!rc) rc = ddct_zip_read(&z, map, path, e);
    if (!rc) rc = find_root(&z, path, &x->root, &pkl, e);
    if (!rc) rc = stored(pkl, path, e);
    if (!rc && pkl->size > PT_MAX_PICKLE)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: data.pkl of %llu bytes (at most %llu)", path,
                         (unsigned long long)pkl->size, PT_MAX_PICKLE);
    if (!rc) {
        char bo[4096];
        snprintf(bo, sizeof bo, "%s/byteorder", x->root);
        const ddct_zip_entry *b = ddct_zip_find(&z, bo);
        if (b) rc = stored(b, path, e);
        if (!rc && b && (b->size != 6 || memcmp(map->p + b->data, "little", 6)))
            rc = ddct_seterr(e, DDCT_ERR_UNSUPPORTED, "%s: not a little-endian checkpoint (%s)", path, bo);
    }
    if (!rc) rc = ddct_pkl_read(&x->d, map->p + pkl->data, (size_t)pkl->size, path, e);
    if (!rc) rc = read_views(x, &z, path, &ent, e);
    int ov = rc ? 0 : plan_order(&x->plan, x->why, sizeof x->why);
    if (ov < 0 || (!rc && !ov && gaps_why(&x->plan, x->why, sizeof x->why)))
        rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) {
        tab = calloc(x->plan.nrec + 1, sizeof *tab);
        offs = calloc(x->plan.nrec + 1, sizeof *offs);
        if (!tab || !offs) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    for (size_t r = 0; !rc && r < x->plan.nrec; r++) {
        const pt_view *v = &x->plan.v[x->plan.order[r]];
        const pt_storage *s = &x->plan.s[v->storage];
        tab[r] = (ddct_st_mem_tensor){.name = v->name, .dtype = s->dt, .ndim = v->ndim, .shape = v->shape};
        offs[r] = ent[v->storage]->data + v->offset * ddct_dtype_size(s->dt);
    }
    ddct_st_file *f = NULL;
    /* the pages validation touched (a local header before every storage: with fault-around and
     * large folios, tens of MB of a 7B file) leave the resident set; tensors are read later */
    if (!rc) ddct_map_dontneed(map, 0, map->size);
    if (!rc) {
        rc = ddct_st_open_table(&f, path, map, tab, offs, x->plan.nrec, NULL, DDCT_ST_PYTORCH, x, ext_free, e);
        x = NULL; /* owned by f, or freed */
    }
    for (size_t i = 0; !rc && f && i < ((pt_ext *)ddct_st_ext(f))->plan.nv; i++) {
        const pt_view *v = &((pt_ext *)ddct_st_ext(f))->plan.v[i];
        if (v->alias) rc = ddct_st_add_alias(f, v->name, v->rec, e);
    }
    free(tab);
    free(offs);
    free(ent);
    ddct_zip_free(&z);
    ext_free(x);
    if (rc) {
        ddct_st_close(f);
        ddct_map_close(map);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---------------------------------------------------------------- layout */

static json_t *int_array(int nd, const uint64_t *u, const int64_t *s)
{
    json_t *a = json_array();
    for (int i = 0; a && i < nd; i++)
        if (json_array_append_new(a, json_integer(u ? (json_int_t)u[i] : (json_int_t)s[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *layout_of(const char *root, const char *state_json, const pt_plan *p)
{
    json_t *L = json_object(), *ss = json_array(), *ts = json_array();
    int bad = !L || !ss || !ts;
    json_t *state = json_null();
    if (state_json) {
        json_error_t je;
        json_decref(state);
        state = json_loads(state_json, 0, &je);
        bad |= !state;
    }
    for (size_t s = 0; !bad && s < p->ns; s++) {
        const pt_storage *st = &p->s[s];
        uint64_t numel = st->lo == UINT64_MAX ? 0 : st->hi - st->lo;
        bad |= json_array_append_new(ss, json_pack("{s:s, s:s, s:I}", "key", st->key, "dtype", ddct_dtype_name(st->dt),
                                                   "numel", (json_int_t)numel));
    }
    for (size_t i = 0; !bad && i < p->nv; i++) {
        const pt_view *v = &p->v[i];
        const pt_storage *st = &p->s[v->storage];
        uint64_t off = v->nelem ? v->offset - st->lo : 0;
        json_t *sh = int_array(v->ndim, v->shape, NULL), *sd = int_array(v->ndim, NULL, v->stride);
        bad |= !sh || !sd ||
               json_array_append_new(ts, json_pack("{s:s, s:I, s:I, s:o, s:o}", "name", v->name, "storage",
                                                   (json_int_t)v->storage, "offset", (json_int_t)off, "shape", sh,
                                                   "stride", sd));
    }
    if (!bad) bad = json_object_set_new(L, "root", json_string(root)) || json_object_set_new(L, "state", state) ||
                    json_object_set(L, "storages", ss) || json_object_set(L, "tensors", ts);
    else json_decref(state);
    json_decref(ss);
    json_decref(ts);
    if (bad) {
        json_decref(L);
        return NULL;
    }
    return L;
}

json_t *ddct_pt_layout(const ddct_st_file *f)
{
    const pt_ext *x = ddct_st_ext(f);
    return x ? layout_of(x->root, x->d.state_json, &x->plan) : NULL;
}

json_t *ddct_pt_layout_plain(const ddct_st_entry *t, size_t n)
{
    pt_plan p = {0};
    p.s = calloc(n + 1, sizeof *p.s);
    p.v = calloc(n + 1, sizeof *p.v);
    int64_t(*strides)[DDCT_MAX_DIMS] = calloc(n + 1, sizeof *strides);
    char(*keys)[24] = calloc(n + 1, sizeof *keys);
    json_t *L = NULL;
    if (p.s && p.v && strides && keys) {
        for (size_t i = 0; i < n; i++) {
            int ovf = 0;
            uint64_t ne = elems(t[i].ndim, t[i].shape, &ovf), str = 1;
            for (int k = t[i].ndim - 1; k >= 0; k--) {
                strides[i][k] = (int64_t)str;
                str *= t[i].shape[k];
            }
            snprintf(keys[i], sizeof keys[i], "%zu", i);
            p.s[i] = (pt_storage){.key = keys[i], .dt = t[i].dtype, .numel = ne, .lo = ne ? 0 : UINT64_MAX, .hi = ne};
            p.v[i] = (pt_view){.name = t[i].name, .storage = i, .nelem = ne, .ndim = t[i].ndim, .shape = t[i].shape,
                               .stride = strides[i]};
        }
        p.ns = p.nv = n;
        L = layout_of("archive", NULL, &p);
    }
    free(strides);
    free(keys);
    plan_free(&p);
    return L;
}

/* ---------------------------------------------------------------- writer */

struct ddct_pt_writer {
    ddct_ofile *of;
    ddct_zip_writer *z;
    char *root;
    pt_plan plan;
    uint64_t *shape_store; /* views' shapes and strides, from the layout */
    int64_t *stride_store;
    char *names;           /* names and keys */
    ddct_pkl_tensor *pk;
    uint64_t total;        /* the records' bytes */
    size_t rec;            /* the record being written */
    uint64_t rec_left;     /* its bytes still to come */
    size_t storage;        /* the storage entry open (ns: none yet) */
    uint64_t pos;          /* bytes of it written */
    int started;
};

static int lay_fail(ddct_err *e, const char *path, const char *what)
{
    return ddct_seterr(e, DDCT_ERR_FORMAT, "%s: PyTorch layout: %s", path, what);
}

static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* The layout, checked, into w->plan and w->pk. */
static int read_layout(ddct_pt_writer *w, const char *path, const json_t *L, ddct_err *e)
{
    const json_t *root = json_object_get(L, "root"), *ss = json_object_get(L, "storages"),
                 *ts = json_object_get(L, "tensors");
    if (!json_is_string(root) || !json_is_array(ss) || !json_is_array(ts)) return lay_fail(e, path, "incomplete");
    const char *rs = json_string_value(root);
    if (!*rs || strlen(rs) > 200 || strchr(rs, '/') || strlen(rs) != json_string_length(root))
        return lay_fail(e, path, "bad root folder name");
    size_t ns = json_array_size(ss), nv = json_array_size(ts), bytes = 0;
    pt_plan *p = &w->plan;
    p->s = calloc(ns + 1, sizeof *p->s);
    p->v = calloc(nv + 1, sizeof *p->v);
    w->pk = calloc(nv + 1, sizeof *w->pk);
    w->shape_store = calloc(nv * DDCT_MAX_DIMS + 1, sizeof *w->shape_store);
    w->stride_store = calloc(nv * DDCT_MAX_DIMS + 1, sizeof *w->stride_store);
    RETURN_ERROR_IF(!p->s || !p->v || !w->pk || !w->shape_store || !w->stride_store || !(w->root = strdup(rs)), e,
                    DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++) bytes += json_string_length(json_object_get(json_array_get(ss, i), "key")) + 1;
    for (size_t i = 0; i < nv; i++) bytes += json_string_length(json_object_get(json_array_get(ts, i), "name")) + 1;
    w->names = malloc(bytes + 1);
    RETURN_ERROR_IF(!w->names, e, DDCT_ERR_NOMEM, "out of memory");
    char *at = w->names;
    for (size_t i = 0; i < ns; i++) {
        const json_t *o = json_array_get(ss, i), *k = json_object_get(o, "key"), *d = json_object_get(o, "dtype");
        pt_storage *s = &p->s[i];
        if (!json_is_string(k) || !json_is_string(d) || get_u64(json_object_get(o, "numel"), &s->numel))
            return lay_fail(e, path, "a storage without key, dtype or numel");
        const char *ks = json_string_value(k);
        size_t kl = strlen(ks);
        if (!kl || kl > 64 || kl != json_string_length(k) || strchr(ks, '/') || strchr(ks, '\\'))
            return lay_fail(e, path, "bad storage key");
        s->dt = ddct_dtype_from_name(json_string_value(d), json_string_length(d));
        uint64_t sb;
        if (!ddct_pkl_storage_name(s->dt)) return lay_fail(e, path, "a storage dtype torch has no storage for");
        if (ddct_mul_overflow(s->numel, ddct_dtype_size(s->dt), &sb)) return lay_fail(e, path, "storage size overflows");
        s->hi = s->numel; /* a layout's storage is the span its views use */
        memcpy(at, ks, kl + 1);
        s->key = at;
        at += kl + 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->s[j].key, s->key)) return lay_fail(e, path, "a storage key twice");
    }
    p->ns = ns;
    for (size_t i = 0; i < nv; i++) {
        const json_t *o = json_array_get(ts, i), *n = json_object_get(o, "name"), *sh = json_object_get(o, "shape"),
                     *sd = json_object_get(o, "stride");
        pt_view *v = &p->v[i];
        uint64_t si;
        if (!json_is_string(n) || !json_string_length(n) || strlen(json_string_value(n)) != json_string_length(n) ||
            get_u64(json_object_get(o, "storage"), &si) || si >= ns || get_u64(json_object_get(o, "offset"), &v->offset) ||
            !json_is_array(sh) || !json_is_array(sd) || json_array_size(sh) != json_array_size(sd) ||
            json_array_size(sh) > DDCT_MAX_DIMS)
            return lay_fail(e, path, "a tensor without name, storage, offset, shape or stride");
        v->storage = (size_t)si;
        v->ndim = (int)json_array_size(sh);
        uint64_t *shape = w->shape_store + i * DDCT_MAX_DIMS;
        int64_t *stride = w->stride_store + i * DDCT_MAX_DIMS;
        for (int k = 0; k < v->ndim; k++) {
            const json_t *x = json_array_get(sd, (size_t)k);
            if (get_u64(json_array_get(sh, (size_t)k), &shape[k]) || !json_is_integer(x))
                return lay_fail(e, path, "bad shape or stride");
            stride[k] = json_integer_value(x);
        }
        v->shape = shape;
        v->stride = stride;
        int ovf = 0;
        v->nelem = elems(v->ndim, shape, &ovf);
        uint64_t end;
        if (ovf || !contiguous(v->ndim, shape, stride)) return lay_fail(e, path, "a tensor that is not contiguous");
        if (v->nelem && (ddct_add_overflow(v->offset, v->nelem, &end) || end > p->s[v->storage].numel))
            return lay_fail(e, path, "a tensor outside its storage");
        size_t nl = strlen(json_string_value(n));
        memcpy(at, json_string_value(n), nl + 1);
        v->name = at;
        at += nl + 1;
        const pt_storage *s = &p->s[v->storage];
        ddct_pkl_tensor *t = &w->pk[i];
        *t = (ddct_pkl_tensor){.name = v->name, .storage = s->key, .dtype = s->dt, .storage_numel = s->numel,
                               .offset = v->offset, .ndim = v->ndim};
        memcpy(t->shape, shape, (size_t)v->ndim * sizeof *shape);
        memcpy(t->stride, stride, (size_t)v->ndim * sizeof *stride);
    }
    p->nv = nv;
    char why[512] = "";
    int ov = plan_order(p, why, sizeof why);
    RETURN_ERROR_IF(ov < 0, e, DDCT_ERR_NOMEM, "out of memory");
    if (ov) return lay_fail(e, path, why);
    /* every storage is mostly its tensors: its gaps are written as zeros */
    RETURN_ERROR_IF(gaps_why(p, why, sizeof why), e, DDCT_ERR_NOMEM, "out of memory");
    return why[0] ? lay_fail(e, path, why) : 0;
}

int ddct_ptw_open(ddct_pt_writer **out, const char *path, int overwrite, const char *const *inputs,
                  const json_t *layout, const ddct_st_entry *records, size_t n, ddct_err *e)
{
    *out = NULL;
    ddct_pt_writer *w = calloc(1, sizeof *w);
    RETURN_ERROR_IF(!w, e, DDCT_ERR_NOMEM, "out of memory");
    int rc = read_layout(w, path, layout, e);
    if (!rc && w->plan.nrec != n)
        rc = lay_fail(e, path, "its tensors are not the records of this file");
    for (size_t r = 0; !rc && r < n; r++) {
        const pt_view *v = &w->plan.v[w->plan.order[r]];
        int same = !strcmp(v->name, records[r].name) && records[r].dtype == w->plan.s[v->storage].dt &&
                   records[r].ndim == v->ndim;
        for (int k = 0; same && k < v->ndim; k++) same = records[r].shape[k] == v->shape[k];
        if (!same) rc = lay_fail(e, path, "its tensors are not the records of this file");
        w->total += v->nelem * ddct_dtype_size(w->plan.s[v->storage].dt);
    }
    ddct_buf pkl;
    ddct_buf_init(&pkl);
    if (!rc) { /* the dict, with its BUILD state when the layout has one */
        const json_t *state = json_object_get(layout, "state");
        char *st = json_is_object(state) ? json_dumps(state, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        rc = json_is_object(state) && !st ? ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory")
                                          : ddct_pkl_write(&pkl, w->pk, w->plan.nv, st, e);
        free(st);
    }
    if (!rc) rc = ddct_ofile_open(&w->of, path, overwrite, inputs, e);
    if (!rc) rc = ddct_zipw_open(&w->z, w->of, PT_ALIGN, 0, e);
    char name[512];
    if (!rc) {
        snprintf(name, sizeof name, "%s/data.pkl", w->root);
        rc = ddct_zipw_begin(w->z, name, pkl.len, e);
    }
    if (!rc) rc = ddct_zipw_write(w->z, pkl.p, pkl.len, e);
    if (!rc) {
        snprintf(name, sizeof name, "%s/byteorder", w->root);
        rc = ddct_zipw_begin(w->z, name, 6, e);
    }
    if (!rc) rc = ddct_zipw_write(w->z, "little", 6, e);
    ddct_buf_free(&pkl);
    w->storage = w->plan.ns;
    if (rc) {
        ddct_ptw_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

uint64_t ddct_ptw_data_bytes(const ddct_pt_writer *w) { return w ? w->total : 0; }
int ddct_ptw_set_direct(ddct_pt_writer *w) { return w ? ddct_ofile_set_direct(w->of) : 0; }

static int zeros(ddct_pt_writer *w, uint64_t n, ddct_err *e)
{
    static const uint8_t z[4096];
    while (n) {
        size_t k = n > sizeof z ? sizeof z : (size_t)n;
        FORWARD_IF_ERROR(ddct_zipw_write(w->z, z, k, e));
        n -= k;
        w->pos += k;
    }
    return 0;
}

/* Close storages up to (not including) s, opening s. */
static int goto_storage(ddct_pt_writer *w, size_t s, ddct_err *e)
{
    char name[512];
    while (w->storage != s) {
        if (w->storage < w->plan.ns) {
            const pt_storage *st = &w->plan.s[w->storage];
            FORWARD_IF_ERROR(zeros(w, st->numel * ddct_dtype_size(st->dt) - w->pos, e));
        }
        w->storage = w->storage == w->plan.ns ? 0 : w->storage + 1;
        if (w->storage == w->plan.ns) break;
        const pt_storage *st = &w->plan.s[w->storage];
        snprintf(name, sizeof name, "%s/data/%s", w->root, st->key);
        FORWARD_IF_ERROR(ddct_zipw_begin(w->z, name, st->numel * ddct_dtype_size(st->dt), e));
        w->pos = 0;
    }
    return 0;
}

/* Start record w->rec: its storage open, the gap before it written. */
static int start_record(ddct_pt_writer *w, ddct_err *e)
{
    const pt_view *v = &w->plan.v[w->plan.order[w->rec]];
    size_t el = ddct_dtype_size(w->plan.s[v->storage].dt);
    FORWARD_IF_ERROR(goto_storage(w, v->storage, e));
    if (v->nelem) FORWARD_IF_ERROR(zeros(w, v->offset * el - w->pos, e)); /* views are in offset order */
    w->rec_left = v->nelem * el;
    w->started = 1;
    return 0;
}

int ddct_ptw_write(ddct_pt_writer *w, const void *p, size_t n, ddct_err *e)
{
    const uint8_t *q = p;
    while (n) {
        while (!w->started || !w->rec_left) {
            if (w->started) w->rec++;
            RETURN_ERROR_IF(w->rec >= w->plan.nrec, e, DDCT_ERR_INTERNAL, "more tensor bytes than the layout holds");
            FORWARD_IF_ERROR(start_record(w, e));
        }
        size_t k = n < w->rec_left ? n : (size_t)w->rec_left;
        FORWARD_IF_ERROR(ddct_zipw_write(w->z, q, k, e));
        q += k;
        n -= k;
        w->rec_left -= k;
        w->pos += k;
    }
    return 0;
}

int ddct_ptw_commit(ddct_pt_writer *w, ddct_err *e)
{
    int rc = 0;
    /* records of no bytes still open their storages */
    while (!rc && w->plan.nrec && (!w->started || (!w->rec_left && w->rec + 1 < w->plan.nrec))) {
        if (w->started) w->rec++;
        rc = start_record(w, e);
    }
    if (!rc && w->rec_left) rc = ddct_seterr(e, DDCT_ERR_INTERNAL, "tensor bytes missing");
    if (!rc && w->plan.ns) rc = goto_storage(w, w->plan.ns, e);
    char name[512];
    snprintf(name, sizeof name, "%s/version", w->root);
    if (!rc) rc = ddct_zipw_begin(w->z, name, 2, e);
    if (!rc) rc = ddct_zipw_write(w->z, "3\n", 2, e);
    if (!rc) {
        rc = ddct_zipw_finish(w->z, e);
        w->z = NULL;
    }
    if (!rc) {
        rc = ddct_ofile_commit(w->of, e);
        w->of = NULL;
    }
    ddct_ptw_abort(w);
    return rc;
}

static void writer_fields_free(ddct_pt_writer *w)
{
    ddct_zipw_free(w->z);
    ddct_ofile_abort(w->of);
    plan_free(&w->plan);
    free(w->shape_store);
    free(w->stride_store);
    free(w->names);
    free(w->pk);
    free(w->root);
}

void ddct_ptw_abort(ddct_pt_writer *w)
{
    if (!w) return;
    writer_fields_free(w);
    free(w);
}

int ddct_pt_writable(const ddct_st_file *f, ddct_err *e)
{
    const pt_ext *x = ddct_st_ext(f);
    return x && x->why[0] ? lay_fail(e, ddct_st_path(f), x->why) : 0;
}

int ddct_pt_layout_check(const json_t *layout, const char *path, ddct_err *e)
{
    ddct_pt_writer w = {0};
    int rc = read_layout(&w, path, layout, e);
    writer_fields_free(&w);
    return rc;
}

int ddct_pt_aliases(const json_t *layout, const char *path, const char ***names, size_t **rec, size_t *n, ddct_err *e)
{
    *names = NULL;
    *rec = NULL;
    *n = 0;
    ddct_pt_writer w = {0};
    int rc = read_layout(&w, path, layout, e);
    size_t k = 0;
    for (size_t i = 0; !rc && i < w.plan.nv; i++) k += w.plan.v[i].alias;
    if (!rc && k) {
        *names = calloc(k, sizeof **names);
        *rec = calloc(k, sizeof **rec);
        if (!*names || !*rec) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    const json_t *ts = json_object_get(layout, "tensors");
    for (size_t i = 0; !rc && i < w.plan.nv; i++)
        if (w.plan.v[i].alias) {
            (*names)[*n] = json_string_value(json_object_get(json_array_get(ts, i), "name"));
            (*rec)[(*n)++] = w.plan.v[i].rec;
        }
    writer_fields_free(&w);
    if (rc) {
        free(*names);
        free(*rec);
        *names = NULL;
        *rec = NULL;
        *n = 0;
    }
    return rc;
}
