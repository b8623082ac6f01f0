/* The CUDA tiled GEMM and implicit-GEMM convolution kernels (kernels/cuda/tiled_gemm.cuh), run on
 * the CPU under tests/cuda_emu.h, against double-precision loops written from the definitions:
 * every matrix transpose combination, the three convolution products over strides, padding,
 * dilation, groups and 1x1 windows, both tile sizes, split K, the forward's bias and activation
 * epilogue, and accumulation into dx and dw. The buffers are exactly as large as the matrices, so
 * under SANITIZE=1 ASan also checks that no gather reads past them (tile tails, window borders),
 * as compute-sanitizer's memcheck would on a GPU. On a GPU, test_cuda runs the same kernels
 * against the CPU backend and cuDNN; this suite checks them where no GPU is. */
#include "cuda_emu.h"

#include "check_run.h"
#include "cuda/tiled_gemm.cuh"

#include <float.h>
#include <stdio.h>

#include <string>

static bool emulate(const gemm_plan &p) {
    bool ok = true;
    run_plan(p, [&](void (*kernel)(gemm_args), dim3 grid, const gemm_args &g) {
        ok = ok && emu::launch(grid, dim3(GEMM_THREADS), [&] { kernel(g); });
    });
    return ok;
}

static std::vector<float> random_floats(size_t n, unsigned seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return v;
}

/* Of the largest element: FP32's error over the sums here is under 2e-6 of it, Winograd F(4x4)'s
 * (each_variant raises it to 4e-5 there) up to 9e-6 */
static double tolerance = 1e-5;
/* The Winograd tile of the variant being checked (each_variant), or 0 */
static int variant_wino;

/* With CVN_EMU_ERRORS set, each check also prints its largest error over the largest element (the
 * figures of docs/benchmarks/gpu.md: CVN_EMU_ERRORS=1 build/tests/test_cuda_emu | grep c96) */
static void expect_close(const char *what, const std::vector<float> &got,
                         const std::vector<double> &want) {
    ck_assert_uint_eq(got.size(), want.size());
    double scale = 1e-6;
    for (double w : want)
        if (!std::isnan(w)) scale = std::max(scale, fabs(w));
    if (getenv("CVN_EMU_ERRORS")) {
        double worst = 0;
        for (size_t i = 0; i < want.size(); i++)
            if (!std::isnan(want[i])) worst = std::max(worst, fabs(got[i] - want[i]) / scale);
        printf("error %.2g: %s\n", worst, what);
    }
    for (size_t i = 0; i < want.size(); i++)
        ck_assert_msg(std::isnan(want[i]) ? std::isnan(got[i])
                                          : fabs(got[i] - want[i]) <= tolerance * scale + 1e-5 * fabs(want[i]),
                      "%s: element %zu is %.7g, expected %.7g", what, i, (double)got[i], want[i]);
}

/* ------------------------------------------------------------------ matrix */

static void check_matrix(bool ta, bool tb, int m, int n, int k, float alpha, float beta,
                         int tile) {
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
    std::vector<float> a = random_floats((size_t)(ta ? k : m) * lda, 1),
                       b = random_floats((size_t)(tb ? n : k) * ldb, 2),
                       c = random_floats((size_t)m * ldc, 3);
    std::vector<double> want(c.begin(), c.end());
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++)
                s += (double)(ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l]) *
                     (tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j]);
            want[(size_t)i * ldc + j] = alpha * s + beta * c[(size_t)i * ldc + j];
        }
    gemm_plan p = plan_matrix(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
                              ldc);
    if (tile) set_tiles(&p, tile, p.args.splits);
    char what[112];
    snprintf(what, sizeof what, "gemm ta %d tb %d %dx%dx%d tile %dx%d splits %d", ta, tb, m, n, k,
             p.tile_m, p.tile_n, p.args.splits);
    ck_assert_msg(emulate(p), "%s: threads diverged at a barrier", what);
    expect_close(what, c, want);
}

START_TEST(test_matrix_transposes) {
    for (int t = 0; t < 4; t++)
        for (int tile : {64, 128}) { /* 128 over 5 or 4 rows: 64 x 128 */
            check_matrix(t & 1, t & 2, 70, 131, 37, 1.0f, 0.0f, tile);
            check_matrix(t & 1, t & 2, 5, 9, 3, 0.5f, 2.0f, tile);
            check_matrix(t & 1, t & 2, 4, 6, 0, 1.0f, 0.5f, tile); /* empty K: C = beta C */
        }
}
END_TEST

START_TEST(test_matrix_split_k) {
    /* few output tiles, long K: the plan splits K and slices add into C, which is scaled by beta
     * first where beta != 1 */
    for (float beta : {1.0f, 0.0f, 0.5f}) {
        gemm_plan p = plan_matrix(false, true, 20, 30, 1000, 1.0f, NULL, 1000, NULL, 1000, beta,
                                  NULL, 30);
        ck_assert_int_gt(p.args.splits, 1);
        check_matrix(false, true, 20, 30, 1000, 1.0f, beta, 0);
        check_matrix(true, false, 20, 30, 1000, -0.5f, beta, 0);
    }
    /* beta 0 forgets C, NaN included, as an unsplit product does: A = B = ones gives k */
    int m = 3, n = 5, k = 1024;
    std::vector<float> a((size_t)m * k, 1.0f), b((size_t)n * k, 1.0f), c((size_t)m * n, NAN);
    gemm_plan p = plan_matrix(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(),
                              n);
    ck_assert_int_gt(p.args.splits, 1);
    ck_assert(emulate(p));
    expect_close("split gemm over NaN with beta 0", c, std::vector<double>(c.size(), (double)k));
}
END_TEST

START_TEST(test_matrix_plan_tiles) {
    /* large outputs take 128 x 128 tiles, 64 x 128 over at most 64 rows, small ones 64 x 64 */
    gemm_plan p = plan_matrix(false, false, 2048, 2048, 64, 1, NULL, 64, NULL, 2048, 0, NULL, 2048);
    ck_assert_int_eq(p.tile_m, 128);
    ck_assert_int_eq(p.tile_n, 128);
    p = plan_matrix(false, false, 64, 40000, 64, 1, NULL, 64, NULL, 40000, 0, NULL, 40000);
    ck_assert_int_eq(p.tile_m, 64);
    ck_assert_int_eq(p.tile_n, 128);
    p = plan_matrix(false, false, 80, 40000, 64, 1, NULL, 64, NULL, 40000, 0, NULL, 40000);
    ck_assert_int_eq(p.tile_n, 64); /* 80 rows: neither 128 tall nor within 64 */
    p = plan_matrix(false, false, 64, 300, 64, 1, NULL, 64, NULL, 300, 0, NULL, 300);
    ck_assert_int_eq(p.tile_m, 64);
    ck_assert_int_eq(p.tile_n, 64);
}
END_TEST

/* ------------------------------------------------------------------ convolution */

typedef struct {
    int n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int shift; /* floats by which the inputs (x, w, dy) start past an aligned address */
} geometry;

/* A copy of v that starts shift floats into its buffer (1: misaligned for vector loads) */
struct shifted {
    std::vector<float> buf;
    float *p;
    shifted(const std::vector<float> &v, int shift) : buf(v.size() + shift) {
        p = buf.data() + shift;
        std::copy(v.begin(), v.end(), p);
    }
};

static cvn_conv_desc describe(const geometry &q) {
    cvn_conv_desc d;
    memset(&d, 0, sizeof d);
    d.n = q.n, d.c = q.c, d.h = q.h, d.w = q.w, d.o = q.o, d.kh = q.kh, d.kw = q.kw;
    d.sh = q.sh, d.sw = q.sw, d.ph = q.ph, d.pw = q.pw, d.dh = q.dh, d.dw = q.dw;
    d.groups = q.groups;
    d.oh = (q.h + 2 * q.ph - q.dh * (q.kh - 1) - 1) / q.sh + 1;
    d.ow = (q.w + 2 * q.pw - q.dw * (q.kw - 1) - 1) / q.sw + 1;
    return d;
}

/* The element counts of a convolution's input, weights and output */
struct conv_sizes {
    size_t x, w, y;
};
static conv_sizes sizes_of(const cvn_conv_desc &d) {
    return {(size_t)d.n * d.c * d.h * d.w, (size_t)d.o * (d.c / d.groups) * d.kh * d.kw,
            (size_t)d.n * d.o * d.oh * d.ow};
}

/* Calls f(x index, w index, y index) for every product x * w of the convolution that lands inside
 * the image and adds into y: the one definition the three references share. */
template <class F> static void each_product(const cvn_conv_desc &d, F f) {
    int cg = d.c / d.groups, og = d.o / d.groups;
    for (int img = 0; img < d.n; img++)
        for (int o = 0; o < d.o; o++)
            for (int oy = 0; oy < d.oh; oy++)
                for (int ox = 0; ox < d.ow; ox++)
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < d.kh; ky++)
                            for (int kx = 0; kx < d.kw; kx++) {
                                int iy = oy * d.sh - d.ph + ky * d.dh, ix = ox * d.sw - d.pw + kx * d.dw;
                                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                                int c = o / og * cg + ci;
                                size_t xi = (((size_t)img * d.c + c) * d.h + iy) * d.w + ix;
                                size_t wi = (((size_t)o * cg + ci) * d.kh + ky) * d.kw + kx;
                                size_t yi = (((size_t)img * d.o + o) * d.oh + oy) * d.ow + ox;
                                f(xi, wi, yi);
                            }
}

/* The three products' references in double, added into what y, dx and dw hold: y = x * w, dx =
 * dy * w under the turned window, dw = dy * x */
static void conv_references(const cvn_conv_desc &d, const std::vector<float> &x,
                            const std::vector<float> &w, const std::vector<float> &dy,
                            std::vector<double> &y, std::vector<double> &dx,
                            std::vector<double> &dw) {
    each_product(d, [&](size_t xi, size_t wi, size_t yi) {
        y[yi] += (double)x[xi] * w[wi];
        dx[xi] += (double)dy[yi] * w[wi];
        dw[wi] += (double)dy[yi] * x[xi];
    });
}

/* The forward with bias, activation f and 2x2 max pooling (floor, PyTorch's order: the first of
 * the window, then each later one that is greater or NaN) from the unbiased reference y. */
template <class F>
static std::vector<double> pooled(const cvn_conv_desc &d, const std::vector<double> &y,
                                  const std::vector<float> &bias, F f) {
    int ph = d.oh / 2, pw = d.ow / 2;
    std::vector<double> out((size_t)d.n * d.o * ph * pw);
    for (int img = 0; img < d.n; img++)
        for (int o = 0; o < d.o; o++)
            for (int py = 0; py < ph; py++)
                for (int px = 0; px < pw; px++) {
                    double best = 0;
                    for (int u = 0; u < 4; u++) {
                        int oy = 2 * py + u / 2, ox = 2 * px + u % 2;
                        double v = f(y[(((size_t)img * d.o + o) * d.oh + oy) * d.ow + ox] + bias[o]);
                        if (u == 0 || v > best || std::isnan(v)) best = v;
                    }
                    out[(((size_t)img * d.o + o) * ph + py) * pw + px] = best;
                }
    return out;
}

/* Runs every variant of plan p that tuning may pick (both tile sizes, K split or not, K in either
 * order with wt as room for the permuted weights, FP32, tensor cores, or tensor cores pipelined),
 * each on outputs reset by reset(), and checks each with check(label); out_floats is the output's
 * size. */
template <class Reset, class Check>
static void each_variant(gemm_plan p, float *wt, const char *what, size_t out_floats, Reset reset,
                         Check check) {
    ck_assert_int_eq(plan_out_floats(p), out_floats); /* the size of tuning's scratch */
    p.args.wt = wt;
    std::vector<float> room; /* Winograd's U, V and M, where it applies, and rounds of 1 image */
    if (wino_possible(p.args)) {
        room.resize((size_t)std::max(wino_floats(p.args, 2), wino_floats(p.args, 4)));
        p.args.wg.room = room.data(), p.args.wg.room_floats = (int64_t)room.size();
        p.args.wg.chunk_floats = 1;
    }
    gemm_plan cands[GEMM_CANDIDATES];
    int n = plan_candidates(p, cands);
    for (int i = 0; i < n; i++) {
        char label[224], wino[64] = "";
        if (cands[i].args.wg.m)
            snprintf(wino, sizeof wino, ", Winograd F(%dx%d, 3x3) by %d images",
                     cands[i].args.wg.m, cands[i].args.wg.m, cands[i].args.wg.images);
        const gemm_args &g = cands[i].args;
        const char *product = g.mode == GEMM_CONV_FWD
                                  ? (g.d.pool ? "forward pooled" : g.d.act_on ? "forward act" : "forward")
                              : g.mode == GEMM_CONV_BWD_DATA
                                  ? (g.accumulate ? "backward data added" : "backward data")
                                  : "backward filter";
        snprintf(label, sizeof label, "%s, %s, tile %dx%d, %d K slices%s%s%s%s", what, product,
                 cands[i].tile_m, cands[i].tile_n, cands[i].args.splits,
                 cands[i].args.taps ? ", K tap-major" : "", wino, cands[i].mma ? ", 3xTF32" : "",
                 cands[i].async ? " pipelined" : "");
        reset();
        ck_assert_msg(emulate(cands[i]), "%s: diverged or faulted", label);
        tolerance = cands[i].args.wg.m == 4 ? 4e-5 : 1e-5;
        variant_wino = cands[i].args.wg.m;
        check(label);
        tolerance = 1e-5, variant_wino = 0;
    }
}

static void check_conv(const geometry &q) {
    cvn_conv_desc d = describe(q);
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 11), w = random_floats(nw, 12),
                       bias = random_floats(d.o, 13), dy = random_floats(ny, 14);
    std::vector<double> y_ref(ny), dx_ref(nx), dw_ref(nw);
    conv_references(d, x, w, dy, y_ref, dx_ref, dw_ref);
    std::vector<float> wt(nw); /* room for the weights in tap-major order */
    shifted xs(x, q.shift), ws(w, q.shift), dys(dy, q.shift);
    char what[160];
    snprintf(what, sizeof what, "conv n%d c%d %dx%d o%d k%dx%d s%dx%d p%dx%d d%dx%d g%d%s", q.n,
             q.c, q.h, q.w, q.o, q.kh, q.kw, q.sh, q.sw, q.ph, q.pw, q.dh, q.dw, q.groups,
             q.shift ? " shifted" : "");
    gemm_plan p;

    /* forward with bias and leaky ReLU */
    d.act_on = true, d.act = CVN_K_LEAKY_RELU, d.alpha = 0.1f;
    std::vector<float> y(ny);
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), xs.p, ws.p, NULL, bias.data(),
                        false));
    std::vector<double> want(ny);
    for (size_t i = 0; i < ny; i++) {
        double v = y_ref[i] + bias[i / ((size_t)d.oh * d.ow) % d.o];
        want[i] = v > 0 ? v : 0.1 * v;
    }
    each_variant(
        p, wt.data(), what, ny, [&] { y.assign(ny, NAN); },
        [&](const char *l) { expect_close(l, y, want); });

    /* forward with bias, ReLU and 2x2 max pooling in the epilogue */
    if (d.oh >= 2 && d.ow >= 2) {
        d.act = CVN_K_RELU, d.pool = 2;
        std::vector<float> yp((size_t)d.n * d.o * (d.oh / 2) * (d.ow / 2));
        ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, yp.data(), xs.p, ws.p, NULL,
                            bias.data(), false));
        std::vector<double> yp_want =
            pooled(d, y_ref, bias, [](double v) { return v > 0 ? v : 0.0; });
        each_variant(
            p, wt.data(), what, yp.size(), [&] { std::fill(yp.begin(), yp.end(), NAN); },
            [&](const char *l) { expect_close(l, yp, yp_want); });
        d.pool = 0;
    }

    /* forward without bias or activation */
    d.act_on = false;
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), xs.p, ws.p, NULL, NULL, false));
    each_variant(
        p, wt.data(), what, ny, [&] { y.assign(ny, NAN); },
        [&](const char *l) { expect_close(l, y, y_ref); });

    /* backward data, overwriting then accumulating */
    std::vector<float> dx(nx);
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_DATA, &d, dx.data(), NULL, ws.p, dys.p, NULL,
                        false));
    each_variant(
        p, wt.data(), what, nx, [&] { dx.assign(nx, NAN); },
        [&](const char *l) { expect_close(l, dx, dx_ref); });
    std::vector<float> dx0 = random_floats(nx, 15);
    want.assign(nx, 0);
    for (size_t i = 0; i < nx; i++) want[i] = dx0[i] + dx_ref[i];
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_DATA, &d, dx.data(), NULL, ws.p, dys.p, NULL,
                        true));
    each_variant(
        p, wt.data(), what, nx, [&] { dx = dx0; },
        [&](const char *l) { expect_close(l, dx, want); });

    /* backward filter accumulates into dw */
    std::vector<float> dw(nw), dw0 = random_floats(nw, 16);
    want.assign(nw, 0);
    for (size_t i = 0; i < nw; i++) want[i] = dw0[i] + dw_ref[i];
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_FILTER, &d, dw.data(), xs.p, NULL, dys.p, NULL,
                        false));
    each_variant(
        p, wt.data(), what, nw, [&] { dw = dw0; },
        [&](const char *l) { expect_close(l, dw, want); });
}

static const geometry geometries[] = {
    {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0}, /* 3x3 same padding, odd sizes */
    {3, 4, 8, 6, 6, 3, 2, 2, 1, 1, 0, 1, 1, 2, 0}, /* strided rows, groups */
    {2, 2, 9, 9, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 0}, /* stride 2, dilation 2 */
    {2, 8, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0}, /* 1x1 */
    {1, 6, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, 0}, /* depthwise */
    {4, 2, 12, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0}, /* dw's K long enough to split */
    {1, 70, 5, 4, 67, 2, 2, 1, 1, 0, 1, 1, 1, 1, 0}, /* channel counts past one 64 tile */
    {2, 16, 6, 7, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0}, /* channels in runs of 4: tap-major runs */
    {2, 8, 9, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0}, /* the same with stride 2 (backward data) */
    {2, 16, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2, 0}, /* and with groups */
    {2, 16, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* inputs a float off alignment: no vectors */
    {2, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},  /* stride 2, output rows of 4: dw's row runs */
    {2, 36, 10, 13, 40, 3, 3, 1, 1, 0, 2, 1, 1, 1, 0}, /* Winograd: padding 0 and 2, odd width */
    {1, 96, 9, 8, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0},  /* Winograd's error over a long sum */
    {2, 2, 48, 48, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0},  /* Winograd's filter gradient: K split */
};

START_TEST(test_conv_geometries) {
    check_conv(geometries[_i]);
}
END_TEST

START_TEST(test_lean_pick) {
    /* what both searches keep (ours and cuDNN's): of the choices within 3 % of the fastest, the
     * least room; an unusable choice (INFINITY), however little room, never */
    auto pick = [](std::vector<double> times, std::vector<double> rooms) {
        return lean_pick(
            (int)times.size(), [&](int i) { return times[i]; }, [&](int i) { return rooms[i]; });
    };
    /* the fastest is 3; 0 is 1 % slower with half its room; 2, 3.03 % slower, is out */
    ck_assert_int_eq(pick({1.0, INFINITY, 1.02, 0.99, 1.5}, {10, 0, 5, 20, 0}), 0);
    ck_assert_int_eq(pick({1.0, INFINITY, 1.0195, 0.99, 1.5}, {10, 0, 5, 20, 0}), 2);
    ck_assert_int_eq(pick({1.0, 1.01, 1.02}, {5, 5, 5}), 0);      /* rooms tie: the fastest */
    ck_assert_int_eq(pick({1.02, 1.01, 1.0}, {5, 5, 5}), 2);
    ck_assert_int_eq(pick({2.0, 1.0}, {0, 100}), 1);              /* no room, but twice as slow */
    ck_assert_int_eq(pick({INFINITY, INFINITY}, {1, 0}), 0);      /* none usable: the first */
    ck_assert_int_eq(pick({INFINITY, 3.0, 3.05}, {0, 9, 8}), 2);
    ck_assert_int_eq(pick({1.0}, {7}), 0);
}
END_TEST

START_TEST(test_conv_tuning) {
    /* the filter gradient of the long-K geometry: twelve variants (two tiles, split or not, FP32
     * or tensor cores, the latter pipelined or not) */
    cvn_conv_desc d = describe(geometries[5]);
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 31), dy = random_floats(ny, 32);
    std::vector<float> dw(nw, 0.0f);
    gemm_plan p, cands[GEMM_CANDIDATES];
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_FILTER, &d, dw.data(), x.data(), NULL, dy.data(), NULL,
                        false));
    std::vector<float> scratch(plan_out_floats(p), 0.0f); /* exactly: ASan checks the trials */
    ck_assert_int_eq(scratch.size(), nw);
    ck_assert_int_eq(plan_candidates(p, cands, false), 4); /* CVN_CUDA_MMA=0: FP32 only */
    for (int i = 0; i < 4; i++) ck_assert(!cands[i].mma);
    ck_assert_int_eq(plan_candidates(p, cands), 12);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(cands[i].mma, i >= 4);
        ck_assert_int_eq(cands[i].async, i >= 8);
    }
    /* a stand-in clock that finds 128-tile unsplit on tensor cores, pipelined, fastest; every
     * trial runs, into scratch */
    int trials = 0;
    gemm_plan best = tune_plan(p, scratch.data(), [&](const gemm_plan &trial) {
        ck_assert_ptr_eq(trial.args.out, scratch.data());
        std::fill(scratch.begin(), scratch.end(), 0.0f);
        ck_assert(emulate(trial));
        trials++;
        return (trial.tile_n == 128 ? 1.0 : 2.0) + (trial.args.splits > 1 ? 0.5 : 0.0) -
               (trial.mma ? 0.25 : 0.0) - (trial.async ? 0.125 : 0.0);
    });
    ck_assert_int_eq(trials, 12);
    ck_assert_int_eq(best.tile_n, 128);
    ck_assert_int_eq(best.tile_m, 64); /* 3 rows: the 128 tile is 64 x 128 */
    ck_assert_int_eq(best.args.splits, 1);
    ck_assert(best.mma && best.async);
    ck_assert_ptr_eq(best.args.out, dw.data()); /* the pick writes the output again */
    for (float v : dw) ck_assert_float_eq(v, 0.0f); /* which tuning left untouched */
    double sum = 0;
    for (float v : scratch) sum += fabs(v);
    ck_assert(sum > 0); /* while the trials computed into scratch */
    ck_assert(emulate(best));
    for (size_t i = 0; i < nw; i++) ck_assert_float_eq_tol(dw[i], scratch[i], 1e-5f);
    /* the clock's first minimum wins on ties, and the planned variant comes first */
    best = tune_plan(p, scratch.data(), [](const gemm_plan &) { return 1.0; });
    ck_assert_int_eq(best.tile_n, p.tile_n);
    ck_assert_int_eq(best.args.splits, p.args.splits);
    ck_assert(!best.mma);
}
END_TEST

START_TEST(test_conv_winograd_tuning) {
    /* the forward of a 3 x 3, stride-1 layer: Winograd's variants join the implicit GEMM's where
     * the room holds them, F(2x2) needing more room than F(4x4) here */
    geometry q = {2, 8, 12, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0};
    cvn_conv_desc d = describe(q);
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 41), w = random_floats(nw, 42), y(ny, 0.0f);
    std::vector<float> wt(nw), scratch(ny);
    gemm_plan p, cands[GEMM_CANDIDATES];
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), x.data(), w.data(), NULL, NULL, false));
    p.args.wt = wt.data();
    ck_assert(wino_possible(p.args));
    /* F(2x2): 16 x (16 x 8 + (16 + 8) x 2 x 6 x 5 tiles); F(4x4): 36 x (128 + 24 x 2 x 3 x 3) */
    ck_assert_int_eq(wino_floats(p.args, 2), 16 * (128 + 24 * 60));
    ck_assert_int_eq(wino_floats(p.args, 4), 36 * (128 + 24 * 18));
    ck_assert_int_eq(plan_candidates(p, cands), 12); /* no room: the implicit GEMM's 12 */
    std::vector<float> room(wino_floats(p.args, 2));
    p.args.wg.room = room.data();
    p.args.wg.room_floats = wino_floats(p.args, 4);
    ck_assert_int_eq(plan_candidates(p, cands), 18); /* F(4x4) fits: 2 tiles x 3 kernels more */
    p.args.wg.room_floats = (int64_t)room.size();
    ck_assert_int_eq(plan_candidates(p, cands, true, 0), 12);   /* Winograd off */
    ck_assert_int_eq(plan_candidates(p, cands, true, 2), 18);   /* F(2x2) only */
    ck_assert_int_eq(plan_candidates(p, cands, false, 4), 8);   /* FP32 only: 4 + 2 x 2 */
    ck_assert_int_eq(plan_candidates(p, cands, true, 4, true), 6); /* F(4x4) alone */
    for (int i = 0; i < 6; i++) ck_assert_int_eq(cands[i].args.wg.m, 4);
    ck_assert_int_eq(plan_candidates(p, cands), 24);
    for (int i = 0; i < 24; i++) { /* 8 per kernel: 4 implicit, then F(2x2) and F(4x4) */
        ck_assert_int_eq(cands[i].args.wg.m, i % 8 < 4 ? 0 : i % 8 < 6 ? 2 : 4);
        ck_assert_int_eq(cands[i].args.groups, cands[i].args.wg.m ? (cands[i].args.wg.m + 2) *
                                                                        (cands[i].args.wg.m + 2)
                                                                  : 1);
        if (cands[i].args.wg.m) ck_assert_int_eq(cands[i].args.wg.images, 2);
    }
    /* rounds of images: as many as the room asked for holds (at least 1, never all) */
    p.args.wg.chunk_floats = wino_floats(p.args, 4, 2);
    ck_assert_int_eq(wino_chunk(p.args, 2), 1);
    ck_assert_int_eq(wino_chunk(p.args, 4), 2); /* F(4x4)'s 2 images fit: no rounds */
    ck_assert_int_eq(plan_candidates(p, cands), 30);
    for (int i = 0; i < 30; i++) /* 10 per kernel: then F(2x2) in rounds of 1 image */
        ck_assert_int_eq(cands[i].args.wg.images, i % 10 < 4 ? 0 : i % 10 < 6 ? 2 : i % 10 < 8 ? 1 : 2);
    p.args.wg.chunk_floats = 1;
    ck_assert_int_eq(wino_chunk(p.args, 4), 1);
    ck_assert_int_eq(plan_candidates(p, cands), 36);
    p.args.wg.room_floats = wino_floats(p.args, 2, 1); /* room for rounds only: F(2x2) and F(4x4) */
    ck_assert_int_eq(plan_candidates(p, cands), 24);
    ck_assert_int_eq(cands[4].args.wg.images, 1);
    p.args.wg.room_floats = (int64_t)room.size(), p.args.wg.chunk_floats = 0;
    /* bench's large layer (256 x 64 x 32 x 32 -> 128) by F(2x2) under the backend's limits: all
     * at once 805 MB, rounds of 7 images 22.5 MB */
    cvn_conv_desc big = describe({256, 64, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0});
    gemm_plan pb;
    ck_assert(plan_conv(&pb, GEMM_CONV_FWD, &big, NULL, NULL, NULL, NULL, NULL, false));
    pb.args.wg.chunk_floats = WINO_ROUND_FLOATS;
    ck_assert_int_eq(wino_floats(pb.args, 2), 16 * (128 * 64 + 192 * 65536));
    ck_assert(wino_floats(pb.args, 2) <= WINO_ROOM_MAX);
    ck_assert_int_eq(wino_chunk(pb.args, 2), 7);
    ck_assert_int_eq(wino_floats(pb.args, 2, 7), 16 * (128 * 64 + 192 * 7 * 256));
    /* a stand-in clock that finds F(2x2) on 64 tiles on tensor cores fastest: the pick runs it */
    gemm_plan best = tune_plan(p, scratch.data(), [&](const gemm_plan &trial) {
        ck_assert(emulate(trial));
        return (trial.args.wg.m == 2 ? 1.0 : 2.0) + (trial.tile_n == 64 ? 0.0 : 0.5) -
               (trial.mma && !trial.async ? 0.25 : 0.0);
    });
    ck_assert_int_eq(best.args.wg.m, 2);
    ck_assert_int_eq(best.tile_n, 64);
    ck_assert(best.mma && !best.async);
    ck_assert(emulate(best));
    std::vector<double> want(ny);
    each_product(d, [&](size_t xi, size_t wi, size_t yi) { want[yi] += (double)x[xi] * w[wi]; });
    expect_close("tuned Winograd F(2x2)", y, want);
    /* the least room within TUNE_ROOM_SLACK (3 %) of the fastest: stand-in clocks (the trials do
     * not run) with F(2x2) all at once fastest, F(4x4) and the implicit GEMM slower, and rounds of
     * one image (half the room) 2 % or 5 % slower; then the implicit GEMM (no room) 1 % slower */
    p.args.wg.chunk_floats = wino_floats(p.args, 2, 1);
    ck_assert_int_eq(wino_chunk(p.args, 2), 1);
    ck_assert_int_eq(plan_candidates(p, cands), 36);
    auto clock = [](double rounds, double implicit) {
        return [=](const gemm_plan &trial) {
            const auto &wg = trial.args.wg;
            double s = wg.m == 4 ? 1.2 : wg.m == 0 ? implicit : wg.images < 2 ? rounds : 1.0;
            return s + (trial.tile_n == 64 ? 0.0 : 0.001) + (trial.mma ? 0.0 : 0.002);
        };
    };
    tune_record record;
    best = tune_plan(p, scratch.data(), clock(1.02, 1.5), true, 4, false, &record);
    ck_assert_int_eq(record.n, 36); /* everything timed is in the record, the pick among it */
    for (int i = 0; i < 36; i++) ck_assert_double_eq(record.times[i], clock(1.02, 1.5)(record.cands[i]));
    const gemm_plan &kept = record.cands[record.kept];
    ck_assert(kept.args.wg.m == best.args.wg.m && kept.args.wg.images == best.args.wg.images &&
              kept.tile_n == best.tile_n && kept.mma == best.mma && kept.async == best.async);
    ck_assert_int_eq(best.args.wg.m, 2);
    ck_assert_int_eq(best.args.wg.images, 1);
    ck_assert_int_eq(best.tile_n, 64); /* the fastest of the rounds */
    ck_assert(best.mma);
    ck_assert_int_eq(plan_room_floats(best), wino_floats(p.args, 2, 1));
    best = tune_plan(p, scratch.data(), clock(1.05, 1.5));
    ck_assert_int_eq(best.args.wg.m, 2);
    ck_assert_int_eq(best.args.wg.images, 2);
    ck_assert_int_eq(plan_room_floats(best), wino_floats(p.args, 2));
    best = tune_plan(p, scratch.data(), clock(1.02, 1.01));
    ck_assert_int_eq(best.args.wg.m, 0);
    ck_assert_int_eq(plan_room_floats(best), 0);
    ck_assert(best.tile_n == 64 && best.mma);
    p.args.wg.chunk_floats = 0;
    /* backward data of a 5 x 5 window, a stride of 2, dilation or groups: no Winograd */
    for (geometry r : {geometry{2, 8, 12, 10, 16, 5, 5, 1, 1, 2, 2, 1, 1, 1, 0},
                       geometry{2, 8, 12, 10, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},
                       geometry{2, 8, 12, 10, 16, 3, 3, 1, 1, 2, 2, 2, 2, 1, 0},
                       geometry{2, 8, 12, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 2, 0},
                       geometry{2, 8, 12, 10, 16, 3, 3, 1, 1, 3, 3, 1, 1, 1, 0}}) {
        cvn_conv_desc e = describe(r);
        ck_assert(plan_conv(&p, GEMM_CONV_BWD_DATA, &e, x.data(), NULL, w.data(), y.data(), NULL,
                            false));
        ck_assert(!wino_possible(p.args));
    }
    /* the filter's gradient: the same room, U being dy's tiles (co x P) and M co x ci; its K (the
     * tiles) split as the implicit GEMM's is */
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_FILTER, &d, w.data(), x.data(), NULL, y.data(), NULL,
                        false));
    ck_assert(wino_possible(p.args));
    ck_assert_int_eq(wino_floats(p.args, 2), 16 * (128 + 24 * 60));
    p.args.wg.room = room.data(), p.args.wg.room_floats = (int64_t)room.size();
    set_wino(&p, 2);
    ck_assert_int_eq(p.args.m, 16);
    ck_assert_int_eq(p.args.n, 8);
    ck_assert_int_eq(p.args.k, 60);
    ck_assert_ptr_eq(p.args.wg.v, room.data() + 16 * 16 * 60);
    ck_assert_ptr_eq(p.args.wg.mm, room.data() + 16 * 24 * 60);
    cvn_conv_desc gb = big;
    gemm_plan pg;
    ck_assert(plan_conv(&pg, GEMM_CONV_BWD_FILTER, &gb, NULL, NULL, NULL, NULL, NULL, false));
    pg.args.wg.chunk_floats = WINO_ROUND_FLOATS;
    ck_assert_int_eq(wino_chunk(pg.args, 2), 7);
    pg.args.wg.room = room.data();
    set_wino(&pg, 2, 7); /* 16 x 2 x 1 blocks of 64 x 64: 7 slices of 256 tiles each */
    ck_assert_int_eq(splits_for(&pg.args, 64, true), 7);
    ck_assert_int_eq(pg.args.k, 7 * 256);
}
END_TEST

START_TEST(test_conv_winograd_short_round) {
    /* the three products by F(2x2) in rounds of 2 of 3 images, so the last round is shorter; the
     * filter's gradient with K in slices of 96 tiles, which leaves the last round's third slice
     * empty, and M adding up over the rounds */
    geometry q = {3, 2, 24, 24, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0};
    cvn_conv_desc d = describe(q);
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 61), w = random_floats(nw, 62),
                       dy = random_floats(ny, 63), dw0 = random_floats(nw, 64);
    std::vector<double> y_ref(ny), dx_ref(nx), dw_ref(dw0.begin(), dw0.end());
    conv_references(d, x, w, dy, y_ref, dx_ref, dw_ref);
    std::vector<float> y(ny), dx(nx), dw(nw), room;
    const char *names[3] = {"forward", "backward data", "backward filter"};
    for (int mode = GEMM_CONV_FWD; mode <= GEMM_CONV_BWD_FILTER; mode++) {
        gemm_plan p;
        float *out = mode == GEMM_CONV_FWD ? y.data() : mode == GEMM_CONV_BWD_DATA ? dx.data() : dw.data();
        ck_assert(plan_conv(&p, mode, &d, out, x.data(), w.data(), dy.data(), NULL, false));
        room.resize(wino_floats(p.args, 2, 2));
        p.args.wg.room = room.data(), p.args.wg.room_floats = (int64_t)room.size();
        set_wino(&p, 2, 2);
        set_tiles(&p, 64, mode == GEMM_CONV_BWD_FILTER ? 3 : 1);
        if (mode == GEMM_CONV_BWD_FILTER) {
            ck_assert_int_eq(p.args.k, 288);
            ck_assert_int_eq(p.args.k_slice, 96);
            ck_assert_int_eq(p.args.splits, 3);
        }
        for (int kernel = 0; kernel < 3; kernel++) {
            p.mma = kernel > 0, p.async = kernel > 1;
            std::fill(room.begin(), room.end(), NAN); /* M is zeroed first, U and V written whole */
            y.assign(ny, NAN), dx.assign(nx, NAN), dw = dw0;
            ck_assert(emulate(p));
            char label[96];
            snprintf(label, sizeof label, "short round, %s, %s", names[mode - GEMM_CONV_FWD],
                     kernel == 0 ? "FP32" : kernel == 1 ? "3xTF32" : "pipelined");
            expect_close(label, mode == GEMM_CONV_FWD ? y : mode == GEMM_CONV_BWD_DATA ? dx : dw,
                         mode == GEMM_CONV_FWD ? y_ref : mode == GEMM_CONV_BWD_DATA ? dx_ref : dw_ref);
        }
    }
}
END_TEST

START_TEST(test_conv_nan_reach) {
    /* a NaN pixel of x (forward) or of dy (backward data) reaches exactly the outputs whose window
     * holds it, on every variant: Winograd's transforms skip their zero coefficients (an infinite
     * input there can still come out NaN, as inf - inf). The filter's gradient may reach the
     * other taps of a filter the NaN reaches, and only those: dy's NaN times the zero padding of
     * x, in the implicit GEMM's gathers as in Winograd's input tiles. */
    geometry q = {2, 5, 9, 10, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0};
    cvn_conv_desc d = describe(q);
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 51), w = random_floats(nw, 52),
                       dy = random_floats(ny, 53), y(ny), dx(nx), wt(nw);
    x[(((size_t)1 * d.c + 2) * d.h + 4) * d.w + 7] = NAN;
    dy[(((size_t)0 * d.o + 3) * d.oh + 0) * d.ow + 5] = NAN;
    std::vector<double> y_ref(ny), dx_ref(nx), dw_ref(nw);
    conv_references(d, x, w, dy, y_ref, dx_ref, dw_ref);
    size_t nan_y = 0, nan_dx = 0, nan_dw = 0;
    for (double v : y_ref) nan_y += std::isnan(v);
    for (double v : dx_ref) nan_dx += std::isnan(v);
    for (double v : dw_ref) nan_dw += std::isnan(v);
    ck_assert_uint_eq(nan_y, 9 * d.o); /* every out channel, 3 x 3 outputs */
    ck_assert_uint_eq(nan_dx, 6 * d.c); /* a border pixel of dy: 2 x 3 inputs */
    /* x's NaN: every tap of the out channels' filters of its channel; dy's (top row): 6 taps of
     * its out channel's filters, 3 of them the one already counted */
    ck_assert_uint_eq(nan_dw, 9 * d.o + 6 * (d.c - 1));
    gemm_plan p;
    /* F(4x4)'s transforms cancel exactly only in exact arithmetic: a NaN spreads over (part of)
     * its tile of 4 x 4 outputs, and no further; the filter's gradient's (widen_all) over (part of)
     * its 3 x 3 filter on every variant. So there the NaNs are the reference's, each widened to
     * its tile: elsewhere the values hold */
    auto check = [&](const char *l, std::vector<float> &got, const std::vector<double> &want,
                     int h, int w_, bool widen_all = false) {
        if (variant_wino != 4 && !widen_all) return expect_close(l, got, want);
        std::vector<double> widened = want;
        for (size_t i = 0; i < want.size(); i++) {
            if (!std::isnan(want[i])) continue;
            ck_assert_msg(std::isnan(got[i]), "%s: element %zu is not NaN", l, i);
            size_t plane = i / ((size_t)h * w_), yy = i / w_ % h, xx = i % w_;
            for (size_t r = yy / 4 * 4; r < yy / 4 * 4 + 4 && r < (size_t)h; r++)
                for (size_t c = xx / 4 * 4; c < xx / 4 * 4 + 4 && c < (size_t)w_; c++) {
                    size_t j = (plane * h + r) * w_ + c;
                    if (std::isnan(got[j])) widened[j] = NAN;
                }
        }
        expect_close(l, got, widened);
    };
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), x.data(), w.data(), NULL, NULL, false));
    each_variant(
        p, wt.data(), "NaN in x", ny, [&] { y.assign(ny, 0.0f); },
        [&](const char *l) { check(l, y, y_ref, d.oh, d.ow); });
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_DATA, &d, dx.data(), NULL, w.data(), dy.data(), NULL,
                        false));
    each_variant(
        p, wt.data(), "NaN in dy", nx, [&] { dx.assign(nx, 0.0f); },
        [&](const char *l) { check(l, dx, dx_ref, d.h, d.w); });
    std::vector<float> dw(nw);
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_FILTER, &d, dw.data(), x.data(), NULL, dy.data(), NULL,
                        false));
    each_variant(
        p, wt.data(), "NaN in x and dy", nw, [&] { dw.assign(nw, 0.0f); },
        [&](const char *l) { check(l, dw, dw_ref, 3, 3, true); });
}
END_TEST

static unsigned bits(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* p run on the FP32 kernel, then on tensor cores, then on tensor cores pipelined, each into y
 * (zeroed first) against want; the two tensor-core kernels give the same bits */
static void expect_each_kernel(const char *what, gemm_plan p, std::vector<float> &y,
                               const std::vector<double> &want) {
    std::vector<float> staged;
    for (int kernel = 0; kernel < 3; kernel++) {
        p.mma = kernel > 0, p.async = kernel == 2;
        std::fill(y.begin(), y.end(), 0.0f);
        ck_assert(emulate(p));
        const char *const kernels[3] = {"", ", 3xTF32", ", 3xTF32 pipelined"};
        std::string name = std::string(what) + kernels[kernel];
        expect_close(name.c_str(), y, want);
        if (kernel == 1) staged = y;
        for (size_t i = 0; kernel == 2 && i < y.size(); i++)
            ck_assert_msg(bits(y[i]) == bits(staged[i]), "%s: element %zu is %a, staged %a",
                          name.c_str(), i, (double)y[i], (double)staged[i]);
    }
}

START_TEST(test_conv_pool_nan) {
    /* a NaN pixel reaches every output under its window, and pooling keeps it (no activation,
     * which would turn it into NaN anyway: this is pooling's own rule) */
    cvn_conv_desc d = describe({2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0});
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 21), w = random_floats(nw, 22), bias(d.o, 0.5f);
    x[(size_t)1 * d.c * 64 + 2 * 64 + 4 * 8 + 6] = NAN; /* outputs 3-5 x 5-7: NaN after non-NaN */
    std::vector<double> y_ref(ny);
    each_product(d, [&](size_t xi, size_t wi, size_t yi) { y_ref[yi] += (double)x[xi] * w[wi]; });
    d.pool = 2;
    std::vector<float> y((size_t)d.n * d.o * 16);
    gemm_plan p;
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), x.data(), w.data(), NULL, bias.data(),
                        false));
    std::vector<double> want = pooled(d, y_ref, bias, [](double v) { return v; });
    int nans = 0;
    for (double v : want) nans += std::isnan(v);
    ck_assert_int_gt(nans, 0);
    expect_each_kernel("pooled NaN", p, y, want); /* tensor cores pool across two lanes */
}
END_TEST

START_TEST(test_conv_huge_values) {
    /* inputs up to the largest float, which the TF32 split of the tensor-core kernel must not
     * round to inf, and weights small enough that every output is finite; both kernels */
    cvn_conv_desc d = describe({2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0});
    auto [nx, nw, ny] = sizes_of(d);
    std::vector<float> x = random_floats(nx, 51), w = random_floats(nw, 52);
    for (float &v : x) v *= 0x1p127f;
    x[7] = FLT_MAX, x[40] = -FLT_MAX, x[41] = 0x1.fff8p127f; /* would round up to inf */
    for (float &v : w) v *= 0x1p-8f;
    std::vector<double> want(ny);
    each_product(d, [&](size_t xi, size_t wi, size_t yi) { want[yi] += (double)x[xi] * w[wi]; });
    for (double v : want) ck_assert(std::isfinite(v) && fabs(v) < FLT_MAX);
    std::vector<float> y(want.size());
    gemm_plan p;
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, y.data(), x.data(), w.data(), NULL, NULL, false));
    expect_each_kernel("huge values", p, y, want);
}
END_TEST

START_TEST(test_conv_plan) {
    cvn_conv_desc d = describe(geometries[5]);
    gemm_plan p;
    ck_assert(plan_conv(&p, GEMM_CONV_BWD_FILTER, &d, NULL, NULL, NULL, NULL, NULL, false));
    ck_assert_int_eq(p.args.m, 3);
    ck_assert_int_eq(p.args.n, 2 * 9);
    ck_assert_int_eq(p.args.k, 4 * 12 * 12);
    ck_assert_int_gt(p.args.splits, 1); /* the case above really ran split */
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, NULL, NULL, NULL, NULL, NULL, false));
    ck_assert_int_eq(p.args.splits, 1); /* the forward writes, so it never splits */
    /* pooling other than 2x2, or in a backward product, is declined */
    d.pool = 3;
    ck_assert(!plan_conv(&p, GEMM_CONV_FWD, &d, NULL, NULL, NULL, NULL, NULL, false));
    d.pool = 2;
    ck_assert(!plan_conv(&p, GEMM_CONV_BWD_DATA, &d, NULL, NULL, NULL, NULL, NULL, false));
    ck_assert(plan_conv(&p, GEMM_CONV_FWD, &d, NULL, NULL, NULL, NULL, NULL, false));
    ck_assert_int_eq(p.args.n, 4 * (6 * 6) * 4); /* images x 6x6 windows x 4 */
    d.pool = 0;
    /* sizes past the digits' range are declined */
    d.n = 1 << 20, d.h = d.w = 64, d.oh = d.ow = 64;
    ck_assert(!plan_conv(&p, GEMM_CONV_FWD, &d, NULL, NULL, NULL, NULL, NULL, false));
}
END_TEST

START_TEST(test_split_tf32) {
    float hi, lo;
    /* 1 + 2^-11 lies halfway between TF32's 1 and 1 + 2^-10: ties go away from zero */
    split_tf32(1.0f + 0x1p-11f, hi, lo);
    ck_assert_float_eq(hi, 1.0f + 0x1p-10f);
    ck_assert_float_eq(lo, -0x1p-11f);
    split_tf32(-1.0f - 0x1p-11f, hi, lo);
    ck_assert_float_eq(hi, -1.0f - 0x1p-10f);
    /* just below the tie rounds down; the rest is exact where it has at most 11 bits */
    split_tf32(1.0f + 0x1p-11f - 0x1p-21f, hi, lo);
    ck_assert_float_eq(hi, 1.0f);
    ck_assert_float_eq(lo, 0x1p-11f - 0x1p-21f);
    /* random values over many binades: hi + lo within 2^-22 |x| (lo's rounding), both TF32 */
    std::vector<float> v = random_floats(4096, 41);
    for (size_t i = 0; i < v.size(); i++) {
        float x = ldexpf(v[i], (int)(i % 200) - 100);
        split_tf32(x, hi, lo);
        ck_assert_uint_eq(bits(hi) & 0x1fffu, 0);
        ck_assert_uint_eq(bits(lo) & 0x1fffu, 0);
        ck_assert_msg(fabs((double)x - hi - lo) <= 0x1p-22 * fabs(x), "x = %a: %a + %a", x, hi, lo);
        ck_assert(fabsf(lo) <= 0x1p-11f * fabsf(x));
        /* the kernel's plain split, for what is not a special case, gives the same bits */
        float hp, lp;
        ck_assert(!tf32_special(x));
        split_tf32_plain(x, hp, lp);
        ck_assert_uint_eq(bits(hp), bits(hi));
        ck_assert_uint_eq(bits(lp), bits(lo));
    }
    /* the special cases: inf, NaN, 2^127 and up; not just below */
    for (float x : {INFINITY, -INFINITY, std::nanf(""), FLT_MAX, -0x1p127f, 0x1.fffp127f})
        ck_assert(tf32_special(x));
    ck_assert(!tf32_special(0x1.fffffep126f) && !tf32_special(-0x1p126f));
    /* signed zeros stay; inf and NaN stay in hi with lo 0; the largest float truncates */
    split_tf32(-0.0f, hi, lo);
    ck_assert(hi == 0.0f && std::signbit(hi) && lo == 0.0f);
    split_tf32(-INFINITY, hi, lo);
    ck_assert(hi == -INFINITY && lo == 0.0f);
    split_tf32(std::nanf(""), hi, lo);
    ck_assert(std::isnan(hi) && lo == 0.0f);
    float nan_low;
    unsigned u = 0x7f800001u; /* a NaN whose only payload bit the mask would drop */
    memcpy(&nan_low, &u, sizeof u);
    split_tf32(nan_low, hi, lo);
    ck_assert(std::isnan(hi));
    split_tf32(FLT_MAX, hi, lo);
    ck_assert(std::isfinite(hi) && hi + (double)lo <= FLT_MAX);
    ck_assert(fabs(FLT_MAX - (double)hi - lo) <= 0x1p-21 * FLT_MAX);
}
END_TEST

START_TEST(test_emulator_mma_layout) {
    /* one warp multiplies A (16 x 8, A[r][k] = r + 16 k) by B (8 x 8, B[k][c] = (3k + 5c) mod 7),
     * small integers, exact in TF32 and in the sums, each lane giving its fragments in PTX's
     * layout: D = C + A B with C[r][c] = 1000 r + c, every element where the layout puts it */
    static float d[32][4];
    ck_assert(emu::launch(dim3(1), dim3(32), [] {
        int lane = (int)threadIdx.x, g = lane / 4, t = lane % 4;
        auto A = [](int r, int k) { return (float)(r + 16 * k); };
        auto B = [](int k, int c) { return (float)((k * 3 + c * 5) % 7); };
        unsigned a[4] = {bits(A(g, t)), bits(A(g + 8, t)), bits(A(g, t + 4)),
                         bits(A(g + 8, t + 4))};
        unsigned b[2] = {bits(B(t, g)), bits(B(t + 4, g))};
        float acc[4];
        for (int q = 0; q < 4; q++) acc[q] = (float)(1000 * (g + q / 2 * 8) + 2 * t + q % 2);
        mma_tf32(acc, a, b);
        for (int q = 0; q < 4; q++) d[lane][q] = acc[q];
    }));
    for (int lane = 0; lane < 32; lane++)
        for (int q = 0; q < 4; q++) {
            int r = lane / 4 + q / 2 * 8, c = lane % 4 * 2 + q % 2;
            double want = 1000 * r + c;
            for (int k = 0; k < 8; k++) want += (double)(r + 16 * k) * ((k * 3 + c * 5) % 7);
            ck_assert_msg(d[lane][q] == want, "lane %d q %d: %g, expected %g", lane, q,
                          (double)d[lane][q], want);
        }
}
END_TEST

START_TEST(test_emulator_catches_divergent_barrier) {
    /* the emulator itself: a kernel where half the threads skip a barrier must fail */
    bool ok = emu::launch(dim3(1), dim3(64), [] {
        if (threadIdx.x < 32) __syncthreads();
    });
    ck_assert(!ok);
    /* shared memory is one array for the block: each thread reads what another one wrote */
    static int seen[64];
    ck_assert(emu::launch(dim3(2), dim3(64), [] {
        __shared__ float s[64];
        s[threadIdx.x] = (float)(threadIdx.x + 100 * blockIdx.x);
        __syncthreads();
        seen[threadIdx.x] = (int)s[63 - threadIdx.x];
    }));
    for (int i = 0; i < 64; i++) ck_assert_int_eq(seen[i], 163 - i);
    /* thread 0 returns at once (the others then run as plain calls), the rest meet a barrier */
    ck_assert(!emu::launch(dim3(1), dim3(64), [] {
        if (threadIdx.x > 0) __syncthreads();
    }));
}
END_TEST

START_TEST(test_emulator_warp_shuffles) {
    /* a tree sum over each warp of 64 threads, v += shfl_down(v, o) for o = 16, 8, 4, 2, 1: lane
     * 0 holds its warp's total; a lane whose source lies past the warp keeps its own value, so
     * lane 31's value doubles at every step */
    static float got[64];
    ck_assert(emu::launch(dim3(1), dim3(64), [] {
        float v = (float)threadIdx.x;
        for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
        got[threadIdx.x] = v;
    }));
    ck_assert_float_eq(got[0], 31 * 32 / 2);
    ck_assert_float_eq(got[32], 32 * 32 + 31 * 32 / 2);
    ck_assert_float_eq(got[31], 31 * 32);
    ck_assert_float_eq(got[30], 30 * 16 + 31 * 16); /* doubled four times, then lane 31 added */
    /* width 8: lanes read within their segment of 8 */
    static int seg[32];
    ck_assert(emu::launch(dim3(1), dim3(32), [] {
        seg[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 3, 8);
    }));
    for (int l = 0; l < 32; l++) ck_assert_int_eq(seg[l], l % 8 + 3 < 8 ? l + 3 : l);
    /* half a warp shuffling, or one warp shuffling while another waits at __syncthreads, fails */
    ck_assert(!emu::launch(dim3(1), dim3(32), [] {
        if (threadIdx.x < 16) (void)__shfl_down_sync(0xffffffffu, 1.0f, 1);
    }));
    ck_assert(!emu::launch(dim3(1), dim3(64), [] {
        if (threadIdx.x < 32) (void)__shfl_down_sync(0xffffffffu, 1.0f, 1);
        else __syncthreads();
    }));
}
END_TEST

START_TEST(test_emulator_async_copies) {
    /* cp.async lands at its thread's wait, group by group, not at issue or at a barrier: each of
     * 64 threads copies src[i] into s[i] (group 1) and src[64 + i] into s[64 + i] (group 2), and
     * an out-of-bounds copy zero-fills s[128 + i] (group 3) */
    static float src[128], seen[64][5];
    for (int i = 0; i < 128; i++) src[i] = (float)(i + 1);
    ck_assert(emu::launch(dim3(1), dim3(64), [] {
        __shared__ float s[192];
        int i = (int)threadIdx.x;
        s[i] = s[64 + i] = s[128 + i] = -1.0f;
        __syncthreads();
        cp_async4(&s[i], &src[i], true, src);
        cp_async_commit();
        cp_async4(&s[64 + i], &src[64 + i], true, src);
        cp_async_commit();
        cp_async4(&s[128 + i], NULL, false, src);
        cp_async_commit();
        __syncthreads();
        seen[i][0] = s[i]; /* after a barrier but before the wait: not there yet */
        cp_async_wait<2>();     /* the first group */
        seen[i][1] = s[i], seen[i][2] = s[64 + i];
        __syncthreads();
        cp_async_wait<0>(); /* all */
        seen[i][3] = s[64 + i], seen[i][4] = s[128 + i];
    }));
    for (int i = 0; i < 64; i++) {
        ck_assert_float_eq(seen[i][0], -1.0f);
        ck_assert_float_eq(seen[i][1], (float)(i + 1));
        ck_assert_float_eq(seen[i][2], -1.0f);
        ck_assert_float_eq(seen[i][3], (float)(65 + i));
        ck_assert_float_eq(seen[i][4], 0.0f);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_emu");
    TCase *tc = tcase_create("tiled_gemm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_emulator_catches_divergent_barrier);
    tcase_add_test(tc, test_emulator_warp_shuffles);
    tcase_add_test(tc, test_emulator_mma_layout);
    tcase_add_test(tc, test_emulator_async_copies);
    tcase_add_test(tc, test_split_tf32);
    tcase_add_test(tc, test_matrix_transposes);
    tcase_add_test(tc, test_matrix_split_k);
    tcase_add_test(tc, test_matrix_plan_tiles);
    tcase_add_test(tc, test_lean_pick);
    tcase_add_test(tc, test_conv_tuning);
    tcase_add_test(tc, test_conv_winograd_tuning);
    tcase_add_test(tc, test_conv_winograd_short_round);
    tcase_add_loop_test(tc, test_conv_geometries, 0, (int)(sizeof geometries / sizeof *geometries));
    tcase_add_test(tc, test_conv_pool_nan);
    tcase_add_test(tc, test_conv_nan_reach);
    tcase_add_test(tc, test_conv_huge_values);
    tcase_add_test(tc, test_conv_plan);
    suite_add_tcase(s, tc);
    return check_run(s, true) ? 1 : 0;
}
