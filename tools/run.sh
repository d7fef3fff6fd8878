#!/usr/bin/env bash
# run.sh: builds the broker and runs it in the foreground, from any directory. With no
# GSAP_DATABASE_URL the broker starts its embedded PostgreSQL cluster under ./var of the
# repository (GSAP_DATA_DIR changes that). Arguments go to `gsap-broker serve`.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target gsap-broker
exec ./build/gsap-broker serve "$@"
