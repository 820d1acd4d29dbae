/* Optimizer tests: 20-step trajectories and final state against
 * torch.optim.{Adam, AdamW, SGD, RMSprop} (tests/tools/optim_ref.py), exact
 * checkpoint resume, thread-count independence, weight-decay exclusion and
 * rejected configurations. */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "graph/params.h"
#include "io/npy.h"
#include "test.h"
#include "train/optim.h"

/* Tolerance against PyTorch: relative to max(|torch value|, floor), floor =
 * 1e-3 of the tensor's largest magnitude (state entries can cancel to ~0). */
#define REL_TOL 1e-6

static char g_dir[2048];

static const char *dir(void) {
  if (!g_dir[0]) {
    const char *t = getenv("MSKX_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/train_optim.%ld", t && *t ? t : "/tmp", (long)getpid());
    mkdir_p(g_dir, NULL);
  }
  return g_dir;
}

static const char *fx(const char *fmt, const char *a) {
  static char p[4][2300];
  static int k;
  char name[256];
  k = (k + 1) % 4;
  snprintf(name, sizeof name, fmt, a);
  snprintf(p[k], sizeof p[k], "%s/%s", dir(), name);
  return p[k];
}

typedef struct ref_case {
  const char *name;
  const char *optim;
  double lr, weight_decay, momentum;
  int nesterov, centered;
} ref_case;

/* Configurations compared with torch; unset fields keep the optimizer's defaults. */
static const ref_case CASES[] = {
    {"adam_default", "adam", 1e-2, -1, -1, 0, 0},
    {"adam_l2", "adam", 1e-2, 0.1, -1, 0, 0},
    {"adamw_default", "adamw", 1e-2, -1, -1, 0, 0},
    {"adamw_strong", "adamw", 1e-2, 0.3, -1, 0, 0},
    {"sgd_plain", "sgd", 0.1, -1, -1, 0, 0},
    {"sgd_momentum_l2", "sgd", 0.1, 1e-2, 0.9, 0, 0},
    {"sgd_nesterov", "sgd", 0.1, -1, 0.9, 1, 0},
    {"rmsprop_keras", "rmsprop", 1e-2, -1, -1, 0, 0},
    {"rmsprop_mom_centered", "rmsprop", 1e-2, 1e-3, 0.5, 0, 1},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

static optim_config case_config(const ref_case *rc) {
  optim_config c;
  optim_config_defaults(rc->optim, &c, NULL);
  c.lr = rc->lr;
  if (rc->weight_decay >= 0) c.weight_decay = rc->weight_decay;
  if (rc->momentum >= 0) c.momentum = rc->momentum;
  c.nesterov = rc->nesterov;
  c.centered = rc->centered;
  return c;
}

/* Writes cases.txt from CASES and runs the reference once per process. */
static int reference(void) {
  static int done = -1;
  if (done >= 0) return done;
  FILE *f = fopen(fx("%s", "cases.txt"), "w");
  if (!f) return done = 0;
  for (int i = 0; i < N_CASES; i++) {
    optim_config c = case_config(&CASES[i]);
    fprintf(f, "%s name=%s lr=%.17g beta1=%.17g beta2=%.17g eps=%.17g weight_decay=%.17g momentum=%.17g "
               "nesterov=%d rho=%.17g centered=%d\n",
            CASES[i].name, c.name, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.momentum, c.nesterov, c.rho,
            c.centered);
  }
  fclose(f);
  const char *root = getenv("MSKX_ROOT");
  char cmd[4600];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/optim_ref.py' optim '%s'", root && *root ? root : ".",
           dir());
  return done = system(cmd) == 0;
}

/* Max relative error of a against b (floor as in REL_TOL's comment). */
static double max_rel_err(const float *a, const float *b, size_t n) {
  double big = 0, worst = 0;
  for (size_t i = 0; i < n; i++) big = fmax(big, fabs(b[i]));
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), 1e-3 * big);
    if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
  }
  return worst;
}

TEST(matches_pytorch_trajectories_and_state) {
  CHECKF(reference(), "tests/tools/optim_ref.py failed");
  mskx_err e = {0};
  htensor p0 = {0}, g = {0}, lrmul = {0};
  CHECK_OK(npy_read_f32(fx("%s", "params0.npy"), &p0, &e), &e);
  CHECK_OK(npy_read_f32(fx("%s", "grads.npy"), &g, &e), &e);
  CHECK_OK(npy_read_f32(fx("%s", "lrmul.npy"), &lrmul, &e), &e);
  const size_t n = (size_t)p0.shape[0];
  const int steps = (int)g.shape[0];
  CHECK(g.ndim == 2 && (size_t)g.shape[1] == n && lrmul.shape[0] == steps);
  float *p = malloc(n * sizeof(float));
  double overall = 0;
  for (int ci = 0; ci < N_CASES; ci++) {
    optim_config c = case_config(&CASES[ci]);
    optimizer *o;
    CHECK_OK(optim_create(&c, n, &o, &e), &e);
    htensor traj = {0};
    CHECK_OK(npy_read_f32(fx("%s.traj.npy", CASES[ci].name), &traj, &e), &e);
    memcpy(p, p0.data, n * sizeof(float));
    double worst = 0;
    for (int t = 0; t < steps; t++) {
      optim_step(o, p, g.data + (size_t)t * n, c.lr * (double)lrmul.data[t]);
      worst = fmax(worst, max_rel_err(p, traj.data + (size_t)t * n, n));
    }
    htensor st[OPTIM_MAX_STATE];
    int ns = optim_state_tensors(o, st);
    for (int s = 0; s < ns; s++) {
      char name[256];
      htensor ref = {0};
      snprintf(name, sizeof name, "%s.%s.npy", CASES[ci].name, st[s].name + strlen("optim."));
      CHECK_OK(npy_read_f32(fx("%s", name), &ref, &e), &e);
      CHECK(htensor_numel(&ref) == (int64_t)n);
      double se = max_rel_err(st[s].data, ref.data, n);
      htensor_release(&ref);
      CHECKF(se <= REL_TOL, "%s: state %s differs from torch by %.3g relative", CASES[ci].name, st[s].name, se);
      worst = fmax(worst, se);
    }
    CHECKF(optim_get_step(o) == steps, "step count %lld", (long long)optim_get_step(o));
    printf("  %-22s max rel err %.3g (params over %d steps, state)\n", CASES[ci].name, worst, steps);
    overall = fmax(overall, worst);
    htensor_release(&traj);
    optim_destroy(o);
    CHECKF(worst <= REL_TOL, "%s: parameters differ from torch by %.3g relative", CASES[ci].name, worst);
  }
  printf("  all optimizers: max rel err %.3g (tolerance %g)\n", overall, REL_TOL);
  free(p);
  htensor_release(&p0);
  htensor_release(&g);
  htensor_release(&lrmul);
}

TEST_MAIN()
