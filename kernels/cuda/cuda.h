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
 * default, CVN_CUDA_MMA=tuned), never (CVN_CUDA_MMA_NEVER, CVN_CUDA_MMA=0), or everywhere on the
 * one that fetches a step ahead into registers (CVN_CUDA_MMA_STAGED, CVN_CUDA_MMA=1) or on the
 * pipelined one, cp.async a few steps ahead (CVN_CUDA_MMA_ASYNC, CVN_CUDA_MMA=2). */
typedef enum {
    CVN_CUDA_MMA_TUNED = -1,
    CVN_CUDA_MMA_NEVER,
    CVN_CUDA_MMA_STAGED,
    CVN_CUDA_MMA_ASYNC
} cvn_cuda_mma;
void cvn_cuda_set_conv_mma(cvn_cuda_mma use);
/* The largest Winograd tile F(m x m, 3 x 3) that tuning may pick for our three products (forward,
 * backward data, the filter's gradient) of 3 x 3, stride-1, ungrouped convolutions: 2 (the
 * default: F(2x2) is as accurate as the implicit GEMM), 4 (F(4x4) too: 4 times fewer
 * multiplications, errors 4-8 times larger) or 0 (never); CVN_CUDA_WINOGRAD=0|2|4 sets the
 * default. always: F(largest x largest) wherever it can run, not timed against the implicit GEMM
 * (tests, benchmarks). Offered only where tuning chooses the kernels (CVN_CUDA_MMA unset) and K's
 * order (cvn_cuda_set_conv_taps off), with room for its transforms of at most 1 GiB. Timings are
 * kept per setting. */
void cvn_cuda_set_conv_winograd(int largest, bool always);
/* The room Winograd's rounds of images aim at (U, V and M of as many images as fit, at least
 * one), which tuning times beside all images at once: 24 MiB by default (0), so that a round's V
 * and M stay in a GPU's second-level cache from one kernel to the next. Setting another forgets
 * what earlier timings picked. */
void cvn_cuda_set_conv_winograd_round(size_t bytes);
/* What our convolution ran for the last product of each kind ("fwd:", "bwd data:", "bwd
 * filter:": implicit or Winograd, the tile, FP32 or 3xTF32) since cvn_cuda_use_path, as text into
 * buf as cvn_cuda_cudnn_search does; 0 where none ran. */
size_t cvn_cuda_conv_picks(char *buf, size_t size);
/* What tuning timed the last time it timed each product (for the shape it met then), one line per
 * product ("fwd: ", then each variant as cvn_cuda_conv_picks names it, its time in ms, the room
 * Winograd's variants take in MiB, and "(kept)" after the one kept; fastest first, ", " between),
 * into buf as cvn_cuda_cudnn_search does; 0 where tuning timed nothing. */
size_t cvn_cuda_conv_tuning(char *buf, size_t size);
/* Our kernels (true: implicit-GEMM convolution) or cuDNN (false) for convolution, pooling and
 * batch norm together. */
void cvn_cuda_set_native_dnn(bool native);
bool cvn_cuda_has_cudnn(void);
/* What cuDNN's search (cudnnFind...Algorithm, run once per convolution shape on the cuDNN path)
 * timed for the shape it met last: per product ("fwd:", "bwd data:", "bwd filter:"), each
 * algorithm that ran, fastest first, its time, its workspace in MiB where it needs one, and
 * "(kept)" after the one the backend uses (the fastest, or one within 3 % of it that needs less
 * workspace), as text into buf (at most size bytes, ended by a 0). Returns the text's full length
 * (more than size - 1 where it was cut short), 0 where cuDNN searched nothing (no cuDNN, the
 * emulation, no convolution yet). */
size_t cvn_cuda_cudnn_search(char *buf, size_t size);
/* The configurations the GPU harness (tests/test_cuda.c) and benchmark (bench/bench_cuda.c) run,
 * by number: 0 cuDNN (convolution, pooling, batch norm) + cuBLAS; then our pooling and batch norm
 * with 1 im2col + cuBLAS, 2 im2col + our GEMM, 3 our convolution + our GEMM (the default's choices
 * among our kernels: tile, K slices, K order, FP32 or tensor cores, implicit GEMM or Winograd
 * F(2x2), timed per shape), 4 our implicit GEMM with its rule of thumb instead of timings, 5 as 3
 * with K tap-major wherever the product allows, 6 as 3 on tensor cores (3xTF32) throughout,
 * fetching a step ahead into registers, 7 the same pipelined (cp.async) (4-7: no Winograd), 8 as
 * 3 with Winograd F(2x2) wherever it can run, 9 the same with F(4x4). */
#define CVN_CUDA_PATHS 10
const char *cvn_cuda_path_name(int path);
void cvn_cuda_use_path(int path);
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
/* The bytes of GPU memory the backend holds now, as asked of cudaMalloc (which rounds each block
 * up a little): tensors, tapes' arena chunks, its scratch (our convolution's Winograd room and
 * tap-major weights, batch norm's partial sums, cuDNN's workspace) and the loader's staging
 * buffers; not what cuBLAS and cuDNN hold themselves. */
size_t cvn_cuda_memory_in_use(void);
/* The most bytes in use since the last cvn_cuda_reset_memory_peak (which sets it to those in use
 * then), or since the start. */
size_t cvn_cuda_memory_peak(void);
void cvn_cuda_reset_memory_peak(void);
/* At most this many bytes in use (0, the default: as many as cudaMalloc gives;
 * CVN_CUDA_MEMORY_LIMIT sets it in MiB). A tensor or arena chunk that would pass the limit, or that
 * cudaMalloc refuses, is tried again once the scratch is freed, then fails with CVN_ERR_NOMEM;
 * scratch that only makes a way faster (Winograd's room) is not taken past it, and the slower way
 * runs. Lowering it frees nothing. */
void cvn_cuda_set_memory_limit(size_t bytes);
/* Frees the backend's scratch, which grows back when next needed (as when an allocation fails);
 * returns the bytes freed. */
size_t cvn_cuda_release_scratch(void);
/* Waits for every queued kernel (timing). */
void cvn_cuda_synchronize(void);
/* Waits for the queued kernels, then starts (true) or stops (false) the profiler's capture
 * (cudaProfilerStart / Stop), so that `ncu --profile-from-start off` sees only what lies between:
 * bench_cuda's timed runs, past warm-up and tuning. */
void cvn_cuda_profile(bool on);
#ifdef __cplusplus
}
#endif

#endif
