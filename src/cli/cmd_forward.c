/* mskx forward: runs a network on an .npy batch; the interface the PyTorch
 * parity checks and debugging rely on. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/error.h"
#include "models/forward_file.h"

static const char *const usage =
    "usage: mskx forward --arch ARCH --weights W.safetensors --input X.npy [options]\n"
    "\n"
    "Runs the network on X (float32, shape (N,3,H,W), C order, already normalised)\n"
    "and writes the logits; with --target, also the loss and every parameter gradient.\n"
    "\n"
    "  --arch ARCH          one of the architectures below\n"
    "  --weights FILE       safetensors with torchvision names (all parameters and buffers);\n"
    "                       its metadata 'bn_eps' (set by mskx import from Keras) is honoured\n"
    "                       metadata transform_input=1 turns on Inception-v3's transform_input\n"
    "  --input X.npy        input batch\n"
    "  --mode eval|train    batch norm with running (eval, default) or batch statistics (train)\n"
    "  --precision fp32|bf16  compute precision (default fp32)\n"
    "  --output FILE.npy    logits, float32 (N,1)\n"
    "  --target Y.npy       float32 (N,1) of 0/1: prints 'loss <value>' (mean BCE with logits;\n"
    "                       inception_v3 in train mode adds W x the auxiliary head's)\n"
    "  --dropout P          inception_v3, train mode: dropout before fc (default 0.5, as\n"
    "                       torchvision; 0 for comparisons with a reference)\n"
    "  --aux-weight W       inception_v3, train mode: auxiliary loss weight (default 0.4; 0: no\n"
    "                       auxiliary head, which allows inputs under 299x299)\n"
    "  --grads FILE         with --target: gradients of the loss by parameter name (safetensors);\n"
    "                       needs --mode train\n"
    "  --threads N          compute threads (default: all cores), pinned one per CPU\n"
    "                       (MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)\n";

typedef struct fwd_opts {
  forward_options f;
  const char *input, *output, *target, *grads;
} fwd_opts;

static int parse(int argc, char **argv, fwd_opts *o) {
  static const struct option longs[] = {{"arch", 1, 0, 'a'},      {"weights", 1, 0, 'w'}, {"input", 1, 0, 'i'},
                                        {"mode", 1, 0, 'm'},      {"precision", 1, 0, 'p'}, {"output", 1, 0, 'o'},
                                        {"target", 1, 0, 't'},    {"grads", 1, 0, 'g'},   {"threads", 1, 0, 'T'},
                                        {"aux-weight", 1, 0, 'x'}, {"dropout", 1, 0, 'd'},
                                        {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  forward_options_default(&o->f);
  int c;
  long v;
  int bf16;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
      case 'a': o->f.arch = optarg; break;
      case 'w': o->f.weights = optarg; break;
      case 'i': o->input = optarg; break;
      case 'o': o->output = optarg; break;
      case 't': o->target = optarg; break;
      case 'g': o->grads = optarg; break;
      case 'm':
        if (cli_parse_choice("forward", "mode", optarg, "eval", "train", &o->f.train)) return CLI_EXIT_USAGE;
        break;
      case 'p':
        if (cli_parse_choice("forward", "precision", optarg, "fp32", "bf16", &bf16)) return CLI_EXIT_USAGE;
        o->f.prec = bf16 ? PREC_BF16 : PREC_FP32;
        break;
      case 'T':
        if (cli_parse_int("forward", "threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
        o->f.threads = (int)v;
        break;
      case 'x':
        if (cli_parse_double("forward", "aux-weight", optarg, 0, 100, &o->f.aux_weight)) return CLI_EXIT_USAGE;
        break;
      case 'd':
        if (cli_parse_double("forward", "dropout", optarg, 0, 0.999, &o->f.dropout)) return CLI_EXIT_USAGE;
        break;
      case 'h':
        fputs(usage, stdout);
        cli_print_archs(stdout, 0);
        return -1;
      default: return cli_usage_error("forward");
    }
  }
  if (optind < argc) return cli_usage_errorf("forward", "unexpected argument '%s'", argv[optind]);
  if (!o->f.arch || !o->f.weights || !o->input) return cli_usage_errorf("forward", "--arch, --weights and --input are required");
  if (o->grads && !o->target) return cli_usage_errorf("forward", "--grads needs --target");
  if (o->grads && !o->f.train) return cli_usage_errorf("forward", "--grads needs --mode train");
  return 0;
}

int cmd_forward(int argc, char **argv) {
  fwd_opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  mskx_err e = {0};
  cli_pin_threads(o.f.threads);
  double loss;
  if (forward_file_run(&o.f, o.input, o.target, o.output, o.grads, &loss, &e)) return cli_error("forward", &e);
  if (o.target) printf("loss %.9g\n", loss);
  return 0;
}
