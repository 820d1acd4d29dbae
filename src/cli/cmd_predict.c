/* mskx predict: studies (image files or folders) through a model, bundle or
 * ensemble via the public API; table, JSON or CSV output, CAM overlays. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/util.h"
#include "data/parts.h"
#include "data/study_folder.h"
#include "infer/batch_predict.h"
#include "infer/cam.h"
#include "io/dicom.h"

static const char *const usage_head =
    "usage: mskx predict --model M PATH... [options]\n"
    "\n"
    "Predicts one study per PATH: an image file (.png, .jpg, .jpeg, .dcm or a DICOM file\n"
    "without extension), or a folder whose images (hidden files ignored, natural order)\n"
    "form one study; DICOM files in a folder are split into studies by StudyInstanceUID,\n"
    "and every frame of a multi-frame file is an image. Prints each study's probability\n"
    "of abnormality, decision, threshold, body part and per-image probabilities.\n"
    "Studies are computed together (whole studies, up to --max-batch images per\n"
    "forward pass) while decoder threads read the next ones; output keeps the order\n"
    "of the PATHs, and each study's answer is the one it gets alone (docs/predict.md).\n"
    "\n";

static const char *const usage_tail =
    "\n"
    "A study that cannot be predicted (unreadable image, no images, unknown part) is\n"
    "reported on stderr and, with --json, as an entry with \"error\"; the other studies\n"
    "are still predicted. Exit status: 0 all studies predicted, 1 some failed or the\n"
    "model could not be loaded, 2 usage error.\n";

/* Longest --part taken; the library says whether it names a part. */
#define PREDICT_PART_MAX 256

typedef struct predict_args {
  char model[4096], part[PREDICT_PART_MAX], cam_dir[4096], sr_dir[4096];
  cli_dicom_args dicom;
  int json, csv, tta, agg_max, threads, max_batch, bf16, decode_threads;
  char **paths;
  int n_paths;
} predict_args;

#define A(m) .off = offsetof(predict_args, m), .size = sizeof(((predict_args *)0)->m)
#define G_STUDY "Model and studies"
#define G_OUTPUT "Output"
#define G_COMPUTE "Computation"
static const opt_spec rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "FILE", .group = G_STUDY, .flags = OPT_REQUIRED,
     .help = "model (.safetensors), per-part bundle or ensemble (.json)"},
    {.flag = "part", .type = OPT_STRING, A(part), .arg = "XR_NAME", .group = G_STUDY, .flags = OPT_HIDE_DEFAULT,
     .help = "body part of every study (default: the XR_* component of\n"
             "each path, else DICOM BodyPartExamined/StudyDescription/\n"
             "SeriesDescription, docs/dicom.md); bundles route by part"},
    {.flag = "agg", .type = OPT_CHOICE, A(agg_max), .choices = "mean|max", .def_str = "mean", .arg = "mean|max",
     .group = G_STUDY, .help = "study probability from image probabilities; mean is the\nMURA paper's rule"},
    {.flag = "tta", .type = OPT_CHOICE, A(tta), .choices = "none|flip", .def_str = "none", .arg = "none|flip",
     .group = G_STUDY, .help = "flip: average each image with its horizontal mirror"},
    {.flag = "cam", .type = OPT_PATH, A(cam_dir), .arg = "DIR", .group = G_OUTPUT,
     .help = "write a class-activation overlay PNG per image into DIR\n"
             "(named <study>__<image>.png, '/' in paths becoming '_')"},
    {.flag = "sr", .type = OPT_PATH, A(sr_dir), .arg = "DIR", .group = G_OUTPUT,
     .help = "write a DICOM Structured Report per DICOM study into DIR\n"
             "(SR_<StudyInstanceUID>.dcm: probability, decision, threshold,\n"
             "part, model, source image references; docs/dicom.md)"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_OUTPUT, .help = "print one JSON array of studies"},
    {.flag = "csv", .type = OPT_BOOL, A(csv), .group = G_OUTPUT,
     .help = "print CSV: study,part,n_images,probability,decision (0/1)"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_COMPUTE,
     .flags = OPT_HIDE_DEFAULT,
     .help = "compute threads (default: all cores), pinned one per CPU\n"
             "(MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16|auto", .def_str = "fp32",
     .arg = "fp32|bf16|auto", .group = G_COMPUTE,
     .help = "compute precision (auto: the faster of one timed batch each,\nreported in the output)"},
    {.flag = "max-batch", .type = OPT_INT, A(max_batch), .lo = 1, .hi = 4096, .arg = "N", .group = G_COMPUTE,
     .flags = OPT_HIDE_DEFAULT,
     .help = "images per forward pass, gathered from whole studies\n(default 16)"},
    {.flag = "decode-threads", .type = OPT_INT, A(decode_threads), .lo = 1, .hi = BATCH_PREDICT_MAX_THREADS,
     .arg = "N", .group = G_COMPUTE, .flags = OPT_HIDE_DEFAULT,
     .help = "threads reading and resizing images while the network\n"
             "computes (default: a quarter of the cores, 1..4)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, predict_args *a) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, N_ROWS, a);
  opt_defaults(cli_dicom_rows, cli_dicom_row_count, &a->dicom);
  cli_opt_table tabs[] = {{rows, N_ROWS, a, NULL, NULL}, {cli_dicom_rows, cli_dicom_row_count, &a->dicom, NULL, NULL}};
  int help, first, rc = cli_options_parse_operands("predict", argc, argv, tabs, 2, &help, &first);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, tabs, 2, usage_tail);
    return 0;
  }
  mskx_err e = {0, ""};
  if (opt_check_all(rows, N_ROWS, a, &e)) return cli_usage_errorf("predict", "%s (see --help)", e.msg);
  if (a->json && a->csv) return cli_usage_errorf("predict", "--json and --csv are exclusive");
  if (first >= argc) return cli_usage_errorf("predict", "no study given: name image files or study folders");
  a->paths = argv + first;
  a->n_paths = argc - first;
  return -1;
}

static int write_overlay(const char *dir, const char *study, int is_dir, const mskx_image_result *ir, char *out,
                         size_t n, mskx_err *e) {
  char name[CAM_OVERLAY_NAME_MAX];
  cam_overlay_name(study, ir->name, is_dir, name, sizeof name);
  int rc = path_join(out, n, dir, name, e);
  if (!rc) rc = file_write_atomic(out, ir->overlay_png, ir->overlay_png_len, e);
  return rc;
}

static cJSON *study_json(const char *study, const mskx_result *r, char (*cams)[4096], const char *sr) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "study", study);
  if (r->study_uid[0]) cJSON_AddStringToObject(o, "study_uid", r->study_uid);
  if (r->part[0]) cJSON_AddStringToObject(o, "part", r->part);
  else cJSON_AddNullToObject(o, "part");
  if (r->part[0]) cJSON_AddStringToObject(o, "part_source", r->part_from_dicom ? "dicom" : "path or --part");
  cJSON_AddNumberToObject(o, "n_images", r->n_images);
  cli_json_add_exact(o, "probability", r->probability);
  cJSON_AddBoolToObject(o, "abnormal", r->abnormal);
  cJSON_AddStringToObject(o, "decision", r->abnormal ? "abnormal" : "normal");
  cli_json_add_exact(o, "threshold", r->threshold);
  cJSON_AddStringToObject(o, "model", r->model_used);
  if (sr) cJSON_AddStringToObject(o, "sr", sr);
  if (r->n_members) {
    cJSON *mp = cJSON_AddArrayToObject(o, "member_probabilities");
    for (int i = 0; mp && i < r->n_members; i++) cJSON_AddItemToArray(mp, cli_json_exact(r->member_probabilities[i]));
  }
  cJSON *imgs = cJSON_AddArrayToObject(o, "images");
  for (int i = 0; imgs && i < r->n_images; i++) {
    cJSON *im = cJSON_CreateObject();
    cJSON_AddStringToObject(im, "path", r->images[i].name);
    cli_json_add_exact(im, "probability", r->images[i].probability);
    if (cams) cJSON_AddStringToObject(im, "cam", cams[i]);
    cJSON_AddItemToArray(imgs, im);
  }
  return o;
}

static void print_table_row(const char *study, int width, const mskx_result *r) {
  printf("%-*s  %-11s %6d  %11.6f  %-8s  %9.4f\n", width, study, r->part[0] ? r->part : "-", r->n_images,
         r->probability, r->abnormal ? "abnormal" : "normal", r->threshold);
  for (int i = 0; i < r->n_images; i++) {
    const char *base = strrchr(r->images[i].name, '/');
    printf("    %-*s %11.6f\n", width + 17, base ? base + 1 : r->images[i].name, r->images[i].probability);
  }
}

/* One study's outcome (predicted by the engine): write overlays, print.
 * Returns 0 or 1 (failed). label names the study in output (the path, with
 * @StudyInstanceUID when a folder holds several DICOM studies). */
static int report_study(const predict_args *a, const char *study, const char *label, char **imgs, int n, int width,
                        cJSON *arr, const mskx_result *r, int rc, mskx_err e) {
  char (*cams)[4096] = NULL;
  const char *cam_dir = a->cam_dir[0] ? a->cam_dir : NULL;
  if (!rc && cam_dir && !(cams = calloc((size_t)r->n_images, sizeof *cams))) rc = err_set(&e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && cam_dir && i < r->n_images; i++)
    rc = write_overlay(cam_dir, study, path_is_dir(study), &r->images[i], cams[i], sizeof cams[i], &e);
  char sr[4200] = "";
  if (!rc && a->sr_dir[0] && r->study_uid[0]) {
    const char *model = strrchr(a->model, '/');
    dicom_sr_in in = {NULL, 0, r->probability, r->threshold, r->abnormal, r->part, model ? model + 1 : a->model, NULL, NULL, NULL};
    rc = dicom_sr_write_files(a->sr_dir, (const char *const *)imgs, n, &in, sr, sizeof sr, &e);
  }
  if (rc) {
    cli_error("predict", &e);
    if (arr) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "study", label);
      cJSON_AddStringToObject(o, "error", e.msg);
      cJSON_AddItemToArray(arr, o);
    }
  } else if (arr) {
    cJSON_AddItemToArray(arr, study_json(label, r, cams, sr[0] ? sr : NULL));
  } else if (a->csv) {
    printf("%s,%s,%d,%.9g,%d\n", label, r->part, r->n_images, r->probability, r->abnormal);
  } else {
    print_table_row(label, width, r);
  }
  free(cams);
  return rc != 0;
}

/* The studies of every PATH, listed before any is predicted so that the
 * engine (infer/batch_predict.h) batches across them. An entry with n == 0
 * is a PATH that could not be listed (err), reported in its place. */
typedef struct study_entry {
  const char *path;
  char *label, *err;
  char **imgs;   /* owned copies */
  int n;
  char xr[PART_NAME_MAX];   /* the XR_* component of the path, "" if none */
} study_entry;

typedef struct study_plan {
  study_entry *v;
  int n, cap;
} study_plan;

static int plan_add(study_plan *pl, const char *path, const char *label, char **imgs, int n, const char *err) {
  if (pl->n == pl->cap) {
    int cap = pl->cap ? 2 * pl->cap : 16;
    study_entry *v = realloc(pl->v, (size_t)cap * sizeof *v);
    if (!v) return -1;
    pl->v = v, pl->cap = cap;
  }
  study_entry *s = &pl->v[pl->n];
  *s = (study_entry){path, str_dup(label), err ? str_dup(err) : NULL, n ? calloc((size_t)n, sizeof(char *)) : NULL, 0, ""};
  pl->n++;
  if (!part_from_path(path, s->xr, sizeof s->xr)) s->xr[0] = 0;
  if (!s->label || (err && !s->err) || (n && !s->imgs)) return -1;
  for (; s->n < n; s->n++)
    if (!(s->imgs[s->n] = str_dup(imgs[s->n]))) return -1;
  return 0;
}

static void plan_free(study_plan *pl) {
  for (int i = 0; i < pl->n; i++) {
    free(pl->v[i].label);
    free(pl->v[i].err);
    study_folder_list_free(pl->v[i].imgs, pl->v[i].n);
  }
  free(pl->v);
}

/* A PATH: its images, split by StudyInstanceUID when they are DICOM files
 * of several studies, appended to the plan. Returns 0, or -1 out of memory. */
static int list_path(study_plan *pl, const char *path) {
  mskx_err e = {0, ""};
  char **imgs = NULL, **sub = NULL;
  int n = 0, n_groups = 0, bad = 0;
  int *group = NULL;
  char (*uids)[DICOM_UI_MAX + 1] = NULL;
  int rc = study_folder_list(path, &imgs, &n, &e);
  if (!rc && (!(group = malloc((size_t)n * sizeof *group)) || !(uids = malloc((size_t)n * sizeof *uids)) ||
              !(sub = malloc((size_t)n * sizeof *sub))))
    rc = err_set(&e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = dicom_group_by_study((const char *const *)imgs, n, group, &n_groups, uids, &e);
  if (rc) bad = plan_add(pl, path, path, NULL, 0, e.msg);
  for (int g = 0; !rc && !bad && g < n_groups; g++) {
    int k = 0;
    for (int i = 0; i < n; i++)
      if (group[i] == g) sub[k++] = imgs[i];
    char label[4200];
    if (n_groups > 1) snprintf(label, sizeof label, "%s@%s", path, uids[g][0] ? uids[g] : "no-StudyInstanceUID");
    else snprintf(label, sizeof label, "%s", path);
    bad = plan_add(pl, path, label, sub, k, NULL);
  }
  free(group);
  free(uids);
  free(sub);
  study_folder_list_free(imgs, n);
  return bad;
}

/* What the engine's callback needs: the plan, its listed entries in the
 * engine's order, the output, and the count of failures so far. */
typedef struct report_ctx {
  const predict_args *a;
  study_plan *pl;
  const int *entry;    /* engine study i is plan entry entry[i] */
  int reported;        /* plan entries reported so far */
  int width, progress, failed;
  cJSON *arr;
} report_ctx;

/* Reports plan entries up to (not including) `until`: listing errors in
 * place; studies come through on_study. */
static void report_listing_errors(report_ctx *c, int until) {
  for (; c->reported < until; c->reported++) {
    const study_entry *s = &c->pl->v[c->reported];
    mskx_err e = {MSKX_EIO, ""};
    snprintf(e.msg, sizeof e.msg, "%s", s->err);
    c->failed += report_study(c->a, s->path, s->label, NULL, 0, c->width, c->arr, NULL, e.code, e);
  }
}

static int on_study(void *user, int i, const mskx_result *r, int rc, const mskx_err *e) {
  report_ctx *c = user;
  int k = c->entry[i];
  report_listing_errors(c, k);
  const study_entry *s = &c->pl->v[k];
  if (c->progress) fprintf(stderr, "\r[%d/%d] %.60s\033[K", k + 1, c->pl->n, s->label);
  c->failed += report_study(c->a, s->path, s->label, s->imgs, s->n, c->width, c->arr, r, rc, *e);
  c->reported = k + 1;
  fflush(stdout);
  return 0;
}

/* Lists every PATH, predicts the studies through the engine and reports
 * each in input order. Returns the number of failed studies, or -1 when the
 * run itself failed (message printed). */
static int run_paths(const predict_args *a, mskx_model *m, int width, cJSON *arr, int *n_studies) {
  study_plan pl = {0};
  int bad = 0;
  for (int i = 0; !bad && i < a->n_paths; i++) bad = list_path(&pl, a->paths[i]);
  batch_study *bs = bad ? NULL : calloc((size_t)pl.n + 1, sizeof *bs);
  int *entry = bad ? NULL : calloc((size_t)pl.n + 1, sizeof *entry), n = 0;
  report_ctx c = {a, &pl, entry, 0, width, pl.n > 3 && isatty(STDERR_FILENO), 0, arr};
  mskx_err e = {0, ""};
  int rc = bad || !bs || !entry ? err_set(&e, MSKX_ENOMEM, "out of memory") : MSKX_OK;
  for (int i = 0; !rc && i < pl.n; i++) {
    if (!pl.v[i].n) continue;
    const char *part = a->part[0] ? a->part : pl.v[i].xr[0] ? pl.v[i].xr : NULL;
    bs[n] = (batch_study){(const char *const *)pl.v[i].imgs, pl.v[i].n, part};
    entry[n++] = i;
  }
  batch_predict_options bo = {a->decode_threads, 0};
  mskx_predict_options po = {a->agg_max ? MSKX_AGG_MAX : MSKX_AGG_MEAN, a->tta, 0, a->cam_dir[0] != 0, 0, 0};
  if (!rc) rc = batch_predict_files(m, bs, n, &po, &bo, on_study, &c, &e);
  if (!rc) report_listing_errors(&c, pl.n);
  if (c.progress) fprintf(stderr, "\r\033[K");
  if (rc) cli_error("predict", &e);
  *n_studies = pl.n;
  plan_free(&pl);
  free(bs);
  free(entry);
  return rc ? -1 : c.failed;
}

int cmd_predict(int argc, char **argv) {
  predict_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  mskx_err e = {0, ""};
  if (a.cam_dir[0] && mkdir_p(a.cam_dir, &e)) return cli_error("predict", &e);
  if (a.sr_dir[0] && mkdir_p(a.sr_dir, &e)) return cli_error("predict", &e);
  mskx_load_options lo = {.threads = a.threads, .precision = a.bf16,
                          .max_batch = a.max_batch, .max_contexts = 1, .dicom_window = a.dicom.window,
                          .dicom_first_frame = cli_dicom_args_options(&a.dicom).frames == DICOM_FRAMES_FIRST};
  cli_pin_threads(a.threads);
  mskx_model *m = NULL;
  if (mskx_model_load(a.model, &lo, &m, &e)) return cli_error("predict", &e);
  struct mskx_model_info mi;
  if (a.bf16 == MSKX_PRECISION_AUTO && !mskx_model_info(m, &mi))
    fprintf(stderr, "mskx predict: precision auto: %s (the faster on this CPU)\n", mi.precision);
  int width = 5;
  for (int i = 0; i < a.n_paths; i++) {
    int l = (int)strlen(a.paths[i]);
    width = l > width ? (l < 60 ? l : 60) : width;
  }
  cJSON *arr = a.json ? cJSON_CreateArray() : NULL;
  if (a.csv) printf("study,part,n_images,probability,decision\n");
  else if (!a.json) printf("%-*s  %-11s %6s  %11s  %-8s  %9s\n", width, "study", "part", "images", "probability", "decision", "threshold");
  int n_studies = 0, failed = run_paths(&a, m, width, arr, &n_studies);
  if (failed < 0) {
    cJSON_Delete(arr);
    mskx_model_free(m);
    return 1;
  }
  if (arr) {
    char *s = cJSON_Print(arr);
    if (s) printf("%s\n", s);
    else failed++;
    free(s);
    cJSON_Delete(arr);
  }
  mskx_model_free(m);
  if (failed) fprintf(stderr, "mskx predict: %d of %d studies failed\n", failed, n_studies);
  return failed ? 1 : 0;
}
