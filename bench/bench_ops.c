/* Times every op family forward and backward on the reference CNN's shapes, the elementwise
 * kernels per SIMD variant, and the optimizer updates. Prints one line per measurement: name,
 * median ms of 7 runs, GFLOP/s or GB/s. bench/compare_torch.py times the same ops in PyTorch;
 * bench/run.sh joins the two. build/bench/bench_ops [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "cvnet.h"
#include "cpu/cpu.h"

#define REPS 7

typedef void (*bench_fn)(void *ctx);

/* Median seconds of REPS runs after one warm-up, each run repeating fn until 20 ms pass. */
static double median_time(bench_fn fn, void *ctx) {
    double t[REPS];
    fn(ctx);
    for (int r = 0; r < REPS; r++) {
        int iters = 0;
        double t0 = bench_now(), el;
        do {
            fn(ctx);
            iters++;
            el = bench_now() - t0;
        } while (el < 0.02);
        t[r] = el / iters;
    }
    return bench_median(t, REPS);
}

static void report(const char *name, double sec, double flops, double bytes) {
    printf("%-34s %9.3f ms", name, sec * 1e3);
    if (flops > 0) printf("  %8.1f GFLOP/s", flops / sec * 1e-9);
    if (bytes > 0) printf("  %8.1f GB/s", bytes / sec * 1e-9);
    printf("\n");
}

/* ---- one layer of the network, forward (+ backward) on a tape */
typedef struct {
    cvn_tape *t;
    cvn_tensor *x, *w, *b;
    int kind; /* 0 conv pad 1, 1 linear, 2 maxpool, 3 relu, 4 xent, 5 batchnorm, 6 broadcast mul,
               * 7 depthwise 3x3 (stride 1, pad 1), 8 depthwise 5x5 (stride 2, pad 2),
               * 9 pointwise 1x1 */
    bool backward;
    cvn_tensor *target;
} layer_ctx;

static void run_layer(void *p) {
    layer_ctx *c = p;
    cvn_tape_reset(c->t);
    cvn_tensor *y = NULL;
    cvn_conv2d_params pad1 = {1, 1, 1, 1, 1, 1, 1};
    switch (c->kind) {
    case 0:
        y = cvn_conv2d(c->t, c->x, c->w, c->b, &pad1);
        break;
    case 1:
        y = cvn_linear(c->t, c->x, c->w, c->b);
        break;
    case 2:
        y = cvn_max_pool2d(c->t, c->x, 2, 2, 0);
        break;
    case 3:
        y = cvn_relu(c->t, c->x);
        break;
    case 4:
        y = cvn_cross_entropy(c->t, c->x, c->target, 0);
        break;
    case 5:
        y = cvn_batch_norm2d(c->t, c->x, c->w, c->b, NULL, NULL, true, 0.1f, 1e-5f);
        break;
    case 6:
        y = cvn_mul(c->t, c->x, c->w);
        break;
    case 7:
    case 8: {
        const int s = c->kind == 7 ? 1 : 2, g = (int)c->x->shape[1];
        cvn_conv2d_params dw = {s, s, s, s, 1, 1, g};
        y = cvn_conv2d(c->t, c->x, c->w, c->b, &dw);
        break;
    }
    case 9: {
        cvn_conv2d_params pw = cvn_conv2d_defaults();
        y = cvn_conv2d(c->t, c->x, c->w, c->b, &pw);
        break;
    }
    }
    if (!y) {
        fprintf(stderr, "bench: %s\n", cvn_last_error());
        exit(1);
    }
    if (c->backward) {
        cvn_tensor *seed = cvn_tape_tensor(c->t, CVN_F32, y->ndim, y->shape);
        cvn_tensor_fill(seed, 1.0f);
        cvn_backward(c->t, y, seed);
    }
}

static cvn_tensor *rand_tensor(int ndim, const int64_t *shape, cvn_rng *r, bool grad) {
    cvn_tensor *t = cvn_tensor_new(CVN_F32, ndim, shape);
    cvn_tensor_normal(t, r, 0, 1);
    cvn_tensor_set_requires_grad(t, grad);
    return t;
}

static void bench_layer(const char *name, int kind, int xnd, const int64_t *xs, int wnd,
                        const int64_t *ws, double fwd_flops, double bytes, cvn_rng *r) {
    layer_ctx c = {
        cvn_tape_new(CVN_CPU), rand_tensor(xnd, xs, r, true), NULL, NULL, kind, false, NULL};
    if (wnd) {
        c.w = rand_tensor(wnd, ws, r, true);
        c.b = rand_tensor(1, ws, r, true);
    }
    if (kind == 4) {
        c.target = cvn_tensor_new(CVN_I32, 1, xs);
        for (int64_t i = 0; i < xs[0]; i++) ((int32_t *)c.target->data)[i] = (int32_t)(i % xs[1]);
    }
    char label[96];
    snprintf(label, sizeof label, "%s fwd", name);
    report(label, median_time(run_layer, &c), fwd_flops, bytes);
    c.backward = true;
    snprintf(label, sizeof label, "%s fwd+bwd", name);
    report(label, median_time(run_layer, &c), 3 * fwd_flops, 0);
    cvn_tape_free(c.t);
    cvn_tensor_free(c.x), cvn_tensor_free(c.w), cvn_tensor_free(c.b), cvn_tensor_free(c.target);
}

/* ---- raw kernels per SIMD variant */
typedef struct {
    const cvn_backend *be;
    int64_t n;
    float *x, *y;
    int kind;
} kernel_ctx;

static void run_kernel(void *p) {
    kernel_ctx *k = p;
    if (k->kind < 0)
        k->be->softmax_fwd(false, k->n / 1000, 1000, 1, k->y, k->x);
    else
        k->be->act_fwd(k->kind, 0.1f, k->n, k->y, k->x);
}

/* ---- optimizer updates: buf = w, g, s0, s1, s2 */
typedef struct {
    const cvn_backend *be;
    int64_t n;
    cvn_update_params p;
    float *buf[5];
} update_ctx;

static void run_update(void *p) {
    update_ctx *u = p;
    u->be->optim_update(&u->p, u->n, u->buf[0], u->buf[1], u->buf[2], u->buf[3], u->buf[4]);
}

int main(int argc, char **argv) {
    int threads = 2;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
    cvn_set_num_threads(threads);
    printf("# libcvnet bench_ops: %d threads, SIMD %s; median of %d runs\n", threads,
           cvn_simd_name(), REPS);
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    /* the reference CNN at batch 64 */
    bench_layer("conv1 64x1x28x28 -> 32", 0, 4, (int64_t[]){64, 1, 28, 28}, 4,
                (int64_t[]){32, 1, 3, 3}, 2.0 * 64 * 32 * 9 * 784, 0, &r);
    bench_layer("conv2 64x32x14x14 -> 64", 0, 4, (int64_t[]){64, 32, 14, 14}, 4,
                (int64_t[]){64, 32, 3, 3}, 2.0 * 64 * 64 * 288 * 196, 0, &r);
    bench_layer("conv 256x64x32x32 -> 128", 0, 4, (int64_t[]){256, 64, 32, 32}, 4,
                (int64_t[]){128, 64, 3, 3}, 2.0 * 256 * 128 * 576 * 1024, 0, &r);
    bench_layer("linear 64x3136 -> 128", 1, 2, (int64_t[]){64, 3136}, 2, (int64_t[]){128, 3136},
                2.0 * 64 * 3136 * 128, 0, &r);
    bench_layer("maxpool2 64x32x28x28", 2, 4, (int64_t[]){64, 32, 28, 28}, 0, NULL, 0,
                64.0 * 32 * 784 * 4 * 1.25, &r);
    bench_layer("relu 64x32x28x28", 3, 4, (int64_t[]){64, 32, 28, 28}, 0, NULL, 0,
                64.0 * 32 * 784 * 8, &r);
    bench_layer("batchnorm 64x32x28x28", 5, 4, (int64_t[]){64, 32, 28, 28}, 1, (int64_t[]){32}, 0,
                64.0 * 32 * 784 * 12, &r);
    /* squeeze-excite's scaling: x times a per-(image, channel) gate broadcast over H and W */
    bench_layer("se_scale 64x64x16x16 * 64x64x1x1", 6, 4, (int64_t[]){64, 64, 16, 16}, 4,
                (int64_t[]){64, 64, 1, 1}, 0, 64.0 * 64 * 256 * 8, &r);
    /* MobileNet's depthwise convolutions (groups = channels) */
    bench_layer("dwconv3 64x72x28x28", 7, 4, (int64_t[]){64, 72, 28, 28}, 4,
                (int64_t[]){72, 1, 3, 3}, 2.0 * 64 * 72 * 784 * 9, 0, &r);
    bench_layer("dwconv5/2 64x96x28x28", 8, 4, (int64_t[]){64, 96, 28, 28}, 4,
                (int64_t[]){96, 1, 5, 5}, 2.0 * 64 * 96 * 196 * 25, 0, &r);
    /* MobileNet's pointwise (1x1) convolutions: an expansion on a large plane, a projection on a
     * 7 x 7 one (a vector tail), an expansion on 4 x 4 */
    bench_layer("pwconv 64x16x28x28 -> 72", 9, 4, (int64_t[]){64, 16, 28, 28}, 4,
                (int64_t[]){72, 16, 1, 1}, 2.0 * 64 * 72 * 16 * 784, 0, &r);
    bench_layer("pwconv 64x240x7x7 -> 40", 9, 4, (int64_t[]){64, 240, 7, 7}, 4,
                (int64_t[]){40, 240, 1, 1}, 2.0 * 64 * 40 * 240 * 49, 0, &r);
    bench_layer("pwconv 64x96x4x4 -> 576", 9, 4, (int64_t[]){64, 96, 4, 4}, 4,
                (int64_t[]){576, 96, 1, 1}, 2.0 * 64 * 576 * 96 * 16, 0, &r);
    bench_layer("cross_entropy 64x10", 4, 2, (int64_t[]){64, 10}, 0, NULL, 0, 0, &r);

    /* elementwise kernels per instruction set: the scalar build is the in-run reference */
    int64_t n = 1 << 20;
    kernel_ctx k = {NULL, n, malloc((size_t)n * 4), malloc((size_t)n * 4), 0};
    for (int64_t i = 0; i < n; i++) k.x[i] = (float)(i % 1000) * 0.01f - 5.0f;
    static const char *const kinds[] = {"relu", "leaky_relu", "sigmoid",   "tanh",
                                        "gelu", "silu",       "hardswish", "hardsigmoid"};
    static const char *const variants[] = {"scalar", "avx2", "avx512"};
    for (int kind = -1; kind < 8; kind++) {
        double base = 0;
        for (int v = 0; v < 3; v++) {
            k.be = cvn_cpu_backend_variant(variants[v]);
            if (!k.be) continue;
            k.kind = kind;
            double sec = median_time(run_kernel, &k);
            if (v == 0) base = sec;
            char label[96];
            snprintf(label, sizeof label, "%s 1M [%s]", kind < 0 ? "softmax" : kinds[kind],
                     variants[v]);
            printf("%-34s %9.3f ms  %8.1f GB/s  %5.2fx scalar\n", label, sec * 1e3,
                   8.0 * n / sec * 1e-9, base / sec);
        }
    }
    free(k.x), free(k.y);

    /* the fused optimizer updates, one step over 1M parameters (SGD without momentum) */
    static const char *const rules[] = {"sgd", "adam", "adamw", "rmsprop", "rprop"};
    update_ctx u = {cvn_cpu_backend_variant(cvn_simd_name()), n, {0}, {NULL}};
    for (int b = 0; b < 5; b++) {
        u.buf[b] = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) u.buf[b][i] = 0.01f * (float)(i % 97) - 0.3f * (b == 1);
    }
    for (int64_t i = 0; i < n; i++) u.buf[3][i] = 0.01f; /* positive second moments, step sizes */
    u.p.lr = 1e-3f, u.p.beta1 = 0.9f, u.p.beta2 = 0.999f, u.p.eps = 1e-8f, u.p.bias1 = 0.1f;
    u.p.bias2_sqrt = 0.05f, u.p.alpha = 0.99f, u.p.eta_minus = 0.5f, u.p.eta_plus = 1.2f;
    u.p.step_min = 1e-6f, u.p.step_max = 50.0f;
    for (int rule = CVN_UPD_SGD; rule <= CVN_UPD_RPROP; rule++) {
        u.p.kind = rule;
        char label[96];
        snprintf(label, sizeof label, "%s update 1M", rules[rule]);
        report(label, median_time(run_update, &u), 0, 0);
    }
    for (int b = 0; b < 5; b++) free(u.buf[b]);
    return 0;
}
