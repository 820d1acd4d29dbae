/* The public C API (include/mskx.h): load/info, the three input forms give
 * identical results, overlays, part parsing, concurrent == sequential
 * bit-for-bit, and bad input. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/stat.h>
#include "infer_fixtures.h"
#include "mskx.h"
#include "test.h"

static char mA[600], mB[600], bundle[600];
static int made;

static int setup(void) {
  if (made) return 0;
  mskx_err e = {0};
  char js[1400];
  int rc = fx_make_model(fx_path(mA, sizeof mA, "a.safetensors"), TINY_ARCH, 11, 64, 0, 0.5, &e) ||
           fx_make_model(fx_path(mB, sizeof mB, "b.safetensors"), TINY_ARCH2, 22, 32, 1, 0.4, &e);
  snprintf(js, sizeof js, "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_HAND\": \"b.safetensors\"}, "
                          "\"default\": \"a.safetensors\"}");
  if (!rc) rc = fx_write_text(fx_path(bundle, sizeof bundle, "bundle.json"), js);
  if (rc) fprintf(stderr, "setup: %s\n", e.msg);
  made = !rc;
  return rc;
}

static int same_result(const mskx_result *a, const mskx_result *b, int cams) {
  if (a->probability != b->probability || a->abnormal != b->abnormal || a->n_images != b->n_images) return 0;
  for (int i = 0; i < a->n_images; i++) {
    if (a->images[i].probability != b->images[i].probability) return 0;
    size_t n = (size_t)a->images[i].cam_width * a->images[i].cam_height;
    if (cams && memcmp(a->images[i].cam, b->images[i].cam, n * sizeof(float))) return 0;
  }
  return 1;
}

TEST(load_and_info) {
  CHECK(setup() == 0);
  mskx_err e;
  mskx_model *m = NULL;
  CHECK_OK(mskx_model_load(mA, NULL, &m, &e), &e);
  struct mskx_model_info in;
  CHECK_OK(mskx_model_info(m, &in), &e);
  CHECK(in.kind == MSKX_KIND_MODEL && !strcmp(in.kind_name, "model") && in.n_members == 1);
  CHECK(!strcmp(in.arch, TINY_ARCH) && in.size == 64 && !strcmp(in.parts, "all") && in.threshold == 0.5);
  CHECK(!strcmp(in.path, mA) && !strcmp(in.method, ""));
  cJSON *j = cJSON_Parse(in.metadata_json);
  CHECK(j != NULL);
  CHECK(!strcmp(cJSON_GetObjectItem(j, "format")->valuestring, "mskx-model-1"));
  CHECK(!strcmp(cJSON_GetObjectItem(j, "arch")->valuestring, TINY_ARCH));
  cJSON_Delete(j);
  mskx_model_free(m);
  CHECK_OK(mskx_model_load(bundle, NULL, &m, &e), &e);
  CHECK_OK(mskx_model_info(m, &in), &e);
  CHECK(in.kind == MSKX_KIND_BUNDLE && in.n_members == 2 && in.size == 0);
  CHECKF(!strcmp(in.parts, "XR_HAND,default"), "parts %s", in.parts);
  CHECK(in.threshold == -1);
  j = cJSON_Parse(in.metadata_json);
  CHECK(j && cJSON_GetObjectItem(cJSON_GetObjectItem(j, "models"), "XR_HAND") && cJSON_GetObjectItem(j, "default"));
  cJSON_Delete(j);
  mskx_model_free(m);
  mskx_model_free(NULL);
  mskx_result_free(NULL);
  CHECK(mskx_model_info(NULL, &in) == MSKX_EINVAL);
}

/* 16-bit pixels (bits_per_sample 16) predict as their 8-bit reduction,
 * written out here with the rounding the PNG decoder uses: grey
 * round(v * 255 / 65535), RGB the BT.601 luma of the 16-bit samples scaled
 * in one rounding step. Strides in bytes; bad sample sizes are refused. */
TEST(pixels_16bit_reduce_like_png_decoding) {
  CHECK(setup() == 0);
  mskx_err e;
  mskx_model *m = NULL;
  CHECK_OK(mskx_model_load(mA, NULL, &m, &e), &e);
  enum { W = 64, H = 64, PAD = 3 };
  static uint16_t g16[H][W + PAD], c16[H * W * 3];
  static uint8_t g8[H * W], l8[H * W];
  rng r;
  rng_seed(&r, 11);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint32_t v = (uint32_t)rng_below(&r, 65536);
      g16[y][x] = (uint16_t)v;
      g8[y * W + x] = (uint8_t)floor(v * 255.0 / 65535.0 + 0.5);
      uint64_t rgb[3];
      for (int c = 0; c < 3; c++) c16[(y * W + x) * 3 + c] = (uint16_t)(rgb[c] = rng_below(&r, 65536));
      l8[y * W + x] = (uint8_t)floor((299.0 * rgb[0] + 587.0 * rgb[1] + 114.0 * rgb[2]) / 1000.0 * 255.0 / 65535.0 + 0.5);
    }
  mskx_pixel_image p[4] = {{(const unsigned char *)g16, W, H, 1, (W + PAD) * 2, "g16", 16},
                           {g8, W, H, 1, 0, "g8", 8},
                           {(const unsigned char *)c16, W, H, 3, 0, "c16", 16},
                           {l8, W, H, 1, 0, "l8", 0}};
  mskx_result *res[4] = {0};
  for (int k = 0; k < 4; k++) CHECK_OK(mskx_predict_pixels(m, &p[k], 1, NULL, NULL, &res[k], &e), &e);
  CHECK(res[0]->probability == res[1]->probability);
  CHECK(res[2]->probability == res[3]->probability);
  CHECK(res[0]->probability != res[2]->probability);
  for (int k = 0; k < 4; k++) mskx_result_free(res[k]);
  mskx_result *bad = NULL;
  mskx_pixel_image b = {g8, W, H, 1, 0, "twelve", 12};
  CHECK(mskx_predict_pixels(m, &b, 1, NULL, NULL, &bad, &e) == MSKX_EINVAL && strstr(e.msg, "bits_per_sample") && !bad);
  b = (mskx_pixel_image){(const unsigned char *)g16, W, H, 1, W, "short stride", 16};
  CHECK(mskx_predict_pixels(m, &b, 1, NULL, NULL, &bad, &e) == MSKX_EINVAL && strstr(e.msg, "stride"));
  b = (mskx_pixel_image){(const unsigned char *)g16 + 1, W, H, 1, 0, "odd", 16};
  CHECK(mskx_predict_pixels(m, &b, 1, NULL, NULL, &bad, &e) == MSKX_EINVAL && strstr(e.msg, "aligned"));
  CHECK(!strcmp(mskx_version(), MSKX_VERSION));
  mskx_model_free(m);
}

/* PNG bytes, grey pixels, RGB pixels (grey replicated, padded rows) and
 * files of the same images give the same result. */
TEST(encoded_pixels_rgb_and_files_agree) {
  CHECK(setup() == 0);
  mskx_err e;
  mskx_model *m = NULL;
  CHECK_OK(mskx_model_load(mA, NULL, &m, &e), &e);
  gray_image g[2] = {fx_image(45, 33, 1), fx_image(20, 70, 2)};
  mskx_encoded_image enc[2];
  mskx_pixel_image pg[2], prgb[2];
  uint8_t *png[2], *rgb[2];
  size_t len[2];
  char path[2][600];
  const char *paths[2];
  for (int i = 0; i < 2; i++) {
    CHECK_OK(image_encode_png(g[i].px, g[i].w, g[i].h, 1, &png[i], &len[i], &e), &e);
    enc[i] = (mskx_encoded_image){png[i], len[i], NULL};
    pg[i] = (mskx_pixel_image){g[i].px, g[i].w, g[i].h, 1, 0, "grey", 8};
    int stride = g[i].w * 3 + 5;
    rgb[i] = calloc((size_t)stride * g[i].h, 1);
    for (int y = 0; y < g[i].h; y++)
      for (int x = 0; x < g[i].w; x++) memset(rgb[i] + (size_t)y * stride + 3 * x, g[i].px[y * g[i].w + x], 3);
    prgb[i] = (mskx_pixel_image){rgb[i], g[i].w, g[i].h, 3, stride, NULL, 0};
    snprintf(path[i], sizeof path[i], "%s/img%d.png", fx_tmp(), i);
    CHECK_OK(image_write_png(path[i], g[i].px, g[i].w, g[i].h, 1, &e), &e);
    paths[i] = path[i];
  }
  mskx_predict_options po;
  mskx_predict_options_default(&po);
  po.want_cam = 1;
  po.want_overlay = 1;
  mskx_result *r[4] = {0};
  CHECK_OK(mskx_predict_encoded(m, enc, 2, NULL, &po, &r[0], &e), &e);
  CHECK_OK(mskx_predict_pixels(m, pg, 2, NULL, &po, &r[1], &e), &e);
  CHECK_OK(mskx_predict_pixels(m, prgb, 2, NULL, &po, &r[2], &e), &e);
  CHECK_OK(mskx_predict_files(m, paths, 2, NULL, &po, &r[3], &e), &e);
  for (int k = 1; k < 4; k++) CHECKF(same_result(r[0], r[k], 1), "input form %d differs", k);
  CHECK(!strcmp(r[0]->images[0].name, "image 1") && !strcmp(r[1]->images[1].name, "grey"));
  CHECK(!strcmp(r[3]->images[1].name, path[1]) && !strcmp(r[3]->model_used, mA));
  CHECK(r[0]->threshold == 0.5 && r[0]->abnormal == (r[0]->probability > 0.5) && r[0]->n_members == 0);
  CHECK_NEAR(r[0]->probability, 0.5 * (r[0]->images[0].probability + r[0]->images[1].probability), 1e-12);
  for (int i = 0; i < 2; i++) {
    const mskx_image_result *ir = &r[0]->images[i];
    int w = 0, h = 0;
    CHECK(ir->width == g[i].w && ir->height == g[i].h && ir->cam);
    CHECK_OK(image_probe(ir->overlay_png, ir->overlay_png_len, "overlay", &w, &h, &e), &e);
    CHECK(w == g[i].w && h == g[i].h);
  }
  for (int k = 0; k < 4; k++) mskx_result_free(r[k]);
  /* Overlays without maps, and a real colour image vs its luma. */
  po.want_cam = 0;
  uint8_t col[3 * 6 * 5], luma[6 * 5];
  rng rr;
  rng_seed(&rr, 3);
  for (int q = 0; q < 30; q++) {
    for (int c = 0; c < 3; c++) col[3 * q + c] = (uint8_t)rng_below(&rr, 256);
    luma[q] = (uint8_t)lround(0.299 * col[3 * q] + 0.587 * col[3 * q + 1] + 0.114 * col[3 * q + 2]);
  }
  mskx_pixel_image pc = {col, 6, 5, 3, 0, "colour", 0}, pl = {luma, 6, 5, 1, 0, "luma", 0};
  mskx_result *a = NULL, *b = NULL;
  CHECK_OK(mskx_predict_pixels(m, &pc, 1, NULL, &po, &a, &e), &e);
  CHECK_OK(mskx_predict_pixels(m, &pl, 1, NULL, &po, &b, &e), &e);
  CHECK(a->images[0].cam == NULL && a->images[0].overlay_png != NULL);
  CHECK(same_result(a, b, 0));
  mskx_result_free(a);
  mskx_result_free(b);
  for (int i = 0; i < 2; i++) {
    free(png[i]);
    free(rgb[i]);
    gray_image_free(&g[i]);
  }
  mskx_model_free(m);
}

/* An image above the display size: the network sees the same input as a
 * whole-image resize (TTA included), the result reports the image's own
 * size, and maps and overlays come at display size (longest side 1024). */
TEST(large_image_maps_at_display_size) {
  CHECK(setup() == 0);
  mskx_err e;
  mskx_model *m = NULL;
  CHECK_OK(mskx_model_load(mA, NULL, &m, &e), &e);
  gray_image g = fx_image(1500, 900, 77), gm = fx_mirror(&g);
  uint8_t *png;
  size_t len;
  CHECK_OK(image_encode_png(g.px, g.w, g.h, 1, &png, &len, &e), &e);
  mskx_encoded_image enc = {png, len, "big.png"};
  mskx_predict_options po;
  mskx_predict_options_default(&po);
  po.want_cam = po.want_overlay = po.tta_flip = 1;
  mskx_result *r = NULL;
  CHECK_OK(mskx_predict_encoded(m, &enc, 1, NULL, &po, &r, &e), &e);
  const mskx_image_result *ir = &r->images[0];
  CHECK(ir->width == 1500 && ir->height == 900);
  CHECKF(ir->cam_width == 1024 && ir->cam_height == 614, "display %dx%d", ir->cam_width, ir->cam_height);
  int w = 0, h = 0;
  CHECK_OK(image_probe(ir->overlay_png, ir->overlay_png_len, "overlay", &w, &h, &e), &e);
  CHECK(w == 1024 && h == 614);
  float mx = 0;
  for (int q = 0; q < w * h; q++) mx = ir->cam[q] > mx ? ir->cam[q] : mx;
  CHECK(mx == 0 || fabsf(mx - 1) < 1e-6f);
  fx_ref ref;
  double p0, p1;
  CHECK_OK(fx_ref_open(&ref, mA, &e), &e);
  CHECK_OK(fx_ref_prob(&ref, &g, &p0, &e), &e);
  CHECK_OK(fx_ref_prob(&ref, &gm, &p1, &e), &e);
  fx_ref_close(&ref);
  CHECK_NEAR(ir->probability, 0.5 * (p0 + p1), 1e-6);
  mskx_result_free(r);
  mskx_model_free(m);
  /* A budget below what one image needs to decode: refused, naming it. */
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.max_decode_bytes = 100000;
  CHECK_OK(mskx_model_load(mA, &lo, &m, &e), &e);
  CHECK_EQ_INT(mskx_predict_encoded(m, &enc, 1, NULL, NULL, &r, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "big.png") && strstr(e.msg, "budget"), "%s", e.msg);
  mskx_model_free(m);
  lo.max_decode_bytes = 0;
  lo.decode_wait_ms = 4000000;
  CHECK_EQ_INT(mskx_model_load(mA, &lo, &m, &e), MSKX_EINVAL);
  free(png);
  gray_image_free(&g);
  gray_image_free(&gm);
}

TEST(files_route_by_xr_component) {
  CHECK(setup() == 0);
  mskx_err e;
  char dir[700], p1[800], p2[800];
  snprintf(dir, sizeof dir, "%s/valid/XR_HAND/patient1/study1_positive", fx_tmp());
  CHECK_OK(mkdir_p(dir, &e), &e);
  gray_image g = fx_image(40, 40, 9);
  snprintf(p1, sizeof p1, "%s/image1.png", dir);
  CHECK_OK(image_write_png(p1, g.px, g.w, g.h, 1, &e), &e);
  snprintf(p2, sizeof p2, "%s/plain.png", fx_tmp());
  CHECK_OK(image_write_png(p2, g.px, g.w, g.h, 1, &e), &e);
  mskx_model *m = NULL, *mb = NULL, *ma = NULL;
  CHECK_OK(mskx_model_load(bundle, NULL, &m, &e), &e);
  CHECK_OK(mskx_model_load(mB, NULL, &mb, &e), &e);
  CHECK_OK(mskx_model_load(mA, NULL, &ma, &e), &e);
  const char *in1[1] = {p1}, *in2[1] = {p2};
  mskx_result *r1 = NULL, *r2 = NULL, *rb = NULL, *ra = NULL, *r3 = NULL;
  CHECK_OK(mskx_predict_files(m, in1, 1, NULL, NULL, &r1, &e), &e);
  CHECK_OK(mskx_predict_files(m, in2, 1, NULL, NULL, &r2, &e), &e);
  CHECK_OK(mskx_predict_files(m, in2, 1, "XR_HAND", NULL, &r3, &e), &e);
  CHECK_OK(mskx_predict_files(mb, in1, 1, NULL, NULL, &rb, &e), &e);
  CHECK_OK(mskx_predict_files(ma, in1, 1, NULL, NULL, &ra, &e), &e);
  CHECK(!strcmp(r1->part, "XR_HAND") && r1->probability == rb->probability && r1->threshold == 0.4);
  CHECK(!strcmp(r2->part, "") && r2->probability == ra->probability && r2->threshold == 0.5);
  CHECK(r3->probability == rb->probability && strstr(r3->model_used, "b.safetensors"));
  CHECK(rb->probability != ra->probability);
  mskx_result *rs[] = {r1, r2, r3, rb, ra};
  for (int i = 0; i < 5; i++) mskx_result_free(rs[i]);
  mskx_model_free(m);
  mskx_model_free(mb);
  mskx_model_free(ma);
  gray_image_free(&g);
}

/* ---- concurrency ---- */

#define N_THREADS 4
#define N_STUDIES 5

typedef struct job {
  mskx_model *m;
  int t;
  mskx_result *r[N_STUDIES];
  int rc;
  mskx_err e;
} job;

static mskx_pixel_image study_img[N_THREADS * N_STUDIES][3];
static gray_image study_gray[N_THREADS * N_STUDIES][3];

static int n_in_study(int s) { return 1 + s % 3; }

static void *run_job(void *arg) {
  job *j = arg;
  mskx_predict_options po;
  mskx_predict_options_default(&po);
  po.want_cam = 1;
  po.tta_flip = j->t % 2;
  for (int k = 0; k < N_STUDIES && !j->rc; k++) {
    int s = j->t * N_STUDIES + k;
    j->rc = mskx_predict_pixels(j->m, study_img[s], n_in_study(s), NULL, &po, &j->r[k], &j->e);
  }
  return NULL;
}

TEST(concurrent_predictions_equal_sequential_bit_for_bit) {
  CHECK(setup() == 0);
  mskx_err e;
  for (int s = 0; s < N_THREADS * N_STUDIES; s++)
    for (int i = 0; i < n_in_study(s); i++) {
      study_gray[s][i] = fx_image(30 + 7 * i + s, 50 - 3 * i, (uint64_t)(1000 + 10 * s + i));
      study_img[s][i] = (mskx_pixel_image){study_gray[s][i].px, study_gray[s][i].w, study_gray[s][i].h, 1, 0, NULL, 0};
    }
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.threads = 1;
  lo.max_contexts = N_THREADS;
  lo.max_batch = 2;
  mskx_model *m = NULL;
  CHECK_OK(mskx_model_load(mA, &lo, &m, &e), &e);
  job seq[N_THREADS], par[N_THREADS];
  memset(seq, 0, sizeof seq);
  memset(par, 0, sizeof par);
  for (int t = 0; t < N_THREADS; t++) {
    seq[t] = (job){.m = m, .t = t};
    run_job(&seq[t]);
    CHECK_OK(seq[t].rc, &seq[t].e);
  }
  pthread_t th[N_THREADS];
  for (int t = 0; t < N_THREADS; t++) {
    par[t] = (job){.m = m, .t = t};
    CHECK(pthread_create(&th[t], NULL, run_job, &par[t]) == 0);
  }
  for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < N_THREADS; t++) {
    CHECK_OK(par[t].rc, &par[t].e);
    for (int k = 0; k < N_STUDIES; k++)
      CHECKF(same_result(seq[t].r[k], par[t].r[k], 1), "thread %d study %d differs", t, k);
  }
  for (int t = 0; t < N_THREADS; t++)
    for (int k = 0; k < N_STUDIES; k++) {
      mskx_result_free(seq[t].r[k]);
      mskx_result_free(par[t].r[k]);
    }
  mskx_model_free(m);
  for (int s = 0; s < N_THREADS * N_STUDIES; s++)
    for (int i = 0; i < n_in_study(s); i++) gray_image_free(&study_gray[s][i]);
}

/* MSKX_PRECISION_AUTO: the load times the candidates, names its choice in
 * the model's info, and predicts exactly as a load with that precision. */
TEST(precision_auto_equals_its_choice) {
  CHECK(setup() == 0);
  mskx_err e;
  char p1[800];
  snprintf(p1, sizeof p1, "%s/auto.png", fx_tmp());
  gray_image g = fx_image(40, 40, 4);
  CHECK_OK(image_write_png(p1, g.px, g.w, g.h, 1, &e), &e);
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.precision = MSKX_PRECISION_AUTO;
  mskx_model *ma = NULL, *mx = NULL;
  CHECK_OK(mskx_model_load(mA, &lo, &ma, &e), &e);
  struct mskx_model_info in;
  CHECK(mskx_model_info(ma, &in) == MSKX_OK && in.precision);
  CHECKF(!strcmp(in.precision, "fp32") || !strcmp(in.precision, "bf16"), "chose %s", in.precision);
  lo.precision = strcmp(in.precision, "bf16") ? MSKX_PRECISION_FP32 : MSKX_PRECISION_BF16;
  CHECK_OK(mskx_model_load(mA, &lo, &mx, &e), &e);
  struct mskx_model_info ix;
  CHECK(mskx_model_info(mx, &ix) == MSKX_OK && !strcmp(ix.precision, in.precision));
  const char *paths[1] = {p1};
  mskx_result *ra = NULL, *rx = NULL;
  CHECK_OK(mskx_predict_files(ma, paths, 1, NULL, NULL, &ra, &e), &e);
  CHECK_OK(mskx_predict_files(mx, paths, 1, NULL, NULL, &rx, &e), &e);
  CHECK(ra && rx && same_result(ra, rx, 0));
  mskx_result_free(ra);
  mskx_result_free(rx);
  mskx_model_free(ma);
  mskx_model_free(mx);
  gray_image_free(&g);
}

TEST(bad_input_gives_codes_and_messages) {
  CHECK(setup() == 0);
  mskx_err e;
  mskx_model *m = NULL;
  CHECK(mskx_model_load("/nonexistent/model.safetensors", NULL, &m, &e) == MSKX_EIO && !m);
  CHECK(strstr(e.msg, "/nonexistent/model.safetensors") != NULL);
  CHECK(mskx_model_load(NULL, NULL, &m, NULL) == MSKX_EINVAL);
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.precision = 7;
  CHECK(mskx_model_load(mA, &lo, &m, &e) == MSKX_EINVAL && strstr(e.msg, "precision"));
  lo.precision = MSKX_PRECISION_FP32;
  lo.max_pixels = 100;
  CHECK_OK(mskx_model_load(mA, &lo, &m, &e), &e);
  gray_image g = fx_image(20, 20, 5);
  uint8_t *png = NULL;
  size_t len = 0;
  CHECK_OK(image_encode_png(g.px, g.w, g.h, 1, &png, &len, &e), &e);
  mskx_encoded_image enc[2] = {{png, len, "ok.png"}, {png, len / 2, "cut.png"}};
  mskx_result *r = NULL;
  /* Above the pixel cap (20x20 > 100). */
  CHECK(mskx_predict_encoded(m, enc, 1, NULL, NULL, &r, &e) == MSKX_ELIMIT && strstr(e.msg, "ok.png") && !r);
  mskx_model_free(m);
  CHECK_OK(mskx_model_load(mA, NULL, &m, &e), &e);
  int rc = mskx_predict_encoded(m, enc, 2, NULL, NULL, &r, &e);
  CHECKF(rc != MSKX_OK && strstr(e.msg, "cut.png") && !r, "truncated PNG: %d %s", rc, e.msg);
  const unsigned char junk[] = "this is not an image at all";
  mskx_encoded_image bad = {junk, sizeof junk, "junk.jpg"};
  CHECK(mskx_predict_encoded(m, &bad, 1, NULL, NULL, &r, &e) == MSKX_EFORMAT && strstr(e.msg, "junk.jpg"));
  mskx_encoded_image empty = {NULL, 0, "empty.png"};
  CHECK(mskx_predict_encoded(m, &empty, 1, NULL, NULL, &r, &e) != MSKX_OK && strstr(e.msg, "empty.png"));
  CHECK(mskx_predict_encoded(m, enc, 0, NULL, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "at least one"));
  CHECK(mskx_predict_encoded(NULL, enc, 1, NULL, NULL, &r, NULL) == MSKX_EINVAL);
  mskx_predict_options po;
  mskx_predict_options_default(&po);
  po.agg = 9;
  CHECK(mskx_predict_encoded(m, enc, 1, NULL, &po, &r, &e) == MSKX_EINVAL && strstr(e.msg, "agg"));
  po.agg = MSKX_AGG_MAX;
  po.overlay_alpha = 2;
  CHECK(mskx_predict_encoded(m, enc, 1, NULL, &po, &r, &e) == MSKX_EINVAL && strstr(e.msg, "overlay_alpha"));
  mskx_pixel_image px = {g.px, g.w, g.h, 2, 0, "two.raw", 0};
  CHECK(mskx_predict_pixels(m, &px, 1, NULL, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "two.raw"));
  px.channels = 3;
  px.stride = 10;
  CHECK(mskx_predict_pixels(m, &px, 1, NULL, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "stride"));
  const char *missing[1] = {"/nonexistent/XR_WRIST/img.png"};
  CHECK(mskx_predict_files(m, missing, 1, NULL, NULL, &r, &e) == MSKX_EIO && strstr(e.msg, "img.png"));
  CHECK(mskx_predict_encoded(m, enc, 1, "not a part", NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "body part"));
  /* Still usable after errors. */
  CHECK_OK(mskx_predict_encoded(m, enc, 1, NULL, NULL, &r, &e), &e);
  CHECK(e.code == 0 && e.msg[0] == 0);
  mskx_result_free(r);
  free(png);
  gray_image_free(&g);
  mskx_model_free(m);
}

TEST_MAIN()
