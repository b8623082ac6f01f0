/* Softmax, log-softmax and the losses: cross-entropy, MSE, binary cross-entropy on logits. */
#include "ops/ops.h"

typedef struct {
    int64_t outer, d, inner;
    bool log;
    int dim;
} softmax_saved;

static void softmax_describe(const cvn_node *n, cvn_node_attrs *a) {
    a->dim = ((const softmax_saved *)n->saved)->dim;
}

static void softmax_backward(cvn_tape *t, cvn_node *n) {
    const softmax_saved *s = n->saved;
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (dx)
        t->be->softmax_bwd(s->log, s->outer, s->d, s->inner, dx, cvn_f(n->out->grad),
                           cvn_f(n->out));
}

static cvn_tensor *softmax(cvn_tape *t, const char *op, cvn_tensor *x, int dim, bool log) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input")) return NULL;
    int nd = x->ndim;
    if (dim < 0) dim += nd;
    if (dim < 0 || dim >= nd) {
        char s[96];
        cvn_set_error(CVN_ERR_ARG, "%s: dim %d is out of range for %s", op, dim,
                      cvn_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (x->shape[dim] == 0) {
        char sh[96];
        cvn_set_error(CVN_ERR_SHAPE, "%s: dim %d of %s is empty", op, dim,
                      cvn_shape_str(x, sh, sizeof sh));
        return NULL;
    }
    softmax_saved s = {1, x->shape[dim], 1, log, dim};
    for (int d = 0; d < dim; d++) s.outer *= x->shape[d];
    for (int d = dim + 1; d < nd; d++) s.inner *= x->shape[d];
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, nd, x->shape);
    if (!out) return NULL;
    t->be->softmax_fwd(log, s.outer, s.d, s.inner, cvn_f(out), cvn_f(x));
    bool fail;
    cvn_node *node = cvn_op_record(t, op, softmax_backward, out, 1, CVN_IN(x), &fail);
    return fail || !cvn_op_save(t, node, &s, sizeof s, softmax_describe) ? NULL : out;
}

cvn_tensor *cvn_softmax(cvn_tape *t, cvn_tensor *x, int dim) {
    return softmax(t, "softmax", x, dim, false);
}
cvn_tensor *cvn_log_softmax(cvn_tape *t, cvn_tensor *x, int dim) {
    return softmax(t, "log_softmax", x, dim, true);
}

/* ------------------------------------------------------------------ cross-entropy */

typedef struct {
    int64_t n, c;
    float *prob;
    const int32_t *target;
    float smoothing;
} xent_saved;

static void xent_backward(cvn_tape *t, cvn_node *node) {
    const xent_saved *s = node->saved;
    float *dx = cvn_grad_buffer(t, node->in[0]);
    if (dx)
        t->be->xent_bwd(s->n, s->c, dx, cvn_f(node->out->grad), s->prob, s->target, s->smoothing);
}

cvn_tensor *cvn_cross_entropy(cvn_tape *t, cvn_tensor *logits, const cvn_tensor *targets,
                              float label_smoothing) {
    const char *op = "cross_entropy";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, logits, "logits")) return NULL;
    if (!targets) {
        if (cvn_last_status() == CVN_OK)
            cvn_set_error(CVN_ERR_ARG, "cross_entropy: targets is NULL");
        return NULL;
    }
    char s1[96], s2[96];
    if (targets->dtype != CVN_I32 || !cvn_is_contiguous(targets) || targets->device != t->device) {
        cvn_set_error(CVN_ERR_DTYPE,
                      "cross_entropy: targets must be contiguous i32 class indices on the tape's "
                      "device");
        return NULL;
    }
    if (logits->ndim != 2 || targets->ndim != 1 || targets->shape[0] != logits->shape[0] ||
        logits->shape[1] < 1 || logits->shape[0] < 1) {
        cvn_set_error(CVN_ERR_SHAPE,
                      "cross_entropy: logits %s and targets %s must be [N, C] and [N]",
                      cvn_shape_str(logits, s1, sizeof s1), cvn_shape_str(targets, s2, sizeof s2));
        return NULL;
    }
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f)) {
        cvn_set_error(CVN_ERR_ARG, "cross_entropy: label_smoothing %g must be in [0, 1)",
                      (double)label_smoothing);
        return NULL;
    }
    int64_t n = logits->shape[0], c = logits->shape[1];
    if (targets->device == CVN_CPU) {
        const int32_t *tg = targets->data;
        for (int64_t i = 0; i < n; i++)
            if (tg[i] < 0 || tg[i] >= c) {
                cvn_set_error(CVN_ERR_ARG,
                              "cross_entropy: target %d at row %lld is not a class of logits %s",
                              tg[i], (long long)i, cvn_shape_str(logits, s1, sizeof s1));
                return NULL;
            }
    }
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, 1, (int64_t[]){1});
    float *prob = cvn_tape_data_alloc(t, (size_t)(n * c) * sizeof(float));
    if (!out || !prob) return NULL;
    t->be->xent_fwd(n, c, cvn_f(out), prob, cvn_f(logits), targets->data, label_smoothing);
    bool fail;
    cvn_node *node = cvn_op_record(t, op, xent_backward, out, 1, CVN_IN(logits), &fail);
    if (fail) return NULL;
    if (node) {
        xent_saved *s = cvn_tape_meta_alloc(t, sizeof *s);
        if (!s) return NULL;
        *s = (xent_saved){n, c, prob, targets->data, label_smoothing};
        node->saved = s;
    }
    return out;
}

/* ------------------------------------------------------------------ mse, bce */

static bool same_shape_pair(const char *op, const cvn_tape *t, const cvn_tensor *a,
                            const cvn_tensor *b, const char *an, const char *bn) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, a, an) || !cvn_check_f32(op, t, b, bn))
        return false;
    if (!cvn_same_shape(a, b)) {
        char s1[96], s2[96];
        cvn_set_error(CVN_ERR_SHAPE, "%s: %s %s and %s %s must have one shape", op, an,
                      cvn_shape_str(a, s1, sizeof s1), bn, cvn_shape_str(b, s2, sizeof s2));
        return false;
    }
    if (cvn_numel(a) == 0) {
        cvn_set_error(CVN_ERR_SHAPE, "%s: inputs are empty", op);
        return false;
    }
    return true;
}

cvn_tensor *cvn_mse(cvn_tape *t, cvn_tensor *pred, cvn_tensor *target) {
    if (!same_shape_pair("mse", t, pred, target, "pred", "target")) return NULL;
    cvn_tensor *d = cvn_sub(t, pred, target);
    return cvn_mean(t, cvn_mul(t, d, d), 0, NULL, false);
}

static void bce_backward(cvn_tape *t, cvn_node *n) {
    float *dx = cvn_grad_buffer(t, n->in[0]), *dy = cvn_grad_buffer(t, n->in[1]);
    t->be->bce_bwd(cvn_numel(n->in[0]), dx, dy, cvn_f(n->out->grad), cvn_f(n->in[0]),
                   cvn_f(n->in[1]));
}

cvn_tensor *cvn_bce_with_logits(cvn_tape *t, cvn_tensor *logits, cvn_tensor *target) {
    const char *op = "bce_with_logits";
    if (!same_shape_pair(op, t, logits, target, "logits", "target")) return NULL;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, 1, (int64_t[]){1});
    if (!out) return NULL;
    t->be->bce_fwd(cvn_numel(logits), cvn_f(out), cvn_f(logits), cvn_f(target));
    bool fail;
    cvn_op_record(t, op, bce_backward, out, 2, CVN_IN(logits, target), &fail);
    return fail ? NULL : out;
}
