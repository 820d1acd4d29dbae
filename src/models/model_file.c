/* Model files (see model_file.h). */
#include "models/model_file.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

void model_meta_default(model_meta *m) {
  memset(m, 0, sizeof *m);
  m->size = ARCH_PAPER_SIZE;
  m->norm = norm_imagenet();
  strcpy(m->parts, "all");
  m->threshold = MODEL_DEFAULT_THRESHOLD;
  strcpy(m->metrics, "{}");
  m->bn_eps = BN_EPS;
}

int model_bn_eps_read(const st_file *f, const char *path, float *eps, mskx_err *e) {
  *eps = BN_EPS;
  const char *v = st_meta_get(f, "bn_eps");
  if (!v) return MSKX_OK;
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  /* Keras allows any positive epsilon; above 1 it is surely a mistake. */
  if (end == v || *end || errno || !(x > 0 && x <= 1))
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'bn_eps' is invalid: '%s' (expected a number in (0, 1])", path, v);
  *eps = (float)x;
  return MSKX_OK;
}

static int parse_floats3(const char *s, float out[3]) {
  char *end;
  for (int i = 0; i < 3; i++) {
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v)) return 0;
    out[i] = (float)v;
    s = end;
    if (i < 2) {
      if (*s != ',') return 0;
      s++;
    }
  }
  return *s == 0;
}

/* Numeric metadata: absent leaves *out as it is; present must be a whole
 * number in [lo, hi] (an integer for meta_long), else an error naming the file. */
static int meta_long(const st_file *f, const char *path, const char *key, long lo, long hi, long *out, mskx_err *e) {
  const char *v = st_meta_get(f, key);
  mskx_err why = {0};
  if (!v || !parse_long(v, lo, hi, "", out, &why)) return MSKX_OK;
  return err_set(e, MSKX_EFORMAT, "%s: metadata '%s'%s", path, key, why.msg);
}

static int meta_double(const st_file *f, const char *path, const char *key, double lo, double hi, double *out,
                       mskx_err *e) {
  const char *v = st_meta_get(f, key);
  mskx_err why = {0};
  if (!v || !parse_double(v, lo, hi, "", out, &why)) return MSKX_OK;
  return err_set(e, MSKX_EFORMAT, "%s: metadata '%s'%s", path, key, why.msg);
}

int model_meta_read(const st_file *f, const char *path, model_meta *out, mskx_err *e) {
  model_meta_default(out);
  const char *fmt = st_meta_get(f, "format"), *arch = st_meta_get(f, "arch");
  if (!fmt || strcmp(fmt, MODEL_FORMAT))
    return err_set(e, MSKX_EFORMAT, "%s: not an mskx model file (metadata 'format' is %s%s%s, expected '%s')", path,
                   fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "", MODEL_FORMAT);
  if (!arch) return err_set(e, MSKX_EFORMAT, "%s: metadata 'arch' missing", path);
  if (strlen(arch) >= sizeof out->arch)
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'arch' is %zu characters long, more than the %zu allowed", path,
                   strlen(arch), sizeof out->arch - 1);
  strcpy(out->arch, arch);
  const char *v;
  long l = out->size, ep = 0;
  double thr = out->threshold;
  int rc = meta_long(f, path, "size", MODEL_MIN_SIZE, MODEL_MAX_SIZE, &l, e);
  if (!rc) rc = meta_long(f, path, "epoch", 0, INT_MAX, &ep, e);
  if (!rc) rc = meta_double(f, path, "threshold", 0, 1, &thr, e);
  if (rc) return rc;
  out->size = (int)l;
  out->epoch = (int)ep;
  out->threshold = thr;
  if ((v = st_meta_get(f, "keep_aspect"))) {
    if (strcmp(v, "0") && strcmp(v, "1"))
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'keep_aspect' must be 0 or 1, got '%.64s'", path, v);
    out->keep_aspect = v[0] == '1';
  }
  if ((v = st_meta_get(f, "mean")) && !parse_floats3(v, out->norm.mean))
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'mean' is invalid: '%.64s'", path, v);
  if ((v = st_meta_get(f, "std"))) {
    if (!parse_floats3(v, out->norm.std) || out->norm.std[0] <= 0 || out->norm.std[1] <= 0 || out->norm.std[2] <= 0)
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'std' is invalid: '%.64s'", path, v);
  }
  if ((v = st_meta_get(f, "parts"))) {
    if (strlen(v) >= sizeof out->parts)
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'parts' is %zu characters long, more than the %zu allowed", path,
                     strlen(v), sizeof out->parts - 1);
    strcpy(out->parts, v);
  }
  if ((v = st_meta_get(f, "transform_input"))) {
    if (strcmp(v, "0") && strcmp(v, "1"))
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'transform_input' must be 0 or 1, got '%.64s'", path, v);
    out->transform_input = v[0] == '1';
  }
  /* A JSON object; one too long for the field (mskx writes a few hundred
   * bytes) is dropped rather than cut into invalid JSON: its figures are
   * informative only. */
  if ((v = st_meta_get(f, "metrics")) && strlen(v) < sizeof out->metrics) strcpy(out->metrics, v);
  return model_bn_eps_read(f, path, &out->bn_eps, e);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* A quantised net's int8 tensors: each int8 convolution's weight replaced
 * by its quantised values (written as I8), its weight and input scales
 * appended. *buf owns the names and data made here. */
typedef struct quant_tensors {
  float *data;
  char *names;
} quant_tensors;

static int quant_tensors_make(const net *m, tensor_ref *t, int *n, quant_tensors *qt, mskx_err *e) {
  size_t nq = 0, floats = 0;
  for (int i = 0; i < m->ps.n; i++)
    if (m->in_scale[i] > 0) nq++, floats += m->ps.entries[i].numel + (size_t)m->ps.entries[i].shape[0] + 1;
  qt->data = big_alloc((floats ? floats : 1) * sizeof(float));
  qt->names = malloc(2 * nq * sizeof m->ps.entries[0].name + 1);
  if (!qt->data || !qt->names) return err_set(e, MSKX_ENOMEM, "out of memory (quantised tensors)");
  float *p = qt->data;
  char *nm = qt->names;
  int n0 = *n;
  for (int i = 0; i < m->ps.n; i++) {
    if (!(m->in_scale[i] > 0)) continue;
    const param_entry *en = &m->ps.entries[i];
    int j = 0;
    while (j < n0 && strcmp(t[j].name, en->name)) j++;
    if (j == n0 || !has_suffix(en->name, ".weight") || en->ndim != 4)
      return err_set(e, MSKX_EINTERNAL, "quantised tensor '%s' is not a convolution weight", en->name);
    int co = (int)en->shape[0];
    size_t per = en->numel / (size_t)co;
    int8_t *q = big_alloc(en->numel);
    if (!q) return err_set(e, MSKX_ENOMEM, "out of memory (quantised tensors)");
    float *qf = p, *ws = p + en->numel, *is = ws + co;
    quantize_rows_s8(ps_data(&m->ps, i), co, per, q, ws);
    for (size_t k = 0; k < en->numel; k++) qf[k] = q[k];
    free(q);
    *is = m->in_scale[i];
    p = is + 1;
    t[j].data = qf;
    t[j].file_dtype = EL_I8;
    size_t stem = strlen(en->name) - strlen(".weight");
    char *a = nm, *b = nm + sizeof en->name;
    nm += 2 * sizeof en->name;
    snprintf(a, sizeof en->name, "%.*s%s", (int)stem, en->name, QUANT_WEIGHT_SCALE);
    snprintf(b, sizeof en->name, "%.*s%s", (int)stem, en->name, QUANT_INPUT_SCALE);
    t[(*n)++] = (tensor_ref){.name = a, .ndim = 1, .shape = {co}, .data = ws};
    t[(*n)++] = (tensor_ref){.name = b, .ndim = 1, .shape = {1}, .data = is};
  }
  return MSKX_OK;
}

int model_save(const char *path, const net *m, const model_meta *meta, const tensor_ref *extra, int n_extra,
               const st_meta *extra_meta, int n_extra_meta, mskx_err *e) {
  tensor_ref *t = NULL;
  int n = 0, nq = 0;
  int rc = ps_as_tensors(&m->ps, 0, &t, &n, e);
  if (rc) return rc;
  for (int i = 0; m->in_scale && i < m->ps.n; i++) nq += m->in_scale[i] > 0;
  tensor_ref *all = realloc(t, (size_t)(n + 2 * nq + n_extra + 1) * sizeof *all);
  if (!all) {
    free(t);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  quant_tensors qt = {0};
  if (m->in_scale && (rc = quant_tensors_make(m, all, &n, &qt, e))) {
    free(all);
    free(qt.data);
    free(qt.names);
    return rc;
  }
  if (n_extra) memcpy(all + n, extra, (size_t)n_extra * sizeof *all);
  char size[32], ka[8], mean[96], std[96], thr[48], ep[32], eps[32];
  snprintf(size, sizeof size, "%d", meta->size);
  snprintf(ka, sizeof ka, "%d", meta->keep_aspect);
  snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", meta->norm.mean[0], meta->norm.mean[1], meta->norm.mean[2]);
  snprintf(std, sizeof std, "%.9g,%.9g,%.9g", meta->norm.std[0], meta->norm.std[1], meta->norm.std[2]);
  snprintf(thr, sizeof thr, "%.17g", meta->threshold);
  snprintf(ep, sizeof ep, "%d", meta->epoch);
  /* The shortest text that reads back as the same float ("1e-05", not "9.99999975e-06"). */
  float epsv = meta->bn_eps > 0 ? meta->bn_eps : BN_EPS;
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(eps, sizeof eps, "%.*g", prec, epsv);
    if ((float)strtod(eps, NULL) == epsv) break;
  }
  st_meta base[] = {{"format", MODEL_FORMAT}, {"arch", (char *)meta->arch}, {"size", size},
                    {"keep_aspect", ka},      {"mean", mean},                {"std", std},
                    {"parts", (char *)meta->parts}, {"threshold", thr},      {"epoch", ep},
                    {"metrics", (char *)meta->metrics}, {"bn_eps", eps}};
  int nb = (int)(sizeof base / sizeof base[0]);
  st_meta *md = malloc((size_t)(nb + 2 + n_extra_meta) * sizeof *md);
  if (!md) {
    free(all);
    free(qt.data);
    free(qt.names);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(md, base, sizeof base);
  /* Read back by net_load_tensors; only the archs that have it write it. */
  if (arch_has_aux(&m->arch)) md[nb++] = (st_meta){(char *)"transform_input", (char *)(m->transform_input ? "1" : "0")};
  if (m->in_scale) md[nb++] = (st_meta){(char *)QUANT_META_KEY, (char *)QUANT_INT8};
  if (n_extra_meta) memcpy(md + nb, extra_meta, (size_t)n_extra_meta * sizeof *md);
  rc = st_write(path, all, n + n_extra, md, nb + n_extra_meta, e);
  free(md);
  free(all);
  free(qt.data);
  free(qt.names);
  return rc;
}

/* A scale tensor of n values, each finite and positive, or an error naming it. */
static int quant_scales(const st_file *f, const char *path, const char *name, int64_t n, const float **out,
                        mskx_err *e) {
  const htensor *t = st_find(f, name);
  if (!t) return err_set(e, MSKX_EFORMAT, "%s: int8 model: tensor '%s' is missing", path, name);
  if (t->ndim != 1 || t->shape[0] != n)
    return err_set(e, MSKX_ESHAPE, "%s: int8 model: tensor '%s' has %d dims (%lld values), needs [%lld]", path, name,
                   t->ndim, (long long)(t->ndim ? t->shape[0] : 1), (long long)n);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(t->data[i]) || !(t->data[i] > 0))
      return err_set(e, MSKX_EFORMAT, "%s: int8 model: '%s'[%lld] is %g (scales must be finite and positive)", path,
                     name, (long long)i, (double)t->data[i]);
  *out = t->data;
  return MSKX_OK;
}

int model_file_is_quantised(const st_file *f) { return st_meta_get(f, QUANT_META_KEY) != NULL; }

int model_quant_load(net *m, const st_file *f, const char *path, mskx_err *e) {
  const char *q = st_meta_get(f, QUANT_META_KEY);
  if (!q) return MSKX_OK;
  if (strcmp(q, QUANT_INT8))
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'quantization' is '%s' (this build reads '%s')", path, q, QUANT_INT8);
  if (!arch_has_int8(&m->arch))
    return err_set(e, MSKX_EUNSUPPORTED, "%s: int8 models of arch %s are not supported (DenseNet only)", path,
                   m->arch.name);
  if (!(m->in_scale = calloc((size_t)m->ps.n, sizeof(float)))) return err_set(e, MSKX_ENOMEM, "out of memory");
  char nm[sizeof m->ps.entries[0].name + 16];
  for (int i = 0; i < m->ps.n; i++) {
    if (!net_int8_conv(m, i)) continue;
    const param_entry *en = &m->ps.entries[i];
    size_t stem = strlen(en->name) - strlen(".weight");
    const float *ws = NULL, *is = NULL;
    snprintf(nm, sizeof nm, "%.*s%s", (int)stem, en->name, QUANT_WEIGHT_SCALE);
    int rc = quant_scales(f, path, nm, en->shape[0], &ws, e);
    snprintf(nm, sizeof nm, "%.*s%s", (int)stem, en->name, QUANT_INPUT_SCALE);
    if (!rc) rc = quant_scales(f, path, nm, 1, &is, e);
    if (rc) return rc;
    float *w = ps_data(&m->ps, i);
    size_t per = en->numel / (size_t)en->shape[0];
    for (size_t k = 0; k < en->numel; k++) {
      if (!(w[k] >= -127 && w[k] <= 127 && w[k] == rintf(w[k])))
        return err_set(e, MSKX_EFORMAT, "%s: int8 model: '%s' holds %g, not an 8-bit quantised weight", path,
                       en->name, (double)w[k]);
      w[k] *= ws[k / per];
    }
    m->in_scale[i] = is[0];
  }
  net_params_changed(m);
  return MSKX_OK;
}

static int is_quant_scale(const char *name) {
  return has_suffix(name, QUANT_WEIGHT_SCALE) || has_suffix(name, QUANT_INPUT_SCALE);
}

int model_from_file(const st_file *f, const char *path, engine *eng, net **out, model_meta *meta, mskx_err *e) {
  *out = NULL;
  int rc = model_meta_read(f, path, meta, e);
  net *m = NULL;
  if (!rc) rc = net_create(meta->arch, eng, 0, &m, e);
  if (!rc) m->cx.bn_eps = meta->bn_eps;
  if (!rc) {
    /* Hide training-state tensors (and a quantised file's scales, read by
     * model_quant_load) from the strict name check. */
    st_file view = *f;
    htensor *kept = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *kept);
    if (!kept) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    int k = 0;
    int quant = model_file_is_quantised(f);
    for (int i = 0; !rc && i < f->n_tensors; i++)
      if (strncmp(f->tensors[i].name, TRAIN_STATE_PREFIX, strlen(TRAIN_STATE_PREFIX)) &&
          !(quant && is_quant_scale(f->tensors[i].name)))
        kept[k++] = f->tensors[i];
    view.tensors = kept;
    view.n_tensors = k;
    if (!rc) rc = net_load_tensors(m, &view, path, 0, e);
    free(kept);
    if (!rc) rc = model_quant_load(m, f, path, e);
  }
  if (rc) {
    net_destroy(m);
    return rc;
  }
  *out = m;
  return MSKX_OK;
}

int model_load(const char *path, engine *eng, net **out, model_meta *meta, st_file **file, mskx_err *e) {
  *out = NULL;
  if (file) *file = NULL;
  st_file *f = NULL;
  int rc = st_read(path, &f, e);
  if (!rc) rc = model_from_file(f, path, eng, out, meta, e);
  if (rc || !file)
    st_free(f);
  else
    *file = f;
  return rc;
}

int model_set_threshold(const char *path, double threshold, mskx_err *e) {
  if (!(threshold >= 0 && threshold <= 1)) return err_set(e, MSKX_EINVAL, "threshold must be in [0, 1]");
  st_file *f = NULL;
  int rc = st_read(path, &f, e);
  model_meta meta;
  if (!rc) rc = model_meta_read(f, path, &meta, e);
  if (rc) {
    st_free(f);
    return rc;
  }
  char thr[48];
  snprintf(thr, sizeof thr, "%.17g", threshold);
  st_meta *md = malloc((size_t)(f->n_meta + 1) * sizeof *md);
  if (!md) {
    st_free(f);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  int n = 0, found = 0;
  for (int i = 0; i < f->n_meta; i++) {
    md[n] = f->meta[i];
    if (!strcmp(md[n].key, "threshold")) {
      md[n].value = thr;
      found = 1;
    }
    n++;
  }
  if (!found) md[n++] = (st_meta){"threshold", thr};
  tensor_ref *refs = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *refs);
  if (!refs) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < f->n_tensors; i++) refs[i] = htensor_ref(&f->tensors[i]);
  if (!rc) rc = st_write(path, refs, f->n_tensors, md, n, e);
  free(refs);
  free(md);
  st_free(f);
  return rc;
}
