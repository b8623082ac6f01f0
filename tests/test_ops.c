/* Every op against PyTorch reference values (forward and backward, tests/ref/ops_ref.txt) and
 * against finite differences; shape errors name both shapes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

typedef cvn_tensor *(*op_fn)(cvn_tape *t, cvn_tensor *const *in, void *ctx);

typedef struct {
    const char *name;      /* reference case */
    const char *inputs[3]; /* reference names of the inputs, in argument order */
    op_fn fn;
    float rtol, atol; /* against PyTorch */
    float eps;        /* finite-difference step; 0 skips the gradient check */
} op_case;

#define ELEM 1e-5f, 1e-6f
#define LONG 1e-4f, 1e-5f

static cvn_tensor *f_add(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_add(t, in[0], in[1]);
}
static cvn_tensor *f_sub(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_sub(t, in[0], in[1]);
}
static cvn_tensor *f_mul(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_mul(t, in[0], in[1]);
}
static cvn_tensor *f_div(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_div(t, in[0], in[1]);
}
static cvn_tensor *f_affine(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_affine_scalar(t, in[0], 1.7f, -0.3f);
}
static cvn_tensor *f_matmul(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_matmul(t, in[0], in[1]);
}
static cvn_tensor *f_linear(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_linear(t, in[0], in[1], in[2]);
}
static cvn_tensor *conv_with(cvn_tape *t, cvn_tensor *const *in, int sh, int sw, int ph, int pw,
                             int dh, int dw, int g) {
    cvn_conv2d_params p = {sh, sw, ph, pw, dh, dw, g};
    return cvn_conv2d(t, in[0], in[1], in[2], &p);
}
static cvn_tensor *f_conv_basic(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return conv_with(t, in, 1, 1, 1, 1, 1, 1, 1);
}
static cvn_tensor *f_conv_strided(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return conv_with(t, in, 2, 1, 2, 1, 2, 1, 1);
}
static cvn_tensor *f_conv_groups(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return conv_with(t, in, 1, 1, 1, 1, 1, 1, 2);
}
static cvn_tensor *f_conv_depthwise(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return conv_with(t, in, 2, 2, 1, 1, 1, 1, 3);
}
static cvn_tensor *f_conv_1x1(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return conv_with(t, in, 1, 1, 0, 0, 1, 1, 1);
}
static cvn_tensor *f_maxpool_2(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_max_pool2d(t, in[0], 2, 0, 0);
}
static cvn_tensor *f_maxpool_3s2p1(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_max_pool2d(t, in[0], 3, 2, 1);
}
static cvn_tensor *f_avgpool_3s2p1(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_avg_pool2d(t, in[0], 3, 2, 1);
}
static cvn_tensor *f_avgpool_2(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_avg_pool2d(t, in[0], 2, 0, 0);
}
static cvn_tensor *f_adaptive(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_adaptive_avg_pool2d(t, in[0], 3, 2);
}
static cvn_tensor *f_global(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_global_avg_pool2d(t, in[0]);
}
#define ACT(fname, kind, alpha)                                                                    \
    static cvn_tensor *fname(cvn_tape *t, cvn_tensor *const *in, void *c) {                        \
        return cvn_activate(t, in[0], kind, alpha);                                                \
    }
ACT(f_relu, CVN_ACT_RELU, 0)
ACT(f_leaky, CVN_ACT_LEAKY_RELU, 0.1f)
ACT(f_sigmoid, CVN_ACT_SIGMOID, 0)
ACT(f_tanh, CVN_ACT_TANH, 0)
ACT(f_gelu, CVN_ACT_GELU, 0)
ACT(f_silu, CVN_ACT_SILU, 0)
ACT(f_hardswish, CVN_ACT_HARDSWISH, 0)
ACT(f_hardsigmoid, CVN_ACT_HARDSIGMOID, 0)
static cvn_tensor *f_softmax_last(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_softmax(t, in[0], -1);
}
static cvn_tensor *f_softmax_mid(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_softmax(t, in[0], 1);
}
static cvn_tensor *f_log_softmax_last(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_log_softmax(t, in[0], -1);
}
static cvn_tensor *f_log_softmax_first(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_log_softmax(t, in[0], 0);
}
static cvn_tensor *f_bn_batch(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_batch_norm2d(t, in[0], in[1], in[2], NULL, NULL, true, 0.1f, 1e-5f);
}
/* eval mode: normalizes with the running statistics of the reference case */
static cvn_tensor *f_bn_eval(cvn_tape *t, cvn_tensor *const *in, void *c) {
    static cvn_tensor *rm, *rv;
    if (!rm) rm = ref_tensor("bn_eval.rm", false), rv = ref_tensor("bn_eval.rv", false);
    return cvn_batch_norm2d(t, in[0], in[1], in[2], rm, rv, false, 0.1f, 1e-5f);
}
static cvn_tensor *f_concat(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_concat(t, 2, in, 1);
}
static cvn_tensor *f_sum_02(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_sum(t, in[0], 2, (int[]){0, 2}, false);
}
static cvn_tensor *f_mean_1k(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_mean(t, in[0], 1, (int[]){1}, true);
}
static cvn_tensor *f_mean_all(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_mean(t, in[0], 0, NULL, false);
}
static cvn_tensor *targets_on(cvn_tape *t) {
    const ref_array *r = ref_get("xent.target");
    cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, r->shape);
    for (int64_t i = 0; i < r->n; i++) ((int32_t *)y->data)[i] = (int32_t)r->v[i];
    return y;
}
static cvn_tensor *f_xent(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_cross_entropy(t, in[0], targets_on(t), 0.0f);
}
static cvn_tensor *f_xent_smooth(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_cross_entropy(t, in[0], targets_on(t), 0.1f);
}
static cvn_tensor *f_mse(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_mse(t, in[0], in[1]);
}
static cvn_tensor *f_bce(cvn_tape *t, cvn_tensor *const *in, void *c) {
    return cvn_bce_with_logits(t, in[0], in[1]);
}

static const op_case cases[] = {
    {"add", {"a", "b"}, f_add, ELEM, 1e-2f},
    {"sub", {"a", "b"}, f_sub, ELEM, 1e-2f},
    {"mul", {"a", "b"}, f_mul, ELEM, 1e-2f},
    {"mul_same", {"a", "b"}, f_mul, ELEM, 1e-2f},
    {"div", {"a", "b"}, f_div, ELEM, 1e-3f},
    {"div_same", {"a", "b"}, f_div, ELEM, 1e-3f},
    {"affine", {"x"}, f_affine, ELEM, 1e-2f},
    {"matmul", {"a", "b"}, f_matmul, LONG, 1e-2f},
    {"linear", {"x", "w", "b"}, f_linear, LONG, 1e-2f},
    {"conv_basic", {"x", "w", "b"}, f_conv_basic, LONG, 1e-2f},
    {"conv_strided", {"x", "w", "b"}, f_conv_strided, LONG, 1e-2f},
    {"conv_groups", {"x", "w", "b"}, f_conv_groups, LONG, 1e-2f},
    {"conv_depthwise", {"x", "w", "b"}, f_conv_depthwise, LONG, 1e-2f},
    {"conv_1x1", {"x", "w", "b"}, f_conv_1x1, LONG, 1e-2f},
    {"maxpool_2", {"x"}, f_maxpool_2, ELEM, 1e-4f},
    {"maxpool_3s2p1", {"x"}, f_maxpool_3s2p1, ELEM, 1e-4f},
    {"avgpool_3s2p1", {"x"}, f_avgpool_3s2p1, ELEM, 1e-2f},
    {"avgpool_2", {"x"}, f_avgpool_2, ELEM, 1e-2f},
    {"adaptive", {"x"}, f_adaptive, ELEM, 1e-2f},
    {"global", {"x"}, f_global, ELEM, 1e-2f},
    {"relu", {"x"}, f_relu, ELEM, 1e-3f},
    {"leaky_relu", {"x"}, f_leaky, ELEM, 1e-3f},
    {"sigmoid", {"x"}, f_sigmoid, ELEM, 1e-2f},
    {"tanh", {"x"}, f_tanh, ELEM, 1e-2f},
    {"gelu", {"x"}, f_gelu, ELEM, 1e-2f},
    {"silu", {"x"}, f_silu, ELEM, 1e-2f},
    {"hardswish", {"x"}, f_hardswish, ELEM, 1e-3f},
    {"hardsigmoid", {"x"}, f_hardsigmoid, ELEM, 1e-3f},
    {"softmax_last", {"x"}, f_softmax_last, ELEM, 1e-2f},
    {"softmax_mid", {"x"}, f_softmax_mid, ELEM, 1e-2f},
    {"log_softmax_last", {"x"}, f_log_softmax_last, ELEM, 1e-2f},
    {"log_softmax_first", {"x"}, f_log_softmax_first, ELEM, 1e-2f},
    {"bn_2d", {"x", "w", "b"}, f_bn_batch, LONG, 1e-2f},
    {"bn_train", {"x", "w", "b"}, f_bn_batch, LONG, 1e-2f},
    {"bn_eval", {"x", "w", "b"}, f_bn_eval, LONG, 1e-2f},
    {"concat", {"a", "b"}, f_concat, ELEM, 1e-2f},
    {"sum_02", {"x"}, f_sum_02, ELEM, 1e-2f},
    {"mean_1k", {"x"}, f_mean_1k, ELEM, 1e-2f},
    {"mean_all", {"x"}, f_mean_all, ELEM, 1e-2f},
    {"xent", {"x"}, f_xent, ELEM, 1e-2f},
    {"xent_smooth", {"x"}, f_xent_smooth, ELEM, 1e-2f},
    {"mse", {"a", "b"}, f_mse, ELEM, 1e-2f},
    {"bce", {"a", "b"}, f_bce, ELEM, 1e-2f},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static int n_inputs(const op_case *c) {
    int n = 0;
    while (n < 3 && c->inputs[n]) n++;
    return n;
}

/* Forward and backward against PyTorch. */
START_TEST(test_against_pytorch) {
    const op_case *c = &cases[_i];
    int n = n_inputs(c);
    cvn_tensor *in[3] = {0};
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.%s", c->name, c->inputs[i]);
        in[i] = ref_tensor(name, true);
    }
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
    int n = n_inputs(c);
    cvn_tensor *in[3] = {0};
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.%s", c->name, c->inputs[i]);
        in[i] = ref_tensor(name, true);
    }
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
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
