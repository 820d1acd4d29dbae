/* ONNX export (see onnx_export.h): walks the loaded predictor tree, writes
 * one ONNX file per network with the preprocessing in metadata_props, and
 * for bundles and ensembles a JSON file with the combination rule. */
#include "infer/onnx_export.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/json.h"
#include "core/error.h"
#include "core/util.h"
#include "infer/predictor.h"
#include "io/onnx.h"
#include "models/onnx_graph.h"

#define ONNX_COMBINE_FORMAT "mskx-onnx-combine-1"
#define ONNX_MODEL_FORMAT "mskx-onnx-1"

/* How mskx predict turns an image into the network input, for consumers. */
static const char PREPROCESSING[] =
    "Decode to 8-bit grey: RGB to grey with BT.601 luma round((299 R + 587 G + 114 B) / 1000), 16-bit samples "
    "scaled to 8 bits by round(v * 255 / 65535) (in the same rounding step as the luma), alpha ignored. Scale to "
    "[0,1] by v / 255. Resize to size x size: area averaging when shrinking, bilinear when enlarging; with "
    "keep_aspect=1 the image keeps its aspect ratio and is centred, the shorter side padded with 0. Copy to 3 "
    "channels and normalise channel c as (v - mean[c]) / std[c]. Layout NCHW float32.";

static const char *const METHODS[] = {"mean", "vote", "weighted", "stack"};

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int add_file(onnx_export_files *f, const char *path, mskx_err *e) {
  char **p = realloc(f->paths, (size_t)(f->n + 1) * sizeof *p);
  if (!p) return err_set(e, MSKX_ENOMEM, "out of memory");
  f->paths = p;
  if (!(p[f->n] = str_dup(path))) return err_set(e, MSKX_ENOMEM, "out of memory");
  f->n++;
  return MSKX_OK;
}

void onnx_export_files_free(onnx_export_files *f) {
  for (int i = 0; f && i < f->n; i++) free(f->paths[i]);
  if (f) free(f->paths);
  if (f) memset(f, 0, sizeof *f);
}

/* One network to path. */
static int export_network(const pnode *nd, const char *path, const onnx_export_options *o, mskx_err *e) {
  /* The graph would need QuantizeLinear/QLinearConv nodes with our scales;
   * exporting the dequantised weights as fp32 would silently be another model. */
  if (nd->m->in_scale)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: an int8 (quantised) model cannot be exported to ONNX (no quantised "
                   "ONNX graph is written); export the fp32 model it was made from", nd->path);
  const model_meta *mm = &nd->meta;
  int s = mm->size;
  onnx_graph g = {0};
  int64_t in_dims[4] = {o->batch ? o->batch : -1, 3, s, s}, out_dims[2] = {o->batch ? o->batch : -1, 1};
  onnx_value_info(&g, 0, "input", in_dims, 4, "N");
  int rc = net_onnx_graph(nd->m, &g, "input", "logit", o->fold_bn, e);
  const char *in[1] = {"logit"};
  onnx_node(&g, "Sigmoid", in, 1, "probability", NULL, 0);
  onnx_value_info(&g, 1, "logit", out_dims, 2, "N");
  onnx_value_info(&g, 1, "probability", out_dims, 2, "N");
  char size[16], ka[8], thr[32], mean[96], std[96], fold[8], batch[16];
  snprintf(size, sizeof size, "%d", s);
  snprintf(ka, sizeof ka, "%d", mm->keep_aspect);
  snprintf(thr, sizeof thr, "%.17g", mm->threshold);
  snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", mm->norm.mean[0], mm->norm.mean[1], mm->norm.mean[2]);
  snprintf(std, sizeof std, "%.9g,%.9g,%.9g", mm->norm.std[0], mm->norm.std[1], mm->norm.std[2]);
  snprintf(fold, sizeof fold, "%d", o->fold_bn);
  snprintf(batch, sizeof batch, "%d", o->batch);
  const onnx_kv meta[] = {
      {"mskx.format", ONNX_MODEL_FORMAT},
      {"mskx.version", MSKX_VERSION},
      {"mskx.arch", mm->arch},
      {"mskx.size", size},
      {"mskx.keep_aspect", ka},
      {"mskx.mean", mean},
      {"mskx.std", std},
      {"mskx.channels", "grey replicated to 3 channels, each normalised with its own mean and std"},
      {"mskx.preprocessing", PREPROCESSING},
      {"mskx.threshold", thr},
      {"mskx.decision", "abnormal when the study probability > threshold"},
      {"mskx.study_probability", "mean of the study's image probabilities (mskx predict --agg mean; --agg max: "
                                 "their maximum)"},
      {"mskx.parts", mm->parts},
      {"mskx.outputs", "logit (N,1): the network's pre-sigmoid output; probability (N,1): Sigmoid(logit), P(abnormal)"},
      {"mskx.batch", o->batch ? batch : "dynamic"},
      {"mskx.fold_bn", fold},
      {"mskx.source", base_name(nd->path)},
      {"mskx.model_metadata", nd->meta_json ? nd->meta_json : "{}"},
  };
  if (rc) {
    pb_free(&g.g);
    return err_prefix(e, "%s", nd->path);
  }
  return onnx_write_model(&g, mm->arch, o->opset, meta, (int)(sizeof meta / sizeof meta[0]), path, e);
}

/* Exports the subtree nd; member files are "<stem>.<tag>.onnx". Returns its
 * description for the combination JSON in *out. */
static int export_node(const pnode *nd, const char *stem, const char *tag, const onnx_export_options *o,
                       onnx_export_files *files, cJSON **out, mskx_err *e) {
  cJSON *j = cJSON_CreateObject();
  *out = j;
  if (!j) return err_set(e, MSKX_ENOMEM, "out of memory");
  static const char *const kinds[] = {"model", "bundle", "ensemble"};
  cJSON_AddStringToObject(j, "kind", kinds[nd->kind]);
  cJSON_AddStringToObject(j, "source", base_name(nd->path));
  if (nd->kind == PNODE_MODEL) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s%s%s.onnx", stem, tag[0] ? "." : "", tag) >= sizeof path)
      return err_set(e, MSKX_EINVAL, "output path too long");
    int rc = export_network(nd, path, o, e);
    if (!rc) rc = add_file(files, path, e);
    cJSON_AddStringToObject(j, "onnx", base_name(path));
    cJSON_AddStringToObject(j, "arch", nd->meta.arch);
    cJSON_AddNumberToObject(j, "size", nd->meta.size);
    cJSON_AddNumberToObject(j, "threshold", nd->meta.threshold);
    return rc;
  }
  cJSON *kids = nd->kind == PNODE_BUNDLE ? cJSON_AddObjectToObject(j, "models") : cJSON_AddArrayToObject(j, "members");
  int rc = kids ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < nd->n_children; i++) {
    char t[256];
    const char *own = nd->kind == PNODE_BUNDLE ? (i == nd->dflt ? "default" : nd->part_names[i]) : NULL;
    char num[16];
    snprintf(num, sizeof num, "m%d", i + 1);
    snprintf(t, sizeof t, "%s%s%s", tag, tag[0] ? "." : "", own ? own : num);
    cJSON *c = NULL;
    rc = export_node(&nd->children[i], stem, t, o, files, &c, e);
    if (c && nd->kind == PNODE_ENSEMBLE) cJSON_AddNumberToObject(c, "weight", nd->weight[i]);
    if (c && nd->kind == PNODE_BUNDLE && i == nd->dflt) cJSON_AddItemToObject(j, "default", c);
    else if (c && nd->kind == PNODE_BUNDLE) cJSON_AddItemToObject(kids, own, c);
    else if (c) cJSON_AddItemToArray(kids, c);
  }
  if (nd->kind == PNODE_BUNDLE) {
    cJSON_AddStringToObject(j, "rule", "a study goes to the model of its XR_* part (else to default); that model's "
                                       "threshold decides");
  } else {
    cJSON_AddStringToObject(j, "method", METHODS[nd->method]);
    cJSON_AddNumberToObject(j, "threshold", nd->threshold);
    if (nd->method == ENS_STACK) {
      cJSON *st = cJSON_AddObjectToObject(j, "stacker");
      cJSON_AddItemToObject(st, "coef", cJSON_CreateDoubleArray(nd->coef, nd->n_children));
      cJSON_AddNumberToObject(st, "intercept", nd->intercept);
      cJSON_AddNumberToObject(st, "clamp", STACK_CLAMP);
    }
    static const char *const rules[] = {
        "mean of the members' study probabilities p_i",
        "fraction of members with p_i > that member's own threshold",
        "sum(weight_i * p_i) / sum(weight_i)",
        "sigmoid(intercept + sum(coef_i * logit(clamp(p_i, clamp, 1 - clamp))))"};
    cJSON_AddStringToObject(j, "rule", rules[nd->method]);
  }
  return rc;
}

int onnx_export(const char *model_path, const char *out_path, const onnx_export_options *o, onnx_export_files *files,
                mskx_err *e) {
  memset(files, 0, sizeof *files);
  if (o->opset < ONNX_OPSET_MIN || o->opset > ONNX_OPSET_MAX)
    return err_set(e, MSKX_EINVAL, "opset must be in %d..%d, got %d", ONNX_OPSET_MIN, ONNX_OPSET_MAX, o->opset);
  if (o->batch < 0 || o->batch > ONNX_BATCH_MAX)
    return err_set(e, MSKX_EINVAL, "batch must be in 1..%d (or dynamic), got %d", ONNX_BATCH_MAX, o->batch);
  char stem[4096];
  size_t len = strlen(out_path);
  if (len >= sizeof stem - 64) return err_set(e, MSKX_EINVAL, "output path too long");
  snprintf(stem, sizeof stem, "%s", out_path);
  if (len > 5 && !strcmp(stem + len - 5, ".onnx")) stem[len - 5] = 0;
  engine *eng = NULL;
  pnode root;
  memset(&root, 0, sizeof root);
  int rc = engine_dnnl_create(1, &eng, e);
  if (!rc) rc = pnode_load(&root, model_path, eng, 0, e);
  if (!rc && root.kind == PNODE_MODEL) {
    rc = export_network(&root, out_path, o, e);
    if (!rc) rc = add_file(files, out_path, e);
  } else if (!rc) {
    cJSON *j = NULL;
    rc = export_node(&root, stem, "", o, files, &j, e);
    char path[4200];
    snprintf(path, sizeof path, "%s.json", stem);
    if (!rc) {
      cJSON *top = cJSON_CreateObject();
      cJSON_AddStringToObject(top, "format", ONNX_COMBINE_FORMAT);
      cJSON_AddStringToObject(top, "mskx_version", MSKX_VERSION);
      cJSON_AddStringToObject(top, "image_to_study", "each network's study probability is the mean of its image "
                                                     "probabilities (mskx predict's default --agg mean)");
      cJSON_AddItemToObject(top, "root", j);
      j = NULL;
      rc = json_write_atomic(path, top, e);
      cJSON_Delete(top);
      if (!rc) rc = add_file(files, path, e);
    }
    cJSON_Delete(j);
  }
  pnode_free(&root);
  engine_destroy(eng);
  if (rc) onnx_export_files_free(files);
  return rc;
}
