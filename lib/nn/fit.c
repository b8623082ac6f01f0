/* The training loop for classifiers: fit (train, evaluate, report per epoch) and evaluate. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sums over a loop's batches, kept where they are computed. Reading a number from a GPU waits
 * for every kernel queued before it, so a loop that read each batch's loss would drain the queue
 * once per step; instead each loss (times a weight) is added into one float on its device, and
 * each batch's correct predictions into another (count_hits), and the host reads and clears them
 * only when it needs the numbers: a progress line, the loop's end, every FLUSH_EVERY batches (a
 * float sum of a few dozen values loses nothing that matters; the host sums in double), or every
 * batch when a callback or a per-batch scheduler takes each loss. */
enum { FLUSH_EVERY = 64 };

typedef struct {
    const cvn_backend *be;
    float *dev;        /* [loss sum, hits] on the batches' device, allocated at the first batch */
    double loss, hits; /* what has been read back */
    int64_t pending;   /* batches added to dev since it was last read */
} batch_sums;

/* Adds weight * loss, and the hits of logits against labels when logits is given. */
static cvn_status sums_add(batch_sums *s, const cvn_tensor *loss, float weight,
                           const cvn_tensor *logits, const cvn_tensor *labels) {
    if (!s->dev) {
        s->be = cvn_backend_get(loss->device);
        if (!s->be || !(s->dev = s->be->alloc(2 * sizeof(float)))) return cvn_last_status();
        s->be->zero(s->dev, 2 * sizeof(float));
    }
    s->be->axpy(1, weight, loss->data, s->dev);
    if (logits)
        s->be->count_hits(logits->shape[0], logits->shape[1], s->dev + 1, logits->data,
                          labels->data);
    s->pending++;
    return CVN_OK;
}

/* Reads back what was added since the last call; returns that part of the loss sum. */
static double sums_flush(batch_sums *s) {
    float v[2] = {0.0f, 0.0f};
    if (s->pending) {
        s->be->download(v, s->dev, sizeof v);
        s->be->zero(s->dev, sizeof v);
        s->loss += v[0];
        s->hits += v[1];
        s->pending = 0;
    }
    return v[0];
}

static void sums_free(batch_sums *s) {
    if (s->dev) s->be->free(s->dev);
}

/* cvn_evaluate on sums (whose device floats fit reuses between epochs, so that it allocates
 * nothing after its first). */
static cvn_status evaluate_with(batch_sums *sums, cvn_module *model, cvn_tape *t,
                                cvn_loader *loader, float *loss, float *accuracy) {
    bool was_training = cvn_module_is_training(model);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    cvn_module_train(model, false);
    sums_flush(sums);
    sums->loss = sums->hits = 0;
    int64_t seen = 0;
    cvn_status st = CVN_OK;
    cvn_tensor *x, *y;
    cvn_tape_reset(t);
    while (cvn_loader_next(loader, t, &x, &y)) {
        cvn_tensor *logits = cvn_module_forward(model, t, x);
        cvn_tensor *l = cvn_cross_entropy(t, logits, y, 0.0f);
        if (!l || (st = sums_add(sums, l, (float)x->shape[0], logits, y))) {
            if (!st) st = cvn_last_status();
            break;
        }
        seen += x->shape[0];
        cvn_tape_reset(t);
        if (sums->pending >= FLUSH_EVERY) sums_flush(sums);
    }
    if (!st && cvn_last_status()) st = cvn_last_status(); /* loader failure */
    sums_flush(sums);
    cvn_tape_reset(t);
    cvn_module_train(model, was_training);
    cvn_tape_set_grad_enabled(t, prev);
    if (st) return st;
    if (loss) *loss = seen ? (float)(sums->loss / (double)seen) : NAN;
    if (accuracy) *accuracy = seen ? (float)(sums->hits / (double)seen) : NAN;
    return CVN_OK;
}

cvn_status cvn_evaluate(cvn_module *model, cvn_tape *t, cvn_loader *loader, float *loss,
                        float *accuracy) {
    if (!model || !t || !loader) return cvn_set_error(CVN_ERR_ARG, "evaluate: missing argument");
    batch_sums sums = {0};
    cvn_status st = evaluate_with(&sums, model, t, loader, loss, accuracy);
    sums_free(&sums);
    return st;
}

/* A one-line progress bar redrawn in place on a terminal. */
static void progress_bar(int epoch, int epochs, int64_t batch, int64_t batches, double loss,
                         double ips, double eta) {
    int width = 24, done = batches ? (int)(width * batch / batches) : width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  loss %.4f  %.0f img/s  ETA %.0fs   ", epoch,
            epochs, bar, (long long)batch, (long long)batches, loss, ips, eta);
    fflush(stderr);
}

static cvn_status write_csv(const char *path, const cvn_epoch_stats *rows, int n) {
    char tmp[1024];
    FILE *f = cvn_file_begin(path, tmp, sizeof tmp);
    if (!f) return CVN_ERR_IO;
    fprintf(f, "epoch,train_loss,test_loss,test_accuracy,images_per_s,seconds,lr\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.1f,%.3f,%.6g\n", rows[i].epoch, rows[i].train_loss,
                rows[i].test_loss, rows[i].test_accuracy, rows[i].images_per_s, rows[i].seconds,
                rows[i].lr);
    return cvn_file_commit(f, tmp, path);
}

cvn_status cvn_fit(cvn_module *model, cvn_optim *opt, cvn_tape *t, cvn_loader *train,
                   cvn_loader *test, const cvn_fit_config *config, cvn_epoch_stats *stats_out) {
    if (!model || !opt || !t || !train || !config || config->epochs < 1)
        return cvn_set_error(CVN_ERR_ARG, "fit: model, optimizer, tape, train loader and "
                                          "epochs >= 1 are needed");
    int mode = config->progress;
    if (mode < 0) mode = isatty(STDERR_FILENO) ? 2 : 1;
    cvn_epoch_stats *rows = cvn_calloc((size_t)config->epochs, sizeof *rows);
    if (!rows) return CVN_ERR_NOMEM;
    cvn_status st = CVN_OK;
    int64_t iteration = 0, batches = cvn_loader_num_batches(train);
    batch_sums losses = {0};
    bool each_loss = config->on_batch || (config->scheduler && config->scheduler_per_batch);
    for (int epoch = 1; epoch <= config->epochs && !st; epoch++) {
        cvn_module_train(model, true);
        double t0 = now(), last_print = t0;
        int64_t b = 0, images = 0;
        losses.loss = 0;
        cvn_tensor *x, *y;
        cvn_tape_reset(t);
        while (cvn_loader_next(train, t, &x, &y)) {
            cvn_tensor *loss =
                cvn_cross_entropy(t, cvn_module_forward(model, t, x), y, config->label_smoothing);
            if (!loss || (st = cvn_backward(t, loss, NULL))) {
                if (!st) st = cvn_last_status();
                break;
            }
            if (config->clip_grad_norm > 0.0f &&
                (st = cvn_optim_clip_grad_norm(opt, config->clip_grad_norm, NULL)))
                break;
            if ((st = cvn_optim_step(opt))) break;
            cvn_optim_zero_grad(opt);
            if ((st = sums_add(&losses, loss, 1.0f, NULL, NULL))) break;
            images += x->shape[0]; /* x is the tape's: read before the reset hands it back */
            cvn_tape_reset(t);
            b++;
            if (each_loss) {
                float l = (float)sums_flush(&losses);
                if (config->scheduler && config->scheduler_per_batch &&
                    (st = cvn_scheduler_step(config->scheduler, l)))
                    break;
                if (config->on_batch) config->on_batch(config->ctx, iteration, l);
            }
            iteration++;
            double el = now() - t0;
            if (mode == 2 && (now() - last_print > 0.2 || b == batches)) {
                sums_flush(&losses);
                progress_bar(epoch, config->epochs, b, batches, losses.loss / (double)b,
                             images / el, el / (double)b * (double)(batches - b));
                last_print = now();
            } else if (mode == 1 && (b % 100 == 0 || b == batches)) {
                sums_flush(&losses);
                printf("epoch %d batch %lld/%lld loss %.4f %.0f img/s\n", epoch, (long long)b,
                       (long long)batches, losses.loss / (double)b, images / el);
                fflush(stdout);
            } else if (losses.pending >= FLUSH_EVERY) {
                sums_flush(&losses);
            }
        }
        if (!st && cvn_last_status()) st = cvn_last_status();
        if (st) break;
        if (mode == 2) fprintf(stderr, "\n");
        sums_flush(&losses); /* also waits for the epoch's last kernels: the time below is true */
        cvn_epoch_stats *r = &rows[epoch - 1];
        r->epoch = epoch;
        r->seconds = (float)(now() - t0);
        r->train_loss = b ? (float)(losses.loss / (double)b) : NAN;
        r->images_per_s = (float)((double)images / r->seconds);
        r->lr = cvn_optim_get_lr(opt, 0);
        r->test_loss = r->test_accuracy = NAN;
        if (test && (st = evaluate_with(&losses, model, t, test, &r->test_loss, &r->test_accuracy)))
            break;
        if (config->scheduler && !config->scheduler_per_batch &&
            (st = cvn_scheduler_step(config->scheduler, test ? r->test_loss : r->train_loss)))
            break;
        if (mode && test)
            printf("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f %%, %.0f "
                   "images/s, %.1f s\n",
                   epoch, r->train_loss, r->test_loss, 100.0 * r->test_accuracy, r->images_per_s,
                   r->seconds);
        else if (mode)
            printf("epoch %d: train loss %.4f, %.0f images/s, %.1f s\n", epoch, r->train_loss,
                   r->images_per_s, r->seconds);
        if (config->on_epoch) config->on_epoch(config->ctx, r);
        if (config->csv_path && (st = write_csv(config->csv_path, rows, epoch))) break;
        if (stats_out) *stats_out = *r;
    }
    sums_free(&losses);
    cvn_free(rows);
    return st;
}
