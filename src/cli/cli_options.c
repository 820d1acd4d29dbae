/* getopt_long options and usage text built from option tables (cli_options.h). */
#include "cli/cli_options.h"
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

/* getopt_long codes: row i of table k is OPT_CODE_BASE + k * OPT_CODE_STRIDE + i. */
#define OPT_CODE_BASE 0x1000
#define OPT_CODE_STRIDE 0x400
#define USAGE_COLUMN 26
#define USAGE_WIDTH 100 /* a default that would pass it goes on a line of its own */
/* getopt's short options: "h" and a letter (with ':' for a value) per row that has one. */
#define SHORT_OPTS_MAX 128

static int takes(const cli_opt_table *t, size_t i) {
  const opt_spec *s = &t->rows[i];
  if (!s->flag) return 0;
  if (!t->only) return 1;
  for (const char *const *f = t->only; *f; f++)
    if (!strcmp(*f, s->flag)) return 1;
  return 0;
}

#define DICOM_FLD(m) .off = offsetof(cli_dicom_args, m), .size = sizeof(((cli_dicom_args *)0)->m)
const opt_spec cli_dicom_rows[] = {
    {.flag = "dicom-window", .type = OPT_STRING, DICOM_FLD(window), .def_str = "auto", .arg = "auto|minmax|C,W",
     .group = "DICOM images (docs/dicom.md)", .check = dicom_check_window,
     .help = "DICOM files without a VOI window: percentile window (auto)\n"
             "or full range (minmax); C,W overrides every file's window"},
    {.flag = "dicom-frames", .type = OPT_STRING, DICOM_FLD(frames), .def_str = "all", .arg = "all|first",
     .group = "DICOM images (docs/dicom.md)", .check = dicom_check_frames,
     .help = "multi-frame DICOM: every frame an image (all) or only the first"},
};
const size_t cli_dicom_row_count = sizeof cli_dicom_rows / sizeof cli_dicom_rows[0];

dicom_options cli_dicom_args_options(const cli_dicom_args *a) {
  dicom_options o = {0};
  dicom_options_parse_window(a->window, &o, NULL);
  dicom_options_parse_frames(a->frames, &o, NULL);
  return o;
}

static int has_value(const opt_spec *s) { return s->type != OPT_BOOL && s->type != OPT_CLEAR; }

/* first: NULL for a command without operands (one is a usage error), else
 * where getopt_long's permutation left the first. */
static int parse(const char *cmd, int argc, char **argv, cli_opt_table *tabs, int ntabs, int *help, int *first) {
  *help = 0;
  size_t total = 2;
  for (int k = 0; k < ntabs; k++) total += tabs[k].n;
  struct option *longs = calloc(total, sizeof *longs);
  if (!longs) return cli_errorf(cmd, "out of memory");
  size_t m = 0;
  for (int k = 0; k < ntabs; k++) {
    if (tabs[k].given) memset(tabs[k].given, 0, tabs[k].n);
    for (size_t i = 0; i < tabs[k].n; i++)
      if (takes(&tabs[k], i))
        longs[m++] = (struct option){tabs[k].rows[i].flag, has_value(&tabs[k].rows[i]) ? required_argument : no_argument,
                                     NULL, OPT_CODE_BASE + k * OPT_CODE_STRIDE + (int)i};
  }
  longs[m++] = (struct option){"help", no_argument, NULL, 'h'};
  char shorts[SHORT_OPTS_MAX] = "h";
  size_t ns = 1;
  for (int k = 0; k < ntabs; k++)
    for (size_t i = 0; i < tabs[k].n; i++)
      if (takes(&tabs[k], i) && tabs[k].rows[i].letter && ns + 3 <= sizeof shorts) {
        shorts[ns++] = tabs[k].rows[i].letter;
        if (has_value(&tabs[k].rows[i])) shorts[ns++] = ':';
        shorts[ns] = 0;
      }
  int rc = 0, o;
  optind = 1;
  while (!rc && (o = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
    if (o == 'h') {
      *help = 1;
      break;
    }
    for (int k = 0; o > 0 && o < OPT_CODE_BASE && k < ntabs; k++)  /* a letter: its row's code */
      for (size_t i = 0; i < tabs[k].n; i++)
        if (takes(&tabs[k], i) && tabs[k].rows[i].letter == o) o = OPT_CODE_BASE + k * OPT_CODE_STRIDE + (int)i;
    int k = (o - OPT_CODE_BASE) / OPT_CODE_STRIDE, i = (o - OPT_CODE_BASE) % OPT_CODE_STRIDE;
    if (o < OPT_CODE_BASE || k >= ntabs) {
      rc = cli_usage_error(cmd);
      break;
    }
    mskx_err e = {0, ""};
    if (opt_parse(&tabs[k].rows[i], tabs[k].base, optarg, &e)) rc = cli_usage_errorf(cmd, "%s", e.msg);
    else if (tabs[k].given) tabs[k].given[i] = 1;
  }
  free(longs);
  if (first) *first = optind;
  else if (!rc && !*help && optind < argc) rc = cli_usage_errorf(cmd, "unexpected argument '%s'", argv[optind]);
  return rc;
}

int cli_options_parse(const char *cmd, int argc, char **argv, cli_opt_table *tabs, int ntabs, int *help) {
  return parse(cmd, argc, argv, tabs, ntabs, help, NULL);
}

int cli_options_parse_operands(const char *cmd, int argc, char **argv, cli_opt_table *tabs, int ntabs, int *help,
                               int *first) {
  return parse(cmd, argc, argv, tabs, ntabs, help, first);
}

/* One option: "  --flag ARG" ("  -f, --flag ARG" when it has a letter, the
 * flags aligned when others of the command do), its help lines from
 * USAGE_COLUMN, the default after the last. */
static void usage_row(FILE *f, const opt_spec *s, int letters) {
  char left[128], def[128], letter[8] = "";
  if (s->letter) snprintf(letter, sizeof letter, "-%c, ", s->letter);
  else if (letters) snprintf(letter, sizeof letter, "    ");
  int w = snprintf(left, sizeof left, "  %s--%s%s%s", letter, s->flag, s->arg ? " " : "", s->arg ? s->arg : "");
  fputs(left, f);
  if (w >= USAGE_COLUMN - 1) {
    fputc('\n', f);
    w = 0;
  }
  fprintf(f, "%*s", USAGE_COLUMN - w, "");
  int has_def = opt_default_text(s, def, sizeof def), col = USAGE_COLUMN;
  for (const char *p = s->help ? s->help : ""; *p;) {
    const char *nl = strchr(p, '\n');
    int len = nl ? (int)(nl - p) : (int)strlen(p);
    fprintf(f, "%.*s", len, p);
    col = USAGE_COLUMN + len;
    if (!nl) break;
    fprintf(f, "\n%*s", USAGE_COLUMN, "");
    p = nl + 1;
  }
  if (has_def && col + 11 + (int)strlen(def) > USAGE_WIDTH) fprintf(f, "\n%*s", USAGE_COLUMN - 1, "");
  if (has_def) fprintf(f, " (default %s)", def);
  fputc('\n', f);
}

static int same_group(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* Groups in the order they first appear, each with its rows from every
 * table (a command's own rows join the library's headings); a note's group
 * matches the headings it starts. */
void cli_options_usage(FILE *f, const cli_opt_table *tabs, int ntabs, const cli_usage_note *notes) {
  int letters = 0;
  for (int k = 0; k < ntabs; k++)
    for (size_t i = 0; i < tabs[k].n; i++) letters |= takes(&tabs[k], i) && tabs[k].rows[i].letter;
  for (int k = 0; k < ntabs; k++)
    for (size_t i = 0; i < tabs[k].n; i++) {
      const char *group = tabs[k].rows[i].group;
      int seen = !takes(&tabs[k], i);
      for (int k2 = 0; k2 <= k && !seen; k2++)
        for (size_t i2 = 0; i2 < (k2 == k ? i : tabs[k2].n) && !seen; i2++)
          seen = takes(&tabs[k2], i2) && same_group(tabs[k2].rows[i2].group, group);
      if (seen) continue;
      if (group) fprintf(f, "%s:\n", group);
      for (const cli_usage_note *n = notes; group && n && n->group; n++)
        if (!strncmp(n->group, group, strlen(n->group))) fputs(n->text, f);
      for (int k2 = k; k2 < ntabs; k2++)
        for (size_t i2 = 0; i2 < tabs[k2].n; i2++)
          if (takes(&tabs[k2], i2) && same_group(tabs[k2].rows[i2].group, group))
            usage_row(f, &tabs[k2].rows[i2], letters);
    }
  fprintf(f, "  -h, --help%*sthis help\n", USAGE_COLUMN - 12, "");
}

void cli_print_help(const char *head, const cli_opt_table *tabs, int ntabs, const char *tail) {
  fputs(head, stdout);
  cli_options_usage(stdout, tabs, ntabs, NULL);
  if (tail) fputs(tail, stdout);
}
