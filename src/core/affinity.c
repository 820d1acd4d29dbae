/* CPU pinning of the OpenMP compute threads (see affinity.h). */
#include "core/affinity.h"
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CPU set before the first pinning, read by helper threads (thread_unpin)
 * while the compute thread may pin again: guarded by saved_lock. */
static pthread_mutex_t saved_lock = PTHREAD_MUTEX_INITIALIZER;
static cpu_set_t saved_set;
static int saved;

static int env_set(const char *name) {
  const char *v = getenv(name);
  return v && *v;
}

int local_rank_from_env(void) {
  static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) {
      char *end;
      long r = strtol(v, &end, 10);
      if (*end == '\0' && r >= 0 && r < 1 << 20) return (int)r;
    }
  }
  return 0;
}

int affinity_pin_threads(int threads, int first, char *why, size_t why_len) {
  char dummy[8];
  if (!why) why = dummy, why_len = sizeof dummy;
  if (env_set("OMP_PROC_BIND") || env_set("GOMP_CPU_AFFINITY"))
    return snprintf(why, why_len, "not pinned (OpenMP's placement variables are set)"), 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set)) return snprintf(why, why_len, "not pinned (no CPU set)"), 0;
  int cpus[CPU_SETSIZE], ncpu = 0;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) cpus[ncpu++] = c;
  int team = threads > 0 ? threads : omp_get_max_threads();
  if (ncpu < 2 || team > ncpu)
    return snprintf(why, why_len, "not pinned (%d threads on %d CPUs)", team, ncpu), 0;
  pthread_mutex_lock(&saved_lock);
  if (!saved) {
    saved_set = set;
    saved = 1;
  }
  pthread_mutex_unlock(&saved_lock);
  if (first < 0) first = 0;
  int pinned = 0;
#pragma omp parallel num_threads(team) reduction(+ : pinned)
  {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[(first + omp_get_thread_num()) % ncpu], &one);
    pinned += pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  snprintf(why, why_len, "%d compute threads pinned from CPU %d", pinned, cpus[first % ncpu]);
  return pinned;
}

void thread_unpin(void) {
  pthread_mutex_lock(&saved_lock);
  int have = saved;
  cpu_set_t set = saved_set;
  pthread_mutex_unlock(&saved_lock);
  if (have) (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
