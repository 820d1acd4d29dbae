/* mskx import: weights from PyTorch (.pth) or Keras (.h5) into an mskx model file. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "models/import.h"

static const char *const usage_head =
    "usage: mskx import [--from torchvision|keras|safetensors|auto] IN --arch ARCH --out M.safetensors [options]\n"
    "\n"
    "Converts a PyTorch checkpoint (torch.save's zip format, e.g. torchvision's\n"
    "published .pth files) or a Keras 2.x HDF5 file (model.save or save_weights of\n"
    "Keras applications' DenseNet121/169/201) into an mskx model file that mskx\n"
    "predict, eval, serve and train --pretrained read. The format is recognised by\n"
    "the file's content; --from only checks it. No Python is needed, and no code in\n"
    "the file is ever run: pickles may only build tensors (see docs/interop.md).\n"
    "\n"
    "The classifier: one output is loaded as mskx's one-logit head; two softmax\n"
    "outputs become the logit difference (w1-w0, b1-b0); any other width (ImageNet's\n"
    "1000) or none is re-initialised, as train --pretrained does.\n"
    "\n";

typedef struct import_args {
  char from[32], arch[4096], out[4096];
  int size;
  uint64_t seed;
  double bn_eps;
} import_args;

static int check_from(const char *v, mskx_err *e) {
  import_format f;
  return import_format_parse(v, &f, e);
}

#define A(m) .off = offsetof(import_args, m), .size = sizeof(((import_args *)0)->m)
#define G_IMPORT "options"
static const opt_spec rows[] = {
    {.flag = "from", .type = OPT_STRING, A(from), .def_str = "auto", .arg = "F", .group = G_IMPORT,
     .check = check_from, .help = "torchvision (alias pytorch), keras, safetensors or auto"},
    {.flag = "arch", .type = OPT_STRING, A(arch), .arg = "ARCH", .group = G_IMPORT, .flags = OPT_REQUIRED,
     .help = "one of the architectures below (Keras files: DenseNets only;\n"
             "Keras's ResNet50 is ResNet v1 and cannot be mapped exactly onto\n"
             "torchvision's resnet50)"},
    {.flag = "out", .type = OPT_PATH, A(out), .arg = "FILE", .group = G_IMPORT, .flags = OPT_REQUIRED,
     .help = "the model file to write (atomically)"},
    {.flag = "size", .type = OPT_INT, A(size), .lo = 16, .hi = 8192, .arg = "S", .group = G_IMPORT,
     .flags = OPT_HIDE_DEFAULT, .help = "input size recorded in the model (default: the arch's, below)"},
    {.flag = "seed", .type = OPT_U64, A(seed), .lo = 0, .hi = 2147483647, .def = 1, .arg = "N", .group = G_IMPORT,
     .help = "seed of a re-initialised head"},
    {.flag = "bn-eps", .type = OPT_DOUBLE, A(bn_eps), .lo = 1e-12, .hi = 1, .arg = "E", .group = G_IMPORT,
     .flags = OPT_HIDE_DEFAULT,
     .help = "batch-norm epsilon to record (default: the source's: 1e-5 for\n"
             "PyTorch, the model_config's for Keras, else Keras's 1.001e-5)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

int cmd_import(int argc, char **argv) {
  const char *cmd = "import";
  import_args a;
  memset(&a, 0, sizeof a);
  opt_defaults(rows, N_ROWS, &a);
  cli_opt_table tab = {rows, N_ROWS, &a, NULL, NULL};
  int help, first, rc = cli_options_parse_operands(cmd, argc, argv, &tab, 1, &help, &first);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    cli_print_archs(stdout, 1);
    return 0;
  }
  mskx_err e = {0};
  /* size 0: the arch's default; bn_eps 0: the source's. */
  import_opts o = {.arch = a.arch[0] ? a.arch : NULL, .out = a.out[0] ? a.out : NULL, .size = a.size, .seed = a.seed,
                   .bn_eps = (float)a.bn_eps};
  if (import_format_parse(a.from, &o.fmt, &e)) return cli_usage_errorf(cmd, "--from: %s", e.msg);
  if (first < argc) o.in = argv[first++];
  if (first < argc) return cli_usage_errorf(cmd, "unexpected argument '%s'", argv[first]);
  if (!o.in || !o.arch || !o.out) return cli_usage_errorf(cmd, "IN, --arch and --out are required (see mskx import --help)");
  import_info info;
  if (import_model(&o, &info, &e)) return cli_error(cmd, &e);
  printf("Imported %s (%s, %d tensors) as %s -> %s\n  batch-norm epsilon %g; classifier: %s\n  preprocessing: %s\n",
         o.in, import_format_name(info.format), info.n_tensors, o.arch, o.out, (double)info.bn_eps, info.head,
         info.preprocessing);
  return 0;
}
