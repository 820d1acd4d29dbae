/* mskx synth: writes a synthetic MURA-format dataset of radiograph phantoms. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "data/synth.h"

static const char *const usage_head =
    "usage: mskx synth --out DIR [options]\n\n"
    "Writes DIR/MURA-v1.1/ in the layout of the MURA v1.1 release (train/ and valid/\n"
    "folders XR_<PART>/patient<NNNNN>/study<K>_<positive|negative>/image<N>.png and the\n"
    "four CSVs) filled with procedural radiograph phantoms of the seven MURA parts, plus\n"
    "DIR/synth_findings.csv (finding type and box per image). The images are synthetic\n"
    "phantoms for demos and tests: they carry no clinical meaning.\n\n";

/* The configuration plus the output folder's text (synth_config points at it). */
typedef struct synth_args {
  synth_config cfg;
  char out[4096];
} synth_args;

#define STR_(x) #x
#define STR(x) STR_(x)
#define A(m) .off = offsetof(synth_args, m), .size = sizeof(((synth_args *)0)->m)
#define G_SYNTH "options"
/* Ranges as wide as the values synth_config_check explains (its messages say
 * why a value is refused, e.g. that each part needs a study in both splits). */
static const opt_spec rows[] = {
    {.flag = "out", .letter = 'o', .type = OPT_PATH, A(out), .arg = "DIR", .group = G_SYNTH, .flags = OPT_REQUIRED,
     .help = "output folder (required)"},
    {.flag = "studies", .letter = 'n', .type = OPT_INT, A(cfg.studies), .lo = INT_MIN, .hi = INT_MAX,
     .def = SYNTH_DEFAULT_STUDIES, .arg = "N", .group = G_SYNTH,
     .help = "studies over both splits, " STR(SYNTH_MIN_STUDIES) ".." STR(SYNTH_MAX_STUDIES)},
    {.flag = "seed", .letter = 's', .type = OPT_U64, A(cfg.seed), .lo = 0, .hi = (double)LONG_MAX,
     .def = SYNTH_DEFAULT_SEED, .arg = "S", .group = G_SYNTH, .help = "random seed; same arguments, same bytes"},
    {.flag = "min-size", .type = OPT_INT, A(cfg.min_size), .lo = INT_MIN, .hi = INT_MAX,
     .def = SYNTH_DEFAULT_MIN_SIZE, .arg = "PX", .group = G_SYNTH,
     .help = "smallest image width/height, " STR(SYNTH_MIN_SIZE) ".." STR(SYNTH_MAX_SIZE)},
    {.flag = "max-size", .type = OPT_INT, A(cfg.max_size), .lo = INT_MIN, .hi = INT_MAX,
     .def = SYNTH_DEFAULT_MAX_SIZE, .arg = "PX", .group = G_SYNTH,
     .help = "largest image width/height, " STR(SYNTH_MIN_SIZE) ".." STR(SYNTH_MAX_SIZE)},
    {.flag = "valid-fraction", .type = OPT_DOUBLE, A(cfg.valid_fraction), .lo = 0.01, .hi = 0.99,
     .def = SYNTH_DEFAULT_VALID_FRACTION, .arg = "F", .group = G_SYNTH,
     .help = "share of studies in valid, whole patients"},
    {.flag = "abnormal-fraction", .type = OPT_DOUBLE, A(cfg.abnormal_fraction), .lo = 0, .hi = 1,
     .def = SYNTH_DEFAULT_ABNORMAL_FRACTION, .arg = "F", .group = G_SYNTH,
     .help = "share of abnormal studies per split"},
    {.flag = "finding-scale", .type = OPT_DOUBLE, A(cfg.finding_scale), .lo = 1, .hi = 4,
     .def = SYNTH_DEFAULT_FINDING_SCALE, .arg = "K", .group = G_SYNTH,
     .help = "findings K times larger and stronger, 1..4 (larger is easier\nto learn, e.g. for a short demo)"},
    {.flag = "threads", .letter = 'j', .type = OPT_INT, A(cfg.threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "T",
     .group = G_SYNTH, .flags = OPT_HIDE_DEFAULT, .help = "worker threads (default: all cores); output is the same"},
    {.flag = "force", .letter = 'f', .type = OPT_BOOL, A(cfg.force), .group = G_SYNTH,
     .help = "write into a non-empty DIR/MURA-v1.1"},
    {.flag = "format", .type = OPT_CHOICE, A(cfg.dicom), .choices = "png|dicom", .def_str = "png", .arg = "png|dicom",
     .group = G_SYNTH,
     .help = "image files; dicom writes imageN.dcm in a mix of transfer\n"
             "syntaxes, bit depths, MONOCHROME1/2, windows and rescales\n(docs/dicom.md)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

static void print_summary(const synth_config *c, const synth_summary *s) {
  int studies = s->studies[0] + s->studies[1], images = s->images[0] + s->images[1];
  int abnormal = s->abnormal[0] + s->abnormal[1];
  printf("Wrote %s/MURA-v1.1: train %d studies (%d abnormal) / %d images / %d patients, "
         "valid %d studies (%d abnormal) / %d images / %d patients; abnormal share %.1f%% "
         "(fracture %d, hardware %d, lesion %d studies), finding drawn on %d of %d abnormal images, "
         "%d RGB images; %.1f s (%.0f images/s). These are synthetic phantoms, not clinical data.\n",
         c->out_dir, s->studies[0], s->abnormal[0], s->images[0], s->patients[0], s->studies[1], s->abnormal[1],
         s->images[1], s->patients[1], studies ? 100.0 * abnormal / studies : 0.0,
         s->finding_studies[SYNTH_FINDING_FRACTURE], s->finding_studies[SYNTH_FINDING_HARDWARE],
         s->finding_studies[SYNTH_FINDING_LESION], s->finding_images, s->abnormal_images, s->rgb_images,
         s->seconds, s->seconds > 0 ? images / s->seconds : 0.0);
}

int cmd_synth(int argc, char **argv) {
  const char *cmd = "synth";
  synth_args a;
  memset(&a, 0, sizeof a);
  synth_config_default(&a.cfg);
  opt_defaults(rows, N_ROWS, &a);  /* the same values, named in synth.h */
  cli_opt_table tab = {rows, N_ROWS, &a, NULL, NULL};
  int help, rc = cli_options_parse(cmd, argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a.out[0]) return cli_usage_errorf(cmd, "--out DIR is required (see 'mskx synth --help')");
  a.cfg.out_dir = a.out;
  /* Ranges are checked by synth_config_check, whose messages say why. */
  mskx_err e = {0};
  synth_summary sum;
  if (synth_generate(&a.cfg, &sum, &e)) return cli_error(cmd, &e);
  print_summary(&a.cfg, &sum);
  return 0;
}
