/* NVIDIA's libraries behind the CUDA backend (vendor.cu): cuBLAS for GEMM, cuDNN for convolution,
 * pooling and training batch norm. backend_cuda.cu calls them through a backend table of their own
 * and runs its own kernels where an entry is NULL (its library did not start) or declines
 * (returns false). The CPU emulation of the backend (tests/cuda_emu_runtime.h) has neither
 * library. Include after the CUDA runtime's header (or the emulation's). */
#ifndef CVN_CUDA_VENDOR_H
#define CVN_CUDA_VENDOR_H

#include <string.h>

#include "backend.h"

/* Starts cuBLAS and cuDNN on stream and fills, in *v (zeroed first), the backend table's entries
 * that they serve: gemm (cuBLAS, exact FP32: no TF32) where cuBLAS started, and conv2d_fwd,
 * conv2d_bwd (no epilogues: they decline one), pool2d_fwd, pool2d_bwd, bn_train_fwd and
 * bn_train_bwd where cuDNN did. The other entries stay NULL. */
void cuda_vendor_start(cudaStream_t stream, cvn_backend *v);

/* What cuDNN's search timed for the convolution shape it planned last (as cvn_cuda_cudnn_search
 * says), as text into buf (at most size bytes, ended by a 0); returns the text's full length, 0
 * where there was no search. */
size_t cuda_vendor_last_search(char *buf, size_t size);

/* Frees cuDNN's workspace (the backend's release_scratch); it grows back when next needed. */
void cuda_vendor_release_workspace(void);

/* A convolution's shape as the plan caches compare it (cuDNN's algorithms here, our implicit
 * GEMM's timed variants in backend_cuda.cu): every size, the epilogue's pooling (which orders our
 * GEMM's columns) and the product, in plain ints, so no padding or pointer takes part. */
typedef struct {
    int v[18];
} conv_key;

static inline conv_key key_of(const cvn_conv_desc *d, int mode) {
    conv_key k = {{d->n, d->c, d->h, d->w, d->o, d->kh, d->kw, d->oh, d->ow, d->sh, d->sw, d->ph,
                   d->pw, d->dh, d->dw, d->groups, d->pool, mode}};
    return k;
}
static inline bool same_key(const conv_key *a, const conv_key *b) {
    return !memcmp(a->v, b->v, sizeof a->v);
}

#endif
