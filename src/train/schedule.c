/* Learning-rate schedules (see schedule.h). The plateau rule transcribes
 * Keras 2's ReduceLROnPlateau.on_epoch_end; docs/training_options.md relates
 * it to PyTorch's ReduceLROnPlateau. */
#include "train/schedule.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

/* Defaults. Step decay: the seed post (lr halves every 10 epochs). Plateau:
 * keras.callbacks.ReduceLROnPlateau; factor 0.1 is also the MURA paper's
 * "decayed by a factor of 10 each time the validation loss plateaus". */
#define STEP_DROP 0.5
#define STEP_EPOCHS_DROP 10.0
#define PLATEAU_FACTOR 0.1
#define PLATEAU_PATIENCE 10
#define PLATEAU_MIN_DELTA 1e-4

typedef enum sched_kind { SK_CONSTANT, SK_STEP, SK_PLATEAU, SK_COSINE } sched_kind;

struct schedule {
  schedule_config cfg;
  sched_kind kind;
  int mode_max; /* plateau: higher monitored values are better */
  schedule_state st;
};

static int kind_of(const char *name, sched_kind *k) {
  static const struct { const char *name; sched_kind kind; } tab[] = {
      {"constant", SK_CONSTANT}, {"step", SK_STEP}, {"plateau", SK_PLATEAU}, {"cosine", SK_COSINE}};
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (!strcmp(name, tab[i].name)) {
      *k = tab[i].kind;
      return 1;
    }
  return 0;
}

/* 1 for max mode, 0 for min mode, -1 for an unknown monitor. */
static int monitor_mode(const char *m) {
  if (!strcmp(m, "val_loss")) return 0;
  if (!strcmp(m, "val_kappa")) return 1;
  return -1;
}

int schedule_config_defaults(const char *name, double lr0, schedule_config *c, mskx_err *e) {
  sched_kind k;
  if (!name || !kind_of(name, &k))
    return err_set(e, MSKX_EINVAL, "unknown learning-rate schedule '%s' (expected constant, step, plateau or cosine)",
                   name ? name : "(null)");
  memset(c, 0, sizeof *c);
  strcpy(c->name, name);
  c->lr0 = lr0;
  c->drop = STEP_DROP;
  c->epochs_drop = STEP_EPOCHS_DROP;
  strcpy(c->monitor, "val_loss");
  c->factor = PLATEAU_FACTOR;
  c->patience = PLATEAU_PATIENCE;
  c->min_delta = PLATEAU_MIN_DELTA;
  c->cooldown = 0;
  c->min_lr = 0.0;
  c->epochs = 0; /* cosine: the caller sets the total */
  c->warmup_epochs = 0.0;
  return MSKX_OK;
}

static int bad(mskx_err *e, const schedule_config *c, const char *what, double v) {
  return err_set(e, MSKX_EINVAL, "schedule %s: %s (got %g)", c->name, what, v);
}

int schedule_config_validate(const schedule_config *c, mskx_err *e) {
  sched_kind k;
  if (!kind_of(c->name, &k))
    return err_set(e, MSKX_EINVAL, "unknown learning-rate schedule '%s' (expected constant, step, plateau or cosine)",
                   c->name);
  if (!isfinite(c->lr0) || c->lr0 < 0) return bad(e, c, "learning rate must be a finite number >= 0", c->lr0);
  if (k == SK_STEP) {
    if (!isfinite(c->drop) || c->drop <= 0) return bad(e, c, "drop must be a finite number > 0", c->drop);
    if (!isfinite(c->epochs_drop) || c->epochs_drop <= 0)
      return bad(e, c, "epochs_drop must be a finite number > 0", c->epochs_drop);
  }
  if (k == SK_PLATEAU || k == SK_COSINE) {
    if (!isfinite(c->min_lr) || c->min_lr < 0) return bad(e, c, "min_lr must be a finite number >= 0", c->min_lr);
  }
  if (k == SK_PLATEAU) {
    if (monitor_mode(c->monitor) < 0)
      return err_set(e, MSKX_EINVAL, "schedule plateau: unknown monitor '%s' (expected val_loss or val_kappa)",
                     c->monitor);
    if (!(c->factor > 0 && c->factor < 1)) return bad(e, c, "factor must be in (0, 1)", c->factor);
    if (!isfinite(c->min_delta) || c->min_delta < 0)
      return bad(e, c, "min_delta must be a finite number >= 0", c->min_delta);
    if (c->patience < 0) return bad(e, c, "patience must be >= 0", c->patience);
    if (c->cooldown < 0) return bad(e, c, "cooldown must be >= 0", c->cooldown);
  }
  if (k == SK_COSINE) {
    if (c->epochs < 1) return bad(e, c, "the number of epochs must be >= 1", c->epochs);
    if (!isfinite(c->warmup_epochs) || c->warmup_epochs < 0 || c->warmup_epochs >= c->epochs)
      return bad(e, c, "warmup epochs must be >= 0 and below the number of epochs", c->warmup_epochs);
    if (c->min_lr > c->lr0) return bad(e, c, "min_lr must not exceed the learning rate", c->min_lr);
  }
  return MSKX_OK;
}

static void reset_state(schedule *s) {
  s->st.lr = s->cfg.lr0;
  s->st.best = s->mode_max ? -INFINITY : INFINITY;
  s->st.wait = 0;
  s->st.cooldown_counter = 0;
  s->st.n_reductions = 0;
}

int schedule_create(const schedule_config *c, schedule **out, mskx_err *e) {
  *out = NULL;
  int rc = schedule_config_validate(c, e);
  if (rc) return rc;
  schedule *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory creating schedule %s", c->name);
  s->cfg = *c;
  kind_of(c->name, &s->kind);
  s->mode_max = monitor_mode(c->monitor) == 1;
  reset_state(s);
  *out = s;
  return MSKX_OK;
}

void schedule_destroy(schedule *s) { free(s); }


/* Linear warmup to lr0 over W steps (lr0 * (t+1)/W, so the first step is not
 * zero), then torch's CosineAnnealingLR closed form over the remaining steps. */
static double cosine_lr(const schedule_config *c, long t, long spe) {
  long total = (long)c->epochs * spe;
  long warm = (long)llround(c->warmup_epochs * (double)spe);
  if (t < warm) return c->lr0 * (double)(t + 1) / (double)warm;
  long span = total - warm, tc = t - warm;
  if (span <= 0) return c->lr0;
  if (tc > span) tc = span;
  return c->min_lr + (c->lr0 - c->min_lr) * (1.0 + cos(M_PI * (double)tc / (double)span)) / 2.0;
}

double schedule_lr(const schedule *s, int epoch, int step_in_epoch, int steps_per_epoch) {
  const schedule_config *c = &s->cfg;
  switch (s->kind) {
    case SK_CONSTANT: return c->lr0;
    case SK_STEP: return c->lr0 * pow(c->drop, floor((1.0 + epoch) / c->epochs_drop));
    case SK_PLATEAU: return s->st.lr;
    case SK_COSINE: {
      long spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
      return cosine_lr(c, (long)epoch * spe + step_in_epoch, spe);
    }
  }
  return c->lr0;
}

int schedule_epoch_end(schedule *s, double current) {
  if (s->kind != SK_PLATEAU) return 0;
  const schedule_config *c = &s->cfg;
  schedule_state *st = &s->st;
  /* Keras: the cooldown counter is decremented (and wait cleared) before the
   * comparison, so the last cooldown epoch already counts as a bad epoch. */
  if (st->cooldown_counter > 0) {
    st->cooldown_counter--;
    st->wait = 0;
  }
  int better = s->mode_max ? current > st->best + c->min_delta : current < st->best - c->min_delta;
  if (better) {
    st->best = current;
    st->wait = 0;
    return 0;
  }
  if (st->cooldown_counter > 0) return 0;
  st->wait++;
  if (st->wait < c->patience || !(st->lr > c->min_lr)) return 0;
  st->lr = fmax(st->lr * c->factor, c->min_lr);
  st->cooldown_counter = c->cooldown;
  st->wait = 0;
  st->n_reductions++;
  return 1;
}

void schedule_get_state(const schedule *s, schedule_state *st) { *st = s->st; }

static int state_check(const schedule_state *st, mskx_err *e) {
  if (!isfinite(st->lr) || st->lr < 0) return err_set(e, MSKX_EINVAL, "schedule state: bad learning rate %g", st->lr);
  if (isnan(st->best)) return err_set(e, MSKX_EINVAL, "schedule state: best value is NaN");
  if (st->wait < 0 || st->cooldown_counter < 0 || st->n_reductions < 0)
    return err_set(e, MSKX_EINVAL, "schedule state: negative counter");
  return MSKX_OK;
}

int schedule_set_state(schedule *s, const schedule_state *st, mskx_err *e) {
  int rc = state_check(st, e);
  if (rc) return rc;
  s->st = *st;
  return MSKX_OK;
}

int schedule_state_format(const schedule_state *st, char *buf, size_t n, mskx_err *e) {
  int k = snprintf(buf, n, "lr=%.17g;best=%.17g;wait=%d;cooldown=%d;reductions=%d", st->lr, st->best, st->wait,
                   st->cooldown_counter, st->n_reductions);
  if (k < 0 || (size_t)k >= n) return err_set(e, MSKX_EINVAL, "schedule state needs %d bytes, buffer has %zu", k, n);
  return MSKX_OK;
}

/* Reads "key=" at *p followed by a number ending at ';' or the end. */
static int field(const char **p, const char *key, int is_int, double *dv, int *iv, const char *text, mskx_err *e) {
  size_t kl = strlen(key);
  if (strncmp(*p, key, kl) || (*p)[kl] != '=')
    return err_set(e, MSKX_EFORMAT, "schedule state '%.80s': expected '%s=' at offset %d", text, key, (int)(*p - text));
  const char *v = *p + kl + 1;
  char *end;
  errno = 0;
  if (is_int) {
    long x = strtol(v, &end, 10);
    if (end == v || errno || x < -2147483647L || x > 2147483647L) goto bad;
    *iv = (int)x;
  } else {
    *dv = strtod(v, &end);
    if (end == v || (errno && errno != ERANGE)) goto bad;
  }
  if (*end != ';' && *end != '\0') goto bad;
  *p = *end ? end + 1 : end;
  return MSKX_OK;
bad:
  return err_set(e, MSKX_EFORMAT, "schedule state '%.80s': bad value for '%s'", text, key);
}

int schedule_state_parse(const char *text, schedule_state *out, mskx_err *e) {
  schedule_state st;
  const char *p = text;
  int rc;
  if ((rc = field(&p, "lr", 0, &st.lr, NULL, text, e)) || (rc = field(&p, "best", 0, &st.best, NULL, text, e)) ||
      (rc = field(&p, "wait", 1, NULL, &st.wait, text, e)) ||
      (rc = field(&p, "cooldown", 1, NULL, &st.cooldown_counter, text, e)) ||
      (rc = field(&p, "reductions", 1, NULL, &st.n_reductions, text, e)))
    return rc;
  if (*p || p[-1] == ';') return err_set(e, MSKX_EFORMAT, "schedule state '%.80s': trailing text", text);
  if ((rc = state_check(&st, e))) return rc;
  *out = st;
  return MSKX_OK;
}
