#!/usr/bin/env bash
# The sluice demo (make demo): a control plane on a temporary data directory, the example
# services in two regions under continuous load, a good release promoted with zero failed
# requests, a bad one rolled back by itself, the compatibility gate refusing an unsafe release
# and planning a safe order. Leaves no process behind.
set -euo pipefail
START=$(date +%s)
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
S=$ROOT/$BUILD/src/sluice
EX=$ROOT/$BUILD/examples
[ -x "$S" ] || { echo "demo: $S not built (run make build)" >&2; exit 2; }

D=$(mktemp -d /tmp/sluice-demo.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:17070
export SLUICE_DATA="$D"  # the CLI reads the admin token the server writes there
LOADS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	set +e
	for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null; done
	if curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	fi
	# anything still running from this demo's data directory is a bug: say so, then stop it
	left=$(pgrep -f "$D" || true)
	if [ -n "$left" ]; then
		echo "demo: processes left behind: $left" >&2
		kill -9 $left 2>/dev/null
	fi
	rm -rf "$D"
}
trap cleanup EXIT

for port in 17070 17071 18001 18002 18003 18101 18102 18103; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "demo: port $port is in use on 127.0.0.1; stop what uses it and try again" >&2
		exit 2
	fi
done

say "control plane on a fresh data directory ($D)"
"$S" server --data "$D" --listen 127.0.0.1:17070 --proxy-admin 127.0.0.1:17071 >"$D/server.log" 2>&1 &
for _ in $(seq 50); do curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.1; done
"$S" apply -f "$ROOT/examples/manifests"

echo "dashboard: $SLUICE_SERVER/ui (sign in with the admin token in $D/admin.token)"

say "CI hands over releases (immutable artifacts with contracts)"
C=$ROOT/examples/contracts
"$S" release push metadata v1 --artifact "$EX/metadata-v1" --contract "$C/metadata-v1.yaml"
"$S" release push metadata v2 --artifact "$EX/metadata-v2" --contract "$C/metadata-v2.yaml"
"$S" release push metadata v3 --artifact "$EX/metadata-v3" --contract "$C/metadata-v3.yaml"
"$S" release push profile v1 --artifact "$EX/profile-v1" --contract "$C/profile-v1.yaml"
"$S" release push profile v2 --artifact "$EX/profile-v2" --contract "$C/profile-v2.yaml"
"$S" release push web v1 --artifact "$EX/web-v1" --contract "$C/web-v1.yaml"
# a bad build: v2's code, 800 ms slower per request, but only in production (think of a query
# that only production's data makes slow): it passes the pre-production stage and the smoke
# checks, and the production canary has to catch it
printf '#!/bin/sh\n[ "$SLUICE_ENV" = production ] && exec %s --latency-ms 800 "$@"\nexec %s "$@"\n' \
	"$EX/metadata-v2" "$EX/metadata-v2" >"$D/metadata-v2-bad"
chmod +x "$D/metadata-v2-bad"
"$S" release push metadata v2.1 --artifact "$D/metadata-v2-bad" --contract "$C/metadata-v2.yaml"
echo "pushing v1 again with another artifact is refused:"
"$S" release push metadata v1 --artifact "$EX/metadata-v2" 2>&1 | sed 's/^/  /' || true

say "first releases: metadata v1, profile v1, web v1"
for svc in metadata profile web; do "$S" deploy $svc v1 --wait | tail -1; done

say "the compatibility gate: profile v1 reads 'metadata', which v3 no longer serves"
set +e
"$S" can-i-deploy metadata v3 | sed 's/^/  /'
echo "  (exit ${PIPESTATUS[0]})"
"$S" plan metadata=v3 profile=v2 | sed 's/^/  /'
set -e

URLS=(--url http://127.0.0.1:18003/ --url http://127.0.0.1:18103/)

say "continuous load on web in both regions; deploy metadata v2 (canary 10% -> 50% -> 100%, region by region)"
"$S" load "${URLS[@]}" --rate 200 --conns 8 --duration 170 --json "$D/good.json" >"$D/good.txt" &
LOADS+=($!)
sleep 1
T0=$(date +%s)
"$S" deploy metadata v2 --wait
T1=$(date +%s)
sleep 1
kill -TERM "${LOADS[-1]}"; wait "${LOADS[-1]}" || true
good=$(cat "$D/good.txt")

say "a bad release: metadata v2.1 is 800 ms slower, in production only"
"$S" load "${URLS[@]}" --rate 200 --conns 8 --duration 120 --json "$D/bad.json" >"$D/bad.txt" &
LOADS+=($!)
sleep 1
set +e
"$S" deploy metadata v2.1 --wait
rc=$?
set -e
sleep 1
kill -TERM "${LOADS[-1]}"; wait "${LOADS[-1]}" || true
bad=$(cat "$D/bad.txt")
[ $rc -eq 1 ] || { echo "demo: the bad release was not rolled back (exit $rc)" >&2; exit 1; }
dep=$("$S" history metadata -o json | awk -F': ' '/"id"/ {gsub(/,/, "", $2); print $2; exit}')
echo "evidence ('sluice events $dep'):"
"$S" events "$dep" | sed 's/^/  /'
# time from the bad canary's first traffic (its first step) to the end of the rollback
detect=$("$S" events "$dep" -o json | awk -F': ' '
	/"at":/ {gsub(/,/, "", $2); at = $2}
	/"type": "step"/ && !start {start = at}
	/"type": "region_rolled_back"/ && !end {end = at}
	END {if (start && end) printf "%.1f", (end - start) / 1000; else print "?"}')

say "feature flags: a faulty feature switched off without a rollback"
"$S" flags apply "$ROOT/examples/flags/production.yaml" --env production --reason "launch new-checkout to staff and 10%"
APP=$("$S" token create web-app --scope 'evaluate:*:production' 2>/dev/null)
ofrep() { # ofrep FLAG CONTEXT: one OFREP evaluation, as an OpenFeature SDK makes it
	curl -s -H "Authorization: Bearer $APP" -H 'Content-Type: application/json' -d "{\"context\": $2}" \
		"$SLUICE_SERVER/v1/envs/production/ofrep/v1/evaluate/flags/$1" | tr -d '\n'
	echo
}
echo "new-checkout for a staff member: $(ofrep new-checkout '{"targetingKey": "u-7", "email": "ann@example.com"}')"
on=0
for i in $(seq 1 200); do
	ofrep new-checkout "{\"targetingKey\": \"user-$i\"}" | grep -q '"value":true' && on=$((on + 1))
done
echo "new-checkout for 200 other users: $on on (10% asked)"
"$S" flag kill new-checkout --env production --reason "checkout errors after launch"
echo "new-checkout for the staff member after the kill: $(ofrep new-checkout '{"targetingKey": "u-7", "email": "ann@example.com"}')"
"$S" flags history --env production

say "status"
"$S" status metadata

say "summary"
echo "good release (metadata v2): promoted in $((T1 - T0)) s; load: $good"
echo "bad release (metadata v2.1): rolled back automatically ${detect} s after its first canary traffic; load: $bad"
read -r gfail < <(sed -E 's/.*failed ([0-9]+).*/\1/' "$D/good.txt")
if [ "$gfail" != 0 ]; then echo "demo: $gfail requests failed during the healthy rollout" >&2; exit 1; fi
echo "zero failed requests during the healthy rollout; demo took $(( $(date +%s) - START )) s"
