/* Reference numbers from the MURA paper (Rajpurkar et al., arXiv:1712.06957,
 * Table 2: Cohen's kappa with 95% CI on the 207-study test set), embedded so
 * that reports need no data file. data/mura_paper.json is the shipped source;
 * tests/eval/test_metrics.c checks this table against it. */
#ifndef MSKX_EVAL_PAPER_H
#define MSKX_EVAL_PAPER_H

/* A kappa and its published 95% interval. The published intervals were
 * computed from the variance rather than the standard error of kappa, so
 * they are too narrow; they are kept only for reference. */
typedef struct paper_kappa {
  double kappa, lo, hi;
} paper_kappa;

#define PAPER_N_RADIOLOGISTS 3

typedef struct paper_part {
  const char *part; /* "XR_ELBOW", ..., or "overall" */
  paper_kappa model; /* the Stanford ensemble (DenseNet-169) */
  paper_kappa radiologist[PAPER_N_RADIOLOGISTS];
  double leaderboard_best; /* best competition entry's kappa, for reference */
} paper_part;

extern const paper_part paper_parts[];
extern const int paper_n_parts;
/* Name of the best leaderboard entry the leaderboard_best column comes from. */
extern const char *const paper_leaderboard_entry;
/* The model's other overall figures in the paper (operating point 0.5). */
#define PAPER_MODEL_AUROC 0.929
#define PAPER_MODEL_SENSITIVITY 0.815
#define PAPER_MODEL_SPECIFICITY 0.887
/* Size of the paper's test set, on which all of the above was measured. */
#define PAPER_TEST_STUDIES 207

/* The row for a part name ("overall" for the overall row), or NULL when the
 * paper has no such part. */
const paper_part *paper_find(const char *part);

#endif
