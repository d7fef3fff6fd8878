/*
 * fn_runtime_claim: the claim pass and synchronous runs.
 *
 * A pass is two transactions on the work connection, then the asynchronous starts:
 *   1. claim: BEGIN; take up to GSAP_FN_BATCH pending (event, function) pairs whose
 *      next_attempt_at has come, in event order, FOR UPDATE SKIP LOCKED; lease every pair this
 *      pass will run in one statement (S_LEASE_MANY: attempts + 1, next_attempt_at = now() +
 *      the lease); dead-letter each pair with no attempts left; COMMIT.
 *   2. run: BEGIN; lock every leased synchronous pair again in one statement, fenced by its
 *      leased attempt count (S_LOCK_MANY); then per function: one with run_batch gets all its
 *      pairs in one call under a savepoint, its done marks go in one statement (S_DONE_MANY)
 *      and its failures one by one; if the batch call fails, the savepoint is rolled back and
 *      each of its pairs runs alone (run_sync: its own savepoint, outcome written at once), so
 *      a poison event fails alone; a function without run_batch runs each pair that way;
 *      COMMIT.
 *   3. start the leased asynchronous runs (fn_runtime_async.c).
 * So a pass of n CRs costs a fixed number of statements (about a dozen with billing) and two
 * commits, not several statements per CR.
 *
 * Several workers (GSAP_FN_WORKERS threads, fn_runtime.c) run passes side by side exactly as
 * several brokers do: nothing below relies on being the only claimer.
 *
 * Invariants, with several brokers on one database and a crash at any instant:
 *   - Counted: an attempt is committed (by the claim) before its function starts, so a run
 *     that kills the broker, or loses the database, still counts.
 *   - Bounded: a pair claimed with attempts >= GSAP_FN_MAX_ATTEMPTS is dead-lettered, not run
 *     ("no result within the lease"); failures recorded on the last attempt dead-letter it at
 *     once. So a function that crashes the process on some event runs it at most that many
 *     times, then the pair is a dead letter until replayed.
 *   - Exclusive: a synchronous function runs only inside a run transaction that holds the
 *     pair's row lock and saw attempts equal to its own lease and the pair still pending.
 *     Claims skip locked rows, so no other broker claims, leases or runs it meanwhile; a lease
 *     that expired and was taken over (a newer attempt count) is seen at S_LOCK_MANY and the pair
 *     is skipped as "stale", never run twice at once.
 *   - Exactly once: the function's writes and its done mark commit in the same run
 *     transaction, or roll back together (a crash, a lost connection, a failed COMMIT). A
 *     committed done mark ends the pair: every later claim or S_LOCK_MANY requires done_at NULL.
 *     A dead pair has no committed effect (failures roll back to the savepoint first), so a
 *     replay runs it once more from scratch.
 *   - Fair to batch-mates: every pair of a run transaction is leased, so a crash mid-batch
 *     counts an attempt for each. A retried synchronous pair (attempts > 0) therefore runs in
 *     a pass of its own, and a pair that crashes the broker costs the others one attempt at
 *     most, however often it crashes.
 * The lease of a synchronous pair only has to bridge the claim's COMMIT and the run
 * transaction's S_LOCK_MANY (the row lock holds it during the run), so it is short: the pair's
 * retry delay, at least FN_SYNC_LEASE_MIN_MS. It is also how long a pair whose run died
 * waits before its next attempt, as if that attempt had failed. A batch costs two commits
 * (one before the runs), a retried pair two of its own.
 *
 * Retries: next_attempt_at = now() + backoff, backoff = GSAP_FN_BACKOFF_MS doubled per
 * attempt, capped at FN_BACKOFF_CAP_MS, times a uniform factor in [0.8, 1.2]; a pair whose
 * attempts reach GSAP_FN_MAX_ATTEMPTS is dead (dead_at) until replayed. Pending retries are
 * picked up by the poll timer, so GSAP_FN_POLL_MS bounds how late a retry runs.
 *
 * The event CID (fn_event_t.cid) is the CID of {"tenant_id","event_id","type",
 * "context_id","payload","created_at"} where event_id is a JSON number, context_id a string
 * or null, payload the stored jsonb, and created_at is formatted by the database as
 * to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'): always six
 * fractional digits, e.g. "2026-11-23T10:00:00.123456Z" (FN_TS_FORMAT in fn_runtime_db.c).
 * The same string is the event's time everywhere the runtime shows it.
 *
 * Runtime thread only.
 */
#include "fn_runtime_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "banned.h"

/* Least lease of a synchronous pair: bridges the claim's COMMIT and the run transaction's
 * locks even on a slow database, so another broker does not take the pair in between. */
#define FN_SYNC_LEASE_MIN_MS 1000

/* ---- events as functions see them ---------------------------------------------------------- */

/* fn__event_from_row: fills ev from a claimed row (strings point into res; payload is owned by
 * ev, released with json_decref). Returns 0 or BRK_EINVAL with err. */
int fn__event_from_row(PGresult *res, int i, fn_event_t *ev, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *obj = NULL;
    int rc = 0;

    memset(ev, 0, sizeof *ev);
    ev->tenant = PQgetvalue(res, i, C_TENANT);
    ev->event_id = strtoll(PQgetvalue(res, i, C_EVENT), NULL, 10);
    ev->type = PQgetvalue(res, i, C_TYPE);
    ev->context_id = PQgetisnull(res, i, C_CONTEXT) ? NULL : PQgetvalue(res, i, C_CONTEXT);
    ev->created_at = PQgetvalue(res, i, C_CREATED);
    ev->payload = json_loads(PQgetvalue(res, i, C_PAYLOAD), JSON_DECODE_ANY, &jerr);
    if (ev->payload == NULL) {
        snprintf(err, errlen, "event payload does not parse: %s", jerr.text);
        rc = BRK_EINVAL;
        goto out;
    }
    obj = json_pack("{s:s,s:I,s:s,s:s?,s:O,s:s}", "tenant_id", ev->tenant, "event_id",
                    (json_int_t)ev->event_id, "type", ev->type, "context_id", ev->context_id,
                    "payload", ev->payload, "created_at", ev->created_at);
    if (obj == NULL || brk_jcs_cid(obj, ev->cid) != 0) {
        snprintf(err, errlen, "cannot compute the event CID");
        rc = BRK_EINVAL;
    }
out:
    json_decref(obj);
    return rc;
}

/* ---- synchronous runs and the claim pass -------------------------------------------------- */

typedef struct run_note {
    const fn_slot_t *slot; /* NULL: nothing more to do with this row in this pass */
    int attempt;           /* the attempt this pass makes (attempts + 1 when claimed) */
    int async;             /* an asynchronous function's pair */
    int sync;              /* a synchronous pair leased for this pass's run transaction */
    int ran;               /* its outcome was written in the run transaction */
    const char *outcome;
    uint64_t dur_ns;
    char err[FN_ERR_MAX];
} run_note_t;

/* sync_lease_ms: how long a leased synchronous pair is out of other claims' reach. */
static uint64_t sync_lease_ms(const fn_runtime_t *rt, unsigned attempt)
{
    uint64_t d = fn__backoff(rt, attempt);
    return d > FN_SYNC_LEASE_MIN_MS ? d : FN_SYNC_LEASE_MIN_MS;
}

/* pair_json: row i's pair as the *_MANY statements read it: {"t","e","f"} plus key: val. */
static json_t *pair_json(PGresult *res, int i, const char *function, const char *key,
                         json_int_t val)
{
    return json_pack("{s:s,s:I,s:s,s:I}", "t", PQgetvalue(res, i, C_TENANT), "e",
                     (json_int_t)strtoll(PQgetvalue(res, i, C_EVENT), NULL, 10), "f", function,
                     key, val);
}

/* exec_json: a *_MANY statement with arr as its one parameter; arr is released. */
static PGresult *exec_json(fn_runtime_t *rt, enum fn_stmt s, json_t *arr, char *err,
                           size_t errlen)
{
    char *text = json_dumps(arr, JSON_COMPACT);
    PGresult *r = NULL;
    json_decref(arr);
    if (text == NULL) {
        fn__copy_err(err, errlen, "out of memory");
        return NULL;
    }
    const char *p[] = {text};
    r = fn__exec_p(rt, s, p, err, errlen);
    free(text);
    return r;
}

/* record_fail: a failed run's error and next attempt time (or its dead letter), fenced by the
 * leased attempt count. Returns 0, or BRK_EDB / BRK_EINTERNAL with err. */
static int record_fail(fn_runtime_t *rt, PGresult *res, int i, run_note_t *note, char *err,
                       size_t errlen)
{
    char att[16], delay[24], maxa[16];
    PGresult *r;
    int matched;

    snprintf(att, sizeof att, "%d", note->attempt);
    snprintf(delay, sizeof delay, "%" PRIu64, fn__backoff(rt, (unsigned)note->attempt));
    snprintf(maxa, sizeof maxa, "%u", rt->max_attempts);
    const char *p[] = {PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_EVENT),
                       note->slot->def->name, att, note->err, delay, maxa};
    if ((r = fn__exec_p(rt, S_LEASE_FAIL, p, err, errlen)) == NULL)
        return BRK_EDB;
    matched = PQntuples(r) == 1;
    note->outcome = matched && strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? "dead" : "retry";
    PQclear(r);
    /* This transaction holds the row locked at the leased attempt count, so the fenced mark
     * cannot miss unless something else wrote fn_runs through this connection. */
    if (!matched) {
        fn__copy_err(err, errlen, "the outcome of a locked pair matched no row");
        return BRK_EINTERNAL;
    }
    return 0;
}

/* run_sync: one leased synchronous pair inside the run transaction (its row locked), under a
 * savepoint, with the function's run. Returns 0 (outcome recorded in note), or BRK_EDB /
 * BRK_EINTERNAL with err when the transaction cannot go on. */
static int run_sync(fn_runtime_t *rt, PGresult *res, int i, run_note_t *note, char *err,
                    size_t errlen)
{
    const char *tenant = PQgetvalue(res, i, C_TENANT), *event_id = PQgetvalue(res, i, C_EVENT);
    const char *name = note->slot->def->name;
    char att[16];
    fn_event_t ev;
    PGresult *r = NULL;
    uint64_t t0 = fn__now_ns();
    int rc, matched;

    snprintf(att, sizeof att, "%d", note->attempt);
    note->err[0] = '\0';
    if (fn__exec_s(rt, "SAVEPOINT fn_run", err, errlen) != 0)
        return BRK_EDB;
    rc = fn__event_from_row(res, i, &ev, note->err, sizeof note->err);
    if (rc == 0)
        rc = note->slot->def->run(&rt->env, rt->work, &ev, note->err, sizeof note->err);
    json_decref(ev.payload);
    if (fn__work_broken(rt)) {
        fn__copy_err(err, errlen, PQerrorMessage(rt->work));
        return BRK_EDB;
    }
    if (rc == 0 && PQtransactionStatus(rt->work) != PQTRANS_INTRANS) {
        fn__copy_err(note->err, sizeof note->err, "the function left its transaction aborted");
        rc = BRK_EINTERNAL;
    }
    note->dur_ns = fn__now_ns() - t0;
    if (rc != 0) {
        if (note->err[0] == '\0')
            fn__copy_err(note->err, sizeof note->err, brk_strerror(rc));
        if (fn__exec_s(rt, "ROLLBACK TO SAVEPOINT fn_run", err, errlen) != 0)
            return BRK_EDB;
        return record_fail(rt, res, i, note, err, errlen);
    }
    const char *p[] = {tenant, event_id, name, att};
    if (fn__exec_s(rt, "RELEASE SAVEPOINT fn_run", err, errlen) != 0 ||
        (r = fn__exec_p(rt, S_LEASE_DONE, p, err, errlen)) == NULL)
        return BRK_EDB;
    matched = strcmp(PQcmdTuples(r), "1") == 0;
    note->outcome = "done";
    PQclear(r);
    if (!matched) {
        fn__copy_err(err, errlen, "the outcome of a locked pair matched no row");
        return BRK_EINTERNAL;
    }
    return 0;
}

/*
 * run_group: the locked pairs of one function that has a run_batch, idx[0..k), in one call
 * under a savepoint; the done marks in one statement, the failures one by one. When the batch
 * call fails, everything it wrote is rolled back and each pair runs alone (run_sync), so one
 * poison event does not hold back the others. Returns 0, or BRK_EDB / BRK_EINTERNAL with err
 * when the transaction cannot go on.
 */
static int run_group(fn_runtime_t *rt, PGresult *res, run_note_t *notes, const int *idx, int k,
                     char *err, size_t errlen)
{
    const fn_slot_t *slot = notes[idx[0]].slot;
    fn_event_t *evs = brk_calloc((size_t)k, sizeof *evs);
    char(*errs)[FN_ERR_MAX] = brk_calloc((size_t)k, sizeof *errs);
    int *of = brk_calloc((size_t)k, sizeof *of); /* position in evs -> position in idx */
    int nev = 0, rc = BRK_EDB, batch_rc;
    char why[FN_ERR_MAX] = "";
    uint64_t t0 = fn__now_ns(), dur;
    json_t *done = NULL;
    PGresult *r = NULL;

    if (fn__exec_s(rt, "SAVEPOINT fn_batch", err, errlen) != 0)
        goto out;
    for (int j = 0; j < k; j++) {
        run_note_t *note = &notes[idx[j]];
        note->ran = 1;
        note->err[0] = '\0';
        if (fn__event_from_row(res, idx[j], &evs[nev], note->err, sizeof note->err) != 0) {
            json_decref(evs[nev].payload);
            evs[nev].payload = NULL;
            note->outcome = "failed"; /* recorded below */
            continue;
        }
        of[nev++] = j;
    }
    batch_rc = nev == 0 ? 0 : slot->def->run_batch(&rt->env, rt->work, evs, (size_t)nev, errs,
                                                   why, sizeof why);
    if (fn__work_broken(rt)) {
        fn__copy_err(err, errlen, PQerrorMessage(rt->work));
        goto out;
    }
    if (batch_rc == 0 && PQtransactionStatus(rt->work) != PQTRANS_INTRANS) {
        fn__copy_err(why, sizeof why, "the function left its transaction aborted");
        batch_rc = BRK_EINTERNAL;
    }
    dur = fn__now_ns() - t0;
    if (batch_rc != 0) {
        char n[16];
        char line[FN_ERR_MAX];
        fn__copy_err(line, sizeof line, why[0] ? why : brk_strerror(batch_rc));
        snprintf(n, sizeof n, "%d", k);
        brk_log_warn("function batch failed, running its events one by one", "function",
                     slot->def->name, "events", n, "error", line);
        if (fn__exec_s(rt, "ROLLBACK TO SAVEPOINT fn_batch", err, errlen) != 0)
            goto out;
        for (int j = 0; j < k; j++)
            if ((rc = run_sync(rt, res, idx[j], &notes[idx[j]], err, errlen)) != 0)
                goto out;
        rc = 0;
        goto out;
    }
    if (fn__exec_s(rt, "RELEASE SAVEPOINT fn_batch", err, errlen) != 0)
        goto out;
    for (int m = 0; m < nev; m++) {
        run_note_t *note = &notes[idx[of[m]]];
        note->dur_ns = dur / (uint64_t)nev;
        if (errs[m][0] != '\0') {
            fn__copy_err(note->err, sizeof note->err, errs[m]);
            note->outcome = "failed";
        } else {
            note->outcome = "done";
        }
    }
    done = json_array();
    int ndone = 0;
    for (int j = 0; j < k; j++) {
        run_note_t *note = &notes[idx[j]];
        if (strcmp(note->outcome, "done") == 0) {
            json_array_append_new(done, pair_json(res, idx[j], slot->def->name, "a",
                                                  note->attempt));
            ndone++;
        } else if ((rc = record_fail(rt, res, idx[j], note, err, errlen)) != 0) {
            goto out;
        }
    }
    if (ndone > 0) {
        r = exec_json(rt, S_DONE_MANY, done, err, errlen);
        done = NULL;
        if (r == NULL) {
            rc = BRK_EDB;
            goto out;
        }
        /* Every pair is locked by this transaction at its leased attempt count. */
        if (strtol(PQcmdTuples(r), NULL, 10) != ndone) {
            fn__copy_err(err, errlen, "the done marks of locked pairs matched fewer rows");
            rc = BRK_EINTERNAL;
            goto out;
        }
    }
    rc = 0;
out:
    for (int m = 0; m < nev; m++)
        json_decref(evs[m].payload);
    json_decref(done);
    PQclear(r);
    free(evs);
    free(errs);
    free(of);
    return rc;
}

/*
 * run_leased: the run transaction of a pass. Locks every synchronous pair the claim leased in
 * one statement (a pair no longer pending with the leased attempt count is "stale" and
 * skipped), then runs them function by function: a function with run_batch gets all its
 * pairs in one call (run_group), the others one by one (run_sync); then commits. Returns 0
 * when it committed or had nothing to do, else BRK_EDB / BRK_EINTERNAL with err (and
 * everything in it rolled back).
 */
static int run_leased(fn_runtime_t *rt, PGresult *res, run_note_t *notes, int n, char *err,
                      size_t errlen)
{
    int rc = BRK_EDB, nsync = 0, *idx = NULL, *locked = NULL;
    json_t *want = json_array();
    PGresult *r = NULL;

    for (int i = 0; i < n; i++)
        if (notes[i].sync) {
            nsync++;
            json_array_append_new(want, pair_json(res, i, notes[i].slot->def->name, "a",
                                                  notes[i].attempt));
            json_object_set_new(json_array_get(want, json_array_size(want) - 1), "i",
                                json_integer(i));
        }
    if (nsync == 0) {
        json_decref(want);
        return 0;
    }
    if (fn__exec_s(rt, "BEGIN", err, errlen) != 0) {
        json_decref(want);
        goto out;
    }
    /* Every lock before any run: a lease only has to outlast this one statement. */
    if ((r = exec_json(rt, S_LOCK_MANY, want, err, errlen)) == NULL)
        goto out;
    locked = brk_calloc((size_t)n, sizeof *locked);
    for (int j = 0; j < PQntuples(r); j++) {
        long i = strtol(PQgetvalue(r, j, 0), NULL, 10);
        if (i >= 0 && i < n)
            locked[i] = 1;
    }
    PQclear(r);
    r = NULL;
    for (int i = 0; i < n; i++) {
        if (notes[i].sync && !locked[i]) {
            notes[i].sync = 0;
            notes[i].outcome = "stale";
            fn__copy_err(notes[i].err, sizeof notes[i].err,
                         "the lease expired before the run began");
        }
    }
    idx = brk_calloc((size_t)n, sizeof *idx);
    for (size_t s = 0; s < rt->nslots; s++) {
        const fn_slot_t *slot = &rt->slots[s];
        int k = 0;
        for (int i = 0; i < n; i++)
            if (notes[i].sync && notes[i].slot == slot)
                idx[k++] = i;
        if (k == 0)
            continue;
        if (slot->def->run_batch != NULL) {
            if ((rc = run_group(rt, res, notes, idx, k, err, errlen)) != 0)
                goto out;
            continue;
        }
        for (int j = 0; j < k; j++) {
            notes[idx[j]].ran = 1;
            if ((rc = run_sync(rt, res, idx[j], &notes[idx[j]], err, errlen)) != 0)
                goto out;
        }
    }
    rc = fn__exec_s(rt, "COMMIT", err, errlen);
out:
    PQclear(r);
    free(idx);
    free(locked);
    if (rc != 0 && !fn__work_broken(rt)) {
        char ignored[FN_ERR_MAX];
        fn__exec_s(rt, "ROLLBACK", ignored, sizeof ignored);
    }
    return rc;
}

/*
 * claim_pass: the claim transaction (claim up to batch pending pairs; lease the synchronous
 * pairs this pass runs and the asynchronous ones there are slots for; dead-letter the ones
 * with no attempts left; COMMIT), then the run transaction (run_leased), then start the
 * leased asynchronous runs. Returns the number of pairs claimed, or a negative brk_err.
 * *more is 1 when pairs that are due were left for the next pass.
 */
static int claim_pass(fn_runtime_t *rt, int *more)
{
    const char *names[FN_MAX_FUNCTIONS];
    char names_param[FN_NAMES_PARAM_MAX], limit[16], lease[24], err[FN_ERR_MAX] = "";
    size_t nn = 0;
    unsigned free_slots = FN_ASYNC_MAX_INFLIGHT - rt->inflight, leased = 0;
    int n = 0, rc = BRK_EDB, left_over = 0, claimed = 0, ran = 0, cut = 0, nsync = 0;
    int excluded = free_slots == 0 && rt->nasync > 0; /* async functions not even asked for */
    PGresult *res = NULL;
    run_note_t *notes = NULL;
    json_t *leases = json_array();

    *more = 0;
    for (size_t i = 0; i < rt->nslots; i++)
        if (rt->slots[i].def->run != NULL || free_slots > 0)
            names[nn++] = rt->slots[i].def->name;
    if (nn == 0) {
        rt->starved = rt->nasync > 0;
        json_decref(leases);
        return 0;
    }
    if (fn__array_literal(names_param, sizeof names_param, names, nn) != 0) {
        json_decref(leases);
        return BRK_EINTERNAL;
    }
    snprintf(limit, sizeof limit, "%u", rt->batch);

    if (fn__exec_s(rt, "BEGIN", err, sizeof err) != 0)
        goto out;
    const char *cp[] = {names_param, limit};
    if ((res = fn__exec_p(rt, S_CLAIM, cp, err, sizeof err)) == NULL)
        goto out;
    n = PQntuples(res);
    notes = n > 0 ? brk_calloc((size_t)n, sizeof *notes) : NULL;
    for (int i = 0; i < n; i++) {
        run_note_t *note = &notes[i];
        note->slot = fn__slot_of(rt, PQgetvalue(res, i, C_FUNCTION));
        note->attempt = (int)strtol(PQgetvalue(res, i, C_ATTEMPTS), NULL, 10) + 1;
        if (note->slot == NULL) /* not claimed by name: cannot happen */
            continue;
        note->async = note->slot->def->run == NULL;
        if ((unsigned)note->attempt > rt->max_attempts) {
            const char *dp[] = {PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_EVENT),
                                note->slot->def->name};
            PGresult *r = fn__exec_p(rt, S_LEASE_DEAD, dp, err, sizeof err);
            if (r == NULL)
                goto out;
            PQclear(r);
            note->attempt--; /* no new attempt was made */
            note->outcome = "dead";
            fn__copy_err(note->err, sizeof note->err, "no result within the lease");
            continue;
        }
        if (!note->async) {
            /* A retry runs alone, so a pair that kills the broker costs its batch-mates one
             * attempt at most. Rows after the cut stay pending, locked only until COMMIT. */
            if (cut || (note->attempt > 1 && nsync > 0)) {
                cut = 1;
                note->slot = NULL;
                continue;
            }
            snprintf(lease, sizeof lease, "%" PRIu64, sync_lease_ms(rt, (unsigned)note->attempt));
            note->sync = 1;
            nsync++;
            cut = note->attempt > 1;
        } else if (leased >= free_slots) { /* no slot: leave it pending, locked until COMMIT */
            left_over = 1;
            note->slot = NULL;
            continue;
        } else {
            snprintf(lease, sizeof lease, "%u", FN_ASYNC_LEASE_MS);
            leased++;
        }
        json_array_append_new(leases, pair_json(res, i, note->slot->def->name, "ms",
                                                (json_int_t)strtoll(lease, NULL, 10)));
    }
    if (json_array_size(leases) > 0) {
        size_t want = json_array_size(leases);
        PGresult *r = exec_json(rt, S_LEASE_MANY, leases, err, sizeof err);
        leases = NULL;
        if (r == NULL)
            goto out;
        /* Every row was locked by the claim just now. */
        int all = strtoul(PQcmdTuples(r), NULL, 10) == want;
        PQclear(r);
        if (!all) {
            fn__copy_err(err, sizeof err, "a lease matched fewer claimed rows");
            goto out;
        }
    }
    if (fn__exec_s(rt, "COMMIT", err, sizeof err) != 0)
        goto out;
    claimed = 1;
    rc = n;
    *more = cut || (n == (int)rt->batch && !left_over);
    rt->starved = left_over || excluded;
    if ((rc = run_leased(rt, res, notes, n, err, sizeof err)) == 0) {
        ran = 1;
        rc = n;
    }
out:
    if (!claimed && !fn__work_broken(rt)) {
        char ignored[FN_ERR_MAX];
        fn__exec_s(rt, "ROLLBACK", ignored, sizeof ignored);
    }
    for (int i = 0; i < n && notes != NULL; i++) {
        run_note_t *note = &notes[i];
        if (note->slot == NULL)
            continue;
        if (note->async && note->outcome == NULL) {
            if (claimed)
                fn__start_job(rt, note->slot, res, i);
            continue;
        }
        if (note->outcome == NULL) /* not reached, or the pass did not commit */
            continue;
        int committed = note->ran ? ran : claimed;
        const char *outcome = committed ? note->outcome : "rolled_back";
        if (committed && strcmp(note->outcome, "stale") != 0) { /* a stale pair did not run */
            brk_metrics_add(note->slot->m_runs, 1);
            if (strcmp(note->outcome, "done") != 0)
                brk_metrics_add(note->slot->m_failures, 1);
        }
        fn__log_run(note->slot->def->name, PQgetvalue(res, i, C_TENANT),
                    PQgetvalue(res, i, C_EVENT), PQgetvalue(res, i, C_TYPE), outcome, note->attempt,
                    note->dur_ns, note->err);
    }
    free(notes);
    PQclear(res);
    json_decref(leases);
    if ((!claimed || !ran) && fn__work_broken(rt))
        fn__db_lost(rt, err);
    else if (!claimed || !ran)
        brk_log_warn("function runtime claim pass failed", "error", err);
    return rc;
}

/* fn__on_claim: runs passes while they come back full. After one that did not (the backlog
 * is empty), the next waits until GSAP_FN_PASS_GAP_MS after that one began: a wake-up before
 * then (a NOTIFY, the poll timer, a finished webhook) arms gap_ev for the rest of the gap. */
void fn__on_claim(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    int more = 0;
    uint64_t now = fn__now_ns();
    if (now < rt->next_pass_ns) {
        if (!rt->stopping && !evtimer_pending(rt->gap_ev, NULL)) {
            struct timeval tv = fn__ms_tv((unsigned)((rt->next_pass_ns - now + 999999) / 1000000));
            evtimer_add(rt->gap_ev, &tv);
        }
        return;
    }
    for (int pass = 0; pass < FN_PASSES_PER_WAKE; pass++) {
        if (!rt->connected || rt->stopping)
            return;
        uint64_t began = fn__now_ns();
        if (claim_pass(rt, &more) < 0 || !more) {
            rt->next_pass_ns = began + rt->pass_gap_ns;
            return;
        }
    }
    /* Still a full backlog: yield to timers and completions, then continue. */
    event_active(rt->claim_ev, EV_READ, 0);
}

void fn__on_poll(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (!rt->connected || rt->stopping)
        return;
    event_active(rt->claim_ev, EV_READ, 0);
}
