/* Assignment 2: the convergence of SGD, Adam, RMSprop and Rprop. The same network from the same
 * seed on the same data is trained with each optimizer; the example writes loss_per_epoch.csv, a
 * chart of the four train-loss curves per epoch and one per iteration (smoothed), and prints a
 * table of final train loss, test accuracy, time and images/s. */
#include <math.h>

#include "example_args.h"

#define N_OPT 4

typedef struct {
    float *loss; /* per iteration */
    int64_t n, cap;
    float epoch_loss[256];
    int epochs;
} curve;

static void on_batch(void *ctx, int64_t it, float loss) {
    curve *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->loss = realloc(c->loss, (size_t)c->cap * sizeof(float));
    }
    c->loss[c->n++] = loss;
}

static void on_epoch(void *ctx, const cvn_epoch_stats *s) {
    curve *c = ctx;
    if (s->epoch <= 256) c->epoch_loss[s->epoch - 1] = s->train_loss, c->epochs = s->epoch;
}

int main(int argc, char **argv) {
    example_args a = example_defaults(3, 10000, -1.0f);
    int rc =
        example_parse(argc, argv, "optimizers",
                      "  --lr X overrides every optimizer's default learning rate\n"
                      "  defaults: SGD lr 0.01 momentum 0.9, Adam 1e-3, RMSprop 1e-3, Rprop 1e-3\n",
                      &a, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    cvn_set_num_threads(a.threads);
    cvn_dataset *train, *test;
    if (example_load(&a, "optimizers", &train, &test)) return 1;

    const char *names[N_OPT] = {"SGD", "Adam", "RMSprop", "Rprop"};
    const cvn_optimizer kinds[N_OPT] = {CVN_SGD, CVN_ADAM, CVN_RMSPROP, CVN_RPROP};
    const float lrs[N_OPT] = {0.01f, 1e-3f, 1e-3f, 1e-3f};
    curve curves[N_OPT] = {{0}};
    cvn_epoch_stats last[N_OPT];
    double seconds[N_OPT];
    for (int k = 0; k < N_OPT; k++) {
        cvn_rng rng;
        cvn_rng_seed(&rng, a.seed); /* the same initial weights for every optimizer */
        cvn_module *net = cvn_reference_cnn(&rng);
        cvn_tape *t = net ? cvn_tape_new(a.device) : NULL;
        cvn_optim_config oc = cvn_optim_defaults(kinds[k]);
        oc.lr = a.lr > 0 ? a.lr : lrs[k];
        if (kinds[k] == CVN_SGD) oc.momentum = 0.9f;
        cvn_optim *opt = cvn_optim_new(&oc);
        cvn_loader_config lc = {.batch_size = a.batch,
                                .shuffle = true,
                                .seed = a.seed,
                                .mean = {FMNIST_MEAN},
                                .std = {FMNIST_STD}};
        cvn_loader *tl = cvn_loader_new(train, &lc); /* same seed: the same batches */
        lc.shuffle = false, lc.batch_size = 256;
        cvn_loader *vl = cvn_loader_new(test, &lc);
        if (!t || cvn_module_to(net, a.device) || !opt || cvn_optim_add_module(opt, net) < 0 ||
            !tl || !vl) {
            fprintf(stderr, "optimizers: %s\n", cvn_last_error());
            return 1;
        }
        printf("== %s (lr %g)\n", names[k], (double)oc.lr);
        cvn_fit_config fc = {.epochs = a.epochs,
                             .progress = -1,
                             .on_batch = on_batch,
                             .on_epoch = on_epoch,
                             .ctx = &curves[k]};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (cvn_fit(net, opt, t, tl, vl, &fc, &last[k])) {
            fprintf(stderr, "optimizers: %s\n", cvn_last_error());
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds[k] = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        cvn_loader_free(tl), cvn_loader_free(vl);
        cvn_optim_free(opt);
        cvn_tape_free(t);
        cvn_module_free(net);
    }

    /* loss_per_epoch.csv, written whole then renamed */
    char path[700], tmp[720];
    snprintf(path, sizeof path, "%s/loss_per_epoch.csv", a.out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fprintf(stderr, "optimizers: cannot write %s\n", tmp), 1;
    fprintf(f, "epoch,sgd,adam,rmsprop,rprop\n");
    for (int e = 0; e < a.epochs && e < 256; e++) {
        fprintf(f, "%d", e + 1);
        for (int k = 0; k < N_OPT; k++) fprintf(f, ",%.6f", curves[k].epoch_loss[e]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return fprintf(stderr, "optimizers: cannot write %s\n", path), 1;

    /* charts: per epoch, and per iteration smoothed with a moving average of 50 batches */
    cvn_series s[N_OPT];
    float *smooth[N_OPT];
    for (int k = 0; k < N_OPT; k++)
        s[k] = (cvn_series){.name = names[k], .n = curves[k].epochs, .y = curves[k].epoch_loss};
    char svg1[700], svg2[700];
    snprintf(svg1, sizeof svg1, "%s/loss_per_epoch.svg", a.out);
    snprintf(svg2, sizeof svg2, "%s/loss_per_iteration.svg", a.out);
    cvn_chart c1 = {"Train loss per epoch (reference CNN, FashionMNIST)",
                    "epoch",
                    "train loss (log scale)",
                    0,
                    0,
                    true};
    if (cvn_svg_line_chart(svg1, &c1, N_OPT, s))
        return fprintf(stderr, "optimizers: %s\n", cvn_last_error()), 1;
    for (int k = 0; k < N_OPT; k++) {
        int64_t n = curves[k].n;
        smooth[k] = malloc((size_t)(n ? n : 1) * sizeof(float));
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            acc += curves[k].loss[i];
            if (i >= 50) acc -= curves[k].loss[i - 50];
            smooth[k][i] = (float)(acc / (double)(i < 50 ? i + 1 : 50));
        }
        s[k] = (cvn_series){.name = names[k], .n = (int)n, .y = smooth[k]};
    }
    cvn_chart c2 = {"Train loss per iteration (moving average of 50 batches)",
                    "iteration",
                    "train loss (log scale)",
                    0,
                    0,
                    true};
    if (cvn_svg_line_chart(svg2, &c2, N_OPT, s))
        return fprintf(stderr, "optimizers: %s\n", cvn_last_error()), 1;

    printf("\n%-8s %16s %15s %9s %10s\n", "optimizer", "final train loss", "test accuracy",
           "time (s)", "images/s");
    int best = 0;
    for (int k = 0; k < N_OPT; k++) {
        printf("%-9s %16.4f %13.2f %% %9.1f %10.0f\n", names[k], last[k].train_loss,
               100.0 * last[k].test_accuracy, seconds[k], last[k].images_per_s);
        if (last[k].test_accuracy > last[best].test_accuracy) best = k;
        free(curves[k].loss), free(smooth[k]);
    }
    printf("\nwrote %s, %s, %s\n", path, svg1, svg2);
    printf("test accuracy: %.2f %% (best: %s)\n", 100.0 * last[best].test_accuracy, names[best]);
    cvn_dataset_free(train), cvn_dataset_free(test);
    return 0;
}
