/* Samplers: random, and TPE as Optuna's default TPESampler does it (independent univariate
 * Parzen estimators, a prior component, "magic clip" bandwidths, Optuna's gamma and weights,
 * n_startup_trials random trials first, the best of n_ei_candidates draws from l(x) by
 * log l(x) - log g(x)). Draws come from a generator seeded by the study's seed, the trial number
 * and the parameter's name, so a trial's values do not depend on which process runs it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/hpo.h"

#define EPS 1e-12
#define MAX_BELOW 25

static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void trial_rng(cvn_rng *r, const cvn_study *s, const cvn_trial *t, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    cvn_rng_seed(r, mix(s->c.seed ^ mix(h ^ mix((uint64_t)t->number + 1))));
}

/* Doubles, not cvn_rng_uniform / cvn_rng_normal's floats: a log-scale range of several decades
 * needs more than 24 bits. */
static double uniform01(cvn_rng *r) { /* [0, 1) with 53 random bits */
    return (double)(cvn_rng_next(r) >> 11) * 0x1.0p-53;
}

static double normal(cvn_rng *r) { /* Box-Muller */
    double u = uniform01(r), v = uniform01(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* ------------------------------------------------------------------ the search space */

/* A numeric parameter in the space the estimators work in: log for log scales; integers on a
 * log scale become continuous over [log(lo - 1/2), log(hi + 1/2)] as in Optuna. */
typedef struct {
    double low, high, step; /* step 0: continuous */
} space;

static space to_space(const hpo_dist *d) {
    if (d->log && d->kind == HPO_INT) return (space){log(d->lo - 0.5), log(d->hi + 0.5), 0};
    if (d->log) return (space){log(d->lo), log(d->hi), 0};
    return (space){d->lo, d->hi, d->kind == HPO_INT ? d->step : 0};
}

static double to_internal(const hpo_dist *d, double v) {
    return d->log ? log(v) : v;
}

/* Back from the estimator's space: integers rounded onto their grid and clipped. */
static double from_internal(const hpo_dist *d, double x) {
    double v = d->log ? exp(x) : x;
    if (d->kind == HPO_INT) v = d->lo + round((v - d->lo) / d->step) * d->step;
    if (d->kind != HPO_CATEGORICAL) v = fmin(fmax(v, d->lo), d->hi);
    return v;
}

static double random_value(cvn_rng *r, const hpo_dist *d) {
    if (d->kind == HPO_CATEGORICAL) return floor(uniform01(r) * d->n_choices);
    if (d->kind == HPO_INT && !d->log) {
        double n = (d->hi - d->lo) / d->step + 1;
        return d->lo + floor(uniform01(r) * n) * d->step;
    }
    space sp = to_space(d);
    return from_internal(d, sp.low + uniform01(r) * (sp.high - sp.low));
}

/* ------------------------------------------------------------------ Parzen estimators */

typedef struct {
    int n;            /* components: observations, then the prior */
    double *w;        /* mixture weights, summing to 1 */
    double *mu, *sig; /* numeric */
    double *base;     /* log w - log Z (- log(sigma sqrt(2 pi)) when continuous), per component */
    double *rows;     /* categorical: n rows of n_choices probabilities */
    int n_choices;
    space sp;
} parzen;

/* Optuna's default_weights: 1 for up to 25 observations, else a ramp from 1/n to 1 over the oldest
 * n - 25 and 1 for the newest 25. */
static void default_weights(int n, double *w) {
    int ramp = n < 25 ? 0 : n - 25;
    for (int i = 0; i < n; i++)
        w[i] = i >= ramp ? 1.0 : ramp == 1 ? 1.0 / n : 1.0 / n + i * (1.0 - 1.0 / n) / (ramp - 1);
}

typedef struct {
    double mu;
    int index;
} center;

static int cmp_center(const void *a, const void *b) {
    const center *x = a, *y = b;
    if (x->mu != y->mu) return x->mu < y->mu ? -1 : 1;
    return x->index - y->index; /* stable, as numpy's argsort of ties in practice */
}

/* Bandwidths: the larger distance to a neighbour among the sorted centers (prior included) and
 * the ends of the range, the outermost using their inner neighbour, clipped to
 * [range / min(100, n + 1), range]. */
static void bandwidths(int n, const double *mu, space sp, double *sig, center *sorted) {
    for (int i = 0; i < n; i++) sorted[i] = (center){mu[i], i};
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_center);
    double lo = sp.low - sp.step / 2, hi = sp.high + sp.step / 2, range = hi - lo;
    for (int k = 0; k < n; k++) {
        double left = k ? sorted[k - 1].mu : lo, right = k + 1 < n ? sorted[k + 1].mu : hi;
        double here = sorted[k].mu, s = fmax(here - left, right - here);
        if (n >= 2 && k == 0) s = sorted[1].mu - here;
        if (n >= 2 && k == n - 1) s = here - sorted[n - 2].mu;
        sig[sorted[k].index] = s;
    }
    double minsig = range / fmin(100.0, (double)n + 1), maxsig = range;
    for (int i = 0; i < n; i++) sig[i] = fmin(fmax(sig[i], minsig), maxsig);
}

static double log_phi_cdf_diff(double a, double b) { /* log(Phi(b) - Phi(a)), a < b */
    double v = 0.5 * (erf(b / M_SQRT2) - erf(a / M_SQRT2));
    if (a > 0) v = 0.5 * (erfc(a / M_SQRT2) - erfc(b / M_SQRT2)); /* precise in the upper tail */
    return log(fmax(v, EPS));
}

/* The estimator over obs (n_obs values in the estimator's space) plus the prior. */
static bool parzen_build(parzen *p, const hpo_dist *d, const double *obs, int n_obs) {
    int n = n_obs + 1;
    *p = (parzen){.n = n, .sp = to_space(d), .n_choices = d->n_choices};
    p->w = cvn_malloc((size_t)n * 4 * sizeof(double));
    center *order = cvn_malloc((size_t)n * sizeof *order);
    if (d->kind == HPO_CATEGORICAL) p->rows = cvn_malloc((size_t)n * d->n_choices * sizeof(double));
    if (!p->w || !order || (d->kind == HPO_CATEGORICAL && !p->rows)) {
        cvn_free(order);
        return false;
    }
    p->mu = p->w + n, p->sig = p->w + 2 * n, p->base = p->w + 3 * n;
    default_weights(n_obs, p->w);
    p->w[n_obs] = 1.0; /* the prior's weight */
    double total = 0;
    for (int i = 0; i < n; i++) total += p->w[i];
    for (int i = 0; i < n; i++) p->w[i] /= total;
    if (d->kind == HPO_CATEGORICAL) {
        int c = d->n_choices;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c; j++) p->rows[i * c + j] = 1.0 / n; /* prior_weight / n */
            if (i < n_obs) p->rows[i * c + (int)obs[i]] += 1.0;
            double row = 0;
            for (int j = 0; j < c; j++) row += p->rows[i * c + j];
            for (int j = 0; j < c; j++) p->rows[i * c + j] /= row;
            p->base[i] = log(p->w[i]);
        }
    } else {
        for (int i = 0; i < n_obs; i++) p->mu[i] = obs[i];
        p->mu[n_obs] = 0.5 * (p->sp.low + p->sp.high);
        bandwidths(n, p->mu, p->sp, p->sig, order);
        p->sig[n_obs] = p->sp.high - p->sp.low + p->sp.step; /* the prior: wide */
        double lo = p->sp.low - p->sp.step / 2, hi = p->sp.high + p->sp.step / 2;
        for (int k = 0; k < n; k++) {
            double m = p->mu[k], sg = p->sig[k];
            p->base[k] = log(p->w[k]) - log_phi_cdf_diff((lo - m) / sg, (hi - m) / sg);
            if (p->sp.step == 0) p->base[k] -= log(sg * sqrt(2 * M_PI));
        }
    }
    cvn_free(order);
    return true;
}

static void parzen_free(parzen *p) {
    cvn_free(p->w);
    cvn_free(p->rows);
}

static double logsumexp(const double *v, int n) {
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = fmax(m, v[i]);
    if (m == -INFINITY) return m;
    for (int i = 0; i < n; i++)
        if (v[i] > m - 40) s += exp(v[i] - m); /* smaller terms do not change a double sum */
    return m + log(s);
}

/* log of the mixture's density (or, for discrete values, probability) at x. */
static double parzen_log_pdf(const parzen *p, double x, double *scratch) {
    for (int k = 0; k < p->n; k++) {
        if (p->rows) {
            scratch[k] = p->base[k] + log(fmax(p->rows[k * p->n_choices + (int)x], EPS));
            continue;
        }
        double m = p->mu[k], s = p->sig[k];
        if (p->sp.step > 0) {
            double a = (x - p->sp.step / 2 - m) / s, b = (x + p->sp.step / 2 - m) / s;
            /* past 8.5 sigma the mass is below the EPS floor log_phi_cdf_diff applies */
            scratch[k] = p->base[k] + (a > 8.5 || b < -8.5 ? log(EPS) : log_phi_cdf_diff(a, b));
        } else {
            double z = (x - m) / s;
            scratch[k] = p->base[k] - 0.5 * z * z;
        }
    }
    return logsumexp(scratch, p->n);
}

/* One draw: a component by weight, then a value from it (a truncated normal by rejection, on the
 * integer grid for discrete parameters). */
static double parzen_sample(const parzen *p, cvn_rng *r) {
    double u = uniform01(r), acc = 0;
    int k = p->n - 1;
    for (int i = 0; i < p->n; i++)
        if ((acc += p->w[i]) > u) {
            k = i;
            break;
        }
    if (p->rows) {
        double v = uniform01(r), c = 0;
        for (int j = 0; j < p->n_choices; j++)
            if ((c += p->rows[k * p->n_choices + j]) > v) return j;
        return p->n_choices - 1;
    }
    double lo = p->sp.low - p->sp.step / 2, hi = p->sp.high + p->sp.step / 2, x = p->mu[k];
    for (int tries = 0; tries < 1000; tries++) {
        double y = p->mu[k] + p->sig[k] * normal(r);
        if (y >= lo && y <= hi) {
            x = y;
            break;
        }
    }
    if (p->sp.step > 0) x = p->sp.low + round((x - p->sp.low) / p->sp.step) * p->sp.step;
    return fmin(fmax(x, p->sp.low), p->sp.high);
}

/* ------------------------------------------------------------------ TPE */

typedef struct {
    const cvn_trial *t;
    double x;          /* the parameter in the estimator's space */
    double key;        /* value to rank by, lower is better (negated when maximizing) */
    int64_t last_step; /* pruned trials: how far they got */
} observed;

/* Ranking for the split: complete trials by value, then pruned ones, the furthest first. */
static int cmp_rank(const void *a, const void *b) {
    const observed *x = a, *y = b;
    bool px = x->t->state == CVN_TRIAL_PRUNED, py = y->t->state == CVN_TRIAL_PRUNED;
    if (px != py) return px - py;
    if (px && x->last_step != y->last_step) return x->last_step > y->last_step ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->t->number - y->t->number;
}
static int cmp_number(const void *a, const void *b) {
    return ((const observed *)a)->t->number - ((const observed *)b)->t->number;
}

static double tpe_value(const cvn_study *s, const cvn_trial *t, const char *name, const hpo_dist *d,
                        cvn_rng *r, bool *used) {
    *used = false;
    int finished = 0;
    for (int i = 0; i < s->n_trials; i++) {
        cvn_trial_state st = s->trials[i]->state;
        finished += st == CVN_TRIAL_COMPLETE || (st == CVN_TRIAL_PRUNED && s->trials[i]->n_reports);
    }
    if (finished < s->c.n_startup_trials || finished == 0) return 0;
    observed *obs = cvn_malloc((size_t)s->n_trials * sizeof *obs);
    double *xs = cvn_malloc((size_t)(s->n_trials + 1) * 2 * sizeof *xs);
    if (!obs || !xs) {
        cvn_free(obs), cvn_free(xs);
        return 0;
    }
    int n = 0;
    for (int i = 0; i < s->n_trials; i++) {
        const cvn_trial *o = s->trials[i];
        const hpo_param *p = o == t ? NULL : hpo_find_param(o, name);
        if (!p || !hpo_same_dist(&p->dist, d)) continue;
        int64_t step = -1;
        double key = o->state == CVN_TRIAL_COMPLETE ? o->value
                     : o->state == CVN_TRIAL_PRUNED ? hpo_last_report(o, &step)
                                                    : NAN;
        if (isnan(key)) continue;
        if (s->c.direction == CVN_MAXIMIZE) key = -key;
        obs[n++] = (observed){o, d->kind == HPO_CATEGORICAL ? p->value : to_internal(d, p->value),
                              key, step};
    }
    double best = 0;
    if (n > 0) {
        qsort(obs, (size_t)n, sizeof *obs, cmp_rank);
        int n_below = (int)ceil(0.1 * n);
        if (n_below > MAX_BELOW) n_below = MAX_BELOW;
        qsort(obs, (size_t)n_below, sizeof *obs, cmp_number); /* weights favour recent trials */
        qsort(obs + n_below, (size_t)(n - n_below), sizeof *obs, cmp_number);
        for (int i = 0; i < n; i++) xs[i] = obs[i].x;
        parzen below, above;
        bool ok_b = parzen_build(&below, d, xs, n_below);
        bool ok_a = ok_b && parzen_build(&above, d, xs + n_below, n - n_below);
        double *scratch = xs + s->n_trials + 1;
        if (ok_a) {
            double best_score = -INFINITY;
            for (int c = 0; c < s->c.n_ei_candidates; c++) {
                double x = parzen_sample(&below, r);
                double score =
                    parzen_log_pdf(&below, x, scratch) - parzen_log_pdf(&above, x, scratch);
                if (score > best_score) best_score = score, best = x;
            }
            *used = true;
            parzen_free(&above);
        }
        if (ok_b) parzen_free(&below);
    }
    cvn_free(obs), cvn_free(xs);
    return d->kind == HPO_CATEGORICAL ? best : from_internal(d, best);
}

double hpo_sample(const cvn_study *s, const cvn_trial *t, const char *name, const hpo_dist *d) {
    cvn_rng r;
    trial_rng(&r, s, t, name);
    if (s->c.sampler == CVN_SAMPLER_TPE) {
        bool used;
        double v = tpe_value(s, t, name, d, &r, &used);
        if (used) return v;
    }
    return random_value(&r, d);
}
