/* mskx bundle --select: option parsing and the per-part table over
 * bundle_select_run() (src/eval/bundle_select.h). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "eval/bundle_select.h"

static const char *const usage_head =
    "usage: mskx bundle --out B.json --select kappa|auc|loss [--data DIR] CANDIDATE...\n"
    "\n"
    "Builds a per-part bundle from the best candidate for each body part. Candidates:\n"
    "model files, per-part bundles, and run folders (a per-part run's bundle.json, or a\n"
    "run's best.safetensors). A candidate's figure for a part is the validation figure\n"
    "its model stored in training (kappa, AUROC); figures not stored (always the log\n"
    "loss) are computed on --data's validation split as `mskx eval` computes them.\n"
    "Prints every candidate's figure per part and the choice; the bundle records them\n"
    "(\"selection\") and `mskx eval --report` shows the comparison.\n"
    "\n";

typedef struct bundle_args {
  char out[4096], select[16], data[4096];
  int recompute, threads, bf16;
} bundle_args;

static int check_select(const char *v, mskx_err *e) {
  sel_metric m;
  return sel_metric_parse(v, &m, e);
}

#define A(m) .off = offsetof(bundle_args, m), .size = sizeof(((bundle_args *)0)->m)
#define G_BUNDLE "options"
static const opt_spec rows[] = {
    {.flag = "out", .type = OPT_PATH, A(out), .arg = "FILE", .group = G_BUNDLE, .flags = OPT_REQUIRED,
     .help = "the bundle to write (JSON)"},
    {.flag = "select", .type = OPT_STRING, A(select), .arg = "M", .group = G_BUNDLE, .flags = OPT_REQUIRED,
     .check = check_select, .help = "kappa (highest), auc (highest) or loss (lowest)"},
    {.flag = "data", .type = OPT_PATH, A(data), .arg = "DIR", .group = G_BUNDLE,
     .help = "dataset whose validation split computes missing figures"},
    {.flag = "recompute", .type = OPT_BOOL, A(recompute), .group = G_BUNDLE,
     .help = "compute every figure on --data (ignore stored ones)"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_BUNDLE,
     .flags = OPT_HIDE_DEFAULT, .help = "compute threads (default: all cores)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16", .def_str = "fp32", .arg = "fp32|bf16",
     .group = G_BUNDLE, .help = "compute precision"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

int cmd_bundle(int argc, char **argv) {
  bundle_args a;
  memset(&a, 0, sizeof a);
  opt_defaults(rows, N_ROWS, &a);
  cli_opt_table tab = {rows, N_ROWS, &a, NULL, NULL};
  int help, first, rc = cli_options_parse_operands("bundle", argc, argv, &tab, 1, &help, &first);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a.out[0] || !a.select[0]) return cli_usage_errorf("bundle", "--out and --select are required (see --help)");
  if (first >= argc) return cli_usage_errorf("bundle", "no candidates given (models, bundles or run folders)");
  mskx_err e = {0, ""};
  bundle_select_options o;
  memset(&o, 0, sizeof o);
  sel_metric_parse(a.select, &o.metric, &e);  /* checked when parsed */
  o.data = a.data[0] ? a.data : NULL;
  o.recompute = a.recompute;
  o.po.threads = a.threads;
  const char *out = a.out;
  int bf16 = a.bf16;
  o.po.prec = bf16 ? PREC_BF16 : PREC_FP32;
  cli_pin_threads(o.po.threads);
  bundle_selection *s = NULL;
  if (bundle_select_run((const char *const *)argv + first, argc - first, &o, &s, &e) ||
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
