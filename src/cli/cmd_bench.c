/* mskx bench: times inference batches or training steps on random data and
 * prints one JSON object (the format bench/torch_bench.py prints too). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "models/arch.h"
#include "train/bench.h"

static const char *const usage =
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
    "\n"
    "  --arch ARCH           one of the architectures below (default densenet169)\n"
    "  --model M             time this model file (fp32, or int8 from mskx quantize)\n"
    "                        instead of a freshly initialised --arch\n"
    "  --size S              input height and width (default: the arch's, below; with\n"
    "                        --model its own size)\n"
    "  --batch B             batch size (default 8)\n"
    "  --precision fp32|bf16|auto|int8 compute precision (default fp32); auto times one\n"
    "                        step of each (bf16 only where the CPU has it) and keeps the\n"
    "                        faster; the JSON's precision is the one timed, precision_ms the\n"
    "                        steps of each; a bf16 run also times fp32 and warns when bf16 is\n"
    "                        slower; int8 quantises the fresh --arch in memory (its input\n"
    "                        steps from the random batch), inference only; an int8 model\n"
    "                        file is always int8\n"
    "  --no-fp32-check       bf16: skip that fp32 step (bench/compare: profiles, timings)\n"
    "  --mode infer|train    what one timed repetition is (default infer)\n"
    "  --iters N             timed repetitions (default 10)\n"
    "  --warmup W            untimed repetitions first (default 2)\n"
    "  --threads T           compute threads (default: all cores), pinned one per CPU\n"
    "  --seed N              weights and data seed (default 0)\n"
    "  --json                JSON output (the only format; accepted for scripts)\n";

#define CMD "bench"

static int parse(int argc, char **argv, bench_config *c) {
  static const struct option longs[] = {
      {"arch", 1, 0, 'a'},  {"size", 1, 0, 's'},    {"batch", 1, 0, 'b'}, {"precision", 1, 0, 'p'},
      {"mode", 1, 0, 'm'},  {"iters", 1, 0, 'i'},   {"warmup", 1, 0, 'w'}, {"threads", 1, 0, 'T'},
      {"seed", 1, 0, 'S'}, {"no-fp32-check", 0, 0, 'F'},  {"json", 0, 0, 'j'},    {"help", 0, 0, 'h'},
      {"model", 1, 0, 'M'}, {0, 0, 0, 0}};
  *c = (bench_config){.arch = "densenet169", .size = 0, .batch = 8, .iters = 10, .warmup = 2};
  int ch, choice = 0, arch_given = 0;
  long v;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
      case 'a': c->arch = optarg, arch_given = 1; break;
      case 'M': c->model = optarg; break;
      case 's': if (cli_parse_int(CMD, "size", optarg, 1, 8192, &v)) return CLI_EXIT_USAGE; c->size = (int)v; break;
      case 'b': if (cli_parse_int(CMD, "batch", optarg, 1, 4096, &v)) return CLI_EXIT_USAGE; c->batch = (int)v; break;
      case 'i': if (cli_parse_int(CMD, "iters", optarg, 1, 1000000, &v)) return CLI_EXIT_USAGE; c->iters = (int)v; break;
      case 'w': if (cli_parse_int(CMD, "warmup", optarg, 0, 1000000, &v)) return CLI_EXIT_USAGE; c->warmup = (int)v; break;
      case 'T': if (cli_parse_int(CMD, "threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE; c->threads = (int)v; break;
      case 'S': if (cli_parse_int(CMD, "seed", optarg, 0, 0x7fffffffL, &v)) return CLI_EXIT_USAGE; c->seed = (uint64_t)v; break;
      case 'p':
        c->int8 = !strcmp(optarg, "int8");
        if (c->int8) break;
        if (cli_parse_precision(CMD, optarg, &choice)) return CLI_EXIT_USAGE;
        c->prec = (precision)choice;
        break;
      case 'm':
        if (cli_parse_choice(CMD, "mode", optarg, "infer", "train", &choice)) return CLI_EXIT_USAGE;
        c->train = choice;
        break;
      case 'j': break;
      case 'F': c->no_fp32_check = 1; break;
      case 'h':
        fputs(usage, stdout);
        cli_print_archs(stdout, 0);
        return -1;
      default: return cli_usage_error(CMD);
    }
  }
  if (optind < argc) return cli_usage_errorf(CMD, "unexpected argument '%s'", argv[optind]);
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
  bench_config c;
  int rc = parse(argc, argv, &c);
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
