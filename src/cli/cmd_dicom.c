/* mskx dicom: what mskx reads from DICOM files. `info` prints the header
 * summary the pipeline uses (never patient identifiers); `render` writes the
 * 8-bit images the networks would see, one PNG per frame. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/util.h"
#include "io/dicom.h"

static const char *const usage_head =
    "usage: mskx dicom info FILE...\n"
    "       mskx dicom render FILE... --out DIR [--dicom-window W] [--dicom-frames F]\n"
    "\n"
    "info prints one JSON object per file: transfer syntax, size, frames, bits,\n"
    "photometric interpretation, body part and the MURA part it maps to, and the\n"
    "study/series/instance UIDs (patient identifiers are never printed).\n"
    "render writes DIR/<file>.png (multi-frame: <file>_f<N>.png) through the display\n"
    "pipeline of docs/dicom.md: exactly the 8-bit image predict, eval and train use.\n"
    "\n";

typedef struct dicom_args {
  char out[4096];
} dicom_args;

static const opt_spec rows[] = {
    {.flag = "out", .type = OPT_PATH, .off = offsetof(dicom_args, out), .size = sizeof(((dicom_args *)0)->out),
     .arg = "DIR", .group = "options", .help = "folder for the PNGs (render)"},
};

static cJSON *info_json(const char *path, const dicom_meta *m) {
  cJSON *o = cJSON_CreateObject();
  char part[32];
  cJSON_AddStringToObject(o, "file", path);
  cJSON_AddStringToObject(o, "transfer_syntax", m->transfer_syntax);
  cJSON_AddNumberToObject(o, "rows", m->rows);
  cJSON_AddNumberToObject(o, "columns", m->cols);
  cJSON_AddNumberToObject(o, "frames", m->frames);
  cJSON_AddNumberToObject(o, "samples_per_pixel", m->samples);
  cJSON_AddNumberToObject(o, "bits_allocated", m->bits_allocated);
  cJSON_AddNumberToObject(o, "bits_stored", m->bits_stored);
  cJSON_AddBoolToObject(o, "signed", m->pixel_rep == 1);
  cJSON_AddStringToObject(o, "photometric", m->photometric);
  cJSON_AddStringToObject(o, "modality", m->modality);
  cJSON_AddStringToObject(o, "body_part", m->body_part);
  if (dicom_mura_part(m, part, sizeof part)) cJSON_AddStringToObject(o, "mura_part", part);
  else cJSON_AddNullToObject(o, "mura_part");
  cJSON_AddStringToObject(o, "study_uid", m->study_uid);
  cJSON_AddStringToObject(o, "series_uid", m->series_uid);
  cJSON_AddStringToObject(o, "sop_instance_uid", m->sop_instance_uid);
  return o;
}

static int render_one(const char *path, const char *dir, const image_limits *lim, mskx_err *e) {
  unsigned char *buf;
  size_t len;
  int rc = file_read_all(path, (size_t)512 << 20, &buf, &len, e);
  if (rc) return rc;
  dicom_image img;
  rc = dicom_decode(buf, len, path, lim, &img, e);
  free(buf);
  if (rc) return rc;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  for (int i = 0; !rc && i < img.n_frames; i++) {
    char name[512], out[4096];
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    if (img.n_frames > 1) snprintf(name, sizeof name, "%.*s_f%d.png", stem, base, i + 1);
    else snprintf(name, sizeof name, "%.*s.png", stem, base);
    rc = path_join(out, sizeof out, dir, name, e);
    if (!rc) rc = image_write_png(out, img.frames[i].px, img.frames[i].w, img.frames[i].h, 1, e);
  }
  dicom_image_free(&img);
  return rc;
}

int cmd_dicom(int argc, char **argv) {
  dicom_args a;
  cli_dicom_args da;
  memset(&a, 0, sizeof a);
  opt_defaults(cli_dicom_rows, cli_dicom_row_count, &da);
  cli_opt_table tabs[] = {{rows, sizeof rows / sizeof *rows, &a, NULL, NULL},
                          {cli_dicom_rows, cli_dicom_row_count, &da, NULL, NULL}};
  int help, first = 0, rc = cli_options_parse_operands("dicom", argc, argv, tabs, 2, &help, &first);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, tabs, 2, NULL);
    return 0;
  }
  image_limits lim = {.max_pixels = 0, .dicom = cli_dicom_args_options(&da)};
  const char *out_dir = a.out[0] ? a.out : NULL;
  if (first >= argc) return cli_usage_errorf("dicom", "expected info or render (see --help)");
  const char *what = argv[first++];
  int render = !strcmp(what, "render");
  if (!render && strcmp(what, "info"))
    return cli_usage_errorf("dicom", "unknown action '%s': expected info or render", what);
  if (first >= argc) return cli_usage_errorf("dicom", "no files given");
  if (render && !out_dir) return cli_usage_errorf("dicom", "render needs --out DIR");
  mskx_err e = {0, ""};
  if (render && mkdir_p(out_dir, &e)) return cli_error("dicom", &e);
  int failed = 0;
  for (int i = first; i < argc; i++) {
    if (render) {
      if (render_one(argv[i], out_dir, &lim, &e)) failed++, cli_error("dicom", &e);
      continue;
    }
    unsigned char *buf;
    size_t len;
    dicom_meta m;
    if (file_read_all(argv[i], (size_t)512 << 20, &buf, &len, &e)) {
      failed++, cli_error("dicom", &e);
      continue;
    }
    int rc = dicom_scan_meta(buf, len, argv[i], &m, &e);
    free(buf);
    if (rc) {
      failed++, cli_error("dicom", &e);
      continue;
    }
    cJSON *o = info_json(argv[i], &m);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) printf("%s\n", s);
    else failed++;
    free(s);
    cJSON_Delete(o);
  }
  return failed ? 1 : 0;
}
