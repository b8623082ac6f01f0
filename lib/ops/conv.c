/* 2-D convolution: the backend's fused kernels first (the CPU's direct 3x3 ones, cuDNN), else
 * im2col + GEMM. There several images share one column matrix so each GEMM is large enough to run
 * near the machine's peak; the chunk of images is sized to a workspace budget. */
#include <stdio.h>

#include "ops/ops.h"

typedef struct {
    cvn_conv2d_params p;
    cvn_window win; /* one group's window */
    int n, groups, out_c;
} conv_saved;

cvn_conv2d_params cvn_conv2d_defaults(void) {
    return (cvn_conv2d_params){1, 1, 0, 0, 1, 1, 1};
}

static cvn_conv_desc describe(const conv_saved *s) {
    const cvn_window *w = &s->win;
    return (cvn_conv_desc){.n = s->n,
                           .c = w->c * s->groups,
                           .h = w->h,
                           .w = w->w,
                           .o = s->out_c,
                           .kh = w->kh,
                           .kw = w->kw,
                           .oh = w->oh,
                           .ow = w->ow,
                           .sh = w->sh,
                           .sw = w->sw,
                           .ph = w->ph,
                           .pw = w->pw,
                           .dh = w->dh,
                           .dw = w->dw,
                           .groups = s->groups};
}

/* The fused convolution's scratch, when the backend asks for some (false: out of memory). */
static bool give_work(cvn_tape *t, cvn_conv_desc *cd, bool backward) {
    const cvn_backend *be = t->be;
    cd->work_floats = be->conv2d_work ? be->conv2d_work(cd, backward) : 0;
    if (cd->work_floats <= 0) return true;
    cd->work = cvn_tape_data_alloc(t, (size_t)cd->work_floats * sizeof(float));
    return cd->work != NULL;
}

/* Gives the fused convolution's scratch back to the tape (it is dead once the call returns). */
static void take_work(cvn_tape *t, cvn_conv_desc *cd) {
    if (cd->work) cvn_tape_data_free(t, cd->work, (size_t)cd->work_floats * sizeof(float));
    cd->work = NULL;
}

static void conv_describe(const cvn_node *n, cvn_node_attrs *a) {
    const conv_saved *s = n->saved;
    a->win = s->win;
    a->groups = s->groups;
}

/* Images per chunk: as many as the backend's workspace holds, at least one. */
static int chunk_images(const cvn_backend *be, const conv_saved *s) {
    int64_t per = (int64_t)s->win.c * s->win.kh * s->win.kw * s->win.oh * s->win.ow;
    int64_t nb = per ? be->conv_workspace / per : s->n;
    if (nb < 1) nb = 1;
    if (nb > s->n) nb = s->n;
    return (int)nb;
}

static void conv_backward(cvn_tape *t, cvn_node *node) {
    const conv_saved *s = node->saved;
    const cvn_backend *be = t->be;
    cvn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const cvn_window *win = &s->win;
    const float *dy = cvn_f(node->out->grad);
    bool dx_add;
    float *dx = cvn_grad_target(t, x, &dx_add), *dw = cvn_grad_buffer(t, w),
          *db = cvn_grad_buffer(t, b);
    cvn_conv_desc cd = describe(s);
    const bool fused = be->conv2d_bwd && give_work(t, &cd, true) &&
                       be->conv2d_bwd(&cd, dx, dw, db, dy, cvn_f(x), cvn_f(w), dx_add);
    take_work(t, &cd);
    if (fused) return; /* the backend's own convolution did it all */
    if (dx && !dx_add) be->zero(dx, (size_t)cvn_numel(x) * sizeof(float)); /* col2im adds */
    int64_t hw = (int64_t)win->oh * win->ow, k = (int64_t)win->c * win->kh * win->kw;
    int og = s->out_c / s->groups, nb = chunk_images(be, s);
    int64_t img = (int64_t)x->shape[1] * x->shape[2] * x->shape[3];
    int64_t plane_in = (int64_t)win->c * win->h * win->w;
    if (db) be->reduce_to(3, (int64_t[]){s->n, s->out_c, hw}, db, (int64_t[]){0, 1, 0}, dy, 1.0f);
    if (!dx && !dw) return;
    const size_t cols_bytes = (size_t)(k * nb * hw) * sizeof(float),
                 dyc_bytes = (size_t)(og * nb * hw) * sizeof(float);
    float *cols = cvn_tape_data_alloc(t, cols_bytes), *dyc = cvn_tape_data_alloc(t, dyc_bytes);
    if (!cols || !dyc) return;
    for (int n0 = 0; n0 < s->n; n0 += nb) {
        int cnt = s->n - n0 < nb ? s->n - n0 : nb;
        int64_t ld = cnt * hw;
        for (int g = 0; g < s->groups; g++) {
            /* dy of this group's channels as [og, cnt * hw] */
            be->copy_blocks(og, cnt, hw, dyc, ld, hw, dy + ((int64_t)n0 * s->out_c + g * og) * hw,
                            hw, s->out_c * hw, NULL);
            const float *wg = cvn_f(w) + g * og * k;
            const float *xg = cvn_f(x) + n0 * img + g * plane_in;
            if (dw) {
                be->im2col(win, cols, ld, xg, img, cnt);
                be->gemm(false, true, og, (int)k, (int)ld, 1.0f, dyc, (int)ld, cols, (int)ld, 1.0f,
                         dw + g * og * k, (int)k);
            }
            if (dx) {
                be->gemm(true, false, (int)k, (int)ld, og, 1.0f, wg, (int)k, dyc, (int)ld, 0.0f,
                         cols, (int)ld);
                be->col2im(win, dx + n0 * img + g * plane_in, img, cols, ld, cnt);
            }
        }
    }
    cvn_tape_data_free(t, dyc, dyc_bytes);
    cvn_tape_data_free(t, cols, cols_bytes);
}

/* The generic forward: per chunk of images and per group, im2col then one GEMM, then the
 * [og, images * hw] result is moved into NCHW with the bias added. */
static bool im2col_forward(cvn_tape *t, const conv_saved *s, float *y, const float *x,
                           const float *w, const float *bias) {
    const cvn_backend *be = t->be;
    const cvn_window *win = &s->win;
    int64_t o = s->out_c, hw = (int64_t)win->oh * win->ow, k = (int64_t)win->c * win->kh * win->kw;
    int64_t plane_in = (int64_t)win->c * win->h * win->w, img = plane_in * s->groups;
    int og = (int)(o / s->groups), nb = chunk_images(be, s);
    const size_t cols_bytes = (size_t)(k * nb * hw) * sizeof(float),
                 yc_bytes = (size_t)(og * nb * hw) * sizeof(float);
    float *cols = cvn_tape_data_alloc(t, cols_bytes), *yc = cvn_tape_data_alloc(t, yc_bytes);
    if (!cols || !yc) return false;
    for (int n0 = 0; n0 < s->n; n0 += nb) {
        int cnt = s->n - n0 < nb ? s->n - n0 : nb;
        int64_t ld = cnt * hw;
        for (int g = 0; g < s->groups; g++) {
            be->im2col(win, cols, ld, x + n0 * img + g * plane_in, img, cnt);
            be->gemm(false, false, og, (int)ld, (int)k, 1.0f, w + g * og * k, (int)k, cols, (int)ld,
                     0.0f, yc, (int)ld);
            be->copy_blocks(og, cnt, hw, y + ((int64_t)n0 * o + g * og) * hw, hw, o * hw, yc, ld,
                            hw, bias ? bias + g * og : NULL);
        }
    }
    cvn_tape_data_free(t, yc, yc_bytes);
    cvn_tape_data_free(t, cols, cols_bytes);
    return true;
}

static int out_size(int in, int k, int stride, int pad, int dil) {
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

/* Checks a convolution's arguments and fills its saved state; false with the error set. */
static bool conv_setup(const char *op, cvn_tape *t, cvn_tensor *x, cvn_tensor *weight,
                       cvn_tensor *bias, const cvn_conv2d_params *p, conv_saved *out) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input") ||
        !cvn_check_f32(op, t, weight, "weight") || (bias && !cvn_check_f32(op, t, bias, "bias")))
        return false;
    cvn_conv2d_params prm = p ? *p : cvn_conv2d_defaults();
    char s1[96], s2[96];
    cvn_shape_str(x, s1, sizeof s1);
    cvn_shape_str(weight, s2, sizeof s2);
    if (x->ndim != 4 || weight->ndim != 4) {
        cvn_set_error(CVN_ERR_SHAPE, "%s: input %s and weight %s must both be 4-D", op, s1, s2);
        return false;
    }
    if (prm.stride_h < 1 || prm.stride_w < 1 || prm.pad_h < 0 || prm.pad_w < 0 ||
        prm.dilation_h < 1 || prm.dilation_w < 1 || prm.groups < 1) {
        cvn_set_error(CVN_ERR_ARG,
                      "%s: stride %dx%d, padding %dx%d, dilation %dx%d, groups %d: strides, "
                      "dilations and groups must be >= 1, padding >= 0",
                      op, prm.stride_h, prm.stride_w, prm.pad_h, prm.pad_w, prm.dilation_h,
                      prm.dilation_w, prm.groups);
        return false;
    }
    int64_t c = x->shape[1], o = weight->shape[0];
    if (c % prm.groups || o % prm.groups || weight->shape[1] * prm.groups != c) {
        cvn_set_error(CVN_ERR_SHAPE,
                      "%s: input %s has %lld channels but weight %s with %d group(s) expects "
                      "%lld (and out channels divisible by groups)",
                      op, s1, (long long)c, s2, prm.groups,
                      (long long)(weight->shape[1] * prm.groups));
        return false;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != o)) {
        char s3[96];
        cvn_set_error(CVN_ERR_SHAPE, "%s: bias %s does not fit weight %s", op,
                      cvn_shape_str(bias, s3, sizeof s3), s2);
        return false;
    }
    if (x->shape[2] > INT32_MAX / 4 || x->shape[3] > INT32_MAX / 4 || c > INT32_MAX ||
        weight->shape[2] > 4096 || weight->shape[3] > 4096 || x->shape[0] > INT32_MAX) {
        cvn_set_error(CVN_ERR_SHAPE, "%s: input %s or weight %s is too large", op, s1, s2);
        return false;
    }
    *out = (conv_saved){.p = prm, .n = (int)x->shape[0], .groups = prm.groups, .out_c = (int)o};
    cvn_window *win = &out->win;
    *win = (cvn_window){.c = (int)(c / prm.groups),
                        .h = (int)x->shape[2],
                        .w = (int)x->shape[3],
                        .kh = (int)weight->shape[2],
                        .kw = (int)weight->shape[3],
                        .sh = prm.stride_h,
                        .sw = prm.stride_w,
                        .ph = prm.pad_h,
                        .pw = prm.pad_w,
                        .dh = prm.dilation_h,
                        .dw = prm.dilation_w};
    win->oh = out_size(win->h, win->kh, win->sh, win->ph, win->dh);
    win->ow = out_size(win->w, win->kw, win->sw, win->pw, win->dw);
    if (win->oh < 1 || win->ow < 1) {
        cvn_set_error(CVN_ERR_SHAPE,
                      "%s: kernel %dx%d (dilation %dx%d) does not fit input %s with padding %dx%d",
                      op, win->kh, win->kw, win->dh, win->dw, s1, win->ph, win->pw);
        return false;
    }
    return true;
}

cvn_tensor *cvn_conv2d(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                       const cvn_conv2d_params *p) {
    const char *op = "conv2d";
    conv_saved s;
    if (!conv_setup(op, t, x, weight, bias, p, &s)) return NULL;
    const cvn_window *win = &s.win;
    cvn_tensor *out =
        cvn_tape_new_tensor(t, CVN_F32, 4, (int64_t[]){s.n, s.out_c, win->oh, win->ow});
    if (!out) return NULL;
    const cvn_backend *be = t->be;
    cvn_conv_desc cd = describe(&s);
    const bool fused =
        be->conv2d_fwd && give_work(t, &cd, false) &&
        be->conv2d_fwd(&cd, cvn_f(out), cvn_f(x), cvn_f(weight), bias ? cvn_f(bias) : NULL);
    take_work(t, &cd);
    if (!fused &&
        !im2col_forward(t, &s, cvn_f(out), cvn_f(x), cvn_f(weight), bias ? cvn_f(bias) : NULL))
        return NULL;
    bool fail;
    cvn_node *node = cvn_op_record(t, op, conv_backward, out, 3, CVN_IN(x, weight, bias), &fail);
    return fail || !cvn_op_save(t, node, &s, sizeof s, conv_describe) ? NULL : out;
}

/* The convolution with its epilogue in one backend call (nothing recorded), or NULL when the
 * backend declines or the epilogue does not fit (no error set: the caller composes instead). */
static cvn_tensor *fused_forward(cvn_tape *t, const conv_saved *s, cvn_tensor *x,
                                 cvn_tensor *weight, cvn_tensor *bias, const cvn_conv_epilogue *e) {
    const cvn_backend *be = t->be;
    const int k = e->pool, oh = k ? s->win.oh / k : s->win.oh, ow = k ? s->win.ow / k : s->win.ow;
    if (!be->conv2d_fwd || oh < 1 || ow < 1) return NULL;
    cvn_conv_desc cd = describe(s);
    cd.act_on = e->activate;
    cd.act = (cvn_act_kind)e->act;
    cd.alpha = e->alpha;
    cd.pool = k;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, 4, (int64_t[]){s->n, s->out_c, oh, ow});
    if (!out || !give_work(t, &cd, false)) {
        cvn_clear_error();
        return NULL;
    }
    const bool done =
        be->conv2d_fwd(&cd, cvn_f(out), cvn_f(x), cvn_f(weight), bias ? cvn_f(bias) : NULL);
    take_work(t, &cd);
    if (!done) cvn_tape_data_free(t, out->data, (size_t)cvn_numel(out) * sizeof(float));
    return done ? out : NULL;
}

cvn_tensor *cvn_conv2d_fused(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                             const cvn_conv2d_params *p, const cvn_conv_epilogue *e) {
    const char *op = "conv2d_fused";
    conv_saved s;
    if (!conv_setup(op, t, x, weight, bias, p, &s)) return NULL;
    cvn_conv_epilogue none = {0};
    if (!e) e = &none;
    if (e->pool < 0 || (e->activate && (unsigned)e->act > CVN_ACT_HARDSIGMOID)) {
        cvn_set_error(CVN_ERR_ARG,
                      "%s: epilogue with activation %d and pool %d (need a known "
                      "activation and pool >= 0)",
                      op, (int)e->act, e->pool);
        return NULL;
    }
    bool fusable =
        (e->activate || e->pool) && !cvn_tape_should_record(t, 3, CVN_IN(x, weight, bias));
    cvn_tensor *y = fusable ? fused_forward(t, &s, x, weight, bias, e) : NULL;
    if (y) return y;
    y = cvn_conv2d(t, x, weight, bias, p); /* the parts one by one, recorded as such */
    if (y && e->activate) y = cvn_activate(t, y, e->act, e->alpha);
    if (y && e->pool) y = cvn_max_pool2d(t, y, e->pool, e->pool, 0);
    return y;
}
