#!/bin/sh
# Builds the libFuzzer targets with clang (build dir: $FUZZ_BUILD_DIR, default build-fuzz) and
# runs each one for FUZZ_SECONDS seconds (default 30) from the seed corpus in
# tests/fuzz/corpus/<target>/, with the dictionary tests/fuzz/<target>.dict when there is one.
# New interesting inputs go to a scratch directory, so the committed corpus stays small; a
# crash, leak, sanitizer report or an input slower than FUZZ_TIMEOUT seconds (default 10)
# leaves its input as crash-*, leak-* or timeout-* in the current directory and makes the
# script fail. docs/fuzzing.md lists the targets and how to run them longer.
#
#   scripts/fuzz.sh                 # every target, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh fuzz_chunked
set -eu

cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
TIMEOUT=${FUZZ_TIMEOUT:-10}
TARGETS=${*:-fuzz_request fuzz_chunked fuzz_manifest fuzz_contract fuzz_route fuzz_json_body}

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz.sh: clang is missing: apt-get install clang libclang-rt-14-dev" >&2
	exit 1
fi
if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" -Dfuzz=true -Dbuildtype=debugoptimized >/dev/null
fi
for t in $TARGETS; do
	ninja -C "$BUILD" "tests/fuzz/$t" >/dev/null
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM
status=0
for t in $TARGETS; do
	seeds=tests/fuzz/corpus/${t#fuzz_}
	dict=tests/fuzz/${t#fuzz_}.dict
	set --
	[ -f "$dict" ] && set -- -dict="$dict"
	mkdir -p "$scratch/$t"
	echo "== $t: $SECONDS_EACH s from $(ls "$seeds" | wc -l) seeds"
	if ! "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -max_len=16384 -timeout="$TIMEOUT" \
		-print_final_stats=1 "$@" "$scratch/$t" "$seeds" 2>"$scratch/$t.log"; then
		tail -n 60 "$scratch/$t.log" >&2
		echo "== $t: FAILED (crash input saved as crash-* in $(pwd))" >&2
		status=1
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$scratch/$t.log" | sed 's/^/   /'
		grep -E '^#[0-9]+ *DONE' "$scratch/$t.log" | tail -n 1 | sed 's/^/   /'
	fi
done
exit $status
