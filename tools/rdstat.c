/*
 * rdstat.c — what the rd codec's entropy coder gains over plain bit-packing.
 *
 *   ddct-rdstat FILE.ddct [--json]
 *
 * Decodes every rd record (codec 5) of FILE and, for its factor stream and its residual units,
 * compares the rANS-coded bits with the bits a fixed-width packing of the same quantized symbols
 * takes (per factor vector and per coding unit: the width of the largest zigzag symbol for every
 * value, plus a 4-bit width), and with a width per block of 256 residual
 * values (block_bits, blk_x). Prints one line per tensor and the totals: bpp is the whole
 * record's bits per parameter, coded the rANS streams' alone; *_x are packed / coded ratios.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/container.h"
#include "rdstat.h"

static void line(const char *name, const ddct_rd_stats *s, uint64_t rec_bytes, uint64_t n)
{
    uint64_t coded = s->fac_coded_bits + s->res_coded_bits, packed = s->fac_packed_bits + s->res_packed_bits;
    uint64_t blocked = s->fac_packed_bits + s->res_block_bits;
    printf("%-44s %9llu %4llu %5.3f %5.3f %10llu %11llu %11llu %6.2f %6.2f %6.2f %6.2f\n", name, (unsigned long long)n,
           (unsigned long long)s->rank, 8.0 * (double)rec_bytes / (double)n, (double)coded / (double)n,
           (unsigned long long)coded, (unsigned long long)packed, (unsigned long long)blocked,
           s->fac_coded_bits ? (double)s->fac_packed_bits / (double)s->fac_coded_bits : 0.0,
           s->res_coded_bits ? (double)s->res_packed_bits / (double)s->res_coded_bits : 0.0,
           coded ? (double)packed / (double)coded : 0.0, coded ? (double)blocked / (double)coded : 0.0);
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: ddct-rdstat FILE.ddct\n");
        return 2;
    }
    ddct_err e;
    ddct_err_clear(&e);
    ddct_ctr_reader *r = NULL;
    if (ddct_ctr_open(&r, argv[1], &e)) {
        fprintf(stderr, "ddct-rdstat: %s\n", e.msg);
        return 1;
    }
    printf("%-44s %9s %4s %5s %5s %10s %11s %11s %6s %6s %6s %6s\n", "tensor", "params", "rank", "bpp", "coded",
           "coded_bits", "packed_bits", "block_bits", "fac_x", "res_x", "all_x", "blk_x");
    ddct_rd_stats tot;
    memset(&tot, 0, sizeof tot);
    uint64_t tot_n = 0, tot_rec = 0;
    int rc = 0;
    for (size_t i = 0; i < ddct_ctr_count(r) && !rc; i++) {
        const ddct_ctr_entry *en = ddct_ctr_entry_at(r, i);
        ddct_record rec;
        if (ddct_ctr_record(r, i, 0, &rec, &e)) {
            rc = 1;
            break;
        }
        if (rec.codec != DDCT_CODEC_RD) continue;
        float *out = malloc((size_t)en->nelem * sizeof *out);
        ddct_rd_stats s;
        if (!out || rdstat_record(&rec, en->nelem, out, &s, &e)) {
            free(out);
            rc = 1;
            break;
        }
        free(out);
        line(en->name, &s, en->length, en->nelem);
        tot.fac_syms += s.fac_syms;
        tot.fac_coded_bits += s.fac_coded_bits;
        tot.fac_packed_bits += s.fac_packed_bits;
        tot.res_syms += s.res_syms;
        tot.res_coded_bits += s.res_coded_bits;
        tot.res_packed_bits += s.res_packed_bits;
        tot.res_block_bits += s.res_block_bits;
        tot_n += en->nelem;
        tot_rec += en->length;
    }
    if (rc) fprintf(stderr, "ddct-rdstat: %s\n", e.msg);
    else if (tot_n) line("TOTAL", &tot, tot_rec, tot_n);
    ddct_ctr_close(r);
    return rc;
}
