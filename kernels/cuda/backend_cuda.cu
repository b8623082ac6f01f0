/* The CUDA backend: a hand-written kernel for every entry of the backend table, cuBLAS for GEMM
 * (CVN_CUDA_GEMM=native picks our tiled shared-memory SGEMM instead), cuDNN for convolution,
 * pooling and training batch norm (CVN_CUDA_CONV / CVN_CUDA_POOL / CVN_CUDA_BN=native pick our
 * kernels; the calls into both libraries are in vendor.cu); one compute stream per process, and
 * one more for copies of batches. Kernels are launched through LAUNCH, which the CPU emulation
 * of the runtime (tests/cuda_emu_runtime.h) defines too: built with CVN_CUDA_EMU, this file runs
 * on a CPU with our kernels on every path.
 * Memory comes from cudaMalloc only when an arena grows; tapes reuse it step after step.
 * Kernels follow the CPU kernels' definitions (kernels/backend.h) so the two can be compared
 * element by element; dropout uses the same counter-based hash as cvn_counter_uniform (cpu/cpu.h)
 * and so draws the same masks. */
#ifdef CVN_CUDA_EMU /* tests: the CPU emulation of CUDA's runtime, tests/cuda_emu_runtime.h */
#include "cuda_emu_runtime.h"
#else
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#define LAUNCH(kernel, grid, block, s) kernel<<<grid, block, 0, s>>>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <unordered_map>

extern "C" {
#include "core/core.h"
#include "cuda/cuda.h"
}
#include "cuda/settings.cuh"
#include "cuda/text.cuh"
#include "cuda/tiled_gemm.cuh"
#include "cuda/upload_ring.cuh"
#include "cuda/vendor.h"

static cudaStream_t stream;
static cvn_backend vendor; /* cuBLAS's and cuDNN's entries (vendor.h), NULL where none started */
static bool use_native_gemm, use_native_pool, use_native_bn;
static cvn_cuda_conv_path conv_path;

#define THREADS 256
static inline int blocks_for(int64_t n) {
    int64_t b = (n + THREADS - 1) / THREADS;
    return (int)(b < 65535 ? (b > 0 ? b : 1) : 65535);
}
/* A grid-stride kernel over n elements, on the compute stream */
#define LAUNCH_N(kernel, n) LAUNCH(kernel, blocks_for(n), THREADS, stream)
#define GRID_LOOP(i, n)                                                                            \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                       \
         i += (int64_t)blockDim.x * gridDim.x)

/* ------------------------------------------------------------------ memory */

/* Every cudaMalloc of the backend goes through here, counted (cvn_cuda_mallocs: tests check
 * that a steady training step makes none), and every cudaFree through cuda_device_free: the bytes
 * in use (cvn_cuda_memory_in_use; the most since cvn_cuda_reset_memory_peak), within the limit
 * where one is set (cvn_cuda_set_memory_limit, CVN_CUDA_MEMORY_LIMIT; refused_by_limit says so).
 * cuBLAS's and cuDNN's own handles are not counted. */
static long mallocs;
static size_t bytes_in_use, bytes_peak, bytes_limit;
static bool refused_by_limit;
static std::unordered_map<void *, size_t> block_bytes;
static cudaError_t cuda_device_malloc(void **p, size_t bytes) {
    mallocs++;
    *p = NULL;
    refused_by_limit = bytes_limit && bytes > bytes_limit - std::min(bytes_in_use, bytes_limit);
    if (refused_by_limit) return cudaErrorMemoryAllocation;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) return e;
    try {
        block_bytes.emplace(*p, bytes);
    } catch (...) { /* no host memory to note it in */
        cudaFree(*p);
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    bytes_in_use += bytes;
    bytes_peak = std::max(bytes_peak, bytes_in_use);
    return cudaSuccess;
}
static void cuda_device_free(void *p) {
    if (!p) return;
    auto it = block_bytes.find(p);
    if (it != block_bytes.end()) bytes_in_use -= it->second, block_bytes.erase(it);
    cudaFree(p);
}

/* Room the caller cannot do without: where the first try fails, the backend's scratch is freed
 * (release_scratch) and it tries once more; the error set where that fails too */
static bool release_scratch(void);
static void *needed_malloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cuda_device_malloc(&p, bytes);
    if (e != cudaSuccess && release_scratch()) {
        cudaGetLastError(); /* not sticky */
        e = cuda_device_malloc(&p, bytes);
    }
    if (e == cudaSuccess) return p;
    cudaGetLastError();
    if (refused_by_limit)
        cvn_set_error(CVN_ERR_NOMEM,
                      "%zu bytes more on the GPU would pass the CUDA backend's limit of %zu "
                      "(%zu in use; cvn_cuda_set_memory_limit, CVN_CUDA_MEMORY_LIMIT)",
                      bytes, bytes_limit, bytes_in_use);
    else
        cvn_set_error(CVN_ERR_NOMEM, "cudaMalloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return NULL;
}
static void *cu_alloc(size_t bytes) { return needed_malloc(bytes ? bytes : 1); }
static void cu_free(void *p) {
    if (p) {
        cudaStreamSynchronize(stream);
        cuda_device_free(p);
    }
}
/* Device scratch that grows to the largest need once and is reused after, so that a steady
 * training step allocates nothing. NULL where cudaMalloc fails: where the caller needs the room
 * (required), only after needed_malloc's second try, with the error set; at once and silently
 * where the room only lets the caller take a faster way. release_scratch frees every such buffer
 * (cvn_cuda_release_scratch); each grows back when next needed. */
typedef struct {
    float *p;
    int64_t floats;
} grow_buffer;
static void release(grow_buffer *b) {
    cu_free(b->p);
    b->p = NULL, b->floats = 0;
}
static float *grown(grow_buffer *b, int64_t floats, bool required) {
    if (floats > b->floats) {
        release(b);
        size_t bytes = (size_t)floats * sizeof(float);
        if (required) {
            b->p = (float *)needed_malloc(bytes);
        } else if (cuda_device_malloc((void **)&b->p, bytes) != cudaSuccess) {
            cudaGetLastError(); /* not sticky */
            b->p = NULL;
        }
        b->floats = b->p ? floats : 0;
    }
    return b->p;
}

static void cu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}
static void cu_upload(void *dst, const void *src, size_t bytes) {
    /* synchronous from the host's view: src may be a stack buffer */
    if (bytes) {
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream);
        cudaStreamSynchronize(stream);
    }
}
static void cu_download(void *dst, const void *src, size_t bytes) {
    if (bytes) {
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream);
        cudaStreamSynchronize(stream);
    }
}
static void cu_zero(void *dst, size_t bytes) {
    if (bytes) cudaMemsetAsync(dst, 0, bytes, stream);
}

/* Page-locked batches: the copy engine reads them directly (no staging through a driver buffer),
 * on a stream of its own, while the compute stream runs the previous step (upload_ring.cuh says
 * how the two streams hand a batch over). */
struct cuda_streams {
    typedef cudaEvent_t event;
    cudaStream_t streams[2]; /* RING_COPY, RING_COMPUTE */
    bool event_new(event &e) {
        return cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess;
    }
    void *alloc(size_t bytes) {
        void *p = NULL;
        if (cuda_device_malloc(&p, bytes) == cudaSuccess) return p;
        cudaGetLastError(); /* not sticky: clear it, the ring copies on the compute stream */
        return NULL;
    }
    void free(void *p) { cuda_device_free(p); }
    void copy(int s, void *dst, const void *src, size_t bytes) {
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, streams[s]);
    }
    void record(event &e, int s) { cudaEventRecord(e, streams[s]); }
    void wait(int s, event &e) { cudaStreamWaitEvent(streams[s], e, 0); }
    void sync(event &e) { cudaEventSynchronize(e); }
};
static cuda_streams copy_streams;
static upload_ring<cuda_streams> uploads;
static bool stage_uploads = true; /* false: batches copied on the compute stream (no overlap) */

static bool cu_host_register(void *p, size_t bytes) {
    if (cudaHostRegister(p, bytes, cudaHostRegisterDefault) == cudaSuccess) return true;
    cudaGetLastError(); /* not sticky: clear it, the caller copies synchronously instead */
    return false;
}
static void cu_host_unregister(void *p) {
    uploads.wait();
    cudaHostUnregister(p);
}
static void cu_upload_async(void *dst, const void *src, size_t bytes) {
    uploads.upload(dst, src, bytes, stage_uploads);
}
static void cu_upload_wait(void) { uploads.wait(); }

/* ------------------------------------------------------------------ GEMM */

/* Our GEMM (CVN_CUDA_GEMM=native) and implicit-GEMM convolution: kernels/cuda/tiled_gemm.cuh.
 * Its plans are launched on the stream here; the tests run the same ones on the CPU. */
static void launch_plan(const gemm_plan &p) {
    run_plan(p, [](auto kernel, dim3 grid, const gemm_args &g) {
        LAUNCH(kernel, grid, GEMM_THREADS, stream)(g);
    });
}

static void cu_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc) {
    if (m == 0 || n == 0) return;
    if (use_native_gemm || !vendor.gemm)
        launch_plan(plan_matrix(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
    else
        vendor.gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ------------------------------------------------------------------ elementwise */

typedef struct {
    int ndim;
    int64_t shape[CVN_MAX_DIMS], s1[CVN_MAX_DIMS], s2[CVN_MAX_DIMS], s3[CVN_MAX_DIMS];
} strides3;

/* The offset of flat index i (below the shape's size) under strides s. The outermost dim takes
 * what is left of i without a division, so a collapsed shape of one dim (the common case, see
 * collapse_dims in lib/ops/elementwise.c) costs none: a 64-bit division is a long software
 * sequence on a GPU. */
__device__ inline int64_t offset_of(int64_t i, int ndim, const int64_t *shape, const int64_t *s) {
    int64_t off = 0;
    for (int d = ndim - 1; d > 0; d--) {
        off += (i % shape[d]) * s[d];
        i /= shape[d];
    }
    return ndim > 0 ? off + i * s[0] : off;
}

__device__ inline float binop(cvn_binop op, float a, float b) {
    switch (op) {
    case CVN_BIN_ADD: return a + b;
    case CVN_BIN_SUB: return a - b;
    case CVN_BIN_MUL: return a * b;
    default: return a / b;
    }
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

static strides3 pack(int ndim, const int64_t *shape, const int64_t *a, const int64_t *b,
                     const int64_t *c) {
    strides3 s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        s.shape[d] = shape[d];
        s.s1[d] = a ? a[d] : 0;
        s.s2[d] = b ? b[d] : 0;
        s.s3[d] = c ? c[d] : 0;
    }
    return s;
}

__global__ void k_binary(cvn_binop op, int64_t n, strides3 s, float *out, const float *a,
                         const float *b) {
    GRID_LOOP(i, n) {
        out[i] = binop(op, a[offset_of(i, s.ndim, s.shape, s.s1)],
                       b[offset_of(i, s.ndim, s.shape, s.s2)]);
    }
}
static void cu_binary(cvn_binop op, int ndim, const int64_t *shape, float *out, const float *a,
                      const int64_t *sa, const float *b, const int64_t *sb) {
    int64_t n = numel_of(ndim, shape);
    LAUNCH_N(k_binary, n)(op, n, pack(ndim, shape, sa, sb, NULL), out, a, b);
}

/* s1: dx strides, s2: a, s3: b; dx never repeats an element (the backend contract: broadcast
 * gradients are summed by reduce_to), so a plain store */
__global__ void k_binary_bwd(cvn_binop op, int which, int64_t n, strides3 s, float *dx,
                             const float *g, const float *a, const float *b, bool add) {
    GRID_LOOP(i, n) {
        float av = a ? a[offset_of(i, s.ndim, s.shape, s.s2)] : 0.0f;
        float bv = b ? b[offset_of(i, s.ndim, s.shape, s.s3)] : 0.0f;
        float d;
        switch (op) {
        case CVN_BIN_ADD: d = g[i]; break;
        case CVN_BIN_SUB: d = which == 0 ? g[i] : -g[i]; break;
        case CVN_BIN_MUL: d = which == 0 ? g[i] * bv : g[i] * av; break;
        default: d = which == 0 ? g[i] / bv : -g[i] * av / (bv * bv);
        }
        int64_t o = offset_of(i, s.ndim, s.shape, s.s1);
        dx[o] = add ? dx[o] + d : d;
    }
}
static void cu_binary_bwd(cvn_binop op, int which, int ndim, const int64_t *shape, float *dx,
                          const int64_t *sx, const float *g, const float *a, const int64_t *sa,
                          const float *b, const int64_t *sb, const float *out, bool add) {
    int64_t n = numel_of(ndim, shape);
    LAUNCH_N(k_binary_bwd, n)(op, which, n, pack(ndim, shape, sx, sa, sb), dx, g, a, b, add);
}

__global__ void k_affine(int64_t n, float *y, const float *x, float scale, float shift) {
    GRID_LOOP(i, n) y[i] = x[i] * scale + shift;
}
static void cu_affine(int64_t n, float *y, const float *x, float scale, float shift) {
    LAUNCH_N(k_affine, n)(n, y, x, scale, shift);
}

__global__ void k_axpy(int64_t n, float alpha, const float *x, float *y) {
    GRID_LOOP(i, n) y[i] += alpha * x[i];
}
static void cu_axpy(int64_t n, float alpha, const float *x, float *y) {
    LAUNCH_N(k_axpy, n)(n, alpha, x, y);
}

/* A reduction split into kept dims (one output element each) and reduced dims (summed). */
typedef struct {
    int nk, nr;
    int64_t kshape[CVN_MAX_DIMS], kin[CVN_MAX_DIMS], kout[CVN_MAX_DIMS];
    int64_t rshape[CVN_MAX_DIMS], rin[CVN_MAX_DIMS];
} reduce_plan;

/* As offset_of: o below the kept elements' count, r below the reduced ones', the outermost dim
 * without a division. */
__device__ inline void plan_offsets(const reduce_plan *p, int64_t o, int64_t *in, int64_t *out) {
    *in = 0, *out = 0;
    for (int d = p->nk - 1; d >= 0; d--) {
        int64_t c = o;
        if (d > 0) c = o % p->kshape[d], o /= p->kshape[d];
        *in += c * p->kin[d];
        *out += c * p->kout[d];
    }
}
__device__ inline int64_t plan_reduced(const reduce_plan *p, int64_t r) {
    int64_t in = 0;
    for (int d = p->nr - 1; d > 0; d--) {
        in += (r % p->rshape[d]) * p->rin[d];
        r /= p->rshape[d];
    }
    return p->nr > 0 ? in + r * p->rin[0] : in;
}

/* Long reductions (a conv bias gradient over N * H * W): blocks sum slices of each output's
 * elements; short ones: one thread per output element. */
__device__ float block_sum(float v);
__global__ void k_reduce_block(reduce_plan p, int64_t n_out, int64_t n_red, int64_t chunk,
                               float *out, const float *x, float scale) {
    /* blockIdx.y picks a slice of chunk reduced elements; several slices meet in one atomicAdd
     * each, so contention stays at gridDim.y per output */
    int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = r0 + chunk < n_red ? r0 + chunk : n_red;
    for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
        int64_t in0, off;
        plan_offsets(&p, o, &in0, &off);
        float s = 0.0f;
        for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) s += x[in0 + plan_reduced(&p, r)];
        s = block_sum(s);
        if (threadIdx.x == 0) {
            if (gridDim.y == 1) out[off] += scale * s;
            else atomicAdd(out + off, scale * s);
        }
    }
}
__global__ void k_reduce_thread(reduce_plan p, int64_t n_out, int64_t n_red, float *out,
                                const float *x, float scale) {
    GRID_LOOP(o, n_out) {
        int64_t in0, off;
        plan_offsets(&p, o, &in0, &off);
        float s = 0.0f;
        for (int64_t r = 0; r < n_red; r++) s += x[in0 + plan_reduced(&p, r)];
        out[off] += scale * s;
    }
}
static void cu_reduce_to(int ndim, const int64_t *shape, float *out, const int64_t *so,
                         const float *x, float scale) {
    reduce_plan p;
    memset(&p, 0, sizeof p);
    int64_t n_out = 1, n_red = 1, stride = 1, in_stride[CVN_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) in_stride[d] = stride, stride *= shape[d];
    for (int d = 0; d < ndim; d++) {
        if (so[d] == 0 && shape[d] > 1) {
            p.rshape[p.nr] = shape[d], p.rin[p.nr++] = in_stride[d];
            n_red *= shape[d];
        } else {
            p.kshape[p.nk] = shape[d], p.kin[p.nk] = in_stride[d], p.kout[p.nk++] = so[d];
            n_out *= shape[d];
        }
    }
    if (n_out == 0 || n_red == 0) return;
    if (n_red >= 64) {
        int64_t slices = (n_red + 16383) / 16384;
        if (slices > 1024) slices = 1024;
        int64_t chunk = (n_red + slices - 1) / slices;
        dim3 grid((unsigned)(n_out < 65535 ? n_out : 65535), (unsigned)slices);
        LAUNCH(k_reduce_block, grid, THREADS, stream)(p, n_out, n_red, chunk, out, x, scale);
    }
    else
        LAUNCH_N(k_reduce_thread, n_out)(p, n_out, n_red, out, x, scale);
}

__global__ void k_expand_add(int64_t n, strides3 s, float *out, const float *x, float scale) {
    GRID_LOOP(i, n) out[i] += scale * x[offset_of(i, s.ndim, s.shape, s.s1)];
}
static void cu_expand_add(int ndim, const int64_t *shape, float *out, const float *x,
                          const int64_t *sx, float scale) {
    int64_t n = numel_of(ndim, shape);
    LAUNCH_N(k_expand_add, n)(n, pack(ndim, shape, sx, NULL, NULL), out, x, scale);
}

/* ------------------------------------------------------------------ activations */

__global__ void k_act_fwd(cvn_act_kind kind, float alpha, int64_t n, float *y, const float *x) {
    GRID_LOOP(i, n) y[i] = act(kind, alpha, x[i]);
}
__global__ void k_act_bwd(cvn_act_kind kind, float alpha, int64_t n, float *dx, const float *dy,
                          const float *x, const float *y, bool add) {
    GRID_LOOP(i, n) dx[i] = (add ? dx[i] : 0.0f) + dy[i] * act_grad(kind, alpha, x[i], y[i]);
}
static void cu_act_fwd(cvn_act_kind kind, float alpha, int64_t n, float *y, const float *x) {
    LAUNCH_N(k_act_fwd, n)(kind, alpha, n, y, x);
}
static void cu_act_bwd(cvn_act_kind kind, float alpha, int64_t n, float *dx, const float *dy,
                       const float *x, const float *y, bool add) {
    LAUNCH_N(k_act_bwd, n)(kind, alpha, n, dx, dy, x, y, add);
}

/* ------------------------------------------------------------------ softmax, losses */

/* one thread per (outer, inner) line of d elements */
__global__ void k_softmax_fwd(bool log, int64_t outer, int64_t d, int64_t inner, float *y,
                              const float *x) {
    GRID_LOOP(line, outer * inner) {
        int64_t base = (line / inner) * d * inner + line % inner;
        float m = -INFINITY, s = 0.0f;
        for (int64_t j = 0; j < d; j++) m = fmaxf(m, x[base + j * inner]);
        for (int64_t j = 0; j < d; j++) s += expf(x[base + j * inner] - m);
        float lse = m + logf(s);
        for (int64_t j = 0; j < d; j++) {
            float v = x[base + j * inner] - lse;
            y[base + j * inner] = log ? v : expf(v);
        }
    }
}
__global__ void k_softmax_bwd(bool log, int64_t outer, int64_t d, int64_t inner, float *dx,
                              const float *dy, const float *y) {
    GRID_LOOP(line, outer * inner) {
        int64_t base = (line / inner) * d * inner + line % inner;
        float s = 0.0f;
        for (int64_t j = 0; j < d; j++) {
            int64_t i = base + j * inner;
            s += log ? dy[i] : dy[i] * y[i];
        }
        for (int64_t j = 0; j < d; j++) {
            int64_t i = base + j * inner;
            dx[i] += log ? dy[i] - expf(y[i]) * s : y[i] * (dy[i] - s);
        }
    }
}
static void cu_softmax_fwd(bool log, int64_t outer, int64_t d, int64_t inner, float *y,
                           const float *x) {
    LAUNCH_N(k_softmax_fwd, outer * inner)(log, outer, d, inner, y, x);
}
static void cu_softmax_bwd(bool log, int64_t outer, int64_t d, int64_t inner, float *dx,
                           const float *dy, const float *y) {
    LAUNCH_N(k_softmax_bwd, outer * inner)(log, outer, d, inner, dx, dy, y);
}

/* one thread per row; an out-of-range target makes the loss NaN (the host checks CPU targets) */
__global__ void k_xent_fwd(int64_t n, int64_t c, float *loss, float *prob, const float *logits,
                           const int32_t *target, float smoothing) {
    GRID_LOOP(i, n) {
        const float *l = logits + i * c;
        float *p = prob + i * c;
        float m = -INFINITY, s = 0.0f, sum_logp = 0.0f;
        for (int64_t j = 0; j < c; j++) m = fmaxf(m, l[j]);
        for (int64_t j = 0; j < c; j++) s += expf(l[j] - m);
        float lse = m + logf(s);
        for (int64_t j = 0; j < c; j++) {
            float lp = l[j] - lse;
            sum_logp += lp;
            p[j] = expf(lp);
        }
        int32_t t = target[i];
        float li = (t < 0 || t >= c) ? NAN
                                     : -(1.0f - smoothing) * (l[t] - lse) -
                                           smoothing / (float)c * sum_logp;
        atomicAdd(loss, li / (float)n);
    }
}
static void cu_xent_fwd(int64_t n, int64_t c, float *loss, float *prob, const float *logits,
                        const int32_t *target, float smoothing) {
    cudaMemsetAsync(loss, 0, sizeof(float), stream);
    LAUNCH_N(k_xent_fwd, n)(n, c, loss, prob, logits, target, smoothing);
}
/* one thread per row, the block's hits summed in shared memory, one atomic per block */
__global__ void k_count_hits(int64_t n, int64_t c, float *hits, const float *logits,
                             const int32_t *labels) {
    __shared__ int block_hits;
    if (threadIdx.x == 0) block_hits = 0;
    __syncthreads();
    int mine = 0;
    GRID_LOOP(i, n) mine += cvn_argmax(logits + i * c, c) == labels[i];
    if (mine) atomicAdd(&block_hits, mine);
    __syncthreads();
    if (threadIdx.x == 0 && block_hits) atomicAdd(hits, (float)block_hits);
}
static void cu_count_hits(int64_t n, int64_t c, float *hits, const float *logits,
                          const int32_t *labels) {
    LAUNCH_N(k_count_hits, n)(n, c, hits, logits, labels);
}
__global__ void k_xent_bwd(int64_t n, int64_t c, float *dlogits, const float *g, const float *prob,
                           const int32_t *target, float smoothing) {
    GRID_LOOP(i, n * c) {
        int64_t row = i / c, j = i % c;
        float onehot = (1.0f - smoothing) * (target[row] == j) + smoothing / (float)c;
        dlogits[i] += g[0] / (float)n * (prob[i] - onehot);
    }
}
static void cu_xent_bwd(int64_t n, int64_t c, float *dlogits, const float *g, const float *prob,
                        const int32_t *target, float smoothing) {
    LAUNCH_N(k_xent_bwd, n * c)(n, c, dlogits, g, prob, target, smoothing);
}

__global__ void k_bce_fwd(int64_t n, float *loss, const float *x, const float *y) {
    GRID_LOOP(i, n) {
        float v = fmaxf(x[i], 0.0f) - x[i] * y[i] + log1pf(expf(-fabsf(x[i])));
        atomicAdd(loss, v / (float)n);
    }
}
static void cu_bce_fwd(int64_t n, float *loss, const float *x, const float *y) {
    cudaMemsetAsync(loss, 0, sizeof(float), stream);
    LAUNCH_N(k_bce_fwd, n)(n, loss, x, y);
}
__global__ void k_bce_bwd(int64_t n, float *dx, float *dy, const float *g, const float *x,
                          const float *y) {
    GRID_LOOP(i, n) {
        float s = g[0] / (float)n;
        if (dx) dx[i] += s * (1.0f / (1.0f + expf(-x[i])) - y[i]);
        if (dy) dy[i] -= s * x[i];
    }
}
static void cu_bce_bwd(int64_t n, float *dx, float *dy, const float *g, const float *x,
                       const float *y) {
    LAUNCH_N(k_bce_bwd, n)(n, dx, dy, g, x, y);
}

/* ------------------------------------------------------------------ im2col, col2im, blocks */

/* one thread per element of the column matrix: (row, image, oy, ox) */
__global__ void k_im2col(cvn_window w, float *cols, int64_t ld, const float *img,
                         int64_t img_stride, int nimg) {
    int64_t osz = (int64_t)w.oh * w.ow, rows = (int64_t)w.c * w.kh * w.kw;
    GRID_LOOP(i, rows * nimg * osz) {
        int64_t r = i / (nimg * osz), rest = i % (nimg * osz);
        int im = (int)(rest / osz), o = (int)(rest % osz);
        int oy = o / w.ow, ox = o % w.ow;
        int kj = (int)(r % w.kw), ki = (int)(r / w.kw % w.kh), ch = (int)(r / w.kw / w.kh);
        int iy = oy * w.sh - w.ph + ki * w.dh, ix = ox * w.sw - w.pw + kj * w.dw;
        float v = 0.0f;
        if (iy >= 0 && iy < w.h && ix >= 0 && ix < w.w)
            v = img[im * img_stride + ((int64_t)ch * w.h + iy) * w.w + ix];
        cols[r * ld + im * osz + o] = v;
    }
}
static void cu_im2col(const cvn_window *w, float *cols, int64_t ld, const float *img,
                      int64_t img_stride, int nimg) {
    int64_t n = (int64_t)w->c * w->kh * w->kw * nimg * w->oh * w->ow;
    LAUNCH_N(k_im2col, n)(*w, cols, ld, img, img_stride, nimg);
}

/* one thread per image pixel, gathering every column entry that read it: no atomics */
__global__ void k_col2im(cvn_window w, float *img, int64_t img_stride, const float *cols,
                         int64_t ld, int nimg) {
    int64_t osz = (int64_t)w.oh * w.ow, plane = (int64_t)w.h * w.w;
    GRID_LOOP(i, (int64_t)nimg * w.c * plane) {
        int im = (int)(i / (w.c * plane));
        int64_t rest = i % (w.c * plane);
        int ch = (int)(rest / plane), iy = (int)(rest % plane / w.w), ix = (int)(rest % w.w);
        float s = 0.0f;
        for (int ki = 0; ki < w.kh; ki++) {
            int ty = iy + w.ph - ki * w.dh;
            if (ty < 0 || ty % w.sh) continue;
            int oy = ty / w.sh;
            if (oy >= w.oh) continue;
            for (int kj = 0; kj < w.kw; kj++) {
                int tx = ix + w.pw - kj * w.dw;
                if (tx < 0 || tx % w.sw) continue;
                int ox = tx / w.sw;
                if (ox >= w.ow) continue;
                int64_t r = ((int64_t)ch * w.kh + ki) * w.kw + kj;
                s += cols[r * ld + im * osz + (int64_t)oy * w.ow + ox];
            }
        }
        img[im * img_stride + rest] += s;
    }
}
static void cu_col2im(const cvn_window *w, float *img, int64_t img_stride, const float *cols,
                      int64_t ld, int nimg) {
    int64_t n = (int64_t)nimg * w->c * w->h * w->w;
    LAUNCH_N(k_col2im, n)(*w, img, img_stride, cols, ld, nimg);
}

__global__ void k_copy_blocks(int64_t na, int64_t nb, int64_t inner, float *dst, int64_t dsa,
                              int64_t dsb, const float *src, int64_t ssa, int64_t ssb,
                              const float *bias) {
    GRID_LOOP(i, na * nb * inner) {
        int64_t a = i / (nb * inner), b = i / inner % nb, k = i % inner;
        dst[a * dsa + b * dsb + k] = src[a * ssa + b * ssb + k] + (bias ? bias[a] : 0.0f);
    }
}
static void cu_copy_blocks(int64_t na, int64_t nb, int64_t inner, float *dst, int64_t dsa,
                           int64_t dsb, const float *src, int64_t ssa, int64_t ssb,
                           const float *bias) {
    LAUNCH_N(k_copy_blocks, na * nb * inner)(na, nb, inner, dst, dsa, dsb, src, ssa, ssb, bias);
}

/* ------------------------------------------------------------------ convolution paths */

/* Our convolution's tile size, K slices, K order and units (FP32 or tensor cores) per shape and
 * product, timed the first time the shape comes (tune_plan in tiled_gemm.cuh: each variant once
 * to warm up, then the best of three runs between two events on the stream, into scratch
 * allocated for the occasion), unless tuning is off (CVN_CUDA_TUNE=0; then plan_conv's rule of
 * thumb, on FP32 units). The table grows as shapes come (a training run has a few per layer:
 * the batch, a smaller last batch, evaluation's); where it cannot, new shapes take the rule of
 * thumb. */
typedef struct {
    conv_key key;
    int tile_m, tile_n, k_slice, splits;
    bool taps, mma, async;
    int wino, wino_images; /* Winograd's m (winograd.cuh) and images per round, or 0 */
    int wino_offer;        /* what it was timed against (wino_setting) */
} conv_tuning;

static conv_tuning *tunings;
static int n_tunings, tunings_cap;
/* Room for one more tuning, false where the table cannot grow */
static bool tunings_room(void) {
    if (n_tunings < tunings_cap) return true;
    int cap = tunings_cap ? 2 * tunings_cap : 64;
    conv_tuning *grown_table = (conv_tuning *)realloc(tunings, (size_t)cap * sizeof *tunings);
    if (!grown_table) return false;
    tunings = grown_table, tunings_cap = cap;
    return true;
}
static bool tune_convs = true;
static bool force_taps; /* cvn_cuda_set_conv_taps */
/* tensor cores (CVN_CUDA_MMA, cvn_cuda_set_conv_mma) */
static cvn_cuda_mma conv_mma = CVN_CUDA_MMA_TUNED;
/* the largest Winograd tile tuning offers (CVN_CUDA_WINOGRAD, cvn_cuda_set_conv_winograd) */
static int conv_winograd = 2;
static bool wino_always; /* F(conv_winograd) wherever it can run, untimed against the rest */
/* the room of a round of images (cvn_cuda_set_conv_winograd_round) */
static int64_t wino_round_floats = WINO_ROUND_FLOATS;
static cudaEvent_t tick, tock;
/* What ran for the last convolution launched, per product (cvn_cuda_conv_picks formats it) */
typedef struct {
    bool ran, taps, split, mma, async;
    int wino, images, n, tile_m, tile_n;
} conv_pick;
static conv_pick last_pick[3];
/* What tuning timed for the last shape it met, per product (cvn_cuda_conv_tuning formats it) */
static tune_record last_tuning[3];

static conv_pick pick_of(const gemm_plan &p) {
    const gemm_args &g = p.args;
    return {true, g.taps, g.splits > 1, p.mma, p.async, g.wg.m, g.wg.images, g.d.n, p.tile_m,
            p.tile_n};
}
/* A pick in words: "implicit tap-major 128x128 3xTF32", "winograd F(2x2) by 7 images 64x64
 * FP32" */
static void describe_pick(char *buf, size_t size, size_t *len, const conv_pick &k) {
    if (k.wino) {
        text_append(buf, size, len, "winograd F(%dx%d)", k.wino, k.wino);
        if (k.images < k.n)
            text_append(buf, size, len, " by %d image%s", k.images, k.images > 1 ? "s" : "");
    } else {
        text_append(buf, size, len, k.taps ? "implicit tap-major" : "implicit");
    }
    text_append(buf, size, len, " %dx%d%s%s", k.tile_m, k.tile_n, k.split ? " split" : "",
                k.mma ? (k.async ? " 3xTF32 pipelined" : " 3xTF32") : " FP32");
}

/* Emulated (tests), one run per variant: every variant still runs, its time means nothing. */
static double time_plan(const gemm_plan &p) {
    bool emulated = cvn_cuda_emulated();
    if (!emulated) launch_plan(p);
    float best = INFINITY;
    for (int r = 0; r < (emulated ? 1 : 3); r++) {
        float ms = INFINITY;
        cudaEventRecord(tick, stream);
        launch_plan(p);
        cudaEventRecord(tock, stream);
        bool timed = cudaEventSynchronize(tock) == cudaSuccess &&
                     cudaEventElapsedTime(&ms, tick, tock) == cudaSuccess;
        if (timed && ms < best) best = ms;
    }
    return best;
}

/* Room for Winograd's U, V and M (winograd.cuh): tuning offers it only up to WINO_ROOM_MAX, and
 * only with the kernels' choice left to tuning and K's order too; besides all images at once it
 * times rounds of wino_round_floats. */
static grow_buffer conv_wino;
static int wino_offered(const gemm_plan &p) {
    if (conv_mma != CVN_CUDA_MMA_TUNED || force_taps || !wino_possible(p.args)) return 0;
    return conv_winograd;
}
/* The room the variants tuning may time need: each tile's all at once (where at_once) where that
 * is within WINO_ROOM_MAX, else in rounds */
static int64_t wino_room_floats(const gemm_plan &p, int largest, bool at_once) {
    int64_t need = 0;
    for (int m = 2; m <= largest; m += 2) {
        int64_t all = wino_floats(p.args, m), rounds = wino_floats(p.args, m, wino_chunk(p.args, m));
        int64_t m_need = at_once && all <= WINO_ROOM_MAX ? all : rounds;
        if (m_need > need) need = m_need;
    }
    return need <= WINO_ROOM_MAX ? need : 0;
}


/* The Winograd switches as one number: a shape's timings hold for the switches they were taken
 * under (the tests and benchmarks go back and forth between paths) */
static int wino_setting(void) { return conv_winograd * 2 + wino_always; }

static void launch_conv(gemm_plan p) {
    conv_key key = key_of(&p.args.d, p.args.mode);
    const conv_tuning *t = NULL;
    for (int i = 0; i < n_tunings && !t; i++)
        if (same_key(&tunings[i].key, &key) && tunings[i].wino_offer == wino_setting())
            t = &tunings[i];
    p.args.wg.chunk_floats = wino_round_floats;
    if (!t && tune_convs && tunings_room()) {
        float *scratch = NULL, *room = NULL;
        int wino = wino_offered(p);
        int64_t room_floats = 0;
        /* room for all images at once; where the limit or the GPU refuses it, for rounds; where
         * neither, the implicit GEMM's variants only */
        for (int at_once = 1; wino && !room && at_once >= 0; at_once--) {
            room_floats = wino_room_floats(p, wino, at_once);
            if (room_floats && cuda_device_malloc((void **)&room,
                                                  (size_t)room_floats * sizeof(float)) != cudaSuccess)
                cudaGetLastError(), room = NULL;
        }
        if (cuda_device_malloc((void **)&scratch, (size_t)plan_out_floats(p) * sizeof(float)) ==
            cudaSuccess) {
            gemm_plan trial = p;
            trial.args.wg.room = room, trial.args.wg.room_floats = room ? room_floats : 0;
            gemm_plan best = tune_plan(trial, scratch, time_plan, conv_mma != CVN_CUDA_MMA_NEVER,
                                       wino, wino_always, &last_tuning[p.args.mode - GEMM_CONV_FWD]);
            cudaStreamSynchronize(stream);
            cuda_device_free(scratch);
            tunings[n_tunings] = {key,          best.tile_m,      best.tile_n,
                                  best.args.k_slice, best.args.splits, best.args.taps,
                                  best.mma,     best.async,      best.args.wg.m,
                                  best.args.wg.images, wino_setting()};
            t = &tunings[n_tunings++];
        } else {
            cudaGetLastError(); /* no room to time in: the rule of thumb this time */
        }
        cuda_device_free(room);
    }
    bool wino = false;
    if (t && t->wino && wino_offered(p) >= t->wino) { /* its room grows once, then stays */
        p.args.wg.room = grown(&conv_wino, wino_floats(p.args, t->wino, t->wino_images), false);
        p.args.wg.room_floats = conv_wino.floats;
        if (p.args.wg.room) set_wino(&p, t->wino, t->wino_images), wino = true;
    }
    if (t && (wino || !t->wino)) { /* a Winograd pick without its room: the rule of thumb */
        p.tile_m = t->tile_m, p.tile_n = t->tile_n;
        p.args.k_slice = t->k_slice, p.args.splits = t->splits;
    }
    if (!wino && ((t && t->taps) || force_taps) && taps_possible(p)) set_taps(&p);
    bool tuned = conv_mma == CVN_CUDA_MMA_TUNED && t;
    p.mma = conv_mma == CVN_CUDA_MMA_STAGED || conv_mma == CVN_CUDA_MMA_ASYNC || (tuned && t->mma);
    p.async = conv_mma == CVN_CUDA_MMA_ASYNC || (tuned && t->async);
    last_pick[p.args.mode - GEMM_CONV_FWD] = pick_of(p);
    launch_plan(p);
}

/* Room for a convolution's weights in tap-major order (tiled_gemm.cuh's k_conv_weights_taps);
 * NULL (and no tap-major variant) where it cannot grow. The forward and backward-data products use
 * it one after the other on the stream. */
static grow_buffer conv_wt;
static float *conv_wt_for(const cvn_conv_desc *d) {
    return grown(&conv_wt, (int64_t)d->o * (d->c / d->groups) * d->kh * d->kw, false);
}

/* Convolution: cuDNN (the default), our implicit GEMM (CVN_CUDA_CONV=native), or neither (=im2col:
 * the op's im2col + GEMM). Our implicit GEMM takes the activation and 2x2 max pooling epilogues;
 * cuDNN takes neither; a declined epilogue makes the op run the parts one by one. */
static bool implicit_fwd(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                         const float *b) {
    gemm_plan p;
    if (!plan_conv(&p, GEMM_CONV_FWD, d, y, x, w, NULL, b, false)) return false;
    p.args.wt = conv_wt_for(d);
    launch_conv(p);
    return true;
}

static bool implicit_bwd(const cvn_conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                         const float *x, const float *w, bool dx_add) {
    gemm_plan pf, pd;
    if (!plan_conv(&pf, GEMM_CONV_BWD_FILTER, d, dw, x, w, dy, NULL, false) ||
        !plan_conv(&pd, GEMM_CONV_BWD_DATA, d, dx, x, w, dy, NULL, dx_add))
        return false;
    if (db) {
        int64_t shape[3] = {d->n, d->o, (int64_t)d->oh * d->ow}, so[3] = {0, 1, 0};
        cu_reduce_to(3, shape, db, so, dy, 1.0f);
    }
    if (dw) launch_conv(pf);
    if (dx) {
        pd.args.wt = conv_wt_for(d);
        launch_conv(pd);
    }
    return true;
}

static bool implicit_chosen(void) {
    return conv_path == CVN_CUDA_CONV_IMPLICIT ||
           (conv_path == CVN_CUDA_CONV_CUDNN && !vendor.conv2d_fwd);
}

static bool cu_conv2d_fwd(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                          const float *b) {
    if (implicit_chosen()) return implicit_fwd(d, y, x, w, b);
    return conv_path == CVN_CUDA_CONV_CUDNN && vendor.conv2d_fwd(d, y, x, w, b);
}

static bool cu_conv2d_bwd(const cvn_conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, bool dx_add) {
    if (implicit_chosen()) return implicit_bwd(d, dx, dw, db, dy, x, w, dx_add);
    return conv_path == CVN_CUDA_CONV_CUDNN && vendor.conv2d_bwd(d, dx, dw, db, dy, x, w, dx_add);
}

/* cuDNN's pooling and training batch norm unless CVN_CUDA_POOL / CVN_CUDA_BN = native; the op
 * runs backward through cuDNN only where its forward did. */
static bool cu_pool2d_fwd(bool is_max, int64_t n, const cvn_window *w, float *y, const float *x) {
    return !use_native_pool && vendor.pool2d_fwd && vendor.pool2d_fwd(is_max, n, w, y, x);
}
static bool cu_pool2d_bwd(bool is_max, int64_t n, const cvn_window *w, float *dx, const float *dy,
                          const float *y, const float *x) {
    return vendor.pool2d_bwd && vendor.pool2d_bwd(is_max, n, w, dx, dy, y, x);
}
static bool cu_bn_train_fwd(int64_t n, int64_t c, int64_t hw, float *y, const float *x,
                            const float *gamma, const float *beta, float *rm, float *rv,
                            float momentum, float eps, float *mean, float *invstd) {
    return !use_native_bn && vendor.bn_train_fwd &&
           vendor.bn_train_fwd(n, c, hw, y, x, gamma, beta, rm, rv, momentum, eps, mean, invstd);
}
static bool cu_bn_train_bwd(int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma,
                            float *dbeta, const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *invstd, float eps) {
    return vendor.bn_train_bwd &&
           vendor.bn_train_bwd(n, c, hw, dx, dgamma, dbeta, dy, x, gamma, mean, invstd, eps);
}

/* ------------------------------------------------------------------ pooling */

__global__ void k_maxpool_fwd(cvn_window w, int64_t planes, float *y, int32_t *argmax,
                              const float *x) {
    int64_t osz = (int64_t)w.oh * w.ow;
    GRID_LOOP(i, planes * osz) {
        int64_t p = i / osz;
        int oy = (int)(i % osz / w.ow), ox = (int)(i % w.ow);
        const float *in = x + p * w.h * w.w;
        float best = -INFINITY;
        int32_t at = -1;
        for (int ki = 0; ki < w.kh; ki++) {
            int iy = oy * w.sh - w.ph + ki * w.dh;
            if (iy < 0 || iy >= w.h) continue;
            for (int kj = 0; kj < w.kw; kj++) {
                int ix = ox * w.sw - w.pw + kj * w.dw;
                if (ix < 0 || ix >= w.w) continue;
                float v = in[iy * w.w + ix];
                if (v > best || isnan(v) || at < 0) best = v, at = iy * w.w + ix;
            }
        }
        y[i] = best;
        argmax[i] = at;
    }
}
__global__ void k_maxpool_bwd(cvn_window w, int64_t planes, float *dx, const float *dy,
                              const int32_t *argmax) {
    int64_t osz = (int64_t)w.oh * w.ow;
    GRID_LOOP(i, planes * osz) {
        if (argmax[i] >= 0) atomicAdd(dx + (i / osz) * w.h * w.w + argmax[i], dy[i]);
    }
}
__global__ void k_avgpool_fwd(cvn_window w, int64_t planes, float *y, const float *x) {
    int64_t osz = (int64_t)w.oh * w.ow;
    GRID_LOOP(i, planes * osz) {
        int64_t p = i / osz;
        int oy = (int)(i % osz / w.ow), ox = (int)(i % w.ow);
        float s = 0.0f;
        for (int ki = 0; ki < w.kh; ki++) {
            int iy = oy * w.sh - w.ph + ki;
            if (iy < 0 || iy >= w.h) continue;
            for (int kj = 0; kj < w.kw; kj++) {
                int ix = ox * w.sw - w.pw + kj;
                if (ix >= 0 && ix < w.w) s += x[(p * w.h + iy) * w.w + ix];
            }
        }
        y[i] = s / (float)(w.kh * w.kw);
    }
}
__global__ void k_avgpool_bwd(cvn_window w, int64_t planes, float *dx, const float *dy) {
    int64_t osz = (int64_t)w.oh * w.ow;
    GRID_LOOP(i, planes * osz) {
        int64_t p = i / osz;
        int oy = (int)(i % osz / w.ow), ox = (int)(i % w.ow);
        float g = dy[i] / (float)(w.kh * w.kw);
        for (int ki = 0; ki < w.kh; ki++) {
            int iy = oy * w.sh - w.ph + ki;
            if (iy < 0 || iy >= w.h) continue;
            for (int kj = 0; kj < w.kw; kj++) {
                int ix = ox * w.sw - w.pw + kj;
                if (ix >= 0 && ix < w.w) atomicAdd(dx + (p * w.h + iy) * w.w + ix, g);
            }
        }
    }
}
__global__ void k_adaptive_fwd(int64_t planes, int h, int w, int oh, int ow, float *y,
                               const float *x) {
    GRID_LOOP(i, planes * oh * ow) {
        int64_t p = i / (oh * ow);
        int oy = (int)(i % (oh * ow) / ow), ox = (int)(i % ow);
        int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
        int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
        float s = 0.0f;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) s += x[(p * h + iy) * w + ix];
        y[i] = s / (float)((y1 - y0) * (x1 - x0));
    }
}
__global__ void k_adaptive_bwd(int64_t planes, int h, int w, int oh, int ow, float *dx,
                               const float *dy) {
    GRID_LOOP(i, planes * oh * ow) {
        int64_t p = i / (oh * ow);
        int oy = (int)(i % (oh * ow) / ow), ox = (int)(i % ow);
        int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
        int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
        float g = dy[i] / (float)((y1 - y0) * (x1 - x0));
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) atomicAdd(dx + (p * h + iy) * w + ix, g);
    }
}
static void cu_maxpool_fwd(const cvn_window *w, int64_t planes, float *y, int32_t *argmax,
                           const float *x) {
    LAUNCH_N(k_maxpool_fwd, planes * w->oh * w->ow)(*w, planes, y, argmax, x);
}
static void cu_maxpool_bwd(const cvn_window *w, int64_t planes, float *dx, const float *dy,
                           const int32_t *argmax, bool add) {
    if (!add) cudaMemsetAsync(dx, 0, (size_t)(planes * w->h * w->w) * sizeof(float), stream);
    LAUNCH_N(k_maxpool_bwd, planes * w->oh * w->ow)(*w, planes, dx, dy, argmax);
}
static void cu_avgpool_fwd(const cvn_window *w, int64_t planes, float *y, const float *x) {
    LAUNCH_N(k_avgpool_fwd, planes * w->oh * w->ow)(*w, planes, y, x);
}
static void cu_avgpool_bwd(const cvn_window *w, int64_t planes, float *dx, const float *dy) {
    LAUNCH_N(k_avgpool_bwd, planes * w->oh * w->ow)(*w, planes, dx, dy);
}
static void cu_adaptive_fwd(int64_t planes, int h, int w, int oh, int ow, float *y, const float *x) {
    LAUNCH_N(k_adaptive_fwd, planes * oh * ow)(planes, h, w, oh, ow, y, x);
}
static void cu_adaptive_bwd(int64_t planes, int h, int w, int oh, int ow, float *dx,
                            const float *dy) {
    LAUNCH_N(k_adaptive_bwd, planes * oh * ow)(planes, h, w, oh, ow, dx, dy);
}

/* ------------------------------------------------------------------ batch norm */

/* Block-wide sum of one float per thread (blockDim.x == THREADS). */
__device__ float block_sum(float v) {
    __shared__ float part[THREADS / 32];
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    float s = 0.0f;
    if (threadIdx.x < 32) {
        s = threadIdx.x < THREADS / 32 ? part[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o);
    }
    __syncthreads();
    return s; /* valid in thread 0 */
}

/* Batch norm's per-channel sums run on c x S blocks, each over a slice of the images (enough
 * slices for about two blocks per SM), then one thread per channel combines its S partial results
 * in a fixed order: deterministic, and no channel is left to one block (ResNet's 16-channel layers
 * kept 16 of 132 SMs busy, each dividing 64-bit indices per element). */
#define BN_WARPS (THREADS / 32)

typedef struct {
    int64_t n, c, hw;
    int64_t per; /* images per slice; gridDim.y slices */
} bn_slices;

static bn_slices bn_plan(int64_t n, int64_t c, int64_t hw) {
    bn_slices p = {n, c, hw, n};
    int64_t want = (264 + c - 1) / c;               /* slices for ~2 blocks per SM */
    int64_t by_work = n * hw / 1024;                /* each slice at least 1024 elements */
    int64_t by_index = (n * hw + INT32_MAX - 1) / INT32_MAX; /* a slice's indices fit 32 bits */
    if (want > by_work) want = by_work;
    if (want < by_index) want = by_index;
    if (want > n) want = n;
    if (want > 65535) want = 65535;
    if (want < 1) want = 1;
    p.per = (n + want - 1) / want;
    return p;
}
static unsigned bn_count(const bn_slices &p) { return (unsigned)((p.n + p.per - 1) / p.per); }

/* f(offset) for each element of channel ch in slice blockIdx.y, spread over the block: runs of
 * 32 consecutive pixels per warp where planes are at least that wide, else one element per thread
 * (32-bit divisions: a slice holds under 2^31 elements). */
template <class F> __device__ void bn_each(const bn_slices &p, int64_t ch, F f) {
    int64_t i0 = (int64_t)blockIdx.y * p.per, i1 = i0 + p.per < p.n ? i0 + p.per : p.n;
    int imgs = (int)(i1 - i0), hw = (int)p.hw;
    if (hw >= 32) {
        int runs = (hw + 31) / 32, lane = threadIdx.x % 32;
        for (int r = threadIdx.x / 32; r < imgs * runs; r += BN_WARPS) {
            int img = r / runs, px = (r - img * runs) * 32 + lane;
            if (px < hw) f(((i0 + img) * p.c + ch) * p.hw + px);
        }
    } else {
        for (int e = threadIdx.x; e < imgs * hw; e += blockDim.x) {
            int img = e / hw;
            f(((i0 + img) * p.c + ch) * p.hw + (e - img * hw));
        }
    }
}
__device__ inline int64_t bn_slice_count(const bn_slices &p, int s) {
    int64_t i0 = (int64_t)s * p.per, i1 = i0 + p.per < p.n ? i0 + p.per : p.n;
    return (i1 - i0) * p.hw;
}

/* Block (channel, slice): the slice's mean and sum of squared deviations (two passes over it),
 * to part[(ch * S + slice) * 2]. */
__global__ void k_bn_stats_part(bn_slices p, float *part, const float *x) {
    int64_t ch = blockIdx.x;
    __shared__ float m_shared;
    float s = 0.0f;
    bn_each(p, ch, [&](int64_t at) { s += x[at]; });
    s = block_sum(s);
    if (threadIdx.x == 0) m_shared = s / (float)bn_slice_count(p, blockIdx.y);
    __syncthreads();
    float m = m_shared, q = 0.0f;
    bn_each(p, ch, [&](int64_t at) {
        float d = x[at] - m;
        q += d * d;
    });
    q = block_sum(q);
    if (threadIdx.x == 0) {
        float *o = part + (ch * gridDim.y + (int64_t)blockIdx.y) * 2;
        o[0] = m, o[1] = q;
    }
}
/* A channel's slices combined (Chan et al.'s pairwise update, in double): biased variance. */
__global__ void k_bn_stats_combine(bn_slices p, int slices, float *mean, float *var,
                                   const float *part) {
    GRID_LOOP(ch, p.c) {
        const float *q = part + ch * slices * 2;
        double total = (double)p.n * p.hw, m = 0.0, m2 = 0.0;
        for (int s = 0; s < slices; s++) m += (double)bn_slice_count(p, s) * q[2 * s];
        m /= total;
        for (int s = 0; s < slices; s++) {
            double d = q[2 * s] - m;
            m2 += q[2 * s + 1] + (double)bn_slice_count(p, s) * d * d;
        }
        mean[ch] = (float)m;
        var[ch] = (float)(m2 / total);
    }
}

/* Scratch for the partial sums (and backward's per-channel sums) */
static grow_buffer bn_scratch;

static void cu_bn_stats(int64_t n, int64_t c, int64_t hw, float *mean, float *var, const float *x) {
    bn_slices p = bn_plan(n, c, hw);
    unsigned slices = bn_count(p);
    float *part = grown(&bn_scratch, c * slices * 2, true);
    if (!part) return;
    LAUNCH(k_bn_stats_part, dim3((unsigned)c, slices), THREADS, stream)(p, part, x);
    LAUNCH_N(k_bn_stats_combine, c)(p, (int)slices, mean, var, part);
}

__global__ void k_bn_prepare(bool training, int64_t c, float *mean, const float *var, float *invstd,
                             float *rm, float *rv, float momentum, float eps, float unbias) {
    GRID_LOOP(i, c) {
        if (training) {
            invstd[i] = rsqrtf(var[i] + eps);
            if (rm) rm[i] = (1.0f - momentum) * rm[i] + momentum * mean[i];
            if (rv) rv[i] = (1.0f - momentum) * rv[i] + momentum * var[i] * unbias;
        } else {
            mean[i] = rm[i];
            invstd[i] = rsqrtf(rv[i] + eps);
        }
    }
}
static void cu_bn_prepare(bool training, int64_t c, float *mean, const float *var, float *invstd,
                          float *rm, float *rv, float momentum, float eps, float unbias) {
    LAUNCH_N(k_bn_prepare, c)(training, c, mean, var, invstd, rm, rv, momentum, eps, unbias);
}

/* The channel of element i of an NCHW tensor: in 32 bits where the tensor allows (a 64-bit
 * division and remainder per element cost more than the element's memory traffic). */
__device__ inline int64_t bn_channel(int64_t i, int64_t hw, int64_t c, bool small) {
    return small ? (int64_t)((uint32_t)i / (uint32_t)hw % (uint32_t)c) : i / hw % c;
}
static bool bn_small(int64_t n, int64_t c, int64_t hw) { return n * c * hw <= (int64_t)UINT32_MAX; }

__global__ void k_bn_fwd(int64_t n, int64_t c, int64_t hw, bool small, float *y, const float *x,
                         const float *mean, const float *invstd, const float *gamma,
                         const float *beta) {
    GRID_LOOP(i, n * c * hw) {
        int64_t ch = bn_channel(i, hw, c, small);
        float sc = invstd[ch] * (gamma ? gamma[ch] : 1.0f);
        y[i] = (x[i] - mean[ch]) * sc + (beta ? beta[ch] : 0.0f);
    }
}
static void cu_bn_fwd(int64_t n, int64_t c, int64_t hw, float *y, const float *x, const float *mean,
                      const float *invstd, const float *gamma, const float *beta) {
    LAUNCH_N(k_bn_fwd, n * c * hw)(n, c, hw, bn_small(n, c, hw), y, x, mean, invstd, gamma, beta);
}

/* Block (channel, slice): sums of dy and dy * xhat over the slice, to part[(ch * S + slice) * 2] */
__global__ void k_bn_bwd_part(bn_slices p, float *part, const float *dy, const float *x,
                              const float *mean, const float *invstd) {
    int64_t ch = blockIdx.x;
    float a = 0.0f, b = 0.0f, mu = mean[ch], is = invstd[ch];
    bn_each(p, ch, [&](int64_t at) {
        a += dy[at];
        b += dy[at] * (x[at] - mu) * is;
    });
    a = block_sum(a);
    b = block_sum(b);
    if (threadIdx.x == 0) {
        float *o = part + (ch * gridDim.y + (int64_t)blockIdx.y) * 2;
        o[0] = a, o[1] = b;
    }
}
/* A channel's slices summed in order: dgamma, dbeta, and sums[] (the means) for dx */
__global__ void k_bn_bwd_combine(bn_slices p, int slices, float *sums, float *dgamma,
                                 float *dbeta, const float *part) {
    GRID_LOOP(ch, p.c) {
        const float *q = part + ch * slices * 2;
        double a = 0.0, b = 0.0, count = (double)p.n * p.hw;
        for (int s = 0; s < slices; s++) a += q[2 * s], b += q[2 * s + 1];
        if (dbeta) dbeta[ch] += (float)a;
        if (dgamma) dgamma[ch] += (float)b;
        sums[2 * ch] = (float)(a / count);
        sums[2 * ch + 1] = (float)(b / count);
    }
}
__global__ void k_bn_bwd_dx(bool batch_stats, int64_t n, int64_t c, int64_t hw, bool small,
                            float *dx, const float *sums, const float *dy, const float *x,
                            const float *mean, const float *invstd, const float *gamma) {
    GRID_LOOP(i, n * c * hw) {
        int64_t ch = bn_channel(i, hw, c, small);
        float k = (gamma ? gamma[ch] : 1.0f) * invstd[ch];
        if (batch_stats) {
            float xh = (x[i] - mean[ch]) * invstd[ch];
            dx[i] += k * (dy[i] - sums[2 * ch] - xh * sums[2 * ch + 1]);
        } else {
            dx[i] += k * dy[i];
        }
    }
}

static void cu_bn_bwd(bool batch_stats, int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma,
                      float *dbeta, const float *dy, const float *x, const float *mean,
                      const float *invstd, const float *gamma) {
    bn_slices p = bn_plan(n, c, hw);
    unsigned slices = bn_count(p);
    float *sums = grown(&bn_scratch, c * 2 + c * slices * 2, true);
    if (!sums) return;
    float *part = sums + c * 2;
    LAUNCH(k_bn_bwd_part, dim3((unsigned)c, slices), THREADS, stream)(p, part, dy, x, mean,
                                                                     invstd);
    LAUNCH_N(k_bn_bwd_combine, c)(p, (int)slices, sums, dgamma, dbeta, part);
    if (dx)
        LAUNCH_N(k_bn_bwd_dx, n * c * hw)(batch_stats, n, c, hw, bn_small(n, c, hw), dx, sums, dy,
                                          x, mean, invstd, gamma);
}

/* ------------------------------------------------------------------ dropout, sum */

__global__ void k_dropout_fwd(int64_t n, float *y, uint8_t *mask, const float *x, float p,
                              uint64_t seed) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    GRID_LOOP(i, n) {
        uint64_t z = seed + ((uint64_t)i + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        bool keep = (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
        mask[i] = keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}
__global__ void k_dropout_bwd(int64_t n, float *dx, const float *dy, const uint8_t *mask,
                              float scale) {
    GRID_LOOP(i, n) dx[i] += mask[i] ? dy[i] * scale : 0.0f;
}
static void cu_dropout_fwd(int64_t n, float *y, uint8_t *mask, const float *x, float p,
                           uint64_t seed) {
    LAUNCH_N(k_dropout_fwd, n)(n, y, mask, x, p, seed);
}
static void cu_dropout_bwd(int64_t n, float *dx, const float *dy, const uint8_t *mask, float scale) {
    LAUNCH_N(k_dropout_bwd, n)(n, dx, dy, mask, scale);
}

/* torch.optim's update rules; see lib/optim/optim.c */
__global__ void k_optim_update(cvn_update_params p, int64_t n, float *w, const float *g, float *s0,
                               float *s1, float *s2) {
    GRID_LOOP(i, n) {
        float wv = w[i], gv = g[i];
        switch (p.kind) {
        case CVN_UPD_SGD:
            gv += p.weight_decay * wv;
            if (p.momentum != 0.0f) {
                float buf = p.first ? gv : p.momentum * s0[i] + (1.0f - p.dampening) * gv;
                s0[i] = buf;
                gv = p.nesterov ? gv + p.momentum * buf : buf;
            }
            wv -= p.lr * gv;
            break;
        case CVN_UPD_ADAM:
        case CVN_UPD_ADAMW: {
            if (p.kind == CVN_UPD_ADAMW) wv *= 1.0f - p.lr * p.weight_decay;
            else gv += p.weight_decay * wv;
            float m = p.beta1 * s0[i] + (1.0f - p.beta1) * gv;
            float v = p.beta2 * s1[i] + (1.0f - p.beta2) * gv * gv;
            s0[i] = m, s1[i] = v;
            if (p.amsgrad) v = s2[i] = fmaxf(s2[i], v);
            wv -= (p.lr / p.bias1) * m / (sqrtf(v) / p.bias2_sqrt + p.eps);
            break;
        }
        case CVN_UPD_RMSPROP: {
            gv += p.weight_decay * wv;
            float sq = p.alpha * s0[i] + (1.0f - p.alpha) * gv * gv, avg = sq;
            s0[i] = sq;
            if (p.centered) {
                float ga = p.alpha * s2[i] + (1.0f - p.alpha) * gv;
                s2[i] = ga;
                avg = sq - ga * ga;
            }
            avg = sqrtf(avg) + p.eps;
            if (p.momentum > 0.0f) {
                float buf = p.momentum * s1[i] + gv / avg;
                s1[i] = buf;
                wv -= p.lr * buf;
            } else {
                wv -= p.lr * gv / avg;
            }
            break;
        }
        default: {
            float prod = gv * s0[i];
            float step = s1[i] * (prod > 0.0f ? p.eta_plus : (prod < 0.0f ? p.eta_minus : 1.0f));
            step = fminf(fmaxf(step, p.step_min), p.step_max);
            if (prod < 0.0f) gv = 0.0f;
            wv -= (gv > 0.0f ? 1.0f : (gv < 0.0f ? -1.0f : 0.0f)) * step;
            s0[i] = gv, s1[i] = step;
        }
        }
        w[i] = wv;
    }
}
static void cu_optim_update(const cvn_update_params *p, int64_t n, float *w, const float *g,
                            float *s0, float *s1, float *s2) {
    LAUNCH_N(k_optim_update, n)(*p, n, w, g, s0, s1, s2);
}

__global__ void k_sum(int64_t n, double *out, const float *x) {
    float s = 0.0f;
    GRID_LOOP(i, n) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(out, (double)s);
}
__global__ void k_sum_sq(int64_t n, double *out, const float *x) {
    float s = 0.0f;
    GRID_LOOP(i, n) s += x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(out, (double)s);
}
/* The buffers' sums (of squares) into one double on the device, then one copy to the host: one
 * synchronization for a model's gradients. The double is allocated once and kept. */
static double *sum_acc;
static double reduce_to_host(bool squares, int count, const int64_t *n, const float *const *x) {
    if (!sum_acc && !(sum_acc = (double *)cu_alloc(sizeof(double)))) return NAN;
    double h = 0.0;
    cudaMemsetAsync(sum_acc, 0, sizeof(double), stream);
    for (int i = 0; i < count; i++) {
        if (squares) LAUNCH_N(k_sum_sq, n[i])(n[i], sum_acc, x[i]);
        else LAUNCH_N(k_sum, n[i])(n[i], sum_acc, x[i]);
    }
    cu_download(&h, sum_acc, sizeof h);
    return h;
}
static double cu_sum(int64_t n, const float *x) { return reduce_to_host(false, 1, &n, &x); }
static double cu_sum_sq(int count, const int64_t *n, const float *const *x) {
    return reduce_to_host(true, count, n, x);
}

__global__ void k_clamp(int64_t n, float *x, float lo, float hi) {
    GRID_LOOP(i, n) x[i] = fminf(fmaxf(x[i], lo), hi);
}
static void cu_clamp(int64_t n, float *x, float lo, float hi) {
    LAUNCH_N(k_clamp, n)(n, x, lo, hi);
}

extern "C" void cvn_cuda_set_native_gemm(bool native) { use_native_gemm = native; }
extern "C" void cvn_cuda_set_conv_path(cvn_cuda_conv_path path) { conv_path = path; }
extern "C" void cvn_cuda_set_conv_taps(bool on) { force_taps = on; }
extern "C" void cvn_cuda_set_conv_mma(cvn_cuda_mma use) { conv_mma = use; }
extern "C" void cvn_cuda_set_conv_winograd(int largest, bool always) {
    conv_winograd = largest >= 4 ? 4 : largest >= 2 ? 2 : 0;
    wino_always = always;
}

/* The paths of the harness and the benchmarks (cuda.h) */
static const char *const path_names[CVN_CUDA_PATHS] = {
    "cudnn+cublas",     "im2col+cublas", "im2col+native", "native-tuned",   "implicit-untuned",
    "implicit-taps",    "implicit-mma",  "implicit-mma-async", "winograd", "winograd-4x4"};
extern "C" const char *cvn_cuda_path_name(int path) {
    return path >= 0 && path < CVN_CUDA_PATHS ? path_names[path] : "none";
}
extern "C" void cvn_cuda_use_path(int path) {
    memset(last_pick, 0, sizeof last_pick); /* cvn_cuda_conv_picks: this path's only */
    cvn_cuda_set_native_dnn(path > 0); /* cuDNN for convolution, pooling and batch norm on 0 */
    if (path == 1 || path == 2) cvn_cuda_set_conv_path(CVN_CUDA_CONV_IM2COL);
    cvn_cuda_set_native_gemm(path >= 2);
    cvn_cuda_set_conv_tuning(path != 4);
    cvn_cuda_set_conv_taps(path == 5);
    cvn_cuda_set_conv_mma(path == 6   ? CVN_CUDA_MMA_STAGED
                          : path == 7 ? CVN_CUDA_MMA_ASYNC
                                      : CVN_CUDA_MMA_TUNED);
    cvn_cuda_set_conv_winograd(path == 9 ? 4 : path >= 4 && path <= 7 ? 0 : 2, path >= 8);
}
static const char *const product_names[3] = {"fwd", "bwd data", "bwd filter"};
extern "C" size_t cvn_cuda_conv_picks(char *buf, size_t size) {
    size_t len = 0;
    if (buf && size) buf[0] = 0;
    for (int i = 0; i < 3; i++) {
        if (!last_pick[i].ran) continue;
        text_append(buf, size, &len, "%s%s: ", len ? " | " : "", product_names[i]);
        describe_pick(buf, size, &len, last_pick[i]);
    }
    return len;
}
extern "C" size_t cvn_cuda_conv_tuning(char *buf, size_t size) {
    size_t len = 0;
    if (buf && size) buf[0] = 0;
    for (int i = 0; i < 3; i++) {
        const tune_record &r = last_tuning[i];
        int order[GEMM_CANDIDATES];
        for (int j = 0; j < r.n; j++) order[j] = j;
        std::stable_sort(order, order + r.n, [&](int a, int b) { return r.times[a] < r.times[b]; });
        for (int j = 0; j < r.n; j++) {
            const gemm_plan &c = r.cands[order[j]];
            text_append(buf, size, &len, j ? ", " : "%s: ", product_names[i]);
            describe_pick(buf, size, &len, pick_of(c));
            text_append(buf, size, &len, " %.3f ms", r.times[order[j]]);
            if (int64_t room = plan_room_floats(c))
                text_append(buf, size, &len, " %.1f MiB", room * 4.0 / (1 << 20));
            if (order[j] == r.kept) text_append(buf, size, &len, " (kept)");
        }
        if (r.n) text_append(buf, size, &len, "\n");
    }
    return len;
}
extern "C" void cvn_cuda_set_conv_winograd_round(size_t bytes) {
    /* at least a float: 0 would mean no rounds at all (wino_chunk) */
    int64_t floats = bytes ? (int64_t)std::clamp(bytes / sizeof(float), (size_t)1,
                                                 (size_t)WINO_ROOM_MAX)
                           : WINO_ROUND_FLOATS;
    if (floats != wino_round_floats) n_tunings = 0; /* its timings were of other rounds */
    wino_round_floats = floats;
}
extern "C" void cvn_cuda_set_conv_tuning(bool on) {
    if (on != tune_convs) n_tunings = 0; /* forget what was picked: the next calls start afresh */
    tune_convs = on;
}
extern "C" void cvn_cuda_set_native_dnn(bool native) {
    conv_path = native ? CVN_CUDA_CONV_IMPLICIT : CVN_CUDA_CONV_CUDNN;
    use_native_pool = use_native_bn = native;
}
extern "C" bool cvn_cuda_has_cudnn(void) { return vendor.conv2d_fwd != NULL; }
extern "C" size_t cvn_cuda_cudnn_search(char *buf, size_t size) {
    return cuda_vendor_last_search(buf, size);
}
extern "C" void cvn_cuda_set_copy_stream(bool on) { stage_uploads = on; }
extern "C" long cvn_cuda_mallocs(void) { return mallocs; }
extern "C" size_t cvn_cuda_memory_in_use(void) { return bytes_in_use; }
extern "C" size_t cvn_cuda_memory_peak(void) { return bytes_peak; }
extern "C" void cvn_cuda_reset_memory_peak(void) { bytes_peak = bytes_in_use; }
extern "C" void cvn_cuda_set_memory_limit(size_t bytes) { bytes_limit = bytes; }

/* The scratch kept between calls: Winograd's room, the tap-major weights, batch norm's partial
 * sums, cuDNN's workspace. True where that freed any. */
static bool release_scratch(void) {
    size_t before = bytes_in_use;
    release(&conv_wino), release(&conv_wt), release(&bn_scratch);
    cuda_vendor_release_workspace();
    return bytes_in_use < before;
}
extern "C" size_t cvn_cuda_release_scratch(void) {
    size_t before = bytes_in_use;
    release_scratch();
    return before - bytes_in_use;
}
extern "C" bool cvn_cuda_emulated(void) {
#ifdef CVN_CUDA_EMU
    return true;
#else
    return false;
#endif
}
extern "C" void cvn_cuda_synchronize(void) { cudaStreamSynchronize(stream); }
extern "C" void cvn_cuda_profile(bool on) {
    cudaStreamSynchronize(stream);
    if (on) cudaProfilerStart();
    else cudaProfilerStop();
}

/* ------------------------------------------------------------------ the table */

static cvn_backend table;

static void fill_table(void) {
    table.name = "cuda";
    table.conv_workspace = 1 << 22; /* 16 MiB of columns: few, large GEMMs */
    table.host_memory = cvn_cuda_emulated(); /* the emulation's device memory is malloc's */
    table.alloc = cu_alloc;
    table.free = cu_free;
    table.copy = cu_copy;
    table.upload = cu_upload;
    table.download = cu_download;
    table.zero = cu_zero;
    table.host_register = cu_host_register;
    table.host_unregister = cu_host_unregister;
    table.upload_async = cu_upload_async;
    table.upload_wait = cu_upload_wait;
    table.gemm = cu_gemm;
    table.binary = cu_binary;
    table.binary_bwd = cu_binary_bwd;
    table.affine = cu_affine;
    table.axpy = cu_axpy;
    table.reduce_to = cu_reduce_to;
    table.expand_add = cu_expand_add;
    table.act_fwd = cu_act_fwd;
    table.act_bwd = cu_act_bwd;
    table.softmax_fwd = cu_softmax_fwd;
    table.softmax_bwd = cu_softmax_bwd;
    table.xent_fwd = cu_xent_fwd;
    table.xent_bwd = cu_xent_bwd;
    table.count_hits = cu_count_hits;
    table.bce_fwd = cu_bce_fwd;
    table.bce_bwd = cu_bce_bwd;
    table.im2col = cu_im2col;
    table.col2im = cu_col2im;
    table.copy_blocks = cu_copy_blocks;
    table.conv2d_fwd = cu_conv2d_fwd;
    table.conv2d_bwd = cu_conv2d_bwd;
    table.pool2d_fwd = cu_pool2d_fwd;
    table.pool2d_bwd = cu_pool2d_bwd;
    table.bn_train_fwd = cu_bn_train_fwd;
    table.bn_train_bwd = cu_bn_train_bwd;
    table.maxpool_fwd = cu_maxpool_fwd;
    table.maxpool_bwd = cu_maxpool_bwd;
    table.avgpool_fwd = cu_avgpool_fwd;
    table.avgpool_bwd = cu_avgpool_bwd;
    table.adaptive_avgpool_fwd = cu_adaptive_fwd;
    table.adaptive_avgpool_bwd = cu_adaptive_bwd;
    table.bn_stats = cu_bn_stats;
    table.bn_prepare = cu_bn_prepare;
    table.bn_fwd = cu_bn_fwd;
    table.bn_bwd = cu_bn_bwd;
    table.dropout_fwd = cu_dropout_fwd;
    table.dropout_bwd = cu_dropout_bwd;
    table.optim_update = cu_optim_update;
    table.sum = cu_sum;
    table.sum_sq = cu_sum_sq;
    table.clamp = cu_clamp;
}

static const char *environment(const char *name) { return getenv(name); }

extern "C" const cvn_backend *cvn_backend_cuda(void) {
    static int state; /* 0 untried, 1 ready, -1 unavailable */
    static char why[256];
    static cvn_status failure = CVN_ERR_DEVICE; /* or CVN_ERR_ARG: a setting it does not know */
    if (state == 1) return &table;
    if (state == -1) {
        cvn_set_error(failure, "%s", why);
        return NULL;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(why, sizeof why, "no CUDA GPU is available (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        state = -1;
        cvn_set_error(CVN_ERR_DEVICE, "%s", why);
        return NULL;
    }
    cuda_settings settings;
    if (!read_settings(environment, &settings, why, sizeof why)) {
        state = -1, failure = CVN_ERR_ARG;
        cvn_set_error(failure, "%s", why);
        return NULL;
    }
    cudaStream_t copy;
    bool ok = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess &&
              cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking) == cudaSuccess &&
              cudaEventCreate(&tick) == cudaSuccess && cudaEventCreate(&tock) == cudaSuccess;
    if (ok) {
        copy_streams.streams[RING_COPY] = copy;
        copy_streams.streams[RING_COMPUTE] = stream;
        ok = uploads.init(&copy_streams);
    }
    if (!ok) {
        snprintf(why, sizeof why, "CUDA failed to initialize its streams and events");
        state = -1;
        cvn_set_error(CVN_ERR_DEVICE, "%s", why);
        return NULL;
    }
    use_native_gemm = settings.native_gemm;
    conv_path = settings.conv;
    use_native_pool = settings.native_pool;
    use_native_bn = settings.native_bn;
    tune_convs = settings.tune;
    conv_mma = settings.mma;
    cvn_cuda_set_conv_winograd(settings.winograd, false);
    stage_uploads = settings.copy_stream;
    bytes_limit = settings.memory_limit;
    /* without cuBLAS, GEMM runs on our tiled kernel; without cuDNN, convolution on our implicit
     * GEMM, pooling and batch norm on our kernels */
    cuda_vendor_start(stream, &vendor);
    fill_table();
    state = 1;
    return &table;
}
