/* batch_predict_files (the engine of `mskx predict` over many studies):
 * a folder tree of synthetic studies predicted by the engine equals the
 * same studies through mskx_predict_files one by one, in the same order,
 * whatever the decoder threads, window and batch size; bad studies among
 * good ones get their own error (the one-by-one message) and the others
 * their answers; a callback can stop the run. */
#include "infer/batch_predict.h"
#include "core/error.h"
#include "infer_fixtures.h"
#include "test.h"

/* fp32 forward passes of different batch shapes: oneDNN may choose another
 * convolution algorithm for another batch size (test_predict_batch too). */
#define TOL 2e-5
#define N_GOOD 23
#define MAX_STUDY 8

static char mA[FX_PATH_MAX], mB[FX_PATH_MAX], mBundle[FX_PATH_MAX];

typedef struct study_files {
  char *paths[MAX_STUDY];
  int n;
} study_files;

static study_files good[N_GOOD];

static int setup(void) {
  static int made;
  if (made) return 0;
  mskx_err e = {0};
  int rc = fx_make_pair_and_bundle(mA, mB, mBundle, &e);
  /* Studies of 1..4 images of assorted sizes, wrists and elbows, in MURA's layout. */
  for (int s = 0; !rc && s < N_GOOD; s++) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/MURA/valid/%s/patient%d/study1_negative", fx_tmp(), s % 3 ? "XR_WRIST" : "XR_ELBOW", s);
    rc = mkdir_p(dir, &e);
    good[s].n = 1 + (s * 7) % 4;
    for (int i = 0; !rc && i < good[s].n; i++) {
      char p[800];
      snprintf(p, sizeof p, "%s/image%d.png", dir, i + 1);
      gray_image g = fx_image(40 + 9 * i + s, 70 - 6 * i, (uint64_t)(1000 + 10 * s + i));
      rc = image_write_png(p, g.px, g.w, g.h, 1, &e);
      free(g.px);
      if (!rc && !(good[s].paths[i] = str_dup(p))) rc = err_set(&e, MSKX_ENOMEM, "out of memory");
    }
  }
  if (rc) fprintf(stderr, "setup: %s\n", e.msg);
  made = !rc;
  return rc;
}

/* What the callback saw. */
typedef struct seen {
  int n, order_ok, stop_at;
  int rc[64];
  char msg[64][1024];   /* mskx_err.msg */
  mskx_result *r[64];
} seen;

static mskx_result *copy_result(const mskx_result *r) {
  mskx_result *c = calloc(1, sizeof *c);
  *c = *r;
  c->model_used = str_dup(r->model_used);
  c->images = calloc((size_t)r->n_images, sizeof *c->images);
  for (int i = 0; i < r->n_images; i++) {
    c->images[i] = r->images[i];
    c->images[i].name = str_dup(r->images[i].name);
    c->images[i].overlay_png = NULL;
    c->images[i].image_png = NULL;
    c->images[i].cam = NULL;
    if (r->images[i].cam) {
      size_t k = (size_t)r->images[i].cam_width * r->images[i].cam_height;
      c->images[i].cam = malloc(k * sizeof(float));
      memcpy(c->images[i].cam, r->images[i].cam, k * sizeof(float));
    }
  }
  c->member_probabilities = NULL;
  c->n_members = 0;
  return c;
}

static int on_study(void *user, int i, const mskx_result *r, int rc, const mskx_err *e) {
  seen *s = user;
  if (i != s->n || s->n >= 64) s->order_ok = 0;
  if (s->n < 64) {
    s->rc[s->n] = rc;
    snprintf(s->msg[s->n], sizeof s->msg[s->n], "%s", rc ? e->msg : "");
    s->r[s->n] = r ? copy_result(r) : NULL;
  }
  s->n++;
  return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static void seen_free(seen *s) {
  for (int i = 0; i < s->n && i < 64; i++) mskx_result_free(s->r[i]);
}

/* Compares the engine's study k with mskx_predict_files of the same files;
 * fills why on a difference. */
static int same_as_alone(mskx_model *m, const seen *s, int k, const char *const *paths, int n, const char *part,
                         const mskx_predict_options *po, char *why, size_t wn) {
  mskx_result *r = NULL;
  mskx_err e = {0, ""};
  int rc = mskx_predict_files(m, paths, n, part, po, &r, &e);
  int bad = 0;
  if (!!rc != !!s->rc[k] || (rc && strcmp(e.msg, s->msg[k]))) {
    snprintf(why, wn, "study %d: alone rc %d '%s', engine rc %d '%s'", k, rc, e.msg, s->rc[k], s->msg[k]);
    bad = 1;
  } else if (!rc) {
    const mskx_result *b = s->r[k];
    bad = b->n_images != r->n_images || fabs(b->probability - r->probability) > TOL || b->abnormal != r->abnormal ||
          b->threshold != r->threshold || strcmp(b->part, r->part) || strcmp(b->model_used, r->model_used);
    for (int i = 0; !bad && i < r->n_images; i++) {
      bad = fabs(b->images[i].probability - r->images[i].probability) > TOL || strcmp(b->images[i].name, r->images[i].name) ||
            b->images[i].width != r->images[i].width || !!b->images[i].cam != !!r->images[i].cam;
      size_t px = (size_t)r->images[i].cam_width * r->images[i].cam_height;
      for (size_t j = 0; !bad && r->images[i].cam && j < px; j++) bad = fabsf(b->images[i].cam[j] - r->images[i].cam[j]) > 1e-4f;
    }
    if (bad) snprintf(why, wn, "study %d: engine p %.9f, alone p %.9f (%s)", k, b->probability, r->probability, paths[0]);
  }
  mskx_result_free(r);
  return bad;
}

static mskx_model *load(const char *path, int max_batch) {
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.threads = 1;
  lo.max_batch = max_batch;
  lo.max_contexts = 1;
  mskx_model *m = NULL;
  mskx_err e = {0, ""};
  if (mskx_model_load(path, &lo, &m, &e)) fprintf(stderr, "load %s: %s\n", path, e.msg);
  return m;
}

/* Runs the good studies through the engine with these settings and
 * compares each with the one-by-one path. */
static void check_config(const char *model, int max_batch, int decoders, int window, const mskx_predict_options *po,
                         char *why, size_t wn, int *bad) {
  mskx_model *m = load(model, max_batch);
  if (!m) {
    snprintf(why, wn, "cannot load %s", model);
    *bad = 1;
    return;
  }
  batch_study bs[N_GOOD];
  for (int s = 0; s < N_GOOD; s++) bs[s] = (batch_study){(const char *const *)good[s].paths, good[s].n, NULL};
  seen sn = {.order_ok = 1};
  batch_predict_options bo = {decoders, window};
  mskx_err e = {0, ""};
  int rc = batch_predict_files(m, bs, N_GOOD, po, &bo, on_study, &sn, &e);
  if (rc || sn.n != N_GOOD || !sn.order_ok) {
    snprintf(why, wn, "engine rc %d (%s), %d studies delivered, in order %d", rc, e.msg, sn.n, sn.order_ok);
    *bad = 1;
  }
  for (int s = 0; !*bad && s < N_GOOD; s++)
    *bad = same_as_alone(m, &sn, s, (const char *const *)good[s].paths, good[s].n, NULL, po, why, wn);
  seen_free(&sn);
  mskx_model_free(m);
}

TEST(engine_equals_one_by_one_in_order) {
  CHECK(setup() == 0);
  char why[600] = "";
  int bad = 0;
  mskx_predict_options po = {0};
  /* One decoder, a window of one: strictly alternating. */
  check_config(mA, 16, 1, 1, &po, why, sizeof why, &bad);
  /* Several decoders, a window that wraps many times, batches of 7 inputs
   * (studies gathered whole; a 4-image study after 3 starts a new batch). */
  if (!bad) check_config(mA, 7, 3, 4, &po, why, sizeof why, &bad);
  /* Defaults; max aggregation and flip TTA (two inputs per image). */
  po.agg = MSKX_AGG_MAX;
  po.tta_flip = 1;
  if (!bad) check_config(mA, 5, 0, 0, &po, why, sizeof why, &bad);
  CHECKF(!bad, "%s", why);
}

TEST(engine_bundle_and_maps_equal_one_by_one) {
  CHECK(setup() == 0);
  char why[600] = "";
  int bad = 0;
  mskx_predict_options po = {0};
  /* Each study routed to its part's model (parts from the XR_* folders). */
  check_config(mBundle, 6, 2, 3, &po, why, sizeof why, &bad);
  /* Maps: such studies are computed one at a time, in the engine's order. */
  po.want_cam = 1;
  if (!bad) check_config(mA, 16, 2, 5, &po, why, sizeof why, &bad);
  CHECKF(!bad, "%s", why);
}

TEST(bad_studies_among_good_get_their_own_errors) {
  CHECK(setup() == 0);
  char corrupt[800], empty[800], text[800], missing[800], shoulder[800], sdir[700];
  /* In a wrist folder, so that the bundle routes them and decoding fails. */
  char bdir[700];
  snprintf(bdir, sizeof bdir, "%s/MURA/valid/XR_WRIST/bad", fx_tmp());
  snprintf(corrupt, sizeof corrupt, "%s/corrupt.png", bdir);
  snprintf(empty, sizeof empty, "%s/empty.png", bdir);
  snprintf(text, sizeof text, "%s/notes.dcm", bdir);
  snprintf(missing, sizeof missing, "%s/does-not-exist.png", bdir);
  snprintf(sdir, sizeof sdir, "%s/MURA/valid/XR_SHOULDER/p1/s1", fx_tmp());
  snprintf(shoulder, sizeof shoulder, "%s/image1.png", sdir);
  mskx_err e = {0, ""};
  uint8_t *png = NULL;
  size_t len = 0;
  CHECK(file_read_all(good[0].paths[0], 1 << 20, &png, &len, &e) == 0);
  int wrc = mkdir_p(bdir, &e) || file_write_atomic(corrupt, png, len / 2, &e) || file_write_atomic(empty, png, 0, &e) ||
            fx_write_text(text, "not an image at all") || mkdir_p(sdir, &e) ||
            file_write_atomic(shoulder, png, len, &e);
  free(png);
  CHECKF(!wrc, "fixtures: %s", e.msg);
  /* Good, bad, good, ... : every kind of failure between answered studies. */
  const char *one[][2] = {{good[1].paths[0], NULL}, {corrupt, NULL},           {good[2].paths[0], NULL},
                          {empty, NULL},            {good[3].paths[0], NULL}, {missing, NULL},
                          {text, NULL},             {shoulder, NULL},          {good[4].paths[0], corrupt},
                          {good[5].paths[0], NULL}};
  int want_fail[] = {0, 1, 0, 1, 0, 1, 1, 1, 1, 0};
  enum { N = 10 };
  batch_study bs[N];
  for (int s = 0; s < N; s++) bs[s] = (batch_study){one[s], one[s][1] ? 2 : 1, NULL};
  mskx_model *m = load(mBundle, 16);
  CHECK(m != NULL);
  seen sn = {.order_ok = 1};
  batch_predict_options bo = {2, 3};
  int rc = batch_predict_files(m, bs, N, NULL, &bo, on_study, &sn, &e);
  char why[600] = "";
  int bad = rc || sn.n != N || !sn.order_ok;
  if (bad) snprintf(why, sizeof why, "engine rc %d (%.300s), %d delivered, in order %d", rc, e.msg, sn.n, sn.order_ok);
  for (int s = 0; !bad && s < N; s++) {
    if (!!sn.rc[s] != want_fail[s]) {
      snprintf(why, sizeof why, "study %d: rc %d '%.300s', expected %s", s, sn.rc[s], sn.msg[s], want_fail[s] ? "an error" : "an answer");
      bad = 1;
    }
    if (!bad) bad = same_as_alone(m, &sn, s, bs[s].paths, bs[s].n, NULL, NULL, why, sizeof why);
  }
  /* The errors name what is wrong. */
  if (!bad && (!strstr(sn.msg[1], "corrupt.png") || !strstr(sn.msg[5], "does-not-exist.png") ||
               !strstr(sn.msg[7], "XR_SHOULDER") || !strstr(sn.msg[8], "corrupt.png"))) {
    snprintf(why, sizeof why, "messages: '%.130s' '%.130s' '%.130s' '%.130s'", sn.msg[1], sn.msg[5], sn.msg[7], sn.msg[8]);
    bad = 1;
  }
  seen_free(&sn);
  mskx_model_free(m);
  CHECKF(!bad, "%s", why);
}

TEST(callback_stops_the_run) {
  CHECK(setup() == 0);
  mskx_model *m = load(mA, 4);
  CHECK(m != NULL);
  batch_study bs[N_GOOD];
  for (int s = 0; s < N_GOOD; s++) bs[s] = (batch_study){(const char *const *)good[s].paths, good[s].n, NULL};
  seen sn = {.order_ok = 1, .stop_at = 5};
  batch_predict_options bo = {3, 6};
  mskx_err e = {0, ""};
  int rc = batch_predict_files(m, bs, N_GOOD, NULL, &bo, on_study, &sn, &e);
  seen_free(&sn);
  /* Nothing at all: fine. Bad options: refused. */
  int rc0 = batch_predict_files(m, bs, 0, NULL, NULL, on_study, &sn, &e);
  batch_predict_options neg = {-1, 0};
  int rc_bad = batch_predict_files(m, bs, 1, NULL, &neg, on_study, &sn, &e);
  mskx_model_free(m);
  CHECKF(rc == 7 && sn.n == 5 && sn.order_ok, "rc %d, %d delivered", rc, sn.n);
  CHECK(rc0 == 0 && rc_bad == MSKX_EINVAL && strstr(e.msg, "decode threads"));
}

int main(int argc, char **argv) {
  int rc = test_main(argc, argv);
  for (int s = 0; s < N_GOOD; s++)
    for (int i = 0; i < good[s].n; i++) free(good[s].paths[i]);
  return rc;
}
