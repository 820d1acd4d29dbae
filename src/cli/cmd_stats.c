/* mskx stats: studies and images per body part, split and class (Table 1 of
 * the MURA paper), image sizes from headers, and an optional decode check. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/error.h"
#include "data/dataset.h"

#define STATS_MAX_THREADS 256

static void usage(FILE *f) {
  fprintf(f,
          "usage: mskx stats --data DIR [--json] [--check] [--threads T] [--no-sizes]\n\n"
          "Counts studies and images per body part in the train and valid splits, normal and\n"
          "abnormal (the layout of Table 1 of the MURA paper), reports image sizes read from\n"
          "the image headers, and prints the dataset's warnings.\n\n"
          "  --data DIR      MURA-v1.1 folder (with its four CSVs, or only its folder tree), a\n"
          "                  folder containing MURA-v1.1/, or a CSV file with a header\n"
          "                  image_path,label[,study_id][,part][,split] (see docs/data.md)\n"
          "  --json          print JSON instead of the table\n"
          "  --check         decode every image; list each unreadable one (path and reason)\n"
          "                  on stderr and exit 1 if there are any\n"
          "  --threads T     threads reading images (default: the number of CPUs)\n"
          "  --no-sizes      skip reading image headers (counts only)\n"
          "  -h, --help      this help\n");
}

typedef struct stats_args {
  const char *data;
  int json, check, sizes;
  int threads;
} stats_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, stats_args *a) {
  static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                       {"json", no_argument, 0, 'j'},
                                       {"check", no_argument, 0, 'c'},
                                       {"threads", required_argument, 0, 't'},
                                       {"no-sizes", no_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->sizes = 1;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  a->threads = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
  optind = 1;
  int c;
  long v;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'd':
        a->data = optarg;
        break;
      case 'j':
        a->json = 1;
        break;
      case 'c':
        a->check = 1;
        break;
      case 'n':
        a->sizes = 0;
        break;
      case 't':
        if (cli_parse_int("stats", "threads", optarg, 1, STATS_MAX_THREADS, &v)) return 2;
        a->threads = (int)v;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        return cli_usage_error("stats");
    }
  }
  if (optind < argc) return cli_errorf("stats", "unexpected argument '%s'", argv[optind]) + 1;
  if (!a->data) return cli_errorf("stats", "--data DIR is required") + 1;
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
  int scanned = a.sizes || a.check, bad = 0;
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
