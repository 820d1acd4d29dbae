/* mskx export: a model, bundle or ensemble as ONNX files (infer/onnx_export.h). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "infer/onnx_export.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *const usage_head =
    "usage: mskx export --model M --onnx OUT.onnx [--batch N|dynamic] [--opset V] [--fold-bn]\n"
    "\n"
    "Writes the model as ONNX: input \"input\" (N,3,S,S) float32, preprocessed as the\n"
    "file's metadata_props say (mskx.size, mskx.mean, mskx.std, mskx.keep_aspect,\n"
    "mskx.preprocessing); outputs \"logit\" (N,1) and \"probability\" = Sigmoid(logit).\n"
    "A bundle or ensemble gives one file per network, OUT.<part or mN>.onnx, and\n"
    "OUT.json saying how mskx predict combines them.\n"
    "\n";

typedef struct export_args {
  char model[4096], onnx[4096];
  int batch, batch_dynamic, opset, fold_bn;
} export_args;

#define A(m) .off = offsetof(export_args, m), .size = sizeof(((export_args *)0)->m)
#define G_EXPORT "options"
static const opt_spec rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "M", .group = G_EXPORT, .flags = OPT_REQUIRED,
     .help = "model file (.safetensors), per-part bundle or ensemble (.json)"},
    {.flag = "onnx", .type = OPT_PATH, A(onnx), .arg = "OUT.onnx", .group = G_EXPORT, .flags = OPT_REQUIRED,
     .help = "output file"},
    {.flag = "batch", .type = OPT_INT, A(batch), .lo = 1, .hi = ONNX_BATCH_MAX, .arg = "N|dynamic", .group = G_EXPORT,
     .word = "dynamic", .word_off = offsetof(export_args, batch_dynamic), .flags = OPT_HIDE_DEFAULT,
     .help = "batch dimension: fixed N, or symbolic \"N\" (default dynamic)"},
    {.flag = "opset", .type = OPT_INT, A(opset), .lo = ONNX_OPSET_MIN, .hi = ONNX_OPSET_MAX, .def = ONNX_OPSET_DEFAULT,
     .arg = "V", .group = G_EXPORT, .help = "ONNX opset, " STR(ONNX_OPSET_MIN) ".." STR(ONNX_OPSET_MAX)},
    {.flag = "fold-bn", .type = OPT_BOOL, A(fold_bn), .group = G_EXPORT,
     .help = "fold each batch norm that follows a convolution into it\n"
             "(as mskx's own inference does); default: BatchNormalization nodes"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

int cmd_export(int argc, char **argv) {
  export_args a;
  memset(&a, 0, sizeof a);
  opt_defaults(rows, N_ROWS, &a);
  cli_opt_table tab = {rows, N_ROWS, &a, NULL, NULL};
  int help, rc = cli_options_parse("export", argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a.model[0] || !a.onnx[0]) return cli_usage_errorf("export", "--model and --onnx are required");
  /* "dynamic" marks the batch symbolic (0) whatever number came with it. */
  onnx_export_options o = {a.batch_dynamic ? 0 : a.batch, a.opset, a.fold_bn};
  const char *model = a.model, *out = a.onnx;
  mskx_err e = {0, ""};
  onnx_export_files files;
  if (onnx_export(model, out, &o, &files, &e)) return cli_error("export", &e);
  for (int i = 0; i < files.n; i++) printf("%s\n", files.paths[i]);
  onnx_export_files_free(&files);
  return 0;
}
