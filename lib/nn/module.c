/* The module base: ownership, train / eval, named parameter listings. */
#include <stdio.h>
#include <string.h>

#include "nn/module.h"

cvn_module *cvn_module_alloc(size_t size, const cvn_module_vtable *vt) {
    cvn_module *m = cvn_calloc(1, size);
    if (m) {
        m->vt = vt;
        m->training = true;
    }
    return m;
}

static void drop_listing(cvn_module *m) {
    cvn_free(m->flat_params);
    cvn_free(m->flat_buffers);
    cvn_free(m->flat_names);
    m->flat_params = m->flat_buffers = NULL;
    m->flat_names = NULL;
    m->n_flat_params = m->n_flat_buffers = 0;
}

cvn_status cvn_module_own(cvn_module *m, const char *name, cvn_tensor *x, bool is_param) {
    if (!x) return cvn_last_status();
    int *n = is_param ? &m->n_params : &m->n_buffers;
    if (*n == CVN_MODULE_MAX_OWN) {
        cvn_tensor_free(x);
        return cvn_set_error(CVN_ERR_STATE, "module: too many tensors in one module");
    }
    (is_param ? m->params : m->buffers)[*n] = x;
    (is_param ? m->param_names : m->buffer_names)[*n] = name;
    (*n)++;
    if (is_param) cvn_tensor_set_requires_grad(x, true);
    drop_listing(m);
    return CVN_OK;
}

void cvn_module_free(cvn_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_children; i++) {
        cvn_module_free(m->children[i]);
        cvn_free(m->child_names[i]);
    }
    cvn_free(m->children);
    cvn_free(m->child_names);
    for (int i = 0; i < m->n_params; i++) cvn_tensor_free(m->params[i]);
    for (int i = 0; i < m->n_buffers; i++) cvn_tensor_free(m->buffers[i]);
    drop_listing(m);
    cvn_free(m);
}

cvn_tensor *cvn_module_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    if (!m || !t) {
        cvn_set_error(CVN_ERR_ARG, "module_forward: module or tape is NULL");
        return NULL;
    }
    if (!x) return NULL; /* keeps the error of whatever made x */
    if (!t->on_module) return m->vt->forward(m, t, x);
    t->on_module(t->on_module_ctx, m, NULL);
    cvn_tensor *y = m->vt->forward(m, t, x);
    if (y) t->on_module(t->on_module_ctx, m, y);
    return y;
}

void cvn_module_train(cvn_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++) cvn_module_train(m->children[i], training);
}

bool cvn_module_is_training(const cvn_module *m) {
    return m && m->training;
}
const char *cvn_module_kind(const cvn_module *m) {
    return m ? m->vt->kind : "";
}

/* Walks the tree in registration order, calling visit(prefix, local name, tensor) for each owned
 * tensor of the wanted kind. prefix is the dotted path of the module ("" at the root). */
typedef void (*visit_fn)(void *ctx, const char *prefix, const char *name, cvn_tensor *x);

static void walk(const cvn_module *m, bool params, char *prefix, size_t len, size_t cap,
                 visit_fn visit, void *ctx) {
    int n = params ? m->n_params : m->n_buffers;
    for (int i = 0; i < n; i++)
        visit(ctx, prefix, params ? m->param_names[i] : m->buffer_names[i],
              params ? m->params[i] : m->buffers[i]);
    for (int c = 0; c < m->n_children; c++) {
        int w = snprintf(prefix + len, cap - len, "%s%s", len ? "." : "", m->child_names[c]);
        if (w < 0 || (size_t)w >= cap - len) continue; /* absurdly deep: skipped */
        walk(m->children[c], params, prefix, len + (size_t)w, cap, visit, ctx);
        prefix[len] = '\0';
    }
}

typedef struct {
    cvn_named_tensor *out;
    char *names;
    size_t used; /* bytes of names written (or needed, when names is NULL) */
    int count;
} listing;

static void visit_listing(void *ctx, const char *prefix, const char *name, cvn_tensor *x) {
    listing *l = ctx;
    size_t need = strlen(prefix) + (prefix[0] ? 1 : 0) + strlen(name) + 1;
    if (l->names) {
        char *dst = l->names + l->used;
        snprintf(dst, need, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        l->out[l->count].name = dst;
        l->out[l->count].tensor = x;
    }
    l->used += need;
    l->count++;
}

static bool build_listing(cvn_module *m) {
    if (m->flat_names) return true;
    char prefix[512] = "";
    listing p = {0}, b = {0};
    walk(m, true, prefix, 0, sizeof prefix, visit_listing, &p);
    walk(m, false, prefix, 0, sizeof prefix, visit_listing, &b);
    m->flat_names = cvn_malloc(p.used + b.used + 1);
    m->flat_params = cvn_calloc((size_t)p.count + 1, sizeof(cvn_named_tensor));
    m->flat_buffers = cvn_calloc((size_t)b.count + 1, sizeof(cvn_named_tensor));
    if (!m->flat_names || !m->flat_params || !m->flat_buffers) {
        drop_listing(m);
        return false;
    }
    listing p2 = {m->flat_params, m->flat_names, 0, 0};
    walk(m, true, prefix, 0, sizeof prefix, visit_listing, &p2);
    listing b2 = {m->flat_buffers, m->flat_names + p.used, 0, 0};
    walk(m, false, prefix, 0, sizeof prefix, visit_listing, &b2);
    m->n_flat_params = p.count;
    m->n_flat_buffers = b.count;
    return true;
}

int cvn_module_num_params(const cvn_module *m) {
    if (!m || !build_listing((cvn_module *)m)) return 0;
    return m->n_flat_params;
}

int cvn_module_num_buffers(const cvn_module *m) {
    if (!m || !build_listing((cvn_module *)m)) return 0;
    return m->n_flat_buffers;
}

static cvn_tensor *listing_at(const cvn_named_tensor *l, int n, int i, const char **name,
                              const char *what) {
    if (i < 0 || i >= n) {
        cvn_set_error(CVN_ERR_ARG, "module_%s_at: index %d is out of range (%d)", what, i, n);
        return NULL;
    }
    if (name) *name = l[i].name;
    return l[i].tensor;
}

cvn_tensor *cvn_module_param_at(const cvn_module *m, int i, const char **name) {
    int n = cvn_module_num_params(m);
    return listing_at(m ? m->flat_params : NULL, n, i, name, "param");
}

cvn_tensor *cvn_module_buffer_at(const cvn_module *m, int i, const char **name) {
    int n = cvn_module_num_buffers(m);
    return listing_at(m ? m->flat_buffers : NULL, n, i, name, "buffer");
}

cvn_tensor *cvn_module_find(const cvn_module *m, const char *name) {
    if (!m || !name || !build_listing((cvn_module *)m)) return NULL;
    for (int i = 0; i < m->n_flat_params; i++)
        if (!strcmp(m->flat_params[i].name, name)) return m->flat_params[i].tensor;
    for (int i = 0; i < m->n_flat_buffers; i++)
        if (!strcmp(m->flat_buffers[i].name, name)) return m->flat_buffers[i].tensor;
    return NULL;
}

int64_t cvn_module_param_count(const cvn_module *m) {
    int64_t total = 0;
    for (int i = 0, n = cvn_module_num_params(m); i < n; i++)
        total += cvn_numel(m->flat_params[i].tensor);
    return total;
}

void cvn_module_zero_grad(cvn_module *m) {
    for (int i = 0, n = cvn_module_num_params(m); i < n; i++)
        cvn_tensor_zero_grad(m->flat_params[i].tensor);
}

cvn_status cvn_module_to(cvn_module *m, cvn_device device) {
    if (!m) return cvn_set_error(CVN_ERR_ARG, "module_to: module is NULL");
    if (!cvn_backend_get(device)) return cvn_last_status();
    for (int i = 0, n = cvn_module_num_params(m); i < n; i++) {
        cvn_status s = cvn_tensor_move(m->flat_params[i].tensor, device);
        if (s) return s;
    }
    for (int i = 0, n = cvn_module_num_buffers(m); i < n; i++) {
        cvn_status s = cvn_tensor_move(m->flat_buffers[i].tensor, device);
        if (s) return s;
    }
    return CVN_OK;
}

/* ------------------------------------------------------------------ sequential */

/* Children in order; a child that can fuse with the ones after it (a convolution with its
 * activation and pooling, at inference) runs them as one op. Not while a hook (the ONNX exporter,
 * the summary) watches each module. */
static cvn_tensor *sequential_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x) {
    for (int i = 0; i < m->n_children && x; i++) {
        cvn_module *c = m->children[i];
        int used = 0;
        cvn_tensor *y = NULL;
        if (c->vt->fuse && !t->on_module)
            y = c->vt->fuse(c, t, x, m->children + i + 1, m->n_children - i - 1, &used);
        x = used ? y : cvn_module_forward(c, t, x);
        i += used;
    }
    return x;
}

static const cvn_module_vtable sequential_vt = {.kind = "Sequential",
                                                .forward = sequential_forward};

cvn_module *cvn_sequential_new(void) {
    return cvn_module_alloc(sizeof(cvn_module), &sequential_vt);
}

cvn_status cvn_module_add_child(cvn_module *m, const char *name, cvn_module *child) {
    if (!child) return cvn_last_status() ? cvn_last_status() : CVN_ERR_ARG;
    char index[16];
    if (!name) snprintf(index, sizeof index, "%d", m->n_children);
    if (name && (!name[0] || strchr(name, '.'))) {
        cvn_module_free(child);
        return cvn_set_error(CVN_ERR_ARG,
                             "module: child name \"%s\" must be non-empty and have no dot", name);
    }
    if (m->n_children == m->cap_children) {
        int cap = m->cap_children ? m->cap_children * 2 : 8;
        cvn_module **c = cvn_malloc((size_t)cap * sizeof *c);
        char **nm = cvn_malloc((size_t)cap * sizeof *nm);
        if (!c || !nm) {
            cvn_free(c), cvn_free(nm);
            cvn_module_free(child);
            return CVN_ERR_NOMEM;
        }
        if (m->n_children) {
            memcpy(c, m->children, (size_t)m->n_children * sizeof *c);
            memcpy(nm, m->child_names, (size_t)m->n_children * sizeof *nm);
        }
        cvn_free(m->children), cvn_free(m->child_names);
        m->children = c;
        m->child_names = nm;
        m->cap_children = cap;
    }
    char *copy = cvn_strdup(name ? name : index);
    if (!copy) {
        cvn_module_free(child);
        return CVN_ERR_NOMEM;
    }
    child->training = m->training;
    m->child_names[m->n_children] = copy;
    m->children[m->n_children++] = child;
    drop_listing(m);
    return CVN_OK;
}

void cvn_module_replace_child(cvn_module *m, int i, cvn_module *child) {
    cvn_module_free(m->children[i]);
    child->training = m->training;
    m->children[i] = child;
    drop_listing(m);
}

const char *cvn_module_child_name(const cvn_module *parent, const cvn_module *child) {
    for (int i = 0; parent && i < parent->n_children; i++)
        if (parent->children[i] == child) return parent->child_names[i];
    return NULL;
}

void cvn_module_scope_name(char *out, size_t size, const char *parent_name,
                           const cvn_module *parent, const cvn_module *child) {
    const char *local = cvn_module_child_name(parent, child);
    int len =
        snprintf(out, size, "%s%s%s", parent_name, parent_name[0] ? "." : "", local ? local : "?");
    if ((len < 0 || (size_t)len >= size) && size >= 4) strcpy(out + size - 4, "...");
}

cvn_status cvn_sequential_add_named(cvn_module *seq, const char *name, cvn_module *child) {
    if (!seq || seq->vt != &sequential_vt) {
        cvn_module_free(child);
        return cvn_set_error(CVN_ERR_ARG, "sequential_add: not a Sequential module");
    }
    return cvn_module_add_child(seq, name, child);
}

cvn_status cvn_sequential_add(cvn_module *seq, cvn_module *child) {
    return cvn_sequential_add_named(seq, NULL, child);
}

int cvn_sequential_len(const cvn_module *seq) {
    return seq && seq->vt == &sequential_vt ? seq->n_children : 0;
}

cvn_module *cvn_sequential_at(const cvn_module *seq, int i) {
    if (!seq || seq->vt != &sequential_vt || i < 0 || i >= seq->n_children) {
        cvn_set_error(CVN_ERR_ARG, "sequential_at: index %d is out of range", i);
        return NULL;
    }
    return seq->children[i];
}
