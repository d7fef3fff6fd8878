#!/usr/bin/env bash
# export_rss.sh: the broker's resident memory while it streams a large finalized invoice, as
# its audit bundle (GET /billing/invoices/{id}/bundle) and as CSV (lines.csv). The target:
# rss_mb < 64 for BENCH_LINES = 1000000.
#
#  1. a throwaway PostgreSQL, a fresh database, the broker on it, keys for the bench tenant;
#  2. one real receipt through the API (authorize + complete), billed by the runtime;
#  3. BENCH_LINES - 1 copies of it made in SQL with session_replication_role = replica (the
#     append-only guards are triggers, off in that mode; a throwaway database only): receipts,
#     invoice lines, log entries (leaf hashes as the log computes them) and the log's interior
#     nodes, level by level as migration 0018 builds them, and the invoice's count and total;
#     the copies are not valid receipts (the bundle would not verify), they cost what real ones
#     cost to read and to prove;
#  4. finance finalizes the invoice (the finalizer reads every line too);
#  5. the broker is restarted (a clean baseline), then each export is read with curl to
#     /dev/null while /proc/<pid>/status is sampled every 50 ms; prints the largest VmRSS.
#
# Output (stdout): lines=N, bundle_bytes=, bundle_s=, rss_mb_bundle=, csv_bytes=, csv_s=,
# rss_mb_csv=, rss_mb_idle=, rss_mb= (the largest of the two exports); with BENCH_VERIFY=1
# (the bundle is then also written to the scratch directory: ~3 KB a line) verify_s= and
# verify_rss_mb=, the offline verifier's peak RSS reading it (the copies fail its checks, but
# it reads and checks every line all the same). Not a test: figures,
# measured on this machine; the integrator measures on a quiet one.
#
# Environment: see bench/common.sh; also BENCH_LINES (default 1000000; check the script with a
# few thousand), BENCH_HTTP_PORT (default 55492). Talks to 127.0.0.1 only; stops everything
# it started on exit.
set -euo pipefail

# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

LINES=${BENCH_LINES:-1000000}
HTTP_PORT=${BENCH_HTTP_PORT:-55492}
DB=gsap_bench_export
TENANT=bench
SAMPLE_S=0.05
EXPORT_LIMIT_S=7200
H64=$(printf '1%.0s' $(seq 64))

bench_check_uint BENCH_LINES "$LINES" 2 100000000
bench_check_uint BENCH_HTTP_PORT "$HTTP_PORT" 1024 65535
bench_init
bench_build_broker
URL=http://127.0.0.1:$HTTP_PORT
scalar() { bench_psql "$DB" -At -c "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== setup: throwaway PostgreSQL, database $DB, broker on $URL" >&2
bench_start_pg
bench_psql postgres -c "CREATE DATABASE $DB"
bench_start_broker "$DB" "$HTTP_PORT"
SHELL_TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role issuer,executor --name shell)
FIN_TOKEN=$(bench_broker "$DB" "$HTTP_PORT" keys create --tenant "$TENANT" --role finance,auditor --name finance)

echo "== one real receipt, billed by the runtime" >&2
ctx=$(curl -sf -H "Authorization: Bearer $SHELL_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"accord_template\":\"default\",\"session_mode\":true,\"operation\":{\"command_hash\":\"sha256:$H64\",\"corpus_entry_cid\":\"sha256:$H64\",\"parameters_cid\":\"sha256:$H64\"}}" \
    "$URL/governance/authorize/" | sed -n 's/.*"context_id": *"\([^"]*\)".*/\1/p')
[ -n "$ctx" ] || bench_die "authorize failed"
curl -sf -o /dev/null -H "Authorization: Bearer $SHELL_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"context_id\":\"$ctx\",\"outcome\":\"completed\",\"exit_code\":0,\"started_at\":\"$(date -u +%FT%TZ)\",\"completed_at\":\"$(date -u +%FT%TZ)\",\"command_hash\":\"sha256:$H64\",\"corpus_entry_cid\":\"sha256:$H64\",\"parameters_cid\":\"sha256:$H64\",\"chronicle\":{\"session_id\":\"s\",\"behavior_state\":\"verified\"}}" \
    "$URL/governance/complete/" || bench_die "complete failed"
for _ in $(seq 600); do
    [ "$(scalar "SELECT count(*) FROM invoice_lines WHERE tenant_id = '$TENANT'")" = 1 ] && break
    sleep 0.1
done
[ "$(scalar "SELECT count(*) FROM invoice_lines WHERE tenant_id = '$TENANT'")" = 1 ] ||
    bench_die "the receipt was not billed"
INV=$(scalar "SELECT invoice_id FROM invoices WHERE tenant_id = '$TENANT' AND status = 'open'")

echo "== $((LINES - 1)) copies in SQL" >&2
t0=$(now)
bench_psql "$DB" <<SQL
SET session_replication_role = replica;
CREATE TEMP TABLE g AS SELECT n FROM generate_series(2, $LINES) n;
CREATE TEMP TABLE c AS SELECT * FROM crs WHERE tenant_id = '$TENANT';
CREATE TEMP TABLE cc AS SELECT c.*, g.n FROM c, g;
UPDATE cc SET sequence = n, cr_id = 'cr_' || lpad(to_hex(n), 32, '0'),
              lineage_cid = ('sha256:' || encode(sha256(convert_to('l' || n, 'UTF8')), 'hex'))::gsap_cid;
ALTER TABLE cc DROP COLUMN n;
INSERT INTO crs SELECT * FROM cc;
DROP TABLE cc;
CREATE TEMP TABLE l AS SELECT * FROM invoice_lines WHERE tenant_id = '$TENANT';
CREATE TEMP TABLE ll AS SELECT l.*, g.n FROM l, g;
UPDATE ll SET line_no = n, cr_id = 'cr_' || lpad(to_hex(n), 32, '0'), log_index = n - 1,
              lineage_cid = ('sha256:' || encode(sha256(convert_to('l' || n, 'UTF8')), 'hex'))::gsap_cid;
ALTER TABLE ll DROP COLUMN n;
INSERT INTO invoice_lines SELECT * FROM ll;
DROP TABLE ll;
INSERT INTO tlog_entries (tenant_id, idx, lineage_cid, cr_id, leaf_hash, root_hash)
    SELECT '$TENANT', n - 1, ('sha256:' || encode(sha256(convert_to('l' || n, 'UTF8')), 'hex'))::gsap_cid,
           'cr_' || lpad(to_hex(n), 32, '0'),
           sha256('\x00'::bytea || convert_to('sha256:' || encode(sha256(convert_to('l' || n, 'UTF8')), 'hex'), 'UTF8')),
           sha256(convert_to('not a real root', 'UTF8'))
    FROM g;
DELETE FROM tlog_nodes WHERE tenant_id = '$TENANT';
INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
    SELECT l.tenant_id, 1, l.idx / 2, sha256('\x01'::bytea || l.leaf_hash || r.leaf_hash)
    FROM tlog_entries l JOIN tlog_entries r ON r.tenant_id = l.tenant_id AND r.idx = l.idx + 1
    WHERE l.tenant_id = '$TENANT' AND l.idx % 2 = 0;
DO \$\$
DECLARE v_level int := 1; v_n bigint;
BEGIN
    LOOP
        INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
            SELECT l.tenant_id, v_level + 1, l.idx / 2, sha256('\x01'::bytea || l.hash || r.hash)
            FROM tlog_nodes l JOIN tlog_nodes r
                ON r.tenant_id = l.tenant_id AND r.level = l.level AND r.idx = l.idx + 1
            WHERE l.tenant_id = '$TENANT' AND l.level = v_level AND l.idx % 2 = 0;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        EXIT WHEN v_n = 0;
        v_level := v_level + 1;
    END LOOP;
END \$\$;
UPDATE tlog_heads SET size = $LINES WHERE tenant_id = '$TENANT';
UPDATE invoices SET line_count = $LINES,
       total_minor = $LINES * (SELECT total_minor FROM invoice_lines WHERE tenant_id = '$TENANT' AND line_no = 1)
    WHERE tenant_id = '$TENANT' AND invoice_id = '$INV';
ANALYZE;
SQL
echo "   copied in $(elapsed "$t0" "$(now)") s" >&2

echo "== finalizing $INV" >&2
t0=$(now)
curl -sf -o /dev/null -m "$EXPORT_LIMIT_S" -X POST -H "Authorization: Bearer $FIN_TOKEN" \
    "$URL/billing/invoices/$INV/finalize" || bench_die "finalize failed"
echo "   finalized in $(elapsed "$t0" "$(now)") s" >&2

bench_stop "$BENCH_BROKER_PID"
bench_start_broker "$DB" "$HTTP_PORT"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$BENCH_BROKER_PID/status"; }
IDLE_KB=$(rss_kb)

# measure NAME PATH: streams PATH to /dev/null, sampling the broker's RSS meanwhile.
measure() {
    local name=$1 path=$2 max=0 kb t0 t1 out=$BENCH_TMP/$1.curl
    t0=$(now)
    curl -s -o /dev/null -m "$EXPORT_LIMIT_S" -w '%{http_code} %{size_download}\n' \
        -H "Authorization: Bearer $FIN_TOKEN" "$URL$path" >"$out" &
    local cpid=$!
    BENCH_PIDS+=("$cpid")
    while kill -0 "$cpid" 2>/dev/null; do
        kb=$(rss_kb)
        ((kb > max)) && max=$kb
        sleep "$SAMPLE_S"
    done
    wait "$cpid" || bench_die "$name: curl failed"
    t1=$(now)
    read -r code bytes <"$out"
    [ "$code" = 200 ] || bench_die "$name: HTTP $code"
    echo "${name}_bytes=$bytes"
    echo "${name}_s=$(elapsed "$t0" "$t1")"
    echo "rss_mb_${name}=$(awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }')"
    eval "RSS_${name}=$max"
}

echo "lines=$LINES"
echo "rss_mb_idle=$(awk -v k="$IDLE_KB" 'BEGIN { printf "%.1f", k / 1024 }')"
echo "== GET /billing/invoices/$INV/bundle" >&2
measure bundle "/billing/invoices/$INV/bundle"
echo "== GET /billing/invoices/$INV/lines.csv" >&2
measure csv "/billing/invoices/$INV/lines.csv"
if [ "${BENCH_VERIFY:-0}" = 1 ]; then
    echo "== gsap-broker verify on the bundle" >&2
    curl -sf -o "$BENCH_TMP/bundle.json" -m "$EXPORT_LIMIT_S" -H "Authorization: Bearer $FIN_TOKEN" \
        "$URL/billing/invoices/$INV/bundle" || bench_die "bundle download failed"
    t0=$(now)
    "$BENCH_BROKER" verify "$BENCH_TMP/bundle.json" >/dev/null &
    vpid=$!
    BENCH_PIDS+=("$vpid")
    vmax=0
    while kill -0 "$vpid" 2>/dev/null; do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$vpid/status" 2>/dev/null || echo 0)
        ((${kb:-0} > vmax)) && vmax=$kb
        sleep "$SAMPLE_S"
    done
    wait "$vpid" || true # the copies are not valid receipts: verify fails them, by design
    echo "verify_s=$(elapsed "$t0" "$(now)")"
    echo "verify_rss_mb=$(awk -v k="$vmax" 'BEGIN { printf "%.1f", k / 1024 }')"
fi
max=$RSS_bundle
((RSS_csv > max)) && max=$RSS_csv
echo "rss_mb=$(awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }')"
