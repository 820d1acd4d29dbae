/* Data-parallel training across processes: the few collectives the trainer
 * needs, over MPI when mskx is built with it (MSKX_HAVE_MPI), plus a bucketed
 * gradient all-reduce that overlaps backward (grad_sync). Without MPI only a
 * one-process world exists and every call is trivial. The program (the CLI)
 * initialises and finalises MPI; nothing here prints or aborts.
 *
 * Failure protocol: collectives must be entered by every process in the same
 * order, so a process that fails must not simply return while the others wait.
 * At agreement points (dist_agree, dist_step) every process reports its
 * status; if any failed, all of them return an error carrying the failing
 * process's message, and the caller unwinds normally. A process that fails
 * between agreement points (inside a step's collectives) calls dist_break and
 * returns; its program must then end the whole job (MPI_Abort), since the
 * others are waiting inside a collective. dist_break tells them: each
 * collective waits in a loop that also looks for such a note, so the others
 * stop waiting, return an error naming the failed process and its message,
 * and end the job the same way (dist_failed_rank is -1 for them too).
 *
 * The communicators used here have MPI_ERRORS_RETURN, so a failing MPI call
 * (a bad argument, a broken connection MPI can report) is an error with a
 * message like any other, handled by the protocol above; MPI_COMM_WORLD's
 * handler is the program's and is left as it is. */
#ifndef MSKX_DIST_DIST_H
#define MSKX_DIST_DIST_H
#include <stddef.h>
#include <stdint.h>
#include "mskx.h"

typedef struct dist dist;

/* 1 when built with MPI. */
int dist_built_with_mpi(void);

/* Every process of the MPI job (MPI must be initialised, with at least
 * MPI_THREAD_FUNNELED: all calls come from the thread that created it). */
int dist_create_world(dist **out, mskx_err *e);
void dist_destroy(dist *d);
int dist_rank(const dist *d);
int dist_size(const dist *d);

/* Agreement on rc (collective): returns MSKX_OK when every process passed 0.
 * Otherwise every process returns the code of the lowest failing rank K;
 * K keeps its own message, the others get "rank K: <K's message>". */
int dist_agree(dist *d, int rc, mskx_err *e);
/* The rank whose failure the latest agreement reported, or -1 when this
 * process's error was not agreed (the others do not know of it). */
int dist_failed_rank(const dist *d);
/* This process left a collective region on error e: agreements now return
 * rc at once, without communicating (the job must be aborted). The others
 * are sent a note of e, so that those waiting in a collective that cannot
 * complete now stop and fail with "rank K failed inside a training step:
 * <K's message>" (they too must then abort). */
void dist_break(dist *d, const mskx_err *e);

/* The per-step agreement: status, whether this process's epoch has ended
 * (its loader has no batch), and its batch size. Sets *ended when any
 * process's epoch ended and *total to the global batch size. */
int dist_step(dist *d, int rc, int ended, int count, int *any_ended, int *total, mskx_err *e);

/* In-place sum over all processes. */
int dist_sum(dist *d, double *v, size_t n, mskx_err *e);
/* Rank 0's values to every process. */
int dist_bcast_floats(dist *d, float *v, size_t n, mskx_err *e);
int dist_bcast_bytes(dist *d, void *v, size_t n, mskx_err *e);
/* Fails on every process unless all passed the same value; the message says
 * that the processes disagree on `what`. */
int dist_check_same(dist *d, uint64_t value, const char *what, mskx_err *e);

/* layer_ctx.bn_sum: dist_sum for synchronised batch norm. It runs inside a
 * step, so a failure leaves the others in a collective: the caller must
 * dist_break and return (train_step does). */
int dist_bn_sum(void *d, double *v, int n, mskx_err *e);

/* Seconds spent inside collectives (waiting included) since creation. */
double dist_comm_seconds(const dist *d);

/* Gradient all-reduce in buckets of about bucket_elems floats laid from the
 * end of the buffer (backward finishes gradients from the end first): a
 * bucket's non-blocking sum starts as soon as all its gradients are reported
 * by grad_sync_ready, and grad_sync_finish starts the rest and waits. */
typedef struct grad_sync grad_sync;

#define GRAD_SYNC_BUCKET_DEFAULT (1u << 20) /* 4 MiB of floats: ~a dozen buckets for DenseNet-169 */

int grad_sync_create(dist *d, float *grads, size_t n, size_t bucket_elems, grad_sync **out, mskx_err *e);
void grad_sync_destroy(grad_sync *g);
/* Before each backward. */
void grad_sync_begin(grad_sync *g);
/* layer_ctx.grad_ready: grads [offset, offset + numel) are final. */
void grad_sync_ready(void *g, size_t offset, size_t numel);
/* After backward: every bucket summed in place. */
int grad_sync_finish(grad_sync *g, mskx_err *e);

#endif
