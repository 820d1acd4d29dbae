/* The float -> bf16 conversion of the CPU kernels (src/engine/bf16_cpu.c):
 * the AVX512-BF16 path against the plain-C rule bit for bit over every
 * upper half with edge-case lower halves (rounding ties, NaN payloads,
 * infinities, subnormals), both against oneDNN's own f32 -> bf16 reorder, the
 * forced fallback, tails of every length, and the kernels that use it. */
#include <dnnl.h>
#include <string.h>
#include "core/rng.h"
#include "engine/bf16_cpu.h"
#include "engine/engine.h"
#include "engine/kernels_cpu.h"
#include "test.h"

/* Lower halves that decide rounding: exact, just below/at/above the tie,
 * the largest, plus payload bits of a NaN. */
static const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000};
#define NLOW (sizeof lows / sizeof lows[0])
#define NSWEEP (65536u * NLOW)

static float *sweep(void) {
  float *f = malloc(NSWEEP * sizeof(float));
  if (!f) return NULL;
  size_t k = 0;
  for (uint32_t hi = 0; hi < 65536u; hi++)
    for (size_t l = 0; l < NLOW; l++) {
      uint32_t u = hi << 16 | lows[l];
      memcpy(&f[k++], &u, 4);
    }
  return f;
}

static int is_subnormal(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (u & 0x7f800000u) == 0 && (u & 0x007fffffu) != 0;
}

static int is_nan(float f) { return f != f; }

TEST(native_equals_c_rule_except_subnormals) {
  bf16_force_c(0);
  if (!bf16_native()) {
    printf("SKIP native path: this CPU (or compiler) has no AVX512-BF16\n");
    return;
  }
  float *f = sweep();
  uint16_t *a = malloc(NSWEEP * 2), *b = malloc(NSWEEP * 2);
  CHECKF(f && a && b, "out of memory");
  bf16_from_floats(f, a, NSWEEP);
  bf16_from_floats_c(f, b, NSWEEP);
  size_t sub = 0;
  for (size_t i = 0; i < NSWEEP; i++) {
    if (is_subnormal(f[i])) {
      /* vcvtneps2bf16 treats a subnormal input as zero, keeping its sign. */
      uint16_t z = (uint16_t)(b[i] & 0x8000u);
      CHECKF(a[i] == z, "subnormal %a: native %04x, want signed zero %04x", (double)f[i], a[i], z);
      sub++;
    } else {
      CHECKF(a[i] == b[i], "%a (%s): native %04x, C %04x", (double)f[i], is_nan(f[i]) ? "NaN" : "number", a[i], b[i]);
    }
  }
  CHECKF(sub == 2u * 128u * NLOW - 2u, "%zu subnormals in the sweep", sub);
  free(f), free(a), free(b);
}

/* oneDNN's reorder of the sweep (a plain 1-D f32 -> bf16 reorder). */
static int onednn_bf16(const float *f, uint16_t *out, size_t n) {
  dnnl_engine_t eng;
  dnnl_stream_t st;
  if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return -1;
  dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
  dnnl_dims_t d = {(dnnl_dim_t)n};
  dnnl_memory_desc_t mf, mb;
  dnnl_memory_desc_init_by_tag(&mf, 1, d, dnnl_f32, dnnl_a);
  dnnl_memory_desc_init_by_tag(&mb, 1, d, dnnl_bf16, dnnl_a);
  dnnl_memory_t a, b;
  dnnl_memory_create(&a, &mf, eng, (void *)f);
  dnnl_memory_create(&b, &mb, eng, out);
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t r;
  int rc = -1;
  if (dnnl_reorder_primitive_desc_create(&pd, &mf, eng, &mb, eng, NULL) == dnnl_success) {
    if (dnnl_primitive_create(&r, pd) == dnnl_success) {
      dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
      rc = dnnl_primitive_execute(r, st, 2, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success ? 0 : -1;
      dnnl_primitive_destroy(r);
    }
    dnnl_primitive_desc_destroy(pd);
  }
  dnnl_memory_destroy(a);
  dnnl_memory_destroy(b);
  dnnl_stream_destroy(st);
  dnnl_engine_destroy(eng);
  return rc;
}

TEST(both_paths_against_onednn_reorder) {
  float *f = sweep();
  uint16_t *o = malloc(NSWEEP * 2), *a = malloc(NSWEEP * 2), *c = malloc(NSWEEP * 2);
  CHECKF(f && o && a && c, "out of memory");
  CHECKF(onednn_bf16(f, o, NSWEEP) == 0, "oneDNN reorder failed");
  bf16_force_c(0);
  int native = bf16_native();
  bf16_from_floats(f, a, NSWEEP);
  bf16_from_floats_c(f, c, NSWEEP);
  size_t c_sub_diff = 0;
  for (size_t i = 0; i < NSWEEP; i++) {
    /* Native: oneDNN uses the same instruction on such CPUs, every bit equal. */
    if (native) CHECKF(a[i] == o[i], "%a: native %04x, oneDNN %04x", (double)f[i], a[i], o[i]);
    /* C: equal on every normal number, zero, infinity and NaN. */
    if (!is_subnormal(f[i]))
      CHECKF(c[i] == o[i], "%a: C %04x, oneDNN %04x", (double)f[i], c[i], o[i]);
    else
      c_sub_diff += c[i] != o[i];
  }
  /* Where oneDNN flushes subnormals (native bf16 CPUs) the C rule, which
   * rounds them, differs on those whose rounding is nonzero. */
  if (native) CHECKF(c_sub_diff > 0, "the C rule agreed with oneDNN on every subnormal");
  free(f), free(o), free(a), free(c);
}

TEST(forced_c_path_and_tails) {
  bf16_force_c(1);
  CHECKF(!bf16_native(), "bf16_force_c(1) left the native path on");
  float v[64];
  uint16_t a[64 + 8], b[64 + 8];
  rng r = rng_for(7, 0, 0);
  for (int i = 0; i < 64; i++) v[i] = (float)rng_normal(&r);
  v[3] = 0x1.8p-127f;  /* subnormal: the C path rounds it to a nonzero bf16 */
  bf16_from_floats(v, a, 64);
  bf16_from_floats_c(v, b, 64);
  CHECKF(!memcmp(a, b, 64 * 2), "forced C path differs from the C rule");
  CHECKF(a[3] != 0, "forced C path flushed a subnormal");
  bf16_force_c(0);
  /* Every tail length, with guards after it untouched. */
  for (size_t n = 0; n <= 40; n++) {
    memset(a, 0xab, sizeof a);
    bf16_from_floats(v + 5, a, n);
    bf16_from_floats_c(v + 5, b, n);
    for (size_t i = 0; i < n; i++)
      CHECKF(a[i] == b[i] || is_subnormal(v[5 + i]), "n=%zu: element %zu %04x vs %04x", n, i, a[i], b[i]);
    for (size_t i = n; i < n + 8; i++) CHECKF(a[i] == 0xabab, "n=%zu: wrote past the end (%zu)", n, i);
  }
}

/* The bf16-writing kernels give the same bits on both paths for data
 * without subnormals. */
TEST(kernels_same_on_both_paths) {
  enum { N = 2, H = 9, W = 7, C = 300, LD = 310 };  /* C > one conversion chunk: two chunks and a tail */
  static float x[N * H * W * LD], dy[N * H * W * C], g[C], b[C], m[C], is[C], sc[C], sh[C];
  static uint16_t y0[N * H * W * C], y1[N * H * W * C];
  rng r = rng_for(8, 0, 0);
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)rng_normal(&r);
  for (size_t i = 0; i < sizeof dy / sizeof dy[0]; i++) dy[i] = (float)rng_normal(&r);
  double sums[2 * C];
  for (int c = 0; c < C; c++) {
    g[c] = 1 + 0.1f * (float)rng_normal(&r), b[c] = 0.1f * (float)rng_normal(&r);
    m[c] = 0.1f * (float)rng_normal(&r), is[c] = 1.1f;
    sc[c] = g[c] * is[c], sh[c] = b[c] - m[c] * sc[c];
    sums[c] = rng_normal(&r), sums[C + c] = rng_normal(&r);
  }
  view xv = {x, N, H, W, C, LD, 0}, dv = view_make(dy, N, H, W, C);
  for (int relu = 0; relu < 2; relu++) {
    bf16_force_c(0);
    cpu_bn_forward_affine_bf16(xv, sc, sh, relu, y0);
    bf16_force_c(1);
    cpu_bn_forward_affine_bf16(xv, sc, sh, relu, y1);
    CHECKF(!memcmp(y0, y1, sizeof y0), "affine bf16 (relu %d) differs between the paths", relu);
    bf16_force_c(0);
    cpu_bn_backward_dx_dense(xv, dv, g, b, m, is, relu, sums, 100.0, y0, 1);
    bf16_force_c(1);
    cpu_bn_backward_dx_dense(xv, dv, g, b, m, is, relu, sums, 100.0, y1, 1);
    CHECKF(!memcmp(y0, y1, sizeof y0), "dx dense bf16 (relu %d) differs between the paths", relu);
  }
  bf16_force_c(0);
}

TEST_MAIN()
