/* Schedule tests: step decay against the seed post's formula, cosine against
 * torch's LinearLR + CosineAnnealingLR, plateau against torch's
 * ReduceLROnPlateau mapped to Keras's counters (tests/tools/optim_ref.py
 * checks that mapping against a transcription of Keras), hand-traced Keras
 * cases, exact state resume, hostile state text and bad configurations. */
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "io/npy.h"
#include "test.h"
#include "train/schedule.h"

/* References are stored as float32. */
#define F32_REL 1e-6

#define SCRATCH_TAG "train_schedule"
#include "scratch.h"

static int reference(void) {
  static int done = -1;
  if (done < 0) done = run_tool_script("optim_ref.py", "sched") == 0;
  return done;
}

static int rel_close(double a, double b) { return fabs(a - b) <= F32_REL * fabs(b); }

/* Field by field: the struct has padding. Doubles compared by bits. */
static int same_state(const schedule_state *a, const schedule_state *b) {
  return !memcmp(&a->lr, &b->lr, sizeof a->lr) && !memcmp(&a->best, &b->best, sizeof a->best) && a->wait == b->wait &&
         a->cooldown_counter == b->cooldown_counter && a->n_reductions == b->n_reductions;
}

static schedule *make(const schedule_config *c) {
  schedule *s = NULL;
  mskx_err e = {0};
  if (schedule_create(c, &s, &e)) printf("  schedule_create: %s\n", e.msg);
  return s;
}

TEST(constant_ignores_epochs_and_metrics) {
  schedule_config c;
  mskx_err e = {0};
  CHECK_OK(schedule_config_defaults("constant", 3e-4, &c, &e), &e);
  schedule *s = make(&c);
  CHECK(s);
  for (int ep = 0; ep < 50; ep += 7) {
    CHECK(schedule_lr(s, ep, ep % 3, 5) == 3e-4);
    CHECK_EQ_INT(schedule_epoch_end(s, 1.0 + ep), 0);
  }
  schedule_destroy(s);
}

/* lr = lr0 * drop^floor((1 + epoch) / epochs_drop) with epoch counted from 0,
 * so with the defaults the first halving is in the 10th epoch (index 9). */
TEST(step_decay_is_the_seed_formula) {
  CHECKF(reference(), "tests/tools/optim_ref.py sched failed");
  schedule_config c;
  mskx_err e = {0};
  CHECK_OK(schedule_config_defaults("step", 0.1, &c, &e), &e);
  CHECK(c.drop == 0.5 && c.epochs_drop == 10);
  schedule *s = make(&c);
  CHECK(s);
  for (int ep = 0; ep <= 8; ep++) CHECK(schedule_lr(s, ep, 0, 10) == 0.1);
  CHECK(schedule_lr(s, 9, 0, 10) == 0.05);
  CHECK(schedule_lr(s, 18, 3, 10) == 0.05);
  CHECK(schedule_lr(s, 19, 0, 10) == 0.025);
  CHECK(schedule_lr(s, 29, 0, 10) == 0.0125);
  htensor ref = {0};
  CHECK_OK(npy_read_f32(fx("step.npy"), &ref, &e), &e);
  for (int ep = 0; ep < ref.shape[0]; ep++)
    CHECKF(rel_close(schedule_lr(s, ep, 0, 1), ref.data[ep]), "epoch %d: %g vs %g", ep, schedule_lr(s, ep, 0, 1),
           ref.data[ep]);
  htensor_release(&ref);
  schedule_destroy(s);
  /* A fractional epochs_drop works as in the post's floating-point formula. */
  c.epochs_drop = 2.5;
  c.drop = 0.1;
  s = make(&c);
  CHECK(s);
  CHECK(schedule_lr(s, 0, 0, 1) == 0.1 && schedule_lr(s, 1, 0, 1) == 0.1 && rel_close(schedule_lr(s, 2, 0, 1), 0.01) &&
        rel_close(schedule_lr(s, 4, 0, 1), 0.001));
  schedule_destroy(s);
}

TEST(cosine_matches_torch_linear_warmup_and_annealing) {
  CHECKF(reference(), "tests/tools/optim_ref.py sched failed");
  /* name, lr0, min_lr, epochs, steps per epoch, warmup epochs (12 steps = 1.5 * 8) */
  struct {
    const char *name;
    double lr0, min_lr;
    int epochs, spe;
    double warm;
  } cases[] = {{"cos_a.npy", 0.1, 0.0, 5, 7, 0.0}, {"cos_b.npy", 0.05, 1e-3, 6, 8, 1.5}};
  mskx_err e = {0};
  for (int k = 0; k < 2; k++) {
    schedule_config c;
    CHECK_OK(schedule_config_defaults("cosine", cases[k].lr0, &c, &e), &e);
    c.min_lr = cases[k].min_lr;
    c.epochs = cases[k].epochs;
    c.warmup_epochs = cases[k].warm;
    schedule *s = make(&c);
    CHECK(s);
    htensor ref = {0};
    CHECK_OK(npy_read_f32(fx(cases[k].name), &ref, &e), &e);
    CHECK_EQ_INT(ref.shape[0], cases[k].epochs * cases[k].spe);
    double worst = 0;
    for (int t = 0; t < ref.shape[0]; t++) {
      double lr = schedule_lr(s, t / cases[k].spe, t % cases[k].spe, cases[k].spe);
      worst = fmax(worst, fabs(lr - ref.data[t]) / ref.data[t]);
    }
    printf("  %s: max rel err %.3g vs torch\n", cases[k].name, worst);
    CHECKF(worst <= F32_REL, "%s: %.3g", cases[k].name, worst);
    /* After the last step the rate rests at min_lr. */
    CHECK(schedule_lr(s, cases[k].epochs, 0, cases[k].spe) == cases[k].min_lr);
    CHECK(schedule_lr(s, cases[k].epochs + 5, 3, cases[k].spe) == cases[k].min_lr);
    htensor_release(&ref);
    schedule_destroy(s);
  }
}

TEST(cosine_properties) {
  schedule_config c;
  mskx_err e = {0};
  CHECK_OK(schedule_config_defaults("cosine", 1.0, &c, &e), &e);
  c.epochs = 10;
  c.warmup_epochs = 2;
  c.min_lr = 0.01;
  schedule *s = make(&c);
  CHECK(s);
  const int spe = 4, warm = 8, total = 40;
  double prev = 0;
  for (int t = 0; t < total; t++) {
    double lr = schedule_lr(s, t / spe, t % spe, spe);
    if (t < warm) CHECKF(lr == (t + 1) / (double)warm, "warmup step %d: %g", t, lr);
    if (t == warm) CHECK_NEAR(lr, 1.0, 1e-15);
    if (t > warm) CHECKF(lr < prev && lr > c.min_lr, "step %d: %g after %g", t, lr, prev);
    /* halfway through the annealing the rate is the midpoint */
    if (t == warm + (total - warm) / 2) CHECK_NEAR(lr, (1.0 + c.min_lr) / 2, 1e-15);
    prev = lr;
  }
  schedule_destroy(s);
}

/* Keras semantics traced by hand from its documentation: "patience: number of
 * epochs with no improvement after which learning rate will be reduced";
 * "cooldown: number of epochs to wait before resuming normal operation". */
TEST(plateau_hand_traced_keras_cases) {
  schedule_config c;
  mskx_err e = {0};
  CHECK_OK(schedule_config_defaults("plateau", 1.0, &c, &e), &e);
  CHECK(c.factor == 0.1 && c.patience == 10 && c.min_delta == 1e-4 && c.cooldown == 0 && c.min_lr == 0 &&
        !strcmp(c.monitor, "val_loss"));
  c.patience = 2;
  schedule *s = make(&c);
  CHECK(s);
  /* Two epochs without improvement after the best (0.9) reduce at the second. */
  double m1[] = {1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.8 - 5e-5, 0.81};
  int red1[] = {0, 0, 0, 1, 0, 0, 1, 0};
  for (int i = 0; i < 8; i++) {
    int r = schedule_epoch_end(s, m1[i]);
    CHECKF(r == red1[i], "epoch %d: reduced %d (an improvement below min_delta is no improvement)", i, r);
  }
  CHECK_NEAR(schedule_lr(s, 8, 0, 1), 0.01, 1e-15);
  schedule_destroy(s);

  /* Cooldown 2, patience 1: after a reduction the next epoch is ignored, and
   * the second (where the counter reaches 0) already counts (Keras decrements
   * before comparing; torch with cooldown 2 would ignore both). */
  c.patience = 1;
  c.cooldown = 2;
  s = make(&c);
  CHECK(s);
  double m2[] = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 0.5, 0.6};
  int red2[] = {0, 1, 0, 1, 0, 1, 0, 1};
  for (int i = 0; i < 8; i++) CHECKF(schedule_epoch_end(s, m2[i]) == red2[i], "cooldown case epoch %d", i);
  schedule_state st;
  schedule_get_state(s, &st);
  CHECK_EQ_INT(st.n_reductions, 4);
  CHECK(st.best == 0.5);
  schedule_destroy(s);

  /* val_kappa: higher is better; NaN counts as a bad epoch; min_lr clamps. */
  CHECK_OK(schedule_config_defaults("plateau", 1.0, &c, &e), &e);
  strcpy(c.monitor, "val_kappa");
  c.patience = 1;
  c.factor = 0.5;
  c.min_lr = 0.3;
  s = make(&c);
  CHECK(s);
  double m3[] = {0.2, 0.5, 0.4, NAN, 0.6, 0.6, 0.1};
  double lr3[] = {1.0, 1.0, 0.5, 0.3, 0.3, 0.3, 0.3};
  for (int i = 0; i < 7; i++) {
    schedule_epoch_end(s, m3[i]);
    CHECKF(schedule_lr(s, i + 1, 0, 1) == lr3[i], "kappa epoch %d: %g", i, schedule_lr(s, i + 1, 0, 1));
  }
  schedule_destroy(s);
}

TEST(plateau_matches_torch_with_keras_mapping) {
  CHECKF(reference(), "tests/tools/optim_ref.py sched failed (or Keras and torch disagreed)");
  FILE *f = fopen(fx("plateau_cases.txt"), "r");
  CHECK(f);
  int idx, pat, cd, n_cases = 0;
  double lr0, factor, md, min_lr;
  char mode[8];
  mskx_err e = {0};
  while (fscanf(f, "%d %lf %7s %lf %d %lf %d %lf", &idx, &lr0, mode, &factor, &pat, &md, &cd, &min_lr) == 8) {
    schedule_config c;
    CHECK_OK(schedule_config_defaults("plateau", lr0, &c, &e), &e);
    strcpy(c.monitor, strcmp(mode, "max") ? "val_loss" : "val_kappa");
    c.factor = factor;
    c.patience = pat;
    c.min_delta = md;
    c.cooldown = cd;
    c.min_lr = min_lr;
    schedule *s = make(&c);
    CHECK(s);
    char name[64];
    htensor m = {0}, lr = {0};
    snprintf(name, sizeof name, "plateau%d.metrics.npy", idx);
    CHECK_OK(npy_read_f32(fx(name), &m, &e), &e);
    snprintf(name, sizeof name, "plateau%d.lr.npy", idx);
    CHECK_OK(npy_read_f32(fx(name), &lr, &e), &e);
    int reductions = 0;
    for (int ep = 0; ep < m.shape[0]; ep++) {
      reductions += schedule_epoch_end(s, (double)m.data[ep]);
      double got = schedule_lr(s, ep + 1, 0, 1);
      CHECKF(rel_close(got, lr.data[ep]), "case %d epoch %d: lr %.9g, torch %.9g", idx, ep, got, (double)lr.data[ep]);
    }
    printf("  plateau case %d (%s, patience %d, cooldown %d): %d epochs, %d reductions, all equal to torch\n", idx,
           mode, pat, cd, (int)m.shape[0], reductions);
    htensor_release(&m);
    htensor_release(&lr);
    schedule_destroy(s);
    n_cases++;
  }
  fclose(f);
  CHECK(n_cases >= 6);
}

TEST(plateau_resume_is_exact) {
  schedule_config c;
  mskx_err e = {0};
  CHECK_OK(schedule_config_defaults("plateau", 0.1, &c, &e), &e);
  c.patience = 2;
  c.cooldown = 3;
  double m[40];
  for (int i = 0; i < 40; i++) m[i] = 1.0 / (1 + i % 13) + 0.01 * (i % 3);
  schedule *a = make(&c), *b = make(&c);
  CHECK(a && b);
  for (int i = 0; i < 17; i++) schedule_epoch_end(a, m[i]);
  schedule_state st, back;
  char text[256];
  schedule_get_state(a, &st);
  CHECK_OK(schedule_state_format(&st, text, sizeof text, &e), &e);
  CHECK_OK(schedule_state_parse(text, &back, &e), &e);
  CHECKF(same_state(&st, &back), "state text '%s' does not round-trip", text);
  CHECK_OK(schedule_set_state(b, &back, &e), &e);
  for (int i = 17; i < 40; i++) {
    CHECK_EQ_INT(schedule_epoch_end(a, m[i]), schedule_epoch_end(b, m[i]));
    CHECK(schedule_lr(a, i, 0, 1) == schedule_lr(b, i, 0, 1));
  }
  schedule_destroy(a);
  schedule_destroy(b);
  /* Awkward doubles and the initial infinite best round-trip too. */
  schedule_state odd = {0.1 + 0.2, INFINITY, 3, 1, 7};
  CHECK_OK(schedule_state_format(&odd, text, sizeof text, &e), &e);
  CHECK_OK(schedule_state_parse(text, &back, &e), &e);
  CHECK(same_state(&odd, &back));
  odd.best = -INFINITY;
  odd.lr = 5e-324;
  CHECK_OK(schedule_state_format(&odd, text, sizeof text, &e), &e);
  CHECK_OK(schedule_state_parse(text, &back, &e), &e);
  CHECK(same_state(&odd, &back));
  CHECK(schedule_state_format(&odd, text, 20, &e) == MSKX_EINVAL);
}

TEST(state_text_rejects_hostile_input) {
  const char *bad[] = {
      "",
      "lr=",
      "lr=0.1",
      "lr=0.1;best=inf;wait=0;cooldown=0",
      "lr=0.1;best=inf;wait=0;cooldown=0;reductions=0;",
      "lr=0.1;best=inf;wait=0;cooldown=0;reductions=0;extra=1",
      "best=inf;lr=0.1;wait=0;cooldown=0;reductions=0",
      "lr=abc;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=0.1x;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=-0.1;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=inf;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=nan;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=0.1;best=nan;wait=0;cooldown=0;reductions=0",
      "lr=0.1;best=inf;wait=-1;cooldown=0;reductions=0",
      "lr=0.1;best=inf;wait=1.5;cooldown=0;reductions=0",
      "lr=0.1;best=inf;wait=99999999999;cooldown=0;reductions=0",
      "lr=0.1;best=inf;wait=0;cooldown=0;reductions=",
      "lr=0.1;best=inf;wait=0;cooldown=0;reductions=0 ",
      "lr = 0.1;best=inf;wait=0;cooldown=0;reductions=0",
      "lr=0.1;;best=inf;wait=0;cooldown=0;reductions=0",
  };
  mskx_err e = {0};
  schedule_state st = {1, 2, 3, 4, 5}, keep = st;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    e.msg[0] = 0;
    int rc = schedule_state_parse(bad[i], &st, &e);
    CHECKF(rc != 0 && strstr(e.msg, "schedule state"), "'%s' accepted (rc %d, '%s')", bad[i], rc, e.msg);
    CHECKF(same_state(&st, &keep), "'%s' changed the output", bad[i]);
  }
  schedule_config c;
  CHECK_OK(schedule_config_defaults("plateau", 0.1, &c, &e), &e);
  schedule *s = make(&c);
  schedule_state neg = {0.1, 1.0, -2, 0, 0};
  CHECK(schedule_set_state(s, &neg, &e) == MSKX_EINVAL);
  schedule_destroy(s);
}

TEST(bad_configs_are_rejected_with_clear_messages) {
  schedule_config c;
  mskx_err e = {0};
  CHECK(schedule_config_defaults("exponential", 0.1, &c, &e) == MSKX_EINVAL &&
        strstr(e.msg, "unknown learning-rate schedule 'exponential'"));
  /* Each case: defaults, one field spoiled, create must fail naming it. */
  for (int k = 0; k < 16; k++) {
    const char *name = k < 2 ? "constant" : k < 5 ? "step" : k < 12 ? "plateau" : "cosine";
    CHECK_OK(schedule_config_defaults(name, 0.1, &c, &e), &e);
    c.epochs = 10;
    const char *want = "";
    switch (k) {
      case 0: c.lr0 = -0.1; want = "learning rate"; break;
      case 1: c.lr0 = NAN; want = "learning rate"; break;
      case 2: c.drop = 0; want = "drop"; break;
      case 3: c.epochs_drop = 0; want = "epochs_drop"; break;
      case 4: c.epochs_drop = INFINITY; want = "epochs_drop"; break;
      case 5: c.factor = 1.0; want = "factor"; break;
      case 6: c.factor = 0; want = "factor"; break;
      case 7: c.patience = -1; want = "patience"; break;
      case 8: c.cooldown = -1; want = "cooldown"; break;
      case 9: strcpy(c.monitor, "val_auc"); want = "unknown monitor 'val_auc'"; break;
      case 10: c.min_delta = -1e-4; want = "min_delta"; break;
      case 11: c.min_lr = -1; want = "min_lr"; break;
      case 12: c.epochs = 0; want = "epochs"; break;
      case 13: c.warmup_epochs = 10; want = "warmup"; break;
      case 14: c.warmup_epochs = -1; want = "warmup"; break;
      case 15: c.min_lr = 0.2; want = "min_lr"; break;
    }
    schedule *s = (schedule *)&c;
    e.msg[0] = 0;
    int rc = schedule_create(&c, &s, &e);
    CHECKF(rc == MSKX_EINVAL && s == NULL && strstr(e.msg, want) && strstr(e.msg, name), "case %d (%s): rc %d '%s'",
           k, name, rc, e.msg);
  }
  CHECK_OK(schedule_config_defaults("cosine", 0.1, &c, &e), &e);
  CHECK(schedule_config_validate(&c, &e) == MSKX_EINVAL && strstr(e.msg, "epochs")); /* the caller must set it */
}

TEST_MAIN()
