/* Deadlines for slow clients. libmicrohttpd's connection timeout counts
 * only idle time, so a client that trickles one byte a second holds its
 * connection (and thread) for ever. The watchdog is a thread that closes
 * (shutdown(2)) every connection whose request headers are not complete
 * within header_timeout seconds of the connection becoming ready for a
 * request, or whose body arrives slower than header_timeout seconds plus
 * one second per min_rate bytes. */
#ifndef MSKX_SERVE_WATCHDOG_H
#define MSKX_SERVE_WATCHDOG_H
#include <stddef.h>
#include "mskx.h"

#define WATCHDOG_PERIOD_S 0.1   /* how often deadlines are checked */

typedef struct watchdog watchdog;
typedef struct watch watch;     /* one connection */

/* on_cut (may be NULL) is called from the watchdog's thread, without its
 * lock held, after a sweep that closed connections: how many were closed
 * for slow headers and how many for a slow body. min_rate 0: no body limit. */
int watchdog_start(double header_timeout_s, double min_rate, void (*on_cut)(void *user, int headers, int bodies),
                   void *user, watchdog **out, mskx_err *e);
/* Stops the thread and frees w; every watch must have been removed. */
void watchdog_stop(watchdog *w);

/* A new connection on socket fd, waiting for its first request's headers.
 * NULL when out of memory (the connection is then not watched). */
watch *watchdog_add(watchdog *w, int fd);
/* The connection is closed; after this its fd may be reused, so the
 * watchdog never touches it again. */
void watchdog_remove(watchdog *w, watch *c);

/* A request's headers are complete: its body is timed from now. */
void watch_headers_done(watchdog *w, watch *c);
/* n more body bytes arrived. */
void watch_body_bytes(watchdog *w, watch *c, size_t n);
/* The body is complete: no deadline while the answer is computed and sent
 * (the idle timeout still applies). */
void watch_body_done(watchdog *w, watch *c);
/* The answer was sent: the next request's headers are timed from now. */
void watch_request_done(watchdog *w, watch *c);
/* Why the watchdog closed the connection ("" when it did not). */
const char *watch_cut_reason(watchdog *w, const watch *c);

#endif
