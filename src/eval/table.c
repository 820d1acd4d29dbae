/* JSON and text renderings of eval_results (see table.h). */
#include "eval/table.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/error.h"
#include "eval/paper.h"

/* cJSON would print NaN as null too, but only by accident of its printer. */

static int add_pair(cJSON *obj, const char *key, double a, double b) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr || !cJSON_AddItemToObject(obj, key, arr)) {
    cJSON_Delete(arr);
    return 0;
  }
  return cJSON_AddItemToArray(arr, json_finite(a)) && cJSON_AddItemToArray(arr, json_finite(b));
}

static int add_counts(cJSON *arr, int64_t a, int64_t b) {
  cJSON *row = cJSON_CreateArray();
  if (!row || !cJSON_AddItemToArray(arr, row)) {
    cJSON_Delete(row);
    return 0;
  }
  return cJSON_AddItemToArray(row, cJSON_CreateNumber((double)a)) &&
         cJSON_AddItemToArray(row, cJSON_CreateNumber((double)b));
}

static cJSON *group_json(const eval_group *g, double threshold) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  int ok = 1;
  for (int k = 0; k < METRIC_COUNT && ok; k++) {
    char key[64];
    snprintf(key, sizeof key, "%s_ci", metric_names[k]);
    ok = cJSON_AddItemToObject(o, metric_names[k], json_finite(g->value[k])) &&
         add_pair(o, key, g->ci_lo[k], g->ci_hi[k]);
  }
  cJSON *cm = ok ? cJSON_AddArrayToObject(o, "confusion") : NULL;
  ok = cm && add_counts(cm, g->cm.tn, g->cm.fp) && add_counts(cm, g->cm.fn, g->cm.tp) &&
       cJSON_AddNumberToObject(o, "n_studies", g->n_studies) && cJSON_AddNumberToObject(o, "threshold", threshold);
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *undefined_json(const eval_group *g) {
  cJSON *o = cJSON_CreateObject();
  for (int k = 0; k < METRIC_COUNT && o; k++)
    if (!cJSON_AddNumberToObject(o, metric_names[k], g->boot_undefined[k])) {
      cJSON_Delete(o);
      return NULL;
    }
  return o;
}

static cJSON *bootstrap_json(const eval_results *r) {
  cJSON *b = cJSON_CreateObject(), *u = NULL;
  int ok = b && cJSON_AddNumberToObject(b, "resamples", r->opt.n_boot) &&
           cJSON_AddNumberToObject(b, "seed", (double)r->opt.seed) &&
           cJSON_AddStringToObject(b, "method",
                                   "percentile 2.5/97.5, linear interpolation; resampling studies with "
                                   "replacement within each part") &&
           (u = cJSON_AddObjectToObject(b, "undefined_resamples")) &&
           cJSON_AddItemToObject(u, "overall", undefined_json(&r->overall));
  for (int i = 0; ok && i < r->n_parts; i++) ok = cJSON_AddItemToObject(u, r->parts[i].part, undefined_json(&r->parts[i]));
  if (!ok) {
    cJSON_Delete(b);
    return NULL;
  }
  return b;
}

cJSON *eval_results_to_json(const eval_results *r) {
  cJSON *root = cJSON_CreateObject(), *parts = NULL;
  int ok = root && cJSON_AddItemToObject(root, "overall", group_json(&r->overall, r->opt.threshold)) &&
           (parts = cJSON_AddObjectToObject(root, "parts"));
  for (int i = 0; ok && i < r->n_parts; i++)
    ok = cJSON_AddItemToObject(parts, r->parts[i].part, group_json(&r->parts[i], r->opt.threshold));
  ok = ok && cJSON_AddItemToObject(root, "bootstrap", bootstrap_json(r));
  if (!ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

/* "0.712 [0.601, 0.815]", "0.712 [n/a]" without an interval, or "n/a". */
static void fmt_ci(char *buf, size_t n, double v, double lo, double hi) {
  if (!isfinite(v)) snprintf(buf, n, "n/a");
  else if (!isfinite(lo) || !isfinite(hi)) snprintf(buf, n, "%.3f [n/a]", v);
  else snprintf(buf, n, "%.3f [%.3f, %.3f]", v, lo, hi);
}

static void fmt_val(char *buf, size_t n, double v) {
  if (isfinite(v)) snprintf(buf, n, "%.3f", v);
  else snprintf(buf, n, "n/a");
}

static void print_row(FILE *f, int w, const eval_group *g) {
  char kap[48], auc[48], sens[16], spec[16];
  fmt_ci(kap, sizeof kap, g->value[METRIC_KAPPA], g->ci_lo[METRIC_KAPPA], g->ci_hi[METRIC_KAPPA]);
  fmt_ci(auc, sizeof auc, g->value[METRIC_AUC], g->ci_lo[METRIC_AUC], g->ci_hi[METRIC_AUC]);
  fmt_val(sens, sizeof sens, g->value[METRIC_SENSITIVITY]);
  fmt_val(spec, sizeof spec, g->value[METRIC_SPECIFICITY]);
  fprintf(f, "%-*s %5d  %-22s %-22s %5s  %5s  |", w, g->part, g->n_studies, kap, auc, sens, spec);
  const paper_part *p = paper_find(g->part);
  if (p) {
    fprintf(f, " %5.3f", p->model.kappa);
    for (int k = 0; k < PAPER_N_RADIOLOGISTS; k++) fprintf(f, "  %5.3f", p->radiologist[k].kappa);
  } else {
    fprintf(f, " %5s", "-");
    for (int k = 0; k < PAPER_N_RADIOLOGISTS; k++) fprintf(f, "  %5s", "-");
  }
  fputc('\n', f);
}

static void print_notes(FILE *f, const eval_results *r) {
  if (r->opt.n_boot > 0)
    fprintf(f,
            "95%% CI: percentile bootstrap (2.5th/97.5th, linear interpolation), %d resamples of studies\n"
            "  drawn with replacement within each part (overall stratified by part), seed %llu.\n",
            r->opt.n_boot, (unsigned long long)r->opt.seed);
  else
    fprintf(f, "No bootstrap: confidence intervals not computed.\n");
  if (r->opt.decisions_only)
    fprintf(f, "Scores are 0/1 decisions, not probabilities: AUROC is not reported (n/a).\n");
  else
    fprintf(f, "Decision: abnormal when probability > %g.\n", r->opt.threshold);
  fprintf(f,
          "Paper (Rajpurkar et al. 2017, Table 2): the Stanford model's and three radiologists' kappas on\n"
          "  the MURA test set (%d studies), not on these studies; its published kappa intervals used the\n"
          "  variance instead of the standard error and are too narrow, so they are not shown.\n",
          PAPER_TEST_STUDIES);
  int any = 0;
  for (int g = 0; g <= r->n_parts; g++) {
    const eval_group *gr = g < r->n_parts ? &r->parts[g] : &r->overall;
    for (int k = 0; k < METRIC_COUNT; k++) {
      if (!gr->boot_undefined[k]) continue;
      fprintf(f, "%s %s %s: %d", any ? "," : "Resamples skipped (metric undefined):", gr->part, metric_names[k],
              gr->boot_undefined[k]);
      any = 1;
    }
  }
  if (any) fputc('\n', f);
}

int eval_results_format_table(const eval_results *r, char **text, mskx_err *e) {
  *text = NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return err_set(e, MSKX_ENOMEM, "cannot allocate the results table");
  int w = (int)strlen("overall");
  for (int i = 0; i < r->n_parts; i++)
    if ((int)strlen(r->parts[i].part) > w) w = (int)strlen(r->parts[i].part);
  fprintf(f, "%-*s %5s  %-22s %-22s %5s  %5s  | %5s  %5s  %5s  %5s   (MURA paper kappas)\n", w, "part", "n",
          "kappa [95% CI]", "AUROC [95% CI]", "sens", "spec", "model", "rad1", "rad2", "rad3");
  for (int i = 0; i < r->n_parts; i++) print_row(f, w, &r->parts[i]);
  print_row(f, w, &r->overall);
  fputc('\n', f);
  print_notes(f, r);
  if (fclose(f) != 0 || !buf) {
    free(buf);
    return err_set(e, MSKX_ENOMEM, "cannot write the results table");
  }
  *text = buf;
  return MSKX_OK;
}
