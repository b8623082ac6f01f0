/* The CUDA backend's switches from the environment (kernels/cuda/settings.cuh), read from a table
 * in place of getenv: each value the docs name gives its setting, unset or empty gives the
 * default, and anything else stops the backend's start with the variable, its value and what it
 * takes in the error. */
#include "check_run.h"
#include "cuda/settings.cuh"

#include <stdint.h>
#include <string.h>

#include <string>

/* The environment the next read_settings sees: "NAME=value" entries */
static const char *const *env;
static const char *from_table(const char *name) {
    size_t len = strlen(name);
    for (const char *const *e = env; e && *e; e++)
        if (!strncmp(*e, name, len) && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

static bool read_from(std::initializer_list<const char *> entries, cuda_settings *s, std::string *why) {
    static const char *table[16];
    size_t n = 0;
    for (const char *e : entries) table[n++] = e;
    table[n] = NULL;
    env = table;
    char text[256] = "";
    bool ok = read_settings(from_table, s, text, sizeof text);
    *why = text;
    return ok;
}

START_TEST(test_defaults) {
    cuda_settings s;
    std::string why;
    /* unset, and set but empty, are the same */
    for (int empty = 0; empty < 2; empty++) {
        memset(&s, 0xab, sizeof s);
        bool ok = empty ? read_from({"CVN_CUDA_GEMM=", "CVN_CUDA_CONV=", "CVN_CUDA_POOL=", "CVN_CUDA_BN=",
                                "CVN_CUDA_TUNE=", "CVN_CUDA_MMA=", "CVN_CUDA_WINOGRAD=",
                                "CVN_CUDA_COPY_STREAM=", "CVN_CUDA_MEMORY_LIMIT="},
                               &s, &why)
                        : read_from({"CVN_CUDA_GEMMS=native", "CUDA_CONV=native"}, &s, &why);
        ck_assert(ok);
        ck_assert(!s.native_gemm && !s.native_pool && !s.native_bn);
        ck_assert_int_eq(s.conv, CVN_CUDA_CONV_CUDNN);
        ck_assert(s.tune && s.copy_stream);
        ck_assert_int_eq(s.mma, CVN_CUDA_MMA_TUNED);
        ck_assert_int_eq(s.winograd, 2);
        ck_assert_uint_eq(s.memory_limit, 0);
    }
}
END_TEST

START_TEST(test_each_value) {
    cuda_settings s;
    std::string why;
    ck_assert(read_from({"CVN_CUDA_GEMM=native", "CVN_CUDA_CONV=im2col", "CVN_CUDA_POOL=native",
                    "CVN_CUDA_BN=native", "CVN_CUDA_TUNE=0", "CVN_CUDA_MMA=2",
                    "CVN_CUDA_WINOGRAD=4", "CVN_CUDA_COPY_STREAM=0", "CVN_CUDA_MEMORY_LIMIT=1536"},
                   &s, &why));
    ck_assert(s.native_gemm && s.native_pool && s.native_bn && !s.tune && !s.copy_stream);
    ck_assert_int_eq(s.conv, CVN_CUDA_CONV_IM2COL);
    ck_assert_int_eq(s.mma, CVN_CUDA_MMA_ASYNC);
    ck_assert_int_eq(s.winograd, 4);
    ck_assert_uint_eq(s.memory_limit, (size_t)1536 << 20);
    /* the defaults named, and the other words */
    ck_assert(read_from({"CVN_CUDA_GEMM=cublas", "CVN_CUDA_CONV=native", "CVN_CUDA_POOL=cudnn",
                    "CVN_CUDA_BN=cudnn", "CVN_CUDA_TUNE=1", "CVN_CUDA_MMA=1",
                    "CVN_CUDA_WINOGRAD=0", "CVN_CUDA_COPY_STREAM=1", "CVN_CUDA_MEMORY_LIMIT=0"},
                   &s, &why));
    ck_assert(!s.native_gemm && !s.native_pool && !s.native_bn && s.tune && s.copy_stream);
    ck_assert_int_eq(s.conv, CVN_CUDA_CONV_IMPLICIT);
    ck_assert_int_eq(s.mma, CVN_CUDA_MMA_STAGED);
    ck_assert_int_eq(s.winograd, 0);
    ck_assert_uint_eq(s.memory_limit, 0);
    ck_assert(read_from({"CVN_CUDA_CONV=implicit", "CVN_CUDA_MMA=0", "CVN_CUDA_MEMORY_LIMIT=007"}, &s,
                   &why));
    ck_assert_int_eq(s.conv, CVN_CUDA_CONV_IMPLICIT);
    ck_assert_int_eq(s.mma, CVN_CUDA_MMA_NEVER);
    ck_assert_uint_eq(s.memory_limit, (size_t)7 << 20);
    ck_assert(read_from({"CVN_CUDA_MMA=tuned"}, &s, &why));
    ck_assert_int_eq(s.mma, CVN_CUDA_MMA_TUNED);
    /* the most MiB whose bytes size_t holds */
    std::string most = "CVN_CUDA_MEMORY_LIMIT=" + std::to_string(SIZE_MAX >> 20);
    ck_assert(read_from({most.c_str()}, &s, &why));
    ck_assert_uint_eq(s.memory_limit, (SIZE_MAX >> 20) << 20);
}
END_TEST

/* Each value that is not allowed, read before good ones of the others: refused, with the error naming it */
START_TEST(test_unknown_values) {
    std::string over = "CVN_CUDA_MEMORY_LIMIT=" + std::to_string((SIZE_MAX >> 20) + 1);
    std::string far = "CVN_CUDA_MEMORY_LIMIT=" + std::to_string(SIZE_MAX) + "0";
    const struct {
        const char *entry, *expected;
    } cases[] = {
        {"CVN_CUDA_CONV=cudnnn", "CVN_CUDA_CONV=cudnnn: expected one of cudnn|native|implicit|im2col"},
        {"CVN_CUDA_CONV=Native", "CVN_CUDA_CONV=Native: expected"},
        {"CVN_CUDA_CONV=nativ", "CVN_CUDA_CONV=nativ: expected"},
        {"CVN_CUDA_CONV=natives", "CVN_CUDA_CONV=natives: expected"},
        {"CVN_CUDA_GEMM=cudnn", "CVN_CUDA_GEMM=cudnn: expected one of cublas|native"},
        {"CVN_CUDA_POOL=im2col", "CVN_CUDA_POOL=im2col: expected one of cudnn|native"},
        {"CVN_CUDA_BN=off", "CVN_CUDA_BN=off: expected one of cudnn|native"},
        {"CVN_CUDA_TUNE=no", "CVN_CUDA_TUNE=no: expected one of 1|0"},
        {"CVN_CUDA_MMA=3", "CVN_CUDA_MMA=3: expected one of tuned|0|1|2"},
        {"CVN_CUDA_WINOGRAD=3", "CVN_CUDA_WINOGRAD=3: expected one of 2|0|4"},
        {"CVN_CUDA_WINOGRAD=6", "CVN_CUDA_WINOGRAD=6: expected"},
        {"CVN_CUDA_COPY_STREAM=off", "CVN_CUDA_COPY_STREAM=off: expected one of 1|0"},
        {"CVN_CUDA_MEMORY_LIMIT=2GB", "CVN_CUDA_MEMORY_LIMIT=2GB: expected a whole number of MiB"},
        {"CVN_CUDA_MEMORY_LIMIT=-1", "CVN_CUDA_MEMORY_LIMIT=-1: expected"},
        {"CVN_CUDA_MEMORY_LIMIT=1.5", "CVN_CUDA_MEMORY_LIMIT=1.5: expected"},
        {"CVN_CUDA_MEMORY_LIMIT= 64", "CVN_CUDA_MEMORY_LIMIT= 64: expected"},
        {over.c_str(), "expected a whole number of MiB"},
        {far.c_str(), "expected a whole number of MiB"},
    };
    for (const auto &c : cases) {
        cuda_settings s;
        std::string why;
        bool ok = read_from({c.entry, "CVN_CUDA_GEMM=native", "CVN_CUDA_TUNE=0"}, &s, &why);
        ck_assert_msg(!ok, "%s was taken", c.entry);
        ck_assert_msg(why.find(c.expected) != std::string::npos, "%s: \"%s\"", c.entry, why.c_str());
    }
    /* where two are wrong, the error names the first read */
    cuda_settings s;
    std::string why;
    ck_assert(!read_from({"CVN_CUDA_COPY_STREAM=yes", "CVN_CUDA_CONV=fast"}, &s, &why));
    ck_assert_str_eq(why.c_str(), "CVN_CUDA_CONV=fast: expected one of cudnn|native|implicit|im2col");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda_settings");
    TCase *tc = tcase_create("environment");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_each_value);
    tcase_add_test(tc, test_unknown_values);
    suite_add_tcase(s, tc);
    return check_run(s, true) ? 1 : 0;
}
