/* Weights from other tools into mskx networks (mskx import, train
 * --pretrained): PyTorch checkpoints (torchvision names), Keras 2.x HDF5
 * files (Keras applications' names) and safetensors (torchvision names),
 * each recognised by its content, never by its extension.
 *
 * Names are mapped to torchvision's (the names of mskx's parameters):
 * PyTorch: "module." prefixes stripped, torchvision's old DenseNet keys
 * ("norm.1" -> "norm1") renamed as torchvision's own loader does (the
 * family's fix_torch_name, models/arch.h). Keras: one table of name patterns
 * per architecture family (the family's keras map; a family without one has
 * no Keras import); kernels HWIO -> OIHW, dense
 * kernels (in, out) -> (out, in), batch norm gamma/beta/moving_mean/
 * moving_variance -> weight/bias/running_mean/running_var.
 *
 * The classifier: one output is mskx's one-logit head; two outputs (a
 * softmax) become the logit difference (w1 - w0, b1 - b0), which gives the
 * same probability of class 1; any other width (ImageNet's 1000) or no
 * classifier at all leaves the head freshly initialised, as --pretrained
 * always did. */
#ifndef MSKX_MODELS_IMPORT_H
#define MSKX_MODELS_IMPORT_H
#include "data/preprocess.h"
#include "io/safetensors.h"
#include "models/net.h"

/* Keras applications' DenseNets and ResNets build their batch norms with
 * this epsilon (keras/applications/densenet.py, resnet.py). */
#define KERAS_APPS_BN_EPS 1.001e-5f

typedef enum import_format { IMPORT_AUTO = 0, IMPORT_SAFETENSORS, IMPORT_TORCH, IMPORT_KERAS } import_format;

typedef struct import_info {
  import_format format;       /* detected */
  float bn_eps;               /* the epsilon the weights were trained with */
  norm_params norm;           /* the input normalisation they expect, on [0,1] pixels */
  char preprocessing[200];    /* the same in words, for the model metadata */
  char head[160];             /* what became of the classifier, in words */
  int n_tensors;              /* tensors loaded */
} import_info;

const char *import_format_name(import_format f);
/* "torchvision" / "pytorch" / "keras" / "safetensors" / "auto" -> format. */
int import_format_parse(const char *s, import_format *out, mskx_err *e);
/* The format of a file from its first bytes. */
int import_detect(const char *path, import_format *out, mskx_err *e);

/* Reads path (fmt, or detected when IMPORT_AUTO; a mismatch is an error)
 * and returns its tensors under torchvision's names for arch: the head
 * reduced to one output, or absent when it is to be re-initialised. */
int import_read(const char *path, import_format fmt, const arch_spec *arch, st_file **out, import_info *info,
                mskx_err *e);

/* The mapping steps alone, on tensors already read (for tests and fuzzing):
 * in is consumed (its tensors are moved into *out or freed). */
int import_map_torch(st_file *in, const arch_spec *arch, const char *what, st_file **out, import_info *info,
                     mskx_err *e);
int import_map_keras(st_file *in, const arch_spec *arch, const char *what, st_file **out, import_info *info,
                     mskx_err *e);

/* import_read, then loads every tensor into m (a head left out keeps m's
 * fresh initialisation) and sets m's batch-norm epsilon to info->bn_eps,
 * or to bn_eps_override when that is above 0. */
int import_load_net(net *m, const char *path, import_format fmt, float bn_eps_override, import_info *info,
                    mskx_err *e);

/* mskx import: a model file (the format mskx predict/eval read) for arch at
 * input size `size`, head initialised from seed when re-initialised. */
typedef struct import_opts {
  const char *in, *out, *arch;
  import_format fmt;
  int size;                   /* 0: the arch's default (arch_default_size) */
  uint64_t seed;
  float bn_eps;               /* > 0: overrides the source's epsilon */
} import_opts;
int import_model(const import_opts *o, import_info *info, mskx_err *e);

#endif
