#!/usr/bin/env bash
# clone_check.sh: the README's two commands, as a new user meets them. Clones this repository
# (its committed HEAD) into a fresh 0700 directory with nothing beside it — no ../shared, a
# parent that the postgres user cannot enter, like a clone in /root — then
#   1. runs tools/run.sh there until /readyz answers 200, sends SIGTERM, and expects exit 0;
#   2. runs tools/test.sh --no-asan --no-fuzz there (the sanitizer and fuzz stages build the
#      same tree with other flags; what a clone's location can break, the normal stage meets).
# Removes everything it made, including the embedded cluster the run put outside the clone.
# Run by tools/test.sh as its last stage; exits nonzero when either command fails.
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
src=$PWD
readonly READY_TIMEOUT_S=900 # the run command builds the broker first
readonly STOP_TIMEOUT_S=120

if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "clone_check: note: uncommitted changes are not in the clone (it checks HEAD)"
fi

top=$(mktemp -d) || exit 1
logs=$(mktemp -d) || exit 1
chmod 0700 "$top"
clone=$top/gsap-broker
broker=
cluster=
cleanup() {
    if [ -n "$broker" ] && kill -0 "$broker" 2>/dev/null; then
        kill -TERM "$broker" 2>/dev/null
        sleep 5
        kill -KILL "$broker" 2>/dev/null
    fi
    case $cluster in /var/lib/gsap-broker-clusters/pg-*) rm -rf "$cluster" ;; esac
    rm -rf "$top" "$logs"
}
trap cleanup EXIT

git clone -q "$src" "$clone" || { echo "clone_check: git clone failed" >&2; exit 1; }
cd "$clone" || exit 1
[ ! -e ../shared ] || { echo "clone_check: ../shared exists beside the clone" >&2; exit 1; }

# a free port on 127.0.0.1 for the run command
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "clone_check: tools/run.sh in $clone (GSAP_LISTEN=127.0.0.1:$port)"
GSAP_LISTEN=127.0.0.1:$port tools/run.sh >"$logs/run.log" 2>&1 &
broker=$!
ready=0
for ((i = 0; i < READY_TIMEOUT_S; i++)); do
    if ! kill -0 "$broker" 2>/dev/null; then
        break
    fi
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; then
        ready=1
        break
    fi
    sleep 1
done
cluster=$(sed -n 's/.*"msg":"embedded cluster","cluster_dir":"\([^"]*\)".*/\1/p' "$logs/run.log" | head -n 1)
if [ "$ready" != 1 ]; then
    tail -n 40 "$logs/run.log"
    echo "clone_check: tools/run.sh did not answer /readyz with 200" >&2
    exit 1
fi
echo "clone_check: /readyz 200; embedded cluster in ${cluster:-?}"
kill -TERM "$broker"
rc=
for ((i = 0; i < STOP_TIMEOUT_S; i++)); do
    if ! kill -0 "$broker" 2>/dev/null; then
        wait "$broker"
        rc=$?
        break
    fi
    sleep 1
done
broker=
if [ "$rc" != 0 ]; then
    tail -n 40 "$logs/run.log"
    echo "clone_check: tools/run.sh did not exit 0 after SIGTERM (status ${rc:-still running})" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ] && [ "$(stat -c %a "$top")" != 700 ]; then
    echo "clone_check: the run changed the mode of the clone's parent" >&2
    exit 1
fi
echo "clone_check: tools/run.sh stopped with exit 0"

echo "clone_check: tools/test.sh --no-asan --no-fuzz in $clone"
if ! GSAP_IN_CLONE_CHECK=1 tools/test.sh --no-asan --no-fuzz >"$logs/test.log" 2>&1; then
    tail -n 80 "$logs/test.log"
    echo "clone_check: tools/test.sh failed in the clone" >&2
    exit 1
fi
tail -n 1 "$logs/test.log"
echo "clone_check: both commands succeeded"
