/* The network on a batch given as files (models/forward_file.h): the layout
 * conversion against direct indexing, logits against net_forward on an input
 * built here, the loss against BCE computed here, the gradient file, and the
 * errors of bad input. PyTorch parity of the same path: parity_test.sh. */
#include <math.h>
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/forward_file.h"
#include "../infer/infer_fixtures.h"
#include "test.h"

#define N 2
#define S 32

TEST(nchw_to_nhwc_moves_channels_last) {
  float x[2 * 3 * 2 * 4], y[2 * 3 * 2 * 4];
  for (int i = 0; i < 48; i++) x[i] = (float)i;
  nchw_to_nhwc(x, 2, 3, 2, 4, y);
  for (int n = 0; n < 2; n++)
    for (int c = 0; c < 3; c++)
      for (int h = 0; h < 2; h++)
        for (int w = 0; w < 4; w++)
          CHECK(y[((n * 2 + h) * 4 + w) * 3 + c] == x[((n * 3 + c) * 2 + h) * 4 + w]);
}

static float input_value(int n, int c, int h, int w) { return (float)sin(0.1 * (n * 977 + c * 131 + h * 17 + w)); }

/* Logits of the model file on the test batch through net_forward directly. */
static int reference_logits(const char *weights, float *logits, mskx_err *e) {
  engine *eng = NULL;
  net *m = NULL;
  st_file *f = NULL;
  static float x[N * S * S * 3];
  for (int n = 0; n < N; n++)
    for (int h = 0; h < S; h++)
      for (int w = 0; w < S; w++)
        for (int c = 0; c < 3; c++) x[((n * S + h) * S + w) * 3 + c] = input_value(n, c, h, w);
  int rc = st_read(weights, &f, e);
  if (!rc) rc = engine_dnnl_create(1, &eng, e);
  if (!rc) rc = net_create(TINY_ARCH, eng, 0, &m, e);
  if (!rc) rc = net_load_tensors(m, f, weights, 0, e);
  if (!rc) rc = net_plan(m, N, S, S, 0, PREC_FP32, e);
  if (!rc) rc = net_forward(m, x, logits, e);
  net_destroy(m);
  engine_destroy(eng);
  st_free(f);
  return rc;
}

TEST(forward_loss_and_grads_from_files) {
  char w[600], xin[600], yin[600], out[600], grads[600];
  mskx_err e = {0};
  CHECK_OK(fx_make_model(fx_path(w, sizeof w, "w.safetensors"), TINY_ARCH, 5, S, 0, 0.5, &e), &e);
  static float x[N * 3 * S * S];
  for (int n = 0; n < N; n++)
    for (int c = 0; c < 3; c++)
      for (int h = 0; h < S; h++)
        for (int ww = 0; ww < S; ww++) x[((n * 3 + c) * S + h) * S + ww] = input_value(n, c, h, ww);
  int64_t xs[4] = {N, 3, S, S}, ys[2] = {N, 1};
  float y[N] = {1, 0};
  CHECK_OK(npy_write_f32(fx_path(xin, sizeof xin, "x.npy"), x, 4, xs, &e), &e);
  CHECK_OK(npy_write_f32(fx_path(yin, sizeof yin, "y.npy"), y, 2, ys, &e), &e);
  fx_path(out, sizeof out, "logits.npy");
  fx_path(grads, sizeof grads, "grads.safetensors");

  forward_options o;
  forward_options_default(&o);
  o.arch = TINY_ARCH;
  o.weights = w;
  o.threads = 1;
  double loss = 0;
  CHECK_OK(forward_file_run(&o, xin, yin, out, NULL, &loss, &e), &e);
  float want[N];
  CHECK_OK(reference_logits(w, want, &e), &e);
  htensor got = {0};
  CHECK_OK(npy_read_f32(out, &got, &e), &e);
  CHECK(got.ndim == 2 && got.shape[0] == N && got.shape[1] == 1);
  double bce = 0;
  for (int i = 0; i < N; i++) {
    CHECK_NEAR(got.data[i], want[i], 1e-5);
    double z = want[i];
    bce += fmax(z, 0) - z * y[i] + log1p(exp(-fabs(z)));
  }
  htensor_release(&got);
  CHECK_NEAR(loss, bce / N, 1e-5);

  /* Without a target there is no loss. */
  CHECK_OK(forward_file_run(&o, xin, NULL, NULL, NULL, &loss, &e), &e);
  CHECK(isnan(loss));

  /* Train mode: every parameter's gradient by name. */
  o.train = 1;
  CHECK_OK(forward_file_run(&o, xin, yin, NULL, grads, &loss, &e), &e);
  CHECK(isfinite(loss));
  st_file *g = NULL;
  CHECK_OK(st_read(grads, &g, &e), &e);
  const htensor *gw = st_find(g, "classifier.weight");
  CHECK(gw != NULL && gw->ndim == 2 && gw->shape[0] == 1);
  CHECK(st_find(g, "features.conv0.weight") != NULL);
  double norm = 0;
  for (int64_t i = 0; gw && i < htensor_numel(gw); i++) norm += fabs(gw->data[i]);
  CHECK(norm > 0);
  st_free(g);
}

TEST(bad_inputs_are_errors) {
  char w[600], xin[600], bad[600];
  mskx_err e = {0};
  CHECK_OK(fx_make_model(fx_path(w, sizeof w, "w2.safetensors"), TINY_ARCH, 6, S, 0, 0.5, &e), &e);
  float x[3 * 8 * 8] = {0};
  int64_t s3[3] = {3, 8, 8}, s4[4] = {1, 1, 8, 8};
  CHECK_OK(npy_write_f32(fx_path(bad, sizeof bad, "x3d.npy"), x, 3, s3, &e), &e);
  CHECK_OK(npy_write_f32(fx_path(xin, sizeof xin, "x1ch.npy"), x, 4, s4, &e), &e);
  forward_options o;
  forward_options_default(&o);
  o.arch = TINY_ARCH;
  o.weights = w;
  o.threads = 1;
  double loss;
  CHECK_EQ_INT(forward_file_run(&o, bad, NULL, NULL, NULL, &loss, &e), MSKX_ESHAPE);
  CHECKF(strstr(e.msg, "x3d.npy: input must have shape (N, 3, H, W)"), "%s", e.msg);
  CHECK_EQ_INT(forward_file_run(&o, xin, NULL, NULL, NULL, &loss, &e), MSKX_ESHAPE);
  CHECK_EQ_INT(forward_file_run(&o, xin, NULL, NULL, "g.safetensors", &loss, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "gradients need a target"), "%s", e.msg);
  CHECK_EQ_INT(forward_file_run(&o, xin, xin, NULL, "g.safetensors", &loss, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "gradients need train mode"), "%s", e.msg);
  CHECK(forward_file_run(&o, "/nonexistent/x.npy", NULL, NULL, NULL, &loss, &e) != 0);
  CHECKF(strstr(e.msg, "/nonexistent/x.npy"), "%s", e.msg);
}

TEST_MAIN()
