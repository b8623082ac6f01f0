/* Ready-made networks: the reference CNN and the model zoo (plain CNN, ResNet-, MobileNetV3- and
 * EfficientNet-style) for small images. Composite blocks (residual, squeeze-excite) are modules
 * whose children are registered by name, so parameters get PyTorch-like dotted names. */
#include <math.h>
#include <string.h>

#include "nn/module.h"

/* Adds child to m unless an earlier step failed (then child is freed): lets a constructor chain
 * many additions and check once. */
static void put(cvn_module *m, const char *name, cvn_module *child, cvn_status *st) {
    if (*st) {
        cvn_module_free(child);
        return;
    }
    *st = cvn_module_add_child(m, name, child);
}

static cvn_module *finish(cvn_module *m, cvn_status st) {
    if (st == CVN_OK) return m;
    cvn_module_free(m);
    return NULL;
}

static cvn_module *conv(int in, int out, int k, int stride, int groups, bool bias, cvn_rng *r) {
    cvn_conv2d_params p = cvn_conv2d_defaults();
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = k / 2;
    p.groups = groups;
    return cvn_conv2d_new(in, out, k, k, &p, bias, r);
}

/* conv (no bias) + batch norm + activation (act < 0: none), as a Sequential "0", "1", "2". */
static cvn_module *conv_bn_act(int in, int out, int k, int stride, int groups, int act,
                               cvn_rng *r) {
    cvn_module *s = cvn_sequential_new();
    if (!s) return NULL;
    cvn_status st = CVN_OK;
    put(s, NULL, conv(in, out, k, stride, groups, false, r), &st);
    put(s, NULL, cvn_batchnorm2d_new(out, 0.1f, 1e-5f), &st);
    if (act >= 0) put(s, NULL, cvn_activation_new((cvn_activation)act, 0.0f), &st);
    return finish(s, st);
}

/* Channels scaled by a width multiplier and rounded to a multiple of 8 (never down by more than
 * 10 %), as MobileNet's _make_divisible. */
static int divisible(float c, int by) {
    int v = (int)(c + by / 2.0f) / by * by;
    if (v < by) v = by;
    if (v < 0.9f * c) v += by;
    return v;
}

/* ------------------------------------------------------------------ residual */

/* Children 0..n_main-1 are the main path; an optional last child is the shortcut (identity when
 * absent). out = main(x) + shortcut(x), then ReLU when relu_after (ResNet) or not (MBConv); with
 * skip false (a block that changes shape in MobileNet / EfficientNet) out = main(x). */
typedef struct {
    cvn_module base;
    int n_main;
    bool skip, relu_after;
} residual_module;

static cvn_tensor *residual_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    residual_module *r = (residual_module *)m;
    cvn_tensor *y = x;
    for (int i = 0; i < r->n_main && y; i++) y = cvn_module_forward(m->children[i], t, y);
    if (!y || !r->skip) return y;
    cvn_tensor *s =
        m->n_children > r->n_main ? cvn_module_forward(m->children[r->n_main], t, x) : x;
    if (!s) return NULL;
    cvn_tensor *sum = cvn_add(t, y, s);
    return r->relu_after && sum ? cvn_relu(t, sum) : sum;
}

static const cvn_module_vtable basic_block_vt = {.kind = "BasicBlock", .forward = residual_forward};
static const cvn_module_vtable inverted_residual_vt = {.kind = "InvertedResidual",
                                                       .forward = residual_forward};

/* ResNet's basic block: conv3x3(stride) bn relu conv3x3 bn, plus x (or a 1x1 conv + bn when the
 * shape changes), then relu. */
static cvn_module *basic_block(int in, int out, int stride, cvn_rng *r) {
    residual_module *b = (residual_module *)cvn_module_alloc(sizeof *b, &basic_block_vt);
    if (!b) return NULL;
    cvn_module *m = &b->base;
    b->skip = b->relu_after = true;
    b->n_main = 5;
    cvn_status st = CVN_OK;
    put(m, "conv1", conv(in, out, 3, stride, 1, false, r), &st);
    put(m, "bn1", cvn_batchnorm2d_new(out, 0.1f, 1e-5f), &st);
    put(m, "relu", cvn_activation_new(CVN_ACT_RELU, 0.0f), &st);
    put(m, "conv2", conv(out, out, 3, 1, 1, false, r), &st);
    put(m, "bn2", cvn_batchnorm2d_new(out, 0.1f, 1e-5f), &st);
    if (stride != 1 || in != out) {
        cvn_module *sc = cvn_sequential_new();
        cvn_status s2 = sc ? CVN_OK : CVN_ERR_NOMEM;
        if (sc) {
            put(sc, NULL, conv(in, out, 1, stride, 1, false, r), &s2);
            put(sc, NULL, cvn_batchnorm2d_new(out, 0.1f, 1e-5f), &s2);
        }
        put(m, "downsample", finish(sc, s2), &st);
    }
    return finish(m, st);
}

/* ------------------------------------------------------------------ squeeze-excite */

typedef struct {
    cvn_module base;
    cvn_activation inner, gate;
} se_module;

/* Hu et al., "Squeeze-and-Excitation Networks": x * gate(fc2(act(fc1(mean over H, W of x)))). */
static cvn_tensor *se_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    se_module *se = (se_module *)m;
    cvn_tensor *s = cvn_global_avg_pool2d(t, x);
    s = cvn_module_forward(m->children[0], t, s);
    if (s) s = cvn_activate(t, s, se->inner, 0.0f);
    s = cvn_module_forward(m->children[1], t, s);
    if (s) s = cvn_activate(t, s, se->gate, 0.0f);
    return s ? cvn_mul(t, x, s) : NULL;
}

static const cvn_module_vtable se_vt = {.kind = "SqueezeExcitation", .forward = se_forward};

static cvn_module *squeeze_excite(int channels, int squeeze, cvn_activation inner,
                                  cvn_activation gate, cvn_rng *r) {
    se_module *se = (se_module *)cvn_module_alloc(sizeof *se, &se_vt);
    if (!se) return NULL;
    se->inner = inner;
    se->gate = gate;
    cvn_status st = CVN_OK;
    put(&se->base, "fc1", conv(channels, squeeze, 1, 1, 1, true, r), &st);
    put(&se->base, "fc2", conv(squeeze, channels, 1, 1, 1, true, r), &st);
    return finish(&se->base, st);
}

/* MobileNetV2/V3's inverted residual and EfficientNet's MBConv: 1x1 expansion (when expanded
 * differs from in), depthwise kxk conv with the stride, optional squeeze-excite, 1x1 projection
 * without activation; the input is added back when the shape is kept. */
static cvn_module *inverted_residual(int in, int expanded, int out, int k, int stride,
                                     cvn_activation act, int se_squeeze, cvn_activation se_inner,
                                     cvn_activation se_gate, cvn_rng *r) {
    residual_module *b = (residual_module *)cvn_module_alloc(sizeof *b, &inverted_residual_vt);
    if (!b) return NULL;
    cvn_module *m = &b->base;
    b->skip = stride == 1 && in == out;
    cvn_status st = CVN_OK;
    if (expanded != in) put(m, "expand", conv_bn_act(in, expanded, 1, 1, 1, (int)act, r), &st);
    put(m, "depthwise", conv_bn_act(expanded, expanded, k, stride, expanded, (int)act, r), &st);
    if (se_squeeze > 0)
        put(m, "se", squeeze_excite(expanded, se_squeeze, se_inner, se_gate, r), &st);
    put(m, "project", conv_bn_act(expanded, out, 1, 1, 1, -1, r), &st);
    b->n_main = m->n_children;
    return finish(m, st);
}

/* ------------------------------------------------------------------ networks */

/* Global average pool, flatten, dropout (when p > 0) and the Linear head. */
static void classifier(cvn_module *m, int features, float dropout, int classes, cvn_rng *r,
                       cvn_status *st) {
    put(m, "pool", cvn_adaptive_avg_pool2d_new(1, 1), st);
    put(m, "flatten", cvn_flatten_new(1), st);
    if (dropout > 0.0f) put(m, "dropout", cvn_dropout_new(dropout, cvn_rng_next(r)), st);
    put(m, "head", cvn_linear_new(features, classes, true, r), st);
}

static cvn_module *plain_cnn(const cvn_model_config *c, cvn_rng *r) {
    cvn_module *m = cvn_sequential_new();
    if (!m) return NULL;
    cvn_status st = CVN_OK;
    int ch = c->in_channels, h = c->height, w = c->width;
    cvn_module *features = cvn_sequential_new();
    for (int i = 0; i < c->n_layers && features; i++) {
        put(features, NULL, conv(ch, c->channels[i], c->kernel_size, 1, 1, !c->batch_norm, r), &st);
        if (c->batch_norm)
            put(features, NULL, cvn_batchnorm2d_new(c->channels[i], 0.1f, 1e-5f), &st);
        put(features, NULL, cvn_activation_new(CVN_ACT_RELU, 0.0f), &st);
        if (h >= 2 && w >= 2) {
            put(features, NULL, cvn_max_pool2d_new(2, 2, 0), &st);
            h /= 2, w /= 2;
        }
        if (c->conv_dropout[i] > 0.0f)
            put(features, NULL, cvn_dropout_new(c->conv_dropout[i], cvn_rng_next(r)), &st);
        ch = c->channels[i];
    }
    put(m, "features", features, &st);
    put(m, "flatten", cvn_flatten_new(1), &st);
    int in = ch * h * w;
    cvn_module *fc = cvn_sequential_new();
    for (int i = 0; i < c->n_fc && fc; i++) {
        put(fc, NULL, cvn_linear_new(in, c->fc_units[i], true, r), &st);
        put(fc, NULL, cvn_activation_new(CVN_ACT_RELU, 0.0f), &st);
        if (c->fc_dropout[i] > 0.0f)
            put(fc, NULL, cvn_dropout_new(c->fc_dropout[i], cvn_rng_next(r)), &st);
        in = c->fc_units[i];
    }
    if (c->n_fc)
        put(m, "fc", fc, &st);
    else
        cvn_module_free(fc);
    put(m, "head", cvn_linear_new(in, c->num_classes, true, r), &st);
    return finish(m, st);
}

/* ResNet for small images (He et al. 2016, the CIFAR variant): a 3x3 stem, three stages of basic
 * blocks at 16, 32, 64 channels (times width_mult), the last two starting with stride 2; three
 * blocks per stage (times depth_mult) make ResNet-20. */
static cvn_module *resnet(const cvn_model_config *c, cvn_rng *r) {
    cvn_module *m = cvn_sequential_new();
    if (!m) return NULL;
    cvn_status st = CVN_OK;
    int blocks = (int)ceilf(3.0f * c->depth_mult), ch = divisible(16.0f * c->width_mult, 8);
    put(m, "stem", conv_bn_act(c->in_channels, ch, 3, 1, 1, CVN_ACT_RELU, r), &st);
    int in = ch;
    for (int s = 0; s < 3; s++) {
        int out = ch << s;
        cvn_module *stage = cvn_sequential_new();
        for (int b = 0; b < blocks && stage; b++) {
            put(stage, NULL, basic_block(in, out, b == 0 && s > 0 ? 2 : 1, r), &st);
            in = out;
        }
        char name[8] = "layer1";
        name[5] = (char)('1' + s);
        put(m, name, stage, &st);
    }
    classifier(m, in, c->dropout, c->num_classes, r, &st);
    return finish(m, st);
}

/* MobileNetV3-Small (Howard et al. 2019, table 2) with the stem and first block at stride 1 for
 * small images: output stride 8 instead of 32. */
static cvn_module *mobilenet(const cvn_model_config *c, cvn_rng *r) {
    static const struct {
        int k, exp, out;
        bool se, hs;
        int stride;
    } spec[] = {
        {3, 16, 16, true, false, 1}, {3, 72, 24, false, false, 2}, {3, 88, 24, false, false, 1},
        {5, 96, 40, true, true, 2},  {5, 240, 40, true, true, 1},  {5, 240, 40, true, true, 1},
        {5, 120, 48, true, true, 1}, {5, 144, 48, true, true, 1},  {5, 288, 96, true, true, 2},
        {5, 576, 96, true, true, 1}, {5, 576, 96, true, true, 1},
    };
    cvn_module *m = cvn_sequential_new();
    if (!m) return NULL;
    cvn_status st = CVN_OK;
    float wm = c->width_mult;
    int in = divisible(16 * wm, 8);
    put(m, "stem", conv_bn_act(c->in_channels, in, 3, 1, 1, CVN_ACT_HARDSWISH, r), &st);
    cvn_module *blocks = cvn_sequential_new();
    for (size_t i = 0; i < sizeof spec / sizeof spec[0] && blocks; i++) {
        int exp = divisible(spec[i].exp * wm, 8), out = divisible(spec[i].out * wm, 8);
        cvn_activation act = spec[i].hs ? CVN_ACT_HARDSWISH : CVN_ACT_RELU;
        put(blocks, NULL,
            inverted_residual(in, exp, out, spec[i].k, spec[i].stride, act,
                              spec[i].se ? divisible(exp / 4.0f, 8) : 0, CVN_ACT_RELU,
                              CVN_ACT_HARDSIGMOID, r),
            &st);
        in = out;
    }
    put(m, "features", blocks, &st);
    int last = divisible(576 * wm, 8), hidden = divisible(1024 * wm, 8);
    put(m, "last", conv_bn_act(in, last, 1, 1, 1, CVN_ACT_HARDSWISH, r), &st);
    put(m, "pool", cvn_adaptive_avg_pool2d_new(1, 1), &st);
    put(m, "flatten", cvn_flatten_new(1), &st);
    put(m, "fc", cvn_linear_new(last, hidden, true, r), &st);
    put(m, "fc_act", cvn_activation_new(CVN_ACT_HARDSWISH, 0.0f), &st);
    if (c->dropout > 0.0f) put(m, "dropout", cvn_dropout_new(c->dropout, cvn_rng_next(r)), &st);
    put(m, "head", cvn_linear_new(hidden, c->num_classes, true, r), &st);
    return finish(m, st);
}

/* EfficientNet-B0's first five stages (Tan and Le 2019, table 1), stem at stride 1 for small
 * images; width_mult scales channels, depth_mult the repeats (rounded up), as the compound
 * scaling does. SE squeezes to a quarter of the block's input channels, SiLU inside, sigmoid
 * gate. */
static cvn_module *efficientnet(const cvn_model_config *c, cvn_rng *r) {
    static const struct {
        int expand, k, stride, out, repeats;
    } spec[] = {
        {1, 3, 1, 16, 1}, {6, 3, 2, 24, 2}, {6, 5, 2, 40, 2}, {6, 3, 2, 80, 3}, {6, 5, 1, 112, 3},
    };
    cvn_module *m = cvn_sequential_new();
    if (!m) return NULL;
    cvn_status st = CVN_OK;
    float wm = c->width_mult;
    int in = divisible(32 * wm, 8);
    put(m, "stem", conv_bn_act(c->in_channels, in, 3, 1, 1, CVN_ACT_SILU, r), &st);
    cvn_module *blocks = cvn_sequential_new();
    for (size_t s = 0; s < sizeof spec / sizeof spec[0] && blocks; s++) {
        int out = divisible(spec[s].out * wm, 8);
        int repeats = (int)ceilf(spec[s].repeats * c->depth_mult);
        for (int b = 0; b < repeats; b++) {
            int squeeze = in / 4 > 1 ? in / 4 : 1;
            put(blocks, NULL,
                inverted_residual(in, in * spec[s].expand, out, spec[s].k,
                                  b == 0 ? spec[s].stride : 1, CVN_ACT_SILU, squeeze, CVN_ACT_SILU,
                                  CVN_ACT_SIGMOID, r),
                &st);
            in = out;
        }
    }
    put(m, "features", blocks, &st);
    int last = divisible(640 * wm, 8);
    put(m, "last", conv_bn_act(in, last, 1, 1, 1, CVN_ACT_SILU, r), &st);
    classifier(m, last, c->dropout, c->num_classes, r, &st);
    return finish(m, st);
}

cvn_model_config cvn_model_defaults(cvn_arch arch, int c, int h, int w, int num_classes) {
    cvn_model_config cfg = {.in_channels = c,
                            .height = h,
                            .width = w,
                            .num_classes = num_classes,
                            .width_mult = 1.0f,
                            .depth_mult = 1.0f};
    switch (arch) {
    case CVN_ARCH_CNN: /* the reference CNN */
        cfg.n_layers = 2;
        cfg.kernel_size = 3;
        cfg.channels[0] = 32;
        cfg.channels[1] = 64;
        cfg.n_fc = 1;
        cfg.fc_units[0] = 128;
        cfg.fc_dropout[0] = 0.25f;
        break;
    case CVN_ARCH_RESNET:
        break;
    case CVN_ARCH_MOBILENET:
        cfg.dropout = 0.2f;
        break;
    case CVN_ARCH_EFFICIENTNET:
        cfg.dropout = 0.2f;
        break;
    }
    return cfg;
}

static bool config_ok(cvn_arch arch, const cvn_model_config *c) {
    const char *bad = NULL;
    if (c->in_channels < 1 || c->height < 1 || c->width < 1 || c->num_classes < 1)
        bad = "input channels, height, width and classes must be >= 1";
    else if (c->height > 4096 || c->width > 4096 || c->in_channels > 4096)
        bad = "input larger than 4096";
    else if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        bad = "dropout must be in [0, 1)";
    else if (arch != CVN_ARCH_CNN && !(c->width_mult >= 0.1f && c->width_mult <= 8.0f &&
                                       c->depth_mult >= 0.1f && c->depth_mult <= 8.0f))
        bad = "width_mult and depth_mult must be in [0.1, 8]";
    else if (arch == CVN_ARCH_CNN) {
        if (c->n_layers < 0 || c->n_layers > CVN_CNN_MAX_LAYERS || c->n_fc < 0 ||
            c->n_fc > CVN_CNN_MAX_LAYERS)
            bad = "n_layers and n_fc must be in [0, 8]";
        else if (c->kernel_size < 1 || c->kernel_size % 2 == 0 || c->kernel_size > 15)
            bad = "kernel_size must be odd, 1 to 15";
        for (int i = 0; !bad && i < c->n_layers; i++)
            if (c->channels[i] < 1 || c->channels[i] > 4096 ||
                !(c->conv_dropout[i] >= 0.0f && c->conv_dropout[i] < 1.0f))
                bad = "a conv layer has channels outside [1, 4096] or dropout outside [0, 1)";
        for (int i = 0; !bad && i < c->n_fc; i++)
            if (c->fc_units[i] < 1 || c->fc_units[i] > 65536 ||
                !(c->fc_dropout[i] >= 0.0f && c->fc_dropout[i] < 1.0f))
                bad = "a fully-connected layer has units outside [1, 65536] or dropout outside "
                      "[0, 1)";
    }
    if (bad) cvn_set_error(CVN_ERR_ARG, "model_new (%s): %s", cvn_arch_name(arch), bad);
    return !bad;
}

cvn_module *cvn_model_new(cvn_arch arch, const cvn_model_config *config, cvn_rng *r) {
    if (!config || !r) {
        cvn_set_error(CVN_ERR_ARG, "model_new: config or rng is NULL");
        return NULL;
    }
    if ((unsigned)arch > CVN_ARCH_EFFICIENTNET) {
        cvn_set_error(CVN_ERR_ARG, "model_new: unknown architecture %d", (int)arch);
        return NULL;
    }
    if (!config_ok(arch, config)) return NULL;
    switch (arch) {
    case CVN_ARCH_CNN:
        return plain_cnn(config, r);
    case CVN_ARCH_RESNET:
        return resnet(config, r);
    case CVN_ARCH_MOBILENET:
        return mobilenet(config, r);
    case CVN_ARCH_EFFICIENTNET:
        return efficientnet(config, r);
    }
    return NULL;
}

static const char *const arch_names[] = {"cnn", "resnet", "mobilenet", "efficientnet"};

const char *cvn_arch_name(cvn_arch arch) {
    return (unsigned)arch <= CVN_ARCH_EFFICIENTNET ? arch_names[arch] : "unknown";
}

cvn_status cvn_arch_parse(const char *name, cvn_arch *arch) {
    for (int i = 0; name && i <= (int)CVN_ARCH_EFFICIENTNET; i++)
        if (!strcmp(name, arch_names[i])) {
            *arch = (cvn_arch)i;
            return CVN_OK;
        }
    return cvn_set_error(CVN_ERR_ARG,
                         "unknown architecture \"%s\" (cnn, resnet, mobilenet, efficientnet)",
                         name ? name : "(null)");
}

cvn_status cvn_model_replace_head(cvn_module *model, int num_classes, cvn_rng *r) {
    int i = model ? model->n_children - 1 : -1;
    if (i < 0 || strcmp(model->child_names[i], "head") ||
        strcmp(cvn_module_kind(model->children[i]), "Linear"))
        return cvn_set_error(CVN_ERR_ARG,
                             "model_replace_head: the model has no Linear child named \"head\"");
    if (num_classes < 1 || !r)
        return cvn_set_error(CVN_ERR_ARG, "model_replace_head: %d classes%s", num_classes,
                             r ? "" : " with a NULL rng");
    cvn_tensor *w = model->children[i]->params[0];
    cvn_module *head = cvn_linear_new((int)w->shape[1], num_classes, true, r);
    if (!head) return cvn_last_status();
    cvn_status st = cvn_module_to(head, w->device);
    if (st) {
        cvn_module_free(head);
        return st;
    }
    cvn_module_replace_child(model, i, head);
    return CVN_OK;
}

int cvn_module_freeze(cvn_module *m, const char *prefix, bool frozen) {
    if (!m || !prefix) {
        cvn_set_error(CVN_ERR_ARG, "module_freeze: module or prefix is NULL");
        return -1;
    }
    int changed = 0;
    size_t len = strlen(prefix);
    for (int i = 0, n = cvn_module_num_params(m); i < n; i++) {
        const char *name;
        cvn_tensor *p = cvn_module_param_at(m, i, &name);
        if (strncmp(name, prefix, len)) continue;
        cvn_tensor_set_requires_grad(p, !frozen);
        changed++;
    }
    return changed;
}

cvn_module *cvn_reference_cnn(cvn_rng *r) {
    if (!r) {
        cvn_set_error(CVN_ERR_ARG, "reference_cnn: rng is NULL");
        return NULL;
    }
    cvn_conv2d_params pad1 = cvn_conv2d_defaults();
    pad1.pad_h = pad1.pad_w = 1;
    cvn_module *m = cvn_sequential_new();
    if (!m) return NULL;
    cvn_module *layers[] = {
        cvn_conv2d_new(1, 32, 3, 3, &pad1, true, r),
        cvn_activation_new(CVN_ACT_RELU, 0),
        cvn_max_pool2d_new(2, 2, 0),
        cvn_conv2d_new(32, 64, 3, 3, &pad1, true, r),
        cvn_activation_new(CVN_ACT_RELU, 0),
        cvn_max_pool2d_new(2, 2, 0),
        cvn_flatten_new(1),
        cvn_linear_new(3136, 128, true, r),
        cvn_activation_new(CVN_ACT_RELU, 0),
        cvn_dropout_new(0.25f, cvn_rng_next(r)),
        cvn_linear_new(128, 10, true, r),
    };
    cvn_status st = CVN_OK;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) put(m, NULL, layers[i], &st);
    return finish(m, st);
}
