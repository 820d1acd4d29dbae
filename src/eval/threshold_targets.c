/* Choosing and storing thresholds per deciding file (see threshold_targets.h). */
#include "eval/threshold_targets.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "models/model_file.h"

void thr_targets_free(thr_target *t, int n) {
  for (int i = 0; t && i < n; i++) {
    free(t[i].p);
    free(t[i].y);
  }
  free(t);
}

int thr_targets_make(const eval_run *r, const predictor *p, const char *model_path, thr_target **out, int *n,
                     mskx_err *e) {
  int bundle = predictor_get_info(p)->kind == PNODE_BUNDLE, cap = bundle ? p->root.n_children : 1;
  thr_target *t = calloc((size_t)(cap > 0 ? cap : 1), sizeof *t);
  *out = t;
  *n = 0;
  if (!t) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (!st->ok) continue;
    const char *who = bundle ? st->model_used : model_path;
    int k = 0;
    while (k < *n && strcmp(t[k].path, who)) k++;
    if (k == *n) {
      if (*n == cap) return err_set(e, MSKX_EINTERNAL, "more deciding files than the model has members");
      t[k].path = who;
      t[k].old_thr = st->threshold;
      (*n)++;
      if (!(t[k].p = malloc((size_t)r->n_ok * sizeof(double))) || !(t[k].y = malloc((size_t)r->n_ok * sizeof(int))))
        return err_set(e, MSKX_ENOMEM, "out of memory");
    }
    t[k].p[t[k].n] = st->probability;
    t[k].y[t[k].n++] = st->ds->label;
  }
  return MSKX_OK;
}

int thr_target_choose(thr_target *t, const thr_policy *pol, bool is_ensemble, bool dry, mskx_err *e) {
  mskx_err why = {0, ""};
  t->before = thr_evaluate(t->p, t->y, t->n, t->old_thr);
  if (thr_choose(t->p, t->y, t->n, pol, &t->after, &why)) {
    snprintf(t->why, sizeof t->why, "%s", why.msg);
    return MSKX_OK; /* reported by the caller; the old threshold stays */
  }
  t->chosen = true;
  if (dry) return MSKX_OK;
  int rc = is_ensemble ? ensemble_set_threshold(t->path, t->after.threshold, e)
                       : model_set_threshold(t->path, t->after.threshold, e);
  t->stored = !rc;
  return rc;
}
