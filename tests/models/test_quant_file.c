/* int8 model files: a network quantised in memory, saved and loaded again,
 * gives bit-identical outputs (and a second save the same bytes), and runs
 * int8 convolutions close to its fp32 self. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/rng.h"
#include "core/util.h"
#include "infer/quantize.h"
#include "models/model_file.h"
#include "test.h"

#define ARCH "densenet:growth=8,blocks=2-2,init=16,bn_size=2"
#define B 4
#define S 32

static void fill(float *x, size_t n, uint64_t seed) {
  rng r = rng_for(seed, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
}

static int read_all(const char *p, unsigned char **buf, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  *buf = malloc(*n);
  size_t got = fread(*buf, 1, *n, f);
  fclose(f);
  return got == *n ? 0 : -1;
}

TEST(int8_file_round_trip_is_exact) {
  mskx_err e = {0};
  engine *eng = NULL;
  CHECK_OK(engine_dnnl_create(2, &eng, &e), &e);
  net *m = NULL, *m2 = NULL, *m3 = NULL;
  CHECK_OK(net_create(ARCH, eng, 7, &m, &e), &e);
  static float x[B * S * S * 3], y32[B], y8[B], y8b[B], y8c[B];
  fill(x, sizeof x / sizeof x[0], 3);
  CHECK_OK(net_plan(m, B, S, S, 0, PREC_FP32, &e), &e);
  CHECK_OK(net_forward(m, x, y32, &e), &e);
  CHECK_OK(quantize_net_on(m, x, B, S, S, &e), &e);
  CHECK(m->in_scale != NULL);
  CHECK_OK(net_plan(m, B, S, S, 0, PREC_FP32, &e), &e);
  CHECK(m->cx.int8);
  CHECK_OK(net_forward(m, x, y8, &e), &e);
  double worst = 0;
  for (int i = 0; i < B; i++) worst = fmax(worst, fabs(sigmoid(y8[i]) - sigmoid(y32[i])));
  printf("  max |p_int8 - p_fp32| on the calibration batch: %.5f\n", worst);
  CHECKF(worst < 0.02, "int8 and fp32 probabilities differ by %g", worst);

  char p1[256], p2[256];
  snprintf(p1, sizeof p1, "%s/mskx_q8_%d_a.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  snprintf(p2, sizeof p2, "%s/mskx_q8_%d_b.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
  model_meta meta;
  model_meta_default(&meta);
  snprintf(meta.arch, sizeof meta.arch, "%s", m->arch.name);
  meta.size = S;
  CHECK_OK(model_save(p1, m, &meta, NULL, 0, NULL, 0, &e), &e);
  model_meta got;
  CHECK_OK(model_load(p1, eng, &m2, &got, NULL, &e), &e);
  CHECK(m2->in_scale != NULL);
  CHECK(!memcmp(m2->ps.params, m->ps.params, m->ps.n_params * sizeof(float)));
  CHECK(!memcmp(m2->in_scale, m->in_scale, (size_t)m->ps.n * sizeof(float)));
  CHECK_OK(net_plan(m2, B, S, S, 0, PREC_FP32, &e), &e);
  CHECK_OK(net_forward(m2, x, y8b, &e), &e);
  CHECKF(!memcmp(y8, y8b, sizeof y8), "loaded int8 model: logit %g vs %g", y8b[0], y8[0]);
  /* Saved again: the same bytes (the steps are fixed points of quantisation). */
  CHECK_OK(model_save(p2, m2, &got, NULL, 0, NULL, 0, &e), &e);
  unsigned char *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  CHECK(read_all(p1, &a, &na) == 0 && read_all(p2, &b, &nb) == 0);
  CHECKF(na == nb && !memcmp(a, b, na), "a second save differs (%zu vs %zu bytes)", na, nb);
  free(a), free(b);
  /* The predictor's copies carry the quantisation. */
  CHECK_OK(net_create(ARCH, eng, 0, &m3, &e), &e);
  CHECK_OK(net_copy_weights(m3, m2, &e), &e);
  CHECK_OK(net_plan(m3, B, S, S, 0, PREC_BF16, &e), &e);  /* int8 whatever precision is asked */
  CHECK(m3->cx.int8 && m3->cx.prec == PREC_FP32);
  CHECK_OK(net_forward(m3, x, y8c, &e), &e);
  CHECK(!memcmp(y8, y8c, sizeof y8));
  CHECK(net_plan(m3, B, S, S, 1, PREC_FP32, &e) == MSKX_EUNSUPPORTED && strstr(e.msg, "cannot be trained"));
  remove(p1);
  remove(p2);
  net_destroy(m);
  net_destroy(m2);
  net_destroy(m3);
  engine_destroy(eng);
}

TEST(int8_refuses_other_archs) {
  mskx_err e = {0};
  net *m = NULL;
  CHECK_OK(net_create("resnet50", NULL, 1, &m, &e), &e);
  static float x[1 * 64 * 64 * 3];
  CHECK(quantize_net_on(m, x, 1, 64, 64, &e) == MSKX_EUNSUPPORTED && strstr(e.msg, "DenseNet only"));
  net_destroy(m);
}

TEST_MAIN()
