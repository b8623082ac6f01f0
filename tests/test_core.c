/* Core: errors, RNG, tensors, tape semantics, arena steady state, modules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(test_rng) {
    cvn_rng a, b;
    cvn_rng_seed(&a, 123);
    cvn_rng_seed(&b, 123);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(cvn_rng_next(&a), cvn_rng_next(&b));
    cvn_rng_seed(&b, 124);
    ck_assert_uint_ne(cvn_rng_next(&a), cvn_rng_next(&b));
    double s = 0, s2 = 0, mn = 1, mx = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = cvn_rng_uniform(&a);
        mn = u < mn ? u : mn, mx = u > mx ? u : mx;
        double z = cvn_rng_normal(&a);
        s += z, s2 += z * z;
    }
    ck_assert(mn >= 0.0 && mx < 1.0 && mn < 1e-3 && mx > 1 - 1e-3);
    ck_assert_msg(fabs(s / n) < 0.01 && fabs(s2 / n - 1.0) < 0.02, "normal mean %g var %g", s / n,
                  s2 / n);
}
END_TEST

START_TEST(test_tensor_basics) {
    int64_t shape[3] = {2, 3, 4};
    cvn_tensor *t = CK_NOTNULL(cvn_tensor_new(CVN_F32, 3, shape));
    ck_assert_int_eq(cvn_numel(t), 24);
    ck_assert_int_eq(t->strides[0], 12);
    ck_assert_int_eq(t->strides[2], 1);
    ck_assert(cvn_is_contiguous(t));
    char buf[32];
    ck_assert_str_eq(cvn_shape_str(t, buf, sizeof buf), "[2, 3, 4]");
    for (int i = 0; i < 24; i++) ck_assert_float_eq(((float *)t->data)[i], 0.0f);
    CK_OK(cvn_tensor_fill(t, 2.5f));
    ck_assert_float_eq(cvn_tensor_f32(t)[23], 2.5f);
    ck_assert_ptr_null(cvn_tensor_i32(t));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_DTYPE);
    float vals[3] = {1, 2, 3};
    ck_assert_ptr_null(cvn_tensor_from_f32(1, (int64_t[]){4}, vals, 3));
    ck_assert(strstr(cvn_last_error(), "[4]") != NULL);
    ck_assert_ptr_null(cvn_tensor_new(CVN_F32, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}));
    ck_assert_ptr_null(cvn_tensor_new(CVN_F32, 1, (int64_t[]){-3}));
    cvn_tensor *u = CK_NOTNULL(cvn_tensor_new(CVN_U8, 1, (int64_t[]){5}));
    ck_assert_int_eq(cvn_tensor_set_requires_grad(u, true), CVN_ERR_DTYPE);
    cvn_tensor_free(u);
    cvn_tensor_free(t);
    cvn_tensor_free(NULL);
    ck_assert_str_eq(cvn_status_name(CVN_ERR_SHAPE), "CVN_ERR_SHAPE");
}
END_TEST

/* y = x * x + x  ->  dy/dx = 2x + 1: a tensor used twice gets both contributions. */
START_TEST(test_tape_accumulates) {
    float v[4] = {-1.5f, 0.0f, 2.0f, 3.25f};
    cvn_tensor *x = cvn_tensor_from_f32(1, (int64_t[]){4}, v, 4);
    cvn_tensor_set_requires_grad(x, true);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *y = cvn_sum(t, cvn_add(t, cvn_mul(t, x, x), x), 0, NULL, false);
    ck_assert_int_eq(cvn_tape_num_nodes(t), 3);
    CK_OK(cvn_backward(t, y, NULL));
    for (int i = 0; i < 4; i++) ck_assert_float_eq(((float *)x->grad->data)[i], 2 * v[i] + 1);
    /* backward twice on one graph is an error */
    ck_assert_int_eq(cvn_backward(t, y, NULL), CVN_ERR_STATE);
    /* a second step accumulates into the leaf's gradient until zero_grad */
    cvn_tape_reset(t);
    ck_assert_int_eq(cvn_tape_num_nodes(t), 0);
    y = cvn_sum(t, cvn_mul_scalar(t, x, 3.0f), 0, NULL, false);
    CK_OK(cvn_backward(t, y, NULL));
    for (int i = 0; i < 4; i++) ck_assert_float_eq(((float *)x->grad->data)[i], 2 * v[i] + 4);
    cvn_tensor_zero_grad(x);
    ck_assert_float_eq(((float *)x->grad->data)[2], 0.0f);
    /* a non-scalar output needs a seed gradient */
    cvn_tape_reset(t);
    y = cvn_mul_scalar(t, x, 2.0f);
    ck_assert_int_eq(cvn_backward(t, y, NULL), CVN_ERR_SHAPE);
    cvn_tape_free(t);
    cvn_tensor_free(x);
}
END_TEST

START_TEST(test_no_grad) {
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 1, (int64_t[]){3});
    cvn_tensor_set_requires_grad(x, true);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    ck_assert(prev);
    cvn_tensor *y = cvn_relu(t, x);
    ck_assert_int_eq(cvn_tape_num_nodes(t), 0);
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(cvn_backward(t, y, NULL), CVN_ERR_STATE);
    cvn_tape_set_grad_enabled(t, prev);
    /* inputs without requires_grad record nothing either */
    cvn_tensor *c = cvn_tensor_new(CVN_F32, 1, (int64_t[]){3});
    cvn_relu(t, c);
    ck_assert_int_eq(cvn_tape_num_nodes(t), 0);
    cvn_tape_free(t);
    cvn_tensor_free(x);
    cvn_tensor_free(c);
}
END_TEST

/* ---- counting allocator: after the first step, a step allocates nothing */

static cvn_module *small_cnn(cvn_rng *r) {
    cvn_conv2d_params pad1 = cvn_conv2d_defaults();
    pad1.pad_h = pad1.pad_w = 1;
    cvn_module *features = cvn_sequential_new();
    cvn_sequential_add(features, cvn_conv2d_new(1, 8, 3, 3, &pad1, true, r));
    cvn_sequential_add(features, cvn_batchnorm2d_new(8, 0.1f, 1e-5f));
    cvn_sequential_add(features, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(features, cvn_max_pool2d_new(2, 2, 0));
    cvn_module *classifier = cvn_sequential_new();
    cvn_sequential_add(classifier, cvn_flatten_new(1));
    cvn_sequential_add(classifier, cvn_linear_new(8 * 7 * 7, 16, true, r));
    cvn_sequential_add(classifier, cvn_activation_new(CVN_ACT_HARDSWISH, 0));
    cvn_sequential_add(classifier, cvn_dropout_new(0.25f, 7));
    cvn_sequential_add(classifier, cvn_linear_new(16, 10, true, r));
    cvn_module *net = cvn_sequential_new();
    cvn_sequential_add_named(net, "features", features);
    cvn_sequential_add_named(net, "classifier", classifier);
    return net;
}

static float train_step(cvn_module *net, cvn_tape *t, const float *xs, const int32_t *ys) {
    cvn_tensor *x = cvn_tape_tensor_f32(t, 4, (int64_t[]){4, 1, 14, 14}, xs);
    cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){4});
    memcpy(y->data, ys, 4 * sizeof(int32_t));
    cvn_tensor *loss = cvn_cross_entropy(t, cvn_module_forward(net, t, x), y, 0.0f);
    ck_assert_msg(loss != NULL, "%s", cvn_last_error());
    CK_OK(cvn_backward(t, loss, NULL));
    float l = ((float *)loss->data)[0];
    /* plain SGD so the step changes the weights */
    for (int i = 0; i < cvn_module_num_params(net); i++) {
        cvn_tensor *p = cvn_module_param_at(net, i, NULL);
        float *w = p->data, *g = p->grad->data;
        for (int64_t k = 0; k < cvn_numel(p); k++) w[k] -= 0.05f * g[k];
    }
    cvn_module_zero_grad(net);
    cvn_tape_reset(t);
    return l;
}

/* Backward gives each op result's gradient back once it has propagated it, so a step's arena holds
 * the forward's tensors plus the few gradients in flight, not one per op: a chain of 8 ops on
 * 64 Ki floats ends backward with at most 3 tensors' worth more than the forward left (the dead
 * ones are reused). A retained result keeps its gradient, and the leaf's is right. */
START_TEST(test_backward_recycles_gradients) {
    enum { N = 65536, OPS = 8 };
    float *v = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) v[i] = (float)(i % 7) - 3.0f; /* 3 of 7 below zero */
    cvn_tensor *x = CK_NOTNULL(cvn_tensor_from_f32(1, (int64_t[]){N}, v, N));
    cvn_tensor_set_requires_grad(x, true);
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    for (int step = 0; step < 2; step++) { /* the second on the settled arena */
        cvn_tensor *y = CK_NOTNULL(cvn_relu(t, x)), *kept = NULL, *dropped = NULL;
        for (int k = 1; k < OPS; k++) {
            y = CK_NOTNULL(cvn_mul_scalar(t, y, 2.0f));
            if (k == 2) dropped = y;
            if (k == 5) CK_OK(cvn_tensor_retain_grad(kept = y));
        }
        cvn_tensor *loss = CK_NOTNULL(cvn_sum(t, y, 0, NULL, false));
        const size_t forward = cvn_tape_arena_used(t);
        cvn_tensor_zero_grad(x);
        CK_OK(cvn_backward(t, loss, NULL));
        const size_t grown = cvn_tape_arena_used(t) - forward, tensor = N * sizeof(float);
        ck_assert_msg(grown <= 3 * tensor + 4096, "backward grew the arena by %zu bytes (%d ops)",
                      grown, OPS);
        ck_assert_ptr_null(dropped->grad);
        ck_assert_ptr_nonnull(loss->grad); /* where backward started */
        const float *kg = CK_NOTNULL(kept->grad)->data, *xg = x->grad->data;
        for (int i = 0; i < N; i++) {
            ck_assert_float_eq(kg[i], 4.0f); /* two more doublings after it */
            ck_assert_float_eq(xg[i], v[i] > 0 ? 128.0f : 0.0f);
        }
        cvn_tape_reset(t);
    }
    cvn_tape_free(t);
    cvn_tensor_free(x);
    free(v);
}
END_TEST

START_TEST(test_steady_state_no_alloc) {
    count_allocations(true);
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_module *net = small_cnn(&r);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    float xs[4 * 196];
    for (int i = 0; i < 4 * 196; i++) xs[i] = cvn_rng_normal(&r);
    int32_t ys[4] = {1, 3, 5, 7};
    float first = train_step(net, t, xs, ys);
    train_step(net, t, xs, ys); /* the arena settles into one chunk at the first reset */
    long before = allocations_counted();
    float last = 0;
    for (int step = 0; step < 20; step++) last = train_step(net, t, xs, ys);
    long counted = allocations_counted() - before;
    cvn_tape_free(t);
    cvn_module_free(net);
    count_allocations(false);
    ck_assert_msg(counted == 0, "%ld heap allocations in 20 steady steps", counted);
    ck_assert_msg(last < first, "loss did not fall: %g -> %g", (double)first, (double)last);
}
END_TEST

START_TEST(test_module_names_and_init) {
    cvn_rng r;
    cvn_rng_seed(&r, 2);
    cvn_module *net = small_cnn(&r);
    const char *expect[] = {"features.0.weight",   "features.0.bias",     "features.1.weight",
                            "features.1.bias",     "classifier.1.weight", "classifier.1.bias",
                            "classifier.4.weight", "classifier.4.bias"};
    ck_assert_int_eq(cvn_module_num_params(net), 8);
    for (int i = 0; i < 8; i++) {
        const char *name;
        CK_NOTNULL(cvn_module_param_at(net, i, &name));
        ck_assert_str_eq(name, expect[i]);
    }
    ck_assert_int_eq(cvn_module_num_buffers(net), 2);
    const char *bname;
    cvn_module_buffer_at(net, 1, &bname);
    ck_assert_str_eq(bname, "features.1.running_var");
    ck_assert_ptr_nonnull(cvn_module_find(net, "classifier.4.bias"));
    ck_assert_ptr_null(cvn_module_find(net, "classifier.9.bias"));
    ck_assert_int_eq(cvn_module_param_count(net), 8 * 9 + 8 + 8 + 8 + 392 * 16 + 16 + 16 * 10 + 10);
    /* Linear(392, 16): weights uniform in +-1/sqrt(392), variance bound^2 / 3 */
    cvn_tensor *w = cvn_module_find(net, "classifier.1.weight");
    float bound = 1.0f / sqrtf(392.0f);
    double s2 = 0;
    for (int64_t i = 0; i < cvn_numel(w); i++) {
        float v = ((float *)w->data)[i];
        ck_assert(fabsf(v) <= bound);
        s2 += (double)v * v;
    }
    double var = s2 / (double)cvn_numel(w), want = bound * bound / 3.0;
    ck_assert_msg(fabs(var - want) < 0.1 * want, "weight variance %g, expected %g", var, want);
    /* batch norm starts at weight 1, bias 0, running var 1 */
    ck_assert_float_eq(((float *)cvn_module_find(net, "features.1.weight")->data)[3], 1.0f);
    ck_assert_float_eq(((float *)cvn_module_find(net, "features.1.running_var")->data)[0], 1.0f);
    ck_assert_str_eq(cvn_module_kind(cvn_sequential_at(cvn_sequential_at(net, 0), 1)),
                     "BatchNorm2d");
    /* train / eval reach every child */
    cvn_module_train(net, false);
    ck_assert(!cvn_module_is_training(cvn_sequential_at(cvn_sequential_at(net, 1), 3)));
    /* bad constructor arguments give errors */
    ck_assert_ptr_null(cvn_linear_new(0, 3, true, &r));
    ck_assert_ptr_null(
        cvn_conv2d_new(3, 4, 3, 3, &(cvn_conv2d_params){1, 1, 0, 0, 1, 1, 2}, true, &r));
    ck_assert_int_eq(cvn_sequential_add_named(net, "a.b", cvn_flatten_new(1)), CVN_ERR_ARG);
    cvn_module_free(net);
}
END_TEST

/* In eval mode dropout is the identity and batch norm uses its running statistics, so two
 * forwards of one input agree exactly; in training they differ (dropout). */
START_TEST(test_train_eval_modes) {
    cvn_rng r;
    cvn_rng_seed(&r, 3);
    cvn_module *net = small_cnn(&r);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    float xs[4 * 196];
    for (int i = 0; i < 4 * 196; i++) xs[i] = cvn_rng_normal(&r);
    cvn_tensor *x = cvn_tape_tensor_f32(t, 4, (int64_t[]){4, 1, 14, 14}, xs);
    cvn_tensor *a = cvn_module_forward(net, t, x), *b = cvn_module_forward(net, t, x);
    ck_assert(memcmp(a->data, b->data, 40 * sizeof(float)) != 0);
    cvn_module_train(net, false);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    a = cvn_module_forward(net, t, x), b = cvn_module_forward(net, t, x);
    ck_assert(memcmp(a->data, b->data, 40 * sizeof(float)) == 0);
    cvn_tape_set_grad_enabled(t, prev);
    cvn_tape_free(t);
    cvn_module_free(net);
}
END_TEST

/* A Sequential at inference runs Conv2d with an eval-mode BatchNorm2d (folded into its weights),
 * the activation and / or MaxPool2d after it as one fused op: the same logits as the recorded
 * (unfused) forward. Conv -> BN -> ReLU -> pool, conv -> LeakyReLU (no pool), conv (no bias) -> BN
 * -> pool (no activation), a 5x5 conv the CPU does not fuse, and a conv followed by a pool with
 * padding (not fusable). */
START_TEST(test_sequential_fuses_at_inference) {
    cvn_rng r;
    cvn_rng_seed(&r, 5);
    cvn_conv2d_params pad1 = cvn_conv2d_defaults(), pad2 = pad1;
    pad1.pad_h = pad1.pad_w = 1;
    pad2.pad_h = pad2.pad_w = 2;
    cvn_module *net = cvn_sequential_new();
    cvn_module *parts[] = {cvn_conv2d_new(3, 16, 3, 3, &pad1, true, &r),
                           cvn_batchnorm2d_new(16, 0.1f, 1e-3f), /* folded into the conv */
                           cvn_activation_new(CVN_ACT_RELU, 0),
                           cvn_max_pool2d_new(2, 2, 0), /* 15x17 -> 7x8 */
                           cvn_conv2d_new(16, 24, 3, 3, &pad1, true, &r),
                           cvn_activation_new(CVN_ACT_LEAKY_RELU, 0.1f),
                           cvn_conv2d_new(24, 20, 3, 3, &pad1, false, &r),
                           cvn_batchnorm2d_new(20, 0.1f, 1e-5f), /* folded, conv without bias */
                           cvn_max_pool2d_new(2, 0, 0),          /* -> 3x4 */
                           cvn_conv2d_new(20, 8, 5, 5, &pad2, true, &r),
                           cvn_activation_new(CVN_ACT_SIGMOID, 0),
                           cvn_conv2d_new(8, 8, 3, 3, &pad1, true, &r),
                           cvn_max_pool2d_new(3, 1, 1),
                           cvn_flatten_new(1),
                           cvn_linear_new(8 * 3 * 4, 5, true, &r)};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        CK_OK(cvn_sequential_add(net, parts[i]));
    for (int bi = 1; bi <= 7; bi += 6) { /* the batch norms' affine and running statistics */
        cvn_tensor *v[4] = {
            cvn_module_param_at(parts[bi], 0, NULL), cvn_module_param_at(parts[bi], 1, NULL),
            cvn_module_buffer_at(parts[bi], 0, NULL), cvn_module_buffer_at(parts[bi], 1, NULL)};
        for (int j = 0; j < 4; j++)
            for (int64_t i = 0; i < cvn_numel(v[j]); i++)
                cvn_tensor_f32(v[j])[i] =
                    j == 3 ? 0.2f + fabsf(cvn_rng_normal(&r)) : 0.5f * cvn_rng_normal(&r);
    }
    cvn_module_train(net, false);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    float xs[2 * 3 * 15 * 17];
    for (int i = 0; i < 2 * 3 * 15 * 17; i++) xs[i] = cvn_rng_normal(&r);
    cvn_tensor *x = cvn_tape_tensor_f32(t, 4, (int64_t[]){2, 3, 15, 17}, xs);
    cvn_tensor *a = CK_NOTNULL(cvn_module_forward(net, t, x));
    ck_assert_int_eq(cvn_tape_num_nodes(t), 15); /* recorded: one node per layer */
    cvn_tape_set_grad_enabled(t, false);
    cvn_tensor *b = CK_NOTNULL(cvn_module_forward(net, t, x));
    ck_assert_int_eq(cvn_tape_num_nodes(t), 15);
    ck_assert_int_eq(b->shape[1], 5);
    for (int i = 0; i < 10; i++)
        ck_assert_msg(fabsf(cvn_tensor_f32(a)[i] - cvn_tensor_f32(b)[i]) <=
                          1e-5f * (1 + fabsf(cvn_tensor_f32(a)[i])),
                      "logit %d: fused %.7g, recorded %.7g", i, (double)cvn_tensor_f32(b)[i],
                      (double)cvn_tensor_f32(a)[i]);
    /* the fused forward holds less of the tape than the layers run one by one, unrecorded (no
     * conv output before its activation or pool) */
    cvn_tape_reset(t);
    x = cvn_tape_tensor_f32(t, 4, (int64_t[]){2, 3, 15, 17}, xs);
    size_t before = cvn_tape_arena_used(t);
    CK_NOTNULL(cvn_module_forward(net, t, x));
    size_t fused = cvn_tape_arena_used(t) - before;
    cvn_tape_reset(t);
    cvn_tensor *y = cvn_tape_tensor_f32(t, 4, (int64_t[]){2, 3, 15, 17}, xs);
    before = cvn_tape_arena_used(t);
    for (int i = 0; i < cvn_sequential_len(net) && y; i++)
        y = cvn_module_forward(cvn_sequential_at(net, i), t, y);
    CK_NOTNULL(y);
    ck_assert_msg(fused < cvn_tape_arena_used(t) - before, "fused %zu bytes, layer by layer %zu",
                  fused, cvn_tape_arena_used(t) - before);
    cvn_tape_free(t);
    cvn_module_free(net);
}
END_TEST

/* cvn_batch_norm2d_fold against its formula: w * s and (b - mean) * s + beta with
 * s = gamma / sqrt(var + eps); without a bias or an affine part; and its argument errors. */
START_TEST(test_batch_norm_fold) {
    const float w[6] = {1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 4.0f}, b[2] = {0.25f, -1.5f};
    const float g[2] = {2.0f, -0.5f}, be[2] = {0.1f, 0.2f}, m[2] = {1.0f, -2.0f},
                v[2] = {3.0f, 0.5f};
    const float eps = 1e-3f;
    cvn_tensor *tw = cvn_tensor_from_f32(2, (int64_t[]){2, 3}, w, 6);
    cvn_tensor *tb = cvn_tensor_from_f32(1, (int64_t[]){2}, b, 2);
    cvn_tensor *tg = cvn_tensor_from_f32(1, (int64_t[]){2}, g, 2);
    cvn_tensor *tbe = cvn_tensor_from_f32(1, (int64_t[]){2}, be, 2);
    cvn_tensor *tm = cvn_tensor_from_f32(1, (int64_t[]){2}, m, 2);
    cvn_tensor *tv = cvn_tensor_from_f32(1, (int64_t[]){2}, v, 2);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    for (int affine = 0; affine < 2; affine++) {
        cvn_tensor *fw, *fb;
        CK_OK(cvn_batch_norm2d_fold(t, tw, affine ? tb : NULL, affine ? tg : NULL,
                                    affine ? tbe : NULL, tm, tv, eps, &fw, &fb));
        ck_assert_int_eq(fw->ndim, 2);
        for (int o = 0; o < 2; o++) {
            const double s = (affine ? g[o] : 1.0) / sqrt((double)v[o] + eps);
            for (int i = 0; i < 3; i++)
                ck_assert_double_eq_tol(cvn_tensor_f32(fw)[o * 3 + i], w[o * 3 + i] * s, 1e-6);
            ck_assert_double_eq_tol(cvn_tensor_f32(fb)[o],
                                    ((affine ? b[o] : 0.0) - m[o]) * s + (affine ? be[o] : 0.0),
                                    1e-6);
        }
    }
    cvn_tensor *fw, *fb, *short_v = cvn_tensor_from_f32(1, (int64_t[]){1}, v, 1);
    ck_assert_int_eq(cvn_batch_norm2d_fold(t, tw, tb, tg, tbe, tm, short_v, eps, &fw, &fb),
                     CVN_ERR_SHAPE);
    ck_assert_ptr_null(fw);
    ck_assert_int_eq(cvn_batch_norm2d_fold(t, tw, tb, tg, tbe, NULL, tv, eps, &fw, &fb),
                     CVN_ERR_ARG);
    ck_assert_int_eq(cvn_batch_norm2d_fold(t, tw, tb, tg, tbe, tm, tv, 0.0f, &fw, &fb),
                     CVN_ERR_ARG);
    ck_assert_int_eq(cvn_batch_norm2d_fold(t, tw, tb, tg, tbe, tm, tv, eps, NULL, &fb),
                     CVN_ERR_ARG);
    cvn_tape_free(t);
    cvn_tensor *all[] = {tw, tb, tg, tbe, tm, tv, short_v};
    for (int i = 0; i < 7; i++) cvn_tensor_free(all[i]);
}
END_TEST

START_TEST(test_threads) {
    ck_assert_int_eq(cvn_set_num_threads(0), CVN_ERR_ARG);
    CK_OK(cvn_set_num_threads(1));
    ck_assert_int_eq(cvn_get_num_threads(), 1);
    CK_OK(cvn_set_num_threads(2));
    ck_assert_int_eq(cvn_get_num_threads(), 2);
    ck_assert_ptr_null(cvn_tape_new(CVN_CUDA));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_DEVICE);
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>

#include "core/core.h" /* cvn_tape_data_alloc / _free */

/* Under ASan the arena poisons what it has not handed out: the bytes right after a tensor, and
 * everything once the tape is reset, so that a kernel writing past its tensor, or code reading a
 * tape's tensor after the reset, is reported (cvn_fit read its batch's size so until this test's
 * commit). */
START_TEST(test_arena_poisons_unused) {
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    float v[10] = {0};
    int64_t s[1] = {10};
    cvn_tensor *a = CK_NOTNULL(cvn_tape_tensor_f32(t, 1, s, v));
    float *p = a->data;
    ck_assert(!__asan_region_is_poisoned(p, sizeof v));
    ck_assert(__asan_address_is_poisoned(p + 10));
    ck_assert(__asan_address_is_poisoned((char *)(p + 10) + 63));
    cvn_tensor *b = CK_NOTNULL(cvn_tape_tensor_f32(t, 1, s, v));
    ck_assert(!__asan_region_is_poisoned(b->data, sizeof v));
    /* scratch given back is poisoned until an allocation of about its size takes it again */
    float *scratch = CK_NOTNULL(cvn_tape_data_alloc(t, 4096));
    cvn_tape_data_free(t, scratch, 4096);
    ck_assert(__asan_address_is_poisoned(scratch));
    ck_assert(CK_NOTNULL(cvn_tape_data_alloc(t, 4000)) == scratch);
    ck_assert(!__asan_region_is_poisoned(scratch, 4000));
    ck_assert(__asan_address_is_poisoned((char *)scratch + 4000));
    cvn_tape_data_free(t, scratch, 4000);
    ck_assert(cvn_tape_data_alloc(t, 1024) != scratch); /* over twice the size: not taken */
    cvn_tape_reset(t);
    ck_assert(__asan_address_is_poisoned(p));
    ck_assert(__asan_address_is_poisoned(a)); /* the tensor's struct: the meta arena's */
    cvn_tape_free(t);
}
END_TEST
#endif

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rng);
#if defined(__SANITIZE_ADDRESS__)
    tcase_add_test(tc, test_arena_poisons_unused);
#endif
    tcase_add_test(tc, test_tensor_basics);
    tcase_add_test(tc, test_tape_accumulates);
    tcase_add_test(tc, test_no_grad);
    tcase_add_test(tc, test_steady_state_no_alloc);
    tcase_add_test(tc, test_backward_recycles_gradients);
    tcase_add_test(tc, test_module_names_and_init);
    tcase_add_test(tc, test_train_eval_modes);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_sequential_fuses_at_inference);
    tcase_add_test(tc, test_batch_norm_fold);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
