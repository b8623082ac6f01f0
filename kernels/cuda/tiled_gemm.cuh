/* One tiled SGEMM for matrix products and, as implicit GEMMs, for the three products of a
 * convolution: forward, backward data and backward filter. No im2col matrix is ever stored: each
 * block gathers the tile of the virtual im2col matrix it needs straight from the images, as in
 * cuDNN's IMPLICIT_GEMM algorithm (Chetlur et al., "cuDNN: Efficient Primitives for Deep
 * Learning", 2014, section 3.1).
 *
 * C (m x n) = A (m x k) B (k x n), per group of a grouped convolution:
 *   forward        m = out channels, n = images x output pixels, k = in channels x kh x kw;
 *                  A = the weights, B = the input gathered under the window, C -> y (+ bias,
 *                  activation, 2x2 max pooling: then the columns run over pooling windows, four
 *                  adjacent columns one window, so one thread holds each window whole)
 *   backward data  m = in channels,  n = images x input pixels,  k = out channels x kh x kw;
 *                  A = the weights transposed, B = dy gathered under the turned window, C -> dx
 *   backward filter m = out channels, n = in channels x kh x kw, k = images x output pixels;
 *                  A = dy, B = the input gathered as in forward but transposed, C -> dw (+=)
 *
 * A block of 256 threads computes a BM x BN tile of C (64 x 64, 128 x 128, or 64 x 128 where C
 * has at most 64 rows), each thread a TM x TN sub-tile (4 or 8 each way, in two interleaved halves
 * so that a warp's shared-memory reads do not collide), K in steps of 8 through two shared
 * buffers: the next step's elements are fetched into registers while the current one is
 * multiplied, so one barrier per step suffices. A thread fetches either one element at each of
 * several rows (a matrix read along k) or several consecutive k of one row or column: a
 * convolution's A (weights, dy rows, contiguous along k: one vector load where aligned) and its
 * gathered B (image pixels: a run shares one bounds check, or for the backward filter one input
 * row); the position along k is kept as mixed-radix digits (e.g. kw, kh, channel) and advanced by
 * carries, so the gathers divide nothing in the loop.
 * blockIdx.z = group x K slices: with few output tiles and a long K (weight gradients) the slices
 * add their partial products atomically into C.
 *
 * The same tiles and K loop also multiply on tensor cores (k_mma_gemm): each element split into
 * two TF32 parts as it is stored into shared memory, three mma.m16n8k8 products per pair of
 * tiles ("3xTF32", FP32's accuracy; Ootomo and Yokota, "Recovering single precision accuracy
 * from Tensor Cores while surpassing the FP32 theoretical peak performance", 2022). A pipelined
 * form of it (ASYNC) copies the unsplit elements with cp.async a few steps ahead and splits them
 * as each warp loads its fragments. Tuning times the kernels per shape.
 *
 * The same GEMM also runs Winograd's batch of products (GEMM_WINOGRAD, winograd.cuh): A the
 * transformed weights as rows, B the transformed input tiles, a group per point of the tile (for
 * the filter's gradient A dy's tiles transformed and B the input's transposed, K the tiles).
 *
 * Forward and backward data can also run K tap-major, k = (kh, kw, channel) with channels
 * fastest ("taps"): A is then the weights permuted into that order by k_conv_weights_taps (into
 * args.wt, before the product), and a thread's consecutive k are consecutive channels at one
 * window offset, so one bounds check and one address serve them all (with a channel count that
 * divides into the thread's run; otherwise element by element as before). Tuning times both orders.
 *
 * Device code and the host-side plan only (no CUDA runtime calls): backend_cuda.cu launches the
 * plans on its stream; tests/test_cuda_emu.cpp runs the same kernels and plans on the CPU. */
#ifndef CVN_CUDA_TILED_GEMM_CUH
#define CVN_CUDA_TILED_GEMM_CUH

#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "cuda/activation.cuh"
#include "cuda/lean_pick.cuh"

/* The products: a matrix's, a convolution's three, and Winograd's batch (winograd.cuh: the kernels'
 * MODE only; args.mode stays the convolution product it computes) */
enum { GEMM_MATRIX, GEMM_CONV_FWD, GEMM_CONV_BWD_DATA, GEMM_CONV_BWD_FILTER, GEMM_WINOGRAD };

#define GEMM_THREADS 256
#define GEMM_BK 8
#define GEMM_PAD 4         /* shared rows padded so that k-major stores do not collide */
#define KPOS_BIG (1 << 30) /* radix of a digit that never carries; sizes must stay below it */
/* An image row offset that no window reaches: marks a gathered column past the matrix (rows and
 * offsets stay below KPOS_BIG / 2, so adding them keeps it negative without overflow) */
#define OUTSIDE (-(1 << 29))

/* An operand as rows of memory (rows_operand): row f of group grp starts at p + grp * group + f *
 * row, its k = (d1, d0) at d1 * outer + d0, d0 < r0; rows of them */
typedef struct {
    const float *p;
    int rows, r0;
    int64_t group, row, outer;
} gemm_rows;

typedef struct {
    int mode;
    int m, n, k;     /* the product per group */
    int groups;      /* convolution groups (1 for a matrix) */
    int splits;      /* K slices: blockIdx.z = group * splits + slice */
    int k_slice;     /* length of a slice, a multiple of GEMM_BK */
    /* matrix: C = alpha op(A) op(B) + beta C, row-major (when split, C is scaled by beta first
     * and the slices add into it) */
    bool ta, tb;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
    float alpha, beta;
    /* convolution: the shapes, x, w, dy, bias as the mode reads them, out as it writes */
    cvn_conv_desc d;
    int cg, og, hw, ohw, khw;
    int phw, pw; /* forward with 2x2 max pooling: the pooled plane's size and width */
    const float *x, *w, *dy, *bias;
    float *out;
    bool accumulate; /* backward data: dx += (else dx =) */
    bool taps;       /* K tap-major (forward, backward data): A is wt, the permuted weights */
    float *wt;       /* room for the permuted weights (o x c / groups x kh x kw), or NULL */
    gemm_rows ra;    /* A as rows of memory (rows_operand) */
    gemm_rows rb;    /* B likewise, where its operand is rows (the filter gradient's Winograd) */
    struct {
        int m;                 /* output tiles m x m by F(m x m, 3 x 3), 2 or 4; 0: not Winograd */
        int th, tw;            /* tile rows and columns of the output plane */
        int images;            /* images per round of the transforms and product (all, or fewer) */
        int64_t chunk_floats;  /* room a round should fit in, for rounds that stay in L2 (0: none) */
        int ci, co;            /* the product's in and out channels (backward data: o and c) */
        int ih, iw, oh, ow, ph, pw; /* its input and output planes and padding */
        bool flip;             /* backward data: the weights turned, channels swapped */
        const float *in;       /* x or dy */
        float *u, *v, *mm;     /* U, V and M in room (set_wino) */
        float *room;           /* room for them, room_floats long, or NULL */
        int64_t room_floats;
    } wg; /* Winograd (winograd.cuh) */
} gemm_args;

/* A position along k as digits: k = (d2 * r1 + d1) * r0 + d0. */
typedef struct {
    int k, d0, d1, d2;
} kpos;

__device__ inline kpos kpos_at(int k, int r0, int r1) {
    kpos p;
    p.k = k;
    p.d0 = k % r0;
    p.d1 = (k / r0) % r1;
    p.d2 = k / r0 / r1;
    return p;
}

/* p += s, where s = kpos_at(step): one carry per digit at most */
__device__ __forceinline__ void kpos_add(kpos &p, const kpos &s, int r0, int r1) {
    p.k += s.k;
    p.d0 += s.d0;
    if (p.d0 >= r0) p.d0 -= r0, p.d1++;
    p.d1 += s.d1;
    if (p.d1 >= r1) p.d1 -= r1, p.d2++;
    p.d2 += s.d2;
}

/* p += 1 */
__device__ __forceinline__ void kpos_inc(kpos &p, int r0, int r1) {
    p.k++;
    if (++p.d0 == r0) {
        p.d0 = 0;
        if (++p.d1 == r1) p.d1 = 0, p.d2++;
    }
}

/* ---------------------------------------------------------------- operands
 * Each operand says how its fixed index f (a row of A, a column of B) decodes once per thread,
 * the radices of its k digits, whether a thread takes one k of several rows (kmajor) or several
 * k of one row, the lanes walking rows (a gather's pixels) or a row's k first (k_first), where one
 * element lies (where: true and its address, or false outside the matrix or in the padding,
 * where it is 0, and q is left as it was); one with runs (has_run) also places a thread's L
 * consecutive k at once: where the first is, the others a plane apart (unit_plane: adjacent, and
 * aligned for one vector load), all in or all out; one with row runs (has_row_run) places them in
 * one row, each in or out by its own column. The third parameter says
 * how K is laid out: for a matrix, whether the operand is stored transposed; for a convolution's
 * B, whether K runs tap-major. */

template <int MODE, bool IS_A, bool TRANS> struct operand;

/* matrix A (m x k; stored k x m when transposed) and B (k x n; stored n x k when transposed) */
template <bool IS_A, bool TRANS> struct operand<GEMM_MATRIX, IS_A, TRANS> {
    static const bool kmajor = IS_A != TRANS; /* contiguous along k */
    static const bool has_run = false, unit_plane = false, k_first = false, has_row_run = false;
    typedef struct {
        const float *p;
        bool ok;
    } fix;
    __device__ static void radix(const gemm_args &, int &r0, int &r1) { r0 = r1 = KPOS_BIG; }
    __device__ static fix at(const gemm_args &g, int, int f) {
        fix s;
        s.ok = f < (IS_A ? g.m : g.n);
        const float *base = IS_A ? g.a : g.b;
        int ld = IS_A ? g.lda : g.ldb;
        s.p = kmajor ? base + (int64_t)f * ld : base + f;
        return s;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        if (!s.ok || p.k >= k_end) return false;
        q = kmajor ? s.p + p.k : s.p + (int64_t)p.k * (IS_A ? g.lda : g.ldb);
        return true;
    }
};

/* An operand that is rows of memory already (gemm_rows): the convolutions' A (args.ra; plan_conv
 * says which matrix for each mode: the weights, the weights transposed, dy), and the filter
 * gradient's Winograd B (args.rb: V[xi] transposed). A thread takes L consecutive k of one row:
 * where they lie side by side in memory, aligned (runs), one vector load (L floats) fetches them
 * all. */
template <bool IS_B> struct rows_operand {
    static const bool kmajor = false;
    static const bool has_run = true, unit_plane = true, k_first = true, has_row_run = false;
    typedef struct {
        const float *p;
        bool ok;
    } fix;
    __device__ static const gemm_rows &rows(const gemm_args &g) { return IS_B ? g.rb : g.ra; }
    __device__ static void radix(const gemm_args &g, int &r0, int &r1) {
        r0 = rows(g).r0;
        r1 = KPOS_BIG;
    }
    __device__ static fix at(const gemm_args &g, int grp, int f) {
        fix s;
        s.ok = f < rows(g).rows;
        s.p = rows(g).p + grp * rows(g).group + f * rows(g).row;
        return s;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        if (!s.ok || p.k >= k_end) return false;
        q = s.p + p.d1 * rows(g).outer + p.d0;
        return true;
    }
    __device__ static int plane(const gemm_args &) { return 1; }
    /* a run: L consecutive k (p.k a multiple of L) within one d1, inside the product, at an
     * address aligned to L floats */
    __device__ static bool runs(const gemm_args &g, int L) {
        bool whole_rows = rows(g).r0 == KPOS_BIG || (rows(g).r0 % L == 0 && rows(g).outer % L == 0);
        return whole_rows && g.k % L == 0 && rows(g).row % L == 0 && rows(g).group % L == 0 &&
               (uintptr_t)rows(g).p % (sizeof(float) * L) == 0;
    }
};
template <bool TRANS> struct operand<GEMM_CONV_FWD, true, TRANS> : rows_operand<false> {};
template <bool TRANS> struct operand<GEMM_CONV_BWD_DATA, true, TRANS> : rows_operand<false> {};
template <bool TRANS> struct operand<GEMM_CONV_BWD_FILTER, true, TRANS> : rows_operand<false> {};
template <bool TRANS> struct operand<GEMM_WINOGRAD, true, TRANS> : rows_operand<false> {};

/* Winograd's B: V[xi] (k = in channel, n = tile), rows of n floats, the group (xi) k x n apart; a
 * thread's L consecutive k are a row apart (the lanes walk the tiles of a row) */
template <> struct operand<GEMM_WINOGRAD, false, false> {
    static const bool kmajor = false;
    static const bool has_run = true, unit_plane = false, k_first = false, has_row_run = false;
    typedef struct {
        const float *p;
        bool ok;
    } fix;
    __device__ static void radix(const gemm_args &, int &r0, int &r1) { r0 = r1 = KPOS_BIG; }
    __device__ static fix at(const gemm_args &g, int grp, int f) {
        fix s;
        s.ok = f < g.n;
        s.p = g.wg.v + (int64_t)grp * g.k * g.n + f;
        return s;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        if (!s.ok || p.k >= k_end) return false;
        q = s.p + (int64_t)p.k * g.n;
        return true;
    }
    __device__ static int plane(const gemm_args &g) { return g.n; }
    __device__ static bool runs(const gemm_args &g, int L) { return g.k % L == 0; }
};

/* The filter's gradient's B: V[xi] transposed (k = tile, n = in channel), rows along k as A's
 * (args.rb, wino_rows) */
template <> struct operand<GEMM_WINOGRAD, false, true> : rows_operand<true> {};

/* forward B: x under the window of output pixel f, k = (channel, kh, kw), or (kh, kw, channel)
 * when TAPS */
template <bool TAPS> struct operand<GEMM_CONV_FWD, false, TAPS> {
    static const bool kmajor = false;
    static const bool has_run = TAPS, unit_plane = false, k_first = false, has_row_run = false;
    typedef struct {
        const float *p;
        int ih0, iw0; /* OUTSIDE past the matrix's columns */
    } fix;
    __device__ static void radix(const gemm_args &g, int &r0, int &r1) {
        r0 = TAPS ? g.cg : g.d.kw;
        r1 = TAPS ? g.d.kw : g.d.kh;
    }
    __device__ static fix at(const gemm_args &g, int grp, int f) {
        fix s;
        int img, oh, ow;
        if (g.d.pool) { /* columns in pooling windows of 4: (image, window, row, column) */
            int win = f / 4, sub = f % 4;
            img = win / g.phw, win %= g.phw;
            oh = win / g.pw * 2 + sub / 2, ow = win % g.pw * 2 + sub % 2;
        } else {
            img = f / g.ohw;
            oh = f % g.ohw / g.d.ow, ow = f % g.d.ow;
        }
        s.ih0 = f < g.n ? oh * g.d.sh - g.d.ph : OUTSIDE;
        s.iw0 = ow * g.d.sw - g.d.pw;
        s.p = g.x + ((int64_t)img * g.d.c + grp * g.cg) * g.hw;
        return s;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        int kh = TAPS ? p.d2 : p.d1, kw = TAPS ? p.d1 : p.d0, c = TAPS ? p.d0 : p.d2;
        int ih = s.ih0 + kh * g.d.dh, iw = s.iw0 + kw * g.d.dw;
        if (p.k >= k_end || (unsigned)ih >= (unsigned)g.d.h || (unsigned)iw >= (unsigned)g.d.w)
            return false;
        q = s.p + (int64_t)c * g.hw + ih * g.d.w + iw;
        return true;
    }
    /* a run: L channels at one window offset (p.k is a multiple of L, and so is the channel
     * count), in or out together, a plane apart */
    __device__ static int plane(const gemm_args &g) { return g.hw; }
    __device__ static bool runs(const gemm_args &g, int L) { return g.cg % L == 0; }
};

/* backward data B: dy at the output pixels whose window covers input pixel f, k = (out channel,
 * kh, kw), or (kh, kw, out channel) when TAPS; with stride s only every s-th offset lands on an
 * output pixel */
template <bool TAPS> struct operand<GEMM_CONV_BWD_DATA, false, TAPS> {
    static const bool kmajor = false;
    static const bool has_run = TAPS, unit_plane = false, k_first = false, has_row_run = false;
    typedef struct {
        const float *p;
        int y0, x0; /* OUTSIDE past the matrix's columns */
    } fix;
    __device__ static void radix(const gemm_args &g, int &r0, int &r1) {
        r0 = TAPS ? g.og : g.d.kw;
        r1 = TAPS ? g.d.kw : g.d.kh;
    }
    __device__ static fix at(const gemm_args &g, int grp, int f) {
        fix s;
        int img = f / g.hw, r = f % g.hw;
        s.y0 = f < g.n ? r / g.d.w + g.d.ph : OUTSIDE;
        s.x0 = r % g.d.w + g.d.pw;
        s.p = g.dy + ((int64_t)img * g.d.o + grp * g.og) * g.ohw;
        return s;
    }
    /* The offset in dy's plane of the output pixel that tap (kh, kw) takes from input pixel s, or
     * -1 where none does. */
    __device__ static int pixel(const gemm_args &g, const fix &s, int kh, int kw) {
        int oy = s.y0 - kh * g.d.dh, ox = s.x0 - kw * g.d.dw;
        if (oy < 0 || ox < 0) return -1;
        if (g.d.sh > 1) {
            if (oy % g.d.sh) return -1;
            oy /= g.d.sh;
        }
        if (g.d.sw > 1) {
            if (ox % g.d.sw) return -1;
            ox /= g.d.sw;
        }
        if (oy >= g.d.oh || ox >= g.d.ow) return -1;
        return oy * g.d.ow + ox;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        int kh = TAPS ? p.d2 : p.d1, kw = TAPS ? p.d1 : p.d0, o = TAPS ? p.d0 : p.d2;
        int at = p.k < k_end ? pixel(g, s, kh, kw) : -1;
        if (at < 0) return false;
        q = s.p + (int64_t)o * g.ohw + at;
        return true;
    }
    /* a run: L out channels at one window offset, in or out together, a plane apart */
    __device__ static int plane(const gemm_args &g) { return g.ohw; }
    __device__ static bool runs(const gemm_args &g, int L) { return g.og % L == 0; }
};

/* backward filter B: x at tap f = (channel, kh, kw) for each output pixel, k = (image, oh, ow) */
template <bool TRANS> struct operand<GEMM_CONV_BWD_FILTER, false, TRANS> {
    static const bool kmajor = false;
    static const bool has_run = false, unit_plane = false, k_first = true, has_row_run = true;
    typedef struct {
        const float *p;
        int kh0, kw0; /* OUTSIDE past the matrix's columns */
    } fix;
    __device__ static void radix(const gemm_args &g, int &r0, int &r1) {
        r0 = g.d.ow;
        r1 = g.d.oh;
    }
    __device__ static fix at(const gemm_args &g, int grp, int f) {
        fix s;
        int c = f / g.khw, r = f % g.khw;
        s.kh0 = f < g.n ? r / g.d.kw * g.d.dh - g.d.ph : OUTSIDE;
        s.kw0 = r % g.d.kw * g.d.dw - g.d.pw;
        s.p = g.x + ((int64_t)grp * g.cg + c) * g.hw;
        return s;
    }
    __device__ static bool where(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                 const float *&q) {
        int ih = p.d1 * g.d.sh + s.kh0, iw = p.d0 * g.d.sw + s.kw0;
        if (p.k >= k_end || (unsigned)ih >= (unsigned)g.d.h || (unsigned)iw >= (unsigned)g.d.w)
            return false;
        q = s.p + (int64_t)p.d2 * g.d.c * g.hw + ih * g.d.w + iw;
        return true;
    }
    /* a row run: L consecutive output pixels of one output row (p.k a multiple of L, and so is
     * the row), so one input row: where that row is (false where it is outside the image or the
     * product) and the first's input column; each is in or out by its own column, sw apart */
    __device__ static bool runs(const gemm_args &g, int L) { return g.d.ow % L == 0; }
    __device__ static bool where_row(const gemm_args &g, const fix &s, const kpos &p, int k_end,
                                     const float *&row, int &col) {
        int ih = p.d1 * g.d.sh + s.kh0;
        if (p.k >= k_end || (unsigned)ih >= (unsigned)g.d.h) return false;
        row = s.p + (int64_t)p.d2 * g.d.c * g.hw + ih * g.d.w;
        col = p.d0 * g.d.sw + s.kw0;
        return true;
    }
};

/* Whether x is one of split_tf32's special cases: inf, NaN, or a magnitude of 2^127 or more,
 * where the head could round up to inf (the exponent's top 7 bits all set). */
__device__ __forceinline__ bool tf32_special(float x) {
    return (__float_as_uint(x) & 0x7f000000u) == 0x7f000000u;
}

/* split_tf32 of an x that is not tf32_special: the head rounded to nearest, ties away from zero,
 * then the rest likewise, two integer operations each */
__device__ __forceinline__ void split_tf32_plain(float x, float &hi, float &lo) {
    const unsigned keep = 0xffffe000u, half = 0x1000u;
    hi = __uint_as_float((__float_as_uint(x) + half) & keep);
    lo = __uint_as_float((__float_as_uint(x - hi) + half) & keep);
}

/* x = hi + lo + (a rest below 2^-21 |x|), hi and lo TF32 values (the low 13 bits of their FP32
 * encodings zero, which the tensor cores ignore); hi rounded to nearest, ties away from zero, as
 * cvt.rna.tf32.f32 does. Integer operations only, the same on a GPU and in the emulation. Inf and
 * NaN stay in hi (NaN kept NaN), lo 0; near the largest float, where hi would round up to inf,
 * hi and lo are truncated instead (hi + lo stays finite). */
__device__ __forceinline__ void split_tf32(float x, float &hi, float &lo) {
    if (!tf32_special(x)) {
        split_tf32_plain(x, hi, lo);
        return;
    }
    const unsigned keep = 0xffffe000u, half = 0x1000u, exp = 0x7f800000u;
    unsigned u = __float_as_uint(x);
    bool special = (u & exp) == exp; /* inf or NaN */
    unsigned h = (u + half) & keep, round = half;
    if ((h & exp) == exp) h = u & keep, round = 0; /* rounds past the largest TF32: truncated */
    if (special && (u & 0x7fffffu)) h |= 0x400000u; /* NaN's quiet bit survives the mask */
    hi = __uint_as_float(h);
    unsigned l = (__float_as_uint(x - hi) + round) & keep;
    lo = __uint_as_float(special ? 0u : l);
}

/* split_tf32 of N elements: the plain form for all, or the full one where any needs it */
template <int N>
__device__ __forceinline__ void split_tf32_n(const float *x, float *hi, float *lo) {
    bool special = false;
#pragma unroll
    for (int j = 0; j < N; j++) special |= tf32_special(x[j]);
    if (special)
#pragma unroll
        for (int j = 0; j < N; j++) split_tf32(x[j], hi[j], lo[j]);
    else
#pragma unroll
        for (int j = 0; j < N; j++) split_tf32_plain(x[j], hi[j], lo[j]);
}

/* Where the tensor-core kernel keeps a tile's elements in shared memory: in the order of mma's
 * fragments, so that a lane's fragment of a 16 x 8 tile of A, or 8 x 8 tile of B, is one 16-byte
 * load straight into the registers that mma.sync takes (a layout of whole rows made the compiler
 * move each fragment into place: five MOVs per mma on sm_90). A lane (g, t) = (lane / 4, lane %
 * 4) owns one 16-byte chunk of each tile: for A the heads of (g, t), (g + 8, t), (g, t + 4),
 * (g + 8, t + 4), and the rests in a second half of the buffer (BM x 8 floats on); for B the
 * heads of (k = t, column g), (t + 4, g), then their rests. The chunk's t is XOR-ed with bits 1-2
 * of g, which keeps a quarter-warp's loads on distinct banks and spreads a warp's stores of 32
 * gathered columns at one k over 8 banks instead of 2 (4-way conflicts, not 16-way). */
__device__ __forceinline__ int mma_chunk(int tile, int g, int t) {
    return tile * 32 + g * 4 + (t ^ (g >> 1 & 3));
}
/* A's element (row r, k): its head's index; the rest is BM x 8 floats on */
__device__ __forceinline__ int mma_a_slot(int r, int k) {
    return mma_chunk(r / 16, r % 8, k % 4) * 4 + r / 8 % 2 + k / 4 * 2;
}
/* B's element (k, column c), c < BN: its head's index; the rest is 2 floats on */
__device__ __forceinline__ int mma_b_slot(int c, int k) {
    return mma_chunk(c / 8, c % 8, k % 4) * 4 + k / 4;
}
/* Unsplit (the pipelined kernel, which splits as it loads the fragments), a lane's elements of B
 * make 8 bytes per 8 x 8 tile: a chunk holds two tiles side by side, (k = t, column g) and (t +
 * 4, g) of each. A's unsplit are the heads' places of mma_a_slot, in a buffer of BM x 8. */
__device__ __forceinline__ int mma_b_pair_slot(int c, int k) {
    return mma_chunk(c / 16, c % 8, k % 4) * 4 + c / 8 % 2 * 2 + k / 4;
}

/* An asynchronous copy of one float from global to shared memory (cp.async, sm_80 on), or of a
 * 0 where !in (no byte read: src-size 0; safe, a valid global address, stands in for src). The
 * copies a thread issued since its last cp_async_commit form a group; cp_async_wait<N> returns
 * when all but the newest N of its groups have landed (its own copies only: a barrier then makes
 * every thread's visible). */
__device__ __forceinline__ void cp_async4(float *dst, const float *src, bool in,
                                          const float *safe) {
#if defined(CVN_CUDA_EMU_DEVICE)
    emu::cp_async(dst, in ? src : safe, in ? 4 : 0);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned to = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(to), "l"(in ? src : safe),
                 "r"(in ? 4 : 0)
                 : "memory");
#else
    (void)dst, (void)src, (void)in, (void)safe; /* the build's GPU code is for sm_80 and later */
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(CVN_CUDA_EMU_DEVICE)
    emu::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(CVN_CUDA_EMU_DEVICE)
    emu::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

/* ---------------------------------------------------------------- one operand's tile */

/* v = the L floats at q, q aligned to L floats: one vector load where L is 2 or 4 (the emulation
 * fails the launch on a misaligned one, where a GPU would fault) */
template <int L> __device__ __forceinline__ void load_run(const float *q, float (&v)[L]) {
#if defined(CVN_CUDA_EMU_DEVICE)
    if ((L == 2 || L == 4) && !emu::aligned_load(q, sizeof(float) * L)) {
        for (int j = 0; j < L; j++) v[j] = q[j];
        return;
    }
#endif
    if constexpr (L == 4) {
        float4 t = *reinterpret_cast<const float4 *>(q);
        v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else if constexpr (L == 2) {
        float2 t = *reinterpret_cast<const float2 *>(q);
        v[0] = t.x, v[1] = t.y;
    } else {
#pragma unroll
        for (int j = 0; j < L; j++) v[j] = q[j];
    }
}

/* Fetches an operand's ROWS x GEMM_BK tile (rows of A, columns of B) into registers and stores it
 * k-major into shared memory, L elements per thread: along k, L rows at one k (kmajor: a warp's
 * lanes walk k first), or one row at L consecutive k, a warp's lanes walking the rows (a gather's
 * pixels, adjacent in memory) or, where the operand's rows are contiguous along k (k_first), the
 * GEMM_BK / L runs of a row first (so a warp reads whole sectors of a few rows). */
template <class OP, int ROWS> struct tile_loader {
    enum { L = ROWS * GEMM_BK / GEMM_THREADS, NF = OP::kmajor ? L : 1, PER_ROW = GEMM_BK / L };
    typename OP::fix fix[NF];
    kpos pos, step; /* the thread's first k */
    int r0, r1;
    bool run; /* the operand loads the thread's L elements as one run */
    float v[L];

    __device__ void init(const gemm_args &g, int grp, int f0, int k_begin) {
        OP::radix(g, r0, r1);
        run = false;
        if constexpr (OP::has_run || OP::has_row_run) run = OP::runs(g, L);
        step = kpos_at(GEMM_BK, r0, r1);
        int k, r;
        slot(0, k, r);
        for (int j = 0; j < NF; j++) fix[j] = OP::at(g, grp, f0 + r + j * (GEMM_THREADS / GEMM_BK));
        pos = kpos_at(k_begin + k, r0, r1);
    }
    /* f(j, q, in) for each of the thread's elements of the current step: at q, or nowhere (a 0)
     * where !in */
    template <class F> __device__ void each(const gemm_args &g, int k_end, F f) const {
        if constexpr (OP::has_run) {
            if (run) {
                const float *q = NULL;
                bool in = OP::where(g, fix[0], pos, k_end, q);
#pragma unroll
                for (int j = 0; j < L; j++) f(j, q + (int64_t)j * OP::plane(g), in);
                return;
            }
        }
        if constexpr (OP::has_row_run) {
            if (run) {
                const float *row = NULL;
                int col = 0;
                bool in = OP::where_row(g, fix[0], pos, k_end, row, col);
#pragma unroll
                for (int j = 0; j < L; j++) {
                    int c = col + j * g.d.sw;
                    bool ok = in && (unsigned)c < (unsigned)g.d.w;
                    f(j, ok ? row + c : row, ok);
                }
                return;
            }
        }
        kpos p = pos;
#pragma unroll
        for (int j = 0; j < L; j++) {
            const float *q = NULL;
            bool in = OP::where(g, fix[OP::kmajor ? j : 0], p, k_end, q);
            f(j, q, in);
            if (!OP::kmajor && j + 1 < L) kpos_inc(p, r0, r1);
        }
    }
    /* the elements into v: each's steps written out, with one branch for a run's loads (through
     * each, a select per element, the tap-major loops took 5 to 29 more PTX instructions per step,
     * bench/ptx_loops.py) */
    __device__ void fetch(const gemm_args &g, int k_end) {
        if constexpr (OP::has_run) {
            if (run) {
                const float *q;
                if (!OP::where(g, fix[0], pos, k_end, q))
#pragma unroll
                    for (int j = 0; j < L; j++) v[j] = 0.0f;
                else if constexpr (OP::unit_plane)
                    load_run<L>(q, v);
                else
#pragma unroll
                    for (int j = 0; j < L; j++) v[j] = q[(int64_t)j * OP::plane(g)];
                return;
            }
        }
        if constexpr (OP::has_row_run) {
            if (run) {
                const float *row;
                int col;
                if (!OP::where_row(g, fix[0], pos, k_end, row, col))
#pragma unroll
                    for (int j = 0; j < L; j++) v[j] = 0.0f;
                else
#pragma unroll
                    for (int j = 0; j < L; j++) {
                        int c = col + j * g.d.sw;
                        v[j] = (unsigned)c < (unsigned)g.d.w ? row[c] : 0.0f;
                    }
                return;
            }
        }
        kpos p = pos;
#pragma unroll
        for (int j = 0; j < L; j++) {
            const float *q;
            v[j] = OP::where(g, fix[OP::kmajor ? j : 0], p, k_end, q) ? *q : 0.0f;
            if (!OP::kmajor && j + 1 < L) kpos_inc(p, r0, r1);
        }
    }
    __device__ void advance() { kpos_add(pos, step, r0, r1); }
    /* where the thread's j-th element goes in the k-major tile: row k, column r */
    __device__ void slot(int j, int &k, int &r) const {
        int t = threadIdx.x;
        if (OP::kmajor) k = t % GEMM_BK, r = t / GEMM_BK + j * (GEMM_THREADS / GEMM_BK);
        else if (OP::k_first) k = t % PER_ROW * L + j, r = t / PER_ROW;
        else k = t / ROWS * L + j, r = t % ROWS;
    }
    __device__ void store(float (*s)[ROWS + GEMM_PAD]) const {
#pragma unroll
        for (int j = 0; j < L; j++) {
            int k, r;
            slot(j, k, r);
            s[k][r] = v[j];
        }
    }
    /* each element as its TF32 head and rest (split_tf32) where the tensor-core kernel's
     * fragments take them: A's (IS_A) at mma_a_slot, B's at mma_b_slot */
    template <bool IS_A> __device__ void store_split(float *s) const {
        float hi[L], lo[L];
        split_tf32_n<L>(v, hi, lo);
#pragma unroll
        for (int j = 0; j < L; j++) {
            int k, r;
            slot(j, k, r);
            int at = IS_A ? mma_a_slot(r, k) : mma_b_slot(r, k);
            s[at] = hi[j];
            s[at + (IS_A ? ROWS * GEMM_BK : 2)] = lo[j];
        }
    }
    /* each element unsplit, straight from global memory into shared (cp_async4: no registers,
     * and the copies of several steps in flight), where the tensor-core kernel's fragments take
     * them: A's (IS_A) at mma_a_slot, B's at mma_b_pair_slot */
    template <bool IS_A> __device__ void copy(const gemm_args &g, int k_end, float *s) const {
        each(g, k_end, [&](int j, const float *q, bool in) {
            int k, r;
            slot(j, k, r);
            cp_async4(s + (IS_A ? mma_a_slot(r, k) : mma_b_pair_slot(r, k)), q, in, g.out);
        });
    }
};

/* Row i of a thread's sub-tile: two interleaved halves of 4 (one half when 4 wide). */
__device__ __forceinline__ int sub_row(int i, int t) { return i / 4 * 64 + t * 4 + i % 4; }

/* ---------------------------------------------------------------- what both kernels share */

/* A block's place: its group, its rows and columns of C, its slice of K and the loaders of its
 * A and B tiles. */
template <int MODE, bool TA, bool TB, int BM, int BN> struct gemm_block {
    tile_loader<operand<MODE, true, TA>, BM> la;
    tile_loader<operand<MODE, false, TB>, BN> lb;
    int grp, row0, col0, k_end, steps;

    __device__ void init(const gemm_args &g) {
        grp = blockIdx.z / g.splits;
        int slice = blockIdx.z % g.splits, k_begin = slice * g.k_slice;
        row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
        k_end = min(g.k, k_begin + g.k_slice);
        steps = (k_end - k_begin + GEMM_BK - 1) / GEMM_BK;
        la.init(g, grp, row0, k_begin);
        lb.init(g, grp, col0, k_begin);
    }
    /* The K loop: GEMM_BK at a time through two shared buffers, store(b) putting the loaders'
     * registers into buffer b and multiply(b) taking its tiles; the next step's elements are
     * fetched while the current one multiplies, so one barrier per step suffices. */
    template <class Store, class Multiply>
    __device__ void loop(const gemm_args &g, Store store, Multiply multiply) {
        if (steps > 0) {
            la.fetch(g, k_end);
            lb.fetch(g, k_end);
            store(0);
        }
        __syncthreads();
        for (int s = 0; s < steps; s++) {
            int cur = s & 1;
            bool more = s + 1 < steps;
            if (more) {
                la.advance();
                lb.advance();
                la.fetch(g, k_end);
                lb.fetch(g, k_end);
            }
            multiply(cur);
            if (more) store(cur ^ 1);
            __syncthreads();
        }
    }
    /* The pipelined K loop (tensor cores): copy(b) issues the loaders' asynchronous copies of a
     * step into buffer b of STAGES, multiply(b) takes its tiles. The copies of the next STAGES -
     * 1 steps are in flight while a step multiplies; one barrier per step, which both publishes
     * the step's copies and frees the buffer that the next copies fill (the one every thread
     * multiplied the step before). */
    template <int STAGES, class Copy, class Multiply>
    __device__ void loop_async(Copy copy, Multiply multiply) {
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < steps) {
                if (s > 0) la.advance(), lb.advance();
                copy(s);
            }
            cp_async_commit(); /* empty groups too: step s is always group s */
        }
        for (int s = 0; s < steps; s++) {
            cp_async_wait<STAGES - 2>();
            __syncthreads();
            int next = s + STAGES - 1;
            if (next < steps) {
                la.advance(), lb.advance();
                copy(next % STAGES);
            }
            cp_async_commit();
            multiply(s % STAGES);
        }
    }
};

/* The forward's activation, if any */
__device__ __forceinline__ float conv_act(const gemm_args &g, float v) {
    return g.d.act_on ? act(g.d.act, g.d.alpha, v) : v;
}

/* 2x2 max pooling's pick, PyTorch's order: a later value wins where greater or NaN */
__device__ __forceinline__ float pool_pick(float best, float v) {
    return v > best || v != v ? v : best;
}

/* C's element (r, c) of group grp, r < m and c < n, to where the mode puts it (all but the
 * pooled forward) */
template <int MODE>
__device__ __forceinline__ void put_c(const gemm_args &g, int grp, int r, int c, float v) {
    if (MODE == GEMM_MATRIX) {
        float *p = g.c + (int64_t)r * g.ldc + c;
        if (g.splits > 1) atomicAdd(p, g.alpha * v);
        else *p = g.alpha * v + (g.beta == 0.0f ? 0.0f : g.beta * *p);
    } else if (MODE == GEMM_CONV_FWD) {
        int oc = grp * g.og + r, img = c / g.ohw;
        if (g.bias) v += g.bias[oc];
        v = conv_act(g, v);
        g.out[((int64_t)img * g.d.o + oc) * g.ohw + c % g.ohw] = v;
    } else if (MODE == GEMM_CONV_BWD_DATA) {
        int img = c / g.hw;
        float *p = g.out + ((int64_t)img * g.d.c + grp * g.cg + r) * g.hw + c % g.hw;
        *p = g.accumulate ? *p + v : v;
    } else if (MODE == GEMM_CONV_BWD_FILTER) {
        float *p = g.out + ((int64_t)grp * g.og + r) * g.n + c;
        if (g.splits > 1) atomicAdd(p, v);
        else *p += v;
    } else { /* Winograd's M; the filter's gradient's adds up over K slices and rounds */
        float *p = g.wg.mm + ((int64_t)grp * g.m + r) * g.n + c;
        if (g.mode != GEMM_CONV_BWD_FILTER) *p = v;
        else if (g.splits > 1) atomicAdd(p, v);
        else *p += v;
    }
}

/* The pooled forward's output for out row r and the window of columns c .. c + 3 */
__device__ __forceinline__ float *pooled_at(const gemm_args &g, int grp, int r, int c) {
    int win = c / 4, img = win / g.phw;
    return g.out + ((int64_t)img * g.d.o + grp * g.og + r) * g.phw + win % g.phw;
}

/* ---------------------------------------------------------------- the FP32 kernel */

template <int MODE, bool TA, bool TB, int BM, int BN>
__global__ void __launch_bounds__(GEMM_THREADS, 2) k_tiled_gemm(const gemm_args g) {
    enum { TM = BM / 16, TN = BN / 16 };
    __shared__ __align__(16) float as[2][GEMM_BK][BM + GEMM_PAD];
    __shared__ __align__(16) float bs[2][GEMM_BK][BN + GEMM_PAD];
    gemm_block<MODE, TA, TB, BM, BN> blk;
    blk.init(g);
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;
    blk.loop(
        g,
        [&](int b) {
            blk.la.store(as[b]);
            blk.lb.store(bs[b]);
        },
        [&](int cur) {
#pragma unroll
            for (int kk = 0; kk < GEMM_BK; kk++) {
                float ar[TM], br[TN];
#pragma unroll
                for (int h = 0; h < TM / 4; h++) {
                    float4 t = *reinterpret_cast<const float4 *>(&as[cur][kk][h * 64 + ty * 4]);
                    ar[h * 4] = t.x, ar[h * 4 + 1] = t.y, ar[h * 4 + 2] = t.z, ar[h * 4 + 3] = t.w;
                }
#pragma unroll
                for (int h = 0; h < TN / 4; h++) {
                    float4 t = *reinterpret_cast<const float4 *>(&bs[cur][kk][h * 64 + tx * 4]);
                    br[h * 4] = t.x, br[h * 4 + 1] = t.y, br[h * 4 + 2] = t.z, br[h * 4 + 3] = t.w;
                }
#pragma unroll
                for (int i = 0; i < TM; i++)
#pragma unroll
                    for (int j = 0; j < TN; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
            }
        });

    /* epilogue: C's elements to where the mode puts them */
    int grp = blk.grp;
    if (MODE == GEMM_CONV_FWD && g.d.pool) { /* a thread's 4 adjacent columns are one window */
#pragma unroll
        for (int i = 0; i < TM; i++) {
            int r = blk.row0 + sub_row(i, ty);
            if (r >= g.m) continue;
            float bias = g.bias ? g.bias[grp * g.og + r] : 0.0f;
#pragma unroll
            for (int h = 0; h < TN / 4; h++) {
                int c = blk.col0 + h * 64 + tx * 4;
                if (c >= g.n) continue;
                float best = conv_act(g, acc[i][h * 4] + bias);
#pragma unroll
                for (int u = 1; u < 4; u++)
                    best = pool_pick(best, conv_act(g, acc[i][h * 4 + u] + bias));
                *pooled_at(g, grp, r, c) = best;
            }
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < TM; i++) {
        int r = blk.row0 + sub_row(i, ty);
        if (r >= g.m) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            int c = blk.col0 + sub_row(j, tx);
            if (c < g.n) put_c<MODE>(g, grp, r, c, acc[i][j]);
        }
    }
}

/* ---------------------------------------------------------------- the tensor-core kernel
 * The same tiles and K loop, multiplied on tensor cores in three TF32 products per step
 * ("3xTF32"): each element x of A and B is split into a TF32 head h(x) and the TF32 rounding of
 * its rest, l(x) = x - h(x), as it is stored into shared memory, and a b is taken as h(a) h(b) +
 * l(a) h(b) + h(a) l(b) in FP32 accumulators; the dropped l(a) l(b) and l's rounding leave an
 * error of about 2^-21 relative per product, FP32's order, not TF32's 2^-11. A warp computes a
 * (BM / 2) x (BN / 4) piece of the block's tile in 16 x 8 tiles of mma.m16n8k8. */

/* d += a b for one 16 x 8 x 8 tile, the warp's 32 lanes together, each holding its fragments
 * in PTX's layout for mma.m16n8k8 with .tf32 (g = lane / 4, t = lane % 4): a[0..3] = A at (g, t),
 * (g + 8, t), (g, t + 4), (g + 8, t + 4); b[0..1] = B at (t, g), (t + 4, g); d[0..3] = C at (g,
 * 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1). */
__device__ __forceinline__ void mma_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
#if defined(CVN_CUDA_EMU_DEVICE)
    emu::mma_m16n8k8_tf32(1, &d, &a, &b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    (void)d, (void)a, (void)b; /* the build's GPU code is for sm_80 and later */
#endif
}

/* d[j] += a b[j] for the NI tiles of one row of a warp's piece, a and b given as TF32 heads and
 * rests: three products each, the small terms first, term by term across the row's tiles, so that
 * NI independent products lie between two into the same accumulator (back to back, each waited
 * for the last). */
template <int NI>
__device__ __forceinline__ void mma3_row(float (&d)[NI][4], const unsigned (&ahi)[4],
                                         const unsigned (&alo)[4], const unsigned (&bhi)[NI][2],
                                         const unsigned (&blo)[NI][2]) {
#if defined(CVN_CUDA_EMU_DEVICE) /* one warp-wide stop for the row, not one per product */
    float *dp[3 * NI];
    const unsigned *ap[3 * NI], *bp[3 * NI];
    for (int u = 0; u < 3; u++)
        for (int j = 0; j < NI; j++) {
            dp[u * NI + j] = d[j];
            ap[u * NI + j] = u == 0 ? alo : ahi;
            bp[u * NI + j] = u == 1 ? blo[j] : bhi[j];
        }
    emu::mma_m16n8k8_tf32(3 * NI, dp, ap, bp);
#else
#pragma unroll
    for (int j = 0; j < NI; j++) mma_tf32(d[j], alo, bhi[j]);
#pragma unroll
    for (int j = 0; j < NI; j++) mma_tf32(d[j], ahi, blo[j]);
#pragma unroll
    for (int j = 0; j < NI; j++) mma_tf32(d[j], ahi, bhi[j]);
#endif
}

/* The pipelined tensor-core kernel's stages: 4 buffers of unsplit tiles take the shared memory
 * of 2 of split ones */
#define MMA_STAGES 4

/* Tensor cores. ASYNC false: the loaders fetch a step ahead into registers and store the split
 * tiles (gemm_block::loop). ASYNC true: cp.async copies the unsplit tiles MMA_STAGES - 1 steps
 * ahead (gemm_block::loop_async), and each warp splits its fragments as it loads them: no
 * registers held for the next step and three steps for a gather to land, against the split of
 * each element by every warp that reads it (tuning times both). The same products in the same
 * order: both give the same bits. */
template <int MODE, bool TA, bool TB, int BM, int BN, bool ASYNC>
__global__ void __launch_bounds__(GEMM_THREADS, 2) k_mma_gemm(const gemm_args g) {
    enum { WM = BM / 2, WN = BN / 4, MI = WM / 16, NI = WN / 8 };
    /* 2 buffers of split tiles (at mma_a_slot and mma_b_slot) or MMA_STAGES of unsplit ones (at
     * mma_a_slot and mma_b_pair_slot) */
    enum { A_BUF = BM * GEMM_BK * (ASYNC ? 1 : 2), B_BUF = BN * GEMM_BK * (ASYNC ? 1 : 2) };
    enum { BUFS = ASYNC ? MMA_STAGES : 2 };
    __shared__ __align__(16) float as[BUFS * A_BUF], bs[BUFS * B_BUF];
    gemm_block<MODE, TA, TB, BM, BN> blk;
    blk.init(g);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
    int wm0 = warp / 4 * WM, wn0 = warp % 4 * WN; /* the warp's piece: 2 x 4 warps */
    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
    /* the lane's chunk of each of the warp's tiles (mma_chunk) */
    int own = mma_chunk(0, gq, tq) * 4;
    auto multiply = [&](int cur) {
        const float *a0 = &as[cur * A_BUF + wm0 / 16 * 32 * 4 + own];
        unsigned bhi[NI][2], blo[NI][2];
        if constexpr (ASYNC) { /* B's chunks hold two tiles each, unsplit */
            const float *b0 = &bs[cur * B_BUF + wn0 / 16 * 32 * 4 + own];
#pragma unroll
            for (int j = 0; j < NI; j += 2) {
                float4 v = *reinterpret_cast<const float4 *>(b0 + j / 2 * 32 * 4);
                float x[4] = {v.x, v.y, v.z, v.w}, hi[4], lo[4];
                split_tf32_n<4>(x, hi, lo);
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    bhi[j + u / 2][u % 2] = __float_as_uint(hi[u]);
                    blo[j + u / 2][u % 2] = __float_as_uint(lo[u]);
                }
            }
        } else { /* B's heads and rests in one chunk, A's rests BM x 8 floats on */
            const float *b0 = &bs[cur * B_BUF + wn0 / 8 * 32 * 4 + own];
#pragma unroll
            for (int j = 0; j < NI; j++) {
                float4 v = *reinterpret_cast<const float4 *>(b0 + j * 32 * 4);
                bhi[j][0] = __float_as_uint(v.x), bhi[j][1] = __float_as_uint(v.y);
                blo[j][0] = __float_as_uint(v.z), blo[j][1] = __float_as_uint(v.w);
            }
        }
#pragma unroll
        for (int i = 0; i < MI; i++) {
            float hi[4], lo[4];
            float4 h = *reinterpret_cast<const float4 *>(a0 + i * 32 * 4);
            if constexpr (ASYNC) {
                float x[4] = {h.x, h.y, h.z, h.w};
                split_tf32_n<4>(x, hi, lo);
            } else {
                float4 l = *reinterpret_cast<const float4 *>(a0 + i * 32 * 4 + BM * GEMM_BK);
                hi[0] = h.x, hi[1] = h.y, hi[2] = h.z, hi[3] = h.w;
                lo[0] = l.x, lo[1] = l.y, lo[2] = l.z, lo[3] = l.w;
            }
            unsigned ahi[4], alo[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                ahi[u] = __float_as_uint(hi[u]);
                alo[u] = __float_as_uint(lo[u]);
            }
            mma3_row<NI>(acc[i], ahi, alo, bhi, blo);
        }
    };
    if constexpr (ASYNC)
        blk.template loop_async<MMA_STAGES>(
            [&](int b) {
                blk.la.template copy<true>(g, blk.k_end, &as[b * A_BUF]);
                blk.lb.template copy<false>(g, blk.k_end, &bs[b * B_BUF]);
            },
            multiply);
    else
        blk.loop(
            g,
            [&](int b) {
                blk.la.template store_split<true>(&as[b * A_BUF]);
                blk.lb.template store_split<false>(&bs[b * B_BUF]);
            },
            multiply);

    /* epilogue: lane (g, t) holds rows g and g + 8 of each 16 x 8 tile, columns 2t and 2t + 1 */
    int grp = blk.grp;
    bool pool = MODE == GEMM_CONV_FWD && g.d.pool;
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = blk.row0 + wm0 + i * 16 + gq + h * 8;
            bool row_in = r < g.m;
            float bias = pool && row_in && g.bias ? g.bias[grp * g.og + r] : 0.0f;
#pragma unroll
            for (int j = 0; j < NI; j++) {
                int c = blk.col0 + wn0 + j * 8 + tq * 2;
                float v0 = acc[i][j][h * 2], v1 = acc[i][j][h * 2 + 1];
                if (pool) { /* a window's 4 columns: this lane's 2 and its odd neighbour's */
                    float best = pool_pick(conv_act(g, v0 + bias), conv_act(g, v1 + bias));
                    float next = __shfl_down_sync(0xffffffffu, best, 1, 2);
                    if (tq % 2 == 0 && row_in && c < g.n)
                        *pooled_at(g, grp, r, c) = pool_pick(best, next);
                } else if (row_in) {
                    if (c < g.n) put_c<MODE>(g, grp, r, c, v0);
                    if (c + 1 < g.n) put_c<MODE>(g, grp, r, c + 1, v1);
                }
            }
        }
}

/* The weights, w[o][c / groups][kh x kw], into the tap-major order of A (args.wt): forward
 * [o][kh x kw][c / groups], a row per out channel; backward data [group][c / groups][kh x kw][o /
 * groups], a row per in channel. */
__global__ void __launch_bounds__(GEMM_THREADS) k_conv_weights_taps(const gemm_args g) {
    int64_t total = (int64_t)g.d.o * g.cg * g.khw;
    for (int64_t i = (int64_t)blockIdx.x * GEMM_THREADS + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * GEMM_THREADS) {
        int tap = (int)(i % g.khw), c = (int)(i / g.khw % g.cg), o = (int)(i / g.khw / g.cg);
        int64_t to;
        if (g.mode == GEMM_CONV_FWD) {
            to = ((int64_t)o * g.khw + tap) * g.cg + c;
        } else {
            int grp = o / g.og;
            to = (((int64_t)grp * g.cg + c) * g.khw + tap) * g.og + o % g.og;
        }
        g.wt[to] = g.w[i];
    }
}

/* C = beta C ahead of a split product, whose slices then add alpha op(A) op(B) into it; beta 0
 * writes zeros, as the unsplit epilogue does, so that NaN in C's old contents does not survive. */
__global__ void __launch_bounds__(GEMM_THREADS) k_scale_c(const gemm_args g) {
    int c = (int)(blockIdx.x * GEMM_THREADS + threadIdx.x);
    if (c >= g.n) return;
    for (int r = (int)blockIdx.y; r < g.m; r += (int)gridDim.y) {
        float *p = g.c + (int64_t)r * g.ldc + c;
        *p = g.beta == 0.0f ? 0.0f : g.beta * *p;
    }
}

/* ---------------------------------------------------------------- host-side plans */

typedef struct {
    gemm_args args;
    int tile_m, tile_n; /* a block's tile of C: 64 x 64, 128 x 128, or 64 x 128 */
    bool mma;           /* on tensor cores (k_mma_gemm; convolutions only), else k_tiled_gemm */
    bool async;         /* with mma: the pipelined tensor-core kernel (cp.async) */
} gemm_plan;

#include "cuda/winograd.cuh" /* its kernels and plans use gemm_args, gemm_plan and the epilogue's parts */

/* Tiles of 64 or 128 (a 128 tile over at most 64 rows is 64 x 128: its other half would be
 * padding); K in slices of at most ceil(k / splits), rounded up to GEMM_BK (so the count may come
 * out smaller than asked). */
static inline void set_tiles(gemm_plan *p, int tile, int splits) {
    gemm_args *g = &p->args;
    p->tile_n = tile;
    p->tile_m = tile == 128 && g->m <= 64 ? 64 : tile;
    if (splits < 1) splits = 1;
    g->k_slice = ((g->k + splits - 1) / splits + GEMM_BK - 1) / GEMM_BK * GEMM_BK;
    if (g->k_slice < GEMM_BK) g->k_slice = GEMM_BK;
    g->splits = (g->k + g->k_slice - 1) / g->k_slice;
    if (g->splits < 1) g->splits = 1;
}

/* K slices for a tile size: where the mode may split (it accumulates atomically) and the output
 * has few tiles and K is long, enough that about two blocks per SM share the work, each slice at
 * least 256 deep. */
static inline int splits_for(const gemm_args *g, int tile, bool may_split) {
    int64_t tiles =
        (int64_t)((g->m + tile - 1) / tile) * ((g->n + tile - 1) / tile) * g->groups;
    if (!may_split || tiles >= 132 || g->k < 512) return 1;
    int64_t splits = 264 / tiles;
    if (splits > g->k / 256) splits = g->k / 256;
    return splits < 1 ? 1 : (int)splits;
}

/* Tile size and K slices when nothing was timed: 128 x 128 tiles (64 x 128 over at most 64 rows)
 * when there are enough of them to fill the GPU (132 SMs on an H100), else 64 x 64. */
static inline void plan_shape(gemm_plan *p, bool may_split) {
    const gemm_args *g = &p->args;
    int64_t t128 = (int64_t)((g->m + 127) / 128) * ((g->n + 127) / 128) * g->groups;
    int tile = (g->m >= 96 || g->m <= 64) && g->n >= 96 && t128 >= 132 ? 128 : 64;
    set_tiles(p, tile, splits_for(g, tile, may_split));
}

/* row-major C = alpha op(A) op(B) + beta C */
static inline gemm_plan plan_matrix(bool ta, bool tb, int m, int n, int k, float alpha,
                                    const float *a, int lda, const float *b, int ldb, float beta,
                                    float *c, int ldc) {
    gemm_plan p;
    memset(&p, 0, sizeof p);
    gemm_args *g = &p.args;
    g->mode = GEMM_MATRIX;
    g->m = m, g->n = n, g->k = k, g->groups = 1;
    g->ta = ta, g->tb = tb, g->a = a, g->b = b, g->c = c;
    g->lda = lda, g->ldb = ldb, g->ldc = ldc, g->alpha = alpha, g->beta = beta;
    plan_shape(&p, true); /* slices add into C (scaled by beta first where beta != 1) */
    return p;
}

/* False when a size would pass the digits' range (the caller then takes another path). */
static inline bool plan_conv(gemm_plan *p, int mode, const cvn_conv_desc *d, float *out,
                             const float *x, const float *w, const float *dy, const float *bias,
                             bool accumulate) {
    memset(p, 0, sizeof *p);
    gemm_args *g = &p->args;
    g->mode = mode;
    g->d = *d;
    g->groups = d->groups;
    g->cg = d->c / d->groups, g->og = d->o / d->groups;
    g->hw = d->h * d->w, g->ohw = d->oh * d->ow, g->khw = d->kh * d->kw;
    g->x = x, g->w = w, g->dy = dy, g->bias = bias, g->out = out, g->accumulate = accumulate;
    if (d->pool && (mode != GEMM_CONV_FWD || d->pool != 2)) return false; /* 2x2 pooling only */
    g->pw = d->ow / 2, g->phw = d->oh / 2 * g->pw;
    int64_t taps = (int64_t)g->cg * g->khw;
    int64_t opix = (int64_t)d->n * (d->pool ? 4 * g->phw : g->ohw);
    int64_t ipix = (int64_t)d->n * g->hw, otaps = (int64_t)g->og * g->khw;
    if (taps >= KPOS_BIG || opix >= KPOS_BIG || ipix >= KPOS_BIG || otaps >= KPOS_BIG ||
        (int64_t)d->n * d->c * g->hw >= ((int64_t)1 << 31))
        return false;
    int64_t wsize = (int64_t)g->og * taps; /* a group's weights */
    if (mode == GEMM_CONV_FWD) { /* A: the weights, a row per out channel */
        g->m = g->og, g->n = (int)opix, g->k = (int)taps;
        g->ra.p = w, g->ra.group = wsize, g->ra.row = taps, g->ra.r0 = KPOS_BIG, g->ra.outer = 0;
    } else if (mode == GEMM_CONV_BWD_DATA) { /* A: the weights transposed, k = (o, kh * kw) */
        g->m = g->cg, g->n = (int)ipix, g->k = (int)otaps;
        g->ra.p = w, g->ra.group = wsize, g->ra.row = g->khw, g->ra.r0 = g->khw;
        g->ra.outer = taps;
    } else { /* A: dy, a row per out channel, k = (image, output pixel) */
        g->m = g->og, g->n = (int)taps, g->k = (int)opix;
        g->ra.p = dy, g->ra.group = (int64_t)g->og * g->ohw, g->ra.row = g->ohw;
        g->ra.r0 = g->ohw, g->ra.outer = (int64_t)d->o * g->ohw;
    }
    g->ra.rows = g->m;
    plan_shape(p, mode == GEMM_CONV_BWD_FILTER);
    return true;
}

/* Whether a plan may run K tap-major: forward and backward data with a window of more than one
 * tap (one tap is the same order) and room for the permuted weights. */
static inline bool taps_possible(const gemm_plan &p) {
    const gemm_args &g = p.args;
    return (g.mode == GEMM_CONV_FWD || g.mode == GEMM_CONV_BWD_DATA) && g.khw > 1 && g.wt;
}

/* The plan with K tap-major: A becomes the permuted weights in args.wt, a plain matrix. */
static inline void set_taps(gemm_plan *p) {
    gemm_args *g = &p->args;
    int64_t otaps = (int64_t)g->og * g->khw;
    g->taps = true;
    g->ra.p = g->wt, g->ra.r0 = KPOS_BIG, g->ra.outer = 0;
    if (g->mode == GEMM_CONV_FWD) { /* a row per out channel: (kh, kw, channel) */
        g->ra.row = g->k, g->ra.group = (int64_t)g->og * g->k;
    } else { /* a row per in channel: (kh, kw, out channel) */
        g->ra.row = otaps, g->ra.group = (int64_t)g->cg * otaps;
    }
}

/* The variants of a convolution plan worth timing: each tile size with its own number of K
 * slices, and unsplit where that is more than one (weight gradients), or in both orders of K
 * where taps_possible (forward, backward data); where wino_possible and args.wg.room holds it,
 * F(m x m, 3 x 3) for m = 2 and 4 up to winograd (0: none; wino_only: F(winograd x winograd)
 * alone, where it can run), all images at once and, where args.wg.chunk_floats asks for fewer,
 * in rounds (wino_chunk), with each tile size (and its K slices for the filter's gradient);
 * each of those on FP32 units and, unless tensor_cores is false, on tensor cores with the
 * registers a step ahead and then pipelined (async). The plan as made comes first. Returns how
 * many (at most GEMM_CANDIDATES) went to out. */
#define GEMM_CANDIDATES 36
static inline int plan_candidates(const gemm_plan &planned, gemm_plan out[GEMM_CANDIDATES],
                                  bool tensor_cores = true, int winograd = 4,
                                  bool wino_only = false) {
    bool may_split = planned.args.mode == GEMM_CONV_BWD_FILTER;
    const gemm_args &g = planned.args;
    bool room = g.wg.room && wino_possible(g);
    if (wino_only && !(room && winograd &&
                       g.wg.room_floats >= wino_floats(g, winograd, wino_chunk(g, winograd))))
        wino_only = false; /* no F(winograd): the implicit GEMM after all */
    int n = 0;
    for (int tile : {planned.tile_n, 192 - planned.tile_n}) { /* 64 then 128, or 128 then 64 */
        if (wino_only) break;
        int splits = splits_for(&planned.args, tile, may_split);
        out[n] = planned;
        set_tiles(&out[n++], tile, splits);
        if (splits > 1) { /* only where may_split: never together with taps */
            out[n] = planned;
            set_tiles(&out[n++], tile, 1);
        } else if (taps_possible(planned)) {
            out[n] = out[n - 1];
            set_taps(&out[n++]);
        }
    }
    for (int m : {2, 4})
        for (int rounds = 0; rounds < 2; rounds++) { /* all images at once, then in rounds */
            int images = rounds ? wino_chunk(g, m) : g.d.n;
            if (!room || m > winograd || (wino_only && m != winograd) ||
                (rounds && images == g.d.n) || g.wg.room_floats < wino_floats(g, m, images))
                continue;
            for (int tile : {64, 128}) {
                out[n] = planned;
                set_wino(&out[n], m, images);
                set_tiles(&out[n], tile, splits_for(&out[n].args, tile, may_split));
                n++;
            }
        }
    for (int async = 0, fp32 = n; tensor_cores && async < 2; async++)
        for (int i = 0; i < fp32; i++) {
            out[n] = out[i];
            out[n].mma = true;
            out[n++].async = async;
        }
    return n;
}

/* Floats a convolution plan writes: the size its tuning scratch needs. */
static inline int64_t plan_out_floats(const gemm_plan &p) {
    const gemm_args &g = p.args;
    const cvn_conv_desc &d = g.d;
    if (g.mode == GEMM_CONV_FWD) return (int64_t)d.n * d.o * (d.pool ? g.phw : g.ohw);
    if (g.mode == GEMM_CONV_BWD_DATA) return (int64_t)d.n * d.c * g.hw;
    return (int64_t)d.o * g.cg * g.khw;
}

/* The scratch a variant needs beyond its output: Winograd's room (U, V and M), or none */
static inline int64_t plan_room_floats(const gemm_plan &p) {
    return p.args.wg.m ? wino_floats(p.args, p.args.wg.m, p.args.wg.images) : 0;
}

/* What tune_plan timed: the variants, their times (in time's unit; the backend's: ms) and which
 * it kept */
struct tune_record {
    gemm_plan cands[GEMM_CANDIDATES];
    double times[GEMM_CANDIDATES];
    int n, kept;
};

/* The variant of a convolution plan to keep, by time(variant): of those within
 * TUNE_ROOM_SLACK of the fastest, the one that needs least room (lean_pick); all of them in
 * record, filled in place, where it is not NULL. Each variant writes into scratch (as large as
 * the plan's output, whose contents it may leave as garbage) instead of the output, which stays
 * untouched. The GPU backend times on the stream with events, once per shape; the tests time on
 * the CPU emulator. */
template <class Time>
static gemm_plan tune_plan(const gemm_plan &planned, float *scratch, Time time,
                           bool tensor_cores = true, int winograd = 4, bool wino_only = false,
                           tune_record *record = NULL) {
    tune_record own, &r = record ? *record : own;
    r.n = plan_candidates(planned, r.cands, tensor_cores, winograd, wino_only);
    for (int i = 0; i < r.n; i++) {
        gemm_plan trial = r.cands[i];
        trial.args.out = scratch;
        r.times[i] = time(trial);
    }
    r.kept = lean_pick(
        r.n, [&](int i) { return r.times[i]; },
        [&](int i) { return plan_room_floats(r.cands[i]); });
    return r.cands[r.kept];
}

/* Runs a plan through launch(kernel, grid, args), which launches kernel on a GPU (backend_cuda.cu)
 * or emulates it (the tests). */
template <int MODE, bool TA, bool TB, class Launch>
static void run_tiles(const gemm_plan &p, Launch launch) {
    const gemm_args &g = p.args;
    int bm = p.tile_m, bn = p.tile_n;
    dim3 grid((g.n + bn - 1) / bn, (g.m + bm - 1) / bm, g.groups * g.splits);
    if constexpr (MODE != GEMM_MATRIX) { /* convolutions only: no matrix plan takes tensor cores */
        if (p.mma && p.async) {
            if (bn == 64) launch(k_mma_gemm<MODE, TA, TB, 64, 64, true>, grid, g);
            else if (bm == 64) launch(k_mma_gemm<MODE, TA, TB, 64, 128, true>, grid, g);
            else launch(k_mma_gemm<MODE, TA, TB, 128, 128, true>, grid, g);
            return;
        }
        if (p.mma) {
            if (bn == 64) launch(k_mma_gemm<MODE, TA, TB, 64, 64, false>, grid, g);
            else if (bm == 64) launch(k_mma_gemm<MODE, TA, TB, 64, 128, false>, grid, g);
            else launch(k_mma_gemm<MODE, TA, TB, 128, 128, false>, grid, g);
            return;
        }
    }
    if (bn == 64) launch(k_tiled_gemm<MODE, TA, TB, 64, 64>, grid, g);
    else if (bm == 64) launch(k_tiled_gemm<MODE, TA, TB, 64, 128>, grid, g);
    else launch(k_tiled_gemm<MODE, TA, TB, 128, 128>, grid, g);
}

/* Winograd: the filter and input transforms, the batched product and the output transform; for
 * the filter's gradient M zeroed, the input and dy transforms and the product adding into M, then
 * M transformed into dw */
static inline dim3 wino_grid(int64_t items) {
    int64_t blocks = (items + GEMM_THREADS - 1) / GEMM_THREADS;
    return dim3((unsigned)(blocks < 8192 ? blocks : 8192));
}
template <int M, class Launch> static void run_wino(const gemm_plan &p, Launch launch) {
    const gemm_args &g = p.args;
    bool grad = g.mode == GEMM_CONV_BWD_FILTER;
    if (grad) { /* M = 0, then every round adds into it */
        gemm_args z = g;
        z.c = g.wg.mm, z.m = (M + 2) * (M + 2) * g.wg.co, z.n = z.ldc = g.wg.ci, z.beta = 0.0f;
        launch(k_scale_c, dim3((z.n + GEMM_THREADS - 1) / GEMM_THREADS, z.m < 65535 ? z.m : 65535), z);
    } else {
        launch(k_wino_filter<M>, wino_grid((int64_t)g.wg.co * g.wg.ci), g);
    }
    int64_t in_image = (int64_t)g.wg.ci * g.wg.ih * g.wg.iw;
    int64_t out_image = (int64_t)g.wg.co * (g.d.pool && !g.wg.flip ? g.phw : g.wg.oh * g.wg.ow);
    for (int i0 = 0; i0 < g.d.n; i0 += g.wg.images) { /* a round of images through V and M */
        gemm_plan r = p;
        int images = g.d.n - i0 < g.wg.images ? g.d.n - i0 : g.wg.images;
        int tiles = images * g.wg.th * g.wg.tw;
        r.args.wg.in = g.wg.in + i0 * in_image;
        if (grad) { /* dy's tiles as U, K the round's tiles */
            r.args.k = tiles, r.args.dy = g.dy + i0 * out_image;
            wino_rows(&r.args, tiles);
            launch(k_wino_input<M>, wino_grid((int64_t)tiles * g.wg.ci), r.args);
            launch(k_wino_dy<M>, wino_grid((int64_t)tiles * g.wg.co), r.args);
            run_tiles<GEMM_WINOGRAD, false, true>(r, launch);
            continue;
        }
        r.args.n = tiles, r.args.out = g.out + i0 * out_image;
        launch(k_wino_input<M>, wino_grid((int64_t)tiles * g.wg.ci), r.args);
        run_tiles<GEMM_WINOGRAD, false, false>(r, launch);
        launch(k_wino_output<M>, wino_grid((int64_t)tiles * g.wg.co), r.args);
    }
    if (grad) launch(k_wino_filter_grad<M>, wino_grid((int64_t)g.wg.co * g.wg.ci), g);
}

template <class Launch> static void run_plan(const gemm_plan &p, Launch launch) {
    const gemm_args &g = p.args;
    if (g.m <= 0 || g.n <= 0) return;
    switch (g.mode) {
    case GEMM_MATRIX:
        if (g.splits > 1 && g.beta != 1.0f) {
            dim3 rows((g.n + GEMM_THREADS - 1) / GEMM_THREADS, g.m < 65535 ? g.m : 65535);
            launch(k_scale_c, rows, g);
        }
        if (g.ta && g.tb) run_tiles<GEMM_MATRIX, true, true>(p, launch);
        else if (g.ta) run_tiles<GEMM_MATRIX, true, false>(p, launch);
        else if (g.tb) run_tiles<GEMM_MATRIX, false, true>(p, launch);
        else run_tiles<GEMM_MATRIX, false, false>(p, launch);
        break;
    case GEMM_CONV_FWD:
    case GEMM_CONV_BWD_DATA:
    case GEMM_CONV_BWD_FILTER:
        if (g.wg.m == 2) {
            run_wino<2>(p, launch);
        } else if (g.wg.m == 4) {
            run_wino<4>(p, launch);
        } else if (g.taps) { /* the weights permuted first, on the same stream */
            int64_t blocks = ((int64_t)g.d.o * g.cg * g.khw + GEMM_THREADS - 1) / GEMM_THREADS;
            launch(k_conv_weights_taps, dim3((unsigned)(blocks < 4096 ? blocks : 4096)), g);
            if (g.mode == GEMM_CONV_FWD) run_tiles<GEMM_CONV_FWD, false, true>(p, launch);
            else run_tiles<GEMM_CONV_BWD_DATA, false, true>(p, launch);
        } else if (g.mode == GEMM_CONV_FWD) {
            run_tiles<GEMM_CONV_FWD, false, false>(p, launch);
        } else if (g.mode == GEMM_CONV_BWD_DATA) {
            run_tiles<GEMM_CONV_BWD_DATA, false, false>(p, launch);
        } else {
            run_tiles<GEMM_CONV_BWD_FILTER, false, false>(p, launch);
        }
        break;
    }
}

#endif
