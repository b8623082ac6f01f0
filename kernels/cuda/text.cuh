/* Text for the backend's reports into a caller's buffer (cvn_cuda_conv_picks, cvn_cuda_conv_tuning,
 * cvn_cuda_cudnn_search): snprintf's rule of cutting short and counting the full length. */
#ifndef CVN_CUDA_TEXT_CUH
#define CVN_CUDA_TEXT_CUH

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Appends at buf + *len (while that is within size; buf may be NULL where size is 0) and adds
 * what the whole text takes to *len, so that *len ends as the report's full length */
static inline void text_append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void text_append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool room = buf && *len < size;
    int w = vsnprintf(room ? buf + *len : NULL, room ? size - *len : 0, fmt, ap);
    va_end(ap);
    if (w > 0) *len += (size_t)w;
}

#endif
