/* mskx import: weights from PyTorch (.pth) or Keras (.h5) into an mskx model file. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "models/import.h"

static const char *const usage =
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
    "\n"
    "options:\n"
    "  --from F       torchvision (alias pytorch), keras, safetensors or auto (default)\n"
    "  --arch ARCH    one of the architectures below (Keras files: DenseNets only;\n"
    "                 Keras's ResNet50 is ResNet v1 and cannot be mapped exactly onto\n"
    "                 torchvision's resnet50)\n"
    "  --out FILE     the model file to write (atomically)\n"
    "  --size S       input size recorded in the model (default: the arch's, below)\n"
    "  --seed N       seed of a re-initialised head (default 1)\n"
    "  --bn-eps E     batch-norm epsilon to record (default: the source's: 1e-5 for\n"
    "                 PyTorch, the model_config's for Keras, else Keras's 1.001e-5)\n"
    "  -h, --help     this text\n";

int cmd_import(int argc, char **argv) {
  const char *cmd = "import";
  enum { OPT_FROM = 256, OPT_ARCH, OPT_OUT, OPT_SIZE, OPT_SEED, OPT_EPS };
  static const struct option opts[] = {{"from", required_argument, 0, OPT_FROM}, {"arch", required_argument, 0, OPT_ARCH},
                                       {"out", required_argument, 0, OPT_OUT},   {"size", required_argument, 0, OPT_SIZE},
                                       {"seed", required_argument, 0, OPT_SEED}, {"bn-eps", required_argument, 0, OPT_EPS},
                                       {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  import_opts o = {.size = 0, .seed = 1}; /* size 0: the arch's default */
  mskx_err e = {0};
  long v;
  double d;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case OPT_FROM:
        if (import_format_parse(optarg, &o.fmt, &e)) return cli_usage_errorf(cmd, "--from: %s", e.msg);
        break;
      case OPT_ARCH: o.arch = optarg; break;
      case OPT_OUT: o.out = optarg; break;
      case OPT_SIZE:
        if (cli_parse_int(cmd, "size", optarg, 16, 8192, &v)) return CLI_EXIT_USAGE;
        o.size = (int)v;
        break;
      case OPT_SEED:
        if (cli_parse_int(cmd, "seed", optarg, 0, 2147483647L, &v)) return CLI_EXIT_USAGE;
        o.seed = (uint64_t)v;
        break;
      case OPT_EPS:
        if (cli_parse_double(cmd, "bn-eps", optarg, 1e-12, 1, &d)) return CLI_EXIT_USAGE;
        o.bn_eps = (float)d;
        break;
      case 'h':
        fputs(usage, stdout);
        cli_print_archs(stdout, 1);
        return 0;
      default: return cli_usage_error(cmd);
    }
  }
  if (optind < argc) o.in = argv[optind++];
  if (optind < argc) return cli_usage_errorf(cmd, "unexpected argument '%s'", argv[optind]);
  if (!o.in || !o.arch || !o.out) return cli_usage_errorf(cmd, "IN, --arch and --out are required (see mskx import --help)");
  import_info info;
  if (import_model(&o, &info, &e)) return cli_error(cmd, &e);
  printf("Imported %s (%s, %d tensors) as %s -> %s\n  batch-norm epsilon %g; classifier: %s\n  preprocessing: %s\n",
         o.in, import_format_name(info.format), info.n_tensors, o.arch, o.out, (double)info.bn_eps, info.head,
         info.preprocessing);
  return 0;
}
