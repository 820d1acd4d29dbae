/* The mskx command line: one file per subcommand (cmd_<name>.c), each a thin
 * layer that parses its options from option tables (cli_options.h), calls the
 * library and prints. */
#ifndef MSKX_CLI_H
#define MSKX_CLI_H
#include "mskx.h"

/* Subcommands: argv[0] is the subcommand name. Return the process exit code. */
typedef int (*cli_command_fn)(int argc, char **argv);

int cmd_forward(int argc, char **argv);
int cmd_synth(int argc, char **argv) __attribute__((weak));
int cmd_stats(int argc, char **argv) __attribute__((weak));
int cmd_score(int argc, char **argv) __attribute__((weak));
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv) __attribute__((weak));
int cmd_bench(int argc, char **argv) __attribute__((weak));
int cmd_predict(int argc, char **argv) __attribute__((weak));
int cmd_serve(int argc, char **argv) __attribute__((weak));
int cmd_threshold(int argc, char **argv) __attribute__((weak));
int cmd_ensemble(int argc, char **argv) __attribute__((weak));
int cmd_dicom(int argc, char **argv) __attribute__((weak));
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_lr_find(int argc, char **argv) __attribute__((weak));
int cmd_bundle(int argc, char **argv) __attribute__((weak));
int cmd_import(int argc, char **argv) __attribute__((weak));

/* Exit statuses, the same for every command (README, "Exit status"): 0 done,
 * CLI_EXIT_FAILURE when the work failed (unreadable data, I/O, a bad model),
 * CLI_EXIT_USAGE when the command line is wrong (unknown option, bad or
 * missing option value, stray argument). mskx train adds 128 + the signal
 * when SIGTERM or SIGINT stopped it. */
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* Print "mskx CMD: message" to stderr; cli_error and cli_errorf return
 * CLI_EXIT_FAILURE, cli_usage_errorf CLI_EXIT_USAGE. */
int cli_error(const char *cmd, const mskx_err *e);
int cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Pins the compute threads (threads <= 0: OpenMP's default count) one per
 * CPU, offset by the MPI local rank; see core/affinity.h (MSKX_PIN=0 turns it
 * off). Returns the number of threads pinned. */
int cli_pin_threads(int threads);
/* Adds a number to a JSON object printed with the fewest digits that read
 * back as exactly v (cJSON's own printing can drop the last bit), so JSON
 * output equals the library's doubles bit for bit. Non-finite v: null. */
struct cJSON;
struct cJSON *cli_json_add_exact(struct cJSON *obj, const char *key, double v);
struct cJSON *cli_json_exact(double v);
/* Standard message for an unknown option or a missing argument (getopt's
 * '?'); returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd);

/* Help's list of architectures, from the arch table (models/arch.h): one
 * line each with its default input size; keras: also say which ones mskx
 * import reads from Keras files. */
#include <stdio.h>
void cli_print_archs(FILE *f, int keras);

#endif
