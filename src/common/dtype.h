/*
 * dtype.h — safetensors element types and float conversions.
 *
 * F32/F16/BF16 are the lossy-capable types. Conversions to narrower types round to
 * nearest, ties to even (IEEE 754 default), NaN stays NaN (quiet), overflow gives Inf.
 */
#ifndef DDCT_DTYPE_H
#define DDCT_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DDCT_DT_INVALID = 0,
    DDCT_DT_F64, DDCT_DT_F32, DDCT_DT_F16, DDCT_DT_BF16,
    DDCT_DT_I64, DDCT_DT_I32, DDCT_DT_I16, DDCT_DT_I8,
    DDCT_DT_U64, DDCT_DT_U32, DDCT_DT_U16, DDCT_DT_U8,
    DDCT_DT_BOOL, DDCT_DT_F8_E4M3, DDCT_DT_F8_E5M2,
    DDCT_DT_COUNT
} ddct_dtype;

/* "F32" -> DDCT_DT_F32; unknown -> DDCT_DT_INVALID */
ddct_dtype ddct_dtype_from_name(const char *name, size_t len);
const char *ddct_dtype_name(ddct_dtype t);   /* "?" for invalid */
size_t ddct_dtype_size(ddct_dtype t);        /* bytes per element, 0 for invalid */
int ddct_dtype_is_lossy_float(ddct_dtype t); /* F32, F16, BF16 */

float ddct_f16_to_f32(uint16_t h);
uint16_t ddct_f32_to_f16(float f);
float ddct_bf16_to_f32(uint16_t h);
uint16_t ddct_f32_to_bf16(float f);

/* src (n elements of t, little-endian, possibly unaligned) -> float. t must be lossy float. */
void ddct_to_f32(ddct_dtype t, const void *src, size_t n, float *dst);
/* float -> dst (n elements of t, little-endian). t must be lossy float. */
void ddct_from_f32(ddct_dtype t, const float *src, size_t n, void *dst);
/* d = a - b in float32 (a, b: n elements of lossy float types ta, tb); returns 1 if every input
 * value and every difference is finite, else 0 (d is then still fully written). */
int ddct_sub_to_f32(ddct_dtype ta, const void *a, ddct_dtype tb, const void *b, size_t n, float *d);
/* out = cast to `to` of (base as float32 + d * s), element by element (the same as ddct_to_f32,
 * a float multiplication, a float addition and ddct_from_f32; s = 1 leaves d exact), saturated:
 * where the base value is finite the result is too. A sum that rounds to Inf in `to` (F16 near
 * 65504, BF16 or F32 near 3.4e38, or d * s infinite) becomes the largest finite value of `to`
 * with its sign; a NaN sum (d * s NaN) becomes the base value. A non-finite base value gives what the
 * plain cast gives (Inf and NaN of the base are kept). Returns how many values were saturated
 * or replaced. ddct_add_cast_ref: the same without AVX2 (bitwise identical; tests compare). */
uint64_t ddct_add_cast(ddct_dtype tb, const void *base, const float *d, float s, size_t n, ddct_dtype to, void *out);
uint64_t ddct_add_cast_ref(ddct_dtype tb, const void *base, const float *d, float s, size_t n, ddct_dtype to,
                           void *out);

#endif
