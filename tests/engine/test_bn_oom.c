/* Batch norm out of memory: the CPU kernels' reductions report MSKX_ENOMEM
 * when their per-thread scratch cannot be allocated (they used to zero the
 * sums and let training go on with wrong statistics), the error reaches
 * net_forward/net_backward with a message, and the scratch of a thread is
 * freed when the thread ends. */
#include <malloc.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "core/error.h"
#include "engine/engine.h"
#include "models/net.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define TINY_ARCH "densenet:growth=4,blocks=1-1,init=8,bn_size=2"

/* ---- an engine whose reductions fail, as the CPU kernels do without memory ---- */

static int fail_fwd_train(view x, const float *g, const float *b, float eps, int relu, view y, float *m, float *i,
                          float *v) {
  (void)x, (void)g, (void)b, (void)eps, (void)relu, (void)y, (void)m, (void)i, (void)v;
  return MSKX_ENOMEM;
}
static int fail_stats(view x, const float *mean, double *out) {
  (void)x, (void)mean, (void)out;
  return MSKX_ENOMEM;
}
static int fail_bwd(view x, view dy, const float *g, const float *b, const float *m, const float *i, int relu, view dx,
                    float *dg, float *db) {
  (void)x, (void)dy, (void)g, (void)b, (void)m, (void)i, (void)relu, (void)dx, (void)dg, (void)db;
  return MSKX_ENOMEM;
}
static int fail_bwd_stats(view x, view dy, const float *g, const float *b, const float *m, const float *i, int relu,
                          double *sums) {
  (void)x, (void)dy, (void)g, (void)b, (void)m, (void)i, (void)relu, (void)sums;
  return MSKX_ENOMEM;
}

/* Trains one step of arch on a failing copy of the oneDNN engine: forward
 * (fail_forward) or backward ops fail. Returns the failing call's status. */
static int step_with_failing_bn(const char *arch, int fail_forward, mskx_err *e) {
  engine *real = NULL;
  net *m = NULL;
  int rc = engine_dnnl_create(2, &real, e);
  if (rc) return rc;
  engine_ops ops = *real->ops;
  if (fail_forward) {
    ops.bn_forward_train = fail_fwd_train;
    ops.bn_stats = fail_stats;
  } else {
    ops.bn_backward = fail_bwd;
    ops.bn_backward_stats = fail_bwd_stats;
  }
  engine fake = *real;
  fake.ops = &ops;
  const int n = 2, size = 32;
  float *x = calloc((size_t)n * size * size * 3, sizeof(float)), logits[2], dl[2] = {0.5f, -0.5f};
  rc = x ? net_create(arch, &fake, 1, &m, e) : err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = net_plan(m, n, size, size, 1, PREC_FP32, e);
  for (size_t i = 0; x && i < (size_t)n * size * size * 3; i++) x[i] = (float)((i * 7919) % 101) / 50.0f - 1.0f;
  int frc = rc ? rc : net_forward(m, x, logits, e);
  if (!rc && !fail_forward) rc = frc ? frc : net_backward(m, dl, e);
  else if (!rc) rc = frc;
  net_destroy(m);
  free(x);
  engine_destroy(real);
  return rc;
}

TEST(densenet_forward_reports_bn_out_of_memory) {
  mskx_err e = {0};
  CHECK_EQ_INT(step_with_failing_bn(TINY_ARCH, 1, &e), MSKX_ENOMEM);
  CHECKF(strstr(e.msg, "batch norm") && strstr(e.msg, "out of memory"), "%s", e.msg);
}

TEST(densenet_backward_reports_bn_out_of_memory) {
  mskx_err e = {0};
  CHECK_EQ_INT(step_with_failing_bn(TINY_ARCH, 0, &e), MSKX_ENOMEM);
  CHECKF(strstr(e.msg, "batch norm") && strstr(e.msg, "backward") && strstr(e.msg, "out of memory"), "%s", e.msg);
}

TEST(resnet_forward_and_backward_report_bn_out_of_memory) {
  mskx_err e = {0};
  CHECK_EQ_INT(step_with_failing_bn("resnet50", 1, &e), MSKX_ENOMEM);
  CHECKF(strstr(e.msg, "batch norm") && strstr(e.msg, "forward"), "%s", e.msg);
  mskx_err e2 = {0};
  CHECK_EQ_INT(step_with_failing_bn("resnet50", 0, &e2), MSKX_ENOMEM);
  CHECKF(strstr(e2.msg, "batch norm") && strstr(e2.msg, "backward"), "%s", e2.msg);
}

/* ---- the real kernels under an address-space limit ---- */

#define WIDE_C (1 << 20) /* channels: the scratch is threads x C (x2) doubles, 8+ MiB */
#define MARGIN (4u << 20)

typedef struct oom_case {
  engine *eng;
  float *x, *dy, *y, *gamma, *beta, *mean, *invstd, *varu, *dg, *db;
  double *out;
  int rc_stats, rc_bstats, rc_train, rc_bwd, rc_after;
  int limited;
} oom_case;

static long vm_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (f) {
    if (fscanf(f, "%ld", &pages) != 1) pages = 0;
    fclose(f);
  }
  return pages * sysconf(_SC_PAGESIZE);
}

/* Runs on a thread with a large stack that exists before the limit, so only
 * the kernels' scratch needs new address space. */
static void *oom_thread(void *arg) {
  oom_case *k = arg;
  view x = view_make(k->x, 2, 1, 1, WIDE_C), dy = view_make(k->dy, 2, 1, 1, WIDE_C), y = view_make(k->y, 2, 1, 1, WIDE_C);
  struct rlimit old, lim;
  long vm = vm_bytes();
  if (vm <= 0 || getrlimit(RLIMIT_AS, &old) != 0) return NULL;
  lim = old;
  lim.rlim_cur = (rlim_t)vm + MARGIN;
  if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur) return NULL;
  if (setrlimit(RLIMIT_AS, &lim) != 0) return NULL;
  k->limited = 1;
  const engine_ops *op = k->eng->ops;
  k->rc_stats = op->bn_stats(x, NULL, k->out);
  k->rc_bstats = op->bn_backward_stats(x, dy, k->gamma, k->beta, k->mean, k->invstd, 1, k->out);
  k->rc_train = op->bn_forward_train(x, k->gamma, k->beta, 1e-5f, 1, y, k->mean, k->invstd, k->varu);
  k->rc_bwd = op->bn_backward(x, dy, k->gamma, k->beta, k->mean, k->invstd, 1, dy, k->dg, k->db);
  setrlimit(RLIMIT_AS, &old);
  k->rc_after = op->bn_stats(x, NULL, k->out);
  return NULL;
}

/* In a fresh process (see below): one malloc arena and a fixed mmap
 * threshold, so the scratch must be new address space, which the limit refuses
 * (a thread arena could otherwise grow inside space it reserved earlier). */
static void oom_child(void) {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mskx_err e = {0};
  oom_case k = {0};
  CHECKF(!engine_dnnl_create(2, &k.eng, &e), "%s", e.msg);
  size_t c = WIDE_C;
  float **fl[] = {&k.x, &k.dy, &k.y, &k.gamma, &k.beta, &k.mean, &k.invstd, &k.varu, &k.dg, &k.db};
  int ok = 1;
  for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) ok &= (*fl[i] = calloc(2 * c, sizeof(float))) != NULL;
  ok &= (k.out = calloc(2 * c, sizeof(double))) != NULL;
  for (size_t i = 0; ok && i < 2 * c; i++) {
    k.x[i] = (float)(i % 13);
    k.gamma[i / 2] = 1.0f;
    k.invstd[i / 2] = 1.0f;
  }
  pthread_attr_t at;
  pthread_t th;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, (size_t)96 << 20);  /* the kernels' per-channel arrays live on the stack */
  int started = ok && pthread_create(&th, &at, oom_thread, &k) == 0;
  if (started) pthread_join(th, NULL);
  pthread_attr_destroy(&at);
  for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) free(*fl[i]);
  free(k.out);
  engine_destroy(k.eng);
  CHECKF(started, "setup failed");
  if (!k.limited) {
    printf("# skipped: cannot lower RLIMIT_AS here\n");
    return;
  }
  CHECK_EQ_INT(k.rc_stats, MSKX_ENOMEM);
  CHECK_EQ_INT(k.rc_bstats, MSKX_ENOMEM);
  CHECK_EQ_INT(k.rc_train, MSKX_ENOMEM);
  CHECK_EQ_INT(k.rc_bwd, MSKX_ENOMEM);
  CHECK_EQ_INT(k.rc_after, MSKX_OK);
}

#define OOM_CHILD_ENV "MSKX_TEST_BN_OOM_CHILD"

TEST(cpu_kernels_report_scratch_allocation_failure) {
  if (getenv(OOM_CHILD_ENV)) {
    oom_child();
    return;
  }
  if (UNDER_ASAN) {
    printf("# skipped under ASan (its shadow memory needs an unlimited address space)\n");
    return;
  }
  /* This program again, running only this test, in the child mode. */
  char self[2048], cmd[2300];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = 0;
  snprintf(cmd, sizeof cmd, OOM_CHILD_ENV "=1 '%s' cpu_kernels_report_scratch_allocation_failure 2>&1", self);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  char out[4096] = "", line[1024];
  while (fgets(line, sizeof line, p))
    if (strlen(out) + strlen(line) < sizeof out) strcat(out, line);
  int st = pclose(p);
  if (strstr(out, "# skipped")) printf("%s", out);
  CHECKF(st == 0 && strstr(out, "PASS cpu_kernels_report_scratch_allocation_failure"), "child (status %d): %s", st,
         out);
}

/* ---- the scratch of a thread is freed when it ends ---- */

static void *stats_thread(void *arg) {
  engine *eng = arg;
  size_t c = (size_t)1 << 17; /* scratch of threads x 1 MiB: mmapped, so mallinfo2().hblkhd shows it */
  float *x = calloc(4 * c, sizeof(float));
  double *out = calloc(c, sizeof(double));
  if (x && out) (void)eng->ops->bn_stats(view_make(x, 4, 1, 1, (int)c), NULL, out);
  free(x);
  free(out);
  return NULL;
}

TEST(thread_scratch_freed_at_thread_exit) {
  mskx_err e = {0};
  engine *eng = NULL;
  CHECKF(!engine_dnnl_create(2, &eng, &e), "%s", e.msg);
  size_t before = mallinfo2().hblkhd;
  for (int i = 0; i < 4; i++) {
    pthread_t th;
    CHECK(pthread_create(&th, NULL, stats_thread, eng) == 0);
    pthread_join(th, NULL);
  }
  size_t after = mallinfo2().hblkhd;
  engine_destroy(eng);
  /* Under ASan mallinfo2 sees nothing; LeakSanitizer checks the same at exit. */
  if (!UNDER_ASAN)
    CHECKF(after <= before + ((size_t)1 << 20), "mmapped bytes grew from %zu to %zu over 4 threads", before, after);
}

TEST_MAIN()
