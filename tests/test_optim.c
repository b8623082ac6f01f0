/* Optimizers against torch.optim: 100-step trajectories of every optimizer and option on the
 * small problem of tests/ref/make_optim_ref.py, parameter groups, frozen parameters, state access,
 * argument errors; learning-rate schedules and gradient clipping against PyTorch too. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim_cases.h"

START_TEST(test_trajectory) {
    optim_case oc = make_case(_i);
    cvn_tensor *p1 = ref_tensor("optim.w1", true), *p2 = ref_tensor("optim.w2", true);
    const ref_array *c1 = ref_get("optim.c1"), *c2 = ref_get("optim.c2");
    const ref_array *noise = ref_get("optim.noise");
    cvn_optim *o = CK_NOTNULL(cvn_optim_new(&oc.cfg));
    if (!strcmp(oc.name, "groups")) {
        ck_assert_int_eq(cvn_optim_add_group(o, 1, &p1, -1.0f, -1.0f), 0);
        ck_assert_int_eq(cvn_optim_add_group(o, 1, &p2, 0.05f, 0.1f), 1);
    } else {
        ck_assert_int_eq(cvn_optim_add_group(o, 2, (cvn_tensor *[]){p1, p2}, -1.0f, -1.0f), 0);
    }
    char name[96];
    for (int t = 1; t <= 100; t++) {
        set_grad(p1, c1, noise->v + (t - 1) * 42);
        if (strcmp(oc.name, "frozen")) set_grad(p2, c2, noise->v + (t - 1) * 42 + 37);
        CK_OK(cvn_optim_step(o));
        if (t == 1 || t == 10 || t == 100) {
            snprintf(name, sizeof name, "%s.p1.%d", oc.name, t);
            expect_tensor(name, p1, name, 1e-5f, 1e-5f);
            snprintf(name, sizeof name, "%s.p2.%d", oc.name, t);
            expect_tensor(name, p2, name, 1e-5f, 1e-5f);
        }
    }
    ck_assert_int_eq(cvn_optim_steps(o), 100);
    cvn_optim_free(o);
    cvn_tensor_free(p1), cvn_tensor_free(p2);
}
END_TEST

/* Every SIMD variant computes the same update. */
START_TEST(test_state_and_zero_grad) {
    cvn_tensor *p1 = ref_tensor("optim.w1", true);
    cvn_optim_config c = cvn_optim_defaults(CVN_ADAM);
    c.amsgrad = true;
    cvn_optim *o = cvn_optim_new(&c);
    ck_assert_int_eq(cvn_optim_add_group(o, 1, &p1, -1, -1), 0);
    ck_assert_int_eq(cvn_optim_num_state(o), 3);
    const char *name;
    cvn_tensor *m = CK_NOTNULL(cvn_optim_state_at(o, 0, &name));
    ck_assert_str_eq(name, "exp_avg");
    ck_assert_int_eq(cvn_numel(m), 37);
    set_grad(p1, ref_get("optim.c1"), ref_get("optim.noise")->v);
    float g0 = ((float *)p1->grad->data)[0];
    CK_OK(cvn_optim_step(o));
    /* after one step exp_avg = (1 - beta1) g */
    ck_assert_float_eq_tol(((float *)m->data)[0], 0.1f * g0, 1e-6f);
    cvn_optim_zero_grad(o);
    ck_assert_float_eq(((float *)p1->grad->data)[5], 0.0f);
    CK_OK(cvn_optim_set_lr(o, -1, 0.5f));
    ck_assert_float_eq(cvn_optim_get_lr(o, 0), 0.5f);
    /* groups cannot be added after the first step */
    ck_assert_int_eq(cvn_optim_add_group(o, 1, &p1, -1, -1), -1);
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_STATE);
    cvn_optim_free(o);
    cvn_tensor_free(p1);
}
END_TEST

START_TEST(test_bad_config) {
    cvn_optim_config c = cvn_optim_defaults(CVN_ADAM);
    c.beta1 = 1.0f;
    ck_assert_ptr_null(cvn_optim_new(&c));
    ck_assert(strstr(cvn_last_error(), "beta1") != NULL);
    c = cvn_optim_defaults(CVN_SGD);
    c.nesterov = true;
    ck_assert_ptr_null(cvn_optim_new(&c));
    ck_assert(strstr(cvn_last_error(), "nesterov") != NULL);
    c = cvn_optim_defaults(CVN_SGD);
    c.lr = -1.0f;
    ck_assert_ptr_null(cvn_optim_new(&c));
    cvn_optim *o = cvn_optim_new(
        &(cvn_optim_config){.kind = CVN_SGD, .lr = 0.1f, .eta_minus = 0.5f, .eta_plus = 1.2f});
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(cvn_optim_step(o), CVN_ERR_STATE); /* no parameters */
    cvn_tensor *u8 = cvn_tensor_new(CVN_U8, 1, (int64_t[]){3});
    ck_assert_int_eq(cvn_optim_add_group(o, 1, &u8, -1, -1), -1);
    cvn_tensor_free(u8);
    cvn_optim_free(o);
    ck_assert_ptr_null(cvn_optim_new(NULL));
}
END_TEST

/* Schedules: the lr of two groups over 29 steps, against torch.optim.lr_scheduler. */
static const char *const sched_names[] = {"step",   "multistep", "exponential",
                                          "cosine", "onecycle",  "plateau"};

START_TEST(test_schedule) {
    cvn_schedule_config c = cvn_schedule_defaults((cvn_schedule_kind)_i);
    switch (_i) {
    case CVN_SCHED_STEP:
        c.step_size = 3, c.gamma = 0.5f;
        break;
    case CVN_SCHED_MULTISTEP:
        c.gamma = 0.3f, c.n_milestones = 4;
        memcpy(c.milestones, (int[]){2, 5, 5, 11}, 4 * sizeof(int));
        break;
    case CVN_SCHED_EXPONENTIAL:
        c.gamma = 0.9f;
        break;
    case CVN_SCHED_COSINE:
        c.t_max = 10, c.eta_min = 0.001f;
        break;
    case CVN_SCHED_ONECYCLE:
        c.max_lr = 0.2f, c.total_steps = 30;
        break;
    default:
        c.factor = 0.5f, c.patience = 2, c.cooldown = 1, c.min_lr = 0.004f;
    }
    cvn_tensor *q = cvn_tensor_new(CVN_F32, 1, (int64_t[]){3});
    cvn_tensor *r = cvn_tensor_new(CVN_F32, 1, (int64_t[]){3});
    cvn_tensor_set_requires_grad(q, true), cvn_tensor_set_requires_grad(r, true);
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    oc.lr = 0.1f;
    cvn_optim *o = cvn_optim_new(&oc);
    cvn_optim_add_group(o, 1, &q, -1, -1);
    cvn_optim_add_group(o, 1, &r, 0.05f, -1);
    cvn_scheduler *s = CK_NOTNULL(cvn_scheduler_new(o, &c));
    char name[64];
    snprintf(name, sizeof name, "sched.%s", sched_names[_i]);
    const ref_array *want = ref_get(name), *metrics = ref_get("sched.metrics");
    for (int t = 0; t < 30; t++) {
        if (t > 0) {
            CK_OK(cvn_optim_step(o));
            CK_OK(cvn_scheduler_step(s, metrics->v[t - 1]));
        }
        for (int g = 0; g < 2; g++) {
            float got = cvn_optim_get_lr(o, g), ref = want->v[t * 2 + g];
            ck_assert_msg(fabsf(got - ref) <= 1e-6f + 1e-5f * fabsf(ref),
                          "%s step %d group %d: lr %.8g, PyTorch %.8g", name, t, g, (double)got,
                          (double)ref);
        }
    }
    cvn_scheduler_free(s);
    cvn_optim_free(o);
    cvn_tensor_free(q), cvn_tensor_free(r);
}
END_TEST

/* More gradients than one backend call takes (64): 70 of one element each, g_i = i, so the norm is
 * sqrt(1^2 + ... + 70^2) and every gradient is scaled by max_norm / norm. */
START_TEST(test_clip_norm_many_params) {
    enum { N = 70 };
    cvn_tensor *p[N];
    int64_t one[1] = {1};
    for (int i = 0; i < N; i++) {
        p[i] = cvn_tensor_new(CVN_F32, 1, one);
        cvn_tensor_set_requires_grad(p[i], true);
        ((float *)cvn_tensor_grad(p[i])->data)[0] = (float)(i + 1);
    }
    cvn_optim_config oc = cvn_optim_defaults(CVN_SGD);
    cvn_optim *o = CK_NOTNULL(cvn_optim_new(&oc));
    ck_assert_int_eq(cvn_optim_add_group(o, N, p, -1, -1), 0);
    float total;
    CK_OK(cvn_optim_clip_grad_norm(o, 2.0f, &total));
    double want = sqrt(N * (N + 1) * (2.0 * N + 1) / 6.0);
    ck_assert_float_eq_tol(total, want, 1e-6 * want);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq_tol(((float *)p[i]->grad->data)[0], 2.0 * (i + 1) / want, 1e-6f);
    cvn_optim_free(o);
    for (int i = 0; i < N; i++) cvn_tensor_free(p[i]);
}
END_TEST

START_TEST(test_clipping) {
    const ref_array *noise = ref_get("optim.noise");
    for (int mode = 0; mode < 2; mode++) {
        cvn_tensor *p1 = ref_tensor("optim.w1", true), *p2 = ref_tensor("optim.w2", true);
        float *g1 = cvn_tensor_grad(p1)->data, *g2 = cvn_tensor_grad(p2)->data;
        for (int i = 0; i < 37; i++) g1[i] = 3 * noise->v[i];
        for (int i = 0; i < 5; i++) g2[i] = 3 * noise->v[37 + i];
        cvn_optim *o = cvn_optim_new(
            &(cvn_optim_config){.kind = CVN_SGD, .lr = 0.1f, .eta_minus = 0.5f, .eta_plus = 1.2f});
        cvn_optim_add_group(o, 2, (cvn_tensor *[]){p1, p2}, -1, -1);
        if (mode == 0) {
            float total;
            CK_OK(cvn_optim_clip_grad_norm(o, 1.0f, &total));
            ck_assert_float_eq_tol(total, ref_get("clip_norm.total")->v[0], 1e-5f);
            expect_tensor("clip_norm g1", p1->grad, "clip_norm.g1", 1e-5f, 1e-7f);
            expect_tensor("clip_norm g2", p2->grad, "clip_norm.g2", 1e-5f, 1e-7f);
        } else {
            CK_OK(cvn_optim_clip_grad_value(o, 0.3f));
            expect_tensor("clip_value g1", p1->grad, "clip_value.g1", 0, 0);
            expect_tensor("clip_value g2", p2->grad, "clip_value.g2", 0, 0);
        }
        ck_assert_int_eq(cvn_optim_clip_grad_norm(o, 0.0f, NULL), CVN_ERR_ARG);
        cvn_optim_free(o);
        cvn_tensor_free(p1), cvn_tensor_free(p2);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_loop_test(tc, test_trajectory, 0, N_OPTIM_CASES);
    tcase_add_test(tc, test_state_and_zero_grad);
    tcase_add_test(tc, test_bad_config);
    tcase_add_loop_test(tc, test_schedule, 0, 6);
    tcase_add_test(tc, test_clipping);
    tcase_add_test(tc, test_clip_norm_many_params);
    suite_add_tcase(s, tc);
    return run_suite(s) ? 1 : 0;
}
