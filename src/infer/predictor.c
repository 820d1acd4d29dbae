/* Predicting studies with a loaded tree: preprocessing, batched forward
 * passes, aggregation, bundle routing, ensemble combination and CAM maps. */
#include "infer/predictor.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "infer/cam.h"

/* What one node of the tree produces for a study. */
typedef struct node_out {
  double p, thr;
  const char *used;
  double *img_p;     /* n, filled */
  float **cam;       /* NULL, or n zeroed maps to fill */
  double *member_p;  /* ensembles at the root: n_children, else NULL */
} node_out;


static int grow(float **buf, size_t *cap, size_t n, mskx_err *e) {
  if (n <= *cap) return MSKX_OK;
  float *b = realloc(*buf, n * sizeof(float));
  if (!b) return err_set(e, MSKX_ENOMEM, "predict: out of memory (%zu floats)", n);
  *buf = b;
  *cap = n;
  return MSKX_OK;
}

/* One network input of image i (mirrored when flip) into dst (s, s, 3),
 * from the resized grey the study's single decoding pass made for it. */
static int prep_input(const pnode *nd, const study_inputs *in, int i, int flip, float *dst, mskx_err *e) {
  int s = nd->meta.size;
  const float *g = study_inputs_gray(in, i, s, nd->meta.keep_aspect, flip);
  if (!g) return err_set(e, MSKX_EINTERNAL, "predict: no %dx%d input was prepared for image %d", s, s, i + 1);
  normalize_to_hwc3(g, s, &nd->meta.norm, dst);
  return MSKX_OK;
}

/* Adds the normalised maps of batch slots [0, cnt) (inputs c0.. of the
 * study, k per image) into cams, each weighted 1/k. */
static int add_cams(predictor *p, const pnode *nd, const study_inputs *in, int c0, int cnt, int k, float **cams,
                    mskx_err *e) {
  const net *m = nd->m;
  view f = m->vt->features(m);
  const param_entry *hw = &m->ps.entries[m->head_w];
  if (!f.p || (size_t)f.c != hw->numel || f.n < cnt)
    return err_set(e, MSKX_EINTERNAL, "%s: features (%d channels) do not match the classifier (%zu inputs)", nd->path,
                   f.c, hw->numel);
  int rc = grow(&p->fmap, &p->fmap_cap, (size_t)f.h * f.w, e);
  for (int s = 0; !rc && s < cnt; s++) {
    int j = c0 + s, i = j / k;
    const gray_image *im = &in->display[i];
    size_t npx = (size_t)im->w * im->h;
    float *tmp = malloc(npx * sizeof *tmp);
    if (!tmp) return err_set(e, MSKX_ENOMEM, "predict: out of memory for a %dx%d map", im->w, im->h);
    cam_from_features(f, s, ps_data(&m->ps, m->head_w), p->fmap);
    cam_to_image(p->fmap, f.h, f.w, nd->meta.size, nd->meta.keep_aspect, in->width[i], in->height[i], im->w, im->h,
                 tmp);
    if (j % k) cam_mirror(tmp, im->w, im->h);
    cam_normalize(tmp, npx);
    for (size_t q = 0; q < npx; q++) cams[i][q] += tmp[q] / (float)k;
    free(tmp);
  }
  return rc;
}

/* Chunks of equal size b cover the study's inputs with one plan; the last
 * chunk is padded with copies of its first input. */
const char *const ens_method_names[ENS_METHODS] = {"mean", "vote", "weighted", "stack", "stack-features"};

int pnode_feature_dim(const pnode *model) { return (int)model->m->ps.entries[model->m->head_w].numel; }

/* Adds batch slots [0, cnt)'s pooled features (inputs c0.. of the study, k
 * per image), each weighted 1/k, into feat (n x dim). */
static int pool_features(const pnode *nd, int c0, int cnt, int k, double *feat, mskx_err *e) {
  view f = nd->m->vt->features(nd->m);
  int dim = pnode_feature_dim(nd);
  if (!f.p || f.c != dim || f.n < cnt)
    return err_set(e, MSKX_EINTERNAL, "%s: features (%d channels) do not match the classifier (%d inputs)", nd->path,
                   f.c, dim);
  double inv = 1.0 / ((double)f.h * f.w * k);
  for (int s = 0; s < cnt; s++) {
    double *dst = feat + (size_t)((c0 + s) / k) * dim;
    for (int y = 0; y < f.h; y++)
      for (int x = 0; x < f.w; x++) {
        const float *q = f.p + ((size_t)((size_t)s * f.h + y) * f.w + x) * f.ld;
        for (int c = 0; c < dim; c++) dst[c] += q[c] * inv;
      }
  }
  return MSKX_OK;
}

/* feat: NULL, or n x dim zeroed values to receive each image's pooled features. */
static int predict_model(predictor *p, pnode *nd, const study_inputs *in, const predict_options *po, double *img_p,
                         float **cams, double *feat, mskx_err *e) {
  int n = in->n, k = po->tta_flip ? 2 : 1, total = n * k, s = nd->meta.size;
  int chunks = (total + p->opt.max_batch - 1) / p->opt.max_batch, b = (total + chunks - 1) / chunks;
  size_t per = (size_t)s * s * 3;
  double *prob = calloc((size_t)total, sizeof *prob);
  if (!prob) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  int rc = grow(&p->batch, &p->batch_cap, per * b, e);
  if (!rc) rc = grow(&p->logits, &p->logits_cap, (size_t)b, e);
  if (!rc) rc = net_plan(nd->m, b, s, s, 0, p->opt.prec, e);
  for (int c0 = 0; !rc && c0 < total; c0 += b) {
    int cnt = total - c0 < b ? total - c0 : b;
    for (int j = 0; !rc && j < cnt; j++)
      rc = prep_input(nd, in, (c0 + j) / k, (c0 + j) % k, p->batch + per * j, e);
    for (int j = cnt; !rc && j < b; j++) memcpy(p->batch + per * j, p->batch, per * sizeof(float));
    if (!rc) rc = net_forward(nd->m, p->batch, p->logits, e);
    for (int j = 0; !rc && j < cnt; j++) prob[c0 + j] = sigmoid(p->logits[j]);
    if (!rc && cams) rc = add_cams(p, nd, in, c0, cnt, k, cams, e);
    if (!rc && feat) rc = pool_features(nd, c0, cnt, k, feat, e);
  }
  for (int i = 0; !rc && i < n; i++) img_p[i] = k == 1 ? prob[i] : 0.5 * (prob[2 * i] + prob[2 * i + 1]);
  for (int i = 0; !rc && cams && i < n; i++) cam_normalize(cams[i], (size_t)in->display[i].w * in->display[i].h);
  free(prob);
  if (rc) err_prefix(e, "%s", nd->path);
  return rc;
}

static double aggregate(agg_rule agg, const double *v, int n) {
  double acc = agg == AGG_MAX ? v[0] : 0;
  for (int i = 0; i < n; i++) acc = agg == AGG_MAX ? (v[i] > acc ? v[i] : acc) : acc + v[i];
  return agg == AGG_MAX ? acc : acc / n;
}

int pnode_route(const pnode *nd, const char *part, int *idx, mskx_err *e) {
  char canon[PART_NAME_MAX] = "";
  *idx = nd->dflt;
  if (part && part[0] && part_canonical(part, canon))
    for (int i = 0; i < nd->n_children; i++)
      if (!strcmp(nd->part_names[i], canon)) *idx = i;
  if (*idx >= 0) return MSKX_OK;
  char have[512] = "";
  for (int i = 0; i < nd->n_children; i++)
    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", nd->part_names[i]);
  if (!canon[0])
    return err_set(e, MSKX_EINVAL, "%s: the study's body part is unknown and the bundle has no default model "
                   "(give the part; bundle has %s)", nd->path, have);
  return err_set(e, MSKX_EINVAL, "%s: no model for part %s and no default (bundle has %s)", nd->path, canon, have);
}

double ensemble_combine(const pnode *ens, const double *p, const double *thr) {
  int m = ens->n_children;
  double acc = 0, ws = 0;
  for (int i = 0; i < m; i++) {
    switch (ens->method) {
      case ENS_MEAN:
      /* stack-features combines features, not probabilities
       * (predict_stack_features); its members' mean is only a summary. */
      case ENS_STACK_FEATURES: acc += p[i]; break;
      case ENS_WEIGHTED: acc += ens->weight[i] * p[i], ws += ens->weight[i]; break;
      case ENS_VOTE: acc += p[i] > thr[i]; break;
      case ENS_STACK: {
        double q = p[i] < STACK_CLAMP ? STACK_CLAMP : p[i] > 1 - STACK_CLAMP ? 1 - STACK_CLAMP : p[i];
        acc += ens->coef[i] * log(q / (1 - q));
        break;
      }
    }
  }
  if (ens->method == ENS_WEIGHTED) return acc / ws;
  if (ens->method == ENS_STACK) return sigmoid(ens->intercept + acc);
  return acc / m;
}

static int predict_node(predictor *p, pnode *nd, const study_inputs *in, const char *part,
                        const predict_options *po, node_out *o, mskx_err *e);

/* Maps are at the display size of each image (see study_inputs). */
static size_t cam_px(const study_inputs *in, int i) { return (size_t)in->display[i].w * in->display[i].h; }

static float **cams_alloc(const study_inputs *in) {
  int n = in->n;
  float **c = calloc((size_t)n, sizeof *c);
  for (int i = 0; c && i < n; i++)
    if (!(c[i] = calloc(cam_px(in, i), sizeof **c))) {
      for (int j = 0; j < i; j++) free(c[j]);
      free(c);
      return NULL;
    }
  return c;
}

static void cams_free(float **c, int n) {
  for (int i = 0; c && i < n; i++) free(c[i]);
  free(c);
}

/* Members run one after another on the same context; image probabilities
 * combine per image with the study rule, maps average the members'. */
static int predict_ensemble(predictor *p, pnode *nd, const study_inputs *in, const char *part,
                            const predict_options *po, node_out *o, mskx_err *e) {
  int m = nd->n_children, n = in->n;
  double *mp = calloc((size_t)m, sizeof *mp), *thr = calloc((size_t)m, sizeof *thr);
  double *ip = calloc((size_t)m * n, sizeof *ip), *col = calloc((size_t)m, sizeof *col);
  float **mc = o->cam ? cams_alloc(in) : NULL;
  int rc = !mp || !thr || !ip || !col || (o->cam && !mc) ? err_set(e, MSKX_ENOMEM, "predict: out of memory") : 0;
  for (int c = 0; !rc && c < m; c++) {
    for (int i = 0; mc && i < n; i++) memset(mc[i], 0, cam_px(in, i) * sizeof(float));
    node_out co = {.img_p = ip + (size_t)c * n, .cam = mc};
    rc = predict_node(p, &nd->children[c], in, part, po, &co, e);
    if (rc) break;
    mp[c] = co.p;
    thr[c] = co.thr;
    for (int i = 0; mc && i < n; i++)
      for (size_t q = 0; q < cam_px(in, i); q++) o->cam[i][q] += mc[i][q] / (float)m;
  }
  if (!rc) {
    o->p = ensemble_combine(nd, mp, thr);
    o->thr = nd->threshold;
    o->used = nd->path;
    for (int i = 0; i < n; i++) {
      for (int c = 0; c < m; c++) col[c] = ip[(size_t)c * n + i];
      o->img_p[i] = ensemble_combine(nd, col, thr);
    }
    if (o->member_p) memcpy(o->member_p, mp, (size_t)m * sizeof *mp);
    for (int i = 0; o->cam && i < n; i++) cam_normalize(o->cam[i], cam_px(in, i));
  }
  cams_free(mc, n);
  free(mp);
  free(thr);
  free(ip);
  free(col);
  return rc;
}

/* sigmoid(intercept + coef . (x - mean) / scale) over n_feat features. */
static double stack_features_prob(const pnode *nd, const double *x) {
  double z = nd->intercept;
  for (int j = 0; j < nd->n_feat; j++) z += nd->coef[j] * (x[j] - nd->feat_mean[j]) / nd->feat_scale[j];
  return sigmoid(z);
}

/* Each member's pooled features per image, concatenated; the study's vector
 * is the mean over its images, each image's probability the stacker on its
 * own vector. Maps average the members' (as for the other methods). */
static int predict_stack_features(predictor *p, pnode *nd, const study_inputs *in, const predict_options *po,
                                  node_out *o, mskx_err *e) {
  int m = nd->n_children, D = nd->n_feat, n = in->n;
  double *x = calloc((size_t)n * D, sizeof *x), *study = calloc((size_t)D, sizeof *study);
  double *ip = calloc((size_t)n, sizeof *ip);
  float **mc = o->cam ? cams_alloc(in) : NULL;
  int rc = !x || !study || !ip || (o->cam && !mc) ? err_set(e, MSKX_ENOMEM, "predict: out of memory") : 0;
  for (int c = 0, off = 0; !rc && c < m; c++) {
    pnode *ch = &nd->children[c];
    int dim = pnode_feature_dim(ch);
    double *f = calloc((size_t)n * dim, sizeof *f);
    if (!f) rc = err_set(e, MSKX_ENOMEM, "predict: out of memory");
    for (int i = 0; mc && i < n; i++) memset(mc[i], 0, cam_px(in, i) * sizeof(float));
    if (!rc) rc = predict_model(p, ch, in, po, ip, mc, f, e);
    for (int i = 0; !rc && i < n; i++)
      for (int j = 0; j < dim; j++) x[(size_t)i * D + off + j] = f[(size_t)i * dim + j];
    if (!rc && o->member_p) o->member_p[c] = aggregate(po->agg, ip, n);
    for (int i = 0; !rc && mc && i < n; i++)
      for (size_t q = 0; q < cam_px(in, i); q++) o->cam[i][q] += mc[i][q] / (float)m;
    free(f);
    off += dim;
  }
  if (!rc) {
    for (int i = 0; i < n; i++)
      for (int j = 0; j < D; j++) study[j] += x[(size_t)i * D + j] / n;
    for (int i = 0; i < n; i++) o->img_p[i] = stack_features_prob(nd, x + (size_t)i * D);
    o->p = stack_features_prob(nd, study);
    o->thr = nd->threshold;
    o->used = nd->path;
    for (int i = 0; o->cam && i < n; i++) cam_normalize(o->cam[i], cam_px(in, i));
  }
  cams_free(mc, n);
  free(x);
  free(study);
  free(ip);
  return rc;
}

static int predict_node(predictor *p, pnode *nd, const study_inputs *in, const char *part,
                        const predict_options *po, node_out *o, mskx_err *e) {
  if (nd->kind == PNODE_BUNDLE) {
    int idx, rc = pnode_route(nd, part, &idx, e);
    if (rc) return rc;
    return predict_node(p, &nd->children[idx], in, part, po, o, e);
  }
  if (nd->kind == PNODE_ENSEMBLE && nd->method == ENS_STACK_FEATURES) return predict_stack_features(p, nd, in, po, o, e);
  if (nd->kind == PNODE_ENSEMBLE) return predict_ensemble(p, nd, in, part, po, o, e);
  int rc = predict_model(p, nd, in, po, o->img_p, o->cam, NULL, e);
  if (rc) return rc;
  o->p = aggregate(po->agg, o->img_p, in->n);
  o->thr = nd->meta.threshold;
  o->used = nd->path;
  return MSKX_OK;
}

/* The first network of a model tree (depth first). */
static pnode *first_model(pnode *nd) {
  if (nd->kind == PNODE_MODEL) return nd;
  for (int i = 0; i < nd->n_children; i++) {
    pnode *m = first_model(&nd->children[i]);
    if (m) return m;
  }
  return NULL;
}

/* PREC_AUTO: one forward pass of a full batch of the first network in each
 * candidate precision; every network of the tree then uses the fastest. */
static int resolve_auto(predictor *p, mskx_err *e) {
  if (p->opt.prec != PREC_AUTO) return MSKX_OK;
  pnode *nd = first_model(&p->root);
  if (!nd) return err_set(e, MSKX_EINTERNAL, "precision auto: no network");
  net_prec_choice ch;
  int s = nd->meta.size, rc = net_choose_precision(nd->m, p->opt.max_batch, s, s, 0, 0, &ch, e);
  if (rc) return rc;
  p->prec_auto = 1;
  for (int i = 0; i < ch.n; i++) p->auto_ms[ch.cand[i]] = ch.ms[i];
  p->opt.prec = ch.chosen;
  return MSKX_OK;
}

precision predictor_precision(const predictor *p) { return p->opt.prec; }

int predictor_load(const char *path, const predictor_options *opt, predictor **out, mskx_err *e) {
  *out = NULL;
  predictor *p = calloc(1, sizeof *p);
  if (!p) return err_set(e, MSKX_ENOMEM, "out of memory");
  if (opt) p->opt = *opt;
  if (p->opt.max_batch <= 0) p->opt.max_batch = PREDICT_DEFAULT_MAX_BATCH;
  int rc = engine_dnnl_create(p->opt.threads, &p->eng, e);
  if (!rc) rc = pnode_load(&p->root, path, p->eng, 0, e);
  if (!rc) rc = pnode_describe(&p->root, &p->info, e);
  if (!rc) rc = resolve_auto(p, e);
  if (rc) {
    predictor_free(p);
    return rc;
  }
  *out = p;
  return MSKX_OK;
}

int predictor_clone(const predictor *src, predictor **out, mskx_err *e) {
  *out = NULL;
  predictor *p = calloc(1, sizeof *p);
  if (!p) return err_set(e, MSKX_ENOMEM, "out of memory");
  p->opt = src->opt;
  p->prec_auto = src->prec_auto;
  memcpy(p->auto_ms, src->auto_ms, sizeof p->auto_ms);
  int rc = engine_dnnl_create(p->opt.threads, &p->eng, e);
  if (!rc) rc = pnode_clone(&src->root, &p->root, p->eng, e);
  if (!rc) rc = pnode_describe(&p->root, &p->info, e);
  if (rc) {
    predictor_free(p);
    return rc;
  }
  *out = p;
  return MSKX_OK;
}

void predictor_free(predictor *p) {
  if (!p) return;
  for (int i = 0; i < PLAN_CACHE; i++) net_destroy(p->plans[i].m);
  pnode_free(&p->root);
  free(p->info.metadata_json);
  engine_destroy(p->eng);
  free(p->batch);
  free(p->logits);
  free(p->fmap);
  free(p);
}

void predictor_set_max_batch(predictor *p, int max_batch) {
  p->opt.max_batch = max_batch;
  for (int i = 0; i < PLAN_CACHE; i++)
    if (p->plans[i].m && p->plans[i].b > max_batch) {
      net_destroy(p->plans[i].m);
      p->plans[i] = (plan_slot){0};
    }
  /* The input batch grew for the larger batches; it grows again to what the
   * next pass needs (grow). */
  free(p->batch);
  p->batch = NULL;
  p->batch_cap = 0;
}

const predictor_info *predictor_get_info(const predictor *p) { return &p->info; }

static int check_part(const char *part, char canon[PART_NAME_MAX], mskx_err *e) {
  if (part && part[0] && !part_canonical(part, canon))
    return err_set(e, MSKX_EINVAL, "'%s' is not a body part name (expected e.g. XR_WRIST)", part);
  return MSKX_OK;
}

int predictor_prepare(const predictor *p, const image_source *srcs, int n, const char *part,
                      const predict_options *po, study_inputs **out, mskx_err *e) {
  *out = NULL;
  char canon[PART_NAME_MAX] = "";
  int rc = check_part(part, canon, e);
  if (rc) return rc;
  if (n < 1) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  return study_inputs_prepare(&p->root, srcs, n, canon, po && po->tta_flip, po && (po->want_cam || po->want_display),
                              &p->opt.limits, out, e);
}

/* Checks in against po and allocates out's arrays (sizes copied from in). */
static int result_begin(predictor *p, study_inputs *in, const char *part, const predict_options *po,
                        study_result *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  int n = in->n, rc = check_part(part, out->part, e);
  if (rc) return rc;
  if (po->tta_flip && !in->gray_mirror) return err_set(e, MSKX_EINVAL, "predict: inputs were prepared without TTA");
  if ((po->want_cam || po->want_display) && !in->display)
    return err_set(e, MSKX_EINVAL, "predict: inputs were prepared without maps");
  out->n_images = n;
  out->image_prob = calloc((size_t)n, sizeof *out->image_prob);
  out->width = malloc((size_t)n * sizeof *out->width);
  out->height = malloc((size_t)n * sizeof *out->height);
  if (po->want_cam) out->cam = cams_alloc(in);
  if (p->root.kind == PNODE_ENSEMBLE) {
    out->n_members = p->root.n_children;
    out->member_prob = calloc((size_t)out->n_members, sizeof *out->member_prob);
  }
  if (!out->image_prob || !out->width || !out->height || (po->want_cam && !out->cam) ||
      (out->n_members && !out->member_prob))
    return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  memcpy(out->width, in->width, (size_t)n * sizeof *out->width);
  memcpy(out->height, in->height, (size_t)n * sizeof *out->height);
  return MSKX_OK;
}

/* Fills out's study fields from what the tree produced. */
static int result_end(study_inputs *in, const node_out *o, study_result *out, mskx_err *e) {
  out->probability = o->p;
  out->threshold = o->thr;
  out->abnormal = o->p > o->thr;
  if (!(out->model_used = str_dup(o->used))) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  /* The display copies go with the maps they belong to. */
  out->display = in->display;
  in->display = NULL;
  return MSKX_OK;
}

int predictor_predict_inputs(predictor *p, study_inputs *in, const char *part, const predict_options *po,
                             study_result *out, mskx_err *e) {
  static const predict_options defaults = {AGG_MEAN, 0, 0, 0};
  if (!po) po = &defaults;
  int rc = result_begin(p, in, part, po, out, e);
  if (rc) return rc;
  node_out o = {.img_p = out->image_prob, .cam = out->cam, .member_p = out->member_prob};
  rc = predict_node(p, &p->root, in, out->part, po, &o, e);
  return rc ? rc : result_end(in, &o, out, e);
}

/* The network that computes a study (bundles followed to their part's
 * model), or NULL when it is an ensemble. */
static pnode *study_model(pnode *nd, const char *part, mskx_err *e, int *rc) {
  while (nd->kind == PNODE_BUNDLE) {
    int idx;
    if ((*rc = pnode_route(nd, part, &idx, e))) return NULL;
    nd = &nd->children[idx];
  }
  return nd->kind == PNODE_MODEL ? nd : NULL;
}

/* nd's network planned for batch b: its own when unplanned or planned at b,
 * else a planned copy from (or new in) the context's cache. */
static int batch_net(predictor *p, pnode *nd, int b, net **out, mskx_err *e) {
  net *m = nd->m;
  int s = nd->meta.size;
  if (!m->planned || (m->n == b && m->h == s && m->w == s && !m->cx.train && m->cx.prec == p->opt.prec)) {
    *out = m;
    return net_plan(m, b, s, s, 0, p->opt.prec, e);
  }
  plan_slot *lru = NULL;
  p->plan_clock++;
  for (int i = 0; i < PLAN_CACHE; i++) {
    plan_slot *ps = &p->plans[i];
    if (ps->m && ps->node == nd && ps->b == b) {
      ps->used = p->plan_clock;
      *out = ps->m;
      return MSKX_OK;
    }
    if (!lru || (lru->m && (!ps->m || ps->used < lru->used))) lru = ps;
  }
  net_destroy(lru->m);
  *lru = (plan_slot){0};
  net *c = NULL;
  int rc = pnode_net_copy(nd, p->eng, &c, e);
  if (!rc) rc = net_plan(c, b, s, s, 0, p->opt.prec, e);
  if (rc) {
    net_destroy(c);
    return rc;
  }
  *lru = (plan_slot){nd, b, c, p->plan_clock};
  *out = c;
  return MSKX_OK;
}

/* Studies that reach the same network without maps, their images (and
 * mirrors) in shared forward passes of up to max_batch inputs. */
static int predict_group(predictor *p, pnode *nd, study_inputs **in, const predict_options *po, study_result *outs,
                         const int *members, int n_members, int *batches, mskx_err *e) {
  int total = 0;
  for (int g = 0; g < n_members; g++) total += in[members[g]]->n * (po[members[g]].tta_flip ? 2 : 1);
  int chunks = (total + p->opt.max_batch - 1) / p->opt.max_batch, b = (total + chunks - 1) / chunks, s = nd->meta.size;
  size_t per = (size_t)s * s * 3;
  /* (study, input) of each batch slot, in study order. */
  int *who = malloc((size_t)total * 2 * sizeof *who);
  double *prob = calloc((size_t)total, sizeof *prob);
  int rc = !who || !prob ? err_set(e, MSKX_ENOMEM, "predict: out of memory") : MSKX_OK;
  for (int g = 0, t = 0; !rc && g < n_members; g++)
    for (int j = 0; j < in[members[g]]->n * (po[members[g]].tta_flip ? 2 : 1); j++, t++) {
      who[2 * t] = members[g];
      who[2 * t + 1] = j;
    }
  if (!rc) rc = grow(&p->batch, &p->batch_cap, per * b, e);
  if (!rc) rc = grow(&p->logits, &p->logits_cap, (size_t)b, e);
  net *m = NULL;
  if (!rc) rc = batch_net(p, nd, b, &m, e);
  for (int c0 = 0; !rc && c0 < total; c0 += b) {
    int cnt = total - c0 < b ? total - c0 : b;
    for (int j = 0; !rc && j < cnt; j++) {
      int st = who[2 * (c0 + j)], q = who[2 * (c0 + j) + 1], k = po[st].tta_flip ? 2 : 1;
      rc = prep_input(nd, in[st], q / k, q % k, p->batch + per * j, e);
    }
    for (int j = cnt; !rc && j < b; j++) memcpy(p->batch + per * j, p->batch, per * sizeof(float));
    if (!rc) rc = net_forward(m, p->batch, p->logits, e);
    for (int j = 0; !rc && j < cnt; j++) prob[c0 + j] = sigmoid(p->logits[j]);
    if (!rc) (*batches)++;
  }
  if (rc) err_prefix(e, "%s", nd->path);
  for (int g = 0, t = 0; !rc && g < n_members; g++) {
    int st = members[g], k = po[st].tta_flip ? 2 : 1;
    study_result *out = &outs[st];
    for (int i = 0; i < in[st]->n; i++, t += k)
      out->image_prob[i] = k == 1 ? prob[t] : 0.5 * (prob[t] + prob[t + 1]);
    node_out o = {.p = aggregate(po[st].agg, out->image_prob, in[st]->n), .thr = nd->meta.threshold, .used = nd->path};
    rc = result_end(in[st], &o, out, e);
  }
  free(who);
  free(prob);
  return rc;
}

int predictor_predict_batch(predictor *p, study_inputs **in, const char *const *parts, const predict_options *po,
                            int n, study_result *outs, int *rcs, mskx_err *errs, int *batches) {
  *batches = 0;
  pnode **model = calloc((size_t)n, sizeof *model);
  int *members = malloc((size_t)n * sizeof *members);
  if (!model || !members) {
    free(model);
    free(members);
    for (int i = 0; i < n; i++) {
      memset(&outs[i], 0, sizeof outs[i]);
      rcs[i] = err_set(&errs[i], MSKX_ENOMEM, "predict: out of memory");
    }
    return MSKX_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    rcs[i] = result_begin(p, in[i], parts[i], &po[i], &outs[i], &errs[i]);
    if (!rcs[i] && !po[i].want_cam && !po[i].want_display) model[i] = study_model(&p->root, outs[i].part, &errs[i], &rcs[i]);
  }
  for (int i = 0; i < n; i++) {
    if (rcs[i] || model[i]) continue;
    /* Ensembles, maps and display copies: alone, as predictor_predict_inputs does. */
    study_result_free(&outs[i]);
    rcs[i] = predictor_predict_inputs(p, in[i], parts[i], &po[i], &outs[i], &errs[i]);
    if (!rcs[i]) (*batches)++;
  }
  for (int i = 0; i < n; i++) {
    if (rcs[i] || !model[i]) continue;
    int k = 0;
    for (int j = i; j < n; j++)
      if (!rcs[j] && model[j] == model[i]) members[k++] = j;
    mskx_err ge = {0, ""};
    int rc = predict_group(p, model[i], in, po, outs, members, k, batches, &ge);
    for (int g = 0; g < k; g++) {
      model[members[g]] = NULL;   /* done */
      if (rc) {
        rcs[members[g]] = rc;
        errs[members[g]] = ge;
      }
    }
  }
  free(model);
  free(members);
  return MSKX_OK;
}

int predictor_predict_sources(predictor *p, const image_source *srcs, int n, const char *part,
                              const predict_options *po, study_result *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  study_inputs *in;
  int rc = predictor_prepare(p, srcs, n, part, po, &in, e);
  if (rc) return rc;
  rc = predictor_predict_inputs(p, in, part, po, out, e);
  study_inputs_free(in);
  return rc;
}

int predictor_predict_study(predictor *p, const gray_image *images, int n, const char *part,
                            const predict_options *po, study_result *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (n < 1) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  for (int i = 0; i < n; i++)
    if (!images[i].px || images[i].w <= 0 || images[i].h <= 0)
      return err_set(e, MSKX_EINVAL, "image %d of the study is empty", i + 1);
  image_source *src = calloc((size_t)n, sizeof *src);
  if (!src) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  for (int i = 0; i < n; i++)
    src[i] = (image_source){.pixels = images[i].px, .w = images[i].w, .h = images[i].h, .channels = 1};
  int rc = predictor_predict_sources(p, src, n, part, po, out, e);
  free(src);
  return rc;
}

int predictor_study_features(predictor *p, const gray_image *images, int n, const predict_options *po, double **feat,
                             int *dim, double *study_prob, mskx_err *e) {
  static const predict_options defaults = {AGG_MEAN, 0, 0, 0};
  *feat = NULL;
  *dim = 0;
  if (!po) po = &defaults;
  if (p->root.kind != PNODE_MODEL) return err_set(e, MSKX_EINVAL, "%s: features come from a model file", p->root.path);
  if (n < 1) return err_set(e, MSKX_EINVAL, "a study needs at least one image");
  image_source *src = calloc((size_t)n, sizeof *src);
  if (!src) return err_set(e, MSKX_ENOMEM, "predict: out of memory");
  for (int i = 0; i < n; i++)
    src[i] = (image_source){.pixels = images[i].px, .w = images[i].w, .h = images[i].h, .channels = 1};
  study_inputs *in = NULL;
  int rc = predictor_prepare(p, src, n, NULL, po, &in, e);
  free(src);
  if (rc) return rc;
  int d = pnode_feature_dim(&p->root);
  double *f = calloc((size_t)n * d, sizeof *f), *ip = calloc((size_t)n, sizeof *ip), *out = calloc((size_t)d, sizeof *out);
  rc = !f || !ip || !out ? err_set(e, MSKX_ENOMEM, "predict: out of memory") : 0;
  if (!rc) rc = predict_model(p, &p->root, in, po, ip, NULL, f, e);
  for (int i = 0; !rc && i < n; i++)
    for (int j = 0; j < d; j++) out[j] += f[(size_t)i * d + j] / n;
  if (!rc && study_prob) *study_prob = aggregate(po->agg, ip, n);
  free(f);
  free(ip);
  study_inputs_free(in);
  if (rc) {
    free(out);
    return rc;
  }
  *feat = out;
  *dim = d;
  return MSKX_OK;
}

void study_result_free(study_result *r) {
  if (!r) return;
  free(r->image_prob);
  cams_free(r->cam, r->n_images);
  free(r->member_prob);
  free(r->model_used);
  free(r->width);
  free(r->height);
  for (int i = 0; r->display && i < r->n_images; i++) gray_image_free(&r->display[i]);
  free(r->display);
  memset(r, 0, sizeof *r);
}
