/* A study's images decoded once, row by row, and resized during that one
 * pass for every network input the loaded tree needs (each distinct input
 * size and keep_aspect, plain and mirrored for TTA) plus, for CAM overlays,
 * a display copy whose longest side is at most CAM_DISPLAY_MAX_SIDE. No full
 * decoded image is held (see image_stream for the codecs' exceptions). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/preprocess.h"
#include "infer/predictor.h"

void display_size(int w, int h, int *dw, int *dh) {
  int m = w > h ? w : h;
  if (m <= CAM_DISPLAY_MAX_SIDE) {
    *dw = w, *dh = h;
    return;
  }
  double f = (double)CAM_DISPLAY_MAX_SIDE / m;
  *dw = (int)lround(w * f);
  *dh = (int)lround(h * f);
  if (*dw < 1) *dw = 1;
  if (*dh < 1) *dh = 1;
}

static int add_size(study_inputs *in, int s, int keep, mskx_err *e) {
  for (int t = 0; t < in->n_sizes; t++)
    if (in->sizes[t].s == s && in->sizes[t].keep_aspect == keep) return MSKX_OK;
  if (in->n_sizes >= INPUT_SIZES_MAX)
    return err_set(e, MSKX_EUNSUPPORTED, "the model's members use more than %d distinct input sizes", INPUT_SIZES_MAX);
  in->sizes[in->n_sizes++] = (input_size){s, keep};
  return MSKX_OK;
}

/* The inputs of the networks a study reaches: a bundle routes by part. */
static int collect_sizes(const pnode *nd, const char *part, study_inputs *in, mskx_err *e) {
  if (nd->kind == PNODE_MODEL) return add_size(in, nd->meta.size, nd->meta.keep_aspect != 0, e);
  if (nd->kind == PNODE_BUNDLE) {
    int idx, rc = pnode_route(nd, part, &idx, e);
    return rc ? rc : collect_sizes(&nd->children[idx], part, in, e);
  }
  for (int i = 0; i < nd->n_children; i++) {
    int rc = collect_sizes(&nd->children[i], part, in, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

void study_inputs_free(study_inputs *in) {
  if (!in) return;
  for (int i = 0; in->gray && i < in->n * in->n_sizes; i++) {
    free(in->gray[i]);
    if (in->gray_mirror) free(in->gray_mirror[i]);
  }
  for (int i = 0; in->display && i < in->n; i++) gray_image_free(&in->display[i]);
  free(in->gray);
  free(in->gray_mirror);
  free(in->display);
  free(in->width);
  free(in->height);
  free(in);
}

/* The sink of one image: the resize outputs of every size, and the display copy. */
typedef struct prep_sink {
  study_inputs *in;
  int i, n_out, copy_display, y;
  resize_out out[INPUT_SIZES_MAX + 1];
  resize_stream *rs;
  float *disp_f;   /* the display copy as floats while it is area-reduced */
} prep_sink;

static void plan_outputs(prep_sink *ps, int w, int h) {
  study_inputs *in = ps->in;
  ps->n_out = 0;
  for (int t = 0; t < in->n_sizes; t++)
    ps->out[ps->n_out++] = (resize_out){.s = in->sizes[t].s, .keep_aspect = in->sizes[t].keep_aspect};
  ps->copy_display = 0;
  if (in->display) {
    int dw, dh;
    display_size(w, h, &dw, &dh);
    if (dw == w && dh == h) ps->copy_display = 1;
    else ps->out[ps->n_out++] = (resize_out){.s = 0, .w = dw, .h = dh};
  }
}

static uint64_t prep_cost(void *ctx, int w, int h) {
  prep_sink *ps = ctx;
  plan_outputs(ps, w, h);
  uint64_t c = resize_stream_bytes(w, h, ps->out, ps->n_out);
  if (ps->in->display && !ps->copy_display) {
    const resize_out *d = &ps->out[ps->n_out - 1];
    c += (uint64_t)d->w * (uint64_t)d->h * sizeof(float);
  }
  return c;
}

static int prep_begin(void *ctx, int w, int h, mskx_err *e) {
  prep_sink *ps = ctx;
  study_inputs *in = ps->in;
  int i = ps->i;
  plan_outputs(ps, w, h);
  in->width[i] = w;
  in->height[i] = h;
  for (int t = 0; t < in->n_sizes; t++) {
    size_t n = (size_t)in->sizes[t].s * (size_t)in->sizes[t].s, k = (size_t)i * in->n_sizes + t;
    if (!(in->gray[k] = malloc(n * sizeof(float))) || (in->gray_mirror && !(in->gray_mirror[k] = malloc(n * sizeof(float)))))
      return err_set(e, MSKX_ENOMEM, "predict: out of memory for network inputs");
    ps->out[t].dst = in->gray[k];
    ps->out[t].dst_mirror = in->gray_mirror ? in->gray_mirror[k] : NULL;
  }
  if (in->display) {
    gray_image *d = &in->display[i];
    int dw, dh;
    display_size(w, h, &dw, &dh);
    if (!(d->px = malloc((size_t)dw * (size_t)dh))) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
    d->w = dw, d->h = dh;
    if (!ps->copy_display) {
      if (!(ps->disp_f = malloc((size_t)dw * (size_t)dh * sizeof(float))))
        return err_set(e, MSKX_ENOMEM, "predict: out of memory");
      ps->out[ps->n_out - 1].dst = ps->disp_f;
    }
  }
  return resize_stream_create(w, h, ps->out, ps->n_out, &ps->rs, e);
}

static void prep_row(void *ctx, const uint8_t *row) {
  prep_sink *ps = ctx;
  resize_stream_row(ps->rs, row);
  if (ps->copy_display && ps->y < ps->in->display[ps->i].h) {
    gray_image *d = &ps->in->display[ps->i];
    memcpy(d->px + (size_t)ps->y * d->w, row, (size_t)d->w);
  }
  ps->y++;
}

static int stream_source(const image_source *s, const image_limits *lim, const image_sink *sink, mskx_err *e) {
  if (s->bytes) return image_stream(s->bytes, s->len, s->name, lim, sink, e);
  if (s->path) return image_stream_file(s->path, lim, sink, e);
  return image_stream_pixels(s->pixels, s->w, s->h, s->channels, s->stride, s->name, lim, sink, e);
}

static int prepare_one(study_inputs *in, int i, const image_source *src, const image_limits *lim, mskx_err *e) {
  prep_sink ps = {.in = in, .i = i};
  image_sink sink = {prep_cost, prep_begin, prep_row, &ps};
  int rc = stream_source(src, lim, &sink, e);
  if (!rc && ps.y != in->height[i]) rc = err_set(e, MSKX_EINTERNAL, "predict: %d of %d rows decoded", ps.y, in->height[i]);
  if (!rc && ps.disp_f) {
    gray_image *d = &in->display[i];
    for (size_t q = 0; q < (size_t)d->w * d->h; q++) d->px[q] = (uint8_t)(ps.disp_f[q] * 255.0f + 0.5f);
  }
  resize_stream_destroy(ps.rs);
  free(ps.disp_f);
  return rc;
}

int study_inputs_prepare(const pnode *root, const image_source *srcs, int n, const char *part, int flip,
                         int want_display, const image_limits *lim, study_inputs **out, mskx_err *e) {
  *out = NULL;
  if (n < 1) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  study_inputs *in = calloc(1, sizeof *in);
  if (!in) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  int rc = collect_sizes(root, part, in, e);
  if (rc) {
    study_inputs_free(in);
    return rc;
  }
  in->n = n;
  size_t slots = (size_t)n * (size_t)in->n_sizes;
  in->gray = calloc(slots, sizeof *in->gray);
  in->gray_mirror = flip ? calloc(slots, sizeof *in->gray_mirror) : NULL;
  in->display = want_display ? calloc((size_t)n, sizeof *in->display) : NULL;
  in->width = calloc((size_t)n, sizeof *in->width);
  in->height = calloc((size_t)n, sizeof *in->height);
  if (!in->gray || (flip && !in->gray_mirror) || (want_display && !in->display) || !in->width || !in->height)
    rc = err_set(e, MSKX_ENOMEM, "predict: out of memory");
  for (int i = 0; !rc && i < n; i++) rc = prepare_one(in, i, &srcs[i], lim, e);
  if (rc) {
    study_inputs_free(in);
    return rc;
  }
  *out = in;
  return MSKX_OK;
}

const float *study_inputs_gray(const study_inputs *in, int i, int s, int keep_aspect, int mirror) {
  for (int t = 0; t < in->n_sizes; t++)
    if (in->sizes[t].s == s && in->sizes[t].keep_aspect == (keep_aspect != 0)) {
      size_t k = (size_t)i * in->n_sizes + t;
      return mirror ? (in->gray_mirror ? in->gray_mirror[k] : NULL) : in->gray[k];
    }
  return NULL;
}
