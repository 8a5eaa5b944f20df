#!/usr/bin/env bash
# Prints one closing line over every meson test log given: "N passed, N failed".
passed=0 failed=0 skipped=0
for b in "$@"; do
	log="$b/meson-logs/testlog.json"
	[ -f "$log" ] || continue
	p=$(grep -c '"result": "OK"' "$log" || true)
	s=$(grep -c '"result": "SKIP"' "$log" || true)
	f=$(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
