/* Collectives for data-parallel training over MPI, or a one-process world
 * when mskx is built without MPI (see dist.h). */
#include "dist/dist.h"
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#ifdef MSKX_HAVE_MPI
#include <mpi.h>
#endif

struct dist {
#ifdef MSKX_HAVE_MPI
  /* Both have MPI_ERRORS_RETURN: an MPI failure comes back as a code that
   * mpi_check turns into this library's error (MPI's default handler would
   * end the job from inside MPI with MPI's own message). */
  MPI_Comm comm;       /* the collectives */
  MPI_Comm comm_grad;  /* the gradient buckets, so their order is independent of the rest */
  MPI_Comm comm_note;  /* point-to-point notes of a failure that leaves collectives unmatched (dist_break) */
#endif
  int rank, size;
  int failed_rank;
  int broken;
  double comm_s;
};

int dist_rank(const dist *d) { return d ? d->rank : 0; }
int dist_size(const dist *d) { return d ? d->size : 1; }
int dist_failed_rank(const dist *d) { return d ? d->failed_rank : -1; }
double dist_comm_seconds(const dist *d) { return d ? d->comm_s : 0; }

#ifdef MSKX_HAVE_MPI

int dist_built_with_mpi(void) { return 1; }

static int mpi_check(int rc, const char *what, mskx_err *e) {
  if (rc == MPI_SUCCESS) return MSKX_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
  return err_set(e, MSKX_EIO, "MPI %s failed: %s", what, msg);
}

int dist_create_world(dist **out, mskx_err *e) {
  *out = NULL;
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return err_set(e, MSKX_EINTERNAL, "dist_create_world: MPI is not initialised");
  dist *d = calloc(1, sizeof *d);
  if (!d) return err_set(e, MSKX_ENOMEM, "out of memory");
  d->failed_rank = -1;
  d->comm = d->comm_grad = d->comm_note = MPI_COMM_NULL;
  /* The duplicates get the error handler (inherited by the later dups);
   * MPI_COMM_WORLD, the program's, keeps whatever the program gave it. */
  int rc = mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &d->comm), "Comm_dup", e);
  if (!rc) rc = mpi_check(MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN), "Comm_set_errhandler", e);
  if (!rc) rc = mpi_check(MPI_Comm_dup(d->comm, &d->comm_grad), "Comm_dup", e);
  if (!rc) rc = mpi_check(MPI_Comm_dup(d->comm, &d->comm_note), "Comm_dup", e);
  if (!rc) rc = mpi_check(MPI_Comm_rank(d->comm, &d->rank), "Comm_rank", e);
  if (!rc) rc = mpi_check(MPI_Comm_size(d->comm, &d->size), "Comm_size", e);
  if (rc) {
    dist_destroy(d);
    return rc;
  }
  *out = d;
  return MSKX_OK;
}

void dist_destroy(dist *d) {
  if (!d) return;
  if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
  if (d->comm_grad != MPI_COMM_NULL) MPI_Comm_free(&d->comm_grad);
  if (d->comm_note != MPI_COMM_NULL) MPI_Comm_free(&d->comm_note);
  free(d);
}

/* ---- waiting that a failure elsewhere can interrupt ----
 * Every collective is started non-blocking and waited for here. A process
 * that fails between agreement points, or whose own MPI call fails (its
 * collectives are then out of step), sends each other process a note with
 * its error (dist_break); a process waiting for a collective that can now
 * never complete finds the note, stops waiting and fails with "rank K
 * failed: <K's message>", so every process of the job reports the failure
 * (then the program ends the job, see dist.h) instead of all but one
 * waiting until they are killed. */

#define NOTE_TAG 7
#define SPINS_BEFORE_YIELD 1000  /* polls at full speed first: most collectives finish within microseconds */

/* An MPI call of this process failed: its collectives are out of step with
 * the others' from here on, so they are told (dist_break). */
static int mpi_failed(dist *d, int rc, const char *what, mskx_err *e) {
  int code = mpi_check(rc, what, e);
  dist_break(d, e);
  return code;
}

static int note_received(dist *d, int from, mskx_err *e) {
  mskx_err m = {0};
  int rc = MPI_Recv(&m, (int)sizeof m, MPI_BYTE, from, NOTE_TAG, d->comm_note, MPI_STATUS_IGNORE);
  d->broken = 1;  /* this process's collectives are abandoned too; no note back */
  if (rc != MPI_SUCCESS) return mpi_check(rc, "Recv (a failure note)", e);
  m.msg[sizeof m.msg - 1] = 0;
  return err_set(e, m.code ? m.code : MSKX_EINTERNAL, "rank %d failed: %s", from, m.msg);
}

static int wait_all(dist *d, int n, MPI_Request *req, double t0, const char *what, mskx_err *e) {
  int done = 0, rc = MPI_SUCCESS;
  for (long spin = 0;; spin++) {
    if ((rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) != MPI_SUCCESS || done) break;
    int note = 0;
    MPI_Status st;
    if ((rc = MPI_Iprobe(MPI_ANY_SOURCE, NOTE_TAG, d->comm_note, &note, &st)) != MPI_SUCCESS) break;
    if (note) {
      d->comm_s += now_seconds() - t0;
      return note_received(d, st.MPI_SOURCE, e);
    }
    if (spin >= SPINS_BEFORE_YIELD) sched_yield();  /* an oversubscribed machine: let the others run */
  }
  d->comm_s += now_seconds() - t0;
  return rc == MPI_SUCCESS ? MSKX_OK : mpi_failed(d, rc, what, e);
}

/* One request started by `start` (its MPI return code), then waited for. */
static int finish(dist *d, int start_rc, MPI_Request *req, double t0, const char *what, mskx_err *e) {
  if (start_rc != MPI_SUCCESS) {
    d->comm_s += now_seconds() - t0;
    return mpi_failed(d, start_rc, what, e);
  }
  return wait_all(d, 1, req, t0, what, e);
}

static int allreduce(dist *d, void *in, void *out, int n, MPI_Datatype t, MPI_Op op, const char *what,
                     mskx_err *e) {
  MPI_Request req = MPI_REQUEST_NULL;
  double t0 = now_seconds();
  return finish(d, MPI_Iallreduce(in, out, n, t, op, d->comm, &req), &req, t0, what, e);
}

void dist_break(dist *d, const mskx_err *e) {
  if (!d || d->broken) return;
  d->broken = 1;
  if (d->size == 1) return;
  mskx_err m = {0};
  if (e) m = *e;
  if (!m.code) m.code = MSKX_EINTERNAL;
  /* A note of about 1 KiB goes out eagerly: MPI_Send returns without a
   * matching receive. Failures to send are moot: the job is being ended. */
  for (int r = 0; r < d->size; r++)
    if (r != d->rank) (void)MPI_Send(&m, (int)sizeof m, MPI_BYTE, r, NOTE_TAG, d->comm_note);
}

/* The failure of rank k becomes every process's error. */
static int share_failure(dist *d, int k, int rc, mskx_err *e) {
  mskx_err m = {0};
  if (d->rank == k) {
    if (e) m = *e;
    if (!m.code) m.code = rc;
  }
  MPI_Request req = MPI_REQUEST_NULL;
  double t0 = now_seconds();
  int mrc = finish(d, MPI_Ibcast(&m, (int)sizeof m, MPI_BYTE, k, d->comm, &req), &req, t0, "Bcast", e);
  if (mrc) return mrc;
  d->failed_rank = k;
  if (d->rank == k) return rc;
  m.msg[sizeof m.msg - 1] = 0;
  return err_set(e, m.code ? m.code : MSKX_EINTERNAL, "rank %d: %s", k, m.msg);
}

static int lowest_failing(dist *d, int failed, int *k, mskx_err *e) {
  int mine = failed ? d->rank : d->size;
  return allreduce(d, &mine, k, 1, MPI_INT, MPI_MIN, "Allreduce", e);
}

/* After an agreed failure every process is unwinding on the same path, so
 * later agreement points keep the first failure instead of talking again. */
int dist_agree(dist *d, int rc, mskx_err *e) {
  if (!d || d->size == 1 || d->broken || d->failed_rank >= 0) return rc;
  int k, mrc = lowest_failing(d, rc != 0, &k, e);
  if (mrc) return mrc;
  return k == d->size ? MSKX_OK : share_failure(d, k, rc, e);
}

int dist_step(dist *d, int rc, int ended, int count, int *any_ended, int *total, mskx_err *e) {
  if (!d || d->size == 1 || d->broken || d->failed_rank >= 0) {
    *any_ended = ended;
    *total = count;
    return rc;
  }
  /* Sums only, so one small all-reduce per step; the failing rank is found
   * with a second one, on failure only. */
  int v[3] = {rc != 0, ended != 0, count}, s[3];
  int mrc = allreduce(d, v, s, 3, MPI_INT, MPI_SUM, "Allreduce", e);
  if (mrc) return mrc;
  *any_ended = s[1] > 0;
  *total = s[2];
  if (!s[0]) return MSKX_OK;
  int k;
  if ((mrc = lowest_failing(d, rc != 0, &k, e))) return mrc;
  return share_failure(d, k, rc, e);
}

int dist_sum(dist *d, double *v, size_t n, mskx_err *e) {
  if (!d || d->size == 1 || n == 0) return MSKX_OK;
  if (n > INT_MAX) return err_set(e, MSKX_ELIMIT, "dist_sum: %zu values are too many for one all-reduce", n);
  return allreduce(d, MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, "Allreduce", e);
}

int dist_bn_sum(void *vd, double *v, int n, mskx_err *e) {
  return allreduce(vd, MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, "Allreduce of batch-norm sums (--sync-bn)", e);
}

static int bcast(dist *d, void *v, size_t n, MPI_Datatype t, size_t elem, mskx_err *e) {
  if (!d || d->size == 1) return MSKX_OK;
  const size_t chunk = (size_t)1 << 28;
  int rc = MSKX_OK;
  for (size_t off = 0; off < n && !rc; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    MPI_Request req = MPI_REQUEST_NULL;
    double t0 = now_seconds();
    rc = finish(d, MPI_Ibcast((char *)v + off * elem, (int)k, t, 0, d->comm, &req), &req, t0, "Bcast", e);
  }
  return rc;
}

int dist_bcast_floats(dist *d, float *v, size_t n, mskx_err *e) { return bcast(d, v, n, MPI_FLOAT, sizeof *v, e); }
int dist_bcast_bytes(dist *d, void *v, size_t n, mskx_err *e) { return bcast(d, v, n, MPI_BYTE, 1, e); }

int dist_check_same(dist *d, uint64_t value, const char *what, mskx_err *e) {
  if (!d || d->size == 1) return MSKX_OK;
  /* min(v) and min(~v) = ~max(v) in one all-reduce. */
  uint64_t v[2] = {value, ~value}, r[2];
  int rc = allreduce(d, v, r, 2, MPI_UINT64_T, MPI_MIN, "Allreduce", e);
  if (rc) return rc;
  if (r[0] == ~r[1]) return MSKX_OK;
  d->failed_rank = 0;  /* every process fails alike: rank 0 speaks for all */
  return err_set(e, MSKX_EINVAL, "the %d processes disagree on %s", d->size, what);
}

/* ---- bucketed gradient all-reduce ---- */

struct grad_sync {
  dist *d;
  float *g;
  size_t n, bucket;
  int nb;
  size_t *written;     /* per bucket, this step */
  MPI_Request *req;    /* MPI_REQUEST_NULL until started (and once complete) */
  char *started;
  int over;            /* a gradient was reported twice: a hook bug */
  int mpi_rc;          /* the first MPI failure inside grad_sync_ready (a void hook), else MPI_SUCCESS */
  const char *mpi_what;
};

int grad_sync_create(dist *d, float *grads, size_t n, size_t bucket_elems, grad_sync **out, mskx_err *e) {
  *out = NULL;
  if (bucket_elems == 0 || bucket_elems > INT_MAX) return err_set(e, MSKX_EINVAL, "grad_sync: bad bucket size");
  grad_sync *g = calloc(1, sizeof *g);
  if (!g) return err_set(e, MSKX_ENOMEM, "out of memory");
  g->d = d;
  g->g = grads;
  g->n = n;
  g->bucket = bucket_elems;
  g->nb = (int)((n + bucket_elems - 1) / bucket_elems);
  g->written = calloc((size_t)g->nb + 1, sizeof *g->written);
  g->req = calloc((size_t)g->nb + 1, sizeof *g->req);
  g->started = calloc((size_t)g->nb + 1, 1);
  if (!g->written || !g->req || !g->started) {
    grad_sync_destroy(g);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  for (int b = 0; b < g->nb; b++) g->req[b] = MPI_REQUEST_NULL;
  *out = g;
  return MSKX_OK;
}

void grad_sync_destroy(grad_sync *g) {
  if (!g) return;
  free(g->written);
  free(g->req);
  free(g->started);
  free(g);
}

/* Bucket b covers [lo, hi): bucket 0 ends at n. */
static void bucket_range(const grad_sync *g, int b, size_t *lo, size_t *hi) {
  *hi = g->n - (size_t)b * g->bucket;
  *lo = *hi > g->bucket ? *hi - g->bucket : 0;
}

/* Keeps the first MPI failure for grad_sync_finish to report. */
static void note_mpi(grad_sync *g, int rc, const char *what) {
  if (rc != MPI_SUCCESS && g->mpi_rc == MPI_SUCCESS) {
    g->mpi_rc = rc;
    g->mpi_what = what;
  }
}

static void start_bucket(grad_sync *g, int b) {
  size_t lo, hi;
  bucket_range(g, b, &lo, &hi);
  int rc = MPI_Iallreduce(MPI_IN_PLACE, g->g + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, g->d->comm_grad, &g->req[b]);
  if (rc != MPI_SUCCESS) g->req[b] = MPI_REQUEST_NULL;
  note_mpi(g, rc, "Iallreduce");
  g->started[b] = 1;
}

void grad_sync_begin(grad_sync *g) {
  memset(g->written, 0, (size_t)g->nb * sizeof *g->written);
  memset(g->started, 0, (size_t)g->nb);
  g->over = 0;
  g->mpi_rc = MPI_SUCCESS;
}

void grad_sync_ready(void *vg, size_t offset, size_t numel) {
  grad_sync *g = vg;
  if (numel == 0 || offset >= g->n) return;
  double t0 = now_seconds();
  size_t end = offset + numel > g->n ? g->n : offset + numel;
  for (int b = (int)((g->n - end) / g->bucket); b < g->nb; b++) {
    size_t lo, hi;
    bucket_range(g, b, &lo, &hi);
    if (hi <= offset) break;
    size_t a = offset > lo ? offset : lo, z = end < hi ? end : hi;
    if (z <= a) continue;
    g->written[b] += z - a;
    if (g->written[b] > hi - lo || g->started[b]) g->over = 1;
    else if (g->written[b] == hi - lo) start_bucket(g, b);
  }
  /* MPI progresses non-blocking collectives only inside MPI calls. */
  int flag;
  note_mpi(g, MPI_Testall(g->nb, g->req, &flag, MPI_STATUSES_IGNORE), "Testall");
  g->d->comm_s += now_seconds() - t0;
}

int grad_sync_finish(grad_sync *g, mskx_err *e) {
  double t0 = now_seconds();
  for (int b = 0; b < g->nb; b++)
    if (!g->started[b]) start_bucket(g, b);
  if (g->mpi_rc != MPI_SUCCESS) {
    g->d->comm_s += now_seconds() - t0;
    return mpi_failed(g->d, g->mpi_rc, g->mpi_what, e);
  }
  int rc = wait_all(g->d, g->nb, g->req, t0, "Iallreduce (gradients)", e);
  if (rc) return rc;
  if (g->over) return err_set(e, MSKX_EINTERNAL, "grad_sync: a gradient was reported after its bucket started");
  return MSKX_OK;
}

#else /* without MPI: one process */

int dist_built_with_mpi(void) { return 0; }

int dist_create_world(dist **out, mskx_err *e) {
  *out = calloc(1, sizeof **out);
  if (!*out) return err_set(e, MSKX_ENOMEM, "out of memory");
  (*out)->size = 1;
  (*out)->failed_rank = -1;
  return MSKX_OK;
}
void dist_destroy(dist *d) { free(d); }
int dist_agree(dist *d, int rc, mskx_err *e) { return (void)d, (void)e, rc; }
void dist_break(dist *d, const mskx_err *e) {
  (void)e;
  if (d) d->broken = 1;
}
int dist_step(dist *d, int rc, int ended, int count, int *any_ended, int *total, mskx_err *e) {
  (void)d, (void)e;
  *any_ended = ended;
  *total = count;
  return rc;
}
int dist_sum(dist *d, double *v, size_t n, mskx_err *e) { return (void)d, (void)v, (void)n, (void)e, MSKX_OK; }
int dist_bn_sum(void *d, double *v, int n, mskx_err *e) { return (void)d, (void)v, (void)n, (void)e, MSKX_OK; }
int dist_bcast_floats(dist *d, float *v, size_t n, mskx_err *e) { return (void)d, (void)v, (void)n, (void)e, MSKX_OK; }
int dist_bcast_bytes(dist *d, void *v, size_t n, mskx_err *e) { return (void)d, (void)v, (void)n, (void)e, MSKX_OK; }
int dist_check_same(dist *d, uint64_t value, const char *what, mskx_err *e) {
  return (void)d, (void)value, (void)what, (void)e, MSKX_OK;
}

struct grad_sync {
  int unused;
};
int grad_sync_create(dist *d, float *grads, size_t n, size_t bucket_elems, grad_sync **out, mskx_err *e) {
  (void)d, (void)grads, (void)n, (void)bucket_elems;
  *out = calloc(1, sizeof **out);
  return *out ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
}
void grad_sync_destroy(grad_sync *g) { free(g); }
void grad_sync_begin(grad_sync *g) { (void)g; }
void grad_sync_ready(void *g, size_t offset, size_t numel) { (void)g, (void)offset, (void)numel; }
int grad_sync_finish(grad_sync *g, mskx_err *e) { return (void)g, (void)e, MSKX_OK; }

#endif
