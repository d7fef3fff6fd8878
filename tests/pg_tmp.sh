#!/bin/sh
# pg_tmp.sh start|stop|resume DIR PORT: a throwaway PostgreSQL 15 cluster for the test suite, on a
# unix socket in DIR only, with durability off (never do this for real data).
# GSAP_PG_DURABLE=1 (the benchmarks, bench/common.sh): fsync, synchronous_commit and
# full_page_writes stay on, as in the product's embedded cluster, so that what is measured is
# what a deployment gets; the tests keep them off for speed.
set -eu
cmd=$1 dir=$2 port=${3:-55432}
PGBIN=${GSAP_PGBIN:-/usr/lib/postgresql/15/bin}
if [ "${GSAP_PG_DURABLE:-0}" = 1 ]; then
    durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
else
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
start)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    # a fresh directory; mkdir (not -p) fails rather than reuse one that appeared meanwhile
    rm -rf "$dir"; mkdir -m 0700 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log"
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses='' $durability -c max_connections=300" start
    ;;
stop)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop || true
    # the suite's clusters live under /tmp: leave nothing behind unless asked to
    [ -n "${GSAP_TEST_KEEP:-}" ] || case $dir in /tmp/gsap-pgtest.*) rm -rf "$dir" ;; esac
    ;;
resume)
    # start an existing cluster again (after stop), keeping its data
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses='' $durability -c max_connections=300" start
    ;;
*) echo "usage: pg_tmp.sh start|stop|resume DIR [PORT]" >&2; exit 2 ;;
esac
