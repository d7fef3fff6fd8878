#!/usr/bin/env bash
# latency.sh: CR acceptance latency at half of the peak rate, with open-loop load, and the
# broker's memory under load.
#
#  1. a throwaway PostgreSQL, a fresh database, the broker on it, one issuer+executor key and
#     one AC issued through the API, copied in SQL into enough fresh ACs (one CR each);
#  2. a warm-up and VACUUM ANALYZE (as bench/cr_rate.sh);
#  3. the peak: wrk -c BENCH_CONNS closed-loop POST /governance/complete/ for BENCH_SECONDS,
#     sampling the broker's RSS every 0.2 s;
#  4. VACUUM ANALYZE and a checkpoint, then half of that rate, open loop (bench/paced.c: requests
#     leave on schedule whatever the answers do; latency counted from when each was due), for
#     BENCH_SECONDS;
#  5. prints peak, CPU per CR at peak (broker and PostgreSQL), the paced rate, p50/p90/p99/max
#     latency and the peak RSS; ends with the line p99_ms=<n>.
# Not a test. Environment: bench/common.sh; BENCH_CONNS (wrk connections at peak, default 64),
# BENCH_HTTP_PORT (default 55494), BENCH_PACED_WARMUP (seconds at the paced rate before the
# measured BENCH_SECONDS, not counted, as wrk2 leaves out its calibration; default 3, its p99
# is printed too).
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-64}
PACED_WARMUP=${BENCH_PACED_WARMUP:-3}
HTTP_PORT=${BENCH_HTTP_PORT:-55494}
WARMUP=2
DB=gsap_bench_latency
TENANT=acme
MARK=bench-latency

bench_check_uint BENCH_CONNS "$CONNS" 1 1024
bench_check_uint BENCH_PACED_WARMUP "$PACED_WARMUP" 0 600
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_init
bench_build_broker
# The open-loop generator, rebuilt when its source is newer.
paced=$BENCH_BUILD/bench/paced
bench_cc "$paced" "$BENCH_ROOT/bench/paced.c"
bench_cr_values
# Enough fresh ACs for a warm-up and a peak of up to 6,000 CR/s, and the paced half.
ACS=$(((WARMUP + PACED_WARMUP + 2 * BENCH_SECONDS) * 6000))
URL=http://127.0.0.1:$HTTP_PORT
scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB, $ACS ACs" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor --name bench)
first=$(bench_issue_ac "$URL" "$TOKEN")
bench_copy_acs "$DB" "$TENANT" "$first" "$ACS" "$MARK"
ids=$BENCH_TMP/ids
fresh_ids() { scalar "SELECT context_id FROM acs WHERE description = '$MARK' AND status = 'authorized'
                      ORDER BY context_id" >"$ids"; }
fresh_ids

echo "== warm-up: $WARMUP s, then VACUUM ANALYZE" >&2
bench_warmup_crs "$URL" "$TOKEN" "$ids" "$WARMUP" "$CONNS"
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT
fresh_ids

echo "== peak: wrk -t1 -c$CONNS -d${BENCH_SECONDS}s, RSS sampled" >&2
rss_max=0
(
    m=0
    while kill -0 "$BENCH_BROKER_PID" 2>/dev/null; do
        r=$(bench_rss_kb "$BENCH_BROKER_PID")
        ((r > m)) && m=$r && echo "$m" >"$BENCH_TMP/rss"
        sleep 0.2
    done
) &
sampler=$!
BENCH_PIDS+=("$sampler")
mapfile -t pg_pids < <(bench_pg_pids)
b0=$(bench_cpu_ticks "$BENCH_BROKER_PID") p0=$(bench_cpu_ticks "${pg_pids[@]}")
bench_wrk "$BENCH_TMP/wrk-peak.txt" -t1 -c"$CONNS" -d"${BENCH_SECONDS}s" \
    -s "$BENCH_ROOT/bench/complete.lua" "$URL/governance/complete/" -- "$TOKEN" "$ids" 1 "$CR_BODY"
line=$(grep '^complete.lua:' "$BENCH_TMP/wrk-peak.txt") || bench_die "no summary from complete.lua"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
ok=$(field ok) exhausted=$(field exhausted) dur_us=$(field duration_us)
((exhausted == 0)) || bench_die "the peak used up every AC"
peak=$(awk -v n="$ok" -v us="$dur_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
b1=$(bench_cpu_ticks "$BENCH_BROKER_PID") p1=$(bench_cpu_ticks "${pg_pids[@]}")
hz=$(getconf CLK_TCK)
# CPU per accepted CR at peak: what one more broker machine, or a bigger database machine,
# would have to supply (docs/scaling.md works from these).
cpu_b=$(awk -v t=$((b1 - b0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
cpu_p=$(awk -v t=$((p1 - p0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
kill "$sampler" 2>/dev/null || true
rss_max=$(cat "$BENCH_TMP/rss" 2>/dev/null || echo 0)
half=$((peak / 2))
((half > 0)) || bench_die "no CR was accepted at peak"

# The paced run starts from the state the peak started from: the peak's dead rows vacuumed
# and a checkpoint taken. Without it, autovacuum of the peak's rows and the WAL segments the
# fresh cluster still has to create (a checkpoint is what lets PostgreSQL recycle them) landed
# in the paced run's first seconds: every request of those seconds waited 30-90 ms.
bench_psql "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT
fresh_ids
echo "== paced: $half CR/s for $PACED_WARMUP s (not counted), then $BENCH_SECONDS s, open loop" >&2
out=$(timeout $((PACED_WARMUP + BENCH_SECONDS + 120)) "$paced" \
    "$URL/governance/complete/" "$TOKEN" "$half" "$BENCH_SECONDS" "$ids" "$CR_BODY" \
    "$PACED_WARMUP") || bench_die "paced failed: $out"
echo "   $out" >&2
j() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$out"; }
p50=$(j p50_ms) p90=$(j p90_ms) p99=$(j p99_ms) max=$(j max_ms) pok=$(j ok) due=$(j due) late=$(j late)
warm_p99=$(j warmup_p99_ms)
((pok == due)) || echo "   warning: $((due - pok)) paced requests were not accepted" >&2

echo
echo "CR acceptance latency at half of peak, ${BENCH_SECONDS} s each, $(nproc) cores, load generators on the same machine"
echo "  PostgreSQL: $(bench_durability)"
echo "  peak (wrk closed loop, -c$CONNS): $peak CR/s; broker RSS at peak: $((rss_max / 1024)) MB"
echo "  CPU per CR at peak: broker $cpu_b ms, PostgreSQL $cpu_p ms (its postmaster and backends)"
echo "  paced (open loop): $half CR/s, $pok of $due accepted, $late sent > 5 ms late"
echo "  latency from due time: p50 $p50 ms, p90 $p90 ms, p99 $p99 ms, max $max ms"
echo "  (after $PACED_WARMUP s at the same rate, not counted: its p99 $warm_p99 ms)"
echo "rss_mb=$((rss_max / 1024))"
echo "p99_ms=$p99"
