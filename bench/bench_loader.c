/* What the data loader costs training: images/s of training steps fed three ways, medians of
 * several alternating rounds:
 *   preloaded  - the whole set normalized to f32 once, batches are slices (the fastest feed);
 *   loader     - cvn_loader with random crop + flip and its prefetch thread (what examples use);
 *   no thread  - the same loader preparing each batch in the training thread.
 * The target: loader >= 95 % of preloaded. FashionMNIST with the reference CNN by default;
 * --data cifar10:DIR (binary batches or the JPEG folders of `make data`) with --arch resnet.
 *   build/bench/bench_loader [--threads 2] [--arch cnn|resnet|...] [--data
 * fashion-mnist|cifar10:DIR]
 *                            [--steps 60] [--rounds 5] [--batch 64] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "cvnet.h"

typedef struct {
    cvn_module *net;
    cvn_optim *opt;
    cvn_tape *t;
} trainer;

static int step(trainer *tr, cvn_tensor *x, cvn_tensor *y) {
    cvn_tensor *loss = cvn_cross_entropy(tr->t, cvn_module_forward(tr->net, tr->t, x), y, 0.0f);
    if (!loss || cvn_backward(tr->t, loss, NULL)) return 1;
    cvn_optim_step(tr->opt);
    cvn_optim_zero_grad(tr->opt);
    cvn_tape_reset(tr->t);
    return 0;
}

/* steps from pre-normalized images: contiguous batch slices of a shuffled copy */
static double run_preloaded(trainer *tr, const float *xs, const int32_t *ys, int64_t n, int c,
                            int h, int w, int batch, int steps) {
    int64_t pixels = (int64_t)c * h * w, nb = n / batch, shape[4] = {batch, c, h, w};
    static int64_t next;
    double t0 = bench_now();
    for (int s = 0; s < steps; s++, next++) {
        int64_t b = next % nb;
        cvn_tensor *x = cvn_tape_tensor_f32(tr->t, 4, shape, xs + b * batch * pixels);
        cvn_tensor *y = cvn_tape_tensor(tr->t, CVN_I32, 1, shape);
        if (!x || !y) return -1;
        memcpy(y->data, ys + b * batch, sizeof(int32_t) * (size_t)batch);
        if (step(tr, x, y)) return -1;
    }
    return steps * batch / (bench_now() - t0);
}

static double run_loader(trainer *tr, cvn_loader *l, int batch, int steps) {
    double t0 = bench_now();
    for (int s = 0; s < steps; s++) {
        cvn_tensor *x, *y;
        while (!cvn_loader_next(l, tr->t, &x, &y))
            if (cvn_last_error()[0]) return -1;
        if (step(tr, x, y)) return -1;
    }
    return steps * batch / (bench_now() - t0);
}

static bool exists(const char *dir, const char *name) {
    char p[1100];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

int main(int argc, char **argv) {
    int threads = 2, steps = 60, rounds = 5, batch = 64;
    const char *arch_name = NULL, *data = "fashion-mnist";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--arch"))
            arch_name = argv[i + 1];
        else if (!strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else
            return fprintf(stderr, "bench_loader: unknown option %s\n", argv[i]), 2;
    }
    if (steps < 1 || rounds < 1 || rounds > 99 || batch < 1)
        return fprintf(stderr, "bench_loader: --steps, --batch >= 1, --rounds 1-99\n"), 2;
    cvn_set_num_threads(threads);
    cvn_dataset *ds = NULL;
    bool cifar = !strncmp(data, "cifar10:", 8);
    if (!strcmp(data, "fashion-mnist")) {
        ds = cvn_dataset_fashion_mnist(NULL, true);
    } else if (cifar) {
        char tr[1100];
        snprintf(tr, sizeof tr, "%s/train", data + 8);
        ds = exists(data + 8, "data_batch_1.bin") ? cvn_dataset_cifar10(data + 8, true)
                                                  : cvn_dataset_image_folder(tr, 3, 32, 32);
    } else {
        return fprintf(stderr, "bench_loader: --data fashion-mnist or cifar10:DIR\n"), 2;
    }
    if (!ds) return fprintf(stderr, "bench_loader: %s\n", cvn_last_error()), 1;
    int c, h, w;
    cvn_dataset_image_shape(ds, &c, &h, &w);
    int64_t n = cvn_dataset_len(ds), pixels = (int64_t)c * h * w;
    cvn_arch arch = CVN_ARCH_CNN;
    if (arch_name && cvn_arch_parse(arch_name, &arch))
        return fprintf(stderr, "bench_loader: %s\n", cvn_last_error()), 2;
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    cvn_model_config mc = cvn_model_defaults(arch, c, h, w, cvn_dataset_num_classes(ds));
    trainer tr = {cvn_model_new(arch, &mc, &r), NULL, cvn_tape_new(CVN_CPU)};
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    tr.opt = cvn_optim_new(&oc);
    if (!tr.net || !tr.opt || !tr.t || cvn_optim_add_module(tr.opt, tr.net))
        return fprintf(stderr, "bench_loader: %s\n", cvn_last_error()), 1;

    /* the pre-loaded copy: normalized with the loader's formula, in a shuffled order */
    cvn_loader_config lc = {.batch_size = batch, .shuffle = true, .seed = 7};
    for (int k = 0; k < 3; k++) lc.mean[k] = 0.5f, lc.std[k] = 0.25f;
    float *xs = malloc((size_t)(n * pixels) * sizeof(float));
    int32_t *ys = malloc((size_t)n * sizeof(int32_t));
    cvn_tape *prep = cvn_tape_new(CVN_CPU);
    cvn_loader *once = cvn_loader_new(ds, &lc);
    if (!xs || !ys || !prep || !once) return fprintf(stderr, "bench_loader: out of memory\n"), 1;
    int64_t at = 0;
    cvn_tensor *x, *y;
    while (cvn_loader_next(once, prep, &x, &y)) {
        memcpy(xs + at * pixels, x->data, (size_t)(x->shape[0] * pixels) * sizeof(float));
        memcpy(ys + at, y->data, (size_t)x->shape[0] * sizeof(int32_t));
        at += x->shape[0];
        cvn_tape_reset(prep);
    }
    cvn_loader_free(once);
    cvn_tape_free(prep);

    lc.crop_padding = h >= 32 ? 4 : 2;
    lc.hflip = true;
    lc.prefetch = true;
    cvn_loader *threaded = cvn_loader_new(ds, &lc);
    lc.prefetch = false;
    cvn_loader *inline_ = cvn_loader_new(ds, &lc);
    if (!threaded || !inline_) return fprintf(stderr, "bench_loader: %s\n", cvn_last_error()), 1;

    double pre[99], thr[99], inl[99];
    for (int k = -1; k < rounds; k++) { /* round -1 warms up; the three feeds alternate */
        double a = run_preloaded(&tr, xs, ys, n, c, h, w, batch, steps);
        double b = run_loader(&tr, threaded, batch, steps);
        double d = run_loader(&tr, inline_, batch, steps);
        if (a < 0 || b < 0 || d < 0)
            return fprintf(stderr, "bench_loader: %s\n", cvn_last_error()), 1;
        if (k >= 0) pre[k] = a, thr[k] = b, inl[k] = d;
    }
    double mp = bench_median(pre, rounds), mt = bench_median(thr, rounds),
           mi = bench_median(inl, rounds);
    printf("# libcvnet bench_loader: %s on %s (%lld images %dx%dx%d), batch %d, Adam, %d threads, "
           "%d steps per round, median of %d rounds\n",
           cvn_arch_name(arch), cifar ? "CIFAR-10" : "FashionMNIST", (long long)n, c, h, w, batch,
           threads, steps, rounds);
    printf("preloaded_images_per_s      %8.0f\n", mp);
    printf("loader_thread_images_per_s  %8.0f  (crop %d + flip; %.1f %% of preloaded)\n", mt,
           lc.crop_padding, 100.0 * mt / mp);
    printf(
        "loader_inline_images_per_s  %8.0f  (same transforms, no thread; %.1f %% of preloaded)\n",
        mi, 100.0 * mi / mp);
    free(xs), free(ys);
    cvn_loader_free(threaded), cvn_loader_free(inline_);
    cvn_optim_free(tr.opt);
    cvn_tape_free(tr.t);
    cvn_module_free(tr.net);
    cvn_dataset_free(ds);
    return 0;
}
