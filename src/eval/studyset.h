/* Study-level tables: the competition's prediction CSV (`study_path/,value`,
 * no header) and MURA's labelled-studies CSV (`study_path/,0|1`), and their
 * checked join into study_pred rows for metrics_evaluate. */
#ifndef MSKX_EVAL_STUDYSET_H
#define MSKX_EVAL_STUDYSET_H
#include <stdbool.h>
#include <stddef.h>
#include "eval/metrics.h"

enum studyset_kind {
  STUDYSET_PRED, /* value: probability in [0, 1] or 0/1 decision */
  STUDYSET_TRUTH /* value: label, exactly 0 or 1 */
};

typedef struct study_row {
  char *path;  /* normalised: always ends in '/' */
  char *part;  /* the XR_* component of path */
  char *split; /* the component before it ("train", "valid", ...), "" if none */
  double value;
  int line;    /* 1-based line in the file */
} study_row;

typedef struct study_table {
  char *file; /* the path it was read from, for messages */
  int n;
  study_row *rows; /* in file order */
} study_table;

/* Largest CSV accepted: MURA's train labels are ~1 MB. */
#define STUDYSET_MAX_BYTES (256u << 20)

/* Reads a CSV of one kind. Blank lines are skipped and CRLF endings accepted.
 * Every other line must be `path,value` (split at the last comma; spaces
 * around fields ignored) with a path containing an XR_* component and a
 * value that is a number in [0, 1] (not NaN) for STUDYSET_PRED, or exactly
 * 0 or 1 for STUDYSET_TRUTH. Errors name file:line. A duplicate study (after
 * adding a missing trailing slash) is an error, as is a file without rows. */
int studyset_read(const char *path, enum studyset_kind kind, study_table **out, mskx_err *e);
void studyset_free(study_table *t);

/* True when every value is exactly 0 or 1 (decisions, not probabilities). */
bool studyset_all_decisions(const study_table *t);

/* Pairs each prediction with its label. Errors: predictions and truth from
 * different splits (e.g. valid vs train), predictions for studies not in the
 * truth (count and the first few), and truth studies without a prediction
 * (count and first few; code MSKX_ESHAPE) unless allow_missing, in which case *n_missing says
 * how many were left out. The study_pred rows borrow strings from pred;
 * free the array with free() before studyset_free(pred). Rows are in the
 * prediction file's order. */
int studyset_join(const study_table *pred, const study_table *truth, int allow_missing, study_pred **out, int *n,
                  int *n_missing, mskx_err *e);

#endif
