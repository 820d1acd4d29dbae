/* The learning-rate finder (see lr_find.h): the sweep over mini-batches with
 * the trainer's own setup and step, the suggestions, and its CSV, PNG and
 * JSON records. */
#include "train/lr_find.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "eval/plots.h"
#include "train/train_internal.h"

#define FLD(m) .off = offsetof(lr_find_options, m), .size = sizeof(((lr_find_options *)0)->m)
#define G_SWEEP "The sweep"

const opt_spec lr_find_option_rows[] = {
    {.key = "start", .flag = "start", .type = OPT_DOUBLE, FLD(start), .lo = 1e-12, .hi = 1e3, .def = LR_FIND_START,
     .source = "fastai lr_find (start_lr)", .arg = "LR", .group = G_SWEEP, .help = "first rate"},
    {.key = "end", .flag = "end", .type = OPT_DOUBLE, FLD(end), .lo = 1e-12, .hi = 1e3, .def = LR_FIND_END,
     .source = "fastai lr_find (end_lr)", .arg = "LR", .group = G_SWEEP, .help = "last rate (above --start)"},
    {.key = "steps", .flag = "steps", .type = OPT_INT, FLD(steps), .lo = LR_FIND_MIN_STEPS, .hi = LR_FIND_MAX_STEPS,
     .def = LR_FIND_STEPS, .source = "fastai lr_find (num_it)", .arg = "N", .group = G_SWEEP,
     .help = "mini-batches, one step each"},
};
const size_t lr_find_option_count = sizeof lr_find_option_rows / sizeof lr_find_option_rows[0];

void lr_find_options_default(lr_find_options *o) {
  memset(o, 0, sizeof *o);
  opt_defaults(lr_find_option_rows, lr_find_option_count, o);
}

int lr_find_options_validate(const lr_find_options *o, mskx_err *e) {
  int rc = opt_check_all(lr_find_option_rows, lr_find_option_count, o, e);
  if (rc) return rc;
  if (!(o->end > o->start)) return err_set(e, MSKX_EINVAL, "--end %g: must be larger than --start %g", o->end, o->start);
  return MSKX_OK;
}

void lr_find_result_free(lr_find_result *r) {
  if (!r) return;
  free(r->lr);
  free(r->loss);
  free(r->smooth);
  memset(r, 0, sizeof *r);
}

/* fastai's suggestions (fastai.callback.schedule: SteepestSlope and Minimum,
 * with the skip_start=10, skip_end=5 of 100 steps scaled to the sweep): the
 * first points are noise around the initial loss and the last ones the
 * divergence, so both are looked for in between. */
void lr_find_suggest(lr_find_result *r) {
  int n = r->n, lo = n / 10, hi = n - n / 20;
  if (hi - lo < 2) lo = 0, hi = n;
  r->min_idx = lo;
  for (int i = lo; i < hi; i++)
    if (r->smooth[i] < r->smooth[r->min_idx]) r->min_idx = i;
  r->steep_idx = lo;
  double best = INFINITY;
  for (int i = lo; i + 1 < hi; i++) {
    double g = (r->smooth[i + 1] - r->smooth[i]) / (log(r->lr[i + 1]) - log(r->lr[i]));
    if (g < best) best = g, r->steep_idx = i;
  }
  r->lr_steepest = n ? r->lr[r->steep_idx] : NAN;
  r->lr_min_tenth = n ? r->lr[r->min_idx] / 10 : NAN;
  /* The minimum's tenth: it stays on the descending side even when noise
   * makes a single steepest difference fall at the very start. */
  r->lr_chosen = r->lr_min_tenth;
}

static int sweep(run_ctx *r, const lr_find_options *o, lr_find_result *out, mskx_err *e) {
  const train_config *c = &r->cfg;
  int rc = net_plan(r->net, r->local_batch, c->size, c->size, 1, c->prec, e);
  if (rc) return rc;
  /* The sweep models the first epoch: a frozen backbone stays frozen. */
  int frozen = c->freeze_backbone_epochs > 0;
  double avg = 0, best = INFINITY, ratio = log(o->end / o->start);
  int epoch = 0, nb = 0, b = 0, taken = 1;
  for (int i = 0; i < o->steps; i++) {
    if (b == nb) {
      /* Every image unreadable (without --strict): no pass would ever yield a batch. */
      if (!taken) return err_set(e, MSKX_EIO, "no training batch could be read (are the images readable?)");
      taken = 0;
      /* The next pass over the data, in the order training's epochs use. */
      if ((rc = loader_start_epoch(r->ltrain, epoch++, e))) return rc;
      nb = loader_epoch_batches(r->ltrain);
      b = 0;
      if (nb == 0) return err_set(e, MSKX_EINVAL, "the training split has fewer images than one batch (%d)", c->batch);
    }
    const batch *bt = NULL;
    int got = loader_next(r->ltrain, &bt, e);
    if (got < 0) return -got;
    if (got == 0) {  /* skipped images emptied the last batches */
      b = nb;
      i--;
      continue;
    }
    b++;
    taken = 1;
    double lr = o->start * exp(ratio * i / (o->steps - 1)), loss;
    rc = train_step(r, bt, bt->count, lr, frozen, &loss, e);
    loader_release(r->ltrain, bt);
    if (rc && isfinite(loss)) return rc;
    out->lr[out->n] = lr;
    out->loss[out->n] = loss;
    if (rc) {  /* a non-finite loss: diverged, the sweep is over */
      out->smooth[out->n++] = loss;
      out->diverged = 1;
      break;
    }
    avg = LR_FIND_BETA * avg + (1 - LR_FIND_BETA) * loss;
    double smooth = avg / (1 - pow(LR_FIND_BETA, i + 1));
    out->smooth[out->n++] = smooth;
    if (r->fn) {
      train_progress p = {TRAIN_PHASE_LR_FIND, r->part_label, 0, 1, i + 1, o->steps, 0, smooth, lr, 0, NULL};
      r->fn(r->ctx, &p);
    }
    if (i > 0 && smooth > LR_FIND_DIVERGE * best) {
      out->diverged = 1;
      break;
    }
    if (smooth < best) best = smooth;
  }
  return MSKX_OK;
}

int lr_find_run(const train_config *c, const dataset *d, const lr_find_options *o, train_progress_fn fn, void *ctx,
                lr_find_result *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  int rc = lr_find_options_validate(o, e);
  if (rc) return rc;
  dataset *own = NULL;
  if (!d) {
    dataset_options dopt = {.require_train = 1, .require_valid = 0};
    if ((rc = dataset_open(c->data, &dopt, &own, e))) return rc;
    d = own;
  }
  train_config k = *c;
  /* An arch map sweeps its default architecture. */
  if ((rc = train_arch_for(c->arch, NULL, k.arch, sizeof k.arch, e))) {
    dataset_free(own);
    return rc;
  }
  k.per_part = 0;
  k.cache = k.cache_budget_mb = 0;  /* the cache lives in the run folder, which a sweep must not touch */
  run_ctx r;
  train_hooks h = {fn, ctx, NULL};
  run_init(&r, &k, d, NULL, &h, NULL);
  size_t n = (size_t)o->steps;
  out->lr = calloc(n, sizeof(double));
  out->loss = calloc(n, sizeof(double));
  out->smooth = calloc(n, sizeof(double));
  if (!out->lr || !out->loss || !out->smooth) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = run_build(&r, 0, e);
  if (!rc) rc = sweep(&r, o, out, e);
  run_free(&r);
  dataset_free(own);
  if (!rc && out->n < 2) rc = err_set(e, MSKX_EINVAL, "the sweep diverged at its first step (lower --start)");
  if (rc) {
    err_prefix(e, "learning-rate finder");
    lr_find_result_free(out);
    return rc;
  }
  lr_find_suggest(out);
  return MSKX_OK;
}

/* ---- records ---- */

int lr_find_plot(const lr_find_result *r, unsigned char **png, size_t *len, mskx_err *e) {
  int n = r->n;
  double *x = malloc((size_t)n * sizeof *x);
  if (!x) return err_set(e, MSKX_ENOMEM, "out of memory");
  double ymin = INFINITY, ymax = -INFINITY;
  for (int i = 0; i < n; i++) {
    x[i] = log10(r->lr[i]);
    if (isfinite(r->smooth[i])) ymin = fmin(ymin, r->smooth[i]), ymax = fmax(ymax, r->smooth[i]);
  }
  /* The divergence would flatten the curve: the axis stops at 4x the minimum. */
  ymax = fmin(ymax, LR_FIND_DIVERGE * ymin);
  double pad = (ymax - ymin) * 0.08 + 1e-9;
  ymin = fmax(0, ymin - pad), ymax += pad;
  double sx[2] = {log10(r->lr_steepest), log10(r->lr_steepest)}, mx[2] = {log10(r->lr_min_tenth),
                                                                          log10(r->lr_min_tenth)};
  double vy[2] = {ymin, ymax};
  double px[2] = {x[r->steep_idx], log10(r->lr_min_tenth)};
  double py[2] = {r->smooth[r->steep_idx], NAN};
  /* The minimum's tenth lies on the curve where the sweep passed that rate. */
  for (int i = 0; i + 1 < n; i++)
    if (r->lr[i] <= r->lr_min_tenth && r->lr_min_tenth <= r->lr[i + 1]) {
      double t = (px[1] - x[i]) / (x[i + 1] - x[i]);
      py[1] = r->smooth[i] + t * (r->smooth[i + 1] - r->smooth[i]);
    }
  if (!isfinite(py[1])) py[1] = r->smooth[0];
  char ls[64], lm[64];
  snprintf(ls, sizeof ls, "steepest %.2e", r->lr_steepest);
  snprintf(lm, sizeof lm, "minimum / 10 %.2e", r->lr_min_tenth);
  plot_series all[6] = {
      {x, r->loss, n, "loss per batch", 0xb8bfcau, 1, 0, 0},
      {x, r->smooth, n, "smoothed loss", plot_palette[0], 2, 0, 0},
      {sx, vy, 2, ls, plot_palette[3], 1.5, 1, 0},
      {mx, vy, 2, lm, plot_palette[2], 1.5, 1, 0},
      {&px[0], &py[0], 1, NULL, plot_palette[3], 2, 0, 1},
      {&px[1], &py[1], 1, NULL, plot_palette[2], 2, 0, 1},
  };
  double x0 = floor(x[0] + 1e-9), x1 = ceil(x[n - 1] - 1e-9);
  if (x1 <= x0) x1 = x0 + 1;
  plot_spec sp = {520, 330, "Learning-rate finder", "learning rate (log10)", "loss", x0, x1, ymin, ymax, 0, 1, 1};
  png_buf b;
  int rc = plot_lines(&sp, all, 6, &b, e);
  free(x);
  if (rc) return rc;
  *png = b.data;
  *len = b.len;
  return MSKX_OK;
}

int lr_find_write(const lr_find_result *r, const char *dir, mskx_err *e) {
  char path[2048];
  size_t cap = 64 + (size_t)r->n * 96, len = 0;
  char *csv = malloc(cap);
  if (!csv) return err_set(e, MSKX_ENOMEM, "out of memory");
  len += (size_t)snprintf(csv + len, cap - len, "step,lr,loss,smoothed_loss\n");
  for (int i = 0; i < r->n; i++)
    len += (size_t)snprintf(csv + len, cap - len, "%d,%.9g,%.9g,%.9g\n", i + 1, r->lr[i], r->loss[i], r->smooth[i]);
  int rc = path_join(path, sizeof path, dir, "lr_find.csv", e);
  if (!rc) rc = file_write_atomic(path, csv, len, e);
  free(csv);
  unsigned char *png = NULL;
  size_t plen = 0;
  if (!rc) rc = lr_find_plot(r, &png, &plen, e);
  if (!rc) rc = path_join(path, sizeof path, dir, "lr_find.png", e);
  if (!rc) rc = file_write_atomic(path, png, plen, e);
  free(png);
  return rc;
}

char *lr_find_json(const lr_find_result *r, const lr_find_options *o, int points) {
  cJSON *j = cJSON_CreateObject();
  if (!j) return NULL;
  json_add_finite(j, "start", o->start);
  json_add_finite(j, "end", o->end);
  cJSON_AddNumberToObject(j, "steps", o->steps);
  cJSON_AddNumberToObject(j, "steps_run", r->n);
  cJSON_AddBoolToObject(j, "diverged", r->diverged);
  json_add_finite(j, "steepest", r->lr_steepest);
  json_add_finite(j, "min_tenth", r->lr_min_tenth);
  json_add_finite(j, "chosen", r->lr_chosen);
  cJSON_AddStringToObject(j, "rule", "minimum / 10");
  if (points) {
    cJSON *a = cJSON_AddArrayToObject(j, "points");
    for (int i = 0; a && i < r->n; i++) {
      cJSON *row = cJSON_CreateArray();
      double v[3] = {r->lr[i], r->loss[i], r->smooth[i]};
      for (int k = 0; k < 3; k++)
        cJSON_AddItemToArray(row, isfinite(v[k]) ? cJSON_CreateNumber(v[k]) : cJSON_CreateNull());
      cJSON_AddItemToArray(a, row);
    }
  }
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return s;
}
