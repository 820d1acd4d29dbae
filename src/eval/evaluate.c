/* Predicting a split study by study (see evaluate.h). Decoding runs ahead on
 * a few worker threads through a window of study slots, so the predictor's
 * compute threads are not kept waiting on PNG/JPEG decoding. */
#include "eval/evaluate.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/affinity.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/table.h"
#include "infer/cam.h"

void eval_config_default(eval_config *c) {
  memset(c, 0, sizeof *c);
  c->split = DS_VALID;
  c->po.agg = AGG_MEAN;
}

/* ---- decode-ahead pipeline ---- */

typedef struct decoded {
  int idx;          /* study index; -1 while the slot is empty */
  int n;            /* images decoded */
  gray_image *imgs;
  int *img_idx;     /* split image index of each decoded image */
  int n_skipped;
  char **msgs;      /* one message per skipped image */
  int rc;           /* a hard error (strict mode, out of memory) */
  mskx_err err;
} decoded;

typedef struct pipeline {
  const ds_split *s;
  image_limits lim;
  int strict;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  decoded slot[EVAL_DECODE_WINDOW];
  int next, consumed, stop;
} pipeline;

static void decoded_free(decoded *d) {
  for (int i = 0; i < d->n; i++) gray_image_free(&d->imgs[i]);
  for (int i = 0; i < d->n_skipped; i++) free(d->msgs[i]);
  free(d->imgs);
  free(d->img_idx);
  free(d->msgs);
  memset(d, 0, sizeof *d);
  d->idx = -1;
}

static void decode_study(pipeline *pl, int i, decoded *d) {
  const ds_study *st = &pl->s->studies[i];
  memset(d, 0, sizeof *d);
  d->idx = i;
  int n = st->n_images;
  d->imgs = calloc((size_t)(n ? n : 1), sizeof *d->imgs);
  d->img_idx = calloc((size_t)(n ? n : 1), sizeof *d->img_idx);
  d->msgs = calloc((size_t)(n ? n : 1), sizeof *d->msgs);
  if (!d->imgs || !d->img_idx || !d->msgs) {
    d->rc = err_set(&d->err, MSKX_ENOMEM, "out of memory decoding %s", st->path);
    return;
  }
  for (int k = 0; k < n; k++) {
    int ii = st->first_image + k;
    mskx_err e = {0, ""};
    if (!image_load(pl->s->images[ii].path, &pl->lim, &d->imgs[d->n], &e)) {
      d->img_idx[d->n++] = ii;
      continue;
    }
    if (pl->strict) {
      d->rc = e.code;
      d->err = e;
      return;
    }
    if (!(d->msgs[d->n_skipped++] = str_dup(e.msg))) {
      d->rc = err_set(&d->err, MSKX_ENOMEM, "out of memory");
      return;
    }
  }
}

static void *decode_worker(void *arg) {
  thread_unpin(); /* decode anywhere, not on the compute thread's CPU it was started from */
  pipeline *pl = arg;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    while (!pl->stop && pl->next < pl->s->n_studies && pl->next >= pl->consumed + EVAL_DECODE_WINDOW)
      pthread_cond_wait(&pl->cv, &pl->mu);
    if (pl->stop || pl->next >= pl->s->n_studies) {
      pthread_mutex_unlock(&pl->mu);
      return NULL;
    }
    int i = pl->next++;
    pthread_mutex_unlock(&pl->mu);
    decoded d;
    decode_study(pl, i, &d);
    pthread_mutex_lock(&pl->mu);
    /* Study i - WINDOW was consumed before i was claimed, so the slot is free. */
    pl->slot[i % EVAL_DECODE_WINDOW] = d;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
  }
}

/* Waits for study i and moves it out of its slot. */
static void pipeline_take(pipeline *pl, int i, decoded *out) {
  pthread_mutex_lock(&pl->mu);
  decoded *s = &pl->slot[i % EVAL_DECODE_WINDOW];
  while (s->idx != i) pthread_cond_wait(&pl->cv, &pl->mu);
  *out = *s;
  memset(s, 0, sizeof *s);
  s->idx = -1;
  pl->consumed = i + 1;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
}

/* ---- the run ---- */

static int write_overlays(const eval_config *c, const ds_split *s, const eval_study *st, const decoded *d,
                          const study_result *sr, mskx_err *e) {
  char name[CAM_OVERLAY_NAME_MAX], path[4096];
  for (int k = 0; k < d->n; k++) {
    cam_overlay_name(st->ds->path, s->images[st->image_idx[k]].path, 1, name, sizeof name);
    int rc = path_join(path, sizeof path, c->cam_dir, name, e);
    if (!rc) rc = cam_write_overlay(path, &sr->display[k], sr->cam[k], CAM_DEFAULT_ALPHA, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

static int keep_skips(eval_run *r, decoded *d) {
  r->n_skipped += d->n_skipped;
  for (int k = 0; k < d->n_skipped && r->n_skip_msgs < EVAL_MAX_SKIP_MSGS; k++) {
    r->skip_msgs[r->n_skip_msgs++] = d->msgs[k];
    d->msgs[k] = NULL;
  }
  return MSKX_OK;
}

/* Predicts one decoded study into st. */
static int predict_one(predictor *p, const eval_config *c, eval_run *r, eval_study *st, decoded *d, mskx_err *e) {
  predict_options po = c->po;
  po.want_cam = c->cam_dir != NULL;
  study_result sr;
  const char *part = strcmp(st->part, "ALL") ? st->part : NULL;
  int rc = predictor_predict_study(p, d->imgs, d->n, part, &po, &sr, e);
  if (rc) {
    err_prefix(e, "study %s", st->ds->path);
  } else {
    st->ok = 1;
    st->n_used = d->n;
    st->image_idx = d->img_idx;
    d->img_idx = NULL;
    st->image_prob = sr.image_prob;
    sr.image_prob = NULL;
    st->probability = sr.probability;
    st->threshold = sr.threshold;
    st->abnormal = sr.abnormal;
    st->model_used = sr.model_used;
    sr.model_used = NULL;
    st->n_members = sr.n_members;
    st->member_prob = sr.member_prob;
    sr.member_prob = NULL;
    r->n_ok++;
    r->n_images += d->n;
    if (c->cam_dir) rc = write_overlays(c, r->split, st, d, &sr, e);
  }
  study_result_free(&sr);
  return rc;
}

static int run_all(predictor *p, const eval_config *c, eval_run *r, pipeline *pl, mskx_err *e) {
  double t0 = now_seconds();
  int rc = MSKX_OK;
  for (int i = 0; !rc && i < r->n_studies; i++) {
    decoded d;
    pipeline_take(pl, i, &d);
    eval_study *st = &r->studies[i];
    if (d.rc) {
      *e = d.err;
      rc = d.rc;
    } else {
      keep_skips(r, &d);
      if (d.n > 0) rc = predict_one(p, c, r, st, &d, e);
    }
    decoded_free(&d);
    r->seconds = now_seconds() - t0;
    if (c->progress) c->progress(c->progress_ctx, i + 1, r->n_studies, r->n_images, r->seconds);
  }
  return rc;
}

int eval_run_split(predictor *p, const dataset *d, const eval_config *c, eval_run **out, mskx_err *e) {
  *out = NULL;
  const ds_split *s = dataset_split(d, c->split);
  if (!s || s->n_studies == 0)
    return err_set(e, MSKX_EINVAL, "%s: the %s split has no studies", d->root, c->split == DS_TRAIN ? "train" : "valid");
  if (c->cam_dir && mkdir_p(c->cam_dir, e)) return e->code;
  eval_run *r = calloc(1, sizeof *r);
  if (!r) return err_set(e, MSKX_ENOMEM, "out of memory");
  r->d = d;
  r->split = s;
  r->n_studies = s->n_studies;
  r->agg = c->po.agg;
  r->tta = c->po.tta_flip;
  r->studies = calloc((size_t)s->n_studies, sizeof *r->studies);
  r->skip_msgs = calloc(EVAL_MAX_SKIP_MSGS, sizeof *r->skip_msgs);
  if (!r->studies || !r->skip_msgs) {
    eval_run_free(r);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  for (int i = 0; i < s->n_studies; i++) {
    r->studies[i].ds = &s->studies[i];
    r->studies[i].part = d->parts[s->studies[i].part];
  }
  pipeline pl;
  memset(&pl, 0, sizeof pl);
  pl.s = s;
  pl.lim = p->opt.limits;
  pl.strict = c->strict;
  for (int k = 0; k < EVAL_DECODE_WINDOW; k++) pl.slot[k].idx = -1;
  pthread_mutex_init(&pl.mu, NULL);
  pthread_cond_init(&pl.cv, NULL);
  int nt = c->decode_threads > 0 ? c->decode_threads : EVAL_DEFAULT_DECODE_THREADS, started = 0;
  pthread_t th[16];
  if (nt > 16) nt = 16;
  for (; started < nt; started++)
    if (pthread_create(&th[started], NULL, decode_worker, &pl)) break;
  int rc = started ? run_all(p, c, r, &pl, e) : err_set(e, MSKX_EINTERNAL, "cannot start decoding threads");
  pthread_mutex_lock(&pl.mu);
  pl.stop = 1;
  pthread_cond_broadcast(&pl.cv);
  pthread_mutex_unlock(&pl.mu);
  for (int k = 0; k < started; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < EVAL_DECODE_WINDOW; k++) decoded_free(&pl.slot[k]);
  pthread_mutex_destroy(&pl.mu);
  pthread_cond_destroy(&pl.cv);
  if (!rc && r->n_ok == 0)
    rc = err_set(e, MSKX_EIO, "%s: no study of the %s split could be predicted (every image unreadable)", d->root,
                 s->name);
  if (rc) {
    eval_run_free(r);
    return rc;
  }
  *out = r;
  return MSKX_OK;
}

void eval_run_free(eval_run *r) {
  if (!r) return;
  for (int i = 0; r->studies && i < r->n_studies; i++) {
    eval_study *st = &r->studies[i];
    free(st->image_idx);
    free(st->image_prob);
    free(st->model_used);
    free(st->member_prob);
  }
  for (int i = 0; i < r->n_skip_msgs; i++) free(r->skip_msgs[i]);
  free(r->skip_msgs);
  free(r->studies);
  free(r);
}

int eval_session_open(const char *model_path, const char *data_path, const predictor_options *po,
                      const eval_config *c, eval_session *s, mskx_err *e) {
  memset(s, 0, sizeof *s);
  int rc = dataset_open(data_path, NULL, &s->data, e);
  if (!rc) rc = predictor_load(model_path, po, &s->pred, e);
  if (!rc) rc = eval_run_split(s->pred, s->data, c, &s->run, e);
  return rc;
}

void eval_session_close(eval_session *s) {
  eval_run_free(s->run);
  predictor_free(s->pred);
  dataset_free(s->data);
  memset(s, 0, sizeof *s);
}

int eval_run_common_threshold(const eval_run *r, double *thr) {
  int any = 0;
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (!st->ok) continue;
    if (any && st->threshold != *thr) return 0;
    *thr = st->threshold;
    any = 1;
  }
  if (!any) *thr = MODEL_DEFAULT_THRESHOLD;
  return 1;
}

int eval_run_arrays(const eval_run *r, double **prob, int **label, int **idx, int *n, mskx_err *e) {
  *prob = malloc((size_t)r->n_ok * sizeof **prob + 1);
  *label = malloc((size_t)r->n_ok * sizeof **label + 1);
  if (idx) *idx = malloc((size_t)r->n_ok * sizeof **idx + 1);
  if (!*prob || !*label || (idx && !*idx)) {
    free(*prob);
    free(*label);
    if (idx) free(*idx);
    *prob = NULL, *label = NULL;
    if (idx) *idx = NULL;
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  int k = 0;
  for (int i = 0; i < r->n_studies; i++) {
    if (!r->studies[i].ok) continue;
    (*prob)[k] = r->studies[i].probability;
    (*label)[k] = r->studies[i].ds->label;
    if (idx) (*idx)[k] = i;
    k++;
  }
  *n = k;
  return MSKX_OK;
}

static study_pred *study_preds(const eval_run *r, int decisions, int *n) {
  study_pred *sp = calloc((size_t)(r->n_ok ? r->n_ok : 1), sizeof *sp); /* zeroed: GCC cannot see that k reaches n_ok */
  int k = 0;
  for (int i = 0; sp && i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (!st->ok) continue;
    sp[k++] = (study_pred){st->ds->path, st->part, decisions ? (double)st->abnormal : st->probability, st->ds->label};
  }
  *n = k;
  return sp;
}

static void copy_metric(eval_group *dst, const eval_group *src, int m) {
  dst->value[m] = src->value[m];
  dst->ci_lo[m] = src->ci_lo[m];
  dst->ci_hi[m] = src->ci_hi[m];
  dst->boot_undefined[m] = src->boot_undefined[m];
}

int eval_run_metrics(const eval_run *r, int n_boot, uint64_t seed, eval_results **out, mskx_err *e) {
  *out = NULL;
  double thr;
  int common = eval_run_common_threshold(r, &thr), n;
  eval_options o = {common ? thr : EVAL_DEFAULT_THRESHOLD, n_boot, seed, 0};
  study_pred *sp = study_preds(r, 0, &n);
  if (!sp) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = metrics_evaluate(sp, n, &o, out, e);
  free(sp);
  if (rc || common) return rc;
  /* Mixed thresholds: decision metrics from each study's own decision. */
  eval_results *dec = NULL;
  o.decisions_only = 1;
  if (!(sp = study_preds(r, 1, &n))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = metrics_evaluate(sp, n, &o, &dec, e);
  free(sp);
  if (!rc && dec->n_parts != (*out)->n_parts) rc = err_set(e, MSKX_EINTERNAL, "part groups differ between passes");
  if (!rc) {
    for (int g = 0; g < dec->n_parts; g++) copy_metric(&dec->parts[g], &(*out)->parts[g], METRIC_AUC);
    copy_metric(&dec->overall, &(*out)->overall, METRIC_AUC);
    dec->opt.decisions_only = 0;
    dec->opt.threshold = NAN;
  }
  eval_results_free(*out);
  *out = rc ? NULL : dec;
  if (rc) eval_results_free(dec);
  return rc;
}

/* ---- outputs ---- */

static int write_text(const char *path, const char *text, size_t len, mskx_err *e) {
  return file_write_atomic(path, text, len, e);
}

/* Builds text with a memstream and writes it atomically. */
#define WITH_MEMSTREAM(path, e, body)                                              \
  do {                                                                             \
    char *buf_ = NULL;                                                             \
    size_t len_ = 0;                                                               \
    FILE *f = open_memstream(&buf_, &len_);                                        \
    if (!f) return err_set(e, MSKX_ENOMEM, "out of memory");                       \
    body;                                                                          \
    int bad_ = fclose(f) != 0 || !buf_;                                            \
    int rc_ = bad_ ? err_set(e, MSKX_ENOMEM, "out of memory") : write_text(path, buf_, len_, e); \
    free(buf_);                                                                    \
    return rc_;                                                                    \
  } while (0)

int eval_write_predictions_csv(const eval_run *r, const char *path, mskx_err *e) {
  WITH_MEMSTREAM(path, e, {
    for (int i = 0; i < r->n_studies; i++) {
      const eval_study *st = &r->studies[i];
      if (!st->ok) continue;
      size_t l = strlen(st->ds->path);
      fprintf(f, "%s%s,%d\n", st->ds->path, l && st->ds->path[l - 1] == '/' ? "" : "/", st->abnormal);
    }
  });
}

int eval_write_probabilities_csv(const eval_run *r, const char *path, mskx_err *e) {
  WITH_MEMSTREAM(path, e, {
    fprintf(f, "study,part,n_images,probability,label\n");
    for (int i = 0; i < r->n_studies; i++) {
      const eval_study *st = &r->studies[i];
      if (!st->ok) continue;
      /* %.17g round-trips, so metrics recomputed from the file see the same ties. */
      fprintf(f, "%s,%s,%d,%.17g,%d\n", st->ds->path, st->part, st->n_used, st->probability, st->ds->label);
    }
  });
}

/* The threshold a part's studies share, or NaN. */
static double part_threshold(const eval_run *r, const char *part) {
  double t = NAN;
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (!st->ok || strcmp(st->part, part)) continue;
    if (!isnan(t) && t != st->threshold) return NAN;
    t = st->threshold;
  }
  return t;
}

static void set_threshold(cJSON *group, double t) {
  if (!group) return;
  cJSON_ReplaceItemInObjectCaseSensitive(group, "threshold", json_finite(t));
}

static cJSON *run_json(const eval_run *r, const char *model_path) {
  cJSON *o = cJSON_CreateObject(), *failed;
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "model", model_path);
  cJSON_AddStringToObject(o, "data", r->d->root);
  cJSON_AddStringToObject(o, "split", r->split->name);
  cJSON_AddStringToObject(o, "agg", r->agg == AGG_MAX ? "max" : "mean");
  cJSON_AddStringToObject(o, "tta", r->tta ? "flip" : "none");
  cJSON_AddNumberToObject(o, "studies", r->n_studies);
  cJSON_AddNumberToObject(o, "studies_predicted", r->n_ok);
  cJSON_AddNumberToObject(o, "images_predicted", (double)r->n_images);
  cJSON_AddNumberToObject(o, "skipped_images", (double)r->n_skipped);
  if ((failed = cJSON_AddArrayToObject(o, "failed_studies")))
    for (int i = 0; i < r->n_studies; i++)
      if (!r->studies[i].ok) cJSON_AddItemToArray(failed, cJSON_CreateString(r->studies[i].ds->path));
  cJSON *msgs = cJSON_AddArrayToObject(o, "skipped_messages");
  for (int i = 0; msgs && i < r->n_skip_msgs; i++) cJSON_AddItemToArray(msgs, cJSON_CreateString(r->skip_msgs[i]));
  cJSON_AddNumberToObject(o, "seconds", r->seconds);
  return o;
}

int eval_write_metrics_json(const eval_run *r, const eval_results *res, const char *model_path, const char *path,
                            char **json_out, mskx_err *e) {
  if (json_out) *json_out = NULL;
  cJSON *j = eval_results_to_json(res);
  if (!j) return err_set(e, MSKX_ENOMEM, "out of memory");
  if (isnan(res->opt.threshold)) {
    set_threshold(cJSON_GetObjectItemCaseSensitive(j, "overall"), NAN);
    cJSON *parts = cJSON_GetObjectItemCaseSensitive(j, "parts");
    for (int g = 0; g < res->n_parts; g++)
      set_threshold(cJSON_GetObjectItemCaseSensitive(parts, res->parts[g].part), part_threshold(r, res->parts[g].part));
  }
  cJSON *run = run_json(r, model_path);
  size_t len = 0;
  char *t = run && cJSON_AddItemToObject(j, "run", run) ? json_print_line(j, &len) : NULL;
  cJSON_Delete(j);
  if (!t) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = path ? file_write_atomic(path, t, len, e) : MSKX_OK;
  if (!rc && json_out) *json_out = t;
  else free(t);
  return rc;
}

/* ---- class activation maps of one study ---- */

void eval_cam_free(eval_cam *c) {
  for (int i = 0; i < c->n; i++) {
    if (c->imgs) gray_image_free(&c->imgs[i]);
    if (c->maps) free(c->maps[i]);
  }
  free(c->imgs);
  free(c->maps);
  free(c->image_prob);
  memset(c, 0, sizeof *c);
}

int eval_study_cam(predictor *p, const eval_run *r, int study, const predict_options *po, eval_cam *out,
                   mskx_err *e) {
  memset(out, 0, sizeof *out);
  const eval_study *st = &r->studies[study];
  if (!st->ok) return err_set(e, MSKX_EINVAL, "study %s was not predicted", st->ds->path);
  image_source *src = calloc((size_t)st->n_used, sizeof *src);
  if (!src) return err_set(e, MSKX_ENOMEM, "out of memory");
  out->n = st->n_used;
  /* Decoded straight from the files into the network inputs and the display copies. */
  for (int k = 0; k < st->n_used; k++) src[k].path = src[k].name = r->split->images[st->image_idx[k]].path;
  predict_options o = *po;
  o.want_cam = 1;
  study_result sr;
  const char *part = strcmp(st->part, "ALL") ? st->part : NULL;
  int rc = predictor_predict_sources(p, src, out->n, part, &o, &sr, e);
  free(src);
  if (!rc) {
    out->imgs = sr.display;
    sr.display = NULL;
    out->maps = sr.cam;
    sr.cam = NULL;
    out->image_prob = sr.image_prob;
    sr.image_prob = NULL;
  }
  study_result_free(&sr);
  if (rc) eval_cam_free(out);
  return rc;
}
