/* Shared between the daemon plumbing (server.c) and the endpoints (routes.c). */
#ifndef MSKX_SERVE_INTERNAL_H
#define MSKX_SERVE_INTERNAL_H
#include <microhttpd.h>
#include <pthread.h>
#include "serve/metrics.h"
#include "serve/queue.h"
#include "serve/serve.h"
#include "serve/watchdog.h"

enum route {
  ROUTE_NONE = 0,
  ROUTE_VIEWER,
  ROUTE_HEALTH,
  ROUTE_MODEL,
  ROUTE_METRICS,
  ROUTE_PREDICT,
  ROUTE_LIVE,
  ROUTE_READY,
  ROUTES
};

#define SERVE_LOG_SEEN 4        /* distinct daemon log lines whose repeats are counted */
#define SERVE_LOG_REPEAT_S 1.0  /* each is printed at most once per this many seconds */

typedef struct log_seen {
  char text[1024];
  double since;              /* when it was last printed */
  long repeats;              /* since then, not printed */
} log_seen;

struct server {
  struct MHD_Daemon *daemon;
  mskx_model *model;
  serve_config cfg;
  serve_metrics metrics;
  pthread_mutex_t mu;
  pthread_cond_t idle;       /* signalled when in_flight drops */
  long in_flight;            /* requests from their headers to their completion */
  serve_queue queue;         /* predictions admitted, and their scheduler threads */
  size_t buffered;           /* bytes of request bodies held (at most cfg.max_buffered) */
  watchdog *wd;              /* closes slow clients */
  char **paths;              /* the model's and its members' file paths, longest first: */
  int n_paths;               /*   never shown to clients (see client_message) */
  int stopping;
  int port;
  pthread_mutex_t log_mu;
  log_seen seen[SERVE_LOG_SEEN];
};

/* An answer being prepared. body is malloc'd unless is_static. */
typedef struct reply {
  int status;
  char *body;
  size_t len;
  int is_static;
  const char *content_type;
  const char *allow;         /* for 405 */
  int retry_after;           /* seconds; 0 = no header */
  int n_images;
  char error[512];           /* the message of an error answer */
} reply;

/* One request: MHD's per-request pointer. */
typedef struct request {
  double t0;
  char method[16];
  char path[256];            /* for the log; cut with "..." when longer */
  int route;
  int client_gone;           /* the client left while its prediction was queued: no answer */
  int retry_after;           /* the queue's estimated wait when it refused the study, else 0 */
  watch *watch;              /* the connection's deadlines (NULL: not watched) */
  int answered;              /* a response was queued */
  reply early;               /* decided at the headers; sent once the body is drained */
  int has_early;
  size_t declared;           /* Content-Length; 0 when none (chunked) */
  size_t dropped;            /* body bytes read and dropped (a refused or bodiless route's) */
  unsigned char *body;
  size_t len, cap;           /* cap: counted in server.buffered */
  reply r;                   /* what was sent */
} request;

/* The file paths of s->model (root and members) into s->paths. */
int client_names_init(server *s, mskx_err *e);
void client_names_free(server *s);
/* Finds the route of path; fills r with 404 or 405 when there is none for method. */
int route_find(const char *path, const char *method, reply *r);
void reply_error(reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void reply_free(reply *r);
/* GET endpoints. */
void handle_get(server *s, int route, reply *r);
/* A study of rq through the prediction queue (queue.c), with rq's deadline
 * (--timeout-ms, or the client's X-Request-Timeout-Ms header) and its
 * client watched while it waits; refusals are counted in the metrics. */
int serve_predict(server *s, struct MHD_Connection *c, request *rq, const mskx_encoded_image *imgs, int n,
                  const char *part, const mskx_predict_options *po, mskx_result **out, mskx_err *e);
/* POST /v1/predict with the whole body in rq. */
void handle_predict(server *s, struct MHD_Connection *c, request *rq, reply *r);

#endif
