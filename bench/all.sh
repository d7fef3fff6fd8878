#!/usr/bin/env bash
# all.sh: runs every benchmark in bench/ one after the other and writes docs/PERFORMANCE.md:
# the machine, the commit, and for each benchmark the command that ran it and everything it
# printed on stdout (its figures and its ratio=/p99_ms=/rss_mb= lines). One at a time, on an
# otherwise quiet machine: each benchmark's baseline runs in the same invocation, so a ratio
# survives a slow machine better than an absolute figure, but neither survives another load.
#
#   bench/all.sh [NAME ...]      (default: every bench/*.sh but common.sh and all.sh)
#
# Environment: BENCH_SECONDS (default 10) and the rest of bench/common.sh, passed through.
# BENCH_OUT: where to write (default docs/PERFORMANCE.md). BENCH_EXTRA: a file whose text is
# appended as a last section (a separate, longer run, e.g. export_rss.sh with 1,000,000 lines).
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
out=${BENCH_OUT:-$root/docs/PERFORMANCE.md}
export BENCH_SECONDS=${BENCH_SECONDS:-10}
# The order the figures read best in; any other script in bench/ runs after them.
order=(cr_rate ac_rate latency lag session_rate export_rss get_rate ha)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for n in "${order[@]}"; do
        [ -x "$root/bench/$n.sh" ] && names+=("$n")
    done
    for f in "$root"/bench/*.sh; do
        n=$(basename "$f" .sh)
        case " common all ${order[*]} " in *" $n "*) continue ;; esac
        names+=("$n")
    done
fi

tmp=$(mktemp -d /tmp/gsap-bench-all.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=()
for n in "${names[@]}"; do
    [ -x "$root/bench/$n.sh" ] || { echo "all.sh: no bench/$n.sh" >&2; exit 2; }
    echo "== bench/$n.sh (BENCH_SECONDS=$BENCH_SECONDS)" >&2
    start=$(date +%s)
    if "$root/bench/$n.sh" >"$tmp/$n.out" 2>"$tmp/$n.err"; then
        echo "   done in $(($(date +%s) - start)) s" >&2
    else
        echo "   FAILED (exit $?); its last lines:" >&2
        tail -n 5 "$tmp/$n.err" >&2
        failed+=("$n")
    fi
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
pg=$(/usr/lib/postgresql/15/bin/postgres --version 2>/dev/null || echo "PostgreSQL 15")
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
{
    echo "# Performance"
    echo
    echo "Written by \`bench/all.sh\` on $(date -u +%Y-%m-%d) from commit \`$commit\`; every figure"
    echo "below is what the named script printed in that run. Run it again on your own machine:"
    echo "the ratios (broker against its baseline, measured in the same invocation) are what to"
    echo "compare, not the absolute rates."
    echo
    echo "Machine: $(nproc) cores ($cpu), $mem, $(uname -sr), $pg. Load generators (wrk,"
    echo "pgbench, node) run on the same machine as the broker and PostgreSQL and compete with them"
    echo "for the same cores."
    echo
    echo "| benchmark | result line |"
    echo "|---|---|"
    for n in "${names[@]}"; do
        last=$(grep -E '^(ratio|p99_ms|page_p99_ms|rss_mb|lost)=' "$tmp/$n.out" 2>/dev/null | tr '\n' ' ' || true)
        case " ${failed[*]} " in *" $n "*) last="FAILED" ;; esac
        echo "| \`bench/$n.sh\` | \`${last:-see below}\` |"
    done
    for n in "${names[@]}"; do
        echo
        echo "## bench/$n.sh"
        echo
        sed -n '2,/^[^#]/p' "$root/bench/$n.sh" | sed -n 's/^# \{0,1\}//p' | sed '/^$/q' | head -n 8
        echo
        echo "Command: \`BENCH_SECONDS=$BENCH_SECONDS bench/$n.sh\`"
        echo
        echo '```'
        if case " ${failed[*]} " in *" $n "*) true ;; *) false ;; esac; then
            echo "FAILED; the last lines it printed on stderr:"
            tail -n 10 "$tmp/$n.err"
        else
            cat "$tmp/$n.out"
        fi
        echo '```'
    done
    if [ -n "${BENCH_EXTRA:-}" ]; then
        echo
        cat "$BENCH_EXTRA"
    fi
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "all.sh: wrote $out" >&2
[ ${#failed[@]} -eq 0 ] || { echo "all.sh: failed: ${failed[*]}" >&2; exit 1; }
