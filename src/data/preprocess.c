/* Resizing of decoded radiographs to the network's input size, and
 * normalisation into the engine's channels-last 3-channel layout. */
#include "data/preprocess.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Output side limit: keeps s*s*3 floats far from size_t and int overflow. */
#define RESIZE_MAX_SIDE 32768

/* A 1-D resampling table: output i is sum_k w[i*stride+k] * in[first[i]+k]
 * for k < count[i]. The same table serves area averaging and bilinear
 * interpolation, so both axes run through one pair of loops. */
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

int resize_gray(const gray_image *src, int s, int keep_aspect, float *dst, mskx_err *e) {
  if (!src || !src->px || src->w <= 0 || src->h <= 0)
    return err_set(e, MSKX_EINVAL, "resize: bad source image %dx%d", src ? src->w : 0, src ? src->h : 0);
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  if (!keep_aspect) return resample(src, s, s, dst, s, e);
  /* The longer side becomes s; the other keeps the ratio and is centred on black. */
  int nw = s, nh = s;
  if (src->w >= src->h) nh = (int)lround((double)src->h * s / src->w);
  else nw = (int)lround((double)src->w * s / src->h);
  if (nw < 1) nw = 1;
  if (nh < 1) nh = 1;
  memset(dst, 0, (size_t)s * (size_t)s * sizeof(float));
  float *win = dst + (size_t)((s - nh) / 2) * s + (s - nw) / 2;
  return resample(src, nw, nh, win, s, e);
}

int resize_gray_u8(const gray_image *src, int s, int keep_aspect, uint8_t *dst, mskx_err *e) {
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  size_t n = (size_t)s * (size_t)s;
  float *f = malloc(n * sizeof(float));
  if (!f) return err_set(e, MSKX_ENOMEM, "resize: cannot allocate %dx%d floats", s, s);
  int rc = resize_gray(src, s, keep_aspect, f, e);
  if (!rc)
    for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(f[i] * 255.0f + 0.5f);
  free(f);
  return rc;
}

norm_params norm_imagenet(void) {
  norm_params p = {{IMAGENET_MEAN_R, IMAGENET_MEAN_G, IMAGENET_MEAN_B},
                   {IMAGENET_STD_R, IMAGENET_STD_G, IMAGENET_STD_B}};
  return p;
}

void normalize_to_hwc3(const float *gray, int s, const norm_params *np, float *out) {
  size_t n = (size_t)s * (size_t)s;
  float m0 = np->mean[0], m1 = np->mean[1], m2 = np->mean[2];
  float s0 = np->std[0], s1 = np->std[1], s2 = np->std[2];
  /* Subtract then divide, in that order, like torchvision's Normalize. */
  for (size_t i = 0; i < n; i++) {
    float v = gray[i];
    out[3 * i] = (v - m0) / s0;
    out[3 * i + 1] = (v - m1) / s1;
    out[3 * i + 2] = (v - m2) / s2;
  }
}
