#!/usr/bin/env bash
# get_rate.sh: GET throughput of the broker against a bare h2o server with the same layout.
#
# Starts a throwaway PostgreSQL (tests/pg_tmp.sh, durable unless BENCH_FSYNC=off), the broker on it and
# bench/h2o_hello (libh2o-evloop, the same thread count, one SO_REUSEPORT listener per thread,
# a 15-byte JSON answer), then runs wrk against each for BENCH_SECONDS:
#   - h2o_hello  GET /           the ceiling: h2o with nothing behind it
#   - broker     GET /healthz    router, request state, JSON reply, one log line
#   - broker     GET /readyz     the same plus one statement through the async libpq pipeline
# and prints requests/s and "ratio broker/h2o" for both broker routes. Not a test: a ratio,
# measured on this machine with the load generator on the same box.
#
# Environment: see bench/common.sh; also BENCH_ROUNDS (default 1: each round runs all three,
# the rates printed are the means), BENCH_CONNS (wrk connections, default 64),
# BENCH_WRK_THREADS (default 1), BENCH_HTTP_PORT (broker, default 55495), BENCH_BASE_PORT
# (h2o_hello, default 55496). Talks to 127.0.0.1 only; stops everything it started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
HTTP_PORT=${BENCH_HTTP_PORT:-55495}
BASE_PORT=${BENCH_BASE_PORT:-55496}
ROUNDS=${BENCH_ROUNDS:-1}
WARMUP_SECONDS=1

bench_check_uint BENCH_CONNS "$CONNS" 1 10000
bench_check_uint BENCH_ROUNDS "$ROUNDS" 1 100
bench_check_uint BENCH_WRK_THREADS "$WRK_THREADS" 1 64
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_check_uint BENCH_BASE_PORT "$BASE_PORT" 1024 65535
bench_init
bench_build_broker

# The baseline, rebuilt when its source is newer.
hello=$BENCH_BUILD/bench/h2o_hello
read -ra h2o_flags <<<"$(pkg-config --cflags --libs libh2o-evloop)"
bench_cc "$hello" "$BENCH_ROOT/bench/h2o_hello.c" "${h2o_flags[@]}" -DH2O_USE_LIBUV=0 -lpthread

bench_start_pg
bench_psql postgres -c "CREATE DATABASE gsap_bench_get"
bench_start_broker gsap_bench_get "$HTTP_PORT"

bench_port_free "$BASE_PORT" || bench_die "port $BASE_PORT is in use"
"$hello" 127.0.0.1 "$BASE_PORT" "$BENCH_THREADS" 2>>"$BENCH_TMP/h2o_hello.log" &
BENCH_PIDS+=($!)
bench_wait_http "http://127.0.0.1:$BASE_PORT/" 10 || bench_die "h2o_hello did not answer"

# run NAME URL: a short warm-up, then the measured run; sets RPS and BAD.
run() {
    local name=$1 url=$2 out=$BENCH_TMP/wrk-$1.txt
    echo "== $name: wrk -t$WRK_THREADS -c$CONNS -d${BENCH_SECONDS}s $url" >&2
    timeout 60 wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP_SECONDS}s" "$url" >/dev/null 2>&1 || true
    bench_wrk "$out" -t"$WRK_THREADS" -c"$CONNS" -d"${BENCH_SECONDS}s" "$url"
    RPS=$(bench_rps "$out")
    BAD=$(bench_non2xx "$out")
    [ -n "$RPS" ] || bench_die "no Requests/sec in the wrk report of $name"
}

# Each round runs the three targets once; with several rounds the rates are their means, so
# a burst of other load on the machine weighs less on one side.
base_sum=0 healthz_sum=0 readyz_sum=0 base_bad=0 healthz_bad=0 readyz_bad=0
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
for ((round = 1; round <= ROUNDS; round++)); do
    ((ROUNDS == 1)) || echo "== round $round of $ROUNDS" >&2
    run h2o_hello "http://127.0.0.1:$BASE_PORT/"
    base_sum=$(add "$base_sum" "$RPS") base_bad=$((base_bad + BAD))
    run healthz "http://127.0.0.1:$HTTP_PORT/healthz"
    healthz_sum=$(add "$healthz_sum" "$RPS") healthz_bad=$((healthz_bad + BAD))
    run readyz "http://127.0.0.1:$HTTP_PORT/readyz"
    readyz_sum=$(add "$readyz_sum" "$RPS") readyz_bad=$((readyz_bad + BAD))
done
mean() { awk -v s="$1" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'; }
base_rps=$(mean "$base_sum") healthz_rps=$(mean "$healthz_sum") readyz_rps=$(mean "$readyz_sum")

echo
echo "GET rate, $BENCH_THREADS server threads, wrk -t$WRK_THREADS -c$CONNS, ${BENCH_SECONDS} s each x $ROUNDS round(s), $(nproc) cores, load generator on the same machine"
printf '  %-28s %10s req/s   (non-2xx or socket errors: %s)\n' \
    "h2o hello world GET /" "$base_rps" "$base_bad" \
    "broker GET /healthz" "$healthz_rps" "$healthz_bad" \
    "broker GET /readyz (db)" "$readyz_rps" "$readyz_bad"
echo "  /healthz: ratio broker/h2o = $(bench_ratio "$healthz_rps" "$base_rps")"
echo "  /readyz:  ratio broker/h2o = $(bench_ratio "$readyz_rps" "$base_rps")"
if [ "$base_bad" != 0 ] || [ "$healthz_bad" != 0 ] || [ "$readyz_bad" != 0 ]; then
    echo "get_rate: some responses were not 2xx (see the wrk reports above)" >&2
    exit 1
fi
