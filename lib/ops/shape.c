/* Shape ops: reshape / flatten (views), concat, and sum / mean reductions. */
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

static void view_backward(cvn_tape *t, cvn_node *n) {
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (dx) t->be->axpy(cvn_numel(n->out), 1.0f, cvn_f(n->out->grad), dx);
}

cvn_tensor *cvn_reshape(cvn_tape *t, cvn_tensor *x, int ndim, const int64_t *shape) {
    const char *op = "reshape";
    if (!cvn_op_tape_ok(op, t)) return NULL;
    if (!x) {
        if (cvn_last_status() == CVN_OK) cvn_set_error(CVN_ERR_ARG, "reshape: input is NULL");
        return NULL;
    }
    if (!cvn_is_contiguous(x) || x->device != t->device) {
        cvn_set_error(CVN_ERR_ARG, "reshape: input must be contiguous and on the tape's device");
        return NULL;
    }
    if (ndim < 0 || ndim > CVN_MAX_DIMS || (ndim && !shape)) {
        cvn_set_error(CVN_ERR_SHAPE, "reshape: %d dims; tensors have 0 to %d", ndim, CVN_MAX_DIMS);
        return NULL;
    }
    int64_t sh[CVN_MAX_DIMS], known = 1, n = cvn_numel(x);
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        sh[d] = shape[d];
        if (shape[d] == -1 && infer < 0)
            infer = d;
        else if (shape[d] < 0)
            infer = -2;
        else
            known *= shape[d];
    }
    if (infer >= 0) sh[infer] = known ? n / known : 0;
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) total *= sh[d];
    if (infer == -2 || total != n) {
        char s1[96], s2[128] = "[";
        for (int d = 0; d < ndim; d++)
            snprintf(s2 + strlen(s2), sizeof s2 - strlen(s2), d ? ", %lld" : "%lld",
                     (long long)shape[d]);
        strncat(s2, "]", sizeof s2 - strlen(s2) - 1);
        cvn_set_error(CVN_ERR_SHAPE, "reshape: cannot view %s (%lld elements) as %s",
                      cvn_shape_str(x, s1, sizeof s1), (long long)n, s2);
        return NULL;
    }
    cvn_tensor *out = cvn_tape_meta_alloc(t, sizeof *out);
    if (!out) return NULL;
    *out = *x;
    out->flags = CVN_TF_VIEW;
    out->grad = NULL;
    out->node = NULL;
    out->requires_grad = false;
    cvn_tensor_set_shape(out, ndim, sh);
    bool fail;
    cvn_op_record(t, op, view_backward, out, 1, CVN_IN(x), &fail);
    return fail ? NULL : out;
}

cvn_tensor *cvn_flatten(cvn_tape *t, cvn_tensor *x, int start_dim) {
    if (!x) return cvn_reshape(t, x, 0, NULL);
    if (start_dim < 0) start_dim += x->ndim;
    if (start_dim < 0 || start_dim >= (x->ndim ? x->ndim : 1)) {
        cvn_set_error(CVN_ERR_ARG, "flatten: start_dim %d is out of range for %d dims", start_dim,
                      x->ndim);
        return NULL;
    }
    int64_t sh[CVN_MAX_DIMS];
    for (int d = 0; d < start_dim; d++) sh[d] = x->shape[d];
    sh[start_dim] = -1;
    return cvn_reshape(t, x, start_dim + 1, sh);
}

/* ------------------------------------------------------------------ concat */

typedef struct {
    int dim;
    int64_t outer, inner; /* product of dims before / after dim */
} concat_saved;

static void concat_describe(const cvn_node *n, cvn_node_attrs *a) {
    a->dim = ((const concat_saved *)n->saved)->dim;
}

static void concat_backward(cvn_tape *t, cvn_node *n) {
    const concat_saved *s = n->saved;
    int64_t out_row = n->out->shape[s->dim] * s->inner, at = 0;
    for (int i = 0; i < n->n_in; i++) {
        cvn_tensor *x = n->in[i];
        int64_t row = x->shape[s->dim] * s->inner;
        float *dx = cvn_grad_buffer(t, x);
        if (dx) /* dx [outer, row] += the matching columns of dy [outer, out_row] */
            t->be->expand_add(2, (int64_t[]){s->outer, row}, dx, cvn_f(n->out->grad) + at,
                              (int64_t[]){out_row, 1}, 1.0f);
        at += row;
    }
}

cvn_tensor *cvn_concat(cvn_tape *t, int n, cvn_tensor *const *xs, int dim) {
    const char *op = "concat";
    if (!cvn_op_tape_ok(op, t)) return NULL;
    if (n < 1 || n > CVN_NODE_MAX_IN || !xs) {
        cvn_set_error(CVN_ERR_ARG, "concat: %d tensors; 1 to %d are supported", n, CVN_NODE_MAX_IN);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!cvn_check_f32(op, t, xs[i], "an input")) return NULL;
    int nd = xs[0]->ndim;
    if (dim < 0) dim += nd;
    if (dim < 0 || dim >= nd) {
        cvn_set_error(CVN_ERR_ARG, "concat: dim %d is out of range for %d dims", dim, nd);
        return NULL;
    }
    int64_t shape[CVN_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        bool ok = xs[i]->ndim == nd;
        for (int d = 0; ok && d < nd; d++) ok = d == dim || xs[i]->shape[d] == xs[0]->shape[d];
        if (!ok) {
            char a[96], b[96];
            cvn_set_error(CVN_ERR_SHAPE, "concat: %s and %s differ outside dim %d",
                          cvn_shape_str(xs[0], a, sizeof a), cvn_shape_str(xs[i], b, sizeof b),
                          dim);
            return NULL;
        }
        shape[dim] += xs[i]->shape[dim];
    }
    concat_saved s = {dim, 1, 1};
    for (int d = 0; d < dim; d++) s.outer *= shape[d];
    for (int d = dim + 1; d < nd; d++) s.inner *= shape[d];
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, nd, shape);
    if (!out) return NULL;
    int64_t out_row = shape[dim] * s.inner, at = 0;
    for (int i = 0; i < n; i++) {
        int64_t row = xs[i]->shape[dim] * s.inner;
        /* rows of this input go to columns [at, at + row) of the [outer, out_row] output */
        t->be->copy_blocks(s.outer, 1, row, cvn_f(out) + at, out_row, 0, cvn_f(xs[i]), row, 0,
                           NULL);
        at += row;
    }
    bool fail;
    cvn_node *node = cvn_op_record(t, op, concat_backward, out, n, xs, &fail);
    return fail || !cvn_op_save(t, node, &s, sizeof s, concat_describe) ? NULL : out;
}

/* ------------------------------------------------------------------ sum / mean */

typedef struct {
    int ndim;
    int64_t shape[CVN_MAX_DIMS]; /* input shape */
    int64_t so[CVN_MAX_DIMS];    /* output strides in the input's shape, 0 on reduced dims */
    float scale;                 /* 1 for sum, 1 / count for mean */
    bool reduced[CVN_MAX_DIMS], keepdim;
} reduce_saved;

static void reduce_describe(const cvn_node *n, cvn_node_attrs *a) {
    const reduce_saved *s = n->saved;
    memcpy(a->reduced, s->reduced, sizeof a->reduced);
    a->keepdim = s->keepdim;
}

static void reduce_backward(cvn_tape *t, cvn_node *n) {
    const reduce_saved *s = n->saved;
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (!dx) return;
    /* dx += scale * dy, broadcast back over the reduced dims */
    t->be->expand_add(s->ndim, s->shape, dx, cvn_f(n->out->grad), s->so, s->scale);
}

static cvn_tensor *reduce(cvn_tape *t, const char *op, cvn_tensor *x, int ndims, const int *dims,
                          bool keepdim, bool mean) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "input")) return NULL;
    bool reduced[CVN_MAX_DIMS] = {false};
    if (ndims == 0) {
        for (int d = 0; d < x->ndim; d++) reduced[d] = true;
    } else {
        if (ndims < 0 || !dims) {
            cvn_set_error(CVN_ERR_ARG, "%s: %d dims listed but dims is NULL", op, ndims);
            return NULL;
        }
        for (int i = 0; i < ndims; i++) {
            int d = dims[i] < 0 ? dims[i] + x->ndim : dims[i];
            if (d < 0 || d >= x->ndim) {
                char s[96];
                cvn_set_error(CVN_ERR_ARG, "%s: dim %d is out of range for %s", op, dims[i],
                              cvn_shape_str(x, s, sizeof s));
                return NULL;
            }
            reduced[d] = true;
        }
    }
    reduce_saved s = {.ndim = x->ndim, .scale = 1.0f, .keepdim = keepdim};
    memcpy(s.reduced, reduced, sizeof s.reduced);
    int64_t out_shape[CVN_MAX_DIMS], keep_shape[CVN_MAX_DIMS], count = 1;
    int out_nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        s.shape[d] = x->shape[d];
        keep_shape[d] = reduced[d] ? 1 : x->shape[d];
        if (reduced[d]) count *= x->shape[d];
        if (!reduced[d] || keepdim) out_shape[out_nd++] = keep_shape[d];
    }
    int64_t stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        s.so[d] = reduced[d] ? 0 : stride;
        stride *= keep_shape[d];
    }
    if (mean) s.scale = count ? 1.0f / (float)count : 0.0f;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, out_nd, out_shape);
    if (!out) return NULL;
    t->be->zero(out->data, (size_t)cvn_numel(out) * sizeof(float));
    t->be->reduce_to(x->ndim, s.shape, cvn_f(out), s.so, cvn_f(x), s.scale);
    bool fail;
    cvn_node *node = cvn_op_record(t, op, reduce_backward, out, 1, CVN_IN(x), &fail);
    return fail || !cvn_op_save(t, node, &s, sizeof s, reduce_describe) ? NULL : out;
}

cvn_tensor *cvn_sum(cvn_tape *t, cvn_tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce(t, "sum", x, ndims, dims, keepdim, false);
}

cvn_tensor *cvn_mean(cvn_tape *t, cvn_tensor *x, int ndims, const int *dims, bool keepdim) {
    return reduce(t, "mean", x, ndims, dims, keepdim, true);
}
