/* mskx quantize: an fp32 model file to an int8 one (infer/quantize.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/error.h"
#include "infer/quantize.h"

#define CMD "quantize"

static const char *const usage =
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
    "\n"
    "  --model M          fp32 model file (.safetensors)\n"
    "  --data DIR         dataset whose training split calibrates\n"
    "  --out FILE         int8 model file to write\n"
    "  --calib N          calibration images, spread evenly over the split (default 256,\n"
    "                     or all if fewer)\n"
    "  --statistic S      max, or pNN.NN: that percentile of each input's values\n"
    "                     (default max; see docs/quantize.md)\n"
    "  --threads T        compute threads (default: all cores)\n";

int cmd_quantize(int argc, char **argv) {
  static const struct option longs[] = {{"model", 1, 0, 'm'},     {"data", 1, 0, 'd'},    {"out", 1, 0, 'o'},
                                        {"calib", 1, 0, 'c'},     {"statistic", 1, 0, 's'}, {"threads", 1, 0, 'T'},
                                        {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
  const char *model = NULL, *out = NULL;
  quant_options o = {.percentile = QUANT_DEFAULT_PERCENTILE};
  long v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'd': o.data = optarg; break;
      case 'o': out = optarg; break;
      case 'c':
        if (cli_parse_int(CMD, "calib", optarg, 1, 1000000, &v)) return CLI_EXIT_USAGE;
        o.calib = (int)v;
        break;
      case 'T':
        if (cli_parse_int(CMD, "threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
        o.threads = (int)v;
        break;
      case 's': {
        char *end = NULL;
        double p = optarg[0] == 'p' ? strtod(optarg + 1, &end) : 0;
        if (!strcmp(optarg, "max")) p = 100, end = (char *)"";
        if (!end || end == optarg + 1 || *end || !(p > 0 && p <= 100))
          return cli_usage_errorf(CMD, "--statistic must be max or pNN.NN (a percentile in (0, 100]), got '%s'",
                                  optarg);
        o.percentile = p;
        break;
      }
      case 'h': fputs(usage, stdout); return 0;
      default: return cli_usage_error(CMD);
    }
  }
  if (optind < argc) return cli_usage_errorf(CMD, "unexpected argument '%s'", argv[optind]);
  if (!model || !o.data || !out) return cli_usage_errorf(CMD, "--model, --data and --out are required");
  mskx_err e = {0, ""};
  quant_report r;
  if (quantize_model(model, out, &o, &r, &e)) return cli_error(CMD, &e);
  printf("%s: int8, %d convolutions, calibrated on %d images of %s (train split, %s)\n", out, r.convs, r.images,
         o.data, o.percentile >= 100 ? "max" : "percentile");
  printf("largest |p_int8 - p_fp32| on the calibration images: %.6f\n", r.max_prob_diff);
  printf("saved again and reloaded: %s outputs\n", r.roundtrip_equal ? "identical" : "DIFFERENT");
  return r.roundtrip_equal ? 0 : 1;
}
