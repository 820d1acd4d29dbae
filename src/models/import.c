/* Weight import (see import.h): format detection, name mapping to
 * torchvision's, layout conversion and the classifier rules. */
#include "models/import.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "io/keras_h5.h"
#include "io/pth.h"
#include "models/import_rules.h"
#include "models/model_file.h"

#define IMPORT_NAME_MAX 256

/* ---- formats ---- */

const char *import_format_name(import_format f) {
  static const char *const names[] = {"auto", "safetensors", "torchvision", "keras"};
  return (unsigned)f < 4 ? names[f] : "?";
}

int import_format_parse(const char *s, import_format *out, mskx_err *e) {
  static const struct {
    const char *name;
    import_format f;
  } names[] = {{"auto", IMPORT_AUTO},         {"torchvision", IMPORT_TORCH}, {"pytorch", IMPORT_TORCH},
               {"torch", IMPORT_TORCH},       {"keras", IMPORT_KERAS},       {"safetensors", IMPORT_SAFETENSORS}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i].name)) {
      *out = names[i].f;
      return MSKX_OK;
    }
  return err_set(e, MSKX_EINVAL, "unknown source '%s' (known: torchvision, keras, safetensors, auto)", s);
}

/* torch.save's legacy (pre-1.6) files start with the pickled magic number
 * 0x1950a86a20f9469cfc6c (PROTO 2, LONG1 of 10 bytes). */
static const unsigned char legacy_torch_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20};

int import_detect(const char *path, import_format *out, mskx_err *e) {
  unsigned char head[16] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(e, MSKX_EIO, "%s: cannot open", path);
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  if (pth_sniff(head, n)) {
    *out = IMPORT_TORCH;
  } else if (kh5_sniff(head, n)) {
    *out = IMPORT_KERAS;
  } else if (n >= 9 && head[8] == '{' && head[7] == 0 && head[6] == 0) {
    *out = IMPORT_SAFETENSORS; /* an 8-byte little-endian JSON length, then the JSON */
  } else if (n >= sizeof legacy_torch_magic && !memcmp(head, legacy_torch_magic, sizeof legacy_torch_magic)) {
    return err_set(e, MSKX_EUNSUPPORTED,
                   "%s: a PyTorch checkpoint in the legacy format (torch.save before PyTorch 1.6), which mskx does "
                   "not read: re-save it once with a recent PyTorch (torch.save(torch.load(IN), OUT))",
                   path);
  } else {
    return err_set(e, MSKX_EFORMAT,
                   "%s: not a PyTorch checkpoint (zip), a Keras HDF5 file or a safetensors file", path);
  }
  return MSKX_OK;
}

/* ---- shared helpers ---- */

static int out_create(int cap, st_file **out, mskx_err *e) {
  *out = calloc(1, sizeof **out);
  if (*out) (*out)->tensors = calloc((size_t)(cap > 0 ? cap : 1) + 2, sizeof *(*out)->tensors);
  if (!*out || !(*out)->tensors) {
    st_free(*out);
    *out = NULL;
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  return MSKX_OK;
}

static htensor *find_mut(st_file *f, const char *name) { return (htensor *)st_find(f, name); }

static void drop_tensor(st_file *f, htensor *t) {
  htensor_release(t);
  size_t i = (size_t)(t - f->tensors);
  memmove(t, t + 1, (size_t)(f->n_tensors - 1 - (int)i) * sizeof *t);
  f->n_tensors--;
}

static const char *head_prefix(const arch_spec *a) { return a->family->head; }

/* The classifier rules of import.h on torchvision-named tensors (W is (K, F)). */
static int apply_head(st_file *f, const arch_spec *a, const char *what, import_info *info, mskx_err *e) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s.weight", head_prefix(a));
  snprintf(bn, sizeof bn, "%s.bias", head_prefix(a));
  htensor *w = find_mut(f, wn), *b = find_mut(f, bn);
  if (!w && !b) {
    snprintf(info->head, sizeof info->head, "initialised (the source has no classifier)");
    return MSKX_OK;
  }
  if (!w || !b || w->ndim != 2 || b->ndim != 1 || b->shape[0] != w->shape[0])
    return err_set(e, MSKX_ESHAPE, "%s: the classifier '%s' has no matching weight and bias", what, head_prefix(a));
  int64_t k = w->shape[0], nf = w->shape[1];
  if (k == 1) {
    snprintf(info->head, sizeof info->head, "loaded (one output, a sigmoid)");
  } else if (k == 2) {
    /* softmax([z0, z1])[1] = sigmoid(z1 - z0): one logit, the same probability. */
    for (int64_t j = 0; j < nf; j++) w->data[j] = w->data[nf + j] - w->data[j];
    b->data[0] = b->data[1] - b->data[0];
    w->shape[0] = b->shape[0] = 1;
    snprintf(info->head, sizeof info->head, "two softmax outputs -> one logit (w1 - w0, b1 - b0)");
  } else {
    snprintf(info->head, sizeof info->head, "re-initialised (the source's classifier has %lld outputs)", (long long)k);
    drop_tensor(f, find_mut(f, wn));
    drop_tensor(f, find_mut(f, bn));
  }
  return MSKX_OK;
}

static void info_torchvision(import_info *info, import_format fmt) {
  info->format = fmt;
  info->bn_eps = BN_EPS;
  info->norm = norm_imagenet();
  snprintf(info->preprocessing, sizeof info->preprocessing,
           "torchvision: RGB in [0,1], normalised with ImageNet mean/std");
}

/* ---- PyTorch / torchvision names ---- */

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

int import_map_torch(st_file *in, const arch_spec *arch, const char *what, st_file **out, import_info *info,
                     mskx_err *e) {
  *out = NULL;
  info_torchvision(info, info->format ? info->format : IMPORT_TORCH);
  st_file *f;
  int rc = out_create(in->n_tensors, &f, e);
  for (int i = 0; !rc && i < in->n_tensors; i++) {
    htensor *t = &in->tensors[i];
    char *name = t->name;
    if (!name) continue;
    /* DataParallel / DistributedDataParallel wrap the model as "module". */
    size_t skip = 0;
    while (!strncmp(name + skip, "module.", 7)) skip += 7;
    if (skip) memmove(name, name + skip, strlen(name + skip) + 1);
    if (ends_with(name, ".num_batches_tracked") || !strcmp(name, "num_batches_tracked")) continue;
    if (arch->family->fix_torch_name) arch->family->fix_torch_name(name);
    f->tensors[f->n_tensors++] = *t;
    memset(t, 0, sizeof *t);
  }
  st_free(in);
  if (!rc) rc = st_check_unique(f, what, e);
  if (!rc) rc = apply_head(f, arch, what, info, e);
  if (rc) {
    st_free(f);
    return rc;
  }
  info->n_tensors = f->n_tensors;
  *out = f;
  return MSKX_OK;
}

/* ---- Keras names ---- */

/* Matches s against pattern; captures up to two %d numbers. */
static int match_pattern(const char *pat, const char *s, int cap[2]) {
  int nc = 0;
  while (*pat) {
    if (pat[0] == '%' && pat[1] == 'd') {
      if (*s < '0' || *s > '9' || nc == 2) return 0;
      long v = 0;
      int digits = 0;
      while (*s >= '0' && *s <= '9') {
        if (++digits > 5) return 0;
        v = v * 10 + (*s++ - '0');
      }
      cap[nc++] = (int)v;
      pat += 2;
    } else if (*pat++ != *s++) {
      return 0;
    }
  }
  return *s == 0;
}

/* The rule for a layer path, trying the path without its leading
 * components too (a model nested in another adds its own name in front). */
static const keras_rule *find_rule(const struct keras_map *fam, const char *layer, char *target, size_t n) {
  for (const char *l = layer; l; l = strchr(l, '/') ? strchr(l, '/') + 1 : NULL)
    for (size_t i = 0; i < fam->n_rules; i++) {
      int cap[2] = {0, 0};
      if (!match_pattern(fam->rules[i].pattern, l, cap)) continue;
      const keras_rule *r = &fam->rules[i];
      snprintf(target, n, r->target, cap[0] + r->add[0], cap[1] + r->add[1]);
      return r;
    }
  return NULL;
}

/* Splits "layer/path/var:0" into layer path and variable name. */
static int split_weight_name(const char *full, char *layer, char *var) {
  size_t n = strlen(full);
  if (n >= IMPORT_NAME_MAX) return 0;
  char buf[IMPORT_NAME_MAX];
  memcpy(buf, full, n + 1);
  char *colon = strrchr(buf, ':');
  if (colon && colon > strrchr(buf, '/')) *colon = 0;
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf || !slash[1]) return 0;
  *slash = 0;
  strcpy(layer, buf);
  strcpy(var, slash + 1);
  return 1;
}

static int set_name(htensor *t, const char *prefix, const char *leaf, mskx_err *e) {
  size_t n = strlen(prefix) + strlen(leaf) + 2;
  char *s = malloc(n);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  snprintf(s, n, "%s.%s", prefix, leaf);
  free(t->name);
  t->name = s;
  return MSKX_OK;
}

/* HWIO -> OIHW. */
static int hwio_to_oihw(htensor *t, mskx_err *e) {
  int64_t kh = t->shape[0], kw = t->shape[1], ci = t->shape[2], co = t->shape[3];
  size_t n = (size_t)(kh * kw * ci * co);
  float *o = malloc((n ? n : 1) * sizeof *o);
  if (!o) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int64_t y = 0; y < kh; y++)
    for (int64_t x = 0; x < kw; x++)
      for (int64_t i = 0; i < ci; i++)
        for (int64_t c = 0; c < co; c++) o[((c * ci + i) * kh + y) * kw + x] = t->data[((y * kw + x) * ci + i) * co + c];
  free(t->data);
  t->data = o;
  int64_t s[4] = {co, ci, kh, kw};
  memcpy(t->shape, s, sizeof s);
  return MSKX_OK;
}

/* (in, out) -> (out, in). */
static int transpose2(htensor *t, mskx_err *e) {
  int64_t r = t->shape[0], c = t->shape[1];
  size_t n = (size_t)(r * c);
  float *o = malloc((n ? n : 1) * sizeof *o);
  if (!o) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++) o[j * r + i] = t->data[i * c + j];
  free(t->data);
  t->data = o;
  t->shape[0] = c;
  t->shape[1] = r;
  return MSKX_OK;
}

static int map_keras_weight(htensor *t, const char *layer, const char *var, const keras_rule *r, const char *target,
                            const char *what, mskx_err *e) {
  static const char *const bn_vars[][2] = {
      {"gamma", "weight"}, {"beta", "bias"}, {"moving_mean", "running_mean"}, {"moving_variance", "running_var"}};
  if (r->kind == KR_CONV) {
    if (strcmp(var, "kernel") || t->ndim != 4)
      return err_set(e, MSKX_EUNSUPPORTED, "%s: convolution '%.200s' has an unexpected weight '%.100s' (%d-D)%s", what,
                     layer, var, t->ndim, strcmp(var, "bias") ? "" : ": mskx's DenseNets have no convolution biases");
    int rc = hwio_to_oihw(t, e);
    return rc ? rc : set_name(t, target, "weight", e);
  }
  for (size_t i = 0; i < 4; i++)
    if (!strcmp(var, bn_vars[i][0])) {
      if (t->ndim != 1)
        return err_set(e, MSKX_ESHAPE, "%s: batch norm '%.200s' weight '%s' is not 1-D", what, layer, var);
      return set_name(t, target, bn_vars[i][1], e);
    }
  return err_set(e, MSKX_EUNSUPPORTED, "%s: batch norm '%.200s' has an unexpected weight '%.100s'", what, layer, var);
}

/* Keras ResNet50 (keras/applications/resnet.py) is ResNet v1: the stride of
 * a stage's first block sits on its first 1x1 convolution, and its
 * convolutions have biases. mskx's resnet50 is torchvision's (v1.5, stride
 * on the 3x3), a different function: no exact mapping exists. */
static int refuse_keras_resnet(const st_file *in, const char *what, mskx_err *e) {
  int cap[2];
  for (int i = 0; i < in->n_tensors; i++) {
    char layer[IMPORT_NAME_MAX], var[IMPORT_NAME_MAX];
    if (!in->tensors[i].name || !split_weight_name(in->tensors[i].name, layer, var)) continue;
    const char *l = strrchr(layer, '/') ? strrchr(layer, '/') + 1 : layer;
    if (match_pattern("conv%d_block%d_0_conv", l, cap) || match_pattern("conv%d_block%d_3_conv", l, cap))
      return err_set(e, MSKX_EUNSUPPORTED,
                     "%s: Keras ResNet weights (layer '%.100s'): Keras's ResNet50 is ResNet v1 (stride on the first "
                     "1x1 convolution of a stage, convolution biases), mskx's resnet50 is torchvision's v1.5 (stride "
                     "on the 3x3); the weights cannot be mapped exactly, so they are refused",
                     what, layer);
  }
  return MSKX_OK;
}

/* Batch-norm epsilons and the classifier's activation from model_config. */
typedef struct keras_config {
  double eps_min, eps_max;
  int n_bn;
  const char *head_layer;
  char activation[32];
} keras_config;

static void walk_config(const cJSON *n, keras_config *k) {
  if (cJSON_IsObject(n)) {
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(n, "class_name");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(n, "config");
    if (cJSON_IsString(cls) && cJSON_IsObject(cfg)) {
      const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "epsilon");
      const cJSON *name = cJSON_GetObjectItemCaseSensitive(cfg, "name");
      const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "activation");
      if (!strcmp(cls->valuestring, "BatchNormalization") && cJSON_IsNumber(eps)) {
        if (!k->n_bn++ || eps->valuedouble < k->eps_min) k->eps_min = eps->valuedouble;
        if (k->n_bn == 1 || eps->valuedouble > k->eps_max) k->eps_max = eps->valuedouble;
      }
      if (!strcmp(cls->valuestring, "Dense") && k->head_layer && cJSON_IsString(name) &&
          !strcmp(name->valuestring, k->head_layer) && cJSON_IsString(act))
        snprintf(k->activation, sizeof k->activation, "%s", act->valuestring);
    }
  }
  const cJSON *c;
  if (cJSON_IsObject(n) || cJSON_IsArray(n)) cJSON_ArrayForEach(c, n) walk_config(c, k);
}

static int keras_config_read(const st_file *in, const char *head_layer, const char *what, keras_config *k,
                             import_info *info, mskx_err *e) {
  memset(k, 0, sizeof *k);
  k->head_layer = head_layer;
  info->bn_eps = KERAS_APPS_BN_EPS;
  const char *text = st_meta_get(in, "model_config");
  if (!text) return MSKX_OK;
  cJSON *root = cJSON_Parse(text);
  if (!root) return err_set(e, MSKX_EFORMAT, "%s: model_config is not valid JSON", what);
  walk_config(root, k);
  cJSON_Delete(root);
  if (k->n_bn && k->eps_min != k->eps_max)
    return err_set(e, MSKX_EUNSUPPORTED,
                   "%s: the batch norms use different epsilons (%g to %g); mskx has one epsilon per model", what,
                   k->eps_min, k->eps_max);
  if (k->n_bn && !(k->eps_min > 0 && k->eps_min <= 1))
    return err_set(e, MSKX_EFORMAT, "%s: model_config has a batch-norm epsilon of %g", what, k->eps_min);
  if (k->n_bn) info->bn_eps = (float)k->eps_min;
  return MSKX_OK;
}

int import_map_keras(st_file *in, const arch_spec *arch, const char *what, st_file **out, import_info *info,
                     mskx_err *e) {
  *out = NULL;
  info->format = IMPORT_KERAS;
  info->norm = norm_imagenet();
  const struct keras_map *fam = arch->family->keras;
  st_file *f = NULL;
  int rc = refuse_keras_resnet(in, what, e);
  if (!rc && !fam)
    rc = err_set(e, MSKX_EUNSUPPORTED,
                 "%s: Keras weights can be imported for DenseNets only (arch '%s'; Keras's ResNet50 is ResNet v1, "
                 "mskx's resnet50 is torchvision's v1.5: no exact mapping)",
                 what, arch->name);
  if (!rc) {
    snprintf(info->preprocessing, sizeof info->preprocessing, "%s", fam->preprocessing);
    rc = out_create(in->n_tensors, &f, e);
  }
  char head_layer[IMPORT_NAME_MAX] = "";
  for (int i = 0; !rc && i < in->n_tensors; i++) {
    htensor *t = &in->tensors[i];
    char layer[IMPORT_NAME_MAX], var[IMPORT_NAME_MAX], target[IMPORT_NAME_MAX];
    if (!t->name || !split_weight_name(t->name, layer, var)) {
      rc = err_set(e, MSKX_EFORMAT, "%s: weight name '%.200s' is not <layer>/<variable>", what,
                   t->name ? t->name : "");
      break;
    }
    const keras_rule *r = find_rule(fam, layer, target, sizeof target);
    if (!r) {
      /* A dense layer that no rule names is the classifier ("predictions",
       * or a fine-tuned model's own). */
      int is_dense = (!strcmp(var, "kernel") && t->ndim == 2) || (!strcmp(var, "bias") && t->ndim == 1);
      if (!is_dense) {
        rc = err_set(e, MSKX_EUNSUPPORTED, "%s: Keras weight '%.200s' has no counterpart in %s", what, t->name,
                     arch->name);
        break;
      }
      if (head_layer[0] && strcmp(head_layer, layer)) {
        rc = err_set(e, MSKX_EUNSUPPORTED,
                     "%s: two dense layers ('%.100s' and '%.100s'); mskx's head is one linear layer", what, head_layer,
                     layer);
        break;
      }
      snprintf(head_layer, sizeof head_layer, "%s", layer);
      htensor *dst = &f->tensors[f->n_tensors++];
      *dst = *t;
      memset(t, 0, sizeof *t);
      if (!strcmp(var, "kernel")) {
        rc = transpose2(dst, e);
        if (!rc) rc = set_name(dst, head_prefix(arch), "weight", e);
      } else {
        rc = set_name(dst, head_prefix(arch), "bias", e);
      }
      continue;
    }
    htensor *dst = &f->tensors[f->n_tensors++];
    *dst = *t;
    memset(t, 0, sizeof *t);
    rc = map_keras_weight(dst, layer, var, r, target, what, e);
  }
  keras_config kc;
  if (!rc) rc = keras_config_read(in, head_layer[0] ? head_layer : NULL, what, &kc, info, e);
  st_free(in);
  if (!rc) rc = st_check_unique(f, what, e);
  if (!rc) rc = apply_head(f, arch, what, info, e);
  if (!rc && kc.activation[0] && find_mut(f, "classifier.weight")) {
    /* The head was kept: its activation must be the one the rule assumes. */
    int k2 = strstr(info->head, "two softmax") != NULL;
    if (k2 ? strcmp(kc.activation, "softmax") : strcmp(kc.activation, "sigmoid"))
      rc = err_set(e, MSKX_EUNSUPPORTED,
                   "%s: the classifier '%.100s' has %s outputs with activation '%s'; mskx imports one sigmoid output or "
                   "two softmax outputs",
                   what, head_layer, k2 ? "two" : "one", kc.activation);
  }
  if (rc) {
    st_free(f);
    return rc;
  }
  info->n_tensors = f->n_tensors;
  *out = f;
  return MSKX_OK;
}

/* ---- reading and loading ---- */

int import_read(const char *path, import_format fmt, const arch_spec *arch, st_file **out, import_info *info,
                mskx_err *e) {
  *out = NULL;
  memset(info, 0, sizeof *info);
  import_format found;
  int rc = import_detect(path, &found, e);
  if (rc) return rc;
  if (fmt != IMPORT_AUTO && fmt != found)
    return err_set(e, MSKX_EINVAL, "%s: expected a %s file, but its content is %s", path, import_format_name(fmt),
                   import_format_name(found));
  info->format = found;
  st_file *raw = NULL;
  switch (found) {
    case IMPORT_TORCH:
      rc = pth_read(path, &raw, e);
      return rc ? rc : import_map_torch(raw, arch, path, out, info, e);
    case IMPORT_KERAS:
      rc = kh5_read(path, &raw, e);
      return rc ? rc : import_map_keras(raw, arch, path, out, info, e);
    case IMPORT_SAFETENSORS: {
      float eps = BN_EPS;
      rc = st_read(path, &raw, e);
      if (!rc && model_file_is_quantised(raw))
        rc = err_set(e, MSKX_EUNSUPPORTED,
                     "%s: an int8 (quantised) model cannot be imported or trained from: its weights are rounded to "
                     "8 bits; use the fp32 model it was made from", path);
      if (!rc) rc = model_bn_eps_read(raw, path, &eps, e);
      if (!rc) rc = import_map_torch(raw, arch, path, out, info, e);
      else st_free(raw);
      info->bn_eps = eps; /* a model file made by mskx import keeps its epsilon */
      return rc;
    }
    default: return err_set(e, MSKX_EINTERNAL, "unknown import format");
  }
}

int import_load_net(net *m, const char *path, import_format fmt, float bn_eps_override, import_info *info,
                    mskx_err *e) {
  st_file *f = NULL;
  int rc = import_read(path, fmt, &m->arch, &f, info, e);
  if (rc) return rc;
  /* A classifier left out keeps the network's fresh initialisation. */
  const param_entry *hw = &m->ps.entries[m->head_w], *hb = &m->ps.entries[m->head_b];
  if (!st_find(f, hw->name)) {
    htensor *t = realloc(f->tensors, (size_t)(f->n_tensors + 2) * sizeof *t);
    if (!t) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc) {
      f->tensors = t;
      const param_entry *ents[2] = {hw, hb};
      for (int i = 0; i < 2 && !rc; i++) {
        htensor *d = &f->tensors[f->n_tensors];
        memset(d, 0, sizeof *d);
        d->name = str_dup(ents[i]->name);
        d->data = malloc(ents[i]->numel * sizeof(float));
        if (!d->name || !d->data) {
          htensor_release(d);
          rc = err_set(e, MSKX_ENOMEM, "out of memory");
          break;
        }
        d->ndim = ents[i]->ndim;
        memcpy(d->shape, ents[i]->shape, sizeof ents[i]->shape);
        memcpy(d->data, ps_data(&m->ps, i ? m->head_b : m->head_w), ents[i]->numel * sizeof(float));
        f->n_tensors++;
      }
    }
  }
  /* reinit_head: a mis-shaped auxiliary head (Inception-v3's ImageNet
   * AuxLogits.fc) keeps its fresh initialisation like the classifier. */
  if (!rc) rc = net_load_tensors(m, f, path, 1, e);
  if (!rc) {
    if (bn_eps_override > 0) info->bn_eps = bn_eps_override;
    m->cx.bn_eps = info->bn_eps;
  }
  st_free(f);
  return rc;
}

int import_model(const import_opts *o, import_info *info, mskx_err *e) {
  net *m = NULL;
  /* No engine: the network is only filled and written, never planned. */
  int rc = net_create(o->arch, NULL, o->seed, &m, e);
  int size = o->size > 0 ? o->size : arch_default_size(o->arch);
  if (!rc) {
    int minsz = arch_size_multiple(&m->arch);
    if (size < minsz || size > MODEL_MAX_SIZE)
      rc = err_set(e, MSKX_EINVAL, "--size %d: %s needs %d..%d", size, m->arch.name, minsz, MODEL_MAX_SIZE);
  }
  if (!rc) rc = import_load_net(m, o->in, o->fmt, o->bn_eps, info, e);
  if (!rc) {
    model_meta meta;
    model_meta_default(&meta);
    snprintf(meta.arch, sizeof meta.arch, "%s", m->arch.name);
    meta.size = size;
    meta.norm = info->norm;
    meta.bn_eps = m->cx.bn_eps;
    const char *base = strrchr(o->in, '/') ? strrchr(o->in, '/') + 1 : o->in;
    char source[512];
    snprintf(source, sizeof source, "%s: %s", import_format_name(info->format), base);
    st_meta extra[] = {{"source", source}, {"preprocessing", info->preprocessing}, {"head", info->head}};
    rc = model_save(o->out, m, &meta, NULL, 0, extra, 3, e);
  }
  net_destroy(m);
  return rc;
}
