/* mskx bench: times inference batches or training steps on random data and
 * prints one JSON object (the format bench/torch_bench.py prints too). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "models/arch.h"
#include "train/bench.h"

static const char *const usage_head =
    "usage: mskx bench [options]\n"
    "\n"
    "Times inference batches or full training steps (forward, BCE-with-logits loss,\n"
    "backward, Adam update) on random inputs and targets (fixed seed), and prints one\n"
    "JSON object: arch, size, batch, precision, mode, threads, iters, images_per_s\n"
    "(batch / median time), ms_per_batch_median, ms_per_batch_min, peak_rss_mb (MiB),\n"
    "engine; also warmup, ms_per_batch_mean, ms_total (every repetition, warmup\n"
    "included), bf16_native, pinned (compute threads pinned to CPUs; MSKX_PIN=0 turns\n"
    "pinning off) and, for train, loss_first/loss_last. bench/compare runs it side by\n"
    "side with PyTorch.\n"
    "\n";

#define CMD "bench"

/* The command line's values; bench_config points into it. */
typedef struct bench_args {
  char arch[4096], model[4096];
  int size, batch, precision, train, iters, warmup, threads, no_fp32_check, json;
  uint64_t seed;
} bench_args;

/* --precision's values: PREC_FP32, PREC_BF16, PREC_AUTO in that order, then int8. */
#define BENCH_INT8 3

#define A(m) .off = offsetof(bench_args, m), .size = sizeof(((bench_args *)0)->m)
#define G_BENCH "options"
static const opt_spec rows[] = {
    {.flag = "arch", .type = OPT_STRING, A(arch), .def_str = "densenet169", .arg = "ARCH", .group = G_BENCH,
     .help = "one of the architectures below"},
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "M", .group = G_BENCH,
     .help = "time this model file (fp32, or int8 from mskx quantize)\ninstead of a freshly initialised --arch"},
    {.flag = "size", .type = OPT_INT, A(size), .lo = 1, .hi = 8192, .arg = "S", .group = G_BENCH,
     .flags = OPT_HIDE_DEFAULT, .help = "input height and width (default: the arch's, below; with\n--model its own size)"},
    {.flag = "batch", .type = OPT_INT, A(batch), .lo = 1, .hi = 4096, .def = 8, .arg = "B", .group = G_BENCH,
     .help = "batch size"},
    {.flag = "precision", .type = OPT_CHOICE, A(precision), .choices = "fp32|bf16|auto|int8", .def_str = "fp32",
     .arg = "fp32|bf16|auto|int8", .group = G_BENCH,
     .help = "compute precision; auto times one step of each (bf16 only\n"
             "where the CPU has it) and keeps the faster; the JSON's precision\n"
             "is the one timed, precision_ms the steps of each; a bf16 run also\n"
             "times fp32 and warns when bf16 is slower; int8 quantises the\n"
             "fresh --arch in memory (its input steps from the random batch),\n"
             "inference only; an int8 model file is always int8"},
    {.flag = "no-fp32-check", .type = OPT_BOOL, A(no_fp32_check), .group = G_BENCH,
     .help = "bf16: skip that fp32 step (bench/compare: profiles, timings)"},
    {.flag = "mode", .type = OPT_CHOICE, A(train), .choices = "infer|train", .def_str = "infer", .arg = "infer|train",
     .group = G_BENCH, .help = "what one timed repetition is"},
    {.flag = "iters", .type = OPT_INT, A(iters), .lo = 1, .hi = 1000000, .def = 10, .arg = "N", .group = G_BENCH,
     .help = "timed repetitions"},
    {.flag = "warmup", .type = OPT_INT, A(warmup), .lo = 0, .hi = 1000000, .def = 2, .arg = "W", .group = G_BENCH,
     .help = "untimed repetitions first"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "T", .group = G_BENCH,
     .flags = OPT_HIDE_DEFAULT, .help = "compute threads (default: all cores), pinned one per CPU"},
    {.flag = "seed", .type = OPT_U64, A(seed), .lo = 0, .hi = 0x7fffffff, .def = 0, .arg = "N", .group = G_BENCH,
     .help = "weights and data seed"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_BENCH,
     .help = "JSON output (the only format; accepted for scripts)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)
_Static_assert(PREC_FP32 == 0 && PREC_BF16 == 1 && PREC_AUTO == 2, "--precision's choices are PREC_* in order");

/* Returns 0 to go on, -1 after --help, else the exit code. */
static int parse(int argc, char **argv, bench_args *a, bench_config *c) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, N_ROWS, a);
  unsigned char given[N_ROWS];
  cli_opt_table tab = {rows, N_ROWS, a, NULL, given};
  int help, rc = cli_options_parse(CMD, argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    cli_print_archs(stdout, 0);
    return -1;
  }
  int arch_given = given[opt_find(rows, N_ROWS, "arch")];
  *c = (bench_config){.arch = a->arch, .model = a->model[0] ? a->model : NULL, .size = a->size, .batch = a->batch,
                      .iters = a->iters, .warmup = a->warmup, .threads = a->threads, .seed = a->seed,
                      .train = a->train, .no_fp32_check = a->no_fp32_check};
  c->int8 = a->precision == BENCH_INT8;
  c->prec = c->int8 ? PREC_FP32 : (precision)a->precision;
  if (c->model && arch_given) return cli_usage_errorf(CMD, "give --arch or --model, not both");
  /* An unknown arch keeps the paper's size; creating the network then names the error. */
  if (!c->model && !c->size) c->size = arch_default_size(c->arch) ? arch_default_size(c->arch) : ARCH_PAPER_SIZE;
  if ((double)c->batch * c->size * c->size * 3 > 1e10)
    return cli_usage_errorf(CMD, "a batch of %d at %dx%d is too large", c->batch, c->size, c->size);
  return 0;
}

static double round3(double x) { return round(x * 1000.0) / 1000.0; }

static int print_json(const bench_config *c, const bench_result *r, int pinned) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return cli_errorf(CMD, "out of memory");
  cJSON_AddStringToObject(o, "arch", r->arch);
  if (c->model) cJSON_AddStringToObject(o, "model", c->model);
  cJSON_AddNumberToObject(o, "size", r->size);
  cJSON_AddNumberToObject(o, "batch", c->batch);
  cJSON_AddStringToObject(o, "precision", r->int8 ? "int8" : precision_name(r->prec));
  if (c->prec == PREC_AUTO && !r->int8) cJSON_AddStringToObject(o, "precision_requested", "auto");
  if (r->prec_ms[PREC_FP32] > 0 || r->prec_ms[PREC_BF16] > 0) {
    /* One step of each precision timed (auto's candidates; fp32 after bf16). */
    cJSON *pm = cJSON_AddObjectToObject(o, "precision_ms");
    for (int p = 0; p < PREC_COUNT; p++)
      if (r->prec_ms[p] > 0) cJSON_AddNumberToObject(pm, precision_name((precision)p), round3(r->prec_ms[p]));
  }
  cJSON_AddStringToObject(o, "mode", c->train ? "train" : "infer");
  cJSON_AddNumberToObject(o, "threads", r->threads);
  cJSON_AddBoolToObject(o, "pinned", pinned > 0);
  cJSON_AddNumberToObject(o, "iters", c->iters);
  cJSON_AddNumberToObject(o, "images_per_s", round3(r->images_per_s));
  cJSON_AddNumberToObject(o, "ms_per_batch_median", round3(r->ms_median));
  cJSON_AddNumberToObject(o, "ms_per_batch_min", round3(r->ms_min));
  cJSON_AddNumberToObject(o, "peak_rss_mb", round3(r->peak_rss_mb));
  cJSON_AddNumberToObject(o, "warmup", c->warmup);
  cJSON_AddNumberToObject(o, "ms_per_batch_mean", round3(r->ms_mean));
  cJSON_AddNumberToObject(o, "ms_total", round3(r->ms_total));
  cJSON_AddStringToObject(o, "engine", "onednn");
  cJSON_AddBoolToObject(o, "bf16_native", engine_dnnl_has_bf16());
  if (c->train) {
    /* Shows the step really trains (and the number is finite), not a timing. */
    cJSON_AddNumberToObject(o, "loss_first", isfinite(r->loss_first) ? r->loss_first : -1);
    cJSON_AddNumberToObject(o, "loss_last", isfinite(r->loss_last) ? r->loss_last : -1);
  }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!s) return cli_errorf(CMD, "out of memory");
  puts(s);
  free(s);
  return 0;
}

int cmd_bench(int argc, char **argv) {
  bench_args a;
  bench_config c;
  int rc = parse(argc, argv, &a, &c);
  if (rc) return rc < 0 ? 0 : rc;
  if (c.prec == PREC_BF16 && !engine_dnnl_has_bf16())
    fprintf(stderr, "mskx bench: note: this CPU has no native bf16; oneDNN emulates it (slow)\n");
  bench_result r;
  mskx_err e = {0};
  int pinned = cli_pin_threads(c.threads);
  if (bench_run(&c, &r, &e)) return cli_error(CMD, &e);
  if (r.prec_ms[PREC_FP32] > 0 && r.prec_ms[PREC_BF16] > r.prec_ms[PREC_FP32])
    fprintf(stderr, "mskx bench: warning: bf16 is slower than fp32 on this machine (%.1f ms against %.1f ms per %s)%s\n",
            r.prec_ms[PREC_BF16], r.prec_ms[PREC_FP32], c.train ? "step" : "batch",
            c.prec == PREC_AUTO ? ": auto chose fp32" : "");
  return print_json(&c, &r, pinned);
}
