/* mskx forward: runs a network on an .npy batch; the interface the PyTorch
 * parity checks and debugging rely on. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "models/forward_file.h"

static const char *const usage_head =
    "usage: mskx forward --arch ARCH --weights W.safetensors --input X.npy [options]\n"
    "\n"
    "Runs the network on X (float32, shape (N,3,H,W), C order, already normalised)\n"
    "and writes the logits; with --target, also the loss and every parameter gradient.\n"
    "\n";

typedef struct fwd_args {
  char arch[4096], weights[4096], input[4096], output[4096], target[4096], grads[4096];
  int train, bf16, threads;
  double aux_weight, dropout;
} fwd_args;

/* What the library takes: the options, and the files (NULL when not given). */
typedef struct fwd_opts {
  forward_options f;
  const char *input, *output, *target, *grads;
} fwd_opts;

#define A(m) .off = offsetof(fwd_args, m), .size = sizeof(((fwd_args *)0)->m)
#define G_FWD "options"
static const opt_spec rows[] = {
    {.flag = "arch", .type = OPT_STRING, A(arch), .arg = "ARCH", .group = G_FWD, .flags = OPT_REQUIRED,
     .help = "one of the architectures below"},
    {.flag = "weights", .type = OPT_PATH, A(weights), .arg = "FILE", .group = G_FWD, .flags = OPT_REQUIRED,
     .help = "safetensors with torchvision names (all parameters and buffers);\n"
             "its metadata 'bn_eps' (set by mskx import from Keras) is honoured\n"
             "metadata transform_input=1 turns on Inception-v3's transform_input\n"
             "(an int8 model of mskx quantize is refused: docs/quantize.md)"},
    {.flag = "input", .type = OPT_PATH, A(input), .arg = "X.npy", .group = G_FWD, .flags = OPT_REQUIRED,
     .help = "input batch"},
    {.flag = "mode", .type = OPT_CHOICE, A(train), .choices = "eval|train", .def_str = "eval", .arg = "eval|train",
     .group = G_FWD, .help = "batch norm with running (eval) or batch statistics (train)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16", .def_str = "fp32", .arg = "fp32|bf16",
     .group = G_FWD, .help = "compute precision"},
    {.flag = "output", .type = OPT_PATH, A(output), .arg = "FILE.npy", .group = G_FWD,
     .help = "logits, float32 (N,1)"},
    {.flag = "target", .type = OPT_PATH, A(target), .arg = "Y.npy", .group = G_FWD,
     .help = "float32 (N,1) of 0/1: prints 'loss <value>' (mean BCE with logits;\n"
             "inception_v3 in train mode adds W x the auxiliary head's)"},
    {.flag = "dropout", .type = OPT_DOUBLE, A(dropout), .lo = 0, .hi = 0.999, .def = -1, .arg = "P", .group = G_FWD,
     .flags = OPT_HIDE_DEFAULT,
     .help = "inception_v3, train mode: dropout before fc (default 0.5, as\n"
             "torchvision; 0 for comparisons with a reference)"},
    {.flag = "aux-weight", .type = OPT_DOUBLE, A(aux_weight), .lo = 0, .hi = 100, .def = INCEPTION_AUX_WEIGHT,
     .arg = "W", .group = G_FWD,
     .help = "inception_v3, train mode: auxiliary loss weight (0: no\n"
             "auxiliary head, which allows inputs under 299x299)"},
    {.flag = "grads", .type = OPT_PATH, A(grads), .arg = "FILE", .group = G_FWD,
     .help = "with --target: gradients of the loss by parameter name (safetensors);\n"
             "needs --mode train"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_FWD,
     .flags = OPT_HIDE_DEFAULT,
     .help = "compute threads (default: all cores), pinned one per CPU\n"
             "(MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

static const char *given(const char *s) { return s[0] ? s : NULL; }

/* Returns 0 to go on, -1 after --help, else the exit code. */
static int parse(int argc, char **argv, fwd_args *a, fwd_opts *o) {
  memset(a, 0, sizeof *a);
  memset(o, 0, sizeof *o);
  opt_defaults(rows, N_ROWS, a);
  cli_opt_table tab = {rows, N_ROWS, a, NULL, NULL};
  int help, rc = cli_options_parse("forward", argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    cli_print_archs(stdout, 0);
    return -1;
  }
  if (!a->arch[0] || !a->weights[0] || !a->input[0])
    return cli_usage_errorf("forward", "--arch, --weights and --input are required");
  if (a->grads[0] && !a->target[0]) return cli_usage_errorf("forward", "--grads needs --target");
  if (a->grads[0] && !a->train) return cli_usage_errorf("forward", "--grads needs --mode train");
  forward_options_default(&o->f);
  o->f.arch = a->arch;
  o->f.weights = a->weights;
  o->f.train = a->train;
  o->f.prec = a->bf16 ? PREC_BF16 : PREC_FP32;
  o->f.threads = a->threads;
  o->f.aux_weight = a->aux_weight;
  o->f.dropout = a->dropout;
  o->input = a->input;
  o->output = given(a->output);
  o->target = given(a->target);
  o->grads = given(a->grads);
  return 0;
}

int cmd_forward(int argc, char **argv) {
  fwd_args a;
  fwd_opts o;
  int rc = parse(argc, argv, &a, &o);
  if (rc) return rc < 0 ? 0 : rc;
  mskx_err e = {0};
  cli_pin_threads(o.f.threads);
  double loss;
  if (forward_file_run(&o.f, o.input, o.target, o.output, o.grads, &loss, &e)) return cli_error("forward", &e);
  if (o.target) printf("loss %.9g\n", loss);
  return 0;
}
