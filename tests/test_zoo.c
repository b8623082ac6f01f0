/* The model zoo against the same networks built in PyTorch (tests/ref/make_zoo_ref.py): parameter
 * names, order and sizes, eval logits, training-mode loss and gradients; plus the summary, head
 * replacement, freezing, and a finite-difference check through the composite blocks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static cvn_model_config test_config(cvn_arch arch) {
    cvn_model_config c;
    switch (arch) {
    case CVN_ARCH_CNN:
        c = cvn_model_defaults(arch, 1, 28, 28, 10);
        c.n_layers = 3;
        c.kernel_size = 5;
        c.channels[0] = 8, c.channels[1] = 12, c.channels[2] = 16;
        c.batch_norm = true;
        c.n_fc = 2;
        c.fc_units[0] = 24, c.fc_units[1] = 16;
        c.fc_dropout[0] = 0.0f;
        break;
    case CVN_ARCH_RESNET:
        c = cvn_model_defaults(arch, 3, 16, 16, 10);
        c.width_mult = 0.5f, c.depth_mult = 0.34f;
        break;
    case CVN_ARCH_MOBILENET:
        c = cvn_model_defaults(arch, 1, 20, 20, 4);
        c.width_mult = 0.25f;
        break;
    default:
        c = cvn_model_defaults(arch, 3, 16, 16, 5);
        c.width_mult = 0.25f, c.depth_mult = 0.34f;
        break;
    }
    c.dropout = 0.0f;
    return c;
}

/* make_zoo_ref.py's noise(): uniform-looking values in [-1, 1). */
static double noise(int64_t i, int k) {
    double v = sin(12.9898 * (double)i + 78.233 * k) * 43758.5453;
    return (v - floor(v)) * 2 - 1;
}

/* The values make_zoo_ref.py writes into every parameter and buffer. */
static void set_weights(cvn_module *m) {
    for (int k = 0; k < cvn_module_num_params(m); k++) {
        const char *name;
        cvn_tensor *p = cvn_module_param_at(m, k, &name);
        float *v = p->data;
        size_t len = strlen(name);
        bool scale = len > 6 && !strcmp(name + len - 6, "weight");
        double bound = p->ndim >= 2 ? sqrt(3.0 / (double)(cvn_numel(p) / p->shape[0])) : 0;
        for (int64_t i = 0; i < cvn_numel(p); i++) {
            double u = noise(i, k);
            v[i] = (float)(p->ndim >= 2 ? u * bound : scale ? 1 + 0.2 * u : 0.1 * u);
        }
    }
    for (int k = 0; k < cvn_module_num_buffers(m); k++) {
        const char *name;
        cvn_tensor *b = cvn_module_buffer_at(m, k, &name);
        float *v = b->data;
        bool var = strstr(name, "running_var") != NULL;
        for (int64_t i = 0; i < cvn_numel(b); i++) {
            double u = noise(i, 100 + k);
            v[i] = (float)(var ? 0.5 + 0.25 * u : 0.1 * u);
        }
    }
}

static void check_against_pytorch(cvn_arch arch) {
    const char *an = cvn_arch_name(arch);
    cvn_model_config c = test_config(arch);
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_module *m = CK_NOTNULL(cvn_model_new(arch, &c, &r));
    char key[160];
    int n = cvn_module_num_params(m);
    for (int k = 0; k < n; k++) {
        const char *name;
        cvn_tensor *p = cvn_module_param_at(m, k, &name);
        snprintf(key, sizeof key, "zoo.%s.param.%d.%s", an, k, name);
        const ref_array *want = ref_get(key);
        ck_assert_msg(want, "%s: parameter %d is %s, which PyTorch's model does not have there", an,
                      k, name);
        ck_assert_msg(want->v[0] == (float)cvn_numel(p), "%s: %s has %lld elements, PyTorch %g", an,
                      name, (long long)cvn_numel(p), (double)want->v[0]);
    }
    set_weights(m);

    const ref_array *logits = ref_get((snprintf(key, sizeof key, "zoo.%s.logits", an), key));
    ck_assert_ptr_nonnull(logits);
    int64_t shape[4] = {2, c.in_channels, c.height, c.width},
            numel = shape[1] * shape[2] * shape[3] * 2;
    float *xin = malloc((size_t)numel * sizeof *xin);
    for (int64_t i = 0; i < numel; i++) xin[i] = (float)noise(i, 99);
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    cvn_module_train(m, false);
    cvn_tensor *x = CK_NOTNULL(cvn_tape_tensor_f32(t, 4, shape, xin));
    cvn_tensor *y = CK_NOTNULL(cvn_module_forward(m, t, x));
    snprintf(key, sizeof key, "%s eval logits", an);
    expect_close(key, y->data, logits, 1e-4f, 1e-5f);
    cvn_tape_reset(t);

    cvn_module_train(m, true);
    x = CK_NOTNULL(cvn_tape_tensor_f32(t, 4, shape, xin));
    cvn_tensor *labels = CK_NOTNULL(cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){2}));
    ((int32_t *)labels->data)[0] = 3, ((int32_t *)labels->data)[1] = 1;
    cvn_tensor *loss = CK_NOTNULL(cvn_cross_entropy(t, cvn_module_forward(m, t, x), labels, 0.0f));
    CK_OK(cvn_backward(t, loss, NULL));
    snprintf(key, sizeof key, "zoo.%s.loss", an);
    expect_close("train loss", loss->data, ref_get(key), 1e-4f, 1e-6f);
    snprintf(key, sizeof key, "zoo.%s.grad_first", an);
    expect_close("grad of the first parameter",
                 cvn_tensor_grad(cvn_module_param_at(m, 0, NULL))->data, ref_get(key), 2e-3f,
                 2e-5f);
    snprintf(key, sizeof key, "zoo.%s.grad_last", an);
    expect_close("grad of the last parameter",
                 cvn_tensor_grad(cvn_module_param_at(m, n - 1, NULL))->data, ref_get(key), 1e-3f,
                 1e-6f);
    free(xin);
    cvn_tape_free(t);
    cvn_module_free(m);
}

START_TEST(test_cnn_matches_pytorch) {
    check_against_pytorch(CVN_ARCH_CNN);
}
END_TEST
START_TEST(test_resnet_matches_pytorch) {
    check_against_pytorch(CVN_ARCH_RESNET);
}
END_TEST
START_TEST(test_mobilenet_matches_pytorch) {
    check_against_pytorch(CVN_ARCH_MOBILENET);
}
END_TEST
START_TEST(test_efficientnet_matches_pytorch) {
    check_against_pytorch(CVN_ARCH_EFFICIENTNET);
}
END_TEST

/* A tiny MobileNet (residual blocks with squeeze-excite and hard-swish) through finite
 * differences: every gradient path of the composite blocks, in training mode. */
static cvn_module *gc_model;
static cvn_tensor *gc_forward(cvn_tape *t, cvn_tensor *const *in, void *ctx) {
    (void)ctx;
    return cvn_module_forward(gc_model, t, in[0]);
}

START_TEST(test_blocks_gradcheck) {
    for (int arch = CVN_ARCH_RESNET; arch <= CVN_ARCH_EFFICIENTNET; arch++) {
        cvn_model_config c = cvn_model_defaults(arch, 2, 5, 5, 3);
        c.width_mult = 0.1f, c.depth_mult = 0.1f, c.dropout = 0.0f;
        cvn_rng r;
        cvn_rng_seed(&r, 3);
        gc_model = CK_NOTNULL(cvn_model_new(arch, &c, &r));
        cvn_module_train(gc_model, false); /* batch norm with running stats: smooth in the input */
        cvn_tensor *x = CK_NOTNULL(cvn_tensor_new(CVN_F32, 4, (int64_t[]){2, 2, 5, 5}));
        CK_OK(cvn_tensor_normal(x, &r, 0.0f, 1.0f));
        CK_OK(cvn_tensor_set_requires_grad(x, true));
        cvn_status st = cvn_gradcheck(gc_forward, 1, &x, NULL, 1e-2f, 2e-3f, 2e-2f);
        ck_assert_msg(st == CVN_OK, "%s: %s", cvn_arch_name(arch), cvn_last_error());
        cvn_tensor_free(x);
        cvn_module_free(gc_model);
    }
}
END_TEST

START_TEST(test_summary_counts) {
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_model_config c = cvn_model_defaults(CVN_ARCH_CNN, 1, 28, 28, 10);
    cvn_module *m = CK_NOTNULL(cvn_model_new(CVN_ARCH_CNN, &c, &r));
    char *text;
    cvn_model_stats s;
    CK_OK(cvn_model_summary(m, 1, 28, 28, &text, &s));
    /* the reference CNN: 320 + 18,496 + 401,536 + 1,290 parameters; FLOPs 2 x (288 x 784 + 18,432
     * x 196 + 401,408 + 1,280) = 8,483,840 */
    ck_assert_int_eq(s.params, 421642);
    ck_assert_int_eq(s.trainable_params, 421642);
    ck_assert_int_eq(s.flops, 2 * (288 * 784 + 18432 * 196 + 401408 + 1280));
    ck_assert_msg(strstr(text, "features.0: Conv2d") && strstr(text, "[1, 32, 28, 28]") &&
                      strstr(text, "Total params: 421,642"),
                  "summary text:\n%s", text);
    cvn_text_free(text);
    ck_assert_int_eq(cvn_module_freeze(m, "features.", true), 4);
    CK_OK(cvn_model_summary(m, 1, 28, 28, NULL, &s));
    ck_assert_int_eq(s.trainable_params, 421642 - 320 - 18496);
    ck_assert_int_ne(cvn_model_summary(m, 1, 0, 28, NULL, &s), CVN_OK);
    /* a wrong input size is an error of the layer that cannot take it, not a crash */
    ck_assert_int_ne(cvn_model_summary(m, 3, 28, 28, NULL, &s), CVN_OK);
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "conv2d"));
    cvn_module_free(m);
}
END_TEST

START_TEST(test_replace_head_and_freeze) {
    cvn_rng r;
    cvn_rng_seed(&r, 2);
    cvn_model_config c = cvn_model_defaults(CVN_ARCH_RESNET, 3, 8, 8, 10);
    c.width_mult = 0.5f, c.depth_mult = 0.34f;
    cvn_module *m = CK_NOTNULL(cvn_model_new(CVN_ARCH_RESNET, &c, &r));
    cvn_tensor *stem = CK_NOTNULL(cvn_module_find(m, "stem.0.weight"));
    CK_OK(cvn_model_replace_head(m, 2, &r));
    cvn_tensor *w = CK_NOTNULL(cvn_module_find(m, "head.weight"));
    ck_assert_int_eq(w->shape[0], 2);
    ck_assert_int_eq(w->shape[1], 32);
    ck_assert_ptr_eq(cvn_module_find(m, "stem.0.weight"), stem);
    int all = cvn_module_num_params(m);
    ck_assert_int_eq(cvn_module_freeze(m, "", true), all);
    ck_assert_int_eq(cvn_module_freeze(m, "head", false), 2);
    /* a frozen backbone gets no gradient; the head does */
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    cvn_tensor *x = CK_NOTNULL(cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){2, 3, 8, 8}));
    CK_OK(cvn_tensor_normal(x, &r, 0, 1));
    cvn_tensor *y = CK_NOTNULL(cvn_module_forward(m, t, x));
    ck_assert_int_eq(y->shape[1], 2);
    CK_OK(cvn_backward(t, CK_NOTNULL(cvn_sum(t, y, 0, NULL, false)), NULL));
    ck_assert_ptr_null(stem->grad);
    ck_assert_ptr_nonnull(w->grad);
    cvn_tape_free(t);
    /* a model without a Linear head */
    cvn_module *seq = CK_NOTNULL(cvn_sequential_new());
    ck_assert_int_eq(cvn_model_replace_head(seq, 2, &r), CVN_ERR_ARG);
    cvn_module_free(seq);
    cvn_module_free(m);
}
END_TEST

START_TEST(test_config_errors) {
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_model_config c = cvn_model_defaults(CVN_ARCH_CNN, 1, 28, 28, 10);
    c.kernel_size = 4;
    ck_assert_ptr_null(cvn_model_new(CVN_ARCH_CNN, &c, &r));
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "kernel_size"));
    c = cvn_model_defaults(CVN_ARCH_CNN, 1, 28, 28, 10);
    c.n_layers = 9;
    ck_assert_ptr_null(cvn_model_new(CVN_ARCH_CNN, &c, &r));
    c = cvn_model_defaults(CVN_ARCH_RESNET, 1, 28, 28, 0);
    ck_assert_ptr_null(cvn_model_new(CVN_ARCH_RESNET, &c, &r));
    c = cvn_model_defaults(CVN_ARCH_EFFICIENTNET, 1, 28, 28, 10);
    c.width_mult = 0.0f;
    ck_assert_ptr_null(cvn_model_new(CVN_ARCH_EFFICIENTNET, &c, &r));
    ck_assert_ptr_null(cvn_model_new((cvn_arch)7, &c, &r));
    cvn_arch a;
    CK_OK(cvn_arch_parse("mobilenet", &a));
    ck_assert_int_eq(a, CVN_ARCH_MOBILENET);
    ck_assert_int_eq(cvn_arch_parse("vgg", &a), CVN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "vgg"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("zoo");
    TCase *tc = tcase_create("zoo");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cnn_matches_pytorch);
    tcase_add_test(tc, test_resnet_matches_pytorch);
    tcase_add_test(tc, test_mobilenet_matches_pytorch);
    tcase_add_test(tc, test_efficientnet_matches_pytorch);
    tcase_add_test(tc, test_blocks_gradcheck);
    tcase_add_test(tc, test_summary_counts);
    tcase_add_test(tc, test_replace_head_and_freeze);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
