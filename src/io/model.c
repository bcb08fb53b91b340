/*
 * model.c — single-file, sharded and directory models (see model.h).
 *
 * Opening a directory: list it once (readdir), pick the index or the *.safetensors files,
 * resolve every name through resolve() (plain name, symlink policy), open the shards with the
 * validating safetensors reader, then cross-check the index against the shards and look for
 * names held by two shards. Nothing read from the directory is used before it is checked.
 */
#include "io/model.h"

#include "common/nameset.h"
#include "common/buf.h"
#include "io/ggufio.h"
#include "io/pytorch.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INDEX_BYTES (64u << 20)

typedef struct {
    char *name; /* file name in the directory */
    char *path; /* path opened (resolved when it was a symlink) */
    uint64_t size;
} dir_file;

typedef struct {
    const ddct_st_tensor *t;
    size_t shard;
} model_tensor;

struct ddct_model {
    char *path;
    char *dir;       /* the directory (== path for a directory; NULL for a single file) */
    char *real_dir;  /* realpath(dir) */
    char *blobs_dir; /* realpath of a hub cache's blobs/ folder, or NULL */
    char *blobs_refused; /* why a hub cache's blobs/ is not trusted (a message tail), or NULL */
    int is_dir;
    char *index_name, *index_meta;
    size_t nshards;
    dir_file *shard_files;
    ddct_nameset shard_set; /* shard_files by name */
    ddct_st_file **shards;
    size_t n;
    model_tensor *t;
    ddct_nameset by_name; /* tensors by name */
    size_t nfiles;
    dir_file *files;
    size_t nignored;
    char **ignored;
};

/* ---------------------------------------------------------------- names and paths */

int ddct_plain_file_name(const char *name)
{
    if (!name || !*name || name[0] == '.') return 0; /* also ".", ".." and hidden files */
    for (const char *c = name; *c; c++)
        if (*c == '/' || *c == '\\') return 0;
    return strlen(name) <= NAME_MAX;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* 1 if real (an absolute resolved path) lies strictly inside root. */
static int inside(const char *real, const char *root)
{
    size_t k = root ? strlen(root) : 0;
    if (!root) return 0;
    if (k == 1 && root[0] == '/') return real[0] == '/' && real[1];
    return !strncmp(real, root, k) && real[k] == '/' && real[k + 1];
}

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode)) return "FIFO";
    if (S_ISSOCK(mode)) return "socket";
    if (S_ISCHR(mode)) return "character device";
    if (S_ISBLK(mode)) return "block device";
    if (S_ISDIR(mode)) return "directory";
    return "special file";
}

/* Why a symlink resolving outside may not be followed into a hub cache's blobs/ (or ""). */
static const char *blobs_why(const ddct_model *m) { return m->blobs_refused ? m->blobs_refused : ""; }

/* Path to open for `name` of the model directory: its real path (realpath), which must lie inside
 * the directory's real path or the hub cache's blobs/. *kind: 1 a regular file, 0 a directory
 * (not part of the model). Refused, naming the file (escaped) and the reason: names that are not
 * plain, missing files, dangling or unresolvable symlinks, anything resolving outside, special
 * files (FIFO, socket, device) and regular files whose name is not UTF-8 (the layout is JSON). */
static int resolve_st(const ddct_model *m, const char *what, const char *name, char **out, int *kind,
                      struct stat *st_out, ddct_err *e)
{
    *out = NULL;
    *kind = 0;
    char en[DDCT_ESC_NAME];
    ddct_escape(name, en, sizeof en);
    RETURN_ERROR_IF(!ddct_plain_file_name(name), e, DDCT_ERR_FORMAT,
                    "%s: %s '%s' is not a plain file name inside the model directory (no '/', '\\', '..' or "
                    "leading '.'): refused",
                    m->path, what, en);
    char *p = join(m->dir, name);
    RETURN_ERROR_IF(!p, e, DDCT_ERR_NOMEM, "out of memory");
    struct stat st;
    if (lstat(p, &st) != 0) {
        int err = errno;
        free(p);
        RETURN_ERROR(e, err == ENOENT ? DDCT_ERR_FORMAT : DDCT_ERR_IO, "%s: %s '%s' %s", m->path, what, en,
                     err == ENOENT ? "is missing from the model directory" : strerror(err));
    }
    int link = S_ISLNK(st.st_mode);
    char target[PATH_MAX] = "", et[DDCT_ESC_NAME];
    if (link) {
        ssize_t n = readlink(p, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
    }
    ddct_escape(target, et, sizeof et);
    char *real = realpath(p, NULL);
    int err = errno;
    free(p);
    RETURN_ERROR_IF(!real && link && err == ENOENT, e, DDCT_ERR_FORMAT, "%s: %s '%s' is a dangling symlink to '%s'",
                    m->path, what, en, et);
    RETURN_ERROR_IF(!real && link, e, DDCT_ERR_FORMAT, "%s: %s '%s' is a symlink to '%s' that cannot be followed: %s",
                    m->path, what, en, et, strerror(err));
    RETURN_ERROR_IF(!real, e, DDCT_ERR_IO, "%s: %s '%s': %s", m->path, what, en, strerror(err));
    if (!inside(real, m->real_dir) && !inside(real, m->blobs_dir)) {
        char er[DDCT_ESC_NAME];
        ddct_escape(real, er, sizeof er);
        free(real);
        RETURN_ERROR(e, DDCT_ERR_FORMAT, "%s: %s '%s' %s '%s', outside the model directory%s: refused", m->path,
                     what, en, link ? "is a symlink to" : "resolves to", er, blobs_why(m));
    }
    if (stat(real, &st) != 0) {
        err = errno;
        free(real);
        RETURN_ERROR(e, DDCT_ERR_IO, "%s: %s '%s': %s", m->path, what, en, strerror(err));
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        free(real);
        RETURN_ERROR(e, DDCT_ERR_FORMAT, "%s: %s '%s' is not a regular file (%s%s%s): refused", m->path, what, en,
                     file_kind(st.st_mode), link ? ", through a symlink to " : "", link ? et : "");
    }
    if (S_ISREG(st.st_mode) && !ddct_utf8_valid(name)) {
        free(real);
        RETURN_ERROR(e, DDCT_ERR_FORMAT,
                     "%s: %s '%s': file name is not valid UTF-8 (a .ddct records names as UTF-8): rename it or "
                     "move it out of the model directory",
                     m->path, what, en);
    }
    *kind = S_ISREG(st.st_mode);
    *out = real;
    if (st_out) *st_out = st;
    return 0;
}

static int resolve(const ddct_model *m, const char *what, const char *name, char **out, int *kind, ddct_err *e)
{
    return resolve_st(m, what, name, out, kind, NULL, e);
}

static void free_files(dir_file *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].name);
        free(f[i].path);
    }
    free(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted plain names of the directory (dotfiles left out). */
static int list_dir(const ddct_model *m, char ***names, size_t *count, ddct_err *e)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(m->dir);
    RETURN_ERROR_IF(!d, e, DDCT_ERR_IO, "%s: cannot list the directory: %s", m->path, strerror(errno));
    size_t n = 0, cap = 0;
    char **v = NULL;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (!ddct_plain_file_name(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(de->d_name))) rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return rc;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int trainer_file(const char *name);

/* ---------------------------------------------------------------- index */

static const char *shard_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_model *m = ctx;
    *len = strlen(m->shard_files[id].name);
    return m->shard_files[id].name;
}

/* The shard names in a hash set (a weight_map names each shard once per tensor: a list scan per
 * entry took seconds for tens of thousands of shards). */
static int shard_set_build(ddct_model *m, ddct_err *e)
{
    ddct_nameset_free(&m->shard_set);
    RETURN_ERROR_IF(ddct_nameset_init(&m->shard_set, m->nshards, shard_name, m), e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < m->nshards; k++)
        RETURN_ERROR_IF(ddct_nameset_add(&m->shard_set, k) == DDCT_NAMESET_NOMEM, e, DDCT_ERR_NOMEM, "out of memory");
    return 0;
}

static int add_shard_name(ddct_model *m, const char *name, ddct_err *e)
{
    if (!m->shard_set.slot) FORWARD_IF_ERROR(shard_set_build(m, e));
    if (ddct_nameset_find(&m->shard_set, name, strlen(name)) != DDCT_NAMESET_NONE) return 0;
    if ((m->nshards & (m->nshards - 1)) == 0) { /* capacity: powers of two */
        dir_file *nv = realloc(m->shard_files, (m->nshards ? 2 * m->nshards : 1) * sizeof *nv);
        RETURN_ERROR_IF(!nv, e, DDCT_ERR_NOMEM, "out of memory");
        m->shard_files = nv;
    }
    dir_file *f = &m->shard_files[m->nshards];
    f->path = NULL;
    f->name = strdup(name);
    RETURN_ERROR_IF(!f->name, e, DDCT_ERR_NOMEM, "out of memory");
    m->nshards++;
    RETURN_ERROR_IF(ddct_nameset_add(&m->shard_set, m->nshards - 1) == DDCT_NAMESET_NOMEM, e, DDCT_ERR_NOMEM,
                    "out of memory");
    return 0;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const dir_file *)a)->name, ((const dir_file *)b)->name);
}

/* Parse the index: keeps "metadata", collects the shard names, returns weight_map (a new reference). */
static int load_index(ddct_model *m, json_t **wm_out, ddct_err *e)
{
    char *p = NULL;
    int kind = 0;
    FORWARD_IF_ERROR(resolve(m, "index", m->index_name, &p, &kind, e));
    ddct_map map;
    int rc = kind ? ddct_map_open(&map, p, e)
                  : ddct_seterr(e, DDCT_ERR_FORMAT, "%s: index '%s' is not a regular file (directory)", m->path,
                                m->index_name);
    free(p);
    FORWARD_IF_ERROR(rc);
    json_t *root = NULL;
    json_error_t je;
    if (map.size > MAX_INDEX_BYTES)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: %llu bytes, more than an index can be (%u)", m->dir,
                         m->index_name, (unsigned long long)map.size, MAX_INDEX_BYTES);
    else if (!(root = json_loadb((const char *)map.p, (size_t)map.size, JSON_REJECT_DUPLICATES, &je)))
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: invalid JSON at byte %d: %s", m->dir, m->index_name,
                         je.position, je.text);
    ddct_map_close(&map);
    FORWARD_IF_ERROR(rc);
    json_t *wm = json_object_get(root, "weight_map"), *meta = json_object_get(root, "metadata");
    if (!json_is_object(root) || !json_is_object(wm))
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: no \"weight_map\" object", m->dir, m->index_name);
    if (!rc && meta && !json_is_null(meta)) {
        if (!json_is_object(meta))
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: \"metadata\" is not an object", m->dir, m->index_name);
        else if (!(m->index_meta = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER)))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    const char *key;
    json_t *v;
    if (!rc) json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: weight_map: tensor '%s' maps to a non-string", m->dir,
                             m->index_name, key);
            break;
        }
        const char *s = json_string_value(v);
        if (!ddct_plain_file_name(s) || strlen(s) != json_string_length(v)) {
            rc = ddct_seterr(e, DDCT_ERR_FORMAT,
                             "%s/%s: weight_map: tensor '%s' maps to shard '%s', not a plain file name inside the "
                             "model directory (no '/', '\\', '..' or leading '.'): refused",
                             m->dir, m->index_name, key, s);
            break;
        }
        if ((rc = add_shard_name(m, s, e))) break;
    }
    if (!rc && m->nshards == 0)
        rc = ddct_seterr(e, DDCT_ERR_FORMAT, "%s/%s: weight_map lists no tensors", m->dir, m->index_name);
    if (!rc) {
        qsort(m->shard_files, m->nshards, sizeof *m->shard_files, cmp_file);
        rc = shard_set_build(m, e); /* the order changed */
    }
    if (!rc) *wm_out = json_incref(wm);
    json_decref(root);
    return rc;
}

/* Every tensor of every shard is listed with that shard, and the counts agree. */
static int check_index(const ddct_model *m, json_t *wm, ddct_err *e)
{
    for (size_t i = 0; i < m->n; i++) {
        const char *name = m->t[i].t->name, *shard = m->shard_files[m->t[i].shard].name;
        const char *listed = json_string_value(json_object_get(wm, name));
        RETURN_ERROR_IF(!listed, e, DDCT_ERR_FORMAT, "%s/%s: tensor '%s' of shard '%s' is not listed in the index",
                        m->dir, m->index_name, name, shard);
        RETURN_ERROR_IF(strcmp(listed, shard), e, DDCT_ERR_FORMAT,
                        "%s/%s: tensor '%s' is in shard '%s' but the index maps it to '%s'", m->dir, m->index_name,
                        name, shard, listed);
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        size_t i = ddct_model_lookup(m, key);
        RETURN_ERROR_IF(i == DDCT_MODEL_NONE, e, DDCT_ERR_FORMAT,
                        "%s/%s: the index lists tensor '%s' in shard '%s', which does not hold it", m->dir,
                        m->index_name, key, json_string_value(v));
    }
    return 0;
}

/* ---------------------------------------------------------------- opening */

/* The index: model.safetensors.index.json, else the only *.safetensors.index.json, else the
 * same for PyTorch's (pytorch_model.bin.index.json, *.bin.index.json): safetensors first, as a
 * Hugging Face directory holding both formats has the same weights twice. */
static int choose_index(ddct_model *m, char **names, size_t n, ddct_err *e)
{
    static const char *const tiers[2][2] = {{DDCT_INDEX_NAME, DDCT_INDEX_SUFFIX},
                                            {DDCT_PT_INDEX_NAME, DDCT_PT_INDEX_SUFFIX}};
    for (int t = 0; t < 2; t++) {
        const char *pick = NULL;
        int count = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(names[i], tiers[t][0])) {
                pick = names[i];
                count = 1;
                break;
            }
            if (ends_with(names[i], tiers[t][1])) {
                pick = names[i];
                count++;
            }
        }
        RETURN_ERROR_IF(count > 1, e, DDCT_ERR_PARAM, "%s: several *%s files and no %s: name the index to use",
                        m->path, tiers[t][1], tiers[t][0]);
        if (pick) {
            RETURN_ERROR_IF(!(m->index_name = strdup(pick)), e, DDCT_ERR_NOMEM, "out of memory");
            return 0;
        }
    }
    return 0;
}

/* Without an index: every *.safetensors file, else every PyTorch checkpoint (*.bin, *.pt, *.pth
 * but a Trainer's optimizer, scheduler and argument pickles), else every *.gguf file. */
static int collect_shards_noindex(ddct_model *m, char **names, size_t n, ddct_err *e)
{
    for (int kind = DDCT_ST_SAFETENSORS; kind <= DDCT_ST_GGUF && m->nshards == 0; kind++)
        for (size_t i = 0; i < n; i++)
            if (ddct_weights_kind(names[i]) == kind && !trainer_file(names[i]))
                FORWARD_IF_ERROR(add_shard_name(m, names[i], e));
    RETURN_ERROR_IF(m->nshards == 0, e, DDCT_ERR_PARAM,
                    "%s: no .safetensors file, PyTorch checkpoint (.bin, .pt, .pth), .gguf file or index in this "
                    "directory",
                    m->path);
    return 0;
}

static int in_shards(const ddct_model *m, const char *name)
{
    return ddct_nameset_find(&m->shard_set, name, strlen(name)) != DDCT_NAMESET_NONE;
}

/* The carried files: regular files that are not weights nor the index. */
static int collect_files(ddct_model *m, char **names, size_t n, ddct_err *e)
{
    m->files = calloc(n + 1, sizeof *m->files);
    m->ignored = calloc(n + 1, sizeof *m->ignored);
    RETURN_ERROR_IF(!m->files || !m->ignored, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (in_shards(m, names[i]) || (m->index_name && !strcmp(names[i], m->index_name))) continue;
        if (ddct_weights_kind(names[i]) >= 0 && !trainer_file(names[i])) { /* kept for a note: escaped */
            char en[DDCT_ESC_NAME];
            RETURN_ERROR_IF(!(m->ignored[m->nignored] = strdup(ddct_escape(names[i], en, sizeof en))), e,
                            DDCT_ERR_NOMEM, "out of memory");
            m->nignored++;
            continue;
        }
        char *p;
        int kind;
        struct stat st;
        FORWARD_IF_ERROR(resolve_st(m, "file", names[i], &p, &kind, &st, e));
        if (!kind) { /* a subdirectory: not part of the model */
            free(p);
            continue;
        }
        dir_file *f = &m->files[m->nfiles++];
        f->path = p;
        f->size = (uint64_t)st.st_size;
        RETURN_ERROR_IF(!(f->name = strdup(names[i])), e, DDCT_ERR_NOMEM, "out of memory");
    }
    /* the index travels with the other files, byte for byte */
    if (m->index_name) {
        char *p;
        int kind;
        struct stat st;
        FORWARD_IF_ERROR(resolve_st(m, "index", m->index_name, &p, &kind, &st, e));
        size_t at = 0;
        while (at < m->nfiles && strcmp(m->files[at].name, m->index_name) < 0) at++;
        memmove(m->files + at + 1, m->files + at, (m->nfiles - at) * sizeof *m->files);
        m->files[at].path = p;
        m->files[at].size = (uint64_t)st.st_size;
        m->files[at].name = strdup(m->index_name);
        m->nfiles++;
        RETURN_ERROR_IF(!m->files[at].name, e, DDCT_ERR_NOMEM, "out of memory");
    }
    return 0;
}

int ddct_weights_kind(const char *name)
{
    if (ends_with(name, ".safetensors")) return DDCT_ST_SAFETENSORS;
    if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth")) return DDCT_ST_PYTORCH;
    if (ends_with(name, ".gguf")) return DDCT_ST_GGUF;
    return -1;
}

/* Files of a Trainer's output that are pickles but not weights. */
static int trainer_file(const char *name)
{
    static const char *const skip[] = {"training_args.bin", "optimizer.pt", "optimizer.bin", "scheduler.pt",
                                       "scaler.pt", "rng_state.pth"};
    for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        if (!strcmp(name, skip[i])) return 1;
    return !strncmp(name, "rng_state_", 10) && ends_with(name, ".pth");
}

int ddct_tensor_file_open(ddct_st_file **out, const char *path, ddct_err *e)
{
    *out = NULL;
    ddct_map map;
    FORWARD_IF_ERROR(ddct_map_open(&map, path, e));
    /* a ZIP's local header, unless the same bytes start a safetensors header (a length, then '{') */
    int pt = ddct_pt_sniff(map.p, map.size);
    if (pt == 1 && map.size > 8 && ddct_le32(map.p + 4) == 0 && map.p[8] == '{') pt = 0;
    if (pt) return ddct_pt_open(out, path, &map, e);
    if (ddct_ggio_sniff(map.p, map.size)) return ddct_ggio_open(out, path, &map, e);
    return ddct_st_open_map(out, path, &map, e); /* mapped once: a change from here on is seen as one */
}

static const char *tensor_name(const void *ctx, size_t id, size_t *len)
{
    const ddct_model *m = ctx;
    *len = strlen(m->t[id].t->name);
    return m->t[id].t->name;
}

static int index_tensors(ddct_model *m, ddct_err *e);

static int open_shards(ddct_model *m, ddct_err *e)
{
    m->shards = calloc(m->nshards, sizeof *m->shards);
    RETURN_ERROR_IF(!m->shards, e, DDCT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < m->nshards; k++) {
        dir_file *f = &m->shard_files[k];
        if (m->is_dir) {
            int kind;
            FORWARD_IF_ERROR(resolve(m, "shard", f->name, &f->path, &kind, e));
            RETURN_ERROR_IF(!kind, e, DDCT_ERR_FORMAT, "%s: shard '%s' is not a regular file (directory)", m->path,
                            f->name);
        }
        FORWARD_IF_ERROR(ddct_tensor_file_open(&m->shards[k], f->path, e));
    }
    return index_tensors(m, e);
}

/* The tensors of the open shards, in order, by name. */
static int index_tensors(ddct_model *m, ddct_err *e)
{
    size_t total = 0;
    for (size_t k = 0; k < m->nshards; k++) total += ddct_st_count(m->shards[k]);
    m->t = calloc(total + 1, sizeof *m->t);
    RETURN_ERROR_IF(!m->t || ddct_nameset_init(&m->by_name, total, tensor_name, m), e, DDCT_ERR_NOMEM,
                    "out of memory");
    for (size_t k = 0; k < m->nshards; k++)
        for (size_t i = 0; i < ddct_st_count(m->shards[k]); i++) {
            m->t[m->n] = (model_tensor){.t = ddct_st_get(m->shards[k], i), .shard = k};
            size_t dup = ddct_nameset_add(&m->by_name, m->n);
            RETURN_ERROR_IF(dup == DDCT_NAMESET_NOMEM, e, DDCT_ERR_NOMEM, "out of memory");
            RETURN_ERROR_IF(dup != DDCT_NAMESET_NONE, e, DDCT_ERR_FORMAT,
                            "%s: tensor '%s' is in two shards ('%s' and '%s')", m->path, m->t[m->n].t->name,
                            m->shard_files[m->t[dup].shard].name, m->shard_files[k].name);
            m->n++;
        }
    return 0;
}

static int set_dir(ddct_model *m, const char *dir, ddct_err *e)
{
    m->is_dir = 1;
    m->dir = strdup(dir);
    RETURN_ERROR_IF(!m->dir, e, DDCT_ERR_NOMEM, "out of memory");
    m->real_dir = realpath(dir, NULL);
    RETURN_ERROR_IF(!m->real_dir, e, DDCT_ERR_IO, "%s: %s", dir, strerror(errno));
    /* Hugging Face hub cache: <repo>/snapshots/<rev>/<file> -> ../../blobs/<hash>. The cache root
     * is <repo> (the parent of snapshots/, real path); its blobs/ is trusted only as a real
     * directory inside it: a blobs that is a symlink (to '/', say) would let any file in. */
    char *slash = strrchr(m->real_dir, '/');
    if (slash && slash > m->real_dir) {
        size_t plen = (size_t)(slash - m->real_dir);
        if (plen >= 10 && !strncmp(slash - 10, "/snapshots", 10)) {
            char buf[PATH_MAX], why[PATH_MAX + 128] = "";
            snprintf(buf, sizeof buf, "%.*s/blobs", (int)(plen - 10), m->real_dir);
            struct stat st;
            if (lstat(buf, &st) != 0) {
                /* absent: no extra root */
            } else if (!S_ISDIR(st.st_mode)) {
                snprintf(why, sizeof why, " (the hub cache's '%s' is %s, not a directory inside the cache: not trusted)",
                         buf, S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
            } else {
                char *b = realpath(buf, NULL);
                buf[plen - 10] = 0; /* the cache root */
                if (b && strcmp(b, "/") && (!buf[0] || inside(b, buf))) m->blobs_dir = b;
                else {
                    snprintf(why, sizeof why, " (the hub cache's blobs/ does not resolve inside '%s': not trusted)",
                             buf[0] ? buf : "/");
                    free(b);
                }
            }
            RETURN_ERROR_IF(why[0] && !(m->blobs_refused = strdup(why)), e, DDCT_ERR_NOMEM, "out of memory");
        }
    }
    return 0;
}

static int model_load(ddct_model *m, const char *path, ddct_err *e)
{
    struct stat st;
    RETURN_ERROR_IF(stat(path, &st) != 0, e, DDCT_ERR_IO, "%s: %s", path, strerror(errno));
    int rc = 0;
    char **names = NULL;
    size_t nn = 0;
    json_t *wm = NULL;
    if (S_ISDIR(st.st_mode) || ends_with(path, DDCT_INDEX_SUFFIX) || ends_with(path, DDCT_PT_INDEX_SUFFIX)) {
        if (S_ISDIR(st.st_mode)) {
            rc = set_dir(m, path, e);
        } else {
            const char *slash = strrchr(path, '/');
            char *d = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
            rc = d ? set_dir(m, d, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
            free(d);
            if (!rc && !(m->index_name = strdup(slash ? slash + 1 : path)))
                rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
        }
        if (!rc) rc = list_dir(m, &names, &nn, e);
        if (!rc && !m->index_name) rc = choose_index(m, names, nn, e);
        if (!rc) rc = m->index_name ? load_index(m, &wm, e) : collect_shards_noindex(m, names, nn, e);
        if (!rc) rc = collect_files(m, names, nn, e);
    } else {
        m->nshards = 1;
        m->shard_files = calloc(1, sizeof *m->shard_files);
        const char *slash = strrchr(path, '/');
        if (!m->shard_files || !(m->shard_files[0].path = strdup(path)) ||
            !(m->shard_files[0].name = strdup(slash ? slash + 1 : path)))
            rc = ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    }
    if (!rc) rc = open_shards(m, e);
    if (!rc && wm) rc = check_index(m, wm, e);
    json_decref(wm);
    free_names(names, nn);
    return rc;
}

int ddct_model_open(ddct_model **out, const char *path, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!path || !*path, e, DDCT_ERR_PARAM, "no model path given");
    ddct_model *m = calloc(1, sizeof *m);
    RETURN_ERROR_IF(!m, e, DDCT_ERR_NOMEM, "out of memory");
    m->path = strdup(path);
    int rc = m->path ? model_load(m, path, e) : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (rc) {
        ddct_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

int ddct_model_open_mem(ddct_model **out, const char *label, const char *shard_name, const ddct_st_mem_tensor *t,
                        size_t n, ddct_err *e)
{
    *out = NULL;
    RETURN_ERROR_IF(!label || !shard_name, e, DDCT_ERR_PARAM, "no model name given");
    ddct_model *m = calloc(1, sizeof *m);
    RETURN_ERROR_IF(!m, e, DDCT_ERR_NOMEM, "out of memory");
    m->nshards = 1;
    m->path = strdup(label);
    m->shard_files = calloc(1, sizeof *m->shard_files);
    m->shards = calloc(1, sizeof *m->shards);
    int rc = m->path && m->shard_files && m->shards && (m->shard_files[0].path = strdup(label)) &&
                     (m->shard_files[0].name = strdup(shard_name))
                 ? 0
                 : ddct_seterr(e, DDCT_ERR_NOMEM, "out of memory");
    if (!rc) rc = ddct_st_open_mem(&m->shards[0], label, t, n, e);
    if (!rc) rc = index_tensors(m, e);
    if (rc) {
        ddct_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ddct_model_close(ddct_model *m)
{
    if (!m) return;
    for (size_t k = 0; m->shards && k < m->nshards; k++) ddct_st_close(m->shards[k]);
    free(m->shards);
    free_files(m->shard_files, m->nshards);
    free_files(m->files, m->nfiles);
    free_names(m->ignored, m->nignored);
    free(m->t);
    ddct_nameset_free(&m->by_name);
    ddct_nameset_free(&m->shard_set);
    free(m->index_name);
    free(m->index_meta);
    free(m->path);
    free(m->dir);
    free(m->real_dir);
    free(m->blobs_dir);
    free(m->blobs_refused);
    free(m);
}

/* ---------------------------------------------------------------- accessors */

const char *ddct_model_path(const ddct_model *m) { return m->path; }
int ddct_model_is_dir(const ddct_model *m) { return m->is_dir; }
const char *ddct_model_index_name(const ddct_model *m) { return m->index_name; }
const char *ddct_model_index_metadata(const ddct_model *m) { return m->index_meta; }
size_t ddct_model_shard_count(const ddct_model *m) { return m->nshards; }
const ddct_st_file *ddct_model_shard(const ddct_model *m, size_t k) { return k < m->nshards ? m->shards[k] : NULL; }
const char *ddct_model_shard_name(const ddct_model *m, size_t k)
{
    return k < m->nshards ? m->shard_files[k].name : NULL;
}
size_t ddct_model_count(const ddct_model *m) { return m->n; }
const ddct_st_tensor *ddct_model_get(const ddct_model *m, size_t i) { return i < m->n ? m->t[i].t : NULL; }
size_t ddct_model_shard_of(const ddct_model *m, size_t i) { return i < m->n ? m->t[i].shard : DDCT_MODEL_NONE; }

size_t ddct_model_lookup(const ddct_model *m, const char *name)
{
    size_t i = name && m->n ? ddct_nameset_find(&m->by_name, name, strlen(name)) : DDCT_NAMESET_NONE;
    for (size_t k = 0; i == DDCT_NAMESET_NONE && name && k < m->nshards; k++) {
        const ddct_st_tensor *t = ddct_st_alias_count(m->shards[k]) ? ddct_st_find(m->shards[k], name) : NULL;
        if (t) i = ddct_nameset_find(&m->by_name, t->name, strlen(t->name)); /* tied weights */
    }
    return i == DDCT_NAMESET_NONE ? DDCT_MODEL_NONE : i;
}

const ddct_st_tensor *ddct_model_find(const ddct_model *m, const char *name)
{
    size_t i = m ? ddct_model_lookup(m, name) : DDCT_MODEL_NONE;
    return i == DDCT_MODEL_NONE ? NULL : m->t[i].t;
}

void ddct_model_release_range(const ddct_model *m, size_t i, uint64_t off, uint64_t len)
{
    if (m && i < m->n) ddct_st_release(m->shards[m->t[i].shard], m->t[i].t, off, len);
}

int ddct_model_pread(const ddct_model *m, size_t i, uint64_t off, void *buf, size_t len, ddct_err *e)
{
    if (!m || i >= m->n) return DDCT_MAP_FALLBACK;
    return ddct_st_pread(m->shards[m->t[i].shard], m->t[i].t, off, buf, len, e);
}

int ddct_model_check(const ddct_model *m, size_t i, ddct_err *e)
{
    return m && i < m->n ? ddct_st_check(m->shards[m->t[i].shard], e) : 0;
}

void ddct_model_release(const ddct_model *m, size_t i) { ddct_model_release_range(m, i, 0, UINT64_MAX); }

size_t ddct_model_file_count(const ddct_model *m) { return m->nfiles; }
const char *ddct_model_file_name(const ddct_model *m, size_t k) { return k < m->nfiles ? m->files[k].name : NULL; }
uint64_t ddct_model_file_size(const ddct_model *m, size_t k) { return k < m->nfiles ? m->files[k].size : 0; }
int ddct_model_file_map(const ddct_model *m, size_t k, ddct_map *map, ddct_err *e)
{
    RETURN_ERROR_IF(k >= m->nfiles, e, DDCT_ERR_INTERNAL, "file %zu out of range", k);
    return ddct_map_open(map, m->files[k].path, e);
}
size_t ddct_model_ignored_count(const ddct_model *m) { return m->nignored; }
const char *ddct_model_ignored(const ddct_model *m, size_t k) { return k < m->nignored ? m->ignored[k] : NULL; }
