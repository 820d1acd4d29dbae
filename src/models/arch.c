/* The architecture table (see arch.h) and arch strings -> arch_spec. */
#include "models/arch.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "models/families.h"

static const arch_family densenet_family = {
    .name = "DenseNet-BC",
    .build = densenet_build,
    .onnx_graph = onnx_densenet_graph,
    .head = "classifier",
    .fix_torch_name = torch_fix_old_densenet_name,
    .keras = &keras_densenet_map,
    .has_int8 = 1,
};

/* Keras's ResNet50 is ResNet v1, a different function from torchvision's
 * v1.5: no Keras rules (import.c refuses such files by name). */
static const arch_family resnet_family = {
    .name = "ResNet",
    .build = resnet_build,
    .onnx_graph = onnx_resnet_graph,
    .head = "fc",
};

/* Unpadded convolutions and pools take any input side. */
static const arch_family inception_family = {
    .name = "Inception-v3",
    .build = inception_build,
    .onnx_graph = onnx_inception_graph,
    .head = "fc",
    .bn_eps = INCEPTION_BN_EPS,
    .size_multiple = 1,
    .min_size = INCEPTION_MIN_SIZE,
    .min_size_aux = INCEPTION_AUX_MIN_SIZE,
    .has_aux = 1,
};

static int parse_pos_int(const char *arch, const char *key, const char *v, int max, int *out, mskx_err *e) {
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end || x <= 0 || x > max)
    return err_set(e, MSKX_EINVAL, "arch '%s': %s must be an integer in 1..%d, got '%s'", arch, key, max, v);
  *out = (int)x;
  return MSKX_OK;
}

/* "growth=G,blocks=A-B-C,init=F,bn_size=S": blocks required, the others
 * keep the row's values (torchvision's DenseNet-121 ones). */
static int parse_custom_densenet(const char *s, const char *options, arch_spec *a, mskx_err *e) {
  a->n_blocks = 0;
  char buf[256];
  if (strlen(options) >= sizeof buf) return err_set(e, MSKX_EINVAL, "arch string too long");
  strcpy(buf, options);
  int have_blocks = 0;
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) return err_set(e, MSKX_EINVAL, "arch '%s': expected key=value, got '%s'", s, kv);
    *eq = 0;
    const char *k = kv, *v = eq + 1;
    int rc = MSKX_OK;
    if (!strcmp(k, "growth"))
      rc = parse_pos_int(s, k, v, 256, &a->growth, e);
    else if (!strcmp(k, "bn_size"))
      rc = parse_pos_int(s, k, v, 16, &a->bn_size, e);
    else if (!strcmp(k, "init"))
      rc = parse_pos_int(s, k, v, 1024, &a->init_features, e);
    else if (!strcmp(k, "blocks")) {
      have_blocks = 1;
      char *save2 = NULL, vb[128];
      snprintf(vb, sizeof vb, "%s", v);
      for (char *t = strtok_r(vb, "-", &save2); t && !rc; t = strtok_r(NULL, "-", &save2)) {
        if (a->n_blocks == ARCH_MAX_BLOCKS)
          return err_set(e, MSKX_EINVAL, "arch '%s': at most %d blocks", s, ARCH_MAX_BLOCKS);
        rc = parse_pos_int(s, "blocks", t, 128, &a->blocks[a->n_blocks++], e);
      }
      if (!rc && a->n_blocks == 0) return err_set(e, MSKX_EINVAL, "arch '%s': blocks is empty", s);
    } else
      return err_set(e, MSKX_EINVAL, "arch '%s': unknown key '%s' (known: growth, blocks, init, bn_size)", s, k);
    if (rc) return rc;
  }
  if (!have_blocks) return err_set(e, MSKX_EINVAL, "arch '%s': blocks=A-B-... is required", s);
  return MSKX_OK;
}

/* torchvision's DenseNet-BC hyper-parameters: growth 32, bottleneck 4x, 64 stem features. */
#define TV_DENSENET .family = &densenet_family, .default_size = ARCH_PAPER_SIZE, .growth = 32, .bn_size = 4, \
                    .init_features = 64

static const arch_def table[] = {
    {.name = "densenet121", .syntax = "densenet121", .description = "DenseNet-121 (torchvision)",
     TV_DENSENET, .n_blocks = 4, .blocks = {6, 12, 24, 16}},
    {.name = "densenet169", .syntax = "densenet169",
     .description = "DenseNet-169 (torchvision), the MURA paper's", TV_DENSENET, .n_blocks = 4,
     .blocks = {6, 12, 32, 32}},
    {.name = "densenet201", .syntax = "densenet201", .description = "DenseNet-201 (torchvision)", TV_DENSENET,
     .n_blocks = 4, .blocks = {6, 12, 48, 32}},
    {.name = "resnet50", .syntax = "resnet50", .description = "ResNet-50 v1.5 (torchvision)",
     .family = &resnet_family, .default_size = ARCH_PAPER_SIZE, .init_features = 64, .n_blocks = 4,
     .blocks = {3, 4, 6, 3}},
    {.name = "inception_v3", .syntax = "inception_v3",
     .description = "Inception-v3 (torchvision), auxiliary head", .family = &inception_family,
     .default_size = INCEPTION_SIZE},
    {.name = "densenet:", .syntax = "densenet:growth=G,blocks=A-B-C,init=F,bn_size=S",
     .description = "any DenseNet-BC: growth 32, init 64, bn_size 4 unless given", TV_DENSENET,
     .parse_options = parse_custom_densenet},
};
#define N_ARCHS (int)(sizeof table / sizeof table[0])

static int is_prefix_row(const arch_def *d) { return d->name[strlen(d->name) - 1] == ':'; }

const arch_def *arch_table(int *n) {
  *n = N_ARCHS;
  return table;
}

const arch_def *arch_find(const char *s) {
  if (!s) return NULL;
  for (int i = 0; i < N_ARCHS; i++) {
    const arch_def *d = &table[i];
    if (is_prefix_row(d) ? !strncmp(s, d->name, strlen(d->name)) : !strcmp(s, d->name)) return d;
  }
  return NULL;
}

int arch_parse(const char *s, arch_spec *a, mskx_err *e) {
  memset(a, 0, sizeof *a);
  if (!s || !*s) return err_set(e, MSKX_EINVAL, "empty arch string");
  if (strlen(s) >= sizeof a->name) return err_set(e, MSKX_EINVAL, "arch string too long");
  const arch_def *d = arch_find(s);
  if (!d) {
    char known[512] = "";
    size_t used = 0;
    for (int i = 0; i < N_ARCHS && used < sizeof known; i++)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", table[i].syntax);
    return err_set(e, MSKX_EINVAL, "unknown arch '%s' (known: %s)", s, known);
  }
  strcpy(a->name, s);
  a->family = d->family;
  a->growth = d->growth;
  a->bn_size = d->bn_size;
  a->init_features = d->init_features;
  a->n_blocks = d->n_blocks;
  memcpy(a->blocks, d->blocks, sizeof a->blocks);
  return d->parse_options ? d->parse_options(s, s + strlen(d->name), a, e) : MSKX_OK;
}

int arch_default_size(const char *s) {
  const arch_def *d = arch_find(s);
  return d ? d->default_size : 0;
}

int arch_size_multiple(const arch_spec *a) {
  if (a->family->size_multiple) return a->family->size_multiple;
  /* stem /4, then one /2 per transition (densenet) or per later stage (resnet). */
  int m = 4;
  for (int i = 1; i < a->n_blocks; i++) m *= 2;
  return m;
}

int arch_min_size(const arch_spec *a, int aux) {
  int m = aux && a->family->min_size_aux ? a->family->min_size_aux : a->family->min_size;
  return m ? m : arch_size_multiple(a);
}
