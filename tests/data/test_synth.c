/* Synthetic MURA datasets: layout and CSV formats checked against MURA's
 * published conventions with regular expressions, every listed PNG decoded,
 * split/label/patient invariants, proportions on a larger set, determinism
 * across thread counts, and that findings really change the pixels (the
 * same view rendered with and without its finding). */
#include <ftw.h>
#include <regex.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "core/util.h"
#include "data/synth.h"
#include "io/image.h"
#include "test.h"

#define PARTS_RE "XR_(ELBOW|FINGER|FOREARM|HAND|HUMERUS|SHOULDER|WRIST)"
#define STUDY_RE "MURA-v1\\.1/(train|valid)/" PARTS_RE "/patient([0-9]{5})/study([0-9]+)_(positive|negative)/"
#define MAX_ROWS 4096

static const char *tmp_root(void) {
  const char *t = getenv("MSKX_TMP");
  return t && *t ? t : "/tmp";
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *fb) {
  (void)sb, (void)flag, (void)fb;
  return remove(p);
}

/* Output folders are removed again when the program exits. */
static char made[16][512];
static int n_made;

static void fresh_dir(char *buf, size_t n, const char *tag) {
  snprintf(buf, n, "%s/synth_%s_%ld", tmp_root(), tag, (long)getpid());
  nftw(buf, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  if (n_made < 16) snprintf(made[n_made++], sizeof made[0], "%s", buf);
}

__attribute__((destructor)) static void remove_made(void) {
  for (int i = 0; i < n_made; i++) nftw(made[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int generate(const char *dir, int studies, uint64_t seed, int lo, int hi, int threads, synth_summary *s,
                    mskx_err *e) {
  synth_config c;
  synth_config_default(&c);
  c.out_dir = dir;
  c.studies = studies;
  c.seed = seed;
  c.min_size = lo;
  c.max_size = hi;
  c.threads = threads;
  return synth_generate(&c, s, e);
}

/* One CSV row split on regex groups. */
typedef struct row {
  char text[256];
  int split, part_ok, patient, study, positive, image, label;
  char part[16];
  char study_dir[200];
} row;

static regex_t re_image, re_study;
__attribute__((constructor)) static void compile_res(void) {
  regcomp(&re_image, "^(" STUDY_RE ")image([0-9]+)\\.png$", REG_EXTENDED);
  regcomp(&re_study, "^(" STUDY_RE "),([01])$", REG_EXTENDED);
}

static int group_int(const char *s, const regmatch_t *m) { return atoi(s + m->rm_so); }

/* Parses a headerless CSV of image paths (is_image) or labelled studies.
 * Returns the row count, or -1 with a message in err on the first bad line. */
static int read_rows(const char *path, int is_image, row *rows, char *err, size_t errn) {
  unsigned char *buf;
  size_t len;
  mskx_err e = {0};
  if (file_read_all(path, 0, &buf, &len, &e)) return test_fmt(err, errn, "%s", e.msg), -1;
  int n = 0;
  if (len == 0 || buf[len - 1] != '\n') {
    free(buf);
    return snprintf(err, errn, "%s: empty or last line without \\n", path), -1;
  }
  char *save = NULL;
  for (char *line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    regmatch_t m[10];
    if (n >= MAX_ROWS || strchr(line, '\r') || regexec(is_image ? &re_image : &re_study, line, 10, m, 0)) {
      snprintf(err, errn, "%s line %d does not match: '%s'", path, n + 1, line);
      free(buf);
      return -1;
    }
    row *r = &rows[n++];
    memset(r, 0, sizeof *r);
    snprintf(r->text, sizeof r->text, "%s", line);
    snprintf(r->study_dir, sizeof r->study_dir, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
    r->split = strncmp(line + m[2].rm_so, "valid", 5) == 0;
    snprintf(r->part, sizeof r->part, "%.*s", (int)(m[3].rm_eo - m[3].rm_so), line + m[3].rm_so);
    r->patient = group_int(line, &m[4]);
    r->study = group_int(line, &m[5]);
    r->positive = line[m[6].rm_so] == 'p';
    if (is_image) r->image = group_int(line, &m[7]);
    else r->label = line[m[7].rm_so] - '0';
  }
  free(buf);
  return n;
}

static row train_s[MAX_ROWS], valid_s[MAX_ROWS], train_i[MAX_ROWS], valid_i[MAX_ROWS];

static int png_count;
static int count_png(const char *p, const struct stat *sb, int flag, struct FTW *fb) {
  (void)sb, (void)fb;
  size_t l = strlen(p);
  if (flag == FTW_F && l > 4 && !strcmp(p + l - 4, ".png")) png_count++;
  return 0;
}

TEST(layout_csvs_and_pngs) {
  char dir[512], path[1024], err[512];
  fresh_dir(dir, sizeof dir, "layout");
  synth_summary s;
  mskx_err e = {0};
  CHECK_OK(generate(dir, 40, 7, 64, 96, 2, &s, &e), &e);
  row *studies[2] = {train_s, valid_s}, *images[2] = {train_i, valid_i};
  int ns[2], ni[2];
  static const char *names[2] = {"train", "valid"};
  for (int sp = 0; sp < 2; sp++) {
    snprintf(path, sizeof path, "%s/MURA-v1.1/%s_labeled_studies.csv", dir, names[sp]);
    ns[sp] = read_rows(path, 0, studies[sp], err, sizeof err);
    CHECKF(ns[sp] > 0, "%s", err);
    snprintf(path, sizeof path, "%s/MURA-v1.1/%s_image_paths.csv", dir, names[sp]);
    ni[sp] = read_rows(path, 1, images[sp], err, sizeof err);
    CHECKF(ni[sp] > 0, "%s", err);
    CHECK_EQ_INT(ns[sp], s.studies[sp]);
    CHECK_EQ_INT(ni[sp], s.images[sp]);
  }
  CHECK_EQ_INT(ns[0] + ns[1], 40);
  static const char *parts[7] = {"ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST"};
  for (int sp = 0; sp < 2; sp++) {
    int seen[7] = {0};
    for (int i = 0; i < ns[sp]; i++) {
      row *r = &studies[sp][i];
      CHECKF(r->split == sp, "%s listed in the %s CSV", r->text, names[sp]);
      CHECKF(r->label == r->positive, "label %d but folder %s", r->label, r->study_dir);
      snprintf(path, sizeof path, "%s/%s", dir, r->study_dir);
      CHECKF(path_is_dir(path), "%s: study folder missing", path);
      for (int p = 0; p < 7; p++) seen[p] |= !strcmp(r->part, parts[p]);
      /* Study numbers run 1, 2, ... per patient: study k > 1 needs study k-1. */
      int prev = r->study == 1;
      for (int j = 0; j < ns[sp] && !prev; j++)
        prev = studies[sp][j].patient == r->patient && studies[sp][j].study == r->study - 1;
      CHECKF(prev, "%s: study %d without study %d of the same patient", r->text, r->study, r->study - 1);
      for (int j = 0; j < i; j++) CHECKF(strcmp(studies[sp][j].study_dir, r->study_dir), "duplicate %s", r->text);
      /* Its images are numbered 1..k with 1 <= k <= 4. */
      unsigned mask = 0;
      int k = 0;
      for (int j = 0; j < ni[sp]; j++) {
        if (strcmp(images[sp][j].study_dir, r->study_dir)) continue;
        int v = images[sp][j].image;
        CHECKF(v >= 1 && v <= 4 && !(mask & (1u << v)), "%s: bad image number", images[sp][j].text);
        mask |= 1u << v;
        k++;
      }
      CHECKF(k >= 1 && mask == ((1u << (k + 1)) - 2), "%s: %d images, numbers mask 0x%x", r->study_dir, k, mask);
    }
    for (int p = 0; p < 7; p++) CHECKF(seen[p], "XR_%s missing from %s", parts[p], names[sp]);
    for (int j = 0; j < ni[sp]; j++) {
      row *r = &images[sp][j];
      CHECKF(r->split == sp, "%s listed in the %s CSV", r->text, names[sp]);
      int listed = 0;
      for (int i = 0; i < ns[sp]; i++) listed |= !strcmp(studies[sp][i].study_dir, r->study_dir);
      CHECKF(listed, "%s: study not in the labelled studies", r->text);
      snprintf(path, sizeof path, "%s/%s", dir, r->text);
      gray_image g = {0};
      CHECK_OK(image_load(path, NULL, &g, &e), &e);
      int ok = g.w >= 64 && g.w <= 96 && g.h >= 64 && g.h <= 96;
      gray_image_free(&g);
      CHECKF(ok, "%s: size %dx%d outside 64..96", path, g.w, g.h);
    }
  }
  for (int i = 0; i < ns[0]; i++)
    for (int j = 0; j < ns[1]; j++)
      CHECKF(train_s[i].patient != valid_s[j].patient, "patient %05d in both splits", train_s[i].patient);
  png_count = 0;
  snprintf(path, sizeof path, "%s/MURA-v1.1", dir);
  nftw(path, count_png, 16, FTW_PHYS);
  CHECK_EQ_INT(png_count, ni[0] + ni[1]);
}

/* The plan is keyed as synth.h says: re-rendering a listed image from its
 * study's position and the findings CSV reproduces the file's bytes, and
 * views without a drawn finding equal the normal rendering. */
TEST(files_match_synth_render) {
  char dir[512], path[1024];
  fresh_dir(dir, sizeof dir, "render");
  synth_summary s;
  mskx_err e = {0};
  CHECK_OK(generate(dir, 20, 11, 48, 64, 2, &s, &e), &e);
  snprintf(path, sizeof path, "%s/synth_findings.csv", dir);
  FILE *f = fopen(path, "r");
  CHECK(f);
  char line[512], img[256], fname[32];
  CHECK(fgets(line, sizeof line, f) && !strcmp(line, "image,label,finding,shown,x0,y0,x1,y1\n"));
  int study = -1, n = 0;
  char last[256] = "";
  while (fgets(line, sizeof line, f)) {
    int label, shown, b[4];
    CHECKF(sscanf(line, "%255[^,],%d,%31[^,],%d,%d,%d,%d,%d", img, &label, fname, &shown, &b[0], &b[1], &b[2],
                  &b[3]) == 8, "bad findings line: %s", line);
    char *slash = strrchr(img, '/');
    CHECK(slash);
    if (strncmp(img, last, (size_t)(slash - img + 1)) || strlen(last) != (size_t)(slash - img + 1)) {
      snprintf(last, sizeof last, "%.*s", (int)(slash - img + 1), img);
      study++;
    }
    int part = -1, finding = -1, view = atoi(slash + 6);
    for (int p = 0; p < SYNTH_NPARTS; p++)
      if (strstr(img, synth_part_name(p)) && strstr(img, synth_part_name(p))[strlen(synth_part_name(p))] == '/')
        part = p;
    for (int k = 0; k < SYNTH_NFINDINGS; k++)
      if (!strcmp(fname, synth_finding_name(k))) finding = k;
    CHECKF(part >= 0 && finding >= 0, "bad part or finding in %s", line);
    CHECKF((label == 0) == (finding == SYNTH_FINDING_NONE) && (shown == 0 || label == 1), "%s", line);
    CHECKF(!!strstr(img, "_positive/") == (label == 1), "label/folder mismatch: %s", line);
    synth_image r;
    CHECK_OK(synth_render(11, (uint64_t)study, view, part, shown ? finding : SYNTH_FINDING_NONE, 48, 64, &r, &e), &e);
    uint8_t *png;
    size_t len;
    int rc = image_encode_png(r.px, r.w, r.h, r.channels, &png, &len, &e);
    synth_image_free(&r);
    CHECK_OK(rc, &e);
    unsigned char *disk;
    size_t dlen;
    snprintf(path, sizeof path, "%s/%s", dir, img);
    rc = file_read_all(path, 0, &disk, &dlen, &e);
    int same = !rc && dlen == len && !memcmp(disk, png, len);
    free(png);
    if (!rc) free(disk);
    CHECKF(same, "%s differs from synth_render(study %d, view %d)", img, study, view);
    if (shown) CHECKF(b[0] >= 0 && b[1] >= 0 && b[0] < b[2] && b[1] < b[3] && b[2] <= 64 && b[3] <= 64, "%s", line);
    n++;
  }
  fclose(f);
  CHECK_EQ_INT(n, s.images[0] + s.images[1]);
  CHECK_EQ_INT(study + 1, 20);
}

static double mura_share(int part) {
  static const double m[SYNTH_NPARTS] = {3015, 727, 2110, 1912, 3697, 1010, 2185};  /* MURA Table 1 */
  return m[part] / 14656.0;
}

TEST(proportions_on_400_studies) {
  char dir[512], path[1024], err[512];
  fresh_dir(dir, sizeof dir, "share");
  synth_summary s;
  mskx_err e = {0};
  CHECK_OK(generate(dir, 400, 3, 32, 40, 2, &s, &e), &e);
  /* Abnormal share from the CSV labels, independently of the summary. */
  for (int sp = 0; sp < 2; sp++) {
    snprintf(path, sizeof path, "%s/MURA-v1.1/%s_labeled_studies.csv", dir, sp ? "valid" : "train");
    int n = read_rows(path, 0, sp ? valid_s : train_s, err, sizeof err), pos = 0;
    CHECKF(n > 0, "%s", err);
    for (int i = 0; i < n; i++) pos += (sp ? valid_s : train_s)[i].label;
    CHECK_NEAR((double)pos / n, 0.4, 0.02);
  }
  int total = s.studies[0] + s.studies[1], images = s.images[0] + s.images[1];
  CHECK_EQ_INT(total, 400);
  CHECK_NEAR((double)s.studies[1] / total, 0.15, 0.02);
  for (int p = 0; p < SYNTH_NPARTS; p++)
    CHECK_NEAR((double)(s.part_studies[0][p] + s.part_studies[1][p]) / total, mura_share(p), 0.02);
  CHECK_NEAR((double)images / total, 2.75, 0.25);                    /* MURA: 2.77 views per study */
  CHECK_NEAR((double)s.finding_images / s.abnormal_images, 0.81, 0.05); /* 0.8 per view, >= 1 per study */
  CHECK_NEAR((double)s.rgb_images / images, 0.3, 0.05);
  int abn = s.abnormal[0] + s.abnormal[1];
  CHECK_NEAR((double)s.finding_studies[SYNTH_FINDING_FRACTURE] / abn, 0.45, 0.1);
  CHECK(s.finding_studies[SYNTH_FINDING_HARDWARE] > 0 && s.finding_studies[SYNTH_FINDING_LESION] > 0);
  double per_patient = (double)total / (s.patients[0] + s.patients[1]);
  CHECKF(per_patient > 1.1 && per_patient < 1.35, "%.3f studies per patient", per_patient);
}

TEST(abnormal_fraction_extremes) {
  char dir[512];
  synth_config c;
  synth_summary s;
  mskx_err e = {0};
  for (int all = 0; all < 2; all++) {
    fresh_dir(dir, sizeof dir, all ? "all" : "none");
    synth_config_default(&c);
    c.out_dir = dir;
    c.studies = SYNTH_MIN_STUDIES;
    c.min_size = c.max_size = 32;
    c.abnormal_fraction = all;
    CHECK_OK(synth_generate(&c, &s, &e), &e);
    CHECK_EQ_INT(s.studies[0], 7);
    CHECK_EQ_INT(s.studies[1], 7);
    CHECK_EQ_INT(s.abnormal[0] + s.abnormal[1], all ? 14 : 0);
  }
}

static int same_file(const char *a, const char *b) {
  unsigned char *x, *y;
  size_t nx, ny;
  mskx_err e;
  if (file_read_all(a, 0, &x, &nx, &e)) return 0;
  if (file_read_all(b, 0, &y, &ny, &e)) return free(x), 0;
  int same = nx == ny && !memcmp(x, y, nx);
  free(x);
  free(y);
  return same;
}

TEST(deterministic_across_threads_and_seeds) {
  char a[512], b[512], c[512], pa[1024], pb[1024];
  fresh_dir(a, sizeof a, "det1");
  fresh_dir(b, sizeof b, "det2");
  fresh_dir(c, sizeof c, "det3");
  synth_summary s;
  mskx_err e = {0};
  CHECK_OK(generate(a, 30, 5, 48, 64, 1, &s, &e), &e);
  CHECK_OK(generate(b, 30, 5, 48, 64, 2, &s, &e), &e);
  CHECK_OK(generate(c, 30, 6, 48, 64, 2, &s, &e), &e);
  static const char *csvs[5] = {"MURA-v1.1/train_image_paths.csv", "MURA-v1.1/valid_image_paths.csv",
                                "MURA-v1.1/train_labeled_studies.csv", "MURA-v1.1/valid_labeled_studies.csv",
                                "synth_findings.csv"};
  for (int i = 0; i < 5; i++) {
    snprintf(pa, sizeof pa, "%s/%s", a, csvs[i]);
    snprintf(pb, sizeof pb, "%s/%s", b, csvs[i]);
    CHECKF(same_file(pa, pb), "%s differs between 1 and 2 threads", csvs[i]);
  }
  char err[512];
  int differ = 0, compared = 0;
  for (int sp = 0; sp < 2; sp++) {
    snprintf(pa, sizeof pa, "%s/MURA-v1.1/%s_image_paths.csv", a, sp ? "valid" : "train");
    int n = read_rows(pa, 1, train_i, err, sizeof err);
    snprintf(pb, sizeof pb, "%s/MURA-v1.1/%s_image_paths.csv", c, sp ? "valid" : "train");
    int m = read_rows(pb, 1, valid_i, err, sizeof err);
    CHECKF(n > 0 && m > 0, "%s", err);
    for (int i = 0; i < n; i++) {
      snprintf(pa, sizeof pa, "%s/%s", a, train_i[i].text);
      snprintf(pb, sizeof pb, "%s/%s", b, train_i[i].text);
      CHECKF(same_file(pa, pb), "%s differs between 1 and 2 threads", train_i[i].text);
      if (i >= m) continue;
      snprintf(pb, sizeof pb, "%s/%s", c, valid_i[i].text);
      differ += !same_file(pa, pb);
      compared++;
    }
  }
  CHECKF(compared >= 40 && differ >= compared * 9 / 10, "seed 6 vs 5: only %d of %d images differ", differ,
         compared);
}

/* Renders one key with and without a finding and measures the change. */
typedef struct diff_stats {
  int max_up, max_down;   /* largest brightening / darkening, grey levels */
  double in_mean, out_mean; /* mean |diff| inside / outside the box grown by margin */
  long outside_changed;   /* pixels changed outside the grown box */
  int box[4];
} diff_stats;

static int render_pair(uint64_t study, int part, int finding, diff_stats *d, mskx_err *e) {
  synth_image n, f;
  int rc = synth_render(99, study, 1, part, SYNTH_FINDING_NONE, 128, 128, &n, e);
  if (rc) return rc;
  rc = synth_render(99, study, 1, part, finding, 128, 128, &f, e);
  if (rc) return synth_image_free(&n), rc;
  memset(d, 0, sizeof *d);
  memcpy(d->box, f.box, sizeof d->box);
  /* Blur (sigma <= 1.2 px here, 3 px kernel) and the anti-aliased edges
   * spread a finding at most a few pixels past its geometric extent. */
  const int margin = 5;
  double in_sum = 0, out_sum = 0;
  long in_n = 0, out_n = 0;
  for (int y = 0; y < f.h; y++)
    for (int x = 0; x < f.w; x++) {
      int diff = 0;
      for (int c = 0; c < f.channels; c++) {
        size_t i = ((size_t)y * (size_t)f.w + (size_t)x) * (size_t)f.channels + (size_t)c;
        int v = (int)f.px[i] - (int)n.px[i];
        if (abs(v) > abs(diff)) diff = v;
      }
      if (diff > d->max_up) d->max_up = diff;
      if (-diff > d->max_down) d->max_down = -diff;
      int in = x >= f.box[0] - margin && x < f.box[2] + margin && y >= f.box[1] - margin && y < f.box[3] + margin;
      if (in) in_sum += abs(diff), in_n++;
      else out_sum += abs(diff), out_n++, d->outside_changed += diff != 0;
    }
  d->in_mean = in_n ? in_sum / (double)in_n : 0.0;
  d->out_mean = out_n ? out_sum / (double)out_n : 0.0;
  int same_shape = n.w == f.w && n.h == f.h && n.channels == f.channels;
  synth_image_free(&n);
  synth_image_free(&f);
  return same_shape ? 0 : -1;
}

TEST(findings_change_pixels_where_reported) {
  mskx_err e = {0};
  for (int part = 0; part < SYNTH_NPARTS; part++) {
    for (uint64_t key = 1; key <= 4; key++) {
      for (int f = 1; f < SYNTH_NFINDINGS; f++) {
        diff_stats d;
        uint64_t study = key * 1000 + (uint64_t)part;
        CHECK_OK(render_pair(study, part, f, &d, &e), &e);
        const char *what = synth_finding_name(f);
        CHECKF(d.max_up + d.max_down > 0, "%s on %s (study %llu): no pixel changed", what, synth_part_name(part),
               (unsigned long long)study);
        CHECKF(d.box[0] < d.box[2] && d.box[1] < d.box[3], "%s on %s: empty box", what, synth_part_name(part));
        if (f == SYNTH_FINDING_FRACTURE) {
          /* A displaced, angulated fragment moves along its whole length,
           * so only a denser change at the fracture site is required. */
          CHECKF(d.in_mean > d.out_mean, "fracture on %s (study %llu): mean |diff| %.3f inside vs %.3f out",
                 synth_part_name(part), (unsigned long long)study, d.in_mean, d.out_mean);
        } else {
          CHECKF(d.outside_changed == 0, "%s on %s (study %llu): %ld pixels changed outside its box", what,
                 synth_part_name(part), (unsigned long long)study, d.outside_changed);
        }
        /* Metal only adds attenuation and the film response is monotonic
         * (the noise is the same in both renders): hardware can only
         * brighten, and by a visible amount (16 grey levels, 6%). */
        if (f == SYNTH_FINDING_HARDWARE)
          CHECKF(d.max_down == 0 && d.max_up >= 16, "hardware on %s (study %llu): change +%d/-%d grey levels",
                 synth_part_name(part), (unsigned long long)study, d.max_up, d.max_down);
      }
    }
  }
}

TEST(render_is_deterministic_and_checks_arguments) {
  mskx_err e = {0};
  synth_image a, b;
  CHECK_OK(synth_render(4, 17, 2, SYNTH_HAND, SYNTH_FINDING_LESION, 64, 200, &a, &e), &e);
  CHECK_OK(synth_render(4, 17, 2, SYNTH_HAND, SYNTH_FINDING_LESION, 64, 200, &b, &e), &e);
  int same = a.w == b.w && a.h == b.h && a.channels == b.channels &&
             !memcmp(a.px, b.px, (size_t)a.w * (size_t)a.h * (size_t)a.channels);
  CHECK(a.w >= 64 && a.w <= 200 && a.h >= 64 && a.h <= 200);
  synth_image_free(&a);
  synth_image_free(&b);
  CHECK(same);
  CHECK(synth_render(4, 17, 0, SYNTH_HAND, 0, 64, 64, &a, &e) == MSKX_EINVAL && a.px == NULL);
  CHECK(synth_render(4, 17, 5, SYNTH_HAND, 0, 64, 64, &a, &e) == MSKX_EINVAL);
  CHECK(synth_render(4, 17, 1, SYNTH_NPARTS, 0, 64, 64, &a, &e) == MSKX_EINVAL);
  CHECK(synth_render(4, 17, 1, SYNTH_HAND, SYNTH_NFINDINGS, 64, 64, &a, &e) == MSKX_EINVAL);
  CHECK(synth_render(4, 17, 1, SYNTH_HAND, 0, 65, 64, &a, &e) == MSKX_EINVAL);
}

TEST(config_validation) {
  static const char *needle[] = {"--studies", "--studies", "--min-size", "--max-size", "--min-size",
                                 "--valid-fraction", "--valid-fraction", "--valid-fraction", "--abnormal-fraction",
                                 "--threads", "--out"};
  synth_config c;
  mskx_err e = {0};
  synth_config_default(&c);
  c.out_dir = "x";
  CHECK_OK(synth_config_check(&c, &e), &e);
  for (int i = 0; i < (int)(sizeof needle / sizeof needle[0]); i++) {
    synth_config_default(&c);
    c.out_dir = "x";
    switch (i) {
      case 0: c.studies = SYNTH_MIN_STUDIES - 1; break;
      case 1: c.studies = SYNTH_MAX_STUDIES + 1; break;
      case 2: c.min_size = SYNTH_MIN_SIZE - 1; break;
      case 3: c.max_size = SYNTH_MAX_SIZE + 1; break;
      case 4: c.min_size = 600, c.max_size = 300; break;
      case 5: c.valid_fraction = 0.0; break;
      case 6: c.valid_fraction = 1.0; break;
      case 7: c.valid_fraction = NAN; break;
      case 8: c.abnormal_fraction = 1.5; break;
      case 9: c.threads = -1; break;
      default: c.out_dir = NULL; break;
    }
    memset(&e, 0, sizeof e);
    int rc = synth_config_check(&c, &e);
    CHECKF(rc == MSKX_EINVAL && strstr(e.msg, needle[i]), "case %d: rc %d, '%s'", i, rc, e.msg);
    synth_summary s;
    CHECKF(synth_generate(&c, &s, &e) == MSKX_EINVAL, "case %d: generate accepted it", i);
  }
}

TEST(refuses_non_empty_output_without_force) {
  char dir[512], path[1024];
  fresh_dir(dir, sizeof dir, "force");
  synth_config c;
  synth_summary s;
  mskx_err e = {0};
  synth_config_default(&c);
  c.out_dir = dir;
  c.studies = SYNTH_MIN_STUDIES;
  c.min_size = c.max_size = 32;
  /* An existing but empty MURA-v1.1 is fine. */
  snprintf(path, sizeof path, "%s/MURA-v1.1", dir);
  CHECK_OK(mkdir_p(path, &e), &e);
  CHECK_OK(synth_generate(&c, &s, &e), &e);
  memset(&e, 0, sizeof e);
  CHECK(synth_generate(&c, &s, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, path) && strstr(e.msg, "--force"), "message: %s", e.msg);
  c.force = 1;
  c.seed = 2;
  CHECK_OK(synth_generate(&c, &s, &e), &e);
  char err[512];
  snprintf(path, sizeof path, "%s/MURA-v1.1/train_labeled_studies.csv", dir);
  CHECKF(read_rows(path, 0, train_s, err, sizeof err) == s.studies[0], "%s", err);
  /* A file where the folder should be. */
  fresh_dir(dir, sizeof dir, "file");
  CHECK_OK(mkdir_p(dir, &e), &e);
  snprintf(path, sizeof path, "%s/MURA-v1.1", dir);
  CHECK_OK(file_write_atomic(path, "x", 1, &e), &e);
  c.out_dir = dir;
  memset(&e, 0, sizeof e);
  CHECK(synth_generate(&c, &s, &e) != MSKX_OK && strstr(e.msg, path));
}

TEST_MAIN()
