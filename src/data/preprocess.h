/* Preprocessing of one radiograph into a network input, and augmentation.
 *
 * Pipeline per image: decoded 8-bit grey (any size) -> resize to S x S
 * floats in [0,1] (area averaging when shrinking, bilinear when enlarging;
 * optionally keep the aspect ratio by padding with black) -> augmentation
 * (training only) -> normalisation with per-channel mean/std into 3 channels,
 * channels-last (H, W, 3) float32: the engine's input layout. */
#ifndef MSKX_DATA_PREPROCESS_H
#define MSKX_DATA_PREPROCESS_H
#include <stdbool.h>
#include <stdint.h>
#include "core/rng.h"
#include "io/image.h"
#include "mskx.h"

/* ImageNet statistics, the convention of torchvision's pretrained weights. */
#define IMAGENET_MEAN_R 0.485f
#define IMAGENET_MEAN_G 0.456f
#define IMAGENET_MEAN_B 0.406f
#define IMAGENET_STD_R 0.229f
#define IMAGENET_STD_G 0.224f
#define IMAGENET_STD_B 0.225f

typedef struct norm_params {
  float mean[3];
  float std[3];
} norm_params;

/* ImageNet mean/std. */
norm_params norm_imagenet(void);

/* Resizes src (w x h, 8-bit) to dst (s x s floats in [0,1]). keep_aspect pads
 * the shorter side symmetrically with 0. Runs through the streaming resizer
 * below, so images resized from memory and images streamed from a decoder
 * give the same floats. */
int resize_gray(const gray_image *src, int s, int keep_aspect, float *dst, mskx_err *e);

/* 8-bit variant used by the preprocessing cache: rounds the float result. */
int resize_gray_u8(const gray_image *src, int s, int keep_aspect, uint8_t *dst, mskx_err *e);

/* resize_gray and resize_gray_u8 of image_load(path), decoded straight into
 * the resize: no whole image is held (see image_stream). */
int resize_file(const char *path, const image_limits *lim, int s, int keep_aspect, float *dst, mskx_err *e);
int resize_file_u8(const char *path, const image_limits *lim, int s, int keep_aspect, uint8_t *dst, mskx_err *e);

/* Streaming resize: the rows of one w x h 8-bit image go in top to bottom,
 * once, and feed several outputs; each output gets exactly the floats that
 * resize_gray makes of the whole image (same tables, same order of float
 * operations), while only the output rows whose source rows are still
 * arriving are held (two rows of w floats per output when shrinking). */
typedef struct resize_out {
  int s, keep_aspect;   /* an s x s output as resize_gray makes; or, with s == 0, */
  int w, h;             /* exactly w x h with no padding (e.g. a display copy) */
  float *dst;           /* the output (s*s or w*h floats), or NULL */
  float *dst_mirror;    /* the same for the horizontally mirrored image, or NULL */
} resize_out;

typedef struct resize_stream resize_stream;

/* Upper bound of the bytes a stream for these outputs allocates (not
 * counting the outputs themselves). */
size_t resize_stream_bytes(int w, int h, const resize_out *o, int n);
/* The outputs must stay valid until the last row; they are zeroed here. */
int resize_stream_create(int w, int h, const resize_out *o, int n, resize_stream **out, mskx_err *e);
/* Row y of the source (w bytes); call exactly h times, in order. */
void resize_stream_row(resize_stream *rs, const uint8_t *row);
void resize_stream_destroy(resize_stream *rs);

/* Writes (s, s, 3) channels-last: out[(y*s+x)*3+c] = (v - mean[c]) / std[c]. */
void normalize_to_hwc3(const float *gray, int s, const norm_params *np, float *out);

/* Augmentation settings; each transform is off when its range is 0 / p is 0. */
typedef struct aug_config {
  float p_hflip;        /* lateral inversion probability (MURA paper: 0.5) */
  float p_vflip;
  float rotate_deg;     /* uniform in [-r, r] (MURA paper: 30) */
  float shift_frac;     /* translation, fraction of width/height */
  float zoom;           /* scale uniform in [1-z, 1+z] */
  float brightness;     /* additive, uniform in [-b, b] (image in [0,1]) */
  float contrast;       /* multiplicative about 0.5, uniform in [1-c, 1+c] */
} aug_config;

/* The MURA paper's augmentation: lateral inversion and rotation up to 30 deg. */
aug_config aug_mura_default(void);
bool aug_is_identity(const aug_config *a);

/* Applies one random draw of the augmentation to an s x s float image (in
 * [0,1]) from src into dst (no aliasing). The draw comes only from r, so the
 * same stream gives bit-identical output on any thread. Out-of-image samples
 * are 0 (black, like the radiograph background). */
void augment_gray(const aug_config *a, rng *r, const float *src, int s, float *dst);

/* One concrete draw of the augmentation. Geometry is about the image centre:
 * flips first, then zoom, rotation (counter-clockwise on screen, like
 * torchvision's rotate) and the shift; then brightness, then contrast. */
typedef struct aug_params {
  int hflip, vflip;
  float angle_deg;
  float shift_x, shift_y; /* fractions of the side; +x right, +y down */
  float scale;            /* > 1 enlarges */
  float brightness;       /* added */
  float contrast;         /* factor about 0.5 */
} aug_params;

/* No-op parameters (scale 1, contrast 1, everything else 0). */
aug_params aug_params_identity(void);
/* Draws, in this fixed order and only for enabled transforms (range or p
 * above 0): hflip, vflip, angle, shift x, shift y, zoom, brightness, contrast. */
aug_params aug_draw(const aug_config *a, rng *r);
/* Applies p to src (s x s) into dst (no aliasing): one inverse affine map
 * with bilinear sampling (0 outside), then brightness/contrast, clamped to
 * [0,1]. Identity parameters copy src unchanged. augment_gray is
 * aug_draw followed by augment_apply. */
void augment_apply(const aug_params *p, const float *src, int s, float *dst);

#endif
