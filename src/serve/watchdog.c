/* The slow-client watchdog (see watchdog.h). One lock guards the list of
 * connections; the connection threads only update a phase and a byte count,
 * and removal happens under the same lock before libmicrohttpd closes the
 * socket, so shutdown(2) never reaches a reused descriptor. */
#include "serve/watchdog.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "core/error.h"
#include "core/util.h"

enum phase { PHASE_HEADERS, PHASE_BODY, PHASE_ANSWER, PHASE_CUT };

struct watch {
  watch *prev, *next;
  int fd;
  int phase;
  double since;          /* start of the phase (now_seconds) */
  size_t body_bytes;     /* in PHASE_BODY */
  const char *cut;       /* why it was closed */
};

struct watchdog {
  pthread_mutex_t mu;
  pthread_cond_t wake;
  pthread_t thread;
  int stop;
  double header_timeout, min_rate;
  void (*on_cut)(void *user, int headers, int bodies);
  void *user;
  watch *head;
};

static const char reason_headers[] = "request headers not complete within the header timeout";
static const char reason_body[] = "request body slower than the minimum rate";

/* Closes every connection past its deadline; counts them by kind. */
static void sweep(watchdog *w, double now, int *headers, int *bodies) {
  for (watch *c = w->head; c; c = c->next) {
    const char *why = NULL;
    double age = now - c->since;
    if (c->phase == PHASE_HEADERS && age > w->header_timeout) {
      why = reason_headers;
      ++*headers;
    } else if (c->phase == PHASE_BODY && w->min_rate > 0 &&
               age > w->header_timeout + (double)c->body_bytes / w->min_rate) {
      why = reason_body;
      ++*bodies;
    }
    if (!why) continue;
    /* The connection's thread sees end of file and closes it the usual way. */
    shutdown(c->fd, SHUT_RDWR);
    c->phase = PHASE_CUT;
    c->cut = why;
  }
}

static void *watchdog_main(void *arg) {
  watchdog *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    int headers = 0, bodies = 0;
    sweep(w, now_seconds(), &headers, &bodies);
    if ((headers || bodies) && w->on_cut) {
      pthread_mutex_unlock(&w->mu);
      w->on_cut(w->user, headers, bodies);
      pthread_mutex_lock(&w->mu);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)(WATCHDOG_PERIOD_S * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (!w->stop && pthread_cond_timedwait(&w->wake, &w->mu, &until) != ETIMEDOUT) {}
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int watchdog_start(double header_timeout_s, double min_rate, void (*on_cut)(void *user, int headers, int bodies),
                   void *user, watchdog **out, mskx_err *e) {
  *out = NULL;
  if (!(header_timeout_s > 0) || !(min_rate >= 0))
    return err_set(e, MSKX_EINVAL, "watchdog: header timeout must be positive and the minimum rate not negative");
  watchdog *w = calloc(1, sizeof *w);
  if (!w) return err_set(e, MSKX_ENOMEM, "out of memory");
  w->header_timeout = header_timeout_s;
  w->min_rate = min_rate;
  w->on_cut = on_cut;
  w->user = user;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* now_seconds' clock */
  pthread_cond_init(&w->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->mu, NULL);
  int rc = pthread_create(&w->thread, NULL, watchdog_main, w);
  if (rc) {
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return err_set(e, MSKX_EIO, "cannot start the watchdog thread: %s", strerror(rc));
  }
  *out = w;
  return MSKX_OK;
}

void watchdog_stop(watchdog *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

watch *watchdog_add(watchdog *w, int fd) {
  watch *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->phase = PHASE_HEADERS;
  c->since = now_seconds();
  pthread_mutex_lock(&w->mu);
  c->next = w->head;
  if (w->head) w->head->prev = c;
  w->head = c;
  pthread_mutex_unlock(&w->mu);
  return c;
}

void watchdog_remove(watchdog *w, watch *c) {
  if (!c) return;
  pthread_mutex_lock(&w->mu);
  if (c->prev) c->prev->next = c->next;
  else w->head = c->next;
  if (c->next) c->next->prev = c->prev;
  pthread_mutex_unlock(&w->mu);
  free(c);
}

/* Moves c to phase p (a cut connection stays cut). */
static void set_phase(watchdog *w, watch *c, int p) {
  if (!c) return;
  pthread_mutex_lock(&w->mu);
  if (c->phase != PHASE_CUT) {
    c->phase = p;
    c->since = now_seconds();
    c->body_bytes = 0;
  }
  pthread_mutex_unlock(&w->mu);
}

void watch_headers_done(watchdog *w, watch *c) {
  set_phase(w, c, PHASE_BODY);
}

void watch_body_done(watchdog *w, watch *c) {
  set_phase(w, c, PHASE_ANSWER);
}

void watch_request_done(watchdog *w, watch *c) {
  set_phase(w, c, PHASE_HEADERS);
}

void watch_body_bytes(watchdog *w, watch *c, size_t n) {
  if (!c) return;
  pthread_mutex_lock(&w->mu);
  c->body_bytes += n;
  pthread_mutex_unlock(&w->mu);
}

const char *watch_cut_reason(watchdog *w, const watch *c) {
  if (!c) return "";
  pthread_mutex_lock(&w->mu);
  const char *why = c->cut ? c->cut : "";
  pthread_mutex_unlock(&w->mu);
  return why;
}
