/*
 * rans.h — static (two-pass) rANS entropy coder with per-symbol contexts.
 *
 * Coder: 32-bit state x in [2^23, 2^31), byte-wise renormalisation (ryg_rans "rans_byte"
 * scheme), probability precision M = 2^prob_bits with prob_bits 12..15 chosen per table,
 * alphabet up to 4096 symbols, up to 64 contexts each with its own frequency table. The
 * encoder counts the symbols per context (pass 1), normalises the counts to frequencies
 * (every present symbol gets >= 1), writes the tables and then the coded stream (pass 2).
 * Integer arithmetic only: output is deterministic and machine-independent.
 *
 * Blob layout (ddct_rans_encode), all read by ddct_rans_decode / ddct_rans_dec_init:
 *   u8      nctx - 1 (low 6 bits; top 2 bits: 0, or 2 for a four-state blob, or 3 for a word
 *           blob, see below)
 *   table[nctx]       one per context, see below
 *   u32 LE  final encoder state
 *   bytes   renormalisation bytes, in decoding order
 * The blob is not self-delimiting: the decoder must be given exactly its length (it checks
 * that decoding ends with the initial state 2^23 having consumed every byte).
 *
 * Table (ddct_rans_table_write):
 *   u8 head: bits 0-1 kind (0 empty, 1 single symbol, 2 general), bits 2-3 prob_bits - 12,
 *            bits 4-7 zero.
 *   kind 0: nothing more (context never used).
 *   kind 1: varint symbol (< 4096). It has frequency M and costs 0 bits per symbol.
 *   kind 2: varint (A - 2), A = alphabet size = largest symbol + 1 (2..4096); then, for
 *           symbols 0..A-2: varint freq (1..M-1), or 0 followed by varint z = number of
 *           further absent symbols (a run of 1 + z zeros). The frequency of symbol A-1 is
 *           implied: M minus the others, and must be >= 1.
 *   A 4-symbol table costs 1 + 1 + 3 varints = 5..11 bytes.
 *
 * Decoding is bounds-checked against untrusted input: any malformed table, state, stream,
 * a context id >= the stored nctx, or a context whose table is empty, gives
 * DDCT_ERR_FORMAT; decoding does O(1) work per symbol and never reads outside [in, in+len).
 */
#ifndef DDCT_RANS_H
#define DDCT_RANS_H

#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/error_private.h"

#define DDCT_RANS_MAX_SYMBOLS 4096
#define DDCT_RANS_MAX_CONTEXTS 64
#define DDCT_RANS_PROB_BITS_MIN 12
#define DDCT_RANS_PROB_BITS_MAX 15
#define DDCT_RANS_PROB_BITS_DEFAULT 15

typedef enum { DDCT_RANS_EMPTY = 0, DDCT_RANS_SINGLE = 1, DDCT_RANS_GENERAL = 2 } ddct_rans_kind;

typedef struct {
    int kind;       /* ddct_rans_kind */
    int prob_bits;  /* 12..15 */
    int nsym;       /* alphabet size A = largest present symbol + 1 (0 when empty) */
    uint16_t freq[DDCT_RANS_MAX_SYMBOLS];    /* freq[s] for s < nsym, sum = 2^prob_bits */
    uint16_t cum[DDCT_RANS_MAX_SYMBOLS + 1]; /* cum[s] = sum of freq[0..s) */
} ddct_rans_table;

/* Normalise counts[0..nsym) (nsym <= 4096) to frequencies summing to 2^prob_bits:
 * proportional, every symbol with a non-zero count gets >= 1, leftovers by largest
 * remainder (ties: lower symbol). All-zero counts give an empty table, one present symbol
 * a single-symbol table. DDCT_ERR_PARAM for nsym or prob_bits out of range. */
int ddct_rans_table_build(ddct_rans_table *t, const uint64_t *counts, int nsym, int prob_bits, ddct_err *e);
void ddct_rans_table_write(const ddct_rans_table *t, ddct_buf *b);
/* Read one table; DDCT_ERR_FORMAT (r latched failed) if malformed or truncated. */
int ddct_rans_table_read(ddct_rans_table *t, ddct_rd *r, ddct_err *e);
/* Ideal cost in bits of coding count[s] symbols s with table t (cross-entropy); for tests
 * and for choosing between coders. Symbols absent from t make it return -1. */
double ddct_rans_table_cost_bits(const ddct_rans_table *t, const uint64_t *counts, int nsym);

/* Encode sym[0..n) (each < 4096) with context ctx[i] (< nctx <= 64; ctx may be NULL: all
 * context 0) and append the blob to out. prob_bits 12..15 (0: default 15).
 * DDCT_ERR_PARAM for bad arguments, DDCT_ERR_NOMEM. */
int ddct_rans_encode(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                     ddct_err *e);
/* The same blob as ddct_rans_encode (byte for byte) from the plain coding loop, a division per
 * symbol; ddct_rans_encode codes with precomputed reciprocals and a branch-free renormalisation.
 * For tests and benchmarks. */
int ddct_rans_encode_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                         ddct_err *e);
/* Decode n symbols from the blob in[0..len) with the same contexts as at encoding
 * (ctx may be NULL: all context 0). DDCT_ERR_FORMAT if the blob is malformed, does not
 * hold exactly n symbols, or a context is out of range (sym[] is then zeroed);
 * DDCT_ERR_NOMEM. */
int ddct_rans_decode(const uint8_t *in, size_t len, const uint8_t *ctx, size_t n, uint16_t *sym, ddct_err *e);

/* Four interleaved states (DDCT_RANS_LANES): symbol i of the blob is coded with state i mod 4,
 * so a decoder can run four independent steps side by side. The blob is as above except that
 * the header byte's top bits are 2 (0x80 | (nctx - 1)) and four u32 LE states (0, 1, 2, 3)
 * replace the one: 12 bytes more. Decode with ddct_rans_dec_init_x4 + ddct_rans_dec_run_x4;
 * the one-state functions refuse such a blob and the four-state ones a one-state blob. */
#define DDCT_RANS_LANES 4
int ddct_rans_encode_x4(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                        ddct_err *e);
/* ddct_rans_encode_x4 from the plain coding loop (as ddct_rans_encode_ref). */
int ddct_rans_encode_x4_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits,
                            ddct_buf *out, ddct_err *e);

/* Word blobs (DDCT_RANS_WLANES interleaved states with 16-bit renormalisation, the scheme of
 * ryg_rans' rans_word and Giesen's "Interleaved entropy coders", made for SIMD decoding): state x
 * in [2^16, 2^32) (DDCT_RANS_WL = 2^16), decoder step as above, then if x < 2^16, x = x << 16 | the
 * next 16-bit word (at most one word per symbol per state). Symbol i of the blob is coded with
 * state i mod DDCT_RANS_WLANES, and the words are stored in the order the decoder reads them, so
 * one round of DDCT_RANS_WLANES symbols reads its words from consecutive positions: lane k takes
 * the (number of lanes below k that need one)-th. Layout:
 *   u8      0xC0 | (nctx - 1)
 *   table[nctx]        as above
 *   u32 LE  final encoder states, lane 0 first (4 DDCT_RANS_WLANES bytes)
 *   u16 LE  renormalisation words, in decoding order
 * The decoder checks that every state ends at 2^16 having consumed every byte (an odd length
 * never decodes). The one- and four-state functions refuse a word blob, ddct_rans_dec_init_w
 * refuses theirs. Same tables and limits (prob_bits 12..15, 64 contexts, 4096 symbols), but the
 * encoder codes with at most DDCT_RANS_W_PROB_BITS_MAX bits of precision (a larger prob_bits is
 * lowered to it; the tables say which): on units of tens of thousands of symbols the smaller
 * tables give smaller blobs and a faster decoder (figures in rans.c). The decoder accepts every
 * precision 12..15, and different ones per context. Against a four-state blob at 15 bits, a word
 * blob of 64 Ki residual symbols is 3.1, 0.8, 0.4 and 0.2 % larger at 0.2, 0.5, 1 and 2
 * bits/symbol (mostly the 112 more bytes of states). */
#define DDCT_RANS_WLANES 32
#define DDCT_RANS_WL (1u << 16)
#define DDCT_RANS_W_PROB_BITS_MAX 12
/* Encode sym[0..n) as a word blob and append it to out: arguments and errors as
 * ddct_rans_encode (prob_bits 0: the default), coded at min(prob_bits, DDCT_RANS_W_PROB_BITS_MAX).
 * Precomputed reciprocals (64-bit), a branch-free word output; at least as fast as
 * ddct_rans_encode_x4. */
int ddct_rans_encode_w(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits, ddct_buf *out,
                       ddct_err *e);
/* ddct_rans_encode_w from the plain coding loop, a division per symbol: the same bytes. */
int ddct_rans_encode_w_ref(const uint16_t *sym, const uint8_t *ctx, size_t n, int nctx, int prob_bits,
                           ddct_buf *out, ddct_err *e);

/* Streaming decoder, for contexts that depend on symbols already decoded. */
#define DDCT_RANS_L (1u << 23)

/* One context as the one-state decoder uses it: slot -> symbol, and per symbol freq | cum << 16.
 * (Four-state and word decoders leave every cx[] empty and slot[], fc[] NULL: they decode from
 * fx[].) */
typedef struct {
    const uint16_t *slot; /* [2^pb] (general tables), else NULL */
    const uint32_t *fc;   /* [nsym] (general tables), else NULL */
    uint32_t mask;        /* 2^pb - 1 */
    int pb;
    int kind;             /* ddct_rans_kind */
    uint16_t single;      /* the symbol of a single-symbol table */
} ddct_rans_cx;

/* One context as the four-state decoder uses it: one table entry per step, indexed by the slot
 * sl = x & (2^pb - 1) as j = off + max(sl, g) (mod 2^32), where the slots [0, g] share one entry:
 * g = f0 - 1 (f0: the frequency of symbol 0) gives every slot of symbol 0 the same entry, so a
 * mostly-zero context touches that one entry and its table holds only the slots of the other
 * symbols; g = 0 when symbol 0 is absent; g = 2^pb - 1 for a single-symbol table, whose one entry
 * freq = 2^pb, cum = 0 makes the step the identity (no renormalisation either), with no branch.
 * Entry j is fx_fc[j] = freq | cum << 16 and fx_sym[j] = the symbol: x' = freq (x >> pb) + sl - cum.
 * Entries per context: 2^pb - g; off is the context's first entry minus g. 8 bytes, so that a
 * context id indexes an array of them without a multiplication. */
typedef struct {
    uint32_t off;
    uint16_t g;
    uint8_t pb;           /* 12..15; 0 for an empty table (not decodable) */
    uint8_t pad_;
} ddct_rans_fx;

/* The two bytes at p, the first on top (big-endian). */
static inline uint32_t ddct_rans_be16(const uint8_t *p)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t v;
    __builtin_memcpy(&v, p, 2);
    return __builtin_bswap16(v);
#else
    return (uint32_t)p[0] << 8 | p[1];
#endif
}
/* Renormalisation of a four-state decoder's state x (>= 256, < 2^31) where two bytes at p can be
 * read: k = 0, 1 or 2 bytes (x < 2^23: one, x < 2^15: two), x << 8k | the first k of the two,
 * without a branch: the shift 16 - 8k is (top bit of x - 7) & 24. Returns k. */
static inline uint32_t ddct_rans_renorm2(uint32_t *x, const uint8_t *p)
{
    const uint32_t sh = ((uint32_t)(31 - __builtin_clz(*x)) - 7u) & 24u;
    *x = (uint32_t)(((uint64_t)*x << 16 | ddct_rans_be16(p)) >> sh);
    return 2u - (sh >> 3);
}

typedef struct {
    const uint8_t *p, *end;
    uint32_t x;            /* the state (one-state blobs) */
    uint32_t xs[4];        /* the states of a four-state blob (ddct_rans_dec_init_x4) */
    int lanes, lane;       /* states (1, 4 or DDCT_RANS_WLANES); the state of the next symbol (four-state
                              and word blobs) */
    int nctx;
    int failed;
    ddct_rans_table *tab;  /* [nctx] */
    uint16_t **slot;       /* [nctx]: slot -> symbol for general tables, else NULL (one-state) */
    uint32_t **fc;         /* [nctx]: freq | cum << 16 per symbol for general tables, else NULL */
    ddct_rans_cx *cx;      /* [nctx] */
    /* four-state decoders only (else NULL / 0) */
    ddct_rans_fx *fx;      /* [nctx] */
    uint32_t *fx_fc;       /* the entries of every fx[] */
    uint16_t *fx_sym;
    uint8_t *ctx_bad;      /* [256]: 1 for a context id >= nctx or with an empty table */
    int nfx;               /* nctx (0 on a one-state or word decoder: the _x4 decoders fail there) */
    int fx_pb;             /* the pb of every non-empty fx[] (0 if they differ) */
    int fx_empty0;         /* the first context with an empty table, else nctx */
    int fx_dense;          /* the stream read so far takes over 4/3 bits per symbol (a speed hint) */
    /* word decoders only (ddct_rans_dec_init_w): the fx tables above (nfx = 0) and */
    uint32_t xw[DDCT_RANS_WLANES]; /* the states; lane (above) is the state of the next symbol */
    int nwx;               /* nctx (0 on other decoders: the _w decoders fail there) */
    int wk;                /* the kernel level (ddct_simd) the _w decoders run */
} ddct_rans_dec;

/* Parse tables and the initial state. On failure the decoder holds nothing to free. */
int ddct_rans_dec_init(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e);
/* The same for a four-state blob; decode it only with ddct_rans_dec_get_x4, ddct_rans_dec_run_x4
 * and ddct_rans_dec_ctx_x4 (+ _ref), in any mixture (ddct_rans_dec_get fails on it). Tables
 * (ddct_rans_fx): 6 bytes per slot past symbol 0's, at most 2^pb entries per context. */
int ddct_rans_dec_init_x4(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e);
/* Next symbol in context ctx; on a bad context / stream returns 0 and latches failed
 * (later calls return 0). Inline: it is the inner loop of every context-adaptive decoder. */
static inline uint16_t ddct_rans_dec_get(ddct_rans_dec *d, int ctx)
{
    if (d->failed || (unsigned)ctx >= (unsigned)d->nctx) {
        d->failed = 1;
        return 0;
    }
    const ddct_rans_cx *c = &d->cx[ctx];
    if (c->kind != DDCT_RANS_GENERAL) {
        if (c->kind == DDCT_RANS_EMPTY) d->failed = 1;
        return c->single;
    }
    uint32_t x = d->x, slot = x & c->mask;
    uint16_t s = c->slot[slot];
    uint32_t fc = c->fc[s];
    /* x >= 2^23 and f >= 1 give x' >= 2^(23-pb) >= 256: at most two bytes below */
    x = (fc & 0xffffu) * (x >> c->pb) + slot - (fc >> 16);
    while (x < DDCT_RANS_L) {
        if (d->p >= d->end) {
            d->failed = 1;
            return 0;
        }
        x = (x << 8) | *d->p++;
    }
    d->x = x;
    return s;
}
/* Next symbol of a four-state decoder (ddct_rans_dec_init_x4) in context ctx: decoded with state
 * xs[lane], then lane moves on to (lane + 1) mod 4. Exactly ddct_rans_dec_get's checks and failure
 * latching (a failed decoder, ctx out of range or an empty table: returns 0 and latches failed; a
 * stream that ends too soon: the same), and it mixes freely with ddct_rans_dec_run_x4 and
 * ddct_rans_dec_ctx_x4: each call goes on with the state after the last one used. Fails (latched)
 * on a one-state decoder. One table entry per symbol (ddct_rans_fx), no branch on the symbol, and
 * while two bytes are left the renormalisation reads them without a branch either. */
static inline uint16_t ddct_rans_dec_get_x4(ddct_rans_dec *d, int ctx)
{
    if (d->failed || (unsigned)ctx >= (unsigned)d->nfx || !d->fx[ctx].pb) {
        d->failed = 1;
        return 0;
    }
    const ddct_rans_fx *f = &d->fx[ctx];
    const int l = d->lane;
    uint32_t x = d->xs[l];
    const uint32_t sl = x & ((1u << f->pb) - 1u), g = f->g, j = f->off + (sl > g ? sl : g);
    const uint32_t fc = d->fx_fc[j];
    /* x >= 2^23 and freq >= 1 give x >= 256 here: at most two bytes */
    x = (fc & 0xffffu) * (x >> f->pb) + sl - (fc >> 16);
    if (d->end - d->p >= 2) {
        d->p += ddct_rans_renorm2(&x, d->p);
    } else {
        while (x < DDCT_RANS_L) {
            if (d->p >= d->end) {
                d->failed = 1;
                return 0;
            }
            x = (x << 8) | *d->p++;
        }
    }
    d->xs[l] = x;
    d->lane = (l + 1) & (DDCT_RANS_LANES - 1);
    return d->fx_sym[j];
}
/* n symbols in the one context ctx into out[0..n): the same symbols, state and failure as n
 * calls of ddct_rans_dec_get (on failure out[] is unspecified and failed is latched). Tight
 * loops: a run of symbol 0 (the common symbol of a residual) skips the table lookup. */
void ddct_rans_dec_run(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
void ddct_rans_dec_run_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
/* The same on a four-state decoder, the states taken in turn across runs (the next run goes on
 * with the state after the last one used), the same symbols, state and failure as n calls of
 * ddct_rans_dec_get_x4 (which _ref makes). Four states stepped side by side, branch-free. */
void ddct_rans_dec_run_x4(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
void ddct_rans_dec_run_x4_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
/* n symbols of a four-state decoder whose contexts ctx[0..n) are known in advance (a tile's band
 * map) into out[0..n): the same symbols, state, position and failure as n calls of
 * ddct_rans_dec_get_x4 (on failure out[] is unspecified and failed is latched). The contexts are
 * checked once per call (any id >= nctx or of an empty table fails the call before a symbol is
 * decoded), then the four states are stepped side by side, without a branch on a symbol or a
 * renormalisation (single-symbol tables included) while eight bytes are left, and one checked
 * symbol at a time after that: never a read outside the blob. Fastest where every non-empty
 * table has the same pb (what ddct_rans_encode_x4 writes). _ref: the n calls of
 * ddct_rans_dec_get_x4. Scalar: the four states are one chain of dependent steps each, which
 * SIMD lanes would only lengthen (gathers, 32-bit vector multiplies). */
void ddct_rans_dec_ctx_x4(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n);
void ddct_rans_dec_ctx_x4_ref(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n);
/* The same for a word blob (ddct_rans_encode_w); decode it only with ddct_rans_dec_get_w,
 * ddct_rans_dec_run_w and ddct_rans_dec_ctx_w (+ _ref), in any mixture (the one- and four-state
 * functions fail on it, and these on theirs). The same ddct_rans_fx tables as a four-state decoder
 * (at most 2^pb entries per context). The kernel (portable, AVX2 or AVX-512) is chosen here, by
 * common/cpu.h. */
int ddct_rans_dec_init_w(ddct_rans_dec *d, const uint8_t *in, size_t len, ddct_err *e);
/* Next symbol of a word decoder in context ctx: decoded with state xw[lane], then lane moves on to
 * (lane + 1) mod DDCT_RANS_WLANES. ddct_rans_dec_get_x4's checks and failure latching (a failed
 * decoder, ctx out of range or an empty table, a stream that ends too soon: returns 0 and latches
 * failed); fails (latched) on a one- or four-state decoder. Mixes freely with ddct_rans_dec_run_w
 * and ddct_rans_dec_ctx_w. */
static inline uint16_t ddct_rans_dec_get_w(ddct_rans_dec *d, int ctx)
{
    if (d->failed || (unsigned)ctx >= (unsigned)d->nwx || !d->fx[ctx].pb) {
        d->failed = 1;
        return 0;
    }
    const ddct_rans_fx *f = &d->fx[ctx];
    const int l = d->lane;
    uint32_t x = d->xw[l];
    const uint32_t sl = x & ((1u << f->pb) - 1u), g = f->g, j = f->off + (sl > g ? sl : g);
    const uint32_t fc = d->fx_fc[j];
    /* x >= 2^16 and freq >= 1 give x >= 2 here: one word brings it back to >= 2^16 */
    x = (fc & 0xffffu) * (x >> f->pb) + sl - (fc >> 16);
    if (x < DDCT_RANS_WL) {
        if (d->end - d->p < 2) {
            d->failed = 1;
            return 0;
        }
        x = x << 16 | ddct_le16(d->p);
        d->p += 2;
    }
    d->xw[l] = x;
    d->lane = (l + 1) & (DDCT_RANS_WLANES - 1);
    return d->fx_sym[j];
}
/* n symbols of a word decoder in the one context ctx into out[0..n): the same symbols, states,
 * position and failure as n calls of ddct_rans_dec_get_w (which _ref makes), on any input: a failure
 * latches failed and leaves what those calls would (zeros in out[] from the failing symbol on, the
 * states and position before it). Single steps up to lane 0, then rounds of DDCT_RANS_WLANES
 * symbols, all states at once in SIMD lanes (gathers from the fx tables, the words of a round
 * moved to the lanes that need them by a permutation or an expand), while a round's worth of
 * words (2 DDCT_RANS_WLANES bytes) is left, then single checked steps: never a read outside the
 * blob. A single-symbol table keeps the states. */
void ddct_rans_dec_run_w(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
void ddct_rans_dec_run_w_ref(ddct_rans_dec *d, int ctx, uint16_t *out, size_t n);
/* n symbols of a word decoder whose contexts ctx[0..n) are known in advance into out[0..n): the same
 * symbols, states, position and failure as n calls of ddct_rans_dec_get_w (_ref makes them), failures
 * of the stream included, except that the contexts are checked once per call: any id >= nctx or of
 * an empty table fails the call before a symbol is decoded (out[] zeros, the states stay). Then
 * SIMD rounds as ddct_rans_dec_run_w, each lane with its own context,
 * where every non-empty table has the same pb (what ddct_rans_encode_w writes), else single
 * steps. */
void ddct_rans_dec_ctx_w(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n);
void ddct_rans_dec_ctx_w_ref(ddct_rans_dec *d, const uint8_t *ctx, uint16_t *out, size_t n);
/* DDCT_ERR_FORMAT if anything failed or the stream did not end exactly (every state back to its
 * initial value, 2^23, or 2^16 for a word blob, every byte consumed). Does not free. */
int ddct_rans_dec_finish(const ddct_rans_dec *d, ddct_err *e);
void ddct_rans_dec_free(ddct_rans_dec *d);

#endif
