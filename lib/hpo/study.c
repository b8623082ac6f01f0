/* Studies and trials: ask, suggest, report, tell; the statistics Optuna's examples print. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hpo/hpo.h"

cvn_study_config cvn_study_defaults(void) {
    return (cvn_study_config){.name = "study",
                              .direction = CVN_MINIMIZE,
                              .sampler = CVN_SAMPLER_TPE,
                              .n_startup_trials = 10,
                              .n_ei_candidates = 24,
                              .pruner = CVN_PRUNER_NONE,
                              .median_startup_trials = 5,
                              .median_warmup_steps = 0,
                              .median_interval_steps = 1,
                              .halving_min_resource = 1,
                              .halving_reduction_factor = 4};
}

cvn_study *cvn_study_new(const cvn_study_config *config) {
    cvn_study_config c = config ? *config : cvn_study_defaults();
    if ((unsigned)c.direction > CVN_MAXIMIZE || (unsigned)c.sampler > CVN_SAMPLER_RANDOM ||
        (unsigned)c.pruner > CVN_PRUNER_HALVING || c.n_startup_trials < 0 ||
        c.n_ei_candidates < 1 || c.median_startup_trials < 0 || c.median_warmup_steps < 0 ||
        c.median_interval_steps < 1 || c.halving_min_resource < 1 ||
        c.halving_reduction_factor < 2) {
        cvn_set_error(CVN_ERR_ARG,
                      "study_new: bad config (startup trials >= 0, candidates >= 1, interval "
                      ">= 1, min resource >= 1, reduction factor >= 2)");
        return NULL;
    }
    cvn_study *s = cvn_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->c = c;
    s->name = cvn_strdup(c.name ? c.name : "study");
    if (!s->name) {
        cvn_free(s);
        return NULL;
    }
    s->c.name = s->name;
    s->c.storage = NULL;
    if (c.storage) {
        const char *file = strncmp(c.storage, "sqlite:", 7) ? NULL : c.storage + 7;
        if (!file || !file[0]) {
            cvn_set_error(CVN_ERR_ARG, "study_new: storage '%s' is not sqlite:FILE", c.storage);
            cvn_study_free(s);
            return NULL;
        }
        if (hpo_db_open(s, file)) {
            cvn_study_free(s);
            return NULL;
        }
    }
    return s;
}

double hpo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void hpo_free_dist(hpo_dist *d) {
    for (int i = 0; i < d->n_choices; i++) cvn_free(d->choices[i]);
    cvn_free(d->choices);
    d->choices = NULL;
    d->n_choices = 0;
}

void hpo_clear_trial(cvn_trial *t) {
    for (int i = 0; i < t->n_params; i++) {
        cvn_free(t->params[i].name);
        hpo_free_dist(&t->params[i].dist);
    }
    cvn_free(t->params);
    cvn_free(t->reports);
    t->params = NULL;
    t->reports = NULL;
    t->n_params = t->cap_params = t->n_reports = t->cap_reports = 0;
}

void cvn_study_free(cvn_study *s) {
    if (!s) return;
    for (int i = 0; i < s->n_trials; i++) {
        cvn_trial *t = s->trials[i];
        /* a trial of ours still running when the study goes ends as FAIL in the file */
        if (s->db && t->mine && t->state == CVN_TRIAL_RUNNING)
            hpo_db_finish(s, t, CVN_TRIAL_FAIL, NAN, hpo_now());
        hpo_clear_trial(t);
        cvn_free(t);
    }
    hpo_db_close(s);
    cvn_free(s->trials);
    cvn_free(s->name);
    cvn_free(s);
}

cvn_status cvn_study_refresh(cvn_study *s) {
    if (!s) return cvn_set_error(CVN_ERR_ARG, "study_refresh: study is NULL");
    return s->db ? hpo_db_sync(s) : CVN_OK;
}

cvn_trial *cvn_study_ask(cvn_study *s) {
    if (!s) {
        cvn_set_error(CVN_ERR_ARG, "study_ask: study is NULL");
        return NULL;
    }
    if (s->db) {
        int number;
        if (hpo_db_new_trial(s, &number)) return NULL;
        s->trials[number]->mine = true;
        return s->trials[number];
    }
    cvn_trial *t = cvn_calloc(1, sizeof *t);
    if (!t ||
        !cvn_grow_array((void **)&s->trials, &s->cap_trials, s->n_trials + 1, sizeof *s->trials)) {
        cvn_free(t);
        return NULL;
    }
    *t = (cvn_trial){.study = s,
                     .number = s->n_trials,
                     .mine = true,
                     .state = CVN_TRIAL_RUNNING,
                     .value = NAN,
                     .started = hpo_now(),
                     .finished = NAN};
    s->trials[s->n_trials++] = t;
    return t;
}

bool hpo_same_dist(const hpo_dist *a, const hpo_dist *b) {
    if (a->kind != b->kind || a->lo != b->lo || a->hi != b->hi || a->step != b->step ||
        a->log != b->log || a->n_choices != b->n_choices)
        return false;
    for (int i = 0; i < a->n_choices; i++)
        if (strcmp(a->choices[i], b->choices[i])) return false;
    return true;
}

const hpo_param *hpo_find_param(const cvn_trial *t, const char *name) {
    for (int i = 0; i < t->n_params; i++)
        if (!strcmp(t->params[i].name, name)) return &t->params[i];
    return NULL;
}

double hpo_last_report(const cvn_trial *t, int64_t *step) {
    if (!t->n_reports) {
        if (step) *step = -1;
        return NAN;
    }
    const hpo_report *r = &t->reports[t->n_reports - 1];
    if (step) *step = r->step;
    return r->value;
}

bool hpo_better(const cvn_study *s, double a, double b) {
    if (isnan(a)) return false;
    if (isnan(b)) return true;
    return s->c.direction == CVN_MAXIMIZE ? a > b : a < b;
}

/* The value of name in t: the one suggested before, or a new one from the sampler. */
static cvn_status suggest(cvn_trial *t, const char *name, hpo_dist *d, double *out) {
    if (!t || !name || !name[0] || t->state != CVN_TRIAL_RUNNING) {
        hpo_free_dist(d);
        return cvn_set_error(CVN_ERR_ARG, "suggest: no running trial or no name");
    }
    const hpo_param *old = hpo_find_param(t, name);
    if (old) {
        bool same = hpo_same_dist(&old->dist, d);
        hpo_free_dist(d);
        if (!same)
            return cvn_set_error(CVN_ERR_ARG,
                                 "suggest: trial %d already has '%s' with another range", t->number,
                                 name);
        *out = old->value;
        return CVN_OK;
    }
    cvn_study *s = t->study;
    char *copy = cvn_strdup(name);
    if (!copy ||
        !cvn_grow_array((void **)&t->params, &t->cap_params, t->n_params + 1, sizeof *t->params) ||
        (s->db && hpo_db_sync(s))) { /* sample from what every process has finished */
        cvn_free(copy);
        hpo_free_dist(d);
        return cvn_last_status();
    }
    hpo_param p = {copy, *d, hpo_sample(s, t, name, d)};
    if (s->db && hpo_db_put_param(s, t, &p)) {
        cvn_free(copy);
        hpo_free_dist(d);
        return cvn_last_status();
    }
    t->params[t->n_params++] = p;
    *out = p.value;
    return CVN_OK;
}

cvn_status cvn_trial_suggest_float(cvn_trial *t, const char *name, double lo, double hi, bool log,
                                   double *out) {
    if (!out || !(lo <= hi) || !isfinite(lo) || !isfinite(hi) || (log && !(lo > 0)))
        return cvn_set_error(CVN_ERR_ARG,
                             "suggest_float: '%s' range [%g, %g] (log: %d) is empty or not "
                             "positive on a log scale",
                             name ? name : "?", lo, hi, log);
    hpo_dist d = {.kind = HPO_FLOAT, .lo = lo, .hi = hi, .log = log};
    return suggest(t, name, &d, out);
}

cvn_status cvn_trial_suggest_int(cvn_trial *t, const char *name, int64_t lo, int64_t hi,
                                 int64_t step, bool log, int64_t *out) {
    if (!out || lo > hi || step < 1 || (log && (lo < 1 || step != 1)) ||
        (hi - lo) / step > ((int64_t)1 << 52))
        return cvn_set_error(CVN_ERR_ARG,
                             "suggest_int: '%s' range [%lld, %lld] step %lld (log: %d): need lo <= "
                             "hi, step >= 1, and lo >= 1 and step 1 on a log scale",
                             name ? name : "?", (long long)lo, (long long)hi, (long long)step, log);
    int64_t top = lo + (hi - lo) / step * step; /* the largest value on the grid */
    hpo_dist d = {
        .kind = HPO_INT, .lo = (double)lo, .hi = (double)top, .step = (double)step, .log = log};
    double v;
    cvn_status st = suggest(t, name, &d, &v);
    if (!st) *out = (int64_t)llround(v);
    return st;
}

cvn_status cvn_trial_suggest_categorical(cvn_trial *t, const char *name, int n,
                                         const char *const *choices, int *out) {
    if (!out || n < 1 || !choices)
        return cvn_set_error(CVN_ERR_ARG, "suggest_categorical: '%s' has no choices",
                             name ? name : "?");
    hpo_dist d = {.kind = HPO_CATEGORICAL, .lo = 0, .hi = n - 1, .step = 1};
    d.choices = cvn_calloc((size_t)n, sizeof *d.choices);
    if (!d.choices) return cvn_last_status();
    d.n_choices = n;
    for (int i = 0; i < n; i++)
        if (!choices[i] || !(d.choices[i] = cvn_strdup(choices[i]))) {
            hpo_free_dist(&d);
            return choices[i]
                       ? cvn_last_status()
                       : cvn_set_error(CVN_ERR_ARG, "suggest_categorical: choice %d is NULL", i);
        }
    double v;
    cvn_status st = suggest(t, name, &d, &v);
    if (!st) *out = (int)v;
    return st;
}

cvn_status cvn_trial_report(cvn_trial *t, int64_t step, double value) {
    if (!t || t->state != CVN_TRIAL_RUNNING || step < 0)
        return cvn_set_error(CVN_ERR_ARG, "trial_report: no running trial, or step %lld < 0",
                             (long long)step);
    for (int i = 0; i < t->n_reports; i++)
        if (t->reports[i].step == step) return CVN_OK; /* the first value stays, as in Optuna */
    if (!cvn_grow_array((void **)&t->reports, &t->cap_reports, t->n_reports + 1,
                        sizeof *t->reports) ||
        (t->study->db && hpo_db_put_report(t->study, t, step, value)))
        return cvn_last_status();
    t->reports[t->n_reports++] = (hpo_report){step, value};
    return CVN_OK;
}

bool cvn_trial_should_prune(cvn_trial *t) {
    if (!t || t->state != CVN_TRIAL_RUNNING || !t->n_reports) return false;
    if (t->study->db) hpo_db_sync(t->study); /* on failure: judged on what was read before */
    return hpo_should_prune(t->study, t);
}

cvn_status cvn_study_tell(cvn_study *s, cvn_trial *t, cvn_trial_state state, double value) {
    if (!s || !t || t->study != s)
        return cvn_set_error(CVN_ERR_ARG, "study_tell: the trial is not from this study");
    if (t->state != CVN_TRIAL_RUNNING)
        return cvn_set_error(CVN_ERR_STATE, "study_tell: trial %d has already ended", t->number);
    if (state == CVN_TRIAL_COMPLETE && isnan(value))
        return cvn_set_error(CVN_ERR_ARG, "study_tell: trial %d completed with a NaN value",
                             t->number);
    if (state == CVN_TRIAL_RUNNING || (unsigned)state > CVN_TRIAL_FAIL)
        return cvn_set_error(CVN_ERR_ARG, "study_tell: a trial ends COMPLETE, PRUNED or FAIL");
    double v = state == CVN_TRIAL_COMPLETE ? value
               : state == CVN_TRIAL_PRUNED ? hpo_last_report(t, NULL)
                                           : NAN,
           finished = hpo_now();
    if (s->db && hpo_db_finish(s, t, state, v, finished)) return cvn_last_status();
    t->state = state;
    t->value = v;
    t->finished = finished;
    while (s->settled < s->n_trials && s->trials[s->settled]->state != CVN_TRIAL_RUNNING)
        s->settled++;
    return CVN_OK;
}

int cvn_study_num_trials(const cvn_study *s) {
    return s ? s->n_trials : 0;
}

cvn_trial *cvn_study_trial(const cvn_study *s, int i) {
    return s && i >= 0 && i < s->n_trials ? s->trials[i] : NULL;
}

cvn_trial *cvn_study_best_trial(const cvn_study *s) {
    cvn_trial *best = NULL;
    for (int i = 0; s && i < s->n_trials; i++) {
        cvn_trial *t = s->trials[i];
        if (t->state == CVN_TRIAL_COMPLETE && (!best || hpo_better(s, t->value, best->value)))
            best = t;
    }
    return best;
}

int cvn_trial_number(const cvn_trial *t) {
    return t ? t->number : -1;
}
cvn_trial_state cvn_trial_state_of(const cvn_trial *t) {
    return t ? t->state : CVN_TRIAL_FAIL;
}
double cvn_trial_value(const cvn_trial *t) {
    return t ? t->value : NAN;
}
double cvn_trial_duration(const cvn_trial *t) {
    return t ? t->finished - t->started : NAN;
}
int cvn_trial_num_params(const cvn_trial *t) {
    return t ? t->n_params : 0;
}

const char *cvn_trial_param_name(const cvn_trial *t, int i, char *value, size_t value_size) {
    if (!t || i < 0 || i >= t->n_params) return NULL;
    if (value && value_size) hpo_format_param(&t->params[i], value, value_size, 6);
    return t->params[i].name;
}

void hpo_format_param(const hpo_param *p, char *buf, size_t size, int digits) {
    if (p->dist.kind == HPO_CATEGORICAL)
        snprintf(buf, size, "%s", p->dist.choices[(int)p->value]);
    else if (p->dist.kind == HPO_INT)
        snprintf(buf, size, "%lld", (long long)llround(p->value));
    else
        snprintf(buf, size, "%.*g", digits, p->value);
}

cvn_status cvn_study_print_statistics(FILE *f, const cvn_study *s) {
    if (!f || !s) return cvn_set_error(CVN_ERR_ARG, "study_print_statistics: NULL argument");
    int pruned = 0, complete = 0;
    for (int i = 0; i < s->n_trials; i++) {
        pruned += s->trials[i]->state == CVN_TRIAL_PRUNED;
        complete += s->trials[i]->state == CVN_TRIAL_COMPLETE;
    }
    fprintf(f,
            "Study statistics:\n  Number of finished trials: %d\n  Number of pruned trials: %d\n"
            "  Number of complete trials: %d\n",
            s->n_trials, pruned, complete);
    const cvn_trial *best = cvn_study_best_trial(s);
    if (!best) {
        fprintf(f, "Best trial: none (no trial completed)\n");
        return CVN_OK;
    }
    fprintf(f, "Best trial:\n  Number: %d\n  Value: %.6g\n  Params:\n", best->number, best->value);
    char value[256];
    for (int i = 0; i < best->n_params; i++) {
        const char *name = cvn_trial_param_name(best, i, value, sizeof value);
        fprintf(f, "    %s: %s\n", name, value);
    }
    return ferror(f) ? cvn_set_error(CVN_ERR_IO, "study_print_statistics: write failed") : CVN_OK;
}
