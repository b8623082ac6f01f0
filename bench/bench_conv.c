/* The CPU backend's fused convolution kernels called directly, per SIMD variant this CPU runs:
 * forward, dx and dw (+ db) of the direct 3x3 kernels on the reference CNN's layers and larger
 * ones, and of the depthwise kernel at strides 1 and 2. No tape, no seed fill: what bench_ops'
 * layer lines add around them is left out. Prints the median ms of 7 runs and GFLOP/s.
 *   build/bench/bench_conv [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cvnet.h"
#include "cpu/cpu.h"

#define REPS 7

typedef struct {
    const char *name;
    int n, c, h, w, o, k, stride, groups;
} conv_shape;

static const conv_shape shapes[] = {
    {"conv1 64x1x28x28 -> 32", 64, 1, 28, 28, 32, 3, 1, 1},
    {"conv2 64x32x14x14 -> 64", 64, 32, 14, 14, 64, 3, 1, 1},
    {"conv 32x64x32x32 -> 128", 32, 64, 32, 32, 128, 3, 1, 1},
    {"conv 64x3x32x32 -> 32", 64, 3, 32, 32, 32, 3, 1, 1},
    {"conv 64x8x16x16 -> 16", 64, 8, 16, 16, 16, 3, 1, 1},
    {"resnet1 64x16x28x28 -> 16", 64, 16, 28, 28, 16, 3, 1, 1},
    {"resnet2 64x32x14x14 -> 32", 64, 32, 14, 14, 32, 3, 1, 1},
    {"resnet3 64x64x7x7 -> 64", 64, 64, 7, 7, 64, 3, 1, 1},
    {"dwconv3 64x72x28x28", 64, 72, 28, 28, 72, 3, 1, 72},
    {"dwconv5/2 64x96x28x28", 64, 96, 28, 28, 96, 5, 2, 96},
    {"dwconv5 64x672x4x4", 64, 672, 4, 4, 672, 5, 1, 672},
    {"dwconv5 64x240x7x7", 64, 240, 7, 7, 240, 5, 1, 240},
    {"dwconv3 64x144x14x14", 64, 144, 14, 14, 144, 3, 1, 144},
    {"pwconv 64x16x28x28 -> 72", 64, 16, 28, 28, 72, 1, 1, 1},
    {"pwconv 64x240x7x7 -> 40", 64, 240, 7, 7, 40, 1, 1, 1},
    {"pwconv 64x96x4x4 -> 576", 64, 96, 4, 4, 576, 1, 1, 1},
};

/* mode 0: forward, 1: dx, 2: dw and db */
static double run(const cvn_backend *be, const cvn_conv_desc *d, int mode, float *y, const float *x,
                  const float *w, const float *b, float *dx, float *dw, float *db) {
    double t[REPS];
    for (int r = -1; r < REPS; r++) { /* run -1 warms up */
        int iters = 0;
        double t0 = bench_now(), el;
        do {
            bool ok = mode == 0   ? be->conv2d_fwd(d, y, x, w, b)
                      : mode == 1 ? be->conv2d_bwd(d, dx, NULL, NULL, y, x, w, false)
                                  : be->conv2d_bwd(d, NULL, dw, db, y, x, w, false);
            if (!ok) return -1;
            iters++;
            el = bench_now() - t0;
        } while (el < 0.05);
        if (r >= 0) t[r] = el / iters;
    }
    return bench_median(t, REPS);
}

int main(int argc, char **argv) {
    int threads = 2;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
    cvn_set_num_threads(threads);
    printf("# libcvnet bench_conv: %d threads; median of %d runs\n", threads, REPS);
    static const char *const variants[] = {"avx512", "avx2", "scalar"};
    static const char *const modes[] = {"fwd", "dx", "dw"};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const conv_shape *s = &shapes[si];
        const int pad = s->k / 2, oh = (s->h + 2 * pad - s->k) / s->stride + 1,
                  ow = (s->w + 2 * pad - s->k) / s->stride + 1;
        cvn_conv_desc d = {.n = s->n,
                           .c = s->c,
                           .h = s->h,
                           .w = s->w,
                           .o = s->o,
                           .kh = s->k,
                           .kw = s->k,
                           .oh = oh,
                           .ow = ow,
                           .sh = s->stride,
                           .sw = s->stride,
                           .ph = pad,
                           .pw = pad,
                           .dh = 1,
                           .dw = 1,
                           .groups = s->groups};
        const size_t nx = (size_t)s->n * s->c * s->h * s->w, ny = (size_t)s->n * s->o * oh * ow,
                     nw = (size_t)s->o * (s->c / s->groups) * s->k * s->k;
        float *x = malloc(nx * 4), *y = malloc(ny * 4), *w = malloc(nw * 4), *dx = malloc(nx * 4),
              *dw = calloc(nw, 4), *db = calloc((size_t)s->o, 4), *b = calloc((size_t)s->o, 4);
        cvn_rng r;
        cvn_rng_seed(&r, 1 + si);
        for (size_t i = 0; i < nx; i++) x[i] = cvn_rng_normal(&r);
        for (size_t i = 0; i < nw; i++) w[i] = cvn_rng_normal(&r);
        for (size_t i = 0; i < ny; i++) y[i] = cvn_rng_normal(&r);
        const double flops = 2.0 * s->n * s->o * (s->c / s->groups) * s->k * s->k * oh * ow;
        for (int v = 0; v < 3; v++) {
            const cvn_backend *be = cvn_cpu_backend_variant(variants[v]);
            if (!be || v == 2) continue; /* scalar: a reference for correctness, not speed */
            int64_t wf = be->conv2d_work(&d, false), wb = be->conv2d_work(&d, true);
            d.work_floats = wf > wb ? wf : wb;
            d.work = malloc((size_t)(d.work_floats > 0 ? d.work_floats : 1) * 4);
            for (int m = 0; m < 3; m++) {
                double sec = run(be, &d, m, y, x, w, b, dx, dw, db);
                char label[96];
                snprintf(label, sizeof label, "%s %s [%s]", s->name, modes[m], variants[v]);
                if (sec < 0)
                    printf("%-40s declined\n", label);
                else
                    printf("%-40s %9.3f ms  %8.1f GFLOP/s\n", label, sec * 1e3, flops / sec * 1e-9);
            }
            free(d.work);
        }
        free(x), free(y), free(w), free(dx), free(dw), free(db), free(b);
    }
    return 0;
}
