/* Augmentation: exact properties (identity, flips, 90-degree rotation),
 * agreement with torchvision's affine (via tests/tools/image_ref.py),
 * determinism across seeds and threads, and the draw order. */
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "data/preprocess.h"
#include "test.h"
#include <pthread.h>
#include <unistd.h>

#define S 48

/* A smooth random picture in [0,1]: bilinear interpolation error against a
 * float32 reference stays far below the tolerance. */
static void smooth_image(float *img, int s, uint64_t seed) {
  rng r;
  rng_seed(&r, seed);
  double a[6];
  for (int i = 0; i < 6; i++) a[i] = rng_uniform(&r) * 6.28;
  for (int y = 0; y < s; y++)
    for (int x = 0; x < s; x++)
      img[y * s + x] = (float)(0.5 + 0.25 * sin(x * 0.21 + a[0]) * cos(y * 0.17 + a[1]) +
                               0.2 * sin((x + 2 * y) * 0.09 + a[2]));
}

TEST(config_defaults_and_identity) {
  aug_config m = aug_mura_default();
  CHECK(m.p_hflip == 0.5f && m.rotate_deg == 30.0f);
  CHECK(m.p_vflip == 0 && m.shift_frac == 0 && m.zoom == 0 && m.brightness == 0 && m.contrast == 0);
  CHECK(!aug_is_identity(&m));
  aug_config none = {0};
  CHECK(aug_is_identity(&none));
  none.contrast = 0.1f;
  CHECK(!aug_is_identity(&none));
}

TEST(identity_returns_input_exactly) {
  float src[S * S], dst[S * S];
  smooth_image(src, S, 1);
  src[0] = 1e-9f; /* values that a (v - 0.5) + 0.5 round trip would change */
  src[1] = 0.3f + 1e-8f;
  aug_config none = {0};
  rng r, r0;
  rng_seed(&r, 5);
  r0 = r;
  augment_gray(&none, &r, src, S, dst);
  CHECK(memcmp(src, dst, sizeof src) == 0);
  CHECK(memcmp(&r, &r0, sizeof r) == 0); /* nothing drawn */
  aug_params id = aug_params_identity();
  augment_apply(&id, src, S, dst);
  CHECK(memcmp(src, dst, sizeof src) == 0);
}

TEST(flips_are_exact_mirrors) {
  static float src[S * S], a[S * S], b[S * S];
  smooth_image(src, S, 2);
  src[5] = 1e-9f;
  aug_params p = aug_params_identity();
  p.hflip = 1;
  augment_apply(&p, src, S, a);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) CHECK(a[y * S + x] == src[y * S + S - 1 - x]);
  augment_apply(&p, a, S, b);
  CHECK(memcmp(src, b, sizeof src) == 0);
  p.hflip = 0;
  p.vflip = 1;
  augment_apply(&p, src, S, a);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) CHECK(a[y * S + x] == src[(S - 1 - y) * S + x]);
  augment_apply(&p, a, S, b);
  CHECK(memcmp(src, b, sizeof src) == 0);
}

TEST(rotation_90_is_a_transposition) {
  static float src[S * S], dst[S * S];
  rng r;
  rng_seed(&r, 3);
  for (int i = 0; i < S * S; i++) src[i] = (float)rng_uniform(&r); /* noise: any misplacement shows */
  aug_params p = aug_params_identity();
  p.angle_deg = 90;
  augment_apply(&p, src, S, dst);
  /* Counter-clockwise on screen: the top row becomes the left column, read upwards. */
  double worst = 0;
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      double d = fabs(dst[y * S + x] - src[x * S + (S - 1 - y)]);
      if (d > worst) worst = d;
    }
  CHECKF(worst < 1e-5, "max |diff| %.3g", worst);
  p.angle_deg = -90;
  augment_apply(&p, src, S, dst);
  worst = 0;
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) worst = fmax(worst, fabs(dst[y * S + x] - src[(S - 1 - x) * S + y]));
  CHECKF(worst < 1e-5, "-90: max |diff| %.3g", worst);
}

static void ref_script(char *out, size_t n) {
  const char *root = getenv("MSKX_ROOT");
  if (root && *root) {
    snprintf(out, n, "%s/tests/tools/image_ref.py", root);
    return;
  }
  snprintf(out, n, "%s", __FILE__); /* .../tests/data/test_augment.c */
  char *slash = strrchr(out, '/');
  if (slash) *slash = 0;
  slash = strrchr(out, '/');
  if (slash) snprintf(slash, n - (size_t)(slash - out), "/tools/image_ref.py");
  else snprintf(out, n, "tests/tools/image_ref.py");
}

static aug_params affine_case(int k) {
  static const float params[][4] = {/* angle ccw, shift x, shift y (fractions), scale */
                                    {17.5f, 0, 0, 1},   {-30, 0, 0, 1},     {0, 0.125f, -0.0625f, 1},
                                    {0, 0, 0, 1.3f},    {0, 0, 0, 0.8f},    {23, 0.1f, 0.05f, 1.15f},
                                    {-11, -0.2f, 0.15f, 0.9f}};
  aug_params p = aug_params_identity();
  p.angle_deg = params[k][0];
  p.shift_x = params[k][1];
  p.shift_y = params[k][2];
  p.scale = params[k][3];
  return p;
}
#define N_AFFINE_CASES 7

TEST(affine_matches_torchvision) {
  char dir[512], in[600], out[700], script[600], cmd[4000];
  const char *base = getenv("MSKX_TMP");
  snprintf(dir, sizeof dir, "%s/test_augment.XXXXXX", base && *base ? base : "/tmp");
  CHECK(mkdtemp(dir));
  ref_script(script, sizeof script);
  static float src[S * S], got[S * S];
  smooth_image(src, S, 4);
  snprintf(in, sizeof in, "%s/in.f32", dir);
  mskx_err e = {0};
  CHECK_OK(file_write_atomic(in, src, sizeof src, &e), &e);
  int o = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s affine %s %d", script, in, S);
  for (int k = 0; k < N_AFFINE_CASES; k++) {
    aug_params p = affine_case(k);
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, " %.9g %.9g %.9g %.9g %s/out%d.f32", (double)p.angle_deg,
                  (double)p.shift_x * S, (double)p.shift_y * S, (double)p.scale, dir, k);
  }
  int rc = system(cmd);
  unlink(in);
  CHECKF(rc == 0, "reference failed: %s", cmd);
  for (int k = 0; k < N_AFFINE_CASES; k++) {
    aug_params p = affine_case(k);
    augment_apply(&p, src, S, got);
    snprintf(out, sizeof out, "%s/out%d.f32", dir, k);
    unsigned char *ref;
    size_t len;
    rc = file_read_all(out, 0, &ref, &len, &e);
    unlink(out);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK_EQ_INT(len, sizeof got);
    const float *want = (const float *)(const void *)ref;
    double worst = 0;
    for (int i = 0; i < S * S; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    free(ref);
    printf("# affine angle %g shift (%g, %g) scale %g: max |diff| vs torchvision %.2g\n", (double)p.angle_deg,
           (double)p.shift_x, (double)p.shift_y, (double)p.scale, worst);
    CHECKF(worst < 1e-4, "case %d: max |diff| %.3g", k, worst);
  }
  rmdir(dir);
}

static aug_config full_config(void) {
  aug_config a = {0.5f, 0.3f, 25.0f, 0.1f, 0.2f, 0.3f, 0.4f};
  return a;
}

TEST(same_seed_same_bits_other_seed_differs) {
  static float src[S * S], a[S * S], b[S * S];
  smooth_image(src, S, 6);
  aug_config cfgs[2] = {aug_mura_default(), full_config()};
  for (int c = 0; c < 2; c++) {
    rng r1 = rng_for(7, 3, 11), r2 = rng_for(7, 3, 11), r3 = rng_for(7, 3, 12);
    augment_gray(&cfgs[c], &r1, src, S, a);
    augment_gray(&cfgs[c], &r2, src, S, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    augment_gray(&cfgs[c], &r3, src, S, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
  }
}

typedef struct thread_job {
  const float *src;
  float *out;
  int first, n;
} thread_job;

static void *thread_run(void *arg) {
  thread_job *j = arg;
  aug_config cfg = full_config();
  for (int i = j->first; i < j->first + j->n; i++) {
    rng r = rng_for(42, 1, (uint64_t)i);
    augment_gray(&cfg, &r, j->src, S, j->out + (size_t)i * S * S);
  }
  return NULL;
}

TEST(threads_give_the_serial_bits) {
  enum { N = 16, T = 4 };
  static float src[S * S], serial[N * S * S], par[N * S * S];
  smooth_image(src, S, 8);
  thread_job all = {src, serial, 0, N};
  thread_run(&all);
  pthread_t th[T];
  thread_job jobs[T];
  for (int t = 0; t < T; t++) {
    jobs[t] = (thread_job){src, par, (T - 1 - t) * (N / T), N / T}; /* reverse order on purpose */
    CHECK(pthread_create(&th[t], NULL, thread_run, &jobs[t]) == 0);
  }
  for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
  CHECK(memcmp(serial, par, sizeof serial) == 0);
}

TEST(output_stays_in_unit_range) {
  static float src[S * S], dst[S * S];
  aug_config a = full_config();
  a.brightness = 0.8f;
  a.contrast = 0.9f;
  rng r;
  rng_seed(&r, 9);
  for (int i = 0; i < S * S; i++) src[i] = (float)rng_uniform(&r);
  src[0] = 0.0f;
  src[1] = 1.0f;
  for (int t = 0; t < 50; t++) {
    augment_gray(&a, &r, src, S, dst);
    for (int i = 0; i < S * S; i++) CHECKF(dst[i] >= 0.0f && dst[i] <= 1.0f, "pixel %d = %g", i, dst[i]);
  }
}

TEST(draws_in_documented_order) {
  /* Only hflip and rotation enabled: exactly two uniforms, in that order. */
  aug_config a = aug_mura_default();
  rng r, copy;
  rng_seed(&r, 77);
  copy = r;
  aug_params p = aug_draw(&a, &r);
  double u1 = rng_uniform(&copy), u2 = rng_uniform(&copy);
  CHECK(memcmp(&r, &copy, sizeof r) == 0);
  CHECK_EQ_INT(p.hflip, u1 < 0.5);
  CHECK_NEAR(p.angle_deg, (2 * u2 - 1) * 30, 1e-4);
  CHECK(p.vflip == 0 && p.shift_x == 0 && p.shift_y == 0 && p.scale == 1 && p.brightness == 0 && p.contrast == 1);
  /* Everything enabled: eight uniforms. */
  aug_config f = full_config();
  rng_seed(&r, 78);
  copy = r;
  p = aug_draw(&f, &r);
  double u[8];
  for (int i = 0; i < 8; i++) u[i] = rng_uniform(&copy);
  CHECK(memcmp(&r, &copy, sizeof r) == 0);
  CHECK_EQ_INT(p.hflip, u[0] < f.p_hflip);
  CHECK_EQ_INT(p.vflip, u[1] < f.p_vflip);
  CHECK_NEAR(p.angle_deg, (2 * u[2] - 1) * f.rotate_deg, 1e-4);
  CHECK_NEAR(p.shift_x, (2 * u[3] - 1) * f.shift_frac, 1e-6);
  CHECK_NEAR(p.shift_y, (2 * u[4] - 1) * f.shift_frac, 1e-6);
  CHECK_NEAR(p.scale, 1 + (2 * u[5] - 1) * f.zoom, 1e-6);
  CHECK_NEAR(p.brightness, (2 * u[6] - 1) * f.brightness, 1e-6);
  CHECK_NEAR(p.contrast, 1 + (2 * u[7] - 1) * f.contrast, 1e-6);
}

TEST(brightness_then_contrast) {
  static float src[S * S], dst[S * S];
  smooth_image(src, S, 10);
  aug_params p = aug_params_identity();
  p.brightness = 0.1f;
  p.contrast = 1.5f;
  augment_apply(&p, src, S, dst);
  for (int i = 0; i < S * S; i++) {
    double want = ((double)src[i] + 0.1 - 0.5) * 1.5 + 0.5;
    want = want < 0 ? 0 : want > 1 ? 1 : want;
    CHECK_NEAR(dst[i], want, 1e-6);
  }
}

TEST_MAIN()
