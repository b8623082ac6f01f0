/* Private: studies and trials as the samplers and pruners see them. */
#ifndef CVN_HPO_H
#define CVN_HPO_H

#include "core/core.h"

typedef enum { HPO_FLOAT, HPO_INT, HPO_CATEGORICAL } hpo_kind;

/* A parameter's distribution. Values are held as doubles: the number itself, or for a
 * categorical parameter the index of its choice. */
typedef struct {
    hpo_kind kind;
    double lo, hi, step; /* int: step >= 1; float: 0 */
    bool log;
    int n_choices;
    char **choices;
} hpo_dist;

typedef struct {
    char *name;
    hpo_dist dist;
    double value;
} hpo_param;

typedef struct {
    int64_t step;
    double value;
} hpo_report;

struct cvn_trial {
    cvn_study *study;
    int number;
    cvn_trial_state state;
    double value;
    hpo_param *params;
    int n_params, cap_params;
    hpo_report *reports; /* in the order reported */
    int n_reports, cap_reports;
};

struct cvn_study {
    cvn_study_config c;
    char *name;
    cvn_trial **trials;
    int n_trials, cap_trials;
};

bool hpo_same_dist(const hpo_dist *a, const hpo_dist *b);
/* The trial's param of that name, or NULL. */
const hpo_param *hpo_find_param(const cvn_trial *t, const char *name);
/* The trial's last reported value (NaN without reports) and its step. */
double hpo_last_report(const cvn_trial *t, int64_t *step);
/* True when a is better than b for the study's direction (NaN is never better). */
bool hpo_better(const cvn_study *s, double a, double b);

/* A value for trial t's parameter name with distribution d (samplers.c). */
double hpo_sample(const cvn_study *s, const cvn_trial *t, const char *name, const hpo_dist *d);
/* Whether the study's pruner stops t at its last reported step (pruners.c). */
bool hpo_should_prune(const cvn_study *s, const cvn_trial *t);

#endif
