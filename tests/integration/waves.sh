#!/usr/bin/env bash
# Integration (issue: waves, retry, one pipeline at a time, pre-production stage, strategies):
# the real server, proxy and example services on loopback, ports 32001-32706 (below the
# kernel's ephemeral range, 32768+: a listener there can collide with an outgoing connection).
#   - a region whose instances fail (a fault the test controls) is retried with backoff, then
#     marked failed: with policy halt later waves stop, with continue they go on; regions done
#     stay done; `sluice retry --region` retries that region alone (neighbours' pids unchanged)
#   - queue and supersede (a deployment leaving the queue starts from what the one before it
#     left stable); a rollback pre-empting a canary mid-step with zero failed requests; the
#     queue survives kill -9 of the server
#   - the pre-production stage stops a release that fails its smoke checks, and one that
#     passes them but fails side by side under generated traffic; production is never touched
#   - rolling (max_surge 1, then max_surge 0 with max_unavailable 1) and blue-green under
#     continuous load with zero failed requests
# Usage: waves.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-waves.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:32070
export SLUICE_DATA="$D/data"  # the CLI reads the admin token the server writes there
SERVER_PID=
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }

start_server() {
	"$S" server --data "$D/data" --listen 127.0.0.1:32070 --proxy-admin 127.0.0.1:32071 >>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	wait_until 10 curl -sf -m 1 "$SLUICE_SERVER/v1/health" -o /dev/null || { cat "$D/server.log"; exit 1; }
}
cleanup() {
	set +e
	pkill -f "load --url http://127.0.0.1:32" 2>/dev/null
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	[ "$fail" -ne 0 ] && tail -80 "$D/server.log"
	if [ -n "${KEEP:-}" ]; then echo "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

api() { # api PATH: GET from the API as the admin
	curl -s -H "Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")" "$SLUICE_SERVER$1"
}
phase() { # phase DEPLOYMENT -> its phase
	api "/v1/deployments/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' || true
}
region_state() { # region_state DEPLOYMENT REGION
	api "/v1/deployments/$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print([r["state"] for r in d["state"]["regions"] if r["name"] == sys.argv[1]][0])' "$2" || true
}
pids_of() { # pids_of SERVICE REGION (in env halt)
	api "/v1/status?service=$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in d["services"][0]["envs"]:
    if e["env"] == "halt":
        for r in e["regions"]:
            if r["region"] == sys.argv[1]:
                print(" ".join(sorted(i["detail"].replace(" ", "-") for i in r["instances"])))' "$2" || true
}
dep_id() { "$S" history "$1" -o json | grep -m1 '"id"' | grep -o '[0-9]\+' || true; }

mkdir -p "$D/data"
# a release whose instances crash in a region while a file the test controls exists
printf '#!/bin/sh\n[ -e %s/fail-$REGION ] && exit 3\nexec %s "$@"\n' "$D" "$EX/metadata-v2" >"$D/flaky"
# slow, not failing: its smoke checks pass, and only the side-by-side run can catch it
printf '#!/bin/sh\nexec %s --fail-after 1 "$@"\n' "$EX/metadata-v2" >"$D/fails-later"
printf '#!/bin/sh\nexec %s "$@"\n' "$EX/metadata-v3" >"$D/v3-no-metadata"
chmod +x "$D/flaky" "$D/fails-later" "$D/v3-no-metadata"

cat >"$D/m.yaml" <<Y
kind: Environment
name: halt
regions: [{name: a, port_offset: 0}, {name: b, port_offset: 100}, {name: c, port_offset: 200}]
waves: [[a], [b], [c]]
policy: {allow_unknown_consumers: true, region_retries: 1, retry_backoff: 300ms, on_region_failure: halt}
---
kind: Environment
name: cont
regions: [{name: a, port_offset: 300}, {name: b, port_offset: 400}, {name: c, port_offset: 500}]
waves: [[a], [b], [c]]
policy: {allow_unknown_consumers: true, region_retries: 1, retry_backoff: 300ms, on_region_failure: continue}
---
kind: Environment
name: pre
regions: [{name: s, port_offset: 600}]
stage: {side_by_side: 2s, traffic_rate: 100}
policy: {allow_unknown_consumers: true}
---
kind: Environment
name: prod
regions: [{name: p, port_offset: 700}]
promotion: {from: pre}
policy: {allow_unknown_consumers: true}
---
kind: Service
name: meta
listen_port: 32001
run: {env: {REGION: "{region}"}}
health: {interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 2s
strategy: {steps: [50, 100], step_duration: 300ms, max_step_duration: 20s}
analysis: {method: threshold, min_requests: 5}
---
kind: Service
name: queued
listen_port: 32002
health: {interval: 200ms}
drain_timeout: 1s
strategy: {steps: [20, 100], step_duration: 2s, max_step_duration: 20s}
analysis: {method: threshold, min_requests: 5}
---
kind: Service
name: superseded
listen_port: 32003
policy: {concurrency: supersede}
health: {interval: 200ms}
drain_timeout: 1s
strategy: {steps: [20, 100], step_duration: 2s, max_step_duration: 20s}
analysis: {method: threshold, min_requests: 5}
---
kind: Service
name: staged
listen_port: 32004
health: {interval: 200ms}
drain_timeout: 1s
smoke: [{path: /items/1, body_contains: '"metadata"'}]
strategy: {steps: [100], step_duration: 0s, max_step_duration: 20s}
# a latency limit far above a busy machine's noise (the bad release fails with errors)
analysis: {method: threshold, min_requests: 5, max_p99_latency: 2s}
---
kind: Service
name: roll
listen_port: 32005
health: {interval: 200ms}
instances: 3
drain_timeout: 2s
strategy: {type: rolling, max_surge: 1}
---
kind: Service
name: bluegreen
listen_port: 32006
health: {interval: 200ms}
instances: 2
drain_timeout: 2s
smoke: [{path: /items/1}]
strategy: {type: blue-green, keep_old: 2s}
analysis: {method: threshold, min_requests: 5}
Y
start_server
"$S" apply -f "$D/m.yaml" >/dev/null
for s in meta queued superseded staged roll bluegreen; do
	"$S" release push $s v1 --artifact "$EX/metadata-v1" >/dev/null
	"$S" release push $s v2 --artifact "$EX/metadata-v2" >/dev/null
done
"$S" release push meta flaky --artifact "$D/flaky" >/dev/null
"$S" release push staged v3 --artifact "$D/v3-no-metadata" >/dev/null
"$S" release push staged bad --artifact "$D/fails-later" >/dev/null
for s in meta; do for e in halt cont; do "$S" deploy $s v1 --env $e --wait >/dev/null; done; done

# ---- region failure: retries with backoff, then failed; halt stops later waves
"$S" load --url http://127.0.0.1:32001/items/1 --url http://127.0.0.1:32101/items/1 --url http://127.0.0.1:32201/items/1 \
	--url http://127.0.0.1:32301/items/1 --url http://127.0.0.1:32401/items/1 --url http://127.0.0.1:32501/items/1 \
	--rate 150 --duration 300 >/dev/null &
LM=$!
touch "$D/fail-b"
set +e; "$S" deploy meta flaky --env halt --wait --timeout 60 >"$D/halt.txt"; rc=$?; set -e
dep=$(dep_id meta)
check "halt: the deployment ends failed (exit 1)" test $rc -eq 1
check "halt: region a is done with the new release" test "$(region_state "$dep" a)" = done
check "halt: region b failed after its retries" test "$(region_state "$dep" b)" = failed
check "halt: region c (a later wave) never started" test "$(region_state "$dep" c)" = pending
check "halt: the retry was scheduled with backoff" grep -q 'retry_scheduled' "$D/halt.txt"
check "halt: the attempts are recorded" grep -q 'attempt 2 of 2' "$D/halt.txt"
a_pids=$(pids_of meta a)
rm -f "$D/fail-b"
check "retry --region b retries that region alone and the deployment completes" \
	"$S" retry "$dep" --region b --wait
check "retry left region a's instances untouched (same pids)" test "$(pids_of meta a)" = "$a_pids"
check "after the retry, region c (halted) went on too" test "$(region_state "$dep" c)" = done

# ---- continue: later waves go on past a failed region
touch "$D/fail-b"
set +e; "$S" deploy meta flaky --env cont --wait --timeout 60 >/dev/null; set -e
dep=$(dep_id meta)
check "continue: region b failed" test "$(region_state "$dep" b)" = failed
check "continue: region c (a later wave) was deployed" test "$(region_state "$dep" c)" = done
check "continue: the deployment ends split (regions a and c on the new release, b on the old)" test "$(phase "$dep")" = split
rm -f "$D/fail-b"
kill -TERM $LM 2>/dev/null || true; wait $LM || true

# ---- queue and supersede (one pipeline per service at a time)
"$S" deploy queued v1 --env halt --wait >/dev/null
"$S" deploy superseded v1 --env halt --wait >/dev/null
load_q() { exec "$S" load --url http://127.0.0.1:32002/items/1 --url http://127.0.0.1:32003/items/1 \
	--url http://127.0.0.1:32102/items/1 --url http://127.0.0.1:32103/items/1 \
	--url http://127.0.0.1:32202/items/1 --url http://127.0.0.1:32203/items/1 --rate 150 --duration "$1" >"$2"; }
load_q 150 "$D/lq.txt" &
L=$!
q1=$("$S" deploy queued v2 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
q2=$("$S" deploy queued v1 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
s1=$("$S" deploy superseded v2 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
s1_started() { test "$(region_state "$s1" a)" != pending; }
wait_until 10 s1_started
s2=$("$S" deploy superseded v1 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
s3=$("$S" deploy superseded v2 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
sleep 1
check "queue: the second request waits (pending) while the first runs" \
	bash -c "'$S' status queued -o json | grep -q '\"queued\"'"
# queue survives kill -9 of the server
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server
ended() { [ "$(phase "$1")" != active ]; }
check "queue: after kill -9 and a restart, both queued deployments run to the end" \
	wait_until 90 ended "$q2"
check "queue: the first is promoted" test "$(phase "$q1")" = promoted
check "queue: the second is promoted after it" test "$(phase "$q2")" = promoted
check "queue: the second started from the first's result (v1 replaced v2 in every region)" \
	bash -c "test \$('$S' events $q2 | grep -c 'starting v1 beside stable v2') -eq 3"
check "supersede: the one in between is recorded as superseded" test "$(phase "$s2")" = superseded
check "supersede: the newest runs" wait_until 60 ended "$s3"
check "supersede: the newest is promoted" test "$(phase "$s3")" = promoted
check "supersede: the first one ran to its end" test "$(phase "$s1")" = promoted
check "supersede: the newest starts from what is stable when it leaves the queue (v2, so nothing to do)" \
	bash -c "'$S' events $s3 | grep -q 'a already runs v2'"
kill -TERM $L 2>/dev/null || true; wait $L || true
cat "$D/lq.txt"
check "zero failed requests through queued deployments and a server kill -9" grep -q ' failed 0 ' "$D/lq.txt"
grep -q ' failed 0 ' "$D/lq.txt" || curl -s -H "Authorization: Bearer $(cat "$D/data/proxy.token")" http://127.0.0.1:32071/v1/metrics | python3 -c '
import json, sys
for r, v in json.load(sys.stdin)["routes"].items():
    for ver, c in v["versions"].items():
        if c["responses"]["5xx"] or c["upstream_errors"]:
            print("  5xx in", r, ver, c["responses"]["5xx"], "upstream errors", c["upstream_errors"])' || true


# ---- a rollback pre-empts a canary in mid-step, with zero failed requests
"$S" load --url http://127.0.0.1:32002/items/1 --url http://127.0.0.1:32102/items/1 --rate 100 --duration 60 >"$D/lr.txt" &
L=$!
r1=$("$S" deploy queued v2 --env halt -o json | grep '"id"' | grep -o '[0-9]\+')
in_step() { test "$(region_state "$r1" a)" = step; }
wait_until 20 in_step
check "rollback pre-empts the canary in mid-step" "$S" rollback queued --env halt --wait
check "the pre-empted deployment is recorded as preempted" test "$(phase "$r1")" = preempted
sleep 0.5
kill -TERM $L 2>/dev/null || true; wait $L || true
cat "$D/lr.txt"
check "zero failed requests while the rollback pre-empted the canary" grep -q ' failed 0 ' "$D/lr.txt"

# ---- the pre-production stage
check "stage: a first release passes the stage (its generated traffic starts once the route is there)" \
	"$S" deploy staged v1 --env prod --wait
set +e; "$S" deploy staged v3 --env prod --wait >"$D/st1.txt"; rc=$?; set -e
check "stage: a release failing its smoke checks is stopped (exit 1)" test $rc -eq 1
check "stage: the reason names the smoke checks" grep -q 'smoke checks failed' "$D/st1.txt"
check "stage: production never saw it" bash -c "! grep -q ' p  *starting' '$D/st1.txt'"
set +e; "$S" deploy staged bad --env prod --wait >"$D/st2.txt"; rc=$?; set -e
check "stage: a release failing side by side under generated traffic is stopped" test $rc -eq 1
check "stage: the reason names the stage" grep -q 'pre-production stage failed' "$D/st2.txt"
check "stage: production still runs v1" bash -c "curl -s -i http://127.0.0.1:32704/items/1 | grep -q 'X-Version: v1'"
"$S" load --url http://127.0.0.1:32704/items/1 --rate 50 --duration 60 >/dev/null &
L=$!
check "stage: a good release passes the stage, then production" "$S" deploy staged v2 --env prod --wait --timeout 50
kill -TERM $L 2>/dev/null || true; wait $L || true
check "stage: the good release is stable in the stage environment" \
	bash -c "'$S' status staged -o json | tr -d ' \n' | grep -q '\"region\":\"s\",\"stable\":\"v2\"'"

# ---- rolling and blue-green under continuous load
"$S" deploy roll v1 --env halt --wait >/dev/null
"$S" deploy bluegreen v1 --env halt --wait >/dev/null
"$S" load --url http://127.0.0.1:32005/items/1 --url http://127.0.0.1:32105/items/1 --url http://127.0.0.1:32205/items/1 \
	--url http://127.0.0.1:32006/items/1 --url http://127.0.0.1:32106/items/1 --url http://127.0.0.1:32206/items/1 \
	--rate 200 --duration 150 >"$D/ls.txt" &
L=$!
check "rolling: v2 replaces v1 one instance at a time" "$S" deploy roll v2 --env halt --wait --timeout 80
check "blue-green: v2 takes all traffic at once, v1 kept, then stopped" "$S" deploy bluegreen v2 --env halt --wait --timeout 80
# no room for an extra instance: each old one leaves the route as its replacement starts
sed -i 's/strategy: {type: rolling, max_surge: 1}/strategy: {type: rolling, max_surge: 0, max_unavailable: 1}/' "$D/m.yaml"
"$S" apply -f "$D/m.yaml" >/dev/null
check "rolling with max_surge 0 and max_unavailable 1: back to v1" "$S" deploy roll v1 --env halt --wait --timeout 80
kill -TERM $L 2>/dev/null || true; wait $L || true
cat "$D/ls.txt"
check "zero failed requests through rolling and blue-green rollouts" grep -q ' failed 0 ' "$D/ls.txt"
check "rolling: three v1 instances per region, no v2 left" \
	bash -c "test \$('$S' status roll -o json | grep -c '\"version\": \"v1\"') -ge 9 && ! '$S' status roll -o json | grep -q '\"version\": \"v2\"'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
