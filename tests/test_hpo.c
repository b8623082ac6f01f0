/* Hyperparameter search: suggest semantics, reproducibility, TPE against random search on Branin,
 * the median and successive-halving pruners on scripted reports, tell and the statistics text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static cvn_study *study(cvn_sampler_kind sampler, uint64_t seed) {
    cvn_study_config c = cvn_study_defaults();
    c.sampler = sampler;
    c.seed = seed;
    return CK_NOTNULL(cvn_study_new(&c));
}

START_TEST(suggest_ranges_and_errors) {
    cvn_study *s = study(CVN_SAMPLER_RANDOM, 1);
    for (int i = 0; i < 200; i++) {
        cvn_trial *t = CK_NOTNULL(cvn_study_ask(s));
        ck_assert_int_eq(cvn_trial_number(t), i);
        double lr, u;
        int64_t k, units;
        int opt;
        CK_OK(cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, &lr));
        CK_OK(cvn_trial_suggest_float(t, "u", -2, 3, false, &u));
        CK_OK(cvn_trial_suggest_int(t, "kernel", 3, 8, 2, false, &k)); /* 3, 5, 7 */
        CK_OK(cvn_trial_suggest_int(t, "units", 4, 128, 1, true, &units));
        CK_OK(cvn_trial_suggest_categorical(t, "opt", 3, (const char *[]){"Adam", "RMSprop", "SGD"},
                                            &opt));
        ck_assert(lr >= 1e-5 && lr <= 1e-1 && u >= -2 && u <= 3);
        ck_assert(k == 3 || k == 5 || k == 7);
        ck_assert(units >= 4 && units <= 128 && opt >= 0 && opt < 3);
        double again;
        CK_OK(cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, &again));
        ck_assert(again == lr); /* the same name gives the same value */
        ck_assert_int_eq(cvn_trial_suggest_float(t, "lr", 1e-4, 1e-1, true, &again), CVN_ERR_ARG);
        CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, lr));
    }
    cvn_trial *t = CK_NOTNULL(cvn_study_ask(s));
    double d;
    int64_t n;
    int c;
    ck_assert_int_eq(cvn_trial_suggest_float(t, "x", 1, 0, false, &d), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_float(t, "x", 0, 1, true, &d), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_float(t, "x", 0, INFINITY, false, &d), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_int(t, "x", 5, 1, 1, false, &n), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_int(t, "x", 1, 5, 0, false, &n), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_int(t, "x", 0, 5, 1, true, &n), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_categorical(t, "x", 0, NULL, &c), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_categorical(t, "x", 2, (const char *[]){"a", NULL}, &c),
                     CVN_ERR_ARG);
    ck_assert_int_eq(cvn_trial_suggest_float(t, "", 0, 1, false, &d), CVN_ERR_ARG);
    CK_OK(cvn_trial_suggest_int(t, "one", 4, 4, 1, false, &n));
    ck_assert(n == 4);
    ck_assert_int_eq(cvn_trial_num_params(t), 1);
    /* the best of 200 by lr: minimize, so the smallest lr */
    cvn_trial *best = cvn_study_best_trial(s);
    for (int i = 0; i < 200; i++)
        ck_assert(cvn_trial_value(cvn_study_trial(s, i)) >= cvn_trial_value(best));
    cvn_study_free(s);
}
END_TEST

/* the 200 log-uniform draws above cover the decades evenly: a check of the log scale */
START_TEST(log_scale_is_uniform_in_log) {
    cvn_study *s = study(CVN_SAMPLER_RANDOM, 5);
    int below = 0;
    for (int i = 0; i < 2000; i++) {
        cvn_trial *t = cvn_study_ask(s);
        double lr;
        CK_OK(cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, &lr));
        below += lr < 1e-3; /* half of the 4 decades */
        CK_OK(cvn_study_tell(s, t, CVN_TRIAL_FAIL, NAN));
    }
    ck_assert_int_gt(below, 900);
    ck_assert_int_lt(below, 1100);
    cvn_study_free(s);
}
END_TEST

static double branin(double x1, double x2) {
    double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
    double a = x2 - b * x1 * x1 + c * x1 - 6;
    return a * a + 10 * (1 - t) * cos(x1) + 10;
}

static double best_after(cvn_sampler_kind sampler, uint64_t seed, int trials) {
    cvn_study *s = study(sampler, seed);
    for (int i = 0; i < trials; i++) {
        cvn_trial *t = cvn_study_ask(s);
        double x1, x2;
        CK_OK(cvn_trial_suggest_float(t, "x1", -5, 10, false, &x1));
        CK_OK(cvn_trial_suggest_float(t, "x2", 0, 15, false, &x2));
        CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, branin(x1, x2)));
    }
    double best = cvn_trial_value(cvn_study_best_trial(s));
    cvn_study_free(s);
    return best;
}

START_TEST(tpe_beats_random_on_branin) {
    const double optimum = 0.397887;
    double tpe = 0, rnd = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        tpe += best_after(CVN_SAMPLER_TPE, seed, 50) - optimum;
        rnd += best_after(CVN_SAMPLER_RANDOM, seed, 50) - optimum;
    }
    tpe /= 20, rnd /= 20;
    printf("Branin, mean regret after 50 trials over 20 seeds: TPE %.4f, random %.4f\n", tpe, rnd);
    ck_assert_msg(tpe < 0.7 * rnd, "TPE %.4f vs random %.4f", tpe, rnd);
}
END_TEST

START_TEST(tpe_learns_categorical_and_int) {
    cvn_study *s = study(CVN_SAMPLER_TPE, 3);
    int best_cat = 0;
    for (int i = 0; i < 60; i++) {
        cvn_trial *t = cvn_study_ask(s);
        int c;
        int64_t k;
        CK_OK(cvn_trial_suggest_categorical(t, "opt", 4, (const char *[]){"a", "b", "c", "d"}, &c));
        CK_OK(cvn_trial_suggest_int(t, "k", 1, 20, 1, false, &k));
        double v = (c == 2 ? 0 : 5) + fabs((double)k - 7);
        if (i >= 30) best_cat += c == 2;
        CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, v));
    }
    ck_assert_msg(best_cat >= 15, "the best category in %d of the last 30 trials", best_cat);
    char value[32];
    cvn_trial *b = cvn_study_best_trial(s);
    ck_assert_str_eq(cvn_trial_param_name(b, 0, value, sizeof value), "opt");
    ck_assert_str_eq(value, "c");
    cvn_trial_param_name(b, 1, value, sizeof value);
    ck_assert_str_eq(value, "7");
    cvn_study_free(s);
}
END_TEST

START_TEST(reproducible) {
    for (int sampler = 0; sampler < 2; sampler++) {
        double a = best_after((cvn_sampler_kind)sampler, 42, 30);
        double b = best_after((cvn_sampler_kind)sampler, 42, 30);
        double c = best_after((cvn_sampler_kind)sampler, 43, 30);
        ck_assert(a == b);
        ck_assert(a != c);
    }
}
END_TEST

/* A completed trial with reports at steps 0, 1, 2, ... */
static void finished(cvn_study *s, int n, const double *reports, double value) {
    cvn_trial *t = cvn_study_ask(s);
    for (int i = 0; i < n; i++) CK_OK(cvn_trial_report(t, i, reports[i]));
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, value));
}

START_TEST(median_pruner_by_definition) {
    cvn_study_config c = cvn_study_defaults();
    c.pruner = CVN_PRUNER_MEDIAN;
    c.median_startup_trials = 2;
    c.median_warmup_steps = 1;
    cvn_study *s = CK_NOTNULL(cvn_study_new(&c));
    cvn_trial *early = cvn_study_ask(s); /* before 2 trials completed: never pruned */
    finished(s, 3, (double[]){10, 8, 6}, 6);
    CK_OK(cvn_trial_report(early, 0, 100));
    CK_OK(cvn_trial_report(early, 1, 100));
    ck_assert(!cvn_trial_should_prune(early));
    finished(s, 3, (double[]){12, 10, 8}, 8);
    ck_assert(cvn_trial_should_prune(early)); /* 100 > median(8, 10) at step 1 */
    CK_OK(cvn_study_tell(s, early, CVN_TRIAL_PRUNED, 0));
    ck_assert(cvn_trial_value(early) == 100); /* a pruned trial's value is its last report */

    cvn_trial *t = cvn_study_ask(s);
    ck_assert(!cvn_trial_should_prune(t)); /* nothing reported */
    CK_OK(cvn_trial_report(t, 0, 20));
    ck_assert(!cvn_trial_should_prune(t)); /* step 0 is in the warm-up */
    CK_OK(cvn_trial_report(t, 1, 9));
    ck_assert(!cvn_trial_should_prune(t)); /* best 9, median at step 1 (8, 10) is 9: not worse */
    CK_OK(cvn_trial_report(t, 2, 9.5));
    ck_assert(cvn_trial_should_prune(t)); /* best 9 > median at step 2 (6, 8) = 7 */
    CK_OK(cvn_trial_report(t, 7, 1));
    ck_assert(!cvn_trial_should_prune(t)); /* no completed trial reported step 7 */
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_PRUNED, 0));
    ck_assert_int_eq(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 1), CVN_ERR_STATE);
    ck_assert_int_eq(cvn_trial_report(t, 8, 1), CVN_ERR_ARG);
    cvn_study_free(s);

    /* maximizing, judged every 2 steps: the median is of accuracies, lower is worse */
    c.direction = CVN_MAXIMIZE;
    c.median_warmup_steps = 0;
    c.median_interval_steps = 2;
    s = CK_NOTNULL(cvn_study_new(&c));
    finished(s, 4, (double[]){0.5, 0.6, 0.7, 0.8}, 0.8);
    finished(s, 4, (double[]){0.3, 0.4, 0.5, 0.6}, 0.6);
    finished(s, 4, (double[]){0.1, 0.2, 0.3, 0.4}, 0.4);
    t = cvn_study_ask(s);
    CK_OK(cvn_trial_report(t, 0, 0.2));
    ck_assert(cvn_trial_should_prune(t)); /* 0.2 < median(0.5, 0.3, 0.1) = 0.3 */
    cvn_study_free(s);
    s = CK_NOTNULL(cvn_study_new(&c));
    finished(s, 4, (double[]){0.5, 0.6, 0.7, 0.8}, 0.8);
    finished(s, 4, (double[]){0.3, 0.4, 0.5, 0.6}, 0.6);
    t = cvn_study_ask(s);
    CK_OK(cvn_trial_report(t, 0, 0.45));
    ck_assert(!cvn_trial_should_prune(t)); /* 0.45 >= median(0.5, 0.3) = 0.4 */
    CK_OK(cvn_trial_report(t, 1, 0.0));
    ck_assert(!cvn_trial_should_prune(t)); /* step 1 is not on the interval; best is still 0.45 */
    CK_OK(cvn_trial_report(t, 2, 0.1));
    ck_assert(cvn_trial_should_prune(t)); /* best 0.45 < median at step 2 (0.7, 0.5) = 0.6 */
    cvn_study_free(s);
}
END_TEST

START_TEST(halving_pruner_by_definition) {
    cvn_study_config c = cvn_study_defaults();
    c.pruner = CVN_PRUNER_HALVING;
    c.halving_reduction_factor = 2; /* rungs at steps 1, 2, 4, ... */
    cvn_study *s = CK_NOTNULL(cvn_study_new(&c));
    struct {
        double value;
        bool pruned;
    } at_rung1[] = {
        {5, false}, /* alone: the best */
        {7, true},  /* {5, 7}: fewer than 2x2 reached, only the best goes on */
        {4, false}, /* the best of {5, 7, 4} */
        {6, true},  /* {4, 5, 6, 7}: the best half is 4, 5 */
        {5, false}, /* {4, 5, 5, 6, 7}: 5 is within the best 2 */
    };
    cvn_trial *tr[5];
    for (int i = 0; i < 5; i++) {
        tr[i] = cvn_study_ask(s);
        CK_OK(cvn_trial_report(tr[i], 0, 100)); /* below the first rung: never judged */
        ck_assert(!cvn_trial_should_prune(tr[i]));
        CK_OK(cvn_trial_report(tr[i], 1, at_rung1[i].value));
        ck_assert_msg(cvn_trial_should_prune(tr[i]) == at_rung1[i].pruned, "trial %d", i);
        if (i == 2) {
            CK_OK(cvn_trial_report(tr[2], 2, 3));
            ck_assert(!cvn_trial_should_prune(tr[2])); /* alone at rung 2 */
        }
    }
    /* trial 4 reaches rung 2 at step 3 with 10: {3, 10}, only the best goes on */
    CK_OK(cvn_trial_report(tr[4], 3, 10));
    ck_assert(cvn_trial_should_prune(tr[4]));
    cvn_study_free(s);
}
END_TEST

START_TEST(statistics_text) {
    cvn_study *s = study(CVN_SAMPLER_RANDOM, 9);
    cvn_trial *t = cvn_study_ask(s);
    double lr;
    int opt;
    CK_OK(cvn_trial_suggest_float(t, "lr", 0.001, 0.001, false, &lr));
    CK_OK(cvn_trial_suggest_categorical(t, "optimizer", 2, (const char *[]){"Adam", "SGD"}, &opt));
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 0.875));
    t = cvn_study_ask(s);
    CK_OK(cvn_trial_report(t, 0, 0.5));
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_PRUNED, 0));
    t = cvn_study_ask(s);
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_FAIL, NAN));
    ck_assert_int_eq(cvn_study_tell(s, cvn_study_ask(s), CVN_TRIAL_COMPLETE, NAN), CVN_ERR_ARG);
    char buf[1024] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    CK_OK(cvn_study_print_statistics(f, s));
    fclose(f);
    char want[512];
    snprintf(want, sizeof want,
             "Study statistics:\n  Number of finished trials: 4\n  Number of pruned trials: 1\n"
             "  Number of complete trials: 1\nBest trial:\n  Number: 0\n  Value: 0.875\n"
             "  Params:\n    lr: 0.001\n    optimizer: %s\n",
             opt ? "SGD" : "Adam");
    ck_assert_str_eq(buf, want);
    cvn_study_free(s);
    cvn_study_config c = cvn_study_defaults();
    c.halving_reduction_factor = 1;
    ck_assert_ptr_null(cvn_study_new(&c));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hpo");
    TCase *tc = tcase_create("hpo");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, suggest_ranges_and_errors);
    tcase_add_test(tc, log_scale_is_uniform_in_log);
    tcase_add_test(tc, tpe_beats_random_on_branin);
    tcase_add_test(tc, tpe_learns_categorical_and_int);
    tcase_add_test(tc, reproducible);
    tcase_add_test(tc, median_pruner_by_definition);
    tcase_add_test(tc, halving_pruner_by_definition);
    tcase_add_test(tc, statistics_text);
    suite_add_tcase(s, tc);
    return run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
