/* The op cases shared by test_ops (CPU against PyTorch and finite differences) and test_cuda
 * (GPU against the same PyTorch values): each names a reference case of tests/ref/ops_ref.txt, its
 * inputs, and a function that applies the op. Included once per test program. */
#ifndef CVN_OP_CASES_H
#define CVN_OP_CASES_H

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
/* eval mode: normalizes with the running statistics of the reference case; ctx, when given,
 * holds them on another device ({running_mean, running_var}) */
static cvn_tensor *f_bn_eval(cvn_tape *t, cvn_tensor *const *in, void *c) {
    static cvn_tensor *rm, *rv;
    if (!rm) rm = ref_tensor("bn_eval.rm", false), rv = ref_tensor("bn_eval.rv", false);
    cvn_tensor *const *stats = c;
    return cvn_batch_norm2d(t, in[0], in[1], in[2], stats ? stats[0] : rm, stats ? stats[1] : rv,
                            false, 0.1f, 1e-5f);
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
/* the reference targets as an i32 tensor on the tape's device */
static cvn_tensor *targets_on(cvn_tape *t) {
    static cvn_tensor *host;
    const ref_array *r = ref_get("xent.target");
    if (!host) {
        host = cvn_tensor_new(CVN_I32, 1, r->shape);
        for (int64_t i = 0; i < r->n; i++) ((int32_t *)host->data)[i] = (int32_t)r->v[i];
    }
    cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, r->shape);
    return y && cvn_tensor_copy(y, host) == CVN_OK ? y : NULL;
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
    {"mul_gate", {"a", "b"}, f_mul, ELEM, 1e-2f},
    {"div_both", {"a", "b"}, f_div, ELEM, 1e-3f},
    {"sub_scalar", {"a", "b"}, f_sub, ELEM, 1e-2f},
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

#endif
