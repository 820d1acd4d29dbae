/* mskx export: a model, bundle or ensemble as ONNX files (infer/onnx_export.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "core/error.h"
#include "infer/onnx_export.h"

static const char *const usage =
    "usage: mskx export --model M --onnx OUT.onnx [--batch N|dynamic] [--opset V] [--fold-bn]\n"
    "\n"
    "Writes the model as ONNX: input \"input\" (N,3,S,S) float32, preprocessed as the\n"
    "file's metadata_props say (mskx.size, mskx.mean, mskx.std, mskx.keep_aspect,\n"
    "mskx.preprocessing); outputs \"logit\" (N,1) and \"probability\" = Sigmoid(logit).\n"
    "A bundle or ensemble gives one file per network, OUT.<part or mN>.onnx, and\n"
    "OUT.json saying how mskx predict combines them.\n"
    "\n"
    "  --model M            model file (.safetensors), per-part bundle or ensemble (.json)\n"
    "  --onnx OUT.onnx      output file\n"
    "  --batch N|dynamic    batch dimension: fixed N, or symbolic \"N\" (default dynamic)\n"
    "  --opset V            ONNX opset, 13..21 (default 17)\n"
    "  --fold-bn            fold each batch norm that follows a convolution into it\n"
    "                       (as mskx's own inference does); default: BatchNormalization nodes\n";

int cmd_export(int argc, char **argv) {
  static const struct option longs[] = {{"model", 1, 0, 'm'}, {"onnx", 1, 0, 'o'},    {"batch", 1, 0, 'b'},
                                        {"opset", 1, 0, 'v'}, {"fold-bn", 0, 0, 'f'}, {"help", 0, 0, 'h'},
                                        {0, 0, 0, 0}};
  const char *model = NULL, *out = NULL;
  onnx_export_options o = {0, ONNX_OPSET_DEFAULT, 0};
  long v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'o': out = optarg; break;
      case 'b':
        if (!strcmp(optarg, "dynamic")) o.batch = 0;
        else if (cli_parse_int("export", "batch", optarg, 1, ONNX_BATCH_MAX, &v)) return 2;
        else o.batch = (int)v;
        break;
      case 'v':
        if (cli_parse_int("export", "opset", optarg, ONNX_OPSET_MIN, ONNX_OPSET_MAX, &v)) return 2;
        o.opset = (int)v;
        break;
      case 'f': o.fold_bn = 1; break;
      case 'h': fputs(usage, stdout); return 0;
      default: return cli_usage_error("export");
    }
  }
  if (optind < argc) return cli_errorf("export", "unexpected argument '%s'", argv[optind]) + 1;
  if (!model || !out) return cli_errorf("export", "--model and --onnx are required") + 1;
  mskx_err e = {0, ""};
  onnx_export_files files;
  if (onnx_export(model, out, &o, &files, &e)) return cli_error("export", &e);
  for (int i = 0; i < files.n; i++) printf("%s\n", files.paths[i]);
  onnx_export_files_free(&files);
  return 0;
}
