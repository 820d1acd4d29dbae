/* Kernel-level timing of the batch-norm passes that run between oneDNN's
 * convolutions (src/engine/kernels_cpu.c), on DenseNet-169 shapes, each the
 * minimum over repeats so that a busy machine disturbs it less than a whole
 * training step. Prints one line per kernel: milliseconds (min, median) and
 * the bytes it must move per second at the minimum.
 *
 * usage: build/bench_kernels [--rows R] [--c C] [--ld LD] [--reps K] [--threads T] [--c-path]
 *   defaults: 51200 rows (batch 8 at 80x80, block 1 of densenet169 at 320 px),
 *   a 192-channel prefix of a 256-channel block buffer, 15 repeats, 2 threads;
 *   --c-path forces the plain-C bf16 conversion (bf16_force_c). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/rng.h"
#include "engine/bf16_cpu.h"
#include "engine/kernels_cpu.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define MAX_REPS 200
typedef struct bench {
  view x, dy, dy16, dxv;
  float *gamma, *beta, *mean, *invstd, *scale, *shift, *dense;
  uint16_t *out16;
  double sums[2 * 4096];
} bench;

enum { K_AFFINE_F32, K_AFFINE_BF16, K_SUM, K_SQDEV, K_BWD_STATS, K_BWD_STATS_DY16, K_DX_ACC, K_DX_ACC_DY16,
       K_DX_BF16, K_COUNT };
static const char *const kname[K_COUNT] = {
    "affine f32 (view -> dense f32)", "affine bf16 (view -> dense bf16)", "stats: sum", "stats: squared deviations",
    "backward sums (dy f32)", "backward sums (dy bf16)", "backward dx += (dy f32)", "backward dx += (dy bf16)",
    "backward dx -> dense bf16 (dy f32)"};

/* Bytes a pass must move, per element: reads, and writes (a store also reads
 * its line first unless streamed; not counted). */
static const double kbytes[K_COUNT] = {8, 6, 4, 4, 8, 6, 12, 10, 10};

static int run_kernel(bench *b, int k) {
  switch (k) {
    case K_AFFINE_F32:
      cpu_bn_forward_affine(b->x, b->scale, b->shift, 1, view_make(b->dense, b->x.n, b->x.h, b->x.w, b->x.c));
      return 0;
    case K_AFFINE_BF16: cpu_bn_forward_affine_bf16(b->x, b->scale, b->shift, 1, b->out16); return 0;
    case K_SUM: return cpu_bn_stats(b->x, NULL, b->sums);
    case K_SQDEV: return cpu_bn_stats(b->x, b->mean, b->sums);
    case K_BWD_STATS:
      return cpu_bn_backward_stats(b->x, b->dy, b->gamma, b->beta, b->mean, b->invstd, 1, b->sums);
    case K_BWD_STATS_DY16:
      return cpu_bn_backward_stats(b->x, b->dy16, b->gamma, b->beta, b->mean, b->invstd, 1, b->sums);
    case K_DX_ACC:
      cpu_bn_backward_dx(b->x, b->dy, b->gamma, b->beta, b->mean, b->invstd, 1, b->sums, 1e4, b->dxv);
      return 0;
    case K_DX_ACC_DY16:
      cpu_bn_backward_dx(b->x, b->dy16, b->gamma, b->beta, b->mean, b->invstd, 1, b->sums, 1e4, b->dxv);
      return 0;
    case K_DX_BF16:
      cpu_bn_backward_dx_dense(b->x, b->dy, b->gamma, b->beta, b->mean, b->invstd, 1, b->sums, 1e4, b->out16, 1);
      return 0;
  }
  return 0;
}

int main(int argc, char **argv) {
  long rows = 51200;
  int c = 192, ld = 256, reps = 15, threads = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--c-path")) {
      bf16_force_c(1);
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_kernels: %s needs a value\n", a);
      return 2;
    }
    long v = strtol(argv[++i], NULL, 10);
    if (!strcmp(a, "--rows")) rows = v;
    else if (!strcmp(a, "--c")) c = (int)v;
    else if (!strcmp(a, "--ld")) ld = (int)v;
    else if (!strcmp(a, "--reps")) reps = (int)v;
    else if (!strcmp(a, "--threads")) threads = (int)v;
    else {
      fprintf(stderr, "bench_kernels: unknown option %s\n", a);
      return 2;
    }
  }
  if (rows <= 0 || c <= 0 || c > 4096 || ld < c || reps <= 0 || reps > MAX_REPS || threads <= 0) {
    fprintf(stderr, "bench_kernels: need rows > 0, 0 < c <= 4096, ld >= c, 0 < reps <= %d, threads > 0\n", MAX_REPS);
    return 2;
  }
  omp_set_num_threads(threads);
  size_t nx = (size_t)rows * ld, nd = (size_t)rows * c;
  bench *b = calloc(1, sizeof *b);
  float *xbuf = malloc(nx * sizeof(float)), *dybuf = malloc(nd * sizeof(float)), *dxbuf = malloc(nx * sizeof(float));
  uint16_t *dy16 = malloc(nd * sizeof(uint16_t));
  b->dense = malloc(nd * sizeof(float));
  b->out16 = malloc(nd * sizeof(uint16_t));
  float *par = malloc(6 * (size_t)c * sizeof(float));
  if (!b || !xbuf || !dybuf || !dxbuf || !dy16 || !b->dense || !b->out16 || !par) {
    fprintf(stderr, "bench_kernels: out of memory\n");
    return 1;
  }
  rng r = rng_for(1, 0, 0);
  for (size_t i = 0; i < nx; i++) xbuf[i] = (float)rng_normal(&r), dxbuf[i] = 0;
  for (size_t i = 0; i < nd; i++) dybuf[i] = (float)rng_normal(&r) * 1e-3f;
  bf16_from_floats_c(dybuf, dy16, nd);
  b->gamma = par, b->beta = par + c, b->mean = par + 2 * c, b->invstd = par + 3 * c;
  b->scale = par + 4 * c, b->shift = par + 5 * c;
  for (int ch = 0; ch < c; ch++) {
    b->gamma[ch] = 1.0f + 0.1f * (float)rng_normal(&r);
    b->beta[ch] = 0.1f * (float)rng_normal(&r);
    b->mean[ch] = 0.05f * (float)rng_normal(&r);
    b->invstd[ch] = 1.0f;
    b->scale[ch] = b->gamma[ch] * b->invstd[ch];
    b->shift[ch] = b->beta[ch] - b->mean[ch] * b->scale[ch];
  }
  for (int k = 0; k < 2 * c; k++) b->sums[k] = 1.0;
  b->x = (view){xbuf, 1, 1, (int)rows, c, ld, 0};
  b->dy = view_make(dybuf, 1, 1, (int)rows, c);
  b->dy16 = view_bf16(dy16, 1, 1, (int)rows, c);
  b->dxv = (view){dxbuf, 1, 1, (int)rows, c, ld, 0};
  printf("%ld rows x %d channels (ld %d), %d threads, bf16 conversion: %s; min and median of %d repeats\n", rows, c,
         ld, threads, bf16_native() ? "vcvtneps2bf16" : "C", reps);
  for (int k = 0; k < K_COUNT; k++) {
    double t[MAX_REPS];
    if (run_kernel(b, k)) {
      fprintf(stderr, "bench_kernels: %s failed (out of memory)\n", kname[k]);
      return 1;
    }
    for (int i = 0; i < reps; i++) {
      double t0 = now_ms();
      run_kernel(b, k);
      t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_d);
    printf("%-38s %8.3f ms (median %8.3f)  %6.1f GB/s\n", kname[k], t[0], t[reps / 2],
           kbytes[k] * (double)nd / (t[0] * 1e6));
  }
  free(xbuf), free(dybuf), free(dxbuf), free(dy16), free(b->dense), free(b->out16), free(par), free(b);
  cpu_scratch_release();
  return 0;
}
