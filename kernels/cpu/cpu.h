/* Private to the CPU backend: memory and GEMM shared by every SIMD variant, the variant tables,
 * and the counter-based generator used by dropout. */
#ifndef CVN_CPU_H
#define CVN_CPU_H

#include <stdint.h>

#include "backend.h"

void *cvn_cpu_alloc(size_t bytes);
void cvn_cpu_free(void *p);
void cvn_cpu_copy(void *dst, const void *src, size_t bytes);
void cvn_cpu_zero(void *dst, size_t bytes);
bool cvn_cpu_host_register(void *p, size_t bytes);
void cvn_cpu_host_unregister(void *p);
void cvn_cpu_upload_wait(void);
void cvn_cpu_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

extern const cvn_backend cvn_cpu_backend_avx512;
extern const cvn_backend cvn_cpu_backend_avx2;
extern const cvn_backend cvn_cpu_backend_scalar;

/* The variant table for "avx512", "avx2" or "scalar" when this CPU can run it, else NULL. */
const cvn_backend *cvn_cpu_backend_variant(const char *name);

/* Uniform in [0, 1) from (seed, counter): splitmix64's finalizer over seed + counter * golden
 * ratio. Counter-based, so any thread (or a GPU) draws element i's number without shared state. */
static inline float cvn_counter_uniform(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

#endif
