/* What a study found, for people: the top-k table, a CSV of every trial, parameter importances,
 * and the report (SVG plots inside an HTML page, drawn with lib/report through cvnet.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/hpo.h"

static const char *const state_names[] = {"RUNNING", "COMPLETE", "PRUNED", "FAIL"};

/* The names of the params any of the n trials has, in the order first suggested (study-owned);
 * the count, or -1 when memory runs out. */
static int param_names(cvn_trial *const *trials, int n, const char ***out) {
    const char **names = NULL;
    int count = 0, cap = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < trials[i]->n_params; j++) {
            const char *name = trials[i]->params[j].name;
            int k = 0;
            while (k < count && strcmp(names[k], name)) k++;
            if (k < count) continue;
            if (!cvn_grow_array((void **)&names, &cap, count + 1, sizeof *names)) {
                cvn_free(names);
                return -1;
            }
            names[count++] = name;
        }
    *out = names;
    return count;
}

/* Best first for the study's direction (qsort_r's argument), ties by number. */
static int cmp_best_first(const void *a, const void *b, void *study) {
    const cvn_study *s = study;
    const cvn_trial *x = *(cvn_trial *const *)a, *y = *(cvn_trial *const *)b;
    if (hpo_better(s, x->value, y->value)) return -1;
    if (hpo_better(s, y->value, x->value)) return 1;
    return (x->number > y->number) - (x->number < y->number);
}

/* The COMPLETE trials, best first (ties by number); the count, or -1 when memory runs out. */
static int complete_best_first(const cvn_study *s, cvn_trial ***out) {
    cvn_trial **list = cvn_malloc((size_t)(s->n_trials ? s->n_trials : 1) * sizeof *list);
    if (!list) return -1;
    int n = 0;
    for (int i = 0; i < s->n_trials; i++)
        if (s->trials[i]->state == CVN_TRIAL_COMPLETE) list[n++] = s->trials[i];
    qsort_r(list, (size_t)n, sizeof *list, cmp_best_first, (void *)s);
    *out = list;
    return n;
}

static void free_cells(char **cells, int n) {
    for (int i = 0; cells && i < n; i++) cvn_free(cells[i]);
    cvn_free(cells);
}

/* The top-k table as rows x cols strings (caller frees with free_cells): a header, then the k
 * best complete trials. NULL when memory runs out. */
static char **top_cells(const cvn_study *s, int k, int *rows, int *cols) {
    cvn_trial **best;
    const char **names = NULL;
    int n = complete_best_first(s, &best);
    if (n < 0) return NULL;
    if (k < n) n = k;
    int n_names = param_names(best, n, &names);
    char **cells = n_names < 0 ? NULL : cvn_calloc((size_t)(n + 1) * (4 + n_names), sizeof *cells);
    *rows = n + 1;
    *cols = 4 + n_names;
    bool ok = cells != NULL;
    char buf[256];
    for (int r = 0; ok && r <= n; r++)
        for (int c = 0; ok && c < *cols; c++) {
            const cvn_trial *t = r ? best[r - 1] : NULL;
            const hpo_param *p = t && c >= 4 ? hpo_find_param(t, names[c - 4]) : NULL;
            if (!t)
                snprintf(buf, sizeof buf, "%s",
                         c < 4 ? (const char *[]){"rank", "trial", "value", "seconds"}[c]
                               : names[c - 4]);
            else if (c == 0)
                snprintf(buf, sizeof buf, "%d", r);
            else if (c == 1)
                snprintf(buf, sizeof buf, "%d", t->number);
            else if (c == 2)
                snprintf(buf, sizeof buf, "%.6g", t->value);
            else if (c == 3)
                snprintf(buf, sizeof buf, "%.1f", t->finished - t->started);
            else if (p)
                hpo_format_param(p, buf, sizeof buf, 4);
            else
                snprintf(buf, sizeof buf, "-");
            ok = (cells[r * *cols + c] = cvn_strdup(buf)) != NULL;
        }
    if (!ok) {
        free_cells(cells, *rows * *cols);
        cells = NULL;
    }
    cvn_free(names);
    cvn_free(best);
    return cells;
}

cvn_status cvn_study_print_top(FILE *f, const cvn_study *s, int k) {
    if (!f || !s || k < 1) return cvn_set_error(CVN_ERR_ARG, "study_print_top: NULL or k < 1");
    int rows, cols;
    char **cells = top_cells(s, k, &rows, &cols);
    if (!cells) return cvn_last_status();
    int *width = cvn_calloc((size_t)cols, sizeof *width);
    if (!width) {
        free_cells(cells, rows * cols);
        return cvn_last_status();
    }
    for (int i = 0; i < rows * cols; i++)
        if ((int)strlen(cells[i]) > width[i % cols]) width[i % cols] = (int)strlen(cells[i]);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) /* numbers right-aligned, parameters left, no tail */
            fprintf(f, "%s%*s", c ? "  " : "",
                    c < 4          ? width[c]
                    : c + 1 < cols ? -width[c]
                                   : 0,
                    cells[r * cols + c]);
        fputc('\n', f);
        if (!r) {
            int total = 0;
            for (int c = 0; c < cols; c++) total += width[c] + (c ? 2 : 0);
            for (int i = 0; i < total; i++) fputc('-', f);
            fputc('\n', f);
        }
    }
    if (rows == 1) fprintf(f, "(no trial completed)\n");
    cvn_free(width);
    free_cells(cells, rows * cols);
    return ferror(f) ? cvn_set_error(CVN_ERR_IO, "study_print_top: write failed") : CVN_OK;
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *text) {
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (; *text; text++) {
        if (*text == '"') fputc('"', f);
        fputc(*text, f);
    }
    fputc('"', f);
}

cvn_status cvn_study_write_csv(const cvn_study *s, const char *path) {
    if (!s || !path) return cvn_set_error(CVN_ERR_ARG, "study_write_csv: NULL argument");
    const char **names;
    int n_names = param_names(s->trials, s->n_trials, &names);
    if (n_names < 0) return cvn_last_status();
    char tmp[4096], buf[256];
    FILE *f = cvn_file_begin(path, tmp, sizeof tmp);
    if (!f) {
        cvn_free(names);
        return cvn_last_status();
    }
    fputs("number,state,value,duration_s", f);
    for (int j = 0; j < n_names; j++) {
        fputs(",", f);
        snprintf(buf, sizeof buf, "params_%s", names[j]);
        csv_field(f, buf);
    }
    fputc('\n', f);
    for (int i = 0; i < s->n_trials; i++) {
        const cvn_trial *t = s->trials[i];
        fprintf(f, "%d,%s,", t->number, state_names[t->state]);
        if (!isnan(t->value)) fprintf(f, "%.9g", t->value);
        fputc(',', f);
        if (!isnan(t->finished - t->started)) fprintf(f, "%.3f", t->finished - t->started);
        for (int j = 0; j < n_names; j++) {
            fputc(',', f);
            const hpo_param *p = hpo_find_param(t, names[j]);
            if (!p) continue;
            hpo_format_param(p, buf, sizeof buf, 9);
            csv_field(f, buf);
        }
        fputc('\n', f);
    }
    cvn_free(names);
    return cvn_file_commit(f, tmp, path);
}

/* ---- importances */

typedef struct {
    double x, y;
} point;

static int cmp_x(const void *a, const void *b) {
    double u = ((const point *)a)->x, v = ((const point *)b)->x;
    return (u > v) - (u < v);
}

/* The share of the variance of y that the bins of x explain: sum_b n_b (mean_b - mean)^2 over
 * sum (y - mean)^2. Bins hold equal counts of the sorted x (about sqrt(n) bins of at least 2,
 * at most 10), never splitting equal x; a categorical's bins are its categories (equal x). */
static double variance_share(point *pts, int n, double total_ss, double mean, bool categorical) {
    qsort(pts, (size_t)n, sizeof *pts, cmp_x);
    int bins = (int)floor(sqrt((double)n));
    bins = bins < 2 ? 2 : bins > 10 ? 10 : bins;
    double explained = 0;
    for (int start = 0; start < n;) {
        int end = start + (categorical ? 1 : (n + bins - 1) / bins);
        if (end > n) end = n;
        while (end < n && pts[end].x == pts[end - 1].x) end++; /* keep equal x together */
        double sum = 0;
        for (int i = start; i < end; i++) sum += pts[i].y;
        double m = sum / (end - start);
        explained += (end - start) * (m - mean) * (m - mean);
        start = end;
    }
    return explained / total_ss;
}

int cvn_study_param_importances(const cvn_study *s, int cap, const char **names, double *values) {
    if (!s || cap < 0 || (cap && (!names || !values))) {
        cvn_set_error(CVN_ERR_ARG, "study_param_importances: NULL argument");
        return -1;
    }
    cvn_trial **done;
    int n = complete_best_first(s, &done);
    if (n < 0) return -1;
    if (n < 2) {
        cvn_free(done);
        cvn_set_error(CVN_ERR_STATE, "study_param_importances: %d complete trials; needs 2", n);
        return -1;
    }
    double mean = 0, total_ss = 0;
    for (int i = 0; i < n; i++) mean += done[i]->value / n;
    for (int i = 0; i < n; i++) total_ss += (done[i]->value - mean) * (done[i]->value - mean);
    /* the params every complete trial has, with one kind */
    int count = 0;
    const char **own = cvn_malloc((size_t)(done[0]->n_params + 1) * sizeof *own);
    double *share = cvn_malloc((size_t)(done[0]->n_params + 1) * sizeof *share);
    point *pts = cvn_malloc((size_t)n * sizeof *pts);
    if (!own || !share || !pts || !(total_ss > 0)) {
        if (own && share && pts)
            cvn_set_error(CVN_ERR_STATE,
                          "study_param_importances: every complete trial has the same value");
        count = -1;
    }
    for (int j = 0; count >= 0 && j < done[0]->n_params; j++) {
        const hpo_param *first = &done[0]->params[j];
        bool everywhere = true;
        for (int i = 0; i < n && everywhere; i++) {
            const hpo_param *p = hpo_find_param(done[i], first->name);
            everywhere = p && p->dist.kind == first->dist.kind;
            if (everywhere)
                pts[i] = (point){p->dist.log ? log(p->value) : p->value, done[i]->value};
        }
        if (!everywhere) continue;
        own[count] = first->name;
        share[count++] =
            variance_share(pts, n, total_ss, mean, first->dist.kind == HPO_CATEGORICAL);
    }
    if (count > 0) {
        double sum = 0;
        for (int j = 0; j < count; j++) sum += share[j];
        for (int j = 0; j < count; j++) share[j] = sum > 0 ? share[j] / sum : 0;
        for (int j = 1; j < count; j++) /* largest first (insertion sort: few params) */
            for (int k = j; k > 0 && share[k] > share[k - 1]; k--) {
                double v = share[k];
                share[k] = share[k - 1], share[k - 1] = v;
                const char *name = own[k];
                own[k] = own[k - 1], own[k - 1] = name;
            }
        for (int j = 0; j < count && j < cap; j++) names[j] = own[j], values[j] = share[j];
    }
    cvn_free(pts);
    cvn_free(share);
    cvn_free(own);
    cvn_free(done);
    return count;
}

/* ---- the report */

static cvn_status plot_history(const cvn_study *s, const char *path) {
    int n = 0;
    for (int i = 0; i < s->n_trials; i++) n += s->trials[i]->state == CVN_TRIAL_COMPLETE;
    float *buf = cvn_malloc((size_t)(3 * n + 1) * sizeof *buf);
    if (!buf) return cvn_last_status();
    float *x = buf, *y = buf + n, *best = buf + 2 * n;
    int k = 0;
    for (int i = 0; i < s->n_trials; i++) {
        const cvn_trial *t = s->trials[i];
        if (t->state != CVN_TRIAL_COMPLETE) continue;
        x[k] = (float)t->number, y[k] = (float)t->value;
        best[k] = k && !hpo_better(s, t->value, best[k - 1]) ? best[k - 1] : (float)t->value;
        k++;
    }
    cvn_chart chart = {.title = "Optimization history", .x_label = "trial", .y_label = "value"};
    cvn_series series[2] = {{.name = "objective value", .n = n, .x = x, .y = y, .points = true},
                            {.name = "best value", .n = n, .x = x, .y = best}};
    cvn_status st = cvn_svg_line_chart(path, &chart, 2, series);
    cvn_free(buf);
    return st;
}

static cvn_status plot_parallel(const cvn_study *s, const char *path) {
    cvn_trial **done;
    const char **names = NULL;
    int n = complete_best_first(s, &done);
    if (n < 0) return cvn_last_status();
    int n_names = param_names(done, n, &names);
    cvn_axis *axes = n_names < 0 ? NULL : cvn_calloc((size_t)n_names + 1, sizeof *axes);
    double *values = axes ? cvn_malloc((size_t)(n ? n : 1) * (n_names + 1) * sizeof *values) : NULL;
    cvn_status st = values ? CVN_OK : cvn_last_status();
    for (int j = 0; !st && j <= n_names; j++) {
        if (!j) {
            axes[0] = (cvn_axis){.name = "value"};
            continue;
        }
        axes[j].name = names[j - 1];
        for (int i = 0; i < n; i++) { /* the axis takes its kind from the first trial with it */
            const hpo_param *p = hpo_find_param(done[i], names[j - 1]);
            if (!p) continue;
            axes[j].log = p->dist.log;
            axes[j].n_labels = p->dist.n_choices;
            axes[j].labels = (const char *const *)p->dist.choices;
            break;
        }
    }
    for (int i = 0; !st && i < n; i++) {
        double *row = values + (size_t)i * (n_names + 1);
        row[0] = done[i]->value;
        for (int j = 1; j <= n_names; j++) {
            const hpo_param *p = hpo_find_param(done[i], names[j - 1]);
            row[j] = p && p->dist.n_choices == axes[j].n_labels ? p->value : NAN;
        }
    }
    if (!st)
        st = cvn_svg_parallel_coordinates(path, "Parallel coordinates (complete trials)",
                                          n_names + 1, axes, n, values, 0,
                                          s->c.direction == CVN_MINIMIZE);
    cvn_free(values);
    cvn_free(axes);
    cvn_free(names);
    cvn_free(done);
    return st;
}

/* The importance bars, drawn when there are any (*drawn false below 2 complete trials or without
 * spread: no plot, no error). One pass: no trial has more parameters than the largest has. */
static cvn_status plot_importance(const cvn_study *s, const char *path, bool *drawn) {
    int cap = 1;
    for (int i = 0; i < s->n_trials; i++)
        if (s->trials[i]->n_params > cap) cap = s->trials[i]->n_params;
    const char **names = cvn_malloc((size_t)cap * sizeof *names);
    double *values = cvn_malloc((size_t)cap * sizeof *values);
    cvn_status st = names && values ? CVN_OK : cvn_last_status();
    int n = st ? 0 : cvn_study_param_importances(s, cap, names, values);
    *drawn = n > 0;
    if (!st && n < 0 && cvn_last_status() == CVN_ERR_NOMEM) st = CVN_ERR_NOMEM;
    if (!st && *drawn)
        st = cvn_svg_bar_chart(path, "Hyperparameter importance", "share of the value's variance",
                               n, names, values);
    cvn_free(values);
    cvn_free(names);
    return st;
}

cvn_status cvn_study_write_report(const cvn_study *s, const char *dir) {
    if (!s || !dir) return cvn_set_error(CVN_ERR_ARG, "study_write_report: NULL argument");
    char path[4096];
#define PATH(name) (snprintf(path, sizeof path, "%s/%s", dir, name), path)
    if (cvn_study_write_csv(s, PATH("trials.csv"))) return cvn_last_status();
    int complete = 0;
    for (int i = 0; i < s->n_trials; i++) complete += s->trials[i]->state == CVN_TRIAL_COMPLETE;
    cvn_report *r = cvn_report_new(s->name);
    if (!r) return cvn_last_status();
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    cvn_status st = mem ? CVN_OK : cvn_set_error(CVN_ERR_NOMEM, "study_write_report: no memory");
    if (!st) {
        st = cvn_study_print_statistics(mem, s);
        fclose(mem);
    }
    if (!st) {
        cvn_report_heading(r, "Study statistics");
        cvn_report_pre(r, text);
        cvn_report_heading(r, "Top 10 trials");
        int rows, cols;
        char **cells = top_cells(s, 10, &rows, &cols);
        if (!cells)
            st = cvn_last_status();
        else if (rows > 1)
            cvn_report_table(r, rows, cols, (const char *const *)cells);
        else
            cvn_report_paragraph(r, "No trial completed.");
        free_cells(cells, rows * cols);
    }
    if (!st && complete) {
        st = plot_history(s, PATH("history.svg"));
        if (!st) st = cvn_report_svg(r, path, "Every complete trial's value and the best so far.");
        if (!st) st = plot_parallel(s, PATH("parallel.svg"));
        if (!st)
            st = cvn_report_svg(r, path,
                                "Each line is a complete trial; the darker, the better its "
                                "value.");
    }
    bool drawn = false;
    if (!st && complete >= 2) st = plot_importance(s, PATH("importance.svg"), &drawn);
    if (!st && drawn)
        st = cvn_report_svg(r, path,
                            "Share of the value's variance each parameter explains on its "
                            "own (binned marginal means over the complete trials).");
    if (!st) {
        cvn_report_paragraph(r, "Every trial, with its parameters: trials.csv.");
        st = cvn_report_write(r, PATH("report.html"));
    }
#undef PATH
    free(text);
    cvn_report_free(r);
    return st;
}
