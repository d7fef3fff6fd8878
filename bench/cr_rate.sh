#!/usr/bin/env bash
# cr_rate.sh: the broker's Completion Receipt acceptance rate against pgbench running the same
# SQL on the same database.
#
#  1. a throwaway PostgreSQL (tests/pg_tmp.sh) with the product's durability (fsync,
#     synchronous_commit and full_page_writes on; BENCH_FSYNC=off turns all three off, a
#     labelled variant), the same for both sides, a fresh database, the broker on it and one
#     issuer+executor key;
#  2. BENCH_ACS ACs issued through POST /governance/authorize/ (wrk + bench/issue.lua, timed),
#     and as many ACs again copied in SQL from one of them (new context ids, authorized,
#     unexpired) for pgbench;
#  3. a warm-up (BENCH_WARMUP_SECONDS of CRs through the broker) and VACUUM ANALYZE, so both
#     sides start from non-empty, analyzed tables;
#     then wrk + bench/complete.lua for BENCH_SECONDS: POST /governance/complete/ with a
#     distinct context id per request (every AC accepts one CR), counting 200s;
#  4. pgbench -M prepared -n -c BENCH_CONNS -j 2 -T BENCH_SECONDS (as many clients as wrk has
#     connections) running the statement the broker sends (handlers/hnd_complete.c: SELECT ...
#     FROM gsap_complete(27 parameters)) with the same values, one call per transaction, each
#     consuming a fresh AC of the second set;
#  5. prints both rates, the broker's group-commit counters, and ends with "ratio=<b/p>".
#
# The broker coalesces the receipts that arrive together into one transaction (group commit,
# GSAP_DB_GROUP_MAX / GSAP_DB_GROUP_WAIT_MS): its groups are as large as the number of
# requests in flight per worker allows, so enough concurrent connections (BENCH_CONNS, 64 by
# default: 32 per worker on two) are what makes them large; pgbench commits each call alone.
#
# Both sides end in the same function under the same row lock, so the ratio is what the HTTP
# layer, authentication (one more statement per request), the pipeline and the broker's
# in-process function runtime (which bills every CR on its own connection while the run goes
# on) cost on top of that database work. The broker is stopped before pgbench runs. Not a
# test: a ratio, measured with the load generators on the same machine.
#
# Environment: see bench/common.sh; also BENCH_WARMUP_SECONDS (CRs through the broker before
# the measured runs, then ANALYZE; default 2, see the warm-up below), BENCH_ACS (ACs per side;
# default 5000 per second of warm-up and run, at least 20000; the script stops with a message
# if a side runs out), BENCH_CONNS (wrk connections, default 64), BENCH_PGBENCH_CLIENTS
# (default: BENCH_CONNS), BENCH_HTTP_PORT (default 55495), BENCH_FSYNC (on|off). Talks to 127.0.0.1 only; stops everything it
# started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-64}
HTTP_PORT=${BENCH_HTTP_PORT:-55495}
PGB_CLIENTS=${BENCH_PGBENCH_CLIENTS:-$CONNS}
PGB_JOBS=2
WARMUP=${BENCH_WARMUP_SECONDS:-2}
DB=gsap_bench_cr
PGB_MARK="bench: pgbench copy"
TENANT=bench

bench_check_uint BENCH_SECONDS "$BENCH_SECONDS" 1 3600
bench_check_uint BENCH_WARMUP_SECONDS "$WARMUP" 0 600
default_acs=$(((BENCH_SECONDS + WARMUP) * 5000))
((default_acs >= 20000)) || default_acs=20000
ACS=${BENCH_ACS:-$default_acs}
bench_check_uint BENCH_ACS "$ACS" 100 10000000
bench_check_uint BENCH_CONNS "$CONNS" 1 10000
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_check_uint BENCH_PGBENCH_CLIENTS "$PGB_CLIENTS" 2 256
bench_init
bench_need_pkg pgbench postgresql-contrib-15
bench_build_broker

bench_cr_values # CMD ... ISSUE_BODY, CR_BODY (CTX where the context id goes)
URL=http://127.0.0.1:$HTTP_PORT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor --name bench)
KEY_ID=$(cut -d. -f3 <<<"$TOKEN")
[[ $KEY_ID =~ ^[0-9a-f]+$ ]] || bench_die "unexpected token from keys create"

# ---- ACs for the broker, through its API ----
echo "== issuing $ACS ACs: wrk -t1 -c$CONNS POST /governance/authorize/" >&2
ids=$BENCH_TMP/ids
bench_issue_acs "$URL" "$TOKEN" "$ACS" "$CONNS" "$ids"
have=$BENCH_ISSUED issue_s=$BENCH_ISSUE_S
issue_rate=$(awk -v n="$have" -v s="$issue_s" 'BEGIN { printf "%.0f", n / s }')
echo "   $have ACs in $issue_s s ($issue_rate ACs/s, signed, each with its outbox event)" >&2

# ---- ACs for pgbench: copies of one broker AC with context ids ctx_<32 hex of 1..M>, marked
# by their description so the broker's own can be told apart ----
stride=$(((ACS + PGB_CLIENTS - 1) / PGB_CLIENTS))
pg_acs=$((stride * PGB_CLIENTS))
t0=$(now)
bench_copy_acs "$DB" "$TENANT" "$(head -n1 "$ids")" "$pg_acs" "$PGB_MARK"
echo "   $pg_acs more ACs for pgbench copied in SQL in $(elapsed "$t0" "$(now)") s" >&2

# ---- warm-up: the broker accepts CRs for BENCH_WARMUP_SECONDS, then ANALYZE ----
# PL/pgSQL caches one generic plan per statement and session. Planned on an empty, freshly
# analyzed crs table, the identical-retry lookup in gsap_complete is a sequential scan, and it
# stays one until the next ANALYZE of crs; its cost then grows with every stored CR and the
# rate decays through the run (BENCH_WARMUP_SECONDS=0 shows it). A real broker meets tables
# that are not empty and analyzed, so both sides are measured from there.
if ((WARMUP > 0)); then
    echo "== warm-up: ${WARMUP} s of CRs through the broker, then ANALYZE" >&2
    bench_warmup_crs "$URL" "$TOKEN" "$ids" "$WARMUP" "$CONNS"
    scalar "SELECT context_id FROM acs WHERE status = 'authorized' AND description IS DISTINCT FROM
            '$PGB_MARK' ORDER BY created_at" >"$ids"
    echo "   $(scalar "SELECT count(*) FROM crs") CRs stored; $(wc -l <"$ids") ACs left for the broker" >&2
fi
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT
before=$(scalar "SELECT count(*) FROM crs")

# ---- (a) the broker ----
echo "== broker: wrk -t1 -c$CONNS -d${BENCH_SECONDS}s POST /governance/complete/ (one fresh AC per request)" >&2
bench_wrk "$BENCH_TMP/wrk-complete.txt" -t1 -c"$CONNS" -d"${BENCH_SECONDS}s" \
    -s "$BENCH_ROOT/bench/complete.lua" "$URL/governance/complete/" -- "$TOKEN" "$ids" 1 "$CR_BODY"
line=$(grep '^complete.lua:' "$BENCH_TMP/wrk-complete.txt") || bench_die "no summary from complete.lua"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
ok=$(field ok) other=$(field other) exhausted=$(field exhausted) dur_us=$(field duration_us)
((exhausted == 0)) || bench_die "the broker used up its ACs; raise BENCH_ACS"
stored=$(($(scalar "SELECT count(*) FROM crs") - before))
broker_rate=$(awk -v n="$ok" -v us="$dur_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
echo "   $ok CRs accepted (200) while wrk counted, $other other answers; $stored CR rows stored (incl. requests in flight at the end)" >&2
# Requests still in flight when wrk stops counting may be stored too: at most one per connection.
((stored >= ok && stored <= ok + CONNS)) || bench_die "200s ($ok) and stored CRs ($stored) disagree"

grouping=$(bench_grouping "$HTTP_PORT")
echo "   group commit: $grouping (includes the ACs issued and the warm-up)" >&2

# Stop the broker so pgbench has the machine to itself (and the broker's function runtime does
# not pick up the events pgbench's calls write). pgbench starts where the broker started: after
# VACUUM ANALYZE and a checkpoint, so autovacuum of the broker run's dead rows does not land in
# pgbench's seconds (it made pgbench's rate swing from 1,060 to 1,460 CR/s between runs).
bench_stop "$BENCH_BROKER_PID"
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT

# ---- (b) pgbench, the same statement with the same values ----
# Each client counts its own calls (n) and uses ids client_id*stride + n: a fresh AC per call.
ctx="'ctx_' || lpad(to_hex(:id::bigint), 32, '0')"
json_head=${CR_BODY%%CTX*} json_tail=${CR_BODY#*CTX}
cat >"$BENCH_TMP/complete.sql" <<SQL
\\set n :n + 1
\\set id :client_id * $stride + :n
SELECT code, cr_id, sequence, lineage_cid, prev_lineage_cid, ac_status, array_to_json(flags)::text, effective_outcome, cr_cid, chronicle_cid, ac_cid, outcome FROM gsap_complete('$TENANT', $ctx, 'cr_' || lpad(to_hex(:id::bigint), 32, '0'), ('$json_head' || $ctx || '$json_tail')::jsonb, '$CR_CID', '$CH_CID', '$OUTH', 'completed', 'verified', '$CMD', '$CORPUS', '$PARAMS', NULL, 'false'::boolean, '0'::integer, '$STARTED'::timestamptz, '$COMPLETED'::timestamptz, '$KEY_ID', 30, NULL, NULL, 'default', 604800, NULL, NULL, NULL, true);
SQL
echo "== pgbench -M prepared -n -c $PGB_CLIENTS -j $PGB_JOBS -T $BENCH_SECONDS (gsap_complete, one fresh AC per call)" >&2
before=$(scalar "SELECT count(*) FROM crs")
timeout $((BENCH_SECONDS + 60)) pgbench -M prepared -n -c "$PGB_CLIENTS" -j "$PGB_JOBS" \
    -T "$BENCH_SECONDS" -D n=0 -f "$BENCH_TMP/complete.sql" \
    -h "$BENCH_PG_DIR" -p "$BENCH_PG_PORT" -U postgres "$DB" >"$BENCH_TMP/pgbench.txt" 2>&1 ||
    { cat "$BENCH_TMP/pgbench.txt" >&2; bench_die "pgbench failed"; }
sed 's/^/    /' "$BENCH_TMP/pgbench.txt" >&2
pgb_rate=$(awk '/^tps = / { printf "%.0f", $3 }' "$BENCH_TMP/pgbench.txt")
pgb_tx=$(awk '/^number of transactions actually processed:/ { print $NF }' "$BENCH_TMP/pgbench.txt")
stored=$(($(scalar "SELECT count(*) FROM crs") - before))
echo "   $pgb_tx calls, $stored CR rows stored" >&2
((stored == pgb_tx)) || bench_die "pgbench calls ($pgb_tx) and stored CRs ($stored) disagree; raise BENCH_ACS"

echo
echo "CR acceptance rate, ${BENCH_SECONDS} s each, $(nproc) cores, load generators on the same machine"
echo "  PostgreSQL: throwaway cluster, $(bench_durability), both sides"
echo "  ACs issued through the broker beforehand: $have in $issue_s s ($issue_rate/s)"
printf '  %-52s %8s CR/s\n' \
    "broker POST /governance/complete/ ($BENCH_THREADS threads, wrk -c$CONNS)" "$broker_rate" \
    "pgbench gsap_complete (-M prepared -c $PGB_CLIENTS -j $PGB_JOBS)" "$pgb_rate"
echo "  broker group commit: $grouping"
echo "ratio=$(bench_ratio "$broker_rate" "$pgb_rate")"
