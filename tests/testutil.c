#include "testutil.h"
#include "check_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ref_array *refs;
static int n_refs;

static int cap_refs;

static void load_file(const char *file) {
    const char *dir = getenv("CVN_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/ref", file);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s (set CVN_TEST_DATA)\n", path);
        abort();
    }
    int cap = cap_refs;
    char name[96];
    while (fscanf(f, "%95s", name) == 1) {
        if (name[0] == '#') {
            int c;
            while ((c = fgetc(f)) != '\n' && c != EOF) {
            }
            continue;
        }
        if (n_refs == cap) refs = realloc(refs, (size_t)(cap *= 2) * sizeof *refs);
        ref_array *r = &refs[n_refs++];
        snprintf(r->name, sizeof r->name, "%s", name);
        if (fscanf(f, "%d", &r->ndim) != 1) abort();
        r->n = 1;
        for (int d = 0; d < r->ndim; d++) {
            long long v;
            if (fscanf(f, "%lld", &v) != 1) abort();
            r->shape[d] = v;
            r->n *= v;
        }
        r->v = malloc((size_t)(r->n ? r->n : 1) * sizeof(float));
        for (int64_t i = 0; i < r->n; i++) {
            double v;
            if (fscanf(f, "%lf", &v) != 1) abort();
            r->v[i] = (float)v;
        }
    }
    fclose(f);
    cap_refs = cap;
}

static void load_refs(void) {
    if (refs) return;
    cap_refs = 512;
    refs = calloc((size_t)cap_refs, sizeof *refs);
    load_file("ops_ref.txt");
    load_file("optim_ref.txt");
    load_file("zoo_ref.txt");
}

const ref_array *ref_get(const char *name) {
    load_refs();
    for (int i = 0; i < n_refs; i++)
        if (!strcmp(refs[i].name, name)) return &refs[i];
    ck_abort_msg("reference array %s not found", name);
    return NULL;
}

cvn_tensor *ref_tensor(const char *name, bool requires_grad) {
    const ref_array *r = ref_get(name);
    cvn_tensor *t = cvn_tensor_from_f32(r->ndim, r->shape, r->v, r->n);
    ck_assert_msg(t != NULL, "%s", cvn_last_error());
    if (requires_grad) cvn_tensor_set_requires_grad(t, true);
    return t;
}

cvn_tensor *ref_tape_tensor(cvn_tape *t, const char *name) {
    const ref_array *r = ref_get(name);
    return cvn_tape_tensor_f32(t, r->ndim, r->shape, r->v);
}

void expect_close(const char *what, const float *got, const ref_array *want, float rtol,
                  float atol) {
    ck_assert_msg(got != NULL, "%s: no values (%s)", what, cvn_last_error());
    for (int64_t i = 0; i < want->n; i++) {
        float err = fabsf(got[i] - want->v[i]);
        ck_assert_msg(err <= atol + rtol * fabsf(want->v[i]),
                      "%s[%lld]: got %.8g, PyTorch %.8g (diff %.3g)", what, (long long)i,
                      (double)got[i], (double)want->v[i], (double)err);
    }
}

void expect_tensor(const char *what, const cvn_tensor *got, const char *ref, float rtol,
                   float atol) {
    const ref_array *want = ref_get(ref);
    ck_assert_msg(got != NULL, "%s: NULL tensor (%s)", what, cvn_last_error());
    ck_assert_msg(cvn_numel(got) == want->n, "%s: %lld elements, PyTorch %lld", what,
                  (long long)cvn_numel(got), (long long)want->n);
    int nd = got->ndim;
    /* shapes must agree up to PyTorch's scalar () vs our [1] */
    if (!(want->ndim == 0 && cvn_numel(got) == 1)) {
        ck_assert_msg(nd == want->ndim, "%s: %d dims, PyTorch %d", what, nd, want->ndim);
        for (int d = 0; d < nd; d++)
            ck_assert_msg(got->shape[d] == want->shape[d], "%s: dim %d is %lld, PyTorch %lld", what,
                          d, (long long)got->shape[d], (long long)want->shape[d]);
    }
    expect_close(what, got->data, want, rtol, atol);
}

static char scratch[] = "/tmp/cvn_test_XXXXXX";
static pid_t scratch_owner;

static void remove_scratch(void) {
    if (getpid() != scratch_owner) return; /* a forked test process */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
    if (system(cmd)) {
    }
}

const char *test_dir(void) {
    if (!scratch_owner) {
        if (!mkdtemp(scratch)) {
            fprintf(stderr, "cannot make a scratch directory under /tmp\n");
            abort();
        }
        scratch_owner = getpid();
        atexit(remove_scratch);
    }
    return scratch;
}

static long n_allocations;
static void *counting_malloc(size_t n, void *ctx) {
    (void)ctx;
    n_allocations++;
    return malloc(n);
}
static void counting_free(void *p, void *ctx) {
    (void)ctx;
    free(p);
}

void count_allocations(bool on) {
    n_allocations = 0;
    cvn_set_allocator(on ? &(cvn_allocator){counting_malloc, counting_free, NULL} : NULL);
}

long allocations_counted(void) {
    return n_allocations;
}

int run_suite(Suite *s) {
    return check_run(s, true);
}
int run_suite_nofork(Suite *s) {
    return check_run(s, false);
}
