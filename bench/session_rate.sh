#!/usr/bin/env bash
# session_rate.sh: does a receipt cost more the longer its session? BENCH_SESSION_CRS receipts
# (default 10,000) into ONE session AC through POST /governance/complete/ from BENCH_CONNS
# clients (default 8), then the acceptance rate per 1,000 receipts along the session, from the
# database's own record (crs.sequence and crs.received_at, the accepting transaction's time).
# Flat is the goal: the 10,000th CR accepted as fast as the 10th (migrations/0016 made the
# identical-retry lookup an index probe instead of a scan of the session's CRs).
#
# Like bench/cr_rate.sh, the session starts from non-empty, analyzed tables: WARMUP seconds of
# single CRs (one fresh AC each) first, then VACUUM ANALYZE. On tables that were never analyzed
# PostgreSQL plans the foreign-key checks of billing's rows (invoice_lines and tlog_entries to
# crs) while crs is nearly empty, keeps that sequential-scan plan in the function runtime's
# session until autovacuum first analyzes crs (within about a minute in a real database), and
# each check then reads all of crs: the session would be measuring that first minute of a new
# database, a cost that grows with every CR stored, not with the length of the session.
#
# Prints one line per 1,000 CRs ("CRs 1-1000: <rate> CR/s") and
# "ratio=<rate of the last 1,000 / rate of the first 1,000>" (1.00 = flat); then the session
# page of that context (first, middle and last page, JSON and HTML, BENCH_PAGE_RUNS times each,
# default 20, target < 100 ms) and ends with "page_p99_ms=<the slowest page's p99>".
#
# Environment: see bench/common.sh (BENCH_FSYNC applies); also BENCH_SESSION_CRS (100..1000000),
# BENCH_CONNS (default 8), BENCH_HTTP_PORT (default 55499). BENCH_SECONDS is not the length
# here (the CR count is): the run stops once the session holds BENCH_SESSION_CRS receipts, or
# after 60 * BENCH_SECONDS s at the latest (default 600 s), and reports the full buckets it has.
# Talks to 127.0.0.1 only; stops everything it started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-8}
HTTP_PORT=${BENCH_HTTP_PORT:-55499}
TOTAL=${BENCH_SESSION_CRS:-10000}
BUCKET=1000
WARMUP=2
DB=gsap_bench_session
TENANT=bench
MARK=bench-session-warmup

bench_check_uint BENCH_SESSION_CRS "$TOTAL" 100 1000000
bench_check_uint BENCH_CONNS "$CONNS" 1 256
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_init
bench_build_broker
((TOTAL >= 2 * BUCKET)) || BUCKET=$((TOTAL / 2))
LIMIT_S=$((BENCH_SECONDS * 60))

bench_cr_values # CMD CORPUS PARAMS OUTH ...
URL=http://127.0.0.1:$HTTP_PORT
scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor --name bench)

first=$(bench_issue_ac "$URL" "$TOKEN")
bench_copy_acs "$DB" "$TENANT" "$first" $((WARMUP * 6000)) "$MARK"
scalar "SELECT context_id FROM acs WHERE description = '$MARK' ORDER BY context_id" >"$BENCH_TMP/ids"
echo "== warm-up: $WARMUP s of single CRs, then VACUUM ANALYZE" >&2
bench_warmup_crs "$URL" "$TOKEN" "$BENCH_TMP/ids" "$WARMUP" "$CONNS"
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT

# One session AC that lives long enough for the whole run.
ac=$(curl -s -m 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"accord_template\":\"default\",\"session_mode\":true,\"ttl_seconds\":3600,\
\"operation\":{\"command_hash\":\"$CMD\",\"corpus_entry_cid\":\"$CORPUS\",\"parameters_cid\":\"$PARAMS\"}}" \
    "$URL/governance/authorize/")
CTX=$(sed -n 's/.*"context_id": *"\(ctx_[0-9a-f]*\)".*/\1/p' <<<"$ac")
[ -n "$CTX" ] || bench_die "no session AC: $ac"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# SEQ marks the running number: output_bytes differs, so does every CR's cr_cid.
BODY="{\"context_id\":\"$CTX\",\"outcome\":\"completed\",\"exit_code\":0,\
\"started_at\":\"$NOW\",\"completed_at\":\"$NOW\",\"command_hash\":\"$CMD\",\
\"corpus_entry_cid\":\"$CORPUS\",\"parameters_cid\":\"$PARAMS\",\"stdout_hash\":\"$OUTH\",\
\"output_bytes\":SEQ,\"chronicle\":{\"session_id\":\"chr-1\",\"behavior_state\":\"verified\",\
\"merkle_root\":\"$OUTH\"}}"

echo "== $TOTAL CRs into one session ($CTX): wrk -t1 -c$CONNS POST /governance/complete/" >&2
# wrk always runs for its -d: it is stopped (SIGINT, it then reports) once the session holds
# TOTAL CRs, watched in the database.
timeout $((LIMIT_S + 60)) wrk -t1 -c"$CONNS" -d"${LIMIT_S}s" -s "$BENCH_ROOT/bench/session.lua" \
    "$URL/governance/complete/" -- "$TOKEN" "$BODY" "$TOTAL" 1 >"$BENCH_TMP/wrk-session.txt" 2>&1 &
wrk_pid=$!
BENCH_PIDS+=("$wrk_pid")
while kill -0 "$wrk_pid" 2>/dev/null; do
    (($(scalar "SELECT cr_count FROM acs WHERE context_id = '$CTX'") >= TOTAL)) && break
    sleep 0.5
done
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
sed 's/^/    /' "$BENCH_TMP/wrk-session.txt" >&2
grep -q '^session.lua: .* other=0 ' "$BENCH_TMP/wrk-session.txt" ||
    bench_die "some CRs were not accepted, or wrk did not report (see above)"
stored=$(scalar "SELECT count(*) FROM crs WHERE context_id = '$CTX'")
echo "   $stored CRs stored in the session" >&2

echo
echo "CRs into one session AC by position, $CONNS clients, $(nproc) cores"
echo "  PostgreSQL: throwaway cluster, $(bench_durability)"
echo "  rate per $BUCKET CRs: CRs accepted / (last accepted - last of the previous $BUCKET)"
# Each bucket is timed from the end of the previous one (its first CR from the session's
# first), so waiting between buckets is not lost; received_at is the accepting transaction's.
bench_psql "$DB" -At -F ' ' <<SQL >"$BENCH_TMP/buckets.txt"
WITH b AS (
    SELECT (sequence - 1) / $BUCKET AS k, count(*) AS n, max(received_at) AS t_end
    FROM crs WHERE context_id = '$CTX' GROUP BY 1)
SELECT k * $BUCKET + 1, k * $BUCKET + n, n,
       extract(epoch FROM t_end - coalesce(lag(t_end) OVER (ORDER BY k),
                                           (SELECT min(received_at) FROM crs
                                            WHERE context_id = '$CTX')))
FROM b WHERE n = $BUCKET ORDER BY k;
SQL
awk '{ s = $4 > 0 ? $4 : 1e-3; r = $3 / s; printf "  CRs %6d-%-6d %8.0f CR/s\n", $1, $2, r;
       if (NR == 1) first = r; last = r }
     END { if (NR == 0) { print "ratio=n/a"; exit }
           printf "ratio=%.2f\n", last / first }' "$BENCH_TMP/buckets.txt"

# ---- the session page of this context: first, middle and last page, JSON and HTML ----
RUNS=${BENCH_PAGE_RUNS:-20}
bench_check_uint BENCH_PAGE_RUNS "$RUNS" 1 1000
PAGE=100 # the page's default size (handlers/hnd_session.c SESSION_PAGE_DEFAULT)
# time_page PATH ACCEPT: RUNS timings of one page (ms, one a line), after checking it is a 200.
time_page() {
    local path=$1 accept=$2 i
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H "Accept: $accept" "$URL$path")" = 200 ] || bench_die "$path is not 200"
    for ((i = 0; i < RUNS; i++)); do
        curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
            -H "Accept: $accept" "$URL$path"
    done | awk '{ printf "%.2f\n", $1 * 1000 }' | sort -n
}
worst=0
report() { # LABEL PATH ACCEPT
    local t p50 p99 mx
    t=$(time_page "$2" "$3")
    p50=$(awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' <<<"$t")
    p99=$(awk '{ a[NR] = $1 } END { i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; print a[i] }' <<<"$t")
    mx=$(tail -n1 <<<"$t")
    printf '  %-32s p50 %7s ms   p99 %7s ms   max %7s ms\n' "$1" "$p50" "$p99" "$mx"
    worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN { print (b > a) ? b : a }')
}
base=/governance/session/$CTX
echo
echo "Session page of this context ($stored receipts, $PAGE a page), $RUNS runs each (target: < 100 ms)"
report "first page, JSON" "$base" application/json
report "first page, HTML" "$base" text/html
report "middle page, JSON" "$base?after=$((stored / 2))" application/json
report "last page, JSON" "$base?after=$((stored - PAGE))" application/json
report "last page, HTML" "$base?after=$((stored - PAGE))" text/html
echo "page_p99_ms=$worst"
