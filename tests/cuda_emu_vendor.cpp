/* The CPU emulation of the CUDA backend (cuda_emu_runtime.h) has neither cuBLAS nor cuDNN: every
 * entry of the vendor table stays NULL, so the backend runs its own kernels on every path, as on
 * a GPU where neither library starts. */
#include "cuda_emu_runtime.h"

#include "cuda/vendor.h"

void cuda_vendor_start(cudaStream_t, cvn_backend *v) { memset(v, 0, sizeof *v); }
size_t cuda_vendor_last_search(char *buf, size_t size) {
    if (size) buf[0] = 0;
    return 0;
}
void cuda_vendor_release_workspace(void) {}
