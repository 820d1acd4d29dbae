/* Resizing against independent references (numpy exact box integral,
 * Pillow, torch interpolate via tests/tools/image_ref.py), its invariants,
 * normalisation, and the decode + resize timing of large PNGs. */
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "data/preprocess.h"
#include "test.h"
#include <spng.h>
#include <unistd.h>

static void ref_script(char *out, size_t n) {
  const char *root = getenv("MSKX_ROOT");
  if (root && *root) {
    snprintf(out, n, "%s/tests/tools/image_ref.py", root);
    return;
  }
  /* __FILE__ is .../tests/data/test_preprocess.c */
  snprintf(out, n, "%s", __FILE__);
  char *slash = strrchr(out, '/');
  if (slash) *slash = 0;
  slash = strrchr(out, '/');
  if (slash) snprintf(slash, n - (size_t)(slash - out), "/tools/image_ref.py");
  else snprintf(out, n, "tests/tools/image_ref.py");
}

static void temp_dir(char *out, size_t n) {
  const char *base = getenv("MSKX_TMP");
  snprintf(out, n, "%s/test_preprocess.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(out)) out[0] = 0;
}

static float *read_f32(const char *path, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  float *v = malloc(n * sizeof(float));
  size_t got = fread(v, sizeof(float), n, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (got != n || extra) {
    free(v);
    return NULL;
  }
  return v;
}

/* Noise over a gradient: the hardest content for a resampler to get right by accident. */
static gray_image noise_image(int w, int h, uint64_t seed) {
  gray_image g = {w, h, malloc((size_t)w * h)};
  rng r;
  rng_seed(&r, seed);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) g.px[(size_t)y * w + x] = (uint8_t)((x * 97 / w + y * 61 / h) + rng_below(&r, 96));
  return g;
}

static double max_diff_window(const float *got, int s, int x0, int y0, const float *want, int ow, int oh) {
  double m = 0;
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++) {
      double d = fabs((double)got[(size_t)(y0 + y) * s + x0 + x] - want[(size_t)y * ow + x]);
      if (d > m) m = d;
    }
  return m;
}

/* Float32 accumulation against float64 references. */
#define RESIZE_TOL 2e-5

static const struct {
  int w, h, s, keep, integer_or_enlarging;
} resize_cases[] = {
    {960, 960, 320, 0, 1},   /* 3x shrink */
    {1280, 640, 320, 1, 1},  /* 4x shrink into a 320x160 window */
    {100, 80, 320, 0, 1},    /* enlarge by 3.2 and 4 */
    {1000, 700, 320, 0, 0},  /* fractional shrink */
    {2000, 150, 320, 0, 0},  /* shrink x by 6.25, enlarge y */
    {960, 100, 320, 0, 1},   /* shrink x by 3, enlarge y */
    {700, 1000, 320, 1, 0},  /* portrait, 224x320 window */
    {5, 3, 64, 1, 1},        /* tiny */
    {333, 333, 333, 0, 1},   /* same size */
};
#define N_RESIZE_CASES ((int)(sizeof resize_cases / sizeof resize_cases[0]))

/* Content window of case k: the whole s x s, or the aspect-kept rectangle. */
static void case_window(int k, int *ow, int *oh) {
  int w = resize_cases[k].w, h = resize_cases[k].h, s = resize_cases[k].s;
  *ow = *oh = s;
  if (resize_cases[k].keep) {
    if (w >= h) *oh = (int)lround((double)h * s / w);
    else *ow = (int)lround((double)w * s / h);
  }
}

/* Writes every case's input to dir and runs image_ref.py once for all. */
static int run_reference(const char *dir, char *msg, size_t msg_n) {
  char script[600], cmd[8192], path[700];
  ref_script(script, sizeof script);
  int o = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s resize", script);
  for (int k = 0; k < N_RESIZE_CASES; k++) {
    int ow, oh;
    case_window(k, &ow, &oh);
    gray_image g = noise_image(resize_cases[k].w, resize_cases[k].h, (uint64_t)k + 1);
    snprintf(path, sizeof path, "%s/in%d.u8", dir, k);
    mskx_err e = {0};
    int rc = file_write_atomic(path, g.px, (size_t)g.w * g.h, &e);
    free(g.px);
    if (rc) {
      snprintf(msg, msg_n, "%s", e.msg);
      return 1;
    }
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, " %s %d %d %d %d %s/out%d", path, g.w, g.h, ow, oh, dir, k);
  }
  int rc = system(cmd);
  if (rc) snprintf(msg, msg_n, "reference failed (rc %d): %s", rc, cmd);
  return rc != 0;
}

static float *take_ref(const char *dir, int k, const char *ext, size_t n) {
  char path[700];
  snprintf(path, sizeof path, "%s/out%d.%s", dir, k, ext);
  float *v = read_f32(path, n);
  unlink(path);
  return v;
}

/* Float32 accumulation against float64 references. */
#define RESIZE_TOL 2e-5

TEST(resize_matches_references) {
  char dir[512], msg[9000];
  temp_dir(dir, sizeof dir);
  CHECK(dir[0]);
  int failed = run_reference(dir, msg, sizeof msg);
  CHECKF(!failed, "%s", msg);
  for (int k = 0; k < N_RESIZE_CASES; k++) {
    int w = resize_cases[k].w, h = resize_cases[k].h, s = resize_cases[k].s, ow, oh;
    case_window(k, &ow, &oh);
    gray_image g = noise_image(w, h, (uint64_t)k + 1);
    float *got = malloc(sizeof(float) * s * s);
    mskx_err e = {0};
    int rc = resize_gray(&g, s, resize_cases[k].keep, got, &e);
    free(g.px);
    snprintf(msg, sizeof msg, "%s/in%d.u8", dir, k);
    unlink(msg);
    float *ref[3];
    const char *ext[3] = {"exact", "pil", "torch"};
    double d[3] = {0, 0, 0};
    int x0 = (s - ow) / 2, y0 = (s - oh) / 2, missing = 0;
    for (int i = 0; i < 3; i++) {
      ref[i] = take_ref(dir, k, ext[i], (size_t)ow * oh);
      if (ref[i] && !rc) d[i] = max_diff_window(got, s, x0, y0, ref[i], ow, oh);
      missing |= !ref[i];
      free(ref[i]);
    }
    int pad_ok = 1;
    for (int y = 0; y < s; y++)
      for (int x = 0; x < s; x++)
        if ((x < x0 || x >= x0 + ow || y < y0 || y >= y0 + oh) && got[(size_t)y * s + x] != 0) pad_ok = 0;
    free(got);
    CHECKF(!rc, "case %d: %s", k, e.msg);
    CHECKF(!missing, "case %d: reference output missing", k);
    printf("# resize %dx%d -> %d keep %d: max |diff| exact %.2g, PIL %.2g, torch %.2g\n", w, h, s,
           resize_cases[k].keep, d[0], d[1], d[2]);
    CHECKF(pad_ok, "case %d: padding is not black", k);
    CHECKF(d[0] <= RESIZE_TOL, "case %d: %.3g from the exact reference", k, d[0]);
    if (resize_cases[k].integer_or_enlarging)
      CHECKF(d[1] <= RESIZE_TOL && d[2] <= RESIZE_TOL, "case %d: PIL %.3g, torch %.3g", k, d[1], d[2]);
  }
  rmdir(dir);
}

TEST(constant_stays_constant) {
  static const int sizes[][2] = {{1234, 567}, {40, 300}, {320, 320}, {7, 7}};
  for (int k = 0; k < 4; k++) {
    for (int keep = 0; keep < 2; keep++) {
      int w = sizes[k][0], h = sizes[k][1], s = 320;
      gray_image g = {w, h, malloc((size_t)w * h)};
      memset(g.px, 77, (size_t)w * h);
      float *out = malloc(sizeof(float) * s * s);
      mskx_err e = {0};
      CHECK_OK(resize_gray(&g, s, keep, out, &e), &e);
      int n_const = 0;
      for (int i = 0; i < s * s; i++) {
        if (fabsf(out[i] - 77.0f / 255.0f) <= 1e-6f) n_const++;
        else CHECKF(keep && out[i] == 0.0f, "%dx%d keep %d: pixel %d is %g", w, h, keep, i, out[i]);
      }
      int want = keep ? (w >= h ? s * (int)lround((double)h * s / w) : s * (int)lround((double)w * s / h)) : s * s;
      CHECK_EQ_INT(n_const, want);
      free(out);
      free(g.px);
    }
  }
}

TEST(area_shrink_preserves_mean) {
  gray_image g = noise_image(960, 640, 42); /* factors 3 and 2 */
  float *out = malloc(sizeof(float) * 320 * 320);
  mskx_err e = {0};
  CHECK_OK(resize_gray(&g, 320, 0, out, &e), &e);
  double sin = 0, sout = 0;
  for (int i = 0; i < 960 * 640; i++) sin += g.px[i];
  for (int i = 0; i < 320 * 320; i++) sout += out[i];
  CHECK_NEAR(sout / (320 * 320), sin / (960 * 640) / 255.0, 1e-6);
  free(out);
  free(g.px);
}

TEST(u8_variant_rounds_float_result) {
  gray_image g = noise_image(500, 377, 5);
  float *f = malloc(sizeof(float) * 256 * 256);
  uint8_t *u = malloc(256 * 256);
  mskx_err e = {0};
  CHECK_OK(resize_gray(&g, 256, 1, f, &e), &e);
  CHECK_OK(resize_gray_u8(&g, 256, 1, u, &e), &e);
  for (int i = 0; i < 256 * 256; i++) CHECKF(fabs(u[i] - f[i] * 255.0) <= 0.5 + 1e-4, "pixel %d: %d vs %g", i, u[i], f[i] * 255);
  free(g.px);
  /* Same size: the image comes back unchanged. */
  g = noise_image(256, 256, 6);
  CHECK_OK(resize_gray_u8(&g, 256, 0, u, &e), &e);
  CHECK(memcmp(u, g.px, 256 * 256) == 0);
  free(g.px);
  free(f);
  free(u);
}

TEST(resize_rejects_bad_arguments) {
  uint8_t px[4] = {0};
  gray_image g = {2, 2, px}, nopx = {2, 2, NULL}, zero = {0, 2, px};
  float out[16];
  mskx_err e = {0};
  CHECK_EQ_INT(resize_gray(&g, 0, 0, out, &e), MSKX_EINVAL);
  CHECK_EQ_INT(resize_gray(&g, -3, 0, out, &e), MSKX_EINVAL);
  CHECK_EQ_INT(resize_gray(&nopx, 4, 0, out, &e), MSKX_EINVAL);
  CHECK_EQ_INT(resize_gray(&zero, 4, 0, out, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "resize"), "message: %s", e.msg);
  CHECK_EQ_INT(resize_gray_u8(&g, 0, 0, (uint8_t *)out, &e), MSKX_EINVAL);
}

TEST(normalize_imagenet_hwc3) {
  norm_params np = norm_imagenet();
  /* torchvision's ImageNet statistics. */
  const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
  for (int c = 0; c < 3; c++) {
    CHECK_NEAR(np.mean[c], mean[c], 1e-7);
    CHECK_NEAR(np.std[c], sd[c], 1e-7);
  }
  const int s = 5;
  float g[25], out[75];
  for (int i = 0; i < 25; i++) g[i] = i / 24.0f;
  normalize_to_hwc3(g, s, &np, out);
  for (int y = 0; y < s; y++)
    for (int x = 0; x < s; x++)
      for (int c = 0; c < 3; c++)
        CHECK_NEAR(out[(y * s + x) * 3 + c], (g[y * s + x] - mean[c]) / sd[c], 1e-6);
}

/* ------------------------------------------------------------ timing */

static uint8_t *xray_png(int w, int h, int depth, size_t *len) {
  int bps = depth / 8;
  uint8_t *raw = malloc((size_t)w * h * bps);
  rng r;
  rng_seed(&r, 99);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double dx = (x - w * 0.5) / w, dy = (y - h * 0.5) / h;
      double v = 0.1 + 0.6 * exp(-8 * (dx * dx * 6 + dy * dy)) + 0.01 * (double)rng_below(&r, 4);
      size_t i = (size_t)y * w + x;
      if (depth == 16) {
        uint16_t s = (uint16_t)(v * 65535);
        memcpy(raw + 2 * i, &s, 2);
      } else {
        raw[i] = (uint8_t)(v * 255);
      }
    }
  spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, (uint8_t)depth, SPNG_COLOR_TYPE_GRAYSCALE, 0, 0, 0};
  spng_set_ihdr(ctx, &ihdr);
  int rc = spng_encode_image(ctx, raw, (size_t)w * h * bps, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  int gerr = 0;
  uint8_t *png = rc ? NULL : spng_get_png_buffer(ctx, len, &gerr);
  spng_ctx_free(ctx);
  free(raw);
  return png;
}

TEST(decode_and_resize_timing) {
  float *out = malloc(sizeof(float) * 320 * 320);
  double worst_resize = 0;
  int failed = 0;
  mskx_err e = {0};
  for (int depth = 8; depth <= 16 && !failed; depth += 8) {
    size_t len = 0;
    uint8_t *png = xray_png(2048, 2048, depth, &len);
    double best_dec = 1e9, best_rs = 1e9;
    for (int rep = 0; rep < 3 && png && !failed; rep++) {
      gray_image g;
      double t0 = now_seconds();
      failed = image_decode(png, len, "xray.png", NULL, &g, &e);
      double t1 = now_seconds();
      if (!failed) failed = resize_gray(&g, 320, 1, out, &e);
      double t2 = now_seconds();
      gray_image_free(&g);
      if (t1 - t0 < best_dec) best_dec = t1 - t0;
      if (t2 - t1 < best_rs) best_rs = t2 - t1;
    }
    if (!png) failed = 1;
    free(png);
    if (!failed) printf("# 2048x2048 %d-bit grey PNG (%zu bytes): decode %.1f ms, resize to 320 %.2f ms\n", depth,
                        len, best_dec * 1e3, best_rs * 1e3);
    if (best_rs > worst_resize) worst_resize = best_rs;
  }
  free(out);
  CHECKF(!failed, "%s", e.msg);
#ifdef NDEBUG
  /* Optimised builds only. A loose bound: catches a quadratic or
   * per-pixel-allocation regression, not machine noise (measured: ~1 ms). */
  CHECKF(worst_resize < 0.05, "resize took %.1f ms", worst_resize * 1e3);
#endif
}

TEST_MAIN()
