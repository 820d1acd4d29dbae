/* The best candidate per body part (see bundle_select.h): candidates' stored
 * or computed validation figures per part, the choice, and the bundle file
 * with its "selection" record (read back for the evaluation report). */
#include "eval/bundle_select.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/error.h"
#include "core/util.h"
#include "data/dataset.h"
#include "eval/ensemble_fit.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"

#define BUNDLE_FORMAT "mskx-bundle-1"
#define BUNDLE_MAX_BYTES (4u << 20)

static const char *const sel_names[] = {"kappa", "auc", "loss"};

const char *sel_metric_name(sel_metric m) { return sel_names[m]; }

int sel_metric_parse(const char *s, sel_metric *m, mskx_err *e) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, sel_names[i])) {
      *m = (sel_metric)i;
      return MSKX_OK;
    }
  return err_set(e, MSKX_EINVAL, "--select %s: expected kappa, auc or loss", s);
}

static int lower_is_better(sel_metric m) { return m == SEL_LOSS; }

void bundle_selection_free(bundle_selection *s) {
  if (!s) return;
  for (int i = 0; i < s->n_cand; i++) {
    free(s->cand_path ? s->cand_path[i] : NULL);
    free(s->cand_kind ? s->cand_kind[i] : NULL);
  }
  for (int i = 0; s->cells && i < SELECT_MAX_PARTS * s->n_cand; i++) free(s->cells[i].model);
  for (int i = 0; s->why && i < SELECT_MAX_PARTS; i++) free(s->why[i]);
  free(s->cand_path);
  free(s->cand_kind);
  free(s->parts);
  free(s->cells);
  free(s->chosen);
  free(s->why);
  free(s->data);
  free(s);
}

static bundle_selection *selection_alloc(int n_cand) {
  bundle_selection *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->n_cand = n_cand;
  s->cand_path = calloc((size_t)n_cand, sizeof *s->cand_path);
  s->cand_kind = calloc((size_t)n_cand, sizeof *s->cand_kind);
  s->parts = calloc(SELECT_MAX_PARTS, sizeof *s->parts);
  s->cells = calloc((size_t)SELECT_MAX_PARTS * (size_t)n_cand, sizeof *s->cells);
  s->chosen = calloc(SELECT_MAX_PARTS, sizeof *s->chosen);
  s->why = calloc(SELECT_MAX_PARTS, sizeof *s->why);
  if (!s->cand_path || !s->cand_kind || !s->parts || !s->cells || !s->chosen || !s->why) {
    bundle_selection_free(s);
    return NULL;
  }
  for (int i = 0; i < SELECT_MAX_PARTS * n_cand; i++) s->cells[i].value = NAN;
  return s;
}

static sel_cell *cell(bundle_selection *s, int part, int cand) { return &s->cells[part * s->n_cand + cand]; }

/* Index of part (added when new), -1 when the table is full. */
static int part_index(bundle_selection *s, const char *name) {
  char canon[PART_NAME_MAX];
  if (!part_canonical(name, canon)) snprintf(canon, sizeof canon, "%s", name);
  for (int i = 0; i < s->n_parts; i++)
    if (!strcmp(s->parts[i], canon)) return i;
  if (s->n_parts == SELECT_MAX_PARTS) return -1;
  snprintf(s->parts[s->n_parts], PART_NAME_MAX, "%s", canon);
  return s->n_parts++;
}

/* A run folder's model: a per-part run's bundle.json, else best.safetensors. */
static int resolve_candidate(const char *path, char *file, size_t n, const char **kind, mskx_err *e) {
  if (!path_is_dir(path)) {
    if (!path_exists(path)) return err_set(e, MSKX_EIO, "%s: no such file or folder", path);
    if (strlen(path) >= n) return err_set(e, MSKX_EINVAL, "%s: path too long", path);
    strcpy(file, path);
    *kind = NULL;  /* from the file's contents */
    return MSKX_OK;
  }
  int rc = path_join(file, n, path, "bundle.json", e);
  if (!rc && path_exists(file)) {
    *kind = "per-part run";
    return MSKX_OK;
  }
  if (!rc) rc = path_join(file, n, path, "best.safetensors", e);
  if (!rc && !path_exists(file))
    rc = err_set(e, MSKX_EIO, "%s: a folder without bundle.json or best.safetensors (not a training run)", path);
  *kind = "run";
  return rc;
}

/* The model node that serves part in a candidate's tree, or NULL. */
static const pnode *serving(const pnode *root, const char *part) {
  if (root->kind == PNODE_MODEL) return root;
  char canon[PART_NAME_MAX];
  if (!part_canonical(part, canon)) return NULL;
  for (int i = 0; i < root->n_children; i++)
    if (i != root->dflt && !strcmp(root->part_names[i], canon)) return &root->children[i];
  return root->dflt >= 0 ? &root->children[root->dflt] : NULL;
}

/* The figure a model's metadata stores for part ("metrics".parts.P.kappa|auc). */
static double stored_figure(const pnode *m, const char *part, sel_metric metric) {
  if (metric == SEL_LOSS) return NAN;
  cJSON *o = cJSON_Parse(m->meta.metrics);
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(o, "parts");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(parts, part);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, sel_names[metric]);
  double r = cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
  cJSON_Delete(o);
  return r;
}

/* Parts a candidate can serve without data: its bundle's parts and every
 * part its models' stored metrics name. */
static int add_known_parts(bundle_selection *s, const pnode *root, mskx_err *e) {
  int nodes = root->kind == PNODE_BUNDLE ? root->n_children : 1;
  for (int i = 0; i < nodes; i++) {
    const pnode *m = root->kind == PNODE_BUNDLE ? &root->children[i] : root;
    if (root->kind == PNODE_BUNDLE && i != root->dflt && part_index(s, root->part_names[i]) < 0)
      return err_set(e, MSKX_EUNSUPPORTED, "more than %d parts", SELECT_MAX_PARTS);
    cJSON *o = cJSON_Parse(m->meta.metrics);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "parts")) {
      if (it->string && part_index(s, it->string) < 0) {
        cJSON_Delete(o);
        return err_set(e, MSKX_EUNSUPPORTED, "more than %d parts", SELECT_MAX_PARTS);
      }
    }
    cJSON_Delete(o);
  }
  return MSKX_OK;
}

/* The valid split restricted to the parts in keep (shallow: strings shared
 * with d; studies and images re-indexed). */
static int filtered_dataset(const dataset *d, const int *keep, dataset *out, mskx_err *e) {
  *out = *d;
  const ds_split *v = &d->valid;
  ds_study *st = malloc(((size_t)v->n_studies + 1) * sizeof *st);
  ds_image *im = malloc(((size_t)v->n_images + 1) * sizeof *im);
  if (!st || !im) {
    free(st);
    free(im);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  int ns = 0, ni = 0;
  for (int i = 0; i < v->n_studies; i++) {
    if (v->studies[i].part >= SELECT_MAX_PARTS || !keep[v->studies[i].part]) continue;
    st[ns] = v->studies[i];
    st[ns].first_image = ni;
    for (int k = 0; k < v->studies[i].n_images; k++) {
      im[ni] = v->images[v->studies[i].first_image + k];
      im[ni++].study = ns;
    }
    ns++;
  }
  out->valid.studies = st;
  out->valid.n_studies = ns;
  out->valid.images = im;
  out->valid.n_images = ni;
  return MSKX_OK;
}

/* The candidate's figures on data's validation split, per part, into cells
 * that are not stored (all with recompute). */
static int compute_figures(bundle_selection *s, int c, predictor *p, const dataset *d,
                           const bundle_select_options *o, mskx_err *e) {
  int keep[SELECT_MAX_PARTS] = {0}, any = 0;
  for (int k = 0; k < d->n_parts && k < SELECT_MAX_PARTS; k++) {
    keep[k] = serving(&p->root, d->parts[k]) != NULL;
    any |= keep[k];
  }
  if (!any) return MSKX_OK;
  dataset sub;
  int rc = filtered_dataset(d, keep, &sub, e);
  if (rc) return rc;
  eval_run *run = NULL;
  eval_config ec;
  eval_config_default(&ec);
  ec.split = DS_VALID;
  ec.decode_threads = o->decode_threads;
  if (sub.valid.n_studies) rc = eval_run_split(p, &sub, &ec, &run, e);
  for (int k = 0; !rc && run && k < d->n_parts; k++) {
    if (!keep[k]) continue;
    int n = 0, y[2] = {0, 0};
    double loss = 0;
    confusion cm = {0, 0, 0, 0};
    double *prob = malloc(((size_t)run->n_studies + 1) * sizeof *prob);
    int *lab = malloc(((size_t)run->n_studies + 1) * sizeof *lab);
    if (!prob || !lab) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < run->n_studies; i++) {
      const eval_study *es = &run->studies[i];
      if (!es->ok || es->ds->part != k) continue;
      int l = es->ds->label;
      double q = fmin(fmax(es->probability, SELECT_LOSS_CLAMP), 1 - SELECT_LOSS_CLAMP);
      loss -= l ? log(q) : log(1 - q);
      prob[n] = es->probability;
      lab[n++] = l;
      y[l]++;
      if (l) es->abnormal ? cm.tp++ : cm.fn++;
      else es->abnormal ? cm.fp++ : cm.tn++;
    }
    double v = NAN;
    if (!rc && n > 0) {
      if (o->metric == SEL_KAPPA) v = metric_kappa(&cm);
      else if (o->metric == SEL_LOSS) v = loss / n;
      else if (y[0] && y[1] && roc_auc(lab, prob, n, &v, e)) rc = e->code;
    }
    free(prob);
    free(lab);
    int pi = rc ? 0 : part_index(s, d->parts[k]);
    if (pi < 0) rc = err_set(e, MSKX_EUNSUPPORTED, "more than %d parts", SELECT_MAX_PARTS);
    if (rc || !n) continue;
    sel_cell *x = cell(s, pi, c);
    if (x->source == SEL_STORED && !o->recompute) continue;
    x->value = v;
    x->source = SEL_COMPUTED;
  }
  eval_run_free(run);
  if (sub.valid.studies != d->valid.studies) {
    free(sub.valid.studies);
    free(sub.valid.images);
  }
  return rc;
}

/* Every figure of one candidate. */
static int assess(bundle_selection *s, int c, const char *path, const dataset *d, const bundle_select_options *o,
                  mskx_err *e) {
  char file[4096];
  const char *kind;
  int rc = resolve_candidate(path, file, sizeof file, &kind, e);
  predictor *p = NULL;
  if (!rc) rc = predictor_load(file, &o->po, &p, e);
  if (rc) return err_prefix(e, "candidate %s", path);
  if (p->root.kind == PNODE_ENSEMBLE) {
    predictor_free(p);
    return err_set(e, MSKX_EUNSUPPORTED, "candidate %s: an ensemble cannot serve as a bundle's member (bundles hold "
                   "model files); give its members, or a bundle", path);
  }
  s->cand_path[c] = str_dup(path);
  s->cand_kind[c] = str_dup(kind ? kind : p->root.kind == PNODE_MODEL ? "model" : "bundle");
  if (!s->cand_path[c] || !s->cand_kind[c]) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = add_known_parts(s, &p->root, e);
  for (int k = 0; !rc && d && k < d->n_parts; k++)
    if (part_index(s, d->parts[k]) < 0) rc = err_set(e, MSKX_EUNSUPPORTED, "more than %d parts", SELECT_MAX_PARTS);
  int missing = 0;
  for (int k = 0; !rc && k < s->n_parts; k++) {
    const pnode *m = serving(&p->root, s->parts[k]);
    if (!m) continue;
    sel_cell *x = cell(s, k, c);
    char *abs = realpath(m->path, NULL);
    x->model = abs ? abs : str_dup(m->path);
    if (!x->model) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    x->value = o->recompute ? NAN : stored_figure(m, s->parts[k], o->metric);
    x->source = isfinite(x->value) ? SEL_STORED : SEL_NONE;
    missing |= x->source == SEL_NONE;
  }
  if (!rc && d && (missing || o->recompute)) rc = compute_figures(s, c, p, d, o, e);
  if (rc) err_prefix(e, "candidate %s", path);
  predictor_free(p);
  return rc;
}

/* Returns the number of parts decided by a figure. */
static int choose(bundle_selection *s) {
  int decided = 0;
  int low = lower_is_better(s->metric);
  const char *name = sel_names[s->metric];
  for (int k = 0; k < s->n_parts; k++) {
    int best = -1, second = -1, served = -1;
    for (int c = 0; c < s->n_cand; c++) {
      const sel_cell *x = cell(s, k, c);
      if (x->model && served < 0) served = c;
      if (!x->model || !isfinite(x->value)) continue;
      int better = best < 0 || (low ? x->value < cell(s, k, best)->value : x->value > cell(s, k, best)->value);
      if (better) second = best, best = c;
      else if (second < 0 || (low ? x->value < cell(s, k, second)->value : x->value > cell(s, k, second)->value))
        second = c;
    }
    char why[512];
    if (best >= 0 && second >= 0)
      snprintf(why, sizeof why, "%s %s %.4f against %.4f of %s%s", low ? "lowest" : "highest", name,
               cell(s, k, best)->value, cell(s, k, second)->value, s->cand_path[second],
               cell(s, k, best)->value == cell(s, k, second)->value ? " (a tie: the earlier candidate)" : "");
    else if (best >= 0)
      snprintf(why, sizeof why, "the only candidate with a finite %s for this part", name);
    else if (served >= 0)
      snprintf(why, sizeof why, "no candidate has a finite %s for this part; the first that serves it", name);
    else
      snprintf(why, sizeof why, "no candidate serves this part");
    s->chosen[k] = best >= 0 ? best : served;
    s->why[k] = str_dup(why);
    decided += best >= 0;
  }
  return decided;
}

int bundle_select_run(const char *const *cands, int n, const bundle_select_options *o, bundle_selection **out,
                      mskx_err *e) {
  *out = NULL;
  if (n < 1) return err_set(e, MSKX_EINVAL, "no candidates given");
  if (n > SELECT_MAX_CANDIDATES) return err_set(e, MSKX_EINVAL, "at most %d candidates", SELECT_MAX_CANDIDATES);
  if (o->recompute && !o->data) return err_set(e, MSKX_EINVAL, "recomputing the figures needs --data");
  bundle_selection *s = selection_alloc(n);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  s->metric = o->metric;
  dataset *d = NULL;
  int rc = MSKX_OK;
  if (o->data) {
    dataset_options dopt = {.require_valid = 1};
    rc = dataset_open(o->data, &dopt, &d, e);
    s->data = str_dup(o->data);
  }
  for (int c = 0; !rc && c < n; c++) rc = assess(s, c, cands[c], d, o, e);
  dataset_free(d);
  if (!rc) {
    if (!choose(s))
      rc = err_set(e, MSKX_EINVAL, "no candidate has a %s for any part%s", sel_names[o->metric],
                   o->data ? "" : " (pass --data DIR to compute them)");
  }
  if (rc) {
    bundle_selection_free(s);
    return rc;
  }
  *out = s;
  return MSKX_OK;
}

static const char *const source_names[] = {"none", "stored", "computed"};

int bundle_selection_write(const bundle_selection *s, const char *path, mskx_err *e) {
  /* Members relative to the bundle's folder (as train --per-part and
   * ensembles write them), so that a folder of runs can move as a whole. */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) slash[1] = 0;
  else *slash = 0;
  if (!path_is_dir(dir)) return err_set(e, MSKX_EIO, "%s: the folder %s does not exist", path, dir);
  cJSON *o = cJSON_CreateObject(), *models = cJSON_CreateObject(), *sel = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "format", BUNDLE_FORMAT);
  cJSON_AddItemToObject(o, "models", models);
  cJSON_AddItemToObject(o, "selection", sel);
  cJSON_AddStringToObject(sel, "metric", sel_names[s->metric]);
  cJSON_AddStringToObject(sel, "rule", lower_is_better(s->metric) ? "lowest" : "highest");
  if (s->data) cJSON_AddStringToObject(sel, "data", s->data);
  else cJSON_AddNullToObject(sel, "data");
  cJSON_AddStringToObject(sel, "split", "valid");
  cJSON *cands = cJSON_AddArrayToObject(sel, "candidates");
  for (int c = 0; c < s->n_cand; c++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "path", s->cand_path[c]);
    cJSON_AddStringToObject(x, "kind", s->cand_kind[c]);
    cJSON_AddItemToArray(cands, x);
  }
  cJSON *parts = cJSON_AddObjectToObject(sel, "parts");
  for (int k = 0; k < s->n_parts; k++) {
    cJSON *p = cJSON_AddObjectToObject(parts, s->parts[k]);
    int ch = s->chosen[k];
    if (ch >= 0) {
      char rel[4096];
      int rc = ens_relative_path(dir, cell((bundle_selection *)s, k, ch)->model, rel, sizeof rel, e);
      if (rc) {
        cJSON_Delete(o);
        return rc;
      }
      cJSON_AddStringToObject(models, s->parts[k], rel);
      cJSON_AddNumberToObject(p, "chosen", ch);
    } else {
      cJSON_AddNullToObject(p, "chosen");
    }
    cJSON_AddStringToObject(p, "why", s->why[k] ? s->why[k] : "");
    cJSON *figs = cJSON_AddArrayToObject(p, "figures");
    for (int c = 0; c < s->n_cand; c++) {
      const sel_cell *x = cell((bundle_selection *)s, k, c);
      cJSON *f = cJSON_CreateObject();
      cJSON_AddItemToObject(f, "value", json_finite(x->value));
      cJSON_AddStringToObject(f, "source", source_names[x->source]);
      if (x->model) cJSON_AddStringToObject(f, "model", x->model);
      else cJSON_AddNullToObject(f, "model");
      cJSON_AddItemToArray(figs, f);
    }
  }
  int rc = json_write_atomic(path, o, e);
  cJSON_Delete(o);
  return rc;
}

static const char *str_item(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int bundle_selection_read(const char *path, bundle_selection **out, mskx_err *e) {
  *out = NULL;
  unsigned char *text = NULL;
  size_t len = 0;
  if (!path || path_is_dir(path)) return MSKX_OK;
  /* Model files are not JSON; reading their header only would do, but a
   * bundle is small and a safetensors file simply fails to parse here. */
  FILE *f = fopen(path, "rb");
  int c = f ? fgetc(f) : EOF;
  if (f) fclose(f);
  if (c != '{') return MSKX_OK;
  int rc = file_read_all(path, BUNDLE_MAX_BYTES, &text, &len, e);
  if (rc) return rc;
  rc = bundle_selection_parse((const char *)text, len, out, e);
  free(text);
  return rc;
}

int bundle_selection_parse(const char *text, size_t len, bundle_selection **out, mskx_err *e) {
  *out = NULL;
  cJSON *o = cJSON_ParseWithLength(text, len);
  const cJSON *sel = cJSON_GetObjectItemCaseSensitive(o, "selection");
  const char *fmt = str_item(o, "format"), *metric = str_item(sel, "metric");
  const cJSON *cands = cJSON_GetObjectItemCaseSensitive(sel, "candidates"),
              *parts = cJSON_GetObjectItemCaseSensitive(sel, "parts");
  sel_metric m = SEL_KAPPA; /* set by sel_metric_parse; GCC cannot see that through the || chain */
  int n = cJSON_GetArraySize(cands);
  if (!fmt || strcmp(fmt, BUNDLE_FORMAT) || !metric || sel_metric_parse(metric, &m, NULL) || !cJSON_IsArray(cands) ||
      !cJSON_IsObject(parts) || n < 1 || n > SELECT_MAX_CANDIDATES) {
    cJSON_Delete(o);
    return MSKX_OK;  /* no usable record: the report shows nothing about it */
  }
  bundle_selection *s = selection_alloc(n);
  if (!s) {
    cJSON_Delete(o);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  s->metric = m;
  const char *data = str_item(sel, "data");
  s->data = data ? str_dup(data) : NULL;
  for (int i = 0; i < n; i++) {
    const cJSON *x = cJSON_GetArrayItem(cands, i);
    const char *p = str_item(x, "path"), *k = str_item(x, "kind");
    s->cand_path[i] = str_dup(p ? p : "?");
    s->cand_kind[i] = str_dup(k ? k : "?");
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, parts) {
    if (!it->string || s->n_parts == SELECT_MAX_PARTS) continue;
    int k = s->n_parts++;
    snprintf(s->parts[k], PART_NAME_MAX, "%s", it->string);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(it, "chosen"),
                *figs = cJSON_GetObjectItemCaseSensitive(it, "figures");
    double chv = cJSON_IsNumber(ch) ? ch->valuedouble : -1;
    s->chosen[k] = chv >= 0 && chv < n && chv == floor(chv) ? (int)chv : -1;
    const char *why = str_item(it, "why");
    s->why[k] = str_dup(why ? why : "");
    for (int c2 = 0; c2 < n && c2 < cJSON_GetArraySize(figs); c2++) {
      const cJSON *fg = cJSON_GetArrayItem(figs, c2), *v = cJSON_GetObjectItemCaseSensitive(fg, "value");
      const char *src = str_item(fg, "source"), *model = str_item(fg, "model");
      sel_cell *x = cell(s, k, c2);
      x->value = cJSON_IsNumber(v) ? v->valuedouble : NAN;
      x->source = src && !strcmp(src, "stored") ? SEL_STORED : src && !strcmp(src, "computed") ? SEL_COMPUTED : SEL_NONE;
      x->model = model ? str_dup(model) : NULL;
    }
  }
  cJSON_Delete(o);
  *out = s;
  return MSKX_OK;
}
