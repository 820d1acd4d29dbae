/* Learning-rate schedules: constant, step decay (the seed post's formula),
 * Keras's ReduceLROnPlateau, and cosine annealing with linear warmup.
 * Epochs and steps count from 0. See docs/training_options.md. */
#ifndef MSKX_TRAIN_SCHEDULE_H
#define MSKX_TRAIN_SCHEDULE_H
#include <stddef.h>
#include "mskx.h"

typedef struct schedule_config {
  char name[16]; /* "constant", "step", "plateau" or "cosine" */
  double lr0;    /* initial learning rate */
  /* step: lr0 * drop^floor((1 + epoch) / epochs_drop) */
  double drop, epochs_drop;
  /* plateau (Keras ReduceLROnPlateau) */
  char monitor[16]; /* "val_loss" (lower is better) or "val_kappa" (higher is better) */
  double factor, min_delta;
  int patience, cooldown;
  double min_lr; /* plateau and cosine */
  /* cosine: anneals per step over epochs * steps_per_epoch steps after a
   * linear warmup of warmup_epochs (may be fractional; rounded to steps) */
  int epochs;
  double warmup_epochs;
} schedule_config;

typedef struct schedule schedule;

/* Everything a schedule changes while training, for exact resume. */
typedef struct schedule_state {
  double lr;            /* plateau: the current rate */
  double best;          /* plateau: best monitored value (+-inf before the first) */
  int wait;             /* plateau: bad epochs since the last improvement or reduction */
  int cooldown_counter; /* plateau: epochs of cooldown left */
  int n_reductions;     /* plateau: reductions so far */
} schedule_state;

/* Fills c with the schedule's defaults and lr0 (Keras's for plateau:
 * factor 0.1, patience 10, min_delta 1e-4, cooldown 0, min_lr 0, val_loss). */
int schedule_config_defaults(const char *name, double lr0, schedule_config *c, mskx_err *e);
int schedule_config_validate(const schedule_config *c, mskx_err *e);

int schedule_create(const schedule_config *c, schedule **out, mskx_err *e);
void schedule_destroy(schedule *s);

/* The rate for step step_in_epoch (0-based) of epoch (0-based). */
double schedule_lr(const schedule *s, int epoch, int step_in_epoch, int steps_per_epoch);
/* Call once at the end of every epoch with that epoch's monitored validation
 * value (plateau only; other schedules ignore it). Returns 1 when the rate
 * was reduced, else 0. NaN counts as no improvement. */
int schedule_epoch_end(schedule *s, double monitored);

void schedule_get_state(const schedule *s, schedule_state *st);
int schedule_set_state(schedule *s, const schedule_state *st, mskx_err *e);
/* One-line text form ("lr=...;best=...;wait=...;cooldown=...;reductions=...",
 * doubles with 17 significant digits so they round-trip exactly), e.g. for a
 * safetensors metadata value. Returns MSKX_EINVAL if buf is too small. */
int schedule_state_format(const schedule_state *st, char *buf, size_t n, mskx_err *e);
int schedule_state_parse(const char *text, schedule_state *st, mskx_err *e);

#endif
