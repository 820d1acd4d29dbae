/* Architectures: one table (arch_table in arch.c) says, for every arch
 * string mskx accepts, what it is and how each part of mskx handles it:
 * the builder that declares its layers (net_create), its ONNX emitter
 * (onnx export), its classifier's name and weight-name rules (mskx import),
 * its input sizes and its line in the CLI's help. Adding an architecture of
 * an existing family is one row of arch_table; a new family adds one
 * arch_family (builder, ONNX emitter, import rules) and its rows.
 *
 * Arch strings: densenet121 | densenet169 | densenet201 | resnet50 |
 * inception_v3 | densenet:growth=G,blocks=A-B-C[-D...],init=F,bn_size=S (any
 * small DenseNet-BC). */
#ifndef MSKX_MODELS_ARCH_H
#define MSKX_MODELS_ARCH_H
#include "mskx.h"

#define ARCH_MAX_BLOCKS 8

struct net;
struct onnx_emit;
struct keras_map;

/* What the architectures of one family share. */
typedef struct arch_family {
  const char *name;                                  /* "DenseNet-BC", for messages */
  int (*build)(struct net *m, mskx_err *e);          /* declares the layers and parameters */
  /* Emits the network as ONNX nodes (onnx_graph.c). */
  void (*onnx_graph)(struct onnx_emit *c, const char *input, const char *logit);
  const char *head;                                  /* the classifier's parameter prefix */
  /* mskx import: fixes an old torchvision parameter name in place (NULL:
   * none), and the Keras layer-name rules (NULL: no Keras import). */
  void (*fix_torch_name)(char *name);
  const struct keras_map *keras;
  float bn_eps;          /* > 0: every batch norm's own epsilon; 0: the model's (bn_eps) */
  int size_multiple;     /* input sides are multiples of this; 0: 4 * 2^(blocks-1) */
  int min_size;          /* the smallest input side; 0: the size multiple */
  int min_size_aux;      /* the same when training the auxiliary classifier */
  int has_aux;           /* an auxiliary classifier and torchvision's transform_input */
  int has_int8;          /* int8 inference of a quantised model (mskx quantize) */
} arch_family;

typedef struct arch_spec {
  const arch_family *family;
  char name[128];               /* canonical arch string */
  int growth, bn_size, init_features;
  int n_blocks, blocks[ARCH_MAX_BLOCKS];   /* dense layers per block / bottlenecks per stage */
} arch_spec;

/* One row of the table: a named architecture, or (name ending in ':') a
 * parameterised one whose key=value options follow the colon. */
typedef struct arch_def {
  const char *name;              /* "densenet121", or a prefix "densenet:" */
  const char *syntax;            /* the arch string as help writes it */
  const char *description;       /* one line for help */
  const arch_family *family;
  int default_size;              /* the input side used when none is given */
  int growth, bn_size, init_features, n_blocks, blocks[ARCH_MAX_BLOCKS];   /* the shape */
  /* Prefix rows: parses the options after the colon into a (prefilled with
   * the row's shape). */
  int (*parse_options)(const char *arch, const char *options, arch_spec *a, mskx_err *e);
} arch_def;

/* The table, in the order help lists it. */
const arch_def *arch_table(int *n);
/* The row an arch string names, or NULL. */
const arch_def *arch_find(const char *s);
int arch_parse(const char *s, arch_spec *out, mskx_err *e);
/* The default input side of an arch string; 0 when it names none (an arch
 * map, a typo: the caller's own default applies). */
int arch_default_size(const char *s);
/* Spatial sizes must be multiples of this (and at least arch_min_size). */
int arch_size_multiple(const arch_spec *a);
/* The smallest input side; aux: training with the auxiliary classifier. */
int arch_min_size(const arch_spec *a, int aux);
/* Whether the arch has an auxiliary classifier and torchvision's transform_input. */
static inline int arch_has_aux(const arch_spec *a) { return a->family->has_aux; }
/* Whether the arch family can run int8 inference (quantize refuses others). */
static inline int arch_has_int8(const arch_spec *a) { return a->family->has_int8; }

/* Inception-v3's auxiliary loss weight (torchvision's training reference
 * recipe: loss = main + 0.4 * aux). */
#define INCEPTION_AUX_WEIGHT 0.4f
/* Inception-v3's smallest input (torchvision's meta "min_size"), and the
 * smallest with the auxiliary head: its 5x5 average pool (stride 3) and 5x5
 * convolution need Mixed_6e's map to be at least 17x17. */
#define INCEPTION_MIN_SIZE 75
#define INCEPTION_AUX_MIN_SIZE 299
/* Its native input size (torchvision's weights: 299x299 crops). */
#define INCEPTION_SIZE 299
/* torchvision's BasicConv2d: nn.BatchNorm2d(out_channels, eps=0.001), the
 * epsilon of every Inception-v3 batch norm (inception.c, onnx_graph.c). */
#define INCEPTION_BN_EPS 1e-3f
/* The MURA paper's input side, every other arch's default. */
#define ARCH_PAPER_SIZE 320

#endif
