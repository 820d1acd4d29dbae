/* The batched prediction engine over many studies (batch_predict.h).
 * Locking: b->mu guards the slots and the counters; decoding, computing and
 * the callback run outside it. Study i lives in slot i % window from the
 * moment a decoder claims it until it is delivered, and a decoder claims i
 * only once study i - window has been delivered, so slots never clash. */
#include "infer/batch_predict.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/affinity.h"
#include "core/error.h"
#include "infer/model_batch.h"

enum slot_state { SLOT_EMPTY = 0, SLOT_DECODED };

typedef struct slot {
  int state;
  model_study *st;   /* NULL when decoding failed */
  int rc;
  mskx_err err;
} slot;

typedef struct batch_run {
  mskx_model *m;
  const batch_study *studies;
  int n, window;
  const mskx_predict_options *opt;
  pthread_mutex_t mu;
  pthread_cond_t decoded;   /* a slot was filled */
  pthread_cond_t space;     /* a study was delivered, or stopping */
  int next_decode;          /* the next study a decoder claims */
  int delivered;            /* studies handed to the callback */
  int stop;
  slot *slots;
} batch_run;

static void *decoder(void *arg) {
  /* Decode anywhere, not on the compute thread's CPU it was started from. */
  thread_unpin();
  batch_run *b = arg;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    while (!b->stop && b->next_decode < b->n && b->next_decode >= b->delivered + b->window)
      pthread_cond_wait(&b->space, &b->mu);
    if (b->stop || b->next_decode >= b->n) break;
    int i = b->next_decode++;
    pthread_mutex_unlock(&b->mu);
    slot d = {SLOT_DECODED, NULL, MSKX_OK, {0, ""}};
    const batch_study *s = &b->studies[i];
    d.rc = model_study_prepare_files(b->m, s->paths, s->n, s->part, b->opt, &d.st, &d.err);
    pthread_mutex_lock(&b->mu);
    b->slots[i % b->window] = d;
    pthread_cond_broadcast(&b->decoded);
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

static int default_decoders(void) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN), k = cores / 4;
  return k < 1 ? 1 : k > BATCH_PREDICT_DECODERS_MAX ? BATCH_PREDICT_DECODERS_MAX : (int)k;
}

/* Hands studies [from, to) to fn in order and empties their slots. */
static int deliver(batch_run *b, int from, int to, batch_predict_fn fn, void *user) {
  int stop = 0;
  for (int i = from; i < to; i++) {
    slot *s = &b->slots[i % b->window];
    mskx_result *r = NULL;
    mskx_err e = s->err;
    int rc = s->rc;
    if (!stop && !rc) rc = model_study_result(s->st, &r, &e);
    if (!stop) stop = fn(user, i, r, rc, &e);
    mskx_result_free(r);
    model_study_free(s->st);
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&b->mu);
    b->delivered = i + 1;
    pthread_cond_broadcast(&b->space);
    pthread_mutex_unlock(&b->mu);
  }
  return stop;
}

/* The compute loop on the caller's thread: waits for the next study in
 * order, takes it and the decoded studies after it, whole, up to max_batch
 * network inputs, computes them in one call and delivers them. */
static int compute_all(batch_run *b, batch_predict_fn fn, void *user, mskx_err *e) {
  int max_batch = model_max_batch(b->m), next = 0;
  model_study **st = malloc((size_t)b->window * sizeof *st);
  if (!st) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = MSKX_OK;
  while (!rc && next < b->n) {
    pthread_mutex_lock(&b->mu);
    while (b->slots[next % b->window].state != SLOT_DECODED) pthread_cond_wait(&b->decoded, &b->mu);
    int end = next, k = 0, inputs = 0;
    while (end < b->n && end - next < b->window && b->slots[end % b->window].state == SLOT_DECODED) {
      slot *s = &b->slots[end % b->window];
      int in = s->st ? model_study_images(s->st) : 0;
      if (k && inputs + in > max_batch) break;
      if (s->st) st[k++] = s->st;
      inputs += in;
      end++;
    }
    pthread_mutex_unlock(&b->mu);
    int batches = 0;
    /* Each study's own error is read when it is delivered; a failure of
     * the whole call (no memory, no context) ends the run. */
    if (k) rc = model_predict_studies(b->m, st, k, &batches, e);
    if (!rc) rc = deliver(b, next, end, fn, user);
    next = end;
  }
  free(st);
  return rc;
}

int batch_predict_files(mskx_model *m, const batch_study *studies, int n, const mskx_predict_options *opt,
                        const batch_predict_options *bo, batch_predict_fn fn, void *user, mskx_err *e) {
  err_clear(e);
  if (!m || !fn || n < 0 || (n && !studies)) return err_set(e, MSKX_EINVAL, "batch_predict_files: bad arguments");
  batch_predict_options o = {0, 0};
  if (bo) o = *bo;
  if (o.decode_threads < 0 || o.decode_threads > BATCH_PREDICT_MAX_THREADS)
    return err_set(e, MSKX_EINVAL, "decode threads must be in 0..%d", BATCH_PREDICT_MAX_THREADS);
  if (o.window < 0) return err_set(e, MSKX_EINVAL, "the decode window must not be negative");
  if (n == 0) return MSKX_OK;
  int nt = o.decode_threads ? o.decode_threads : default_decoders();
  batch_run b = {.m = m, .studies = studies, .n = n, .opt = opt};
  b.window = o.window ? o.window : BATCH_PREDICT_WINDOW;
  if (b.window < nt) b.window = nt;   /* every decoder can hold a study */
  b.slots = calloc((size_t)b.window, sizeof *b.slots);
  pthread_t *th = calloc((size_t)nt, sizeof *th);
  if (!b.slots || !th) {
    free(b.slots);
    free(th);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.decoded, NULL);
  pthread_cond_init(&b.space, NULL);
  int started = 0;
  for (; started < nt; started++)
    if (pthread_create(&th[started], NULL, decoder, &b)) break;
  int rc = started ? compute_all(&b, fn, user, e) : err_set(e, MSKX_EINTERNAL, "cannot start the decoding threads");
  pthread_mutex_lock(&b.mu);
  b.stop = 1;
  pthread_cond_broadcast(&b.space);
  pthread_mutex_unlock(&b.mu);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < b.window; i++) model_study_free(b.slots[i].st);
  pthread_cond_destroy(&b.decoded);
  pthread_cond_destroy(&b.space);
  pthread_mutex_destroy(&b.mu);
  free(b.slots);
  free(th);
  return rc;
}
