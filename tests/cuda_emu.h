/* Enough of CUDA's execution model to run device code on a CPU, so that the index arithmetic,
 * tiling, barriers and warp shuffles of our kernels are tested on machines without a GPU: the
 * kernels of kernels/cuda's headers directly (test_cuda_emu), and the whole CUDA backend under
 * the runtime of cuda_emu_runtime.h (test_cuda_emulated).
 *
 * A launch runs the grid's blocks one after another (in reverse order every other launch); a
 * block's threads are fibers of the calling thread. Each fiber runs until __syncthreads(), a warp
 * shuffle or its end, then the next one runs: one thread running far ahead of the others is the
 * harshest schedule for a missing barrier, and the order alternates between rounds (forward,
 * backward) so that neither the first nor the last thread always writes shared memory first. When
 * every thread has stopped, a warp whose 32 threads all wait at a shuffle goes on first; else, when
 * all the block's threads wait at __syncthreads, they all go on. Threads that stopped at different
 * barriers (some wait, others have returned, or half a warp shuffles) fail the launch, as they
 * would hang or misbehave on a GPU. Where thread 0 returns without meeting a barrier, the block's
 * other threads run as plain calls (see run_block). __shared__ arrays are function statics, shared
 * by the fibers of the one block running.
 *
 * A tensor-core product (mma.m16n8k8 with TF32 operands) is a warp-wide stop like a shuffle:
 * each lane leaves its fragments, then each computes its part of the result from all of them, by
 * PTX's fragment layout, in FP32 (the hardware's order of additions is not emulated).
 *
 * An asynchronous copy (cp.async) lands as late as PTX allows: when its thread waits for its group
 * (cp.async.wait_group), not at a barrier, so that a kernel that reads a buffer before waiting for
 * its own copies, or before the barrier after everyone's, reads what was there before.
 *
 * Not emulated: memory spaces, timing, votes, concurrency between blocks (so atomicAdd is a plain
 * add). Shuffles take the full mask only. */
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

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

/* On x86-64 a fiber switch is a few instructions: the callee-saved registers pushed on one stack,
 * the stack pointer swapped, the other stack's popped (swapcontext would also save the signal
 * mask, a system call per switch, 20 times the cost). Elsewhere, or with -DEMU_UCONTEXT,
 * ucontext. */
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_ASM_SWITCH 1
extern "C" void emu_switch(void **save_sp, void *load_sp);
__asm__(".pushsection .text\n"
        ".weak emu_switch\n"
        ".type emu_switch, @function\n"
        "emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size emu_switch, .-emu_switch\n"
        ".popsection\n");
#else
#define EMU_ASM_SWITCH 0
#endif

#define CVN_CUDA_EMU_DEVICE 1 /* device code that differs here (mma_tf32) tests for it */
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
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

using std::max;
using std::min;

inline unsigned __float_as_uint(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

template <class T> inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}

namespace emu {

enum state { RUNNING, AT_BARRIER, AT_SHUFFLE, DONE };

struct fiber {
    uint3 tid;
    state at;
    std::vector<char> stack;
#if EMU_ASM_SWITCH
    void *sp; /* where its registers were saved when it stopped */
#else
    ucontext_t ctx;
#endif
};

const size_t STACK_BYTES = 64 * 1024;
inline fiber *current;
inline unsigned current_index; /* the running thread's linear index in its block */
inline const std::function<void()> *body;
inline std::vector<fiber> pool;     /* kept from launch to launch: stacks are not cheap to map */
inline std::vector<uint64_t> lanes; /* a shuffle's values, one slot per thread of the block */
const int MMA_BATCH = 64;           /* products in one mma_m16n8k8_tf32 call, at most */
inline std::vector<unsigned> fragments; /* mma batches' A and B, MMA_BATCH x 6 per thread */
struct async_copy {
    float *dst;
    const float *src; /* NULL: a 0 (src-size 0) */
};
struct async_copies {
    std::vector<async_copy> queued; /* in order of issue */
    std::vector<size_t> ends;       /* where each committed group ends in queued */
};
inline std::vector<async_copies> copies; /* each thread's of the running block */

/* ---- switching between the scheduler (the launching thread's stack) and a fiber. ASan is told
 * of every switch, so that it tracks which stack is live. */
#if EMU_ASM_SWITCH
inline void *scheduler_sp;
#else
inline ucontext_t scheduler;
#endif
inline const void *scheduler_bottom;
inline size_t scheduler_size;

inline void switch_stack(bool to_fiber, bool dying = false) {
#if EMU_ASAN
    void *fake = NULL;
    if (to_fiber)
        __sanitizer_start_switch_fiber(&fake, current->stack.data(), STACK_BYTES);
    else
        __sanitizer_start_switch_fiber(dying ? NULL : &fake, scheduler_bottom, scheduler_size);
#endif
#if EMU_ASM_SWITCH
    if (to_fiber)
        emu_switch(&scheduler_sp, current->sp);
    else
        emu_switch(&current->sp, scheduler_sp);
#else
    if (to_fiber)
        swapcontext(&scheduler, &current->ctx);
    else
        swapcontext(&current->ctx, &scheduler);
#endif
#if EMU_ASAN
    if (to_fiber)
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
    else
        __sanitizer_finish_switch_fiber(fake, &scheduler_bottom, &scheduler_size);
#endif
}

/* A fiber's first frame: never returns, its last switch leaves it for good. */
[[noreturn]] inline void fiber_main() {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &scheduler_bottom, &scheduler_size);
#endif
    (*body)();
    current->at = DONE;
    switch_stack(false, true);
    abort(); /* not resumed */
}

inline void start_fiber(fiber &t, uint3 tid) {
    t.tid = tid;
    t.at = RUNNING;
#if EMU_ASM_SWITCH
    /* the frame emu_switch pops: six callee-saved registers, then fiber_main as the return
     * address, above it a null one, so that fiber_main starts as if called (rsp = 8 mod 16) */
    uintptr_t top = ((uintptr_t)t.stack.data() + STACK_BYTES) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;
    *--sp = (void *)fiber_main;
    for (int r = 0; r < 6; r++) *--sp = NULL;
    t.sp = sp;
#else
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack.data();
    t.ctx.uc_stack.ss_size = STACK_BYTES;
    t.ctx.uc_link = NULL;
    makecontext(&t.ctx, (void (*)())fiber_main, 0);
#endif
}

inline void resume(unsigned i) {
    current = &pool[i];
    current_index = i;
    threadIdx = current->tid;
    switch_stack(true);
}

inline bool direct;         /* the block's threads run as plain calls (see run_block) */
inline bool direct_stopped; /* and one of them met a barrier */

inline void stop_at(state s) {
    if (direct) {
        direct_stopped = true;
        return;
    }
    current->at = s;
    switch_stack(false);
}

inline void syncthreads() {
    stop_at(AT_BARRIER);
}

/* __shfl_down_sync(0xffffffff, v, delta, width): lane l gets lane l + delta's v where that lies
 * in l's segment of width lanes, else its own. Two stops of the warp: every lane has written its
 * value before any reads, and every lane has read before any writes again. */
template <class T> T shfl_down(unsigned mask, T v, unsigned delta, int width) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffled value fits a slot");
    if (mask != 0xffffffffu) abort(); /* partial masks are not emulated */
    unsigned i = current_index;
    memcpy(&lanes[i], &v, sizeof v);
    stop_at(AT_SHUFFLE);
    T got = v;
    if (i % 32 % (unsigned)width + delta < (unsigned)width)
        memcpy(&got, &lanes[i + delta], sizeof got);
    stop_at(AT_SHUFFLE);
    return got;
}

/* n products of mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 over the warp, in order: d[i]
 * += a[i] b[i] (a d may come again, and takes the earlier sums). Lane l = 4 g + t holds a = A at
 * (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4); b = B at (t, g), (t + 4, g); d = C at (g, 2t),
 * (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1) (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32).
 * An operand with any of its 13 low bits set aborts: the hardware would ignore them, so the caller
 * forgot to round it to TF32. Two stops for the n products, as a shuffle's (one stop per product
 * would cost the emulation a round of fiber switches each). */
inline void mma_m16n8k8_tf32(int n, float *const d[], const unsigned *const a[],
                             const unsigned *const b[]) {
    if (n > MMA_BATCH) abort();
    unsigned i = current_index, lane = i % 32, warp = i - lane;
    for (int p = 0; p < n; p++) {
        unsigned *f = &fragments[((size_t)i * MMA_BATCH + p) * 6];
        for (int q = 0; q < 4; q++) f[q] = a[p][q];
        for (int q = 0; q < 2; q++) f[4 + q] = b[p][q];
        for (int q = 0; q < 6; q++)
            if (f[q] & 0x1fffu) abort();
    }
    stop_at(AT_SHUFFLE);
    for (int p = 0; p < n; p++) {
        auto at = [&](unsigned l, unsigned reg) {
            return __uint_as_float(fragments[((size_t)(warp + l) * MMA_BATCH + p) * 6 + reg]);
        };
        for (unsigned q = 0; q < 4; q++) {
            unsigned row = lane / 4 + q / 2 * 8, col = lane % 4 * 2 + q % 2;
            float s = d[p][q];
            for (unsigned k = 0; k < 8; k++) /* each product exact: two TF32 significands fit */
                s += at(row % 8 * 4 + k % 4, row / 8 + k / 4 * 2) * at(col * 4 + k % 4, 4 + k / 4);
            d[p][q] = s;
        }
    }
    stop_at(AT_SHUFFLE);
}

/* Whether this launch's threads made an access that a GPU faults on (a misaligned vector load):
 * launch then fails, as the kernel would with cudaErrorMisalignedAddress */
inline bool faulted;

/* A vector load of `bytes` at q: true where q is aligned to them; else false, the launch marked
 * faulted (the caller then loads element by element, so the emulation itself stays defined) */
inline bool aligned_load(const void *q, size_t bytes) {
    if ((uintptr_t)q % bytes == 0) return true;
    faulted = true;
    return false;
}

/* cp.async.ca.shared.global [dst], [src], 4, bytes (4, or 0 for a 0): queued for the thread */
inline void cp_async(float *dst, const float *src, int bytes) {
    copies[current_index].queued.push_back({dst, bytes ? src : NULL});
}

/* cp.async.commit_group: the thread's copies since the last one form a group */
inline void cp_async_commit() {
    async_copies &c = copies[current_index];
    c.ends.push_back(c.queued.size());
}

/* cp.async.wait_group n: the thread's committed groups but the newest n land, in order */
inline void cp_async_wait(int n) {
    async_copies &c = copies[current_index];
    if (c.ends.size() <= (size_t)n) return;
    size_t groups = c.ends.size() - n, upto = c.ends[groups - 1];
    for (size_t i = 0; i < upto; i++) {
        const async_copy &a = c.queued[i];
        *a.dst = a.src ? *a.src : 0.0f;
    }
    c.queued.erase(c.queued.begin(), c.queued.begin() + (long)upto);
    c.ends.erase(c.ends.begin(), c.ends.begin() + (long)groups);
    for (size_t &e : c.ends) e -= upto;
}

/* Lets the threads stopped at a barrier go on: a warp's shuffle first, else the block's
 * __syncthreads; false when they stopped at different ones. done: every thread returned. */
inline bool release(unsigned nt, bool &done) {
    bool any = false;
    for (unsigned w = 0; w < nt; w += 32) {
        unsigned end = std::min(nt, w + 32), shuffling = 0;
        for (unsigned i = w; i < end; i++) shuffling += pool[i].at == AT_SHUFFLE;
        if (shuffling == 0) continue;
        if (shuffling < end - w) return false; /* part of the warp shuffles */
        for (unsigned i = w; i < end; i++) pool[i].at = RUNNING;
        any = true;
    }
    if (any) return true;
    unsigned waiting = 0;
    for (unsigned i = 0; i < nt; i++) waiting += pool[i].at == AT_BARRIER;
    done = waiting == 0;
    if (waiting == 0) return true;  /* every thread returned */
    if (waiting < nt) return false; /* some returned, some wait */
    for (unsigned i = 0; i < nt; i++) pool[i].at = RUNNING;
    return true;
}

inline uint3 thread_at(unsigned i, dim3 block) {
    return {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
}

/* One block: its threads' fibers run, one at a time, to a barrier or their end, round after
 * round; false when they stopped at different barriers. Where thread 0 returns without meeting
 * a barrier, so must every other thread, and they run as plain calls, which costs no context
 * switches (most kernels have no barrier); one that meets a barrier then fails the block. This
 * assumes that where any warp shuffles, the first does too, as in every kernel of ours. */
inline bool run_block(unsigned nt, dim3 block) {
    for (unsigned i = 0; i < nt; i++) /* a block's copies still queued at its end never land */
        copies[i].queued.clear(), copies[i].ends.clear();
    start_fiber(pool[0], thread_at(0, block));
    resume(0);
    if (pool[0].at == DONE) {
        direct = true, direct_stopped = false;
        for (unsigned i = 1; i < nt; i++) {
            current_index = i;
            threadIdx = thread_at(i, block);
            (*body)();
        }
        direct = false;
        return !direct_stopped;
    }
    for (unsigned i = 1; i < nt; i++) start_fiber(pool[i], thread_at(i, block));
    for (int round = 0;; round++) {
        for (unsigned j = round == 0; j < nt; j++) { /* thread 0 has had its first turn */
            unsigned i = round % 2 ? nt - 1 - j : j;
            if (pool[i].at == RUNNING) resume(i);
        }
        bool done = false;
        if (!release(nt, done)) return false;
        if (done) return true;
    }
}

/* Runs fn as every thread of every block of grid; false when a block's threads diverged at a
 * barrier or a thread faulted. */
inline bool launch(dim3 grid, dim3 block, const std::function<void()> &fn) {
    unsigned nt = block.x * block.y * block.z;
    if (pool.size() < nt) {
        pool.resize(nt);
        for (fiber &t : pool) t.stack.resize(STACK_BYTES);
        lanes.resize(nt + 32);
        fragments.resize((size_t)nt * MMA_BATCH * 6);
        copies.resize(nt);
    }
    const std::function<void()> *outer = body;
    bool outer_faulted = faulted;
    body = &fn;
    faulted = false;
    gridDim = grid;
    blockDim = block;
    /* blocks in order on one launch, in reverse on the next: a kernel that counts on an order
     * of blocks (which a GPU does not keep) gets both */
    static bool reverse;
    reverse = !reverse;
    uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    bool ok = true;
    for (uint64_t j = 0; ok && j < blocks; j++) {
        uint64_t b = reverse ? blocks - 1 - j : j;
        blockIdx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                    (unsigned)(b / grid.x / grid.y)};
        ok = run_block(nt, block) && !faulted;
    }
    body = outer;
    faulted = outer_faulted;
    return ok;
}

} // namespace emu

template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu::shfl_down(mask, v, delta, width);
}
#define __syncthreads() emu::syncthreads()

#endif
