# shellcheck shell=bash
# common.sh: shared pieces of the benchmark scripts (sourced, never run). Everything started
# here is recorded and stopped by bench_cleanup, which the scripts install as their EXIT trap.
#
# Environment (all optional):
#   BENCH_SECONDS   measured seconds per run (default 10)
#   BENCH_THREADS   broker worker threads = baseline threads (default: number of cores)
#   BENCH_PG_PORT   port of the throwaway PostgreSQL (unix socket only; default 55493)
#   BENCH_FSYNC     on (default): the throwaway PostgreSQL keeps fsync, synchronous_commit and
#                   full_page_writes on, the product's durability; off: all three off, a
#                   labelled variant (never the headline figure)
#   BENCH_KEEP=1    keep the scratch directory (logs, database) under /tmp

BENCH_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
BENCH_BUILD=$BENCH_ROOT/build
BENCH_BROKER=$BENCH_BUILD/gsap-broker
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
BENCH_PG_PORT=${BENCH_PG_PORT:-55493}
BENCH_FSYNC=${BENCH_FSYNC:-on}
BENCH_TMP=
BENCH_PG_DIR=
BENCH_PIDS=()
BENCH_BROKER_PID=

bench_die() {
    echo "bench: $*" >&2
    exit 1
}

bench_check_uint() { # NAME VALUE MIN MAX
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        bench_die "$1 must be $3..$4 (got '$2')"
    fi
}

bench_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# bench_need_pkg COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is missing.
bench_need_pkg() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "bench: installing $2 (for $1)" >&2
    bench_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null ||
        { bench_as_root apt-get update -q >/dev/null &&
            bench_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; } ||
        bench_die "cannot install $2"
    command -v "$1" >/dev/null 2>&1 || bench_die "$2 installed but $1 is still missing"
}

bench_init() {
    bench_check_uint BENCH_SECONDS "$BENCH_SECONDS" 1 3600
    bench_check_uint BENCH_THREADS "$BENCH_THREADS" 1 64
    bench_check_uint BENCH_PG_PORT "$BENCH_PG_PORT" 1024 65535
    case $BENCH_FSYNC in on | off) ;; *) bench_die "BENCH_FSYNC must be on or off (got '$BENCH_FSYNC')" ;; esac
    bench_need_pkg wrk wrk
    bench_need_pkg curl curl
    bench_need_pkg psql postgresql-client-15
    bench_need_pkg /usr/lib/postgresql/15/bin/postgres postgresql-15
    BENCH_TMP=$(mktemp -d /tmp/gsap-bench.XXXXXX)
    chmod 755 "$BENCH_TMP" # the postgres user must reach the cluster directory inside
    trap bench_cleanup EXIT
    trap 'echo "bench: failed (line $LINENO): $BASH_COMMAND" >&2' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Brings build/gsap-broker up to date (the usual build of tools/test.sh; a no-op when it is),
# so a benchmark never measures a binary older than the tree.
bench_build_broker() {
    if [ -n "${GSAP_BROKER_BIN:-}" ]; then # a given binary (the test suite's, e.g. ASan)
        BENCH_BROKER=$GSAP_BROKER_BIN
        [ -x "$BENCH_BROKER" ] || bench_die "GSAP_BROKER_BIN is not executable: $BENCH_BROKER"
        return 0
    fi
    echo "bench: building the broker in $BENCH_BUILD" >&2
    cmake -S "$BENCH_ROOT" -B "$BENCH_BUILD" >/dev/null
    cmake --build "$BENCH_BUILD" -j"$(nproc)" >/dev/null
    [ -x "$BENCH_BROKER" ] || bench_die "no broker binary at $BENCH_BROKER"
}

# bench_durability: one line saying how durable the benchmark's PostgreSQL is (BENCH_FSYNC).
bench_durability() {
    if [ "$BENCH_FSYNC" = on ]; then
        echo "fsync=on synchronous_commit=on full_page_writes=on (the product's durability)"
    else
        echo "fsync=off synchronous_commit=off full_page_writes=off (VARIANT: BENCH_FSYNC=off, not durable)"
    fi
}

# bench_start_pg: a throwaway cluster (tests/pg_tmp.sh: unix socket only), durable unless
# BENCH_FSYNC=off.
bench_start_pg() {
    local durable=1
    [ "$BENCH_FSYNC" = on ] || durable=0
    BENCH_PG_DIR=$BENCH_TMP/pg
    timeout 120 env GSAP_PG_DURABLE=$durable "$BENCH_ROOT/tests/pg_tmp.sh" start "$BENCH_PG_DIR" \
        "$BENCH_PG_PORT" >/dev/null ||
        { BENCH_PG_DIR=; bench_die "the throwaway PostgreSQL did not start (port $BENCH_PG_PORT busy?)"; }
}

bench_conninfo() { # DBNAME
    echo "host=$BENCH_PG_DIR port=$BENCH_PG_PORT user=postgres dbname=$1"
}

bench_psql() { # DBNAME psql-args...
    local db=$1
    shift
    timeout 600 psql -X -q -v ON_ERROR_STOP=1 -h "$BENCH_PG_DIR" -p "$BENCH_PG_PORT" -U postgres \
        -d "$db" "$@"
}

bench_port_free() { # PORT
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bench_wait_http URL SECONDS: until URL answers 200.
bench_wait_http() {
    local url=$1 deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# bench_broker_env DBNAME PORT: the broker's environment, one NAME=value per line. The
# benchmarks drive one key at thousands of requests per second: its rate limit is lifted to
# the maximum so that they measure the request path (bucket included), not the limit.
bench_broker_env() {
    printf '%s\n' "GSAP_DATABASE_URL=$(bench_conninfo "$1")" "GSAP_LISTEN=127.0.0.1:$2" \
        "GSAP_DATA_DIR=$BENCH_TMP/data" "GSAP_THREADS=$BENCH_THREADS" \
        "GSAP_RATE_PER_S=1000000" "GSAP_RATE_BURST=1000000"
}

# bench_broker DBNAME PORT ARGS...: runs the broker binary (a CLI command) with that environment.
bench_broker() {
    local db=$1 port=$2 envs=()
    shift 2
    mapfile -t envs < <(bench_broker_env "$db" "$port")
    timeout 120 env "${envs[@]}" "$BENCH_BROKER" "$@"
}

# bench_start_broker DBNAME PORT: serves in the background; logs to $BENCH_TMP/broker.log.
bench_start_broker() {
    local db=$1 port=$2 envs=()
    bench_port_free "$port" || bench_die "port $port is in use"
    mkdir -p "$BENCH_TMP/data"
    mapfile -t envs < <(bench_broker_env "$db" "$port")
    env "${envs[@]}" "$BENCH_BROKER" serve 2>>"$BENCH_TMP/broker.log" >/dev/null &
    BENCH_BROKER_PID=$!
    BENCH_PIDS+=("$BENCH_BROKER_PID")
    if ! bench_wait_http "http://127.0.0.1:$port/readyz" 60; then
        tail -n 20 "$BENCH_TMP/broker.log" >&2
        bench_die "the broker did not become ready on 127.0.0.1:$port"
    fi
}

# bench_stop PID: SIGTERM, up to 30 s, then SIGKILL (only processes this script started).
bench_stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${BENCH_PIDS[@]}"; do
        bench_stop "$pid"
    done
    if [ -n "$BENCH_PG_DIR" ]; then
        timeout 60 "$BENCH_ROOT/tests/pg_tmp.sh" stop "$BENCH_PG_DIR" >/dev/null 2>&1 || true
    fi
    if [ -n "$BENCH_TMP" ]; then
        if [ "$rc" != 0 ] && [ -f "$BENCH_TMP/broker.log" ]; then
            echo "bench: last lines of the broker log:" >&2
            tail -n 5 "$BENCH_TMP/broker.log" >&2
        fi
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            echo "bench: kept $BENCH_TMP" >&2
        else
            rm -rf "$BENCH_TMP"
        fi
    fi
    exit "$rc"
}

# bench_wrk OUT ARGS...: runs wrk (bounded), keeps its report in OUT, prints it to stderr.
bench_wrk() {
    local out=$1
    shift
    timeout $((BENCH_SECONDS + 60)) wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; bench_die "wrk failed"; }
    sed 's/^/    /' "$out" >&2
}

bench_rps() { # wrk report -> requests/s
    awk '/^Requests\/sec:/ { print $2 }' "$1"
}

bench_non2xx() { # wrk report -> non-2xx/3xx responses + socket errors
    awk '/Non-2xx or 3xx responses:/ { n += $NF }
         /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
         END { print n + 0 }' "$1"
}

# bench_grouping PORT: the broker's group-commit counters (/metrics), as "G groups, B batches
# (mean M per transaction)", or "n/a".
bench_grouping() {
    curl -s -m 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '
        /^gsap_db_groups_total / { g = $2 } /^gsap_db_grouped_batches_total / { b = $2 }
        END { if (g > 0) printf "%d groups, %d batches (mean %.1f per transaction)", g, b, b / g;
              else print "n/a" }'
}

bench_ratio() { # A B -> A/B with two decimals
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# bench_cr_values: sets CMD CORPUS PARAMS OUTH CR_CID CH_CID STARTED COMPLETED, ISSUE_BODY and
# CR_BODY (with CTX where the context id goes): the shapes of tests/it_gov.c. Digits only
# after "sha256:": pgbench would read ":abc..." in a script as a variable.
bench_cr_values() {
    local h
    h() { printf 'sha256:%s' "$(printf "%064d" 0 | tr 0 "$1")"; }
    CMD=$(h 1) CORPUS=$(h 2) PARAMS=$(h 3) OUTH=$(h 4) CR_CID=$(h 5) CH_CID=$(h 6)
    STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    COMPLETED=$(date -u -d '+1 second' +%Y-%m-%dT%H:%M:%SZ)
    ISSUE_BODY="{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"$CMD\",\
\"corpus_entry_cid\":\"$CORPUS\",\"parameters_cid\":\"$PARAMS\"},\"ttl_seconds\":900}"
    CR_BODY="{\"context_id\":\"CTX\",\"outcome\":\"completed\",\"exit_code\":0,\
\"started_at\":\"$STARTED\",\"completed_at\":\"$COMPLETED\",\"command_hash\":\"$CMD\",\
\"corpus_entry_cid\":\"$CORPUS\",\"parameters_cid\":\"$PARAMS\",\"stdout_hash\":\"$OUTH\",\
\"output_bytes\":12,\"chronicle\":{\"session_id\":\"chr-1\",\"behavior_state\":\"verified\",\
\"merkle_root\":\"$OUTH\"}}"
}

# bench_copy_acs DBNAME TENANT CONTEXT_ID COUNT MARK: COUNT copies of one issued AC with
# context ids ctx_<32 hex of 1..COUNT> (authorized, unexpired, description MARK), each
# open to one CR: fresh ACs in bulk without signing each one through the API.
bench_copy_acs() {
    bench_psql "$1" <<SQL
INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, capability_set,
                 command_hash, corpus_entry_cid, parameters_cid, environment_commitment,
                 description, ttl_seconds, issued_at, expires_at, issuer_key_id, billing_account,
                 ac, ac_cid)
SELECT a.tenant_id, 'ctx_' || lpad(to_hex(g::bigint), 32, '0'), 'authorized', a.accord_name,
       a.session_mode, a.capability_set, a.command_hash, a.corpus_entry_cid, a.parameters_cid,
       a.environment_commitment, '$5', a.ttl_seconds, a.issued_at, a.expires_at,
       a.issuer_key_id, a.billing_account, a.ac, a.ac_cid
FROM (SELECT * FROM acs WHERE tenant_id = '$2' AND context_id = '$3') a,
     generate_series(1, $4) g;
SQL
}

# bench_rss_kb PID: the resident set of PID in KiB (0 when it is gone).
bench_rss_kb() {
    awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# bench_cpu_ticks PID...: the CPU time (user + system, clock ticks) the given processes have
# used so far, summed.
bench_cpu_ticks() {
    local p t=0 v
    for p in "$@"; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo "$t"
}

# bench_pg_pids: the throwaway cluster's postmaster and its children (backends, walwriter...).
bench_pg_pids() {
    local pm
    pm=$(head -n1 "$BENCH_PG_DIR/data/postmaster.pid" 2>/dev/null) || return 0
    echo "$pm"
    awk -v pm="$pm" '{ sub(/^.*\) /, ""); if ($2 == pm) print FILENAME }' /proc/[0-9]*/stat 2>/dev/null |
        sed 's|/proc/\([0-9]*\)/stat|\1|'
}

# bench_issue_acs URL TOKEN COUNT CONNS OUT: COUNT ACs issued through POST /governance/authorize/
# (wrk + bench/issue.lua, ISSUE_BODY, at most 600 s); their context ids in OUT, one a line.
# Sets BENCH_ISSUED (how many) and BENCH_ISSUE_S (seconds taken); dies with fewer than COUNT.
bench_issue_acs() {
    local url=$1 token=$2 count=$3 conns=$4 out=$5 limit=600 t0 pid have=0
    t0=$(date +%s.%N)
    timeout $((limit + 30)) wrk -t1 -c"$conns" -d"${limit}s" -s "$BENCH_ROOT/bench/issue.lua" \
        "$url/governance/authorize/" -- "$token" "$out" "$ISSUE_BODY" >"$BENCH_TMP/wrk-issue.txt" 2>&1 &
    pid=$!
    BENCH_PIDS+=("$pid")
    while kill -0 "$pid" 2>/dev/null; do
        have=$({ cat "$out".* 2>/dev/null || true; } | wc -l)
        ((have >= count)) && break
        sleep 0.2
    done
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    BENCH_ISSUE_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    cat "$out".* >"$out"
    BENCH_ISSUED=$(wc -l <"$out")
    ((BENCH_ISSUED >= count)) ||
        { cat "$BENCH_TMP/wrk-issue.txt" >&2; bench_die "only $BENCH_ISSUED of $count ACs were issued"; }
}

# bench_free_port: a TCP port of 127.0.0.1 nobody listens on now (the kernel's choice).
bench_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_cc OUT SRC [FLAGS...]: builds a small C program of bench/ (a baseline server, a load
# generator) into OUT with cc -O2, when OUT is missing or older than SRC.
bench_cc() {
    local out=$1 src=$2
    shift 2
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        mkdir -p "$(dirname "$out")"
        cc -std=gnu11 -O2 -Wall -Wextra -o "$out" "$src" "$@" || bench_die "cannot build $src"
    fi
}

# bench_issue_ac URL TOKEN: issues one AC through the API (ISSUE_BODY); prints its context id.
bench_issue_ac() {
    local ctx
    ctx=$(curl -sS -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        -d "$ISSUE_BODY" "$1/governance/authorize/" |
        sed -n 's/.*"context_id": *"\(ctx_[0-9a-f]*\)".*/\1/p')
    [ -n "$ctx" ] || bench_die "could not issue an AC"
    echo "$ctx"
}

# bench_warmup_crs URL TOKEN IDS SECONDS CONNS: wrk POSTs one CR (CR_BODY) per fresh AC of the
# file IDS for SECONDS from CONNS connections (bench/complete.lua); the report in
# BENCH_TMP/wrk-warmup.txt. The benchmarks then analyze, so they start from non-empty,
# analyzed tables as a running broker does.
bench_warmup_crs() {
    local url=$1 token=$2 ids=$3 seconds=$4 conns=$5
    timeout $((seconds + 60)) wrk -t1 -c"$conns" -d"${seconds}s" -s "$BENCH_ROOT/bench/complete.lua" \
        "$url/governance/complete/" -- "$token" "$ids" 1 "$CR_BODY" >"$BENCH_TMP/wrk-warmup.txt" 2>&1 ||
        { cat "$BENCH_TMP/wrk-warmup.txt" >&2; bench_die "the warm-up failed"; }
}
