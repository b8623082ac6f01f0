/* Private switches of the CUDA backend, for tests and benchmarks. */
#ifndef CVN_CUDA_H
#define CVN_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* GEMM path: our tiled kernel (true) or cuBLAS (false); CVN_CUDA_GEMM=native|cublas sets the
 * default. */
void cvn_cuda_set_native_gemm(bool native);
/* Convolution path: cuDNN (the default; where cuDNN did not start, our implicit GEMM), our
 * implicit-GEMM kernels (CVN_CUDA_CONV=native), or the op's im2col + GEMM (CVN_CUDA_CONV=im2col).
 */
typedef enum {
    CVN_CUDA_CONV_CUDNN,
    CVN_CUDA_CONV_IMPLICIT,
    CVN_CUDA_CONV_IM2COL
} cvn_cuda_conv_path;
void cvn_cuda_set_conv_path(cvn_cuda_conv_path path);
/* Whether our implicit GEMM times its variants (tile size, K slices) the first time a shape comes
 * (true, the default; CVN_CUDA_TUNE=0 turns it off) or takes its rule of thumb. Setting it forgets
 * what earlier timings picked. */
void cvn_cuda_set_conv_tuning(bool on);
/* Whether our implicit GEMM's forward and backward-data products run K tap-major wherever they
 * can (true), whatever tuning or the rule of thumb picked (false, the default). */
void cvn_cuda_set_conv_taps(bool on);
/* Where our implicit GEMM multiplies on tensor cores in three TF32 products (3xTF32, FP32's
 * accuracy): where tuning found that faster, on either tensor-core kernel (CVN_CUDA_MMA_TUNED, the
 * default), never (CVN_CUDA_MMA_NEVER, CVN_CUDA_MMA=0), or everywhere on the one that fetches a
 * step ahead into registers (CVN_CUDA_MMA_STAGED, CVN_CUDA_MMA=1) or on the pipelined one,
 * cp.async a few steps ahead (CVN_CUDA_MMA_ASYNC, CVN_CUDA_MMA=2). */
typedef enum {
    CVN_CUDA_MMA_TUNED = -1,
    CVN_CUDA_MMA_NEVER,
    CVN_CUDA_MMA_STAGED,
    CVN_CUDA_MMA_ASYNC
} cvn_cuda_mma;
void cvn_cuda_set_conv_mma(cvn_cuda_mma use);
/* Our kernels (true: implicit-GEMM convolution) or cuDNN (false) for convolution, pooling and
 * batch norm together. */
void cvn_cuda_set_native_dnn(bool native);
bool cvn_cuda_has_cudnn(void);
/* What cuDNN's search (cudnnFind...Algorithm, run once per convolution shape on the cuDNN path)
 * timed for the shape it met last: per product ("fwd:", "bwd data:", "bwd filter:"), each
 * algorithm that ran and its time, fastest first (the one the backend uses), as text into buf (at
 * most size bytes, ended by a 0). Returns the text's full length (more than size - 1 where it was
 * cut short), 0 where cuDNN searched nothing (no cuDNN, the emulation, no convolution yet). */
size_t cvn_cuda_cudnn_search(char *buf, size_t size);
/* Whether batches from page-locked memory cross on the copy stream, overlapping the compute
 * stream's kernels (true, the default; CVN_CUDA_COPY_STREAM=0 turns it off), or are copied on the
 * compute stream in its order. */
void cvn_cuda_set_copy_stream(bool on);
/* True in the CPU emulation of the backend (built with CVN_CUDA_EMU for test_cuda_emulated):
 * kernels run on the host, copies finish when queued, there is no cuBLAS or cuDNN. */
bool cvn_cuda_emulated(void);
/* How many times the backend has called cudaMalloc (arena chunks, scratch, workspaces, staging
 * buffers): a steady training step adds none. */
long cvn_cuda_mallocs(void);
/* Waits for every queued kernel (timing). */
void cvn_cuda_synchronize(void);
#ifdef __cplusplus
}
#endif

#endif
