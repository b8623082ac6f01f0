/* Pruners, as Optuna defines them.
 * Median: at the trial's last step (past the warm-up, on the interval), once median_startup_trials
 * trials have completed, prune when the trial's best value so far is worse than the median of the
 * completed trials' values at that step.
 * Successive halving: rung k sits at step min_resource * reduction_factor^k; a trial reaching a
 * rung is compared with every trial that reached it before; it goes on when its value at the rung
 * is among the best 1 / reduction_factor of them (the best of them while fewer than
 * reduction_factor trials have reached the rung). */
#include <math.h>
#include <stdlib.h>

#include "hpo/hpo.h"

static bool value_at(const cvn_trial *t, int64_t step, double *v) {
    for (int i = 0; i < t->n_reports; i++)
        if (t->reports[i].step == step) {
            *v = t->reports[i].value;
            return true;
        }
    return false;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of n sorted values, interpolated linearly (numpy's default). */
static double percentile(const double *v, int n, double p) {
    double pos = p / 100.0 * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

static bool median_prune(const cvn_study *s, const cvn_trial *t) {
    int64_t step;
    hpo_last_report(t, &step);
    if (step < s->c.median_warmup_steps) return false;
    /* judge only the first report at or after each interval boundary past the warm-up */
    int64_t interval = s->c.median_interval_steps, warm = s->c.median_warmup_steps;
    if (interval > 1) {
        int64_t boundary = warm + (step - warm) / interval * interval;
        for (int i = 0; i < t->n_reports - 1; i++)
            if (t->reports[i].step >= boundary && t->reports[i].step < step) return false;
    }
    int completed = 0;
    for (int i = 0; i < s->n_trials; i++) completed += s->trials[i]->state == CVN_TRIAL_COMPLETE;
    if (completed == 0 || completed < s->c.median_startup_trials) return false;
    double best = NAN;
    for (int i = 0; i < t->n_reports; i++)
        if (isnan(best) || hpo_better(s, t->reports[i].value, best)) best = t->reports[i].value;
    if (isnan(best)) return true;
    double *vals = cvn_malloc((size_t)completed * sizeof *vals);
    if (!vals) return false;
    int n = 0;
    for (int i = 0; i < s->n_trials; i++) {
        double v;
        if (s->trials[i]->state == CVN_TRIAL_COMPLETE && value_at(s->trials[i], step, &v) &&
            !isnan(v))
            vals[n++] = v;
    }
    bool prune = false;
    if (n >= 1) {
        qsort(vals, (size_t)n, sizeof *vals, cmp_double);
        double median = percentile(vals, n, 50.0);
        prune = s->c.direction == CVN_MAXIMIZE ? best < median : best > median;
    }
    cvn_free(vals);
    return prune;
}

/* The value of t at rung k: its report at the rung's step, else at the first step past it. */
static bool rung_value(const cvn_trial *t, int64_t rung_step, double *v) {
    int64_t found = -1;
    for (int i = 0; i < t->n_reports; i++)
        if (t->reports[i].step >= rung_step && (found < 0 || t->reports[i].step < found)) {
            found = t->reports[i].step;
            *v = t->reports[i].value;
        }
    return found >= 0;
}

static bool halving_prune(const cvn_study *s, const cvn_trial *t) {
    int64_t step;
    double value = hpo_last_report(t, &step);
    int64_t eta = s->c.halving_reduction_factor, rung_step = s->c.halving_min_resource;
    if (step < rung_step) return false;
    /* the highest rung the trial has reached */
    while (rung_step <= step / eta) rung_step *= eta;
    /* its value at that rung is judged once: when it first reports at or past it */
    for (int i = 0; i < t->n_reports - 1; i++)
        if (t->reports[i].step >= rung_step) return false;
    if (isnan(value)) return true;
    double *vals = cvn_malloc((size_t)s->n_trials * sizeof *vals);
    if (!vals) return false;
    int n = 0;
    for (int i = 0; i < s->n_trials; i++) {
        const cvn_trial *o = s->trials[i];
        double v = value;
        if (o != t && (o->state == CVN_TRIAL_FAIL || !rung_value(o, rung_step, &v) || isnan(v)))
            continue;
        vals[n++] = s->c.direction == CVN_MAXIMIZE ? -v : v; /* lower is better */
    }
    qsort(vals, (size_t)n, sizeof *vals, cmp_double);
    int idx = (int)(n / eta) - 1;
    if (idx < 0) idx = 0;
    double key = s->c.direction == CVN_MAXIMIZE ? -value : value;
    bool prune = key > vals[idx];
    cvn_free(vals);
    return prune;
}

bool hpo_should_prune(const cvn_study *s, const cvn_trial *t) {
    switch (s->c.pruner) {
    case CVN_PRUNER_MEDIAN:
        return median_prune(s, t);
    case CVN_PRUNER_HALVING:
        return halving_prune(s, t);
    default:
        return false;
    }
}
