/* A model summary like torchinfo's: one forward of a single image, watched module by module. */
#include <string.h>

#include "nn/module.h"

#define MAX_DEPTH 32

typedef struct {
    const cvn_module *m;
    char name[160];
    int depth;
    int64_t shape[CVN_MAX_DIMS];
    int ndim;
    int64_t params, flops;
    bool leaf;
} row;

typedef struct {
    row *rows;
    int n, cap;
    int stack[MAX_DEPTH]; /* row index of each module being run */
    int depth;
    bool failed;
} watcher;

static int64_t subtree_params(const cvn_module *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += cvn_numel(m->params[i]);
    for (int i = 0; i < m->n_children; i++) n += subtree_params(m->children[i]);
    return n;
}

/* Multiply-adds times two of the layers that do most of the work. */
static int64_t leaf_flops(const cvn_module *m, const cvn_tensor *out) {
    const char *kind = cvn_module_kind(m);
    if (!strcmp(kind, "Conv2d") && out->ndim == 4)
        return 2 * cvn_numel(m->params[0]) * out->shape[2] * out->shape[3];
    if (!strcmp(kind, "Linear")) return 2 * cvn_numel(m->params[0]);
    return 0;
}

static void watch(void *ctx, cvn_module *m, cvn_tensor *out) {
    watcher *w = ctx;
    if (w->failed) return;
    if (!out) { /* entering m */
        if (!cvn_grow_array((void **)&w->rows, &w->cap, w->n + 1, sizeof *w->rows)) {
            w->failed = true;
            return;
        }
        row *r = &w->rows[w->n];
        *r = (row){.m = m, .depth = w->depth, .leaf = m->n_children == 0};
        if (w->depth > 0) {
            const row *parent = &w->rows[w->stack[w->depth - 1]];
            cvn_module_scope_name(r->name, sizeof r->name, parent->name, parent->m, m);
        }
        if (w->depth == MAX_DEPTH) {
            w->failed = true;
            return;
        }
        w->stack[w->depth++] = w->n++;
        return;
    }
    row *r = &w->rows[w->stack[--w->depth]];
    r->ndim = out->ndim;
    memcpy(r->shape, out->shape, sizeof r->shape);
    r->params = subtree_params(m);
    r->flops = r->leaf ? leaf_flops(m, out) : 0;
}

static void format_count(char *buf, size_t size, int64_t n) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)n), o = 0;
    for (int i = 0; i < len && o + 2 < (int)size; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void write_table(cvn_strbuf *b, const watcher *w, const cvn_model_stats *st) {
    const char *rule = "==========================================================================="
                       "=====================\n";
    cvn_strbuf_printf(b, "%s%-52s %-24s %14s\n%s", rule, "Layer (type)", "Output shape", "Param #",
                      rule);
    for (int i = 0; i < w->n; i++) {
        const row *r = &w->rows[i];
        char label[200], shape[64] = "[", count[32];
        snprintf(label, sizeof label, "%*s%s%s%s", 2 * r->depth, "", r->name[0] ? r->name : "",
                 r->name[0] ? ": " : "", cvn_module_kind(r->m));
        for (int d = 0; d < r->ndim; d++) {
            size_t len = strlen(shape);
            snprintf(shape + len, sizeof shape - len, "%s%lld", d ? ", " : "",
                     (long long)r->shape[d]);
        }
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        if (r->params || r->leaf)
            format_count(count, sizeof count, r->params);
        else
            strcpy(count, "--");
        cvn_strbuf_printf(b, "%-52.52s %-24s %14s\n", label, shape, count);
    }
    char p[32], tp[32], f[32];
    format_count(p, sizeof p, st->params);
    format_count(tp, sizeof tp, st->trainable_params);
    format_count(f, sizeof f, st->flops);
    cvn_strbuf_printf(b,
                      "%sTotal params: %s\nTrainable params: %s\nNon-trainable params: %lld\n"
                      "FLOPs per image (forward): %s (%.2f M)\n"
                      "Activations per image: %.2f MB\n%s",
                      rule, p, tp, (long long)(st->params - st->trainable_params), f,
                      (double)st->flops / 1e6, (double)st->output_elems * 4.0 / 1e6, rule);
}

cvn_status cvn_model_summary(cvn_module *model, int c, int h, int w, char **text,
                             cvn_model_stats *stats) {
    if (text) *text = NULL;
    if (!model || c < 1 || h < 1 || w < 1)
        return cvn_set_error(CVN_ERR_ARG, "model_summary: model is NULL or input %dx%dx%d", c, h,
                             w);
    cvn_tensor *p0 = cvn_module_num_params(model) ? cvn_module_param_at(model, 0, NULL) : NULL;
    cvn_device device = p0 ? p0->device : CVN_CPU;
    cvn_tape *t = cvn_tape_new(device);
    if (!t) return cvn_last_status();
    watcher wt = {0};
    cvn_status st = CVN_OK;
    bool was_training = cvn_module_is_training(model);
    cvn_module_train(model, false);
    cvn_tensor *x = cvn_tape_tensor(t, CVN_F32, 4, (int64_t[]){1, c, h, w});
    if (!x || cvn_tensor_fill(x, 0.0f)) st = cvn_last_status();
    if (!st) {
        t->on_module = watch;
        t->on_module_ctx = &wt;
        bool grad = cvn_tape_set_grad_enabled(t, false);
        if (!cvn_module_forward(model, t, x)) st = cvn_last_status();
        cvn_tape_set_grad_enabled(t, grad);
        t->on_module = NULL;
        if (!st && wt.failed) st = cvn_set_error(CVN_ERR_NOMEM, "model_summary: out of memory");
    }
    cvn_module_train(model, was_training);
    cvn_model_stats s = {0};
    for (int i = 0; !st && i < cvn_module_num_params(model); i++) {
        cvn_tensor *p = cvn_module_param_at(model, i, NULL);
        s.params += cvn_numel(p);
        if (p->requires_grad) s.trainable_params += cvn_numel(p);
    }
    for (int i = 0; !st && i < wt.n; i++) {
        s.flops += wt.rows[i].flops;
        if (wt.rows[i].leaf) {
            int64_t e = 1;
            for (int d = 1; d < wt.rows[i].ndim; d++) e *= wt.rows[i].shape[d];
            s.output_elems += e;
        }
    }
    if (!st && stats) *stats = s;
    if (!st && text) {
        cvn_strbuf b = {0};
        write_table(&b, &wt, &s);
        *text = cvn_strbuf_take(&b);
        if (!*text) st = cvn_last_status();
    }
    cvn_free(wt.rows);
    cvn_tape_free(t);
    return st;
}
