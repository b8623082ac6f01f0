/* Finite-difference gradient check for any function built from ops. */
#include <math.h>
#include <string.h>

#include "core/core.h"

/* Sum of f's output in double, with recording off. */
static cvn_status eval_sum(cvn_gradcheck_fn f, cvn_tape *t, cvn_tensor *const *inputs, void *ctx,
                           double *out) {
    cvn_tape_reset(t);
    bool prev = cvn_tape_set_grad_enabled(t, false);
    cvn_tensor *y = f(t, inputs, ctx);
    cvn_tape_set_grad_enabled(t, prev);
    if (!y) return cvn_last_status() ? cvn_last_status() : CVN_ERR_STATE;
    *out = t->be->sum(cvn_numel(y), y->data);
    return CVN_OK;
}

cvn_status cvn_gradcheck(cvn_gradcheck_fn f, int n, cvn_tensor *const *inputs, void *ctx, float eps,
                         float atol, float rtol) {
    if (!f || n < 1 || !inputs)
        return cvn_set_error(CVN_ERR_ARG, "gradcheck: no function or inputs");
    for (int i = 0; i < n; i++)
        if (!inputs[i] || !(inputs[i]->flags & CVN_TF_HEAP) || inputs[i]->device != CVN_CPU)
            return cvn_set_error(CVN_ERR_ARG,
                                 "gradcheck: input %d must be a heap tensor on the CPU", i);
    cvn_tape *t = cvn_tape_new(CVN_CPU);
    if (!t) return cvn_last_status();
    for (int i = 0; i < n; i++) cvn_tensor_zero_grad(inputs[i]);

    cvn_status st = CVN_OK;
    cvn_tensor *y = f(t, inputs, ctx);
    if (!y) {
        st = cvn_last_status() ? cvn_last_status() : CVN_ERR_STATE;
        goto done;
    }
    cvn_tensor *seed = cvn_tape_new_tensor(t, CVN_F32, y->ndim, y->shape);
    if (!seed) {
        st = CVN_ERR_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < cvn_numel(seed); k++) ((float *)seed->data)[k] = 1.0f;
    if ((st = cvn_backward(t, y, seed))) goto done;

    for (int i = 0; i < n && !st; i++) {
        cvn_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        if (!x->grad) {
            st = cvn_set_error(CVN_ERR_STATE, "gradcheck: input %d got no gradient", i);
            break;
        }
        float *v = x->data, *g = x->grad->data;
        for (int64_t k = 0; k < cvn_numel(x); k++) {
            float keep = v[k];
            double plus, minus;
            v[k] = keep + eps;
            if ((st = eval_sum(f, t, inputs, ctx, &plus))) break;
            v[k] = keep - eps;
            if ((st = eval_sum(f, t, inputs, ctx, &minus))) break;
            v[k] = keep;
            double numeric = (plus - minus) / (2.0 * eps);
            double err = fabs((double)g[k] - numeric);
            if (!(err <= atol + rtol * fabs(numeric))) {
                st = cvn_set_error(CVN_ERR_STATE,
                                   "gradcheck: input %d element %lld: analytic %.7g, numeric %.7g "
                                   "(difference %.3g)",
                                   i, (long long)k, (double)g[k], numeric, err);
                break;
            }
        }
    }
done:
    cvn_tape_free(t);
    return st;
}
