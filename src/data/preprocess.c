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

/* One output rectangle fed row by row. Output row oy accumulates source rows
 * first[oy] .. first[oy]+count[oy]-1 as they arrive (o = w0*row, then
 * o += wk*row in k order: the float operations of a whole-image vertical
 * pass, in the same order) and runs the horizontal pass as soon as its last
 * source row is in. first and first+count never decrease with oy, so the rows
 * in flight are a contiguous range of at most n_ring rows and row oy can live
 * in ring slot oy % n_ring. */
typedef struct resize_stage {
  taps tx, ty;
  int in_w, out_w, out_h;
  float *dst, *dst_mirror; /* windows of the outputs (row stride ds), either may be NULL */
  int ds;
  float *ring;             /* n_ring rows of in_w floats */
  int n_ring;
  int lo;                  /* first output row not yet finished */
  char *block;
} resize_stage;

struct resize_stream {
  int w, h, y, n;
  resize_stage *st;
};

/* Most output rows that one source row feeds at once: 2 when shrinking (area
 * boxes of width >= 1 share at most a boundary row), about 2*out/in + 2 for
 * bilinear enlargement. An upper bound, used to size and to charge memory. */
static int ring_bound(int in, int out) { return in >= out ? 2 : (2 * out + in - 1) / in + 2; }

/* Exact rows in flight for the table: the live set when each row starts. */
static int ring_rows(const taps *ty, int out) {
  int a = 0, b = 0, mx = 1;
  for (int oy = 0; oy < out; oy++) {
    int y = ty->first[oy];
    while (a < out && ty->first[a] <= y) a++;
    while (b < out && ty->first[b] + ty->count[b] - 1 < y) b++;
    if (a - b > mx) mx = a - b;
  }
  return mx;
}

/* The output window of one resize_out inside its buffer: (nw, nh) at (x0, y0). */
static void out_window(const resize_out *o, int w, int h, int *nw, int *nh, int *x0, int *y0, int *ds) {
  if (o->s == 0) {
    *nw = o->w, *nh = o->h, *x0 = *y0 = 0, *ds = o->w;
    return;
  }
  int s = o->s;
  *nw = *nh = s;
  /* The longer side becomes s; the other keeps the ratio and is centred on black. */
  if (o->keep_aspect) {
    if (w >= h) *nh = (int)lround((double)h * s / w);
    else *nw = (int)lround((double)w * s / h);
    if (*nw < 1) *nw = 1;
    if (*nh < 1) *nh = 1;
  }
  *x0 = (s - *nw) / 2, *y0 = (s - *nh) / 2, *ds = s;
}

static size_t stage_bytes(int w, int h, int nw, int nh) {
  taps t;
  return taps_carve(&t, NULL, w, nw) + taps_carve(&t, NULL, h, nh) +
         (size_t)ring_bound(h, nh) * (size_t)w * sizeof(float);
}

static int check_out(const resize_out *o, mskx_err *e) {
  if (o->s == 0 && (o->w <= 0 || o->h <= 0 || o->w > RESIZE_MAX_SIDE || o->h > RESIZE_MAX_SIDE))
    return err_set(e, MSKX_EINVAL, "resize: bad output size %dx%d (1..%d)", o->w, o->h, RESIZE_MAX_SIDE);
  if (o->s < 0 || o->s > RESIZE_MAX_SIDE)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", o->s, RESIZE_MAX_SIDE);
  return MSKX_OK;
}

size_t resize_stream_bytes(int w, int h, const resize_out *o, int n) {
  size_t total = sizeof(resize_stream) + (size_t)n * sizeof(resize_stage);
  for (int i = 0; i < n; i++) {
    int nw, nh, x0, y0, ds;
    out_window(&o[i], w, h, &nw, &nh, &x0, &y0, &ds);
    total += stage_bytes(w, h, nw, nh);
  }
  return total;
}

static int stage_init(resize_stage *st, int w, int h, const resize_out *o, mskx_err *e) {
  int nw, nh, x0, y0, ds;
  out_window(o, w, h, &nw, &nh, &x0, &y0, &ds);
  size_t bx = taps_carve(&st->tx, NULL, w, nw), by = taps_carve(&st->ty, NULL, h, nh);
  size_t bring = (size_t)ring_bound(h, nh) * (size_t)w * sizeof(float);
  if (!(st->block = malloc(bx + by + bring)))
    return err_set(e, MSKX_ENOMEM, "resize: cannot allocate %zu bytes", bx + by + bring);
  taps_carve(&st->tx, st->block, w, nw);
  taps_carve(&st->ty, st->block + bx, h, nh);
  st->ring = (float *)(void *)(st->block + bx + by);
  taps_build(&st->tx, w, nw, 1.0f);
  taps_build(&st->ty, h, nh, 1.0f / 255.0f);
  st->n_ring = ring_rows(&st->ty, nh);
  if (st->n_ring > ring_bound(h, nh))
    return err_set(e, MSKX_EINTERNAL, "resize: %d rows in flight for %d -> %d, above the bound", st->n_ring, h, nh);
  st->in_w = w, st->out_w = nw, st->out_h = nh, st->ds = ds, st->lo = 0;
  size_t off = (size_t)y0 * ds + x0, all = (size_t)ds * (o->s ? o->s : o->h) * sizeof(float);
  /* Padding is black; the window is overwritten row by row. */
  if (o->dst) memset(o->dst, 0, all), st->dst = o->dst + off;
  if (o->dst_mirror) memset(o->dst_mirror, 0, all), st->dst_mirror = o->dst_mirror + off;
  return MSKX_OK;
}

/* Horizontal pass of one accumulated row into an output row, clamped to
 * [0,1]. mirror reads the row right to left: the accumulation of a mirrored
 * image is the mirror of the accumulation, column by column, so this equals
 * resizing the mirrored image. */
static void row_horizontal(const float *acc, int w, const taps *tx, int out_w, int mirror, float *o) {
  for (int ox = 0; ox < out_w; ox++) {
    const float *wt = tx->w + (size_t)ox * tx->stride;
    float v = 0;
    if (!mirror) {
      const float *in = acc + tx->first[ox];
      for (int k = 0; k < tx->count[ox]; k++) v += wt[k] * in[k];
    } else {
      const float *in = acc + (w - 1 - tx->first[ox]);
      for (int k = 0; k < tx->count[ox]; k++) v += wt[k] * in[-k];
    }
    o[ox] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

static void stage_row(resize_stage *st, int y, const uint8_t *row) {
  const taps *ty = &st->ty;
  int w = st->in_w;
  for (int oy = st->lo; oy < st->out_h && ty->first[oy] <= y; oy++) {
    int k = y - ty->first[oy];
    float *acc = st->ring + (size_t)(oy % st->n_ring) * w, wk = ty->w[(size_t)oy * ty->stride + k];
    if (k == 0) for (int x = 0; x < w; x++) acc[x] = wk * (float)row[x];
    else for (int x = 0; x < w; x++) acc[x] += wk * (float)row[x];
    if (k == ty->count[oy] - 1) {
      if (st->dst) row_horizontal(acc, w, &st->tx, st->out_w, 0, st->dst + (size_t)oy * st->ds);
      if (st->dst_mirror) row_horizontal(acc, w, &st->tx, st->out_w, 1, st->dst_mirror + (size_t)oy * st->ds);
      st->lo = oy + 1;
    }
  }
}

void resize_stream_destroy(resize_stream *rs) {
  if (!rs) return;
  for (int i = 0; rs->st && i < rs->n; i++) free(rs->st[i].block);
  free(rs->st);
  free(rs);
}

int resize_stream_create(int w, int h, const resize_out *o, int n, resize_stream **out, mskx_err *e) {
  *out = NULL;
  if (w <= 0 || h <= 0) return err_set(e, MSKX_EINVAL, "resize: bad source image %dx%d", w, h);
  for (int i = 0; i < n; i++) {
    int rc = check_out(&o[i], e);
    if (rc) return rc;
  }
  resize_stream *rs = calloc(1, sizeof *rs);
  if (!rs || !(rs->st = calloc((size_t)(n > 0 ? n : 1), sizeof *rs->st))) {
    free(rs);
    return err_set(e, MSKX_ENOMEM, "resize: out of memory");
  }
  rs->w = w, rs->h = h, rs->n = n;
  for (int i = 0; i < n; i++) {
    int rc = stage_init(&rs->st[i], w, h, &o[i], e);
    if (rc) {
      resize_stream_destroy(rs);
      return rc;
    }
  }
  *out = rs;
  return MSKX_OK;
}

void resize_stream_row(resize_stream *rs, const uint8_t *row) {
  if (rs->y >= rs->h) return;
  for (int i = 0; i < rs->n; i++) stage_row(&rs->st[i], rs->y, row);
  rs->y++;
}

int resize_gray(const gray_image *src, int s, int keep_aspect, float *dst, mskx_err *e) {
  if (!src || !src->px || src->w <= 0 || src->h <= 0)
    return err_set(e, MSKX_EINVAL, "resize: bad source image %dx%d", src ? src->w : 0, src ? src->h : 0);
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  resize_out o = {.s = s, .keep_aspect = keep_aspect, .dst = dst};
  resize_stream *rs;
  int rc = resize_stream_create(src->w, src->h, &o, 1, &rs, e);
  if (rc) return rc;
  for (int y = 0; y < src->h; y++) resize_stream_row(rs, src->px + (size_t)y * src->w);
  resize_stream_destroy(rs);
  return MSKX_OK;
}

/* The 8-bit cache's rounding of a float resize result. */
static void round_u8(const float *f, size_t n, uint8_t *dst) {
  for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(f[i] * 255.0f + 0.5f);
}

int resize_gray_u8(const gray_image *src, int s, int keep_aspect, uint8_t *dst, mskx_err *e) {
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  size_t n = (size_t)s * (size_t)s;
  float *f = malloc(n * sizeof(float));
  if (!f) return err_set(e, MSKX_ENOMEM, "resize: cannot allocate %dx%d floats", s, s);
  int rc = resize_gray(src, s, keep_aspect, f, e);
  if (!rc) round_u8(f, n, dst);
  free(f);
  return rc;
}

/* The sink of resize_file: one stream with one output. */
typedef struct file_sink {
  resize_out out;
  resize_stream *rs;
} file_sink;

static uint64_t file_sink_cost(void *ctx, int w, int h) {
  file_sink *fs = ctx;
  return resize_stream_bytes(w, h, &fs->out, 1);
}

static int file_sink_begin(void *ctx, int w, int h, mskx_err *e) {
  file_sink *fs = ctx;
  return resize_stream_create(w, h, &fs->out, 1, &fs->rs, e);
}

static void file_sink_row(void *ctx, const uint8_t *row) {
  file_sink *fs = ctx;
  resize_stream_row(fs->rs, row);
}

int resize_file(const char *path, const image_limits *lim, int s, int keep_aspect, float *dst, mskx_err *e) {
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  file_sink fs = {.out = {.s = s, .keep_aspect = keep_aspect, .dst = dst}};
  image_sink sink = {file_sink_cost, file_sink_begin, file_sink_row, &fs};
  int rc = image_stream_file(path, lim, &sink, e);
  resize_stream_destroy(fs.rs);
  return rc;
}

int resize_file_u8(const char *path, const image_limits *lim, int s, int keep_aspect, uint8_t *dst, mskx_err *e) {
  if (s <= 0 || s > RESIZE_MAX_SIDE || !dst)
    return err_set(e, MSKX_EINVAL, "resize: bad output size %d (1..%d)", s, RESIZE_MAX_SIDE);
  size_t n = (size_t)s * (size_t)s;
  float *f = malloc(n * sizeof(float));
  if (!f) return err_set(e, MSKX_ENOMEM, "resize: cannot allocate %dx%d floats", s, s);
  int rc = resize_file(path, lim, s, keep_aspect, f, e);
  if (!rc) round_u8(f, n, dst);
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
