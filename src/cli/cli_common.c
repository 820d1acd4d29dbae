/* Shared option parsing and error printing for subcommands. */
#include "cli/cli.h"
#include <omp.h>
#include <cjson/cJSON.h>
#include "core/affinity.h"
#include "models/arch.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *cmd, const mskx_err *e) {
  fprintf(stderr, "mskx %s: %s\n", cmd, e->msg[0] ? e->msg : mskx_status_name(e->code));
  return CLI_EXIT_FAILURE;
}

static void print_error(const char *cmd, const char *fmt, va_list ap) {
  fprintf(stderr, "mskx %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_errorf(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_error(cmd, fmt, ap);
  va_end(ap);
  return CLI_EXIT_FAILURE;
}

int cli_usage_errorf(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_error(cmd, fmt, ap);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

int cli_usage_error(const char *cmd) {
  return cli_usage_errorf(cmd, "see 'mskx %s --help'", cmd);
}

int cli_pin_threads(int threads) {
  int team = threads > 0 ? threads : omp_get_max_threads();
  /* The command's process state (the library leaves it alone): OpenMP's
   * team size is the command's thread count, so every region, the library's
   * included, runs on the threads pinned here. */
  omp_set_num_threads(team);
  /* MSKX_PIN=0: the user's switch for the CLI's pinning (the library's
   * affinity_pin_threads reads no switch of ours). */
  const char *pin = getenv("MSKX_PIN");
  if (pin && !strcmp(pin, "0")) return 0;
  return affinity_pin_threads(team, local_rank_from_env() * team, NULL, 0);
}

cJSON *cli_json_exact(double v) {
  if (!isfinite(v)) return cJSON_CreateNull();
  char buf[40];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) break;
  }
  return cJSON_CreateRaw(buf);
}

cJSON *cli_json_add_exact(cJSON *obj, const char *key, double v) {
  cJSON *n = cli_json_exact(v);
  if (n && !cJSON_AddItemToObject(obj, key, n)) {
    cJSON_Delete(n);
    return NULL;
  }
  return n;
}

void cli_print_archs(FILE *f, int keras) {
  int n;
  const arch_def *t = arch_table(&n);
  fputs("\narchitectures (--arch):\n", f);
  for (int i = 0; i < n; i++) {
    const char *sep = strlen(t[i].syntax) > 14 ? "\n                    " : "";
    fprintf(f, "  %-16s%s%s; %d px%s\n", t[i].syntax, sep, t[i].description, t[i].default_size,
            keras && t[i].family->keras ? "; Keras .h5 too" : "");
  }
}
