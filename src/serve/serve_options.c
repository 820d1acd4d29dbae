/* The options of serve_config as a table (core/options.h): `mskx serve`
 * parses and prints them from these rows, and serve_config_default takes
 * its defaults from them. */
#include <stddef.h>
#include <stdint.h>
#include "serve/serve.h"

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size_t fields are OPT_U64 rows");

#define FLD(m) .off = offsetof(serve_config, m), .size = sizeof(((serve_config *)0)->m)
#define G_LIMITS "Limits and scheduling"
#define G_CONN "Connections"

const opt_spec serve_options[] = {
    {.key = "port", .flag = "port", .type = OPT_INT, FLD(port), .lo = 0, .hi = 65535, .def = SERVE_DEFAULT_PORT,
     .arg = "N", .group = "Service", .help = "TCP port (0 = any free port, printed at start)"},
    {.key = "threads", .flag = "threads", .type = OPT_INT, FLD(compute_threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N",
     .group = "Service", .flags = OPT_HIDE_DEFAULT, .help = "compute threads per prediction (default: all cores)"},
    {.key = "max_body", .flag = "max-body", .type = OPT_U64, FLD(max_body), .lo = 1, .hi = 17179869184.0,
     .def = SERVE_DEFAULT_MAX_BODY, .arg = "BYTES", .group = G_LIMITS, .help = "largest request body; larger get 413"},
    {.key = "max_images", .flag = "max-images", .type = OPT_INT, FLD(max_images), .lo = 1, .hi = 4096,
     .def = SERVE_DEFAULT_MAX_IMAGES, .arg = "N", .group = G_LIMITS, .help = "images per study; more get 413"},
    {.key = "queue", .flag = "queue", .type = OPT_INT, FLD(queue), .lo = 1, .hi = 65536, .def = SERVE_DEFAULT_QUEUE,
     .arg = "N", .group = G_LIMITS, .flags = OPT_HIDE_DEFAULT,
     .help = "studies admitted at once, once their body is complete:\n"
             "decoded on their connection, they wait for the\n"
             "scheduler; more get 503 with Retry-After (default:\n"
             "about 10 s of work, from the model's speed measured at\n"
             "start: floor(min(10 s, timeout / 2) x schedulers /\n"
             "(3 images x seconds per image)), within 32..128;\n"
             "printed at start and in /v1/health/ready)"},
    {.key = "timeout_ms", .flag = "timeout-ms", .type = OPT_INT, FLD(timeout_ms), .lo = 1, .hi = SERVE_MAX_TIMEOUT_MS,
     .def = SERVE_DEFAULT_TIMEOUT_MS, .arg = "MS", .group = G_LIMITS,
     .help = "a prediction's deadline from its request's start (a\n"
             "client may send X-Request-Timeout-Ms); a queued study\n"
             "past it, or one that cannot meet it, gets 503 with Retry-After"},
    {.key = "max_batch", .flag = "max-batch", .type = OPT_INT, FLD(max_batch), .lo = 1, .hi = 4096, .def = 0,
     .arg = "N", .group = G_LIMITS, .flags = OPT_HIDE_DEFAULT,
     .help = "images the scheduler gathers into one forward pass\n"
             "(whole studies; a larger study runs in passes of N)\n"
             "(default: derived at start: 16 when a pass of five\n"
             "3-image studies computes at least 5% faster per image\n"
             "than one study alone, else 3, one study per pass;\n"
             "printed at start and in /v1/health/ready)"},
    {.key = "max_delay_ms", .flag = "max-delay-ms", .type = OPT_INT, FLD(max_delay_ms), .lo = 0, .hi = 60000,
     .def = SERVE_DEFAULT_MAX_DELAY_MS, .arg = "MS", .group = G_LIMITS,
     .help = "how long a queued study waits for others to fill a\nbatch (0: take what is queued)"},
    {.key = "max_buffered", .flag = "max-buffered", .type = OPT_U64, FLD(max_buffered), .lo = 1,
     .hi = 1099511627776.0, .def = SERVE_DEFAULT_MAX_BUFFERED, .arg = "BYTES", .group = G_LIMITS,
     .help = "request bodies held in memory, all requests together;\na body that would pass it gets 503"},
    {.key = "max_concurrent", .flag = "max-concurrent", .type = OPT_INT, FLD(max_concurrent), .lo = 1, .hi = 4096,
     .def = SERVE_DEFAULT_MAX_CONCURRENT, .arg = "N", .group = G_LIMITS,
     .help = "batches computed at once, at most the model's prediction\ncontexts (cores / --threads)"},
    {.key = "max_connections", .flag = "max-connections", .type = OPT_INT, FLD(max_connections), .lo = 1, .hi = 65536,
     .def = SERVE_DEFAULT_MAX_CONNECTIONS, .arg = "N", .group = G_CONN, .help = "open connections, one thread each"},
    {.key = "max_per_ip", .flag = "max-per-ip", .type = OPT_INT, FLD(max_per_ip), .lo = 0, .hi = 65536,
     .def = SERVE_DEFAULT_MAX_PER_IP, .arg = "N", .group = G_CONN,
     .help = "open connections from one client address; more are\nclosed at once (0 = no limit)"},
    {.key = "header_timeout_s", .flag = "header-timeout", .type = OPT_INT, FLD(header_timeout_s), .lo = 1, .hi = 86400,
     .def = SERVE_DEFAULT_HEADER_TIMEOUT, .arg = "S", .group = G_CONN,
     .help = "seconds for a request's headers to arrive, from the\nconnection's start or the previous answer"},
    {.key = "min_rate", .flag = "min-rate", .type = OPT_DOUBLE, FLD(min_rate), .lo = 0, .hi = 1099511627776.0,
     .def = SERVE_DEFAULT_MIN_RATE, .arg = "BYTES", .group = G_CONN,
     .help = "a body must arrive within --header-timeout seconds plus\none second per BYTES bytes (0 = no limit)"},
    {.key = "timeout_s", .flag = "timeout", .type = OPT_INT, FLD(timeout_s), .lo = 1, .hi = 86400,
     .def = SERVE_DEFAULT_TIMEOUT, .arg = "S", .group = G_CONN, .help = "seconds a connection may stay idle"},
};

const size_t serve_options_count = sizeof serve_options / sizeof serve_options[0];
