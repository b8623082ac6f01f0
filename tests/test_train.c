/* The training loop end to end on a small synthetic image set: cvn_fit learns it, writes its CSV,
 * and over ten epochs makes no heap allocation after the first epoch and keeps its resident memory
 * flat. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* 240 8x8 images: class 0 is bright on the left half, class 1 on the right, plus noise. */
static void write_set(const char *img, const char *lab, int n, uint64_t seed) {
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    FILE *fi = fopen(img, "wb"), *fl = fopen(lab, "wb");
    unsigned char hi[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0,
                            0, 8, 0, 0, 0, 8};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(hi, 1, 16, fi);
    fwrite(hl, 1, 8, fl);
    for (int i = 0; i < n; i++) {
        unsigned char label = (unsigned char)(i % 2), px[64];
        for (int j = 0; j < 64; j++) {
            bool bright = ((j % 8) < 4) == (label == 0);
            float v = (bright ? 160.0f : 60.0f) + 40.0f * cvn_rng_normal(&r);
            px[j] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        fwrite(px, 1, 64, fi);
        fputc(label, fl);
    }
    fclose(fi), fclose(fl);
}

/* conv - batch norm - ReLU - pool - dropout - linear, the same weights on every call */
static cvn_module *small_net(void) {
    cvn_rng r;
    cvn_rng_seed(&r, 3);
    cvn_module *net = cvn_sequential_new();
    cvn_sequential_add(
        net, cvn_conv2d_new(1, 4, 3, 3, &(cvn_conv2d_params){1, 1, 1, 1, 1, 1, 1}, true, &r));
    cvn_sequential_add(net, cvn_batchnorm2d_new(4, 0.1f, 1e-5f));
    cvn_sequential_add(net, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(net, cvn_max_pool2d_new(2, 2, 0));
    cvn_sequential_add(net, cvn_flatten_new(1));
    cvn_sequential_add(net, cvn_dropout_new(0.1f, 5));
    cvn_sequential_add(net, cvn_linear_new(64, 2, true, &r));
    return net;
}

static cvn_optim *adam_for(cvn_module *net) {
    cvn_optim *opt = cvn_optim_new(&(cvn_optim_config){.kind = CVN_ADAM,
                                                       .lr = 1e-2f,
                                                       .beta1 = 0.9f,
                                                       .beta2 = 0.999f,
                                                       .eps = 1e-8f,
                                                       .eta_minus = 0.5f,
                                                       .eta_plus = 1.2f});
    ck_assert_int_eq(cvn_optim_add_module(opt, net), 0);
    return opt;
}

/* What cvn_evaluate should report, computed here: mean cross-entropy (log-sum-exp in double) and
 * the share of first-maximum predictions equal to the label. */
static void evaluate_by_hand(cvn_module *net, cvn_tape *t, cvn_loader *l, double *loss,
                             double *acc) {
    cvn_module_train(net, false);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    double total = 0;
    int64_t seen = 0, hits = 0;
    cvn_tensor *x, *y;
    while (cvn_loader_next(l, t, &x, &y)) {
        cvn_tensor *logits = cvn_module_forward(net, t, x);
        int64_t n = logits->shape[0], c = logits->shape[1];
        const float *z = logits->data;
        const int32_t *label = y->data;
        for (int64_t i = 0; i < n; i++) {
            double m = z[i * c], s = 0;
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (z[i * c + j] > z[i * c + best]) best = j;
            for (int64_t j = 0; j < c; j++) m = fmax(m, z[i * c + j]);
            for (int64_t j = 0; j < c; j++) s += exp(z[i * c + j] - m);
            total += m + log(s) - z[i * c + label[i]];
            hits += best == label[i];
        }
        seen += n;
        cvn_tape_reset(t);
    }
    cvn_tape_set_grad_enabled(t, prev);
    *loss = total / (double)seen;
    *acc = (double)hits / (double)seen;
}

typedef struct {
    long mallocs[11];
    long rss_kb[11];
} epoch_log;

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void on_epoch(void *ctx, const cvn_epoch_stats *s) {
    epoch_log *log = ctx;
    log->mallocs[s->epoch] = allocations_counted();
    log->rss_kb[s->epoch] = rss_kb();
}

START_TEST(test_fit_learns_and_stays_flat) {
    char img[128], lab[128], timg[128], tlab[128], csv[128];
    snprintf(img, sizeof img, "%s/img", test_dir()),
        snprintf(lab, sizeof lab, "%s/lab", test_dir());
    snprintf(timg, sizeof timg, "%s/timg", test_dir()),
        snprintf(tlab, sizeof tlab, "%s/tlab", test_dir());
    snprintf(csv, sizeof csv, "%s/metrics.csv", test_dir());
    write_set(img, lab, 240, 1);
    write_set(timg, tlab, 100, 2);
    count_allocations(true);
    cvn_dataset *train = CK_NOTNULL(cvn_dataset_idx(img, lab));
    cvn_dataset *test = CK_NOTNULL(cvn_dataset_idx(timg, tlab));
    cvn_module *net = small_net();
    cvn_optim *opt = adam_for(net);
    cvn_loader_config lc = {
        .batch_size = 16, .shuffle = true, .seed = 9, .mean = {0.5f}, .std = {0.25f}};
    cvn_loader *tl = cvn_loader_new(train, &lc), *vl = cvn_loader_new(test, &lc);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    epoch_log log = {{0}, {0}};
    cvn_fit_config fc = {
        .epochs = 10, .csv_path = csv, .progress = 0, .on_epoch = on_epoch, .ctx = &log};
    cvn_epoch_stats last;
    CK_OK(cvn_fit(net, opt, t, tl, vl, &fc, &last));
    count_allocations(false);
    ck_assert_msg(last.test_accuracy > 0.95f, "test accuracy %.3f", (double)last.test_accuracy);
    ck_assert_msg(last.train_loss < 0.2f, "train loss %.3f", (double)last.train_loss);
    for (int e = 3; e <= 10; e++) {
        ck_assert_msg(log.mallocs[e] == log.mallocs[2], "epoch %d made %ld heap allocations", e,
                      log.mallocs[e] - log.mallocs[2]);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed blocks resident: RSS means nothing   \
                              */
        ck_assert_msg(log.rss_kb[e] - log.rss_kb[2] < 1024,
                      "resident memory grew %ld KiB by epoch %d", log.rss_kb[e] - log.rss_kb[2], e);
#endif
    }
    /* the CSV: a header and ten rows */
    FILE *f = fopen(csv, "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    ck_assert_int_eq(lines, 11);
    float loss, acc;
    CK_OK(cvn_evaluate(net, t, vl, &loss, &acc));
    ck_assert_float_eq_tol(acc, last.test_accuracy, 1e-6f); /* eval mode: deterministic */
    double hand_loss, hand_acc;
    evaluate_by_hand(net, t, vl, &hand_loss, &hand_acc);
    /* a well-fitted sample's float loss is log(1 + tiny): good to about FLT_EPSILON, which is
     * not small against a mean loss near 1e-4 */
    ck_assert_msg(fabs(loss - hand_loss) <= 1e-4 * hand_loss + FLT_EPSILON, "loss %.7g vs %.7g",
                  (double)loss, hand_loss);
    ck_assert_msg(fabs(acc - hand_acc) < 1e-7, "accuracy %.4f vs %.4f", (double)acc, hand_acc);
    cvn_loader_free(tl), cvn_loader_free(vl);
    cvn_tape_free(t);
    cvn_optim_free(opt);
    cvn_module_free(net);
    cvn_dataset_free(train), cvn_dataset_free(test);
}
END_TEST

/* fit sums the training losses on their device and reads them back only now and then; the
 * epoch's train loss must still be the mean of the batches' losses, as a per-batch callback (which
 * makes fit read every loss) sees them. 80 batches an epoch: one read-back after 64, one at the
 * end. */
typedef struct {
    double sum[4];
    int64_t batches[4];
    float train_loss[4];
    int epoch;
} loss_log;

static void log_batch(void *ctx, int64_t iteration, float loss) {
    loss_log *log = ctx;
    (void)iteration;
    log->sum[log->epoch] += loss;
    log->batches[log->epoch]++;
}

static void log_epoch(void *ctx, const cvn_epoch_stats *s) {
    loss_log *log = ctx;
    log->train_loss[s->epoch] = s->train_loss;
    log->epoch = s->epoch + 1;
}

START_TEST(test_fit_train_loss_is_batch_mean) {
    char img[128], lab[128];
    snprintf(img, sizeof img, "%s/img3", test_dir()),
        snprintf(lab, sizeof lab, "%s/lab3", test_dir());
    write_set(img, lab, 240, 4);
    cvn_dataset *train = CK_NOTNULL(cvn_dataset_idx(img, lab));
    cvn_loader_config lc = {
        .batch_size = 3, .shuffle = true, .seed = 9, .mean = {0.5f}, .std = {0.25f}};
    loss_log each = {.epoch = 1}, summed = {.epoch = 1};
    for (int run = 0; run < 2; run++) {
        loss_log *log = run ? &summed : &each;
        cvn_module *net = small_net();
        cvn_optim *opt = adam_for(net);
        cvn_loader *tl = cvn_loader_new(train, &lc);
        cvn_tape *t = cvn_tape_new(CVN_CPU);
        cvn_fit_config fc = {.epochs = 3,
                             .progress = 0,
                             .on_batch = run ? NULL : log_batch,
                             .on_epoch = log_epoch,
                             .ctx = log};
        CK_OK(cvn_fit(net, opt, t, tl, NULL, &fc, NULL));
        cvn_loader_free(tl);
        cvn_tape_free(t);
        cvn_optim_free(opt);
        cvn_module_free(net);
    }
    for (int e = 1; e <= 3; e++) {
        ck_assert_int_eq(each.batches[e], 80);
        double mean = each.sum[e] / 80.0;
        ck_assert_msg(fabs(each.train_loss[e] - mean) <= 1e-6 * mean, "epoch %d: %.7f vs %.7f", e,
                      (double)each.train_loss[e], mean);
        ck_assert_msg(fabs(summed.train_loss[e] - mean) <= 1e-5 * mean, "epoch %d: %.7f vs %.7f", e,
                      (double)summed.train_loss[e], mean);
    }
    ck_assert_msg(each.train_loss[3] < each.train_loss[1], "loss %.4f -> %.4f",
                  (double)each.train_loss[1], (double)each.train_loss[3]);
    cvn_dataset_free(train);
}
END_TEST

int main(void) {
    test_dir(); /* made here, before Check forks, so every test shares it */
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fit_learns_and_stays_flat);
    tcase_add_test(tc, test_fit_train_loss_is_batch_mean);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
