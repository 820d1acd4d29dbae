/* The streaming resizer against the whole-image resize it replaced (kept
 * below verbatim as the reference): bit-identical floats for many sizes and
 * aspect ratios, stretched and keep_aspect, plain and mirrored, several
 * outputs fed by one pass, and bounded rows in flight. Training and serving
 * both resize through it, so any difference would be train/serve skew. */
#include "core/error.h"
#include "core/rng.h"
#include "data/preprocess.h"
#include "test.h"

/* ---- the pre-streaming implementation (commit bf98351), reference only ---- */
#define RESIZE_MAX_SIDE 32768
typedef struct taps {
  int *first, *count;
  float *w;
  int stride;
} taps;

/* Upper bound of taps per output for in -> out samples. */
static int taps_stride(int in, int out) {
  if (in <= out) return 2;
  return (int)ceil((double)in / out) + 1;
}

/* Exact box filter: output i covers the source interval [i*r, (i+1)*r) with
 * r = in/out >= 1 and each source pixel weighs by its overlap with it (the
 * definition of OpenCV's INTER_AREA; equal to PIL's BOX for integer ratios). */
static void taps_area(taps *t, int in, int out, float gain) {
  double r = (double)in / out;
  for (int i = 0; i < out; i++) {
    double x0 = i * r, x1 = (i + 1) * r;
    int j0 = (int)floor(x0), j1 = (int)ceil(x1);
    if (j1 > in) j1 = in;
    int n = 0;
    t->first[i] = j0;
    for (int j = j0; j < j1 && n < t->stride; j++) {
      double lo = j > x0 ? j : x0, hi = j + 1 < x1 ? j + 1 : x1;
      t->w[(size_t)i * t->stride + n++] = (float)((hi - lo) / r * gain);
    }
    t->count[i] = n;
  }
}

/* Bilinear with the half-pixel convention of PIL and of torch's
 * interpolate(align_corners=False): sample centres map as
 * x_src = (i + 0.5) * in/out - 0.5, clamped to the image. */
static void taps_bilinear(taps *t, int in, int out, float gain) {
  double r = (double)in / out;
  for (int i = 0; i < out; i++) {
    double x = (i + 0.5) * r - 0.5;
    if (x < 0) x = 0;
    int j0 = (int)floor(x);
    if (j0 > in - 1) j0 = in - 1;
    double f = x - j0;
    float *w = t->w + (size_t)i * t->stride;
    t->first[i] = j0;
    if (j0 + 1 < in && f > 0) {
      w[0] = (float)((1 - f) * gain);
      w[1] = (float)(f * gain);
      t->count[i] = 2;
    } else {
      w[0] = gain;
      t->count[i] = 1;
    }
  }
}

static void taps_build(taps *t, int in, int out, float gain) {
  if (in >= out) taps_area(t, in, out, gain);
  else taps_bilinear(t, in, out, gain);
}

/* Carves one table out of a block; returns the bytes it uses (block may be NULL to size). */
static size_t taps_carve(taps *t, char *block, int in, int out) {
  t->stride = taps_stride(in, out);
  size_t n_w = (size_t)out * (size_t)t->stride, bytes = 2 * (size_t)out * sizeof(int) + n_w * sizeof(float);
  if (block) {
    t->first = (int *)(void *)block;
    t->count = t->first + out;
    t->w = (float *)(void *)(t->count + out);
  }
  return bytes;
}

/* Vertical pass: rows of 8-bit src into float rows of tmp (out_h x w). */
static void pass_vertical(const uint8_t *src, int w, const taps *ty, int out_h, float *tmp) {
  for (int oy = 0; oy < out_h; oy++) {
    float *o = tmp + (size_t)oy * w;
    const float *wt = ty->w + (size_t)oy * ty->stride;
    const uint8_t *row = src + (size_t)ty->first[oy] * w;
    float w0 = wt[0];
    for (int x = 0; x < w; x++) o[x] = w0 * (float)row[x];
    for (int k = 1; k < ty->count[oy]; k++) {
      const uint8_t *rk = row + (size_t)k * w;
      float wk = wt[k];
      for (int x = 0; x < w; x++) o[x] += wk * (float)rk[x];
    }
  }
}

/* Horizontal pass: tmp rows (width w) into dst rows (width out_w, stride ds), clamped to [0,1]. */
static void pass_horizontal(const float *tmp, int w, int out_h, const taps *tx, int out_w, float *dst, int ds) {
  for (int oy = 0; oy < out_h; oy++) {
    const float *row = tmp + (size_t)oy * w;
    float *o = dst + (size_t)oy * ds;
    for (int ox = 0; ox < out_w; ox++) {
      const float *wt = tx->w + (size_t)ox * tx->stride;
      const float *in = row + tx->first[ox];
      float v = 0;
      for (int k = 0; k < tx->count[ox]; k++) v += wt[k] * in[k];
      o[ox] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
}

/* Resamples the whole of src onto an out_w x out_h window of dst (row stride ds). */
static int resample(const gray_image *src, int out_w, int out_h, float *dst, int ds, mskx_err *e) {
  taps tx, ty;
  size_t bx = taps_carve(&tx, NULL, src->w, out_w), by = taps_carve(&ty, NULL, src->h, out_h);
  size_t btmp = (size_t)out_h * (size_t)src->w * sizeof(float);
  char *block = malloc(bx + by + btmp);
  if (!block) return err_set(e, MSKX_ENOMEM, "resize: cannot allocate %zu bytes", bx + by + btmp);
  taps_carve(&tx, block, src->w, out_w);
  taps_carve(&ty, block + bx, src->h, out_h);
  float *tmp = (float *)(void *)(block + bx + by);
  taps_build(&tx, src->w, out_w, 1.0f);
  taps_build(&ty, src->h, out_h, 1.0f / 255.0f);
  pass_vertical(src->px, src->w, &ty, out_h, tmp);
  pass_horizontal(tmp, src->w, out_h, &tx, out_w, dst, ds);
  free(block);
  return MSKX_OK;
}

static int old_resize_gray(const gray_image *src, int s, int keep_aspect, float *dst, mskx_err *e) {
  if (!keep_aspect) return resample(src, s, s, dst, s, e);
  int nw = s, nh = s;
  if (src->w >= src->h) nh = (int)lround((double)src->h * s / src->w);
  else nw = (int)lround((double)src->w * s / src->h);
  if (nw < 1) nw = 1;
  if (nh < 1) nh = 1;
  memset(dst, 0, (size_t)s * (size_t)s * sizeof(float));
  float *win = dst + (size_t)((s - nh) / 2) * s + (s - nw) / 2;
  return resample(src, nw, nh, win, s, e);
}
/* ---- end of the reference ---- */

static gray_image noise(int w, int h, uint64_t seed) {
  gray_image g = {w, h, malloc((size_t)w * h)};
  rng r;
  rng_seed(&r, seed);
  for (size_t i = 0; i < (size_t)w * h; i++) g.px[i] = (uint8_t)(rng_u64(&r) >> 56);
  return g;
}

static gray_image mirrored(const gray_image *g) {
  gray_image m = {g->w, g->h, malloc((size_t)g->w * g->h)};
  for (int y = 0; y < g->h; y++)
    for (int x = 0; x < g->w; x++) m.px[(size_t)y * g->w + x] = g->px[(size_t)y * g->w + g->w - 1 - x];
  return m;
}

/* Sizes around the network inputs, below and above, odd ratios, thin strips. */
static const int sides[][2] = {{1, 1},     {1, 7},     {7, 1},     {2, 3},     {5, 5},    {17, 9},   {31, 64},
                               {64, 64},   {65, 63},   {100, 37},  {37, 100},  {127, 129}, {224, 224}, {225, 223},
                               {320, 320}, {333, 250}, {250, 333}, {512, 511}, {640, 480}, {481, 641}, {1000, 3},
                               {3, 1000},  {997, 1013}, {1200, 900}};
static const int outs[] = {1, 2, 7, 32, 64, 100, 224, 320, 331};

TEST(stream_bit_identical_to_whole_image_resize) {
  int cases = 0;
  for (size_t i = 0; i < sizeof sides / sizeof *sides; i++) {
    gray_image g = noise(sides[i][0], sides[i][1], 1000u + i), m = mirrored(&g);
    for (size_t j = 0; j < sizeof outs / sizeof *outs; j++) {
      int s = outs[j];
      size_t n = (size_t)s * s;
      float *want = malloc(n * sizeof(float)), *want_m = malloc(n * sizeof(float));
      float *got = malloc(n * sizeof(float)), *got_m = malloc(n * sizeof(float)), *mem = malloc(n * sizeof(float));
      for (int keep = 0; keep < 2; keep++) {
        mskx_err e = {0};
        CHECK_OK(old_resize_gray(&g, s, keep, want, &e), &e);
        CHECK_OK(old_resize_gray(&m, s, keep, want_m, &e), &e);
        resize_out o = {.s = s, .keep_aspect = keep, .dst = got, .dst_mirror = got_m};
        resize_stream *rs;
        CHECK_OK(resize_stream_create(g.w, g.h, &o, 1, &rs, &e), &e);
        for (int y = 0; y < g.h; y++) resize_stream_row(rs, g.px + (size_t)y * g.w);
        resize_stream_destroy(rs);
        CHECK_OK(resize_gray(&g, s, keep, mem, &e), &e);
        CHECKF(!memcmp(want, got, n * sizeof(float)), "%dx%d -> %d keep %d: stream differs", g.w, g.h, s, keep);
        CHECKF(!memcmp(want_m, got_m, n * sizeof(float)), "%dx%d -> %d keep %d: mirror differs", g.w, g.h, s, keep);
        CHECKF(!memcmp(want, mem, n * sizeof(float)), "%dx%d -> %d keep %d: resize_gray differs", g.w, g.h, s, keep);
        cases++;
      }
      free(want), free(want_m), free(got), free(got_m), free(mem);
    }
    gray_image_free(&g);
    gray_image_free(&m);
  }
  CHECK(cases == (int)(sizeof sides / sizeof *sides * sizeof outs / sizeof *outs * 2));
}

/* One pass feeding the outputs an ensemble of mixed members needs (two sizes,
 * both keep_aspect settings, plain and mirrored) plus a display copy. */
TEST(stream_feeds_several_outputs_at_once) {
  gray_image g = noise(777, 523, 77), m = mirrored(&g);
  float *a = malloc(224 * 224 * 4), *am = malloc(224 * 224 * 4), *b = malloc(320 * 320 * 4);
  float *c = malloc(320 * 320 * 4), *cm = malloc(320 * 320 * 4), *d = malloc(300 * 200 * 4);
  resize_out o[4] = {{.s = 224, .keep_aspect = 0, .dst = a, .dst_mirror = am},
                     {.s = 320, .keep_aspect = 0, .dst = b},
                     {.s = 320, .keep_aspect = 1, .dst = c, .dst_mirror = cm},
                     {.s = 0, .w = 300, .h = 200, .dst = d}};
  mskx_err e = {0};
  resize_stream *rs;
  CHECK_OK(resize_stream_create(g.w, g.h, o, 4, &rs, &e), &e);
  CHECK(resize_stream_bytes(g.w, g.h, o, 4) < (size_t)g.w * 4 * 16 + 200000);
  for (int y = 0; y < g.h; y++) resize_stream_row(rs, g.px + (size_t)y * g.w);
  resize_stream_destroy(rs);
  float *ref = malloc(320 * 320 * 4);
  CHECK_OK(old_resize_gray(&g, 224, 0, ref, &e), &e);
  CHECK(!memcmp(ref, a, 224 * 224 * 4));
  CHECK_OK(old_resize_gray(&m, 224, 0, ref, &e), &e);
  CHECK(!memcmp(ref, am, 224 * 224 * 4));
  CHECK_OK(old_resize_gray(&g, 320, 0, ref, &e), &e);
  CHECK(!memcmp(ref, b, 320 * 320 * 4));
  CHECK_OK(old_resize_gray(&g, 320, 1, ref, &e), &e);
  CHECK(!memcmp(ref, c, 320 * 320 * 4));
  CHECK_OK(old_resize_gray(&m, 320, 1, ref, &e), &e);
  CHECK(!memcmp(ref, cm, 320 * 320 * 4));
  CHECK_OK(resample(&g, 300, 200, ref, 300, &e), &e);
  CHECK(!memcmp(ref, d, 300 * 200 * 4));
  free(a), free(am), free(b), free(c), free(cm), free(d), free(ref);
  gray_image_free(&g);
  gray_image_free(&m);
}

/* Memory is two rows of source floats plus the tap tables, not the image. */
TEST(stream_memory_bounded_by_rows) {
  resize_out o = {.s = 320, .keep_aspect = 1};
  size_t b = resize_stream_bytes(16384, 16384, &o, 1);
  CHECKF(b < 16384 * 4 * 2 + 512 * 1024, "%zu bytes for a 16384 x 16384 source", b);
  mskx_err e = {0};
  resize_stream *rs;
  CHECK_OK(resize_stream_create(16384, 16384, &o, 1, &rs, &e), &e);
  resize_stream_destroy(rs);
}

TEST(stream_refuses_bad_sizes) {
  mskx_err e = {0};
  resize_stream *rs;
  resize_out o = {.s = 0, .w = 0, .h = 5};
  CHECK_EQ_INT(resize_stream_create(10, 10, &o, 1, &rs, &e), MSKX_EINVAL);
  o = (resize_out){.s = 40000};
  CHECK_EQ_INT(resize_stream_create(10, 10, &o, 1, &rs, &e), MSKX_EINVAL);
  o = (resize_out){.s = 4};
  CHECK_EQ_INT(resize_stream_create(0, 10, &o, 1, &rs, &e), MSKX_EINVAL);
}

TEST_MAIN()
