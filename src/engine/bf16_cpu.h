/* float -> bf16 conversion of arrays for the CPU kernels (kernels_cpu.c):
 * AVX512-BF16's vcvtneps2bf16, 16 values per instruction, where the CPU has
 * it, and plain C elsewhere (older CPUs, compilers without the intrinsics).
 *
 * The two paths round the same way (round to nearest even; a NaN stays a
 * NaN, made quiet by setting mantissa bit 6 of the bf16, the sign and the
 * upper payload bits kept) except for subnormal floats: the instruction
 * treats them as zero (a signed zero, whatever MXCSR says), the C path
 * rounds them like any other value. oneDNN's f32 -> bf16 reorder uses the
 * same instruction on such CPUs, so there the native path gives oneDNN's
 * bits for every input (tests/engine/test_bf16_cpu.c checks both). */
#ifndef MSKX_ENGINE_BF16_CPU_H
#define MSKX_ENGINE_BF16_CPU_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The C rule for one value (integer arithmetic, so it vectorises). */
static inline uint16_t bf16_round(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
}

/* Exact: a bf16 is the upper half of a float. */
static inline float bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* dst[i] = bf16 of src[i], i < n, by the path in use (bf16_native). */
void bf16_from_floats(const float *src, uint16_t *dst, size_t n);
/* The plain-C path, whatever the CPU (tests compare the two). */
void bf16_from_floats_c(const float *src, uint16_t *dst, size_t n);
/* dst[i] = src[i] as floats (exact; inline, so that it vectorises in place). */
static inline void bf16_to_floats(const uint16_t *restrict src, float *restrict dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bf16_to_float(src[i]);
}

/* Whether the CPU has AVX512-BF16 (with the AVX512VL/BW the native path
 * also uses): the one CPU check, also engine_dnnl_has_bf16's. */
int bf16_cpu_has_avx512bf16(void);
/* Whether bf16_from_floats runs vcvtneps2bf16 (decided at the first call;
 * engine_dnnl_create makes that call, before any kernel runs threads): the CPU has AVX512-BF16, the
 * compiler the intrinsics, and the C path is not forced. */
int bf16_native(void);
/* Forces the plain-C path (on != 0) or lets the CPU decide again (0): for
 * tests and benchmarks of the fallback. Not for use while kernels run on
 * other threads (they may see either path). */
void bf16_force_c(int on);

#endif
