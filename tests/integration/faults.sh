#!/usr/bin/env bash
# Integration (issue 18): a crash or a fault never decides a verdict. The real server, proxy and
# example services on loopback (ports 36070-36071, 36001, 36101, 36201), 200 requests/s through
# the proxy in every scenario:
#   1. the server dies (SLUICE_FAULT=after-commit:KIND, util/fault.h) right after each kind of
#      transition is committed, before its actions; restarted, the deployment is promoted as
#      it would have been, with 0 failed requests
#   2. the server is down for longer than max_step_duration in the middle of a canary step: the
#      outage is not charged to the release (promoted, an "unobserved" event). (A verdict blind
#      for want of the proxy's metrics, and the pause past strategy.max_unobserved, are in
#      tests/unit/core/test_observed.c: a frozen proxy here is replaced by the server at once.)
#   3. the store cannot be written (SLUICE_FAULT=store-write:FILE): the API answers 500 with the
#      store's message, the CLI exits 3; a deployment in flight holds, then finishes
#   4. a release failing in one production region ends `split` with each region's version; one
#      rolled back in production is rolled back in the pre-production stage too
#   5. the proxy killed with the server up (restarted by the server from its state file), and
#      with the server down (restarted by hand, as a supervisor would): failed requests and the
#      time until a new connection is served
# The figures are printed; only exact things are asserted (0 failed, the end states).
# Usage: faults.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-faults.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:36070
export SLUICE_DATA="$D/data"
SERVER_PID=
L=
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }
now_ms() { date +%s%3N; }

start_server() { # start_server [SLUICE_FAULT]
	SLUICE_FAULT=${1:-} "$S" server --data "$D/data" --listen 127.0.0.1:36070 --proxy-admin 127.0.0.1:36071 \
		>>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	wait_until 10 curl -sf -m 1 "$SLUICE_SERVER/v1/health" -o /dev/null || { tail -30 "$D/server.log"; exit 1; }
}
cleanup() {
	set +e
	[ -n "$L" ] && kill -TERM "$L" 2>/dev/null
	pkill -f "load --url http://127.0.0.1:36" 2>/dev/null
	kill -CONT "$(cat "$D/data/proxy.pid" 2>/dev/null)" 2>/dev/null
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	if [ "$fail" -ne 0 ]; then echo "--- server log"; tail -80 "$D/server.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

URLS=(--url http://127.0.0.1:36101/items/1 --url http://127.0.0.1:36201/items/1)
load_start() { # load_start NAME: 200 requests/s through both production proxies
	"$S" load "${URLS[@]}" --rate 200 --conns 8 --duration 600 >"$D/$1.load" 2>&1 &
	L=$!
	sleep 0.3
}
load_stop() { # load_stop NAME: prints the summary; the number of failed requests in $FAILED
	kill -TERM "$L" 2>/dev/null || true
	wait "$L" 2>/dev/null || true
	L=
	FAILED=$(grep -o 'failed [0-9]*' "$D/$1.load" | grep -o '[0-9]*' || echo "?")
	REQS=$(grep -o '^requests [0-9]*' "$D/$1.load" | grep -o '[0-9]*' || echo "?")
}
latest() { "$S" history meta -o json | grep -m1 '"id"' | grep -o '[0-9]\+'; }
phase_of() { "$S" history meta -o json | grep -m1 '"phase"' | sed 's/.*"phase": "\([a-z_]*\)".*/\1/'; }
ended() { [ "$(phase_of)" != active ]; }
stable_in() { # stable_in ENV REGION
	"$S" status meta -o json | python3 -c "
import json, sys
st = json.load(sys.stdin)
for s in st['services']:
    for e in s['envs']:
        for r in e['regions']:
            if e['env'] == '$1' and r['region'] == '$2':
                print(r.get('stable') or '-')"
}

mkdir -p "$D/data"
cat >"$D/m.yaml" <<'Y'
kind: Environment
name: pre
regions: [{name: s, port_offset: 0}]
stage: {side_by_side: 2s, traffic_rate: 50}
policy: {allow_unknown_consumers: true}
---
kind: Environment
name: prod
regions: [{name: east, port_offset: 100}, {name: west, port_offset: 200}]
waves: [[east], [west]]
promotion: {from: pre}
policy: {allow_unknown_consumers: true, wave_bake: 500ms}
---
kind: Service
name: meta
listen_port: 36001
run: {env: {REGION: "{region}"}}
health: {interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
smoke: [{path: /items/1, status: 200}]
strategy: {steps: [50, 100], step_duration: 2s, max_step_duration: 8s, max_unobserved: 4s}
analysis: {method: threshold, min_requests: 10, max_error_rate: 0.05, max_error_rate_increase: 0.02, max_p99_latency: 1s, interval: 200ms}
bake: 1s
Y
# a release that fails in the regions named by BAD (an error rate of 60% there)
for v in bad-west bad-prod; do
	case $v in bad-west) where='west' ;; bad-prod) where='east|west' ;; esac
	printf '#!/bin/sh\ncase "$REGION" in %s) exec %s --error-rate 0.6 "$@" ;; esac\nexec %s "$@"\n' \
		"$where" "$EX/metadata-v2" "$EX/metadata-v2" >"$D/$v"
	chmod +x "$D/$v"
done

start_server
"$S" apply -f "$D/m.yaml" >/dev/null
for v in v1 v2; do "$S" release push meta $v --artifact "$EX/metadata-$v" >/dev/null; done
for v in bad-west bad-prod; do "$S" release push meta $v --artifact "$D/$v" >/dev/null; done
check "the first release is promoted" "$S" deploy meta v1 --env prod --wait --timeout 90 >/dev/null

# --- 1. a kill right after each kind of commit, before its actions
next=v2
echo "# after-commit faults: kind, failed/requests, deployment time (s), kill to promotion (s)"
for kind in started starting healthy smoke_passed side_by_side stage_passed step passed promoted baking baked region_done; do
	"$S" shutdown >/dev/null
	wait "$SERVER_PID" 2>/dev/null || true
	start_server "after-commit:$kind"
	load_start "ac-$kind"
	t0=$(now_ms)
	"$S" deploy meta $next --env prod >/dev/null
	died() { ! kill -0 "$SERVER_PID" 2>/dev/null; }
	if ! wait_until 60 died; then
		bad "after-commit:$kind: the fault fired"
		load_stop "ac-$kind"
		continue
	fi
	wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
	tk=$(now_ms)
	start_server
	wait_until 120 ended || true
	t1=$(now_ms)
	sleep 0.5
	load_stop "ac-$kind"
	ph=$(phase_of)
	echo "# after-commit:$kind exit $rc failed $FAILED/$REQS deploy $(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100)) s kill-to-end $(((t1 - tk) / 1000)).$(((t1 - tk) % 1000 / 100)) s"
	check "after-commit:$kind: the server died with 137 ($rc), restarted, the deployment is promoted ($ph)" \
		test "$rc" -eq 137 -a "$ph" = promoted
	check "after-commit:$kind: 0 failed requests ($FAILED of $REQS)" test "$FAILED" = 0
	check "after-commit:$kind: $next is stable in pre/s, prod/east, prod/west" \
		test "$(stable_in pre s) $(stable_in prod east) $(stable_in prod west)" = "$next $next $next"
	if [ $next = v2 ]; then next=v1; else next=v2; fi
done
check "the stage's generator was started again after the kill at side_by_side" \
	grep -q "no traffic generator for the stage in s: starting one" "$D/server.log"

# --- 2. the control plane away for longer than max_step_duration (8 s) in a canary step
if [ "$(stable_in prod east)" = v2 ]; then next=v1; else next=v2; fi
load_start outage
"$S" deploy meta $next --env prod >/dev/null
in_step() { "$S" status meta -o json | grep -q '"state": "step"'; }
wait_until 60 in_step || true
sleep 1
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
tk=$(now_ms)
sleep 12
start_server
wait_until 90 ended || true
t1=$(now_ms)
load_stop outage
dep=$(latest)
echo "# server down 12 s mid-step: failed $FAILED/$REQS, restart to end $(((t1 - tk) / 1000 - 12)) s"
check "a 12 s outage mid-step (max_step_duration 8 s) does not roll back: promoted ($(phase_of))" test "$(phase_of)" = promoted
check "0 failed requests across the outage ($FAILED of $REQS)" test "$FAILED" = 0
check "an 'unobserved' event says the clock stopped" bash -c "'$S' events $dep -o json | grep -q '\"type\": \"unobserved\"'"
# --- 3. the store cannot be written
if [ "$(stable_in prod east)" = v2 ]; then next=v1; else next=v2; fi
"$S" shutdown >/dev/null
wait "$SERVER_PID" 2>/dev/null || true
start_server "store-write:$D/broken"
load_start store
"$S" deploy meta $next --env prod >/dev/null
wait_until 60 in_step || true
touch "$D/broken"
set +e
out=$("$S" deploy meta v1 --env prod 2>&1); rc_deploy=$?
out2=$("$S" release push meta v9 --artifact "$EX/metadata-v1" 2>&1); rc_push=$?
code=$(curl -s -o "$D/store.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$D/data/admin.token")" \
	-H 'Content-Type: application/json' -d '{"service": "meta", "version": "v1", "env": "prod"}' "$SLUICE_SERVER/v1/deployments")
set -e
echo "# store unwritable: deploy exit $rc_deploy ($out); release push exit $rc_push ($out2); POST /v1/deployments $code $(cat "$D/store.json")"
check "deploy exits 3 when the store cannot be written" test "$rc_deploy" -eq 3
check "release push exits 3 when the store cannot be written" test "$rc_push" -eq 3
check "the API answers 500" test "$code" = 500
check "with the store's message" grep -q 'store: begin: injected fault' "$D/store.json"
sleep 4
check "the deployment in flight holds while the store is broken" test "$(phase_of)" = active
rm "$D/broken"
wait_until 90 ended || true
load_stop store
echo "# store broken 4 s mid-step: failed $FAILED/$REQS"
check "after the repair it is promoted ($(phase_of))" test "$(phase_of)" = promoted
check "0 failed requests while the store was broken ($FAILED of $REQS)" test "$FAILED" = 0
stage_was=$next
"$S" shutdown >/dev/null
wait "$SERVER_PID" 2>/dev/null || true
start_server

# --- 4. honest end states (under load; the bad release fails requests, so only states are asserted)
load_start split
set +e
"$S" deploy meta bad-west --env prod --wait --timeout 120 >"$D/split.txt" 2>&1; rc=$?
set -e
dep=$(latest)
check "a release failing only in west ends split (exit $rc)" test "$(phase_of)" = split -a "$rc" -eq 1
check "its split event names each region's version" \
	bash -c "'$S' events $dep -o json | grep -q 'east bad-west, west $stage_was'"
check "status shows each region's version: east bad-west, west $stage_was" \
	test "$(stable_in prod east) $(stable_in prod west)" = "bad-west $stage_was"
"$S" deploy meta $stage_was --env prod --wait --timeout 120 >/dev/null || true
set +e
"$S" deploy meta bad-prod --env prod --wait --timeout 120 >"$D/rb.txt" 2>&1; rc=$?
set -e
load_stop split
echo "# split and rolled-back releases: failed $FAILED/$REQS (the bad canaries' errors)"
check "a release failing in production ends rolled_back (exit $rc)" test "$(phase_of)" = rolled_back -a "$rc" -eq 1
check "it is rolled back in the pre-production stage too: pre/s is $stage_was again" \
	test "$(stable_in pre s)" = "$stage_was"
on_pre() { curl -s -i http://127.0.0.1:36001/items/1 | grep -q "X-Version: $stage_was"; }
check "pre/s serves $stage_was again" wait_until 20 on_pre

# --- 5. the proxy killed under 200 requests/s
probe() { # probe: ms until a new connection to every production route is served
	local t0; t0=$(now_ms)
	for _ in $(seq 1000); do
		curl -sf -m 0.2 -o /dev/null http://127.0.0.1:36101/items/1 &&
			curl -sf -m 0.2 -o /dev/null http://127.0.0.1:36201/items/1 && break
		sleep 0.005
	done
	echo $(($(now_ms) - t0))
}
load_start proxykill
sleep 2
kill -9 "$(cat "$D/data/proxy.pid")"
ms=$(probe)
sleep 2
load_stop proxykill
echo "# proxy kill -9, server up (it restarts the proxy with --state): failed $FAILED/$REQS, new connections served after $ms ms"
kill -STOP "$SERVER_PID"
load_start proxykill2
sleep 2
kill -9 "$(cat "$D/data/proxy.pid")"
"$S" proxy --config "$D/data/proxy.json" --admin 127.0.0.1:36071 --state "$D/data/proxy-routes.json" >"$D/hand.log" 2>&1 &
HAND=$!
ms2=$(probe)
sleep 2
load_stop proxykill2
echo "# proxy kill -9, server down (restarted by hand from --state): failed $FAILED/$REQS, new connections served after $ms2 ms"
check "with the server down, a proxy restarted from its state file serves every route" \
	curl -sf -m 1 -o /dev/null http://127.0.0.1:36201/items/1
kill -9 "$HAND"
wait "$HAND" 2>/dev/null || true
kill -CONT "$SERVER_PID"
back() { curl -sf -m 1 -o /dev/null http://127.0.0.1:36101/items/1; }
check "the server restarts its own proxy again" wait_until 10 back

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
