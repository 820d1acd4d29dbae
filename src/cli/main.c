/* mskx: entry point and subcommand dispatch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"

typedef struct command {
  const char *name;
  cli_command_fn fn;
  const char *summary;
} command;

static void usage(FILE *f, const command *cmds, int n) {
  fprintf(f,
          "mskx %s: abnormality detection in musculoskeletal radiographs (MURA)\n\n"
          "usage: mskx <command> [options]     (mskx <command> --help for each)\n\ncommands:\n",
          MSKX_VERSION);
  for (int i = 0; i < n; i++)
    if (cmds[i].fn) fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
}

/* Output to a full disk or a closed pipe must not end in exit status 0: the
 * buffered tail of stdout is written here, where its error can still be seen. */
static int end_output(int rc) {
  errno = 0;
  int bad = ferror(stdout), flush = fflush(stdout);
  if (flush != 0 || bad) {
    if (flush != 0 && errno)
      fprintf(stderr, "mskx: cannot write the output: %s\n", strerror(errno));
    else
      fprintf(stderr, "mskx: cannot write the output (a write to standard output failed)\n");
    return rc ? rc : 1;
  }
  return rc;
}

static int run(int argc, char **argv) {
  const command cmds[] = {
      {"synth", cmd_synth, "write a synthetic MURA-format dataset of radiograph phantoms"},
      {"stats", cmd_stats, "per-part study and image counts of a dataset (MURA Table 1)"},
      {"train", cmd_train, "train a network (the MURA paper's recipe and more)"},
      {"eval", cmd_eval, "evaluate a model on a split: kappa, AUROC, report"},
      {"score", cmd_score, "score a predictions CSV against labelled studies"},
      {"lr-find", cmd_lr_find, "sweep learning rates and suggest one (fastai-style finder)"},
      {"threshold", cmd_threshold, "choose a decision threshold on the validation split"},
      {"ensemble", cmd_ensemble, "combine models (mean, vote, weighted, stacking)"},
      {"bundle", cmd_bundle, "per-part bundle of the best candidate for each part (--select)"},
      {"predict", cmd_predict, "predict studies (images or study folders)"},
      {"serve", cmd_serve, "HTTP service with a web viewer"},
      {"bench", cmd_bench, "time inference or training steps"},
      {"dicom", cmd_dicom, "show how DICOM files are read: header summary, rendered PNGs"},
      {"export", cmd_export, "write a model, bundle or ensemble as ONNX"},
      {"quantize", cmd_quantize, "post-training int8 quantisation of a DenseNet model"},
      {"import", cmd_import, "import PyTorch (.pth) or Keras (.h5) weights as an mskx model"},
      {"forward", cmd_forward, "run a network on an .npy batch (parity and debugging)"},
  };
  int n = (int)(sizeof cmds / sizeof cmds[0]);
  if (argc < 2) {  /* a usage error: the usage goes where errors go */
    usage(stderr, cmds, n);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout, cmds, n);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("mskx %s\n", MSKX_VERSION);
    return 0;
  }
  for (int i = 0; i < n; i++)
    if (cmds[i].fn && !strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "mskx: unknown command '%s'\n", argv[1]);
  usage(stderr, cmds, n);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) { return end_output(run(argc, argv)); }
