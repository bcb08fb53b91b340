/*
 * fuzz_container.c — the .ddct reader (ddct_ctr_open_mem, ddct_ctr_record) and, behind it,
 * every codec's decoder on every record.
 *
 * Each input runs twice: as given, and as a copy whose header, index and footer checksums are
 * recomputed (and, once the index is accepted, every record checksum), so mutations of the
 * index and of record lengths get past the checksums into the parsers.
 * The checksum-fixed copy also goes, as a file (one memfd per process, opened as
 * /proc/self/fd/N), through the public ddct_openInfo and ddct_verifyFile.
 * Per input: open from memory; parse the header JSON as the pipeline does; for each index
 * entry read the record with verify=0 and verify=1, then feed the record (verify=0, so the
 * checksums are no obstacle) to EVERY decoder of the traits table: lossy decoders with the
 * entry's element count, lossless ones with its byte count, once with a zero base of the
 * right size and once without. Entries whose element count * 4 or byte count exceeds
 * FUZZ_MAX_BYTES are skipped (their decode would only measure memory bandwidth).
 * Properties besides "no crash, no sanitizer report":
 *   - failures return a known error code with a non-empty message;
 *   - a record read with verify=1 is the record read with verify=0 (and, checksums fixed,
 *     verify=1 succeeds exactly when verify=0 does);
 *   - record streams lie inside the input, inside the entry's [offset, offset + length);
 *   - a lossy decoder that succeeds writes every one of its nelem output values.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/dtype.h"
#include "container/container.h"
#include "deltadct.h"
#include "fuzz.h"

#define FUZZ_MAX_BYTES ((uint64_t)16 << 20)
#define SENTINEL 0x7fbadbadu /* a NaN no decoder produces */

static void check_err(int rc, const ddct_err *e, const char *what)
{
    FUZZ_ASSERT(rc > 0 && rc < DDCT_ERR_COUNT, "%s: error code %d", what, rc);
    FUZZ_ASSERT(e->msg[0] != 0, "%s: empty error message", what);
}

static void check_stream(const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi, const char *what)
{
    if (n == 0) return;
    FUZZ_ASSERT(p && p >= lo && p <= hi && n <= (size_t)(hi - p), "%s stream outside its record", what);
}

static void decode_lossy(const ddct_codec_traits *ct, const ddct_record *rec, uint64_t nelem, int rescale)
{
    float *out = malloc(nelem ? (size_t)nelem * sizeof(float) : 1);
    if (!out) return;
    const uint32_t s = SENTINEL;
    for (uint64_t i = 0; i < nelem; i++) memcpy(&out[i], &s, 4);
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ct->decode_lossy(rec, nelem, 1, rescale, out, &e);
    if (rc) check_err(rc, &e, ct->name);
    else
        for (uint64_t i = 0; i < nelem; i++) {
            uint32_t v;
            memcpy(&v, &out[i], 4);
            FUZZ_ASSERT(v != SENTINEL, "%s decoder left value %llu of %llu unwritten", ct->name,
                        (unsigned long long)i, (unsigned long long)nelem);
        }
    free(out);
}

static void decode_lossless(const ddct_codec_traits *ct, const ddct_record *rec, uint64_t nbytes, size_t elsize,
                            int with_base)
{
    uint8_t *base = with_base ? calloc(nbytes ? (size_t)nbytes : 1, 1) : NULL;
    uint8_t *out = malloc(nbytes ? (size_t)nbytes : 1);
    ddct_err e;
    memset(&e, 0, sizeof e);
    if (out && (base || !with_base)) {
        int rc = ct->decode_lossless(rec, base, nbytes, elsize, out, &e);
        if (rc) check_err(rc, &e, ct->name);
    }
    free(base);
    free(out);
}

static void decode_everything(const ddct_record *rec, const ddct_ctr_entry *en)
{
    size_t es = ddct_dtype_size(en->dtype);
    uint64_t nbytes;
    if (es == 0 || ddct_mul_overflow(en->nelem, es, &nbytes)) return;
    int lossy_ok = en->nelem <= FUZZ_MAX_BYTES / 4, lossless_ok = nbytes <= FUZZ_MAX_BYTES;
    for (unsigned id = 0; id < DDCT_CODEC_MAX; id++) {
        const ddct_codec_traits *ct = ddct_codec_get(id);
        if (!ct) continue;
        FUZZ_ASSERT(ct->id == id, "codec table: id %u holds codec %u", id, ct->id);
        if (ct->decode_lossy && lossy_ok) {
            decode_lossy(ct, rec, en->nelem, -1);
            if (id == rec->codec) {
                decode_lossy(ct, rec, en->nelem, 0);
                decode_lossy(ct, rec, en->nelem, 1);
            }
        }
        if (ct->decode_lossless && lossless_ok) {
            decode_lossless(ct, rec, nbytes, es, 1);
            decode_lossless(ct, rec, nbytes, es, 0);
        }
    }
}

static void run(uint8_t *data, size_t size, int fixed)
{
    ddct_ctr_reader *r = NULL;
    ddct_err e;
    memset(&e, 0, sizeof e);
    int rc = ddct_ctr_open_mem(&r, data, size, "fuzz.ddct", &e);
    if (rc) {
        FUZZ_ASSERT(r == NULL, "failed open returned a reader");
        check_err(rc, &e, "open");
        FUZZ_ASSERT(strstr(e.msg, "fuzz.ddct") || rc == DDCT_ERR_NOMEM, "message does not name the file: %s", e.msg);
        return;
    }
    FUZZ_ASSERT(ddct_ctr_file_size(r) == size, "file size");
    const char *hj = ddct_ctr_header_json(r);
    FUZZ_ASSERT(hj != NULL, "no header JSON");
    json_error_t je;
    json_decref(json_loads(hj, JSON_REJECT_DUPLICATES, &je));
    size_t n = ddct_ctr_count(r);
    FUZZ_ASSERT(ddct_ctr_entry_at(r, n) == NULL, "entry past the end");
    if (fixed) /* the index is validated: make every record checksum match (records are read lazily) */
        for (size_t i = 0; i < n; i++) {
            const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
            if (en->length >= 8)
                ddct_st64(data + en->offset + en->length - 8, XXH3_64bits(data + en->offset, (size_t)en->length - 8));
        }
    for (size_t i = 0; i < n; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        FUZZ_ASSERT(en && en->name && *en->name, "entry %zu has no name", i);
        FUZZ_ASSERT(en->offset <= size && en->length <= size - en->offset, "entry '%s' outside the file", en->name);
        ddct_record rec, rec1;
        memset(&e, 0, sizeof e);
        int rc0 = ddct_ctr_record(r, i, 0, &rec, &e);
        if (rc0) check_err(rc0, &e, "record");
        memset(&e, 0, sizeof e);
        int rc1 = ddct_ctr_record(r, i, 1, &rec1, &e);
        if (rc1) check_err(rc1, &e, "record (verify)");
        if (fixed) FUZZ_ASSERT(!rc0 == !rc1, "'%s': checksum fixed, yet verify=1 gives %d and verify=0 %d", en->name, rc1, rc0);
        if (!rc1) {
            FUZZ_ASSERT(!rc0 && rec.codec == rec1.codec && rec.flags == rec1.flags && rec.base_fp == rec1.base_fp &&
                            rec.params == rec1.params && rec.params_len == rec1.params_len && rec.side == rec1.side &&
                            rec.side_len == rec1.side_len && rec.data == rec1.data && rec.data_len == rec1.data_len,
                        "'%s': verify=1 and verify=0 disagree", en->name);
        }
        if (rc0) continue;
        const uint8_t *lo = data + en->offset, *hi = lo + en->length;
        check_stream(rec.params, rec.params_len, lo, hi, "params");
        check_stream(rec.side, rec.side_len, lo, hi, "side");
        check_stream(rec.data, rec.data_len, lo, hi, "data");
        decode_everything(&rec, en);
    }
    ddct_ctr_close(r);
}

/* The public file-level readers on the same bytes. */
static void run_public(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_container", MFD_CLOEXEC);
        if (fd < 0) return;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) return;
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        done += (size_t)w;
    }
    ddct_Info *info = NULL;
    char err[256];
    uint64_t total = 0; /* the tensors' bytes: verify decodes them all when they are few */
    ddct_ErrorCode rc = ddct_openInfo(&info, path, err, sizeof err);
    if (rc) {
        FUZZ_ASSERT(!info && rc < DDCT_ERR_COUNT && err[0], "openInfo: code %d, message '%s'", rc, err);
    } else {
        uint64_t rec_total = 0;
        for (size_t i = 0; i < ddct_Info_count(info); i++) {
            const ddct_tensor_info *t = ddct_Info_tensor(info, i);
            FUZZ_ASSERT(t && t->name && t->codec && t->dtype, "info tensor %zu", i);
            FUZZ_ASSERT(t->payload_bytes <= t->record_bytes && t->side_bytes == t->record_bytes - t->payload_bytes,
                        "info '%s': byte counts", t->name);
            rec_total += t->record_bytes;
            uint64_t tb = t->nparams * 8;
            total = tb / 8 != t->nparams || total + tb < total ? UINT64_MAX : total + tb;
        }
        FUZZ_ASSERT(ddct_Info_fileBytes(info) == size && ddct_Info_containerBytes(info) == size - rec_total,
                    "info: container bytes");
        for (size_t i = 0; i < ddct_Info_removedCount(info); i++)
            FUZZ_ASSERT(ddct_Info_removed(info, i) != NULL, "info: removed %zu", i);
        FUZZ_ASSERT(ddct_Info_header(info) != NULL, "info: header");
        ddct_freeInfo(info);
    }
    ddct_DCtx *d = ddct_createDCtx();
    if (d) {
        ddct_ErrorCode vr = rc || total > FUZZ_MAX_BYTES ? ddct_verifyFileChecksums(d, path, NULL)
                                                         : ddct_verifyFile(d, path, NULL);
        if (vr) FUZZ_ASSERT(vr < DDCT_ERR_COUNT && ddct_DCtx_getErrorMessage(d)[0], "verify: code %d", vr);
        ddct_freeDCtx(d);
    }
}

/* Recompute the header, index and footer checksums of p where the layout allows; 1 if any changed. */
static int fix_checksums(uint8_t *p, size_t size)
{
    int changed = 0;
    if (size < 20 + 8 + DDCT_FOOTER_SIZE) return 0;
    uint64_t jl = ddct_le32(p + 16);
    if (20 + jl + 8 <= size) {
        uint64_t h = XXH3_64bits(p, 20 + (size_t)jl);
        changed |= ddct_le64(p + 20 + jl) != h;
        ddct_st64(p + 20 + jl, h);
    }
    uint8_t *f = p + size - DDCT_FOOTER_SIZE;
    uint64_t ioff = ddct_le64(f), ilen = ddct_le64(f + 8);
    if (ioff <= size - DDCT_FOOTER_SIZE && ilen <= size - DDCT_FOOTER_SIZE - ioff) {
        uint64_t h = XXH3_64bits(p + ioff, (size_t)ilen);
        changed |= ddct_le64(f + 16) != h;
        ddct_st64(f + 16, h);
    }
    uint64_t h = XXH3_64bits(f, 32);
    changed |= ddct_le64(f + 32) != h;
    ddct_st64(f + 32, h);
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    run(copy, size, 0); /* does not write when not fixed */
    if (fix_checksums(copy, size)) run(copy, size, 1);
    run_public(copy, size); /* record checksums fixed too when the index was accepted */
    free(copy);
    return 0;
}
