#!/bin/sh
# Builds and runs the verdicts benchmark (about a minute on one core for 1,000 runs).
# Usage: bench/verdicts/run.sh [BUILD_DIR] [--runs N] [--seed S]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
[ -d "$build" ] || meson setup "$build" "$root"
ninja -C "$build" bench/verdicts/verdicts >/dev/null
exec "$build/bench/verdicts/verdicts" "$@"
