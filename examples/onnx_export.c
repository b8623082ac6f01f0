/* Assignment 4: export a trained model to ONNX and compare the two runtimes. Loads a classifier
 * checkpoint (--checkpoint, as examples/classifier writes it) or trains the reference CNN briefly,
 * writes model.onnx, runs the FashionMNIST test set through libcvnet and through ONNX Runtime
 * (bench/ort_infer.js on onnxruntime-node, same threads), and prints for both the per-class
 * accuracy, the accuracy, the mean time per image at batch 1 and at batch 64, and the largest
 * logit difference. Writes model.onnx, test_inputs.f32, ort_logits.f32 and comparison.csv. */
#include <math.h>

#include "example_args.h"

typedef struct {
    const char *checkpoint, *ort_script;
    int runs, b1_images;
} options;

static int take(const char *k, const char *v, void *ctx) {
    options *o = ctx;
    char *end;
    if (!strcmp(k, "--checkpoint"))
        o->checkpoint = v;
    else if (!strcmp(k, "--ort-script"))
        o->ort_script = v;
    else if (!strcmp(k, "--runs"))
        return (o->runs = (int)strtol(v, &end, 10)) >= 1 && !*end ? 1 : -1;
    else if (!strcmp(k, "--b1-images"))
        return (o->b1_images = (int)strtol(v, &end, 10)) >= 1 && !*end ? 1 : -1;
    else
        return 0;
    return 1;
}

/* The checkpoint's model (architecture, classes, width and normalization from its metadata). */
static cvn_module *load_checkpoint(const char *path, int c, int h, int w, float *mean, float *std,
                                   cvn_rng *r) {
    cvn_safetensors *ck = cvn_safetensors_open(path);
    if (!ck) return NULL;
    const char *an = cvn_safetensors_meta(ck, "arch"),
               *nc = cvn_safetensors_meta(ck, "num_classes");
    const char *wm = cvn_safetensors_meta(ck, "width"),
               *norm = cvn_safetensors_meta(ck, "normalize");
    const char *shape = cvn_safetensors_meta(ck, "input");
    cvn_arch arch;
    int sc, sh, sw;
    cvn_module *m = NULL;
    if (!an || !nc || cvn_arch_parse(an, &arch)) {
        fprintf(stderr, "onnx_export: %s: not a classifier checkpoint (no arch / num_classes)\n",
                path);
    } else if (shape &&
               (sscanf(shape, "%d,%d,%d", &sc, &sh, &sw) != 3 || sc != c || sh != h || sw != w)) {
        fprintf(stderr, "onnx_export: %s was trained on %s inputs, the data here is %d,%d,%d\n",
                path, shape, c, h, w);
    } else {
        cvn_model_config mc = cvn_model_defaults(arch, c, h, w, atoi(nc));
        if (wm) mc.width_mult = (float)atof(wm);
        float m3[3], s3[3];
        if (norm &&
            sscanf(norm, "%f,%f,%f/%f,%f,%f", &m3[0], &m3[1], &m3[2], &s3[0], &s3[1], &s3[2]) == 6)
            *mean = m3[0], *std = s3[0];
        cvn_load_report rep = {0};
        m = cvn_model_new(arch, &mc, r);
        if (!m || cvn_checkpoint_load(ck, m, NULL, &rep) || rep.skipped || rep.missing) {
            fprintf(stderr, "onnx_export: %s: %s%s\n", path,
                    m && !cvn_last_status() ? "does not fit the model:\n" : cvn_last_error(),
                    rep.text ? rep.text : "");
            cvn_module_free(m);
            m = NULL;
        } else {
            printf("loaded %s: %s, %s classes, width %s, %d tensors\n", path, an, nc, wm ? wm : "1",
                   rep.loaded);
        }
        cvn_text_free(rep.text);
    }
    cvn_safetensors_close(ck);
    return m;
}

/* The reference CNN trained with Adam for a.epochs on the training set. */
static cvn_module *train_reference(const example_args *a, const cvn_dataset *train, cvn_rng *r) {
    cvn_module *net = cvn_reference_cnn(r);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    oc.lr = a->lr;
    cvn_optim *opt = cvn_optim_new(&oc);
    cvn_loader_config lc = {.batch_size = a->batch,
                            .shuffle = true,
                            .seed = a->seed,
                            .mean = {FMNIST_MEAN},
                            .std = {FMNIST_STD}};
    cvn_loader *tl = cvn_loader_new(train, &lc);
    cvn_fit_config fc = {.epochs = a->epochs, .progress = -1};
    printf("no --checkpoint: training the reference CNN for %d epoch(s) on %lld images\n",
           a->epochs, (long long)cvn_dataset_len(train));
    if (!net || !t || !opt || !tl || cvn_optim_add_module(opt, net) < 0 ||
        cvn_fit(net, opt, t, tl, NULL, &fc, NULL)) {
        fprintf(stderr, "onnx_export: training: %s\n", cvn_last_error());
        cvn_module_free(net);
        net = NULL;
    }
    cvn_loader_free(tl);
    cvn_optim_free(opt);
    cvn_tape_free(t);
    return net;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs images [start, start + count) of x through the model; logits go to out (may be NULL). */
static int infer(cvn_module *m, cvn_tape *t, const float *x, int64_t start, int count, int c, int h,
                 int w, float *out, int classes) {
    int64_t per = (int64_t)c * h * w;
    cvn_tensor *in = cvn_tape_tensor_f32(t, 4, (int64_t[]){count, c, h, w}, x + start * per);
    cvn_tensor *y = cvn_module_forward(m, t, in);
    if (y && out) memcpy(out + start * classes, y->data, (size_t)count * classes * sizeof(float));
    cvn_tape_reset(t);
    return y ? 0 : -1;
}

typedef struct {
    double b1_ms, b64_ms;
} timing;

/* libcvnet's logits for all n images at batch 64, then the median over runs of the time per image
 * at batch 64 (whole batches) and at batch 1 (the first b1 images): bench/ort_infer.js's protocol.
 */
static int run_cvnet(cvn_module *m, const float *x, int64_t n, int c, int h, int w, int classes,
                     const options *o, float *logits, timing *tm) {
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    if (!t) return -1;
    cvn_tape_set_grad_enabled(t, false);
    cvn_module_train(m, false);
    int rc = 0;
    for (int64_t s = 0; s < n && !rc; s += 64)
        rc = infer(m, t, x, s, (int)(n - s < 64 ? n - s : 64), c, h, w, logits, classes);
    double b64[16], b1[16];
    int runs = o->runs < 16 ? o->runs : 16;
    int64_t full = n / 64, m1 = n < o->b1_images ? n : o->b1_images;
    for (int r = 0; r < runs && !rc; r++) {
        double t0 = now_ms();
        for (int64_t b = 0; b < full && !rc; b++) rc = infer(m, t, x, b * 64, 64, c, h, w, NULL, 0);
        b64[r] = full ? (now_ms() - t0) / (double)(full * 64) : NAN;
        t0 = now_ms();
        for (int64_t i = 0; i < m1 && !rc; i++) rc = infer(m, t, x, i, 1, c, h, w, NULL, 0);
        b1[r] = (now_ms() - t0) / (double)m1;
    }
    qsort(b64, (size_t)runs, sizeof *b64, cmp_double);
    qsort(b1, (size_t)runs, sizeof *b1, cmp_double);
    tm->b64_ms = b64[runs / 2], tm->b1_ms = b1[runs / 2];
    cvn_tape_free(t);
    return rc;
}

/* A path inside single quotes for the shell. */
static void quote(char *dst, size_t size, const char *s) {
    size_t o = 0;
    dst[o++] = '\'';
    for (; *s && o + 6 < size; s++) {
        if (*s == '\'') {
            memcpy(dst + o, "'\\''", 4);
            o += 4;
        } else {
            dst[o++] = *s;
        }
    }
    dst[o++] = '\'';
    dst[o] = '\0';
}

static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* ONNX Runtime through bench/ort_infer.js: logits into ort_logits.f32 and its timing; 1 when
 * node or onnxruntime-node is missing (message printed). */
static int run_ort(const example_args *a, const options *o, const char *model, const char *inputs,
                   int64_t n, int c, int h, int w, float *logits, int classes, timing *tm,
                   char *version, size_t vsize) {
    char q_model[1200], q_in[1200], q_out[1200], q_script[1200], out[700], json_path[700],
        cmd[9000];
    const char *node_path = getenv("NODE_PATH");
    if (!node_path || !node_path[0]) node_path = ".peers/node_modules";
    snprintf(out, sizeof out, "%s/ort_logits.f32", a->out);
    snprintf(json_path, sizeof json_path, "%s/ort_timing.json", a->out);
    quote(q_model, sizeof q_model, model);
    quote(q_in, sizeof q_in, inputs);
    quote(q_out, sizeof q_out, out);
    quote(q_script, sizeof q_script, o->ort_script);
    char q_np[1200], q_json[1200];
    quote(q_np, sizeof q_np, node_path);
    quote(q_json, sizeof q_json, json_path);
    snprintf(cmd, sizeof cmd,
             "NODE_PATH=%s node %s %s --shape %lld,%d,%d,%d --input %s --logits %s --threads %d "
             "--runs %d --b1-images %d > %s",
             q_np, q_script, q_model, (long long)n, c, h, w, q_in, q_out, a->threads, o->runs,
             o->b1_images, q_json);
    if (system(cmd) != 0) {
        printf("ONNX Runtime: not run (needs node and onnxruntime-node under %s: "
               "tests/onnx/verify.sh installs it, or `cd .peers && ONNXRUNTIME_NODE_INSTALL=skip "
               "npm install onnxruntime-node@1.30.0`)\n",
               node_path);
        return 1;
    }
    FILE *f = fopen(json_path, "r");
    char json[512] = "";
    if (f) {
        size_t got = fread(json, 1, sizeof json - 1, f);
        json[got] = '\0';
        fclose(f);
    }
    const char *v = strstr(json, "\"ort\":\"");
    snprintf(version, vsize, "%.*s", v ? (int)strcspn(v + 7, "\"") : 1, v ? v + 7 : "?");
    tm->b1_ms = json_number(json, "b1_ms"), tm->b64_ms = json_number(json, "b64_ms");
    f = fopen(out, "rb");
    size_t want = (size_t)n * classes;
    size_t got = f ? fread(logits, sizeof(float), want, f) : 0;
    if (f) fclose(f);
    if (got != want || isnan(tm->b1_ms)) {
        fprintf(stderr, "onnx_export: ONNX Runtime's output in %s is incomplete\n", a->out);
        return -1;
    }
    return 0;
}

/* Per-class accuracy lines and the accuracy of logits against labels. */
static float report(const char *who, const float *logits, const int32_t *labels, int64_t n,
                    int classes, const cvn_dataset *ds) {
    cvn_predictions *p = cvn_predictions_new(n, classes, logits, labels);
    const char *names[64];
    for (int k = 0; k < classes && k < 64; k++) names[k] = cvn_dataset_class_name(ds, k);
    cvn_metrics mt = {0};
    printf("\n%s:\n", who);
    if (!p || cvn_print_class_accuracy(stdout, p, classes <= 64 ? names : NULL) ||
        cvn_metrics_summary(p, &mt))
        fprintf(stderr, "onnx_export: %s\n", cvn_last_error());
    printf("Accuracy of the network on the %lld test images: %.2f %%\n", (long long)n,
           100.0 * mt.accuracy);
    cvn_predictions_free(p);
    return mt.accuracy;
}

int main(int argc, char **argv) {
    example_args a = example_defaults(1, 12000, 1e-3f);
    options o = {.ort_script = "bench/ort_infer.js", .runs = 3, .b1_images = 1000};
    const char *usage =
        "  --checkpoint CKPT   a classifier checkpoint (default: train the reference "
        "CNN for --epochs)\n"
        "  --runs N            timing passes; medians are reported (3)\n"
        "  --b1-images N       images timed at batch 1 per pass (1000)\n"
        "  --ort-script PATH   bench/ort_infer.js\n";
    int rc = example_parse(argc, argv, "onnx_export", usage, &a, take, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if (a.device != CVN_CPU) return fprintf(stderr, "onnx_export: compares on the CPU only\n"), 2;
    cvn_set_num_threads(a.threads);
    cvn_dataset *train, *test;
    if (example_load(&a, "onnx_export", &train, &test)) return 1;
    int c, h, w;
    cvn_dataset_image_shape(test, &c, &h, &w);
    cvn_rng rng;
    cvn_rng_seed(&rng, a.seed);
    float mean = FMNIST_MEAN, std = FMNIST_STD;
    cvn_module *net = o.checkpoint ? load_checkpoint(o.checkpoint, c, h, w, &mean, &std, &rng)
                                   : train_reference(&a, train, &rng);
    if (!net) return 1;

    char model[700];
    snprintf(model, sizeof model, "%s/model.onnx", a.out);
    if (cvn_onnx_export(net, 4, (int64_t[]){1, c, h, w}, model, NULL)) {
        fprintf(stderr, "onnx_export: %s\n", cvn_last_error());
        return 1;
    }
    FILE *mf = fopen(model, "rb");
    long bytes = 0;
    if (mf) fseek(mf, 0, SEEK_END), bytes = ftell(mf), fclose(mf);
    printf("exported %s (%.2f MB, opset 17, dynamic batch)\n", model, (double)bytes / 1e6);

    /* the normalized test images, as both runtimes will see them */
    int64_t n = cvn_dataset_len(test), per = (int64_t)c * h * w, got = 0;
    int classes = cvn_dataset_num_classes(test);
    float *x = malloc((size_t)(n * per) * sizeof *x);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    float *ours = malloc((size_t)(n * classes) * sizeof *ours);
    float *theirs = malloc((size_t)(n * classes) * sizeof *theirs);
    cvn_loader_config lc = {.batch_size = 256, .mean = {mean, mean, mean}, .std = {std, std, std}};
    cvn_loader *l = cvn_loader_new(test, &lc);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    cvn_tensor *bx, *by;
    if (!x || !labels || !ours || !theirs || !l || !t)
        return fprintf(stderr, "onnx_export: out of memory\n"), 1;
    while (cvn_loader_next(l, t, &bx, &by)) {
        memcpy(x + got * per, bx->data, (size_t)cvn_numel(bx) * sizeof(float));
        memcpy(labels + got, by->data, (size_t)cvn_numel(by) * sizeof(int32_t));
        got += bx->shape[0];
        cvn_tape_reset(t);
    }
    cvn_tape_free(t);
    cvn_loader_free(l);
    char inputs[700];
    snprintf(inputs, sizeof inputs, "%s/test_inputs.f32", a.out);
    FILE *f = fopen(inputs, "wb");
    if (got != n || !f || fwrite(x, sizeof(float), (size_t)(n * per), f) != (size_t)(n * per) ||
        fclose(f)) {
        fprintf(stderr, "onnx_export: could not write %s\n", inputs);
        return 1;
    }

    printf("timing: %d thread(s), medians of %d passes; batch 64 over the %lld test images, "
           "batch 1 over the first %d\n",
           a.threads, o.runs, (long long)n, (int)(n < o.b1_images ? n : o.b1_images));
    timing tc = {0}, to = {0};
    if (run_cvnet(net, x, n, c, h, w, classes, &o, ours, &tc)) {
        fprintf(stderr, "onnx_export: %s\n", cvn_last_error());
        return 1;
    }
    char version[32] = "";
    int ort =
        run_ort(&a, &o, model, inputs, n, c, h, w, theirs, classes, &to, version, sizeof version);
    if (ort < 0) return 1;

    float acc_c = report("libcvnet", ours, labels, n, classes, test), acc_o = NAN;
    char who[64];
    snprintf(who, sizeof who, "ONNX Runtime %s", version);
    if (ort == 0) acc_o = report(who, theirs, labels, n, classes, test);
    double diff = 0;
    for (int64_t i = 0; ort == 0 && i < n * classes; i++)
        diff = fmax(diff, fabs((double)ours[i] - (double)theirs[i]));

    printf("\n%-22s %10s %16s %16s %14s\n", "runtime", "accuracy", "batch 1 ms/img",
           "batch 64 ms/img", "batch 64 img/s");
    printf("%-22s %9.2f%% %16.4f %16.4f %14.0f\n", "libcvnet", 100.0 * acc_c, tc.b1_ms, tc.b64_ms,
           1000.0 / tc.b64_ms);
    if (ort == 0) {
        printf("%-22s %9.2f%% %16.4f %16.4f %14.0f\n", who, 100.0 * acc_o, to.b1_ms, to.b64_ms,
               1000.0 / to.b64_ms);
        printf("speed ratio (ONNX Runtime time / libcvnet time; > 1: libcvnet faster): batch 1 "
               "%.2f, batch 64 %.2f\n",
               to.b1_ms / tc.b1_ms, to.b64_ms / tc.b64_ms);
        printf("largest logit difference: %.3g\n", diff);
    }
    char csv[700];
    snprintf(csv, sizeof csv, "%s/comparison.csv", a.out);
    f = fopen(csv, "w");
    if (f) {
        fprintf(f, "runtime,accuracy,b1_ms_per_image,b64_ms_per_image,max_logit_diff\n");
        fprintf(f, "libcvnet,%.6f,%.6f,%.6f,0\n", (double)acc_c, tc.b1_ms, tc.b64_ms);
        if (ort == 0)
            fprintf(f, "onnxruntime %s,%.6f,%.6f,%.6f,%.3g\n", version, (double)acc_o, to.b1_ms,
                    to.b64_ms, diff);
        fclose(f);
    }
    if (ort == 0)
        printf("test accuracy: libcvnet %.2f %%, ONNX Runtime %.2f %%\n", 100.0 * acc_c,
               100.0 * acc_o);
    else
        printf("test accuracy: %.2f %%\n", 100.0 * acc_c);
    free(x), free(labels), free(ours), free(theirs);
    cvn_module_free(net);
    cvn_dataset_free(train), cvn_dataset_free(test);
    return 0;
}
