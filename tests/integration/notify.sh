#!/usr/bin/env bash
# Integration (issue 15): notifications delivered to real webhook receivers (node,
# tests/integration/notify/receiver.mjs) from the real server on loopback (server 35170, proxy
# admin 35171, receivers 35172-35173, the service on 29651):
#   - a CloudEvents receiver validating every event with the npm cloudevents SDK, a Slack-format
#     receiver, both checking every HMAC signature;
#   - a JSON receiver that is down while the events happen and while the server is killed with
#     kill -9 (its deliveries pending in the outbox), then comes up: it receives every event, in
#     order, with no duplicates after de-duplication by id;
#   - the same events, in the same order, at every subscription; none invalid.
# Usage: notify.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
S=$B/src/sluice
EX=$B/examples
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node and npm are needed"; exit 77; }
D=$(mktemp -d /tmp/sluice-it-notify.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:35170
export SLUICE_DATA="$D/data"
SECRET=it-is-a-long-enough-secret
SERVER_PID= R1= R2= LOAD=
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }

# the receivers' npm packages, from the lock file, once per build directory
M=$B/notify-node
if [ ! -d "$M/node_modules/cloudevents" ]; then
	mkdir -p "$M"
	cp "$SRC/tests/integration/notify/package.json" "$SRC/tests/integration/notify/package-lock.json" "$M/"
	(cd "$M" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || { echo "could not install cloudevents"; exit 1; }
fi
cp "$SRC/tests/integration/notify/receiver.mjs" "$M/"

start_server() {
	"$S" server --data "$D/data" --listen 127.0.0.1:35170 --proxy-admin 127.0.0.1:35171 \
		--notify-retry-max 500 >>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	wait_until 10 curl -sf -m 1 "$SLUICE_SERVER/v1/health" -o /dev/null || { cat "$D/server.log"; exit 1; }
}
receiver() { # receiver PORT LOG -> pid in RPID
	node "$M/receiver.mjs" "$1" "$2" "$SECRET" --quiet >>"$D/receivers.out" 2>&1 &
	RPID=$!
	wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
cleanup() {
	set +e
	[ -n "$LOAD" ] && kill "$LOAD" 2>/dev/null
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	for p in $R1 $R2; do kill "$p" 2>/dev/null; done
	pkill -9 -f "$D" 2>/dev/null
	[ "$fail" -ne 0 ] && { tail -60 "$D/server.log"; tail -20 "$D/receivers.out"; }
	if [ -n "${KEEP:-}" ]; then echo "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

api() { curl -s -H "Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")" "$SLUICE_SERVER$1"; }
backlog() { api /v1/notifications | python3 -c 'import json,sys; print(json.load(sys.stdin)["backlog"])'; }
phase() { api "/v1/deployments/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' || true; }
dep_id() { "$S" history "$1" -o json | grep -m1 '"id"' | grep -o '[0-9]\+' || true; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

mkdir -p "$D/data"
receiver 35172 "$D/r1.log"; R1=$RPID
start_server

# subscriptions: the CLI's checks first
check "a URL with user information is refused" bash -c "! '$S' notify add 'http://u:p@127.0.0.1:35172/ce' 2>/dev/null"
check "a URL that is not http(s) is refused" bash -c "! '$S' notify add 'file:///etc/passwd' 2>/dev/null"
check "an unknown type is refused" bash -c "! '$S' notify add http://127.0.0.1:35172/ce --type deployment.exploded 2>/dev/null"
check "a short secret is refused" bash -c "! '$S' notify add http://127.0.0.1:35172/ce --secret short 2>/dev/null"
"$S" notify add http://127.0.0.1:35172/ce --format cloudevents --secret "$SECRET" >/dev/null
"$S" notify add http://127.0.0.1:35172/slack --format slack --env production --secret "$SECRET" >/dev/null
"$S" notify add http://127.0.0.1:35173/json --secret "$SECRET" >/dev/null
# one that hears nothing: another environment
"$S" notify add http://127.0.0.1:35172/json --env preprod --secret "$SECRET" >/dev/null
made=$("$S" notify add http://127.0.0.1:35172/json --service nobody)
check "a secret the server makes is shown once, at creation" grep -q "secret (shown only this once): [0-9a-f]\{64\}" <<<"$made"
"$S" notify list >"$D/list.txt"
check "list shows the subscriptions" test "$(grep -c 'http://127.0.0.1:3517' "$D/list.txt")" -eq 5
check "list never shows a secret" bash -c "! grep -q '$SECRET' '$D/list.txt' && ! curl -s -H 'Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")' $SLUICE_SERVER/v1/notifications | grep -q '$SECRET'"
"$S" notify remove 5 >/dev/null
check "remove" test "$("$S" notify list -o json | grep -c '"url"')" -eq 4
check "a read token may not list subscriptions" bash -c "
	t=\$('$S' token create reader --scope read | head -1)
	code=\$(curl -s -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer \$t\" $SLUICE_SERVER/v1/notifications)
	[ \"\$code\" = 403 ]"

cat >"$D/m.yaml" <<Y
kind: Environment
name: production
regions: [{name: eu}]
policy: {allow_unknown_consumers: true}
---
kind: Service
name: meta
listen_port: 29651
health: {interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
strategy: {steps: [50, 100], step_duration: 300ms, max_step_duration: 20s}
analysis: {method: threshold, min_requests: 5}
Y
"$S" apply -f "$D/m.yaml" >/dev/null
printf '#!/bin/sh\nexec %s --error-rate 1 "$@"\n' "$EX/metadata-v2" >"$D/bad"
chmod +x "$D/bad"
"$S" release push meta v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push meta v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push meta v3 --artifact "$D/bad" >/dev/null

# events while the JSON receiver is down
"$S" deploy meta v1 --wait >/dev/null
"$S" load --url http://127.0.0.1:29651/items/1 --rate 100 --duration 120 >/dev/null 2>&1 &
LOAD=$!
"$S" deploy meta v2 --wait >/dev/null || true
"$S" deploy meta v3 --wait >/dev/null 2>&1 || true
check "v3 was rolled back" test "$(phase "$(dep_id meta)")" = rolled_back
kill "$LOAD" 2>/dev/null; LOAD=
"$S" flags apply /dev/stdin >/dev/null 2>&1 <<'Y'
flags:
  dark-mode: {state: ENABLED, variants: {on: true, off: false}, defaultVariant: on}
Y
"$S" flag kill dark-mode --reason "it broke checkout" >/dev/null
"$S" flag disable dark-mode --reason "back to the code's default" >/dev/null

check "the CloudEvents receiver got them while the JSON one is down" wait_until 20 bash -c "[ \$(wc -l <'$D/r1.log') -ge 8 ]"
pending=$(backlog)
check "the JSON receiver's deliveries wait in the outbox ($pending)" test "$pending" -ge 6
# kill -9 between the events and their delivery
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
sleep 1
start_server
receiver 35173 "$D/r2.log"; R2=$RPID
check "the JSON receiver gets everything once it is up" wait_until 30 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")' $SLUICE_SERVER/v1/notifications | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"backlog\"])')\" = 0 ]"
sleep 1

python3 - "$D" >"$D/verdict.txt" <<'PY' || true
import json, sys
d = sys.argv[1]
def load(name, path):
    out = []
    for line in open(f"{d}/{name}"):
        r = json.loads(line)
        if r["path"] == path:
            out.append(r)
    return out
ce, slack, js = load("r1.log", "/ce"), load("r1.log", "/slack"), load("r2.log", "/json")
def dedup(rs):
    seen, out = set(), []
    for r in rs:
        if r["id"] not in seen:
            seen.add(r["id"]); out.append(r)
    return out
res = {}
res["invalid"] = sum(1 for r in ce + slack + js if not r.get("valid"))
res["bad_signatures"] = sum(1 for r in ce + slack + js if not r.get("sig_ok"))
cd, sd, jd = dedup(ce), dedup(slack), dedup(js)
res["counts"] = [len(cd), len(sd), len(jd)]
res["json_in_order"] = all(int(a["id"]) < int(b["id"]) for a, b in zip(jd, jd[1:]))
res["ce_in_order"] = all(int(a["id"]) < int(b["id"]) for a, b in zip(cd, cd[1:]))
res["same_sequence"] = [r["ntype"] for r in cd] == [r["ntype"] for r in jd] == [r["ntype"] for r in sd]
res["types"] = sorted(set(r["ntype"] for r in cd))
res["ce_types"] = sorted(set(r["type"] for r in cd))
print(json.dumps(res))
PY
cat "$D/verdict.txt"
v() { python3 -c 'import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).read())[sys.argv[2]]))' "$D/verdict.txt" "$1"; }
check "every CloudEvent and Slack body valid" test "$(v invalid)" = 0
check "every signature verifies" test "$(v bad_signatures)" = 0
check "in order per subscription (ids grow)" test "$(v json_in_order)$(v ce_in_order)" = truetrue
check "the same events, in the same order, at every subscription" test "$(v same_sequence)" = true
for t in deployment.started step.passed deployment.promoted deployment.rolled_back flag.killed flag.reverted; do
	check "$t delivered" grep -q "\"$t\"" <<<"$(v types)"
done
check "CDEvents types" bash -c "grep -q dev.cdevents.service.deployed <<<'$(v ce_types)' && grep -q dev.cdevents.service.rolledback <<<'$(v ce_types)'"
check "nothing for the preprod subscription" bash -c "! grep -q '\"path\": *\"/json\"' '$D/r1.log'"
check "the backlog metric is 0" bash -c "curl -s -H 'Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")' $SLUICE_SERVER/metrics | grep -q '^sluice_notification_backlog 0'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
