/* The predictor against independent references: probabilities vs a batch-1
 * net_forward on separately preprocessed inputs, aggregation, flip TTA,
 * bundle routing, the four ensemble rules, CAM maps, and bad inputs. */
#include "infer/cam.h"
#include "infer/predictor.h"
#include "infer_fixtures.h"
#include "test.h"

#define TOL 2e-5   /* fp32 forward of different batch shapes */

static char mA[600], mB[600], mC[600], mK[600];
static int made;

/* A, B: the tiny arch at 64 (different seeds and thresholds); C: another
 * arch at 32; K: keep_aspect at 64. */
static int setup(void) {
  if (made) return 0;
  mskx_err e = {0};
  int rc = fx_make_model(fx_path(mA, sizeof mA, "a.safetensors"), TINY_ARCH, 11, 64, 0, 0.5, &e) ||
           fx_make_model(fx_path(mB, sizeof mB, "b.safetensors"), TINY_ARCH, 22, 64, 0, 0.3, &e) ||
           fx_make_model(fx_path(mC, sizeof mC, "c.safetensors"), TINY_ARCH2, 33, 32, 0, 0.6, &e) ||
           fx_make_model(fx_path(mK, sizeof mK, "k.safetensors"), TINY_ARCH, 44, 64, 1, 0.5, &e);
  if (rc) fprintf(stderr, "setup: %s\n", e.msg);
  made = !rc;
  return rc;
}

static void make_study(gray_image *g, int n, uint64_t seed) {
  static const int sz[][2] = {{50, 40}, {37, 61}, {64, 64}, {90, 30}, {23, 23}, {70, 55}};
  for (int i = 0; i < n; i++) g[i] = fx_image(sz[i % 6][0], sz[i % 6][1], seed + (uint64_t)i);
}

static void free_study(gray_image *g, int n) {
  for (int i = 0; i < n; i++) gray_image_free(&g[i]);
}

/* One study through a freshly loaded predictor. */
static int predict_file(const char *path, const gray_image *g, int n, const char *part, const predict_options *po,
                        int max_batch, study_result *r, mskx_err *e) {
  predictor_options opt = {1, PREC_FP32, max_batch, {0}};
  predictor *p = NULL;
  int rc = predictor_load(path, &opt, &p, e);
  if (!rc) rc = predictor_predict_study(p, g, n, part, po, r, e);
  predictor_free(p);
  return rc;
}

TEST(probability_is_sigmoid_of_forward_and_mean_aggregates) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  const char *files[2] = {mA, mK};
  for (int f = 0; f < 2; f++) {
    gray_image g[4];
    make_study(g, 4, 100);
    study_result r;
    predict_options po = {AGG_MEAN, 0, 0, 0};
    CHECK_OK(predict_file(files[f], g, 4, NULL, &po, 16, &r, &e), &e);
    fx_ref ref;
    CHECK_OK(fx_ref_open(&ref, files[f], &e), &e);
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < 4; i++) {
      double p;
      CHECK_OK(fx_ref_prob(&ref, &g[i], &p, &e), &e);
      CHECK_NEAR(r.image_prob[i], p, TOL);
      sum += r.image_prob[i];
      lo = fmin(lo, p), hi = fmax(hi, p);
    }
    CHECKF(hi - lo > 1e-3, "images should give different probabilities (%g..%g)", lo, hi);
    CHECK_NEAR(r.probability, sum / 4, 1e-12);
    CHECK_EQ_INT(r.abnormal, r.probability > 0.5);
    CHECK_NEAR(r.threshold, 0.5, 0);
    CHECK(!strcmp(r.model_used, files[f]));
    fx_ref_close(&ref);
    study_result_free(&r);
    free_study(g, 4);
  }
}

TEST(max_aggregation_and_batching_agree) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  gray_image g[5];
  make_study(g, 5, 200);
  study_result a, b;
  predict_options mx = {AGG_MAX, 0, 0, 0};
  CHECK_OK(predict_file(mB, g, 5, NULL, &mx, 2, &a, &e), &e);   /* chunks of 2 with padding */
  CHECK_OK(predict_file(mB, g, 5, NULL, &mx, 16, &b, &e), &e);  /* one batch of 5 */
  double m = 0;
  for (int i = 0; i < 5; i++) {
    CHECK_NEAR(a.image_prob[i], b.image_prob[i], TOL);
    m = fmax(m, a.image_prob[i]);
  }
  CHECK_NEAR(a.probability, m, 1e-12);
  CHECK_NEAR(a.threshold, 0.3, 1e-12);
  CHECK_EQ_INT(a.abnormal, a.probability > 0.3);
  study_result_free(&a);
  study_result_free(&b);
  free_study(g, 5);
}

TEST(tta_flip_averages_image_and_mirror) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  const char *files[2] = {mA, mK};
  for (int f = 0; f < 2; f++) {
    gray_image g[3];
    make_study(g, 3, 300);
    study_result r;
    predict_options po = {AGG_MEAN, 1, 0, 0};
    CHECK_OK(predict_file(files[f], g, 3, NULL, &po, 4, &r, &e), &e);
    fx_ref ref;
    CHECK_OK(fx_ref_open(&ref, files[f], &e), &e);
    for (int i = 0; i < 3; i++) {
      gray_image mir = fx_mirror(&g[i]);
      double p0, p1;
      CHECK_OK(fx_ref_prob(&ref, &g[i], &p0, &e), &e);
      CHECK_OK(fx_ref_prob(&ref, &mir, &p1, &e), &e);
      gray_image_free(&mir);
      CHECKF(fabs(p0 - p1) > 1e-5, "mirror should change the probability");
      CHECK_NEAR(r.image_prob[i], 0.5 * (p0 + p1), TOL);
    }
    fx_ref_close(&ref);
    study_result_free(&r);
    free_study(g, 3);
  }
}

TEST(bundle_routes_by_part_with_member_thresholds) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  char bpath[600], bdef[600], js[2048];
  snprintf(js, sizeof js, "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"a.safetensors\", "
                          "\"XR_HAND\": \"%s\"}}", mB);   /* one relative, one absolute path */
  CHECK(fx_write_text(fx_path(bpath, sizeof bpath, "bundle.json"), js) == 0);
  CHECK(fx_write_text(fx_path(bdef, sizeof bdef, "bundle_def.json"),
                      "{\"format\": \"mskx-bundle-1\", \"models\": {\"wrist\": \"a.safetensors\"}, "
                      "\"default\": \"c.safetensors\"}") == 0);
  gray_image g[2];
  make_study(g, 2, 400);
  study_result ra, rb, rw, rh, rl;
  CHECK_OK(predict_file(mA, g, 2, NULL, NULL, 16, &ra, &e), &e);
  CHECK_OK(predict_file(mB, g, 2, NULL, NULL, 16, &rb, &e), &e);
  CHECK_OK(predict_file(bpath, g, 2, "XR_WRIST", NULL, 16, &rw, &e), &e);
  CHECK_OK(predict_file(bpath, g, 2, "XR_HAND", NULL, 16, &rh, &e), &e);
  CHECK_OK(predict_file(bpath, g, 2, "hand", NULL, 16, &rl, &e), &e);
  CHECK(fabs(ra.probability - rb.probability) > 1e-4);
  CHECK_NEAR(rw.probability, ra.probability, 1e-12);
  CHECK_NEAR(rh.probability, rb.probability, 1e-12);
  CHECK_NEAR(rl.probability, rb.probability, 1e-12);
  CHECK_NEAR(rw.threshold, 0.5, 1e-12);
  CHECK_NEAR(rh.threshold, 0.3, 1e-12);
  CHECK(!strcmp(rh.part, "XR_HAND") && !strcmp(rl.part, "XR_HAND"));
  CHECK(strstr(rw.model_used, "a.safetensors") != NULL);
  study_result bad;
  int rc = predict_file(bpath, g, 2, "XR_ELBOW", NULL, 16, &bad, &e);
  CHECKF(rc == MSKX_EINVAL && strstr(e.msg, "no model for part XR_ELBOW") && strstr(e.msg, "bundle.json"),
         "unknown part: %d %s", rc, e.msg);
  study_result_free(&bad);
  rc = predict_file(bpath, g, 2, NULL, NULL, 16, &bad, &e);
  CHECKF(rc == MSKX_EINVAL && strstr(e.msg, "unknown"), "no part: %s", e.msg);
  study_result_free(&bad);
  rc = predict_file(bpath, g, 2, "XR WRIST!", NULL, 16, &bad, &e);
  CHECKF(rc == MSKX_EINVAL && strstr(e.msg, "not a body part"), "bad part name: %s", e.msg);
  study_result_free(&bad);
  /* The default serves other parts and part-less studies. */
  study_result rc1, rc2, rc3, rdw;
  CHECK_OK(predict_file(mC, g, 2, NULL, NULL, 16, &rc1, &e), &e);
  CHECK_OK(predict_file(bdef, g, 2, "XR_ELBOW", NULL, 16, &rc2, &e), &e);
  CHECK_OK(predict_file(bdef, g, 2, NULL, NULL, 16, &rc3, &e), &e);
  CHECK_OK(predict_file(bdef, g, 2, "XR_WRIST", NULL, 16, &rdw, &e), &e);
  CHECK_NEAR(rc2.probability, rc1.probability, 1e-12);
  CHECK_NEAR(rc3.probability, rc1.probability, 1e-12);
  CHECK_NEAR(rc2.threshold, 0.6, 1e-12);
  CHECK_NEAR(rdw.probability, ra.probability, 1e-12);
  predictor *p = NULL;
  CHECK_OK(predictor_load(bdef, NULL, &p, &e), &e);
  const predictor_info *in = predictor_get_info(p);
  CHECK(in->kind == PNODE_BUNDLE && in->n_members == 2);
  CHECKF(!strcmp(in->parts, "XR_WRIST,default"), "parts '%s'", in->parts);
  CHECKF(strstr(in->arch, TINY_ARCH) && strstr(in->arch, TINY_ARCH2), "archs '%s'", in->arch);
  CHECK(in->size == 0 && in->threshold == -1);
  predictor_free(p);
  study_result *all[] = {&ra, &rb, &rw, &rh, &rl, &rc1, &rc2, &rc3, &rdw};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) study_result_free(all[i]);
  free_study(g, 2);
}

static double logit_c(double p) {
  p = p < 1e-6 ? 1e-6 : p > 1 - 1e-6 ? 1 - 1e-6 : p;
  return log(p / (1 - p));
}

/* Members: A (model, thr 0.5), a bundle routing XR_WRIST to B (thr 0.3), C
 * (another arch and size, thr 0.6). Combined values are recomputed here from
 * each member predicted on its own. */
TEST(ensemble_rules_match_formulas) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  char bpath[600], epath[600], js[2048];
  CHECK(fx_write_text(fx_path(bpath, sizeof bpath, "ebundle.json"),
                      "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"b.safetensors\"}}") == 0);
  gray_image g[3];
  make_study(g, 3, 500);
  study_result mr[3];
  const char *mf[3] = {mA, bpath, mC};
  double thr[3] = {0.5, 0.3, 0.6}, w[3] = {1.0, 3.0, 0.5}, coef[3] = {0.7, -1.2, 2.0}, b0 = 0.25;
  for (int i = 0; i < 3; i++) CHECK_OK(predict_file(mf[i], g, 3, "XR_WRIST", NULL, 16, &mr[i], &e), &e);
  static const char *const methods[] = {"mean", "weighted", "vote", "stack"};
  for (int k = 0; k < 4; k++) {
    snprintf(js, sizeof js,
             "{\"format\": \"mskx-ensemble-1\", \"method\": \"%s\", \"threshold\": 0.45, \"members\": ["
             "{\"path\": \"a.safetensors\", \"weight\": %g}, {\"path\": \"ebundle.json\", \"weight\": %g}, "
             "{\"path\": \"c.safetensors\", \"weight\": %g}], \"stacker\": {\"coef\": [%g, %g, %g], "
             "\"intercept\": %g}}",
             methods[k], w[0], w[1], w[2], coef[0], coef[1], coef[2], b0);
    CHECK(fx_write_text(fx_path(epath, sizeof epath, "ens.json"), js) == 0);
    study_result r;
    CHECK_OK(predict_file(epath, g, 3, "XR_WRIST", NULL, 16, &r, &e), &e);
    CHECK_EQ_INT(r.n_members, 3);
    for (int img = -1; img < 3; img++) {
      double p[3], want = 0, sw = 0;
      for (int i = 0; i < 3; i++) p[i] = img < 0 ? mr[i].probability : mr[i].image_prob[img];
      for (int i = 0; i < 3; i++) {
        if (k == 0) want += p[i] / 3;
        if (k == 1) want += w[i] * p[i], sw += w[i];
        if (k == 2) want += (p[i] > thr[i]) / 3.0;
        if (k == 3) want += coef[i] * logit_c(p[i]);
      }
      if (k == 1) want /= sw;
      if (k == 3) want = 1 / (1 + exp(-(b0 + want)));
      double got = img < 0 ? r.probability : r.image_prob[img];
      CHECKF(fabs(got - want) < 1e-12, "%s image %d: %.12g vs %.12g", methods[k], img, got, want);
    }
    for (int i = 0; i < 3; i++) CHECK_NEAR(r.member_prob[i], mr[i].probability, 1e-12);
    CHECK_NEAR(r.threshold, 0.45, 1e-12);
    CHECK_EQ_INT(r.abnormal, r.probability > 0.45);
    study_result_free(&r);
  }
  /* Without a part, the bundle member cannot route: a clear error. */
  study_result r;
  int rc = predict_file(epath, g, 3, NULL, NULL, 16, &r, &e);
  CHECKF(rc == MSKX_EINVAL && strstr(e.msg, "ebundle.json"), "%s", e.msg);
  study_result_free(&r);
  for (int i = 0; i < 3; i++) study_result_free(&mr[i]);
  free_study(g, 3);
}

/* PyTorch's bilinear resize (align_corners=False): source coordinate
 * (dst + 0.5) * in / out - 0.5, clamped below at 0, indices capped at in-1. */
static double torch_bilinear(const float *src, int ih, int iw, int oh, int ow, int y, int x) {
  double sy = fmax((y + 0.5) * ih / oh - 0.5, 0), sx = fmax((x + 0.5) * iw / ow - 0.5, 0);
  int y0 = (int)sy, x0 = (int)sx, y1 = y0 + (y0 < ih - 1), x1 = x0 + (x0 < iw - 1);
  double ly = sy - y0, lx = sx - x0;
  return (1 - ly) * ((1 - lx) * src[y0 * iw + x0] + lx * src[y0 * iw + x1]) +
         ly * ((1 - lx) * src[y1 * iw + x0] + lx * src[y1 * iw + x1]);
}

TEST(cam_is_relu_of_classifier_weighted_features) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  /* 8x8 has the feature map's own size; 50x40 needs resampling. */
  gray_image g[2] = {fx_image(8, 8, 600), fx_image(50, 40, 601)};
  study_result r;
  predict_options po = {AGG_MEAN, 0, 1, 0};
  CHECK_OK(predict_file(mA, g, 2, NULL, &po, 16, &r, &e), &e);
  CHECK(r.cam != NULL);
  fx_ref ref;
  CHECK_OK(fx_ref_open(&ref, mA, &e), &e);
  for (int i = 0; i < 2; i++) {
    double p;
    CHECK_OK(fx_ref_prob(&ref, &g[i], &p, &e), &e);
    view f = ref.m->vt->features(ref.m);
    const float *w = ps_data(&ref.m->ps, ref.m->head_w);
    CHECK(f.h == 8 && f.w == 8);
    float fmap[64], mx = 0;
    for (int q = 0; q < 64; q++) {
      double acc = 0;
      for (int c = 0; c < f.c; c++) acc += (double)w[c] * f.p[(size_t)q * f.ld + c];
      fmap[q] = acc > 0 ? (float)acc : 0;
    }
    int W = g[i].w, H = g[i].h;
    float *want = malloc((size_t)W * H * sizeof(float));
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        want[y * W + x] = (float)torch_bilinear(fmap, 8, 8, H, W, y, x);
        mx = fmaxf(mx, want[y * W + x]);
      }
    CHECKF(mx > 0, "reference CAM is all zero");
    double worst = 0, gmax = 0, gmin = 1;
    for (int q = 0; q < W * H; q++) {
      worst = fmax(worst, fabs(r.cam[i][q] - want[q] / mx));
      gmax = fmax(gmax, r.cam[i][q]);
      gmin = fmin(gmin, r.cam[i][q]);
    }
    free(want);
    CHECKF(worst < 1e-4, "image %d: CAM differs by %g", i, worst);
    CHECK(gmin >= 0 && fabs(gmax - 1) < 1e-6);
  }
  fx_ref_close(&ref);
  study_result_free(&r);
  free_study(g, 2);
}

TEST(cam_with_keep_aspect_tta_and_ensemble_is_normalized) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  char epath[600];
  CHECK(fx_write_text(fx_path(epath, sizeof epath, "ens_cam.json"),
                      "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": "
                      "[{\"path\": \"k.safetensors\"}, {\"path\": \"c.safetensors\"}]}") == 0);
  gray_image g[2] = {fx_image(90, 30, 700), fx_image(31, 77, 701)};
  const char *files[3] = {mK, mC, epath};
  int nonzero = 0;
  for (int f = 0; f < 3; f++) {
    study_result r;
    predict_options po = {AGG_MEAN, 1, 1, 0};
    CHECK_OK(predict_file(files[f], g, 2, NULL, &po, 16, &r, &e), &e);
    for (int i = 0; i < 2; i++) {
      double mx = 0, mn = 1;
      for (int q = 0; q < g[i].w * g[i].h; q++) mx = fmax(mx, r.cam[i][q]), mn = fmin(mn, r.cam[i][q]);
      /* A map without positive activation stays all zero (ReLU). */
      CHECKF(mn >= 0 && (mx == 0 || fabs(mx - 1) < 1e-6), "%s image %d: range [%g, %g]", files[f], i, mn, mx);
      nonzero += mx > 0;
    }
    study_result_free(&r);
  }
  CHECKF(nonzero >= 3, "only %d of 6 maps have activation", nonzero);
  free_study(g, 2);
}

TEST(overlay_blends_colormap_by_heat) {
  uint8_t lut[256][3];
  cam_colormap(lut);
  /* Perceptual order: brightness increases along the map. */
  for (int i = 1; i < 256; i++) {
    double y0 = 0.299 * lut[i - 1][0] + 0.587 * lut[i - 1][1] + 0.114 * lut[i - 1][2];
    double y1 = 0.299 * lut[i][0] + 0.587 * lut[i][1] + 0.114 * lut[i][2];
    CHECKF(y1 >= y0 - 0.5, "colormap luminance decreases at %d", i);
  }
  gray_image g = fx_image(4, 1, 1);
  float heat[4] = {0, 1, 0.5f, 1};
  uint8_t rgb[12];
  cam_overlay_rgb(&g, heat, 1.0f, rgb);
  for (int c = 0; c < 3; c++) {
    CHECK_EQ_INT(rgb[c], g.px[0]);     /* no heat: the radiograph */
    CHECK_EQ_INT(rgb[3 + c], lut[255][c]); /* full heat, alpha 1: the colour */
    double want = g.px[2] + 0.5 * (lut[128][c] - g.px[2]);
    CHECK(fabs(rgb[6 + c] - want) <= 1.0);
  }
  gray_image_free(&g);
}

TEST(clone_gives_identical_results) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  predictor_options opt = {1, PREC_FP32, 16, {0}};
  predictor *p = NULL, *q = NULL;
  CHECK_OK(predictor_load(mK, &opt, &p, &e), &e);
  CHECK_OK(predictor_clone(p, &q, &e), &e);
  gray_image g[3];
  make_study(g, 3, 800);
  study_result a, b;
  predict_options po = {AGG_MEAN, 1, 1, 0};
  CHECK_OK(predictor_predict_study(p, g, 3, NULL, &po, &a, &e), &e);
  CHECK_OK(predictor_predict_study(q, g, 3, NULL, &po, &b, &e), &e);
  CHECK(a.probability == b.probability);
  for (int i = 0; i < 3; i++) CHECK(!memcmp(a.cam[i], b.cam[i], (size_t)g[i].w * g[i].h * sizeof(float)));
  study_result_free(&a);
  study_result_free(&b);
  predictor_free(p);
  predictor_free(q);
  free_study(g, 3);
}

/* Each bad file is loaded and must fail with a code and message naming it. */
static void expect_load_error(const char *name, const char *text, int code, const char *needle) {
  char path[600];
  fx_path(path, sizeof path, name);
  if (text) fx_write_text(path, text);
  mskx_err e = {0};
  predictor *p = NULL;
  int rc = predictor_load(path, NULL, &p, &e);
  if (rc != code || !strstr(e.msg, needle) || !strstr(e.msg, name) || p)
    FAILF("%s: got %d '%s', want %d with '%s'", name, rc, e.msg, code, needle);
}

TEST(bad_files_give_clear_errors) {
  CHECK(setup() == 0);
  expect_load_error("missing.safetensors", NULL, MSKX_EIO, "cannot open");
  expect_load_error("notes.txt", "hello, not a model\n", MSKX_EFORMAT, "not an mskx model, bundle or ensemble");
  expect_load_error("empty.json", "", MSKX_EFORMAT, "not an mskx model, bundle or ensemble");
  expect_load_error("other.json", "{\"format\": \"something-else\"}", MSKX_EFORMAT, "not an mskx model, bundle or ensemble");
  expect_load_error("trunc.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": ", MSKX_EFORMAT,
                    "malformed JSON");
  expect_load_error("b1.json", "{\"format\": \"mskx-bundle-1\", \"models\": [\"a.safetensors\"]}", MSKX_EFORMAT,
                    "'models'");
  expect_load_error("b2.json", "{\"format\": \"mskx-bundle-1\", \"models\": {}}", MSKX_EFORMAT, "empty");
  expect_load_error("b3.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": 5}}", MSKX_EFORMAT,
                    "models.XR_WRIST");
  expect_load_error("b4.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"nope.safetensors\"}}",
                    MSKX_EIO, "nope.safetensors");
  expect_load_error("b5.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"a b\": \"a.safetensors\"}}",
                    MSKX_EFORMAT, "not a body part");
  expect_load_error("b6.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"a.safetensors\", "
                    "\"wrist\": \"b.safetensors\"}}", MSKX_EFORMAT, "twice");
  expect_load_error("e1.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"median\", \"members\": []}",
                    MSKX_EFORMAT, "'method'");
  expect_load_error("e2.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": []}",
                    MSKX_EFORMAT, "'members'");
  expect_load_error("e3.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": [{\"weight\": 1}]}",
                    MSKX_EFORMAT, "members[0]");
  expect_load_error("e4.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"threshold\": 2, "
                    "\"members\": [{\"path\": \"a.safetensors\"}]}", MSKX_EFORMAT, "'threshold'");
  expect_load_error("e5.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"weighted\", "
                    "\"members\": [{\"path\": \"a.safetensors\", \"weight\": -1}]}", MSKX_EFORMAT, "weight");
  expect_load_error("e6.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"weighted\", "
                    "\"members\": [{\"path\": \"a.safetensors\", \"weight\": 0}]}", MSKX_EFORMAT, "total weight");
  expect_load_error("e7.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"stack\", "
                    "\"members\": [{\"path\": \"a.safetensors\"}]}", MSKX_EFORMAT, "stacker");
  expect_load_error("e8.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"stack\", \"members\": "
                    "[{\"path\": \"a.safetensors\"}], \"stacker\": {\"coef\": [1, 2], \"intercept\": 0}}",
                    MSKX_EFORMAT, "stacker.coef");
  expect_load_error("e9.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"stack\", \"members\": "
                    "[{\"path\": \"a.safetensors\"}], \"stacker\": {\"coef\": [1]}}", MSKX_EFORMAT, "intercept");
  expect_load_error("e10.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": "
                    "[{\"path\": \"a.safetensors\"}, {\"path\": \"missing_member.safetensors\"}]}", MSKX_EIO,
                    "members[1]");
  fx_write_text(fx_path((char[600]){0}, 600, "e12.json"),
                "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": [{\"path\": \"a.safetensors\"}]}");
  expect_load_error("e11.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": "
                    "[{\"path\": \"e12.json\"}]}", MSKX_EUNSUPPORTED, "cannot be a member");
  expect_load_error("b7.json", "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"e12.json\"}}",
                    MSKX_EUNSUPPORTED, "cannot be a member");
  expect_load_error("ens_self.json", "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": "
                    "[{\"path\": \"ens_self.json\"}]}", MSKX_EUNSUPPORTED, "cannot be a member");
  char dir[600];
  expect_load_error(strrchr(fx_path(dir, sizeof dir, ""), '/') + 1, NULL, MSKX_EIO, "directory");
}

TEST(truncated_and_mutated_json_never_crash) {
  CHECK(setup() == 0);
  const char *good = "{\"format\": \"mskx-ensemble-1\", \"method\": \"stack\", \"threshold\": 0.4, \"members\": "
                     "[{\"path\": \"a.safetensors\", \"weight\": 2}], \"stacker\": {\"coef\": [1.5], \"intercept\": -0.1}}";
  char path[600], buf[512];
  fx_path(path, sizeof path, "fuzz.json");
  size_t n = strlen(good);
  int ok = 0;
  for (size_t cut = 0; cut <= n; cut += 3) {
    memcpy(buf, good, cut);
    buf[cut] = 0;
    CHECK(fx_write_text(path, buf) == 0);
    mskx_err e = {0};
    predictor *p = NULL;
    int rc = predictor_load(path, NULL, &p, &e);
    CHECKF(rc || p, "cut %zu: no error and no predictor", cut);
    CHECKF(!rc || strstr(e.msg, "fuzz.json"), "cut %zu: message does not name the file: %s", cut, e.msg);
    ok += rc == 0;
    predictor_free(p);
  }
  rng r;
  rng_seed(&r, 5);
  for (int t = 0; t < 60; t++) {
    memcpy(buf, good, n + 1);
    for (int k = 0; k < 3; k++) buf[rng_below(&r, n)] = "{}[]\":,0x-"[rng_below(&r, 10)];
    CHECK(fx_write_text(path, buf) == 0);
    mskx_err e = {0};
    predictor *p = NULL;
    int rc = predictor_load(path, NULL, &p, &e);
    CHECKF(rc || p, "mutation %d: no error and no predictor", t);
    predictor_free(p);
  }
  CHECK(ok <= 1);
}

TEST(zero_and_empty_images_are_rejected) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  predictor *p = NULL;
  CHECK_OK(predictor_load(mA, NULL, &p, &e), &e);
  study_result r;
  CHECK(predictor_predict_study(p, NULL, 0, NULL, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "at least one"));
  gray_image g[2] = {fx_image(10, 10, 1), {0, 0, NULL}};
  CHECK(predictor_predict_study(p, g, 2, NULL, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "image 2"));
  study_result_free(&r);
  gray_image_free(&g[0]);
  predictor_free(p);
}

TEST_MAIN()
