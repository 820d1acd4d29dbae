/* Optimizer tests: 20-step trajectories and final state against
 * torch.optim.{Adam, AdamW, SGD, RMSprop} (tests/tools/optim_ref.py), also
 * with a frozen range (torch: grad None), exact checkpoint resume,
 * thread-count independence, the parameter version bump and rejected configs. */
#include <omp.h>
#include <stdint.h>
#include <unistd.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "nn/params.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "test.h"
#include "train/optim.h"

/* Tolerance against PyTorch: relative to max(|torch value|, floor), floor =
 * 1e-3 of the tensor's largest magnitude (state entries can cancel to ~0). */
#define REL_TOL 1e-6

#define SCRATCH_TAG "train_optim"
#include "scratch.h"

typedef struct ref_case {
  const char *name;
  const char *optim;
  double lr, weight_decay, momentum; /* < 0: the optimizer's default */
  int nesterov;
  int split, freeze; /* elements [0, split) are frozen for the first freeze steps */
} ref_case;

static const ref_case CASES[] = {
    {"adam_default", "adam", 1e-2, -1, -1, 0, 0, 0},
    {"adam_l2", "adam", 1e-2, 0.1, -1, 0, 0, 0},
    {"adamw_default", "adamw", 1e-2, -1, -1, 0, 0, 0},
    {"adamw_strong", "adamw", 1e-2, 0.3, -1, 0, 0, 0},
    {"sgd_plain", "sgd", 0.1, -1, -1, 0, 0, 0},
    {"sgd_momentum_l2", "sgd", 0.1, 1e-2, 0.9, 0, 0, 0},
    {"sgd_nesterov", "sgd", 0.1, -1, 0.9, 1, 0, 0},
    {"rmsprop_keras", "rmsprop", 1e-2, -1, -1, 0, 0, 0},
    {"rmsprop_momentum_l2", "rmsprop", 1e-2, 1e-3, 0.5, 0, 0, 0},
    {"adam_frozen", "adam", 1e-2, -1, -1, 0, 600, 7},
    {"adamw_frozen", "adamw", 1e-2, 0.3, -1, 0, 333, 12},
    {"sgd_frozen", "sgd", 0.1, 1e-2, 0.9, 0, 600, 7},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

static optim_config case_config(const ref_case *rc) {
  optim_config c;
  optim_config_defaults(rc->optim, &c, NULL);
  c.lr = rc->lr;
  if (rc->weight_decay >= 0) c.weight_decay = rc->weight_decay;
  if (rc->momentum >= 0) c.momentum = rc->momentum;
  c.nesterov = rc->nesterov;
  return c;
}

/* Writes cases.txt from CASES and runs the reference once per process. */
static int reference(void) {
  static int done = -1;
  if (done >= 0) return done;
  FILE *f = fopen(fx("cases.txt"), "w");
  if (!f) return done = 0;
  for (int i = 0; i < N_CASES; i++) {
    optim_config c = case_config(&CASES[i]);
    fprintf(f, "%s name=%s lr=%.17g beta1=%.17g beta2=%.17g eps=%.17g weight_decay=%.17g momentum=%.17g "
               "nesterov=%d rho=%.17g split=%d freeze=%d\n",
            CASES[i].name, c.name, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.momentum, c.nesterov, c.rho,
            CASES[i].split, CASES[i].freeze);
  }
  fclose(f);
  return done = run_tool_script("optim_ref.py", "optim") == 0;
}

/* A parameter store over caller arrays (what optim_step updates). */
static param_store store_of(float *p, float *g, size_t n) {
  return (param_store){.n_params = n, .params = p, .grads = g, .version = 1};
}

/* One step over the arrays; the store view is only the step's. */
static int step_arrays(optimizer *o, float *p, const float *g, size_t n, double lr) {
  mskx_err e = {0};
  param_store ps = store_of(p, (float *)g, n);
  return optim_step(o, &ps, lr, &e);
}

static int step_range_arrays(optimizer *o, float *p, const float *g, size_t n, size_t off, size_t count, double lr) {
  mskx_err e = {0};
  param_store ps = store_of(p, (float *)g, n);
  return optim_step_range(o, &ps, off, count, lr, &e);
}

/* A file of tensors (as st_read returns one: owned copies) named prefix +
 * each view's name, for optim_state_load. NULL when out of memory. */
static st_file *file_of(const tensor_ref *t, int n, const char *prefix) {
  st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->tensors = calloc((size_t)n + 1, sizeof *f->tensors))) {
    free(f);
    return NULL;
  }
  for (int i = 0; i < n; i++, f->n_tensors++) {
    htensor *d = &f->tensors[i];
    size_t bytes = (size_t)tensor_ref_numel(&t[i]) * sizeof(float), len = strlen(prefix) + strlen(t[i].name) + 1;
    d->name = malloc(len);
    d->data = malloc(bytes ? bytes : 1);
    if (!d->name || !d->data) {
      f->n_tensors++;
      st_free(f);
      return NULL;
    }
    snprintf(d->name, len, "%s%s", prefix, t[i].name);
    d->ndim = t[i].ndim;
    memcpy(d->shape, t[i].shape, sizeof d->shape);
    memcpy(d->data, t[i].data, bytes);
  }
  return f;
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

/* Compares our final state with the reference's <case>.<key>.npy files. */
static double state_err(optimizer *o, const char *cname, size_t n, int *ok) {
  tensor_ref st[OPTIM_MAX_STATE];
  int ns = optim_state_tensors(o, st);
  double worst = 0;
  *ok = 1;
  for (int s = 0; s < ns; s++) {
    char name[256];
    htensor ref = {0};
    mskx_err e = {0};
    snprintf(name, sizeof name, "%s.%s.npy", cname, st[s].name + strlen("optim."));
    if (npy_read_f32(fx(name), &ref, &e) || htensor_numel(&ref) != (int64_t)n) {
      printf("  %s: %s\n", name, e.msg);
      *ok = 0;
      htensor_release(&ref);
      continue;
    }
    worst = fmax(worst, max_rel_err(st[s].data, ref.data, n));
    htensor_release(&ref);
  }
  return worst;
}

TEST(matches_pytorch_trajectories_and_state) {
  CHECKF(reference(), "tests/tools/optim_ref.py failed");
  mskx_err e = {0};
  htensor p0 = {0}, g = {0}, lrmul = {0};
  CHECK_OK(npy_read_f32(fx("params0.npy"), &p0, &e), &e);
  CHECK_OK(npy_read_f32(fx("grads.npy"), &g, &e), &e);
  CHECK_OK(npy_read_f32(fx("lrmul.npy"), &lrmul, &e), &e);
  const size_t n = (size_t)p0.shape[0];
  const int steps = (int)g.shape[0];
  CHECK(g.ndim == 2 && (size_t)g.shape[1] == n && lrmul.shape[0] == steps);
  float *p = malloc(n * sizeof(float));
  double overall = 0;
  for (int ci = 0; ci < N_CASES; ci++) {
    const ref_case *rc = &CASES[ci];
    optim_config c = case_config(rc);
    optimizer *o;
    CHECK_OK(optim_create(&c, n, &o, &e), &e);
    htensor traj = {0};
    char name[256];
    snprintf(name, sizeof name, "%s.traj.npy", rc->name);
    CHECK_OK(npy_read_f32(fx(name), &traj, &e), &e);
    memcpy(p, p0.data, n * sizeof(float));
    double worst = 0;
    for (int t = 0; t < steps; t++) {
      const float *gt = g.data + (size_t)t * n;
      double lr = c.lr * (double)lrmul.data[t];
      if (t < rc->freeze)
        CHECK_EQ_INT(step_range_arrays(o, p, gt, n, (size_t)rc->split, n - (size_t)rc->split, lr), 0);
      else
        CHECK_EQ_INT(step_arrays(o, p, gt, n, lr), 0);
      worst = fmax(worst, max_rel_err(p, traj.data + (size_t)t * n, n));
    }
    int ok;
    worst = fmax(worst, state_err(o, rc->name, n, &ok));
    CHECKF(ok, "%s: reference state missing", rc->name);
    CHECKF(optim_get_step(o) == steps, "step count %lld", (long long)optim_get_step(o));
    printf("  %-22s max rel err %.3g (params over %d steps, final state)\n", rc->name, worst, steps);
    overall = fmax(overall, worst);
    htensor_release(&traj);
    optim_destroy(o);
    CHECKF(worst <= REL_TOL, "%s: differs from torch by %.3g relative", rc->name, worst);
  }
  printf("  all optimizers: max rel err %.3g (tolerance %g)\n", overall, REL_TOL);
  free(p);
  htensor_release(&p0);
  htensor_release(&g);
  htensor_release(&lrmul);
}

/* ---- Exactness properties that need no reference ---- */

static void fill(float *x, size_t n, uint64_t seed, double scale) {
  rng r;
  rng_seed(&r, seed);
  for (size_t i = 0; i < n; i++) x[i] = (float)(rng_normal(&r) * scale);
}

/* Runs `steps` steps from p with gradients seeded by (seed + t). */
static void run_steps(optimizer *o, float *p, float *g, size_t n, int t0, int steps) {
  for (int t = t0; t < t0 + steps; t++) {
    fill(g, n, 1000 + (uint64_t)t, 0.1);
    (void)step_arrays(o, p, g, n, 1e-2 * (1.0 + 0.1 * t));
  }
}

static const char *ALL_KINDS[] = {"adam", "adamw", "sgd", "rmsprop"};

static optim_config busy_config(const char *name) {
  optim_config c;
  optim_config_defaults(name, &c, NULL);
  c.weight_decay = 0.05;
  if (!strcmp(name, "sgd") || !strcmp(name, "rmsprop")) c.momentum = 0.9;
  return c;
}

TEST(checkpoint_round_trip_is_bit_identical) {
  const size_t n = 5000;
  float *p = malloc(n * 4), *g = malloc(n * 4), *pa = malloc(n * 4), *saved_p = malloc(n * 4);
  mskx_err e = {0};
  for (int k = 0; k < 4; k++) {
    optim_config c = busy_config(ALL_KINDS[k]);
    optimizer *o, *o2;
    CHECK_OK(optim_create(&c, n, &o, &e), &e);
    fill(p, n, 1, 1.0);
    run_steps(o, p, g, n, 0, 5);
    /* Save: state tensors (as a checkpoint names them), step counts and parameters. */
    tensor_ref st[OPTIM_MAX_STATE];
    int ns = optim_state_tensors(o, st);
    CHECK(ns >= 1);
    st_file *ckpt = file_of(st, ns, "train_state.");
    CHECK(ckpt);
    char steps[OPTIM_STEPS_TEXT_MAX];
    CHECK_OK(optim_steps_format(o, steps, sizeof steps, &e), &e);
    memcpy(saved_p, p, n * 4);
    run_steps(o, p, g, n, 5, 5);
    memcpy(pa, p, n * 4);
    /* Restore into a fresh optimizer and redo the last 5 steps. */
    CHECK_OK(optim_create(&c, n, &o2, &e), &e);
    CHECK_OK(optim_state_load(o2, ckpt, "train_state.", &e), &e);
    CHECK_OK(optim_steps_parse(o2, steps, &e), &e);
    memcpy(p, saved_p, n * 4);
    run_steps(o2, p, g, n, 5, 5);
    CHECKF(!memcmp(p, pa, n * 4), "%s: resumed parameters differ", c.name);
    tensor_ref s1[OPTIM_MAX_STATE], s2[OPTIM_MAX_STATE];
    optim_state_tensors(o, s1);
    optim_state_tensors(o2, s2);
    for (int s = 0; s < ns; s++) CHECKF(!memcmp(s1[s].data, s2[s].data, n * 4), "%s: state %s differs", c.name, s1[s].name);
    /* Without the step count, Adam's bias correction would differ. */
    if (k < 2) {
      optimizer *o3;
      CHECK_OK(optim_create(&c, n, &o3, &e), &e);
      CHECK_OK(optim_state_load(o3, ckpt, "train_state.", &e), &e);
      memcpy(p, saved_p, n * 4);
      run_steps(o3, p, g, n, 5, 5);
      CHECKF(memcmp(p, pa, n * 4), "%s: the step count made no difference", c.name);
      optim_destroy(o3);
    }
    st_free(ckpt);
    optim_destroy(o);
    optim_destroy(o2);
  }
  free(p);
  free(g);
  free(pa);
  free(saved_p);
}

TEST(result_does_not_depend_on_thread_count) {
  const size_t n = 300000; /* above the parallel threshold */
  float *p1 = malloc(n * 4), *p2 = malloc(n * 4), *g = malloc(n * 4);
  mskx_err e = {0};
  int threads0 = omp_get_max_threads();
  for (int k = 0; k < 4; k++) {
    optim_config c = busy_config(ALL_KINDS[k]);
    float *res[2] = {p1, p2};
    for (int r = 0; r < 2; r++) {
      optimizer *o;
      CHECK_OK(optim_create(&c, n, &o, &e), &e);
      omp_set_num_threads(r == 0 ? 1 : 3);
      fill(res[r], n, 2, 1.0);
      run_steps(o, res[r], g, n, 0, 3);
      optim_destroy(o);
    }
    omp_set_num_threads(threads0);
    CHECKF(!memcmp(p1, p2, n * 4), "%s: 1 and 3 threads differ", c.name);
  }
  free(p1);
  free(p2);
  free(g);
}

/* The step bumps the store's version (what oneDNN's weight caches and
 * folded batch norms key on), once per step that changes something. */
TEST(step_bumps_the_parameter_version) {
  float p[32] = {0}, g[32];
  mskx_err e = {0};
  for (int i = 0; i < 32; i++) g[i] = 0.5f;
  optim_config c;
  optim_config_defaults("sgd", &c, NULL);
  optimizer *o;
  CHECK_OK(optim_create(&c, 32, &o, &e), &e);
  param_store ps = store_of(p, g, 32);
  CHECK_OK(optim_step(o, &ps, 0.1, &e), &e);
  CHECK_EQ_INT(ps.version, 2);
  CHECK_OK(optim_step_range(o, &ps, 16, 16, 0.1, &e), &e);
  CHECK_EQ_INT(ps.version, 3);
  CHECK_OK(optim_step_range(o, &ps, 32, 0, 0.1, &e), &e); /* nothing to update */
  CHECK_EQ_INT(ps.version, 3);
  CHECK(optim_step_range(o, &ps, 16, 17, 0.1, &e) == MSKX_EINVAL && strstr(e.msg, "outside"));
  param_store small = store_of(p, g, 31);
  CHECK(optim_step(o, &small, 0.1, &e) == MSKX_ESHAPE && strstr(e.msg, "31"));
  CHECK_EQ_INT(ps.version, 3);
  optim_destroy(o);
}

TEST(step_range_leaves_the_rest_untouched) {
  const size_t n = 100;
  float p[100], q[100], g[100];
  mskx_err e = {0};
  optim_config c = busy_config("adamw");
  optimizer *o;
  CHECK_OK(optim_create(&c, n, &o, &e), &e);
  fill(p, n, 5, 1.0);
  fill(g, n, 6, 1.0);
  memcpy(q, p, sizeof p);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 30, 20, 0.1), 0);
  for (size_t i = 0; i < n; i++) CHECKF((p[i] != q[i]) == (i >= 30 && i < 50), "element %zu", i);
  tensor_ref st[OPTIM_MAX_STATE];
  optim_state_tensors(o, st);
  for (size_t i = 0; i < n; i++) CHECKF((st[0].data[i] != 0) == (i >= 30 && i < 50), "exp_avg element %zu", i);
  char text[OPTIM_STEPS_TEXT_MAX];
  CHECK_OK(optim_steps_format(o, text, sizeof text, &e), &e);
  CHECKF(!strcmp(text, "0:30:0;30:50:1;50:100:0"), "steps text '%s'", text);
  CHECK_EQ_INT(step_arrays(o, p, g, n, 0.1), 0);
  CHECK_OK(optim_steps_format(o, text, sizeof text, &e), &e);
  CHECKF(!strcmp(text, "0:30:1;30:50:2;50:100:1"), "steps text '%s'", text);
  CHECK_EQ_INT(optim_get_step(o), 2);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 0, 30, 0.1), 0);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 50, 50, 0.1), 0);
  CHECK_OK(optim_steps_format(o, text, sizeof text, &e), &e);
  CHECKF(!strcmp(text, "2"), "equal counts merge: '%s'", text);
  memcpy(q, p, sizeof p);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 90, 11, 0.1), MSKX_EINVAL);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 101, 0, 0.1), MSKX_EINVAL);
  CHECK_EQ_INT(step_range_arrays(o, p, g, n, 100, 0, 0.1), 0);
  CHECK(!memcmp(p, q, sizeof p));
  /* Too many distinct step counts is refused without changing anything. */
  int rc = 0;
  for (int i = 0; i < 60 && !rc; i++) {
    memcpy(q, p, sizeof p);
    CHECK_OK(optim_steps_format(o, text, sizeof text, &e), &e);
    rc = step_range_arrays(o, p, g, n, (size_t)i, n - (size_t)i, 0.1); /* each call adds a step count */
  }
  CHECK_EQ_INT(rc, MSKX_ELIMIT);
  CHECK(!memcmp(p, q, sizeof p));
  char after[OPTIM_STEPS_TEXT_MAX];
  CHECK_OK(optim_steps_format(o, after, sizeof after, &e), &e);
  CHECK(!strcmp(text, after));
  optim_destroy(o);
}

TEST(steps_text_parse_rejects_malformed_input) {
  mskx_err e = {0};
  optim_config c;
  optim_config_defaults("adam", &c, NULL);
  optimizer *o;
  CHECK_OK(optim_create(&c, 100, &o, &e), &e);
  CHECK_OK(optim_steps_parse(o, "0:40:3;40:100:9", &e), &e);
  CHECK_EQ_INT(optim_get_step(o), 9);
  CHECK_OK(optim_steps_parse(o, "17", &e), &e);
  CHECK_EQ_INT(optim_get_step(o), 17);
  const char *bad[] = {"", "-1", "1x", " 5", "5 ", "0:40:3", "0:40:3;40:99:9", "0:40:3;41:100:9", "0:40:3;40:100:9;",
                       "0:40:3;;40:100:9", "10:100:1", "0:0:1;0:100:2", "0:100:-1", "0:100", "0:101:1",
                       "99999999999999999999", "0:100:99999999999999999999", "0:50:1,50:100:2", "a:b:c"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    e.msg[0] = 0;
    int rc = optim_steps_parse(o, bad[i], &e);
    CHECKF(rc != 0 && strstr(e.msg, "step count"), "'%s' accepted (rc %d, '%s')", bad[i], rc, e.msg);
    CHECKF(optim_get_step(o) == 17, "'%s' changed the state", bad[i]);
  }
  char small[3];
  CHECK_OK(optim_steps_parse(o, "0:40:3;40:100:9", &e), &e);
  CHECK(optim_steps_format(o, small, sizeof small, &e) == MSKX_EINVAL);
  optim_destroy(o);
}

TEST(state_load_checks_names_and_sizes) {
  mskx_err e = {0};
  optim_config c;
  optim_config_defaults("adam", &c, NULL);
  optimizer *o;
  CHECK_OK(optim_create(&c, 10, &o, &e), &e);
  float a[10], b[11], z[10] = {0};
  for (int i = 0; i < 10; i++) a[i] = (float)i;
  tensor_ref t[3] = {{"optim.exp_avg", 1, {10}, a, EL_F32}, {"other", 1, {10}, a, EL_F32}, {"optim.exp_avg_sq", 1, {11}, b, EL_F32}};
  st_file *two = file_of(t, 2, "p."), *three = file_of(t, 3, "p.");
  CHECK(two && three);
  CHECK(optim_state_load(o, two, "p.", &e) == MSKX_EFORMAT && strstr(e.msg, "'p.optim.exp_avg_sq' is missing"));
  CHECK(optim_state_load(o, three, "", &e) == MSKX_EFORMAT && strstr(e.msg, "'optim.exp_avg' is missing"));
  CHECK(optim_state_load(o, three, "p.", &e) == MSKX_ESHAPE && strstr(e.msg, "11 elements") &&
        strstr(e.msg, "10 parameters"));
  tensor_ref st[OPTIM_MAX_STATE];
  CHECK_EQ_INT(optim_state_tensors(o, st), 2);
  CHECK(!strcmp(st[0].name, "optim.exp_avg") && !strcmp(st[1].name, "optim.exp_avg_sq"));
  CHECKF(!memcmp(st[0].data, z, sizeof z), "a failed load changed the state");
  t[2].shape[0] = 10;
  t[2].data = a;
  st_free(three);
  three = file_of(t, 3, "p.");
  CHECK(three);
  CHECK_OK(optim_state_load(o, three, "p.", &e), &e);
  CHECK(!memcmp(st[1].data, a, sizeof a));
  st_free(two);
  st_free(three);
  optim_destroy(o);
  /* Each optimizer names its own state like torch's state dict. */
  const char *want[4][3] = {{"optim.exp_avg", "optim.exp_avg_sq", NULL},
                            {"optim.exp_avg", "optim.exp_avg_sq", NULL},
                            {"optim.momentum_buffer", NULL, NULL},
                            {"optim.square_avg", "optim.momentum_buffer", NULL}};
  for (int k = 0; k < 4; k++) {
    c = busy_config(ALL_KINDS[k]);
    CHECK_OK(optim_create(&c, 10, &o, &e), &e);
    int ns = optim_state_tensors(o, st);
    for (int s = 0; s < 3; s++) CHECKF(s < ns ? !strcmp(st[s].name, want[k][s]) : !want[k][s], "%s state %d", c.name, s);
    optim_destroy(o);
  }
  optim_config_defaults("sgd", &c, NULL);
  CHECK_OK(optim_create(&c, 10, &o, &e), &e);
  CHECK_EQ_INT(optim_state_tensors(o, st), 0);
  st_file empty = {0};
  CHECK_OK(optim_state_load(o, &empty, "p.", &e), &e);
  optim_destroy(o);
}

TEST(defaults_follow_pytorch_and_keras) {
  optim_config c;
  mskx_err e = {0};
  CHECK_OK(optim_config_defaults("adam", &c, &e), &e);
  CHECK(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 0);
  CHECK_OK(optim_config_defaults("adamw", &c, &e), &e);
  CHECK(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 1e-2);
  CHECK_OK(optim_config_defaults("sgd", &c, &e), &e);
  CHECK(c.momentum == 0 && !c.nesterov && c.weight_decay == 0 && c.lr > 0);
  CHECK_OK(optim_config_defaults("rmsprop", &c, &e), &e);
  CHECK(c.lr == 1e-3 && c.rho == 0.9 && c.eps == 1e-7 && c.momentum == 0);
  for (int k = 0; k < 4; k++) {
    CHECK_OK(optim_config_defaults(ALL_KINDS[k], &c, &e), &e);
    CHECK_OK(optim_config_validate(&c, &e), &e);
  }
}

TEST(bad_configs_are_rejected_with_clear_messages) {
  optim_config c;
  mskx_err e = {0};
  CHECK(optim_config_defaults("adamax", &c, &e) == MSKX_EINVAL && strstr(e.msg, "unknown optimizer 'adamax'"));
  CHECK(optim_config_defaults(NULL, &c, &e) == MSKX_EINVAL);
  struct {
    const char *name, *field;
    double value;
    const char *msg;
  } bad[] = {
      {"adam", "lr", -1e-3, "learning rate"},   {"sgd", "lr", NAN, "learning rate"},
      {"adam", "lr", INFINITY, "learning rate"}, {"adam", "beta1", 1.0, "beta1"},
      {"adamw", "beta2", -0.1, "beta2"},        {"adam", "beta2", 1.5, "beta2"},
      {"adam", "eps", -1e-8, "eps"},            {"adamw", "weight_decay", -0.01, "weight decay"},
      {"sgd", "momentum", -0.9, "momentum"},    {"rmsprop", "rho", 1.0, "rho"},
      {"rmsprop", "rho", -0.5, "rho"},          {"sgd", "nesterov", 1, "nesterov"},
      {"adam", "nesterov", 1, "nesterov"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_OK(optim_config_defaults(bad[i].name, &c, &e), &e);
    if (!strcmp(bad[i].field, "lr")) c.lr = bad[i].value;
    else if (!strcmp(bad[i].field, "beta1")) c.beta1 = bad[i].value;
    else if (!strcmp(bad[i].field, "beta2")) c.beta2 = bad[i].value;
    else if (!strcmp(bad[i].field, "eps")) c.eps = bad[i].value;
    else if (!strcmp(bad[i].field, "weight_decay")) c.weight_decay = bad[i].value;
    else if (!strcmp(bad[i].field, "momentum")) c.momentum = bad[i].value;
    else if (!strcmp(bad[i].field, "rho")) c.rho = bad[i].value;
    else if (!strcmp(bad[i].field, "nesterov")) c.nesterov = (int)bad[i].value;
    optimizer *o = (optimizer *)&c; /* must be reset to NULL on failure */
    e.msg[0] = 0;
    int rc = optim_create(&c, 10, &o, &e);
    CHECKF(rc == MSKX_EINVAL && o == NULL, "%s %s=%g accepted", bad[i].name, bad[i].field, bad[i].value);
    CHECKF(strstr(e.msg, bad[i].msg) && strstr(e.msg, bad[i].name), "%s %s: message '%s'", bad[i].name,
           bad[i].field, e.msg);
  }
  CHECK_OK(optim_config_defaults("sgd", &c, &e), &e);
  c.momentum = 0.9;
  c.nesterov = 1;
  CHECK_OK(optim_config_validate(&c, &e), &e);
  strcpy(c.name, "SGD");
  CHECK(optim_config_validate(&c, &e) == MSKX_EINVAL && strstr(e.msg, "unknown optimizer 'SGD'"));
}

TEST_MAIN()
