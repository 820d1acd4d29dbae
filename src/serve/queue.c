/* The prediction queue and its scheduler threads (see queue.h). Locking:
 * q->mu guards the list, the counters and every job's state; decoding and
 * computing run outside it. */
#include "serve/queue.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "core/error.h"
#include "core/util.h"
#include "infer/model_batch.h"
#include "io/image.h"
#include "serve/serve_internal.h"

/* A queued request looks at its client this often (seconds). */
#define QUEUE_POLL_S 0.05
/* Weight of the newest batch in the per-input compute time average. */
#define QUEUE_EWMA 0.2
/* Side of the probe images for models whose members differ in size. */
#define QUEUE_PROBE_SIDE 320

const char *const reject_reason_names[REJECT_REASONS] = {"queue_full", "deadline", "client_gone",
                                                         "memory", "shutdown", "decode_budget"};

enum job_state { JOB_QUEUED = 0, JOB_TAKEN, JOB_DONE };

struct job {
  model_study *st;
  int images, fd;
  double t_queued, deadline;
  int state, gone;
  job *next;
};

static void abs_time(double seconds_from_now, struct timespec *ts) {
  clock_gettime(CLOCK_REALTIME, ts);
  double whole = (double)(long)seconds_from_now;
  ts->tv_sec += (time_t)whole;
  ts->tv_nsec += (long)((seconds_from_now - whole) * 1e9);
  if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Whether the client closed its side (EOF or an error on its socket). A
 * byte waiting (a pipelined request) means it is still there. */
static int client_gone(int fd) {
  if (fd < 0) return 0;
  char c;
  ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (k > 0) return 0;
  if (k == 0) return 1;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void unlink_job(serve_queue *q, job *j) {
  job **p = &q->head, *prev = NULL;
  while (*p && *p != j) prev = *p, p = &(*p)->next;
  if (!*p) return;
  *p = j->next;
  if (q->tail == j) q->tail = prev;
  q->queued--;
  q->queued_images -= j->images;
}

/* Takes queued jobs (oldest first) up to max_batch inputs, at least one;
 * with max_delay, waits that long after the oldest was queued for more. */
static int take_batch(server *s, job **batch, int cap) {
  serve_queue *q = &s->queue;
  for (;;) {
    if (q->stopping) return 0;
    if (!q->head) {
      pthread_cond_wait(&q->work, &q->mu);
      continue;
    }
    double wait = q->head->t_queued + s->cfg.max_delay_ms / 1e3 - now_seconds();
    if (wait > 0 && q->queued_images < q->max_batch && q->queued < cap) {
      struct timespec ts;
      abs_time(wait, &ts);
      pthread_cond_timedwait(&q->work, &q->mu, &ts);
      continue;
    }
    break;
  }
  int n = 0, images = 0;
  while (q->head && n < cap && (n == 0 || images + q->head->images <= q->max_batch)) {
    job *j = q->head;
    unlink_job(q, j);
    j->state = JOB_TAKEN;
    images += j->images;
    batch[n++] = j;
  }
  return n;
}

static int measure(server *s, serve_queue_info *qi, mskx_err *e);

/* The first scheduler times the probe study (queue_start waits for it): on
 * the thread that computes the requests, whose first prediction plans the
 * network. Planned on the thread that starts the server instead, the
 * requests' forward passes ran about 15% slower (densenet169 at 320 px:
 * 14.3 against 16.5 images/s at one client). */
static void run_probe(server *s) {
  serve_queue *q = &s->queue;
  pthread_mutex_lock(&q->mu);
  int mine = !q->probe_taken;
  q->probe_taken = 1;
  pthread_mutex_unlock(&q->mu);
  if (!mine) return;
  mskx_err pe = {0, ""};
  serve_queue_info *qi = &q->info;
  qi->max_batch_derived = s->cfg.max_batch == 0;
  /* A model that cannot predict the probe still serves (its requests get
   * their own errors); the queue then takes the rule's floor, and batches
   * one study per pass. */
  if (measure(s, qi, &pe)) snprintf(qi->note, sizeof qi->note, "%.250s", pe.msg);
  qi->max_batch = qi->max_batch_derived ? serve_max_batch_default(qi->per_image_s, qi->batch_per_image_s)
                                        : s->cfg.max_batch;
  /* Before any request: the contexts pass at most max_batch inputs, and
   * the trial's network planned for a larger batch is freed. */
  if (qi->max_batch_derived && qi->max_batch < model_max_batch(s->model)) model_set_max_batch(s->model, qi->max_batch);
  pthread_mutex_lock(&q->mu);
  q->max_batch = qi->max_batch;
  q->probe_done = 1;
  pthread_cond_broadcast(&q->done);
  pthread_mutex_unlock(&q->mu);
}

static void *worker(void *arg) {
  server *s = arg;
  serve_queue *q = &s->queue;
  run_probe(s);
  pthread_mutex_lock(&q->mu);
  while (!q->probe_done) pthread_cond_wait(&q->done, &q->mu);
  int cap = q->max_batch;   /* a study has at least one input */
  job **batch = calloc((size_t)cap, sizeof *batch);
  model_study **st = calloc((size_t)cap, sizeof *st);
  while (batch && st) {
    int n = take_batch(s, batch, cap);
    if (!n) break;
    pthread_mutex_unlock(&q->mu);
    /* A client that left is not computed. */
    int k = 0, images = 0;
    double now = now_seconds();
    for (int i = 0; i < n; i++) {
      metrics_queue_wait(&s->metrics, now - batch[i]->t_queued);
      if (client_gone(batch[i]->fd)) {
        batch[i]->gone = 1;
        continue;
      }
      st[k++] = batch[i]->st;
      images += batch[i]->images;
    }
    int groups = 0;
    mskx_err e = {0, ""};
    double t0 = now_seconds();
    int rc = k ? model_predict_studies(s->model, st, k, &groups, &e) : 0;
    double dt = now_seconds() - t0;
    if (k) metrics_batch(&s->metrics, images);
    pthread_mutex_lock(&q->mu);
    if (k && !rc && images) {
      double per = dt / images;
      q->per_image_s = q->per_image_s > 0 ? (1 - QUEUE_EWMA) * q->per_image_s + QUEUE_EWMA * per : per;
    }
    for (int i = 0; i < n; i++) batch[i]->state = JOB_DONE;
    pthread_cond_broadcast(&q->done);
  }
  pthread_mutex_unlock(&q->mu);
  free(batch);
  free(st);
  return NULL;
}

int serve_max_batch_default(double study_per_image_s, double batch_per_image_s) {
  int pays = study_per_image_s > 0 && batch_per_image_s > 0 &&
             batch_per_image_s <= (1 - SERVE_BATCH_GAIN) * study_per_image_s;
  return pays ? SERVE_DEFAULT_MAX_BATCH : SERVE_QUEUE_STUDY_IMAGES;
}

int serve_retry_after(double per_image_s, int queued_images, int schedulers) {
  if (!(per_image_s > 0) || queued_images < 1 || schedulers < 1) return 1;
  double s = ceil(per_image_s * queued_images / schedulers);
  return s < 1 ? 1 : s > SERVE_RETRY_AFTER_MAX ? SERVE_RETRY_AFTER_MAX : (int)s;
}

int serve_queue_default(double per_image_s, int schedulers, int timeout_ms) {
  if (!(per_image_s > 0) || schedulers < 1) return SERVE_QUEUE_MIN;
  double work = timeout_ms / 2e3 < SERVE_QUEUE_WORK_S ? timeout_ms / 2e3 : SERVE_QUEUE_WORK_S;
  double q = floor(work * schedulers / (SERVE_QUEUE_STUDY_IMAGES * per_image_s));
  return q < SERVE_QUEUE_MIN ? SERVE_QUEUE_MIN : q > SERVE_QUEUE_MAX ? SERVE_QUEUE_MAX : (int)q;
}

/* The part a synthetic study is sent with: the first part a bundle routes
 * (NULL when the model takes any, or a bundle has only a default). */
static const char *first_part(const mskx_model *m, char *buf, size_t n) {
  struct mskx_model_info in;
  if (mskx_model_info(m, &in) || !in.parts) return NULL;
  const char *p = in.parts;
  while (*p) {
    size_t len = strcspn(p, ",");
    if (len && len < n && strncmp(p, "all", len) && strncmp(p, "default", len)) {
      memcpy(buf, p, len);
      buf[len] = 0;
      return buf;
    }
    p += len + (p[len] == ',');
  }
  return NULL;
}

/* A synthetic study's images: one smooth PNG at the model's size. */
static int probe_png(const mskx_model *m, uint8_t **png, size_t *len, mskx_err *e) {
  struct mskx_model_info in;
  mskx_model_info(m, &in);
  int side = in.size > 0 ? in.size : QUEUE_PROBE_SIDE;
  uint8_t *px = malloc((size_t)side * side);
  if (!px) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++) px[(size_t)y * side + x] = (uint8_t)(32 + (x * 96 + y * 64) / side);
  int rc = image_encode_png(px, side, side, 1, png, len, e);
  free(px);
  return rc;
}

/* Compute seconds per network input of n_studies synthetic studies of
 * SERVE_QUEUE_STUDY_IMAGES images computed together through the
 * scheduler's own path on one context: a first run plans the network for
 * that batch (which later requests then reuse), then the fastest of
 * SERVE_PROBE_RUNS timed runs. */
static int time_probe(server *s, const mskx_encoded_image *img, const char *part, int n_studies, double *per_image_s,
                      mskx_err *e) {
  *per_image_s = 0;
  mskx_encoded_image imgs[SERVE_QUEUE_STUDY_IMAGES];
  for (int i = 0; i < SERVE_QUEUE_STUDY_IMAGES; i++) imgs[i] = *img;
  model_study **st = calloc((size_t)n_studies, sizeof *st);
  if (!st) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = MSKX_OK;
  for (int run = 0; !rc && run <= SERVE_PROBE_RUNS; run++) {
    int images = 0, groups = 0;
    for (int k = 0; !rc && k < n_studies; k++)
      if (!(rc = model_study_prepare_encoded(s->model, imgs, SERVE_QUEUE_STUDY_IMAGES, part, NULL, &st[k], e)))
        images += model_study_images(st[k]);
    double t0 = now_seconds();
    if (!rc) rc = model_predict_studies(s->model, st, n_studies, &groups, e);
    double dt = now_seconds() - t0;
    for (int k = 0; k < n_studies; k++) {
      mskx_result *r = NULL;
      if (!rc) rc = model_study_result(st[k], &r, e);
      mskx_result_free(r);
      model_study_free(st[k]);
      st[k] = NULL;
    }
    if (!rc && run > 0 && images && (*per_image_s == 0 || dt / images < *per_image_s)) *per_image_s = dt / images;
  }
  free(st);
  return rc;
}

/* The probe: seconds per image of one study (the queue's rule, the deadline
 * estimate) and, with a derived --max-batch, of a pass of as many whole
 * studies as SERVE_DEFAULT_MAX_BATCH holds; then the batch size. Fills
 * qi; returns nonzero when not even one study could be computed. */
static int measure(server *s, serve_queue_info *qi, mskx_err *e) {
  uint8_t *png = NULL;
  size_t len = 0;
  int rc = probe_png(s->model, &png, &len, e);
  mskx_encoded_image img = {png, len, "probe.png"};
  char part[64];
  const char *pt = first_part(s->model, part, sizeof part);
  if (!rc) rc = time_probe(s, &img, pt, 1, &qi->per_image_s, e);
  /* The trial is of the batch a derived default would gather, whatever
   * larger batch the model was loaded for. */
  int max_batch = model_max_batch(s->model) < SERVE_DEFAULT_MAX_BATCH ? model_max_batch(s->model)
                                                                        : SERVE_DEFAULT_MAX_BATCH;
  int studies = max_batch / SERVE_QUEUE_STUDY_IMAGES;
  double study_s = qi->per_image_s * SERVE_QUEUE_STUDY_IMAGES;
  if (!rc && qi->max_batch_derived && studies >= 2 && study_s <= SERVE_BATCH_PROBE_MAX_S) {
    mskx_err be = {0, ""};
    if (time_probe(s, &img, pt, studies, &qi->batch_per_image_s, &be)) {
      qi->batch_per_image_s = 0;   /* a run timed before the failure decides nothing */
      snprintf(qi->batch_note, sizeof qi->batch_note, "the batch trial failed: %.100s", be.msg);
    } else
      qi->batch_images = studies * SERVE_QUEUE_STUDY_IMAGES;
  } else if (!rc && qi->max_batch_derived && studies >= 2) {
    snprintf(qi->batch_note, sizeof qi->batch_note, "no batch trial: one study takes %.1f s, over %.1f s", study_s,
             SERVE_BATCH_PROBE_MAX_S);
  }
  free(png);
  return rc;
}

int queue_start(server *s, mskx_err *e) {
  serve_queue *q = &s->queue;
  int n = model_contexts(s->model);
  q->n_workers = n < s->cfg.max_concurrent ? n : s->cfg.max_concurrent;
  if (q->n_workers < 1) q->n_workers = 1;
  if (!(q->workers = calloc((size_t)q->n_workers, sizeof *q->workers))) return err_set(e, MSKX_ENOMEM, "out of memory");
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->work, NULL);
  pthread_cond_init(&q->done, NULL);
  for (; q->started < q->n_workers; q->started++)
    if (pthread_create(&q->workers[q->started], NULL, worker, s))
      return err_set(e, MSKX_EIO, "cannot start the prediction scheduler thread");
  /* No request is admitted before this returns: the server listens after. */
  pthread_mutex_lock(&q->mu);
  while (!q->probe_done) pthread_cond_wait(&q->done, &q->mu);
  serve_queue_info *qi = &q->info;
  q->per_image_s = qi->per_image_s;   /* the deadline estimate's first value */
  qi->schedulers = q->n_workers;
  qi->work_s = s->cfg.timeout_ms / 2e3 < SERVE_QUEUE_WORK_S ? s->cfg.timeout_ms / 2e3 : SERVE_QUEUE_WORK_S;
  qi->derived = s->cfg.queue == 0;
  qi->capacity = qi->derived ? serve_queue_default(qi->per_image_s, q->n_workers, s->cfg.timeout_ms) : s->cfg.queue;
  q->cap = qi->capacity;
  pthread_mutex_unlock(&q->mu);
  return MSKX_OK;
}

void queue_stop(server *s) {
  serve_queue *q = &s->queue;
  if (!q->workers) return;
  pthread_mutex_lock(&q->mu);
  q->stopping = 1;
  pthread_cond_broadcast(&q->work);
  pthread_cond_broadcast(&q->done);
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < q->started; i++) pthread_join(q->workers[i], NULL);
  q->started = 0;
}

void queue_destroy(server *s) {
  serve_queue *q = &s->queue;
  if (!q->workers) return;
  free(q->workers);
  q->workers = NULL;
  pthread_cond_destroy(&q->work);
  pthread_cond_destroy(&q->done);
  pthread_mutex_destroy(&q->mu);
}

void server_queue_info(const server *s, serve_queue_info *out) { *out = s->queue.info; }

void queue_state(server *s, int *length, int *cap) {
  pthread_mutex_lock(&s->queue.mu);
  *length = s->queue.admitted;
  *cap = s->queue.cap;
  pthread_mutex_unlock(&s->queue.mu);
}

/* With q->mu held. The work ahead counts the admitted studies still being
 * decoded (their images are not queued yet) as studies of the usual size. */
static int retry_after_locked(const serve_queue *q) {
  int decoding = q->admitted * SERVE_QUEUE_STUDY_IMAGES;
  return serve_retry_after(q->per_image_s, q->queued_images > decoding ? q->queued_images : decoding, q->n_workers);
}

int queue_full(server *s, int *retry_after, int *cap) {
  serve_queue *q = &s->queue;
  pthread_mutex_lock(&q->mu);
  int full = q->admitted >= q->cap;
  *retry_after = full ? retry_after_locked(q) : 0;
  *cap = q->cap;
  pthread_mutex_unlock(&q->mu);
  return full;
}

int queue_retry_after(server *s) {
  pthread_mutex_lock(&s->queue.mu);
  int r = retry_after_locked(&s->queue);
  pthread_mutex_unlock(&s->queue.mu);
  return r;
}

static int refuse(int *reason, int why, mskx_err *e, const char *msg) {
  *reason = why;
  return err_set(e, MSKX_EBUSY, "%s", msg);
}

int queue_predict(server *s, const mskx_encoded_image *imgs, int n, const char *part, const mskx_predict_options *po,
                  double deadline, int fd, mskx_result **out, int *reason, int *retry_after, mskx_err *e) {
  serve_queue *q = &s->queue;
  *out = NULL;
  *reason = -1;
  *retry_after = 0;
  char msg[256];
  pthread_mutex_lock(&q->mu);
  if (q->stopping) {
    pthread_mutex_unlock(&q->mu);
    return refuse(reason, REJECT_SHUTDOWN, e, "the server is shutting down");
  }
  if (q->admitted >= q->cap) {
    *retry_after = retry_after_locked(q);
    pthread_mutex_unlock(&q->mu);
    snprintf(msg, sizeof msg, "busy: the queue is full (%d studies), retry later", q->cap);
    return refuse(reason, REJECT_QUEUE_FULL, e, msg);
  }
  /* What is queued ahead, spread over the scheduler threads, plus this study. */
  double est = q->per_image_s * (q->queued_images / (double)q->n_workers + n), left = deadline - now_seconds();
  if (left <= 0 || est > left) {
    *retry_after = retry_after_locked(q);
    pthread_mutex_unlock(&q->mu);
    snprintf(msg, sizeof msg, "busy: the request's deadline cannot be met (%.0f ms left, about %.0f ms of work ahead)",
             left > 0 ? left * 1e3 : 0, est * 1e3);
    return refuse(reason, REJECT_DEADLINE, e, msg);
  }
  q->admitted++;
  pthread_mutex_unlock(&q->mu);

  /* Decoding on this thread, in parallel with the batches being computed. */
  job j = {.fd = fd, .state = JOB_QUEUED};
  int rc = model_study_prepare_encoded(s->model, imgs, n, part, po, &j.st, e);
  if (rc == MSKX_EBUSY) *reason = REJECT_DECODE_BUDGET;
  pthread_mutex_lock(&q->mu);
  if (!rc) {
    j.images = model_study_images(j.st);
    j.t_queued = now_seconds();
    if (q->tail) q->tail->next = &j;
    else q->head = &j;
    q->tail = &j;
    q->queued++;
    q->queued_images += j.images;
    pthread_cond_signal(&q->work);
    while (j.state != JOB_DONE) {
      double now = now_seconds();
      if (j.state == JOB_QUEUED) {
        /* Computing cannot be interrupted; waiting can. */
        if (q->stopping) {
          unlink_job(q, &j);
          rc = refuse(reason, REJECT_SHUTDOWN, e, "the server is shutting down");
          break;
        }
        if (now >= deadline) {
          unlink_job(q, &j);
          *retry_after = retry_after_locked(q);
          snprintf(msg, sizeof msg, "busy: the request's deadline passed after %.0f ms in the queue",
                   (now - j.t_queued) * 1e3);
          rc = refuse(reason, REJECT_DEADLINE, e, msg);
          break;
        }
        if (client_gone(fd)) {
          unlink_job(q, &j);
          j.gone = 1;
          break;
        }
      }
      struct timespec ts;
      double wait = deadline - now;
      abs_time(j.state == JOB_QUEUED && wait < QUEUE_POLL_S ? (wait > 0 ? wait : 0) : QUEUE_POLL_S, &ts);
      pthread_cond_timedwait(&q->done, &q->mu, &ts);
    }
    if (j.gone) {
      *reason = REJECT_CLIENT_GONE;
      rc = err_set(e, MSKX_EIO, "the client closed the connection while its request was queued");
    }
  }
  q->admitted--;
  pthread_mutex_unlock(&q->mu);
  if (!rc) rc = model_study_result(j.st, out, e);
  model_study_free(j.st);
  return rc;
}
