#!/usr/bin/env bash
# package_test.sh: builds the Debian package (tools/package.sh: debhelper, lintian without
# errors), installs it on this machine with dpkg -i, checks the unit with systemd-analyze
# verify, and runs the installed binary as the package's system user on the embedded default
# cluster until /readyz answers 200; then stops it and removes the package (dpkg -r: the
# system user, /etc/default/gsap-broker and /var/lib/gsap-broker/data stay, as Debian does;
# GSAP_PKG_KEEP=1 keeps the package installed). Root only: it installs system-wide, so it is
# not part of the normal suite (ctest -R pkg_deb after configuring with -DGSAP_PKG_TEST=ON).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
port=${GSAP_PKG_PORT:-18931}
unit=/lib/systemd/system/gsap-broker.service
fail() { echo "package_test: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
deb=$("$src/tools/package.sh" | tail -1)
[ -f "$deb" ] || fail "no package built"

dpkg -i "$deb" >/dev/null
status=$(dpkg-query -W -f='${db:Status-Abbrev}' gsap-broker)
[ "$status" = "ii " ] || fail "gsap-broker is not installed ($status)"

# the unit: systemd's own checker, silent when it finds nothing
out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
for key in Type=notify User=gsap-broker StateDirectory=gsap-broker ProtectSystem=strict \
           NoNewPrivileges=yes ExecReload=; do
    grep -q "^$key" "$unit" || fail "the unit has no $key"
done

# the files and the user
[ -x /usr/bin/gsap-broker ] || fail "no /usr/bin/gsap-broker"
[ -f /usr/share/man/man1/gsap-broker.1.gz ] || fail "no man page"
man -l /usr/share/man/man1/gsap-broker.1.gz >/dev/null 2>&1 || fail "the man page does not render"
[ -d /usr/share/gsap-broker/migrations ] || fail "no migrations"
grep -qx /etc/default/gsap-broker /var/lib/dpkg/info/gsap-broker.conffiles ||
    fail "/etc/default/gsap-broker is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd gsap-broker) || fail "no user gsap-broker"
[ "$uid" -lt 1000 ] || fail "gsap-broker is not a system user (uid $uid)"
case "$shell" in */nologin | */false) ;; *) fail "gsap-broker has a login shell ($shell)" ;; esac
[ "$(stat -c '%U %a' /var/lib/gsap-broker/data)" = "gsap-broker 700" ] ||
    fail "/var/lib/gsap-broker/data is not the user's, mode 0700"
# the parent stays what a broker run as root wants for its clusters: root's, not writable
[ "$(stat -c '%U' /var/lib/gsap-broker)" = root ] || fail "/var/lib/gsap-broker is not root's"

# the settings of the unit: the default file's, the data directory, this test's port
as_user() {
    # shellcheck disable=SC2046
    runuser -u gsap-broker -- env -i PATH=/usr/bin:/bin GSAP_DATA_DIR=/var/lib/gsap-broker/data \
        $(grep -E '^[A-Z_]+=' /etc/default/gsap-broker || true) GSAP_LISTEN=127.0.0.1:$port "$@"
}
(cd /var/lib/gsap-broker/data && as_user /usr/bin/gsap-broker config check >/dev/null) ||
    fail "config check refuses the packaged settings"
schema=$(as_user /usr/bin/gsap-broker version | sed -n 's/.*schema \([0-9]*\))$/\1/p')

log=$(mktemp)
(cd /var/lib/gsap-broker/data && exec runuser -u gsap-broker -- env -i PATH=/usr/bin:/bin \
    GSAP_DATA_DIR=/var/lib/gsap-broker/data GSAP_LISTEN=127.0.0.1:$port \
    /usr/bin/gsap-broker serve) >"$log" 2>&1 &
runner=$!
ready=""
for _ in $(seq 1 300); do
    ready=$(curl -sf "http://127.0.0.1:$port/readyz" || true)
    [ -n "$ready" ] && break
    kill -0 "$runner" 2>/dev/null || break
    sleep 0.2
done
broker=$(pgrep -u gsap-broker -xf "/usr/bin/gsap-broker serve" || true)
[ -n "$broker" ] && kill -TERM "$broker"
wait "$runner" || fail "the broker did not stop cleanly: $(tail -5 "$log")"
[ "$ready" = "{\"status\":\"ready\",\"migrations\":$schema}" ] ||
    fail "/readyz of the packaged broker: '$ready' (log: $(tail -5 "$log"))"
[ -n "$broker" ] || fail "the broker did not run as gsap-broker"
grep -q '"msg":"embedded cluster"' "$log" || fail "the broker did not use the embedded cluster"
rm -f "$log"

if [ -z "${GSAP_PKG_KEEP:-}" ]; then
    dpkg -r gsap-broker >/dev/null
fi
echo "package_test: ok ($deb)"
