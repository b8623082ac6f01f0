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

/* Correct predictions in a batch of logits [n, c] (argmax, first maximum on ties). Logits and
 * labels are read through small host buffers (a copy on the CPU, a download from a GPU): as many
 * whole rows at a time as fit, or a row in pieces when one row does not fit. */
enum { READ_BUF = 4096 };

static int64_t count_correct(const cvn_tensor *logits, const cvn_tensor *y) {
    float block[READ_BUF];
    int32_t labels[READ_BUF];
    int64_t n = logits->shape[0], c = logits->shape[1], correct = 0;
    const cvn_backend *be = cvn_backend_get(logits->device);
    const float *l = logits->data;
    int64_t rows = c <= READ_BUF ? READ_BUF / c : 1;
    for (int64_t i0 = 0; i0 < n; i0 += rows) {
        int64_t m = n - i0 < rows ? n - i0 : rows;
        be->download(labels, (const int32_t *)y->data + i0, (size_t)m * sizeof(int32_t));
        if (c <= READ_BUF) be->download(block, l + i0 * c, (size_t)(m * c) * sizeof(float));
        for (int64_t i = 0; i < m; i++) {
            int64_t best = 0;
            float best_v = -INFINITY;
            for (int64_t j0 = 0; j0 < c; j0 += READ_BUF) {
                int64_t w = c - j0 < READ_BUF ? c - j0 : READ_BUF;
                const float *piece = block + i * c;
                if (c > READ_BUF) { /* one row, piece by piece */
                    be->download(block, l + (i0 + i) * c + j0, (size_t)w * sizeof(float));
                    piece = block;
                }
                for (int64_t j = 0; j < w; j++)
                    if (j0 + j == 0 || piece[j] > best_v) best_v = piece[j], best = j0 + j;
            }
            correct += best == labels[i];
        }
    }
    return correct;
}

static float read_scalar(const cvn_tensor *x) {
    float v = NAN;
    cvn_tensor_read(x, &v, sizeof v);
    return v;
}

/* An epoch's training losses, summed where they are computed. Reading a loss from a GPU waits for
 * every kernel queued before it, so a loop that read each batch's loss would drain the queue once
 * per step; instead each loss is added (axpy) into one float on its device, and the host reads and
 * clears that float only when it needs the number: a progress line, the epoch's end, every
 * FLUSH_EVERY batches (a float sum of a few dozen losses loses nothing that matters; the host sums
 * in double), or every batch when a callback or a per-batch scheduler takes each loss. */
enum { FLUSH_EVERY = 64 };

typedef struct {
    const cvn_backend *be;
    float *dev;      /* the running sum on the losses' device, allocated at the first batch */
    double sum;      /* what has been read back */
    int64_t pending; /* losses added to dev since it was last read */
} loss_sum;

static cvn_status loss_add(loss_sum *s, const cvn_tensor *loss) {
    if (!s->dev) {
        s->be = cvn_backend_get(loss->device);
        if (!s->be || !(s->dev = s->be->alloc(sizeof(float)))) return cvn_last_status();
        s->be->zero(s->dev, sizeof(float));
    }
    s->be->axpy(1, 1.0f, loss->data, s->dev);
    s->pending++;
    return CVN_OK;
}

/* Reads back what was added since the last call; returns that part's sum. */
static double loss_flush(loss_sum *s) {
    float v = 0.0f;
    if (s->pending) {
        s->be->download(&v, s->dev, sizeof v);
        s->be->zero(s->dev, sizeof(float));
        s->sum += v;
        s->pending = 0;
    }
    return v;
}

cvn_status cvn_evaluate(cvn_module *model, cvn_tape *t, cvn_loader *loader, float *loss,
                        float *accuracy) {
    if (!model || !t || !loader) return cvn_set_error(CVN_ERR_ARG, "evaluate: missing argument");
    bool was_training = cvn_module_is_training(model);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    cvn_module_train(model, false);
    double total = 0;
    int64_t seen = 0, correct = 0;
    cvn_status st = CVN_OK;
    cvn_tensor *x, *y;
    cvn_tape_reset(t);
    while (cvn_loader_next(loader, t, &x, &y)) {
        cvn_tensor *logits = cvn_module_forward(model, t, x);
        cvn_tensor *l = cvn_cross_entropy(t, logits, y, 0.0f);
        if (!l) {
            st = cvn_last_status();
            break;
        }
        total += (double)read_scalar(l) * (double)x->shape[0];
        correct += count_correct(logits, y);
        seen += x->shape[0];
        cvn_tape_reset(t);
    }
    if (!st && cvn_last_status()) st = cvn_last_status(); /* loader failure */
    cvn_tape_reset(t);
    cvn_module_train(model, was_training);
    cvn_tape_set_grad_enabled(t, prev);
    if (st) return st;
    if (loss) *loss = seen ? (float)(total / (double)seen) : NAN;
    if (accuracy) *accuracy = seen ? (float)correct / (float)seen : NAN;
    return CVN_OK;
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
    loss_sum losses = {0};
    bool each_loss = config->on_batch || (config->scheduler && config->scheduler_per_batch);
    for (int epoch = 1; epoch <= config->epochs && !st; epoch++) {
        cvn_module_train(model, true);
        double t0 = now(), last_print = t0;
        int64_t b = 0, images = 0;
        losses.sum = 0;
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
            if ((st = loss_add(&losses, loss))) break;
            cvn_tape_reset(t);
            images += x->shape[0];
            b++;
            if (each_loss) {
                float l = (float)loss_flush(&losses);
                if (config->scheduler && config->scheduler_per_batch &&
                    (st = cvn_scheduler_step(config->scheduler, l)))
                    break;
                if (config->on_batch) config->on_batch(config->ctx, iteration, l);
            }
            iteration++;
            double el = now() - t0;
            if (mode == 2 && (now() - last_print > 0.2 || b == batches)) {
                loss_flush(&losses);
                progress_bar(epoch, config->epochs, b, batches, losses.sum / (double)b, images / el,
                             el / (double)b * (double)(batches - b));
                last_print = now();
            } else if (mode == 1 && (b % 100 == 0 || b == batches)) {
                loss_flush(&losses);
                printf("epoch %d batch %lld/%lld loss %.4f %.0f img/s\n", epoch, (long long)b,
                       (long long)batches, losses.sum / (double)b, images / el);
                fflush(stdout);
            } else if (losses.pending >= FLUSH_EVERY) {
                loss_flush(&losses);
            }
        }
        if (!st && cvn_last_status()) st = cvn_last_status();
        if (st) break;
        if (mode == 2) fprintf(stderr, "\n");
        loss_flush(&losses); /* also waits for the epoch's last kernels: the time below is true */
        cvn_epoch_stats *r = &rows[epoch - 1];
        r->epoch = epoch;
        r->seconds = (float)(now() - t0);
        r->train_loss = b ? (float)(losses.sum / (double)b) : NAN;
        r->images_per_s = (float)((double)images / r->seconds);
        r->lr = cvn_optim_get_lr(opt, 0);
        r->test_loss = r->test_accuracy = NAN;
        if (test && (st = cvn_evaluate(model, t, test, &r->test_loss, &r->test_accuracy))) break;
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
    if (losses.dev) losses.be->free(losses.dev);
    cvn_free(rows);
    return st;
}
