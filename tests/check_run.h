/* Runs a Check suite, in forked processes or in this one, and returns the number of failures:
 * testutil.c's run_suite and the C++ suites (which do not link testutil) share it. */
#ifndef CVN_CHECK_RUN_H
#define CVN_CHECK_RUN_H

#include <check.h>
#include <stdbool.h>

static inline int check_run(Suite *s, bool fork) {
    SRunner *sr = srunner_create(s);
    if (!fork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

#endif
