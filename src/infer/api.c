/* The public C API (include/mskx.h): models, predictions and results.
 * Concurrency: an mskx_model owns a pool of predictor contexts (engine +
 * planned networks each); a call takes a free context, creating one by
 * cloning the first while fewer than max_contexts exist, else waits. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset.h"
#include "infer/cam.h"
#include "infer/predictor.h"
#include "io/image.h"

#define API_MAX_CONTEXTS 64

struct mskx_model {
  char *path;
  image_limits lim;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  predictor **ctx;      /* max_ctx slots: ctx[0] is the loaded one, others clones or NULL */
  unsigned char *busy;
  int max_ctx;
  struct mskx_model_info info;
};

static const char *const kind_str[] = {"model", "bundle", "ensemble"};

void mskx_load_options_default(mskx_load_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

void mskx_predict_options_default(mskx_predict_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

static int default_contexts(int threads) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1) cores = 1;
  long per = threads > 0 ? threads : cores, n = cores / per;
  return n < 1 ? 1 : n > API_MAX_CONTEXTS ? API_MAX_CONTEXTS : (int)n;
}

int mskx_model_load(const char *path, const mskx_load_options *opt, mskx_model **out, mskx_err *err) {
  err_clear(err);
  if (!out) return err_set(err, MSKX_EINVAL, "mskx_model_load: out is NULL");
  *out = NULL;
  if (!path || !path[0]) return err_set(err, MSKX_EINVAL, "mskx_model_load: no path given");
  mskx_load_options o;
  mskx_load_options_default(&o);
  if (opt) o = *opt;
  if (o.threads < 0 || o.threads > 1024) return err_set(err, MSKX_EINVAL, "threads must be in 0..1024");
  if (o.precision != MSKX_PRECISION_FP32 && o.precision != MSKX_PRECISION_BF16)
    return err_set(err, MSKX_EINVAL, "precision must be MSKX_PRECISION_FP32 or MSKX_PRECISION_BF16");
  if (o.max_batch < 0 || o.max_batch > 4096) return err_set(err, MSKX_EINVAL, "max_batch must be in 0..4096");
  if (o.max_contexts < 0 || o.max_contexts > API_MAX_CONTEXTS)
    return err_set(err, MSKX_EINVAL, "max_contexts must be in 0..%d", API_MAX_CONTEXTS);
  mskx_model *m = calloc(1, sizeof *m);
  if (!m) return err_set(err, MSKX_ENOMEM, "out of memory");
  m->max_ctx = o.max_contexts ? o.max_contexts : default_contexts(o.threads);
  m->lim.max_pixels = o.max_pixels;
  m->path = str_dup(path);
  m->ctx = calloc((size_t)m->max_ctx, sizeof *m->ctx);
  m->busy = calloc((size_t)m->max_ctx, 1);
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  predictor_options po = {o.threads, o.precision == MSKX_PRECISION_BF16 ? PREC_BF16 : PREC_FP32, o.max_batch, m->lim};
  int rc = !m->path || !m->ctx || !m->busy ? err_set(err, MSKX_ENOMEM, "out of memory")
                                           : predictor_load(path, &po, &m->ctx[0], err);
  if (rc) {
    mskx_model_free(m);
    return rc;
  }
  const predictor_info *pi = predictor_get_info(m->ctx[0]);
  m->info = (struct mskx_model_info){.kind = (int)pi->kind,
                                     .kind_name = kind_str[pi->kind],
                                     .path = m->path,
                                     .arch = pi->arch,
                                     .size = pi->size,
                                     .parts = pi->parts,
                                     .threshold = pi->threshold,
                                     .n_members = pi->n_members,
                                     .method = pi->method,
                                     .metadata_json = pi->metadata_json};
  *out = m;
  return MSKX_OK;
}

void mskx_model_free(mskx_model *m) {
  if (!m) return;
  for (int i = 0; m->ctx && i < m->max_ctx; i++) predictor_free(m->ctx[i]);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  free(m->ctx);
  free(m->busy);
  free(m->path);
  free(m);
}

int mskx_model_info(const mskx_model *m, struct mskx_model_info *out) {
  if (!m || !out) return MSKX_EINVAL;
  *out = m->info;
  return MSKX_OK;
}

/* Takes a free context, else clones ctx[0] into an empty slot, else waits. */
static int ctx_acquire(mskx_model *m, int *slot, mskx_err *e) {
  pthread_mutex_lock(&m->mu);
  for (;;) {
    int empty = -1;
    for (int i = 0; i < m->max_ctx; i++) {
      if (m->busy[i]) continue;
      if (m->ctx[i]) {
        m->busy[i] = 1;
        *slot = i;
        pthread_mutex_unlock(&m->mu);
        return MSKX_OK;
      }
      if (empty < 0) empty = i;
    }
    if (empty >= 0) {
      m->busy[empty] = 1;
      pthread_mutex_unlock(&m->mu);
      /* Cloning reads only ctx[0]'s parameters, which predictions never write. */
      predictor *p = NULL;
      int rc = predictor_clone(m->ctx[0], &p, e);
      pthread_mutex_lock(&m->mu);
      if (rc) {
        m->busy[empty] = 0; /* the slot stays empty; a later call retries it */
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        return rc;
      }
      m->ctx[empty] = p;
      *slot = empty;
      pthread_mutex_unlock(&m->mu);
      return MSKX_OK;
    }
    pthread_cond_wait(&m->cv, &m->mu);
  }
}

static void ctx_release(mskx_model *m, int slot) {
  pthread_mutex_lock(&m->mu);
  m->busy[slot] = 0;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

void mskx_result_free(mskx_result *r) {
  if (!r) return;
  for (int i = 0; r->images && i < r->n_images; i++) {
    free(r->images[i].name);
    free(r->images[i].cam);
    free(r->images[i].overlay_png);
  }
  free(r->images);
  free(r->member_probabilities);
  free(r->model_used);
  free(r);
}

/* Moves a predictor result into a public one, adding overlays. */
static int to_result(const study_result *sr, const gray_image *imgs, char **names, const mskx_predict_options *o,
                     mskx_result **out, mskx_err *e) {
  mskx_result *r = calloc(1, sizeof *r);
  if (!r) return err_set(e, MSKX_ENOMEM, "out of memory");
  r->probability = sr->probability;
  r->abnormal = sr->abnormal;
  r->threshold = sr->threshold;
  memcpy(r->part, sr->part, sizeof r->part);
  r->model_used = str_dup(sr->model_used ? sr->model_used : "");
  r->n_images = sr->n_images;
  r->images = calloc((size_t)sr->n_images, sizeof *r->images);
  r->n_members = sr->n_members;
  if (sr->n_members && (r->member_probabilities = malloc((size_t)sr->n_members * sizeof(double))))
    memcpy(r->member_probabilities, sr->member_prob, (size_t)sr->n_members * sizeof(double));
  int rc = !r->model_used || !r->images || (sr->n_members && !r->member_probabilities)
               ? err_set(e, MSKX_ENOMEM, "out of memory")
               : MSKX_OK;
  float alpha = o->overlay_alpha > 0 ? o->overlay_alpha : CAM_DEFAULT_ALPHA;
  for (int i = 0; !rc && i < sr->n_images; i++) {
    mskx_image_result *ir = &r->images[i];
    ir->width = imgs[i].w;
    ir->height = imgs[i].h;
    ir->probability = sr->image_prob[i];
    ir->name = names[i];
    names[i] = NULL;
    if (o->want_overlay)
      rc = cam_overlay_png(&imgs[i], sr->cam[i], alpha, &ir->overlay_png, &ir->overlay_png_len, e);
    if (!rc && o->want_cam) {
      ir->cam = sr->cam[i];
      sr->cam[i] = NULL;
    }
  }
  if (rc) {
    mskx_result_free(r);
    return rc;
  }
  *out = r;
  return MSKX_OK;
}

/* Runs a decoded study through a pooled context. Takes ownership of nothing. */
static int predict_gray(mskx_model *m, const gray_image *imgs, char **names, int n, const char *part,
                        const mskx_predict_options *opt, mskx_result **out, mskx_err *e) {
  mskx_predict_options o;
  mskx_predict_options_default(&o);
  if (opt) o = *opt;
  if (o.agg != MSKX_AGG_MEAN && o.agg != MSKX_AGG_MAX)
    return err_set(e, MSKX_EINVAL, "agg must be MSKX_AGG_MEAN or MSKX_AGG_MAX");
  if (!(o.overlay_alpha >= 0 && o.overlay_alpha <= 1)) return err_set(e, MSKX_EINVAL, "overlay_alpha must be in [0, 1]");
  predict_options po = {o.agg == MSKX_AGG_MAX ? AGG_MAX : AGG_MEAN, o.tta_flip != 0, o.want_cam || o.want_overlay};
  int slot;
  int rc = ctx_acquire(m, &slot, e);
  if (rc) return rc;
  study_result sr;
  rc = predictor_predict_study(m->ctx[slot], imgs, n, part, &po, &sr, e);
  ctx_release(m, slot);
  if (!rc) rc = to_result(&sr, imgs, names, &o, out, e);
  study_result_free(&sr);
  return rc;
}

typedef struct study_in {
  gray_image *imgs;
  char **names;
  int n;
} study_in;

static int study_in_alloc(study_in *s, int n, mskx_err *e) {
  s->n = n;
  s->imgs = calloc((size_t)n, sizeof *s->imgs);
  s->names = calloc((size_t)n, sizeof *s->names);
  return s->imgs && s->names ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
}

static void study_in_free(study_in *s) {
  for (int i = 0; i < s->n; i++) {
    if (s->imgs) gray_image_free(&s->imgs[i]);
    if (s->names) free(s->names[i]);
  }
  free(s->imgs);
  free(s->names);
}

static int set_name(study_in *s, int i, const char *name, mskx_err *e) {
  char fallback[32];
  snprintf(fallback, sizeof fallback, "image %d", i + 1);
  s->names[i] = str_dup(name ? name : fallback);
  return s->names[i] ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
}

static int check_call(mskx_model *m, const void *imgs, int n, mskx_result **out, mskx_err *e) {
  err_clear(e);
  if (out) *out = NULL;
  if (!m || !out) return err_set(e, MSKX_EINVAL, "model and out must not be NULL");
  if (n < 1 || !imgs) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  return MSKX_OK;
}

int mskx_predict_encoded(mskx_model *m, const mskx_encoded_image *imgs, int n, const char *part,
                         const mskx_predict_options *opt, mskx_result **out, mskx_err *err) {
  int rc = check_call(m, imgs, n, out, err);
  if (rc) return rc;
  study_in s;
  rc = study_in_alloc(&s, n, err);
  for (int i = 0; !rc && i < n; i++) {
    rc = set_name(&s, i, imgs[i].name, err);
    if (!rc && (!imgs[i].bytes || !imgs[i].len)) rc = err_set(err, MSKX_EFORMAT, "%s: empty image data", s.names[i]);
    if (!rc) rc = image_decode(imgs[i].bytes, imgs[i].len, s.names[i], &m->lim, &s.imgs[i], err);
  }
  if (!rc) rc = predict_gray(m, s.imgs, s.names, n, part, opt, out, err);
  study_in_free(&s);
  return rc;
}

static int pixels_to_gray(const mskx_pixel_image *p, const char *name, const image_limits *lim, gray_image *g,
                          mskx_err *e) {
  unsigned long long cap = lim->max_pixels ? lim->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
  int bits = p->bits_per_sample ? p->bits_per_sample : 8;
  if (!p->pixels || p->width <= 0 || p->height <= 0 || (p->channels != 1 && p->channels != 3))
    return err_set(e, MSKX_EINVAL, "%s: needs pixels, a positive size and 1 or 3 channels", name);
  if (bits != 8 && bits != 16) return err_set(e, MSKX_EINVAL, "%s: bits_per_sample must be 8 or 16, got %d", name, bits);
  if ((unsigned long long)p->width * (unsigned long long)p->height > cap)
    return err_set(e, MSKX_ELIMIT, "%s: %dx%d exceeds the pixel limit %llu", name, p->width, p->height, cap);
  size_t row = (size_t)p->width * p->channels * (size_t)(bits / 8), stride = p->stride ? (size_t)p->stride : row;
  if (p->stride < 0 || stride < row)
    return err_set(e, MSKX_EINVAL, "%s: stride %d is below width*channels*bytes per sample (%zu)", name, p->stride, row);
  if (bits == 16 && ((uintptr_t)p->pixels % 2 || stride % 2))
    return err_set(e, MSKX_EINVAL, "%s: 16-bit pixels and stride must be 2-byte aligned", name);
  g->w = p->width;
  g->h = p->height;
  if (!(g->px = malloc((size_t)p->width * p->height))) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int y = 0; y < p->height; y++) {
    const unsigned char *r = p->pixels + stride * y;
    const uint16_t *r16 = (const uint16_t *)(const void *)r;
    uint8_t *o = g->px + (size_t)y * p->width;
    if (bits == 8 && p->channels == 1) memcpy(o, r, row);
    else if (bits == 8)
      for (int x = 0; x < p->width; x++) o[x] = image_luma8(r[3 * x], r[3 * x + 1], r[3 * x + 2]);
    else if (p->channels == 1)
      for (int x = 0; x < p->width; x++) o[x] = image_grey16(r16[x]);
    else
      for (int x = 0; x < p->width; x++) o[x] = image_luma16(r16[3 * x], r16[3 * x + 1], r16[3 * x + 2]);
  }
  return MSKX_OK;
}

int mskx_predict_pixels(mskx_model *m, const mskx_pixel_image *imgs, int n, const char *part,
                        const mskx_predict_options *opt, mskx_result **out, mskx_err *err) {
  int rc = check_call(m, imgs, n, out, err);
  if (rc) return rc;
  study_in s;
  rc = study_in_alloc(&s, n, err);
  for (int i = 0; !rc && i < n; i++) {
    rc = set_name(&s, i, imgs[i].name, err);
    if (!rc) rc = pixels_to_gray(&imgs[i], s.names[i], &m->lim, &s.imgs[i], err);
  }
  if (!rc) rc = predict_gray(m, s.imgs, s.names, n, part, opt, out, err);
  study_in_free(&s);
  return rc;
}

int mskx_predict_files(mskx_model *m, const char *const *paths, int n, const char *part,
                       const mskx_predict_options *opt, mskx_result **out, mskx_err *err) {
  int rc = check_call(m, paths, n, out, err);
  if (rc) return rc;
  char xr[PART_NAME_MAX] = "";
  if ((!part || !part[0]) && paths[0] && ds_xr_part(paths[0], xr, sizeof xr)) part = xr;
  study_in s;
  rc = study_in_alloc(&s, n, err);
  for (int i = 0; !rc && i < n; i++) {
    if (!paths[i]) rc = err_set(err, MSKX_EINVAL, "path %d is NULL", i + 1);
    if (!rc) rc = set_name(&s, i, paths[i], err);
    if (!rc) rc = image_load(paths[i], &m->lim, &s.imgs[i], err);
  }
  if (!rc) rc = predict_gray(m, s.imgs, s.names, n, part, opt, out, err);
  study_in_free(&s);
  return rc;
}
