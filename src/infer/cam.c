/* Class activation maps and overlays (see cam.h for the Grad-CAM note). */
#include "infer/cam.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

void cam_from_features(view f, int i, const float *w, float *out) {
  for (int y = 0; y < f.h; y++)
    for (int x = 0; x < f.w; x++) {
      const float *p = f.p + ((size_t)((size_t)i * f.h + y) * f.w + x) * f.ld;
      double acc = 0;
      for (int c = 0; c < f.c; c++) acc += (double)w[c] * p[c];
      out[(size_t)y * f.w + x] = (float)acc;
    }
}

static float relu_at(const float *m, int fw, int y, int x) {
  float v = m[(size_t)y * fw + x];
  return v > 0 ? v : 0;
}

/* Feature coordinate of a pixel-centre position u (in input pixels of an
 * s-wide input): feature cell k covers input pixels [k*s/f, (k+1)*s/f). */
static void feat_coord(double u, int s, int f, int *k0, int *k1, float *t) {
  double c = u * f / s - 0.5;
  if (c < 0) c = 0;
  if (c > f - 1) c = f - 1;
  *k0 = (int)floor(c);
  *k1 = *k0 + 1 < f ? *k0 + 1 : *k0;
  *t = (float)(c - *k0);
}

void cam_to_image(const float *fmap, int fh, int fw, int s, int keep_aspect, int img_w, int img_h, int out_w,
                  int out_h, float *out) {
  /* The window the image occupies inside the s x s input (as resize_gray). */
  int nw = s, nh = s;
  if (keep_aspect) {
    if (img_w >= img_h) nh = (int)lround((double)img_h * s / img_w);
    else nw = (int)lround((double)img_w * s / img_h);
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;
  }
  double ox = (s - nw) / 2, oy = (s - nh) / 2;
  /* Output pixel centres spread over the whole image, whatever its output size. */
  for (int y = 0; y < out_h; y++) {
    int y0, y1;
    float ty;
    feat_coord(oy + (y + 0.5) * nh / out_h, s, fh, &y0, &y1, &ty);
    for (int x = 0; x < out_w; x++) {
      int x0, x1;
      float tx;
      feat_coord(ox + (x + 0.5) * nw / out_w, s, fw, &x0, &x1, &tx);
      float top = relu_at(fmap, fw, y0, x0) * (1 - tx) + relu_at(fmap, fw, y0, x1) * tx;
      float bot = relu_at(fmap, fw, y1, x0) * (1 - tx) + relu_at(fmap, fw, y1, x1) * tx;
      out[(size_t)y * out_w + x] = top * (1 - ty) + bot * ty;
    }
  }
}

void cam_normalize(float *map, size_t n) {
  float mx = 0;
  for (size_t i = 0; i < n; i++)
    if (map[i] > mx) mx = map[i];
  if (mx <= 0) {
    memset(map, 0, n * sizeof *map);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    float v = map[i] / mx;
    map[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

void cam_mirror(float *map, int w, int h) {
  for (int y = 0; y < h; y++) {
    float *r = map + (size_t)y * w;
    for (int a = 0, b = w - 1; a < b; a++, b--) {
      float t = r[a];
      r[a] = r[b];
      r[b] = t;
    }
  }
}

void cam_colormap(uint8_t table[256][3]) {
  /* Approximate inferno colours at 0, 1/6, ..., 1 (sRGB). */
  static const float anchor[7][3] = {{0, 0, 4},       {40, 11, 84},    {101, 21, 110}, {159, 42, 99},
                                     {212, 72, 66},   {245, 125, 21},  {252, 255, 164}};
  for (int i = 0; i < 256; i++) {
    double t = i / 255.0 * 6.0;
    int k = (int)t;
    if (k > 5) k = 5;
    double f = t - k;
    for (int c = 0; c < 3; c++) {
      double v = anchor[k][c] * (1 - f) + anchor[k + 1][c] * f;
      table[i][c] = (uint8_t)lround(v);
    }
  }
}

void cam_overlay_rgb(const gray_image *img, const float *heat, float alpha, uint8_t *rgb_out) {
  uint8_t lut[256][3];
  cam_colormap(lut);
  size_t n = (size_t)img->w * img->h;
  for (size_t i = 0; i < n; i++) {
    float h = heat[i];
    h = h < 0 ? 0 : h > 1 ? 1 : h;
    float a = alpha * h, g = img->px[i];
    const uint8_t *col = lut[(int)lroundf(h * 255.0f)];
    for (int c = 0; c < 3; c++) {
      float v = g + a * (col[c] - g);
      rgb_out[3 * i + c] = (uint8_t)lroundf(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
}

int cam_overlay_png(const gray_image *img, const float *heat, float alpha, uint8_t **png, size_t *len, mskx_err *e) {
  size_t n;
  if (!size_mul((size_t)img->w * (size_t)img->h, 3, &n)) return err_set(e, MSKX_ELIMIT, "overlay: image too large");
  uint8_t *rgb = malloc(n);
  if (!rgb) return err_set(e, MSKX_ENOMEM, "overlay: out of memory for %dx%d", img->w, img->h);
  cam_overlay_rgb(img, heat, alpha, rgb);
  int rc = image_encode_png(rgb, img->w, img->h, 3, png, len, e);
  free(rgb);
  return rc;
}

int cam_write_overlay(const char *path, const gray_image *img, const float *heat, float alpha, mskx_err *e) {
  uint8_t *png = NULL;
  size_t len = 0;
  int rc = cam_overlay_png(img, heat, alpha, &png, &len, e);
  if (!rc) rc = file_write_atomic(path, png, len, e);
  free(png);
  return rc;
}

/* Longest part of a path kept in an overlay name (its tail). */
#define CAM_NAME_TAIL 150

/* A file-name-safe copy of s[0..len): leading '/' and '.' and trailing '/'
 * dropped, separators and odd characters '_'. */
static void flatten(const char *s, size_t len, char *out, size_t n) {
  while (len && (*s == '/' || *s == '.')) s++, len--;
  while (len && s[len - 1] == '/') len--;
  if (len > CAM_NAME_TAIL) s += len - CAM_NAME_TAIL, len = CAM_NAME_TAIL;
  size_t k = 0;
  for (size_t i = 0; i < len && k + 1 < n; i++) {
    char c = s[i];
    int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    out[k++] = keep ? c : '_';
  }
  out[k] = 0;
}

/* Length of path without the extension of its last component. */
static size_t stem_len(const char *path) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  return dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
}

void cam_overlay_name(const char *study, const char *image, int study_is_dir, char *out, size_t n) {
  char a[CAM_NAME_TAIL + 1], b[CAM_NAME_TAIL + 1];
  if (!study_is_dir) {
    flatten(study, stem_len(study), a, sizeof a);
    snprintf(out, n, "%s.png", a);
    return;
  }
  const char *base = strrchr(image, '/');
  base = base ? base + 1 : image;
  flatten(study, strlen(study), a, sizeof a);
  flatten(base, stem_len(base), b, sizeof b);
  snprintf(out, n, "%s__%s.png", a, b);
}
