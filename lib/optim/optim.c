/* Optimizers: parameter groups, contiguous state, and the step that hands each parameter to the
 * backend's fused update kernel. The rules (kernels/cpu/simd_kernels.c, k_optim_update) are
 * torch.optim's:
 *   SGD      g += wd w; buf = g (first step) or momentum buf + (1 - dampening) g;
 *            g = nesterov ? g + momentum buf : buf; w -= lr g
 *   Adam     g += wd w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 (amsgrad: vmax = max(vmax,
 * v)); w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) AdamW    w *= 1 - lr wd, then
 * Adam without the L2 term RMSprop  g += wd w; sq = alpha sq + (1 - alpha) g^2; centered: ga =
 * alpha ga + (1 - alpha) g, avg = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps; momentum: buf =
 * momentum buf + g / avg, w -= lr buf; else w -= lr g / avg Rprop    step *= eta+ where g prev > 0,
 * eta- where < 0 (and g = 0 there), clamped to [step_min, step_max]; w -= sign(g) step; prev = g */
#include <math.h>
#include <string.h>

#include "core/core.h"

#define MAX_STATE 3

typedef struct {
    float lr, weight_decay;
    int first, count; /* params [first, first + count) */
} optim_group;

struct cvn_optim {
    cvn_optim_config cfg;
    cvn_device device;
    const cvn_backend *be;
    optim_group *groups;
    int n_groups;
    cvn_tensor **params;
    int64_t *offsets; /* of each parameter in the state buffers */
    int n_params, cap_params;
    int64_t total; /* elements over all parameters */
    cvn_tensor *state[MAX_STATE];
    int n_state;
    int64_t steps;
};

cvn_optim_config cvn_optim_defaults(cvn_optimizer kind) {
    cvn_optim_config c = {.kind = kind,
                          .lr = 0.01f,
                          .beta1 = 0.9f,
                          .beta2 = 0.999f,
                          .eps = 1e-8f,
                          .alpha = 0.99f,
                          .eta_minus = 0.5f,
                          .eta_plus = 1.2f,
                          .step_min = 1e-6f,
                          .step_max = 50.0f};
    if (kind == CVN_ADAM || kind == CVN_ADAMW) c.lr = 1e-3f;
    if (kind == CVN_ADAMW) c.weight_decay = 1e-2f;
    return c;
}

static const char *const state_names[][MAX_STATE] = {
    [CVN_SGD] = {"momentum_buffer"},
    [CVN_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [CVN_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [CVN_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [CVN_RPROP] = {"prev", "step_size"},
};

static int state_count(const cvn_optim_config *c) {
    switch (c->kind) {
    case CVN_SGD:
        return c->momentum != 0.0f ? 1 : 0;
    case CVN_ADAM:
    case CVN_ADAMW:
        return c->amsgrad ? 3 : 2;
    case CVN_RMSPROP:
        return 3;
    default:
        return 2;
    }
}

static cvn_status check_config(const cvn_optim_config *c) {
    const char *bad = NULL;
    if ((unsigned)c->kind > CVN_RPROP)
        bad = "kind";
    else if (!(c->lr >= 0.0f))
        bad = "lr";
    else if (!(c->weight_decay >= 0.0f))
        bad = "weight_decay";
    else if (!(c->momentum >= 0.0f))
        bad = "momentum";
    else if (!(c->dampening >= 0.0f && c->dampening <= 1.0f))
        bad = "dampening";
    else if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
        bad = "nesterov (needs momentum > 0 and dampening 0)";
    else if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        bad = "beta1";
    else if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        bad = "beta2";
    else if (!(c->eps >= 0.0f))
        bad = "eps";
    else if (!(c->alpha >= 0.0f))
        bad = "alpha";
    else if (!(c->eta_minus > 0.0f && c->eta_minus < 1.0f && c->eta_plus > 1.0f))
        bad = "etas (need 0 < eta_minus < 1 < eta_plus)";
    else if (!(c->step_min >= 0.0f && c->step_max >= c->step_min))
        bad = "step sizes";
    if (bad) return cvn_set_error(CVN_ERR_ARG, "optim: invalid %s", bad);
    return CVN_OK;
}

cvn_optim *cvn_optim_new(const cvn_optim_config *config) {
    if (!config) {
        cvn_set_error(CVN_ERR_ARG, "optim_new: config is NULL");
        return NULL;
    }
    if (check_config(config)) return NULL;
    cvn_optim *o = cvn_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->cfg = *config;
    o->n_state = state_count(config);
    return o;
}

void cvn_optim_free(cvn_optim *o) {
    if (!o) return;
    for (int i = 0; i < MAX_STATE; i++) cvn_tensor_free(o->state[i]);
    cvn_free(o->groups);
    cvn_free(o->params);
    cvn_free(o->offsets);
    cvn_free(o);
}

static bool grow(void **p, size_t elem, int n, int cap) {
    void *q = cvn_malloc(elem * (size_t)cap);
    if (!q) return false;
    if (n) memcpy(q, *p, elem * (size_t)n);
    cvn_free(*p);
    *p = q;
    return true;
}

int cvn_optim_add_group(cvn_optim *o, int n, cvn_tensor *const *params, float lr,
                        float weight_decay) {
    if (!o || n < 1 || !params) {
        cvn_set_error(CVN_ERR_ARG, "optim_add_group: no optimizer or no parameters");
        return -1;
    }
    if (o->steps > 0 || o->state[0]) {
        cvn_set_error(CVN_ERR_STATE, "optim_add_group: groups must be added before the first step");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        cvn_tensor *p = params[i];
        if (!p || p->dtype != CVN_F32 || !(p->flags & CVN_TF_HEAP) || !cvn_is_contiguous(p)) {
            cvn_set_error(CVN_ERR_ARG,
                          "optim_add_group: parameter %d is not a contiguous f32 heap "
                          "tensor",
                          i);
            return -1;
        }
        if (o->n_params + i > 0 && p->device != (o->n_params ? o->device : params[0]->device)) {
            cvn_set_error(CVN_ERR_DEVICE, "optim_add_group: parameters are on different devices");
            return -1;
        }
    }
    if (o->n_params == 0) {
        o->device = params[0]->device;
        o->be = cvn_backend_get(o->device);
        if (!o->be) return -1;
    }
    if (o->n_params + n > o->cap_params) {
        int cap = o->cap_params ? o->cap_params : 16;
        while (cap < o->n_params + n) cap *= 2;
        if (!grow((void **)&o->params, sizeof *o->params, o->n_params, cap) ||
            !grow((void **)&o->offsets, sizeof *o->offsets, o->n_params, cap))
            return -1;
        o->cap_params = cap;
    }
    if (!grow((void **)&o->groups, sizeof *o->groups, o->n_groups, o->n_groups + 1)) return -1;
    o->groups[o->n_groups] =
        (optim_group){lr >= 0.0f ? lr : o->cfg.lr,
                      weight_decay >= 0.0f ? weight_decay : o->cfg.weight_decay, o->n_params, n};
    for (int i = 0; i < n; i++) {
        o->params[o->n_params] = params[i];
        o->offsets[o->n_params++] = o->total;
        o->total += cvn_numel(params[i]);
    }
    return o->n_groups++;
}

int cvn_optim_add_module(cvn_optim *o, const cvn_module *m) {
    int n = cvn_module_num_params(m);
    if (!o || n < 1) {
        cvn_set_error(CVN_ERR_ARG, "optim_add_module: no optimizer or a module without parameters");
        return -1;
    }
    cvn_tensor **list = cvn_malloc((size_t)n * sizeof *list);
    if (!list) return -1;
    for (int i = 0; i < n; i++) list[i] = cvn_module_param_at(m, i, NULL);
    int g = cvn_optim_add_group(o, n, list, -1.0f, -1.0f);
    cvn_free(list);
    return g;
}

/* State buffers are made at the first step (or state query), zero-filled; Rprop's step sizes start
 * at each group's learning rate. */
static cvn_status ensure_state(cvn_optim *o) {
    if (o->n_params == 0) return cvn_set_error(CVN_ERR_STATE, "optim: no parameters were added");
    if (o->n_state == 0 || o->state[0]) return CVN_OK;
    for (int k = 0; k < o->n_state; k++) {
        o->state[k] = cvn_tensor_new_on(CVN_F32, 1, &o->total, o->device);
        if (!o->state[k]) return cvn_last_status();
    }
    if (o->cfg.kind == CVN_RPROP)
        for (int g = 0; g < o->n_groups; g++) {
            const optim_group *gr = &o->groups[g];
            int last = gr->first + gr->count - 1;
            int64_t at = o->offsets[gr->first];
            int64_t len = o->offsets[last] + cvn_numel(o->params[last]) - at;
            float *s = (float *)o->state[1]->data + at;
            o->be->affine(len, s, s, 0.0f, gr->lr); /* s = 0 * s + lr */
        }
    return CVN_OK;
}

cvn_status cvn_optim_step(cvn_optim *o) {
    if (!o) return cvn_set_error(CVN_ERR_ARG, "optim_step: optimizer is NULL");
    cvn_status st = ensure_state(o);
    if (st) return st;
    o->steps++;
    const cvn_optim_config *c = &o->cfg;
    cvn_update_params u = {.kind = (cvn_update_kind)c->kind,
                           .momentum = c->momentum,
                           .dampening = c->dampening,
                           .nesterov = c->nesterov,
                           .first = o->steps == 1,
                           .beta1 = c->beta1,
                           .beta2 = c->beta2,
                           .eps = c->eps,
                           .amsgrad = c->amsgrad,
                           .alpha = c->alpha,
                           .centered = c->centered,
                           .eta_minus = c->eta_minus,
                           .eta_plus = c->eta_plus,
                           .step_min = c->step_min,
                           .step_max = c->step_max};
    u.bias1 = (float)(1.0 - pow(c->beta1, (double)o->steps));
    u.bias2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)o->steps));
    float *s[MAX_STATE];
    for (int g = 0; g < o->n_groups; g++) {
        u.lr = o->groups[g].lr;
        u.weight_decay = o->groups[g].weight_decay;
        for (int i = o->groups[g].first; i < o->groups[g].first + o->groups[g].count; i++) {
            cvn_tensor *p = o->params[i];
            if (!p->requires_grad || !p->grad) continue; /* frozen, or no gradient this step */
            for (int k = 0; k < MAX_STATE; k++)
                s[k] = k < o->n_state ? (float *)o->state[k]->data + o->offsets[i] : NULL;
            o->be->optim_update(&u, cvn_numel(p), p->data, p->grad->data, s[0], s[1], s[2]);
        }
    }
    return CVN_OK;
}

void cvn_optim_zero_grad(cvn_optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n_params; i++) cvn_tensor_zero_grad(o->params[i]);
}

cvn_status cvn_optim_set_lr(cvn_optim *o, int group, float lr) {
    if (!o || group < -1 || group >= o->n_groups || !(lr >= 0.0f))
        return cvn_set_error(CVN_ERR_ARG, "optim_set_lr: group %d or lr %g is out of range", group,
                             (double)lr);
    for (int g = 0; g < o->n_groups; g++)
        if (group == -1 || g == group) o->groups[g].lr = lr;
    if (o->n_groups == 0) o->cfg.lr = lr;
    return CVN_OK;
}

float cvn_optim_get_lr(const cvn_optim *o, int group) {
    if (!o) return 0.0f;
    if (o->n_groups == 0) return o->cfg.lr;
    if (group < 0 || group >= o->n_groups) group = 0;
    return o->groups[group].lr;
}

cvn_optimizer cvn_optim_kind(const cvn_optim *o) {
    return o ? o->cfg.kind : CVN_SGD;
}

const char *cvn_optimizer_name(cvn_optimizer kind) {
    static const char *const names[] = {"SGD", "Adam", "AdamW", "RMSprop", "Rprop"};
    return (unsigned)kind <= CVN_RPROP ? names[kind] : "unknown";
}

int cvn_optim_num_groups(const cvn_optim *o) {
    return o ? o->n_groups : 0;
}
int64_t cvn_optim_steps(const cvn_optim *o) {
    return o ? o->steps : 0;
}
void cvn_optim_set_steps(cvn_optim *o, int64_t steps) {
    if (o && steps >= 0) o->steps = steps;
}
int cvn_optim_num_state(const cvn_optim *o) {
    return o ? o->n_state : 0;
}

cvn_tensor *cvn_optim_state_at(cvn_optim *o, int i, const char **name) {
    if (!o || i < 0 || i >= o->n_state) {
        cvn_set_error(CVN_ERR_ARG, "optim_state_at: index %d is out of range", i);
        return NULL;
    }
    if (ensure_state(o)) return NULL;
    if (name) *name = state_names[o->cfg.kind][i];
    return o->state[i];
}

/* ------------------------------------------------------------------ gradient clipping */

cvn_status cvn_optim_clip_grad_norm(cvn_optim *o, float max_norm, float *norm) {
    if (!o || !(max_norm > 0.0f))
        return cvn_set_error(CVN_ERR_ARG, "clip_grad_norm: max_norm %g must be > 0",
                             (double)max_norm);
    double sq = 0.0;
    enum { BATCH = 64 }; /* gradients per backend call (one synchronization on a GPU) */
    const float *xs[BATCH];
    int64_t ns[BATCH];
    int count = 0;
    for (int i = 0; i < o->n_params; i++) {
        if (!o->params[i]->grad) continue;
        xs[count] = o->params[i]->grad->data;
        ns[count++] = cvn_numel(o->params[i]);
        if (count == BATCH) sq += o->be->sum_sq(count, ns, xs), count = 0;
    }
    if (count) sq += o->be->sum_sq(count, ns, xs);
    float total = (float)sqrt(sq);
    if (norm) *norm = total;
    float coef = max_norm / (total + 1e-6f);
    if (coef < 1.0f)
        for (int i = 0; i < o->n_params; i++)
            if (o->params[i]->grad) {
                float *g = o->params[i]->grad->data;
                o->be->affine(cvn_numel(o->params[i]), g, g, coef, 0.0f);
            }
    return CVN_OK;
}

cvn_status cvn_optim_clip_grad_value(cvn_optim *o, float clip_value) {
    if (!o || !(clip_value >= 0.0f))
        return cvn_set_error(CVN_ERR_ARG, "clip_grad_value: clip value %g must be >= 0",
                             (double)clip_value);
    for (int i = 0; i < o->n_params; i++)
        if (o->params[i]->grad)
            o->be->clamp(cvn_numel(o->params[i]), o->params[i]->grad->data, -clip_value,
                         clip_value);
    return CVN_OK;
}
