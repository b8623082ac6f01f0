/* The CUDA backend's switches from the environment (CVN_CUDA_*, listed in lib/cvnet.h), read once
 * when the backend starts. A value it does not know stops the start with an error naming it, so
 * that a typo (CVN_CUDA_CONV=cudnnn) does not quietly run another path than the one asked for.
 * Host code with no runtime calls, read through a function in place of getenv, so that
 * tests/test_cuda_settings.cpp checks it against a table. */
#ifndef CVN_CUDA_SETTINGS_CUH
#define CVN_CUDA_SETTINGS_CUH

#include "cuda.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    bool native_gemm;        /* CVN_CUDA_GEMM=cublas|native */
    cvn_cuda_conv_path conv; /* CVN_CUDA_CONV=cudnn|native|implicit|im2col */
    bool native_pool;        /* CVN_CUDA_POOL=cudnn|native */
    bool native_bn;          /* CVN_CUDA_BN=cudnn|native */
    bool tune;               /* CVN_CUDA_TUNE=1|0 */
    cvn_cuda_mma mma;        /* CVN_CUDA_MMA=tuned|0|1|2 */
    int winograd;            /* CVN_CUDA_WINOGRAD=2|0|4 */
    bool copy_stream;        /* CVN_CUDA_COPY_STREAM=1|0 */
    size_t memory_limit;     /* CVN_CUDA_MEMORY_LIMIT=N MiB, in bytes; 0: none */
} cuda_settings;

typedef const char *(*settings_source)(const char *name);

/* Which of words ('|' between them) name's value is: 0, the default, where it is unset or empty;
 * -1, with why written, where it is none of them */
static int setting_choice(settings_source get, const char *name, const char *words, char *why,
                          size_t size) {
    const char *value = get(name);
    if (!value || !*value) return 0;
    const char *w = words;
    for (int i = 0;; i++) {
        size_t len = strcspn(w, "|");
        if (strlen(value) == len && !strncmp(value, w, len)) return i;
        if (!w[len]) break;
        w += len + 1;
    }
    snprintf(why, size, "%s=%s: expected one of %s", name, value, words);
    return -1;
}

/* MiB as a whole decimal number, in bytes; false, with why written, for anything else or a
 * number of bytes that size_t cannot hold */
static bool setting_mib(settings_source get, const char *name, size_t *bytes, char *why,
                        size_t size) {
    const char *value = get(name);
    *bytes = 0;
    if (!value || !*value) return true;
    size_t mib = 0, most = SIZE_MAX >> 20; /* the most MiB whose bytes size_t holds */
    const char *c = value;
    while (*c >= '0' && *c <= '9' && mib <= most / 10) mib = mib * 10 + (size_t)(*c++ - '0');
    if (*c || mib > most) {
        snprintf(why, size, "%s=%s: expected a whole number of MiB (0: no limit)", name, value);
        return false;
    }
    *bytes = mib << 20;
    return true;
}

/* All of them into s; false, with why naming the first value that is not allowed, where one is
 * not */
static bool read_settings(settings_source get, cuda_settings *s, char *why, size_t size) {
    enum { GEMM, CONV, POOL, BN, TUNE, MMA, WINOGRAD, COPY_STREAM, SWITCHES };
    static const struct {
        const char *name, *words; /* the first word is the default */
    } switches[SWITCHES] = {
        {"CVN_CUDA_GEMM", "cublas|native"},
        {"CVN_CUDA_CONV", "cudnn|native|implicit|im2col"},
        {"CVN_CUDA_POOL", "cudnn|native"},
        {"CVN_CUDA_BN", "cudnn|native"},
        {"CVN_CUDA_TUNE", "1|0"},
        {"CVN_CUDA_MMA", "tuned|0|1|2"},
        {"CVN_CUDA_WINOGRAD", "2|0|4"},
        {"CVN_CUDA_COPY_STREAM", "1|0"},
    };
    static const cvn_cuda_conv_path convs[] = {CVN_CUDA_CONV_CUDNN, CVN_CUDA_CONV_IMPLICIT,
                                               CVN_CUDA_CONV_IMPLICIT, CVN_CUDA_CONV_IM2COL};
    static const cvn_cuda_mma mmas[] = {CVN_CUDA_MMA_TUNED, CVN_CUDA_MMA_NEVER,
                                        CVN_CUDA_MMA_STAGED, CVN_CUDA_MMA_ASYNC};
    static const int winograds[] = {2, 0, 4};
    int pick[SWITCHES];
    for (int i = 0; i < SWITCHES; i++)
        if ((pick[i] = setting_choice(get, switches[i].name, switches[i].words, why, size)) < 0)
            return false;
    if (!setting_mib(get, "CVN_CUDA_MEMORY_LIMIT", &s->memory_limit, why, size)) return false;
    s->native_gemm = pick[GEMM] == 1;
    s->conv = convs[pick[CONV]];
    s->native_pool = pick[POOL] == 1;
    s->native_bn = pick[BN] == 1;
    s->tune = pick[TUNE] == 0;
    s->mma = mmas[pick[MMA]];
    s->winograd = winograds[pick[WINOGRAD]];
    s->copy_stream = pick[COPY_STREAM] == 0;
    return true;
}

#endif
