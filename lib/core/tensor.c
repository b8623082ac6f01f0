/* Tensors: shape bookkeeping, heap tensors and their fills. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

size_t cvn_dtype_size(cvn_dtype dtype) {
    return dtype == CVN_U8 ? 1 : 4;
}

int64_t cvn_numel(const cvn_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

bool cvn_is_contiguous(const cvn_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return false;
        expect *= t->shape[d];
    }
    return true;
}

char *cvn_shape_str(const cvn_tensor *t, char *buf, size_t size) {
    size_t at = 0;
    at += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (at < size) snprintf(buf + at, size - at, "]");
    return buf;
}

void cvn_tensor_set_shape(cvn_tensor *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->strides[d] = stride;
        stride *= shape[d];
    }
    for (int d = ndim; d < CVN_MAX_DIMS; d++) t->shape[d] = 1, t->strides[d] = 1;
}

bool cvn_same_shape(const cvn_tensor *a, const cvn_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static bool valid_shape(const char *what, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > CVN_MAX_DIMS) {
        cvn_set_error(CVN_ERR_SHAPE, "%s: %d dims; tensors have 0 to %d", what, ndim, CVN_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        cvn_set_error(CVN_ERR_ARG, "%s: shape is NULL", what);
        return false;
    }
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && n > INT64_MAX / 16 / shape[d])) {
            cvn_set_error(CVN_ERR_SHAPE, "%s: dim %d has invalid size %lld", what, d,
                          (long long)shape[d]);
            return false;
        }
        n *= shape[d];
    }
    return true;
}

cvn_tensor *cvn_tensor_new_on(cvn_dtype dtype, int ndim, const int64_t *shape, cvn_device device) {
    if ((unsigned)dtype > CVN_I32) {
        cvn_set_error(CVN_ERR_DTYPE, "tensor_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (!valid_shape("tensor_new", ndim, shape)) return NULL;
    const cvn_backend *be = cvn_backend_get(device);
    if (!be) return NULL;
    cvn_tensor *t = cvn_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    t->device = device;
    t->flags = CVN_TF_HEAP;
    cvn_tensor_set_shape(t, ndim, shape);
    size_t bytes = (size_t)cvn_numel(t) * cvn_dtype_size(dtype);
    t->data = be->alloc(bytes ? bytes : 1);
    if (!t->data) {
        cvn_free(t);
        return NULL;
    }
    be->zero(t->data, bytes);
    return t;
}

cvn_tensor *cvn_tensor_new(cvn_dtype dtype, int ndim, const int64_t *shape) {
    return cvn_tensor_new_on(dtype, ndim, shape, CVN_CPU);
}

/* Copies bytes between two buffers on any pair of devices. */
static void copy_between(void *dst, cvn_device dd, const void *src, cvn_device sd, size_t bytes) {
    if (dd == CVN_CPU && sd == CVN_CPU)
        cvn_backend_cpu()->copy(dst, src, bytes);
    else if (sd == CVN_CPU)
        cvn_backend_get(dd)->upload(dst, src, bytes);
    else if (dd == CVN_CPU)
        cvn_backend_get(sd)->download(dst, src, bytes);
    else
        cvn_backend_get(dd)->copy(dst, src, bytes);
}

cvn_tensor *cvn_tensor_to(const cvn_tensor *t, cvn_device device) {
    if (!t) {
        if (cvn_last_status() == CVN_OK) cvn_set_error(CVN_ERR_ARG, "tensor_to: tensor is NULL");
        return NULL;
    }
    if (!cvn_is_contiguous(t)) {
        cvn_set_error(CVN_ERR_ARG, "tensor_to: tensor must be contiguous");
        return NULL;
    }
    cvn_tensor *d = cvn_tensor_new_on(t->dtype, t->ndim, t->shape, device);
    if (!d) return NULL;
    copy_between(d->data, device, t->data, t->device,
                 (size_t)cvn_numel(t) * cvn_dtype_size(t->dtype));
    d->requires_grad = t->requires_grad;
    return d;
}

cvn_status cvn_tensor_move(cvn_tensor *t, cvn_device device) {
    if (!t || !(t->flags & CVN_TF_HEAP) || (t->flags & CVN_TF_VIEW))
        return cvn_set_error(CVN_ERR_ARG,
                             "tensor_move: only heap tensors that own their data move");
    if (t->device == device) return CVN_OK;
    cvn_tensor *d = cvn_tensor_to(t, device);
    if (!d) return cvn_last_status();
    cvn_backend_get(t->device)->free(t->data);
    t->data = d->data;
    t->device = device;
    cvn_free(d);
    if (t->grad && (t->flags & CVN_TF_GRAD_HEAP)) cvn_tensor_free(t->grad);
    t->grad = NULL;
    t->flags &= ~(uint32_t)CVN_TF_GRAD_HEAP;
    return CVN_OK;
}

cvn_status cvn_tensor_read(const cvn_tensor *t, void *dst, size_t bytes) {
    if (!t || !dst) return cvn_set_error(CVN_ERR_ARG, "tensor_read: tensor or buffer is NULL");
    size_t have = (size_t)cvn_numel(t) * cvn_dtype_size(t->dtype);
    if (bytes != have || !cvn_is_contiguous(t))
        return cvn_set_error(CVN_ERR_ARG, "tensor_read: %zu bytes asked, the tensor holds %zu%s",
                             bytes, have, cvn_is_contiguous(t) ? "" : " (not contiguous)");
    copy_between(dst, CVN_CPU, t->data, t->device, bytes);
    return CVN_OK;
}

cvn_tensor *cvn_tensor_from_f32(int ndim, const int64_t *shape, const float *data, int64_t n) {
    cvn_tensor *t = cvn_tensor_new(CVN_F32, ndim, shape);
    if (!t) return NULL;
    if (n != cvn_numel(t) || (n && !data)) {
        char s[96];
        cvn_set_error(CVN_ERR_SHAPE, "tensor_from_f32: %lld values for shape %s (%lld elements)",
                      (long long)n, cvn_shape_str(t, s, sizeof s), (long long)cvn_numel(t));
        cvn_tensor_free(t);
        return NULL;
    }
    if (n) memcpy(t->data, data, (size_t)n * sizeof(float));
    return t;
}

void cvn_tensor_free(cvn_tensor *t) {
    if (!t) return;
    if (t->grad && (t->flags & CVN_TF_GRAD_HEAP)) cvn_tensor_free(t->grad);
    if ((t->flags & CVN_TF_HEAP) && !(t->flags & CVN_TF_VIEW)) {
        const cvn_backend *be = cvn_backend_get(t->device);
        if (be) be->free(t->data);
    }
    if (t->flags & CVN_TF_HEAP) cvn_free(t);
}

cvn_status cvn_tensor_set_requires_grad(cvn_tensor *t, bool on) {
    if (!t) return cvn_set_error(CVN_ERR_ARG, "set_requires_grad: tensor is NULL");
    if (on && t->dtype != CVN_F32)
        return cvn_set_error(CVN_ERR_DTYPE, "set_requires_grad: only f32 tensors have gradients");
    t->requires_grad = on;
    return CVN_OK;
}

cvn_status cvn_tensor_retain_grad(cvn_tensor *t) {
    if (!t) return cvn_set_error(CVN_ERR_ARG, "retain_grad: tensor is NULL");
    t->flags |= CVN_TF_RETAIN_GRAD;
    return CVN_OK;
}

cvn_tensor *cvn_tensor_grad(cvn_tensor *t) {
    if (!t || !(t->flags & CVN_TF_HEAP) || !t->requires_grad) {
        cvn_set_error(CVN_ERR_ARG, "tensor_grad: needs a heap tensor that requires grad");
        return NULL;
    }
    if (!t->grad) {
        t->grad = cvn_tensor_new_on(CVN_F32, t->ndim, t->shape, t->device);
        if (t->grad) t->flags |= CVN_TF_GRAD_HEAP;
    }
    return t->grad;
}

void cvn_tensor_zero_grad(cvn_tensor *t) {
    if (t && t->grad)
        cvn_backend_get(t->grad->device)
            ->zero(t->grad->data, (size_t)cvn_numel(t->grad) * sizeof(float));
}

float *cvn_tensor_f32(const cvn_tensor *t) {
    if (!t || t->dtype != CVN_F32) {
        cvn_set_error(CVN_ERR_DTYPE, "tensor_f32: tensor is %s", t ? "not f32" : "NULL");
        return NULL;
    }
    return t->data;
}

int32_t *cvn_tensor_i32(const cvn_tensor *t) {
    if (!t || t->dtype != CVN_I32) {
        cvn_set_error(CVN_ERR_DTYPE, "tensor_i32: tensor is %s", t ? "not i32" : "NULL");
        return NULL;
    }
    return t->data;
}

uint8_t *cvn_tensor_u8(const cvn_tensor *t) {
    if (!t || t->dtype != CVN_U8) {
        cvn_set_error(CVN_ERR_DTYPE, "tensor_u8: tensor is %s", t ? "not u8" : "NULL");
        return NULL;
    }
    return t->data;
}

static cvn_status check_fill(const cvn_tensor *t, const char *op) {
    if (!t) return cvn_set_error(CVN_ERR_ARG, "%s: tensor is NULL", op);
    if (t->dtype != CVN_F32) return cvn_set_error(CVN_ERR_DTYPE, "%s: tensor is not f32", op);
    if (!cvn_is_contiguous(t))
        return cvn_set_error(CVN_ERR_ARG, "%s: tensor is not contiguous", op);
    return CVN_OK;
}

cvn_status cvn_tensor_fill(cvn_tensor *t, float value) {
    cvn_status s = check_fill(t, "tensor_fill");
    if (s) return s;
    int64_t n = cvn_numel(t);
    if (t->device != CVN_CPU) { /* zero, then 0 * 1 + value: two kernels on the device */
        const cvn_backend *be = cvn_backend_get(t->device);
        be->zero(t->data, (size_t)n * sizeof(float));
        be->affine(n, t->data, t->data, 1.0f, value);
        return CVN_OK;
    }
    float *p = t->data;
#pragma omp parallel for if (n > 262144) schedule(static) /* over 1 MiB, as the CPU copies */
    for (int64_t i = 0; i < n; i++) p[i] = value;
    return CVN_OK;
}

/* Random values, drawn on the host in element order whatever the device, so that a seed gives the
 * same tensor on every device: a device tensor gets a host tensor's copy. */
static cvn_status fill_random(cvn_tensor *t, cvn_rng *r, bool normal, float a, float b) {
    cvn_tensor *h = t->device == CVN_CPU ? t : cvn_tensor_new(CVN_F32, t->ndim, t->shape);
    if (!h) return cvn_last_status();
    float *p = h->data;
    for (int64_t i = 0, n = cvn_numel(t); i < n; i++)
        p[i] = normal ? a + b * cvn_rng_normal(r) : a + (b - a) * cvn_rng_uniform(r);
    if (h == t) return CVN_OK;
    cvn_status s = cvn_tensor_copy(t, h);
    cvn_tensor_free(h);
    return s;
}

cvn_status cvn_tensor_uniform(cvn_tensor *t, cvn_rng *r, float lo, float hi) {
    cvn_status s = check_fill(t, "tensor_uniform");
    if (s) return s;
    if (!r) return cvn_set_error(CVN_ERR_ARG, "tensor_uniform: rng is NULL");
    return fill_random(t, r, false, lo, hi);
}

cvn_status cvn_tensor_normal(cvn_tensor *t, cvn_rng *r, float mean, float std) {
    cvn_status s = check_fill(t, "tensor_normal");
    if (s) return s;
    if (!r) return cvn_set_error(CVN_ERR_ARG, "tensor_normal: rng is NULL");
    return fill_random(t, r, true, mean, std);
}

cvn_status cvn_tensor_copy(cvn_tensor *dst, const cvn_tensor *src) {
    if (!dst || !src) return cvn_set_error(CVN_ERR_ARG, "tensor_copy: tensor is NULL");
    if (dst->dtype != src->dtype) return cvn_set_error(CVN_ERR_DTYPE, "tensor_copy: dtypes differ");
    if (cvn_numel(dst) != cvn_numel(src)) {
        char a[96], b[96];
        return cvn_set_error(CVN_ERR_SHAPE, "tensor_copy: %s and %s differ in size",
                             cvn_shape_str(dst, a, sizeof a), cvn_shape_str(src, b, sizeof b));
    }
    if (!cvn_is_contiguous(dst) || !cvn_is_contiguous(src))
        return cvn_set_error(CVN_ERR_ARG, "tensor_copy: tensors must be contiguous");
    copy_between(dst->data, dst->device, src->data, src->device,
                 (size_t)cvn_numel(src) * cvn_dtype_size(src->dtype));
    return CVN_OK;
}
