#!/usr/bin/env bash
# Integration: the compatibility gate on the Metadata scenario, end to end, against the
# server's own record of what is live (ports 29070-29071, 29001-29003).
#   with profile v1 live, metadata v3 is refused with the reason; the plan for
#   metadata=v3 profile=v2 is metadata v2, then profile v2, then metadata v3, and the reverse
#   for going back; deploy refuses with the report; --force overrides and is recorded.
# Usage: gate.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
S=$B/src/sluice
EX=$B/examples
C=$SRC/examples/contracts
D=$(mktemp -d /tmp/sluice-it-gate.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:29070
export SLUICE_DATA="$D"  # the CLI reads the admin token the server writes there
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

cleanup() {
	set +e
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	[ "$fail" -ne 0 ] && tail -40 "$D/server.log"
	rm -rf "$D"
}
trap cleanup EXIT

"$S" server --data "$D" --listen 127.0.0.1:29070 --proxy-admin 127.0.0.1:29071 >"$D/server.log" 2>&1 &
for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.05; done

cat >"$D/m.yaml" <<'Y'
kind: Environment
name: production
regions: [{name: one}]
---
kind: Service
name: metadata
listen_port: 29001
health: {interval: 200ms}
strategy: {steps: [100], step_duration: 0s}
analysis: {method: threshold}
---
kind: Service
name: profile
listen_port: 29002
depends_on: [metadata]
health: {interval: 200ms}
strategy: {steps: [100], step_duration: 0s}
analysis: {method: threshold}
---
kind: Service
name: web
listen_port: 29003
depends_on: [profile]
health: {interval: 200ms}
strategy: {steps: [100], step_duration: 0s}
analysis: {method: threshold}
Y
"$S" apply -f "$D/m.yaml" >/dev/null
for r in metadata-v1 metadata-v2 metadata-v3 profile-v1 profile-v2 web-v1; do
	"$S" release push "${r%-*}" "${r##*-}" --artifact "$EX/$r" --contract "$C/$r.yaml" >/dev/null
done
"$S" deploy metadata v1 --wait >/dev/null
"$S" deploy profile v1 --wait >/dev/null
"$S" deploy web v1 --wait >/dev/null

set +e
"$S" can-i-deploy metadata v3 >"$D/cid.txt"
rc=$?
set -e
cat "$D/cid.txt"
check "can-i-deploy metadata v3 exits 1 while profile v1 is live" test $rc -eq 1
check "the refusal names the pair and the field" grep -q 'profile@v1.*refused' "$D/cid.txt"
check "the reason says /metadata is not guaranteed" grep -q '/metadata' "$D/cid.txt"
check "can-i-deploy metadata v2 is safe" "$S" can-i-deploy metadata v2

# a new required query parameter (metadata v4's contract; v3's binary stands in for it):
# profile v1 lists no parameters, so the server's gate fails closed and says how to declare them
"$S" release push metadata v4 --artifact "$EX/metadata-v3" --contract "$C/metadata-v4.yaml" >/dev/null
set +e
"$S" can-i-deploy metadata v4 >"$D/cid4.txt"
rc=$?
set -e
cat "$D/cid4.txt"
check "can-i-deploy metadata v4 exits 1: a new required parameter" test $rc -eq 1
check "the reason names lang as new since the stable version" grep -q "requires query parameter 'lang' (new since metadata@v1)" "$D/cid4.txt"
check "and says how to declare the parameters" grep -q 'e.g. parameters: \[{name: lang, in: query' "$D/cid4.txt"

"$S" plan metadata=v3 profile=v2 -o json >"$D/plan.json"
"$S" plan metadata=v3 profile=v2
order=$(tr -d ' \n' <"$D/plan.json" | grep -o '"steps":\[.*\],"reverse"' | grep -o '"service":"[a-z]*","from":"v[0-9]","to":"v[0-9]"' | sed 's/"service":"\([a-z]*\)","from":"\(v[0-9]\)","to":"\(v[0-9]\)"/\1:\3/' | tr '\n' ' ')
check "plan forward: metadata v2, profile v2, metadata v3 (got: $order)" test "$order" = "metadata:v2 profile:v2 metadata:v3 "
rev=$(tr -d ' \n' <"$D/plan.json" | grep -o '"reverse":\[.*' | grep -o '"service":"[a-z]*","from":"v[0-9]","to":"v[0-9]"' | sed 's/"service":"\([a-z]*\)","from":"\(v[0-9]\)","to":"\(v[0-9]\)"/\1:\3/' | tr '\n' ' ')
check "plan reverse: metadata v2, profile v1, metadata v1 (got: $rev)" test "$rev" = "metadata:v2 profile:v1 metadata:v1 "

set +e
"$S" deploy metadata v3 >"$D/deploy.txt" 2>&1
rc=$?
set -e
check "deploy metadata v3 is refused by the gate (exit 1)" test $rc -eq 1
check "the refusal shows the report" grep -q 'refused' "$D/deploy.txt"
check "nothing was started" bash -c "! '$S' history metadata | grep -q ' v3 '"

"$S" load --url http://127.0.0.1:29001/items/1 --rate 100 --duration 60 >/dev/null &
L=$!
check "deploy --force overrides the gate" "$S" deploy metadata v3 --force --wait --timeout 60
kill $L; wait $L || true
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
check "the override is recorded in the deployment's events" bash -c "'$S' events $dep | grep -q gate_overridden"
check "and profile v1 now fails against metadata v3, as the gate said" \
	bash -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:29002/profiles/1 | grep -q 502"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
