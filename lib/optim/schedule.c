/* Learning-rate schedules with the closed forms of torch.optim.lr_scheduler. */
#include <math.h>

#include "core/core.h"

struct cvn_scheduler {
    cvn_schedule_config cfg;
    cvn_optim *opt;
    float *base; /* each group's initial lr */
    int n_groups;
    int epoch; /* steps taken */
    /* plateau */
    float best;
    int bad_epochs, cooldown_left;
};

cvn_schedule_config cvn_schedule_defaults(cvn_schedule_kind kind) {
    return (cvn_schedule_config){.kind = kind,
                                 .gamma = 0.1f,
                                 .step_size = 1,
                                 .t_max = 1,
                                 .pct_start = 0.3f,
                                 .div_factor = 25.0f,
                                 .final_div_factor = 1e4f,
                                 .factor = 0.1f,
                                 .threshold = 1e-4f,
                                 .patience = 10};
}

static cvn_status check(const cvn_schedule_config *c) {
    const char *bad = NULL;
    switch (c->kind) {
    case CVN_SCHED_STEP:
        bad = c->step_size < 1 ? "step_size" : NULL;
        break;
    case CVN_SCHED_MULTISTEP:
        if (c->n_milestones < 0 || c->n_milestones > CVN_MAX_MILESTONES) bad = "n_milestones";
        for (int i = 1; !bad && i < c->n_milestones; i++)
            if (c->milestones[i] < c->milestones[i - 1]) bad = "milestones (must not decrease)";
        break;
    case CVN_SCHED_EXPONENTIAL:
        break;
    case CVN_SCHED_COSINE:
        bad = c->t_max < 1 ? "t_max" : NULL;
        break;
    case CVN_SCHED_ONECYCLE:
        if (c->total_steps < 2)
            bad = "total_steps";
        else if (!(c->max_lr > 0.0f))
            bad = "max_lr";
        else if (!(c->pct_start > 0.0f && c->pct_start < 1.0f))
            bad = "pct_start";
        else if (!(c->div_factor > 0.0f && c->final_div_factor > 0.0f))
            bad = "div factors";
        break;
    case CVN_SCHED_PLATEAU:
        if (!(c->factor > 0.0f && c->factor < 1.0f))
            bad = "factor";
        else if (c->patience < 0 || c->cooldown < 0)
            bad = "patience or cooldown";
        break;
    default:
        bad = "kind";
    }
    if (!bad && !(c->gamma > 0.0f)) bad = "gamma";
    return bad ? cvn_set_error(CVN_ERR_ARG, "scheduler: invalid %s", bad) : CVN_OK;
}

/* OneCycle, two phases with cosine annealing: initial -> max over [0, pct_start T - 1], then
 * max -> initial / final_div_factor over [pct_start T - 1, T - 1]. */
static float one_cycle(const cvn_schedule_config *c, int step) {
    float initial = c->max_lr / c->div_factor, final = initial / c->final_div_factor;
    float end1 = c->pct_start * (float)c->total_steps - 1.0f, end2 = (float)c->total_steps - 1.0f;
    float from, to, pct;
    if ((float)step <= end1) {
        from = initial, to = c->max_lr, pct = (float)step / end1;
    } else {
        from = c->max_lr, to = final, pct = ((float)step - end1) / (end2 - end1);
    }
    return to + (from - to) / 2.0f * (1.0f + cosf((float)M_PI * pct));
}

static float lr_at(const cvn_scheduler *s, float base) {
    const cvn_schedule_config *c = &s->cfg;
    int e = s->epoch;
    switch (c->kind) {
    case CVN_SCHED_STEP:
        return base * powf(c->gamma, (float)(e / c->step_size));
    case CVN_SCHED_MULTISTEP: {
        int passed = 0;
        while (passed < c->n_milestones && c->milestones[passed] <= e) passed++;
        return base * powf(c->gamma, (float)passed);
    }
    case CVN_SCHED_EXPONENTIAL:
        return base * powf(c->gamma, (float)e);
    case CVN_SCHED_COSINE:
        return c->eta_min +
               (base - c->eta_min) * (1.0f + cosf((float)M_PI * (float)e / (float)c->t_max)) / 2.0f;
    default:
        return one_cycle(c, e);
    }
}

cvn_scheduler *cvn_scheduler_new(cvn_optim *o, const cvn_schedule_config *config) {
    if (!o || !config || cvn_optim_num_groups(o) < 1) {
        cvn_set_error(CVN_ERR_ARG, "scheduler_new: needs an optimizer with parameter groups");
        return NULL;
    }
    if (check(config)) return NULL;
    cvn_scheduler *s = cvn_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = *config;
    s->opt = o;
    s->n_groups = cvn_optim_num_groups(o);
    s->base = cvn_malloc((size_t)s->n_groups * sizeof *s->base);
    if (!s->base) {
        cvn_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) s->base[g] = cvn_optim_get_lr(o, g);
    s->best = config->maximize ? -INFINITY : INFINITY;
    if (config->kind == CVN_SCHED_ONECYCLE) cvn_optim_set_lr(o, -1, one_cycle(config, 0));
    return s;
}

void cvn_scheduler_free(cvn_scheduler *s) {
    if (!s) return;
    cvn_free(s->base);
    cvn_free(s);
}

/* ReduceLROnPlateau with relative threshold: improvement means metric < best (1 - threshold)
 * (or > best (1 + threshold) when maximizing). */
static cvn_status plateau_step(cvn_scheduler *s, float metric) {
    const cvn_schedule_config *c = &s->cfg;
    if (isnan(metric)) return cvn_set_error(CVN_ERR_ARG, "scheduler_step: metric is NaN");
    bool better = c->maximize ? metric > s->best * (1.0f + c->threshold)
                              : metric < s->best * (1.0f - c->threshold);
    if (better)
        s->best = metric, s->bad_epochs = 0;
    else
        s->bad_epochs++;
    if (s->cooldown_left > 0) s->cooldown_left--, s->bad_epochs = 0;
    if (s->bad_epochs > c->patience) {
        for (int g = 0; g < s->n_groups; g++) {
            float old = cvn_optim_get_lr(s->opt, g), lr = fmaxf(old * c->factor, c->min_lr);
            if (old - lr > 1e-8f) cvn_optim_set_lr(s->opt, g, lr);
        }
        s->cooldown_left = c->cooldown;
        s->bad_epochs = 0;
    }
    return CVN_OK;
}

cvn_status cvn_scheduler_step(cvn_scheduler *s, float metric) {
    if (!s) return cvn_set_error(CVN_ERR_ARG, "scheduler_step: scheduler is NULL");
    s->epoch++;
    if (s->cfg.kind == CVN_SCHED_PLATEAU) return plateau_step(s, metric);
    if (s->cfg.kind == CVN_SCHED_ONECYCLE && s->epoch >= s->cfg.total_steps)
        return cvn_set_error(CVN_ERR_STATE, "scheduler_step: OneCycle stepped past total_steps %d",
                             s->cfg.total_steps);
    for (int g = 0; g < s->n_groups; g++) cvn_optim_set_lr(s->opt, g, lr_at(s, s->base[g]));
    return CVN_OK;
}
