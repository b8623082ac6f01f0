/* The heap hook and thread settings. */
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/core.h"

/* OpenBLAS's own thread control (declared in its cblas.h, which we keep out of lib/). */
void openblas_set_num_threads(int n);

static cvn_allocator hook;

void cvn_set_allocator(const cvn_allocator *a) {
    if (a)
        hook = *a;
    else
        memset(&hook, 0, sizeof hook);
}

void *cvn_malloc(size_t size) {
    if (size == 0) size = 1;
    void *p = hook.malloc_fn ? hook.malloc_fn(size, hook.ctx) : malloc(size);
    if (!p) cvn_set_error(CVN_ERR_NOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *cvn_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) {
        cvn_set_error(CVN_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = cvn_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void cvn_free(void *p) {
    if (!p) return;
    if (hook.free_fn)
        hook.free_fn(p, hook.ctx);
    else
        free(p);
}

char *cvn_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = cvn_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

bool cvn_grow_array(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int grown = *cap ? 2 * *cap : 8;
    while (grown < need) grown *= 2;
    void *p = cvn_calloc((size_t)grown, elem);
    if (!p) return false;
    if (*arr && *cap) memcpy(p, *arr, (size_t)*cap * elem);
    cvn_free(*arr);
    *arr = p;
    *cap = grown;
    return true;
}

cvn_status cvn_set_num_threads(int n) {
    if (n < 1) return cvn_set_error(CVN_ERR_ARG, "set_num_threads: %d threads; need at least 1", n);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return CVN_OK;
}

int cvn_get_num_threads(void) {
    return omp_get_max_threads();
}
