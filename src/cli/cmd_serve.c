/* mskx serve: the HTTP service and web viewer (src/serve) around one loaded
 * model; prints the access log and stops gracefully on SIGINT/SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "serve/serve.h"

/* How long a prediction waits for decode budget before its 503. */
#define SERVE_DECODE_WAIT_MS 2000

static const char *const usage =
    "usage: mskx serve --model M [options]\n"
    "\n"
    "Serves predictions over HTTP: POST /v1/predict (multipart/form-data with the\n"
    "images of one study, or one raw image/png or image/jpeg body; ?part=XR_WRIST,\n"
    "?cam=1 for heatmap overlays), GET /v1/health, /v1/model, /metrics (Prometheus),\n"
    "and a web viewer at /. One access-log line per request goes to stderr.\n"
    "SIGINT/SIGTERM stop accepting, let requests in progress finish, and exit 0.\n"
    "\n"
    "  --model FILE           model (.safetensors), per-part bundle or ensemble (.json)\n"
    "  --host ADDR            address to bind (default 127.0.0.1: this machine only)\n"
    "  --port N               TCP port (default 8080; 0 = any free port, printed at start)\n"
    "  --threads N            compute threads per prediction (default: all cores)\n"
    "  --precision fp32|bf16  compute precision (default fp32)\n"
    "  --max-body BYTES       largest request body; larger get 413 (default 67108864)\n"
    "  --max-images N         images per study; more get 413 (default 16)\n"
    "  --max-pixels N         pixels per image, checked before decoding; more get 413\n"
    "                         (default 268435456 = 16384 x 16384)\n"
    "  --queue N              studies admitted at once, once their body is complete:\n"
    "                         decoded on their connection, they wait for the\n"
    "                         scheduler; more get 503 with Retry-After (default:\n"
    "                         about 10 s of work, from the model's speed measured at\n"
    "                         start: floor(min(10 s, timeout / 2) x schedulers /\n"
    "                         (3 images x seconds per image)), within 32..128;\n"
    "                         printed at start and in /v1/health/ready)\n"
    "  --timeout-ms MS        a prediction's deadline from its request's start (a\n"
    "                         client may send X-Request-Timeout-Ms); a queued study\n"
    "                         past it, or one that cannot meet it, gets 503 with\n"
    "                         Retry-After (default 30000)\n"
    "  --max-batch N          images the scheduler gathers into one forward pass\n"
    "                         (whole studies; default 16)\n"
    "  --max-delay-ms MS      how long a queued study waits for others to fill a\n"
    "                         batch (default 0: take what is queued)\n"
    "  --max-buffered BYTES   request bodies held in memory, all requests together;\n"
    "                         a body that would pass it gets 503 (default 536870912)\n"
    "  --max-concurrent N     batches computed at once, at most the model's prediction\n"
    "                         contexts (cores / --threads) (default 8)\n"
    "  --decode-budget BYTES  memory that image decoding may hold at once across\n"
    "                         all predictions; a request that finds it spent for\n"
    "                         --decode-wait gets 503 with Retry-After, an image\n"
    "                         that alone needs more gets 413 (default: a quarter\n"
    "                         of RAM)\n"
    "  --decode-wait MS       how long a prediction waits for decode budget\n"
    "                         (default 2000; 0 = answer 503 at once)\n"
    "  --max-connections N    open connections, one thread each (default 256)\n"
    "  --max-per-ip N         open connections from one client address; more are\n"
    "                         closed at once (default 32; 0 = no limit)\n"
    "  --header-timeout S     seconds for a request's headers to arrive, from the\n"
    "                         connection's start or the previous answer (default 10)\n"
    "  --min-rate BYTES       a body must arrive within --header-timeout seconds plus\n"
    "                         one second per BYTES bytes (default 8192; 0 = no limit)\n"
    "  --timeout S            seconds a connection may stay idle (default 30)\n"
    "  --grace S              seconds shutdown waits for requests in progress (default 30)\n"
    "  --quiet                no access log\n" CLI_DICOM_HELP
    "  -h, --help             this help\n";

typedef struct serve_args {
  const char *model;
  int threads, bf16, quiet;
  long grace;
  unsigned long long max_pixels, decode_budget;
  long decode_wait;
  const char *dicom_window;
  dicom_options dicom;
  serve_config cfg;
} serve_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},          {"host", required_argument, 0, 'H'},
      {"port", required_argument, 0, 'p'},           {"threads", required_argument, 0, 'T'},
      {"precision", required_argument, 0, 'P'},      {"max-body", required_argument, 0, 'B'},
      {"max-images", required_argument, 0, 'I'},     {"max-pixels", required_argument, 0, 'X'},
      {"max-concurrent", required_argument, 0, 'C'}, {"max-connections", required_argument, 0, 'N'},
      {"timeout", required_argument, 0, 't'},        {"grace", required_argument, 0, 'g'},
      {"max-buffered", required_argument, 0, 'M'},   {"max-per-ip", required_argument, 0, 'i'},
      {"header-timeout", required_argument, 0, 'D'}, {"min-rate", required_argument, 0, 'R'},
      {"quiet", no_argument, 0, 'q'},                {"help", no_argument, 0, 'h'},
      {"decode-budget", required_argument, 0, 'U'},  {"decode-wait", required_argument, 0, 'W'},
      {"queue", required_argument, 0, 'Q'},          {"timeout-ms", required_argument, 0, 'd'},
      {"max-batch", required_argument, 0, 'b'},      {"max-delay-ms", required_argument, 0, 'y'},
      CLI_DICOM_OPTIONS,                             {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  serve_config_default(&a->cfg);
  a->grace = SERVE_DEFAULT_GRACE;
  a->decode_wait = SERVE_DECODE_WAIT_MS;
  long v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
      case 'm': a->model = optarg; break;
      case 'H': a->cfg.host = optarg; break;
      case 'p': bad = cli_parse_int("serve", "port", optarg, 0, 65535, &v); a->cfg.port = (int)v; break;
      case 'T': bad = cli_parse_int("serve", "threads", optarg, 1, 1024, &v); a->threads = (int)v; break;
      case 'P':
        if (cli_parse_choice("serve", "precision", optarg, "fp32", "bf16", &a->bf16)) return 2;
        break;
      case 'B': bad = cli_parse_int("serve", "max-body", optarg, 1, 1L << 34, &v); a->cfg.max_body = (size_t)v; break;
      case 'I': bad = cli_parse_int("serve", "max-images", optarg, 1, 4096, &v); a->cfg.max_images = (int)v; break;
      case 'X': bad = cli_parse_int("serve", "max-pixels", optarg, 1, 1L << 40, &v); a->max_pixels = (unsigned long long)v; break;
      case 'C': bad = cli_parse_int("serve", "max-concurrent", optarg, 1, 4096, &v); a->cfg.max_concurrent = (int)v; break;
      case 'N': bad = cli_parse_int("serve", "max-connections", optarg, 1, 65536, &v); a->cfg.max_connections = (int)v; break;
      case 't': bad = cli_parse_int("serve", "timeout", optarg, 1, 86400, &v); a->cfg.timeout_s = (int)v; break;
      case 'g': bad = cli_parse_int("serve", "grace", optarg, 0, 86400, &v); a->grace = v; break;
      case 'M': bad = cli_parse_int("serve", "max-buffered", optarg, 1, 1L << 40, &v); a->cfg.max_buffered = (size_t)v; break;
      case 'i': bad = cli_parse_int("serve", "max-per-ip", optarg, 0, 65536, &v); a->cfg.max_per_ip = (int)v; break;
      case 'D': bad = cli_parse_int("serve", "header-timeout", optarg, 1, 86400, &v); a->cfg.header_timeout_s = (int)v; break;
      case 'R': bad = cli_parse_int("serve", "min-rate", optarg, 0, 1L << 40, &v); a->cfg.min_rate = (double)v; break;
      case 'U': bad = cli_parse_int("serve", "decode-budget", optarg, 1, 1L << 50, &v); a->decode_budget = (unsigned long long)v; break;
      case 'W': bad = cli_parse_int("serve", "decode-wait", optarg, 0, 3600000, &a->decode_wait); break;
      case 'Q': bad = cli_parse_int("serve", "queue", optarg, 1, 65536, &v); a->cfg.queue = (int)v; break;
      case 'd': bad = cli_parse_int("serve", "timeout-ms", optarg, 1, SERVE_MAX_TIMEOUT_MS, &v); a->cfg.timeout_ms = (int)v; break;
      case 'b': bad = cli_parse_int("serve", "max-batch", optarg, 1, 4096, &v); a->cfg.max_batch = (int)v; break;
      case 'y': bad = cli_parse_int("serve", "max-delay-ms", optarg, 0, 60000, &v); a->cfg.max_delay_ms = (int)v; break;
      case 'q': a->quiet = 1; break;
      case 'h': fputs(usage, stdout); return 0;
      case CLI_DICOM_OPT_WINDOW: case CLI_DICOM_OPT_FRAMES:
        if (cli_dicom_option("serve", c, optarg, &a->dicom)) return 2;
        if (c == CLI_DICOM_OPT_WINDOW) a->dicom_window = optarg;
        break;
      default: return cli_usage_error("serve");
    }
    if (bad) return 2;
  }
  if (optind < argc) return cli_errorf("serve", "unexpected argument '%s' (see --help)", argv[optind]) + 1;
  if (!a->model) return cli_errorf("serve", "--model is required (see --help)") + 1;
  a->cfg.compute_threads = a->threads;
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
  lo.threads = a.threads;
  lo.max_batch = a.cfg.max_batch;   /* the scheduler's batches run as one forward pass */
  lo.precision = a.bf16 ? MSKX_PRECISION_BF16 : MSKX_PRECISION_FP32;
  lo.max_pixels = a.max_pixels;
  lo.max_decode_bytes = a.decode_budget;
  lo.decode_wait_ms = a.decode_wait ? (int)a.decode_wait : -1;   /* the library's 0 means its default */
  lo.dicom_window = a.dicom_window;
  lo.dicom_first_frame = a.dicom.frames == DICOM_FRAMES_FIRST;
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
  fprintf(stderr, "mskx serve: %s %s (%s), listening on http://%s%s%s:%d/\n", info.kind_name, info.path, info.arch,
          v6 ? "[" : "", host, v6 ? "]" : "", server_port(s));
  int sig = 0;
  sigwait(&stop, &sig);
  fprintf(stderr, "mskx serve: %s received, finishing requests in progress (up to %ld s)\n",
          sig == SIGINT ? "SIGINT" : "SIGTERM", a.grace);
  int cut = server_stop(s, (double)a.grace);
  mskx_model_free(m);
  if (cut) fprintf(stderr, "mskx serve: %d request(s) were still running at the deadline and were cut\n", cut);
  fprintf(stderr, "mskx serve: stopped\n");
  return 0;
}
