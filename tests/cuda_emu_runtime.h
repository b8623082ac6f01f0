/* The CUDA runtime calls that kernels/cuda/backend_cuda.cu makes, on a CPU, so that the whole
 * backend (memory, copies, streams and events, the upload ring, the launch plans and tuning, and
 * every kernel, under cuda_emu.h) runs where there is no GPU. backend_cuda.cu built with
 * -DCVN_CUDA_EMU includes this header instead of cuda_runtime.h; make builds it so and links it,
 * with cuda_emu_vendor.cpp (no cuBLAS, no cuDNN), into test_cuda_emulated: the GPU harness
 * tests/test_cuda.c with our kernels on every path.
 *
 * Device memory is host memory from malloc, exactly as large as asked, so under SANITIZE=1 ASan
 * sees a copy or kernel that touches memory outside its allocation, as compute-sanitizer's
 * memcheck would; it starts with all bits set (NaN floats), as uninitialized memory could hold
 * anything. Streams run what is queued on them at once: a copy or a kernel has finished
 * when its call returns, which is one order a GPU may take (the upload ring's other orders are
 * test_upload_ring's). An event keeps the time of its latest record, so cudaEventElapsedTime
 * times emulated kernels and the implicit GEMM's tuning chooses among its variants as on a GPU.
 * A kernel whose threads diverge at a barrier stops the program with the kernel's name: that is
 * a bug in the kernel, not a condition the backend could handle. */
#ifndef CVN_CUDA_EMU_RUNTIME_H
#define CVN_CUDA_EMU_RUNTIME_H

#include <chrono>
#include <stdio.h>

#include "cuda_emu.h"

inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}

/* the one failure the emulation has: a device allocation */
typedef enum cudaError { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 } cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost,
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice,
    cudaMemcpyDefault
};

#define cudaStreamNonBlocking 0x01u
#define cudaEventDisableTiming 0x02u
#define cudaHostRegisterDefault 0x00u

struct emu_stream {}; /* a stream runs what is queued on it at once: nothing to keep */
struct emu_event {
    std::chrono::steady_clock::time_point at;
};
typedef emu_stream *cudaStream_t;
typedef emu_event *cudaEvent_t;

namespace emu {
inline cudaError_t last_error = cudaSuccess;
inline cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}
} // namespace emu

inline const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "out of memory (emulated device)";
}
inline cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

/* the emulated device's memory: more than that in one allocation fails, as on an 80 GB GPU */
const size_t EMU_DEVICE_BYTES = (size_t)80 << 30;

/* Device memory as cudaMalloc leaves it, uninitialized: here all bits set, a NaN in every float,
 * so that a kernel reading what nothing wrote (an accumulator never zeroed) spoils its results. */
inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = bytes <= EMU_DEVICE_BYTES ? malloc(bytes ? bytes : 1) : NULL;
    if (!*p) return emu::fail(cudaErrorMemoryAllocation);
    memset(*p, 0xff, bytes);
    return cudaSuccess;
}
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc((void **)p, bytes);
}
inline cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaHostRegister(void *, size_t, unsigned) {
    return cudaSuccess;
}
inline cudaError_t cudaHostUnregister(void *) {
    return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t) {
    memcpy(dst, src, bytes); /* ASan reports overlapping ranges, undefined on a GPU too */
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t) {
    memset(dst, value, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new emu_stream;
    return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
    return cudaSuccess;
}
inline cudaError_t cudaProfilerStart(void) {
    return cudaSuccess;
}
inline cudaError_t cudaProfilerStop(void) {
    return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new emu_event{std::chrono::steady_clock::now()};
    return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    return cudaEventCreate(e);
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    e->at = std::chrono::steady_clock::now();
    return cudaSuccess;
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
    return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) {
    return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t from, cudaEvent_t to) {
    *ms = std::chrono::duration<float, std::milli>(to->at - from->at).count();
    return cudaSuccess;
}

namespace emu {
/* kernel<<<grid, block, 0, stream>>>(args...) as LAUNCH(kernel, grid, block, stream)(args...) */
template <class K> struct launch_of {
    const char *name;
    K kernel;
    dim3 grid, block;
    template <class... A> void operator()(A... args) const {
        if (!launch(grid, block, [&] { kernel(args...); })) {
            fprintf(stderr,
                    "cuda emulation: %s failed: its threads diverged at a barrier, or one made a "
                    "misaligned vector load\n",
                    name);
            abort();
        }
    }
};
template <class K> launch_of<K> launch_as(const char *name, K kernel, dim3 grid, dim3 block) {
    return launch_of<K>{name, kernel, grid, block};
}
} // namespace emu

#define LAUNCH(kernel, grid, block, s) emu::launch_as(#kernel, kernel, grid, block)

#endif
