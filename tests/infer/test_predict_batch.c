/* predictor_predict_batch (the scheduler of `mskx serve`): studies computed
 * together equal the same studies computed alone, through bundle routing
 * (studies of different parts in one call), flip TTA, maps and ensembles
 * (computed alone), chunks smaller than the whole batch, and per-study
 * errors that leave the other studies' answers intact. */
#include "infer/predictor.h"
#include "infer_fixtures.h"
#include "test.h"

/* fp32 forward passes of different batch shapes: oneDNN may choose another
 * convolution algorithm for another batch size (predictor tests use the same). */
#define TOL 2e-5

static char mA[FX_PATH_MAX], mB[FX_PATH_MAX], mBundle[FX_PATH_MAX], mEns[FX_PATH_MAX];

static int setup(void) {
  static int made;
  if (made) return 0;
  mskx_err e = {0};
  int rc = fx_make_pair_and_bundle(mA, mB, mBundle, &e) ||
           fx_write_text(fx_path(mEns, sizeof mEns, "ens.json"),
                         "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": "
                         "[{\"path\": \"a.safetensors\"}, {\"path\": \"b.safetensors\"}]}");
  if (rc) fprintf(stderr, "setup: %s\n", e.msg);
  made = !rc;
  return rc;
}

#define N_STUDIES 6

typedef struct spec {
  int n;
  const char *part;
  predict_options po;
  const char *prep_part;   /* prepared for this part instead (a study whose routing then fails) */
} spec;

/* Studies computed alone (fresh predictor, max_batch 16) against the same
 * studies in one batched call (max_batch mb). Returns the groups run. */
static int compare(const char *model, const spec *sp, int ns, int mb, const int *want_fail) {
  mskx_err e = {0};
  predictor_options opt = {1, PREC_FP32, mb, {0}}, opt1 = {1, PREC_FP32, 16, {0}};
  predictor *p = NULL, *p1 = NULL;
  if (predictor_load(model, &opt, &p, &e) || predictor_load(model, &opt1, &p1, &e)) {
    fprintf(stderr, "load: %s\n", e.msg);
    return -1;
  }
  gray_image g[N_STUDIES][4];
  image_source src[N_STUDIES][4];
  study_inputs *in[N_STUDIES];
  const char *parts[N_STUDIES];
  predict_options po[N_STUDIES];
  study_result alone[N_STUDIES], together[N_STUDIES];
  int rcs[N_STUDIES], rc1[N_STUDIES], groups = 0, bad = 0;
  mskx_err errs[N_STUDIES];
  memset(together, 0, sizeof together);
  memset(in, 0, sizeof in);
  for (int s = 0; s < ns; s++) {
    for (int i = 0; i < sp[s].n; i++) {
      g[s][i] = fx_image(30 + 7 * i + 3 * s, 60 - 5 * i, (uint64_t)(100 * s + i));
      src[s][i] = (image_source){.pixels = g[s][i].px, .w = g[s][i].w, .h = g[s][i].h, .channels = 1};
    }
    parts[s] = sp[s].part;
    po[s] = sp[s].po;
    rc1[s] = predictor_predict_sources(p1, src[s], sp[s].n, sp[s].part, &po[s], &alone[s], &e);
    if (predictor_prepare(p, src[s], sp[s].n, sp[s].prep_part ? sp[s].prep_part : sp[s].part, &po[s], &in[s], &e)) {
      fprintf(stderr, "prepare: %s\n", e.msg);
      bad = 1;
    }
  }
  if (!bad) predictor_predict_batch(p, in, parts, po, ns, together, rcs, errs, &groups);
  for (int s = 0; !bad && s < ns; s++) {
    if (!!rcs[s] != !!rc1[s] || !!rcs[s] != !!want_fail[s]) {
      fprintf(stderr, "study %d: batched rc %d (%s), alone rc %d\n", s, rcs[s], errs[s].msg, rc1[s]);
      bad = 1;
    }
    if (rcs[s] || rc1[s]) continue;
    double d = fabs(together[s].probability - alone[s].probability);
    for (int i = 0; i < sp[s].n; i++) {
      double di = fabs(together[s].image_prob[i] - alone[s].image_prob[i]);
      d = di > d ? di : d;
    }
    if (d > TOL || together[s].abnormal != alone[s].abnormal || strcmp(together[s].model_used, alone[s].model_used) ||
        (alone[s].cam && !together[s].cam)) {
      fprintf(stderr, "study %d: batched %.9f vs alone %.9f (max diff %.3g), %s vs %s\n", s, together[s].probability,
              alone[s].probability, d, together[s].model_used, alone[s].model_used);
      bad = 1;
    }
  }
  for (int s = 0; s < ns; s++) {
    study_result_free(&alone[s]);
    study_result_free(&together[s]);
    study_inputs_free(in[s]);
    for (int i = 0; i < sp[s].n; i++) gray_image_free(&g[s][i]);
  }
  predictor_free(p);
  predictor_free(p1);
  return bad ? -1 : groups;
}

TEST(batched_single_model_equals_alone) {
  CHECK(setup() == 0);
  spec sp[4] = {{3, NULL, {AGG_MEAN, 0, 0, 0}, NULL}, {1, NULL, {AGG_MEAN, 0, 0, 0}, NULL}, {2, NULL, {AGG_MAX, 1, 0, 0}, NULL},
                {4, NULL, {AGG_MEAN, 0, 0, 0}, NULL}};
  int none[4] = {0};
  int groups = compare(mA, sp, 4, 16, none);   /* 3 + 1 + 4 (TTA) + 4 = 12 inputs: one forward pass */
  CHECK_EQ_INT(groups, 1);
  groups = compare(mA, sp, 4, 5, none);        /* chunks of at most 5 inputs across studies */
  CHECK_EQ_INT(groups, 3);
}

TEST(batched_bundle_routes_each_study) {
  CHECK(setup() == 0);
  /* wrist, elbow, wrist (TTA), a part the bundle lacks (its own error), elbow with maps (alone) */
  spec sp[5] = {{3, "wrist", {AGG_MEAN, 0, 0, 0}, NULL}, {2, "XR_ELBOW", {AGG_MEAN, 0, 0, 0}, NULL}, {1, "XR_WRIST", {AGG_MEAN, 1, 0, 0}, NULL},
                {2, "XR_HAND", {AGG_MEAN, 0, 0, 0}, "wrist"}, {2, "elbow", {AGG_MEAN, 0, 1, 0}, NULL}};
  int fail[5] = {0, 0, 0, 1, 0};
  int groups = compare(mBundle, sp, 5, 16, fail);
  CHECK_EQ_INT(groups, 3);   /* the wrist group, the elbow group, the study with maps */
}

TEST(batched_ensemble_runs_each_alone) {
  CHECK(setup() == 0);
  spec sp[3] = {{3, NULL, {AGG_MEAN, 0, 0, 0}, NULL}, {1, NULL, {AGG_MEAN, 1, 0, 0}, NULL}, {2, NULL, {AGG_MAX, 0, 1, 0}, NULL}};
  int none[3] = {0};
  CHECK_EQ_INT(compare(mEns, sp, 3, 16, none), 3);
}

/* One context through more batch sizes than its plan cache holds, twice:
 * cached copies (and evicted, re-made ones) answer as the network alone. */
TEST(plan_cache_sizes_and_eviction) {
  CHECK(setup() == 0);
  mskx_err e = {0};
  predictor_options opt = {1, PREC_FP32, 16, {0}};
  predictor *p = NULL, *p1 = NULL;
  CHECK_OK(predictor_load(mA, &opt, &p, &e), &e);
  CHECK_OK(predictor_load(mA, &opt, &p1, &e), &e);
  predict_options po = {AGG_MEAN, 0, 0, 0};
  int bad = 0;
  for (int round = 0; round < 2 && !bad; round++)
    for (int n = 1; n <= PLAN_CACHE + 3 && !bad; n++) {
      gray_image g[PLAN_CACHE + 3];
      image_source src[PLAN_CACHE + 3];
      for (int i = 0; i < n; i++) {
        g[i] = fx_image(40 + i, 50, (uint64_t)(7 * n + i));
        src[i] = (image_source){.pixels = g[i].px, .w = g[i].w, .h = g[i].h, .channels = 1};
      }
      study_inputs *in = NULL;
      study_result alone, together;
      const char *part = NULL;
      int rc = 0, groups = 0;
      memset(&together, 0, sizeof together);
      bad = predictor_predict_sources(p1, src, n, NULL, &po, &alone, &e) ||
            predictor_prepare(p, src, n, NULL, &po, &in, &e);
      if (!bad) {
        predictor_predict_batch(p, &in, &part, &po, 1, &together, &rc, &e, &groups);
        bad = rc || fabs(together.probability - alone.probability) > TOL;
        if (bad) fprintf(stderr, "n %d round %d: rc %d (%s), %.9f vs %.9f\n", n, round, rc, e.msg, together.probability,
                         alone.probability);
      }
      study_result_free(&alone);
      study_result_free(&together);
      study_inputs_free(in);
      for (int i = 0; i < n; i++) gray_image_free(&g[i]);
    }
  predictor_free(p);
  predictor_free(p1);
  CHECK(!bad);
}

/* A setting the model file gives its network beyond the arch (Inception-v3's
 * transform_input) reaches the plan cache's copies (pnode_net_copy) and
 * cloned contexts: both were once made without it and computed other
 * probabilities than the loaded network (found by onnx_test's ORT check;
 * random Inception-v3 weights saturate the probabilities, so the settings
 * themselves are compared here). */
TEST(copies_keep_transform_input) {
  char ti[600];
  mskx_err e = {0};
  CHECK_OK(fx_make_model_ti(fx_path(ti, sizeof ti, "inc_ti.safetensors"), "inception_v3", 5, 75, 0, 0.5, 1, &e), &e);
  predictor_options opt = {1, PREC_FP32, 16, {0}};
  predictor *p = NULL, *pc = NULL;
  CHECK_OK(predictor_load(ti, &opt, &p, &e), &e);
  net *c = NULL;
  int rc = predictor_clone(p, &pc, &e);
  if (!rc) rc = pnode_net_copy(&p->root, p->eng, &c, &e);
  int ok = !rc && p->root.m->transform_input == 1 && pc->root.m->transform_input == 1 && c->transform_input == 1 &&
           c->cx.bn_eps == p->root.m->cx.bn_eps && c->ps.n_params == p->root.m->ps.n_params &&
           !memcmp(c->ps.params, p->root.m->ps.params, c->ps.n_params * sizeof(float)) &&
           !memcmp(c->ps.buffers, p->root.m->ps.buffers, c->ps.n_buffers * sizeof(float));
  if (rc) fprintf(stderr, "%s\n", e.msg);
  net_destroy(c);
  predictor_free(pc);
  predictor_free(p);
  CHECK(ok);
}

TEST_MAIN()
