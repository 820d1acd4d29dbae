/* Server metrics in the Prometheus text exposition format (version 0.0.4):
 * requests by status code, a prediction latency histogram, images
 * processed, requests in flight. Thread-safe. */
#ifndef MSKX_SERVE_METRICS_H
#define MSKX_SERVE_METRICS_H
#include <pthread.h>
#include <stddef.h>

/* Upper bounds (seconds) of the prediction latency buckets. */
#define METRICS_N_BUCKETS 12
/* Routes, in the order of serve_internal.h's enum route (metrics.c names them). */
#define METRICS_ROUTES 8
/* Request outcomes: answered (status below 400), refused (4xx, and 503: the
 * server declined), failed (other 5xx, or no answer at all). */
enum { OUTCOME_ANSWERED = 0, OUTCOME_REFUSED, OUTCOME_FAILED, OUTCOMES };
/* Reasons a prediction is refused or dropped (queue.h's enum reject_reason). */
#define METRICS_REASONS 6
/* Batch size buckets (network inputs per batch): 1, 2, 4, ... 256, +Inf. */
#define METRICS_BATCH_BUCKETS 9

typedef struct histogram {
  unsigned long long bucket[METRICS_N_BUCKETS + 1];  /* last: +Inf */
  double sum;
  unsigned long long count;
} histogram;

typedef struct serve_metrics {
  pthread_mutex_t mu;
  unsigned long long by_status[600];   /* index: HTTP status code */
  unsigned long long aborted;          /* requests that ended without a response */
  unsigned long long bucket[METRICS_N_BUCKETS + 1];  /* last: +Inf */
  double latency_sum;
  unsigned long long latency_count;
  unsigned long long images;
  unsigned long long rejected[METRICS_REASONS];
  histogram by_route[METRICS_ROUTES][OUTCOMES];   /* request latency */
  histogram queue_wait;                /* seconds from queued (decoded) to taken by a batch */
  unsigned long long batch_bucket[METRICS_BATCH_BUCKETS + 1];
  double batch_sum;
  unsigned long long batch_count;
  unsigned long long cut_headers;      /* connections closed: headers too slow */
  unsigned long long cut_bodies;       /* connections closed: body below the minimum rate */
  double started;                      /* now_seconds() at init */
} serve_metrics;

void metrics_init(serve_metrics *m);
void metrics_destroy(serve_metrics *m);
/* A request of route (enum route) finished after seconds: status 0 means
 * it ended without a response. */
void metrics_request(serve_metrics *m, int route, int status, double seconds);
/* A prediction answered: its latency and image count. */
void metrics_prediction(serve_metrics *m, double seconds, int n_images);
/* A prediction refused or dropped, by reason (enum reject_reason). */
void metrics_reject(serve_metrics *m, int reason);
void metrics_queue_wait(serve_metrics *m, double seconds);
/* A batch of images network inputs computed. */
void metrics_batch(serve_metrics *m, int images);
/* Connections the watchdog closed, by reason. */
void metrics_cut(serve_metrics *m, int headers, int bodies);
/* The exposition text, malloc'd (NULL when out of memory); in_flight is
 * the server's count of requests in progress, buffered the bytes of request
 * bodies it holds, queue_length the predictions admitted of queue_cap. */
char *metrics_render(serve_metrics *m, long in_flight, size_t buffered, int queue_length, int queue_cap, size_t *len);

#endif
