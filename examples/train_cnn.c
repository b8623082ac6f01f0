/* Trains the reference CNN of docs (conv 1->32, pool, conv 32->64, pool, linear 3136->128,
 * dropout 0.25, linear 128->10) on FashionMNIST with SGD + momentum 0.9, then reports test
 * accuracy.
 *
 *   build/examples/train_cnn [--data DIR] [--epochs N] [--batch N] [--lr X] [--limit N]
 *                            [--threads N] [--seed N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cvnet.h"

#define MEAN 0.2860f
#define STD 0.3530f

typedef struct {
    const char *data;
    int epochs, batch, limit, threads;
    float lr;
    uint64_t seed;
} options;

static void usage(void) {
    printf("usage: train_cnn [--data DIR] [--epochs N] [--batch N] [--lr X] [--limit N] "
           "[--threads N] [--seed N]\n"
           "  --data DIR   FashionMNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
           "  --limit N    use the first N training images (default 12000; 0 = all 60000)\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){"/usr/share/datasets/fashion-mnist", 1, 64, 12000, 2, 0.01f, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) return usage(), 1;
        if (!v) return fprintf(stderr, "train_cnn: %s needs a value\n", a), 2;
        if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--epochs"))
            o->epochs = atoi(v);
        else if (!strcmp(a, "--batch"))
            o->batch = atoi(v);
        else if (!strcmp(a, "--lr"))
            o->lr = (float)atof(v);
        else if (!strcmp(a, "--limit"))
            o->limit = atoi(v);
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else
            return fprintf(stderr, "train_cnn: unknown option %s\n", a), 2;
        i++;
    }
    if (o->epochs < 1 || o->batch < 1 || o->limit < 0 || o->threads < 1 || !(o->lr > 0))
        return fprintf(stderr, "train_cnn: epochs, batch and threads must be >= 1, lr > 0\n"), 2;
    return 0;
}

static cvn_tensor *load(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cvn_tensor *t = cvn_idx_load(path);
    if (!t)
        fprintf(stderr,
                "train_cnn: %s\n  (FashionMNIST comes with Debian's dataset-fashion-mnist: "
                "run scripts/install-deps.sh)\n",
                cvn_last_error());
    return t;
}

static cvn_module *reference_cnn(cvn_rng *r) {
    cvn_conv2d_params pad1 = cvn_conv2d_defaults();
    pad1.pad_h = pad1.pad_w = 1;
    cvn_module *m = cvn_sequential_new();
    cvn_sequential_add(m, cvn_conv2d_new(1, 32, 3, 3, &pad1, true, r));
    cvn_sequential_add(m, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(m, cvn_max_pool2d_new(2, 2, 0));
    cvn_sequential_add(m, cvn_conv2d_new(32, 64, 3, 3, &pad1, true, r));
    cvn_sequential_add(m, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(m, cvn_max_pool2d_new(2, 2, 0));
    cvn_sequential_add(m, cvn_flatten_new(1));
    cvn_sequential_add(m, cvn_linear_new(3136, 128, true, r));
    cvn_sequential_add(m, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(m, cvn_dropout_new(0.25f, cvn_rng_next(r)));
    cvn_status s = cvn_sequential_add(m, cvn_linear_new(128, 10, true, r));
    if (s) {
        cvn_module_free(m);
        return NULL;
    }
    return m;
}

/* Copies images idx[0..n) into a normalized [n, 1, 28, 28] batch and their labels. */
static void fill_batch(cvn_tensor *x, cvn_tensor *y, const cvn_tensor *images,
                       const cvn_tensor *labels, const int *idx, int n) {
    float *xv = x->data;
    int32_t *yv = y->data;
    const uint8_t *iv = images->data, *lv = labels->data;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = iv + (int64_t)idx[i] * 784;
        for (int k = 0; k < 784; k++) xv[i * 784 + k] = (src[k] / 255.0f - MEAN) / STD;
        yv[i] = lv[idx[i]];
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    cvn_set_num_threads(o.threads);
    cvn_tensor *xtr = load(o.data, "train-images-idx3-ubyte.gz");
    cvn_tensor *ytr = load(o.data, "train-labels-idx1-ubyte.gz");
    cvn_tensor *xte = load(o.data, "t10k-images-idx3-ubyte.gz");
    cvn_tensor *yte = load(o.data, "t10k-labels-idx1-ubyte.gz");
    if (!xtr || !ytr || !xte || !yte) return 1;
    int ntrain = (int)xtr->shape[0];
    if (o.limit && o.limit < ntrain) ntrain = o.limit;
    int ntest = (int)xte->shape[0];

    cvn_rng rng;
    cvn_rng_seed(&rng, o.seed);
    cvn_module *net = reference_cnn(&rng);
    if (!net) return fprintf(stderr, "train_cnn: %s\n", cvn_last_error()), 1;
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    oc.lr = o.lr, oc.momentum = 0.9f;
    cvn_optim *opt = cvn_optim_new(&oc);
    if (!opt || cvn_optim_add_module(opt, net) < 0)
        return fprintf(stderr, "train_cnn: %s\n", cvn_last_error()), 1;
    printf("train_cnn: reference CNN, %lld parameters, %d training images, SIMD %s, %d threads\n",
           (long long)cvn_module_param_count(net), ntrain, cvn_simd_name(), o.threads);

    cvn_tape *t = cvn_tape_new(CVN_CPU);
    int *order = malloc((size_t)xtr->shape[0] * sizeof *order);
    for (int epoch = 1; epoch <= o.epochs; epoch++) {
        for (int i = 0; i < ntrain; i++) order[i] = i;
        for (int i = ntrain - 1; i > 0; i--) { /* Fisher-Yates from the seeded generator */
            int j = (int)(cvn_rng_next(&rng) % (uint64_t)(i + 1)), k = order[i];
            order[i] = order[j], order[j] = k;
        }
        cvn_module_train(net, true);
        double t0 = now(), loss_sum = 0;
        int batches = 0;
        for (int b0 = 0; b0 + o.batch <= ntrain; b0 += o.batch, batches++) {
            cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){o.batch, 1, 28, 28});
            cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){o.batch});
            if (!x || !y) return fprintf(stderr, "train_cnn: %s\n", cvn_last_error()), 1;
            fill_batch(x, y, xtr, ytr, order + b0, o.batch);
            cvn_tensor *loss = cvn_cross_entropy(t, cvn_module_forward(net, t, x), y, 0.0f);
            if (!loss || cvn_backward(t, loss, NULL))
                return fprintf(stderr, "train_cnn: %s\n", cvn_last_error()), 1;
            loss_sum += ((float *)loss->data)[0];
            cvn_optim_step(opt);
            cvn_optim_zero_grad(opt);
            cvn_tape_reset(t);
            if ((batches + 1) % 50 == 0) {
                printf("  epoch %d  batch %4d  loss %.4f  %.0f images/s\n", epoch, batches + 1,
                       loss_sum / (batches + 1), (batches + 1) * o.batch / (now() - t0));
                fflush(stdout);
            }
        }
        printf("epoch %d: train loss %.4f, %.0f images/s\n", epoch, loss_sum / batches,
               batches * o.batch / (now() - t0));
    }

    /* evaluation: eval mode, no tape recording */
    cvn_module_train(net, false);
    cvn_tape_set_grad_enabled(t, false);
    int correct = 0, idx[256];
    for (int b0 = 0; b0 < ntest; b0 += 256) {
        int n = ntest - b0 < 256 ? ntest - b0 : 256;
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){n, 1, 28, 28});
        cvn_tensor *y = cvn_tape_tensor(t, CVN_I32, 1, (int64_t[]){n});
        fill_batch(x, y, xte, yte, idx, n);
        cvn_tensor *logits = cvn_module_forward(net, t, x);
        if (!logits) return fprintf(stderr, "train_cnn: %s\n", cvn_last_error()), 1;
        const float *l = logits->data;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int c = 1; c < 10; c++) best = l[i * 10 + c] > l[i * 10 + best] ? c : best;
            correct += best == ((int32_t *)y->data)[i];
        }
        cvn_tape_reset(t);
    }
    printf("test accuracy: %.2f %%\n", 100.0 * correct / ntest);

    cvn_optim_free(opt);
    free(order);
    cvn_tape_free(t);
    cvn_module_free(net);
    cvn_tensor_free(xtr), cvn_tensor_free(ytr), cvn_tensor_free(xte), cvn_tensor_free(yte);
    return 0;
}
