/* The HTTP service (libmicrohttpd): POST /v1/predict, GET /v1/health,
 * /v1/model, /metrics and the web viewer at /. The library never prints:
 * access lines and daemon errors go to callbacks the caller installs. */
#ifndef MSKX_SERVE_SERVE_H
#define MSKX_SERVE_SERVE_H
#include <stddef.h>
#include "core/options.h"
#include "mskx.h"

#define SERVE_DEFAULT_HOST "127.0.0.1"
#define SERVE_DEFAULT_PORT 8080
#define SERVE_DEFAULT_MAX_BODY (64u << 20)     /* bytes per request */
#define SERVE_DEFAULT_MAX_IMAGES 16            /* per study */
#define SERVE_DEFAULT_MAX_CONCURRENT 8         /* batches computed at once (at most the model's contexts) */
#define SERVE_DEFAULT_QUEUE 0                  /* studies admitted: 0 = derived (serve_queue_default) */
#define SERVE_DEFAULT_TIMEOUT_MS 30000         /* a prediction's deadline from its request's start */
#define SERVE_MAX_TIMEOUT_MS 3600000           /* the longest deadline a client may ask for */
#define SERVE_DEFAULT_MAX_BATCH 16             /* network inputs the derived --max-batch gathers
                                                  when batching pays (serve_max_batch_default) */
#define SERVE_DEFAULT_MAX_DELAY_MS 0           /* a batch waits this long for more studies */
#define SERVE_DEFAULT_MAX_CONNECTIONS 256      /* one thread each */
#define SERVE_DEFAULT_TIMEOUT 30               /* seconds a connection may stay idle */
#define SERVE_DEFAULT_HEADER_TIMEOUT 10        /* seconds for a request's headers */
#define SERVE_DEFAULT_MIN_RATE 8192            /* body bytes/s after the header timeout */
#define SERVE_DEFAULT_MAX_PER_IP 32            /* open connections per client address */
#define SERVE_DEFAULT_MAX_BUFFERED (512u << 20) /* request body bytes held, all requests */
#define SERVE_DEFAULT_GRACE 30                 /* seconds shutdown waits for requests */
#define SERVE_RETRY_AFTER 1                    /* seconds, in 503 answers not about the queue's load */
/* Bytes of a refused request's body read and dropped before its answer (so
 * that a client that sends its whole body before reading still sees it);
 * past this (or --max-body) the connection is closed instead: a body with
 * no Content-Length would otherwise be drained for as long as it trickles. */
#define SERVE_DRAIN_MAX (16u << 20)
/* A Retry-After for the queue's load is its estimated wait, at most this
 * (the default deadline: a client told to wait longer would rather go to
 * another replica). */
#define SERVE_RETRY_AFTER_MAX 30

/* The default queue holds about this many seconds of work ("a few seconds
 * of work", issue 16): long enough to absorb a worklist's burst, short
 * enough that a study admitted last is answered well within its deadline. */
#define SERVE_QUEUE_WORK_S 10.0
/* Images of the study the rule assumes: MURA's studies average 2.7 images
 * (40,561 images in 14,863 studies). */
#define SERVE_QUEUE_STUDY_IMAGES 3
/* Bounds of the derived queue: at least a burst of 32 studies (the 32
 * clients of issue 16's test) whatever the model's speed (the deadline
 * check refuses what would not be answered in time); at most 128 studies,
 * which bounds the memory of queued inputs (docs/serve.md, Memory). */
#define SERVE_QUEUE_MIN 32
#define SERVE_QUEUE_MAX 128

/* The derived --max-batch gathers studies into one forward pass only when a
 * pass of SERVE_DEFAULT_MAX_BATCH's worth of whole studies computes at least
 * this much faster per image than one study alone: on CPUs where larger
 * batches are no faster per image (densenet169 at 320 px on a 2-core Xeon:
 * 17.9 images/s at batch 3, 17.0 at 15), gathering only adds latency and a
 * network planned (seconds, and memory) for each new batch size; 5% is
 * above the spread of the probe's timings. */
#define SERVE_BATCH_GAIN 0.05
/* The batch trial is skipped (one study per pass) when one probe study takes
 * longer than this: its timed runs would hold up the start by tens of
 * seconds, and a network that slow already keeps the CPU busy. */
#define SERVE_BATCH_PROBE_MAX_S 1.0
/* Timed runs of each probe (after one that plans the network); the fastest
 * counts, so that one disturbed run does not decide. */
#define SERVE_PROBE_RUNS 2

/* One finished request, for the access log. status 0: no response was sent
 * (the client left or timed out; `error` says which). */
typedef struct serve_access {
  const char *method, *path;
  int status;
  double ms;
  int n_images;          /* images predicted, 0 otherwise */
  const char *error;     /* the error sent in a 4xx/5xx answer, else "" */
} serve_access;

typedef struct serve_config {
  const char *host;          /* numeric address or name to bind; NULL = 127.0.0.1 */
  int port;                  /* 0 = any free port (see server_port) */
  size_t max_body;           /* bytes; larger bodies get 413 */
  int max_images;            /* images per study; more get 413 */
  int max_concurrent;        /* batches computed at once (scheduler threads; at most
                                the model's prediction contexts) */
  int queue;                 /* studies admitted at once (their body complete): being
                                decoded, waiting or computed; more get 503 + Retry-After;
                                0 = derived from the model's speed (serve_queue_default) */
  int timeout_ms;            /* a prediction's deadline, from its request's start; a
                                client's X-Request-Timeout-Ms may shorten or lengthen it
                                (up to SERVE_MAX_TIMEOUT_MS). Past it, a queued request
                                gets 503 + Retry-After */
  int max_batch;             /* network inputs the scheduler gathers into one forward
                                pass (whole studies; a larger study goes alone, in
                                passes of at most max_batch); 0 = derived at start
                                (serve_max_batch_default). The model must be loaded
                                with mskx_load_options.max_batch = max_batch, or
                                SERVE_DEFAULT_MAX_BATCH when 0 */
  int max_delay_ms;          /* how long the oldest queued study waits for others to
                                fill a batch; 0 = take what is queued now */
  int max_connections;       /* open connections (a thread each); more are refused */
  int timeout_s;             /* idle seconds before a connection is closed */
  int header_timeout_s;      /* a request's headers must be complete this many seconds
                                after the connection is ready for it (opened, or the
                                previous answer sent); else it is closed */
  double min_rate;           /* a body must arrive within header_timeout_s seconds
                                plus one second per min_rate bytes; 0 = no limit */
  int max_per_ip;            /* open connections from one client address; 0 = no limit */
  size_t max_buffered;       /* request body bytes held in memory, all requests
                                together; a body that would pass it gets 503 */
  int compute_threads;       /* OpenMP threads per prediction; 0 = the runtime's default */
  void (*on_access)(void *user, const serve_access *a);
  void (*on_log)(void *user, const char *message);   /* daemon errors, slow clients cut */
  void *log_user;
} serve_config;

/* The numeric options of serve_config, one row each (core/options.h):
 * flag, range, default (the SERVE_DEFAULT_* above), help line. */
extern const opt_spec serve_options[];
extern const size_t serve_options_count;

/* The table's defaults, host SERVE_DEFAULT_HOST, no callbacks. */
void serve_config_default(serve_config *c);

typedef struct server server;

/* The queue a server gets when serve_config.queue is 0: the studies of
 * SERVE_QUEUE_STUDY_IMAGES images its schedulers compute in
 * min(SERVE_QUEUE_WORK_S, half the deadline) seconds at per_image_s
 * seconds per network input per scheduler thread, within SERVE_QUEUE_MIN..
 * SERVE_QUEUE_MAX (SERVE_QUEUE_MIN when per_image_s is not positive):
 *   floor(min(10 s, timeout / 2) * schedulers / (3 * per_image_s)). */
int serve_queue_default(double per_image_s, int schedulers, int timeout_ms);

/* The --max-batch a server gets when serve_config.max_batch is 0, from the
 * compute seconds per image of one probe study of SERVE_QUEUE_STUDY_IMAGES
 * images (study_per_image_s) and of a pass of SERVE_DEFAULT_MAX_BATCH's
 * worth of whole such studies (batch_per_image_s): SERVE_DEFAULT_MAX_BATCH
 * (gather studies) when batch_per_image_s <= (1 - SERVE_BATCH_GAIN) *
 * study_per_image_s, else SERVE_QUEUE_STUDY_IMAGES (one study per pass),
 * also when either is not positive (not measured). */
int serve_max_batch_default(double study_per_image_s, double batch_per_image_s);

/* Retry-After seconds for a study refused because of the queue's load
 * (full, or its deadline cannot be met): the estimated wait for the work
 * queued now, queued_images at per_image_s spread over the schedulers,
 * rounded up, within 1..SERVE_RETRY_AFTER_MAX (1 when not estimated). */
int serve_retry_after(double per_image_s, int queued_images, int schedulers);

/* How the server's queue and batches were sized. */
typedef struct serve_queue_info {
  int capacity;          /* studies admitted at once */
  int derived;           /* 1: serve_queue_default of the figures below; 0: serve_config.queue */
  double per_image_s;    /* compute seconds per network input measured at start (a
                            synthetic study of SERVE_QUEUE_STUDY_IMAGES images at the
                            model's size, the fastest of SERVE_PROBE_RUNS timed runs after
                            one that plans); 0 when it could not be */
  double work_s;         /* the seconds of work the rule aimed at */
  int schedulers;        /* scheduler threads (batches computed at once) */
  char note[256];        /* why per_image_s is 0, else "" */
  int max_batch;         /* network inputs per forward pass (--max-batch) */
  int max_batch_derived; /* 1: serve_max_batch_default of the figures below; 0: serve_config.max_batch */
  int batch_images;      /* images of the batch trial (whole probe studies), 0 when not run */
  double batch_per_image_s; /* its compute seconds per image; 0 when not run */
  char batch_note[160];  /* why the trial did not run, else "" */
} serve_queue_info;

/* Starts serving m (which must outlive the server) on its own threads.
 * Before it listens, it predicts a synthetic study (planning the network,
 * then timing it) to size the queue and seed the deadline estimate, and
 * with a derived max_batch a pass of several such studies too
 * (serve_queue_info). */
int server_start(mskx_model *m, const serve_config *c, server **out, mskx_err *e);
void server_queue_info(const server *s, serve_queue_info *out);
/* The port actually bound. */
int server_port(const server *s);
/* Graceful stop: stops accepting, waits up to grace_s seconds for requests
 * in flight to finish, then stops the daemon and frees s. Returns the number
 * of requests still in flight at the deadline (cut), 0 normally. */
int server_stop(server *s, double grace_s);

/* The viewer page (src/serve/viewer.html, embedded by tools/embed_viewer.sh). */
extern const char serve_viewer_html[];
extern const size_t serve_viewer_html_len;

#endif
