/* Synchronised batch norm: the split ops (bn_stats, bn_backward_stats,
 * bn_backward_dx) of both engines against each other, the layer's sync path
 * with one process against the fused ops (bit-exact on the CPU engine), and
 * two simulated processes (threads adding their sums through a barrier, as
 * MPI_Allreduce would) against the whole batch in one process, and batch
 * norms reading statistics shared through bn_layer.shared (DenseNet's block
 * buffers) against the same layers computing their own. The threads
 * are an OpenMP team, whose threads outlive the test (the CPU kernels keep
 * per-thread scratch buffers). */
#include <omp.h>
#include <pthread.h>
#include "core/error.h"
#include "engine/ops_testutil.h"
#include "nn/layers.h"
#include "test.h"

typedef struct bncase {
  int n, h, w, c, ld, c0, relu;
} bncase;

static const bncase cases[] = {
    {4, 5, 3, 7, 7, 0, 0},
    {4, 5, 3, 7, 7, 0, 1},
    {6, 3, 6, 5, 12, 4, 1},
    {2, 8, 8, 16, 24, 3, 0},
};
#define NCASES (sizeof cases / sizeof *cases)
#define MAXC 16 /* the widest case */

/* One process's network piece: a batch-norm layer in its own store. */
typedef struct proc {
  param_store ps;
  bn_layer l;
  layer_ctx cx;
} proc;

static int proc_init(proc *p, engine *eng, int c, const float *gamma, const float *beta) {
  memset(p, 0, sizeof *p);
  mskx_err e = {0};
  if (bn_layer_declare(&p->ps, &p->l, "bn", c, &e) || ps_alloc(&p->ps, &e) || bn_layer_plan(&p->l, &e)) return -1;
  bn_layer_init(&p->ps, &p->l);
  memcpy(ps_data(&p->ps, p->l.weight), gamma, (size_t)c * sizeof(float));
  memcpy(ps_data(&p->ps, p->l.bias), beta, (size_t)c * sizeof(float));
  p->cx = (layer_ctx){.eng = eng, .ps = &p->ps, .train = 1, .prec = PREC_FP32};
  return 0;
}

static void proc_free(proc *p) {
  bn_layer_unplan(&p->l);
  ps_free(&p->ps);
}

/* Simulated all-reduce over nproc threads: sums in rank order. */
typedef struct sim {
  pthread_barrier_t bar;
  double *slot[2];
  int nproc;
} sim;
typedef struct sim_rank {
  sim *s;
  int rank;
  proc *p;
  view x, y, dy, dx;
} sim_rank;

static int sim_sum(void *ctx, double *v, int n, mskx_err *e) {
  sim_rank *r = ctx;
  sim *s = r->s;
  s->slot[r->rank] = v;
  pthread_barrier_wait(&s->bar);
  double *tmp = malloc((size_t)n * sizeof *tmp);
  for (int i = 0; tmp && i < n; i++) {
    tmp[i] = 0;
    for (int k = 0; k < s->nproc; k++) tmp[i] += s->slot[k][i];
  }
  pthread_barrier_wait(&s->bar);  /* everyone has read before anyone overwrites */
  if (!tmp) return err_set(e, MSKX_ENOMEM, "sim_sum: out of memory");
  memcpy(v, tmp, (size_t)n * sizeof *tmp);
  free(tmp);
  return MSKX_OK;
}

static int one_proc_sum(void *ctx, double *v, int n, mskx_err *e) { return (void)ctx, (void)v, (void)n, (void)e, MSKX_OK; }

/* Images [i0, i0 + n) of v. */
static view images(view v, int i0, int n) {
  view s = v;
  s.p = v.p + (size_t)i0 * v.h * v.w * v.ld;
  s.n = n;
  return s;
}

static void sim_step(sim_rank *r, int relu) {
  /* Out of memory here would show as results that differ from the one-process run below. */
  (void)bn_layer_forward(&r->p->cx, &r->p->l, r->x, r->y, relu, NULL);
  (void)bn_layer_backward(&r->p->cx, &r->p->l, r->x, r->dy, r->dx, relu, NULL);
}

static double rel_maxdiff(const float *a, const float *b, size_t n) {
  double ref = 0;
  double d = arr_maxdiff(a, b, n, &ref);
  return d / (ref > 1 ? ref : 1);
}

/* Whole batch in one process (fused ops), then as nproc processes. */
static int sim_case(engine *eng, bncase s, int nproc, int sync, uint64_t seed, char *why) {
  int ok = -1, c = s.c;
  vbuf x = {0}, y1 = {0}, yk = {0}, dy = {0}, dx1 = {0}, dxk = {0};
  proc one, parts[2];
  memset(&one, 0, sizeof one);
  memset(parts, 0, sizeof parts);
  memset(&x, 0, sizeof x), memset(&y1, 0, sizeof y1), memset(&yk, 0, sizeof yk);
  memset(&dy, 0, sizeof dy), memset(&dx1, 0, sizeof dx1), memset(&dxk, 0, sizeof dxk);
  rng r;
  rng_seed(&r, seed);
  float gamma[MAXC], beta[MAXC];
  fill_uniform(gamma, (size_t)c, &r, 0.5, 1.5);
  fill_uniform(beta, (size_t)c, &r, -0.3, 0.3);
  REQUIRE(!vbuf_alloc(&x, s.n, s.h, s.w, c, s.ld, s.c0, seed) && !vbuf_alloc(&y1, s.n, s.h, s.w, c, s.ld, s.c0, seed + 1) &&
              !vbuf_alloc(&yk, s.n, s.h, s.w, c, s.ld, s.c0, seed + 1) && !vbuf_dense(&dy, s.n, s.h, s.w, c, seed + 2) &&
              !vbuf_alloc(&dx1, s.n, s.h, s.w, c, s.ld, s.c0, seed + 3) &&
              !vbuf_alloc(&dxk, s.n, s.h, s.w, c, s.ld, s.c0, seed + 3),
          "out of memory");
  view_fill_normal(x.v, &r, 0.7, 2.0);
  REQUIRE(!s.relu || bn_push_margin(x.v, gamma, beta, BN_EPS, 0.01) == 0, "cannot clear ReLU kinks");
  REQUIRE(!proc_init(&one, eng, c, gamma, beta), "setup failed");
  REQUIRE(!bn_layer_forward(&one.cx, &one.l, x.v, y1.v, s.relu, NULL), "batch norm failed");
  REQUIRE(!bn_layer_backward(&one.cx, &one.l, x.v, dy.v, dx1.v, s.relu, NULL), "batch norm failed");

  sim sm = {.nproc = nproc};
  pthread_barrier_init(&sm.bar, NULL, (unsigned)nproc);
  sim_rank ranks[2];
  int team = 0;
  int per = s.n / nproc;
  for (int k = 0; k < nproc; k++) {
    REQUIRE(!proc_init(&parts[k], eng, c, gamma, beta), "setup failed");
    ranks[k] = (sim_rank){&sm, k, &parts[k], images(x.v, k * per, per), images(yk.v, k * per, per),
                          images(dy.v, k * per, per), images(dxk.v, k * per, per)};
    if (sync) {
      parts[k].cx.bn_sum = nproc > 1 ? sim_sum : one_proc_sum;
      parts[k].cx.bn_sum_ctx = &ranks[k];
    }
  }
#pragma omp parallel num_threads(nproc)
  {
    /* A smaller team than asked would wait at the barrier forever. */
    if (omp_get_num_threads() == nproc) sim_step(&ranks[omp_get_thread_num()], s.relu);
    if (omp_get_thread_num() == 0) team = omp_get_num_threads();
  }
  pthread_barrier_destroy(&sm.bar);
  REQUIRE(team == nproc, "OpenMP gave %d threads, %d needed", team, nproc);

  const param_store *p1 = &one.ps;
  float dg[MAXC], db[MAXC];
  for (int ch = 0; ch < c; ch++) {
    dg[ch] = db[ch] = 0;
    for (int k = 0; k < nproc; k++) {
      dg[ch] += ps_grad(&parts[k].ps, parts[k].l.weight)[ch];
      db[ch] += ps_grad(&parts[k].ps, parts[k].l.bias)[ch];
    }
  }
  double d_mean = 0, d_inv = 0, d_var = 0, d_rm = 0, d_rv = 0;
  for (int k = 0; k < nproc; k++) {
    const proc *q = &parts[k];
    d_mean = fmax(d_mean, rel_maxdiff(q->l.mean, one.l.mean, (size_t)c));
    d_inv = fmax(d_inv, rel_maxdiff(q->l.invstd, one.l.invstd, (size_t)c));
    d_var = fmax(d_var, rel_maxdiff(q->l.varu, one.l.varu, (size_t)c));
    d_rm = fmax(d_rm, rel_maxdiff(ps_data(&q->ps, q->l.rmean), ps_data(p1, one.l.rmean), (size_t)c));
    d_rv = fmax(d_rv, rel_maxdiff(ps_data(&q->ps, q->l.rvar), ps_data(p1, one.l.rvar), (size_t)c));
  }
  double ref = 0, d_y = view_maxdiff(yk.v, y1.v, &ref) / fmax(ref, 1);
  double d_dx = view_maxdiff(dxk.v, dx1.v, &ref) / fmax(ref, 1);
  double d_dg = rel_maxdiff(dg, ps_grad(p1, one.l.weight), (size_t)c);
  double d_db = rel_maxdiff(db, ps_grad(p1, one.l.bias), (size_t)c);
  double worst = fmax(fmax(fmax(d_mean, d_inv), fmax(d_var, d_rm)), fmax(fmax(d_rv, d_y), fmax(d_dx, fmax(d_dg, d_db))));
  printf("# %s n%d %dx%d c%d ld%d relu%d, %d process(es)%s: max rel diff %.2e (mean %.1e invstd %.1e y %.1e dx %.1e "
         "dgamma %.1e)\n",
         eng->ops->name, s.n, s.h, s.w, c, s.ld, s.relu, nproc, sync ? " sync" : "", worst, d_mean, d_inv, d_y, d_dx,
         d_dg);
  if (nproc == 1 && !strcmp(eng->ops->name, "onednn")) {
    /* One process: the sync path is the fused computation, bit for bit. */
    REQUIRE(worst == 0, "one-process sync path differs from the fused ops by %.2e", worst);
  } else if (sync) {
    /* Only the summation order differs (double sums; float outputs). */
    REQUIRE(worst < 2e-6, "synchronised statistics differ from the whole batch's by %.2e", worst);
  } else {
    /* Per-process statistics are another computation: they must differ. */
    REQUIRE(d_mean > 1e-4, "per-process statistics unexpectedly equal the whole batch's (%.2e)", d_mean);
  }
  REQUIRE(vbuf_outside_ok(&yk) && vbuf_outside_ok(&dxk), "wrote outside the views");
  ok = 0;
out:
  proc_free(&one);
  for (int k = 0; k < 2; k++) proc_free(&parts[k]);
  vbuf_free(&x), vbuf_free(&y1), vbuf_free(&yk), vbuf_free(&dy), vbuf_free(&dx1), vbuf_free(&dxk);
  return ok;
}

/* The split ops of the CPU engine against the reference engine's. */
static int ops_case(engine *ref, engine *cpu, bncase s, uint64_t seed, char *why) {
  int ok = -1, c = s.c;
  vbuf x = {0}, dy = {0}, dxr = {0}, dxc = {0};
  rng r;
  rng_seed(&r, seed);
  float gamma[MAXC], beta[MAXC], mean[MAXC], invstd[MAXC];
  double sr[2 * MAXC], sc[2 * MAXC];
  fill_uniform(gamma, (size_t)c, &r, 0.5, 1.5);
  fill_uniform(beta, (size_t)c, &r, -0.3, 0.3);
  REQUIRE(!vbuf_alloc(&x, s.n, s.h, s.w, c, s.ld, s.c0, seed) && !vbuf_alloc(&dy, s.n, s.h, s.w, c, s.ld, s.c0, seed + 1) &&
              !vbuf_alloc(&dxr, s.n, s.h, s.w, c, s.ld, s.c0, seed + 2) &&
              !vbuf_alloc(&dxc, s.n, s.h, s.w, c, s.ld, s.c0, seed + 2),
          "out of memory");
  view_fill_normal(x.v, &r, -0.4, 1.5);
  REQUIRE(!s.relu || bn_push_margin(x.v, gamma, beta, BN_EPS, 0.01) == 0, "cannot clear ReLU kinks");
  double m = (double)s.n * s.h * s.w;
  ref->ops->bn_stats(x.v, NULL, sr);
  cpu->ops->bn_stats(x.v, NULL, sc);
  /* The bounds kernels_cpu.c states for its float runs of 32 rows: 31 u of
   * the terms' magnitudes (u = 2^-24), plus 3 u per squared deviation for
   * its float subtract and square (terms all positive: relative to the sum). */
  for (int ch = 0; ch < c; ch++) {
    double abs_sum = 0;
    for (size_t k = 0; k < (size_t)m; k++) abs_sum += fabs(*vat_k(view_channels(x.v, ch, 1), k));
    REQUIRE(fabs(sr[ch] - sc[ch]) <= 31 * 0x1p-24 * abs_sum + 1e-30, "bn_stats sum ch%d: %.9g vs %.9g", ch, sc[ch],
            sr[ch]);
    mean[ch] = (float)(sr[ch] / m);
  }
  ref->ops->bn_stats(x.v, mean, sr);
  cpu->ops->bn_stats(x.v, mean, sc);
  for (int ch = 0; ch < c; ch++) {
    REQUIRE(fabs(sr[ch] - sc[ch]) <= 34 * 0x1p-24 * sr[ch], "bn_stats sqdev ch%d: %.9g vs %.9g", ch, sc[ch], sr[ch]);
    invstd[ch] = (float)(1.0 / sqrt(sr[ch] / m + BN_EPS));
  }
  ref->ops->bn_backward_stats(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr);
  cpu->ops->bn_backward_stats(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sc);
  for (int k = 0; k < 2 * c; k++)
    REQUIRE(fabs(sr[k] - sc[k]) <= 1e-5 * fmax(1, fabs(sr[k])), "bn_backward_stats %d: %g vs %g", k, sc[k], sr[k]);
  /* A count other than this batch's rows: the sums stand for a larger batch. */
  vbuf_snapshot(&dxc);
  ref->ops->bn_backward_dx(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, dxr.v);
  cpu->ops->bn_backward_dx(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, dxc.v);
  double refmax = 0, d = view_maxdiff(dxc.v, dxr.v, &refmax);
  printf("# split ops n%d %dx%d c%d ld%d relu%d: dx maxdiff %.2e (max|ref| %.2e)\n", s.n, s.h, s.w, c, s.ld, s.relu, d,
         refmax);
  REQUIRE(d <= 1e-5 * fmax(1, refmax), "bn_backward_dx differs by %.2e", d);
  REQUIRE(vbuf_outside_ok(&dxc), "bn_backward_dx wrote outside its view");
  /* The dense forms: the same values stored instead of added (bit for bit
   * what accumulating into zeros gives), or rounded to bf16 as the engine's
   * bf16 conversion rounds them; the reference engine within tolerance. */
  size_t cnt = (size_t)s.n * s.h * s.w * c;
  float *zc = calloc(cnt, sizeof *zc), *dc = malloc(cnt * sizeof *dc), *dr = malloc(cnt * sizeof *dr);
  float *one = malloc((size_t)c * sizeof *one), *zero = calloc((size_t)c, sizeof *zero);
  uint16_t *bc = malloc(cnt * sizeof *bc), *bz = malloc(cnt * sizeof *bz), *br = malloc(cnt * sizeof *br);
  int dense_ok = zc && dc && dr && one && zero && bc && bz && br;
  if (dense_ok) {
    for (int ch = 0; ch < c; ch++) one[ch] = 1.0f;
    view zv = view_make(zc, s.n, s.h, s.w, c);
    cpu->ops->bn_backward_dx(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, zv);
    cpu->ops->bn_backward_dx_dense(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, dc, 0);
    ref->ops->bn_backward_dx_dense(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, dr, 0);
    cpu->ops->bn_backward_dx_dense(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, bc, 1);
    cpu->ops->bn_forward_affine_bf16(zv, one, zero, 0, bz);
    ref->ops->bn_backward_dx_dense(x.v, dy.v, gamma, beta, mean, invstd, s.relu, sr, 3 * m, br, 1);
    dense_ok = !memcmp(zc, dc, cnt * sizeof *zc) ? 1 : -1;
    if (dense_ok == 1) dense_ok = !memcmp(bc, bz, cnt * sizeof *bc) ? 1 : -2;
    d = arr_maxdiff(dc, dr, cnt, &refmax);
    if (dense_ok == 1 && d > 1e-5 * fmax(1, refmax)) dense_ok = -3;
    for (size_t k = 0; k < cnt && dense_ok == 1; k++) {
      uint32_t u = (uint32_t)br[k] << 16, v = (uint32_t)bc[k] << 16;
      float fr, fc;
      memcpy(&fr, &u, 4), memcpy(&fc, &v, 4);
      if (fabsf(fr - fc) > 1e-2f * fmaxf(1.0f, fabsf(fr))) dense_ok = -4;
    }
  }
  free(zc), free(dc), free(dr), free(one), free(zero), free(bc), free(bz), free(br);
  REQUIRE(dense_ok != 0, "out of memory");
  REQUIRE(dense_ok != -1, "bn_backward_dx_dense (f32) differs from bn_backward_dx into zeros");
  REQUIRE(dense_ok != -2, "bn_backward_dx_dense (bf16) is not the bf16 rounding of the f32 values");
  REQUIRE(dense_ok != -3, "bn_backward_dx_dense differs from the reference by %.2e", d);
  REQUIRE(dense_ok != -4, "bn_backward_dx_dense (bf16) differs from the reference's beyond bf16 rounding");
  ok = 0;
out:
  vbuf_free(&x), vbuf_free(&dy), vbuf_free(&dxr), vbuf_free(&dxc);
  return ok;
}

/* A block buffer of `width` channels whose statistics are recorded in pieces
 * as a dense block writes its channels (bn_batch_stats per written range);
 * layers normalising a prefix of it with .shared set must give what they
 * give computing their own statistics: outputs, saved and running statistics
 * and gradients, bit for bit (fp32 views and the bf16 convolution input). */
static int shared_case(engine *eng, int prefix, uint64_t seed, char *why) {
  enum { N = 3, H = 5, W = 4, WIDTH = 16 };
  static const int pieces[] = {0, 5, 6, 9, 13, WIDTH};
  int ok = -1;
  vbuf x = {0}, ya = {0}, yb = {0}, dy = {0}, dxa = {0}, dxb = {0};
  proc own, sh;
  memset(&own, 0, sizeof own), memset(&sh, 0, sizeof sh);
  memset(&x, 0, sizeof x), memset(&ya, 0, sizeof ya), memset(&yb, 0, sizeof yb);
  memset(&dy, 0, sizeof dy), memset(&dxa, 0, sizeof dxa), memset(&dxb, 0, sizeof dxb);
  float mean[WIDTH], invstd[WIDTH], varu[WIDTH], gamma[WIDTH], beta[WIDTH];
  uint16_t ca[N * H * W * WIDTH], cb[N * H * W * WIDTH];
  rng r;
  rng_seed(&r, seed);
  fill_uniform(gamma, WIDTH, &r, 0.5, 1.5);
  fill_uniform(beta, WIDTH, &r, -0.3, 0.3);
  REQUIRE(!vbuf_dense(&x, N, H, W, WIDTH, seed) && !vbuf_dense(&ya, N, H, W, prefix, seed + 1) &&
              !vbuf_dense(&yb, N, H, W, prefix, seed + 1) && !vbuf_dense(&dy, N, H, W, prefix, seed + 2) &&
              !vbuf_alloc(&dxa, N, H, W, prefix, WIDTH, 0, seed + 3) &&
              !vbuf_alloc(&dxb, N, H, W, prefix, WIDTH, 0, seed + 3),
          "out of memory");
  view_fill_normal(x.v, &r, 0.4, 1.7);
  REQUIRE(!proc_init(&own, eng, prefix, gamma, beta) && !proc_init(&sh, eng, prefix, gamma, beta), "setup failed");
  for (size_t k = 0; k + 1 < sizeof pieces / sizeof *pieces; k++) {
    int c0 = pieces[k];
    REQUIRE(!bn_batch_stats(&sh.cx, view_channels(x.v, c0, pieces[k + 1] - c0), BN_EPS, mean + c0, invstd + c0, varu + c0,
                            NULL),
            "batch norm failed");
  }
  bn_channel_stats stats = {mean, invstd, varu};
  sh.l.shared = &stats;
  view in = view_channels(x.v, 0, prefix);
  REQUIRE(!bn_layer_forward(&own.cx, &own.l, in, ya.v, 1, NULL), "batch norm failed");
  REQUIRE(!bn_layer_forward(&sh.cx, &sh.l, in, yb.v, 1, NULL), "batch norm failed");
  REQUIRE(!bn_layer_backward(&own.cx, &own.l, in, dy.v, dxa.v, 1, NULL), "batch norm failed");
  REQUIRE(!bn_layer_backward(&sh.cx, &sh.l, in, dy.v, dxb.v, 1, NULL), "batch norm failed");
  size_t cb_bytes = (size_t)prefix * sizeof(float);
  REQUIRE(!memcmp(own.l.mean, sh.l.mean, cb_bytes) && !memcmp(own.l.invstd, sh.l.invstd, cb_bytes) &&
              !memcmp(own.l.varu, sh.l.varu, cb_bytes),
          "shared statistics differ from the layer's own (prefix %d)", prefix);
  REQUIRE(!memcmp(ps_data(&own.ps, own.l.rmean), ps_data(&sh.ps, sh.l.rmean), cb_bytes) &&
              !memcmp(ps_data(&own.ps, own.l.rvar), ps_data(&sh.ps, sh.l.rvar), cb_bytes),
          "running statistics differ (prefix %d)", prefix);
  REQUIRE(!memcmp(ya.base, yb.base, ya.len * sizeof(float)), "outputs differ (prefix %d)", prefix);
  REQUIRE(!memcmp(dxa.base, dxb.base, dxa.len * sizeof(float)), "input gradients differ (prefix %d)", prefix);
  REQUIRE(!memcmp(ps_grad(&own.ps, own.l.weight), ps_grad(&sh.ps, sh.l.weight), cb_bytes) &&
              !memcmp(ps_grad(&own.ps, own.l.bias), ps_grad(&sh.ps, sh.l.bias), cb_bytes),
          "parameter gradients differ (prefix %d)", prefix);
  if (!strcmp(eng->ops->name, "onednn")) {
    own.cx.prec = sh.cx.prec = PREC_BF16;
    REQUIRE(!bn_layer_forward_conv(&own.cx, &own.l, in, (float *)ca, 1, NULL), "batch norm failed");
    REQUIRE(!bn_layer_forward_conv(&sh.cx, &sh.l, in, (float *)cb, 1, NULL), "batch norm failed");
    REQUIRE(!memcmp(ca, cb, (size_t)N * H * W * prefix * sizeof(uint16_t)), "bf16 outputs differ (prefix %d)", prefix);
  }
  ok = 0;
out:
  proc_free(&own);
  proc_free(&sh);
  vbuf_free(&x), vbuf_free(&ya), vbuf_free(&yb), vbuf_free(&dy), vbuf_free(&dxa), vbuf_free(&dxb);
  return ok;
}

static engine *eng_cpu, *eng_ref;

static int engines(void) {
  mskx_err e = {0};
  if (!eng_cpu && engine_dnnl_create(2, &eng_cpu, &e)) return -1;
  if (!eng_ref && engine_ref_create(&eng_ref, &e)) return -1;
  return 0;
}

#define RUN(call)                                                 \
  do {                                                            \
    char why[WHY] = "";                                           \
    CHECKF(!engines(), "engine creation failed");                 \
    for (size_t i = 0; i < NCASES; i++) CHECKF(!(call), "%s", why); \
  } while (0)

TEST(split_ops_cpu_vs_ref) { RUN(ops_case(eng_ref, eng_cpu, cases[i], 100 + i, why)); }
TEST(sync_one_process_is_fused_cpu) { RUN(sim_case(eng_cpu, cases[i], 1, 1, 200 + i, why)); }
TEST(sync_one_process_is_fused_ref) { RUN(sim_case(eng_ref, cases[i], 1, 1, 300 + i, why)); }
TEST(sync_two_processes_cpu) { RUN(sim_case(eng_cpu, cases[i], 2, 1, 400 + i, why)); }
TEST(sync_two_processes_ref) { RUN(sim_case(eng_ref, cases[i], 2, 1, 500 + i, why)); }
TEST(per_process_stats_differ) { RUN(sim_case(eng_cpu, cases[i], 2, 0, 600 + i, why)); }

TEST(shared_stats_equal_own) {
  char why[WHY] = "";
  CHECKF(!engines(), "engine creation failed");
  static const int prefixes[] = {5, 6, 11, 16};
  for (size_t i = 0; i < 4; i++) {
    CHECKF(!shared_case(eng_cpu, prefixes[i], 700 + i, why), "%s", why);
    CHECKF(!shared_case(eng_ref, prefixes[i], 800 + i, why), "%s", why);
  }
}

TEST_MAIN()
