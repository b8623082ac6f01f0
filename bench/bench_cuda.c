/* GPU benchmark: convolution layers by cuDNN, by im2col + cuBLAS, by im2col + our tiled SGEMM and
 * by our implicit-GEMM convolution (tuned per shape, and not), and training steps of the reference
 * CNN on each path, in images/s; then the reference CNN trained from a loader over FashionMNIST,
 * batches crossing on the copy stream (overlapping the step before) and on the compute stream.
 * bench/compare_torch_cuda.py measures PyTorch (cuDNN) on the same shapes on the same GPU. Prints
 * a skip line without a GPU.
 *
 *   build-cuda/bench/bench_cuda [--smoke] [--only TEXT] [--path N] [--wino-round MIB]
 *                               [FASHION_MNIST_DIR]
 *   (default /usr/share/datasets/fashion-mnist)
 *
 * --only runs the benchmarks whose name contains TEXT ("conv 256", "resnet", "loader"), --path
 * only path N of cvn_cuda_path_name (0 cuDNN + cuBLAS ... 8 winograd, 9 winograd-4x4): with both,
 * a profiler sees one layer's kernels on one path; the timed runs lie between cvn_cuda_profile's
 * start and stop (ncu --profile-from-start off leaves out warm-up and tuning's trials). After a
 * layer's line, what path 3's tuning chose for it (native picks; with --path, that path's), after
 * its forward and backward line what that tuning timed (tuning: each product's variants, fastest
 * first, the one kept marked; the kept one may be up to 3 % slower where it takes less room), and
 * what cuDNN's search timed on path 0. Each path's figures end with the most GPU memory the backend
 * held during the timed runs (cvn_cuda_memory_peak; not cuBLAS's and cuDNN's handles): for a layer
 * its tensors and their gradients, the tape, and cuDNN's workspace or our scratch (Winograd's
 * room); for training the model, its optimizer's state, the batch, the tape and the scratch.
 * compare_torch_cuda.py's max_memory_reserved is its peer.
 *
 * --wino-round sets the room Winograd's rounds of images aim at (cvn_cuda_set_conv_winograd_round;
 * default 24 MiB): `--only "conv 256" --path 8 --wino-round N` times F(2x2) by all images at once
 * against rounds of N MiB on the large layer's three products (bench/gpu_check.sh rounds).
 *
 * --smoke runs every benchmark once at batch 2 (its numbers mean nothing): bench/gpu_check.sh
 * prepare runs it so on the CPU emulation of the backend (build/bench/bench_cuda_emulated), so
 * that a benchmark that fails does so before it takes a GPU's time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "cvnet.h"
#ifdef CVN_WITH_CUDA
#include "cuda/cuda.h"
#endif

#define REPS 7

static int reps = REPS, smoke_batch; /* --smoke: 1 run, every batch smoke_batch */
static const char *only = "";        /* --only: a part of the names of the benchmarks to run */
static int only_path = -1;           /* --path: the one path to run (-1: all) */
static double wino_round_mib;        /* --wino-round (0: the backend's default) */
static double min_run = 0.05;        /* seconds a run lasts at least */

#ifdef CVN_WITH_CUDA
static bool selected(const char *name) {
    return strstr(name, only) != NULL;
}

/* The paths of kernels/cuda/cuda.h (cvn_cuda_use_path): cuDNN + cuBLAS; im2col + cuBLAS or our
 * GEMM; our convolution as tuned (implicit GEMM or Winograd F(2x2)); our implicit GEMM untuned,
 * tap-major, and on each tensor-core kernel; Winograd F(2x2) and F(4x4) wherever it runs. */
#define PATHS CVN_CUDA_PATHS
static void use_path(int path) {
    cvn_cuda_use_path(path);
}

typedef void (*bench_fn)(void *);
static double median_time(bench_fn fn, void *ctx) {
    double t[REPS];
    fn(ctx); /* warm-up, and our convolution's tuning */
    cvn_cuda_profile(true);
    cvn_cuda_reset_memory_peak(); /* what the timed runs hold, not tuning's trials */
    for (int r = 0; r < reps; r++) {
        int iters = 0;
        double t0 = bench_now(), el;
        do {
            fn(ctx);
            cvn_cuda_synchronize();
            iters++;
            el = bench_now() - t0;
        } while (el < min_run);
        t[r] = el / iters;
    }
    cvn_cuda_profile(false);
    return bench_median(t, reps);
}

static cvn_tensor *gpu_rand(int nd, const int64_t *shape, cvn_rng *r, bool grad) {
    cvn_tensor *h = cvn_tensor_new(CVN_F32, nd, shape);
    cvn_tensor_normal(h, r, 0, 1);
    cvn_tensor *d = cvn_tensor_to(h, CVN_CUDA);
    cvn_tensor_free(h);
    cvn_tensor_set_requires_grad(d, grad);
    return d;
}

typedef struct {
    cvn_tape *t;
    cvn_tensor *x, *w, *b;
    bool backward;
} conv_ctx;

static void run_conv(void *p) {
    conv_ctx *c = p;
    cvn_tape_reset(c->t);
    cvn_conv2d_params pad1 = {1, 1, 1, 1, 1, 1, 1};
    cvn_tensor *y = cvn_conv2d(c->t, c->x, c->w, c->b, &pad1);
    if (c->backward) cvn_backward(c->t, cvn_sum(c->t, y, 0, NULL, false), NULL);
}

static void bench_conv(const char *name, const int64_t *shape, const int64_t *ws, cvn_rng *r) {
    if (!selected(name)) return;
    int64_t xs[4] = {smoke_batch ? smoke_batch : shape[0], shape[1], shape[2], shape[3]};
    conv_ctx c = {cvn_tape_new(CVN_CUDA), gpu_rand(4, xs, r, true), gpu_rand(4, ws, r, true),
                  gpu_rand(1, ws, r, true), false};
    double flops = 2.0 * xs[0] * ws[0] * ws[1] * ws[2] * ws[3] * xs[2] * xs[3];
    for (int bw = 0; bw < 2; bw++) {
        c.backward = bw;
        double sec[PATHS], f = bw ? 3 * flops : flops;
        char picks[512] = "";
        static char tuning[16384];
        tuning[0] = 0;
        printf("%-26s %-7s", name, bw ? "fwd+bwd" : "fwd");
        for (int path = 0; path < PATHS; path++) {
            if (only_path >= 0 && path != only_path) continue;
            use_path(path);
            /* a tape and scratch of its own, so that the memory held is this path's */
            cvn_tape_free(c.t);
            c.t = cvn_tape_new(CVN_CUDA);
            cvn_cuda_release_scratch();
            sec[path] = median_time(run_conv, &c);
            if (path == (only_path >= 0 ? only_path : 3)) { /* what its tuning timed and chose */
                cvn_cuda_conv_picks(picks, sizeof picks);
                cvn_cuda_conv_tuning(tuning, sizeof tuning);
            }
            printf(" %s %.3f ms %.0f GF/s %.0f MiB |", cvn_cuda_path_name(path), sec[path] * 1e3,
                   f / sec[path] * 1e-9, (double)cvn_cuda_memory_peak() / (1 << 20));
        }
        if (only_path < 0)
            printf(" native/cudnn %.2f (untuned %.2f, taps %.2f, mma %.2f, mma-async %.2f, "
                   "winograd %.2f, winograd-4x4 %.2f)",
                   sec[0] / sec[3], sec[0] / sec[4], sec[0] / sec[5], sec[0] / sec[6],
                   sec[0] / sec[7], sec[0] / sec[8], sec[0] / sec[9]);
        printf("\n");
        if (picks[0]) printf("%-26s %-7s native picks: %s\n", name, bw ? "fwd+bwd" : "fwd", picks);
        for (const char *line = tuning; bw && *line;) { /* each product's variants, timed */
            int len = (int)strcspn(line, "\n");
            printf("%-26s tuning %.*s\n", name, len, line);
            line += line[len] ? len + 1 : len;
        }
    }
    char search[4096]; /* what cuDNN timed for this shape on path 0, if it ran */
    if ((only_path < 0 || only_path == 0) && cvn_cuda_cudnn_search(search, sizeof search))
        printf("%-26s cudnn search: %s\n", name, search);
    cvn_tape_free(c.t);
    cvn_tensor_free(c.x), cvn_tensor_free(c.w), cvn_tensor_free(c.b);
}

typedef struct {
    cvn_tape *t;
    cvn_module *net;
    cvn_optim *opt;
    cvn_tensor *x, *y;
} train_ctx;

static void run_train_step(void *p) {
    train_ctx *c = p;
    cvn_tensor *loss = cvn_cross_entropy(c->t, cvn_module_forward(c->net, c->t, c->x), c->y, 0);
    cvn_backward(c->t, loss, NULL);
    cvn_optim_step(c->opt); /* SGD, lr 0.01: one fused kernel per parameter */
    cvn_optim_zero_grad(c->opt);
    cvn_tape_reset(c->t);
}

/* Training steps of a network on [batch, c, h, w] inputs: the reference CNN when arch < 0, else
 * the zoo model's defaults. */
static void bench_training(int arch, int batch, int ch, int hw, cvn_rng *r) {
    if (smoke_batch) batch = smoke_batch;
    cvn_model_config mc = cvn_model_defaults((cvn_arch)(arch < 0 ? 0 : arch), ch, hw, hw, 10);
    cvn_module *net = arch < 0 ? cvn_reference_cnn(r) : cvn_model_new((cvn_arch)arch, &mc, r);
    const char *name = arch < 0 ? "reference CNN" : cvn_arch_name((cvn_arch)arch);
    char full[64];
    snprintf(full, sizeof full, "train %s batch %d", name, batch);
    if (!selected(full)) {
        cvn_module_free(net);
        return;
    }
    train_ctx c = {cvn_tape_new(CVN_CUDA), net, NULL, NULL, NULL};
    cvn_module_to(c.net, CVN_CUDA);
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    c.opt = cvn_optim_new(&oc);
    cvn_optim_add_module(c.opt, c.net);
    int64_t xs[4] = {batch, ch, hw, hw};
    c.x = gpu_rand(4, xs, r, false);
    cvn_tensor *yh = cvn_tensor_new(CVN_I32, 1, xs);
    for (int i = 0; i < batch; i++) ((int32_t *)yh->data)[i] = i % 10;
    c.y = cvn_tensor_to(yh, CVN_CUDA);
    for (int path = 0; path < PATHS; path++) {
        if (only_path >= 0 && path != only_path) continue;
        use_path(path);
        cvn_cuda_release_scratch(); /* what earlier benchmarks' products left */
        double sec = median_time(run_train_step, &c);
        printf("train %-13s batch %-4d %-16s %8.3f ms/step %9.0f images/s %8.1f MiB held\n", name,
               batch, cvn_cuda_path_name(path), sec * 1e3, batch / sec,
               (double)cvn_cuda_memory_peak() / (1 << 20));
    }
    cvn_optim_free(c.opt);
    cvn_tape_free(c.t);
    cvn_module_free(c.net);
    cvn_tensor_free(c.x), cvn_tensor_free(c.y), cvn_tensor_free(yh);
}

/* 20 training steps from the loader (a new epoch where one ends), synchronized only at the end. */
#define LOADER_STEPS 20
typedef struct {
    train_ctx c;
    cvn_loader *l;
} loader_ctx;

static void run_loader_steps(void *p) {
    loader_ctx *lc = p;
    for (int s = 0; s < LOADER_STEPS; s++) {
        if (!cvn_loader_next(lc->l, lc->c.t, &lc->c.x, &lc->c.y) &&
            !cvn_loader_next(lc->l, lc->c.t, &lc->c.x, &lc->c.y))
            return;
        run_train_step(&lc->c);
    }
}

static void bench_loader_training(const char *dir, int batch, cvn_rng *r) {
    if (smoke_batch) batch = smoke_batch;
    char full[64];
    snprintf(full, sizeof full, "train reference CNN from loader batch %d", batch);
    if (!selected(full)) return;
    cvn_dataset *ds = cvn_dataset_fashion_mnist(dir, true);
    if (!ds) {
        printf("train from loader: skipped: %s\n", cvn_last_error());
        return;
    }
    cvn_loader_config cfg = {
        .batch_size = batch, .shuffle = true, .drop_last = true, .seed = 1, .prefetch = true};
    cfg.mean[0] = 0.2860f, cfg.std[0] = 0.3530f;
    loader_ctx lc = {{cvn_tape_new(CVN_CUDA), cvn_reference_cnn(r), NULL, NULL, NULL},
                     cvn_loader_new(ds, &cfg)};
    cvn_module_to(lc.c.net, CVN_CUDA);
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    lc.c.opt = cvn_optim_new(&oc);
    cvn_optim_add_module(lc.c.opt, lc.c.net);
    use_path(0);
    double sec[2]; /* [0] compute stream, [1] copy stream */
    for (int copy = 1; copy >= 0; copy--) {
        cvn_cuda_set_copy_stream(copy);
        sec[copy] = median_time(run_loader_steps, &lc) / LOADER_STEPS;
    }
    cvn_cuda_set_copy_stream(true);
    printf("train reference CNN from loader batch %-4d copy stream %7.3f ms/step %7.0f images/s | "
           "compute stream %7.3f ms/step %7.0f images/s | copy/compute %.2f\n",
           batch, sec[1] * 1e3, batch / sec[1], sec[0] * 1e3, batch / sec[0], sec[0] / sec[1]);
    cvn_optim_free(lc.c.opt);
    cvn_loader_free(lc.l);
    cvn_tape_free(lc.c.t);
    cvn_module_free(lc.c.net);
    cvn_dataset_free(ds);
}
#endif

int main(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            reps = 1, min_run = 0.0, smoke_batch = 2;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--path") && i + 1 < argc)
            only_path = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--wino-round") && i + 1 < argc)
            wino_round_mib = atof(argv[++i]);
        else
            dir = argv[i];
    }
    cvn_tape *probe = cvn_tape_new(CVN_CUDA);
    if (!probe) {
        printf("bench_cuda: skipped: %s\n", cvn_last_error());
        return 0;
    }
    cvn_tape_free(probe);
#ifdef CVN_WITH_CUDA
    printf("# libcvnet bench_cuda: median of %d runs (each >= %.0f ms)%s; %s\n", reps,
           min_run * 1e3, smoke_batch ? ", smoke run at batch 2" : "",
           cvn_cuda_emulated()    ? "CPU emulation: our kernels on every row"
           : cvn_cuda_has_cudnn() ? "cuDNN in use"
                                  : "cuDNN did not start (its rows are our kernels)");
    if (wino_round_mib > 0) {
        cvn_cuda_set_conv_winograd_round((size_t)(wino_round_mib * (1 << 20)));
        printf("# Winograd's rounds of images in %.1f MiB\n", wino_round_mib);
    }
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    bench_conv("conv1 64x1x28x28->32", (int64_t[]){64, 1, 28, 28}, (int64_t[]){32, 1, 3, 3}, &r);
    bench_conv("conv2 64x32x14x14->64", (int64_t[]){64, 32, 14, 14}, (int64_t[]){64, 32, 3, 3}, &r);
    bench_conv("conv 256x64x32x32->128", (int64_t[]){256, 64, 32, 32}, (int64_t[]){128, 64, 3, 3},
               &r);
    /* ResNet-20's three 3x3 shapes at batch 128 */
    bench_conv("resnet 128x16x32x32->16", (int64_t[]){128, 16, 32, 32}, (int64_t[]){16, 16, 3, 3},
               &r);
    bench_conv("resnet 128x32x16x16->32", (int64_t[]){128, 32, 16, 16}, (int64_t[]){32, 32, 3, 3},
               &r);
    bench_conv("resnet 128x64x8x8->64", (int64_t[]){128, 64, 8, 8}, (int64_t[]){64, 64, 3, 3}, &r);
    bench_training(-1, 64, 1, 28, &r);
    bench_training(-1, 256, 1, 28, &r);
    bench_training(CVN_ARCH_RESNET, 128, 3, 32, &r);
    bench_loader_training(dir, 64, &r);
    bench_loader_training(dir, 256, &r);
#else
    (void)dir;
#endif
    return 0;
}
