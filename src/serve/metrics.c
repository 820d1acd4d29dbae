/* Prometheus metrics of the server; counters behind one mutex (requests are
 * milliseconds apart at most, so contention is negligible). */
#include "serve/metrics.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

/* Bucket bounds in seconds: a tiny model answers in milliseconds, a
 * DenseNet-169 study on CPU in about a second or more. */
static const double bucket_le[METRICS_N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

void metrics_init(serve_metrics *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->started = now_seconds();
}

void metrics_destroy(serve_metrics *m) {
  pthread_mutex_destroy(&m->mu);
}

void metrics_request(serve_metrics *m, int status) {
  pthread_mutex_lock(&m->mu);
  if (status >= 100 && status < 600) m->by_status[status]++;
  else m->aborted++;
  pthread_mutex_unlock(&m->mu);
}

void metrics_prediction(serve_metrics *m, double seconds, int n_images) {
  pthread_mutex_lock(&m->mu);
  int b = 0;
  while (b < METRICS_N_BUCKETS && seconds > bucket_le[b]) b++;
  m->bucket[b]++;
  m->latency_sum += seconds;
  m->latency_count++;
  m->images += (unsigned long long)n_images;
  pthread_mutex_unlock(&m->mu);
}

void metrics_busy(serve_metrics *m) {
  pthread_mutex_lock(&m->mu);
  m->rejected_busy++;
  pthread_mutex_unlock(&m->mu);
}

void metrics_cut(serve_metrics *m, int headers, int bodies) {
  pthread_mutex_lock(&m->mu);
  m->cut_headers += (unsigned long long)headers;
  m->cut_bodies += (unsigned long long)bodies;
  pthread_mutex_unlock(&m->mu);
}

typedef struct text {
  char *s;
  size_t len, cap;
  int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  if (t->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (k < 0) { t->failed = 1; return; }
    if ((size_t)k < t->cap - t->len) { t->len += (size_t)k; return; }
    size_t cap = 2 * t->cap + (size_t)k;
    char *g = realloc(t->s, cap);
    if (!g) { t->failed = 1; return; }
    t->s = g;
    t->cap = cap;
  }
}

char *metrics_render(serve_metrics *m, long in_flight, size_t buffered, size_t *len) {
  text t = {malloc(4096), 0, 4096, 0};
  if (!t.s) return NULL;
  pthread_mutex_lock(&m->mu);
  serve_metrics c = *m;   /* a consistent snapshot, formatted outside the lock */
  pthread_mutex_unlock(&m->mu);
  put(&t, "# HELP mskx_http_requests_total HTTP requests answered, by status code.\n"
          "# TYPE mskx_http_requests_total counter\n");
  for (int s = 100; s < 600; s++)
    if (c.by_status[s]) put(&t, "mskx_http_requests_total{code=\"%d\"} %llu\n", s, c.by_status[s]);
  put(&t, "# HELP mskx_http_requests_aborted_total Requests that ended without a response (client gone, timeout).\n"
          "# TYPE mskx_http_requests_aborted_total counter\nmskx_http_requests_aborted_total %llu\n", c.aborted);
  put(&t, "# HELP mskx_http_requests_in_flight Requests being received, computed or answered now.\n"
          "# TYPE mskx_http_requests_in_flight gauge\nmskx_http_requests_in_flight %ld\n", in_flight);
  put(&t, "# HELP mskx_http_request_body_bytes Bytes of request bodies held in memory now.\n"
          "# TYPE mskx_http_request_body_bytes gauge\nmskx_http_request_body_bytes %zu\n", buffered);
  put(&t, "# HELP mskx_http_connections_cut_total Connections closed for slow request headers or bodies.\n"
          "# TYPE mskx_http_connections_cut_total counter\n"
          "mskx_http_connections_cut_total{reason=\"headers\"} %llu\n"
          "mskx_http_connections_cut_total{reason=\"body\"} %llu\n", c.cut_headers, c.cut_bodies);
  put(&t, "# HELP mskx_predict_rejected_busy_total Predictions refused with 503 at the concurrency or body memory limit.\n"
          "# TYPE mskx_predict_rejected_busy_total counter\nmskx_predict_rejected_busy_total %llu\n",
      c.rejected_busy);
  put(&t, "# HELP mskx_images_processed_total Images in successful predictions.\n"
          "# TYPE mskx_images_processed_total counter\nmskx_images_processed_total %llu\n", c.images);
  put(&t, "# HELP mskx_predict_duration_seconds Time from request start to the prediction's answer.\n"
          "# TYPE mskx_predict_duration_seconds histogram\n");
  unsigned long long cum = 0;
  for (int b = 0; b < METRICS_N_BUCKETS; b++) {
    cum += c.bucket[b];
    put(&t, "mskx_predict_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[b], cum);
  }
  cum += c.bucket[METRICS_N_BUCKETS];
  put(&t, "mskx_predict_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
  put(&t, "mskx_predict_duration_seconds_sum %.9g\nmskx_predict_duration_seconds_count %llu\n", c.latency_sum,
      c.latency_count);
  put(&t, "# HELP mskx_uptime_seconds Seconds since the server started.\n"
          "# TYPE mskx_uptime_seconds gauge\nmskx_uptime_seconds %.3f\n", now_seconds() - c.started);
  if (t.failed) {
    free(t.s);
    return NULL;
  }
  *len = t.len;
  return t.s;
}
