/* The CUDA backend against the CPU and PyTorch: every op case of op_cases.h runs on the GPU with
 * cuDNN convolution, with im2col + cuBLAS and with im2col + our own GEMM, forward and backward,
 * within 1e-4 relative; dropout draws the same
 * mask on both devices; a steady GPU training step does not grow its arena. Skips with a message
 * where there is no GPU or the build has no CUDA. make test also links it, as test_cuda_emulated,
 * against the CUDA backend built for the CPU emulation (tests/cuda_emu_runtime.h), where every
 * test runs with our kernels (on paths 2-9: without cuDNN and cuBLAS, 0 and 1 repeat them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_cases.h"
#include "optim_cases.h"
#ifdef CVN_WITH_CUDA
#include "cuda/cuda.h"
#endif

#define GPU_RTOL 1e-4f
#define GPU_ATOL 1e-5f

/* A device copy of a tensor that keeps requires_grad. */
static cvn_tensor *on_gpu(cvn_tensor *x) {
    cvn_tensor *d = cvn_tensor_to(x, CVN_CUDA);
    ck_assert_msg(d != NULL, "%s", cvn_last_error());
    return d;
}

/* The paths of kernels/cuda/cuda.h (cvn_cuda_use_path): 0 cuDNN + cuBLAS, 1-2 im2col, 3 our
 * convolution as tuned, 4-7 our implicit GEMM untuned, tap-major, on either tensor-core kernel,
 * 8-9 Winograd F(2x2) and F(4x4) wherever it runs. */
#ifdef CVN_WITH_CUDA
#define N_PATHS CVN_CUDA_PATHS
#else
#define N_PATHS 1 /* no GPU test runs */
#endif
#define N_ARCHS 4 /* the zoo's architectures, cvn_arch 0-3 */
static const char *path_name(int path) {
#ifdef CVN_WITH_CUDA
    return cvn_cuda_path_name(path);
#else
    (void)path;
    return "none";
#endif
}
/* The first path to run: 2 in the CPU emulation, which has neither cuDNN nor cuBLAS, so that paths
 * 0 and 1 would be paths 3 and 2 again. */
static int first_path;
static void use_path(int path) {
#ifdef CVN_WITH_CUDA
    cvn_cuda_use_path(path);
#else
    (void)path;
#endif
}

/* The tolerance of a path: GPU_RTOL, but 5 times that for Winograd F(4x4) (path 9), whose error
 * is 4-8 times the implicit GEMM's, up to 1e-5 of the outputs' scale (test_cuda_emu) */
static float path_rtol(int path) {
    return path == 9 ? 5 * GPU_RTOL : GPU_RTOL;
}

static void expect_gpu_rtol(const char *what, const cvn_tensor *got, const char *ref, float rtol) {
    ck_assert_msg(got != NULL, "%s: %s", what, cvn_last_error());
    cvn_tensor *h = cvn_tensor_to(got, CVN_CPU);
    expect_tensor(what, h, ref, rtol, GPU_ATOL);
    cvn_tensor_free(h);
}
static void expect_gpu(const char *what, const cvn_tensor *got, const char *ref) {
    expect_gpu_rtol(what, got, ref, GPU_RTOL);
}

static void run_case(const op_case *c, int path) {
    int n = n_inputs(c);
    cvn_tensor *host[3] = {0}, *in[3] = {0};
    char name[128], what[192];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.%s", c->name, c->inputs[i]);
        host[i] = ref_tensor(name, true);
        in[i] = on_gpu(host[i]);
    }
    cvn_tensor *stats[2] = {NULL, NULL};
    if (!strcmp(c->name, "bn_eval")) {
        cvn_tensor *rm = ref_tensor("bn_eval.rm", false), *rv = ref_tensor("bn_eval.rv", false);
        stats[0] = on_gpu(rm), stats[1] = on_gpu(rv);
        cvn_tensor_free(rm), cvn_tensor_free(rv);
    }
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CUDA));
    cvn_tensor *out = c->fn(t, in, stats[0] ? stats : NULL);
    snprintf(name, sizeof name, "%s.out", c->name);
    snprintf(what, sizeof what, "%s on %s", name, path_name(path));
    expect_gpu_rtol(what, out, name, path_rtol(path));
    snprintf(name, sizeof name, "%s.gout", c->name);
    const ref_array *gout = ref_get(name);
    CK_OK(cvn_backward(t, out, cvn_tape_tensor_f32(t, out->ndim, out->shape, gout->v)));
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.g%s", c->name, c->inputs[i]);
        snprintf(what, sizeof what, "%s on %s", name, path_name(path));
        ck_assert_msg(in[i]->grad != NULL, "%s: no gradient", what);
        ck_assert_int_eq(in[i]->grad->device, CVN_CUDA);
        expect_gpu_rtol(what, in[i]->grad, name, path_rtol(path));
    }
    cvn_tape_free(t);
    for (int i = 0; i < n; i++) cvn_tensor_free(host[i]), cvn_tensor_free(in[i]);
    cvn_tensor_free(stats[0]), cvn_tensor_free(stats[1]);
}

/* cudaMalloc calls so far (none without CUDA in the build, where no GPU test runs) */
static long cuda_mallocs(void) {
#ifdef CVN_WITH_CUDA
    return cvn_cuda_mallocs();
#else
    return 0;
#endif
}

/* Every op case on every path, path by path. */
START_TEST(test_ops_on_paths) {
    int path = _i / N_CASES;
    use_path(path);
    run_case(&cases[_i % N_CASES], path);
}
END_TEST

/* Elementwise |a - b| <= path_rtol (|b| + floor) between a GPU tensor and a CPU one. */
static void expect_near_cpu(const char *what, int path, const cvn_tensor *gpu,
                            const cvn_tensor *cpu, float floor) {
    cvn_tensor *h = CK_NOTNULL(cvn_tensor_to((cvn_tensor *)gpu, CVN_CPU));
    ck_assert_int_eq(cvn_numel(h), cvn_numel(cpu));
    const float *a = h->data, *b = cpu->data;
    for (int64_t i = 0; i < cvn_numel(h); i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= path_rtol(path) * (fabsf(b[i]) + floor),
                      "%s[%lld] %s: gpu %g cpu %g", what, (long long)i, path_name(path),
                      (double)a[i], (double)b[i]);
    cvn_tensor_free(h);
}

#ifdef CVN_WITH_CUDA
/* cvn_cuda_conv_tuning after all three products were tuned, against cvn_cuda_conv_picks: a line
 * per product, each variant with its time, fastest first, and the one marked kept is the one that
 * ran */
static void expect_tuning_report(void) {
    static const char *const products[3] = {"fwd", "bwd data", "bwd filter"};
    char report[16384], picks[512];
    size_t n = cvn_cuda_conv_tuning(report, sizeof report);
    ck_assert_msg(n > 0 && n < sizeof report, "a report of %zu bytes", n);
    char tiny[8];
    ck_assert_uint_eq(cvn_cuda_conv_tuning(tiny, sizeof tiny), n); /* cut short, the length kept */
    ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
    ck_assert(!strncmp(tiny, "fwd: ", 5));
    cvn_cuda_conv_picks(picks, sizeof picks);
    const char *line = report;
    for (int i = 0; i < 3; i++) {
        char head[16]; /* "fwd: " */
        size_t head_len = (size_t)snprintf(head, sizeof head, "%s: ", products[i]);
        ck_assert_msg(!strncmp(line, head, head_len), "%s", line);
        const char *end = strchr(line, '\n'), *entry = line + head_len, *pick = strstr(picks, head);
        ck_assert_ptr_nonnull(end);
        ck_assert_msg(pick != NULL, "no %s in %s", head, picks);
        pick += head_len;
        size_t pick_len = strcspn(pick, "|");
        while (pick_len && pick[pick_len - 1] == ' ') pick_len--;
        double last = 0;
        int entries = 0, kept = 0;
        while (entry < end) {
            const char *next = strstr(entry, ", ");
            if (!next || next > end) next = end;
            const char *ms = strstr(entry, " ms");
            ck_assert_msg(ms && ms < next, "%.*s", (int)(next - entry), entry);
            const char *num = ms;
            while (num > entry && num[-1] != ' ') num--;
            double t = strtod(num, NULL);
            ck_assert_msg(t >= last, "not fastest first at %.*s", (int)(next - entry), entry);
            last = t;
            const char *mark = strstr(entry, " (kept)");
            if (mark && mark < next) { /* its description: what ran */
                kept++;
                size_t described = (size_t)(num - 1 - entry);
                ck_assert_msg(described == pick_len && !strncmp(entry, pick, pick_len),
                              "kept '%.*s', ran '%.*s'", (int)described, entry, (int)pick_len,
                              pick);
            }
            entries++;
            entry = next == end ? end : next + 2;
        }
        ck_assert_int_ge(entries, 4); /* at least two tiles, FP32 and tensor cores */
        ck_assert_int_eq(kept, 1);
        line = end + 1;
    }
    ck_assert_int_eq(*line, 0);
}
#endif

/* A larger grouped, strided convolution: GPU (every path) against the CPU, y, dx and dw. */
START_TEST(test_large_conv_matches_cpu) {
    cvn_rng r;
    cvn_rng_seed(&r, 4);
    int64_t xs[4] = {8, 16, 20, 20}, ws[4] = {32, 8, 3, 3};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 4, xs), *w = cvn_tensor_new(CVN_F32, 4, ws);
    cvn_tensor_normal(x, &r, 0, 1), cvn_tensor_normal(w, &r, 0, 0.1f);
    cvn_tensor_set_requires_grad(x, true), cvn_tensor_set_requires_grad(w, true);
    cvn_conv2d_params p = {2, 1, 1, 1, 1, 1, 2};
    cvn_tape *tc = cvn_tape_new(CVN_CPU);
    cvn_tensor *yc = CK_NOTNULL(cvn_conv2d(tc, x, w, NULL, &p));
    CK_OK(cvn_backward(tc, cvn_sum(tc, cvn_mul(tc, yc, yc), 0, NULL, false), NULL));
    for (int path = first_path; path < N_PATHS; path++) {
        use_path(path);
        cvn_tensor *xg = on_gpu(x), *wg = on_gpu(w);
        cvn_tape *tg = cvn_tape_new(CVN_CUDA);
        cvn_tensor *yg = CK_NOTNULL(cvn_conv2d(tg, xg, wg, NULL, &p));
        CK_OK(cvn_backward(tg, cvn_sum(tg, cvn_mul(tg, yg, yg), 0, NULL, false), NULL));
        expect_near_cpu("y", path, yg, yc, 1e-2f);
        expect_near_cpu("dx", path, xg->grad, x->grad, 1.0f);
        expect_near_cpu("dw", path, wg->grad, w->grad, 1.0f);
#ifdef CVN_WITH_CUDA
        if (path == 3) expect_tuning_report();
        if (path == 0 && cvn_cuda_has_cudnn()) { /* what cuDNN's search timed for this shape */
            char s[4096], tiny[8];
            size_t n = cvn_cuda_cudnn_search(s, sizeof s);
            ck_assert_msg(n > 0 && n < sizeof s && !strncmp(s, "fwd: ", 5) &&
                              strstr(s, " | bwd data: ") && strstr(s, " | bwd filter: ") &&
                              strstr(s, " ms"),
                          "cuDNN's search reads '%s'", s);
            ck_assert_uint_eq(cvn_cuda_cudnn_search(tiny, sizeof tiny), n); /* cut short */
            ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
            int kept = 0; /* one algorithm kept per product */
            for (const char *k = s; (k = strstr(k, "(kept)")) != NULL; k++) kept++;
            ck_assert_msg(kept == 3, "cuDNN's search reads '%s'", s);
        }
#endif
        cvn_tensor_free(xg), cvn_tensor_free(wg);
        cvn_tape_free(tg);
    }
    cvn_tape_free(tc);
    cvn_tensor_free(x), cvn_tensor_free(w);
}
END_TEST

/* The fused inference convolution (activation, max pool) on every path against the CPU's: the
 * implicit GEMM applies the activation in its epilogue, cuDNN declines and the op composes. */
START_TEST(test_conv_fused_matches_cpu) {
    static const cvn_conv_epilogue epis[] = {{true, CVN_ACT_RELU, 0, 2},
                                             {true, CVN_ACT_LEAKY_RELU, 0.2f, 0},
                                             {true, CVN_ACT_GELU, 0, 0},
                                             {false, CVN_ACT_RELU, 0, 2}};
    cvn_rng r;
    cvn_rng_seed(&r, 6);
    int64_t xs[4] = {3, 5, 12, 10}, ws[4] = {7, 5, 3, 3}, bs[1] = {7};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 4, xs), *w = cvn_tensor_new(CVN_F32, 4, ws),
               *b = cvn_tensor_new(CVN_F32, 1, bs);
    cvn_tensor_normal(x, &r, 0, 1), cvn_tensor_normal(w, &r, 0, 0.3f),
        cvn_tensor_normal(b, &r, 0, 1);
    cvn_conv2d_params p = cvn_conv2d_defaults();
    p.pad_h = p.pad_w = 1;
    for (size_t e = 0; e < sizeof epis / sizeof *epis; e++) {
        cvn_tape *tc = cvn_tape_new(CVN_CPU);
        cvn_tape_set_grad_enabled(tc, false);
        cvn_tensor *yc = CK_NOTNULL(cvn_conv2d_fused(tc, x, w, b, &p, &epis[e]));
        for (int path = first_path; path < N_PATHS; path++) {
            use_path(path);
            cvn_tensor *xg = on_gpu(x), *wg = on_gpu(w), *bg = on_gpu(b);
            cvn_tape *tg = cvn_tape_new(CVN_CUDA);
            cvn_tape_set_grad_enabled(tg, false);
            cvn_tensor *yg = CK_NOTNULL(cvn_conv2d_fused(tg, xg, wg, bg, &p, &epis[e]));
            char what[32];
            snprintf(what, sizeof what, "epilogue %zu y", e);
            expect_near_cpu(what, path, yg, yc, 1e-2f);
            cvn_tensor_free(xg), cvn_tensor_free(wg), cvn_tensor_free(bg);
            cvn_tape_free(tg);
        }
        cvn_tape_free(tc);
    }
    cvn_tensor_free(x), cvn_tensor_free(w), cvn_tensor_free(b);
}
END_TEST

/* Batches uploaded asynchronously from page-locked slots are the batches the CPU loader yields:
 * 23 images of 5x6, two epochs, with and without the prefetch thread. */
/* 23 images of 5 x 6 in 4 classes, as IDX files in the test directory. */
static cvn_dataset *small_idx_set(void) {
    char img[160], lab[160];
    snprintf(img, sizeof img, "%s/gpu-img", test_dir());
    snprintf(lab, sizeof lab, "%s/gpu-lab", test_dir());
    unsigned char b[16 + 23 * 30], l[8 + 23];
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0, 23, 0, 0, 0, 5, 0, 0, 0, 6};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, 23};
    memcpy(b, h, 16), memcpy(l, hl, 8);
    for (int i = 0; i < 23 * 30; i++) b[16 + i] = (unsigned char)(i * 7 % 251);
    for (int i = 0; i < 23; i++) l[8 + i] = (unsigned char)(i % 4);
    FILE *f = fopen(img, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(b, 1, sizeof b, f), fclose(f);
    f = fopen(lab, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(l, 1, sizeof l, f), fclose(f);
    return CK_NOTNULL(cvn_dataset_idx(img, lab));
}

START_TEST(test_loader_async_upload) {
    cvn_dataset *ds = small_idx_set();
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        cvn_loader_config cfg = {.batch_size = 4,
                                 .shuffle = true,
                                 .seed = 3,
                                 .crop_padding = 1,
                                 .hflip = true,
                                 .prefetch = prefetch};
        cfg.mean[0] = 0.5f, cfg.std[0] = 0.25f;
        cvn_loader *lc = CK_NOTNULL(cvn_loader_new(ds, &cfg)),
                   *lg = CK_NOTNULL(cvn_loader_new(ds, &cfg));
        cvn_tape *tc = cvn_tape_new(CVN_CPU), *tg = cvn_tape_new(CVN_CUDA);
        int batches = 0;
        for (int epoch = 0; epoch < 2; epoch++) {
            cvn_tensor *xc, *yc, *xg, *yg;
            for (;;) {
                bool more = cvn_loader_next(lc, tc, &xc, &yc);
                ck_assert_int_eq(cvn_loader_next(lg, tg, &xg, &yg), more);
                if (!more) break;
                ck_assert_int_eq(xg->device, CVN_CUDA);
                cvn_tensor *xh = CK_NOTNULL(cvn_tensor_to(xg, CVN_CPU)),
                           *yh = CK_NOTNULL(cvn_tensor_to(yg, CVN_CPU));
                ck_assert_int_eq(cvn_numel(xh), cvn_numel(xc));
                ck_assert(!memcmp(xh->data, xc->data, (size_t)cvn_numel(xc) * sizeof(float)));
                ck_assert(!memcmp(yh->data, yc->data, (size_t)cvn_numel(yc) * sizeof(int32_t)));
                cvn_tensor_free(xh), cvn_tensor_free(yh);
                cvn_tape_reset(tc), cvn_tape_reset(tg);
                batches++;
            }
        }
        ck_assert_int_eq(batches, 2 * 6);
        cvn_loader_free(lc), cvn_loader_free(lg);
        cvn_tape_free(tc), cvn_tape_free(tg);
    }
    cvn_dataset_free(ds);
}
END_TEST

/* The copy stream running ahead of the compute stream: 30 batches with nothing read back between
 * them, each step first a 2048^3 matmul (so the host queues far ahead of the GPU, and the copies
 * of later batches run while earlier steps wait), then its batch reduced into a tape that is
 * never reset: the images' sum, and a cross entropy against logits [0 1 2 3] per row, which is
 * log(1 + e + e^2 + e^3) minus the mean label. Both match the CPU loader's batches. */
START_TEST(test_loader_uploads_run_ahead) {
    cvn_dataset *ds = small_idx_set();
    cvn_loader_config cfg = {
        .batch_size = 4, .shuffle = true, .drop_last = true, .seed = 7, .prefetch = true};
    cfg.mean[0] = 0.5f, cfg.std[0] = 0.25f;
    float rows[16];
    for (int i = 0; i < 16; i++) rows[i] = (float)(i % 4);
    int64_t ls[2] = {4, 4}, ms[2] = {2048, 2048};
#ifdef CVN_WITH_CUDA
    if (cvn_cuda_emulated()) ms[0] = ms[1] = 64; /* copies finish at once there: no run-ahead */
#endif
    cvn_tensor *logits = CK_NOTNULL(cvn_tensor_from_f32(2, ls, rows, 16));
    cvn_tensor *a = CK_NOTNULL(cvn_tensor_new_on(CVN_F32, 2, ms, CVN_CUDA));
    CK_OK(cvn_tensor_fill(a, 0.5f));
    enum { BATCHES = 30 };
    cvn_tensor *sums[2][BATCHES], *losses[2][BATCHES];
    cvn_tape *keep[2];
    for (int dev = 0; dev < 2; dev++) {
        cvn_device device = dev ? CVN_CUDA : CVN_CPU;
        cvn_loader *l = CK_NOTNULL(cvn_loader_new(ds, &cfg));
        cvn_tape *t = CK_NOTNULL(cvn_tape_new(device));
        keep[dev] = CK_NOTNULL(cvn_tape_new(device));
        cvn_tensor *lg = CK_NOTNULL(cvn_tensor_to(logits, device));
        for (int k = 0; k < BATCHES; k++) {
            cvn_tensor *x, *y;
            if (!cvn_loader_next(l, t, &x, &y)) ck_assert(cvn_loader_next(l, t, &x, &y));
            if (dev) CK_NOTNULL(cvn_matmul(t, a, a));
            sums[dev][k] = CK_NOTNULL(cvn_sum(keep[dev], x, 0, NULL, false));
            losses[dev][k] = CK_NOTNULL(cvn_cross_entropy(keep[dev], lg, y, 0.0f));
            cvn_tape_reset(t);
        }
        cvn_tensor_free(lg);
        cvn_tape_free(t);
        cvn_loader_free(l);
    }
    for (int k = 0; k < BATCHES; k++) {
        cvn_tensor *s = CK_NOTNULL(cvn_tensor_to(sums[1][k], CVN_CPU)),
                   *c = CK_NOTNULL(cvn_tensor_to(losses[1][k], CVN_CPU));
        float want_s = ((float *)sums[0][k]->data)[0], want_c = ((float *)losses[0][k]->data)[0];
        ck_assert_msg(fabsf(((float *)s->data)[0] - want_s) <= 1e-4f * (1.0f + fabsf(want_s)),
                      "batch %d: images sum to %g on the GPU, %g on the CPU", k,
                      (double)((float *)s->data)[0], (double)want_s);
        ck_assert_msg(fabsf(((float *)c->data)[0] - want_c) <= 1e-5f,
                      "batch %d: label loss %g on the GPU, %g on the CPU", k,
                      (double)((float *)c->data)[0], (double)want_c);
        cvn_tensor_free(s), cvn_tensor_free(c);
    }
    cvn_tape_free(keep[0]), cvn_tape_free(keep[1]);
    cvn_tensor_free(a), cvn_tensor_free(logits);
    cvn_dataset_free(ds);
}
END_TEST

/* cvn_fit and cvn_evaluate on the GPU (losses and correct predictions summed on the device, read
 * back now and then) against the same run on the CPU: per-epoch train loss, test loss and
 * accuracy. */
typedef struct {
    float train_loss[4], test_loss[4], test_accuracy[4];
} fit_log;

static void log_fit_epoch(void *ctx, const cvn_epoch_stats *s) {
    fit_log *log = ctx;
    log->train_loss[s->epoch] = s->train_loss;
    log->test_loss[s->epoch] = s->test_loss;
    log->test_accuracy[s->epoch] = s->test_accuracy;
}

START_TEST(test_fit_evaluate_match_cpu) {
    use_path(0);
    cvn_dataset *ds = small_idx_set();
    fit_log logs[2];
    float eval_loss[2], eval_acc[2];
    for (int dev = 0; dev < 2; dev++) {
        cvn_rng r;
        cvn_rng_seed(&r, 5);
        cvn_module *net = cvn_sequential_new();
        cvn_sequential_add(net, cvn_flatten_new(1));
        cvn_sequential_add(net, cvn_linear_new(30, 16, true, &r));
        cvn_sequential_add(net, cvn_activation_new(CVN_ACT_RELU, 0));
        cvn_sequential_add(net, cvn_linear_new(16, 4, true, &r));
        cvn_device device = dev ? CVN_CUDA : CVN_CPU;
        CK_OK(cvn_module_to(net, device));
        cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
        oc.lr = 0.05f, oc.momentum = 0.9f;
        cvn_optim *opt = CK_NOTNULL(cvn_optim_new(&oc));
        CK_OK(cvn_optim_add_module(opt, net));
        cvn_loader_config lc = {.batch_size = 4, .seed = 3, .mean = {0.5f}, .std = {0.25f}};
        cvn_loader *train = CK_NOTNULL(cvn_loader_new(ds, &lc)),
                   *test = CK_NOTNULL(cvn_loader_new(ds, &lc));
        cvn_tape *t = CK_NOTNULL(cvn_tape_new(device));
        cvn_fit_config fc = {
            .epochs = 3, .progress = 0, .on_epoch = log_fit_epoch, .ctx = &logs[dev]};
        CK_OK(cvn_fit(net, opt, t, train, test, &fc, NULL));
        CK_OK(cvn_evaluate(net, t, test, &eval_loss[dev], &eval_acc[dev]));
        cvn_loader_free(train), cvn_loader_free(test);
        cvn_tape_free(t);
        cvn_optim_free(opt);
        cvn_module_free(net);
    }
    for (int e = 1; e <= 3; e++) {
        ck_assert_float_eq_tol(logs[1].train_loss[e], logs[0].train_loss[e],
                               1e-4f * (1.0f + logs[0].train_loss[e]));
        ck_assert_float_eq_tol(logs[1].test_loss[e], logs[0].test_loss[e],
                               1e-4f * (1.0f + logs[0].test_loss[e]));
        ck_assert_float_eq(logs[1].test_accuracy[e], logs[0].test_accuracy[e]);
    }
    ck_assert_float_eq_tol(eval_loss[1], eval_loss[0], 1e-4f * (1.0f + eval_loss[0]));
    ck_assert_float_eq(eval_acc[1], eval_acc[0]);
    ck_assert_float_eq(eval_acc[0], logs[0].test_accuracy[3]);
    cvn_dataset_free(ds);
}
END_TEST

/* Training batch norm with running statistics on every path, against PyTorch. */
START_TEST(test_batch_norm_running_stats_gpu) {
    use_path(_i);
    cvn_tensor *hx = ref_tensor("bn_train.x", true), *hw = ref_tensor("bn_train.w", true);
    cvn_tensor *hb = ref_tensor("bn_train.b", true);
    cvn_tensor *hm = ref_tensor("bn_train.rm_before", false),
               *hv = ref_tensor("bn_train.rv_before", false);
    cvn_tensor *x = on_gpu(hx), *w = on_gpu(hw), *b = on_gpu(hb), *rm = on_gpu(hm),
               *rv = on_gpu(hv);
    cvn_tape *t = cvn_tape_new(CVN_CUDA);
    cvn_tensor *y = CK_NOTNULL(cvn_batch_norm2d(t, x, w, b, rm, rv, true, 0.1f, 1e-5f));
    expect_gpu("bn_train.out", y, "bn_train.out");
    expect_gpu("running_mean", rm, "bn_train.rm_after");
    expect_gpu("running_var", rv, "bn_train.rv_after");
    CK_OK(cvn_backward(t, y, cvn_tape_tensor_f32(t, 4, y->shape, ref_get("bn_train.gout")->v)));
    expect_gpu("bn_train.gx", x->grad, "bn_train.gx");
    expect_gpu("bn_train.gw", w->grad, "bn_train.gw");
    expect_gpu("bn_train.gb", b->grad, "bn_train.gb");
    cvn_tape_free(t);
    cvn_tensor *all[] = {hx, hw, hb, hm, hv, x, w, b, rm, rv};
    for (int i = 0; i < 10; i++) cvn_tensor_free(all[i]);
}
END_TEST

/* Training batch norm on shapes that split each channel into several slices of images, with
 * planes wider and narrower than a warp and uneven last slices, on inputs far from zero mean
 * (a one-pass variance would lose them): GPU (every path) against the CPU, the output, the running
 * statistics and the three gradients. */
START_TEST(test_batch_norm_matches_cpu) {
    static const int64_t shapes[][4] = {
        {50, 3, 9, 7}, {1000, 2, 1, 5}, {20, 70, 12, 12}, {64, 4, 8, 8}};
    const int64_t *xs = shapes[_i], cs[1] = {xs[1]};
    cvn_rng r;
    cvn_rng_seed(&r, 11 + _i);
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 4, xs), *w = cvn_tensor_new(CVN_F32, 1, cs),
               *b = cvn_tensor_new(CVN_F32, 1, cs), *g = cvn_tensor_new(CVN_F32, 4, xs);
    cvn_tensor_normal(x, &r, 300.0f, 2.0f), cvn_tensor_normal(w, &r, 1.0f, 0.3f);
    cvn_tensor_normal(b, &r, 0, 0.3f), cvn_tensor_normal(g, &r, 0, 1);
    cvn_tensor *rmc = cvn_tensor_new(CVN_F32, 1, cs), *rvc = cvn_tensor_new(CVN_F32, 1, cs);
    cvn_tensor_fill(rmc, 0.5f), cvn_tensor_fill(rvc, 2.0f);
    cvn_tensor *in[] = {x, w, b};
    for (int i = 0; i < 3; i++) cvn_tensor_set_requires_grad(in[i], true);
    cvn_tape *tc = cvn_tape_new(CVN_CPU);
    cvn_tensor *yc = CK_NOTNULL(cvn_batch_norm2d(tc, x, w, b, rmc, rvc, true, 0.1f, 1e-5f));
    CK_OK(cvn_backward(tc, yc, g));
    for (int path = first_path; path < N_PATHS; path++) {
        use_path(path);
        cvn_tensor *xg = on_gpu(x), *wg = on_gpu(w), *bg = on_gpu(b), *gg = on_gpu(g);
        cvn_tensor *rm = cvn_tensor_new_on(CVN_F32, 1, cs, CVN_CUDA),
                   *rv = cvn_tensor_new_on(CVN_F32, 1, cs, CVN_CUDA);
        cvn_tensor_fill(rm, 0.5f), cvn_tensor_fill(rv, 2.0f);
        cvn_tape *tg = cvn_tape_new(CVN_CUDA);
        cvn_tensor *yg = CK_NOTNULL(cvn_batch_norm2d(tg, xg, wg, bg, rm, rv, true, 0.1f, 1e-5f));
        CK_OK(cvn_backward(tg, yg, gg));
        expect_near_cpu("y", path, yg, yc, 1.0f);
        expect_near_cpu("running_mean", path, rm, rmc, 1.0f);
        expect_near_cpu("running_var", path, rv, rvc, 1.0f);
        /* dx is a difference of terms about 1 / std as large as dy: a looser floor */
        expect_near_cpu("dx", path, xg->grad, x->grad, 10.0f);
        expect_near_cpu("dgamma", path, wg->grad, w->grad, 10.0f);
        expect_near_cpu("dbeta", path, bg->grad, b->grad, 10.0f);
        cvn_tape_free(tg);
        cvn_tensor *gpu[] = {xg, wg, bg, gg, rm, rv};
        for (int i = 0; i < 6; i++) cvn_tensor_free(gpu[i]);
    }
    cvn_tape_free(tc);
    cvn_tensor *all[] = {x, w, b, g, rmc, rvc};
    for (int i = 0; i < 6; i++) cvn_tensor_free(all[i]);
}
END_TEST

/* Same seed, same mask on both devices (counter-based generator). */
START_TEST(test_dropout_same_mask) {
    int64_t shape[2] = {37, 101};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 2, shape);
    cvn_tensor_fill(x, 1.0f);
    cvn_tensor *xg = on_gpu(x);
    cvn_tape *tc = cvn_tape_new(CVN_CPU), *tg = cvn_tape_new(CVN_CUDA);
    cvn_rng r1, r2;
    cvn_rng_seed(&r1, 9), cvn_rng_seed(&r2, 9);
    cvn_tensor *a = cvn_dropout(tc, x, 0.4f, true, &r1), *b = cvn_dropout(tg, xg, 0.4f, true, &r2);
    cvn_tensor *bh = cvn_tensor_to(b, CVN_CPU);
    ck_assert(memcmp(a->data, bh->data, (size_t)cvn_numel(a) * sizeof(float)) == 0);
    cvn_tensor_free(bh), cvn_tensor_free(x), cvn_tensor_free(xg);
    cvn_tape_free(tc), cvn_tape_free(tg);
}
END_TEST

/* A module moved to the GPU trains with SGD + momentum (fused update kernel) and gradient clipping:
 * loss falls, and after step two neither the arena grows nor the backend calls cudaMalloc. */
START_TEST(test_module_steady_state) {
    cvn_rng r;
    cvn_rng_seed(&r, 5);
    cvn_conv2d_params pad1 = {1, 1, 1, 1, 1, 1, 1};
    cvn_module *net = cvn_sequential_new();
    cvn_sequential_add(net, cvn_conv2d_new(1, 8, 3, 3, &pad1, true, &r));
    cvn_sequential_add(net, cvn_batchnorm2d_new(8, 0.1f, 1e-5f));
    cvn_sequential_add(net, cvn_activation_new(CVN_ACT_RELU, 0));
    cvn_sequential_add(net, cvn_max_pool2d_new(2, 2, 0));
    cvn_sequential_add(net, cvn_flatten_new(1));
    cvn_sequential_add(net, cvn_dropout_new(0.1f, 3));
    cvn_sequential_add(net, cvn_linear_new(8 * 7 * 7, 10, true, &r));
    CK_OK(cvn_module_to(net, CVN_CUDA));
    int64_t xs[4] = {16, 1, 14, 14};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 4, xs), *y = cvn_tensor_new(CVN_I32, 1, xs);
    cvn_tensor_normal(x, &r, 0, 1);
    for (int i = 0; i < 16; i++) ((int32_t *)y->data)[i] = i % 10;
    cvn_tensor *xg = on_gpu(x), *yg = on_gpu(y);
    cvn_tape *t = cvn_tape_new(CVN_CUDA);
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    oc.lr = 0.1f, oc.momentum = 0.5f;
    cvn_optim *opt = cvn_optim_new(&oc);
    ck_assert_int_eq(cvn_optim_add_module(opt, net), 0);
    float first = 0, last = 0;
    size_t cap2 = 0;
    long mallocs2 = 0;
    for (int step = 0; step < 30; step++) {
        cvn_tensor *loss = cvn_cross_entropy(t, cvn_module_forward(net, t, xg), yg, 0);
        ck_assert_msg(loss != NULL, "%s", cvn_last_error());
        CK_OK(cvn_backward(t, loss, NULL));
        float l;
        CK_OK(cvn_tensor_read(loss, &l, sizeof l));
        if (step == 0) first = l;
        last = l;
        float norm = 0.0f;
        CK_OK(cvn_optim_clip_grad_norm(opt, 5.0f, &norm));
        ck_assert_msg(norm > 0.0f && isfinite(norm), "step %d: gradient norm %g", step,
                      (double)norm);
        CK_OK(cvn_optim_step(opt));
        cvn_optim_zero_grad(opt);
        cvn_tape_reset(t);
        if (step == 2) cap2 = cvn_tape_arena_capacity(t), mallocs2 = cuda_mallocs();
        if (step > 2) {
            ck_assert_uint_eq(cvn_tape_arena_capacity(t), cap2);
            ck_assert_int_eq(cuda_mallocs(), mallocs2);
        }
    }
    ck_assert_msg(last < first * 0.5f, "loss %g -> %g", (double)first, (double)last);
    cvn_optim_free(opt);
    cvn_tape_free(t);
    cvn_module_free(net);
    cvn_tensor_free(x), cvn_tensor_free(y), cvn_tensor_free(xg), cvn_tensor_free(yg);
}
END_TEST

/* The fused update kernels on the GPU reproduce torch.optim's trajectories. */
START_TEST(test_optim_trajectory) {
    optim_case oc = make_case(_i);
    cvn_tensor *h1 = ref_tensor("optim.w1", true), *h2 = ref_tensor("optim.w2", true);
    cvn_tensor *p1 = on_gpu(h1), *p2 = on_gpu(h2);
    const ref_array *c1 = ref_get("optim.c1"), *c2 = ref_get("optim.c2");
    const ref_array *noise = ref_get("optim.noise");
    cvn_optim *o = CK_NOTNULL(cvn_optim_new(&oc.cfg));
    if (!strcmp(oc.name, "groups")) {
        cvn_optim_add_group(o, 1, &p1, -1.0f, -1.0f);
        cvn_optim_add_group(o, 1, &p2, 0.05f, 0.1f);
    } else {
        cvn_optim_add_group(o, 2, (cvn_tensor *[]){p1, p2}, -1.0f, -1.0f);
    }
    for (int t = 1; t <= 100; t++) {
        set_grad(p1, c1, noise->v + (t - 1) * 42);
        if (strcmp(oc.name, "frozen")) set_grad(p2, c2, noise->v + (t - 1) * 42 + 37);
        CK_OK(cvn_optim_step(o));
    }
    char name[96];
    snprintf(name, sizeof name, "%s.p1.100", oc.name);
    expect_gpu(name, p1, name);
    snprintf(name, sizeof name, "%s.p2.100", oc.name);
    expect_gpu(name, p2, name);
    cvn_optim_free(o);
    cvn_tensor_free(p1), cvn_tensor_free(p2), cvn_tensor_free(h1), cvn_tensor_free(h2);
}
END_TEST

/* Gradient clipping on the GPU against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (the
 * values test_optim checks on the CPU): the norm of both gradients in one device reduction. */
START_TEST(test_clipping_gpu) {
    const ref_array *noise = ref_get("optim.noise");
    for (int mode = 0; mode < 2; mode++) {
        cvn_tensor *h1 = ref_tensor("optim.w1", true), *h2 = ref_tensor("optim.w2", true);
        cvn_tensor *p1 = on_gpu(h1), *p2 = on_gpu(h2);
        float g[42];
        for (int i = 0; i < 42; i++) g[i] = 3 * noise->v[i];
        cvn_tensor *g1 = CK_NOTNULL(cvn_tensor_from_f32(h1->ndim, h1->shape, g, 37)),
                   *g2 = CK_NOTNULL(cvn_tensor_from_f32(h2->ndim, h2->shape, g + 37, 5));
        CK_OK(cvn_tensor_copy(cvn_tensor_grad(p1), g1));
        CK_OK(cvn_tensor_copy(cvn_tensor_grad(p2), g2));
        cvn_tensor_free(g1), cvn_tensor_free(g2);
        cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
        cvn_optim *o = CK_NOTNULL(cvn_optim_new(&oc));
        ck_assert_int_eq(cvn_optim_add_group(o, 2, (cvn_tensor *[]){p1, p2}, -1, -1), 0);
        if (mode == 0) {
            float total;
            CK_OK(cvn_optim_clip_grad_norm(o, 1.0f, &total));
            ck_assert_float_eq_tol(total, ref_get("clip_norm.total")->v[0], 1e-5f);
            expect_gpu("clip_norm g1", p1->grad, "clip_norm.g1");
            expect_gpu("clip_norm g2", p2->grad, "clip_norm.g2");
        } else {
            CK_OK(cvn_optim_clip_grad_value(o, 0.3f));
            expect_gpu("clip_value g1", p1->grad, "clip_value.g1");
            expect_gpu("clip_value g2", p2->grad, "clip_value.g2");
        }
        cvn_optim_free(o);
        cvn_tensor_free(p1), cvn_tensor_free(p2), cvn_tensor_free(h1), cvn_tensor_free(h2);
    }
}
END_TEST

/* Every zoo architecture (depthwise and 1x1 convolutions, squeeze-excite, residual adds, batch
 * norm) on each GPU path against the same model on the CPU: training-mode loss and the gradient of
 * every parameter. */
START_TEST(test_zoo_models_match_cpu) {
    cvn_arch arch = (cvn_arch)(_i % N_ARCHS);
    use_path(_i / N_ARCHS);
    cvn_model_config mc = cvn_model_defaults(arch, 3, 16, 16, 5);
    mc.width_mult = 0.25f, mc.depth_mult = 0.34f, mc.dropout = 0.0f;
    mc.fc_dropout[0] = 0.0f;
    cvn_rng r1, r2;
    cvn_rng_seed(&r1, 11), cvn_rng_seed(&r2, 11);
    cvn_module *cpu = CK_NOTNULL(cvn_model_new(arch, &mc, &r1));
    cvn_module *gpu = CK_NOTNULL(cvn_model_new(arch, &mc, &r2));
    CK_OK(cvn_module_to(gpu, CVN_CUDA));
    int64_t xs[4] = {4, 3, 16, 16};
    cvn_tensor *x = cvn_tensor_new(CVN_F32, 4, xs), *y = cvn_tensor_new(CVN_I32, 1, xs);
    cvn_tensor_normal(x, &r1, 0, 1);
    for (int i = 0; i < 4; i++) ((int32_t *)y->data)[i] = i;
    cvn_tensor *xg = on_gpu(x), *yg = on_gpu(y);
    cvn_tape *tc = CK_NOTNULL(cvn_tape_new(CVN_CPU)), *tg = CK_NOTNULL(cvn_tape_new(CVN_CUDA));
    cvn_tensor *lc = CK_NOTNULL(cvn_cross_entropy(tc, cvn_module_forward(cpu, tc, x), y, 0));
    cvn_tensor *lg = CK_NOTNULL(cvn_cross_entropy(tg, cvn_module_forward(gpu, tg, xg), yg, 0));
    CK_OK(cvn_backward(tc, lc, NULL));
    CK_OK(cvn_backward(tg, lg, NULL));
    float want, got;
    CK_OK(cvn_tensor_read(lg, &got, sizeof got));
    want = *(float *)lc->data;
    ck_assert_msg(fabsf(got - want) <= 1e-4f * fabsf(want), "%s loss: GPU %g, CPU %g",
                  cvn_arch_name(arch), (double)got, (double)want);
    for (int i = 0; i < cvn_module_num_params(cpu); i++) {
        const char *name;
        cvn_tensor *pc = cvn_module_param_at(cpu, i, &name),
                   *pg = cvn_module_param_at(gpu, i, NULL);
        cvn_tensor *gh = CK_NOTNULL(cvn_tensor_to(cvn_tensor_grad(pg), CVN_CPU));
        const float *a = gh->data, *b = cvn_tensor_grad(pc)->data;
        float scale = 0;
        for (int64_t k = 0; k < cvn_numel(pc); k++) scale = fmaxf(scale, fabsf(b[k]));
        for (int64_t k = 0; k < cvn_numel(pc); k++)
            ck_assert_msg(fabsf(a[k] - b[k]) <= 1e-3f * scale + 1e-6f,
                          "%s %s grad[%lld]: GPU %g, CPU %g (largest %g)", cvn_arch_name(arch),
                          name, (long long)k, (double)a[k], (double)b[k], (double)scale);
        cvn_tensor_free(gh);
    }
    cvn_tape_free(tc), cvn_tape_free(tg);
    cvn_module_free(cpu), cvn_module_free(gpu);
    cvn_tensor_free(x), cvn_tensor_free(y), cvn_tensor_free(xg), cvn_tensor_free(yg);
    use_path(0);
}
END_TEST

/* Filling a GPU tensor: a constant, and seeded uniform and normal values equal to the CPU's from
 * the same seed (drawn on the host in the same order). */
START_TEST(test_fill_on_gpu) {
    int64_t s[2] = {3, 3001};
    for (int kind = 0; kind < 3; kind++) {
        cvn_tensor *c = CK_NOTNULL(cvn_tensor_new(CVN_F32, 2, s)),
                   *g = CK_NOTNULL(cvn_tensor_new_on(CVN_F32, 2, s, CVN_CUDA));
        cvn_rng rc, rg;
        cvn_rng_seed(&rc, 21), cvn_rng_seed(&rg, 21);
        for (int dev = 0; dev < 2; dev++) {
            cvn_tensor *t = dev ? g : c;
            cvn_rng *r = dev ? &rg : &rc;
            CK_OK(kind == 0   ? cvn_tensor_fill(t, -2.5f)
                  : kind == 1 ? cvn_tensor_uniform(t, r, -1, 3)
                              : cvn_tensor_normal(t, r, 1, 2));
        }
        cvn_tensor *h = CK_NOTNULL(cvn_tensor_to(g, CVN_CPU));
        ck_assert_msg(!memcmp(h->data, c->data, sizeof(float) * 3 * 3001), "fill kind %d", kind);
        if (kind == 0) ck_assert_float_eq(((float *)h->data)[9002], -2.5f);
        cvn_tensor_free(c), cvn_tensor_free(g), cvn_tensor_free(h);
    }
}
END_TEST

/* A whole file in memory (caller frees), its size in *n. */
static char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return b;
}

/* A model trained on the GPU, saved there: its checkpoint loads into a CPU model (parameters,
 * buffers and the optimizer's state equal to the GPU's), and its ONNX export is byte for byte the
 * export of that CPU model. */
START_TEST(test_checkpoint_and_onnx_from_gpu) {
    cvn_rng r;
    cvn_rng_seed(&r, 8);
    cvn_model_config mc = cvn_model_defaults(CVN_ARCH_CNN, 1, 12, 12, 4);
    cvn_module *g = CK_NOTNULL(cvn_model_new(CVN_ARCH_CNN, &mc, &r));
    CK_OK(cvn_module_to(g, CVN_CUDA));
    cvn_optim_config oc = cvn_optim_defaults(CVN_ADAM);
    cvn_optim *og = CK_NOTNULL(cvn_optim_new(&oc));
    ck_assert_int_eq(cvn_optim_add_module(og, g), 0);
    int64_t xs[4] = {6, 1, 12, 12};
    cvn_tensor *xh = cvn_tensor_new(CVN_F32, 4, xs), *yh = cvn_tensor_new(CVN_I32, 1, xs);
    cvn_tensor_normal(xh, &r, 0, 1);
    for (int i = 0; i < 6; i++) ((int32_t *)yh->data)[i] = i % 4;
    cvn_tensor *x = on_gpu(xh), *y = on_gpu(yh);
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CUDA));
    for (int step = 0; step < 2; step++) {
        CK_OK(cvn_backward(t, CK_NOTNULL(cvn_cross_entropy(t, cvn_module_forward(g, t, x), y, 0)),
                           NULL));
        CK_OK(cvn_optim_step(og));
        cvn_optim_zero_grad(og);
        cvn_tape_reset(t);
    }
    char ck_path[512], onnx_g[512], onnx_c[512];
    snprintf(ck_path, sizeof ck_path, "%s/gpu.safetensors", test_dir());
    snprintf(onnx_g, sizeof onnx_g, "%s/gpu.onnx", test_dir());
    snprintf(onnx_c, sizeof onnx_c, "%s/cpu.onnx", test_dir());
    CK_OK(cvn_checkpoint_save(ck_path, g, og, 0, NULL));

    cvn_rng_seed(&r, 99); /* another initialization, overwritten by the load */
    cvn_module *c = CK_NOTNULL(cvn_model_new(CVN_ARCH_CNN, &mc, &r));
    cvn_optim *oc2 = CK_NOTNULL(cvn_optim_new(&oc));
    ck_assert_int_eq(cvn_optim_add_module(oc2, c), 0);
    cvn_safetensors *ck = CK_NOTNULL(cvn_safetensors_open(ck_path));
    cvn_load_report rep;
    CK_OK(cvn_checkpoint_load(ck, c, oc2, &rep));
    ck_assert_int_eq(rep.skipped + rep.missing + rep.unexpected, 0);
    ck_assert(rep.optim_restored);
    cvn_text_free(rep.text);
    cvn_safetensors_close(ck);
    for (int i = 0; i < cvn_module_num_params(c); i++) {
        const char *name;
        cvn_tensor *pc = cvn_module_param_at(c, i, &name), *pg = cvn_module_param_at(g, i, NULL);
        cvn_tensor *h = CK_NOTNULL(cvn_tensor_to(pg, CVN_CPU));
        ck_assert_msg(!memcmp(h->data, pc->data, (size_t)cvn_numel(pc) * sizeof(float)),
                      "%s differs after the load", name);
        cvn_tensor_free(h);
    }
    ck_assert_int_eq(cvn_optim_num_state(oc2), cvn_optim_num_state(og));
    ck_assert_int_gt(cvn_optim_num_state(og), 0);
    for (int i = 0; i < cvn_optim_num_state(og) + cvn_module_num_buffers(g); i++) {
        const char *name;
        bool state = i < cvn_optim_num_state(og);
        int k = state ? i : i - cvn_optim_num_state(og);
        cvn_tensor *sc = state ? cvn_optim_state_at(oc2, k, &name)
                               : cvn_module_buffer_at(c, k, &name),
                   *sg = state ? cvn_optim_state_at(og, k, NULL) : cvn_module_buffer_at(g, k, NULL);
        cvn_tensor *h = CK_NOTNULL(cvn_tensor_to(sg, CVN_CPU));
        ck_assert_msg(!memcmp(h->data, sc->data, (size_t)cvn_numel(sc) * sizeof(float)),
                      "%s differs after the load", name);
        cvn_tensor_free(h);
    }
    int64_t in[4] = {1, 1, 12, 12};
    CK_OK(cvn_onnx_export(g, 4, in, onnx_g, NULL));
    CK_OK(cvn_onnx_export(c, 4, in, onnx_c, NULL));
    long ng, nc;
    char *bg = slurp(onnx_g, &ng), *bc = slurp(onnx_c, &nc);
    ck_assert_int_eq(ng, nc);
    ck_assert_msg(!memcmp(bg, bc, (size_t)ng), "the GPU model's ONNX file differs from the CPU's");
    free(bg), free(bc);
    cvn_tape_free(t);
    cvn_optim_free(og), cvn_optim_free(oc2);
    cvn_module_free(g), cvn_module_free(c);
    cvn_tensor_free(xh), cvn_tensor_free(yh), cvn_tensor_free(x), cvn_tensor_free(y);
}
END_TEST

/* A tensor larger than the GPU's memory: NULL and CVN_ERR_NOMEM, and the backend goes on working
 * (a cudaMalloc out of memory is not a sticky error). */
START_TEST(test_out_of_device_memory) {
    int64_t big[1] = {(int64_t)1 << 40}; /* 4 TiB of floats */
    ck_assert_ptr_null(cvn_tensor_new_on(CVN_F32, 1, big, CVN_CUDA));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_NOMEM);
    ck_assert_msg(strstr(cvn_last_error(), "cudaMalloc") != NULL, "%s", cvn_last_error());
    float v[3] = {1.0f, 2.0f, 3.5f}, got = 0.0f;
    int64_t s[1] = {3};
    cvn_tensor *h = CK_NOTNULL(cvn_tensor_from_f32(1, s, v, 3)), *d = on_gpu(h);
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CUDA));
    CK_OK(cvn_tensor_read(CK_NOTNULL(cvn_sum(t, cvn_mul(t, d, d), 0, NULL, false)), &got,
                          sizeof got));
    ck_assert_float_eq_tol(got, 1.0f + 4.0f + 12.25f, 1e-6f);
    cvn_tape_free(t);
    cvn_tensor_free(h), cvn_tensor_free(d);
}
END_TEST

#ifdef CVN_WITH_CUDA
/* The memory tests' layer: 3 x 3, padding 1, 8 -> 8 channels at 16 x 16 for two images, its CPU
 * output, and its inputs on the GPU with a GPU tape that records no gradients */
typedef struct {
    cvn_tensor *x, *w, *xg, *wg, *yc;
    cvn_tape *tc, *tg;
    cvn_conv2d_params p;
} small_layer;
static small_layer small_layer_new(uint64_t seed) {
    small_layer l;
    cvn_rng r;
    cvn_rng_seed(&r, seed);
    int64_t xs[4] = {2, 8, 16, 16}, ws[4] = {8, 8, 3, 3};
    l.x = cvn_tensor_new(CVN_F32, 4, xs), l.w = cvn_tensor_new(CVN_F32, 4, ws);
    cvn_tensor_normal(l.x, &r, 0, 1), cvn_tensor_normal(l.w, &r, 0, 0.3f);
    l.p = cvn_conv2d_defaults();
    l.p.pad_h = l.p.pad_w = 1;
    l.tc = cvn_tape_new(CVN_CPU);
    l.yc = CK_NOTNULL(cvn_conv2d(l.tc, l.x, l.w, NULL, &l.p));
    l.xg = on_gpu(l.x), l.wg = on_gpu(l.w);
    l.tg = CK_NOTNULL(cvn_tape_new(CVN_CUDA));
    cvn_tape_set_grad_enabled(l.tg, false);
    return l;
}
/* The layer on the GPU against the CPU's output, on the current path; the tape reset after */
static void small_layer_run(small_layer *l, int path) {
    expect_near_cpu("y", path, CK_NOTNULL(cvn_conv2d(l->tg, l->xg, l->wg, NULL, &l->p)), l->yc,
                    1e-2f);
    cvn_tape_reset(l->tg);
}
static void small_layer_free(small_layer *l) {
    cvn_tape_free(l->tg), cvn_tape_free(l->tc);
    cvn_tensor_free(l->xg), cvn_tensor_free(l->wg), cvn_tensor_free(l->x), cvn_tensor_free(l->w);
}
#endif

/* The backend's memory: the bytes it holds, counted exactly; a limit that refuses what would pass
 * it, with an error that says so; its scratch (Winograd's room, on path 8) freed when a tensor
 * needs the place, and a convolution that runs within the limit without it. */
START_TEST(test_memory_limit) {
#ifdef CVN_WITH_CUDA
    use_path(8);
    int64_t n1000[1] = {1000}, n1[1] = {1};
    small_layer l = small_layer_new(8);
    cvn_cuda_release_scratch();
    size_t base = cvn_cuda_memory_in_use();
    cvn_cuda_reset_memory_peak();
    ck_assert_uint_eq(cvn_cuda_memory_peak(), base);
    cvn_tensor *a = CK_NOTNULL(cvn_tensor_new_on(CVN_F32, 1, n1000, CVN_CUDA));
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), base + 4000);
    cvn_tensor_free(a);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), base);
    ck_assert_uint_eq(cvn_cuda_memory_peak(), base + 4000);
    for (int run = 0; run < 2; run++) small_layer_run(&l, 8); /* chunk, timings, room */
    size_t with_room = cvn_cuda_memory_in_use(), room = cvn_cuda_release_scratch();
    ck_assert_uint_gt(room, 0);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), with_room - room);
    small_layer_run(&l, 8);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), with_room); /* the room grew back */
    /* no byte to spare: a tensor the room's size takes its place */
    cvn_cuda_set_memory_limit(with_room);
    int64_t n_room[1] = {(int64_t)(room / sizeof(float))};
    cvn_tensor *big = CK_NOTNULL(cvn_tensor_new_on(CVN_F32, 1, n_room, CVN_CUDA));
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), with_room);
    ck_assert_uint_eq(cvn_cuda_release_scratch(), 0);
    ck_assert_ptr_null(cvn_tensor_new_on(CVN_F32, 1, n1, CVN_CUDA));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_NOMEM);
    ck_assert_msg(strstr(cvn_last_error(), "limit of") != NULL, "%s", cvn_last_error());
    /* the convolution runs without its room, on the implicit GEMM, within the limit */
    small_layer_run(&l, 8);
    char picks[256];
    cvn_cuda_conv_picks(picks, sizeof picks);
    ck_assert_msg(strstr(picks, "fwd: implicit") != NULL, "%s", picks);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), with_room);
    cvn_cuda_set_memory_limit(0);
    cvn_tensor_free(big);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), with_room - room);
    small_layer_free(&l);
#endif
}
END_TEST

/* Winograd within a limit that holds the room of a round of images but not of all at once:
 * tuning times the rounds rather than leave Winograd out */
START_TEST(test_winograd_rounds_within_limit) {
#ifdef CVN_WITH_CUDA
    use_path(8); /* F(2x2) wherever it can run */
    /* F(2x2)'s room for the forward of 8 -> 8 channels at 16 x 16, 64 tiles an image: U (8 x 8) and
     * V and M (8 x 64 tiles an image) for each of the 16 products */
    size_t one_image = 16 * (64 + 16 * 64) * sizeof(float), scratch = 2 * 8 * 256 * sizeof(float);
    size_t taps = 8 * 8 * 9 * sizeof(float); /* the tap-major weights, made ready before tuning */
    cvn_cuda_set_conv_winograd_round(one_image); /* rounds of one image, or both at once */
    small_layer l = small_layer_new(9);
    small_layer_run(&l, 8); /* the tape's chunk stays, for the run below */
    cvn_cuda_set_conv_tuning(false), cvn_cuda_set_conv_tuning(true); /* time the shape again */
    cvn_cuda_release_scratch();
    size_t base = cvn_cuda_memory_in_use();
    /* the tap-major weights, tuning's scratch for the output and one image's room, not both
     * images' (twice as much) */
    cvn_cuda_set_memory_limit(base + taps + scratch + one_image + 1024);
    small_layer_run(&l, 8);
    char picks[256];
    cvn_cuda_conv_picks(picks, sizeof picks);
    ck_assert_msg(strstr(picks, "fwd: winograd F(2x2) by 1 image 64x") != NULL, "%s", picks);
    ck_assert_uint_eq(cvn_cuda_memory_in_use(), base + taps + one_image); /* the room kept */
    cvn_cuda_set_memory_limit(0);
    cvn_cuda_set_conv_winograd_round(0);
    small_layer_free(&l);
#endif
}
END_TEST

#ifdef CVN_WITH_CUDA
/* After each test of the layers case, even one that failed midway: no limit on the next, and
 * Winograd's rounds as they were */
static void default_memory_settings(void) {
    cvn_cuda_set_conv_winograd_round(0);
    cvn_cuda_set_memory_limit(0);
}
#endif

START_TEST(test_no_gpu_is_an_error) {
    ck_assert_ptr_null(cvn_tape_new(CVN_CUDA));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_DEVICE);
    int64_t s[1] = {3};
    ck_assert_ptr_null(cvn_tensor_new_on(CVN_F32, 1, s, CVN_CUDA));
}
END_TEST

/* Four test cases, so that a slow run (compute-sanitizer) can take one at a time:
 * CK_RUN_CASE=ops|layers|training|zoo. */
int main(void) {
    Suite *s = suite_create("cuda");
    TCase *ops = tcase_create("ops");
    cvn_tape *probe = cvn_tape_new(CVN_CUDA);
    if (!probe && cvn_last_status() != CVN_ERR_DEVICE) { /* a GPU, but a setting it refused */
        printf("test_cuda: the CUDA backend did not start: %s\n", cvn_last_error());
        return 1;
    }
    if (!probe) {
        printf("test_cuda: GPU tests skipped: %s\n", cvn_last_error());
        tcase_add_test(ops, test_no_gpu_is_an_error);
        suite_add_tcase(s, ops);
        return run_suite_nofork(s) ? 1 : 0;
    }
    cvn_tape_free(probe);
    TCase *layers = tcase_create("layers"), *training = tcase_create("training");
    TCase *zoo = tcase_create("zoo");
#ifdef CVN_WITH_CUDA
    if (cvn_cuda_emulated()) {
        printf("test_cuda: on the CPU emulation of the CUDA backend (tests/cuda_emu_runtime.h), "
               "our kernels on paths 2-9 (0 and 1 would repeat 3 and 2: no cuDNN, no cuBLAS); "
               "nothing runs on a GPU\n");
        first_path = 2;
    } else
        printf("test_cuda: cuDNN %s\n", cvn_cuda_has_cudnn()
                                            ? "started"
                                            : "did not start: its path falls back to our kernels");
#endif
    tcase_add_loop_test(ops, test_ops_on_paths, first_path * N_CASES, N_PATHS * N_CASES);
    tcase_add_test(layers, test_large_conv_matches_cpu);
    tcase_add_test(layers, test_conv_fused_matches_cpu);
    tcase_add_loop_test(layers, test_batch_norm_running_stats_gpu, first_path, N_PATHS);
    tcase_add_loop_test(layers, test_batch_norm_matches_cpu, 0, 4);
    tcase_add_test(layers, test_dropout_same_mask);
    tcase_add_test(layers, test_out_of_device_memory);
    tcase_add_test(layers, test_memory_limit);
    tcase_add_test(layers, test_winograd_rounds_within_limit);
#ifdef CVN_WITH_CUDA
    tcase_add_checked_fixture(layers, NULL, default_memory_settings);
#endif
    tcase_add_test(layers, test_fill_on_gpu);
    tcase_add_loop_test(training, test_optim_trajectory, 0, N_OPTIM_CASES);
    tcase_add_test(training, test_clipping_gpu);
    tcase_add_test(training, test_checkpoint_and_onnx_from_gpu);
    tcase_add_test(training, test_loader_async_upload);
    tcase_add_test(training, test_loader_uploads_run_ahead);
    tcase_add_test(training, test_fit_evaluate_match_cpu);
    tcase_add_test(training, test_module_steady_state);
    tcase_add_loop_test(zoo, test_zoo_models_match_cpu, first_path * N_ARCHS, N_PATHS * N_ARCHS);
    suite_add_tcase(s, ops);
    suite_add_tcase(s, layers);
    suite_add_tcase(s, training);
    suite_add_tcase(s, zoo);
    return run_suite_nofork(s) ? 1 : 0; /* the CUDA context made above would not survive fork */
}
