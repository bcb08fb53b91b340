/*
 * alloc.c — mixed-precision bit allocation by rank.
 *
 * ddct_alloc_counts: largest remainder over the strategy's classes, in the order given
 * (class 0 = most important patches; the strategy is not assumed sorted by bits).
 *   - fractions that are negative or not finite count as 0; the fractions are then
 *     normalised by their sum (a sum within 1e-12 of 1 is used as exactly 1, so
 *     "2:0.5,0:0.5" is not perturbed), so sloppy sums (the parser allows 1e-3) still
 *     give counts that sum to n;
 *   - quota_i = frac_i / sum * n (double); count_i = floor(quota_i);
 *   - the n - sum(count) leftover units go one each to the classes with the largest
 *     fractional part quota_i - count_i, ties to the earlier class (cycling again in that
 *     order in the unlikely case that there are more units than classes).
 *   Example: "2:0.5,0:0.5" with n = 2k+1 gives counts {k+1, k}: the extra patch goes to
 *   the first class (both remainders are 0.5, the tie goes to the earlier class).
 *   If no fraction is positive, class 0 gets all n. s->n <= 0 writes nothing.
 *
 * ddct_alloc_by_rank: orders the patches by (key, index), where key is an order-preserving
 * integer image of the score, so the order is total: score descending, NaN last, equal
 * scores (and -0 == +0) by lower index first. A stable LSD radix sort on the 32-bit key
 * (8-bit digits, digits on which every key agrees skipped) over the indices in increasing
 * order gives exactly that order in O(n); ddct_alloc_by_rank_ref does the same with qsort
 * and an explicit comparator (the tests compare the two).
 */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ddct_alloc_counts(const ddct_strategy *s, uint64_t n, uint64_t *counts)
{
    if (!s || s->n <= 0 || !counts) return;
    const int k = s->n > DDCT_MAX_BITS_LEVELS ? DDCT_MAX_BITS_LEVELS : s->n;
    double f[DDCT_MAX_BITS_LEVELS], rem[DDCT_MAX_BITS_LEVELS];
    double sum = 0;
    for (int i = 0; i < k; i++) {
        double v = s->frac[i];
        f[i] = (isfinite(v) && v > 0) ? v : 0.0;
        sum += f[i];
        counts[i] = 0;
    }
    if (!(sum > 0) || !isfinite(sum)) {
        counts[0] = n;
        return;
    }
    if (fabs(sum - 1.0) <= 1e-12) sum = 1.0;
    const double dn = (double)n;
    uint64_t used = 0;
    for (int i = 0; i < k; i++) {
        double quota = (sum == 1.0 ? f[i] : f[i] / sum) * dn;
        double fl = floor(quota);
        uint64_t c = fl >= dn ? n : (uint64_t)fl;
        if (c > n - used) c = n - used; /* never over-assign (guards float slop) */
        counts[i] = c;
        used += c;
        rem[i] = quota - fl;
    }
    uint64_t left = n - used;
    if (left == 0) return;
    /* order classes by remainder, descending, ties: earlier class first (stable insertion) */
    int ord[DDCT_MAX_BITS_LEVELS];
    for (int i = 0; i < k; i++) {
        int j = i;
        while (j > 0 && rem[ord[j - 1]] < rem[i]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
    /* only classes with a positive fraction take leftovers */
    int npos = 0;
    for (int i = 0; i < k; i++)
        if (f[ord[i]] > 0) ord[npos++] = ord[i];
    uint64_t each = left / (uint64_t)npos, extra = left % (uint64_t)npos;
    for (int i = 0; i < npos; i++) counts[ord[i]] += each + ((uint64_t)i < extra ? 1u : 0u);
}

typedef struct {
    uint32_t key; /* ascending key == descending score, NaN = UINT32_MAX */
    uint64_t idx;
} rank_item;

/* Order-preserving map: a < b (as floats, not NaN) <=> img(a) < img(b); -0 maps as +0. */
static uint32_t score_key(float x)
{
    if (isnan(x)) return UINT32_MAX;
    if (x == 0.0f) x = 0.0f; /* -0 -> +0 */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending image of the float */
    uint32_t k = ~u;                                 /* descending */
    /* ~img never reaches UINT32_MAX for a non-NaN float: img(-inf) = 0x007FFFFF. */
    return k;
}

static int rank_cmp(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

static int check_strategy(const ddct_strategy *s, ddct_err *e)
{
    RETURN_ERROR_IF(!s || s->n < 1 || s->n > DDCT_MAX_BITS_LEVELS, e, DDCT_ERR_PARAM,
                    "bit allocation: strategy has %d classes (1..%d)", s ? s->n : 0, DDCT_MAX_BITS_LEVELS);
    for (int c = 0; c < s->n; c++)
        RETURN_ERROR_IF(s->bits[c] < 0 || s->bits[c] > 16, e, DDCT_ERR_PARAM,
                        "bit allocation: class %d has bit-width %d (0..16)", c, s->bits[c]);
    return 0;
}

/* Widths in rank order: the first counts[0] ranks get class 0's width, and so on. */
#define ASSIGN_BY_RANK(s, n, widths, IDX)                                                                             \
    do {                                                                                                               \
        uint64_t counts[DDCT_MAX_BITS_LEVELS];                                                                         \
        ddct_alloc_counts(s, (uint64_t)(n), counts);                                                                   \
        size_t r = 0;                                                                                                  \
        for (int c = 0; c < (s)->n; c++) {                                                                             \
            uint8_t b = (uint8_t)(s)->bits[c];                                                                         \
            for (uint64_t j = 0; j < counts[c] && r < (n); j++, r++) (widths)[IDX(r)] = b;                            \
        }                                                                                                              \
        /* counts sum to n; this only guards against a bug */                                                          \
        for (; r < (n); r++) (widths)[IDX(r)] = (uint8_t)(s)->bits[(s)->n - 1];                                       \
    } while (0)

int ddct_alloc_by_rank_ref(const ddct_strategy *s, const float *scores, size_t n, uint8_t *widths, ddct_err *e)
{
    FORWARD_IF_ERROR(check_strategy(s, e));
    if (n == 0) return DDCT_OK;
    RETURN_ERROR_IF(!scores || !widths, e, DDCT_ERR_PARAM, "bit allocation: NULL buffer");
    RETURN_ERROR_IF(n > SIZE_MAX / sizeof(rank_item), e, DDCT_ERR_NOMEM,
                    "bit allocation: out of memory (%zu patches)", n);
    rank_item *it = malloc(n * sizeof *it);
    RETURN_ERROR_IF(!it, e, DDCT_ERR_NOMEM, "bit allocation: out of memory (%zu patches)", n);
    for (size_t i = 0; i < n; i++) {
        it[i].key = score_key(scores[i]);
        it[i].idx = i;
    }
    qsort(it, n, sizeof *it, rank_cmp);
#define ITEM_IDX(r) it[r].idx
    ASSIGN_BY_RANK(s, n, widths, ITEM_IDX);
#undef ITEM_IDX
    free(it);
    return DDCT_OK;
}

int ddct_alloc_by_rank(const ddct_strategy *s, const float *scores, size_t n, uint8_t *widths, ddct_err *e)
{
    FORWARD_IF_ERROR(check_strategy(s, e));
    if (n == 0) return DDCT_OK;
    RETURN_ERROR_IF(!scores || !widths, e, DDCT_ERR_PARAM, "bit allocation: NULL buffer");
    if (n > UINT32_MAX) return ddct_alloc_by_rank_ref(s, scores, n, widths, e);
    /* keys and indices, double-buffered */
    uint32_t *buf = malloc(4 * n * sizeof *buf);
    RETURN_ERROR_IF(!buf, e, DDCT_ERR_NOMEM, "bit allocation: out of memory (%zu patches)", n);
    uint32_t *k0 = buf, *i0 = buf + n, *k1 = buf + 2 * n, *i1 = buf + 3 * n;
    size_t hist[4][256];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = score_key(scores[i]);
        k0[i] = k;
        i0[i] = (uint32_t)i;
        hist[0][k & 255]++;
        hist[1][(k >> 8) & 255]++;
        hist[2][(k >> 16) & 255]++;
        hist[3][k >> 24]++;
    }
    for (int d = 0; d < 4; d++) {
        size_t *h = hist[d];
        int sh = 8 * d;
        if (h[(k0[0] >> sh) & 255] == n) continue; /* every key has this digit: order unchanged */
        size_t sum = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) { /* stable: equal digits keep their order */
            size_t o = h[(k0[i] >> sh) & 255]++;
            k1[o] = k0[i];
            i1[o] = i0[i];
        }
        uint32_t *t = k0;
        k0 = k1;
        k1 = t;
        t = i0;
        i0 = i1;
        i1 = t;
    }
#define SORTED_IDX(r) i0[r]
    ASSIGN_BY_RANK(s, n, widths, SORTED_IDX);
#undef SORTED_IDX
    free(buf);
    return DDCT_OK;
}
