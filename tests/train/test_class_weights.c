/* Class-weight tests: the MURA paper's formula and scikit-learn's
 * compute_class_weight('balanced') on MURA's training counts and random
 * counts (tests/tools/optim_ref.py), hand-checked small cases, strict parsing
 * and the degenerate counts. */
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "io/npy.h"
#include "test.h"
#include "train/class_weights.h"

#define SCRATCH_TAG "train_cw"
#include "scratch.h"

/* DIR/<set><suffix>: the reference files of one count set. */
static const char *ref_file(const char *set, const char *suffix) {
  char name[256];
  snprintf(name, sizeof name, "%s%s", set, suffix);
  return fx(name);
}

static int reference(void) {
  static int done = -1;
  if (done < 0) done = run_tool_script("optim_ref.py", "cw") == 0;
  return done;
}

/* References are float32: relative 1e-6 covers their rounding. */
static int close_f32(double a, float b) { return fabs(a - b) <= 1e-6 * fabs(b); }

TEST(mura_and_balanced_match_paper_and_sklearn) {
  CHECKF(reference(), "tests/tools/optim_ref.py cw failed");
  const char *sets[] = {"cw_mura", "cw_rand"};
  mskx_err e = {0};
  for (int k = 0; k < 2; k++) {
    htensor counts = {0}, paper = {0}, bal = {0};
    CHECK_OK(npy_read_f32(ref_file(sets[k], ".counts.npy"), &counts, &e), &e);
    CHECK_OK(npy_read_f32(ref_file(sets[k], ".paper.npy"), &paper, &e), &e);
    CHECK_OK(npy_read_f32(ref_file(sets[k], ".balanced.npy"), &bal, &e), &e);
    int np_ = (int)counts.shape[0];
    CHECK(np_ <= 16 && counts.shape[1] == 2 && bal.shape[0] == 2);
    int64_t c[16][2];
    double w[16][2];
    for (int p = 0; p < np_; p++)
      for (int j = 0; j < 2; j++) c[p][j] = (int64_t)counts.data[p * 2 + j];
    cw_spec mura = {CW_MURA, {0, 0}}, balanced = {CW_BALANCED, {0, 0}};
    CHECK_OK(cw_compute(&mura, (const int64_t(*)[2])c, np_, NULL, w, &e), &e);
    for (int p = 0; p < np_; p++)
      for (int j = 0; j < 2; j++)
        CHECKF(close_f32(w[p][j], paper.data[p * 2 + j]), "%s part %d class %d: %g vs %g", sets[k], p, j, w[p][j],
               (double)paper.data[p * 2 + j]);
    CHECK_OK(cw_compute(&balanced, (const int64_t(*)[2])c, np_, NULL, w, &e), &e);
    for (int p = 0; p < np_; p++)
      for (int j = 0; j < 2; j++)
        CHECKF(close_f32(w[p][j], bal.data[j]), "%s balanced part %d class %d: %g vs sklearn %g", sets[k], p, j,
               w[p][j], (double)bal.data[j]);
    htensor_release(&counts);
    htensor_release(&paper);
    htensor_release(&bal);
  }
}

TEST(hand_checked_weights) {
  mskx_err e = {0};
  /* Part 0: 3 normal, 1 abnormal; part 1: 0 images (not trained); part 2: 2, 2. */
  int64_t c[3][2] = {{3, 1}, {0, 0}, {2, 2}};
  double w[3][2];
  cw_spec s;
  CHECK_OK(cw_parse("mura", &s, &e), &e);
  CHECK_OK(cw_compute(&s, (const int64_t(*)[2])c, 3, NULL, w, &e), &e);
  CHECK(w[0][1] == 0.75 && w[0][0] == 0.25); /* abnormal weighted by the normal share */
  CHECK(w[1][0] == 1.0 && w[1][1] == 1.0);
  CHECK(w[2][0] == 0.5 && w[2][1] == 0.5);
  /* Property: each class carries the same total weight within a part. */
  CHECK(w[0][0] * 3 == w[0][1] * 1);
  CHECK_OK(cw_parse("balanced", &s, &e), &e);
  CHECK_OK(cw_compute(&s, (const int64_t(*)[2])c, 3, NULL, w, &e), &e);
  /* 5 normal, 3 abnormal: 8 / (2 * 5) and 8 / (2 * 3), the same for every part. */
  for (int p = 0; p < 3; p++) CHECK(w[p][0] == 0.8 && w[p][1] == 8.0 / 6.0);
  CHECK_OK(cw_parse("none", &s, &e), &e);
  CHECK_OK(cw_compute(&s, (const int64_t(*)[2])c, 3, NULL, w, &e), &e);
  for (int p = 0; p < 3; p++) CHECK(w[p][0] == 1.0 && w[p][1] == 1.0);
  CHECK_OK(cw_parse("0:1,1:1.5", &s, &e), &e);
  CHECK(s.mode == CW_EXPLICIT && s.w[0] == 1.0 && s.w[1] == 1.5);
  CHECK_OK(cw_compute(&s, (const int64_t(*)[2])c, 3, NULL, w, &e), &e);
  for (int p = 0; p < 3; p++) CHECK(w[p][0] == 1.0 && w[p][1] == 1.5);
  CHECK_OK(cw_parse("1:2.5,0:.5", &s, &e), &e);
  CHECK(s.w[0] == 0.5 && s.w[1] == 2.5);
  CHECK_OK(cw_parse("0:1e-3,1:7", &s, &e), &e);
  CHECK(s.w[0] == 1e-3 && s.w[1] == 7);
  CHECK(!strcmp(cw_mode_name(CW_MURA), "mura") && !strcmp(cw_mode_name(CW_EXPLICIT), "explicit"));
}

TEST(degenerate_counts_are_explicit_errors) {
  mskx_err e = {0};
  const char *names[] = {"XR_ELBOW", "XR_HAND"};
  int64_t c[2][2] = {{10, 4}, {7, 0}};
  double w[2][2];
  cw_spec mura = {CW_MURA, {0, 0}}, bal = {CW_BALANCED, {0, 0}};
  CHECK(cw_compute(&mura, (const int64_t(*)[2])c, 2, names, w, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "XR_HAND") && strstr(e.msg, "normal training images only"), "message '%s'", e.msg);
  CHECK(cw_compute(&mura, (const int64_t(*)[2])c, 2, NULL, w, &e) == MSKX_EINVAL && strstr(e.msg, "#1"));
  /* Balanced pools all parts: fine here, an error when a class is absent overall. */
  CHECK_OK(cw_compute(&bal, (const int64_t(*)[2])c, 2, names, w, &e), &e);
  int64_t none_abn[2][2] = {{10, 0}, {7, 0}};
  CHECK(cw_compute(&bal, (const int64_t(*)[2])none_abn, 2, names, w, &e) == MSKX_EINVAL &&
        strstr(e.msg, "no abnormal"));
  int64_t empty[1][2] = {{0, 0}};
  CHECK(cw_compute(&bal, (const int64_t(*)[2])empty, 1, names, w, &e) == MSKX_EINVAL);
  int64_t neg[1][2] = {{-1, 5}};
  CHECK(cw_compute(&mura, (const int64_t(*)[2])neg, 1, names, w, &e) == MSKX_EINVAL && strstr(e.msg, "negative"));
  cw_spec weird = {(cw_mode)42, {1, 1}};
  CHECK(cw_compute(&weird, (const int64_t(*)[2])c, 2, names, w, &e) == MSKX_EINVAL);
}

TEST(explicit_weights_are_parsed_strictly) {
  const char *bad[] = {"", "0:1,1:", "2:1", "0:-1", "0:-1,1:1", "0:1", "1:2", "0:1,0:2", "0:1,1:2,", "0:1,1:2,0:3",
                       "0:1;1:2", " 0:1,1:2", "0:1,1:2 ", "0:nan,1:1", "0:inf,1:1", "0:1e999,1:1", "0:0,1:1",
                       "MURA", "Balanced", "0:1,1:2x", "0:,1:2", "0:1 ,1:2", "01:1,1:1", "0=1,1=2", ",0:1,1:2",
                       "0:1,,1:2", "0:+1,1:2", "0:0x10,1:2", "0:1,1:2\n", "-1:1,1:1", "0:1,1:1,1:1"};
  mskx_err e = {0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cw_spec s = {CW_MURA, {9, 9}};
    e.msg[0] = 0;
    int rc = cw_parse(bad[i], &s, &e);
    CHECKF(rc == MSKX_EINVAL && strstr(e.msg, "class weights"), "'%s' accepted (rc %d, '%s')", bad[i], rc, e.msg);
    CHECKF(s.mode == CW_MURA && s.w[0] == 9, "'%s' changed the output", bad[i]);
  }
  cw_spec s;
  CHECK(cw_parse(NULL, &s, &e) == MSKX_EINVAL);
  CHECK(cw_parse("2:1", &s, &e) == MSKX_EINVAL && strstr(e.msg, "classes are 0 and 1"));
  CHECK(cw_parse("0:1,1:", &s, &e) == MSKX_EINVAL && strstr(e.msg, "class 1"));
  CHECK(cw_parse("0:-1,1:1", &s, &e) == MSKX_EINVAL && strstr(e.msg, "class 0"));
}

TEST_MAIN()
