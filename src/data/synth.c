/* Synthetic MURA-format dataset: the plan (parts, splits, patients, labels,
 * views), one view's rendering, and the parallel writer of PNGs and CSVs. */
#include "data/synth.h"
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "data/synth_draw.h"
#include "io/dicom.h"
#include "io/image.h"

#define TWO_PI 6.2831853071795864f
/* The plan's stream key, far from any study index. */
#define PLAN_STREAM 0x8000000000000000ULL
/* Probability that an abnormal study's finding shows on a given view (at
 * least one view always shows it). */
#define VIEW_FINDING_P 0.8
/* Share of views saved as RGB PNGs (grey replicated), as some MURA files are. */
#define RGB_P 0.3

/* Studies per part in MURA v1.1, train + valid (Rajpurkar et al. 2017,
 * Table 1), in enum synth_part order. */
static const double mura_part_studies[SYNTH_NPARTS] = {3015, 727, 2110, 1912, 3697, 1010, 2185};
/* Abnormal finding types: fractures most common, then lesions, then hardware. */
static const double finding_p[SYNTH_NFINDINGS] = {0.0, 0.45, 0.25, 0.30};

static const char *part_names[SYNTH_NPARTS] = {"XR_SHOULDER", "XR_HUMERUS", "XR_FINGER", "XR_ELBOW",
                                               "XR_WRIST", "XR_FOREARM", "XR_HAND"};
static const char *finding_names[SYNTH_NFINDINGS] = {"none", "fracture", "hardware", "lesion"};
static const char *split_names[2] = {"train", "valid"};

const char *synth_part_name(int part) { return part >= 0 && part < SYNTH_NPARTS ? part_names[part] : "?"; }
const char *synth_finding_name(int f) { return f >= 0 && f < SYNTH_NFINDINGS ? finding_names[f] : "?"; }

void synth_config_default(synth_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->studies = SYNTH_DEFAULT_STUDIES;
  cfg->seed = SYNTH_DEFAULT_SEED;
  cfg->min_size = SYNTH_DEFAULT_MIN_SIZE;
  cfg->max_size = SYNTH_DEFAULT_MAX_SIZE;
  cfg->valid_fraction = SYNTH_DEFAULT_VALID_FRACTION;
  cfg->abnormal_fraction = SYNTH_DEFAULT_ABNORMAL_FRACTION;
  cfg->finding_scale = SYNTH_DEFAULT_FINDING_SCALE;
}

int synth_config_check(const synth_config *c, mskx_err *e) {
  if (!c->out_dir || !c->out_dir[0]) return err_set(e, MSKX_EINVAL, "--out: an output folder is required");
  if (c->studies < SYNTH_MIN_STUDIES || c->studies > SYNTH_MAX_STUDIES)
    return err_set(e, MSKX_EINVAL,
                   "--studies: %d is out of range [%d, %d] (each of the 7 parts needs a study in both splits)",
                   c->studies, SYNTH_MIN_STUDIES, SYNTH_MAX_STUDIES);
  if (c->min_size < SYNTH_MIN_SIZE || c->min_size > SYNTH_MAX_SIZE)
    return err_set(e, MSKX_EINVAL, "--min-size: %d is out of range [%d, %d]", c->min_size, SYNTH_MIN_SIZE,
                   SYNTH_MAX_SIZE);
  if (c->max_size < SYNTH_MIN_SIZE || c->max_size > SYNTH_MAX_SIZE)
    return err_set(e, MSKX_EINVAL, "--max-size: %d is out of range [%d, %d]", c->max_size, SYNTH_MIN_SIZE,
                   SYNTH_MAX_SIZE);
  if (c->min_size > c->max_size)
    return err_set(e, MSKX_EINVAL, "--min-size %d is larger than --max-size %d", c->min_size, c->max_size);
  if (!(c->valid_fraction > 0.0 && c->valid_fraction < 1.0))
    return err_set(e, MSKX_EINVAL, "--valid-fraction: %g is not strictly between 0 and 1", c->valid_fraction);
  if (!(c->abnormal_fraction >= 0.0 && c->abnormal_fraction <= 1.0))
    return err_set(e, MSKX_EINVAL, "--abnormal-fraction: %g is not in [0, 1]", c->abnormal_fraction);
  if (!(c->finding_scale >= 1.0 && c->finding_scale <= 4.0))
    return err_set(e, MSKX_EINVAL, "--finding-scale: %g is not in [1, 4]", c->finding_scale);
  if (c->threads < 0 || c->threads > 1024)
    return err_set(e, MSKX_EINVAL, "--threads: %d is out of range [0, 1024]", c->threads);
  return MSKX_OK;
}

/* ---- one view ---- */

/* Pose and film drawn from the view stream in a fixed order, before any
 * finding, so the finding never changes them. */
static void draw_view(rng *vr, int min_size, int max_size, film *fm, float pose[5]) {
  memset(fm, 0, sizeof *fm);
  fm->noise_seed = rng_u64(vr);
  fm->w = min_size + (int)rng_below(vr, (uint64_t)(max_size - min_size + 1));
  fm->h = min_size + (int)rng_below(vr, (uint64_t)(max_size - min_size + 1));
  pose[0] = unif(vr, 0.0f, TWO_PI);   /* rotation */
  pose[1] = unif(vr, 0.75f, 1.0f);    /* squash of the width: oblique and lateral projections */
  pose[2] = unif(vr, 0.7f, 0.98f);    /* share of the frame the anatomy fills */
  pose[3] = unif(vr, -0.5f, 0.5f);
  pose[4] = unif(vr, -0.5f, 0.5f);
  fm->exposure = unif(vr, 0.6f, 1.0f);
  fm->gamma = unif(vr, 0.75f, 1.5f);
  fm->contrast = unif(vr, 0.85f, 1.08f);
  fm->bg = unif(vr, 0.0f, 0.08f);
  fm->grad_x = unif(vr, -0.06f, 0.06f);
  fm->grad_y = unif(vr, -0.06f, 0.06f);
  float m = (float)(fm->w < fm->h ? fm->w : fm->h);
  fm->blur = unif(vr, 0.3f, 1.2f) * fmaxf(1.0f, m / 350.0f);
  fm->noise = unif(vr, 0.008f, 0.04f);
  fm->collimate = rng_uniform(vr) < 0.25;
  for (int i = 0; i < 4; i++) fm->col[i] = unif(vr, 0.0f, 1.0f);
  fm->col_level = rng_uniform(vr) < 0.5 ? unif(vr, 0.0f, 0.04f) : unif(vr, 0.75f, 0.95f);
  fm->marker = rng_uniform(vr) < 0.85;
  fm->marker_corner = (int)rng_below(vr, 4);
  fm->marker_size = unif(vr, 0.05f, 0.085f);
  fm->channels = rng_uniform(vr) < RGB_P ? 3 : 1;
  int tinted = fm->channels == 3 && rng_uniform(vr) < 0.4;
  for (int c = 0; c < 3; c++) fm->tint[c] = tinted ? unif(vr, 0.95f, 1.05f) : 1.0f;
}

void synth_image_free(synth_image *img) {
  if (!img) return;
  free(img->px);
  img->px = NULL;
}

static int clampi(float v, int lo, int hi) {
  int i = (int)floorf(v);
  return i < lo ? lo : i > hi ? hi : i;
}

int synth_render_scaled(uint64_t seed, uint64_t study, int view, int part, int finding, int min_size, int max_size,
                        float finding_scale, synth_image *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (part < 0 || part >= SYNTH_NPARTS || finding < 0 || finding >= SYNTH_NFINDINGS || view < 1 ||
      view > SYNTH_MAX_VIEWS || min_size < SYNTH_MIN_SIZE || max_size > SYNTH_MAX_SIZE || min_size > max_size)
    return err_set(e, MSKX_EINVAL, "synth_render: bad arguments (part %d, finding %d, view %d, sizes %d-%d)",
                   part, finding, view, min_size, max_size);
  rng sr = rng_for(seed, study, 0), vr = rng_for(seed, study, (uint64_t)view);
  film fm;
  float pose[5], core[4], fc[3];
  draw_view(&vr, min_size, max_size, &fm, pose);
  size_t n = (size_t)fm.w * (size_t)fm.h;
  scene *sc = malloc(sizeof *sc);
  float *planes = calloc(4 * n, sizeof(float));
  out->px = malloc(n * (size_t)fm.channels);
  if (!sc || !planes || !out->px) {
    free(sc);
    free(planes);
    synth_image_free(out);
    return err_set(e, MSKX_ENOMEM, "synth_render: cannot allocate a %dx%d image", fm.w, fm.h);
  }
  build_anatomy(sc, part, &sr);
  sc->fscale = finding_scale;
  xform xf;
  fit_pose(sc, fm.w, fm.h, pose[0], pose[1], pose[2], pose[3], pose[4], &xf, core);
  /* Collimate to the region of interest: the kept field never cuts the core anatomy. */
  fm.col[0] *= fmaxf(0.0f, core[0] / (float)fm.w - 0.01f);
  fm.col[1] *= fmaxf(0.0f, 1.0f - core[2] / (float)fm.w - 0.01f);
  fm.col[2] *= fmaxf(0.0f, core[1] / (float)fm.h - 0.01f);
  fm.col[3] *= fmaxf(0.0f, 1.0f - core[3] / (float)fm.h - 0.01f);
  add_finding(sc, finding, &sr, &vr, &fc[0], &fc[1], &fc[2]);
  render_scene(sc, &xf, fm.w, fm.h, planes, planes + n, planes + 2 * n);
  develop(planes, planes + n, planes + 2 * n, &fm, sc->mirror, planes + 3 * n, out->px);
  out->w = fm.w;
  out->h = fm.h;
  out->channels = fm.channels;
  out->finding = finding;
  if (finding != SYNTH_FINDING_NONE) {
    float px, py, r = fc[2] * xf.s;
    xform_point(&xf, fc[0], fc[1], &px, &py);
    out->box[0] = clampi(px - r, 0, fm.w);
    out->box[1] = clampi(py - r, 0, fm.h);
    out->box[2] = clampi(px + r + 1.0f, 0, fm.w);
    out->box[3] = clampi(py + r + 1.0f, 0, fm.h);
  }
  free(sc);
  free(planes);
  return MSKX_OK;
}

int synth_render(uint64_t seed, uint64_t study, int view, int part, int finding, int min_size, int max_size,
                 synth_image *out, mskx_err *e) {
  return synth_render_scaled(seed, study, view, part, finding, min_size, max_size, 1.0f, out, e);
}

/* ---- the plan ---- */

typedef struct plan_study {
  int split, part, patient, number, label, n_views, first_image, finding;
  uint8_t visible[SYNTH_MAX_VIEWS];
} plan_study;

typedef struct plan_image {
  int channels, box[4];
} plan_image;

typedef struct plan {
  plan_study *studies;
  int n_studies;
  plan_image *images;
  int n_images;
  int patients[2];
} plan;

/* Integers summing to total, each floor(want[i]) or one more, the extras
 * going to the largest fractional parts (ties to the lower index). */
static void largest_remainder(const double *want, int n, int total, int *out) {
  int sum = 0;
  for (int i = 0; i < n; i++) sum += out[i] = (int)floor(want[i]);
  while (sum < total) {
    int best = -1;
    double bf = -1.0;
    for (int i = 0; i < n; i++) {
      double f = want[i] - (double)out[i];
      if (f > bf) bf = f, best = i;
    }
    out[best]++;
    sum++;
  }
}

static int draw_views(rng *r) {
  double u = rng_uniform(r);  /* about 2.75 views per study, MURA's 2.77 */
  return u < 0.08 ? 1 : u < 0.40 ? 2 : u < 0.77 ? 3 : 4;
}

static int draw_patient_studies(rng *r) {
  double u = rng_uniform(r);  /* MURA: 14,863 studies of 12,173 patients */
  return u < 0.82 ? 1 : u < 0.96 ? 2 : 3;
}

/* Finding type and which views show it, from the study's own stream. */
static void study_findings(uint64_t seed, uint64_t index, plan_study *st) {
  rng r = rng_for(seed, index, SYNTH_STREAM_STUDY);
  double u = rng_uniform(&r), acc = 0.0;
  st->finding = SYNTH_FINDING_FRACTURE;
  for (int f = 1; f < SYNTH_NFINDINGS; f++) {
    acc += finding_p[f];
    if (u < acc) {
      st->finding = f;
      break;
    }
  }
  int any = 0, nv = st->n_views < SYNTH_MAX_VIEWS ? st->n_views : SYNTH_MAX_VIEWS;
  for (int v = 0; v < nv; v++) any |= st->visible[v] = rng_uniform(&r) < VIEW_FINDING_P;
  if (!any) st->visible[rng_below(&r, (uint64_t)nv)] = 1;
}

static int make_plan(const synth_config *c, plan *p, mskx_err *e) {
  memset(p, 0, sizeof *p);
  int n = c->studies, per_part[SYNTH_NPARTS], n_split[2][SYNTH_NPARTS], abn[SYNTH_NPARTS];
  double want[SYNTH_NPARTS], total = 0.0;
  for (int i = 0; i < SYNTH_NPARTS; i++) total += mura_part_studies[i];
  /* Two studies per part first (one per split), the rest in MURA's proportions. */
  for (int i = 0; i < SYNTH_NPARTS; i++) want[i] = (double)(n - SYNTH_MIN_STUDIES) * mura_part_studies[i] / total;
  largest_remainder(want, SYNTH_NPARTS, n - SYNTH_MIN_STUDIES, per_part);
  for (int i = 0; i < SYNTH_NPARTS; i++) {
    per_part[i] += 2;
    int v = (int)lround((double)per_part[i] * c->valid_fraction);
    v = v < 1 ? 1 : v > per_part[i] - 1 ? per_part[i] - 1 : v;
    n_split[SYNTH_VALID][i] = v;
    n_split[SYNTH_TRAIN][i] = per_part[i] - v;
  }
  p->studies = calloc((size_t)n, sizeof *p->studies);
  int *labels = malloc((size_t)n * sizeof *labels);
  if (!p->studies || !labels) {
    free(labels);
    return err_set(e, MSKX_ENOMEM, "synth: cannot allocate the plan of %d studies", n);
  }
  rng r = rng_for(c->seed, PLAN_STREAM, 0);
  int patient = 0, k = 0, images = 0;
  for (int s = 0; s < 2; s++) {
    int in_split = 0;
    for (int i = 0; i < SYNTH_NPARTS; i++) in_split += n_split[s][i];
    for (int i = 0; i < SYNTH_NPARTS; i++) want[i] = (double)n_split[s][i] * c->abnormal_fraction;
    largest_remainder(want, SYNTH_NPARTS, (int)lround((double)in_split * c->abnormal_fraction), abn);
    for (int i = 0; i < SYNTH_NPARTS; i++) {
      int m = n_split[s][i];
      /* Exactly abn[i] abnormal studies, at shuffled positions. */
      for (int j = 0; j < m; j++) labels[j] = j < abn[i];
      for (int j = m - 1; j > 0; j--) {
        int t = (int)rng_below(&r, (uint64_t)j + 1), x = labels[j];
        labels[j] = labels[t];
        labels[t] = x;
      }
      for (int j = 0; j < m;) {
        int ks = draw_patient_studies(&r);
        if (ks > m - j) ks = m - j;
        patient++;
        p->patients[s]++;
        for (int q = 0; q < ks; q++, j++, k++) {
          plan_study *st = &p->studies[k];
          *st = (plan_study){s, i, patient, q + 1, labels[j], draw_views(&r), images, SYNTH_FINDING_NONE, {0}};
          images += st->n_views;
          if (st->label) study_findings(c->seed, (uint64_t)k, st);
        }
      }
    }
  }
  free(labels);
  p->n_studies = k;
  p->n_images = images;
  p->images = calloc((size_t)images, sizeof *p->images);
  if (!p->images) {
    free(p->studies);
    return err_set(e, MSKX_ENOMEM, "synth: cannot allocate the plan of %d images", images);
  }
  return MSKX_OK;
}

static void plan_free(plan *p) {
  free(p->studies);
  free(p->images);
  memset(p, 0, sizeof *p);
}

/* "MURA-v1.1/train/XR_WRIST/patient00012/study1_positive/" */
static void study_rel(const plan_study *st, char *buf, size_t n) {
  snprintf(buf, n, "MURA-v1.1/%s/%s/patient%05d/study%d_%s/", split_names[st->split], part_names[st->part],
           st->patient, st->number, st->label ? "positive" : "negative");
}

static int write_study(const synth_config *c, plan *p, int index, mskx_err *e) {
  const plan_study *st = &p->studies[index];
  char rel[256], dir[4096], name[32], path[4200];
  study_rel(st, rel, sizeof rel);
  int rc = path_join(dir, sizeof dir, c->out_dir, rel, e);
  if (!rc) rc = mkdir_p(dir, e);
  for (int v = 1; !rc && v <= st->n_views; v++) {
    int f = st->label && st->visible[v - 1] ? st->finding : SYNTH_FINDING_NONE;
    synth_image img;
    rc = synth_render_scaled(c->seed, (uint64_t)index, v, st->part, f, c->min_size, c->max_size,
                             (float)c->finding_scale, &img, e);
    if (rc) break;
    snprintf(name, sizeof name, "image%d.%s", v, c->dicom ? "dcm" : "png");
    rc = path_join(path, sizeof path, dir, name, e);
    if (!rc && c->dicom) {
      char pid[32], body[32];
      snprintf(pid, sizeof pid, "patient%05d", st->patient);
      snprintf(body, sizeof body, "%s", part_names[st->part] + 3); /* XR_WRIST -> WRIST */
      dicom_synth_info di = {body, pid, "20260101", c->seed * 1000003u + (uint64_t)index,
                             (c->seed * 1000003u + (uint64_t)index) * 16u + (uint64_t)v, 1, v,
                             st->first_image + v - 1};
      rc = dicom_write_synthetic(path, img.px, img.w, img.h, img.channels, &di, e);
    } else if (!rc) {
      rc = image_write_png(path, img.px, img.w, img.h, img.channels, e);
    }
    plan_image *pi = &p->images[st->first_image + v - 1];
    pi->channels = img.channels;
    memcpy(pi->box, img.box, sizeof pi->box);
    synth_image_free(&img);
  }
  return rc;
}

/* Refuses an existing, non-empty MURA-v1.1 folder unless forced. */
static int check_out(const synth_config *c, const char *root, mskx_err *e) {
  if (!path_exists(root)) return MSKX_OK;
  if (!path_is_dir(root)) return err_set(e, MSKX_EIO, "%s: exists and is not a folder", root);
  DIR *d = opendir(root);
  if (!d) return err_set(e, MSKX_EIO, "%s: cannot list the folder", root);
  int entries = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
  closedir(d);
  if (entries && !c->force)
    return err_set(e, MSKX_EINVAL, "%s: folder exists and is not empty (use --force to write over it)", root);
  return MSKX_OK;
}

enum csv_kind { CSV_IMAGES, CSV_STUDIES, CSV_FINDINGS };

static int write_csv(const plan *p, const char *path, int kind, int split, const char *ext, mskx_err *e) {
  atomic_file af;
  int rc = atomic_file_open(&af, path, e);
  if (rc) return rc;
  char rel[256];
  if (kind == CSV_FINDINGS) rc = atomic_file_printf(&af, e, "image,label,finding,shown,x0,y0,x1,y1\n");
  for (int i = 0; i < p->n_studies && !rc; i++) {
    const plan_study *st = &p->studies[i];
    if (kind != CSV_FINDINGS && st->split != split) continue;
    study_rel(st, rel, sizeof rel);
    if (kind == CSV_STUDIES) {
      rc = atomic_file_printf(&af, e, "%s,%d\n", rel, st->label);
      continue;
    }
    for (int v = 1; v <= st->n_views && !rc; v++) {
      if (kind == CSV_IMAGES) {
        rc = atomic_file_printf(&af, e, "%simage%d.%s\n", rel, v, ext);
        continue;
      }
      const int *b = p->images[st->first_image + v - 1].box;
      int shown = st->label && st->visible[v - 1];
      rc = atomic_file_printf(&af, e, "%simage%d.%s,%d,%s,%d,%d,%d,%d,%d\n", rel, v, ext, st->label,
                              finding_names[st->finding], shown, shown ? b[0] : 0, shown ? b[1] : 0,
                              shown ? b[2] : 0, shown ? b[3] : 0);
    }
  }
  if (rc) {
    atomic_file_abort(&af);
    return rc;
  }
  return atomic_file_commit(&af, e);
}

static int write_csvs(const synth_config *c, const plan *p, const char *root, mskx_err *e) {
  char name[64], path[4200];
  int rc = MSKX_OK;
  for (int s = 0; s < 2 && !rc; s++) {
    snprintf(name, sizeof name, "%s_image_paths.csv", split_names[s]);
    rc = path_join(path, sizeof path, root, name, e);
    if (!rc) rc = write_csv(p, path, CSV_IMAGES, s, c->dicom ? "dcm" : "png", e);
    snprintf(name, sizeof name, "%s_labeled_studies.csv", split_names[s]);
    if (!rc) rc = path_join(path, sizeof path, root, name, e);
    if (!rc) rc = write_csv(p, path, CSV_STUDIES, s, c->dicom ? "dcm" : "png", e);
  }
  if (!rc) rc = path_join(path, sizeof path, c->out_dir, "synth_findings.csv", e);
  if (!rc) rc = write_csv(p, path, CSV_FINDINGS, 0, c->dicom ? "dcm" : "png", e);
  return rc;
}

static void summarize(const plan *p, synth_summary *out) {
  for (int i = 0; i < p->n_studies; i++) {
    const plan_study *st = &p->studies[i];
    out->studies[st->split]++;
    out->images[st->split] += st->n_views;
    out->part_studies[st->split][st->part]++;
    if (!st->label) continue;
    out->abnormal[st->split]++;
    out->abnormal_images += st->n_views;
    out->finding_studies[st->finding]++;
    for (int v = 0; v < st->n_views; v++) out->finding_images += st->visible[v];
  }
  for (int i = 0; i < p->n_images; i++) out->rgb_images += p->images[i].channels == 3;
  out->patients[0] = p->patients[0];
  out->patients[1] = p->patients[1];
}

int synth_generate(const synth_config *c, synth_summary *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  double t0 = now_seconds();
  char root[4096];
  int rc = synth_config_check(c, e);
  if (!rc) rc = path_join(root, sizeof root, c->out_dir, "MURA-v1.1", e);
  if (!rc) rc = check_out(c, root, e);
  if (!rc) rc = mkdir_p(root, e);
  plan p;
  if (!rc) rc = make_plan(c, &p, e);
  if (rc) return rc;
  int threads = c->threads > 0 ? c->threads : omp_get_max_threads();
  int failed = 0, first_bad = p.n_studies;
  mskx_err first = {0};
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < p.n_studies; i++) {
    int stop;
#pragma omp atomic read
    stop = failed;
    if (stop) continue;
    mskx_err le = {0};
    if (write_study(c, &p, i, &le)) {
#pragma omp critical(synth_first_error)
      {
        if (i < first_bad) first_bad = i, first = le;
      }
#pragma omp atomic write
      failed = 1;
    }
  }
  if (failed) {
    plan_free(&p);
    if (e) *e = first;
    return first.code ? first.code : MSKX_EINTERNAL;
  }
  rc = write_csvs(c, &p, root, e);
  if (!rc) summarize(&p, out);
  plan_free(&p);
  out->seconds = now_seconds() - t0;
  return rc;
}
