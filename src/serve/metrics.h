/* Server metrics in the Prometheus text exposition format (version 0.0.4):
 * requests by status code, a prediction latency histogram, images
 * processed, requests in flight. Thread-safe. */
#ifndef MSKX_SERVE_METRICS_H
#define MSKX_SERVE_METRICS_H
#include <pthread.h>
#include <stddef.h>

/* Upper bounds (seconds) of the prediction latency buckets. */
#define METRICS_N_BUCKETS 12

typedef struct serve_metrics {
  pthread_mutex_t mu;
  unsigned long long by_status[600];   /* index: HTTP status code */
  unsigned long long aborted;          /* requests that ended without a response */
  unsigned long long bucket[METRICS_N_BUCKETS + 1];  /* last: +Inf */
  double latency_sum;
  unsigned long long latency_count;
  unsigned long long images;
  unsigned long long rejected_busy;    /* 503 for the concurrency or body memory limit */
  unsigned long long cut_headers;      /* connections closed: headers too slow */
  unsigned long long cut_bodies;       /* connections closed: body below the minimum rate */
  double started;                      /* now_seconds() at init */
} serve_metrics;

void metrics_init(serve_metrics *m);
void metrics_destroy(serve_metrics *m);
/* A request finished: status 0 means it ended without a response. */
void metrics_request(serve_metrics *m, int status);
/* A prediction answered: its latency and image count. */
void metrics_prediction(serve_metrics *m, double seconds, int n_images);
void metrics_busy(serve_metrics *m);
/* Connections the watchdog closed, by reason. */
void metrics_cut(serve_metrics *m, int headers, int bodies);
/* The exposition text, malloc'd (NULL when out of memory); in_flight is
 * the server's count of requests in progress, buffered the bytes of request
 * bodies it holds. */
char *metrics_render(serve_metrics *m, long in_flight, size_t buffered, size_t *len);

#endif
