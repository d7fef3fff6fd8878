#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages that building and testing gsap-broker need, and
# only those that are missing (so it is quiet and fast when everything is there). Runs as
# root, or through sudo otherwise. A package counts as present when it is installed or
# when an installed package provides it (NodeSource's nodejs provides npm, and installing
# Debian's npm next to it would fight over the same files).
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libh2o-evloop-dev libevent-dev libjansson-dev libpq-dev libssl-dev check
    postgresql-15
    clang libclang-rt-14-dev
    curl nodejs npm python3
    prometheus # promtool: it_metrics checks /metrics, deploy/prometheus/alerts.yml and the dashboard
    debhelper lintian # tools/package.sh: the Debian package and its check
    golang-go golang-golang-x-mod-dev # tests/go/tlogcheck: Go's sumdb/note and sumdb/tlog check the transparency log
    haproxy # ha_failover (bench/ha.sh): three brokers behind a load balancer, one killed
    chromium # it_browser: the session, invoice and /verify pages in headless chromium (playwright-core)
    fonts-dejavu-core # readable text in its screenshots
)

installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' 2>/dev/null | awk '$2 == "ii" {print $1}')
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ {print $2}' | tr ',' '\n' | sed -e 's/(.*)//' -e 's/ //g' -e 's/:.*//' | sort -u)

missing=()
for p in "${packages[@]}"; do
    if ! grep -qxF "$p" <<<"$installed" && ! grep -qxF "$p" <<<"$provided"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "deps.sh: missing packages (${missing[*]}) and not root, and sudo is not installed" >&2
        exit 1
    fi
    as_root=(sudo)
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# Only promtool is wanted from the prometheus package and only the binary from haproxy: their
# services must not start (prometheus would listen on every interface). A policy-rc.d that
# refuses service starts holds for the install.
policy=/usr/sbin/policy-rc.d
hold=0
if [[ " ${missing[*]} " =~ " "(prometheus|haproxy)" " ]] && [ ! -e "$policy" ]; then
    "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    hold=1
fi
rc=0
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${missing[@]}" >/dev/null || rc=$?
if [ "$hold" = 1 ]; then
    "${as_root[@]}" rm -f "$policy"
    if [ -d /run/systemd/system ]; then
        "${as_root[@]}" systemctl disable --now prometheus haproxy >/dev/null 2>&1 || true
    fi
fi
exit "$rc"
