/* The daemon: libmicrohttpd with a thread per connection (a prediction
 * blocks only its own connection), deadlines for slow clients (watchdog.c),
 * admission control for predictions once their body is complete, body
 * limits, per-request bookkeeping, access log callbacks and a graceful stop. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "serve/serve_internal.h"

/* Per-connection memory pool for headers and read buffers; bodies are kept
 * separately, so this only bounds header size and read chunk size. */
#define SERVE_CONNECTION_MEMORY (128u << 10)
/* A body buffer starts this small and doubles, so that a slow client holds
 * memory (counted against max_buffered) in proportion to what it sent. */
#define SERVE_BODY_FIRST_ALLOC (64u << 10)

/* Lets the viewer run its inline script and show data: overlays while
 * forbidding every outside resource (the page must work offline). */
static const char viewer_csp[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void serve_config_default(serve_config *c) {
  memset(c, 0, sizeof *c);
  opt_defaults(serve_options, serve_options_count, c);
  c->host = SERVE_DEFAULT_HOST;
}

/* Queues r (its body passes to MHD) and remembers what was sent for the log. */
static enum MHD_Result send_reply(server *s, struct MHD_Connection *c, request *rq, reply *r) {
  if (rq->client_gone) {   /* nobody to answer: the connection is closed */
    reply_free(r);
    return MHD_NO;
  }
  struct MHD_Response *resp =
      r->is_static ? MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_PERSISTENT)
                   : MHD_create_response_from_buffer_with_free_callback(r->len, r->body, free);
  if (!resp) {
    reply_free(r);
    return MHD_NO;
  }
  r->body = NULL;   /* owned by the response now */
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (rq->route == ROUTE_VIEWER && r->status == 200) {
    MHD_add_response_header(resp, "Content-Security-Policy", viewer_csp);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  }
  if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->retry_after) {
    char v[16];
    snprintf(v, sizeof v, "%d", r->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
  }
  pthread_mutex_lock(&s->mu);
  int stopping = s->stopping;
  pthread_mutex_unlock(&s->mu);
  if (stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  rq->answered = ok == MHD_YES;
  rq->r.status = r->status;
  rq->r.n_images = r->n_images;
  memcpy(rq->r.error, r->error, sizeof r->error);
  return ok;
}

/* The answer is decided (rq->early); it goes out once the body is drained. */
static void mark_early(request *rq, int retry_after) {
  rq->early.retry_after = retry_after;
  rq->has_early = 1;
}

/* A client waiting for 100 Continue has not sent its body: a refusal
 * decided at the headers is answered at once (libmicrohttpd then closes
 * the connection), not after a drain. */
static int waits_for_continue(struct MHD_Connection *c) {
  const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
  return expect && !strcasecmp(expect, "100-continue");
}

/* How the client framed its body: every Content-Length and
 * Transfer-Encoding header (libmicrohttpd itself uses the first
 * Content-Length and prefers chunked encoding silently). */
typedef struct framing {
  int n_length, lengths_differ, n_encoding;
  const char *length, *encoding;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  framing *f = cls;
  if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
    if (f->n_length++ == 0) f->length = value;
    else if (strcmp(f->length, value ? value : "")) f->lengths_differ = 1;
  } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
    f->n_encoding++;
    f->encoding = value;
  }
  return MHD_YES;
}

/* A body whose length a proxy in front of us could read differently (two
 * Content-Lengths, Content-Length with Transfer-Encoding, a coding other
 * than chunked) is refused: that mismatch is how requests are smuggled. */
static int check_framing(struct MHD_Connection *c, reply *r) {
  framing f = {0, 0, 0, NULL, NULL};
  MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header, &f);
  if (f.lengths_differ) {
    reply_error(r, 400, "two different Content-Length headers");
    return -1;
  }
  if (f.n_length && f.n_encoding) {
    reply_error(r, 400, "both Content-Length and Transfer-Encoding headers");
    return -1;
  }
  if (f.n_encoding > 1 || (f.n_encoding && strcasecmp(f.encoding ? f.encoding : "", "chunked"))) {
    reply_error(r, 400, "Transfer-Encoding other than a single 'chunked' is not supported");
    return -1;
  }
  return 0;
}

/* Decisions that need only the headers. Returns 1 when the answer must go
 * out now (the body is not read at all, and libmicrohttpd closes the
 * connection after the answer). */
static int begin_request(server *s, struct MHD_Connection *c, request *rq, const char *url, const char *method) {
  if (check_framing(c, &rq->early)) {
    mark_early(rq, 0);
    return 1;
  }
  rq->route = route_find(url, method, &rq->early);
  if (rq->route == ROUTE_NONE) {
    rq->has_early = 1;
    return 0;
  }
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
  if (length > s->cfg.max_body) {
    reply_error(&rq->early, 413, "request body exceeds the limit of %zu bytes", s->cfg.max_body);
    mark_early(rq, 0);
    return 1;
  }
  if (rq->route != ROUTE_PREDICT) return 0;
  pthread_mutex_lock(&s->mu);
  int stopping = s->stopping;
  pthread_mutex_unlock(&s->mu);
  rq->declared = (size_t)length;
  if (stopping) {
    metrics_reject(&s->metrics, REJECT_SHUTDOWN);
    reply_error(&rq->early, 503, "the server is shutting down");
    mark_early(rq, SERVE_RETRY_AFTER);
    return waits_for_continue(c);
  }
  /* A full queue refuses from the headers, so that a refused upload is
   * neither buffered nor parsed. A client waiting for 100 Continue is
   * answered at once and never sends its body. Any other client is sending
   * its body already: it is drained (read and dropped, up to
   * SERVE_DRAIN_MAX) and then answered on the open connection, since a
   * connection closed with body bytes unread is reset, and clients that
   * send the whole body before reading (Python's http.client, for one)
   * would see a broken pipe instead of the 503. */
  int retry = 0, qcap = 0;
  if (queue_full(s, &retry, &qcap)) {
    metrics_reject(&s->metrics, REJECT_QUEUE_FULL);
    reply_error(&rq->early, 503, "busy: the queue is full (%d studies), retry later", qcap);
    mark_early(rq, retry);
    return waits_for_continue(c);
  }
  return 0;
}

/* Frees rq's body and gives its bytes back to the server's budget. */
static void body_free(server *s, request *rq) {
  if (rq->cap) {
    pthread_mutex_lock(&s->mu);
    s->buffered -= rq->cap;
    pthread_mutex_unlock(&s->mu);
  }
  free(rq->body);
  rq->body = NULL;
  rq->len = rq->cap = 0;
}

/* Room for n more bytes: the buffer doubles (up to the declared length),
 * within max_buffered over all requests. 0, or -1 with rq->early set. */
static int body_grow(server *s, request *rq, size_t n) {
  size_t need = rq->len + n, cap = rq->cap ? 2 * rq->cap : SERVE_BODY_FIRST_ALLOC;
  if (rq->declared && cap > rq->declared) cap = rq->declared;
  if (cap > s->cfg.max_body) cap = s->cfg.max_body;
  if (cap < need) cap = need;
  pthread_mutex_lock(&s->mu);
  int room = s->buffered + (cap - rq->cap) <= s->cfg.max_buffered;
  if (room) s->buffered += cap - rq->cap;
  pthread_mutex_unlock(&s->mu);
  unsigned char *g = room ? realloc(rq->body, cap) : NULL;
  if (!g) {
    if (room) {
      pthread_mutex_lock(&s->mu);
      s->buffered -= cap - rq->cap;
      pthread_mutex_unlock(&s->mu);
    }
    body_free(s, rq);
    if (room) {
      reply_error(&rq->early, 503, "out of memory for the request body");
    } else {
      metrics_reject(&s->metrics, REJECT_MEMORY);
      reply_error(&rq->early, 503, "busy: request bodies in memory reached the limit of %zu bytes, retry later",
                  s->cfg.max_buffered);
    }
    mark_early(rq, SERVE_RETRY_AFTER);
    return -1;
  }
  rq->body = g;
  rq->cap = cap;
  return 0;
}

/* Takes n body bytes: kept for a prediction, else read and dropped.
 * Returns -1 when the connection is to be closed: a dropped body past
 * SERVE_DRAIN_MAX (or --max-body), whose answer would otherwise wait for
 * as long as the client keeps sending. */
static int append_body(server *s, request *rq, const char *data, size_t n) {
  if (rq->has_early || rq->route != ROUTE_PREDICT) {
    size_t cap = s->cfg.max_body < SERVE_DRAIN_MAX ? s->cfg.max_body : SERVE_DRAIN_MAX;
    rq->dropped += n;
    return rq->dropped > cap ? -1 : 0;
  }
  if (n > s->cfg.max_body - rq->len) {
    body_free(s, rq);
    reply_error(&rq->early, 413, "request body exceeds the limit of %zu bytes", s->cfg.max_body);
    mark_early(rq, 0);
    rq->dropped = n;
    return 0;
  }
  if (rq->len + n > rq->cap && body_grow(s, rq, n)) return 0;
  memcpy(rq->body + rq->len, data, n);
  rq->len += n;
  return 0;
}

/* The connection's watch (its socket context), or NULL. */
static watch *connection_watch(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : NULL;
}

int serve_predict(server *s, struct MHD_Connection *c, request *rq, const mskx_encoded_image *imgs, int n,
                  const char *part, const mskx_predict_options *po, mskx_result **out, mskx_err *e) {
  *out = NULL;
  long ms = s->cfg.timeout_ms;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Timeout-Ms");
  if (h) {
    char *end;
    errno = 0;
    ms = strtol(h, &end, 10);
    if (end == h || *end || errno || ms < 1 || ms > SERVE_MAX_TIMEOUT_MS)
      return err_set(e, MSKX_EINVAL, "X-Request-Timeout-Ms: expected milliseconds in 1..%d", SERVE_MAX_TIMEOUT_MS);
  }
  const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  int reason = -1;
  int rc = queue_predict(s, imgs, n, part, po, rq->t0 + ms / 1e3, fd ? fd->connect_fd : -1, out, &reason,
                         &rq->retry_after, e);
  if (rc && reason >= 0) metrics_reject(&s->metrics, reason);
  if (rc && reason == REJECT_CLIENT_GONE) rq->client_gone = 1;
  return rc;
}

/* A copy of a client's string for the log, "..." at the end when cut. */
static void log_copy(char *out, size_t n, const char *s) {
  if ((size_t)snprintf(out, n, "%s", s) >= n && n > 4) memcpy(out + n - 4, "...", 4);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  server *s = cls;
  request *rq = *con_cls;
  if (!rq) {
    if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
    *con_cls = rq;
    rq->t0 = now_seconds();
    rq->watch = connection_watch(c);
    watch_headers_done(s->wd, rq->watch);
    log_copy(rq->method, sizeof rq->method, method);
    log_copy(rq->path, sizeof rq->path, url);
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    pthread_mutex_unlock(&s->mu);
    return begin_request(s, c, rq, url, method) ? send_reply(s, c, rq, &rq->early) : MHD_YES;
  }
  if (*upload_size) {
    watch_body_bytes(s->wd, rq->watch, *upload_size);
    if (append_body(s, rq, upload, *upload_size)) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  if (rq->answered) return MHD_YES;
  watch_body_done(s->wd, rq->watch);
  if (rq->has_early) return send_reply(s, c, rq, &rq->early);
  reply r = {0};
  if (rq->route == ROUTE_PREDICT) {
    /* Queued only now: a slow upload holds no place in the queue. */
    handle_predict(s, c, rq, &r);
    body_free(s, rq);
  } else {
    handle_get(s, rq->route, &r);
  }
  return send_reply(s, c, rq, &r);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe) {
  switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "connection timed out";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "server shut down";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client closed the connection";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
    default: return "connection error";
  }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)c;
  server *s = cls;
  request *rq = *con_cls;
  if (!rq) return;
  watch_request_done(s->wd, rq->watch);
  int status = rq->answered ? rq->r.status : 0;
  metrics_request(&s->metrics, rq->route, status, now_seconds() - rq->t0);
  if (s->cfg.on_access) {
    const char *cut = watch_cut_reason(s->wd, rq->watch);
    serve_access a = {rq->method, rq->path, status, (now_seconds() - rq->t0) * 1e3, rq->r.n_images,
                      status           ? rq->r.error
                      : rq->client_gone ? "client closed the connection while queued (not computed)"
                      : cut[0]          ? cut
                                        : termination_name(toe)};
    s->cfg.on_access(s->cfg.log_user, &a);
  }
  body_free(s, rq);
  reply_free(&rq->early);
  free(rq);
  *con_cls = NULL;
  pthread_mutex_lock(&s->mu);
  s->in_flight--;
  pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
}

/* Registers each connection with the watchdog (its socket context). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  server *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = fd ? watchdog_add(s->wd, fd->connect_fd) : NULL;
  } else {
    watchdog_remove(s->wd, *socket_context);
    *socket_context = NULL;
  }
}

/* One line per watchdog sweep that closed connections, not one per connection. */
static void on_cut(void *user, int headers, int bodies) {
  server *s = user;
  metrics_cut(&s->metrics, headers, bodies);
  if (!s->cfg.on_log) return;
  char msg[256];
  if (headers) {
    snprintf(msg, sizeof msg, "closed %d connection(s) whose request headers were not complete within %d s", headers,
             s->cfg.header_timeout_s);
    s->cfg.on_log(s->cfg.log_user, msg);
  }
  if (bodies) {
    snprintf(msg, sizeof msg, "closed %d connection(s) whose request body arrived slower than %g bytes/s", bodies,
             s->cfg.min_rate);
    s->cfg.on_log(s->cfg.log_user, msg);
  }
}

/* libmicrohttpd logs a line per refused or broken connection, so a flood
 * of connections would flood the log: each distinct line is printed once
 * per SERVE_LOG_REPEAT_S seconds, and then how often it came meanwhile. */
static void log_repeats(server *s, const log_seen *l) {
  char msg[sizeof l->text + 64];
  snprintf(msg, sizeof msg, "(%ld more: %s)", l->repeats, l->text);
  s->cfg.on_log(s->cfg.log_user, msg);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  server *s = cls;
  char msg[sizeof s->seen[0].text];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
  if (!s->cfg.on_log) return;
  double now = now_seconds();
  log_seen before = {0}, *l = NULL, *oldest = &s->seen[0];
  pthread_mutex_lock(&s->log_mu);
  for (int i = 0; i < SERVE_LOG_SEEN && !l; i++) {
    if (!strcmp(s->seen[i].text, msg)) l = &s->seen[i];
    else if (s->seen[i].since < oldest->since) oldest = &s->seen[i];
  }
  int print = 1;
  if (l && now - l->since < SERVE_LOG_REPEAT_S) {
    l->repeats++;
    print = 0;
  } else {
    if (!l) l = oldest;
    before = *l;
    snprintf(l->text, sizeof l->text, "%s", msg);
    l->since = now;
    l->repeats = 0;
  }
  pthread_mutex_unlock(&s->log_mu);
  if (before.repeats) log_repeats(s, &before);
  if (print) s->cfg.on_log(s->cfg.log_user, msg);
}

static int check_config(const serve_config *c, mskx_err *e) {
  if (c->port < 0 || c->port > 65535) return err_set(e, MSKX_EINVAL, "port %d is out of range 0..65535", c->port);
  if (c->max_body < 1) return err_set(e, MSKX_EINVAL, "max_body must be positive");
  if (c->max_images < 1 || c->max_images > 4096) return err_set(e, MSKX_EINVAL, "max_images must be in 1..4096");
  if (c->max_concurrent < 1) return err_set(e, MSKX_EINVAL, "max_concurrent must be positive");
  if (c->queue < 0) return err_set(e, MSKX_EINVAL, "queue must be positive (or 0: derived)");
  if (c->timeout_ms < 1 || c->timeout_ms > SERVE_MAX_TIMEOUT_MS)
    return err_set(e, MSKX_EINVAL, "timeout_ms must be in 1..%d", SERVE_MAX_TIMEOUT_MS);
  if (c->max_batch < 0 || c->max_batch > 4096)
    return err_set(e, MSKX_EINVAL, "max_batch must be in 1..4096 (or 0: derived)");
  if (c->max_delay_ms < 0 || c->max_delay_ms > 60000) return err_set(e, MSKX_EINVAL, "max_delay_ms must be in 0..60000");
  if (c->max_connections < 1) return err_set(e, MSKX_EINVAL, "max_connections must be positive");
  if (c->timeout_s < 1) return err_set(e, MSKX_EINVAL, "timeout must be at least 1 second");
  if (c->header_timeout_s < 1) return err_set(e, MSKX_EINVAL, "header timeout must be at least 1 second");
  if (!(c->min_rate >= 0)) return err_set(e, MSKX_EINVAL, "minimum rate must not be negative");
  if (c->max_per_ip < 0) return err_set(e, MSKX_EINVAL, "max_per_ip must not be negative");
  if (c->max_buffered < c->max_body)
    return err_set(e, MSKX_EINVAL, "max_buffered (%zu bytes) is less than max_body (%zu bytes)", c->max_buffered,
                   c->max_body);
  return MSKX_OK;
}

/* Resolves host:port into the address to bind. */
static int resolve(const char *host, int port, struct sockaddr_storage *sa, int *ipv6, mskx_err *e) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  int g = getaddrinfo(host, p, &hints, &res);
  if (g || !res) return err_set(e, MSKX_EINVAL, "cannot resolve host '%s': %s", host, gai_strerror(g));
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *ipv6 = res->ai_family == AF_INET6;
  freeaddrinfo(res);
  return MSKX_OK;
}

int server_start(mskx_model *m, const serve_config *cfg, server **out, mskx_err *e) {
  *out = NULL;
  if (!m || !cfg) return err_set(e, MSKX_EINVAL, "server_start: model and config are required");
  int rc = check_config(cfg, e);
  if (rc) return rc;
  const char *host = cfg->host && cfg->host[0] ? cfg->host : SERVE_DEFAULT_HOST;
  struct sockaddr_storage sa;
  int ipv6 = 0;
  if ((rc = resolve(host, cfg->port, &sa, &ipv6, e))) return rc;
  server *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  s->model = m;
  s->cfg = *cfg;
  metrics_init(&s->metrics);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->idle, NULL);
  pthread_mutex_init(&s->log_mu, NULL);
  if ((rc = client_names_init(s, e)) ||
      (rc = watchdog_start(cfg->header_timeout_s, cfg->min_rate, on_cut, s, &s->wd, e)) ||
      (rc = queue_start(s, e))) {
    server_stop(s, 0);
    return rc;
  }
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                   MHD_USE_ERROR_LOG | MHD_USE_AUTO | (ipv6 ? MHD_USE_IPv6 : 0);
  /* The logger goes first so that no option's complaint reaches MHD's own stderr logger. */
  s->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                               MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip,
                               MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONNECTION_MEMORY,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                               MHD_OPTION_END);
  if (!s->daemon) {
    int err = errno;
    server_stop(s, 0);
    return err_set(e, MSKX_EIO, "cannot listen on %s port %d: %s", host, cfg->port,
                   err ? strerror(err) : "libmicrohttpd failed to start");
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : cfg->port;
  *out = s;
  return MSKX_OK;
}

int server_port(const server *s) {
  return s ? s->port : 0;
}

int server_stop(server *s, double grace_s) {
  if (!s) return 0;
  long left = 0;
  if (s->daemon) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    /* Quiescing only stops accept(); shutting the socket down makes new
     * connections fail at once instead of waiting in the backlog. The
     * descriptor stays open until MHD_stop_daemon, as MHD requires. */
    if (listen_fd != MHD_INVALID_SOCKET) shutdown(listen_fd, SHUT_RDWR);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(long)grace_s;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((grace_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0 && pthread_cond_timedwait(&s->idle, &s->mu, &deadline) != ETIMEDOUT) {}
    left = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    queue_stop(s);   /* requests still queued are answered 503 */
    MHD_stop_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
  }
  queue_stop(s);
  queue_destroy(s);       /* after the daemon: no connection thread is left */
  watchdog_stop(s->wd);   /* after the daemon: every connection is closed */
  client_names_free(s);
  if (s->cfg.on_log)
    for (int i = 0; i < SERVE_LOG_SEEN; i++)
      if (s->seen[i].repeats) log_repeats(s, &s->seen[i]);
  pthread_cond_destroy(&s->idle);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->log_mu);
  metrics_destroy(&s->metrics);
  free(s);
  return (int)left;
}
