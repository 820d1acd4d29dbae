/* Network lifecycle and weight loading, shared by all model families. */
#include "models/net.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"

int net_create(const char *arch, engine *eng, uint64_t seed, net **out, mskx_err *e) {
  *out = NULL;
  net *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = arch_parse(arch, &m->arch, e);
  m->cx.eng = eng;
  m->cx.ps = &m->ps;
  m->head_w = m->head_b = m->aux_head_w = m->aux_head_b = -1;
  m->seed = seed;
  m->keep_plans = 1;
  m->auto_prec[0] = m->auto_prec[1] = -1;
  if (!rc) rc = m->arch.family->build(m, e);
  if (!rc) rc = ps_alloc(&m->ps, e);
  if (rc) {
    net_destroy(m);
    return rc;
  }
  m->vt->init(m, seed);
  *out = m;
  return MSKX_OK;
}

/* The plan fields of the network as a slot, and back. */
static net_plan_slot slot_of(const net *m) {
  net_plan_slot s = {m->impl, m->planned, m->n, m->h, m->w, m->cx.train, m->cx.prec, m->planned_aux_weight,
                     m->aux_logits, m->aux_dz};
  return s;
}

static void slot_load(net *m, const net_plan_slot *s) {
  m->impl = s->impl;
  m->planned = s->planned;
  m->n = s->n;
  m->h = s->h;
  m->w = s->w;
  m->cx.train = s->train;
  m->cx.prec = s->prec;
  m->planned_aux_weight = s->aux;
  m->aux_logits = s->aux_logits;
  m->aux_dz = s->aux_dz;
}

/* A never planned implementation of m's arch: the family's builder run on a
 * scratch parameter store (declaration is deterministic, so every store
 * index it records equals m's), whose entries are then thrown away. */
static int fresh_impl(net *m, void **out, mskx_err *e) {
  net t;
  memset(&t, 0, sizeof t);
  t.arch = m->arch;
  t.cx.eng = m->cx.eng;
  t.cx.ps = &t.ps;
  t.head_w = t.head_b = t.aux_head_w = t.aux_head_b = -1;
  int rc = m->arch.family->build(&t, e);
  ps_free(&t.ps);
  if (rc) {
    if (t.vt && t.impl) t.vt->destroy_model(&t);
    return rc;
  }
  *out = t.impl;
  return MSKX_OK;
}

/* Frees an implementation that is not the current one. */
static void impl_destroy(net *m, void *impl) {
  if (!impl) return;
  void *cur = m->impl;
  m->impl = impl;
  m->vt->destroy_model(m);
  m->impl = cur;
}

/* Unplans the parked slot; its implementation becomes the spare. */
static void drop_parked(net *m) {
  if (!m->parked.impl) return;
  net_plan_slot cur = slot_of(m);
  if (m->parked.planned) {
    double t0 = now_seconds();
    slot_load(m, &m->parked);
    m->vt->unplan(m);
    m->plan_stats.dropped++;
    m->plan_stats.seconds += now_seconds() - t0;
  }
  if (m->spare_impl)
    impl_destroy(m, m->parked.impl);
  else
    m->spare_impl = m->parked.impl;
  slot_load(m, &cur);
  m->parked = (net_plan_slot){0};
}

void net_drop_parked(net *m) {
  if (m && m->vt) drop_parked(m);
}

int net_set_keep_plans(net *m, int keep, mskx_err *e) {
  if (keep < 1 || keep > NET_MAX_PLANS)
    return err_set(e, MSKX_EINVAL, "resident plans: %d (1 to %d)", keep, NET_MAX_PLANS);
  m->keep_plans = keep;
  if (keep < 2) drop_parked(m);
  return MSKX_OK;
}

void net_destroy(net *m) {
  if (!m) return;
  if (m->vt) {
    drop_parked(m);
    if (m->planned) m->vt->unplan(m);
    m->vt->destroy_model(m);
    impl_destroy(m, m->spare_impl);
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
  net_params_changed(dst);
  return MSKX_OK;
}

static int slot_is(const net_plan_slot *s, const net *m, int n, int h, int w, int train, precision prec) {
  return s->planned && s->n == n && s->h == h && s->w == w && s->train == train && s->prec == prec &&
         s->aux == m->aux_weight;
}

int net_plan(net *m, int n, int h, int w, int train, precision prec, mskx_err *e) {
  if (m->in_scale && train)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: an int8 (quantised) model cannot be trained: its weights are rounded "
                   "to 8 bits and its plans are inference-only; train the fp32 model it came from", m->arch.name);
  /* Quantised models run int8 convolutions whatever precision was asked; the
   * rest of their network (stem, classifier) runs fp32. */
  if (m->in_scale) prec = PREC_FP32;
  if (m->cx.int8 != (m->in_scale != NULL)) {
    /* The net became int8 (or fp32) since its plans were made: none is valid. */
    drop_parked(m);
    if (m->planned) m->vt->unplan(m);
    m->planned = 0;
  }
  if (prec == PREC_AUTO) {
    int t = train ? 1 : 0;
    if (m->auto_prec[t] < 0) {
      net_prec_choice c;
      return net_choose_precision(m, n, h, w, train, 0, &c, e);
    }
    prec = (precision)m->auto_prec[t];
  }
  if (prec != PREC_FP32 && prec != PREC_BF16) return err_set(e, MSKX_EINVAL, "unknown precision %d", (int)prec);
  net_plan_slot cur = slot_of(m);
  if (slot_is(&cur, m, n, h, w, train, prec)) return MSKX_OK;
  int aux = train && m->aux_weight > 0, minsz = arch_min_size(&m->arch, aux);
  if (n <= 0) return err_set(e, MSKX_EINVAL, "batch size must be positive");
  if (h < minsz || w < minsz)
    return err_set(e, MSKX_EINVAL, "%s needs inputs of at least %dx%d%s, got %dx%d", m->arch.name, minsz, minsz,
                   aux ? " to train with its auxiliary classifier (an aux weight of 0 allows smaller ones)" : "", h,
                   w);
  if (slot_is(&m->parked, m, n, h, w, train, prec)) {
    /* The other resident plan: swap, nothing is built. */
    slot_load(m, &m->parked);
    m->parked = cur;
    m->plan_stats.reused++;
    return MSKX_OK;
  }
  double t0 = now_seconds();
  /* oneDNN picks its kernels' thread split at primitive creation. */
  int threads = engine_threads_enter(m->cx.eng);
  if (m->keep_plans >= 2 && m->planned) {
    /* Park the current plan; the new one goes into another implementation. */
    drop_parked(m);
    void *impl = m->spare_impl;
    m->spare_impl = NULL;
    int rc = impl ? MSKX_OK : fresh_impl(m, &impl, e);
    if (rc) {
      engine_threads_leave(threads);
      return rc;
    }
    m->parked = slot_of(m);
    net_plan_slot empty = {.impl = impl};
    slot_load(m, &empty);
  } else if (m->planned) {
    m->vt->unplan(m);
  }
  m->planned = 0;
  m->cx.train = train;
  m->cx.prec = prec;
  m->cx.int8 = m->in_scale != NULL;
  m->cx.in_scale = m->in_scale;
  int rc = m->vt->plan(m, n, h, w, e);
  if (rc) m->vt->unplan(m);
  engine_threads_leave(threads);
  if (rc) {
    m->plan_stats.seconds += now_seconds() - t0;
    return rc;
  }
  m->planned = 1;
  m->planned_aux_weight = m->aux_weight;
  m->n = n;
  m->h = h;
  m->w = w;
  m->plan_stats.built++;
  m->plan_stats.seconds += now_seconds() - t0;
  return MSKX_OK;
}

int net_bf16_native(const net *m) {
  return !strcmp(m->cx.eng->ops->name, "onednn") && engine_dnnl_has_bf16();
}

/* Steps the auto selection takes per candidate: untimed, then timed. */
#define AUTO_WARMUP_STEPS 1
#define AUTO_TIMED_STEPS 2

/* One trial step: forward, and for training the loss gradient and backward. */
static int trial_step(net *m, const float *x, float *logits, float *t, float *dz, mskx_err *e) {
  int rc = net_forward(m, x, logits, e);
  if (rc || !m->cx.train) return rc;
  net_loss(m, logits, t, NULL, m->n, dz);
  return net_backward(m, dz, e);
}

int net_choose_precision(net *m, int n, int h, int w, int train, unsigned allowed, net_prec_choice *out,
                         mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (!allowed) allowed = ~0u;
  precision cand[PREC_COUNT];
  int nc = 0;
  if (allowed & (1u << PREC_FP32)) cand[nc++] = PREC_FP32;
  if ((allowed & (1u << PREC_BF16)) && net_bf16_native(m)) cand[nc++] = PREC_BF16;
  if (!nc) return err_set(e, MSKX_EUNSUPPORTED, "precision auto: no allowed precision runs on this machine");
  size_t nx = (size_t)n * h * w * 3;
  float *x = malloc(nx * sizeof *x), *buf = malloc(3 * (size_t)n * sizeof *buf);
  float *keep = malloc((m->ps.n_buffers + (train ? m->ps.n_params : 0) + 1) * sizeof *keep);
  if (!x || !buf || !keep) {
    free(x);
    free(buf);
    free(keep);
    return err_set(e, MSKX_ENOMEM, "precision auto: out of memory");
  }
  /* Inputs like normalised images; the network's state is put back after. */
  rng r = rng_for(m->seed, 0x70726563ull, 0);
  for (size_t i = 0; i < nx; i++) x[i] = (float)rng_normal(&r);
  for (int i = 0; i < n; i++) buf[n + i] = (float)(i & 1);
  memcpy(keep, m->ps.buffers, m->ps.n_buffers * sizeof *keep);
  if (train) memcpy(keep + m->ps.n_buffers, m->ps.grads, m->ps.n_params * sizeof *keep);
  uint64_t key = m->dropout_key;
  layer_ctx hooks = m->cx;
  m->cx.grad_ready = NULL;
  m->cx.bn_sum = NULL;
  int rc = MSKX_OK, best = 0;
  for (int c = 0; c < nc && !rc; c++) {
    rc = net_plan(m, n, h, w, train, cand[c], e);
    double ms = INFINITY;
    for (int s = 0; s < AUTO_WARMUP_STEPS + AUTO_TIMED_STEPS && !rc; s++) {
      double t0 = now_seconds();
      rc = trial_step(m, x, buf, buf + n, buf + 2 * n, e);
      double dt = (now_seconds() - t0) * 1e3;
      if (s >= AUTO_WARMUP_STEPS && dt < ms) ms = dt;
    }
    out->cand[c] = cand[c];
    out->ms[c] = ms;
    if (ms < out->ms[best]) best = c;
  }
  out->n = nc;
  m->cx.grad_ready = hooks.grad_ready;
  m->cx.bn_sum = hooks.bn_sum;
  m->dropout_key = key;
  memcpy(m->ps.buffers, keep, m->ps.n_buffers * sizeof *keep);
  if (train) memcpy(m->ps.grads, keep + m->ps.n_buffers, m->ps.n_params * sizeof *keep);
  free(x);
  free(buf);
  free(keep);
  if (rc) return err_prefix(e, "precision auto");
  out->chosen = cand[best];
  m->auto_prec[train ? 1 : 0] = (int)cand[best];
  rc = net_plan(m, n, h, w, train, cand[best], e);
  /* The losing candidate is not worth memory. */
  if (!rc && slot_is(&m->parked, m, n, h, w, train, m->parked.prec)) drop_parked(m);
  return rc;
}

int net_forward(net *m, const float *x, float *logits, mskx_err *e) {
  if (!m->planned) return err_set(e, MSKX_EINTERNAL, "forward before planning");
  int threads = engine_threads_enter(m->cx.eng);
  int rc = m->vt->forward(m, x, logits, e);
  engine_threads_leave(threads);
  return rc;
}

int net_backward(net *m, const float *dlogits, mskx_err *e) {
  if (!m->planned || !m->cx.train) return err_set(e, MSKX_EINTERNAL, "backward needs a training plan");
  int threads = engine_threads_enter(m->cx.eng);
  int rc = m->vt->backward(m, dlogits, e);
  engine_threads_leave(threads);
  return rc;
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
  if (on && !arch_has_aux(&m->arch))
    return err_set(e, MSKX_EINVAL, "transform_input is an Inception-v3 setting; arch %s has none", m->arch.name);
  m->transform_input = on ? 1 : 0;
  return MSKX_OK;
}

int net_head_slice(const net *m, size_t *offset, mskx_err *e) {
  const param_store *ps = &m->ps;
  if (m->head_w < 0 || m->head_b < 0) return err_set(e, MSKX_EINTERNAL, "%s has no classifier", m->arch.name);
  size_t off = ps->entries[m->head_w].offset;
  for (int i = 0; i < ps->n; i++) {
    const param_entry *en = &ps->entries[i];
    if (en->kind != PK_PARAM || i == m->head_w || i == m->head_b) continue;
    if (en->offset >= off)
      return err_set(e, MSKX_EINTERNAL,
                     "%s: parameter '%s' is declared after the classifier '%s', so the backbone cannot be frozen "
                     "(the builder must declare the classifier last)",
                     m->arch.name, en->name, ps->entries[m->head_w].name);
  }
  if (ps->entries[m->head_b].offset < off)
    return err_set(e, MSKX_EINTERNAL, "%s: the classifier's bias '%s' is declared before its weight", m->arch.name,
                   ps->entries[m->head_b].name);
  *offset = off;
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
    if (ends_with(t->name, ".num_batches_tracked") || !strncmp(t->name, TRAIN_STATE_PREFIX, strlen(TRAIN_STATE_PREFIX)))
      continue;
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
