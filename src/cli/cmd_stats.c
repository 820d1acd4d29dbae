/* mskx stats: studies and images per body part, split and class (Table 1 of
 * the MURA paper), image sizes from headers, and an optional decode check. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "data/dataset.h"

#define STATS_MAX_THREADS 256
#define STR_(x) #x
#define STR(x) STR_(x)

static const char *const usage_head =
    "usage: mskx stats --data DIR [--json] [--check] [--threads T] [--no-sizes]\n\n"
    "Counts studies and images per body part in the train and valid splits, normal and\n"
    "abnormal (the layout of Table 1 of the MURA paper), reports image sizes read from\n"
    "the image headers, and prints the dataset's warnings.\n\n";

/* Default reading threads: the CPUs, at most this many. */
#define STATS_DEFAULT_THREADS_MAX 16

typedef struct stats_args {
  char data[4096];
  int json, check, no_sizes;
  int threads;
} stats_args;

#define A(m) .off = offsetof(stats_args, m), .size = sizeof(((stats_args *)0)->m)
#define G_STATS "options"
static const opt_spec rows[] = {
    {.flag = "data", .type = OPT_PATH, A(data), .arg = "DIR", .group = G_STATS, .flags = OPT_REQUIRED,
     .help = "MURA-v1.1 folder (with its four CSVs, or only its folder tree), a\n"
             "folder containing MURA-v1.1/, or a CSV file with a header\n"
             "image_path,label[,study_id][,part][,split] (see docs/data.md)"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_STATS, .help = "print JSON instead of the table"},
    {.flag = "check", .type = OPT_BOOL, A(check), .group = G_STATS,
     .help = "decode every image; list each unreadable one (path and reason)\n"
             "on stderr and exit 1 if there are any"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = STATS_MAX_THREADS, .arg = "T", .group = G_STATS,
     .flags = OPT_HIDE_DEFAULT,
     .help = "threads reading images (default: the number of CPUs, at most " STR(STATS_DEFAULT_THREADS_MAX) ")"},
    {.flag = "no-sizes", .type = OPT_BOOL, A(no_sizes), .group = G_STATS,
     .help = "skip reading image headers (counts only)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, stats_args *a) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, N_ROWS, a);
  cli_opt_table tab = {rows, N_ROWS, a, NULL, NULL};
  int help, rc = cli_options_parse("stats", argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a->data[0]) return cli_usage_errorf("stats", "--data DIR is required");
  if (!a->threads) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = cpus < 1 ? 1 : cpus > STATS_DEFAULT_THREADS_MAX ? STATS_DEFAULT_THREADS_MAX : (int)cpus;
  }
  return -1;
}

/* Width and height summary over the readable images of both splits. */
typedef struct size_summary {
  int n, unreadable;
  double w[3], h[3]; /* min, median, max */
} size_summary;

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void summarise(int *v, int n, double out[3]) {
  qsort(v, (size_t)n, sizeof *v, cmp_int);
  out[0] = v[0];
  out[1] = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  out[2] = v[n - 1];
}

static int size_stats(const ds_scan *scans, size_summary *s) {
  memset(s, 0, sizeof *s);
  int total = scans[0].n + scans[1].n;
  int *w = malloc((size_t)(total ? total : 1) * sizeof *w),
      *h = malloc((size_t)(total ? total : 1) * sizeof *h);
  if (!w || !h) {
    free(w);
    free(h);
    return -1;
  }
  for (int k = 0; k < DS_NSPLITS; k++)
    for (int i = 0; i < scans[k].n; i++) {
      if (scans[k].w[i] < 0) {
        s->unreadable++;
        continue;
      }
      w[s->n] = scans[k].w[i];
      h[s->n++] = scans[k].h[i];
    }
  if (s->n) {
    summarise(w, s->n, s->w);
    summarise(h, s->n, s->h);
  }
  free(w);
  free(h);
  return 0;
}

static void print_table(const dataset *d, const size_summary *sz, int have_sizes, int checked) {
  printf("dataset %s (%s): %d parts, %d + %d studies, %d + %d images (train + valid)\n\n", d->root,
         dataset_layout_name(d->layout), d->n_parts, d->train.n_studies, d->valid.n_studies,
         d->train.n_images, d->valid.n_images);
  printf("%-16s %-33s    %s\n", "", "train", "valid");
  printf("%-16s %-16s %-16s    %-16s %s\n", "", "studies", "images", "studies", "images");
  printf("%-16s", "part");
  for (int k = 0; k < 4; k++) printf("%s%8s %7s", k == 2 ? "    " : " ", "normal", "abnorm.");
  printf("\n");
  for (int i = 0; i <= d->n_parts; i++) {
    int part = i < d->n_parts ? i : -1; /* parts, then the total */
    printf("%-16.16s", part >= 0 ? d->parts[part] : "total");
    for (int k = 0; k < DS_NSPLITS; k++) {
      ds_counts c = dataset_count(dataset_split(d, k), part);
      printf("%s%8d %7d %8d %7d", k ? "    " : " ", c.studies[0], c.studies[1], c.images[0], c.images[1]);
    }
    printf("\n");
  }
  if (have_sizes) {
    printf("\nimage size (%d images, from %s):", sz->n, checked ? "decoding" : "headers");
    if (sz->n)
      printf(" width min %g median %g max %g; height min %g median %g max %g", sz->w[0], sz->w[1], sz->w[2],
             sz->h[0], sz->h[1], sz->h[2]);
    printf("\n");
    if (sz->unreadable)
      printf("unreadable images: %d%s\n", sz->unreadable, checked ? "" : " (run with --check for the list)");
  }
}

static cJSON *counts_json(ds_counts c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "studies_normal", c.studies[0]);
  cJSON_AddNumberToObject(o, "studies_abnormal", c.studies[1]);
  cJSON_AddNumberToObject(o, "images_normal", c.images[0]);
  cJSON_AddNumberToObject(o, "images_abnormal", c.images[1]);
  return o;
}

static cJSON *minmed_json(const double v[3]) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "min", v[0]);
  cJSON_AddNumberToObject(o, "median", v[1]);
  cJSON_AddNumberToObject(o, "max", v[2]);
  return o;
}

static int print_json(const dataset *d, const size_summary *sz, int have_sizes, const ds_scan *scans,
                      int checked) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "data", d->root);
  cJSON_AddStringToObject(root, "layout", dataset_layout_name(d->layout));
  cJSON *parts = cJSON_AddObjectToObject(root, "parts");
  for (int p = -1; p < d->n_parts; p++) {
    cJSON *o = p >= 0 ? cJSON_AddObjectToObject(parts, d->parts[p]) : cJSON_AddObjectToObject(root, "total");
    for (int k = 0; k < DS_NSPLITS; k++)
      cJSON_AddItemToObject(o, dataset_split(d, k)->name, counts_json(dataset_count(dataset_split(d, k), p)));
  }
  if (have_sizes) {
    cJSON *s = cJSON_AddObjectToObject(root, "image_size");
    cJSON_AddStringToObject(s, "source", checked ? "decoded" : "headers");
    cJSON_AddNumberToObject(s, "images", sz->n);
    cJSON_AddNumberToObject(s, "unreadable", sz->unreadable);
    if (sz->n) {
      cJSON_AddItemToObject(s, "width", minmed_json(sz->w));
      cJSON_AddItemToObject(s, "height", minmed_json(sz->h));
    }
  }
  cJSON *w = cJSON_AddArrayToObject(root, "warnings");
  for (int i = 0; i < d->n_warning_msgs; i++) cJSON_AddItemToArray(w, cJSON_CreateString(d->warnings[i]));
  cJSON_AddNumberToObject(root, "n_warnings", d->n_warnings);
  if (checked) {
    cJSON *u = cJSON_AddArrayToObject(root, "unreadable");
    for (int k = 0; k < DS_NSPLITS; k++)
      for (int i = 0; i < scans[k].n; i++) {
        if (!scans[k].error[i]) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", dataset_split(d, k)->images[i].path);
        cJSON_AddStringToObject(o, "error", scans[k].error[i]);
        cJSON_AddItemToArray(u, o);
      }
  }
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return cli_errorf("stats", "out of memory writing JSON");
  printf("%s\n", text);
  cJSON_free(text);
  return 0;
}

int cmd_stats(int argc, char **argv) {
  stats_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  rc = 0;
  dataset *d;
  mskx_err e = {0};
  if (dataset_open(a.data, NULL, &d, &e)) return cli_error("stats", &e);
  ds_scan scans[DS_NSPLITS];
  memset(scans, 0, sizeof scans);
  size_summary sz = {0};
  int scanned = !a.no_sizes || a.check, bad = 0;
  for (int k = 0; scanned && k < DS_NSPLITS && !rc; k++)
    if (dataset_scan(dataset_split(d, k), a.check, a.threads, NULL, &scans[k], &e))
      rc = cli_error("stats", &e);
  if (!rc && scanned && size_stats(scans, &sz)) rc = cli_errorf("stats", "out of memory");
  if (!rc) {
    rc = a.json ? print_json(d, &sz, scanned, scans, a.check) : (print_table(d, &sz, scanned, a.check), 0);
    fflush(stdout);
    for (int i = 0; i < d->n_warning_msgs; i++) fprintf(stderr, "mskx stats: warning: %s\n", d->warnings[i]);
    if (d->n_warnings > d->n_warning_msgs)
      fprintf(stderr, "mskx stats: ... and %d more warnings\n", d->n_warnings - d->n_warning_msgs);
    for (int k = 0; a.check && k < DS_NSPLITS; k++)
      for (int i = 0; i < scans[k].n; i++)
        if (scans[k].error[i]) {
          fprintf(stderr, "mskx stats: unreadable: %s\n", scans[k].error[i]);
          bad++;
        }
    if (bad) rc = cli_errorf("stats", "%d of %d images are unreadable", bad, scans[0].n + scans[1].n);
  }
  for (int k = 0; k < DS_NSPLITS; k++) ds_scan_free(&scans[k]);
  dataset_free(d);
  return rc;
}
