/* Elementwise ops: broadcasting arithmetic, scalar affine maps, activations, dropout. */
#include <stdio.h>

#include "ops/ops.h"

/* ------------------------------------------------------------------ broadcasting arithmetic */

typedef struct {
    cvn_binop op;
    int ndim;
    int64_t shape[CVN_MAX_DIMS];
    int64_t sa[CVN_MAX_DIMS], sb[CVN_MAX_DIMS];
} binary_saved;

/* x's strides seen in the broadcast output shape: 0 where x has size 1 or no such dim. */
static void broadcast_strides(const cvn_tensor *x, int ndim, const int64_t *shape, int64_t *s) {
    for (int d = 0; d < ndim; d++) {
        int dx = d - (ndim - x->ndim);
        s[d] = (dx < 0 || (x->shape[dx] == 1 && shape[d] != 1)) ? 0 : x->strides[dx];
    }
}

static bool broadcast_shape(const char *op, const cvn_tensor *a, const cvn_tensor *b, int *ndim,
                            int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da < 0 ? 1 : a->shape[da], sb = db < 0 ? 1 : b->shape[db];
        if (sa != sb && sa != 1 && sb != 1) {
            char x[96], y[96];
            cvn_set_error(CVN_ERR_SHAPE, "%s: cannot broadcast %s with %s (dim %d: %lld vs %lld)",
                          op, cvn_shape_str(a, x, sizeof x), cvn_shape_str(b, y, sizeof y), d,
                          (long long)sa, (long long)sb);
            return false;
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return true;
}

/* Drops the dims of size 1 and merges neighbours that every operand walks as one (a stride that
 * is the next dim's stride times its size: contiguous runs, and runs along which an operand is
 * broadcast), so that kernels see the fewest and longest rows: x * s for x [N, C, H, W] and a
 * squeeze-excite gate s [N, C, 1, 1] becomes [N * C, H * W] against [N * C, 1]. */
static void collapse_dims(binary_saved *s) {
    int n = 0;
    for (int d = 0; d < s->ndim; d++) {
        if (s->shape[d] == 1) continue;
        if (n > 0 && s->sa[n - 1] == s->sa[d] * s->shape[d] &&
            s->sb[n - 1] == s->sb[d] * s->shape[d]) {
            s->shape[n - 1] *= s->shape[d];
            s->sa[n - 1] = s->sa[d], s->sb[n - 1] = s->sb[d];
            continue;
        }
        s->shape[n] = s->shape[d], s->sa[n] = s->sa[d], s->sb[n] = s->sb[d];
        n++;
    }
    if (n == 0) s->shape[0] = 1, s->sa[0] = s->sb[0] = 0, n = 1; /* a single element */
    s->ndim = n;
}

/* True where strides s revisit an element of the shape (a 0 stride over a dim longer than 1). */
static bool broadcasts(int ndim, const int64_t *shape, const int64_t *s) {
    for (int d = 0; d < ndim; d++)
        if (s[d] == 0 && shape[d] > 1) return true;
    return false;
}

/* The backend's binary_bwd writes gradients at the output's shape, one element each; an input
 * broadcast in the forward gets them summed by reduce_to: for + and - straight from the output's
 * gradient, for * and / from the elementwise products in a scratch buffer. */
static void binary_backward(cvn_tape *t, cvn_node *n) {
    const binary_saved *s = n->saved;
    const float *g = cvn_f(n->out->grad), *a = cvn_f(n->in[0]), *b = cvn_f(n->in[1]);
    int64_t contig[CVN_MAX_DIMS], numel = 1;
    for (int d = s->ndim - 1; d >= 0; d--) contig[d] = numel, numel *= s->shape[d];
    float *full = NULL;
    for (int which = 0; which < 2; which++) {
        bool add;
        float *dx = cvn_grad_target(t, n->in[which], &add);
        if (!dx) continue;
        const int64_t *sx = which ? s->sb : s->sa;
        if (!broadcasts(s->ndim, s->shape, sx)) {
            t->be->binary_bwd(s->op, which, s->ndim, s->shape, dx, sx, g, a, s->sa, b, s->sb,
                              cvn_f(n->out), add);
            continue;
        }
        const float *sum = g;
        float scale = s->op == CVN_BIN_SUB && which == 1 ? -1.0f : 1.0f;
        if (s->op == CVN_BIN_MUL || s->op == CVN_BIN_DIV) {
            if (!full && !(full = cvn_tape_data_alloc(t, (size_t)numel * sizeof(float)))) return;
            t->be->binary_bwd(s->op, which, s->ndim, s->shape, full, contig, g, a, s->sa, b, s->sb,
                              cvn_f(n->out), false);
            sum = full, scale = 1.0f;
        }
        if (!add) t->be->zero(dx, (size_t)cvn_numel(n->in[which]) * sizeof(float));
        t->be->reduce_to(s->ndim, s->shape, dx, sx, sum, scale);
    }
    cvn_tape_data_free(t, full, (size_t)numel * sizeof(float));
}

static cvn_tensor *binary(cvn_tape *t, const char *op, cvn_binop kind, cvn_tensor *a,
                          cvn_tensor *b) {
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, a, "a") || !cvn_check_f32(op, t, b, "b"))
        return NULL;
    binary_saved s = {.op = kind};
    if (!broadcast_shape(op, a, b, &s.ndim, s.shape)) return NULL;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, s.ndim, s.shape);
    if (!out) return NULL;
    broadcast_strides(a, s.ndim, s.shape, s.sa);
    broadcast_strides(b, s.ndim, s.shape, s.sb);
    collapse_dims(&s);
    t->be->binary(kind, s.ndim, s.shape, cvn_f(out), cvn_f(a), s.sa, cvn_f(b), s.sb);
    bool fail;
    cvn_node *node = cvn_op_record(t, op, binary_backward, out, 2, CVN_IN(a, b), &fail);
    return fail || !cvn_op_save(t, node, &s, sizeof s, NULL) ? NULL : out;
}

cvn_tensor *cvn_add(cvn_tape *t, cvn_tensor *a, cvn_tensor *b) {
    return binary(t, "add", CVN_BIN_ADD, a, b);
}
cvn_tensor *cvn_sub(cvn_tape *t, cvn_tensor *a, cvn_tensor *b) {
    return binary(t, "sub", CVN_BIN_SUB, a, b);
}
cvn_tensor *cvn_mul(cvn_tape *t, cvn_tensor *a, cvn_tensor *b) {
    return binary(t, "mul", CVN_BIN_MUL, a, b);
}
cvn_tensor *cvn_div(cvn_tape *t, cvn_tensor *a, cvn_tensor *b) {
    return binary(t, "div", CVN_BIN_DIV, a, b);
}

/* ------------------------------------------------------------------ scalar affine */

typedef struct {
    float scale, shift;
} affine_saved;

static void affine_backward(cvn_tape *t, cvn_node *n) {
    const affine_saved *s = n->saved;
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (dx) t->be->axpy(cvn_numel(n->out), s->scale, cvn_f(n->out->grad), dx);
}

static void affine_describe(const cvn_node *n, cvn_node_attrs *a) {
    const affine_saved *s = n->saved;
    a->alpha = s->scale;
    a->beta = s->shift;
}

cvn_tensor *cvn_affine_scalar(cvn_tape *t, cvn_tensor *x, float scale, float shift) {
    const char *op = "affine_scalar";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "x")) return NULL;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, x->ndim, x->shape);
    if (!out) return NULL;
    t->be->affine(cvn_numel(x), cvn_f(out), cvn_f(x), scale, shift);
    bool fail;
    cvn_node *node = cvn_op_record(t, op, affine_backward, out, 1, CVN_IN(x), &fail);
    affine_saved s = {scale, shift};
    return fail || !cvn_op_save(t, node, &s, sizeof s, affine_describe) ? NULL : out;
}

cvn_tensor *cvn_add_scalar(cvn_tape *t, cvn_tensor *x, float c) {
    return cvn_affine_scalar(t, x, 1.0f, c);
}
cvn_tensor *cvn_mul_scalar(cvn_tape *t, cvn_tensor *x, float c) {
    return cvn_affine_scalar(t, x, c, 0.0f);
}

/* ------------------------------------------------------------------ activations */

typedef struct {
    cvn_activation kind;
    float alpha;
} act_saved;

static const char *const act_names[] = {"relu", "leaky_relu", "sigmoid",   "tanh",
                                        "gelu", "silu",       "hardswish", "hardsigmoid"};

static void act_backward(cvn_tape *t, cvn_node *n) {
    const act_saved *s = n->saved;
    bool add;
    float *dx = cvn_grad_target(t, n->in[0], &add);
    if (dx)
        t->be->act_bwd((cvn_act_kind)s->kind, s->alpha, cvn_numel(n->out), dx, cvn_f(n->out->grad),
                       cvn_f(n->in[0]), cvn_f(n->out), add);
}

static void act_describe(const cvn_node *n, cvn_node_attrs *a) {
    const act_saved *s = n->saved;
    a->activation = true;
    a->kind = (int)s->kind;
    a->alpha = s->alpha;
}

cvn_tensor *cvn_activate(cvn_tape *t, cvn_tensor *x, cvn_activation kind, float alpha) {
    if ((unsigned)kind > CVN_ACT_HARDSIGMOID) {
        cvn_set_error(CVN_ERR_ARG, "activate: unknown activation %d", (int)kind);
        return NULL;
    }
    const char *op = act_names[kind];
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "x")) return NULL;
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, x->ndim, x->shape);
    if (!out) return NULL;
    t->be->act_fwd((cvn_act_kind)kind, alpha, cvn_numel(x), cvn_f(out), cvn_f(x));
    bool fail;
    cvn_node *node = cvn_op_record(t, op, act_backward, out, 1, CVN_IN(x), &fail);
    act_saved s = {kind, alpha};
    return fail || !cvn_op_save(t, node, &s, sizeof s, act_describe) ? NULL : out;
}

cvn_tensor *cvn_relu(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_RELU, 0);
}
cvn_tensor *cvn_leaky_relu(cvn_tape *t, cvn_tensor *x, float negative_slope) {
    return cvn_activate(t, x, CVN_ACT_LEAKY_RELU, negative_slope);
}
cvn_tensor *cvn_sigmoid(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_SIGMOID, 0);
}
cvn_tensor *cvn_tanh(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_TANH, 0);
}
cvn_tensor *cvn_gelu(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_GELU, 0);
}
cvn_tensor *cvn_silu(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_SILU, 0);
}
cvn_tensor *cvn_hardswish(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_HARDSWISH, 0);
}
cvn_tensor *cvn_hardsigmoid(cvn_tape *t, cvn_tensor *x) {
    return cvn_activate(t, x, CVN_ACT_HARDSIGMOID, 0);
}

/* ------------------------------------------------------------------ dropout */

typedef struct {
    float p;
    uint8_t *mask;
} dropout_saved;

static void dropout_backward(cvn_tape *t, cvn_node *n) {
    const dropout_saved *s = n->saved;
    float *dx = cvn_grad_buffer(t, n->in[0]);
    if (dx)
        t->be->dropout_bwd(cvn_numel(n->out), dx, cvn_f(n->out->grad), s->mask,
                           s->p < 1.0f ? 1.0f / (1.0f - s->p) : 0.0f);
}

cvn_tensor *cvn_dropout(cvn_tape *t, cvn_tensor *x, float p, bool training, cvn_rng *r) {
    const char *op = "dropout";
    if (!cvn_op_tape_ok(op, t) || !cvn_check_f32(op, t, x, "x")) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        cvn_set_error(CVN_ERR_ARG, "dropout: p = %g; must be in [0, 1]", (double)p);
        return NULL;
    }
    if (!training || p == 0.0f) return x; /* identity: nothing to record */
    if (!r) {
        cvn_set_error(CVN_ERR_ARG, "dropout: rng is NULL in training mode");
        return NULL;
    }
    int64_t n = cvn_numel(x);
    cvn_tensor *out = cvn_tape_new_tensor(t, CVN_F32, x->ndim, x->shape);
    uint8_t *mask = cvn_tape_data_alloc(t, (size_t)n);
    if (!out || !mask) return NULL;
    t->be->dropout_fwd(n, cvn_f(out), mask, cvn_f(x), p, cvn_rng_next(r));
    bool fail;
    cvn_node *node = cvn_op_record(t, op, dropout_backward, out, 1, CVN_IN(x), &fail);
    dropout_saved s = {p, mask};
    return fail || !cvn_op_save(t, node, &s, sizeof s, NULL) ? NULL : out;
}
