/* Matrix products: matmul and linear, on the backend's GEMM. */
#include "ops/ops.h"

static bool check_int_dims(const char *op, const cvn_tensor *x) {
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] > INT32_MAX) {
            cvn_set_error(CVN_ERR_SHAPE, "%s: dim %d of size %lld is past the GEMM limit", op, d,
                          (long long)x->shape[d]);
            return false;
        }
    return true;
}

static void matmul_backward(cvn_tape *t, cvn_node *n) {
    cvn_tensor *a = n->in[0], *b = n->in[1];
    int m = (int)a->shape[0], k = (int)a->shape[1], nn = (int)b->shape[1];
    const float *g = cvn_f(n->out->grad);
    float *da = cvn_grad_buffer(t, a), *db = cvn_grad_buffer(t, b);
    if (da) t->be->gemm(false, true, m, k, nn, 1.0f, g, nn, cvn_f(b), nn, 1.0f, da, k);
    if (db) t->be->gemm(true, false, k, nn, m, 1.0f, cvn_f(a), k, g, nn, 1.0f, db, nn);
}

cvn_tensor *cvn_matmul(cvn_tape *t, cvn_tensor *a, cvn_tensor *b) {
    const char *op = "matmul";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, a, "a") || !cvn_check_f32(op, t, b, "b"))
        return NULL;
    char x[96], y[96];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0]) {
        cvn_set_error(CVN_ERR_SHAPE, "matmul: cannot multiply %s by %s (need [M, K] x [K, N])",
                      cvn_shape_str(a, x, sizeof x), cvn_shape_str(b, y, sizeof y));
        return NULL;
    }
    if (!check_int_dims(op, a) || !check_int_dims(op, b)) return NULL;
    int m = (int)a->shape[0], k = (int)a->shape[1], n = (int)b->shape[1];
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, 2, (int64_t[]){m, n});
    if (!out) return NULL;
    if (k == 0)
        t->be->zero(out->data, (size_t)m * n * sizeof(float));
    else
        t->be->gemm(false, false, m, n, k, 1.0f, cvn_f(a), k, cvn_f(b), n, 0.0f, cvn_f(out), n);
    bool fail;
    cvn_op_record(t, op, matmul_backward, out, 2, CVN_IN(a, b), &fail);
    return fail ? NULL : out;
}

static void linear_backward(cvn_tape *t, cvn_node *n) {
    cvn_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int out_f = (int)w->shape[0], in_f = (int)w->shape[1];
    int rows = (int)(cvn_numel(x) / in_f);
    const float *g = cvn_f(n->out->grad);
    float *dx = cvn_grad_buffer(t, x), *dw = cvn_grad_buffer(t, w), *db = cvn_grad_buffer(t, b);
    if (dx)
        t->be->gemm(false, false, rows, in_f, out_f, 1.0f, g, out_f, cvn_f(w), in_f, 1.0f, dx,
                    in_f);
    if (dw)
        t->be->gemm(true, false, out_f, in_f, rows, 1.0f, g, out_f, cvn_f(x), in_f, 1.0f, dw, in_f);
    if (db) t->be->reduce_to(2, (int64_t[]){rows, out_f}, db, (int64_t[]){0, 1}, g, 1.0f);
}

cvn_tensor *cvn_linear(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias) {
    const char *op = "linear";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input") ||
        !cvn_check_f32(op, t, weight, "weight") || (bias && !cvn_check_f32(op, t, bias, "bias")))
        return NULL;
    char s1[96], s2[96];
    if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1]) {
        cvn_set_error(CVN_ERR_SHAPE,
                      "linear: input %s does not fit weight %s (input's last dim must equal "
                      "in_features)",
                      cvn_shape_str(x, s1, sizeof s1), cvn_shape_str(weight, s2, sizeof s2));
        return NULL;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0])) {
        cvn_set_error(CVN_ERR_SHAPE, "linear: bias %s does not fit weight %s",
                      cvn_shape_str(bias, s1, sizeof s1), cvn_shape_str(weight, s2, sizeof s2));
        return NULL;
    }
    if (!check_int_dims(op, weight) || cvn_numel(x) > INT32_MAX) {
        cvn_set_error(CVN_ERR_SHAPE, "linear: input is past the GEMM size limit");
        return NULL;
    }
    int out_f = (int)weight->shape[0], in_f = (int)weight->shape[1];
    int rows = in_f ? (int)(cvn_numel(x) / in_f) : 0;
    int64_t shape[CVN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = out_f;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, x->ndim, shape);
    if (!out) return NULL;
    if (in_f == 0)
        t->be->zero(out->data, (size_t)rows * out_f * sizeof(float));
    else
        t->be->gemm(false, true, rows, out_f, in_f, 1.0f, cvn_f(x), in_f, cvn_f(weight), in_f, 0.0f,
                    cvn_f(out), out_f);
    if (bias) {
        int64_t sh[2] = {rows, out_f}, so[2] = {out_f, 1}, sb[2] = {0, 1};
        t->be->binary(CVN_BIN_ADD, 2, sh, cvn_f(out), cvn_f(out), so, cvn_f(bias), sb);
    }
    bool fail;
    cvn_op_record(t, op, linear_backward, out, 3, CVN_IN(x, weight, bias), &fail);
    return fail ? NULL : out;
}
