/* Studies in an SQLite file: resuming, a worker killed mid-trial, several processes on one study,
 * damaged and foreign files; and what a study writes for people (CSV, top-10 table, importances,
 * the report and its plots). */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char *path_in_test_dir(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", test_dir(), name);
    return p;
}

static cvn_study *open_study(const char *file, cvn_direction direction, uint64_t seed) {
    char storage[600];
    snprintf(storage, sizeof storage, "sqlite:%s", file);
    cvn_study_config c = cvn_study_defaults();
    c.name = "search";
    c.direction = direction;
    c.storage = storage;
    c.seed = seed;
    c.n_startup_trials = 4;
    return cvn_study_new(&c);
}

static void remove_db(const char *file) {
    char p[600];
    remove(file);
    snprintf(p, sizeof p, "%s-wal", file);
    remove(p);
    snprintf(p, sizeof p, "%s-shm", file);
    remove(p);
}

/* One trial with a float, an int and a categorical, reports at steps 0..reports-1. */
static const char *const optimizers[] = {"Adam", "RMS,prop", "SGD"};

static cvn_trial *run_trial(cvn_study *s, int reports, double *lr, int64_t *units, int *opt) {
    cvn_trial *t = CK_NOTNULL(cvn_study_ask(s));
    CK_OK(cvn_trial_suggest_float(t, "lr", 1e-4, 1e-1, true, lr));
    CK_OK(cvn_trial_suggest_int(t, "units", 8, 64, 8, false, units));
    CK_OK(cvn_trial_suggest_categorical(t, "optimizer", 3, optimizers, opt));
    for (int step = 0; step < reports; step++) CK_OK(cvn_trial_report(t, step, 0.1 * step + *lr));
    return t;
}

START_TEST(resume_keeps_every_trial) {
    const char *file = path_in_test_dir("resume.db");
    remove_db(file);
    cvn_study *s = CK_NOTNULL(open_study(file, CVN_MAXIMIZE, 3));
    double lr[5];
    int64_t units[5];
    int opt[5];
    for (int i = 0; i < 5; i++) {
        cvn_trial *t = run_trial(s, i, &lr[i], &units[i], &opt[i]);
        cvn_trial_state state = i == 3   ? CVN_TRIAL_PRUNED
                                : i == 4 ? CVN_TRIAL_FAIL
                                         : CVN_TRIAL_COMPLETE;
        CK_OK(cvn_study_tell(s, t, state, i / 10.0));
    }
    cvn_study_free(s);

    /* the other direction is refused; the same one continues where it stopped */
    ck_assert_ptr_null(open_study(file, CVN_MINIMIZE, 3));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);
    s = CK_NOTNULL(open_study(file, CVN_MAXIMIZE, 3));
    ck_assert_int_eq(cvn_study_num_trials(s), 5);
    for (int i = 0; i < 5; i++) {
        cvn_trial *t = cvn_study_trial(s, i);
        ck_assert_int_eq(cvn_trial_number(t), i);
        ck_assert_int_eq(cvn_trial_state_of(t), i == 3   ? CVN_TRIAL_PRUNED
                                                : i == 4 ? CVN_TRIAL_FAIL
                                                         : CVN_TRIAL_COMPLETE);
        double want = i < 3 ? i / 10.0 : i == 3 ? 0.1 * 2 + lr[3] : NAN; /* pruned: last report */
        if (isnan(want))
            ck_assert(isnan(cvn_trial_value(t)));
        else
            ck_assert_double_eq_tol(cvn_trial_value(t), want, 1e-15);
        ck_assert(cvn_trial_duration(t) >= 0 && cvn_trial_duration(t) < 60);
        ck_assert_int_eq(cvn_trial_num_params(t), 3);
        char v[64];
        ck_assert_str_eq(cvn_trial_param_name(t, 0, NULL, 0), "lr");
        ck_assert_str_eq(cvn_trial_param_name(t, 2, v, sizeof v), "optimizer");
        ck_assert_str_eq(v, optimizers[opt[i]]);
        cvn_trial_param_name(t, 1, v, sizeof v);
        ck_assert_int_eq(atoll(v), units[i]);
    }
    ck_assert_int_eq(cvn_trial_number(cvn_study_best_trial(s)), 2);
    /* the next trial takes the next number and TPE sees the stored ones */
    double lr5;
    int64_t units5;
    int opt5;
    cvn_trial *t = run_trial(s, 2, &lr5, &units5, &opt5);
    ck_assert_int_eq(cvn_trial_number(t), 5);
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 0.9));
    ck_assert_int_eq(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 0.9), CVN_ERR_STATE);
    cvn_study_free(s);
    s = CK_NOTNULL(open_study(file, CVN_MAXIMIZE, 3));
    ck_assert_int_eq(cvn_study_num_trials(s), 6);
    ck_assert_int_eq(cvn_trial_number(cvn_study_best_trial(s)), 5);
    /* a trial left running when the study is freed ends as FAIL */
    CK_NOTNULL(cvn_study_ask(s));
    cvn_study_free(s);
    s = CK_NOTNULL(open_study(file, CVN_MAXIMIZE, 3));
    ck_assert_int_eq(cvn_trial_state_of(cvn_study_trial(s, 6)), CVN_TRIAL_FAIL);
    cvn_study_free(s);
    remove_db(file);
}
END_TEST

/* The state letter of a process from /proc (0 when it is gone). */
static char proc_state(pid_t pid) {
    char path[64], buf[512] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : 0;
}

START_TEST(sigkill_mid_trial_fails_only_that_trial) {
    const char *file = path_in_test_dir("killed.db");
    remove_db(file);
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the worker: three trials, then one it never ends */
        cvn_study *s = open_study(file, CVN_MINIMIZE, 5);
        if (!s) _exit(2);
        for (int i = 0; i < 4; i++) {
            double lr;
            int64_t units;
            int opt;
            cvn_trial *t = cvn_study_ask(s);
            if (!t || cvn_trial_suggest_float(t, "lr", 1e-4, 1e-1, true, &lr) ||
                cvn_trial_suggest_int(t, "units", 8, 64, 8, false, &units) ||
                cvn_trial_suggest_categorical(t, "optimizer", 2, (const char *[]){"Adam", "SGD"},
                                              &opt) ||
                cvn_trial_report(t, 0, lr))
                _exit(3);
            if (i < 3 && cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 10.0 + i)) _exit(4);
        }
        if (write(ready[1], "k", 1) != 1) _exit(5);
        for (;;) pause(); /* mid-trial: SIGKILL ends it here */
    }
    close(ready[1]);
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    /* a killed child not yet reaped is a zombie: its trial is failed already */
    for (int i = 0; i < 2000 && proc_state(pid) != 'Z'; i++) usleep(1000);
    ck_assert_int_eq(proc_state(pid), 'Z');
    cvn_study *s = CK_NOTNULL(open_study(file, CVN_MINIMIZE, 5));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert_int_eq(cvn_study_num_trials(s), 4);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cvn_trial_state_of(cvn_study_trial(s, i)), CVN_TRIAL_COMPLETE);
        ck_assert_double_eq(cvn_trial_value(cvn_study_trial(s, i)), 10.0 + i);
    }
    cvn_trial *killed = cvn_study_trial(s, 3);
    ck_assert_int_eq(cvn_trial_state_of(killed), CVN_TRIAL_FAIL);
    ck_assert_int_eq(cvn_trial_num_params(killed), 3); /* what it wrote before dying stays */
    /* and the study goes on */
    cvn_trial *t = CK_NOTNULL(cvn_study_ask(s));
    ck_assert_int_eq(cvn_trial_number(t), 4);
    double x;
    CK_OK(cvn_trial_suggest_float(t, "lr", 1e-4, 1e-1, true, &x));
    CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, 1.0));
    ck_assert_int_eq(cvn_trial_number(cvn_study_best_trial(s)), 4);
    cvn_study_free(s);
    remove_db(file);
}
END_TEST

START_TEST(workers_share_one_study) {
    const char *file = path_in_test_dir("workers.db");
    remove_db(file);
    enum { WORKERS = 4, EACH = 12 };
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w]) continue;
        cvn_study *s = open_study(file, CVN_MINIMIZE, 11);
        if (!s) _exit(2);
        for (int i = 0; i < EACH; i++) {
            cvn_trial *t = cvn_study_ask(s);
            double x, y;
            if (!t || cvn_trial_suggest_float(t, "x", -5, 5, false, &x) ||
                cvn_trial_suggest_float(t, "y", -5, 5, false, &y))
                _exit(3);
            double v = (x - 1) * (x - 1) + (y + 2) * (y + 2);
            if (cvn_trial_report(t, 0, v) || cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, v)) _exit(4);
        }
        cvn_study_free(s);
        _exit(0);
    }
    for (int w = 0; w < WORKERS; w++) {
        int status;
        ck_assert_int_eq(waitpid(pids[w], &status, 0), pids[w]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: status %d", w,
                      status);
    }
    cvn_study *s = CK_NOTNULL(open_study(file, CVN_MINIMIZE, 11));
    ck_assert_int_eq(cvn_study_num_trials(s), WORKERS * EACH);
    for (int i = 0; i < WORKERS * EACH; i++) {
        cvn_trial *t = cvn_study_trial(s, i);
        ck_assert_int_eq(cvn_trial_state_of(t), CVN_TRIAL_COMPLETE);
        ck_assert_int_eq(cvn_trial_num_params(t), 2);
    }
    cvn_study_free(s);
    remove_db(file);
}
END_TEST

/* Processes that open one new file at the same instant (released together by closing a pipe)
 * all get the study: creating the tables and switching to WAL mode must not fail on a busy file. */
START_TEST(simultaneous_creation) {
    const char *file = path_in_test_dir("together.db");
    enum { ROUNDS = 10, PROCS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        remove_db(file);
        int gate[2];
        ck_assert_int_eq(pipe(gate), 0);
        pid_t pids[PROCS];
        for (int k = 0; k < PROCS; k++) {
            pids[k] = fork();
            ck_assert_int_ge(pids[k], 0);
            if (pids[k]) continue;
            close(gate[1]);
            char c;
            if (read(gate[0], &c, 1) != 0) _exit(5); /* returns 0 when the parent closes it */
            cvn_study *s = open_study(file, CVN_MINIMIZE, 1);
            if (!s) {
                fprintf(stderr, "round %d process %d: %s\n", round, k, cvn_last_error());
                _exit(2);
            }
            cvn_trial *t = cvn_study_ask(s);
            if (!t || cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, k)) _exit(3);
            cvn_study_free(s);
            _exit(0);
        }
        close(gate[0]);
        close(gate[1]);
        for (int k = 0; k < PROCS; k++) {
            int status;
            ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "round %d: process %d status %d", round, k, status);
        }
        cvn_study *s = CK_NOTNULL(open_study(file, CVN_MINIMIZE, 1));
        ck_assert_int_eq(cvn_study_num_trials(s), PROCS);
        cvn_study_free(s);
    }
    remove_db(file);
}
END_TEST

static void write_bytes(const char *file, const void *data, size_t n) {
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void sql(const char *file, const char *text) {
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(file, &db), SQLITE_OK);
    ck_assert_msg(sqlite3_exec(db, text, NULL, NULL, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

START_TEST(damaged_and_foreign_files) {
    const char *file = path_in_test_dir("bad.db"), *copy = path_in_test_dir("copy.db");
    remove_db(file);
    /* not a database at all */
    write_bytes(file, "this is not an SQLite file, just text that is long enough.", 57);
    ck_assert_ptr_null(open_study(file, CVN_MINIMIZE, 1));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(cvn_last_error(), "bad.db"));
    remove_db(file);
    /* another program's database */
    sql(file, "CREATE TABLE notes (id INTEGER, text TEXT)");
    ck_assert_ptr_null(open_study(file, CVN_MINIMIZE, 1));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_FORMAT);
    remove_db(file);
    /* a directory where the file should be */
    ck_assert_ptr_null(open_study(test_dir(), CVN_MINIMIZE, 1));
    ck_assert_int_ne(cvn_last_status(), CVN_OK);
    ck_assert_ptr_null(cvn_study_new(&(cvn_study_config){.storage = "postgres://x",
                                                         .n_ei_candidates = 24,
                                                         .median_interval_steps = 1,
                                                         .halving_min_resource = 1,
                                                         .halving_reduction_factor = 4}));
    ck_assert_int_eq(cvn_last_status(), CVN_ERR_ARG);

    /* a real study file, then rows no study can hold */
    cvn_study *s = CK_NOTNULL(open_study(file, CVN_MINIMIZE, 1));
    for (int i = 0; i < 6; i++) {
        double lr;
        int64_t units;
        int opt;
        CK_OK(cvn_study_tell(s, run_trial(s, 3, &lr, &units, &opt), CVN_TRIAL_COMPLETE, i));
    }
    cvn_study_free(s);
    static const char *const hostile[] = {
        "UPDATE params SET kind = 7 WHERE pos = 0",
        "UPDATE params SET choices = '99:Adam' WHERE kind = 2",
        "UPDATE params SET choices = '' WHERE kind = 2",
        "UPDATE params SET value = 5 WHERE kind = 2",
        "UPDATE params SET lo = -1 WHERE pos = 0",
        "UPDATE params SET value = 1.5 WHERE pos = 1",
        "UPDATE trials SET state = 9 WHERE number = 2",
        "UPDATE trials SET number = 40 WHERE number = 5",
        "UPDATE trials SET value = NULL WHERE number = 1",
        "UPDATE reports SET step = -3 WHERE step = 0",
        "PRAGMA user_version = 7",
    };
    FILE *f = fopen(file, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char bytes[1 << 20];
    size_t size = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    ck_assert(size > 4096 && size < sizeof bytes);
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        remove_db(copy);
        write_bytes(copy, bytes, size);
        sql(copy, hostile[i]);
        ck_assert_msg(!open_study(copy, CVN_MINIMIZE, 1), "accepted: %s", hostile[i]);
        ck_assert_msg(cvn_last_status() == CVN_ERR_FORMAT, "%s: %s", hostile[i], cvn_last_error());
    }
    /* truncated and corrupted copies: an error or a study, never a crash */
    int opened = 0, refused = 0;
    for (size_t cut = 0; cut < size; cut += 1024 + cut / 3) {
        remove_db(copy);
        write_bytes(copy, bytes, cut);
        s = open_study(copy, CVN_MINIMIZE, 1);
        s ? opened++ : refused++;
        cvn_study_free(s);
    }
    uint64_t rng = 12345;
    for (int i = 0; i < 60; i++) {
        remove_db(copy);
        unsigned char *damaged = malloc(size);
        memcpy(damaged, bytes, size);
        for (int k = 0; k < 8; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            damaged[(rng >> 33) % size] ^= (unsigned char)(1u << (rng >> 29 & 7));
        }
        write_bytes(copy, damaged, size);
        free(damaged);
        s = open_study(copy, CVN_MINIMIZE, 1);
        if (s) { /* whatever opened must still work */
            double lr;
            cvn_trial *t = cvn_study_ask(s);
            if (t && !cvn_trial_suggest_float(t, "lr", 1e-4, 1e-1, true, &lr))
                ck_assert(lr >= 1e-4 && lr <= 1e-1);
            opened++;
        } else {
            refused++;
        }
        cvn_study_free(s);
    }
    ck_assert(refused > 0 && opened > 0);
    remove_db(copy);
    remove_db(file);
}
END_TEST

/* ---- results */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s missing", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static int count(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++) n++;
    return n;
}

/* Six trials: four complete, whose value depends on the categorical only (1 for "a", 5 for "b"),
 * with z = 1, 2, 3, 4 (a range of one value per trial); one pruned, one failed. */
static cvn_study *scripted_study(void) {
    cvn_study_config c = cvn_study_defaults();
    c.sampler = CVN_SAMPLER_RANDOM;
    c.name = "scripted";
    cvn_study *s = CK_NOTNULL(cvn_study_new(&c));
    for (int i = 0; i < 6; i++) {
        cvn_trial *t = cvn_study_ask(s);
        int k;
        double z;
        CK_OK(cvn_trial_suggest_categorical(t, "kind", 2, (const char *[]){"a", "b"}, &k));
        CK_OK(cvn_trial_suggest_float(t, "z", i + 1, i + 1, false, &z));
        if (i == 4) {
            CK_OK(cvn_trial_report(t, 0, 9));
            CK_OK(cvn_study_tell(s, t, CVN_TRIAL_PRUNED, 0));
        } else if (i == 5) {
            CK_OK(cvn_study_tell(s, t, CVN_TRIAL_FAIL, NAN));
        } else {
            CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, k ? 5 : 1));
        }
    }
    return s;
}

START_TEST(importances_by_definition) {
    cvn_study *s = scripted_study();
    int ks[4], both = 0;
    for (int i = 0; i < 4; i++) {
        char v[32];
        cvn_trial_param_name(cvn_study_trial(s, i), 0, v, sizeof v);
        both += ks[i] = v[0] == 'b';
    }
    const char *names[2];
    double values[2];
    int n = cvn_study_param_importances(s, 2, names, values);
    if (both == 0 || both == 4) { /* one kind only: every value is the same */
        ck_assert_int_eq(n, -1);
        ck_assert_int_eq(cvn_last_status(), CVN_ERR_STATE);
    } else {
        /* kind explains all of the variance (share 1); z's two bins (trials 0-1 and 2-3) explain
         * sum_b 2 (mean_b - mean)^2 / sum (y - mean)^2; normalized, kind gets 1 / (1 + that) */
        double y[4], mean = 0, ss = 0;
        for (int i = 0; i < 4; i++) mean += (y[i] = ks[i] ? 5 : 1) / 4;
        for (int i = 0; i < 4; i++) ss += (y[i] - mean) * (y[i] - mean);
        double m1 = (y[0] + y[1]) / 2, m2 = (y[2] + y[3]) / 2;
        double z_share = 2 * ((m1 - mean) * (m1 - mean) + (m2 - mean) * (m2 - mean)) / ss;
        ck_assert_int_eq(n, 2);
        ck_assert_str_eq(names[0], "kind");
        ck_assert_double_eq_tol(values[0], 1 / (1 + z_share), 1e-12);
        ck_assert_double_eq_tol(values[1], z_share / (1 + z_share), 1e-12);
    }
    cvn_study_free(s);

    /* 200 random trials of (log10 lr + 3)^2 with an unrelated parameter: lr explains most */
    cvn_study_config c = cvn_study_defaults();
    c.sampler = CVN_SAMPLER_RANDOM;
    c.seed = 4;
    s = CK_NOTNULL(cvn_study_new(&c));
    for (int i = 0; i < 200; i++) {
        cvn_trial *t = cvn_study_ask(s);
        double lr, noise;
        CK_OK(cvn_trial_suggest_float(t, "lr", 1e-5, 1e-1, true, &lr));
        CK_OK(cvn_trial_suggest_float(t, "noise", 0, 1, false, &noise));
        CK_OK(cvn_study_tell(s, t, CVN_TRIAL_COMPLETE, pow(log10(lr) + 3, 2)));
    }
    n = cvn_study_param_importances(s, 2, names, values);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(names[0], "lr");
    ck_assert_msg(values[0] > 0.9, "lr share %g", values[0]);
    cvn_study_free(s);
}
END_TEST

START_TEST(csv_top_table_and_report) {
    cvn_study *s = scripted_study();
    const char *csv = path_in_test_dir("trials.csv");
    CK_OK(cvn_study_write_csv(s, csv));
    char *text = slurp(csv);
    char want[2048], kind[32], value[32], duration[32];
    int pos = snprintf(want, sizeof want, "number,state,value,duration_s,params_kind,params_z\n");
    for (int i = 0; i < 6; i++) {
        const cvn_trial *t = cvn_study_trial(s, i);
        cvn_trial_param_name(t, 0, kind, sizeof kind);
        snprintf(value, sizeof value, "%.9g", cvn_trial_value(t));
        snprintf(duration, sizeof duration, "%.3f", cvn_trial_duration(t));
        pos += snprintf(want + pos, sizeof want - (size_t)pos, "%d,%s,%s,%s,%s,%d\n", i,
                        i == 4   ? "PRUNED"
                        : i == 5 ? "FAIL"
                                 : "COMPLETE",
                        i == 5 ? "" : value, duration, kind, i + 1);
    }
    ck_assert_str_eq(text, want);

    /* the top table: complete trials best (smallest) first, ties by number */
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    CK_OK(cvn_study_print_top(f, s, 3));
    fclose(f);
    ck_assert_int_eq(count(buf, "\n"), 5); /* header, rule, 3 rows */
    ck_assert_ptr_nonnull(strstr(buf, "rank  trial  value  seconds  kind  z"));
    double prev_value = 0;
    for (int r = 1; r <= 3; r++) {
        char *line = buf;
        for (int k = 0; k < r + 1; k++) line = strchr(line, '\n') + 1;
        int rank, number;
        double v;
        ck_assert_int_eq(sscanf(line, "%d %d %lf", &rank, &number, &v), 3);
        ck_assert_int_eq(rank, r);
        ck_assert_double_eq(v, cvn_trial_value(cvn_study_trial(s, number)));
        ck_assert(v >= prev_value);
        prev_value = v;
    }

    /* the report: every file, the statistics and the table in the page, the plots inlined */
    const char *dir = test_dir();
    CK_OK(cvn_study_write_report(s, dir));
    char path[600];
    snprintf(path, sizeof path, "%s/history.svg", dir);
    text = slurp(path);
    ck_assert_int_eq(count(text, "<circle"), 4 + 1); /* 4 complete trials and the legend's dot */
    snprintf(path, sizeof path, "%s/parallel.svg", dir);
    text = slurp(path);
    ck_assert_int_eq(count(text, "<polyline"), 4);
    ck_assert(strstr(text, ">kind<") && strstr(text, ">z<") && strstr(text, ">value<"));
    snprintf(path, sizeof path, "%s/report.html", dir);
    text = slurp(path);
    ck_assert_ptr_nonnull(strstr(text, "Number of complete trials: 4"));
    ck_assert_ptr_nonnull(strstr(text, "Top 10 trials"));
    ck_assert_int_eq(count(text, "<tr>"), 5);
    ck_assert_int_ge(count(text, "<svg"), 2);
    cvn_study_free(s);
}
END_TEST

START_TEST(chart_arguments) {
    const char *p = path_in_test_dir("chart.svg");
    const char *names[] = {"a", "b"};
    ck_assert_int_eq(cvn_svg_bar_chart(p, "t", "x", 2, names, (double[]){1, -1}), CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_bar_chart(p, "t", "x", 0, names, (double[]){1}), CVN_ERR_ARG);
    CK_OK(cvn_svg_bar_chart(p, "t<&>", "x", 2, names, (double[]){0.75, 0.25}));
    char *text = slurp(p);
    ck_assert_int_eq(count(text, "<rect"), 3); /* the page and two bars */
    ck_assert_ptr_nonnull(strstr(text, "t&lt;&amp;&gt;"));
    cvn_axis axes[2] = {{.name = "v"}, {.name = "c", .n_labels = 2, .labels = names}};
    ck_assert_int_eq(cvn_svg_parallel_coordinates(p, "t", 1, axes, 1, (double[]){1}, 0, true),
                     CVN_ERR_ARG);
    ck_assert_int_eq(cvn_svg_parallel_coordinates(p, "t", 2, axes, 1, (double[]){1, 0}, 2, true),
                     CVN_ERR_ARG);
    CK_OK(
        cvn_svg_parallel_coordinates(p, "t", 2, axes, 3, (double[]){1, 0, 2, 1, 3, NAN}, 0, true));
    text = slurp(p);
    ck_assert_int_eq(count(text, "<polyline"), 3);
    /* the best (smallest) line is drawn last, darkest: rgb(31,119,180) */
    ck_assert_ptr_nonnull(strstr(text, "stroke=\"rgb(31,119,180)\" stroke-width=\"1.5\" "
                                       "points=\"70,"));
    ck_assert(strrchr(text, '\n') > strstr(text, "rgb(31,119,180)"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("hpo_storage");
    TCase *tc = tcase_create("hpo_storage");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, resume_keeps_every_trial);
    tcase_add_test(tc, sigkill_mid_trial_fails_only_that_trial);
    tcase_add_test(tc, workers_share_one_study);
    tcase_add_test(tc, simultaneous_creation);
    tcase_add_test(tc, damaged_and_foreign_files);
    tcase_add_test(tc, importances_by_definition);
    tcase_add_test(tc, csv_top_table_and_report);
    tcase_add_test(tc, chart_arguments);
    suite_add_tcase(s, tc);
    return run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
