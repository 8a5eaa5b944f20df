#!/usr/bin/env bash
# Integration: the real server, proxy and example services on loopback.
#   promotion of a first release; an instance killed by hand is restarted; a healthy canary
#   rollout under continuous load with 0 failed requests; an automatic rollback with its
#   evidence; kill -9 of the server in the middle of a canary, restart, the deployment finishes
#   while the proxy keeps serving with no failed request; `sluice rollback`; no orphans.
# Usage: control-plane.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-cp.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:27070
export SLUICE_DATA="$D"  # the CLI reads the admin token the server writes there
SERVER_PID=
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

start_server() {
	"$S" server --data "$D" --listen 127.0.0.1:27070 --proxy-admin 127.0.0.1:27071 >>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && return 0; sleep 0.05; done
	echo "server did not start"; cat "$D/server.log"; exit 1
}

cleanup() {
	set +e
	pkill -f "$S load --url http://127.0.0.1:28" 2>/dev/null
	if curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	pkill -9 -f "$D" 2>/dev/null
	pkill -9 -f "metadata-v2 --error-rate 0.6 --port" 2>/dev/null
	if [ "$fail" -ne 0 ]; then echo "--- server log"; tail -60 "$D/server.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

# wait_until SECONDS COMMAND...: polls every 0.2 s
wait_until() {
	local t=$1; shift
	for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
	return 1
}

stable_is() { # stable_is VERSION: every region of production has it
	local st; st=$("$S" status metadata -o json)
	[ "$(grep -c "\"stable\": \"$1\"" <<<"$st")" -eq 2 ]
}

cat >"$D/env.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east
  - name: west
policy:
  allow_unknown_consumers: true   # these releases carry no contracts; tests/integration/gate.sh covers the gate
Y
cat >"$D/svc.yaml" <<'Y'
kind: Service
name: metadata
listen_port: 28001
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {steps: [10, 50, 100], step_duration: 1s, max_step_duration: 30s}
analysis: {method: threshold, min_requests: 10, max_error_rate: 0.05, max_error_rate_increase: 0.02, max_p99_latency: 1s, interval: 200ms}
---
kind: Service
name: profile
listen_port: 28002
depends_on: [metadata]
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 2s
strategy: {steps: [50, 100], step_duration: 1s}
analysis: {method: threshold, min_requests: 10}
Y

start_server
check "apply validates and stores manifests" "$S" apply -f "$D/env.yaml" -f "$D/svc.yaml"
printf '#!/bin/sh\nexec %s --error-rate 0.6 "$@"\n' "$EX/metadata-v2" >"$D/bad"
chmod +x "$D/bad"
"$S" release push metadata v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push metadata v2-bad --artifact "$D/bad" >/dev/null
"$S" release push profile v2 --artifact "$EX/profile-v2" >/dev/null

# --- promotion of first releases
check "first release of metadata is promoted" "$S" deploy metadata v1 --wait --timeout 60
check "first release of profile is promoted" "$S" deploy profile v2 --wait --timeout 60
check "metadata v1 is stable in both regions" stable_is v1
check "the proxy routes metadata to v1" bash -c "curl -sf -i http://127.0.0.1:28001/items/1 | grep -q 'X-Version: v1'"
check "the west region has its own route" bash -c "curl -sf -i http://127.0.0.1:28101/items/1 | grep -q 'X-Version: v1'"

# --- an instance killed by hand is restarted
pid=$("$S" status metadata -o json | grep -m1 '"detail": "pid' | grep -o '[0-9]\+')
kill -9 "$pid"
restarted() { "$S" status metadata -o json | grep -q '"restarts": [1-9]' && \
	[ "$("$S" status metadata -o json | grep -c '"state": "healthy"')" -ge 4 ]; }
check "an instance killed with SIGKILL is restarted and healthy again" wait_until 15 restarted

# --- a healthy canary under continuous load: zero failed requests
"$S" load --url http://127.0.0.1:28002/profiles/1 --url http://127.0.0.1:28102/profiles/1 \
	--rate 120 --conns 6 --duration 90 >"$D/load1.txt" &
L=$!
sleep 0.5
check "metadata v2 is promoted through its canary steps" "$S" deploy metadata v2 --wait --timeout 80
sleep 0.5
kill -TERM $L 2>/dev/null || true; wait $L || true
cat "$D/load1.txt"
check "zero failed requests during the healthy rollout" grep -q ' failed 0 ' "$D/load1.txt"
check "metadata v2 is stable in both regions" stable_is v2
check "no v1 instance is left" bash -c "! '$S' status metadata -o json | grep -q '\"version\": \"v1\"'"

# --- a bad canary is rolled back automatically, with its evidence
"$S" load --url http://127.0.0.1:28002/profiles/1 --url http://127.0.0.1:28102/profiles/1 \
	--rate 120 --conns 6 --duration 90 >"$D/load2.txt" &
L=$!
sleep 0.5
set +e
"$S" deploy metadata v2-bad --wait --timeout 80 >"$D/bad.txt"
rc=$?
set -e
kill -TERM $L 2>/dev/null || true; wait $L || true
check "deploy --wait exits 1 when the release is rolled back" test "$rc" -eq 1
check "the outcome says rolled_back with the reason" grep -q 'rolled_back: verification failed' "$D/bad.txt"
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
check "the abort event carries its evidence (metric, observed, limit)" \
	bash -c "'$S' events $dep -o json | grep -q '\"metric\": \"error_rate\"'"
check "metadata v2 is still stable" stable_is v2
gone() { ! "$S" status metadata -o json | grep -q '"version": "v2-bad"'; }
check "the bad instances are stopped" wait_until 10 gone

# --- kill -9 of the server in the middle of a canary
"$S" load --url http://127.0.0.1:28002/profiles/1 --url http://127.0.0.1:28102/profiles/1 \
	--rate 120 --conns 6 --duration 120 >"$D/load3.txt" &
L=$!
sleep 0.5
"$S" deploy metadata v1 >/dev/null
in_step() { "$S" status metadata -o json | grep -q '"state": "step"'; }
check "the canary reaches a step" wait_until 20 in_step
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
sleep 1.5   # the proxy and the instances serve on alone
start_server
done_ok() { "$S" history metadata -o json | grep -m1 '"phase"' | grep -q '"promoted"'; }
check "after a restart the deployment resumes and is promoted" wait_until 60 done_ok
sleep 0.5
kill -TERM $L 2>/dev/null || true; wait $L || true
cat "$D/load3.txt"
check "zero failed requests across the server's kill -9 and restart" grep -q ' failed 0 ' "$D/load3.txt"
check "metadata v1 is stable again" stable_is v1
count=$(pgrep -fc "$D/artifacts" || true)
check "no duplicate instances after re-adoption (2 metadata x 2 regions + 2 profile = $count)" test "$count" -eq 6

# --- sluice rollback: back to the previous stable release at once
check "rollback returns to the previous stable release" "$S" rollback metadata --wait
check "metadata v2 is stable after the rollback" stable_is v2

# --- an idle server does not reconcile on every tick (every 2 s, or when something changes;
# that something changes is seen at once is what every check above relies on)
no_v1() { ! "$S" status metadata -o json | grep -q '"version": "v1"'; }
wait_until 20 no_v1
sleep 1
reconciles() { curl -s -H "Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")" "$SLUICE_SERVER/v1/server" | grep -o "\"$1\": *[0-9]*" | grep -o '[0-9]*$'; }
p0=$(reconciles passes) s0=$(reconciles skipped)
sleep 4
p1=$(reconciles passes) s1=$(reconciles skipped)
check "an idle server skips most ticks ($((s1 - s0)) skipped, $((p1 - p0)) passes in 4 s)" \
	test $((s1 - s0)) -ge 8 -a $((p1 - p0)) -le 4

# --- the proxy replaced behind the server's back gets the routes again; a dead one is restarted
# (the server is frozen meanwhile, so that it cannot notice before the new proxy answers)
routes_ok() { curl -sf -m 1 -o /dev/null http://127.0.0.1:28001/items/1 && curl -sf -m 1 -o /dev/null http://127.0.0.1:28102/profiles/1; }
printf '{"admin": "127.0.0.1:27071", "routes": []}\n' >"$D/hand.json"
kill -STOP "$SERVER_PID"
kill -9 "$(cat "$D/proxy.pid")"
"$S" proxy --config "$D/hand.json" >"$D/hand.log" 2>&1 &
HAND=$!
for _ in $(seq 50); do curl -sf -m 1 -o /dev/null http://127.0.0.1:27071/healthz && break; sleep 0.1; done
kill -CONT "$SERVER_PID"
check "a proxy started by hand gets every route within 10 s" wait_until 10 routes_ok
check "the server says another proxy answers" grep -q "another process answers on 127.0.0.1:27071" "$D/server.log"
kill -9 "$HAND"
wait "$HAND" 2>/dev/null || true
check "a killed proxy is restarted by the server, with its routes, within 10 s" wait_until 10 routes_ok

# --- the proxy keeps its routes in a file: restarted while the server is down (by a supervisor,
# here by hand), it serves them again without the server
check "the server starts its proxy with --state" bash -c "ps -o args= -p \"\$(cat '$D/proxy.pid')\" | grep -q -- '--state $D/proxy-routes.json'"
check "the proxy's state file holds the routes" grep -q '"routes"' "$D/proxy-routes.json"
kill -STOP "$SERVER_PID"
kill -9 "$(cat "$D/proxy.pid")"
"$S" proxy --config "$D/proxy.json" --admin 127.0.0.1:27071 --state "$D/proxy-routes.json" >"$D/hand2.log" 2>&1 &
HAND=$!
check "a proxy restarted from its state file serves every route with the server down, within 2 s" \
	wait_until 2 routes_ok
kill -9 "$HAND"
wait "$HAND" 2>/dev/null || true
kill -CONT "$SERVER_PID"
check "and the server restarts its own proxy again, with the routes, within 10 s" wait_until 10 routes_ok

# --- a release whose artifact is gone fails fast with the runtime's reason (its instances could
# never start: the regions are retried with backoff, 2 s then 4 s, not left to the 120 s start
# timeout), and the stable release keeps serving
printf '#!/bin/sh\nexec %s "$@"\n' "$EX/metadata-v1" >"$D/v3"
chmod +x "$D/v3"
"$S" release push metadata v3 --artifact "$D/v3" >/dev/null
rm "$D/artifacts/$(sha256sum "$D/v3" | cut -d' ' -f1)"
set +e
"$S" deploy metadata v3 --wait --timeout 60 >"$D/gone.txt" 2>&1
rc=$?
set -e
cat "$D/gone.txt"
check "deploy --wait exits 1 when the artifact is gone" test "$rc" -eq 1
check "the failure names the missing artifact" grep -q "could not start instances: artifact '.*' is missing" "$D/gone.txt"
check "metadata v2 is still stable after the failed start" stable_is v2
check "the proxy still routes metadata to v2" bash -c "curl -sf -i http://127.0.0.1:28001/items/1 | grep -q 'X-Version: v2'"

# --- a deployment whose instance ids could not name files is refused before it starts
n62=$(printf 'n%.0s' $(seq 62)) # with one letter before it, a name of 63 bytes, the longest
cat >"$D/long.yaml" <<Y
kind: Environment
name: e$n62
regions: [{name: r$n62}]
policy: {allow_unknown_consumers: true}
---
kind: Service
name: s$n62
listen_port: 28301
Y
"$S" apply -f "$D/long.yaml" >/dev/null
"$S" release push "s$n62" "v$n62" --artifact "$EX/metadata-v1" >/dev/null
set +e
"$S" deploy "s$n62" "v$n62" --env "e$n62" >"$D/long.txt" 2>&1
rc=$?
set -e
check "a deployment with too long instance ids is refused" test "$rc" -ne 0
check "the refusal says which ids and the limit" grep -q "instance ids of s.* would be 258 bytes, at most 239" "$D/long.txt"

# --- shutdown with the data plane leaves nothing behind
"$S" shutdown --data-plane >/dev/null
for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
nothing_left() { ! pgrep -af "$D" | grep -v pgrep; }
check "shutdown --data-plane leaves no process behind" nothing_left

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
