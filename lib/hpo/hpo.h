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
    int64_t id; /* its row in the storage file (0 in memory) */
    bool mine;  /* asked by this process: its copy here is the authoritative one */
    cvn_trial_state state;
    double value;
    double started, finished; /* seconds since the epoch; NaN until then */
    hpo_param *params;
    int n_params, cap_params;
    hpo_report *reports; /* in the order reported */
    int n_reports, cap_reports;
};

typedef struct hpo_db hpo_db;

struct cvn_study {
    cvn_study_config c;
    char *name;
    cvn_trial **trials; /* trials[i]->number == i */
    int n_trials, cap_trials;
    hpo_db *db;  /* NULL: in memory */
    int settled; /* trials below it have ended in this copy (ended trials never change) */
};

void hpo_free_dist(hpo_dist *d);
void hpo_clear_trial(cvn_trial *t); /* frees its params and reports */
double hpo_now(void);               /* wall-clock seconds since the epoch */
/* A param's value as text: the choice, the integer, or the float to digits significant digits. */
void hpo_format_param(const hpo_param *p, char *buf, size_t size, int digits);

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

/* SQLite storage (storage.c). open creates or continues the study s->name in the file and loads
 * its trials, failing those whose process is gone; sync loads what other processes wrote since;
 * the put functions write one change through (the caller changes its copy after they succeed). */
cvn_status hpo_db_open(cvn_study *s, const char *file);
void hpo_db_close(cvn_study *s);
cvn_status hpo_db_sync(cvn_study *s);
cvn_status hpo_db_new_trial(cvn_study *s, int *number);
cvn_status hpo_db_put_param(cvn_study *s, const cvn_trial *t, const hpo_param *p);
cvn_status hpo_db_put_report(cvn_study *s, const cvn_trial *t, int64_t step, double value);
cvn_status hpo_db_finish(cvn_study *s, const cvn_trial *t, cvn_trial_state state, double value,
                         double finished);

#endif
