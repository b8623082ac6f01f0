/* Assignment 1: train an image classifier from the model zoo, keep the checkpoint with the best
 * validation accuracy, evaluate it on the test split, and write an HTML report (curves, ROC,
 * confusion matrix, per-class metrics, model summary). Fine-tunes from a checkpoint with a new
 * head and a frozen backbone; --compare trains the four architectures under one budget.
 *   classifier --arch resnet --data cifar10:data/cifar10 --epochs 15
 *   classifier --finetune runs/x/best.safetensors --freeze backbone --data
 * folder:DIR/hymenoptera_data */
#include <math.h>

#include "example_args.h"

#define MAX_EPOCHS 1000

typedef struct {
    const char *arch, *split, *finetune, *freeze;
    bool compare, augment, augment_set;
    int size;
    float width;
} options;

static int extra(const char *k, const char *v, void *ctx) {
    options *o = ctx;
    if (!strcmp(k, "--arch"))
        o->arch = v;
    else if (!strcmp(k, "--split"))
        o->split = v;
    else if (!strcmp(k, "--finetune"))
        o->finetune = v;
    else if (!strcmp(k, "--freeze"))
        o->freeze = v;
    else if (!strcmp(k, "--size"))
        return (o->size = atoi(v)) >= 4 ? 1 : -1;
    else if (!strcmp(k, "--width"))
        return (o->width = strtof(v, NULL)) >= 0.1f ? 1 : -1;
    else if (!strcmp(k, "--augment")) {
        o->augment_set = true;
        o->augment = !strcmp(v, "on");
        return !strcmp(v, "on") || !strcmp(v, "off") ? 1 : -1;
    } else if (!strcmp(k, "--compare")) {
        o->compare = !strcmp(v, "on");
        return !strcmp(v, "on") || !strcmp(v, "off") ? 1 : -1;
    } else
        return 0;
    return 1;
}

/* train / val / test datasets and whether the data set is "natural images" (augment by default). */
typedef struct {
    cvn_dataset *train, *val, *test;
    const char *what;
    bool photos;
} splits;

/* Splits one set by the --split ratios (three parts), or a training set into train/val by the
 * first two when a test set comes separately. --limit draws that many training images at random
 * (image folders come sorted by class). */
static int load_data(const example_args *a, const options *o, splits *s) {
    float r[3];
    if (sscanf(o->split, "%f/%f/%f", &r[0], &r[1], &r[2]) != 3 || r[0] <= 0 || r[1] <= 0 ||
        r[2] <= 0)
        return fprintf(stderr, "classifier: --split wants three ratios like 70/15/15\n"), 1;
    const char *d = a->data;
    cvn_dataset *all = NULL, *train = NULL, *test = NULL;
    if (!strcmp(d, "fashion-mnist") || !strncmp(d, "idx:", 4)) {
        const char *dir = !strncmp(d, "idx:", 4) ? d + 4 : NULL;
        train = cvn_dataset_fashion_mnist(dir, true);
        test = train ? cvn_dataset_fashion_mnist(dir, false) : NULL;
        s->what = "FashionMNIST";
    } else if (!strncmp(d, "cifar10:", 8)) {
        const char *dir = d + 8;
        s->photos = true;
        s->what = "CIFAR-10";
        if (example_exists(dir, "data_batch_1.bin")) {
            train = cvn_dataset_cifar10(dir, true);
            test = train ? cvn_dataset_cifar10(dir, false) : NULL;
        } else { /* the JPEG class folders of ../shared/data */
            char tr[1100], te[1100];
            snprintf(tr, sizeof tr, "%s/train", dir), snprintf(te, sizeof te, "%s/test", dir);
            train = cvn_dataset_image_folder(tr, 3, 32, 32);
            test = train ? cvn_dataset_image_folder(te, 3, 32, 32) : NULL;
        }
    } else if (!strncmp(d, "folder:", 7)) {
        const char *dir = d + 7;
        int size = o->size ? o->size : 32;
        s->photos = true;
        s->what = dir;
        const char *test_name = example_exists(dir, "test")  ? "test"
                                : example_exists(dir, "val") ? "val"
                                                             : NULL;
        if (example_exists(dir, "train") && test_name) {
            char tr[1100], te[1100];
            snprintf(tr, sizeof tr, "%s/train", dir),
                snprintf(te, sizeof te, "%s/%s", dir, test_name);
            train = cvn_dataset_image_folder(tr, 3, size, size);
            test = train ? cvn_dataset_image_folder(te, 3, size, size) : NULL;
        } else {
            all = cvn_dataset_image_folder(dir, 3, size, size);
        }
    } else {
        return fprintf(stderr, "classifier: --data is fashion-mnist, idx:DIR, cifar10:DIR or "
                               "folder:DIR\n"),
               1;
    }
    if (!all && (!train || !test)) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        cvn_dataset_free(train);
        return 1;
    }
    cvn_status st;
    if (all) {
        cvn_dataset *parts[3];
        st = cvn_dataset_split(all, 3, r, a->seed, parts);
        cvn_dataset_free(all);
        if (!st) s->train = parts[0], s->val = parts[1], s->test = parts[2];
    } else {
        if (example_limit(&train, a->limit, a->seed, "classifier")) {
            cvn_dataset_free(train), cvn_dataset_free(test);
            return 1;
        }
        cvn_dataset *parts[2];
        st = cvn_dataset_split(train, 2, r, a->seed, parts);
        cvn_dataset_free(train);
        if (!st)
            s->train = parts[0], s->val = parts[1], s->test = test;
        else
            cvn_dataset_free(test);
    }
    if (st) return fprintf(stderr, "classifier: %s\n", cvn_last_error()), 1;
    if (all && example_limit(&s->train, a->limit, a->seed, "classifier")) return 1;
    return 0;
}

/* Per-channel mean and standard deviation of the training images, in [0, 1]. */
static void channel_stats(const cvn_dataset *ds, float *mean, float *std) {
    int c, h, w;
    cvn_dataset_image_shape(ds, &c, &h, &w);
    const uint8_t *px = cvn_dataset_images(ds)->data;
    int64_t n = cvn_dataset_len(ds), plane = (int64_t)h * w;
    for (int k = 0; k < c && k < 3; k++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < plane; j++) {
                double v = px[(i * c + k) * plane + j] / 255.0;
                s += v, s2 += v * v;
            }
        double m = s / (double)(n * plane);
        mean[k] = (float)m;
        std[k] = (float)sqrt(fmax(s2 / (double)(n * plane) - m * m, 1e-6));
    }
}

/* The model to train: a new one of the zoo, or a checkpoint's with a new head (fine-tuning). */
typedef struct {
    cvn_module *net;
    const char *arch;
    float width;
    char loaded[320]; /* "fine-tuned from ..." or "" */
    char *load_text;  /* what loading skipped (cvn_load_report) */
    char *summary;    /* the torchinfo-like table */
    cvn_model_stats stats;
} model;

static void model_free(model *m) {
    cvn_module_free(m->net);
    cvn_text_free(m->load_text), cvn_text_free(m->summary);
}

/* The checkpoint's architecture, width and weights; a new head when the data has other classes;
 * --freeze backbone (all but the head) or a name prefix. */
static int load_finetune(const options *o, int c, int h, int w, int classes, cvn_rng *rng,
                         model *m) {
    cvn_safetensors *ck = cvn_safetensors_open(o->finetune);
    const char *an = ck ? cvn_safetensors_meta(ck, "arch") : NULL;
    const char *nc = ck ? cvn_safetensors_meta(ck, "num_classes") : NULL;
    cvn_arch arch;
    if (!ck || !an || !nc || cvn_arch_parse(an, &arch)) {
        fprintf(stderr, "classifier: %s: %s\n", o->finetune,
                ck ? "not a classifier checkpoint (no arch / num_classes)" : cvn_last_error());
        cvn_safetensors_close(ck);
        return 1;
    }
    m->arch = cvn_arch_name(arch);
    cvn_model_config mc = cvn_model_defaults(arch, c, h, w, atoi(nc));
    const char *wm = cvn_safetensors_meta(ck, "width"); /* absent in older checkpoints */
    if (wm) mc.width_mult = (float)atof(wm);
    m->width = mc.width_mult;
    m->net = cvn_model_new(arch, &mc, rng);
    cvn_load_report rep = {0};
    if (!m->net || cvn_checkpoint_load(ck, m->net, NULL, &rep) ||
        (atoi(nc) != classes && cvn_model_replace_head(m->net, classes, rng))) {
        fprintf(stderr, "classifier: fine-tune: %s\n", cvn_last_error());
        cvn_safetensors_close(ck);
        cvn_text_free(rep.text);
        return 1;
    }
    m->load_text = rep.text;
    snprintf(m->loaded, sizeof m->loaded, "fine-tuned from %.200s (%d tensors loaded, %d skipped)",
             o->finetune, rep.loaded, rep.skipped);
    cvn_safetensors_close(ck);
    if (o->freeze) {
        bool backbone = !strcmp(o->freeze, "backbone");
        int k = cvn_module_freeze(m->net, backbone ? "" : o->freeze, true);
        if (backbone) k -= cvn_module_freeze(m->net, "head.", false);
        printf("frozen: %s (%d parameter tensors)\n", backbone ? "all but head" : o->freeze, k);
    }
    return 0;
}

static int make_model(const options *o, cvn_arch arch, int c, int h, int w, int classes,
                      uint64_t seed, model *m) {
    cvn_rng rng;
    cvn_rng_seed(&rng, seed);
    if (o->finetune) {
        if (load_finetune(o, c, h, w, classes, &rng, m)) return 1;
    } else {
        cvn_model_config mc = cvn_model_defaults(arch, c, h, w, classes);
        if (o->width > 0) mc.width_mult = o->width;
        m->arch = cvn_arch_name(arch);
        m->width = mc.width_mult;
        m->net = cvn_model_new(arch, &mc, &rng);
    }
    if (!m->net || cvn_model_summary(m->net, c, h, w, &m->summary, &m->stats)) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        return 1;
    }
    return 0;
}

/* Adam in two groups: the head at lr, the rest at lr too, or at a tenth when fine-tuning. */
static cvn_optim *make_optimizer(cvn_module *net, float lr, bool finetune) {
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    oc.lr = lr;
    cvn_optim *opt = cvn_optim_new(&oc);
    int np = cvn_module_num_params(net), nh = 0, nb = 0;
    cvn_tensor **body = malloc((size_t)np * sizeof *body),
               **head = malloc((size_t)np * sizeof *head);
    for (int i = 0; body && head && i < np; i++) {
        const char *name;
        cvn_tensor *p = cvn_module_param_at(net, i, &name);
        if (!strncmp(name, "head.", 5))
            head[nh++] = p;
        else
            body[nb++] = p;
    }
    if (!opt || !body || !head ||
        cvn_optim_add_group(opt, nb, body, finetune ? lr * 0.1f : lr, -1) < 0 ||
        cvn_optim_add_group(opt, nh, head, lr, -1) < 0) {
        fprintf(stderr, "classifier: %s\n", opt ? cvn_last_error() : "out of memory");
        cvn_optim_free(opt);
        opt = NULL;
    }
    free(body), free(head);
    return opt;
}

/* What training records per epoch, and the best-validation checkpoint it keeps. */
typedef struct {
    cvn_module *net;
    cvn_optim *opt;
    const char *ckpt, *arch;
    float width;
    int classes, c, h, w;
    const float *mean, *std;
    float best_val;
    int best_epoch, epochs;
    float train_loss[MAX_EPOCHS], val_loss[MAX_EPOCHS], val_acc[MAX_EPOCHS], ips[MAX_EPOCHS];
    bool save_failed;
} run_state;

static void on_epoch(void *ctx, const cvn_epoch_stats *s) {
    run_state *r = ctx;
    int e = s->epoch - 1;
    if (e < 0 || e >= MAX_EPOCHS) return;
    r->train_loss[e] = s->train_loss, r->val_loss[e] = s->test_loss;
    r->val_acc[e] = s->test_accuracy, r->ips[e] = s->images_per_s;
    r->epochs = e + 1;
    if (s->test_accuracy <= r->best_val) return;
    r->best_val = s->test_accuracy;
    r->best_epoch = s->epoch;
    char epoch[16], acc[32], classes[16], shape[48], norm[128], width[16];
    snprintf(epoch, sizeof epoch, "%d", s->epoch);
    snprintf(acc, sizeof acc, "%.6f", (double)s->test_accuracy);
    snprintf(classes, sizeof classes, "%d", r->classes);
    snprintf(shape, sizeof shape, "%d,%d,%d", r->c, r->h, r->w);
    snprintf(norm, sizeof norm, "%g,%g,%g/%g,%g,%g", (double)r->mean[0], (double)r->mean[1],
             (double)r->mean[2], (double)r->std[0], (double)r->std[1], (double)r->std[2]);
    snprintf(width, sizeof width, "%g", (double)r->width);
    const char *meta[] = {"arch",      r->arch,        "num_classes", classes, "epoch",
                          epoch,       "val_accuracy", acc,           "input", shape,
                          "normalize", norm,           "width",       width};
    if (cvn_checkpoint_save(r->ckpt, r->net, r->opt, 7, meta)) {
        fprintf(stderr, "classifier: checkpoint: %s\n", cvn_last_error());
        r->save_failed = true;
    }
}

typedef struct {
    const char *arch;
    int64_t params, flops;
    float images_per_s, best_val, test_acc, macro_auc;
} result;

/* The charts of a run into out/: loss and validation accuracy per epoch, the test split's ROC
 * curves (the positive class of two, else up to ten one-vs-rest) and its confusion matrix. */
static int write_charts(const char *out, const run_state *st, const cvn_predictions *pred,
                        const char *const *names, const cvn_class_metric *cm) {
    int classes = st->classes;
    char p_loss[700], p_acc[700], p_roc[700], p_cm[700];
    snprintf(p_loss, sizeof p_loss, "%s/loss.svg", out);
    snprintf(p_acc, sizeof p_acc, "%s/val_accuracy.svg", out);
    snprintf(p_roc, sizeof p_roc, "%s/roc.svg", out);
    snprintf(p_cm, sizeof p_cm, "%s/confusion.svg", out);
    cvn_series loss[2] = {{.name = "train loss", .n = st->epochs, .y = st->train_loss},
                          {.name = "val loss", .n = st->epochs, .y = st->val_loss}};
    cvn_chart lch = {.title = "Loss per epoch", .x_label = "epoch", .y_label = "cross-entropy"};
    float acc_pct[MAX_EPOCHS];
    for (int e = 0; e < st->epochs; e++) acc_pct[e] = 100.0f * st->val_acc[e];
    cvn_series acc = {.name = "val accuracy", .n = st->epochs, .y = acc_pct};
    cvn_chart ach = {.title = "Validation accuracy", .x_label = "epoch", .y_label = "%"};
    int64_t n = cvn_predictions_len(pred);
    int shown = classes == 2 ? 1 : classes < 10 ? classes : 10;
    float *fpr = malloc((size_t)shown * (size_t)(n + 2) * sizeof(float));
    float *tpr = malloc((size_t)shown * (size_t)(n + 2) * sizeof(float));
    int64_t *conf = malloc((size_t)classes * (size_t)classes * sizeof *conf);
    if (!fpr || !tpr || !conf) {
        free(fpr), free(tpr), free(conf);
        return fprintf(stderr, "classifier: out of memory\n"), 1;
    }
    cvn_series roc[11];
    char roc_names[10][96];
    for (int k = 0; k < shown; k++) {
        int cls = classes == 2 ? 1 : k;
        int pts = cvn_roc_curve(pred, cls, fpr + k * (n + 2), tpr + k * (n + 2));
        snprintf(roc_names[k], sizeof roc_names[k], "%.60s (AUC %.3f)", names[cls],
                 (double)cm[cls].auc);
        roc[k] = (cvn_series){
            .name = roc_names[k], .n = pts, .x = fpr + k * (n + 2), .y = tpr + k * (n + 2)};
    }
    static const float diag[2] = {0, 1};
    roc[shown] = (cvn_series){.name = "chance", .n = 2, .x = diag, .y = diag};
    cvn_chart rch = {.title = classes == 2 ? "ROC on the test split"
                                           : "One-vs-rest ROC on the test split",
                     .x_label = "false positive rate",
                     .y_label = "true positive rate"};
    cvn_confusion_matrix(pred, conf);
    int rc = cvn_svg_line_chart(p_loss, &lch, 2, loss) ||
             cvn_svg_line_chart(p_acc, &ach, 1, &acc) ||
             cvn_svg_line_chart(p_roc, &rch, shown + 1, roc) ||
             cvn_svg_heatmap(p_cm, "Confusion matrix (test)", classes, names, conf);
    if (rc) fprintf(stderr, "classifier: %s\n", cvn_last_error());
    free(fpr), free(tpr), free(conf);
    return rc;
}

/* out/report.html: the figures, the charts, the per-class table, the configuration, the model. */
static int write_report(const example_args *a, const splits *s, const char *out, const model *m,
                        const run_state *st, const cvn_metrics *mt, const char *const *names,
                        const cvn_class_metric *cm, bool augment) {
    int classes = st->classes;
    char path[700], title[256], line[1400];
    snprintf(title, sizeof title, "%s on %s", m->arch, s->what);
    cvn_report *r = cvn_report_new(title);
    snprintf(line, sizeof line,
             "Test accuracy %.2f %% (best validation %.2f %% at epoch %d of %d); macro precision "
             "%.3f, recall %.3f, F1 %.3f, one-vs-rest AUC %.3f.",
             100.0 * mt->accuracy, 100.0 * st->best_val, st->best_epoch, st->epochs,
             (double)mt->macro_precision, (double)mt->macro_recall, (double)mt->macro_f1,
             (double)mt->macro_auc);
    cvn_report_paragraph(r, line);
    static const char *const charts[4][2] = {
        {"loss.svg", "Train and validation loss per epoch"},
        {"val_accuracy.svg", "Validation accuracy per epoch; the checkpoint keeps the best"},
        {"roc.svg", "ROC curves, one class against the rest"},
        {"confusion.svg", "Rows: true class; columns: predicted class"}};
    for (int k = 0; k < 4; k++) {
        if (k % 2 == 0) cvn_report_heading(r, k ? "Test split" : "Training");
        snprintf(path, sizeof path, "%s/%s", out, charts[k][0]);
        cvn_report_svg(r, path, charts[k][1]);
    }
    const char **cells = malloc((size_t)(classes + 1) * 6 * sizeof *cells);
    char(*buf)[32] = malloc((size_t)classes * 5 * sizeof *buf);
    if (!cells || !buf) {
        free(cells), free(buf), cvn_report_free(r);
        return fprintf(stderr, "classifier: out of memory\n"), 1;
    }
    const char *hdr[6] = {"class", "support", "precision", "recall (accuracy)", "F1", "AUC"};
    memcpy(cells, hdr, sizeof hdr);
    for (int k = 0; k < classes; k++) {
        float v[4] = {cm[k].precision, cm[k].recall, cm[k].f1, cm[k].auc};
        cells[(k + 1) * 6] = names[k];
        snprintf(buf[k * 5], 32, "%lld", (long long)cm[k].support);
        cells[(k + 1) * 6 + 1] = buf[k * 5];
        for (int j = 0; j < 4; j++) {
            snprintf(buf[k * 5 + 1 + j], 32, "%.3f", (double)v[j]);
            cells[(k + 1) * 6 + 2 + j] = buf[k * 5 + 1 + j];
        }
    }
    cvn_report_table(r, classes + 1, 6, cells);
    cvn_report_heading(r, "Configuration");
    snprintf(line, sizeof line,
             "data %s; train %lld, validation %lld, test %lld images of %dx%dx%d; Adam lr %g with "
             "cosine annealing, batch %d, %d epochs; augmentation %s; seed %llu; %s; %.0f "
             "images/s in the last epoch.%s%s",
             a->data, (long long)cvn_dataset_len(s->train), (long long)cvn_dataset_len(s->val),
             (long long)cvn_dataset_len(s->test), st->c, st->h, st->w, (double)a->lr, a->batch,
             a->epochs, augment ? "random crop + horizontal flip" : "none", a->seed,
             a->device == CVN_CUDA ? "GPU" : "CPU", (double)st->ips[st->epochs - 1],
             m->loaded[0] ? " " : "", m->loaded);
    cvn_report_paragraph(r, line);
    cvn_report_heading(r, "Model");
    cvn_report_pre(r, m->summary);
    snprintf(path, sizeof path, "%s/report.html", out);
    int rc = cvn_report_write(r, path) != CVN_OK;
    if (rc)
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
    else
        printf("report: %s\n", path);
    cvn_report_free(r);
    free(cells), free(buf);
    return rc;
}

/* The best checkpoint on the test split: per-class lines, charts, report; fills res. */
static int evaluate(const example_args *a, const splits *s, const char *out, const model *m,
                    const run_state *st, cvn_tape *t, cvn_loader *testl, bool augment,
                    result *res) {
    cvn_safetensors *best = cvn_safetensors_open(st->ckpt);
    cvn_predictions *pred = best && !cvn_checkpoint_load(best, m->net, NULL, NULL)
                                ? cvn_predict(m->net, t, testl)
                                : NULL;
    cvn_safetensors_close(best);
    cvn_metrics mt;
    if (!pred || cvn_metrics_summary(pred, &mt)) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        cvn_predictions_free(pred);
        return 1;
    }
    int classes = st->classes;
    const char **names = malloc((size_t)classes * sizeof *names);
    cvn_class_metric *cm = malloc((size_t)classes * sizeof *cm);
    int rc = !names || !cm;
    if (!rc) {
        for (int k = 0; k < classes; k++) names[k] = cvn_dataset_class_name(s->test, k);
        cvn_class_metrics(pred, cm);
        printf("best validation accuracy %.2f %% at epoch %d (checkpoint %s)\n",
               100.0 * st->best_val, st->best_epoch, st->ckpt);
        cvn_print_class_accuracy(stdout, pred, names);
        rc = write_charts(out, st, pred, names, cm) ||
             write_report(a, s, out, m, st, &mt, names, cm, augment);
    }
    *res = (result){m->arch,      m->stats.params, m->stats.flops, st->ips[st->epochs - 1],
                    st->best_val, mt.accuracy,     mt.macro_auc};
    free(names), free(cm);
    cvn_predictions_free(pred);
    return rc;
}

/* Trains one architecture (or fine-tunes a checkpoint), keeps the best-validation checkpoint and
 * evaluates it; everything goes to out. */
static int run(const example_args *a, const options *o, const splits *s, cvn_arch arch,
               const char *out, result *res) {
    int c, h, w, classes = cvn_dataset_num_classes(s->train);
    cvn_dataset_image_shape(s->train, &c, &h, &w);
    float mean[3] = {0}, std[3] = {1, 1, 1};
    channel_stats(s->train, mean, std);
    model m = {0};
    run_state *st = calloc(1, sizeof *st);
    cvn_tape *t = NULL;
    cvn_optim *opt = NULL;
    cvn_loader *tl = NULL, *vl = NULL, *testl = NULL;
    cvn_scheduler *sched = NULL;
    int rc = 1;
    if (!st || make_model(o, arch, c, h, w, classes, a->seed, &m)) goto done;
    t = cvn_tape_new(a->device);
    if (!t || cvn_module_to(m.net, a->device)) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        goto done;
    }
    if (!(opt = make_optimizer(m.net, a->lr, o->finetune != NULL))) goto done;
    bool augment = o->augment_set ? o->augment : s->photos;
    cvn_loader_config lc = {.batch_size = a->batch,
                            .shuffle = true,
                            .seed = a->seed,
                            .crop_padding = augment ? (h >= 32 ? h / 8 : 2) : 0,
                            .hflip = augment,
                            .prefetch = true};
    memcpy(lc.mean, mean, sizeof mean), memcpy(lc.std, std, sizeof std);
    cvn_loader_config ec = lc;
    ec.shuffle = false, ec.crop_padding = 0, ec.hflip = false, ec.batch_size = 256;
    tl = cvn_loader_new(s->train, &lc);
    vl = cvn_loader_new(s->val, &ec), testl = cvn_loader_new(s->test, &ec);
    cvn_schedule_config sc = cvn_schedule_defaults(CVN_SCHED_COSINE);
    sc.t_max = a->epochs;
    sched = cvn_scheduler_new(opt, &sc);
    if (!tl || !vl || !testl || !sched) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        goto done;
    }
    printf("classifier: %s on %s (%d classes, %dx%dx%d), %lld parameters, %.1f MFLOP/image; "
           "train %lld, val %lld, test %lld; Adam lr %g cosine, batch %d, %d epoch(s)%s, %s\n",
           m.arch, s->what, classes, c, h, w, (long long)m.stats.params,
           (double)m.stats.flops / 1e6, (long long)cvn_dataset_len(s->train),
           (long long)cvn_dataset_len(s->val), (long long)cvn_dataset_len(s->test), (double)a->lr,
           a->batch, a->epochs, augment ? ", crop + flip" : "",
           a->device == CVN_CUDA ? "GPU" : "CPU");
    if (m.loaded[0]) printf("%s\n%s", m.loaded, m.load_text ? m.load_text : "");
    char ckpt[700], csv[700];
    snprintf(ckpt, sizeof ckpt, "%s/best.safetensors", out);
    snprintf(csv, sizeof csv, "%s/metrics.csv", out);
    *st = (run_state){.net = m.net,
                      .opt = opt,
                      .ckpt = ckpt,
                      .arch = m.arch,
                      .width = m.width,
                      .classes = classes,
                      .c = c,
                      .h = h,
                      .w = w,
                      .mean = mean,
                      .std = std,
                      .best_val = -1};
    cvn_fit_config fc = {.epochs = a->epochs < MAX_EPOCHS ? a->epochs : MAX_EPOCHS,
                         .csv_path = csv,
                         .progress = -1,
                         .scheduler = sched,
                         .on_epoch = on_epoch,
                         .ctx = st};
    if (cvn_fit(m.net, opt, t, tl, vl, &fc, NULL) || st->save_failed) {
        fprintf(stderr, "classifier: %s\n", cvn_last_error());
        goto done;
    }
    rc = evaluate(a, s, out, &m, st, t, testl, augment, res);
done:
    cvn_scheduler_free(sched);
    cvn_loader_free(tl), cvn_loader_free(vl), cvn_loader_free(testl);
    cvn_optim_free(opt);
    cvn_tape_free(t);
    model_free(&m);
    free(st);
    return rc;
}

int main(int argc, char **argv) {
    example_args a = example_defaults(3, 0, 1e-3f);
    options o = {.arch = "cnn", .split = "70/15/15"};
    const char *usage =
        "  --arch cnn|resnet|mobilenet|efficientnet   --split 70/15/15\n"
        "  --data fashion-mnist|idx:DIR|cifar10:DIR|folder:DIR   --size N (folder images, 32)\n"
        "  --augment on|off (crop + flip; on for photos)   --compare on (all four archs)\n"
        "  --width X (channel multiplier of resnet / mobilenet / efficientnet)\n"
        "  --finetune CKPT [--freeze backbone|PREFIX]   (new head for the data's classes)\n";
    int rc = example_parse(argc, argv, "classifier", usage, &a, extra, &o);
    if (rc) return rc == 1 ? 0 : rc;
    cvn_set_num_threads(a.threads);
    cvn_arch arch;
    if (cvn_arch_parse(o.arch, &arch))
        return fprintf(stderr, "classifier: %s\n", cvn_last_error()), 2;
    splits s = {0};
    if (load_data(&a, &o, &s)) return 1;
    result res[4];
    int n = 0;
    if (o.compare && !o.finetune) {
        for (int k = 0; k < 4; k++) {
            char out[600];
            snprintf(out, sizeof out, "%s/%s", a.out, cvn_arch_name((cvn_arch)k));
            mkdir(out, 0755);
            if (run(&a, &o, &s, (cvn_arch)k, out, &res[n])) return 1;
            n++;
        }
        printf("\n%-13s %12s %12s %10s %10s %10s\n", "architecture", "parameters", "MFLOP/image",
               "images/s", "best val", "test acc");
        for (int k = 0; k < n; k++)
            printf("%-13s %12lld %12.1f %10.0f %9.2f%% %9.2f%%\n", res[k].arch,
                   (long long)res[k].params, (double)res[k].flops / 1e6,
                   (double)res[k].images_per_s, 100.0 * res[k].best_val, 100.0 * res[k].test_acc);
    } else {
        if (run(&a, &o, &s, arch, a.out, &res[0])) return 1;
        n = 1;
    }
    float best = 0;
    for (int k = 0; k < n; k++) best = res[k].test_acc > best ? res[k].test_acc : best;
    printf("test accuracy: %.2f %%\n", 100.0 * best);
    cvn_dataset_free(s.train), cvn_dataset_free(s.val), cvn_dataset_free(s.test);
    return 0;
}
