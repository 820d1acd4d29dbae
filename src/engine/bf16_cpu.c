/* float -> bf16 array conversion with runtime dispatch (see bf16_cpu.h). */
#include "engine/bf16_cpu.h"

/* GCC 10 and clang 9 brought the AVX512-BF16 intrinsics; the target
 * attribute compiles one function for them whatever -march says, and it only
 * runs after the CPU check. */
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 9) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define BF16_HAVE_NATIVE 1
#include <immintrin.h>
#else
#define BF16_HAVE_NATIVE 0
#endif

void bf16_from_floats_c(const float *restrict src, uint16_t *restrict dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

#if BF16_HAVE_NATIVE
__attribute__((target("avx512bf16,avx512f,avx512vl,avx512bw"))) static void from_floats_avx512(
    const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
  }
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
    __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)h);
  }
}
#endif

/* -1: not decided yet; 0: C; 1: native. Relaxed atomics: every thread that
 * decides reaches the same answer. */
static int path = -1;
static int forced_c;

int bf16_cpu_has_avx512bf16(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}

static int decide(void) {
  int p = BF16_HAVE_NATIVE && !__atomic_load_n(&forced_c, __ATOMIC_RELAXED) && bf16_cpu_has_avx512bf16();
  __atomic_store_n(&path, p, __ATOMIC_RELAXED);
  return p;
}

int bf16_native(void) {
  int p = __atomic_load_n(&path, __ATOMIC_RELAXED);
  return p >= 0 ? p : decide();
}

void bf16_force_c(int on) {
  __atomic_store_n(&forced_c, on != 0, __ATOMIC_RELAXED);
  decide();   /* now, not lazily inside a kernel's parallel region */
}

void bf16_from_floats(const float *src, uint16_t *dst, size_t n) {
#if BF16_HAVE_NATIVE
  if (bf16_native()) {
    from_floats_avx512(src, dst, n);
    return;
  }
#endif
  bf16_from_floats_c(src, dst, n);
}
