#!/usr/bin/env bash
# ac_rate.sh: the broker's AC issuance rate against pgbench running the issue statement one per
# transaction on the same database, with as many clients.
#
#  1. a throwaway PostgreSQL (tests/pg_tmp.sh) with the product's durability (fsync,
#     synchronous_commit and full_page_writes on; BENCH_FSYNC=off: all three off, a labelled
#     variant), a fresh database, the broker on it and one issuer key;
#  2. a warm-up (BENCH_WARMUP_SECONDS of issuance through the broker), VACUUM ANALYZE;
#  3. wrk -c BENCH_CONNS for BENCH_SECONDS: POST /governance/authorize/ (bench/issue.lua), each
#     answer a new signed AC stored with its outbox event (two round trips: the accord and
#     account lookups, then gsap_issue, which the broker group-commits with the other issues
#     that arrive together);
#  4. pgbench -M prepared -n -c BENCH_CONNS -j 2 -T BENCH_SECONDS: the statement the broker sends
#     (handlers/hnd_authorize.c: SELECT ... FROM gsap_issue(21 parameters)), one call per
#     transaction, with a new context id per call and the values of an AC the broker issued
#     (bound as parameters with -D, as the broker binds them);
#  5. prints both rates and the broker's group-commit counters; ends with "ratio=<b/p>".
#
# What pgbench does not do and the broker does: HTTP, authentication, the accord and account
# lookups, the policy decision, the Ed25519 signature and the in-process function runtime.
# The broker is stopped before pgbench runs. Not a test: a ratio, with the load generators on
# the same machine.
#
# Environment: see bench/common.sh; also BENCH_WARMUP_SECONDS (default 2), BENCH_CONNS (wrk
# connections = pgbench clients, default 64), BENCH_HTTP_PORT (default 55491). Talks to
# 127.0.0.1 only; stops everything it started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-64}
HTTP_PORT=${BENCH_HTTP_PORT:-55491}
PGB_JOBS=2
WARMUP=${BENCH_WARMUP_SECONDS:-2}
DB=gsap_bench_ac
TENANT=bench
# pgbench numbers its clients' context ids client_id * ID_STRIDE + n: disjoint per client
ID_STRIDE=100000000

bench_check_uint BENCH_SECONDS "$BENCH_SECONDS" 1 3600
bench_check_uint BENCH_WARMUP_SECONDS "$WARMUP" 0 600
bench_check_uint BENCH_CONNS "$CONNS" 2 256
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_init
bench_need_pkg pgbench postgresql-contrib-15
bench_build_broker

bench_cr_values # CMD CORPUS PARAMS ... ISSUE_BODY
URL=http://127.0.0.1:$HTTP_PORT

scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer --name bench)
KEY_ID=$(cut -d. -f3 <<<"$TOKEN")
[[ $KEY_ID =~ ^[0-9a-f]+$ ]] || bench_die "unexpected token from keys create"

run_issue() { # SECONDS REPORT
    timeout $(($1 + 60)) wrk -t1 -c"$CONNS" -d"$1s" -s "$BENCH_ROOT/bench/issue.lua" \
        "$URL/governance/authorize/" -- "$TOKEN" "$BENCH_TMP/ids" "$ISSUE_BODY" >"$2" 2>&1 ||
        { cat "$2" >&2; bench_die "wrk failed"; }
}

if ((WARMUP > 0)); then
    echo "== warm-up: ${WARMUP} s of issuance through the broker" >&2
    run_issue "$WARMUP" "$BENCH_TMP/wrk-warmup.txt"
fi
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT

# ---- (a) the broker ----
echo "== broker: wrk -t1 -c$CONNS -d${BENCH_SECONDS}s POST /governance/authorize/" >&2
before=$(scalar "SELECT count(*) FROM acs")
run_issue "$BENCH_SECONDS" "$BENCH_TMP/wrk-issue.txt"
sed 's/^/    /' "$BENCH_TMP/wrk-issue.txt" >&2
broker_rate=$(bench_rps "$BENCH_TMP/wrk-issue.txt")
bad=$(bench_non2xx "$BENCH_TMP/wrk-issue.txt")
stored=$(($(scalar "SELECT count(*) FROM acs") - before))
echo "   $stored ACs stored; $bad answers other than 200" >&2
((bad == 0)) || bench_die "the broker answered $bad requests with an error"
broker_rate=$(awk -v r="$broker_rate" 'BEGIN { printf "%.0f", r }')
grouping=$(bench_grouping "$HTTP_PORT")
echo "   group commit: $grouping (warm-up included)" >&2

# The values pgbench binds: those of an AC the broker issued (its document, its CID).
tpl=$(scalar "SELECT context_id FROM acs WHERE tenant_id = '$TENANT' ORDER BY created_at LIMIT 1")
AC_JSON=$(scalar "SELECT ac::text FROM acs WHERE context_id = '$tpl'")
AC_CID=$(scalar "SELECT ac_cid FROM acs WHERE context_id = '$tpl'")
bench_stop "$BENCH_BROKER_PID"
# pgbench starts where the broker started: after VACUUM ANALYZE and a checkpoint.
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT

# ---- (b) pgbench, the same statement, one call per transaction ----
cat >"$BENCH_TMP/issue.sql" <<SQL
\\set n :n + 1
\\set id :client_id * $ID_STRIDE + :n
SELECT inserted, ac::text, request_hash, refusal FROM gsap_issue(:tenant, 'ctx_' || lpad(to_hex(:id::bigint), 32, '0'), 'authorized', 'default', 'false'::boolean, '0'::bigint, :cmd, :corpus, :params, NULL, NULL, '900'::integer, now(), now() + interval '900 seconds', :issuer, 'default', :ac::jsonb, :ac_cid, NULL, 'bench', NULL, NULL);
SQL
echo "== pgbench -M prepared -n -c $CONNS -j $PGB_JOBS -T $BENCH_SECONDS (gsap_issue, one per transaction)" >&2
before=$(scalar "SELECT count(*) FROM acs")
timeout $((BENCH_SECONDS + 60)) pgbench -M prepared -n -c "$CONNS" -j "$PGB_JOBS" \
    -T "$BENCH_SECONDS" -D n=0 -D tenant="$TENANT" -D cmd="$CMD" -D corpus="$CORPUS" \
    -D params="$PARAMS" -D issuer="$KEY_ID" -D ac="$AC_JSON" -D ac_cid="$AC_CID" \
    -f "$BENCH_TMP/issue.sql" -h "$BENCH_PG_DIR" -p "$BENCH_PG_PORT" -U postgres "$DB" \
    >"$BENCH_TMP/pgbench.txt" 2>&1 || { cat "$BENCH_TMP/pgbench.txt" >&2; bench_die "pgbench failed"; }
sed 's/^/    /' "$BENCH_TMP/pgbench.txt" >&2
pgb_rate=$(awk '/^tps = / { printf "%.0f", $3 }' "$BENCH_TMP/pgbench.txt")
pgb_tx=$(awk '/^number of transactions actually processed:/ { print $NF }' "$BENCH_TMP/pgbench.txt")
stored=$(($(scalar "SELECT count(*) FROM acs") - before))
echo "   $pgb_tx calls, $stored ACs stored" >&2
((stored == pgb_tx)) || bench_die "pgbench calls ($pgb_tx) and stored ACs ($stored) disagree"

echo
echo "AC issuance rate, ${BENCH_SECONDS} s each, $(nproc) cores, load generators on the same machine"
echo "  PostgreSQL: throwaway cluster, $(bench_durability), both sides"
printf '  %-52s %8s AC/s\n' \
    "broker POST /governance/authorize/ ($BENCH_THREADS threads, wrk -c$CONNS)" "$broker_rate" \
    "pgbench gsap_issue (-M prepared -c $CONNS -j $PGB_JOBS)" "$pgb_rate"
echo "  broker group commit: $grouping"
echo "ratio=$(bench_ratio "$broker_rate" "$pgb_rate")"
