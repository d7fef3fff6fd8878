#!/usr/bin/env bash
# package.sh: builds the Debian package of this tree (debian/, debhelper) and checks it with
# lintian. Writes build/deb/gsap-broker_<version>_<arch>.deb (and its .changes, .buildinfo)
# and the lintian report build/deb/lintian.txt; exits non-zero when the build fails or lintian
# reports an error.
#
# The build runs on a copy of the tree as git would commit it (tracked and untracked files,
# not ignored ones such as build/), so a build directory or local data never enters the
# package. The commit is looked up here and handed to the build (GSAP_BUILD_COMMIT), since
# the copy is no checkout. Needs: debhelper, dpkg-dev, lintian and the build dependencies
# (tools/deps.sh installs them).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
out=$src/build/deb
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tree=$out/gsap-broker-$version

commit=unknown
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    commit=$(git -C "$src" describe --always --dirty --abbrev=12)
fi

rm -rf "$out"
mkdir -p "$tree"
if [ "$commit" != unknown ]; then
    # files deleted in the work tree but still in the index are skipped by --ignore-failed-read
    git -C "$src" ls-files -z --cached --others --exclude-standard |
        tar -C "$src" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$tree" -xf -
else
    tar -C "$src" --exclude='./build*' --exclude=./var --exclude=node_modules -cf - . |
        tar -C "$tree" -xf -
fi

echo "package.sh: building gsap-broker $version (commit $commit) in $tree" >&2
(cd "$tree" && GSAP_BUILD_COMMIT=$commit DEB_BUILD_OPTIONS="nocheck parallel=2" \
    dpkg-buildpackage --build=binary --no-sign >"$out/build.log" 2>&1) || {
    tail -40 "$out/build.log" >&2
    echo "package.sh: the build failed (log: $out/build.log)" >&2
    exit 1
}

deb=$(ls "$out"/gsap-broker_"$version"_*.deb)
# --fail-on error: warnings and informational tags are reported, not fatal
if ! lintian --fail-on error --display-info "$deb" >"$out/lintian.txt" 2>&1; then
    cat "$out/lintian.txt" >&2
    echo "package.sh: lintian reports errors" >&2
    exit 1
fi
cat "$out/lintian.txt" >&2
echo "$deb"
