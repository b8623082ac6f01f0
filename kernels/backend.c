/* Which backend serves a device. The only place outside kernels/cuda/ that knows whether this
 * build has CUDA. */
#include "core/core.h"

const cvn_backend *cvn_backend_get(int device) {
    if (device == CVN_CPU) return cvn_backend_cpu();
    if (device == CVN_CUDA) {
#ifdef CVN_WITH_CUDA
        return cvn_backend_cuda();
#else
        cvn_set_error(CVN_ERR_DEVICE, "CUDA is not available: libcvnet was built without CUDA=1");
        return NULL;
#endif
    }
    cvn_set_error(CVN_ERR_DEVICE, "unknown device %d", device);
    return NULL;
}
