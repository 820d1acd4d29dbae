/* Class activation maps (CAM) and their overlays on radiographs.
 *
 * Every supported network ends in ReLU -> global average pooling -> one
 * linear logit z = b + sum_c w_c * mean_yx F[y,x,c]. Grad-CAM's channel
 * weights are the spatial means of dz/dF[y,x,c] = w_c / (H*W), so Grad-CAM =
 * ReLU(sum_c w_c/(H*W) F[y,x,c]) = ReLU(CAM) / (H*W): after per-image
 * normalisation the two maps are identical, and we compute CAM directly. */
#ifndef MSKX_INFER_CAM_H
#define MSKX_INFER_CAM_H
#include <stddef.h>
#include <stdint.h>
#include "engine/engine.h"
#include "io/image.h"
#include "mskx.h"

/* Opacity of the colour map at full activation when the caller gives none. */
#define CAM_DEFAULT_ALPHA 0.45f

/* out[fy*f.w + fx] = sum_c w[c] * F[i, fy, fx, c] for image i of the view f
 * (the network's last feature map); out holds f.h * f.w floats. */
void cam_from_features(view f, int i, const float *w, float *out);

/* Maps a feature-resolution map (fh x fw) back onto the original image
 * (img_w x img_h) sampled at out_w x out_h (the image's own size, or its
 * display size): applies ReLU (as Grad-CAM does) and samples bilinearly
 * (edge-clamped) through the preprocessing geometry (an s x s input, the
 * image stretched to it or, with keep_aspect, centred and padded). Not
 * normalised: see cam_normalize. */
void cam_to_image(const float *fmap, int fh, int fw, int s, int keep_aspect, int img_w, int img_h, int out_w,
                  int out_h, float *out);

/* Scales a non-negative map by its maximum into [0, 1] (all zeros stay zero). */
void cam_normalize(float *map, size_t n);

/* Mirrors a w x h map horizontally in place. */
void cam_mirror(float *map, int w, int h);

/* The colour table: an inferno-like perceptual map (dark purple -> red ->
 * orange -> pale yellow, monotonically brighter), linearly interpolated
 * between anchor colours of matplotlib's inferno. */
void cam_colormap(uint8_t table[256][3]);

/* Blends the colour map over the grey radiograph: per pixel
 * rgb = grey + alpha * heat * (colour(heat) - grey), so unactivated regions
 * show the radiograph unchanged. heat has img->w * img->h values in [0, 1];
 * rgb_out receives w * h * 3 bytes. */
void cam_overlay_rgb(const gray_image *img, const float *heat, float alpha, uint8_t *rgb_out);

/* The overlay encoded as an RGB PNG (malloc'd), or written to a file atomically. */
int cam_overlay_png(const gray_image *img, const float *heat, float alpha, uint8_t **png, size_t *len, mskx_err *e);
int cam_write_overlay(const char *path, const gray_image *img, const float *heat, float alpha, mskx_err *e);

/* Room for any name cam_overlay_name writes. */
#define CAM_OVERLAY_NAME_MAX 420
/* The overlay's file name for an image of a study, as `mskx predict --cam` and
 * `mskx eval --cam` write it: "<study>__<image stem>.png" when the study is a
 * folder, "<study stem>.png" when it is one image file. Separators and odd
 * characters become '_'; a long path keeps its distinctive tail. */
void cam_overlay_name(const char *study, const char *image, int study_is_dir, char *out, size_t n);

#endif
