/* C/OpenMP kernels for the memory-bound ops (see kernels_cpu.h). Rows are
 * pixels: in an NHWC view, pixel r (over n, h, w) starts at p + r * ld. */
#include "engine/kernels_cpu.h"
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "engine/bf16_cpu.h"

static inline size_t rows_of(view v) { return (size_t)v.n * v.h * v.w; }

/* Per-thread double accumulators [threads][c], reused across calls by the
 * calling thread (no allocation in steady state). A thread-specific key frees
 * them when that thread ends (a server's worker threads come and go), and
 * cpu_scratch_release frees the calling thread's at once (engine_destroy). */
typedef struct acc_scratch {
  double *buf;
  size_t cap;
} acc_scratch;

static pthread_key_t acc_key;
static pthread_once_t acc_once = PTHREAD_ONCE_INIT;
static int acc_key_ok;

static void acc_free(void *p) {
  acc_scratch *s = p;
  free(s->buf);
  free(s);
}

static void acc_key_create(void) { acc_key_ok = pthread_key_create(&acc_key, acc_free) == 0; }

void cpu_scratch_release(void) {
  pthread_once(&acc_once, acc_key_create);  /* acc_key_ok is published by pthread_once */
  if (!acc_key_ok) return;
  acc_scratch *s = pthread_getspecific(acc_key);
  if (!s) return;
  (void)pthread_setspecific(acc_key, NULL);
  acc_free(s);
}

/* NULL when the scratch cannot be allocated. */
static double *acc_get(size_t count) {
  pthread_once(&acc_once, acc_key_create);
  if (!acc_key_ok) return NULL;
  acc_scratch *s = pthread_getspecific(acc_key);
  if (!s) {
    if (!(s = calloc(1, sizeof *s))) return NULL;
    if (pthread_setspecific(acc_key, s) != 0) {
      free(s);
      return NULL;
    }
  }
  if (count > s->cap) {
    free(s->buf);
    s->buf = count <= SIZE_MAX / sizeof *s->buf ? malloc(count * sizeof *s->buf) : NULL;
    s->cap = s->buf ? count : 0;
  }
  return s->buf;
}

/* Sums f(row) over rows per channel into out[c] in a fixed order: each
 * thread owns a contiguous block of rows (static schedule) and sums them in
 * float over runs of ACC_BLOCK_ROWS rows, adding each run's sums to its
 * double accumulators; the threads' sums are then added in thread order.
 * MSKX_ENOMEM if scratch could not be allocated.
 *
 * Why float runs: accumulating every element in double halves the vector
 * width and adds two conversions per vector, which made these passes
 * compute-bound (perf: acc_bn_grad 8.6% of a bf16 training step).
 * Error: a recursive float sum of k terms t_i errs by at most (k-1) u
 * sum |t_i| (u = 2^-24; Higham, Accuracy and Stability of Numerical
 * Algorithms, 4.2), so each run of B = ACC_BLOCK_ROWS rows adds at most
 * (B-1) u = 1.8e-6 of its terms' magnitudes, and the double additions of
 * the runs' sums add about (rows/B) 2^-53 more: the whole reduction errs by
 * at most about 31 u sum |t_i|, whatever the row count. For the squared
 * deviations (all terms positive, each with 3u more: u from the float
 * subtract, doubled by the square, and u from the square's rounding) that
 * is a relative error of the variance of at most about 34 u = 2.0e-6 (the
 * bound test_ops_syncbn holds the kernels to); for the
 * backward sums (sum g, sum g*xhat, which cancel) it is relative to sum |t|,
 * as for any float reduction. PyTorch's CPU batch norm accumulates in float
 * too; tests/engine (against the reference engine, which sums in double)
 * and tests/models (against PyTorch) hold these kernels to that. */
#define ACC_BLOCK_ROWS 32
typedef void (*row_acc_fn)(const void *ctx, size_t r, float *acc);

static int reduce_rows(size_t rows, int c, row_acc_fn f, const void *ctx, double *out) {
  /* c is the number of accumulators per row (channels, or 2x for pairs). */
  int nt = omp_get_max_threads();
  double *part = acc_get((size_t)nt * (size_t)c);
  if (!part) return MSKX_ENOMEM;
  memset(part, 0, (size_t)nt * (size_t)c * sizeof *part);
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    size_t lo = rows * (size_t)t / (size_t)T, hi = rows * (size_t)(t + 1) / (size_t)T;
    double *restrict acc = part + (size_t)t * (size_t)c;
    float run[c];
    for (size_t r0 = lo; r0 < hi; r0 += ACC_BLOCK_ROWS) {
      size_t r1 = hi - r0 < ACC_BLOCK_ROWS ? hi : r0 + ACC_BLOCK_ROWS;
      memset(run, 0, sizeof run);
      for (size_t r = r0; r < r1; r++) f(ctx, r, run);
      for (int ch = 0; ch < c; ch++) acc[ch] += run[ch];
    }
  }
  for (int ch = 0; ch < c; ch++) out[ch] = 0;
  for (int t = 0; t < nt; t++)
    for (int ch = 0; ch < c; ch++) out[ch] += part[(size_t)t * (size_t)c + ch];
  return MSKX_OK;
}

/* ---- linear (the classifier head: tiny, so plain loops) ---- */

struct linear_op {
  int n, in, out;
};

int cpu_linear_create(engine *eng, int n, int in, int out, linear_op **op, mskx_err *e) {
  (void)eng;
  *op = NULL;
  if (n <= 0 || in <= 0 || out <= 0) return err_set(e, MSKX_EINVAL, "linear: invalid shape");
  linear_op *l = malloc(sizeof *l);
  if (!l) return err_set(e, MSKX_ENOMEM, "linear: out of memory");
  *l = (linear_op){n, in, out};
  *op = l;
  return MSKX_OK;
}

void cpu_linear_destroy(linear_op *op) { free(op); }

int cpu_linear_forward(linear_op *op, const float *x, const float *w, const float *b, float *y, mskx_err *e) {
  (void)e;
  for (int i = 0; i < op->n; i++)
    for (int o = 0; o < op->out; o++) {
      const float *xi = x + (size_t)i * op->in, *wo = w + (size_t)o * op->in;
      double s = b ? b[o] : 0.0;
      for (int k = 0; k < op->in; k++) s += (double)xi[k] * wo[k];
      y[(size_t)i * op->out + o] = (float)s;
    }
  return MSKX_OK;
}

int cpu_linear_backward(linear_op *op, const float *x, const float *dy, const float *w, float *dx, float *dw,
                        float *db, mskx_err *e) {
  (void)e;
  int n = op->n, in = op->in, out = op->out;
  if (dx)
    for (int i = 0; i < n; i++)
      for (int k = 0; k < in; k++) {
        double s = 0;
        for (int o = 0; o < out; o++) s += (double)dy[(size_t)i * out + o] * w[(size_t)o * in + k];
        dx[(size_t)i * in + k] = (float)s;
      }
  for (int o = 0; o < out; o++) {
    double sb = 0;
    for (int i = 0; i < n; i++) sb += dy[(size_t)i * out + o];
    if (db) db[o] = (float)sb;
    for (int k = 0; k < in; k++) {
      double s = 0;
      for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * out + o] * x[(size_t)i * in + k];
      dw[(size_t)o * in + k] = (float)s;
    }
  }
  return MSKX_OK;
}

/* ---- batch norm ---- */

typedef struct bn_ctx {
  view x, dy;
  const float *mean;     /* shift for the second pass */
  const float *scale, *shift;
  int relu;
} bn_ctx;

static void acc_sum(const void *vc, size_t r, float *restrict acc) {
  const bn_ctx *k = vc;
  const float *restrict xr = k->x.p + r * (size_t)k->x.ld;
  int c = k->x.c;
  for (int ch = 0; ch < c; ch++) acc[ch] += xr[ch];
}

static void acc_sqdev(const void *vc, size_t r, float *restrict acc) {
  const bn_ctx *k = vc;
  const float *restrict xr = k->x.p + r * (size_t)k->x.ld, *restrict mean = k->mean;
  int c = k->x.c;
  for (int ch = 0; ch < c; ch++) {
    float d = xr[ch] - mean[ch];
    acc[ch] += d * d;
  }
}

/* y = max?(x * scale + shift), row-parallel. */
static void affine_rows(view x, view y, const float *scale, const float *shift, int relu) {
  size_t rows = rows_of(x);
  int c = x.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x.p + r * (size_t)x.ld;
    float *yr = y.p + r * (size_t)y.ld;
    if (relu)
      for (int ch = 0; ch < c; ch++) {
        float v = xr[ch] * scale[ch] + shift[ch];
        yr[ch] = v > 0.f ? v : 0.f;
      }
    else
      for (int ch = 0; ch < c; ch++) yr[ch] = xr[ch] * scale[ch] + shift[ch];
  }
}

int cpu_bn_forward_train(view x, const float *gamma, const float *beta, float eps, int relu, view y, float *mean,
                         float *invstd, float *var_unbiased) {
  int c = x.c;
  size_t m = rows_of(x);
  double sum[c], sq[c];
  float scale[c], shift[c];
  int rc = cpu_bn_stats(x, NULL, sum);
  if (rc) return rc;
  for (int ch = 0; ch < c; ch++) mean[ch] = (float)(sum[ch] / (double)m);
  if ((rc = cpu_bn_stats(x, mean, sq))) return rc;
  for (int ch = 0; ch < c; ch++) {
    double var = sq[ch] / (double)m;
    invstd[ch] = (float)(1.0 / sqrt(var + eps));
    var_unbiased[ch] = (float)(m > 1 ? var * (double)m / (double)(m - 1) : var);
    scale[ch] = gamma[ch] * invstd[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
  }
  affine_rows(x, y, scale, shift, relu);
  return MSKX_OK;
}

void cpu_bn_forward_affine(view x, const float *scale, const float *shift, int relu, view y) {
  affine_rows(x, y, scale, shift, relu);
}

/* The bf16-writing kernels compute a row in chunks of floats on the stack
 * (vectorised by the compiler for any target) and convert each chunk with
 * bf16_from_floats, vcvtneps2bf16 where the CPU has it: the C rounding rule
 * costs about a dozen integer operations per value, more than the rest of
 * the pass (perf: cpu_bn_forward_affine_bf16 was slower than the fp32
 * affine pass writing twice the bytes). A chunk stays in L1. */
#define BF16_CHUNK 256

void cpu_bn_forward_affine_bf16(view x, const float *scale, const float *shift, int relu, uint16_t *y) {
  size_t rows = rows_of(x);
  int c = x.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *restrict xr = x.p + r * (size_t)x.ld;
    uint16_t *yr = y + r * (size_t)c;
    float v[BF16_CHUNK];
    for (int c0 = 0; c0 < c; c0 += BF16_CHUNK) {
      int len = c - c0 < BF16_CHUNK ? c - c0 : BF16_CHUNK;
      const float *restrict xs = xr + c0, *restrict sc = scale + c0, *restrict sh = shift + c0;
      if (relu)
        for (int i = 0; i < len; i++) {
          float t = xs[i] * sc[i] + sh[i];
          v[i] = t <= 0.f ? 0.f : t;
        }
      else
        for (int i = 0; i < len; i++) v[i] = xs[i] * sc[i] + sh[i];
      bf16_from_floats(v, yr + c0, (size_t)len);
    }
  }
}

void cpu_bn_forward_affine_u8(view x, const float *scale, const float *shift, uint8_t *y) {
  size_t rows = rows_of(x);
  int c = x.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *restrict xr = x.p + r * (size_t)x.ld;
    uint8_t *restrict yr = y + r * (size_t)c;
    for (int ch = 0; ch < c; ch++) {
      /* Clamped first, so the conversion is in range; +0.5 and truncation is
       * round half up on the non-negative values (vectorises, unlike lrintf). */
      float v = xr[ch] * scale[ch] + shift[ch];
      v = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
      yr[ch] = (uint8_t)(int)(v + 0.5f);
    }
  }
}

void cpu_bn_forward_infer(view x, const float *gamma, const float *beta, const float *rmean, const float *rvar,
                          float eps, int relu, view y) {
  int c = x.c;
  float scale[c], shift[c];
  for (int ch = 0; ch < c; ch++) {
    scale[ch] = (float)(gamma[ch] / sqrt((double)rvar[ch] + eps));
    shift[ch] = beta[ch] - rmean[ch] * scale[ch];
  }
  affine_rows(x, y, scale, shift, relu);
}

/* Accumulates, per channel, sum(g) in acc[0..c) and sum(g * xhat) in
 * acc[c..2c), where g is dy masked by the ReLU recomputed exactly as the
 * forward computed it. The loop lives in a function of its own whose
 * pointers are restrict parameters: restrict locals were not enough for GCC
 * 12 with -fopenmp (it wanted more run-time alias checks than it allows and
 * left the loop scalar), and unconditional loads and -fno-trapping-math
 * (CMakeLists.txt) let it vectorise the select; this is the hottest loop
 * of a training step (perf: 44% of samples while it ran scalar). */
static void bn_grad_row(int c, int relu, const float *restrict xr, const float *restrict gr,
                        const float *restrict mean, const float *restrict invstd, const float *restrict scale,
                        const float *restrict shift, float *restrict sg, float *restrict sgx) {
  if (relu) {
    for (int ch = 0; ch < c; ch++) {
      float gv = gr[ch], y = xr[ch] * scale[ch] + shift[ch];
      float g = y <= 0.f ? 0.f : gv;
      float xhat = (xr[ch] - mean[ch]) * invstd[ch];
      sg[ch] += g;
      sgx[ch] += g * xhat;
    }
  } else {
    for (int ch = 0; ch < c; ch++) {
      float g = gr[ch];
      float xhat = (xr[ch] - mean[ch]) * invstd[ch];
      sg[ch] += g;
      sgx[ch] += g * xhat;
    }
  }
}

/* Row r of an output gradient as floats: in place, or a bf16 row (a bf16
 * convolution's input gradient, dsrc_bf16) widened into tmp[dy.c]. */
static inline const float *dy_row(view dy, size_t r, float *tmp) {
  if (!dy.bf16) return dy.p + r * (size_t)dy.ld;
  bf16_to_floats((const uint16_t *)(const void *)dy.p + r * (size_t)dy.ld, tmp, (size_t)dy.c);
  return tmp;
}

static void acc_bn_grad(const void *vc, size_t r, float *acc) {
  const bn_ctx *k = vc;
  int c = k->x.c;
  float tmp[k->dy.bf16 ? c : 1];
  bn_grad_row(c, k->relu, k->x.p + r * (size_t)k->x.ld, dy_row(k->dy, r, tmp), k->mean, k->mean + c, k->scale,
              k->shift, acc, acc + c);
}

int cpu_bn_stats(view x, const float *mean, double *out) {
  bn_ctx k = {.x = x, .mean = mean};
  return reduce_rows(rows_of(x), x.c, mean ? acc_sqdev : acc_sum, &k, out);
}

int cpu_bn_backward_stats(view x, view dy, const float *gamma, const float *beta, const float *mean,
                          const float *invstd, int relu, double *sums) {
  int c = x.c;
  float scale[c], shift[c], stats[2 * c];
  for (int ch = 0; ch < c; ch++) {
    scale[ch] = gamma[ch] * invstd[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
    stats[ch] = mean[ch];
    stats[c + ch] = invstd[ch];
  }
  bn_ctx k = {.x = x, .dy = dy, .mean = stats, .scale = scale, .shift = shift, .relu = relu};
  return reduce_rows(rows_of(x), 2 * c, acc_bn_grad, &k, sums);
}

/* dx (+)= gamma*invstd * (g - mean(g) - xhat * mean(g*xhat)) into a view
 * (accumulated) or a dense buffer (overwritten, f32 or bf16). The three
 * stores are separate loops so that GCC vectorises each. */
typedef enum { DX_ACCUMULATE, DX_DENSE_F32, DX_DENSE_BF16 } dx_mode;

static void bn_backward_dx_rows(view x, view dy, const float *gamma, const float *beta, const float *mean,
                                const float *invstd, int relu, const double *sums, double count, dx_mode mode,
                                float *dxp, size_t ld) {
  int c = x.c;
  size_t m = rows_of(x);
  float scale[c], shift[c], bcoef[c], ccoef[c];
  for (int ch = 0; ch < c; ch++) {
    scale[ch] = gamma[ch] * invstd[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
    bcoef[ch] = (float)(sums[ch] / count);
    ccoef[ch] = (float)(sums[c + ch] / count);
  }
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < m; r++) {
    float tmp[dy.bf16 ? c : 1];
    const float *restrict xr = x.p + r * (size_t)x.ld, *restrict gr = dy_row(dy, r, tmp);
    /* The select on an unconditional load keeps each loop vectorised. */
#define BN_DX(ch)                                                                              \
  float gv = gr[ch], y = xr[ch] * scale[ch] + shift[ch];                                      \
  float g = relu && y <= 0.f ? 0.f : gv;                                                      \
  float dv = scale[ch] * (g - bcoef[ch] - (xr[ch] - mean[ch]) * invstd[ch] * ccoef[ch])
    if (mode == DX_ACCUMULATE) {
      float *restrict dr = dxp + r * ld;
      for (int ch = 0; ch < c; ch++) {
        BN_DX(ch);
        dr[ch] += dv;
      }
    } else if (mode == DX_DENSE_F32) {
      float *restrict dr = dxp + r * (size_t)c;
      for (int ch = 0; ch < c; ch++) {
        BN_DX(ch);
        dr[ch] = dv;
      }
    } else {
      uint16_t *dr = (uint16_t *)dxp + r * (size_t)c;
      float v[BF16_CHUNK];
      for (int c0 = 0; c0 < c; c0 += BF16_CHUNK) {
        int len = c - c0 < BF16_CHUNK ? c - c0 : BF16_CHUNK;
        for (int ch = c0; ch < c0 + len; ch++) {
          BN_DX(ch);
          v[ch - c0] = dv;
        }
        bf16_from_floats(v, dr + c0, (size_t)len);
      }
    }
#undef BN_DX
  }
}

void cpu_bn_backward_dx(view x, view dy, const float *gamma, const float *beta, const float *mean,
                        const float *invstd, int relu, const double *sums, double count, view dx) {
  bn_backward_dx_rows(x, dy, gamma, beta, mean, invstd, relu, sums, count, DX_ACCUMULATE, dx.p, (size_t)dx.ld);
}

void cpu_bn_backward_dx_dense(view x, view dy, const float *gamma, const float *beta, const float *mean,
                              const float *invstd, int relu, const double *sums, double count, void *dx, int bf16) {
  bn_backward_dx_rows(x, dy, gamma, beta, mean, invstd, relu, sums, count, bf16 ? DX_DENSE_BF16 : DX_DENSE_F32,
                      dx, 0);
}

int cpu_bn_backward(view x, view dy, const float *gamma, const float *beta, const float *mean, const float *invstd,
                    int relu, view dx, float *dgamma, float *dbeta) {
  int c = x.c;
  double sums[2 * c];
  int rc = cpu_bn_backward_stats(x, dy, gamma, beta, mean, invstd, relu, sums);
  if (rc) return rc;
  for (int ch = 0; ch < c; ch++) {
    dbeta[ch] = (float)sums[ch];
    dgamma[ch] = (float)sums[c + ch];
  }
  cpu_bn_backward_dx(x, dy, gamma, beta, mean, invstd, relu, sums, (double)rows_of(x), dx);
  return MSKX_OK;
}

/* ---- elementwise ---- */

void cpu_add_relu_forward(view a, view b, view y) {
  size_t rows = rows_of(a);
  int c = a.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *ar = a.p + r * (size_t)a.ld, *br = b.p + r * (size_t)b.ld;
    float *yr = y.p + r * (size_t)y.ld;
    for (int ch = 0; ch < c; ch++) {
      float v = ar[ch] + br[ch];
      yr[ch] = v > 0.f ? v : 0.f;
    }
  }
}

void cpu_add_relu_backward(view y, view dy, view da, view db) {
  size_t rows = rows_of(y);
  int c = y.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *yr = y.p + r * (size_t)y.ld, *gr = dy.p + r * (size_t)dy.ld;
    float *ar = da.p + r * (size_t)da.ld;
    float *br = db.p ? db.p + r * (size_t)db.ld : NULL;
    for (int ch = 0; ch < c; ch++) {
      float g = yr[ch] > 0.f ? gr[ch] : 0.f;
      ar[ch] = g;
      if (br) br[ch] = g;
    }
  }
}

void cpu_relu_forward(view x, view y) {
  size_t rows = rows_of(x);
  int c = x.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x.p + r * (size_t)x.ld;
    float *yr = y.p + r * (size_t)y.ld;
    for (int ch = 0; ch < c; ch++) yr[ch] = xr[ch] > 0.f ? xr[ch] : 0.f;
  }
}

void cpu_copy(view src, view dst) {
  size_t rows = rows_of(src);
  size_t bytes = (size_t)src.c * sizeof(float);
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) memcpy(dst.p + r * (size_t)dst.ld, src.p + r * (size_t)src.ld, bytes);
}

void cpu_accumulate(view src, view dst) {
  size_t rows = rows_of(src);
  int c = src.c;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    const float *s = src.p + r * (size_t)src.ld;
    float *d = dst.p + r * (size_t)dst.ld;
    for (int ch = 0; ch < c; ch++) d[ch] += s[ch];
  }
}

/* ---- pooling ---- */

/* Output pixel (n, oy, ox) of a pool_desc, parallel over n*oh rows. The
 * argmax convention: per output element, the input spatial index iy*w+ix of
 * the first maximum in row-major window order (PyTorch's). */
void cpu_maxpool_forward(const pool_desc *d, view x, view y, int32_t *argmax) {
  int oh = y.h, ow = y.w, c = x.c;
#pragma omp parallel for schedule(static)
  for (int row = 0; row < d->n * oh; row++) {
    int n = row / oh, oy = row % oh;
    for (int ox = 0; ox < ow; ox++) {
      float *yr = y.p + ((size_t)(n * oh + oy) * ow + ox) * y.ld;
      int32_t *ar = argmax + ((size_t)(n * oh + oy) * ow + ox) * c;
      for (int ch = 0; ch < c; ch++) {
        yr[ch] = -INFINITY;
        ar[ch] = -1;
      }
      for (int ky = 0; ky < d->k; ky++) {
        int iy = oy * d->s - d->p + ky;
        if (iy < 0 || iy >= x.h) continue;
        for (int kx = 0; kx < d->k; kx++) {
          int ix = ox * d->s - d->p + kx;
          if (ix < 0 || ix >= x.w) continue;
          const float *xr = x.p + ((size_t)(n * x.h + iy) * x.w + ix) * x.ld;
          int32_t idx = iy * x.w + ix;
          for (int ch = 0; ch < c; ch++)
            if (xr[ch] > yr[ch] || ar[ch] < 0) {
              yr[ch] = xr[ch];
              ar[ch] = idx;
            }
        }
      }
    }
  }
}

void cpu_maxpool_backward(const pool_desc *d, view dy, const int32_t *argmax, view dx) {
  int oh = dy.h, ow = dy.w, c = dy.c;
  /* Parallel over images: windows of one image overlap, images do not. */
#pragma omp parallel for schedule(static)
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        size_t o = (size_t)(n * oh + oy) * ow + ox;
        const float *gr = dy.p + o * dy.ld;
        const int32_t *ar = argmax + o * c;
        for (int ch = 0; ch < c; ch++)
          if (ar[ch] >= 0) dx.p[((size_t)n * dx.h * dx.w + (size_t)ar[ch]) * dx.ld + ch] += gr[ch];
      }
}

void cpu_avgpool_forward(const pool_desc *d, view x, view y) {
  int oh = y.h, ow = y.w, c = x.c;
  float inv = 1.0f / (float)(d->k * d->k);
#pragma omp parallel for schedule(static)
  for (int row = 0; row < d->n * oh; row++) {
    int n = row / oh, oy = row % oh;
    float acc[c];
    for (int ox = 0; ox < ow; ox++) {
      for (int ch = 0; ch < c; ch++) acc[ch] = 0.f;
      for (int ky = 0; ky < d->k; ky++) {
        int iy = oy * d->s - d->p + ky;
        if (iy < 0 || iy >= x.h) continue;
        for (int kx = 0; kx < d->k; kx++) {
          int ix = ox * d->s - d->p + kx;
          if (ix < 0 || ix >= x.w) continue;
          const float *xr = x.p + ((size_t)(n * x.h + iy) * x.w + ix) * x.ld;
          for (int ch = 0; ch < c; ch++) acc[ch] += xr[ch];
        }
      }
      float *yr = y.p + ((size_t)(n * oh + oy) * ow + ox) * y.ld;
      for (int ch = 0; ch < c; ch++) yr[ch] = acc[ch] * inv;
    }
  }
}

void cpu_avgpool_backward(const pool_desc *d, view dy, view dx) {
  int oh = dy.h, ow = dy.w, c = dy.c;
  float inv = 1.0f / (float)(d->k * d->k);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *gr = dy.p + ((size_t)(n * oh + oy) * ow + ox) * dy.ld;
        for (int ky = 0; ky < d->k; ky++) {
          int iy = oy * d->s - d->p + ky;
          if (iy < 0 || iy >= dx.h) continue;
          for (int kx = 0; kx < d->k; kx++) {
            int ix = ox * d->s - d->p + kx;
            if (ix < 0 || ix >= dx.w) continue;
            float *xr = dx.p + ((size_t)(n * dx.h + iy) * dx.w + ix) * dx.ld;
            for (int ch = 0; ch < c; ch++) xr[ch] += gr[ch] * inv;
          }
        }
      }
}

void cpu_gap_forward(view x, float *y) {
  int c = x.c;
  size_t hw = (size_t)x.h * x.w;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < x.n; n++) {
    double acc[c];
    for (int ch = 0; ch < c; ch++) acc[ch] = 0;
    for (size_t p = 0; p < hw; p++) {
      const float *xr = x.p + ((size_t)n * hw + p) * x.ld;
      for (int ch = 0; ch < c; ch++) acc[ch] += xr[ch];
    }
    for (int ch = 0; ch < c; ch++) y[(size_t)n * c + ch] = (float)(acc[ch] / (double)hw);
  }
}

void cpu_gap_backward(const float *dy, view dx) {
  int c = dx.c;
  size_t hw = (size_t)dx.h * dx.w;
  float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < (size_t)dx.n * hw; r++) {
    const float *g = dy + (r / hw) * (size_t)c;
    float *xr = dx.p + r * (size_t)dx.ld;
    for (int ch = 0; ch < c; ch++) xr[ch] += g[ch] * inv;
  }
}

/* ---- loss ---- */

double cpu_bce_logits(const float *z, const float *t, const float *w, int n, float *dz) {
  double total = 0;
  for (int i = 0; i < n; i++) {
    double zi = z[i], ti = t[i], wi = w ? w[i] : 1.0;
    double l = (zi > 0 ? zi : 0) - zi * ti + log1p(exp(-fabs(zi)));
    total += wi * l;
    if (dz) dz[i] = (float)(wi * (1.0 / (1.0 + exp(-zi)) - ti) / n);
  }
  return n > 0 ? total / n : NAN;
}
