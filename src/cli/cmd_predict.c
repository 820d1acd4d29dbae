/* mskx predict: studies (image files or folders) through a model, bundle or
 * ensemble via the public API; table, JSON or CSV output, CAM overlays. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "core/error.h"
#include "core/util.h"
#include "data/parts.h"
#include "data/study_folder.h"
#include "infer/batch_predict.h"
#include "infer/cam.h"
#include "io/dicom.h"

static const char *const usage =
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
    "\n"
    "  --model FILE           model (.safetensors), per-part bundle or ensemble (.json)\n"
    "  --part XR_NAME         body part of every study (default: the XR_* component of\n"
    "                         each path, else DICOM BodyPartExamined/StudyDescription/\n"
    "                         SeriesDescription, docs/dicom.md); bundles route by part\n"
    "  --agg mean|max         study probability from image probabilities (default mean,\n"
    "                         the MURA paper's rule)\n"
    "  --tta flip             average each image with its horizontal mirror\n"
    "  --cam DIR              write a class-activation overlay PNG per image into DIR\n"
    "                         (named <study>__<image>.png, '/' in paths becoming '_')\n"
    "  --sr DIR               write a DICOM Structured Report per DICOM study into DIR\n"
    "                         (SR_<StudyInstanceUID>.dcm: probability, decision, threshold,\n"
    "                         part, model, source image references; docs/dicom.md)\n"
    "  --json                 print one JSON array of studies\n"
    "  --csv                  print CSV: study,part,n_images,probability,decision (0/1)\n"
    "  --threads N            compute threads (default: all cores), pinned one per CPU\n"
    "                         (MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)\n"
    "  --precision fp32|bf16|auto  compute precision (default fp32; auto: the faster\n"
    "                         of one timed batch each, reported in the output)\n"
    "  --max-batch N          images per forward pass, gathered from whole studies\n"
    "                         (default 16)\n"
    "  --decode-threads N     threads reading and resizing images while the network\n"
    "                         computes (default: a quarter of the cores, 1..4)\n" CLI_DICOM_HELP
    "  -h, --help             this help\n"
    "\n"
    "A study that cannot be predicted (unreadable image, no images, unknown part) is\n"
    "reported on stderr and, with --json, as an entry with \"error\"; the other studies\n"
    "are still predicted. Exit status: 0 all studies predicted, 1 some failed or the\n"
    "model could not be loaded, 2 usage error.\n";

typedef struct predict_args {
  const char *model, *part, *cam_dir, *dicom_window, *sr_dir;
  dicom_options dicom;
  int json, csv, tta, agg, threads, max_batch, bf16, decode_threads;
  char **paths;
  int n_paths;
} predict_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, predict_args *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},    {"part", required_argument, 0, 'p'},
      {"agg", required_argument, 0, 'a'},      {"tta", required_argument, 0, 't'},
      {"cam", required_argument, 0, 'c'},      {"json", no_argument, 0, 'j'},
      {"csv", no_argument, 0, 'v'},            {"threads", required_argument, 0, 'T'},
      {"precision", required_argument, 0, 'P'}, {"max-batch", required_argument, 0, 'b'},
      {"help", no_argument, 0, 'h'},           {"sr", required_argument, 0, 'S'},
      {"decode-threads", required_argument, 0, 'D'},
      CLI_DICOM_OPTIONS,                       {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  long v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': a->model = optarg; break;
      case 'p': a->part = optarg; break;
      case 'c': a->cam_dir = optarg; break;
      case 'S': a->sr_dir = optarg; break;
      case 'j': a->json = 1; break;
      case 'v': a->csv = 1; break;
      case 'a':
        if (strcmp(optarg, "mean") && strcmp(optarg, "max"))
          return cli_errorf("predict", "--agg: expected mean or max, got '%s'", optarg) + 1;
        a->agg = strcmp(optarg, "max") ? MSKX_AGG_MEAN : MSKX_AGG_MAX;
        break;
      case 't':
        if (strcmp(optarg, "flip")) return cli_errorf("predict", "--tta: expected flip, got '%s'", optarg) + 1;
        a->tta = 1;
        break;
      case 'P':
        if (cli_parse_precision("predict", optarg, &a->bf16)) return 2;
        break;
      case 'T':
        if (cli_parse_int("predict", "threads", optarg, 1, 1024, &v)) return 2;
        a->threads = (int)v;
        break;
      case 'b':
        if (cli_parse_int("predict", "max-batch", optarg, 1, 4096, &v)) return 2;
        a->max_batch = (int)v;
        break;
      case 'D':
        if (cli_parse_int("predict", "decode-threads", optarg, 1, BATCH_PREDICT_MAX_THREADS, &v)) return 2;
        a->decode_threads = (int)v;
        break;
      case 'h': fputs(usage, stdout); return 0;
      case CLI_DICOM_OPT_WINDOW: case CLI_DICOM_OPT_FRAMES:
        if (cli_dicom_option("predict", c, optarg, &a->dicom)) return 2;
        if (c == CLI_DICOM_OPT_WINDOW) a->dicom_window = optarg;
        break;
      default: return cli_usage_error("predict");
    }
  }
  if (!a->model) return cli_errorf("predict", "--model is required (see --help)") + 1;
  if (a->json && a->csv) return cli_errorf("predict", "--json and --csv are exclusive") + 1;
  if (optind >= argc) return cli_errorf("predict", "no study given: name image files or study folders") + 1;
  a->paths = argv + optind;
  a->n_paths = argc - optind;
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
  if (!rc && a->cam_dir && !(cams = calloc((size_t)r->n_images, sizeof *cams))) rc = err_set(&e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && a->cam_dir && i < r->n_images; i++)
    rc = write_overlay(a->cam_dir, study, path_is_dir(study), &r->images[i], cams[i], sizeof cams[i], &e);
  char sr[4200] = "";
  if (!rc && a->sr_dir && r->study_uid[0]) {
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
    const char *part = a->part ? a->part : pl.v[i].xr[0] ? pl.v[i].xr : NULL;
    bs[n] = (batch_study){(const char *const *)pl.v[i].imgs, pl.v[i].n, part};
    entry[n++] = i;
  }
  batch_predict_options bo = {a->decode_threads, 0};
  mskx_predict_options po = {a->agg, a->tta, 0, a->cam_dir != NULL, 0, 0};
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
  if (a.cam_dir && mkdir_p(a.cam_dir, &e)) return cli_error("predict", &e);
  if (a.sr_dir && mkdir_p(a.sr_dir, &e)) return cli_error("predict", &e);
  mskx_load_options lo = {.threads = a.threads, .precision = a.bf16,
                          .max_batch = a.max_batch, .max_contexts = 1, .dicom_window = a.dicom_window,
                          .dicom_first_frame = a.dicom.frames == DICOM_FRAMES_FIRST};
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
