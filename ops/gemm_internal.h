/* Internal to ops/: running single-threaded cblas_sgemm calls from our own
 * OpenMP threads (ops/gemm.c explains why). Not installed, not public API. */
#ifndef PX_GEMM_INTERNAL_H
#define PX_GEMM_INTERNAL_H

#include <stdint.h>

/* Before an OpenMP region whose threads call cblas: with a pthreads OpenBLAS
 * and more than one thread, sets OpenBLAS to one thread and returns 1 (else 0).
 * px_blas_leave(returned value) restores the thread count. */
int px_blas_enter(void);
void px_blas_leave(int entered);

/* One row-major cblas_sgemm call on the calling thread (no tiling). */
void px_sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
