/* The command line every example shares (../shared/DESIGN.md): --help, --data, --epochs, --batch,
 * --lr, --limit, --threads, --seed, --device, --out, plus the example's own flags through `extra`.
 * Header-only: each example is one program. */
#ifndef CVN_EXAMPLE_ARGS_H
#define CVN_EXAMPLE_ARGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cvnet.h"

typedef struct {
    const char *data;  /* "fashion-mnist" or a directory of FashionMNIST-format IDX files */
    int epochs, batch, threads;
    long limit;        /* N training images (examples say which); 0 = all */
    float lr;          /* < 0: the example's default */
    unsigned long long seed;
    cvn_device device;
    char out[512];
} example_args;

/* FashionMNIST's pixel mean and standard deviation, for the loaders' normalization. */
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f

/* The defaults the examples share (FashionMNIST, batch 64, 2 threads, seed 1, CPU); each picks
 * its own epochs, training subset (0 = all) and learning rate (< 0: the example's own). */
static inline example_args example_defaults(int epochs, long limit, float lr) {
    return (example_args){.data = "fashion-mnist",
                          .epochs = epochs,
                          .batch = 64,
                          .threads = 2,
                          .limit = limit,
                          .lr = lr,
                          .seed = 1,
                          .device = CVN_CPU};
}

/* extra(name, value, ctx) returns 1 when it took the flag, 0 when unknown, -1 on a bad value. */
typedef int (*example_extra_fn)(const char *name, const char *value, void *ctx);

static inline int example_parse(int argc, char **argv, const char *prog, const char *usage_extra,
                                example_args *a, example_extra_fn extra, void *ctx) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
            printf("usage: %s [options]\n"
                   "  --data fashion-mnist|DIR  FashionMNIST (Debian's package) or IDX files in DIR\n"
                   "  --epochs N   --batch N   --lr X   --limit N (N training images, 0 = all)\n"
                   "  --threads N  --seed N    --device cpu|cuda   --out DIR (default runs/%s-TIME)\n"
                   "%s",
                   prog, prog, usage_extra ? usage_extra : "");
            return 1;
        }
        if (!v) return fprintf(stderr, "%s: %s needs a value (see --help)\n", prog, k), 2;
        char *end = NULL;
        if (!strcmp(k, "--data")) a->data = v;
        else if (!strcmp(k, "--epochs")) a->epochs = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--batch")) a->batch = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--lr")) a->lr = strtof(v, &end);
        else if (!strcmp(k, "--limit")) a->limit = strtol(v, &end, 10);
        else if (!strcmp(k, "--threads")) a->threads = (int)strtol(v, &end, 10);
        else if (!strcmp(k, "--seed")) a->seed = strtoull(v, &end, 10);
        else if (!strcmp(k, "--out")) snprintf(a->out, sizeof a->out, "%s", v);
        else if (!strcmp(k, "--device")) {
            if (!strcmp(v, "cpu")) a->device = CVN_CPU;
            else if (!strcmp(v, "cuda")) a->device = CVN_CUDA;
            else return fprintf(stderr, "%s: --device is cpu or cuda\n", prog), 2;
        } else {
            int took = extra ? extra(k, v, ctx) : 0;
            if (took == 0) return fprintf(stderr, "%s: unknown option %s (see --help)\n", prog, k), 2;
            if (took < 0) return fprintf(stderr, "%s: bad value for %s: %s\n", prog, k, v), 2;
        }
        if (end && *end) return fprintf(stderr, "%s: bad value for %s: %s\n", prog, k, v), 2;
        i++;
    }
    if (a->epochs < 1 || a->batch < 1 || a->threads < 1 || a->limit < 0)
        return fprintf(stderr, "%s: epochs, batch and threads must be >= 1, limit >= 0\n", prog), 2;
    if (!a->out[0]) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(a->out, sizeof a->out, "runs/%s-%s", prog, stamp);
    }
    mkdir("runs", 0755);
    if (mkdir(a->out, 0755) != 0 && access(a->out, W_OK) != 0)
        return fprintf(stderr, "%s: cannot create %s\n", prog, a->out), 2;
    return 0;
}

/* Whether dir/name exists. */
static inline bool example_exists(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Keeps --limit samples of *ds drawn at random (from seed): the first N of a class-sorted image
 * folder would be one class. Prints the error and returns 1 on failure. */
static inline int example_limit(cvn_dataset **ds, long limit, uint64_t seed, const char *prog) {
    if (!limit || limit >= cvn_dataset_len(*ds)) return 0;
    cvn_dataset *parts[2];
    float ratios[2] = {(float)limit, (float)(cvn_dataset_len(*ds) - limit)};
    if (cvn_dataset_split(*ds, 2, ratios, seed, parts))
        return fprintf(stderr, "%s: --limit: %s\n", prog, cvn_last_error()), 1;
    cvn_dataset_free(*ds);
    cvn_dataset_free(parts[1]);
    *ds = parts[0];
    return 0;
}

/* FashionMNIST train and test sets per --data and --limit (its first N images: FashionMNIST is
 * not sorted by class); prints the error and returns 1 on failure. */
static inline int example_load(const example_args *a, const char *prog, cvn_dataset **train,
                               cvn_dataset **test) {
    const char *dir = strcmp(a->data, "fashion-mnist") ? a->data : NULL;
    *train = cvn_dataset_fashion_mnist(dir, true);
    *test = *train ? cvn_dataset_fashion_mnist(dir, false) : NULL;
    if (!*train || !*test) {
        fprintf(stderr, "%s: %s\n", prog, cvn_last_error());
        cvn_dataset_free(*train);
        return 1;
    }
    if (a->limit && a->limit < cvn_dataset_len(*train)) cvn_dataset_limit(*train, a->limit);
    return 0;
}

#endif
