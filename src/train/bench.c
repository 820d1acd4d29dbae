/* Timing of inference batches and training steps on random data (see bench.h).
 * The training step is the one the trainer runs: forward, BCE-with-logits
 * loss, backward, Adam update; the same work bench/torch_bench.py times. */
#include "train/bench.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "infer/quantize.h"
#include "models/model_file.h"
#include "models/net.h"
#include "train/optim.h"

double bench_peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return 0;
  return (double)ru.ru_maxrss / 1024.0;   /* KiB on Linux */
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_bufs {
  float *x, *t, *logits, *dz;
  optimizer *opt;   /* torch.optim.Adam's defaults, as bench/torch_bench.py */
} bench_bufs;

static int alloc_bufs(const bench_config *c, const net *m, bench_bufs *b, mskx_err *e) {
  size_t nx = (size_t)c->batch * c->size * c->size * 3;
  b->x = malloc(nx * sizeof(float));
  b->t = malloc((size_t)c->batch * sizeof(float));
  b->logits = malloc((size_t)c->batch * sizeof(float));
  b->dz = malloc((size_t)c->batch * sizeof(float));
  if (!b->x || !b->t || !b->logits || !b->dz)
    return err_set(e, MSKX_ENOMEM, "bench: out of memory for a batch of %d at %dx%d", c->batch, c->size, c->size);
  if (c->train) {
    optim_config oc;
    int rc = optim_config_defaults("adam", &oc, e);
    if (!rc) rc = optim_create(&oc, m->ps.n_params, &b->opt, e);
    if (rc) return rc;
  }
  /* Inputs look like normalised images (zero mean, unit variance); targets are 0/1. */
  rng r = rng_for(c->seed, 1, 0);
  for (size_t i = 0; i < nx; i++) b->x[i] = (float)rng_normal(&r);
  for (int i = 0; i < c->batch; i++) b->t[i] = (float)rng_below(&r, 2);
  return MSKX_OK;
}

static void free_bufs(bench_bufs *b) {
  free(b->x);
  free(b->t);
  free(b->logits);
  free(b->dz);
  optim_destroy(b->opt);
}

/* One inference batch or one training step; *loss receives the step's loss. */
static int step(net *m, const bench_config *c, bench_bufs *b, double *loss, mskx_err *e) {
  int rc = net_forward(m, b->x, b->logits, e);
  if (rc || !c->train) return rc;
  *loss = net_loss(m, b->logits, b->t, NULL, c->batch, b->dz);
  if ((rc = net_backward(m, b->dz, e))) return rc;
  int threads = engine_threads_enter(m->cx.eng);  /* the optimizer's OpenMP loops */
  rc = optim_step(b->opt, &m->ps, optim_get_config(b->opt)->lr, e);
  engine_threads_leave(threads);
  return rc;
}

static int validate(const bench_config *c, mskx_err *e) {
  if (c->size < 0 || (c->size == 0 && !c->model) || c->batch <= 0)
    return err_set(e, MSKX_EINVAL, "bench: size and batch must be positive");
  if (c->int8 && c->model)
    return err_set(e, MSKX_EINVAL, "bench: int8 is what a model file is (mskx quantize makes one); "
                   "give --precision int8 with --arch only");
  if (c->int8 && c->train) return err_set(e, MSKX_EINVAL, "bench: int8 is inference-only");
  if (c->iters <= 0) return err_set(e, MSKX_EINVAL, "bench: iters must be positive");
  if (c->warmup < 0) return err_set(e, MSKX_EINVAL, "bench: warmup must not be negative");
  return MSKX_OK;
}

int bench_run(const bench_config *c, bench_result *r, mskx_err *e) {
  memset(r, 0, sizeof *r);
  r->loss_first = r->loss_last = NAN;
  int rc = validate(c, e);
  if (rc) return rc;
  engine *eng = NULL;
  net *m = NULL;
  bench_bufs b = {0};
  double *ms = malloc((size_t)c->iters * sizeof(double));
  if (!ms) return err_set(e, MSKX_ENOMEM, "bench: out of memory");
  rc = engine_dnnl_create(c->threads, &eng, e);
  bench_config cc = *c;
  if (!rc && c->model) {
    model_meta meta;
    rc = model_load(c->model, eng, &m, &meta, NULL, e);
    if (!rc && !cc.size) cc.size = meta.size;
  } else if (!rc) {
    rc = net_create(c->arch, eng, c->seed, &m, e);
  }
  if (!rc) rc = alloc_bufs(&cc, m, &b, e);
  if (!rc && c->int8) rc = quantize_net_on(m, b.x, cc.batch, cc.size, cc.size, e);
  net_prec_choice ch = {0};
  if (!rc && cc.prec == PREC_AUTO && !m->in_scale)
    rc = net_choose_precision(m, cc.batch, cc.size, cc.size, cc.train, 0, &ch, e);
  if (!rc) rc = net_plan(m, cc.batch, cc.size, cc.size, cc.train, cc.prec, e);
  if (!rc) {
    r->prec = m->cx.prec;
    snprintf(r->arch, sizeof r->arch, "%s", m->arch.name);
    r->size = cc.size;
    r->int8 = m->in_scale != NULL;
  }
  for (int i = 0; i < ch.n; i++) r->prec_ms[ch.cand[i]] = ch.ms[i];
  c = &cc;
  for (int i = 0; !rc && i < c->warmup + c->iters; i++) {
    double loss = NAN, t0 = now_seconds();
    rc = step(m, c, &b, &loss, e);
    double dt = now_seconds() - t0;
    r->ms_total += dt * 1e3;
    if (i == 0) r->loss_first = loss;
    r->loss_last = loss;
    if (i >= c->warmup) ms[i - c->warmup] = dt * 1e3;
  }
  if (!rc) {
    r->threads = eng->threads;
    double sum = 0;
    for (int i = 0; i < c->iters; i++) sum += ms[i];
    r->ms_mean = sum / c->iters;
    r->ms_median = median(ms, c->iters);
    r->ms_min = ms[0];   /* sorted by median() */
    r->images_per_s = r->ms_median > 0 ? c->batch / (r->ms_median * 1e-3) : 0;
    r->peak_rss_mb = bench_peak_rss_mb();
    if (c->prec == PREC_BF16 && !c->no_fp32_check) {
      /* After the peak is taken: one fp32 step the way auto would time it. */
      r->prec_ms[PREC_BF16] = r->ms_min;
      rc = net_choose_precision(m, c->batch, c->size, c->size, c->train, 1u << PREC_FP32, &ch, e);
      if (!rc) r->prec_ms[PREC_FP32] = ch.ms[0];
    }
  }
  free_bufs(&b);
  net_destroy(m);
  engine_destroy(eng);
  free(ms);
  return rc;
}
