/* Shared test helpers: reference arrays from tests/ref, tensor construction, comparisons. */
#ifndef CVN_TESTUTIL_H
#define CVN_TESTUTIL_H

#include <check.h>

#include "cvnet.h"

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[CVN_MAX_DIMS];
    int64_t n;
    float *v;
} ref_array;

/* Loads tests/ref/ops_ref.txt (directory from $CVN_TEST_DATA, default tests/ref) once. */
const ref_array *ref_get(const char *name);
/* A heap tensor from a reference array (requires_grad as given). Caller owns. */
cvn_tensor *ref_tensor(const char *name, bool requires_grad);
/* A tape tensor from a reference array. */
cvn_tensor *ref_tape_tensor(cvn_tape *t, const char *name);
/* Asserts same shape and |got - want| <= atol + rtol |want| for every element. */
void expect_close(const char *what, const float *got, const ref_array *want, float rtol,
                  float atol);
void expect_tensor(const char *what, const cvn_tensor *got, const char *ref, float rtol,
                   float atol);
/* Counts the library's heap allocations: on routes them through a counting allocator (and resets
 * the count), off restores the C library's. */
void count_allocations(bool on);
long allocations_counted(void);

/* A scratch directory for the test program, made on first use and removed when the process that
 * made it exits (not when Check's forked test processes do). */
const char *test_dir(void);

/* Runs a Check suite and returns the number of failures. */
int run_suite(Suite *s);
/* The same in this process (no fork): for suites whose process state, like a CUDA context, does
 * not survive fork(). */
int run_suite_nofork(Suite *s);

#define CK_OK(expr)                                                                                \
    do {                                                                                           \
        cvn_status st_ = (expr);                                                                   \
        ck_assert_msg(st_ == CVN_OK, "%s failed: %s", #expr, cvn_last_error());                    \
    } while (0)
#define CK_NOTNULL(expr)                                                                           \
    ({                                                                                             \
        __typeof__(expr) p_ = (expr);                                                              \
        ck_assert_msg(p_ != NULL, "%s returned NULL: %s", #expr, cvn_last_error());                \
        p_;                                                                                        \
    })

#endif
