/* The prediction queue of `mskx serve`: requests whose body is complete are
 * decoded on their own connection thread, then wait (bounded in number and
 * by each request's deadline) for a scheduler thread that gathers queued
 * studies into shared forward passes (dynamic batching). */
#ifndef MSKX_SERVE_QUEUE_H
#define MSKX_SERVE_QUEUE_H
#include <pthread.h>
#include "mskx.h"
#include "serve/serve.h"

typedef struct server server;
typedef struct job job;

/* Why a request was refused or dropped (metrics labels, serve_queue.c). */
enum reject_reason {
  REJECT_QUEUE_FULL = 0,   /* --queue studies already admitted */
  REJECT_DEADLINE,         /* the deadline passed in the queue, or the estimate says it would */
  REJECT_CLIENT_GONE,      /* the client closed its connection while queued: never computed */
  REJECT_MEMORY,           /* request bodies held reached --max-buffered */
  REJECT_SHUTDOWN,         /* the server is stopping */
  REJECT_DECODE_BUDGET,    /* decoding memory spent (MSKX_EBUSY from the library) */
  REJECT_REASONS
};
extern const char *const reject_reason_names[REJECT_REASONS];

typedef struct serve_queue {
  pthread_mutex_t mu;
  pthread_cond_t work;      /* jobs queued, or stopping */
  pthread_cond_t done;      /* a batch finished */
  job *head, *tail;         /* decoded studies waiting, oldest first */
  int admitted;             /* studies admitted: decoding, queued or computing (<= cap) */
  int queued, queued_images;/* waiting in the list */
  int cap;
  int max_batch;            /* network inputs per pass: --max-batch, or derived by the probe */
  int stopping;
  double per_image_s;       /* moving average of compute seconds per input, 0 = unknown */
  serve_queue_info info;    /* how cap was chosen (never changes after queue_start) */
  pthread_t *workers;
  int n_workers, started;
  int probe_taken, probe_done;   /* the start-up probe: taken by the first scheduler, finished */
} serve_queue;

/* Sizes the queue (times a synthetic study when cfg.queue is 0, see
 * serve_queue_default) and starts the scheduler threads (one per
 * prediction context the model may use, at most max_concurrent). */
int queue_start(server *s, mskx_err *e);
/* Wakes and joins the scheduler threads (a batch being computed finishes);
 * requests still queued are answered 503. */
void queue_stop(server *s);
/* Frees the queue, once no connection thread can be inside queue_predict. */
void queue_destroy(server *s);
/* Predicts one study through the queue, on the connection's thread: decodes
 * it, waits for its batch, and returns the result or an error (MSKX_EBUSY
 * for refusals, with *reason set, and for the queue's load (full, deadline)
 * *retry_after, the queue's estimated wait in seconds (serve_retry_after),
 * else 0; MSKX_EIO with *reason REJECT_CLIENT_GONE when the client left).
 * deadline is absolute (now_seconds()); fd is the client's socket, watched
 * while queued. */
int queue_predict(server *s, const mskx_encoded_image *imgs, int n, const char *part, const mskx_predict_options *po,
                  double deadline, int fd, mskx_result **out, int *reason, int *retry_after, mskx_err *e);
/* Whether the queue is full now (a study would be refused); *retry_after
 * then gets the queue's estimated wait in seconds (else 0), *cap its
 * capacity. */
int queue_full(server *s, int *retry_after, int *cap);
/* The queue's estimated wait now, as a Retry-After (serve_retry_after). */
int queue_retry_after(server *s);
/* Queue length and capacity now. */
void queue_state(server *s, int *length, int *cap);

#endif
