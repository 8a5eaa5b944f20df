#!/usr/bin/env bash
# Integration: guarded flag rollouts (docs/flags.md, "Guarded rollouts") on the real server,
# proxy and example service. The service evaluates flag new-path over OFREP for every request
# (examples/svc.h); release v1's code path behind the flag fails 60% of its requests, v2's is
# fixed. Under continuous load:
#   1. a rollout of the faulty variant is reverted by itself at its first step, the evidence
#      in `sluice events --rollout`, the flag as it was;
#   2. with v2 deployed, the same rollout reaches 100%;
#   3. kill -9 of the server mid-rollout: restarted, the rollout resumes at its step and ends.
# Usage: flag-rollout.sh BUILD_DIR        ports: 35070-35071, 35001
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-rollout.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:35070
export SLUICE_DATA="$D"
SERVER_PID= LOAD_PID=
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

cleanup() {
	set +e
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
	if [ -n "$SERVER_PID" ]; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SERVER_PID" 2>/dev/null
	fi
	if [ "$fail" -ne 0 ]; then echo "--- server log"; tail -60 "$D/server.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

start_server() {
	"$S" server --data "$D" --listen 127.0.0.1:35070 --proxy-admin 127.0.0.1:35071 >>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.05; done
	sleep 0.3
	if ! curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null || ! kill -0 "$SERVER_PID" 2>/dev/null; then
		echo "the server did not start (is something else on 127.0.0.1:35070?)"; tail -20 "$D/server.log"
		SERVER_PID=; exit 1
	fi
}
start_server

TOKEN=$("$S" token create metadata-app --scope 'evaluate:*:production' 2>/dev/null)
cat >"$D/m.yaml" <<Y
kind: Environment
name: production
regions:
  - name: east
---
kind: Service
name: metadata
listen_port: 35001
run:
  command: "{artifact}"
  args: ["--port", "{port}"]
  env:
    SLUICE_FLAG: new-path
    SLUICE_OFREP_URL: "http://127.0.0.1:35070/v1/envs/production"
    SLUICE_OFREP_TOKEN: "$TOKEN"
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
strategy: {steps: [50, 100], step_duration: 1s, max_step_duration: 30s}
bake: 1s
analysis: {min_requests: 20}
Y
cat >"$D/flags.yaml" <<'Y'
flags:
  new-path:
    state: ENABLED
    variants: {on: true, off: false}
    defaultVariant: off
  banner:
    state: ENABLED
    variants: {on: true, off: false}
    defaultVariant: off
Y
check "manifests with the flag's OFREP settings are accepted" "$S" apply -f "$D/m.yaml"
check "flags applied" "$S" flags apply "$D/flags.yaml" --reason "rollout test"
printf '#!/bin/sh\nSLUICE_FAULT_FLAG_ERROR_RATE=0.6 exec %s "$@"\n' "$EX/metadata-v1" >"$D/v1"
printf '#!/bin/sh\nSLUICE_FAULT_FLAG_ERROR_RATE=0 exec %s "$@"\n' "$EX/metadata-v2" >"$D/v2"
chmod +x "$D/v1" "$D/v2"
"$S" release push metadata v1 --artifact "$D/v1" >/dev/null
"$S" release push metadata v2 --artifact "$D/v2" >/dev/null
check "v1 (its flag path faulty) is deployed" "$S" deploy metadata v1 --wait --timeout 30

"$S" load --url http://127.0.0.1:35001/items/1 --rate 200 --conns 4 --duration 120 >"$D/load.txt" 2>&1 &
LOAD_PID=$!
sleep 0.5

# refusals: precise, nothing started
out=$("$S" flag rollout new-path --variant maybe --steps 10,100 --service metadata 2>&1 || true)
check "an unknown variant is refused with the reason" grep -q "no variant 'maybe'" <<<"$out"
out=$("$S" flag rollout new-path --variant on --steps 50,10 --service metadata 2>&1 || true)
check "steps that do not increase are refused" grep -q "increase" <<<"$out"
out=$("$S" flag rollout new-path --variant on --steps 10,100 --service nosuch 2>&1 || true)
check "an unknown service is refused" grep -q "service 'nosuch' is not defined" <<<"$out"
out=$("$S" flag rollout new-path --variant on --steps 1,x --service metadata 2>&1 || true)
check "bad --steps is refused by the CLI" grep -q "steps" <<<"$out"
code=$(curl -s -o "$D/body" -w '%{http_code}' -H "Authorization: Bearer $(cat "$D/admin.token")" -H 'Content-Type: application/json' \
	-d '{"variant":"on","steps":[10,"x"],"service":"metadata"}' "$SLUICE_SERVER/v1/flags/production/flag/new-path/rollout")
check "a mistyped body is 400 with the field path ($code)" grep -q "steps\[1\]" "$D/body"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"variant":"on","steps":[10],"service":"metadata"}' "$SLUICE_SERVER/v1/flags/production/flag/new-path/rollout")
check "an evaluate-only token may not start a rollout ($code)" test "$code" = 403

# --- 1. the faulty variant: reverted by itself at its first step
t0=$(date +%s.%N)
"$S" flag rollout new-path --variant on --steps 20,50,100 --service metadata --step-duration 2s \
	--baseline 2s --reason "test: faulty path" --wait --timeout 40 >"$D/r1.txt" 2>&1 && rc=0 || rc=$?
t1=$(date +%s.%N)
cat "$D/r1.txt"
check "the faulty rollout does not complete (exit $rc)" test "$rc" -ne 0
ID1=$(sed -n 's/.*rollout \([0-9]*\) started.*/\1/p' "$D/r1.txt" | head -1)
"$S" events --rollout "$ID1" >"$D/e1.txt"
"$S" events --rollout "$ID1" -o json >"$D/e1.json"
check "it was reverted" grep -q "reverted" "$D/e1.txt"
check "at its first step (20%)" grep -q '"weight": 20' "$D/e1.json"
check "its evidence: the counts, the statistic, the threshold" grep -qE "e=[0-9.e+]+ >= 40.*[0-9]+ errors of [0-9]+ requests" "$D/e1.txt"
check "the evidence has the e-value and its threshold" grep -q '"e_threshold"' "$D/e1.json"
"$S" flag get new-path -o json >"$D/f1.json"
check "the flag is back as before (no targeting)" python3 -c "
import json,sys; f=json.load(open('$D/f1.json'))['flag']; sys.exit(0 if not f.get('targeting') else 1)"
"$S" flags history >"$D/hist.txt"
check "the flag versions written by the rollout name it" grep -q "rollout $ID1" "$D/hist.txt"
check "the revert is announced in the server's log" grep -q "rollout $ID1 reverted" "$D/server.log"
python3 - "$D/e1.json" "$t0" "$t1" <<'P' || true
import json, sys
d = json.load(open(sys.argv[1]))
ev = {e['type']: e for e in d['events']}
step, rev = ev.get('step'), ev.get('reverted')
if step and rev:
    t = rev['evidence']['tests'][0]
    print("# measured: revert %.2f s after the first step began, %d requests (%d errors) at the verdict, "
          "whole command %.1f s" % ((rev['at'] - step['at']) / 1000, t['requests'], t['events'],
                                    float(sys.argv[3]) - float(sys.argv[2])))
P

# --- 2. the fixed release: the same rollout reaches 100%
check "v2 (its flag path fixed) is deployed" "$S" deploy metadata v2 --wait --timeout 60
"$S" flag rollout new-path --variant on --steps 20,100 --service metadata --step-duration 2s \
	--baseline 2s --reason "test: fixed path" --wait --timeout 40 >"$D/r2.txt" 2>&1 && rc=0 || rc=$?
cat "$D/r2.txt"
check "the harmless rollout completes (exit $rc)" test "$rc" -eq 0
check "it passed each step" test "$(grep -c ' passed ' "$D/r2.txt")" -eq 2
"$S" flag get new-path -o json >"$D/f2.json"
check "the flag gives the variant 100%" python3 -c "
import json,sys; t=json.load(open('$D/f2.json'))['flag']['targeting']
sys.exit(0 if t == {'fractional': [['on', 100], ['off', 0]]} else 1)"

# --- 3. kill -9 mid-rollout, restart, it continues
"$S" flag rollout banner --variant on --steps 10,50,100 --service metadata --step-duration 2s \
	--baseline 1s --reason "test: restart" >"$D/r3.txt"
ID3=$(sed -n 's/.*rollout \([0-9]*\) started.*/\1/p' "$D/r3.txt" | head -1)
for _ in $(seq 100); do
	"$S" events --rollout "$ID3" | grep -q "step 2 of 3" && break
	sleep 0.1
done
check "the rollout reached its second step" bash -c "'$S' events --rollout $ID3 | grep -q 'step 2 of 3'"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
sleep 0.5
start_server
for _ in $(seq 200); do
	ph=$("$S" events --rollout "$ID3" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])')
	[ "$ph" != active ] && break
	sleep 0.1
done
"$S" events --rollout "$ID3" >"$D/e3.txt"
cat "$D/e3.txt"
check "after the restart it resumed at its step" grep -q "restarted: step 2 (50%)" "$D/e3.txt"
check "and completed" test "$ph" = completed
check "each step once: steps 1 and 2 are not repeated" test "$(grep -c 'step 2 of 3' "$D/e3.txt")" -eq 1

kill "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
echo "# load: $(tail -3 "$D/load.txt" | tr '\n' ' ')"
echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
