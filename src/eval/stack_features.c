/* Feature-level stacking (see stack_features.h): collecting the members'
 * study features, the scaler, stratified folds, the cross-validated choice
 * of C, and the ensemble file. */
#include "eval/stack_features.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"

void sf_data_free(sf_data *s) {
  if (!s) return;
  free(s->x);
  free(s->dims);
  free(s->y);
  free(s->part);
  free(s->study);
  free(s->member_p);
  free(s->member_thr);
  memset(s, 0, sizeof *s);
}

/* One member's features for every study of the split (NULL row: dropped). */
static int member_features(const char *path, const ds_split *sp, const predictor_options *po,
                           const predict_options *pr, int member, int m, ens_progress_fn fn, void *ctx,
                           double **rows, double *prob, int *dim, double *thr, long *skipped, mskx_err *e) {
  predictor *p = NULL;
  int rc = predictor_load(path, po, &p, e);
  if (!rc && p->root.kind != PNODE_MODEL)
    rc = err_set(e, MSKX_EUNSUPPORTED, "%s: stack-features members must be model files (features are a network's; "
                 "a bundle's members may differ in width)", path);
  if (rc) {
    predictor_free(p);
    return rc;
  }
  *thr = p->root.meta.threshold;
  for (int i = 0; !rc && i < sp->n_studies; i++) {
    const ds_study *st = &sp->studies[i];
    gray_image *imgs = calloc((size_t)st->n_images, sizeof *imgs);
    if (!imgs) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    int k = 0;
    for (int j = 0; !rc && j < st->n_images; j++) {
      mskx_err ie = {0, ""};
      if (image_load(sp->images[st->first_image + j].path, &po->limits, &imgs[k], &ie)) (*skipped)++;
      else k++;
    }
    if (!rc && k > 0) rc = predictor_study_features(p, imgs, k, pr, &rows[i], dim, &prob[i], e);
    for (int j = 0; imgs && j < k; j++) gray_image_free(&imgs[j]);
    free(imgs);
    if (fn) fn(ctx, member, m, i + 1, sp->n_studies);
  }
  if (rc) err_prefix(e, "%s", path);
  predictor_free(p);
  return rc;
}

int sf_collect(const char *const *members, int m, const dataset *d, int split, const predictor_options *po,
               const predict_options *pr, ens_progress_fn fn, void *ctx, sf_data *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  const ds_split *sp = dataset_split(d, split);
  if (!sp || sp->n_studies == 0) return err_set(e, MSKX_EINVAL, "%s: the split has no studies", d->root);
  int ns = sp->n_studies;
  double ***rows = calloc((size_t)m, sizeof *rows), *prob = calloc((size_t)m * ns, sizeof *prob);
  out->dims = calloc((size_t)m, sizeof *out->dims);
  out->member_thr = calloc((size_t)m, sizeof *out->member_thr);
  int rc = !rows || !prob || !out->dims || !out->member_thr ? err_set(e, MSKX_ENOMEM, "out of memory") : 0;
  for (int j = 0; !rc && j < m; j++) {
    if (!(rows[j] = calloc((size_t)ns, sizeof **rows))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc)
      rc = member_features(members[j], sp, po, pr, j, m, fn, ctx, rows[j], prob + (size_t)j * ns, &out->dims[j],
                           &out->member_thr[j], &out->skipped_images, e);
  }
  int n = 0, D = 0;
  for (int j = 0; !rc && j < m; j++) D += out->dims[j];
  for (int i = 0; !rc && i < ns; i++) {
    int ok = 1;
    for (int j = 0; j < m; j++) ok &= rows[j][i] != NULL;
    n += ok;
  }
  if (!rc && n == 0) rc = err_set(e, MSKX_EIO, "%s: no study could be predicted by every member", d->root);
  if (!rc) {
    out->x = malloc((size_t)n * D * sizeof *out->x);
    out->y = malloc((size_t)n * sizeof *out->y);
    out->part = malloc((size_t)n * sizeof *out->part);
    out->study = malloc((size_t)n * sizeof *out->study);
    out->member_p = malloc((size_t)n * m * sizeof *out->member_p);
    if (!out->x || !out->y || !out->part || !out->study || !out->member_p) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  }
  for (int i = 0, r = 0; !rc && i < ns; i++) {
    int ok = 1;
    for (int j = 0; j < m; j++) ok &= rows[j][i] != NULL;
    if (!ok) continue;
    for (int j = 0, off = 0; j < m; j++) {
      memcpy(out->x + (size_t)r * D + off, rows[j][i], (size_t)out->dims[j] * sizeof(double));
      out->member_p[(size_t)r * m + j] = prob[(size_t)j * ns + i];
      off += out->dims[j];
    }
    out->y[r] = sp->studies[i].label;
    out->part[r] = sp->studies[i].part;
    out->study[r++] = i;
  }
  for (int j = 0; rows && j < m; j++) {
    for (int i = 0; rows[j] && i < ns; i++) free(rows[j][i]);
    free(rows[j]);
  }
  free(rows);
  free(prob);
  if (rc) {
    sf_data_free(out);
    return rc;
  }
  out->n = n;
  out->d = D;
  out->m = m;
  out->d_src = d;
  out->split = sp;
  return MSKX_OK;
}

int sf_write_features_csv(const sf_data *s, const char *path, mskx_err *e) {
  atomic_file af;
  int rc = atomic_file_open(&af, path, e);
  if (rc) return rc;
  fputs("study,part,label", af.f);
  for (int j = 0; j < s->d; j++) fprintf(af.f, ",f%d", j + 1);
  fputc('\n', af.f);
  for (int i = 0; i < s->n; i++) {
    /* Study ids are dataset paths: quote them as CSV does when needed. */
    const char *id = s->split->studies[s->study[i]].path;
    if (strpbrk(id, ",\"\n")) {
      fputc('"', af.f);
      for (const char *c = id; *c; c++) *c == '"' ? fputs("\"\"", af.f) : fputc(*c, af.f);
      fputc('"', af.f);
    } else {
      fputs(id, af.f);
    }
    fprintf(af.f, ",%s,%d", s->d_src->parts[s->part[i]], s->y[i]);
    for (int j = 0; j < s->d; j++) fprintf(af.f, ",%.17g", s->x[(size_t)i * s->d + j]);
    fputc('\n', af.f);
  }
  return atomic_file_commit(&af, e);
}

void sf_scaler_fit(const double *x, int n, int d, double *mean, double *scale) {
  for (int j = 0; j < d; j++) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[(size_t)i * d + j];
    double mu = s / n;
    for (int i = 0; i < n; i++) {
      double t = x[(size_t)i * d + j] - mu;
      q += t * t;
    }
    double sd = sqrt(q / n);
    mean[j] = mu;
    /* StandardScaler's _handle_zeros_in_scale: (near-)constant columns keep scale 1. */
    scale[j] = sd > 10 * 2.220446049250313e-16 * fmax(1.0, fabs(mu)) ? sd : 1.0;
  }
}

int sf_folds(const int *y, const int *part, int n, int k, uint64_t seed, int *fold, mskx_err *e) {
  int max_part = 0;
  for (int i = 0; i < n; i++) max_part = part[i] > max_part ? part[i] : max_part;
  int64_t *idx = malloc((size_t)n * sizeof *idx);
  if (!idx) return err_set(e, MSKX_ENOMEM, "out of memory");
  int next = 0, cnt[2] = {0, 0};
  for (int i = 0; i < n; i++) cnt[y[i] != 0]++;
  for (int cls = 0; cls < 2; cls++)
    if (cnt[cls] < k) {
      free(idx);
      return err_set(e, MSKX_EINVAL, "%d-fold cross-validation needs at least %d %s studies (there are %d); lower "
                     "--folds", k, k, cls ? "abnormal" : "normal", cnt[cls]);
    }
  for (int p = 0; p <= max_part; p++)
    for (int cls = 0; cls < 2; cls++) {
      int64_t c = 0;
      for (int i = 0; i < n; i++)
        if (part[i] == p && (y[i] != 0) == cls) idx[c++] = i;
      rng r = rng_for(seed, 0x5f5f5f5fULL + (uint64_t)p, (uint64_t)cls);
      rng_shuffle(&r, idx, c);
      for (int64_t t = 0; t < c; t++) fold[idx[t]] = next++ % k;
    }
  free(idx);
  return MSKX_OK;
}

void sf_fit_free(sf_fit *f) {
  if (!f) return;
  free(f->mean);
  free(f->scale);
  free(f->coef);
  free(f->oof);
  memset(f, 0, sizeof *f);
}

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Standardises rows of x (n x d) into out with mean/scale. */
static void standardise(const double *x, int n, int d, const double *mean, const double *scale, double *out) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (x[(size_t)i * d + j] - mean[j]) / scale[j];
}

/* Out-of-fold probabilities for C: per fold, the scaler and the regression
 * fitted on the other folds. */
static int oof_for(const sf_data *s, const int *fold, int k, double C, double *oof, mskx_err *e) {
  int n = s->n, d = s->d, rc = MSKX_OK;
  double *xt = malloc((size_t)n * d * sizeof *xt), *zt = malloc((size_t)n * d * sizeof *zt);
  double *mu = malloc((size_t)d * sizeof *mu), *sc = malloc((size_t)d * sizeof *sc), *cf = malloc((size_t)d * sizeof *cf);
  int *yt = malloc((size_t)n * sizeof *yt);
  if (!xt || !zt || !mu || !sc || !cf || !yt) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int f = 0; !rc && f < k; f++) {
    int nt = 0;
    for (int i = 0; i < n; i++) {
      if (fold[i] == f) continue;
      memcpy(xt + (size_t)nt * d, s->x + (size_t)i * d, (size_t)d * sizeof *xt);
      yt[nt++] = s->y[i];
    }
    sf_scaler_fit(xt, nt, d, mu, sc);
    standardise(xt, nt, d, mu, sc, zt);
    double b;
    rc = logreg_fit(zt, yt, nt, d, C, cf, &b, NULL, e);
    if (rc) err_prefix(e, "fold %d, C = %g", f + 1, C);
    for (int i = 0; !rc && i < n; i++) {
      if (fold[i] != f) continue;
      double z = b;
      for (int j = 0; j < d; j++) z += cf[j] * (s->x[(size_t)i * d + j] - mu[j]) / sc[j];
      oof[i] = sigm(z);
    }
  }
  free(xt);
  free(zt);
  free(mu);
  free(sc);
  free(cf);
  free(yt);
  return rc;
}

int sf_fit_run(const sf_data *s, int folds, uint64_t seed, sf_fit *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  int n = s->n, d = s->d;
  if (folds < 2 || folds > n) return err_set(e, MSKX_EINVAL, "--folds must be in [2, %d] (the number of studies)", n);
  out->folds = folds;
  out->mean = malloc((size_t)d * sizeof *out->mean);
  out->scale = malloc((size_t)d * sizeof *out->scale);
  out->coef = malloc((size_t)d * sizeof *out->coef);
  out->oof = malloc((size_t)n * sizeof *out->oof);
  int *fold = malloc((size_t)n * sizeof *fold);
  double *tmp = malloc((size_t)n * sizeof *tmp), *z = malloc((size_t)n * d * sizeof *z);
  int rc = !out->mean || !out->scale || !out->coef || !out->oof || !fold || !tmp || !z
               ? err_set(e, MSKX_ENOMEM, "out of memory")
               : sf_folds(s->y, s->part, n, folds, seed, fold, e);
  int best = -1;
  for (int c = 0; !rc && c < SF_N_C; c++) {
    out->Cs[c] = pow(10, SF_C_MIN_LOG10 + SF_C_STEP_LOG10 * c);
    rc = oof_for(s, fold, folds, out->Cs[c], tmp, e);
    if (rc) break;
    out->cv_loss[c] = ens_log_loss(tmp, s->y, n);
    if (best < 0 || out->cv_loss[c] < out->cv_loss[best]) {
      best = c;
      memcpy(out->oof, tmp, (size_t)n * sizeof *tmp);
    }
  }
  if (!rc) {
    out->C = out->Cs[best];
    sf_scaler_fit(s->x, n, d, out->mean, out->scale);
    standardise(s->x, n, d, out->mean, out->scale, z);
    rc = logreg_fit(z, s->y, n, d, out->C, out->coef, &out->intercept, NULL, e);
  }
  free(fold);
  free(tmp);
  free(z);
  if (rc) sf_fit_free(out);
  return rc;
}

int sf_write_json(const char *path, const char *const *members, int m, const int *dims, const sf_fit *f, int d,
                  double threshold, cJSON *fit, mskx_err *e) {
  ens_member_out *mo = calloc((size_t)m, sizeof *mo);
  cJSON *st = cJSON_CreateObject();
  if (!mo || !st) {
    free(mo);
    cJSON_Delete(st);
    cJSON_Delete(fit);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  for (int j = 0; j < m; j++) mo[j] = (ens_member_out){members[j], 1.0};
  cJSON_AddItemToObject(st, "dims", cJSON_CreateIntArray(dims, m));
  cJSON_AddItemToObject(st, "mean", cJSON_CreateDoubleArray(f->mean, d));
  cJSON_AddItemToObject(st, "scale", cJSON_CreateDoubleArray(f->scale, d));
  cJSON_AddItemToObject(st, "coef", cJSON_CreateDoubleArray(f->coef, d));
  cJSON_AddNumberToObject(st, "intercept", f->intercept);
  cJSON_AddNumberToObject(st, "C", f->C);
  int rc = ens_write_json_stacker(path, "stack-features", threshold, mo, m, st, fit, e);
  free(mo);
  return rc;
}
