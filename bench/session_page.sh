#!/usr/bin/env bash
# session_page.sh: how long the session page of a context with BENCH_SESSION_CRS receipts
# (default 10,000) takes to answer: its first, middle and last page, as JSON and as HTML.
#
#  1. a throwaway PostgreSQL, a fresh database, the broker, one issuer+executor key, one
#     session AC;
#  2. BENCH_SESSION_CRS distinct CRs posted into it (wrk -c8 + bench/session.lua), ANALYZE;
#  3. each page BENCH_PAGE_RUNS times (default 20) with curl, timing the whole answer;
#  4. prints p50 and max per page and ends with p99_ms=<the slowest page's p99 over all
#     runs>. Target: < 100 ms. Not a test.
# Environment: bench/common.sh; BENCH_SESSION_CRS, BENCH_PAGE_RUNS, BENCH_HTTP_PORT (55498).
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CRS=${BENCH_SESSION_CRS:-10000}
RUNS=${BENCH_PAGE_RUNS:-20}
HTTP_PORT=${BENCH_HTTP_PORT:-55498}
DB=gsap_bench_session_page
TENANT=acme
PAGE=100 # the page's default size (handlers/hnd_session.c SESSION_PAGE_DEFAULT)

bench_check_uint BENCH_SESSION_CRS "$CRS" 200 1000000
bench_check_uint BENCH_PAGE_RUNS "$RUNS" 1 1000
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
type bench_pg_durability >/dev/null 2>&1 ||
    bench_pg_durability() { echo "fsync=off synchronous_commit=off (tests/pg_tmp.sh)"; }
bench_init
bench_build_broker
bench_cr_values
URL=http://127.0.0.1:$HTTP_PORT
scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_pg_durability)), database $DB" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor,auditor --name bench)
ctx=$(curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "${ISSUE_BODY%\}},\"session_mode\":true}" "$URL/governance/authorize/" |
    sed -n 's/.*"context_id": *"\(ctx_[0-9a-f]*\)".*/\1/p')
[ -n "$ctx" ] || bench_die "could not issue the session AC"

echo "== $CRS CRs into $ctx (wrk -c8)" >&2
body=${CR_BODY/CTX/$ctx}
body=${body/\"stdout_hash\":\"$OUTH\"/\"stdout_hash\":\"sha256:HASH\"}
t0=$(date +%s.%N)
# wrk runs until told (a thread that stops itself still leaves wrk sleeping out -d): stopped
# with SIGINT once the database holds every CR.
wrk -t1 -c8 -d3600s -s "$BENCH_ROOT/bench/session.lua" "$URL/governance/complete/" -- \
    "$TOKEN" "$CRS" "$body" >"$BENCH_TMP/wrk-fill.txt" 2>&1 &
wrk_pid=$!
BENCH_PIDS+=("$wrk_pid")
deadline=$((SECONDS + 3600))
while (($(scalar "SELECT count(*) FROM crs WHERE context_id = '$ctx'") < CRS)); do
    kill -0 "$wrk_pid" 2>/dev/null || { cat "$BENCH_TMP/wrk-fill.txt" >&2; bench_die "wrk stopped early"; }
    ((SECONDS < deadline)) || bench_die "the session did not fill within an hour"
    sleep 0.5
done
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
t1=$(date +%s.%N)
n=$(scalar "SELECT count(*) FROM crs WHERE context_id = '$ctx'")
((n >= CRS)) || bench_die "only $n of $CRS CRs were stored"
echo "   $n CRs stored in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" >&2
bench_psql "$DB" -c "VACUUM ANALYZE"

# time_ms PATH ACCEPT: RUNS timings of one page (ms, one a line), after checking it is a 200.
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
base=/governance/session/$ctx
echo
echo "Session page of a context with $n receipts ($PAGE a page), $RUNS runs each, $(nproc) cores"
echo "  PostgreSQL: $(bench_pg_durability)"
report "first page, JSON" "$base" application/json
report "first page, HTML" "$base" text/html
report "middle page, JSON" "$base?after=$((n / 2))" application/json
report "last page, JSON" "$base?after=$((n - PAGE))" application/json
report "last page, HTML" "$base?after=$((n - PAGE))" text/html
echo "p99_ms=$worst"
