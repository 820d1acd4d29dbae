/* mskx quantize: an fp32 model file to an int8 one (infer/quantize.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "infer/quantize.h"

#define CMD "quantize"
#define STR_(x) #x
#define STR(x) STR_(x)

static const char *const usage_head =
    "usage: mskx quantize --model M --data DIR --out M8.safetensors [--calib N] [--statistic S]\n"
    "\n"
    "Post-training int8 quantisation of a DenseNet model: weights per output channel\n"
    "(symmetric s8, batch norms that follow a convolution folded in first), every\n"
    "convolution input but the stem's per tensor (u8, post-ReLU) with steps from N\n"
    "calibration images of DIR's training split, preprocessed as inference does.\n"
    "The output is a model file that mskx predict, eval, serve, bench, bundles,\n"
    "ensembles and the C API load like any other; it runs int8 convolutions\n"
    "(oneDNN, VNNI or AMX where the CPU has them) and cannot be trained or exported.\n"
    "Prints the file, the calibration and the largest probability difference\n"
    "between the int8 and fp32 models on the calibration images.\n"
    "\n";

typedef struct quant_args {
  char model[4096], data[4096], out[4096], statistic[32];
  int calib, threads;
} quant_args;

/* --statistic: max (100) or pNN.NN, a percentile in (0, 100]. */
static int parse_statistic(const char *v, double *out, mskx_err *e) {
  char *end = NULL;
  double p = v[0] == 'p' ? strtod(v + 1, &end) : 0;
  if (!strcmp(v, "max")) p = 100, end = (char *)"";
  if (!end || end == v + 1 || *end || !(p > 0 && p <= 100))
    return err_set(e, MSKX_EINVAL, "--statistic must be max or pNN.NN (a percentile in (0, 100]), got '%s'", v);
  *out = p;
  return MSKX_OK;
}

static int check_statistic(const char *v, mskx_err *e) {
  double p;
  return parse_statistic(v, &p, e);
}

#define A(m) .off = offsetof(quant_args, m), .size = sizeof(((quant_args *)0)->m)
#define G_QUANT "options"
static const opt_spec rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "M", .group = G_QUANT, .flags = OPT_REQUIRED,
     .help = "fp32 model file (.safetensors)"},
    {.flag = "data", .type = OPT_PATH, A(data), .arg = "DIR", .group = G_QUANT, .flags = OPT_REQUIRED,
     .help = "dataset whose training split calibrates"},
    {.flag = "out", .type = OPT_PATH, A(out), .arg = "FILE", .group = G_QUANT, .flags = OPT_REQUIRED,
     .help = "int8 model file to write"},
    {.flag = "calib", .type = OPT_INT, A(calib), .lo = 1, .hi = 1000000, .arg = "N", .group = G_QUANT,
     .flags = OPT_HIDE_DEFAULT,
     .help = "calibration images, spread evenly over the split (default " STR(QUANT_DEFAULT_CALIB) ",\nor all if fewer)"},
    {.flag = "statistic", .type = OPT_STRING, A(statistic), .def_str = "max", .arg = "S", .group = G_QUANT,
     .check = check_statistic,
     .help = "max, or pNN.NN: that percentile of each input's values\n(see docs/quantize.md)"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "T", .group = G_QUANT,
     .flags = OPT_HIDE_DEFAULT, .help = "compute threads (default: all cores)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

int cmd_quantize(int argc, char **argv) {
  quant_args a;
  memset(&a, 0, sizeof a);
  opt_defaults(rows, N_ROWS, &a);
  cli_opt_table tab = {rows, N_ROWS, &a, NULL, NULL};
  int help, rc = cli_options_parse(CMD, argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a.model[0] || !a.data[0] || !a.out[0]) return cli_usage_errorf(CMD, "--model, --data and --out are required");
  mskx_err e = {0, ""};
  quant_options o = {.data = a.data, .calib = a.calib, .threads = a.threads};
  if (parse_statistic(a.statistic, &o.percentile, &e)) return cli_usage_errorf(CMD, "%s", e.msg);
  const char *out = a.out;
  quant_report r;
  if (quantize_model(a.model, out, &o, &r, &e)) return cli_error(CMD, &e);
  printf("%s: int8, %d convolutions, calibrated on %d images of %s (train split, %s)\n", out, r.convs, r.images,
         o.data, o.percentile >= 100 ? "max" : "percentile");
  printf("largest |p_int8 - p_fp32| on the calibration images: %.6f\n", r.max_prob_diff);
  printf("saved again and reloaded: %s outputs\n", r.roundtrip_equal ? "identical" : "DIFFERENT");
  return r.roundtrip_equal ? 0 : 1;
}
