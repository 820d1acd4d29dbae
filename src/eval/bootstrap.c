/* metrics_evaluate: per-part and overall metrics of study predictions with
 * stratified percentile-bootstrap confidence intervals. Studies are sorted
 * by score once; each resample is a vector of multiplicities over that
 * fixed order, so no resample is ever sorted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "eval/bootstrap.h"
#include "eval/metrics.h"

void bootstrap_draw(rng *r, const int *members, int m, int *count) {
  for (int j = 0; j < m; j++) count[members[rng_below(r, (uint64_t)m)]]++;
}

rng bootstrap_stream(uint64_t seed, int b, int p) { return rng_for(seed, (uint64_t)b, (uint64_t)p); }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bootstrap_ci(double *vals, int n, double *lo, double *hi, int *n_undefined) {
  int k = 0;
  for (int i = 0; i < n; i++)
    if (!isnan(vals[i])) vals[k++] = vals[i];
  *n_undefined = n - k;
  qsort(vals, (size_t)k, sizeof *vals, cmp_double);
  *lo = percentile_linear(vals, k, BOOT_CI_LO_PCT);
  *hi = percentile_linear(vals, k, BOOT_CI_HI_PCT);
}

void eval_options_default(eval_options *o) {
  o->threshold = EVAL_DEFAULT_THRESHOLD;
  o->n_boot = EVAL_DEFAULT_BOOT;
  o->seed = EVAL_DEFAULT_SEED;
  o->decisions_only = 0;
}

/* Everything the resamples need, computed once. */
typedef struct plan {
  int n, n_parts;
  const char **part_names; /* borrowed from the input, sorted */
  unsigned char *label, *pred;
  int *order;              /* all studies by decreasing score */
  unsigned char *tie;
  int *porder;             /* the same order, part by part: part p is porder[pstart[p] .. pstart[p+1]) */
  unsigned char *ptie;
  int *pstart;
} plan;

static void plan_free(plan *p) {
  free(p->part_names);
  free(p->label);
  free(p->pred);
  free(p->order);
  free(p->tie);
  free(p->porder);
  free(p->ptie);
  free(p->pstart);
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted distinct part names; returns their count or -1 on allocation failure. */
static int collect_parts(const study_pred *s, int n, const char ***names) {
  const char **all = malloc((size_t)n * sizeof *all);
  if (!all) return -1;
  for (int i = 0; i < n; i++) all[i] = s[i].part;
  qsort(all, (size_t)n, sizeof *all, cmp_str_ptr);
  int k = 0;
  for (int i = 0; i < n; i++)
    if (k == 0 || strcmp(all[k - 1], all[i]) != 0) all[k++] = all[i];
  *names = all;
  return k;
}

static int part_index(const plan *p, const char *name) {
  const char **hit = bsearch(&name, p->part_names, (size_t)p->n_parts, sizeof *p->part_names, cmp_str_ptr);
  return (int)(hit - p->part_names);
}

static int plan_build(plan *p, const study_pred *s, int n, const eval_options *o, mskx_err *e) {
  memset(p, 0, sizeof *p);
  p->n = n;
  double *score = malloc((size_t)n * sizeof *score);
  int *pid = malloc((size_t)n * sizeof *pid);
  p->label = malloc((size_t)n);
  p->pred = malloc((size_t)n);
  p->porder = malloc((size_t)n * sizeof *p->porder);
  p->ptie = malloc((size_t)n);
  p->n_parts = collect_parts(s, n, &p->part_names);
  int rc = MSKX_OK;
  if (!score || !pid || !p->label || !p->pred || !p->porder || !p->ptie || p->n_parts < 0) {
    rc = err_set(e, MSKX_ENOMEM, "cannot allocate the evaluation of %d studies", n);
    goto done;
  }
  p->pstart = calloc((size_t)p->n_parts + 1, sizeof *p->pstart);
  if (!p->pstart) {
    rc = err_set(e, MSKX_ENOMEM, "cannot allocate the evaluation of %d studies", n);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    score[i] = s[i].score;
    p->label[i] = s[i].label != 0;
    p->pred[i] = s[i].score > o->threshold;
    pid[i] = part_index(p, s[i].part);
    p->pstart[pid[i] + 1]++;
  }
  for (int q = 0; q < p->n_parts; q++) p->pstart[q + 1] += p->pstart[q];
  rc = sort_by_score_desc(score, n, &p->order, &p->tie, e);
  if (rc) goto done;
  /* Stable split of the global order by part keeps each part sorted. */
  int *fill = pid; /* reuse: pid[i] no longer needed once read below */
  int *next = calloc((size_t)p->n_parts, sizeof *next);
  if (!next) {
    rc = err_set(e, MSKX_ENOMEM, "cannot allocate the evaluation of %d studies", n);
    goto done;
  }
  for (int k = 0; k < n; k++) {
    int i = p->order[k], q = fill[i];
    int at = p->pstart[q] + next[q]++;
    p->porder[at] = i;
    p->ptie[at] = next[q] == 1 || score[p->porder[at - 1]] != score[i];
  }
  free(next);
done:
  free(score);
  free(pid);
  return rc;
}

static confusion confusion_weighted(const plan *p, const int *members, int m, const int *count) {
  confusion c = {0, 0, 0, 0};
  for (int k = 0; k < m; k++) {
    int i = members[k];
    int64_t w = count ? count[i] : 1;
    if (p->label[i]) {
      if (p->pred[i]) c.tp += w;
      else c.fn += w;
    } else {
      if (p->pred[i]) c.fp += w;
      else c.tn += w;
    }
  }
  return c;
}

static void add_confusion(confusion *a, const confusion *b) {
  a->tn += b->tn;
  a->fp += b->fp;
  a->fn += b->fn;
  a->tp += b->tp;
}

/* Metric values of one confusion matrix. With strict set (resamples), a
 * metric whose denominator is zero is NaN (undefined, skipped) instead of
 * sklearn's zero_division value. */
static void metric_values(const confusion *c, double auc, int strict, double *v) {
  v[METRIC_KAPPA] = metric_kappa(c);
  v[METRIC_AUC] = auc;
  v[METRIC_ACCURACY] = metric_accuracy(c);
  v[METRIC_SENSITIVITY] = strict && c->tp + c->fn == 0 ? NAN : metric_sensitivity(c);
  v[METRIC_SPECIFICITY] = strict && c->tn + c->fp == 0 ? NAN : metric_specificity(c);
  v[METRIC_PRECISION] = strict && c->tp + c->fp == 0 ? NAN : metric_precision(c);
  v[METRIC_F1] = strict && 2 * c->tp + c->fp + c->fn == 0 ? NAN : metric_f1(c);
}

/* Metrics of every part (groups 0..n_parts-1) and overall (group n_parts)
 * for multiplicities count (NULL = the data itself) into v[group][metric]. */
static void evaluate_groups(const plan *p, const int *count, int has_auc, double (*v)[METRIC_COUNT],
                            confusion *cms) {
  confusion all = {0, 0, 0, 0};
  for (int q = 0; q < p->n_parts; q++) {
    const int *mem = p->porder + p->pstart[q];
    int m = p->pstart[q + 1] - p->pstart[q];
    confusion c = confusion_weighted(p, mem, m, count);
    double auc = has_auc ? auc_sorted(mem, p->ptie + p->pstart[q], m, p->label, count) : NAN;
    metric_values(&c, auc, count != NULL, v[q]);
    if (cms) cms[q] = c;
    add_confusion(&all, &c);
  }
  double auc = has_auc ? auc_sorted(p->order, p->tie, p->n, p->label, count) : NAN;
  metric_values(&all, auc, count != NULL, v[p->n_parts]);
  if (cms) cms[p->n_parts] = all;
}

/* Runs the resamples and stores the intervals into the groups. */
static int run_bootstrap(const plan *p, const eval_options *o, eval_group **groups, mskx_err *e) {
  int ng = p->n_parts + 1, nb = o->n_boot;
  size_t nvals;
  if (!size_mul((size_t)ng * METRIC_COUNT, (size_t)nb, &nvals))
    return err_set(e, MSKX_ELIMIT, "%d bootstrap resamples are too many", nb);
  double *vals = malloc(nvals * sizeof *vals); /* [group][metric][resample] */
  int *count = malloc((size_t)p->n * sizeof *count);
  double(*v)[METRIC_COUNT] = malloc((size_t)ng * sizeof *v);
  if (!vals || !count || !v) {
    free(vals);
    free(count);
    free(v);
    return err_set(e, MSKX_ENOMEM, "cannot allocate %d bootstrap resamples", nb);
  }
  int has_auc = !o->decisions_only;
  for (int b = 0; b < nb; b++) {
    memset(count, 0, (size_t)p->n * sizeof *count);
    for (int q = 0; q < p->n_parts; q++) {
      rng r = bootstrap_stream(o->seed, b, q);
      bootstrap_draw(&r, p->porder + p->pstart[q], p->pstart[q + 1] - p->pstart[q], count);
    }
    evaluate_groups(p, count, has_auc, v, NULL);
    for (int g = 0; g < ng; g++)
      for (int k = 0; k < METRIC_COUNT; k++) vals[((size_t)g * METRIC_COUNT + k) * nb + b] = v[g][k];
  }
  for (int g = 0; g < ng; g++)
    for (int k = 0; k < METRIC_COUNT; k++) {
      eval_group *gr = groups[g];
      if (k == METRIC_AUC && !has_auc) continue;
      bootstrap_ci(vals + ((size_t)g * METRIC_COUNT + k) * nb, nb, &gr->ci_lo[k], &gr->ci_hi[k],
                   &gr->boot_undefined[k]);
    }
  free(vals);
  free(count);
  free(v);
  return MSKX_OK;
}

static int fill_results(const plan *p, const eval_options *o, eval_results *r, mskx_err *e) {
  int ng = p->n_parts + 1;
  double(*v)[METRIC_COUNT] = malloc((size_t)ng * sizeof *v);
  confusion *cms = malloc((size_t)ng * sizeof *cms);
  eval_group **groups = malloc((size_t)ng * sizeof *groups);
  int rc = MSKX_OK;
  if (!v || !cms || !groups) {
    rc = err_set(e, MSKX_ENOMEM, "cannot allocate results");
    goto done;
  }
  evaluate_groups(p, NULL, !o->decisions_only, v, cms);
  for (int g = 0; g < ng; g++) {
    eval_group *gr = g < p->n_parts ? &r->parts[g] : &r->overall;
    groups[g] = gr;
    gr->part = str_dup(g < p->n_parts ? p->part_names[g] : "overall");
    if (!gr->part) {
      rc = err_set(e, MSKX_ENOMEM, "cannot allocate results");
      goto done;
    }
    int lo = g < p->n_parts ? p->pstart[g] : 0, hi = g < p->n_parts ? p->pstart[g + 1] : p->n;
    gr->n_studies = hi - lo;
    for (int k = lo; k < hi; k++) gr->n_abnormal += p->label[g < p->n_parts ? p->porder[k] : k];
    gr->cm = cms[g];
    for (int k = 0; k < METRIC_COUNT; k++) {
      gr->value[k] = v[g][k];
      gr->ci_lo[k] = gr->ci_hi[k] = NAN;
    }
  }
  if (o->n_boot > 0) rc = run_bootstrap(p, o, groups, e);
done:
  free(v);
  free(cms);
  free(groups);
  return rc;
}

int metrics_evaluate(const study_pred *s, int n, const eval_options *opt, eval_results **out, mskx_err *e) {
  *out = NULL;
  eval_options o;
  if (opt) o = *opt;
  else eval_options_default(&o);
  if (n <= 0) return err_set(e, MSKX_EINVAL, "no studies to evaluate");
  if (o.n_boot < 0) return err_set(e, MSKX_EINVAL, "negative bootstrap count %d", o.n_boot);
  if (isnan(o.threshold)) return err_set(e, MSKX_EINVAL, "threshold is NaN");
  for (int i = 0; i < n; i++) {
    if (!s[i].part || !s[i].part[0])
      return err_set(e, MSKX_EINVAL, "study %s has no body part", s[i].study ? s[i].study : "?");
    if (s[i].label != 0 && s[i].label != 1)
      return err_set(e, MSKX_EINVAL, "study %s: label %d is not 0 or 1", s[i].study ? s[i].study : "?",
                     s[i].label);
  }
  plan p;
  int rc = plan_build(&p, s, n, &o, e);
  if (rc) {
    plan_free(&p);
    return rc;
  }
  eval_results *r = calloc(1, sizeof *r);
  if (r) r->parts = calloc((size_t)p.n_parts, sizeof *r->parts);
  if (!r || !r->parts) {
    free(r);
    plan_free(&p);
    return err_set(e, MSKX_ENOMEM, "cannot allocate results");
  }
  r->opt = o;
  r->n_parts = p.n_parts;
  rc = fill_results(&p, &o, r, e);
  plan_free(&p);
  if (rc) {
    eval_results_free(r);
    return rc;
  }
  *out = r;
  return MSKX_OK;
}

void eval_results_free(eval_results *r) {
  if (!r) return;
  for (int i = 0; i < r->n_parts; i++) free(r->parts[i].part);
  free(r->parts);
  free(r->overall.part);
  free(r);
}
