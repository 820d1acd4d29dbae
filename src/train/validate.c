/* Validation after each epoch: every valid image through the network in
 * inference mode, image probabilities averaged per study (the MURA paper's
 * rule), then loss, kappa, AUROC and accuracy overall and per part. In a
 * data-parallel run each process takes its shard and the per-study sums are
 * added over processes, so every process computes the same metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "eval/metrics.h"
#include "train/train_internal.h"


/* Adds the per-study sums, the loss and the image count over processes. */
static int gather(run_ctx *r, double *psum, int *pcount, double *loss, long long *imgs, mskx_err *e) {
  size_t n = (size_t)r->data->valid.n_studies;
  double *v = malloc((2 * n + 2) * sizeof *v);
  int rc = dist_agree(r->dist, v ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory"), e);
  if (rc) {
    free(v);
    return rc;
  }
  for (size_t s = 0; s < n; s++) {
    v[s] = psum[s];
    v[n + s] = pcount[s];
  }
  v[2 * n] = *loss;
  v[2 * n + 1] = (double)*imgs;
  rc = dist_sum(r->dist, v, 2 * n + 2, e);
  for (size_t s = 0; !rc && s < n; s++) {
    psum[s] = v[s];
    pcount[s] = (int)v[n + s];
  }
  *loss = v[2 * n];
  *imgs = (long long)v[2 * n + 1];
  free(v);
  return rc;
}

int run_validation(run_ctx *r, int epoch, epoch_stats *st, mskx_err *e) {
  const train_config *c = &r->cfg;
  const ds_split *vs = &r->data->valid;
  int rc = net_plan(r->net, r->local_batch, c->size, c->size, 0, c->prec, e);
  if (!rc) rc = loader_start_epoch(r->lvalid, epoch, e);
  size_t per = (size_t)c->size * c->size * 3;
  if (!rc && !r->xpad && !(r->xpad = calloc(per * (size_t)r->local_batch, sizeof(float))))
    rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if ((rc = dist_agree(r->dist, rc, e))) return rc;
  double *psum = calloc((size_t)vs->n_studies, sizeof *psum);
  int *pcount = calloc((size_t)vs->n_studies, sizeof *pcount);
  if (!psum || !pcount) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  double loss = 0;
  long long imgs = 0;
  int nb = loader_epoch_batches(r->lvalid);
  for (int b = 0; !rc; b++) {
    const batch *bt;
    int got = loader_next(r->lvalid, &bt, e);
    if (got < 0) rc = -got;
    if (got <= 0) break;
    if (run_cancelled(r)) {  /* agreed below: no collective runs inside this loop */
      loader_release(r->lvalid, bt);
      rc = run_cancel_error(r, epoch, e);
      break;
    }
    const float *x = bt->images;
    if (bt->count < r->local_batch) {  /* pad the last batch: samples are independent in inference */
      memcpy(r->xpad, bt->images, per * (size_t)bt->count * sizeof(float));
      memset(r->xpad + per * (size_t)bt->count, 0, per * (size_t)(r->local_batch - bt->count) * sizeof(float));
      x = r->xpad;
    }
    rc = net_forward(r->net, x, r->logits, e);
    if (!rc) {
      loss += r->eng->ops->bce_logits(r->logits, bt->labels, NULL, bt->count, NULL) * bt->count;
      imgs += bt->count;
      for (int i = 0; i < bt->count; i++) {
        psum[bt->study_idx[i]] += sigmoid(r->logits[i]);
        pcount[bt->study_idx[i]]++;
      }
    }
    loader_release(r->lvalid, bt);
    if (r->fn) {
      train_progress p = {TRAIN_PHASE_VALID, r->part_label, epoch, c->epochs, b + 1, nb, 0, 0, 0, 0, NULL};
      r->fn(r->ctx, &p);
    }
  }
  rc = dist_agree(r->dist, rc, e);
  if (!rc && r->dist) rc = gather(r, psum, pcount, &loss, &imgs, e);
  study_pred *sp = rc ? NULL : calloc((size_t)vs->n_studies + 1, sizeof *sp);
  if (!rc && !sp) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  int n = 0;
  for (int s = 0; !rc && s < vs->n_studies; s++) {
    if (!pcount[s]) continue;  /* study of an unselected part, or all its images unreadable */
    sp[n++] = (study_pred){vs->studies[s].path, r->data->parts[vs->studies[s].part], psum[s] / pcount[s],
                           vs->studies[s].label};
  }
  if (!rc && n == 0) rc = err_set(e, MSKX_EINVAL, "the validation split has no readable images of the selected parts");
  eval_results *res = NULL;
  eval_options eo;
  eval_options_default(&eo);
  eo.n_boot = 0;
  if (!rc) rc = metrics_evaluate(sp, n, &eo, &res, e);
  if (!rc) {
    st->val_loss = imgs ? loss / (double)imgs : NAN;
    st->val_kappa = res->overall.value[METRIC_KAPPA];
    st->val_auc = res->overall.value[METRIC_AUC];
    st->val_accuracy = res->overall.value[METRIC_ACCURACY];
    /* dataset_open refuses more than DS_MAX_PARTS parts, so this holds. */
    if (res->n_parts > DS_MAX_PARTS)
      rc = err_set(e, MSKX_EINTERNAL, "validation: %d parts, more than %d", res->n_parts, DS_MAX_PARTS);
    st->n_parts = rc ? 0 : res->n_parts;
    for (int p = 0; p < st->n_parts; p++) {
      /* Part names outlive the results: point at the dataset's copy. */
      int idx = dataset_part_index(r->data, res->parts[p].part);
      st->parts[p].name = idx >= 0 ? r->data->parts[idx] : "?";
      st->parts[p].n = res->parts[p].n_studies;
      st->parts[p].kappa = res->parts[p].value[METRIC_KAPPA];
      st->parts[p].auc = res->parts[p].value[METRIC_AUC];
      st->parts[p].accuracy = res->parts[p].value[METRIC_ACCURACY];
    }
  }
  eval_results_free(res);
  free(sp);
  free(psum);
  free(pcount);
  return rc;
}
