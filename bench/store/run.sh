#!/bin/sh
# Builds and runs the store benchmark on both drivers in one run: SQLite (a file in a temporary
# directory, WAL, synchronous=FULL) and PostgreSQL (a throwaway local cluster started by
# tests/support/pg-cluster.sh on 127.0.0.1:35432, fsync on). About 20 s.
# Usage: bench/store/run.sh [BUILD_DIR] [--seconds S]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
[ -d "$build" ] || meson setup "$build" "$root"
ninja -C "$build" bench/store/store-bench >/dev/null
dir=$(mktemp -d /tmp/sluice-bench-store.XXXXXX)
trap 'rm -rf "$dir"' EXIT
SLUICE_PG_DURABLE=1 "$root/tests/support/pg-cluster.sh" run -- \
	"$build/bench/store/store-bench" "$@" "sqlite:$dir/bench.db" \
	"postgresql://sluice@127.0.0.1:35432/sluice"
