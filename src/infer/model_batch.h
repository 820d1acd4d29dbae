/* Studies decoded apart from their computation, and computed together:
 * what `mskx serve`'s scheduler uses to decode on connection threads while
 * the network computes, and to batch queued studies into shared forward
 * passes (predictor_predict_batch), and `mskx predict`'s engine
 * (batch_predict.c) the same for files. Internal to the library. */
#ifndef MSKX_INFER_MODEL_BATCH_H
#define MSKX_INFER_MODEL_BATCH_H
#include "mskx.h"

typedef struct model_study model_study;

/* Decodes a study (within the model's decode limits and budget) into its
 * network inputs; needs no prediction context. imgs' bytes are not kept. */
int model_study_prepare_encoded(mskx_model *m, const mskx_encoded_image *imgs, int n, const char *part,
                                const mskx_predict_options *opt, model_study **out, mskx_err *e);
/* The same from image files, as mskx_predict_files reads them (the part
 * from the first path's XR_* component when part is NULL or ""). */
int model_study_prepare_files(mskx_model *m, const char *const *paths, int n, const char *part,
                              const mskx_predict_options *opt, model_study **out, mskx_err *e);
/* Network inputs one forward pass takes (mskx_load_options.max_batch). */
int model_max_batch(const mskx_model *m);
/* Changes that (>= 1) on every context, freeing networks planned for
 * larger batches; only while no prediction runs (`mskx serve` before it
 * listens, once its probe has measured which batch pays). */
void model_set_max_batch(mskx_model *m, int max_batch);
/* How many prediction contexts the model's pool may hold (computations at once). */
int model_contexts(const mskx_model *m);
/* Network inputs the study needs (images, twice with TTA). */
int model_study_images(const model_study *s);
/* Computes n prepared studies on one pooled context, batched where they
 * share a network. Each study's own outcome is read with model_study_result;
 * the return code is nonzero only when none could be computed (no memory,
 * no context), *batches the forward-pass groups run. */
int model_predict_studies(mskx_model *m, model_study **st, int n, int *batches, mskx_err *e);
/* The computed study's result (or its error). */
int model_study_result(model_study *s, mskx_result **out, mskx_err *e);
void model_study_free(model_study *s);

#endif
