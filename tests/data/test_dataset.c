/* Dataset reader tests: small MURA trees written here, read back through the
 * MURA CSVs, the bare folder tree and the generic CSV; every malformed case
 * must fail (or warn) with a message naming the file and line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/util.h"
#include "data/dataset.h"
#include "io/image.h"
#include "test.h"

/* One study of a test tree. */
typedef struct spec_study {
  int split;
  const char *part;
  int patient, study, label, n_images;
} spec_study;

/* Parts deliberately out of order, and a part name MURA does not have. */
static const spec_study SPEC[] = {
    {DS_TRAIN, "XR_WRIST", 1, 1, 1, 3}, {DS_TRAIN, "XR_WRIST", 1, 2, 0, 2},
    {DS_TRAIN, "XR_ELBOW", 2, 1, 0, 1}, {DS_TRAIN, "XR_ELBOW", 3, 1, 1, 2},
    {DS_TRAIN, "XR_KNEE", 4, 1, 1, 1},  {DS_TRAIN, "XR_WRIST", 5, 1, 0, 12},
    {DS_VALID, "XR_WRIST", 6, 1, 1, 1}, {DS_VALID, "XR_ELBOW", 7, 1, 0, 2},
    {DS_VALID, "XR_ELBOW", 7, 2, 1, 1},
};
#define NSPEC ((int)(sizeof SPEC / sizeof SPEC[0]))

static char tmp_base[256];

static void cleanup(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_base);
  if (system(cmd)) { /* best effort */
  }
}

static const char *fresh_dir(void) {
  static int k;
  static char dir[300];
  if (!tmp_base[0]) {
    snprintf(tmp_base, sizeof tmp_base, "/tmp/mskx_test_ds_XXXXXX");
    if (!mkdtemp(tmp_base)) abort();
    atexit(cleanup);
  }
  snprintf(dir, sizeof dir, "%s/t%d", tmp_base, k++);
  mkdir_p(dir, NULL);
  return dir;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fputs(text, f);
  fclose(f);
}

static void append_line(const char *path, const char *fmt, ...) {
  FILE *f = fopen(path, "ab");
  if (!f) abort();
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

static void write_png(const char *path) {
  char d[4096];
  snprintf(d, sizeof d, "%s", path);
  *strrchr(d, '/') = 0;
  mkdir_p(d, NULL);
  uint8_t px[8 * 6];
  for (int i = 0; i < 48; i++) px[i] = (uint8_t)(i * 5);
  /* Encoded and written plainly: image_write_png's fsync would make the test slow. */
  uint8_t *png;
  size_t len;
  if (image_encode_png(px, 8, 6, 1, &png, &len, NULL)) abort();
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(png, 1, len, f) != len) abort();
  fclose(f);
  free(png);
}

static const char *split_name(int k) { return k == DS_TRAIN ? "train" : "valid"; }

static void study_rel(const spec_study *s, char *out, size_t n) {
  snprintf(out, n, "MURA-v1.1/%s/%s/patient%05d/study%d_%s/", split_name(s->split), s->part, s->patient,
           s->study, s->label ? "positive" : "negative");
}

/* Writes SPEC under base/MURA-v1.1 (images, and the four CSVs when csv). */
static void write_tree(const char *base, int csv) {
  char mura[512], p[1024], rel[512];
  snprintf(mura, sizeof mura, "%s/MURA-v1.1", base);
  mkdir_p(mura, NULL);
  for (int k = 0; csv && k < 2; k++) {
    snprintf(p, sizeof p, "%s/%s_labeled_studies.csv", mura, split_name(k));
    write_text(p, "");
    snprintf(p, sizeof p, "%s/%s_image_paths.csv", mura, split_name(k));
    write_text(p, "");
  }
  for (int i = 0; i < NSPEC; i++) {
    const spec_study *s = &SPEC[i];
    study_rel(s, rel, sizeof rel);
    if (csv) {
      snprintf(p, sizeof p, "%s/%s_labeled_studies.csv", mura, split_name(s->split));
      append_line(p, "%s,%d", rel, s->label);
    }
    for (int j = 1; j <= s->n_images; j++) {
      snprintf(p, sizeof p, "%s/%simage%d.png", base, rel, j);
      write_png(p);
      if (csv) {
        snprintf(p, sizeof p, "%s/%s_image_paths.csv", mura, split_name(s->split));
        append_line(p, "%simage%d.png", rel, j);
      }
    }
  }
}

/* Expected counts straight from SPEC. */
static ds_counts spec_count(int split, const char *part) {
  ds_counts c = {{0, 0}, {0, 0}};
  for (int i = 0; i < NSPEC; i++) {
    if (SPEC[i].split != split || (part && strcmp(part, SPEC[i].part))) continue;
    c.studies[SPEC[i].label]++;
    c.images[SPEC[i].label] += SPEC[i].n_images;
  }
  return c;
}

static int counts_equal(ds_counts a, ds_counts b) { return !memcmp(&a, &b, sizeof a); }

/* Checks d against SPEC; returns NULL or what is wrong. */
static const char *check_against_spec(const dataset *d) {
  static char why[512];
  static const char *parts[] = {"XR_ELBOW", "XR_KNEE", "XR_WRIST"};
  if (d->n_parts != 3) return "expected 3 parts";
  for (int p = 0; p < 3; p++) {
    if (strcmp(d->parts[p], parts[p])) return "parts not sorted by name";
    for (int k = 0; k < 2; k++)
      if (!counts_equal(dataset_count(dataset_split(d, k), p), spec_count(k, parts[p]))) {
        snprintf(why, sizeof why, "counts of %s %s differ", parts[p], split_name(k));
        return why;
      }
  }
  for (int k = 0; k < 2; k++) {
    const ds_split *s = dataset_split(d, k);
    if (!counts_equal(dataset_count(s, -1), spec_count(k, NULL))) return "total counts differ";
    int n = 0;
    for (int i = 0; i < NSPEC; i++) n += SPEC[i].split == k;
    if (s->n_studies != n) return "study count differs";
    for (int i = 0; i < s->n_studies; i++) {
      const ds_study *st = &s->studies[i];
      const spec_study *sp = NULL;
      char rel[512];
      for (int j = 0; j < NSPEC; j++) {
        study_rel(&SPEC[j], rel, sizeof rel);
        if (!strcmp(rel, st->path)) sp = &SPEC[j];
      }
      if (!sp) return "unknown study path";
      if (st->label != sp->label || st->n_images != sp->n_images || st->patient != sp->patient ||
          strcmp(d->parts[st->part], sp->part))
        return "study fields differ";
      for (int j = 0; j < st->n_images; j++) {
        const ds_image *im = &s->images[st->first_image + j];
        char want[600];
        snprintf(want, sizeof want, "%simage%d.png", st->path, j + 1);
        if (im->study != i || im->label != st->label || im->part != st->part) return "image fields differ";
        if (strcmp(im->rel, want)) {
          snprintf(why, sizeof why, "image %d of %s is %s (order within a study)", j, st->path, im->rel);
          return why;
        }
        if (!path_exists(im->path)) return "image path does not exist";
      }
    }
  }
  return NULL;
}

TEST(mura_csv_counts_match_what_was_written) {
  const char *base = fresh_dir();
  write_tree(base, 1);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/MURA-v1.1", base);
  dataset *d;
  mskx_err e = {0};
  dataset_options opt = {.require_train = 1, .require_valid = 1};
  CHECK_OK(dataset_open(dir, &opt, &d, &e), &e);
  const char *why = check_against_spec(d);
  CHECKF(!why, "%s", why);
  CHECK_EQ_INT(d->layout, DS_LAYOUT_MURA_CSV);
  CHECK_EQ_INT(d->n_warnings, 0);
  CHECK_EQ_INT(dataset_part_index(d, "WRIST"), 2);
  CHECK_EQ_INT(dataset_part_index(d, "xr_elbow"), 0);
  CHECK_EQ_INT(dataset_part_index(d, "XR_HAND"), -1);
  dataset_free(d);
  /* The parent folder (holding MURA-v1.1/) is accepted too. */
  CHECK_OK(dataset_open(base, NULL, &d, &e), &e);
  why = check_against_spec(d);
  CHECKF(!why, "via parent: %s", why);
  dataset_free(d);
}

TEST(tree_without_csvs_and_hidden_files) {
  const char *base = fresh_dir();
  write_tree(base, 0);
  char p[1024];
  /* macOS resource forks and notes must not become images. */
  snprintf(p, sizeof p, "%s/MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/._image1.png", base);
  write_text(p, "junk");
  snprintf(p, sizeof p, "%s/MURA-v1.1/train/XR_WRIST/patient00001/.DS_Store", base);
  write_text(p, "junk");
  snprintf(p, sizeof p, "%s/MURA-v1.1/valid/XR_ELBOW/patient00007/study1_negative/notes.txt", base);
  write_text(p, "x");
  /* Upper-case extensions and JPEG names count as images. */
  snprintf(p, sizeof p, "%s/MURA-v1.1/valid/XR_ELBOW/patient00007/study9_negative/IMAGE1.PNG", base);
  write_png(p);
  snprintf(p, sizeof p, "%s/MURA-v1.1/valid/XR_ELBOW/patient00007/study9_negative/image2.JPEG", base);
  write_png(p);
  /* An empty study folder is skipped with a warning. */
  snprintf(p, sizeof p, "%s/MURA-v1.1/valid/XR_ELBOW/patient00008/study1_positive", base);
  mkdir_p(p, NULL);
  snprintf(p, sizeof p, "%s/MURA-v1.1", base);
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(p, NULL, &d, &e), &e);
  CHECK_EQ_INT(d->layout, DS_LAYOUT_TREE);
  CHECK_EQ_INT(d->valid.n_studies, 4);
  ds_counts c = dataset_count(&d->valid, dataset_part_index(d, "XR_ELBOW"));
  ds_counts want = spec_count(DS_VALID, "XR_ELBOW");
  CHECK_EQ_INT(c.studies[0], want.studies[0] + 1);
  CHECK_EQ_INT(c.images[0], want.images[0] + 2);
  CHECK(counts_equal(dataset_count(&d->train, -1), spec_count(DS_TRAIN, NULL)));
  CHECK_EQ_INT(d->n_warnings, 2);
  int saw_notes = 0, saw_empty = 0;
  for (int i = 0; i < d->n_warning_msgs; i++) {
    saw_notes |= strstr(d->warnings[i], "notes.txt: ignored") != NULL;
    saw_empty |= strstr(d->warnings[i], "patient00008/study1_positive: study folder has no images") != NULL;
  }
  CHECK(saw_notes && saw_empty);
  /* Images of a study in natural order: image2 before image10. */
  int w = dataset_part_index(d, "XR_WRIST");
  for (int i = 0; i < d->train.n_studies; i++) {
    const ds_study *st = &d->train.studies[i];
    if (st->part != w || st->n_images != 12) continue;
    CHECK(strstr(d->train.images[st->first_image + 1].rel, "/image2.png"));
    CHECK(strstr(d->train.images[st->first_image + 9].rel, "/image10.png"));
  }
  for (int i = 0; i < d->train.n_images; i++) CHECK(!strstr(d->train.images[i].rel, "._"));
  dataset_free(d);
}

/* Writes a MURA CSV pair for a copy of SPEC and then replaces one file's text. */
static const char *mura_with(const char *file, const char *text) {
  const char *base = fresh_dir();
  write_tree(base, 1);
  static char dir[512];
  snprintf(dir, sizeof dir, "%s/MURA-v1.1", base);
  if (file) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    write_text(p, text);
  }
  return dir;
}

/* Opens dir expecting failure with every pattern in the message. */
static const char *expect_error(const char *dir, const dataset_options *opt, const char *pat1,
                                const char *pat2) {
  static char why[1400];
  dataset *d = NULL;
  mskx_err e = {0};
  int rc = dataset_open(dir, opt, &d, &e);
  if (rc == 0) {
    dataset_free(d);
    return "expected an error, got success";
  }
  if (d) return "out set on failure";
  if ((pat1 && !strstr(e.msg, pat1)) || (pat2 && !strstr(e.msg, pat2))) {
    snprintf(why, sizeof why, "message '%s' lacks '%s' / '%s'", e.msg, pat1, pat2 ? pat2 : "");
    return why;
  }
  return NULL;
}

#define S_ELBOW2 "MURA-v1.1/valid/XR_ELBOW/patient00007/study1_negative/"
#define S_ELBOW3 "MURA-v1.1/valid/XR_ELBOW/patient00007/study2_positive/"
#define S_WRIST "MURA-v1.1/valid/XR_WRIST/patient00006/study1_positive/"

TEST(malformed_study_lines) {
  const char *why;
  why = expect_error(mura_with("valid_labeled_studies.csv", S_WRIST ",1\nno comma here\n"), NULL,
                     "valid_labeled_studies.csv:2:", "expected 'study_path,label'");
  CHECKF(!why, "bad line: %s", why);
  why = expect_error(mura_with("valid_labeled_studies.csv", S_WRIST ",1\n" S_ELBOW2 ",2\n" S_ELBOW3 ",1\n"),
                     NULL, "valid_labeled_studies.csv:2: label '2' is not 0 or 1", NULL);
  CHECKF(!why, "label 2: %s", why);
  why = expect_error(
      mura_with("valid_labeled_studies.csv", S_WRIST ",1\n" S_ELBOW2 ",0\n" S_ELBOW3 ",1\n" S_WRIST ",1\n"),
      NULL, "valid_labeled_studies.csv:4: duplicate study", "valid_labeled_studies.csv:1");
  CHECKF(!why, "duplicate: %s", why);
  why = expect_error(mura_with("valid_labeled_studies.csv", "../etc/XR_HAND/study1_positive/,1\n"), NULL,
                     "valid_labeled_studies.csv:1: '..'", NULL);
  CHECKF(!why, "dotdot: %s", why);
  why = expect_error(mura_with("valid_labeled_studies.csv", "/abs/XR_HAND/study1_positive/,1\n"), NULL,
                     "valid_labeled_studies.csv:1: absolute path", NULL);
  CHECKF(!why, "absolute: %s", why);
  /* Truncated mid-line: the label is missing. */
  why = expect_error(mura_with("valid_labeled_studies.csv", S_WRIST ",1\n" S_ELBOW2 ","), NULL,
                     "valid_labeled_studies.csv:2: label '' is not 0 or 1", NULL);
  CHECKF(!why, "truncated: %s", why);
  why = expect_error(mura_with("valid_labeled_studies.csv", "MURA-v1.1/valid/HAND/p1/study1_positive/,1\n"),
                     NULL, "valid_labeled_studies.csv:1: no XR_<PART> folder", NULL);
  CHECKF(!why, "no part: %s", why);
  /* Several problems: the first is named and the rest counted. */
  why = expect_error(mura_with("valid_labeled_studies.csv", "a\nb\nc\n"), NULL,
                     "valid_labeled_studies.csv:1:", "(and ");
  CHECKF(!why, "many: %s", why);
}

TEST(nul_byte_and_hostile_lines) {
  const char *dir = mura_with(NULL, NULL);
  char p[1024];
  snprintf(p, sizeof p, "%s/valid_image_paths.csv", dir);
  FILE *f = fopen(p, "ab");
  fwrite(S_WRIST "ima\0ge1.png\n", 1, sizeof(S_WRIST) - 1 + 12, f);
  fclose(f);
  const char *why = expect_error(dir, NULL, "valid_image_paths.csv:5: line contains a NUL byte", NULL);
  CHECKF(!why, "%s", why);
  /* A very long line is reported, not overflowed. */
  char *big = malloc(100000);
  memset(big, 'a', 99990);
  strcpy(big + 99990, ".png\n");
  why = expect_error(mura_with("valid_image_paths.csv", big), NULL, "valid_image_paths.csv:1:", NULL);
  free(big);
  CHECKF(!why, "long: %s", why);
  why = expect_error(mura_with("valid_image_paths.csv", S_WRIST "image1.png,1\n"), NULL,
                     "valid_image_paths.csv:1: expected one image path per line", NULL);
  CHECKF(!why, "comma: %s", why);
  why = expect_error(mura_with("valid_image_paths.csv", S_WRIST "image1.txt\n"), NULL,
                     "valid_image_paths.csv:1: not a .png/.jpg/.jpeg/.dcm image", NULL);
  CHECKF(!why, "ext: %s", why);
}

TEST(label_disagreeing_with_folder_is_a_warning) {
  const char *dir = mura_with("valid_labeled_studies.csv",
                              S_WRIST ",1\r\n" S_ELBOW2 ",1\r\n" S_ELBOW3 ",1\r\n"); /* CRLF too */
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(dir, NULL, &d, &e), &e);
  CHECK_EQ_INT(d->n_warnings, 1);
  CHECKF(strstr(d->warnings[0], "valid_labeled_studies.csv:2: label 1 disagrees with the folder name"), "%s",
         d->warnings[0]);
  CHECK_EQ_INT(dataset_count(&d->valid, -1).studies[1], 3); /* the CSV label wins */
  dataset_free(d);
}

TEST(image_list_problems) {
  const char *why;
  const char *images =
      S_WRIST "image1.png\n" S_ELBOW2 "image1.png\n" S_ELBOW2 "image2.png\n" S_ELBOW3 "image1.png\n";
  char buf[2048];
  snprintf(buf, sizeof buf, "%s%s", images, S_ELBOW2 "image1.png\n");
  why = expect_error(mura_with("valid_image_paths.csv", buf), NULL,
                     "valid_image_paths.csv:5: duplicate image", "first listed at");
  CHECKF(!why, "duplicate: %s", why);
  snprintf(buf, sizeof buf, "%s%s%s", images, S_ELBOW2 "image7.png\n", S_ELBOW2 "image8.png\n");
  why = expect_error(mura_with("valid_image_paths.csv", buf), NULL,
                     "valid split: 2 of 6 listed images are missing", "valid_image_paths.csv:5 ");
  CHECKF(!why, "missing: %s", why);
  snprintf(buf, sizeof buf, "%s", S_WRIST "image1.png\n" S_ELBOW3 "image1.png\n");
  why = expect_error(mura_with("valid_image_paths.csv", buf), NULL, "valid_labeled_studies.csv:2: study",
                     "study1_negative/ has no images");
  CHECKF(!why, "no images: %s", why);
  snprintf(buf, sizeof buf, "%s%s", images,
           "MURA-v1.1/valid/XR_HAND/patient00099/study1_positive/image1.png\n");
  why = expect_error(mura_with("valid_image_paths.csv", buf), NULL, "valid_image_paths.csv:5: image",
                     "has no row in");
  CHECKF(!why, "no label row: %s", why);
}

TEST(empty_and_missing_splits) {
  const char *dir = mura_with(NULL, NULL);
  char p[1024];
  snprintf(p, sizeof p, "%s/valid_labeled_studies.csv", dir);
  unlink(p);
  const char *why = expect_error(dir, NULL, "valid_labeled_studies.csv: missing", NULL);
  CHECKF(!why, "half a split: %s", why);
  snprintf(p, sizeof p, "%s/valid_image_paths.csv", dir);
  unlink(p);
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(dir, NULL, &d, &e), &e); /* valid not needed */
  CHECK_EQ_INT(d->valid.n_images, 0);
  dataset_free(d);
  dataset_options opt = {.require_valid = 1};
  why = expect_error(dir, &opt, "the valid split is empty", NULL);
  CHECKF(!why, "required: %s", why);
  why = expect_error(mura_with("train_image_paths.csv", ""), &(dataset_options){.require_train = 1},
                     "has no images", NULL);
  CHECKF(!why, "train without images: %s", why);
}

TEST(renamed_folder_and_bad_paths) {
  const char *base = fresh_dir();
  write_tree(base, 1);
  char from[512], to[512];
  snprintf(from, sizeof from, "%s/MURA-v1.1", base);
  snprintf(to, sizeof to, "%s/mura_renamed", base);
  CHECK(rename(from, to) == 0);
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(to, NULL, &d, &e), &e);
  const char *why = check_against_spec(d);
  CHECKF(!why, "%s", why);
  dataset_free(d);
  why = expect_error("/nonexistent/mura", NULL, "/nonexistent/mura: no such file or folder", NULL);
  CHECKF(!why, "missing dir: %s", why);
  why = expect_error(fresh_dir(), NULL, "not a MURA dataset folder", NULL);
  CHECKF(!why, "empty dir: %s", why);
  /* A study folder without a label suffix cannot be labelled from the tree. */
  base = fresh_dir();
  char p[1024];
  snprintf(p, sizeof p, "%s/train/XR_HAND/patient1/study1/image1.png", base);
  write_png(p);
  why = expect_error(base, NULL, "study1: study folder name must end in _positive or _negative", NULL);
  CHECKF(!why, "unlabelled folder: %s", why);
}

static const char *generic_tree(void) {
  const char *base = fresh_dir();
  char p[1024];
  static const char *imgs[] = {"imgs/XR_HAND/p1/s1_positive/a.png", "imgs/XR_HAND/p1/s1_positive/b.png",
                               "imgs/other/s2/c.png", "top.png", "imgs/XR_HAND/p2/s3_negative/d,e.png"};
  for (int i = 0; i < 5; i++) {
    snprintf(p, sizeof p, "%s/%s", base, imgs[i]);
    write_png(p);
  }
  return base;
}

TEST(generic_csv) {
  const char *base = generic_tree();
  char csv[1024];
  snprintf(csv, sizeof csv, "%s/list.csv", base);
  write_text(csv,
             "split,label,image_path,notes\n"
             "train,1,imgs/XR_HAND/p1/s1_positive/a.png,x\n"
             "train,1,imgs/XR_HAND/p1/s1_positive/b.png,\n"
             "valid,0,imgs/other/s2/c.png,\n"
             "valid,1,top.png,\n"
             "valid,0,\"imgs/XR_HAND/p2/s3_negative/d,e.png\",\"q\"\"uoted\"\n");
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(csv, NULL, &d, &e), &e);
  CHECK_EQ_INT(d->layout, DS_LAYOUT_GENERIC_CSV);
  CHECK_EQ_INT(d->n_parts, 2);
  CHECK(!strcmp(d->parts[0], "ALL") && !strcmp(d->parts[1], "XR_HAND"));
  CHECK_EQ_INT(d->train.n_studies, 1);
  CHECK_EQ_INT(d->train.studies[0].n_images, 2);
  CHECK(!strcmp(d->train.studies[0].path, "imgs/XR_HAND/p1/s1_positive/"));
  CHECK_EQ_INT(d->valid.n_studies, 3); /* c's folder, top.png alone, d,e's folder */
  CHECK(!strcmp(d->valid.studies[1].path, "top.png"));
  CHECK(!strcmp(d->valid.images[2].rel, "imgs/XR_HAND/p2/s3_negative/d,e.png"));
  CHECK(path_exists(d->valid.images[2].path));
  CHECK_EQ_INT(d->n_warnings, 1); /* the unused notes column */
  CHECK(strstr(d->warnings[0], "list.csv:1: column 'notes' is not used"));
  dataset_free(d);

  /* Without a split column everything is valid, or train when asked; study_id and part columns group. */
  write_text(csv,
             "image_path,label,study_id,part\n"
             "imgs/XR_HAND/p1/s1_positive/a.png,1,S1,HAND\n"
             "imgs/other/s2/c.png,1,S1,HAND\n"
             "top.png,0,,\n");
  CHECK_OK(dataset_open(csv, NULL, &d, &e), &e);
  CHECK_EQ_INT(d->train.n_images, 0);
  CHECK_EQ_INT(d->valid.n_studies, 2);
  CHECK_EQ_INT(d->valid.studies[0].n_images, 2);
  CHECK(!strcmp(d->parts[d->valid.studies[0].part], "HAND"));
  CHECK(!strcmp(d->parts[d->valid.studies[1].part], "ALL"));
  dataset_free(d);
  dataset_options opt = {.generic_split = DS_TRAIN};
  CHECK_OK(dataset_open(csv, &opt, &d, &e), &e);
  CHECK_EQ_INT(d->train.n_images, 3);
  dataset_free(d);
}

TEST(generic_csv_malformed) {
  const char *base = generic_tree();
  char csv[1024];
  snprintf(csv, sizeof csv, "%s/list.csv", base);
  static const struct {
    const char *text, *pat, *pat2;
  } cases[] = {
      {"path,label\ntop.png,1\n", "list.csv:1: header must name the columns image_path and label", NULL},
      {"", "list.csv:1: expected a header line", NULL},
      {"image_path,label\ntop.png\n", "list.csv:2: expected 2 fields as in the header, got 1", NULL},
      {"image_path,label\ntop.png,1,2\n", "list.csv:2: expected 2 fields as in the header, got 3", NULL},
      {"image_path,label\n\"top.png,1\n", "list.csv:2: malformed quotes", NULL},
      {"image_path,label\ntop.png,yes\n", "list.csv:2: label 'yes' is not 0 or 1", NULL},
      {"image_path,label\ntop.png,1\ntop.png,1\n", "list.csv:3: duplicate image", NULL},
      {"image_path,label\nimgs/XR_HAND/p1/s1_positive/a.png,1\nimgs/XR_HAND/p1/s1_positive/b.png,0\n",
       "list.csv:3: label 0 disagrees with label 1 of earlier rows", NULL},
      {"image_path,label,split\ntop.png,1,test\n", "list.csv:2: split 'test' is not train or valid", NULL},
      {"image_path,label,split\ntop.png,1,train\ntop.png,1,valid\n",
       "list.csv:3: study top.png is also in the train split", NULL},
      {"image_path,label\nimgs/missing.png,1\n", "1 of 1 listed images are missing on disk: ", "list.csv:2 "},
      {"image_path,label,label\ntop.png,1,1\n", "list.csv:1: column 'label' appears twice", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text(csv, cases[i].text);
    const char *why = expect_error(csv, NULL, cases[i].pat, cases[i].pat2);
    CHECKF(!why, "case %zu: %s", i, why);
  }
}

TEST(skip_file_check_and_counts_helper) {
  const char *dir = mura_with("valid_image_paths.csv", S_WRIST "image1.png\n" S_ELBOW2 "image1.png\n" S_ELBOW2
                                                               "image9.png\n" S_ELBOW3 "image1.png\n");
  dataset_options opt = {.skip_file_check = 1};
  dataset *d;
  mskx_err e = {0};
  CHECK_OK(dataset_open(dir, &opt, &d, &e), &e);
  ds_counts c = dataset_count(&d->valid, dataset_part_index(d, "ELBOW"));
  CHECK_EQ_INT(c.studies[0], 1);
  CHECK_EQ_INT(c.studies[1], 1);
  CHECK_EQ_INT(c.images[0], 2);
  CHECK_EQ_INT(c.images[1], 1);
  dataset_free(d);
}

/* A part set is a 64-bit mask: DS_MAX_PARTS parts read, one more is refused
 * (it used to be cut off silently in validation). */
TEST(more_parts_than_the_limit_is_an_error) {
  const char *base = generic_tree();
  char csv[1024];
  snprintf(csv, sizeof csv, "%s/parts.csv", base);
  dataset_options opt = {.skip_file_check = 1};
  for (int n = DS_MAX_PARTS; n <= DS_MAX_PARTS + 1; n++) {
    FILE *f = fopen(csv, "wb");
    if (!f) FAILF("cannot write %s", csv);
    fputs("image_path,label,part\n", f);
    for (int i = 0; i < n; i++) fprintf(f, "p%d.png,%d,XR_P%d\n", i, i & 1, i);
    fclose(f);
    dataset *d = NULL;
    mskx_err e = {0};
    int rc = dataset_open(csv, &opt, &d, &e);
    if (n == DS_MAX_PARTS) {
      CHECK_OK(rc, &e);
      CHECK_EQ_INT(d->n_parts, DS_MAX_PARTS);
      dataset_free(d);
    } else {
      CHECK_EQ_INT(rc, MSKX_ELIMIT);
      CHECK(d == NULL);
      CHECKF(strstr(e.msg, "65 body parts") && strstr(e.msg, "at most 64"), "message: %s", e.msg);
    }
  }
}

TEST_MAIN()
