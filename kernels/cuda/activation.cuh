/* The activations as device functions, shared by the elementwise kernels and the convolution's
 * epilogue (tiled_gemm.cuh); the definitions are the CPU's (kernels/cpu). */
#ifndef CVN_CUDA_ACTIVATION_CUH
#define CVN_CUDA_ACTIVATION_CUH

#include <math.h>

#include "backend.h"

__device__ inline float act(cvn_act_kind kind, float alpha, float x) {
    switch (kind) {
    case CVN_K_RELU: return x > 0.0f ? x : 0.0f;
    case CVN_K_LEAKY_RELU: return x > 0.0f ? x : alpha * x;
    case CVN_K_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case CVN_K_TANH: return tanhf(x);
    case CVN_K_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case CVN_K_SILU: return x / (1.0f + expf(-x));
    case CVN_K_HARDSWISH: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    default: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    }
}

__device__ inline float act_grad(cvn_act_kind kind, float alpha, float x, float y) {
    switch (kind) {
    case CVN_K_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case CVN_K_LEAKY_RELU: return x > 0.0f ? 1.0f : alpha;
    case CVN_K_SIGMOID: return y * (1.0f - y);
    case CVN_K_TANH: return 1.0f - y * y;
    case CVN_K_GELU: {
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        return cdf + x * expf(-0.5f * x * x) * 0.3989422804014327f;
    }
    case CVN_K_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case CVN_K_HARDSWISH: return x < -3.0f ? 0.0f : (x <= 3.0f ? x / 3.0f + 0.5f : 1.0f);
    default: return (x > -3.0f && x < 3.0f) ? 1.0f / 6.0f : 0.0f;
    }
}

#endif
