/* Every op against PyTorch reference values (forward and backward, tests/ref/ops_ref.txt) and
 * against finite differences; shape errors name both shapes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op_cases.h"

/* The case's inputs from the reference file, requiring grad; returns how many. */
static int load_inputs(const op_case *c, cvn_tensor **in) {
    int n = n_inputs(c);
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.%s", c->name, c->inputs[i]);
        in[i] = ref_tensor(name, true);
    }
    return n;
}

/* Forward and backward against PyTorch. */
START_TEST(test_against_pytorch) {
    const op_case *c = &cases[_i];
    cvn_tensor *in[3] = {0};
    int n = load_inputs(c, in);
    char name[128];
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    cvn_tensor *out = c->fn(t, in, NULL);
    snprintf(name, sizeof name, "%s.out", c->name);
    expect_tensor(name, out, name, c->rtol, c->atol);
    snprintf(name, sizeof name, "%s.gout", c->name);
    const ref_array *gout = ref_get(name);
    cvn_tensor *seed = cvn_tape_tensor_f32(t, out->ndim, out->shape, gout->v);
    CK_OK(cvn_backward(t, out, seed));
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.g%s", c->name, c->inputs[i]);
        ck_assert_msg(in[i]->grad != NULL, "%s: no gradient", name);
        expect_tensor(name, in[i]->grad, name, c->rtol, c->atol);
    }
    cvn_tape_free(t);
    for (int i = 0; i < n; i++) cvn_tensor_free(in[i]);
}
END_TEST

/* Analytic gradients against central differences. */
START_TEST(test_gradcheck) {
    const op_case *c = &cases[_i];
    cvn_tensor *in[3] = {0};
    int n = load_inputs(c, in);
    cvn_status s = cvn_gradcheck(c->fn, n, in, NULL, c->eps, 2e-2f, 2e-2f);
    ck_assert_msg(s == CVN_OK, "%s: %s", c->name, cvn_last_error());
    for (int i = 0; i < n; i++) cvn_tensor_free(in[i]);
}
END_TEST

/* Batch norm in training mode updates the running statistics as PyTorch does; eval uses them. */
START_TEST(test_batch_norm_running_stats) {
    cvn_tensor *x = ref_tensor("bn_train.x", true), *w = ref_tensor("bn_train.w", true);
    cvn_tensor *b = ref_tensor("bn_train.b", true);
    cvn_tensor *rm = ref_tensor("bn_train.rm_before", false);
    cvn_tensor *rv = ref_tensor("bn_train.rv_before", false);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *y = CK_NOTNULL(cvn_batch_norm2d(t, x, w, b, rm, rv, true, 0.1f, 1e-5f));
    expect_tensor("bn_train.out", y, "bn_train.out", LONG);
    expect_tensor("running_mean", rm, "bn_train.rm_after", ELEM);
    expect_tensor("running_var", rv, "bn_train.rv_after", ELEM);
    CK_OK(cvn_backward(t, y, ref_tape_tensor(t, "bn_train.gout")));
    expect_tensor("bn_train.gx", x->grad, "bn_train.gx", LONG);
    expect_tensor("bn_train.gw", w->grad, "bn_train.gw", LONG);
    expect_tensor("bn_train.gb", b->grad, "bn_train.gb", LONG);
    cvn_tape_free(t);
    cvn_tensor_free(x), cvn_tensor_free(w), cvn_tensor_free(b), cvn_tensor_free(rm),
        cvn_tensor_free(rv);

    x = ref_tensor("bn_eval.x", true), w = ref_tensor("bn_eval.w", true);
    b = ref_tensor("bn_eval.b", true);
    rm = ref_tensor("bn_eval.rm", false), rv = ref_tensor("bn_eval.rv", false);
    t = cvn_tape_new(CVN_CPU);
    y = CK_NOTNULL(cvn_batch_norm2d(t, x, w, b, rm, rv, false, 0.1f, 1e-5f));
    expect_tensor("bn_eval.out", y, "bn_eval.out", LONG);
    expect_tensor("eval leaves running_mean", rm, "bn_eval.rm", 0, 0);
    CK_OK(cvn_backward(t, y, ref_tape_tensor(t, "bn_eval.gout")));
    expect_tensor("bn_eval.gx", x->grad, "bn_eval.gx", LONG);
    expect_tensor("bn_eval.gw", w->grad, "bn_eval.gw", LONG);
    expect_tensor("bn_eval.gb", b->grad, "bn_eval.gb", LONG);
    cvn_tape_free(t);
    cvn_tensor_free(x), cvn_tensor_free(w), cvn_tensor_free(b), cvn_tensor_free(rm),
        cvn_tensor_free(rv);
}
END_TEST

/* Dropout: a fraction p is zeroed, the rest scaled by 1/(1-p); the same seed gives the same mask;
 * eval is the identity; the gradient flows only through kept elements. */
static cvn_tensor *f_dropout(cvn_tape *t, cvn_tensor *const *in, void *ctx) {
    cvn_rng r;
    cvn_rng_seed(&r, 42); /* same mask on every call, as finite differences need */
    return cvn_dropout(t, in[0], 0.3f, true, &r);
}

START_TEST(test_dropout) {
    int64_t shape[2] = {100, 1001};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 2, shape);
    cvn_tensor_fill(x, 2.0f);
    cvn_tensor_set_requires_grad(x, true);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *y = CK_NOTNULL(f_dropout(t, &x, NULL));
    int64_t zeros = 0, n = cvn_numel(y);
    const float *v = y->data;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] == 0.0f)
            zeros++;
        else
            ck_assert_msg(fabsf(v[i] - 2.0f / 0.7f) < 1e-6f, "kept value %g", (double)v[i]);
    }
    double frac = (double)zeros / (double)n; /* binomial: sd = sqrt(.21 / 100100) = 0.0014 */
    ck_assert_msg(fabs(frac - 0.3) < 0.01, "dropped fraction %.4f, expected 0.3", frac);
    cvn_tensor *y2 = f_dropout(t, &x, NULL);
    ck_assert(memcmp(y->data, y2->data, (size_t)n * sizeof(float)) == 0);
    cvn_tensor *loss = cvn_sum(t, y, 0, NULL, false);
    CK_OK(cvn_backward(t, loss, NULL));
    const float *g = x->grad->data;
    for (int64_t i = 0; i < n; i++)
        ck_assert_float_eq_tol(g[i], v[i] == 0.0f ? 0.0f : 1.0f / 0.7f, 1e-6f);
    cvn_tape_reset(t);
    ck_assert_ptr_eq(cvn_dropout(t, x, 0.3f, false, NULL), x);
    cvn_tape_free(t);
    cvn_tensor_free(x);

    int64_t small[2] = {3, 7};
    x = cvn_tensor_new(CVN_F32, 2, small);
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_tensor_normal(x, &r, 0, 1);
    cvn_tensor_set_requires_grad(x, true);
    ck_assert_msg(cvn_gradcheck(f_dropout, 1, &x, NULL, 1e-2f, 1e-2f, 1e-2f) == CVN_OK, "%s",
                  cvn_last_error());
    cvn_tensor_free(x);
}
END_TEST

/* Shape errors return NULL with a message that names both shapes; nothing aborts. */
START_TEST(test_shape_errors) {
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){2, 3, 8, 8});
    cvn_tensor *w = cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){4, 2, 3, 3});
    ck_assert_ptr_null(cvn_conv2d(t, x, w, NULL, NULL));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_SHAPE);
    ck_assert_msg(strstr(cvn_last_error(), "[2, 3, 8, 8]") &&
                      strstr(cvn_last_error(), "[4, 2, 3, 3]"),
                  "message: %s", cvn_last_error());

    cvn_tensor *a = cvn_tape_tensor(t, CVN_F32, 2, (int64_t[]){5, 7});
    cvn_tensor *b = cvn_tape_tensor(t, CVN_F32, 2, (int64_t[]){6, 3});
    ck_assert_ptr_null(cvn_matmul(t, a, b));
    ck_assert_msg(strstr(cvn_last_error(), "[5, 7]") && strstr(cvn_last_error(), "[6, 3]"),
                  "message: %s", cvn_last_error());

    cvn_tensor *c = cvn_tape_tensor(t, CVN_F32, 2, (int64_t[]){4, 3});
    cvn_tensor *d = cvn_tape_tensor(t, CVN_F32, 1, (int64_t[]){4});
    ck_assert_ptr_null(cvn_add(t, c, d));
    ck_assert_msg(strstr(cvn_last_error(), "[4, 3]") && strstr(cvn_last_error(), "[4]"),
                  "message: %s", cvn_last_error());

    cvn_tensor *wl = cvn_tape_tensor(t, CVN_F32, 2, (int64_t[]){10, 6});
    ck_assert_ptr_null(cvn_linear(t, c, wl, NULL));
    ck_assert_msg(strstr(cvn_last_error(), "[4, 3]") && strstr(cvn_last_error(), "[10, 6]"),
                  "message: %s", cvn_last_error());

    /* NULL inputs propagate: the first error stays */
    ck_assert_ptr_null(cvn_relu(t, cvn_matmul(t, a, b)));
    ck_assert(strstr(cvn_last_error(), "matmul") != NULL);

    /* bad arguments */
    ck_assert_ptr_null(cvn_reshape(t, a, 2, (int64_t[]){4, 9}));
    ck_assert(strstr(cvn_last_error(), "[5, 7]") && strstr(cvn_last_error(), "[4, 9]"));
    ck_assert_ptr_null(cvn_max_pool2d(t, x, 0, 1, 0));
    ck_assert_ptr_null(cvn_softmax(t, a, 2));
    ck_assert_ptr_null(cvn_dropout(t, a, 1.5f, true, NULL));
    cvn_tensor *logits = cvn_tape_tensor(t, CVN_F32, 2, (int64_t[]){2, 3});
    cvn_tensor *tg = cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){2});
    ((int32_t *)tg->data)[0] = 1;
    ((int32_t *)tg->data)[1] = 3;
    ck_assert_ptr_null(cvn_cross_entropy(t, logits, tg, 0));
    ck_assert_msg(strstr(cvn_last_error(), "target 3"), "message: %s", cvn_last_error());
    cvn_conv2d_params p = cvn_conv2d_defaults();
    p.stride_h = 0;
    ck_assert_ptr_null(cvn_conv2d(t, x, w, NULL, &p));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);
    cvn_tape_free(t);
}
END_TEST

static cvn_tensor *random_tensor(int ndim, const int64_t *shape, uint64_t seed, bool grad) {
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    cvn_tensor *x = CK_NOTNULL(cvn_tensor_new(CVN_F32, ndim, shape));
    CK_OK(cvn_tensor_uniform(x, &r, -1.0f, 1.0f));
    cvn_tensor_set_requires_grad(x, grad);
    return x;
}

static void expect_same_tensor(const char *what, const cvn_tensor *got, const cvn_tensor *want) {
    ck_assert_int_eq(got->ndim, want->ndim);
    for (int d = 0; d < got->ndim; d++) ck_assert_int_eq(got->shape[d], want->shape[d]);
    const float *g = got->data, *w = want->data;
    for (int64_t i = 0; i < cvn_numel(got); i++)
        ck_assert_msg(fabsf(g[i] - w[i]) <= 1e-5f * (1.0f + fabsf(w[i])), "%s [%lld]: %.7g vs %.7g",
                      what, (long long)i, (double)g[i], (double)w[i]);
}

static cvn_tensor *composed(cvn_tape *t, cvn_tensor *x, cvn_tensor *w, cvn_tensor *b,
                            const cvn_conv2d_params *p, const cvn_conv_epilogue *e) {
    cvn_tensor *y = cvn_conv2d(t, x, w, b, p);
    if (e->activate) y = cvn_activate(t, y, e->act, e->alpha);
    return e->pool ? cvn_max_pool2d(t, y, e->pool, e->pool, 0) : y;
}

/* cvn_conv2d_fused is max_pool2d(activate(conv2d)): at inference through the backend's fused pass
 * where it has one (3x3 stride 1 padding 1 with 2x2 pooling or none on the CPU) and the three ops
 * elsewhere (a 5x5 kernel, 3x3 pooling); when recording, the three ops with their gradients. Odd
 * sizes (pooling drops the last row and column), 20 output channels (a partial block). */
START_TEST(test_conv2d_fused) {
    static const cvn_conv_epilogue epis[] = {{true, CVN_ACT_RELU, 0, 2},
                                             {true, CVN_ACT_LEAKY_RELU, 0.2f, 0},
                                             {false, CVN_ACT_RELU, 0, 2},
                                             {true, CVN_ACT_SIGMOID, 0, 3},
                                             {true, CVN_ACT_HARDSWISH, 0, 2}};
    cvn_tensor *x = random_tensor(4, (int64_t[]){2, 9, 11, 13}, 1, true);
    cvn_tensor *b = random_tensor(1, (int64_t[]){20}, 4, true);
    for (int k = 3; k <= 5; k += 2) {
        cvn_tensor *w = random_tensor(4, (int64_t[]){20, 9, k, k}, 2 + k, true);
        cvn_conv2d_params p = cvn_conv2d_defaults();
        p.pad_h = p.pad_w = k / 2;
        for (size_t ei = 0; ei < sizeof epis / sizeof epis[0]; ei++) {
            const cvn_conv_epilogue *e = &epis[ei];
            char what[64];
            snprintf(what, sizeof what, "%dx%d epilogue %zu", k, k, ei);
            cvn_tape *t = cvn_tape_new(CVN_CPU);
            /* the three ops, recorded, then their gradients */
            cvn_tensor *y = CK_NOTNULL(composed(t, x, w, b, &p, e));
            int nodes = cvn_tape_num_nodes(t);
            CK_OK(cvn_backward(t, cvn_sum(t, cvn_mul(t, y, y), 0, NULL, false), NULL));
            cvn_tensor *yc = CK_NOTNULL(cvn_tensor_to(y, CVN_CPU)), /* outlive the reset */
                *gx = CK_NOTNULL(cvn_tensor_to(x->grad, CVN_CPU)),
                       *gw = CK_NOTNULL(cvn_tensor_to(w->grad, CVN_CPU));
            cvn_tensor_zero_grad(x), cvn_tensor_zero_grad(w), cvn_tensor_zero_grad(b);
            cvn_tape_reset(t);
            /* fused and recorded: the same nodes, values and gradients */
            cvn_tensor *f = CK_NOTNULL(cvn_conv2d_fused(t, x, w, b, &p, e));
            ck_assert_int_eq(cvn_tape_num_nodes(t), nodes);
            expect_same_tensor(what, f, yc);
            CK_OK(cvn_backward(t, cvn_sum(t, cvn_mul(t, f, f), 0, NULL, false), NULL));
            expect_same_tensor(what, x->grad, gx);
            expect_same_tensor(what, w->grad, gw);
            cvn_tensor_zero_grad(x), cvn_tensor_zero_grad(w), cvn_tensor_zero_grad(b);
            cvn_tape_reset(t);
            /* at inference: nothing recorded, the same values; where the CPU fuses (3x3, pool 2
             * outside the scalar build, or none) the convolution's own output is never allocated,
             * so the tape holds less than the three ops unrecorded do (a declined fusion holds
             * more: its output and scratch, then all of theirs) */
            cvn_tape_set_grad_enabled(t, false);
            f = CK_NOTNULL(cvn_conv2d_fused(t, x, w, b, &p, e));
            ck_assert_int_eq(cvn_tape_num_nodes(t), 0);
            expect_same_tensor(what, f, yc);
            size_t fused = cvn_tape_arena_used(t);
            cvn_tape_reset(t);
            CK_NOTNULL(composed(t, x, w, b, &p, e));
            size_t parts = cvn_tape_arena_used(t);
            if (k == 3 && (e->pool == 0 || (e->pool == 2 && strcmp(cvn_simd_name(), "scalar"))))
                ck_assert_msg(fused < parts, "%s: %zu bytes fused, %zu in parts", what, fused,
                              parts);
            cvn_tape_free(t);
            cvn_tensor_free(yc);
            cvn_tensor_free(gx), cvn_tensor_free(gw);
        }
        cvn_tensor_free(w);
    }
    /* errors: a bad epilogue, and the convolution's own checks under the fused op's name */
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *w = random_tensor(4, (int64_t[]){20, 9, 3, 3}, 5, false);
    ck_assert_ptr_null(cvn_conv2d_fused(t, x, w, b, NULL, &(cvn_conv_epilogue){.pool = -1}));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);
    ck_assert_ptr_null(cvn_conv2d_fused(
        t, x, w, b, NULL, &(cvn_conv_epilogue){.activate = true, .act = (cvn_activation)99}));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);
    ck_assert_ptr_null(cvn_conv2d_fused(t, w, x, b, NULL, NULL));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_SHAPE);
    ck_assert(strstr(cvn_last_error(), "conv2d_fused") != NULL);
    /* a pool larger than the convolution's output: max_pool2d's error */
    cvn_tape_set_grad_enabled(t, false);
    cvn_tensor *tiny = random_tensor(4, (int64_t[]){1, 9, 1, 1}, 6, false);
    ck_assert_ptr_null(cvn_conv2d_fused(t, tiny, w, b, &(cvn_conv2d_params){1, 1, 1, 1, 1, 1, 1},
                                        &(cvn_conv_epilogue){.pool = 2}));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_SHAPE);
    cvn_tape_free(t);
    cvn_tensor_free(w), cvn_tensor_free(tiny), cvn_tensor_free(x), cvn_tensor_free(b);
}
END_TEST

/* reshape then flatten, weighted so that every element's gradient differs */
static cvn_tensor *f_views(cvn_tape *t, cvn_tensor *const *in, void *c) {
    cvn_tensor *r = cvn_reshape(t, in[0], 3, (int64_t[]){5, -1, 3});
    cvn_tensor *f = cvn_flatten(t, r, 1);
    return cvn_mul(t, f, f);
}

/* reshape and flatten are views whose gradient flows back unchanged. */
START_TEST(test_reshape_flatten) {
    cvn_tensor *x = ref_tensor("sum_02.x", true); /* [3, 4, 5] */
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *f = CK_NOTNULL(cvn_flatten(t, x, 1));
    ck_assert_int_eq(f->ndim, 2);
    ck_assert_int_eq(f->shape[1], 20);
    ck_assert_ptr_eq(f->data, x->data);
    cvn_tensor *r = CK_NOTNULL(cvn_reshape(t, f, 3, (int64_t[]){-1, 2, 5}));
    ck_assert_int_eq(r->shape[0], 6);
    cvn_tensor *y = cvn_mul_scalar(t, r, 3.0f);
    CK_OK(cvn_backward(t, cvn_sum(t, y, 0, NULL, false), NULL));
    for (int64_t i = 0; i < cvn_numel(x); i++)
        ck_assert_float_eq(((float *)x->grad->data)[i], 3.0f);
    cvn_tape_free(t);
    ck_assert_msg(cvn_gradcheck(f_views, 1, &x, NULL, 1e-2f, 2e-2f, 2e-2f) == CVN_OK, "%s",
                  cvn_last_error());
    cvn_tensor_free(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_against_pytorch, 0, N_CASES);
    tcase_add_loop_test(tc, test_gradcheck, 0, N_CASES);
    tcase_add_test(tc, test_batch_norm_running_stats);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_shape_errors);
    tcase_add_test(tc, test_reshape_flatten);
    tcase_add_test(tc, test_conv2d_fused);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
