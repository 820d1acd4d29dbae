/* mskx serve: the HTTP service and web viewer (src/serve) around one loaded
 * model; prints the access log and stops gracefully on SIGINT/SIGTERM. */
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "serve/serve.h"

/* How long a prediction waits for decode budget before its 503. */
#define SERVE_DECODE_WAIT_MS 2000

static const char *const usage_head =
    "usage: mskx serve --model M [options]\n"
    "\n"
    "Serves predictions over HTTP: POST /v1/predict (multipart/form-data with the\n"
    "images of one study, or one raw image/png or image/jpeg body; ?part=XR_WRIST,\n"
    "?cam=1 for heatmap overlays), GET /v1/health, /v1/model, /metrics (Prometheus),\n"
    "and a web viewer at /. One access-log line per request goes to stderr.\n"
    "SIGINT/SIGTERM stop accepting, let requests in progress finish, and exit 0.\n"
    "\n";

/* What the command line adds to serve_config (serve_options' rows): the
 * model and how it is loaded, the address, shutdown and logging. */
typedef struct serve_args {
  char model[4096];
  char host[256];
  int bf16, quiet, grace, decode_wait;
  uint64_t max_pixels, decode_budget;
  cli_dicom_args dicom;
  serve_config cfg;
} serve_args;

#define A(m) .off = offsetof(serve_args, m), .size = sizeof(((serve_args *)0)->m)
static const opt_spec cli_rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "FILE", .group = "Service", .flags = OPT_REQUIRED,
     .help = "model (.safetensors), per-part bundle or ensemble (.json)"},
    {.flag = "host", .type = OPT_STRING, A(host), .def_str = SERVE_DEFAULT_HOST, .arg = "ADDR", .group = "Service",
     .help = "address to bind (127.0.0.1: this machine only)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16|auto", .def_str = "fp32",
     .arg = "fp32|bf16|auto", .group = "Service",
     .help = "compute precision (auto: the faster of one timed batch each,\nshown by /v1/model and /v1/health/ready)"},
    {.flag = "max-pixels", .type = OPT_U64, A(max_pixels), .lo = 1, .hi = 1099511627776.0, .arg = "N",
     .group = "Limits and scheduling", .flags = OPT_HIDE_DEFAULT,
     .help = "pixels per image, checked before decoding; more get 413\n(default 268435456 = 16384 x 16384)"},
    {.flag = "decode-budget", .type = OPT_U64, A(decode_budget), .lo = 1, .hi = 1125899906842624.0, .arg = "BYTES",
     .group = "Limits and scheduling", .flags = OPT_HIDE_DEFAULT,
     .help = "memory that image decoding may hold at once across\n"
             "all predictions; a request that finds it spent for\n"
             "--decode-wait gets 503 with Retry-After, an image\n"
             "that alone needs more gets 413 (default: a quarter of RAM)"},
    {.flag = "decode-wait", .type = OPT_INT, A(decode_wait), .lo = 0, .hi = 3600000, .def = SERVE_DECODE_WAIT_MS,
     .arg = "MS", .group = "Limits and scheduling",
     .help = "how long a prediction waits for decode budget\n(0 = answer 503 at once)"},
    {.flag = "grace", .type = OPT_INT, A(grace), .lo = 0, .hi = 86400, .def = SERVE_DEFAULT_GRACE, .arg = "S",
     .group = "Connections", .help = "seconds shutdown waits for requests in progress"},
    {.flag = "quiet", .type = OPT_BOOL, A(quiet), .group = "Connections", .help = "no access log"},
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a) {
  memset(a, 0, sizeof *a);
  serve_config_default(&a->cfg);
  opt_defaults(cli_rows, sizeof cli_rows / sizeof *cli_rows, a);
  opt_defaults(cli_dicom_rows, cli_dicom_row_count, &a->dicom);
  cli_opt_table tabs[] = {{cli_rows, sizeof cli_rows / sizeof *cli_rows, a, NULL, NULL},
                          {serve_options, serve_options_count, &a->cfg, NULL, NULL},
                          {cli_dicom_rows, cli_dicom_row_count, &a->dicom, NULL, NULL}};
  int help, rc = cli_options_parse("serve", argc, argv, tabs, 3, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, tabs, 3, NULL);
    return 0;
  }
  mskx_err e = {0, ""};
  if (opt_check_all(cli_rows, sizeof cli_rows / sizeof *cli_rows, a, &e))
    return cli_usage_errorf("serve", "%s (see --help)", e.msg);
  a->cfg.host = a->host;
  return -1;
}

/* Text a client sent, for the log: control bytes, bytes from 0x7f up, '\\'
 * and (with spaces set) ' ' become \xNN, so that a request can neither
 * drive the terminal (ESC sequences, backspace) nor forge a line's fields. */
static const char *escaped(const char *s, int spaces, char *out, size_t n) {
  size_t o = 0;
  for (; *s && o + 5 <= n; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f || c == '\\' || (spaces && c == ' ')) o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  out[o] = 0;
  return out;
}

static void log_access(void *user, const serve_access *a) {
  (void)user;
  char when[32];
  time_t t = time(NULL);
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  char status[8] = "-";
  if (a->status) snprintf(status, sizeof status, "%d", a->status);
  char images[32] = "";
  if (a->n_images) snprintf(images, sizeof images, " %d image%s", a->n_images, a->n_images == 1 ? "" : "s");
  char method[64], path[1024], error[2048];
  fprintf(stderr, "%s %s %s %s %.1f ms%s%s%s\n", when, escaped(a->method, 1, method, sizeof method),
          escaped(a->path, 1, path, sizeof path), status, a->ms, images, a->error[0] ? " - " : "",
          escaped(a->error, 0, error, sizeof error));
}

static void log_daemon(void *user, const char *msg) {
  (void)user;
  char text[2048];
  fprintf(stderr, "mskx serve: %s\n", escaped(msg, 0, text, sizeof text));
}

int cmd_serve(int argc, char **argv) {
  serve_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  /* Blocked before any thread exists (model loading may start OpenMP
   * workers), so that only sigwait below ever receives these signals. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);
  mskx_err e = {0, ""};
  mskx_load_options lo;
  mskx_load_options_default(&lo);
  lo.threads = a.cfg.compute_threads;
  /* The scheduler's batches run as one forward pass; a derived --max-batch
   * needs room for the start-up probe's batch trial (serve.h). */
  lo.max_batch = a.cfg.max_batch ? a.cfg.max_batch : SERVE_DEFAULT_MAX_BATCH;
  lo.precision = a.bf16; /* the same values as MSKX_PRECISION_* */
  lo.max_pixels = a.max_pixels;
  lo.max_decode_bytes = a.decode_budget;
  lo.decode_wait_ms = a.decode_wait ? (int)a.decode_wait : -1;   /* the library's 0 means its default */
  lo.dicom_window = strcmp(a.dicom.window, "auto") ? a.dicom.window : NULL;
  lo.dicom_first_frame = cli_dicom_args_options(&a.dicom).frames == DICOM_FRAMES_FIRST;
  mskx_model *m = NULL;
  if (mskx_model_load(a.model, &lo, &m, &e)) return cli_error("serve", &e);
  struct mskx_model_info info;
  mskx_model_info(m, &info);
  a.cfg.on_access = a.quiet ? NULL : log_access;
  a.cfg.on_log = log_daemon;
  server *s = NULL;
  if (server_start(m, &a.cfg, &s, &e)) {
    mskx_model_free(m);
    return cli_error("serve", &e);
  }
  const char *host = a.cfg.host && a.cfg.host[0] ? a.cfg.host : SERVE_DEFAULT_HOST;
  int v6 = strchr(host, ':') != NULL;
  serve_queue_info qi;
  server_queue_info(s, &qi);
  if (qi.note[0]) fprintf(stderr, "mskx serve: could not time a probe study (%s)\n", qi.note);
  if (qi.derived)
    fprintf(stderr, "mskx serve: queue %d studies (default: %.1f s of work at %.3f ms per image, %d scheduler%s, "
            "%d-image studies, within %d..%d; --queue sets it)\n", qi.capacity, qi.work_s, qi.per_image_s * 1e3,
            qi.schedulers, qi.schedulers == 1 ? "" : "s", SERVE_QUEUE_STUDY_IMAGES, SERVE_QUEUE_MIN, SERVE_QUEUE_MAX);
  else
    fprintf(stderr, "mskx serve: queue %d studies (--queue; %.3f ms per image measured at start)\n", qi.capacity,
            qi.per_image_s * 1e3);
  if (qi.max_batch_derived && qi.batch_images)
    fprintf(stderr, "mskx serve: max batch %d (default: a pass of %d images %.3f ms per image, one %d-image study "
            "%.3f ms: %s %.0f%% faster, %s; --max-batch sets it)\n", qi.max_batch, qi.batch_images,
            qi.batch_per_image_s * 1e3, SERVE_QUEUE_STUDY_IMAGES, qi.per_image_s * 1e3,
            qi.max_batch > SERVE_QUEUE_STUDY_IMAGES ? "at least" : "not", 100 * SERVE_BATCH_GAIN,
            qi.max_batch > SERVE_QUEUE_STUDY_IMAGES ? "studies gathered" : "one study per pass");
  else if (qi.max_batch_derived)
    fprintf(stderr, "mskx serve: max batch %d (default: %s; one study per pass; --max-batch sets it)\n", qi.max_batch,
            qi.batch_note[0] ? qi.batch_note : qi.note[0] ? "the probe failed" : "no batch trial");
  else
    fprintf(stderr, "mskx serve: max batch %d (--max-batch)\n", qi.max_batch);
  fprintf(stderr, "mskx serve: %s %s (%s), listening on http://%s%s%s:%d/\n", info.kind_name, info.path, info.arch,
          v6 ? "[" : "", host, v6 ? "]" : "", server_port(s));
  int sig = 0;
  sigwait(&stop, &sig);
  fprintf(stderr, "mskx serve: %s received, finishing requests in progress (up to %d s)\n",
          sig == SIGINT ? "SIGINT" : "SIGTERM", a.grace);
  int cut = server_stop(s, (double)a.grace);
  mskx_model_free(m);
  if (cut) fprintf(stderr, "mskx serve: %d request(s) were still running at the deadline and were cut\n", cut);
  fprintf(stderr, "mskx serve: stopped\n");
  return 0;
}
