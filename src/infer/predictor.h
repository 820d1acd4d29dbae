/* The predictor: a loaded model file, per-part bundle or ensemble, and one
 * context (engine + planned networks) to predict studies with. A predictor
 * is not thread-safe; predictor_clone makes another context sharing nothing
 * mutable (the public API keeps a pool of them, see api.c).
 *
 * File formats (see docs/predict.md):
 *   model:    *.safetensors, metadata format "mskx-model-1" (model_file.h)
 *   bundle:   JSON {"format": "mskx-bundle-1", "models": {"XR_WRIST": "p", ...},
 *             "default": "p"}: a study is routed to its part's model
 *   ensemble: JSON {"format": "mskx-ensemble-1", "method": "mean|vote|weighted|stack|stack-features",
 *             "threshold": t, "members": [{"path": "p", "weight": w}, ...],
 *             "stacker": {"coef": [...], "intercept": b}}; stack-features adds
 *             "mean", "scale" (the standardisation) and "dims" (each member's
 *             feature width) to the stacker, coef holding one value per feature
 * Paths inside JSON files are relative to the JSON file's folder. */
#ifndef MSKX_INFER_PREDICTOR_H
#define MSKX_INFER_PREDICTOR_H
#include <stddef.h>
#include "data/parts.h"
#include "engine/engine.h"
#include "io/image.h"
#include "models/model_file.h"
#include "mskx.h"

#define PREDICT_DEFAULT_MAX_BATCH 16
/* Stacking clamps member probabilities before the logit. */
#define STACK_CLAMP 1e-6

typedef struct predictor_options {
  int threads;          /* engine threads; <= 0: all cores */
  precision prec;
  int max_batch;        /* <= 0: PREDICT_DEFAULT_MAX_BATCH */
  image_limits limits;  /* for callers that decode through the predictor */
} predictor_options;

typedef enum agg_rule { AGG_MEAN = 0, AGG_MAX = 1 } agg_rule;
/* ENS_STACK_FEATURES: a logistic regression over the members' standardised
 * pooled penultimate features (the classifier's input, averaged over the
 * study's images), members being model files (ensemble_file.c). */
typedef enum ens_method {
  ENS_MEAN = 0, ENS_VOTE = 1, ENS_WEIGHTED = 2, ENS_STACK = 3, ENS_STACK_FEATURES = 4
} ens_method;
#define ENS_METHODS 5
extern const char *const ens_method_names[ENS_METHODS];
typedef enum pnode_kind { PNODE_MODEL = 0, PNODE_BUNDLE = 1, PNODE_ENSEMBLE = 2 } pnode_kind;

typedef struct predict_options {
  agg_rule agg;         /* AGG_MEAN is the MURA paper's rule */
  int tta_flip;         /* image p = mean of the image's and its mirror's */
  int want_cam;         /* per-image CAM maps, at display size (see study_inputs) */
  int want_display;     /* the display copies (study_result.display) without maps */
} predict_options;

/* Where one image of a study comes from: encoded bytes, a file, or 8-bit
 * pixels (channels 1 or 3, stride 0 = w * channels). name is for messages.
 * frame: 0 for the file's one image, k >= 1 for frame k of a multi-frame
 * DICOM file (bytes or path). */
typedef struct image_source {
  const char *name;
  const uint8_t *bytes;
  size_t len;
  const char *path;
  int frame;
  const uint8_t *pixels;
  int w, h, channels, bits;   /* bits per sample: 8 or 16 */
  size_t stride;
} image_source;

/* CAM maps and overlays are made at this longest side at most (area-reduced
 * from the image during decoding), never at a radiograph's full size. */
#define CAM_DISPLAY_MAX_SIDE MSKX_DISPLAY_MAX_SIDE
/* Distinct (input size, keep_aspect) pairs among the networks one study reaches. */
#define INPUT_SIZES_MAX 16

typedef struct input_size {
  int s, keep_aspect;
} input_size;

/* A study's images decoded once and resized for every network input the
 * tree needs (inputs.c): gray[i * n_sizes + t] holds image i at sizes[t]
 * (s*s floats in [0,1] as resize_gray makes), gray_mirror the same for the
 * mirrored image (TTA only), display[i] the display copy (maps only). */
typedef struct study_inputs {
  int n, n_sizes;
  input_size sizes[INPUT_SIZES_MAX];
  float **gray, **gray_mirror;
  gray_image *display;
  int *width, *height;   /* the images' own sizes */
} study_inputs;

/* A node of the loaded tree: a network, a bundle of networks, or an ensemble
 * of networks and bundles. */
typedef struct pnode {
  pnode_kind kind;
  char *path;                /* the file it came from */
  /* PNODE_MODEL */
  model_meta meta;
  net *m;
  char *meta_json;           /* the file's metadata as a JSON object */
  /* PNODE_BUNDLE: children[i] serves part_names[i]; dflt is a child index or -1 */
  char (*part_names)[PART_NAME_MAX];
  int dflt;
  /* PNODE_ENSEMBLE */
  ens_method method;
  double threshold;
  double *weight, *coef, intercept;
  /* ENS_STACK_FEATURES: n_feat = the members' feature widths summed; coef,
   * feat_mean and feat_scale hold n_feat values (x - mean) / scale. */
  int n_feat;
  double *feat_mean, *feat_scale;
  int n_children;
  struct pnode *children;
} pnode;

typedef struct predictor_info {
  pnode_kind kind;
  char arch[512];
  int size;                  /* 0 when members differ */
  char parts[1024];
  double threshold;
  int n_members;
  const char *method;        /* "" unless an ensemble */
  char *metadata_json;       /* owned */
} predictor_info;

/* Batched forward passes (predictor_predict_batch) come in a few batch
 * sizes (totals of whole studies up to max_batch); planning a network
 * (oneDNN primitives, buffers) costs more than a small batch computes, so
 * each context keeps copies of a network planned at other sizes than its
 * own, least recently used replaced. */
#define PLAN_CACHE 6

typedef struct plan_slot {
  const pnode *node;   /* the network copied */
  int b;               /* the batch size it is planned for */
  net *m;              /* NULL: empty */
  unsigned long used;
} plan_slot;

typedef struct predictor {
  /* opt.prec PREC_AUTO: resolved at load to the fastest precision (the
   * candidates' forward times in auto_ms, fp32 then bf16; 0: not timed). */
  int prec_auto;
  double auto_ms[PREC_COUNT];
  engine *eng;
  plan_slot plans[PLAN_CACHE];
  unsigned long plan_clock;
  predictor_options opt;
  pnode root;
  predictor_info info;
  /* Scratch reused across studies (grown on demand). */
  float *batch, *logits, *fmap;
  size_t batch_cap, logits_cap, fmap_cap;
} predictor;

typedef struct study_result {
  double probability;
  int abnormal;
  double threshold;
  char part[PART_NAME_MAX];  /* "" when unknown */
  char *model_used;          /* path of the serving file (owned) */
  int n_images;
  double *image_prob;        /* n_images */
  int *width, *height;       /* n_images: the images' own sizes */
  float **cam;               /* NULL, or n_images maps of each display[i].w * .h */
  gray_image *display;       /* with cam: the images at display size (display_size) */
  int n_members;             /* ensembles only */
  double *member_prob;
} study_result;

/* Loads path (model, bundle or ensemble); opt may be NULL (defaults). */
int predictor_load(const char *path, const predictor_options *opt, predictor **out, mskx_err *e);
/* Another context with the same weights: a new engine and networks, parameters copied. */
int predictor_clone(const predictor *p, predictor **out, mskx_err *e);
void predictor_free(predictor *p);
/* Sets opt.max_batch (>= 1) and frees what was sized for batches above it
 * (the networks cached for them, the input batch). Not while p computes. */
void predictor_set_max_batch(predictor *p, int max_batch);
const predictor_info *predictor_get_info(const predictor *p);
/* The precision the predictor computes in (PREC_AUTO resolved). */
precision predictor_precision(const predictor *p);

/* Predicts one study of n >= 1 images. part may be NULL (bundles then need a
 * default model). po may be NULL. out is filled (free it with
 * study_result_free, also after failure). Each image is decoded once, with
 * p->opt.limits (and its budget), straight into the inputs it needs. */
int predictor_predict_sources(predictor *p, const image_source *srcs, int n, const char *part,
                              const predict_options *po, study_result *out, mskx_err *e);
/* The same from decoded images. */
int predictor_predict_study(predictor *p, const gray_image *images, int n, const char *part,
                            const predict_options *po, study_result *out, mskx_err *e);
/* predictor_predict_sources in two steps, so that decoding needs no context:
 * prepare reads only the tree's input sizes and routing (never written after
 * loading, so any context of the same model will do, even one in use);
 * predict_inputs runs the networks (and takes in->display into out). */
int predictor_prepare(const predictor *p, const image_source *srcs, int n, const char *part,
                      const predict_options *po, study_inputs **out, mskx_err *e);
int predictor_predict_inputs(predictor *p, study_inputs *in, const char *part, const predict_options *po,
                             study_result *out, mskx_err *e);

/* Several prepared studies on one context: those that reach the same network
 * without maps (bundles routed by their part) share forward passes of up to
 * opt.max_batch inputs; ensembles and studies with maps run alone. Each
 * study's answer equals what predictor_predict_inputs gives it (up to the
 * convolution algorithm oneDNN picks for the batch size: docs/serve.md).
 * parts[i] may be NULL, po[i] is study i's options. outs[i], rcs[i] and
 * errs[i] receive study i's result (free it with study_result_free), code
 * and error; *batches counts the forward-pass groups run. */
int predictor_predict_batch(predictor *p, study_inputs **in, const char *const *parts, const predict_options *po,
                            int n, study_result *outs, int *rcs, mskx_err *errs, int *batches);

/* inputs.c */
int study_inputs_prepare(const pnode *root, const image_source *srcs, int n, const char *part, int flip,
                         int want_display, const image_limits *lim, study_inputs **out, mskx_err *e);
/* Image i's grey input for (s, keep_aspect), mirrored or not; NULL if not prepared. */
const float *study_inputs_gray(const study_inputs *in, int i, int s, int keep_aspect, int mirror);
void study_inputs_free(study_inputs *in);
/* The display size of a w x h image: itself when its longest side is at
 * most CAM_DISPLAY_MAX_SIDE, else scaled to that longest side. */
void display_size(int w, int h, int *dw, int *dh);
void study_result_free(study_result *r);

/* A model file's features for a study: the classifier's input (global
 * average of the last feature map) per image, averaged over the images (and
 * their mirrors with tta_flip), into feat (malloc'd, *dim values), and
 * (study_prob may be NULL) the model's own study probability from the same
 * forward passes. The root must be a model file. */
int predictor_study_features(predictor *p, const gray_image *images, int n, const predict_options *po, double **feat,
                             int *dim, double *study_prob, mskx_err *e);
/* The feature width of a model node (its classifier's inputs). */
int pnode_feature_dim(const pnode *model);

/* The combination rule of an ensemble applied to member probabilities p[i]
 * with their own thresholds thr[i] (used by vote). */
double ensemble_combine(const pnode *ens, const double *p, const double *thr);

/* Internal to the infer module (ensemble_file.c): builds the tree of path.
 * allow: bit mask of (1 << pnode_kind) accepted at this level (0 = any). */
int pnode_load(pnode *node, const char *path, engine *eng, unsigned allow, mskx_err *e);
/* The child of a bundle that serves part (canonical or NULL), else its default. */
int pnode_route(const pnode *nd, const char *part, int *idx, mskx_err *e);
void pnode_free(pnode *node);
/* Fills info (kinds, archs, sizes, parts, thresholds, metadata JSON) from a loaded tree. */
int pnode_describe(const pnode *root, predictor_info *info, mskx_err *e);
int pnode_clone(const pnode *src, pnode *dst, engine *eng, mskx_err *e);
/* A new network on eng equal to a model node's loaded one (weights, buffers
 * and the settings its file gave), unplanned: for other contexts and for
 * the plan cache. */
int pnode_net_copy(const pnode *model, engine *eng, net **out, mskx_err *e);

/* Rewrites only the "threshold" of an ensemble file (format mskx-ensemble-1),
 * atomically, keeping every other field: the ensemble's counterpart of
 * model_set_threshold (models/model_file.h). */
int ensemble_set_threshold(const char *path, double threshold, mskx_err *e);

#endif
