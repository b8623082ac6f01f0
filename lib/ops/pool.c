/* Pooling: max, average, adaptive average and global average over [N, C, H, W]. */
#include "ops/ops.h"

typedef struct {
    cvn_window win;
    int64_t planes;
    int32_t *argmax; /* max pooling by our kernel */
    bool vendor;     /* the backend's fused pooling ran (backward then needs x and y) */
} pool_saved;

static void pool_describe(const cvn_node *n, cvn_node_attrs *a) {
    a->win = ((const pool_saved *)n->saved)->win;
}

static void pool_backward(cvn_tape *t, cvn_node *n, bool is_max) {
    const pool_saved *s = n->saved;
    bool add = true; /* our max pooling can overwrite a fresh buffer; the others add to it */
    float *dx =
        is_max && !s->vendor ? cvn_grad_target(t, n->in[0], &add) : cvn_grad_buffer(t, n->in[0]);
    if (!dx) return;
    const float *dy = cvn_f(n->out->grad);
    if (s->vendor && t->be->pool2d_bwd(is_max, n->in[0]->shape[0], &s->win, dx, dy, cvn_f(n->out),
                                       cvn_f(n->in[0])))
        return;
    if (is_max)
        t->be->maxpool_bwd(&s->win, s->planes, dx, dy, s->argmax, add);
    else
        t->be->avgpool_bwd(&s->win, s->planes, dx, dy);
}

static void maxpool_backward(cvn_tape *t, cvn_node *n) {
    pool_backward(t, n, true);
}
static void avgpool_backward(cvn_tape *t, cvn_node *n) {
    pool_backward(t, n, false);
}

static void adaptive_backward(cvn_tape *t, cvn_node *n) {
    const pool_saved *s = n->saved;
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (dx)
        t->be->adaptive_avgpool_bwd(s->planes, s->win.h, s->win.w, s->win.oh, s->win.ow, dx,
                                    cvn_f(n->out->grad));
}

static bool check_nchw(const char *op, const cvn_tape *t, const cvn_tensor *x) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input")) return false;
    if (x->ndim != 4 || x->shape[2] > INT32_MAX / 4 || x->shape[3] > INT32_MAX / 4) {
        char s[96];
        cvn_set_error(CVN_ERR_SHAPE, "%s: input %s must be [N, C, H, W]", op,
                      cvn_shape_str(x, s, sizeof s));
        return false;
    }
    return true;
}

/* The shared part of every pooling op: output, window, recording. */
static cvn_tensor *pool(cvn_tape *t, const char *op, cvn_tensor *x, int kernel, int stride, int pad,
                        bool is_max) {
    if (!check_nchw(op, t, x)) return NULL;
    if (stride == 0) stride = kernel;
    char s[96];
    if (kernel < 1 || stride < 1 || pad < 0 || pad > kernel / 2) {
        cvn_set_error(CVN_ERR_ARG,
                      "%s: kernel %d, stride %d, padding %d: need kernel >= 1, stride >= 1 and "
                      "0 <= padding <= kernel / 2",
                      op, kernel, stride, pad);
        return NULL;
    }
    cvn_window w = {.c = (int)x->shape[1],
                    .h = (int)x->shape[2],
                    .w = (int)x->shape[3],
                    .kh = kernel,
                    .kw = kernel,
                    .sh = stride,
                    .sw = stride,
                    .ph = pad,
                    .pw = pad,
                    .dh = 1,
                    .dw = 1};
    w.oh = (w.h + 2 * pad - kernel) / stride + 1;
    w.ow = (w.w + 2 * pad - kernel) / stride + 1;
    if (w.h + 2 * pad < kernel || w.w + 2 * pad < kernel) {
        cvn_set_error(CVN_ERR_SHAPE, "%s: kernel %d does not fit input %s with padding %d", op,
                      kernel, cvn_shape_str(x, s, sizeof s), pad);
        return NULL;
    }
    int64_t planes = x->shape[0] * x->shape[1];
    cvn_tensor *out =
        cvn_tape_new_tensor(t, CVN_F32, 4, (int64_t[]){x->shape[0], x->shape[1], w.oh, w.ow});
    if (!out) return NULL;
    int32_t *argmax = NULL;
    bool vendor = t->be->pool2d_fwd && /* the backend's own pooling (cuDNN) */
                  t->be->pool2d_fwd(is_max, x->shape[0], &w, cvn_f(out), cvn_f(x));
    if (!vendor && is_max) {
        argmax = cvn_tape_data_alloc(t, (size_t)cvn_numel(out) * sizeof(int32_t));
        if (!argmax) return NULL;
        t->be->maxpool_fwd(&w, planes, cvn_f(out), argmax, cvn_f(x));
    } else if (!vendor) {
        t->be->avgpool_fwd(&w, planes, cvn_f(out), cvn_f(x));
    }
    bool fail;
    cvn_node *node = cvn_op_record(t, op, is_max ? maxpool_backward : avgpool_backward, out, 1,
                                   CVN_IN(x), &fail);
    pool_saved ps = {w, planes, argmax, vendor};
    return fail || !cvn_op_save(t, node, &ps, sizeof ps, pool_describe) ? NULL : out;
}

cvn_tensor *cvn_max_pool2d(cvn_tape *t, cvn_tensor *x, int kernel, int stride, int pad) {
    return pool(t, "max_pool2d", x, kernel, stride, pad, true);
}

cvn_tensor *cvn_avg_pool2d(cvn_tape *t, cvn_tensor *x, int kernel, int stride, int pad) {
    return pool(t, "avg_pool2d", x, kernel, stride, pad, false);
}

static cvn_tensor *adaptive(cvn_tape *t, const char *op, cvn_tensor *x, int oh, int ow) {
    if (!check_nchw(op, t, x)) return NULL;
    if (oh < 1 || ow < 1) {
        cvn_set_error(CVN_ERR_ARG, "%s: output size %dx%d must be at least 1x1", op, oh, ow);
        return NULL;
    }
    cvn_window w = {
        .c = (int)x->shape[1], .h = (int)x->shape[2], .w = (int)x->shape[3], .oh = oh, .ow = ow};
    if (w.h < 1 || w.w < 1) {
        char s[96];
        cvn_set_error(CVN_ERR_SHAPE, "%s: input %s has an empty plane", op,
                      cvn_shape_str(x, s, sizeof s));
        return NULL;
    }
    int64_t planes = x->shape[0] * x->shape[1];
    cvn_tensor *out =
        cvn_tape_new_tensor(t, CVN_F32, 4, (int64_t[]){x->shape[0], x->shape[1], oh, ow});
    if (!out) return NULL;
    t->be->adaptive_avgpool_fwd(planes, w.h, w.w, oh, ow, cvn_f(out), cvn_f(x));
    bool fail;
    cvn_node *node = cvn_op_record(t, op, adaptive_backward, out, 1, CVN_IN(x), &fail);
    pool_saved s = {w, planes, NULL, false};
    return fail || !cvn_op_save(t, node, &s, sizeof s, pool_describe) ? NULL : out;
}

cvn_tensor *cvn_adaptive_avg_pool2d(cvn_tape *t, cvn_tensor *x, int out_h, int out_w) {
    return adaptive(t, "adaptive_avg_pool2d", x, out_h, out_w);
}

cvn_tensor *cvn_global_avg_pool2d(cvn_tape *t, cvn_tensor *x) {
    return adaptive(t, "global_avg_pool2d", x, 1, 1);
}
