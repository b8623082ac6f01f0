/* Enough of CUDA's execution model to run device code (the .cuh headers of kernels/cuda) on a CPU,
 * so that the index arithmetic, tiling and barriers of our kernels are tested on machines without a
 * GPU.
 *
 * A launch runs the grid's blocks one after another; a block's threads are fibers (ucontext) of
 * the calling thread. Each fiber runs until __syncthreads() or its end, then the next one runs:
 * one thread running far ahead of the others is the harshest schedule for a missing barrier, and
 * the order alternates between rounds (forward, backward) so that neither the first nor the last
 * thread always writes shared memory first. A block whose threads do not all reach the same
 * barriers (some wait, others have returned) fails the launch, as it would hang or misbehave on a
 * GPU. __shared__ arrays are function statics, shared by the fibers of the one block running.
 *
 * Not emulated: warps (shuffles, votes), memory spaces, timing, concurrency between blocks (so
 * atomicAdd is a plain add). Under ASan the fibers work, with ASan's one-line warning that it
 * does not fully support swapcontext. */
#ifndef CVN_CUDA_EMU_H
#define CVN_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float4 {
    float x, y, z, w;
};

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

using std::max;
using std::min;

inline float atomicAdd(float *p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}

namespace emu {

struct fiber {
    ucontext_t ctx;
    uint3 tid;
    bool done, waiting;
    std::vector<char> stack;
};

inline ucontext_t scheduler;
inline fiber *current;
inline const std::function<void()> *body;

inline void fiber_main() {
    (*body)();
    current->done = true; /* returning resumes the scheduler (uc_link) */
}

inline void syncthreads() {
    current->waiting = true;
    swapcontext(&current->ctx, &scheduler);
}

/* getcontext returns twice in principle; kept apart so no caller's locals live across it */
inline void start_fiber(fiber &t, uint3 tid, size_t stack_bytes) {
    t.tid = tid;
    t.done = t.waiting = false;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack.data();
    t.ctx.uc_stack.ss_size = stack_bytes;
    t.ctx.uc_link = &scheduler;
    makecontext(&t.ctx, fiber_main, 0);
}

/* One block: its threads' fibers run, one at a time, to a barrier or their end, round after
 * round; false when some wait at a barrier that others have returned past. */
inline bool run_block(std::vector<fiber> &f, dim3 block, size_t stack_bytes) {
    unsigned nt = (unsigned)f.size();
    for (unsigned i = 0; i < nt; i++)
        start_fiber(f[i], {i % block.x, i / block.x % block.y, i / (block.x * block.y)},
                    stack_bytes);
    for (int round = 0;; round++) {
        for (unsigned j = 0; j < nt; j++) {
            fiber &t = f[round % 2 ? nt - 1 - j : j];
            if (t.done || t.waiting) continue;
            current = &t;
            threadIdx = t.tid;
            swapcontext(&scheduler, &t.ctx);
        }
        unsigned waiting = 0;
        for (fiber &t : f) waiting += t.waiting;
        if (waiting == 0) return true;  /* every thread returned */
        if (waiting < nt) return false; /* some returned, some wait: divergence */
        for (fiber &t : f) t.waiting = false;
    }
}

/* Runs fn as every thread of every block of grid; false when a block's threads diverged at a
 * barrier. */
inline bool launch(dim3 grid, dim3 block, const std::function<void()> &fn) {
    const size_t stack_bytes = 64 * 1024;
    std::vector<fiber> f(block.x * block.y * block.z);
    for (fiber &t : f) t.stack.resize(stack_bytes);
    body = &fn;
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                blockIdx = {bx, by, bz};
                if (!run_block(f, block, stack_bytes)) return false;
            }
    return true;
}

} // namespace emu

#define __syncthreads() emu::syncthreads()

#endif
