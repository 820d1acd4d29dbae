/* Class weights for the weighted binary cross-entropy: a table w[part][class]
 * (class 0 normal, 1 abnormal) from the training split's image counts.
 * Modes: "mura" (the MURA paper's per-part weights), "balanced"
 * (scikit-learn's compute_class_weight), "none", or explicit "0:W0,1:W1". */
#ifndef MSKX_TRAIN_CLASS_WEIGHTS_H
#define MSKX_TRAIN_CLASS_WEIGHTS_H
#include <stdint.h>
#include "mskx.h"

typedef enum cw_mode { CW_NONE = 0, CW_MURA = 1, CW_BALANCED = 2, CW_EXPLICIT = 3 } cw_mode;

typedef struct cw_spec {
  cw_mode mode;
  double w[2]; /* CW_EXPLICIT: weights of class 0 and class 1 */
} cw_spec;

/* Parses "none", "mura", "balanced" or "0:W0,1:W1" (both classes exactly
 * once, in any order; weights finite and > 0). */
int cw_parse(const char *text, cw_spec *out, mskx_err *e);
const char *cw_mode_name(cw_mode m);

/* Fills w[p][c] for p in [0, n_parts) from counts[p][c], the training
 * images of part p with label c (0 normal, 1 abnormal; the order of
 * ds_counts.images). Parts that are not trained have counts {0, 0}.
 *  mura:     w[p][1] = N_p / (A_p + N_p), w[p][0] = A_p / (A_p + N_p);
 *            a part with no images gets {1, 1} (never used); a part with
 *            images of only one class is an error (a weight would be 0).
 *  balanced: w[.][c] = n / (2 * n_c) over all parts' images (same for every
 *            part); an absent class is an error, as in scikit-learn.
 *  none:     {1, 1};  explicit: the parsed weights for every part.
 * part_names (may be NULL) name parts in messages. */
int cw_compute(const cw_spec *spec, const int64_t (*counts)[2], int n_parts, const char *const *part_names,
               double (*w)[2], mskx_err *e);

#endif
