/*
 * fuzz_safetensors.c — the safetensors reader (ddct_st_open) on arbitrary bytes.
 *
 * The reader takes a path, so the input is written to one memfd (created once per process,
 * rewritten per input) opened as /proc/self/fd/N; a temporary file in /tmp if memfd_create is
 * unavailable. Properties checked besides "no crash, no sanitizer report":
 *   - failure: a known error code and a message naming the file;
 *   - success: every tensor's bytes are exactly the input's bytes at its offset, the tensors
 *     tile the data buffer (their sizes add up to it), nbytes = nelem * element size, names
 *     are unique and ddct_st_find finds each, __metadata__ (if any) is a valid JSON object;
 *     float tensors convert to float32 (the conversion code runs on every value).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/dtype.h"
#include "fuzz.h"
#include "io/safetensors.h"

static int g_fd = -1;
static char g_path[64];

static int input_file(void)
{
    if (g_fd >= 0) return 0;
    g_fd = memfd_create("fuzz_safetensors", MFD_CLOEXEC);
    if (g_fd < 0) {
        char tmpl[] = "/tmp/fuzz_safetensors.XXXXXX";
        g_fd = mkstemp(tmpl);
        if (g_fd < 0) return -1;
        unlink(tmpl); /* still reachable through /proc/self/fd */
    }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    return 0;
}

static int put_input(const uint8_t *data, size_t size)
{
    if (ftruncate(g_fd, 0) != 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        done += (size_t)w;
    }
    return 0;
}

static void check_open(const ddct_st_file *f, const uint8_t *data, size_t size)
{
    FUZZ_ASSERT(size >= 8, "opened a %zu-byte file", size);
    uint64_t hlen = ddct_le64(data);
    FUZZ_ASSERT(hlen <= size - 8, "header length %llu, file %zu", (unsigned long long)hlen, size);
    uint64_t data_start = 8 + hlen, total = 0;
    size_t n = ddct_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const ddct_st_tensor *t = ddct_st_get(f, i);
        FUZZ_ASSERT(t && t->name && *t->name, "tensor %zu has no name", i);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= DDCT_MAX_DIMS, "'%s': ndim %d", t->name, t->ndim);
        size_t es = ddct_dtype_size(t->dtype);
        FUZZ_ASSERT(es > 0, "'%s': dtype %d", t->name, (int)t->dtype);
        uint64_t ne = 1, nb;
        for (int d = 0; d < t->ndim; d++) FUZZ_ASSERT(!ddct_mul_overflow(ne, t->shape[d], &ne), "'%s' overflows", t->name);
        FUZZ_ASSERT(ne == t->nelem, "'%s': nelem %llu, shape says %llu", t->name, (unsigned long long)t->nelem,
                    (unsigned long long)ne);
        FUZZ_ASSERT(!ddct_mul_overflow(ne, es, &nb) && nb == t->nbytes, "'%s': nbytes", t->name);
        FUZZ_ASSERT(t->offset >= data_start && t->offset <= size && t->nbytes <= size - t->offset,
                    "'%s': [%llu, +%llu) outside the data buffer", t->name, (unsigned long long)t->offset,
                    (unsigned long long)t->nbytes);
        FUZZ_ASSERT(t->nbytes == 0 || memcmp(t->data, data + t->offset, (size_t)t->nbytes) == 0,
                    "'%s': bytes differ from the file at offset %llu", t->name, (unsigned long long)t->offset);
        FUZZ_ASSERT(ddct_st_find(f, t->name) == t, "'%s': ddct_st_find finds another tensor", t->name);
        total += t->nbytes;
        if (ddct_dtype_is_lossy_float(t->dtype)) {
            float tmp[256];
            for (uint64_t k = 0; k < t->nelem; k += 256) {
                size_t m = (size_t)(t->nelem - k < 256 ? t->nelem - k : 256);
                ddct_to_f32(t->dtype, t->data + k * es, m, tmp);
            }
        }
    }
    FUZZ_ASSERT(total == size - data_start, "tensors hold %llu bytes, the data buffer %llu",
                (unsigned long long)total, (unsigned long long)(size - data_start));
    FUZZ_ASSERT(ddct_st_find(f, "__metadata__") == NULL, "__metadata__ listed as a tensor");
    const char *meta = ddct_st_metadata_json(f);
    if (meta) {
        json_error_t je;
        json_t *m = json_loads(meta, 0, &je);
        FUZZ_ASSERT(m && json_is_object(m), "metadata copy is not a JSON object: %s", meta);
        json_decref(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (input_file() || put_input(data, size)) {
        fprintf(stderr, "fuzz_safetensors: cannot write the input file: %s\n", strerror(errno));
        abort();
    }
    ddct_st_file *f = NULL;
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ddct_st_open(&f, g_path, &e);
    if (rc) {
        FUZZ_ASSERT(f == NULL, "failed open returned a handle");
        FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT && rc == e.code, "error code %d (e.code %d)", rc, e.code);
        FUZZ_ASSERT(strstr(e.msg, g_path) != NULL, "message does not name the file: %s", e.msg);
        return 0;
    }
    check_open(f, data, size);
    ddct_st_close(f);
    return 0;
}
