/* Test-only fault injection through MPI's profiling interface: preloaded into
 * one process of a job (LD_PRELOAD, see dist_test.sh), it turns that
 * process's Nth all-reduce (MPI_Allreduce or MPI_Iallreduce, counted together;
 * N from MSKX_FAULT_ALLREDUCE, unset or 0: none) into a real MPI error: the
 * call reaches MPI with an invalid count, so MPI raises MPI_ERR_COUNT through
 * the communicator's error handler, fatal by default and returned with
 * MPI_ERRORS_RETURN. Nothing in libmskx knows of it. */
#include <mpi.h>
#include <stdlib.h>

static long calls, fail_at = -1;

/* The count to pass on: -1 for the chosen call. */
static int count_for(int count) {
  if (fail_at < 0) {
    const char *v = getenv("MSKX_FAULT_ALLREDUCE");
    fail_at = v ? strtol(v, NULL, 10) : 0;
  }
  return fail_at > 0 && ++calls == fail_at ? -1 : count;
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  return PMPI_Allreduce(sendbuf, recvbuf, count_for(count), type, op, comm);
}

int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req) {
  return PMPI_Iallreduce(sendbuf, recvbuf, count_for(count), type, op, comm, req);
}
