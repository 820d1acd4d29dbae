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
#include "data/parts.h"
#include "infer/cam.h"
#include "infer/model_batch.h"
#include "infer/predictor.h"
#include "io/dicom.h"
#include "io/image.h"

#define API_MAX_CONTEXTS 64
/* Without max_decode_bytes, decoding may hold this fraction of physical
 * memory across all calls on a model (docs/serve.md has the arithmetic). */
#define API_DECODE_RAM_DIVISOR 4
/* Floor of that default, for machines that report little memory. */
#define API_DECODE_MIN_BYTES ((unsigned long long)256 << 20)
/* How long a call waits for decode budget when decode_wait_ms is 0. */
#define API_DECODE_WAIT_MS 30000

struct mskx_model {
  char *path;
  image_limits lim;     /* with the budget below */
  mem_budget *budget;   /* decoded bytes in flight across calls */
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

static unsigned long long default_decode_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  unsigned long long ram = pages > 0 && page > 0 ? (unsigned long long)pages * (unsigned long long)page : 0;
  unsigned long long b = ram / API_DECODE_RAM_DIVISOR;
  return b < API_DECODE_MIN_BYTES ? API_DECODE_MIN_BYTES : b;
}

unsigned long long mskx_default_decode_bytes(void) { return default_decode_bytes(); }

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
  if (o.precision != MSKX_PRECISION_FP32 && o.precision != MSKX_PRECISION_BF16 && o.precision != MSKX_PRECISION_AUTO)
    return err_set(err, MSKX_EINVAL, "precision must be MSKX_PRECISION_FP32, MSKX_PRECISION_BF16 or MSKX_PRECISION_AUTO");
  if (o.max_batch < 0 || o.max_batch > 4096) return err_set(err, MSKX_EINVAL, "max_batch must be in 0..4096");
  if (o.max_contexts < 0 || o.max_contexts > API_MAX_CONTEXTS)
    return err_set(err, MSKX_EINVAL, "max_contexts must be in 0..%d", API_MAX_CONTEXTS);
  if (o.decode_wait_ms > 3600000) return err_set(err, MSKX_EINVAL, "decode_wait_ms must be at most 3600000 (an hour)");
  mskx_model *m = calloc(1, sizeof *m);
  if (!m) return err_set(err, MSKX_ENOMEM, "out of memory");
  m->max_ctx = o.max_contexts ? o.max_contexts : default_contexts(o.threads);
  m->lim.max_pixels = o.max_pixels;
  int wait = o.decode_wait_ms < 0 ? 0 : o.decode_wait_ms ? o.decode_wait_ms : API_DECODE_WAIT_MS;
  if (mem_budget_create(o.max_decode_bytes ? o.max_decode_bytes : default_decode_bytes(), wait, &m->budget, err)) {
    free(m);
    return err->code;
  }
  m->lim.budget = m->budget;
  if (o.dicom_window && dicom_options_parse_window(o.dicom_window, &m->lim.dicom, err)) {
    mem_budget_destroy(m->budget);
    free(m);
    return err->code;
  }
  m->lim.dicom.frames = o.dicom_first_frame ? DICOM_FRAMES_FIRST : DICOM_FRAMES_ALL;
  m->path = str_dup(path);
  m->ctx = calloc((size_t)m->max_ctx, sizeof *m->ctx);
  m->busy = calloc((size_t)m->max_ctx, 1);
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  precision prec = o.precision == MSKX_PRECISION_BF16 ? PREC_BF16 : o.precision == MSKX_PRECISION_AUTO ? PREC_AUTO : PREC_FP32;
  predictor_options po = {o.threads, prec, o.max_batch, m->lim};
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
                                     .metadata_json = pi->metadata_json,
                                     .precision = precision_name(predictor_precision(m->ctx[0]))};
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
  mem_budget_destroy(m->budget);
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
    free(r->images[i].image_png);
  }
  free(r->images);
  free(r->member_probabilities);
  free(r->model_used);
  free(r);
}

/* Moves a predictor result into a public one, adding overlays (rendered at
 * the display size the maps have). */
static int to_result(study_result *sr, char **names, const mskx_predict_options *o, mskx_result **out, mskx_err *e) {
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
    ir->width = sr->width[i];
    ir->height = sr->height[i];
    ir->probability = sr->image_prob[i];
    ir->name = names[i];
    names[i] = NULL;
    if (sr->display) {
      ir->cam_width = sr->display[i].w;
      ir->cam_height = sr->display[i].h;
    }
    if (o->want_overlay)
      rc = cam_overlay_png(&sr->display[i], sr->cam[i], alpha, &ir->overlay_png, &ir->overlay_png_len, e);
    if (!rc && o->want_image)
      rc = image_encode_png(sr->display[i].px, sr->display[i].w, sr->display[i].h, 1, &ir->image_png,
                            &ir->image_png_len, e);
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

/* The predictor's options from the public ones. */
static int predict_opts(const mskx_predict_options *opt, mskx_predict_options *o, predict_options *po, mskx_err *e) {
  mskx_predict_options_default(o);
  if (opt) *o = *opt;
  if (o->agg != MSKX_AGG_MEAN && o->agg != MSKX_AGG_MAX)
    return err_set(e, MSKX_EINVAL, "agg must be MSKX_AGG_MEAN or MSKX_AGG_MAX");
  if (!(o->overlay_alpha >= 0 && o->overlay_alpha <= 1)) return err_set(e, MSKX_EINVAL, "overlay_alpha must be in [0, 1]");
  *po = (predict_options){o->agg == MSKX_AGG_MAX ? AGG_MAX : AGG_MEAN, o->tta_flip != 0, o->want_cam || o->want_overlay,
                          o->want_image != 0};
  return MSKX_OK;
}

/* Runs a study: decodes it without a context (reading only ctx[0]'s tree,
 * which predictions never write), then computes on a pooled context. */
static int predict_sources(mskx_model *m, const image_source *srcs, char **names, int n, const char *part,
                           const mskx_predict_options *opt, mskx_result **out, mskx_err *e) {
  mskx_predict_options o;
  predict_options po;
  int rc = predict_opts(opt, &o, &po, e);
  if (rc) return rc;
  study_inputs *in;
  rc = predictor_prepare(m->ctx[0], srcs, n, part, &po, &in, e);
  if (rc) return rc;
  int slot;
  rc = ctx_acquire(m, &slot, e);
  study_result sr;
  memset(&sr, 0, sizeof sr);
  if (!rc) {
    rc = predictor_predict_inputs(m->ctx[slot], in, part, &po, &sr, e);
    ctx_release(m, slot);
  }
  study_inputs_free(in);
  if (!rc) rc = to_result(&sr, names, &o, out, e);
  study_result_free(&sr);
  return rc;
}

/* A study's sources: a multi-frame DICOM file adds one source per frame
 * (named NAME#K); DICOM metadata comes from the first DICOM image. */
typedef struct study_in {
  image_source *src;
  char **names;
  int n, cap;
  int have_dicom;
  char study_uid[65];
  char dicom_part[PART_NAME_MAX];
} study_in;

/* Room for n sources; n is checked here, where it sizes the allocation. */
static int study_in_alloc(study_in *s, int n, mskx_err *e) {
  memset(s, 0, sizeof *s);
  if (n < 1) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  s->cap = n;
  s->src = calloc((size_t)n, sizeof *s->src);
  s->names = calloc((size_t)n, sizeof *s->names);
  return s->src && s->names ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
}

static void study_in_free(study_in *s) {
  for (int i = 0; s->names && i < s->n; i++) free(s->names[i]);
  free(s->src);
  free(s->names);
}

/* Appends a source named name (copied; NULL: "image I" for input i). */
static int study_in_push(study_in *s, const image_source *src, const char *name, int i, mskx_err *e) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 4;
    image_source *si = realloc(s->src, (size_t)cap * sizeof *si);
    if (si) s->src = si;
    char **nm = si ? realloc(s->names, (size_t)cap * sizeof *nm) : NULL;
    if (nm) s->names = nm;
    if (!si || !nm) return err_set(e, MSKX_ENOMEM, "out of memory");
    s->cap = cap;
  }
  char fallback[32];
  snprintf(fallback, sizeof fallback, "image %d", i + 1);
  char *copy = str_dup(name ? name : fallback);
  if (!copy) return err_set(e, MSKX_ENOMEM, "out of memory");
  s->src[s->n] = *src;
  s->src[s->n].name = copy;
  s->names[s->n++] = copy;
  return MSKX_OK;
}

/* Adds an encoded image: a DICOM file's header gives the study's UID and
 * part and its frame count (one source per frame, unless the model reads
 * first frames only); other images are one source each. */
static int study_in_add(study_in *s, const image_limits *lim, const image_source *src, const uint8_t *buf, size_t len,
                        const char *name, mskx_err *e) {
  if (!dicom_is_dicom(buf, len)) return study_in_push(s, src, name, s->n, e);
  dicom_meta meta;
  int rc = dicom_scan_meta(buf, len, name, &meta, e);
  if (rc) return rc;
  if (!s->have_dicom) {
    s->have_dicom = 1;
    snprintf(s->study_uid, sizeof s->study_uid, "%s", meta.study_uid);
  }
  if (!s->dicom_part[0]) dicom_mura_part(&meta, s->dicom_part, sizeof s->dicom_part);
  int frames = lim->dicom.frames == DICOM_FRAMES_FIRST ? 1 : meta.frames;
  for (int k = 0; !rc && k < frames; k++) {
    char fname[4200];
    image_source f = *src;
    /* Frame 1 of a file read for its first frame only is the file's one image. */
    f.frame = meta.frames > 1 && frames > 1 ? k + 1 : 0;
    if (frames > 1) snprintf(fname, sizeof fname, "%s#%d", name, k + 1);
    else snprintf(fname, sizeof fname, "%s", name);
    rc = study_in_push(s, &f, fname, s->n, e);
  }
  return rc;
}

/* A file's header, read to learn whether it is DICOM (and its frames): PNG
 * and JPEG files are recognised from their first bytes; anything else is
 * read whole (charged to the decode budget while held) and added as above. */
#define SNIFF_BYTES 8
static int study_in_add_file(study_in *s, const image_limits *lim, const char *path, mskx_err *e) {
  image_source src = {.path = path};
  uint8_t head[SNIFF_BYTES];
  size_t got = 0;
  FILE *f = fopen(path, "rb");
  if (f) {
    got = fread(head, 1, sizeof head, f);
    fclose(f);
  }
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!f || (got == sizeof head && (!memcmp(head, png, 8) || (head[0] == 0xFF && head[1] == 0xD8))))
    return study_in_push(s, &src, path, s->n, e);  /* decoding reports what is wrong with it */
  unsigned char *buf = NULL;
  size_t len = 0;
  int rc = file_read_all(path, IMAGE_MAX_FILE_BYTES, &buf, &len, e);
  if (rc) return rc;
  rc = lim->budget ? mem_budget_take(lim->budget, len, path, e) : MSKX_OK;
  if (!rc) {
    rc = study_in_add(s, lim, &src, buf, len, path, e);
    if (lim->budget) mem_budget_give(lim->budget, len);
  }
  free(buf);
  return rc;
}

/* The part a caller gave (NULL or "": none) into part (PART_NAME_MAX bytes). */
static int study_part(const char *given, char part[PART_NAME_MAX], mskx_err *e) {
  part[0] = 0;
  if (given && strlen(given) >= PART_NAME_MAX)
    return err_set(e, MSKX_EINVAL, "'%s' is not a body part name (expected e.g. XR_WRIST)", given);
  if (given) snprintf(part, PART_NAME_MAX, "%s", given);
  return MSKX_OK;
}

/* A study given as encoded images: its sources (s: freed by the caller with
 * study_in_free, also on failure). mskx_predict_encoded and
 * model_study_prepare_encoded both go through it, so their inputs agree. */
static int study_in_from_encoded(study_in *s, const image_limits *lim, const mskx_encoded_image *imgs, int n,
                                 mskx_err *e) {
  memset(s, 0, sizeof *s);
  if (!imgs) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  int rc = study_in_alloc(s, n, e);
  for (int i = 0; !rc && i < n; i++) {
    char fallback[32];
    snprintf(fallback, sizeof fallback, "image %d", i + 1);
    const char *name = imgs[i].name ? imgs[i].name : fallback;
    image_source src = {.bytes = imgs[i].bytes, .len = imgs[i].len};
    if (!imgs[i].bytes || !imgs[i].len) rc = err_set(e, MSKX_EFORMAT, "%s: empty image data", name);
    /* A multi-frame DICOM file adds one source per frame. */
    if (!rc) rc = study_in_add(s, lim, &src, imgs[i].bytes, imgs[i].len, name, e);
  }
  return rc;
}

/* A study given as image files: its sources (as study_in_from_encoded) and
 * its part, the one given or else the MURA folder name in the first path
 * (".../XR_WRIST/..."); "" when neither names one (the DICOM attributes may,
 * later). mskx_predict_files and model_study_prepare_files both go
 * through it. */
static int study_in_from_files(study_in *s, const image_limits *lim, const char *const *paths, int n,
                               const char *given_part, char part[PART_NAME_MAX], mskx_err *e) {
  memset(s, 0, sizeof *s);
  part[0] = 0;
  if (!paths) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  int rc = study_part(given_part, part, e);
  if (!rc && !part[0] && n >= 1 && paths[0]) part_from_path(paths[0], part, PART_NAME_MAX);
  if (!rc) rc = study_in_alloc(s, n, e);
  for (int i = 0; !rc && i < n; i++) {
    if (!paths[i]) rc = err_set(e, MSKX_EINVAL, "path %d is NULL", i + 1);
    if (!rc) rc = study_in_add_file(s, lim, paths[i], e);
  }
  return rc;
}

/* Runs a study; the part falls back to the DICOM attributes. */
static int predict_study(mskx_model *m, study_in *s, const char *part, const mskx_predict_options *opt,
                         mskx_result **out, mskx_err *e) {
  int from_dicom = 0;
  if ((!part || !part[0]) && s->dicom_part[0]) part = s->dicom_part, from_dicom = 1;
  int rc = predict_sources(m, s->src, s->names, s->n, part, opt, out, e);
  if (!rc) {
    snprintf((*out)->study_uid, sizeof (*out)->study_uid, "%s", s->study_uid);
    (*out)->part_from_dicom = from_dicom;
  }
  return rc;
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
  rc = study_in_from_encoded(&s, &m->lim, imgs, n, err);
  if (!rc) rc = predict_study(m, &s, part, opt, out, err);
  study_in_free(&s);
  return rc;
}

int mskx_predict_pixels(mskx_model *m, const mskx_pixel_image *imgs, int n, const char *part,
                        const mskx_predict_options *opt, mskx_result **out, mskx_err *err) {
  int rc = check_call(m, imgs, n, out, err);
  if (rc) return rc;
  study_in s;
  rc = study_in_alloc(&s, n, err);
  for (int i = 0; !rc && i < n; i++) {
    const mskx_pixel_image *p = &imgs[i];
    char fallback[32];
    snprintf(fallback, sizeof fallback, "image %d", i + 1);
    const char *name = p->name ? p->name : fallback;
    if (p->stride < 0) rc = err_set(err, MSKX_EINVAL, "%s: stride %d is below width*channels", name, p->stride);
    if (!rc && !p->pixels) rc = err_set(err, MSKX_EINVAL, "%s: needs pixels, a positive size and 1 or 3 channels", name);
    image_source src = {.pixels = p->pixels,
                        .w = p->width,
                        .h = p->height,
                        .channels = p->channels,
                        .bits = p->bits_per_sample ? p->bits_per_sample : 8,
                        .stride = p->stride > 0 ? (size_t)p->stride : 0};
    if (!rc) rc = study_in_push(&s, &src, name, i, err);
  }
  if (!rc) rc = predict_sources(m, s.src, s.names, s.n, part, opt, out, err);
  study_in_free(&s);
  return rc;
}

int mskx_predict_files(mskx_model *m, const char *const *paths, int n, const char *part,
                       const mskx_predict_options *opt, mskx_result **out, mskx_err *err) {
  int rc = check_call(m, paths, n, out, err);
  if (rc) return rc;
  study_in s;
  char found[PART_NAME_MAX];
  rc = study_in_from_files(&s, &m->lim, paths, n, part, found, err);
  if (!rc) rc = predict_study(m, &s, found[0] ? found : NULL, opt, out, err);
  study_in_free(&s);
  return rc;
}

int mskx_structured_report(const mskx_model *m, const mskx_result *r, const mskx_encoded_image *imgs, int n,
                           unsigned char **sr, size_t *len, mskx_err *err) {
  err_clear(err);
  if (sr) *sr = NULL;
  if (len) *len = 0;
  if (!m || !r || !imgs || n < 1 || !sr || !len) return err_set(err, MSKX_EINVAL, "mskx_structured_report: NULL argument");
  const uint8_t **bufs = calloc((size_t)n, sizeof *bufs);
  size_t *lens = calloc((size_t)n, sizeof *lens);
  int rc = bufs && lens ? MSKX_OK : err_set(err, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < n; i++) bufs[i] = imgs[i].bytes, lens[i] = imgs[i].len;
  const char *model = strrchr(m->path, '/');
  dicom_sr_in in = {NULL, 0, r->probability, r->threshold, r->abnormal, r->part, model ? model + 1 : m->path, NULL, NULL, NULL};
  if (!rc) rc = dicom_sr_from_encoded(bufs, lens, n, &in, sr, len, err);
  free(bufs);
  free(lens);
  return rc;
}
/* A study decoded for model_predict_studies (infer/model_batch.h). */
struct model_study {
  study_in src;
  char part[PART_NAME_MAX];
  int part_from_dicom;
  mskx_predict_options o;
  predict_options po;
  study_inputs *in;
  study_result sr;
  int rc;
  mskx_err err;
  int computed;
};

/* A new model_study with its options; its sources and part are the caller's to fill. */
static int model_study_begin(mskx_model *m, const mskx_predict_options *opt, model_study **out, mskx_err *e) {
  *out = NULL;
  if (!m) return err_set(e, MSKX_EINVAL, "a study needs a model");
  model_study *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = predict_opts(opt, &s->o, &s->po, e);
  if (rc) {
    model_study_free(s);
    return rc;
  }
  *out = s;
  return MSKX_OK;
}

/* Decodes the study's sources (rc: how adding them went); the part falls
 * back to the DICOM attributes as in predict_study. Frees s on failure. */
static int model_study_end(mskx_model *m, model_study *s, int rc, model_study **out, mskx_err *e) {
  if (!rc && !s->part[0] && s->src.dicom_part[0]) {
    snprintf(s->part, sizeof s->part, "%s", s->src.dicom_part);
    s->part_from_dicom = 1;
  }
  if (!rc) rc = predictor_prepare(m->ctx[0], s->src.src, s->src.n, s->part[0] ? s->part : NULL, &s->po, &s->in, e);
  for (int i = 0; i < s->src.n && s->src.src; i++) s->src.src[i].bytes = NULL;   /* the caller's bytes are done with */
  if (rc) {
    model_study_free(s);
    return rc;
  }
  *out = s;
  return MSKX_OK;
}

int model_study_prepare_encoded(mskx_model *m, const mskx_encoded_image *imgs, int n, const char *part,
                                const mskx_predict_options *opt, model_study **out, mskx_err *e) {
  err_clear(e);
  *out = NULL;
  model_study *s;
  int rc = model_study_begin(m, opt, &s, e);
  if (rc) return rc;
  rc = study_part(part, s->part, e);
  if (!rc) rc = study_in_from_encoded(&s->src, &m->lim, imgs, n, e);
  return model_study_end(m, s, rc, out, e);
}

int model_study_prepare_files(mskx_model *m, const char *const *paths, int n, const char *part,
                              const mskx_predict_options *opt, model_study **out, mskx_err *e) {
  err_clear(e);
  *out = NULL;
  model_study *s;
  int rc = model_study_begin(m, opt, &s, e);
  if (rc) return rc;
  rc = study_in_from_files(&s->src, &m->lim, paths, n, part, s->part, e);
  return model_study_end(m, s, rc, out, e);
}

int model_max_batch(const mskx_model *m) { return m->ctx[0]->opt.max_batch; }

void model_set_max_batch(mskx_model *m, int max_batch) {
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < m->max_ctx; i++)
    if (m->ctx[i]) predictor_set_max_batch(m->ctx[i], max_batch);   /* clones made later copy ctx[0]'s */
  pthread_mutex_unlock(&m->mu);
}

int model_contexts(const mskx_model *m) { return m->max_ctx; }

int model_study_images(const model_study *s) { return s->in->n * (s->po.tta_flip ? 2 : 1); }

int model_predict_studies(mskx_model *m, model_study **st, int n, int *batches, mskx_err *e) {
  *batches = 0;
  study_inputs **in = calloc((size_t)n, sizeof *in);
  const char **parts = calloc((size_t)n, sizeof *parts);
  predict_options *po = calloc((size_t)n, sizeof *po);
  study_result *outs = calloc((size_t)n, sizeof *outs);
  int *rcs = calloc((size_t)n, sizeof *rcs);
  mskx_err *errs = calloc((size_t)n, sizeof *errs);
  int rc = !in || !parts || !po || !outs || !rcs || !errs ? err_set(e, MSKX_ENOMEM, "out of memory") : MSKX_OK;
  int slot = -1;
  if (!rc) rc = ctx_acquire(m, &slot, e);
  if (!rc) {
    for (int i = 0; i < n; i++) {
      in[i] = st[i]->in;
      parts[i] = st[i]->part[0] ? st[i]->part : NULL;
      po[i] = st[i]->po;
    }
    predictor_predict_batch(m->ctx[slot], in, parts, po, n, outs, rcs, errs, batches);
    ctx_release(m, slot);
    for (int i = 0; i < n; i++) {
      st[i]->sr = outs[i];
      st[i]->rc = rcs[i];
      st[i]->err = errs[i];
      st[i]->computed = 1;
    }
  }
  free(in);
  free(parts);
  free(po);
  free(outs);
  free(rcs);
  free(errs);
  return rc;
}

int model_study_result(model_study *s, mskx_result **out, mskx_err *e) {
  *out = NULL;
  if (!s->computed) return err_set(e, MSKX_EINTERNAL, "the study was not computed");
  if (s->rc) {
    *e = s->err;
    return s->rc;
  }
  int rc = to_result(&s->sr, s->src.names, &s->o, out, e);
  if (!rc) {
    snprintf((*out)->study_uid, sizeof (*out)->study_uid, "%s", s->src.study_uid);
    (*out)->part_from_dicom = s->part_from_dicom;
  }
  return rc;
}

void model_study_free(model_study *s) {
  if (!s) return;
  study_inputs_free(s->in);
  study_result_free(&s->sr);
  study_in_free(&s->src);
  free(s);
}
