/* Winograd's minimal filtering for 3 x 3 convolutions of stride 1 (Lavin and Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016): an m x m tile of outputs from an
 * (m + 2) x (m + 2) tile of inputs in (m + 2)^2 multiplications instead of 9 m^2,
 *   Y = A^T [(G g G^T) . (B^T d B)] A,
 * F(2x2, 3x3) (16 for 36: 2.25 times fewer) and F(4x4, 3x3) (36 for 144: 4 times fewer). Over
 * channels the elementwise products become (m + 2)^2 independent matrix products, one per point
 * xi of the tile:
 *   U[xi] (co x ci) = the weights transformed,  V[xi] (ci x P) = the input tiles transformed,
 *   M[xi] (co x P) = U[xi] V[xi],  y = each tile of M transformed back,
 * P being the number of output tiles (images x tile rows x tile columns). The products run on our
 * tiled GEMM (tiled_gemm.cuh, GEMM_WINOGRAD: blockIdx.z = xi), so FP32 units or 3xTF32 tensor
 * cores as for the implicit GEMM; the three transforms are the kernels below, one thread per
 * tile and channel. U, V and M live in room the caller gives (args.wg.room), which tuning only
 * offers this algorithm where it suffices (wino_floats); the input transform, the product and the
 * output transform may go through the images in rounds (args.wg.images at a time, run_wino), so
 * that a round's V and M fit in the second-level cache (wino_chunk).
 *
 * The backward data product of a stride-1 convolution is itself one: dx is dy convolved with the
 * weights turned by 180 degrees and their channels swapped, with padding 2 - p (flip: the filter
 * transform reads w[o][c] turned into U[xi][c][o]).
 *
 * The filter's gradient is the same algorithm's adjoint: as y's tile is linear in g, the gradient
 * of g by one tile is G^T [(A dy A^T) . (B^T d B)] G, d the forward's input tile and dy the
 * tile's m x m output gradient (F(3x3, m x m) in Lavin and Gray's terms). Summed over tiles that
 * is again (m + 2)^2 products, now with the tiles as K:
 *   U[xi] (co x P) = dy's tiles transformed (k_wino_dy),  V[xi] (ci x P) as in the forward,
 *   M[xi] (co x ci) = U[xi] V[xi]^T, accumulated over rounds,  dw += each 3 x 3 of M transformed
 * back (k_wino_filter_grad); the product's K slices add atomically, as the implicit GEMM's do.
 * There A's transforms do not cancel exactly (F(3x3, 2x2) too): a NaN in x or dy reaches every tap
 * of its channels' filters, one row or column more than the direct sum may.
 *
 * Accuracy: the transforms add and scale (F(2x2): by halves, exact; F(4x4): by up to 8 and 1/24,
 * rounded), so the error grows with m: against double loops (test_cuda_emu), F(2x2)'s is no larger
 * than the implicit GEMM's, F(4x4)'s four to eight times larger (test_cuda_emu allows it 4e-5 of
 * the largest output instead of 1e-5). A NaN input reaches exactly the outputs whose window holds
 * it with F(2x2) (wino_sandwich skips zero coefficients), part of its 4 x 4 tile of outputs with
 * F(4x4); an infinite one may come out NaN (inf - inf). Included by tiled_gemm.cuh after gemm_args
 * and gemm_plan. */
#ifndef CVN_CUDA_WINOGRAD_CUH
#define CVN_CUDA_WINOGRAD_CUH

/* The transforms of F(m x m, 3 x 3), row-major: B^T (a x a), G (a x 3), A^T (m x a), a = m + 2 */
template <int M> struct wino_tf;
template <> struct wino_tf<2> {
    static __device__ __forceinline__ float bt(int i, int j) {
        const float t[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
        return t[i][j];
    }
    static __device__ __forceinline__ float g(int i, int j) {
        const float t[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
        return t[i][j];
    }
    static __device__ __forceinline__ float at(int i, int j) {
        const float t[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
        return t[i][j];
    }
};
template <> struct wino_tf<4> {
    static __device__ __forceinline__ float bt(int i, int j) {
        const float t[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                               {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
        return t[i][j];
    }
    static __device__ __forceinline__ float g(int i, int j) {
        const float t[6][3] = {{1.0f / 4, 0, 0},
                               {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                               {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                               {1.0f / 24, 1.0f / 12, 1.0f / 6},
                               {1.0f / 24, -1.0f / 12, 1.0f / 6},
                               {0, 0, 1}};
        return t[i][j];
    }
    static __device__ __forceinline__ float at(int i, int j) {
        const float t[4][6] = {
            {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
        return t[i][j];
    }
};

/* out = T x T^T for T (R x K) given entry by entry (t(i, j): the constants above, so the
 * products fold): its zeros are skipped rather than multiplied, so that a NaN or infinite input
 * reaches only the outputs whose window holds it, as in the direct convolution */
template <int R, int K, class T>
__device__ __forceinline__ void wino_sandwich(float (&out)[R][R], const float (&x)[K][K], T t) {
    float tx[R][K];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int s = 0; s < K; s++) {
            float v = 0.0f;
#pragma unroll
            for (int q = 0; q < K; q++)
                if (t(r, q) != 0.0f) v += t(r, q) * x[q][s];
            tx[r][s] = v;
        }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int s = 0; s < R; s++) {
            float v = 0.0f;
#pragma unroll
            for (int q = 0; q < K; q++)
                if (t(s, q) != 0.0f) v += tx[r][q] * t(s, q);
            out[r][s] = v;
        }
}

/* An a x a tile's points from or to planes stride apart (point xi = r a + s at p[xi stride]) */
template <int A>
__device__ __forceinline__ void wino_load(float (&x)[A][A], const float *p, int64_t stride) {
#pragma unroll
    for (int r = 0; r < A; r++)
#pragma unroll
        for (int s = 0; s < A; s++) x[r][s] = p[(r * A + s) * stride];
}
template <int A>
__device__ __forceinline__ void wino_store(float *p, int64_t stride, const float (&x)[A][A]) {
#pragma unroll
    for (int r = 0; r < A; r++)
#pragma unroll
        for (int s = 0; s < A; s++) p[(r * A + s) * stride] = x[r][s];
}

/* The tiles of a round (P): the product's columns, or its K for the filter's gradient */
__host__ __device__ __forceinline__ int wino_round_tiles(const gemm_args &g) {
    return g.mode == GEMM_CONV_BWD_FILTER ? g.k : g.n;
}

/* The n x n pixels of an h x w plane from (y0, x0) on, 0 outside it */
template <int N>
__device__ __forceinline__ void wino_gather(float (&d)[N][N], const float *plane, int y0, int x0,
                                            int h, int w) {
#pragma unroll
    for (int r = 0; r < N; r++)
#pragma unroll
        for (int s = 0; s < N; s++) {
            int y = y0 + r, x = x0 + s;
            d[r][s] = (unsigned)y < (unsigned)h && (unsigned)x < (unsigned)w
                          ? plane[(int64_t)y * w + x]
                          : 0.0f;
        }
}

/* Item i of a transform over channels x tiles (tiles fastest): its channel, image and the tile's
 * first output row and column */
typedef struct {
    int ch, img, y0, x0;
} wino_item;
template <int M> __device__ __forceinline__ wino_item wino_item_at(const gemm_args &g, int64_t i) {
    int64_t tiles = wino_round_tiles(g), p = i % tiles;
    int thw = g.wg.th * g.wg.tw, t = (int)(p % thw);
    return {(int)(i / tiles), (int)(p / thw), t / g.wg.tw * M, t % g.wg.tw * M};
}

/* Grid-stride loop over n items with the transforms' blocks of GEMM_THREADS */
#define WINO_EACH(i, n)                                                                          \
    for (int64_t i = (int64_t)blockIdx.x * GEMM_THREADS + threadIdx.x; i < (n);                   \
         i += (int64_t)gridDim.x * GEMM_THREADS)

/* U[xi][o][c] = (G g G^T)[xi] for each pair of the product's out channel o < co and in channel
 * c < ci: g = w[o][c] (forward), or w[c][o] turned by 180 degrees (flip: backward data). */
template <int M> __global__ void __launch_bounds__(GEMM_THREADS) k_wino_filter(const gemm_args g) {
    enum { A = M + 2 };
    const int co = g.wg.co, ci = g.wg.ci;
    WINO_EACH(i, (int64_t)co * ci) {
        int o = (int)(i / ci), c = (int)(i % ci);
        const float *w = g.wg.flip ? g.w + ((int64_t)c * co + o) * 9 : g.w + ((int64_t)o * ci + c) * 9;
        float k[3][3], u[A][A];
#pragma unroll
        for (int r = 0; r < 9; r++) k[r / 3][r % 3] = g.wg.flip ? w[8 - r] : w[r];
        wino_sandwich<A, 3>(u, k, [](int r, int q) { return wino_tf<M>::g(r, q); });
        wino_store<A>(g.wg.u + i, (int64_t)co * ci, u);
    }
}

/* V[xi][c][p] = (B^T d B)[xi] for each in channel c and tile p = (image, tile row, tile column),
 * d the a x a inputs from (row, column) = (tile row x m - ph, tile column x m - pw), 0 outside. */
template <int M> __global__ void __launch_bounds__(GEMM_THREADS) k_wino_input(const gemm_args g) {
    enum { A = M + 2 };
    const int ci = g.wg.ci, ih = g.wg.ih, iw = g.wg.iw;
    const int64_t tiles = wino_round_tiles(g);
    WINO_EACH(i, tiles * ci) {
        wino_item it = wino_item_at<M>(g, i);
        int y0 = it.y0 - g.wg.ph, x0 = it.x0 - g.wg.pw;
        const float *in = g.wg.in + ((int64_t)it.img * ci + it.ch) * ih * iw;
        float d[A][A], v[A][A];
        wino_gather<A>(d, in, y0, x0, ih, iw);
        wino_sandwich<A, A>(v, d, [](int r, int q) { return wino_tf<M>::bt(r, q); });
        wino_store<A>(g.wg.v + i, ci * tiles, v);
    }
}

/* The filter's gradient: U[xi][o][p] = (A e A^T)[xi] for each out channel o and tile p, e the
 * m x m tile of dy at the tile's outputs, 0 past the plane (A = (A^T)^T, a x m). */
template <int M> __global__ void __launch_bounds__(GEMM_THREADS) k_wino_dy(const gemm_args g) {
    enum { A = M + 2 };
    const int co = g.wg.co, oh = g.wg.oh, ow = g.wg.ow;
    const int64_t tiles = wino_round_tiles(g);
    WINO_EACH(i, tiles * co) {
        wino_item it = wino_item_at<M>(g, i);
        const float *dy = g.dy + ((int64_t)it.img * co + it.ch) * oh * ow;
        float e[M][M], u[A][A];
        wino_gather<M>(e, dy, it.y0, it.x0, oh, ow);
        wino_sandwich<A, M>(u, e, [](int r, int q) { return wino_tf<M>::at(q, r); });
        wino_store<A>(g.wg.u + i, co * tiles, u);
    }
}

/* The filter's gradient: dw[o][c] += G^T M[.][o][c] G for each pair (G^T = (G)^T, 3 x a), once M
 * holds the sum over every round's tiles */
template <int M>
__global__ void __launch_bounds__(GEMM_THREADS) k_wino_filter_grad(const gemm_args g) {
    enum { A = M + 2 };
    const int64_t pairs = (int64_t)g.wg.co * g.wg.ci;
    WINO_EACH(i, pairs) {
        float mt[A][A], k[3][3];
        wino_load<A>(mt, g.wg.mm + i, pairs);
        wino_sandwich<3, A>(k, mt, [](int r, int q) { return wino_tf<M>::g(q, r); });
        float *dw = g.out + i * 9;
#pragma unroll
        for (int r = 0; r < 9; r++) dw[r] += k[r / 3][r % 3];
    }
}

/* y's m x m tile p of out channel o = (A^T M[.][o][p] A), where it lies inside the output: the
 * forward adds the bias, applies the activation and may max-pool 2 x 2 (tiles start at even rows
 * and columns, so a window lies in one tile); backward data writes or adds into dx. */
template <int M> __global__ void __launch_bounds__(GEMM_THREADS) k_wino_output(const gemm_args g) {
    enum { A = M + 2 };
    const int co = g.wg.co, oh = g.wg.oh, ow = g.wg.ow;
    const int64_t tiles = wino_round_tiles(g);
    const bool fwd = !g.wg.flip;
    WINO_EACH(i, tiles * co) {
        wino_item it = wino_item_at<M>(g, i);
        int o = it.ch, img = it.img, y0 = it.y0, x0 = it.x0;
        float mt[A][A], y[M][M];
        wino_load<A>(mt, g.wg.mm + i, co * tiles);
        wino_sandwich<M, A>(y, mt, [](int r, int q) { return wino_tf<M>::at(r, q); });
        float bias = fwd && g.bias ? g.bias[o] : 0.0f;
        if (fwd)
#pragma unroll
            for (int r = 0; r < M; r++)
#pragma unroll
                for (int s = 0; s < M; s++) y[r][s] = conv_act(g, y[r][s] + bias);
        float *out = g.out + ((int64_t)img * co + o) * (fwd && g.d.pool ? g.phw : oh * ow);
        if (fwd && g.d.pool) { /* PyTorch's floor: windows inside (oh / 2) x (ow / 2) */
#pragma unroll
            for (int r = 0; r < M; r += 2)
#pragma unroll
                for (int s = 0; s < M; s += 2) {
                    int py = (y0 + r) / 2, px = (x0 + s) / 2;
                    if (py >= oh / 2 || px >= g.pw) continue;
                    float best = pool_pick(pool_pick(pool_pick(y[r][s], y[r][s + 1]), y[r + 1][s]),
                                           y[r + 1][s + 1]);
                    out[py * g.pw + px] = best;
                }
            continue;
        }
#pragma unroll
        for (int r = 0; r < M; r++)
#pragma unroll
            for (int s = 0; s < M; s++) {
                int yy = y0 + r, xx = x0 + s;
                if (yy >= oh || xx >= ow) continue;
                float *q = out + (int64_t)yy * ow + xx;
                *q = !fwd && g.accumulate ? *q + y[r][s] : y[r][s];
            }
    }
#undef WINO_EACH
}

/* ---------------------------------------------------------------- host side */

/* The backend's limits: room for U, V and M of at most 1 GiB, and rounds of images whose room
 * fits 24 MiB (half an H100's 50 MB second-level cache), so that the next kernel reads V and M
 * back from there (wino_chunk) */
#define WINO_ROOM_MAX ((int64_t)1 << 28)
#define WINO_ROUND_FLOATS ((int64_t)6 << 20)

/* Whether a convolution product can run by Winograd: any of the three of a 3 x 3 window, stride
 * 1, no dilation, one group, padding at most 2 (backward data pads by 2 - p). */
static inline bool wino_possible(const gemm_args &g) {
    const cvn_conv_desc &d = g.d;
    return g.mode >= GEMM_CONV_FWD && g.mode <= GEMM_CONV_BWD_FILTER && d.kh == 3 && d.kw == 3 &&
           d.sh == 1 && d.sw == 1 && d.dh == 1 && d.dw == 1 && d.groups == 1 && d.ph <= 2 &&
           d.pw <= 2 && d.oh > 0 && d.ow > 0;
}

/* Tiles per image of F(m x m, 3 x 3) for the product of g, and the room (U, V and M, in floats)
 * for a round of images (0: all) */
static inline int64_t wino_tiles(const gemm_args &g, int m, int *th, int *tw) {
    bool data = g.mode == GEMM_CONV_BWD_DATA; /* the others tile the forward's output */
    int oh = data ? g.d.h : g.d.oh, ow = data ? g.d.w : g.d.ow;
    *th = (oh + m - 1) / m, *tw = (ow + m - 1) / m;
    return (int64_t)*th * *tw;
}
static inline int64_t wino_floats(const gemm_args &g, int m, int images = 0) {
    int th, tw;
    int64_t tiles = wino_tiles(g, m, &th, &tw) * (images ? images : g.d.n);
    int64_t a2 = (int64_t)(m + 2) * (m + 2);
    return a2 * ((int64_t)g.d.o * g.d.c + (int64_t)(g.d.o + g.d.c) * tiles);
}
/* Images per round such that its room stays within args.wg.chunk_floats (a second-level cache's
 * worth, so that V and M are read back from there rather than from memory): at least 1, at most
 * all (also where chunk_floats is 0) */
static inline int wino_chunk(const gemm_args &g, int m) {
    int th, tw;
    int64_t a2 = (int64_t)(m + 2) * (m + 2), tiles = wino_tiles(g, m, &th, &tw);
    if (!g.wg.chunk_floats) return g.d.n;
    int64_t images = (g.wg.chunk_floats / a2 - (int64_t)g.d.o * g.d.c) /
                     ((int64_t)(g.d.o + g.d.c) * tiles);
    return images < 1 ? 1 : images > g.d.n ? g.d.n : (int)images;
}

/* The product's operands as rows for a round of P tiles: A = U[xi] (co x ci; the filter's
 * gradient: co x P), and for the filter's gradient B = V[xi] transposed (ci x P) */
static inline void wino_rows(gemm_args *g, int64_t tiles) {
    bool grad = g->mode == GEMM_CONV_BWD_FILTER;
    int64_t row = grad ? tiles : g->wg.ci;
    g->ra = {g->wg.u, g->wg.co, KPOS_BIG, (int64_t)g->wg.co * row, row, 0};
    if (grad) g->rb = {g->wg.v, g->wg.ci, KPOS_BIG, (int64_t)g->wg.ci * tiles, tiles, 0};
}

/* The plan of a convolution product by F(m x m, 3 x 3), in the room of args.wg, in rounds of
 * images (0: all at once): the batched product of a round as gemm_args, a group per xi: M[xi] =
 * U[xi] V[xi] (m = co, n = its tiles, k = ci) or, for the filter's gradient, U[xi] V[xi]^T (m = co,
 * n = ci, k = its tiles); run_wino moves the tiles and the images' pointers from round to round. */
static inline void set_wino(gemm_plan *p, int m, int images = 0) {
    gemm_args *g = &p->args;
    const cvn_conv_desc &d = g->d;
    bool data = g->mode == GEMM_CONV_BWD_DATA, grad = g->mode == GEMM_CONV_BWD_FILTER;
    int th, tw;
    g->wg.images = images ? images : d.n;
    int64_t tiles = wino_tiles(*g, m, &th, &tw) * g->wg.images;
    int a2 = (m + 2) * (m + 2);
    g->wg.m = m, g->wg.th = th, g->wg.tw = tw, g->wg.flip = data;
    g->wg.ci = data ? d.o : d.c, g->wg.co = data ? d.c : d.o;
    g->wg.ih = data ? d.oh : d.h, g->wg.iw = data ? d.ow : d.w;
    g->wg.oh = data ? d.h : d.oh, g->wg.ow = data ? d.w : d.ow;
    g->wg.ph = data ? 2 - d.ph : d.ph, g->wg.pw = data ? 2 - d.pw : d.pw;
    g->wg.in = data ? g->dy : g->x;
    /* U, V and M side by side: co x ci, ci x P and co x P floats per point (the filter's
     * gradient: co x P, ci x P and co x ci) */
    int64_t u_floats = (int64_t)a2 * g->wg.co * (grad ? tiles : g->wg.ci);
    g->wg.u = g->wg.room;
    g->wg.v = g->wg.u + u_floats;
    g->wg.mm = g->wg.v + (int64_t)a2 * g->wg.ci * tiles;
    g->taps = false;
    g->groups = a2;
    if (grad) g->m = g->wg.co, g->n = g->wg.ci, g->k = (int)tiles;
    else g->m = g->wg.co, g->n = (int)tiles, g->k = g->wg.ci;
    wino_rows(g, tiles);
}

#endif
