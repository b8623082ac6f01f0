/* The optimizer cases shared by test_optim (CPU) and test_cuda (GPU): each names a trajectory of
 * tests/ref/optim_ref.txt and the config that should reproduce it. Included once per program. */
#ifndef CVN_OPTIM_CASES_H
#define CVN_OPTIM_CASES_H

#include <string.h>

#include "testutil.h"

typedef struct {
    const char *name;
    cvn_optim_config cfg;
} optim_case;

static cvn_optim_config cfg(cvn_optimizer kind, float lr) {
    cvn_optim_config c = cvn_optim_defaults(kind);
    c.lr = lr;
    return c;
}

static optim_case make_case(int i) {
    cvn_optim_config c;
    switch (i) {
    case 0:
        return (optim_case){"sgd", cfg(CVN_SGD, 0.1f)};
    case 1:
        c = cfg(CVN_SGD, 0.05f), c.momentum = 0.9f;
        return (optim_case){"sgd_momentum", c};
    case 2:
        c = cfg(CVN_SGD, 0.05f), c.momentum = 0.9f, c.dampening = 0.5f;
        return (optim_case){"sgd_dampening", c};
    case 3:
        c = cfg(CVN_SGD, 0.05f), c.momentum = 0.9f, c.nesterov = true;
        return (optim_case){"sgd_nesterov", c};
    case 4:
        c = cfg(CVN_SGD, 0.05f), c.momentum = 0.9f, c.weight_decay = 0.01f;
        return (optim_case){"sgd_wd", c};
    case 5:
        return (optim_case){"adam", cfg(CVN_ADAM, 0.01f)};
    case 6:
        c = cfg(CVN_ADAM, 0.01f), c.weight_decay = 0.1f;
        return (optim_case){"adam_wd", c};
    case 7:
        c = cfg(CVN_ADAM, 0.01f), c.amsgrad = true;
        return (optim_case){"adam_amsgrad", c};
    case 8:
        c = cfg(CVN_ADAM, 0.02f), c.beta1 = 0.8f, c.beta2 = 0.9f, c.eps = 1e-6f;
        return (optim_case){"adam_betas", c};
    case 9:
        c = cfg(CVN_ADAMW, 0.01f), c.weight_decay = 0.1f;
        return (optim_case){"adamw", c};
    case 10:
        c = cfg(CVN_ADAMW, 0.01f), c.weight_decay = 0.1f, c.amsgrad = true;
        return (optim_case){"adamw_amsgrad", c};
    case 11:
        return (optim_case){"rmsprop", cfg(CVN_RMSPROP, 0.01f)};
    case 12:
        c = cfg(CVN_RMSPROP, 0.01f), c.centered = true;
        return (optim_case){"rmsprop_centered", c};
    case 13:
        c = cfg(CVN_RMSPROP, 0.01f), c.momentum = 0.9f;
        return (optim_case){"rmsprop_momentum", c};
    case 14:
        c = cfg(CVN_RMSPROP, 0.01f), c.alpha = 0.9f, c.weight_decay = 0.1f;
        return (optim_case){"rmsprop_wd", c};
    case 15:
        c = cfg(CVN_RMSPROP, 0.01f), c.centered = true, c.momentum = 0.5f;
        return (optim_case){"rmsprop_centered_momentum", c};
    case 16:
        return (optim_case){"rprop", cfg(CVN_RPROP, 0.01f)};
    case 17:
        c = cfg(CVN_RPROP, 0.02f), c.eta_minus = 0.4f, c.eta_plus = 1.3f, c.step_min = 1e-4f,
        c.step_max = 0.05f;
        return (optim_case){"rprop_custom", c};
    case 18:
        return (optim_case){"groups", cfg(CVN_ADAM, 0.01f)};
    default:
        c = cfg(CVN_SGD, 0.05f), c.momentum = 0.9f;
        return (optim_case){"frozen", c};
    }
}
#define N_OPTIM_CASES 20

/* g = (p - c) + noise_t, written into the parameter's gradient */
static void set_grad(cvn_tensor *p, const ref_array *c, const float *noise) {
    cvn_tensor *w = p->device == CVN_CPU ? p : cvn_tensor_to(p, CVN_CPU);
    cvn_tensor *g = cvn_tensor_new(CVN_F32, p->ndim, p->shape);
    const float *wv = w->data;
    float *gv = g->data;
    for (int64_t i = 0; i < cvn_numel(p); i++) gv[i] = (wv[i] - c->v[i]) + noise[i];
    ck_assert_int_eq(cvn_tensor_copy(cvn_tensor_grad(p), g), CVN_OK);
    cvn_tensor_free(g);
    if (w != p) cvn_tensor_free(w);
}

#endif
