/* A model loaded with a thread count of its own (mskx_load_options.threads)
 * predicts without touching the caller's OpenMP setting: loading,
 * predicting and freeing leave omp_get_max_threads() as the caller set it,
 * and the result does not depend on that setting. */
#include <omp.h>
#include "core/error.h"
#include "infer_fixtures.h"
#include "mskx.h"
#include "test.h"

static char model[600];

static int predict_once(int caller, int threads, double *prob, int *after, mskx_err *e) {
  omp_set_num_threads(caller);
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.threads = threads;
  lo.max_contexts = 1;
  mskx_model *m = NULL;
  gray_image g = fx_image(40, 48, 77);
  mskx_pixel_image px = {g.px, g.w, g.h, 1, 0, NULL, 0};
  mskx_result *r = NULL;
  int rc = mskx_model_load(model, &lo, &m, e);
  if (!rc && omp_get_max_threads() != caller) rc = err_set(e, MSKX_EINTERNAL, "changed by mskx_model_load");
  if (!rc) rc = mskx_predict_pixels(m, &px, 1, NULL, NULL, &r, e);
  if (!rc) *prob = r->probability;
  mskx_result_free(r);
  mskx_model_free(m);
  gray_image_free(&g);
  *after = omp_get_max_threads();
  return rc;
}

TEST(caller_thread_count_is_unchanged) {
  mskx_err e = {0, ""};
  omp_set_num_threads(4);
  /* An engine of 1 thread is created and destroyed in there. */
  CHECK_OK(fx_make_model(fx_path(model, sizeof model, "m.safetensors"), TINY_ARCH, 5, 64, 0, 0.5, &e), &e);
  CHECK_EQ_INT(omp_get_max_threads(), 4);
  double p1 = 0, p3 = 0;
  int after = 0;
  CHECK_OK(predict_once(3, 1, &p1, &after, &e), &e);
  CHECK_EQ_INT(after, 3);
  CHECK_OK(predict_once(1, 2, &p3, &after, &e), &e);
  CHECK_EQ_INT(after, 1);
  CHECK_OK(predict_once(3, 2, &p1, &after, &e), &e);
  CHECK_EQ_INT(after, 3);
  CHECKF(p1 == p3, "probability %.17g with the caller at 3 threads, %.17g at 1", p1, p3);
}

TEST_MAIN()
