/* Reading every image of a split (headers or full decode) for `mskx stats`:
 * sizes and unreadable files. Kept apart from the index, which never decodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset.h"

/* ---- Image scan (sizes and readability, for `mskx stats`) ---- */

/* Most headers (PNG's IHDR, a JPEG SOF after small APP segments) lie in the
 * first few KiB; the whole file is read only when the probe needs more. */
#define DS_PROBE_HEAD 4096

/* Decodes every row and drops it: proves the file decodes, holding rows only. */
typedef struct size_sink {
  int w, h;
} size_sink;

static int size_begin(void *ctx, int w, int h, mskx_err *e) {
  (void)e;
  size_sink *z = ctx;
  z->w = w, z->h = h;
  return MSKX_OK;
}

static void drop_row(void *ctx, const uint8_t *row) { (void)ctx, (void)row; }

static int check_decodes(const char *path, const image_limits *lim, int *w, int *h, mskx_err *e) {
  size_sink z = {-1, -1};
  image_sink sink = {NULL, size_begin, drop_row, &z};
  int rc = image_stream_file(path, lim, &sink, e);
  if (!rc) *w = z.w, *h = z.h;
  return rc;
}

static int probe_file(const char *path, int *w, int *h, mskx_err *e) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(e, MSKX_EIO, "%s: cannot open", path);
  uint8_t head[DS_PROBE_HEAD];
  size_t n = fread(head, 1, sizeof head, f);
  int more = n == sizeof head && fgetc(f) != EOF;
  fclose(f);
  int rc = image_probe(head, n, path, w, h, e);
  if (rc == MSKX_OK || !more) return rc;
  unsigned char *all;
  size_t len;
  if ((rc = file_read_all(path, 0, &all, &len, e))) return rc;
  rc = image_probe(all, len, path, w, h, e);
  free(all);
  return rc;
}

int dataset_scan(const ds_split *s, int decode, int threads, const image_limits *lim, ds_scan *out,
                 mskx_err *e) {
  memset(out, 0, sizeof *out);
  int n = s->n_images;
  out->w = malloc((size_t)(n ? n : 1) * sizeof *out->w);
  out->h = malloc((size_t)(n ? n : 1) * sizeof *out->h);
  out->error = calloc((size_t)(n ? n : 1), sizeof *out->error);
  if (!out->w || !out->h || !out->error) {
    ds_scan_free(out);
    return err_set(e, MSKX_ENOMEM, "%s split: out of memory for the image scan", s->name);
  }
  out->n = n;
  if (threads < 1) threads = 1;
  int bad = 0;
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads) reduction(+ : bad)
  for (int i = 0; i < n; i++) {
    mskx_err ie = {0};
    int w = -1, h = -1, rc;
    if (decode) {
      rc = check_decodes(s->images[i].path, lim, &w, &h, &ie);
    } else {
      rc = probe_file(s->images[i].path, &w, &h, &ie);
    }
    if (rc) {
      w = h = -1;
      char msg[sizeof ie.msg + 64];
      if (strstr(ie.msg, s->images[i].path))
        snprintf(msg, sizeof msg, "%s", ie.msg);
      else
        snprintf(msg, sizeof msg, "%s: %s", s->images[i].path, ie.msg[0] ? ie.msg : mskx_status_name(rc));
      out->error[i] = str_dup(msg);
      bad++;
    }
    out->w[i] = w;
    out->h[i] = h;
  }
  out->n_bad = bad;
  for (int i = 0; i < n; i++)
    if (out->w[i] < 0 && !out->error[i]) {
      ds_scan_free(out);
      return err_set(e, MSKX_ENOMEM, "%s split: out of memory for the image scan", s->name);
    }
  return MSKX_OK;
}

void ds_scan_free(ds_scan *s) {
  if (s->error)
    for (int i = 0; i < s->n; i++) free(s->error[i]);
  free(s->error);
  free(s->w);
  free(s->h);
  memset(s, 0, sizeof *s);
}
