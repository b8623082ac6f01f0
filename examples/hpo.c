/* Assignment 3: an Optuna-style hyperparameter search of a CNN. Each trial builds the network its
 * parameters describe, trains it on a limited number of batches per epoch (as Optuna's own
 * example does, for speed), reports the validation accuracy after every epoch so that poor trials
 * are pruned early, and ends with its last accuracy. The study prints Optuna's statistics and a
 * top-10 table, and writes trials.csv, the plots and report.html into --out.
 *
 *   --space optuna   n_layers 1-5, kernel_size 3-7, n_units_l<i> and dropout_l<i> (0.2-0.5) per
 *                    layer, optimizer {Adam, RMSprop, SGD}, lr 1e-5..1e-1 (log)
 *   --space clearml  lin1_size 64-128, lin2_size 32-64, p_dropout 0-0.4, lr 1e-3..1e-1 (log),
 *                    batch_size {2, 4, 8}: for a small image-folder set such as the chest X-rays
 *                    (--data folder:data/pneumoniamnist --limit 206)
 *
 * --storage sqlite:FILE keeps the study in a file: run again and it continues; --workers K forks K
 * processes that run the trials of one study at once (a file is made in --out when none is
 * given). */
#include <math.h>
#include <signal.h>
#include <sys/wait.h>

#include "example_args.h"

typedef struct {
    const char *space, *storage, *study;
    int trials, workers, batches, val_batches, size;
    double timeout;
    cvn_sampler_kind sampler;
    cvn_pruner_kind pruner;
    char storage_buf[700];
} options;

static int extra(const char *k, const char *v, void *ctx) {
    options *o = ctx;
    char *end = NULL;
    if (!strcmp(k, "--space")) {
        if (strcmp(v, "optuna") && strcmp(v, "clearml")) return -1;
        o->space = v;
    } else if (!strcmp(k, "--trials")) {
        o->trials = (int)strtol(v, &end, 10);
    } else if (!strcmp(k, "--timeout")) {
        o->timeout = strtod(v, &end);
    } else if (!strcmp(k, "--sampler")) {
        if (!strcmp(v, "tpe"))
            o->sampler = CVN_SAMPLER_TPE;
        else if (!strcmp(v, "random"))
            o->sampler = CVN_SAMPLER_RANDOM;
        else
            return -1;
    } else if (!strcmp(k, "--pruner")) {
        if (!strcmp(v, "median"))
            o->pruner = CVN_PRUNER_MEDIAN;
        else if (!strcmp(v, "halving"))
            o->pruner = CVN_PRUNER_HALVING;
        else if (!strcmp(v, "none"))
            o->pruner = CVN_PRUNER_NONE;
        else
            return -1;
    } else if (!strcmp(k, "--storage")) {
        if (strncmp(v, "sqlite:", 7) || !v[7]) return -1;
        o->storage = v;
    } else if (!strcmp(k, "--study")) {
        o->study = v;
    } else if (!strcmp(k, "--workers")) {
        o->workers = (int)strtol(v, &end, 10);
    } else if (!strcmp(k, "--batches")) {
        o->batches = (int)strtol(v, &end, 10);
    } else if (!strcmp(k, "--val-batches")) {
        o->val_batches = (int)strtol(v, &end, 10);
    } else if (!strcmp(k, "--size")) {
        o->size = (int)strtol(v, &end, 10);
    } else {
        return 0;
    }
    return end && *end ? -1 : 1;
}

/* ---- data */

typedef struct {
    cvn_dataset *train, *val;
    float mean, std;
} data;

/* FashionMNIST (its test set validates, as in Optuna's example) or one-channel image folders:
 * DIR/train with DIR/val or DIR/test, else DIR split 80/20. --limit keeps that many training
 * images, drawn at random (image folders come sorted by class); --val-batches as many validation
 * batches. */
static int load(const example_args *a, const options *o, data *d) {
    const char *src = a->data;
    cvn_dataset *train = NULL, *val = NULL;
    if (!strcmp(src, "fashion-mnist") || !strncmp(src, "idx:", 4)) {
        const char *dir = !strncmp(src, "idx:", 4) ? src + 4 : NULL;
        train = cvn_dataset_fashion_mnist(dir, true);
        val = train ? cvn_dataset_fashion_mnist(dir, false) : NULL;
        d->mean = FMNIST_MEAN, d->std = FMNIST_STD;
    } else if (!strncmp(src, "folder:", 7)) {
        const char *dir = src + 7, *val_name = example_exists(dir, "val") ? "val" : "test";
        int size = o->size;
        if (example_exists(dir, "train") && example_exists(dir, val_name)) {
            char tr[1100], va[1100];
            snprintf(tr, sizeof tr, "%s/train", dir);
            snprintf(va, sizeof va, "%s/%s", dir, val_name);
            train = cvn_dataset_image_folder(tr, 1, size, size);
            val = train ? cvn_dataset_image_folder(va, 1, size, size) : NULL;
        } else {
            cvn_dataset *all = cvn_dataset_image_folder(dir, 1, size, size), *parts[2];
            if (all && !cvn_dataset_split(all, 2, (float[]){80, 20}, a->seed, parts))
                train = parts[0], val = parts[1];
            cvn_dataset_free(all);
        }
        d->mean = 0.5f, d->std = 0.25f;
    } else {
        fprintf(stderr, "hpo: --data is fashion-mnist, idx:DIR or folder:DIR\n");
        return 1;
    }
    if (!train || !val) {
        fprintf(stderr, "hpo: %s\n", cvn_last_error());
        cvn_dataset_free(train);
        return 1;
    }
    if (example_limit(&train, a->limit, a->seed, "hpo")) {
        cvn_dataset_free(val);
        return 1;
    }
    /* the first images of FashionMNIST's test set, as Optuna's example; a random draw of a folder
     */
    int64_t n_val = (int64_t)o->val_batches * 128;
    if (o->val_batches && n_val < cvn_dataset_len(val)) {
        if (strncmp(src, "folder:", 7))
            cvn_dataset_limit(val, n_val);
        else if (example_limit(&val, n_val, a->seed + 1, "hpo")) {
            cvn_dataset_free(train);
            return 1;
        }
    }
    d->train = train, d->val = val;
    return 0;
}

/* ---- one trial */

typedef struct {
    const example_args *a;
    const options *o;
    data d;
} search;

static const char *const optimizer_names[] = {"Adam", "RMSprop", "SGD"};

/* The trial's network, optimizer kind, learning rate and batch size from its suggestions. */
static cvn_status suggest(const search *x, cvn_trial *t, cvn_model_config *mc, cvn_optimizer *kind,
                          double *lr, int *batch) {
    int c, h, w;
    cvn_dataset_image_shape(x->d.train, &c, &h, &w);
    *mc = cvn_model_defaults(CVN_ARCH_CNN, c, h, w, cvn_dataset_num_classes(x->d.train));
    cvn_status st;
    if (!strcmp(x->o->space, "optuna")) {
        int64_t layers, kernel;
        int opt;
        if ((st = cvn_trial_suggest_int(t, "n_layers", 1, 5, 1, false, &layers)) ||
            (st = cvn_trial_suggest_int(t, "kernel_size", 3, 7, 2, false, &kernel)))
            return st;
        mc->n_layers = (int)layers, mc->kernel_size = (int)kernel;
        mc->batch_norm = false, mc->n_fc = 0;
        for (int i = 0; i < mc->n_layers; i++) {
            char name[32];
            int64_t units;
            double p;
            snprintf(name, sizeof name, "n_units_l%d", i);
            if ((st = cvn_trial_suggest_int(t, name, 4, 64, 1, true, &units))) return st;
            snprintf(name, sizeof name, "dropout_l%d", i);
            if ((st = cvn_trial_suggest_float(t, name, 0.2, 0.5, false, &p))) return st;
            mc->channels[i] = (int)units, mc->conv_dropout[i] = (float)p;
        }
        if ((st = cvn_trial_suggest_categorical(t, "optimizer", 3, optimizer_names, &opt)) ||
            (st = cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, lr)))
            return st;
        *kind = (cvn_optimizer[]){CVN_ADAM, CVN_RMSPROP, CVN_SGD}[opt];
        *batch = x->a->batch;
        return CVN_OK;
    }
    /* clearml: two conv blocks (16, 32 channels, 3x3) and two hidden layers it sizes */
    int64_t lin1, lin2;
    double p;
    int b;
    if ((st = cvn_trial_suggest_int(t, "lin1_size", 64, 128, 1, false, &lin1)) ||
        (st = cvn_trial_suggest_int(t, "lin2_size", 32, 64, 1, false, &lin2)) ||
        (st = cvn_trial_suggest_float(t, "p_dropout", 0.0, 0.4, false, &p)) ||
        (st = cvn_trial_suggest_float(t, "lr", 1e-3, 1e-1, true, lr)) ||
        (st = cvn_trial_suggest_categorical(t, "batch_size", 3, (const char *[]){"2", "4", "8"},
                                            &b)))
        return st;
    mc->n_layers = 2, mc->kernel_size = 3, mc->channels[0] = 16, mc->channels[1] = 32;
    mc->conv_dropout[0] = mc->conv_dropout[1] = 0;
    mc->batch_norm = false;
    mc->n_fc = 2, mc->fc_units[0] = (int)lin1, mc->fc_units[1] = (int)lin2;
    mc->fc_dropout[0] = mc->fc_dropout[1] = (float)p;
    *kind = CVN_ADAM;
    *batch = 2 << b;
    return CVN_OK;
}

/* Trains and validates the trial's network; tells the study how it ended. */
static cvn_status run_trial(const search *x, cvn_study *s, cvn_trial *t) {
    cvn_model_config mc;
    cvn_optimizer kind;
    double lr;
    int batch;
    cvn_status st = suggest(x, t, &mc, &kind, &lr, &batch);
    if (st) return st;
    cvn_rng rng;
    cvn_rng_seed(&rng, x->a->seed * 1000003u + (uint64_t)cvn_trial_number(t));
    cvn_module *net = cvn_model_new(CVN_ARCH_CNN, &mc, &rng);
    cvn_optim_config oc = cvn_optim_defaults(kind);
    oc.lr = (float)lr;
    cvn_optim *opt = cvn_optim_new(&oc);
    const float m = x->d.mean, sd = x->d.std;
    cvn_loader_config tc = {.batch_size = batch,
                            .shuffle = true,
                            .seed = rng.s[0],
                            .mean = {m, m, m},
                            .std = {sd, sd, sd}};
    cvn_loader_config vc = {.batch_size = 256, .mean = {m, m, m}, .std = {sd, sd, sd}};
    cvn_loader *train = cvn_loader_new(x->d.train, &tc), *val = cvn_loader_new(x->d.val, &vc);
    cvn_tape *tape = cvn_tape_new(x->a->device);
    if (!net || !opt || !train || !val || !tape || cvn_optim_add_module(opt, net) < 0) {
        st = cvn_last_status();
        goto done;
    }
    float accuracy = NAN, loss;
    cvn_trial_state end = CVN_TRIAL_COMPLETE;
    for (int epoch = 0; epoch < x->a->epochs && !st; epoch++) {
        cvn_module_train(net, true);
        for (int b = 0; !x->o->batches || b < x->o->batches; b++) {
            cvn_tensor *xb, *yb;
            cvn_clear_error();
            if (!cvn_loader_next(train, tape, &xb, &yb)) {
                st = cvn_last_status(); /* CVN_OK: the end of a pass over the training set */
                break;
            }
            cvn_tensor *l = cvn_cross_entropy(tape, cvn_module_forward(net, tape, xb), yb, 0.0f);
            if (!l || (st = cvn_backward(tape, l, NULL)) || (st = cvn_optim_step(opt))) {
                st = st ? st : cvn_last_status();
                break;
            }
            cvn_optim_zero_grad(opt);
            cvn_tape_reset(tape);
        }
        cvn_tape_reset(tape);
        if (st || (st = cvn_evaluate(net, tape, val, &loss, &accuracy))) break;
        if ((st = cvn_trial_report(t, epoch, accuracy))) break;
        if (cvn_trial_should_prune(t)) {
            end = CVN_TRIAL_PRUNED;
            break;
        }
    }
    if (!st) st = cvn_study_tell(s, t, end, accuracy);
done:
    cvn_tape_free(tape);
    cvn_loader_free(val);
    cvn_loader_free(train);
    cvn_optim_free(opt);
    cvn_module_free(net);
    return st;
}

/* Optuna's log line for a trial that ended. */
static void print_trial(const cvn_study *s, const cvn_trial *t) {
    if (cvn_trial_state_of(t) == CVN_TRIAL_PRUNED) {
        printf("Trial %d pruned.\n", cvn_trial_number(t));
        return;
    }
    if (cvn_trial_state_of(t) == CVN_TRIAL_FAIL) {
        printf("Trial %d failed: %s\n", cvn_trial_number(t), cvn_last_error());
        return;
    }
    printf("Trial %d finished with value: %.4f and parameters: {", cvn_trial_number(t),
           cvn_trial_value(t));
    char value[64];
    for (int i = 0; i < cvn_trial_num_params(t); i++)
        printf("%s'%s': %s", i ? ", " : "", cvn_trial_param_name(t, i, value, sizeof value), value);
    const cvn_trial *best = cvn_study_best_trial(s);
    printf("}. Best is trial %d with value: %.4f.\n", cvn_trial_number(best),
           cvn_trial_value(best));
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static cvn_study *open_study(const example_args *a, const options *o) {
    cvn_study_config c = cvn_study_defaults();
    c.name = o->study;
    c.direction = CVN_MAXIMIZE;
    c.sampler = o->sampler;
    c.pruner = o->pruner;
    c.seed = a->seed;
    c.storage = o->storage;
    cvn_study *s = cvn_study_new(&c);
    if (!s) fprintf(stderr, "hpo: %s\n", cvn_last_error());
    return s;
}

/* Runs up to n trials (fewer when the timeout passes); 0 on success. The study goes to *keep
 * when keep is given, else it is freed. */
static int work(const example_args *a, const options *o, int n, double started, cvn_study **keep) {
    search x = {.a = a, .o = o};
    cvn_set_num_threads(a->threads);
    if (load(a, o, &x.d)) return 1;
    cvn_study *s = open_study(a, o);
    int rc = s ? 0 : 1;
    for (int i = 0; i < n && s; i++) {
        if (o->timeout > 0 && seconds_now() - started > o->timeout) break;
        cvn_trial *t = cvn_study_ask(s);
        if (!t) {
            fprintf(stderr, "hpo: %s\n", cvn_last_error());
            rc = 1;
            break;
        }
        if (run_trial(&x, s, t)) /* an error inside the trial: it fails, the study goes on */
            if (cvn_study_tell(s, t, CVN_TRIAL_FAIL, NAN)) rc = 1;
        print_trial(s, t);
        fflush(stdout);
    }
    if (keep)
        *keep = s;
    else
        cvn_study_free(s);
    cvn_dataset_free(x.d.train);
    cvn_dataset_free(x.d.val);
    return rc;
}

int main(int argc, char **argv) {
    example_args a = example_defaults(10, 0, -1.0f);
    a.batch = 128;
    options o = {.space = "optuna",
                 .trials = 20,
                 .workers = 1,
                 .batches = 30,
                 .val_batches = 10,
                 .size = 28,
                 .sampler = CVN_SAMPLER_TPE,
                 .pruner = CVN_PRUNER_MEDIAN};
    int rc = example_parse(
        argc, argv, "hpo",
        "  --space optuna|clearml   the search space (see the top of examples/hpo.c)\n"
        "  --data folder:DIR        one-channel image folders (DIR/train + DIR/val, or DIR)\n"
        "  --size N (folder images, 28)\n"
        "  --trials N (20, in this run)  --timeout SECONDS  --sampler tpe|random\n"
        "  --pruner median|halving|none  --storage sqlite:FILE  --study NAME\n"
        "  --workers K (processes on one study)  --batches N (per epoch, 30; 0 = all)\n"
        "  --val-batches N (of 128 validation images, 10; 0 = all)\n"
        "  defaults: 10 epochs, batch 128 (optuna space; clearml searches it)\n",
        &a, extra, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if (o.trials < 1 || o.workers < 1 || o.workers > 64 || o.batches < 0 || o.val_batches < 0 ||
        o.size < 8)
        return fprintf(stderr, "hpo: trials, workers (1-64) and size (>= 8) out of range\n"), 2;
    if (!o.study) o.study = !strcmp(o.space, "optuna") ? "fashion-cnn" : "clearml-cnn";
    if (!o.storage && o.workers > 1) { /* processes share a study through a file */
        snprintf(o.storage_buf, sizeof o.storage_buf, "sqlite:%s/study.db", a.out);
        o.storage = o.storage_buf;
    }
    char batches[32] = "every";
    if (o.batches) snprintf(batches, sizeof batches, "%d", o.batches);
    printf("hpo: study '%s' (%s space, %s sampler, %s pruner) in %s; %d trials, %d worker%s, "
           "%d epochs of %s batches\n",
           o.study, o.space, o.sampler == CVN_SAMPLER_TPE ? "TPE" : "random",
           (const char *[]){"no", "median", "halving"}[o.pruner],
           o.storage ? o.storage + 7 : "memory", o.trials, o.workers, o.workers > 1 ? "s" : "",
           a.epochs, batches);
    double started = seconds_now();
    cvn_study *s = NULL;
    if (o.workers == 1) {
        rc = work(&a, &o, o.trials, started, &s);
    } else { /* each worker opens the study itself, after the fork */
        pid_t pids[64];
        for (int w = 0; w < o.workers; w++) {
            int share = o.trials / o.workers + (w < o.trials % o.workers);
            fflush(stdout);
            pids[w] = fork();
            if (pids[w] == 0) _exit(work(&a, &o, share, started, NULL));
            if (pids[w] < 0) return fprintf(stderr, "hpo: fork failed\n"), 1;
        }
        for (int w = 0; w < o.workers; w++) {
            int status;
            if (waitpid(pids[w], &status, 0) != pids[w] || !WIFEXITED(status) ||
                WEXITSTATUS(status)) {
                fprintf(stderr, "hpo: worker %d ended badly (status %d)\n", w, status);
                rc = 1;
            }
        }
        s = open_study(&a, &o); /* the whole study, as every worker left it */
    }
    if (!s) return 1;
    printf("\n");
    cvn_study_print_statistics(stdout, s);
    printf("\nTop 10 trials (by validation accuracy):\n");
    cvn_study_print_top(stdout, s, 10);
    if (cvn_study_write_report(s, a.out)) {
        fprintf(stderr, "hpo: %s\n", cvn_last_error());
        rc = 1;
    } else {
        const char *names[64];
        double shares[64];
        int n = cvn_study_param_importances(s, 64, names, shares);
        if (n > 0) {
            printf("\nParameter importance (share of the accuracy's variance):\n");
            for (int i = 0; i < n && i < 64; i++) printf("  %-14s %.3f\n", names[i], shares[i]);
        }
        printf("\nwrote %s/{trials.csv,history.svg,parallel.svg,importance.svg,report.html}\n",
               a.out);
    }
    cvn_study_free(s);
    return rc;
}
