/*
 * ggufdump.c — ddct-ggufdump: the GGUF reader's view of a file as JSON, and a rebuild of it
 * through the GGUF writer (for tests/cli_gguf.sh, which compares them with independent readers).
 *
 *   ddct-ggufdump FILE                 {"version", "alignment", "header_end", "data_start", "size",
 *                                       "gaps_zero", "metadata": {...}, "tensors": [{"name", "type",
 *                                       "type_id", "ne", "shape", "offset", "nbytes"}]}
 *   ddct-ggufdump FILE --rewrite OUT   OUT = FILE rebuilt from its layout and tensor bytes
 * Exit 0, or 1 with the reader's or writer's message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "io/gguf.h"
#include "io/jscan.h"

static int dump(const ddct_gguf *f)
{
    char *meta = ddct_gguf_metadata_json(f, (size_t)-1);
    if (!meta) return 1;
    printf("{\"version\":%u,\"alignment\":%u,\"header_end\":%llu,\"data_start\":%llu,\"size\":%llu,"
           "\"gaps_zero\":%s,\"metadata\":%s,\"tensors\":[",
           ddct_gguf_version(f), ddct_gguf_alignment(f), (unsigned long long)ddct_gguf_header_end(f),
           (unsigned long long)ddct_gguf_data_start(f), (unsigned long long)ddct_gguf_size(f),
           ddct_gguf_gaps_zero(f, NULL) ? "true" : "false", meta);
    free(meta);
    for (size_t i = 0; i < ddct_gguf_count(f); i++) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
        ddct_buf b;
        ddct_buf_init(&b);
        ddct_json_put_string(&b, t->name, strlen(t->name));
        ddct_buf_u8(&b, 0);
        if (b.failed) return 1;
        uint64_t shape[DDCT_GGUF_MAX_DIMS];
        int nd = ddct_gguf_shape(t, shape);
        printf("%s{\"name\":%s,\"type\":\"%s\",\"type_id\":%u,\"ne\":[", i ? "," : "", (const char *)b.p,
               ddct_gguf_type_name(t->type), t->type);
        ddct_buf_free(&b);
        for (int d = 0; d < nd; d++) printf("%s%llu", d ? "," : "", (unsigned long long)t->ne[d]);
        printf("],\"shape\":[");
        for (int d = 0; d < nd; d++) printf("%s%llu", d ? "," : "", (unsigned long long)shape[d]);
        printf("],\"offset\":%llu,\"nbytes\":%llu}", (unsigned long long)t->rel_offset,
               (unsigned long long)t->nbytes);
    }
    printf("]}\n");
    return 0;
}

static int rewrite(const ddct_gguf *f, const char *path, const char *out, ddct_err *e)
{
    ddct_gguf_layout l;
    ddct_gguf_layout_of(f, &l);
    const char *inputs[] = {path, NULL};
    ddct_gguf_writer *w;
    int rc = ddct_ggw_open(&w, out, 1, inputs, &l, e);
    if (rc) return rc;
    for (size_t i; (i = ddct_ggw_next(w)) != (size_t)-1;) {
        const ddct_gguf_tensor *t = ddct_gguf_get(f, i);
        if ((rc = ddct_gguf_check(f, e)) || (rc = ddct_ggw_write(w, t->data, (size_t)t->nbytes, e))) {
            ddct_ggw_abort(w);
            return rc;
        }
    }
    return ddct_ggw_commit(w, e);
}

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--rewrite"))) {
        fprintf(stderr, "usage: ddct-ggufdump FILE [--rewrite OUT]\n");
        return 2;
    }
    ddct_err e = {0};
    ddct_gguf *f = NULL;
    int rc = ddct_gguf_open(&f, argv[1], &e);
    if (!rc) rc = argc == 4 ? rewrite(f, argv[1], argv[3], &e) : dump(f);
    if (rc && e.code) fprintf(stderr, "ddct-ggufdump: %s\n", e.msg);
    ddct_gguf_close(f);
    return rc ? 1 : 0;
}
