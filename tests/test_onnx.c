/* ONNX export: the protobuf encoder against byte sequences worked out by hand, the decoder on
 * malformed input, and exported models read back field by field. With $CVN_ONNX_OUT set, it also
 * writes every exportable model with an input and libcvnet's output there, for
 * tests/onnx/verify.sh to run through onnx.checker and ONNX Runtime. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/protobuf.h"
#include "nn/module.h"
#include "testutil.h"

static void expect_bytes(const cvn_strbuf *b, const uint8_t *want, size_t n) {
    ck_assert(!b->failed);
    ck_assert_uint_eq(b->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg((uint8_t)b->data[i] == want[i], "byte %zu: %02x, want %02x", i,
                      (uint8_t)b->data[i], want[i]);
}

START_TEST(encoder_bytes) {
    cvn_strbuf b = {0};
    cvn_pb_varint(&b, 1, 150); /* the protobuf documentation's examples */
    expect_bytes(&b, (const uint8_t[]){0x08, 0x96, 0x01}, 3);
    cvn_strbuf_free(&b);
    cvn_pb_string(&b, 2, "testing");
    expect_bytes(&b, (const uint8_t[]){0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}, 9);
    cvn_strbuf_free(&b);
    cvn_pb_packed_varints(&b, 4, 3, (const int64_t[]){3, 270, 86942});
    expect_bytes(&b, (const uint8_t[]){0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05}, 8);
    cvn_strbuf_free(&b);
    cvn_pb_varint(&b, 3, (uint64_t)(int64_t)-1); /* int64 -1: ten bytes */
    expect_bytes(
        &b, (const uint8_t[]){0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
        11);
    cvn_strbuf_free(&b);
    cvn_pb_float(&b, 2, 1.0f);
    expect_bytes(&b, (const uint8_t[]){0x15, 0x00, 0x00, 0x80, 0x3f}, 5);
    cvn_strbuf_free(&b);
    cvn_pb_packed_floats(&b, 7, 2, (const float[]){-2.0f, 0.5f});
    expect_bytes(&b, (const uint8_t[]){0x3a, 0x08, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f}, 10);
    cvn_strbuf_free(&b);
    cvn_strbuf sub = {0};
    cvn_pb_varint(&sub, 1, 150);
    cvn_pb_message(&b, 3, &sub); /* nested: 1a 03 08 96 01 */
    ck_assert_ptr_null(sub.data);
    expect_bytes(&b, (const uint8_t[]){0x1a, 0x03, 0x08, 0x96, 0x01}, 5);
    cvn_pb_bytes(&b, 300, "", 0); /* field 300: key (300 << 3 | 2) = e2 12 */
    expect_bytes(&b, (const uint8_t[]){0x1a, 0x03, 0x08, 0x96, 0x01, 0xe2, 0x12, 0x00}, 8);
    cvn_strbuf_free(&b);
}
END_TEST

START_TEST(decoder_roundtrip) {
    cvn_strbuf b = {0};
    cvn_pb_varint(&b, 1, UINT64_MAX);
    cvn_pb_float(&b, 2, -3.25f);
    cvn_pb_packed_varints(&b, 3, 4, (const int64_t[]){0, 1, -5, INT64_MAX});
    cvn_pb_varint(&b, 3, 7); /* the same repeated field unpacked */
    cvn_pb_string(&b, 536870911, "x");
    cvn_pb_reader r = cvn_pb_reader_init(b.data, b.len);
    cvn_pb_field f;
    ck_assert_int_eq(cvn_pb_next(&r, &f), 1);
    ck_assert(f.field == 1 && f.wire == CVN_PB_VARINT && f.v == UINT64_MAX);
    ck_assert_int_eq(cvn_pb_next(&r, &f), 1);
    uint32_t u = (uint32_t)f.v;
    float v;
    memcpy(&v, &u, 4);
    ck_assert(f.field == 2 && f.wire == CVN_PB_FIXED32 && v == -3.25f);
    int64_t got[8];
    ck_assert_int_eq(cvn_pb_next(&r, &f), 1);
    ck_assert_int_eq(cvn_pb_varints(&f, got, 8), 4);
    ck_assert(got[0] == 0 && got[1] == 1 && got[2] == -5 && got[3] == INT64_MAX);
    ck_assert_int_eq(cvn_pb_varints(&f, got, 3), -1); /* more than fit */
    ck_assert_int_eq(cvn_pb_next(&r, &f), 1);
    ck_assert(cvn_pb_varints(&f, got, 8) == 1 && got[0] == 7);
    ck_assert_int_eq(cvn_pb_next(&r, &f), 1);
    ck_assert(f.field == 536870911 && f.len == 1 && f.data[0] == 'x');
    ck_assert_int_eq(cvn_pb_next(&r, &f), 0);
    cvn_strbuf_free(&b);
}
END_TEST

static int decode_all(const uint8_t *d, size_t n) {
    cvn_pb_reader r = cvn_pb_reader_init(d, n);
    cvn_pb_field f;
    int rc;
    while ((rc = cvn_pb_next(&r, &f)) == 1) {
    }
    return rc;
}

START_TEST(decoder_rejects_malformed) {
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t n;
    } bad[] = {
        {"truncated varint", {0x08, 0x96}, 2},
        {"truncated key", {0x80}, 1},
        {"length past the end", {0x12, 0x07, 't'}, 3},
        {"huge length", {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"field 0", {0x00, 0x01}, 2},
        {"group start", {0x0b}, 1},
        {"wire type 7", {0x0f, 0x00}, 2},
        {"truncated fixed32", {0x15, 0x00, 0x00}, 3},
        {"truncated fixed64", {0x09, 1, 2, 3}, 4},
        {"varint of 11 bytes",
         {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         12},
        {"varint past 64 bits",
         {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvn_clear_error();
        ck_assert_msg(decode_all(bad[i].bytes, bad[i].n) == -1, "%s accepted", bad[i].what);
        ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
        ck_assert(strstr(cvn_last_error(), "protobuf"));
    }
    /* a packed run with a truncated varint inside */
    cvn_pb_field f = {
        .field = 1, .wire = CVN_PB_LEN, .data = (const uint8_t[]){0x01, 0x80}, .len = 2};
    int64_t out[4];
    ck_assert_int_eq(cvn_pb_varints(&f, out, 4), -1);
    f.wire = CVN_PB_FIXED32;
    ck_assert_int_eq(cvn_pb_varints(&f, out, 4), -1);
    ck_assert_int_eq(decode_all(NULL, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------ reading a model back */

typedef struct {
    const uint8_t *data;
    size_t len;
} span;

/* The payloads (or, for varints, values in v) of every occurrence of field in a message. */
static int find(span msg, int field, span *out, uint64_t *v, int max) {
    cvn_pb_reader r = cvn_pb_reader_init(msg.data, msg.len);
    cvn_pb_field f;
    int n = 0, rc;
    while ((rc = cvn_pb_next(&r, &f)) == 1)
        if (f.field == field && n < max) {
            if (out) out[n] = (span){f.data, f.len};
            if (v) v[n] = f.v;
            n++;
        }
    ck_assert_msg(rc == 0, "malformed message: %s", cvn_last_error());
    return n;
}

static span one(span msg, int field) {
    span s = {0};
    ck_assert_int_eq(find(msg, field, &s, NULL, 1), 1);
    return s;
}

static bool str_is(span s, const char *want) {
    return s.len == strlen(want) && !memcmp(s.data, want, s.len);
}

static span read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)n);
    ck_assert(fread(d, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return (span){d, (size_t)n};
}

START_TEST(reference_cnn_read_back) {
    cvn_rng r;
    cvn_rng_seed(&r, 7);
    cvn_module *m = CK_NOTNULL(cvn_reference_cnn(&r));
    cvn_module_train(m, true);
    char path[512];
    snprintf(path, sizeof path, "%s/ref.onnx", test_dir());
    CK_OK(cvn_onnx_export(m, 4, (int64_t[]){2, 1, 28, 28}, path, NULL));
    ck_assert(cvn_module_is_training(m)); /* mode restored */
    span model = read_file(path);
    uint64_t v[4];
    ck_assert(find(model, 1, NULL, v, 1) == 1 && v[0] == 8); /* ir_version */
    ck_assert(str_is(one(model, 2), "libcvnet"));
    ck_assert(str_is(one(model, 3), CVN_VERSION));
    span opset = one(model, 8);
    ck_assert(find(opset, 2, NULL, v, 1) == 1 && v[0] == 17);
    ck_assert_int_eq(find(opset, 1, NULL, NULL, 1), 0); /* the default domain */
    span graph = one(model, 7);

    static const char *const ops[] = {"Conv",    "Relu",    "MaxPool", "Conv", "Relu",
                                      "MaxPool", "Flatten", "Gemm",    "Relu", "Gemm"};
    static const char *const names[] = {"0/Conv",    "1/Relu",    "2/MaxPool", "3/Conv", "4/Relu",
                                        "5/MaxPool", "6/Flatten", "7/Gemm",    "8/Relu", "10/Gemm"};
    span nodes[16];
    ck_assert_int_eq(find(graph, 1, nodes, NULL, 16), 10); /* dropout vanished */
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(str_is(one(nodes[i], 4), ops[i]), "node %d is not %s", i, ops[i]);
        ck_assert_msg(str_is(one(nodes[i], 3), names[i]), "node %d is not named %s", i, names[i]);
    }
    span in[3], attrs[8];
    ck_assert_int_eq(find(nodes[0], 1, in, NULL, 3), 3);
    ck_assert(str_is(in[0], "input") && str_is(in[1], "0.weight") && str_is(in[2], "0.bias"));
    ck_assert(str_is(one(nodes[9], 2), "logits"));
    /* the first Conv's attributes: pads 1 1 1 1, kernel 3 3, strides 1 1, group 1 */
    int na = find(nodes[0], 5, attrs, NULL, 8);
    ck_assert_int_eq(na, 5);
    bool seen_pads = false;
    for (int i = 0; i < na; i++) {
        if (!str_is(one(attrs[i], 1), "pads")) continue;
        int64_t p[8];
        cvn_pb_field f = {
            .wire = CVN_PB_LEN, .data = one(attrs[i], 8).data, .len = one(attrs[i], 8).len};
        ck_assert_int_eq(cvn_pb_varints(&f, p, 8), 4);
        ck_assert(p[0] == 1 && p[1] == 1 && p[2] == 1 && p[3] == 1);
        ck_assert(find(attrs[i], 20, NULL, v, 1) == 1 && v[0] == 7); /* INTS */
        seen_pads = true;
    }
    ck_assert(seen_pads);

    /* initializers: every parameter, under its name, with its bytes */
    span inits[16];
    int ni = find(graph, 5, inits, NULL, 16);
    ck_assert_int_eq(ni, cvn_module_num_params(m));
    for (int i = 0; i < ni; i++) {
        const char *name;
        cvn_tensor *p = cvn_module_param_at(m, i, &name);
        ck_assert_msg(str_is(one(inits[i], 8), name), "initializer %d is not %s", i, name);
        ck_assert(find(inits[i], 2, NULL, v, 1) == 1 && v[0] == 1); /* FLOAT */
        int64_t dims[8];
        span d = one(inits[i], 1);
        cvn_pb_field f = {.wire = CVN_PB_LEN, .data = d.data, .len = d.len};
        ck_assert_int_eq(cvn_pb_varints(&f, dims, 8), p->ndim);
        for (int k = 0; k < p->ndim; k++) ck_assert(dims[k] == p->shape[k]);
        span raw = one(inits[i], 9);
        ck_assert_uint_eq(raw.len, (size_t)cvn_numel(p) * 4);
        ck_assert(!memcmp(raw.data, p->data, raw.len));
    }
    /* input [batch, 1, 28, 28], output [batch, 10] */
    span input = one(graph, 11), output = one(graph, 12);
    ck_assert(str_is(one(input, 1), "input") && str_is(one(output, 1), "logits"));
    span shape = one(one(one(input, 2), 1), 2), dims[4];
    ck_assert_int_eq(find(shape, 1, dims, NULL, 4), 4);
    ck_assert(str_is(one(dims[0], 2), "batch"));
    ck_assert(find(dims[3], 1, NULL, v, 1) == 1 && v[0] == 28);
    shape = one(one(one(output, 2), 1), 2);
    ck_assert_int_eq(find(shape, 1, dims, NULL, 4), 2);
    ck_assert(find(dims[1], 1, NULL, v, 1) == 1 && v[0] == 10);

    /* every truncation of the file is rejected, except at the top-level field boundaries */
    int boundaries = 0, accepted = 0;
    cvn_pb_reader rd = cvn_pb_reader_init(model.data, model.len);
    cvn_pb_field f;
    while (cvn_pb_next(&rd, &f) == 1) boundaries++;
    for (size_t cut = 0; cut < model.len; cut += cut < 4096 ? 1 : 997)
        if (decode_all(model.data, cut) == 0) accepted++;
    ck_assert_int_le(accepted, boundaries);
    ck_assert_int_ge(accepted, 2); /* empty, and after ir_version */

    /* a static batch: dim 0 is a number */
    cvn_onnx_options opt = cvn_onnx_defaults();
    opt.dynamic_batch = false;
    opt.input_name = "images";
    CK_OK(cvn_onnx_export(m, 4, (int64_t[]){5, 1, 28, 28}, path, &opt));
    free((void *)model.data);
    model = read_file(path);
    input = one(one(model, 7), 11);
    ck_assert(str_is(one(input, 1), "images"));
    shape = one(one(one(input, 2), 1), 2);
    ck_assert_int_eq(find(shape, 1, dims, NULL, 4), 4);
    ck_assert(find(dims[0], 1, NULL, v, 1) == 1 && v[0] == 5);
    free((void *)model.data);
    cvn_module_free(m);
}
END_TEST

/* ------------------------------------------------------------------ a module using every op */

typedef struct {
    cvn_module base;
} ops_module;

static cvn_tensor *ops_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    cvn_tensor *w = m->params[0], *rm = m->buffers[0], *rv = m->buffers[1];
    cvn_tensor *a = cvn_module_forward(m->children[0], t, x); /* conv 3 -> 4 */
    cvn_tensor *d = cvn_concat(t, 2, (cvn_tensor *[]){cvn_gelu(t, a), cvn_silu(t, a)}, 1);
    cvn_tensor *e = cvn_avg_pool2d(t, d, 3, 1, 1);
    cvn_tensor *f = cvn_adaptive_avg_pool2d(t, e, 2, 2);
    cvn_tensor *g = cvn_batch_norm2d(t, f, NULL, NULL, rm, rv, m->training, 0.1f, 1e-3f);
    cvn_tensor *h = cvn_leaky_relu(t, cvn_tanh(t, cvn_mul_scalar(t, g, 2.0f)), 0.1f);
    int64_t n = x ? x->shape[0] : 0;
    cvn_tensor *k =
        cvn_module_forward(m->children[1], t, cvn_reshape(t, h, 3, (int64_t[]){n, 8, 4}));
    cvn_tensor *l = cvn_mean(t, k, 1, (int[]){2}, false);
    cvn_tensor *s = cvn_affine_scalar(t, cvn_sum(t, k, 1, (int[]){-1}, false), 0.5f, -1.0f);
    cvn_tensor *o = cvn_add(t, l, s);
    cvn_tensor *p = cvn_mul(t, o, cvn_sigmoid(t, o));
    cvn_tensor *q = cvn_sub(t, cvn_div(t, p, cvn_add_scalar(t, cvn_sigmoid(t, o), 1.0f)), l);
    cvn_tensor *r = cvn_matmul(t, q, w);
    return cvn_add(t, cvn_log_softmax(t, r, 1), cvn_softmax(t, r, -1));
}

static const cvn_module_vtable ops_vt = {.kind = "OpsModel", .forward = ops_forward};

static cvn_tensor *filled(int ndim, const int64_t *shape, cvn_rng *r, float lo, float hi) {
    cvn_tensor *t = cvn_tensor_new(CVN_F32, ndim, shape);
    if (t) cvn_tensor_uniform(t, r, lo, hi);
    return t;
}

static cvn_module *ops_model(cvn_rng *r) {
    cvn_module *m = cvn_module_alloc(sizeof(ops_module), &ops_vt);
    cvn_conv2d_params p = cvn_conv2d_defaults();
    p.pad_h = p.pad_w = 1;
    ck_assert(!cvn_module_add_child(m, "conv", cvn_conv2d_new(3, 4, 3, 3, &p, true, r)));
    ck_assert(!cvn_module_add_child(m, "proj", cvn_linear_new(4, 5, true, r)));
    ck_assert(!cvn_module_own(m, "w", filled(2, (int64_t[]){8, 6}, r, -1, 1), true));
    ck_assert(!cvn_module_own(m, "rm", filled(1, (int64_t[]){8}, r, -0.5f, 0.5f), false));
    ck_assert(!cvn_module_own(m, "rv", filled(1, (int64_t[]){8}, r, 0.5f, 2.0f), false));
    return m;
}

START_TEST(every_op_maps) {
    cvn_rng r;
    cvn_rng_seed(&r, 3);
    cvn_module *m = ops_model(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/ops.onnx", test_dir());
    CK_OK(cvn_onnx_export(m, 4, (int64_t[]){1, 3, 8, 8}, path, NULL));
    span model = read_file(path), nodes[64];
    int nn = find(one(model, 7), 1, nodes, NULL, 64);
    static const char *const want[] = {
        "Conv",      "Erf",     "Sigmoid",   "Concat",  "AveragePool", "BatchNormalization", "Tanh",
        "LeakyRelu", "Reshape", "Transpose", "MatMul",  "ReduceMean",  "ReduceSum",          "Add",
        "Mul",       "Sub",     "Div",       "Softmax", "LogSoftmax"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool seen = false;
        for (int k = 0; k < nn && !seen; k++) seen = str_is(one(nodes[k], 4), want[i]);
        ck_assert_msg(seen, "no %s node", want[i]);
    }
    /* names follow modules: the conv child and the linear child */
    ck_assert(str_is(one(nodes[0], 3), "conv/Conv"));
    bool proj = false;
    for (int k = 0; k < nn; k++) proj |= str_is(one(nodes[k], 3), "proj/MatMul");
    ck_assert(proj);
    free((void *)model.data);
    cvn_module_free(m);
}
END_TEST

/* ------------------------------------------------------------------ errors */

/* A loss inside a model: cross-entropy against class 0. */
static cvn_tensor *loss_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    cvn_tensor *labels = x ? cvn_tape_tensor(t, CVN_I32, 1, x->shape) : NULL;
    if (labels) memset(labels->data, 0, (size_t)cvn_numel(labels) * sizeof(int32_t));
    return cvn_cross_entropy(t, x, labels, 0.0f);
}
static const cvn_module_vtable loss_vt = {.kind = "Loss", .forward = loss_forward};

START_TEST(errors) {
    cvn_rng r;
    cvn_rng_seed(&r, 1);
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/bad.onnx", test_dir());
    cvn_module *seq = cvn_sequential_new();
    ck_assert(!cvn_sequential_add(seq, cvn_linear_new(4, 4, true, &r)));
    ck_assert(
        !cvn_sequential_add_named(seq, "loss", cvn_module_alloc(sizeof(cvn_module), &loss_vt)));
    ck_assert_int_eq(cvn_onnx_export(seq, 2, (int64_t[]){1, 4}, path, NULL), CVN_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(cvn_last_error(), "'cross_entropy'") && strstr(cvn_last_error(), "'loss'"),
                  "%s", cvn_last_error());
    struct stat sb;
    ck_assert(stat(path, &sb) != 0); /* nothing written */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert(stat(tmp, &sb) != 0);

    cvn_module *m = cvn_reference_cnn(&r);
    ck_assert_int_eq(cvn_onnx_export(NULL, 4, (int64_t[]){1, 1, 28, 28}, path, NULL), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_onnx_export(m, 0, (int64_t[]){1}, path, NULL), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_onnx_export(m, 4, (int64_t[]){0, 1, 28, 28}, path, NULL), CVN_ERR_SHAPE);
    ck_assert_int_eq(cvn_onnx_export(m, 4, (int64_t[]){1, 3, 28, 28}, path, NULL), CVN_ERR_SHAPE);
    cvn_onnx_options opt = cvn_onnx_defaults();
    opt.output_name = "input";
    ck_assert_int_eq(cvn_onnx_export(m, 4, (int64_t[]){1, 1, 28, 28}, path, &opt), CVN_ERR_ARG);
    opt.output_name = "";
    ck_assert_int_eq(cvn_onnx_export(m, 4, (int64_t[]){1, 1, 28, 28}, path, &opt), CVN_ERR_ARG);
    ck_assert_int_eq(
        cvn_onnx_export(m, 4, (int64_t[]){1, 1, 28, 28}, "/nonexistent/dir/m.onnx", NULL),
        CVN_ERR_IO);
    /* adaptive pooling whose sizes do not divide has no ONNX form */
    cvn_module *ap = cvn_sequential_new();
    ck_assert(!cvn_sequential_add(ap, cvn_adaptive_avg_pool2d_new(3, 3)));
    ck_assert_int_eq(cvn_onnx_export(ap, 4, (int64_t[]){1, 2, 7, 7}, path, NULL),
                     CVN_ERR_UNSUPPORTED);
    CK_OK(cvn_onnx_export(ap, 4, (int64_t[]){1, 2, 9, 6}, path, NULL)); /* 3x2 windows */
    cvn_module_free(ap);
    cvn_module_free(m);
    cvn_module_free(seq);
}
END_TEST

/* ------------------------------------------------------------------ models for ONNX Runtime */

/* Moves batch-norm statistics and affine parameters away from their initial 0 / 1, so that
 * exporting them wrong shows. */
static void perturb(cvn_module *m, cvn_rng *r) {
    for (int i = 0; i < cvn_module_num_buffers(m); i++) {
        const char *name;
        cvn_tensor *b = cvn_module_buffer_at(m, i, &name);
        if (b->dtype != CVN_F32) continue;
        bool var = strstr(name, "running_var") != NULL;
        cvn_tensor_uniform(b, r, var ? 0.5f : -0.3f, var ? 2.0f : 0.3f);
    }
    for (int i = 0; i < cvn_module_num_params(m); i++) {
        cvn_tensor *p = cvn_module_param_at(m, i, NULL);
        if (p->ndim == 1) cvn_tensor_uniform(p, r, -0.5f, 1.5f);
    }
}

static void write_raw(const char *path, const cvn_tensor *t) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(fwrite(t->data, 4, (size_t)cvn_numel(t), f) == (size_t)cvn_numel(t));
    fclose(f);
}

static void shape_text(FILE *f, const cvn_tensor *t) {
    fprintf(f, " %d", t->ndim);
    for (int d = 0; d < t->ndim; d++) fprintf(f, " %lld", (long long)t->shape[d]);
}

/* Exports m (traced at batch 1) and writes an input of batch 3 and libcvnet's output for it. */
static void write_case(const char *dir, FILE *manifest, const char *name, cvn_module *m, int c,
                       int h, int w, cvn_rng *r) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    CK_OK(cvn_onnx_export(m, 4, (int64_t[]){1, c, h, w}, path, NULL));
    cvn_tape *t = CK_NOTNULL(cvn_tape_new(CVN_CPU));
    cvn_tape_set_grad_enabled(t, false);
    cvn_module_train(m, false);
    cvn_tensor *x = CK_NOTNULL(cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){3, c, h, w}));
    CK_OK(cvn_tensor_normal(x, r, 0.0f, 1.0f));
    cvn_tensor *y = CK_NOTNULL(cvn_module_forward(m, t, x));
    snprintf(path, sizeof path, "%s/%s.in.f32", dir, name);
    write_raw(path, x);
    snprintf(path, sizeof path, "%s/%s.out.f32", dir, name);
    write_raw(path, y);
    fprintf(manifest, "%s", name);
    shape_text(manifest, x);
    shape_text(manifest, y);
    fprintf(manifest, "\n");
    cvn_tape_free(t);
}

START_TEST(models_for_onnx_runtime) {
    const char *dir = getenv("CVN_ONNX_OUT");
    if (!dir || !dir[0]) {
        printf("test_onnx: CVN_ONNX_OUT not set; models for ONNX Runtime not written\n");
        return;
    }
    mkdir(dir, 0755);
    char path[1024];
    snprintf(path, sizeof path, "%s/models.txt", dir);
    FILE *manifest = fopen(path, "w");
    ck_assert_ptr_nonnull(manifest);
    cvn_rng r;
    cvn_rng_seed(&r, 11);
    cvn_module *m = cvn_reference_cnn(&r);
    write_case(dir, manifest, "reference_cnn", m, 1, 28, 28, &r);
    cvn_module_free(m);
    static const cvn_arch archs[] = {CVN_ARCH_CNN, CVN_ARCH_RESNET, CVN_ARCH_MOBILENET,
                                     CVN_ARCH_EFFICIENTNET};
    for (int i = 0; i < 4; i++) {
        cvn_model_config c = cvn_model_defaults(archs[i], 3, 32, 32, 10);
        if (archs[i] == CVN_ARCH_CNN) {
            c.n_layers = 3, c.kernel_size = 5, c.batch_norm = true;
            c.channels[0] = 8, c.channels[1] = 16, c.channels[2] = 32;
            c.n_fc = 2, c.fc_units[0] = 64, c.fc_units[1] = 32;
        }
        if (archs[i] == CVN_ARCH_EFFICIENTNET) c.width_mult = 0.5f, c.depth_mult = 0.5f;
        m = CK_NOTNULL(cvn_model_new(archs[i], &c, &r));
        perturb(m, &r);
        write_case(dir, manifest, cvn_arch_name(archs[i]), m, 3, 32, 32, &r);
        cvn_module_free(m);
    }
    m = ops_model(&r);
    write_case(dir, manifest, "every_op", m, 3, 8, 8, &r);
    cvn_module_free(m);
    fclose(manifest);
}
END_TEST

int main(void) {
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, encoder_bytes);
    tcase_add_test(tc, decoder_roundtrip);
    tcase_add_test(tc, decoder_rejects_malformed);
    tcase_add_test(tc, reference_cnn_read_back);
    tcase_add_test(tc, every_op_maps);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, models_for_onnx_runtime);
    suite_add_tcase(s, tc);
    return run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
