/* Network lifecycle and weight loading, shared by all model families. */
#include "models/net.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

int net_create(const char *arch, engine *eng, uint64_t seed, net **out, mskx_err *e) {
  *out = NULL;
  net *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = arch_parse(arch, &m->arch, e);
  m->cx.eng = eng;
  m->cx.ps = &m->ps;
  m->head_w = m->head_b = m->aux_head_w = m->aux_head_b = -1;
  m->seed = seed;
  if (!rc) switch (m->arch.family) {
      case ARCH_DENSENET: rc = densenet_build(m, e); break;
      case ARCH_RESNET: rc = resnet_build(m, e); break;
      case ARCH_INCEPTION: rc = inception_build(m, e); break;
    }
  if (!rc) rc = ps_alloc(&m->ps, e);
  if (rc) {
    net_destroy(m);
    return rc;
  }
  m->vt->init(m, seed);
  *out = m;
  return MSKX_OK;
}

void net_destroy(net *m) {
  if (!m) return;
  if (m->vt) {
    if (m->planned) m->vt->unplan(m);
    m->vt->destroy_model(m);
  }
  ps_free(&m->ps);
  free(m->in_scale);
  free(m);
}

int net_copy_weights(net *dst, const net *src, mskx_err *e) {
  if (strcmp(dst->arch.name, src->arch.name) || dst->ps.n_params != src->ps.n_params ||
      dst->ps.n_buffers != src->ps.n_buffers)
    return err_set(e, MSKX_EINTERNAL, "copying weights between different archs (%s, %s)", src->arch.name,
                   dst->arch.name);
  memcpy(dst->ps.params, src->ps.params, src->ps.n_params * sizeof(float));
  memcpy(dst->ps.buffers, src->ps.buffers, src->ps.n_buffers * sizeof(float));
  dst->cx.bn_eps = src->cx.bn_eps;
  dst->transform_input = src->transform_input;
  free(dst->in_scale);
  dst->in_scale = NULL;
  if (src->in_scale) {
    if (!(dst->in_scale = malloc((size_t)src->ps.n * sizeof(float)))) return err_set(e, MSKX_ENOMEM, "out of memory");
    memcpy(dst->in_scale, src->in_scale, (size_t)src->ps.n * sizeof(float));
  }
  if (dst->planned) dst->vt->unplan(dst);
  dst->planned = 0;
  net_params_changed(dst);
  return MSKX_OK;
}

int net_plan(net *m, int n, int h, int w, int train, precision prec, mskx_err *e) {
  if (m->in_scale && train)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: an int8 (quantised) model cannot be trained: its weights are rounded "
                   "to 8 bits and its plans are inference-only; train the fp32 model it came from", m->arch.name);
  /* Quantised models run int8 convolutions whatever precision was asked; the
   * rest of their network (stem, classifier) runs fp32. */
  if (m->in_scale) prec = PREC_FP32;
  if (m->planned && m->n == n && m->h == h && m->w == w && m->cx.train == train && m->cx.prec == prec &&
      m->planned_aux == m->aux_weight && m->cx.int8 == (m->in_scale != NULL))
    return MSKX_OK;
  int aux = train && m->aux_weight > 0, minsz = arch_min_size(&m->arch, aux);
  if (n <= 0) return err_set(e, MSKX_EINVAL, "batch size must be positive");
  if (h < minsz || w < minsz)
    return err_set(e, MSKX_EINVAL, "%s needs inputs of at least %dx%d%s, got %dx%d", m->arch.name, minsz, minsz,
                   aux ? " to train with its auxiliary classifier (an aux weight of 0 allows smaller ones)" : "", h,
                   w);
  if (m->planned) m->vt->unplan(m);
  m->planned = 0;
  m->cx.train = train;
  m->cx.prec = prec;
  m->cx.int8 = m->in_scale != NULL;
  m->cx.in_scale = m->in_scale;
  int rc = m->vt->plan(m, n, h, w, e);
  if (rc) {
    m->vt->unplan(m);
    return rc;
  }
  m->planned = 1;
  m->planned_aux = m->aux_weight;
  m->n = n;
  m->h = h;
  m->w = w;
  return MSKX_OK;
}

int net_forward(net *m, const float *x, float *logits, mskx_err *e) {
  if (!m->planned) return err_set(e, MSKX_EINTERNAL, "forward before planning");
  return m->vt->forward(m, x, logits, e);
}

int net_backward(net *m, const float *dlogits, mskx_err *e) {
  if (!m->planned || !m->cx.train) return err_set(e, MSKX_EINTERNAL, "backward needs a training plan");
  return m->vt->backward(m, dlogits, e);
}

double net_loss(net *m, const float *logits, const float *t, const float *w, int n, float *dz) {
  const engine_ops *op = m->cx.eng->ops;
  double loss = op->bce_logits(logits, t, w, n, dz);
  if (!m->aux_logits) return loss;
  double aux = op->bce_logits(m->aux_logits, t, w, n, m->aux_dz);
  for (int i = 0; i < n; i++) m->aux_dz[i] *= m->aux_weight;
  return loss + m->aux_weight * aux;
}

void net_scale_loss_grad(net *m, float *dz, int n, float s) {
  for (int i = 0; i < n; i++) {
    dz[i] *= s;
    if (m->aux_dz) m->aux_dz[i] *= s;
  }
}

int net_set_transform_input(net *m, int on, mskx_err *e) {
  if (on && m->arch.family != ARCH_INCEPTION)
    return err_set(e, MSKX_EINVAL, "transform_input is an Inception-v3 setting; arch %s has none", m->arch.name);
  m->transform_input = on ? 1 : 0;
  return MSKX_OK;
}

int net_int8_conv(const net *m, int idx) {
  const param_entry *en = &m->ps.entries[idx];
  return arch_has_int8(&m->arch) && en->kind == PK_PARAM && en->ndim == 4 && strcmp(en->name, "features.conv0.weight");
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static int is_head(const net *m, int idx) {
  return idx == m->head_w || idx == m->head_b || idx == m->aux_head_w || idx == m->aux_head_b;
}

int net_load_tensors(net *m, const st_file *f, const char *what, int reinit_head, mskx_err *e) {
  char s1[64], s2[64];
  const char *ti = st_meta_get(f, "transform_input");
  if (ti) {
    if (strcmp(ti, "0") && strcmp(ti, "1"))
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'transform_input' must be 0 or 1, got '%s'", what, ti);
    int rc = net_set_transform_input(m, ti[0] == '1', e);
    if (rc) return err_prefix(e, "%s", what);
  }
  for (int i = 0; i < f->n_tensors; i++) {
    const htensor *t = &f->tensors[i];
    if (ends_with(t->name, ".num_batches_tracked")) continue;
    if (ps_find(&m->ps, t->name) < 0)
      return err_set(e, MSKX_ESHAPE, "%s: unexpected tensor '%s' for arch %s", what, t->name, m->arch.name);
  }
  for (int idx = 0; idx < m->ps.n; idx++) {
    const param_entry *en = &m->ps.entries[idx];
    const htensor *t = st_find(f, en->name);
    if (!t) return err_set(e, MSKX_ESHAPE, "%s: missing tensor '%s' for arch %s", what, en->name, m->arch.name);
    int same = t->ndim == en->ndim;
    for (int d = 0; same && d < en->ndim; d++) same = t->shape[d] == en->shape[d];
    if (!same) {
      if (reinit_head && is_head(m, idx)) continue;
      return err_set(e, MSKX_ESHAPE, "%s: tensor '%s' has shape %s, arch %s needs %s%s", what, en->name,
                     shape_str(s1, sizeof s1, t->ndim, t->shape), m->arch.name,
                     shape_str(s2, sizeof s2, en->ndim, en->shape),
                     is_head(m, idx) ? " (use the option that re-initialises the head to load ImageNet weights)" : "");
    }
    memcpy(ps_data(&m->ps, idx), t->data, en->numel * sizeof(float));
  }
  net_params_changed(m);
  return MSKX_OK;
}
