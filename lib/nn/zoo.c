/* Ready-made networks. */
#include "core/core.h"

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
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        if (st)
            cvn_module_free(layers[i]);
        else
            st = cvn_sequential_add(m, layers[i]); /* takes ownership, also on failure */
    }
    if (st) {
        cvn_module_free(m);
        return NULL;
    }
    return m;
}
