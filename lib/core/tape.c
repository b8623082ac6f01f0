/* The tape: define-by-run autograd over an arena. */
#include <string.h>

#include "core/core.h"

cvn_tape *cvn_tape_new(cvn_device device) {
    const cvn_backend *be = cvn_backend_get(device);
    if (!be) return NULL;
    cvn_tape *t = cvn_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->device = device;
    t->be = be;
    cvn_arena_init(&t->meta, cvn_backend_cpu());
    cvn_arena_init(&t->data, be);
    t->grad_enabled = true;
    return t;
}

void cvn_tape_free(cvn_tape *t) {
    if (!t) return;
    cvn_arena_release(&t->meta);
    cvn_arena_release(&t->data);
    cvn_free(t);
}

void cvn_tape_reset(cvn_tape *t) {
    if (!t) return;
    cvn_arena_reset(&t->meta);
    cvn_arena_reset(&t->data);
    t->last = NULL;
    t->n_nodes = 0;
    t->backward_done = false;
}

bool cvn_tape_set_grad_enabled(cvn_tape *t, bool enabled) {
    if (!t) return false;
    bool prev = t->grad_enabled;
    t->grad_enabled = enabled;
    return prev;
}

bool cvn_tape_grad_enabled(const cvn_tape *t) {
    return t->grad_enabled;
}
size_t cvn_tape_arena_capacity(const cvn_tape *t) {
    return t->meta.capacity + t->data.capacity;
}
size_t cvn_tape_arena_used(const cvn_tape *t) {
    return t->meta.used + t->data.used;
}
int cvn_tape_num_nodes(const cvn_tape *t) {
    return t->n_nodes;
}

void *cvn_tape_meta_alloc(cvn_tape *t, size_t bytes) {
    return cvn_arena_alloc(&t->meta, bytes);
}
void *cvn_tape_data_alloc(cvn_tape *t, size_t bytes) {
    return cvn_arena_alloc(&t->data, bytes);
}
void cvn_tape_data_free(cvn_tape *t, void *p, size_t bytes) {
    cvn_arena_give_back(&t->data, p, bytes);
}

cvn_tensor *cvn_tape_new_tensor(cvn_tape *t, cvn_dtype dtype, int ndim, const int64_t *shape) {
    cvn_tensor *x = cvn_arena_alloc(&t->meta, sizeof *x);
    if (!x) return NULL;
    memset(x, 0, sizeof *x);
    x->dtype = dtype;
    x->device = t->device;
    cvn_tensor_set_shape(x, ndim, shape);
    x->data = cvn_arena_alloc(&t->data, (size_t)cvn_numel(x) * cvn_dtype_size(dtype));
    return x->data ? x : NULL;
}

cvn_tensor *cvn_tape_tensor(cvn_tape *t, cvn_dtype dtype, int ndim, const int64_t *shape) {
    if (!t) {
        cvn_set_error(CVN_ERR_ARG, "tape_tensor: tape is NULL");
        return NULL;
    }
    if (ndim < 0 || ndim > CVN_MAX_DIMS || (ndim && !shape)) {
        cvn_set_error(CVN_ERR_SHAPE, "tape_tensor: %d dims; tensors have 0 to %d", ndim,
                      CVN_MAX_DIMS);
        return NULL;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) {
            cvn_set_error(CVN_ERR_SHAPE, "tape_tensor: dim %d has size %lld", d,
                          (long long)shape[d]);
            return NULL;
        }
    return cvn_tape_new_tensor(t, dtype, ndim, shape);
}

cvn_tensor *cvn_tape_tensor_f32(cvn_tape *t, int ndim, const int64_t *shape, const float *data) {
    cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, ndim, shape);
    if (x && data) t->be->upload(x->data, data, (size_t)cvn_numel(x) * sizeof(float));
    return x;
}

bool cvn_tape_should_record(const cvn_tape *t, int n, cvn_tensor *const *in) {
    if (t->tracing) return true;
    if (!t->grad_enabled) return false;
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

cvn_node *cvn_tape_record(cvn_tape *t, const char *op, cvn_backward_fn backward, cvn_tensor *out,
                          int n, cvn_tensor *const *in) {
    cvn_node *node = cvn_arena_alloc(&t->meta, sizeof *node);
    if (!node) return NULL;
    memset(node, 0, sizeof *node);
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_in = n;
    for (int i = 0; i < n; i++) node->in[i] = in[i];
    node->prev = t->last;
    t->last = node;
    t->n_nodes++;
    out->requires_grad = true;
    out->node = node;
    return node;
}

float *cvn_grad_target(cvn_tape *t, cvn_tensor *x, bool *add) {
    *add = true;
    if (!x || !x->requires_grad) return NULL;
    if (!x->grad) {
        if (x->flags & CVN_TF_HEAP) return cvn_tensor_grad(x) ? x->grad->data : NULL;
        cvn_tensor *g = cvn_tape_new_tensor(t, CVN_F32, x->ndim, x->shape);
        if (!g) return NULL;
        x->grad = g;
        *add = false;
    }
    return x->grad->data;
}

float *cvn_grad_buffer(cvn_tape *t, cvn_tensor *x) {
    bool add;
    float *g = cvn_grad_target(t, x, &add);
    if (g && !add) t->be->zero(g, (size_t)cvn_numel(x) * sizeof(float));
    return g;
}

cvn_status cvn_backward(cvn_tape *t, cvn_tensor *output, const cvn_tensor *grad_output) {
    if (!t || !output) return cvn_set_error(CVN_ERR_ARG, "backward: tape or output is NULL");
    if (t->backward_done)
        return cvn_set_error(CVN_ERR_STATE,
                             "backward: already run on this tape; call cvn_tape_reset() first");
    if (!output->requires_grad || !output->node)
        return cvn_set_error(CVN_ERR_STATE, "backward: the output does not depend on any tensor "
                                            "that requires grad (or grad was disabled)");
    char a[96], b[96];
    if (grad_output) {
        if (grad_output->device != t->device)
            return cvn_set_error(CVN_ERR_DEVICE, "backward: grad_output is on another device");
        if (!cvn_same_shape(grad_output, output) || grad_output->dtype != CVN_F32)
            return cvn_set_error(CVN_ERR_SHAPE, "backward: grad_output %s does not match output %s",
                                 cvn_shape_str(grad_output, a, sizeof a),
                                 cvn_shape_str(output, b, sizeof b));
    } else if (cvn_numel(output) != 1) {
        return cvn_set_error(CVN_ERR_SHAPE, "backward: output %s is not a scalar; pass grad_output",
                             cvn_shape_str(output, a, sizeof a));
    }
    bool add;
    float *seed = cvn_grad_target(t, output, &add);
    if (!seed) return cvn_last_status();
    size_t bytes = (size_t)cvn_numel(output) * sizeof(float);
    if (grad_output && !add) {
        t->be->copy(seed, grad_output->data, bytes); /* a fresh buffer: no zeroing first */
    } else if (grad_output) {
        t->be->axpy(cvn_numel(output), 1.0f, grad_output->data, seed);
    } else {
        /* seed = 0 * seed + 1 on the device, no host round trip; a fresh buffer is zeroed first,
         * as 0 * NaN is NaN */
        if (!add) t->be->zero(seed, bytes);
        t->be->affine(1, seed, seed, 0.0f, 1.0f);
    }
    cvn_clear_error(); /* a backward function that fails to allocate leaves CVN_ERR_NOMEM */
    for (cvn_node *n = t->last; n; n = n->prev) {
        cvn_tensor *out = n->out;
        if (!out->grad) continue; /* does not lead to the output */
        n->backward(t, n);
        if (cvn_last_status() == CVN_ERR_NOMEM) return CVN_ERR_NOMEM;
        /* every consumer of out came later and has run: its gradient is dead */
        if (out != output && !(out->flags & (CVN_TF_HEAP | CVN_TF_RETAIN_GRAD))) {
            cvn_arena_give_back(&t->data, out->grad->data, (size_t)cvn_numel(out) * sizeof(float));
            out->grad = NULL;
        }
    }
    t->backward_done = true;
    return CVN_OK;
}

bool cvn_check_f32(const char *op, const cvn_tape *t, const cvn_tensor *x, const char *what) {
    if (!x) {
        if (cvn_last_status() == CVN_OK) cvn_set_error(CVN_ERR_ARG, "%s: %s is NULL", op, what);
        return false;
    }
    if (x->dtype != CVN_F32) {
        cvn_set_error(CVN_ERR_DTYPE, "%s: %s must be f32", op, what);
        return false;
    }
    if (x->device != t->device) {
        cvn_set_error(CVN_ERR_DEVICE, "%s: %s is on another device than the tape", op, what);
        return false;
    }
    if (!cvn_is_contiguous(x)) {
        cvn_set_error(CVN_ERR_ARG, "%s: %s must be contiguous", op, what);
        return false;
    }
    return true;
}
