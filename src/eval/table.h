/* Rendering evaluation results: the JSON document of `mskx score --json` and
 * the per-part text table beside the MURA paper's kappas. */
#ifndef MSKX_EVAL_TABLE_H
#define MSKX_EVAL_TABLE_H
#include <cjson/cJSON.h>
#include "eval/metrics.h"

/* {"overall": {...}, "parts": {"XR_ELBOW": {...}, ...}, "bootstrap": {...}}.
 * Each group holds, for every metric, "<name>" and "<name>_ci": [lo, hi],
 * then "confusion": [[tn, fp], [fn, tp]], "n_studies" and "threshold"; NaN
 * (undefined or not reported) is null. "bootstrap" records resamples, seed,
 * method and, per group, how many resamples each metric was undefined in.
 * Returns NULL when out of memory; the caller cJSON_Delete()s it. */
cJSON *eval_results_to_json(const eval_results *r);

/* The text table: one row per part then overall, with n, kappa [95% CI],
 * AUROC [95% CI], sensitivity, specificity and the paper's model and three
 * radiologists' kappas ("-" where the paper has no such part), followed by a
 * few lines of notes. *text is malloc'd; the caller frees it. */
int eval_results_format_table(const eval_results *r, char **text, mskx_err *e);

#endif
