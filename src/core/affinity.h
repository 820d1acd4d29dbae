/* Pinning the OpenMP compute threads to CPUs. The CLI pins by default for the
 * compute-bound commands: the memory-bound kernels give each thread a fixed
 * share of rows, so a thread that the scheduler moves to another core loses
 * its cache (the densenet169 fp32 training step is about 8% faster pinned,
 * docs/benchmarks.md). Library users decide for themselves. */
#ifndef MSKX_CORE_AFFINITY_H
#define MSKX_CORE_AFFINITY_H
#include <stddef.h>

/* Pins thread t of an OpenMP team of `threads` (<= 0: OpenMP's default) to
 * the (first + t)-th CPU of the process's CPU set (wrapping around). Does
 * nothing, returning 0, when the team is larger than the CPU set or when
 * OMP_PROC_BIND / GOMP_CPU_AFFINITY leave placement to OpenMP (the CLI's
 * MSKX_PIN=0 is the CLI's own switch: it does not call this then); returns the number of threads pinned otherwise. Remembers the CPU
 * set it started from for thread_unpin. why (may be NULL) says what was done.
 * The pinned threads are those of the calling thread's OpenMP pool; the team
 * size of later regions is the caller's business (the CLI sets it to the
 * same count, so its regions run on the pinned threads), not changed here.
 * Safe to call while other threads call thread_unpin. */
int affinity_pin_threads(int threads, int first, char *why, size_t why_len);

/* Gives the calling thread the CPU set the process had before
 * affinity_pin_threads (for helper threads, e.g. image decoders, created by a
 * pinned thread and inheriting its single CPU). No-op if nothing was pinned. */
void thread_unpin(void);

/* This process's index among the MPI ranks of its host (OpenMPI, MPICH,
 * Slurm variables), 0 outside MPI. */
int local_rank_from_env(void);

#endif
