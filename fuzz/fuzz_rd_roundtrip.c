/*
 * fuzz_rd_roundtrip.c — the rd codec's encoder round trip: a small delta made from the input
 * bytes is encoded for one tensor (the traits' encode_lossy, as `--method rd` does), decoded whole
 * and streamed, and encoded again with another thread count.
 *
 * Input layout (FUZZ_RD_HDR = 6 bytes, then the value stream):
 *   [0]  bits 0-1: rescale off / on / auto / auto; bit 2: an error target instead of bits per
 *        value; bits 3-4: threads t = 1 + value % 3 (the second encode and the streamed decode
 *        use 1 + t % 3); bits 5-7: the shape from R = 1 + [1] % 64, C = 1 + [2] % 64:
 *        0-2 [R, C], 3 [R * C], 4 [R, 1, C], 5 [R, C, 1], 6 [1, R * C], 7 [R * C, 1]
 *   [1]  R; [2] C
 *   [3]  target: bpp = 0.05 * 160^(v / 255) (0.05 .. 8) or error = 0.01 * 90^(v / 255) (0.01 .. 0.9)
 *   [4]  bits 0-5: the scale of "normal" values, 2^(v - 40); bits 6-7: structure: 0 the values as
 *        they come, 1 a rank-one product a_i b_j (a: the first rows values, b: the next cols), 2 that
 *        product plus the values, 3 the values with every row repeated from the first
 *   [5]  a seed mixed into repeated values (so short inputs do not give constant tensors only)
 *   then values, each from a control byte c:
 *     c >> 6 == 0: c & 32 ? the previous value again, 1 + (c & 31) times : zero
 *     c >> 6 == 1: (int8) next byte * 2^(4 (c & 63) - 150)   (subnormal .. ~2^109)
 *     c >> 6 == 2: ((next byte) - 128) / 32 * the normal scale
 *     c >> 6 == 3: the float whose bits are the next 4 bytes (little-endian); not finite: zero
 *   Once the bytes run out the values cycle over those made so far (all zero if none).
 * Properties (a violation aborts):
 *   - the encode succeeds and gives the same bytes with the other thread count; it codes the
 *     tensor (no "non-finite" report) unless ||delta|| > 2^100, the codec's limit;
 *   - with a bit budget, 8 * the record's bytes (ddct_record_size) <= bpp * n, or the record is
 *     no larger than the smallest one (the records at steps so coarse that everything is zero);
 *   - decoding (whole; streamed through a ddct_delta_out whose slices must be consecutive and
 *     cover the tensor once) succeeds, every value finite, both decodes the same bytes; an
 *     all-zero delta decodes to zeros.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/codec_rd.h"
#include "fuzz.h"

#define FUZZ_RD_HDR 6
#define SENTINEL 0x7fbadbadu

typedef struct {
    float *d;
    uint64_t n;
    uint64_t next;           /* where the next slice must begin */
    uint64_t first, len;     /* the current slice */
    int open;
} collect_t;

static int co_begin(void *o, uint64_t first, uint64_t n, ddct_err *e)
{
    (void)e;
    collect_t *c = o;
    FUZZ_ASSERT(!c->open && first == c->next && n > 0 && first + n <= c->n, "slice [%llu, +%llu) after %llu of %llu",
                (unsigned long long)first, (unsigned long long)n, (unsigned long long)c->next,
                (unsigned long long)c->n);
    c->open = 1;
    c->first = first;
    c->len = n;
    return 0;
}

static void co_put(void *o, uint64_t first, uint64_t rel, const float *d, uint64_t n, float s)
{
    collect_t *c = o;
    FUZZ_ASSERT(c->open && first == c->first + rel && rel + n <= c->len, "piece [%llu, +%llu) outside its slice",
                (unsigned long long)first, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &c->d[first + i], 4);
        FUZZ_ASSERT(v == SENTINEL, "value %llu written twice", (unsigned long long)(first + i));
        c->d[first + i] = d[i] * s;
    }
}

static int co_end(void *o, uint64_t first, uint64_t n, ddct_err *e)
{
    (void)e;
    collect_t *c = o;
    FUZZ_ASSERT(c->open && first == c->first && n == c->len, "slice end does not match its begin");
    c->open = 0;
    c->next = first + n;
    return 0;
}

/* The delta from the value stream (layout above). */
static void make_values(const uint8_t *p, size_t len, float nscale, unsigned seed, float *x, uint64_t n)
{
    uint64_t k = 0;
    float prev = 0;
    size_t i = 0;
    while (k < n && i < len) {
        uint8_t c = p[i++];
        float v = 0;
        switch (c >> 6) {
        case 0:
            if (c & 32) {
                for (unsigned r = 0; r <= (c & 31u) && k < n; r++) x[k++] = prev;
                continue;
            }
            break;
        case 1:
            if (i < len) v = ldexpf((float)(int8_t)p[i++], 4 * (c & 63) - 150);
            break;
        case 2:
            if (i < len) v = ((float)p[i++] - 128.0f) / 32.0f * nscale;
            break;
        default:
            if (i + 4 <= len) {
                uint32_t b = (uint32_t)fuzz_le(p + i, 4, 4);
                memcpy(&v, &b, 4);
                if (!isfinite(v)) v = 0;
            }
            i += 4;
            break;
        }
        x[k++] = prev = v;
    }
    for (uint64_t m = k; m < n; m++) {
        if (!k) {
            x[m] = 0;
            continue;
        }
        float v = x[(m * (seed | 1u)) % k]; /* cycle over the values made, in a seeded order */
        x[m] = v;
    }
}

static uint64_t rec_bytes(const ddct_enc_out *o) { return ddct_record_size(1, o->params.len, o->side.len, o->data.len); }

static int same_buf(const ddct_buf *a, const ddct_buf *b)
{
    return a->len == b->len && (!a->len || !memcmp(a->p, b->p, a->len));
}

static int same_out(const ddct_enc_out *a, const ddct_enc_out *b)
{
    return same_buf(&a->params, &b->params) && same_buf(&a->side, &b->side) && same_buf(&a->data, &b->data);
}

/* The smallest record for in's parameters: the least bytes at steps 16 .. 2^13 times max |delta|. */
static uint64_t min_record(const ddct_lossy_in *in0, double mx)
{
    ddct_lossy_in in = *in0;
    int nf = 0;
    in.nonfinite = &nf;
    ddct_rd_model *M = NULL;
    ddct_err e;
    ddct_err_clear(&e);
    int rc = ddct_rd_model_build(&in, 0, &M, &nf, &e);
    FUZZ_ASSERT(rc == 0 && M && !nf, "model for the smallest record: %s", e.msg);
    uint64_t best = UINT64_MAX;
    for (int k = 4; k <= 13; k += 3) {
        double step = fmin((mx > 0 ? mx : 1e-30) * exp2(k), 0x1p120);
        uint64_t b = 0;
        rc = ddct_rd_encode_model(&in, M, step, NULL, &b, NULL, &nf, &e);
        FUZZ_ASSERT(rc == 0, "record at step %g: %s", step, e.msg);
        if (b < best) best = b;
    }
    ddct_rd_model_free(M);
    return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_RD_HDR) return 0;
    static const int rescales[4] = {0, 1, DDCT_RESCALE_AUTO, DDCT_RESCALE_AUTO};
    int rescale = rescales[data[0] & 3], use_error = (data[0] >> 2) & 1;
    int t1 = 1 + ((data[0] >> 3) & 3) % 3, t2 = 1 + t1 % 3;
    uint64_t R = 1 + data[1] % 64u, C = 1 + data[2] % 64u, n = R * C;
    uint64_t shape[3];
    int ndim;
    switch (data[0] >> 5) {
    case 3: ndim = 1, shape[0] = n; break;
    case 4: ndim = 3, shape[0] = R, shape[1] = 1, shape[2] = C; break;
    case 5: ndim = 3, shape[0] = R, shape[1] = C, shape[2] = 1; break;
    case 6: ndim = 2, shape[0] = 1, shape[1] = n; break;
    case 7: ndim = 2, shape[0] = n, shape[1] = 1; break;
    default: ndim = 2, shape[0] = R, shape[1] = C; break;
    }
    double bpp = 0.05 * pow(160.0, data[3] / 255.0), target = 0.01 * pow(90.0, data[3] / 255.0);
    float nscale = ldexpf(1.0f, (int)(data[4] & 63) - 40);
    int structure = data[4] >> 6;

    float *d = malloc(n * sizeof *d), *w = malloc(n * sizeof *w), *r = malloc(n * sizeof *r);
    float *rs = malloc(n * sizeof *rs);
    FUZZ_ASSERT(d && w && r && rs, "out of memory");
    make_values(data + FUZZ_RD_HDR, size - FUZZ_RD_HDR, nscale, data[5], w, n);
    for (uint64_t i = 0; i < R; i++)
        for (uint64_t j = 0; j < C; j++) {
            float prod = w[i % n] * w[(R + j) % n];
            float v = structure == 1 ? prod : structure == 2 ? prod + w[i * C + j] : structure == 3 ? w[j] : w[i * C + j];
            d[i * C + j] = isfinite(v) ? v : 0; /* a product may overflow */
        }
    double mx = 0, energy = 0;
    for (uint64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(d[i]));
        energy += (double)d[i] * d[i];
    }

    ddct_params P;
    ddct_params_default(&P);
    P.method = DDCT_METHOD_RD;
    P.rescale = rescale;
    P.bpp = use_error ? 0 : bpp;
    P.error = use_error ? target : 0;
    int nf = 0;
    ddct_lossy_in in = {.delta = d, .ndim = ndim, .shape = shape, .nelem = n, .params = &P, .threads = t1,
                        .nonfinite = &nf};
    ddct_enc_out o, o2;
    ddct_enc_out_init(&o);
    ddct_enc_out_init(&o2);
    ddct_err e;
    ddct_err_clear(&e);
    int rc = ddct_codec_rd.encode_lossy(&in, &o, &e);
    FUZZ_ASSERT(rc == 0, "encode (%d threads): code %d '%s'", t1, rc, e.msg);
    /* ||delta|| above 2^100 is not coded (codec_rd.h), anything below is */
    FUZZ_ASSERT(nf ? energy > 0x1p199 : energy < 0x1p201, "nonfinite %d for ||delta||^2 = %g", nf, energy);
    if (nf) {
        ddct_enc_out_free(&o);
        free(d);
        free(w);
        free(r);
        free(rs);
        return 0;
    }
    FUZZ_ASSERT(ddct_enc_out_check(&o, &e) == 0, "encoder output: %s", e.msg);
    uint64_t bytes = rec_bytes(&o);
    if (!use_error && 8.0 * (double)bytes > bpp * (double)n) {
        uint64_t least = min_record(&in, mx);
        FUZZ_ASSERT(bytes <= least, "%llu bytes, budget %.2f bytes (%.3f bpp x %llu), smallest record %llu",
                    (unsigned long long)bytes, bpp * (double)n / 8, bpp, (unsigned long long)n,
                    (unsigned long long)least);
    }

    /* whole decode */
    ddct_record rec = {.codec = DDCT_CODEC_RD, .flags = DDCT_REC_HAS_BASE, .params = o.params.p,
                       .params_len = o.params.len, .side = o.side.p, .side_len = o.side.len, .data = o.data.p,
                       .data_len = o.data.len};
    const uint32_t s = SENTINEL;
    for (uint64_t i = 0; i < n; i++) memcpy(&r[i], &s, 4);
    ddct_err_clear(&e);
    rc = ddct_codec_rd.decode_lossy(&rec, n, t1, -1, r, &e);
    FUZZ_ASSERT(rc == 0, "decode: code %d '%s'", rc, e.msg);
    for (uint64_t i = 0; i < n; i++) {
        FUZZ_ASSERT(isfinite(r[i]), "decoded value %llu is %g (input %g, max |delta| %g)", (unsigned long long)i,
                    (double)r[i], (double)d[i], mx);
        FUZZ_ASSERT(energy > 0 || r[i] == 0, "a zero delta decodes to %g at %llu", (double)r[i], (unsigned long long)i);
    }

    /* streamed decode with the other thread count: the same bytes */
    for (uint64_t i = 0; i < n; i++) memcpy(&rs[i], &s, 4);
    collect_t co = {.d = rs, .n = n};
    ddct_delta_out out = {co_begin, co_put, co_end, &co};
    ddct_scratch scr = {0};
    ddct_err_clear(&e);
    rc = ddct_codec_rd.decode_stream(&rec, n, t2, -1, &scr, &out, &e);
    ddct_scratch_free(&scr);
    FUZZ_ASSERT(rc == 0, "streamed decode: code %d '%s'", rc, e.msg);
    FUZZ_ASSERT(!co.open && co.next == n, "streamed decode covered %llu of %llu values", (unsigned long long)co.next,
                (unsigned long long)n);
    FUZZ_ASSERT(!memcmp(r, rs, n * sizeof *r), "streamed and whole decodes differ");

    /* the other thread count: the same record */
    in.threads = t2;
    ddct_err_clear(&e);
    rc = ddct_codec_rd.encode_lossy(&in, &o2, &e);
    FUZZ_ASSERT(rc == 0 && !nf, "encode (%d threads): code %d '%s'", t2, rc, e.msg);
    FUZZ_ASSERT(same_out(&o, &o2), "records differ between %d and %d threads", t1, t2);

    ddct_enc_out_free(&o);
    ddct_enc_out_free(&o2);
    free(d);
    free(w);
    free(r);
    free(rs);
    return 0;
}
