#!/usr/bin/env bash
# ha.sh: three brokers on one PostgreSQL behind HAProxy, under load, one killed with SIGKILL
# in the middle of the run. Clients retry what fails with the same Idempotency-Key / the same
# CR body (bench/ha_client.mjs). Afterwards the database must hold exactly what the clients
# were told: every AC a client got once (no key twice), every CR a client got 200 for, every
# CR exactly one invoice line (the surviving brokers' runtimes bill what the dead one left),
# and nothing the clients were not told about.
#
#  1. a throwaway PostgreSQL (fsync on unless BENCH_FSYNC=off), one database, three brokers
#     (same data: one signing key, copied, so every AC verifies against one published key),
#     HAProxy on BENCH_HTTP_PORT with health checks on /readyz; it re-sends only requests
#     that never reached a broker (connection failures), so a request in flight on the
#     killed broker, which may or may not have committed, comes back to the client as a 502
#     and the client sends it again: the case Idempotency-Key and identical-retry detection
#     exist for (haproxy from Debian, installed when missing);
#  2. BENCH_CONNS client loops for BENCH_SECONDS; at half time broker 2 gets SIGKILL;
#  3. the checks above, in SQL; prints the figures and ends with "lost=N duplicated=N".
#
# Exits 0 only when nothing was lost or duplicated and no request failed for good. Also run
# as the ctest ha_failover (short). Environment: bench/common.sh, BENCH_CONNS (client loops,
# default 32), BENCH_HTTP_PORT (the brokers take the next three ports; default: free ports the
# kernel picks).
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

CONNS=${BENCH_CONNS:-32}
HTTP_PORT=${BENCH_HTTP_PORT:-}
BILL_WAIT_S=120 # the survivors bill every CR within this long, or the run fails
DB=gsap_bench_ha
TENANT=acme

bench_check_uint BENCH_CONNS "$CONNS" 1 1024
# The load balancer's port and the three brokers': BENCH_HTTP_PORT and the next three, or
# four the kernel picks (a test suite running beside it uses ports of its own).
if [ -n "$HTTP_PORT" ]; then
    bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65530
    PORTS=("$HTTP_PORT" $((HTTP_PORT + 1)) $((HTTP_PORT + 2)) $((HTTP_PORT + 3)))
else
    PORTS=()
    while ((${#PORTS[@]} < 4)); do
        p=$(bench_free_port)
        case " ${PORTS[*]} " in *" $p "*) ;; *) PORTS+=("$p") ;; esac
    done
    HTTP_PORT=${PORTS[0]}
fi
bench_init
bench_need_pkg haproxy haproxy
bench_need_pkg node nodejs
bench_build_broker

bench_cr_values # CMD ... ISSUE_BODY, CR_BODY (CTX where the context id goes)
scalar() { bench_psql "$DB" -At -c "$1"; }

echo "== setup: throwaway PostgreSQL ($(bench_durability)), database $DB, 3 brokers, HAProxy" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"

# Broker i serves on HTTP_PORT+i with its own data directory; 2 and 3 get a copy of 1's keys.
PIDS=()
start_broker() { # I
    local i=$1 port=${PORTS[$1]} envs=()
    bench_port_free "$port" || bench_die "port $port is in use"
    mapfile -t envs < <(bench_broker_env "$DB" "$port" | sed "s|^GSAP_DATA_DIR=.*|GSAP_DATA_DIR=$BENCH_TMP/data$i|")
    env "${envs[@]}" "GSAP_FN_POLL_MS=200" "$BENCH_BROKER" serve 2>>"$BENCH_TMP/broker$i.log" >/dev/null &
    PIDS[i]=$!
    BENCH_PIDS+=("$!")
    bench_wait_http "http://127.0.0.1:$port/readyz" 60 ||
        { tail -n 20 "$BENCH_TMP/broker$i.log" >&2; bench_die "broker $i did not become ready"; }
}
mkdir -p "$BENCH_TMP/data1"
start_broker 1
for i in 2 3; do
    mkdir -p "$BENCH_TMP/data$i"
    cp -a "$BENCH_TMP/data1/keys" "$BENCH_TMP/data$i/"
    start_broker "$i"
done
TOKEN=$(bench_broker "$DB" "${PORTS[1]}" keys create --tenant "$TENANT" --role issuer,executor --name ha)

cat >"$BENCH_TMP/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    retry-on conn-failure
frontend gsap
    bind 127.0.0.1:$HTTP_PORT
    default_backend brokers
backend brokers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    server b1 127.0.0.1:${PORTS[1]} check
    server b2 127.0.0.1:${PORTS[2]} check
    server b3 127.0.0.1:${PORTS[3]} check
EOF
haproxy -c -q -f "$BENCH_TMP/haproxy.cfg" || bench_die "haproxy refused its configuration"
bench_port_free "$HTTP_PORT" || bench_die "port $HTTP_PORT is in use"
haproxy -f "$BENCH_TMP/haproxy.cfg" -db >"$BENCH_TMP/haproxy.log" 2>&1 &
BENCH_PIDS+=("$!")
bench_wait_http "http://127.0.0.1:$HTTP_PORT/readyz" 60 ||
    { tail -n 20 "$BENCH_TMP/haproxy.log" >&2; bench_die "haproxy does not answer on $HTTP_PORT"; }

echo "== load: $CONNS client loops for $BENCH_SECONDS s; SIGKILL of broker 2 at $((BENCH_SECONDS / 2)) s" >&2
(
    sleep "$(awk -v s="$BENCH_SECONDS" 'BEGIN { print s / 2 }')"
    kill -KILL "${PIDS[2]}" 2>/dev/null && echo "   broker 2 killed (pid ${PIDS[2]})" >&2
) &
killer=$!
t0=$(date +%s.%N)
summary=$(timeout $((BENCH_SECONDS + 180)) node "$BENCH_ROOT/bench/ha_client.mjs" \
    "http://127.0.0.1:$HTTP_PORT" "$TOKEN" "$CONNS" "$BENCH_SECONDS" "$BENCH_TMP/pairs" \
    "$ISSUE_BODY" "$CR_BODY") || bench_die "the client failed: $summary"
t1=$(date +%s.%N)
wait "$killer" || true
kill -0 "${PIDS[2]}" 2>/dev/null && bench_die "broker 2 was never killed (run too short?)"
echo "   client: $summary" >&2
jget() { node -e 'const j=JSON.parse(process.argv[1]); console.log(j[process.argv[2]])' "$summary" "$1"; }
pairs=$(jget pairs) retries=$(jget retries) failures=$(jget failures) dups=$(jget duplicates)

# ---- what the database says ----
bench_psql "$DB" -c "CREATE TABLE ha_client (key text PRIMARY KEY, context_id text, cr_id text)"
bench_psql "$DB" -c "\\copy ha_client FROM '$BENCH_TMP/pairs' WITH (FORMAT text, DELIMITER ' ')"
acs=$(scalar "SELECT count(*) FROM acs WHERE tenant_id = '$TENANT'")
keyed=$(scalar "SELECT count(*) FROM acs WHERE tenant_id = '$TENANT' AND idempotency_key LIKE 'ha-%'")
# An AC the client was told about but that is not there (or another context under its key).
lost_acs=$(scalar "SELECT count(*) FROM ha_client h LEFT JOIN acs a ON a.tenant_id = '$TENANT'
                   AND a.idempotency_key = h.key WHERE a.context_id IS DISTINCT FROM h.context_id")
# A receipt the client got 200 for that is not stored as the one receipt of its context.
lost_crs=$(scalar "SELECT count(*) FROM ha_client h LEFT JOIN crs c ON c.tenant_id = '$TENANT'
                   AND c.cr_id = h.cr_id AND c.context_id = h.context_id WHERE c.cr_id IS NULL")
dup_crs=$(scalar "SELECT count(*) FROM (SELECT context_id FROM crs WHERE tenant_id = '$TENANT'
                  GROUP BY context_id HAVING count(*) > 1) d")
crs=$(scalar "SELECT count(*) FROM crs WHERE tenant_id = '$TENANT'")
# Every stored CR ends as exactly one invoice line, billed by the survivors.
deadline=$((SECONDS + BILL_WAIT_S))
while lines=$(scalar "SELECT count(*) FROM invoice_lines WHERE tenant_id = '$TENANT'") &&
    ((lines < crs && SECONDS < deadline)); do
    sleep 0.5
done
unbilled=$(scalar "SELECT count(*) FROM crs c WHERE c.tenant_id = '$TENANT' AND NOT EXISTS
                   (SELECT 1 FROM invoice_lines l WHERE l.tenant_id = c.tenant_id AND l.cr_id = c.cr_id)")
dup_lines=$(scalar "SELECT count(*) - count(DISTINCT cr_id) FROM invoice_lines WHERE tenant_id = '$TENANT'")
# ACs a retry left without a receipt (the client's CR failed for good) are not losses, but
# every AC must belong to a key the client used: nothing happened that nobody asked for.
stray=$(scalar "SELECT count(*) FROM acs WHERE tenant_id = '$TENANT' AND idempotency_key IS NULL")

lost=$((lost_acs + lost_crs + unbilled))
duplicated=$((dups + dup_crs + dup_lines))
rate=$(awk -v n="$pairs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
cat <<EOF

Three brokers on one PostgreSQL behind HAProxy, $BENCH_SECONDS s, broker 2 SIGKILLed at half time
  PostgreSQL: $(bench_durability)
  client loops: $CONNS (AC with Idempotency-Key, the same AC asked again, one CR), retried on reset/5xx
  pairs completed: $pairs ($rate AC+CR pairs/s through HAProxy, kill included); attempts retried: $retries
  requests failed for good: $failures
  database: $acs ACs ($keyed under client keys, $stray without), $crs CRs, $lines invoice lines
  lost: ACs $lost_acs, CRs $lost_crs, unbilled CRs $unbilled
  duplicated: keys answered with another context $dups, contexts with two CRs $dup_crs, CRs billed twice $dup_lines
lost=$lost duplicated=$duplicated
EOF
((lost == 0 && duplicated == 0 && failures == 0 && stray == 0 && pairs > 0)) ||
    bench_die "the failover lost or duplicated something (see above)"

# The survivors stop as a rolling restart would: SIGTERM while HAProxy still holds idle
# keep-alive connections to them, and a clean exit 0.
for i in 1 3; do
    kill -TERM "${PIDS[i]}"
    st=0
    wait "${PIDS[i]}" || st=$?
    ((st == 0)) || { tail -n 5 "$BENCH_TMP/broker$i.log" >&2; bench_die "broker $i exited $st on SIGTERM"; }
done
echo "survivors stopped cleanly (exit 0)"
