/* mskx bundle --select: option parsing and the per-part table over
 * bundle_select_run() (src/eval/bundle_select.h). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/error.h"
#include "eval/bundle_select.h"

static const char *const usage =
    "usage: mskx bundle --out B.json --select kappa|auc|loss [--data DIR] CANDIDATE...\n"
    "\n"
    "Builds a per-part bundle from the best candidate for each body part. Candidates:\n"
    "model files, per-part bundles, and run folders (a per-part run's bundle.json, or a\n"
    "run's best.safetensors). A candidate's figure for a part is the validation figure\n"
    "its model stored in training (kappa, AUROC); figures not stored (always the log\n"
    "loss) are computed on --data's validation split as `mskx eval` computes them.\n"
    "Prints every candidate's figure per part and the choice; the bundle records them\n"
    "(\"selection\") and `mskx eval --report` shows the comparison.\n"
    "\n"
    "  --out FILE             the bundle to write (JSON)\n"
    "  --select M             kappa (highest), auc (highest) or loss (lowest)\n"
    "  --data DIR             dataset whose validation split computes missing figures\n"
    "  --recompute            compute every figure on --data (ignore stored ones)\n"
    "  --threads N            compute threads      --precision fp32|bf16\n"
    "  -h, --help             this help\n";

int cmd_bundle(int argc, char **argv) {
  static const struct option opts[] = {{"out", 1, 0, 'o'},       {"select", 1, 0, 's'}, {"data", 1, 0, 'd'},
                                       {"recompute", 0, 0, 'r'}, {"threads", 1, 0, 'T'}, {"precision", 1, 0, 'P'},
                                       {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
  bundle_select_options o;
  memset(&o, 0, sizeof o);
  const char *out = NULL;
  int have_metric = 0, bf16 = 0, c;
  long v;
  mskx_err e = {0, ""};
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'o': out = optarg; break;
      case 'd': o.data = optarg; break;
      case 'r': o.recompute = 1; break;
      case 's':
        if (sel_metric_parse(optarg, &o.metric, &e)) return cli_error("bundle", &e);
        have_metric = 1;
        break;
      case 'T':
        if (cli_parse_int("bundle", "threads", optarg, 1, 1024, &v)) return 1;
        o.po.threads = (int)v;
        break;
      case 'P':
        if (cli_parse_choice("bundle", "precision", optarg, "fp32", "bf16", &bf16)) return 1;
        break;
      case 'h': fputs(usage, stdout); return 0;
      default: return cli_usage_error("bundle");
    }
  }
  if (!out || !have_metric) return cli_errorf("bundle", "--out and --select are required (see --help)");
  if (optind >= argc) return cli_errorf("bundle", "no candidates given (models, bundles or run folders)");
  o.po.prec = bf16 ? PREC_BF16 : PREC_FP32;
  cli_pin_threads(o.po.threads);
  bundle_selection *s = NULL;
  if (bundle_select_run((const char *const *)argv + optind, argc - optind, &o, &s, &e) ||
      bundle_selection_write(s, out, &e)) {
    bundle_selection_free(s);
    return cli_error("bundle", &e);
  }
  printf("candidates:\n");
  for (int k = 0; k < s->n_cand; k++) printf("  [%d] %s (%s)\n", k + 1, s->cand_path[k], s->cand_kind[k]);
  printf("\n%-12s", "part");
  for (int k = 0; k < s->n_cand; k++) printf(" %10s[%d]", sel_metric_name(s->metric), k + 1);
  printf("  chosen\n");
  for (int p = 0; p < s->n_parts; p++) {
    printf("%-12s", s->parts[p]);
    for (int k = 0; k < s->n_cand; k++) {
      const sel_cell *x = &s->cells[p * s->n_cand + k];
      char buf[32];
      if (!x->model) snprintf(buf, sizeof buf, "-");
      else if (!isfinite(x->value)) snprintf(buf, sizeof buf, "n/a");
      else snprintf(buf, sizeof buf, "%.4f%s", x->value, x->source == SEL_COMPUTED ? "*" : " ");
      printf(" %13s", buf);
    }
    if (s->chosen[p] >= 0) printf("  [%d] %s\n", s->chosen[p] + 1, s->why[p]);
    else printf("  none: %s\n", s->why[p]);
  }
  printf("\n(* computed on %s's validation split; others stored by training; - : serves no such part)\nwrote %s\n",
         s->data ? s->data : "--data", out);
  bundle_selection_free(s);
  return 0;
}
