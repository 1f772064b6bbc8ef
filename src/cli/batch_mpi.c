/* `pixart batch` over MPI ranks (see batch_mpi.h): initialisation only when
 * an MPI launcher started us, the node-local split for the thread count, and
 * the three collectives batch needs (barrier, broadcast of the job list, the
 * exit status). Without PX_HAVE_MPI every call is the one-process stub. */
#include "config.h"
#include "src/cli/batch_mpi.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef PX_HAVE_MPI
#include <mpi.h>

static int mpi_on; /* MPI_Init was called */

/* Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), PMIx launchers incl. srun
 * --mpi=pmix (PMIX_RANK), PMI-1/2 launchers incl. MPICH's hydra and srun
 * --mpi=pmi2 (PMI_SIZE). A plain `pixart batch` never initialises MPI, so it
 * starts no runtime daemon. */
static int launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

int px_mpi_init(int *argc, char ***argv, px_mpi_info *info)
{
    info->rank = info->local_rank = 0;
    info->size = info->local_size = 1;
    if (!launched_by_mpi()) return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "pixart batch: MPI_Init failed\n");
        return -1;
    }
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &info->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &info->size);
    // the ranks that share this node's memory (and cores)
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &info->local_rank);
        MPI_Comm_size(node, &info->local_size);
        MPI_Comm_free(&node);
    }
    return 0;
}

void px_mpi_barrier(void)
{
    if (mpi_on) MPI_Barrier(MPI_COMM_WORLD);
}

int px_mpi_bcast_ints(int *buf, int n)
{
    if (!mpi_on || n <= 0) return 0;
    return MPI_Bcast(buf, n, MPI_INT, 0, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

int px_mpi_allreduce_max(int v)
{
    int out = v;
    if (mpi_on) MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

void px_mpi_finalize(void)
{
    if (mpi_on) MPI_Finalize();
    mpi_on = 0;
}

const char *px_mpi_library(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    int len = 0;
    if (!buf[0] && MPI_Get_library_version(buf, &len) == MPI_SUCCESS) {
        for (int i = 0; buf[i]; i++)
            if (buf[i] == '\n' || buf[i] == ',') buf[i] = 0; // the first line / clause is enough
    }
    return buf[0] ? buf : "MPI";
}

#else // ---- the stub: one process ------------------------------------------

int px_mpi_init(int *argc, char ***argv, px_mpi_info *info)
{
    (void)argc;
    (void)argv;
    info->rank = info->local_rank = 0;
    info->size = info->local_size = 1;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1) {
        // N copies would each do every job and write the same files
        fprintf(stderr, "pixart batch: started by an MPI launcher with %s processes, but this pixart was built "
                        "without MPI (configure --with-mpi)\n", n);
        return -1;
    }
    return 0;
}

void px_mpi_barrier(void) {}
int px_mpi_bcast_ints(int *buf, int n)
{
    (void)buf;
    (void)n;
    return 0;
}
int px_mpi_allreduce_max(int v) { return v; }
void px_mpi_finalize(void) {}
const char *px_mpi_library(void) { return "not built with MPI"; }

#endif
