/* ONNX export: one forward of the model in eval mode is traced on a tape that records every op,
 * and each node is written as ONNX nodes (opset 17) with our protobuf encoder. Parameters and
 * buffers become initializers under their state_dict names; node names follow the modules
 * ("layer1.0.conv1/Conv"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/protobuf.h"
#include "nn/module.h"

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 17
#define MAX_SCOPE 256
#define MAX_DEPTH 64

/* ONNX field numbers (onnx.proto) */
enum {
    MODEL_IR_VERSION = 1,
    MODEL_PRODUCER_NAME = 2,
    MODEL_PRODUCER_VERSION = 3,
    MODEL_DOC = 6,
    MODEL_GRAPH = 7,
    MODEL_OPSET = 8,
    OPSET_VERSION = 2,
    GRAPH_NODE = 1,
    GRAPH_NAME = 2,
    GRAPH_INITIALIZER = 5,
    GRAPH_INPUT = 11,
    GRAPH_OUTPUT = 12,
    NODE_INPUT = 1,
    NODE_OUTPUT = 2,
    NODE_NAME = 3,
    NODE_OP_TYPE = 4,
    NODE_ATTRIBUTE = 5,
    ATTR_NAME = 1,
    ATTR_F = 2,
    ATTR_I = 3,
    ATTR_INTS = 8,
    ATTR_TYPE = 20,
    ATTR_TYPE_FLOAT = 1,
    ATTR_TYPE_INT = 2,
    ATTR_TYPE_INTS = 7,
    TENSOR_DIMS = 1,
    TENSOR_DATA_TYPE = 2,
    TENSOR_NAME = 8,
    TENSOR_RAW_DATA = 9,
    DTYPE_FLOAT = 1,
    DTYPE_INT64 = 7,
    VALUE_NAME = 1,
    VALUE_TYPE = 2,
    TYPE_TENSOR = 1,
    TYPE_ELEM_TYPE = 1,
    TYPE_SHAPE = 2,
    SHAPE_DIM = 1,
    DIM_VALUE = 1,
    DIM_PARAM = 2,
};

cvn_onnx_options cvn_onnx_defaults(void) {
    return (cvn_onnx_options){
        .input_name = "input", .output_name = "logits", .dynamic_batch = true};
}

typedef struct {
    const cvn_tensor *t;
    char *name;
} value;

typedef struct {
    const cvn_module *model;
    cvn_tape *tape;
    const cvn_onnx_options *opt;
    /* module scopes while tracing: each node gets the innermost module that ran it */
    struct {
        char path[MAX_SCOPE];
        const cvn_module *m;
        int first_node;
    } stack[MAX_DEPTH];
    int depth;
    char **scope; /* per node, in recording order */
    int n_scope;  /* entries allocated (the array's capacity) */
    bool failed;
    /* writing */
    value *values;
    int n_values, cap_values;
    char **node_names;
    int n_node_names, cap_node_names;
    cvn_strbuf nodes, inits;
    const char *op_scope; /* scope of the node being written */
} exporter;

/* ------------------------------------------------------------------ tracing */

static void watch(void *ctx, cvn_module *m, cvn_tensor *out) {
    exporter *e = ctx;
    if (e->failed) return;
    if (!out) { /* entering m */
        if (e->depth == MAX_DEPTH) {
            e->failed = true;
            cvn_set_error(CVN_ERR_ARG, "onnx_export: modules nested deeper than %d", MAX_DEPTH);
            return;
        }
        char *path = e->stack[e->depth].path;
        if (e->depth == 0)
            path[0] = '\0';
        else
            cvn_module_scope_name(path, MAX_SCOPE, e->stack[e->depth - 1].path,
                                  e->stack[e->depth - 1].m, m);
        e->stack[e->depth].m = m;
        e->stack[e->depth].first_node = e->tape->n_nodes;
        e->depth++;
        return;
    }
    /* leaving m: it claims the nodes recorded since it began that no child claimed */
    e->depth--;
    int n = e->tape->n_nodes;
    if (!cvn_grow_array((void **)&e->scope, &e->n_scope, n, sizeof *e->scope)) {
        e->failed = true; /* new entries come zeroed: NULL, unclaimed */
        return;
    }
    for (int i = e->stack[e->depth].first_node; i < n; i++)
        if (!e->scope[i] && !(e->scope[i] = cvn_strdup(e->stack[e->depth].path))) e->failed = true;
}

/* ------------------------------------------------------------------ protobuf pieces */

static void attr_int(cvn_strbuf *b, const char *name, int64_t v) {
    cvn_strbuf a = {0};
    cvn_pb_string(&a, ATTR_NAME, name);
    cvn_pb_varint(&a, ATTR_I, (uint64_t)v);
    cvn_pb_varint(&a, ATTR_TYPE, ATTR_TYPE_INT);
    cvn_pb_message(b, NODE_ATTRIBUTE, &a);
}

static void attr_float(cvn_strbuf *b, const char *name, float v) {
    cvn_strbuf a = {0};
    cvn_pb_string(&a, ATTR_NAME, name);
    cvn_pb_float(&a, ATTR_F, v);
    cvn_pb_varint(&a, ATTR_TYPE, ATTR_TYPE_FLOAT);
    cvn_pb_message(b, NODE_ATTRIBUTE, &a);
}

static void attr_ints(cvn_strbuf *b, const char *name, int n, const int64_t *v) {
    cvn_strbuf a = {0};
    cvn_pb_string(&a, ATTR_NAME, name);
    cvn_pb_packed_varints(&a, ATTR_INTS, n, v);
    cvn_pb_varint(&a, ATTR_TYPE, ATTR_TYPE_INTS);
    cvn_pb_message(b, NODE_ATTRIBUTE, &a);
}

/* An initializer: dims and little-endian raw data (the hosts we build for are little-endian). */
static void add_initializer(exporter *e, const char *name, int dtype, int ndim, const int64_t *dims,
                            const void *data, size_t bytes) {
    cvn_strbuf t = {0};
    if (ndim) cvn_pb_packed_varints(&t, TENSOR_DIMS, ndim, dims);
    cvn_pb_varint(&t, TENSOR_DATA_TYPE, (uint64_t)dtype);
    cvn_pb_string(&t, TENSOR_NAME, name);
    cvn_pb_bytes(&t, TENSOR_RAW_DATA, data, bytes);
    cvn_pb_message(&e->inits, GRAPH_INITIALIZER, &t);
}

static void value_info(cvn_strbuf *graph, int field, const char *name, const cvn_tensor *x,
                       bool dynamic) {
    cvn_strbuf shape = {0};
    for (int d = 0; d < x->ndim; d++) {
        cvn_strbuf dim = {0};
        if (d == 0 && dynamic)
            cvn_pb_string(&dim, DIM_PARAM, "batch");
        else
            cvn_pb_varint(&dim, DIM_VALUE, (uint64_t)x->shape[d]);
        cvn_pb_message(&shape, SHAPE_DIM, &dim);
    }
    cvn_strbuf tensor = {0}, type = {0}, info = {0};
    cvn_pb_varint(&tensor, TYPE_ELEM_TYPE, DTYPE_FLOAT);
    cvn_pb_message(&tensor, TYPE_SHAPE, &shape);
    cvn_pb_message(&type, TYPE_TENSOR, &tensor);
    cvn_pb_string(&info, VALUE_NAME, name);
    cvn_pb_message(&info, VALUE_TYPE, &type);
    cvn_pb_message(graph, field, &info);
}

/* ------------------------------------------------------------------ value names */

static const char *value_name(const exporter *e, const cvn_tensor *t) {
    for (int i = e->n_values - 1; i >= 0; i--)
        if (e->values[i].t == t) return e->values[i].name;
    return NULL;
}

static const char *add_value(exporter *e, const cvn_tensor *t, const char *name) {
    char *copy = cvn_strdup(name);
    if (!copy ||
        !cvn_grow_array((void **)&e->values, &e->cap_values, e->n_values + 1, sizeof *e->values)) {
        cvn_free(copy);
        e->failed = true;
        return NULL;
    }
    e->values[e->n_values++] = (value){t, copy};
    return copy;
}

/* A tensor's data on the host (a copy when it lives on a device); *owned tells whether to free. */
static const float *host_data(const exporter *e, const cvn_tensor *t, bool *owned) {
    *owned = t->device != CVN_CPU;
    if (!*owned) return t->data;
    size_t bytes = (size_t)cvn_numel(t) * sizeof(float);
    float *copy = cvn_malloc(bytes ? bytes : 1);
    if (copy) e->tape->be->download(copy, t->data, bytes);
    return copy;
}

/* The name of an input tensor: a node's output, the graph input, or an initializer added on first
 * use (a parameter or buffer under its state_dict name, another constant under a made-up one). */
static const char *input_name(exporter *e, const cvn_tensor *t) {
    const char *name = value_name(e, t);
    if (name) return name;
    char made[MAX_SCOPE + 32];
    const char *found = NULL;
    for (int i = 0; !found && i < cvn_module_num_params(e->model); i++)
        if (cvn_module_param_at(e->model, i, &name) == t) found = name;
    for (int i = 0; !found && i < cvn_module_num_buffers(e->model); i++)
        if (cvn_module_buffer_at(e->model, i, &name) == t) found = name;
    if (!found) {
        snprintf(made, sizeof made, "%s/constant_%d", e->op_scope, e->n_values);
        found = made;
    }
    bool owned;
    const float *data = host_data(e, t, &owned);
    if (!data) {
        e->failed = true;
        return NULL;
    }
    add_initializer(e, found, DTYPE_FLOAT, t->ndim, t->shape, data,
                    (size_t)cvn_numel(t) * sizeof(float));
    if (owned) cvn_free((void *)data);
    return add_value(e, t, found);
}

/* A scalar or small constant made for one node ("<node>/<what>"). */
static const char *constant(exporter *e, const char *node, const char *what, int dtype, int ndim,
                            const int64_t *dims, const void *data, size_t bytes) {
    char name[MAX_SCOPE + 64];
    snprintf(name, sizeof name, "%s/%s", node, what);
    add_initializer(e, name, dtype, ndim, dims, data, bytes);
    return add_value(e, NULL, name);
}

static const char *scalar(exporter *e, const char *node, const char *what, float v) {
    return constant(e, node, what, DTYPE_FLOAT, 0, NULL, &v, sizeof v);
}

/* A node name unique in the graph: "<scope>/<OpType>", then "_1", "_2", ... */
static const char *node_name(exporter *e, const char *op_type) {
    char base[MAX_SCOPE + 32], name[MAX_SCOPE + 48];
    snprintf(base, sizeof base, "%s/%s", e->op_scope, op_type);
    snprintf(name, sizeof name, "%s", base);
    for (int k = 1;; k++) {
        bool taken = false;
        for (int i = 0; i < e->n_node_names && !taken; i++) taken = !strcmp(e->node_names[i], name);
        if (!taken) break;
        snprintf(name, sizeof name, "%s_%d", base, k);
    }
    char *copy = cvn_strdup(name);
    if (!copy || !cvn_grow_array((void **)&e->node_names, &e->cap_node_names, e->n_node_names + 1,
                                 sizeof *e->node_names)) {
        cvn_free(copy);
        e->failed = true;
        return "";
    }
    return e->node_names[e->n_node_names++] = copy;
}

/* Writes one ONNX node; attrs (may be NULL) holds encoded attributes and is emptied. out NULL
 * names the output after the node. Returns the output's name. */
static const char *emit(exporter *e, const char *op_type, int n_in, const char *const *in,
                        const char *out, cvn_strbuf *attrs) {
    const char *name = node_name(e, op_type);
    if (!out) out = name;
    cvn_strbuf n = {0};
    for (int i = 0; i < n_in; i++) cvn_pb_string(&n, NODE_INPUT, in[i] ? in[i] : "");
    cvn_pb_string(&n, NODE_OUTPUT, out);
    cvn_pb_string(&n, NODE_NAME, name);
    cvn_pb_string(&n, NODE_OP_TYPE, op_type);
    if (attrs) {
        cvn_strbuf_append(&n, attrs->data ? attrs->data : "", attrs->len);
        if (attrs->failed) n.failed = true;
        cvn_strbuf_free(attrs);
    }
    cvn_pb_message(&e->nodes, GRAPH_NODE, &n);
    return out;
}

#define IN(...) ((const char *const[]){__VA_ARGS__})
#define NIN(...) ((int)(sizeof(IN(__VA_ARGS__)) / sizeof(const char *)))
#define EMIT(e, op, out, attrs, ...) emit(e, op, NIN(__VA_ARGS__), IN(__VA_ARGS__), out, attrs)

/* ------------------------------------------------------------------ ops */

static void window_attrs(cvn_strbuf *a, const cvn_window *w, bool dilation) {
    attr_ints(a, "kernel_shape", 2, (int64_t[]){w->kh, w->kw});
    attr_ints(a, "strides", 2, (int64_t[]){w->sh, w->sw});
    attr_ints(a, "pads", 4, (int64_t[]){w->ph, w->pw, w->ph, w->pw});
    if (dilation) attr_ints(a, "dilations", 2, (int64_t[]){w->dh, w->dw});
}

static cvn_status activation(exporter *e, const cvn_node_attrs *a, const char *x, const char *out) {
    static const char *const simple[] = {[CVN_ACT_RELU] = "Relu",
                                         [CVN_ACT_SIGMOID] = "Sigmoid",
                                         [CVN_ACT_TANH] = "Tanh",
                                         [CVN_ACT_HARDSWISH] = "HardSwish",
                                         [CVN_ACT_LEAKY_RELU] = "LeakyRelu",
                                         [CVN_ACT_HARDSIGMOID] = "HardSigmoid"};
    cvn_strbuf attrs = {0};
    switch (a->kind) {
    case CVN_ACT_LEAKY_RELU:
        attr_float(&attrs, "alpha", a->alpha);
        break;
    case CVN_ACT_HARDSIGMOID: /* ONNX's defaults are alpha 0.2, beta 0.5; ours is relu6(x + 3) / 6
                               */
        attr_float(&attrs, "alpha", 1.0f / 6.0f);
        attr_float(&attrs, "beta", 0.5f);
        break;
    case CVN_ACT_SILU: { /* x * sigmoid(x) */
        const char *s = EMIT(e, "Sigmoid", NULL, NULL, x);
        EMIT(e, "Mul", out, NULL, x, s);
        return CVN_OK;
    }
    case CVN_ACT_GELU: { /* the exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): no Gelu before opset 20
                          */
        const char *base = node_name(e, "Gelu");
        const char *r2 = scalar(e, base, "sqrt2", sqrtf(2.0f));
        const char *one = scalar(e, base, "one", 1.0f), *half = scalar(e, base, "half", 0.5f);
        const char *d = EMIT(e, "Div", NULL, NULL, x, r2);
        const char *erf = EMIT(e, "Erf", NULL, NULL, d);
        const char *p = EMIT(e, "Add", NULL, NULL, erf, one);
        const char *h = EMIT(e, "Mul", NULL, NULL, x, half);
        EMIT(e, "Mul", out, NULL, h, p);
        return CVN_OK;
    }
    default:
        break;
    }
    EMIT(e, simple[a->kind], out, &attrs, x);
    return CVN_OK;
}

/* Writes the ONNX nodes of one traced node whose inputs are named in[] and whose output gets out.
 */
static cvn_status export_node(exporter *e, const cvn_node *n, const char *const *in,
                              const char *out) {
    cvn_node_attrs a = {0};
    if (n->describe) n->describe(n, &a);
    const char *op = n->op;
    const cvn_tensor *x = n->in[0];
    cvn_strbuf attrs = {0};
    if (!strcmp(op, "conv2d")) {
        window_attrs(&attrs, &a.win, true);
        attr_int(&attrs, "group", a.groups);
        emit(e, "Conv", n->in[2] ? 3 : 2, in, out, &attrs);
    } else if (!strcmp(op, "linear")) {
        if (x->ndim == 2) {
            attr_int(&attrs, "transB", 1);
            emit(e, "Gemm", n->in[2] ? 3 : 2, in, out, &attrs);
        } else { /* [..., in] x W^T (+ b) */
            attr_ints(&attrs, "perm", 2, (int64_t[]){1, 0});
            const char *wt = EMIT(e, "Transpose", NULL, &attrs, in[1]);
            if (!n->in[2]) {
                EMIT(e, "MatMul", out, NULL, in[0], wt);
            } else {
                const char *mm = EMIT(e, "MatMul", NULL, NULL, in[0], wt);
                EMIT(e, "Add", out, NULL, mm, in[2]);
            }
        }
    } else if (!strcmp(op, "matmul")) {
        EMIT(e, "MatMul", out, NULL, in[0], in[1]);
    } else if (!strcmp(op, "add") || !strcmp(op, "sub") || !strcmp(op, "mul") ||
               !strcmp(op, "div")) {
        const char *type = op[0] == 'a'   ? "Add"
                           : op[0] == 's' ? "Sub"
                           : op[0] == 'm' ? "Mul"
                                          : "Div";
        EMIT(e, type, out, NULL, in[0], in[1]);
    } else if (!strcmp(op, "affine_scalar")) {
        const char *base = node_name(e, "Affine"), *y = in[0];
        if (a.alpha == 1.0f && a.beta == 0.0f) EMIT(e, "Identity", out, NULL, y);
        if (a.alpha != 1.0f)
            y = EMIT(e, "Mul", a.beta == 0.0f ? out : NULL, NULL, y,
                     scalar(e, base, "scale", a.alpha));
        if (a.beta != 0.0f) EMIT(e, "Add", out, NULL, y, scalar(e, base, "shift", a.beta));
    } else if (a.activation) {
        return activation(e, &a, in[0], out);
    } else if (!strcmp(op, "max_pool2d") || !strcmp(op, "avg_pool2d")) {
        window_attrs(&attrs, &a.win, false);
        if (op[0] == 'a') attr_int(&attrs, "count_include_pad", 1);
        EMIT(e, op[0] == 'm' ? "MaxPool" : "AveragePool", out, &attrs, in[0]);
    } else if (!strcmp(op, "global_avg_pool2d") ||
               (!strcmp(op, "adaptive_avg_pool2d") && a.win.oh == 1 && a.win.ow == 1)) {
        EMIT(e, "GlobalAveragePool", out, NULL, in[0]);
    } else if (!strcmp(op, "adaptive_avg_pool2d")) {
        const cvn_window *w = &a.win;
        if (w->h % w->oh || w->w % w->ow)
            return cvn_set_error(CVN_ERR_UNSUPPORTED,
                                 "onnx_export: adaptive_avg_pool2d from %dx%d to %dx%d (in '%s') "
                                 "has no ONNX equivalent; the sizes must divide",
                                 w->h, w->w, w->oh, w->ow, e->op_scope);
        int kh = w->h / w->oh, kw = w->w / w->ow;
        attr_ints(&attrs, "kernel_shape", 2, (int64_t[]){kh, kw});
        attr_ints(&attrs, "strides", 2, (int64_t[]){kh, kw});
        EMIT(e, "AveragePool", out, &attrs, in[0]);
    } else if (!strcmp(op, "batch_norm2d")) {
        if (a.training || !a.running_mean || !a.running_var)
            return cvn_set_error(CVN_ERR_STATE,
                                 "onnx_export: batch norm in '%s' ran on batch statistics",
                                 e->op_scope);
        int64_t c = x->shape[1];
        const char *scale = in[1], *bias = in[2];
        if (!scale || !bias) { /* affine = false: ONNX wants both */
            float *ones = cvn_malloc((size_t)c * 2 * sizeof(float));
            if (!ones) return cvn_last_status();
            for (int64_t i = 0; i < c; i++) ones[i] = 1.0f, ones[c + i] = 0.0f;
            const char *base = node_name(e, "BatchNormalization");
            if (!scale) scale = constant(e, base, "scale", DTYPE_FLOAT, 1, &c, ones, c * 4);
            if (!bias) bias = constant(e, base, "bias", DTYPE_FLOAT, 1, &c, ones + c, c * 4);
            cvn_free(ones);
        }
        const char *mean = input_name(e, a.running_mean), *var = input_name(e, a.running_var);
        attr_float(&attrs, "epsilon", a.eps);
        EMIT(e, "BatchNormalization", out, &attrs, in[0], scale, bias, mean, var);
    } else if (!strcmp(op, "reshape")) {
        const cvn_tensor *y = n->out;
        bool keeps_batch = x->ndim >= 1 && y->ndim >= 1 && y->shape[0] == x->shape[0];
        if (keeps_batch && y->ndim == 2 && x->ndim >= 2) {
            attr_int(&attrs, "axis", 1);
            EMIT(e, "Flatten", out, &attrs, in[0]);
        } else {
            int64_t shape[CVN_MAX_DIMS], nd = y->ndim;
            for (int d = 0; d < y->ndim; d++) shape[d] = y->shape[d];
            if (keeps_batch && e->opt->dynamic_batch) shape[0] = 0; /* 0: the input's dim 0 */
            const char *base = node_name(e, "Reshape");
            const char *s = constant(e, base, "shape", DTYPE_INT64, 1, &nd, shape,
                                     (size_t)nd * sizeof(int64_t));
            EMIT(e, "Reshape", out, NULL, in[0], s);
        }
    } else if (!strcmp(op, "concat")) {
        attr_int(&attrs, "axis", a.dim);
        emit(e, "Concat", n->n_in, in, out, &attrs);
    } else if (!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) {
        attr_int(&attrs, "axis", a.dim);
        EMIT(e, op[0] == 's' ? "Softmax" : "LogSoftmax", out, &attrs, in[0]);
    } else if (!strcmp(op, "sum") || !strcmp(op, "mean")) {
        int64_t axes[CVN_MAX_DIMS], na = 0;
        for (int d = 0; d < x->ndim; d++)
            if (a.reduced[d]) axes[na++] = d;
        attr_int(&attrs, "keepdims", a.keepdim);
        if (op[0] == 'm') { /* opset 17: ReduceMean takes axes as an attribute */
            attr_ints(&attrs, "axes", (int)na, axes);
            EMIT(e, "ReduceMean", out, &attrs, in[0]);
        } else { /* ReduceSum takes them as an input since opset 13 */
            const char *base = node_name(e, "ReduceSum");
            const char *ax =
                constant(e, base, "axes", DTYPE_INT64, 1, &na, axes, (size_t)na * sizeof(int64_t));
            EMIT(e, "ReduceSum", out, &attrs, in[0], ax);
        }
    } else {
        return cvn_set_error(CVN_ERR_UNSUPPORTED,
                             "onnx_export: op '%s' (in '%s') has no ONNX mapping", op,
                             e->op_scope[0] ? e->op_scope : "the model");
    }
    return e->failed ? cvn_set_error(CVN_ERR_NOMEM, "onnx_export: out of memory") : CVN_OK;
}

/* ------------------------------------------------------------------ the model */

static cvn_status write_graph(exporter *e, cvn_tensor *input, cvn_tensor *output,
                              cvn_strbuf *graph) {
    int n = e->tape->n_nodes;
    const cvn_node **order = cvn_malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return cvn_last_status();
    int i = n;
    for (const cvn_node *node = e->tape->last; node && i > 0; node = node->prev) order[--i] = node;
    if (!add_value(e, input, e->opt->input_name)) {
        cvn_free(order);
        return cvn_set_error(CVN_ERR_NOMEM, "onnx_export: out of memory");
    }
    cvn_status st = CVN_OK;
    for (i = 0; i < n && !st; i++) {
        const cvn_node *node = order[i];
        e->op_scope = i < e->n_scope && e->scope[i] ? e->scope[i] : "";
        const char *in[CVN_NODE_MAX_IN] = {NULL};
        for (int k = 0; k < node->n_in; k++)
            if (node->in[k]) in[k] = input_name(e, node->in[k]);
        char name[MAX_SCOPE + 48]; /* the model's output, or named after its node */
        if (node->out == output)
            snprintf(name, sizeof name, "%s", e->opt->output_name);
        else
            snprintf(name, sizeof name, "%s/%s_output_%d", e->op_scope, node->op, i);
        const char *out = add_value(e, node->out, name);
        if (!out) break;
        st = export_node(e, node, in, out);
    }
    cvn_free(order);
    if (!st && !value_name(e, output)) { /* the model returned an input or a parameter */
        e->op_scope = "";
        const char *src = input_name(e, output);
        if (src) EMIT(e, "Identity", e->opt->output_name, NULL, src);
    }
    if (!st && e->failed) st = cvn_last_status() ? cvn_last_status() : CVN_ERR_NOMEM;
    if (st) return st;
    cvn_strbuf_append(graph, e->nodes.data ? e->nodes.data : "", e->nodes.len);
    cvn_pb_string(graph, GRAPH_NAME, cvn_module_kind(e->model));
    cvn_strbuf_append(graph, e->inits.data ? e->inits.data : "", e->inits.len);
    value_info(graph, GRAPH_INPUT, e->opt->input_name, input, e->opt->dynamic_batch);
    value_info(graph, GRAPH_OUTPUT, e->opt->output_name, output, e->opt->dynamic_batch);
    if (e->nodes.failed || e->inits.failed) graph->failed = true;
    return CVN_OK;
}

static void exporter_free(exporter *e) {
    for (int i = 0; i < e->n_scope; i++) cvn_free(e->scope[i]);
    cvn_free(e->scope);
    for (int i = 0; i < e->n_values; i++) cvn_free(e->values[i].name);
    cvn_free(e->values);
    for (int i = 0; i < e->n_node_names; i++) cvn_free(e->node_names[i]);
    cvn_free(e->node_names);
    cvn_strbuf_free(&e->nodes);
    cvn_strbuf_free(&e->inits);
}

/* The encoded ModelProto of model traced on an input of the given shape. */
static cvn_status encode_model(cvn_module *model, int ndim, const int64_t *shape,
                               const cvn_onnx_options *opt, cvn_strbuf *out) {
    cvn_tensor *p0 = cvn_module_num_params(model) ? cvn_module_param_at(model, 0, NULL) : NULL;
    cvn_tape *t = cvn_tape_new(p0 ? p0->device : CVN_CPU);
    if (!t) return cvn_last_status();
    exporter e = {.model = model, .tape = t, .opt = opt};
    bool was_training = cvn_module_is_training(model);
    cvn_module_train(model, false);
    cvn_status st = CVN_OK;
    cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, ndim, shape), *y = NULL;
    if (!x || cvn_tensor_fill(x, 0.0f)) st = cvn_last_status();
    if (!st) {
        t->tracing = true;
        t->on_module = watch;
        t->on_module_ctx = &e;
        y = cvn_module_forward(model, t, x);
        t->on_module = NULL;
        t->tracing = false;
        if (!y)
            st = cvn_last_status();
        else if (e.failed)
            st = cvn_last_status() ? cvn_last_status() : CVN_ERR_NOMEM;
        else if (y->dtype != CVN_F32)
            st = cvn_set_error(CVN_ERR_DTYPE, "onnx_export: the model's output is not f32");
    }
    cvn_module_train(model, was_training);
    cvn_strbuf graph = {0};
    if (!st) st = write_graph(&e, x, y, &graph);
    if (!st) {
        cvn_strbuf opset = {0};
        cvn_pb_varint(out, MODEL_IR_VERSION, ONNX_IR_VERSION);
        cvn_pb_string(out, MODEL_PRODUCER_NAME, "libcvnet");
        cvn_pb_string(out, MODEL_PRODUCER_VERSION, CVN_VERSION);
        if (opt->doc) cvn_pb_string(out, MODEL_DOC, opt->doc);
        cvn_pb_message(out, MODEL_GRAPH, &graph);
        cvn_pb_varint(&opset, OPSET_VERSION, ONNX_OPSET);
        cvn_pb_message(out, MODEL_OPSET, &opset);
        if (out->failed) st = cvn_set_error(CVN_ERR_NOMEM, "onnx_export: out of memory");
    }
    cvn_strbuf_free(&graph);
    exporter_free(&e);
    cvn_tape_free(t);
    return st;
}

static bool valid_name(const char *s) {
    return s && s[0];
}

cvn_status cvn_onnx_export(cvn_module *model, int ndim, const int64_t *input_shape,
                           const char *path, const cvn_onnx_options *options) {
    cvn_onnx_options opt = options ? *options : cvn_onnx_defaults();
    if (!model || !path || !input_shape || ndim < 1 || ndim > CVN_MAX_DIMS)
        return cvn_set_error(CVN_ERR_ARG,
                             "onnx_export: model, path or input shape is missing (ndim %d)", ndim);
    for (int d = 0; d < ndim; d++)
        if (input_shape[d] < 1)
            return cvn_set_error(CVN_ERR_SHAPE, "onnx_export: input dim %d has size %lld", d,
                                 (long long)input_shape[d]);
    if (!valid_name(opt.input_name) || !valid_name(opt.output_name) ||
        !strcmp(opt.input_name, opt.output_name))
        return cvn_set_error(CVN_ERR_ARG,
                             "onnx_export: input and output names must be set and differ");
    cvn_strbuf bytes = {0};
    cvn_status st = encode_model(model, ndim, input_shape, &opt, &bytes);
    if (!st) {
        char tmp[4096];
        FILE *f = cvn_file_begin(path, tmp, sizeof tmp);
        if (!f) {
            st = cvn_last_status();
        } else {
            fwrite(bytes.data, 1, bytes.len, f);
            st = cvn_file_commit(f, tmp, path);
        }
    }
    cvn_strbuf_free(&bytes);
    return st;
}
