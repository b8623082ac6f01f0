/* cuBLAS and cuDNN for the CUDA backend (vendor.h says how backend_cuda.cu calls them): GEMM,
 * and convolution, pooling and training batch norm, all in exact FP32 on the backend's compute
 * stream. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "core/core.h"
}
#include "cuda/lean_pick.cuh"
#include "cuda/text.cuh"
#include "cuda/vendor.h"

static cudaStream_t stream;
static cublasHandle_t blas;
static cudnnHandle_t dnn;

/* ------------------------------------------------------------------ cuBLAS */

static void blas_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
    /* row-major C = A B is column-major C^T = B^T A^T: swap the operands */
    cublasSgemm(blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                &alpha, b, ldb, a, lda, &beta, c, ldc);
}

/* ------------------------------------------------------------------ cuDNN convolution */
/* Descriptors and algorithms for one convolution shape, found once and kept (training repeats a
 * handful of shapes). FP32 FMA math, no TF32, so results match the CPU to float rounding. */
typedef struct {
    bool used;
    conv_key key;
    cudnnTensorDescriptor_t x, y, b;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_fwd, ws_data, ws_filter;
} conv_plan;

#define CONV_PLANS 32
static conv_plan plans[CONV_PLANS];
static int next_plan;

/* What cuDNN's search timed for the shape planned last, per product (forward, backward data,
 * backward filter): each algorithm that ran, fastest first, its workspace, and which was kept
 * (cuda_vendor_last_search) */
static struct {
    int n[3], kept[3];
    int algo[3][8];
    float ms[3][8];
    size_t bytes[3][8];
} last_search;

static const char *const algo_names[3][8] = {
    {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING", "WINOGRAD",
     "WINOGRAD_NONFUSED"},
    {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"},
    {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"}};

/* The algorithm to keep of one product's search (perf: cuDNN's AlgoPerf structs of that product,
 * fastest first, got of them): the one with the least workspace of those within TUNE_ROOM_SLACK
 * of the fastest (lean_pick, as our own tuning keeps the least room); -1 where none succeeded.
 * The successful results go to last_search. */
template <class Perf> static int search_pick(int product, const Perf *perf, int got) {
    got = got < 8 ? got : 8;
    auto ok = [&](int i) { return perf[i].status == CUDNN_STATUS_SUCCESS; };
    int kept = lean_pick(
        got, [&](int i) { return ok(i) ? (double)perf[i].time : INFINITY; },
        [&](int i) { return perf[i].memory; });
    int n = 0;
    for (int i = 0; i < got; i++) {
        if (!ok(i)) continue;
        if (i == kept) last_search.kept[product] = n;
        last_search.algo[product][n] = (int)perf[i].algo;
        last_search.bytes[product][n] = perf[i].memory;
        last_search.ms[product][n++] = perf[i].time;
    }
    last_search.n[product] = n;
    return got && ok(kept) ? kept : -1;
}

size_t cuda_vendor_last_search(char *buf, size_t size) {
    static const char *const products[3] = {"fwd", "bwd data", "bwd filter"};
    size_t len = 0;
    if (size) buf[0] = 0;
    for (int p = 0; p < 3; p++) {
        if (!last_search.n[p]) continue;
        text_append(buf, size, &len, "%s%s:", len ? " | " : "", products[p]);
        for (int i = 0; i < last_search.n[p]; i++) {
            int a = last_search.algo[p][i];
            const char *name = a >= 0 && a < 8 && algo_names[p][a] ? algo_names[p][a] : "?";
            text_append(buf, size, &len, "%s %s %.3f ms", i ? "," : "", name, last_search.ms[p][i]);
            if (last_search.bytes[p][i])
                text_append(buf, size, &len, " %.1f MiB", last_search.bytes[p][i] / 1048576.0);
            if (i == last_search.kept[p]) text_append(buf, size, &len, " (kept)");
        }
    }
    return len;
}
static void *workspace;
static size_t workspace_size;

/* The workspace comes from the backend's own allocator (counted; its free waits for the stream,
 * and where it fails it frees the backend's scratch, this workspace among it, and tries again). */
void cuda_vendor_release_workspace(void) {
    if (workspace) cvn_backend_cuda()->free(workspace);
    workspace = NULL, workspace_size = 0;
}
static bool ensure_workspace(size_t bytes) {
    if (bytes <= workspace_size) return true;
    cuda_vendor_release_workspace();
    workspace = cvn_backend_cuda()->alloc(bytes);
    workspace_size = workspace ? bytes : 0;
    return workspace != NULL;
}

static conv_plan *plan_for(const cvn_conv_desc *d) {
    conv_key key = key_of(d, 0);
    for (int i = 0; i < CONV_PLANS; i++)
        if (plans[i].used && same_key(&plans[i].key, &key)) return &plans[i];
    conv_plan *p = &plans[next_plan];
    next_plan = (next_plan + 1) % CONV_PLANS;
    if (!p->used) {
        cudnnCreateTensorDescriptor(&p->x);
        cudnnCreateTensorDescriptor(&p->y);
        cudnnCreateTensorDescriptor(&p->b);
        cudnnCreateFilterDescriptor(&p->w);
        cudnnCreateConvolutionDescriptor(&p->conv);
    }
    p->used = false;
    p->key = key;
    memset(&last_search, 0, sizeof last_search);
    if (cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->c, d->h, d->w) ||
        cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->o, d->oh, d->ow) ||
        cudnnSetTensor4dDescriptor(p->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, d->o, 1, 1) ||
        cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->o, d->c / d->groups,
                                   d->kh, d->kw) ||
        cudnnSetConvolution2dDescriptor(p->conv, d->ph, d->pw, d->sh, d->sw, d->dh, d->dw,
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ||
        cudnnSetConvolutionGroupCount(p->conv, d->groups) ||
        cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH))
        return NULL;
    /* cuDNN times its algorithms on this shape once (as PyTorch's cudnn.benchmark does); of those
     * that succeed, search_pick keeps the fastest or one nearly as fast with less workspace. */
    int got = 0, k;
    cudnnConvolutionFwdAlgoPerf_t f[8];
    cudnnConvolutionBwdDataAlgoPerf_t bd[8];
    cudnnConvolutionBwdFilterAlgoPerf_t bf[8];
    if (cudnnFindConvolutionForwardAlgorithm(dnn, p->x, p->w, p->conv, p->y, 8, &got, f) ||
        (k = search_pick(0, f, got)) < 0)
        return NULL;
    p->fwd = f[k].algo;
    if (cudnnFindConvolutionBackwardDataAlgorithm(dnn, p->w, p->y, p->conv, p->x, 8, &got, bd) ||
        (k = search_pick(1, bd, got)) < 0)
        return NULL;
    p->bwd_data = bd[k].algo;
    if (cudnnFindConvolutionBackwardFilterAlgorithm(dnn, p->x, p->y, p->conv, p->w, 8, &got, bf) ||
        (k = search_pick(2, bf, got)) < 0)
        return NULL;
    p->bwd_filter = bf[k].algo;
    if (cudnnGetConvolutionForwardWorkspaceSize(dnn, p->x, p->w, p->conv, p->y, p->fwd, &p->ws_fwd) ||
        cudnnGetConvolutionBackwardDataWorkspaceSize(dnn, p->w, p->y, p->conv, p->x, p->bwd_data,
                                                     &p->ws_data) ||
        cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn, p->x, p->y, p->conv, p->w,
                                                       p->bwd_filter, &p->ws_filter))
        return NULL;
    p->used = true;
    return p;
}


static bool dnn_conv2d_fwd(const cvn_conv_desc *d, float *y, const float *x, const float *w,
                           const float *b) {
    if (d->act_on || d->pool) return false; /* no epilogues: the op composes them */
    conv_plan *p = plan_for(d);
    if (!p || !ensure_workspace(p->ws_fwd)) return false;
    const float one = 1.0f, zero = 0.0f;
    if (cudnnConvolutionForward(dnn, &one, p->x, x, p->w, w, p->conv, p->fwd, workspace,
                                p->ws_fwd, &zero, p->y, y))
        return false;
    if (b) cudnnAddTensor(dnn, &one, p->b, b, &one, p->y, y);
    return true;
}

static bool dnn_conv2d_bwd(const cvn_conv_desc *d, float *dx, float *dw, float *db,
                           const float *dy, const float *x, const float *w, bool dx_add) {
    if (d->act_on || d->pool) return false;
    conv_plan *p = plan_for(d);
    size_t ws = p ? (p->ws_data > p->ws_filter ? p->ws_data : p->ws_filter) : 0;
    if (!p || !ensure_workspace(ws)) return false;
    const float one = 1.0f, dx_beta = dx_add ? 1.0f : 0.0f; /* beta = 1: accumulate */
    if (db && cudnnConvolutionBackwardBias(dnn, &one, p->y, dy, &one, p->b, db)) return false;
    if (dw && cudnnConvolutionBackwardFilter(dnn, &one, p->x, x, p->y, dy, p->conv, p->bwd_filter,
                                             workspace, p->ws_filter, &one, p->w, dw))
        return false;
    if (dx && cudnnConvolutionBackwardData(dnn, &one, p->w, w, p->y, dy, p->conv, p->bwd_data,
                                           workspace, p->ws_data, &dx_beta, p->x, dx))
        return false;
    return true;
}

/* ------------------------------------------------------------------ cuDNN pooling, batch norm */

/* Descriptors are made per call: host-side work of a few microseconds, and pooling and batch
 * norm see few distinct shapes. */
typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnPoolingDescriptor_t pool;
} pool_descs;

static bool pool_setup(pool_descs *p, bool is_max, int64_t n, const cvn_window *w) {
    if (w->dh != 1 || w->dw != 1) return false;
    cudnnCreateTensorDescriptor(&p->x);
    cudnnCreateTensorDescriptor(&p->y);
    cudnnCreatePoolingDescriptor(&p->pool);
    return !cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, w->c,
                                       w->h, w->w) &&
           !cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, w->c,
                                       w->oh, w->ow) &&
           !cudnnSetPooling2dDescriptor(p->pool,
                                        is_max ? CUDNN_POOLING_MAX_DETERMINISTIC
                                               : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
                                        CUDNN_PROPAGATE_NAN, w->kh, w->kw, w->ph, w->pw, w->sh,
                                        w->sw);
}

static void pool_release(pool_descs *p) {
    cudnnDestroyTensorDescriptor(p->x);
    cudnnDestroyTensorDescriptor(p->y);
    cudnnDestroyPoolingDescriptor(p->pool);
}

static bool dnn_pool2d_fwd(bool is_max, int64_t n, const cvn_window *w, float *y, const float *x) {
    pool_descs p;
    const float one = 1.0f, zero = 0.0f;
    bool ok = pool_setup(&p, is_max, n, w) &&
              !cudnnPoolingForward(dnn, p.pool, &one, p.x, x, &zero, p.y, y);
    pool_release(&p);
    return ok;
}

static bool dnn_pool2d_bwd(bool is_max, int64_t n, const cvn_window *w, float *dx, const float *dy,
                          const float *y, const float *x) {
    pool_descs p;
    const float one = 1.0f; /* beta = 1: accumulate into dx */
    bool ok = pool_setup(&p, is_max, n, w) &&
              !cudnnPoolingBackward(dnn, p.pool, &one, p.y, y, p.y, dy, p.x, x, &one, p.x, dx);
    pool_release(&p);
    return ok;
}

typedef struct {
    cudnnTensorDescriptor_t x, bn;
} bn_descs;

static bool bn_setup(bn_descs *d, int64_t n, int64_t c, int64_t hw) {
    cudnnCreateTensorDescriptor(&d->x);
    cudnnCreateTensorDescriptor(&d->bn);
    /* [n, c, hw] as [n, c, hw, 1]: spatial mode normalizes over n and hw */
    return !cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, (int)c,
                                       (int)hw, 1) &&
           !cudnnSetTensor4dDescriptor(d->bn, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)c, 1, 1);
}

static void bn_release(bn_descs *d) {
    cudnnDestroyTensorDescriptor(d->x);
    cudnnDestroyTensorDescriptor(d->bn);
}

static bool dnn_bn_train_fwd(int64_t n, int64_t c, int64_t hw, float *y, const float *x,
                            const float *gamma, const float *beta, float *rm, float *rv,
                            float momentum, float eps, float *mean, float *invstd) {
    if (eps < CUDNN_BN_MIN_EPSILON || n * hw < 2) return false;
    bn_descs d;
    const float one = 1.0f, zero = 0.0f;
    /* cuDNN needs both running buffers or neither */
    bool ok = (rm == NULL) == (rv == NULL) && bn_setup(&d, n, c, hw);
    ok = ok && !cudnnBatchNormalizationForwardTraining(
                   dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x, d.x, y, d.bn, gamma, beta,
                   (double)momentum, rm, rv, (double)eps, mean, invstd);
    bn_release(&d);
    return ok;
}

static bool dnn_bn_train_bwd(int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma,
                            float *dbeta, const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *invstd, float eps) {
    if (!dx || !dgamma || !dbeta) return false; /* cuDNN writes all three */
    bn_descs d;
    const float one = 1.0f; /* betas = 1: accumulate */
    bool ok = bn_setup(&d, n, c, hw) &&
              !cudnnBatchNormalizationBackward(dnn, CUDNN_BATCHNORM_SPATIAL, &one, &one, &one,
                                               &one, d.x, x, d.x, dy, d.x, dx, d.bn, gamma, dgamma,
                                               dbeta, (double)eps, mean, invstd);
    bn_release(&d);
    return ok;
}

/* ------------------------------------------------------------------ starting */

void cuda_vendor_start(cudaStream_t s, cvn_backend *v) {
    memset(v, 0, sizeof *v);
    stream = s;
    if (cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS) {
        cublasSetStream(blas, stream);
        cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH); /* exact FP32 products (no TF32) */
        v->gemm = blas_gemm;
    }
    if (cudnnCreate(&dnn) == CUDNN_STATUS_SUCCESS) {
        cudnnSetStream(dnn, stream);
        v->conv2d_fwd = dnn_conv2d_fwd;
        v->conv2d_bwd = dnn_conv2d_bwd;
        v->pool2d_fwd = dnn_pool2d_fwd;
        v->pool2d_bwd = dnn_pool2d_bwd;
        v->bn_train_fwd = dnn_bn_train_fwd;
        v->bn_train_bwd = dnn_bn_train_bwd;
    }
}
