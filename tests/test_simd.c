/* The AVX-512, AVX2 and scalar kernel tables agree on odd sizes and tails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cpu/cpu.h"

static const char *const variants[] = {"avx512", "avx2", "scalar"};

static float *random_buf(int64_t n, uint64_t seed, float scale) {
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = scale * cvn_rng_normal(&r);
    return p;
}

static void expect_same(const char *what, const char *variant, int64_t n, const float *got,
                        const float *want, float rtol) {
    for (int64_t i = 0; i < n; i++) { /* a check per element would be a system call each */
        float err = fabsf(got[i] - want[i]);
        if (!(err <= rtol * (1.0f + fabsf(want[i]))))
            ck_abort_msg("%s (%s, n=%lld) [%lld]: %.8g vs %.8g", what, variant, (long long)n,
                         (long long)i, (double)got[i], (double)want[i]);
    }
}

static const int64_t sizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1001};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

START_TEST(test_activations_agree) {
    const cvn_backend *ref = cvn_cpu_backend_variant("scalar");
    for (int v = 0; v < 2; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue; /* this CPU lacks the instruction set */
        for (int s = 0; s < N_SIZES; s++) {
            int64_t n = sizes[s];
            float *x = random_buf(n, 7 + (uint64_t)n, 4.0f), *dy = random_buf(n, 9, 1.0f);
            float *y1 = calloc((size_t)n, 4), *y2 = calloc((size_t)n, 4);
            float *d1 = calloc((size_t)n, 4), *d2 = calloc((size_t)n, 4);
            for (int k = CVN_K_RELU; k <= CVN_K_HARDSIGMOID; k++) {
                be->act_fwd(k, 0.1f, n, y1, x);
                ref->act_fwd(k, 0.1f, n, y2, x);
                expect_same("act_fwd", variants[v], n, y1, y2, 1e-6f);
                memset(d1, 0, (size_t)n * 4), memset(d2, 0, (size_t)n * 4);
                be->act_bwd(k, 0.1f, n, d1, dy, x, y1, true);
                ref->act_bwd(k, 0.1f, n, d2, dy, x, y2, true);
                expect_same("act_bwd", variants[v], n, d1, d2, 1e-6f);
                for (int64_t i = 0; i < n; i++) d1[i] = NAN; /* not add: old contents unread */
                be->act_bwd(k, 0.1f, n, d1, dy, x, y1, false);
                expect_same("act_bwd overwrite", variants[v], n, d1, d2, 1e-6f);
                be->act_bwd(k, 0.1f, n, d1, dy, x, y1, true); /* add: twice the gradient */
                ref->act_bwd(k, 0.1f, n, d2, dy, x, y2, true);
                expect_same("act_bwd add", variants[v], n, d1, d2, 1e-6f);
            }
            free(x), free(dy), free(y1), free(y2), free(d1), free(d2);
        }
    }
}
END_TEST

START_TEST(test_elementwise_agree) {
    const cvn_backend *ref = cvn_cpu_backend_variant("scalar");
    for (int v = 0; v < 2; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        for (int s = 0; s < N_SIZES; s++) {
            int64_t n = sizes[s];
            float *a = random_buf(n, 1, 1.0f), *b = random_buf(n, 2, 1.0f);
            for (int64_t i = 0; i < n; i++) b[i] += b[i] >= 0 ? 0.5f : -0.5f;
            float *o1 = calloc((size_t)n, 4), *o2 = calloc((size_t)n, 4);
            int64_t st[1] = {1};
            for (int op = CVN_BIN_ADD; op <= CVN_BIN_DIV; op++) {
                be->binary(op, 1, &n, o1, a, st, b, st);
                ref->binary(op, 1, &n, o2, a, st, b, st);
                expect_same("binary", variants[v], n, o1, o2, 1e-6f);
                for (int which = 0; which < 2; which++) {
                    memset(o1, 0, (size_t)n * 4), memset(o2, 0, (size_t)n * 4);
                    be->binary_bwd(op, which, 1, &n, o1, st, a, a, st, b, st, NULL, true);
                    ref->binary_bwd(op, which, 1, &n, o2, st, a, a, st, b, st, NULL, true);
                    expect_same("binary_bwd", variants[v], n, o1, o2, 1e-6f);
                }
            }
            be->affine(n, o1, a, 1.5f, -2.0f);
            ref->affine(n, o2, a, 1.5f, -2.0f);
            expect_same("affine", variants[v], n, o1, o2, 1e-6f);
            ck_assert_msg(fabs(be->sum(n, a) - ref->sum(n, a)) < 1e-4, "sum n=%lld", (long long)n);
            /* softmax and cross-entropy rows of odd width */
            be->softmax_fwd(false, 1, n, 1, o1, a);
            ref->softmax_fwd(false, 1, n, 1, o2, a);
            expect_same("softmax", variants[v], n, o1, o2, 1e-6f);
            be->softmax_fwd(true, 1, n, 1, o1, a);
            ref->softmax_fwd(true, 1, n, 1, o2, a);
            expect_same("log_softmax", variants[v], n, o1, o2, 1e-6f);
            int32_t tg = (int32_t)(n / 2);
            float l1, l2;
            be->xent_fwd(1, n, &l1, o1, a, &tg, 0.1f);
            ref->xent_fwd(1, n, &l2, o2, a, &tg, 0.1f);
            ck_assert_msg(fabsf(l1 - l2) <= 1e-6f * (1 + fabsf(l2)), "xent n=%lld", (long long)n);
            be->bce_fwd(n, &l1, a, o2);
            ref->bce_fwd(n, &l2, a, o2);
            ck_assert_msg(fabsf(l1 - l2) <= 1e-6f * (1 + fabsf(l2)), "bce n=%lld", (long long)n);
            free(a), free(b), free(o1), free(o2);
        }
    }
}
END_TEST

/* Broadcasting arithmetic and reductions on a [rows, cols] shape with operands walked per row,
 * per column, as a whole or transposed (the per-lane path), every variant against a plain loop
 * over flat indices; 300 x 131 elements, so the threaded paths run. */
static int64_t at(int64_t i, int64_t cols, const int64_t *s) {
    return i / cols * s[0] + i % cols * s[1];
}

START_TEST(test_broadcast_rows) {
    enum { ROWS = 300, COLS = 131, N = ROWS * COLS };
    const int64_t shape[2] = {ROWS, COLS};
    /* whole, per row, per column, transposed */
    const int64_t layouts[4][2] = {{COLS, 1}, {1, 0}, {0, 1}, {1, ROWS}};
    float *a = random_buf(N, 3, 1.0f), *b = random_buf(N, 4, 1.0f), *g = random_buf(N, 5, 1.0f);
    for (int64_t i = 0; i < N; i++) b[i] += b[i] >= 0 ? 0.5f : -0.5f;
    float *got = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
    for (int v = 0; v < 3; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        for (int la = 0; la < 4; la++)
            for (int lb = 0; lb < 4; lb++)
                for (int op = CVN_BIN_ADD; op <= CVN_BIN_DIV; op++) {
                    const int64_t *sa = layouts[la], *sb = layouts[lb];
                    be->binary(op, 2, shape, got, a, sa, b, sb);
                    for (int64_t i = 0; i < N; i++) {
                        float x = a[at(i, COLS, sa)], y = b[at(i, COLS, sb)];
                        want[i] = op == CVN_BIN_ADD   ? x + y
                                  : op == CVN_BIN_SUB ? x - y
                                  : op == CVN_BIN_MUL ? x * y
                                                      : x / y;
                    }
                    expect_same("binary rows", variants[v], N, got, want, 1e-6f);
                    /* the gradients toward a and b, into a dx laid out whole or transposed,
                     * written (old contents NaN) then added */
                    for (int k = 0; k < 4; k++) {
                        int which = k % 2;
                        const int64_t *sx = layouts[k < 2 ? 0 : 3];
                        for (int64_t i = 0; i < N; i++) got[i] = NAN;
                        be->binary_bwd(op, which, 2, shape, got, sx, g, a, sa, b, sb, NULL, false);
                        be->binary_bwd(op, which, 2, shape, got, sx, g, a, sa, b, sb, NULL, true);
                        for (int64_t i = 0; i < N; i++) {
                            float x = a[at(i, COLS, sa)], y = b[at(i, COLS, sb)], d;
                            if (op == CVN_BIN_ADD)
                                d = g[i];
                            else if (op == CVN_BIN_SUB)
                                d = which ? -g[i] : g[i];
                            else if (op == CVN_BIN_MUL)
                                d = which ? g[i] * x : g[i] * y;
                            else
                                d = which ? -g[i] * x / (y * y) : g[i] / y;
                            want[at(i, COLS, sx)] = 2.0f * d;
                        }
                        expect_same("binary_bwd rows", variants[v], N, got, want, 1e-6f);
                    }
                }
        /* sums onto rows (the threaded path), columns (one thread) and one element */
        static const int64_t sums[3][2] = {{1, 0}, {0, 1}, {0, 0}};
        for (int lo = 0; lo < 3; lo++) {
            const int64_t *so = sums[lo];
            float out[ROWS], ref[ROWS];
            int64_t m = lo == 0 ? ROWS : lo == 1 ? COLS : 1;
            for (int64_t j = 0; j < m; j++) out[j] = 1.0f, ref[j] = 1.0f;
            be->reduce_to(2, shape, out, so, g, 0.5f);
            double acc[ROWS] = {0};
            for (int64_t i = 0; i < N; i++) acc[at(i, COLS, so)] += g[i];
            for (int64_t j = 0; j < m; j++) ref[j] += 0.5f * (float)acc[j];
            expect_same("reduce_to", variants[v], m, out, ref, 1e-5f);
        }
    }
    free(a), free(b), free(g), free(got), free(want);
}
END_TEST

START_TEST(test_batchnorm_agree) {
    const cvn_backend *ref = cvn_cpu_backend_variant("scalar");
    int64_t n = 3, c = 5, hw = 13; /* hw not a multiple of any vector width */
    int64_t total = n * c * hw;
    float *x = random_buf(total, 3, 2.0f), *dy = random_buf(total, 4, 1.0f);
    float *gamma = random_buf(c, 5, 1.0f), *beta = random_buf(c, 6, 1.0f);
    for (int v = 0; v < 2; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        float m1[5], v1[5], m2[5], v2[5], is[5];
        be->bn_stats(n, c, hw, m1, v1, x);
        ref->bn_stats(n, c, hw, m2, v2, x);
        expect_same("bn mean", variants[v], c, m1, m2, 1e-6f);
        expect_same("bn var", variants[v], c, v1, v2, 1e-6f);
        for (int i = 0; i < c; i++) is[i] = 1.0f / sqrtf(v2[i] + 1e-5f);
        float *y1 = calloc((size_t)total, 4), *y2 = calloc((size_t)total, 4);
        be->bn_fwd(n, c, hw, y1, x, m2, is, gamma, beta);
        ref->bn_fwd(n, c, hw, y2, x, m2, is, gamma, beta);
        expect_same("bn_fwd", variants[v], total, y1, y2, 1e-6f);
        float dg1[5] = {0}, db1[5] = {0}, dg2[5] = {0}, db2[5] = {0};
        memset(y1, 0, (size_t)total * 4), memset(y2, 0, (size_t)total * 4);
        be->bn_bwd(true, n, c, hw, y1, dg1, db1, dy, x, m2, is, gamma);
        ref->bn_bwd(true, n, c, hw, y2, dg2, db2, dy, x, m2, is, gamma);
        expect_same("bn_bwd dx", variants[v], total, y1, y2, 1e-5f);
        expect_same("bn_bwd dgamma", variants[v], c, dg1, dg2, 1e-5f);
        expect_same("bn_bwd dbeta", variants[v], c, db1, db2, 1e-5f);
        free(y1), free(y2);
    }
    free(x), free(dy), free(gamma), free(beta);
}
END_TEST

START_TEST(test_window_ops_agree) {
    const cvn_backend *ref = cvn_cpu_backend_variant("scalar");
    cvn_window w = {.c = 3,
                    .h = 9,
                    .w = 11,
                    .kh = 3,
                    .kw = 3,
                    .sh = 2,
                    .sw = 1,
                    .ph = 1,
                    .pw = 2,
                    .dh = 1,
                    .dw = 2};
    w.oh = (w.h + 2 * w.ph - w.dh * (w.kh - 1) - 1) / w.sh + 1;
    w.ow = (w.w + 2 * w.pw - w.dw * (w.kw - 1) - 1) / w.sw + 1;
    int64_t img = (int64_t)w.c * w.h * w.w, rows = (int64_t)w.c * w.kh * w.kw, osz = w.oh * w.ow;
    float *x = random_buf(2 * img, 8, 1.0f);
    for (int v = 0; v < 2; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        float *c1 = calloc((size_t)(rows * 2 * osz), 4), *c2 = calloc((size_t)(rows * 2 * osz), 4);
        be->im2col(&w, c1, 2 * osz, x, img, 2);
        ref->im2col(&w, c2, 2 * osz, x, img, 2);
        expect_same("im2col", variants[v], rows * 2 * osz, c1, c2, 0);
        float *i1 = calloc((size_t)(2 * img), 4), *i2 = calloc((size_t)(2 * img), 4);
        be->col2im(&w, i1, img, c1, 2 * osz, 2);
        ref->col2im(&w, i2, img, c2, 2 * osz, 2);
        expect_same("col2im", variants[v], 2 * img, i1, i2, 1e-6f);
        free(c1), free(c2), free(i1), free(i2);
    }
    free(x);
}
END_TEST

START_TEST(test_pool_dropout_agree) {
    const cvn_backend *ref = cvn_cpu_backend_variant("scalar");
    cvn_window w = {.c = 1,
                    .h = 13,
                    .w = 9,
                    .kh = 3,
                    .kw = 3,
                    .sh = 2,
                    .sw = 2,
                    .ph = 1,
                    .pw = 1,
                    .dh = 1,
                    .dw = 1};
    w.oh = (w.h + 2 - 3) / 2 + 1;
    w.ow = (w.w + 2 - 3) / 2 + 1;
    int64_t planes = 5, in_n = planes * w.h * w.w, out_n = planes * w.oh * w.ow;
    float *x = random_buf(in_n, 11, 1.0f), *dy = random_buf(out_n, 12, 1.0f);
    float *y1 = calloc((size_t)out_n, 4), *y2 = calloc((size_t)out_n, 4);
    float *d1 = calloc((size_t)in_n, 4), *d2 = calloc((size_t)in_n, 4);
    int32_t *a1 = calloc((size_t)out_n, 4), *a2 = calloc((size_t)out_n, 4);
    uint8_t *m1 = calloc((size_t)in_n, 1), *m2 = calloc((size_t)in_n, 1);
    for (int v = 0; v < 2; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        be->maxpool_fwd(&w, planes, y1, a1, x);
        ref->maxpool_fwd(&w, planes, y2, a2, x);
        expect_same("maxpool_fwd", variants[v], out_n, y1, y2, 0);
        ck_assert(memcmp(a1, a2, (size_t)out_n * 4) == 0);
        memset(d1, 0, (size_t)in_n * 4), memset(d2, 0, (size_t)in_n * 4);
        be->maxpool_bwd(&w, planes, d1, dy, a1, true);
        ref->maxpool_bwd(&w, planes, d2, dy, a2, true);
        expect_same("maxpool_bwd", variants[v], in_n, d1, d2, 0);
        for (int64_t i = 0; i < in_n; i++) d1[i] = NAN; /* not add: every element written */
        be->maxpool_bwd(&w, planes, d1, dy, a1, false);
        expect_same("maxpool_bwd overwrite", variants[v], in_n, d1, d2, 0);
        be->avgpool_fwd(&w, planes, y1, x);
        ref->avgpool_fwd(&w, planes, y2, x);
        expect_same("avgpool_fwd", variants[v], out_n, y1, y2, 1e-6f);
        be->dropout_fwd(in_n, d1, m1, x, 0.4f, 99);
        ref->dropout_fwd(in_n, d2, m2, x, 0.4f, 99);
        expect_same("dropout_fwd", variants[v], in_n, d1, d2, 0);
        ck_assert(memcmp(m1, m2, (size_t)in_n) == 0);
    }
    free(x), free(dy), free(y1), free(y2), free(d1), free(d2), free(a1), free(a2), free(m1),
        free(m2);
}
END_TEST

/* The 2x2 stride-2 max-pool fast path against a plain scan, on odd sizes, with ties and a NaN. */
START_TEST(test_maxpool2x2_fast_path) {
    cvn_window w = {.c = 1, .h = 9, .w = 37, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .dh = 1, .dw = 1};
    w.oh = 4, w.ow = 18;
    int64_t planes = 3, in_n = planes * w.h * w.w, out_n = planes * w.oh * w.ow;
    float *x = random_buf(in_n, 21, 1.0f);
    for (int64_t i = 0; i < in_n; i += 7) x[i] = 0.5f; /* ties */
    x[40] = NAN;
    float *want = calloc((size_t)out_n, 4), *got = calloc((size_t)out_n, 4);
    int32_t *want_at = calloc((size_t)out_n, 4), *got_at = calloc((size_t)out_n, 4);
    for (int64_t p = 0; p < planes; p++)
        for (int oy = 0; oy < w.oh; oy++)
            for (int ox = 0; ox < w.ow; ox++) {
                const float *in = x + p * w.h * w.w;
                float best = 0;
                int32_t at = -1;
                for (int ki = 0; ki < 2; ki++)
                    for (int kj = 0; kj < 2; kj++) {
                        int32_t i = (2 * oy + ki) * w.w + 2 * ox + kj;
                        if (at < 0 || in[i] > best || isnan(in[i])) best = in[i], at = i;
                    }
                want[(p * w.oh + oy) * w.ow + ox] = best;
                want_at[(p * w.oh + oy) * w.ow + ox] = at;
            }
    for (int v = 0; v < 3; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        be->maxpool_fwd(&w, planes, got, got_at, x);
        ck_assert_msg(memcmp(got_at, want_at, (size_t)out_n * 4) == 0, "argmax differs (%s)",
                      variants[v]);
        for (int64_t i = 0; i < out_n; i++)
            ck_assert_msg(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])),
                          "%s [%lld]: %g vs %g", variants[v], (long long)i, (double)got[i],
                          (double)want[i]);
    }
    free(x), free(want), free(got), free(want_at), free(got_at);
}
END_TEST

/* GELU's vector normal CDF against double-precision erfc over [-14, 14]. */
/* An epilogue (activation, then 2x2 max pooling) on a forward: the activation in double. */
typedef struct {
    bool act_on;
    cvn_act_kind act;
    float alpha;
    int pool;
} epilogue;
static const epilogue epis[] = {{true, CVN_K_RELU, 0, 0},          {true, CVN_K_RELU, 0, 2},
                                {true, CVN_K_LEAKY_RELU, 0.1f, 2}, {true, CVN_K_SIGMOID, 0, 2},
                                {false, CVN_K_RELU, 0, 2},         {true, CVN_K_TANH, 0, 0}};

static const epilogue nan_epis[] = {{false, CVN_K_RELU, 0, 2}, {true, CVN_K_RELU, 0, 2}};

static double act_ref(const epilogue *e, double v) {
    if (!e->act_on) return v;
    switch (e->act) {
    case CVN_K_RELU:
        return v > 0 ? v : 0;
    case CVN_K_LEAKY_RELU:
        return v > 0 ? v : e->alpha * v;
    case CVN_K_SIGMOID:
        return 1 / (1 + exp(-v));
    default:
        return tanh(v);
    }
}

/* The forward of d with epilogue e against act_ref of conv (want, with bias b) pooled 2x2 with
 * floor sizes; the output must be written whole (NaN before) and nothing past it. Pooling is
 * declined on planes under 2x2 and by the scalar build, and pools other than 2 always. */
static void check_conv_epilogue(const cvn_backend *be, const char *variant, size_t si,
                                const cvn_conv_desc *d0, const epilogue *e, float *got, int64_t ny,
                                const float *want, const float *x, const float *wt,
                                const float *b) {
    cvn_conv_desc d = *d0;
    d.act_on = e->act_on, d.act = e->act, d.alpha = e->alpha, d.pool = 3;
    ck_assert_int_eq(be->conv2d_work(&d, false), 0);
    d.pool = e->pool;
    d.work_floats = be->conv2d_work(&d, false);
    d.work = malloc((size_t)d.work_floats * 4);
    for (int64_t i = 0; i < ny; i++) got[i] = NAN;
    const int h = d.h, w = d.w, k = e->pool ? 2 : 1, oh = h / k, ow = w / k;
    const bool ok = be->conv2d_fwd(&d, got, x, wt, b);
    free(d.work);
    if (e->pool && (h < 2 || w < 2 || !strcmp(variant, "scalar"))) {
        ck_assert(!ok); /* pooling pairs lanes: not in one-lane vectors */
        return;
    }
    ck_assert(ok);
    const int64_t n_out = (int64_t)d.n * d.o * oh * ow;
    for (int64_t i = 0; i < n_out; i++) {
        const int64_t pl = i / ((int64_t)oh * ow), oy = i / ow % oh, ox = i % ow;
        double ref = -INFINITY;
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++) {
                double v = act_ref(e, want[(pl * h + oy * k + dy) * w + ox * k + dx]);
                ref = v > ref || isnan(v) ? v : ref; /* NaN wins, as in PyTorch */
            }
        ck_assert_msg(isnan(ref) ? isnan(got[i]) : fabs(got[i] - ref) <= 1e-4 * (1 + fabs(ref)),
                      "conv3x3 epilogue %d/%d/%d %s shape %zu [%lld]: %.7g vs %.7g", (int)e->act_on,
                      (int)e->act, e->pool, variant, si, (long long)i, (double)got[i], ref);
    }
    for (int64_t i = n_out; i < ny; i++) ck_assert(isnan(got[i]));
}

/* The direct 3x3 convolution of every variant against a plain loop in double precision, on
 * shapes with column, row and channel-block tails (and widths of one to three vectors): the
 * forward, and the backward's dw and db (accumulated onto what is there) when the input needs no
 * gradient. Other geometries, a missing scratch buffer and a wanted dx are declined. */
START_TEST(test_direct_conv3x3) {
    static const int shapes[][5] = {/* n, c, o, h, w */
                                    {1, 1, 1, 1, 1},
                                    {2, 1, 32, 28, 28},
                                    {1, 3, 5, 7, 14},
                                    {3, 2, 8, 14, 16},
                                    {1, 4, 6, 5, 17},
                                    {1, 5, 9, 9, 33},
                                    {2, 3, 4, 4, 8},
                                    {1, 2, 3, 6, 3},
                                    {5, 16, 7, 30, 30}, /* dw in blocks of images */
                                    /* 8 or more input channels: channel-lane tiles (AVX-512) */
                                    {2, 9, 37, 5, 9},
                                    {1, 12, 20, 3, 3},
                                    {2, 32, 64, 14, 14},
                                    /* 16 or more input and output channels: pixel tiles (AVX2),
                                     * which wrap rows, with a channel block and a pixel tail */
                                    {2, 16, 20, 5, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int n = shapes[si][0], c = shapes[si][1], o = shapes[si][2], h = shapes[si][3],
            w = shapes[si][4];
        int64_t nx = (int64_t)n * c * h * w, ny = (int64_t)n * o * h * w, nw = (int64_t)o * c * 9;
        float *x = random_buf(nx, 11 + si, 1.0f), *wt = random_buf(nw, 13 + si, 0.5f),
              *b = random_buf(o, 17 + si, 1.0f), *want = malloc((size_t)ny * 4),
              *got = malloc((size_t)ny * 4);
        float *dy = random_buf(ny, 19 + si, 1.0f), *dw = malloc((size_t)nw * 4),
              *db = malloc((size_t)o * 4);
        double *dw_want = calloc((size_t)nw, sizeof(double)), *db_want = calloc((size_t)o, 8),
               *dx_want = calloc((size_t)nx, sizeof(double)),
               *dw_mag = calloc((size_t)nw, sizeof(double)); /* sum of |terms| */
        float *dx = malloc((size_t)nx * 4);
        for (int i = 0; i < n; i++)
            for (int oc = 0; oc < o; oc++)
                for (int yy = 0; yy < h; yy++)
                    for (int xx = 0; xx < w; xx++) {
                        double g = dy[((i * o + oc) * h + yy) * w + xx];
                        db_want[oc] += g;
                        for (int ic = 0; ic < c; ic++)
                            for (int t = 0; t < 9; t++) {
                                int iy = yy + t / 3 - 1, ix = xx + t % 3 - 1;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                dw_want[(oc * c + ic) * 9 + t] +=
                                    g * x[((i * c + ic) * h + iy) * w + ix];
                                dw_mag[(oc * c + ic) * 9 + t] +=
                                    fabs(g * x[((i * c + ic) * h + iy) * w + ix]);
                                dx_want[((i * c + ic) * h + iy) * w + ix] +=
                                    g * wt[(oc * c + ic) * 9 + t];
                            }
                    }
        for (int i = 0; i < n; i++)
            for (int oc = 0; oc < o; oc++)
                for (int yy = 0; yy < h; yy++)
                    for (int xx = 0; xx < w; xx++) {
                        double acc = b[oc];
                        for (int ic = 0; ic < c; ic++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++) {
                                    int iy = yy + ky - 1, ix = xx + kx - 1;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    acc += (double)x[((i * c + ic) * h + iy) * w + ix] *
                                           wt[((oc * c + ic) * 3 + ky) * 3 + kx];
                                }
                        want[((i * o + oc) * h + yy) * w + xx] = (float)acc;
                    }
        cvn_conv_desc d = {.n = n,
                           .c = c,
                           .h = h,
                           .w = w,
                           .o = o,
                           .kh = 3,
                           .kw = 3,
                           .oh = h,
                           .ow = w,
                           .sh = 1,
                           .sw = 1,
                           .ph = 1,
                           .pw = 1,
                           .dh = 1,
                           .dw = 1,
                           .groups = 1};
        for (int v = 0; v < 3; v++) {
            const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
            if (!be) continue;
            d.work = NULL, d.work_floats = 0;
            ck_assert(!be->conv2d_fwd(&d, got, x, wt, b)); /* no scratch: declined */
            d.work_floats = be->conv2d_work(&d, false);
            d.work = malloc((size_t)d.work_floats * 4);
            for (int withb = 0; withb < 2; withb++) {
                for (int64_t i = 0; i < ny; i++) got[i] = NAN; /* every output must be written */
                ck_assert(be->conv2d_fwd(&d, got, x, wt, withb ? b : NULL));
                for (int64_t i = 0; i < ny; i++) {
                    float ref = want[i] - (withb ? 0.0f : b[(i / ((int64_t)h * w)) % o]);
                    ck_assert_msg(fabsf(got[i] - ref) <= 1e-4f * (1.0f + fabsf(ref)),
                                  "conv3x3 %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                                  (long long)i, (double)got[i], (double)ref);
                }
            }
            free(d.work);
            for (size_t ei = 0; ei < sizeof epis / sizeof epis[0]; ei++)
                check_conv_epilogue(be, variants[v], si, &d, &epis[ei], got, ny, want, x, wt, b);
            /* a NaN input pixel: NaN in every output whose window holds it, through pooling
             * (ReLU turns it into 0, as the unfused kernel does) */
            float *xn = malloc((size_t)nx * 4), *wn = malloc((size_t)ny * 4);
            memcpy(xn, x, (size_t)nx * 4), memcpy(wn, want, (size_t)ny * 4);
            const int cy = h / 2, cx = w / 2;
            xn[(int64_t)cy * w + cx] = NAN; /* image 0, channel 0 */
            for (int oc = 0; oc < o; oc++)
                for (int yy = cy - 1; yy <= cy + 1; yy++)
                    for (int xx = cx - 1; xx <= cx + 1; xx++)
                        if (yy >= 0 && yy < h && xx >= 0 && xx < w)
                            wn[((int64_t)oc * h + yy) * w + xx] = NAN;
            for (size_t ei = 0; ei < 2; ei++)
                check_conv_epilogue(be, variants[v], si, &d, &nan_epis[ei], got, ny, wn, xn, wt, b);
            free(xn), free(wn);
            d.work_floats = be->conv2d_work(&d, true);
            d.work = malloc((size_t)d.work_floats * 4);
            /* all three gradients, accumulated onto what the buffers hold */
            for (int64_t i = 0; i < nx; i++) dx[i] = 0.75f;
            for (int64_t i = 0; i < nw; i++) dw[i] = 0.25f;
            for (int i = 0; i < o; i++) db[i] = -0.5f;
            ck_assert(be->conv2d_bwd(&d, dx, dw, db, dy, x, wt, true));
            for (int64_t i = 0; i < nx; i++)
                ck_assert_msg(fabs(dx[i] - (dx_want[i] + 0.75)) <= 1e-4 * (1 + fabs(dx_want[i])),
                              "conv3x3 dx %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                              (long long)i, (double)dx[i], dx_want[i] + 0.75);
            /* a weight's gradient is a float sum of n * h * w terms (4500 for shape 8), which
             * rounds to about 1e-6 of their magnitude in any order */
            for (int64_t i = 0; i < nw; i++)
                ck_assert_msg(fabs(dw[i] - (dw_want[i] + 0.25)) <=
                                  1e-4 * (1 + fabs(dw_want[i])) + 1e-6 * dw_mag[i],
                              "conv3x3 dw %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                              (long long)i, (double)dw[i], dw_want[i] + 0.25);
            for (int i = 0; i < o; i++)
                ck_assert(fabs(db[i] - (db_want[i] - 0.5)) <= 1e-4 * (1 + fabs(db_want[i])));
            /* a first layer: dw only (dx and db untouched) */
            ck_assert(be->conv2d_bwd(&d, NULL, dw, NULL, dy, x, wt, true));
            for (int64_t i = 0; i < nw; i++)
                ck_assert(fabs(dw[i] - (2 * dw_want[i] + 0.25)) <=
                          2e-4 * (1 + fabs(dw_want[i])) + 2e-6 * dw_mag[i]);
            for (int i = 0; i < o; i++)
                ck_assert(fabs(db[i] - (db_want[i] - 0.5)) <= 1e-4 * (1 + fabs(db_want[i])));
            for (int64_t i = 0; i < nx; i++) dx[i] = NAN; /* dx overwritten, not added to */
            ck_assert(be->conv2d_bwd(&d, dx, NULL, NULL, dy, x, wt, false));
            for (int64_t i = 0; i < nx; i++)
                ck_assert_msg(fabs(dx[i] - dx_want[i]) <= 1e-4 * (1 + fabs(dx_want[i])),
                              "conv3x3 dx overwrite %s shape %zu [%lld]: %.7g vs %.7g", variants[v],
                              si, (long long)i, (double)dx[i], dx_want[i]);
            d.work_floats--; /* too little scratch: declined, nothing written */
            ck_assert(!be->conv2d_bwd(&d, dx, dw, db, dy, x, wt, true));
            d.work_floats++;
            cvn_conv_desc other = d;
            other.sh = 2, other.oh = (h + 1) / 2;
            ck_assert(!be->conv2d_fwd(&other, got, x, wt, b)); /* stride 2: im2col's */
            other = d, other.ph = 0, other.oh = h - 2, other.ow = w - 2;
            ck_assert(!be->conv2d_fwd(&other, got, x, wt, b));
            other = d, other.groups = 2;
            ck_assert(!be->conv2d_fwd(&other, got, x, wt, b));
            ck_assert_int_eq(be->conv2d_work(&other, false), 0);
            free(d.work);
        }
        free(x), free(wt), free(b), free(want), free(got), free(dy), free(dw), free(db), free(dx);
        free(dw_want), free(db_want), free(dx_want), free(dw_mag);
    }
}
END_TEST

/* Every variant's GEMM against a double loop: products with one to four rows of A and B
 * transposed (a linear layer at batch 1 to 4: the backend's own kernel, threads splitting B's
 * rows), with 5 to 64 rows and enough work (the packed panel kernel) and others (OpenBLAS), with
 * padded leading dimensions, tails in k and n, alpha and beta. beta = 0 must not read C (NaN there
 * stays unseen). */
/* The depthwise convolution of every variant against plain loops in double precision: kernels
 * 3, 5 and 7, strides 1 and 2, paddings from none to (k - 1) / 2, widths with and without vector
 * tails; the forward (with and without bias and a ReLU epilogue, over NaN), dx overwritten and
 * added to, dw and db added to. Pooling epilogues are declined. */
START_TEST(test_depthwise_conv) {
    static const int shapes[][7] = {/* n, c, h, w, k, stride, pad */
                                    {2, 3, 7, 9, 3, 1, 1},   {1, 4, 8, 8, 3, 2, 1},
                                    {2, 5, 9, 7, 5, 1, 2},   {1, 3, 11, 10, 5, 2, 2},
                                    {1, 2, 5, 5, 3, 2, 0},   {1, 16, 14, 14, 3, 2, 1},
                                    {1, 3, 1, 1, 3, 1, 1},   {2, 8, 6, 13, 7, 2, 3},
                                    {1, 2, 20, 19, 3, 1, 0}, {3, 6, 17, 33, 5, 2, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], c = shapes[si][1], h = shapes[si][2], w = shapes[si][3],
                  k = shapes[si][4], st = shapes[si][5], pd = shapes[si][6];
        const int oh = (h + 2 * pd - k) / st + 1, ow = (w + 2 * pd - k) / st + 1;
        const int64_t nx = (int64_t)n * c * h * w, ny = (int64_t)n * c * oh * ow,
                      nw = (int64_t)c * k * k;
        float *x = random_buf(nx, 51 + si, 1.0f), *wt = random_buf(nw, 53 + si, 0.5f),
              *b = random_buf(c, 57 + si, 1.0f), *dy = random_buf(ny, 59 + si, 1.0f);
        double *want = calloc((size_t)ny, 8), *dx_want = calloc((size_t)nx, 8),
               *dw_want = calloc((size_t)nw, 8), *db_want = calloc((size_t)c, 8);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) {
                        const int64_t yi = (((int64_t)i * c + ch) * oh + oy) * ow + ox;
                        want[yi] = b[ch];
                        db_want[ch] += dy[yi];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int iy = oy * st + ky - pd, ix = ox * st + kx - pd;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                const int64_t xi = (((int64_t)i * c + ch) * h + iy) * w + ix,
                                              wi = ((int64_t)ch * k + ky) * k + kx;
                                want[yi] += (double)wt[wi] * x[xi];
                                dx_want[xi] += (double)wt[wi] * dy[yi];
                                dw_want[wi] += (double)x[xi] * dy[yi];
                            }
                    }
        cvn_conv_desc d = {.n = n,
                           .c = c,
                           .h = h,
                           .w = w,
                           .o = c,
                           .kh = k,
                           .kw = k,
                           .oh = oh,
                           .ow = ow,
                           .sh = st,
                           .sw = st,
                           .ph = pd,
                           .pw = pd,
                           .dh = 1,
                           .dw = 1,
                           .groups = c};
        float *got = malloc((size_t)ny * 4), *dx = malloc((size_t)nx * 4),
              *dw = malloc((size_t)nw * 4), *db = malloc((size_t)c * 4);
        for (int v = 0; v < 3; v++) {
            const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
            if (!be) continue;
            d.work = NULL, d.work_floats = 0, d.pool = 2;
            ck_assert_int_eq(be->conv2d_work(&d, false), 0); /* pooling: declined */
            d.pool = 0;
            ck_assert(!be->conv2d_fwd(&d, got, x, wt, b)); /* no scratch: declined */
            d.work_floats = be->conv2d_work(&d, true);
            ck_assert_int_ge(d.work_floats, be->conv2d_work(&d, false));
            d.work = malloc((size_t)d.work_floats * 4);
            for (int mode = 0; mode < 3; mode++) { /* no bias, bias, bias + ReLU */
                d.act_on = mode == 2, d.act = CVN_K_RELU;
                for (int64_t i = 0; i < ny; i++) got[i] = NAN;
                ck_assert(be->conv2d_fwd(&d, got, x, wt, mode ? b : NULL));
                for (int64_t i = 0; i < ny; i++) {
                    double ref = want[i] - (mode ? 0.0 : b[i / ((int64_t)oh * ow) % c]);
                    if (mode == 2 && ref < 0) ref = 0;
                    ck_assert_msg(fabs(got[i] - ref) <= 1e-4 * (1 + fabs(ref)),
                                  "depthwise %s shape %zu mode %d [%lld]: %.7g vs %.7g",
                                  variants[v], si, mode, (long long)i, (double)got[i], ref);
                }
            }
            d.act_on = false;
            for (int64_t i = 0; i < nx; i++) dx[i] = 0.75f;
            for (int64_t i = 0; i < nw; i++) dw[i] = 0.25f;
            for (int i = 0; i < c; i++) db[i] = -0.5f;
            ck_assert(be->conv2d_bwd(&d, dx, dw, db, dy, x, wt, true));
            for (int64_t i = 0; i < nx; i++)
                ck_assert_msg(fabs(dx[i] - (dx_want[i] + 0.75)) <= 1e-4 * (1 + fabs(dx_want[i])),
                              "depthwise dx %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                              (long long)i, (double)dx[i], dx_want[i] + 0.75);
            for (int64_t i = 0; i < nw; i++)
                ck_assert_msg(fabs(dw[i] - (dw_want[i] + 0.25)) <= 1e-4 * (1 + fabs(dw_want[i])),
                              "depthwise dw %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                              (long long)i, (double)dw[i], dw_want[i] + 0.25);
            for (int i = 0; i < c; i++)
                ck_assert(fabs(db[i] - (db_want[i] - 0.5)) <= 1e-4 * (1 + fabs(db_want[i])));
            for (int64_t i = 0; i < nx; i++) dx[i] = NAN; /* overwritten, not added to */
            ck_assert(be->conv2d_bwd(&d, dx, NULL, NULL, dy, x, wt, false));
            for (int64_t i = 0; i < nx; i++)
                ck_assert_msg(fabs(dx[i] - dx_want[i]) <= 1e-4 * (1 + fabs(dx_want[i])),
                              "depthwise dx overwrite %s shape %zu [%lld]: %.7g vs %.7g",
                              variants[v], si, (long long)i, (double)dx[i], dx_want[i]);
            free(d.work);
        }
        free(x), free(wt), free(b), free(dy), free(got), free(dx), free(dw), free(db);
        free(want), free(dx_want), free(dw_want), free(db_want);
    }
}
END_TEST

/* The pointwise (1x1) convolution of every variant against plain loops in double precision:
 * output channels past whole tiles, input channels past whole dw tiles, planes of whole tiles, of
 * a vector tail and of exactly one vector, a long reduction; the forward (with and without bias,
 * with ReLU and hard-swish epilogues, over NaN), dx overwritten and added to, dw and db added to,
 * without scratch and with the backward's (AVX2's channel-lane dw, turning dy, or x when there are
 * fewer input than output channels). A plane smaller than the variant's vector may be declined;
 * one of 16 pixels or more is not. Strides, padding, groups and pooling epilogues are declined. */
START_TEST(test_pointwise_conv) {
    static const int shapes[][5] = {/* n, c, h, w, o */
                                    {2, 3, 4, 6, 5},   {1, 8, 7, 7, 13},   {3, 5, 4, 4, 7},
                                    {2, 150, 3, 9, 6}, {1, 7, 10, 12, 25}, {2, 4, 1, 1, 3},
                                    {1, 16, 2, 4, 24}, {2, 2, 14, 14, 1},  {2, 40, 5, 5, 20},
                                    {1, 20, 3, 3, 33}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], c = shapes[si][1], h = shapes[si][2], w = shapes[si][3],
                  o = shapes[si][4];
        const int64_t hw = (int64_t)h * w, nx = n * c * hw, ny = n * o * hw, nw = (int64_t)o * c;
        float *x = random_buf(nx, 61 + si, 1.0f), *wt = random_buf(nw, 63 + si, 0.5f),
              *b = random_buf(o, 67 + si, 1.0f), *dy = random_buf(ny, 69 + si, 1.0f);
        double *want = calloc((size_t)ny, 8), *dx_want = calloc((size_t)nx, 8),
               *dw_want = calloc((size_t)nw, 8), *db_want = calloc((size_t)o, 8),
               *mag = calloc((size_t)ny, 8);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < o; k++)
                for (int64_t p = 0; p < hw; p++) {
                    const int64_t yi = ((int64_t)i * o + k) * hw + p;
                    db_want[k] += dy[yi];
                    for (int ch = 0; ch < c; ch++) {
                        const int64_t xi = ((int64_t)i * c + ch) * hw + p, wi = (int64_t)k * c + ch;
                        want[yi] += (double)wt[wi] * x[xi];
                        mag[yi] += fabs((double)wt[wi] * x[xi]);
                        dx_want[xi] += (double)wt[wi] * dy[yi];
                        dw_want[wi] += (double)x[xi] * dy[yi];
                    }
                }
        cvn_conv_desc d = {.n = n,
                           .c = c,
                           .h = h,
                           .w = w,
                           .o = o,
                           .kh = 1,
                           .kw = 1,
                           .oh = h,
                           .ow = w,
                           .sh = 1,
                           .sw = 1,
                           .dh = 1,
                           .dw = 1,
                           .groups = 1};
        float *got = malloc((size_t)ny * 4), *dx = malloc((size_t)nx * 4),
              *dw = malloc((size_t)nw * 4), *db = malloc((size_t)o * 4);
        for (int v = 0; v < 3; v++) {
            const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
            if (!be) continue;
            cvn_conv_desc no[4] = {d, d, d, d}; /* stride 2, padding 1, two groups, pooling */
            no[0].sh = no[0].sw = 2, no[0].oh = (h + 1) / 2, no[0].ow = (w + 1) / 2;
            no[1].ph = no[1].pw = 1, no[1].oh = h + 2, no[1].ow = w + 2;
            no[2].groups = 2;
            no[3].pool = 2, no[3].act_on = true, no[3].act = CVN_K_RELU;
            for (int i = 0; i < 4; i++)
                ck_assert_msg(!be->conv2d_fwd(&no[i], got, x, wt, b),
                              "pointwise %s shape %zu took case %d", variants[v], si, i);
            if (!be->conv2d_fwd(&d, got, x, wt, b)) {
                ck_assert_msg(hw < 16, "pointwise %s declined shape %zu", variants[v], si);
                continue;
            }
            for (int mode = 0; mode < 4; mode++) { /* no bias, bias, + ReLU, + hard-swish */
                d.act_on = mode >= 2, d.act = mode == 2 ? CVN_K_RELU : CVN_K_HARDSWISH;
                for (int64_t i = 0; i < ny; i++) got[i] = NAN;
                ck_assert(be->conv2d_fwd(&d, got, x, wt, mode ? b : NULL));
                for (int64_t i = 0; i < ny; i++) {
                    double ref = want[i] + (mode ? b[i / hw % o] : 0.0);
                    if (mode == 2 && ref < 0) ref = 0;
                    if (mode == 3) ref = ref * fmin(fmax(ref + 3, 0), 6) / 6;
                    ck_assert_msg(fabs(got[i] - ref) <= 1e-5 * (1 + mag[i]),
                                  "pointwise %s shape %zu mode %d [%lld]: %.7g vs %.7g",
                                  variants[v], si, mode, (long long)i, (double)got[i], ref);
                }
            }
            d.act_on = false;
            for (int scratch = 0; scratch < 2; scratch++) { /* without, and with, the scratch */
                d.work_floats = scratch ? be->conv2d_work(&d, true) : 0;
                d.work = d.work_floats > 0 ? malloc((size_t)d.work_floats * 4) : NULL;
                for (int64_t i = 0; i < nx; i++) dx[i] = 0.75f;
                for (int64_t i = 0; i < nw; i++) dw[i] = 0.25f;
                for (int i = 0; i < o; i++) db[i] = -0.5f;
                ck_assert(be->conv2d_bwd(&d, dx, dw, db, dy, x, wt, true));
                for (int64_t i = 0; i < nx; i++)
                    ck_assert_msg(fabs(dx[i] - (dx_want[i] + 0.75)) <=
                                      1e-4 * (1 + fabs(dx_want[i])),
                                  "pointwise dx %s shape %zu [%lld]: %.7g vs %.7g", variants[v], si,
                                  (long long)i, (double)dx[i], dx_want[i] + 0.75);
                for (int64_t i = 0; i < nw; i++)
                    ck_assert_msg(
                        fabs(dw[i] - (dw_want[i] + 0.25)) <= 1e-4 * (1 + fabs(dw_want[i])),
                        "pointwise dw %s shape %zu scratch %d [%lld]: %.7g vs %.7g", variants[v],
                        si, scratch, (long long)i, (double)dw[i], dw_want[i] + 0.25);
                for (int i = 0; i < o; i++)
                    ck_assert(fabs(db[i] - (db_want[i] - 0.5)) <= 1e-4 * (1 + fabs(db_want[i])));
                for (int64_t i = 0; i < nx; i++) dx[i] = NAN; /* overwritten, not added to */
                ck_assert(be->conv2d_bwd(&d, dx, NULL, NULL, dy, x, wt, false));
                for (int64_t i = 0; i < nx; i++)
                    ck_assert_msg(fabs(dx[i] - dx_want[i]) <= 1e-4 * (1 + fabs(dx_want[i])),
                                  "pointwise dx overwrite %s shape %zu [%lld]: %.7g vs %.7g",
                                  variants[v], si, (long long)i, (double)dx[i], dx_want[i]);
                free(d.work);
                d.work = NULL, d.work_floats = 0;
            }
        }
        free(x), free(wt), free(b), free(dy), free(got), free(dx), free(dw), free(db);
        free(want), free(dx_want), free(dw_want), free(db_want), free(mag);
    }
}
END_TEST

START_TEST(test_gemm_agrees) {
    static const int shapes[][6] = {
        /* m, n, k, ta, tb, beta != 0 */
        {1, 1, 1, 0, 1, 0},
        {1, 128, 3136, 0, 1, 0},
        {2, 10, 128, 0, 1, 1},
        {3, 7, 17, 0, 1, 0},
        {4, 130, 33, 0, 1, 1},
        {4, 5, 1000, 0, 1, 0},
        {5, 9, 31, 0, 1, 0},
        {1, 6, 40, 0, 0, 1},
        {3, 4, 16, 1, 1, 0},
        {64, 128, 300, 0, 1, 0},
        /* 5 to 64 rows with enough work: the packed panel kernel (tails in rows, tiles, vectors) */
        {64, 128, 3136, 0, 1, 0},
        {17, 130, 2000, 0, 1, 1},
        {33, 250, 600, 0, 1, 0},
        {5, 1000, 1000, 0, 1, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        const bool ta = shapes[si][3], tb = shapes[si][4];
        const float alpha = 0.75f, beta = shapes[si][5] ? -0.5f : 0.0f;
        const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
        float *a = random_buf((int64_t)(ta ? k : m) * lda, 31 + si, 1.0f),
              *b = random_buf((int64_t)(tb ? n : k) * ldb, 37 + si, 1.0f),
              *c0 = random_buf((int64_t)m * ldc, 41 + si, 1.0f), *c = malloc((size_t)m * ldc * 4);
        for (int v = 0; v < 3; v++) {
            const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
            if (!be) continue;
            memcpy(c, c0, (size_t)m * ldc * 4);
            if (beta == 0.0f)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) c[i * ldc + j] = NAN;
            be->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < ldc; j++) {
                    double want = c0[i * ldc + j], sum = 0, mag = 0;
                    if (j < n) {
                        for (int p = 0; p < k; p++) {
                            double t = (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                                       (tb ? b[j * ldb + p] : b[p * ldb + j]);
                            sum += t, mag += fabs(t);
                        }
                        want = alpha * sum + beta * want;
                    }
                    ck_assert_msg(fabs(c[i * ldc + j] - want) <= 1e-5 * (mag + 1.0),
                                  "gemm %s shape %zu [%d, %d]: %.7g vs %.7g", variants[v], si, i, j,
                                  (double)c[i * ldc + j], want);
                }
        }
        free(a), free(b), free(c0), free(c);
    }
}
END_TEST

START_TEST(test_gelu_accuracy) {
    enum { N = 20001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -14.0f + 28.0f * (float)i / (N - 1);
    for (int v = 0; v < 3; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        be->act_fwd(CVN_K_GELU, 0, N, y, x);
        for (int i = 0; i < N; i++) {
            double want = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0)), err = fabs(y[i] - want);
            double tol = fabsf(x[i]) <= 8.0f ? 1e-5 * fabs(want) + 1e-7 : 2e-5 * fabs(want) + 1e-15;
            ck_assert_msg(err <= tol, "%s gelu(%g) = %.9g, want %.9g", variants[v], (double)x[i],
                          (double)y[i], want);
        }
    }
}
END_TEST

START_TEST(test_count_hits) {
    /* torch.argmax: the first maximum wins a tie, the first NaN wins over numbers and later
     * NaNs; hits add to what was there */
    const float logits[4][3] = {{1, 3, 3}, {NAN, 0, 1}, {0, NAN, NAN}, {-2, -1, -3}};
    const int32_t right[4] = {1, 0, 1, 1}, wrong[4] = {2, 2, 2, 0};
    for (int v = 0; v < 3; v++) {
        const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
        if (!be) continue;
        float hits = 0.5f;
        be->count_hits(4, 3, &hits, &logits[0][0], right);
        ck_assert_float_eq(hits, 4.5f);
        be->count_hits(4, 3, &hits, &logits[0][0], wrong);
        ck_assert_float_eq(hits, 4.5f);
        be->count_hits(3, 1, &hits, &logits[0][0], (const int32_t[]){0, 0, 0}); /* one class */
        ck_assert_float_eq(hits, 7.5f);
    }
}
END_TEST

START_TEST(test_dispatch) {
    const char *name = cvn_simd_name();
    ck_assert(!strcmp(name, "avx512") || !strcmp(name, "avx2") || !strcmp(name, "scalar"));
    ck_assert_ptr_nonnull(cvn_cpu_backend_variant("scalar"));
    ck_assert_ptr_null(cvn_cpu_backend_variant("sse9"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("simd");
    TCase *tc = tcase_create("variants");
    tcase_set_timeout(tc, 120); /* the convolution checks run every variant on 12 shapes */
    tcase_add_test(tc, test_count_hits);
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_activations_agree);
    tcase_add_test(tc, test_depthwise_conv);
    tcase_add_test(tc, test_pointwise_conv);
    tcase_add_test(tc, test_elementwise_agree);
    tcase_add_test(tc, test_broadcast_rows);
    tcase_add_test(tc, test_batchnorm_agree);
    tcase_add_test(tc, test_window_ops_agree);
    tcase_add_test(tc, test_pool_dropout_agree);
    tcase_add_test(tc, test_maxpool2x2_fast_path);
    tcase_add_test(tc, test_gelu_accuracy);
    tcase_add_test(tc, test_direct_conv3x3);
    tcase_add_test(tc, test_gemm_agrees);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
