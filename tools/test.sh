#!/usr/bin/env bash
# test.sh: the full test suite, from any directory, on a fresh Debian 12 machine.
#
#   1. installs missing packages (tools/deps.sh) and the Node.js test oracles (tests/npm);
#   2. builds build/ and runs ctest there;
#   3. builds build-asan/ (ASan + UBSan, its own test PostgreSQL port) and runs ctest there
#      with leak detection on and every sanitizer report fatal;
#   4. builds the libFuzzer targets in build-fuzz/ (clang) and runs each one for a bounded
#      time on a copy of its seed corpus (crashes land in build-fuzz/artifacts/);
#   5. clones HEAD into a fresh 0700 directory with nothing beside it and runs the README's
#      two commands there (tools/clone_check.sh).
#
# Prints "N passed, M failed" at the end (one count per ctest run and per fuzz target; a
# failed build or setup step counts as a failure too) and exits nonzero when M > 0.
#
# Options: --no-asan, --no-fuzz, --no-clone (quicker local runs; CI runs everything).
# Environment: GSAP_FUZZ_SECONDS (default 20) per fuzz target.
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
root=$PWD

run_asan=1
run_fuzz=1
run_clone=1
[ -n "${GSAP_IN_CLONE_CHECK:-}" ] && run_clone=0 # already the clone: no clone of the clone
for arg in "$@"; do
    case $arg in
    --no-asan) run_asan=0 ;;
    --no-fuzz) run_fuzz=0 ;;
    --no-clone) run_clone=0 ;;
    *)
        echo "usage: tools/test.sh [--no-asan] [--no-fuzz] [--no-clone]" >&2
        exit 2
        ;;
    esac
done

fuzz_seconds=${GSAP_FUZZ_SECONDS:-20}
jobs=$(nproc)
passed=0
failed=0
failures=()

pass() {
    passed=$((passed + 1))
    echo "--- PASS: $1"
}

fail() {
    failed=$((failed + 1))
    failures+=("$1")
    echo "--- FAIL: $1"
}

section() {
    printf '\n=== %s\n' "$*"
}

# configure_build DIR CMAKE-ARGS...: configures and builds everything in DIR.
configure_build() {
    local dir=$1
    shift
    mkdir -p "$dir"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir/configure.log" 2>&1 ||
        { cat "$dir/configure.log"; return 1; }
    cmake --build "$dir" -j"$jobs"
}

section "dependencies"
if ! tools/deps.sh; then
    echo "test.sh: installing dependencies failed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
lock=tests/npm/package-lock.json
if [ ! -f tests/npm/node_modules/.package-lock.json ] ||
    [ "$lock" -nt tests/npm/node_modules/.package-lock.json ]; then
    if (cd tests/npm && npm ci --no-audit --no-fund --loglevel=error); then
        echo "npm test oracles installed"
    else
        fail "npm ci (tests/npm)"
    fi
fi

section "build (RelWithDebInfo)"
if configure_build build -DGSAP_CK_MULT=1; then
    section "ctest build"
    if ctest --test-dir build --output-on-failure -j2; then pass "ctest build"; else fail "ctest build"; fi
else
    fail "ctest build (build failed)"
fi

if [ "$run_asan" = 1 ]; then
    section "build-asan (AddressSanitizer + UndefinedBehaviorSanitizer)"
    if configure_build build-asan -DGSAP_SANITIZE=ON -DGSAP_PG_PORT=55433 -DGSAP_CK_MULT=3; then
        section "ctest build-asan"
        lsan=detect_leaks=1
        [ -f tests/lsan.supp ] && lsan="suppressions=$root/tests/lsan.supp:print_suppressions=0"
        if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            LSAN_OPTIONS=$lsan \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            ctest --test-dir build-asan --output-on-failure -j2; then
            pass "ctest build-asan"
        else
            fail "ctest build-asan"
        fi
    else
        fail "ctest build-asan (build failed)"
    fi
fi

if [ "$run_fuzz" = 1 ]; then
    section "build-fuzz (clang, libFuzzer)"
    shopt -s nullglob
    targets=()
    for src in fuzz/fuzz_*.c; do
        targets+=("$(basename "$src" .c)")
    done
    if [ ${#targets[@]} -eq 0 ]; then
        echo "no fuzz targets (fuzz/fuzz_*.c)"
    elif ! mkdir -p build-fuzz || ! CC=clang cmake -S . -B build-fuzz -DGSAP_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >build-fuzz/configure.log 2>&1; then
        cat build-fuzz/configure.log
        fail "fuzz build (configure failed)"
    elif ! cmake --build build-fuzz -j"$jobs" --target fuzzers; then
        fail "fuzz build"
    else
        mkdir -p build-fuzz/artifacts
        for t in "${targets[@]}"; do
            section "fuzz $t (${fuzz_seconds} s)"
            seeds=fuzz/corpus/${t#fuzz_}
            work=build-fuzz/corpus-run/$t
            rm -rf "$work"
            mkdir -p "$work"
            if [ -d "$seeds" ]; then
                cp -R "$seeds"/. "$work"/
            else
                echo "warning: $t has no seed corpus ($seeds)"
            fi
            dict=()
            [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
            if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                "build-fuzz/fuzz/$t" -max_total_time="$fuzz_seconds" -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="build-fuzz/artifacts/$t-" "${dict[@]}" "$work" \
                >"build-fuzz/$t.log" 2>&1; then
                grep -E '^stat::number_of_executed_units|^Done' "build-fuzz/$t.log" | tr '\n' ' '
                echo
                pass "fuzz $t"
            else
                tail -n 60 "build-fuzz/$t.log"
                fail "fuzz $t (log: build-fuzz/$t.log)"
            fi
        done
    fi
    shopt -u nullglob
fi

if [ "$run_clone" = 1 ]; then
    section "fresh clone (0700, nothing beside it): tools/run.sh and tools/test.sh"
    if tools/clone_check.sh; then pass "fresh clone"; else fail "fresh clone"; fi
fi

section "summary"
for f in "${failures[@]}"; do
    echo "failed: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
