/* A network on the CPU: training images/s (Adam, batch 64), batch-1 inference latency, batch-64
 * inference images/s, the process's peak resident memory and the tape of a training step (its
 * arena's capacity). The network is the reference CNN, or
 * a zoo model at its defaults for 1x28x28 images and 10 classes. Inputs are random images of
 * FashionMNIST's shape (speed does not depend on pixel values). bench/compare_pytorch.py runs this
 * and the same measurements in PyTorch, and prints the ratios.
 *   build/bench/bench_train_cnn [--threads N] [--arch cnn|resnet|mobilenet|efficientnet] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "cvnet.h"

#define REPS 5

int main(int argc, char **argv) {
    int threads = 2;
    cvn_arch arch = CVN_ARCH_CNN;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--threads")) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--arch") && cvn_arch_parse(argv[++i], &arch)) {
            fprintf(stderr, "bench_train_cnn: %s\n", cvn_last_error());
            return 2;
        }
    cvn_set_num_threads(threads);
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_model_config mc = cvn_model_defaults(arch, 1, 28, 28, 10);
    cvn_module *net = arch == CVN_ARCH_CNN ? cvn_reference_cnn(&r) : cvn_model_new(arch, &mc, &r);
    if (!net) {
        fprintf(stderr, "bench_train_cnn: %s\n", cvn_last_error());
        return 1;
    }
    /* the zoo models are 10-50x slower than the reference CNN: fewer steps per timed run */
    int train_steps = arch == CVN_ARCH_CNN ? 40 : 8, n1 = arch == CVN_ARCH_CNN ? 500 : 50,
        n64 = arch == CVN_ARCH_CNN ? 40 : 8;
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    cvn_optim *opt = cvn_optim_new(&oc);
    cvn_optim_add_module(opt, net);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    enum { B = 64, NB = 16 };
    float *xs = malloc((size_t)NB * B * 784 * sizeof(float));
    int32_t ys[NB * B];
    for (int i = 0; i < NB * B * 784; i++) xs[i] = cvn_rng_normal(&r);
    for (int i = 0; i < NB * B; i++) ys[i] = (int32_t)(cvn_rng_next(&r) % 10);
    int64_t shape[4] = {B, 1, 28, 28};

    /* training: steps of forward, backward, Adam */
    double train[REPS];
    for (int rep = -1; rep < REPS; rep++) { /* rep -1 warms up */
        double t0 = bench_now();
        for (int s = 0; s < train_steps; s++) {
            int b = s % NB;
            cvn_tensor *x = cvn_tape_tensor_f32(t, 4, shape, xs + (size_t)b * B * 784);
            cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, shape);
            memcpy(y->data, ys + b * B, sizeof(int32_t) * B);
            cvn_tensor *loss = cvn_cross_entropy(t, cvn_module_forward(net, t, x), y, 0.0f);
            if (!loss || cvn_backward(t, loss, NULL)) {
                fprintf(stderr, "bench_train_cnn: %s\n", cvn_last_error());
                return 1;
            }
            cvn_optim_step(opt);
            cvn_optim_zero_grad(opt);
            cvn_tape_reset(t);
        }
        if (rep >= 0) train[rep] = train_steps * B / (bench_now() - t0);
    }

    /* the tape's arena after the training steps: what one step holds at its peak */
    const double tape_mb = cvn_tape_arena_capacity(t) / 1e6;

    /* inference: eval mode, nothing recorded */
    cvn_module_train(net, false);
    cvn_tape_set_grad_enabled(t, false);
    double lat[REPS], thr[REPS];
    for (int rep = -1; rep < REPS; rep++) {
        double t0 = bench_now();
        for (int i = 0; i < n1; i++) {
            cvn_tensor *x =
                cvn_tape_tensor_f32(t, 4, (int64_t[]){1, 1, 28, 28}, xs + (i % 64) * 784);
            cvn_module_forward(net, t, x);
            cvn_tape_reset(t);
        }
        double t1 = bench_now();
        for (int i = 0; i < n64; i++) {
            cvn_tensor *x = cvn_tape_tensor_f32(t, 4, shape, xs + (size_t)(i % NB) * B * 784);
            cvn_module_forward(net, t, x);
            cvn_tape_reset(t);
        }
        double t2 = bench_now();
        if (rep >= 0) lat[rep] = (t1 - t0) / n1 * 1e3, thr[rep] = n64 * B / (t2 - t1);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("# libcvnet bench_train_cnn: %s, %d threads, SIMD %s, median of %d\n",
           arch == CVN_ARCH_CNN ? "reference CNN" : cvn_arch_name(arch), threads, cvn_simd_name(),
           REPS);
    printf("train_images_per_s %.0f\n", bench_median(train, REPS));
    printf("infer_b1_ms %.4f\n", bench_median(lat, REPS));
    printf("infer_b64_images_per_s %.0f\n", bench_median(thr, REPS));
    printf("peak_rss_mb %.1f\n", ru.ru_maxrss / 1024.0);
    printf("train_tape_mb %.1f\n", tape_mb);
    free(xs);
    cvn_tape_free(t);
    cvn_optim_free(opt);
    cvn_module_free(net);
    return 0;
}
