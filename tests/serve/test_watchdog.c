/* The slow-client watchdog on socket pairs: a connection is shut down when
 * its headers pass the header timeout or its body falls below the minimum
 * rate, never while its answer is computed, and the callback counts both. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "core/util.h"
#include "serve/watchdog.h"
#include "test.h"

#define HEADER_S 0.3   /* steady_body_is_kept */
#define MIN_RATE 1000.0

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int cut_headers, cut_bodies;

static void on_cut(void *user, int headers, int bodies) {
  (void)user;
  pthread_mutex_lock(&mu);
  cut_headers += headers;
  cut_bodies += bodies;
  pthread_mutex_unlock(&mu);
}

/* 1 when the peer of a shut-down socket sees end of file (never blocks). */
static int peer_closed(int fd) {
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static void pause_s(double s) {
  usleep((useconds_t)(s * 1e6));
}

/* Timeline (header timeout 1 s, sweeps every 0.1 s): h never finishes its
 * headers (cut at 1.0-1.1 s); b sent 100 body bytes (cut at 1.1-1.2 s); a
 * is computing its answer (never cut); g finished a request at 0.6 s, so
 * its next headers are due at 1.6 s (cut at 1.6-1.7 s). */
TEST(deadlines) {
  watchdog *w = NULL;
  mskx_err e = {0, ""};
  CHECK_OK(watchdog_start(1.0, MIN_RATE, on_cut, NULL, &w, &e), &e);
  int hdr[2], body[2], answer[2], again[2];
  CHECK(!socketpair(AF_UNIX, SOCK_STREAM, 0, hdr) && !socketpair(AF_UNIX, SOCK_STREAM, 0, body) &&
        !socketpair(AF_UNIX, SOCK_STREAM, 0, answer) && !socketpair(AF_UNIX, SOCK_STREAM, 0, again));
  watch *h = watchdog_add(w, hdr[0]), *b = watchdog_add(w, body[0]), *a = watchdog_add(w, answer[0]),
        *g = watchdog_add(w, again[0]);
  CHECK(h && b && a && g);
  watch_headers_done(w, b);
  watch_body_bytes(w, b, 100);
  watch_headers_done(w, a);
  watch_body_done(w, a);
  pause_s(0.6);
  watch_headers_done(w, g);
  watch_body_done(w, g);
  watch_request_done(w, g);
  CHECK(!peer_closed(hdr[1]) && !peer_closed(body[1]) && !peer_closed(again[1]) && !watch_cut_reason(w, h)[0]);
  pause_s(0.7);                          /* 1.3 s */
  CHECK(peer_closed(hdr[1]) && strstr(watch_cut_reason(w, h), "headers"));
  CHECK(peer_closed(body[1]) && strstr(watch_cut_reason(w, b), "body"));
  CHECK(!peer_closed(again[1]) && !watch_cut_reason(w, g)[0]);
  pause_s(0.7);                          /* 2.0 s */
  CHECK(peer_closed(again[1]) && strstr(watch_cut_reason(w, g), "headers"));
  CHECK(!peer_closed(answer[1]) && !watch_cut_reason(w, a)[0]);
  watch_request_done(w, h);              /* a cut connection stays cut */
  CHECK(strstr(watch_cut_reason(w, h), "headers"));
  pthread_mutex_lock(&mu);
  int nh = cut_headers, nb = cut_bodies;
  pthread_mutex_unlock(&mu);
  CHECKF(nh == 2 && nb == 1, "callback counted %d header and %d body cuts", nh, nb);
  watchdog_remove(w, h);
  watchdog_remove(w, b);
  watchdog_remove(w, a);
  watchdog_remove(w, g);
  watchdog_stop(w);
  for (int i = 0; i < 2; i++) close(hdr[i]), close(body[i]), close(answer[i]), close(again[i]);
}

/* A body that keeps up with the minimum rate is never cut. */
TEST(steady_body_is_kept) {
  watchdog *w = NULL;
  mskx_err e = {0, ""};
  CHECK_OK(watchdog_start(HEADER_S, MIN_RATE, NULL, NULL, &w, &e), &e);
  int sv[2];
  CHECK(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  watch *c = watchdog_add(w, sv[0]);
  watch_headers_done(w, c);
  for (int i = 0; i < 10; i++) {         /* 1 s at 2000 bytes/s */
    watch_body_bytes(w, c, 200);
    pause_s(0.1);
  }
  CHECK(!peer_closed(sv[1]) && !watch_cut_reason(w, c)[0]);
  watchdog_remove(w, c);
  watchdog_stop(w);
  close(sv[0]);
  close(sv[1]);
}

TEST(bad_settings) {
  watchdog *w = NULL;
  mskx_err e = {0, ""};
  CHECK(watchdog_start(0, MIN_RATE, NULL, NULL, &w, &e) == MSKX_EINVAL && !w);
  CHECK(watchdog_start(HEADER_S, -1, NULL, NULL, &w, &e) == MSKX_EINVAL && !w);
  watchdog_stop(NULL);
  watchdog_remove(NULL, NULL);
}

TEST_MAIN()
