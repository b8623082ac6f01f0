/* The CPU backend: memory, OpenBLAS GEMM, and the choice of SIMD variant at run time. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/core.h"
#include "cpu/cpu.h"

void *cvn_cpu_alloc(size_t bytes) {
    return cvn_malloc(bytes);
}
void cvn_cpu_free(void *p) {
    cvn_free(p);
}
/* Copies and fills of more than 1 MiB are split among the threads (one core does not reach the
 * memory's bandwidth); overlapping copies stay one memmove. */
#define SPLIT_BYTES ((size_t)1 << 20)
#define SPLIT_CHUNK ((size_t)1 << 18)

void cvn_cpu_copy(void *dst, const void *src, size_t bytes) {
    char *d = dst;
    const char *s = src;
    if (bytes <= SPLIT_BYTES || (d < s + bytes && s < d + bytes)) {
        if (bytes) memmove(dst, src, bytes);
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t at = 0; at < bytes; at += SPLIT_CHUNK)
        memcpy(d + at, s + at, bytes - at < SPLIT_CHUNK ? bytes - at : SPLIT_CHUNK);
}
void cvn_cpu_zero(void *dst, size_t bytes) {
    char *d = dst;
#pragma omp parallel for if (bytes > SPLIT_BYTES) schedule(static)
    for (size_t at = 0; at < bytes; at += SPLIT_CHUNK)
        memset(d + at, 0, bytes - at < SPLIT_CHUNK ? bytes - at : SPLIT_CHUNK);
}
/* Asynchronous uploads (a GPU's, from page-locked memory) on the CPU: any memory will do and a
 * copy is done when it returns, so the loader runs the same path on every device. */
bool cvn_cpu_host_register(void *p, size_t bytes) {
    return true;
}
void cvn_cpu_host_unregister(void *p) {}
void cvn_cpu_upload_wait(void) {}

void cvn_cpu_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static bool cpu_can(const char *name) {
    __builtin_cpu_init();
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return strcmp(name, "scalar") == 0;
}

const cvn_backend *cvn_cpu_backend_variant(const char *name) {
    if (!cpu_can(name)) return NULL;
    if (strcmp(name, "avx512") == 0) return &cvn_cpu_backend_avx512;
    if (strcmp(name, "avx2") == 0) return &cvn_cpu_backend_avx2;
    return &cvn_cpu_backend_scalar;
}

/* The best variant the CPU runs, lowered by CVN_SIMD if set. Picking is idempotent, so a race
 * between two first callers is harmless. */
const cvn_backend *cvn_backend_cpu(void) {
    static const cvn_backend *chosen;
    if (chosen) return chosen;
    static const char *const order[] = {"avx512", "avx2", "scalar"};
    const char *want = getenv("CVN_SIMD");
    int start = 0;
    for (int i = 0; want && i < 3; i++)
        if (strcmp(want, order[i]) == 0) start = i;
    const cvn_backend *b = NULL;
    for (int i = start; i < 3 && !b; i++) b = cvn_cpu_backend_variant(order[i]);
    chosen = b;
    return b;
}

const char *cvn_simd_name(void) {
    return cvn_backend_cpu()->name + 4;
}
