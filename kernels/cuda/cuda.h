/* Private switches of the CUDA backend, for tests and benchmarks. */
#ifndef CVN_CUDA_H
#define CVN_CUDA_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif
/* GEMM path: our tiled kernel (true) or cuBLAS (false); CVN_CUDA_GEMM=native|cublas sets the
 * default. */
void cvn_cuda_set_native_gemm(bool native);
/* Convolution path: im2col + GEMM with our kernels (true) or cuDNN (false, the default unless
 * CVN_CUDA_CONV=native); cuDNN is used only where it started (cvn_cuda_has_cudnn). */
void cvn_cuda_set_native_conv(bool native);
/* Our kernels (true) or cuDNN (false) for convolution, pooling and batch norm together. */
void cvn_cuda_set_native_dnn(bool native);
bool cvn_cuda_has_cudnn(void);
/* Waits for every queued kernel (timing). */
void cvn_cuda_synchronize(void);
#ifdef __cplusplus
}
#endif

#endif
