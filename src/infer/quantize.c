/* mskx quantize (see quantize.h): calibrate the inputs of the int8
 * convolutions on an fp32 inference plan, write the int8 model file, load it
 * back and compare it with the fp32 model on the calibration images. */
#include "infer/quantize.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "models/model_file.h"

/* Per store entry: the largest value seen (pass 1) and, for a percentile,
 * a histogram over [0, max] (pass 2). */
typedef struct calib {
  int n_entries, pass, count, batch;
  float *max;
  uint64_t **hist;
  int failed;
} calib;

static void observe(void *ctx, int conv_w, const float *x, size_t n) {
  calib *c = ctx;
  /* Only the batch's real images (NHWC: image-major); a short last batch
   * leaves stale slots behind them. */
  n = n / (size_t)c->batch * (size_t)c->count;
  if (c->pass == 0) {
    float m = c->max[conv_w];
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    c->max[conv_w] = m;
    return;
  }
  float top = c->max[conv_w];
  if (!(top > 0)) return;
  if (!c->hist[conv_w] && !(c->hist[conv_w] = calloc(QUANT_HIST_BINS, sizeof(uint64_t)))) {
    c->failed = 1;
    return;
  }
  uint64_t *h = c->hist[conv_w];
  float k = QUANT_HIST_BINS / top;
  for (size_t i = 0; i < n; i++) {
    int b = (int)(x[i] * k);
    h[b < 0 ? 0 : b >= QUANT_HIST_BINS ? QUANT_HIST_BINS - 1 : b]++;
  }
}

/* The upper edge of the bin where the cumulative count reaches pct %. */
static float hist_percentile(const uint64_t *h, float top, double pct) {
  uint64_t total = 0, acc = 0;
  for (int b = 0; b < QUANT_HIST_BINS; b++) total += h[b];
  double want = pct / 100.0 * (double)total;
  for (int b = 0; b < QUANT_HIST_BINS; b++) {
    acc += h[b];
    if ((double)acc >= want) return top * (float)(b + 1) / QUANT_HIST_BINS;
  }
  return top;
}

/* The input steps from the statistics: stat / 255 for u8. */
static int set_scales(net *m, const calib *c, double percentile, int *convs, mskx_err *e) {
  if (!(m->in_scale = calloc((size_t)m->ps.n, sizeof(float)))) return err_set(e, MSKX_ENOMEM, "out of memory");
  *convs = 0;
  for (int i = 0; i < m->ps.n; i++) {
    if (!net_int8_conv(m, i)) continue;
    float top = c->max[i];
    if (!isfinite(top))
      return err_set(e, MSKX_EINVAL, "the input of %s reached %g on the calibration images", m->ps.entries[i].name,
                     (double)top);
    float stat = percentile < 100 && c->hist[i] ? hist_percentile(c->hist[i], top, percentile) : top;
    /* An input that is zero on every calibration image: any step serves. */
    m->in_scale[i] = stat > 0 ? stat / 255.0f : 1.0f / 255.0f;
    (*convs)++;
  }
  return MSKX_OK;
}

int quantize_net_on(net *m, const float *x, int n, int h, int w, mskx_err *e) {
  if (m->in_scale) return err_set(e, MSKX_EINVAL, "quantize: the network is already int8");
  if (!arch_has_int8(&m->arch))
    return err_set(e, MSKX_EUNSUPPORTED, "quantize: arch %s is not supported (int8 is implemented for DenseNet only)",
                   m->arch.name);
  calib c = {.n_entries = m->ps.n, .batch = n, .count = n};
  float *logits = malloc((size_t)n * sizeof(float));
  c.max = calloc((size_t)m->ps.n, sizeof *c.max);
  c.hist = calloc((size_t)m->ps.n, sizeof *c.hist);
  int rc = !logits || !c.max || !c.hist ? err_set(e, MSKX_ENOMEM, "out of memory") : 0, convs = 0;
  if (!rc) rc = net_plan(m, n, h, w, 0, PREC_FP32, e);
  m->cx.observe = observe;
  m->cx.observe_ctx = &c;
  if (!rc) rc = net_forward(m, x, logits, e);
  m->cx.observe = NULL;
  if (!rc) rc = set_scales(m, &c, 100, &convs, e);
  /* The weights as a file would hold them (q * step). */
  for (int i = 0; !rc && i < m->ps.n; i++) {
    if (!(m->in_scale[i] > 0)) continue;
    const param_entry *en = &m->ps.entries[i];
    int co = (int)en->shape[0];
    size_t per = en->numel / (size_t)co;
    int8_t *q = malloc(en->numel);
    float *ws = malloc((size_t)co * sizeof(float)), *wt = ps_data(&m->ps, i);
    if (!q || !ws) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc) quantize_rows_s8(wt, co, per, q, ws);
    for (size_t k = 0; !rc && k < en->numel; k++) wt[k] = q[k] * ws[k / per];
    free(q);
    free(ws);
  }
  if (rc) {
    free(m->in_scale);
    m->in_scale = NULL;
  }
  net_params_changed(m);
  free(logits);
  free(c.max);
  free(c.hist);
  return rc;
}

/* Runs one pass of the network over the calibration images: the observer
 * collects (calib) or, with probs, the probabilities are stored. */
static int run_pass(net *m, loader *ld, calib *c, int pass, double *probs, int *seen, mskx_err *e) {
  int rc = loader_start_epoch(ld, pass, e);
  const batch *b = NULL;
  float logits[QUANT_CALIB_BATCH];
  int k = 0, got;
  while (!rc && (got = loader_next(ld, &b, e)) != 0) {
    if (got < 0) {
      rc = -got;
      break;
    }
    if (c) {
      c->pass = pass;
      c->count = b->count;
    }
    rc = net_forward(m, b->images, logits, e);
    for (int i = 0; !rc && probs && i < b->count; i++) probs[k + i] = sigmoid(logits[i]);
    k += b->count;
    loader_release(ld, b);
  }
  if (seen) *seen = k;
  return rc;
}

/* The calibration record written into the model's metadata. */
static char *calib_json(const quant_options *o, int images, const char *split) {
  char date[32], stat[32];
  if (o->date) {
    snprintf(date, sizeof date, "%s", o->date);
  } else {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  if (o->percentile >= 100)
    snprintf(stat, sizeof stat, "max");
  else
    snprintf(stat, sizeof stat, "p%g", o->percentile);
  cJSON *j = cJSON_CreateObject();
  if (!j) return NULL;
  cJSON_AddNumberToObject(j, "images", images);
  cJSON_AddStringToObject(j, "source", o->data);
  cJSON_AddStringToObject(j, "split", split);
  cJSON_AddStringToObject(j, "statistic", stat);
  cJSON_AddStringToObject(j, "weights", "per-output-channel symmetric s8");
  cJSON_AddStringToObject(j, "activations", "per-tensor u8");
  cJSON_AddStringToObject(j, "date", date);
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return s;
}

/* Image i of the spread: n images evenly over the split (every one if n = all). */
static int pick(int i, int n, int total) { return (int)((long long)i * total / n); }

int quantize_model(const char *model, const char *out, const quant_options *o, quant_report *r, mskx_err *e) {
  memset(r, 0, sizeof *r);
  if (!(o->percentile > 0 && o->percentile <= 100))
    return err_set(e, MSKX_EINVAL, "quantize: the percentile must be in (0, 100], got %g", o->percentile);
  engine *eng = NULL;
  net *m = NULL, *m8 = NULL, *m8b = NULL;
  model_meta meta, meta8;
  dataset *d = NULL;
  loader *ld = NULL;
  calib c = {0};
  ds_split sub = {0};
  double *p32 = NULL, *p8 = NULL, *p8b = NULL;
  char *cj = NULL;
  /* The arch first, from the metadata alone. */
  st_file *f = NULL;
  arch_spec a;
  int rc = st_read(model, &f, e);
  if (!rc) rc = model_meta_read(f, model, &meta, e);
  if (!rc) rc = arch_parse(meta.arch, &a, e);
  if (!rc && !arch_has_int8(&a))
    rc = err_set(e, MSKX_EUNSUPPORTED,
                 "quantize: arch %s is not supported: int8 inference is implemented for DenseNet archs only "
                 "(ResNet and Inception-v3 are not quantised yet)", a.name);
  if (!rc && model_file_is_quantised(f)) rc = err_set(e, MSKX_EINVAL, "quantize: %s is already an int8 model", model);
  st_free(f);
  if (!rc) rc = engine_dnnl_create(o->threads, &eng, e);
  if (!rc) rc = model_load(model, eng, &m, &meta, NULL, e);
  dataset_options dopt = {.require_train = 1};
  if (!rc) rc = dataset_open(o->data, &dopt, &d, e);
  if (!rc) {
    const ds_split *tr = dataset_split(d, DS_TRAIN);
    int want = o->calib > 0 ? o->calib : QUANT_DEFAULT_CALIB, total = tr->n_images;
    int n = want < total ? want : total;
    sub = *tr;
    sub.n_images = n;
    if (!(sub.images = malloc((size_t)(n ? n : 1) * sizeof *sub.images))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) sub.images[i] = tr->images[pick(i, n, total)];
    r->images = n;
  }
  int b = r->images < QUANT_CALIB_BATCH ? r->images : QUANT_CALIB_BATCH;
  if (!rc) {
    /* Inference preprocessing: no augmentation, the model's size, aspect
     * rule and normalisation, the split's order; unreadable images fail. */
    loader_config lc = loader_config_default();
    lc.batch_size = b;
    lc.image_size = meta.size;
    lc.keep_aspect = meta.keep_aspect;
    lc.norm = meta.norm;
    lc.shuffle = lc.augment = 0;
    lc.strict = 1;
    lc.threads = 1;
    rc = loader_create(d, &sub, &lc, &ld, e);
  }
  if (!rc) rc = net_plan(m, b, meta.size, meta.size, 0, PREC_FP32, e);
  c.n_entries = !rc ? m->ps.n : 0;
  c.batch = b;
  if (!rc) {
    c.max = calloc((size_t)c.n_entries, sizeof *c.max);
    c.hist = calloc((size_t)c.n_entries, sizeof *c.hist);
    p32 = calloc((size_t)r->images, sizeof *p32);
    p8 = calloc((size_t)r->images, sizeof *p8);
    p8b = calloc((size_t)r->images, sizeof *p8b);
    if (!c.max || !c.hist || !p32 || !p8 || !p8b) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  }
  if (!rc) {
    m->cx.observe = observe;
    m->cx.observe_ctx = &c;
    rc = run_pass(m, ld, &c, 0, p32, NULL, e);
    if (!rc && o->percentile < 100) rc = run_pass(m, ld, &c, 1, NULL, NULL, e);
    if (!rc && c.failed) rc = err_set(e, MSKX_ENOMEM, "out of memory (calibration histograms)");
    m->cx.observe = NULL;
  }
  if (!rc) rc = set_scales(m, &c, o->percentile, &r->convs, e);
  if (!rc && !(cj = calib_json(o, r->images, "train"))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) {
    st_meta extra = {(char *)"calibration", cj};
    rc = model_save(out, m, &meta, NULL, 0, &extra, 1, e);
  }
  /* The file as every command will load it, against the fp32 outputs. */
  if (!rc) rc = model_load(out, eng, &m8, &meta8, NULL, e);
  if (!rc) rc = net_plan(m8, b, meta.size, meta.size, 0, PREC_FP32, e);
  if (!rc) rc = run_pass(m8, ld, NULL, 2, p8, NULL, e);
  /* Round trip: saving the loaded int8 model again and loading it gives the same outputs. */
  if (!rc) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.roundtrip.tmp", out);
    st_meta extra = {(char *)"calibration", cj};
    rc = model_save(tmp, m8, &meta8, NULL, 0, &extra, 1, e);
    if (!rc) rc = model_load(tmp, eng, &m8b, &meta8, NULL, e);
    remove(tmp);
    if (!rc) rc = net_plan(m8b, b, meta.size, meta.size, 0, PREC_FP32, e);
    if (!rc) rc = run_pass(m8b, ld, NULL, 3, p8b, NULL, e);
  }
  if (!rc) {
    r->roundtrip_equal = 1;
    for (int i = 0; i < r->images; i++) {
      double dd = fabs(p8[i] - p32[i]);
      r->max_prob_diff = dd > r->max_prob_diff ? dd : r->max_prob_diff;
      r->roundtrip_equal &= p8[i] == p8b[i];
    }
  }
  if (rc) err_prefix(e, "quantize %s", model);
  for (int i = 0; c.hist && i < c.n_entries; i++) free(c.hist[i]);
  free(c.hist);
  free(c.max);
  free(p32), free(p8), free(p8b);
  free(cj);
  loader_destroy(ld);
  free(sub.images);
  dataset_free(d);
  net_destroy(m8b);
  net_destroy(m8);
  net_destroy(m);
  engine_destroy(eng);
  return rc;
}
