/* CPU pinning of the OpenMP compute threads (core/affinity.h). */
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include "core/affinity.h"
#include "test.h"

static int allowed_cpus(cpu_set_t *set) {
  if (sched_getaffinity(0, sizeof *set, set)) return 0;
  return CPU_COUNT(set);
}

TEST(pins_one_thread_per_cpu_and_unpins) {
  unsetenv("OMP_PROC_BIND");
  unsetenv("GOMP_CPU_AFFINITY");
  cpu_set_t all;
  int ncpu = allowed_cpus(&all);
  if (ncpu < 2) {
    printf("# one CPU: nothing to pin\n");
    CHECK_EQ_INT(affinity_pin_threads(1, 0, NULL, 0), 0);
    return;
  }
  char why[128];
  CHECK_EQ_INT(affinity_pin_threads(2, 0, why, sizeof why), 2);
  printf("# %s\n", why);
  int cpu_of[2] = {-1, -1}, count_of[2] = {0, 0};
#pragma omp parallel num_threads(2)
  {
    cpu_set_t s;
    int t = omp_get_thread_num();
    if (t < 2 && !pthread_getaffinity_np(pthread_self(), sizeof s, &s)) {
      count_of[t] = CPU_COUNT(&s);
      for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &s)) cpu_of[t] = c;
    }
  }
  CHECK_EQ_INT(count_of[0], 1);
  CHECK_EQ_INT(count_of[1], 1);
  CHECKF(cpu_of[0] != cpu_of[1] && CPU_ISSET(cpu_of[0], &all) && CPU_ISSET(cpu_of[1], &all),
         "threads on CPUs %d and %d", cpu_of[0], cpu_of[1]);
  /* The master is pinned now; a helper thread gives itself the whole set back. */
  cpu_set_t s;
  thread_unpin();
  CHECK(!pthread_getaffinity_np(pthread_self(), sizeof s, &s) && CPU_EQUAL(&s, &all));
  /* An offset (the MPI local rank's share) starts further on, wrapping around. */
  CHECK_EQ_INT(affinity_pin_threads(1, 1, why, sizeof why), 1);
  CHECK(!pthread_getaffinity_np(pthread_self(), sizeof s, &s) && CPU_COUNT(&s) == 1 && !CPU_ISSET(cpu_of[0], &s));
  thread_unpin();
}

/* Helper threads unpin themselves while the compute thread pins again (the
 * saved CPU set is shared state: guarded, so each helper reads a whole set),
 * and pinning leaves the caller's OpenMP team size alone. */
static cpu_set_t helper_all;
static int helper_ok[4];

static void *helper(void *arg) {
  int *ok = arg;
  cpu_set_t s;
  for (int i = 0; i < 200; i++) {
    thread_unpin();
    if (pthread_getaffinity_np(pthread_self(), sizeof s, &s) || !CPU_EQUAL(&s, &helper_all)) return NULL;
  }
  *ok = 1;
  return NULL;
}

TEST(unpin_while_pinning_and_team_size_untouched) {
  unsetenv("OMP_PROC_BIND");
  unsetenv("GOMP_CPU_AFFINITY");
  int ncpu = allowed_cpus(&helper_all);
  if (ncpu < 2) {
    printf("# one CPU: nothing to pin\n");
    return;
  }
  omp_set_num_threads(ncpu > 2 ? ncpu - 1 : ncpu);
  int team = omp_get_max_threads();
  CHECK_EQ_INT(affinity_pin_threads(2, 0, NULL, 0), 2);
  CHECK_EQ_INT(omp_get_max_threads(), team);
  thread_unpin();
  pthread_t th[4];
  for (int t = 0; t < 4; t++) CHECK(pthread_create(&th[t], NULL, helper, &helper_ok[t]) == 0);
  for (int i = 0; i < 50; i++) affinity_pin_threads(2, i, NULL, 0);
  thread_unpin();
  for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < 4; t++) CHECKF(helper_ok[t], "helper %d did not get the whole CPU set back", t);
}

TEST(leaves_placement_alone_when_asked) {
  char why[128];
  setenv("OMP_PROC_BIND", "close", 1);
  CHECK_EQ_INT(affinity_pin_threads(2, 0, why, sizeof why), 0);
  unsetenv("OMP_PROC_BIND");
  cpu_set_t all;
  int ncpu = allowed_cpus(&all);
  CHECK_EQ_INT(affinity_pin_threads(ncpu + 1, 0, why, sizeof why), 0);  /* more threads than CPUs */
  CHECKF(strstr(why, "not pinned") != NULL, "%s", why);
}

TEST(local_rank_from_mpi_variables) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("MPI_LOCALRANKID");
  unsetenv("SLURM_LOCALID");
  CHECK_EQ_INT(local_rank_from_env(), 0);
  setenv("SLURM_LOCALID", "3", 1);
  CHECK_EQ_INT(local_rank_from_env(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  CHECK_EQ_INT(local_rank_from_env(), 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x1", 1);  /* malformed: ignored */
  CHECK_EQ_INT(local_rank_from_env(), 3);
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  unsetenv("SLURM_LOCALID");
}

TEST_MAIN()
