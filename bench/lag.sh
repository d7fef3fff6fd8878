#!/usr/bin/env bash
# lag.sh: billing lag at the peak CR rate, with the product's durability: how long after a
# Completion Receipt is accepted its invoice line is written, while the broker accepts CRs as
# fast as it can, and whether billing keeps up (the backlog when the load stops).
#
#  1. a throwaway PostgreSQL restarted with fsync, synchronous_commit and full_page_writes ON
#     (tests/pg_tmp.sh turns them off for the test suite; BENCH_FSYNC=off is the labelled
#     variant) and track_commit_timestamp on; a fresh database, the broker on it (its function
#     runtime with its defaults, or GSAP_FN_* from the environment) and one issuer+executor key;
#  2. ACs issued through POST /governance/authorize/ (wrk + bench/issue.lua);
#  3. a warm-up (BENCH_WARMUP_SECONDS of CRs), then the runtime drains and VACUUM ANALYZE;
#  4. wrk + bench/complete.lua for BENCH_SECONDS with BENCH_CONNS connections: POST
#     /governance/complete/ with a fresh AC per request, the peak CR rate;
#  5. when wrk stops: the backlog (pending (event, function) pairs, counted in SQL, and the
#     broker's /metrics gauges beside it), then the time until it is drained;
#  6. the lag of every CR accepted during the run: the commit time of its invoice line minus
#     the commit time of the CR (pg_xact_commit_timestamp of the rows' xmin, so both ends are
#     the moments the rows became visible, not the start of their transactions); p50, p99 and
#     max, and the last line "p99_ms=<n>".
#
# Not a test: figures, measured with the load generator on the same machine. Environment: see
# bench/common.sh; also BENCH_WARMUP_SECONDS (default 2), BENCH_ACS (ACs to issue; default
# 4000 per second of warm-up and run, at least 10000), BENCH_CONNS (wrk connections, default
# 64), BENCH_HTTP_PORT (default 55497), BENCH_FSYNC (on|off, default on), BENCH_DRAIN_SECONDS
# (longest wait for the backlog to drain, default 600). Talks to 127.0.0.1 only; stops
# everything it started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-64}
HTTP_PORT=${BENCH_HTTP_PORT:-55497}
WARMUP=${BENCH_WARMUP_SECONDS:-2}
FSYNC=${BENCH_FSYNC:-on}
DRAIN_LIMIT=${BENCH_DRAIN_SECONDS:-600}
DB=gsap_bench_lag
TENANT=bench

bench_check_uint BENCH_SECONDS "$BENCH_SECONDS" 1 3600
bench_check_uint BENCH_WARMUP_SECONDS "$WARMUP" 0 600
default_acs=$(((BENCH_SECONDS + WARMUP) * 4000))
((default_acs >= 10000)) || default_acs=10000
ACS=${BENCH_ACS:-$default_acs}
bench_check_uint BENCH_ACS "$ACS" 100 10000000
bench_check_uint BENCH_CONNS "$CONNS" 1 10000
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_check_uint BENCH_DRAIN_SECONDS "$DRAIN_LIMIT" 1 36000
case $FSYNC in on | off) ;; *) bench_die "BENCH_FSYNC must be on or off (got '$FSYNC')" ;; esac
bench_init
bench_build_broker

bench_cr_values # CMD ... ISSUE_BODY, CR_BODY (CTX where the context id goes)
URL=http://127.0.0.1:$HTTP_PORT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
scalar() { bench_psql "$DB" -At -c "$1"; }
pending() { scalar "SELECT count(*) FROM fn_runs WHERE done_at IS NULL AND dead_at IS NULL"; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The commit timestamps the lag is measured with: a setting that needs a restart, which keeps
# the cluster's own options (bench_start_pg: durable unless BENCH_FSYNC=off).
echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB" >&2
bench_start_pg
bench_psql postgres -c "ALTER SYSTEM SET track_commit_timestamp = on"
as_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$BENCH_PG_DIR/data" -w -t 120 -m fast restart >/dev/null ||
    bench_die "the PostgreSQL restart failed"
[ "$(bench_psql postgres -At -c 'SHOW fsync')" = "$FSYNC" ] || bench_die "fsync is not $FSYNC"
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor,admin --name bench)

# ---- ACs, through the API ----
echo "== issuing $ACS ACs: wrk -t1 -c$CONNS POST /governance/authorize/" >&2
ids=$BENCH_TMP/ids
bench_issue_acs "$URL" "$TOKEN" "$ACS" "$CONNS" "$ids"
echo "   $BENCH_ISSUED ACs in $BENCH_ISSUE_S s" >&2

# wait_drained SECONDS: until no (event, function) pair is pending; prints the seconds taken.
wait_drained() {
    local t0 n
    t0=$(now)
    while :; do
        n=$(pending)
        ((n == 0)) && break
        awk -v a="$t0" -v b="$(now)" -v l="$1" 'BEGIN { exit !(b - a > l) }' &&
            bench_die "$n pairs still pending after $1 s: billing did not drain"
        sleep 0.1
    done
    elapsed "$t0" "$(now)"
}

# ---- warm-up: CRs for BENCH_WARMUP_SECONDS, the runtime drains, then ANALYZE ----
if ((WARMUP > 0)); then
    echo "== warm-up: ${WARMUP} s of CRs through the broker" >&2
    bench_warmup_crs "$URL" "$TOKEN" "$ids" "$WARMUP" "$CONNS"
    echo "   drained in $(wait_drained "$DRAIN_LIMIT") s" >&2
    scalar "SELECT context_id FROM acs WHERE status = 'authorized' ORDER BY created_at" >"$ids"
fi
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT
mark=$(scalar "SELECT coalesce(max(received_at), '-infinity') FROM crs")
before=$(scalar "SELECT count(*) FROM crs")

# ---- the run: the peak CR rate ----
echo "== CRs: wrk -t1 -c$CONNS -d${BENCH_SECONDS}s POST /governance/complete/ (one fresh AC per request)" >&2
bench_wrk "$BENCH_TMP/wrk-complete.txt" -t1 -c"$CONNS" -d"${BENCH_SECONDS}s" \
    -s "$BENCH_ROOT/bench/complete.lua" "$URL/governance/complete/" -- "$TOKEN" "$ids" 1 "$CR_BODY"
backlog=$(pending)
oldest_ms=$(scalar "SELECT coalesce(floor(extract(epoch FROM clock_timestamp() - min(e.created_at)) * 1000)::bigint, 0)
                    FROM fn_runs r JOIN events e USING (tenant_id, event_id)
                    WHERE r.done_at IS NULL AND r.dead_at IS NULL")
metrics=$(curl -s -m 10 -H "Authorization: Bearer $TOKEN" "$URL/metrics" || true)
m_depth=$(awk '$1 == "gsap_fn_queue_depth" { print $2 }' <<<"$metrics")
m_lag=$(awk '$1 == "gsap_fn_oldest_pending_seconds" { print $2 }' <<<"$metrics")
line=$(grep '^complete.lua:' "$BENCH_TMP/wrk-complete.txt") || bench_die "no summary from complete.lua"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
ok=$(field ok) exhausted=$(field exhausted) dur_us=$(field duration_us)
((exhausted == 0)) || bench_die "the run used up its ACs; raise BENCH_ACS"
rate=$(awk -v n="$ok" -v us="$dur_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
echo "   $ok CRs accepted ($rate CR/s); backlog when the load stopped: $backlog pairs, oldest ${oldest_ms} ms" >&2
drain=$(wait_drained "$DRAIN_LIMIT")
echo "   drained in $drain s" >&2

# ---- lag of every CR of the run ----
crs=$(($(scalar "SELECT count(*) FROM crs") - before))
read -r n p50 p99 max < <(scalar "
    SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)), round(max(lag))
    FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(l.xmin)
                                    - pg_xact_commit_timestamp(c.xmin)) * 1000 AS lag
          FROM crs c JOIN invoice_lines l ON l.tenant_id = c.tenant_id AND l.cr_id = c.cr_id
          WHERE c.received_at > '$mark') x" | tr '|' ' ')
((n == crs)) || bench_die "$crs CRs were stored during the run but $n have an invoice line"

echo
echo "Billing lag at the peak CR rate, ${BENCH_SECONDS} s, $(nproc) cores, load generator on the same machine"
echo "  PostgreSQL: throwaway cluster with fsync=$FSYNC, synchronous_commit=$FSYNC, full_page_writes=$FSYNC"
echo "  function runtime: GSAP_FN_WORKERS=${GSAP_FN_WORKERS:-default} GSAP_FN_BATCH=${GSAP_FN_BATCH:-default}"
echo "  CRs accepted: $ok answered 200 in ${BENCH_SECONDS} s ($rate CR/s, wrk -c$CONNS); $n stored during the run (incl. requests in flight when wrk stopped), every one billed"
echo "  lag (CR commit -> invoice line commit): p50 ${p50} ms, p99 ${p99} ms, max ${max} ms"
echo "  backlog when the load stopped: $backlog pairs (/metrics: ${m_depth:-?}), oldest pending ${oldest_ms} ms (/metrics: ${m_lag:-?} s); drained in $drain s"
echo "p99_ms=$p99"
