/* Command-line parsing and usage text from option tables (core/options.h):
 * a command names its tables (a library's, e.g. train_options, and its
 * own) and gets getopt_long parsing, range-checked values, exit status 2
 * on a usage error and a --help text, all from the same rows. */
#ifndef MSKX_CLI_OPTIONS_H
#define MSKX_CLI_OPTIONS_H
#include <stdio.h>
#include "core/options.h"
#include "io/dicom_options.h"

typedef struct cli_opt_table {
  const opt_spec *rows;
  size_t n;
  void *base;                /* the struct the rows' offsets point into */
  const char *const *only;   /* NULL-terminated flags this command takes; NULL: every row with a flag */
  unsigned char *given;      /* n entries set to 1 for each option given (may be NULL) */
} cli_opt_table;

/* A paragraph printed under a group's heading, before its options. */
typedef struct cli_usage_note {
  const char *group, *text;
} cli_usage_note;

/* --dicom-window and --dicom-frames as rows (for commands that keep them
 * out of a library table; train's are train_options rows). */
typedef struct cli_dicom_args {
  char window[48], frames[8];
} cli_dicom_args;
extern const opt_spec cli_dicom_rows[];
extern const size_t cli_dicom_row_count;
/* The rendering options the parsed rows say (they were checked when parsed). */
dicom_options cli_dicom_args_options(const cli_dicom_args *a);

/* Parses argv (argv[0] the command) in order into the tables; --help or -h
 * sets *help and stops. Returns 0, or CLI_EXIT_USAGE after printing
 * "mskx CMD: --OPTION: why" (unknown option, bad value, stray argument). */
int cli_options_parse(const char *cmd, int argc, char **argv, cli_opt_table *tabs, int ntabs, int *help);
/* The same for a command that takes operands (mskx predict's PATH...): they
 * may come before, between or after the options (getopt_long permutes
 * argv); *first is the index of the first in argv (argc when there is none). */
int cli_options_parse_operands(const char *cmd, int argc, char **argv, cli_opt_table *tabs, int ntabs, int *help,
                               int *first);
/* The options of the tables, grouped by heading, each with its help line
 * and default; notes (may be NULL; ends at a NULL group) go under headings. */
void cli_options_usage(FILE *f, const cli_opt_table *tabs, int ntabs, const cli_usage_note *notes);
/* A command's --help on stdout: head, its options (cli_options_usage), then
 * tail (NULL: none). */
void cli_print_help(const char *head, const cli_opt_table *tabs, int ntabs, const char *tail);

#endif
