/* Feature-level stacking: the pooled features are the classifier's input
 * (sigmoid(w . f + b) is the model's own probability), study features are
 * the mean of the images', the stack-features ensemble file predicts
 * sigmoid(b + coef . (x - mean) / scale) over the members' concatenated
 * features (also after predictor_clone), malformed stackers are refused, and
 * the folds and the scaler behave as documented. */
#include <math.h>
#include "eval/stack_features.h"
#include "infer/infer_fixtures.h"
#include "test.h"

static double head_prob(const predictor *p, const double *f) {
  const net *m = p->root.m;
  const float *w = ps_data(&m->ps, m->head_w), *b = ps_data(&m->ps, m->head_b);
  double z = b[0];
  for (int j = 0; j < pnode_feature_dim(&p->root); j++) z += w[j] * f[j];
  return 1 / (1 + exp(-z));
}

TEST(features_are_the_classifier_input) {
  char path[600];
  mskx_err e = {0, ""};
  CHECK_OK(fx_make_model(fx_path(path, sizeof path, "a.safetensors"), TINY_ARCH, 3, 64, 0, 0.5, &e), &e);
  predictor *p = NULL;
  CHECK_OK(predictor_load(path, NULL, &p, &e), &e);
  gray_image g[2] = {fx_image(80, 70, 1), fx_image(60, 90, 2)};
  double *f1 = NULL, *f2 = NULL, *fb = NULL, p1, p2, pb;
  int d1, d2, db;
  CHECK_OK(predictor_study_features(p, &g[0], 1, NULL, &f1, &d1, &p1, &e), &e);
  CHECK_OK(predictor_study_features(p, &g[1], 1, NULL, &f2, &d2, &p2, &e), &e);
  CHECK_OK(predictor_study_features(p, g, 2, NULL, &fb, &db, &pb, &e), &e);
  CHECK_EQ_INT(d1, pnode_feature_dim(&p->root));
  CHECK_NEAR(head_prob(p, f1), p1, 1e-5);
  CHECK_NEAR(head_prob(p, f2), p2, 1e-5);
  CHECK_NEAR(pb, 0.5 * (p1 + p2), 1e-6);
  for (int j = 0; j < d1; j++) CHECK_NEAR(fb[j], 0.5 * (f1[j] + f2[j]), 1e-5 * (1 + fabs(fb[j])));
  study_result r;
  CHECK_OK(predictor_predict_study(p, &g[0], 1, NULL, NULL, &r, &e), &e);
  CHECK_NEAR(r.probability, p1, 1e-6);
  study_result_free(&r);
  free(f1);
  free(f2);
  free(fb);
  predictor_free(p);
  for (int i = 0; i < 2; i++) gray_image_free(&g[i]);
}

/* A stack-features ensemble of two members, written by hand. */
static void write_ensemble(const char *path, const char *a, const char *b, int da, int db, int dims_ok) {
  int D = da + db;
  FILE *f = fopen(path, "w");
  fprintf(f, "{\"format\": \"mskx-ensemble-1\", \"method\": \"stack-features\", \"threshold\": 0.4, \"members\": "
             "[{\"path\": \"%s\"}, {\"path\": \"%s\"}], \"stacker\": {\"dims\": [%d, %d], \"intercept\": -0.25",
          a, b, da, dims_ok ? db : db + 1);
  const char *k[3] = {"mean", "scale", "coef"};
  for (int t = 0; t < 3; t++) {
    fprintf(f, ", \"%s\": [", k[t]);
    for (int j = 0; j < D; j++)
      fprintf(f, "%s%.17g", j ? ", " : "", t == 0 ? 0.01 * j : t == 1 ? 0.5 + 0.01 * j : 0.3 * sin(j + 1.0));
    fputs("]", f);
  }
  fputs("}}\n", f);
  fclose(f);
}

TEST(ensemble_file_predicts_the_stacker) {
  char a[600], b[600], ens[600], bad[600];
  mskx_err e = {0, ""};
  CHECK_OK(fx_make_model(fx_path(a, sizeof a, "m1.safetensors"), TINY_ARCH, 5, 64, 0, 0.5, &e), &e);
  CHECK_OK(fx_make_model(fx_path(b, sizeof b, "m2.safetensors"), TINY_ARCH2, 6, 48, 0, 0.5, &e), &e);
  predictor *pa = NULL, *pb = NULL, *pe = NULL, *pc = NULL;
  CHECK_OK(predictor_load(a, NULL, &pa, &e), &e);
  CHECK_OK(predictor_load(b, NULL, &pb, &e), &e);
  int da = pnode_feature_dim(&pa->root), db = pnode_feature_dim(&pb->root), D = da + db;
  write_ensemble(fx_path(ens, sizeof ens, "sf.json"), "m1.safetensors", "m2.safetensors", da, db, 1);
  CHECK_OK(predictor_load(ens, NULL, &pe, &e), &e);
  CHECK_OK(predictor_clone(pe, &pc, &e), &e);
  CHECK(!strcmp(predictor_get_info(pe)->method, "stack-features"));
  gray_image g[2] = {fx_image(70, 70, 7), fx_image(90, 60, 8)};
  double *fa, *fb;
  int d;
  CHECK_OK(predictor_study_features(pa, g, 2, NULL, &fa, &d, NULL, &e), &e);
  CHECK_OK(predictor_study_features(pb, g, 2, NULL, &fb, &d, NULL, &e), &e);
  double z = -0.25;
  for (int j = 0; j < D; j++) {
    double x = j < da ? fa[j] : fb[j - da];
    z += 0.3 * sin(j + 1.0) * (x - 0.01 * j) / (0.5 + 0.01 * j);
  }
  double want = 1 / (1 + exp(-z));
  study_result r, rc2;
  CHECK_OK(predictor_predict_study(pe, g, 2, "XR_HAND", NULL, &r, &e), &e);
  CHECK_OK(predictor_predict_study(pc, g, 2, "XR_HAND", NULL, &rc2, &e), &e);
  CHECKF(fabs(r.probability - want) < 1e-9, "%.12f vs %.12f", r.probability, want);
  CHECK(r.probability == rc2.probability && r.threshold == 0.4 && r.n_members == 2);
  CHECK(r.abnormal == (r.probability > 0.4));
  /* The public API (what serve uses) gives the same study probability, with CAMs. */
  mskx_model *api = NULL;
  CHECK_OK(mskx_model_load(ens, NULL, &api, &e), &e);
  mskx_pixel_image pix[2];
  for (int i = 0; i < 2; i++) pix[i] = (mskx_pixel_image){g[i].px, g[i].w, g[i].h, 1, g[i].w, "img", 8};
  mskx_predict_options po;
  mskx_predict_options_default(&po);
  po.want_cam = 1;
  mskx_result *res = NULL;
  CHECK_OK(mskx_predict_pixels(api, pix, 2, "XR_HAND", &po, &res, &e), &e);
  CHECK(res && res->probability == r.probability && res->n_members == 2 && res->images[0].cam);
  mskx_result_free(res);
  mskx_model_free(api);
  study_result_free(&r);
  study_result_free(&rc2);
  /* Widths that do not match a member's classifier, and a bundle member. */
  write_ensemble(fx_path(bad, sizeof bad, "bad.json"), "m1.safetensors", "m2.safetensors", da, db, 0);
  predictor *px = NULL;
  CHECK_EQ_INT(predictor_load(bad, NULL, &px, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "dims[1]"), "message: %s", e.msg);
  char bundle[600];
  fx_write_text(fx_path(bundle, sizeof bundle, "b.json"),
                "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_HAND\": \"m2.safetensors\"}}");
  write_ensemble(bad, "m1.safetensors", "b.json", da, db, 1);
  CHECK_EQ_INT(predictor_load(bad, NULL, &px, &e), MSKX_EUNSUPPORTED);
  free(fa);
  free(fb);
  predictor_free(pa);
  predictor_free(pb);
  predictor_free(pe);
  predictor_free(pc);
  for (int i = 0; i < 2; i++) gray_image_free(&g[i]);
}

TEST(folds_are_stratified_by_part_and_class) {
  enum { N = 157, K = 5 };
  int y[N], part[N], fold[N];
  for (int i = 0; i < N; i++) y[i] = (i * 7) % 3 == 0, part[i] = (i * 13) % 4;
  mskx_err e = {0, ""};
  CHECK_OK(sf_folds(y, part, N, K, 9, fold, &e), &e);
  for (int p = 0; p < 4; p++)
    for (int c = 0; c < 2; c++) {
      int cnt[K] = {0}, lo = N, hi = 0;
      for (int i = 0; i < N; i++)
        if (part[i] == p && y[i] == c) cnt[fold[i]]++;
      for (int k = 0; k < K; k++) lo = cnt[k] < lo ? cnt[k] : lo, hi = cnt[k] > hi ? cnt[k] : hi;
      CHECKF(hi - lo <= 1, "part %d class %d: folds hold %d..%d", p, c, lo, hi);
    }
  int sz[K] = {0};
  for (int i = 0; i < N; i++) sz[fold[i]]++;
  for (int k = 1; k < K; k++) CHECK(abs(sz[k] - sz[0]) <= 1);
  int y2[4] = {1, 0, 0, 0}, p2[4] = {0};
  CHECK_EQ_INT(sf_folds(y2, p2, 4, 2, 1, fold, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "abnormal"), "message: %s", e.msg);
}

TEST(scaler_is_standard_scaler) {
  double x[] = {1, 5, 2, 5, 3, 5, 6, 5};
  double mean[2], scale[2];
  sf_scaler_fit(x, 4, 2, mean, scale);
  CHECK_NEAR(mean[0], 3, 1e-15);
  CHECK_NEAR(scale[0], sqrt((4 + 1 + 0 + 9) / 4.0), 1e-15);
  CHECK_NEAR(mean[1], 5, 1e-15);
  CHECK(scale[1] == 1); /* a constant column */
}

TEST_MAIN()
