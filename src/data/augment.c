/* Training-time augmentation of preprocessed s x s images: random flips,
 * rotation, shift and zoom as one affine resampling, then brightness and
 * contrast. A pure function of its inputs, so results never depend on threads. */
#include "data/preprocess.h"
#include <math.h>
#include <string.h>

/* Smallest zoom factor honoured; a config with zoom >= 1 could otherwise
 * draw a factor of 0 and divide by it. */
#define AUG_MIN_SCALE 1e-3

aug_config aug_mura_default(void) {
  /* Rajpurkar et al., MURA (2017): "random lateral inversions and rotations
   * of up to 30 degrees". */
  aug_config a = {0};
  a.p_hflip = 0.5f;
  a.rotate_deg = 30.0f;
  return a;
}

bool aug_is_identity(const aug_config *a) {
  return !(a->p_hflip > 0) && !(a->p_vflip > 0) && !(a->rotate_deg > 0) && !(a->shift_frac > 0) &&
         !(a->zoom > 0) && !(a->brightness > 0) && !(a->contrast > 0);
}

aug_params aug_params_identity(void) {
  aug_params p = {0};
  p.scale = 1.0f;
  p.contrast = 1.0f;
  return p;
}

static float uniform_sym(rng *r, float range) { return (float)(2.0 * rng_uniform(r) - 1.0) * range; }

aug_params aug_draw(const aug_config *a, rng *r) {
  aug_params p = aug_params_identity();
  if (a->p_hflip > 0) p.hflip = rng_uniform(r) < a->p_hflip;
  if (a->p_vflip > 0) p.vflip = rng_uniform(r) < a->p_vflip;
  if (a->rotate_deg > 0) p.angle_deg = uniform_sym(r, a->rotate_deg);
  if (a->shift_frac > 0) {
    p.shift_x = uniform_sym(r, a->shift_frac);
    p.shift_y = uniform_sym(r, a->shift_frac);
  }
  if (a->zoom > 0) p.scale = 1.0f + uniform_sym(r, a->zoom);
  if (a->brightness > 0) p.brightness = uniform_sym(r, a->brightness);
  if (a->contrast > 0) p.contrast = 1.0f + uniform_sym(r, a->contrast);
  return p;
}

static int params_is_identity(const aug_params *p) {
  return !p->hflip && !p->vflip && p->angle_deg == 0 && p->shift_x == 0 && p->shift_y == 0 && p->scale == 1 &&
         p->brightness == 0 && p->contrast == 1;
}

static inline float pixel_or_zero(const float *src, int s, int x, int y) {
  return (unsigned)x < (unsigned)s && (unsigned)y < (unsigned)s ? src[(size_t)y * s + x] : 0.0f;
}

/* Bilinear sample at pixel coordinates (u, v); taps outside the image read 0,
 * the zero padding of torch's grid_sample. */
static float sample_bilinear(const float *src, int s, double u, double v) {
  double fu = floor(u), fv = floor(v);
  if (!(fu >= -1 && fu < s && fv >= -1 && fv < s)) return 0.0f; /* also rejects NaN */
  int x0 = (int)fu, y0 = (int)fv;
  float ax = (float)(u - fu), ay = (float)(v - fv);
  float top = pixel_or_zero(src, s, x0, y0) * (1 - ax) + pixel_or_zero(src, s, x0 + 1, y0) * ax;
  float bot = pixel_or_zero(src, s, x0, y0 + 1) * (1 - ax) + pixel_or_zero(src, s, x0 + 1, y0 + 1) * ax;
  return top * (1 - ay) + bot * ay;
}

void augment_apply(const aug_params *p, const float *src, int s, float *dst) {
  size_t n = (size_t)s * (size_t)s;
  if (params_is_identity(p)) {
    memcpy(dst, src, n * sizeof(float));
    return;
  }
  /* Inverse map from output pixel (x, y) to source pixel coordinates, with
   * centred coordinates o = (x + 0.5 - s/2 - shift): undo the shift, rotate
   * by -angle, divide by the zoom, undo the flips. */
  double c = 0.5 * s, th = p->angle_deg * (3.14159265358979323846 / 180.0);
  double cs = cos(th), sn = sin(th);
  double k = 1.0 / (p->scale > AUG_MIN_SCALE ? p->scale : AUG_MIN_SCALE);
  double kx = p->hflip ? -k : k, ky = p->vflip ? -k : k;
  double a00 = kx * cs, a01 = -kx * sn, a10 = ky * sn, a11 = ky * cs;
  double ox0 = 0.5 - c - (double)p->shift_x * s, oy0 = 0.5 - c - (double)p->shift_y * s;
  double b0 = a00 * ox0 + a01 * oy0 + c - 0.5, b1 = a10 * ox0 + a11 * oy0 + c - 0.5;
  float bright = p->brightness, contrast = p->contrast;
  /* Skipped when off: (v - 0.5) + 0.5 is not exactly v in floating point. */
  int photometric = bright != 0 || contrast != 1;
  for (int y = 0; y < s; y++) {
    float *o = dst + (size_t)y * s;
    for (int x = 0; x < s; x++) {
      double u = a00 * x + a01 * y + b0, v = a10 * x + a11 * y + b1;
      float val = sample_bilinear(src, s, u, v);
      if (photometric) val = (val + bright - 0.5f) * contrast + 0.5f;
      o[x] = val < 0 ? 0 : val > 1 ? 1 : val;
    }
  }
}

void augment_gray(const aug_config *a, rng *r, const float *src, int s, float *dst) {
  if (aug_is_identity(a)) {
    memcpy(dst, src, (size_t)s * (size_t)s * sizeof(float));
    return;
  }
  aug_params p = aug_draw(a, r);
  augment_apply(&p, src, s, dst);
}
