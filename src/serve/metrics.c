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

static const char *const route_names[METRICS_ROUTES] = {"other", "viewer", "health", "model",
                                                       "metrics", "predict", "health_live", "health_ready"};
static const char *const outcome_names[OUTCOMES] = {"answered", "refused", "failed"};
static const char *const reason_names[METRICS_REASONS] = {"queue_full", "deadline", "client_gone",
                                                          "memory", "shutdown", "decode_budget"};

static void observe(histogram *h, double seconds) {
  int b = 0;
  while (b < METRICS_N_BUCKETS && seconds > bucket_le[b]) b++;
  h->bucket[b]++;
  h->sum += seconds;
  h->count++;
}

void metrics_init(serve_metrics *m) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->started = now_seconds();
}

void metrics_destroy(serve_metrics *m) {
  pthread_mutex_destroy(&m->mu);
}

void metrics_request(serve_metrics *m, int route, int status, double seconds) {
  int outcome = status >= 100 && status < 400 ? OUTCOME_ANSWERED
                : (status >= 400 && status < 500) || status == 503 ? OUTCOME_REFUSED
                                                                    : OUTCOME_FAILED;
  if (route < 0 || route >= METRICS_ROUTES) route = 0;
  pthread_mutex_lock(&m->mu);
  if (status >= 100 && status < 600) m->by_status[status]++;
  else m->aborted++;
  observe(&m->by_route[route][outcome], seconds);
  pthread_mutex_unlock(&m->mu);
}

void metrics_prediction(serve_metrics *m, double seconds, int n_images) {
  pthread_mutex_lock(&m->mu);
  int b = 0;
  while (b < METRICS_N_BUCKETS && seconds > bucket_le[b]) b++;
  m->bucket[b]++;  /* mskx_predict_duration_seconds, kept as it was */
  m->latency_sum += seconds;
  m->latency_count++;
  m->images += (unsigned long long)n_images;
  pthread_mutex_unlock(&m->mu);
}

void metrics_reject(serve_metrics *m, int reason) {
  if (reason < 0 || reason >= METRICS_REASONS) return;
  pthread_mutex_lock(&m->mu);
  m->rejected[reason]++;
  pthread_mutex_unlock(&m->mu);
}

void metrics_queue_wait(serve_metrics *m, double seconds) {
  pthread_mutex_lock(&m->mu);
  observe(&m->queue_wait, seconds);
  pthread_mutex_unlock(&m->mu);
}

void metrics_batch(serve_metrics *m, int images) {
  int b = 0;
  while (b < METRICS_BATCH_BUCKETS && images > 1 << b) b++;
  pthread_mutex_lock(&m->mu);
  m->batch_bucket[b]++;
  m->batch_sum += images;
  m->batch_count++;
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

/* One histogram's lines; labels is "" or 'a="b",' (with its trailing comma). */
static void put_histogram(text *t, const char *name, const char *labels, const histogram *h) {
  unsigned long long cum = 0;
  for (int b = 0; b < METRICS_N_BUCKETS; b++) {
    cum += h->bucket[b];
    put(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bucket_le[b], cum);
  }
  cum += h->bucket[METRICS_N_BUCKETS];
  put(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
  size_t n = strlen(labels);
  char l[128] = "";
  if (n) snprintf(l, sizeof l, "{%.*s}", (int)(n - 1), labels);   /* without the comma */
  put(t, "%s_sum%s %.9g\n%s_count%s %llu\n", name, l, h->sum, name, l, h->count);
}

char *metrics_render(serve_metrics *m, long in_flight, size_t buffered, int queue_length, int queue_cap, size_t *len) {
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
  unsigned long long busy = c.rejected[0] + c.rejected[1] + c.rejected[3] + c.rejected[5];
  put(&t, "# HELP mskx_predict_rejected_busy_total Predictions refused with 503 for load: queue full, deadline, body"
          " or decode memory.\n"
          "# TYPE mskx_predict_rejected_busy_total counter\nmskx_predict_rejected_busy_total %llu\n", busy);
  put(&t, "# HELP mskx_predict_rejected_total Predictions refused (503) or dropped (client gone: never computed),"
          " by reason.\n"
          "# TYPE mskx_predict_rejected_total counter\n");
  for (int r = 0; r < METRICS_REASONS; r++)
    put(&t, "mskx_predict_rejected_total{reason=\"%s\"} %llu\n", reason_names[r], c.rejected[r]);
  unsigned long long by_outcome[OUTCOMES] = {0};
  for (int r = 0; r < METRICS_ROUTES; r++)
    for (int o = 0; o < OUTCOMES; o++) by_outcome[o] += c.by_route[r][o].count;
  put(&t, "# HELP mskx_requests_total Requests finished, by outcome: answered (status below 400), refused (4xx, 503),"
          " failed (other 5xx, or no answer); the three add up to all requests.\n"
          "# TYPE mskx_requests_total counter\n");
  for (int o = 0; o < OUTCOMES; o++)
    put(&t, "mskx_requests_total{outcome=\"%s\"} %llu\n", outcome_names[o], by_outcome[o]);
  put(&t, "# HELP mskx_request_duration_seconds Time from a request's headers to its end, by route and outcome.\n"
          "# TYPE mskx_request_duration_seconds histogram\n");
  for (int r = 0; r < METRICS_ROUTES; r++)
    for (int o = 0; o < OUTCOMES; o++) {
      if (!c.by_route[r][o].count) continue;
      char labels[96];
      snprintf(labels, sizeof labels, "route=\"%s\",outcome=\"%s\",", route_names[r], outcome_names[o]);
      put_histogram(&t, "mskx_request_duration_seconds", labels, &c.by_route[r][o]);
    }
  put(&t, "# HELP mskx_queue_length Predictions admitted now (decoding, queued or computing).\n"
          "# TYPE mskx_queue_length gauge\nmskx_queue_length %d\n", queue_length);
  put(&t, "# HELP mskx_queue_capacity Predictions that may be admitted at once (--queue).\n"
          "# TYPE mskx_queue_capacity gauge\nmskx_queue_capacity %d\n", queue_cap);
  put(&t, "# HELP mskx_queue_wait_seconds Time a decoded study waited in the queue for its batch.\n"
          "# TYPE mskx_queue_wait_seconds histogram\n");
  put_histogram(&t, "mskx_queue_wait_seconds", "", &c.queue_wait);
  put(&t, "# HELP mskx_batch_size Network inputs (images) per scheduled batch.\n"
          "# TYPE mskx_batch_size histogram\n");
  unsigned long long cum = 0;
  for (int b = 0; b < METRICS_BATCH_BUCKETS; b++) {
    cum += c.batch_bucket[b];
    put(&t, "mskx_batch_size_bucket{le=\"%d\"} %llu\n", 1 << b, cum);
  }
  cum += c.batch_bucket[METRICS_BATCH_BUCKETS];
  put(&t, "mskx_batch_size_bucket{le=\"+Inf\"} %llu\nmskx_batch_size_sum %.0f\nmskx_batch_size_count %llu\n", cum,
      c.batch_sum, c.batch_count);
  put(&t, "# HELP mskx_images_processed_total Images in successful predictions.\n"
          "# TYPE mskx_images_processed_total counter\nmskx_images_processed_total %llu\n", c.images);
  put(&t, "# HELP mskx_predict_duration_seconds Time from request start to the prediction's answer.\n"
          "# TYPE mskx_predict_duration_seconds histogram\n");
  cum = 0;
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
