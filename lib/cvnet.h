/* libcvnet — deep learning for vision in C11. The one public header.
 *
 * Conventions
 * - Functions that can fail return cvn_status, or NULL for those that return a pointer; the reason
 *   is then in cvn_last_error() (a per-thread, one-line message).
 * - Ops take NULL inputs gracefully: they return NULL and leave the first error in place, so a
 *   forward pass can be written as a chain and checked once at the end.
 * - Ownership: "caller owns" means free it with the matching _free function; "tape owns" means the
 *   object lives in the tape's arena until cvn_tape_reset() or cvn_tape_free(); "module owns" means
 *   it lives as long as the module.
 */
#ifndef CVNET_H
#define CVNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version (the Makefile reads it from here). */
#define CVN_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

typedef enum {
    CVN_OK = 0,
    CVN_ERR_ARG,         /* an argument is out of range or NULL */
    CVN_ERR_SHAPE,       /* shapes do not fit together */
    CVN_ERR_DTYPE,       /* wrong element type */
    CVN_ERR_NOMEM,       /* an allocation failed */
    CVN_ERR_IO,          /* a file could not be read or written */
    CVN_ERR_FORMAT,      /* a file or buffer is malformed */
    CVN_ERR_DEVICE,      /* the device is not available in this build or on this machine */
    CVN_ERR_STATE,       /* the call does not fit the object's state (e.g. backward twice) */
    CVN_ERR_UNSUPPORTED, /* a valid request that this build does not implement */
} cvn_status;

/* The last error message of the calling thread; never NULL, "" when none. */
const char *cvn_last_error(void);
/* The status of the last error of the calling thread (CVN_OK when none). */
cvn_status cvn_last_status(void);
/* Forgets the last error. */
void cvn_clear_error(void);
/* A constant name for a status, e.g. "CVN_ERR_SHAPE". */
const char *cvn_status_name(cvn_status s);

/* ---------------------------------------------------------------- memory, threads */

/* Routes every heap allocation of the library through these functions (NULL restores the C
 * library's). Meant for counting or tracking allocators; set it before creating any object. */
typedef struct {
    void *(*malloc_fn)(size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} cvn_allocator;
void cvn_set_allocator(const cvn_allocator *a);

/* Sets the number of threads used by libcvnet's kernels and by OpenBLAS (n >= 1). */
cvn_status cvn_set_num_threads(int n);
int cvn_get_num_threads(void);

/* The SIMD instruction set the CPU kernels use: "avx512", "avx2" or "scalar". It is picked at first
 * use from what the CPU supports; the environment variable CVN_SIMD=avx512|avx2|scalar lowers it.
 */
const char *cvn_simd_name(void);

/* ---------------------------------------------------------------- random numbers */

/* A seeded random number generator (xoshiro256**). Plain data: copy it to fork a stream. There is
 * no global generator: every function that draws random numbers takes one. */
typedef struct {
    uint64_t s[4];
} cvn_rng;

void cvn_rng_seed(cvn_rng *r, uint64_t seed);
uint64_t cvn_rng_next(cvn_rng *r);
/* Uniform in [0, 1). */
float cvn_rng_uniform(cvn_rng *r);
/* Standard normal (Box-Muller). */
float cvn_rng_normal(cvn_rng *r);

/* ---------------------------------------------------------------- tensors */

#define CVN_MAX_DIMS 6

typedef enum { CVN_F32 = 0, CVN_U8 = 1, CVN_I32 = 2 } cvn_dtype;
/* CVN_CUDA needs a build with `make CUDA=1` and a GPU; otherwise asking for it gives
 * CVN_ERR_DEVICE. The CUDA backend reads CVN_CUDA_GEMM, CVN_CUDA_CONV, CVN_CUDA_POOL and
 * CVN_CUDA_BN (=native picks our kernels over cuBLAS / cuDNN; CVN_CUDA_CONV=im2col picks im2col +
 * GEMM over our implicit-GEMM convolution), CVN_CUDA_TUNE (=0: our implicit GEMM takes its rule
 * of thumb for tile sizes instead of timing them once per convolution shape) and
 * CVN_CUDA_COPY_STREAM (=0: the loader's batches are copied on the compute stream, in order with
 * the kernels, instead of on a copy stream that overlaps the step before) and
 * CVN_CUDA_MEMORY_LIMIT (=N: the backend holds at most N MiB of GPU memory; past that, tensors
 * fail with CVN_ERR_NOMEM once its scratch is freed). A value it does not take (a typo such as
 * CVN_CUDA_CONV=cudnnn) makes asking for CVN_CUDA fail with CVN_ERR_ARG and a message naming the
 * variable and the values it takes, rather than quietly run another path. */
typedef enum { CVN_CPU = 0, CVN_CUDA = 1 } cvn_device;

typedef struct cvn_tensor cvn_tensor;
struct cvn_tensor {
    cvn_dtype dtype;
    cvn_device device;
    int ndim;
    int64_t shape[CVN_MAX_DIMS];
    int64_t strides[CVN_MAX_DIMS]; /* in elements; contiguous row-major (NCHW) unless a view */
    void *data;
    cvn_tensor *grad;   /* gradient after cvn_backward(), same shape; NULL before (and after,
                         * for op results: see cvn_tensor_retain_grad) */
    bool requires_grad; /* leaf tensors: set by the user; op results: derived */
    /* private to the library */
    uint32_t flags;
    void *node; /* the tape node that produced this tensor, if any */
};

/* Size in bytes of one element of dtype. */
size_t cvn_dtype_size(cvn_dtype dtype);
/* Number of elements. */
int64_t cvn_numel(const cvn_tensor *t);
/* True when the strides are those of a contiguous row-major tensor. */
bool cvn_is_contiguous(const cvn_tensor *t);
/* Writes the shape as "[2, 3, 4]" into buf (always terminated); returns buf. */
char *cvn_shape_str(const cvn_tensor *t, char *buf, size_t size);

/* A tensor on the heap, zero-filled. Caller owns; free with cvn_tensor_free(). */
cvn_tensor *cvn_tensor_new(cvn_dtype dtype, int ndim, const int64_t *shape);
/* A zero-filled heap tensor on a device (CVN_ERR_DEVICE when the device is not available).
 * Caller owns; free with cvn_tensor_free(). */
cvn_tensor *cvn_tensor_new_on(cvn_dtype dtype, int ndim, const int64_t *shape, cvn_device device);
/* A copy of t on device (caller owns), e.g. a batch uploaded to the GPU or a result downloaded. */
cvn_tensor *cvn_tensor_to(const cvn_tensor *t, cvn_device device);
/* Moves a heap tensor's data to device in place (its gradient is dropped). */
cvn_status cvn_tensor_move(cvn_tensor *t, cvn_device device);
/* Copies a contiguous tensor's bytes (bytes must equal its size) to host memory dst, from any
 * device. */
cvn_status cvn_tensor_read(const cvn_tensor *t, void *dst, size_t bytes);
/* A heap tensor holding a copy of n values of data (n must equal the shape's element count).
 * Caller owns. */
cvn_tensor *cvn_tensor_from_f32(int ndim, const int64_t *shape, const float *data, int64_t n);
/* Frees a heap tensor and its gradient. NULL is ignored. Tensors owned by a tape must not be freed.
 */
void cvn_tensor_free(cvn_tensor *t);
/* Marks a leaf tensor as needing a gradient; its grad buffer is allocated at the first backward and
 * kept (gradients then accumulate until cvn_tensor_zero_grad()). */
cvn_status cvn_tensor_set_requires_grad(cvn_tensor *t, bool on);
/* The gradient buffer of a heap tensor that requires grad, made zero-filled on its device when it
 * has none yet (for gradients computed outside the tape). Owned by t. */
cvn_tensor *cvn_tensor_grad(cvn_tensor *t);
/* Sets the gradient of a leaf tensor to zero (no-op when it has none). */
void cvn_tensor_zero_grad(cvn_tensor *t);
/* Keeps the gradient of an op result (a tape tensor an op made) after cvn_backward(), as
 * torch.Tensor.retain_grad: by default backward gives each op result's gradient back to the tape
 * once it has propagated it, so a step holds only the gradients still in flight. Leaves (inputs,
 * parameters) and the tensor backward started from always keep theirs. */
cvn_status cvn_tensor_retain_grad(cvn_tensor *t);
/* Fills a contiguous f32 tensor, on any device, with a constant. */
cvn_status cvn_tensor_fill(cvn_tensor *t, float value);
/* Fills a contiguous f32 tensor, on any device, with uniform values in [lo, hi), or normal values;
 * they are drawn on the host in element order, so one seed gives the same tensor on every device.
 */
cvn_status cvn_tensor_uniform(cvn_tensor *t, cvn_rng *r, float lo, float hi);
cvn_status cvn_tensor_normal(cvn_tensor *t, cvn_rng *r, float mean, float std);
/* Copies the values of src into dst (same dtype and element count, both contiguous; any devices).
 */
cvn_status cvn_tensor_copy(cvn_tensor *dst, const cvn_tensor *src);
/* Typed access to contiguous CPU data; NULL (with an error) on a dtype mismatch. */
float *cvn_tensor_f32(const cvn_tensor *t);
int32_t *cvn_tensor_i32(const cvn_tensor *t);
uint8_t *cvn_tensor_u8(const cvn_tensor *t);

/* ---------------------------------------------------------------- tape (autograd) */

/* A tape records the ops of a forward pass (define-by-run) and owns an arena that holds every
 * intermediate tensor of the step. cvn_tape_reset() drops both in O(1); after the first step the
 * arena has grown to fit and further steps make no heap allocation. */
typedef struct cvn_tape cvn_tape;

/* A tape whose tensors live on device. Caller owns; free with cvn_tape_free(). Errors:
 * CVN_ERR_DEVICE when the device is not available. */
cvn_tape *cvn_tape_new(cvn_device device);
void cvn_tape_free(cvn_tape *t);
/* Forgets all recorded nodes and frees every tensor the tape owns (O(1)). Gradients of heap
 * tensors (parameters) stay. */
void cvn_tape_reset(cvn_tape *t);
/* Turns recording on or off and returns the previous setting: the no-grad scope is
 *   bool prev = cvn_tape_set_grad_enabled(t, false); ...; cvn_tape_set_grad_enabled(t, prev); */
bool cvn_tape_set_grad_enabled(cvn_tape *t, bool enabled);
bool cvn_tape_grad_enabled(const cvn_tape *t);
/* Bytes the tape's arena holds from the heap (its capacity), and bytes in use now. */
size_t cvn_tape_arena_capacity(const cvn_tape *t);
size_t cvn_tape_arena_used(const cvn_tape *t);
/* Number of nodes recorded since the last reset. */
int cvn_tape_num_nodes(const cvn_tape *t);

/* Back-propagates from a tensor with one element (seed gradient 1), or from any tensor with an
 * explicit seed gradient of its shape (grad_output may be NULL for the scalar case). Gradients of
 * leaves accumulate into their grad buffers. May be called once per recorded graph. */
cvn_status cvn_backward(cvn_tape *t, cvn_tensor *output, const cvn_tensor *grad_output);

/* A tensor in the tape's arena (uninitialized contents). Tape owns. */
cvn_tensor *cvn_tape_tensor(cvn_tape *t, cvn_dtype dtype, int ndim, const int64_t *shape);
/* A tape tensor holding a copy of the values. Tape owns. */
cvn_tensor *cvn_tape_tensor_f32(cvn_tape *t, int ndim, const int64_t *shape, const float *data);

/* ---------------------------------------------------------------- ops
 * Every op returns a new tensor owned by the tape, or NULL on error. All tensors must be f32 on the
 * tape's device unless stated otherwise. */

/* Elementwise with NumPy broadcasting. */
cvn_tensor *cvn_add(cvn_tape *t, cvn_tensor *a, cvn_tensor *b);
cvn_tensor *cvn_sub(cvn_tape *t, cvn_tensor *a, cvn_tensor *b);
cvn_tensor *cvn_mul(cvn_tape *t, cvn_tensor *a, cvn_tensor *b);
cvn_tensor *cvn_div(cvn_tape *t, cvn_tensor *a, cvn_tensor *b);
/* Scalar ops: x + c, x * c, and scale * x + shift in one pass. */
cvn_tensor *cvn_add_scalar(cvn_tape *t, cvn_tensor *x, float c);
cvn_tensor *cvn_mul_scalar(cvn_tape *t, cvn_tensor *x, float c);
cvn_tensor *cvn_affine_scalar(cvn_tape *t, cvn_tensor *x, float scale, float shift);

/* a [M, K] x b [K, N] -> [M, N]. */
cvn_tensor *cvn_matmul(cvn_tape *t, cvn_tensor *a, cvn_tensor *b);
/* x [N, in] , weight [out, in], bias [out] or NULL -> [N, out]  (y = x W^T + b, as PyTorch). */
cvn_tensor *cvn_linear(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias);

typedef struct {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dilation_h, dilation_w;
    int groups;
} cvn_conv2d_params;
/* Stride 1, no padding, dilation 1, one group. */
cvn_conv2d_params cvn_conv2d_defaults(void);
/* x [N, C, H, W], weight [O, C/groups, KH, KW], bias [O] or NULL -> [N, O, OH, OW]. */
cvn_tensor *cvn_conv2d(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                       const cvn_conv2d_params *p);

/* Pooling over [N, C, H, W]; stride 0 means stride = kernel. avg_pool2d counts padded cells in the
 * divisor (PyTorch's count_include_pad=True). */
cvn_tensor *cvn_max_pool2d(cvn_tape *t, cvn_tensor *x, int kernel, int stride, int pad);
cvn_tensor *cvn_avg_pool2d(cvn_tape *t, cvn_tensor *x, int kernel, int stride, int pad);
/* PyTorch's adaptive_avg_pool2d: output [N, C, out_h, out_w]. */
cvn_tensor *cvn_adaptive_avg_pool2d(cvn_tape *t, cvn_tensor *x, int out_h, int out_w);
/* Mean over H and W: [N, C, H, W] -> [N, C, 1, 1]. */
cvn_tensor *cvn_global_avg_pool2d(cvn_tape *t, cvn_tensor *x);

/* Activations (elementwise). */
cvn_tensor *cvn_relu(cvn_tape *t, cvn_tensor *x);
cvn_tensor *cvn_leaky_relu(cvn_tape *t, cvn_tensor *x, float negative_slope);
cvn_tensor *cvn_sigmoid(cvn_tape *t, cvn_tensor *x);
cvn_tensor *cvn_tanh(cvn_tape *t, cvn_tensor *x);
cvn_tensor *cvn_gelu(cvn_tape *t, cvn_tensor *x); /* exact, with erf */
cvn_tensor *cvn_silu(cvn_tape *t, cvn_tensor *x);
cvn_tensor *cvn_hardswish(cvn_tape *t, cvn_tensor *x);
cvn_tensor *cvn_hardsigmoid(cvn_tape *t, cvn_tensor *x);

/* Softmax and log-softmax along dim (negative counts from the end). */
cvn_tensor *cvn_softmax(cvn_tape *t, cvn_tensor *x, int dim);
cvn_tensor *cvn_log_softmax(cvn_tape *t, cvn_tensor *x, int dim);

/* Inverted dropout: in training, zeroes each element with probability p and scales the rest by
 * 1/(1-p), drawing from r; in eval (training == false) returns x unchanged. */
cvn_tensor *cvn_dropout(cvn_tape *t, cvn_tensor *x, float p, bool training, cvn_rng *r);

/* Batch normalization over [N, C, H, W] (or [N, C]). In training it normalizes with the batch
 * statistics and, when running_mean / running_var are given, updates them in place with momentum
 * (running = (1 - momentum) * running + momentum * batch, unbiased variance, as PyTorch). In eval
 * it uses the running statistics. weight and bias ([C]) may be NULL. */
cvn_tensor *cvn_batch_norm2d(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                             cvn_tensor *running_mean, cvn_tensor *running_var, bool training,
                             float momentum, float eps);
/* A convolution's (or linear layer's) weight [O, ...] and bias [O] (may be NULL) with an eval-mode
 * batch norm after it folded in, as torch.nn.utils.fuse_conv_bn_weights: weight * s and
 * (bias - running_mean) * s + beta, s = gamma / sqrt(running_var + eps) per output channel (gamma
 * and beta may be NULL: 1 and 0). The results are new tape tensors; nothing is recorded, so they
 * are for inference. The Sequential container folds a Conv2d's BatchNorm2d this way at inference.
 */
cvn_status cvn_batch_norm2d_fold(cvn_tape *t, cvn_tensor *weight, cvn_tensor *bias,
                                 cvn_tensor *gamma, cvn_tensor *beta, cvn_tensor *running_mean,
                                 cvn_tensor *running_var, float eps, cvn_tensor **weight_out,
                                 cvn_tensor **bias_out);

/* A view with another shape (one entry may be -1); shares data with x. */
cvn_tensor *cvn_reshape(cvn_tape *t, cvn_tensor *x, int ndim, const int64_t *shape);
/* Merges dims start_dim..end into one: [N, C, H, W] -> [N, C*H*W] for start_dim 1. */
cvn_tensor *cvn_flatten(cvn_tape *t, cvn_tensor *x, int start_dim);
/* Concatenates n tensors along dim; all other dims must agree. */
cvn_tensor *cvn_concat(cvn_tape *t, int n, cvn_tensor *const *xs, int dim);

/* Sum or mean over the listed dims (ndims == 0: over all); keepdim keeps them as size 1. */
cvn_tensor *cvn_sum(cvn_tape *t, cvn_tensor *x, int ndims, const int *dims, bool keepdim);
cvn_tensor *cvn_mean(cvn_tape *t, cvn_tensor *x, int ndims, const int *dims, bool keepdim);

/* Losses, averaged over the batch (a tensor of shape [1]). */
/* logits [N, C], targets i32 [N] with values in [0, C); label_smoothing in [0, 1). */
cvn_tensor *cvn_cross_entropy(cvn_tape *t, cvn_tensor *logits, const cvn_tensor *targets,
                              float label_smoothing);
/* Mean squared error over all elements; pred and target of one shape. */
cvn_tensor *cvn_mse(cvn_tape *t, cvn_tensor *pred, cvn_tensor *target);
/* Binary cross-entropy on logits, averaged over all elements (numerically stable form). */
cvn_tensor *cvn_bce_with_logits(cvn_tape *t, cvn_tensor *logits, cvn_tensor *target);

/* ---------------------------------------------------------------- gradient check */

/* Compares the analytic gradient of a scalar function of the inputs with central finite differences
 * (step eps) on every element of every input that requires grad. f must build its output on the
 * tape from inputs[0..n-1] and return it (any shape: its sum is differentiated). Returns CVN_OK
 * when |analytic - numeric| <= atol + rtol * |numeric| everywhere; otherwise the error message
 * names the input, the element and both values. */
typedef cvn_tensor *(*cvn_gradcheck_fn)(cvn_tape *t, cvn_tensor *const *inputs, void *ctx);
cvn_status cvn_gradcheck(cvn_gradcheck_fn f, int n, cvn_tensor *const *inputs, void *ctx, float eps,
                         float atol, float rtol);

/* ---------------------------------------------------------------- optimizers */

/* Optimizers with the update rules of their torch.optim namesakes. Their state lives in contiguous
 * buffers on the parameters' device, updated by one fused kernel per parameter. */
typedef enum { CVN_SGD, CVN_ADAM, CVN_ADAMW, CVN_RMSPROP, CVN_RPROP } cvn_optimizer;

typedef struct {
    cvn_optimizer kind;
    float lr;
    float weight_decay; /* L2 term added to the gradient; AdamW: decoupled decay; not Rprop */
    float momentum, dampening; /* SGD; RMSprop uses momentum too */
    bool nesterov;             /* SGD */
    float beta1, beta2, eps;   /* Adam, AdamW; RMSprop uses eps */
    bool amsgrad;              /* Adam, AdamW */
    float alpha;               /* RMSprop smoothing constant */
    bool centered;             /* RMSprop */
    float eta_minus, eta_plus; /* Rprop step-size factors */
    float step_min, step_max;  /* Rprop step-size bounds */
} cvn_optim_config;

typedef struct cvn_optim cvn_optim;
typedef struct cvn_module cvn_module; /* see "modules" below */

/* torch.optim's defaults for kind (SGD, which has none in PyTorch, gets lr 0.01). */
cvn_optim_config cvn_optim_defaults(cvn_optimizer kind);
/* A new optimizer with no parameters; caller owns, free with cvn_optim_free(). Errors: a
 * hyperparameter out of range (the message names it). */
cvn_optim *cvn_optim_new(const cvn_optim_config *config);
void cvn_optim_free(cvn_optim *o);
/* Adds a parameter group with its own learning rate and weight decay (lr < 0 or weight_decay < 0:
 * the config's). The tensors stay owned by their module; all must be f32 heap tensors on one
 * device. Parameters without requires_grad, or without a gradient at a step, are left alone
 * (frozen). Groups can be added until the first step. Returns the group's index, or -1. */
int cvn_optim_add_group(cvn_optim *o, int n, cvn_tensor *const *params, float lr,
                        float weight_decay);
/* Adds every parameter of a module as one group with the config's lr and weight decay. */
int cvn_optim_add_module(cvn_optim *o, const cvn_module *m);
/* One update of every parameter that has a gradient. */
cvn_status cvn_optim_step(cvn_optim *o);
/* Zeroes the gradients of every parameter. */
void cvn_optim_zero_grad(cvn_optim *o);
/* Learning rate of a group (group -1: set every group; get returns group 0's). */
cvn_status cvn_optim_set_lr(cvn_optim *o, int group, float lr);
float cvn_optim_get_lr(const cvn_optim *o, int group);
int cvn_optim_num_groups(const cvn_optim *o);
cvn_optimizer cvn_optim_kind(const cvn_optim *o);
/* "SGD", "Adam", "AdamW", "RMSprop", "Rprop". */
const char *cvn_optimizer_name(cvn_optimizer kind);
/* Steps taken so far; setting it restores a checkpoint (with the state buffers). */
int64_t cvn_optim_steps(const cvn_optim *o);
void cvn_optim_set_steps(cvn_optim *o, int64_t steps);
/* The state buffers ("momentum_buffer", "exp_avg", ...), one f32 tensor each over all parameters
 * in group order; optimizer-owned, valid until cvn_optim_free(). Write into them (cvn_tensor_copy)
 * to restore a checkpoint. */
int cvn_optim_num_state(const cvn_optim *o);
cvn_tensor *cvn_optim_state_at(cvn_optim *o, int i, const char **name);

/* Gradient clipping over every parameter of the optimizer that has a gradient, as
 * torch.nn.utils.clip_grad_norm_ (global L2 norm; scale by max_norm / (norm + 1e-6) when that is
 * below 1; the norm before clipping goes to *norm when not NULL) and clip_grad_value_. */
cvn_status cvn_optim_clip_grad_norm(cvn_optim *o, float max_norm, float *norm);
cvn_status cvn_optim_clip_grad_value(cvn_optim *o, float clip_value);

/* Learning-rate schedules, as torch.optim.lr_scheduler's (closed forms). A scheduler drives the
 * learning rate of every group of one optimizer from each group's lr at creation (OneCycle: from
 * max_lr); cvn_scheduler_step() is called once per epoch (OneCycle: once per batch) after the
 * optimizer's step. OneCycle cycles the learning rate only, not momentum. */
typedef enum {
    CVN_SCHED_STEP,        /* lr = base gamma^floor(epoch / step_size) */
    CVN_SCHED_MULTISTEP,   /* lr = base gamma^(number of milestones <= epoch) */
    CVN_SCHED_EXPONENTIAL, /* lr = base gamma^epoch */
    CVN_SCHED_COSINE,      /* lr = eta_min + (base - eta_min)(1 + cos(pi epoch / t_max)) / 2 */
    CVN_SCHED_ONECYCLE,    /* cosine warm-up to max_lr over pct_start, then cosine decay */
    CVN_SCHED_PLATEAU,     /* lr *= factor after patience epochs without improvement */
} cvn_schedule_kind;

#define CVN_MAX_MILESTONES 16
typedef struct {
    cvn_schedule_kind kind;
    float gamma;                        /* step, multistep, exponential */
    int step_size;                      /* step */
    int milestones[CVN_MAX_MILESTONES]; /* multistep, increasing */
    int n_milestones;
    int t_max;                                     /* cosine */
    float eta_min;                                 /* cosine */
    float max_lr;                                  /* onecycle */
    int total_steps;                               /* onecycle */
    float pct_start, div_factor, final_div_factor; /* onecycle: 0.3, 25, 1e4 in PyTorch */
    bool maximize;                                 /* plateau: the metric should rise */
    float factor, threshold, min_lr;               /* plateau: 0.1, 1e-4 (relative), 0 */
    int patience, cooldown;                        /* plateau: 10, 0 */
} cvn_schedule_config;

typedef struct cvn_scheduler cvn_scheduler;
/* PyTorch's defaults for kind (gamma 0.1, step_size 1, onecycle and plateau as noted above). */
cvn_schedule_config cvn_schedule_defaults(cvn_schedule_kind kind);
/* Caller owns; the optimizer must outlive it and have its groups already. */
cvn_scheduler *cvn_scheduler_new(cvn_optim *o, const cvn_schedule_config *config);
/* Advances one epoch (or batch); metric is read by the plateau schedule only. */
cvn_status cvn_scheduler_step(cvn_scheduler *s, float metric);
void cvn_scheduler_free(cvn_scheduler *s);

/* ---------------------------------------------------------------- data */

/* Reads an IDX file of unsigned bytes (MNIST / FashionMNIST images or labels), plain or .gz, into
 * a u8 tensor of the file's shape. Truncated, oversized or malformed files give CVN_ERR_FORMAT,
 * unreadable ones CVN_ERR_IO. Caller owns the tensor. */
cvn_tensor *cvn_idx_load(const char *path);

/* An in-memory image classification dataset: u8 images [N, C, H, W] and i32 labels, with class
 * names. Images stay u8; loaders convert each batch. */
typedef struct cvn_dataset cvn_dataset;

/* From an IDX image file ([N, H, W] or [N, C, H, W]) and an IDX label file ([N]); the counts must
 * agree. Classes are named "0", "1", ... up to the largest label. Caller owns. */
cvn_dataset *cvn_dataset_idx(const char *images_path, const char *labels_path);
/* FashionMNIST's training (60,000) or test (10,000) set from dir (NULL: Debian's
 * /usr/share/datasets/fashion-mnist), with its class names ("T-shirt/top", ...). When the files are
 * missing the error names the package that ships them (dataset-fashion-mnist). Caller owns. */
cvn_dataset *cvn_dataset_fashion_mnist(const char *dir, bool train);
/* CIFAR-10's binary version from dir: data_batch_1..5.bin (train, 50,000) or test_batch.bin
 * (10,000), class names from batches.meta.txt when present. Files that are not whole records, or
 * labels outside 0-9, give CVN_ERR_FORMAT naming the file. Caller owns. */
cvn_dataset *cvn_dataset_cifar10(const char *dir, bool train);
/* An image folder: root/<class>/<image>.jpg|.jpeg|.png|.gif|.bmp, classes named after the folders
 * in sorted order, every image decoded (stb_image), converted to channels (1 gray, 3 RGB) and
 * resized (bilinear) to height x width. An image that does not decode gives CVN_ERR_FORMAT naming
 * it. Caller owns. */
cvn_dataset *cvn_dataset_image_folder(const char *root, int channels, int height, int width);
/* Splits ds at random (from seed) into parts by ratios (e.g. 70/15/15; they need not sum to 1):
 * out[0..parts) receive new datasets the caller owns. Errors: a part would be empty. */
cvn_status cvn_dataset_split(const cvn_dataset *ds, int parts, const float *ratios, uint64_t seed,
                             cvn_dataset **out);
void cvn_dataset_free(cvn_dataset *ds);
int64_t cvn_dataset_len(const cvn_dataset *ds);
int cvn_dataset_num_classes(const cvn_dataset *ds);
const char *cvn_dataset_class_name(const cvn_dataset *ds, int label);
/* Image shape: channels, height, width. */
void cvn_dataset_image_shape(const cvn_dataset *ds, int *c, int *h, int *w);
/* Keeps only the first n samples (n <= len). */
cvn_status cvn_dataset_limit(cvn_dataset *ds, int64_t n);
/* The u8 images and i32 labels (dataset-owned). */
const cvn_tensor *cvn_dataset_images(const cvn_dataset *ds);
const cvn_tensor *cvn_dataset_labels(const cvn_dataset *ds);

/* Batches of a dataset: a shuffled order per epoch drawn from the seed (the same seed gives the
 * same batches, with or without prefetching), each image transformed (resize, then a random crop
 * after zero padding, then a random horizontal flip, as torchvision's Resize, RandomCrop(padding)
 * and RandomHorizontalFlip) and converted to f32 as (pixel / 255 - mean[c]) / std[c]. */
typedef struct {
    int batch_size;
    bool shuffle, drop_last;
    uint64_t seed;
    float mean[3], std[3];  /* per channel; std 0 means 1 */
    int resize_h, resize_w; /* resize every image first (0: keep the dataset's size) */
    int crop_padding;       /* random crop of the same size after padding by this much (0: off) */
    bool hflip;             /* flip left-right with probability 1/2 */
    bool prefetch;          /* prepare the next batch in a background thread */
} cvn_loader_config;

typedef struct cvn_loader cvn_loader;
/* The dataset must outlive the loader. Caller owns. */
cvn_loader *cvn_loader_new(const cvn_dataset *ds, const cvn_loader_config *config);
void cvn_loader_free(cvn_loader *l);
/* The next batch as tape tensors on the tape's device (x f32 [B, C, H, W], y i32 [B]). Returns
 * false at the end of an epoch (with *x = *y = NULL) and starts the next one, reshuffled; false
 * with an error set on failure. */
bool cvn_loader_next(cvn_loader *l, cvn_tape *t, cvn_tensor **x, cvn_tensor **y);
int64_t cvn_loader_num_batches(const cvn_loader *l);
int cvn_loader_epoch(const cvn_loader *l);
/* The shape of the images the loader yields (after resizing). */
void cvn_loader_image_shape(const cvn_loader *l, int *c, int *h, int *w);

/* ---------------------------------------------------------------- modules */

typedef struct cvn_module cvn_module;

/* Runs the module on x; the result is owned by the tape (NULL on error). */
cvn_tensor *cvn_module_forward(cvn_module *m, cvn_tape *t, cvn_tensor *x);
/* Frees the module, its children and its parameters. NULL is ignored. */
void cvn_module_free(cvn_module *m);
/* Sets training (true) or evaluation mode, recursively. */
void cvn_module_train(cvn_module *m, bool training);
bool cvn_module_is_training(const cvn_module *m);
/* The module's kind, e.g. "Conv2d". */
const char *cvn_module_kind(const cvn_module *m);

/* Parameters and buffers, named as PyTorch's state_dict names them ("features.0.weight").
 * cvn_module_num_params counts trainable parameters (weights, biases), cvn_module_param_at returns
 * the i-th with its name; buffers (batch-norm running statistics) are listed separately. Names and
 * tensors are module-owned. */
int cvn_module_num_params(const cvn_module *m);
cvn_tensor *cvn_module_param_at(const cvn_module *m, int i, const char **name);
int cvn_module_num_buffers(const cvn_module *m);
cvn_tensor *cvn_module_buffer_at(const cvn_module *m, int i, const char **name);
/* The parameter or buffer with this dotted name, or NULL. */
cvn_tensor *cvn_module_find(const cvn_module *m, const char *name);
/* Total number of trainable parameter elements. */
int64_t cvn_module_param_count(const cvn_module *m);
/* Zeroes every parameter's gradient. */
void cvn_module_zero_grad(cvn_module *m);
/* Moves every parameter and buffer to device (gradients are dropped). */
cvn_status cvn_module_to(cvn_module *m, cvn_device device);

/* Layers. Weights are initialized as PyTorch initializes them (kaiming_uniform with a = sqrt(5),
 * biases uniform in +-1/sqrt(fan_in); batch norm weight 1, bias 0), drawing from r.
 * Each returns a module the caller owns, or NULL. */
cvn_module *cvn_linear_new(int in_features, int out_features, bool bias, cvn_rng *r);
cvn_module *cvn_conv2d_new(int in_channels, int out_channels, int kernel_h, int kernel_w,
                           const cvn_conv2d_params *p, bool bias, cvn_rng *r);
cvn_module *cvn_max_pool2d_new(int kernel, int stride, int pad);
cvn_module *cvn_avg_pool2d_new(int kernel, int stride, int pad);
cvn_module *cvn_adaptive_avg_pool2d_new(int out_h, int out_w);
/* Dropout keeps its own generator, seeded from seed. */
cvn_module *cvn_dropout_new(float p, uint64_t seed);
/* momentum 0.1 and eps 1e-5 are PyTorch's defaults. */
cvn_module *cvn_batchnorm2d_new(int channels, float momentum, float eps);
cvn_module *cvn_flatten_new(int start_dim);

typedef enum {
    CVN_ACT_RELU,
    CVN_ACT_LEAKY_RELU,
    CVN_ACT_SIGMOID,
    CVN_ACT_TANH,
    CVN_ACT_GELU,
    CVN_ACT_SILU,
    CVN_ACT_HARDSWISH,
    CVN_ACT_HARDSIGMOID,
} cvn_activation;
/* alpha is the negative slope of leaky ReLU (ignored by the others). */
cvn_module *cvn_activation_new(cvn_activation kind, float alpha);
/* Applies an activation to x: the op behind cvn_activation_new. */
cvn_tensor *cvn_activate(cvn_tape *t, cvn_tensor *x, cvn_activation kind, float alpha);

/* What follows a convolution in cvn_conv2d_fused: the activation act (alpha as in
 * cvn_activation_new) when activate, then, when pool > 0, a pool x pool max pool of stride pool
 * without padding. A zeroed struct is the plain convolution. */
typedef struct {
    bool activate;
    cvn_activation act;
    float alpha;
    int pool;
} cvn_conv_epilogue;
/* max_pool2d(activate(conv2d(x, weight, bias))) as e says (e may be NULL: none). When the tape
 * records (gradients wanted, or an ONNX trace) it is exactly the three ops one after another;
 * otherwise, at inference, the backend runs them in one pass where it can (the CPU: 3x3 stride-1
 * convolutions with any activation and 2x2 pooling), so the convolution's output never goes
 * through memory unpooled. Sequential models use it by themselves for Conv2d followed by an
 * activation and / or MaxPool2d. */
cvn_tensor *cvn_conv2d_fused(cvn_tape *t, cvn_tensor *x, cvn_tensor *weight, cvn_tensor *bias,
                             const cvn_conv2d_params *p, const cvn_conv_epilogue *e);

/* The reference CNN of the documentation, for 1x28x28 inputs: conv 1->32 3x3 pad 1, ReLU, max-pool
 * 2; conv 32->64 3x3 pad 1, ReLU, max-pool 2; flatten; linear 3136->128, ReLU, dropout 0.25 (seeded
 * from r); linear 128->10. Caller owns. */
cvn_module *cvn_reference_cnn(cvn_rng *r);

/* ---- model zoo: networks for small images (28x28 to 64x64), any input channels and classes.
 * Every zoo model is a Sequential whose last child, "head", is the Linear classifier; the parts
 * before it are named ("stem", "layer1", ..., "pool", "flatten") as PyTorch's models name them. */
typedef enum {
    CVN_ARCH_CNN,       /* plain CNN: conv blocks, then fully-connected layers (hpo searches it) */
    CVN_ARCH_RESNET,    /* ResNet-style: basic blocks with batch norm and skip connections */
    CVN_ARCH_MOBILENET, /* MobileNetV3-style: depthwise separable, hard-swish, squeeze-excite */
    CVN_ARCH_EFFICIENTNET, /* EfficientNet-style: MBConv, SiLU, squeeze-excite, multipliers */
} cvn_arch;

#define CVN_CNN_MAX_LAYERS 8
typedef struct {
    int in_channels, height, width, num_classes;
    float width_mult,
        depth_mult; /* resnet / mobilenet / efficientnet: channels, blocks (1 = base) */
    float dropout;  /* resnet / mobilenet / efficientnet: before the head */
    /* plain CNN: n_layers blocks of conv (kernel_size, "same" padding) [+ batch norm] + ReLU +
     * max-pool 2 (while the map is 2x2 or larger) + dropout; then n_fc Linear + ReLU + dropout. */
    int n_layers, kernel_size;
    int channels[CVN_CNN_MAX_LAYERS];
    float conv_dropout[CVN_CNN_MAX_LAYERS];
    bool batch_norm;
    int n_fc;
    int fc_units[CVN_CNN_MAX_LAYERS];
    float fc_dropout[CVN_CNN_MAX_LAYERS];
} cvn_model_config;

/* The architecture's default configuration for images of c x h x w and the number of classes. */
cvn_model_config cvn_model_defaults(cvn_arch arch, int c, int h, int w, int num_classes);
/* Builds a network, initialized from r. Caller owns. Errors: sizes out of range (named). */
cvn_module *cvn_model_new(cvn_arch arch, const cvn_model_config *config, cvn_rng *r);
/* "cnn", "resnet", "mobilenet", "efficientnet", and back (CVN_ERR_ARG for an unknown name). */
const char *cvn_arch_name(cvn_arch arch);
cvn_status cvn_arch_parse(const char *name, cvn_arch *arch);
/* Replaces a zoo model's head with a fresh Linear of the same input size and num_classes outputs
 * (for fine-tuning on another set of classes). */
cvn_status cvn_model_replace_head(cvn_module *model, int num_classes, cvn_rng *r);
/* Sets requires_grad to !frozen on every parameter whose dotted name starts with prefix ("" for
 * all). Returns the number of parameters changed, or -1. Optimizers skip frozen parameters. */
int cvn_module_freeze(cvn_module *m, const char *prefix, bool frozen);

/* What a summary measures, per image: parameters and the FLOPs of one forward pass (2 per
 * multiply-add of Conv2d and Linear layers; elementwise work is not counted, as torchinfo). */
typedef struct {
    int64_t params, trainable_params;
    int64_t flops;
    int64_t output_elems; /* the sum of the outputs of every leaf layer, per image */
} cvn_model_stats;
/* A table like torchinfo's (layer, output shape, parameters; totals), from one forward of a batch
 * of one c x h x w image in eval mode on the model's device. *text (may be NULL) receives a
 * NUL-terminated string the caller frees with cvn_text_free(); stats (may be NULL) the totals. */
cvn_status cvn_model_summary(cvn_module *model, int c, int h, int w, char **text,
                             cvn_model_stats *stats);
void cvn_text_free(char *text);

/* A sequential container. Its children are named by position ("0", "1", ...) unless given a name,
 * so a Sequential named "features" inside another gives "features.0.weight" as PyTorch does.
 * Add every child before listing parameters of an enclosing module (listings are cached). */
cvn_module *cvn_sequential_new(void);
/* Appends child, named by its position (the container takes ownership, also on failure). */
cvn_status cvn_sequential_add(cvn_module *seq, cvn_module *child);
/* Appends child under a name (no dots); NULL names it by position. Takes ownership. */
cvn_status cvn_sequential_add_named(cvn_module *seq, const char *name, cvn_module *child);
int cvn_sequential_len(const cvn_module *seq);
cvn_module *cvn_sequential_at(const cvn_module *seq, int i);

/* ---------------------------------------------------------------- checkpoints (safetensors) */

/* A safetensors file read into memory and validated whole (header length, JSON, dtypes, shapes
 * against byte counts, offsets inside the file without overlaps or holes) before anything is
 * handed out: a truncated or hostile file gives CVN_ERR_FORMAT, never a crash. Caller owns. */
typedef struct cvn_safetensors cvn_safetensors;
cvn_safetensors *cvn_safetensors_open(const char *path);
void cvn_safetensors_close(cvn_safetensors *st);
int cvn_safetensors_count(const cvn_safetensors *st);
/* The i-th tensor's name (file-owned), or NULL. */
const char *cvn_safetensors_name(const cvn_safetensors *st, int i);
/* Shape of a tensor (false when absent); shape holds CVN_MAX_DIMS. */
bool cvn_safetensors_shape(const cvn_safetensors *st, const char *name, int *ndim, int64_t *shape);
/* A copy of an F32 tensor on the CPU (caller owns); other dtypes give CVN_ERR_FORMAT. */
cvn_tensor *cvn_safetensors_get(const cvn_safetensors *st, const char *name);
/* A "__metadata__" value (file-owned), or NULL. */
const char *cvn_safetensors_meta(const cvn_safetensors *st, const char *key);
/* Writes f32 tensors (any device) under names, with metadata given as n_meta key/value pairs
 * (meta[2i], meta[2i+1]); atomically: a temp file, fsync, rename, so a crash leaves the previous
 * file. */
cvn_status cvn_safetensors_write(const char *path, int n, const char *const *names,
                                 const cvn_tensor *const *tensors, int n_meta,
                                 const char *const *meta);

/* A checkpoint is a safetensors file holding a model's parameters and buffers under their
 * state_dict names (so PyTorch's safetensors.torch.load_file reads it), the optimizer's state as
 * "optim.<buffer>" ("optim.exp_avg", ...), and metadata: the caller's pairs plus "optim.kind",
 * "optim.steps". opt may be NULL. Written atomically. */
cvn_status cvn_checkpoint_save(const char *path, cvn_module *model, cvn_optim *opt, int n_meta,
                               const char *const *meta);

/* What cvn_checkpoint_load did: tensors loaded, skipped (shape differs), missing from the file,
 * unexpected (in the file, not in the model), whether the optimizer state was restored, and one
 * line per tensor not loaded (caller frees text with cvn_text_free). */
typedef struct {
    int loaded, skipped, missing, unexpected;
    bool optim_restored;
    char *text;
} cvn_load_report;
/* Loads parameters and buffers by name into model (onto its device): those whose shapes agree are
 * loaded, the others reported (a new head keeps its initialization). With opt (may be NULL) the
 * optimizer state and step count are restored when the checkpoint holds state of the same kind
 * and size. report may be NULL. Errors: a failed copy; nothing at all matching (CVN_ERR_ARG). */
cvn_status cvn_checkpoint_load(const cvn_safetensors *ck, cvn_module *model, cvn_optim *opt,
                               cvn_load_report *report);

/* ---------------------------------------------------------------- ONNX export */

typedef struct {
    const char *input_name;  /* the graph input's name: "input" */
    const char *output_name; /* the graph output's name: "logits" */
    bool dynamic_batch;      /* dim 0 of input and output is the symbol "batch": true */
    const char *doc;         /* the model's doc_string, or NULL */
} cvn_onnx_options;
cvn_onnx_options cvn_onnx_defaults(void);

/* Writes model as an ONNX file (IR version 8, opset 17, producer "libcvnet"): one forward in eval
 * mode on a zero input of input_shape (ndim dims, dim 0 the batch) is traced, each op becomes ONNX
 * nodes named after its module ("layer1.0.conv1/Conv"), and parameters and buffers become
 * initializers under their state_dict names, as little-endian raw data. Dropout vanishes. The
 * model's mode is restored. options may be NULL (the defaults). The file is written atomically.
 * Errors: an op with no ONNX mapping (CVN_ERR_UNSUPPORTED, naming the op and its module), a bad
 * shape or name, a write failure. */
cvn_status cvn_onnx_export(cvn_module *model, int ndim, const int64_t *input_shape,
                           const char *path, const cvn_onnx_options *options);

/* ---------------------------------------------------------------- hyperparameter search */

/* A study searches hyperparameters the way Optuna does: ask for a trial, let it suggest values,
 * report intermediate values (and stop when it should be pruned), tell the study how it ended.
 * Trials live in memory, or in an SQLite file (config.storage = "sqlite:FILE") that makes the
 * study resumable and lets several processes run its trials at once: each change is written
 * through as one transaction, so a process killed at any point loses nothing that had ended, and
 * its running trial is marked FAIL when the study is next opened or asked for a trial. Open the
 * study in each process (after fork(), never before). */
typedef struct cvn_study cvn_study;
typedef struct cvn_trial cvn_trial;

typedef enum { CVN_MINIMIZE, CVN_MAXIMIZE } cvn_direction;
typedef enum { CVN_SAMPLER_TPE, CVN_SAMPLER_RANDOM } cvn_sampler_kind;
typedef enum { CVN_PRUNER_NONE, CVN_PRUNER_MEDIAN, CVN_PRUNER_HALVING } cvn_pruner_kind;
typedef enum {
    CVN_TRIAL_RUNNING,
    CVN_TRIAL_COMPLETE,
    CVN_TRIAL_PRUNED,
    CVN_TRIAL_FAIL
} cvn_trial_state;

typedef struct {
    const char *name;        /* "study" */
    cvn_direction direction; /* CVN_MINIMIZE */
    cvn_sampler_kind sampler;
    uint64_t seed;
    /* TPE (Optuna's TPESampler defaults): random trials before the model (10), candidates drawn
     * from l(x) per parameter (24) */
    int n_startup_trials, n_ei_candidates;
    cvn_pruner_kind pruner;
    /* median (Optuna's MedianPruner): finished trials before pruning starts (5), steps never
     * pruned (0), every interval_steps-th step judged (1) */
    int median_startup_trials, median_warmup_steps, median_interval_steps;
    /* successive halving: rung k is at step min_resource * reduction_factor^k (1, 4) */
    int halving_min_resource, halving_reduction_factor;
    /* NULL: in memory. "sqlite:FILE": the study of this name in FILE, created when absent and
     * continued when present (its direction must match) */
    const char *storage;
} cvn_study_config;
cvn_study_config cvn_study_defaults(void);

/* Caller owns. Errors: a bad config (named); with storage, a file that cannot be opened
 * (CVN_ERR_IO), is not a libcvnet study file or is damaged (CVN_ERR_FORMAT), or holds the study
 * with the other direction (CVN_ERR_ARG). */
cvn_study *cvn_study_new(const cvn_study_config *config);
/* Frees the study; with storage, trials of this process still running end as FAIL. */
void cvn_study_free(cvn_study *s);
/* Reads the trials other processes added or ended since (storage only; a no-op in memory). Ask,
 * suggest and should_prune do this themselves. */
cvn_status cvn_study_refresh(cvn_study *s);

/* A new running trial, numbered 0, 1, ... (study-owned). */
cvn_trial *cvn_study_ask(cvn_study *s);
/* Values for the trial, drawn by the study's sampler from the trials finished so far. Asking again
 * under the same name returns the same value; another range under that name is CVN_ERR_ARG.
 * float: [lo, hi], log-uniform when log (lo > 0). int: lo, lo + step, ..., <= hi (log: step 1).
 * categorical: the index of one of n choices (names kept for reports). */
cvn_status cvn_trial_suggest_float(cvn_trial *t, const char *name, double lo, double hi, bool log,
                                   double *out);
cvn_status cvn_trial_suggest_int(cvn_trial *t, const char *name, int64_t lo, int64_t hi,
                                 int64_t step, bool log, int64_t *out);
cvn_status cvn_trial_suggest_categorical(cvn_trial *t, const char *name, int n,
                                         const char *const *choices, int *out);
/* An intermediate value (e.g. validation accuracy after epoch step); a step reported twice keeps
 * the first value. */
cvn_status cvn_trial_report(cvn_trial *t, int64_t step, double value);
/* Whether the study's pruner would stop the trial at its last reported step. */
bool cvn_trial_should_prune(cvn_trial *t);
/* Ends a running trial: COMPLETE with its value, PRUNED (its value is the last reported one) or
 * FAIL. Errors: a trial not running, a NaN value for COMPLETE. */
cvn_status cvn_study_tell(cvn_study *s, cvn_trial *t, cvn_trial_state state, double value);

int cvn_study_num_trials(const cvn_study *s);
cvn_trial *cvn_study_trial(const cvn_study *s, int i);
/* The best COMPLETE trial, or NULL. */
cvn_trial *cvn_study_best_trial(const cvn_study *s);
int cvn_trial_number(const cvn_trial *t);
cvn_trial_state cvn_trial_state_of(const cvn_trial *t);
double cvn_trial_value(const cvn_trial *t); /* NaN until it ends */
int cvn_trial_num_params(const cvn_trial *t);
/* The i-th parameter's name and its value as text ("0.0013", "4", "Adam"); NULL past the end. */
const char *cvn_trial_param_name(const cvn_trial *t, int i, char *value, size_t value_size);
/* Seconds from ask to tell (NaN while running). */
double cvn_trial_duration(const cvn_trial *t);
/* Optuna's example printout: "Study statistics:", finished / pruned / complete counts,
 * "Best trial:", "Value: X", "Params:" and one "name: value" line each. */
cvn_status cvn_study_print_statistics(FILE *f, const cvn_study *s);
/* The k best COMPLETE trials, best first, as a text table (rank, number, value, duration, every
 * parameter), as the ClearML report showed it. */
cvn_status cvn_study_print_top(FILE *f, const cvn_study *s, int k);
/* Every trial, one row each: number, state, value, duration_s, then a params_<name> column per
 * parameter any trial suggested (empty where a trial has none), written atomically. */
cvn_status cvn_study_write_csv(const cvn_study *s, const char *path);
/* How much of the objective's variance each parameter explains on its own (its first-order
 * share, as fANOVA defines importance), over the COMPLETE trials and the parameters they all
 * have. Optuna fits a random forest to estimate it; we estimate each parameter's marginal mean
 * directly, by bins of equal counts (categories for a categorical, on the log scale for a log
 * parameter), so it needs no model but more trials: the share is the correlation ratio
 * sum_b n_b (mean_b - mean)^2 / sum (y - mean)^2. The shares are normalized to sum to 1 and
 * sorted, largest first. Writes up to cap names (study-owned) and values; returns how many
 * parameters there are, or -1 with the error set (fewer than 2 COMPLETE trials, or no spread). */
int cvn_study_param_importances(const cvn_study *s, int cap, const char **names, double *values);
/* Writes into dir (which must exist): trials.csv, history.svg (every trial's value and the best
 * so far), parallel.svg (parallel coordinates of the parameters and the value), importance.svg
 * (the shares above; left out below 2 complete trials) and report.html holding the statistics,
 * the top-10 table and the plots. */
cvn_status cvn_study_write_report(const cvn_study *s, const char *dir);

/* ---------------------------------------------------------------- metrics */

/* A classifier's predicted class probabilities [N, classes] with the true labels. */
typedef struct cvn_predictions cvn_predictions;
/* Runs model (eval mode, nothing recorded; both restored) over the loader to the end of its
 * current epoch and keeps softmax(logits) and labels. Caller owns. */
cvn_predictions *cvn_predict(cvn_module *model, cvn_tape *t, cvn_loader *loader);
/* From arrays (copied): probs [n, classes] (scores; rows need not sum to 1), labels [n]. */
cvn_predictions *cvn_predictions_new(int64_t n, int classes, const float *probs,
                                     const int32_t *labels);
void cvn_predictions_free(cvn_predictions *p);
int64_t cvn_predictions_len(const cvn_predictions *p);

/* out[true * classes + predicted] counts (predicted = the highest probability, first on ties;
 * a row's first NaN where it has one, as torch.argmax). */
cvn_status cvn_confusion_matrix(const cvn_predictions *p, int64_t *out);

typedef struct {
    int64_t support;             /* samples of the class */
    float precision, recall, f1; /* recall is the class's accuracy; NaN where undefined */
    float auc;                   /* one-vs-rest ROC AUC; NaN without positives or negatives */
} cvn_class_metric;
/* One entry per class into out[classes]. */
cvn_status cvn_class_metrics(const cvn_predictions *p, cvn_class_metric *out);

typedef struct {
    float accuracy;
    float macro_precision, macro_recall, macro_f1, macro_auc; /* means over defined classes */
} cvn_metrics;
cvn_status cvn_metrics_summary(const cvn_predictions *p, cvn_metrics *out);

/* The one-vs-rest ROC curve of class cls: one point per distinct score threshold, from (0, 0) to
 * (1, 1), into fpr and tpr (room for n + 2 points). Returns the number of points, or -1. */
int cvn_roc_curve(const cvn_predictions *p, int cls, float *fpr, float *tpr);

/* Prints "Accuracy for class: <name> is 54.9 %" per class (names may be NULL: numbers). */
cvn_status cvn_print_class_accuracy(FILE *f, const cvn_predictions *p, const char *const *names);

/* ---------------------------------------------------------------- reports */

/* One line of a chart: n points (x may be NULL for 1, 2, ..., n); NaN y values leave a gap.
 * points: dots at the points, no line (a scatter). */
typedef struct {
    const char *name;
    int n;
    const float *x, *y;
    bool points;
} cvn_series;

typedef struct {
    const char *title, *x_label, *y_label;
    int width, height; /* pixels; 0 = 720 x 420 */
    bool log_y;        /* logarithmic y axis (values <= 0 leave gaps) */
} cvn_chart;

/* Writes an SVG line chart (axes with ticks, labels, legend, title) to path, atomically (a temp
 * file renamed into place). Errors: no series or points, a write failure. */
cvn_status cvn_svg_line_chart(const char *path, const cvn_chart *chart, int n_series,
                              const cvn_series *series);

/* A confusion-matrix heat map (rows: true class, columns: predicted; counts in the cells, shaded
 * by the share of the row), written atomically. values holds n x n counts. */
cvn_status cvn_svg_heatmap(const char *path, const char *title, int n, const char *const *names,
                           const int64_t *values);

/* Horizontal bars, one per name, in the order given, with the value printed at each bar's end;
 * written atomically. Values must be finite and >= 0. */
cvn_status cvn_svg_bar_chart(const char *path, const char *title, const char *x_label, int n,
                             const char *const *names, const double *values);

/* One axis of a parallel-coordinates chart: linear, logarithmic (values > 0), or categorical
 * (values are indices into labels, n_labels of them). */
typedef struct {
    const char *name;
    bool log;
    int n_labels;
    const char *const *labels;
} cvn_axis;
/* n_lines polylines across n_axes vertical axes; values holds n_lines x n_axes numbers (NaN: the
 * line skips that axis). Lines are shaded from light to dark by their value on axis color_axis,
 * dark for the best (the smallest when best_low, else the largest), and the best drawn last, on
 * top. Written atomically. */
cvn_status cvn_svg_parallel_coordinates(const char *path, const char *title, int n_axes,
                                        const cvn_axis *axes, int n_lines, const double *values,
                                        int color_axis, bool best_low);

/* A self-contained HTML page (inline style and SVG) built piece by piece; text is escaped. */
typedef struct cvn_report cvn_report;
cvn_report *cvn_report_new(const char *title);
void cvn_report_free(cvn_report *r);
void cvn_report_heading(cvn_report *r, const char *text);
void cvn_report_paragraph(cvn_report *r, const char *text);
void cvn_report_pre(cvn_report *r, const char *text); /* e.g. a model summary */
/* rows x cols cells, row-major; the first row is the header. */
void cvn_report_table(cvn_report *r, int rows, int cols, const char *const *cells);
/* Inlines the SVG file at svg_path (e.g. from cvn_svg_line_chart) with an optional caption. */
cvn_status cvn_report_svg(cvn_report *r, const char *svg_path, const char *caption);
/* Writes the page to path atomically. */
cvn_status cvn_report_write(cvn_report *r, const char *path);

/* ---------------------------------------------------------------- training loop */

/* Mean cross-entropy loss and accuracy (in [0, 1]) of a classifier over the loader's batches up to
 * the end of its current epoch (a whole pass for a fresh loader), in eval mode without recording
 * (the module's mode and the tape's grad mode are restored; the tape is reset). */
cvn_status cvn_evaluate(cvn_module *model, cvn_tape *t, cvn_loader *loader, float *loss,
                        float *accuracy);

/* One epoch's figures, as cvn_fit reports them. */
typedef struct {
    int epoch;
    float train_loss, test_loss,
        test_accuracy; /* accuracy in [0, 1]; test_* NaN without a test loader */
    float images_per_s, seconds, lr;
} cvn_epoch_stats;

typedef struct {
    int epochs;
    float label_smoothing;
    float clip_grad_norm;     /* 0: no clipping */
    cvn_scheduler *scheduler; /* optional; stepped per epoch (per batch when per_batch) */
    bool scheduler_per_batch;
    const char *csv_path; /* optional: one row per epoch, written atomically at each epoch */
    int progress;         /* -1 auto (bar on a terminal), 0 off, 1 plain lines */
    /* optional: called after every batch with its loss, and after every epoch. Without on_batch
     * (and a per-batch scheduler) fit reads losses back from the device only now and then. */
    void (*on_batch)(void *ctx, int64_t iteration, float loss);
    void (*on_epoch)(void *ctx, const cvn_epoch_stats *stats);
    void *ctx;
} cvn_fit_config;

/* Trains a classifier with cross-entropy for config->epochs passes of train (the tape is reset
 * after every step), evaluating on test (may be NULL) after each epoch. stats_out (may be NULL)
 * receives the last epoch's figures. */
cvn_status cvn_fit(cvn_module *model, cvn_optim *opt, cvn_tape *t, cvn_loader *train,
                   cvn_loader *test, const cvn_fit_config *config, cvn_epoch_stats *stats_out);

#ifdef __cplusplus
}
#endif
#endif /* CVNET_H */
