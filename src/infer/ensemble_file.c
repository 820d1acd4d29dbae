/* Loading the predictor tree: model files, per-part bundles and ensembles
 * (JSON files validated with cJSON), and cloning a tree onto another engine. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/json.h"
#include "core/util.h"
#include "infer/predictor.h"

#define BUNDLE_FORMAT "mskx-bundle-1"
#define ENSEMBLE_FORMAT "mskx-ensemble-1"
/* Bundle and ensemble descriptions are small; refuse anything huge. */
#define DESC_MAX_BYTES (4u << 20)
#define ALLOW_MODEL (1u << PNODE_MODEL)
#define ALLOW_BUNDLE (1u << PNODE_BUNDLE)
#define ALLOW_ALL (ALLOW_MODEL | ALLOW_BUNDLE | (1u << PNODE_ENSEMBLE))

static const char *const kind_names[] = {"model file", "bundle", "ensemble"};

/* What the file looks like from its first bytes: 0 safetensors, 1 JSON. */
static int sniff(const char *path, int *is_json, mskx_err *e) {
  if (path_is_dir(path)) return err_set(e, MSKX_EIO, "%s: is a directory, not a model file", path);
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(e, MSKX_EIO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char b[64];
  size_t n = fread(b, 1, sizeof b, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) return err_set(e, MSKX_EIO, "%s: cannot read", path);
  if (n >= 9 && b[8] == '{') {
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | b[i];
    /* A JSON text never has the NUL bytes of a small little-endian length. */
    if (len >= 2 && len < (1ull << 32)) {
      *is_json = 0;
      return MSKX_OK;
    }
  }
  size_t i = 0;
  while (i < n && isspace(b[i])) i++;
  if (i < n && b[i] == '{') {
    *is_json = 1;
    return MSKX_OK;
  }
  return err_set(e, MSKX_EFORMAT, "%s: not an mskx model, bundle or ensemble", path);
}

/* The folder of path joined with rel (rel unchanged when absolute). */
static int resolve(const char *base, const char *rel, char *out, size_t n, mskx_err *e) {
  if (rel[0] == '/') {
    if (strlen(rel) >= n) return err_set(e, MSKX_EINVAL, "path too long: %s", rel);
    strcpy(out, rel);
    return MSKX_OK;
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", base);
  char *slash = strrchr(dir, '/');
  if (!slash) return path_join(out, n, ".", rel, e);
  if (slash == dir) slash[1] = 0;
  else *slash = 0;
  return path_join(out, n, dir, rel, e);
}

static char *meta_to_json(const st_file *f) {
  cJSON *o = cJSON_CreateObject();
  for (int i = 0; o && i < f->n_meta; i++) {
    const char *k = f->meta[i].key, *v = f->meta[i].value;
    cJSON *parsed = !strcmp(k, "metrics") ? cJSON_Parse(v) : NULL;
    cJSON_AddItemToObject(o, k, parsed ? parsed : cJSON_CreateString(v));
  }
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return s;
}

static int load_model(pnode *nd, const char *path, engine *eng, mskx_err *e) {
  st_file *f = NULL;
  int rc = model_load(path, eng, &nd->m, &nd->meta, &f, e);
  if (rc) return rc;
  nd->kind = PNODE_MODEL;
  nd->meta_json = meta_to_json(f);
  st_free(f);
  if (!nd->meta_json) return err_set(e, MSKX_ENOMEM, "out of memory");
  return MSKX_OK;
}

static int load_child(pnode *parent, int idx, const char *file, const char *field, const char *rel, engine *eng,
                      unsigned allow, mskx_err *e) {
  char full[4096];
  int rc = resolve(file, rel, full, sizeof full, e);
  if (!rc) rc = pnode_load(&parent->children[idx], full, eng, allow, e);
  if (rc) err_prefix(e, "%s: %s", file, field);
  return rc;
}

static int load_bundle(pnode *nd, const char *file, const cJSON *root, engine *eng, mskx_err *e) {
  const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
  const cJSON *dflt = cJSON_GetObjectItemCaseSensitive(root, "default");
  if (!cJSON_IsObject(models)) return err_set(e, MSKX_EFORMAT, "%s: 'models' must be an object of part -> path", file);
  if (dflt && !cJSON_IsNull(dflt) && !(cJSON_IsString(dflt) && dflt->valuestring[0]))
    return err_set(e, MSKX_EFORMAT, "%s: 'default' must be a path string", file);
  int has_default = dflt && cJSON_IsString(dflt);
  int n = cJSON_GetArraySize(models);
  if (n + has_default == 0) return err_set(e, MSKX_EFORMAT, "%s: 'models' is empty and there is no 'default'", file);
  nd->kind = PNODE_BUNDLE;
  nd->dflt = -1;
  nd->children = calloc((size_t)(n + has_default), sizeof *nd->children);
  nd->part_names = calloc((size_t)(n + has_default), sizeof *nd->part_names);
  if (!nd->children || !nd->part_names) return err_set(e, MSKX_ENOMEM, "out of memory");
  const cJSON *it;
  cJSON_ArrayForEach(it, models) {
    int i = nd->n_children;
    char field[160];
    snprintf(field, sizeof field, "models.%.100s", it->string);
    if (!part_canonical(it->string, nd->part_names[i]))
      return err_set(e, MSKX_EFORMAT, "%s: %s: not a body part name (expected e.g. XR_WRIST)", file, field);
    for (int j = 0; j < i; j++)
      if (!strcmp(nd->part_names[j], nd->part_names[i]))
        return err_set(e, MSKX_EFORMAT, "%s: part %s appears twice in 'models'", file, nd->part_names[i]);
    if (!cJSON_IsString(it) || !it->valuestring[0])
      return err_set(e, MSKX_EFORMAT, "%s: %s must be a path string", file, field);
    nd->n_children++;
    int rc = load_child(nd, i, file, field, it->valuestring, eng, ALLOW_MODEL, e);
    if (rc) return rc;
  }
  if (has_default) {
    nd->dflt = nd->n_children++;
    return load_child(nd, nd->dflt, file, "default", dflt->valuestring, eng, ALLOW_MODEL, e);
  }
  return MSKX_OK;
}

static int get_number(const cJSON *o, const char *key, const char *file, const char *where, double lo, double hi,
                      double dflt, double *out, mskx_err *e) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) {
    if (isnan(dflt)) return err_set(e, MSKX_EFORMAT, "%s: %s'%s' is missing", file, where, key);
    *out = dflt;
    return MSKX_OK;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
    return err_set(e, MSKX_EFORMAT, "%s: %s'%s' must be a number in [%g, %g]", file, where, key, lo, hi);
  *out = v->valuedouble;
  return MSKX_OK;
}

static int load_stacker(pnode *nd, const char *file, const cJSON *root, mskx_err *e) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stacker");
  if (!cJSON_IsObject(st)) return err_set(e, MSKX_EFORMAT, "%s: method 'stack' needs a 'stacker' object", file);
  const cJSON *coef = cJSON_GetObjectItemCaseSensitive(st, "coef");
  if (!cJSON_IsArray(coef) || cJSON_GetArraySize(coef) != nd->n_children)
    return err_set(e, MSKX_EFORMAT, "%s: stacker.coef must be an array of %d numbers (one per member)", file,
                   nd->n_children);
  int i = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, coef) {
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble))
      return err_set(e, MSKX_EFORMAT, "%s: stacker.coef[%d] is not a finite number", file, i);
    nd->coef[i++] = c->valuedouble;
  }
  return get_number(st, "intercept", file, "stacker.", -1e6, 1e6, NAN, &nd->intercept, e);
}

/* One of the stacker's arrays of n finite numbers (positive ones with pos). */
static int get_array(const cJSON *st, const char *key, const char *file, int n, int pos, double *out, mskx_err *e) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(st, key);
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
    return err_set(e, MSKX_EFORMAT, "%s: stacker.%s must be an array of %d numbers", file, key, n);
  int i = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, a) {
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble) || (pos && !(c->valuedouble > 0)))
      return err_set(e, MSKX_EFORMAT, "%s: stacker.%s[%d] is not a finite%s number", file, key, i,
                     pos ? " positive" : "");
    out[i++] = c->valuedouble;
  }
  return MSKX_OK;
}

/* stack-features: the widths must match the members' classifiers, so that a
 * member replaced by another architecture is refused instead of misread. */
static int load_feature_stacker(pnode *nd, const char *file, const cJSON *root, mskx_err *e) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stacker");
  if (!cJSON_IsObject(st)) return err_set(e, MSKX_EFORMAT, "%s: method 'stack-features' needs a 'stacker' object", file);
  int m = nd->n_children, D = 0;
  double *dims = calloc((size_t)m, sizeof *dims);
  if (!dims) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = get_array(st, "dims", file, m, 1, dims, e);
  for (int i = 0; !rc && i < m; i++) {
    int want = pnode_feature_dim(&nd->children[i]);
    if (dims[i] != want)
      rc = err_set(e, MSKX_EFORMAT, "%s: stacker.dims[%d] is %g but member %d has %d features", file, i, dims[i], i + 1,
                   want);
    D += want;
  }
  free(dims);
  if (rc) return rc;
  nd->n_feat = D;
  free(nd->coef);
  nd->coef = calloc((size_t)D, sizeof *nd->coef);
  nd->feat_mean = calloc((size_t)D, sizeof *nd->feat_mean);
  nd->feat_scale = calloc((size_t)D, sizeof *nd->feat_scale);
  if (!nd->coef || !nd->feat_mean || !nd->feat_scale) return err_set(e, MSKX_ENOMEM, "out of memory");
  if ((rc = get_array(st, "coef", file, D, 0, nd->coef, e)) || (rc = get_array(st, "mean", file, D, 0, nd->feat_mean, e)) ||
      (rc = get_array(st, "scale", file, D, 1, nd->feat_scale, e)))
    return rc;
  return get_number(st, "intercept", file, "stacker.", -1e6, 1e6, NAN, &nd->intercept, e);
}

static int load_ensemble(pnode *nd, const char *file, const cJSON *root, engine *eng, mskx_err *e) {
  const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
  const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
  nd->kind = PNODE_ENSEMBLE;
  int mi = -1;
  for (int i = 0; i < ENS_METHODS && cJSON_IsString(method); i++)
    if (!strcmp(method->valuestring, ens_method_names[i])) mi = i;
  if (mi < 0)
    return err_set(e, MSKX_EFORMAT, "%s: 'method' must be one of mean, vote, weighted, stack, stack-features", file);
  nd->method = (ens_method)mi;
  int rc = get_number(root, "threshold", file, "", 0, 1, MODEL_DEFAULT_THRESHOLD, &nd->threshold, e);
  if (rc) return rc;
  int n = cJSON_GetArraySize(members);
  if (!cJSON_IsArray(members) || n < 1)
    return err_set(e, MSKX_EFORMAT, "%s: 'members' must be a non-empty array of {\"path\": ..., \"weight\": ...}", file);
  nd->children = calloc((size_t)n, sizeof *nd->children);
  nd->weight = calloc((size_t)n, sizeof *nd->weight);
  nd->coef = calloc((size_t)n, sizeof *nd->coef);
  if (!nd->children || !nd->weight || !nd->coef) return err_set(e, MSKX_ENOMEM, "out of memory");
  double wsum = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, members) {
    int i = nd->n_children;
    char field[48];
    snprintf(field, sizeof field, "members[%d]", i);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "path");
    if (!cJSON_IsObject(m) || !cJSON_IsString(p) || !p->valuestring[0])
      return err_set(e, MSKX_EFORMAT, "%s: %s must be an object with a 'path' string", file, field);
    char where[64];
    snprintf(where, sizeof where, "%s.", field);
    if ((rc = get_number(m, "weight", file, where, 0, 1e6, 1.0, &nd->weight[i], e))) return rc;
    wsum += nd->weight[i];
    nd->n_children++;
    /* Features are a model's: stack-features members are model files. */
    unsigned allow = nd->method == ENS_STACK_FEATURES ? ALLOW_MODEL : ALLOW_MODEL | ALLOW_BUNDLE;
    if ((rc = load_child(nd, i, file, field, p->valuestring, eng, allow, e))) return rc;
  }
  if (nd->method == ENS_WEIGHTED && !(wsum > 0))
    return err_set(e, MSKX_EFORMAT, "%s: method 'weighted' needs a positive total weight", file);
  if (nd->method == ENS_STACK_FEATURES) return load_feature_stacker(nd, file, root, e);
  return nd->method == ENS_STACK ? load_stacker(nd, file, root, e) : MSKX_OK;
}

/* Reads and parses a bundle or ensemble description; a syntax error names its line. */
static int read_json(const char *path, cJSON **out, mskx_err *e) {
  unsigned char *text = NULL;
  size_t len = 0;
  *out = NULL;
  int rc = file_read_all(path, DESC_MAX_BYTES, &text, &len, e);
  if (rc) return rc;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)text, len, &end, 0);
  if (!root) {
    int line = 1;
    for (const char *c = (const char *)text; end && c < end && c < (const char *)text + len; c++) line += *c == '\n';
    free(text);
    return err_set(e, MSKX_EFORMAT, "%s:%d: malformed JSON", path, line);
  }
  free(text);
  *out = root;
  return MSKX_OK;
}

static int load_json(pnode *nd, const char *path, engine *eng, unsigned allow, mskx_err *e) {
  cJSON *root = NULL;
  int rc = read_json(path, &root, e);
  if (rc) return rc;
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
  int kind = -1;
  if (cJSON_IsObject(root) && cJSON_IsString(fmt)) {
    if (!strcmp(fmt->valuestring, BUNDLE_FORMAT)) kind = PNODE_BUNDLE;
    if (!strcmp(fmt->valuestring, ENSEMBLE_FORMAT)) kind = PNODE_ENSEMBLE;
  }
  if (kind < 0)
    rc = err_set(e, MSKX_EFORMAT, "%s: not an mskx model, bundle or ensemble (JSON 'format' is not '%s' or '%s')",
                 path, BUNDLE_FORMAT, ENSEMBLE_FORMAT);
  else if (!(allow & (1u << kind)))
    rc = err_set(e, MSKX_EUNSUPPORTED, "%s: a %s cannot be a member here (bundles hold model files; ensembles hold "
                 "model files and bundles)", path, kind_names[kind]);
  else if (kind == PNODE_BUNDLE)
    rc = load_bundle(nd, path, root, eng, e);
  else
    rc = load_ensemble(nd, path, root, eng, e);
  cJSON_Delete(root);
  return rc;
}

int pnode_load(pnode *node, const char *path, engine *eng, unsigned allow, mskx_err *e) {
  memset(node, 0, sizeof *node);
  node->dflt = -1;
  node->path = str_dup(path);
  if (!node->path) return err_set(e, MSKX_ENOMEM, "out of memory");
  int is_json = 0;
  int rc = sniff(path, &is_json, e);
  if (!rc) rc = is_json ? load_json(node, path, eng, allow ? allow : ALLOW_ALL, e) : load_model(node, path, eng, e);
  return rc;
}

void pnode_free(pnode *node) {
  if (!node) return;
  for (int i = 0; i < node->n_children; i++) pnode_free(&node->children[i]);
  free(node->children);
  free(node->part_names);
  free(node->weight);
  free(node->coef);
  free(node->feat_mean);
  free(node->feat_scale);
  net_destroy(node->m);
  free(node->meta_json);
  free(node->path);
  memset(node, 0, sizeof *node);
}

static void *dup_mem(const void *p, size_t n) {
  if (!p || !n) return NULL;
  void *q = malloc(n);
  if (q) memcpy(q, p, n);
  return q;
}

int pnode_net_copy(const pnode *model, engine *eng, net **out, mskx_err *e) {
  *out = NULL;
  net *c = NULL;
  int rc = net_create(model->meta.arch, eng, 0, &c, e);
  if (rc) return rc;
  /* net_copy_weights carries what the loaded file set beyond the arch's own
   * layers: the batch-norm epsilon, Inception-v3's transform_input (a copy
   * without it computed other probabilities) and an int8 model's scales. */
  if ((rc = net_copy_weights(c, model->m, e))) {
    net_destroy(c);
    return rc;
  }
  *out = c;
  return MSKX_OK;
}

int pnode_clone(const pnode *src, pnode *dst, engine *eng, mskx_err *e) {
  *dst = *src;
  dst->path = str_dup(src->path);
  dst->meta_json = src->meta_json ? str_dup(src->meta_json) : NULL;
  size_t nc = (size_t)src->n_children;
  dst->part_names = dup_mem(src->part_names, nc * sizeof *src->part_names);
  dst->weight = dup_mem(src->weight, nc * sizeof *src->weight);
  size_t ncoef = src->n_feat ? (size_t)src->n_feat : nc, nf = (size_t)src->n_feat;
  dst->coef = dup_mem(src->coef, ncoef * sizeof *src->coef);
  dst->feat_mean = dup_mem(src->feat_mean, nf * sizeof *src->feat_mean);
  dst->feat_scale = dup_mem(src->feat_scale, nf * sizeof *src->feat_scale);
  dst->children = nc ? calloc(nc, sizeof *dst->children) : NULL;
  dst->m = NULL;
  dst->n_children = 0;
  if (!dst->path || (src->meta_json && !dst->meta_json) || (src->part_names && !dst->part_names) ||
      (src->weight && !dst->weight) || (src->coef && !dst->coef) || (nf && (!dst->feat_mean || !dst->feat_scale)) ||
      (nc && !dst->children))
    return err_set(e, MSKX_ENOMEM, "out of memory");
  if (src->m) {
    int rc = pnode_net_copy(src, eng, &dst->m, e);
    if (rc) return rc;
  }
  for (size_t i = 0; i < nc; i++) {
    dst->n_children++;
    int rc = pnode_clone(&src->children[i], &dst->children[i], eng, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

/* ---- description (mskx_model_info) ---- */

static cJSON *node_json(const pnode *nd) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "kind", nd->kind == PNODE_MODEL ? "model" : kind_names[nd->kind]);
  cJSON_AddStringToObject(o, "path", nd->path);
  if (nd->kind == PNODE_MODEL) {
    cJSON *md = cJSON_Parse(nd->meta_json);
    if (md) cJSON_AddItemToObject(o, "metadata", md);
  } else if (nd->kind == PNODE_BUNDLE) {
    cJSON *models = cJSON_AddObjectToObject(o, "models");
    for (int i = 0; models && i < nd->n_children; i++) {
      cJSON *c = node_json(&nd->children[i]);
      if (i == nd->dflt) cJSON_AddItemToObject(o, "default", c);
      else cJSON_AddItemToObject(models, nd->part_names[i], c);
    }
  } else {
    cJSON_AddStringToObject(o, "method", ens_method_names[nd->method]);
    cJSON_AddNumberToObject(o, "threshold", nd->threshold);
    cJSON *members = cJSON_AddArrayToObject(o, "members");
    for (int i = 0; members && i < nd->n_children; i++) {
      cJSON *c = node_json(&nd->children[i]);
      if (c) cJSON_AddNumberToObject(c, "weight", nd->weight[i]);
      cJSON_AddItemToArray(members, c);
    }
    if (nd->method == ENS_STACK) {
      cJSON *st = cJSON_AddObjectToObject(o, "stacker");
      cJSON_AddItemToObject(st, "coef", cJSON_CreateDoubleArray(nd->coef, nd->n_children));
      cJSON_AddNumberToObject(st, "intercept", nd->intercept);
    }
    if (nd->method == ENS_STACK_FEATURES) {
      /* The fitted arrays are long; the description gives their sizes. */
      cJSON *st = cJSON_AddObjectToObject(o, "stacker");
      cJSON_AddNumberToObject(st, "features", nd->n_feat);
      cJSON_AddNumberToObject(st, "intercept", nd->intercept);
    }
  }
  return o;
}

/* Appends item to a comma list unless already present. */
static void list_add(char *list, size_t n, const char *item) {
  size_t len = strlen(item), at = 0;
  for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
    if (strcspn(p, ",") == len && !strncmp(p, item, len)) return;
    at++;
  }
  snprintf(list + strlen(list), n - strlen(list), "%s%s", at ? "," : "", item);
}

typedef struct desc_acc {
  predictor_info *info;
  int size_mixed, all_parts;
} desc_acc;

static void describe_models(const pnode *nd, desc_acc *a) {
  if (nd->kind != PNODE_MODEL) {
    for (int i = 0; i < nd->n_children; i++) describe_models(&nd->children[i], a);
    return;
  }
  predictor_info *in = a->info;
  list_add(in->arch, sizeof in->arch, nd->meta.arch);
  if (in->size == 0 && !a->size_mixed) in->size = nd->meta.size;
  else if (in->size != nd->meta.size) a->size_mixed = 1;
}

/* Parts a node serves; sets *all when it serves any part. */
static void describe_parts(const pnode *nd, char *list, size_t n, int *all) {
  if (nd->kind == PNODE_MODEL) {
    if (!strcmp(nd->meta.parts, "all") || !nd->meta.parts[0]) *all = 1;
    else list_add(list, n, nd->meta.parts);
  } else if (nd->kind == PNODE_BUNDLE) {
    for (int i = 0; i < nd->n_children; i++)
      if (i != nd->dflt) list_add(list, n, nd->part_names[i]);
    if (nd->dflt >= 0) *all = 1;
  } else {
    for (int i = 0; i < nd->n_children; i++) describe_parts(&nd->children[i], list, n, all);
  }
}

int pnode_describe(const pnode *root, predictor_info *info, mskx_err *e) {
  free(info->metadata_json);
  memset(info, 0, sizeof *info);
  info->kind = root->kind;
  info->n_members = root->kind == PNODE_MODEL ? 1 : root->n_children;
  info->method = root->kind == PNODE_ENSEMBLE ? ens_method_names[root->method] : "";
  desc_acc a = {info, 0, 0};
  describe_models(root, &a);
  if (a.size_mixed) info->size = 0;
  int all = 0;
  describe_parts(root, info->parts, sizeof info->parts, &all);
  if (root->kind == PNODE_BUNDLE && root->dflt >= 0) list_add(info->parts, sizeof info->parts, "default");
  else if (all || !info->parts[0]) snprintf(info->parts, sizeof info->parts, "all");
  if (root->kind == PNODE_MODEL) info->threshold = root->meta.threshold;
  else if (root->kind == PNODE_ENSEMBLE) info->threshold = root->threshold;
  else {
    info->threshold = root->children[0].meta.threshold;
    for (int i = 1; i < root->n_children; i++)
      if (root->children[i].meta.threshold != info->threshold) info->threshold = -1;
  }
  cJSON *j = root->kind == PNODE_MODEL ? cJSON_Parse(root->meta_json) : node_json(root);
  info->metadata_json = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (!info->metadata_json) return err_set(e, MSKX_ENOMEM, "out of memory");
  return MSKX_OK;
}

int ensemble_set_threshold(const char *path, double threshold, mskx_err *e) {
  if (!(threshold >= 0 && threshold <= 1)) return err_set(e, MSKX_EINVAL, "threshold must be in [0, 1]");
  cJSON *root = NULL;
  int rc = read_json(path, &root, e);
  if (rc) return rc;
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
  cJSON *num = NULL;
  if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, ENSEMBLE_FORMAT))
    rc = err_set(e, MSKX_EFORMAT, "%s: not an ensemble (JSON 'format' is not '%s')", path, ENSEMBLE_FORMAT);
  else if (!(num = cJSON_CreateNumber(threshold)))
    rc = err_set(e, MSKX_ENOMEM, "out of memory");
  else if (cJSON_GetObjectItemCaseSensitive(root, "threshold"))
    cJSON_ReplaceItemInObjectCaseSensitive(root, "threshold", num);
  else
    cJSON_AddItemToObject(root, "threshold", num);
  if (!rc) rc = json_write_atomic(path, root, e);
  cJSON_Delete(root);
  return rc;
}
