/* SQLite storage: a study in a file that survives a crash and that several processes share.
 *
 * Tables: studies (name, direction), trials (number within the study, state, value, owner, start
 * and end times), params (name, distribution, value, in suggestion order) and reports (step,
 * value, in report order). The file runs in WAL mode with a busy timeout, so readers never block
 * the writer and writers queue; a new trial takes the next number inside an IMMEDIATE transaction.
 * Every change is its own transaction: a process killed at any point leaves every ended trial
 * whole. A running trial records its owner (host, pid and the process's start time); when a
 * study is opened or asked for a trial, running trials whose owner on this host has gone (pid
 * reused, zombie, or no such process) are marked FAIL.
 *
 * Everything read back is checked (states, numbers, distributions, choices, values), so a
 * damaged or foreign file gives CVN_ERR_FORMAT, never a crash. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "hpo/hpo.h"

#define SCHEMA_VERSION 1 /* PRAGMA user_version of our files */

enum {
    Q_TRIALS,     /* trials at or past a number */
    Q_PARAMS,     /* one trial's params */
    Q_REPORTS,    /* one trial's reports */
    Q_RUNNING,    /* running trials and their owners */
    Q_FAIL,       /* mark a running trial failed */
    Q_NEXT,       /* the next trial number */
    Q_INSERT,     /* a new running trial */
    Q_PUT_PARAM,  /* one param */
    Q_PUT_REPORT, /* one report */
    Q_FINISH,     /* end a running trial */
    N_QUERIES
};

static const char *const sql[N_QUERIES] = {
    [Q_TRIALS] = "SELECT id, number, state, value, started, finished FROM trials "
                 "WHERE study_id = ?1 AND number >= ?2 ORDER BY number",
    [Q_PARAMS] = "SELECT name, kind, lo, hi, step, log, choices, value FROM params "
                 "WHERE trial_id = ?1 ORDER BY pos",
    [Q_REPORTS] = "SELECT step, value FROM reports WHERE trial_id = ?1 ORDER BY rowid",
    [Q_RUNNING] = "SELECT id, owner FROM trials WHERE study_id = ?1 AND state = 0",
    [Q_FAIL] = "UPDATE trials SET state = 3, finished = ?2 WHERE id = ?1 AND state = 0",
    [Q_NEXT] = "SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1",
    [Q_INSERT] = "INSERT INTO trials (study_id, number, state, owner, started) "
                 "VALUES (?1, ?2, 0, ?3, ?4)",
    [Q_PUT_PARAM] = "INSERT INTO params (trial_id, pos, name, kind, lo, hi, step, log, choices, "
                    "value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [Q_PUT_REPORT] = "INSERT OR IGNORE INTO reports (trial_id, step, value) VALUES (?1, ?2, ?3)",
    [Q_FINISH] = "UPDATE trials SET state = ?2, value = ?3, finished = ?4 "
                 "WHERE id = ?1 AND state = 0",
};

static const char schema[] =
    "CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "  direction INTEGER NOT NULL);"
    "CREATE TABLE trials (id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies, "
    "  number INTEGER NOT NULL, state INTEGER NOT NULL, value REAL, owner TEXT, started REAL, "
    "  finished REAL, UNIQUE (study_id, number));"
    "CREATE TABLE params (trial_id INTEGER NOT NULL REFERENCES trials, pos INTEGER NOT NULL, "
    "  name TEXT NOT NULL, kind INTEGER NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, "
    "  step REAL NOT NULL, log INTEGER NOT NULL, choices TEXT, value REAL NOT NULL, "
    "  PRIMARY KEY (trial_id, pos));"
    "CREATE TABLE reports (trial_id INTEGER NOT NULL REFERENCES trials, step INTEGER NOT NULL, "
    "  value REAL, PRIMARY KEY (trial_id, step));";

struct hpo_db {
    sqlite3 *db;
    sqlite3_stmt *q[N_QUERIES];
    int64_t study_id;
    char *file;
    char owner[320]; /* "host pid start-time" of this process */
};

static cvn_status db_error(const hpo_db *d, const char *what) {
    return cvn_set_error(sqlite3_errcode(d->db) == SQLITE_NOTADB ||
                                 sqlite3_errcode(d->db) == SQLITE_CORRUPT
                             ? CVN_ERR_FORMAT
                             : CVN_ERR_IO,
                         "hpo storage %s: %s: %s", d->file, what, sqlite3_errmsg(d->db));
}

/* Runs a statement that returns no rows (bindings already made) and resets it. */
static cvn_status step_done(hpo_db *d, sqlite3_stmt *q, const char *what) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? CVN_OK : db_error(d, what);
}

static cvn_status exec(hpo_db *d, const char *text, const char *what) {
    return sqlite3_exec(d->db, text, NULL, NULL, NULL) == SQLITE_OK ? CVN_OK : db_error(d, what);
}

/* ---- owners: which process runs a trial, and whether it still does */

/* The start time (clock ticks after boot) and state letter of process pid from /proc; false when
 * there is no such process (or no /proc). */
static bool proc_start(long pid, long long *start, char *state) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ' || !p[2]) return false;
    *state = p[2];
    p += 3;
    for (int field = 4; field <= 22; field++) { /* starttime is field 22 */
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) return false;
        if (field == 22) *start = v;
        p = end;
    }
    return true;
}

static void make_owner(hpo_db *d) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    for (char *c = host; *c; c++)
        if (*c == ' ') *c = '_';
    long long start = -1;
    char state;
    if (!proc_start((long)getpid(), &start, &state)) start = -1;
    snprintf(d->owner, sizeof d->owner, "%s %ld %lld", host[0] ? host : "?", (long)getpid(), start);
}

/* False only when the owner certainly is gone: same host, and its pid is free, a zombie, or now
 * another process (another start time). Owners on other hosts, or unreadable ones, are alive. */
static bool owner_alive(const hpo_db *d, const char *owner) {
    char host[256], mine[256];
    long pid, my_pid;
    long long start, my_start;
    if (!owner || sscanf(owner, "%255s %ld %lld", host, &pid, &start) != 3 ||
        sscanf(d->owner, "%255s %ld %lld", mine, &my_pid, &my_start) != 3 || strcmp(host, mine) ||
        pid <= 0)
        return true;
    if (pid == my_pid) return start < 0 || start == my_start; /* else: our pid, reused */
    long long now;
    char state;
    if (proc_start(pid, &now, &state))
        return state != 'Z' && state != 'X' && (start < 0 || now == start);
    return !(kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}

/* Marks FAIL the running trials whose process is gone. */
static cvn_status fail_dead(cvn_study *s) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_RUNNING];
    int64_t dead[64];
    int n_dead = 0, rc;
    sqlite3_bind_int64(q, 1, d->study_id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && n_dead < 64)
        if (!owner_alive(d, (const char *)sqlite3_column_text(q, 1)))
            dead[n_dead++] = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(d, "reading running trials");
    for (int i = 0; i < n_dead; i++) {
        sqlite3_bind_int64(d->q[Q_FAIL], 1, dead[i]);
        sqlite3_bind_double(d->q[Q_FAIL], 2, hpo_now());
        if (step_done(d, d->q[Q_FAIL], "failing a dead trial")) return cvn_last_status();
    }
    return CVN_OK;
}

/* ---- categorical choices: "<length>:<bytes>" for each, e.g. "4:Adam7:RMSprop3:SGD" */

static char *encode_choices(const hpo_dist *dist) {
    cvn_strbuf b = {0};
    for (int i = 0; i < dist->n_choices; i++)
        cvn_strbuf_printf(&b, "%zu:%s", strlen(dist->choices[i]), dist->choices[i]);
    return cvn_strbuf_take(&b);
}

static bool decode_choices(const char *text, int len, hpo_dist *dist) {
    int n = 0, cap = 0;
    for (int at = 0; at < len;) {
        int size = 0, digits = 0;
        while (at < len && text[at] >= '0' && text[at] <= '9' && digits < 7)
            size = size * 10 + (text[at++] - '0'), digits++;
        if (!digits || at >= len || text[at++] != ':' || size > len - at) return false;
        if (!cvn_grow_array((void **)&dist->choices, &cap, n + 1, sizeof *dist->choices))
            return false;
        char *c = cvn_malloc((size_t)size + 1);
        if (!c) return false;
        memcpy(c, text + at, (size_t)size);
        c[size] = 0;
        dist->choices[n] = c;
        dist->n_choices = ++n;
        at += size;
    }
    return n > 0;
}

/* ---- reading */

static double column_or_nan(sqlite3_stmt *q, int col) {
    return sqlite3_column_type(q, col) == SQLITE_NULL ? NAN : sqlite3_column_double(q, col);
}

/* A distribution and value read back: the same checks the suggest functions make. */
static bool valid_param(const hpo_param *p) {
    const hpo_dist *d = &p->dist;
    if (!isfinite(d->lo) || !isfinite(d->hi) || !(d->lo <= d->hi) || !isfinite(p->value) ||
        p->value < d->lo || p->value > d->hi)
        return false;
    switch (d->kind) {
    case HPO_FLOAT:
        return d->step == 0 && (!d->log || d->lo > 0) && !d->n_choices;
    case HPO_INT:
        return d->step >= 1 && (!d->log || d->lo >= 1) && !d->n_choices &&
               p->value == floor(p->value);
    case HPO_CATEGORICAL:
        return d->lo == 0 && d->hi == d->n_choices - 1 && p->value == floor(p->value);
    }
    return false;
}

static cvn_status load_params(cvn_study *s, cvn_trial *t) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_PARAMS];
    sqlite3_bind_int64(q, 1, t->id);
    int rc;
    cvn_status st = CVN_OK;
    while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        int kind = sqlite3_column_int(q, 1);
        hpo_param p = {.dist = {.kind = (hpo_kind)kind,
                                .lo = sqlite3_column_double(q, 2),
                                .hi = sqlite3_column_double(q, 3),
                                .step = sqlite3_column_double(q, 4),
                                .log = sqlite3_column_int(q, 5) != 0},
                       .value = sqlite3_column_double(q, 7)};
        bool ok = name && name[0] && kind >= HPO_FLOAT && kind <= HPO_CATEGORICAL &&
                  !hpo_find_param(t, name);
        if (ok && kind == HPO_CATEGORICAL) {
            const char *text = (const char *)sqlite3_column_text(q, 6);
            ok = text && decode_choices(text, sqlite3_column_bytes(q, 6), &p.dist);
        }
        ok =
            ok && valid_param(&p) && (p.name = cvn_strdup(name)) != NULL &&
            cvn_grow_array((void **)&t->params, &t->cap_params, t->n_params + 1, sizeof *t->params);
        if (ok) {
            t->params[t->n_params++] = p;
        } else {
            cvn_free(p.name);
            hpo_free_dist(&p.dist);
            st = cvn_set_error(CVN_ERR_FORMAT, "hpo storage %s: trial %d has a bad parameter",
                               d->file, t->number);
        }
    }
    sqlite3_reset(q);
    if (!st && rc != SQLITE_DONE) st = db_error(d, "reading parameters");
    return st;
}

static cvn_status load_reports(cvn_study *s, cvn_trial *t) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_REPORTS];
    sqlite3_bind_int64(q, 1, t->id);
    int rc;
    cvn_status st = CVN_OK;
    while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(q, 0);
        if (step < 0)
            st = cvn_set_error(CVN_ERR_FORMAT, "hpo storage %s: trial %d has step %lld", d->file,
                               t->number, (long long)step);
        else if (cvn_grow_array((void **)&t->reports, &t->cap_reports, t->n_reports + 1,
                                sizeof *t->reports))
            t->reports[t->n_reports++] = (hpo_report){step, column_or_nan(q, 1)};
        else
            st = cvn_last_status();
    }
    sqlite3_reset(q);
    if (!st && rc != SQLITE_DONE) st = db_error(d, "reading reports");
    return st;
}

cvn_status hpo_db_sync(cvn_study *s) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_TRIALS];
    sqlite3_bind_int64(q, 1, d->study_id);
    sqlite3_bind_int64(q, 2, s->settled);
    int rc;
    cvn_status st = CVN_OK;
    while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t number = sqlite3_column_int64(q, 1);
        int state = sqlite3_column_int(q, 2);
        double value = column_or_nan(q, 3);
        if (number < s->settled || number > s->n_trials || state < CVN_TRIAL_RUNNING ||
            state > CVN_TRIAL_FAIL || (state == CVN_TRIAL_COMPLETE && isnan(value))) {
            st = cvn_set_error(CVN_ERR_FORMAT,
                               "hpo storage %s: trial %lld is out of sequence or has a bad state",
                               d->file, (long long)number);
            break;
        }
        if (number == s->n_trials) { /* a trial this copy has not seen */
            cvn_trial *t = cvn_calloc(1, sizeof *t);
            if (!t || !cvn_grow_array((void **)&s->trials, &s->cap_trials, s->n_trials + 1,
                                      sizeof *s->trials)) {
                cvn_free(t);
                st = cvn_last_status();
                break;
            }
            *t = (cvn_trial){.study = s, .number = (int)number, .state = CVN_TRIAL_RUNNING};
            s->trials[s->n_trials++] = t;
        }
        cvn_trial *t = s->trials[number];
        if (t->state != CVN_TRIAL_RUNNING || t->mine) continue; /* nothing new to read */
        hpo_clear_trial(t);
        t->id = sqlite3_column_int64(q, 0);
        t->state = (cvn_trial_state)state;
        t->value = value;
        t->started = column_or_nan(q, 4);
        t->finished = column_or_nan(q, 5);
        st = load_params(s, t);
        if (!st) st = load_reports(s, t);
        if (st) t->state = CVN_TRIAL_RUNNING; /* read again next time */
    }
    sqlite3_reset(q);
    if (!st && rc != SQLITE_DONE) st = db_error(d, "reading trials");
    while (s->settled < s->n_trials && s->trials[s->settled]->state != CVN_TRIAL_RUNNING)
        s->settled++;
    return st;
}

/* ---- opening */

/* Creates the tables in an empty file, or checks that the file holds them; finds or adds the
 * study. Inside one IMMEDIATE transaction, so two processes creating one file agree. */
static cvn_status open_study(cvn_study *s) {
    hpo_db *d = s->db;
    if (exec(d, "BEGIN IMMEDIATE", "locking")) return cvn_last_status();
    sqlite3_stmt *q = NULL;
    cvn_status st = CVN_OK;
    int version = -1, objects = -1;
    if (sqlite3_prepare_v2(d->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(d->db, "SELECT COUNT(*) FROM sqlite_master", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        objects = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version < 0 || objects < 0)
        st = db_error(d, "reading the schema");
    else if (version == 0 && objects == 0)
        st = exec(d, schema, "creating tables") || exec(d, "PRAGMA user_version = 1", "versioning");
    else if (version != SCHEMA_VERSION)
        st = cvn_set_error(CVN_ERR_FORMAT,
                           "hpo storage %s: not a libcvnet study file (schema version %d, "
                           "this build reads %d)",
                           d->file, version, SCHEMA_VERSION);
    for (int i = 0; !st && i < N_QUERIES; i++)
        if (sqlite3_prepare_v3(d->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->q[i], NULL))
            st = db_error(d, "preparing queries (is it a libcvnet study file?)");
    if (!st) {
        st = sqlite3_prepare_v2(d->db,
                                "INSERT OR IGNORE INTO studies (name, direction) VALUES (?1, ?2)",
                                -1, &q, NULL)
                 ? db_error(d, "adding the study")
                 : CVN_OK;
        if (!st) {
            sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 2, (int)s->c.direction);
            if (sqlite3_step(q) != SQLITE_DONE) st = db_error(d, "adding the study");
        }
        sqlite3_finalize(q);
    }
    if (!st) {
        st = sqlite3_prepare_v2(d->db, "SELECT id, direction FROM studies WHERE name = ?1", -1, &q,
                                NULL)
                 ? db_error(d, "finding the study")
                 : CVN_OK;
        if (!st) {
            sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
            if (sqlite3_step(q) != SQLITE_ROW) {
                st = db_error(d, "finding the study");
            } else {
                d->study_id = sqlite3_column_int64(q, 0);
                int direction = sqlite3_column_int(q, 1);
                if (direction != (int)s->c.direction)
                    st = cvn_set_error(CVN_ERR_ARG,
                                       "hpo storage %s: study '%s' was created to %s, not to %s",
                                       d->file, s->name, direction ? "maximize" : "minimize",
                                       s->c.direction ? "maximize" : "minimize");
            }
        }
        sqlite3_finalize(q);
    }
    if (!st) st = fail_dead(s);
    if (!st) st = exec(d, "COMMIT", "committing");
    if (st) sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

/* Switching a file to WAL needs it alone for a moment: while another process creates or
 * converts it, SQLite answers "locked" at once instead of waiting out the busy timeout. So wait
 * here, up to the same 60 s. */
static cvn_status set_wal(hpo_db *d) {
    for (int waited_ms = 0;; waited_ms += 5) {
        int rc = sqlite3_exec(d->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK) return CVN_OK;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited_ms >= 60000)
            return db_error(d, "switching to WAL");
        sqlite3_sleep(5);
    }
}

cvn_status hpo_db_open(cvn_study *s, const char *file) {
    hpo_db *d = cvn_calloc(1, sizeof *d);
    if (!d) return cvn_last_status();
    s->db = d;
    d->file = cvn_strdup(file);
    if (!d->file) return cvn_last_status();
    make_owner(d);
    if (sqlite3_open_v2(file, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return d->db ? db_error(d, "opening")
                     : cvn_set_error(CVN_ERR_NOMEM, "hpo storage %s: out of memory", file);
    sqlite3_busy_timeout(d->db, 60000);
    /* WAL: readers and one writer at once; NORMAL sync loses no committed change to a crash
     * of the process (only, at worst, the last ones to a power cut) */
    cvn_status st = set_wal(d);
    if (!st) st = exec(d, "PRAGMA synchronous = NORMAL", "setting sync");
    if (!st) st = open_study(s);
    if (!st) st = hpo_db_sync(s);
    return st;
}

void hpo_db_close(cvn_study *s) {
    hpo_db *d = s->db;
    if (!d) return;
    for (int i = 0; i < N_QUERIES; i++) sqlite3_finalize(d->q[i]);
    sqlite3_close(d->db);
    cvn_free(d->file);
    cvn_free(d);
    s->db = NULL;
}

/* ---- writing */

cvn_status hpo_db_new_trial(cvn_study *s, int *number) {
    hpo_db *d = s->db;
    if (exec(d, "BEGIN IMMEDIATE", "locking")) return cvn_last_status();
    cvn_status st = fail_dead(s);
    sqlite3_stmt *q = d->q[Q_NEXT];
    int64_t next = -1;
    if (!st) {
        sqlite3_bind_int64(q, 1, d->study_id);
        if (sqlite3_step(q) == SQLITE_ROW) next = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (next < 0 || next >= INT32_MAX) st = db_error(d, "numbering a trial");
    }
    if (!st) {
        q = d->q[Q_INSERT];
        sqlite3_bind_int64(q, 1, d->study_id);
        sqlite3_bind_int64(q, 2, next);
        sqlite3_bind_text(q, 3, d->owner, -1, SQLITE_STATIC);
        sqlite3_bind_double(q, 4, hpo_now());
        st = step_done(d, q, "adding a trial");
    }
    if (!st) st = exec(d, "COMMIT", "committing");
    if (st) {
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    *number = (int)next;
    return hpo_db_sync(s);
}

cvn_status hpo_db_put_param(cvn_study *s, const cvn_trial *t, const hpo_param *p) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_PUT_PARAM];
    char *choices = NULL;
    if (p->dist.kind == HPO_CATEGORICAL && !(choices = encode_choices(&p->dist)))
        return cvn_last_status();
    sqlite3_bind_int64(q, 1, t->id);
    sqlite3_bind_int(q, 2, t->n_params);
    sqlite3_bind_text(q, 3, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, (int)p->dist.kind);
    sqlite3_bind_double(q, 5, p->dist.lo);
    sqlite3_bind_double(q, 6, p->dist.hi);
    sqlite3_bind_double(q, 7, p->dist.step);
    sqlite3_bind_int(q, 8, p->dist.log);
    if (choices) sqlite3_bind_text(q, 9, choices, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 10, p->value);
    cvn_status st = step_done(d, q, "writing a parameter");
    cvn_free(choices);
    return st;
}

cvn_status hpo_db_put_report(cvn_study *s, const cvn_trial *t, int64_t step, double value) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_PUT_REPORT];
    sqlite3_bind_int64(q, 1, t->id);
    sqlite3_bind_int64(q, 2, step);
    if (!isnan(value)) sqlite3_bind_double(q, 3, value); /* NaN stays NULL */
    return step_done(d, q, "writing a report");
}

cvn_status hpo_db_finish(cvn_study *s, const cvn_trial *t, cvn_trial_state state, double value,
                         double finished) {
    hpo_db *d = s->db;
    sqlite3_stmt *q = d->q[Q_FINISH];
    sqlite3_bind_int64(q, 1, t->id);
    sqlite3_bind_int(q, 2, (int)state);
    if (!isnan(value)) sqlite3_bind_double(q, 3, value);
    sqlite3_bind_double(q, 4, finished);
    if (step_done(d, q, "ending a trial")) return cvn_last_status();
    if (sqlite3_changes(d->db) != 1)
        return cvn_set_error(CVN_ERR_STATE,
                             "hpo storage %s: trial %d was ended by another process (its owner "
                             "looked dead)",
                             d->file, t->number);
    return CVN_OK;
}
