/* The samplers' overhead: time per trial (ask, suggest six parameters of every kind, report two
 * intermediate values, tell) as a study grows to --trials trials (1,000 by default), for TPE and
 * random search in memory, and for TPE with the study in an SQLite file (every change written
 * through); the target is under 5 ms per trial at 1,000 trials. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cvnet.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run(cvn_sampler_kind sampler, int trials, const char *file) {
    cvn_study_config c = cvn_study_defaults();
    c.sampler = sampler;
    c.seed = 1;
    char storage[600];
    if (file) {
        snprintf(storage, sizeof storage, "sqlite:%s", file);
        c.storage = storage;
        remove(file);
    }
    cvn_study *s = cvn_study_new(&c);
    if (!s) return 1;
    double last100 = 0, t0 = now_ms();
    for (int i = 0; i < trials; i++) {
        double start = now_ms();
        cvn_trial *t = cvn_study_ask(s);
        double lr, p;
        int64_t layers, units;
        int opt, act;
        if (!t || cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, &lr) ||
            cvn_trial_suggest_float(t, "dropout", 0.2, 0.5, false, &p) ||
            cvn_trial_suggest_int(t, "n_layers", 1, 5, 1, false, &layers) ||
            cvn_trial_suggest_int(t, "n_units", 4, 128, 1, true, &units) ||
            cvn_trial_suggest_categorical(t, "optimizer", 3,
                                          (const char *[]){"Adam", "RMSprop", "SGD"}, &opt) ||
            cvn_trial_suggest_categorical(t, "act", 2, (const char *[]){"relu", "gelu"}, &act))
            return fprintf(stderr, "bench_hpo: %s\n", cvn_last_error()), 1;
        double v = pow(log10(lr) + 3, 2) + pow(p - 0.3, 2) + fabs((double)layers - 3) +
                   fabs(log((double)units / 32)) + opt + act;
        if (cvn_trial_report(t, 0, 2 * v) || cvn_trial_report(t, 1, v)) return 1;
        if (cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, v)) return 1;
        if (i >= trials - 100) last100 += now_ms() - start;
    }
    printf("%-11s %5d trials: %8.1f ms in all, %.3f ms per trial over the last 100\n",
           file                         ? "tpe+sqlite"
           : sampler == CVN_SAMPLER_TPE ? "tpe"
                                        : "random",
           trials, now_ms() - t0, last100 / 100);
    cvn_study_free(s);
    if (file) {
        char p[600];
        remove(file);
        snprintf(p, sizeof p, "%s-wal", file), remove(p);
        snprintf(p, sizeof p, "%s-shm", file), remove(p);
    }
    return 0;
}

int main(int argc, char **argv) {
    int trials = 1000;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--trials")) trials = atoi(argv[i + 1]);
    if (trials < 100) trials = 100;
    printf(
        "# libcvnet bench_hpo: sampler overhead (6 parameters per trial); target < 5 ms per trial "
        "at 1,000 trials\n");
    char file[64];
    snprintf(file, sizeof file, "/tmp/bench_hpo_%d.db", (int)getpid());
    return run(CVN_SAMPLER_TPE, trials, NULL) || run(CVN_SAMPLER_RANDOM, trials, NULL) ||
           run(CVN_SAMPLER_TPE, trials, file);
}
