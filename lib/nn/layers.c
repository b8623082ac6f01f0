/* The layers: each a struct that embeds cvn_module, a forward, and a constructor. */
#include <math.h>

#include "nn/module.h"

/* PyTorch's default for Linear and Conv2d: kaiming_uniform_(a = sqrt(5)) gives a bound of
 * 1 / sqrt(fan_in) for the weight; the bias is uniform in the same bound. */
static cvn_tensor *uniform_param(int ndim, const int64_t *shape, float bound, cvn_rng *r) {
    cvn_tensor *x = cvn_tensor_new(CVN_F32, ndim, shape);
    if (x && cvn_tensor_uniform(x, r, -bound, bound)) {
        cvn_tensor_free(x);
        return NULL;
    }
    return x;
}

static cvn_module *finish(cvn_module *m, cvn_status s) {
    if (s == CVN_OK) return m;
    cvn_module_free(m);
    return NULL;
}

/* ------------------------------------------------------------------ linear */

static cvn_tensor *linear_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    return cvn_linear(t, x, m->params[0], m->n_params > 1 ? m->params[1] : NULL);
}
static const cvn_module_vtable linear_vt = {.kind = "Linear", .forward = linear_forward};

cvn_module *cvn_linear_new(int in_features, int out_features, bool bias, cvn_rng *r) {
    if (in_features < 1 || out_features < 1 || !r) {
        cvn_set_error(CVN_ERR_ARG, "linear_new: %d -> %d features%s", in_features, out_features,
                      r ? "; both must be >= 1" : " with a NULL rng");
        return NULL;
    }
    cvn_module *m = cvn_module_alloc(sizeof *m, &linear_vt);
    if (!m) return NULL;
    float bound = 1.0f / sqrtf((float)in_features);
    cvn_status s = cvn_module_own(
        m, "weight", uniform_param(2, (int64_t[]){out_features, in_features}, bound, r), true);
    if (!s && bias)
        s = cvn_module_own(m, "bias", uniform_param(1, (int64_t[]){out_features}, bound, r), true);
    return finish(m, s);
}

/* ------------------------------------------------------------------ conv2d */

typedef struct {
    cvn_module base;
    cvn_conv2d_params p;
} conv2d_module;

static cvn_tensor *conv2d_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    conv2d_module *c = (conv2d_module *)m;
    return cvn_conv2d(t, x, m->params[0], m->n_params > 1 ? m->params[1] : NULL, &c->p);
}
static cvn_tensor *conv2d_fuse(cvn_module *m, cvn_tape *t, cvn_tensor *x, cvn_module *const *next,
                               int n_next, int *used);
static const cvn_module_vtable conv2d_vt = {
    .kind = "Conv2d", .forward = conv2d_forward, .fuse = conv2d_fuse};

cvn_module *cvn_conv2d_new(int in_channels, int out_channels, int kernel_h, int kernel_w,
                           const cvn_conv2d_params *p, bool bias, cvn_rng *r) {
    cvn_conv2d_params prm = p ? *p : cvn_conv2d_defaults();
    if (in_channels < 1 || out_channels < 1 || kernel_h < 1 || kernel_w < 1 || !r ||
        prm.groups < 1 || in_channels % prm.groups || out_channels % prm.groups) {
        cvn_set_error(CVN_ERR_ARG,
                      "conv2d_new: %d -> %d channels, kernel %dx%d, %d group(s): sizes must be "
                      ">= 1, channels divisible by groups, rng not NULL",
                      in_channels, out_channels, kernel_h, kernel_w, prm.groups);
        return NULL;
    }
    conv2d_module *c = (conv2d_module *)cvn_module_alloc(sizeof *c, &conv2d_vt);
    if (!c) return NULL;
    c->p = prm;
    int fan_in = in_channels / prm.groups * kernel_h * kernel_w;
    float bound = 1.0f / sqrtf((float)fan_in);
    int64_t wshape[4] = {out_channels, in_channels / prm.groups, kernel_h, kernel_w};
    cvn_status s = cvn_module_own(&c->base, "weight", uniform_param(4, wshape, bound, r), true);
    if (!s && bias)
        s = cvn_module_own(&c->base, "bias", uniform_param(1, (int64_t[]){out_channels}, bound, r),
                           true);
    return finish(&c->base, s);
}

/* ------------------------------------------------------------------ pooling */

typedef struct {
    cvn_module base;
    int kernel, stride, pad; /* for adaptive pooling: kernel = out_h, stride = out_w */
} pool_module;

static cvn_tensor *max_pool_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    pool_module *p = (pool_module *)m;
    return cvn_max_pool2d(t, x, p->kernel, p->stride, p->pad);
}
static cvn_tensor *avg_pool_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    pool_module *p = (pool_module *)m;
    return cvn_avg_pool2d(t, x, p->kernel, p->stride, p->pad);
}
static cvn_tensor *adaptive_pool_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    pool_module *p = (pool_module *)m;
    return cvn_adaptive_avg_pool2d(t, x, p->kernel, p->stride);
}
static const cvn_module_vtable max_pool_vt = {.kind = "MaxPool2d", .forward = max_pool_forward};
static const cvn_module_vtable avg_pool_vt = {.kind = "AvgPool2d", .forward = avg_pool_forward};
static const cvn_module_vtable adaptive_pool_vt = {.kind = "AdaptiveAvgPool2d",
                                                   .forward = adaptive_pool_forward};

static cvn_module *pool_new(const cvn_module_vtable *vt, int a, int b, int c) {
    pool_module *p = (pool_module *)cvn_module_alloc(sizeof *p, vt);
    if (!p) return NULL;
    p->kernel = a;
    p->stride = b;
    p->pad = c;
    return &p->base;
}

cvn_module *cvn_max_pool2d_new(int kernel, int stride, int pad) {
    if (kernel < 1 || stride < 0 || pad < 0 || pad > kernel / 2) {
        cvn_set_error(CVN_ERR_ARG, "max_pool2d_new: kernel %d, stride %d, padding %d", kernel,
                      stride, pad);
        return NULL;
    }
    return pool_new(&max_pool_vt, kernel, stride, pad);
}

cvn_module *cvn_avg_pool2d_new(int kernel, int stride, int pad) {
    if (kernel < 1 || stride < 0 || pad < 0 || pad > kernel / 2) {
        cvn_set_error(CVN_ERR_ARG, "avg_pool2d_new: kernel %d, stride %d, padding %d", kernel,
                      stride, pad);
        return NULL;
    }
    return pool_new(&avg_pool_vt, kernel, stride, pad);
}

cvn_module *cvn_adaptive_avg_pool2d_new(int out_h, int out_w) {
    if (out_h < 1 || out_w < 1) {
        cvn_set_error(CVN_ERR_ARG, "adaptive_avg_pool2d_new: output %dx%d", out_h, out_w);
        return NULL;
    }
    return pool_new(&adaptive_pool_vt, out_h, out_w, 0);
}

/* ------------------------------------------------------------------ dropout */

typedef struct {
    cvn_module base;
    float p;
    cvn_rng rng;
} dropout_module;

static cvn_tensor *dropout_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    dropout_module *d = (dropout_module *)m;
    return cvn_dropout(t, x, d->p, m->training, &d->rng);
}
static const cvn_module_vtable dropout_vt = {.kind = "Dropout", .forward = dropout_forward};

cvn_module *cvn_dropout_new(float p, uint64_t seed) {
    if (!(p >= 0.0f && p <= 1.0f)) {
        cvn_set_error(CVN_ERR_ARG, "dropout_new: p = %g; must be in [0, 1]", (double)p);
        return NULL;
    }
    dropout_module *d = (dropout_module *)cvn_module_alloc(sizeof *d, &dropout_vt);
    if (!d) return NULL;
    d->p = p;
    cvn_rng_seed(&d->rng, seed);
    return &d->base;
}

/* ------------------------------------------------------------------ batch norm */

typedef struct {
    cvn_module base;
    float momentum, eps;
} batchnorm_module;

static cvn_tensor *batchnorm_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    batchnorm_module *b = (batchnorm_module *)m;
    return cvn_batch_norm2d(t, x, m->params[0], m->params[1], m->buffers[0], m->buffers[1],
                            m->training, b->momentum, b->eps);
}
static const cvn_module_vtable batchnorm_vt = {.kind = "BatchNorm2d", .forward = batchnorm_forward};

cvn_module *cvn_batchnorm2d_new(int channels, float momentum, float eps) {
    if (channels < 1 || !(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        cvn_set_error(CVN_ERR_ARG, "batchnorm2d_new: %d channels, momentum %g, eps %g", channels,
                      (double)momentum, (double)eps);
        return NULL;
    }
    batchnorm_module *b = (batchnorm_module *)cvn_module_alloc(sizeof *b, &batchnorm_vt);
    if (!b) return NULL;
    b->momentum = momentum;
    b->eps = eps;
    int64_t c = channels;
    cvn_tensor *w = cvn_tensor_new(CVN_F32, 1, &c), *bias = cvn_tensor_new(CVN_F32, 1, &c);
    cvn_tensor *rm = cvn_tensor_new(CVN_F32, 1, &c), *rv = cvn_tensor_new(CVN_F32, 1, &c);
    if (!w || !bias || !rm || !rv) {
        cvn_tensor_free(w), cvn_tensor_free(bias), cvn_tensor_free(rm), cvn_tensor_free(rv);
        return finish(&b->base, CVN_ERR_NOMEM);
    }
    cvn_tensor_fill(w, 1.0f);
    cvn_tensor_fill(rv, 1.0f);
    /* four tensors fit CVN_MODULE_MAX_OWN, so owning cannot fail */
    cvn_module_own(&b->base, "weight", w, true);
    cvn_module_own(&b->base, "bias", bias, true);
    cvn_module_own(&b->base, "running_mean", rm, false);
    cvn_status s = cvn_module_own(&b->base, "running_var", rv, false);
    return finish(&b->base, s);
}

/* ------------------------------------------------------------------ flatten, activations */

typedef struct {
    cvn_module base;
    int start_dim;
} flatten_module;

static cvn_tensor *flatten_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    return cvn_flatten(t, x, ((flatten_module *)m)->start_dim);
}
static const cvn_module_vtable flatten_vt = {.kind = "Flatten", .forward = flatten_forward};

cvn_module *cvn_flatten_new(int start_dim) {
    flatten_module *f = (flatten_module *)cvn_module_alloc(sizeof *f, &flatten_vt);
    if (f) f->start_dim = start_dim;
    return f ? &f->base : NULL;
}

typedef struct {
    cvn_module base;
    cvn_activation kind;
    float alpha;
} activation_module;

static cvn_tensor *activation_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    activation_module *a = (activation_module *)m;
    return cvn_activate(t, x, a->kind, a->alpha);
}

static const cvn_module_vtable activation_vts[] = {
    {.kind = "ReLU", .forward = activation_forward},
    {.kind = "LeakyReLU", .forward = activation_forward},
    {.kind = "Sigmoid", .forward = activation_forward},
    {.kind = "Tanh", .forward = activation_forward},
    {.kind = "GELU", .forward = activation_forward},
    {.kind = "SiLU", .forward = activation_forward},
    {.kind = "Hardswish", .forward = activation_forward},
    {.kind = "Hardsigmoid", .forward = activation_forward},
};

cvn_module *cvn_activation_new(cvn_activation kind, float alpha) {
    if ((unsigned)kind > CVN_ACT_HARDSIGMOID) {
        cvn_set_error(CVN_ERR_ARG, "activation_new: unknown activation %d", (int)kind);
        return NULL;
    }
    activation_module *a = (activation_module *)cvn_module_alloc(sizeof *a, &activation_vts[kind]);
    if (!a) return NULL;
    a->kind = kind;
    a->alpha = alpha;
    return &a->base;
}

/* ------------------------------------------------------------------ fusion */

/* At inference a convolution takes an eval-mode batch norm after it into its weights
 * (cvn_batch_norm2d_fold), and the activation and / or the max pool (square, stride = kernel, no
 * padding) after those into one cvn_conv2d_fused. It declines while the tape records, so training
 * keeps its ops and gradients as they are. */
static cvn_tensor *conv2d_fuse(cvn_module *m, cvn_tape *t, cvn_tensor *x, cvn_module *const *next,
                               int n_next, int *used) {
    cvn_tensor *w = m->params[0], *b = m->n_params > 1 ? m->params[1] : NULL;
    cvn_conv_epilogue e = {0};
    int k = 0;
    const cvn_module *bn = NULL;
    if (k < n_next && next[k]->vt == &batchnorm_vt && !next[k]->training) bn = next[k++];
    if (k < n_next && next[k]->vt->forward == activation_forward) {
        const activation_module *a = (const activation_module *)next[k++];
        e.activate = true;
        e.act = a->kind;
        e.alpha = a->alpha;
    }
    if (k < n_next && next[k]->vt == &max_pool_vt) {
        const pool_module *p = (const pool_module *)next[k];
        if (p->pad == 0 && (p->stride == 0 || p->stride == p->kernel)) {
            e.pool = p->kernel;
            k++;
        }
    }
    *used = 0;
    if (!k || cvn_tape_should_record(t, 3, (cvn_tensor *const[]){x, w, b})) return NULL;
    if (bn && cvn_batch_norm2d_fold(t, w, b, bn->params[0], bn->params[1], bn->buffers[0],
                                    bn->buffers[1], ((const batchnorm_module *)bn)->eps, &w, &b)) {
        cvn_clear_error(); /* run the layers one by one, which report their own errors */
        return NULL;
    }
    *used = k;
    return cvn_conv2d_fused(t, x, w, b, &((conv2d_module *)m)->p, &e);
}
