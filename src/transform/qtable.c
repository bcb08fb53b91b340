/*
 * qtable.c — JPEG-style frequency weighting for p x p DCT patches.
 *
 * Algorithm: the JPEG luminance quantization table (ITU-T T.81 | ISO/IEC 10918-1, Annex K,
 * Table K.1; rows = vertical frequency, columns = horizontal frequency) is treated as
 * samples of a function on the frequency plane [0,7] x [0,7]. Coefficient (u,v) of a p x p
 * patch sits at (u * 7 / (p - 1), v * 7 / (p - 1)) and gets the bilinear interpolation of the
 * four surrounding table entries; the result is divided by the DC entry (16) so element [0]
 * is exactly 1. Positions are computed as the exact rational (u*7)/(p-1) in double, so for
 * p = 8 every position is an integer and the output is Table K.1 / 16 exactly (a multiple of
 * 1/16, representable in float). Weights range from 0.625 (K.1's 10 / 16) to 7.5625 (121/16).
 * Precision: interpolation in double, one rounding to float.
 */
#include <math.h>

#include "transform/transform.h"

static const unsigned char jpeg_lum_k1[8][8] = {
    {16, 11, 10, 16, 24, 40, 51, 61},      {12, 12, 14, 19, 26, 58, 60, 55},
    {14, 13, 16, 24, 40, 57, 69, 56},      {14, 17, 22, 29, 51, 87, 80, 62},
    {18, 22, 37, 56, 68, 109, 103, 77},    {24, 35, 55, 64, 81, 104, 113, 92},
    {49, 64, 78, 87, 103, 121, 120, 101},  {72, 92, 95, 98, 112, 100, 103, 99},
};

void ddct_qtable_jpeg(int p, float *out)
{
    if (p < 1 || !out) return;
    if (p == 1) {
        out[0] = 1.0f;
        return;
    }
    for (int u = 0; u < p; u++) {
        const double fu = (double)(u * 7) / (p - 1);
        int u0 = (int)floor(fu);
        if (u0 > 7) u0 = 7;
        const int u1 = u0 < 7 ? u0 + 1 : 7;
        const double tu = fu - u0;
        for (int v = 0; v < p; v++) {
            const double fv = (double)(v * 7) / (p - 1);
            int v0 = (int)floor(fv);
            if (v0 > 7) v0 = 7;
            const int v1 = v0 < 7 ? v0 + 1 : 7;
            const double tv = fv - v0;
            const double q = (1 - tu) * ((1 - tv) * jpeg_lum_k1[u0][v0] + tv * jpeg_lum_k1[u0][v1]) +
                             tu * ((1 - tv) * jpeg_lum_k1[u1][v0] + tv * jpeg_lum_k1[u1][v1]);
            out[(size_t)u * p + v] = (float)(q / jpeg_lum_k1[0][0]);
        }
    }
}
