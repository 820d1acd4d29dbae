/* Optimizers (see optim.h). The element updates follow PyTorch 1.13's
 * single-tensor CPU kernels operation by operation in float32, with the
 * per-step scalars (bias corrections, step sizes) computed in double and
 * rounded to float as torch does when it passes a Python number to a kernel.
 * fmaf marks where torch's AVX2 kernels round once: add_(x, alpha=a) is
 * vec::fmadd(x, a, self) and addcmul_(t1, t2, value=v) is fused as
 * fma(v*t1, t2, self); unfused, moments that cancel to ~0 drift by ~1e-6. */
#include "train/optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

/* Below this many elements a parallel region costs more than it saves. */
#define OPTIM_PARALLEL_MIN 32768

typedef enum optim_kind { OPT_ADAM, OPT_ADAMW, OPT_SGD, OPT_RMSPROP } optim_kind;

/* Elements [lo, hi) that share one step count. */
typedef struct optim_segment {
  size_t lo, hi;
  int64_t step;
} optim_segment;

struct optimizer {
  optim_config cfg;
  optim_kind kind;
  size_t n;
  int n_seg; /* the segments tile [0, n) in order; adjacent ones differ in step */
  optim_segment seg[OPTIM_MAX_SEGMENTS];
  int n_state;
  const char *state_name[OPTIM_MAX_STATE];
  float *state[OPTIM_MAX_STATE];
};

static int kind_of(const char *name, optim_kind *k) {
  static const struct { const char *name; optim_kind kind; } tab[] = {
      {"adam", OPT_ADAM}, {"adamw", OPT_ADAMW}, {"sgd", OPT_SGD}, {"rmsprop", OPT_RMSPROP}};
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (!strcmp(name, tab[i].name)) {
      *k = tab[i].kind;
      return 1;
    }
  return 0;
}

int optim_config_defaults(const char *name, optim_config *c, mskx_err *e) {
  optim_kind k;
  if (!name || !kind_of(name, &k))
    return err_set(e, MSKX_EINVAL, "unknown optimizer '%s' (expected adam, adamw, sgd or rmsprop)",
                   name ? name : "(null)");
  memset(c, 0, sizeof *c);
  strcpy(c->name, name);
  switch (k) {
    case OPT_ADAM:  /* torch.optim.Adam */
    case OPT_ADAMW: /* torch.optim.AdamW: the same, plus decoupled decay 1e-2 */
      c->lr = 1e-3;
      c->beta1 = 0.9;
      c->beta2 = 0.999;
      c->eps = 1e-8;
      c->weight_decay = k == OPT_ADAMW ? 1e-2 : 0.0;
      break;
    case OPT_SGD: /* torch.optim.SGD has no default lr; 0.01 is Keras's */
      c->lr = 1e-2;
      break;
    case OPT_RMSPROP: /* tf.keras.optimizers.RMSprop */
      c->lr = 1e-3;
      c->rho = 0.9;
      c->eps = 1e-7;
      break;
  }
  return MSKX_OK;
}

static int check_range(const char *opt, const char *what, double v, double lo, double hi, int hi_open,
                       mskx_err *e) {
  if (!isfinite(v) || v < lo || (hi_open ? v >= hi : v > hi)) {
    if (isinf(hi))
      return err_set(e, MSKX_EINVAL, "optimizer %s: %s must be a finite number >= %g (got %g)", opt, what, lo, v);
    return err_set(e, MSKX_EINVAL, "optimizer %s: %s must be in [%g, %g%s (got %g)", opt, what, lo, hi,
                   hi_open ? ")" : "]", v);
  }
  return MSKX_OK;
}

int optim_config_validate(const optim_config *c, mskx_err *e) {
  optim_kind k;
  if (!kind_of(c->name, &k))
    return err_set(e, MSKX_EINVAL, "unknown optimizer '%s' (expected adam, adamw, sgd or rmsprop)", c->name);
  const char *n = c->name;
  int rc;
  if ((rc = check_range(n, "learning rate", c->lr, 0, INFINITY, 0, e)) ||
      (rc = check_range(n, "weight decay", c->weight_decay, 0, INFINITY, 0, e)))
    return rc;
  if (k == OPT_ADAM || k == OPT_ADAMW) {
    if ((rc = check_range(n, "beta1", c->beta1, 0, 1, 1, e)) || (rc = check_range(n, "beta2", c->beta2, 0, 1, 1, e)) ||
        (rc = check_range(n, "eps", c->eps, 0, INFINITY, 0, e)))
      return rc;
  }
  if (k == OPT_SGD || k == OPT_RMSPROP) {
    if ((rc = check_range(n, "momentum", c->momentum, 0, INFINITY, 0, e))) return rc;
  }
  if (c->nesterov && (k != OPT_SGD || c->momentum <= 0))
    return err_set(e, MSKX_EINVAL, "optimizer %s: nesterov needs sgd with momentum > 0", n);
  if (k == OPT_RMSPROP) {
    if ((rc = check_range(n, "rho", c->rho, 0, 1, 1, e)) || (rc = check_range(n, "eps", c->eps, 0, INFINITY, 0, e)))
      return rc;
  }
  return MSKX_OK;
}

static void add_state(optimizer *o, const char *name) {
  o->state_name[o->n_state++] = name;
}

int optim_create(const optim_config *c, size_t n_params, optimizer **out, mskx_err *e) {
  *out = NULL;
  int rc = optim_config_validate(c, e);
  if (rc) return rc;
  optimizer *o = calloc(1, sizeof *o);
  if (!o) return err_set(e, MSKX_ENOMEM, "out of memory creating optimizer %s", c->name);
  o->cfg = *c;
  kind_of(c->name, &o->kind);
  o->n = n_params;
  o->n_seg = 1;
  o->seg[0] = (optim_segment){0, n_params, 0};
  switch (o->kind) {
    case OPT_ADAM:
    case OPT_ADAMW:
      add_state(o, "optim.exp_avg");
      add_state(o, "optim.exp_avg_sq");
      break;
    case OPT_SGD:
      if (c->momentum > 0) add_state(o, "optim.momentum_buffer");
      break;
    case OPT_RMSPROP:
      add_state(o, "optim.square_avg");
      if (c->momentum > 0) add_state(o, "optim.momentum_buffer");
      break;
  }
  for (int i = 0; i < o->n_state; i++) {
    o->state[i] = calloc(n_params ? n_params : 1, sizeof(float));
    if (!o->state[i]) {
      optim_destroy(o);
      return err_set(e, MSKX_ENOMEM, "out of memory for %zu-element optimizer state", n_params);
    }
  }
  *out = o;
  return MSKX_OK;
}

void optim_destroy(optimizer *o) {
  if (!o) return;
  for (int i = 0; i < o->n_state; i++) free(o->state[i]);
  free(o);
}

const optim_config *optim_get_config(const optimizer *o) { return &o->cfg; }

static float *state_named(optimizer *o, const char *name) {
  for (int i = 0; i < o->n_state; i++)
    if (!strcmp(o->state_name[i], name)) return o->state[i];
  return NULL;
}

/* torch: grad = grad.add(param, alpha=wd); exp_avg.mul_(b1).add_(grad, alpha=1-b1);
 * exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2);
 * denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom, value=-lr/bc1).
 * AdamW first does param.mul_(1 - lr*wd) and adds no L2 term. */
static void step_adam(optimizer *o, float *p, const float *g, long lo, long hi, int64_t step, double lr) {
  const optim_config *c = &o->cfg;
  const int decoupled = o->kind == OPT_ADAMW;
  const double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
  const float b1 = (float)c->beta1, omb1 = (float)(1.0 - c->beta1);
  const float b2 = (float)c->beta2, omb2 = (float)(1.0 - c->beta2);
  const float neg_step = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps;
  const float wd = decoupled ? 0.0f : (float)c->weight_decay;
  const float shrink = (float)(1.0 - lr * c->weight_decay);
  float *m = o->state[0], *v = o->state[1];
#pragma omp parallel for schedule(static) if (hi - lo >= OPTIM_PARALLEL_MIN)
  for (long i = lo; i < hi; i++) {
    float pi = p[i], gi = g[i];
    if (decoupled) pi *= shrink;
    if (wd != 0.0f) gi = fmaf(pi, wd, gi);
    const float mi = fmaf(gi, omb1, m[i] * b1);
    const float vi = fmaf(omb2 * gi, gi, v[i] * b2);
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step * mi / denom;
  }
}

/* torch (dampening 0): grad += wd*param; buf = buf*momentum + grad (the first
 * step's clone(grad) equals this with buf = 0); nesterov: d = grad + momentum*buf,
 * else d = buf; param.add_(d, alpha=-lr). */
static void step_sgd(optimizer *o, float *p, const float *g, long lo, long hi, int64_t step, double lr) {
  (void)step;
  const optim_config *c = &o->cfg;
  const float wd = (float)c->weight_decay, mom = (float)c->momentum, neg_lr = (float)-lr;
  const int nesterov = c->nesterov, use_mom = c->momentum > 0;
  float *buf = use_mom ? o->state[0] : NULL;
#pragma omp parallel for schedule(static) if (hi - lo >= OPTIM_PARALLEL_MIN)
  for (long i = lo; i < hi; i++) {
    float gi = g[i];
    if (wd != 0.0f) gi = fmaf(p[i], wd, gi);
    float d = gi;
    if (use_mom) {
      const float b = buf[i] * mom + gi;
      buf[i] = b;
      d = nesterov ? fmaf(b, mom, gi) : b;
    }
    p[i] = fmaf(d, neg_lr, p[i]);
  }
}

/* Keras: v = rho*v + (1-rho)*g^2; param -= lr * g / (sqrt(v) + eps), which is
 * torch's RMSprop(alpha=rho, eps=eps) step. Momentum follows torch: buf =
 * momentum*buf + g/denom, and lr*buf is subtracted. Not centered (torch's and
 * Keras's default; mskx has no centered variant). */
static void step_rmsprop(optimizer *o, float *p, const float *g, long lo, long hi, int64_t step, double lr) {
  (void)step;
  const optim_config *c = &o->cfg;
  const float rho = (float)c->rho, omr = (float)(1.0 - c->rho), eps = (float)c->eps;
  const float wd = (float)c->weight_decay, mom = (float)c->momentum, neg_lr = (float)-lr;
  float *sq = state_named(o, "optim.square_avg"), *buf = state_named(o, "optim.momentum_buffer");
#pragma omp parallel for schedule(static) if (hi - lo >= OPTIM_PARALLEL_MIN)
  for (long i = lo; i < hi; i++) {
    float gi = g[i];
    if (wd != 0.0f) gi = fmaf(p[i], wd, gi);
    const float s = fmaf(omr * gi, gi, sq[i] * rho);
    sq[i] = s;
    const float avg = sqrtf(s) + eps;
    if (buf) {
      const float b = buf[i] * mom + gi / avg;
      buf[i] = b;
      p[i] = fmaf(b, neg_lr, p[i]);
    } else {
      p[i] = p[i] + neg_lr * gi / avg;
    }
  }
}

/* Splits the segment containing pos so that a segment starts at pos. */
static int split_at(optimizer *o, size_t pos) {
  for (int i = 0; i < o->n_seg; i++) {
    optim_segment *s = &o->seg[i];
    if (pos <= s->lo || pos >= s->hi) continue;
    if (o->n_seg == OPTIM_MAX_SEGMENTS) return MSKX_ELIMIT;
    memmove(s + 1, s, (size_t)(o->n_seg - i) * sizeof *s);
    o->n_seg++;
    s[0].hi = pos;
    s[1].lo = pos;
    return MSKX_OK;
  }
  return MSKX_OK;
}

static void coalesce(optimizer *o) {
  int k = 0;
  for (int i = 1; i < o->n_seg; i++) {
    if (o->seg[i].step == o->seg[k].step) o->seg[k].hi = o->seg[i].hi;
    else o->seg[++k] = o->seg[i];
  }
  o->n_seg = k + 1;
}

int optim_step_range(optimizer *o, param_store *ps, size_t offset, size_t count, double lr, mskx_err *e) {
  if (ps->n_params != o->n)
    return err_set(e, MSKX_ESHAPE, "optimizer %s has %zu parameters but the store has %zu", o->cfg.name, o->n,
                   ps->n_params);
  if (offset > o->n || count > o->n - offset)
    return err_set(e, MSKX_EINVAL, "optimizer step over [%zu, %zu) is outside the %zu parameters", offset,
                   offset + count, o->n);
  if (count == 0) return MSKX_OK;
  optim_segment saved[OPTIM_MAX_SEGMENTS];
  int n_saved = o->n_seg;
  memcpy(saved, o->seg, sizeof saved);
  if (split_at(o, offset) || split_at(o, offset + count)) {
    memcpy(o->seg, saved, sizeof saved);
    o->n_seg = n_saved;
    return err_set(e, MSKX_ELIMIT, "optimizer %s: more than %d ranges with different step counts", o->cfg.name,
                   OPTIM_MAX_SEGMENTS);
  }
  float *params = ps->params;
  const float *grads = ps->grads;
  for (int i = 0; i < o->n_seg; i++) {
    optim_segment *s = &o->seg[i];
    if (s->lo < offset || s->hi > offset + count) continue;
    s->step++;
    long lo = (long)s->lo, hi = (long)s->hi;
    switch (o->kind) {
      case OPT_ADAM:
      case OPT_ADAMW: step_adam(o, params, grads, lo, hi, s->step, lr); break;
      case OPT_SGD: step_sgd(o, params, grads, lo, hi, s->step, lr); break;
      case OPT_RMSPROP: step_rmsprop(o, params, grads, lo, hi, s->step, lr); break;
    }
  }
  coalesce(o);
  ps->version++; /* the parameters changed: caches keyed by the version rebuild */
  return MSKX_OK;
}

int optim_step(optimizer *o, param_store *ps, double lr, mskx_err *e) {
  return optim_step_range(o, ps, 0, ps->n_params, lr, e); /* the whole buffer never needs a split */
}

int optim_state_tensors(const optimizer *o, tensor_ref out[OPTIM_MAX_STATE]) {
  for (int i = 0; i < o->n_state; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].name = o->state_name[i];
    out[i].ndim = 1;
    out[i].shape[0] = (int64_t)o->n;
    out[i].data = o->state[i];
  }
  return o->n_state;
}

int64_t optim_get_step(const optimizer *o) {
  int64_t m = 0;
  for (int i = 0; i < o->n_seg; i++)
    if (o->seg[i].step > m) m = o->seg[i].step;
  return m;
}

int optim_steps_format(const optimizer *o, char *buf, size_t n, mskx_err *e) {
  size_t used = 0;
  for (int i = 0; i < o->n_seg; i++) {
    const optim_segment *s = &o->seg[i];
    int k = o->n_seg == 1 ? snprintf(buf + used, n - used, "%lld", (long long)s->step)
                          : snprintf(buf + used, n - used, "%s%zu:%zu:%lld", i ? ";" : "", s->lo, s->hi,
                                     (long long)s->step);
    if (k < 0 || (size_t)k >= n - used)
      return err_set(e, MSKX_EINVAL, "optimizer step counts do not fit in %zu bytes", n);
    used += (size_t)k;
  }
  return MSKX_OK;
}

/* A decimal integer in [0, max] at *p (no sign, no blanks); advances *p. */
static int read_u64(const char **p, uint64_t max, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (*s < '0' || *s > '9') return 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (max - (uint64_t)(*s - '0')) / 10) return 0;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *p = s;
  *out = v;
  return 1;
}

int optim_steps_parse(optimizer *o, const char *text, mskx_err *e) {
  const char *p = text;
  uint64_t v, lo, hi;
  if (read_u64(&p, INT64_MAX, &v) && !*p) {
    o->n_seg = 1; /* every parameter at step v */
    o->seg[0] = (optim_segment){0, o->n, (int64_t)v};
    return MSKX_OK;
  }
  optim_segment seg[OPTIM_MAX_SEGMENTS];
  int ns = 0;
  size_t next = 0;
  for (p = text;; p++) {
    if (ns == OPTIM_MAX_SEGMENTS || !read_u64(&p, SIZE_MAX, &lo) || *p++ != ':' || !read_u64(&p, SIZE_MAX, &hi) ||
        *p++ != ':' || !read_u64(&p, INT64_MAX, &v) || (*p && *p != ';'))
      return err_set(e, MSKX_EFORMAT, "optimizer step counts '%.80s': malformed (expected N or lo:hi:N;...)", text);
    if (lo != next || hi <= lo || hi > o->n)
      return err_set(e, MSKX_EFORMAT, "optimizer step counts '%.80s': ranges must tile [0, %zu) in order", text, o->n);
    seg[ns++] = (optim_segment){(size_t)lo, (size_t)hi, (int64_t)v};
    next = (size_t)hi;
    if (!*p) break;
  }
  if (next != o->n)
    return err_set(e, MSKX_EFORMAT, "optimizer step counts '%.80s' cover %zu of %zu parameters", text, next, o->n);
  memcpy(o->seg, seg, (size_t)ns * sizeof seg[0]);
  o->n_seg = ns;
  coalesce(o);
  return MSKX_OK;
}

int optim_state_load(optimizer *o, const st_file *f, const char *prefix, mskx_err *e) {
  const htensor *src[OPTIM_MAX_STATE] = {0};
  for (int s = 0; s < o->n_state; s++) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, o->state_name[s]);
    src[s] = st_find(f, name);
    if (!src[s])
      return err_set(e, MSKX_EFORMAT, "optimizer %s state '%s' is missing (checkpoint from another optimizer?)",
                     o->cfg.name, name);
    int64_t numel = htensor_numel(src[s]);
    if (numel != (int64_t)o->n)
      return err_set(e, MSKX_ESHAPE, "optimizer state '%s' has %lld elements but the model has %zu parameters",
                     o->state_name[s], (long long)numel, o->n);
  }
  for (int s = 0; s < o->n_state; s++) memcpy(o->state[s], src[s]->data, o->n * sizeof(float));
  return MSKX_OK;
}
