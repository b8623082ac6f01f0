/* Batch normalization over the channel dim of [N, C, H, W] or [N, C]. */
#include <math.h>

#include "ops/ops.h"

typedef struct {
    int64_t n, c, hw;
    float *mean, *invstd; /* the statistics used to normalize (data arena) */
    float eps;
    bool batch_stats;
    bool vendor; /* the backend's fused batch norm ran */
    cvn_tensor *running_mean, *running_var;
} bn_saved;

static void bn_describe(const cvn_node *n, cvn_node_attrs *a) {
    const bn_saved *s = n->saved;
    a->eps = s->eps;
    a->training = s->batch_stats;
    a->running_mean = s->running_mean;
    a->running_var = s->running_var;
}

static void bn_backward(cvn_tape *t, cvn_node *node) {
    const bn_saved *s = node->saved;
    cvn_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *dx = cvn_grad_buffer(t, x), *dw = cvn_grad_buffer(t, w), *db = cvn_grad_buffer(t, b);
    const float *dy = cvn_f(node->out->grad);
    if (s->vendor && t->be->bn_train_bwd(s->n, s->c, s->hw, dx, dw, db, dy, cvn_f(x), cvn_f(w),
                                         s->mean, s->invstd, s->eps))
        return;
    t->be->bn_bwd(s->batch_stats, s->n, s->c, s->hw, dx, dw, db, dy, cvn_f(x), s->mean, s->invstd,
                  w ? cvn_f(w) : NULL);
}

static bool check_channel_vec(const char *what, const cvn_tensor *v, int64_t c, const cvn_tape *t) {
    if (!v) return true;
    if (!cvn_check_f32("batch_norm2d", t, v, what)) return false;
    if (cvn_numel(v) != c || v->ndim != 1) {
        char s[96];
        cvn_set_error(CVN_ERR_SHAPE, "batch_norm2d: %s %s must be [%lld] (one per channel)", what,
                      cvn_shape_str(v, s, sizeof s), (long long)c);
        return false;
    }
    return true;
}

cvn_tensor *cvn_batch_norm2d(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                             cvn_tensor *running_mean, cvn_tensor *running_var, bool training,
                             float momentum, float eps) {
    const char *op = "batch_norm2d";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input")) return NULL;
    char s1[96];
    if (x->ndim != 4 && x->ndim != 2) {
        cvn_set_error(CVN_ERR_SHAPE, "batch_norm2d: input %s must be [N, C, H, W] or [N, C]",
                      cvn_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t n = x->shape[0], c = x->shape[1], hw = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    if (!check_channel_vec("weight", weight, c, t) || !check_channel_vec("bias", bias, c, t) ||
        !check_channel_vec("running_mean", running_mean, c, t) ||
        !check_channel_vec("running_var", running_var, c, t))
        return NULL;
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        cvn_set_error(CVN_ERR_ARG, "batch_norm2d: eps %g must be > 0 and momentum %g in [0, 1]",
                      (double)eps, (double)momentum);
        return NULL;
    }
    if (!training && (!running_mean || !running_var)) {
        cvn_set_error(CVN_ERR_STATE, "batch_norm2d: eval mode needs running_mean and running_var");
        return NULL;
    }
    if (training && n * hw < 2) {
        cvn_set_error(CVN_ERR_SHAPE,
                      "batch_norm2d: input %s has one value per channel; training needs more",
                      cvn_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, x->ndim, x->shape);
    float *mean = cvn_tape_data_alloc(t, (size_t)c * sizeof(float));
    float *invstd = cvn_tape_data_alloc(t, (size_t)c * sizeof(float));
    if (!out || !mean || !invstd) return NULL;
    float *rm = running_mean ? cvn_f(running_mean) : NULL;
    float *rv = running_var ? cvn_f(running_var) : NULL;
    /* the backend's fused training batch norm (cuDNN) takes affine layers whole */
    bool vendor = training && weight && bias && t->be->bn_train_fwd &&
                  t->be->bn_train_fwd(n, c, hw, cvn_f(out), cvn_f(x), cvn_f(weight), cvn_f(bias),
                                      rm, rv, momentum, eps, mean, invstd);
    if (!vendor) {
        float *var = NULL;
        if (training) {
            var = cvn_tape_data_alloc(t, (size_t)c * sizeof(float));
            if (!var) return NULL;
            t->be->bn_stats(n, c, hw, mean, var, cvn_f(x));
        }
        t->be->bn_prepare(training, c, mean, var, invstd, rm, rv, momentum, eps,
                          (float)(n * hw) / (float)(n * hw > 1 ? n * hw - 1 : 1));
        t->be->bn_fwd(n, c, hw, cvn_f(out), cvn_f(x), mean, invstd, weight ? cvn_f(weight) : NULL,
                      bias ? cvn_f(bias) : NULL);
    }
    bool fail;
    cvn_node *node = cvn_op_record(t, op, bn_backward, out, 3, CVN_IN(x, weight, bias), &fail);
    bn_saved s = {n, c, hw, mean, invstd, eps, training, vendor, running_mean, running_var};
    return fail || !cvn_op_save(t, node, &s, sizeof s, bn_describe) ? NULL : out;
}

cvn_status cvn_batch_norm2d_fold(cvn_tape *t, cvn_tensor *weight, cvn_tensor *bias,
                                 cvn_tensor *gamma, cvn_tensor *beta, cvn_tensor *running_mean,
                                 cvn_tensor *running_var, float eps, cvn_tensor **weight_out,
                                 cvn_tensor **bias_out) {
    const char *op = "batch_norm2d_fold";
    if (!weight_out || !bias_out) return cvn_set_error(CVN_ERR_ARG, "%s: NULL result", op);
    *weight_out = *bias_out = NULL;
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, weight, "weight")) return cvn_last_status();
    if (weight->ndim < 1 || !running_mean || !running_var)
        return cvn_set_error(CVN_ERR_ARG, "%s: needs a weight [O, ...] and running statistics", op);
    const int64_t c = weight->shape[0], k = cvn_numel(weight) / (c ? c : 1);
    if (!check_channel_vec("bias", bias, c, t) || !check_channel_vec("weight", gamma, c, t) ||
        !check_channel_vec("bias", beta, c, t) ||
        !check_channel_vec("running_mean", running_mean, c, t) ||
        !check_channel_vec("running_var", running_var, c, t))
        return cvn_last_status();
    if (!(eps > 0.0f)) return cvn_set_error(CVN_ERR_ARG, "%s: eps %g must be > 0", op, (double)eps);
    const cvn_backend *be = t->be;
    cvn_tensor *w = cvn_tape_new_tensor(t, CVN_F32, weight->ndim, weight->shape);
    cvn_tensor *b = cvn_tape_new_tensor(t, CVN_F32, 1, &c);
    float *mean = cvn_tape_data_alloc(t, (size_t)c * sizeof(float));
    float *scale = cvn_tape_data_alloc(t, (size_t)c * sizeof(float));
    if (!w || !b || !mean || !scale) return cvn_last_status();
    /* scale = gamma * invstd, then w = weight * scale (broadcast along each row) */
    be->bn_prepare(false, c, mean, NULL, scale, cvn_f(running_mean), cvn_f(running_var), 0.0f, eps,
                   1.0f);
    const int64_t one[1] = {1}, row[2] = {k, 1}, per_row[2] = {1, 0}, rows[2] = {c, k};
    if (gamma) be->binary(CVN_BIN_MUL, 1, &c, scale, scale, one, cvn_f(gamma), one);
    be->binary(CVN_BIN_MUL, 2, rows, cvn_f(w), cvn_f(weight), row, scale, per_row);
    /* b = (bias - mean) * scale + beta */
    if (bias)
        be->binary(CVN_BIN_SUB, 1, &c, cvn_f(b), cvn_f(bias), one, mean, one);
    else
        be->affine(c, cvn_f(b), mean, -1.0f, 0.0f);
    be->binary(CVN_BIN_MUL, 1, &c, cvn_f(b), cvn_f(b), one, scale, one);
    if (beta) be->binary(CVN_BIN_ADD, 1, &c, cvn_f(b), cvn_f(b), one, cvn_f(beta), one);
    cvn_tape_data_free(t, scale, (size_t)c * sizeof(float));
    cvn_tape_data_free(t, mean, (size_t)c * sizeof(float));
    *weight_out = w, *bias_out = b;
    return CVN_OK;
}
