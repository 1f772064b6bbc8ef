/* The MPI side of `pixart batch`, behind a tiny interface: the only file that
 * includes <mpi.h> is batch_mpi.c, and a build without MPI (configure
 * --without-mpi, or no MPI found) compiles the same file into a stub that
 * reports one process. See doc/batch.md. */
#ifndef PX_BATCH_MPI_H
#define PX_BATCH_MPI_H

typedef struct {
    int rank, size;             /* in MPI_COMM_WORLD (0 and 1 without MPI) */
    int local_rank, local_size; /* on this node (MPI_COMM_TYPE_SHARED split) */
} px_mpi_info;

/* MPI_Init when the process was started by an MPI launcher (mpirun, mpiexec,
 * srun: their environment variables say so), else one process without
 * touching MPI. Returns 0, or -1 with a message on stderr. */
int px_mpi_init(int *argc, char ***argv, px_mpi_info *info);
/* Collective calls; no-ops for one process. */
void px_mpi_barrier(void);
int px_mpi_bcast_ints(int *buf, int n);  /* from rank 0; 0 or -1 */
int px_mpi_allreduce_max(int v);         /* the largest v of all ranks */
void px_mpi_finalize(void);
/* "Open MPI v4.1.4 ..." or "not built with MPI" (for --help and errors). */
const char *px_mpi_library(void);

#endif
