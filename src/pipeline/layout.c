/*
 * layout.c — the header's "layout" object: written from the fine-tune model at compression,
 * read back and checked against the records (names, order, sizes) before anything is written.
 */
#include "layout.h"

#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/nameset.h"
#include "io/ggufio.h"
#include "io/pytorch.h"

static const char *const FORMATS[] = {"safetensors", "pytorch", "gguf"};

const char *ddct_format_name(int format)
{
    return format >= 0 && format < (int)(sizeof FORMATS / sizeof *FORMATS) ? FORMATS[format] : "?";
}

int ddct_format_from_name(const char *name)
{
    for (int k = 0; name && k < (int)(sizeof FORMATS / sizeof *FORMATS); k++)
        if (!strcmp(name, FORMATS[k])) return k;
    return -1;
}

/* ---------------------------------------------------------------- writing */

static json_t *json_text_or_null(const char *compact)
{
    if (!compact) return json_null();
    json_error_t je;
    json_t *v = json_loads(compact, JSON_REJECT_DUPLICATES, &je);
    return v ? v : json_null();
}

json_t *ddct_layout_json(const ddct_model *ft)
{
    json_t *L = json_object(), *shards = json_array(), *files = json_array();
    int bad = !L || !shards || !files;
    json_object_set_new(L, "kind", json_string(ddct_model_is_dir(ft) ? "directory" : "file"));
    if (ddct_model_index_name(ft))
        json_object_set_new(L, "index", json_pack("{s:s, s:o}", "name", ddct_model_index_name(ft), "metadata",
                                                  json_text_or_null(ddct_model_index_metadata(ft))));
    else
        json_object_set_new(L, "index", json_null());
    size_t i = 0;
    for (size_t k = 0; !bad && k < ddct_model_shard_count(ft); k++) {
        const ddct_st_file *sh = ddct_model_shard(ft, k);
        const char *meta = ddct_st_metadata_json(sh);
        json_t *names = json_array();
        for (; names && i < ddct_model_count(ft) && ddct_model_shard_of(ft, i) == k; i++)
            bad |= json_array_append_new(names, json_string(ddct_model_get(ft, i)->name));
        /* a single file's name need not be UTF-8 (a directory's must): recorded with '_' for the
         * bytes JSON cannot hold (it only names the file when rebuilt into a directory) */
        char *name = ddct_utf8_fix(ddct_model_shard_name(ft, k));
        if (!name) json_decref(names);
        json_t *o = names && name ? json_pack("{s:s, s:o, s:o}", "name", name, "metadata",
                                              meta ? json_string(meta) : json_null(), "tensors", names)
                                  : NULL;
        free(name);
        int kind = ddct_st_kind(sh);
        if (o && (kind == DDCT_ST_PYTORCH || kind == DDCT_ST_GGUF)) { /* what writing it back needs */
            json_t *fo = kind == DDCT_ST_PYTORCH ? ddct_pt_layout(sh) : ddct_ggio_layout(sh);
            bad |= !fo || json_object_set_new(o, "format", json_string(ddct_format_name(kind))) ||
                   json_object_set_new(o, ddct_format_name(kind), fo);
        }
        bad |= !o || json_array_append_new(shards, o);
    }
    for (size_t k = 0; !bad && k < ddct_model_file_count(ft); k++) {
        json_t *o = json_pack("{s:s, s:I}", "name", ddct_model_file_name(ft, k), "bytes",
                              (json_int_t)ddct_model_file_size(ft, k));
        bad |= !o || json_array_append_new(files, o);
    }
    json_object_set_new(L, "shards", shards);
    json_object_set_new(L, "files", files);
    if (bad) {
        json_decref(L);
        return NULL;
    }
    return L;
}

/* ---------------------------------------------------------------- reading */

void ddct_layout_free(ddct_layout *L)
{
    for (size_t k = 0; L->shards && k < L->nshards; k++) {
        free(L->shards[k].name);
        free(L->shards[k].metadata);
        json_decref(L->shards[k].fmt);
    }
    for (size_t k = 0; L->files && k < L->nfiles; k++) free(L->files[k].name);
    free(L->shards);
    free(L->files);
    free(L->index_name);
    free(L->index_metadata);
    memset(L, 0, sizeof *L);
}

/* A JSON string without NUL bytes, copied; NULL if v is not one. */
static char *str_dup(const json_t *v)
{
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) return NULL;
    return strdup(json_string_value(v));
}

/* "metadata"-like member: a string (compact JSON text) or null. */
static int opt_text(const json_t *v, char **out, int *ok)
{
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    *out = str_dup(v);
    *ok = *out != NULL;
    return !*ok;
}

/* Layout of a format 1.0 file: one shard holding every record. */
static int layout_single(ddct_layout *L, const ddct_ctr_reader *r, const json_t *h, ddct_err *e)
{
    const char *path = ddct_ctr_path(r);
    L->nshards = 1;
    L->shards = calloc(1, sizeof *L->shards);
    RETURN_ERROR_IF(!L->shards || !(L->shards[0].name = strdup("model.safetensors")), e, DDCT_ERR_NOMEM,
                    "out of memory");
    int ok = 1;
    RETURN_ERROR_IF(opt_text(json_object_get(h, "metadata"), &L->shards[0].metadata, &ok), e, DDCT_ERR_FORMAT,
                    "%s: header 'metadata' must be a string", path);
    L->shards[0].count = L->ntensors = ddct_ctr_count(r);
    for (size_t i = 0; i < L->ntensors; i++)
        RETURN_ERROR_IF(ddct_is_file_record(ddct_ctr_entry_at(r, i)->name), e, DDCT_ERR_FORMAT,
                        "%s: record %zu has a carried file's name but the header has no \"layout\"", path, i);
    return 0;
}

/* Shard and file names, all distinct: a hash set over both lists (ids: shards 0.., files from
 * DDCT_LAYOUT_FILE_IDS on), linear in their number (the list scans took 26 s for 80,000). */
#define DDCT_LAYOUT_FILE_IDS ((size_t)1 << 31)
static const char *layout_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_layout *L = ctx;
    const char *s = id < DDCT_LAYOUT_FILE_IDS ? L->shards[id].name : L->files[id - DDCT_LAYOUT_FILE_IDS].name;
    *len = strlen(s);
    return s;
}

/* 1 if the name just stored as shard or file id is new, 0 if taken (or out of memory). */
static int unique_name(ddct_nameset *set, size_t id)
{
    return ddct_nameset_add(set, id) == DDCT_NAMESET_NONE;
}

static int read_shards(ddct_layout *L, ddct_nameset *set, const ddct_ctr_reader *r, const json_t *a, ddct_err *e)
{
    const char *path = ddct_ctr_path(r);
    size_t n = json_array_size(a), rec = 0;
    RETURN_ERROR_IF(!json_is_array(a) || n == 0, e, DDCT_ERR_FORMAT, "%s: layout: \"shards\" is not a non-empty array",
                    path);
    L->shards = calloc(n, sizeof *L->shards);
    RETURN_ERROR_IF(!L->shards, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *o = json_array_get(a, k), *t = json_object_get(o, "tensors");
        ddct_layout_shard *s = &L->shards[k];
        char *name = str_dup(json_object_get(o, "name"));
        int ok = 1;
        opt_text(json_object_get(o, "metadata"), &s->metadata, &ok);
        /* a directory's shards end as their format's files do; a single input file may be named anything */
        s->name = name;
        const json_t *fm = json_object_get(o, "format");
        s->format = fm ? ddct_format_from_name(json_string_value(fm)) : DDCT_ST_SAFETENSORS;
        if (s->format > 0) s->fmt = json_incref(json_object_get(o, ddct_format_name(s->format)));
        int good = name && ok && json_is_array(t) && ddct_plain_file_name(name) && k < DDCT_LAYOUT_FILE_IDS &&
                   unique_name(set, k) && s->format >= 0 && s->format != DDCT_ST_MEMORY && (s->format == 0 || s->fmt) &&
                   (!L->directory || ddct_weights_kind(name) == s->format);
        L->nshards = k + 1;
        RETURN_ERROR_IF(!good, e, DDCT_ERR_FORMAT,
                        "%s: layout: shard %zu: needs a unique plain file name (ending as its format's files do in a "
                        "directory), a known \"format\" with its object, a \"metadata\" string or null and a "
                        "\"tensors\" array",
                        path, k);
        s->first = rec;
        s->count = json_array_size(t);
        for (size_t i = 0; i < s->count; i++, rec++) {
            const char *want = json_string_value(json_array_get(t, i));
            const ddct_ctr_entry *en = ddct_ctr_entry_at(r, rec);
            RETURN_ERROR_IF(!en || !want || strcmp(en->name, want), e, DDCT_ERR_FORMAT,
                            "%s: layout: shard '%s' tensor %zu ('%s') is not record %zu ('%s')", path, name, i,
                            want ? want : "?", rec, en ? en->name : "none");
        }
    }
    L->ntensors = rec;
    return 0;
}

static int read_files(ddct_layout *L, ddct_nameset *set, const ddct_ctr_reader *r, const json_t *a, ddct_err *e)
{
    const char *path = ddct_ctr_path(r);
    size_t n = json_array_size(a);
    RETURN_ERROR_IF(a && !json_is_array(a), e, DDCT_ERR_FORMAT, "%s: layout: \"files\" is not an array", path);
    L->files = calloc(n + 1, sizeof *L->files);
    RETURN_ERROR_IF(!L->files, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *o = json_array_get(a, k), *b = json_object_get(o, "bytes");
        ddct_layout_file *f = &L->files[k];
        char *name = str_dup(json_object_get(o, "name"));
        f->name = name;
        int good = name && ddct_plain_file_name(name) && k < DDCT_LAYOUT_FILE_IDS &&
                   unique_name(set, DDCT_LAYOUT_FILE_IDS + k) && json_is_integer(b) && json_integer_value(b) >= 0;
        L->nfiles = k + 1;
        RETURN_ERROR_IF(!good, e, DDCT_ERR_FORMAT,
                        "%s: layout: file %zu needs a unique plain file name and a byte count", path, k);
        f->bytes = (uint64_t)json_integer_value(b);
        f->record = L->ntensors + k;
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, f->record);
        size_t pl = strlen(DDCT_FILE_PREFIX);
        RETURN_ERROR_IF(!en || strncmp(en->name, DDCT_FILE_PREFIX, pl) || strcmp(en->name + pl, name) ||
                            en->dtype != DDCT_DT_U8 || en->ndim != 1 || en->shape[0] != f->bytes,
                        e, DDCT_ERR_FORMAT, "%s: layout: file '%s' (%llu bytes) is not record %zu", path, name,
                        (unsigned long long)f->bytes, f->record);
    }
    RETURN_ERROR_IF(L->ntensors + L->nfiles != ddct_ctr_count(r), e, DDCT_ERR_FORMAT,
                    "%s: layout: %zu tensors and %zu files, but %zu records", path, L->ntensors, L->nfiles,
                    ddct_ctr_count(r));
    for (size_t i = 0; i < L->ntensors; i++)
        RETURN_ERROR_IF(ddct_is_file_record(ddct_ctr_entry_at(r, i)->name), e, DDCT_ERR_FORMAT,
                        "%s: record %zu has a carried file's name among the tensors", path, i);
    return 0;
}

static int read_index(ddct_layout *L, const ddct_ctr_reader *r, const json_t *v, ddct_err *e)
{
    const char *path = ddct_ctr_path(r);
    if (!v || json_is_null(v)) return 0;
    const json_t *meta = json_object_get(v, "metadata");
    L->index_name = str_dup(json_object_get(v, "name"));
    int found = 0;
    for (size_t k = 0; L->index_name && k < L->nfiles; k++) found |= !strcmp(L->files[k].name, L->index_name);
    RETURN_ERROR_IF(!found || (meta && !json_is_null(meta) && !json_is_object(meta)), e, DDCT_ERR_FORMAT,
                    "%s: layout: \"index\" must name a carried file and hold a \"metadata\" object or null", path);
    if (json_is_object(meta))
        RETURN_ERROR_IF(!(L->index_metadata = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER)), e,
                        DDCT_ERR_NOMEM, "out of memory");
    return 0;
}

static int layout_parse(ddct_layout *L, const ddct_ctr_reader *r, const json_t *h, ddct_err *e)
{
    const char *path = ddct_ctr_path(r);
    RETURN_ERROR_IF(!json_is_object(h), e, DDCT_ERR_FORMAT, "%s: header JSON is not an object", path);
    const json_t *lo = json_object_get(h, "layout");
    if (!lo || json_is_null(lo)) return layout_single(L, r, h, e);
    const char *kind = json_string_value(json_object_get(lo, "kind"));
    RETURN_ERROR_IF(!json_is_object(lo) || !kind || (strcmp(kind, "file") && strcmp(kind, "directory")), e,
                    DDCT_ERR_FORMAT, "%s: header \"layout\" needs \"kind\": \"file\" or \"directory\"", path);
    L->directory = !strcmp(kind, "directory");
    ddct_nameset set;
    RETURN_ERROR_IF(ddct_nameset_init(&set, 16, layout_name, L), e, DDCT_ERR_NOMEM, "out of memory");
    int rc = read_shards(L, &set, r, json_object_get(lo, "shards"), e);
    if (!rc && !L->directory && L->nshards != 1)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s: layout: a single file with %zu shards", path, L->nshards);
    if (!rc) rc = read_files(L, &set, r, json_object_get(lo, "files"), e);
    ddct_nameset_free(&set);
    FORWARD_IF_ERROR(rc);
    return read_index(L, r, json_object_get(lo, "index"), e);
}

int ddct_layout_read(ddct_layout *L, const ddct_ctr_reader *r, ddct_err *e)
{
    memset(L, 0, sizeof *L);
    json_error_t je;
    json_t *h = json_loads(ddct_ctr_header_json(r), JSON_REJECT_DUPLICATES, &je);
    RETURN_ERROR_IF(!h, e, DDCT_ERR_FORMAT, "%s: header JSON invalid: %s", ddct_ctr_path(r), je.text);
    int rc = layout_parse(L, r, h, e);
    json_decref(h);
    if (rc) ddct_layout_free(L);
    return rc;
}
