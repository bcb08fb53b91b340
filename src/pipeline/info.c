/*
 * info.c — what a .ddct holds: per-tensor codec and bytes (payload vs side information),
 * container overhead, header. Records are parsed (lengths validated) but not decoded.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "common/nameset.h"
#include "io/pytorch.h"
#include "layout.h"
#include "pipeline.h"

struct ddct_Info_s {
    ddct_ctr_reader *r;
    ddct_tensor_info *t;
    size_t n;
    char **removed;
    size_t nremoved;
    ddct_layout L;
    ddct_layout_info li;
    const char **shard_names, **file_names, **shard_formats;
    size_t *shard_tensors;
    uint64_t *file_bytes;
    ddct_nameset by_name; /* ddct_Info_find */
    const char **alias;   /* tied names (a PyTorch fine-tune's): no record of their own */
    size_t *alias_to, nalias;
};

void ddct_freeInfo(ddct_Info *info)
{
    if (!info) return;
    ddct_nameset_free(&info->by_name);
    for (size_t i = 0; i < info->nremoved; i++) free(info->removed[i]);
    free(info->removed);
    free(info->shard_names);
    free(info->alias);
    free(info->alias_to);
    free(info->shard_formats);
    free(info->file_names);
    free(info->shard_tensors);
    free(info->file_bytes);
    ddct_layout_free(&info->L);
    free(info->t);
    ddct_ctr_close(info->r);
    free(info);
}

static int load_removed(ddct_Info *info, ddct_err *e)
{
    json_error_t je;
    json_t *h = json_loads(ddct_ctr_header_json(info->r), JSON_REJECT_DUPLICATES, &je);
    RETURN_ERROR_IF(!h, e, DDCT_ERR_FORMAT, "%s: header JSON invalid: %s", ddct_ctr_path(info->r), je.text);
    json_t *a = json_object_get(h, "base_only");
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    info->removed = calloc(n + 1, sizeof(char *));
    int rc = info->removed ? 0 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) continue;
        info->removed[info->nremoved] = strdup(s);
        if (!info->removed[info->nremoved]) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        else info->nremoved++;
    }
    json_decref(h);
    return rc;
}

static int load_layout(ddct_Info *info, ddct_err *e)
{
    const ddct_layout *L = &info->L;
    ddct_layout_info *li = &info->li;
    info->shard_names = calloc(L->nshards + 1, sizeof *info->shard_names);
    info->shard_tensors = calloc(L->nshards + 1, sizeof *info->shard_tensors);
    info->shard_formats = calloc(L->nshards + 1, sizeof *info->shard_formats);
    info->file_names = calloc(L->nfiles + 1, sizeof *info->file_names);
    info->file_bytes = calloc(L->nfiles + 1, sizeof *info->file_bytes);
    RETURN_ERROR_IF(!info->shard_names || !info->shard_tensors || !info->shard_formats || !info->file_names || !info->file_bytes, e,
                    DDCT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < L->nshards; k++) {
        info->shard_names[k] = L->shards[k].name;
        info->shard_tensors[k] = L->shards[k].count;
        info->shard_formats[k] = ddct_format_name(L->shards[k].format);
    }
    for (size_t k = 0; k < L->nfiles; k++) {
        info->file_names[k] = L->files[k].name;
        info->file_bytes[k] = L->files[k].bytes;
        li->files_record_bytes += ddct_ctr_entry_at(info->r, L->files[k].record)->length;
    }
    li->directory = L->directory;
    li->index_name = L->index_name;
    li->index_metadata = L->index_metadata;
    li->nshards = L->nshards;
    li->shard_names = info->shard_names;
    li->shard_tensors = info->shard_tensors;
    li->shard_formats = info->shard_formats;
    li->nfiles = L->nfiles;
    li->file_names = info->file_names;
    li->file_bytes = info->file_bytes;
    return 0;
}

static const char *tensor_name(const void *ctx, size_t id, size_t *len)
{
    const char *s = ((const ddct_Info *)ctx)->t[id].name;
    *len = strlen(s);
    return s;
}

/* The tied names of PyTorch shards, each with the record it shares (names point into the layout). */
static int load_aliases(ddct_Info *info, ddct_err *e)
{
    for (size_t k = 0; k < info->L.nshards; k++) {
        const ddct_layout_shard *sh = &info->L.shards[k];
        if (sh->format != DDCT_ST_PYTORCH || !sh->fmt) continue;
        const char **an;
        size_t *ar, na;
        FORWARD_IF_ERROR(ddct_pt_aliases(sh->fmt, ddct_ctr_path(info->r), &an, &ar, &na, e));
        const char **a = na ? realloc(info->alias, (info->nalias + na) * sizeof *a) : info->alias;
        if (a) info->alias = a;
        size_t *to = a && na ? realloc(info->alias_to, (info->nalias + na) * sizeof *to) : info->alias_to;
        if (to) info->alias_to = to;
        int ok = !na || (a && to);
        for (size_t j = 0; ok && j < na; j++) {
            info->alias[info->nalias] = an[j];
            info->alias_to[info->nalias++] = sh->first + ar[j];
        }
        free(an);
        free(ar);
        RETURN_ERROR_IF(!ok, e, DDCT_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* info's tables from its open reader info->r. */
static int fill_info(ddct_Info *info, ddct_err *e)
{
    FORWARD_IF_ERROR(ddct_layout_read(&info->L, info->r, e));
    FORWARD_IF_ERROR(load_layout(info, e));
    info->n = info->L.ntensors;
    info->t = calloc(info->n + 1, sizeof *info->t);
    RETURN_ERROR_IF(!info->t, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < info->n; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(info->r, i);
        ddct_record rec;
        FORWARD_IF_ERROR(ddct_ctr_record(info->r, i, 0, &rec, e));
        const ddct_codec_traits *ct = ddct_codec_get(rec.codec);
        ddct_tensor_info *t = &info->t[i];
        t->name = en->name;
        t->dtype = ddct_dtype_name(en->dtype);
        t->ndim = en->ndim;
        t->shape = en->shape;
        t->nparams = en->nelem;
        t->codec = ct ? ct->name : "unknown";
        t->lossy = ct ? ct->lossy : 0;
        t->record_bytes = en->length;
        t->payload_bytes = rec.data_len;
        t->side_bytes = en->length - rec.data_len;
    }
    /* names are unique (the reader checked): every add is new */
    RETURN_ERROR_IF(ddct_nameset_init(&info->by_name, info->n, tensor_name, info), e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < info->n; i++)
        RETURN_ERROR_IF(ddct_nameset_add(&info->by_name, i) != DDCT_NAMESET_NONE, e, DDCT_ERR_NOMEM, "out of memory");
    FORWARD_IF_ERROR(load_aliases(info, e));
    return load_removed(info, e);
}

int ddct_info_from_reader(ddct_Info **out, ddct_ctr_reader *r, ddct_err *e)
{
    *out = NULL;
    ddct_Info *info = calloc(1, sizeof *info);
    if (!info) {
        ddct_ctr_close(r);
        RETURN_ERROR(e, DDCT_ERR_NOMEM, "out of memory");
    }
    info->r = r;
    int rc = fill_info(info, e);
    if (rc) {
        ddct_freeInfo(info);
        return rc;
    }
    *out = info;
    return 0;
}

const ddct_ctr_reader *ddct_info_reader(const ddct_Info *info) { return info->r; }

size_t ddct_Info_find(const ddct_Info *info, const char *name)
{
    size_t i = info && name && info->n ? ddct_nameset_find(&info->by_name, name, strlen(name)) : DDCT_NAMESET_NONE;
    for (size_t k = 0; i == DDCT_NAMESET_NONE && name && k < info->nalias; k++)
        if (!strcmp(info->alias[k], name)) i = info->alias_to[k];
    return i == DDCT_NAMESET_NONE ? DDCT_NOT_FOUND : i;
}

size_t ddct_Info_aliasCount(const ddct_Info *info) { return info->nalias; }
const char *ddct_Info_alias(const ddct_Info *info, size_t k, size_t *tensor)
{
    if (k >= info->nalias) return NULL;
    if (tensor) *tensor = info->alias_to[k];
    return info->alias[k];
}

ddct_ErrorCode ddct_openInfo(ddct_Info **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    ddct_err e;
    ddct_err_clear(&e);
    ddct_ctr_reader *r = NULL;
    int rc = ddct_ctr_open(&r, path, &e);
    if (!rc) rc = ddct_info_from_reader(out, r, &e);
    if (rc && err && errlen) snprintf(err, errlen, "%s", e.msg);
    return (ddct_ErrorCode)rc;
}

size_t ddct_Info_count(const ddct_Info *info) { return info->n; }
const ddct_tensor_info *ddct_Info_tensor(const ddct_Info *info, size_t i) { return i < info->n ? &info->t[i] : NULL; }
uint64_t ddct_Info_fileBytes(const ddct_Info *info) { return ddct_ctr_file_size(info->r); }
uint64_t ddct_Info_containerBytes(const ddct_Info *info)
{
    uint64_t s = ddct_ctr_file_size(info->r) - info->li.files_record_bytes;
    for (size_t i = 0; i < info->n; i++) s -= info->t[i].record_bytes;
    return s;
}
const ddct_layout_info *ddct_Info_layout(const ddct_Info *info) { return &info->li; }
const char *ddct_Info_header(const ddct_Info *info) { return ddct_ctr_header_json(info->r); }
size_t ddct_Info_removedCount(const ddct_Info *info) { return info->nremoved; }
const char *ddct_Info_removed(const ddct_Info *info, size_t i) { return i < info->nremoved ? info->removed[i] : NULL; }
