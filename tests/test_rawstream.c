/* test_rawstream.c — the streamed raw codec: chunked records round-trip across chunk edges (with
 * xor, shuffle and odd tails), output does not depend on the thread count, framed records (one
 * zstd frame per chunk) decode alike on any thread count and show their base in order, one-frame
 * chunked records and format 1.0 records (whole-tensor shuffle, no chunk) still decode, hostile
 * parameters and frames are refused; and a streamed container record reads back like a buffered
 * one. */
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "codec/codec.h"
#include "container/container.h"
#include "testutil.h"

static uint8_t *bytes(uint64_t n, unsigned seed)
{
    uint8_t *p = malloc(n + 1);
    tu_rng = seed;
    for (uint64_t i = 0; i < n; i++) p[i] = (uint8_t)((i % 7 == 0) ? tu_next() : (i & 0x1f)); /* compressible-ish */
    return p;
}

static int encode(const uint8_t *ft, const uint8_t *base, uint64_t n, size_t es, int threads, ddct_enc_out *o)
{
    ddct_err e;
    ddct_err_clear(&e);
    ddct_enc_out_init(o);
    ddct_lossless_in in = {.ft = ft, .base = base, .nbytes = n, .elsize = es, .level = 3, .threads = threads};
    int rc = ddct_codec_raw.encode_lossless(&in, o, &e);
    CHECK(rc == 0, "encode: %s", e.msg);
    return rc;
}

static int decode(const ddct_enc_out *o, const uint8_t *base, uint64_t n, size_t es, uint8_t *out, ddct_err *e)
{
    ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = o->params.p, .params_len = o->params.len,
                       .data = o->data.p, .data_len = o->data.len};
    return ddct_codec_raw.decode_lossless(&rec, base, n, es, out, e);
}

static void roundtrip(uint64_t n, size_t es, int with_base)
{
    uint8_t *ft = bytes(n, 1), *base = with_base ? bytes(n, 1) : NULL, *out = malloc(n + 1);
    if (base)
        for (uint64_t i = 0; i < n; i += 3) base[i] ^= 0x5a;
    ddct_enc_out o;
    ddct_err e;
    ddct_err_clear(&e);
    if (!encode(ft, base, n, es, 2, &o)) {
        CHECK(o.params.len >= 2 && (o.params.p[0] & 4), "new records are chunked (params %zu bytes)", o.params.len);
        CHECK(decode(&o, base, n, es, out, &e) == 0, "decode n=%llu es=%zu: %s", (unsigned long long)n, es, e.msg);
        CHECK(!memcmp(out, ft, n), "round trip n=%llu es=%zu base=%d", (unsigned long long)n, es, with_base);
    }
    ddct_enc_out_free(&o);
    free(ft);
    free(base);
    free(out);
}

/* A format 1.0 record: flags only, one frame of the whole-tensor transform (decoded streamed, one
 * zstd decoder per byte plane). */
static void old_format_es(unsigned flags, uint64_t n, size_t es)
{
    uint8_t *ft = bytes(n, 3), *base = bytes(n, 4), *t = malloc(n), *t2 = malloc(n), *out = malloc(n);
    const uint8_t *src = ft;
    if (flags & 1) {
        for (uint64_t i = 0; i < n; i++) t2[i] = ft[i] ^ base[i];
        src = t2;
    }
    if (flags & 2) {
        uint64_t ne = n / es;
        for (size_t k = 0; k < es; k++)
            for (uint64_t i = 0; i < ne; i++) t[k * ne + i] = src[i * es + k];
        memcpy(t + ne * es, src + ne * es, n - ne * es);
    } else {
        memcpy(t, src, n);
    }
    ddct_enc_out o;
    ddct_enc_out_init(&o);
    ddct_buf_u8(&o.params, (uint8_t)flags);
    ddct_buf_reserve(&o.data, ZSTD_compressBound(n));
    o.data.len = ZSTD_compress(o.data.p, ZSTD_compressBound(n), t, n, 3);
    ddct_err e;
    ddct_err_clear(&e);
    CHECK(decode(&o, base, n, es, out, &e) == 0, "old flags %u: %s", flags, e.msg);
    CHECK(!memcmp(out, ft, n), "old flags %u: bytes differ", flags);
    ddct_enc_out_free(&o);
    free(ft);
    free(base);
    free(t);
    free(t2);
    free(out);
}

static void old_format(unsigned flags)
{
    old_format_es(flags, (9u << 20) + 6, 2); /* more than a chunk, elsize 2 */
    old_format_es(flags, (3u << 20) + 7, 4); /* elsize 4, a 3-byte tail */
    old_format_es(flags, 5, 8);              /* only a tail */
}

static void hostile(void)
{
    const uint64_t n = 1000;
    uint8_t *ft = bytes(n, 5), *out = malloc(n);
    ddct_enc_out o;
    ddct_err e;
    if (encode(ft, NULL, n, 4, 1, &o)) return;
    /* bad chunk sizes */
    const uint8_t bad[][5] = {{4, 0}, {4, 3}, {4, 0x80, 0x80, 0x80, 0x40}, {8}, {4}}; /* 0, 3, 128 MiB, flag 8, none */
    const size_t badlen[] = {2, 2, 5, 1, 1};
    for (size_t k = 0; k < sizeof badlen / sizeof *badlen; k++) {
        ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = bad[k], .params_len = badlen[k], .data = o.data.p,
                           .data_len = o.data.len};
        ddct_err_clear(&e);
        CHECK(ddct_codec_raw.decode_lossless(&rec, NULL, n, 4, out, &e) == DDCT_ERR_FORMAT, "bad params %zu", k);
    }
    /* truncated frame, trailing bytes */
    ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = o.params.p, .params_len = o.params.len, .data = o.data.p,
                       .data_len = o.data.len - 3};
    CHECK(ddct_codec_raw.decode_lossless(&rec, NULL, n, 4, out, &e) != 0, "truncated frame accepted");
    ddct_buf_put(&o.data, "xyz", 3);
    rec.data = o.data.p;
    rec.data_len = o.data.len;
    CHECK(ddct_codec_raw.decode_lossless(&rec, NULL, n, 4, out, &e) != 0, "trailing bytes accepted");
    ddct_enc_out_free(&o);
    free(ft);
    free(out);
}

static int buf_sink(void *opaque, const uint8_t *p, size_t n, ddct_err *e)
{
    ddct_buf_put(opaque, p, n);
    return ddct_buf_check(opaque, e);
}

/* What a decode's `seen` watcher got: the bytes' count and a position-weighted sum. */
typedef struct {
    uint64_t n, sum;
} seen_acc;
static void seen_add(void *opaque, const uint8_t *p, size_t n)
{
    seen_acc *a = opaque;
    for (size_t i = 0; i < n; i++) a->sum += (a->n + i + 1) * p[i];
    a->n += n;
}

static int decode_threads(const ddct_enc_out *o, const uint8_t *base, uint64_t n, size_t es, int threads,
                          uint8_t *out, seen_acc *acc, ddct_err *e)
{
    ddct_record rec = {.codec = DDCT_CODEC_RAW, .params = o->params.p, .params_len = o->params.len,
                       .data = o->data.p, .data_len = o->data.len};
    ddct_mem_sink s = {out, n, 0};
    ddct_lossless_base lb = {.data = base, .seen = seen_add, .opaque = acc};
    int rc = ddct_lossless_decode_stream(&rec, &lb, n, es, threads, ddct_mem_sink_write, &s, NULL, e);
    return rc ? rc : s.pos == n ? 0 : -1;
}

/* Framed records (more than one chunk): every thread count gives the fine-tune, the base shown to
 * `seen` whole and in order; a one-frame chunked record (format 1.1 before frames) of the same
 * bytes still decodes; cut, padded or mis-sized frame sequences are refused. */
static void framed(void)
{
    const uint64_t n = (13u << 20) + 6;
    uint8_t *ft = bytes(n, 11), *base = bytes(n, 11), *out = malloc(n);
    for (uint64_t i = 0; i < n; i += 5) base[i] ^= 0x33;
    seen_acc want = {0};
    seen_add(&want, base, (size_t)n);
    ddct_enc_out o;
    ddct_err e;
    if (encode(ft, base, n, 2, 1, &o)) return;
    CHECK(o.params.p[0] & 8, "a record of four chunks is framed (flags 0x%x)", o.params.p[0]);
    static const int th[] = {1, 2, 3, 7, 64};
    for (size_t k = 0; k < sizeof th / sizeof *th; k++) {
        seen_acc got = {0};
        memset(out, 0, n);
        ddct_err_clear(&e);
        CHECK(decode_threads(&o, base, n, 2, th[k], out, &got, &e) == 0 && !memcmp(out, ft, n),
              "framed decode on %d threads: %s", th[k], e.msg);
        CHECK(got.n == want.n && got.sum == want.sum, "framed decode on %d threads: base shown %llu of %llu bytes",
              th[k], (unsigned long long)got.n, (unsigned long long)want.n);
    }
    /* the same bytes as one frame (flags without bit 3) */
    ddct_enc_out one;
    ddct_enc_out_init(&one);
    ddct_buf_u8(&one.params, (uint8_t)(o.params.p[0] & ~8u));
    ddct_buf_put(&one.params, o.params.p + 1, o.params.len - 1);
    ddct_lossless_in in = {.ft = ft, .base = base, .nbytes = n, .elsize = 2, .level = 3, .threads = 2};
    ddct_err_clear(&e);
    CHECK(ddct_raw_stream(&in, one.params.p, one.params.len, buf_sink, &one.data, &e) == 0, "one frame: %s", e.msg);
    CHECK(ZSTD_findFrameCompressedSize(one.data.p, one.data.len) == one.data.len, "one frame in all");
    seen_acc got = {0};
    CHECK(decode_threads(&one, base, n, 2, 4, out, &got, &e) == 0 && !memcmp(out, ft, n), "one frame decodes: %s", e.msg);
    /* hostile: cut, stray bytes, a tensor of another size */
    ddct_enc_out bad = o;
    bad.data.len = o.data.len - 3;
    CHECK(decode_threads(&bad, base, n, 2, 2, out, &got, &e) == DDCT_ERR_FORMAT, "cut frames accepted");
    ddct_buf_put(&o.data, "xyz", 3);
    CHECK(decode_threads(&o, base, n, 2, 2, out, &got, &e) == DDCT_ERR_FORMAT && strstr(e.msg, "stray"),
          "stray bytes accepted: %s", e.msg);
    o.data.len -= 3;
    CHECK(decode_threads(&o, base, n - 2, 2, 2, out, &got, &e) == DDCT_ERR_FORMAT, "a longer last frame accepted");
    CHECK(decode_threads(&o, base, n + 2, 2, 2, out, &got, &e) == DDCT_ERR_FORMAT, "a shorter last frame accepted");
    ddct_enc_out nob; /* without a base, so a longer tensor reads nothing past one */
    uint8_t *big = malloc(n + (4u << 20));
    if (big && !encode(ft, NULL, n, 2, 2, &nob)) {
        CHECK(decode_threads(&nob, NULL, n, 2, 3, big, &got, &e) == 0 && !memcmp(big, ft, n), "no base: %s", e.msg);
        CHECK(decode_threads(&nob, NULL, n + (4u << 20), 2, 2, big, &got, &e) == DDCT_ERR_FORMAT,
              "a missing frame accepted");
        ddct_enc_out_free(&nob);
    }
    free(big);
    ddct_enc_out_free(&o);
    ddct_enc_out_free(&one);
    free(ft);
    free(base);
    free(out);
}

/* Streamed container record = the same bytes read back; its padded length varint is accepted. */
static void streamed_record(void)
{
    char path[] = "/tmp/ddct_rawstream_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    close(fd);
    ddct_err e;
    ddct_err_clear(&e);
    ddct_ctr_writer *w;
    int rc = ddct_ctrw_open(&w, path, 1, NULL, "{}", &e);
    CHECK(rc == 0, "open: %s", e.msg);
    if (rc) return;
    ddct_ctr_entry en = {.name = "t", .dtype = DDCT_DT_U8, .ndim = 1, .shape = {300}, .nelem = 300};
    uint8_t params[2] = {7, 9}, data[300];
    for (int i = 0; i < 300; i++) data[i] = (uint8_t)i;
    ddct_record head = {.codec = DDCT_CODEC_RAW, .params = params, .params_len = 2};
    rc = ddct_ctrw_begin(w, &en, &head, 1u << 20, &e);
    for (int i = 0; i < 3 && !rc; i++) rc = ddct_ctrw_data(w, data + 100 * i, 100, &e);
    if (!rc) rc = ddct_ctrw_end(w, &e);
    if (!rc) rc = ddct_ctrw_add(w, &(ddct_ctr_entry){.name = "u", .dtype = DDCT_DT_U8, .ndim = 1, .shape = {0}},
                                &(ddct_record){.codec = DDCT_CODEC_RAW, .params = params, .params_len = 1}, &e);
    if (!rc) rc = ddct_ctrw_commit(w, &e);
    else ddct_ctrw_abort(w);
    CHECK(rc == 0, "streamed record: %s", e.msg);
    ddct_ctr_reader *r;
    rc = ddct_ctr_open(&r, path, &e);
    CHECK(rc == 0, "reopen: %s", e.msg);
    if (!rc) {
        ddct_record rec;
        CHECK(ddct_ctr_count(r) == 2, "count");
        CHECK(ddct_ctr_record(r, 0, 1, &rec, &e) == 0, "record 0: %s", e.msg);
        CHECK(rec.data_len == 300 && !memcmp(rec.data, data, 300) && rec.params_len == 2, "record 0 bytes");
        CHECK(ddct_ctr_record(r, 1, 1, &rec, &e) == 0, "record 1: %s", e.msg);
        ddct_ctr_close(r);
    }
    unlink(path);
}

/* ddct_unshuffle_xor (SSE2 for 1-, 2-, 4-byte elements) and ddct_xor_shuffle (SSE2 for 2-byte
 * elements) equal the plain loops, and undo each other. */
static void unshuffle_kernels(void)
{
    enum { N = 1000 };
    static uint8_t in[N], base[N], a[N], b[N], t[N];
    for (size_t i = 0; i < N; i++) {
        in[i] = (uint8_t)tu_next();
        base[i] = (uint8_t)tu_next();
    }
    int bad = 0;
    const size_t es[] = {1, 2, 3, 4, 8};
    for (size_t k = 0; k < sizeof es / sizeof *es; k++)
        for (uint64_t m = 0; m <= N; m += m < 140 ? 1 : 97)
            for (int x = 0; x < 2; x++) {
                memset(a, 0, N);
                memset(b, 1, N);
                ddct_unshuffle_xor(in, m, es[k], x ? base : NULL, a);
                ddct_unshuffle_xor_ref(in, m, es[k], x ? base : NULL, b);
                bad += memcmp(a, b, (size_t)m) != 0;
                ddct_xor_shuffle(in, x ? base : NULL, m, es[k], t, a);
                ddct_xor_shuffle_ref(in, x ? base : NULL, m, es[k], t, b);
                bad += memcmp(a, b, (size_t)m) != 0;
                ddct_unshuffle_xor(a, m, es[k], x ? base : NULL, t); /* and back */
                bad += memcmp(t, in, (size_t)m) != 0;
            }
    CHECK(bad == 0, "ddct_unshuffle_xor differs from the reference in %d cases", bad);
}

int main(void)
{
    unshuffle_kernels();
    roundtrip(0, 2, 0);
    roundtrip(1, 1, 0);
    roundtrip(4097, 4, 1);
    roundtrip((4u << 20) + 2, 2, 1);  /* one chunk + a partial one */
    roundtrip((9u << 20) + 8, 8, 0);  /* above the multithreading size */
    roundtrip((9u << 20) + 3, 2, 1);  /* odd tail after the last whole element */
    for (unsigned f = 0; f < 4; f++) old_format(f);
    /* identical output for any thread count (zstd workers >= 1) */
    const uint64_t n = (20u << 20) + 6;
    uint8_t *ft = bytes(n, 9);
    ddct_enc_out a, b;
    if (!encode(ft, NULL, n, 2, 1, &a) && !encode(ft, NULL, n, 2, 3, &b)) {
        CHECK(a.data.len == b.data.len && !memcmp(a.data.p, b.data.p, a.data.len), "threads 1 vs 3 differ");
        ddct_enc_out_free(&a);
        ddct_enc_out_free(&b);
    }
    free(ft);
    hostile();
    framed();
    streamed_record();
    return TEST_SUMMARY();
}
