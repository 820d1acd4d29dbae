/* The shared byte budget (see budget.h): a mutex, a counter and a condition
 * variable; waiters wake when bytes are given back and give up at a deadline. */
#include "core/budget.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "core/error.h"

struct mem_budget {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t cap, used;
  int wait_ms;
};

int mem_budget_create(uint64_t cap, int wait_ms, mem_budget **out, mskx_err *e) {
  *out = NULL;
  if (cap == 0 || wait_ms < 0) return err_set(e, MSKX_EINVAL, "budget: cap must be > 0 and wait >= 0");
  mem_budget *b = calloc(1, sizeof *b);
  if (!b) return err_set(e, MSKX_ENOMEM, "out of memory");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  /* Deadlines on the monotonic clock: a wall-clock step must not stretch a wait. */
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, &ca);
  pthread_condattr_destroy(&ca);
  b->cap = cap;
  b->wait_ms = wait_ms;
  *out = b;
  return MSKX_OK;
}

void mem_budget_destroy(mem_budget *b) {
  if (!b) return;
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  free(b);
}

static double mib(uint64_t n) { return (double)n / (1024.0 * 1024.0); }

int mem_budget_take(mem_budget *b, uint64_t bytes, const char *what, mskx_err *e) {
  if (bytes == 0) return MSKX_OK;
  if (bytes > b->cap)
    return err_set(e, MSKX_ELIMIT, "%s: decoding needs %.1f MiB, above the decode memory budget of %.1f MiB", what,
                   mib(bytes), mib(b->cap));
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += b->wait_ms / 1000;
  dl.tv_nsec += (long)(b->wait_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&b->mu);
  int timed_out = 0;
  while (b->used + bytes > b->cap && !timed_out)
    timed_out = pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT;
  int ok = b->used + bytes <= b->cap;
  if (ok) b->used += bytes;
  uint64_t used = b->used;
  pthread_mutex_unlock(&b->mu);
  if (ok) return MSKX_OK;
  return err_set(e, MSKX_EBUSY, "%s: the decode memory budget is spent (%.1f of %.1f MiB in use, %.1f MiB needed), "
                 "retry later", what, mib(used), mib(b->cap), mib(bytes));
}

void mem_budget_give(mem_budget *b, uint64_t bytes) {
  if (bytes == 0) return;
  pthread_mutex_lock(&b->mu);
  b->used = bytes > b->used ? 0 : b->used - bytes;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

uint64_t mem_budget_cap(const mem_budget *b) { return b->cap; }

uint64_t mem_budget_used(mem_budget *b) {
  pthread_mutex_lock(&b->mu);
  uint64_t u = b->used;
  pthread_mutex_unlock(&b->mu);
  return u;
}
