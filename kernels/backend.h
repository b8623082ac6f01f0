/* The backend table: every kernel an op needs, as a function pointer over raw memory.
 * Kernels know nothing of tensors or tapes: they take pointers, sizes and strides, outputs first.
 * Backward kernels accumulate (+=) into the gradient they write, so a tensor used twice gets the
 * sum. One table per device; the CPU one lives in kernels/cpu/backend_cpu.c. Private to the
 * library. */
#ifndef CVN_BACKEND_H
#define CVN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CVN_BIN_ADD, CVN_BIN_SUB, CVN_BIN_MUL, CVN_BIN_DIV } cvn_binop;

#ifdef __CUDACC__
#define CVN_HOST_DEVICE __host__ __device__
#else
#define CVN_HOST_DEVICE
#endif

/* The predicted class of a row of n scores by torch.argmax's rule: the first NaN where the row
 * has one, else the first maximum. count_hits on every backend and the report's confusion
 * matrix use it, so accuracy means one thing everywhere. */
static inline CVN_HOST_DEVICE int64_t cvn_argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n && v[best] == v[best]; i++)
        if (v[i] > v[best] || v[i] != v[i]) best = i;
    return best;
}

/* Same order as cvn_activation in cvnet.h. */
typedef enum {
    CVN_K_RELU,
    CVN_K_LEAKY_RELU,
    CVN_K_SIGMOID,
    CVN_K_TANH,
    CVN_K_GELU,
    CVN_K_SILU,
    CVN_K_HARDSWISH,
    CVN_K_HARDSIGMOID,
} cvn_act_kind;

/* Geometry of a 2-D window op (convolution or pooling) over one [C, H, W] image. */
typedef struct {
    int c, h, w; /* input channels and size */
    int kh, kw;  /* window */
    int sh, sw;  /* stride */
    int ph, pw;  /* padding */
    int dh, dw;  /* dilation */
    int oh, ow;  /* output size */
} cvn_window;

/* A whole 2-D convolution, for backends with a fused implementation (cuDNN, the CPU's direct 3x3
 * kernels). */
typedef struct {
    int n, c, h, w; /* input */
    int o, kh, kw;  /* weight [o, c / groups, kh, kw] */
    int oh, ow;     /* output */
    int sh, sw, ph, pw, dh, dw, groups;
    /* The forward's epilogue, for inference (a backend without it declines when it is set, and
     * the op runs the parts one by one): the activation act when act_on, then, when pool > 0, a
     * pool x pool max pool of stride pool without padding, so y is [n, o, oh / pool, ow / pool]. */
    bool act_on;
    cvn_act_kind act;
    float alpha;
    int pool;
    float *work; /* scratch of conv2d_work's size, from the tape's arena (NULL when none asked) */
    int64_t work_floats;
} cvn_conv_desc;

/* One optimizer step's hyperparameters, as the fused update kernels read them (lib/optim fills it;
 * the rules are torch.optim's, see lib/optim/optim.c). */
typedef enum {
    CVN_UPD_SGD,
    CVN_UPD_ADAM,
    CVN_UPD_ADAMW,
    CVN_UPD_RMSPROP,
    CVN_UPD_RPROP
} cvn_update_kind;
typedef struct {
    cvn_update_kind kind;
    float lr, weight_decay;
    float momentum, dampening; /* SGD, RMSprop (momentum) */
    bool nesterov;
    bool first;              /* SGD: the momentum buffer starts as the first gradient */
    float beta1, beta2, eps; /* Adam(W), RMSprop (eps) */
    float bias1, bias2_sqrt; /* 1 - beta1^t, sqrt(1 - beta2^t) */
    bool amsgrad;
    float alpha; /* RMSprop smoothing */
    bool centered;
    float eta_minus, eta_plus, step_min, step_max; /* Rprop */
} cvn_update_params;

typedef struct cvn_backend {
    const char *name;
    /* floats of im2col workspace per convolution chunk: small on a CPU (the columns should stay in
     * cache), large on a GPU (fewer, bigger GEMMs) */
    int64_t conv_workspace;
    /* device memory is host memory this process may touch (the CPU, and the CUDA backend's CPU
     * emulation): under ASan the arena then poisons what it has not handed out */
    bool host_memory;

    /* memory */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*copy)(void *dst, const void *src, size_t bytes);     /* within the device */
    void (*upload)(void *dst, const void *src, size_t bytes);   /* host -> device */
    void (*download)(void *dst, const void *src, size_t bytes); /* device -> host, synchronous */
    void (*zero)(void *dst, size_t bytes);
    /* Batches from page-locked host memory (optional). host_register page-locks [p, p + bytes)
     * (whole pages; false when it cannot), host_unregister undoes it. upload_async queues a copy
     * from such memory that the device's later work sees (it may overlap work queued earlier) and
     * may return before it is done; src must not change until upload_wait, which blocks until
     * every queued upload has read its source. On the CPU
     * registering does nothing and an upload is done when it returns. */
    bool (*host_register)(void *p, size_t bytes);
    void (*host_unregister)(void *p);
    void (*upload_async)(void *dst, const void *src, size_t bytes);
    void (*upload_wait)(void);

    /* C = alpha * op(A) op(B) + beta * C, row-major, op = transpose when ta / tb. */
    void (*gemm)(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

    /* out = a (op) b over a broadcast shape; out is contiguous, sa / sb are element strides of the
     * inputs in the output's shape (0 along broadcast dims). */
    void (*binary)(cvn_binop op, int ndim, const int64_t *shape, float *out, const float *a,
                   const int64_t *sa, const float *b, const int64_t *sb);
    /* dx += d(a op b)/dx * g elementwise over the broadcast shape, or dx = when not add (as
     * act_bwd); which = 0 for a, 1 for b; sx never revisits an element of dx (the ops layer sums
     * broadcast gradients with reduce_to); out is the forward result (used by div). */
    void (*binary_bwd)(cvn_binop op, int which, int ndim, const int64_t *shape, float *dx,
                       const int64_t *sx, const float *g, const float *a, const int64_t *sa,
                       const float *b, const int64_t *sb, const float *out, bool add);
    /* y = scale * x + shift */
    void (*affine)(int64_t n, float *y, const float *x, float scale, float shift);
    /* y += alpha * x */
    void (*axpy)(int64_t n, float alpha, const float *x, float *y);
    /* out[o] += x[i] summed over the dims where the output stride so is 0 (a broadcast reduction).
     */
    void (*reduce_to)(int ndim, const int64_t *shape, float *out, const int64_t *so, const float *x,
                      float scale);

    /* out[i] += scale * x[offset of i under strides sx] for contiguous out over shape: the adjoint
     * of reduce_to (broadcasts x back over the dims where sx is 0). */
    void (*expand_add)(int ndim, const int64_t *shape, float *out, const float *x,
                       const int64_t *sx, float scale);

    /* activations: y = f(x); dx += dy * f'(x) (x and y both given), or dx = dy * f'(x) when not
     * add (dx's old contents unread: a fresh gradient buffer needs no zeroing first) */
    void (*act_fwd)(cvn_act_kind kind, float alpha, int64_t n, float *y, const float *x);
    void (*act_bwd)(cvn_act_kind kind, float alpha, int64_t n, float *dx, const float *dy,
                    const float *x, const float *y, bool add);

    /* softmax (or log-softmax) along the middle axis of [outer, d, inner] */
    void (*softmax_fwd)(bool log, int64_t outer, int64_t d, int64_t inner, float *y,
                        const float *x);
    void (*softmax_bwd)(bool log, int64_t outer, int64_t d, int64_t inner, float *dx,
                        const float *dy, const float *y);
    /* Cross-entropy of logits [n, c] against class indices, mean over n, with label smoothing.
     * Writes the loss and the softmax probabilities (for backward). */
    void (*xent_fwd)(int64_t n, int64_t c, float *loss, float *prob, const float *logits,
                     const int32_t *target, float smoothing);
    /* dlogits += g[0] / n * (prob - smoothed one-hot); g is the loss's gradient (device memory) */
    void (*xent_bwd)(int64_t n, int64_t c, float *dlogits, const float *g, const float *prob,
                     const int32_t *target, float smoothing);
    /* *hits += the rows of logits [n, c] whose cvn_argmax is their label; hits is one float in
     * device memory, so a loop can count without reading back. */
    void (*count_hits)(int64_t n, int64_t c, float *hits, const float *logits,
                       const int32_t *labels);
    /* Binary cross-entropy on logits, mean over n: max(x, 0) - x y + log(1 + exp(-|x|)). */
    void (*bce_fwd)(int64_t n, float *loss, const float *x, const float *y);
    /* dx += g[0] / n (sigmoid(x) - y); dy += g[0] / n (-x); NULL pointers are skipped */
    void (*bce_bwd)(int64_t n, float *dx, float *dy, const float *g, const float *x,
                    const float *y);

    /* im2col of nimg images (img_stride floats apart) into one matrix of c * kh * kw rows and
     * nimg * oh * ow columns, row stride ld: image i fills columns [i * oh * ow, (i + 1) * oh *
     * ow). col2im accumulates such a matrix back into the images. */
    void (*im2col)(const cvn_window *w, float *cols, int64_t ld, const float *img,
                   int64_t img_stride, int nimg);
    void (*col2im)(const cvn_window *w, float *img, int64_t img_stride, const float *cols,
                   int64_t ld, int nimg);
    /* dst[a * dsa + b * dsb + k] = src[a * ssa + b * ssb + k] (+ bias[a] when bias is not NULL),
     * for a < na, b < nb, k < inner: moves blocks between [O, N, HW] and [N, O, HW] layouts. */
    void (*copy_blocks)(int64_t na, int64_t nb, int64_t inner, float *dst, int64_t dsa, int64_t dsb,
                        const float *src, int64_t ssa, int64_t ssb, const float *bias);

    /* Optional fused convolution (cuDNN; on the CPU the direct 3x3 stride-1 kernels). Each returns
     * false to decline, before writing anything, and the op then uses im2col + gemm. Forward:
     * y = conv(x, w) + b (b may be NULL). Backward accumulates into dw, db and, when dx_add, dx
     * (else it overwrites dx); NULL pointers are skipped. */
    bool (*conv2d_fwd)(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                       const float *b);
    /* Optional: floats of scratch the fused forward (or backward) wants in d->work; the op takes
     * them from the tape's arena, so steady-state training allocates nothing. */
    int64_t (*conv2d_work)(const cvn_conv_desc *d, bool backward);
    bool (*conv2d_bwd)(const cvn_conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w, bool dx_add);

    /* Optional fused pooling and training-mode batch norm (NULL on the CPU; false declines and
     * the op uses the kernels below). Pooling: max when is_max, else average counting padding;
     * backward accumulates into dx from dy, y and x. Batch norm over [n, c, hw] with batch
     * statistics: y, the running statistics update (rm / rv may be NULL), and the saved mean and
     * inverse std; backward accumulates into dx, dgamma, dbeta. */
    bool (*pool2d_fwd)(bool is_max, int64_t n, const cvn_window *w, float *y, const float *x);
    bool (*pool2d_bwd)(bool is_max, int64_t n, const cvn_window *w, float *dx, const float *dy,
                       const float *y, const float *x);
    bool (*bn_train_fwd)(int64_t n, int64_t c, int64_t hw, float *y, const float *x,
                         const float *gamma, const float *beta, float *rm, float *rv,
                         float momentum, float eps, float *mean, float *invstd);
    bool (*bn_train_bwd)(int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma, float *dbeta,
                         const float *dy, const float *x, const float *gamma, const float *mean,
                         const float *invstd, float eps);

    /* pooling over planes (n * c of them), each [h, w] -> [oh, ow]; max keeps the argmax. */
    void (*maxpool_fwd)(const cvn_window *w, int64_t planes, float *y, int32_t *argmax,
                        const float *x);
    void (*maxpool_bwd)(const cvn_window *w, int64_t planes, float *dx, const float *dy,
                        const int32_t *argmax, bool add); /* add: as act_bwd */
    void (*avgpool_fwd)(const cvn_window *w, int64_t planes, float *y, const float *x);
    void (*avgpool_bwd)(const cvn_window *w, int64_t planes, float *dx, const float *dy);
    /* PyTorch's adaptive average pooling: window i spans [floor(i*h/oh), ceil((i+1)*h/oh)). */
    void (*adaptive_avgpool_fwd)(int64_t planes, int h, int w, int oh, int ow, float *y,
                                 const float *x);
    void (*adaptive_avgpool_bwd)(int64_t planes, int h, int w, int oh, int ow, float *dx,
                                 const float *dy);

    /* batch norm over [n, c, hw]: per-channel mean and biased variance; normalize; backward */
    /* Per channel: training turns the batch variance var into invstd = 1 / sqrt(var + eps) and,
     * when rm / rv are given, updates them: r = (1 - momentum) r + momentum * batch (variance times
     * unbias); eval copies mean = rm and derives invstd from rv (var unused). */
    void (*bn_prepare)(bool training, int64_t c, float *mean, const float *var, float *invstd,
                       float *rm, float *rv, float momentum, float eps, float unbias);
    void (*bn_stats)(int64_t n, int64_t c, int64_t hw, float *mean, float *var, const float *x);
    void (*bn_fwd)(int64_t n, int64_t c, int64_t hw, float *y, const float *x, const float *mean,
                   const float *invstd, const float *gamma, const float *beta);
    /* backward: dx += ..., dgamma += ..., dbeta += ... (NULL pointers are skipped). batch_stats:
     * mean / invstd were computed from x itself (training), so dx gets their terms too. */
    void (*bn_bwd)(bool batch_stats, int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma,
                   float *dbeta, const float *dy, const float *x, const float *mean,
                   const float *invstd, const float *gamma);

    /* dropout with a counter-based generator: element i is kept when hash(seed, i) >= p. */
    void (*dropout_fwd)(int64_t n, float *y, uint8_t *mask, const float *x, float p, uint64_t seed);
    void (*dropout_bwd)(int64_t n, float *dx, const float *dy, const uint8_t *mask, float scale);

    /* One fused optimizer step over n parameters w with gradients g and up to three state buffers
     * (SGD: momentum; Adam: m, v, vmax; RMSprop: square avg, momentum, grad avg; Rprop: previous
     * gradient, step size). */
    void (*optim_update)(const cvn_update_params *p, int64_t n, float *w, const float *g, float *s0,
                         float *s1, float *s2);

    /* sum of all n elements of x, and the sum of the squares of all elements of count buffers
     * (n[i] elements at x[i]: the gradients of a model at once, so a GPU synchronizes once);
     * accumulated in double, the result reaches the host */
    double (*sum)(int64_t n, const float *x);
    double (*sum_sq)(int count, const int64_t *n, const float *const *x);
    /* x = min(max(x, lo), hi) in place */
    void (*clamp)(int64_t n, float *x, float lo, float hi);
} cvn_backend;

/* The backend for a device, or NULL when it is not available (error set). kernels/backend.c. */
const cvn_backend *cvn_backend_get(int device);
/* The CPU backend (kernels/cpu/backend_cpu.c). */
const cvn_backend *cvn_backend_cpu(void);
/* The CUDA backend, or NULL with an error when there is no usable GPU (kernels/cuda/, built with
 * CUDA=1 only). */
const cvn_backend *cvn_backend_cuda(void);

#endif
