/* The library leaves the caller's OpenMP setting alone: an engine created
 * with a thread count runs its ops with that count (engine_threads_enter)
 * and puts the calling thread's count back after every call, so that
 * creating, planning, running and destroying an engine never changes
 * omp_get_max_threads() in the caller; and because the engine's count is
 * used whatever the caller's is, results do not depend on the caller's. */
#include <omp.h>
#include "core/rng.h"
#include "core/error.h"
#include "core/util.h"
#include "engine/engine.h"
#include "models/net.h"
#include "test.h"

#define ARCH "densenet:growth=4,blocks=2-2,init=8,bn_size=2"
#define N 4
#define S 32

/* One training-mode forward and backward (batch statistics: per-thread
 * partial sums, whose grouping depends on the team size) with an engine of
 * `threads`, the caller's count set to `caller` first. */
static int run(int threads, int caller, float logits[N], uint64_t *grads, int *after, mskx_err *e) {
  static float x[N * S * S * 3];
  rng r = rng_for(3, 0, 0);
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)rng_normal(&r);
  float dz[N] = {0.1f, -0.2f, 0.3f, -0.4f};
  omp_set_num_threads(caller);
  engine *eng = NULL;
  net *m = NULL;
  int rc = engine_dnnl_create(threads, &eng, e);
  if (!rc) rc = omp_get_max_threads() == caller ? 0 : err_set(e, MSKX_EINTERNAL, "changed by engine_dnnl_create");
  if (!rc) rc = net_create(ARCH, eng, 1, &m, e);
  if (!rc) rc = net_plan(m, N, S, S, 1, PREC_FP32, e);
  if (!rc) rc = omp_get_max_threads() == caller ? 0 : err_set(e, MSKX_EINTERNAL, "changed by net_plan");
  if (!rc) rc = net_forward(m, x, logits, e);
  if (!rc) rc = omp_get_max_threads() == caller ? 0 : err_set(e, MSKX_EINTERNAL, "changed by net_forward");
  if (!rc) rc = net_backward(m, dz, e);
  if (!rc) *grads = fnv1a(FNV1A_INIT, m->ps.grads, m->ps.n_params * sizeof *m->ps.grads);
  net_destroy(m);
  engine_destroy(eng);
  *after = omp_get_max_threads();
  return rc;
}

TEST(caller_thread_count_is_unchanged) {
  mskx_err e = {0, ""};
  float z[N];
  uint64_t g;
  int after = 0;
  CHECK_OK(run(1, 3, z, &g, &after, &e), &e);
  CHECK_EQ_INT(after, 3);
  CHECK_OK(run(2, 1, z, &g, &after, &e), &e);
  CHECK_EQ_INT(after, 1);
}

TEST(results_follow_the_engine_not_the_caller) {
  mskx_err e = {0, ""};
  float a[N], b[N];
  uint64_t ga = 0, gb = 1;
  int after = 0;
  /* Two engine threads either way; the caller's 1 or 3 must not leak in. */
  CHECK_OK(run(2, 1, a, &ga, &after, &e), &e);
  CHECK_OK(run(2, 3, b, &gb, &after, &e), &e);
  for (int i = 0; i < N; i++) CHECKF(a[i] == b[i], "logit %d: %.9g vs %.9g", i, a[i], b[i]);
  CHECKF(ga == gb, "the gradients differ with the caller's thread count");
}

TEST(enter_and_leave_restore) {
  omp_set_num_threads(5);
  engine eng = {0};
  eng.threads = 2;
  int saved = engine_threads_enter(&eng);
  CHECK_EQ_INT(saved, 5);
  CHECK_EQ_INT(omp_get_max_threads(), 2);
  int inner = engine_threads_enter(&eng); /* nested calls: the same */
  engine_threads_leave(inner);
  CHECK_EQ_INT(omp_get_max_threads(), 2);
  engine_threads_leave(saved);
  CHECK_EQ_INT(omp_get_max_threads(), 5);
  eng.threads = 0; /* no count of its own: the caller's */
  saved = engine_threads_enter(&eng);
  CHECK_EQ_INT(omp_get_max_threads(), 5);
  engine_threads_leave(saved);
}

TEST_MAIN()
