#!/usr/bin/env bash
# The sluice demo (make demo): a control plane on a temporary data directory, the example
# services in two regions under continuous load, a good release promoted with zero failed
# requests, a bad one rolled back by itself, the compatibility gate refusing an unsafe release
# and planning a safe order, a flag killed, and a flag rollout reverted by itself. Leaves no process behind.
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
RECEIVER=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	set +e
	for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$RECEIVER" ] && kill "$RECEIVER" 2>/dev/null
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

for port in 17070 17071 17090 18001 18002 18003 18101 18102 18103; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "demo: port $port is in use on 127.0.0.1; stop what uses it and try again" >&2
		exit 2
	fi
done

say "control plane on a fresh data directory ($D)"
"$S" server --data "$D" --listen 127.0.0.1:17070 --proxy-admin 127.0.0.1:17071 >"$D/server.log" 2>&1 &
for _ in $(seq 50); do curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.1; done
# metadata evaluates flag new-search over OFREP for each request (examples/svc.h): its code
# path behind the flag is faulty (half its requests fail), for the guarded rollout below
APP=$("$S" token create web-app --scope 'evaluate:*:*' 2>/dev/null)
mkdir -p "$D/manifests"
cp "$ROOT/examples/manifests/environments.yaml" "$D/manifests/"
sed "s|  env: {LOG_LEVEL: info, SLUICE_ENV: \"{env}\"}.*|  env: {LOG_LEVEL: info, SLUICE_ENV: \"{env}\", SLUICE_FLAG: new-search, SLUICE_OFREP_URL: \"$SLUICE_SERVER/v1/envs/{env}\", SLUICE_OFREP_TOKEN: \"$APP\", SLUICE_FAULT_FLAG_ERROR_RATE: \"0.5\"}|" \
	"$ROOT/examples/manifests/services.yaml" >"$D/manifests/services.yaml"
"$S" apply -f "$D/manifests"

say "notifications: a webhook receiver on 127.0.0.1:17090 prints one line per event it gets"
# a tiny receiver: checks each delivery's HMAC signature, prints one line (docs/observability.md)
python3 -u - "$D/hook.secret" >"$D/notifications.log" 2>&1 <<'PY' &
import hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        secret = open(sys.argv[1]).read().strip().encode()
        good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(good, self.headers.get("X-Sluice-Signature", ""))
        p = json.loads(body)
        what = " ".join(x for x in (p.get("service") or p.get("flag"), p.get("version"), p.get("env"),
                                    p.get("region")) if x)
        print(f"  [webhook] {p['type']:<23} {what}: {p.get('message', '')[:90]}"
              f"{'' if ok else '  (BAD SIGNATURE)'}", flush=True)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", 17090), H).serve_forever()
PY
RECEIVER=$!
"$S" notify add http://127.0.0.1:17090/hook --env production \
	--type deployment.started,deployment.promoted,deployment.rolled_back,region.failed,gate.refused,flag.killed \
	| sed -n 's/^secret (shown only this once): //p' >"$D/hook.secret"
tail -s 0.2 -f "$D/notifications.log" &
LOADS+=($!)

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
# the kill's notification reaches the receiver in a few hundred ms: let it print before the end
for _ in $(seq 30); do "$S" notify list -o json | grep -Eq '"backlog": ?0([^0-9]|$)' && break; sleep 0.1; done
sleep 0.3

say "a guarded flag rollout: new-search's code path fails half its requests; it is reverted by itself"
# the example set plus new-search (metadata evaluates it for every request, see above)
cat "$ROOT/examples/flags/production.yaml" - >"$D/flags.yaml" <<'F'
  new-search:
    state: ENABLED
    variants: {on: true, off: false}
    defaultVariant: off
F
"$S" flags apply "$D/flags.yaml" --env production --reason "add new-search, off" >/dev/null
"$S" load "${URLS[@]}" --rate 200 --conns 8 --duration 60 >"$D/flag.txt" &
LOADS+=($!)
sleep 0.5
set +e
"$S" flag rollout new-search --variant on --steps 20,50,100 --service metadata --env production \
	--baseline 2s --step-duration 3s --reason "launch new search" --wait --timeout 30 | tee "$D/rollout.txt"
rc=${PIPESTATUS[0]}
set -e
kill -TERM "${LOADS[-1]}"; wait "${LOADS[-1]}" || true
[ "$rc" -ne 0 ] || { echo "demo: the faulty flag rollout was not reverted" >&2; exit 1; }
rid=$(sed -n 's/.*rollout \([0-9]*\) started.*/\1/p' "$D/rollout.txt" | head -1)
echo "evidence ('sluice events --rollout $rid', '-o json' for all of it):"
"$S" events --rollout "$rid" | grep -v '^ *evidence' | sed 's/^/  /'
echo "new-search for user-1 now: $(ofrep new-search '{"targetingKey": "user-1"}')"
flagrev=$("$S" events --rollout "$rid" -o json | python3 -c '
import json, sys
ev = {e["type"]: e for e in json.load(sys.stdin)["events"]}
s, r = ev.get("step"), ev.get("reverted")
print("%.1f s after its first step, %d requests into it" % ((r["at"] - s["at"]) / 1000, r["evidence"]["tests"][0]["requests"]) if s and r else "?")')

say "status"
"$S" status metadata

say "summary"
echo "good release (metadata v2): promoted in $((T1 - T0)) s; load: $good"
echo "bad release (metadata v2.1): rolled back automatically ${detect} s after its first canary traffic; load: $bad"
echo "faulty flag variant (new-search): reverted automatically ${flagrev}"
read -r gfail < <(sed -E 's/.*failed ([0-9]+).*/\1/' "$D/good.txt")
if [ "$gfail" != 0 ]; then echo "demo: $gfail requests failed during the healthy rollout" >&2; exit 1; fi
echo "zero failed requests during the healthy rollout; demo took $(( $(date +%s) - START )) s"
